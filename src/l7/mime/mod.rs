//! Streaming MIME entity decoding, shared by SMTP (a whole message) and HTTP
//! (`multipart/form-data` bodies): headers with RFC 2047 encoded-words, nested multiparts,
//! base64 and quoted-printable transfer encodings, attachment file names. CONTRACT STUB (lead):
//! the SMTP/MIME helper replaces the bodies; keep the public names and signatures.

use super::{ContentSink, Location};

/// Streaming decoder of one MIME entity.
#[derive(Debug)]
pub struct MimeDecoder {
    started: bool,
}

impl MimeDecoder {
    /// A whole message or entity, headers first (SMTP DATA after dot-unstuffing).
    pub fn message() -> MimeDecoder {
        MimeDecoder { started: false }
    }
    /// A multipart body whose boundary came from an outer header (HTTP
    /// `Content-Type: multipart/form-data; boundary=…`); parts' `name`/`filename` become
    /// section names.
    pub fn multipart(boundary: &[u8]) -> MimeDecoder {
        let _ = boundary;
        MimeDecoder { started: false }
    }
    /// The next bytes of the entity.
    pub fn data(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) {
        if !self.started {
            sink.section(Location::Body, b"");
            self.started = true;
        }
        sink.data(bytes);
    }
    /// End of the entity: flush buffered bytes (a final base64 quantum, a pending soft break).
    pub fn finish(&mut self, sink: &mut dyn ContentSink) {
        let _ = sink;
    }
    /// Heap bytes held, for flow memory accounting.
    pub fn memory(&self) -> usize {
        0
    }
}
