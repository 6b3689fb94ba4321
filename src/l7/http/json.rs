//! Streaming JSON string-escape decoding (RFC 8259 §7): `\u0033\u0035…` becomes `35…`, so a
//! number spelled as escapes is scanned as the digits the receiving application sees.
//! Surrogate pairs are joined; a lone surrogate or malformed escape is passed on literally. Only
//! escapes change: the structure (quotes, keys, commas) passes through untouched.

use super::percent::hex_val;

/// Longest escape text held back: a surrogate pair `\uD83D\uDE00`.
const HELD: usize = 12;

/// Decoder state between pieces: the undecided escape text.
#[derive(Default, Clone, Copy)]
pub(super) struct JsonUnescape {
    /// Invariant: `n <= HELD`; `held[..n]` is a prefix of `\uXXXX` or `\uHIGH\uXXXX`.
    held: [u8; HELD],
    n: u8,
}

/// Length only: the held escape text may spell a digit.
impl std::fmt::Debug for JsonUnescape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonUnescape").field("held", &self.n).finish()
    }
}

impl JsonUnescape {
    /// Decodes `src`, handing decoded bytes to `emit` in order: runs without escapes as whole
    /// slices, decoded escapes as short slices.
    pub(super) fn feed(&mut self, src: &[u8], mut emit: impl FnMut(&[u8])) {
        let mut i = 0;
        while i < src.len() {
            if self.n == 0 {
                // Fast path: pass everything up to the next backslash in one slice.
                let run = memchr::memchr(b'\\', &src[i..]).unwrap_or(src.len() - i);
                if run > 0 {
                    emit(&src[i..i + run]);
                    i += run;
                    continue;
                }
            }
            self.step(src[i], &mut emit);
            i += 1;
        }
    }

    /// Releases held escape text literally (end of the body, or a gap).
    pub(super) fn flush(&mut self, mut emit: impl FnMut(&[u8])) {
        if self.n > 0 {
            emit(&self.held[..usize::from(self.n)]);
            self.n = 0;
        }
    }

    fn step(&mut self, b: u8, emit: &mut impl FnMut(&[u8])) {
        let n = usize::from(self.n);
        match n {
            0 => {
                if b == b'\\' {
                    self.hold(b);
                } else {
                    emit(&[b]);
                }
            }
            1 => {
                let simple = match b {
                    b'"' | b'\\' | b'/' => Some(b),
                    b'b' => Some(0x08),
                    b'f' => Some(0x0c),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    _ => None,
                };
                match (simple, b) {
                    (Some(c), _) => {
                        self.n = 0;
                        emit(&[c]);
                    }
                    (None, b'u') => self.hold(b),
                    (None, _) => {
                        self.n = 0;
                        emit(b"\\");
                        self.step(b, emit);
                    }
                }
            }
            // Collecting the hex digits of the first or the second `\uXXXX`.
            2..=5 | 8..=11 => {
                if hex_val(b).is_none() {
                    self.release_first_or_all(emit);
                    self.step(b, emit);
                    return;
                }
                self.hold(b);
                if self.n == 6 || self.n == 12 {
                    self.escape_complete(emit);
                }
            }
            // A high surrogate waits for `\u` of its low half.
            6 | 7 => {
                let want = if n == 6 { b'\\' } else { b'u' };
                if b == want {
                    self.hold(b);
                } else {
                    self.release_first_or_all(emit);
                    self.step(b, emit);
                }
            }
            _ => unreachable!("held escape text is at most {HELD} bytes"),
        }
    }

    fn hold(&mut self, b: u8) {
        debug_assert!(usize::from(self.n) < HELD);
        self.held[usize::from(self.n)] = b;
        self.n += 1;
    }

    /// A `\uXXXX` (n == 6) or a high surrogate plus `\uXXXX` (n == 12) is complete.
    fn escape_complete(&mut self, emit: &mut impl FnMut(&[u8])) {
        let unit = |h: &[u8]| h.iter().fold(0u32, |v, &d| v << 4 | u32::from(hex_val(d).unwrap_or(0)));
        if self.n == 6 {
            let u = unit(&self.held[2..6]);
            match u {
                0xD800..=0xDBFF => {} // wait for the low half
                0xDC00..=0xDFFF => self.release_first_or_all(emit),
                _ => {
                    self.n = 0;
                    emit_char(u, emit);
                }
            }
            return;
        }
        let hi = unit(&self.held[2..6]);
        let lo = unit(&self.held[8..12]);
        if (0xDC00..=0xDFFF).contains(&lo) {
            self.n = 0;
            emit_char(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), emit);
        } else {
            // The high half was lone; the second escape stands on its own.
            emit(&self.held[..6]);
            self.held.copy_within(6..12, 0);
            self.n = 6;
            self.escape_complete(emit);
        }
    }

    /// Gives up on the held text: a lone high surrogate is released and whatever followed it
    /// (a `\` or a partial `\uXX`) is kept for reprocessing; anything else is released whole.
    fn release_first_or_all(&mut self, emit: &mut impl FnMut(&[u8])) {
        let n = usize::from(self.n);
        if n > 6 {
            emit(&self.held[..6]);
            self.held.copy_within(6..n, 0);
            self.n = (n - 6) as u8;
        } else {
            emit(&self.held[..n]);
            self.n = 0;
        }
    }
}

fn emit_char(u: u32, emit: &mut impl FnMut(&[u8])) {
    let c = char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER);
    let mut buf = [0u8; 4];
    emit(c.encode_utf8(&mut buf).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&[u8]]) -> Vec<u8> {
        let mut st = JsonUnescape::default();
        let mut out = Vec::new();
        for p in pieces {
            st.feed(p, |s| out.extend_from_slice(s));
        }
        st.flush(|s| out.extend_from_slice(s));
        out
    }

    #[test]
    fn digits_escapes_and_pairs() {
        assert_eq!(run(&[br#"{"c":"\u0033\u0035\u0032"}"#]), br#"{"c":"352"}"#);
        assert_eq!(run(&[br#"a\"b\\c\/d\n\t"#]), b"a\"b\\c/d\n\t");
        assert_eq!(run(&[br"\ud83d\ude00"]), "\u{1F600}".as_bytes());
        assert_eq!(run(&[br"\u0634"]), "ش".as_bytes());
    }

    #[test]
    fn malformed_escapes_pass_literally() {
        assert_eq!(run(&[br"\q\u12x\u"]), br"\q\u12x\u");
        assert_eq!(run(&[br"\ud83dx"]), br"\ud83dx");
        assert_eq!(run(&[br"\ud83d\u0041"]), br"\ud83dA");
        assert_eq!(run(&[br"\ud83d\ud83d\ude00"]), "\\ud83d\u{1F600}".as_bytes());
        assert_eq!(run(&[br"\udc00z"]), br"\udc00z");
        assert_eq!(run(&[br"\ud83d\u00"]), br"\ud83d\u00");
        assert_eq!(run(&[br"\ud83d\\"]), b"\\ud83d\\");
    }

    #[test]
    fn every_split_gives_the_same_output() {
        let src: &[u8] = br#"{"n":"\u0034\u0032\u0031\ud83d\ude00\ud83dq\\u\u00zz","x":1}"#;
        let whole = run(&[src]);
        for a in 0..=src.len() {
            for b in a..=src.len() {
                assert_eq!(run(&[&src[..a], &src[a..b], &src[b..]]), whole, "cuts {a} {b}");
            }
        }
    }
}
