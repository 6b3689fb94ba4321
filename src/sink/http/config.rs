//! What an HTTP output is told: the `[[output.http]]` table, the flags that build the same
//! thing, and the secrets read from files at start.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which collector protocol an output speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectorKind {
    /// Splunk HTTP Event Collector, `POST /services/collector/event`.
    SplunkHec,
    /// Elasticsearch or OpenSearch `POST /_bulk`.
    Elasticsearch,
}

impl CollectorKind {
    /// Fixed label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            CollectorKind::SplunkHec => "splunk-hec",
            CollectorKind::Elasticsearch => "elasticsearch",
        }
    }
}

/// Alerts per request when `max_batch` is not set.
pub const DEFAULT_MAX_BATCH: usize = 500;
/// Highest `max_batch` accepted; larger requests only hit collectors' body limits.
pub const MAX_MAX_BATCH: usize = 10_000;
/// Seconds allowed for connecting and for the whole request when `timeout_secs` is not set.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// Index written to by Elasticsearch outputs when `index` is not set.
pub const DEFAULT_ELASTIC_INDEX: &str = "nigehban-alerts";
/// Splunk sourcetype when `sourcetype` is not set (the `props.conf` in `deploy/siem` matches it).
pub const DEFAULT_SOURCETYPE: &str = "nigehban:alert";

/// One HTTP output as written in the config file (`[[output.http]]`), or built from flags.
///
/// Secrets are never written here: `token_file`, `api_key_file` and `password_file` name files
/// that hold them (one line; surrounding whitespace is trimmed). Relative paths resolve against
/// the config file's directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOutputConfig {
    /// `splunk_hec` or `elasticsearch` (OpenSearch speaks the same `_bulk`).
    pub kind: CollectorKind,
    /// `https://` base URL of the collector, e.g. `https://splunk.example:8088`. The API path
    /// (`/services/collector/event`, `/_bulk`) is appended unless the URL already ends with it.
    pub url: String,
    /// Splunk HEC: file holding the HEC token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Elasticsearch: file holding the API key in its encoded form (the `encoded` field that
    /// `POST /_security/api_key` returns), sent as `Authorization: ApiKey …`.
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Elasticsearch/OpenSearch basic auth: user name (with `password_file`).
    #[serde(default)]
    pub user: Option<String>,
    /// Elasticsearch/OpenSearch basic auth: file holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Splunk: index (default: the token's default index). Elasticsearch: index or data stream
    /// (default `nigehban-alerts`).
    #[serde(default)]
    pub index: Option<String>,
    /// Splunk sourcetype (default `nigehban:alert`).
    #[serde(default)]
    pub sourcetype: Option<String>,
    /// PEM CA bundle that signed the collector's certificate (default: system trust store).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `client_key`).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate and name. Anyone on the path can then read the alerts
    /// and the credentials; for lab use only. Logged as a warning at start.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Compress request bodies with gzip (default true).
    #[serde(default = "yes")]
    pub gzip: bool,
    /// Most alerts per request (default 500, at most 10 000).
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// Seconds allowed to connect, and again for the whole request (default 10).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

fn yes() -> bool {
    true
}

impl HttpOutputConfig {
    /// An output of `kind` at `url` with every option at its default.
    pub fn new(kind: CollectorKind, url: impl Into<String>) -> HttpOutputConfig {
        HttpOutputConfig {
            kind,
            url: url.into(),
            token_file: None,
            api_key_file: None,
            user: None,
            password_file: None,
            index: None,
            sourcetype: None,
            ca: None,
            client_cert: None,
            client_key: None,
            insecure_skip_verify: false,
            gzip: true,
            max_batch: None,
            timeout_secs: None,
        }
    }

    pub(super) fn batch(&self) -> usize {
        self.max_batch.unwrap_or(DEFAULT_MAX_BATCH)
    }

    pub(super) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS))
    }
}

