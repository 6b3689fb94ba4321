//! Hyperscan streaming matcher. All unsafe FFI is confined here (in `hs.rs`).
//!
//! Design constraints:
//! - One streaming database holds every rule's patterns. Hits carry their start, but start of
//!   match is only compiled where it is needed (`PatternKind`): a fixed-width pattern's start
//!   is its end minus its width, and digit-run patterns (`\d{13,16}`, `\d{13}`, ...) are not
//!   given to Hyperscan at all: one vectorised pass finds where digit runs end and how long they
//!   are (`DigitRuns`). Both give exactly the hits of `SOM_LEFTMOST` (tested against a
//!   database built that way) at a fraction of the cost on digit-heavy traffic. A digit-run hit
//!   whose bytes decide it (its validator rejects it, or it is a quiet finding with no keyword
//!   possible near it) is counted as the pass finds it and never stored. [`Matcher`] is
//!   that database plus the rule set behind an `Arc`: cheap to clone, read-only, shared by all
//!   workers.
//! - Each worker owns a [`WorkerScratch`]: the Hyperscan scratch, a reusable hit buffer and
//!   plain counters. Nothing on the hot path allocates after warm-up.
//! - Each flow direction owns a [`DirScanner`], one pointer wide while idle. The first `feed`
//!   opens a Hyperscan stream and a fixed-size state block (tail of recent bytes, pending hits).
//! - Hyperscan reports only offsets, so the scanner keeps the last [`TAIL_LEN`] bytes of the
//!   stream; a hit is read from a virtual view "tail ++ current chunk". Rules guarantee matches
//!   of at most [`MAX_MATCH_WIDTH`] bytes and context windows of at most
//!   [`MAX_CONTEXT_WINDOW`] bytes before and [`MAX_CONTEXT_AFTER`] after, so the tail always
//!   holds what a validator and the keyword search need.
//! - A hit ending fewer than [`AFTER_BYTES`] bytes before the data seen so far cannot be
//!   boundary-checked yet; it waits (bounded, [`MAX_PENDING`]) for more data, a gap or the end.
//! - Confidence: each rule has a base confidence; a context keyword before or after the value
//!   raises it one level. A valid value with no keyword before it, whose rule could still be
//!   raised, also waits until its `window_after` bytes have arrived (or a gap, the end, or
//!   [`DirScanner::settle`]), so the result does not depend on where segments were cut. A value
//!   with a keyword before it, or at the highest confidence already, is reported at once.
//!
//! - Keyword prefilter: the same database also holds the context keywords of rules whose
//!   values have no check digits, i.e. CNICs (caseless literals, no start of match). Each direction remembers where the last few keyword
//!   occurrences ended; the exact keyword search runs only when one ends inside a hit's window,
//!   or when that record is incomplete. It changes no result (tested against a matcher without
//!   it) and removed the largest cost on digit-heavy traffic.
//!
//! Finding offsets count the bytes fed to that scanner (gaps add nothing, as their length is
//! not known here); datagram offsets are relative to the datagram.

mod digits;
mod hs;
mod stream;

pub(crate) use hs::probe_pattern;
pub use stream::{DirScanner, MAX_PENDING, TAIL_LEN};

use crate::pii::PiiValue;
use crate::rules::{Rule, RuleSet, MAX_CONTEXT_AFTER, MAX_CONTEXT_WINDOW, MAX_MATCH_WIDTH};
use crate::validate::{Reject, AFTER_BYTES};
use hyperscan::{Patterns, Scratch, StreamingDatabase};
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
    /// Confidence from the rule's base level and its context keywords (before known-value and
    /// location judgement, see `judge`).
    pub confidence: crate::pii::Confidence,
    /// A context keyword was found near the value (it raised `confidence` one level).
    pub keyword: bool,
}

