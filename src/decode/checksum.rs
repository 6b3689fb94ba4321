//! IPv4 header and TCP/UDP checksum verification, with an `auto` mode for offloaded captures.
//!
//! A receiver drops a segment whose checksum is wrong, so a sensor that scans it sees bytes the
//! receiver never did: an attacker can send a decoy with a bad checksum ahead of the real
//! segment, and the decoy wins the overlap (Ptacek & Newsham, 1998). Verifying closes that hole.
//!
//! But a capture taken on a host whose NIC computes checksums (transmit offload, loopback with
//! partial checksums) carries wrong checksums on every packet the host sent, and dropping those
//! would blind the sensor. `auto` (as Suricata's `checksum-validation: auto`) measures each
//! window of [`AUTO_WINDOW`] checked packets and verifies during the next one only if few failed
//! (at most 1 in [`AUTO_BAD_RATIO`]). The first window decides nothing, so its packets are kept.

use std::net::IpAddr;

/// Packets per `auto` measurement window.
pub const AUTO_WINDOW: u32 = 1000;
/// `auto` stops dropping when more than one checked packet in this many failed.
pub const AUTO_BAD_RATIO: u32 = 10;

/// Whether the decoder verifies checksums and drops packets that fail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChecksumMode {
    /// Never verified (captures known to come from offloading hosts).
    Off,
    /// Always verified; a packet that fails is dropped as the receiver would.
    On,
    /// Verified; packets that fail are dropped unless most recent packets failed (offload).
    #[default]
    Auto,
}

impl std::str::FromStr for ChecksumMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(ChecksumMode::Off),
            "on" => Ok(ChecksumMode::On),
            "auto" => Ok(ChecksumMode::Auto),
            _ => Err(format!("checksum validation {s:?} is not one of: on, off, auto")),
        }
    }
}

/// The checksum state of one decoder.
#[derive(Debug, Clone)]
pub(super) struct Checker {
    mode: ChecksumMode,
    /// `auto`: whether failing packets are dropped in the current window.
    enforcing: bool,
    /// `auto`: packets checked and failed in the current window.
    checked: u32,
    failed: u32,
    /// Packets that failed verification (dropped or not).
    pub(super) errors: u64,
}

impl Checker {
    pub(super) fn new(mode: ChecksumMode) -> Checker {
        Checker {
            mode,
            enforcing: mode == ChecksumMode::On,
            checked: 0,
            failed: 0,
            errors: 0,
        }
    }

    /// Verifies a packet; returns whether it must be dropped. `ip_header` is the IPv4 header
    /// (IPv6 has none to check), `segment` the whole TCP or UDP header and payload.
    pub(super) fn drop(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        ip_header: Option<&[u8]>,
        proto: u8,
        segment: &[u8],
    ) -> bool {
        if self.mode == ChecksumMode::Off {
            return false;
        }
        let ok = ip_header.map_or(true, |h| fold(sum(0, h)) == 0xffff) && l4_ok(src, dst, proto, segment);
        if !ok {
            self.errors += 1;
        }
        if self.mode == ChecksumMode::Auto {
            self.checked += 1;
            self.failed += u32::from(!ok);
            if self.checked == AUTO_WINDOW {
                self.enforcing = self.failed * AUTO_BAD_RATIO <= AUTO_WINDOW;
                (self.checked, self.failed) = (0, 0);
            }
        }
        !ok && self.enforcing
    }
}

/// True when the TCP/UDP checksum of `segment` (pseudo-header included) is right, or absent
/// (UDP over IPv4 with a zero checksum).
fn l4_ok(src: IpAddr, dst: IpAddr, proto: u8, segment: &[u8]) -> bool {
    if proto == 17 && src.is_ipv4() && segment.get(6..8) == Some(&[0, 0]) {
        return true;
    }
    let mut s = match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => sum(sum(0, &a.octets()), &b.octets()),
        (a, b) => sum(sum(0, &octets6(a)), &octets6(b)),
    };
    s += u64::from(proto) + segment.len() as u64;
    fold(sum(s, segment)) == 0xffff
}

fn octets6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// One's-complement sum of big-endian 16-bit words (odd length padded with zero), unfolded.
fn sum(mut acc: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn segment(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1000, 80, 7, 1024)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    fn check(c: &mut Checker, ip: &[u8]) -> bool {
        let (src, dst) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        c.drop(src, dst, Some(&ip[..20]), 6, &ip[20..])
    }

    #[test]
    fn right_checksums_pass_and_any_flipped_bit_fails() {
        let good = segment(b"hello world, odd length");
        let mut on = Checker::new(ChecksumMode::On);
        assert!(!check(&mut on, &good));
        for byte in [5, 12, 25, 30, good.len() - 1] {
            let mut bad = good.clone();
            bad[byte] ^= 0x10;
            assert!(check(&mut on, &bad), "flipped byte {byte} not caught");
        }
        assert_eq!(on.errors, 5);
        let mut off = Checker::new(ChecksumMode::Off);
        let mut bad = good.clone();
        bad[30] ^= 1;
        assert!(!check(&mut off, &bad));
        assert_eq!(off.errors, 0);
    }

    #[test]
    fn ipv4_udp_without_checksum_passes() {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 53)
            .write(&mut out, b"abc")
            .unwrap();
        out[26..28].copy_from_slice(&[0, 0]);
        let (src, dst) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(!Checker::new(ChecksumMode::On).drop(src, dst, Some(&out[..20]), 17, &out[20..]));
    }

    #[test]
    fn auto_keeps_the_first_window_then_enforces_only_on_mostly_good_traffic() {
        let good = segment(b"data");
        let mut bad = good.clone();
        bad[40] ^= 1;
        // Clean traffic: the first window keeps a bad packet, the next one drops it.
        let mut c = Checker::new(ChecksumMode::Auto);
        assert!(!check(&mut c, &bad));
        for _ in 1..AUTO_WINDOW {
            check(&mut c, &good);
        }
        assert!(check(&mut c, &bad), "enforcing after a clean window");
        // Offloaded traffic: most packets fail, so none is dropped in the next window.
        let mut c = Checker::new(ChecksumMode::Auto);
        for _ in 0..AUTO_WINDOW {
            check(&mut c, &bad);
        }
        assert!(!check(&mut c, &bad), "not enforcing after an offloaded window");
        assert_eq!(c.errors, u64::from(AUTO_WINDOW) + 1);
    }

    #[test]
    fn mode_parses_its_three_names_only() {
        assert_eq!("auto".parse(), Ok(ChecksumMode::Auto));
        assert_eq!("on".parse(), Ok(ChecksumMode::On));
        assert_eq!("off".parse(), Ok(ChecksumMode::Off));
        assert!("yes".parse::<ChecksumMode>().unwrap_err().contains("on, off, auto"));
    }
}
