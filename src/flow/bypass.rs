//! Per-flow bypass: a flow whose egress direction cannot carry more cleartext (encrypted from
//! here) or is past the configured stream depth stays in the flow table, so its FIN, RST or idle
//! timeout still end it and it is not re-created mid-stream, but its packets are only counted:
//! no reassembly, no decoding, no matching.
//!
//! Metric labels are a closed set: `protocol` is one of [`BypassKind::PROTOCOLS`] and `reason`
//! one of [`BypassReason::ALL`], so the two bypass families have at most 14 series each.

use crate::l7::Protocol;

/// Why a flow was bypassed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassReason {
    /// The direction is encrypted from here (TLS after its handshake, SSH, SMTP after
    /// STARTTLS, QUIC).
    Encrypted,
    /// The direction passed `flow.stream_depth` bytes.
    Depth,
}

impl BypassReason {
    /// Every reason, in metric-index order.
    pub const ALL: [BypassReason; 2] = [BypassReason::Encrypted, BypassReason::Depth];

    /// Metric label.
    pub fn as_label(self) -> &'static str {
        match self {
            BypassReason::Encrypted => "encrypted",
            BypassReason::Depth => "depth",
        }
    }
}

/// What was bypassed and why, packed for the per-flow state (2 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BypassKind {
    /// Index in [`BypassKind::PROTOCOLS`]. Invariant: `< PROTOCOLS.len()`.
    protocol: u8,
    /// The reason.
    pub reason: BypassReason,
}

impl BypassKind {
    /// `protocol` label values: the application protocols, then QUIC (which the l7 layer does
    /// not decode; it is recognised from a UDP datagram's first bytes here).
    /// Invariant: the first entries are `Protocol::ALL`'s labels in order (checked by a test).
    pub const PROTOCOLS: [&'static str; Protocol::ALL.len() + 1] =
        ["unknown", "http", "smtp", "dns", "tls", "ssh", "quic"];
    const QUIC: u8 = Protocol::ALL.len() as u8;

    /// A TCP direction of application protocol `protocol`.
    pub fn tcp(protocol: Protocol, reason: BypassReason) -> BypassKind {
        let protocol = Protocol::ALL.iter().position(|p| *p == protocol).unwrap_or(0) as u8;
        BypassKind { protocol, reason }
    }

    /// A QUIC flow.
    pub fn quic() -> BypassKind {
        BypassKind {
            protocol: Self::QUIC,
            reason: BypassReason::Encrypted,
        }
    }

    /// Index of the protocol label in [`BypassKind::PROTOCOLS`].
    pub fn protocol_index(self) -> usize {
        usize::from(self.protocol)
    }

    /// Index of the reason in [`BypassReason::ALL`].
    pub fn reason_index(self) -> usize {
        self.reason as usize
    }
}

/// Per-flow bypass state (3 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bypassed {
    /// What and why.
    pub kind: BypassKind,
    /// The egress side sent FIN after the bypass (its stream is no longer followed).
    pub egress_fin: bool,
}

/// QUIC versions whose long header we trust: v1 (RFC 9000), v2 (RFC 9369), and the IETF
/// drafts `0xff0000xx`.
fn known_quic_version(v: u32) -> bool {
    v == 0x0000_0001 || v == 0x6b33_43cf || v & 0xffff_ff00 == 0xff00_0000
}

/// True when a UDP datagram starts a QUIC long-header packet (form and fixed bits set, a known
/// version, a destination connection ID length of at most 20, RFC 9000 §17.2). Every QUIC
/// packet is encrypted, the Initial included (its keys are public, but its payload is a TLS
/// ClientHello, not user data), so the flow is bypassed from its first datagram.
pub fn is_quic_long_header(payload: &[u8]) -> bool {
    let [first, v0, v1, v2, v3, dcid_len, ..] = *payload else {
        return false;
    };
    first & 0xc0 == 0xc0 && known_quic_version(u32::from_be_bytes([v0, v1, v2, v3])) && dcid_len <= 20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_long_headers_of_known_versions_only() {
        let initial = |first: u8, version: u32| {
            let mut p = vec![first];
            p.extend_from_slice(&version.to_be_bytes());
            p.extend_from_slice(&[8, 1, 2, 3, 4, 5, 6, 7, 8, 0]);
            p
        };
        assert!(is_quic_long_header(&initial(0xc3, 1)));
        assert!(is_quic_long_header(&initial(0xd0, 0x6b33_43cf)));
        assert!(is_quic_long_header(&initial(0xc0, 0xff00_001d)));
        assert!(!is_quic_long_header(&initial(0x43, 1)), "short header form");
        assert!(!is_quic_long_header(&initial(0x83, 1)), "fixed bit clear");
        assert!(!is_quic_long_header(&initial(0xc3, 0)), "version negotiation");
        assert!(!is_quic_long_header(&initial(0xc3, 0x1234_5678)), "unknown version");
        assert!(!is_quic_long_header(b"\xc3\x00\x00"), "truncated");
        let mut long_dcid = initial(0xc3, 1);
        long_dcid[5] = 21;
        assert!(!is_quic_long_header(&long_dcid));
        // A cleartext datagram starting with letters is not QUIC.
        assert!(!is_quic_long_header(b"cnic=35202-1234567-1"));
    }

    #[test]
    fn labels_are_a_closed_set() {
        assert_eq!(BypassKind::PROTOCOLS.last(), Some(&"quic"));
        for (p, label) in Protocol::ALL.iter().zip(BypassKind::PROTOCOLS) {
            assert_eq!(p.as_str(), label);
        }
        assert_eq!(BypassKind::PROTOCOLS[BypassKind::quic().protocol_index()], "quic");
        let tls = BypassKind::tcp(Protocol::Tls, BypassReason::Encrypted);
        assert_eq!(BypassKind::PROTOCOLS[tls.protocol_index()], "tls");
        assert_eq!(BypassReason::ALL[tls.reason_index()], BypassReason::Encrypted);
        assert!(std::mem::size_of::<Option<Bypassed>>() <= 4);
    }
}
