//! Validators: decide whether a Hyperscan hit is really a CNIC or a card number.
//!
//! Everything here is a pure function over a [`Candidate`], a contiguous byte view of the hit
//! and its surroundings that the matcher assembles on the stack. No function allocates.
//!
//! A candidate carries up to [`AFTER_BYTES`] bytes after the hit; fewer means the stream ended
//! (or has a gap) there, which counts as a boundary. Bytes before the hit are whatever the
//! scanner still has (possibly none at the start of a stream).

mod card;
mod cnic;

pub use card::{luhn_valid, CardScheme, CardSchemes, SchemeError};
pub use cnic::cnic;

pub use card::card;

use crate::pii::PiiValue;

/// Bytes after a hit that boundary checks look at (`<sep><digit>`).
pub const AFTER_BYTES: usize = 2;
/// Bytes before a hit that boundary checks look at (`<digit><sep>`), excluding context.
pub const BEFORE_BYTES: usize = 2;

/// Which validator a rule uses. A closed set: adding one is a code change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validator {
    /// Pakistani CNIC: `DDDDD-DDDDDDD-D` or 13 digits, first digit 1–7.
    Cnic,
    /// Payment card: 13–19 digits, Luhn, issuer table.
    Card,
}

impl Validator {
    /// Lower-case name, as written in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            Validator::Cnic => "cnic",
            Validator::Card => "card",
        }
    }
    /// Runs this validator (boundaries, shape, checksum, issuer; not the context keywords).
    pub fn run(self, c: &Candidate<'_>, schemes: &CardSchemes) -> Result<PiiValue, Reject> {
        match self {
            Validator::Cnic => cnic(c),
            Validator::Card => card(c, schemes),
        }
    }
}

/// Why a candidate was rejected. Low-cardinality: usable as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Wrong characters, separators or grouping for the validator.
    Shape,
    /// Wrong number of digits.
    Length,
    /// CNIC whose first digit is not 1–7 (no such province code).
    FirstDigit,
    /// Part of a longer digit run (or digit group) on either side.
    Boundary,
    /// Card number failing the Luhn check.
    Luhn,
    /// Card number whose prefix and length match no loaded issuer scheme.
    Scheme,
    /// The rule requires a context keyword and none was found in its window.
    Context,
}

impl Reject {
    /// Number of variants, for per-reason counter arrays.
    pub const COUNT: usize = 7;
    /// Every variant, in `index` order.
    pub const ALL: [Reject; Reject::COUNT] = [
        Reject::Shape,
        Reject::Length,
        Reject::FirstDigit,
        Reject::Boundary,
        Reject::Luhn,
        Reject::Scheme,
        Reject::Context,
    ];
    /// Dense index `0..COUNT`.
    pub fn index(self) -> usize {
        self as usize
    }
    /// Lower-case name for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Shape => "shape",
            Reject::Length => "length",
            Reject::FirstDigit => "first_digit",
            Reject::Boundary => "boundary",
            Reject::Luhn => "luhn",
            Reject::Scheme => "scheme",
            Reject::Context => "context",
        }
    }
}

/// A hit and its surroundings: `bytes[..start]` before, `bytes[start..end]` the hit,
/// `bytes[end..]` after (at most [`AFTER_BYTES`] are looked at).
#[derive(Clone, Copy)]
pub struct Candidate<'a> {
    bytes: &'a [u8],
    /// Invariant: `start <= end <= bytes.len()`.
    start: usize,
    end: usize,
}

impl<'a> Candidate<'a> {
    /// A view of `bytes` with the hit at `start..end`; `None` if the range is not inside `bytes`.
    pub fn new(bytes: &'a [u8], start: usize, end: usize) -> Option<Self> {
        (start <= end && end <= bytes.len()).then_some(Self { bytes, start, end })
    }
    /// A candidate that is the whole of `bytes` (nothing before or after).
    pub fn whole(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            start: 0,
            end: bytes.len(),
        }
    }
    /// The hit itself.
    pub fn hit(&self) -> &'a [u8] {
        &self.bytes[self.start..self.end]
    }
    /// The `n`-th byte before the hit (1 = immediately before), if known.
    pub fn before(&self, n: usize) -> Option<u8> {
        self.start.checked_sub(n).map(|i| self.bytes[i])
    }
    /// The `n`-th byte after the hit (0 = immediately after), if known.
    pub fn after(&self, n: usize) -> Option<u8> {
        self.bytes.get(self.end + n).copied()
    }
    /// Up to `window` bytes immediately before the hit.
    pub fn context(&self, window: usize) -> &'a [u8] {
        &self.bytes[self.start.saturating_sub(window)..self.start]
    }
}

