//! Line rate of `nigehban read` against two floors measured on the same capture in the same run:
//! (a) reading and decoding the pcap only (FileSource + Decoder: no flows, no matching), and
//! (b) Hyperscan block mode over exactly the egress payload bytes the sensor scans (pre-extracted
//! into memory, one block per packet, the same rule patterns without start of match), then the
//! sensor itself in `read` mode through the library with 1..=4 workers.
//!
//! Run: `cargo bench --bench line_rate` (`NIGEHBAN_BENCH_MB`: capture size per mix, default 256;
//! `NIGEHBAN_BENCH_MIXES`: comma-separated subset of cleartext,isp,small; `NIGEHBAN_BENCH_RUNS`:
//! rounds, each timing every row once, best per row kept, default 3; `NIGEHBAN_BENCH_WORKERS`:
//! highest worker count, default 4).
//! Captures are generated once (`nigehban bench-gen`, seed 1) and cached under
//! `$CARGO_TARGET_DIR/bench-data` (or `target/bench-data`). The timed rounds read a copy in
//! `/dev/shm` (see [`Staged`]; `NIGEHBAN_BENCH_TMPFS=0` reads the cached file in place).
//!
//! The sensor rows also print the CPU time (all threads, from `getrusage`) of their fastest round,
//! startup subtracted, and its ratio to floor (b)'s time: floor (b) runs on one core, so this is
//! what the sensor's work costs against it whatever the other core was doing.
//!
//! Throughput is payload (TCP and UDP, both directions) per second of wall clock; the ratios
//! compare times on the same bytes, so they do not depend on which bytes are counted. The
//! sensor's time starts at its first packet (`Summary::startup`, loading and compiling the rules
//! and starting threads, is printed apart), as the floors' preparation is outside their clocks.

use hyperscan::{BlockDatabase, Matching, Pattern, PatternFlags, Patterns};
use nigehban::capture::{FileSource, Next};
use nigehban::cli::{self, CommonArgs, InputArgs};
use nigehban::decode::{Decoder, DefragConfig};
use nigehban::rules::RuleSet;
use nigehban::synth::bench::{self, BenchConfig, Mix};
use std::hint::black_box;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn data_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let d = target.join("bench-data");
    std::fs::create_dir_all(&d).expect("create the bench-data directory");
    d
}

fn capture(mix: Mix, mb: u64) -> PathBuf {
    let path = data_dir().join(format!("line-rate-{}-{mb}mb-seed1.pcap", mix.as_str()));
    if !path.exists() {
        let tmp = path.with_extension("tmp");
        let t = Instant::now();
        let s = bench::generate(&BenchConfig::new(mix, mb << 20, 1), &tmp).expect("generate the capture");
        std::fs::rename(&tmp, &path).expect("move the capture into place");
        eprintln!(
            "generated {} ({} packets, {} flows) in {:.1}s",
            path.display(),
            s.packets,
            s.flows,
            t.elapsed().as_secs_f64()
        );
    }
    path
}

/// The capture copied to memory-backed storage (`/dev/shm`) for the timed rounds, removed when
/// dropped.
///
/// Why: the host of these machines keeps trimming the page cache with most memory free (a
/// 316 MiB capture read in full was 284 MiB cached 10 s later and 233 MiB 25 s later), so each
/// round read part of the file from disk again, in the sensor's time and floor (a)'s but not in
/// floor (b)'s, whose payloads are in memory, nor in a sensor's on a network interface.
struct Staged {
    path: PathBuf,
    temporary: bool,
}

