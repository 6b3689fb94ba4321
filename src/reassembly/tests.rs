use super::*;
use proptest::prelude::*;
use std::time::Duration;

/// What a sink saw, with adjacent data and adjacent gaps merged (segmentation is not semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Data(Vec<u8>),
    Gap(u64),
}

#[derive(Debug, Default)]
struct Rec {
    evs: Vec<Ev>,
    /// Offsets reported through `overlap_conflict`.
    conflicts: Vec<u64>,
}

impl StreamSink for Rec {
    fn data(&mut self, bytes: &[u8]) {
        assert!(!bytes.is_empty(), "empty data callback");
        match self.evs.last_mut() {
            Some(Ev::Data(d)) => d.extend_from_slice(bytes),
            _ => self.evs.push(Ev::Data(bytes.to_vec())),
        }
    }
    fn gap(&mut self, missing: u64) {
        assert!(missing > 0, "empty gap");
        match self.evs.last_mut() {
            Some(Ev::Gap(g)) => *g += missing,
            _ => self.evs.push(Ev::Gap(missing)),
        }
    }
    fn overlap_conflict(&mut self, at: u64) {
        self.conflicts.push(at);
    }
}

impl Rec {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.evs {
            if let Ev::Data(d) = e {
                out.extend_from_slice(d);
            }
        }
        out
    }
    fn gaps(&self) -> Vec<u64> {
        self.evs
            .iter()
            .filter_map(|e| if let Ev::Gap(g) = e { Some(*g) } else { None })
            .collect()
    }
}

fn h(seq: u32) -> TcpHeader {
    TcpHeader {
        seq,
        ack_num: 0,
        syn: false,
        ack: true,
        fin: false,
        rst: false,
    }
}
fn syn(isn: u32) -> TcpHeader {
    TcpHeader {
        syn: true,
        ack: false,
        ..h(isn)
    }
}
fn fin(seq: u32) -> TcpHeader {
    TcpHeader { fin: true, ..h(seq) }
}
fn rst(seq: u32) -> TcpHeader {
    TcpHeader { rst: true, ..h(seq) }
}
fn at(ms: u64) -> Timestamp {
    Timestamp::from_micros(ms * 1000)
}

fn big() -> ReassemblyConfig {
    ReassemblyConfig {
        max_ooo_bytes_per_stream: 1 << 20,
        max_ooo_segments_per_stream: 1 << 10,
        gap_timeout: Duration::from_secs(3600),
        overlap_policy: OverlapPolicy::First,
    }
}

/// One reassembler, one stream, one recording sink.
struct H {
    r: Reassembler,
    s: TcpStream,
    out: Rec,
}

impl H {
    fn new(cfg: ReassemblyConfig, memcap: usize) -> H {
        H {
            r: Reassembler::new(cfg, memcap),
            s: TcpStream::default(),
            out: Rec::default(),
        }
    }
    fn big() -> H {
        H::new(big(), 1 << 24)
    }
    fn seg(&mut self, hdr: TcpHeader, data: &[u8]) -> &mut Self {
        self.seg_at(hdr, data, 0)
    }
    fn seg_at(&mut self, hdr: TcpHeader, data: &[u8], ms: u64) -> &mut Self {
        self.r.segment(&mut self.s, &hdr, data, at(ms), &mut self.out);
        assert_eq!(
            self.r.held_bytes(),
            self.s.held_bytes(),
            "budget != stream's held bytes"
        );
        self
    }
    fn finish(&mut self) -> &mut Self {
        self.r.finish(&mut self.s, &mut self.out);
        assert_eq!(self.r.held_bytes(), 0);
        assert_eq!(self.s.held_bytes(), 0);
        self
    }
    fn c(&self) -> &ReassemblyCounters {
        self.r.counters()
    }
}

const ISN: u32 = 1000;

#[test]
fn idle_stream_is_small() {
    assert!(
        std::mem::size_of::<TcpStream>() <= 40,
        "{}",
        std::mem::size_of::<TcpStream>()
    );
}

#[test]
fn in_order_goes_straight_through() {
    let mut t = H::big();
    t.seg(syn(ISN), b"")
        .seg(h(ISN + 1), b"hello ")
        .seg(h(ISN + 7), b"world");
    assert_eq!(t.out.evs, vec![Ev::Data(b"hello world".to_vec())]);
    assert_eq!(t.r.held_bytes(), 0);
    assert_eq!(t.s.offset(), 11);
    t.finish();
}

