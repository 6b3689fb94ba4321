//! Application-layer decoding of one egress flow direction: recognise the protocol by content
//! (ports only break ties), and hand the matcher what the receiving application would see —
//! percent-decoded URLs, de-chunked and decompressed HTTP bodies, base64 and quoted-printable
//! MIME parts, DNS query names — instead of the raw bytes.
//!
//! Design constraints:
//! - Streaming: a decoder sees the reassembled bytes in order, in pieces of any size, and keeps
//!   only bounded state (a header line, a base64 quantum, a chunk-size line). A 2 GB upload is
//!   never buffered.
//! - Decoded content goes to a [`ContentSink`] as *sections* (the URL, one header, a body, one
//!   MIME part). The sink keeps the sections apart for matching (no value spans two) but keeps
//!   the previous bytes visible as keyword context, and remembers where each section began so a
//!   finding can say where it was found.
//! - Nothing is lost: what a decoder cannot parse it passes on raw (and stops decoding that
//!   direction); every limit hit (decompression bomb, nesting depth, oversized header) is an
//!   [`L7Event`], counted by the worker.
//! - Closed set of decoders, dispatched by enum on the hot path.

pub mod dns;
pub mod http;
pub mod mime;
pub mod smtp;

mod app;
mod sections;

pub use app::AppDecoder;
pub use sections::{MessageLog, SectionLog, MAX_SECTION_NAME};

use serde::Serialize;

/// A decoder's answer to "is this my protocol?" after seeing the first bytes of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Certainly this protocol.
    Yes,
    /// Certainly not.
    No,
    /// Too few bytes to tell.
    Unsure,
}

/// Replaces the digits of every run of digits and separators (` `, `-`, `.`, `_`, `/`) that
/// holds at least five digits with `*`, so evidence strings (URL paths, file names, DNS names)
/// cannot carry a CNIC or card number in clear.
pub fn redact_digits(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = b.to_vec();
    let sep = |c: u8| matches!(c, b' ' | b'-' | b'.' | b'_' | b'/');
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = 0;
        while i < b.len() && (b[i].is_ascii_digit() || sep(b[i])) {
            digits += usize::from(b[i].is_ascii_digit());
            i += 1;
        }
        if digits >= 5 {
            for c in &mut out[start..i] {
                if c.is_ascii_digit() {
                    *c = b'*';
                }
            }
        }
    }
    // Only ASCII digits were replaced by ASCII, so UTF-8 validity is kept.
    String::from_utf8(out).unwrap_or_default()
}

/// Application protocol of a flow direction (`network.protocol` in alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Not (yet) recognised: scanned raw.
    Unknown,
    /// HTTP/1.x.
    Http,
    /// SMTP (including ESMTP).
    Smtp,
    /// DNS over UDP or TCP.
    Dns,
    /// TLS: encrypted after the handshake (scanned raw until bypass lands).
    Tls,
    /// SSH: encrypted after the banner (scanned raw until bypass lands).
    Ssh,
}

impl Protocol {
    /// Lower-case name for alerts and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Unknown => "unknown",
            Protocol::Http => "http",
            Protocol::Smtp => "smtp",
            Protocol::Dns => "dns",
            Protocol::Tls => "tls",
            Protocol::Ssh => "ssh",
        }
    }
    /// Every variant, for pre-registering metric labels.
    pub const ALL: [Protocol; 6] = [
        Protocol::Unknown,
        Protocol::Http,
        Protocol::Smtp,
        Protocol::Dns,
        Protocol::Tls,
        Protocol::Ssh,
    ];
}

/// Where in the application content a section (and so a finding) lies
/// (`pii.matches[].location` in alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// Undecoded bytes of an unrecognised protocol (or after a decoder gave up).
    Raw,
    /// HTTP request target: path and query string, percent-decoded.
    Url,
    /// A header (HTTP or MIME/e-mail), decoded (percent-decoding for Referer/Cookie, RFC 2047
    /// for e-mail headers); the section name is the header name.
    Header,
    /// A message body (HTTP body, e-mail text part, form field); the name is the form field
    /// name when there is one.
    Body,
    /// An attachment or uploaded file; the name is its file name.
    Attachment,
    /// SMTP command phase (MAIL FROM, RCPT TO, …).
    Command,
    /// A DNS query name (digit-only labels joined, see `dns`).
    DnsQuery,
    /// A DNS label that is exactly 13 digits, given its own section: the label structure itself
    /// is medium-confidence context for a bare CNIC.
    DnsCnicLabel,
    /// DNS answer data (TXT and other record data).
    DnsAnswer,
}

