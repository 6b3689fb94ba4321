//! Rule files (`rules/*.toml`) → a checked rule set.
//!
//! The format is documented for rule authors in `rules/README.md`. In short, a directory holds
//! `*.toml` files, loaded in file-name order; each may contain `[[rule]]` entries (patterns plus a
//! validator, a base confidence, optional context keywords and examples) and `[[card_scheme]]` entries (the issuer
//! table used by the card validator).
//!
//! Loading checks everything that can be checked without scanning: TOML shape (unknown keys are
//! errors), unique ids, that Hyperscan accepts each pattern and that its longest match fits the
//! scanner's retained tail ([`MAX_MATCH_WIDTH`]). [`check`] then runs every rule's examples
//! through the real matcher.

mod check;

pub use check::{check, CheckReport, ExampleKind, ScanMode};

use crate::matcher::MatcherError;
use crate::pii::{Confidence, PiiKind};
use crate::validate::{CardScheme, CardSchemes, Keywords, SchemeError, Validator};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Longest match (bytes) a pattern may produce. The scanner keeps only a bounded tail of each
/// stream, so a longer match could not be read back for validation.
pub const MAX_MATCH_WIDTH: usize = 64;
/// Largest context `window` (bytes before a value) a rule may ask for.
pub const MAX_CONTEXT_WINDOW: usize = 64;
/// Context window used when a rule's `[rule.context]` omits `window`.
pub const DEFAULT_CONTEXT_WINDOW: usize = 48;
/// Largest context `window_after` (bytes after a value) a rule may ask for. A value without a
/// keyword before it waits for this many more bytes, so the bound keeps waiting short.
pub const MAX_CONTEXT_AFTER: usize = 32;
/// Context window after a value used when a rule's `[rule.context]` omits `window_after`.
pub const DEFAULT_CONTEXT_AFTER: usize = 32;
/// The minimum confidence that alerts by default (`--min-confidence`); `rules check` holds
/// plain `match` examples to it.
pub const DEFAULT_MIN_CONFIDENCE: Confidence = Confidence::Medium;

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

/// Errors loading or checking rules; each names the file (and rule) at fault and the fix.
/// All are the rule author's (or operator's) to fix; none is a bug in the sensor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The rule directory cannot be listed.
    #[error("cannot read rule directory {}: {source}; check the path and its permissions", dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A rule file cannot be read.
    #[error("cannot read rule file {}: {source}; check its permissions", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid TOML or does not fit the rule format (unknown key, unknown
    /// `pii`/`severity`/`validator` value, wrong type, missing field).
    #[error("{}:{line}:{col}: {message}; see rules/README.md for the format", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 if unknown).
        line: usize,
        /// 1-based column in characters (0 if unknown).
        col: usize,
        /// The parser's message (one line).
        message: String,
    },
    /// The directory holds no `*.toml` file with a `[[rule]]`.
    #[error("no rules in {}: add a *.toml file with at least one [[rule]] (see rules/README.md)", dir.display())]
    NoRules {
        /// The directory.
        dir: PathBuf,
    },
    /// Two rules share an id.
    #[error("duplicate rule id {id:?} in {} and {}: rule ids must be unique, rename one", first.display(), second.display())]
    DuplicateId {
        /// The id.
        id: String,
        /// File of the first rule with this id.
        first: PathBuf,
        /// File of the second.
        second: PathBuf,
    },
    /// A rule field has a value the format does not allow (the message says which and why).
    #[error("{}: rule {rule:?}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The rule id (may be empty if the id itself is missing).
        rule: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A rule has an empty `patterns` list.
    #[error("{}: rule {rule:?}: `patterns` is empty: add at least one Hyperscan expression", path.display())]
    EmptyPatterns {
        /// The file.
        path: PathBuf,
        /// The rule id.
        rule: String,
    },
    /// Hyperscan refuses a pattern.
    #[error("{}: rule {rule:?}: patterns[{index}] rejected by Hyperscan: {message}; fix the expression", path.display())]
    Pattern {
        /// The file.
        path: PathBuf,
        /// The rule id.
        rule: String,
        /// 0-based index in `patterns`.
        index: usize,
        /// Hyperscan's message.
        message: String,
    },
    /// A pattern's longest match is unbounded or longer than [`MAX_MATCH_WIDTH`].
    #[error("{}: rule {rule:?}: patterns[{index}] can match {} bytes, more than the {max}-byte limit: bound every repetition (e.g. \\d{{13,19}}, not \\d+)", path.display(), WidthDisplay(*width))]
    Width {
        /// The file.
        path: PathBuf,
        /// The rule id.
        rule: String,
        /// 0-based index in `patterns`.
        index: usize,
        /// Longest match in bytes; `None` if unbounded.
        width: Option<usize>,
        /// The limit.
        max: usize,
    },
    /// A rule uses the card validator but no `[[card_scheme]]` was loaded.
    #[error("{}: rule {rule:?} uses validator \"card\" but no [[card_scheme]] is loaded: add a card_schemes.toml to the rule directory", path.display())]
    NoCardSchemes {
        /// The file.
        path: PathBuf,
        /// The rule id.
        rule: String,
    },
    /// A `[[card_scheme]]` entry is malformed or its name is a duplicate.
    #[error("{}: card_scheme {scheme:?}: {source}", path.display())]
    Scheme {
        /// The file.
        path: PathBuf,
        /// The scheme name.
        scheme: String,
        /// What is wrong.
        #[source]
        source: SchemeError,
    },
    /// A rule's example did not behave as declared (the example text is deliberately not shown).
    #[error("{}: rule {rule:?}: examples.{kind}[{index}] gave {} when {mode}, expected {}; fix the example or the rule", path.display(), Outcome(*found), Expected(*kind, *expected))]
    Example {
        /// The file.
        path: PathBuf,
        /// The rule id.
        rule: String,
        /// Which list.
        kind: ExampleKind,
        /// 0-based index in that list.
        index: usize,
        /// How it was scanned.
        mode: ScanMode,
        /// Highest confidence of this rule's findings (`None`: no finding).
        found: Option<Confidence>,
        /// The confidence a `match` example declared (`None`: at least the default minimum).
        expected: Option<Confidence>,
    },
    /// A rule has no `examples.match` entry, so `rules check` cannot prove it works.
    #[error("{}: rule {rule:?}: no examples.match: add at least one text the rule must find", path.display())]
    NoExamples {
        /// The file.
        path: PathBuf,
        /// The rule id.
        rule: String,
    },
    /// The matcher could not be built or used while checking.
    #[error("matcher: {0}")]
    Matcher(#[from] MatcherError),
}

