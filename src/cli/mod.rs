//! Command line (clap) and TOML configuration, merged and validated into [`Settings`], which the
//! rest of the program trusts. Flags override the file; the file overrides defaults.

mod config;
// ---- judgement (judge helper) ----
pub mod hash_list;
// ---- end judgement ----

pub use config::{AlertOutput, HomeNet, InputMode, PipelineConfig, Settings};
pub use LogFormatArg as LogFormat;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Nigehban: watches traffic leaving the network and alerts when CNICs or payment card numbers
/// cross it in clear text.
#[derive(Debug, Parser)]
#[command(name = "nigehban", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture live from a network interface (libpcap, promiscuous).
    Capture(CaptureArgs),
    /// Read pcap or pcapng files in order, then exit.
    Read(ReadArgs),
    /// Work with rule files.
    Rules {
        /// Rule sub-command.
        #[command(subcommand)]
        command: RulesCommand,
    },
    // ---- judgement (judge helper) ----
    /// Make a known-values file (keyed hashes) from a CSV of customers' CNICs, cards or IBANs.
    HashList(hash_list::HashListArgs),
    // ---- end judgement ----
}

/// `rules` sub-commands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Compile the rule set and run every rule's examples.
    Check {
        /// Rule directory (default: the bundled `rules/`).
        dir: Option<PathBuf>,
    },
}

/// `capture` flags.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Interface to capture from (or `capture.interface` in the config).
    #[arg(long, short = 'i', value_name = "IFACE")]
    pub interface: Option<String>,
    /// BPF filter expression applied in the kernel.
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,
    /// Kernel capture buffer size in MiB (default 64).
    #[arg(long, value_name = "N")]
    pub buffer_mb: Option<u32>,
    /// Options shared with `read`.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `read` flags.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// pcap or pcapng files, processed in the order given.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Options shared with `capture`.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Options of both `capture` and `read`; each can also be set in the config file.
#[derive(Debug, Args, Default)]
pub struct CommonArgs {
    /// TOML configuration file; flags override its values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Rule directory (default: the bundled `rules/`).
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Inside network, repeatable (default: RFC 1918, 100.64.0.0/10, fc00::/7).
    #[arg(long = "home-net", value_name = "CIDR")]
    pub home_net: Vec<String>,
    /// Where alerts go as JSON lines: a file, or `-` for stdout (default).
    #[arg(long, value_name = "PATH")]
    pub alerts: Option<String>,
    /// Secret key for the keyed hash of personal values (default: random per run).
    #[arg(long, value_name = "PATH")]
    pub pii_key_file: Option<PathBuf>,
    /// Worker threads (default: cores − 1, at least 1).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Address for the Prometheus endpoint, or `off` (default 127.0.0.1:9750).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Log format on stderr.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Sensor name in alerts (default: host name).
    #[arg(long, value_name = "NAME")]
    pub observer_name: Option<String>,
    // ---- judgement (judge helper) ----
    /// Lowest confidence that alerts (default medium; config `judge.min_confidence`).
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub min_confidence: Option<crate::pii::Confidence>,
    /// Known-values file made by `nigehban hash-list`, repeatable (config `judge.known_values`).
    #[arg(long = "known-values", value_name = "FILE")]
    pub known_values: Vec<PathBuf>,
    // ---- end judgement ----
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

pub use config::{default_rules_dir, settings, InputArgs};
