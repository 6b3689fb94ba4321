//! A complete header block (request or status line plus fields), parsed with `httparse`: its
//! sections (the decoded request target, one per header field), the body's framing, coding
//! and media type, and the message's evidence.

use super::body::{Chunked, Framing};
use super::coding::CodingKind;
use super::content::MediaKind;
use super::peer::PeerRequests;
use super::percent::{decode_into, decode_url_into};
use crate::l7::{redact_digits, ContentSink, Evidence, Location};

/// Most header fields in one message; more is treated as an oversized header block.
const MAX_HEADERS: usize = 128;
/// Longest multipart boundary accepted (RFC 2046 allows 70).
const MAX_BOUNDARY: usize = 200;
/// Longest evidence host and path (bytes).
const MAX_HOST: usize = 255;
const MAX_PATH: usize = 256;

/// Why a header block was not decoded (it is then passed on raw).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeadError {
    /// More than [`MAX_HEADERS`] fields.
    TooManyHeaders,
    /// Not valid HTTP/1.x (or contradictory framing).
    Invalid,
}

/// What the header block says about the body that follows.
#[derive(Debug)]
pub(super) struct Parsed {
    pub(super) framing: Framing,
    /// `None` for a coding this decoder does not undo (the body then passes undecoded).
    pub(super) coding: Option<CodingKind>,
    pub(super) media: MediaKind,
    pub(super) is_response: bool,
}

/// Buffers a parse borrows from its caller: reused, never allocated per message once warm.
pub(super) struct Bufs<'a> {
    pub(super) scratch: &'a mut Vec<u8>,
    pub(super) boundary: &'a mut Vec<u8>,
    pub(super) evidence: &'a mut Evidence,
    pub(super) peer: &'a mut PeerRequests,
}

fn config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    // Lenient where real servers are, so their clients' messages are decoded, not skipped;
    // invalid fields are never ignored (their bytes would be lost): they fail the parse.
    c.allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true);
    c
}

/// Parses the header block `buf` (ending with its blank line), emits its sections, records
/// evidence, and reports how the body is framed. Emits nothing on error.
pub(super) fn process(buf: &[u8], bufs: Bufs<'_>, sink: &mut dyn ContentSink) -> Result<Parsed, HeadError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let fail = |e: httparse::Error| match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        _ => HeadError::Invalid,
    };
    let is_response = buf.starts_with(b"HTTP/");
    let (line, headers) = if is_response {
        let mut resp = httparse::Response::new(&mut storage);
        match config().parse_response(&mut resp, buf) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(HeadError::Invalid),
            Err(e) => return Err(fail(e)),
        }
        (Line::Status(resp.code.ok_or(HeadError::Invalid)?), resp.headers)
    } else {
        let mut req = httparse::Request::new(&mut storage);
        match config().parse_request(&mut req, buf) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(HeadError::Invalid),
            Err(e) => return Err(fail(e)),
        }
        let method = req.method.ok_or(HeadError::Invalid)?;
        let target = req.path.ok_or(HeadError::Invalid)?;
        (Line::Request(method, target), req.headers)
    };
    let fields = Fields::read(headers, bufs.boundary)?;
    let framing = match line {
        Line::Request(method, target) => {
            let ev = &mut *bufs.evidence;
            ev.http_method.clear();
            ev.http_method.push_str(method);
            ev.http_status = None;
            set_path(&mut ev.url_path, &mut ev.http_host, target.as_bytes());
            if let Some(h) = fields.host {
                set_host(&mut ev.http_host, h);
            }
            sink.message(ev);
            sink.section(Location::Url, b"");
            bufs.scratch.clear();
            decode_url_into(target.as_bytes(), bufs.scratch);
            sink.data(bufs.scratch);
            request_framing(method, &fields)
        }
        Line::Status(code) => {
            let ev = &mut *bufs.evidence;
            ev.http_status = Some(code);
            let (method_head, method_connect) = match bufs.peer.front() {
                Some(req) => {
                    ev.http_method.clone_from(&req.method);
                    ev.http_host.clone_from(&req.host);
                    ev.url_path.clone_from(&req.path);
                    (req.method == "HEAD", req.method == "CONNECT")
                }
                None => {
                    ev.http_method.clear();
                    ev.http_host.clear();
                    ev.url_path.clear();
                    (false, false)
                }
            };
            if code >= 200 {
                // An interim (1xx) response leaves its request waiting for the final one.
                bufs.peer.pop();
            }
            sink.message(ev);
            response_framing(code, method_head, method_connect, &fields)
        }
    };
    for h in headers.iter() {
        sink.section(Location::Header, h.name.as_bytes());
        bufs.scratch.clear();
        bufs.scratch.extend_from_slice(h.name.as_bytes());
        bufs.scratch.extend_from_slice(b": ");
        decode_value(h.name, h.value, bufs.scratch);
        sink.data(bufs.scratch);
    }
    Ok(Parsed {
        framing,
        coding: fields.coding,
        media: fields.media,
        is_response,
    })
}

