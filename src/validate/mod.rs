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
    /// True when the value carries a checksum (Luhn, mod 97), so nearly every random digit run
    /// of the right length is rejected before its context is looked at.
    pub fn has_check_digits(self) -> bool {
        match self {
            Validator::Cnic => false,
            Validator::Card | Validator::Iban => true,
        }
    }

    /// Runs this validator (boundaries, shape, checksum, issuer; not the context keywords).
    pub fn run(self, c: &Candidate<'_>, schemes: &CardSchemes) -> Result<PiiValue, Reject> {
        match self {
            Validator::Cnic => cnic(c),
            Validator::Card => card(c, schemes),
            Validator::Iban => iban(c),
        }
    }

    /// What [`Validator::run`] decides for a hit whose bytes are all ASCII digits (`hit`), given
    /// whether a digit touches it on either side, without assembling a candidate: the digit-run
    /// scan knows both for most of its hits. `None` when this cannot tell; then call `run`,
    /// which decides the same. Cards: only rejections (nearly every random run fails Luhn or
    /// the issuer table; an accepted card needs its value built anyway). CNICs: both ways, so
    /// a bare 13-digit timestamp that is only counted needs nothing else.
    #[inline]
    pub fn digits_verdict(self, hit: &[u8], touches_digit: bool, schemes: &CardSchemes) -> Option<Result<(), Reject>> {
        debug_assert!(
            hit.iter().all(u8::is_ascii_digit),
            "digits_verdict needs a run of digits"
        );
        match self {
            Validator::Card => card::reject_digits(hit, touches_digit, schemes).map(Err),
            Validator::Cnic => cnic::bare_digits(hit, touches_digit),
            Validator::Iban => None,
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

    use proptest::prelude::*;

    /// A run of 1..=25 digits (sometimes with an issuer prefix and a valid Luhn digit), with
    /// nothing, a digit or a non-digit on either side: (bytes, start, end).
    fn digit_run_input() -> impl Strategy<Value = (Vec<u8>, usize, usize)> {
        let prefix = prop::sample::select(vec![
            "", "", "1", "3", "4", "51", "34", "37", "6011", "62", "3528", "36",
        ]);
        let side = || {
            prop_oneof![
                Just(None),
                (b'0'..=b'9').prop_map(Some),
                Just(Some(b'-')),
                Just(Some(b' ')),
                Just(Some(b'x'))
            ]
        };
        let digits = (
            prefix,
            prop::collection::vec(b'0'..=b'9', 25),
            1usize..=25,
            any::<bool>(),
        );
        (side(), digits, side()).prop_map(|(before, (prefix, random, len, fix_luhn), after)| {
            let mut hit: Vec<u8> = prefix.bytes().chain(random).take(len).collect();
            if fix_luhn {
                for d in b'0'..=b'9' {
                    *hit.last_mut().expect("len >= 1") = d;
                    if luhn_valid(&hit) {
                        break;
                    }
                }
            }
            let mut bytes: Vec<u8> = before.into_iter().collect();
            let start = bytes.len();
            bytes.extend_from_slice(&hit);
            let end = bytes.len();
            bytes.extend(after);
            (bytes, start, end)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The digit-run fast path gives exactly the validator's verdict, and leaves undecided
        /// only cards the validator accepts (or of a length it does not know) and CNIC hits
        /// that are not 13 digits.
        #[test]
        fn digits_verdict_agrees_with_run((bytes, start, end) in digit_run_input()) {
            let schemes = card::tests::schemes();
            let c = Candidate::new(&bytes, start, end).unwrap();
            for v in [Validator::Cnic, Validator::Card, Validator::Iban] {
                let full = v.run(&c, &schemes).map(|_| ());
                match v.digits_verdict(c.hit(), touches_digit(&c), &schemes) {
                    Some(verdict) => prop_assert_eq!(verdict, full, "{:?}", v),
                    None if v == Validator::Card && (MIN_CARD_DIGITS..=MAX_CARD_DIGITS).contains(&(end - start)) => {
                        prop_assert_eq!(full, Ok(()))
                    }
                    None => prop_assert!(v != Validator::Cnic || end - start != CNIC_DIGITS, "a 13-digit CNIC hit is decided"),
                }
            }
        }
    }

    #[test]
    fn digits_verdict_input_reaches_every_verdict() {
        // The property test is only as good as its inputs: each verdict must come up.
        let schemes = card::tests::schemes();
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = digit_run_input();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4000 {
            let (bytes, start, end) = proptest::strategy::ValueTree::current(&strategy.new_tree(&mut runner).unwrap());
            let c = Candidate::new(&bytes, start, end).unwrap();
            let card_length = (MIN_CARD_DIGITS..=MAX_CARD_DIGITS).contains(&(end - start));
            for v in [Validator::Card, Validator::Cnic] {
                seen.insert((v, v.digits_verdict(c.hit(), touches_digit(&c), &schemes), card_length));
            }
        }
        for want in [
            (Validator::Card, None, true), // accepted
            (Validator::Card, None, false),
            (Validator::Card, Some(Err(Reject::Boundary)), true),
            (Validator::Card, Some(Err(Reject::Luhn)), true),
            (Validator::Card, Some(Err(Reject::Scheme)), true),
            (Validator::Cnic, Some(Ok(())), true),
            (Validator::Cnic, Some(Err(Reject::FirstDigit)), true),
            (Validator::Cnic, Some(Err(Reject::Boundary)), true),
        ] {
            assert!(seen.contains(&want), "no input gave {want:?}");
        }
    }

    #[test]
    fn reject_index_dense() {
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