impl Staged {
    fn new(src: &Path) -> Staged {
        let shm = Path::new("/dev/shm");
        let in_place = Staged {
            path: src.to_path_buf(),
            temporary: false,
        };
        if env_or("NIGEHBAN_BENCH_TMPFS", 1) == 0 || !shm.is_dir() {
            return in_place;
        }
        let name = src.file_name().expect("a capture file name").to_string_lossy();
        let path = shm.join(format!("nigehban-bench-{}-{name}", std::process::id()));
        match std::fs::copy(src, &path) {
            Ok(_) => Staged { path, temporary: true },
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                eprintln!(
                    "could not copy {} to /dev/shm ({e}); reading it in place",
                    src.display()
                );
                in_place
            }
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn decoder() -> Decoder {
    Decoder::new(DefragConfig {
        memcap: 32 << 20,
        timeout: Duration::from_secs(30),
    })
}

/// Inside-to-outside, as the default home net and the generator's addresses have it.
fn egress(src: IpAddr, dst: IpAddr) -> bool {
    let inside = |a: IpAddr| matches!(a, IpAddr::V4(v) if v.octets()[0] == 10);
    inside(src) && !inside(dst)
}

struct Capture {
    packets: u64,
    payload: u64,
    /// Egress payloads, back to back; `ends[i]` is where payload `i` ends.
    egress: Vec<u8>,
    ends: Vec<usize>,
}

/// Floor (a): read and decode every frame; returns what it saw.
fn read_decode(path: &Path, keep_egress: bool) -> Capture {
    let mut src = FileSource::open(path).expect("open the capture");
    let link = src.link();
    let mut dec = decoder();
    let mut c = Capture {
        packets: 0,
        payload: 0,
        egress: Vec::new(),
        ends: Vec::new(),
    };
    while let Ok(Next::Packet(p)) = src.next_packet() {
        c.packets += 1;
        if let Ok(pkt) = dec.decode(link, p.ts, p.data) {
            c.payload += pkt.payload.len() as u64;
            if keep_egress && !pkt.payload.is_empty() && egress(pkt.src, pkt.dst) {
                c.egress.extend_from_slice(pkt.payload);
                c.ends.push(c.egress.len());
            }
        }
    }
    c
}

fn block_db() -> BlockDatabase {
    let rules = RuleSet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).expect("bundled rules");
    let patterns: Patterns = rules
        .rules()
        .iter()
        .flat_map(|r| r.patterns.iter())
        .enumerate()
        .map(|(i, p)| {
            // No start of match: the least Hyperscan can do for these patterns (the sensor
            // needs starts, and finds most of them without asking Hyperscan).
            let mut pat = Pattern::with_flags(p.as_str(), PatternFlags::empty()).expect("pattern");
            pat.id = Some(i);
            pat
        })
        .collect();
    hyperscan::Builder::build(&patterns).expect("block database")
}

/// Floor (b): each egress payload scanned as one block; returns the hit count.
fn block_scan(db: &BlockDatabase, scratch: &hyperscan::Scratch, c: &Capture) -> u64 {
    let mut hits = 0u64;
    let mut start = 0;
    for &end in &c.ends {
        db.scan(&c.egress[start..end], scratch, |_, _, _, _| {
            hits += 1;
            Matching::Continue
        })
        .expect("block scan");
        start = end;
    }
    hits
}

/// Runs the sensor; returns (alerts, bytes scanned after application decoding, startup time).
fn sensor(path: &Path, workers: usize) -> (u64, u64, Duration) {
    let common = CommonArgs {
        workers: Some(workers),
        metrics_listen: Some("off".into()),
        alerts: Some("/dev/null".into()),
        rules: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")),
        ..CommonArgs::default()
    };
    let settings = cli::settings(Some(InputArgs::Files(vec![path.to_path_buf()])), &common).expect("settings");
    let s = nigehban::app::run(settings, Arc::new(AtomicBool::new(false))).expect("read the capture");
    (s.alerts, s.scanned_bytes, s.startup)
}

/// CPU time (user and system) of this process so far, every thread's, finished ones included.
fn cpu_time() -> Duration {
    // SAFETY: `getrusage` fills the zeroed struct it is given and reads nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Wall-clock time of `f` and its result.
fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let r = black_box(f());
    (t.elapsed(), r)
}

fn row(what: &str, bytes: u64, packets: u64, t: Duration, extra: &str) {
    let s = t.as_secs_f64();
    println!(
        "| {what:<28} | {:>8.3} | {:>9.1} | {:>8.2} | {:>7.3} | {extra}",
        bytes as f64 * 8.0 / s / 1e9,
        bytes as f64 / s / (1 << 20) as f64,
        packets as f64 / s / 1e6,
        s
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects nothing here.
    let mb: u64 = env_or("NIGEHBAN_BENCH_MB", 256);
    let runs: usize = env_or("NIGEHBAN_BENCH_RUNS", 3);
    let max_workers: usize = env_or("NIGEHBAN_BENCH_WORKERS", 4);
    let mixes = std::env::var("NIGEHBAN_BENCH_MIXES").unwrap_or_else(|_| "cleartext,isp,small".into());
    let db = block_db();
    let scratch = db.alloc_scratch().expect("scratch");
    for name in mixes.split(',') {
        let mix = match cli::bench_gen::parse_mix(name.trim()) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("NIGEHBAN_BENCH_MIXES: {e}");
                std::process::exit(2);
            }
        };
        let staged = Staged::new(&capture(mix, mb));
        let path = staged.path.as_path();
        let full = read_decode(path, true);
        let mut counts: Vec<usize> = (1..=max_workers).collect();
        if !counts.contains(&2) {
            counts.push(2);
        }
        // Rounds of every row in turn, best time per row: on a host whose speed moves from one
        // second to the next, a slow spell then costs every row a round, not one row all of them.
        let (mut ta, mut tb) = (Duration::MAX, Duration::MAX);
        let mut ts = vec![Duration::MAX; counts.len()];
        let (mut cap, mut hits, mut results) = (None, 0, vec![(0, 0, Duration::ZERO); counts.len()]);
        // CPU time of each row's fastest round: on a host whose speed moves, the wall clock of
        // two workers on two cores also depends on the other core's availability.
        let mut cpu = vec![Duration::ZERO; counts.len()];
        for _ in 0..runs.max(1) {
            let (t, c) = timed(|| read_decode(path, false));
            ta = ta.min(t);
            cap = Some(c);
            let (t, h) = timed(|| block_scan(&db, &scratch, &full));
            tb = tb.min(t);
            hits = h;
            for (i, &w) in counts.iter().enumerate() {
                // Line rate is the time from the first packet on: the floors' databases and
                // captures are also prepared before their clocks start. Startup is shown apart.
                let c0 = cpu_time();
                let (total, r) = timed(|| sensor(path, w));
                let t = total.saturating_sub(r.2);
                if t < ts[i] {
                    ts[i] = t;
                    results[i] = r;
                    // Startup runs on one thread: its CPU time is about its wall clock.
                    cpu[i] = cpu_time().saturating_sub(c0).saturating_sub(r.2);
                }
            }
        }
        let cap = cap.expect("at least one round");
        println!(
            "\n{} mix: {} MiB file ({}), {} packets, payload {} MiB ({} MiB egress, {} egress payloads), {} block-mode hits",
            mix.as_str(),
            std::fs::metadata(path).map(|m| m.len() >> 20).unwrap_or(0),
            if staged.temporary { "read from /dev/shm" } else { "read in place" },
            cap.packets,
            cap.payload >> 20,
            full.egress.len() >> 20,
            full.ends.len(),
            hits
        );
        println!("| what                         | payload Gbit/s | MiB/s | Mpkt/s | seconds | ratios");
        println!("|------------------------------|---------:|----------:|---------:|--------:|-------");
        row("floor (a) read+decode", cap.payload, cap.packets, ta, "");
        // Floor (b) scans only the egress bytes; its time is what the sensor's matching could cost
        // at best, so it is shown against all payload for comparison with the other rows.
        row(
            "floor (b) hyperscan block",
            cap.payload,
            cap.packets,
            tb,
            "egress payload only",
        );
        let one = ts[0];
        for (i, &w) in counts.iter().enumerate() {
            let (t, (alerts, scanned, startup)) = (ts[i], results[i]);
            row(
                &format!("sensor read, {w} worker{}", if w == 1 { "" } else { "s" }),
                cap.payload,
                cap.packets,
                t,
                &format!(
                    "sensor/floor(a) {:.2}, floor(b)/sensor {:.2}, speed-up {:.2}, CPU {:.3} s \
                     ({:.2}x floor (b)), {alerts} alerts, {:.0} MiB scanned after decoding, startup {:.3} s not counted",
                    ta.as_secs_f64() / t.as_secs_f64(),
                    t.as_secs_f64() / tb.as_secs_f64(),
                    one.as_secs_f64() / t.as_secs_f64(),
                    cpu[i].as_secs_f64(),
                    cpu[i].as_secs_f64() / tb.as_secs_f64(),
                    scanned as f64 / (1 << 20) as f64,
                    startup.as_secs_f64()
                ),
            );
        }
    }
}
