//! DNS over TCP: messages framed by a 2-byte length (RFC 1035 §4.2.2), split across pieces
//! anyhow. One message at a time is held (at most 65535 bytes, the format's own bound).

use super::datagram;
use crate::l7::{ContentSink, Evidence, L7Event, Location};

/// A message buffer grown past this is released after use, so idle flows stay small.
const KEEP: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the length prefix: `have` bytes of it seen, the first being `hi`.
    Length { have: u8, hi: u8 },
    /// Reading a message of `len` bytes into `buf`.
    Message { len: usize },
    /// After a gap inside a message: its last `remaining` bytes pass on raw, then framing
    /// resumes.
    Skip { remaining: usize },
    /// Framing lost (garbage, or a gap across a message boundary): the rest passes on raw.
    Raw,
}

/// DNS over TCP: 2-byte length-prefixed messages.
#[derive(Debug)]
pub struct DnsTcpDecoder {
    state: State,
    /// The message being assembled. Invariant: `buf.len() < len` in `State::Message`.
    buf: Vec<u8>,
    evidence: Evidence,
}

impl Default for DnsTcpDecoder {
    fn default() -> Self {
        DnsTcpDecoder {
            state: State::Length { have: 0, hi: 0 },
            buf: Vec::new(),
            evidence: Evidence::default(),
        }
    }
}

impl DnsTcpDecoder {
    /// A decoder at the start of the stream.
    pub fn new() -> DnsTcpDecoder {
        DnsTcpDecoder::default()
    }

    /// The next in-order bytes of the direction.
    pub fn data(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) {
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.state {
                State::Length { have: 0, .. } => {
                    self.state = State::Length { have: 1, hi: rest[0] };
                    rest = &rest[1..];
                }
                State::Length { hi, .. } => {
                    let len = usize::from(u16::from_be_bytes([hi, rest[0]]));
                    rest = &rest[1..];
                    if len == 0 {
                        self.garbage(&[hi, 0], sink);
                    } else {
                        self.buf.clear();
                        self.state = State::Message { len };
                    }
                }
                State::Message { len } => {
                    if self.buf.is_empty() && rest.len() >= len {
                        // The whole message is in this piece: no copy.
                        let (msg, tail) = rest.split_at(len);
                        self.message(msg, sink);
                        rest = tail;
                        continue;
                    }
                    let take = (len - self.buf.len()).min(rest.len());
                    self.buf.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if self.buf.len() == len {
                        let msg = std::mem::take(&mut self.buf);
                        self.message(&msg, sink);
                        if msg.capacity() <= KEEP {
                            self.buf = msg;
                        }
                    }
                }
                State::Skip { remaining } => {
                    let take = remaining.min(rest.len());
                    sink.data(&rest[..take]);
                    rest = &rest[take..];
                    self.state = match remaining - take {
                        0 => State::Length { have: 0, hi: 0 },
                        r => State::Skip { remaining: r },
                    };
                }
                State::Raw => {
                    sink.data(rest);
                    rest = &[];
                }
            }
        }
    }

    /// `missing` bytes (0 if unknown) will never arrive.
    pub fn gap(&mut self, missing: u64, sink: &mut dyn ContentSink) {
        let remaining = match self.state {
            State::Message { len } => len - self.buf.len(),
            State::Skip { remaining } => remaining,
            State::Raw => {
                sink.gap();
                return;
            }
            State::Length { .. } => 0,
        };
        sink.event(L7Event::GapInMessage);
        sink.section(Location::Raw, b"");
        match self.state {
            // The part of the message before the gap cannot be parsed: it is scanned raw.
            State::Message { .. } => sink.data(&self.buf),
            State::Length { have: 1, hi } => sink.data(&[hi]),
            _ => {}
        }
        self.buf.clear();
        sink.gap();
        self.state = match usize::try_from(missing) {
            Ok(m) if m > 0 && m <= remaining => State::Skip {
                remaining: remaining - m,
            },
            // The gap swallowed a length prefix: where messages start is unknown.
            _ => State::Raw,
        };
        if self.state == (State::Skip { remaining: 0 }) {
            self.state = State::Length { have: 0, hi: 0 };
        }
    }

    /// End of the direction: a truncated last message is scanned raw.
    pub fn finish(&mut self, sink: &mut dyn ContentSink) {
        match self.state {
            State::Message { .. } => {
                sink.section(Location::Raw, b"");
                sink.data(&self.buf);
            }
            State::Length { have: 1, hi } => {
                sink.section(Location::Raw, b"");
                sink.data(&[hi]);
            }
            _ => {}
        }
        self.buf = Vec::new();
        self.state = State::Raw;
    }

    /// Evidence of the last message.
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// Heap bytes held, for flow memory accounting.
    pub fn memory(&self) -> usize {
        self.buf.capacity() + self.evidence.dns_domain.capacity()
    }

    /// One whole framed message.
    fn message(&mut self, msg: &[u8], sink: &mut dyn ContentSink) {
        self.state = State::Length { have: 0, hi: 0 };
        if !datagram(msg, sink, &mut self.evidence) {
            let prefix = (msg.len() as u16).to_be_bytes();
            self.garbage(&prefix, sink);
            sink.data(msg);
        }
    }

    /// Not DNS: counted, and this and everything after it is scanned raw.
    fn garbage(&mut self, held: &[u8], sink: &mut dyn ContentSink) {
        sink.event(L7Event::ParseError);
        sink.section(Location::Raw, b"");
        sink.data(held);
        self.state = State::Raw;
    }
}
