//! TCP reassembly: one [`TcpStream`] per flow direction, one [`Reassembler`] per worker thread.
//!
//! # Design constraints
//!
//! * **Bounded memory.** A passive sensor cannot ask anyone to retransmit and cannot slow the
//!   network down, so whatever it holds, it holds at the traffic's pace. In-order bytes (the vast
//!   majority) go straight to the [`StreamSink`] and are never copied. Only out-of-order bytes are
//!   held, per stream under [`ReassemblyConfig`]'s caps and per worker under the `memcap` given to
//!   [`Reassembler::new`]. An idle stream is 40 bytes with no heap; the out-of-order store is
//!   allocated when a hole opens and freed when it closes.
//! * **Never stall.** A capture misses packets (SPAN drops, asymmetric routing, start mid-way).
//!   A hole that would block a stream forever is skipped — reported to the sink as
//!   [`StreamSink::gap`] — as soon as one bound says it will never fill: the receiver acknowledged
//!   past it ([`Reassembler::peer_ack`]), it has been open longer than
//!   [`ReassemblyConfig::gap_timeout`] of packet time, the stream's caps are reached, or the
//!   worker's memcap is. The next expected segment is always accepted, whatever the caps.
//! * **Overlaps follow a policy.** When segments overlap with different bytes, [`OverlapPolicy`]
//!   says which copy is kept: the first seen (default, as Linux and the BSDs do for most overlaps)
//!   or the last (as Windows does for some). Either way the conflict is counted and reported to the
//!   sink ([`StreamSink::overlap_conflict`]), which raises an evasion alert: different bytes for the
//!   same offset mean the sensor and the receiver may have seen different data.
//!   Delivered bytes cannot be taken back from the matcher, and they are not kept for comparison
//!   (a window of them would cost every stream memory all the time), so a conflict is only
//!   detected against bytes still held out of order.
//!
//! # Budget
//!
//! The worker-wide budget ([`Reassembler::held_bytes`]) is the sum of all its streams' held bytes.
//! A stream must therefore leave through [`Reassembler::finish`] (or close by RST or FIN, which
//! leaves nothing held): dropping a `TcpStream` that still holds bytes would leak budget, and in
//! debug builds its `Drop` asserts that it does not. (`finish` keeps the `&mut` of the contract
//! rather than taking the stream by value, so a flow table can finish a stream in place and evict
//! the entry afterwards; the assertion catches a forgotten `finish` in every test run.)
//!
//! # Sequence numbers
//!
//! Offsets inside are 64-bit stream offsets (offset 0 is the first byte after the SYN, or the
//! first byte seen on a stream picked up mid-way); 32-bit sequence numbers are converted at the edge
//! relative to the next expected offset (RFC 1982 arithmetic, see `seq.rs`), so a stream wraps
//! 2^32 any number of times.

mod seq;
mod store;
#[cfg(test)]
mod tests;

use crate::clock::Timestamp;
use crate::decode::TcpHeader;
use store::OooStore;

/// Receives the reassembled byte stream of one direction.
pub trait StreamSink {
    /// Next in-order bytes.
    fn data(&mut self, bytes: &[u8]);
    /// `missing` bytes will never arrive; what follows is not contiguous with what came before.
    /// Always more than zero.
    fn gap(&mut self, missing: u64);
    /// A segment carried bytes that differ from bytes held for the same offsets, starting at stream
    /// offset `at` (a possible evasion: the receiver may keep the other copy). Called at most once
    /// per segment; the [`OverlapPolicy`] already chose the copy that will be delivered.
    fn overlap_conflict(&mut self, at: u64) {
        let _ = at;
    }
}

/// Which copy of overlapping bytes the reassembler keeps when they differ.
///
/// Receivers disagree (Ptacek & Newsham, 1998; Novak, 2005): a sensor can only mirror one of
/// them, so it follows the protected hosts' stack and alerts on every conflict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OverlapPolicy {
    /// The bytes seen first are kept (Linux, BSD, macOS for overlaps with queued data).
    #[default]
    First,
    /// Bytes seen last replace held ones (Windows and older Solaris/HP-UX for some overlaps).
    /// Only out-of-order bytes can be replaced: delivered bytes were scanned already.
    Last,
}

impl std::str::FromStr for OverlapPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "first" => Ok(OverlapPolicy::First),
            "last" => Ok(OverlapPolicy::Last),
            _ => Err(format!("overlap policy {s:?} is not one of: first, last")),
        }
    }
}

