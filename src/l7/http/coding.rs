//! `Content-Encoding` decoding of a body: gzip, deflate (zlib-wrapped or raw, told apart by the
//! first two bytes as browsers do) and brotli, streaming through one output buffer per thread.
//!
//! Bounds: a body inflates to at most [`MAX_INFLATED`] bytes, and past [`RATIO_FLOOR`] bytes of
//! output to at most [`MAX_RATIO`] times its compressed size. Crossing either is a
//! decompression bomb: the output so far is kept, the rest of the body's compressed bytes are
//! scanned raw, and [`L7Event::DecompressionBomb`] is reported. Corrupt data likewise ends
//! decoding with [`L7Event::DecompressionError`] and the rest passes raw: nothing is lost.

use super::content::Content;
use crate::l7::{ContentSink, L7Event, Location};
use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
use flate2::{Decompress, FlushDecompress, Status};

/// Most bytes one body may inflate to (256 MiB).
pub(super) const MAX_INFLATED: u64 = 256 << 20;
/// Output (bytes) below which the ratio bound does not apply, so small, very repetitive bodies
/// (a page of zeros) are decoded whole (4 MiB).
pub(super) const RATIO_FLOOR: u64 = 4 << 20;
/// Most output bytes per compressed input byte once past [`RATIO_FLOOR`]. Text, CSV and JSON
/// stay well under 50; runs of zeros reach ~1000.
pub(super) const MAX_RATIO: u64 = 100;
/// Size of the output buffer (bytes).
const OUT_BUF: usize = 16 << 10;
/// Heap held by one inflate state (zlib-rs: 32 KiB window plus tables), for memory accounting.
pub(super) const INFLATE_STATE: usize = 43 << 10;
/// Idle inflate states a thread keeps for its next bodies (at most ~700 KiB).
const SPARE_INFLATE: usize = 16;

/// Inflate states and the output buffer, per thread (a worker is one thread) instead of per
/// flow. A flow holds an inflate state only while one of its bodies inflates, and takes the one
/// most recently given back, whose pages are mapped and often still in cache: a new state per
/// flow cost a page fault for each first touch of its window and a zeroed 16 KiB buffer, half
/// of the sensor's page faults on the cleartext benchmark.
mod spare {
    use super::{Decompress, OUT_BUF, SPARE_INFLATE};
    use std::cell::{Cell, RefCell};

    thread_local! {
        static INFLATE: RefCell<Vec<Decompress>> = const { RefCell::new(Vec::new()) };
        static OUT: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    }

    /// An inflate state ready for a new stream (`zlib`: with a zlib header, else raw deflate).
    pub(super) fn inflate(zlib: bool) -> Decompress {
        match INFLATE.with_borrow_mut(Vec::pop) {
            Some(mut d) => {
                // Reset forgets the last stream's window: a new one cannot refer back into it.
                d.reset(zlib);
                d
            }
            None => Decompress::new(zlib),
        }
    }

    /// Keeps `d` for a later body, unless enough are kept already.
    pub(super) fn give_back(d: Decompress) {
        INFLATE.with_borrow_mut(|spare| {
            if spare.len() < SPARE_INFLATE {
                spare.push(d);
            }
        });
    }

    /// Runs `f` with the thread's output buffer (a fresh one if it is already in use).
    pub(super) fn with_out<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut out = OUT.take();
        if out.is_empty() {
            out = vec![0; OUT_BUF];
        }
        let r = f(&mut out);
        OUT.set(out);
        r
    }
}

/// A body's content coding, read from `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CodingKind {
    /// No coding (or `identity`).
    Identity,
    /// `gzip` / `x-gzip`.
    Gzip,
    /// `deflate`: zlib-wrapped per RFC 9110, raw in practice from some servers.
    Deflate,
    /// `br`.
    Brotli,
}

type Brotli = BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>;

