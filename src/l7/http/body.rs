//! Message body framing (RFC 9112 §6): how long a body is, and the chunked transfer coding
//! parsed as a streaming state machine so a chunk boundary can fall anywhere, even inside a
//! number (the decoded body is contiguous regardless).

/// How the body of the current message is delimited.
#[derive(Debug)]
pub(super) enum Framing {
    /// No body.
    None,
    /// `Content-Length`: bytes left.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunked),
    /// A response without length: the body runs to the end of the direction.
    Close,
    /// CONNECT or a protocol upgrade: what follows is not HTTP.
    Tunnel,
}

/// Longest chunk-size line prefix kept for passing on raw if the line turns out malformed.
const LINE_KEPT: usize = 64;
/// Longest chunk-size line (size and extensions) accepted, in bytes.
const LINE_MAX: usize = 4096;
/// Most hex digits in a chunk size (60 bits: no overflow).
const SIZE_DIGITS: u8 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the hex size.
    Size,
    /// After the size: optional whitespace and `;ext` up to the line end.
    Ext,
    /// Saw `\r`, want `\n`.
    SizeLf,
    /// Inside chunk data: bytes left.
    Data(u64),
    /// After chunk data: want `\r\n` (a bare `\n` is accepted).
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line (an empty one ends the message).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// Saw `\r` at a trailer line start, want `\n`.
    EndLf,
}

/// What the chunked parser found in the bytes it consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Framing bytes only; more needed.
    Framing,
    /// The consumed bytes are body data.
    Data,
    /// The last chunk (size 0) was read: the body is complete; trailers may follow.
    BodyEnd,
    /// The consumed bytes are trailer field bytes.
    Trailer,
    /// The message is complete.
    MessageEnd,
    /// Malformed framing at the consumed count: see [`Chunked::line`] for the line so far.
    Error,
}

/// Streaming parser of a chunked body.
pub(super) struct Chunked {
    phase: Phase,
    size: u64,
    digits: u8,
    /// Bytes of the current size line so far; `line[..line_len.min(LINE_KEPT)]` is kept.
    line: [u8; LINE_KEPT],
    line_len: usize,
}

impl Default for Chunked {
    fn default() -> Chunked {
        Chunked {
            phase: Phase::Size,
            size: 0,
            digits: 0,
            line: [0; LINE_KEPT],
            line_len: 0,
        }
    }
}

