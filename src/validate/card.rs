//! Payment card numbers: separators, digit-run boundaries, Luhn and the issuer table.
//!
//! The issuer table ([`CardSchemes`]) is data loaded from rule files (`[[card_scheme]]`), so a
//! new scheme such as PayPak can be added without a rebuild.
//!
//! Most candidates on real traffic are bare digit runs that are not cards (13-digit millisecond
//! timestamps, order numbers), so [`card`] handles an all-digit hit in one pass over its bytes
//! (Luhn sum and issuer prefix together) and keeps the separator parser for grouped forms.

use super::{touches_digit, Candidate, Reject};
use crate::pii::{digit_word, PiiKind, PiiValue, MAX_DIGITS, ONES};

/// Fewest digits in a PAN.
pub const MIN_CARD_DIGITS: usize = 13;
/// Most digits in a PAN.
pub const MAX_CARD_DIGITS: usize = MAX_DIGITS;
/// Longest issuer prefix accepted in a scheme (8-digit BINs).
pub const MAX_PREFIX_DIGITS: usize = 8;

/// `LUHN[doubled][d]`: what digit `d` adds to the Luhn sum, doubled (and reduced) or not.
const LUHN: [[u8; 10]; 2] = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [0, 2, 4, 6, 8, 1, 3, 5, 7, 9]];

/// `10^(MAX_PREFIX_DIGITS - k)` for a prefix of `k` digits: scales it to an 8-digit bound.
const PREFIX_SCALE: [u32; MAX_PREFIX_DIGITS + 1] =
    [100_000_000, 10_000_000, 1_000_000, 100_000, 10_000, 1_000, 100, 10, 1];

/// Validates a card candidate: digits with an optional single kind of separator (all spaces or
/// all dashes, only between digit groups), 13–19 digits, not part of a longer run or group,
/// Luhn-valid, and prefix plus length matching a loaded scheme.
pub fn card(c: &Candidate<'_>, schemes: &CardSchemes) -> Result<PiiValue, Reject> {
    let hit = c.hit();
    if (MIN_CARD_DIGITS..=MAX_CARD_DIGITS).contains(&hit.len()) {
        // Same checks in the same order as `grouped` (boundary, Luhn, scheme), so the reason
        // does not depend on which path ran. The boundary test comes first because it is two
        // bytes and rejects every shorter hit inside a longer run.
        if touches_digit(c) {
            if hit.iter().all(u8::is_ascii_digit) {
                return Err(Reject::Boundary);
            }
        } else if let Some(run) = DigitRun::scan(hit) {
            run.check(hit.len(), schemes)?;
            return PiiValue::new(PiiKind::Card, hit).ok_or(Reject::Shape);
        }
    }
    grouped(c, schemes)
}

/// Why [`card`] rejects a hit that is all ASCII digits (the caller knows it), told from its bytes and whether a
/// digit touches it on either side (the same checks in the same order); `None` when it would
/// accept it, or is not sure (not 13–19 bytes of digits): then ask [`card`].
#[inline]
pub(super) fn reject_digits(hit: &[u8], touches_digit: bool, schemes: &CardSchemes) -> Option<Reject> {
    if !(MIN_CARD_DIGITS..=MAX_CARD_DIGITS).contains(&hit.len()) {
        return None;
    }
    if touches_digit {
        return Some(Reject::Boundary);
    }
    DigitRun::of_digits(hit)?.check(hit.len(), schemes).err()
}

/// A run of [`MIN_CARD_DIGITS`]..=[`MAX_CARD_DIGITS`] ASCII digits, summarised eight bytes at a
/// time (SWAR): a scalar loop costs about ten instructions a digit, and this runs on every
/// card-shaped hit in the traffic.
struct DigitRun {
    /// Luhn sum of the run (mod 10 decides).
    sum: u32,
    /// Digit values (0–9 a byte) of the first eight digits, parsed only when Luhn passes (one
    /// hit in ten on a random run).
    first: u64,
}

/// Bytes 0, 2, 4, 6 of a little-endian word: the doubled digits of a word that ends an even
/// distance from the right end of the run.
const EVEN_BYTES: u64 = 0x00FF_00FF_00FF_00FF;

