//! Pakistani IBAN: `PK`, two check digits, a four-letter bank code and a 16-digit account
//! (24 characters), written compact or in groups of four separated by single spaces, and
//! confirmed by the ISO 13616 / ISO 7064 mod-97 check.

use super::{Candidate, Reject};
use crate::pii::{PiiKind, PiiValue};

/// Characters of a Pakistani IBAN.
pub const PK_IBAN_LEN: usize = 24;

/// Validates an IBAN candidate: the exact Pakistani shape (letters in either case, compact or
/// grouped by four with single spaces), no letter or digit touching either side (nor a
/// `<space><alphanumeric>` group after a grouped one), and the mod-97 check.
pub fn iban(c: &Candidate<'_>) -> Result<PiiValue, Reject> {
    let hit = c.hit();
    let grouped = hit.len() == PK_IBAN_LEN + PK_IBAN_LEN / 4 - 1;
    if hit.len() != PK_IBAN_LEN && !grouped {
        return Err(Reject::Length);
    }
    let mut v = [0u8; PK_IBAN_LEN];
    let mut n = 0;
    for (i, &b) in hit.iter().enumerate() {
        if grouped && i % 5 == 4 {
            if b != b' ' {
                return Err(Reject::Shape);
            }
            continue;
        }
        v[n] = b.to_ascii_uppercase();
        n += 1;
    }
    debug_assert_eq!(n, PK_IBAN_LEN);
    let shape = v[..2] == *b"PK"
        && v[2..4].iter().all(u8::is_ascii_digit)
        && v[4..8].iter().all(u8::is_ascii_uppercase)
        && v[8..].iter().all(u8::is_ascii_digit);
    if !shape {
        return Err(Reject::Shape);
    }
    let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if alnum(c.before(1))
        || alnum(c.after(0))
        || (grouped && c.after(0) == Some(b' ') && c.after(1).is_some_and(|b| b.is_ascii_digit()))
    {
        return Err(Reject::Boundary);
    }
    if !mod97_valid(&v) {
        return Err(Reject::Checksum);
    }
    PiiValue::new(PiiKind::Iban, &v).ok_or(Reject::Shape)
}

/// ISO 13616 check over a normalised IBAN (upper-case letters and digits, no spaces): move the
/// first four characters to the end, read letters as 10..=35, and the number must be 1 mod 97.
/// False for anything shorter than five characters or with another byte.
pub fn mod97_valid(iban: &[u8]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let mut rem = 0u32;
    for &b in iban[4..].iter().chain(&iban[..4]) {
        rem = match b {
            b'0'..=b'9' => (rem * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => (rem * 100 + u32::from(b - b'A') + 10) % 97,
            _ => return false,
        };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(s: &str) -> Result<String, Reject> {
        iban(&Candidate::whole(s.as_bytes())).map(|v| v.masked())
    }

    #[test]
    fn mod97_vectors() {
        // ISO 13616 / ECBS examples and the Pakistani example from the SBP IBAN guidance.
        for ok in [
            "GB82WEST12345698765432",
            "DE89370400440532013000",
            "NL91ABNA0417164300",
            "PK36SCBL0000001123456702",
            "PK72HABB0012345678901234",
            "PK13MEZN0001020304050607",
        ] {
            assert!(mod97_valid(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "GB82WEST12345698765431",
            "PK37SCBL0000001123456702",
            "PK36SCBL0000001123456720",
            "PK36",
            "pk36SCBL0000001123456702",
        ] {
            assert!(!mod97_valid(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn accepts_compact_grouped_and_lower_case() {
        assert_eq!(whole("PK36SCBL0000001123456702").unwrap(), "PK36SCBL************6702");
        assert_eq!(
            whole("PK36 SCBL 0000 0011 2345 6702").unwrap(),
            "PK36SCBL************6702"
        );
        assert_eq!(whole("pk36scbl0000001123456702").unwrap(), "PK36SCBL************6702");
    }

    #[test]
    fn rejects_shape_checksum_and_boundaries() {
        assert_eq!(whole("PK37SCBL0000001123456702").unwrap_err(), Reject::Checksum);
        assert_eq!(whole("GB36SCBL0000001123456702").unwrap_err(), Reject::Shape);
        assert_eq!(whole("PK36SCB10000001123456702").unwrap_err(), Reject::Shape);
        assert_eq!(whole("PK36 SCBL 0000 0011 2345-6702").unwrap_err(), Reject::Shape);
        assert_eq!(whole("PK36SCBL000000112345670").unwrap_err(), Reject::Length);
        let b = b"XPK36SCBL0000001123456702 PK36 SCBL 0000 0011 2345 6702 1";
        assert_eq!(iban(&Candidate::new(b, 1, 25).unwrap()).unwrap_err(), Reject::Boundary);
        assert_eq!(iban(&Candidate::new(b, 26, 55).unwrap()).unwrap_err(), Reject::Boundary);
        let ok = b"iban=PK36SCBL0000001123456702&x";
        assert!(iban(&Candidate::new(ok, 5, 29).unwrap()).is_ok());
    }
}
