//! The personal value type. Only its masked form and keyed hash ever leave this module:
//! there is deliberately no accessor for the clear digits and `Debug` prints the mask.
//! CONTRACT STUB — helper A implements.

use std::fmt;

/// What kind of personal data a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiKind {
    /// Pakistani computerised national identity card number (13 digits).
    Cnic,
    /// Payment card number (PAN, 13–19 digits).
    Card,
}

impl PiiKind {
    /// Lower-case name used in alerts and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::Cnic => "cnic",
            PiiKind::Card => "card",
        }
    }
}

/// A validated personal value: normalised digits only, at most 19 of them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PiiValue {
    kind: PiiKind,
    len: u8,
    digits: [u8; 19],
}

impl PiiValue {
    /// Builds a value from normalised ASCII digits. Returns `None` unless 1..=19 ASCII digits.
    pub fn new(kind: PiiKind, digits: &[u8]) -> Option<Self> {
        let _ = (kind, digits);
        todo!()
    }
    /// The kind of value.
    pub fn kind(&self) -> PiiKind {
        self.kind
    }
    /// The redacted form shown to analysts: CNIC `35202-*******-1`, card first six and last four.
    pub fn masked(&self) -> String {
        todo!()
    }
}

impl fmt::Debug for PiiValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = (self.len, self.digits);
        write!(f, "PiiValue({:?}, {})", self.kind, self.masked())
    }
}

/// HMAC-SHA256 key used to fingerprint values so that alerts can be correlated without the clear value.
pub struct PiiKey {
    key: Vec<u8>,
}

/// The keyed hash of a value (HMAC-SHA256 over its normalised digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PiiHash(pub [u8; 32]);

impl PiiHash {
    /// Lowercase hex, as written in alerts.
    pub fn to_hex(&self) -> String {
        todo!()
    }
    /// First 8 bytes, for compact de-duplication sets.
    pub fn short(&self) -> u64 {
        todo!()
    }
}

impl PiiKey {
    /// Uses `bytes` as the key (callers trim trailing whitespace of key files first).
    pub fn new(bytes: &[u8]) -> Self {
        Self { key: bytes.to_vec() }
    }
    /// A random 32-byte key, for runs without `--pii-key-file`.
    pub fn random() -> Self {
        todo!()
    }
    /// Reads a key file: its bytes with trailing whitespace trimmed; an empty key is an error.
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Self> {
        let _ = path;
        todo!()
    }
    /// HMAC-SHA256 of the value's normalised digits.
    pub fn hash(&self, value: &PiiValue) -> PiiHash {
        let _ = (&self.key, value);
        todo!()
    }
}
