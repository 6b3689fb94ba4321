//! Validators: decide whether a Hyperscan hit is really a CNIC, a card number or an IBAN, and
//! look for the context keywords around it.
//!
//! Everything here is a pure function over a [`Candidate`], a contiguous byte view of the hit
//! and its surroundings that the matcher assembles on the stack. No function allocates.
//!
//! A candidate carries up to [`AFTER_BYTES`] bytes after the hit; fewer means the stream ended
//! (or has a gap) there, which counts as a boundary. Bytes before the hit are whatever the
//! scanner still has (possibly none at the start of a stream).

mod card;
mod cnic;
mod context;
mod iban;

pub use card::{card, luhn_valid, CardScheme, CardSchemes, SchemeError, MAX_CARD_DIGITS, MIN_CARD_DIGITS};
pub use cnic::{cnic, CNIC_DIGITS};
pub use context::Keywords;
pub use iban::{iban, mod97_valid, PK_IBAN_LEN};

use crate::pii::{PiiKind, PiiValue};

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
    /// Pakistani IBAN: `PKkk BBBB` + 16 digits, ISO 13616 mod-97.
    Iban,
}

impl Validator {
    /// Lower-case name, as written in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            Validator::Cnic => "cnic",
            Validator::Card => "card",
            Validator::Iban => "iban",
        }
    }
    /// The kind of value this validator confirms.
    pub fn kind(self) -> PiiKind {
        match self {
            Validator::Cnic => PiiKind::Cnic,
            Validator::Card => PiiKind::Card,
            Validator::Iban => PiiKind::Iban,
        }
    }
    /// Runs this validator (boundaries, shape, checksum, issuer; not the context keywords).
    /// True when the value carries a checksum (Luhn, mod 97), so nearly every random digit run
    /// of the right length is rejected before its context is looked at.
    pub fn has_check_digits(self) -> bool {
        match self {
            Validator::Cnic => false,
            Validator::Card | Validator::Iban => true,
        }
    }

    pub fn run(self, c: &Candidate<'_>, schemes: &CardSchemes) -> Result<PiiValue, Reject> {
        match self {
            Validator::Cnic => cnic(c),
            Validator::Card => card(c, schemes),
            Validator::Iban => iban(c),
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
    /// IBAN failing the ISO 13616 mod-97 check.
    Checksum,
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
        Reject::Checksum,
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
            Reject::Checksum => "checksum",
        }
    }
}

/// A hit and its surroundings: `bytes[..start]` before, `bytes[start..end]` the hit,
/// `bytes[end..]` after (validators look at most at [`AFTER_BYTES`] of them, context keywords
/// at the rule's `window_after`).
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
    /// Up to `window` bytes immediately after the hit (fewer if the view ends sooner).
    pub fn after_context(&self, window: usize) -> &'a [u8] {
        &self.bytes[self.end..self.bytes.len().min(self.end.saturating_add(window))]
    }
}

fn is_digit(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_digit())
}

/// True if a digit touches the hit on either side.
pub(crate) fn touches_digit(c: &Candidate<'_>) -> bool {
    is_digit(c.before(1)) || is_digit(c.after(0))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(c.after_context(1), b"c");
        assert_eq!(c.after_context(10), b"cd");
        assert!(Candidate::new(b, 6, 2).is_none());
        assert!(Candidate::new(b, 2, 9).is_none());
        assert!(!touches_digit(&c));
        assert!(touches_digit(&Candidate::new(b, 3, 6).unwrap()));
    }

    #[test]
    fn reject_index_dense() {
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
