//! Classic pcap records (format 2.4), read straight from the file's descriptor into one large
//! buffer and handed out in place.
//!
//! Why not libpcap for these: it reads through stdio into its own buffer and then copies every
//! record once more into a per-packet buffer, so a capture file's bytes were copied three times
//! before a batch got them. `perf` put those copies and libpcap's per-record calls at about a
//! fifth of the capture thread's time in `nigehban read`. libpcap still opens every file (it
//! checks the header and maps the link type) and still reads everything but classic 2.4 files
//! (pcapng, older versions, patched formats).
//!
//! Each record is decided exactly as libpcap 1.10's `pcap_next_packet` decides it, with the same
//! error text, so a damaged file reads the same either way: the tests compare both readers on
//! generated, truncated and oversized records.

use super::RawPacket;
use crate::clock::Timestamp;
use std::os::fd::RawFd;

/// Bytes of a record header.
const RECORD_HEADER: usize = 16;
/// libpcap's `MAXIMUM_SNAPLEN`: a longer record is damage, whatever the file's snapshot length
/// (the largest `max_snaplen_for_dlt` of the link types the decoder supports).
const MAX_CAPLEN: u32 = 262_144;
/// Bytes asked of the kernel per read, unless a record needs more: small enough that what a read
/// copies is still in the cache when the record is decoded and batched. Reading all 330 MB of
/// the cleartext benchmark capture took 0.038 s in 128 KiB reads and 0.045-0.054 s in 1 MiB
/// ones (libpcap: 0.082 s).
const READ: usize = 128 << 10;
/// Room for the largest record after a partial one.
const BUFFER: usize = 512 << 10;
const _: () = assert!(BUFFER >= RECORD_HEADER + MAX_CAPLEN as usize);

/// How the records of one file are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    /// Written in the other byte order than this machine's.
    pub swapped: bool,
    /// Nanosecond time stamps (scaled down to microseconds, as libpcap does by default).
    pub nanos: bool,
    /// libpcap's snapshot length for the file (its adjusted value): longer records are cut to it.
    pub snaplen: u32,
}

/// Reads records from a descriptor it does not own, from the first record on.
pub(super) struct ClassicRecords {
    /// Invariant: open for as long as `self` lives (its owner, libpcap's stream, is dropped
    /// after this reader) and never read through its file position (`pread` only).
    fd: RawFd,
    layout: Layout,
    buf: Box<[u8]>,
    /// Unread bytes are `buf[start..end]`. Invariant: `start <= end <= buf.len()`.
    start: usize,
    end: usize,
    /// File offset of `buf[end]`.
    file_pos: u64,
}

impl ClassicRecords {
    /// A reader of `fd`'s records from `first_record` (the end of the file header) on.
    pub(super) fn new(fd: RawFd, layout: Layout, first_record: u64) -> ClassicRecords {
        ClassicRecords {
            fd,
            layout,
            buf: vec![0u8; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            file_pos: first_record,
        }
    }

    /// File offset of the next record.
    pub(super) fn offset(&self) -> u64 {
        self.file_pos - (self.end - self.start) as u64
    }

    /// The next record, `None` at a clean end of file, or libpcap's description of the damage.
    pub(super) fn next_record(&mut self) -> Result<Option<RawPacket<'_>>, String> {
        let have = self.fill(RECORD_HEADER)?;
        if have == 0 {
            return Ok(None);
        }
        if have < RECORD_HEADER {
            return Err(format!(
                "truncated dump file; tried to read {RECORD_HEADER} header bytes, only got {have}"
            ));
        }
        let h = &self.buf[self.start..self.start + RECORD_HEADER];
        let field = |i: usize| {
            let b: [u8; 4] = h[4 * i..4 * i + 4].try_into().expect("4 bytes");
            let v = u32::from_ne_bytes(b);
            if self.layout.swapped {
                v.swap_bytes()
            } else {
                v
            }
        };
        // libpcap 1.10 reads time stamp fields as signed, except that its byte swap makes them
        // unsigned: a damaged time stamp turns out the same either way.
        let stamp = |v: u32| {
            if self.layout.swapped {
                i64::from(v)
            } else {
                i64::from(v as i32)
            }
        };
        let (secs, mut frac, caplen, wire_len) = (stamp(field(0)), stamp(field(1)), field(2), field(3));
        if self.layout.nanos {
            frac /= 1000;
        }
        let snaplen = self.layout.snaplen;
        if caplen > MAX_CAPLEN {
            return Err(if caplen > snaplen {
                format!("invalid packet capture length {caplen}, bigger than snaplen of {snaplen}")
            } else {
                format!("invalid packet capture length {caplen}, bigger than maximum of {MAX_CAPLEN}")
            });
        }
        let record = RECORD_HEADER + caplen as usize;
        let have = self.fill(record)?;
        if have < record {
            let got = have - RECORD_HEADER;
            // libpcap reads a record cut to the snapshot length in two steps, and names the step
            // that came up short.
            let tried = if caplen > snaplen && got < snaplen as usize {
                snaplen
            } else {
                caplen
            };
            return Err(format!(
                "truncated dump file; tried to read {tried} captured bytes, only got {got}"
            ));
        }
        let at = self.start + RECORD_HEADER;
        self.start += record;
        Ok(Some(RawPacket {
            ts: Timestamp::from_secs_micros(secs, frac),
            data: &self.buf[at..at + caplen.min(snaplen) as usize],
            wire_len,
        }))
    }

    /// Makes at least `need` unread bytes available unless the file ends first; returns how
    /// many are available. `need` is at most the buffer's size.
    fn fill(&mut self, need: usize) -> Result<usize, String> {
        debug_assert!(need <= self.buf.len());
        if self.end - self.start >= need {
            return Ok(self.end - self.start);
        }
        if self.buf.len() - self.start < need {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end - self.start < need {
            let want = (need - (self.end - self.start)).max(READ);
            let room = &mut self.buf[self.end..(self.end + want).min(BUFFER)];
            let offset = libc::off_t::try_from(self.file_pos).map_err(|_| "file offset out of range".to_string())?;
            // SAFETY: `room` is writable for its whole length, and `fd` is open (invariant).
            let n = unsafe { libc::pread(self.fd, room.as_mut_ptr().cast(), room.len(), offset) };
            match n {
                0 => break,
                n if n > 0 => {
                    self.end += n as usize;
                    self.file_pos += n as u64;
                }
                _ => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(format!("error reading dump file: {e}"));
                    }
                }
            }
        }
        Ok(self.end - self.start)
    }
}
