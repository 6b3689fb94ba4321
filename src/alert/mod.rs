//! Alerts: the JSON document a SOC receives (Elastic Common Schema field names, nested objects),
//! and the per-flow-direction bookkeeping that reports every distinct leaked value exactly once,
//! in bounded batches.
//!
//! Policy, per flow direction and rule: the first value(s) found raise an alert at once (with
//! everything found in the same packet); later values are batched and raised when the batch holds
//! `max_matches_per_alert` values, when `batch_interval` of packet time has passed since the batch
//! started, or when the flow ends. A bulk upload of N values therefore yields about
//! `1 + N / max_matches_per_alert` alerts, never N.

mod leaks;

pub use leaks::{AddOutcome, AlertPolicy, DirLeaks, PendingBatch};

use crate::clock::Timestamp;
use crate::flow::{Endpoint, Proto};
use crate::l7::{Evidence, Location, Protocol};
use crate::pii::{Confidence, PiiKind};
use crate::rules::{Rule, Severity};
use serde::Serialize;

/// One value in an alert: never the clear value, only its mask and keyed hash.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PiiMatch {
    /// `cnic`, `card` or `iban`.
    #[serde(rename = "type")]
    pub kind: PiiKind,
    /// Redacted form, e.g. `35202-*******-1`.
    pub masked: String,
    /// Lowercase hex HMAC-SHA256 of the normalised value.
    pub hash: String,
    /// How sure the sensor is (see `judge`).
    pub confidence: Confidence,
    /// The value is on a loaded known-value list.
    pub known: bool,
    /// Where in the content it was found; absent when no longer known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Header name, form field or attachment file name of that place (digits redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The application message a batch of values travelled in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageContext {
    /// Application protocol of the flow direction.
    pub protocol: Option<Protocol>,
    /// Decoder evidence (method, host, path, envelope domains, DNS domain).
    pub evidence: Option<Evidence>,
}

/// The sensor's identity in alerts (ECS `observer`).
#[derive(Debug, Clone, Serialize)]
pub struct Observer {
    /// Sensor name (host name unless configured).
    pub name: String,
    /// Always `sensor`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `Nigehban`.
    pub product: &'static str,
    /// Crate version.
    pub version: &'static str,
}

impl Observer {
    /// An observer called `name`.
    pub fn new(name: String) -> Observer {
        Observer {
            name,
            kind: "sensor",
            product: "Nigehban",
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// The rule fields an alert carries.
#[derive(Debug, Clone, Copy)]
pub struct AlertRule<'a> {
    /// Rule id.
    pub id: &'a str,
    /// Rule name.
    pub name: &'a str,
    /// Kind of value the rule finds.
    pub pii: PiiKind,
    /// Severity.
    pub severity: Severity,
}

impl<'a> From<&'a Rule> for AlertRule<'a> {
    fn from(r: &'a Rule) -> Self {
        AlertRule {
            id: &r.id,
            name: &r.name,
            pii: r.pii,
            severity: r.severity,
        }
    }
}

/// Everything about the leaking flow direction an alert needs.
#[derive(Debug, Clone, Copy)]
pub struct FlowContext<'a> {
    /// Host sending the personal data.
    pub sender: Endpoint,
    /// Host receiving it.
    pub receiver: Endpoint,
    /// Transport.
    pub proto: Proto,
    /// Community ID v1 of the flow.
    pub community_id: &'a str,
}

#[derive(Serialize)]
struct AlertDoc<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    message: String,
    event: EventDoc,
    rule: RuleDoc<'a>,
    source: EndpointDoc,
    destination: EndpointDoc,
    network: NetworkDoc<'a>,
    observer: &'a Observer,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<HttpDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<UrlDoc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    smtp: Option<SmtpDoc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<DnsDoc<'a>>,
    pii: PiiDoc<'a>,
}

#[derive(Serialize)]
struct HttpDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<HttpRequestDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<HttpResponseDoc>,
}

#[derive(Serialize)]
struct HttpRequestDoc {
    method: String,
}

#[derive(Serialize)]
struct HttpResponseDoc {
    status_code: u16,
}

#[derive(Serialize)]
struct UrlDoc<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    domain: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    path: &'a str,
}

/// Not an ECS field set (ECS `email.*` holds addresses; we keep only domains).
#[derive(Serialize)]
struct SmtpDoc<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    mail_from_domain: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    rcpt_to_domains: &'a [String],
}

#[derive(Serialize)]
struct DnsDoc<'a> {
    question: DnsQuestionDoc<'a>,
}

