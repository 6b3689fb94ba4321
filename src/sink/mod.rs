//! Alert outputs: where alerts go after the workers raise them, and how none is lost on the way.
//!
//! ```text
//! workers ──▶ alert queue ──▶ fan-out ──┬─▶ queue ─▶ delivery thread ─▶ Transport (file)
//!             (bounded)        thread   ├─▶ queue ─▶ delivery thread ─▶ Transport (syslog)
//!                                       └─▶ queue ─▶ delivery thread ─▶ Transport (http-0)
//!                                              └──▶ spool (disk) when the queue is full
//!                                                   or the receiver is down
//! ```
//!
//! - **Workers never wait on a receiver.** The fan-out only ever `try_send`s to an output's
//!   bounded queue; when it is full, the alert goes to that output's disk spool (or, with no
//!   `--spool-dir`, is dropped and counted). One slow SIEM therefore stalls neither the sensor
//!   nor the other outputs.
//! - **At-least-once per output.** An alert leaves an output's care only when its [`Transport`]
//!   acknowledged it (see [`output`]). Failed batches go to the spool in order and are replayed
//!   with backoff ([`retry`]); the spool survives restarts ([`spool`]).
//! - **Shutdown is bounded.** When the workers are done (end of `read`, SIGTERM), the fan-out
//!   syncs the spools and starts the drain clock; each delivery thread keeps delivering until
//!   everything is acknowledged or the drain timeout passes, then spools what is left. The next
//!   start of either mode delivers the spool before new alerts.

mod delivery;
pub mod file;
pub mod http;
pub mod output;
pub mod retry;
pub mod spool;
pub mod syslog;
pub mod tls;

use crate::cli::AlertOutput;
use crate::metrics::Metrics;
use crossbeam_channel::{Receiver, Sender};
use output::Transport;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Alerts waiting between the workers and the fan-out before workers block. The fan-out never
/// waits on a receiver, so this queue drains at disk speed at worst.
pub const QUEUE: usize = 4096;

/// Delivery settings shared by every output (validated by `cli`).
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Root of the per-output spools (`<dir>/<output name>/`); `None` = no spool: alerts that
    /// cannot be queued or delivered in time are dropped and counted.
    pub spool_dir: Option<PathBuf>,
    /// Cap on each output's spool, bytes.
    pub spool_max_bytes: u64,
    /// Alerts held in memory per output before the spool takes over.
    pub queue_alerts: usize,
    /// After the workers end, how long outputs may keep trying before the rest is spooled.
    pub drain_timeout: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            spool_dir: None,
            spool_max_bytes: 1024 * 1024 * 1024,
            queue_alerts: 10_000,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// One configured output: a bounded, stable name (metric label, spool subdirectory, logs) and
/// its transport.
pub struct OutputSpec {
    /// `file`, `stdout`, `syslog`, `splunk-hec-0`, …
    pub name: String,
    /// The wire protocol.
    pub transport: Box<dyn Transport>,
}

/// The running sink.
pub struct Sink {
    fanout: JoinHandle<u64>,
    deliveries: Vec<JoinHandle<()>>,
}

impl Sink {
    /// Waits for the fan-out (it ends when every alert sender is dropped) and for the delivery
    /// threads (bounded by the drain timeout). Returns the number of alerts raised.
    pub fn finish(self) -> u64 {
        let n = self.fanout.join().unwrap_or_else(|_| {
            tracing::error!("the alert fan-out thread panicked");
            0
        });
        for d in self.deliveries {
            if d.join().is_err() {
                tracing::error!("an alert delivery thread panicked");
            }
        }
        n
    }
}

/// Opens every output's spool (so a bad directory fails at start), then starts the delivery
/// threads and the fan-out reading `rx`.
pub fn start(
    outputs: Vec<OutputSpec>,
    settings: &DeliverySettings,
    rx: Receiver<String>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Sink> {
    let deadline: delivery::Deadline = Arc::new(OnceLock::new());
    let mut fan = Vec::with_capacity(outputs.len());
    let mut deliveries = Vec::with_capacity(outputs.len());
    for spec in outputs {
        let spool = match &settings.spool_dir {
            Some(root) => Some(spool::Spool::open(&root.join(&spec.name), settings.spool_max_bytes)?),
            None => None,
        };
        tracing::info!(output = %spec.name, kind = spec.transport.kind(), endpoint = %spec.transport.endpoint(), "alert output");
        let out = Arc::new(delivery::Output::new(spec.name.clone(), spool, &metrics));
        let (tx, qrx) = crossbeam_channel::bounded(settings.queue_alerts.max(1));
        let (o, d) = (Arc::clone(&out), Arc::clone(&deadline));
        let t = spec.transport;
        deliveries.push(
            std::thread::Builder::new()
                .name(format!("out-{}", spec.name))
                .spawn(move || delivery::run(t, qrx, o, d))?,
        );
        fan.push((out, tx));
    }
    let drain = settings.drain_timeout;
    let fanout = std::thread::Builder::new()
        .name("alerts".into())
        .spawn(move || fan_out(rx, fan, &deadline, drain))?;
    Ok(Sink { fanout, deliveries })
}

fn fan_out(
    rx: Receiver<String>,
    outputs: Vec<(Arc<delivery::Output>, Sender<String>)>,
    deadline: &delivery::Deadline,
    drain: Duration,
) -> u64 {
    let mut n = 0u64;
    while let Ok(line) = rx.recv() {
        n += 1;
        if let Some(((last, last_tx), rest)) = outputs.split_last() {
            for (o, tx) in rest {
                o.offer(tx, line.clone());
            }
            last.offer(last_tx, line);
        }
        // Group commit: spooled alerts become durable when the burst ends.
        if rx.is_empty() {
            for (o, _) in &outputs {
                o.sync();
            }
        }
    }
    for (o, _) in &outputs {
        o.sync();
    }
    let _ = deadline.set(Instant::now() + drain);
    tracing::debug!(
        alerts = n,
        drain_secs = drain.as_secs(),
        "all alerts handed to outputs; draining"
    );
    // Dropping the senders tells each delivery thread that no more live alerts come.
    drop(outputs);
    n
}

/// Builds the transports for a validated configuration, in a fixed order (local, syslog,
/// HTTP) with fixed names. `hup` is the SIGHUP flag the file output watches.
pub fn build_outputs(
    local: &AlertOutput,
    rotation: Option<file::Rotation>,
    syslog: Option<&syslog::SyslogConfig>,
    http: &[(http::HttpOutputConfig, PathBuf)],
    hup: Arc<AtomicBool>,
) -> anyhow::Result<Vec<OutputSpec>> {
    let mut v = Vec::new();
    match local {
        AlertOutput::Stdout => v.push(OutputSpec {
            name: "stdout".into(),
            transport: Box::new(file::StdoutTransport::new()),
        }),
        AlertOutput::File(p) => v.push(OutputSpec {
            name: "file".into(),
            transport: Box::new(file::FileTransport::open(p, rotation, hup)?),
        }),
        AlertOutput::Off => {}
    }
    if let Some(s) = syslog {
        v.push(OutputSpec {
            name: "syslog".into(),
            transport: Box::new(syslog::SyslogTransport::new(s.clone())?),
        });
    }
    for (i, (h, base)) in http.iter().enumerate() {
        v.push(OutputSpec {
            name: format!("{}-{i}", h.kind.label()),
            transport: http::transport(h, base)?,
        });
    }
    if v.is_empty() {
        anyhow::bail!("no alert output: --alerts is off and no --syslog or HTTP output is configured");
    }
    Ok(v)
}

#[cfg(test)]
mod tests;