impl DigitRun {
    /// `None` unless the run is 13–19 bytes, all ASCII digits.
    #[inline]
    fn scan(run: &[u8]) -> Option<Self> {
        Self::summarise::<true>(run)
    }

    /// Like [`DigitRun::scan`] for bytes the caller knows to be digits (the digit-run scan
    /// found them): the digit test is skipped, a sixth of the fast path's instructions.
    #[inline]
    fn of_digits(run: &[u8]) -> Option<Self> {
        debug_assert!(run.iter().all(u8::is_ascii_digit));
        Self::summarise::<false>(run)
    }

    #[inline(always)]
    fn summarise<const CHECK_DIGITS: bool>(run: &[u8]) -> Option<Self> {
        let len = run.len();
        if !(MIN_CARD_DIGITS..=MAX_CARD_DIGITS).contains(&len) {
            return None;
        }
        // Three possibly overlapping words cover 13–19 bytes: the first and last eight, and
        // the eight before the last (the same as the first at 16 digits or fewer). Overlap is
        // harmless for the digit test; for the sum, `head` keeps only the bytes the others miss.
        let first = word(run, 0)?;
        let last = word(run, len - 8)?;
        let (mid, head_len) = if len > 16 {
            (word(run, len - 16)?, len - 16)
        } else {
            (0, len - 8)
        };
        if CHECK_DIGITS && (!digit_word(first) || !digit_word(last) || (len > 16 && !digit_word(mid))) {
            return None;
        }
        let digits = |w: u64| w - 0x30 * ONES;
        // Luhn doubles every second digit from the right: in `last` and `mid` (both end an even
        // distance from the end) the even bytes; in the head, the even bytes when `len` is even.
        let head_mask = u64::MAX >> (8 * (8 - head_len));
        let head_dbl = if len.is_multiple_of(2) { EVEN_BYTES } else { !EVEN_BYTES };
        let mut sum = luhn_word(digits(first) & head_mask, head_dbl) + luhn_word(digits(last), EVEN_BYTES);
        if len > 16 {
            sum += luhn_word(digits(mid), EVEN_BYTES);
        }
        Some(Self {
            sum,
            first: digits(first),
        })
    }

    fn luhn_ok(&self) -> bool {
        self.sum.is_multiple_of(10)
    }

    /// The checks after the boundary, in their order: Luhn, then the issuer table for a PAN of
    /// `len` digits.
    fn check(&self, len: usize, schemes: &CardSchemes) -> Result<(), Reject> {
        if !self.luhn_ok() {
            return Err(Reject::Luhn);
        }
        if !schemes.contains(len, self.prefix8()) {
            return Err(Reject::Scheme);
        }
        Ok(())
    }

    /// Value of the first [`MAX_PREFIX_DIGITS`] digits.
    fn prefix8(&self) -> u32 {
        parse8(self.first)
    }
}

/// Bytes `at..at + 8` as a little-endian word (first byte lowest).
#[inline]
fn word(run: &[u8], at: usize) -> Option<u64> {
    run.get(at..)?.first_chunk::<8>().map(|b| u64::from_le_bytes(*b))
}

/// Luhn sum of eight digit values (one a byte, 0–9; zero bytes add nothing), doubling the bytes
/// in `dbl`: a doubled `d` adds `2d`, less 9 when `d >= 5`.
#[inline]
fn luhn_word(d: u64, dbl: u64) -> u32 {
    let doubled = d & dbl;
    // 0x7B + d sets a byte's top bit exactly when d >= 5; no byte carries (0x7B + 9 < 0x100).
    let nines = (((doubled + 0x7B * ONES) >> 7) & ONES) * 9;
    // Every byte is now 0–9, so the top byte of the product is the sum of all eight.
    let per_byte = d + doubled - nines;
    (per_byte.wrapping_mul(ONES) >> 56) as u32
}

