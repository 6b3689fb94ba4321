//! Alert outputs. Today: JSON lines to stdout or a file, written by one thread so workers never
//! wait on I/O beyond a bounded queue.

pub mod http;
pub mod output;
pub mod spool;
pub mod tls;

use crate::cli::AlertOutput;
use crate::metrics::Metrics;
use crossbeam_channel::Receiver;
use std::io::Write;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Alerts waiting for the writer before workers block.
pub const QUEUE: usize = 4096;

/// Opens the output (so a bad path fails at start, not at the first alert) and starts the
/// writer thread. The thread ends when every sender is dropped, after flushing.
pub fn start(output: &AlertOutput, rx: Receiver<String>, metrics: Arc<Metrics>) -> anyhow::Result<JoinHandle<u64>> {
    let out: Box<dyn Write + Send> = match output {
        AlertOutput::Stdout => Box::new(std::io::stdout()),
        AlertOutput::File(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| anyhow::anyhow!("cannot open alert file {}: {e}", p.display()))?;
            Box::new(f)
        }
    };
    let what = match output {
        AlertOutput::Stdout => "stdout".to_string(),
        AlertOutput::File(p) => p.display().to_string(),
    };
    Ok(std::thread::Builder::new()
        .name("alerts".into())
        .spawn(move || write_loop(out, &what, rx, &metrics))?)
}

fn write_loop(out: Box<dyn Write + Send>, what: &str, rx: Receiver<String>, metrics: &Metrics) -> u64 {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut written = 0u64;
    let mut failing = false;
    while let Ok(line) = rx.recv() {
        let mut result = out.write_all(line.as_bytes()).and_then(|_| out.write_all(b"\n"));
        // Flush whenever the queue is drained, so alerts are visible at once when traffic is quiet.
        if result.is_ok() && rx.is_empty() {
            result = out.flush();
        }
        match result {
            Ok(()) => {
                written += 1;
                if failing {
                    tracing::info!(output = what, "alert output writable again");
                    failing = false;
                }
            }
            Err(e) => {
                metrics.alert_write_errors.inc();
                if !failing {
                    tracing::error!(output = what, error = %e, "cannot write alert; counting failures in nigehban_alert_write_errors_total");
                    failing = true;
                }
            }
        }
    }
    if let Err(e) = out.flush() {
        tracing::error!(output = what, error = %e, "cannot flush alerts");
    }
    written
}
