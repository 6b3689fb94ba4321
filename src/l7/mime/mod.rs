//! Streaming MIME entity decoding, shared by SMTP (a whole message) and HTTP
//! (`multipart/form-data` bodies): headers with RFC 2047 encoded-words, nested multiparts,
//! base64 and quoted-printable transfer encodings, attachment file names.
//!
//! Design constraints:
//! - Streaming with bounded state: a header line (at most [`MAX_LINE`] bytes, a longer one is
//!   passed on raw), one unfolded header ([`MAX_HEADER`]), the boundary stack ([`MAX_DEPTH`]
//!   boundaries of at most [`MAX_BOUNDARY`] bytes) and, at each line start inside a multipart,
//!   the held line break plus the few bytes that may still turn out to be a delimiter. Part
//!   bodies stream through; a 2 GB attachment is never held.
//! - A delimiter is recognised wherever the pieces split it; the line break before it belongs
//!   to it (RFC 2046 §5.1.1), every other byte of a body reaches the sink.
//! - Sections: each header is a [`Location::Header`] section (`Name: decoded value`); a leaf
//!   part's decoded body is [`Location::Attachment`] (named by its file name, digits redacted)
//!   when it has a file name or `Content-Disposition: attachment`, else [`Location::Body`]
//!   (named by its form field, if any). Preambles and epilogues are unnamed bodies.
//! - Multiparts nested deeper than [`MAX_DEPTH`] are an [`L7Event::NestingTooDeep`]; their
//!   content is passed on undecoded.

mod header;
#[cfg(test)]
pub(crate) mod recorder;
mod transfer;

use memchr::memchr;

use self::header::PartInfo;
use self::transfer::{Encoding, Leaf};
use super::{redact_digits, ContentSink, L7Event, Location};

/// Longest header line (physical), in bytes; RFC 5322 allows 998. A longer one is passed on raw
/// with [`L7Event::HeaderTooLarge`].
pub const MAX_LINE: usize = 8 * 1024;
/// Longest unfolded header, in bytes; the excess is passed on raw with
/// [`L7Event::HeaderTooLarge`].
pub const MAX_HEADER: usize = 16 * 1024;
/// Deepest nesting of multiparts and enclosed messages decoded.
pub const MAX_DEPTH: usize = 8;
/// Longest boundary accepted, in bytes (RFC 2046 allows 70); a multipart with a longer one is
/// treated as a single part.
pub const MAX_BOUNDARY: usize = 200;
/// Transport padding tolerated after a delimiter before the line break, in bytes.
const MAX_PADDING: usize = 32;

/// One open multipart.
#[derive(Debug)]
struct Boundary {
    /// Invariant: `1 <= delimiter.len() <= MAX_BOUNDARY`.
    delimiter: Vec<u8>,
    /// Enclosed messages entered between the enclosing multipart and this one (restored when
    /// this one closes).
    messages: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading an entity's header block.
    Headers,
    /// Streaming an entity's body (a leaf's content, or a multipart's preamble/epilogue).
    Body,
}

/// Where the delimiter scan is within a body line (only inside a multipart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// At a line start: `line` holds the line break before it and the line's first bytes, all
    /// of which may still be a delimiter.
    LineStart,
    /// Inside a line: content flows straight through.
    Mid,
    /// Inside a line whose last byte seen was CR, held back: it may begin a line break.
    MidCr,
}

/// The section of the current body, opened at its first content byte (empty bodies open
/// none) and again after the caller interleaved sections of its own.
#[derive(Debug)]
struct BodySection {
    location: Location,
    name: Vec<u8>,
    /// The sink's current section is this one.
    open: bool,
}

impl BodySection {
    fn new(location: Location, name: Vec<u8>) -> BodySection {
        BodySection {
            location,
            name,
            open: false,
        }
    }

    /// Opens the section on the sink unless it is the current one.
    fn open(&mut self, sink: &mut dyn ContentSink) {
        if !self.open {
            sink.section(self.location, &self.name);
            self.open = true;
        }
    }
}

