//! IPv4/IPv6 fragment reassembly from fuzzer-chosen fragment sequences: offsets, lengths, MF
//! flags, two datagram ids, conflicting copies and packet-time jumps. The datagram is a UDP
//! header and a known pattern, so every reassembled payload byte can be checked: it must be
//! the pattern's byte at that position or the conflicting copy's (never a hole's zero or bytes
//! from another place). Memory never exceeds the cap and drains to nothing once time passes.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use nigehban::clock::Timestamp;
use nigehban::decode::{Decoder, DefragConfig, LinkType, Transport};
use std::time::Duration;

const MEMCAP: usize = 16 << 10;
const FLIP: u8 = 0x5a;

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8 | 1
}

fn frame(v6: bool, id: u32, proto: u8, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let off_field = ((offset / 8) as u16) << 3;
    if v6 {
        let mut f = vec![0x60, 0, 0, 0];
        f.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[44, 64]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[proto, 0]);
        f.extend_from_slice(&(off_field | u16::from(more)).to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(data);
        f
    } else {
        let total = (20 + data.len()) as u16;
        let flags = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        let mut f = vec![0x45, 0];
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&(id as u16).to_be_bytes());
        f.extend_from_slice(&flags.to_be_bytes());
        f.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(data);
        f
    }
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let v6: bool = u.arbitrary()?;
    let len: usize = u.int_in_range(9..=3000)?;
    // The datagram: a UDP header declaring `len`, then the pattern.
    let mut image: Vec<u8> = (0..len).map(pattern).collect();
    image[..8].copy_from_slice(&[0x04, 0x00, 0x08, 0x00, (len >> 8) as u8, len as u8, 0, 0]);
    let mut decoder = Decoder::new(DefragConfig {
        memcap: MEMCAP,
        timeout: Duration::from_secs(30),
    });
    let mut secs = 1;
    let n: usize = u.int_in_range(1..=48)?;
    for _ in 0..n {
        let offset = usize::from(u.int_in_range(0..=(len / 8 + 2) as u16)?) * 8;
        let flen: usize = u.int_in_range(0..=len + 16)?;
        let more: bool = u.arbitrary()?;
        let conflict = u.ratio(1, 8)?;
        let id = u32::from(u.int_in_range(0..=1u8)?);
        let proto = if u.ratio(1, 16)? { 6 } else { 17 };
        secs += i64::from(u.int_in_range(0..=3u8)?) * 5;
        let data: Vec<u8> = (offset..offset + flen)
            .map(|i| image.get(i).copied().unwrap_or(0xee) ^ if conflict { FLIP } else { 0 })
            .collect();
        let bytes = frame(v6, id, proto, offset, more, &data);
        let ts = Timestamp::from_secs_micros(secs, 0);
        if let Ok(p) = decoder.decode(LinkType::RawIp, ts, &bytes) {
            // The datagram's protocol is its offset-0 fragment's (IPv6 keys ignore it), so
            // check the transport decoded, not this fragment's header.
            if p.reassembled.is_some() && p.transport == Transport::Udp {
                for (j, &b) in p.payload.iter().enumerate() {
                    let want = image.get(8 + j).copied().unwrap_or(0xee);
                    assert!(b == want || b == want ^ FLIP, "payload byte {j} was never sent there");
                }
            }
        }
        let stats = decoder.defrag_stats();
        assert!(stats.held_bytes <= MEMCAP, "defrag holds {} > memcap", stats.held_bytes);
    }
    // Any frame an hour later expires whatever is still held.
    let _ = decoder.decode(LinkType::RawIp, Timestamp::from_secs_micros(secs + 3600, 0), &[]);
    let stats = decoder.defrag_stats();
    assert_eq!(
        (stats.held_bytes, stats.held_datagrams),
        (0, 0),
        "held after every timeout"
    );
    Ok(())
}

fuzz_target!(|input: &[u8]| {
    let _ = run(&mut Unstructured::new(input));
});
