//! DNS over UDP and TCP: query names are where malware spells data out. Digit-only labels are
//! joined (`35202.1234567.1.x.example` → `3520212345671.x.example` is scanned as well as the
//! name itself), a label of exactly 13 digits gets its own [`Location::DnsCnicLabel`] section,
//! and a response's question section (an echo of the query) is not scanned. CONTRACT STUB
//! (lead): the DNS helper replaces the bodies; keep the public names and signatures.

use super::{ContentSink, Evidence, Location};

/// Decodes one DNS message carried in a UDP datagram. Returns `false` (and emits nothing) when
/// the bytes are not a DNS message, so the caller scans them raw.
pub fn datagram(bytes: &[u8], sink: &mut dyn ContentSink, evidence: &mut Evidence) -> bool {
    let _ = (bytes, sink, evidence);
    false
}

/// DNS over TCP: 2-byte length-prefixed messages.
#[derive(Debug, Default)]
pub struct DnsTcpDecoder {
    evidence: Evidence,
    started: bool,
}

impl DnsTcpDecoder {
    /// A decoder at the start of the stream.
    pub fn new() -> DnsTcpDecoder {
        DnsTcpDecoder::default()
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
    /// End of the direction.
    pub fn finish(&mut self, sink: &mut dyn ContentSink) {
        let _ = sink;
    }
    /// Evidence of the last message.
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }
    /// Heap bytes held, for flow memory accounting.
    pub fn memory(&self) -> usize {
        0
    }
}