/// The number eight digit values (first digit in the lowest byte) spell, combining pairs,
/// then quads, then halves; no step overflows its lane.
#[inline]
fn parse8(d: u64) -> u32 {
    let d = (d * 10 + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
    let d = (d * 100 + (d >> 16)) & 0x0000_FFFF_0000_FFFF;
    ((d * 10_000 + (d >> 32)) & 0xFFFF_FFFF) as u32
}

/// The general parser: digit groups separated by single spaces or single dashes (one kind).
fn grouped(c: &Candidate<'_>, schemes: &CardSchemes) -> Result<PiiValue, Reject> {
    let hit = c.hit();
    let mut digits = [0u8; MAX_CARD_DIGITS];
    let mut n = 0usize;
    let mut sep: Option<u8> = None;
    let mut prev_sep = true; // true at the start: a leading separator is a shape error
    for &b in hit {
        match b {
            b'0'..=b'9' => {
                if n == MAX_CARD_DIGITS {
                    return Err(Reject::Length);
                }
                digits[n] = b;
                n += 1;
                prev_sep = false;
            }
            b' ' | b'-' => {
                if prev_sep || sep.is_some_and(|s| s != b) {
                    return Err(Reject::Shape);
                }
                sep = Some(b);
                prev_sep = true;
            }
            _ => return Err(Reject::Shape),
        }
    }
    if prev_sep {
        // empty, or a trailing separator
        return Err(if n == 0 { Reject::Length } else { Reject::Shape });
    }
    if n < MIN_CARD_DIGITS {
        return Err(Reject::Length);
    }
    if touches_digit(c) {
        return Err(Reject::Boundary);
    }
    if let Some(s) = sep {
        let digit_sep_before = c.before(1) == Some(s) && c.before(2).is_some_and(|b| b.is_ascii_digit());
        let sep_digit_after = c.after(0) == Some(s) && c.after(1).is_some_and(|b| b.is_ascii_digit());
        if digit_sep_before || sep_digit_after {
            return Err(Reject::Boundary);
        }
    }
    let digits = &digits[..n];
    let run = DigitRun::scan(digits).ok_or(Reject::Shape)?; // 13-19 digits: always Some
    run.check(n, schemes)?;
    PiiValue::new(PiiKind::Card, digits).ok_or(Reject::Shape)
}

/// Luhn (mod 10) check over ASCII digits. False for an empty slice or a non-digit.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut dbl = digits.len().is_multiple_of(2);
    let mut sum = 0u32;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return false;
        }
        sum += u32::from(LUHN[usize::from(dbl)][usize::from(d)]);
        dbl = !dbl;
    }
    sum.is_multiple_of(10)
}

/// Errors in a `[[card_scheme]]` entry; the rules loader adds the file and scheme name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemeError {
    /// `name` is empty.
    #[error("scheme name is empty: give it a name such as \"visa\"")]
    EmptyName,
    /// `prefixes` is empty.
    #[error("no prefixes: list at least one, e.g. prefixes = [\"4\"]")]
    NoPrefixes,
    /// `lengths` is empty.
    #[error("no lengths: list the PAN lengths, e.g. lengths = [16]")]
    NoLengths,
    /// A prefix or range that is not 1–8 digits, or a range whose ends differ in length or are reversed.
    #[error("bad prefix {0:?}: use 1-8 digits (\"4\") or an inclusive range of equal-length prefixes (\"2221-2720\")")]
    BadPrefix(String),
    /// A length outside 13–19.
    #[error("bad length {0}: card numbers have 13 to 19 digits")]
    BadLength(u32),
}

/// An inclusive range of equal-length numeric prefixes, e.g. `2221-2720`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PrefixRange {
    /// Invariant: `lo <= hi`, both below `10^digits`.
    lo: u32,
    hi: u32,
    /// Invariant: `1 <= digits <= MAX_PREFIX_DIGITS`.
    digits: u8,
}

