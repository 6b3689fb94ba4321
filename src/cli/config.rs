//! The TOML config file and the validated settings object.

use super::{CommonArgs, LogFormat};
use crate::alert::AlertPolicy;
use crate::decode::DefragConfig;
use crate::flow::FlowTableConfig;
use crate::reassembly::ReassemblyConfig;
use crate::sink::file::Rotation;
use crate::sink::http::HttpOutputConfig;
use crate::sink::syslog::{Facility, SyslogConfig, SyslogFormat};
use crate::sink::DeliverySettings;
use anyhow::{bail, Context};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// The config file. Every key is optional; see `deploy/nigehban.toml` for each one documented.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    rules: Option<PathBuf>,
    home_net: Option<Vec<String>>,
    alerts: Option<String>,
    pii_key_file: Option<PathBuf>,
    workers: Option<usize>,
    metrics_listen: Option<String>,
    log_format: Option<LogFormat>,
    observer_name: Option<String>,
    #[serde(default)]
    capture: CaptureSection,
    #[serde(default)]
    pipeline: PipelineSection,
    #[serde(default)]
    flow: FlowSection,
    #[serde(default)]
    reassembly: ReassemblySection,
    #[serde(default)]
    defrag: DefragSection,
    #[serde(default)]
    alert: AlertSection,
    #[serde(default)]
    l7: L7Section,
    #[serde(default)]
    judge: JudgeSection,
    #[serde(default)]
    allow: AllowSection,
    #[serde(default)]
    output: OutputSection,
    metrics_tls_cert: Option<PathBuf>,
    metrics_tls_key: Option<PathBuf>,
    metrics_bearer_token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputSection {
    alerts_max_mb: Option<u64>,
    alerts_keep: Option<u32>,
    spool_dir: Option<PathBuf>,
    spool_max_mb: Option<u64>,
    queue_alerts: Option<usize>,
    drain_timeout_secs: Option<u64>,
    syslog: Option<SyslogSection>,
    #[serde(default)]
    http: Vec<HttpOutputConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyslogSection {
    url: Option<String>,
    format: Option<SyslogFormat>,
    facility: Option<String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    server_name: Option<String>,
    tls_insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureSection {
    interface: Option<String>,
    bpf: Option<String>,
    buffer_mb: Option<u32>,
    user: Option<String>,
    backend: Option<String>,
    threads: Option<usize>,
    checksum_validation: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineSection {
    batch_packets: Option<usize>,
    queue_batches: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowSection {
    tcp_idle_timeout_secs: Option<u64>,
    udp_idle_timeout_secs: Option<u64>,
    lifetime_secs: Option<u64>,
    memcap_mb: Option<usize>,
    stream_depth: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReassemblySection {
    max_ooo_bytes_per_stream: Option<usize>,
    max_ooo_segments_per_stream: Option<usize>,
    gap_timeout_secs: Option<u64>,
    memcap_mb: Option<usize>,
    overlap_policy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefragSection {
    memcap_mb: Option<usize>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct L7Section {
    decode: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertSection {
    max_matches_per_alert: Option<usize>,
    batch_interval_secs: Option<u64>,
    max_distinct_per_direction: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JudgeSection {
    min_confidence: Option<crate::pii::Confidence>,
    known_values: Option<Vec<PathBuf>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowSection {
    destinations: Option<Vec<String>>,
    http_hosts: Option<Vec<String>>,
    test_values: Option<Vec<String>>,
    builtin_test_cards: Option<bool>,
}

/// `[judge]`, `[allow]`, `--min-confidence` and `--known-values` → judgement settings. Known-value
/// paths from the file are relative to it; flags replace the file's list.
fn judge_settings(
    common: &CommonArgs,
    file: &FileConfig,
    rel: &dyn Fn(PathBuf) -> PathBuf,
) -> anyhow::Result<crate::judge::JudgeSettings> {
    let defaults = crate::judge::JudgeSettings::default();
    let known_values = if !common.known_values.is_empty() {
        common.known_values.clone()
    } else {
        file.judge.known_values.iter().flatten().cloned().map(rel).collect()
    };
    let mut allow_destinations = Vec::new();
    for (i, c) in file.allow.destinations.iter().flatten().enumerate() {
        let c = c.trim();
        let net = c
            .parse::<IpNet>()
            .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
            .map_err(|e| {
                anyhow::anyhow!("config allow.destinations[{i}] '{c}': {e} (expected a CIDR such as 203.0.113.0/24)")
            })?;
        allow_destinations.push(net);
    }
    let mut allow_http_hosts = Vec::new();
    for (i, h) in file.allow.http_hosts.iter().flatten().enumerate() {
        let p =
            crate::judge::HostPattern::parse(h).map_err(|e| anyhow::anyhow!("config allow.http_hosts[{i}]: {e}"))?;
        allow_http_hosts.push(p);
    }
    Ok(crate::judge::JudgeSettings {
        min_confidence: common
            .min_confidence
            .or(file.judge.min_confidence)
            .unwrap_or(defaults.min_confidence),
        known_values,
        allow_destinations,
        allow_http_hosts,
        test_values: crate::judge::TestValues(file.allow.test_values.clone().unwrap_or_default()),
        builtin_test_cards: file.allow.builtin_test_cards.unwrap_or(defaults.builtin_test_cards),
    })
}

/// Where packets come from.
#[derive(Debug, Clone)]
pub enum InputMode {
    /// Live capture.
    Live {
        /// Interface name.
        interface: String,
        /// Kernel BPF filter.
        bpf: Option<String>,
        /// Kernel buffer in MiB (af-packet: ring per capture thread).
        buffer_mb: u32,
        /// How packets are read.
        backend: crate::capture::CaptureBackend,
        /// Capture threads (1 unless `backend` is af-packet).
        capture_threads: usize,
    },
    /// Offline files, in order.
    Files(Vec<PathBuf>),
}

/// Where alerts are written as JSON lines locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertOutput {
    /// Standard output.
    Stdout,
    /// Appended to a file.
    File(PathBuf),
    /// No local JSON lines (alerts go only to syslog or HTTP outputs).
    Off,
}

/// Every alert output beyond the local JSON lines, and how delivery behaves.
#[derive(Debug, Clone)]
pub struct OutputSettings {
    /// Size-based rotation of the `alerts` file; `None` = never.
    pub rotation: Option<Rotation>,
    /// Syslog output.
    pub syslog: Option<SyslogConfig>,
    /// HTTP collector outputs, each with the directory its relative paths resolve against.
    pub http: Vec<(HttpOutputConfig, PathBuf)>,
    /// Queues, spool and shutdown drain.
    pub delivery: DeliverySettings,
}

/// The inside network: bytes from inside to outside are egress.
#[derive(Debug, Clone)]
pub struct HomeNet {
    nets: Vec<IpNet>,
    /// `nets` as (network, mask) pairs per family: the test runs twice per packet on the
    /// capture thread and twice in a worker, and `IpNet::contains` costs ten times as much.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl HomeNet {
    /// Parses CIDRs; an error names the bad one.
    pub fn parse(cidrs: &[String]) -> anyhow::Result<HomeNet> {
        let mut nets = Vec::with_capacity(cidrs.len());
        for c in cidrs {
            let c = c.trim();
            let net = c
                .parse::<IpNet>()
                .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                .map_err(|e| {
                    anyhow::anyhow!("bad --home-net '{c}': {e} (expected a CIDR such as 10.0.0.0/8 or fc00::/7)")
                })?;
            nets.push(net);
        }
        if nets.is_empty() {
            bail!("--home-net is empty: at least one inside network is needed");
        }
        let v4 = nets
            .iter()
            .filter_map(|n| match n {
                IpNet::V4(n) => Some((u32::from(n.network()), u32::from(n.netmask()))),
                IpNet::V6(_) => None,
            })
            .collect();
        let v6 = nets
            .iter()
            .filter_map(|n| match n {
                IpNet::V6(n) => Some((u128::from(n.network()), u128::from(n.netmask()))),
                IpNet::V4(_) => None,
            })
            .collect();
        Ok(HomeNet { nets, v4, v6 })
    }

    /// The defaults: RFC 1918, RFC 6598 shared space, IPv6 ULA.
    pub fn default_nets() -> Vec<String> {
        [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "fc00::/7",
        ]
        .map(String::from)
        .to_vec()
    }

    /// True if `ip` is inside.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(*a);
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            IpAddr::V6(a) => {
                let a = u128::from(*a);
                self.v6.iter().any(|&(net, mask)| a & mask == net)
            }
        }
    }

    /// The networks.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }
}

/// Batching between the capture thread and the workers.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Packets per batch (default 64).
    pub batch_packets: usize,
    /// Batches queued per worker before live capture drops (default 64). Reading files, a
    /// dispatcher holds up to `workers * (queue_batches + 2)` batches in all.
    pub queue_batches: usize,
}

/// Validated settings for `capture` and `read`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Packet source.
    pub input: InputMode,
    /// Rule directory.
    pub rules_dir: PathBuf,
    /// Inside networks.
    pub home_net: HomeNet,
    /// Alert destination.
    pub alerts: AlertOutput,
    /// Key file for the keyed hash; `None` = random key per run.
    pub pii_key_file: Option<PathBuf>,
    /// Worker threads.
    pub workers: usize,
    /// Prometheus endpoint; `None` = off.
    pub metrics_listen: Option<SocketAddr>,
    /// Log format.
    pub log_format: LogFormat,
    /// `observer.name` in alerts.
    pub observer_name: String,
    /// Capture → worker batching.
    pub pipeline: PipelineConfig,
    /// Flow table limits, per worker (the configured memcap divided by workers).
    pub flow: FlowTableConfig,
    /// Reassembly limits.
    pub reassembly: ReassemblyConfig,
    /// Out-of-order bytes held per worker (the configured memcap divided by workers).
    pub reassembly_memcap: usize,
    /// IPv4 defragmentation limits (capture thread).
    pub defrag: DefragConfig,
    /// Checksum verification in the capture thread's decoder.
    pub checksum_validation: crate::decode::ChecksumMode,
    /// Alert batching.
    pub alert: AlertPolicy,
    /// Decode application protocols (HTTP, SMTP/MIME, DNS) before matching; `false` scans every
    /// stream's raw bytes (for measuring what decoding costs; detection suffers).
    pub decode_l7: bool,
    /// Judgement: minimum confidence, known values, allow-lists.
    pub judge: crate::judge::JudgeSettings,
    /// Syslog and HTTP outputs, rotation, spool.
    pub outputs: OutputSettings,
    /// Unprivileged user to switch to once the capture handle and outputs are open.
    pub user: Option<String>,
    /// TLS and bearer token for the metrics endpoint.
    pub metrics_security: crate::metrics::EndpointSecurity,
}

/// Reads the config file (if any) and merges flags over it.
pub fn settings(input: Option<InputArgs>, common: &CommonArgs) -> anyhow::Result<Settings> {
    let (file, base) = match &common.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read config {}", p.display()))?;
            let cfg: FileConfig = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("config {}: {}", p.display(), one_line(&e.to_string())))?;
            (cfg, p.parent().map(Path::to_path_buf).unwrap_or_default())
        }
        None => (FileConfig::default(), PathBuf::new()),
    };
    let rel = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };

    let input = match input {
        Some(InputArgs::Files(files)) => {
            // `-` is standard input, as for tcpdump -r; read through its device, once.
            let files: Vec<PathBuf> = files
                .into_iter()
                .map(|f| {
                    if f.as_os_str() == "-" {
                        PathBuf::from("/dev/stdin")
                    } else {
                        f
                    }
                })
                .collect();
            for f in &files {
                std::fs::File::open(f).with_context(|| format!("cannot open {}", f.display()))?;
            }
            InputMode::Files(files)
        }
        Some(InputArgs::Live {
            interface,
            bpf,
            buffer_mb,
            backend,
            threads,
        }) => {
            let interface = interface
                .or(file.capture.interface.clone())
                .context("no interface: give --interface IFACE (or capture.interface in the config)")?;
            let buffer_mb = buffer_mb.or(file.capture.buffer_mb).unwrap_or(64);
            if buffer_mb == 0 {
                bail!("--buffer-mb must be at least 1");
            }
            let (backend, capture_threads) = capture_backend(backend, threads, &file.capture)?;
            InputMode::Live {
                interface,
                bpf: bpf.or(file.capture.bpf.clone()),
                buffer_mb,
                backend,
                capture_threads,
            }
        }
        None => InputMode::Files(Vec::new()),
    };

    let rules_dir = match (&common.rules, &file.rules) {
        (Some(r), _) => r.clone(),
        (None, Some(r)) => rel(r.clone()),
        (None, None) => default_rules_dir(),
    };
    let home_net = if !common.home_net.is_empty() {
        HomeNet::parse(&common.home_net)?
    } else if let Some(h) = &file.home_net {
        HomeNet::parse(h).context("config home_net")?
    } else {
        HomeNet::parse(&HomeNet::default_nets())?
    };
    let alerts = match common.alerts.clone().or(file.alerts.clone()).as_deref() {
        None | Some("-") => AlertOutput::Stdout,
        Some("off") => AlertOutput::Off,
        Some(p) if common.alerts.is_some() => AlertOutput::File(PathBuf::from(p)),
        Some(p) => AlertOutput::File(rel(PathBuf::from(p))),
    };
    let pii_key_file = common.pii_key_file.clone().or(file.pii_key_file.clone().map(rel));
    let workers = match common.workers.or(file.workers) {
        Some(0) => bail!("--workers must be at least 1"),
        Some(n) if n > 256 => bail!("--workers {n} is more than 256"),
        Some(n) => n,
        None => default_workers(),
    };
    let metrics_listen = match common.metrics_listen.clone().or(file.metrics_listen.clone()).as_deref() {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9750))),
        Some("off") => None,
        Some(a) => Some(a.parse().map_err(|_| {
            anyhow::anyhow!("bad --metrics-listen '{a}': expected ADDR:PORT such as 127.0.0.1:9750, or off")
        })?),
    };
    let log_format = common.log_format.or(file.log_format).unwrap_or(LogFormat::Text);
    let observer_name = common
        .observer_name
        .clone()
        .or(file.observer_name.clone())
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());

    let pipeline = PipelineConfig {
        batch_packets: positive(file.pipeline.batch_packets, 64, "pipeline.batch_packets")?,
        queue_batches: positive(file.pipeline.queue_batches, 64, "pipeline.queue_batches")?,
    };
    let secs = |v: Option<u64>, d: u64, name: &str| -> anyhow::Result<Duration> {
        match v.unwrap_or(d) {
            0 => bail!("config {name} must be at least 1 second"),
            s => Ok(Duration::from_secs(s)),
        }
    };
    let flow = FlowTableConfig {
        tcp_idle_timeout: secs(file.flow.tcp_idle_timeout_secs, 600, "flow.tcp_idle_timeout_secs")?,
        udp_idle_timeout: secs(file.flow.udp_idle_timeout_secs, 60, "flow.udp_idle_timeout_secs")?,
        lifetime: secs(file.flow.lifetime_secs, 3600, "flow.lifetime_secs")?,
        memcap: positive(file.flow.memcap_mb, 1024, "flow.memcap_mb")? * MIB / workers,
        stream_depth: match common.stream_depth.or(file.flow.stream_depth) {
            Some(0) => {
                bail!("--stream-depth (config flow.stream_depth) must be at least 1 byte; leave it out for no limit")
            }
            d => d,
        },
    };
    let reassembly = ReassemblyConfig {
        max_ooo_bytes_per_stream: positive(
            file.reassembly.max_ooo_bytes_per_stream,
            1024 * 1024,
            "reassembly.max_ooo_bytes_per_stream",
        )?,
        max_ooo_segments_per_stream: positive(
            file.reassembly.max_ooo_segments_per_stream,
            256,
            "reassembly.max_ooo_segments_per_stream",
        )?,
        gap_timeout: secs(file.reassembly.gap_timeout_secs, 10, "reassembly.gap_timeout_secs")?,
        overlap_policy: match (common.overlap_policy, &file.reassembly.overlap_policy) {
            (Some(p), _) => p,
            (None, Some(p)) => p
                .parse()
                .map_err(|e| anyhow::anyhow!("config reassembly.overlap_policy: {e}"))?,
            (None, None) => Default::default(),
        },
    };
    let reassembly_memcap = positive(file.reassembly.memcap_mb, 256, "reassembly.memcap_mb")? * MIB / workers;
    let defrag = DefragConfig {
        memcap: positive(file.defrag.memcap_mb, 32, "defrag.memcap_mb")? * MIB,
        timeout: secs(file.defrag.timeout_secs, 30, "defrag.timeout_secs")?,
    };
    let alert = AlertPolicy {
        max_matches_per_alert: positive(file.alert.max_matches_per_alert, 100, "alert.max_matches_per_alert")?,
        batch_interval: secs(file.alert.batch_interval_secs, 5, "alert.batch_interval_secs")?,
        max_distinct_per_direction: positive(
            file.alert.max_distinct_per_direction,
            100_000,
            "alert.max_distinct_per_direction",
        )?,
    };
    let judge = judge_settings(common, &file, &rel)?;
    let outputs = output_settings(common, &file.output, &base, &observer_name)?;
    let user = common.user.clone().or(file.capture.user.clone());
    if let Some(u) = &user {
        if u.is_empty() || u.contains(['\0', ':', '/']) || u.chars().any(char::is_whitespace) {
            bail!("bad --user {u:?}: expected a login name such as nigehban");
        }
    }
    let tls_cert = common
        .metrics_tls_cert
        .clone()
        .or(file.metrics_tls_cert.clone().map(rel));
    let tls_key = common.metrics_tls_key.clone().or(file.metrics_tls_key.clone().map(rel));
    let metrics_security = crate::metrics::EndpointSecurity {
        tls: match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                bail!("metrics TLS certificate and key go together: give both --metrics-tls-cert and --metrics-tls-key")
            }
        },
        bearer_token_file: common
            .metrics_bearer_token_file
            .clone()
            .or(file.metrics_bearer_token_file.clone().map(rel)),
    };
    if metrics_listen.is_none() && (metrics_security.tls.is_some() || metrics_security.bearer_token_file.is_some()) {
        bail!("--metrics-tls-* and --metrics-bearer-token-file need a metrics endpoint, but --metrics-listen is off");
    }
    if alerts == AlertOutput::Off && outputs.syslog.is_none() && outputs.http.is_empty() {
        bail!("--alerts off leaves no alert output: add --syslog or an HTTP output, or write alerts to a file");
    }
    Ok(Settings {
        input,
        rules_dir,
        home_net,
        alerts,
        pii_key_file,
        workers,
        metrics_listen,
        log_format,
        observer_name,
        pipeline,
        flow,
        reassembly,
        reassembly_memcap,
        defrag,
        checksum_validation: match (common.checksum_validation, &file.capture.checksum_validation) {
            (Some(m), _) => m,
            (None, Some(m)) => m
                .parse()
                .map_err(|e| anyhow::anyhow!("config capture.checksum_validation: {e}"))?,
            (None, None) => Default::default(),
        },
        alert,
        decode_l7: file.l7.decode.unwrap_or(true),
        judge,
        outputs,
        user,
        metrics_security,
    })
}

