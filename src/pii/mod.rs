//! The personal value type. Only its masked form and keyed hash ever leave this module:
//! there is deliberately no accessor for the clear digits and `Debug` prints the mask.
//!
//! Everything that needs the clear digits (masking, the keyed hash) is computed here, so
//! a reviewer auditing where clear personal data can flow only has to read this file.

mod text;

pub use text::ValueError;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// What kind of personal data a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiKind {
    /// Pakistani computerised national identity card number (13 digits).
    Cnic,
    /// Payment card number (PAN, 13–19 digits).
    Card,
    /// Pakistani IBAN (`PK`, 2 check digits, 4-letter bank code, 16-digit account).
    Iban,
}

impl PiiKind {
    /// Lower-case name used in alerts and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::Cnic => "cnic",
            PiiKind::Card => "card",
            PiiKind::Iban => "iban",
        }
    }
}

/// How sure the sensor is that a finding is a real personal value (`pii.matches[].confidence`),
/// in the spirit of Microsoft Purview's sensitive information types. Ordered: `Low < Medium < High`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Shape and checksum only, in a place where such numbers are common (expect noise).
    Low,
    /// Shape, checksum and one piece of supporting evidence.
    Medium,
    /// Strong evidence: a context keyword with a distinctive shape, or a known value.
    High,
}

impl Confidence {
    /// Lower-case name used in alerts and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// Most digits a CNIC or card value can hold (the longest PAN).
pub const MAX_DIGITS: usize = 19;
/// Most characters any value can hold (the longest IBAN, ISO 13616).
pub const MAX_VALUE_LEN: usize = 34;

/// A validated personal value in normalised form: ASCII digits (CNIC, card; at most
/// [`MAX_DIGITS`]) or upper-case ASCII letters and digits without spaces (IBAN; at most
/// [`MAX_VALUE_LEN`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PiiValue {
    kind: PiiKind,
    /// Invariant: `1 <= len <= MAX_VALUE_LEN`, and `len <= MAX_DIGITS` unless `kind` is `Iban`.
    len: u8,
    /// Invariant: `bytes[..len]` is the normalised value (see [`PiiValue::new`]), `bytes[len..]`
    /// are zero.
    bytes: [u8; MAX_VALUE_LEN],
}

impl PiiValue {
    /// Builds a value from its normalised form. Returns `None` unless it is 1..=19 ASCII digits
    /// (CNIC, card) or 1..=34 upper-case ASCII letters and digits (IBAN).
    pub fn new(kind: PiiKind, normalised: &[u8]) -> Option<Self> {
        let ok = match kind {
            PiiKind::Cnic | PiiKind::Card => normalised.len() <= MAX_DIGITS && all_ascii_digits(normalised),
            PiiKind::Iban => normalised.iter().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
        };
        if !ok || normalised.is_empty() || normalised.len() > MAX_VALUE_LEN {
            return None;
        }
        let mut bytes = [0u8; MAX_VALUE_LEN];
        bytes[..normalised.len()].copy_from_slice(normalised);
        Some(Self {
            kind,
            len: normalised.len() as u8,
            bytes,
        })
    }

    /// The kind of value.
    pub fn kind(&self) -> PiiKind {
        self.kind
    }

    /// Number of characters of the normalised form.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false (a value has at least one character); present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&self) -> &[u8] {
        debug_assert!((1..=MAX_VALUE_LEN).contains(&self.len()));
        &self.bytes[..self.len()]
    }

    /// The redacted form shown to analysts: CNIC `35202-*******-1`; card first six and last
    /// four; IBAN country, check digits and bank code (first eight) and last four
    /// (`PK36SCBL************5678`).
    ///
    /// Values of unexpected length are masked conservatively: a CNIC that is not 13 digits, a
    /// card shorter than 13 digits and an IBAN shorter than 15 characters show only their
    /// length in `*`.
    pub fn masked(&self) -> String {
        let d = self.clear();
        let mut s = String::with_capacity(d.len() + 2);
        let keep = |s: &mut String, head: usize, tail: usize| {
            s.extend(d[..head].iter().map(|&b| b as char));
            s.extend(std::iter::repeat_n('*', d.len() - head - tail));
            s.extend(d[d.len() - tail..].iter().map(|&b| b as char));
        };
        match self.kind {
            PiiKind::Cnic if d.len() == 13 => {
                s.extend(d[..5].iter().map(|&b| b as char));
                s.push_str("-*******-");
                s.push(d[12] as char);
            }
            PiiKind::Card if d.len() >= 13 => keep(&mut s, 6, 4),
            PiiKind::Iban if d.len() >= 15 => keep(&mut s, 8, 4),
            _ => s.extend(std::iter::repeat_n('*', d.len())),
        }
        s
    }
}