/// Position only: the kept line may hold body bytes of a malformed message.
impl std::fmt::Debug for Chunked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunked")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl Chunked {
    /// Consumes bytes from the front of `input`: how many and what they were. Body data comes
    /// back as whole runs (`(n, Data)`: `input[..n]`).
    pub(super) fn step(&mut self, input: &[u8]) -> (usize, Step) {
        if let Phase::Data(left) = self.phase {
            let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
            let left = left - take as u64;
            self.phase = if left == 0 { Phase::DataCr } else { Phase::Data(left) };
            return (take, Step::Data);
        }
        if matches!(self.phase, Phase::Trailer) {
            let (take, phase) = match memchr::memchr(b'\n', input) {
                Some(nl) => (nl + 1, Phase::TrailerStart),
                None => (input.len(), Phase::Trailer),
            };
            self.phase = phase;
            return (take, Step::Trailer);
        }
        for (i, &b) in input.iter().enumerate() {
            let used = i + 1;
            match self.phase {
                Phase::Size | Phase::Ext | Phase::SizeLf => {
                    if self.line_len < LINE_KEPT {
                        self.line[self.line_len] = b;
                    }
                    self.line_len += 1;
                    match self.size_line(b) {
                        Ok(None) if self.line_len <= LINE_MAX => {}
                        Ok(Some(step)) => return (used, step),
                        // The faulty byte is left in the input, not kept in the line.
                        Ok(None) | Err(()) => {
                            self.line_len -= 1;
                            return (i, Step::Error);
                        }
                    }
                }
                Phase::DataCr => match b {
                    b'\r' => self.phase = Phase::DataLf,
                    b'\n' => self.new_line(),
                    _ => return (i, Step::Error),
                },
                Phase::DataLf => match b {
                    b'\n' => self.new_line(),
                    _ => return (i, Step::Error),
                },
                Phase::TrailerStart => match b {
                    b'\r' => self.phase = Phase::EndLf,
                    b'\n' => return (used, Step::MessageEnd),
                    // A trailer field: hand it over from its first byte.
                    _ => {
                        self.phase = Phase::Trailer;
                        return (i, Step::Framing);
                    }
                },
                Phase::EndLf => match b {
                    b'\n' => return (used, Step::MessageEnd),
                    _ => return (i, Step::Error),
                },
                Phase::Data(_) | Phase::Trailer => unreachable!("handled above"),
            }
        }
        (input.len(), Step::Framing)
    }

    /// One byte of the size line: `Ok(Some(step))` at its end.
    fn size_line(&mut self, b: u8) -> Result<Option<Step>, ()> {
        match self.phase {
            Phase::Size => {
                if let Some(v) = super::percent::hex_val(b) {
                    if self.digits == SIZE_DIGITS {
                        return Err(());
                    }
                    self.size = self.size << 4 | u64::from(v);
                    self.digits += 1;
                    return Ok(None);
                }
                if self.digits == 0 {
                    return Err(());
                }
                match b {
                    b';' | b' ' | b'\t' => self.phase = Phase::Ext,
                    b'\r' => self.phase = Phase::SizeLf,
                    b'\n' => return Ok(Some(self.size_done())),
                    _ => return Err(()),
                }
            }
            Phase::Ext => match b {
                b'\r' => self.phase = Phase::SizeLf,
                b'\n' => return Ok(Some(self.size_done())),
                _ => {}
            },
            Phase::SizeLf => {
                if b != b'\n' {
                    return Err(());
                }
                return Ok(Some(self.size_done()));
            }
            _ => unreachable!("size line phases only"),
        }
        Ok(None)
    }

    fn size_done(&mut self) -> Step {
        let size = self.size;
        self.new_line();
        if size == 0 {
            self.phase = Phase::TrailerStart;
            Step::BodyEnd
        } else {
            self.phase = Phase::Data(size);
            Step::Framing
        }
    }

    fn new_line(&mut self) {
        self.phase = Phase::Size;
        self.size = 0;
        self.digits = 0;
        self.line_len = 0;
    }

    /// The size line read so far (its first [`LINE_KEPT`] bytes), to pass on raw after an error.
    pub(super) fn line(&self) -> &[u8] {
        let n = if matches!(self.phase, Phase::Size | Phase::Ext | Phase::SizeLf) {
            self.line_len.min(LINE_KEPT)
        } else {
            0
        };
        &self.line[..n]
    }

    /// Skips `missing` bytes lost inside chunk data; false when the gap does not fall wholly
    /// inside the current chunk (framing is lost).
    pub(super) fn skip(&mut self, missing: u64) -> bool {
        match self.phase {
            Phase::Data(left) if missing > 0 && missing <= left => {
                let left = left - missing;
                self.phase = if left == 0 { Phase::DataCr } else { Phase::Data(left) };
                true
            }
            _ => false,
        }
    }

    /// True while the body (not the trailer) is being read.
    pub(super) fn in_body(&self) -> bool {
        !matches!(self.phase, Phase::TrailerStart | Phase::Trailer | Phase::EndLf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the parser over `pieces`, returning the body, trailer bytes and whether it ended.
    fn run(pieces: &[&[u8]]) -> (Vec<u8>, Vec<u8>, bool, bool) {
        let mut c = Chunked::default();
        let (mut body, mut trailer, mut end, mut err) = (Vec::new(), Vec::new(), false, false);
        for p in pieces {
            let mut p = *p;
            while !p.is_empty() && !end && !err {
                let (n, step) = c.step(p);
                match step {
                    Step::Data => body.extend_from_slice(&p[..n]),
                    Step::Trailer => trailer.extend_from_slice(&p[..n]),
                    Step::MessageEnd => end = true,
                    Step::Error => err = true,
                    Step::Framing | Step::BodyEnd => {}
                }
                p = &p[n..];
            }
        }
        (body, trailer, end, err)
    }

    #[test]
    fn chunks_join_at_every_split() {
        let src: &[u8] = b"5;x=1\r\n35202\r\nA\r\n1234567-1,\r\n0\r\nX-T: 1\r\n\r\n";
        let whole = run(&[src]);
        assert_eq!(
            whole,
            (b"352021234567-1,".to_vec(), b"X-T: 1\r\n".to_vec(), true, false)
        );
        for cut in 0..=src.len() {
            assert_eq!(run(&[&src[..cut], &src[cut..]]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn malformed_sizes_are_errors() {
        assert!(run(&[b"zz\r\n"]).3);
        assert!(run(&[b"\r\n"]).3);
        assert!(run(&[b"1234567890abcdef0\r\n"]).3);
        assert!(run(&[b"3\r\nabcX"]).3);
        assert!(!run(&[b"3\nabc\n0\n\n"]).3, "bare LF is accepted");
    }
}
