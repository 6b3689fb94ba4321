//! Matcher throughput: `DirScanner::feed` over ~8 MB of realistic benign traffic (HTML, JSON
//! full of millisecond timestamps and ids, some binary) in 1460-byte chunks with a few planted
//! values, against Hyperscan block mode over the same bytes as a floor.
//!
//! Run: `cargo bench --bench matcher` (set `CARGO_TARGET_DIR` as usual).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hyperscan::{BlockDatabase, Matching, Pattern, PatternFlags, Patterns};
use nigehban::matcher::{DirScanner, Finding, Matcher};
use nigehban::rules::RuleSet;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::path::Path;

const TARGET: usize = 8 << 20;
const MSS: usize = 1460;

fn corpus() -> (Vec<u8>, usize) {
    let mut rng = StdRng::seed_from_u64(0x6e69_6765);
    let mut out = Vec::with_capacity(TARGET + 4096);
    let planted: [&[u8]; 4] = [
        b"cnic: 35202-1234567-1",
        b"\"card\":\"4111111111111111\"",
        b"national_id=4210176543213&",
        b"pan 5555 5555 5555 4444;",
    ];
    let mut n_planted = 0;
    while out.len() < TARGET {
        match rng.gen_range(0..10) {
            0..=3 => {
                // HTML
                out.extend_from_slice(b"<div class=\"row item-");
                out.extend_from_slice(rng.gen_range(0..100_000u32).to_string().as_bytes());
                out.extend_from_slice(
                    b"\"><a href=\"/products/view?id=123&amp;ref=home\">Buy now</a> \
                      <span class=\"price\">PKR 4,999</span><p>Lorem ipsum dolor sit amet, \
                      consectetur adipiscing elit.</p></div>\n",
                );
            }
            4..=7 => {
                // digit-heavy JSON with millisecond timestamps and long ids
                let ts: u64 = 1_700_000_000_000 + rng.gen_range(0..100_000_000_000u64);
                let id: u64 = rng.gen();
                out.extend_from_slice(
                    format!(
                        "{{\"ts\":{ts},\"updated\":{},\"id\":{id},\"amount\":{}.{:02},\"seq\":{},\"phone\":\"+92300{:07}\"}},\n",
                        ts + 17,
                        rng.gen_range(0..1_000_000u32),
                        rng.gen_range(0..100u32),
                        rng.gen_range(0..10_000_000_000u64),
                        rng.gen_range(0..10_000_000u32),
                    )
                    .as_bytes(),
                );
            }
            8 => {
                // binary (compressed image, TLS-looking noise)
                let n = rng.gen_range(200..2000);
                out.extend((0..n).map(|_| rng.gen::<u8>()));
            }
            _ => {
                if rng.gen_range(0..400) == 0 {
                    out.extend_from_slice(planted[n_planted % planted.len()]);
                    n_planted += 1;
                } else {
                    out.extend_from_slice(b"Content-Type: text/html; charset=utf-8\r\nCache-Control: no-cache\r\n");
                }
            }
        }
    }
    (out, n_planted)
}

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules = RuleSet::load_dir(&dir).expect("bundled rules");
    let block_patterns: Patterns = rules
        .rules()
        .iter()
        .flat_map(|r| r.patterns.iter())
        .enumerate()
        .map(|(i, p)| {
            let mut pat = Pattern::with_flags(p.as_str(), PatternFlags::SOM_LEFTMOST).unwrap();
            pat.id = Some(i);
            pat
        })
        .collect();
    let matcher = Matcher::new(rules).expect("matcher");
    let (data, planted) = corpus();

    let mut w = matcher.worker().unwrap();
    let mut found = 0usize;
    let mut by_len = [0usize; 20];
    let mut probe = DirScanner::default();
    let mut count = |f: Finding| {
        found += 1;
        by_len[f.value.len()] += 1;
    };
    for chunk in data.chunks(MSS) {
        probe.feed(&matcher, &mut w, chunk, &mut count);
    }
    let active = probe.memory();
    probe.finish(&matcher, &mut w, &mut count);
    eprintln!(
        "corpus {} bytes, {planted} planted values, {found} findings (by digit count {by_len:?}, per rule {:?}); stream state {} B, active DirScanner {active} B; hits {:?}, rejected {:?}",
        data.len(),
        w.counters.findings,
        matcher.stream_size(),
        w.counters.hits,
        w.counters.rejected,
    );

    let mut g = c.benchmark_group("matcher");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    g.bench_function("dirscanner_feed_1460", |b| {
        b.iter(|| {
            let mut s = DirScanner::default();
            let mut n = 0usize;
            for chunk in data.chunks(MSS) {
                s.feed(&matcher, &mut w, chunk, &mut |_f| n += 1);
            }
            s.finish(&matcher, &mut w, &mut |_f| n += 1);
            black_box(n)
        })
    });

    let db: BlockDatabase = hyperscan::Builder::build(&block_patterns).expect("block db");
    let scratch = db.alloc_scratch().unwrap();
    g.bench_function("hyperscan_block_reference", |b| {
        b.iter(|| {
            let mut hits = 0usize;
            db.scan(&data[..], &scratch, |_, _, _, _| {
                hits += 1;
                Matching::Continue
            })
            .unwrap();
            black_box(hits)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