#[derive(Serialize)]
struct DnsQuestionDoc<'a> {
    registered_domain: &'a str,
}

#[derive(Serialize)]
struct EventDoc {
    id: String,
    kind: &'static str,
    category: [&'static str; 1],
    #[serde(rename = "type")]
    kind_type: [&'static str; 1],
    severity: u8,
    created: String,
    dataset: &'static str,
    module: &'static str,
}

#[derive(Serialize)]
struct RuleDoc<'a> {
    id: &'a str,
    name: &'a str,
    category: &'static str,
    ruleset: &'static str,
}

#[derive(Serialize)]
struct EndpointDoc {
    ip: String,
    port: u16,
}

#[derive(Serialize)]
struct NetworkDoc<'a> {
    transport: &'static str,
    #[serde(rename = "type")]
    ip_version: &'static str,
    direction: &'static str,
    community_id: &'a str,
    protocol: &'static str,
}

impl EndpointDoc {
    fn of(e: &crate::flow::Endpoint) -> EndpointDoc {
        EndpointDoc {
            ip: e.ip.to_string(),
            port: e.port,
        }
    }
}

impl<'a> NetworkDoc<'a> {
    /// The flow's network fields; alerts are only raised for egress.
    fn of(flow: &FlowContext<'a>, protocol: Protocol) -> NetworkDoc<'a> {
        NetworkDoc {
            transport: flow.proto.as_str(),
            ip_version: if flow.sender.ip.is_ipv4() { "ipv4" } else { "ipv6" },
            direction: "egress",
            community_id: flow.community_id,
            protocol: protocol.as_str(),
        }
    }
}

#[derive(Serialize)]
struct PiiDoc<'a> {
    /// Values in this alert.
    count: usize,
    /// 1 for the first alert of this rule in this flow direction, then 2, 3, …
    batch: u32,
    /// Distinct values this flow direction has sent so far (all rules): the bulk measure
    /// behind `event.severity`.
    distinct: usize,
    matches: &'a [PiiMatch],
}

/// Renders one alert as a single JSON line (no trailing newline). `severity` is the rule's,
/// raised for bulk leaks by the caller.
pub fn render(
    ts: Timestamp,
    rule: AlertRule<'_>,
    severity: Severity,
    flow: &FlowContext<'_>,
    observer: &Observer,
    batch: &PendingBatch,
) -> String {
    let matches = &batch.matches[..];
    let what = match rule.pii {
        PiiKind::Cnic => "CNIC",
        PiiKind::Card => "card number",
        PiiKind::Iban => "IBAN",
    };
    let protocol = batch.context.protocol.unwrap_or(Protocol::Unknown);
    let ev = batch.context.evidence.as_ref();
    let over = match protocol {
        Protocol::Unknown => flow.proto.as_str(),
        p => p.as_str(),
    };
    let plural = if matches.len() == 1 { "" } else { "s" };
    let message = format!(
        "{} {what}{plural} sent in clear text from {} to {} over {over}",
        matches.len(),
        fmt_endpoint(&flow.sender),
        fmt_endpoint(&flow.receiver),
    );
    let doc = AlertDoc {
        timestamp: rfc3339(ts),
        message,
        event: EventDoc {
            id: random_id(),
            kind: "alert",
            category: ["network"],
            kind_type: ["info"],
            severity: severity.as_number(),
            created: rfc3339(Timestamp::now()),
            dataset: "nigehban.pii",
            module: "nigehban",
        },
        rule: RuleDoc {
            id: rule.id,
            name: rule.name,
            category: "pii",
            ruleset: "nigehban",
        },
        source: EndpointDoc::of(&flow.sender),
        destination: EndpointDoc::of(&flow.receiver),
        network: NetworkDoc::of(flow, protocol),
        observer,
        http: ev
            .filter(|e| !e.http_method.is_empty() || e.http_status.is_some())
            .map(|e| HttpDoc {
                request: (!e.http_method.is_empty()).then(|| HttpRequestDoc {
                    method: e.http_method.clone(),
                }),
                response: e.http_status.map(|status_code| HttpResponseDoc { status_code }),
            }),
        url: ev
            .filter(|e| !e.http_host.is_empty() || !e.url_path.is_empty())
            .map(|e| UrlDoc {
                domain: &e.http_host,
                path: &e.url_path,
            }),
        smtp: ev
            .filter(|e| !e.smtp_from_domain.is_empty() || !e.smtp_to_domains.is_empty())
            .map(|e| SmtpDoc {
                mail_from_domain: &e.smtp_from_domain,
                rcpt_to_domains: &e.smtp_to_domains,
            }),
        dns: ev.filter(|e| !e.dns_domain.is_empty()).map(|e| DnsDoc {
            question: DnsQuestionDoc {
                registered_domain: &e.dns_domain,
            },
        }),
        pii: PiiDoc {
            count: matches.len(),
            batch: batch.batch,
            distinct: batch.distinct,
            matches,
        },
    };
    serde_json::to_string(&doc).expect("alert documents always serialise")
}