#[test]
fn reverse_order() {
    let mut t = H::big();
    t.seg(syn(ISN), b"");
    t.seg(h(ISN + 7), b"ghi").seg(h(ISN + 4), b"def");
    assert!(t.out.evs.is_empty());
    assert_eq!(t.r.held_bytes(), 6);
    t.seg(h(ISN + 1), b"abc");
    assert_eq!(t.out.evs, vec![Ev::Data(b"abcdefghi".to_vec())]);
    assert_eq!(t.r.held_bytes(), 0);
    assert_eq!(t.c().gaps, 0);
    t.finish();
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

#[test]
fn every_permutation_of_four_segments() {
    let segs: [(u32, &[u8]); 4] = [(0, b"ab"), (2, b"cde"), (5, b"f"), (6, b"ghij")];
    let perms = permutations(4);
    assert_eq!(perms.len(), 24);
    for p in perms {
        for dup_first in [false, true] {
            let mut t = H::big();
            t.seg(syn(ISN), b"");
            for (k, &i) in p.iter().enumerate() {
                let (off, d) = segs[i];
                t.seg(h(ISN + 1 + off), d);
                if dup_first && k == 0 {
                    t.seg(h(ISN + 1 + off), d);
                }
            }
            assert_eq!(t.out.evs, vec![Ev::Data(b"abcdefghij".to_vec())], "order {p:?}");
            let dup = if dup_first { segs[p[0]].1.len() as u64 } else { 0 };
            assert_eq!(t.c().duplicate_bytes, dup, "order {p:?}");
            assert_eq!(t.c().overlap_conflicts, 0);
            t.finish();
        }
    }
}

#[test]
fn duplicates_are_dropped_and_counted() {
    let mut t = H::big();
    t.seg(syn(ISN), b"")
        .seg(h(ISN + 1), b"abcd")
        .seg(h(ISN + 1), b"abcd")
        .seg(h(ISN + 3), b"cdef");
    assert_eq!(t.out.bytes(), b"abcdef");
    assert_eq!(t.c().duplicate_bytes, 4 + 2);
    // A duplicate of held out-of-order bytes.
    t.seg(h(ISN + 10), b"jk").seg(h(ISN + 10), b"jk");
    assert_eq!(t.c().duplicate_bytes, 8);
    assert_eq!(t.r.held_bytes(), 2);
    t.seg(h(ISN + 7), b"ghi");
    assert_eq!(t.out.evs, vec![Ev::Data(b"abcdefghijk".to_vec())]);
    assert_eq!(t.c().overlap_conflicts, 0);
    t.finish();
}

#[test]
fn overlapping_retransmission_with_same_bytes() {
    let mut t = H::big();
    t.seg(syn(ISN), b"");
    t.seg(h(ISN + 1 + 4), b"efgh"); // held 4..8
    t.seg(h(ISN + 1 + 10), b"kl"); // held 10..12
    t.seg(h(ISN + 1), b"abcdefghijklmn"); // covers both
    assert_eq!(t.out.evs, vec![Ev::Data(b"abcdefghijklmn".to_vec())]);
    assert_eq!(t.c().duplicate_bytes, 6);
    assert_eq!(t.c().overlap_conflicts, 0);
    assert_eq!(t.r.held_bytes(), 0);
    t.finish();
}

#[test]
fn overlapping_retransmission_with_conflicting_bytes_first_wins() {
    let mut t = H::big();
    t.seg(syn(ISN), b"");
    t.seg(h(ISN + 1 + 4), b"EFGH");
    t.seg(h(ISN + 1 + 6), b"xxyy"); // overlaps "GH" with "xx": conflict; "yy" is new
    assert_eq!(t.c().overlap_conflicts, 1);
    assert_eq!(t.r.held_bytes(), 6);
    t.seg(h(ISN + 1), b"abcdefghij"); // conflicts with the held run 4..10
    assert_eq!(t.out.evs, vec![Ev::Data(b"abcdEFGHyy".to_vec())]);
    assert_eq!(t.c().overlap_conflicts, 2);
    assert_eq!(t.c().duplicate_bytes, 2 + 6);
    // Delivered bytes are not kept: a conflicting copy of them is only a duplicate.
    t.seg(h(ISN + 1), b"ZZZZ");
    assert_eq!(t.c().overlap_conflicts, 2);
    assert_eq!(t.c().duplicate_bytes, 12);
    // The sink heard of each conflicting segment once, at its first differing byte.
    assert_eq!(t.out.conflicts, vec![6, 4]);
    t.finish();
}

#[test]
fn overlapping_retransmission_with_conflicting_bytes_last_wins() {
    let cfg = ReassemblyConfig {
        overlap_policy: OverlapPolicy::Last,
        ..big()
    };
    let mut t = H::new(cfg, 1 << 20);
    t.seg(syn(ISN), b"");
    t.seg(h(ISN + 1 + 4), b"EFGH");
    t.seg(h(ISN + 1 + 6), b"xxyy"); // "xx" replaces the held "GH"
    assert_eq!(t.c().overlap_conflicts, 1);
    assert_eq!(t.r.held_bytes(), 6);
    t.seg(h(ISN + 1 + 4), b"EFxx"); // same as held now: no conflict
    assert_eq!(t.c().overlap_conflicts, 1);
    t.seg(h(ISN + 1), b"abcdefgh"); // replaces 4..8 once more, then delivers
    assert_eq!(t.out.evs, vec![Ev::Data(b"abcdefghyy".to_vec())]);
    assert_eq!(t.c().overlap_conflicts, 2);
    assert_eq!(t.out.conflicts, vec![6, 4]);
    // Delivered bytes are gone: a later copy cannot replace them.
    t.seg(h(ISN + 1), b"ZZZZ");
    assert_eq!(t.c().overlap_conflicts, 2);
    t.finish();
}

#[test]
fn overlap_policy_parses_its_two_names_only() {
    assert_eq!("first".parse(), Ok(OverlapPolicy::First));
    assert_eq!("last".parse(), Ok(OverlapPolicy::Last));
    let err = "windows".parse::<OverlapPolicy>().unwrap_err();
    assert!(err.contains("first, last"), "{err}");
}

#[test]
fn sequence_wrap_at_2_pow_32() {
    let isn = u32::MAX - 3; // data starts at MAX-2 and wraps after 3 bytes
    let mut t = H::big();
    t.seg(syn(isn), b"");
    t.seg(h(2), b"fgh"); // offset 5
    t.seg(h(0), b"de"); // offset 3
    t.seg(h(isn.wrapping_add(1)), b"abc");
    t.seg(h(isn.wrapping_add(1)), b"abc"); // duplicate from before the wrap
    assert_eq!(t.out.evs, vec![Ev::Data(b"abcdefgh".to_vec())]);
    assert_eq!(t.c().duplicate_bytes, 3);
    t.seg(fin(5), b"");
    assert!(t.s.is_closed());
    t.finish();
}

/// Counts bytes and gaps only.
#[derive(Default)]
struct Count {
    bytes: u64,
    gaps: u64,
}

impl StreamSink for Count {
    fn data(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
    }
    fn gap(&mut self, missing: u64) {
        self.gaps += missing;
    }
}

#[test]
fn long_stream_wraps_many_times() {
    let mut r = Reassembler::new(big(), 1 << 24);
    let mut s = TcpStream::default();
    let mut out = Count::default();
    r.segment(&mut s, &syn(7), b"", at(0), &mut out);
    let chunk = vec![b'x'; 1 << 20];
    let mut seq = 8u32;
    for _ in 0..(9 * 1024) {
        r.segment(&mut s, &h(seq), &chunk, at(0), &mut out);
        seq = seq.wrapping_add(chunk.len() as u32);
    }
    assert_eq!(s.offset(), 9 << 30);
    // Out of order after two wraps still lands at the right offset.
    r.segment(&mut s, &h(seq.wrapping_add(10)), b"later", at(0), &mut out);
    r.segment(&mut s, &h(seq.wrapping_sub(10)), b"old", at(0), &mut out);
    assert_eq!(r.counters().duplicate_bytes, 3);
    r.segment(&mut s, &h(seq), b"0123456789", at(0), &mut out);
    assert_eq!((out.bytes, out.gaps), ((9 << 30) + 15, 0));
    r.finish(&mut s, &mut out);
}

#[test]
fn midstream_pickup() {
    let mut t = H::big();
    t.seg(h(5000), b""); // a bare ACK does not start the stream
    t.seg(h(5000), b"middle ");
    t.seg(h(4990), b"0123456789"); // before the pickup point
    t.seg(h(5014), b"end");
    t.seg(h(5007), b"of ");
    t.seg(h(5010), b"the en"); // overlaps the held "end"
    assert_eq!(t.out.evs, vec![Ev::Data(b"middle of the end".to_vec())]);
    assert_eq!(t.c().duplicate_bytes, 10 + 2);
    t.finish();
}

#[test]
fn syn_with_data_and_retransmitted_syn() {
    let mut t = H::big();
    t.seg(syn(ISN), b"GET /"); // TCP Fast Open
    t.seg(h(ISN + 6), b" HTTP/1.1");
    t.seg(syn(ISN), b"GET /"); // retransmitted SYN: duplicate
    t.seg(syn(77), b"other"); // another ISN: ignored
    assert_eq!(t.out.evs, vec![Ev::Data(b"GET / HTTP/1.1".to_vec())]);
    assert_eq!(t.c().duplicate_bytes, 5);
    t.finish();
}

#[test]
fn fin_after_out_of_order_data() {
    let mut t = H::big();
    t.seg(syn(ISN), b"");
    t.seg(fin(ISN + 1 + 6), b"tail"); // FIN segment first
    t.seg(h(ISN + 1 + 3), b"def");
    assert!(!t.s.is_closed());
    t.seg(h(ISN + 1 + 20), b"late"); // beyond the FIN: not part of the stream
    assert_eq!(t.r.held_bytes(), 7);
    t.seg(h(ISN + 1), b"abc");
    assert_eq!(t.out.evs, vec![Ev::Data(b"abcdeftail".to_vec())]);
    assert!(t.s.is_closed());
    t.seg(h(ISN + 1), b"abc"); // retransmission after close
    assert_eq!(t.c().duplicate_bytes, 3);
    t.finish();
    assert_eq!(t.out.evs, vec![Ev::Data(b"abcdeftail".to_vec())]);
}

#[test]
fn fin_in_order_closes() {
    let mut t = H::big();
    t.seg(syn(ISN), b"").seg(fin(ISN + 1), b"bye");
    assert!(t.s.is_closed());
    t.finish();
}

#[test]
fn rst_delivers_held_with_gaps_and_closes() {
    let mut t = H::big();
    t.seg(syn(ISN), b"").seg(h(ISN + 1), b"ab");
    t.seg(h(ISN + 1 + 5), b"fg").seg(h(ISN + 1 + 10), b"k");
    t.seg(rst(ISN + 1 + 11), b"ignored");
    assert!(t.s.is_closed());
    assert_eq!(t.r.held_bytes(), 0);
    assert_eq!(
        t.out.evs,
        vec![
            Ev::Data(b"ab".to_vec()),
            Ev::Gap(3),
            Ev::Data(b"fg".to_vec()),
            Ev::Gap(3),
            Ev::Data(b"k".to_vec())
        ]
    );
    assert_eq!((t.c().gaps, t.c().gap_bytes), (2, 6));
    t.seg(h(ISN + 1 + 2), b"cde"); // nothing after RST
    assert_eq!(t.out.bytes(), b"abfgk");
    t.finish();
}

#[test]
fn gap_skipped_by_peer_ack() {
    let mut t = H::big();
    t.seg(syn(ISN), b"").seg(h(ISN + 1), b"ab").seg(h(ISN + 1 + 4), b"ef");
    // An ACK inside the hole, or beyond data never seen, skips nothing.
    t.r.peer_ack(&mut t.s, ISN + 1 + 3, at(0), &mut t.out);
    assert_eq!(t.c().gaps, 0);
    t.r.peer_ack(&mut t.s, ISN + 1 + 4, at(0), &mut t.out);
    assert_eq!(
        t.out.evs,
        vec![Ev::Data(b"ab".to_vec()), Ev::Gap(2), Ev::Data(b"ef".to_vec())]
    );
    assert_eq!(t.r.held_bytes(), 0);
    t.r.peer_ack(&mut t.s, ISN + 1 + 100, at(0), &mut t.out);
    assert_eq!((t.c().gaps, t.c().gap_bytes), (1, 2));
    t.seg(h(ISN + 1 + 2), b"cd"); // the lost bytes show up late: duplicates
    assert_eq!(t.c().duplicate_bytes, 2);
    t.finish();
}

#[test]
fn gap_before_fin_skipped_by_peer_ack() {
    let mut t = H::big();
    t.seg(syn(ISN), b"").seg(h(ISN + 1), b"ab").seg(fin(ISN + 1 + 4), b"");
    assert!(!t.s.is_closed());
    t.r.peer_ack(&mut t.s, ISN + 1 + 5, at(0), &mut t.out);
    assert!(t.s.is_closed());
    assert_eq!(t.out.evs, vec![Ev::Data(b"ab".to_vec()), Ev::Gap(2)]);
    t.finish();
}

#[test]
fn gap_skipped_by_timeout() {
    let cfg = ReassemblyConfig {
        gap_timeout: Duration::from_secs(2),
        ..big()
    };
    let mut t = H::new(cfg, 1 << 20);
    t.seg_at(syn(ISN), b"", 0).seg_at(h(ISN + 1), b"ab", 0);
    t.seg_at(h(ISN + 1 + 4), b"ef", 1000);
    t.seg_at(h(ISN + 1 + 8), b"ij", 2500);
    t.seg_at(h(ISN + 1 + 12), b"m", 3000); // the hole at 2..4 is exactly 2 s old: kept
    assert_eq!(t.c().gaps, 0);
    t.seg_at(h(ISN + 1 + 14), b"o", 3001);
    // 2..4 opened at 1000 ms, skipped; 6..8 opened at 2500 ms, kept.
    assert_eq!(
        t.out.evs,
        vec![Ev::Data(b"ab".to_vec()), Ev::Gap(2), Ev::Data(b"ef".to_vec())]
    );
    assert_eq!(t.r.held_bytes(), 4);
    // A quiet stream: the flow table's sweep expires it.
    t.r.expire(&mut t.s, at(10_000), &mut t.out);
    assert_eq!(t.out.bytes(), b"abefijmo");
    assert_eq!(t.out.gaps(), vec![2, 2, 2, 1]);
    assert_eq!(t.r.held_bytes(), 0);
    t.finish();
}

#[test]
fn late_filler_beats_timeout_in_same_call() {
    let cfg = ReassemblyConfig {
        gap_timeout: Duration::from_secs(1),
        ..big()
    };
    let mut t = H::new(cfg, 1 << 20);
    t.seg_at(syn(ISN), b"", 0).seg_at(h(ISN + 1 + 2), b"cd", 0);
    t.seg_at(h(ISN + 1), b"ab", 5000); // the filler arrives late but before anything skipped it
    assert_eq!(t.out.evs, vec![Ev::Data(b"abcd".to_vec())]);
    t.finish();
}

#[test]
fn gap_skipped_by_per_stream_byte_cap() {
    let cfg = ReassemblyConfig {
        max_ooo_bytes_per_stream: 4,
        ..big()
    };
    let mut t = H::new(cfg, 1 << 20);
    t.seg(syn(ISN), b"")
        .seg(h(ISN + 1 + 2), b"cd")
        .seg(h(ISN + 1 + 6), b"gh");
    assert_eq!(t.r.held_bytes(), 4);
    t.seg(h(ISN + 1 + 10), b"k"); // would hold 5
    assert_eq!(t.out.evs, vec![Ev::Gap(2), Ev::Data(b"cd".to_vec())]);
    assert_eq!(t.r.held_bytes(), 3);
    // A segment bigger than the cap on its own: the hole before it is skipped.
    t.seg(h(ISN + 1 + 20), b"uvwxyz");
    assert_eq!(t.out.bytes(), b"cdghkuvwxyz");
    assert_eq!(t.out.gaps(), vec![2, 2, 2, 9]);
    assert_eq!(t.c().segments_dropped, 0);
    t.finish();
}

#[test]
fn gap_skipped_by_per_stream_segment_cap() {
    let cfg = ReassemblyConfig {
        max_ooo_segments_per_stream: 2,
        ..big()
    };
    let mut t = H::new(cfg, 1 << 20);
    t.seg(syn(ISN), b"");
    t.seg(h(ISN + 1 + 2), b"c").seg(h(ISN + 1 + 3), b"d"); // adjacent: one run
    t.seg(h(ISN + 1 + 6), b"g");
    assert_eq!(t.c().gaps, 0);
    t.seg(h(ISN + 1 + 9), b"j"); // a third run
    assert_eq!(t.out.evs, vec![Ev::Gap(2), Ev::Data(b"cd".to_vec())]);
    assert_eq!(t.s.held_bytes(), 2);
    t.seg(h(ISN + 1 + 7), b"hi"); // fills between two runs: merges them
    t.seg(h(ISN + 1 + 12), b"m");
    assert_eq!(t.c().gaps, 1);
    t.finish();
    assert_eq!(t.out.bytes(), b"cdghijm");
}

#[test]
fn memcap_skips_own_hole_then_drops() {
    let mut r = Reassembler::new(big(), 6);
    let (mut a, mut b) = (TcpStream::default(), TcpStream::default());
    let (mut oa, mut ob) = (Rec::default(), Rec::default());
    r.segment(&mut a, &syn(ISN), b"", at(0), &mut oa);
    r.segment(&mut b, &syn(ISN), b"", at(0), &mut ob);
    r.segment(&mut a, &h(ISN + 1 + 2), b"cdef", at(0), &mut oa);
    assert_eq!(r.held_bytes(), 4);
    // b holds nothing of its own to give: its out-of-order segment is dropped.
    r.segment(&mut b, &h(ISN + 1 + 5), b"fgh", at(0), &mut ob);
    assert_eq!(r.counters().segments_dropped, 1);
    assert_eq!(b.held_bytes(), 0);
    // A fitting one is held.
    r.segment(&mut b, &h(ISN + 1 + 5), b"fg", at(0), &mut ob);
    assert_eq!(r.held_bytes(), 6);
    assert_eq!(r.held_bytes(), a.held_bytes() + b.held_bytes());
    // a needs more: its own hole is skipped to make room.
    r.segment(&mut a, &h(ISN + 1 + 8), b"ij", at(0), &mut oa);
    assert_eq!(oa.evs, vec![Ev::Gap(2), Ev::Data(b"cdef".to_vec())]);
    assert_eq!(r.held_bytes(), 4);
    assert_eq!(r.held_bytes(), a.held_bytes() + b.held_bytes());
    // In-order bytes always pass, whatever the budget.
    r.segment(&mut b, &h(ISN + 1), b"abcde", at(0), &mut ob);
    assert_eq!(ob.evs, vec![Ev::Data(b"abcdefg".to_vec())]);
    r.finish(&mut a, &mut oa);
    r.finish(&mut b, &mut ob);
    assert_eq!(r.held_bytes(), 0);
    assert_eq!(r.counters().segments_dropped, 1);
}

#[test]
fn finish_delivers_held_with_gaps_and_returns_budget() {
    let mut t = H::big();
    t.seg(syn(ISN), b"")
        .seg(h(ISN + 1 + 3), b"d")
        .seg(h(ISN + 1 + 6), b"gh");
    t.seg(fin(ISN + 1 + 12), b"");
    assert_eq!(t.r.held_bytes(), 3);
    t.finish();
    assert!(t.s.is_closed());
    assert_eq!(
        t.out.evs,
        vec![
            Ev::Gap(3),
            Ev::Data(b"d".to_vec()),
            Ev::Gap(2),
            Ev::Data(b"gh".to_vec()),
            Ev::Gap(4)
        ]
    );
    t.finish(); // idempotent
    assert_eq!(t.out.evs.len(), 5);
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "without Reassembler::finish")]
fn dropping_a_stream_that_holds_bytes_is_caught() {
    let mut r = Reassembler::new(big(), 100);
    let mut s = TcpStream::default();
    let mut o = Rec::default();
    r.segment(&mut s, &syn(ISN), b"", at(0), &mut o);
    r.segment(&mut s, &h(ISN + 5), b"x", at(0), &mut o);
    drop(s);
}