enum Line<'b> {
    Request(&'b str, &'b str),
    Status(u16),
}

/// The header fields that steer decoding.
struct Fields<'b> {
    content_length: Option<u64>,
    /// `Transfer-Encoding` present; `chunked` when its last coding is chunked.
    transfer_encoding: bool,
    chunked: bool,
    coding: Option<CodingKind>,
    media: MediaKind,
    host: Option<&'b [u8]>,
}

impl<'b> Fields<'b> {
    fn read(headers: &[httparse::Header<'b>], boundary: &mut Vec<u8>) -> Result<Fields<'b>, HeadError> {
        let mut f = Fields {
            content_length: None,
            transfer_encoding: false,
            chunked: false,
            coding: Some(CodingKind::Identity),
            media: MediaKind::Plain,
            host: None,
        };
        for h in headers {
            let name = h.name.as_bytes();
            let value = h.value.trim_ascii();
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = parse_length(value).ok_or(HeadError::Invalid)?;
                if f.content_length.is_some_and(|m| m != n) {
                    return Err(HeadError::Invalid);
                }
                f.content_length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                f.transfer_encoding = true;
                let last = value.rsplit(|&b| b == b',').next().unwrap_or(b"").trim_ascii();
                f.chunked = last.eq_ignore_ascii_case(b"chunked");
            } else if name.eq_ignore_ascii_case(b"content-encoding") {
                f.coding = coding_of(value);
            } else if name.eq_ignore_ascii_case(b"content-type") {
                f.media = media_of(value, boundary);
            } else if name.eq_ignore_ascii_case(b"host") && f.host.is_none() {
                f.host = Some(value);
            }
        }
        Ok(f)
    }
}

fn request_framing(method: &str, f: &Fields<'_>) -> Framing {
    if method.eq_ignore_ascii_case("CONNECT") {
        return Framing::Tunnel;
    }
    if f.transfer_encoding {
        // A request whose last coding is not chunked has no knowable end (RFC 9112 §6.3):
        // everything after it is scanned as its body.
        return if f.chunked {
            Framing::Chunked(Chunked::default())
        } else {
            Framing::Close
        };
    }
    match f.content_length {
        Some(n) if n > 0 => Framing::Length(n),
        _ => Framing::None,
    }
}

fn response_framing(code: u16, head: bool, connect: bool, f: &Fields<'_>) -> Framing {
    if code == 101 || (connect && (200..300).contains(&code)) {
        return Framing::Tunnel;
    }
    if code < 200 || code == 204 || code == 304 || head {
        return Framing::None;
    }
    if f.transfer_encoding {
        return if f.chunked {
            Framing::Chunked(Chunked::default())
        } else {
            Framing::Close
        };
    }
    match f.content_length {
        Some(0) => Framing::None,
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    }
}

fn parse_length(v: &[u8]) -> Option<u64> {
    // A repeated field folded into one (`5, 5`) is accepted when the values agree.
    let mut out = None;
    for part in v.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        if out.is_some_and(|m| m != n) {
            return None;
        }
        out = Some(n);
    }
    out
}

/// The single coding of a `Content-Encoding` value; `None` for stacked or unknown codings.
fn coding_of(v: &[u8]) -> Option<CodingKind> {
    let mut kind = CodingKind::Identity;
    for token in v.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        let is = |t: &[u8]| token.eq_ignore_ascii_case(t);
        let k = if token.is_empty() || is(b"identity") {
            continue;
        } else if is(b"gzip") || is(b"x-gzip") {
            CodingKind::Gzip
        } else if is(b"deflate") {
            CodingKind::Deflate
        } else if is(b"br") {
            CodingKind::Brotli
        } else {
            return None;
        };
        if kind != CodingKind::Identity {
            return None;
        }
        kind = k;
    }
    Some(kind)
}

fn media_of(v: &[u8], boundary: &mut Vec<u8>) -> MediaKind {
    let mut params = v.split(|&b| b == b';');
    let essence = params.next().unwrap_or(b"").trim_ascii();
    let is = |t: &[u8]| essence.eq_ignore_ascii_case(t);
    if is(b"application/x-www-form-urlencoded") {
        return MediaKind::Form;
    }
    if is(b"application/json") || (essence.len() > 5 && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json")) {
        return MediaKind::Json;
    }
    if essence.len() > 10 && essence[..10].eq_ignore_ascii_case(b"multipart/") {
        for p in params {
            let p = p.trim_ascii();
            if p.len() > 9 && p[..9].eq_ignore_ascii_case(b"boundary=") {
                let b = &p[9..];
                let b = b.strip_prefix(b"\"").and_then(|b| b.strip_suffix(b"\"")).unwrap_or(b);
                if b.is_empty() || b.len() > MAX_BOUNDARY {
                    return MediaKind::Plain;
                }
                boundary.clear();
                boundary.extend_from_slice(b);
                return MediaKind::Multipart;
            }
        }
    }
    MediaKind::Plain
}