/// An evasion technique the sensor noticed in a flow: an alert of its own, carrying no personal
/// data (nothing of the payload, only where in the stream it happened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evasion {
    /// TCP segments overlapping held bytes with different content, first differing byte at this
    /// offset of the egress stream.
    TcpOverlapConflict {
        /// Stream offset of the first differing byte.
        offset: u64,
    },
}

impl Evasion {
    /// Rule id in alerts (and the `rule` label of `nigehban_alerts_total`).
    pub fn rule_id(self) -> &'static str {
        match self {
            Evasion::TcpOverlapConflict { .. } => "NGB-EVASION-001",
        }
    }

    fn rule_name(self) -> &'static str {
        match self {
            Evasion::TcpOverlapConflict { .. } => "TCP overlap with conflicting data",
        }
    }
}

#[derive(Serialize)]
struct EvasionDoc<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    message: String,
    event: EventDoc,
    rule: RuleDoc<'a>,
    source: EndpointDoc,
    destination: EndpointDoc,
    network: NetworkDoc<'a>,
    observer: &'a Observer,
    nigehban: EvasionDetail,
}

#[derive(Serialize)]
struct EvasionDetail {
    evasion: EvasionFields,
}

#[derive(Serialize)]
struct EvasionFields {
    technique: &'static str,
    stream_offset: u64,
}

/// Renders an evasion alert as one JSON line: same ECS envelope as a PII alert (flow, observer,
/// rule), dataset `nigehban.evasion`, and no `pii` object.
pub fn render_evasion(
    ts: Timestamp,
    evasion: Evasion,
    flow: &FlowContext<'_>,
    protocol: Protocol,
    observer: &Observer,
) -> String {
    let Evasion::TcpOverlapConflict { offset } = evasion;
    let doc = EvasionDoc {
        timestamp: rfc3339(ts),
        message: format!(
            "{} from {} to {}: the receiver may see other bytes than were scanned",
            evasion.rule_name(),
            fmt_endpoint(&flow.sender),
            fmt_endpoint(&flow.receiver),
        ),
        event: EventDoc {
            id: random_id(),
            kind: "alert",
            category: ["intrusion_detection"],
            kind_type: ["info"],
            severity: Severity::Medium.as_number(),
            created: rfc3339(Timestamp::now()),
            dataset: "nigehban.evasion",
            module: "nigehban",
        },
        rule: RuleDoc {
            id: evasion.rule_id(),
            name: evasion.rule_name(),
            category: "evasion",
            ruleset: "nigehban",
        },
        source: EndpointDoc::of(&flow.sender),
        destination: EndpointDoc::of(&flow.receiver),
        network: NetworkDoc::of(flow, protocol),
        observer,
        nigehban: EvasionDetail {
            evasion: EvasionFields {
                technique: "tcp_overlap_conflict",
                stream_offset: offset,
            },
        },
    };
    serde_json::to_string(&doc).expect("alert documents always serialise")
}

fn fmt_endpoint(e: &Endpoint) -> String {
    match e.ip {
        std::net::IpAddr::V4(ip) => format!("{ip}:{}", e.port),
        std::net::IpAddr::V6(ip) => format!("[{ip}]:{}", e.port),
    }
}

fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// RFC 3339 UTC with microseconds, e.g. `2026-11-22T03:37:29.123456Z`.
pub fn rfc3339(ts: Timestamp) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    let nanos = i128::from(ts.as_micros()) * 1000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000000Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TCP from inside 10.1.2.3 to outside 203.0.113.9.
    fn tcp_flow(sender_port: u16, receiver_port: u16) -> FlowContext<'static> {
        FlowContext {
            sender: Endpoint {
                ip: "10.1.2.3".parse().unwrap(),
                port: sender_port,
            },
            receiver: Endpoint {
                ip: "203.0.113.9".parse().unwrap(),
                port: receiver_port,
            },
            proto: Proto::Tcp,
            community_id: "1:abc=",
        }
    }

    #[test]
    fn timestamp_format() {
        assert_eq!(
            rfc3339(Timestamp::from_micros(1_700_000_000_123_456)),
            "2023-11-14T22:13:20.123456Z"
        );
    }

    #[test]
    fn alert_has_the_ecs_fields_a_siem_needs() {
        let rule = AlertRule {
            id: "NGB-T-1",
            name: "test",
            pii: PiiKind::Cnic,
            severity: Severity::High,
        };
        let flow = tcp_flow(443, 50000);
        let m = PiiMatch {
            kind: PiiKind::Cnic,
            masked: "35202-*******-1".into(),
            hash: "ab".repeat(32),
            confidence: Confidence::High,
            known: false,
            location: Some(Location::Body),
            field: Some("cnic".into()),
        };
        let batch = PendingBatch {
            rule: 0,
            matches: vec![m],
            batch: 1,
            context: MessageContext {
                protocol: Some(Protocol::Http),
                evidence: Some(Evidence {
                    http_method: "POST".into(),
                    http_host: "upload.example".into(),
                    url_path: "/api/customers".into(),
                    ..Evidence::default()
                }),
            },
            distinct: 1,
        };
        let line = render(
            Timestamp::from_micros(1_700_000_000_000_000),
            rule,
            Severity::High,
            &flow,
            &Observer::new("s1".into()),
            &batch,
        );
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(v["event"]["kind"], "alert");
        assert_eq!(v["event"]["category"][0], "network");
        assert_eq!(v["event"]["severity"], 3);
        assert_eq!(v["rule"]["id"], "NGB-T-1");
        assert_eq!(v["source"]["ip"], "10.1.2.3");
        assert_eq!(v["source"]["port"], 443);
        assert_eq!(v["destination"]["ip"], "203.0.113.9");
        assert_eq!(v["network"]["transport"], "tcp");
        assert_eq!(v["network"]["type"], "ipv4");
        assert_eq!(v["network"]["direction"], "egress");
        assert_eq!(v["network"]["community_id"], "1:abc=");
        assert_eq!(v["observer"]["name"], "s1");
        assert_eq!(v["pii"]["matches"][0]["type"], "cnic");
        assert_eq!(v["pii"]["matches"][0]["masked"], "35202-*******-1");
        assert_eq!(v["pii"]["count"], 1);
        assert_eq!(v["pii"]["distinct"], 1);
        assert_eq!(v["pii"]["matches"][0]["confidence"], "high");
        assert_eq!(v["pii"]["matches"][0]["known"], false);
        assert_eq!(v["pii"]["matches"][0]["location"], "body");
        assert_eq!(v["pii"]["matches"][0]["field"], "cnic");
        assert_eq!(v["network"]["protocol"], "http");
        assert_eq!(v["http"]["request"]["method"], "POST");
        assert!(v["http"].get("response").is_none());
        assert_eq!(v["url"]["domain"], "upload.example");
        assert_eq!(v["url"]["path"], "/api/customers");
        assert!(v.get("smtp").is_none() && v.get("dns").is_none());
        assert_eq!(
            v["message"],
            "1 CNIC sent in clear text from 10.1.2.3:443 to 203.0.113.9:50000 over http"
        );
    }

    #[test]
    fn evasion_alert_has_flow_context_and_no_pii_object() {
        let flow = tcp_flow(40000, 80);
        let line = render_evasion(
            Timestamp::from_micros(1_700_000_000_000_000),
            Evasion::TcpOverlapConflict { offset: 1234 },
            &flow,
            Protocol::Http,
            &Observer::new("s1".into()),
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["rule"]["id"], "NGB-EVASION-001");
        assert_eq!(v["rule"]["name"], "TCP overlap with conflicting data");
        assert_eq!(v["event"]["dataset"], "nigehban.evasion");
        assert_eq!(v["event"]["kind"], "alert");
        assert_eq!(v["source"]["ip"], "10.1.2.3");
        assert_eq!(v["destination"]["port"], 80);
        assert_eq!(v["network"]["community_id"], "1:abc=");
        assert_eq!(v["network"]["protocol"], "http");
        assert_eq!(v["nigehban"]["evasion"]["stream_offset"], 1234);
        assert!(v.get("pii").is_none(), "an evasion alert carries no pii object: {line}");
        assert_eq!(
            v["message"],
            "TCP overlap with conflicting data from 10.1.2.3:40000 to 203.0.113.9:80: the receiver may see other \
             bytes than were scanned"
        );
    }
}