// ---- oracle tests --------------------------------------------------------------------------

/// A byte string and a cover of it by segments `(offset, len)`, in a random order with some
/// repeated. Segments may overlap (retransmissions cut differently).
fn stream_and_segments() -> impl Strategy<Value = (Vec<u8>, Vec<(usize, usize)>, u32)> {
    (1usize..400, prop_oneof![any::<u32>(), (u32::MAX - 500)..=u32::MAX]).prop_flat_map(|(n, isn)| {
        let data = proptest::collection::vec(any::<u8>(), n);
        let cuts = proptest::collection::vec(1usize..n.max(2), 0..12);
        let extra = proptest::collection::vec((0..n, 1usize..64), 0..6);
        (data, cuts, extra, Just(isn), any::<u64>()).prop_map(move |(data, mut cuts, extra, isn, seed)| {
            cuts.push(0);
            cuts.push(n);
            cuts.sort_unstable();
            cuts.dedup();
            let mut segs: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1] - w[0])).collect();
            for (o, l) in extra {
                segs.push((o, l.min(n - o)));
            }
            shuffle(&mut segs, seed);
            (data, segs, isn)
        })
    })
}

fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        v.swap(i, (seed >> 33) as usize % (i + 1));
    }
}

/// The events a correct reassembler must produce when only the offsets in `got` were seen,
/// and the stream's length is known if `fin_known`.
fn model(data: &[u8], got: &[bool], fin_known: bool) -> Vec<Ev> {
    let mut rec = Rec::default();
    let last = if fin_known {
        data.len()
    } else {
        got.iter().rposition(|&g| g).map_or(0, |i| i + 1)
    };
    for i in 0..last {
        if got[i] {
            rec.data(&data[i..=i]);
        } else {
            rec.gap(1);
        }
    }
    rec.evs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any split, order and duplication of a stream gives back exactly the stream.
    #[test]
    fn any_order_gives_back_the_stream((data, segs, isn) in stream_and_segments(), fin_last in any::<bool>()) {
        let mut t = H::big();
        t.seg(syn(isn), b"");
        let base = isn.wrapping_add(1);
        for &(o, l) in &segs {
            let hdr = if fin_last && o + l == data.len() { fin(base.wrapping_add(o as u32)) } else { h(base.wrapping_add(o as u32)) };
            t.seg(hdr, &data[o..o + l]);
        }
        prop_assert_eq!(&t.out.evs, &vec![Ev::Data(data.clone())]);
        prop_assert_eq!(t.r.held_bytes(), 0);
        prop_assert_eq!(t.s.is_closed(), fin_last);
        prop_assert_eq!(t.c().overlap_conflicts, 0);
        let sent: usize = segs.iter().map(|s| s.1).sum();
        prop_assert_eq!(t.c().duplicate_bytes, (sent - data.len()) as u64);
        t.finish();
        prop_assert_eq!(&t.out.evs, &vec![Ev::Data(data)]);
    }

    /// With random segments lost, finish reports exactly the model's bytes and gap lengths.
    #[test]
    fn drops_match_the_bitmap_model((data, segs, isn) in stream_and_segments(), keep in proptest::collection::vec(proptest::bool::weighted(0.7), 24)) {
        let mut t = H::big();
        t.seg(syn(isn), b"");
        let base = isn.wrapping_add(1);
        let mut got = vec![false; data.len()];
        let mut fin_known = false;
        for (k, &(o, l)) in segs.iter().enumerate() {
            if !keep[k % keep.len()] {
                continue;
            }
            let is_fin = o + l == data.len();
            fin_known |= is_fin;
            let hdr = if is_fin { fin(base.wrapping_add(o as u32)) } else { h(base.wrapping_add(o as u32)) };
            t.seg(hdr, &data[o..o + l]);
            got[o..o + l].iter_mut().for_each(|g| *g = true);
        }
        t.finish();
        let want = model(&data, &got, fin_known);
        prop_assert_eq!(&t.out.evs, &want);
        let gap_bytes: u64 = t.out.gaps().iter().sum();
        prop_assert_eq!(t.c().gap_bytes, gap_bytes);
        prop_assert!(t.s.is_closed());
    }

    /// Under random caps, timeouts, ACKs and a memcap shared by two streams: every delivered byte is
    /// the right byte at its position, the budget is the sum of the streams' holdings and never
    /// above the memcap, and it returns to zero.
    #[test]
    fn caps_never_corrupt_or_leak(
        (data, segs, isn) in stream_and_segments(),
        max_bytes in 0usize..64,
        max_segs in 0usize..5,
        memcap in 0usize..96,
        timeout_ms in 1u64..50,
        acks in proptest::collection::vec(any::<bool>(), 24),
    ) {
        let cfg = ReassemblyConfig { max_ooo_bytes_per_stream: max_bytes, max_ooo_segments_per_stream: max_segs, gap_timeout: Duration::from_millis(timeout_ms), overlap_policy: OverlapPolicy::First };
        let mut r = Reassembler::new(cfg, memcap);
        let mut streams = [TcpStream::default(), TcpStream::default()];
        let mut outs = [Rec::default(), Rec::default()];
        let base = isn.wrapping_add(1);
        for s in 0..2 {
            r.segment(&mut streams[s], &syn(isn), b"", at(0), &mut outs[s]);
        }
        let mut max_end = 0;
        for (k, &(o, l)) in segs.iter().enumerate() {
            let s = k % 2;
            let now = at(k as u64 * 7);
            r.segment(&mut streams[s], &h(base.wrapping_add(o as u32)), &data[o..o + l], now, &mut outs[s]);
            max_end = max_end.max(o + l);
            if acks[k % acks.len()] {
                r.peer_ack(&mut streams[s], base.wrapping_add(max_end as u32), now, &mut outs[s]);
            }
            prop_assert_eq!(r.held_bytes(), streams[0].held_bytes() + streams[1].held_bytes());
            prop_assert!(r.held_bytes() <= memcap);
            prop_assert!(streams[s].held_bytes() <= max_bytes);
        }
        for s in 0..2 {
            r.finish(&mut streams[s], &mut outs[s]);
            let mut pos = 0usize;
            for e in &outs[s].evs {
                match e {
                    Ev::Gap(g) => pos += *g as usize,
                    Ev::Data(d) => {
                        prop_assert_eq!(&data[pos..pos + d.len()], &d[..]);
                        pos += d.len();
                    }
                }
            }
            prop_assert_eq!(pos as u64, streams[s].offset());
        }
        prop_assert_eq!(r.held_bytes(), 0);
        let gap_bytes: u64 = outs.iter().flat_map(|o| o.gaps()).sum();
        prop_assert_eq!(r.counters().gap_bytes, gap_bytes);
    }
}

