//! Community ID v1 flow hashing (<https://github.com/corelight/community-id-spec>).
//!
//! The Community ID lets an analyst join a Nigehban alert with the same flow as seen by Zeek,
//! Suricata or a firewall. The hash input is, in network byte order:
//!
//! ```text
//! seed (2) | src addr (4 or 16) | dst addr (4 or 16) | proto (1) | pad 0 (1) | src port (2) | dst port (2)
//! ```
//!
//! where the endpoints are ordered so that the smaller (address, then port) comes first, which makes
//! the ID the same for both directions of a flow. The string is `1:` followed by the standard
//! (padded) base64 of the SHA-1 digest.
//!
//! Only TCP/UDP-style ports are hashed as given: ICMP type/code mapping from the spec is not done,
//! because the decoder only hands TCP and UDP packets to the flow table.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// Community ID v1 string (`1:<base64 sha1>`), seed 0 by default; protocol 6 = TCP, 17 = UDP.
///
/// The result does not depend on which endpoint is `src`. If the two addresses are of different
/// families (which no real flow has), their octet strings are compared as they are.
pub fn community_id(seed: u16, src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16, proto: u8) -> String {
    let a = Octets::of(src);
    let b = Octets::of(dst);
    let (first, second) = if (a.as_slice(), src_port) <= (b.as_slice(), dst_port) {
        ((a, src_port), (b, dst_port))
    } else {
        ((b, dst_port), (a, src_port))
    };

    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(first.0.as_slice());
    h.update(second.0.as_slice());
    h.update([proto, 0]);
    h.update(first.1.to_be_bytes());
    h.update(second.1.to_be_bytes());
    let digest = h.finalize();

    let mut out = String::with_capacity(2 + 28);
    out.push_str("1:");
    STANDARD.encode_string(digest, &mut out);
    out
}

/// An address as its network-order octets, without allocating.
#[derive(Clone, Copy)]
struct Octets {
    bytes: [u8; 16],
    /// Invariant: 4 or 16.
    len: usize,
}

impl Octets {
    fn of(ip: IpAddr) -> Octets {
        let mut bytes = [0u8; 16];
        let len = match ip {
            IpAddr::V4(v4) => {
                bytes[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                bytes = v6.octets();
                16
            }
        };
        Octets { bytes, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// (proto, saddr, daddr, sport, dport, seed 0 id, seed 1 id), from the spec repository's
    /// `baseline/baseline_deflt.json` and `baseline/baseline_seed1.json`.
    const VECTORS: &[(u8, &str, &str, u16, u16, &str, &str)] = &[
        (
            6,
            "128.232.110.120",
            "66.35.250.204",
            34855,
            80,
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
        ),
        (
            17,
            "192.168.1.52",
            "8.8.8.8",
            54585,
            53,
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
        ),
        (
            6,
            "2001:470:e5bf:dead:4957:2174:e82c:4887",
            "2607:f8b0:400c:c03::1a",
            63943,
            25,
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            "1:eJYTW6AOzFLlSUoESovMjnu7rMw=",
        ),
        // SCTP with equal ports: ordering falls to the addresses alone.
        (
            132,
            "192.168.170.8",
            "192.168.170.56",
            7,
            7,
            "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=",
        ),
    ];

    #[test]
    fn spec_baseline_vectors_both_directions() {
        for &(proto, s, d, sp, dp, id0, id1) in VECTORS {
            assert_eq!(
                community_id(0, ip(s), ip(d), sp, dp, proto),
                id0,
                "{s}:{sp} -> {d}:{dp}"
            );
            assert_eq!(
                community_id(0, ip(d), ip(s), dp, sp, proto),
                id0,
                "{d}:{dp} -> {s}:{sp}"
            );
            assert_eq!(community_id(1, ip(s), ip(d), sp, dp, proto), id1, "seed 1 {s}:{sp}");
            assert_eq!(community_id(1, ip(d), ip(s), dp, sp, proto), id1, "seed 1 {d}:{dp}");
        }
    }

    #[test]
    fn same_address_orders_by_port() {
        let a = ip("10.0.0.1");
        assert_eq!(community_id(0, a, a, 1000, 80, 6), community_id(0, a, a, 80, 1000, 6));
        assert_ne!(community_id(0, a, a, 1000, 80, 6), community_id(0, a, a, 1000, 81, 6));
    }

    #[test]
    fn proto_and_seed_change_the_id() {
        let (s, d) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let tcp = community_id(0, s, d, 1, 2, 6);
        assert_ne!(tcp, community_id(0, s, d, 1, 2, 17));
        assert_ne!(tcp, community_id(7, s, d, 1, 2, 6));
        assert!(tcp.starts_with("1:") && tcp.len() == 30);
    }
}
