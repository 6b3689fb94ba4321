//! MIME header values: `Name: value` splitting, RFC 2047 encoded-words (`=?UTF-8?B?…?=`),
//! and the parameters of `Content-Type` / `Content-Disposition` (quoted strings, RFC 2231
//! `filename*=UTF-8''…` and continuations). Runs once per header, not per packet.

use super::transfer::{hex, is_latin1, latin1_to_utf8, Base64, Encoding};

/// Longest encoded-word looked at; RFC 2047 allows 75 bytes, senders exceed it.
const MAX_WORD: usize = 1024;
/// Longest parameter value kept (file names, boundaries), in bytes.
pub(super) const MAX_PARAM: usize = 512;

/// Splits an unfolded header line into name and value (both trimmed); `None` when it is not
/// `Name: value` with a printable, space-free name.
pub(super) fn split(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', line)?;
    let name = line[..colon].trim_ascii_end();
    if name.is_empty() || !name.iter().all(|&c| (33..=126).contains(&c)) {
        return None;
    }
    Some((name, line[colon + 1..].trim_ascii()))
}

/// Appends `value` to `out` with RFC 2047 encoded-words decoded. Whitespace between two
/// adjacent encoded-words is dropped (RFC 2047 §6.2), so a number split across two words comes
/// out contiguous. Malformed words are kept as they are.
pub(super) fn decode_words(value: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    // `out.len()` just after the last encoded-word, while only whitespace has followed it.
    let mut after_word: Option<usize> = None;
    while i < value.len() {
        if value[i] == b'=' && value.get(i + 1) == Some(&b'?') {
            if let Some((len, charset, enc, text)) = parse_word(&value[i..]) {
                if let Some(mark) = after_word {
                    out.truncate(mark);
                }
                decode_word(charset, enc, text, out);
                after_word = Some(out.len());
                i += len;
                continue;
            }
        }
        let c = value[i];
        if c != b' ' && c != b'\t' {
            after_word = None;
        }
        out.push(c);
        i += 1;
    }
}

