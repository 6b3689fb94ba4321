//! Judgement: turns a validated finding into a verdict — how confident we are that it is a real
//! personal value (keywords, known values, where it was found), whether policy suppresses it
//! (sanctioned destinations and HTTP hosts, public test card numbers), and whether it clears
//! the configured minimum confidence.
//!
//! Order of [`Judge::judge`], first decision wins:
//! 1. allow-lists → [`Verdict::Suppressed`]: receiver in an allowed CIDR, HTTP host allowed,
//!    value is a test value (by keyed hash);
//! 2. known value (on a `--known-values` list) → [`Verdict::Alert`] at high confidence with
//!    `known = true`, whatever its confidence was;
//! 3. a CNIC found as a DNS label of exactly 13 digits ([`Location::DnsCnicLabel`]) is at least
//!    medium;
//! 4. below `--min-confidence` → [`Verdict::BelowMinimum`]; otherwise [`Verdict::Alert`].
//!
//! The judge holds no value in clear: test values are hashed with the PII key when it is built.
//! [`Judge::judge_without_hash`] lets the worker skip the keyed hash when the verdict does not
//! depend on it (most low-confidence findings).

mod allow;
mod known;

pub use allow::{HostPattern, BUILTIN_TEST_CARDS};
pub use known::{KnownError, KnownValues, HEADER_LEN as KNOWN_HEADER_LEN, MAGIC as KNOWN_MAGIC};

use crate::l7::Location;
use crate::matcher::Finding;
use crate::pii::{Confidence, PiiHash, PiiKey, PiiKind, PiiValue};
use crate::rules::Severity;
use anyhow::Context as _;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// What the worker knows about where a finding travelled.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The receiving host (outside the home net).
    pub receiver: IpAddr,
    /// HTTP `Host` of the message, empty when not HTTP.
    pub http_host: &'a str,
    /// Section of the content the value was found in (`None` if no longer known).
    pub location: Option<Location>,
}

/// Why a finding was suppressed by policy. Bounded set: a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suppression {
    /// The receiver is in an allowed destination CIDR.
    Destination,
    /// The HTTP host is allowed.
    HttpHost,
    /// A published test card number (or a configured test value).
    TestValue,
}

impl Suppression {
    /// Every variant, for pre-registering metric labels.
    pub const ALL: [Suppression; 3] = [Suppression::Destination, Suppression::HttpHost, Suppression::TestValue];
    /// Lower-case label.
    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::Destination => "destination",
            Suppression::HttpHost => "http_host",
            Suppression::TestValue => "test_value",
        }
    }
}

/// The decision about one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Raise it.
    Alert {
        /// Final confidence.
        confidence: Confidence,
        /// The value is on a loaded known-value list.
        known: bool,
    },
    /// Policy says this is sanctioned; counted, not alerted.
    Suppressed(Suppression),
    /// Below `--min-confidence`; counted, not alerted.
    BelowMinimum(Confidence),
}

/// Configured test values, kept only until the judge hashes them. `Debug` shows the count.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TestValues(pub Vec<String>);

impl fmt::Debug for TestValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TestValues({})", self.0.len())
    }
}

/// Judgement settings (`[judge]` and `[allow]` in the config, `--min-confidence`,
/// `--known-values`), validated except for what needs the PII key or file contents.
#[derive(Debug, Clone)]
pub struct JudgeSettings {
    /// Findings below this confidence are counted, not alerted (default medium).
    pub min_confidence: Confidence,
    /// Known-value files made by `nigehban hash-list` (default none).
    pub known_values: Vec<PathBuf>,
    /// Receivers whose findings are suppressed (default none).
    pub allow_destinations: Vec<IpNet>,
    /// HTTP hosts whose findings are suppressed (default none).
    pub allow_http_hosts: Vec<HostPattern>,
    /// Values (CNIC, card, IBAN, as people write them) suppressed everywhere (default none).
    pub test_values: TestValues,
    /// Also suppress [`BUILTIN_TEST_CARDS`] (default true).
    pub builtin_test_cards: bool,
}

impl Default for JudgeSettings {
    fn default() -> Self {
        JudgeSettings {
            min_confidence: crate::rules::DEFAULT_MIN_CONFIDENCE,
            known_values: Vec::new(),
            allow_destinations: Vec::new(),
            allow_http_hosts: Vec::new(),
            test_values: TestValues::default(),
            builtin_test_cards: true,
        }
    }
}

/// Read-only judgement policy shared by all workers.
#[derive(Debug)]
pub struct Judge {
    min_confidence: Confidence,
    known: KnownValues,
    allow_destinations: Vec<IpNet>,
    allow_http_hosts: Vec<HostPattern>,
    /// Invariant: sorted (binary search); keyed hashes of the test values.
    test_hashes: Vec<PiiHash>,
}

impl Default for Judge {
    fn default() -> Self {
        Judge::new(crate::rules::DEFAULT_MIN_CONFIDENCE)
    }
}

impl Judge {
    /// A judge that alerts every finding at or above `min_confidence`, with no lists.
    pub fn new(min_confidence: Confidence) -> Judge {
        Judge {
            min_confidence,
            known: KnownValues::default(),
            allow_destinations: Vec::new(),
            allow_http_hosts: Vec::new(),
            test_hashes: Vec::new(),
        }
    }

    /// Builds the judge from validated settings: loads the known-value files (refusing any made
    /// with another key) and hashes the test values with `key`. Errors are one line naming the
    /// file or config key.
    pub fn from_settings(settings: &crate::cli::Settings, key: &PiiKey) -> anyhow::Result<Judge> {
        Self::from_judge_settings(&settings.judge, key)
    }

