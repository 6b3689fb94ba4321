//! Writes the seed corpora under `fuzz/corpus/<target>/seed-*` from the synthetic traffic
//! generators (`nigehban::synth`) and the shipped rule files:
//! `cargo run --example seeds` in `fuzz/`. The seeds are committed; rerun after the generators
//! change.

use nigehban::decode::{Decoder, DefragConfig, LinkType, Transport};
use nigehban::synth::{self, Frame};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

/// TCP payload streams keyed by (receiver port, sender port).
type TcpStreams = BTreeMap<(u16, u16), Vec<u8>>;

/// Payload streams of a capture (TCP, by direction) and its UDP datagrams.
fn streams(frames: &[Frame]) -> (TcpStreams, Vec<Vec<u8>>) {
    let mut d = Decoder::new(DefragConfig {
        memcap: 1 << 20,
        timeout: Duration::from_secs(30),
    });
    let mut tcp = TcpStreams::new();
    let mut udp = Vec::new();
    for f in frames {
        let Ok(p) = d.decode(LinkType::Ethernet, f.ts, &f.data) else {
            continue;
        };
        if p.payload.is_empty() {
            continue;
        }
        match p.transport {
            Transport::Tcp(_) => tcp
                .entry((p.dst_port, p.src_port))
                .or_default()
                .extend_from_slice(p.payload),
            Transport::Udp => udp.push(p.payload.to_vec()),
        }
    }
    (tcp, udp)
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let samples = synth::corpus::corpus(7);
    let mut n = [0usize; 5];
    // pcap_file: `[flags][snaplen u32 LE]` then records of real frames; flags choose the byte
    // order and time stamp precision, one seed cuts its records at the snapshot length and one
    // ends in the middle of a record.
    for (i, s) in samples.iter().take(4).enumerate() {
        let swapped = i & 1 != 0;
        let field = |v: u32| if swapped { v.swap_bytes() } else { v }.to_ne_bytes();
        let snaplen: u32 = if i == 2 { 100 } else { 65535 };
        let mut seed = vec![i as u8];
        seed.extend_from_slice(&snaplen.to_le_bytes());
        for (k, f) in s.frames.iter().take(6).enumerate() {
            let len = f.data.len() as u32;
            for v in [1_700_000_000 + k as u32, 1000 * k as u32, len, len] {
                seed.extend_from_slice(&field(v));
            }
            seed.extend_from_slice(&f.data);
        }
        if i == 3 {
            seed.truncate(seed.len() - 5);
        }
        put(&root.join("pcap_file"), &format!("{i:02}"), &seed);
    }
    for s in &samples {
        // decode: Ethernet (DLT index 1) frames, length-prefixed, a handful per seed.
        if n[0] < 12 {
            let mut seed = vec![1u8];
            for f in s.frames.iter().take(6) {
                seed.extend_from_slice(&(f.data.len() as u16).to_le_bytes());
                seed.extend_from_slice(&f.data);
            }
            put(&root.join("decode"), &format!("{:02}", n[0]), &seed);
            n[0] += 1;
        }
        let (tcp, udp) = streams(&s.frames);
        for ((server, _), bytes) in tcp {
            let stream = &bytes[..bytes.len().min(16 << 10)];
            if (server == 80 || server == 8080) && n[1] < 24 {
                put(
                    &root.join("http"),
                    &format!("{:02}", n[1]),
                    &[&[0u8, 0][..], stream].concat(),
                );
                n[1] += 1;
            }
            if server == 25 || server == 587 {
                // The message between DATA and the final dot.
                let Some(start) = find(stream, b"DATA\r\n") else {
                    continue;
                };
                let body = &stream[start + 6..];
                let end = find(body, b"\r\n.\r\n").unwrap_or(body.len());
                if n[2] < 16 {
                    put(
                        &root.join("mime"),
                        &format!("{:02}", n[2]),
                        &[&[0u8, 0][..], &body[..end]].concat(),
                    );
                    n[2] += 1;
                }
            }
            if server == 53 && n[3] < 8 {
                put(&root.join("dns"), &format!("tcp-{:02}", n[3]), &bytes);
                n[3] += 1;
            }
        }
        for d in udp {
            if n[4] < 16 {
                put(&root.join("dns"), &format!("{:02}", n[4]), &d);
                n[4] += 1;
            }
        }
    }
    // defrag / reassembly read structured choices: any bytes are valid; a few varied ones.
    for (i, len) in [16usize, 64, 256, 1024].iter().enumerate() {
        let bytes: Vec<u8> = (0..*len).map(|j| (j.wrapping_mul(131) ^ (i * 7)) as u8).collect();
        put(&root.join("defrag"), &format!("{i:02}"), &bytes);
        put(&root.join("reassembly"), &format!("{i:02}"), &bytes);
    }
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules");
    for entry in std::fs::read_dir(&rules).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read(&p).unwrap();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            put(&root.join("rules"), &name, &text);
            put(
                &root.join("rules"),
                &format!("plus-{name}"),
                &[b"+".as_slice(), &text].concat(),
            );
        }
    }
    eprintln!(
        "seeds: decode {} http {} mime {} dns {}+{}",
        n[0], n[1], n[2], n[3], n[4]
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
