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
        // 0xffff reads the same in either byte order, so the native-order sum needs no swap here.
        let ok = ip_header.is_none_or(|h| fold(sum(0, h)) == 0xffff) && l4_ok(src, dst, proto, segment);
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
    let s = match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => sum(sum(0, &a.octets()), &b.octets()),
        (a, b) => sum(sum(0, &octets6(a)), &octets6(b)),
    };
    // The protocol and length are numbers, not bytes: add them to the big-endian reading of the sum.
    let s = u64::from(fold_be(sum(s, segment))) + u64::from(proto) + segment.len() as u64;
    fold(s) == 0xffff
}

fn octets6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// One's-complement addition of 64-bit words: the carry out of bit 63 wraps around to bit 0,
/// which keeps the sum of the 16-bit words within it right, as 2^64 = 1 (mod 0xffff).
fn add(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    // Cannot overflow: with a carry, `s` is at most 2^64 - 2.
    s + u64::from(carry)
}

/// One's-complement sum of `bytes` read as 16-bit words in native byte order (odd length padded
/// with a zero byte), unfolded and added to `acc`; `bytes` starts a word. The sum does not
/// depend on how words are grouped (2^16 = 2^32 = 2^64 = 1 mod 0xffff), and reading native
/// order only byte-swaps the folded result (RFC 1071 §2(B)), which [`fold_be`] undoes.
fn sum(acc: u64, bytes: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() >= AVX2_MIN && std::arch::is_x86_feature_detected!("avx2") {
        let whole = bytes.len() / 32 * 32;
        // SAFETY: the CPU has AVX2 (checked just above; the answer is cached after the first).
        let blocks = unsafe { blocks_avx2(&bytes[..whole]) };
        return sum_scalar(add(acc, blocks), &bytes[whole..]);
    }
    sum_scalar(acc, bytes)
}

/// Shortest input worth the AVX2 loop: below it, the portable loop's few blocks cost less than
/// reducing eight vector lanes.
#[cfg(target_arch = "x86_64")]
const AVX2_MIN: usize = 128;

/// [`sum`] of whole 32-byte blocks (`bytes.len()` a multiple of 32), AVX2: the capture thread
/// verifies every payload byte, and this loop takes a third of the portable loop's
/// instructions (callgrind). Each 32-bit lane adds the two 16-bit words it holds, low and
/// high apart, so no carry is lost for up to 2^15 blocks; longer inputs are summed in runs of
/// that many.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn blocks_avx2(bytes: &[u8]) -> u64 {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_and_si256, _mm256_loadu_si256, _mm256_set1_epi32, _mm256_setzero_si256,
        _mm256_srli_epi32, _mm256_storeu_si256,
    };
    debug_assert_eq!(bytes.len() % 32, 0);
    const RUN: usize = 32 << 15;
    let mut total = 0u64;
    for run in bytes.chunks(RUN) {
        let low16 = _mm256_set1_epi32(0xffff);
        let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for block in run.chunks_exact(32) {
            // SAFETY: `block` is 32 readable bytes, all an unaligned load reads.
            let v = unsafe { _mm256_loadu_si256(block.as_ptr().cast::<__m256i>()) };
            lo = _mm256_add_epi32(lo, _mm256_and_si256(v, low16));
            hi = _mm256_add_epi32(hi, _mm256_srli_epi32::<16>(v));
        }
        let mut lanes = [0u32; 16];
        // SAFETY: `lanes` is 64 writable bytes, two unaligned 32-byte stores.
        unsafe {
            _mm256_storeu_si256(lanes.as_mut_ptr().cast::<__m256i>(), lo);
            _mm256_storeu_si256(lanes.as_mut_ptr().add(8).cast::<__m256i>(), hi);
        }
        total += lanes.iter().map(|&l| u64::from(l)).sum::<u64>();
    }
    total
}