/// Flags that add HTTP outputs (flattened into the `capture`/`read` flags). Each of
/// `--hec-url` and `--elastic-url` adds one output; the TLS flags apply to both.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HttpArgs {
    /// Splunk HEC base URL, e.g. `https://splunk.example:8088` (needs --hec-token-file).
    #[arg(long, value_name = "URL")]
    pub hec_url: Option<String>,
    /// File holding the Splunk HEC token.
    #[arg(long, value_name = "FILE")]
    pub hec_token_file: Option<PathBuf>,
    /// Splunk index (default: the token's default index).
    #[arg(long, value_name = "INDEX")]
    pub hec_index: Option<String>,
    /// Elasticsearch/OpenSearch base URL, e.g. `https://es.example:9200`.
    #[arg(long, value_name = "URL")]
    pub elastic_url: Option<String>,
    /// File holding an Elasticsearch API key (the `encoded` form).
    #[arg(long, value_name = "FILE")]
    pub elastic_api_key_file: Option<PathBuf>,
    /// Elasticsearch/OpenSearch user for basic auth (needs --elastic-password-file).
    #[arg(long, value_name = "USER")]
    pub elastic_user: Option<String>,
    /// File holding the password of --elastic-user.
    #[arg(long, value_name = "FILE")]
    pub elastic_password_file: Option<PathBuf>,
    /// Index or data stream to write (default `nigehban-alerts`).
    #[arg(long, value_name = "INDEX")]
    pub elastic_index: Option<String>,
    /// PEM CA bundle for the HTTP collectors' certificates (default: system trust store).
    #[arg(long, value_name = "FILE")]
    pub http_ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS with the HTTP collectors (needs --http-key).
    #[arg(long, value_name = "FILE")]
    pub http_cert: Option<PathBuf>,
    /// PEM private key of --http-cert.
    #[arg(long, value_name = "FILE")]
    pub http_key: Option<PathBuf>,
    /// DANGEROUS: accept any certificate from the HTTP collectors; alerts and credentials
    /// can then be read by anyone on the path. Lab use only.
    #[arg(long)]
    pub http_insecure_skip_verify: bool,
}

impl HttpArgs {
    /// The outputs these flags ask for (none when no HTTP flag is given). Relative paths are
    /// made absolute against the working directory, so they do not move with the config file.
    pub fn configs(&self) -> anyhow::Result<Vec<HttpOutputConfig>> {
        let mut out = Vec::new();
        let abs = |p: &Option<PathBuf>| -> anyhow::Result<Option<PathBuf>> {
            Ok(match p {
                Some(p) if p.is_relative() => Some(std::env::current_dir()?.join(p)),
                other => other.clone(),
            })
        };
        let tls = |mut c: HttpOutputConfig| -> anyhow::Result<HttpOutputConfig> {
            c.ca = abs(&self.http_ca)?;
            c.client_cert = abs(&self.http_cert)?;
            c.client_key = abs(&self.http_key)?;
            c.insecure_skip_verify = self.http_insecure_skip_verify;
            Ok(c)
        };
        match (&self.hec_url, &self.hec_token_file) {
            (Some(url), Some(_)) => {
                let mut c = HttpOutputConfig::new(CollectorKind::SplunkHec, url.clone());
                c.token_file = abs(&self.hec_token_file)?;
                c.index = self.hec_index.clone();
                out.push(tls(c)?);
            }
            (Some(_), None) => anyhow::bail!("--hec-url needs --hec-token-file FILE (the HEC token, in a file)"),
            (None, _) if self.hec_token_file.is_some() || self.hec_index.is_some() => {
                anyhow::bail!("--hec-token-file and --hec-index need --hec-url URL")
            }
            (None, _) => {}
        }
        if let Some(url) = &self.elastic_url {
            let mut c = HttpOutputConfig::new(CollectorKind::Elasticsearch, url.clone());
            match (&self.elastic_api_key_file, &self.elastic_user, &self.elastic_password_file) {
                (Some(_), None, None) => c.api_key_file = abs(&self.elastic_api_key_file)?,
                (None, Some(user), Some(_)) => {
                    c.user = Some(user.clone());
                    c.password_file = abs(&self.elastic_password_file)?;
                }
                _ => anyhow::bail!(
                    "--elastic-url needs either --elastic-api-key-file FILE or both --elastic-user USER and --elastic-password-file FILE"
                ),
            }
            c.index = self.elastic_index.clone();
            out.push(tls(c)?);
        } else if self.elastic_api_key_file.is_some()
            || self.elastic_user.is_some()
            || self.elastic_password_file.is_some()
            || self.elastic_index.is_some()
        {
            anyhow::bail!("the --elastic-* options need --elastic-url URL");
        }
        if out.is_empty()
            && (self.http_ca.is_some()
                || self.http_cert.is_some()
                || self.http_key.is_some()
                || self.http_insecure_skip_verify)
        {
            anyhow::bail!(
                "--http-ca, --http-cert, --http-key and --http-insecure-skip-verify need --hec-url or --elastic-url"
            );
        }
        Ok(out)
    }
}

/// A credential read from a file. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Secret(String);

