//! IPv4 and IPv6 fragment reassembly with hard bounds.
//!
//! Design constraints:
//! * **Bounded memory.** Bytes held (payload buffers plus [`DATAGRAM_OVERHEAD`] per datagram) never
//!   exceed `memcap`. When a fragment would, the *oldest* incomplete datagrams are dropped first: a
//!   flood of never-completed fragments must not blind the sensor to new datagrams, and legitimate
//!   datagrams complete within milliseconds, so the oldest are the likeliest junk.
//! * **Bounded work.** At most [`MAX_FRAGMENTS_PER_DATAGRAM`] fragments (duplicates included) per
//!   datagram; each costs O(fragments) to place. Expiry is lazy and O(1) per packet: the table keeps
//!   insertion order, which is first-fragment order, so only its front is ever examined.
//! * **First seen wins.** Bytes already held are never overwritten; an overlap that disagrees is
//!   counted as a conflict (a classic IDS-evasion trick). A later fragment that contradicts the
//!   known end of the datagram is dropped and counted too.
//! * **Packet time.** The timeout runs on capture timestamps, from the datagram's first fragment.
//!
//! Keys: IPv4 (src, dst, protocol, id), IPv6 (src, dst, id) as in RFC 8200. VLANs are not part of
//! the key.

use super::{DefragConfig, Skip};
use crate::clock::Timestamp;
use hashlink::LinkedHashMap;
use std::time::Duration;

/// Most fragments (duplicates included) accepted for one datagram before it is dropped. A 64 KiB
/// datagram over a 576-byte MTU path needs 117.
pub const MAX_FRAGMENTS_PER_DATAGRAM: u32 = 128;
/// Largest reassembled datagram: 65535 bytes (IPv4 total length; IPv6 payload length).
pub const MAX_DATAGRAM_LEN: u32 = 65_535;
/// Bytes charged against the memcap for each datagram besides its payload buffer (table entry,
/// header copy, range list).
const DATAGRAM_OVERHEAD: usize = 256;
/// Longest header kept: an IPv4 header with the maximum options (the IPv6 fixed header is 40).
const MAX_HEADER_LEN: usize = 60;

/// Reassembly counters (monotonic) and gauges (`held_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Datagrams completed and returned.
    pub reassembled: u64,
    /// Incomplete datagrams dropped because their timeout passed.
    pub timed_out: u64,
    /// Incomplete datagrams dropped to stay under the memcap.
    pub memcap_dropped: u64,
    /// Fragments that disagreed with bytes or an end already held (first seen was kept).
    pub conflicts: u64,
    /// Datagrams dropped for exceeding [`MAX_FRAGMENTS_PER_DATAGRAM`].
    pub too_many_fragments: u64,
    /// Fragments dropped as invalid: misaligned, empty, or beyond the largest datagram.
    pub invalid: u64,
    /// Bytes now held in incomplete datagrams (gauge).
    pub held_bytes: usize,
    /// Incomplete datagrams now held (gauge).
    pub held_datagrams: usize,
}

/// Identity of the datagram a fragment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum FragKey {
    /// IPv4: addresses, protocol, identification.
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        proto: u8,
        id: u16,
    },
    /// IPv6: addresses, fragment header identification.
    V6 { src: [u8; 16], dst: [u8; 16], id: u32 },
}

/// One fragment, as sliced by the IP layer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fragment<'a> {
    pub(super) key: FragKey,
    /// Byte offset of `payload` in the datagram's payload.
    pub(super) offset: u32,
    /// More fragments follow.
    pub(super) more: bool,
    /// The fragment's share of the datagram payload (trimmed to the IP length).
    pub(super) payload: &'a [u8],
    /// IPv4: this fragment's whole header. IPv6: the 40-byte fixed header.
    pub(super) header: &'a [u8],
    /// Protocol of the reassembled payload (IPv4 protocol; IPv6 fragment header's next header).
    pub(super) next_proto: u8,
    /// Largest payload end allowed for the reassembled datagram.
    pub(super) max_end: u32,
}

/// An incomplete datagram.
struct Datagram {
    first_seen: Timestamp,
    /// Copy of the offset-0 fragment's header; `header_len == 0` until it arrives.
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    next_proto: u8,
    /// Payload bytes; its length is the highest end seen (holes are zero until filled).
    data: Vec<u8>,
    /// Byte ranges of `data` received.
    /// Invariant: sorted, non-empty, disjoint and non-adjacent, all within `data.len()`.
    ranges: Vec<(u32, u32)>,
    /// Payload length, once the last fragment (MF clear) has been seen.
    /// Invariant: when set, equals `data.len()`.
    end: Option<u32>,
    fragments: u32,
}

