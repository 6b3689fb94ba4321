//! TCP reassembly of two streams sharing one worker budget, driven by fuzzer-chosen segments
//! (any offset, length, SYN/FIN/RST, conflicting copies), acknowledgements and time jumps.
//!
//! Oracle (cheap, exact): every payload byte is a known function of its sequence number (or the
//! conflicting copy of it), so when a stream starts with a SYN each delivered byte must be one
//! that was sent at that position; bytes delivered plus gaps equal the stream offset and never
//! pass the furthest byte sent; the worker's held budget is the sum of its streams', stays under
//! the memcap and returns to 0 after `finish`.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use nigehban::clock::Timestamp;
use nigehban::decode::TcpHeader;
use nigehban::reassembly::{OverlapPolicy, Reassembler, ReassemblyConfig, StreamSink, TcpStream};
use std::time::Duration;

const FLIP: u8 = 0x5a;

fn pattern(seq: u32) -> u8 {
    (seq.wrapping_mul(0x9e37_79b9) >> 24) as u8
}

/// Checks each delivered byte against the pattern at its sequence number.
struct Oracle {
    /// Sequence number of stream offset 0, when known (the stream began with our SYN).
    base: Option<u32>,
    /// Bytes delivered plus gap lengths.
    pos: u64,
}

impl StreamSink for Oracle {
    fn data(&mut self, bytes: &[u8]) {
        if let Some(base) = self.base {
            for (i, &b) in bytes.iter().enumerate() {
                let want = pattern(base.wrapping_add((self.pos + i as u64) as u32));
                assert!(
                    b == want || b == want ^ FLIP,
                    "byte at offset {} was never sent",
                    self.pos + i as u64
                );
            }
        }
        self.pos += bytes.len() as u64;
    }
    fn gap(&mut self, missing: u64) {
        assert!(missing > 0, "empty gap");
        self.pos += missing;
    }
}

struct Side {
    stream: TcpStream,
    oracle: Oracle,
    isn: u32,
    /// Furthest stream offset sent (SYN-started streams only).
    max_end: u64,
}

fn run(u: &mut Unstructured<'_>, reasm: &mut Reassembler, sides: &mut [Side; 2], memcap: usize) -> Result<()> {
    let mut secs = 1;
    for _ in 0..u.int_in_range(1..=64u8)? {
        let which = usize::from(u.arbitrary::<bool>()?);
        let side = &mut sides[which];
        secs += i64::from(u.int_in_range(0..=3u8)?) * 4;
        let now = Timestamp::from_secs_micros(secs, 0);
        match u.int_in_range(0..=9u8)? {
            0 => {
                let ack = side.isn.wrapping_add(u32::from(u.arbitrary::<u16>()?));
                reasm.peer_ack(&mut side.stream, ack, now, &mut side.oracle);
            }
            1 => reasm.expire(&mut side.stream, now, &mut side.oracle),
            _ => {
                // Offsets relative to the ISN; a rare wild one tests wrap-around and far segments.
                let rel = if u.ratio(1, 32)? {
                    u.arbitrary::<u32>()?
                } else {
                    u32::from(u.int_in_range(0..=4096u16)?)
                };
                let len = usize::from(u.int_in_range(0..=600u16)?);
                let flags: u8 = u.arbitrary()?;
                let conflict = u.ratio(1, 6)?;
                let hdr = TcpHeader {
                    seq: side.isn.wrapping_add(rel),
                    ack_num: 0,
                    syn: flags & 1 != 0 && u.ratio(1, 4)?,
                    ack: true,
                    fin: flags & 2 != 0 && u.ratio(1, 4)?,
                    rst: flags & 4 != 0 && u.ratio(1, 8)?,
                };
                let data_seq = if hdr.syn { hdr.seq.wrapping_add(1) } else { hdr.seq };
                let payload: Vec<u8> = (0..len as u32)
                    .map(|i| pattern(data_seq.wrapping_add(i)) ^ if conflict { FLIP } else { 0 })
                    .collect();
                // A wild segment may land anywhere ahead: the bound is then unknown.
                let end = if rel < 1 << 20 {
                    u64::from(data_seq.wrapping_sub(side.isn.wrapping_add(1))) + len as u64
                } else {
                    u64::MAX
                };
                side.max_end = side.max_end.max(end);
                reasm.segment(&mut side.stream, &hdr, &payload, now, &mut side.oracle);
                if side.oracle.base.is_some() {
                    assert!(
                        side.stream.offset() <= side.max_end,
                        "delivered past the furthest byte sent"
                    );
                }
            }
        }
        for s in sides.iter() {
            assert_eq!(
                s.oracle.pos,
                s.stream.offset(),
                "sink saw a different amount than the stream advanced"
            );
        }
        let sum: usize = sides.iter().map(|s| s.stream.held_bytes()).sum();
        assert_eq!(
            sum,
            reasm.held_bytes(),
            "worker budget differs from the streams' held bytes"
        );
        assert!(reasm.held_bytes() <= memcap, "memcap exceeded");
    }
    Ok(())
}

fuzz_target!(|input: &[u8]| {
    let mut u = Unstructured::new(input);
    let Ok(cfg) = (|| -> Result<(ReassemblyConfig, usize, [bool; 2], [u32; 2])> {
        let cfg = ReassemblyConfig {
            max_ooo_bytes_per_stream: usize::from(u.int_in_range(1..=8192u16)?),
            max_ooo_segments_per_stream: usize::from(u.int_in_range(1..=16u8)?),
            gap_timeout: Duration::from_secs(u.int_in_range(1..=20)?),
            overlap_policy: if u.arbitrary()? {
                OverlapPolicy::Last
            } else {
                OverlapPolicy::First
            },
        };
        let memcap = usize::from(u.int_in_range(1..=12000u16)?);
        Ok((
            cfg,
            memcap,
            [u.arbitrary()?, u.arbitrary()?],
            [u.arbitrary()?, u.arbitrary()?],
        ))
    })() else {
        return;
    };
    let (cfg, memcap, syn_start, isns) = cfg;
    let mut reasm = Reassembler::new(cfg, memcap);
    let mut sides = [0, 1].map(|i| Side {
        stream: TcpStream::default(),
        oracle: Oracle { base: None, pos: 0 },
        isn: isns[i],
        max_end: 0,
    });
    for (i, side) in sides.iter_mut().enumerate() {
        if syn_start[i] {
            // Opening with a SYN fixes offset 0 at ISN+1, which lets the oracle check every byte.
            let syn = TcpHeader {
                seq: side.isn,
                ack_num: 0,
                syn: true,
                ack: false,
                fin: false,
                rst: false,
            };
            reasm.segment(
                &mut side.stream,
                &syn,
                &[],
                Timestamp::from_secs_micros(1, 0),
                &mut side.oracle,
            );
            side.oracle.base = Some(side.isn.wrapping_add(1));
        }
    }
    let _ = run(&mut u, &mut reasm, &mut sides, memcap);
    for side in sides.iter_mut() {
        reasm.finish(&mut side.stream, &mut side.oracle);
        assert_eq!(side.oracle.pos, side.stream.offset());
    }
    assert_eq!(reasm.held_bytes(), 0, "budget not returned after finish");
});
