//! Rule reload on SIGHUP, without a restart and without losing packets.
//!
//! Design constraints:
//! - The packet path takes no lock. [`LiveRules`] holds the matcher in use behind a mutex and its
//!   generation in an atomic; a worker loads the atomic once per batch and locks the mutex only
//!   when the generation changed, to clone the new [`Matcher`] (an `Arc`).
//! - Loading, compiling and checking the new set (the same steps as `nigehban rules check`) run on
//!   the reload thread. Only a set that passes every step is published; a broken one is refused
//!   with one error line naming the file, line and fault, and the old set keeps running.
//! - Where flows move (documented for operators in the README): a worker picks up the new
//!   generation at its next batch; each TCP stream then switches at the next bytes it scans
//!   (`DirScanner` re-scans its retained tail under the new rules, so a value straddling the
//!   switch is found once and a value waiting for its following bytes is still decided); UDP
//!   datagrams simply use the new set. An old matcher is freed when the last worker and the last
//!   stream opened by it let go of it.

use crate::matcher::{Matcher, MatcherError};
use crate::metrics::Metrics;
use crate::rules::{RuleError, RuleSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The rule set in use, swappable while workers run.
#[derive(Debug)]
pub struct LiveRules {
    /// Invariant: equals `current.0` whenever the mutex is unlocked; only grows.
    generation: AtomicU64,
    current: Mutex<(u64, Matcher)>,
}

impl LiveRules {
    /// `matcher` as generation 1.
    pub fn new(matcher: Matcher) -> LiveRules {
        LiveRules {
            generation: AtomicU64::new(1),
            current: Mutex::new((1, matcher)),
        }
    }

    /// Generation of the set in use (one atomic load; for the once-per-batch check).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The set in use and its generation.
    pub fn current(&self) -> (u64, Matcher) {
        let g = self.current.lock().unwrap_or_else(|e| e.into_inner());
        (g.0, g.1.clone())
    }

    /// Makes `matcher` the set in use; returns its generation.
    fn publish(&self, matcher: Matcher) -> u64 {
        let mut g = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let generation = g.0 + 1;
        *g = (generation, matcher);
        self.generation.store(generation, Ordering::Release);
        generation
    }
}

/// Why a reload was refused. The old set keeps running in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// A rule file is unreadable or wrong, or an example fails (the operator's to fix).
    #[error("rule reload refused, generation {generation} keeps running: {source}")]
    Rules {
        /// Generation still in use.
        generation: u64,
        /// What is wrong, with file and line.
        #[source]
        source: RuleError,
    },
    /// Hyperscan could not compile the set or allocate for it.
    #[error("rule reload refused, generation {generation} keeps running: {source}")]
    Matcher {
        /// Generation still in use.
        generation: u64,
        /// Hyperscan's complaint.
        #[source]
        source: MatcherError,
    },
}

/// Loads, compiles and checks the rule set in `dir` and publishes it. On error nothing changes
/// except the failure metrics.
pub fn reload(dir: &Path, live: &LiveRules, metrics: &Metrics) -> Result<u64, ReloadError> {
    let generation = live.generation();
    let result = RuleSet::load_dir(dir)
        .map_err(|source| ReloadError::Rules { generation, source })
        .and_then(|rules| Matcher::new(rules).map_err(|source| ReloadError::Matcher { generation, source }))
        .and_then(|m| match crate::rules::check(&m) {
            Ok(_) => Ok(m),
            Err(source) => Err(ReloadError::Rules { generation, source }),
        });
    match result {
        Ok(m) => {
            let rules = m.rules().rules().len();
            let generation = live.publish(m);
            metrics.rule_reloads.with_label_values(&["ok"]).inc();
            metrics.rules_last_reload_successful.set(1);
            set_in_use(metrics, generation, rules);
            Ok(generation)
        }
        Err(e) => {
            metrics.rule_reloads.with_label_values(&["failed"]).inc();
            metrics.rules_last_reload_successful.set(0);
            Err(e)
        }
    }
}

fn set_in_use(metrics: &Metrics, generation: u64, rules: usize) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    metrics.rules_generation.set(generation as i64);
    metrics.rules_loaded.set(rules as i64);
    metrics.rules_last_reload_timestamp.set(now as i64);
}

