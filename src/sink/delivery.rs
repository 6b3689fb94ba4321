//! One output's delivery: its queue, its spool, its thread.
//!
//! Ordering rule (what makes replay "in order" without ever rewriting the spool's tail): the
//! fan-out puts an alert in the output's queue only while the spool is not in use (`spilling`
//! false). Once the queue is full, or delivery failed, `spilling` is set and every new alert is
//! appended to the spool. So whenever the spool holds anything, the alerts in memory (queue and
//! the batch in hand) are *older* than all of it; on failure they are put in front of it
//! ([`Spool::prepend`]), together with the queue, drained under the lock `offer` takes. The
//! delivery thread replays the spool only when, under that lock, the queue is empty.
//! `spilling` is cleared only by the delivery thread, under the same lock, when the spool is
//! empty.

use super::output::{DeliveryError, Transport};
use super::retry::Backoff;
use super::spool::{Spool, SpoolError};
use crate::metrics::Metrics;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use prometheus::{IntCounter, IntGauge};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// One output's metric series, resolved once.
pub(super) struct OutputMetrics {
    delivered: IntCounter,
    failed: IntCounter,
    retried: IntCounter,
    spooled: IntCounter,
    spool_bytes: IntGauge,
    queue_depth: IntGauge,
    connected: IntGauge,
    metrics: Arc<Metrics>,
    name: String,
}

impl OutputMetrics {
    fn new(metrics: &Arc<Metrics>, name: &str) -> OutputMetrics {
        let l = &[name];
        OutputMetrics {
            delivered: metrics.output_delivered.with_label_values(l),
            failed: metrics.output_failed.with_label_values(l),
            retried: metrics.output_retried.with_label_values(l),
            spooled: metrics.output_spooled.with_label_values(l),
            spool_bytes: metrics.output_spool_bytes.with_label_values(l),
            queue_depth: metrics.output_queue_depth.with_label_values(l),
            connected: metrics.output_connected.with_label_values(l),
            metrics: Arc::clone(metrics),
            name: name.to_string(),
        }
    }

    fn dropped(&self, reason: &'static str, n: usize) {
        self.metrics
            .output_dropped
            .with_label_values(&[&self.name, reason])
            .inc_by(n as u64);
    }
}

/// The spool and the flag that says whether new alerts must go to it.
struct SpoolSide {
    spool: Option<Spool>,
    /// Invariant: true whenever `spool` holds unacknowledged records (false implies empty).
    spilling: bool,
    /// A "spool full" episode is logged once, at its start.
    full_logged: bool,
    error_logged: bool,
}

/// What the fan-out and the delivery thread share for one output.
pub(super) struct Output {
    pub(super) name: String,
    side: Mutex<SpoolSide>,
    m: OutputMetrics,
}

impl Output {
    /// `spool` is opened by the caller (so a bad directory fails at start). A spool left
    /// non-empty by an earlier run starts in spilling mode: its alerts go out before new ones.
    pub(super) fn new(name: String, spool: Option<Spool>, metrics: &Arc<Metrics>) -> Output {
        let m = OutputMetrics::new(metrics, &name);
        m.connected.set(1);
        let spilling = spool.as_ref().is_some_and(|s| !s.is_empty());
        if let Some(s) = &spool {
            m.spool_bytes.set(s.bytes() as i64);
            if spilling {
                tracing::info!(output = %name, spool = %s.dir().display(), bytes = s.bytes(),
                    "alerts spooled by an earlier run will be delivered before new ones");
            }
        }
        Output {
            name,
            side: Mutex::new(SpoolSide {
                spool,
                spilling,
                full_logged: false,
                error_logged: false,
            }),
            m,
        }
    }

    fn side(&self) -> MutexGuard<'_, SpoolSide> {
        // A panic while holding the lock left the spool's state as consistent as the files;
        // carrying on is better than losing every later alert.
        self.side.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fan-out side: hands one alert to this output without ever blocking.
    pub(super) fn offer(&self, tx: &Sender<String>, line: String) {
        let mut side = self.side();
        if !side.spilling {
            match tx.try_send(line) {
                Ok(()) => self.m.queue_depth.set(tx.len() as i64),
                Err(TrySendError::Full(l)) | Err(TrySendError::Disconnected(l)) => {
                    if side.spool.is_none() {
                        self.m.dropped("queue_full", 1);
                        if !side.full_logged {
                            side.full_logged = true;
                            tracing::error!(output = %self.name, "output queue full and no --spool-dir: dropping alerts for this output (nigehban_output_dropped_total)");
                        }
                    } else {
                        side.spilling = true;
                        self.append(&mut side, &l);
                    }
                }
            }
        } else {
            self.append(&mut side, &line);
        }
    }