impl Datagram {
    fn new(first_seen: Timestamp) -> Datagram {
        Datagram {
            first_seen,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            next_proto: 0,
            data: Vec::new(),
            ranges: Vec::new(),
            end: None,
            fragments: 0,
        }
    }

    /// Bytes charged against the memcap.
    fn held(&self) -> usize {
        DATAGRAM_OVERHEAD + self.data.len()
    }

    fn is_complete(&self) -> bool {
        matches!(self.end, Some(end) if self.header_len > 0 && self.ranges == [(0, end)])
    }

    /// Copies the parts of `payload` (at `start`) not yet held; returns whether any overlapping
    /// part disagreed with what is held. `data` must already cover the fragment.
    fn fill(&mut self, start: u32, payload: &[u8]) -> bool {
        let end = start + payload.len() as u32;
        debug_assert!(end as usize <= self.data.len());
        let mut conflict = false;
        let mut pos = start;
        let copy = |data: &mut [u8], from: u32, to: u32| {
            data[from as usize..to as usize].copy_from_slice(&payload[(from - start) as usize..(to - start) as usize]);
        };
        for &(rs, re) in &self.ranges {
            if re <= pos {
                continue;
            }
            if rs >= end {
                break;
            }
            if pos < rs {
                copy(&mut self.data, pos, rs);
            }
            let (os, oe) = (pos.max(rs), end.min(re));
            if self.data[os as usize..oe as usize] != payload[(os - start) as usize..(oe - start) as usize] {
                conflict = true;
            }
            pos = oe;
        }
        if pos < end {
            copy(&mut self.data, pos, end);
        }

        // Merge [start, end) with every range it overlaps or touches.
        if start < end {
            let (mut ms, mut me) = (start, end);
            self.ranges.retain(|&(rs, re)| {
                if re < ms || rs > me {
                    true
                } else {
                    ms = ms.min(rs);
                    me = me.max(re);
                    false
                }
            });
            let at = self.ranges.partition_point(|&(rs, _)| rs < ms);
            self.ranges.insert(at, (ms, me));
        }
        conflict
    }
}

/// The reassembly table of one decoder.
pub(super) struct Defrag {
    /// Incomplete datagrams in first-fragment order.
    table: LinkedHashMap<FragKey, Datagram>,
    /// Invariant: the sum of `held()` over `table`, and at most `memcap`.
    held: usize,
    memcap: usize,
    timeout: Duration,
    /// The last reassembled datagram (reused, so steady-state reassembly does not allocate it).
    out: Vec<u8>,
    stats: DefragStats,
}

impl Defrag {
    pub(super) fn new(cfg: DefragConfig) -> Defrag {
        Defrag {
            table: LinkedHashMap::new(),
            held: 0,
            memcap: cfg.memcap,
            timeout: cfg.timeout,
            out: Vec::new(),
            stats: DefragStats::default(),
        }
    }

    pub(super) fn stats(&self) -> DefragStats {
        DefragStats {
            held_bytes: self.held,
            held_datagrams: self.table.len(),
            ..self.stats
        }
    }

    /// Drops datagrams whose timeout has passed at `now`. O(1) when nothing expires.
    pub(super) fn expire(&mut self, now: Timestamp) {
        while let Some((_, d)) = self.table.front() {
            if now.since(d.first_seen) < self.timeout {
                break;
            }
            if let Some((_, d)) = self.table.pop_front() {
                self.release(&d);
                self.stats.timed_out += 1;
            }
        }
    }

    fn release(&mut self, d: &Datagram) {
        debug_assert!(self.held >= d.held());
        self.held -= d.held();
    }

    fn remove(&mut self, key: &FragKey) {
        if let Some(d) = self.table.remove(key) {
            self.release(&d);
        }
    }