/// Appends the decoded value of header `name`: URL-bearing values decoded like a request
/// target, cookies form-decoded, every other value percent-decoded (valid escapes only).
fn decode_value(name: &str, value: &[u8], out: &mut Vec<u8>) {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    if is("referer") || is("location") || is("content-location") || is("origin") {
        decode_url_into(value, out);
    } else if is("cookie") || is("set-cookie") {
        decode_into(value, true, out);
    } else {
        decode_into(value, false, out);
    }
}

/// Sets the evidence `path` from a request target: the path only (no query string or
/// fragment), percent-decoded, digit runs redacted, at most [`MAX_PATH`] bytes. An
/// absolute-form target (`http://host/path`) also sets `host`; otherwise `host` is cleared.
pub(super) fn set_path(path: &mut String, host: &mut String, target: &[u8]) {
    host.clear();
    path.clear();
    let mut p = target;
    if let Some(i) = memchr::memmem::find(p, b"://") {
        let after = &p[i + 3..];
        let end = after
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(after.len());
        set_host(host, &after[..end]);
        p = &after[end..];
    } else if !p.starts_with(b"/") {
        // Authority form (`CONNECT host:443`) or `*`: no path.
        if p != b"*" {
            set_host(host, p);
        }
        return;
    }
    let end = p.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(p.len());
    let mut decoded = Vec::with_capacity(end);
    decode_into(&p[..end], false, &mut decoded);
    let redacted = redact_digits(&String::from_utf8_lossy(&decoded));
    path.push_str(truncate(&redacted, MAX_PATH));
}

/// Sets the evidence host: lower-case, without port, at most [`MAX_HOST`] bytes.
pub(super) fn set_host(host: &mut String, value: &[u8]) {
    host.clear();
    let v = value.trim_ascii();
    // Userinfo in an absolute-form authority is not the host (and may be a secret).
    let v = v.rsplit(|&b| b == b'@').next().unwrap_or(v);
    let v = if v.starts_with(b"[") {
        v.iter().position(|&b| b == b']').map_or(v, |i| &v[..=i])
    } else {
        v.split(|&b| b == b':').next().unwrap_or(v)
    };
    let v = &v[..v.len().min(MAX_HOST)];
    for &b in v {
        // Anything not plausible in a host name is replaced, so evidence stays printable.
        let c = if b.is_ascii_graphic() {
            b.to_ascii_lowercase()
        } else {
            b'?'
        };
        host.push(char::from(c));
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_path_and_host() {
        let (mut p, mut h) = (String::new(), String::new());
        set_path(
            &mut p,
            &mut h,
            b"/users/%33%35%32%30%32-1234567-1/x?cnic=3520212345671#f",
        );
        assert_eq!(p, "/users/*****-*******-*/x");
        assert!(h.is_empty());
        set_path(&mut p, &mut h, b"http://user:pw@Shop.Example:8080/a/b?q=1");
        assert_eq!((p.as_str(), h.as_str()), ("/a/b", "shop.example"));
        set_path(&mut p, &mut h, b"files.example:443");
        assert_eq!((p.as_str(), h.as_str()), ("", "files.example"));
        set_host(&mut h, b" [::1]:8443 ");
        assert_eq!(h, "[::1]");
        set_path(&mut p, &mut h, "/ü".repeat(200).as_bytes());
        assert!(p.len() <= MAX_PATH && p.starts_with("/ü"));
    }

    #[test]
    fn header_field_semantics() {
        assert_eq!(parse_length(b"12"), Some(12));
        assert_eq!(parse_length(b"12, 12"), Some(12));
        assert_eq!(parse_length(b"12, 13"), None);
        assert_eq!(parse_length(b"-1"), None);
        assert_eq!(coding_of(b"GZIP"), Some(CodingKind::Gzip));
        assert_eq!(coding_of(b"identity, br"), Some(CodingKind::Brotli));
        assert_eq!(coding_of(b"gzip, br"), None);
        assert_eq!(coding_of(b"zstd"), None);
        let mut b = Vec::new();
        assert_eq!(
            media_of(b"application/problem+json; charset=utf-8", &mut b),
            MediaKind::Json
        );
        assert_eq!(media_of(b"Application/X-WWW-Form-Urlencoded", &mut b), MediaKind::Form);
        assert_eq!(
            media_of(b"multipart/form-data; boundary=\"ab c\"", &mut b),
            MediaKind::Multipart
        );
        assert_eq!(b, b"ab c");
        assert_eq!(media_of(b"multipart/form-data", &mut b), MediaKind::Plain);
        assert_eq!(media_of(b"text/csv", &mut b), MediaKind::Plain);
    }
}
