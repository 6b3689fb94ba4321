//! Known values (what Purview calls Exact Data Match): a file of keyed hashes of an
//! organisation's own customers' values, made offline by `nigehban hash-list` with the same PII
//! key the sensors use. A finding whose hash is on the list is reported at high confidence.
//!
//! File format (`.nhl`, all integers little-endian):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic `NGBKNOWN` |
//! | 8 | 2 | format version, 1 |
//! | 10 | 2 | bytes per hash, 8 |
//! | 12 | 4 | reserved, 0 |
//! | 16 | 16 | key fingerprint ([`PiiKey::fingerprint`]) |
//! | 32 | 8 | number of hashes *n* |
//! | 40 | 8·*n* | hashes: the first 8 bytes of each HMAC-SHA256 ([`PiiHash::short`]) as `u64`, strictly increasing |
//!
//! Eight bytes per value keep a million customers in 8 MB; with *n* = 10⁶ the chance that an
//! unrelated value matches by accident is *n*/2⁶⁴ ≈ 5·10⁻¹⁴ per lookup. Loading is one read and
//! one pass that checks the order; a lookup is a binary search.

use crate::pii::{PiiHash, PiiKey};
use std::io::Write;
use std::path::{Path, PathBuf};

/// First bytes of every known-values file.
pub const MAGIC: [u8; 8] = *b"NGBKNOWN";
/// The format version this build reads and writes.
pub const VERSION: u16 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 40;
const HASH_BYTES: u16 = 8;

/// Errors reading or writing a known-values file; each names the file and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KnownError {
    /// The file cannot be read or written.
    #[error("known-values file {}: {source}; check the path and its permissions", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not a known-values file (wrong magic or too short for a header).
    #[error("{} is not a known-values file (no NGBKNOWN header): make it with `nigehban hash-list`", path.display())]
    NotKnownValues {
        /// The file.
        path: PathBuf,
    },
    /// A format version or hash width this build does not read.
    #[error("known-values file {} has format version {version} with {width}-byte hashes; this build reads version {VERSION} with 8-byte hashes: remake it with this build's `nigehban hash-list`", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        version: u16,
        /// Its hash width.
        width: u16,
    },
    /// Made with another PII key: its hashes cannot match this sensor's.
    #[error("known-values file {} was made with a different PII key: remake it with `nigehban hash-list --pii-key-file` and the key this sensor uses", path.display())]
    WrongKey {
        /// The file.
        path: PathBuf,
    },
    /// Length or order does not agree with the header: the file is truncated or corrupt.
    #[error("known-values file {} is corrupt ({what}): remake it with `nigehban hash-list`", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
}

/// A sorted set of 8-byte hash prefixes, loaded from one or more files.
#[derive(Clone, Default)]
pub struct KnownValues {
    /// Invariant: strictly increasing.
    hashes: Vec<u64>,
}

impl std::fmt::Debug for KnownValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KnownValues({} hashes)", self.hashes.len())
    }
}

impl KnownValues {
    /// A set of the given hashes (any order, duplicates allowed).
    pub fn from_hashes(hashes: impl IntoIterator<Item = PiiHash>) -> KnownValues {
        let mut v: Vec<u64> = hashes.into_iter().map(|h| h.short()).collect();
        v.sort_unstable();
        v.dedup();
        KnownValues { hashes: v }
    }

    /// Loads one file, refusing it unless it was made with `key`.
    pub fn load(path: &Path, key: &PiiKey) -> Result<KnownValues, KnownError> {
        let bytes = std::fs::read(path).map_err(|source| KnownError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes, key).map_err(|e| e.at(path))
    }

    /// Loads every file into one set.
    pub fn load_all(paths: &[PathBuf], key: &PiiKey) -> Result<KnownValues, KnownError> {
        let mut all = KnownValues::default();
        for p in paths {
            let one = Self::load(p, key)?;
            if all.hashes.is_empty() {
                all = one;
            } else {
                all.hashes.extend_from_slice(&one.hashes);
                all.hashes.sort_unstable();
                all.hashes.dedup();
            }
        }
        Ok(all)
    }

    fn parse(b: &[u8], key: &PiiKey) -> Result<KnownValues, ParseFault> {
        if b.len() < HEADER_LEN || b[..8] != MAGIC {
            return Err(ParseFault::NotKnownValues);
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let (version, width) = (u16_at(8), u16_at(10));
        if version != VERSION || width != HASH_BYTES {
            return Err(ParseFault::Version(version, width));
        }
        if b[16..32] != key.fingerprint() {
            return Err(ParseFault::WrongKey);
        }
        let mut n = [0u8; 8];
        n.copy_from_slice(&b[32..40]);
        let n = u64::from_le_bytes(n);
        let body = &b[HEADER_LEN..];
        if n.checked_mul(8) != Some(body.len() as u64) {
            return Err(ParseFault::Corrupt("its length does not match its hash count"));
        }
        let hashes: Vec<u64> = body
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .collect();
        if hashes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ParseFault::Corrupt("its hashes are not sorted"));
        }
        Ok(KnownValues { hashes })
    }

    /// Writes the set to `path` (through a temporary file in the same directory, renamed into
    /// place, so a sensor never reads half a file).
    pub fn write(&self, path: &Path, key: &PiiKey) -> Result<(), KnownError> {
        let io = |source| KnownError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + 8 * self.hashes.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&HASH_BYTES.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&key.fingerprint());
        out.extend_from_slice(&(self.hashes.len() as u64).to_le_bytes());
        for h in &self.hashes {
            out.extend_from_slice(&h.to_le_bytes());
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let result = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&out).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, path));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
    }

    /// True if `hash` is in the set.
    pub fn contains(&self, hash: &PiiHash) -> bool {
        self.hashes.binary_search(&hash.short()).is_ok()
    }

    /// Number of hashes.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Heap bytes held.
    pub fn memory(&self) -> usize {
        self.hashes.capacity() * 8
    }
}

