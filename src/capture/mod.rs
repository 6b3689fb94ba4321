//! Packet sources: pcap/pcapng files and live interfaces through libpcap (the default and
//! portable path), or on Linux through an AF_PACKET TPACKET_V3 ring shared by several capture
//! threads ([`afpacket`]). libpcap opens every file; the records of classic pcap files are then
//! read in place by `classic`, without libpcap's copies.
//!
//! The file reader tracks the byte offset of every record so that a damaged file is reported
//! with the offset of the damage, after everything before it was processed.

pub mod afpacket;
mod classic;

pub use afpacket::{AfPacketConfig, AfPacketSource};

use crate::clock::Timestamp;
use crate::decode::LinkType;
use std::path::{Path, PathBuf};

/// How live packets are read from the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureBackend {
    /// libpcap: portable, one capture thread.
    #[default]
    Pcap,
    /// Linux AF_PACKET TPACKET_V3 ring; several capture threads share the interface by flow hash.
    AfPacket,
}

impl CaptureBackend {
    /// Parses the flag or config value (`pcap`, `af-packet`).
    pub fn parse(s: &str) -> Option<CaptureBackend> {
        match s {
            "pcap" => Some(CaptureBackend::Pcap),
            "af-packet" | "afpacket" | "af_packet" => Some(CaptureBackend::AfPacket),
            _ => None,
        }
    }

    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureBackend::Pcap => "pcap",
            CaptureBackend::AfPacket => "af-packet",
        }
    }
}

/// Snapshot length for live capture: whole packets.
pub const SNAPLEN: i32 = 65535;

/// One captured frame, borrowed from libpcap's buffer until the next read.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire (may exceed `data.len()` when the snap length cut it).
    pub wire_len: u32,
}

impl<'a> RawPacket<'a> {
    fn from_pcap(p: &pcap::Packet<'a>) -> RawPacket<'a> {
        RawPacket {
            ts: Timestamp::from_secs_micros(p.header.ts.tv_sec, p.header.ts.tv_usec),
            data: p.data,
            wire_len: p.header.len,
        }
    }
}

/// Result of asking a source for the next packet.
#[derive(Debug)]
pub enum Next<'a> {
    /// A packet.
    Packet(RawPacket<'a>),
    /// Live capture: nothing arrived within the read timeout.
    Idle,
    /// File: no more packets.
    End,
}

/// Errors from packet sources: each names the file or interface and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The file could not be opened or is not a capture file.
    #[error("{path}: cannot read as pcap/pcapng: {msg}")]
    OpenFile {
        /// File.
        path: PathBuf,
        /// libpcap's reason.
        msg: String,
    },
    /// The file's link type is not one the decoder knows.
    #[error("{path}: unsupported link type {dlt} ({name}); supported: Ethernet, Linux cooked (SLL, SLL2), raw IP, BSD loopback")]
    UnsupportedFileLink {
        /// File.
        path: PathBuf,
        /// DLT number.
        dlt: i32,
        /// libpcap's name for it.
        name: String,
    },
    /// The file is damaged; packets before `offset` were processed.
    #[error("{path}: damaged at byte offset {offset} (after {packets} good packets): {msg}")]
    Damaged {
        /// File.
        path: PathBuf,
        /// Byte offset of the damaged record.
        offset: u64,
        /// Packets read before the damage.
        packets: u64,
        /// libpcap's description.
        msg: String,
    },
    /// Live capture could not start or failed.
    #[error("interface {interface}: {msg}")]
    Live {
        /// Interface.
        interface: String,
        /// What went wrong (and, where likely, what to do).
        msg: String,
    },
    /// The BPF expression does not compile.
    #[error("bad --bpf filter '{expr}': {msg}")]
    Bpf {
        /// The expression.
        expr: String,
        /// libpcap's message.
        msg: String,
    },
}

/// libpcap's own counters for a live capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets received (`ps_recv`).
    pub received: u64,
    /// Dropped for lack of buffer space (`ps_drop`).
    pub dropped: u64,
    /// Dropped by the interface or driver (`ps_ifdrop`).
    pub if_dropped: u64,
}

extern "C" {
    // libpcap: the stdio stream of a capture opened from a file. Used only to learn the byte
    // offset of the next record, never to read.
    fn pcap_file(p: *mut libc::c_void) -> *mut libc::FILE;
    // libpcap: the snapshot length it enforces on the file's records.
    fn pcap_snapshot(p: *mut libc::c_void) -> libc::c_int;
    // libpcap: a capture read from an open stdio stream, which it owns from then on (closed by
    // `pcap_close`).
    fn pcap_fopen_offline(fp: *mut libc::FILE, errbuf: *mut libc::c_char) -> *mut libc::c_void;
}

