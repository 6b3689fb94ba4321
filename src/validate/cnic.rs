//! Pakistani CNIC: `DDDDD-DDDDDDD-D` or 13 bare digits. There is no check digit, so the
//! only structural tests are the shape, the first (province) digit and the boundaries.

use super::{touches_digit, Candidate, Reject};
use crate::pii::{all_ascii_digits, PiiKind, PiiValue};

/// Digits in a CNIC.
pub const CNIC_DIGITS: usize = 13;
/// Length of the dashed form `DDDDD-DDDDDDD-D`.
const DASHED_LEN: usize = 15;

/// Validates a CNIC candidate: exact shape, first digit 1–7, no digit touching either side.
/// Context keywords are the rule's business (see [`super::Keywords`]).
pub fn cnic(c: &Candidate<'_>) -> Result<PiiValue, Reject> {
    let hit = c.hit();
    if let Ok(bare) = <&[u8; CNIC_DIGITS]>::try_from(hit) {
        // The common case (and every 13-digit timestamp): validated in place, no copy.
        if !all_ascii_digits(bare) {
            return Err(Reject::Shape);
        }
        return finish(c, bare);
    }
    let Ok(dashed) = <&[u8; DASHED_LEN]>::try_from(hit) else {
        return Err(Reject::Length);
    };
    let mut digits = [0u8; CNIC_DIGITS];
    let mut n = 0;
    for (i, &b) in dashed.iter().enumerate() {
        let dash = i == 5 || i == 13;
        match (dash, b) {
            (true, b'-') => {}
            (false, b'0'..=b'9') => {
                digits[n] = b;
                n += 1;
            }
            _ => return Err(Reject::Shape),
        }
    }
    debug_assert_eq!(n, CNIC_DIGITS);
    finish(c, &digits)
}

/// [`cnic`]'s verdict on a hit of ASCII digits, given whether a digit touches it: decided for
/// 13 digits, `None` for other lengths.
#[inline]
pub(super) fn bare_digits(hit: &[u8], touches_digit: bool) -> Option<Result<(), Reject>> {
    let digits = <&[u8; CNIC_DIGITS]>::try_from(hit).ok()?;
    Some(province_then_boundary(digits[0], || touches_digit))
}

/// The checks after the shape: province digit, then boundaries.
#[inline]
fn finish(c: &Candidate<'_>, digits: &[u8; CNIC_DIGITS]) -> Result<PiiValue, Reject> {
    province_then_boundary(digits[0], || touches_digit(c))?;
    PiiValue::new(PiiKind::Cnic, digits).ok_or(Reject::Shape)
}

