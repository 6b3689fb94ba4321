//! Packet decoding on every link type: `[link][u16 LE len][frame]…`, several frames through one
//! decoder so fragments meet each other. Checks that a packet's payload lies inside the frame it
//! came from (or inside the reassembled datagram), and that a reassembled datagram decodes again
//! as raw IP to the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nigehban::clock::Timestamp;
use nigehban::decode::{Decoder, DefragConfig, LinkType};
use std::time::Duration;

const DLTS: [i32; 9] = [0, 1, 12, 101, 108, 113, 228, 229, 276];

fn within(inner: &[u8], outer: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr_range(), inner.as_ptr_range());
    o.start <= i.start && i.end <= o.end
}

fuzz_target!(|input: &[u8]| {
    let Some((&link, mut rest)) = input.split_first() else {
        return;
    };
    let link = LinkType::from_dlt(DLTS[usize::from(link) % DLTS.len()]).expect("supported DLT");
    let memcap = 64 << 10;
    let mut decoder = Decoder::new(DefragConfig {
        memcap,
        timeout: Duration::from_secs(30),
    });
    let mut again = Decoder::new(DefragConfig {
        memcap,
        timeout: Duration::from_secs(30),
    });
    let mut secs = 0;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let frame = &rest[2..2 + len];
        rest = &rest[2 + len..];
        secs += 1;
        let ts = Timestamp::from_secs_micros(secs, 0);
        if let Ok(p) = decoder.decode(link, ts, frame) {
            match p.reassembled {
                None => assert!(within(p.payload, frame), "payload outside its frame"),
                Some(whole) => {
                    assert!(within(p.payload, whole), "payload outside the reassembled datagram");
                    let q = again
                        .decode(LinkType::RawIp, ts, whole)
                        .expect("a reassembled datagram decodes again");
                    assert!(q.reassembled.is_none());
                    assert_eq!(
                        (q.src, q.dst, q.src_port, q.dst_port),
                        (p.src, p.dst, p.src_port, p.dst_port)
                    );
                    assert_eq!(q.transport, p.transport);
                    assert_eq!(q.payload, p.payload);
                }
            }
        }
        let stats = decoder.defrag_stats();
        assert!(
            stats.held_bytes <= memcap,
            "defrag holds {} > memcap {memcap}",
            stats.held_bytes
        );
    }
});
