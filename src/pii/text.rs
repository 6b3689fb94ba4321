//! Personal values typed by people (CSV exports, configured test values) → normalised
//! [`PiiValue`]s, with the same checks the validators apply to traffic. Errors never carry the
//! value.

use super::{PiiKind, PiiValue};
use crate::validate::{luhn_valid, mod97_valid, CNIC_DIGITS, MAX_CARD_DIGITS, MIN_CARD_DIGITS, PK_IBAN_LEN};

/// Why a typed value was refused. Low-cardinality; holds no part of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Nothing but whitespace.
    #[error("empty value")]
    Empty,
    /// Characters that do not belong in this kind of value.
    #[error("unexpected characters for a {0}")]
    Characters(&'static str),
    /// Wrong number of digits or characters.
    #[error("wrong length for a {0}")]
    Length(&'static str),
    /// A CNIC whose first digit is not 1-7.
    #[error("a CNIC starts with 1-7")]
    FirstDigit,
    /// A card number failing the Luhn check.
    #[error("card number fails the Luhn check")]
    Luhn,
    /// An IBAN failing the mod-97 check, or not Pakistani.
    #[error("not a Pakistani IBAN passing the mod-97 check")]
    Iban,
}

impl PiiValue {
    /// Parses a value as people write it, normalised like the sensor normalises traffic:
    /// - CNIC: `DDDDD-DDDDDDD-D` or 13 digits, first digit 1-7;
    /// - card: 13-19 digits, spaces and dashes ignored, Luhn-valid (no issuer check: a list may
    ///   hold cards of schemes the rules do not load);
    /// - IBAN: Pakistani, spaces ignored, either case, mod-97 valid;
    /// - `kind = None` (auto): letters mean an IBAN; a dashed CNIC or 13 digits starting 1-7 a
    ///   CNIC; other digit strings a card. (The keyed hash does not include the kind, so a
    ///   13-digit value matches as either.)
    ///
    /// Surrounding whitespace is ignored.
    pub fn parse(kind: Option<PiiKind>, text: &[u8]) -> Result<PiiValue, ValueError> {
        let text = text.trim_ascii();
        if text.is_empty() {
            return Err(ValueError::Empty);
        }
        let kind = kind.unwrap_or_else(|| guess(text));
        match kind {
            PiiKind::Cnic => parse_cnic(text),
            PiiKind::Card => parse_card(text),
            PiiKind::Iban => parse_iban(text),
        }
    }
}

fn guess(text: &[u8]) -> PiiKind {
    if text.iter().any(u8::is_ascii_alphabetic) {
        return PiiKind::Iban;
    }
    let dashed_cnic = text.len() == 15 && text[5] == b'-' && text[13] == b'-';
    let bare_cnic =
        text.len() == CNIC_DIGITS && text.iter().all(u8::is_ascii_digit) && (b'1'..=b'7').contains(&text[0]);
    if dashed_cnic || bare_cnic {
        PiiKind::Cnic
    } else {
        PiiKind::Card
    }
}

fn parse_cnic(text: &[u8]) -> Result<PiiValue, ValueError> {
    const WHAT: &str = "CNIC";
    let mut d = [0u8; CNIC_DIGITS];
    match text.len() {
        CNIC_DIGITS => d.copy_from_slice(text),
        15 if text[5] == b'-' && text[13] == b'-' => {
            d[..5].copy_from_slice(&text[..5]);
            d[5..12].copy_from_slice(&text[6..13]);
            d[12] = text[14];
        }
        15 => return Err(ValueError::Characters(WHAT)),
        _ => return Err(ValueError::Length(WHAT)),
    }
    if !d.iter().all(u8::is_ascii_digit) {
        return Err(ValueError::Characters(WHAT));
    }
    if !(b'1'..=b'7').contains(&d[0]) {
        return Err(ValueError::FirstDigit);
    }
    PiiValue::new(PiiKind::Cnic, &d).ok_or(ValueError::Characters(WHAT))
}

fn parse_card(text: &[u8]) -> Result<PiiValue, ValueError> {
    const WHAT: &str = "card number";
    let mut d = [0u8; MAX_CARD_DIGITS];
    let mut n = 0;
    for &b in text {
        match b {
            b'0'..=b'9' if n < MAX_CARD_DIGITS => {
                d[n] = b;
                n += 1;
            }
            b'0'..=b'9' => return Err(ValueError::Length(WHAT)),
            b' ' | b'-' => {}
            _ => return Err(ValueError::Characters(WHAT)),
        }
    }
    if n < MIN_CARD_DIGITS {
        return Err(ValueError::Length(WHAT));
    }
    if !luhn_valid(&d[..n]) {
        return Err(ValueError::Luhn);
    }
    PiiValue::new(PiiKind::Card, &d[..n]).ok_or(ValueError::Characters(WHAT))
}

fn parse_iban(text: &[u8]) -> Result<PiiValue, ValueError> {
    const WHAT: &str = "IBAN";
    let mut v = [0u8; PK_IBAN_LEN];
    let mut n = 0;
    for &b in text {
        match b {
            b' ' => {}
            b if b.is_ascii_alphanumeric() && n < PK_IBAN_LEN => {
                v[n] = b.to_ascii_uppercase();
                n += 1;
            }
            b if b.is_ascii_alphanumeric() => return Err(ValueError::Length(WHAT)),
            _ => return Err(ValueError::Characters(WHAT)),
        }
    }
    if n != PK_IBAN_LEN {
        return Err(ValueError::Length(WHAT));
    }
    let shape = v[..2] == *b"PK"
        && v[2..4].iter().all(u8::is_ascii_digit)
        && v[4..8].iter().all(u8::is_ascii_uppercase)
        && v[8..].iter().all(u8::is_ascii_digit);
    if !shape || !mod97_valid(&v) {
        return Err(ValueError::Iban);
    }
    PiiValue::new(PiiKind::Iban, &v).ok_or(ValueError::Characters(WHAT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kind: Option<PiiKind>, s: &str) -> Result<(PiiKind, String), ValueError> {
        PiiValue::parse(kind, s.as_bytes()).map(|v| (v.kind(), v.masked()))
    }

    #[test]
    fn auto_detects_and_normalises() {
        assert_eq!(
            p(None, " 35202-1234567-1 ").unwrap(),
            (PiiKind::Cnic, "35202-*******-1".into())
        );
        assert_eq!(
            p(None, "3520212345671").unwrap(),
            (PiiKind::Cnic, "35202-*******-1".into())
        );
        assert_eq!(
            p(None, "4111 1111 1111 1111").unwrap(),
            (PiiKind::Card, "411111******1111".into())
        );
        assert_eq!(
            p(None, "4111-1111-1111-1111").unwrap(),
            (PiiKind::Card, "411111******1111".into())
        );
        assert_eq!(
            p(None, "pk36 scbl 0000 0011 2345 6702").unwrap(),
            (PiiKind::Iban, "PK36SCBL************6702".into())
        );
        // 13 digits starting 8: not a CNIC, so a (13-digit) card candidate.
        assert_eq!(p(None, "8520212345672").unwrap_err(), ValueError::Luhn);
        assert_eq!(p(None, "8520212345671").unwrap().0, PiiKind::Card);
    }

    #[test]
    fn same_digits_hash_the_same_whatever_the_spelling() {
        let k = crate::pii::PiiKey::new(b"k");
        let a = PiiValue::parse(None, b"35202-1234567-1").unwrap();
        let b = PiiValue::parse(Some(PiiKind::Cnic), b"3520212345671").unwrap();
        assert_eq!(k.hash(&a), k.hash(&b));
        let c = PiiValue::parse(Some(PiiKind::Card), b"4111 1111 1111 1111").unwrap();
        let d = PiiValue::parse(None, b"4111111111111111").unwrap();
        assert_eq!(k.hash(&c), k.hash(&d));
    }

    #[test]
    fn refusals_name_the_reason_not_the_value() {
        assert_eq!(p(None, "  ").unwrap_err(), ValueError::Empty);
        assert_eq!(
            p(Some(PiiKind::Cnic), "05202-1234567-1").unwrap_err(),
            ValueError::FirstDigit
        );
        assert_eq!(
            p(Some(PiiKind::Cnic), "352021234567").unwrap_err(),
            ValueError::Length("CNIC")
        );
        assert_eq!(
            p(Some(PiiKind::Cnic), "35202 1234567 1").unwrap_err(),
            ValueError::Characters("CNIC")
        );
        assert_eq!(
            p(Some(PiiKind::Card), "4111111111111112").unwrap_err(),
            ValueError::Luhn
        );
        assert_eq!(
            p(Some(PiiKind::Card), "41111111111111110000").unwrap_err(),
            ValueError::Length("card number")
        );
        assert_eq!(
            p(Some(PiiKind::Card), "4111/1111").unwrap_err(),
            ValueError::Characters("card number")
        );
        assert_eq!(p(None, "PK37SCBL0000001123456702").unwrap_err(), ValueError::Iban);
        assert_eq!(
            p(None, "GB82WEST12345698765432").unwrap_err(),
            ValueError::Length("IBAN")
        );
        let e = p(Some(PiiKind::Card), "4111111111111112").unwrap_err().to_string();
        assert!(!e.contains("4111"), "{e}");
    }
}
