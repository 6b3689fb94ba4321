//! `nigehban rules check`: run every rule's examples through the real matcher.

use super::RuleError;
use crate::matcher::{DirScanner, Finding, Matcher, RuleIdx, WorkerScratch};
use std::fmt;

/// Which example list an example came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExampleKind {
    /// `examples.match`: must produce at least one finding from its rule.
    Match,
    /// `examples.no_match`: must produce none from its rule.
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

/// Runs every rule's examples with the real matcher: each `match` example must give at least
/// one finding from its rule, both scanned whole and fed one byte per call; each `no_match`
/// example must give none in either mode. Stops at the first failure. A rule without `match`
/// examples is an error too ([`RuleError::NoExamples`]).
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
        let lists = [
            (ExampleKind::Match, &rule.examples.matches),
            (ExampleKind::NoMatch, &rule.examples.no_match),
        ];
        for (kind, list) in lists {
            for (index, text) in list.iter().enumerate() {
                for mode in [ScanMode::Whole, ScanMode::ByteByByte] {
                    let found = count(matcher, &mut w, text.as_bytes(), mode, idx);
                    let ok = match kind {
                        ExampleKind::Match => found > 0,
                        ExampleKind::NoMatch => found == 0,
                    };
                    if !ok {
                        return Err(RuleError::Example {
                            path: rule.source.clone(),
                            rule: rule.id.clone(),
                            kind,
                            index,
                            mode,
                            found,
                        });
                    }
                }
                match kind {
                    ExampleKind::Match => report.match_examples += 1,
                    ExampleKind::NoMatch => report.no_match_examples += 1,
                }
            }
        }
        report.rules += 1;
    }
    Ok(report)
}

fn count(m: &Matcher, w: &mut WorkerScratch, text: &[u8], mode: ScanMode, rule: RuleIdx) -> usize {
    let mut n = 0;
    let mut out = |f: Finding| n += usize::from(f.rule == rule);
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
    n
}