impl Location {
    /// Lower-case name for alerts and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Raw => "raw",
            Location::Url => "url",
            Location::Header => "header",
            Location::Body => "body",
            Location::Attachment => "attachment",
            Location::Command => "command",
            Location::DnsQuery => "dns_query",
            Location::DnsCnicLabel => "dns_cnic_label",
            Location::DnsAnswer => "dns_answer",
        }
    }
}

/// A limit a decoder hit, or a reason it stopped decoding. Counted per protocol in
/// `nigehban_l7_events_total{protocol,event}`; bounded set, usable as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L7Event {
    /// Decompressed output exceeded the ratio or size bound; the rest of that body is cut off
    /// (its compressed bytes are scanned raw instead).
    DecompressionBomb,
    /// Compressed data was corrupt; the rest of that body is scanned raw.
    DecompressionError,
    /// MIME multiparts nested deeper than the bound; deeper parts are scanned without decoding.
    NestingTooDeep,
    /// A header block or line exceeded its bound; passed on raw.
    HeaderTooLarge,
    /// The bytes did not parse as the recognised protocol; the rest of the direction is raw.
    ParseError,
    /// A stream gap inside a message: decoding resumes raw (or at the next message if the
    /// decoder can resynchronise).
    GapInMessage,
    /// SMTP STARTTLS: the rest of the direction is encrypted and no longer scanned.
    StartTls,
}

impl L7Event {
    /// Lower-case name for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            L7Event::DecompressionBomb => "decompression_bomb",
            L7Event::DecompressionError => "decompression_error",
            L7Event::NestingTooDeep => "nesting_too_deep",
            L7Event::HeaderTooLarge => "header_too_large",
            L7Event::ParseError => "parse_error",
            L7Event::GapInMessage => "gap_in_message",
            L7Event::StartTls => "starttls",
        }
    }
    /// Every variant, for pre-registering metric labels.
    pub const ALL: [L7Event; 7] = [
        L7Event::DecompressionBomb,
        L7Event::DecompressionError,
        L7Event::NestingTooDeep,
        L7Event::HeaderTooLarge,
        L7Event::ParseError,
        L7Event::GapInMessage,
        L7Event::StartTls,
    ];
}

/// Receives decoded content. Implemented by the worker (feeding the matcher) and by tests.
pub trait ContentSink {
    /// Starts a section: everything passed to [`ContentSink::data`] until the next `section`
    /// belongs to it. `name` is the header name, form field name or attachment file name (may
    /// be empty; the sink truncates it). Header sections' data is the whole decoded line
    /// `Name: value`, so keywords in the name count as context.
    fn section(&mut self, location: Location, name: &[u8]);
    /// The next decoded bytes of the current section.
    fn data(&mut self, bytes: &[u8]);
    /// Content of the current section is missing here; no match may span this point.
    fn gap(&mut self);
    /// A limit was hit or decoding stopped (counted, never fatal).
    fn event(&mut self, event: L7Event);
    /// A new message begins here (its head is parsed): what follows belongs to `evidence` until
    /// the next call. Lets findings carry the evidence of their own message when several
    /// pipelined messages arrive in one packet.
    fn message(&mut self, evidence: &Evidence) {
        let _ = evidence;
    }
}

/// What an alert says about the message a value travelled in (alert-level evidence).
/// Holds no personal data: the query string is never kept, only the path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// HTTP request method (`POST`), for requests; for responses, the request's method when
    /// the decoder saw it, else empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub http_method: String,
    /// HTTP `Host` (lower-case, no port), at most 255 bytes.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub http_host: String,
    /// HTTP path without the query string, at most 256 bytes, digits of 13+ runs masked.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url_path: String,
    /// HTTP response status when the egress direction carries responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// SMTP `MAIL FROM` domain.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub smtp_from_domain: String,
    /// SMTP `RCPT TO` domains (distinct, at most 16).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub smtp_to_domains: Vec<String>,
    /// DNS: registered domain (last two labels) of the query, never the full name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dns_domain: String,
}