/// Errors building the matcher or a worker's scratch. None is the rule author's fault
/// (rules are checked when loaded); they mean Hyperscan ran out of memory or a limit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatcherError {
    /// Hyperscan could not compile the combined database.
    #[error("cannot compile the rule database: {0}; reduce the number or complexity of patterns")]
    Compile(String),
    /// Hyperscan could not allocate a scratch region or stream.
    #[error("cannot allocate Hyperscan memory: {0}; check available memory")]
    Alloc(String),
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
    /// Hits rejected by validation, by [`Reject::index`].
    pub rejected: [u64; Reject::COUNT],
    /// Hits whose bytes were no longer in the retained tail (cannot happen with checked rules;
    /// counted rather than trusted).
    pub window_overflow: u64,
    /// Hits dropped because the pending array was full.
    pub pending_overflow: u64,
    /// Findings by confidence after context (index: `Confidence as usize`, low/medium/high).
    pub by_confidence: [u64; 3],
    /// Hyperscan scan/stream errors (the data of that call is not scanned).
    pub scan_errors: u64,
    /// Hyperscan streams opened (flow directions that saw data).
    pub streams_opened: u64,
    /// Findings per rule counted instead of reported, as below [`WorkerScratch::set_quiet_below`]
    /// (also counted in `findings` and `by_confidence`). The caller takes them out.
    pub quiet: Vec<u64>,
}

impl MatchCounters {
    /// A finding of `rule` at `confidence`, counted instead of reported.
    #[inline]
    fn count_quiet(&mut self, rule: RuleIdx, confidence: crate::pii::Confidence) {
        self.count_quiet_n(rule, confidence, 1);
    }

    /// `n` findings of `rule` at `confidence`, counted instead of reported.
    #[inline]
    fn count_quiet_n(&mut self, rule: RuleIdx, confidence: crate::pii::Confidence, n: u64) {
        self.findings[rule as usize] += n;
        self.by_confidence[confidence as usize] += n;
        self.quiet[rule as usize] += n;
    }

    fn new(rules: usize) -> Self {
        Self {
            hits: vec![0; rules],
            findings: vec![0; rules],
            quiet: vec![0; rules],
            ..Self::default()
        }
    }
}

struct Inner {
    rules: RuleSet,
    db: StreamingDatabase,
    /// Hyperscan pattern id → what it stands for.
    pattern_kind: Vec<PatternKind>,
    /// The rule patterns found by the digit-run scan instead of Hyperscan.
    digit_runs: DigitRuns,
    /// Bytes of state per open stream.
    stream_size: usize,
    /// Per rule (by index), what deciding its hits needs.
    facts: Vec<RuleFacts>,
}

/// What deciding a hit needs of its rule, packed in a few bytes: it is read for every hit, and
/// a [`Rule`] spreads the same facts over several cache lines.
#[derive(Debug, Clone, Copy)]
struct RuleFacts {
    validator: crate::validate::Validator,
    /// Base confidence.
    confidence: crate::pii::Confidence,
    /// Context keywords can raise the confidence: the rule has a context and is below high.
    raisable: bool,
    /// The context `window` (bytes before the value searched for a keyword).
    window: u8,
    /// The context `window_after`.
    window_after: u8,
    /// Bytes needed before a hit (boundary bytes or context window).
    before_needed: u8,
    /// Bytes a valid hit without a keyword before it waits for after its end: the context
    /// `window_after` plus the boundary byte beyond it, or 0 when the rule has no keywords or
    /// cannot be raised.
    after_wait: u8,
    /// The bit of its keyword set; 0 when the prefilter does not cover it (no keywords, or more
    /// distinct keyword lists than bits): its keyword search always runs.
    keyword_set: KeywordSets,
}

impl RuleFacts {
    fn of(rule: &Rule, keyword_set: KeywordSets) -> RuleFacts {
        let ctx = rule.context.as_ref();
        let raisable = ctx.is_some() && rule.confidence < crate::pii::Confidence::High;
        // One byte beyond the window decides the word boundary at its edge.
        let before = ctx.map_or(0, |c| c.window + 1);
        let after_wait = match ctx {
            Some(c) if raisable && c.window_after > 0 => c.window_after.min(MAX_CONTEXT_AFTER) + 1,
            _ => 0,
        };
        RuleFacts {
            validator: rule.validator,
            confidence: rule.confidence,
            raisable,
            window: ctx.map_or(0, |c| c.window.min(MAX_CONTEXT_WINDOW)) as u8,
            window_after: ctx.map_or(0, |c| c.window_after.min(MAX_CONTEXT_AFTER)) as u8,
            before_needed: before.clamp(crate::validate::BEFORE_BYTES, MAX_CONTEXT_WINDOW + 1) as u8,
            after_wait: after_wait as u8,
            keyword_set,
        }
    }
}

/// A bit set of distinct keyword lists (rules sharing a list share a bit).
pub(crate) type KeywordSets = u32;