/// Merges the output flags over `[output]` and validates them.
fn output_settings(
    common: &CommonArgs,
    file: &OutputSection,
    base: &Path,
    observer_name: &str,
) -> anyhow::Result<OutputSettings> {
    let rel = |p: &PathBuf| if p.is_relative() { base.join(p) } else { p.clone() };
    let rotation = match common.alerts_max_mb.or(file.alerts_max_mb).unwrap_or(0) {
        0 => None,
        mb => Some(Rotation {
            max_bytes: mb * MIB as u64,
            keep: match common.alerts_keep.or(file.alerts_keep).unwrap_or(5) {
                0 => bail!("--alerts-keep must be at least 1 (rotation renames the file to FILE.1)"),
                k => k,
            },
        }),
    };
    let fs = file.syslog.as_ref();
    let syslog_url = common.syslog.clone().or(fs.and_then(|s| s.url.clone()));
    let syslog = match syslog_url {
        None => {
            if common.syslog_ca.is_some() || common.syslog_cert.is_some() || common.syslog_format.is_some() {
                bail!("--syslog-* options need --syslog URL (or output.syslog.url in the config)");
            }
            None
        }
        Some(url) => {
            let mut c = SyslogConfig::parse_url(&url, observer_name).map_err(|e| anyhow::anyhow!(e))?;
            c.format = common.syslog_format.or(fs.and_then(|s| s.format)).unwrap_or_default();
            if let Some(f) = common.syslog_facility.clone().or(fs.and_then(|s| s.facility.clone())) {
                c.facility = Facility::parse(&f).ok_or_else(|| {
                    anyhow::anyhow!("bad syslog facility '{f}': expected local0 … local7, user, daemon, auth, authpriv, audit or 0–23")
                })?;
            }
            c.ca = common.syslog_ca.clone().or(fs.and_then(|s| s.ca.as_ref().map(rel)));
            let cert = common.syslog_cert.clone().or(fs.and_then(|s| s.cert.as_ref().map(rel)));
            let key = common.syslog_key.clone().or(fs.and_then(|s| s.key.as_ref().map(rel)));
            c.client_cert = match (cert, key) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => bail!("syslog client certificate and key go together: give both --syslog-cert and --syslog-key"),
            };
            c.server_name = common
                .syslog_server_name
                .clone()
                .or(fs.and_then(|s| s.server_name.clone()));
            c.insecure_skip_verify =
                common.syslog_tls_insecure_skip_verify || fs.and_then(|s| s.tls_insecure_skip_verify).unwrap_or(false);
            Some(c)
        }
    };
    let mut http: Vec<(HttpOutputConfig, PathBuf)> =
        file.http.iter().map(|h| (h.clone(), base.to_path_buf())).collect();
    http.extend(common.http.configs()?.into_iter().map(|h| (h, PathBuf::new())));
    let drain = common.drain_timeout_secs.or(file.drain_timeout_secs).unwrap_or(10);
    let spool_max_mb = common.spool_max_mb.or(file.spool_max_mb).unwrap_or(1024);
    if spool_max_mb == 0 {
        bail!("--spool-max-mb must be at least 1");
    }
    let delivery = DeliverySettings {
        spool_dir: common.spool_dir.clone().or(file.spool_dir.as_ref().map(rel)),
        spool_max_bytes: spool_max_mb * MIB as u64,
        queue_alerts: positive(file.queue_alerts, 10_000, "output.queue_alerts")?,
        drain_timeout: Duration::from_secs(drain),
    };
    Ok(OutputSettings {
        rotation,
        syslog,
        http,
        delivery,
    })
}