struct Outcome(Option<Confidence>);

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("no finding from this rule"),
            Some(c) => write!(f, "a {} confidence finding from this rule", c.as_str()),
        }
    }
}

struct Expected(ExampleKind, Option<Confidence>);

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (ExampleKind::NoMatch, _) => f.write_str("none"),
            (ExampleKind::Match, Some(c)) => write!(f, "exactly {} confidence", c.as_str()),
            (ExampleKind::Match, None) => write!(
                f,
                "one at {} confidence or above (the default minimum)",
                DEFAULT_MIN_CONFIDENCE.as_str()
            ),
        }
    }
}

struct WidthDisplay(Option<usize>);

impl fmt::Display for WidthDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(w) => write!(f, "up to {w}"),
            None => f.write_str("unboundedly many"),
        }
    }
}

/// Context keywords near a hit; finding one raises the rule's confidence one level.
#[derive(Debug, Clone)]
pub struct Context {
    /// Keywords as written in the rule file.
    pub keywords: Vec<String>,
    /// Bytes before the hit that are searched; a keyword must lie entirely inside.
    pub window: usize,
    /// Bytes after the hit that are searched (0: none).
    pub window_after: usize,
    /// `keywords`, compiled.
    compiled: Keywords,
}

impl Context {
    /// The compiled keywords.
    pub fn keywords(&self) -> &Keywords {
        &self.compiled
    }
}

/// A `match` example: text the rule must find something in.
#[derive(Clone)]
pub struct MatchExample {
    /// The text.
    pub text: String,
    /// The confidence its finding must have exactly; `None`: at least [`DEFAULT_MIN_CONFIDENCE`].
    pub confidence: Option<Confidence>,
}

/// A rule's examples. `Debug` shows only the counts: examples are personal-data-shaped.
#[derive(Clone, Default)]
pub struct Examples {
    /// Texts the rule must find something in.
    pub matches: Vec<MatchExample>,
    /// Texts the rule must find nothing in (at any confidence).
    pub no_match: Vec<String>,
}

impl fmt::Debug for Examples {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Examples {{ match: {}, no_match: {} }}",
            self.matches.len(),
            self.no_match.len()
        )
    }
}

