//! HTTP JSON collectors: Splunk HTTP Event Collector and Elasticsearch/OpenSearch `_bulk`,
//! over HTTPS with rustls, batched and gzip-compressed.
//!
//! Layout, the same for both collectors: `config` (what the operator writes), `encode`
//! (request bodies and response verdicts, pure), `client` (the HTTPS request and error
//! mapping). Delivery order, retry and spooling belong to the caller (see `sink::output`).
//!
//! What each outcome means for the delivery thread:
//!
//! | answer                                               | `DeliveryError`  |
//! |------------------------------------------------------|------------------|
//! | 2xx (HEC code 0; `_bulk` without failed items)       | — (delivered)    |
//! | refused, reset, timeout, DNS, 408, 429, 5xx          | `Unavailable`    |
//! | `_bulk` item 429/5xx (the batch is re-sent)          | `Unavailable`    |
//! | TLS trust/name/client-cert failure, 401, 403, 404, 3xx | `Config`       |
//! | HEC code 1–4 (token), 7 (index), 10/11/14 (ack)      | `Config`         |
//! | 400, other 4xx; `_bulk` item 400 (bad document)       | `Rejected`       |
//! | 413                                                  | batch split in halves; `Rejected` for one alert |
//!
//! A re-sent `_bulk` batch is stored once: document ids derive from the alert bytes and
//! `create` answers 409 for ids already stored, which counts as delivered.

mod client;
mod config;
mod encode;

pub use config::{
    CollectorKind, HttpArgs, HttpOutputConfig, DEFAULT_ELASTIC_INDEX, DEFAULT_MAX_BATCH, DEFAULT_SOURCETYPE,
    DEFAULT_TIMEOUT_SECS, MAX_MAX_BATCH,
};

use super::output::Transport;
use super::tls;
use anyhow::Context;
use base64::Engine;
use client::{HttpTransport, Protocol};
use config::Secret;
use std::path::Path;

/// Builds the transport for one HTTP output; relative paths resolve against `base_dir` (the
/// config file's directory). Fails on a bad URL, options that do not fit the kind, or
/// unreadable credential or certificate files, with the path in the message. Logs a warning
/// when `insecure_skip_verify` is set.
pub fn transport(cfg: &HttpOutputConfig, base_dir: &Path) -> anyhow::Result<Box<dyn Transport>> {
    Ok(Box::new(build(cfg, base_dir)?))
}