/// What a Hyperscan pattern id stands for. Start of match is costly in streaming mode (on
/// digit-heavy traffic it made the scan two thirds slower), so only patterns that need it get it.
#[derive(Debug, Clone, Copy)]
enum PatternKind {
    /// A rule pattern whose width varies: compiled with start of match.
    Som(RuleIdx),
    /// A rule pattern of fixed width: its start is its end minus the width.
    Fixed(RuleIdx, u8),
    /// Compiled only so that a database is not empty when every rule pattern is a digit run
    /// and no rule has prefilter keywords; its hits are ignored (the digit-run scan finds them).
    Placeholder,
    /// A keyword prefilter pattern, with the keyword lists it belongs to (see [`keyword_prefilter`]).
    Keyword(KeywordSets),
}

/// Rule patterns that are runs of digits, `\d{m,n}` or `\d{m}` (card numbers, bare CNICs).
/// One pass over each chunk ([`digits::run_ends`]) finds every offset where a run of at least
/// M digits ends (M the smallest `m`) and the run's length, counted across chunks of the same
/// stream; each member then gets exactly the hit its own pattern would have given with leftmost
/// start of match: `start = end - min(n, run)` when `run >= m`.
#[derive(Debug, Default)]
struct DigitRuns {
    /// One per member pattern.
    members: Vec<DigitRunMember>,
    /// M: the shortest run any member matches (0 when there are no members).
    shortest: u8,
}

/// A digit-run pattern `\d{m,n}` of a rule.
#[derive(Debug, Clone, Copy)]
struct DigitRunMember {
    rule: RuleIdx,
    m: u8,
    n: u8,
    /// The rule's only pattern: no other pattern can report a value at the same start, so a
    /// hit decided while scanning needs no de-duplication against the rule's other findings.
    alone: bool,
    /// A copy of the rule's facts, at hand for every run the scan finds.
    facts: RuleFacts,
}

/// `(m, n)` if `expr` is exactly `\d{m}`, `\d{m,n}`, `[0-9]{m}` or `[0-9]{m,n}` with
/// `1 <= m <= n <= MAX_MATCH_WIDTH`.
fn digit_run(expr: &str) -> Option<(u8, u8)> {
    let rest = expr.strip_prefix("\\d").or_else(|| expr.strip_prefix("[0-9]"))?;
    let inner = rest.strip_prefix('{')?.strip_suffix('}')?;
    let (m, n) = match inner.split_once(',') {
        Some((m, n)) => (m.parse::<u8>().ok()?, n.parse::<u8>().ok()?),
        None => {
            let m = inner.parse::<u8>().ok()?;
            (m, m)
        }
    };
    (1 <= m && m <= n && usize::from(n) <= MAX_MATCH_WIDTH).then_some((m, n))
}

/// The compiled rule set, shared read-only by all workers.
#[derive(Clone)]
pub struct Matcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("rules", &self.inner.rules.rules().len())
            .field("patterns", &self.inner.pattern_kind.len())
            .field("stream_size", &self.inner.stream_size)
            .finish()
    }
}

/// One raw hit (stream offsets of the current Hyperscan stream).
#[derive(Debug, Clone, Copy)]
struct Hit {
    rule: RuleIdx,
    /// Fits in the padding after `rule`.
    shape: HitShape,
    start: u64,
    end: u64,
}

/// What is known of a hit's bytes before they are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum HitShape {
    /// Nothing (Hyperscan's hits).
    #[default]
    Unknown,
    /// From the digit-run scan: every byte is an ASCII digit, and `digit_before` tells whether
    /// the byte before the hit is one too (the run is longer than the hit).
    Digits { digit_before: bool },
}

/// Reusable buffers of the digit-run scan (see `stream::digit_run_hits`).
#[derive(Debug, Default)]
struct DigitBufs {
    /// Where digit runs end in the current piece of a chunk: `(end, run)`.
    ends: Vec<(u32, u32)>,
    /// Digit-run hits of the current call left for `resolve`, with their member's index.
    found: Vec<(u32, Hit)>,
}