    fn append(&self, side: &mut SpoolSide, line: &str) {
        let Some(spool) = side.spool.as_mut() else { return };
        match spool.append(line) {
            Ok(()) => {
                self.m.spooled.inc();
                self.m.spool_bytes.set(spool.bytes() as i64);
                side.full_logged = false;
                side.error_logged = false;
            }
            Err(e @ SpoolError::Full { .. }) => {
                self.m.dropped("spool_full", 1);
                if !side.full_logged {
                    side.full_logged = true;
                    tracing::error!(output = %self.name, error = %e, "dropping the newest alerts for this output (nigehban_output_dropped_total{{reason=\"spool_full\"}})");
                }
            }
            Err(e) => {
                self.m.dropped("spool_error", 1);
                if !side.error_logged {
                    side.error_logged = true;
                    tracing::error!(output = %self.name, error = %e, "cannot spool alert; dropping it");
                }
            }
        }
    }

    /// Makes appended records durable (group commit: the fan-out calls this when idle).
    pub(super) fn sync(&self) {
        let mut side = self.side();
        if let Some(s) = side.spool.as_mut() {
            if s.unsynced() > 0 {
                if let Err(e) = s.sync() {
                    tracing::error!(output = %self.name, error = %e, "cannot sync spool");
                }
            }
        }
    }

    /// Puts every alert held in memory (the batch in hand, then the queue) in front of the spool
    /// and turns spilling on. Returns false when there is no spool (the caller keeps them).
    ///
    /// The queue is drained under the lock [`Output::offer`] takes: an alert offered between the
    /// drain and `spilling = true` would otherwise stay queued while newer alerts go to the
    /// spool, and be replayed after them.
    fn spill_front(&self, rx: &Receiver<String>, pending: &mut Vec<String>) -> bool {
        let mut side = self.side();
        let Some(spool) = side.spool.as_mut() else { return false };
        drain(rx, pending);
        if pending.is_empty() {
            return true;
        }
        let n = pending.len();
        match spool.prepend(pending) {
            Ok(kept) => {
                self.m.spooled.inc_by(kept as u64);
                if kept < n {
                    self.m.dropped("spool_full", n - kept);
                    tracing::error!(output = %self.name, dropped = n - kept, "spool full: newest alerts dropped");
                }
            }
            Err(e) => {
                self.m.dropped("spool_error", n);
                tracing::error!(output = %self.name, error = %e, dropped = n, "cannot spool undelivered alerts");
            }
        }
        self.m.spool_bytes.set(spool.bytes() as i64);
        pending.clear();
        side.spilling = true;
        true
    }
}

/// How the delivery thread learns that shutdown has begun and when it must give up.
pub(super) type Deadline = Arc<OnceLock<Instant>>;

enum Replay {
    /// Nothing spooled (spilling is now off).
    Empty,
    /// The queue holds alerts older than the spool: they go first.
    QueueFirst,
    Sent,
    Failed(DeliveryError),
}

/// The delivery thread of one output. Returns when the fan-out has ended and everything is
/// delivered, or when the shutdown deadline passes (what is left is spooled, or counted lost).
pub(super) fn run(mut t: Box<dyn Transport>, rx: Receiver<String>, out: Arc<Output>, deadline: Deadline) {
    let max = t.max_batch().max(1);
    let mut backoff = Backoff::default();
    let mut pending: Vec<String> = Vec::with_capacity(max);
    let mut closed = false;
    let mut failing_since: Option<Instant> = None;
    loop {
        if deadline.get().is_some_and(|d| Instant::now() >= *d) {
            break;
        }
        if pending.is_empty() {
            closed |= fill(&rx, &mut pending, max);
            out.m.queue_depth.set(rx.len() as i64);
        }
        let result = if pending.is_empty() {
            match replay(&mut *t, &out, &rx, max) {
                Replay::Sent => Ok(()),
                Replay::QueueFirst => continue,
                Replay::Failed(e) => Err(e),
                Replay::Empty => {
                    if closed {
                        break;
                    }
                    match rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(l) => pending.push(l),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => closed = true,
                    }
                    continue;
                }
            }
        } else {
            let refs: Vec<&str> = pending.iter().map(String::as_str).collect();
            let r = t.send(&refs);
            match &r {
                Ok(()) => out.m.delivered.inc_by(pending.len() as u64),
                Err(DeliveryError::Rejected(e)) => {
                    out.m.dropped("rejected", pending.len());
                    tracing::error!(output = %out.name, error = %e, alerts = pending.len(), "receiver rejected alerts for good; dropped");
                }
                Err(_) => out.m.failed.inc_by(pending.len() as u64),
            }
            if !matches!(r, Err(DeliveryError::Unavailable(_)) | Err(DeliveryError::Config(_))) {
                pending.clear();
            }
            r
        };
        match result {
            Ok(()) | Err(DeliveryError::Rejected(_)) => {
                if let Some(since) = failing_since.take() {
                    tracing::info!(output = %out.name, endpoint = %t.endpoint(), down_secs = since.elapsed().as_secs(), "output delivering again");
                }
                out.m.connected.set(1);
                backoff.reset();
            }
            Err(e) => {
                out.m.connected.set(0);
                out.m.metrics.alert_write_errors.inc();
                let config = matches!(e, DeliveryError::Config(_));
                if failing_since.is_none() {
                    failing_since = Some(Instant::now());
                    tracing::error!(output = %out.name, endpoint = %t.endpoint(), error = %e,
                        "cannot deliver alerts; spooling and retrying with backoff");
                } else {
                    tracing::debug!(output = %out.name, error = %e, "delivery retry failed");
                }
                if !pending.is_empty() {
                    // Everything still in memory is older than the spool: put it in front, so
                    // replay keeps the order and a crash during the outage loses nothing.
                    out.spill_front(&rx, &mut pending);
                }
                sleep(backoff.fail(config), &deadline);
            }
        }
    }
    // Shutdown deadline passed or everything delivered: keep whatever is still in memory.
    if !out.spill_front(&rx, &mut pending) {
        drain(&rx, &mut pending);
    }
    if !pending.is_empty() {
        out.m.dropped("shutdown", pending.len());
        tracing::error!(output = %out.name, lost = pending.len(), "shutdown: alerts not delivered in time and no --spool-dir to keep them; lost");
    }
    let side = out.side();
    if let Some(s) = &side.spool {
        if !s.is_empty() {
            tracing::warn!(output = %out.name, spool = %s.dir().display(), bytes = s.bytes(),
                "undelivered alerts stay in the spool; the next start delivers them first");
        }
    }
    out.m.queue_depth.set(0);
}

