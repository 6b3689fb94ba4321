//! Syslog wire formats: the RFC 5424 message, RFC 6587 octet-counting framing, and CEF (the
//! ArcSight Common Event Format) as an alternative message body.

use serde::Deserialize;
use std::fmt::Write as _;

/// RFC 5424 allows at most six digits of fractional seconds; UTC keeps the offset fixed.
const TIMESTAMP: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// The fields of an alert the syslog header and CEF need. Everything is optional: a field the
/// alert lacks is left out, never an error (the alert JSON is produced elsewhere and may grow).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AlertView {
    #[serde(rename = "@timestamp")]
    timestamp: Option<String>,
    message: Option<String>,
    event: EventView,
    rule: RuleView,
    source: EndpointView,
    destination: EndpointView,
    network: NetworkView,
    observer: ObserverView,
    pii: PiiView,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EventView {
    id: Option<String>,
    severity: Option<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuleView {
    id: Option<String>,
    name: Option<String>,
    category: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EndpointView {
    ip: Option<String>,
    port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NetworkView {
    transport: Option<String>,
    community_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ObserverView {
    name: Option<String>,
    version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PiiView {
    count: Option<u64>,
    matches: Vec<MatchView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MatchView {
    #[serde(rename = "type")]
    kind: Option<String>,
    masked: Option<String>,
    hash: Option<String>,
}

impl AlertView {
    /// Parses what it can; an unparsable line gives an empty view (defaults everywhere).
    pub fn parse(line: &str) -> AlertView {
        serde_json::from_str(line).unwrap_or_default()
    }

    /// Syslog severity (RFC 5424 §6.2.1) from the alert's ECS `event.severity` (1 low … 4
    /// critical): notice, warning, error, critical. Warning when absent.
    pub fn syslog_severity(&self) -> u8 {
        match self.event.severity {
            Some(0 | 1) => 5,
            Some(2) | None => 4,
            Some(3) => 3,
            Some(_) => 2,
        }
    }
}

/// Syslog facility (RFC 5424 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(pub u8);

impl Facility {
    /// Parses `local0`…`local7`, `user`, `daemon`, `auth`, `authpriv`, `audit` or a number 0–23.
    pub fn parse(s: &str) -> Option<Facility> {
        let n = match s {
            "user" => 1,
            "daemon" => 3,
            "auth" => 4,
            "authpriv" => 10,
            "audit" => 13,
            _ => match s.strip_prefix("local").and_then(|d| d.parse::<u8>().ok()) {
                Some(d @ 0..=7) => 16 + d,
                _ => s.parse::<u8>().ok().filter(|n| *n <= 23)?,
            },
        };
        Some(Facility(n))
    }
}

/// The fixed parts of every RFC 5424 header this sensor sends.
#[derive(Debug, Clone)]
pub struct Header {
    /// Facility.
    pub facility: Facility,
    /// HOSTNAME: printable US-ASCII, no spaces, at most 255 (sanitised by [`Header::new`]).
    hostname: String,
    /// PROCID.
    procid: String,
}

impl Header {
    /// A header for `hostname` (the observer name; unprintable bytes and spaces become `-`).
    pub fn new(facility: Facility, hostname: &str) -> Header {
        let mut h: String = hostname
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '-' })
            .take(255)
            .collect();
        if h.is_empty() {
            h.push('-');
        }
        Header {
            facility,
            hostname: h,
            procid: std::process::id().to_string(),
        }
    }

    /// Appends one RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME nigehban PROCID alert - MSG`.
    /// MSG is `msg` byte for byte (no BOM: receivers would keep it as part of the text, and the
    /// JSON-format promise is that MSG *is* the alert line). No structured data: the alert
    /// itself is structured, and repeating fields in SD-PARAMs would give a SIEM two sources
    /// of truth to parse.
    pub fn write(&self, out: &mut Vec<u8>, severity: u8, now: time::OffsetDateTime, msg: &str) {
        let pri = u16::from(self.facility.0) * 8 + u16::from(severity);
        let ts = now
            .to_offset(time::UtcOffset::UTC)
            .format(TIMESTAMP)
            .unwrap_or_else(|_| "-".into());
        let mut head = String::with_capacity(96);
        let _ = write!(
            head,
            "<{pri}>1 {ts} {} nigehban {} alert - ",
            self.hostname, self.procid
        );
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(msg.as_bytes());
    }
}

/// RFC 6587 §3.4.1 octet counting: `MSG-LEN SP SYSLOG-MSG`, for stream transports.
pub fn octet_counted(out: &mut Vec<u8>, message: &[u8]) {
    out.extend_from_slice(message.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(message);
}

/// Escapes a CEF header field: backslash and pipe.
fn cef_header(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
}

/// Escapes a CEF extension value: backslash, equals sign, and line breaks as `\n` / `\r`.
fn cef_value(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn ext(out: &mut String, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        if !out.ends_with('|') {
            out.push(' ');
        }
        out.push_str(key);
        out.push('=');
        cef_value(out, v);
    }
}

/// CEF severity (0–10) from ECS `event.severity` 1–4.
fn cef_severity(s: Option<u8>) -> u8 {
    match s {
        Some(0 | 1) => 3,
        Some(2) | None => 5,
        Some(3) => 8,
        Some(_) => 10,
    }
}

/// Renders an alert as one CEF:0 record. Mapping (ArcSight dictionary names):
/// `rt` ← `@timestamp` (epoch ms), `src`/`spt` ← sender, `dst`/`dpt` ← receiver, `proto` ←
/// `network.transport`, `msg` ← `message`, `externalId` ← `event.id`, `cat` ← `rule.category`,
/// `dvchost` ← `observer.name`, `deviceDirection=1` (outbound), `cnt` ← `pii.count`,
/// `cs1` community ID, `cs2` value types, `cs3` keyed hashes, `cs4` masked values (each list
/// comma-separated, in match order). Only masked values and hashes exist in the alert, so none
/// can leak here.
pub fn cef(line: &str, view: &AlertView) -> String {
    let mut out = String::with_capacity(line.len());
    out.push_str("CEF:0|Nigehban|Nigehban|");
    cef_header(
        &mut out,
        view.observer.version.as_deref().unwrap_or(env!("CARGO_PKG_VERSION")),
    );
    out.push('|');
    cef_header(&mut out, view.rule.id.as_deref().unwrap_or("unknown"));
    out.push('|');
    cef_header(&mut out, view.rule.name.as_deref().unwrap_or("personal data leak"));
    out.push('|');
    out.push_str(&cef_severity(view.event.severity).to_string());
    out.push('|');
    let rt = view
        .timestamp
        .as_deref()
        .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000).to_string());
    ext(&mut out, "rt", rt.as_deref());
    ext(&mut out, "src", view.source.ip.as_deref());
    ext(&mut out, "spt", view.source.port.map(|p| p.to_string()).as_deref());
    ext(&mut out, "dst", view.destination.ip.as_deref());
    ext(&mut out, "dpt", view.destination.port.map(|p| p.to_string()).as_deref());
    ext(
        &mut out,
        "proto",
        view.network
            .transport
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref(),
    );
    ext(&mut out, "deviceDirection", Some("1"));
    ext(&mut out, "msg", view.message.as_deref());
    ext(&mut out, "externalId", view.event.id.as_deref());
    ext(&mut out, "cat", view.rule.category.as_deref());
    ext(&mut out, "dvchost", view.observer.name.as_deref());
    ext(&mut out, "cnt", view.pii.count.map(|c| c.to_string()).as_deref());
    if view.network.community_id.is_some() {
        ext(&mut out, "cs1Label", Some("communityId"));
        ext(&mut out, "cs1", view.network.community_id.as_deref());
    }
    if !view.pii.matches.is_empty() {
        let list =
            |f: fn(&MatchView) -> Option<&str>| view.pii.matches.iter().filter_map(f).collect::<Vec<_>>().join(",");
        ext(&mut out, "cs2Label", Some("piiTypes"));
        ext(&mut out, "cs2", Some(&list(|m| m.kind.as_deref())));
        ext(&mut out, "cs3Label", Some("piiHashes"));
        ext(&mut out, "cs3", Some(&list(|m| m.hash.as_deref())));
        ext(&mut out, "cs4Label", Some("piiMasked"));
        ext(&mut out, "cs4", Some(&list(|m| m.masked.as_deref())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALERT: &str = r#"{"@timestamp":"2025-11-22T00:00:01.5Z","message":"1 CNIC sent in clear text from 10.0.0.5:40000 to 203.0.113.10:80 over tcp","event":{"id":"abc","severity":3},"rule":{"id":"NGB-CNIC-1","name":"CNIC | clear = bad \\ worse","category":"pii"},"source":{"ip":"10.0.0.5","port":40000},"destination":{"ip":"203.0.113.10","port":80},"network":{"transport":"tcp","community_id":"1:abc="},"observer":{"name":"s1","version":"0.1.0"},"pii":{"count":2,"matches":[{"type":"cnic","masked":"35202-*******-2","hash":"h1"},{"type":"card","masked":"411111******1111","hash":"h2"}]}}"#;

    #[test]
    fn rfc5424_message_has_exact_msg_and_header_fields() {
        let h = Header::new(Facility(16), "sensor one\u{7}");
        let mut out = Vec::new();
        let now = time::macros::datetime!(2025-11-22 01:02:03.123456789 UTC);
        h.write(&mut out, 3, now, ALERT);
        let s = String::from_utf8(out).unwrap();
        let pid = std::process::id();
        let head = format!("<131>1 2025-11-22T01:02:03.123456Z sensor-one- nigehban {pid} alert - ");
        assert!(s.starts_with(&head), "{s}");
        assert_eq!(&s[head.len()..], ALERT, "MSG is the alert line byte for byte");
    }

    #[test]
    fn octet_counting_counts_bytes_not_chars() {
        let mut out = Vec::new();
        octet_counted(&mut out, "é!".as_bytes());
        octet_counted(&mut out, b"");
        assert_eq!(out, b"3 \xc3\xa9!0 ");
    }

    #[test]
    fn severity_maps_from_ecs() {
        let v = AlertView::parse(ALERT);
        assert_eq!(v.syslog_severity(), 3);
        assert_eq!(AlertView::parse("not json").syslog_severity(), 4);
        assert_eq!(AlertView::parse(r#"{"event":{"severity":4}}"#).syslog_severity(), 2);
    }

    #[test]
    fn cef_maps_fields_and_escapes() {
        let c = cef(ALERT, &AlertView::parse(ALERT));
        assert!(
            c.starts_with("CEF:0|Nigehban|Nigehban|0.1.0|NGB-CNIC-1|CNIC \\| clear = bad \\\\ worse|8|"),
            "{c}"
        );
        for part in [
            "rt=1763769601500",
            "src=10.0.0.5 spt=40000 dst=203.0.113.10 dpt=80 proto=TCP deviceDirection=1",
            "msg=1 CNIC sent in clear text from 10.0.0.5:40000 to 203.0.113.10:80 over tcp",
            "externalId=abc",
            "cs1Label=communityId cs1=1:abc\\=",
            "cs2=cnic,card",
            "cs3=h1,h2",
            "cs4=35202-*******-2,411111******1111",
            "cnt=2",
        ] {
            assert!(c.contains(part), "missing {part} in {c}");
        }
        assert!(!c.contains('\n'));
    }

    #[test]
    fn cef_extension_escapes_line_breaks_and_backslashes() {
        let mut s = String::new();
        cef_value(&mut s, "a=b\\c\nd\re");
        assert_eq!(s, "a\\=b\\\\c\\nd\\re");
        let mut h = String::new();
        cef_header(&mut h, "x|y\\z=w");
        assert_eq!(h, "x\\|y\\\\z=w");
    }

    #[test]
    fn cef_of_garbage_is_still_one_valid_record() {
        let c = cef("{", &AlertView::parse("{"));
        assert!(c.starts_with("CEF:0|Nigehban|Nigehban|"), "{c}");
        assert_eq!(c.matches('|').count(), 7);
    }

    #[test]
    fn facility_names() {
        assert_eq!(Facility::parse("local0"), Some(Facility(16)));
        assert_eq!(Facility::parse("local7"), Some(Facility(23)));
        assert_eq!(Facility::parse("audit"), Some(Facility(13)));
        assert_eq!(Facility::parse("13"), Some(Facility(13)));
        assert_eq!(Facility::parse("local8"), None);
        assert_eq!(Facility::parse("24"), None);
    }
}
