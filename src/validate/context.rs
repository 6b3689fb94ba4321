//! Context keywords: words near a value that make it more likely to be what it looks like
//! (`cnic: 3520212345671`, `3520212345671 (CNIC)`, `شناختی کارڈ 3520212345671`).
//!
//! Matching rules, chosen so that a keyword vouches for the right number and only for it:
//! - ASCII letters compare case-insensitively; other bytes (Urdu, punctuation) exactly.
//! - In a keyword, a space, `_` or `-` matches any one of space, `_` or `-`, so `id card`
//!   also finds `ID_Card` and `id-card`.
//! - A keyword that begins (ends) with an ASCII letter must begin (end) at a word boundary: the
//!   neighbouring byte is not an ASCII letter, or the keyword starts (ends) at a lower-to-upper
//!   case change (`userCnic`, `cardNumber`). So `nic` is not found inside `clinic`, while `cnic=`,
//!   `"national_id":`, `CNIC No.` and `card_number` work. Keywords in other scripts are plain
//!   byte substrings.
//! - Before a value: the keyword must lie entirely in the window, with no ASCII digit between it
//!   and the value (in `cnic: 35202-1234567-1,"ts":1732212345678` the keyword belongs to the
//!   CNIC, not to the timestamp after it).
//! - After a value: likewise no digit between the value and the keyword, and the keyword must not
//!   be a label for what follows it: if the next byte after it (skipping spaces, quotes and
//!   `_ . #`) is `:`, `=` or a digit, it names the next value (`1732212345678,"cnic":"…"`).
//!
//! Nothing here allocates after [`Keywords::new`].

use super::Candidate;

/// One compiled keyword.
#[derive(Debug, Clone)]
struct Keyword {
    /// ASCII-lowercased bytes.
    bytes: Box<[u8]>,
    /// First byte is an ASCII letter: a word boundary is required before it.
    bound_start: bool,
    /// Last byte is an ASCII letter: a word boundary is required after it.
    bound_end: bool,
}

/// A rule's compiled context keywords.
#[derive(Clone, Default)]
pub struct Keywords {
    list: Vec<Keyword>,
    /// For each haystack byte, the keywords (indices into `list`) whose first byte accepts it,
    /// by the same rule as [`Keyword::matches_at`]. Most bytes start no keyword, so the search
    /// skips them after one lookup instead of comparing every keyword at every position (the
    /// search runs for every digit-run hit, and was a quarter of all work on digit-heavy JSON).
    /// Invariant: empty, or 256 entries.
    starts: Vec<Vec<u32>>,
    /// Bit `h` set when `starts[h]` is not empty: a byte that starts no keyword costs one test.
    can_start: [u64; 4],
}

impl std::fmt::Debug for Keywords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keywords({})", self.list.len())
    }
}

fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'_' | b'-')
}

/// True if position `i` of `hay` (between `hay[i-1]` and `hay[i]`) is a word boundary. The
/// edges of `hay` count as boundaries; callers pass one byte beyond the window on the far side
/// when they have it, so that a keyword at the window's edge is still checked (`clinic`).
fn boundary(hay: &[u8], i: usize) -> bool {
    if i == 0 || i >= hay.len() {
        return true;
    }
    let (a, b) = (hay[i - 1], hay[i]);
    !a.is_ascii_alphabetic() || !b.is_ascii_alphabetic() || (a.is_ascii_lowercase() && b.is_ascii_uppercase())
}

impl Keyword {
    fn matches_at(&self, hay: &[u8], i: usize) -> bool {
        let k = &self.bytes;
        i + k.len() <= hay.len()
            && hay[i..i + k.len()].iter().zip(k.iter()).all(|(&h, &n)| {
                if is_sep(n) {
                    is_sep(h)
                } else {
                    h.to_ascii_lowercase() == n
                }
            })
            && (!self.bound_start || boundary(hay, i))
            && (!self.bound_end || boundary(hay, i + k.len()))
    }
}

impl Keywords {
    /// Compiles `words` (empty or blank entries are skipped; the rule loader rejects them).
    pub fn new<S: AsRef<str>>(words: &[S]) -> Keywords {
        let list = words
            .iter()
            .map(|w| w.as_ref().as_bytes())
            .filter(|w| !w.iter().all(u8::is_ascii_whitespace))
            .map(|w| Keyword {
                bytes: w.to_ascii_lowercase().into_boxed_slice(),
                bound_start: w[0].is_ascii_alphabetic(),
                bound_end: w[w.len() - 1].is_ascii_alphabetic(),
            })
            .collect::<Vec<Keyword>>();
        let starts = (0..=255u8)
            .map(|h| {
                let accepts = |k: &Keyword| {
                    let n = k.bytes[0];
                    if is_sep(n) {
                        is_sep(h)
                    } else {
                        h.to_ascii_lowercase() == n
                    }
                };
                (0..list.len() as u32).filter(|&i| accepts(&list[i as usize])).collect()
            })
            .collect::<Vec<Vec<u32>>>();
        let mut can_start = [0u64; 4];
        for (h, ks) in starts.iter().enumerate() {
            if !ks.is_empty() {
                can_start[h / 64] |= 1 << (h % 64);
            }
        }
        Keywords {
            list,
            starts,
            can_start,
        }
    }

