//! SMTP client side (an inside host sending mail out): envelope evidence from the command phase,
//! the DATA phase (and BDAT chunks) as a MIME message, nothing after STARTTLS.
//!
//! Design constraints:
//! - Streaming: a command line is held up to [`MAX_COMMAND`] bytes (longer ones pass on raw
//!   with [`L7Event::HeaderTooLarge`]); message content is dot-unstuffed on the fly, the
//!   terminating `CRLF.CRLF` found wherever the pieces split it, and handed to a
//!   [`MimeDecoder`] which streams too.
//! - Every command line is a [`Location::Command`] section named by its verb, so a CNIC spelled
//!   into a `RCPT TO` local part is scanned.
//! - Evidence (envelope domains only, never local parts) belongs to one transaction: `MAIL`
//!   starts a new one.
//! - After `STARTTLS` the direction is encrypted: nothing more is scanned. The one exception
//!   is read from the content itself: if the next bytes are plain text instead of a TLS record,
//!   the server refused and the session goes on in clear, so it is decoded again.

use memchr::memchr;

use super::mime::MimeDecoder;
use super::{redact_digits, ContentSink, Evidence, L7Event, Location, Probe};

/// Longest command line held, in bytes (RFC 5321 allows 512); the rest of a longer one is
/// passed on raw.
pub const MAX_COMMAND: usize = 2048;
/// Most distinct recipient domains kept as evidence per transaction.
pub const MAX_DOMAINS: usize = 16;
/// Longest domain kept as evidence, in bytes.
const MAX_DOMAIN: usize = 255;
/// Longest command verb used as a section name.
const MAX_VERB: usize = 12;

/// Does this look like the start of an SMTP client session (`EHLO`/`HELO`)?
pub fn probe(first: &[u8]) -> Probe {
    let n = first.len().min(5);
    let fits = |greeting: &[u8]| greeting[..n].eq_ignore_ascii_case(&first[..n]);
    match (fits(b"EHLO "), fits(b"HELO ")) {
        (false, false) => Probe::No,
        _ if n == 5 => Probe::Yes,
        _ => Probe::Unsure,
    }
}

/// Where the dot-unstuffing is within a DATA line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unstuff {
    /// At the start of a line.
    LineStart,
    /// After a `.` at the start of a line (dropped: stuffing or the terminator).
    Period,
    /// After `.` CR at the start of a line: the terminator if LF follows.
    PeriodCr,
    /// Inside a line.
    Mid,
}

#[derive(Debug)]
enum State {
    /// Command phase: lines.
    Command,
    /// DATA: dot-stuffed message content up to `CRLF.CRLF`.
    Data(Unstuff),
    /// BDAT: `remaining` bytes of message content, then `last` ends the message.
    Bdat { remaining: u64, last: bool },
    /// STARTTLS sent: the next byte tells whether encryption started.
    TlsPending,
    /// Encrypted: nothing is scanned.
    Encrypted,
    /// Framing lost (a gap inside a BDAT chunk): the rest passes on raw.
    Raw,
}

/// Streaming decoder of an SMTP client's direction.
#[derive(Debug)]
pub struct SmtpDecoder {
    state: State,
    /// The command line being assembled. Invariant: `line.len() <= MAX_COMMAND`.
    line: Vec<u8>,
    /// The current command line overflowed: its rest streams raw until the line break.
    line_overflow: bool,
    /// The message of the current transaction (DATA, or BDAT across chunks).
    message: Option<MimeDecoder>,
    evidence: Evidence,
}

impl Default for SmtpDecoder {
    fn default() -> Self {
        SmtpDecoder {
            state: State::Command,
            line: Vec::new(),
            line_overflow: false,
            message: None,
            evidence: Evidence::default(),
        }
    }
}

impl SmtpDecoder {
    /// A decoder at the start of the session.
    pub fn new() -> SmtpDecoder {
        SmtpDecoder::default()
    }