/// How often the reload thread looks at its SIGHUP flag: reload latency, not packet latency.
const POLL: Duration = Duration::from_millis(100);

/// The reload thread; stops (and unregisters its SIGHUP flag) when dropped.
#[derive(Debug)]
pub struct Reloader {
    stop: Arc<AtomicBool>,
    signal: signal_hook::SigId,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reloader {
    /// Registers a SIGHUP flag of its own (other SIGHUP users, such as the file output reopening
    /// its file for logrotate, keep theirs) and starts the thread that reloads `dir` into `live`
    /// on each SIGHUP. Signals arriving during a reload coalesce into one more reload.
    pub fn start(dir: PathBuf, live: Arc<LiveRules>, metrics: Arc<Metrics>) -> std::io::Result<Reloader> {
        let (generation, m) = live.current();
        set_in_use(&metrics, generation, m.rules().rules().len());
        metrics.rules_last_reload_successful.set(1);
        drop(m);
        let hup = Arc::new(AtomicBool::new(false));
        let signal = signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("reload".into()).spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                // Parked, not asleep: dropping the Reloader unparks it, so a run ends as soon as
                // its work does (a sleep made every `read` and every shutdown wait up to POLL).
                std::thread::park_timeout(POLL);
                if !hup.swap(false, Ordering::AcqRel) {
                    continue;
                }
                let started = std::time::Instant::now();
                match reload(&dir, &live, &metrics) {
                    Ok(generation) => tracing::info!(
                        generation,
                        rules = live.current().1.rules().rules().len(),
                        dir = %dir.display(),
                        millis = started.elapsed().as_millis() as u64,
                        "rules reloaded; flows move to them at their next bytes"
                    ),
                    Err(e) => tracing::error!("{e}"),
                }
            }
        })?;
        Ok(Reloader {
            stop,
            signal,
            thread: Some(thread),
        })
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.signal);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_copy() -> tempfile::TempDir {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let dir = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
            }
        }
        dir
    }

    #[test]
    fn a_good_set_is_published_and_a_broken_one_refused() {
        let dir = rules_copy();
        let live = LiveRules::new(crate::app::load_matcher(dir.path()).unwrap());
        let metrics = Metrics::new();
        let (_, first) = live.current();

        std::fs::remove_file(dir.path().join("iban.toml")).unwrap();
        assert_eq!(reload(dir.path(), &live, &metrics).unwrap(), 2);
        assert_eq!(live.generation(), 2);
        let (_, second) = live.current();
        assert!(second.rules().rules().len() < first.rules().rules().len());
        assert_eq!(metrics.rules_generation.get(), 2);
        assert_eq!(metrics.rules_loaded.get(), second.rules().rules().len() as i64);

        std::fs::write(dir.path().join("zz-broken.toml"), "[[rule]]\nid = \"X\"\nnme = 1\n").unwrap();
        let e = reload(dir.path(), &live, &metrics).unwrap_err().to_string();
        assert!(e.contains("zz-broken.toml:"), "{e}");
        assert!(e.contains("generation 2 keeps running"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        assert_eq!(live.generation(), 2);
        assert_eq!(metrics.rule_reloads.with_label_values(&["ok"]).get(), 1);
        assert_eq!(metrics.rule_reloads.with_label_values(&["failed"]).get(), 1);
        assert_eq!(metrics.rules_last_reload_successful.get(), 0);
        assert_eq!(metrics.rules_generation.get(), 2);

        // A set whose example fails is refused too, naming the file and rule.
        std::fs::remove_file(dir.path().join("zz-broken.toml")).unwrap();
        let cnic = std::fs::read_to_string(dir.path().join("cnic.toml")).unwrap();
        let bad = cnic.replacen("\"ref 35202-1234567-1 end\"", "\"ref 35202-1234567-12 end\"", 1);
        assert_ne!(bad, cnic);
        std::fs::write(dir.path().join("cnic.toml"), bad).unwrap();
        let e = reload(dir.path(), &live, &metrics).unwrap_err().to_string();
        assert!(e.contains("cnic.toml") && e.contains("NGB-CNIC-001"), "{e}");
        assert_eq!(live.generation(), 2);
    }
}
