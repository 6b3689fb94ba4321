//! Oracle property: however a TCP stream is cut into segments, reordered and partly
//! retransmitted, the sensor reports exactly the values planted in it — the same as scanning the
//! stream whole. Runs the real pipeline in-process on captures written with libpcap.

mod common;

use common::*;
use nigehban::synth::{self, Frame, TcpConn};
use proptest::prelude::*;

const VALUES: [&str; 6] = [
    "35202-1234567-2",
    "4532 0173 9246 5814",
    "61101-7654321-8",
    "5228-4716-3059-2747",
    "378291638457209",
    "6011473902561870",
];
const FILLER: [&str; 5] = [
    " lorem ipsum ",
    "{\"ts\":1763769600123} ",
    "\r\n",
    " order 4111111111111112 ",
    " ref 12345 ",
];

fn stream_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    // Alternate filler and values; the planted set is what the oracle expects.
    (prop::collection::vec((0..FILLER.len(), prop::option::of(0..VALUES.len())), 1..12)).prop_map(|parts| {
        let mut s = String::new();
        let mut planted = Vec::new();
        for (f, v) in parts {
            s.push_str(FILLER[f]);
            if let Some(v) = v {
                // Delimited like a field, so neighbouring filler digits never extend the value.
                s.push_str(" | ");
                s.push_str(VALUES[v]);
                s.push_str(" | ");
                planted.push(v);
            }
        }
        s.push(' ');
        (s.into_bytes(), planted)
    })
}

fn cut(len: usize, cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % len.max(1)).filter(|&c| c > 0).collect();
    points.push(0);
    points.push(len);
    points.sort();
    points.dedup();
    points.windows(2).map(|w| (w[0], w[1])).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn any_segmentation_and_order_reports_exactly_the_planted_values(
        (payload, planted) in stream_strategy(),
        cuts in prop::collection::vec(0usize..10_000, 0..20),
        order in prop::collection::vec(any::<u32>(), 20),
        dups in prop::collection::vec(any::<bool>(), 20),
    ) {
        let mut c = TcpConn::new(sa("10.0.0.20:40000"), sa("203.0.113.10:443"), 4_294_967_000, 9, t(0));
        let mut frames: Vec<Frame> = c.handshake();
        let isn = c.client_seq;
        let mut segs: Vec<Frame> = cut(payload.len(), &cuts)
            .into_iter()
            .map(|(a, b)| c.frame_at(true, isn.wrapping_add(a as u32), synth::Flags::ACK, &payload[a..b]))
            .collect();
        // Reorder by the random keys and retransmit some segments.
        let mut keyed: Vec<(u32, Frame)> = segs.drain(..).enumerate().map(|(i, f)| (order[i % order.len()], f)).collect();
        keyed.sort_by_key(|(k, _)| *k);
        let mut out = Vec::new();
        for (i, (_, f)) in keyed.into_iter().enumerate() {
            if dups[i % dups.len()] { out.push(f.clone()); }
            out.push(f);
        }
        // Give every frame an increasing timestamp in its new order, like a capture would.
        let base = frames.last().unwrap().ts.as_micros();
        for (i, f) in out.iter_mut().enumerate() { f.ts = nigehban::clock::Timestamp::from_micros(base + 10 + i as u64); }
        frames.extend(out);
        c.client_seq = isn.wrapping_add(payload.len() as u32);
        c.ts = nigehban::clock::Timestamp::from_micros(base + 1000);
        frames.extend(c.close());

        let run = read_frames(&frames, &[]);
        prop_assert!(run.status.success(), "{}", run.stderr);
        let mut want: Vec<String> = planted.iter().map(|&v| expected_hash(VALUES[v])).collect();
        want.sort();
        want.dedup();
        prop_assert_eq!(run.hashes(), want);
    }
}
