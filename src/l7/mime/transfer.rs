//! Streaming `Content-Transfer-Encoding` decoders (base64, quoted-printable, identity) and the
//! one charset conversion worth doing on the fly (ISO-8859-1 → UTF-8, so non-ASCII keywords
//! match). Each keeps only the bytes of an unfinished unit (a base64 quantum, an `=X` escape),
//! so a piece may end anywhere.

use memchr::memchr;

/// Decoded bytes are handed on in runs of at most this many (a stack buffer, no allocation).
const OUT: usize = 2048;

/// Value of each byte in the base64 alphabet; `SKIP` for everything else (line breaks, spaces
/// and junk are ignored, as mail clients do).
const SKIP: u8 = 0xff;
const B64: [u8; 256] = {
    let mut t = [SKIP; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    // The URL-safe alphabet shows up in the wild too; it cannot clash with the standard one.
    t[b'-' as usize] = 62;
    t[b'_' as usize] = 63;
    t
};

/// Streaming base64 decoder; line breaks and junk may fall anywhere, even inside a quantum.
#[derive(Debug, Default, Clone)]
pub(super) struct Base64 {
    quantum: [u8; 4],
    /// Invariant: `n < 4` between calls.
    n: u8,
}

impl Base64 {
    /// Decodes `input`, handing decoded runs to `out`.
    pub(super) fn decode(&mut self, input: &[u8], out: &mut dyn FnMut(&[u8])) {
        let mut buf = [0u8; OUT];
        let mut len = 0;
        for &c in input {
            let v = B64[usize::from(c)];
            if v == SKIP {
                if c != b'=' {
                    continue;
                }
                len += self.flush(&mut buf[len..]);
            } else {
                self.quantum[usize::from(self.n)] = v;
                self.n += 1;
                if self.n < 4 {
                    continue;
                }
                len += self.flush(&mut buf[len..]);
            }
            // Every flush may add up to 3 bytes, padding-terminated partial quanta included
            // (fuzz: "QQ=" repeated filled the buffer past its end).
            if len > OUT - 3 {
                out(&buf[..len]);
                len = 0;
            }
        }
        debug_assert!(self.n < 4);
        if len > 0 {
            out(&buf[..len]);
        }
    }

    /// End of the encoded data: a partial quantum (missing padding) still yields its bytes.
    pub(super) fn finish(&mut self, out: &mut dyn FnMut(&[u8])) {
        let mut buf = [0u8; 3];
        let n = self.flush(&mut buf);
        if n > 0 {
            out(&buf[..n]);
        }
    }

    /// Writes the bytes of the (possibly partial) quantum held into `buf` (at least 3 long) and
    /// empties it; returns how many.
    fn flush(&mut self, buf: &mut [u8]) -> usize {
        let q = self.quantum;
        let n = usize::from(self.n);
        self.n = 0;
        let bits = u32::from(q[0]) << 18 | u32::from(q[1]) << 12 | u32::from(q[2]) << 6 | u32::from(q[3]);
        let bytes = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        // 2 symbols carry 1 byte, 3 carry 2, 4 carry 3; a lone symbol carries none.
        let out = n.saturating_sub(1);
        buf[..out].copy_from_slice(&bytes[..out]);
        self.quantum = [0; 4];
        out
    }
}

/// State of a quoted-printable decoder between bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Qp {
    #[default]
    Text,
    /// After `=`.
    Eq,
    /// After `=` and one hex digit.
    EqHex(u8),
    /// After `=` and spaces (transport padding before a soft line break).
    EqSpace,
    /// After `=` (and maybe spaces) and CR: a soft line break.
    EqCr,
}

/// Streaming quoted-printable decoder: `=XX` escapes and soft line breaks (`=` CRLF, which can
/// fall inside a number) removed wherever the piece boundaries are.
#[derive(Debug, Default, Clone)]
pub(super) struct QuotedPrintable {
    state: Qp,
}