    /// True if there are no keywords.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Each keyword as a Hyperscan expression (to be compiled caseless) that matches every
    /// occurrence [`Keywords::before`] and [`Keywords::after`] can accept, and possibly more:
    /// ASCII letters compare caselessly, a separator is any of space, `_` or `-`, every other
    /// byte is itself; word boundaries are left to the exact search. The matcher uses it to skip
    /// that search when no keyword occurs near a hit.
    pub fn prefilter_expressions(&self) -> impl Iterator<Item = String> + '_ {
        self.list.iter().map(|k| {
            let mut e = String::with_capacity(k.bytes.len() * 4);
            for &b in k.bytes.iter() {
                if is_sep(b) {
                    e.push_str("[ _\\-]");
                } else if b.is_ascii_alphanumeric() {
                    e.push(char::from(b));
                } else {
                    e.push_str(&format!("\\x{b:02x}"));
                }
            }
            e
        })
    }

    /// True if some keyword occurrence in `hay[from..]`, given as (start, end), satisfies `accept`.
    fn any(&self, hay: &[u8], from: usize, mut accept: impl FnMut(usize, usize) -> bool) -> bool {
        debug_assert!(self.list.is_empty() || self.starts.len() == 256);
        if self.list.is_empty() {
            return false;
        }
        for (i, &h) in hay.iter().enumerate().skip(from) {
            let h = usize::from(h);
            if self.can_start[h / 64] & (1 << (h % 64)) == 0 {
                continue;
            }
            for &k in &self.starts[h] {
                let k = &self.list[k as usize];
                if k.matches_at(hay, i) && accept(i, i + k.bytes.len()) {
                    return true;
                }
            }
        }
        false
    }

    /// True if a keyword lies entirely within the `window` bytes before the hit, with no ASCII
    /// digit between it and the hit. Looks at one more byte, if the candidate has it, for the
    /// word boundary at the window's edge.
    pub fn before(&self, c: &Candidate<'_>, window: usize) -> bool {
        let ctx = c.context(window + 1);
        let edge = usize::from(ctx.len() > window);
        let from = ctx
            .iter()
            .rposition(u8::is_ascii_digit)
            .map_or(edge, |i| (i + 1).max(edge));
        self.any(ctx, from, |_, _| true)
    }

    /// True if a keyword lies entirely within the `window` bytes after the hit, with no ASCII
    /// digit between the hit and it, and is not a label for a following value (see the module
    /// documentation). Looks at one more byte, if the candidate has it, for the word boundary
    /// at the window's edge; looks at nothing the candidate does not hold.
    pub fn after(&self, c: &Candidate<'_>, window: usize) -> bool {
        let ctx = c.after_context(window + 1);
        let upto = ctx.iter().position(u8::is_ascii_digit).unwrap_or(ctx.len());
        // The keyword must end inside the window; the byte beyond only decides the boundary.
        let hay = &ctx[..upto.min(ctx.len())];
        self.any(hay, 0, |_, end| end <= window && !labels_next(&ctx[end..]))
    }
}