    /// The next in-order bytes of the direction.
    pub fn data(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let used = match self.state {
                State::Command => self.command_bytes(rest, sink),
                State::Data(dot) => self.data_bytes(dot, rest, sink),
                State::Bdat { remaining, last } => self.bdat_bytes(remaining, last, rest, sink),
                State::TlsPending => {
                    // A TLS record starts with a handshake content type; a refused STARTTLS
                    // is followed by another command in clear.
                    self.state = if rest[0] == 0x16 {
                        State::Encrypted
                    } else {
                        State::Command
                    };
                    0
                }
                State::Encrypted => rest.len(),
                State::Raw => {
                    sink.data(rest);
                    rest.len()
                }
            };
            rest = &rest[used..];
        }
    }

    /// `missing` bytes (0 if unknown) will never arrive.
    pub fn gap(&mut self, missing: u64, sink: &mut dyn ContentSink) {
        match self.state {
            State::Command => {
                self.flush_line(sink);
                sink.gap();
            }
            State::Data(_) => {
                sink.event(L7Event::GapInMessage);
                if let Some(m) = &mut self.message {
                    m.gap(sink);
                }
                // The gap may have eaten a line break: a dot is only taken after the next one.
                self.state = State::Data(Unstuff::Mid);
            }
            State::Bdat { remaining, last } => {
                sink.event(L7Event::GapInMessage);
                if let Some(m) = &mut self.message {
                    m.gap(sink);
                }
                if missing > 0 && missing <= remaining {
                    self.state = State::Bdat {
                        remaining: remaining - missing,
                        last,
                    };
                    self.bdat_chunk_end(sink);
                } else {
                    // Where the next command starts is unknown.
                    self.end_message(sink);
                    sink.section(Location::Raw, b"");
                    self.state = State::Raw;
                }
            }
            // An unseen start of the TLS handshake: assume encryption.
            State::TlsPending => self.state = State::Encrypted,
            State::Encrypted => {}
            State::Raw => sink.gap(),
        }
    }

    /// End of the direction: flush what is buffered.
    pub fn finish(&mut self, sink: &mut dyn ContentSink) {
        if matches!(self.state, State::Command) {
            self.flush_line(sink);
        }
        self.end_message(sink);
    }

    /// True once STARTTLS took effect: nothing cleartext follows in this direction.
    pub fn is_encrypted(&self) -> bool {
        matches!(self.state, State::Encrypted)
    }

    /// Evidence (envelope domains) of the current message.
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// Heap bytes held, for flow memory accounting.
    pub fn memory(&self) -> usize {
        self.line.capacity()
            + self
                .message
                .as_ref()
                .map_or(0, |m| std::mem::size_of::<MimeDecoder>() + m.memory())
            + self.evidence.smtp_from_domain.capacity()
            + self
                .evidence
                .smtp_to_domains
                .iter()
                .map(String::capacity)
                .sum::<usize>()
    }

    /// Consumes command bytes up to the end of one line; returns how many.
    fn command_bytes(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) -> usize {
        let nl = memchr(b'\n', bytes);
        let take = nl.map_or(bytes.len(), |i| i + 1);
        if self.line_overflow {
            sink.data(&bytes[..take]);
            self.line_overflow = nl.is_none();
            return take;
        }
        if self.line.len() + take > MAX_COMMAND {
            sink.event(L7Event::HeaderTooLarge);
            // Named by the verb wherever the pieces split it.
            let mut head = [0u8; MAX_VERB];
            let n = self.line.len().min(MAX_VERB);
            head[..n].copy_from_slice(&self.line[..n]);
            let m = (MAX_VERB - n).min(take);
            head[n..n + m].copy_from_slice(&bytes[..m]);
            sink.section(Location::Command, verb(&head[..n + m]));
            sink.data(&self.line);
            self.line.clear();
            self.interrupt_message();
            self.line_overflow = true;
            return 0;
        }
        self.line.extend_from_slice(&bytes[..take]);
        if nl.is_some() {
            let line = std::mem::take(&mut self.line);
            self.command(&line, sink);
            self.line = line;
            self.line.clear();
        }
        take
    }

    /// Emits a partial command line (before a gap, the end, or an overflow).
    fn flush_line(&mut self, sink: &mut dyn ContentSink) {
        if !self.line.is_empty() {
            sink.section(Location::Command, verb(&self.line));
            sink.data(&self.line);
            self.line.clear();
            self.interrupt_message();
        }
    }

    /// A command section came between two chunks of the message: it re-opens its own.
    fn interrupt_message(&mut self) {
        if let Some(m) = &mut self.message {
            m.interrupt();
        }
    }

    /// One complete command line (with its line break).
    fn command(&mut self, line: &[u8], sink: &mut dyn ContentSink) {
        let verb = verb(line);
        let args = line[verb.len()..].trim_ascii();
        let is = |v: &[u8]| verb.eq_ignore_ascii_case(v);
        // A BDAT between two chunks of a message is framing (like an HTTP chunk size): not a
        // section, so a number split across chunks stays contiguous.
        let bdat = if is(b"BDAT") { bdat_args(args) } else { None };
        let framing = bdat.is_some() && self.message.is_some();
        if !framing {
            sink.section(Location::Command, verb);
            sink.data(line);
            self.interrupt_message();
        }
        if let Some((size, last)) = bdat {
            if self.message.is_none() {
                sink.message(&self.evidence);
                self.message = Some(MimeDecoder::message());
            }
            self.state = State::Bdat { remaining: size, last };
            if size == 0 {
                self.bdat_chunk_end(sink);
            }
            return;
        }
        if is(b"MAIL") {
            self.end_message(sink);
            self.evidence = Evidence::default();
            if let Some(d) = path_domain(args, b"FROM:") {
                self.evidence.smtp_from_domain = d;
            }
            sink.message(&self.evidence);
        } else if is(b"RCPT") {
            if let Some(d) = path_domain(args, b"TO:") {
                let to = &mut self.evidence.smtp_to_domains;
                if to.len() < MAX_DOMAINS && !to.contains(&d) {
                    to.push(d);
                }
            }
            sink.message(&self.evidence);
        } else if is(b"RSET") {
            self.end_message(sink);
            self.evidence = Evidence::default();
        } else if is(b"DATA") && args.is_empty() {
            self.end_message(sink);
            sink.message(&self.evidence);
            self.message = Some(MimeDecoder::message());
            self.state = State::Data(Unstuff::LineStart);
        } else if is(b"STARTTLS") {
            sink.event(L7Event::StartTls);
            self.state = State::TlsPending;
        }
    }

    /// Consumes DATA bytes: dot-unstuffing, up to and including the terminator.
    fn data_bytes(&mut self, mut dot: Unstuff, bytes: &[u8], sink: &mut dyn ContentSink) -> usize {
        let Some(mut message) = self.message.take() else {
            unreachable!("DATA state always has a message");
        };
        let mut run = 0; // start of the content run not yet handed on
        let mut i = 0;
        let mut ended = false;
        while i < bytes.len() {
            match dot {
                Unstuff::Mid => match memchr(b'\n', &bytes[i..]) {
                    Some(j) => {
                        i += j + 1;
                        dot = Unstuff::LineStart;
                    }
                    None => i = bytes.len(),
                },
                Unstuff::LineStart => {
                    if bytes[i] == b'.' {
                        message.data(&bytes[run..i], sink);
                        i += 1;
                        run = i;
                        dot = Unstuff::Period;
                    } else {
                        dot = Unstuff::Mid;
                    }
                }
                Unstuff::Period => match bytes[i] {
                    b'\r' => {
                        i += 1;
                        run = i;
                        dot = Unstuff::PeriodCr;
                    }
                    b'\n' => {
                        // `.` LF: a lenient terminator.
                        i += 1;
                        ended = true;
                        break;
                    }
                    _ => dot = Unstuff::Mid,
                },
                Unstuff::PeriodCr => {
                    if bytes[i] == b'\n' {
                        i += 1;
                        ended = true;
                        break;
                    }
                    // A stuffed dot followed by a lone CR: the CR is content.
                    message.data(b"\r", sink);
                    dot = Unstuff::Mid;
                }
            }
        }
        if !ended && run < i {
            message.data(&bytes[run..i], sink);
        }
        self.message = Some(message);
        if ended {
            self.end_message(sink);
            self.state = State::Command;
        } else {
            self.state = State::Data(dot);
        }
        i
    }

    /// Consumes BDAT chunk bytes; returns how many.
    fn bdat_bytes(&mut self, remaining: u64, last: bool, bytes: &[u8], sink: &mut dyn ContentSink) -> usize {
        let take = usize::try_from(remaining).unwrap_or(usize::MAX).min(bytes.len());
        if let Some(m) = &mut self.message {
            m.data(&bytes[..take], sink);
        }
        self.state = State::Bdat {
            remaining: remaining - take as u64,
            last,
        };
        self.bdat_chunk_end(sink);
        take
    }

    /// After BDAT bytes: at the chunk's end, back to commands (ending the message on LAST).
    fn bdat_chunk_end(&mut self, sink: &mut dyn ContentSink) {
        if let State::Bdat { remaining: 0, last } = self.state {
            if last {
                self.end_message(sink);
            }
            self.state = State::Command;
        }
    }

    /// Finishes the transaction's message, if one is open.
    fn end_message(&mut self, sink: &mut dyn ContentSink) {
        if let Some(mut m) = self.message.take() {
            m.finish(sink);
        }
    }
}

