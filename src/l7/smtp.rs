//! SMTP client side (an inside host sending mail out): envelope evidence from the command phase,
//! the DATA phase as a MIME message, nothing after STARTTLS. CONTRACT STUB (lead): the SMTP/MIME
//! helper replaces the bodies; keep the public names and signatures.

use super::{ContentSink, Evidence, Location};

/// Does this look like the start of an SMTP client session (`EHLO`/`HELO`)?
pub fn probe(first: &[u8]) -> super::Probe {
    let _ = first;
    super::Probe::No
}

/// Streaming decoder of an SMTP client's direction.
#[derive(Debug, Default)]
pub struct SmtpDecoder {
    evidence: Evidence,
    started: bool,
}

impl SmtpDecoder {
    /// A decoder at the start of the session.
    pub fn new() -> SmtpDecoder {
        SmtpDecoder::default()
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
    /// Payload of one packet of the other direction (the server's replies), not reassembled:
    /// e.g. `220` after STARTTLS confirms encryption starts.
    pub fn peer_data(&mut self, bytes: &[u8]) {
        let _ = bytes;
    }
    /// Evidence (envelope domains) of the current message.
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }
    /// Heap bytes held, for flow memory accounting.
    pub fn memory(&self) -> usize {
        0
    }
}
