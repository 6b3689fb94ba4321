//! Synthetic personal values and their look-alikes: CNICs (first digit 1–7), Luhn-valid card
//! numbers with real issuer prefixes, Pakistani IBANs with a correct ISO 13616 check, and
//! decoys that a careless matcher would report (millisecond timestamps, phone numbers, order
//! ids, version strings, Luhn-invalid runs, CNIC shapes with first digit 0/8/9, IBANs with a
//! wrong check). All values are random: none belongs to a person.

use rand::rngs::StdRng;
use rand::Rng;

/// Kind of a planted value, named as in alerts (`pii.matches[].type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Pakistani CNIC.
    Cnic,
    /// Payment card number.
    Card,
    /// Pakistani IBAN.
    Iban,
}

impl Kind {
    /// The alert's `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cnic => "cnic",
            Kind::Card => "card",
            Kind::Iban => "iban",
        }
    }
}

fn digits(rng: &mut StdRng, n: usize) -> String {
    (0..n).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect()
}

/// A CNIC's 13 digits (normalised form), first digit 1–7, never also a valid 13-digit Visa
/// number (so a planted value has one reading).
pub fn cnic(rng: &mut StdRng) -> String {
    loop {
        let c = format!("{}{}", rng.gen_range(1..=7u8), digits(rng, 12));
        if !(c.starts_with('4') && luhn_ok(&c)) {
            return c;
        }
    }
}

/// `DDDDD-DDDDDDD-D` of a normalised CNIC.
pub fn dashed_cnic(c: &str) -> String {
    format!("{}-{}-{}", &c[..5], &c[5..12], &c[12..])
}

/// Luhn check digit for `partial` (all digits but the last).
pub fn luhn_digit(partial: &str) -> u8 {
    let mut sum = 0u32;
    for (i, b) in partial.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    ((10 - sum % 10) % 10) as u8
}

/// Whether `pan` passes the Luhn check.
pub fn luhn_ok(pan: &str) -> bool {
    let (head, last) = pan.split_at(pan.len() - 1);
    luhn_digit(head) == last.as_bytes()[0] - b'0'
}

/// A Luhn-valid card number (normalised digits) with an issuer prefix and length from the
/// bundled scheme table: Visa 16, Mastercard 16 (51–55 and 2221–2720), Amex 15, Discover 16,
/// JCB 16, UnionPay 16.
pub fn card(rng: &mut StdRng) -> String {
    let (prefix, len) = match rng.gen_range(0..7) {
        0 | 1 => ("4".to_string(), 16),
        2 => (format!("5{}", rng.gen_range(1..=5)), 16),
        3 => (rng.gen_range(2221..=2720).to_string(), 16),
        4 => (["34", "37"][rng.gen_range(0..2)].to_string(), 15),
        5 => ("6011".to_string(), 16),
        _ => (rng.gen_range(3528..=3589).to_string(), 16),
    };
    let body = format!("{prefix}{}", digits(rng, len - 1 - prefix.len()));
    let check = luhn_digit(&body);
    format!("{body}{check}")
}

/// A card number written in groups separated by `sep` (4-6-5 for 15 digits, else fours).
pub fn grouped_card(pan: &str, sep: char) -> String {
    let groups: Vec<&str> = if pan.len() == 15 {
        vec![&pan[..4], &pan[4..10], &pan[10..]]
    } else {
        pan.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).expect("digits are ASCII"))
            .collect()
    };
    groups.join(&sep.to_string())
}

