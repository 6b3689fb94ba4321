//! Rule files (`rules/*.toml`) → a checked rule set.
//! CONTRACT STUB — helper A implements.

use crate::pii::PiiKind;
use std::path::Path;

/// How serious a rule's finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Low,
    /// Worth a look.
    Medium,
    /// Act on it.
    High,
    /// Act now.
    Critical,
}

impl Severity {
    /// ECS `event.severity` number: low 1, medium 2, high 3, critical 4.
    pub fn as_number(self) -> u8 {
        match self {
            Severity::Low => 1,
            Severity::Medium => 2,
            Severity::High => 3,
            Severity::Critical => 4,
        }
    }
}

/// Errors loading or checking rules; each names the file (and rule) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// Placeholder.
    #[error("{0}")]
    Other(String),
}

/// One detection rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable identifier, e.g. `NGB-1001`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// What it finds.
    pub pii: PiiKind,
    /// How serious a finding is.
    pub severity: Severity,
}

/// A loaded, compiled-able rule set.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Loads every `*.toml` file in `dir` (sorted by name).
    pub fn load_dir(dir: &Path) -> Result<RuleSet, RuleError> {
        let _ = dir;
        todo!()
    }
    /// Rules in load order; a rule's index here is its `RuleIdx`.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// Placeholder for helper A's check.
pub fn check(m: &crate::matcher::Matcher) -> Result<String, RuleError> {
    let _ = m;
    todo!()
}
