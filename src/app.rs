//! Wires the stages together: loads rules and key, starts metrics, the alert outputs and the
//! workers, runs the capture loop on the calling thread (af-packet: one scoped thread per
//! capture socket), and shuts down in order (flush batches,
//! let workers end their flows, deliver or spool alerts within the drain timeout). SIGINT and
//! SIGTERM (registered by `main`) set `stop`; SIGHUP reopens the alert file and reloads the rules
//! (`pipeline::Reloader`).

use crate::capture::{
    AfPacketConfig, AfPacketSource, CaptureBackend, CaptureError, CaptureStats, FileSource, LiveSource, Next, RawPacket,
};
use crate::cli::{InputMode, Settings};
use crate::clock::Timestamp;
use crate::decode::{Decoder, LinkType, Skip};
use crate::flow::ShardHasher;
use crate::matcher::Matcher;
use crate::metrics::{Metrics, MetricsServer};
use crate::pii::PiiKey;
use crate::pipeline::{self, Dispatcher, Queued, WhenFull, Worker, WorkerShared};
use crate::rules::RuleSet;
use anyhow::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a finished run reports.
#[derive(Default)]
pub struct Summary {
    /// Packets read from the source.
    pub packets: u64,
    /// Alerts raised (handed to the outputs).
    pub alerts: u64,
    /// Packets dropped because a worker queue was full (live only).
    pub queue_drops: u64,
    /// The kernel's capture counters, summed over capture threads (live only).
    pub capture: CaptureStats,
    /// Bytes the matcher scanned: egress payload after application decoding (a gzip'd body
    /// counts inflated; bypassed encrypted bytes not at all).
    pub scanned_bytes: u64,
    /// Time from the start of the run to the first packet read: loading and compiling the
    /// rules, opening the source and outputs, starting threads.
    pub startup: std::time::Duration,
    /// The run's metrics, final: every thread has published its counts.
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Summary")
            .field("packets", &self.packets)
            .field("alerts", &self.alerts)
            .field("queue_drops", &self.queue_drops)
            .field("capture", &self.capture)
            .field("scanned_bytes", &self.scanned_bytes)
            .field("startup", &self.startup)
            .finish_non_exhaustive()
    }
}

/// Loads the rule set and compiles it, with the directory named in any error.
pub fn load_matcher(dir: &std::path::Path) -> anyhow::Result<Matcher> {
    let rules = RuleSet::load_dir(dir)?;
    Ok(Matcher::new(rules)?)
}

