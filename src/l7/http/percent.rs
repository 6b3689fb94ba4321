//! Percent-decoding (RFC 3986 §2.1): one-shot for bounded strings (request target, header
//! values) and a streaming state for form bodies, where `%3` may end one piece and `3` start the
//! next. Malformed escapes (`%zz`, a trailing `%`) are kept literally, as servers do.

/// Value of an ASCII hex digit.
#[inline]
pub(super) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_at(src: &[u8], i: usize) -> Option<u8> {
    src.get(i).copied().and_then(hex_val)
}

/// Appends the percent-decoding of `src` to `out`; with `plus_space`, `+` becomes a space
/// (HTML form encoding, `application/x-www-form-urlencoded`).
pub(super) fn decode_into(src: &[u8], plus_space: bool, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < src.len() {
        let b = src[i];
        match b {
            b'%' => match (hex_at(src, i + 1), hex_at(src, i + 2)) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_space => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
}

/// Appends the decoding of a URL (request target or a URL-bearing header value) to `out`: the
/// path percent-decoded (`+` kept, as in RFC 3986 paths), the query string form-decoded (`+`
/// as space), the `?` between them kept.
pub(super) fn decode_url_into(src: &[u8], out: &mut Vec<u8>) {
    match memchr::memchr(b'?', src) {
        Some(q) => {
            decode_into(&src[..q], false, out);
            out.push(b'?');
            decode_into(&src[q + 1..], true, out);
        }
        None => decode_into(src, false, out),
    }
}

/// Streaming percent-decoder state: the `%` and at most one hex digit held back between pieces.
#[derive(Default, Clone, Copy)]
pub(super) struct PercentState {
    /// Invariant: `n <= 2`; `held[0] == b'%'` when `n >= 1`, `held[1]` is a hex digit when `n == 2`.
    held: [u8; 2],
    n: u8,
}

/// Length only: a held hex digit is content.
impl std::fmt::Debug for PercentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PercentState").field("held", &self.n).finish()
    }
}

impl PercentState {
    /// Decodes one raw byte, handing decoded bytes (zero, one or several when a malformed
    /// escape is released literally) to `emit`.
    #[inline]
    pub(super) fn push(&mut self, b: u8, plus_space: bool, mut emit: impl FnMut(u8)) {
        match self.n {
            0 => match b {
                b'%' => {
                    self.held[0] = b;
                    self.n = 1;
                }
                b'+' if plus_space => emit(b' '),
                _ => emit(b),
            },
            1 => {
                if hex_val(b).is_some() {
                    self.held[1] = b;
                    self.n = 2;
                } else {
                    self.n = 0;
                    emit(b'%');
                    self.push(b, plus_space, emit);
                }
            }
            _ => {
                debug_assert_eq!(self.n, 2);
                self.n = 0;
                match (hex_val(self.held[1]), hex_val(b)) {
                    (Some(h), Some(l)) => emit(h << 4 | l),
                    _ => {
                        emit(b'%');
                        emit(self.held[1]);
                        self.push(b, plus_space, emit);
                    }
                }
            }
        }
    }

    /// Releases a held partial escape literally (end of a field or body, or a gap).
    pub(super) fn flush(&mut self, mut emit: impl FnMut(u8)) {
        for &b in &self.held[..usize::from(self.n)] {
            emit(b);
        }
        self.n = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(pieces: &[&[u8]], plus: bool) -> Vec<u8> {
        let mut st = PercentState::default();
        let mut out = Vec::new();
        for p in pieces {
            for &b in *p {
                st.push(b, plus, |c| out.push(c));
            }
        }
        st.flush(|c| out.push(c));
        out
    }

    #[test]
    fn one_shot_and_streaming_agree() {
        let cases: [&[u8]; 7] = [b"%33%35%32+x", b"100%", b"%4", b"%zz%4g%41", b"a+b%2Bc", b"%%41", b""];
        for src in cases {
            for plus in [false, true] {
                let mut whole = Vec::new();
                decode_into(src, plus, &mut whole);
                for cut in 0..=src.len() {
                    assert_eq!(stream(&[&src[..cut], &src[cut..]], plus), whole, "cut {cut}");
                }
            }
        }
    }

    #[test]
    fn decodes_digits_and_keeps_malformed_escapes() {
        let mut out = Vec::new();
        decode_into(b"%33%35%32%30%32-%zz%4", false, &mut out);
        assert_eq!(out, b"35202-%zz%4");
        out.clear();
        decode_url_into(b"/a+b/%41?q=1+2&r=%33", &mut out);
        assert_eq!(out, b"/a+b/A?q=1 2&r=3");
    }
}