impl PrefixRange {
    fn parse(s: &str) -> Result<Self, SchemeError> {
        let bad = || SchemeError::BadPrefix(s.to_string());
        let (a, b) = match s.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (s.trim(), s.trim()),
        };
        let ok = |p: &str| (1..=MAX_PREFIX_DIGITS).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
        if !ok(a) || !ok(b) || a.len() != b.len() {
            return Err(bad());
        }
        let lo: u32 = a.parse().map_err(|_| bad())?;
        let hi: u32 = b.parse().map_err(|_| bad())?;
        if lo > hi {
            return Err(bad());
        }
        Ok(Self {
            lo,
            hi,
            digits: a.len() as u8,
        })
    }

    fn contains(&self, pan: &[u8]) -> bool {
        let k = usize::from(self.digits);
        if pan.len() < k {
            return false;
        }
        let v = pan[..k].iter().fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'));
        (self.lo..=self.hi).contains(&v)
    }

    /// The range as bounds on a PAN's first [`MAX_PREFIX_DIGITS`] digits: `4` becomes
    /// `40000000..=49999999`, so one comparison pair decides whatever the prefix length.
    fn scaled(&self) -> PrefixBounds {
        let scale = PREFIX_SCALE[usize::from(self.digits)];
        let (lo8, hi8) = (self.lo * scale, self.hi * scale + (scale - 1));
        debug_assert!(lo8 <= hi8 && hi8 < PREFIX_SCALE[0]);
        PrefixBounds { lo8, hi8 }
    }
}

/// Inclusive bounds on the value of a PAN's first 8 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PrefixBounds {
    /// Invariant: `lo8 <= hi8 < 10^8`.
    lo8: u32,
    hi8: u32,
}

/// One issuer scheme: prefixes and allowed PAN lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardScheme {
    name: String,
    prefixes: Vec<PrefixRange>,
    /// Bit `n` set: a PAN of `n` digits is allowed. Invariant: only bits 13..=19.
    lengths: u32,
}

impl CardScheme {
    /// Builds a scheme from rule-file strings: prefixes `"4"` or `"2221-2720"`, lengths 13–19.
    pub fn new<S: AsRef<str>>(name: &str, prefixes: &[S], lengths: &[u32]) -> Result<Self, SchemeError> {
        if name.trim().is_empty() {
            return Err(SchemeError::EmptyName);
        }
        if prefixes.is_empty() {
            return Err(SchemeError::NoPrefixes);
        }
        if lengths.is_empty() {
            return Err(SchemeError::NoLengths);
        }
        let prefixes = prefixes
            .iter()
            .map(|p| PrefixRange::parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut mask = 0u32;
        for &l in lengths {
            if !(MIN_CARD_DIGITS as u32..=MAX_CARD_DIGITS as u32).contains(&l) {
                return Err(SchemeError::BadLength(l));
            }
            mask |= 1 << l;
        }
        Ok(Self {
            name: name.to_string(),
            prefixes,
            lengths: mask,
        })
    }
    /// The scheme's name, e.g. `visa`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// True if the PAN's length and prefix fit this scheme.
    pub fn matches(&self, pan: &[u8]) -> bool {
        pan.len() <= MAX_CARD_DIGITS
            && self.lengths & (1 << pan.len()) != 0
            && self.prefixes.iter().any(|p| p.contains(pan))
    }
}

/// The loaded issuer table, in load order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardSchemes {
    schemes: Vec<CardScheme>,
    /// `by_len[n - MIN_CARD_DIGITS]`: every prefix range of every scheme allowing `n` digits, as
    /// (8-digit bounds, index into `schemes`), in load order so the first hit is the first
    /// matching scheme. Invariant: holds exactly the ranges of `schemes`; `push`, the only
    /// method that adds a scheme, extends both.
    by_len: [Vec<(PrefixBounds, usize)>; MAX_CARD_DIGITS - MIN_CARD_DIGITS + 1],
}