/// Limits, all per worker thread.
#[derive(Debug, Clone)]
pub struct ReassemblyConfig {
    /// Most out-of-order bytes held for one direction. Default 256 KiB.
    pub max_ooo_bytes_per_stream: usize,
    /// Most out-of-order segments held for one direction. Adjacent held segments are merged, so
    /// this bounds the number of holes waiting to fill. Default 64.
    pub max_ooo_segments_per_stream: usize,
    /// A hole older than this (packet time) is skipped. Checked whenever the stream sees a segment
    /// or an acknowledgement, or on [`Reassembler::expire`]. Default 10 s.
    pub gap_timeout: std::time::Duration,
    /// Which copy of overlapping, differing bytes is kept. Default [`OverlapPolicy::First`].
    pub overlap_policy: OverlapPolicy,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            max_ooo_bytes_per_stream: 256 * 1024,
            max_ooo_segments_per_stream: 64,
            gap_timeout: std::time::Duration::from_secs(10),
            overlap_policy: OverlapPolicy::First,
        }
    }
}

/// Per-worker counters.
#[derive(Debug, Default, Clone)]
pub struct ReassemblyCounters {
    /// Holes skipped (one per `StreamSink::gap` call).
    pub gaps: u64,
    /// Bytes never seen because of skipped holes (the sum of the `gap` lengths).
    pub gap_bytes: u64,
    /// Overlaps whose bytes differed from what was held: one per held run a later segment
    /// contradicts. Bytes already delivered are not kept, so overlaps with them are not compared.
    pub overlap_conflicts: u64,
    /// Retransmitted or duplicate bytes discarded: already delivered, already held, or from before
    /// the point where a stream was picked up mid-way.
    pub duplicate_bytes: u64,
    /// Segments refused because a cap was hit. Only the worker memcap drops: a per-stream cap
    /// skips a hole instead, and in-order bytes are never refused.
    pub segments_dropped: u64,
}

/// `TcpStream::flags`: the stream has a base sequence number.
const STARTED: u8 = 1;
/// `TcpStream::flags`: the base came from a SYN (later SYNs must carry the same ISN).
const SYN_SEEN: u8 = 2;
/// `TcpStream::flags`: no more bytes will be delivered.
const CLOSED: u8 = 4;
/// `TcpStream::fin_end` when no FIN was seen.
const NO_FIN: u64 = u64::MAX;

/// One direction of a TCP connection.
#[derive(Debug)]
pub struct TcpStream {
    /// Next expected stream offset: everything before it was delivered or reported as a gap.
    next: u64,
    /// Stream offset of the FIN (one past the last data byte), or `NO_FIN`.
    /// Invariant: `NO_FIN` or `>= next`.
    fin_end: u64,
    /// When the FIN was first seen (meaningful with `fin_end`).
    fin_seen: Timestamp,
    /// Out-of-order bytes. Invariant: `None` when nothing is held; otherwise every run starts after
    /// `next` (there is a hole) and ends at or before `fin_end`.
    ooo: Option<Box<OooStore>>,
    /// Sequence number of stream offset 0.
    base: u32,
    /// `STARTED`, `SYN_SEEN`, `CLOSED`.
    flags: u8,
}

impl Default for TcpStream {
    fn default() -> Self {
        TcpStream {
            next: 0,
            fin_end: NO_FIN,
            fin_seen: Timestamp::default(),
            ooo: None,
            base: 0,
            flags: 0,
        }
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        debug_assert!(
            self.ooo.is_none() || std::thread::panicking(),
            "TcpStream dropped holding {} bytes without Reassembler::finish: the worker's budget leaks",
            self.held_bytes()
        );
    }
}

impl TcpStream {
    /// True once FIN was delivered in order or RST was seen: no more bytes will come.
    pub fn is_closed(&self) -> bool {
        self.flags & CLOSED != 0
    }

    /// Out-of-order bytes held for this direction.
    pub fn held_bytes(&self) -> usize {
        self.ooo.as_ref().map_or(0, |s| s.held())
    }

    /// Bytes delivered or skipped so far: the stream offset of the next expected byte.
    pub fn offset(&self) -> u64 {
        self.next
    }

    fn fin_pending(&self) -> bool {
        self.fin_end != NO_FIN && self.next < self.fin_end
    }