fn is_digit(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_digit())
}

/// True if a digit touches the hit on either side.
pub(crate) fn touches_digit(c: &Candidate<'_>) -> bool {
    is_digit(c.before(1)) || is_digit(c.after(0))
}

/// True if any of `keywords` (already ASCII-lowercased) occurs entirely within the `window`
/// bytes before the hit with no ASCII digit between it and the hit, comparing ASCII
/// case-insensitively (other bytes compare exactly).
///
/// The no-digit rule keeps a keyword from vouching for the *next* number: in
/// `cnic: 35202-1234567-1,"ts":1732212345678` the keyword belongs to the CNIC, not the timestamp.
pub fn keyword_before(c: &Candidate<'_>, keywords: &[Box<[u8]>], window: usize) -> bool {
    let ctx = c.context(window);
    let hay = match ctx.iter().rposition(u8::is_ascii_digit) {
        Some(i) => &ctx[i + 1..],
        None => ctx,
    };
    keywords.iter().any(|k| contains_ci(hay, k))
}

fn contains_ci(hay: &[u8], needle_lower: &[u8]) -> bool {
    if needle_lower.is_empty() {
        return true;
    }
    if needle_lower.len() > hay.len() {
        return false;
    }
    hay.windows(needle_lower.len())
        .any(|w| w.iter().zip(needle_lower).all(|(&h, &n)| h.to_ascii_lowercase() == n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(list: &[&str]) -> Vec<Box<[u8]>> {
        list.iter()
            .map(|k| k.to_ascii_lowercase().into_bytes().into_boxed_slice())
            .collect()
    }

    #[test]
    fn candidate_view() {
        let b = b"ab1234cd";
        let c = Candidate::new(b, 2, 6).unwrap();
        assert_eq!(c.hit(), b"1234");
        assert_eq!(c.before(1), Some(b'b'));
        assert_eq!(c.before(2), Some(b'a'));
        assert_eq!(c.before(3), None);
        assert_eq!(c.after(0), Some(b'c'));
        assert_eq!(c.after(2), None);
        assert_eq!(c.context(1), b"b");
        assert_eq!(c.context(10), b"ab");
        assert!(Candidate::new(b, 6, 2).is_none());
        assert!(Candidate::new(b, 2, 9).is_none());
        assert!(!touches_digit(&c));
        assert!(touches_digit(&Candidate::new(b, 3, 6).unwrap()));
    }

    #[test]
    fn keywords_case_insensitive_within_window() {
        let k = kw(&["CNIC", "شناختی کارڈ"]);
        let b = b"my Cnic no: 12345";
        let c = Candidate::new(b, 12, 17).unwrap();
        assert!(keyword_before(&c, &k, 48));
        assert!(keyword_before(&c, &k, 9)); // "Cnic no: " is 9 bytes
        assert!(!keyword_before(&c, &k, 8)); // keyword must fit entirely in the window
        let urdu = "شناختی کارڈ 3520212345671".as_bytes();
        let s = urdu.len() - 13;
        assert!(keyword_before(&Candidate::new(urdu, s, urdu.len()).unwrap(), &k, 48));
        // A digit between keyword and hit: the keyword belongs to an earlier number.
        let taken = b"cnic: 35202-1234567-1,\"ts\":1732212345678";
        let s = taken.len() - 13;
        assert!(!keyword_before(&Candidate::new(taken, s, taken.len()).unwrap(), &k, 48));
        let none = b"order 3520212345671";
        assert!(!keyword_before(&Candidate::new(none, 6, 19).unwrap(), &k, 48));
    }

    #[test]
    fn reject_index_dense() {
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