/// The packet source requested on the command line.
#[derive(Debug)]
pub enum InputArgs {
    /// `read FILE...`
    Files(Vec<PathBuf>),
    /// `capture ...`
    Live {
        /// `--interface`
        interface: Option<String>,
        /// `--bpf`
        bpf: Option<String>,
        /// `--buffer-mb`
        buffer_mb: Option<u32>,
        /// `--capture-backend`
        backend: Option<String>,
        /// `--capture-threads`
        threads: Option<usize>,
    },
}

/// Most capture threads: more than cores is never useful, and the label stays bounded.
const MAX_CAPTURE_THREADS: usize = 64;

/// `--capture-backend` / `capture.backend` and `--capture-threads` / `capture.threads`, checked
/// together: several threads need af-packet.
fn capture_backend(
    flag: Option<String>,
    threads: Option<usize>,
    file: &CaptureSection,
) -> anyhow::Result<(crate::capture::CaptureBackend, usize)> {
    use crate::capture::CaptureBackend;
    let backend = match flag.or(file.backend.clone()) {
        None => CaptureBackend::default(),
        Some(name) => CaptureBackend::parse(&name).ok_or_else(|| {
            anyhow::anyhow!("bad --capture-backend '{name}': expected pcap or af-packet (Linux AF_PACKET ring)")
        })?,
    };
    let threads = match threads.or(file.threads).unwrap_or(1) {
        0 => bail!("--capture-threads must be at least 1"),
        n if n > MAX_CAPTURE_THREADS => bail!("--capture-threads {n} is more than {MAX_CAPTURE_THREADS}"),
        n if n > 1 && backend == CaptureBackend::Pcap => {
            bail!("--capture-threads {n} needs --capture-backend af-packet: libpcap reads an interface with one thread")
        }
        n => n,
    };
    Ok((backend, threads))
}