impl fmt::Debug for PiiValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PiiValue({:?}, {})", self.kind, self.masked())
    }
}

/// `0x01` in every byte of a word (for byte-parallel arithmetic on digits).
pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;

/// True if all eight bytes of `w` are ASCII digits (`0x30..=0x39`): high nibble 3, and low
/// nibble plus 6 still below 16 (no carry crosses bytes once every high nibble is 3).
#[inline]
pub(crate) fn digit_word(w: u64) -> bool {
    const HIGH: u64 = 0xF0 * ONES;
    (w & HIGH) == 0x30 * ONES && (w.wrapping_add(0x06 * ONES) & HIGH) == 0x30 * ONES
}

/// True if every byte is an ASCII digit, eight at a time (the last word may overlap the one
/// before it). A byte loop cost about three instructions a digit, twice per validated value.
#[inline]
pub(crate) fn all_ascii_digits(b: &[u8]) -> bool {
    let word = |at: usize| b[at..at + 8].first_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w));
    if b.len() < 8 {
        return b.iter().all(u8::is_ascii_digit);
    }
    let mut at = 0;
    while at + 8 < b.len() {
        if !digit_word(word(at)) {
            return false;
        }
        at += 8;
    }
    digit_word(word(b.len() - 8))
}

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 key used to fingerprint values so that alerts can be correlated without the clear value.
#[derive(Clone)]
pub struct PiiKey {
    /// The MAC with the key already absorbed; cloned per hash (cheaper than re-keying).
    mac: HmacSha256,
}

impl fmt::Debug for PiiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PiiKey(<redacted>)")
    }
}

/// The keyed hash of a value (HMAC-SHA256 over its normalised form).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PiiHash(pub [u8; 32]);

impl PiiHash {
    /// Lowercase hex, as written in alerts.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// First 8 bytes (big-endian), for compact de-duplication sets.
    pub fn short(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }
}

impl fmt::Debug for PiiHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PiiHash({})", self.to_hex())
    }
}

impl PiiKey {
    /// Uses `bytes` as the key (callers trim trailing whitespace of key files first).
    pub fn new(bytes: &[u8]) -> Self {
        Self {
            mac: HmacSha256::new_from_slice(bytes).expect("HMAC accepts keys of any length"),
        }
    }
    /// A random 32-byte key, for runs without `--pii-key-file`.
    ///
    /// Hashes made with a random key cannot be correlated across restarts.
    pub fn random() -> Self {
        let key: [u8; 32] = rand::random();
        Self::new(&key)
    }
    /// Reads a key file: its bytes with trailing whitespace trimmed; an empty key is an error
    /// (`InvalidData`, message naming the file).
    ///
    /// A key file others can read is refused (`PermissionDenied`): anyone holding the key can
    /// test guesses against alert hashes, and CNICs are few enough to enumerate. A group-readable
    /// file is accepted with a loud warning (a dedicated service group is a legitimate setup).
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Self> {
        match key_file_access(path)? {
            KeyFileAccess::Private => {}
            KeyFileAccess::GroupReadable(mode) => tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:04o}"),
                "PII key file is readable by its group: every member can test guesses against alert hashes; chmod 600 it unless the group is the sensor's own"
            ),
            KeyFileAccess::WorldReadable(mode) => return Err(world_readable(path, mode)),
        }
        let bytes = std::fs::read(path)?;
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        if end == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "PII key file {} is empty: put at least 32 random bytes in it",
                    path.display()
                ),
            ));
        }
        Ok(Self::new(&bytes[..end]))
    }
    /// HMAC-SHA256 of the value's normalised form (digits; upper-case IBAN without spaces).
    /// The kind is not hashed, so the same digits correlate across rules and known-value lists.
    pub fn hash(&self, value: &PiiValue) -> PiiHash {
        self.mac_bytes(value.clear())
    }

    /// A fingerprint of the key that reveals nothing about it (an HMAC of a fixed label), for
    /// refusing known-value files made with a different key.
    pub fn fingerprint(&self) -> [u8; 16] {
        let h = self.mac_bytes(b"nigehban/key-fingerprint/v1");
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.0[..16]);
        out
    }

    fn mac_bytes(&self, data: &[u8]) -> PiiHash {
        let mut mac = self.mac.clone();
        mac.update(data);
        PiiHash(mac.finalize().into_bytes().into())
    }
}

