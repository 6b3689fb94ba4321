//! The disk spool: one per output, holding the alerts that output could not deliver yet.
//!
//! # Design constraints
//!
//! 1. **Nothing acknowledged is replayed twice in the normal case; nothing unacknowledged is ever
//!    skipped.** A record leaves the spool only through [`Spool::ack`], after the receiver took it.
//!    Crashes may cause duplicates (at-least-once), never gaps.
//! 2. **Append-only, fsync'd segments.** Records are appended to numbered segment files
//!    (`<id>.seg`, 20 decimal digits so names sort by id). Each record is
//!    `len: u32 LE | crc32(payload): u32 LE | payload`. A record is durable after
//!    [`Spool::sync`] (the fan-out calls it whenever its input queue runs dry, or every
//!    [`SYNC_EVERY`] records: group commit, so a burst costs one fsync, not one per alert).
//! 3. **Torn tails are expected, not fatal.** On open every segment is scanned; a record whose
//!    header or checksum does not hold ends that segment (the crash happened mid-write). The tail
//!    is truncated, the loss of that one unsynced record is logged; nothing before it is lost.
//! 4. **The acknowledgement cursor is one small file** (`ack`: `<segment id> <byte offset>`),
//!    replaced atomically (write, fsync, rename, fsync the directory). Fully acknowledged segments
//!    are deleted. The cursor counts only if it names the *oldest existing* segment; otherwise
//!    (the segment it named was deleted, or an older one was prepended) replay starts at the
//!    oldest segment's first byte. That makes every crash point safe: deleting a segment and then
//!    crashing before the cursor moves cannot skip anything.
//! 5. **Order is kept, including across a failure.** Alerts still in memory when delivery fails
//!    are older than everything in the spool (the fan-out only spills to disk once the queue is
//!    full, and nothing enters the queue while the spool is non-empty), so they go *before* it:
//!    [`Spool::prepend`] writes them as a new segment numbered below the oldest one. Segment ids
//!    start at 2^32 in an empty spool, which leaves room for billions of prepends.
//! 6. **Bounded.** The bytes of all segment files never exceed `max_bytes`. When a record does not
//!    fit, [`SpoolError::Full`] is returned and the caller drops the *newest* alert (counted in
//!    `nigehban_output_dropped_total{reason="spool_full"}` and logged once per episode). Dropping
//!    the newest keeps the start of an incident, which is what an investigation needs first, and
//!    never rewrites a segment a replay may be reading.
//! 7. **One process per spool.** An exclusive `flock` on `lock` stops a second sensor from
//!    interleaving writes into the same directory; the error says which directory.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Records appended between two fsyncs at most, whatever the caller does.
pub const SYNC_EVERY: usize = 64;

/// Segment ids of a fresh spool start here, leaving room below for [`Spool::prepend`].
const FIRST_ID: u64 = 1 << 32;
/// A header announcing more than this is corruption, not a record.
const MAX_RECORD: usize = 16 << 20;
const HEADER: usize = 8;

/// What can go wrong with a spool directory. Every message names the path and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The operating system refused a file operation (the operator's disk or permissions).
    #[error("spool {path}: cannot {op}: {source} (check that the directory is writable and the disk is not full)")]
    Io {
        /// File or directory concerned.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process holds the spool (two sensors configured with one `--spool-dir`).
    #[error("spool {0} is in use by another process: give each sensor its own --spool-dir")]
    Locked(PathBuf),
    /// The record does not fit under the size cap; the caller drops it.
    #[error("spool {path} is full ({max_bytes} bytes): new alerts for this output are dropped until it drains")]
    Full {
        /// Spool directory.
        path: PathBuf,
        /// The cap.
        max_bytes: u64,
    },
}

/// One segment file. Invariant: `len` is the byte length of its valid records.
#[derive(Debug, Clone, Copy)]
struct Segment {
    id: u64,
    len: u64,
}

/// An append-only, acknowledged, size-capped queue of alert lines on disk.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Oldest first. Invariant: ids strictly increase; the last one takes appends.
    segments: VecDeque<Segment>,
    /// First unacknowledged byte in `segments[0]`. Invariant: `<= segments[0].len`.
    head_offset: u64,
    /// Records read by the last [`Spool::peek`]: (segment id, end offset, handed out). Damaged
    /// records are read but not handed out; acknowledging the records around them covers them.
    peeked: Vec<(u64, u64, bool)>,
    /// Sum of `segments[*].len`.
    total_bytes: u64,
    /// Append handle on the last segment.
    writer: Option<File>,
    /// Read handle, kept open across peeks of the same segment.
    reader: Option<(u64, File)>,
    /// Next id for a segment created at the tail.
    next_id: u64,
    unsynced: usize,
    _lock: File,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("bytes", &self.total_bytes)
            .finish()
    }
}

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn seg_name(id: u64) -> String {
    format!("{id:020}.seg")
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "sync directory"))
}