/// Runs `capture` or `read` until the input ends or `stop` is set.
pub fn run(settings: Settings, stop: Arc<AtomicBool>) -> anyhow::Result<Summary> {
    let begun = std::time::Instant::now();
    let matcher = load_matcher(&settings.rules_dir)?;
    let key = match &settings.pii_key_file {
        Some(p) => PiiKey::from_file(p).with_context(|| format!("cannot use --pii-key-file {}", p.display()))?,
        None => {
            tracing::warn!("no --pii-key-file given: using a random key, so value hashes will not correlate across runs or sensors");
            PiiKey::random()
        }
    };
    let judge = Arc::new(crate::judge::Judge::from_settings(&settings, &key)?);
    let metrics = Arc::new(Metrics::new());
    // Open the source before starting threads, so a bad file or interface fails cleanly, and
    // before /metrics answers: a scrape that succeeds means the capture socket is open (packets
    // from then on wait in its buffer until the capture loop reads them).
    let mut source = Source::open(&settings.input)?;
    let _server = match settings.metrics_listen {
        Some(addr) => {
            let s = MetricsServer::start(addr, Arc::clone(&metrics), &settings.metrics_security)?;
            let auth = settings.metrics_security.bearer_token_file.is_some();
            tracing::info!(addr = %s.addr(), tls = s.is_tls(), bearer_token = auth, "serving Prometheus metrics on /metrics");
            Some(s)
        }
        None => None,
    };

    // SIGHUP asks the file output to reopen its path (logrotate); it must not end the sensor.
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))?;
    let out = &settings.outputs;
    let outputs = crate::sink::build_outputs(&settings.alerts, out.rotation, out.syslog.as_ref(), &out.http, hup)?;
    if out.delivery.spool_dir.is_none() && outputs.iter().any(|o| o.name != "stdout" && o.name != "file") {
        tracing::warn!("no --spool-dir: alerts for an unreachable output are kept only in memory and dropped when its queue fills or at exit");
    }
    let (alert_tx, alert_rx) = crossbeam_channel::bounded(crate::sink::QUEUE);
    let sink = crate::sink::start(outputs, &out.delivery, alert_rx, Arc::clone(&metrics))?;
    // Everything privileged is open (capture handle, metrics listener, alert file, spool): drop
    // root before the first packet is read. No worker thread exists yet, and the threads that do
    // (metrics, outputs) change ids with us: glibc applies set*id to every thread.
    drop_privileges(&settings)?;
    // SIGHUP also reloads the rules (own flag, own thread); the packet path only sees a new
    // generation number at its next batch.
    let live_rules = Arc::new(pipeline::LiveRules::new(matcher));
    let _reloader = pipeline::Reloader::start(
        settings.rules_dir.clone(),
        Arc::clone(&live_rules),
        Arc::clone(&metrics),
    )?;
    let shared = Arc::new(WorkerShared::new(
        &settings,
        live_rules,
        key,
        judge,
        Arc::clone(&metrics),
        alert_tx,
    ));
    let when_full = if source.is_live() {
        WhenFull::Drop
    } else {
        WhenFull::Block
    };
    let (dispatchers, queues) = pipeline::channels(
        source.threads(),
        settings.workers,
        settings.pipeline.queue_batches,
        settings.pipeline.batch_packets,
        when_full,
    );
    let mut handles = Vec::new();
    for (id, q) in queues.into_iter().enumerate() {
        let w = Worker::new(id, Arc::clone(&shared))?;
        handles.push(
            std::thread::Builder::new()
                .name(format!("worker-{id}"))
                .spawn(move || w.run(q))?,
        );
    }
    drop(shared);

    tracing::info!(
        workers = settings.workers,
        capture_threads = source.threads(),
        rules = %settings.rules_dir.display(),
        "started"
    );
    let startup = begun.elapsed();
    let (packets, queue_drops, result) = capture(&mut source, dispatchers, &settings, &metrics, &stop);
    for h in handles {
        if h.join().is_err() {
            tracing::error!("a worker thread panicked");
        }
    }
    // Workers are gone, so every alert sender is dropped: outputs drain (bounded by the drain
    // timeout) and spool the rest.
    let alerts = sink.finish();
    let capture = source.stats();
    let scanned_bytes = metrics.scanned_bytes.get();
    tracing::info!(
        packets,
        alerts,
        scanned_bytes,
        queue_drops,
        kernel_drops = capture.dropped,
        interface_drops = capture.if_dropped,
        "finished"
    );
    result?;
    Ok(Summary {
        packets,
        alerts,
        queue_drops,
        capture,
        scanned_bytes,
        startup,
        metrics,
    })
}

/// Switches to `--user` if given (handing it the alert file and spool first); warns when the
/// sensor would otherwise read packets as root. A failed drop is an error: never run on as root.
fn drop_privileges(settings: &Settings) -> anyhow::Result<()> {
    let Some(name) = &settings.user else {
        if crate::privilege::ids().1 == 0 {
            tracing::warn!("running as root: decoders will parse hostile traffic with full privileges; use --user (or the systemd unit's User=)");
        }
        return Ok(());
    };
    let user = crate::privilege::User::lookup(name)?;
    if crate::privilege::ids().1 == 0 {
        if let crate::cli::AlertOutput::File(p) = &settings.alerts {
            user.hand_over(p)?;
        }
        if let Some(dir) = &settings.outputs.delivery.spool_dir {
            user.hand_over(dir)?;
        }
    }
    user.become_user()?;
    tracing::info!(user = %user.name, uid = user.uid, gid = user.gid, "dropped root privileges");
    Ok(())
}

/// The packet source for this run.
enum Source {
    Live(LiveSource),
    /// One AF_PACKET socket per capture thread, sharing the interface by flow hash.
    AfPacket(Vec<AfPacketSource>),
    Files {
        files: Vec<std::path::PathBuf>,
    },
}