    /// End of the leading hole: the first held byte, or the FIN if nothing is held before it.
    fn hole_end(&self) -> Option<u64> {
        match &self.ooo {
            Some(s) => Some(s.first_start()),
            None if self.fin_pending() => Some(self.fin_end),
            None => None,
        }
    }

    /// When the leading hole opened, if there is one.
    fn hole_opened(&self) -> Option<Timestamp> {
        let fin = self.fin_pending().then_some(self.fin_seen);
        match (&self.ooo, fin) {
            (Some(s), Some(f)) => Some(s.oldest().min(f)),
            (Some(s), None) => Some(s.oldest()),
            (None, f) => f,
        }
    }

    fn close_if_done(&mut self) {
        if self.fin_end != NO_FIN && self.next >= self.fin_end {
            debug_assert!(self.ooo.is_none());
            self.flags |= CLOSED;
        }
    }
}

/// What to do with out-of-order bytes that need room.
enum Room {
    /// Hold them.
    Hold,
    /// A hole was skipped to make room: look again, the bytes may now be in order.
    Retry,
    /// They cannot be held: drop them.
    Drop,
}

/// The per-worker reassembly engine: configuration, the shared out-of-order budget, counters.
#[derive(Debug)]
pub struct Reassembler {
    cfg: ReassemblyConfig,
    memcap: usize,
    /// Out-of-order bytes held by all streams of this worker.
    /// Invariant: equals the sum of `held_bytes()` over every live `TcpStream` handled by this
    /// reassembler, and never exceeds `memcap`. Changed only in `hold` and `release`.
    held: usize,
    counters: ReassemblyCounters,
}

impl Reassembler {
    /// `memcap`: most out-of-order bytes held by all streams of this worker.
    pub fn new(cfg: ReassemblyConfig, memcap: usize) -> Reassembler {
        Reassembler {
            cfg,
            memcap,
            held: 0,
            counters: ReassemblyCounters::default(),
        }
    }

    /// Handles one segment sent in `stream`'s direction.
    ///
    /// The payload of a SYN starts at ISN+1; a retransmitted SYN is a duplicate, a SYN with another
    /// ISN on a stream that began with a SYN is ignored (port reuse is the flow table's business).
    /// A stream first seen without SYN starts at the first segment carrying data or FIN. A RST
    /// delivers what is held, with gaps, and closes the stream; its payload is ignored.
    pub fn segment<S: StreamSink>(
        &mut self,
        stream: &mut TcpStream,
        hdr: &TcpHeader,
        payload: &[u8],
        now: Timestamp,
        sink: &mut S,
    ) {
        if hdr.rst {
            self.finish(stream, sink);
            return;
        }
        let data_seq = if hdr.syn { hdr.seq.wrapping_add(1) } else { hdr.seq };
        if stream.is_closed() {
            if stream.flags & STARTED != 0 {
                // Retransmissions after the end: count what was already delivered.
                let start = seq::offset_of(stream.base, stream.next, data_seq);
                let end = start + payload.len() as i64;
                self.counters.duplicate_bytes += clamp_len(start, end.min(stream.next as i64));
            }
            return;
        }
        if stream.flags & STARTED == 0 {
            if !hdr.syn && !hdr.fin && payload.is_empty() {
                return; // a bare ACK: not a trustworthy start (keep-alives sit one byte early)
            }
            stream.base = data_seq;
            stream.flags |= STARTED | if hdr.syn { SYN_SEEN } else { 0 };
        } else if hdr.syn && stream.flags & SYN_SEEN != 0 && data_seq != stream.base {
            return;
        }
        let start = seq::offset_of(stream.base, stream.next, data_seq);
        let end = start + payload.len() as i64;
        if hdr.fin {
            self.note_fin(stream, end, now);
        }
        self.data(stream, start, payload, now, sink);
        self.expire(stream, now, sink);
    }

    /// The peer acknowledged everything before `ack`: a hole below it will never be filled from the capture.
    ///
    /// Only holes are skipped (bytes missing before bytes already held, or before a FIN). Bytes
    /// acknowledged beyond everything seen are left alone: on a SPAN port an ACK often overtakes
    /// the data it acknowledges, and that data is still on its way.
    pub fn peer_ack<S: StreamSink>(&mut self, stream: &mut TcpStream, ack: u32, now: Timestamp, sink: &mut S) {
        if stream.flags & STARTED == 0 || stream.is_closed() {
            return;
        }
        let acked = seq::offset_of(stream.base, stream.next, ack);
        while let Some(hole_end) = stream.hole_end() {
            if acked < hole_end as i64 {
                break;
            }
            self.skip_to(stream, hole_end, sink);
        }
        self.expire(stream, now, sink);
    }