/// Who besides the owner may read a key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFileAccess {
    /// Only the owner (mode `0600`, `0400`, …).
    Private,
    /// Group members may read it; the mode is given.
    GroupReadable(u32),
    /// Everyone may read it; the mode is given.
    WorldReadable(u32),
}

/// The permission bits of the key file at `path` (following symlinks, as `open` does).
pub fn key_file_access(path: &std::path::Path) -> std::io::Result<KeyFileAccess> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    Ok(if mode & 0o004 != 0 {
        KeyFileAccess::WorldReadable(mode)
    } else if mode & 0o040 != 0 {
        KeyFileAccess::GroupReadable(mode)
    } else {
        KeyFileAccess::Private
    })
}

fn world_readable(path: &std::path::Path, mode: u32) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "PII key file {} is world-readable (mode {mode:04o}): anyone on the host could test guesses against alert hashes; run chmod 600 on it",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_ascii_digits_agrees_with_a_byte_loop() {
        // Every length up to 40, with one byte at every position replaced by each interesting value.
        for len in 0..=40usize {
            let digits = vec![b'5'; len];
            assert!(all_ascii_digits(&digits), "len {len}");
            for at in 0..len {
                for b in [b'/', b':', b'0', b'9', 0x00, 0x39 + 0x80, 0xB0, 0xFF, b'a'] {
                    let mut v = digits.clone();
                    v[at] = b;
                    assert_eq!(
                        all_ascii_digits(&v),
                        v.iter().all(u8::is_ascii_digit),
                        "len {len} at {at} byte {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn new_rejects_bad_input() {
        assert!(PiiValue::new(PiiKind::Card, b"").is_none());
        assert!(PiiValue::new(PiiKind::Card, b"12345678901234567890").is_none());
        assert!(PiiValue::new(PiiKind::Card, b"4111-1111").is_none());
        assert!(PiiValue::new(PiiKind::Card, b"1234567890123456789").is_some());
        assert!(PiiValue::new(PiiKind::Cnic, b"PK36SCBL0000001123456702").is_none());
        assert!(PiiValue::new(PiiKind::Iban, b"PK36SCBL0000001123456702").is_some());
        assert!(PiiValue::new(PiiKind::Iban, b"pk36SCBL0000001123456702").is_none());
        assert!(PiiValue::new(PiiKind::Iban, b"PK36 SCBL 0000").is_none());
        assert!(PiiValue::new(PiiKind::Iban, &[b'1'; 35]).is_none());
        assert!(PiiValue::new(PiiKind::Iban, &[b'1'; 34]).is_some());
    }

    #[test]
    fn masks() {
        let c = PiiValue::new(PiiKind::Cnic, b"3520212345671").unwrap();
        assert_eq!(c.masked(), "35202-*******-1");
        let v = PiiValue::new(PiiKind::Card, b"4111111111111111").unwrap();
        assert_eq!(v.masked(), "411111******1111");
        let a = PiiValue::new(PiiKind::Card, b"378282246310005").unwrap();
        assert_eq!(a.masked(), "378282*****0005");
        let v19 = PiiValue::new(PiiKind::Card, b"4111111111111111003").unwrap();
        assert_eq!(v19.masked(), "411111*********1003");
        let odd = PiiValue::new(PiiKind::Cnic, b"123").unwrap();
        assert_eq!(odd.masked(), "***");
        let iban = PiiValue::new(PiiKind::Iban, b"PK36SCBL0000001123456702").unwrap();
        assert_eq!(iban.masked(), "PK36SCBL************6702");
        let short = PiiValue::new(PiiKind::Iban, b"PK36SCBL0000").unwrap();
        assert_eq!(short.masked(), "************");
    }

    #[test]
    fn debug_prints_only_mask() {
        let v = PiiValue::new(PiiKind::Card, b"4111111111111111").unwrap();
        let s = format!("{v:?}");
        assert!(!s.contains("4111111111111111"), "Debug leaked clear digits");
        assert_eq!(s, "PiiValue(Card, 411111******1111)");
        assert_eq!(format!("{:?}", PiiKey::new(b"k")), "PiiKey(<redacted>)");
    }

    #[test]
    fn hmac_rfc4231_case_2() {
        let key = PiiKey::new(b"Jefe");
        let h = key.mac_bytes(b"what do ya want for nothing?");
        assert_eq!(
            h.to_hex(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(h.short(), 0x5bdc_c146_bf60_754e);
    }

    #[test]
    fn hash_is_over_digits_and_keyed() {
        let v = PiiValue::new(PiiKind::Card, b"4111111111111111").unwrap();
        let k1 = PiiKey::new(b"one");
        let k2 = PiiKey::new(b"two");
        assert_eq!(k1.hash(&v), k1.mac_bytes(b"4111111111111111"));
        assert_ne!(k1.hash(&v), k2.hash(&v));
        // Kind is not hashed: the same digits correlate across rules.
        let c = PiiValue::new(PiiKind::Cnic, b"4111111111111111").unwrap();
        assert_eq!(k1.hash(&v), k1.hash(&c));
    }

    #[test]
    fn fingerprint_depends_on_the_key_only() {
        let (a, b) = (PiiKey::new(b"one"), PiiKey::new(b"two"));
        assert_eq!(a.fingerprint(), PiiKey::new(b"one").fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint());
        let iban = PiiValue::new(PiiKind::Iban, b"PK36SCBL0000001123456702").unwrap();
        assert_eq!(a.hash(&iban), a.mac_bytes(b"PK36SCBL0000001123456702"));
        assert_eq!(format!("{iban:?}"), "PiiValue(Iban, PK36SCBL************6702)");
    }

    #[test]
    fn key_file_trims_and_rejects_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, b"Jefe \n\t\r\n").unwrap();
        set_mode(&p, 0o600);
        let k = PiiKey::from_file(&p).unwrap();
        assert_eq!(k.mac_bytes(b"x"), PiiKey::new(b"Jefe").mac_bytes(b"x"));
        std::fs::write(&p, b" \n").unwrap();
        let e = PiiKey::from_file(&p).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(PiiKey::from_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn random_keys_differ() {
        let v = PiiValue::new(PiiKind::Cnic, b"3520212345671").unwrap();
        assert_ne!(PiiKey::random().hash(&v), PiiKey::random().hash(&v));
    }

    fn set_mode(p: &std::path::Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn key_file_readable_by_others_is_refused_group_readable_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, b"0123456789abcdef0123456789abcdef").unwrap();
        set_mode(&p, 0o644);
        assert_eq!(key_file_access(&p).unwrap(), KeyFileAccess::WorldReadable(0o644));
        let e = PiiKey::from_file(&p).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(
            e.to_string().contains("world-readable") && e.to_string().contains("chmod 600"),
            "{e}"
        );
        set_mode(&p, 0o640);
        assert_eq!(key_file_access(&p).unwrap(), KeyFileAccess::GroupReadable(0o640));
        assert!(PiiKey::from_file(&p).is_ok());
        set_mode(&p, 0o400);
        assert_eq!(key_file_access(&p).unwrap(), KeyFileAccess::Private);
        assert!(PiiKey::from_file(&p).is_ok());
    }
}