/// Bytes of the stdio buffer libpcap reads a capture file through. glibc sizes it by the file
/// system's block (4 KiB here), and `perf` showed the resulting read system calls, one per
/// 4 KiB, taking a third of `nigehban read`'s samples on the capture thread: `dd` reads the same
/// file five times faster with 64 KiB blocks than with 4 KiB ones.
const FILE_BUFFER: usize = 1 << 20;

/// Opens a capture file through libpcap as `pcap::Capture::from_file` does, but on a stdio stream
/// reading through `buffer` (glibc ignores a size given without a buffer). `buffer` must outlive
/// the capture. Also returns the file's first bytes (zeros where it is shorter), read without
/// moving the stream. The message of an error is the system's or libpcap's.
fn open_offline(
    path: &Path,
    buffer: &mut Vec<u8>,
) -> Result<(pcap::Capture<pcap::Offline>, [u8; PCAP_FILE_HEADER as usize]), String> {
    use std::os::fd::IntoRawFd;
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut header = [0u8; PCAP_FILE_HEADER as usize];
    if file.read_exact_at(&mut header, 0).is_err() {
        header = [0; PCAP_FILE_HEADER as usize];
    }
    // libpcap reads only the file header through the stream when the records are ours.
    buffer.resize(
        if fast_layout(&header, None).is_some() {
            4096
        } else {
            FILE_BUFFER
        },
        0,
    );
    let fd = file.into_raw_fd();
    // SAFETY: `fd` is an open descriptor that nothing else owns; on success the stream owns it.
    let fp = unsafe { libc::fdopen(fd, c"rb".as_ptr()) };
    if fp.is_null() {
        let e = std::io::Error::last_os_error();
        // SAFETY: fdopen failed, so `fd` is still ours to close.
        unsafe { libc::close(fd) };
        return Err(e.to_string());
    }
    // SAFETY: `fp` is a fresh stream with no I/O done yet, as setvbuf requires; the caller keeps
    // `buffer` alive (and untouched) until the capture, which closes the stream, is dropped.
    unsafe { libc::setvbuf(fp, buffer.as_mut_ptr().cast(), libc::_IOFBF, buffer.len()) };
    // PCAP_ERRBUF_SIZE in pcap.h.
    let mut errbuf = [0 as libc::c_char; 256];
    // SAFETY: `fp` is an open read stream and `errbuf` is PCAP_ERRBUF_SIZE bytes, as libpcap
    // requires. On success libpcap owns `fp`.
    let p = unsafe { pcap_fopen_offline(fp, errbuf.as_mut_ptr()) };
    match std::ptr::NonNull::new(p) {
        // The crate's handle type is private; `From<NonNull<pcap_t>>` is its documented way in.
        Some(p) => Ok((p.cast().into(), header)),
        None => {
            // SAFETY: on failure the stream is still ours; libpcap wrote a NUL-terminated message.
            unsafe { libc::fclose(fp) };
            let msg = unsafe { std::ffi::CStr::from_ptr(errbuf.as_ptr()) };
            Err(msg.to_string_lossy().into_owned())
        }
    }
}

/// For a classic pcap file (whose records are a 16-byte header and the captured bytes), from its
/// magic number: whether it is in the other byte order than this machine's, and whether its time
/// stamps are in nanoseconds. `None` for anything else (pcapng, patched formats).
fn classic_magic(header: &[u8; PCAP_FILE_HEADER as usize]) -> Option<(bool, bool)> {
    match u32::from_ne_bytes(header[..4].try_into().expect("4 bytes")) {
        0xa1b2_c3d4 => Some((false, false)),
        0xd4c3_b2a1 => Some((true, false)),
        0xa1b2_3c4d => Some((false, true)),
        0x4d3c_b2a1 => Some((true, true)),
        _ => None,
    }
}
/// Bytes of a classic pcap file header and record header.
const PCAP_FILE_HEADER: u64 = 24;
const PCAP_RECORD_HEADER: u64 = 16;