/// Per-worker Hyperscan scratch and reusable buffers.
pub struct WorkerScratch {
    /// Counters for this worker.
    pub counters: MatchCounters,
    scratch: Scratch,
    /// Reusable hit buffer of the current call.
    hits: Vec<Hit>,
    /// The digit-run scan's buffers.
    digit_bufs: DigitBufs,
    /// `(rule, start)` of findings emitted in the current batch, for de-duplication.
    emitted: Vec<(RuleIdx, u64)>,
    /// Reusable stream for datagrams.
    dgram: DirScanner,
    /// Identity of the matcher this scratch belongs to.
    owner: usize,
    /// Findings below this confidence are counted, not reported (see `set_quiet_below`).
    quiet_below: Option<crate::pii::Confidence>,
}

impl WorkerScratch {
    /// From now on, findings whose confidence (keyword context included) is below `min` are
    /// counted in `counters.quiet` instead of being reported; `None` reports every finding.
    ///
    /// For a caller that would drop them anyway, as the judge does below its minimum when
    /// nothing else it knows could change its mind. On digit-heavy traffic nearly every
    /// finding is a low-confidence timestamp, and building and handing over each one cost more
    /// than deciding it.
    pub fn set_quiet_below(&mut self, min: Option<crate::pii::Confidence>) {
        self.quiet_below = min;
    }
}

impl std::fmt::Debug for WorkerScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerScratch")
            .field("counters", &self.counters)
            .finish()
    }
}

impl Matcher {
    /// Compiles every rule's patterns into one streaming database.
    pub fn new(rules: RuleSet) -> Result<Matcher, MatcherError> {
        Self::build(rules, true, true)
    }

    /// The straightforward matcher the optimised one must agree with: every rule pattern on
    /// its own with leftmost start of match, and the keyword search always run.
    #[cfg(test)]
    fn oracle(rules: RuleSet) -> Result<Matcher, MatcherError> {
        Self::build(rules, false, false)
    }

    /// `prefilter`: the keyword prefilter; `lean`: start of match only where needed, digit
    /// runs found by the digit-run scan.
    fn build(rules: RuleSet, prefilter: bool, lean: bool) -> Result<Matcher, MatcherError> {
        let mut patterns = Vec::new();
        let mut pattern_kind = Vec::new();
        // (rule, m, n, its rule's only pattern) of each digit-run pattern.
        let mut runs: Vec<(RuleIdx, u8, u8, bool)> = Vec::new();
        for (idx, rule) in rules.rules().iter().enumerate() {
            let idx = idx as RuleIdx;
            for p in &rule.patterns {
                if let Some((m, n)) = digit_run(p).filter(|_| lean) {
                    runs.push((idx, m, n, rule.patterns.len() == 1));
                    continue;
                }
                let id = pattern_kind.len();
                match hs::fixed_width(p).filter(|_| lean) {
                    Some(w) => {
                        patterns.push(hs::plain_pattern(p, id, false));
                        pattern_kind.push(PatternKind::Fixed(idx, w));
                    }
                    None => {
                        patterns.push(hs::pattern(p, id));
                        pattern_kind.push(PatternKind::Som(idx));
                    }
                }
            }
        }
        let (rule_keyword_set, keywords) = if prefilter {
            keyword_prefilter(&rules)
        } else {
            (vec![0; rules.rules().len()], Vec::new())
        };
        for (expr, sets) in &keywords {
            patterns.push(hs::plain_pattern(expr, pattern_kind.len(), true));
            pattern_kind.push(PatternKind::Keyword(*sets));
        }
        if patterns.is_empty() {
            // Hyperscan cannot compile an empty database; any loaded rule set has a pattern.
            let expr = rules.rules().iter().flat_map(|r| r.patterns.iter()).next();
            let expr = expr.map_or("\\d", |p| p.as_str());
            patterns.push(hs::plain_pattern(expr, 0, false));
            pattern_kind.push(PatternKind::Placeholder);
        }
        let db: StreamingDatabase =
            hyperscan::Builder::build(&Patterns(patterns)).map_err(|e| MatcherError::Compile(hs::message(&e)))?;
        let stream_size = db.stream_size().map_err(|e| MatcherError::Alloc(e.to_string()))?;
        let facts: Vec<RuleFacts> = rules
            .rules()
            .iter()
            .zip(&rule_keyword_set)
            .map(|(r, &set)| RuleFacts::of(r, set))
            .collect();
        let digit_runs = DigitRuns {
            shortest: runs.iter().map(|r| r.1).min().unwrap_or(0),
            members: runs
                .into_iter()
                .map(|(rule, m, n, alone)| DigitRunMember {
                    rule,
                    m,
                    n,
                    alone,
                    facts: facts[rule as usize],
                })
                .collect(),
        };
        Ok(Matcher {
            inner: Arc::new(Inner {
                rules,
                db,
                pattern_kind,
                digit_runs,
                stream_size,
                facts,
            }),
        })
    }