/// Value of a hex digit (either case).
pub(super) fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl QuotedPrintable {
    /// Decodes `input`, handing decoded runs to `out`.
    pub(super) fn decode(&mut self, input: &[u8], out: &mut dyn FnMut(&[u8])) {
        let mut i = 0;
        while i < input.len() {
            if self.state == Qp::Text {
                // Fast path: plain text up to the next `=` goes out as it is.
                match memchr(b'=', &input[i..]) {
                    Some(j) => {
                        if j > 0 {
                            out(&input[i..i + j]);
                        }
                        self.state = Qp::Eq;
                        i += j + 1;
                    }
                    None => {
                        out(&input[i..]);
                        return;
                    }
                }
                continue;
            }
            let c = input[i];
            i += 1;
            self.state = match self.state {
                Qp::Text => unreachable!("handled above"),
                Qp::Eq => match c {
                    b'\r' => Qp::EqCr,
                    b'\n' => Qp::Text,
                    b' ' | b'\t' => Qp::EqSpace,
                    b'=' => {
                        out(b"=");
                        Qp::Eq
                    }
                    _ if hex(c).is_some() => Qp::EqHex(c),
                    _ => {
                        // Not an escape: keep it literally, as mail clients do.
                        out(&[b'=', c]);
                        Qp::Text
                    }
                },
                Qp::EqHex(h) => match (hex(h), hex(c)) {
                    (Some(hi), Some(lo)) => {
                        out(&[hi << 4 | lo]);
                        Qp::Text
                    }
                    _ => {
                        out(&[b'=', h]);
                        i -= 1; // `c` is read again as text (it may start an escape itself)
                        Qp::Text
                    }
                },
                Qp::EqSpace => match c {
                    b' ' | b'\t' => Qp::EqSpace,
                    b'\r' => Qp::EqCr,
                    b'\n' => Qp::Text,
                    _ => {
                        out(b"=");
                        i -= 1;
                        Qp::Text
                    }
                },
                Qp::EqCr => {
                    if c != b'\n' {
                        // `=` CR without LF: still a soft break; the byte is text.
                        i -= 1;
                    }
                    Qp::Text
                }
            };
        }
    }

    /// End of the encoded data: a dangling `=` or `=X` is kept literally.
    pub(super) fn finish(&mut self, out: &mut dyn FnMut(&[u8])) {
        match std::mem::take(&mut self.state) {
            Qp::Eq | Qp::EqSpace => out(b"="),
            Qp::EqHex(h) => out(&[b'=', h]),
            Qp::Text | Qp::EqCr => {}
        }
    }
}

/// Converts ISO-8859-1 to UTF-8 in runs, handing them to `out`.
pub(super) fn latin1_to_utf8(input: &[u8], out: &mut dyn FnMut(&[u8])) {
    if input.is_ascii() {
        out(input);
        return;
    }
    let mut buf = [0u8; OUT];
    let mut len = 0;
    for &c in input {
        if c < 0x80 {
            buf[len] = c;
            len += 1;
        } else {
            buf[len] = 0xc0 | c >> 6;
            buf[len + 1] = 0x80 | (c & 0x3f);
            len += 2;
        }
        if len >= OUT - 2 {
            out(&buf[..len]);
            len = 0;
        }
    }
    if len > 0 {
        out(&buf[..len]);
    }
}

/// Whether a charset name (any case) is one decoded as ISO-8859-1. Windows-1252 differs only
/// in 0x80–0x9f, which carry no digits or keywords.
pub(super) fn is_latin1(charset: &[u8]) -> bool {
    [
        "iso-8859-1",
        "iso8859-1",
        "latin1",
        "latin-1",
        "l1",
        "windows-1252",
        "cp1252",
    ]
    .iter()
    .any(|c| c.as_bytes().eq_ignore_ascii_case(charset))
}

/// Transfer encoding of a part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Encoding {
    /// 7bit, 8bit, binary, or anything unknown: passed through.
    #[default]
    Identity,
    /// `base64`.
    Base64,
    /// `quoted-printable`.
    QuotedPrintable,
}

impl Encoding {
    /// From a `Content-Transfer-Encoding` value.
    pub(super) fn parse(value: &[u8]) -> Encoding {
        let v = value.trim_ascii();
        if v.eq_ignore_ascii_case(b"base64") {
            Encoding::Base64
        } else if v.eq_ignore_ascii_case(b"quoted-printable") {
            Encoding::QuotedPrintable
        } else {
            Encoding::Identity
        }
    }
}

/// The content decoder of one leaf part: transfer decoding, then the charset conversion.
#[derive(Debug, Clone, Default)]
pub(super) struct Leaf {
    encoding: Encoding,
    base64: Base64,
    qp: QuotedPrintable,
    latin1: bool,
}

