//! Link layer: strips the link header and any VLAN / MPLS / PPPoE encapsulation, leaving IP bytes.
//!
//! Parsed by hand because the headers are fixed-size and etherparse lacks SLL2 and loopback; every
//! read goes through [`be16`] / [`split`], which check the length first.

use super::{LinkType, Skip};

/// Which IP version the link layer announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum L3 {
    /// IPv4 per ethertype / family / DLT.
    V4,
    /// IPv6 per ethertype / family / DLT.
    V6,
    /// Decided by the IP version nibble (raw IP, MPLS payload).
    Either,
}

/// Most 802.1Q/802.1ad tags accepted in one frame (QinQ is 2; carriers rarely exceed 3).
const MAX_VLAN_TAGS: usize = 4;
/// Most MPLS label stack entries accepted in one frame.
const MAX_MPLS_LABELS: usize = 8;

mod ethertype {
    pub(super) const IPV4: u16 = 0x0800;
    pub(super) const IPV6: u16 = 0x86DD;
    pub(super) const VLAN: u16 = 0x8100;
    pub(super) const QINQ: u16 = 0x88A8;
    pub(super) const QINQ_OLD: u16 = 0x9100;
    pub(super) const QINQ_OLD2: u16 = 0x9200;
    pub(super) const MPLS: u16 = 0x8847;
    pub(super) const MPLS_MC: u16 = 0x8848;
    pub(super) const PPPOE_SESSION: u16 = 0x8864;
}

const ETHERNET_LEN: usize = 14;
const SLL_LEN: usize = 16;
const SLL2_LEN: usize = 20;
const NULL_LEN: usize = 4;
const PPPOE_LEN: usize = 8; // 6-byte PPPoE header + 2-byte PPP protocol

/// Splits `n` bytes off the front, or reports truncation.
fn split(bytes: &[u8], n: usize) -> Result<(&[u8], &[u8]), Skip> {
    if bytes.len() < n {
        Err(Skip::Truncated)
    } else {
        Ok(bytes.split_at(n))
    }
}

/// Big-endian u16 at `at` of a slice already checked to be long enough.
fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// Strips the link framing of `frame`.
pub(super) fn strip(link: LinkType, frame: &[u8]) -> Result<(L3, &[u8]), Skip> {
    match link {
        LinkType::Ethernet => {
            let (hdr, rest) = split(frame, ETHERNET_LEN)?;
            by_ethertype(be16(hdr, 12), rest)
        }
        LinkType::LinuxSll => {
            let (hdr, rest) = split(frame, SLL_LEN)?;
            by_ethertype(be16(hdr, 14), rest)
        }
        LinkType::LinuxSll2 => {
            let (hdr, rest) = split(frame, SLL2_LEN)?;
            by_ethertype(be16(hdr, 0), rest)
        }
        LinkType::Null => {
            let (hdr, rest) = split(frame, NULL_LEN)?;
            let raw = [hdr[0], hdr[1], hdr[2], hdr[3]];
            // DLT_NULL is in the capturing host's byte order, DLT_LOOP in network order; families
            // are small numbers, so the smaller reading is the right one.
            let family = u32::from_le_bytes(raw).min(u32::from_be_bytes(raw));
            match family {
                2 => Ok((L3::V4, rest)),
                // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD/DragonFly, macOS.
                10 | 24 | 28 | 30 => Ok((L3::V6, rest)),
                _ => Err(Skip::NotIp),
            }
        }
        LinkType::RawIp => Ok((L3::Either, frame)),
        LinkType::Ipv4 => Ok((L3::V4, frame)),
        LinkType::Ipv6 => Ok((L3::V6, frame)),
    }
}

/// Follows ethertypes through VLAN tags, MPLS labels and PPPoE sessions down to IP.
fn by_ethertype(mut ty: u16, mut rest: &[u8]) -> Result<(L3, &[u8]), Skip> {
    let mut tags = 0;
    loop {
        match ty {
            ethertype::IPV4 => return Ok((L3::V4, rest)),
            ethertype::IPV6 => return Ok((L3::V6, rest)),
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD | ethertype::QINQ_OLD2 => {
                tags += 1;
                if tags > MAX_VLAN_TAGS {
                    return Err(Skip::UnsupportedLink);
                }
                let (tag, after) = split(rest, 4)?;
                ty = be16(tag, 2);
                rest = after;
            }
            ethertype::MPLS | ethertype::MPLS_MC => return mpls(rest),
            ethertype::PPPOE_SESSION => {
                let (hdr, after) = split(rest, PPPOE_LEN)?;
                return match be16(hdr, 6) {
                    0x0021 => Ok((L3::V4, after)),
                    0x0057 => Ok((L3::V6, after)),
                    _ => Err(Skip::NotIp), // LCP, IPCP, CHAP, …
                };
            }
            // ARP, LLDP, MACsec, …, and values below 0x0600, which are 802.3 lengths (LLC: STP, …).
            _ => return Err(Skip::NotIp),
        }
    }
}

/// Skips an MPLS label stack; the payload is IP if its version nibble says so.
fn mpls(mut rest: &[u8]) -> Result<(L3, &[u8]), Skip> {
    for _ in 0..MAX_MPLS_LABELS {
        let (label, after) = split(rest, 4)?;
        rest = after;
        if label[2] & 0x01 != 0 {
            // Bottom of stack. Anything but IPv4/IPv6 (e.g. an Ethernet pseudowire control word)
            // is an encapsulation we do not follow.
            return match rest.first().map(|b| b >> 4) {
                None => Err(Skip::Truncated),
                Some(4) | Some(6) => Ok((L3::Either, rest)),
                Some(_) => Err(Skip::UnsupportedLink),
            };
        }
    }
    Err(Skip::UnsupportedLink)
}
