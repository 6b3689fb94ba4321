//! TCP reassembly, one `TcpStream` per flow direction. CONTRACT STUB — helper C implements.

use crate::clock::Timestamp;
use crate::decode::TcpHeader;

/// Receives the reassembled byte stream of one direction.
pub trait StreamSink {
    /// Next in-order bytes.
    fn data(&mut self, bytes: &[u8]);
    /// `missing` bytes will never arrive; what follows is not contiguous with what came before.
    fn gap(&mut self, missing: u64);
}

/// Limits, all per worker thread.
#[derive(Debug, Clone)]
pub struct ReassemblyConfig {
    /// Most out-of-order bytes held for one direction.
    pub max_ooo_bytes_per_stream: usize,
    /// Most out-of-order segments held for one direction.
    pub max_ooo_segments_per_stream: usize,
    /// A hole older than this (packet time) is skipped.
    pub gap_timeout: std::time::Duration,
}

/// Per-worker counters.
#[derive(Debug, Default, Clone)]
pub struct ReassemblyCounters {
    /// Holes skipped.
    pub gaps: u64,
    /// Bytes never seen because of skipped holes.
    pub gap_bytes: u64,
    /// Overlaps whose bytes differed from what was seen first.
    pub overlap_conflicts: u64,
    /// Retransmitted or duplicate bytes discarded.
    pub duplicate_bytes: u64,
    /// Segments refused because a cap was hit.
    pub segments_dropped: u64,
}

/// One direction of a TCP connection.
#[derive(Debug, Default)]
pub struct TcpStream {}

impl TcpStream {
    /// True once FIN was delivered in order or RST was seen: no more bytes will come.
    pub fn is_closed(&self) -> bool {
        todo!()
    }
    /// Out-of-order bytes held for this direction.
    pub fn held_bytes(&self) -> usize {
        todo!()
    }
}

/// The per-worker reassembly engine: configuration, the shared out-of-order budget, counters.
#[derive(Debug)]
pub struct Reassembler {}

impl Reassembler {
    /// `memcap`: most out-of-order bytes held by all streams of this worker.
    pub fn new(cfg: ReassemblyConfig, memcap: usize) -> Reassembler {
        let _ = (cfg, memcap);
        todo!()
    }
    /// Handles one segment sent in `stream`'s direction.
    pub fn segment<S: StreamSink>(&mut self, stream: &mut TcpStream, hdr: &TcpHeader, payload: &[u8], now: Timestamp, sink: &mut S) {
        let _ = (stream, hdr, payload, now, sink);
        todo!()
    }
    /// The peer acknowledged everything before `ack`: a hole below it will never be filled from the capture.
    pub fn peer_ack<S: StreamSink>(&mut self, stream: &mut TcpStream, ack: u32, now: Timestamp, sink: &mut S) {
        let _ = (stream, ack, now, sink);
        todo!()
    }
    /// End of the flow: deliver what is held (skipping holes) and release its memory.
    pub fn finish<S: StreamSink>(&mut self, stream: &mut TcpStream, sink: &mut S) {
        let _ = (stream, sink);
        todo!()
    }
    /// Counters since start.
    pub fn counters(&self) -> &ReassemblyCounters {
        todo!()
    }
    /// Out-of-order bytes held by all streams of this worker.
    pub fn held_bytes(&self) -> usize {
        todo!()
    }
}