impl Spool {
    /// Opens (creating it if needed) the spool in `dir`, capped at `max_bytes`, recovering from
    /// any crash: torn tails are cut, the acknowledgement cursor is applied.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        Self::open_with_segment_size(dir, max_bytes, (max_bytes / 8).clamp(64 * 1024, 64 << 20))
    }

    /// [`Spool::open`] with an explicit segment size (tests use tiny segments).
    pub fn open_with_segment_size(dir: &Path, max_bytes: u64, segment_bytes: u64) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir, "create directory"))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path, "open lock file"))?;
        // SAFETY: flock on a valid, owned descriptor; no memory is passed.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(SpoolError::Locked(dir.to_path_buf()));
        }
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir, "list directory"))? {
            let entry = entry.map_err(io(dir, "list directory"))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".seg").and_then(|n| n.parse::<u64>().ok()) {
                ids.push(id);
            } else if name.ends_with(".tmp") {
                // An interrupted prepend: its records are still in memory of a process that is gone,
                // but the cursor was removed before it started, so nothing after it is skipped.
                let _ = std::fs::remove_file(entry.path());
            }
        }
        ids.sort_unstable();
        let mut segments = VecDeque::with_capacity(ids.len());
        let last = ids.last().copied();
        for id in ids {
            let path = dir.join(seg_name(id));
            let (valid, file_len) = scan(&path)?;
            if valid < file_len {
                tracing::warn!(spool = %dir.display(), segment = id, lost_bytes = file_len - valid,
                    "spool segment ends in a torn or damaged record (crash while writing?); cutting it there");
                if Some(id) == last {
                    let f = OpenOptions::new().write(true).open(&path).map_err(io(&path, "open"))?;
                    f.set_len(valid).map_err(io(&path, "truncate torn tail"))?;
                    f.sync_all().map_err(io(&path, "sync"))?;
                }
            }
            segments.push_back(Segment { id, len: valid });
        }
        let cursor = read_cursor(dir);
        let mut head_offset = 0;
        if let (Some((cid, off)), Some(first)) = (cursor, segments.front()) {
            if cid == first.id && off <= first.len {
                head_offset = off;
            }
        }
        let next_id = segments
            .back()
            .map(|s| s.id + 1)
            .unwrap_or(FIRST_ID)
            .max(cursor.map(|c| c.0 + 1).unwrap_or(0));
        let total_bytes = segments.iter().map(|s| s.len).sum();
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: segment_bytes.max(1),
            segments,
            head_offset,
            peeked: Vec::new(),
            total_bytes,
            writer: None,
            reader: None,
            next_id,
            unsynced: 0,
            _lock: lock,
        };
        spool.drop_acked_head()?;
        Ok(spool)
    }

    /// True when every record has been acknowledged.
    pub fn is_empty(&self) -> bool {
        match (self.segments.front(), self.segments.len()) {
            (None, _) => true,
            (Some(s), 1) => self.head_offset == s.len,
            _ => false,
        }
    }

    /// Bytes on disk, acknowledged prefix of the oldest segment included.
    pub fn bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one record at the tail. Durable after the next [`Spool::sync`] (which this calls
    /// itself every [`SYNC_EVERY`] records).
    pub fn append(&mut self, record: &str) -> Result<(), SpoolError> {
        let size = (HEADER + record.len()) as u64;
        if record.len() > MAX_RECORD || self.total_bytes + size > self.max_bytes {
            return Err(SpoolError::Full {
                path: self.dir.clone(),
                max_bytes: self.max_bytes,
            });
        }
        let roll = match self.segments.back() {
            None => true,
            Some(s) => s.len > 0 && s.len + size > self.segment_bytes,
        };
        if roll {
            self.sync()?;
            let id = self.next_id;
            self.next_id += 1;
            self.segments.push_back(Segment { id, len: 0 });
            self.writer = None;
        }
        let last = self.segments.back_mut().expect("a segment exists after roll");
        let path = self.dir.join(seg_name(last.id));
        if self.writer.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path, "open segment"))?;
            if last.len == 0 {
                sync_dir(&self.dir)?;
            }
            self.writer = Some(f);
        }
        let w = self.writer.as_mut().expect("writer opened above");
        w.write_all(&encode(record)).map_err(io(&path, "append"))?;
        last.len += size;
        self.total_bytes += size;
        self.unsynced += 1;
        if self.unsynced >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes every appended record durable (fsync of the tail segment).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if self.unsynced > 0 {
            if let (Some(w), Some(s)) = (&self.writer, self.segments.back()) {
                w.sync_data()
                    .map_err(io(&self.dir.join(seg_name(s.id)), "sync segment"))?;
            }
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Records not yet appended since the last sync.
    pub fn unsynced(&self) -> usize {
        self.unsynced
    }

    /// Puts `records` (oldest first) *before* everything spooled, durably. Returns how many were
    /// kept; the rest did not fit under the cap (the newest of them are the ones dropped).
    /// An unacknowledged [`Spool::peek`] is forgotten (its records stay, behind the new ones).
    pub fn prepend(&mut self, records: &[String]) -> Result<usize, SpoolError> {
        self.peeked.clear();
        if records.is_empty() {
            return Ok(0);
        }
        if self.is_empty() {
            // Nothing to go before: a plain append keeps the tail segment in use.
            let mut kept = 0;
            for r in records {
                match self.append(r) {
                    Ok(()) => kept += 1,
                    Err(SpoolError::Full { .. }) => break,
                    Err(e) => return Err(e),
                }
            }
            self.sync()?;
            return Ok(kept);
        }
        let mut buf = Vec::new();
        let mut kept = 0;
        for r in records {
            let size = (HEADER + r.len()) as u64;
            if r.len() > MAX_RECORD || self.total_bytes + buf.len() as u64 + size > self.max_bytes {
                break;
            }
            buf.extend_from_slice(&encode(r));
            kept += 1;
        }
        if kept == 0 {
            return Ok(0);
        }
        let head = *self.segments.front().expect("non-empty spool");
        let id = head.id - 1;
        // A partly acknowledged head segment: its unacknowledged rest moves into the new segment
        // behind the prepended records, so the acknowledged part is not sent again.
        let carried = self.head_offset > 0;
        if carried {
            let path = self.dir.join(seg_name(head.id));
            let mut f = File::open(&path).map_err(io(&path, "open segment"))?;
            f.seek(SeekFrom::Start(self.head_offset)).map_err(io(&path, "seek"))?;
            let mut rest = vec![0u8; (head.len - self.head_offset) as usize];
            f.read_exact(&mut rest).map_err(io(&path, "read segment"))?;
            buf.extend_from_slice(&rest);
        }
        // The cursor goes first: if we crash before the new segment is in place, replay restarts
        // at the oldest segment's first byte (duplicates), never past the prepended records.
        let cursor = self.dir.join("ack");
        match std::fs::remove_file(&cursor) {
            Ok(()) => sync_dir(&self.dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&cursor, "remove cursor")(e)),
        }
        let tmp = self.dir.join(format!("{id:020}.tmp"));
        let path = self.dir.join(seg_name(id));
        let mut f = File::create(&tmp).map_err(io(&tmp, "create"))?;
        f.write_all(&buf).map_err(io(&tmp, "write"))?;
        f.sync_all().map_err(io(&tmp, "sync"))?;
        std::fs::rename(&tmp, &path).map_err(io(&path, "rename into place"))?;
        sync_dir(&self.dir)?;
        if carried {
            // A crash before this delete replays the old head twice: duplicates, not loss.
            self.sync()?;
            self.remove_head()?;
        }
        self.head_offset = 0;
        self.segments.push_front(Segment {
            id,
            len: buf.len() as u64,
        });
        self.total_bytes += buf.len() as u64;
        Ok(kept)
    }

    /// Up to `max` of the oldest unacknowledged records, oldest first, without removing them.
    /// A second peek before [`Spool::ack`] returns the same records.
    pub fn peek(&mut self, max: usize) -> Result<Vec<String>, SpoolError> {
        loop {
            let out = self.peek_once(max)?;
            if !out.is_empty() || self.peeked.is_empty() {
                return Ok(out);
            }
            // Only damaged records were read: acknowledge them away and read on.
            self.advance_to(self.peeked.len() - 1)?;
        }
    }

    fn peek_once(&mut self, max: usize) -> Result<Vec<String>, SpoolError> {
        self.peeked.clear();
        let mut out = Vec::new();
        let mut idx = 0;
        let mut offset = self.head_offset;
        while out.len() < max && idx < self.segments.len() {
            let seg = self.segments[idx];
            if offset >= seg.len {
                idx += 1;
                offset = 0;
                continue;
            }
            let path = self.dir.join(seg_name(seg.id));
            if self.reader.as_ref().map(|r| r.0) != Some(seg.id) {
                let f = File::open(&path).map_err(io(&path, "open segment"))?;
                self.reader = Some((seg.id, f));
            }
            let f = &mut self.reader.as_mut().expect("reader opened above").1;
            f.seek(SeekFrom::Start(offset)).map_err(io(&path, "seek"))?;
            let mut header = [0u8; HEADER];
            f.read_exact(&mut header).map_err(io(&path, "read record header"))?;
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
            let mut payload = vec![0u8; len];
            f.read_exact(&mut payload).map_err(io(&path, "read record"))?;
            offset += (HEADER + len) as u64;
            // The open-time scan checked every checksum; a record failing now was damaged on disk
            // since: skip it rather than wedge the output.
            let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
            match String::from_utf8(payload) {
                Ok(s) if crc32fast::hash(s.as_bytes()) == crc => {
                    self.peeked.push((seg.id, offset, true));
                    out.push(s)
                }
                _ => {
                    tracing::error!(spool = %self.dir.display(), segment = seg.id, "damaged spool record skipped");
                    self.peeked.push((seg.id, offset, false));
                }
            }
        }
        Ok(out)
    }

    /// Acknowledges the first `n` records of the last [`Spool::peek`]: the receiver has them.
    /// Persists the cursor and deletes segments that are fully acknowledged.
    pub fn ack(&mut self, n: usize) -> Result<(), SpoolError> {
        if n == 0 {
            return Ok(());
        }
        let handed_out = self.peeked.iter().filter(|p| p.2).count();
        assert!(n <= handed_out, "ack of {n} records but only {handed_out} were peeked");
        // The n-th handed-out record, or the very last one read when all are acknowledged (so
        // damaged records at the end are covered too).
        let idx = if n == handed_out {
            self.peeked.len() - 1
        } else {
            self.peeked
                .iter()
                .enumerate()
                .filter(|(_, p)| p.2)
                .nth(n - 1)
                .map(|(i, _)| i)
                .expect("n <= handed_out")
        };
        self.advance_to(idx)
    }

    /// Acknowledges everything up to and including `self.peeked[idx]`.
    fn advance_to(&mut self, idx: usize) -> Result<(), SpoolError> {
        let (id, end, _) = self.peeked[idx];
        self.peeked.clear();
        while self.segments.front().is_some_and(|s| s.id < id) {
            self.remove_head()?;
        }
        self.head_offset = end;
        debug_assert!(self.head_offset <= self.segments[0].len);
        self.drop_acked_head()?;
        if !self.segments.is_empty() {
            write_cursor(&self.dir, self.segments[0].id, self.head_offset)?;
        }
        Ok(())
    }

    /// Deletes fully acknowledged head segments; an empty spool is reset to no files at all.
    fn drop_acked_head(&mut self) -> Result<(), SpoolError> {
        while let Some(first) = self.segments.front() {
            if self.head_offset < first.len {
                break;
            }
            self.remove_head()?;
        }
        if self.segments.is_empty() {
            let cursor = self.dir.join("ack");
            match std::fs::remove_file(&cursor) {
                Ok(()) => sync_dir(&self.dir)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&cursor, "remove cursor")(e)),
            }
        }
        Ok(())
    }

    fn remove_head(&mut self) -> Result<(), SpoolError> {
        let s = self.segments.pop_front().expect("caller checked");
        if self.reader.as_ref().map(|r| r.0) == Some(s.id) {
            self.reader = None;
        }
        if self.segments.is_empty() {
            self.writer = None;
        }
        let path = self.dir.join(seg_name(s.id));
        std::fs::remove_file(&path).map_err(io(&path, "delete acknowledged segment"))?;
        sync_dir(&self.dir)?;
        self.total_bytes -= s.len;
        self.head_offset = 0;
        Ok(())
    }
}