impl Leaf {
    /// A decoder for a part with this transfer encoding; `latin1` converts ISO-8859-1 text.
    pub(super) fn new(encoding: Encoding, latin1: bool) -> Leaf {
        Leaf {
            encoding,
            latin1,
            ..Leaf::default()
        }
    }

    /// Decodes the next encoded bytes of the part, handing content to `out`.
    pub(super) fn decode(&mut self, input: &[u8], out: &mut dyn FnMut(&[u8])) {
        let latin1 = self.latin1;
        let mut emit = |b: &[u8]| {
            if latin1 {
                latin1_to_utf8(b, out)
            } else {
                out(b)
            }
        };
        match self.encoding {
            Encoding::Identity => emit(input),
            Encoding::Base64 => self.base64.decode(input, &mut emit),
            Encoding::QuotedPrintable => self.qp.decode(input, &mut emit),
        }
    }

    /// End of the part: flushes a partial quantum or dangling escape.
    pub(super) fn finish(&mut self, out: &mut dyn FnMut(&[u8])) {
        let latin1 = self.latin1;
        let mut emit = |b: &[u8]| {
            if latin1 {
                latin1_to_utf8(b, out)
            } else {
                out(b)
            }
        };
        match self.encoding {
            Encoding::Identity => {}
            Encoding::Base64 => self.base64.finish(&mut emit),
            Encoding::QuotedPrintable => self.qp.finish(&mut emit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(leaf: &mut Leaf, pieces: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in pieces {
            leaf.decode(p, &mut |b| v.extend_from_slice(b));
        }
        leaf.finish(&mut |b| v.extend_from_slice(b));
        v
    }

    #[test]
    fn base64_with_breaks_anywhere_and_every_split() {
        let plain = b"cnic 35202-1234567-1, and more text to span lines\n".repeat(5);
        let enc = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &plain);
        let wrapped: Vec<u8> = enc
            .as_bytes()
            .chunks(7)
            .flat_map(|c| c.iter().copied().chain(*b"\r\n"))
            .collect();
        for cut in 0..wrapped.len() {
            let got = run(
                &mut Leaf::new(Encoding::Base64, false),
                &[&wrapped[..cut], &wrapped[cut..]],
            );
            assert!(got == plain, "split at {cut}");
        }
    }

    #[test]
    fn base64_of_many_padded_quanta_in_one_piece() {
        // Each `QQ=` is a padding-terminated quantum of one byte: thousands of them in one piece
        // once overran the output buffer (found by the mime fuzz target).
        let mut enc = b"QQ=".repeat(3 * OUT);
        enc.extend_from_slice(b"QUJD");
        let got = run(&mut Leaf::new(Encoding::Base64, false), &[&enc]);
        let mut want = b"A".repeat(3 * OUT);
        want.extend_from_slice(b"ABC");
        assert!(got == want, "decoded {} bytes, want {}", got.len(), want.len());
    }

    #[test]
    fn base64_without_padding_and_concatenated_blocks() {
        let got = run(&mut Leaf::new(Encoding::Base64, false), &[b"MTIz", b"NA"]);
        assert_eq!(got, b"1234");
        let got = run(&mut Leaf::new(Encoding::Base64, false), &[b"MQ==\r\nMjM=\r\n"]);
        assert_eq!(got, b"123");
    }

    #[test]
    fn quoted_printable_soft_break_inside_a_number_at_every_split() {
        let enc = b"id: 35202-12=\r\n34567-1 =3D caf=E9=\n end=\r\nx =  \r\nz =ZZ =4";
        let want = b"id: 35202-1234567-1 = caf\xe9 endx z =ZZ =4";
        for cut in 0..=enc.len() {
            let got = run(
                &mut Leaf::new(Encoding::QuotedPrintable, false),
                &[&enc[..cut], &enc[cut..]],
            );
            assert!(got == want, "split at {cut}: {:?}", String::from_utf8_lossy(&got));
        }
    }

    #[test]
    fn latin1_becomes_utf8() {
        let got = run(&mut Leaf::new(Encoding::QuotedPrintable, true), &[b"caf=E9"]);
        assert_eq!(got, "café".as_bytes());
        assert!(is_latin1(b"ISO-8859-1") && !is_latin1(b"utf-8"));
    }
}