/// True if `rest` (the bytes after a keyword) starts, after spaces, quotes and `_ . #`, with an
/// assignment or a digit: the keyword names the next value, not the one before it.
fn labels_next(rest: &[u8]) -> bool {
    rest.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'"' | b'\'' | b'_' | b'.' | b'#'))
        .is_some_and(|&b| b == b':' || b == b'=' || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CNIC: &[&str] = &["cnic", "nic", "identity card", "national_id", "شناختی کارڈ"];

    /// The candidate is the first run of 13 digits in `s`.
    fn at(s: &str) -> Candidate<'_> {
        let b = s.as_bytes();
        let start = (0..b.len())
            .find(|&i| b[i..].len() >= 13 && b[i..i + 13].iter().all(u8::is_ascii_digit))
            .expect("13 digits");
        Candidate::new(b, start, start + 13).unwrap()
    }

    fn before(s: &str) -> bool {
        Keywords::new(CNIC).before(&at(s), 48)
    }
    fn after(s: &str) -> bool {
        Keywords::new(CNIC).after(&at(s), 32)
    }

    #[test]
    fn word_boundaries_before() {
        assert!(before("cnic=3520212345671"));
        assert!(before("{\"national_id\":\"3520212345671\"}"));
        assert!(before("CNIC No. 3520212345671"));
        assert!(before("NIC: 3520212345671"));
        assert!(before("userCnic=3520212345671"));
        assert!(!before("Identity  Card 3520212345671")); // two spaces: a keyword space matches one
        assert!(before("identity-card 3520212345671"));
        assert!(before("ID: x; Identity_Card: 3520212345671"));
        assert!(!before("clinic 3520212345671"));
        assert!(!before("cnicx 3520212345671"));
        assert!(!before("technical 3520212345671"));
        assert!(!before("order 3520212345671"));
        assert!(!before("CNICNO 3520212345671"));
    }

    #[test]
    fn digits_between_keyword_and_value_break_the_link() {
        assert!(!before("cnic: 35202-1234567-1,\"ts\":1732212345678"));
        assert!(!before("cnic 5, ts 1732212345678"));
        assert!(after("1732212345678 (CNIC)"));
        assert!(!after("1732212345678 7 cnic"));
    }

    #[test]
    fn keyword_after_value_unless_it_labels_the_next() {
        assert!(after("3520212345671 (CNIC)"));
        assert!(after("3520212345671 is my cnic."));
        assert!(after("3520212345671 | National_ID |"));
        assert!(after("3520212345671\tNIC"));
        assert!(!after("{\"ts\":1732212345678,\"cnic\":\"3520212345671\"}"));
        assert!(!after("ts=1732212345678&cnic=x"));
        assert!(!after("1732212345678 cnic 3520212345671"));
        assert!(!after("1732212345678 clinic"));
        assert!(!after("1732212345678 and nothing else here"));
    }

    #[test]
    fn urdu_keywords_are_substrings_either_side() {
        assert!(before("شناختی کارڈ نمبر 3740512345679"));
        assert!(before("آپ کاشناختی کارڈ3740512345679"));
        assert!(after("3740512345679 شناختی کارڈ"));
    }

    #[test]
    fn windows_bound_the_search() {
        let k = Keywords::new(CNIC);
        let s = "cnic:    3520212345671";
        assert!(k.before(&at(s), 9));
        assert!(!k.before(&at(s), 8), "keyword must fit entirely inside the window");
        let s = "3520212345671 ...... cnic";
        assert!(k.after(&at(s), 25 - 13));
        assert!(!k.after(&at(s), 25 - 14));
        // At the window's edge the byte beyond still decides the word boundary.
        assert!(!k.after(&at("3520212345671 ...... nicx"), 11));
        assert!(k.after(&at("3520212345671 ...... nic."), 11));
        assert!(!k.before(&at("clinic    3520212345671"), 7));
        assert!(Keywords::new(&[" "]).is_empty());
        assert!(!Keywords::new(&[" "]).before(&at("cnic 3520212345671"), 48));
    }

    #[test]
    fn keywords_ending_in_punctuation_need_no_boundary_there() {
        let k = Keywords::new(&["cc#"]);
        assert!(k.before(&at("cc#3520212345671"), 48));
        assert!(!k.before(&at("acc#3520212345671"), 48));
    }
}

#[cfg(test)]
mod oracle {
    use super::*;
    use proptest::prelude::*;

    /// The obviously-correct search: every keyword at every position.
    fn slow_any(k: &Keywords, hay: &[u8], from: usize, accept: impl Fn(usize, usize) -> bool) -> bool {
        (from..hay.len()).any(|i| {
            k.list
                .iter()
                .any(|kw| kw.matches_at(hay, i) && accept(i, i + kw.bytes.len()))
        })
    }

    proptest! {
        #[test]
        fn first_byte_index_finds_what_a_full_search_finds(
            hay in proptest::collection::vec(
                prop_oneof![
                    Just(b' '), Just(b'_'), Just(b'-'), Just(b'C'), Just(b'c'), Just(b'n'), Just(b'I'),
                    Just(b'i'), Just(b'd'), Just(b'a'), Just(b'r'), Just(b'p'), Just(b'N'), Just(b'1'),
                    Just(0xdb), Just(0x8c), any::<u8>()
                ],
                0..80,
            ),
            from in 0usize..8,
            max_end in 0usize..80,
        ) {
            let words = ["cnic", "nic", "id card", "national id", "card", "cc num", "pan", "-x", "شناختی کارڈ"];
            let k = Keywords::new(&words);
            let accept = |_: usize, end: usize| end <= max_end;
            prop_assert_eq!(k.any(&hay, from, accept), slow_any(&k, &hay, from, accept));
        }
    }
}
