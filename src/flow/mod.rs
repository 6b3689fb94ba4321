//! Flows: the bidirectional 5-tuple key, the per-worker flow table with its timeouts and memory
//! cap, and Community ID hashing for alerts.

pub mod bypass;
pub mod community_id;
mod table;

pub use table::{EndReason, FlowEntry, FlowTable, FlowTableConfig, FlowTableStats};

use std::hash::BuildHasher;
use std::net::IpAddr;

/// IP protocol numbers the sensor tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
}

impl Proto {
    /// IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
    /// ECS `network.transport` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One end of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Address.
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
}

/// Which way a packet travels within its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From the key's lower endpoint `a` to `b`.
    AtoB,
    /// From `b` to `a`.
    BtoA,
}

impl Dir {
    /// 0 for `AtoB`, 1 for `BtoA`: index into per-direction arrays.
    pub fn index(self) -> usize {
        match self {
            Dir::AtoB => 0,
            Dir::BtoA => 1,
        }
    }
    /// The other direction.
    pub fn reverse(self) -> Dir {
        match self {
            Dir::AtoB => Dir::BtoA,
            Dir::BtoA => Dir::AtoB,
        }
    }
}

/// Bidirectional flow key: both directions of a conversation map to the same key.
///
/// Invariant: `a <= b`, so the key is symmetric by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    a: Endpoint,
    b: Endpoint,
    proto: Proto,
}

impl FlowKey {
    /// The key of a packet from `src` to `dst`, and the packet's direction within it.
    pub fn new(proto: Proto, src: Endpoint, dst: Endpoint) -> (FlowKey, Dir) {
        if src <= dst {
            (FlowKey { a: src, b: dst, proto }, Dir::AtoB)
        } else {
            (FlowKey { a: dst, b: src, proto }, Dir::BtoA)
        }
    }
    /// The key of a decoded packet, and the packet's direction within it.
    pub fn of_packet(pkt: &crate::decode::Packet<'_>) -> (FlowKey, Dir) {
        let proto = match pkt.transport {
            crate::decode::Transport::Tcp(_) => Proto::Tcp,
            crate::decode::Transport::Udp => Proto::Udp,
        };
        let src = Endpoint {
            ip: pkt.src,
            port: pkt.src_port,
        };
        let dst = Endpoint {
            ip: pkt.dst,
            port: pkt.dst_port,
        };
        FlowKey::new(proto, src, dst)
    }

    /// Transport protocol.
    pub fn proto(&self) -> Proto {
        self.proto
    }
    /// (sender, receiver) for a direction.
    pub fn endpoints(&self, dir: Dir) -> (Endpoint, Endpoint) {
        match dir {
            Dir::AtoB => (self.a, self.b),
            Dir::BtoA => (self.b, self.a),
        }
    }
    /// Community ID v1 (seed 0) of this flow.
    pub fn community_id(&self) -> String {
        community_id::community_id(0, self.a.ip, self.b.ip, self.a.port, self.b.port, self.proto.number())
    }
}

/// Symmetric flow hash for sharding packets to workers: both directions give the same value.
/// Seeded per process so traffic cannot be crafted to pile onto one worker.
#[derive(Clone, Default)]
pub struct ShardHasher {
    state: foldhash::fast::RandomState,
}

impl ShardHasher {
    /// Hash of the flow a packet belongs to.
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.state.hash_one(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: s.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn key_is_symmetric_and_direction_is_kept() {
        let (k1, d1) = FlowKey::new(Proto::Tcp, ep("10.0.0.1", 40000), ep("8.8.8.8", 80));
        let (k2, d2) = FlowKey::new(Proto::Tcp, ep("8.8.8.8", 80), ep("10.0.0.1", 40000));
        assert_eq!(k1, k2);
        assert_ne!(d1, d2);
        assert_eq!(k1.endpoints(d1).0, ep("10.0.0.1", 40000));
        assert_eq!(k2.endpoints(d2).0, ep("8.8.8.8", 80));
        let h = ShardHasher::default();
        assert_eq!(h.hash(&k1), h.hash(&k2));
    }

    #[test]
    fn same_ips_different_ports_are_different_flows() {
        let (k1, _) = FlowKey::new(Proto::Tcp, ep("10.0.0.1", 1), ep("10.0.0.1", 2));
        let (k2, _) = FlowKey::new(Proto::Udp, ep("10.0.0.1", 1), ep("10.0.0.1", 2));
        assert_ne!(k1, k2);
    }
}