/// Parses `=?charset?e?text?=` at the start of `s`: (length, charset, encoding letter, text).
fn parse_word(s: &[u8]) -> Option<(usize, &[u8], u8, &[u8])> {
    let s = &s[..s.len().min(MAX_WORD)];
    let body = s.strip_prefix(b"=?")?;
    let q1 = body.iter().position(|&c| c == b'?')?;
    let charset = &body[..q1];
    if charset.is_empty() || charset.iter().any(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let enc = *body.get(q1 + 1)?;
    if !matches!(enc, b'B' | b'b' | b'Q' | b'q') || body.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    let text_len = body[text_start..].windows(2).position(|w| w == b"?=")?;
    let text = &body[text_start..text_start + text_len];
    if text.iter().any(|c| c.is_ascii_whitespace()) {
        return None;
    }
    Some((2 + text_start + text_len + 2, charset, enc, text))
}

fn decode_word(charset: &[u8], enc: u8, text: &[u8], out: &mut Vec<u8>) {
    // RFC 2231 §5 adds a language: `UTF-8*ur`.
    let charset = charset.split(|&c| c == b'*').next().unwrap_or_default();
    let mut raw = Vec::with_capacity(text.len());
    if enc.eq_ignore_ascii_case(&b'B') {
        let mut b = Base64::default();
        b.decode(text, &mut |d| raw.extend_from_slice(d));
        b.finish(&mut |d| raw.extend_from_slice(d));
    } else {
        let mut i = 0;
        while i < text.len() {
            match text[i] {
                b'_' => raw.push(b' '),
                b'=' if i + 2 < text.len() => match (hex(text[i + 1]), hex(text[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        raw.push(hi << 4 | lo);
                        i += 2;
                    }
                    _ => raw.push(b'='),
                },
                c => raw.push(c),
            }
            i += 1;
        }
    }
    push_charset(charset, &raw, out);
}

/// Appends `raw` in `charset` to `out`: ISO-8859-1 converted to UTF-8, anything else as is
/// (UTF-8 and ASCII need nothing; other charsets are passed raw, digits stay ASCII in them).
fn push_charset(charset: &[u8], raw: &[u8], out: &mut Vec<u8>) {
    if is_latin1(charset) {
        latin1_to_utf8(raw, &mut |b| out.extend_from_slice(b));
    } else {
        out.extend_from_slice(raw);
    }
}

/// One `name=value` parameter; the value unquoted, at most [`MAX_PARAM`] bytes.
#[derive(Debug)]
struct Param {
    name: Vec<u8>,
    value: Vec<u8>,
}

/// The leading token (lower-case) and the parameters of a structured header value.
fn parse_params(value: &[u8]) -> (Vec<u8>, Vec<Param>) {
    let end = value.iter().position(|&c| c == b';').unwrap_or(value.len());
    let token = value[..end].trim_ascii().to_ascii_lowercase();
    let mut params = Vec::new();
    let mut i = end;
    while i < value.len() && params.len() < 64 {
        // At a `;` (or junk): skip to the parameter name.
        while i < value.len() && (value[i] == b';' || value[i].is_ascii_whitespace()) {
            i += 1;
        }
        let name_start = i;
        while i < value.len() && !matches!(value[i], b'=' | b';') {
            i += 1;
        }
        let name = value[name_start..i].trim_ascii().to_ascii_lowercase();
        let mut v = Vec::new();
        if value.get(i) == Some(&b'=') {
            i += 1;
            while i < value.len() && value[i].is_ascii_whitespace() {
                i += 1;
            }
            if value.get(i) == Some(&b'"') {
                i += 1;
                while i < value.len() && value[i] != b'"' {
                    if value[i] == b'\\' && i + 1 < value.len() {
                        i += 1;
                    }
                    if v.len() < MAX_PARAM {
                        v.push(value[i]);
                    }
                    i += 1;
                }
                i += 1;
            } else {
                let start = i;
                while i < value.len() && value[i] != b';' {
                    i += 1;
                }
                let t = value[start..i].trim_ascii();
                v.extend_from_slice(&t[..t.len().min(MAX_PARAM)]);
            }
        }
        if !name.is_empty() {
            params.push(Param { name, value: v });
        }
    }
    (token, params)
}

/// The value of parameter `key`, with RFC 2231 extended values (`key*=UTF-8''%D8%B4`) and
/// continuations (`key*0`, `key*1*`) joined and decoded, and RFC 2047 words in a plain value
/// decoded (common in file names though not allowed there).
fn param(params: &[Param], key: &[u8]) -> Option<Vec<u8>> {
    let mut segments: Vec<(u32, bool, &[u8])> = Vec::new();
    let mut plain = None;
    for p in params {
        let Some(rest) = p.name.strip_prefix(key) else { continue };
        if rest.is_empty() {
            plain = Some(&p.value[..]);
        } else if rest == b"*" {
            segments = vec![(0, true, &p.value[..])];
            break;
        } else if let Some(n) = rest.strip_prefix(b"*") {
            let (digits, ext) = match n.strip_suffix(b"*") {
                Some(d) => (d, true),
                None => (n, false),
            };
            if let Some(idx) = std::str::from_utf8(digits).ok().and_then(|d| d.parse::<u32>().ok()) {
                if segments.len() < 64 {
                    segments.push((idx, ext, &p.value[..]));
                }
            }
        }
    }
    if segments.is_empty() {
        let mut out = Vec::new();
        decode_words(plain?, &mut out);
        return Some(out);
    }
    segments.sort_by_key(|s| s.0);
    let mut charset: &[u8] = b"";
    let mut raw = Vec::new();
    for (i, &(_, ext, v)) in segments.iter().enumerate() {
        let mut v = v;
        if ext && i == 0 {
            // charset'language'value
            let mut parts = v.splitn(3, |&c| c == b'\'');
            if let (Some(cs), Some(_), Some(rest)) = (parts.next(), parts.next(), parts.next()) {
                charset = cs;
                v = rest;
            }
        }
        if ext {
            percent_decode(v, &mut raw);
        } else {
            raw.extend_from_slice(v);
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    push_charset(charset, &raw, &mut out);
    out.truncate(MAX_PARAM);
    Some(out)
}

fn percent_decode(v: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' && i + 2 < v.len() {
            if let (Some(hi), Some(lo)) = (hex(v[i + 1]), hex(v[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
}

/// What the headers of one entity say about its body.
#[derive(Debug, Default, Clone)]
pub(super) struct PartInfo {
    /// `multipart/*` with a usable boundary (otherwise `boundary` is empty).
    pub(super) multipart: bool,
    /// `message/rfc822` (or `message/global`): the body is a whole message, headers first.
    pub(super) message: bool,
    /// Multipart boundary, raw.
    pub(super) boundary: Vec<u8>,
    pub(super) encoding: Encoding,
    /// The text is ISO-8859-1 and is converted to UTF-8.
    pub(super) latin1: bool,
    /// `Content-Disposition: attachment`.
    pub(super) attachment: bool,
    /// File name from `Content-Disposition` `filename` or `Content-Type` `name`, decoded.
    pub(super) filename: Option<Vec<u8>>,
    /// `Content-Disposition: form-data; name=…`: the form field name.
    pub(super) field: Option<Vec<u8>>,
}

impl PartInfo {
    /// Learns from one header (raw value, before RFC 2047 decoding: boundaries are literal).
    pub(super) fn header(&mut self, name: &[u8], value: &[u8]) {
        if name.eq_ignore_ascii_case(b"content-type") {
            let (media, params) = parse_params(value);
            self.multipart = media.starts_with(b"multipart/");
            self.message = media == b"message/rfc822" || media == b"message/global";
            self.boundary = if self.multipart {
                params
                    .iter()
                    .find(|p| p.name == b"boundary")
                    .map(|p| p.value.clone())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            self.latin1 = params.iter().any(|p| p.name == b"charset" && is_latin1(&p.value));
            if self.filename.is_none() {
                self.filename = param(&params, b"name").filter(|n| !n.is_empty());
            }
        } else if name.eq_ignore_ascii_case(b"content-transfer-encoding") {
            self.encoding = Encoding::parse(value);
        } else if name.eq_ignore_ascii_case(b"content-disposition") {
            let (disposition, params) = parse_params(value);
            self.attachment = disposition == b"attachment";
            // `filename` beats the Content-Type `name`, whichever header came first.
            if let Some(f) = param(&params, b"filename").filter(|n| !n.is_empty()) {
                self.filename = Some(f);
            }
            if disposition == b"form-data" {
                self.field = param(&params, b"name");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &str) -> String {
        let mut out = Vec::new();
        decode_words(v.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn encoded_words_b_q_latin1_and_adjacent_whitespace() {
        assert_eq!(words("=?UTF-8?B?2LTZhtin2K7YqtuMINqp2KfYsdqI?="), "شناختی کارڈ");
        assert_eq!(
            words("=?utf-8?q?ID_=D8=B4_35202?= =?UTF-8?Q?1234567?=  tail"),
            "ID ش 352021234567  tail"
        );
        assert_eq!(words("a =?ISO-8859-1?Q?caf=E9?= b"), "a café b");
        // Malformed words stay as they were.
        assert_eq!(words("=?UTF-8?X?abc?= =?UTF-8?B?"), "=?UTF-8?X?abc?= =?UTF-8?B?");
        assert_eq!(words("=?UTF-8*ur?Q?x?="), "x");
    }

    #[test]
    fn parameters_quoted_2231_and_continuations() {
        let mut p = PartInfo::default();
        p.header(
            b"Content-Type",
            b"multipart/mixed; boundary=\"=_b \\\"q\\\"\"; charset=ISO-8859-1",
        );
        assert!(p.multipart && p.latin1);
        assert_eq!(p.boundary, b"=_b \"q\"");
        p.header(
            b"Content-Disposition",
            b"attachment; filename*=UTF-8''%D8%B4%20list.csv",
        );
        assert!(p.attachment);
        assert_eq!(p.filename.as_deref(), Some("ش list.csv".as_bytes()));
        p.header(b"Content-Disposition", b"inline; filename*0=\"a\"; filename*1*=%41.txt");
        assert_eq!(p.filename.as_deref(), Some(&b"aA.txt"[..]));
        p.header(b"Content-Disposition", b"form-data; name=\"cnic\"");
        assert_eq!(p.field.as_deref(), Some(&b"cnic"[..]));
        let mut q = PartInfo::default();
        q.header(
            b"Content-Type",
            b"application/octet-stream; name=\"=?UTF-8?Q?r=C3=A9.csv?=\"",
        );
        assert_eq!(q.filename.as_deref(), Some("ré.csv".as_bytes()));
        assert_eq!(split(b"Subject : hi "), Some((&b"Subject"[..], &b"hi"[..])));
        assert_eq!(split(b"no colon here"), None);
        assert_eq!(split(b"bad name: x"), None);
    }
}