    /// Skips holes open longer than the gap timeout at packet time `now`. Called by `segment` and
    /// `peer_ack`; a flow table may call it for streams that went quiet.
    pub fn expire<S: StreamSink>(&mut self, stream: &mut TcpStream, now: Timestamp, sink: &mut S) {
        while let (Some(opened), Some(hole_end)) = (stream.hole_opened(), stream.hole_end()) {
            if now.since(opened) <= self.cfg.gap_timeout {
                break;
            }
            self.skip_to(stream, hole_end, sink);
        }
    }

    /// End of the flow: deliver what is held (skipping holes) and release its memory.
    ///
    /// A hole before a FIN already seen is reported as a gap too; bytes missing at the end of a
    /// stream without FIN are not (their length is unknown). The stream is closed afterwards.
    /// Idempotent.
    pub fn finish<S: StreamSink>(&mut self, stream: &mut TcpStream, sink: &mut S) {
        while let Some(hole_end) = stream.hole_end() {
            self.skip_to(stream, hole_end, sink);
        }
        debug_assert!(stream.ooo.is_none());
        stream.flags |= CLOSED;
    }

    /// Gives up `stream` for good: what it holds out of order is dropped undelivered (its budget
    /// returned), a FIN still awaited is forgotten, and the stream is closed, so later segments
    /// are ignored. For a direction that will not be inspected again (bypassed).
    pub fn abandon(&mut self, stream: &mut TcpStream) {
        if let Some(store) = stream.ooo.take() {
            self.release(store.held());
        }
        stream.fin_end = NO_FIN;
        stream.flags |= CLOSED;
    }

    /// Counters since start.
    pub fn counters(&self) -> &ReassemblyCounters {
        &self.counters
    }

    /// Out-of-order bytes held by all streams of this worker.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Records a FIN at stream offset `fin`. First seen wins; a FIN before delivered bytes is
    /// ignored. Held bytes beyond the FIN are dropped.
    fn note_fin(&mut self, stream: &mut TcpStream, fin: i64, now: Timestamp) {
        if stream.fin_end != NO_FIN || fin < stream.next as i64 {
            return;
        }
        let fin = fin as u64;
        stream.fin_end = fin;
        stream.fin_seen = now;
        if let Some(store) = stream.ooo.as_mut() {
            let freed = store.truncate_from(fin);
            let empty = store.is_empty();
            self.release(freed);
            if empty {
                stream.ooo = None;
            }
        }
        stream.close_if_done();
    }

    /// Handles the payload of a segment starting at stream offset `start`.
    fn data<S: StreamSink>(
        &mut self,
        stream: &mut TcpStream,
        start: i64,
        payload: &[u8],
        now: Timestamp,
        sink: &mut S,
    ) {
        let end = start + payload.len() as i64;
        // Bytes already delivered (or from before a mid-way pickup): duplicates.
        let lo = start.max(stream.next as i64);
        self.counters.duplicate_bytes += clamp_len(start, lo.min(end));
        // Bytes beyond the FIN do not belong to this stream.
        let hi = if stream.fin_end == NO_FIN {
            end
        } else {
            end.min(stream.fin_end as i64)
        };
        if lo >= hi {
            return;
        }
        let (s, e) = (lo as u64, hi as u64);
        let bytes = |a: u64, b: u64| &payload[(a as i64 - start) as usize..(b as i64 - start) as usize];
        // The new copy of held bytes is a duplicate, maybe a conflicting one; the policy decides
        // which copy stays.
        if let Some(store) = stream.ooo.as_mut() {
            let last_wins = self.cfg.overlap_policy == OverlapPolicy::Last;
            let o = store.overlap(s, bytes(s, e), last_wins);
            self.counters.duplicate_bytes += o.bytes;
            if let Some(at) = o.first_conflict {
                self.counters.overlap_conflicts += o.conflicts;
                sink.overlap_conflict(at);
            }
        }
        // Deliver or hold what falls into holes, left to right.
        let mut cur = s;
        let mut dropped = false;
        while cur < e {
            if cur < stream.next {
                cur = stream.next; // delivered from the store meanwhile
                continue;
            }
            let (idx, next_held) = match &stream.ooo {
                None => (0, None),
                Some(store) => {
                    let idx = store.find(cur);
                    (idx, store.get(idx).map(|r| (r.start, r.end())))
                }
            };
            if let Some((rs, re)) = next_held {
                if rs <= cur {
                    cur = re.min(e); // held already, counted above
                    continue;
                }
            }
            let piece_end = next_held.map_or(e, |(rs, _)| rs.min(e));
            if cur == stream.next {
                sink.data(bytes(cur, piece_end));
                stream.next = piece_end;
                self.drain(stream, sink);
                cur = piece_end;
                continue;
            }
            match self.make_room(stream, idx, cur, piece_end - cur, sink) {
                Room::Hold => {
                    self.hold(stream, idx, cur, bytes(cur, piece_end), now);
                    cur = piece_end;
                }
                Room::Retry => {}
                Room::Drop => {
                    dropped = true;
                    cur = piece_end;
                }
            }
        }
        if dropped {
            self.counters.segments_dropped += 1;
        }
        stream.close_if_done();
    }

