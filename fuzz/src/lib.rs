//! Shared pieces of the fuzz targets: turning fuzzer bytes into cut points, and a sink that
//! consumes decoded content the way the worker does (touching every byte) without keeping it.

use nigehban::l7::{ContentSink, L7Event, Location};

/// A piece of a stream, as a decoder is fed it.
#[derive(Debug, Clone, Copy)]
pub enum Piece<'a> {
    /// In-order bytes.
    Data(&'a [u8]),
    /// Bytes lost in capture: how many.
    Gap(u64),
}

/// Splits fuzzer input into a stream cut at fuzzer-chosen points.
///
/// Layout: `[n][n × u16 LE cut][stream…]`. Each cut's low 15 bits pick a position in the stream
/// (modulo its length); a set high bit turns the bytes from that cut to the next into a gap, so
/// decoders see holes at arbitrary places, as they do when a capture drops packets.
pub fn pieces(input: &[u8]) -> Vec<Piece<'_>> {
    let Some((&n, rest)) = input.split_first() else {
        return Vec::new();
    };
    let n = usize::from(n % 32).min(rest.len() / 2);
    let (header, stream) = rest.split_at(n * 2);
    let mut cuts: Vec<(usize, bool)> = header
        .chunks_exact(2)
        .map(|c| {
            let v = u16::from_le_bytes([c[0], c[1]]);
            (usize::from(v & 0x7fff) % (stream.len() + 1), v & 0x8000 != 0)
        })
        .collect();
    cuts.sort_unstable();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut pos = 0;
    let mut gap = false;
    for (at, next_gap) in cuts.into_iter().chain(std::iter::once((stream.len(), false))) {
        if at > pos {
            out.push(if gap {
                Piece::Gap((at - pos) as u64)
            } else {
                Piece::Data(&stream[pos..at])
            });
            pos = at;
        }
        gap = next_gap;
    }
    out
}

/// Counts what a decoder emits and reads every byte (so a bad slice would be touched).
#[derive(Debug, Default)]
pub struct CountingSink {
    /// Sections started.
    pub sections: usize,
    /// Decoded bytes received.
    pub bytes: usize,
    /// Gaps received.
    pub gaps: usize,
    /// Events received.
    pub events: usize,
    /// Folded over every byte so the optimiser cannot skip reading them.
    pub checksum: u8,
}

impl ContentSink for CountingSink {
    fn section(&mut self, _location: Location, name: &[u8]) {
        self.sections += 1;
        self.checksum = name.iter().fold(self.checksum, |a, b| a ^ b);
    }
    fn data(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len();
        self.checksum = bytes.iter().fold(self.checksum, |a, b| a ^ b);
    }
    fn gap(&mut self) {
        self.gaps += 1;
    }
    fn event(&mut self, _event: L7Event) {
        self.events += 1;
    }
}
