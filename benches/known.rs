//! Known values at the scale an organisation loads: one million keyed hashes of synthetic
//! 13-digit CNICs. Measures loading the file (read, check, ready to search) and lookups per
//! second, for values on the list and values not on it, plus the keyed hash a finding needs
//! before it can be looked up.
//!
//! Run: `cargo bench --bench known` (set `CARGO_TARGET_DIR` as usual).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use nigehban::judge::KnownValues;
use nigehban::pii::{PiiHash, PiiKey, PiiKind, PiiValue};
use std::hint::black_box;

const N: u64 = 1_000_000;
const PROBES: usize = 4096;

fn cnic(i: u64) -> PiiValue {
    PiiValue::new(PiiKind::Cnic, format!("{}", 3_520_200_000_000 + i).as_bytes()).unwrap()
}

fn bench(c: &mut Criterion) {
    let key = PiiKey::new(b"bench key");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("million.nhl");
    KnownValues::from_hashes((0..N).map(|i| key.hash(&cnic(i))))
        .write(&path, &key)
        .unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    eprintln!("known-values file: {N} hashes, {size} bytes");

    let mut g = c.benchmark_group("known_values");
    g.sample_size(20);
    g.bench_function("load_1M", |b| {
        b.iter_batched(
            || (),
            |()| black_box(KnownValues::load(&path, &key).unwrap()),
            BatchSize::PerIteration,
        )
    });

    let set = KnownValues::load(&path, &key).unwrap();
    eprintln!("loaded: {} hashes in {} bytes of heap", set.len(), set.memory());
    let hits: Vec<PiiHash> = (0..PROBES as u64).map(|i| key.hash(&cnic(i * 241 % N))).collect();
    let misses: Vec<PiiHash> = (0..PROBES as u64).map(|i| key.hash(&cnic(N + i))).collect();
    g.throughput(Throughput::Elements(PROBES as u64));
    g.bench_function("lookup_hit", |b| {
        b.iter(|| hits.iter().filter(|h| set.contains(h)).count())
    });
    g.bench_function("lookup_miss", |b| {
        b.iter(|| misses.iter().filter(|h| set.contains(h)).count())
    });
    let values: Vec<PiiValue> = (0..PROBES as u64).map(|i| cnic(N + i)).collect();
    g.bench_function("hash_and_lookup", |b| {
        b.iter(|| values.iter().filter(|v| set.contains(&key.hash(v))).count())
    });
    g.finish();
    assert_eq!(hits.iter().filter(|h| set.contains(h)).count(), PROBES);
    assert_eq!(misses.iter().filter(|h| set.contains(h)).count(), 0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