/// Where the decoder is within the current body's coded stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Bytes pass straight to the content stage.
    Identity,
    /// Inside a gzip member header (RFC 1952 §2.3).
    GzHeader(GzHeader),
    /// Deflate: the first byte, held until the second tells zlib from raw.
    DeflateSniff(Option<u8>),
    /// Inflating (gzip member data, zlib or raw deflate).
    Inflate,
    /// Skipping a gzip member's CRC32 and ISIZE (bytes left).
    GzTrailer(u8),
    /// After a gzip member: another member may follow.
    GzNext,
    /// Decoding brotli.
    Brotli,
    /// The coded stream ended; any further bytes are junk, scanned raw.
    Ended,
    /// Decoding was given up (bomb, corrupt data, gap); the rest of the body passes raw.
    Cut,
}

/// Streaming gzip header parser state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GzHeader {
    step: GzStep,
    flags: u8,
    /// Bytes read (fixed part, XLEN) or left (extra field, header CRC) of the current step.
    n: u16,
    /// Low byte of XLEN.
    xlen_lo: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GzStep {
    Fixed,
    Xlen,
    Extra,
    Name,
    Comment,
    Hcrc,
    Done,
}

const FHCRC: u8 = 2;
const FEXTRA: u8 = 4;
const FNAME: u8 = 8;
const FCOMMENT: u8 = 16;

impl GzHeader {
    fn new() -> GzHeader {
        GzHeader {
            step: GzStep::Fixed,
            flags: 0,
            n: 0,
            xlen_lo: 0,
        }
    }

    fn done(&self) -> bool {
        self.step == GzStep::Done
    }

    /// Consumes header bytes from `input`: `Ok(used)` (see [`GzHeader::done`]), or `Err(used)`
    /// when the bytes are not a gzip header (`used` bytes were read before the fault).
    fn parse(&mut self, input: &[u8]) -> Result<usize, usize> {
        let mut i = 0;
        while i < input.len() && !self.done() {
            let b = input[i];
            match self.step {
                GzStep::Fixed => {
                    let ok = match self.n {
                        0 => b == 0x1f,
                        1 => b == 0x8b,
                        2 => b == 8,
                        3 => b & 0xe0 == 0,
                        _ => true,
                    };
                    if !ok {
                        return Err(i);
                    }
                    if self.n == 3 {
                        self.flags = b;
                    }
                    self.n += 1;
                    i += 1;
                    if self.n == 10 {
                        self.enter(GzStep::Xlen);
                    }
                }
                GzStep::Xlen => {
                    i += 1;
                    if self.n == 0 {
                        self.xlen_lo = b;
                        self.n = 1;
                    } else {
                        self.n = u16::from(self.xlen_lo) | u16::from(b) << 8;
                        self.enter(GzStep::Extra);
                    }
                }
                GzStep::Extra => {
                    let take = usize::from(self.n).min(input.len() - i);
                    self.n -= take as u16;
                    i += take;
                    if self.n == 0 {
                        self.enter(GzStep::Name);
                    }
                }
                GzStep::Name | GzStep::Comment => match memchr::memchr(0, &input[i..]) {
                    Some(z) => {
                        i += z + 1;
                        let next = if self.step == GzStep::Name {
                            GzStep::Comment
                        } else {
                            GzStep::Hcrc
                        };
                        self.enter(next);
                    }
                    None => i = input.len(),
                },
                GzStep::Hcrc => {
                    i += 1;
                    self.n -= 1;
                    if self.n == 0 {
                        self.step = GzStep::Done;
                    }
                }
                GzStep::Done => unreachable!("loop ends when done"),
            }
        }
        Ok(i)
    }

