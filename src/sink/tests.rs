//! The delivery machinery (fan-out, queues, spool, backoff, shutdown) with a scripted receiver:
//! a transport whose availability the test switches, recording what it accepted. The real
//! receivers (rsyslog, HTTPS collectors) are exercised by the integration tests.

use super::output::DeliveryError;
use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Default)]
struct Script {
    up: AtomicBool,
    /// Delay per send, to make a slow receiver.
    delay_ms: AtomicUsize,
    got: Mutex<Vec<String>>,
    attempts: AtomicUsize,
}

struct Scripted(Arc<Script>);

impl Transport for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }
    fn endpoint(&self) -> String {
        "test".into()
    }
    fn send(&mut self, alerts: &[&str]) -> Result<(), DeliveryError> {
        self.0.attempts.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(self.0.delay_ms.load(Ordering::Relaxed) as u64));
        if !self.0.up.load(Ordering::Relaxed) {
            return Err(DeliveryError::Unavailable("down".into()));
        }
        self.0.got.lock().unwrap().extend(alerts.iter().map(|s| s.to_string()));
        Ok(())
    }
    fn max_batch(&self) -> usize {
        7
    }
}

fn settings(spool: Option<&std::path::Path>, queue: usize, drain_ms: u64) -> DeliverySettings {
    DeliverySettings {
        spool_dir: spool.map(|p| p.to_path_buf()),
        spool_max_bytes: 1 << 30,
        queue_alerts: queue,
        drain_timeout: Duration::from_millis(drain_ms),
    }
}

fn run(script: &Arc<Script>, s: &DeliverySettings, alerts: &[String], during: impl FnOnce()) -> (u64, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    let sink = start(
        vec![OutputSpec {
            name: "t".into(),
            transport: Box::new(Scripted(Arc::clone(script))),
        }],
        s,
        rx,
        Arc::clone(&metrics),
    )
    .unwrap();
    let half = alerts.len() / 2;
    for a in &alerts[..half] {
        tx.send(a.clone()).unwrap();
    }
    during();
    for a in &alerts[half..] {
        tx.send(a.clone()).unwrap();
    }
    drop(tx);
    (sink.finish(), metrics)
}

fn alerts(n: usize, tag: &str) -> Vec<String> {
    (0..n).map(|i| format!("{{\"{tag}\":{i}}}")).collect()
}

fn metric(m: &Metrics, name: &str) -> f64 {
    m.render()
        .lines()
        .find(|l| l.starts_with(name) && l.contains("output=\"t\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn outage_then_recovery_delivers_everything_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let script = Arc::new(Script::default());
    let all = alerts(500, "a");
    let s2 = Arc::clone(&script);
    let (n, m) = run(&script, &settings(Some(dir.path()), 16, 20_000), &all, move || {
        // Down for the first half and a while after; then the receiver comes back.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(600));
            s2.up.store(true, Ordering::Relaxed);
        });
    });
    assert_eq!(n, 500);
    assert_eq!(*script.got.lock().unwrap(), all, "every alert, once, in order");
    assert_eq!(metric(&m, "nigehban_output_delivered_total"), 500.0);
    assert!(metric(&m, "nigehban_output_spooled_total") > 0.0);
    assert!(metric(&m, "nigehban_output_failed_total") > 0.0);
    assert_eq!(metric(&m, "nigehban_output_spool_bytes"), 0.0);
}

#[test]
fn slow_receiver_overflows_to_spool_without_blocking_and_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let script = Arc::new(Script::default());
    script.up.store(true, Ordering::Relaxed);
    script.delay_ms.store(2, Ordering::Relaxed);
    let all = alerts(2000, "s");
    let t0 = Instant::now();
    let (n, m) = run(&script, &settings(Some(dir.path()), 8, 60_000), &all, || {});
    assert_eq!(n, 2000);
    assert_eq!(*script.got.lock().unwrap(), all);
    assert!(
        metric(&m, "nigehban_output_spooled_total") > 0.0,
        "a queue of 8 must overflow"
    );
    assert!(t0.elapsed() < Duration::from_secs(30));
}

#[test]
fn receiver_down_at_exit_leaves_everything_in_the_spool_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let script = Arc::new(Script::default());
    let first = alerts(300, "x");
    let t0 = Instant::now();
    let (_, m) = run(&script, &settings(Some(dir.path()), 16, 300), &first, || {});
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "shutdown is bounded by the drain timeout"
    );
    assert!(script.got.lock().unwrap().is_empty());
    assert!(metric(&m, "nigehban_output_spool_bytes") > 0.0);
    // Next start: the receiver is up; spooled alerts go first, then the new ones.
    script.up.store(true, Ordering::Relaxed);
    let second = alerts(50, "y");
    run(&script, &settings(Some(dir.path()), 16, 5_000), &second, || {});
    let want: Vec<String> = first.iter().chain(second.iter()).cloned().collect();
    assert_eq!(*script.got.lock().unwrap(), want);
}

#[test]
fn without_a_spool_an_unreachable_output_drops_and_counts() {
    let script = Arc::new(Script::default());
    let all = alerts(100, "d");
    let (_, m) = run(&script, &settings(None, 10, 200), &all, || {});
    let text = m.render();
    let dropped: f64 = text
        .lines()
        .filter(|l| l.starts_with("nigehban_output_dropped_total") && l.contains("output=\"t\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(dropped, 100.0, "{text}");
}

#[test]
fn one_dead_output_does_not_hold_back_another() {
    let dir = tempfile::tempdir().unwrap();
    let (dead, live) = (Arc::new(Script::default()), Arc::new(Script::default()));
    live.up.store(true, Ordering::Relaxed);
    dead.delay_ms.store(50, Ordering::Relaxed);
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    let sink = start(
        vec![
            OutputSpec {
                name: "dead".into(),
                transport: Box::new(Scripted(Arc::clone(&dead))),
            },
            OutputSpec {
                name: "live".into(),
                transport: Box::new(Scripted(Arc::clone(&live))),
            },
        ],
        &settings(Some(dir.path()), 4, 200),
        rx,
        metrics,
    )
    .unwrap();
    let all = alerts(1000, "m");
    for a in &all {
        tx.send(a.clone()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while live.got.lock().unwrap().len() < all.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        *live.got.lock().unwrap(),
        all,
        "the live output got everything while the other was dead"
    );
    drop(tx);
    sink.finish();
}
