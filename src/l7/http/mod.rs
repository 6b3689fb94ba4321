//! HTTP/1.x, both directions of use: an inside client's requests and an inside server's
//! responses (both are egress). CONTRACT STUB (lead): the HTTP helper replaces the bodies;
//! keep the public names and signatures.

use super::{ContentSink, Evidence, Location};

/// Does this look like the start of an HTTP/1.x request or response?
pub fn probe(first: &[u8]) -> super::Probe {
    let _ = first;
    super::Probe::No
}

/// Streaming decoder of one direction's HTTP messages.
#[derive(Debug, Default)]
pub struct HttpDecoder {
    evidence: Evidence,
    started: bool,
}

impl HttpDecoder {
    /// A decoder at the start of a message.
    pub fn new() -> HttpDecoder {
        HttpDecoder::default()
    }
    /// The next in-order bytes of the direction.
    pub fn data(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) {
        if !self.started {
            sink.section(Location::Raw, b"");
            self.started = true;
        }
        sink.data(bytes);
    }
    /// `missing` bytes (0 if unknown) will never arrive.
    pub fn gap(&mut self, missing: u64, sink: &mut dyn ContentSink) {
        let _ = missing;
        sink.gap();
    }
    /// End of the direction: flush what is buffered.
    pub fn finish(&mut self, sink: &mut dyn ContentSink) {
        let _ = sink;
    }
    /// Payload of one packet of the other direction, not reassembled (best effort): lets a
    /// response decoder learn the request's method, host and path, and that a HEAD response
    /// has no body.
    pub fn peer_data(&mut self, bytes: &[u8]) {
        let _ = bytes;
    }
    /// Evidence of the message being decoded (or the last one).
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }
    /// Heap bytes held, for flow memory accounting.
    pub fn memory(&self) -> usize {
        0
    }
}