/// Streaming decoder of one MIME entity.
#[derive(Debug)]
pub struct MimeDecoder {
    /// The open multiparts, outermost first. Invariant: `boundaries.len() <= MAX_DEPTH`.
    boundaries: Vec<Boundary>,
    /// `message/rfc822` entities entered since the innermost multipart began (nesting depth is
    /// the boundaries plus all their `messages` plus this).
    messages: u8,
    phase: Phase,
    scan: Scan,
    /// Headers: the physical line being assembled (`<= MAX_LINE`). Body at a line start: the
    /// held line break (`eol` bytes) then the line's first bytes (`<= eol + 2 + MAX_BOUNDARY
    /// + MAX_PADDING`).
    line: Vec<u8>,
    /// Invariant: `eol <= 2` and `eol <= line.len()` while `scan == LineStart`.
    eol: usize,
    /// A header line overflowed `MAX_LINE`: its rest streams raw until the line break.
    line_overflow: bool,
    /// The unfolded header being assembled. Invariant: `header.len() <= MAX_HEADER`.
    header: Vec<u8>,
    /// The current header overflowed: its continuation lines stream raw.
    header_spilled: bool,
    /// Decoded header value being built.
    scratch: Vec<u8>,
    /// What the current entity's headers said.
    part: PartInfo,
    /// Content decoder of the current body.
    leaf: Leaf,
    /// Section of the current body.
    body: BodySection,
    /// The caller opened a section of its own: raw header bytes re-open theirs first.
    interrupted: bool,
}

impl MimeDecoder {
    fn new(phase: Phase) -> MimeDecoder {
        MimeDecoder {
            boundaries: Vec::new(),
            messages: 0,
            phase,
            scan: Scan::LineStart,
            line: Vec::new(),
            eol: 0,
            line_overflow: false,
            header: Vec::new(),
            header_spilled: false,
            scratch: Vec::new(),
            part: PartInfo::default(),
            leaf: Leaf::default(),
            body: BodySection::new(Location::Body, Vec::new()),
            interrupted: false,
        }
    }

    /// A whole message or entity, headers first (SMTP DATA after dot-unstuffing).
    pub fn message() -> MimeDecoder {
        MimeDecoder::new(Phase::Headers)
    }

    /// A multipart body whose boundary came from an outer header (HTTP
    /// `Content-Type: multipart/form-data; boundary=…`); parts' `name`/`filename` become
    /// section names. An empty or over-long boundary decodes the body as one raw part.
    pub fn multipart(boundary: &[u8]) -> MimeDecoder {
        let mut d = MimeDecoder::new(Phase::Body);
        if (1..=MAX_BOUNDARY).contains(&boundary.len()) {
            d.boundaries.push(Boundary {
                delimiter: boundary.to_vec(),
                messages: 0,
            });
        }
        d
    }