    /// Moves to `step`, stepping over optional fields whose flag is clear.
    fn enter(&mut self, mut step: GzStep) {
        loop {
            let (present, next) = match step {
                GzStep::Xlen => (self.flags & FEXTRA != 0, GzStep::Name),
                // Entered from XLEN with `n` = its value.
                GzStep::Extra => (self.n > 0, GzStep::Name),
                GzStep::Name => (self.flags & FNAME != 0, GzStep::Comment),
                GzStep::Comment => (self.flags & FCOMMENT != 0, GzStep::Hcrc),
                GzStep::Hcrc => (self.flags & FHCRC != 0, GzStep::Done),
                GzStep::Fixed | GzStep::Done => (true, step),
            };
            if present {
                self.step = step;
                self.n = match step {
                    GzStep::Hcrc => 2,
                    GzStep::Extra => self.n,
                    _ => 0,
                };
                return;
            }
            step = next;
        }
    }
}

/// Content decoding of one direction's bodies. An inflate state is held from a deflate
/// stream's start to the body's end (see [`spare`]).
pub(super) struct Decoder {
    phase: Phase,
    kind: CodingKind,
    inflate: Option<Decompress>,
    brotli: Option<Box<Brotli>>,
    /// Compressed bytes consumed and bytes produced in the current body.
    total_in: u64,
    total_out: u64,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("phase", &self.phase)
            .field("kind", &self.kind)
            .field("total_in", &self.total_in)
            .field("total_out", &self.total_out)
            .finish_non_exhaustive()
    }
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder {
            phase: Phase::Identity,
            kind: CodingKind::Identity,
            inflate: None,
            brotli: None,
            total_in: 0,
            total_out: 0,
        }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        self.release();
    }
}

/// One decompressor's step: `(decoder, output buffer, input, content, sink)` to `Ok(used)` or
/// `Err((used, why))`.
type DecodeStep =
    fn(&mut Decoder, &mut [u8], &[u8], &mut Content, &mut dyn ContentSink) -> Result<usize, (usize, Stop)>;

/// Why coded decoding stopped before the body ended.
enum Stop {
    Bomb,
    Corrupt,
    /// The stream ended early; the rest is junk (reported as corrupt only if not empty).
    Ended,
}

impl Decoder {
    /// Starts a new body coded with `kind`.
    pub(super) fn start(&mut self, kind: CodingKind) {
        self.kind = kind;
        self.total_in = 0;
        self.total_out = 0;
        self.brotli = None;
        self.phase = match kind {
            CodingKind::Identity => Phase::Identity,
            CodingKind::Gzip => Phase::GzHeader(GzHeader::new()),
            CodingKind::Deflate => Phase::DeflateSniff(None),
            CodingKind::Brotli => {
                self.brotli = Some(Box::new(Brotli::new_strict(
                    StandardAlloc::default(),
                    StandardAlloc::default(),
                    StandardAlloc::default(),
                )));
                Phase::Brotli
            }
        };
    }