/// One detection rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable identifier, e.g. `NGB-CNIC-001`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// What it finds.
    pub pii: PiiKind,
    /// How serious a finding is.
    pub severity: Severity,
    /// Which validator confirms a hit.
    pub validator: Validator,
    /// Confidence of a finding without a context keyword; a keyword raises it one level.
    pub confidence: Confidence,
    /// Hyperscan expressions (matched with `SOM_LEFTMOST`), at least one.
    pub patterns: Vec<String>,
    /// Optional context keywords.
    pub context: Option<Context>,
    /// Examples run by [`check`].
    pub examples: Examples,
    /// File the rule was loaded from.
    pub source: PathBuf,
}

/// A loaded, compiled-able rule set.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    schemes: CardSchemes,
    dir: PathBuf,
}

// ---- raw TOML shape -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
    #[serde(default)]
    card_scheme: Vec<RawScheme>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    name: String,
    pii: PiiKind,
    severity: Severity,
    validator: Validator,
    #[serde(default = "default_confidence")]
    confidence: Confidence,
    patterns: Vec<String>,
    #[serde(default)]
    context: Option<RawContext>,
    #[serde(default)]
    examples: RawExamples,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContext {
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default = "default_window")]
    window: usize,
    #[serde(default = "default_window_after")]
    window_after: usize,
    /// Replaced by confidence levels; accepted only to explain the replacement.
    #[serde(default)]
    required: Option<bool>,
}

fn default_window() -> usize {
    DEFAULT_CONTEXT_WINDOW
}

fn default_window_after() -> usize {
    DEFAULT_CONTEXT_AFTER
}