#[test]
fn merged_runs_keep_the_older_arrival_time() {
    let cfg = ReassemblyConfig {
        gap_timeout: Duration::from_secs(2),
        ..big()
    };
    let mut t = H::new(cfg, 1 << 20);
    t.seg_at(syn(ISN), b"", 0);
    t.seg_at(h(ISN + 1 + 10), b"kl", 0); // the hole before offset 10 opened at 0 ms
    t.seg_at(h(ISN + 1 + 2), b"c", 1000);
    t.seg_at(h(ISN + 1 + 4), b"ef", 1000);
    t.seg_at(h(ISN + 1 + 6), b"ghij", 1000); // merges 4..6 with 10..12
    t.seg_at(h(ISN + 1), b"ab", 1000); // delivers 0..3; the hole 3..4 remains
    assert_eq!(t.out.evs, vec![Ev::Data(b"abc".to_vec())]);
    t.r.expire(&mut t.s, at(2500), &mut t.out);
    assert_eq!(
        t.out.evs,
        vec![Ev::Data(b"abc".to_vec()), Ev::Gap(1), Ev::Data(b"efghijkl".to_vec())]
    );
    t.finish();
}

#[test]
fn fin_drops_held_bytes_beyond_it() {
    let mut t = H::big();
    t.seg(syn(ISN), b"")
        .seg(h(ISN + 1 + 4), b"efgh")
        .seg(h(ISN + 1 + 20), b"uv");
    assert_eq!(t.r.held_bytes(), 6);
    t.seg(fin(ISN + 1 + 6), b""); // the stream ends at 6: "gh" and "uv" are not part of it
    assert_eq!(t.r.held_bytes(), 2);
    t.seg(h(ISN + 1), b"abcd");
    assert_eq!(t.out.evs, vec![Ev::Data(b"abcdef".to_vec())]);
    assert!(t.s.is_closed());
    t.finish();
}