impl Source {
    fn open(input: &InputMode) -> anyhow::Result<Source> {
        Ok(match input {
            InputMode::Live {
                interface,
                bpf,
                buffer_mb,
                backend: CaptureBackend::Pcap,
                ..
            } => Source::Live(LiveSource::open(interface, bpf.as_deref(), *buffer_mb)?),
            InputMode::Live {
                interface,
                bpf,
                buffer_mb,
                backend: CaptureBackend::AfPacket,
                capture_threads,
            } => {
                let cfg = AfPacketConfig {
                    interface,
                    bpf: bpf.as_deref(),
                    ring_mb: *buffer_mb,
                    // One socket needs no group; several join one named after this process, so
                    // two sensors on one interface each see all of its packets.
                    fanout_group: (*capture_threads > 1).then(|| std::process::id() as u16),
                };
                let sources = (0..*capture_threads)
                    .map(|_| AfPacketSource::open(&cfg))
                    .collect::<Result<Vec<_>, _>>()?;
                Source::AfPacket(sources)
            }
            InputMode::Files(files) => {
                // Check every file up front: a typo in the last file should not cost a long run.
                // A pipe (`tcpdump -w - | nigehban read /dev/stdin`) can be read only once, so
                // it is read when its turn comes.
                for f in files {
                    if std::fs::metadata(f).map_or(true, |m| m.is_file()) {
                        FileSource::open(f)?;
                    }
                }
                Source::Files { files: files.clone() }
            }
        })
    }

    fn is_live(&self) -> bool {
        !matches!(self, Source::Files { .. })
    }

    /// Capture threads this source is read by.
    fn threads(&self) -> usize {
        match self {
            Source::AfPacket(s) => s.len(),
            _ => 1,
        }
    }

    fn stats(&mut self) -> CaptureStats {
        match self {
            Source::Live(l) => l.stats(),
            Source::AfPacket(sources) => sources.iter_mut().fold(CaptureStats::default(), |acc, s| {
                let st = s.stats();
                CaptureStats {
                    received: acc.received + st.received,
                    dropped: acc.dropped + st.dropped,
                    if_dropped: acc.if_dropped + st.if_dropped,
                }
            }),
            Source::Files { .. } => CaptureStats::default(),
        }
    }
}

/// Runs the capture loop(s) until the input ends or `stop`: one on this thread for libpcap and
/// files, one scoped thread per AF_PACKET socket. Returns packets read, packets dropped at full
/// worker queues, and the first error.
fn capture(
    source: &mut Source,
    mut dispatchers: Vec<Dispatcher>,
    settings: &Settings,
    metrics: &Arc<Metrics>,
    stop: &AtomicBool,
) -> (u64, u64, anyhow::Result<()>) {
    let finish = |mut cap: CaptureLoop, stats: CaptureStats, freezes: u64, result: anyhow::Result<()>| {
        cap.dispatcher.flush();
        cap.publish_stats(stats, freezes);
        (cap.packets, cap.dispatcher.dropped_packets(), result)
    };
    match source {
        Source::AfPacket(sources) => std::thread::scope(|scope| {
            let handles: Vec<_> = sources
                .iter_mut()
                .zip(dispatchers)
                .enumerate()
                .map(|(i, (src, d))| {
                    let mut cap = CaptureLoop::new(d, settings, Arc::clone(metrics), i);
                    std::thread::Builder::new()
                        .name(format!("capture-{i}"))
                        .spawn_scoped(scope, move || {
                            let result = cap.run_live(src, stop);
                            if result.is_err() {
                                // The other sockets share the interface: end the run, not
                                // this thread alone.
                                stop.store(true, Ordering::Relaxed);
                            }
                            let stats = src.stats();
                            finish(cap, stats, src.ring_freezes(), result)
                        })
                })
                .collect();
            let mut total = (0, 0, Ok(()));
            for h in handles {
                let (p, d, r) = match h {
                    Ok(h) => h
                        .join()
                        .unwrap_or_else(|_| (0, 0, Err(anyhow::anyhow!("a capture thread panicked")))),
                    Err(e) => (0, 0, Err(anyhow::anyhow!("cannot start a capture thread: {e}"))),
                };
                total.0 += p;
                total.1 += d;
                if total.2.is_ok() {
                    total.2 = r;
                }
            }
            total
        }),
        _ => {
            let mut cap = CaptureLoop::new(dispatchers.remove(0), settings, Arc::clone(metrics), 0);
            let result = cap.run(source, stop);
            let stats = source.stats();
            finish(cap, stats, 0, result)
        }
    }
}

/// What the capture loop needs from a live source; implemented by both backends so the loop is
/// compiled once for each (no dynamic dispatch per packet).
trait LivePackets {
    fn link(&self) -> LinkType;
    fn next_packet(&mut self) -> Result<Next<'_>, CaptureError>;
    fn stats(&mut self) -> CaptureStats;
    fn ring_freezes(&self) -> u64;
}

