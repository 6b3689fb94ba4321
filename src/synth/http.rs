//! HTTP/1.1 messages as real clients and servers write them: `Content-Length` or chunked framing
//! (chunk sizes chosen by the caller, so a boundary can fall inside a number), gzip, deflate and
//! br content codings, urlencoded forms, multipart/form-data with per-part transfer encodings,
//! JSON with `\u00XX` digit escapes, and percent-encoded URLs.

use base64::Engine;
use std::io::Write;

/// A `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// No coding.
    Identity,
    /// gzip (RFC 1952).
    Gzip,
    /// `deflate` as RFC 9110 defines it: a zlib stream (RFC 1950).
    Deflate,
    /// `deflate` as some servers send it: a bare RFC 1951 stream without the zlib wrapper.
    RawDeflate,
    /// Brotli (RFC 7932).
    Br,
}

impl Coding {
    /// The header value, `None` for identity.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some("gzip"),
            Coding::Deflate | Coding::RawDeflate => Some("deflate"),
            Coding::Br => Some("br"),
        }
    }
}

/// `data` compressed with `coding`.
pub fn compress(coding: Coding, data: &[u8]) -> Vec<u8> {
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;
    let io = "writing to a Vec cannot fail";
    match coding {
        Coding::Identity => data.to_vec(),
        Coding::Gzip => {
            let mut e = GzEncoder::new(Vec::new(), Compression::default());
            e.write_all(data).expect(io);
            e.finish().expect(io)
        }
        Coding::Deflate => {
            let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
            e.write_all(data).expect(io);
            e.finish().expect(io)
        }
        Coding::RawDeflate => {
            let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
            e.write_all(data).expect(io);
            e.finish().expect(io)
        }
        Coding::Br => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
                w.write_all(data).expect(io);
            }
            out
        }
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`.
    Length,
    /// `Transfer-Encoding: chunked` with chunks of these sizes (the last size repeats).
    Chunked(Vec<usize>),
}

/// `data` in chunked transfer coding, with chunk-size lines in lower-case hex, the last size
/// repeating, and an empty trailer.
pub fn chunked(data: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16 * (data.len() / sizes.last().copied().unwrap_or(1).max(1) + 2));
    let mut off = 0;
    let mut i = 0;
    while off < data.len() {
        let size = sizes.get(i).or(sizes.last()).copied().unwrap_or(data.len()).max(1);
        let end = (off + size).min(data.len());
        out.extend_from_slice(format!("{:x}\r\n", end - off).as_bytes());
        out.extend_from_slice(&data[off..end]);
        out.extend_from_slice(b"\r\n");
        off = end;
        i += 1;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// One HTTP/1.1 request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    /// A request line `METHOD target HTTP/1.1`.
    pub fn request(method: &str, target: &str) -> Message {
        Message {
            start: format!("{method} {target} HTTP/1.1"),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A status line `HTTP/1.1 status reason`.
    pub fn response(status: u16, reason: &str) -> Message {
        Message {
            start: format!("HTTP/1.1 {status} {reason}"),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header (in order; duplicates allowed).
    pub fn header(mut self, name: &str, value: &str) -> Message {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body: compressed with `coding`, delimited by `framing`, with the matching
    /// `Content-Encoding` and `Content-Length` or `Transfer-Encoding` headers.
    pub fn body(mut self, coding: Coding, framing: &Framing, content: &[u8]) -> Message {
        if let Some(c) = coding.header() {
            self.headers.push(("Content-Encoding".into(), c.into()));
        }
        let coded = compress(coding, content);
        match framing {
            Framing::Length => {
                self.headers.push(("Content-Length".into(), coded.len().to_string()));
                self.body = coded;
            }
            Framing::Chunked(sizes) => {
                self.headers.push(("Transfer-Encoding".into(), "chunked".into()));
                self.body = chunked(&coded, sizes);
            }
        }
        self
    }

    /// An empty body with `Content-Length: 0` (a request or response that must say so to keep
    /// the connection alive).
    pub fn empty(self) -> Message {
        self.header("Content-Length", "0")
    }

    /// The message on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.start.len() + 64 * self.headers.len() + self.body.len());
        out.extend_from_slice(self.start.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986); with `digits`, digits are
/// encoded too (`5` → `%35`), as obfuscating clients do.
pub fn percent_encode(s: &str, digits: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_' | b'~') || (b.is_ascii_digit() && !digits);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `application/x-www-form-urlencoded`: spaces become `+`, other reserved bytes `%XX`.
pub fn form_urlencode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| percent_encode(s, false).replace("%20", "+");
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Writes every ASCII digit of `s` as a JSON `\u003X` escape (what some serialisers and
/// obfuscating clients emit); the JSON string still decodes to `s`.
pub fn json_escape_digits(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 6);
    for c in s.chars() {
        if c.is_ascii_digit() {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// One part of a multipart/form-data body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPart {
    /// Form field name.
    pub name: String,
    /// File name, for file uploads.
    pub filename: Option<String>,
    /// `Content-Type` of the part, if any.
    pub content_type: Option<String>,
    /// Write the content base64-encoded with `Content-Transfer-Encoding: base64`.
    pub base64: bool,
    /// The part's content (before any transfer encoding).
    pub content: Vec<u8>,
}

impl FormPart {
    /// A plain text field.
    pub fn field(name: &str, value: &str) -> FormPart {
        FormPart {
            name: name.into(),
            filename: None,
            content_type: None,
            base64: false,
            content: value.as_bytes().to_vec(),
        }
    }

    /// A file upload.
    pub fn file(name: &str, filename: &str, content_type: &str, content: Vec<u8>) -> FormPart {
        FormPart {
            name: name.into(),
            filename: Some(filename.into()),
            content_type: Some(content_type.into()),
            base64: false,
            content,
        }
    }
}

/// A multipart/form-data body with `boundary`; returns the body bytes. The `Content-Type`
/// header value is `multipart/form-data; boundary=<boundary>`.
pub fn multipart_form(boundary: &str, parts: &[FormPart]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disp = format!("Content-Disposition: form-data; name=\"{}\"", p.name);
        if let Some(f) = &p.filename {
            disp.push_str(&format!("; filename=\"{f}\""));
        }
        out.extend_from_slice(disp.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(ct) = &p.content_type {
            out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        if p.base64 {
            out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
            out.extend_from_slice(base64_lines(&p.content).as_bytes());
        } else {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&p.content);
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// Base64 in lines of 76 characters ending in CRLF (RFC 2045), the last line included.
pub fn base64_lines(data: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(b64.len() + b64.len() / 38 + 2);
    for line in b64.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn codings_round_trip() {
        let data = b"cnic=35202-1234567-1&x=".repeat(50);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&compress(Coding::Gzip, &data)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        out.clear();
        flate2::read::ZlibDecoder::new(&compress(Coding::Deflate, &data)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        out.clear();
        flate2::read::DeflateDecoder::new(&compress(Coding::RawDeflate, &data)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        out.clear();
        brotli::Decompressor::new(&compress(Coding::Br, &data)[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn chunked_cuts_where_asked() {
        assert_eq!(
            chunked(b"abcdefg", &[2, 3]),
            b"2\r\nab\r\n3\r\ncde\r\n2\r\nfg\r\n0\r\n\r\n"
        );
    }

    #[test]
    fn message_framing_headers() {
        let m = Message::request("POST", "/a")
            .header("Host", "h")
            .body(Coding::Gzip, &Framing::Chunked(vec![5]), b"hello")
            .to_bytes();
        let s = String::from_utf8_lossy(&m);
        assert!(s.starts_with(
            "POST /a HTTP/1.1\r\nHost: h\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n"
        ));
        assert!(s.ends_with("\r\n0\r\n\r\n"));
    }

    #[test]
    fn encodings() {
        assert_eq!(percent_encode("a b-1", false), "a%20b-1");
        assert_eq!(percent_encode("a-1", true), "a-%31");
        assert_eq!(form_urlencode(&[("n", "Ali Khan"), ("c", "1&2")]), "n=Ali+Khan&c=1%262");
        assert_eq!(json_escape_digits("a1"), "a\\u0031");
        let mp = multipart_form("XX", &[FormPart::field("a", "b")]);
        assert_eq!(
            mp,
            b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--XX--\r\n"
        );
        assert_eq!(
            base64_lines(&[0u8; 60]).lines().map(str::len).collect::<Vec<_>>(),
            [76, 4]
        );
    }
}
