//! `nigehban rules check`: run every rule's examples through the real matcher.

use super::{RuleError, DEFAULT_MIN_CONFIDENCE};
use crate::matcher::{DirScanner, Finding, Matcher, RuleIdx, WorkerScratch};
use crate::pii::Confidence;
use std::fmt;

/// Which example list an example came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExampleKind {
    /// `examples.match`: must produce a finding from its rule at or above the default minimum
    /// confidence, or at exactly the confidence the example declares.
    Match,
    /// `examples.no_match`: must produce none from its rule, at any confidence.
    NoMatch,
}

impl fmt::Display for ExampleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExampleKind::Match => "match",
            ExampleKind::NoMatch => "no_match",
        })
    }
}

/// How an example was fed to the scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanMode {
    /// In one `feed` call.
    Whole,
    /// One byte per `feed` call (exercises the tail and pending logic).
    ByteByByte,
}

impl fmt::Display for ScanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScanMode::Whole => "scanned whole",
            ScanMode::ByteByByte => "fed one byte at a time",
        })
    }
}

/// What [`check`] verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckReport {
    /// Rules checked.
    pub rules: usize,
    /// `match` examples run (each in both scan modes).
    pub match_examples: usize,
    /// `no_match` examples run (each in both scan modes).
    pub no_match_examples: usize,
    /// Card schemes loaded.
    pub card_schemes: usize,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rules OK: {} match and {} no_match examples behave as declared; {} card schemes",
            self.rules, self.match_examples, self.no_match_examples, self.card_schemes
        )
    }
}

/// Runs every rule's examples with the real matcher, both scanned whole and fed one byte per
/// call. A plain `match` example must give a finding from its rule at or above
/// [`DEFAULT_MIN_CONFIDENCE`] (it would alert by default); a `match` example with a
/// `confidence` must give that confidence exactly (the highest of the rule's findings in it);
/// a `no_match` example must give no finding from its rule at all. Stops at the first failure.
/// A rule without `match` examples is an error too ([`RuleError::NoExamples`]).
pub fn check(matcher: &Matcher) -> Result<CheckReport, RuleError> {
    let mut w = matcher.worker()?;
    let mut report = CheckReport {
        card_schemes: matcher.rules().schemes().len(),
        ..CheckReport::default()
    };
    for (idx, rule) in matcher.rules().rules().iter().enumerate() {
        let idx = idx as RuleIdx;
        if rule.examples.matches.is_empty() {
            return Err(RuleError::NoExamples {
                path: rule.source.clone(),
                rule: rule.id.clone(),
            });
        }
        let matches = rule
            .examples
            .matches
            .iter()
            .map(|m| (ExampleKind::Match, m.text.as_str(), m.confidence));
        let no_match = rule
            .examples
            .no_match
            .iter()
            .map(|t| (ExampleKind::NoMatch, t.as_str(), None));
        let mut index = [0usize; 2];
        for (kind, text, expected) in matches.chain(no_match) {
            let i = &mut index[usize::from(kind == ExampleKind::NoMatch)];
            for mode in [ScanMode::Whole, ScanMode::ByteByByte] {
                let found = best(matcher, &mut w, text.as_bytes(), mode, idx);
                let ok = match (kind, expected) {
                    (ExampleKind::Match, None) => found >= Some(DEFAULT_MIN_CONFIDENCE),
                    (ExampleKind::Match, Some(c)) => found == Some(c),
                    (ExampleKind::NoMatch, _) => found.is_none(),
                };
                if !ok {
                    return Err(RuleError::Example {
                        path: rule.source.clone(),
                        rule: rule.id.clone(),
                        kind,
                        index: *i,
                        mode,
                        found,
                        expected,
                    });
                }
            }
            *i += 1;
        }
        report.match_examples += index[0];
        report.no_match_examples += index[1];
        report.rules += 1;
    }
    Ok(report)
}

/// Highest confidence among `rule`'s findings in `text` (`None`: no finding).
fn best(m: &Matcher, w: &mut WorkerScratch, text: &[u8], mode: ScanMode, rule: RuleIdx) -> Option<Confidence> {
    let mut best = None;
    let mut out = |f: Finding| {
        if f.rule == rule {
            best = best.max(Some(f.confidence));
        }
    };
    let mut s = DirScanner::default();
    match mode {
        ScanMode::Whole => s.feed(m, w, text, &mut out),
        ScanMode::ByteByByte => {
            for b in text.chunks(1) {
                s.feed(m, w, b, &mut out);
            }
        }
    }
    s.finish(m, w, &mut out);
    best
}
