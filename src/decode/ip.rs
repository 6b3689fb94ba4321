//! IP and transport layers, through etherparse's zero-copy header slices.
//!
//! Lengths: IPv4 `total_len` and IPv6 `payload_len` bound everything after them, so link padding is
//! cut off here. A frame shorter than the IP header claims is [`Skip::Truncated`]; once the IP
//! datagram is complete, a transport header that does not fit is the sender's fault
//! (`malformed_tcp` / `malformed_udp`).
//!
//! IPv6 extension headers are walked here rather than by `Ipv6Slice`, because the walk must stop
//! at a fragment header: what follows it in a non-first fragment is payload, not headers.

use super::defrag::{FragKey, Fragment, MAX_DATAGRAM_LEN};
use super::link::L3;
use super::{Packet, Skip, TcpHeader, Transport};
use etherparse::{
    IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, TcpSlice,
    UdpSlice,
};
use std::net::{IpAddr, Ipv6Addr};

/// Most IPv6 extension headers walked before giving up (real packets carry two or three).
const MAX_IPV6_EXT_HEADERS: usize = 16;

mod proto {
    pub(super) const HOP_BY_HOP: u8 = 0;
    pub(super) const TCP: u8 = 6;
    pub(super) const UDP: u8 = 17;
    pub(super) const ROUTING: u8 = 43;
    pub(super) const FRAGMENT: u8 = 44;
    pub(super) const AUTH: u8 = 51;
    pub(super) const DEST_OPTS: u8 = 60;
    pub(super) const MOBILITY: u8 = 135;
    pub(super) const HIP: u8 = 139;
    pub(super) const SHIM6: u8 = 140;
}

/// What the IP layer found.
pub(super) enum Parsed<'a> {
    /// A complete TCP/UDP packet, with the bytes its checksums cover.
    Whole(Packet<'a>, Wire<'a>),
    /// One fragment of a larger datagram.
    Fragment(Fragment<'a>),
}

/// The bytes a packet's checksums cover (fuzz: checksum verification).
#[derive(Debug, Clone, Copy)]
pub(super) struct Wire<'a> {
    /// The IPv4 header; `None` for IPv6, which has no header checksum.
    pub(super) ip_header: Option<&'a [u8]>,
    /// TCP or UDP.
    pub(super) proto: u8,
    /// The TCP/UDP header and payload.
    pub(super) segment: &'a [u8],
}

/// Parses the IP datagram at the start of `bytes` (trailing bytes are link padding).
pub(super) fn parse(l3: L3, bytes: &[u8]) -> Result<Parsed<'_>, Skip> {
    let version = match l3 {
        L3::V4 => 4,
        L3::V6 => 6,
        L3::Either => bytes.first().ok_or(Skip::Truncated)? >> 4,
    };
    match version {
        4 => ipv4(bytes),
        6 => ipv6(bytes),
        _ => Err(Skip::MalformedIp),
    }
}

fn ipv4(bytes: &[u8]) -> Result<Parsed<'_>, Skip> {
    use etherparse::err::ipv4::HeaderSliceError;
    let header = Ipv4HeaderSlice::from_slice(bytes).map_err(|e| match e {
        HeaderSliceError::Len(_) => Skip::Truncated,
        HeaderSliceError::Content(_) => Skip::MalformedIp,
    })?;
    let header_len = header.slice().len();
    let total_len = usize::from(header.total_len());
    if total_len < header_len {
        return Err(Skip::MalformedIp);
    }
    let datagram = bytes.get(..total_len).ok_or(Skip::Truncated)?;
    let payload = &datagram[header_len..];
    let src = IpAddr::V4(header.source_addr());
    let dst = IpAddr::V4(header.destination_addr());
    let protocol = header.protocol().0;

    if header.is_fragmenting_payload() {
        if !worth_reassembling(protocol) {
            return Err(Skip::UnsupportedTransport);
        }
        return Ok(Parsed::Fragment(Fragment {
            key: FragKey::V4 {
                src: header.source(),
                dst: header.destination(),
                proto: protocol,
                id: header.identification(),
            },
            offset: u32::from(header.fragments_offset().byte_offset()),
            more: header.more_fragments(),
            payload,
            header: header.slice(),
            next_proto: protocol,
            // The reassembled datagram, header included, must fit an IPv4 total length.
            max_end: MAX_DATAGRAM_LEN - header_len as u32,
        }));
    }

    let (protocol, payload) = if protocol == proto::AUTH {
        skip_auth(payload)?
    } else {
        (protocol, payload)
    };
    let wire = Wire {
        ip_header: Some(header.slice()),
        proto: protocol,
        segment: payload,
    };
    transport(src, dst, protocol, payload).map(|p| Parsed::Whole(p, wire))
}

