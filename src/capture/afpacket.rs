//! Linux AF_PACKET capture through a TPACKET_V3 memory-mapped ring, with PACKET_FANOUT so that
//! several capture threads share one interface by flow.
//!
//! Design constraints:
//! - The kernel fills fixed-size *blocks* of a ring shared with us; a block belongs to user space
//!   once its status carries `TP_STATUS_USER` and goes back when we write `TP_STATUS_KERNEL`. We
//!   read packets straight out of the ring (no copy here; the dispatcher makes the one copy).
//! - Every offset in a block header or packet header is untrusted: it is checked against the
//!   block before any byte is read, and a block that fails a check is handed back and counted,
//!   never read past. All `unsafe` of the crate's capture path is in this file.
//! - With `fanout`, the sockets join one PACKET_FANOUT_HASH group. The kernel picks the socket
//!   by `__skb_get_hash_symmetric`, which orders addresses and ports before hashing, so both
//!   directions of a flow reach the same socket (tests/afpacket.rs checks this on a veth pair).
//!   PACKET_FANOUT_FLAG_DEFRAG makes the kernel reassemble IPv4 fragments before hashing, so a
//!   fragmented datagram is not split across sockets either.
//! - VLAN tags are stripped by the kernel and not put back: flows are keyed by IP addresses and
//!   ports, so the decoder needs nothing from the tag.

use super::{CaptureError, CaptureStats, Next, RawPacket, SNAPLEN};
use crate::clock::Timestamp;
use crate::decode::LinkType;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// Bytes per ring block. A power of two and a multiple of the page size; large enough for a
/// whole 64 KiB frame, so `SNAPLEN` never cuts a packet. Small enough that a quiet link, where
/// the kernel retires a block every `RETIRE_BLOCK_MS` with a few packets in it, still has many
/// blocks to go before the ring is full (64 MiB: 512 blocks, 5 s of a stalled reader).
const BLOCK_SIZE: usize = 128 << 10;
/// Frame slot size the kernel asks for even in V3, where frames are packed back to back.
const FRAME_SIZE: u32 = 2048;
/// A block that is not full is handed to us after this many milliseconds, which bounds how long a
/// packet can wait in the ring on a quiet link (packet-to-alert latency).
const RETIRE_BLOCK_MS: u32 = 10;
/// Longest wait in poll(2) when no block is ready, so `stop` is seen on a silent link.
const POLL_MS: i32 = 100;

/// Offsets in `struct tpacket_block_desc` (version, offset_to_priv, then `tpacket_hdr_v1`).
mod block {
    pub(super) const STATUS: usize = 8;
    pub(super) const NUM_PKTS: usize = 12;
    pub(super) const OFFSET_TO_FIRST_PKT: usize = 16;
    pub(super) const BLK_LEN: usize = 20;
    /// Size of the descriptor: no packet may start before it.
    pub(super) const HEADER_LEN: usize = 48;
}

/// Offsets in `struct tpacket3_hdr`.
mod pkt {
    pub(super) const NEXT_OFFSET: usize = 0;
    pub(super) const SEC: usize = 4;
    pub(super) const NSEC: usize = 8;
    pub(super) const SNAPLEN: usize = 12;
    pub(super) const LEN: usize = 16;
    pub(super) const MAC: usize = 24;
    /// Size of the header: the frame starts at or after it.
    pub(super) const HEADER_LEN: usize = 48;
}

/// How to open one AF_PACKET socket.
#[derive(Debug, Clone)]
pub struct AfPacketConfig<'a> {
    /// Interface name.
    pub interface: &'a str,
    /// BPF expression, compiled by libpcap for Ethernet.
    pub bpf: Option<&'a str>,
    /// Ring size in MiB (eight 128 KiB blocks per MiB).
    pub ring_mb: u32,
    /// PACKET_FANOUT group to join; sockets of one group share the interface's packets by flow.
    pub fanout_group: Option<u16>,
}

