//! Link, VLAN, IP (with fragment reassembly) and transport decoding into a checked view.
//!
//! ```text
//!  frame ──link──▶ (IPv4 | IPv6 | either, bytes) ──ip──▶ whole TCP/UDP packet ──────────▶ Packet
//!                                                    └──▶ fragment ──defrag──▶ datagram ─┘ (+ reassembled)
//! ```
//!
//! * `link` strips the link header (Ethernet with stacked 802.1Q/802.1ad/QinQ tags, MPLS and PPPoE
//!   session inside Ethernet, Linux SLL and SLL2, BSD loopback, raw IP).
//! * `ip` walks IPv4 (options, AH) or IPv6 (extension headers, AH) and TCP/UDP through etherparse's
//!   zero-copy slices. Every length comes from the IP header, so Ethernet padding never reaches the
//!   payload.
//! * `defrag` reassembles IPv4 and IPv6 fragments under a memory cap and a packet-time timeout.
//!
//! Anything that is not a usable TCP/UDP packet is a [`Skip`], a closed set of reasons, each with a
//! stable metric label.
//!
//! **Checksums** are verified by `checksum` in the mode the capture loop sets
//! ([`Decoder::with_checksums`]): a receiver drops a packet whose checksum is wrong, so the sensor
//! must too, or a decoy with a bad checksum hides the real bytes. `auto` stops dropping while
//! most packets fail, which is what captures of checksum-offloading hosts look like. A decoder
//! made with [`Decoder::new`] does not verify (workers decode frames the capture loop accepted).
//!
//! The non-fragment path allocates nothing: it only slices the frame.

mod checksum;
pub use checksum::ChecksumMode;
mod defrag;

pub(crate) use defrag::ipv4_checksum;
mod ip;
mod link;
#[cfg(test)]
mod tests;

use crate::clock::Timestamp;
use std::net::IpAddr;

pub use defrag::{DefragStats, MAX_DATAGRAM_LEN, MAX_FRAGMENTS_PER_DATAGRAM};

/// Link-layer framing of captured packets (libpcap DLT values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// DLT_EN10MB (1).
    Ethernet,
    /// DLT_LINUX_SLL (113).
    LinuxSll,
    /// DLT_LINUX_SLL2 (276).
    LinuxSll2,
    /// DLT_RAW (12 / 101): IPv4 or IPv6 by version nibble.
    RawIp,
    /// DLT_IPV4 (228).
    Ipv4,
    /// DLT_IPV6 (229).
    Ipv6,
    /// DLT_NULL (0) / DLT_LOOP (108): BSD loopback. The 4-byte address family is accepted in either
    /// byte order, so one variant serves both.
    Null,
}

impl LinkType {
    /// Maps a libpcap data-link type number; `None` if unsupported.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        Some(match dlt {
            0 | 108 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 101 => LinkType::RawIp,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }
}

/// TCP header fields the reassembler needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpHeader {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful when `ack` is set).
    pub ack_num: u32,
    /// SYN flag.
    pub syn: bool,
    /// ACK flag.
    pub ack: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
}

/// Transport layer of a decoded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP segment.
    Tcp(TcpHeader),
    /// UDP datagram.
    Udp,
}

/// A decoded TCP or UDP packet.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Sender address.
    pub src: IpAddr,
    /// Receiver address.
    pub dst: IpAddr,
    /// Sender port.
    pub src_port: u16,
    /// Receiver port.
    pub dst_port: u16,
    /// TCP or UDP with its header.
    pub transport: Transport,
    /// Transport payload (trimmed to the IP length, never including Ethernet padding).
    pub payload: &'a [u8],
    /// When this packet was the last fragment of a reassembled IP datagram: the whole datagram
    /// (IP header + payload); decoding those bytes as raw IP ([`LinkType::RawIp`]) gives this
    /// same packet with `reassembled: None`.
    ///
    /// For IPv4 the header is the first fragment's, with MF and offset cleared, total length and
    /// header checksum rewritten. For IPv6 it is the fixed 40-byte header with payload length and
    /// next header rewritten; the unfragmentable extension headers are not kept.
    pub reassembled: Option<&'a [u8]>,
}

