//! HTTP/1.x, both directions of use: an inside client's requests and an inside server's
//! responses (both are egress), keep-alive and pipelined.
//!
//! Per message, the decoder buffers only the header block (at most [`MAX_HEAD`] bytes), parses
//! it with `httparse` and emits the decoded request target and each header as sections. The
//! body then streams through three stages, none of which holds more than a few bytes between
//! pieces:
//!
//! ```text
//! framing (Content-Length / chunked / close)  ->  coding (gzip, deflate, br; bounded)
//!     ->  media (form fields, JSON escapes, multipart via MIME, else pass-through)  ->  sink
//! ```
//!
//! Whatever cannot be decoded is passed on raw from the point of failure (an event says why),
//! so no byte goes unscanned. A response learns the method, host and path it answers from the
//! request lines at the start of the peer direction's packets (best effort), which is also how
//! a response to HEAD is known to have no body.

mod body;
mod coding;
mod content;
mod head;
mod json;
mod peer;
mod percent;
#[cfg(test)]
mod tests;

use self::body::{Framing, Step};
use self::coding::CodingKind;
use self::content::{Content, MediaKind};
use self::head::{Bufs, HeadError, Parsed};
use self::peer::PeerRequests;
use super::{ContentSink, Evidence, L7Event, Location, Probe};

/// Largest header block buffered, in bytes (64 KiB); a larger one is passed on raw with
/// [`L7Event::HeaderTooLarge`] and the direction is not decoded further.
pub const MAX_HEAD: usize = 64 << 10;
/// Header-buffer capacity kept between messages (bytes); more (after an unusually large header
/// block) is released.
const HEAD_KEEP: usize = 8 << 10;

/// Request methods recognised at the start of a direction (RFC 9110, WebDAV, CalDAV).
const METHODS: [&str; 20] = [
    "GET",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "HEAD",
    "OPTIONS",
    "CONNECT",
    "TRACE",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
    "SEARCH",
    "MKCALENDAR",
    "PURGE",
];
const STATUS_PREFIX: &[u8] = b"HTTP/1.";

/// The recognised method spelled by `token`.
fn known_method(token: &[u8]) -> Option<&'static str> {
    METHODS.iter().copied().find(|m| m.as_bytes() == token)
}

/// Does this look like the start of an HTTP/1.x request or response? `Yes` for a known method
/// followed by a space or `HTTP/1.`; `Unsure` for a proper prefix of one of those.
pub fn probe(first: &[u8]) -> Probe {
    let is_prefix = |full: &[u8]| first.len() < full.len() && full.starts_with(first);
    if first.starts_with(STATUS_PREFIX) {
        return Probe::Yes;
    }
    let mut unsure = is_prefix(STATUS_PREFIX);
    for m in METHODS {
        let m = m.as_bytes();
        if first.len() > m.len() && first.starts_with(m) && first[m.len()] == b' ' {
            return Probe::Yes;
        }
        // `GET` alone is a prefix of `GET `.
        unsure |= first.len() <= m.len() && m.starts_with(first);
    }
    if unsure {
        Probe::Unsure
    } else {
        Probe::No
    }
}

/// Where the decoder is in the direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between messages or inside a header block.
    Head,
    /// Inside a body (see `framing`).
    Body,
    /// Not decoding any more (parse error, tunnel): bytes pass raw.
    Raw,
    /// Framing was lost at a gap: bytes pass raw until a piece starts with a request or status
    /// line (a new message often starts a new segment), where decoding resumes.
    Lost,
}

/// What this direction carries, learnt from its first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Unknown,
    Requests,
    Responses,
}

/// Streaming decoder of one direction's HTTP messages.
pub struct HttpDecoder {
    state: State,
    role: Role,
    /// The header block being collected. Invariant: `head.len() <= MAX_HEAD`; empty unless
    /// `state == Head`.
    head: Vec<u8>,
    /// Decoded URL and header values (reused).
    scratch: Vec<u8>,
    /// Multipart boundary of the current message.
    boundary: Vec<u8>,
    /// Framing of the body in progress (`Framing::None` outside bodies).
    framing: Framing,
    coding: coding::Decoder,
    content: Content,
    /// A chunked trailer section is open.
    trailer_open: bool,
    peer: PeerRequests,
    evidence: Evidence,
    /// Message heads decoded, for diagnostics.
    messages: u64,
}

impl Default for HttpDecoder {
    fn default() -> HttpDecoder {
        HttpDecoder {
            state: State::Head,
            role: Role::Unknown,
            head: Vec::new(),
            scratch: Vec::new(),
            boundary: Vec::new(),
            framing: Framing::None,
            coding: coding::Decoder::default(),
            content: Content::Done,
            trailer_open: false,
            peer: PeerRequests::default(),
            evidence: Evidence::default(),
            messages: 0,
        }
    }
}