/// The mapped ring; unmapped on drop.
struct Ring {
    base: *mut u8,
    len: usize,
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what mmap returned; nothing borrows the ring once the
        // source is dropped (packets borrow the source).
        unsafe {
            libc::munmap(self.base.cast(), self.len);
        }
    }
}

/// Where the reader is inside the block it owns.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// Offset of the next packet header in the block.
    next: usize,
    /// Packets the block header says are left.
    left: u32,
    /// End of the block's used bytes (`blk_len`); Invariant: `end <= BLOCK_SIZE`.
    end: usize,
}

/// One AF_PACKET TPACKET_V3 socket bound to an interface.
pub struct AfPacketSource {
    // Field order matters: the ring is unmapped before the socket closes.
    ring: Ring,
    fd: OwnedFd,
    blocks: usize,
    /// Block being read. Invariant: while `cursor` is `Some`, this block is owned by user space.
    current: usize,
    cursor: Option<Cursor>,
    /// The last look found no block ready: the next one waits in poll(2).
    starved: bool,
    link: LinkType,
    interface: String,
    /// The interface's index when the socket was bound: another index under the same name
    /// means the interface was removed (and perhaps re-created), which this socket never sees.
    ifindex: u32,
    /// The link went down (the kernel said ENETDOWN) and no block has come since.
    link_down: bool,
    stats: CaptureStats,
    freezes: u64,
    malformed_blocks: u64,
}

// SAFETY: the ring mapping and socket are owned by this value alone; moving it to another thread
// moves the only handle to them.
unsafe impl Send for AfPacketSource {}