/// Why a frame was not decoded into a TCP/UDP packet. Each maps to a metric label.
///
/// Whose fault: `truncated` is usually the capture's (snap length, a cut-off file); `malformed_*`
/// is the sender's (or an evasion attempt); `unsupported_*` and `not_ip` are traffic the sensor is
/// not built for; the two `fragment_*` outcomes belong to reassembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The frame ends before a header does, or before the length an IP header declares.
    Truncated,
    /// A link encapsulation the decoder does not handle (e.g. too many VLAN/MPLS labels, MPLS
    /// pseudowire, SLL of a non-Ethernet-like device).
    UnsupportedLink,
    /// A link-layer protocol other than IP (ARP, LLDP, STP, PPPoE discovery, …).
    NotIp,
    /// IP carrying something other than TCP/UDP (ICMP, SCTP, GRE, ESP, …).
    UnsupportedTransport,
    /// An IP header that is inconsistent (bad version, header or total length, extension headers).
    MalformedIp,
    /// A TCP header that does not fit in its IP payload or has a bad data offset.
    MalformedTcp,
    /// A UDP header that does not fit in its IP payload or declares more than it has.
    MalformedUdp,
    /// A fragment was stored, waiting for the rest of its datagram. Not an error.
    FragmentHeld,
    /// A fragment was discarded: bad offset or length, conflicting end, too many fragments, memory
    /// cap. (Datagrams dropped on timeout or memory cap are counted in [`DefragStats`].)
    FragmentDropped,
    /// An IPv4 header or TCP/UDP checksum is wrong, so the receiver drops the packet too (only
    /// when checksums are verified, see [`ChecksumMode`]).
    BadChecksum,
}

impl Skip {
    /// Every reason, for pre-registering metric series.
    pub const ALL: [Skip; 10] = [
        Skip::Truncated,
        Skip::UnsupportedLink,
        Skip::NotIp,
        Skip::UnsupportedTransport,
        Skip::MalformedIp,
        Skip::MalformedTcp,
        Skip::MalformedUdp,
        Skip::FragmentHeld,
        Skip::FragmentDropped,
        Skip::BadChecksum,
    ];

    /// Metric label (stable snake_case).
    pub fn as_label(self) -> &'static str {
        match self {
            Skip::Truncated => "truncated",
            Skip::UnsupportedLink => "unsupported_link",
            Skip::NotIp => "not_ip",
            Skip::UnsupportedTransport => "unsupported_transport",
            Skip::MalformedIp => "malformed_ip",
            Skip::MalformedTcp => "malformed_tcp",
            Skip::MalformedUdp => "malformed_udp",
            Skip::FragmentHeld => "fragment_held",
            Skip::FragmentDropped => "fragment_dropped",
            Skip::BadChecksum => "bad_checksum",
        }
    }
}

/// Defragmentation limits.
#[derive(Debug, Clone)]
pub struct DefragConfig {
    /// Most bytes held in incomplete datagrams (payload bytes plus a fixed per-datagram overhead
    /// of a few hundred bytes). When a fragment would exceed it, the oldest incomplete datagrams
    /// are dropped first. Suggested default: 32 MiB per decoder.
    pub memcap: usize,
    /// Incomplete datagrams are dropped this long after their first fragment (packet time).
    /// Suggested default: 30 s (Linux `ipfrag_time`).
    pub timeout: std::time::Duration,
}

/// Stateful decoder (holds the IPv4/IPv6 fragment reassembly table). One per capture thread.
pub struct Decoder {
    defrag: defrag::Defrag,
    checksums: checksum::Checker,
}

impl Decoder {
    /// A decoder with the given defragmentation limits.
    pub fn new(cfg: DefragConfig) -> Decoder {
        Decoder {
            defrag: defrag::Defrag::new(cfg),
            checksums: checksum::Checker::new(ChecksumMode::Off),
        }
    }

    /// Verifies checksums in `mode` from now on (a new decoder does not verify).
    pub fn with_checksums(mut self, mode: ChecksumMode) -> Decoder {
        self.checksums = checksum::Checker::new(mode);
        self
    }

    /// Packets whose checksums failed verification so far, dropped or not.
    pub fn checksum_errors(&self) -> u64 {
        self.checksums.errors
    }

    /// Decodes one frame captured at `ts` (packet time, which also drives fragment expiry).
    pub fn decode<'a>(&'a mut self, link: LinkType, ts: Timestamp, frame: &'a [u8]) -> Result<Packet<'a>, Skip> {
        self.defrag.expire(ts);
        let (l3, bytes) = link::strip(link, frame)?;
        match ip::parse(l3, bytes)? {
            ip::Parsed::Whole(p, w) => {
                if self.checksums.drop(p.src, p.dst, w.ip_header, w.proto, w.segment) {
                    return Err(Skip::BadChecksum);
                }
                Ok(p)
            }
            ip::Parsed::Fragment(f) => {
                let whole = self.defrag.add(f, ts)?;
                match ip::parse(link::L3::Either, whole)? {
                    ip::Parsed::Whole(mut p, w) => {
                        if self.checksums.drop(p.src, p.dst, w.ip_header, w.proto, w.segment) {
                            return Err(Skip::BadChecksum);
                        }
                        p.reassembled = Some(whole);
                        Ok(p)
                    }
                    // A fragment header inside a reassembled payload: nothing legitimate does that.
                    ip::Parsed::Fragment(_) => Err(Skip::FragmentDropped),
                }
            }
        }
    }

    /// Reassembly counters and gauges.
    pub fn defrag_stats(&self) -> DefragStats {
        self.defrag.stats()
    }
}