impl LivePackets for LiveSource {
    fn link(&self) -> LinkType {
        LiveSource::link(self)
    }
    fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        LiveSource::next_packet(self)
    }
    fn stats(&mut self) -> CaptureStats {
        LiveSource::stats(self)
    }
    fn ring_freezes(&self) -> u64 {
        0
    }
}

impl LivePackets for AfPacketSource {
    fn link(&self) -> LinkType {
        AfPacketSource::link(self)
    }
    fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        AfPacketSource::next_packet(self)
    }
    fn stats(&mut self) -> CaptureStats {
        AfPacketSource::stats(self)
    }
    fn ring_freezes(&self) -> u64 {
        AfPacketSource::ring_freezes(self)
    }
}

/// Results of the capture thread's per-packet triage (metric label `result`).
#[derive(Clone, Copy)]
enum Triage {
    Queued,
    NoEgress,
    DecodeSkipped,
    FragmentHeld,
}

const TRIAGE_LABELS: [&str; 4] = ["queued", "no_egress", "decode_skipped", "fragment_held"];

/// The decoder's running counts, as last added to the metrics.
#[derive(Clone, Copy, Default)]
struct DecoderCounts {
    checksum_errors: u64,
    defrag_reassembled: u64,
    defrag_dropped: u64,
    defrag_conflicts: u64,
}

struct CaptureLoop {
    dispatcher: Dispatcher,
    /// This capture thread's number, as the metric label `thread`.
    thread: String,
    published_packets: u64,
    published_freezes: u64,
    decoder: Decoder,
    hasher: ShardHasher,
    home_net: crate::cli::HomeNet,
    metrics: Arc<Metrics>,
    packets: u64,
    triage: [(u64, u64); 4],
    published: [(u64, u64); 4],
    published_drops: u64,
    published_decoder: DecoderCounts,
    skips: Vec<(Skip, u64)>,
    last_stats: CaptureStats,
    last_publish: Instant,
}

impl CaptureLoop {
    fn new(dispatcher: Dispatcher, settings: &Settings, metrics: Arc<Metrics>, thread: usize) -> CaptureLoop {
        CaptureLoop {
            dispatcher,
            thread: thread.to_string(),
            published_packets: 0,
            published_freezes: 0,
            decoder: Decoder::new(settings.defrag.clone()).with_checksums(settings.checksum_validation),
            hasher: ShardHasher::default(),
            home_net: settings.home_net.clone(),
            metrics,
            packets: 0,
            triage: [(0, 0); 4],
            published: [(0, 0); 4],
            published_drops: 0,
            published_decoder: DecoderCounts::default(),
            skips: Vec::new(),
            last_stats: CaptureStats::default(),
            last_publish: Instant::now(),
        }
    }

    fn run(&mut self, source: &mut Source, stop: &AtomicBool) -> anyhow::Result<()> {
        match source {
            Source::Live(live) => self.run_live(live, stop),
            Source::AfPacket(_) => unreachable!("af-packet sources run on their own threads"),
            Source::Files { files, .. } => {
                let files = files.clone();
                self.run_files(&files, stop)
            }
        }
    }

    fn run_live<S: LivePackets>(&mut self, live: &mut S, stop: &AtomicBool) -> anyhow::Result<()> {
        let link = live.link();
        while !stop.load(Ordering::Relaxed) {
            match live.next_packet()? {
                Next::Packet(p) => self.packet(link, p),
                // Quiet link: send partial batches so alerts are not held back.
                _ => self.dispatcher.flush(),
            }
            if self.last_publish.elapsed() >= Duration::from_secs(1) {
                // Once a second: let workers run their timers even if no packet reaches them.
                self.dispatcher.tick(Timestamp::now());
                let stats = live.stats();
                self.publish_stats(stats, live.ring_freezes());
            }
        }
        tracing::info!("stop requested; flushing");
        Ok(())
    }