    /// [`Judge::from_settings`] for the judgement part of the settings alone.
    pub fn from_judge_settings(s: &JudgeSettings, key: &PiiKey) -> anyhow::Result<Judge> {
        let known = KnownValues::load_all(&s.known_values, key)?;
        let mut test_hashes = Vec::new();
        if s.builtin_test_cards {
            for c in BUILTIN_TEST_CARDS {
                let v = PiiValue::parse(Some(PiiKind::Card), c.as_bytes()).expect("built-in test cards are valid");
                test_hashes.push(key.hash(&v));
            }
        }
        for (i, t) in s.test_values.0.iter().enumerate() {
            let v = PiiValue::parse(None, t.as_bytes())
                .with_context(|| format!("config allow.test_values[{i}] is not a valid CNIC, card number or IBAN"))?;
            test_hashes.push(key.hash(&v));
        }
        test_hashes.sort_unstable();
        test_hashes.dedup();
        Ok(Judge {
            min_confidence: s.min_confidence,
            known,
            allow_destinations: s.allow_destinations.clone(),
            allow_http_hosts: s.allow_http_hosts.clone(),
            test_hashes,
        })
    }

    /// Decides one finding. `hash` is the value's keyed hash (for the known-value list and the
    /// test values).
    pub fn judge(&self, finding: &Finding, hash: &PiiHash, facts: &Facts<'_>) -> Verdict {
        if let Some(v) = self.allowed(facts) {
            return v;
        }
        if self.test_hashes.binary_search(hash).is_ok() {
            return Verdict::Suppressed(Suppression::TestValue);
        }
        if self.known.contains(hash) {
            return Verdict::Alert {
                confidence: Confidence::High,
                known: true,
            };
        }
        let confidence = located(finding, facts);
        if confidence < self.min_confidence {
            return Verdict::BelowMinimum(confidence);
        }
        Verdict::Alert {
            confidence,
            known: false,
        }
    }

    /// The verdict when it can be reached without the value's keyed hash, so the caller can
    /// skip the HMAC (about 0.2 µs) for the many findings that cannot alert, such as
    /// millisecond timestamps at low confidence. `None`: call [`Judge::judge`] with the hash.
    ///
    /// Agrees with `judge` except in one counted-not-alerted case: with no known-value list, a
    /// below-minimum finding that is also a test value is reported `BelowMinimum` here and
    /// `Suppressed(TestValue)` by `judge`.
    pub fn judge_without_hash(&self, finding: &Finding, facts: &Facts<'_>) -> Option<Verdict> {
        if let Some(v) = self.allowed(facts) {
            return Some(v);
        }
        let confidence = located(finding, facts);
        (self.known.is_empty() && confidence < self.min_confidence).then_some(Verdict::BelowMinimum(confidence))
    }

    /// `Some(minimum)` when every finding whose confidence at its location is below `minimum`
    /// is `BelowMinimum` whatever else is known of it: no allow-list and no known-value list is
    /// configured. The worker then counts such findings where the matcher reports them, without
    /// queueing them for the judge (on digit-heavy traffic nearly every finding is a
    /// low-confidence timestamp).
    pub fn below_minimum_needs_no_facts(&self) -> Option<Confidence> {
        (self.allow_destinations.is_empty() && self.allow_http_hosts.is_empty() && self.known.is_empty())
            .then_some(self.min_confidence)
    }

    /// Suppression by destination or HTTP host.
    fn allowed(&self, facts: &Facts<'_>) -> Option<Verdict> {
        if self.allow_destinations.iter().any(|n| n.contains(&facts.receiver)) {
            return Some(Verdict::Suppressed(Suppression::Destination));
        }
        if !facts.http_host.is_empty() && self.allow_http_hosts.iter().any(|p| p.matches(facts.http_host)) {
            return Some(Verdict::Suppressed(Suppression::HttpHost));
        }
        None
    }

    /// The configured minimum confidence.
    pub fn min_confidence(&self) -> Confidence {
        self.min_confidence
    }

    /// Hashes on the known-value lists.
    pub fn known_values(&self) -> usize {
        self.known.len()
    }

    /// Test values suppressed (built-in and configured).
    pub fn test_values(&self) -> usize {
        self.test_hashes.len()
    }
}

/// The finding's confidence after what its location says: a CNIC that was a DNS label of
/// exactly 13 digits is at least medium.
fn located(finding: &Finding, facts: &Facts<'_>) -> Confidence {
    confidence_at(finding, facts.location)
}

/// The locations at which [`confidence_at`] may raise a finding's confidence; at any other,
/// a finding keeps the confidence the matcher gave it.
pub const RAISING_LOCATIONS: [Location; 1] = [Location::DnsCnicLabel];

/// The finding's confidence at `location` (see [`Judge::below_minimum_needs_no_facts`]).
pub fn confidence_at(finding: &Finding, location: Option<Location>) -> Confidence {
    if location.is_some_and(|l| RAISING_LOCATIONS.contains(&l)) && finding.value.kind() == PiiKind::Cnic {
        finding.confidence.max(Confidence::Medium)
    } else {
        finding.confidence
    }
}

/// Distinct values in one flow direction at which severity rises one level.
pub const BULK_RAISE_AT: usize = 10;
/// Distinct values in one flow direction at which severity is critical.
pub const BULK_CRITICAL_AT: usize = 100;

/// Severity of an alert whose flow direction has sent `distinct` distinct values so far: 1–9
/// keep the rule's severity, 10–99 raise it one level, 100 or more are critical.
pub fn bulk_severity(base: Severity, distinct: usize) -> Severity {
    if distinct >= BULK_CRITICAL_AT {
        Severity::Critical
    } else if distinct >= BULK_RAISE_AT {
        match base {
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    } else {
        base
    }
}

#[cfg(test)]
mod tests;
