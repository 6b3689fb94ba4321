//! `nigehban check-config`: everything the sensor would refuse at start, found without capturing,
//! one line per problem so an operator (or a deployment pipeline) fixes them all in one pass.
//!
//! Checks, in order: the file reads and is TOML (`FILE:LINE:COL: what`); every key is known and
//! of the right type (`FILE:LINE:COL`); values merge into valid settings; every file the config
//! names exists and is readable (key file, known-values lists, CA bundles, certificates, token
//! files), the PII key file is not readable by others; the `--user` exists; the rule set loads,
//! compiles and passes its own examples. File checks run even when an earlier stage failed, so
//! a missing CA file is reported together with a typo elsewhere.

use super::{settings, CommonArgs, InputArgs};
use clap::Args;
use std::path::{Path, PathBuf};

/// `check-config` flags.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// TOML configuration file to check.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Rule directory to check instead of the config's `rules` (default: the bundled `rules/`).
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
}

/// What the check found: problems make the config unusable; warnings do not.
#[derive(Debug, Default)]
pub struct Report {
    /// One line each, starting with the file at fault.
    pub problems: Vec<String>,
    /// One line each: accepted, but worth a look (e.g. a group-readable key file).
    pub warnings: Vec<String>,
}

/// Runs every check on `args.config`.
pub fn run(args: &CheckConfigArgs) -> Report {
    let mut r = Report::default();
    let cfg = &args.config;
    let text = match std::fs::read_to_string(cfg) {
        Ok(t) => t,
        Err(e) => {
            r.problems.push(format!(
                "{}: cannot read: {e}; check the path and its permissions",
                cfg.display()
            ));
            return r;
        }
    };
    let table: toml::Table = match toml::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            r.problems.push(located(cfg, &text, &e));
            return r;
        }
    };
    let base = cfg.parent().map(Path::to_path_buf).unwrap_or_default();
    let rel = |p: &str| {
        let p = PathBuf::from(p);
        if p.is_relative() {
            base.join(p)
        } else {
            p
        }
    };

    let mut settings_ok = None;
    match super::config::parse_config_text(&text) {
        Err(e) => r.problems.push(located(cfg, &text, &e)),
        Ok(()) => {
            let common = CommonArgs {
                config: Some(cfg.clone()),
                rules: args.rules.clone(),
                ..CommonArgs::default()
            };
            // Live-capture values are only validated when the config is for live capture.
            let input = get(&table, &["capture", "interface"]).map(|_| InputArgs::Live {
                interface: None,
                bpf: None,
                buffer_mb: None,
                backend: None,
                threads: None,
            });
            match settings(input, &common) {
                Ok(s) => settings_ok = Some(s),
                Err(e) => r
                    .problems
                    .push(format!("{}: {}", cfg.display(), format!("{e:#}").replace('\n', " "))),
            }
        }
    }

    // Files named in the config, found in the raw table so they are checked whatever else failed.
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut add = |key: String, v: Option<&toml::Value>| {
        if let Some(p) = v.and_then(toml::Value::as_str) {
            files.push((key, rel(p)));
        }
    };
    for key in ["metrics_tls_cert", "metrics_tls_key", "metrics_bearer_token_file"] {
        add(key.into(), table.get(key));
    }
    for key in ["ca", "cert", "key"] {
        add(format!("output.syslog.{key}"), get(&table, &["output", "syslog", key]));
    }
    if let Some(list) = get(&table, &["output", "http"]).and_then(toml::Value::as_array) {
        for (i, h) in list.iter().enumerate() {
            for key in [
                "ca",
                "client_cert",
                "client_key",
                "token_file",
                "api_key_file",
                "password_file",
            ] {
                add(format!("output.http[{i}].{key}"), h.get(key));
            }
        }
    }
    if let Some(list) = get(&table, &["judge", "known_values"]).and_then(toml::Value::as_array) {
        for (i, v) in list.iter().enumerate() {
            add(format!("judge.known_values[{i}]"), Some(v));
        }
    }
    for (key, path) in &files {
        if let Err(e) = std::fs::File::open(path) {
            r.problems.push(format!(
                "{}: {key} = {}: cannot open: {e}",
                cfg.display(),
                path.display()
            ));
        }
    }

    let key = table.get("pii_key_file").and_then(toml::Value::as_str).map(rel);
    let key = key.and_then(|p| check_key_file(cfg, &p, &mut r));
    if let Some(user) = get(&table, &["capture", "user"]).and_then(toml::Value::as_str) {
        if let Err(e) = crate::privilege::User::lookup(user) {
            r.problems.push(format!("{}: capture.user: {e}", cfg.display()));
        }
    }

    if let Some(s) = &settings_ok {
        // Known-value lists must have been made with this key; the judge checks the fingerprint.
        let k = key.unwrap_or_else(crate::pii::PiiKey::random);
        if !s.judge.known_values.is_empty() && s.pii_key_file.is_some() {
            if let Err(e) = crate::judge::Judge::from_settings(s, &k) {
                r.problems.push(format!("{}: judge: {e:#}", cfg.display()));
            }
        }
        if let Err(e) = crate::metrics::check_security(&s.metrics_security) {
            r.problems.push(format!("{}: {e}", cfg.display()));
        }
    }

    let rules = match (&args.rules, table.get("rules").and_then(toml::Value::as_str)) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => rel(d),
        (None, None) => super::default_rules_dir(),
    };
    match crate::app::load_matcher(&rules) {
        Ok(m) => {
            if let Err(e) = crate::rules::check(&m) {
                r.problems.push(e.to_string());
            }
        }
        Err(e) => r.problems.push(format!("{e:#}").replace('\n', " ")),
    }
    r
}

/// Checks the key file is readable, not empty and not readable by others; returns the key.
fn check_key_file(cfg: &Path, path: &Path, r: &mut Report) -> Option<crate::pii::PiiKey> {
    use crate::pii::{key_file_access, KeyFileAccess, PiiKey};
    let at = |what: String| format!("{}: pii_key_file = {}: {what}", cfg.display(), path.display());
    match key_file_access(path) {
        Err(e) => {
            r.problems.push(at(format!("cannot open: {e}")));
            return None;
        }
        Ok(KeyFileAccess::WorldReadable(mode)) => {
            r.problems.push(at(format!(
                "world-readable (mode {mode:04o}), which the sensor refuses; chmod 600 it"
            )));
            return None;
        }
        Ok(KeyFileAccess::GroupReadable(mode)) => r.warnings.push(at(format!(
            "group-readable (mode {mode:04o}): every member can test guesses against alert hashes"
        ))),
        Ok(KeyFileAccess::Private) => {}
    }
    match PiiKey::from_file(path) {
        Ok(k) => Some(k),
        Err(e) => {
            r.problems.push(at(e.to_string()));
            None
        }
    }
}

fn get<'a>(t: &'a toml::Table, path: &[&str]) -> Option<&'a toml::Value> {
    let (last, parents) = path.split_last()?;
    let mut t = t;
    for p in parents {
        t = t.get(*p)?.as_table()?;
    }
    t.get(*last)
}

/// `FILE:LINE:COL: message` for a TOML error with a span (1-based, columns in characters).
fn located(file: &Path, text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            format!("{}:{line}:{col}: {msg}", file.display())
        }
        None => format!("{}: {msg}", file.display()),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based_in_characters() {
        assert_eq!(line_col("a = 1\nbé = x\n", 0), (1, 1));
        assert_eq!(line_col("a = 1\nbé = x\n", 6), (2, 1));
        assert_eq!(line_col("a = 1\nbé = x\n", 12), (2, 6));
    }
}