/// How a file's records are laid out, if they are ones [`classic::ClassicRecords`] reads as
/// libpcap would: classic pcap 2.4 (older versions may swap the two length fields). When the
/// file's byte order is not this machine's, libpcap also swaps fields inside some link-layer
/// headers (Linux cooked capture of CAN frames), so only link types without such fields qualify.
/// `link` is `None` before the link type is known (any may qualify).
fn fast_layout(header: &[u8; PCAP_FILE_HEADER as usize], link: Option<(LinkType, u32)>) -> Option<classic::Layout> {
    let (swapped, nanos) = classic_magic(header)?;
    let half = |i: usize| {
        let v = u16::from_ne_bytes(header[i..i + 2].try_into().expect("2 bytes"));
        if swapped {
            v.swap_bytes()
        } else {
            v
        }
    };
    if (half(4), half(6)) != (2, 4) {
        return None;
    }
    let snaplen = match link {
        None => 0,
        Some((LinkType::LinuxSll | LinkType::LinuxSll2, _)) if swapped => return None,
        Some((_, snaplen)) => snaplen,
    };
    Some(classic::Layout {
        swapped,
        nanos,
        snaplen,
    })
}

/// Where a file's records come from.
enum Reader {
    /// libpcap: pcapng, and classic files [`fast_layout`] turns down.
    Libpcap {
        cap: pcap::Capture<pcap::Offline>,
        /// Byte offset of the next record when it is known without asking the stream: classic
        /// pcap, counted record by record. `None` (pcapng, or after a record libpcap may have
        /// truncated to the snapshot length): ask the stream, which costs a system call
        /// (`ftell` is an `lseek`), once per packet.
        next_offset: Option<u64>,
        /// Classic pcap: records are exactly header plus captured bytes.
        classic: bool,
        /// libpcap's snapshot length for this file.
        snaplen: u64,
    },
    /// Classic pcap 2.4, read by us from the descriptor of libpcap's stream.
    Classic {
        /// Declared first: it reads the descriptor `_cap` owns, and fields drop in order.
        records: classic::ClassicRecords,
        _cap: pcap::Capture<pcap::Offline>,
    },
}

/// A pcap or pcapng file.
pub struct FileSource {
    /// Declared before `_buffer`: it closes the stream reading through that buffer when
    /// dropped, and fields drop in declaration order.
    reader: Reader,
    /// The stdio buffer of the capture's stream.
    _buffer: Vec<u8>,
    path: PathBuf,
    link: LinkType,
    packets: u64,
}

impl FileSource {
    /// Opens a file; fails on anything libpcap cannot read or a link type the decoder lacks.
    pub fn open(path: &Path) -> Result<FileSource, CaptureError> {
        Self::open_with(path, true)
    }

    /// `open`, with every record read by libpcap: the reference the `pcap_file` fuzz target
    /// compares [`FileSource::open`]'s reader with.
    #[cfg(fuzzing)]
    pub fn open_libpcap_only(path: &Path) -> Result<FileSource, CaptureError> {
        Self::open_with(path, false)
    }

    /// `open`; with `ours` false, every record is read by libpcap (the tests' reference).
    fn open_with(path: &Path, ours: bool) -> Result<FileSource, CaptureError> {
        let mut buffer = Vec::new();
        let (cap, header) = open_offline(path, &mut buffer).map_err(|msg| CaptureError::OpenFile {
            path: path.to_path_buf(),
            msg,
        })?;
        let dlt = cap.get_datalink();
        let link = LinkType::from_dlt(dlt.0).ok_or_else(|| CaptureError::UnsupportedFileLink {
            path: path.to_path_buf(),
            dlt: dlt.0,
            name: dlt.get_name().unwrap_or_else(|_| "unknown".into()),
        })?;
        // SAFETY: the handle is a live offline capture; pcap_snapshot only reads a field.
        let snaplen = u32::try_from(unsafe { pcap_snapshot(cap.as_ptr().cast()) }).unwrap_or(0);
        let reader = match fast_layout(&header, Some((link, snaplen))).filter(|_| ours) {
            Some(layout) => {
                // SAFETY: the handle is a live offline capture, so pcap_file returns its open
                // stream, whose descriptor stays open until `cap` is dropped.
                let fd = unsafe { libc::fileno(pcap_file(cap.as_ptr().cast())) };
                Reader::Classic {
                    records: classic::ClassicRecords::new(fd, layout, PCAP_FILE_HEADER),
                    _cap: cap,
                }
            }
            None => {
                let classic = classic_magic(&header).is_some();
                Reader::Libpcap {
                    cap,
                    next_offset: classic.then_some(PCAP_FILE_HEADER),
                    classic,
                    snaplen: u64::from(snaplen),
                }
            }
        };
        Ok(FileSource {
            reader,
            _buffer: buffer,
            path: path.to_path_buf(),
            link,
            packets: 0,
        })
    }