fn positive(v: Option<usize>, default: usize, name: &str) -> anyhow::Result<usize> {
    match v.unwrap_or(default) {
        0 => bail!("config {name} must be at least 1"),
        n => Ok(n),
    }
}

/// Deserializes a config text exactly as [`settings`] does, for `check-config` to locate
/// syntax errors and unknown keys by their span.
pub(super) fn parse_config_text(text: &str) -> Result<(), toml::de::Error> {
    toml::from_str::<FileConfig>(text).map(|_| ())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Workers default to one per core, leaving one core for the capture thread.
fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .saturating_sub(1)
        .max(1)
}

/// The bundled rules: `./rules`, then `<exe>/../share/nigehban/rules`, then the source tree's.
pub fn default_rules_dir() -> PathBuf {
    let mut candidates = vec![PathBuf::from("rules")];
    if let Ok(exe) = std::env::current_exe() {
        if let Some(prefix) = exe.parent().and_then(Path::parent) {
            candidates.push(prefix.join("share/nigehban/rules"));
        }
    }
    candidates.push(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")));
    candidates
        .iter()
        .find(|p| p.is_dir())
        .cloned()
        .unwrap_or_else(|| candidates.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_net_defaults_and_membership() {
        let h = HomeNet::parse(&HomeNet::default_nets()).unwrap();
        for inside in ["10.1.2.3", "172.31.0.1", "192.168.1.1", "100.64.0.9", "fd00::1"] {
            assert!(h.contains(&inside.parse().unwrap()), "{inside}");
        }
        for outside in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "100.128.0.1"] {
            assert!(!h.contains(&outside.parse().unwrap()), "{outside}");
        }
    }

    proptest::proptest! {
        /// The mask test agrees with `IpNet::contains` for both families, any prefix length
        /// and addresses near the edges of each network.
        #[test]
        fn membership_agrees_with_ipnet(
            nets in proptest::collection::vec((proptest::prelude::any::<u128>(), 0u8..=128, proptest::prelude::any::<bool>()), 1..6),
            probes in proptest::collection::vec((proptest::prelude::any::<u128>(), proptest::prelude::any::<bool>(), 0usize..6), 1..32),
        ) {
            let cidrs: Vec<String> = nets
                .iter()
                .map(|&(a, len, v4)| if v4 {
                    format!("{}/{}", std::net::Ipv4Addr::from(a as u32), len % 33)
                } else {
                    format!("{}/{}", std::net::Ipv6Addr::from(a), len)
                })
                .collect();
            let h = HomeNet::parse(&cidrs).unwrap();
            for &(a, v4, near) in &probes {
                // Half the probes share a network's prefix, so "inside" is exercised too.
                let base = nets[near % nets.len()].0;
                let a = if near % 2 == 0 { base ^ (a >> 100) } else { a };
                let ip: IpAddr = if v4 {
                    std::net::Ipv4Addr::from(a as u32).into()
                } else {
                    std::net::Ipv6Addr::from(a).into()
                };
                proptest::prop_assert_eq!(h.contains(&ip), h.nets().iter().any(|n| n.contains(&ip)), "{} in {:?}", ip, cidrs);
            }
        }
    }

    #[test]
    fn bad_cidr_is_named() {
        let e = HomeNet::parse(&["10.0.0.0/33".to_string()]).unwrap_err().to_string();
        assert!(e.contains("10.0.0.0/33"), "{e}");
        assert!(
            HomeNet::parse(&["192.0.2.7".to_string()]).is_ok(),
            "a bare address is a /32"
        );
    }

    #[test]
    fn config_file_merges_under_flags() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("n.toml");
        std::fs::write(
            &cfg,
            "workers = 3\nalerts = \"out.json\"\nhome_net = [\"10.9.0.0/16\"]\n[flow]\nmemcap_mb = 30\n",
        )
        .unwrap();
        let common = CommonArgs {
            config: Some(cfg.clone()),
            workers: Some(2),
            ..CommonArgs::default()
        };
        let s = settings(None, &common).unwrap();
        assert_eq!(s.workers, 2);
        assert_eq!(s.alerts, AlertOutput::File(dir.path().join("out.json")));
        assert!(s.home_net.contains(&"10.9.1.1".parse().unwrap()));
        assert!(!s.home_net.contains(&"10.8.1.1".parse().unwrap()));
        assert_eq!(s.flow.memcap, 15 * MIB);
    }

    #[test]
    fn unknown_config_key_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("n.toml");
        std::fs::write(&cfg, "[flow]\nmemcap_gb = 1\n").unwrap();
        let common = CommonArgs {
            config: Some(cfg),
            ..CommonArgs::default()
        };
        let e = format!("{:#}", settings(None, &common).unwrap_err());
        assert!(e.contains("memcap_gb") && e.contains("n.toml"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn metrics_listen_off_and_bad() {
        let off = CommonArgs {
            metrics_listen: Some("off".into()),
            ..CommonArgs::default()
        };
        assert!(settings(None, &off).unwrap().metrics_listen.is_none());
        let bad = CommonArgs {
            metrics_listen: Some("nowhere".into()),
            ..CommonArgs::default()
        };
        assert!(format!("{:#}", settings(None, &bad).unwrap_err()).contains("nowhere"));
    }
}

#[cfg(test)]
mod judge_config_tests {
    use super::*;
    use crate::pii::Confidence;

    fn with(text: &str, common: CommonArgs) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("n.toml");
        std::fs::write(&cfg, text).unwrap();
        settings(
            None,
            &CommonArgs {
                config: Some(cfg),
                ..common
            },
        )
    }

    #[test]
    fn defaults() {
        let s = settings(None, &CommonArgs::default()).unwrap();
        assert_eq!(s.judge.min_confidence, Confidence::Medium);
        assert!(s.judge.known_values.is_empty() && s.judge.allow_destinations.is_empty());
        assert!(s.judge.builtin_test_cards);
    }

    #[test]
    fn file_keys_and_flags() {
        let text = "[judge]\nmin_confidence = \"high\"\nknown_values = [\"a.nhl\", \"/abs/b.nhl\"]\n\
                    [allow]\ndestinations = [\"203.0.113.0/24\", \"198.51.100.7\"]\n\
                    http_hosts = [\"*.bank.example\"]\ntest_values = [\"35202-1234567-1\"]\nbuiltin_test_cards = false\n";
        let s = with(text, CommonArgs::default()).unwrap();
        assert_eq!(s.judge.min_confidence, Confidence::High);
        assert_eq!(s.judge.known_values.len(), 2);
        assert!(s.judge.known_values[0].ends_with("a.nhl") && s.judge.known_values[0].is_absolute());
        assert_eq!(s.judge.known_values[1], PathBuf::from("/abs/b.nhl"));
        assert_eq!(s.judge.allow_destinations.len(), 2);
        assert_eq!(s.judge.allow_http_hosts.len(), 1);
        assert_eq!(s.judge.test_values.0.len(), 1);
        assert!(!s.judge.builtin_test_cards);
        assert!(!format!("{s:?}").contains("35202-1234567-1"), "Debug shows test values");
        let flags = CommonArgs {
            min_confidence: Some(Confidence::Low),
            known_values: vec![PathBuf::from("flag.nhl")],
            ..CommonArgs::default()
        };
        let s = with(text, flags).unwrap();
        assert_eq!(s.judge.min_confidence, Confidence::Low);
        assert_eq!(s.judge.known_values, vec![PathBuf::from("flag.nhl")]);
    }

    #[test]
    fn bad_entries_are_named() {
        let e = format!(
            "{:#}",
            with(
                "[allow]\ndestinations = [\"10.0.0.0/8\", \"nowhere\"]\n",
                CommonArgs::default()
            )
            .unwrap_err()
        );
        assert!(e.contains("allow.destinations[1]") && e.contains("nowhere"), "{e}");
        let e = format!(
            "{:#}",
            with("[allow]\nhttp_hosts = [\"https://x.example\"]\n", CommonArgs::default()).unwrap_err()
        );
        assert!(e.contains("allow.http_hosts[0]"), "{e}");
        let e = format!(
            "{:#}",
            with("[judge]\nmin_confidence = \"sure\"\n", CommonArgs::default()).unwrap_err()
        );
        assert!(e.contains("sure") && !e.contains('\n'), "{e}");
    }
}

#[cfg(test)]
mod output_tests {
    use super::*;
    use crate::sink::syslog::SyslogProto;

    fn with_config(text: &str, common: CommonArgs) -> (tempfile::TempDir, anyhow::Result<Settings>) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("n.toml");
        std::fs::write(&cfg, text).unwrap();
        let common = CommonArgs {
            config: Some(cfg),
            ..common
        };
        let s = settings(None, &common);
        (dir, s)
    }

    #[test]
    fn output_section_and_flags_merge() {
        let text = "[output]\nspool_dir = \"spool\"\nspool_max_mb = 5\nalerts_max_mb = 2\n\
                    [output.syslog]\nurl = \"tls://siem.example:6514\"\nformat = \"cef\"\nca = \"ca.pem\"\nfacility = \"audit\"\n\
                    [[output.http]]\nkind = \"splunk_hec\"\nurl = \"https://splunk.example:8088\"\ntoken_file = \"t\"\n";
        let (dir, s) = with_config(
            text,
            CommonArgs {
                syslog_server_name: Some("siem.internal".into()),
                drain_timeout_secs: Some(3),
                ..CommonArgs::default()
            },
        );
        let s = s.unwrap();
        let o = &s.outputs;
        let sys = o.syslog.as_ref().unwrap();
        assert_eq!(
            (sys.proto, sys.host.as_str(), sys.port),
            (SyslogProto::Tls, "siem.example", 6514)
        );
        assert_eq!(sys.format, SyslogFormat::Cef);
        assert_eq!(sys.facility, Facility(13));
        assert_eq!(
            sys.ca.as_deref(),
            Some(dir.path().join("ca.pem").as_path()),
            "relative to the config"
        );
        assert_eq!(
            sys.server_name.as_deref(),
            Some("siem.internal"),
            "flag applies over the file"
        );
        assert_eq!(
            o.delivery.spool_dir.as_deref(),
            Some(dir.path().join("spool").as_path())
        );
        assert_eq!(o.delivery.spool_max_bytes, 5 * MIB as u64);
        assert_eq!(o.delivery.drain_timeout, Duration::from_secs(3));
        assert_eq!(
            o.rotation,
            Some(Rotation {
                max_bytes: 2 * MIB as u64,
                keep: 5
            })
        );
        assert_eq!(o.http.len(), 1);
        assert_eq!(o.http[0].1, dir.path());
    }

    #[test]
    fn bad_output_settings_are_one_line_errors_naming_the_value() {
        for (text, common, needle) in [
            (
                "",
                CommonArgs {
                    syslog: Some("http://x".into()),
                    ..CommonArgs::default()
                },
                "http://x",
            ),
            (
                "[output.syslog]\nurl = \"tcp://h:1\"\nfacility = \"local9\"\n",
                CommonArgs::default(),
                "local9",
            ),
            (
                "",
                CommonArgs {
                    syslog_ca: Some("x".into()),
                    ..CommonArgs::default()
                },
                "--syslog URL",
            ),
            (
                "",
                CommonArgs {
                    alerts: Some("off".into()),
                    ..CommonArgs::default()
                },
                "no alert output",
            ),
            (
                "[output]\nalerts_max_mb = 1\nalerts_keep = 0\n",
                CommonArgs::default(),
                "--alerts-keep",
            ),
            ("[output]\nspool_max_mb = 0\n", CommonArgs::default(), "--spool-max-mb"),
        ] {
            let (_d, s) = with_config(text, common);
            let e = format!("{:#}", s.unwrap_err());
            assert!(e.contains(needle) && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn alerts_off_with_syslog_is_fine() {
        let (_d, s) = with_config(
            "",
            CommonArgs {
                alerts: Some("off".into()),
                syslog: Some("udp://127.0.0.1:5514".into()),
                ..CommonArgs::default()
            },
        );
        let s = s.unwrap();
        assert_eq!(s.alerts, AlertOutput::Off);
        assert!(s.outputs.syslog.is_some());
    }
}

#[cfg(test)]
mod example_config {
    #[test]
    fn bundled_example_config_is_valid() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nigehban.toml");
        let common = super::CommonArgs {
            config: Some(p),
            ..super::CommonArgs::default()
        };
        super::settings(None, &common).unwrap();
    }
}
