//! Classic pcap records: `[flags][snaplen u32 LE][records…]` becomes a pcap 2.4 file (byte order
//! and time stamp precision from `flags`), read by Nigehban's own record reader and by libpcap.
//! Both must hand out the same packets (time, bytes, wire length) and end the same way: a clean
//! end, or damage at the same offset with the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nigehban::capture::{FileSource, Next};
use std::io::Write;

type Read = (Vec<(u64, Vec<u8>, u32)>, String);

fn read_all(mut src: FileSource) -> Read {
    let mut out = Vec::new();
    loop {
        match src.next_packet() {
            Ok(Next::Packet(r)) => out.push((r.ts.as_micros(), r.data.to_vec(), r.wire_len)),
            Ok(Next::End) => return (out, "end".into()),
            Ok(Next::Idle) => panic!("a file is never idle"),
            // Only the reference names libpcap in its messages.
            Err(e) => return (out, e.to_string().replacen("libpcap error: ", "", 1)),
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&flags, rest)) = input.split_first() else {
        return;
    };
    if rest.len() < 4 {
        return;
    }
    let (snaplen, records) = rest.split_at(4);
    let swapped = flags & 1 != 0;
    let nanos = flags & 2 != 0;
    let put32 = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&if swapped { v.swap_bytes() } else { v }.to_ne_bytes());
    let put16 = |out: &mut Vec<u8>, v: u16| out.extend_from_slice(&if swapped { v.swap_bytes() } else { v }.to_ne_bytes());
    let mut file = Vec::with_capacity(24 + records.len());
    put32(&mut file, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    put16(&mut file, 2);
    put16(&mut file, 4);
    put32(&mut file, 0);
    put32(&mut file, 0);
    put32(&mut file, u32::from_le_bytes(snaplen.try_into().expect("4 bytes")));
    put32(&mut file, 1);
    // Records as given: in a file of the other byte order their header fields read swapped,
    // which is as good an input as any.
    file.extend_from_slice(records);
    let mut tmp = tempfile::NamedTempFile::new().expect("temp file");
    tmp.write_all(&file).expect("write the file");
    let ours = FileSource::open(tmp.path()).map(read_all).map_err(|e| e.to_string());
    let theirs = FileSource::open_libpcap_only(tmp.path()).map(read_all).map_err(|e| e.to_string());
    assert_eq!(ours, theirs);
});