/// [`sum`] without vector instructions beyond the baseline.
fn sum_scalar(acc: u64, bytes: &[u8]) -> u64 {
    // 32-bit words added into eight 64-bit lanes: no carry is lost (a lane would need 2^32
    // words to overflow), so the lanes are independent and the compiler makes vector adds of
    // them, where a chain of 64-bit add-with-carry steps took a cycle per 8 bytes.
    let mut lanes = [0u64; 8];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(block.chunks_exact(4)) {
            *lane += u64::from(u32::from_ne_bytes(w.try_into().expect("chunks of 4 bytes")));
        }
    }
    // A packet is far below 2^32 blocks: the lanes add up without overflow.
    let mut total: u64 = lanes.iter().sum();
    let mut rest = blocks.remainder();
    while let Some((w, r)) = rest.split_first_chunk::<4>() {
        total += u64::from(u32::from_ne_bytes(*w));
        rest = r;
    }
    // The last 0 to 3 bytes, by width rather than copied into a padded word: a copy of variable
    // length is a call to memcpy, twice a packet.
    if let Some((w, r)) = rest.split_first_chunk::<2>() {
        total += u64::from(u16::from_ne_bytes(*w));
        rest = r;
    }
    if let [last] = rest {
        total += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    add(acc, total)
}