/// Takes queued alerts into `pending` up to `max`; true when the queue is closed and empty.
fn fill(rx: &Receiver<String>, pending: &mut Vec<String>, max: usize) -> bool {
    while pending.len() < max {
        match rx.try_recv() {
            Ok(l) => pending.push(l),
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => return true,
        }
    }
    false
}

fn drain(rx: &Receiver<String>, pending: &mut Vec<String>) -> bool {
    fill(rx, pending, usize::MAX)
}

/// Sends the oldest spooled batch, acknowledging it in the spool on success.
fn replay(t: &mut dyn Transport, out: &Output, rx: &Receiver<String>, max: usize) -> Replay {
    let batch = {
        let mut side = out.side();
        if !side.spilling {
            return Replay::Empty;
        }
        // The queue may have filled up (and spilling begun) since the caller found it empty;
        // what it holds is older than the spool. Once spilling is on under this lock, nothing
        // more joins the queue, so an empty queue here means the spool is next.
        if !rx.is_empty() {
            return Replay::QueueFirst;
        }
        let Some(spool) = side.spool.as_mut() else {
            side.spilling = false;
            return Replay::Empty;
        };
        match spool.peek(max) {
            Ok(b) if b.is_empty() => {
                side.spilling = false;
                return Replay::Empty;
            }
            Ok(b) => b,
            Err(e) => {
                // An unreadable spool must not wedge live delivery: give up on what it holds.
                tracing::error!(output = %out.name, error = %e, "cannot read spool; new alerts bypass it");
                out.m.dropped("spool_error", 1);
                side.spilling = false;
                return Replay::Empty;
            }
        }
    };
    let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
    let r = t.send(&refs);
    let n = batch.len();
    match r {
        Ok(()) | Err(DeliveryError::Rejected(_)) => {
            if let Err(DeliveryError::Rejected(e)) = &r {
                out.m.dropped("rejected", n);
                tracing::error!(output = %out.name, error = %e, alerts = n, "receiver rejected spooled alerts for good; dropped");
            } else {
                out.m.delivered.inc_by(n as u64);
                out.m.retried.inc_by(n as u64);
            }
            let mut side = out.side();
            if let Some(spool) = side.spool.as_mut() {
                if let Err(e) = spool.ack(n) {
                    tracing::error!(output = %out.name, error = %e, "cannot record delivery in spool; those alerts may be sent again");
                }
                out.m.spool_bytes.set(spool.bytes() as i64);
            }
            Replay::Sent
        }
        Err(e) => {
            out.m.failed.inc_by(n as u64);
            Replay::Failed(e)
        }
    }
}

/// Sleeps `d`, or until the shutdown deadline if that comes first.
fn sleep(d: Duration, deadline: &Deadline) {
    let until = Instant::now() + d;
    loop {
        let now = Instant::now();
        let stop = match deadline.get() {
            Some(dl) => until.min(*dl),
            None => until,
        };
        if now >= stop {
            return;
        }
        std::thread::sleep((stop - now).min(Duration::from_millis(100)));
    }
}
