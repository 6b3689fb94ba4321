//! JSON lines to a local file (with size-based rotation and reopen on SIGHUP) or to stdout.

use super::output::{DeliveryError, Transport};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Size-based rotation of the alert file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a write would take the file past this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept (`alerts.json.1` newest … `.N` oldest); at least 1.
    pub keep: u32,
}

/// Appends alert lines to a file. `ack` = written to the kernel (`write` returned): the file
/// is local, so that is as far as delivery goes; the spool protects against a full disk.
pub struct FileTransport {
    path: PathBuf,
    file: File,
    /// Bytes in the current file (read at open, counted since).
    size: u64,
    rotation: Option<Rotation>,
    /// Set by SIGHUP: reopen the path before the next write (after logrotate moved the file).
    reopen: Arc<AtomicBool>,
    buf: Vec<u8>,
}

fn open_append(path: &Path) -> std::io::Result<(File, u64)> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    let size = f.metadata()?.len();
    Ok((f, size))
}

impl FileTransport {
    /// Opens `path` for appending now, so a bad path fails at start rather than at the first
    /// alert. `reopen` is the SIGHUP flag.
    pub fn open(path: &Path, rotation: Option<Rotation>, reopen: Arc<AtomicBool>) -> anyhow::Result<FileTransport> {
        let (file, size) =
            open_append(path).map_err(|e| anyhow::anyhow!("cannot open alert file {}: {e}", path.display()))?;
        Ok(FileTransport {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
            reopen,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    fn err(&self, what: &str, e: std::io::Error) -> DeliveryError {
        DeliveryError::Unavailable(format!("alert file {}: cannot {what}: {e}", self.path.display()))
    }

    fn reopen_now(&mut self) -> Result<(), DeliveryError> {
        let (file, size) = open_append(&self.path).map_err(|e| self.err("reopen", e))?;
        self.file = file;
        self.size = size;
        Ok(())
    }

    /// Renames `path` → `path.1` → … → `path.keep` (the oldest is overwritten) and starts a new
    /// file. Renaming (not copying) keeps it atomic and cheap whatever the size.
    fn rotate(&mut self, keep: u32) -> Result<(), DeliveryError> {
        let numbered = |i: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        for i in (1..keep).rev() {
            let from = numbered(i);
            if from.exists() {
                std::fs::rename(&from, numbered(i + 1)).map_err(|e| self.err("rotate", e))?;
            }
        }
        std::fs::rename(&self.path, numbered(1)).map_err(|e| self.err("rotate", e))?;
        tracing::info!(file = %self.path.display(), "alert file rotated");
        self.reopen_now()
    }

    fn write_buf(&mut self) -> Result<(), DeliveryError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.buf);
        let n = self.buf.len() as u64;
        self.buf.clear();
        r.map_err(|e| self.err("write", e))?;
        self.size += n;
        Ok(())
    }
}

impl Transport for FileTransport {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn endpoint(&self) -> String {
        self.path.display().to_string()
    }

    fn send(&mut self, alerts: &[&str]) -> Result<(), DeliveryError> {
        if self.reopen.swap(false, Ordering::Relaxed) {
            tracing::info!(file = %self.path.display(), "SIGHUP: reopening alert file");
            self.reopen_now()?;
        }
        self.buf.clear();
        for a in alerts {
            let line = a.len() as u64 + 1;
            if let Some(r) = self.rotation {
                if self.size + self.buf.len() as u64 > 0 && self.size + self.buf.len() as u64 + line > r.max_bytes {
                    // If writing or rotating fails the whole batch is retried: some alerts of
                    // it may then be written twice (at-least-once), none lost.
                    self.write_buf()?;
                    self.rotate(r.keep)?;
                }
            }
            self.buf.extend_from_slice(a.as_bytes());
            self.buf.push(b'\n');
        }
        self.write_buf()
    }

    fn max_batch(&self) -> usize {
        1024
    }
}

/// JSON lines on standard output.
pub struct StdoutTransport {
    buf: Vec<u8>,
}

impl StdoutTransport {
    /// Writes to this process's stdout.
    pub fn new() -> StdoutTransport {
        StdoutTransport { buf: Vec::new() }
    }
}

impl Default for StdoutTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl Transport for StdoutTransport {
    fn kind(&self) -> &'static str {
        "stdout"
    }

    fn endpoint(&self) -> String {
        "stdout".into()
    }

    fn send(&mut self, alerts: &[&str]) -> Result<(), DeliveryError> {
        self.buf.clear();
        for a in alerts {
            self.buf.extend_from_slice(a.as_bytes());
            self.buf.push(b'\n');
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&self.buf)
            .and_then(|_| out.flush())
            .map_err(|e| DeliveryError::Unavailable(format!("stdout: {e}")))
    }

    fn max_batch(&self) -> usize {
        1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn rotates_by_size_and_keeps_n_files_with_no_line_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");
        let rot = Rotation { max_bytes: 25, keep: 2 };
        let mut t = FileTransport::open(&path, Some(rot), Arc::default()).unwrap();
        // Each line is 10 bytes with its newline: two fit under 25, the third rotates.
        let lines: Vec<String> = (0..7).map(|i| format!("{{\"n\":{i:03}}}")).collect();
        for chunk in lines.chunks(3) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            t.send(&refs).unwrap();
        }
        let (cur, one, two) = (
            read(&path),
            read(&dir.path().join("alerts.json.1")),
            read(&dir.path().join("alerts.json.2")),
        );
        assert_eq!(cur, "{\"n\":006}\n");
        assert_eq!(one, "{\"n\":004}\n{\"n\":005}\n");
        assert_eq!(two, "{\"n\":002}\n{\"n\":003}\n");
        assert!(!dir.path().join("alerts.json.3").exists(), "only `keep` rotated files");
        for f in [&cur, &one, &two] {
            assert!(f.len() <= 25);
        }
    }

    #[test]
    fn sighup_flag_reopens_a_moved_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");
        let hup = Arc::new(AtomicBool::new(false));
        let mut t = FileTransport::open(&path, None, Arc::clone(&hup)).unwrap();
        t.send(&["one"]).unwrap();
        std::fs::rename(&path, dir.path().join("moved")).unwrap();
        t.send(&["two"]).unwrap();
        hup.store(true, Ordering::Relaxed);
        t.send(&["three"]).unwrap();
        assert_eq!(read(&dir.path().join("moved")), "one\ntwo\n");
        assert_eq!(read(&path), "three\n");
    }

    #[test]
    fn unwritable_path_fails_at_open_naming_it() {
        let e = FileTransport::open(Path::new("/nonexistent-dir/a.json"), None, Arc::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/nonexistent-dir/a.json"), "{e}");
    }
}