    /// Adds a fragment. Returns the whole reassembled datagram (IP header + payload) when this
    /// fragment completed it, else why not.
    pub(super) fn add(&mut self, f: Fragment<'_>, ts: Timestamp) -> Result<&[u8], Skip> {
        let len = u32::try_from(f.payload.len()).unwrap_or(u32::MAX);
        let start = f.offset;
        let end = start.saturating_add(len);
        if end > f.max_end || (f.more && (len == 0 || len % 8 != 0)) || f.header.len() > MAX_HEADER_LEN {
            self.stats.invalid += 1;
            return Err(Skip::FragmentDropped);
        }

        self.make_room(&f.key, end as usize)?;

        let d = match self.table.entry(f.key) {
            hashlink::linked_hash_map::Entry::Occupied(e) => e.into_mut(),
            hashlink::linked_hash_map::Entry::Vacant(v) => {
                self.held += DATAGRAM_OVERHEAD;
                v.insert(Datagram::new(ts))
            }
        };
        d.fragments += 1;
        if d.fragments > MAX_FRAGMENTS_PER_DATAGRAM {
            self.stats.too_many_fragments += 1;
            self.remove(&f.key);
            return Err(Skip::FragmentDropped);
        }
        let known_end_conflict = match d.end {
            Some(e) => end > e || (!f.more && end != e),
            None => !f.more && (end as usize) < d.data.len(),
        };
        if known_end_conflict {
            self.stats.conflicts += 1;
            return Err(Skip::FragmentDropped);
        }

        if d.data.len() < end as usize {
            self.held += end as usize - d.data.len();
            d.data.resize(end as usize, 0);
        }
        if d.fill(start, f.payload) {
            self.stats.conflicts += 1;
        }
        if start == 0 && d.header_len == 0 {
            d.header[..f.header.len()].copy_from_slice(f.header);
            d.header_len = f.header.len();
            d.next_proto = f.next_proto;
        }
        if !f.more {
            d.end = Some(end);
        }
        debug_assert!(!matches!(d.end, Some(e) if e as usize != d.data.len()));
        debug_assert!(self.held <= self.memcap);

        if !d.is_complete() {
            return Err(Skip::FragmentHeld);
        }
        let d = self.table.remove(&f.key).ok_or(Skip::FragmentDropped)?;
        self.release(&d);
        if !build(&mut self.out, &f.key, &d) {
            self.stats.invalid += 1;
            return Err(Skip::FragmentDropped);
        }
        self.stats.reassembled += 1;
        Ok(&self.out)
    }

    /// Evicts the oldest datagrams until a fragment ending at `end` fits under the memcap.
    fn make_room(&mut self, key: &FragKey, end: usize) -> Result<(), Skip> {
        loop {
            let (need, current) = match self.table.get(key) {
                Some(d) => (end.saturating_sub(d.data.len()), d.held()),
                None => (DATAGRAM_OVERHEAD + end, 0),
            };
            if self.held + need <= self.memcap {
                return Ok(());
            }
            if current + need > self.memcap {
                // This datagram alone would not fit.
                if current > 0 {
                    self.remove(key);
                }
                self.stats.memcap_dropped += 1;
                return Err(Skip::FragmentDropped);
            }
            let Some((_, oldest)) = self.table.pop_front() else {
                return Err(Skip::FragmentDropped); // unreachable: held > 0 implies an entry
            };
            self.release(&oldest);
            self.stats.memcap_dropped += 1;
        }
    }
}

/// Writes the reassembled datagram into `out`; `false` if it cannot be represented.
fn build(out: &mut Vec<u8>, key: &FragKey, d: &Datagram) -> bool {
    let header = &d.header[..d.header_len];
    out.clear();
    match key {
        FragKey::V4 { .. } => {
            let Ok(total) = u16::try_from(header.len() + d.data.len()) else {
                return false;
            };
            out.extend_from_slice(header);
            out[2..4].copy_from_slice(&total.to_be_bytes());
            out[6] &= 0x40; // keep DF; clear reserved, MF and the offset
            out[7] = 0;
            out[10..12].copy_from_slice(&[0, 0]);
            let checksum = ipv4_checksum(out);
            out[10..12].copy_from_slice(&checksum.to_be_bytes());
        }
        FragKey::V6 { .. } => {
            let Ok(payload_len) = u16::try_from(d.data.len()) else {
                return false;
            };
            out.extend_from_slice(header);
            out[4..6].copy_from_slice(&payload_len.to_be_bytes());
            out[6] = d.next_proto;
        }
    }
    out.extend_from_slice(&d.data);
    true
}