#[inline]
fn province_then_boundary(first: u8, touches_digit: impl FnOnce() -> bool) -> Result<(), Reject> {
    if !(b'1'..=b'7').contains(&first) {
        Err(Reject::FirstDigit)
    } else if touches_digit() {
        Err(Reject::Boundary)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str, start: usize, end: usize) -> Result<PiiValue, Reject> {
        cnic(&Candidate::new(s.as_bytes(), start, end).unwrap())
    }
    fn whole(s: &str) -> Result<PiiValue, Reject> {
        cnic(&Candidate::whole(s.as_bytes()))
    }

    #[test]
    fn accepts_both_forms_and_masks() {
        assert_eq!(whole("35202-1234567-1").unwrap().masked(), "35202-*******-1");
        assert_eq!(whole("3520212345671").unwrap().masked(), "35202-*******-1");
        assert_eq!(at("CNIC: 35202-1234567-1.", 6, 21).unwrap().masked(), "35202-*******-1");
        for first in b'1'..=b'7' {
            let s = format!("{}5202-1234567-1", first as char);
            assert!(whole(&s).is_ok(), "first digit {}", first as char);
        }
    }

    #[test]
    fn rejects_first_digit_0_8_9() {
        for s in ["05202-1234567-1", "85202-1234567-1", "95202-1234567-1", "0520212345671"] {
            assert_eq!(whole(s).unwrap_err(), Reject::FirstDigit, "{s}");
        }
    }

    #[test]
    fn rejects_shapes() {
        assert_eq!(whole("35202 1234567 1").unwrap_err(), Reject::Shape);
        assert_eq!(whole("352021-234567-1").unwrap_err(), Reject::Shape);
        assert_eq!(whole("35202-1234567-12").unwrap_err(), Reject::Length);
        assert_eq!(whole("352021234567").unwrap_err(), Reject::Length);
        assert_eq!(whole("35202123456a1").unwrap_err(), Reject::Shape);
        assert_eq!(whole("").unwrap_err(), Reject::Length);
    }

    #[test]
    fn boundaries() {
        // digit after / before
        assert_eq!(at("35202-1234567-12", 0, 15).unwrap_err(), Reject::Boundary);
        assert_eq!(at("135202-1234567-1", 1, 16).unwrap_err(), Reject::Boundary);
        assert_eq!(at("35202123456712", 0, 13).unwrap_err(), Reject::Boundary);
        assert_eq!(at("93520212345671", 1, 14).unwrap_err(), Reject::Boundary);
        // non-digits and stream ends are boundaries
        assert!(at("x3520212345671x", 1, 14).is_ok());
        assert!(at("-35202-1234567-1-", 1, 16).is_ok());
    }

    #[test]
    fn timestamp_is_shape_valid() {
        // A 13-digit millisecond timestamp looks like a CNIC; only confidence keeps it out: rule
        // `NGB-CNIC-002` reports bare 13 digits at low confidence unless a keyword is near.
        assert!(whole("1732212345678").is_ok());
    }

    /// The validator as it was before the in-place fast path: the property test's oracle.
    mod oracle {
        use super::super::{touches_digit, Candidate, PiiKind, PiiValue, Reject, CNIC_DIGITS, DASHED_LEN};

        pub(super) fn cnic(c: &Candidate<'_>) -> Result<PiiValue, Reject> {
            let hit = c.hit();
            let mut digits = [0u8; CNIC_DIGITS];
            match hit.len() {
                CNIC_DIGITS => {
                    if !hit.iter().all(u8::is_ascii_digit) {
                        return Err(Reject::Shape);
                    }
                    digits.copy_from_slice(hit);
                }
                DASHED_LEN => {
                    let mut n = 0;
                    for (i, &b) in hit.iter().enumerate() {
                        let dash = i == 5 || i == 13;
                        match (dash, b) {
                            (true, b'-') => {}
                            (false, b'0'..=b'9') => {
                                digits[n] = b;
                                n += 1;
                            }
                            _ => return Err(Reject::Shape),
                        }
                    }
                }
                _ => return Err(Reject::Length),
            }
            if !(b'1'..=b'7').contains(&digits[0]) {
                return Err(Reject::FirstDigit);
            }
            if touches_digit(c) {
                return Err(Reject::Boundary);
            }
            PiiValue::new(PiiKind::Cnic, &digits).ok_or(Reject::Shape)
        }
    }

    use proptest::prelude::*;

    /// Mostly digits, some dashes and letters: hits of 11-17 bytes, or the dashed shape with a
    /// few bytes changed, between random neighbours.
    fn cnic_input() -> impl Strategy<Value = (Vec<u8>, usize, usize)> {
        let byte = || prop_oneof![8 => b'0'..=b'9', 1 => Just(b'-'), 1 => Just(b'x')];
        let near = || proptest::collection::vec(prop_oneof![b'0'..=b'9', Just(b'x'), Just(b'-'), Just(b' ')], 0..3);
        let free = proptest::collection::vec(byte(), 11..=17);
        let dashed = (
            proptest::collection::vec(b'0'..=b'9', 13),
            proptest::collection::vec((0usize..15, byte()), 0..2),
        )
            .prop_map(|(d, edits)| {
                let mut h = [&d[..5], b"-", &d[5..12], b"-", &d[12..]].concat();
                for (i, b) in edits {
                    h[i] = b;
                }
                h
            });
        (near(), prop_oneof![free, dashed], near()).prop_map(|(before, hit, after)| {
            let start = before.len();
            let end = start + hit.len();
            ([before, hit, after].concat(), start, end)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn cnic_matches_oracle((bytes, start, end) in cnic_input()) {
            let c = Candidate::new(&bytes, start, end).unwrap();
            prop_assert_eq!(cnic(&c), oracle::cnic(&c));
        }
    }
}
