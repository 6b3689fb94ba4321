//! Memory of many concurrent TCP flows in one real worker (flow table, reassembly, l7 state and
//! Hyperscan stream state), measured with a counting global allocator: heap bytes live after
//! the flows are set up, divided by the flow count. Three shapes: idle (handshake only), with
//! data (first bytes sent, so the matcher stream is open), and holding out-of-order data.
//! Also prints what the flow table charges against its memcap for the same flows.
//!
//! Run: `cargo bench --bench flows` (1 M flows), or quicker and equally exact per flow (sizes
//! do not depend on optimisation): `NIGEHBAN_FLOWS=200000 cargo test --bench flows`.

use nigehban::cli::{self, CommonArgs, HomeNet};
use nigehban::clock::Timestamp;
use nigehban::decode::{Decoder, LinkType};
use nigehban::metrics::Metrics;
use nigehban::pii::PiiKey;
use nigehban::pipeline::{Batch, Worker, WorkerShared};
use nigehban::synth::{Flags, TcpConn};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts live heap bytes.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with the same layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Clone, Copy)]
enum Shape {
    Idle,
    Data,
    OutOfOrder,
}

/// A worker as `nigehban` builds one, with the decoder and home net its capture thread would use.
fn worker(metrics: &Arc<Metrics>) -> (Worker, Decoder, HomeNet) {
    let dir = std::env::temp_dir().join(format!("nigehban-flows-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("n.toml");
    // Caps far above what is measured, and timeouts longer than the run: nothing is evicted.
    std::fs::write(
        &cfg,
        "[flow]\nmemcap_mb = 65536\n[reassembly]\nmemcap_mb = 65536\ngap_timeout_secs = 100000\n",
    )
    .unwrap();
    let common = CommonArgs {
        config: Some(cfg),
        workers: Some(1),
        metrics_listen: Some("off".into()),
        alerts: Some("-".into()),
        rules: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")),
        ..CommonArgs::default()
    };
    let settings = cli::settings(None, &common).unwrap();
    let key = PiiKey::random();
    let (tx, rx) = crossbeam_channel::unbounded();
    std::mem::forget(rx);
    let judge = Arc::new(nigehban::judge::Judge::from_settings(&settings, &key).unwrap());
    let shared = Arc::new(WorkerShared::new(
        &settings,
        Arc::new(nigehban::pipeline::LiveRules::new(
            nigehban::app::load_matcher(&settings.rules_dir).unwrap(),
        )),
        key,
        judge,
        Arc::clone(metrics),
        tx,
    ));
    (
        Worker::new(0, shared).unwrap(),
        Decoder::new(settings.defrag.clone()),
        settings.home_net.clone(),
    )
}

/// Resident set size in bytes (includes Hyperscan's stream state, which C `malloc` allocates
/// outside the counting allocator).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Sets up `n` flows of `shape`; returns (live Rust heap, RSS growth, charged bytes), per flow.
fn measure(n: u64, shape: Shape) -> (f64, f64, f64) {
    let metrics = Arc::new(Metrics::new());
    let (mut w, mut decoder, home) = worker(&metrics);
    let mut batch = Batch::default();
    // One batch through first, so lazily allocated per-worker state is not counted per flow.
    w.batch(&batch);
    let before = LIVE.load(Ordering::Relaxed);
    let rss_before = rss();
    let t0 = 1_763_769_600_000_000u64;
    for i in 0..n {
        let ip = format!("10.{}.{}.{}", (i >> 16) as u8, (i >> 8) as u8, i as u8);
        let client = format!("{ip}:{}", 1024 + (i >> 24));
        let mut c = TcpConn::new(
            client.parse().unwrap(),
            "203.0.113.10:8080".parse().unwrap(),
            1,
            2,
            Timestamp::from_micros(t0 + i),
        );
        let mut frames = c.handshake();
        match shape {
            Shape::Idle => {}
            Shape::Data => frames.extend(c.segments(true, b"GET / HTTP/1.1\r\n", &[16])),
            Shape::OutOfOrder => {
                // A 1000-byte segment beyond a one-byte hole: held until the hole fills.
                let seq = c.client_seq.wrapping_add(1);
                frames.push(c.frame_at(true, seq, Flags::ACK, &[b'x'; 1000]));
            }
        }
        for f in &frames {
            batch.push_frame(&mut decoder, &home, f.ts, LinkType::Ethernet, &f.data);
        }
        if batch.len() >= 64 {
            w.batch(&batch);
            batch.clear();
        }
    }
    w.batch(&batch);
    let live = LIVE.load(Ordering::Relaxed) - before;
    let grown = rss().saturating_sub(rss_before);
    let text = metrics.render();
    let series = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    assert_eq!(
        series("nigehban_flows_active{worker=\"0\"}"),
        n as f64,
        "no flow evicted"
    );
    let charged =
        series("nigehban_flow_memory_bytes{worker=\"0\"}") + series("nigehban_reassembly_ooo_bytes{worker=\"0\"}");
    drop(batch);
    w.shutdown();
    (live as f64 / n as f64, grown as f64 / n as f64, charged / n as f64)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --bench` runs this too.
    let n: u64 = std::env::var("NIGEHBAN_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let shapes = [
        ("idle (handshake only)", Shape::Idle),
        ("data sent (matcher stream open)", Shape::Data),
        ("1000 B held out of order", Shape::OutOfOrder),
    ];
    // Each shape runs in its own process: RSS never shrinks, so a second shape measured in the
    // same process would reuse the first one's pages and look smaller than it is.
    if let Some(i) = std::env::var("NIGEHBAN_FLOW_SHAPE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let (name, shape) = shapes[i];
        let (heap, rss, charged) = measure(n, shape);
        println!(
            "{name:<34} {heap:>12.0} {rss:>12.0} {charged:>15.0} {:>14.1}",
            rss * n as f64 / (1024.0 * 1024.0)
        );
        return;
    }
    println!("flows: {n} concurrent TCP flows in one worker");
    println!(
        "{:<34} {:>12} {:>12} {:>15} {:>14}",
        "shape", "heap B/flow", "RSS B/flow", "charged B/flow", "RSS total MiB"
    );
    let exe = std::env::current_exe().unwrap();
    for i in 0..shapes.len() {
        let status = std::process::Command::new(&exe)
            .env("NIGEHBAN_FLOW_SHAPE", i.to_string())
            .env("NIGEHBAN_FLOWS", n.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "shape {i} failed");
    }
}