impl Secret {
    /// Reads `path` (relative to `base_dir`); the secret is the file's content with
    /// surrounding whitespace trimmed, and must be one non-empty line.
    pub(super) fn from_file(what: &str, path: &Path, base_dir: &Path) -> anyhow::Result<Secret> {
        let full = base_dir.join(path);
        let text = std::fs::read_to_string(&full).map_err(|e| {
            anyhow::anyhow!(
                "cannot read {what} file {}: {e}; check the path and that nigehban may read it",
                full.display()
            )
        })?;
        let value = text.trim();
        if value.is_empty() {
            anyhow::bail!("{what} file {} is empty; write the {what} on one line", full.display());
        }
        // A newline inside would split the HTTP header; refuse rather than send something odd.
        if value.contains(['\r', '\n']) || !value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
            anyhow::bail!(
                "{what} file {} must hold the {what} alone on one line of printable ASCII",
                full.display()
            );
        }
        Ok(Secret(value.to_string()))
    }

    pub(super) fn new(value: String) -> Secret {
        Secret(value)
    }

    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        http: HttpArgs,
    }

    fn parse(args: &[&str]) -> anyhow::Result<Vec<HttpOutputConfig>> {
        let mut all = vec!["nigehban"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)?.http.configs()
    }

    #[test]
    fn no_flags_no_outputs() {
        assert!(parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn hec_and_elastic_flags_make_two_outputs_sharing_tls() {
        let out = parse(&[
            "--hec-url",
            "https://splunk:8088",
            "--hec-token-file",
            "/etc/n/hec.token",
            "--hec-index",
            "dlp",
            "--elastic-url",
            "https://es:9200",
            "--elastic-user",
            "nigehban",
            "--elastic-password-file",
            "es.pass",
            "--http-ca",
            "/etc/n/ca.pem",
        ])
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].kind, CollectorKind::SplunkHec);
        assert_eq!(out[0].token_file.as_deref(), Some(Path::new("/etc/n/hec.token")));
        assert_eq!(out[0].index.as_deref(), Some("dlp"));
        assert_eq!(out[1].kind, CollectorKind::Elasticsearch);
        assert_eq!(out[1].user.as_deref(), Some("nigehban"));
        // Relative flag paths are anchored to the working directory, not the config file.
        let pass = out[1].password_file.as_ref().unwrap();
        assert!(pass.is_absolute() && pass.ends_with("es.pass"));
        assert!(out.iter().all(|c| c.ca.as_deref() == Some(Path::new("/etc/n/ca.pem"))));
        assert!(out.iter().all(|c| c.gzip && !c.insecure_skip_verify));
    }

    #[test]
    fn incomplete_flag_sets_are_refused_with_the_missing_flag() {
        let e = parse(&["--hec-url", "https://s:8088"]).unwrap_err().to_string();
        assert!(e.contains("--hec-token-file"), "{e}");
        let e = parse(&["--hec-token-file", "t"]).unwrap_err().to_string();
        assert!(e.contains("--hec-url"), "{e}");
        let e = parse(&["--elastic-url", "https://e:9200"]).unwrap_err().to_string();
        assert!(e.contains("--elastic-api-key-file"), "{e}");
        let e = parse(&["--elastic-url", "https://e", "--elastic-user", "u"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--elastic-password-file"), "{e}");
        let both = [
            "--elastic-url",
            "https://e",
            "--elastic-api-key-file",
            "k",
            "--elastic-user",
            "u",
            "--elastic-password-file",
            "p",
        ];
        assert!(parse(&both).is_err());
        let e = parse(&["--http-ca", "ca.pem"]).unwrap_err().to_string();
        assert!(e.contains("--hec-url"), "{e}");
    }

    #[test]
    fn toml_table_parses_with_defaults_and_refuses_unknown_keys() {
        let c: HttpOutputConfig = toml::from_str(
            r#"
            kind = "elasticsearch"
            url = "https://es:9200"
            api_key_file = "es.key"
            "#,
        )
        .unwrap();
        assert_eq!(c, {
            let mut d = HttpOutputConfig::new(CollectorKind::Elasticsearch, "https://es:9200");
            d.api_key_file = Some("es.key".into());
            d
        });
        assert_eq!(c.batch(), DEFAULT_MAX_BATCH);
        assert_eq!(c.timeout(), Duration::from_secs(DEFAULT_TIMEOUT_SECS));
        let e = toml::from_str::<HttpOutputConfig>("kind = \"splunk_hec\"\nurl = \"https://s\"\ntoken = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("token"), "{e}");
        assert!(toml::from_str::<HttpOutputConfig>("kind = \"kafka\"\nurl = \"https://s\"\n").is_err());
    }

    #[test]
    fn secrets_are_trimmed_checked_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), "  abcd-1234-SECRET\n").unwrap();
        let s = Secret::from_file("HEC token", Path::new("t"), dir.path()).unwrap();
        assert_eq!(s.expose(), "abcd-1234-SECRET");
        assert!(!format!("{s:?}").contains("SECRET"));
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let e = Secret::from_file("HEC token", Path::new("empty"), dir.path()).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        std::fs::write(dir.path().join("two"), "line one SECRET\nline two\n").unwrap();
        let e = Secret::from_file("HEC token", Path::new("two"), dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("one line") && !e.contains("SECRET"), "{e}");
        let e = Secret::from_file("HEC token", Path::new("missing"), dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing") && e.contains("HEC token"), "{e}");
    }
}