    /// The file's link type.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Packets read so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The next packet, `End` at the end of the file, or where the file is damaged.
    pub fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        let (path, packets) = (&self.path, &mut self.packets);
        let damaged = |offset, packets, msg| CaptureError::Damaged {
            path: path.clone(),
            offset,
            packets,
            msg,
        };
        match &mut self.reader {
            Reader::Classic { records, .. } => {
                let offset = records.offset();
                match records.next_record() {
                    Ok(Some(p)) => {
                        *packets += 1;
                        Ok(Next::Packet(p))
                    }
                    Ok(None) => Ok(Next::End),
                    Err(msg) => Err(damaged(offset, *packets, msg)),
                }
            }
            Reader::Libpcap {
                cap,
                next_offset,
                classic,
                snaplen,
            } => {
                let offset = next_offset.unwrap_or_else(|| stream_offset(cap));
                match cap.next_packet() {
                    Ok(p) => {
                        *packets += 1;
                        let caplen = p.data.len() as u64;
                        // A record as long as the snapshot may have been longer in the file
                        // (libpcap reads and drops the excess): the stream is asked for the next
                        // offset.
                        *next_offset = (*classic && caplen < *snaplen).then_some(offset + PCAP_RECORD_HEADER + caplen);
                        Ok(Next::Packet(RawPacket::from_pcap(&p)))
                    }
                    Err(pcap::Error::NoMorePackets) => Ok(Next::End),
                    Err(e) => Err(damaged(offset, *packets, e.to_string())),
                }
            }
        }
    }
}

/// The position of a capture's stream: the byte offset of the next record libpcap reads.
fn stream_offset(cap: &pcap::Capture<pcap::Offline>) -> u64 {
    // SAFETY: the handle is a live offline capture, so pcap_file returns its open FILE* (or
    // null, checked); ftell only reads the stream position.
    unsafe {
        let f = pcap_file(cap.as_ptr().cast());
        if f.is_null() {
            return 0;
        }
        u64::try_from(libc::ftell(f)).unwrap_or(0)
    }
}

/// A live capture on one interface.
pub struct LiveSource {
    /// Non-blocking; `next_packet` polls its descriptor when the last read found nothing.
    cap: pcap::Capture<pcap::Active>,
    link: LinkType,
    interface: String,
    /// The last read found no packet.
    starved: bool,
}

/// libpcap's buffer timeout (milliseconds): a packet waits at most this long in the kernel
/// before a read sees it, so it bounds packet-to-alert latency on a quiet link (it was 100 ms,
/// which showed as a 50 ms median latency in benches/live_rate.rs).
const BUFFER_TIMEOUT_MS: i32 = 10;
/// The longest a read waits in poll(2) on a quiet link, so `stop` is seen (milliseconds).
const READ_TIMEOUT_MS: i32 = 100;

impl LiveSource {
    /// Opens `interface` promiscuously with snaplen 65535, a `buffer_mb` kernel buffer, a short
    /// read timeout (so partial batches are flushed promptly) and an optional BPF filter.
    pub fn open(interface: &str, bpf: Option<&str>, buffer_mb: u32) -> Result<LiveSource, CaptureError> {
        let live = |msg: String| CaptureError::Live {
            interface: interface.to_string(),
            msg,
        };
        let buffer = i32::try_from(u64::from(buffer_mb) * 1024 * 1024).unwrap_or(i32::MAX);
        let mut cap = pcap::Capture::from_device(interface)
            .map_err(|e| live(e.to_string()))?
            .promisc(true)
            .snaplen(SNAPLEN)
            .buffer_size(buffer)
            .timeout(BUFFER_TIMEOUT_MS)
            .open()
            .map_err(|e| {
                let mut msg = e.to_string();
                if msg.contains("Operation not permitted") || msg.contains("permission") {
                    msg.push_str(" (needs root or CAP_NET_RAW)");
                }
                live(msg)
            })?;
        if let Some(expr) = bpf {
            cap.filter(expr, true).map_err(|e| CaptureError::Bpf {
                expr: expr.to_string(),
                msg: e.to_string(),
            })?;
        }
        // Non-blocking reads plus our own poll: a blocking read on a silent link never returns,
        // so SIGTERM would only be noticed with the next packet.
        let cap = cap.setnonblock().map_err(|e| live(e.to_string()))?;
        let dlt = cap.get_datalink();
        let link = LinkType::from_dlt(dlt.0).ok_or_else(|| {
            live(format!(
                "unsupported link type {} ({})",
                dlt.0,
                dlt.get_name().unwrap_or_default()
            ))
        })?;
        Ok(LiveSource {
            cap,
            link,
            interface: interface.to_string(),
            starved: false,
        })
    }