/// Shows the decoder's position only: never header, URL or body bytes, nor evidence.
impl std::fmt::Debug for HttpDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let framing = match &self.framing {
            Framing::None => "none",
            Framing::Length(_) => "length",
            Framing::Chunked(_) => "chunked",
            Framing::Close => "close",
            Framing::Tunnel => "tunnel",
        };
        f.debug_struct("HttpDecoder")
            .field("state", &self.state)
            .field("role", &self.role)
            .field("messages", &self.messages)
            .field("head_len", &self.head.len())
            .field("framing", &framing)
            .field("coding", &self.coding)
            .field("memory", &self.memory())
            .finish_non_exhaustive()
    }
}

impl HttpDecoder {
    /// A decoder at the start of a message.
    pub fn new() -> HttpDecoder {
        HttpDecoder::default()
    }

    /// The next in-order bytes of the direction.
    pub fn data(&mut self, mut bytes: &[u8], sink: &mut dyn ContentSink) {
        if self.state == State::Lost && probe(&bytes[..bytes.len().min(16)]) == Probe::Yes {
            self.state = State::Head;
        }
        while !bytes.is_empty() {
            // Every step consumes bytes or changes state, so this ends.
            let used = match self.state {
                State::Head => self.head_data(bytes, sink),
                State::Body => self.body_data(bytes, sink),
                State::Raw | State::Lost => {
                    sink.data(bytes);
                    bytes.len()
                }
            };
            bytes = &bytes[used..];
        }
    }

    /// `missing` bytes (0 if unknown) will never arrive.
    pub fn gap(&mut self, missing: u64, sink: &mut dyn ContentSink) {
        match self.state {
            State::Raw | State::Lost => sink.gap(),
            State::Head => self.lose_framing(sink),
            State::Body => {
                let skipped = match &mut self.framing {
                    Framing::Length(left) if missing > 0 && missing <= *left => {
                        *left -= missing;
                        true
                    }
                    Framing::Chunked(c) => c.in_body() && c.skip(missing),
                    Framing::Close => true,
                    _ => false,
                };
                if !skipped {
                    self.lose_framing(sink);
                    return;
                }
                if self.coding.gap(&mut self.content, sink) {
                    // A coded stream cannot resume after a hole: the rest of the body is raw.
                    sink.event(L7Event::GapInMessage);
                } else {
                    self.content.gap(sink);
                }
                if matches!(self.framing, Framing::Length(0)) {
                    self.end_body(sink);
                    self.end_message();
                }
            }
        }
    }

    /// End of the direction: flush what is buffered.
    pub fn finish(&mut self, sink: &mut dyn ContentSink) {
        match self.state {
            State::Head if !self.head.is_empty() => {
                // An unfinished header block: its bytes are still content.
                sink.section(Location::Raw, b"");
                sink.data(&self.head);
                self.head.clear();
            }
            State::Body => {
                self.end_body(sink);
                self.end_message();
            }
            State::Head | State::Raw | State::Lost => {}
        }
    }

    /// Payload of one packet of the other direction, not reassembled (best effort): lets a
    /// response decoder learn the request's method, host and path, and that a HEAD response
    /// has no body.
    pub fn peer_data(&mut self, bytes: &[u8]) {
        if self.role != Role::Requests {
            self.peer.learn(bytes);
        }
    }

    /// Evidence of the message being decoded (or the last one).
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// Heap bytes held, for flow memory accounting.
    pub fn memory(&self) -> usize {
        let ev = &self.evidence;
        self.head.capacity()
            + self.scratch.capacity()
            + self.boundary.capacity()
            + self.coding.memory()
            + self.content.memory()
            + self.peer.memory()
            + ev.http_method.capacity()
            + ev.http_host.capacity()
            + ev.url_path.capacity()
    }

    /// Collects a header block; decodes it once complete. Returns the bytes used.
    fn head_data(&mut self, input: &[u8], sink: &mut dyn ContentSink) -> usize {
        if self.head.is_empty() {
            // Blank lines between messages (after a body, before a request) carry nothing.
            let skip = input.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            if skip > 0 {
                return skip;
            }
        }
        let end = head_end(&self.head, input);
        let take = end.unwrap_or(input.len());
        if self.head.len() + take > MAX_HEAD {
            sink.event(L7Event::HeaderTooLarge);
            self.go_raw(sink);
            return 0;
        }
        self.head.extend_from_slice(&input[..take]);
        let looks = probe(&self.head[..self.head.len().min(16)]);
        if looks == Probe::No || (looks == Probe::Unsure && end.is_some()) {
            sink.event(L7Event::ParseError);
            self.go_raw(sink);
            return take;
        }
        if end.is_some() {
            self.message_head(sink);
        }
        take
    }