/// Folds an unfolded sum to 16 bits. Zero stays zero and anything else stays non-zero, so a
/// right checksum folds to 0xffff however the words were grouped.
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Folds a native-order sum from [`sum`] and reads it as the big-endian 16-bit value the
/// checksum field holds.
fn fold_be(acc: u64) -> u16 {
    u16::from_be_bytes(fold(acc).to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The oracle: RFC 1071 as written, one big-endian 16-bit word at a time.
    fn slow_sum(mut acc: u64, bytes: &[u8]) -> u64 {
        let mut words = bytes.chunks_exact(2);
        for w in &mut words {
            acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            acc += u64::from(*last) << 8;
        }
        acc
    }

    fn slow_l4_ok(src: IpAddr, dst: IpAddr, proto: u8, segment: &[u8]) -> bool {
        if proto == 17 && src.is_ipv4() && segment.get(6..8) == Some(&[0, 0]) {
            return true;
        }
        let mut s = match (src, dst) {
            (IpAddr::V4(a), IpAddr::V4(b)) => slow_sum(slow_sum(0, &a.octets()), &b.octets()),
            (a, b) => slow_sum(slow_sum(0, &octets6(a)), &octets6(b)),
        };
        s += u64::from(proto) + segment.len() as u64;
        fold(slow_sum(s, segment)) == 0xffff
    }

    /// Makes the oracle accept `segment` by writing its checksum field (offset 16 for TCP, 6 for UDP).
    fn fix_checksum(src: IpAddr, dst: IpAddr, proto: u8, segment: &mut [u8]) {
        let at = if proto == 6 { 16 } else { 6 };
        segment[at..at + 2].copy_from_slice(&[0, 0]);
        let mut s = match (src, dst) {
            (IpAddr::V4(a), IpAddr::V4(b)) => slow_sum(slow_sum(0, &a.octets()), &b.octets()),
            (a, b) => slow_sum(slow_sum(0, &octets6(a)), &octets6(b)),
        };
        s += u64::from(proto) + segment.len() as u64;
        let check = !fold(slow_sum(s, segment));
        segment[at..at + 2].copy_from_slice(&check.to_be_bytes());
        assert!(slow_l4_ok(src, dst, proto, segment));
    }

    fn addrs(v6: bool, a: [u8; 16], b: [u8; 16]) -> (IpAddr, IpAddr) {
        if v6 {
            (Ipv6Addr::from(a).into(), Ipv6Addr::from(b).into())
        } else {
            let v4 = |x: [u8; 16]| IpAddr::from(Ipv4Addr::new(x[0], x[1], x[2], x[3]));
            (v4(a), v4(b))
        }
    }

    /// Bytes that are mostly random, or runs of 0x00 and 0xff (sums of zero, and the most carries).
    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..max),
            (0..max, prop_oneof![Just(0u8), Just(0xffu8)]).prop_map(|(n, b)| vec![b; n]),
            prop::collection::vec(prop_oneof![Just(0u8), Just(0xffu8), any::<u8>()], 0..max),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The wide sum folds to exactly what the 16-bit oracle folds to, at any start alignment
        /// and for any running total carried in (up to the largest a caller can pass).
        #[test]
        fn wide_sum_folds_as_the_16_bit_oracle(
            buf in bytes(2008),
            start in 0usize..8,
            acc in prop_oneof![Just(0u64), 0u64..0x20_0000, Just(u64::MAX - 1)],
        ) {
            let slice = &buf[start.min(buf.len())..];
            let fast = sum(acc, slice);
            // `acc` is a native-order running total; the oracle takes it big-endian and folded
            // (it cannot carry a total near 2^64).
            let slow = slow_sum(u64::from(fold_be(acc)), slice);
            prop_assert_eq!(fold_be(fast), fold(slow));
            prop_assert_eq!(fold(sum(0, slice)) == 0xffff, fold(slow_sum(0, slice)) == 0xffff);
            // The portable loop, which the vector one replaces on long inputs where it can.
            prop_assert_eq!(fold(sum_scalar(acc, slice)), fold(fast));
        }

        /// The whole TCP/UDP verdict, pseudo-header included, matches the oracle's on random
        /// segments (nearly all wrong) and on the same segments with their checksum made right.
        #[test]
        fn l4_verdict_matches_the_oracle(
            seg in bytes(2000),
            start in 0usize..8,
            v6 in any::<bool>(),
            tcp in any::<bool>(),
            a in any::<[u8; 16]>(),
            b in any::<[u8; 16]>(),
        ) {
            let (src, dst) = addrs(v6, a, b);
            let proto = if tcp { 6 } else { 17 };
            let mut buf = vec![0u8; start];
            buf.extend_from_slice(&seg);
            buf.resize(buf.len().max(start + 20), 0);
            prop_assert_eq!(l4_ok(src, dst, proto, &buf[start..]), slow_l4_ok(src, dst, proto, &buf[start..]));
            fix_checksum(src, dst, proto, &mut buf[start..]);
            prop_assert!(l4_ok(src, dst, proto, &buf[start..]));
            buf[start + 19] ^= 0x40;
            prop_assert_eq!(l4_ok(src, dst, proto, &buf[start..]), slow_l4_ok(src, dst, proto, &buf[start..]));
        }
    }

    #[test]
    fn every_length_of_all_ones_and_all_zeros_folds_as_the_oracle() {
        let ones = [0xffu8; 2100];
        let zeros = [0u8; 2100];
        for start in 0..8 {
            for end in start..ones.len() {
                for buf in [&ones[start..end], &zeros[start..end]] {
                    assert_eq!(fold_be(sum(0, buf)), fold(slow_sum(0, buf)), "bytes {start}..{end}");
                    assert_eq!(
                        fold_be(sum_scalar(0, buf)),
                        fold(slow_sum(0, buf)),
                        "bytes {start}..{end}"
                    );
                }
            }
        }
    }

    /// Longer than the vector loop's run of blocks, whose lanes would overflow if they were
    /// not emptied between runs: all ones is the largest word, and odd bytes shift the words.
    #[test]
    fn inputs_of_several_vector_runs_fold_as_the_oracle() {
        let mut buf = vec![0xffu8; (3 << 20) + 37];
        for (i, b) in buf.iter_mut().enumerate().step_by(4099) {
            *b = i as u8;
        }
        for start in [0, 1, 32] {
            assert_eq!(
                fold_be(sum(0, &buf[start..])),
                fold(slow_sum(0, &buf[start..])),
                "from {start}"
            );
        }
    }

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