/// A parse failure before the path is known.
enum ParseFault {
    NotKnownValues,
    Version(u16, u16),
    WrongKey,
    Corrupt(&'static str),
}

impl ParseFault {
    fn at(self, path: &Path) -> KnownError {
        let path = path.to_path_buf();
        match self {
            ParseFault::NotKnownValues => KnownError::NotKnownValues { path },
            ParseFault::Version(version, width) => KnownError::Version { path, version, width },
            ParseFault::WrongKey => KnownError::WrongKey { path },
            ParseFault::Corrupt(what) => KnownError::Corrupt { path, what },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::{PiiKind, PiiValue};

    fn hash(key: &PiiKey, digits: &str) -> PiiHash {
        key.hash(&PiiValue::new(PiiKind::Cnic, digits.as_bytes()).unwrap())
    }

    #[test]
    fn round_trip_and_lookup() {
        let key = PiiKey::new(b"k");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("known.nhl");
        let values = ["3520212345671", "4210176543213", "3520212345671"];
        let set = KnownValues::from_hashes(values.iter().map(|v| hash(&key, v)));
        assert_eq!(set.len(), 2);
        set.write(&p, &key).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), (HEADER_LEN + 16) as u64);
        let back = KnownValues::load(&p, &key).unwrap();
        assert!(back.contains(&hash(&key, "4210176543213")));
        assert!(!back.contains(&hash(&key, "6110111111118")));
        assert_eq!(format!("{back:?}"), "KnownValues(2 hashes)");
        // Several files merge into one set.
        let q = dir.path().join("more.nhl");
        KnownValues::from_hashes([hash(&key, "6110111111118"), hash(&key, "3520212345671")])
            .write(&q, &key)
            .unwrap();
        let all = KnownValues::load_all(&[p.clone(), q], &key).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.contains(&hash(&key, "6110111111118")));
    }

    #[test]
    fn refuses_other_keys_other_files_and_corruption() {
        let key = PiiKey::new(b"k");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("known.nhl");
        KnownValues::from_hashes([hash(&key, "3520212345671"), hash(&key, "4210176543213")])
            .write(&p, &key)
            .unwrap();
        let e = KnownValues::load(&p, &PiiKey::new(b"other")).unwrap_err();
        assert!(matches!(e, KnownError::WrongKey { .. }), "{e}");
        assert!(e.to_string().contains("known.nhl") && e.to_string().contains("different PII key"));

        let good = std::fs::read(&p).unwrap();
        let mut short = good.clone();
        short.pop();
        std::fs::write(&p, &short).unwrap();
        assert!(matches!(
            KnownValues::load(&p, &key).unwrap_err(),
            KnownError::Corrupt { .. }
        ));
        let mut swapped = good.clone();
        let (a, b) = swapped[HEADER_LEN..].split_at_mut(8);
        a.swap_with_slice(&mut b[..8]);
        std::fs::write(&p, &swapped).unwrap();
        assert!(matches!(
            KnownValues::load(&p, &key).unwrap_err(),
            KnownError::Corrupt { .. }
        ));
        let mut v2 = good.clone();
        v2[8] = 2;
        std::fs::write(&p, &v2).unwrap();
        assert!(matches!(
            KnownValues::load(&p, &key).unwrap_err(),
            KnownError::Version { version: 2, .. }
        ));
        std::fs::write(&p, b"cnic,name\n3520212345671,Ali\n").unwrap();
        let e = KnownValues::load(&p, &key).unwrap_err();
        assert!(matches!(e, KnownError::NotKnownValues { .. }), "{e}");
        let e = KnownValues::load(&dir.path().join("missing.nhl"), &key).unwrap_err();
        assert!(
            matches!(e, KnownError::Io { .. }) && !e.to_string().contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn a_million_hashes_load_compactly() {
        // Timings are in `benches/known.rs`; this checks size and correctness at scale.
        let key = PiiKey::new(b"k");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.nhl");
        let n = 1_000_000u64;
        // Synthetic 13-digit values; hashing a million is the slow part, so use a cheap stand-in
        // for most and real keyed hashes for the ones looked up.
        let probe: Vec<PiiHash> = (0..100u64)
            .map(|i| hash(&key, &format!("{}", 3_520_200_000_000 + i)))
            .collect();
        let filler = (0..n - 100).map(|i| {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_be_bytes());
            PiiHash(b)
        });
        let set = KnownValues::from_hashes(filler.chain(probe.iter().copied()));
        assert_eq!(set.len() as u64, n);
        set.write(&p, &key).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), HEADER_LEN as u64 + 8 * n);
        let back = KnownValues::load(&p, &key).unwrap();
        assert_eq!(back.len() as u64, n);
        assert!(back.memory() <= 8 * n as usize + 64);
        assert!(probe.iter().all(|h| back.contains(h)));
        assert!(!back.contains(&hash(&key, "6110111111118")));
    }
}