    /// Decodes the next coded bytes of the body into `content`.
    pub(super) fn feed(&mut self, input: &[u8], content: &mut Content, sink: &mut dyn ContentSink) {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            match self.phase {
                Phase::Identity => {
                    content.feed(rest, sink);
                    return;
                }
                Phase::Cut => {
                    sink.data(rest);
                    return;
                }
                Phase::Ended => {
                    self.stop(Stop::Ended, rest, content, sink);
                    return;
                }
                Phase::GzHeader(mut h) => match h.parse(rest) {
                    Ok(used) => {
                        pos += used;
                        self.total_in += used as u64;
                        self.phase = if h.done() {
                            self.reset_inflate(false);
                            Phase::Inflate
                        } else {
                            Phase::GzHeader(h)
                        };
                    }
                    Err(used) => {
                        // Not gzip after all (a mislabelled body): scanned raw from the fault on.
                        self.stop(Stop::Corrupt, &rest[used..], content, sink);
                        return;
                    }
                },
                Phase::DeflateSniff(held) => match held {
                    None => {
                        self.phase = Phase::DeflateSniff(Some(rest[0]));
                        pos += 1;
                    }
                    Some(first) => {
                        let zlib = (first & 0x0f) == 8 && (u16::from(first) << 8 | u16::from(rest[0])) % 31 == 0;
                        self.reset_inflate(zlib);
                        self.phase = Phase::Inflate;
                        if let Err((_, why)) = self.decode_with(Decoder::inflate, &[first], content, sink) {
                            // Corrupt at the first byte: it goes raw with the rest.
                            self.stop(why, &[first], content, sink);
                            sink.data(rest);
                            return;
                        }
                    }
                },
                Phase::Inflate => match self.decode_with(Decoder::inflate, rest, content, sink) {
                    Ok(used) => pos += used,
                    Err((used, stop)) => {
                        self.stop(stop, &rest[used..], content, sink);
                        return;
                    }
                },
                Phase::GzTrailer(left) => {
                    let take = usize::from(left).min(rest.len());
                    pos += take;
                    self.total_in += take as u64;
                    self.phase = if usize::from(left) == take {
                        Phase::GzNext
                    } else {
                        Phase::GzTrailer(left - take as u8)
                    };
                }
                Phase::GzNext => {
                    self.phase = if rest[0] == 0x1f {
                        Phase::GzHeader(GzHeader::new())
                    } else {
                        Phase::Ended
                    };
                }
                Phase::Brotli => match self.decode_with(Decoder::brotli, rest, content, sink) {
                    Ok(used) => pos += used,
                    Err((used, stop)) => {
                        self.stop(stop, &rest[used..], content, sink);
                        return;
                    }
                },
            }
        }
    }

    /// End of the body. A truncated coded stream is not an error: what was decoded was scanned.
    pub(super) fn finish(&mut self, content: &mut Content, sink: &mut dyn ContentSink) {
        if let Phase::DeflateSniff(Some(first)) = self.phase {
            // A one-byte deflate body cannot be decoded; scan it raw.
            self.stop(Stop::Corrupt, &[first], content, sink);
        }
        self.phase = Phase::Identity;
        self.release();
    }

    /// Lets go of the decompressor state: the body ended, or the rest of it passes raw.
    fn release(&mut self) {
        self.brotli = None;
        if let Some(d) = self.inflate.take() {
            spare::give_back(d);
        }
    }

    /// Content is missing: a coded stream cannot continue past it, so the rest of the body is
    /// passed raw. Returns false when bytes were not coded (the caller just marks the gap).
    pub(super) fn gap(&mut self, content: &mut Content, sink: &mut dyn ContentSink) -> bool {
        if matches!(self.phase, Phase::Identity) {
            return false;
        }
        if self.phase != Phase::Cut {
            content.finish(sink);
            sink.section(Location::Raw, b"");
            self.phase = Phase::Cut;
            self.release();
        }
        sink.gap();
        true
    }

    /// Heap bytes held.
    pub(super) fn memory(&self) -> usize {
        let inflate = if self.inflate.is_some() { INFLATE_STATE } else { 0 };
        let brotli = self.brotli.as_ref().map_or(0, |b| {
            std::mem::size_of::<Brotli>() + usize::try_from(b.ringbuffer_size).unwrap_or(0)
        });
        inflate + brotli
    }

    fn reset_inflate(&mut self, zlib: bool) {
        match &mut self.inflate {
            Some(d) => d.reset(zlib),
            None => self.inflate = Some(spare::inflate(zlib)),
        }
    }

    /// Runs `step` (inflate or brotli) on `input` with the thread's output buffer: `Ok(used)`,
    /// or `Err((used, why))` when decoding must stop.
    fn decode_with(
        &mut self,
        step: DecodeStep,
        input: &[u8],
        content: &mut Content,
        sink: &mut dyn ContentSink,
    ) -> Result<usize, (usize, Stop)> {
        spare::with_out(|out| step(self, out, input, content, sink))
    }

    fn inflate(
        &mut self,
        out: &mut [u8],
        input: &[u8],
        content: &mut Content,
        sink: &mut dyn ContentSink,
    ) -> Result<usize, (usize, Stop)> {
        let Some(d) = self.inflate.as_mut() else {
            return Err((0, Stop::Corrupt));
        };
        let mut pos = 0;
        loop {
            let (in0, out0) = (d.total_in(), d.total_out());
            let status = d.decompress(&input[pos..], out, FlushDecompress::None);
            let used = (d.total_in() - in0) as usize;
            let made = (d.total_out() - out0) as usize;
            pos += used;
            self.total_in += used as u64;
            if !deliver(&out[..made], &mut self.total_out, self.total_in, content, sink) {
                return Err((pos, Stop::Bomb));
            }
            match status {
                Err(_) => return Err((pos, Stop::Corrupt)),
                Ok(Status::StreamEnd) => {
                    self.phase = match self.kind {
                        CodingKind::Gzip => Phase::GzTrailer(8),
                        _ => Phase::Ended,
                    };
                    return Ok(pos);
                }
                Ok(_) => {
                    // Done with this piece when all input is taken and the output buffer was not
                    // filled (nothing more is pending), or when no progress is possible.
                    if (pos == input.len() && made < out.len()) || (used == 0 && made == 0) {
                        return Ok(pos);
                    }
                }
            }
        }
    }

    fn brotli(
        &mut self,
        out: &mut [u8],
        input: &[u8],
        content: &mut Content,
        sink: &mut dyn ContentSink,
    ) -> Result<usize, (usize, Stop)> {
        let Some(state) = self.brotli.as_deref_mut() else {
            return Err((0, Stop::Corrupt));
        };
        let mut pos = 0;
        loop {
            let mut avail_in = input.len() - pos;
            let mut in_off = pos;
            let mut avail_out = out.len();
            let mut out_off = 0;
            let mut total = 0;
            let result = BrotliDecompressStream(
                &mut avail_in,
                &mut in_off,
                input,
                &mut avail_out,
                &mut out_off,
                out,
                &mut total,
                state,
            );
            self.total_in += (in_off - pos) as u64;
            pos = in_off;
            if !deliver(&out[..out_off], &mut self.total_out, self.total_in, content, sink) {
                return Err((pos, Stop::Bomb));
            }
            match result {
                BrotliResult::NeedsMoreOutput => {}
                BrotliResult::NeedsMoreInput => return Ok(pos),
                BrotliResult::ResultSuccess => {
                    self.phase = Phase::Ended;
                    return Ok(pos);
                }
                BrotliResult::ResultFailure => return Err((pos, Stop::Corrupt)),
            }
        }
    }

    /// Gives up decoding: reports why, finishes the content, and passes `rest` (the body's
    /// remaining coded bytes in this piece) and everything after it raw.
    fn stop(&mut self, why: Stop, rest: &[u8], content: &mut Content, sink: &mut dyn ContentSink) {
        let event = match why {
            Stop::Bomb => Some(L7Event::DecompressionBomb),
            Stop::Corrupt => Some(L7Event::DecompressionError),
            Stop::Ended if rest.is_empty() => None,
            Stop::Ended => Some(L7Event::DecompressionError),
        };
        if let Some(e) = event {
            sink.event(e);
        }
        content.finish(sink);
        sink.section(Location::Raw, b"");
        sink.data(rest);
        self.phase = Phase::Cut;
        self.release();
    }
}

/// Hands decoded bytes on while within bounds: `false` once the body has inflated past them
/// (the bytes up to the size bound are still delivered).
fn deliver(out: &[u8], total_out: &mut u64, total_in: u64, content: &mut Content, sink: &mut dyn ContentSink) -> bool {
    let room = MAX_INFLATED.saturating_sub(*total_out);
    let take = out.len().min(usize::try_from(room).unwrap_or(usize::MAX));
    content.feed(&out[..take], sink);
    *total_out += out.len() as u64;
    *total_out <= MAX_INFLATED && (*total_out <= RATIO_FLOOR || *total_out <= MAX_RATIO.saturating_mul(total_in.max(1)))
}