fn os_err(interface: &str, op: &str, e: io::Error) -> CaptureError {
    let mut msg = format!("af-packet {op}: {e}");
    if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
        msg.push_str(" (needs root or CAP_NET_RAW)");
    }
    CaptureError::Live {
        interface: interface.to_string(),
        msg,
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live, initialised T and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The decoder's link type for an interface, from its ARPHRD hardware type (asked through the
/// socket, so it is the interface of the socket's network namespace).
/// Reads a socket option into `value` (its starting contents are what a short answer leaves).
fn getsockopt<T>(fd: &OwnedFd, level: i32, name: i32, mut value: T) -> io::Result<T> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is a live, initialised T, writable for `len` bytes; the kernel writes at
    // most that.
    let rc = unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, (&mut value as *mut T).cast(), &mut len) };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn link_of(fd: &OwnedFd, interface: &str) -> Result<LinkType, CaptureError> {
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = interface.as_bytes();
    if name.len() >= req.ifr_name.len() {
        return Err(CaptureError::Live {
            interface: interface.to_string(),
            msg: format!("interface name longer than {} bytes", req.ifr_name.len() - 1),
        });
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads the NUL-terminated name and writes the hardware address into
    // `req`, which lives for the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } != 0 {
        return Err(os_err(
            interface,
            "SIOCGIFHWADDR (no such interface?)",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member of the union.
    let arphrd = unsafe { req.ifr_ifru.ifru_hwaddr.sa_family };
    match arphrd {
        // lo carries a zeroed Ethernet header.
        libc::ARPHRD_ETHER | libc::ARPHRD_LOOPBACK => Ok(LinkType::Ethernet),
        // tun devices and tunnels without a link header: raw IP.
        libc::ARPHRD_NONE | libc::ARPHRD_IPGRE => Ok(LinkType::RawIp),
        other => Err(CaptureError::Live {
            interface: interface.to_string(),
            msg: format!("af-packet: unsupported link type {other} (ARPHRD); use --capture-backend pcap"),
        }),
    }
}

/// Compiles `expr` with libpcap for `link` and attaches it to the socket.
fn attach_bpf(fd: &OwnedFd, interface: &str, link: LinkType, expr: &str) -> Result<(), CaptureError> {
    let bpf_err = |msg: String| CaptureError::Bpf {
        expr: expr.to_string(),
        msg,
    };
    let linktype = match link {
        LinkType::RawIp => pcap::Linktype(12),
        _ => pcap::Linktype::ETHERNET,
    };
    let dead = pcap::Capture::dead(linktype).map_err(|e| bpf_err(e.to_string()))?;
    let prog = dead.compile(expr, true).map_err(|e| bpf_err(e.to_string()))?;
    let insns = prog.get_instructions();
    // pcap's BpfInstruction is a transparent wrapper of `struct bpf_insn`, which has the layout
    // of the kernel's `struct sock_filter` (u16 code, u8 jt, u8 jf, u32 k).
    const _: () = assert!(std::mem::size_of::<pcap::BpfInstruction>() == std::mem::size_of::<libc::sock_filter>());
    let fprog = libc::sock_fprog {
        len: u16::try_from(insns.len()).map_err(|_| bpf_err("filter program too long".into()))?,
        filter: insns.as_ptr() as *mut libc::sock_filter,
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
        .map_err(|e| os_err(interface, "SO_ATTACH_FILTER", e))
}

impl AfPacketSource {
    /// Opens a socket on `cfg.interface`: TPACKET_V3 ring of `ring_mb` MiB, BPF filter,
    /// promiscuous mode and, if asked, a fanout group. Nothing is received before the filter is
    /// in place: the socket is bound to the interface (and starts receiving) last but for fanout.
    pub fn open(cfg: &AfPacketConfig<'_>) -> Result<AfPacketSource, CaptureError> {
        let iface = cfg.interface;
        let err = |op: &str| os_err(iface, op, io::Error::last_os_error());
        let cname = std::ffi::CString::new(iface).map_err(|_| CaptureError::Live {
            interface: iface.to_string(),
            msg: "interface name contains a NUL byte".into(),
        })?;
        // SAFETY: `cname` is a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(err("if_nametoindex (no such interface?)"));
        }
        // Protocol 0: the socket receives nothing until bind names ETH_P_ALL and the interface.
        // SAFETY: plain socket(2); the descriptor is checked and owned right after.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(err("socket"));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sockerr = |op: &'static str| move |e: io::Error| os_err(iface, op, e);
        let link = link_of(&fd, iface)?;

        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &(libc::tpacket_versions::TPACKET_V3 as libc::c_int),
        )
        .map_err(sockerr("PACKET_VERSION TPACKET_V3"))?;
        let blocks = cfg.ring_mb.max(1) as usize * ((1 << 20) / BLOCK_SIZE);
        let req = libc::tpacket_req3 {
            tp_block_size: BLOCK_SIZE as u32,
            tp_block_nr: blocks as u32,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: (BLOCK_SIZE / FRAME_SIZE as usize * blocks) as u32,
            tp_retire_blk_tov: RETIRE_BLOCK_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req).map_err(sockerr("PACKET_RX_RING"))?;
        let len = BLOCK_SIZE * blocks;
        // SAFETY: maps the ring the kernel just allocated for this socket; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(err("mmap of the ring"));
        }
        let ring = Ring { base: base.cast(), len };
        if let Some(expr) = cfg.bpf {
            attach_bpf(&fd, iface, link, expr)?;
        }
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid starting value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and its exact size is passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(err("bind"));
        }
        let mreq = libc::packet_mreq {
            mr_ifindex: ifindex as i32,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(sockerr("PACKET_ADD_MEMBERSHIP promiscuous"))?;
        if let Some(group) = cfg.fanout_group {
            let mode = libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG;
            let arg: libc::c_int = (u32::from(group) | (mode << 16)) as libc::c_int;
            setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg).map_err(sockerr("PACKET_FANOUT"))?;
        }
        debug_assert!(SNAPLEN as usize <= BLOCK_SIZE - block::HEADER_LEN - pkt::HEADER_LEN);
        Ok(AfPacketSource {
            ring,
            fd,
            blocks,
            current: 0,
            cursor: None,
            starved: false,
            link,
            interface: iface.to_string(),
            ifindex,
            link_down: false,
            stats: CaptureStats::default(),
            freezes: 0,
            malformed_blocks: 0,
        })
    }

    /// The interface's link type.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The status word of block `i`, shared with the kernel.
    fn status(&self, i: usize) -> &AtomicU32 {
        debug_assert!(i < self.blocks);
        // SAFETY: block `i` lies inside the mapping (i < blocks) and starts on a page boundary,
        // so the u32 at offset 8 is in bounds and aligned. The kernel and we only ever access it
        // atomically (the kernel with smp_wmb/flush_dcache around plain stores, which an
        // acquire load pairs with).
        unsafe { &*(self.ring.base.add(i * BLOCK_SIZE + block::STATUS) as *const AtomicU32) }
    }

    /// Block `i` as bytes. Only for a block that user space owns (status has TP_STATUS_USER):
    /// the kernel does not write to it until we hand it back.
    fn block_bytes(&self, i: usize) -> &[u8] {
        debug_assert!(i < self.blocks);
        // SAFETY: in bounds of the mapping; the caller checked ownership, so nothing writes to
        // these bytes while the returned borrow lives (it ends before `release`).
        unsafe { std::slice::from_raw_parts(self.ring.base.add(i * BLOCK_SIZE), BLOCK_SIZE) }
    }

    /// Hands the current block back to the kernel and moves on.
    fn release(&mut self) {
        self.status(self.current)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.current = (self.current + 1) % self.blocks;
        self.cursor = None;
    }

    /// Takes the current block if the kernel has retired it to us.
    fn take_block(&mut self) -> bool {
        if self.status(self.current).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            return false;
        }
        let b = self.block_bytes(self.current);
        let first = read_u32(b, block::OFFSET_TO_FIRST_PKT) as usize;
        let end = read_u32(b, block::BLK_LEN) as usize;
        let left = read_u32(b, block::NUM_PKTS);
        if end > BLOCK_SIZE || (left > 0 && (first < block::HEADER_LEN || first >= end)) {
            self.malformed_blocks += 1;
            self.release();
            return false;
        }
        self.cursor = Some(Cursor { next: first, left, end });
        true
    }

    /// The next packet, or `Idle` when no block is ready: at once after the last packet of a
    /// block (so the caller sends its partial batches now, not when the next block comes), else
    /// after waiting up to the poll timeout.
    pub fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        loop {
            let Some(cur) = self.cursor else {
                if self.take_block() {
                    self.starved = false;
                    continue;
                }
                if !self.starved {
                    self.starved = true;
                    return Ok(Next::Idle);
                }
                self.poll()?;
                if self.take_block() {
                    self.starved = false;
                    continue;
                }
                return Ok(Next::Idle);
            };
            if cur.left == 0 {
                self.release();
                continue;
            }
            let Some((after, ts, range, wire_len)) = parse_packet(self.block_bytes(self.current), cur) else {
                // A header points outside its block: give the block back unread.
                self.malformed_blocks += 1;
                self.release();
                continue;
            };
            self.cursor = Some(after);
            return Ok(Next::Packet(RawPacket {
                ts,
                data: &self.block_bytes(self.current)[range],
                wire_len,
            }));
        }
    }

    fn poll(&mut self) -> Result<(), CaptureError> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, POLL_MS) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            // A signal (SIGTERM, SIGHUP) interrupts the wait; the caller looks at `stop`.
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(os_err(&self.interface, "poll", e));
            }
        }
        if pfd.revents & libc::POLLERR != 0 {
            self.socket_error()?;
        } else if pfd.revents & libc::POLLIN != 0 && std::mem::take(&mut self.link_down) {
            tracing::info!(interface = %self.interface, "af-packet: the link is up, packets arrive again");
        }
        Ok(())
    }

    /// Takes the socket's pending error. Until it is taken, poll(2) returns at once, and a
    /// link that went down once would keep the thread spinning even after it came back up.
    /// A link that goes down comes back on the same socket (the kernel re-attaches it);
    /// an interface that was removed never does, so that ends the capture like libpcap's
    /// "The interface disappeared".
    fn socket_error(&mut self) -> Result<(), CaptureError> {
        let err = getsockopt(&self.fd, libc::SOL_SOCKET, libc::SO_ERROR, 0 as libc::c_int)
            .map_err(|e| os_err(&self.interface, "getsockopt SO_ERROR", e))?;
        let name = std::ffi::CString::new(self.interface.as_str()).expect("checked when opened");
        // SAFETY: `name` is a valid C string.
        if unsafe { libc::if_nametoindex(name.as_ptr()) } != self.ifindex {
            return Err(CaptureError::Live {
                interface: self.interface.clone(),
                msg: "af-packet: the interface disappeared".into(),
            });
        }
        if err == libc::ENETDOWN {
            if !self.link_down {
                tracing::warn!(
                    interface = %self.interface,
                    "af-packet: the link went down; capture resumes when it is up again"
                );
            }
            self.link_down = true;
        } else if err != 0 {
            return Err(os_err(&self.interface, "socket", io::Error::from_raw_os_error(err)));
        }
        Ok(())
    }

    /// Kernel counters since the socket opened: received (including dropped) and dropped
    /// because the ring was full. `if_dropped` is always 0 here.
    pub fn stats(&mut self) -> CaptureStats {
        let zero = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        // The kernel resets its counters on every read: accumulate.
        if let Ok(st) = getsockopt(&self.fd, libc::SOL_PACKET, libc::PACKET_STATISTICS, zero) {
            self.stats.received += u64::from(st.tp_packets);
            self.stats.dropped += u64::from(st.tp_drops);
            self.freezes += u64::from(st.tp_freeze_q_cnt);
        }
        self.stats
    }

    /// Times the kernel found the ring full and froze the queue (`tp_freeze_q_cnt`), as of the
    /// last [`stats`](Self::stats).
    pub fn ring_freezes(&self) -> u64 {
        self.freezes
    }

    /// Blocks handed back unread because a header pointed outside the block.
    pub fn malformed_blocks(&self) -> u64 {
        self.malformed_blocks
    }
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}