fn ipv6(bytes: &[u8]) -> Result<Parsed<'_>, Skip> {
    use etherparse::err::ipv6::HeaderSliceError;
    let header = Ipv6HeaderSlice::from_slice(bytes).map_err(|e| match e {
        HeaderSliceError::Len(_) => Skip::Truncated,
        HeaderSliceError::Content(_) => Skip::MalformedIp,
    })?;
    let after_header = &bytes[header.slice().len()..];
    // A zero payload length means a jumbogram, or a capture taken before the stack filled the field
    // in (segmentation offload): take the rest of the frame, as the receiver's stack would.
    let mut rest = match usize::from(header.payload_length()) {
        0 => after_header,
        n => after_header.get(..n).ok_or(Skip::Truncated)?,
    };
    let src_octets = header.source();
    let dst_octets = header.destination();
    let src = IpAddr::V6(Ipv6Addr::from(src_octets));
    let dst = IpAddr::V6(Ipv6Addr::from(dst_octets));

    let mut next = header.next_header().0;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            proto::HOP_BY_HOP | proto::ROUTING | proto::DEST_OPTS | proto::MOBILITY | proto::HIP | proto::SHIM6 => {
                let ext = Ipv6RawExtHeaderSlice::from_slice(rest).map_err(|_| Skip::MalformedIp)?;
                next = ext.next_header().0;
                rest = &rest[ext.slice().len()..];
            }
            proto::AUTH => (next, rest) = skip_auth(rest)?,
            proto::FRAGMENT => {
                let frag = Ipv6FragmentHeaderSlice::from_slice(rest).map_err(|_| Skip::MalformedIp)?;
                let after = &rest[frag.slice().len()..];
                if !frag.is_fragmenting_payload() {
                    // An atomic fragment (offset 0, no more fragments): just a header to skip.
                    next = frag.next_header().0;
                    rest = after;
                    continue;
                }
                if !worth_reassembling(frag.next_header().0) {
                    return Err(Skip::UnsupportedTransport);
                }
                return Ok(Parsed::Fragment(Fragment {
                    key: FragKey::V6 {
                        src: src_octets,
                        dst: dst_octets,
                        id: frag.identification(),
                    },
                    offset: u32::from(frag.fragment_offset().byte_offset()),
                    more: frag.more_fragments(),
                    payload: after,
                    header: header.slice(),
                    next_proto: frag.next_header().0,
                    max_end: MAX_DATAGRAM_LEN, // jumbograms are not reassembled
                }));
            }
            _ => {
                let wire = Wire {
                    ip_header: None,
                    proto: next,
                    segment: rest,
                };
                return transport(src, dst, next, rest).map(|p| Parsed::Whole(p, wire));
            }
        }
    }
    Err(Skip::MalformedIp)
}

/// Whether a fragmented payload can turn out to be TCP or UDP once reassembled: fragments of ICMP,
/// ESP, GRE, … are not held at all, so floods of them cost no reassembly memory.
fn worth_reassembling(next: u8) -> bool {
    matches!(
        next,
        proto::TCP
            | proto::UDP
            | proto::AUTH
            | proto::DEST_OPTS
            | proto::ROUTING
            | proto::MOBILITY
            | proto::HIP
            | proto::SHIM6
    )
}

/// Skips an IP Authentication Header (AH leaves the payload in clear text).
fn skip_auth(bytes: &[u8]) -> Result<(u8, &[u8]), Skip> {
    let auth = IpAuthHeaderSlice::from_slice(bytes).map_err(|_| Skip::MalformedIp)?;
    Ok((auth.next_header().0, &bytes[auth.slice().len()..]))
}

/// Parses the TCP or UDP header at the start of the IP payload.
fn transport(src: IpAddr, dst: IpAddr, protocol: u8, payload: &[u8]) -> Result<Packet<'_>, Skip> {
    match protocol {
        proto::TCP => {
            let tcp = TcpSlice::from_slice(payload).map_err(|_| Skip::MalformedTcp)?;
            Ok(Packet {
                src,
                dst,
                src_port: tcp.source_port(),
                dst_port: tcp.destination_port(),
                transport: Transport::Tcp(TcpHeader {
                    seq: tcp.sequence_number(),
                    ack_num: tcp.acknowledgment_number(),
                    syn: tcp.syn(),
                    ack: tcp.ack(),
                    fin: tcp.fin(),
                    rst: tcp.rst(),
                }),
                payload: tcp.payload(),
                reassembled: None,
            })
        }
        proto::UDP => {
            // A zero UDP length (jumbogram) means "to the end of the IP payload".
            let udp = UdpSlice::from_slice(payload).map_err(|_| Skip::MalformedUdp)?;
            Ok(Packet {
                src,
                dst,
                src_port: udp.source_port(),
                dst_port: udp.destination_port(),
                transport: Transport::Udp,
                payload: udp.payload(),
                reassembled: None,
            })
        }
        _ => Err(Skip::UnsupportedTransport),
    }
}