    /// The interface's link type.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The next packet, or `Idle` when none arrived within the read timeout.
    pub fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        if self.starved {
            // Nothing was waiting last time: sleep in poll(2) until packets or the timeout.
            let mut pfd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&self.cap),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call. EINTR (a signal) just
            // returns early, which is what we want.
            unsafe {
                libc::poll(&mut pfd, 1, READ_TIMEOUT_MS);
            }
        }
        match self.cap.next_packet() {
            Ok(p) => {
                self.starved = false;
                Ok(Next::Packet(RawPacket::from_pcap(&p)))
            }
            Err(pcap::Error::TimeoutExpired) => {
                self.starved = true;
                Ok(Next::Idle)
            }
            Err(e) => Err(CaptureError::Live {
                interface: self.interface.clone(),
                msg: e.to_string(),
            }),
        }
    }

    /// libpcap's counters since the capture opened.
    pub fn stats(&mut self) -> CaptureStats {
        match self.cap.stats() {
            Ok(s) => CaptureStats {
                received: s.received.into(),
                dropped: s.dropped.into(),
                if_dropped: s.if_dropped.into(),
            },
            Err(_) => CaptureStats::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    fn pcap_header() -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        h
    }

    fn record(len: usize) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&1u32.to_le_bytes());
        r.extend_from_slice(&0u32.to_le_bytes());
        r.extend_from_slice(&(len as u32).to_le_bytes());
        r.extend_from_slice(&(len as u32).to_le_bytes());
        r.extend(std::iter::repeat_n(0u8, len));
        r
    }

    /// Writes `bytes` to `p` and reads it until the damage: (good packets, the error).
    fn read_to_damage(p: &Path, bytes: &[u8]) -> (usize, CaptureError) {
        std::fs::File::create(p).unwrap().write_all(bytes).unwrap();
        let mut src = FileSource::open(p).unwrap();
        let mut n = 0;
        loop {
            match src.next_packet() {
                Ok(Next::Packet(_)) => n += 1,
                Ok(_) => panic!("damage not reported"),
                Err(e) => return (n, e),
            }
        }
    }

    #[test]
    fn truncated_file_reports_offset_of_damage_after_good_packets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.pcap");
        let mut bytes = pcap_header();
        bytes.extend(record(60));
        bytes.extend(record(60));
        let damaged_at = bytes.len();
        bytes.extend(&record(100)[..50]);
        let (n, err) = read_to_damage(&p, &bytes);
        assert_eq!(n, 2);
        match err {
            CaptureError::Damaged { offset, packets, .. } => {
                assert_eq!(offset, damaged_at as u64);
                assert_eq!(packets, 2);
            }
            e => panic!("unexpected {e}"),
        }
    }

    /// Offsets are counted, not asked of the stream, for classic pcap. Records as long as the
    /// snapshot (or longer, which libpcap truncates) make it ask the stream again, so the offset
    /// of the damage stays exact.
    #[test]
    fn counted_offsets_stay_exact_around_records_libpcap_truncates() {
        let dir = tempfile::tempdir().unwrap();
        for lens in [vec![60, 100, 30], vec![150, 20], vec![100, 100, 7], vec![1, 99, 150, 0]] {
            let p = dir.path().join("s.pcap");
            let mut bytes = pcap_header();
            bytes[16..20].copy_from_slice(&100u32.to_le_bytes()); // snaplen 100
            for &l in &lens {
                bytes.extend(record(l));
            }
            let damaged_at = bytes.len();
            bytes.extend(&record(40)[..20]);
            let (n, err) = read_to_damage(&p, &bytes);
            assert_eq!(n, lens.len());
            match err {
                CaptureError::Damaged { offset, .. } => assert_eq!(offset, damaged_at as u64, "{lens:?}"),
                e => panic!("unexpected {e}"),
            }
        }
    }

    /// Everything a reader hands out for a file: each packet, then how it ended.
    fn read_all(p: &Path, ours: bool) -> (Vec<(Timestamp, Vec<u8>, u32)>, String) {
        let mut src = FileSource::open_with(p, ours).unwrap();
        assert_eq!(matches!(src.reader, Reader::Classic { .. }), ours, "reader chosen");
        let mut out = Vec::new();
        loop {
            match src.next_packet() {
                Ok(Next::Packet(r)) => out.push((r.ts, r.data.to_vec(), r.wire_len)),
                Ok(Next::End) => return (out, "end".into()),
                Ok(Next::Idle) => panic!("a file is never idle"),
                Err(e) => return (out, e.to_string()),
            }
        }
    }

    /// One record's header fields and how many bytes the file really holds after its header.
    #[derive(Debug, Clone)]
    struct Rec {
        secs: i32,
        frac: i32,
        caplen: u32,
        wire_len: u32,
    }

    fn rec() -> impl Strategy<Value = Rec> {
        let caplen = prop_oneof![8 => 0u32..400, 1 => 262_140u32..262_150, 1 => Just(u32::MAX)];
        (any::<i32>(), any::<i32>(), caplen, any::<u32>()).prop_map(|(secs, frac, caplen, wire_len)| Rec {
            secs,
            frac,
            caplen,
            wire_len,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        /// Our classic reader against libpcap's on the same bytes: the same packets (time,
        /// bytes, wire length), the same end, and for damage the same offset and message.
        #[test]
        fn classic_records_read_exactly_as_libpcap_reads_them(
            swapped in any::<bool>(),
            nanos in any::<bool>(),
            snaplen in prop_oneof![Just(0u32), Just(64), Just(100), Just(65_535), Just(262_144), Just(300_000)],
            recs in proptest::collection::vec(rec(), 0..6),
            cut in proptest::option::of(any::<proptest::sample::Index>()),
        ) {
            let put = |out: &mut Vec<u8>, v: u32| {
                out.extend_from_slice(&if swapped { v.swap_bytes() } else { v }.to_ne_bytes());
            };
            let put16 = |out: &mut Vec<u8>, v: u16| {
                out.extend_from_slice(&if swapped { v.swap_bytes() } else { v }.to_ne_bytes());
            };
            let mut bytes = Vec::new();
            put(&mut bytes, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
            put16(&mut bytes, 2);
            put16(&mut bytes, 4);
            put(&mut bytes, 0);
            put(&mut bytes, 0);
            put(&mut bytes, snaplen);
            put(&mut bytes, 1);
            for (i, r) in recs.iter().enumerate() {
                put(&mut bytes, r.secs as u32);
                put(&mut bytes, r.frac as u32);
                put(&mut bytes, r.caplen);
                put(&mut bytes, r.wire_len);
                // Records too long to write end the file: libpcap stops at their header anyway.
                if r.caplen > 270_000 {
                    break;
                }
                bytes.extend((0..r.caplen).map(|j| (j as u8) ^ (i as u8)));
            }
            if let Some(cut) = cut {
                let at = PCAP_FILE_HEADER as usize + cut.index(bytes.len() - PCAP_FILE_HEADER as usize + 1);
                bytes.truncate(at);
            }
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("c.pcap");
            std::fs::write(&p, &bytes).unwrap();
            let (ours, ours_end) = read_all(&p, true);
            let (theirs, theirs_end) = read_all(&p, false);
            prop_assert_eq!(ours.len(), theirs.len());
            prop_assert!(ours == theirs, "packets differ {:?} {:?}", ours.iter().map(|p| p.0).collect::<Vec<_>>(), theirs.iter().map(|p| p.0).collect::<Vec<_>>());
            // The same text, less the pcap crate's prefix naming libpcap (which did not read these).
            prop_assert_eq!(ours_end, theirs_end.replacen("libpcap error: ", "", 1));
        }
    }

    #[test]
    fn pcapng_and_older_classic_versions_stay_with_libpcap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v22.pcap");
        let mut bytes = pcap_header();
        bytes[6..8].copy_from_slice(&2u16.to_le_bytes()); // version 2.2: lengths swapped
        bytes.extend(record(60));
        std::fs::write(&p, &bytes).unwrap();
        let src = FileSource::open(&p).unwrap();
        assert!(matches!(src.reader, Reader::Libpcap { .. }));
        let mut bytes = pcap_header();
        bytes.extend(record(60));
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(FileSource::open(&p).unwrap().reader, Reader::Classic { .. }));
    }

    #[test]
    fn not_a_pcap_is_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notes.txt");
        std::fs::write(&p, "hello, this is not a capture file at all").unwrap();
        let e = FileSource::open(&p).err().unwrap().to_string();
        assert!(e.contains("notes.txt") && e.contains("pcap"), "{e}");
    }
}