fn build(cfg: &HttpOutputConfig, base_dir: &Path) -> anyhow::Result<HttpTransport> {
    let mut url = url::Url::parse(&cfg.url).with_context(|| format!("HTTP output url `{}` is not a URL", cfg.url))?;
    check_url(&url)?;
    let what = cfg.kind.label();
    let wrong = |field: &str| anyhow::anyhow!("{what} output {}: `{field}` does not apply to kind {what}", cfg.url);
    let (api_path, auth) = match cfg.kind {
        CollectorKind::SplunkHec => {
            for (set, field) in [
                (cfg.api_key_file.is_some(), "api_key_file"),
                (cfg.user.is_some(), "user"),
                (cfg.password_file.is_some(), "password_file"),
            ] {
                if set {
                    return Err(wrong(field));
                }
            }
            let file = cfg.token_file.as_deref().ok_or_else(|| {
                anyhow::anyhow!("splunk_hec output {} needs `token_file` (--hec-token-file)", cfg.url)
            })?;
            let token = Secret::from_file("HEC token", file, base_dir)?;
            (
                "/services/collector/event",
                Secret::new(format!("Splunk {}", token.expose())),
            )
        }
        CollectorKind::Elasticsearch => {
            for (set, field) in [
                (cfg.token_file.is_some(), "token_file"),
                (cfg.sourcetype.is_some(), "sourcetype"),
            ] {
                if set {
                    return Err(wrong(field));
                }
            }
            let auth = match (&cfg.api_key_file, &cfg.user, &cfg.password_file) {
                (Some(f), None, None) => {
                    let key = Secret::from_file("Elasticsearch API key", f, base_dir)?;
                    Secret::new(format!("ApiKey {}", key.expose()))
                }
                (None, Some(user), Some(f)) => {
                    if user.contains(':') {
                        anyhow::bail!("elasticsearch output {}: user `{user}` must not contain `:`", cfg.url);
                    }
                    let pass = Secret::from_file("Elasticsearch password", f, base_dir)?;
                    let pair = format!("{user}:{}", pass.expose());
                    Secret::new(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    ))
                }
                _ => anyhow::bail!(
                    "elasticsearch output {} needs either `api_key_file` or both `user` and `password_file`",
                    cfg.url
                ),
            };
            ("/_bulk", auth)
        }
    };
    let mut path = url.path().trim_end_matches('/').to_string();
    if !path.ends_with(api_path) {
        path.push_str(api_path);
    }
    url.set_path(&path);
    let endpoint = url.to_string();
    if cfg.kind == CollectorKind::Elasticsearch {
        // Per-item results without echoing every document's index, id and shard counts.
        url.query_pairs_mut().append_pair(
            "filter_path",
            "errors,items.*.status,items.*.error.type,items.*.error.reason",
        );
    }

    let max_batch = cfg.batch();
    if !(1..=MAX_MAX_BATCH).contains(&max_batch) {
        anyhow::bail!("{what} output {endpoint}: max_batch {max_batch} must be 1 to {MAX_MAX_BATCH}");
    }
    if cfg.timeout_secs == Some(0) {
        anyhow::bail!("{what} output {endpoint}: timeout_secs must be at least 1");
    }
    if cfg.index.as_deref() == Some("") {
        anyhow::bail!("{what} output {endpoint}: index is empty; leave it out for the default");
    }
    let client_cert = match (&cfg.client_cert, &cfg.client_key) {
        (Some(c), Some(k)) => Some((base_dir.join(c), base_dir.join(k))),
        (None, None) => None,
        _ => anyhow::bail!(
            "{what} output {endpoint}: `client_cert` and `client_key` go together (--http-cert, --http-key)"
        ),
    };
    let ca = cfg.ca.as_ref().map(|p| base_dir.join(p));
    let tls_config = tls::client_config(
        ca.as_deref(),
        client_cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        cfg.insecure_skip_verify,
    )
    .with_context(|| format!("{what} output {endpoint}"))?;
    if cfg.insecure_skip_verify {
        tracing::warn!(
            output = what,
            endpoint = %endpoint,
            "insecure_skip_verify (--http-insecure-skip-verify) is ON: the collector's certificate is NOT verified, so anyone on the path can read the alerts and the credentials"
        );
    }

    let protocol = match cfg.kind {
        CollectorKind::SplunkHec => Protocol::Hec {
            encoder: encode::HecEncoder::new(
                cfg.sourcetype.as_deref().unwrap_or(DEFAULT_SOURCETYPE),
                cfg.index.as_deref(),
            ),
            channel: random_uuid(),
        },
        CollectorKind::Elasticsearch => Protocol::Bulk(encode::BulkEncoder::new(
            cfg.index.as_deref().unwrap_or(DEFAULT_ELASTIC_INDEX),
        )),
    };
    let agent = ureq::AgentBuilder::new()
        .tls_config(tls_config)
        .timeout_connect(cfg.timeout())
        .timeout(cfg.timeout())
        // A redirect would re-send the credentials elsewhere or lose them; report it instead.
        .redirects(0)
        .user_agent(concat!("nigehban/", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(HttpTransport {
        agent,
        url: url.to_string(),
        endpoint,
        auth,
        protocol,
        gzip: cfg.gzip,
        max_batch,
        body: Vec::new(),
        zipped: Vec::new(),
    })
}

fn check_url(url: &url::Url) -> anyhow::Result<()> {
    if url.scheme() != "https" {
        anyhow::bail!("HTTP output url {url} must start with https://: alerts and credentials never travel in clear");
    }
    if !url.username().is_empty() || url.password().is_some() {
        anyhow::bail!(
            "HTTP output url {}://{}…: put credentials in token_file/api_key_file/password_file, not in the URL",
            url.scheme(),
            url.host_str().unwrap_or("")
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        anyhow::bail!("HTTP output url {url} has no host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        anyhow::bail!("HTTP output url {url} must not have a query or fragment; give the collector's base URL");
    }
    Ok(())
}

/// A random (version 4) UUID, the form HEC wants for a channel id.
fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("hec.token"), "TOKEN-SECRET-1\n").unwrap();
        std::fs::write(d.path().join("es.pass"), "PASS-SECRET-2\n").unwrap();
        d
    }

    fn hec(url: &str) -> HttpOutputConfig {
        let mut c = HttpOutputConfig::new(CollectorKind::SplunkHec, url);
        c.token_file = Some("hec.token".into());
        c
    }

    #[test]
    fn api_paths_are_appended_once() {
        let d = files();
        let t = transport(&hec("https://splunk.example:8088"), d.path()).unwrap();
        assert_eq!(t.endpoint(), "https://splunk.example:8088/services/collector/event");
        assert_eq!(t.kind(), "splunk-hec");
        assert_eq!(t.max_batch(), DEFAULT_MAX_BATCH);
        let t = transport(&hec("https://s:8088/services/collector/event/"), d.path()).unwrap();
        assert_eq!(t.endpoint(), "https://s:8088/services/collector/event");
        let mut es = HttpOutputConfig::new(CollectorKind::Elasticsearch, "https://es:9200/proxy/");
        es.user = Some("nigehban".into());
        es.password_file = Some("es.pass".into());
        let t = transport(&es, d.path()).unwrap();
        assert_eq!(t.endpoint(), "https://es:9200/proxy/_bulk");
        assert_eq!(t.kind(), "elasticsearch");
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let d = files();
        let mut es = HttpOutputConfig::new(CollectorKind::Elasticsearch, "https://es:9200");
        es.user = Some("nigehban".into());
        es.password_file = Some("es.pass".into());
        let built = build(&es, d.path()).unwrap();
        let dbg = format!("{built:?}");
        let basic = base64::engine::general_purpose::STANDARD.encode("nigehban:PASS-SECRET-2");
        assert!(!dbg.contains("PASS-SECRET-2") && !dbg.contains(&basic), "{dbg}");
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn unsafe_or_mismatched_settings_are_refused() {
        let d = files();
        let err = |c: &HttpOutputConfig| build(c, d.path()).unwrap_err().to_string();
        assert!(err(&hec("http://splunk:8088")).contains("https://"));
        let e = err(&hec("https://admin:pw@splunk:8088"));
        assert!(e.contains("token_file") && !e.contains("pw"), "{e}");
        let mut c = hec("https://s:8088");
        c.api_key_file = Some("k".into());
        assert!(err(&c).contains("api_key_file"));
        let mut c = hec("https://s:8088");
        c.token_file = Some("nope.token".into());
        assert!(err(&c).contains("nope.token"));
        let mut c = hec("https://s:8088");
        c.max_batch = Some(0);
        assert!(err(&c).contains("max_batch"));
        let mut c = hec("https://s:8088");
        c.client_cert = Some("c.pem".into());
        assert!(err(&c).contains("client_key"));
        let mut c = hec("https://s:8088");
        c.ca = Some("missing-ca.pem".into());
        let e = format!("{:#}", build(&c, d.path()).unwrap_err());
        assert!(e.contains("missing-ca.pem"), "{e}");
        let es = HttpOutputConfig::new(CollectorKind::Elasticsearch, "https://es:9200");
        assert!(err(&es).contains("api_key_file"));
    }

    #[test]
    fn channel_ids_are_v4_uuids() {
        let a = random_uuid();
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        assert_ne!(a, random_uuid());
    }
}
