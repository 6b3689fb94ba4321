//! The cost of application decoding (`nigehban read` in-process over the same HTTP capture with
//! decoding on and off), and real memory per idle TCP flow from the peak RSS of the `nigehban`
//! binary. Run: `cargo bench --bench pipeline`. Line rate against the read/decode and Hyperscan
//! floors, per worker count, is `benches/line_rate.rs`.
//!
//! NIGEHBAN_BENCH_MB sets the generated payload size (default 48).

use criterion::{criterion_group, Criterion, Throughput};
use nigehban::capture::{FileSource, Next};
use nigehban::cli::{self, CommonArgs, InputArgs};
use nigehban::decode::{Decoder, DefragConfig};
use nigehban::synth::{self, MixConfig, TcpConn};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

fn data_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The benchmark capture and its TCP payload byte count; with `http`, every chunk is framed as
/// an HTTP/1.1 message.
fn mix_capture(http: bool) -> (PathBuf, u64) {
    let mb: usize = std::env::var("NIGEHBAN_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let name = if http { "mix-http" } else { "mix-egress" };
    let path = data_dir().join(format!("{name}-{mb}mb.pcap"));
    let cfg = MixConfig {
        payload_bytes: mb << 20,
        http,
        ..MixConfig::default()
    };
    if !path.exists() {
        let frames = synth::benign_mix(&cfg);
        synth::write_pcap(&path, &frames).unwrap();
    }
    let bytes = payload_bytes(&path);
    (path, bytes)
}

fn payload_bytes(path: &Path) -> u64 {
    let mut src = FileSource::open(path).unwrap();
    let mut dec = Decoder::new(DefragConfig {
        memcap: 1 << 20,
        timeout: Duration::from_secs(30),
    });
    let link = src.link();
    let mut total = 0u64;
    while let Ok(Next::Packet(p)) = src.next_packet() {
        if let Ok(pkt) = dec.decode(link, p.ts, p.data) {
            total += pkt.payload.len() as u64;
        }
    }
    total
}

fn run_read(path: &Path, workers: usize) {
    run_read_with(path, workers, None)
}

/// `config`: an optional TOML config file (e.g. one turning application decoding off).
fn run_read_with(path: &Path, workers: usize, config: Option<&Path>) {
    let common = CommonArgs {
        config: config.map(Path::to_path_buf),
        workers: Some(workers),
        metrics_listen: Some("off".into()),
        alerts: Some("/dev/null".into()),
        rules: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")),
        ..CommonArgs::default()
    };
    let settings = cli::settings(Some(InputArgs::Files(vec![path.to_path_buf()])), &common).unwrap();
    nigehban::app::run(settings, Arc::new(AtomicBool::new(false))).unwrap();
}

/// The cost of application decoding: the same HTTP capture with decoding on (the default) and
/// off (every stream scanned raw), one worker.
fn decoding(c: &mut Criterion) {
    let (path, payload) = mix_capture(true);
    let raw_cfg = data_dir().join("decode-off.toml");
    std::fs::write(&raw_cfg, "[l7]\ndecode = false\n").unwrap();
    let mut g = c.benchmark_group("http");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Bytes(payload));
    g.bench_function("raw_scanning_1_worker", |b| {
        b.iter(|| run_read_with(&path, 1, Some(&raw_cfg)))
    });
    g.bench_function("decoded_1_worker", |b| b.iter(|| run_read(&path, 1)));
    g.finish();
}

/// Peak RSS of `nigehban read` over `flows` idle TCP connections (handshake, no data, no close),
/// minus the same run with none, per flow.
fn idle_flow_memory() {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/nigehban");
    if !bin.exists() {
        eprintln!("idle-flow memory: build the release binary first (cargo build --release)");
        return;
    }
    let run = |flows: u32| -> u64 {
        let path = data_dir().join(format!("idle-{flows}.pcap"));
        if !path.exists() {
            let mut frames = Vec::new();
            for i in 0..flows {
                let client = format!(
                    "10.{}.{}.{}:{}",
                    (i >> 16) as u8,
                    (i >> 8) as u8,
                    i as u8,
                    1024 + (i % 60000)
                );
                let mut c = TcpConn::new(
                    client.parse().unwrap(),
                    "203.0.113.1:443".parse().unwrap(),
                    i,
                    i,
                    nigehban::clock::Timestamp::from_micros(1_763_769_600_000_000 + u64::from(i)),
                );
                frames.extend(c.handshake());
            }
            synth::write_pcap(&path, &frames).unwrap();
        }
        let out = std::process::Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .arg(&bin)
            .args([
                "read",
                path.to_str().unwrap(),
                "--metrics-listen",
                "off",
                "--alerts",
                "/dev/null",
                "--workers",
                "1",
            ])
            .output();
        match out {
            Ok(o) => {
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .and_then(|l| l.trim().parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024
            }
            Err(_) => 0,
        }
    };
    let n = 200_000;
    let (base, full) = (run(0), run(n));
    if base == 0 || full == 0 {
        eprintln!("idle-flow memory: needs /usr/bin/time (Debian package 'time')");
        return;
    }
    println!(
        "idle TCP flow memory: {} bytes per flow ({} flows, peak RSS {} MiB vs {} MiB empty)",
        (full - base) / u64::from(n),
        n,
        full >> 20,
        base >> 20
    );
}

criterion_group!(benches, decoding);

fn main() {
    benches();
    idle_flow_memory();
    Criterion::default().configure_from_args().final_summary();
}