    fn run_files(&mut self, files: &[std::path::PathBuf], stop: &AtomicBool) -> anyhow::Result<()> {
        let mut damage: Vec<String> = Vec::new();
        for path in files {
            let mut f = FileSource::open(path)?;
            let link = f.link();
            loop {
                if stop.load(Ordering::Relaxed) {
                    tracing::info!("stop requested; flushing");
                    return Ok(());
                }
                match f.next_packet() {
                    Ok(Next::Packet(p)) => {
                        self.packet(link, p);
                        if self.packets.is_multiple_of(65536) {
                            self.publish_stats(CaptureStats::default(), 0);
                        }
                    }
                    Ok(_) => break,
                    Err(e) => {
                        // Everything before the damage was processed; go on with the next
                        // file and fail the run at the end.
                        tracing::error!(error = %e, "damaged capture file");
                        damage.push(e.to_string());
                        break;
                    }
                }
            }
            tracing::info!(file = %path.display(), packets = f.packets(), "file done");
        }
        if damage.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(damage.join("; ")))
        }
    }

    fn packet(&mut self, link: LinkType, p: RawPacket<'_>) {
        self.packets += 1;
        let triage = self.triage_packet(link, p.ts, p.data);
        let t = &mut self.triage[triage as usize];
        t.0 += 1;
        t.1 += u64::from(p.wire_len);
    }

    fn triage_packet(&mut self, link: LinkType, ts: Timestamp, data: &[u8]) -> Triage {
        let pkt = match self.decoder.decode(link, ts, data) {
            Ok(p) => p,
            Err(skip) => {
                if skip.as_label() == "fragment_held" {
                    return Triage::FragmentHeld;
                }
                match self.skips.iter_mut().find(|(s, _)| *s == skip) {
                    Some((_, n)) => *n += 1,
                    None => self.skips.push((skip, 1)),
                }
                return Triage::DecodeSkipped;
            }
        };
        // Workers get the decoded packet (a reassembled datagram's too), never the frame.
        let Some(q) = Queued::of(&pkt, ts, &self.home_net) else {
            return Triage::NoEgress;
        };
        let worker = (self.hasher.hash(&q.key) % self.dispatcher.workers() as u64) as usize;
        self.dispatcher.push(worker, &q);
        Triage::Queued
    }

    fn publish_stats(&mut self, s: CaptureStats, ring_freezes: u64) {
        self.last_publish = Instant::now();
        let m = &self.metrics;
        m.capture_thread_packets
            .with_label_values(&[&self.thread])
            .inc_by(self.packets - self.published_packets);
        self.published_packets = self.packets;
        m.capture_ring_freezes
            .inc_by(ring_freezes.saturating_sub(self.published_freezes));
        self.published_freezes = ring_freezes;
        for (i, label) in TRIAGE_LABELS.iter().enumerate() {
            let (p, b) = self.triage[i];
            let (pp, pb) = self.published[i];
            m.packets.with_label_values(&[label]).inc_by(p - pp);
            m.bytes.with_label_values(&[label]).inc_by(b - pb);
            self.published[i] = (p, b);
        }
        let drops = self.dispatcher.dropped_packets();
        m.queue_drops.inc_by(drops - self.published_drops);
        self.published_drops = drops;
        for (skip, n) in self.skips.drain(..) {
            m.decode_skipped.with_label_values(&[skip.as_label()]).inc_by(n);
        }
        // Each capture thread has its own decoder, so each adds what it counted since its own
        // last publish (the shared counter's value is the sum over threads).
        let d = self.decoder.defrag_stats();
        let now = DecoderCounts {
            checksum_errors: self.decoder.checksum_errors(),
            defrag_reassembled: d.reassembled,
            defrag_dropped: d.timed_out + d.memcap_dropped + d.too_many_fragments + d.invalid,
            defrag_conflicts: d.conflicts,
        };
        let was = std::mem::replace(&mut self.published_decoder, now);
        m.checksum_errors.inc_by(now.checksum_errors - was.checksum_errors);
        m.defrag_reassembled
            .inc_by(now.defrag_reassembled - was.defrag_reassembled);
        m.defrag_dropped.inc_by(now.defrag_dropped - was.defrag_dropped);
        m.defrag_conflicts.inc_by(now.defrag_conflicts - was.defrag_conflicts);
        for (w, depth) in self.dispatcher.queue_depths().enumerate() {
            m.queue_depth.with_label_values(&[&w.to_string()]).set(depth as i64);
        }
        m.capture_received
            .inc_by(s.received.saturating_sub(self.last_stats.received));
        m.capture_kernel_drops
            .inc_by(s.dropped.saturating_sub(self.last_stats.dropped));
        m.capture_interface_drops
            .inc_by(s.if_dropped.saturating_sub(self.last_stats.if_dropped));
        self.last_stats = s;
    }
}