/// The command verb: the first word, letters only, at most [`MAX_VERB`] bytes.
fn verb(line: &[u8]) -> &[u8] {
    let n = line
        .iter()
        .take(MAX_VERB)
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    &line[..n]
}

/// `BDAT` arguments: chunk size and whether it is the `LAST`.
fn bdat_args(args: &[u8]) -> Option<(u64, bool)> {
    let mut words = args.split(|c| c.is_ascii_whitespace()).filter(|w| !w.is_empty());
    let size = std::str::from_utf8(words.next()?).ok()?.parse::<u64>().ok()?;
    Some((size, words.next().is_some_and(|w| w.eq_ignore_ascii_case(b"LAST"))))
}

/// The domain of `FROM:<local@domain>` / `TO:<…>`: lower-case, digit runs redacted, `None`
/// for the null path or a malformed one.
fn path_domain(args: &[u8], keyword: &[u8]) -> Option<String> {
    let head = args.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let path = args[keyword.len()..].trim_ascii_start();
    let path = match path.strip_prefix(b"<") {
        Some(p) => &p[..memchr(b'>', p)?],
        None => path.split(|c| c.is_ascii_whitespace()).next()?,
    };
    let at = path.iter().rposition(|&c| c == b'@')?;
    let domain = &path[at + 1..];
    let ok = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'[' | b']' | b':');
    if domain.is_empty() || domain.len() > MAX_DOMAIN || !domain.iter().all(ok) {
        return None;
    }
    let lower = String::from_utf8(domain.to_ascii_lowercase()).ok()?;
    Some(redact_digits(&lower))
}

#[cfg(test)]
mod tests;