    fn message_head(&mut self, sink: &mut dyn ContentSink) {
        let bufs = Bufs {
            scratch: &mut self.scratch,
            boundary: &mut self.boundary,
            evidence: &mut self.evidence,
            peer: &mut self.peer,
        };
        match head::process(&self.head, bufs, sink) {
            Ok(parsed) => {
                self.messages += 1;
                self.head.clear();
                for buf in [&mut self.head, &mut self.scratch] {
                    if buf.capacity() > HEAD_KEEP {
                        buf.clear();
                        buf.shrink_to(HEAD_KEEP);
                    }
                }
                if self.role == Role::Unknown {
                    self.role = if parsed.is_response {
                        Role::Responses
                    } else {
                        Role::Requests
                    };
                    if self.role == Role::Requests {
                        self.peer.clear();
                    }
                }
                self.start_body(parsed, sink);
            }
            Err(e) => {
                sink.event(match e {
                    HeadError::TooManyHeaders => L7Event::HeaderTooLarge,
                    HeadError::Invalid => L7Event::ParseError,
                });
                self.go_raw(sink);
            }
        }
    }

    fn start_body(&mut self, parsed: Parsed, sink: &mut dyn ContentSink) {
        match parsed.framing {
            Framing::None => {}
            Framing::Tunnel => {
                // What follows CONNECT or an upgrade is another protocol (usually TLS).
                sink.section(Location::Raw, b"");
                self.state = State::Raw;
            }
            framing => {
                // A coding this decoder cannot undo leaves the body opaque: pass it as is.
                let (coding, media) = match parsed.coding {
                    Some(c) => (c, parsed.media),
                    None => (CodingKind::Identity, MediaKind::Plain),
                };
                self.coding.start(coding);
                self.content = Content::start(media, &self.boundary);
                self.framing = framing;
                self.trailer_open = false;
                self.state = State::Body;
            }
        }
    }

    /// Feeds body bytes through framing; returns the bytes used.
    fn body_data(&mut self, input: &[u8], sink: &mut dyn ContentSink) -> usize {
        match &mut self.framing {
            Framing::Length(left) => {
                let take = usize::try_from(*left).unwrap_or(usize::MAX).min(input.len());
                *left -= take as u64;
                let done = *left == 0;
                self.coding.feed(&input[..take], &mut self.content, sink);
                if done {
                    self.end_body(sink);
                    self.end_message();
                }
                take
            }
            Framing::Close => {
                self.coding.feed(input, &mut self.content, sink);
                input.len()
            }
            Framing::Chunked(c) => {
                let (used, step) = c.step(input);
                match step {
                    Step::Framing => {}
                    Step::Data => self.coding.feed(&input[..used], &mut self.content, sink),
                    Step::BodyEnd => self.end_body(sink),
                    Step::Trailer => {
                        if !self.trailer_open {
                            sink.section(Location::Header, b"Trailer");
                            self.trailer_open = true;
                        }
                        sink.data(&input[..used]);
                    }
                    Step::MessageEnd => self.end_message(),
                    Step::Error => {
                        let mut line = [0u8; 64];
                        let kept = c.line();
                        let n = kept.len().min(line.len());
                        line[..n].copy_from_slice(&kept[..n]);
                        sink.event(L7Event::ParseError);
                        self.end_body(sink);
                        self.go_raw(sink);
                        sink.data(&line[..n]);
                    }
                }
                used
            }
            Framing::None | Framing::Tunnel => unreachable!("no body state without a body"),
        }
    }

    /// The body's bytes are all in: flush the coding and content stages.
    fn end_body(&mut self, sink: &mut dyn ContentSink) {
        self.coding.finish(&mut self.content, sink);
        self.content.finish(sink);
    }

    fn end_message(&mut self) {
        self.framing = Framing::None;
        self.state = State::Head;
    }

    /// A gap where the message structure cannot be followed across it: what is buffered goes
    /// raw, and so does what follows until a piece starts with a new message.
    fn lose_framing(&mut self, sink: &mut dyn ContentSink) {
        sink.event(L7Event::GapInMessage);
        if self.state == State::Body {
            self.end_body(sink);
        }
        self.go_raw(sink);
        sink.gap();
        self.state = State::Lost;
    }

    /// Stops decoding: opens the raw section and passes any buffered header bytes into it.
    fn go_raw(&mut self, sink: &mut dyn ContentSink) {
        sink.section(Location::Raw, b"");
        sink.data(&self.head);
        self.head.clear();
        self.head.shrink_to(HEAD_KEEP);
        self.framing = Framing::None;
        self.content = Content::Done;
        self.state = State::Raw;
    }
}

/// Where the header block ends in `input` (just past its blank line), given the `held` bytes
/// before it.
fn head_end(held: &[u8], input: &[u8]) -> Option<usize> {
    let before = |i: usize, back: usize| -> Option<u8> {
        // The byte `back` positions before `input[i]`, looking into `held` if needed.
        if back <= i {
            Some(input[i - back])
        } else {
            let k = back - i;
            held.len().checked_sub(k).map(|j| held[j])
        }
    };
    memchr::memchr_iter(b'\n', input).find_map(|i| {
        let end = before(i, 1) == Some(b'\n') || (before(i, 1) == Some(b'\r') && before(i, 2) == Some(b'\n'));
        end.then_some(i + 1)
    })
}
