//! Command line (clap) and TOML configuration, merged and validated into [`Settings`], which the
//! rest of the program trusts. Flags override the file; the file overrides defaults.

pub mod bench_gen;
pub mod check_config;
mod config;
pub mod hash_list;

pub use config::{AlertOutput, HomeNet, InputMode, OutputSettings, PipelineConfig, Settings};
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
    /// Make a known-values file (keyed hashes) from a CSV of customers' CNICs, cards or IBANs.
    HashList(hash_list::HashListArgs),
    /// Validate a config file and its rule set without capturing; one line per problem, exit 1 if any.
    CheckConfig(check_config::CheckConfigArgs),
    /// Write a benchmark capture (cleartext, isp or small mix) of a given size.
    #[command(hide = true)]
    BenchGen(bench_gen::BenchGenArgs),
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
    /// Kernel capture buffer size in MiB (default 64); with af-packet, the ring of each capture thread.
    #[arg(long, value_name = "N")]
    pub buffer_mb: Option<u32>,
    /// Capture backend: `pcap` (libpcap, default, portable) or `af-packet` (Linux TPACKET_V3 ring).
    #[arg(long, value_name = "NAME")]
    pub capture_backend: Option<String>,
    /// Capture threads sharing the interface by flow hash (af-packet only; default 1).
    #[arg(long, value_name = "N")]
    pub capture_threads: Option<usize>,
    /// Options shared with `read`.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `read` flags.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// pcap or pcapng files, processed in the order given; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Write the final metrics (Prometheus text format) to FILE when the input ends, e.g. to
    /// compare two builds' counters on the same capture.
    #[arg(long, value_name = "FILE")]
    pub metrics_dump: Option<PathBuf>,
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
    /// Where alerts go as JSON lines: a file, `-` for stdout (default), or `off`.
    #[arg(long, value_name = "PATH")]
    pub alerts: Option<String>,
    /// Rotate the --alerts file before it passes N MiB (default 0: never; or use logrotate and SIGHUP).
    #[arg(long, value_name = "N")]
    pub alerts_max_mb: Option<u64>,
    /// Rotated alert files kept: FILE.1 (newest) … FILE.N (default 5).
    #[arg(long, value_name = "N")]
    pub alerts_keep: Option<u32>,
    /// Also send alerts by syslog (RFC 5424): udp://host:514, tcp://host:601 or tls://host:6514.
    #[arg(long, value_name = "URL")]
    pub syslog: Option<String>,
    /// Syslog message body: the alert JSON line unchanged (default), or ArcSight CEF.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub syslog_format: Option<crate::sink::syslog::SyslogFormat>,
    /// Syslog facility: local0 … local7 (default local0), user, daemon, auth, authpriv, audit.
    #[arg(long, value_name = "NAME")]
    pub syslog_facility: Option<String>,
    /// tls:// only: PEM CA bundle that signed the receiver's certificate (default: system roots).
    #[arg(long, value_name = "FILE")]
    pub syslog_ca: Option<PathBuf>,
    /// tls:// only: PEM client certificate, for receivers that require mutual TLS.
    #[arg(long, value_name = "FILE", requires = "syslog_key")]
    pub syslog_cert: Option<PathBuf>,
    /// tls:// only: PEM private key of --syslog-cert.
    #[arg(long, value_name = "FILE", requires = "syslog_cert")]
    pub syslog_key: Option<PathBuf>,
    /// tls:// only: name the receiver's certificate must carry (default: the URL's host).
    #[arg(long, value_name = "NAME")]
    pub syslog_server_name: Option<String>,
    /// tls:// only: DANGEROUS: accept any certificate and name, so anyone on the path can read
    /// and forge alerts. For a lab receiver with a throw-away certificate only.
    #[arg(long)]
    pub syslog_tls_insecure_skip_verify: bool,
    /// Directory for each network output's disk spool (alerts not yet delivered survive outages
    /// and restarts). Without it, undeliverable alerts are dropped once the memory queue is full.
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Cap on each output's spool in MiB (default 1024); beyond it the newest alerts are dropped.
    #[arg(long, value_name = "N")]
    pub spool_max_mb: Option<u64>,
    /// On exit, seconds outputs may keep delivering before the rest is spooled (default 10).
    #[arg(long, value_name = "SECS")]
    pub drain_timeout_secs: Option<u64>,
    /// HTTP collector outputs (Splunk HEC, Elasticsearch).
    #[command(flatten)]
    pub http: crate::sink::http::HttpArgs,
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
    /// Lowest confidence that alerts (default medium; config `judge.min_confidence`).
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub min_confidence: Option<crate::pii::Confidence>,
    /// Known-values file made by `nigehban hash-list`, repeatable (config `judge.known_values`).
    #[arg(long = "known-values", value_name = "FILE")]
    pub known_values: Vec<PathBuf>,
    /// Egress bytes of a TCP flow inspected before the rest is bypassed (default: no limit;
    /// config `flow.stream_depth`).
    #[arg(long, value_name = "BYTES")]
    pub stream_depth: Option<u64>,
    /// After opening the capture handle, metrics listener and outputs as root, switch to this
    /// unprivileged user before reading any packet (config `capture.user`).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Serve /metrics over HTTPS with this PEM certificate chain (needs --metrics-tls-key).
    #[arg(long, value_name = "FILE", requires = "metrics_tls_key")]
    pub metrics_tls_cert: Option<PathBuf>,
    /// PEM private key of --metrics-tls-cert.
    #[arg(long, value_name = "FILE", requires = "metrics_tls_cert")]
    pub metrics_tls_key: Option<PathBuf>,
    /// File holding a bearer token /metrics requires (`Authorization: Bearer TOKEN`); others get 401.
    #[arg(long, value_name = "FILE")]
    pub metrics_bearer_token_file: Option<PathBuf>,
    /// Which copy of overlapping TCP bytes that differ is kept: `first` (default) or `last`
    /// (config `reassembly.overlap_policy`). Conflicts raise an evasion alert either way.
    #[arg(long, value_name = "POLICY")]
    pub overlap_policy: Option<crate::reassembly::OverlapPolicy>,
    /// Verify IPv4/TCP/UDP checksums and drop packets that fail, as the receiver does: `on`,
    /// `off`, or `auto` (default: verify unless most packets fail, i.e. checksum offload;
    /// config `capture.checksum_validation`).
    #[arg(long, value_name = "MODE")]
    pub checksum_validation: Option<crate::decode::ChecksumMode>,
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
