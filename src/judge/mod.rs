//! Judgement: turns a validated finding into a verdict — how confident we are that it is a real
//! personal value (keywords, known values, where it was found), whether policy suppresses it
//! (sanctioned destinations, public test card numbers), and whether it clears the configured
//! minimum confidence. CONTRACT STUB (lead): the judgement helper replaces the bodies; keep the
//! public names and signatures.

use crate::l7::Location;
use crate::matcher::Finding;
use crate::pii::{Confidence, PiiHash};
use crate::rules::Severity;
use std::net::IpAddr;

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

/// Read-only judgement policy shared by all workers.
#[derive(Debug, Default)]
pub struct Judge {
    min_confidence: Option<Confidence>,
}

impl Judge {
    /// A judge that alerts every finding at or above `min_confidence`, with no lists.
    pub fn new(min_confidence: Confidence) -> Judge {
        Judge {
            min_confidence: Some(min_confidence),
        }
    }

    /// The judge the settings ask for (lists loaded and checked against `key`).
    pub fn from_settings(settings: &crate::cli::Settings, key: &crate::pii::PiiKey) -> anyhow::Result<Judge> {
        let _ = (settings, key);
        Ok(Judge::new(Confidence::Medium))
    }

    /// Decides one finding. `hash` is the value's keyed hash (for the known-value list).
    pub fn judge(&self, finding: &Finding, hash: &PiiHash, facts: &Facts<'_>) -> Verdict {
        let _ = (hash, facts);
        let min = self.min_confidence.unwrap_or(Confidence::Medium);
        if finding.confidence < min {
            return Verdict::BelowMinimum(finding.confidence);
        }
        Verdict::Alert {
            confidence: finding.confidence,
            known: false,
        }
    }
}

/// Severity of an alert whose flow direction has sent `distinct` distinct values so far: bulk
/// leaks rank higher (thresholds documented in the README).
pub fn bulk_severity(base: Severity, distinct: usize) -> Severity {
    let _ = distinct;
    base
}