    /// The next bytes of the entity.
    pub fn data(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let used = match self.phase {
                Phase::Headers => self.header_bytes(rest, sink),
                Phase::Body => self.body_bytes(rest, sink),
            };
            rest = &rest[used..];
        }
    }

    /// Content is missing here (a stream gap). The current part cannot be decoded further
    /// (a base64 quantum or a header block lost its alignment): its rest is passed on raw up
    /// to the next delimiter, where decoding resumes. The caller counts the event.
    pub fn gap(&mut self, sink: &mut dyn ContentSink) {
        match self.phase {
            Phase::Headers => {
                self.flush_header(sink);
                if !self.line.is_empty() && !self.line_overflow {
                    sink.section(Location::Header, b"");
                    sink.data(&self.line);
                }
                self.line.clear();
                self.line_overflow = false;
                self.part = PartInfo::default();
            }
            Phase::Body => {
                self.flush_held(sink);
                self.finish_leaf(sink);
            }
        }
        sink.gap();
        self.leaf = Leaf::default();
        self.phase = Phase::Body;
        self.scan = Scan::Mid;
        self.body = BodySection::new(Location::Body, Vec::new());
    }

    /// The caller opened sections of its own on the sink since this decoder's last output
    /// (SMTP commands between BDAT chunks): the current section is opened again before more
    /// content goes out.
    pub fn interrupt(&mut self) {
        self.body.open = false;
        self.interrupted = true;
    }

    /// End of the entity: flush buffered bytes (a final base64 quantum, a pending soft break,
    /// a last line without a line break).
    pub fn finish(&mut self, sink: &mut dyn ContentSink) {
        if self.phase == Phase::Headers && !self.line.is_empty() && !self.line_overflow {
            let line = std::mem::take(&mut self.line);
            self.header_line(&line, sink);
            self.reuse_line(line);
        }
        match self.phase {
            Phase::Headers => self.flush_header(sink),
            Phase::Body => {
                if self.scan == Scan::LineStart && self.line.len() > self.eol {
                    // A last line without a line break may still be a delimiter (`--b--`).
                    let held = std::mem::take(&mut self.line);
                    let content = strip_cr(&held[self.eol..]);
                    match self.match_delimiter(content) {
                        Some((k, close)) => self.delimiter(k, close, sink),
                        None => self.content(&held, sink),
                    }
                    self.eol = 0;
                    self.reuse_line(held);
                } else {
                    self.flush_held(sink);
                }
            }
        }
        self.finish_leaf(sink);
    }

    /// Heap bytes held, for flow memory accounting.
    pub fn memory(&self) -> usize {
        self.line.capacity()
            + self.header.capacity()
            + self.scratch.capacity()
            + self.body.name.capacity()
            + self.boundaries.capacity() * std::mem::size_of::<Boundary>()
            + self.boundaries.iter().map(|b| b.delimiter.capacity()).sum::<usize>()
            + self.part.boundary.capacity()
            + self.part.filename.as_ref().map_or(0, Vec::capacity)
            + self.part.field.as_ref().map_or(0, Vec::capacity)
    }

    /// Consumes header bytes up to the end of one line; returns how many.
    fn header_bytes(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) -> usize {
        let nl = memchr(b'\n', bytes);
        if self.line_overflow {
            let end = nl.map_or(bytes.len(), |i| i + 1);
            self.raw_header(&bytes[..end], sink);
            self.line_overflow = nl.is_none();
            return end;
        }
        let take = nl.map_or(bytes.len(), |i| i + 1);
        if self.line.len() + take > MAX_LINE {
            sink.event(L7Event::HeaderTooLarge);
            self.flush_header(sink);
            sink.section(Location::Header, b"");
            sink.data(&self.line);
            self.line.clear();
            self.line_overflow = true;
            return 0;
        }
        self.line.extend_from_slice(&bytes[..take]);
        if nl.is_some() {
            let line = std::mem::take(&mut self.line);
            self.header_line(&line, sink);
            self.reuse_line(line);
        }
        take
    }

    /// Gives a taken `line` buffer back for reuse, unless the body path has started holding
    /// bytes in the new one meanwhile.
    fn reuse_line(&mut self, mut buf: Vec<u8>) {
        if self.line.is_empty() {
            buf.clear();
            self.line = buf;
        }
    }

    /// One complete header-block line (with its line break, if any).
    fn header_line(&mut self, line: &[u8], sink: &mut dyn ContentSink) {
        let content = strip_eol(line);
        if let Some((k, close)) = self.match_delimiter(content) {
            // A part that ends inside its header block (no blank line).
            self.flush_header(sink);
            self.delimiter(k, close, sink);
            return;
        }
        if content.is_empty() {
            self.flush_header(sink);
            self.end_headers(sink);
            return;
        }
        if matches!(content[0], b' ' | b'\t') && (!self.header.is_empty() || self.header_spilled) {
            // Folded continuation: unfolding drops only the line break (RFC 5322 §2.2.3).
            if self.header_spilled {
                self.raw_header(content, sink);
            } else if self.header.len() + content.len() > MAX_HEADER {
                sink.event(L7Event::HeaderTooLarge);
                self.flush_header(sink);
                sink.data(content);
                self.header_spilled = true;
            } else {
                self.header.extend_from_slice(content);
            }
            return;
        }
        self.flush_header(sink);
        if header::split(content).is_some() {
            self.header.extend_from_slice(content);
            return;
        }
        // Not a header line: the body starts without the blank line (lenient, as MUAs are).
        self.end_headers(sink);
        self.body_bytes_all(line, sink);
    }

    /// Passes on the rest of an overflowing header, in the raw header section it opened.
    fn raw_header(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) {
        if std::mem::take(&mut self.interrupted) {
            sink.section(Location::Header, b"");
        }
        sink.data(bytes);
    }

    /// Emits the assembled header as a section and learns from it.
    fn flush_header(&mut self, sink: &mut dyn ContentSink) {
        self.header_spilled = false;
        self.interrupted = false;
        if self.header.is_empty() {
            return;
        }
        let h = std::mem::take(&mut self.header);
        match header::split(&h) {
            Some((name, value)) => {
                self.scratch.clear();
                self.scratch.extend_from_slice(name);
                self.scratch.extend_from_slice(b": ");
                header::decode_words(value, &mut self.scratch);
                if name.iter().any(u8::is_ascii_digit) {
                    // Section names reach alerts: a number in a header name is redacted there
                    // (the data keeps it, so it is still found).
                    sink.section(
                        Location::Header,
                        redact_digits(&String::from_utf8_lossy(name)).as_bytes(),
                    );
                } else {
                    sink.section(Location::Header, name);
                }
                sink.data(&self.scratch);
                self.part.header(name, value);
            }
            None => {
                sink.section(Location::Header, b"");
                sink.data(&h);
            }
        }
        self.header = h;
        self.header.clear();
        if self.scratch.capacity() > MAX_HEADER * 2 {
            self.scratch = Vec::new();
        }
    }

    /// The blank line after a header block: sets up the body.
    fn end_headers(&mut self, sink: &mut dyn ContentSink) {
        let part = std::mem::take(&mut self.part);
        self.phase = Phase::Body;
        self.scan = Scan::LineStart;
        self.line.clear();
        self.eol = 0;
        let depth = self
            .boundaries
            .iter()
            .map(|b| 1 + usize::from(b.messages))
            .sum::<usize>()
            + usize::from(self.messages);
        let boundary_ok = (1..=MAX_BOUNDARY).contains(&part.boundary.len());
        let nests = (part.multipart && boundary_ok) || (part.message && part.encoding == Encoding::Identity);
        if nests && depth >= MAX_DEPTH {
            sink.event(L7Event::NestingTooDeep);
            self.leaf = Leaf::default();
            self.body = BodySection::new(Location::Body, Vec::new());
            return;
        }
        if part.multipart && boundary_ok {
            self.boundaries.push(Boundary {
                delimiter: part.boundary,
                messages: self.messages,
            });
            self.messages = 0;
            self.leaf = Leaf::default();
            // The preamble.
            self.body = BodySection::new(Location::Body, Vec::new());
            return;
        }
        if nests {
            // An enclosed message: its own header block follows.
            self.messages += 1;
            self.phase = Phase::Headers;
            return;
        }
        self.leaf = Leaf::new(part.encoding, part.latin1);
        let (location, name) = match (&part.filename, &part.field) {
            (Some(f), _) => (Location::Attachment, f.as_slice()),
            (None, _) if part.attachment => (Location::Attachment, &b""[..]),
            (None, Some(field)) => (Location::Body, field.as_slice()),
            (None, None) => (Location::Body, &b""[..]),
        };
        self.body = BodySection::new(location, redact_digits(&String::from_utf8_lossy(name)).into_bytes());
    }

    /// Feeds `bytes` through the body path entirely (they may end the body and start headers).
    fn body_bytes_all(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let used = match self.phase {
                Phase::Headers => self.header_bytes(rest, sink),
                Phase::Body => self.body_bytes(rest, sink),
            };
            rest = &rest[used..];
        }
    }

    /// Consumes body bytes; returns how many (stops early when a delimiter starts headers).
    fn body_bytes(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) -> usize {
        if self.boundaries.is_empty() {
            self.content(bytes, sink);
            return bytes.len();
        }
        let mut i = 0;
        // A close delimiter may end the last multipart (or start headers): the caller goes on.
        while i < bytes.len() && self.phase == Phase::Body && !self.boundaries.is_empty() {
            let rest = &bytes[i..];
            match self.scan {
                Scan::MidCr => {
                    if rest[0] == b'\n' {
                        self.hold_eol(b"\r\n");
                        i += 1;
                    } else {
                        self.content(b"\r", sink);
                        self.scan = Scan::Mid;
                    }
                }
                Scan::Mid => match memchr(b'\n', rest) {
                    Some(j) => {
                        let cr = j > 0 && rest[j - 1] == b'\r';
                        let end = j - usize::from(cr);
                        self.content(&rest[..end], sink);
                        self.hold_eol(&rest[end..=j]);
                        i += j + 1;
                    }
                    None => {
                        let cr = rest.ends_with(b"\r");
                        self.content(&rest[..rest.len() - usize::from(cr)], sink);
                        if cr {
                            self.scan = Scan::MidCr;
                        }
                        i = bytes.len();
                    }
                },
                Scan::LineStart => i += self.line_start(rest, sink),
            }
        }
        i
    }

    /// A line break (held: it belongs to a delimiter if one follows).
    fn hold_eol(&mut self, eol: &[u8]) {
        self.line.clear();
        self.line.extend_from_slice(eol);
        self.eol = eol.len();
        self.scan = Scan::LineStart;
    }

    /// At a line start: consumes bytes while the line may still be a delimiter; returns how
    /// many were consumed.
    fn line_start(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) -> usize {
        for (j, &c) in bytes.iter().enumerate() {
            if c == b'\n' {
                let held = std::mem::take(&mut self.line);
                let content = strip_cr(&held[self.eol..]);
                if let Some((k, close)) = self.match_delimiter(content) {
                    self.line = held;
                    self.line.clear();
                    self.eol = 0;
                    self.delimiter(k, close, sink);
                    return j + 1;
                }
                // Not a delimiter: held bytes are content, except a CR that joins this LF.
                let cr = held.len() > self.eol && held.ends_with(b"\r");
                self.content(&held[..held.len() - usize::from(cr)], sink);
                self.line = held;
                self.hold_eol(if cr { b"\r\n" } else { b"\n" });
                continue;
            }
            self.line.push(c);
            if !self.may_be_delimiter(&self.line[self.eol..]) {
                self.line.pop();
                let held = std::mem::take(&mut self.line);
                self.content(&held, sink);
                self.line = held;
                self.line.clear();
                self.eol = 0;
                self.scan = Scan::Mid;
                // `c` is read again inside the line (it may be CR or start content).
                return j;
            }
        }
        bytes.len()
    }

    /// Whether a line starting with `prefix` (no line break) may still be a delimiter line.
    fn may_be_delimiter(&self, prefix: &[u8]) -> bool {
        if prefix.len() <= 2 {
            return b"--".starts_with(prefix);
        }
        if !prefix.starts_with(b"--") {
            return false;
        }
        let rest = &prefix[2..];
        self.boundaries.iter().any(|b| {
            let d = &b.delimiter;
            if rest.len() <= d.len() {
                d.starts_with(rest)
            } else {
                rest.starts_with(d) && rest.len() <= d.len() + MAX_PADDING
            }
        })
    }

    /// Which open multipart (index, innermost first) a line (without its line break) delimits,
    /// and whether it is the close delimiter `--b--`.
    fn match_delimiter(&self, line: &[u8]) -> Option<(usize, bool)> {
        let rest = line.strip_prefix(b"--")?;
        self.boundaries.iter().enumerate().rev().find_map(|(k, b)| {
            let tail = rest.strip_prefix(&b.delimiter[..])?;
            if tail.starts_with(b"--") {
                Some((k, true))
            } else if tail.iter().all(|&c| c == b' ' || c == b'\t') {
                Some((k, false))
            } else {
                None
            }
        })
    }

    /// A delimiter of multipart `k`: ends the current part (and any multiparts inside `k`).
    fn delimiter(&mut self, k: usize, close: bool, sink: &mut dyn ContentSink) {
        self.finish_leaf(sink);
        self.leaf = Leaf::default();
        self.header.clear();
        self.header_spilled = false;
        self.line_overflow = false;
        self.part = PartInfo::default();
        self.boundaries.truncate(k + 1);
        self.line.clear();
        self.eol = 0;
        self.scan = Scan::LineStart;
        if close {
            // The epilogue: content of the enclosing entity, scanned undecoded.
            self.messages = self.boundaries.pop().map_or(0, |b| b.messages);
            self.phase = Phase::Body;
        } else {
            // A new part directly inside multipart `k`.
            self.messages = 0;
            self.phase = Phase::Headers;
        }
        self.body = BodySection::new(Location::Body, Vec::new());
    }

    /// Emits held line-start bytes as content (no delimiter can follow a gap or the end).
    fn flush_held(&mut self, sink: &mut dyn ContentSink) {
        match self.scan {
            Scan::LineStart if !self.line.is_empty() => {
                let held = std::mem::take(&mut self.line);
                self.content(&held, sink);
                self.line = held;
                self.line.clear();
            }
            Scan::MidCr => self.content(b"\r", sink),
            _ => {}
        }
        self.eol = 0;
        self.scan = Scan::LineStart;
    }

    /// Decodes body content into the current section.
    fn content(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) {
        if bytes.is_empty() {
            return;
        }
        self.interrupted = false;
        self.body.open(sink);
        self.leaf.decode(bytes, &mut |b| sink.data(b));
    }

    /// Flushes the current leaf's decoder (a final quantum or escape).
    fn finish_leaf(&mut self, sink: &mut dyn ContentSink) {
        let body = &mut self.body;
        self.leaf.finish(&mut |b| {
            body.open(sink);
            sink.data(b)
        });
    }
}

/// A line without its trailing CR.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A line without its trailing LF or CRLF.
fn strip_eol(line: &[u8]) -> &[u8] {
    strip_cr(line.strip_suffix(b"\n").unwrap_or(line))
}

#[cfg(test)]
mod tests;
