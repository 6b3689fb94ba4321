//! HTTP JSON collectors: Splunk HTTP Event Collector and Elasticsearch/OpenSearch `_bulk`,
//! over HTTPS with rustls, batched and gzip-compressed.
//!
//! CONTRACT STUB (lead): the issue-4 HTTP helper replaces the bodies; the names below are what
//! the rest of `sink` and `cli` use.

use super::output::Transport;
use std::path::Path;

/// One HTTP output as written in the config file (`[[output.http]]`), or built from flags.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOutputConfig {}

/// Flags that add HTTP outputs (flattened into the `capture`/`read` flags).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HttpArgs {}

impl HttpArgs {
    /// The outputs these flags ask for (none when no HTTP flag is given).
    pub fn configs(&self) -> anyhow::Result<Vec<HttpOutputConfig>> {
        Ok(Vec::new())
    }
}

/// Builds the transport for one HTTP output; relative paths resolve against `base_dir` (the
/// config file's directory). Fails on unreadable token or CA files, with the path in the message.
pub fn transport(cfg: &HttpOutputConfig, base_dir: &Path) -> anyhow::Result<Box<dyn Transport>> {
    let _ = (cfg, base_dir);
    anyhow::bail!("HTTP outputs are not built yet")
}