fn encode(record: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER + record.len());
    b.extend_from_slice(&(record.len() as u32).to_le_bytes());
    b.extend_from_slice(&crc32fast::hash(record.as_bytes()).to_le_bytes());
    b.extend_from_slice(record.as_bytes());
    b
}

/// (bytes of valid records, file length).
fn scan(path: &Path) -> Result<(u64, u64), SpoolError> {
    let data = std::fs::read(path).map_err(io(path, "read segment"))?;
    let mut pos = 0usize;
    while let Some(header) = data.get(pos..pos + HEADER) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > MAX_RECORD {
            break;
        }
        match data.get(pos + HEADER..pos + HEADER + len) {
            Some(p) if crc32fast::hash(p) == crc && std::str::from_utf8(p).is_ok() => pos += HEADER + len,
            _ => break,
        }
    }
    Ok((pos as u64, data.len() as u64))
}

fn read_cursor(dir: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(dir.join("ack")).ok()?;
    let mut it = text.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn write_cursor(dir: &Path, id: u64, offset: u64) -> Result<(), SpoolError> {
    let tmp = dir.join("ack.tmp");
    let path = dir.join("ack");
    let mut f = File::create(&tmp).map_err(io(&tmp, "create cursor"))?;
    writeln!(f, "{id} {offset}").map_err(io(&tmp, "write cursor"))?;
    f.sync_all().map_err(io(&tmp, "sync cursor"))?;
    std::fs::rename(&tmp, &path).map_err(io(&path, "replace cursor"))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests;
