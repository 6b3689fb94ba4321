//! Hyperscan streaming matcher. All unsafe FFI is confined here.
//! CONTRACT STUB — helper A implements.

use crate::pii::PiiValue;
use crate::rules::RuleSet;
use std::sync::Arc;

/// Index of a rule in `RuleSet::rules()`.
pub type RuleIdx = u32;

/// A validated personal value found in a stream.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Rule that found it.
    pub rule: RuleIdx,
    /// The value (masked on display).
    pub value: PiiValue,
    /// Stream offset of the value's first byte.
    pub offset: u64,
}

/// Errors building the matcher.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatcherError {
    /// Placeholder.
    #[error("{0}")]
    Other(String),
}

/// Per-worker counters, flushed to Prometheus by the worker.
#[derive(Debug, Default, Clone)]
pub struct MatchCounters {
    /// Raw Hyperscan hits per rule.
    pub hits: Vec<u64>,
    /// Validated findings per rule.
    pub findings: Vec<u64>,
    /// Bytes scanned.
    pub bytes: u64,
}

/// The compiled rule set, shared read-only by all workers.
#[derive(Clone)]
pub struct Matcher {
    inner: Arc<()>,
}

/// Per-worker Hyperscan scratch and reusable buffers.
pub struct WorkerScratch {
    /// Counters for this worker.
    pub counters: MatchCounters,
}

/// Scanning state of one flow direction; holds no Hyperscan stream until the first byte.
#[derive(Default)]
pub struct DirScanner {}

impl Matcher {
    /// Compiles every rule's patterns into one streaming database.
    pub fn new(rules: RuleSet) -> Result<Matcher, MatcherError> {
        let _ = rules;
        todo!()
    }
    /// The rule set this matcher was built from.
    pub fn rules(&self) -> &RuleSet {
        let _ = &self.inner;
        todo!()
    }
    /// Scratch for one worker thread.
    pub fn worker(&self) -> Result<WorkerScratch, MatcherError> {
        todo!()
    }
    /// Scans one self-contained datagram (UDP payload).
    pub fn scan_datagram(&self, w: &mut WorkerScratch, data: &[u8], out: &mut dyn FnMut(Finding)) {
        let _ = (w, data, out);
        todo!()
    }
}

impl DirScanner {
    /// Feeds the next in-order bytes of the stream.
    pub fn feed(&mut self, m: &Matcher, w: &mut WorkerScratch, data: &[u8], out: &mut dyn FnMut(Finding)) {
        let _ = (m, w, data, out);
        todo!()
    }
    /// Bytes are missing here and never coming; matches cannot span this point.
    pub fn gap(&mut self, m: &Matcher, w: &mut WorkerScratch, out: &mut dyn FnMut(Finding)) {
        let _ = (m, w, out);
        todo!()
    }
    /// End of stream: report what is pending and release the Hyperscan stream.
    pub fn finish(&mut self, m: &Matcher, w: &mut WorkerScratch, out: &mut dyn FnMut(Finding)) {
        let _ = (m, w, out);
        todo!()
    }
    /// Heap bytes held (Hyperscan stream state and the tail), for memory accounting.
    pub fn memory(&self) -> usize {
        0
    }
}