fn default_confidence() -> Confidence {
    Confidence::Medium
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExamples {
    #[serde(default, rename = "match")]
    matches: Vec<RawMatch>,
    #[serde(default)]
    no_match: Vec<String>,
}

/// `"text"` or `{ text = "...", confidence = "low" }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawMatch {
    Text(String),
    Expect(RawExpect),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    text: String,
    confidence: Confidence,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScheme {
    name: String,
    prefixes: Vec<String>,
    lengths: Vec<u32>,
}

// ---- loading --------------------------------------------------------------------------------

impl RuleSet {
    /// Loads every `*.toml` file in `dir` (sorted by name).
    pub fn load_dir(dir: &Path) -> Result<RuleSet, RuleError> {
        let read_dir = |source| RuleError::ReadDir {
            dir: dir.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_dir)? {
            let path = entry.map_err(read_dir)?.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                files.push(path);
            }
        }
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));

        let mut raw_rules = Vec::new();
        let mut schemes = CardSchemes::default();
        let mut scheme_files: HashMap<String, PathBuf> = HashMap::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| RuleError::ReadFile {
                path: path.clone(),
                source,
            })?;
            let raw: RawFile = toml::from_str(&text).map_err(|e| syntax_error(&path, &text, &e))?;
            for s in raw.card_scheme {
                let scheme_err = |source| RuleError::Scheme {
                    path: path.clone(),
                    scheme: s.name.clone(),
                    source,
                };
                let scheme = CardScheme::new(&s.name, &s.prefixes, &s.lengths).map_err(scheme_err)?;
                if let Some(first) = scheme_files.insert(s.name.clone(), path.clone()) {
                    return Err(RuleError::Invalid {
                        path: path.clone(),
                        rule: String::new(),
                        message: format!(
                            "card_scheme {:?} is also defined in {}: scheme names must be unique",
                            s.name,
                            first.display()
                        ),
                    });
                }
                schemes.push(scheme);
            }
            raw_rules.extend(raw.rule.into_iter().map(|r| (path.clone(), r)));
        }
        if raw_rules.is_empty() {
            return Err(RuleError::NoRules { dir: dir.to_path_buf() });
        }

        let mut ids: HashMap<String, PathBuf> = HashMap::new();
        let mut rules = Vec::with_capacity(raw_rules.len());
        for (path, raw) in raw_rules {
            if let Some(first) = ids.get(&raw.id) {
                return Err(RuleError::DuplicateId {
                    id: raw.id,
                    first: first.clone(),
                    second: path,
                });
            }
            ids.insert(raw.id.clone(), path.clone());
            rules.push(build_rule(path, raw, &schemes)?);
        }
        Ok(RuleSet {
            rules,
            schemes,
            dir: dir.to_path_buf(),
        })
    }

    /// Rules in load order; a rule's index here is its `RuleIdx`.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The issuer table used by the card validator.
    pub fn schemes(&self) -> &CardSchemes {
        &self.schemes
    }

    /// The directory the rules were loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn build_rule(path: PathBuf, raw: RawRule, schemes: &CardSchemes) -> Result<Rule, RuleError> {
    let invalid = |message: String| RuleError::Invalid {
        path: path.clone(),
        rule: raw.id.clone(),
        message,
    };
    let id_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if raw.id.is_empty() || raw.id.len() > 64 || !raw.id.chars().all(id_ok) {
        return Err(invalid(
            "id must be 1-64 characters of A-Z, a-z, 0-9, '-', '_' or '.'".to_string(),
        ));
    }
    if raw.name.trim().is_empty() {
        return Err(invalid("name is empty: describe what the rule finds".to_string()));
    }
    let finds = raw.validator.kind();
    if finds != raw.pii {
        return Err(invalid(format!(
            "validator \"{}\" confirms {} values but pii = \"{}\": make them agree",
            raw.validator.as_str(),
            finds.as_str(),
            raw.pii.as_str()
        )));
    }
    if raw.validator == Validator::Card && schemes.is_empty() {
        return Err(RuleError::NoCardSchemes { path, rule: raw.id });
    }
    if raw.patterns.is_empty() {
        return Err(RuleError::EmptyPatterns { path, rule: raw.id });
    }
    for (index, p) in raw.patterns.iter().enumerate() {
        let info = crate::matcher::probe_pattern(p).map_err(|message| RuleError::Pattern {
            path: path.clone(),
            rule: raw.id.clone(),
            index,
            message,
        })?;
        if !matches!(info.max_width, Some(w) if w <= MAX_MATCH_WIDTH) {
            return Err(RuleError::Width {
                path,
                rule: raw.id,
                index,
                width: info.max_width,
                max: MAX_MATCH_WIDTH,
            });
        }
    }
    let context = match raw.context {
        None => None,
        Some(c) => {
            if c.required.is_some() {
                return Err(invalid(
                    "context.required was replaced by confidence levels: remove it and set the rule's \
                     confidence (e.g. confidence = \"low\" so the value only alerts next to a keyword)"
                        .to_string(),
                ));
            }
            if c.window == 0 || c.window > MAX_CONTEXT_WINDOW {
                return Err(invalid(format!(
                    "context.window = {} is out of range: use 1 to {MAX_CONTEXT_WINDOW} bytes",
                    c.window
                )));
            }
            if c.window_after > MAX_CONTEXT_AFTER {
                return Err(invalid(format!(
                    "context.window_after = {} is out of range: use 0 to {MAX_CONTEXT_AFTER} bytes",
                    c.window_after
                )));
            }
            if c.keywords.is_empty() {
                return Err(invalid(
                    "[rule.context] has no keywords: list some or remove the section".to_string(),
                ));
            }
            if c.keywords.iter().any(|k| k.trim().is_empty()) {
                return Err(invalid("context.keywords has an empty keyword: remove it".to_string()));
            }
            if let Some(k) = c.keywords.iter().find(|k| k.len() > c.window) {
                return Err(invalid(format!(
                    "context keyword of {} bytes cannot fit in window = {}: raise the window or shorten it ({k:?})",
                    k.len(),
                    c.window
                )));
            }
            let compiled = Keywords::new(&c.keywords);
            Some(Context {
                keywords: c.keywords,
                window: c.window,
                window_after: c.window_after,
                compiled,
            })
        }
    };
    let matches = raw
        .examples
        .matches
        .into_iter()
        .map(|m| match m {
            RawMatch::Text(text) => MatchExample { text, confidence: None },
            RawMatch::Expect(e) => MatchExample {
                text: e.text,
                confidence: Some(e.confidence),
            },
        })
        .collect();
    Ok(Rule {
        id: raw.id,
        name: raw.name,
        pii: raw.pii,
        severity: raw.severity,
        validator: raw.validator,
        confidence: raw.confidence,
        patterns: raw.patterns,
        context,
        examples: Examples {
            matches,
            no_match: raw.examples.no_match,
        },
        source: path,
    })
}

fn syntax_error(path: &Path, text: &str, e: &toml::de::Error) -> RuleError {
    let (line, col) = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (line, col)
        }
        None => (0, 0),
    };
    RuleError::Syntax {
        path: path.to_path_buf(),
        line,
        col,
        message: e.message().replace('\n', " ").trim().to_string(),
    }
}

#[cfg(test)]
mod tests;