fn read_u16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2).map(|s| u16::from_ne_bytes([s[0], s[1]])).unwrap_or(0)
}

/// Reads the packet header at `cur.next`: the cursor after it, timestamp, frame range and length
/// on the wire; `None` if any part lies outside `cur.end`.
fn parse_packet(b: &[u8], cur: Cursor) -> Option<(Cursor, Timestamp, std::ops::Range<usize>, u32)> {
    let h = cur.next;
    if h.checked_add(pkt::HEADER_LEN)? > cur.end || cur.end > b.len() {
        return None;
    }
    let next = read_u32(b, h + pkt::NEXT_OFFSET) as usize;
    let snaplen = read_u32(b, h + pkt::SNAPLEN) as usize;
    let mac = read_u16(b, h + pkt::MAC) as usize;
    let start = h + mac;
    let end = start.checked_add(snaplen)?;
    if mac < pkt::HEADER_LEN || end > cur.end {
        return None;
    }
    let left = cur.left - 1;
    let after = if left == 0 || next == 0 {
        Cursor { left: 0, ..cur }
    } else {
        // The next header must move forward, or a crafted ring could loop us forever.
        if next < pkt::HEADER_LEN {
            return None;
        }
        Cursor {
            next: h + next,
            left,
            end: cur.end,
        }
    };
    let ts = Timestamp::from_secs_micros(
        i64::from(read_u32(b, h + pkt::SEC)),
        i64::from(read_u32(b, h + pkt::NSEC) / 1000),
    );
    Some((after, ts, start..end, read_u32(b, h + pkt::LEN)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block as the kernel lays it out: descriptor, then packets back to back.
    fn block_with(frames: &[&[u8]]) -> (Vec<u8>, Cursor) {
        let mut b = vec![0u8; block::HEADER_LEN];
        let mut offs = Vec::new();
        for f in frames {
            let h = b.len();
            offs.push(h);
            b.resize(h + pkt::HEADER_LEN, 0);
            b[h + pkt::SEC..h + pkt::SEC + 4].copy_from_slice(&7u32.to_ne_bytes());
            b[h + pkt::NSEC..h + pkt::NSEC + 4].copy_from_slice(&5_000u32.to_ne_bytes());
            b[h + pkt::SNAPLEN..h + pkt::SNAPLEN + 4].copy_from_slice(&(f.len() as u32).to_ne_bytes());
            b[h + pkt::LEN..h + pkt::LEN + 4].copy_from_slice(&(f.len() as u32 + 1).to_ne_bytes());
            b[h + pkt::MAC..h + pkt::MAC + 2].copy_from_slice(&(pkt::HEADER_LEN as u16).to_ne_bytes());
            b.extend_from_slice(f);
            while !b.len().is_multiple_of(16) {
                b.push(0);
            }
        }
        for w in offs.windows(2) {
            let next = (w[1] - w[0]) as u32;
            b[w[0]..w[0] + 4].copy_from_slice(&next.to_ne_bytes());
        }
        let cur = Cursor {
            next: block::HEADER_LEN,
            left: frames.len() as u32,
            end: b.len(),
        };
        (b, cur)
    }

    #[test]
    fn walks_every_packet_of_a_block() {
        let (b, mut cur) = block_with(&[b"first frame", b"second", b"third and last"]);
        let mut got = Vec::new();
        while cur.left > 0 {
            let (after, ts, range, wire) = parse_packet(&b, cur).unwrap();
            assert_eq!(ts, Timestamp::from_secs_micros(7, 5));
            assert_eq!(wire as usize, range.len() + 1);
            got.push(b[range].to_vec());
            cur = after;
        }
        assert_eq!(
            got,
            vec![b"first frame".to_vec(), b"second".to_vec(), b"third and last".to_vec()]
        );
    }

    #[test]
    fn headers_pointing_outside_the_block_are_refused_not_read() {
        let (b, cur) = block_with(&[b"frame"]);
        // Snap length past the block end.
        let mut bad = b.clone();
        let h = cur.next;
        bad[h + pkt::SNAPLEN..h + pkt::SNAPLEN + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse_packet(&bad, cur).is_none());
        // Frame starting inside its own header.
        let mut bad = b.clone();
        bad[h + pkt::MAC..h + pkt::MAC + 2].copy_from_slice(&4u16.to_ne_bytes());
        assert!(parse_packet(&bad, cur).is_none());
        // Header cut by the block end, and a block end beyond the buffer.
        assert!(parse_packet(&b[..h + 10], Cursor { end: h + 10, ..cur }).is_none());
        assert!(parse_packet(
            &b,
            Cursor {
                end: b.len() + 1,
                ..cur
            }
        )
        .is_none());
        // A next offset that does not move forward.
        let (mut two, cur2) = block_with(&[b"a", b"b"]);
        two[cur2.next..cur2.next + 4].copy_from_slice(&1u32.to_ne_bytes());
        assert!(parse_packet(&two, cur2).is_none());
    }

    #[test]
    fn any_garbage_block_is_walked_without_panicking() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..2000 {
            let (mut b, mut cur) = block_with(&[b"one", b"two two", b"three"]);
            for _ in 0..rng.gen_range(1..6) {
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
            }
            cur.left = rng.gen_range(0..10);
            let mut steps = 0;
            while cur.left > 0 {
                match parse_packet(&b, cur) {
                    Some((after, _, range, _)) => {
                        assert!(range.end <= b.len());
                        cur = after;
                    }
                    None => break,
                }
                steps += 1;
                assert!(steps <= 10, "cursor must move on");
            }
        }
    }
}