    /// The rule set this matcher was built from.
    pub fn rules(&self) -> &RuleSet {
        &self.inner.rules
    }

    /// The rule with index `idx` (as in [`Finding::rule`]).
    pub fn rule(&self, idx: RuleIdx) -> &Rule {
        &self.inner.rules.rules()[idx as usize]
    }

    /// Index of the rule with id `id`, if this set has one (to renumber after a reload).
    pub fn rule_index(&self, id: &str) -> Option<RuleIdx> {
        self.inner
            .rules
            .rules()
            .iter()
            .position(|r| r.id == id)
            .map(|i| i as RuleIdx)
    }

    /// Bytes of Hyperscan state per open stream.
    pub fn stream_size(&self) -> usize {
        self.inner.stream_size
    }

    /// Scratch for one worker thread.
    pub fn worker(&self) -> Result<WorkerScratch, MatcherError> {
        let scratch = self
            .inner
            .db
            .alloc_scratch()
            .map_err(|e| MatcherError::Alloc(e.to_string()))?;
        Ok(WorkerScratch {
            counters: MatchCounters::new(self.inner.rules.rules().len()),
            scratch,
            hits: Vec::with_capacity(64),
            digit_bufs: DigitBufs {
                ends: Vec::with_capacity(stream::RUN_PIECE),
                found: Vec::with_capacity(64),
            },
            emitted: Vec::with_capacity(8),
            dgram: DirScanner::default(),
            owner: self.id(),
            quiet_below: None,
        })
    }

    /// Scans one self-contained datagram (UDP payload). Offsets are relative to the datagram.
    pub fn scan_datagram(&self, w: &mut WorkerScratch, data: &[u8], out: &mut dyn FnMut(Finding)) {
        let mut s = std::mem::take(&mut w.dgram);
        s.feed(self, w, data, out);
        s.reset(self, w, out);
        w.dgram = s;
    }

    fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }
}

/// The keyword prefilter: each distinct keyword list of a rule whose values carry no check
/// digits gets a bit (up to 32); each distinct keyword expression becomes one Hyperscan pattern
/// carrying the bits of every list it is in. Returns the per-rule bit and the (expression, bits)
/// list.
///
/// Rules with check digits (cards, IBANs) are left out: Luhn or mod 97 rejects nearly every
/// random digit run before its context is searched, so their keywords would cost Hyperscan more
/// (short ones such as `cc` and `pan` occur often in text) than they save.
///
/// Why: on digit-heavy traffic nearly every hit is a timestamp that passes the CNIC shape test,
/// and searching its context windows byte by byte cost more than Hyperscan's scan. Hyperscan
/// finds the keyword occurrences in the same pass; the exact search runs only when one ends
/// near a hit.
fn keyword_prefilter(rules: &RuleSet) -> (Vec<KeywordSets>, Vec<(String, KeywordSets)>) {
    let mut lists: Vec<&[String]> = Vec::new();
    let mut per_rule = Vec::with_capacity(rules.rules().len());
    let mut exprs: Vec<(String, KeywordSets)> = Vec::new();
    for rule in rules.rules() {
        let Some(ctx) = rule
            .context
            .as_ref()
            .filter(|c| !c.keywords().is_empty() && !rule.validator.has_check_digits())
        else {
            per_rule.push(0);
            continue;
        };
        let i = match lists.iter().position(|l| *l == ctx.keywords.as_slice()) {
            Some(i) => i,
            None => {
                lists.push(&ctx.keywords);
                lists.len() - 1
            }
        };
        if i >= KeywordSets::BITS as usize {
            per_rule.push(0);
            continue;
        }
        let bit: KeywordSets = 1 << i;
        per_rule.push(bit);
        for e in ctx.keywords().prefilter_expressions() {
            match exprs.iter_mut().find(|(x, _)| *x == e) {
                Some((_, sets)) => *sets |= bit,
                None => exprs.push((e, bit)),
            }
        }
    }
    (per_rule, exprs)
}

#[cfg(test)]
mod tests;