impl CardSchemes {
    /// A table of the given schemes.
    pub fn new(schemes: Vec<CardScheme>) -> Self {
        let mut table = Self::default();
        for s in schemes {
            table.push(s);
        }
        table
    }
    /// Appends a scheme.
    pub fn push(&mut self, s: CardScheme) {
        let idx = self.schemes.len();
        for (i, ranges) in self.by_len.iter_mut().enumerate() {
            if s.lengths & (1 << (i + MIN_CARD_DIGITS)) != 0 {
                ranges.extend(s.prefixes.iter().map(|p| (p.scaled(), idx)));
            }
        }
        self.schemes.push(s);
    }
    /// The schemes, in load order.
    pub fn iter(&self) -> impl Iterator<Item = &CardScheme> {
        self.schemes.iter()
    }
    /// Number of schemes.
    pub fn len(&self) -> usize {
        self.schemes.len()
    }
    /// True if no scheme is loaded (the card validator then rejects everything).
    pub fn is_empty(&self) -> bool {
        self.schemes.is_empty()
    }
    /// The first scheme matching the PAN (normalised ASCII digits; for other bytes the answer
    /// is unspecified).
    pub fn lookup(&self, pan: &[u8]) -> Option<&CardScheme> {
        if !(MIN_CARD_DIGITS..=MAX_CARD_DIGITS).contains(&pan.len()) {
            return None;
        }
        let prefix8 = pan[..MAX_PREFIX_DIGITS].iter().fold(0u32, |acc, &b| {
            acc.wrapping_mul(10).wrapping_add(u32::from(b.wrapping_sub(b'0')))
        });
        self.find(pan.len(), prefix8).map(|i| &self.schemes[i])
    }
    /// True if some scheme allows `len` digits and a PAN whose first 8 digits are `prefix8`.
    fn contains(&self, len: usize, prefix8: u32) -> bool {
        self.find(len, prefix8).is_some()
    }
    fn find(&self, len: usize, prefix8: u32) -> Option<usize> {
        let ranges = self.by_len.get(len.checked_sub(MIN_CARD_DIGITS)?)?;
        ranges
            .iter()
            .find(|(b, _)| (b.lo8..=b.hi8).contains(&prefix8))
            .map(|&(_, i)| i)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The bundled table, built in code so validator tests do not depend on rule files.
    pub(crate) fn schemes() -> CardSchemes {
        let s = |n: &str, p: &[&str], l: &[u32]| CardScheme::new(n, p, l).unwrap();
        CardSchemes::new(vec![
            s("visa", &["4"], &[13, 16, 19]),
            s("mastercard", &["51-55", "2221-2720"], &[16]),
            s("amex", &["34", "37"], &[15]),
            s("discover", &["6011", "644-649", "65"], &[16, 17, 18, 19]),
            s("unionpay", &["62"], &[16, 17, 18, 19]),
            s("jcb", &["3528-3589"], &[16, 17, 18, 19]),
            s("diners", &["300-305", "36", "38-39"], &[14, 15, 16, 17, 18, 19]),
        ])
    }

    fn at(s: &str, start: usize, end: usize) -> Result<PiiValue, Reject> {
        card(&Candidate::new(s.as_bytes(), start, end).unwrap(), &schemes())
    }
    fn whole(s: &str) -> Result<PiiValue, Reject> {
        card(&Candidate::whole(s.as_bytes()), &schemes())
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid(b"4111111111111111"));
        assert!(luhn_valid(b"79927398713"));
        assert!(!luhn_valid(b"4111111111111112"));
        assert!(!luhn_valid(b""));
        assert!(!luhn_valid(b"41111111111x1111"));
        assert!(luhn_valid(b"0"));
    }

    #[test]
    fn public_test_pans() {
        for (pan, scheme) in [
            ("4111111111111111", "visa"),
            ("4222222222222", "visa"),
            ("5555555555554444", "mastercard"),
            ("2223003122003222", "mastercard"),
            ("378282246310005", "amex"),
            ("371449635398431", "amex"),
            ("6011111111111117", "discover"),
            ("6221261111113245", "unionpay"),
            ("3530111333300000", "jcb"),
            ("36227206271667", "diners"),
            ("30569309025904", "diners"),
        ] {
            let v = whole(pan).unwrap_or_else(|e| panic!("{scheme}: {e:?}"));
            assert_eq!(schemes().lookup(pan.as_bytes()).unwrap().name(), scheme);
            assert_eq!(v.kind(), PiiKind::Card);
        }
        assert_eq!(whole("4111111111111111").unwrap().masked(), "411111******1111");
    }

    #[test]
    fn grouped_forms() {
        assert!(whole("4111 1111 1111 1111").is_ok());
        assert!(whole("4111-1111-1111-1111").is_ok());
        assert!(whole("3782 822463 10005").is_ok());
        assert!(whole("3056-930902-5904").is_ok());
        assert_eq!(whole("4111 1111-1111 1111").unwrap_err(), Reject::Shape);
        assert_eq!(whole("4111  1111 1111 1111").unwrap_err(), Reject::Shape);
        assert_eq!(whole(" 4111 1111 1111 1111").unwrap_err(), Reject::Shape);
        assert_eq!(whole("4111 1111 1111 1111 ").unwrap_err(), Reject::Shape);
        assert_eq!(whole("4111.1111.1111.1111").unwrap_err(), Reject::Shape);
    }