/// ISO 13616 check digits of an IBAN with country `cc` and basic bank account number `bban`.
pub fn iban_check(cc: &str, bban: &str) -> u32 {
    let rearranged = format!("{bban}{cc}00");
    let mut rem = 0u32;
    for ch in rearranged.chars() {
        let v = ch.to_digit(36).expect("IBAN characters are alphanumeric");
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    98 - rem
}

/// Whether a normalised IBAN passes the mod-97 check.
pub fn iban_ok(iban: &str) -> bool {
    let check: u32 = iban[2..4].parse().unwrap_or(100);
    iban_check(&iban[..2], &iban[4..]) == check
}

/// A Pakistani IBAN (normalised: 24 upper-case characters, no spaces): `PK`, check digits, a
/// four-letter bank code, a 16-digit account number.
pub fn iban(rng: &mut StdRng) -> String {
    const BANKS: [&str; 8] = ["HABB", "MUCB", "UNIL", "ABPA", "MEZN", "SCBL", "BAHL", "ALFH"];
    let bban = format!("{}{}", BANKS[rng.gen_range(0..BANKS.len())], digits(rng, 16));
    format!("PK{:02}{bban}", iban_check("PK", &bban))
}

/// An IBAN in its printed form: groups of four separated by spaces.
pub fn grouped_iban(iban: &str) -> String {
    iban.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("IBAN is ASCII"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Decoy generators: each returns text that carries no personal value, even to an analyst
/// reading it in context.
pub mod decoy {
    use super::*;

    /// A 13-digit millisecond timestamp from 2024–2026 (`17…`).
    pub fn millis(rng: &mut StdRng) -> String {
        rng.gen_range(1_704_067_200_000u64..1_798_761_600_000).to_string()
    }

    /// A Pakistani mobile number in one of its usual spellings.
    pub fn phone(rng: &mut StdRng) -> String {
        let n = format!("3{}{}", rng.gen_range(0..5), digits(rng, 8));
        match rng.gen_range(0..4) {
            0 => format!("0{n}"),
            1 => format!("+92{n}"),
            2 => format!("+92 {} {}", &n[..3], &n[3..]),
            _ => format!("92{n}"),
        }
    }

    /// An order or invoice id.
    pub fn order_id(rng: &mut StdRng) -> String {
        match rng.gen_range(0..3) {
            0 => format!("ORD-2025-{}", digits(rng, 9)),
            1 => format!("INV{}", digits(rng, 12)),
            _ => format!("{}-{}", digits(rng, 6), digits(rng, 8)),
        }
    }

    /// A software version or build string.
    pub fn version(rng: &mut StdRng) -> String {
        match rng.gen_range(0..3) {
            0 => format!("10.0.{}.{}", rng.gen_range(10000..30000), rng.gen_range(1000..9999)),
            1 => format!("5.15.0-{}-azure", rng.gen_range(1000..1200)),
            _ => format!(
                "build {}.{}.{}",
                rng.gen_range(1..200),
                rng.gen_range(0..9999),
                digits(rng, 10)
            ),
        }
    }

    /// A 16-digit run with a card issuer prefix that fails Luhn.
    pub fn luhn_invalid(rng: &mut StdRng) -> String {
        let pan = card(rng);
        let (head, last) = pan.split_at(pan.len() - 1);
        let bad = (last.as_bytes()[0] - b'0' + rng.gen_range(1..10u8)) % 10;
        let out = format!("{head}{bad}");
        debug_assert!(!luhn_ok(&out));
        out
    }

    /// A dashed CNIC shape whose first digit is 0, 8 or 9 (no such province).
    pub fn bad_province_cnic(rng: &mut StdRng) -> String {
        let first = [0u8, 8, 9][rng.gen_range(0..3)];
        dashed_cnic(&format!("{first}{}", digits(rng, 12)))
    }

    /// A PK IBAN shape with a wrong check.
    pub fn bad_iban(rng: &mut StdRng) -> String {
        let good = iban(rng);
        let check: u32 = good[2..4].parse().expect("two check digits");
        let wrong = (check + rng.gen_range(1..90)) % 97 + 2;
        let out = format!("PK{wrong:02}{}", &good[4..]);
        if iban_ok(&out) {
            format!("PK{:02}{}", (wrong + 1) % 97 + 2, &good[4..])
        } else {
            out
        }
    }

    /// A 14-digit run (one digit too many for a CNIC) that no card scheme has (no Diners `3`).
    pub fn fourteen(rng: &mut StdRng) -> String {
        format!("{}{}", [1u8, 2, 4, 5, 6, 7][rng.gen_range(0..6)], digits(rng, 13))
    }

    /// A 19-digit 64-bit id (no card keyword anywhere near it in what the corpus writes).
    pub fn snowflake(rng: &mut StdRng) -> String {
        rng.gen_range(1_000_000_000_000_000_000u64..9_223_372_036_854_775_807)
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn generated_values_validate() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..500 {
            let c = cnic(&mut rng);
            assert!(c.len() == 13 && (b'1'..=b'7').contains(&c.as_bytes()[0]));
            let p = card(&mut rng);
            assert!(luhn_ok(&p) && (p.len() == 15 || p.len() == 16));
            let i = iban(&mut rng);
            assert!(i.len() == 24 && iban_ok(&i), "{i}");
            assert!(!luhn_ok(&decoy::luhn_invalid(&mut rng)));
            assert!(!iban_ok(&decoy::bad_iban(&mut rng)));
            assert!(matches!(
                decoy::bad_province_cnic(&mut rng).as_bytes()[0],
                b'0' | b'8' | b'9'
            ));
        }
        // Published examples.
        assert!(luhn_ok("4111111111111111"));
        assert!(iban_ok("GB82WEST12345698765432"));
        assert!(iban_ok("PK36SCBL0000001123456702"));
        assert_eq!(
            grouped_iban("PK36SCBL0000001123456702"),
            "PK36 SCBL 0000 0011 2345 6702"
        );
        assert_eq!(grouped_card("378282246310005", ' '), "3782 822463 10005");
        assert_eq!(dashed_cnic("3520212345671"), "35202-1234567-1");
    }
}