/// RFC 791 header checksum (the checksum field must be zero).
pub(crate) fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    //! Reassembly checked against an obviously correct model: a byte map where the first write to
    //! each byte wins, plus the same end rules.
    use super::*;
    use proptest::prelude::*;

    const HEADER: [u8; 20] = [0x45, 0, 0, 0, 0, 1, 0x20, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];

    fn key() -> FragKey {
        FragKey::V4 {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            proto: 17,
            id: 1,
        }
    }

    /// The model of one datagram.
    #[derive(Default)]
    struct Model {
        bytes: Vec<Option<u8>>,
        end: Option<usize>,
        conflicts: u64,
    }

    impl Model {
        /// Applies a piece: `Ok(Some(payload))` when the datagram is now complete, `Ok(None)` when
        /// held, `Err(())` when the piece is rejected.
        fn add(&mut self, start: usize, data: &[u8], more: bool) -> Result<Option<Vec<u8>>, ()> {
            let end = start + data.len();
            let rejected = match self.end {
                Some(e) => end > e || (!more && end != e),
                None => !more && end < self.bytes.len(),
            };
            if rejected {
                self.conflicts += 1;
                return Err(());
            }
            if self.bytes.len() < end {
                self.bytes.resize(end, None);
            }
            let mut conflict = false;
            for (i, &b) in data.iter().enumerate() {
                match self.bytes[start + i] {
                    None => self.bytes[start + i] = Some(b),
                    Some(held) => conflict |= held != b,
                }
            }
            self.conflicts += u64::from(conflict);
            if !more {
                self.end = Some(end);
            }
            let complete = self.end.is_some() && self.bytes.iter().all(Option::is_some);
            Ok(complete.then(|| self.bytes.iter().map(|b| b.unwrap()).collect()))
        }
    }

    /// A piece: start (multiple of 8), length, whether more follow, whether it carries the
    /// alternative (conflicting) bytes.
    type Piece = (usize, usize, bool, bool);

    fn pieces(len: usize) -> impl Strategy<Value = Vec<Piece>> {
        let random =
            (0..len.div_ceil(8), 1usize..64, any::<bool>(), any::<bool>()).prop_map(move |(s8, l8, last, alt)| {
                let start = s8 * 8;
                if last {
                    let end = (start + l8).min(len);
                    (start, end - start, false, alt)
                } else {
                    let end = (start + l8 * 8).min(len / 8 * 8);
                    (start, end.saturating_sub(start), true, alt)
                }
            });
        prop::collection::vec(random, 0..24).prop_map(move |mut v| {
            v.retain(|&(_, l, more, _)| !(more && l == 0));
            // Then a clean covering in order, so the datagram can complete.
            for start in (0..len).step_by(64) {
                let end = (start + 64).min(len);
                v.push((start, end - start, end < len, false));
            }
            v
        })
    }

    proptest! {
        #[test]
        fn matches_the_first_write_wins_model(
            (len, ps) in (1usize..1500).prop_flat_map(|len| (Just(len), pieces(len))),
            rotate in any::<prop::sample::Index>(),
        ) {
            let original: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let alternative: Vec<u8> = original.iter().map(|b| !b).collect();
            let mut ps = ps;
            let r = rotate.index(ps.len());
            ps.rotate_left(r);

            let mut defrag = Defrag::new(DefragConfig { memcap: 1 << 20, timeout: Duration::from_secs(30) });
            let mut model = Model::default();
            for &(start, l, more, alt) in &ps {
                let source = if alt { &alternative } else { &original };
                let data = &source[start..start + l];
                let f = Fragment {
                    key: key(),
                    offset: start as u32,
                    more,
                    payload: data,
                    header: &HEADER,
                    next_proto: 17,
                    max_end: 65_515,
                };
                let want = model.add(start, data, more);
                let got = defrag.add(f, Timestamp::from_micros(1));
                match (want, got) {
                    (Ok(Some(payload)), Ok(whole)) => {
                        prop_assert_eq!(&whole[20..], &payload[..]);
                        prop_assert_eq!(usize::from(u16::from_be_bytes([whole[2], whole[3]])), whole.len());
                        prop_assert_eq!(ipv4_checksum(&whole[..20]), 0);
                        break;
                    }
                    (Ok(None), Err(Skip::FragmentHeld)) | (Err(()), Err(Skip::FragmentDropped)) => {}
                    (want, got) => prop_assert!(false, "model {:?} vs {:?}", want, got),
                }
                prop_assert_eq!(defrag.stats.conflicts, model.conflicts);
                let s = defrag.stats();
                prop_assert_eq!(s.held_bytes, if s.held_datagrams == 1 { DATAGRAM_OVERHEAD + model.bytes.len() } else { 0 });
            }
        }
    }
}