    #[test]
    fn decoys() {
        assert_eq!(whole("4111111111111112").unwrap_err(), Reject::Luhn);
        // 13-digit millisecond timestamp: no 13-digit scheme starts with 17.
        let ts = "1732212345678";
        assert!(matches!(whole(ts).unwrap_err(), Reject::Luhn | Reject::Scheme));
        // Luhn-valid but unknown issuer / wrong length for the issuer.
        assert_eq!(whole("9999999999999995").unwrap_err(), Reject::Scheme);
        assert!(luhn_valid(b"411111111111116"));
        assert_eq!(whole("411111111111116").unwrap_err(), Reject::Scheme);
        assert_eq!(whole("411111111111").unwrap_err(), Reject::Length);
        assert_eq!(whole("41111111111111111111").unwrap_err(), Reject::Length);
        assert_eq!(whole("").unwrap_err(), Reject::Length);
    }

    #[test]
    fn boundaries() {
        // Inside a 20-digit run.
        assert_eq!(at("41111111111111110", 0, 16).unwrap_err(), Reject::Boundary);
        assert_eq!(at("04111111111111111", 1, 17).unwrap_err(), Reject::Boundary);
        // A grouped number continuing with another group.
        assert_eq!(at("4111 1111 1111 1111 1", 0, 19).unwrap_err(), Reject::Boundary);
        assert_eq!(at("1 4111 1111 1111 1111", 2, 21).unwrap_err(), Reject::Boundary);
        assert_eq!(at("1-4111-1111-1111-1111", 2, 21).unwrap_err(), Reject::Boundary);
        // A different separator next to it is fine; so is the end of the data.
        assert!(at("1-4111 1111 1111 1111 x", 2, 21).is_ok());
        assert!(at("4111 1111 1111 1111-", 0, 19).is_ok());
        assert!(at("4111 1111 1111 1111 ", 0, 19).is_ok());
        assert!(at("x4111111111111111x", 1, 17).is_ok());
        // Plain runs only check the adjacent byte.
        assert!(at("1 4111111111111111 2", 2, 18).is_ok());
    }

    #[test]
    fn scheme_parsing() {
        assert!(CardScheme::new("x", &["2221-2720"], &[16]).is_ok());
        for bad in ["", "a", "12-1", "2720-2221", "123456789", "1-"] {
            assert_eq!(
                CardScheme::new("x", &[bad], &[16]).unwrap_err(),
                SchemeError::BadPrefix(bad.to_string())
            );
        }
        assert_eq!(
            CardScheme::new("x", &["4"], &[12]).unwrap_err(),
            SchemeError::BadLength(12)
        );
        assert_eq!(
            CardScheme::new("x", &["4"], &[20]).unwrap_err(),
            SchemeError::BadLength(20)
        );
        assert_eq!(
            CardScheme::new::<&str>("x", &[], &[16]).unwrap_err(),
            SchemeError::NoPrefixes
        );
        assert_eq!(CardScheme::new("x", &["4"], &[]).unwrap_err(), SchemeError::NoLengths);
        assert_eq!(CardScheme::new(" ", &["4"], &[16]).unwrap_err(), SchemeError::EmptyName);
        let mc = CardScheme::new("mc", &["2221-2720"], &[16]).unwrap();
        assert!(mc.matches(b"2221000000000009"));
        assert!(mc.matches(b"2720990000000000"));
        assert!(!mc.matches(b"2220990000000000"));
        assert!(!mc.matches(b"2721000000000000"));
        assert!(!mc.matches(b"222100000000000"));
    }

    /// The validator as it was before the one-pass fast path: the oracle the property test
    /// compares against. Kept verbatim apart from names.
    mod oracle {
        use super::super::{touches_digit, Candidate, CardSchemes, PiiKind, PiiValue, Reject};
        use super::super::{MAX_CARD_DIGITS, MIN_CARD_DIGITS};

