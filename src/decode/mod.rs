//! Link, VLAN, IP (with IPv4 fragment reassembly) and transport decoding into a checked view.
//! CONTRACT STUB — helper B implements.

use crate::clock::Timestamp;
use std::net::IpAddr;

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
    /// DLT_NULL (0) / DLT_LOOP (108): BSD loopback.
    Null,
}

impl LinkType {
    /// Maps a libpcap data-link type number; `None` if unsupported.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        let _ = dlt;
        todo!()
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
    /// When this packet was the last fragment of a reassembled IPv4 datagram: the whole datagram
    /// (IP header + payload) so the capture thread can forward it as raw IP.
    pub reassembled: Option<&'a [u8]>,
}

/// Why a frame was not decoded into a TCP/UDP packet. Each maps to a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Placeholder.
    Truncated,
}

impl Skip {
    /// Metric label.
    pub fn as_label(self) -> &'static str {
        "truncated"
    }
}

/// Defragmentation limits.
#[derive(Debug, Clone)]
pub struct DefragConfig {
    /// Most bytes held in incomplete datagrams.
    pub memcap: usize,
    /// Incomplete datagrams are dropped after this long (packet time).
    pub timeout: std::time::Duration,
}

/// Stateful decoder (holds the IPv4 fragment reassembly table).
pub struct Decoder {}

impl Decoder {
    /// A decoder with the given defragmentation limits.
    pub fn new(cfg: DefragConfig) -> Decoder {
        let _ = cfg;
        Decoder {}
    }
    /// Decodes one frame.
    pub fn decode<'a>(&'a mut self, link: LinkType, ts: Timestamp, frame: &'a [u8]) -> Result<Packet<'a>, Skip> {
        let _ = (link, ts, frame);
        todo!()
    }
}