    /// Decides whether `len` bytes at `at` (a hole, after `stream.next`) can be held, skipping
    /// holes of this stream when a cap is in the way.
    fn make_room<S: StreamSink>(
        &mut self,
        stream: &mut TcpStream,
        idx: usize,
        at: u64,
        len: u64,
        sink: &mut S,
    ) -> Room {
        let (held, runs, new_run) = match &stream.ooo {
            None => (0, 0, true),
            Some(store) => (store.held(), store.runs(), !store.extends_previous(idx, at)),
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let over_stream = held.saturating_add(len) > self.cfg.max_ooo_bytes_per_stream
            || runs + usize::from(new_run) > self.cfg.max_ooo_segments_per_stream;
        if over_stream {
            // Per-stream cap: skip our leading hole; if nothing is held, skip the hole before
            // these bytes, which makes them in order.
            let to = stream.ooo.as_ref().map_or(at, |s| s.first_start());
            self.skip_to(stream, to, sink);
            return Room::Retry;
        }
        if self.held.saturating_add(len) > self.memcap {
            // Worker memcap: free our own held bytes first; other streams' are theirs.
            return match stream.ooo.as_ref() {
                Some(s) => {
                    let to = s.first_start();
                    self.skip_to(stream, to, sink);
                    Room::Retry
                }
                None => Room::Drop,
            };
        }
        Room::Hold
    }

    /// Reports the hole `stream.next..to` as a gap and delivers what becomes in order.
    fn skip_to<S: StreamSink>(&mut self, stream: &mut TcpStream, to: u64, sink: &mut S) {
        debug_assert!(to > stream.next);
        let missing = to - stream.next;
        sink.gap(missing);
        self.counters.gaps += 1;
        self.counters.gap_bytes += missing;
        stream.next = to;
        self.drain(stream, sink);
        stream.close_if_done();
    }

    /// Delivers held runs that start at `stream.next`; frees the store once empty.
    fn drain<S: StreamSink>(&mut self, stream: &mut TcpStream, sink: &mut S) {
        let Some(store) = stream.ooo.as_mut() else {
            return;
        };
        while !store.is_empty() && store.first_start() <= stream.next {
            debug_assert_eq!(store.first_start(), stream.next, "held bytes behind next");
            let run = store.pop_front();
            sink.data(&run.data);
            stream.next = run.end();
            self.release(run.data.len());
        }
        if store.is_empty() {
            stream.ooo = None;
        }
    }

    /// Holds `bytes` at `at` (index `idx` in the store), charging the budget.
    fn hold(&mut self, stream: &mut TcpStream, idx: usize, at: u64, bytes: &[u8], now: Timestamp) {
        debug_assert!(at > stream.next);
        match stream.ooo.as_mut() {
            Some(store) => store.insert(idx, at, bytes, now),
            None => stream.ooo = Some(Box::new(OooStore::new(at, bytes, now))),
        }
        self.held += bytes.len();
        debug_assert!(self.held <= self.memcap, "memcap exceeded");
        debug_assert!(stream.held_bytes() <= self.cfg.max_ooo_bytes_per_stream);
    }

    /// Returns `n` bytes to the budget.
    fn release(&mut self, n: usize) {
        debug_assert!(self.held >= n, "budget released twice");
        self.held -= n;
    }
}

/// Length of `a..b` in stream offsets, zero if empty.
fn clamp_len(a: i64, b: i64) -> u64 {
    u64::try_from(b - a).unwrap_or(0)
}