        pub(super) fn card(c: &Candidate<'_>, schemes: &CardSchemes) -> Result<PiiValue, Reject> {
            let hit = c.hit();
            let mut digits = [0u8; MAX_CARD_DIGITS];
            let mut n = 0usize;
            let mut sep: Option<u8> = None;
            let mut prev_sep = true;
            for &b in hit {
                match b {
                    b'0'..=b'9' => {
                        if n == MAX_CARD_DIGITS {
                            return Err(Reject::Length);
                        }
                        digits[n] = b;
                        n += 1;
                        prev_sep = false;
                    }
                    b' ' | b'-' => {
                        if prev_sep || sep.is_some_and(|s| s != b) {
                            return Err(Reject::Shape);
                        }
                        sep = Some(b);
                        prev_sep = true;
                    }
                    _ => return Err(Reject::Shape),
                }
            }
            if prev_sep {
                return Err(if n == 0 { Reject::Length } else { Reject::Shape });
            }
            if n < MIN_CARD_DIGITS {
                return Err(Reject::Length);
            }
            if touches_digit(c) {
                return Err(Reject::Boundary);
            }
            if let Some(s) = sep {
                let digit_sep_before = c.before(1) == Some(s) && c.before(2).is_some_and(|b| b.is_ascii_digit());
                let sep_digit_after = c.after(0) == Some(s) && c.after(1).is_some_and(|b| b.is_ascii_digit());
                if digit_sep_before || sep_digit_after {
                    return Err(Reject::Boundary);
                }
            }
            let digits = &digits[..n];
            if !luhn_valid(digits) {
                return Err(Reject::Luhn);
            }
            if lookup(schemes, digits).is_none() {
                return Err(Reject::Scheme);
            }
            PiiValue::new(PiiKind::Card, digits).ok_or(Reject::Shape)
        }

        pub(super) fn luhn_valid(digits: &[u8]) -> bool {
            if digits.is_empty() {
                return false;
            }
            let mut sum = 0u32;
            for (i, &b) in digits.iter().rev().enumerate() {
                if !b.is_ascii_digit() {
                    return false;
                }
                let mut d = u32::from(b - b'0');
                if i % 2 == 1 {
                    d *= 2;
                    if d > 9 {
                        d -= 9;
                    }
                }
                sum += d;
            }
            sum.is_multiple_of(10)
        }

        /// The linear scan over schemes and their unscaled prefix ranges.
        pub(super) fn lookup<'a>(schemes: &'a CardSchemes, pan: &[u8]) -> Option<&'a super::super::CardScheme> {
            schemes.iter().find(|s| s.matches(pan))
        }
    }

    /// The bundled `rules/card_schemes.toml`, plus two schemes with 6- and 8-digit BINs (one
    /// overlapping Visa, so first-match order matters) to exercise prefix scaling.
    /// Loaded once: the rule directory takes far longer to load than a case takes to run.
    fn loaded_schemes() -> &'static CardSchemes {
        static TABLE: std::sync::OnceLock<CardSchemes> = std::sync::OnceLock::new();
        TABLE.get_or_init(|| {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
            let rs = crate::rules::RuleSet::load_dir(&dir).unwrap();
            let mut t = rs.schemes().clone();
            t.push(CardScheme::new("bin6", &["220012-220099", "999999"], &[16, 19]).unwrap());
            t.push(CardScheme::new("bin8", &["41111111", "60454500-60454599"], &[16]).unwrap());
            t
        })
    }

    use proptest::prelude::*;

    /// Bytes that may sit next to a hit: digits, letters, separators, or nothing.
    fn neighbours() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![b'0'..=b'9', Just(b'x'), Just(b' '), Just(b'-'), Just(b'.')],
            0..3,
        )
    }

    /// A candidate's bytes and hit range: a digit string of 10-22 digits, often starting with
    /// a real scheme prefix (often one end of its range) and often made Luhn-valid, grouped with spaces, dashes or a mix,
    /// sometimes with a shape fault or an arbitrary byte, between random neighbours.
    fn card_input(prefixes: Vec<PrefixRange>) -> impl Strategy<Value = (Vec<u8>, usize, usize)> {
        let n = prefixes.len();
        (
            (0..n + 1, any::<u32>(), 0u8..4),
            10usize..=22,
            proptest::collection::vec(0u8..10, 22),
            any::<bool>(),
            (
                0u8..5,
                proptest::collection::vec(1usize..=6, 22),
                0u8..12,
                any::<u8>(),
                any::<u8>(),
            ),
            neighbours(),
            neighbours(),
        )
            .prop_map(
                move |((pi, pv, fill_mode), len, fill, fix_luhn, (sep, groups, quirk, qpos, qbyte), before, after)| {
                    let mut digits: Vec<u8> = Vec::with_capacity(len);
                    if let Some(p) = prefixes.get(pi) {
                        // Range ends often, so off-by-one bounds show.
                        let v = match pv % 4 {
                            0 => p.lo,
                            1 => p.hi,
                            _ => p.lo + pv % (p.hi - p.lo + 1),
                        };
                        digits.extend(format!("{v:0w$}", w = usize::from(p.digits)).bytes());
                    }
                    digits.truncate(len);
                    // All zeros or all nines after the prefix reach the ends of its 8-digit bounds.
                    for &d in &fill[digits.len()..len] {
                        digits.push(match fill_mode {
                            0 => b'0',
                            1 => b'9',
                            _ => b'0' + d,
                        });
                    }
                    if fix_luhn {
                        let last = len - 1;
                        digits[last] = (b'0'..=b'9')
                            .find(|&d| {
                                digits[last] = d;
                                oracle::luhn_valid(&digits)
                            })
                            .unwrap();
                    }
                    let mut hit = Vec::new();
                    let (mut g, mut left) = (0usize, groups[0]);
                    for (i, &d) in digits.iter().enumerate() {
                        hit.push(d);
                        left -= 1;
                        if left == 0 && i + 1 < digits.len() {
                            g += 1;
                            left = groups[g];
                            match sep {
                                1 => hit.push(b' '),
                                2 => hit.push(b'-'),
                                3 => hit.push(if g % 3 == 0 { b' ' } else { b'-' }),
                                _ => {}
                            }
                        }
                    }
                    let at = usize::from(qpos) % (hit.len() + 1);
                    match quirk {
                        0 => hit.insert(0, b' '),
                        1 => hit.push(b'-'),
                        2 => hit.insert(at, b'-'),
                        3 => hit.insert(at, b'x'),
                        // Any byte in place of a digit, for the eight-at-a-time digit test.
                        4 | 5 if at < hit.len() => hit[at] = qbyte,
                        _ => {}
                    }
                    let start = before.len();
                    let end = start + hit.len();
                    ([before, hit, after].concat(), start, end)
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn card_matches_oracle((bytes, start, end) in card_input(loaded_schemes().iter().flat_map(|s| s.prefixes.clone()).collect())) {
            let schemes = loaded_schemes();
            let c = Candidate::new(&bytes, start, end).unwrap();
            prop_assert_eq!(card(&c, schemes), oracle::card(&c, schemes));
            let hit = c.hit();
            prop_assert_eq!(luhn_valid(hit), oracle::luhn_valid(hit));
            if hit.iter().all(u8::is_ascii_digit) {
                let name = |s: Option<&CardScheme>| s.map(|s| s.name().to_string());
                prop_assert_eq!(name(schemes.lookup(hit)), name(oracle::lookup(schemes, hit)));
            }
        }
    }

    #[test]
    fn oracle_input_reaches_every_outcome() {
        // The property test is only as good as its inputs: they must produce each outcome.
        let prefixes: Vec<PrefixRange> = loaded_schemes().iter().flat_map(|s| s.prefixes.clone()).collect();
        let schemes = loaded_schemes();
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = card_input(prefixes);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4000 {
            let (bytes, start, end) = proptest::strategy::ValueTree::current(&strategy.new_tree(&mut runner).unwrap());
            let c = Candidate::new(&bytes, start, end).unwrap();
            seen.insert(card(&c, schemes).err());
        }
        for r in [
            Reject::Shape,
            Reject::Length,
            Reject::Boundary,
            Reject::Luhn,
            Reject::Scheme,
        ] {
            assert!(seen.contains(&Some(r)), "no input rejected for {r:?}");
        }
        assert!(seen.contains(&None), "no input accepted");
    }
}
