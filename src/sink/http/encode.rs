//! Request bodies and response verdicts for the two collector protocols. Pure functions over
//! bytes, so every framing and error rule is tested without a network.
//!
//! Each alert travels byte-identical: the alert's JSON line is copied into the envelope, never
//! re-serialised, so a SIEM sees exactly what the JSON file and syslog outputs write.

use crate::sink::output::DeliveryError;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::io::Write;

/// The few alert fields an envelope needs; everything else is skipped (but still syntax-checked
/// by serde_json, which is how a malformed line is noticed before it spoils a whole batch).
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "@timestamp", borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    observer: Option<ObserverHead<'a>>,
}

#[derive(Deserialize)]
struct ObserverHead<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

/// Parses `alert` as one JSON object on one line; `None` when it is anything else.
fn head(alert: &str) -> Option<Head<'_>> {
    if alert.contains('\n') || !alert.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(alert).ok()
}

/// Writes `s` as a JSON string.
fn json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("writing a str to a Vec cannot fail");
}

/// `2023-11-14T22:13:20.000000Z` → `1700000000.000000` (HEC's `time`: epoch seconds).
fn epoch_seconds(rfc3339: &str) -> Option<String> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).ok()?;
    let secs = t.unix_timestamp();
    (secs >= 0).then(|| format!("{secs}.{:06}", t.microsecond()))
}

/// Splunk HEC event envelopes.
#[derive(Debug, Clone)]
pub(super) struct HecEncoder {
    /// Already JSON-quoted, so each event copies bytes instead of escaping again.
    pub(super) sourcetype_json: String,
    pub(super) index_json: Option<String>,
}

impl HecEncoder {
    pub(super) fn new(sourcetype: &str, index: Option<&str>) -> HecEncoder {
        let q = |s: &str| serde_json::to_string(s).expect("str serialises");
        HecEncoder {
            sourcetype_json: q(sourcetype),
            index_json: index.map(q),
        }
    }

    /// Appends one `{"time":…,"host":…,"source":"nigehban","sourcetype":…,"event":<alert>}`
    /// object per alert, newline-separated (HEC accepts whitespace between objects). `time`
    /// and `host` come from the alert's `@timestamp` and `observer.name`; a line that is not a
    /// JSON object travels as a string event so it cannot make HEC refuse its neighbours.
    pub(super) fn encode(&self, alerts: &[&str], out: &mut Vec<u8>) {
        for alert in alerts {
            let head = head(alert);
            out.push(b'{');
            if let Some(t) = head
                .as_ref()
                .and_then(|h| h.timestamp.as_deref())
                .and_then(epoch_seconds)
            {
                out.extend_from_slice(b"\"time\":");
                out.extend_from_slice(t.as_bytes());
                out.push(b',');
            }
            if let Some(host) = head
                .as_ref()
                .and_then(|h| h.observer.as_ref())
                .and_then(|o| o.name.as_deref())
            {
                out.extend_from_slice(b"\"host\":");
                json_str(out, host);
                out.push(b',');
            }
            out.extend_from_slice(b"\"source\":\"nigehban\",\"sourcetype\":");
            out.extend_from_slice(self.sourcetype_json.as_bytes());
            if let Some(index) = &self.index_json {
                out.extend_from_slice(b",\"index\":");
                out.extend_from_slice(index.as_bytes());
            }
            out.extend_from_slice(b",\"event\":");
            if head.is_some() {
                out.extend_from_slice(alert.as_bytes());
            } else {
                json_str(out, alert);
            }
            out.extend_from_slice(b"}\n");
        }
    }
}

/// Elasticsearch/OpenSearch `_bulk` NDJSON.
#[derive(Debug, Clone)]
pub(super) struct BulkEncoder {
    pub(super) index_json: String,
}

impl BulkEncoder {
    pub(super) fn new(index: &str) -> BulkEncoder {
        BulkEncoder {
            index_json: serde_json::to_string(index).expect("str serialises"),
        }
    }

    /// Appends `{"create":{"_index":…,"_id":…}}\n<alert>\n` per alert.
    ///
    /// `_id` is derived from the alert's bytes (SHA-256, first 128 bits), and `create` refuses
    /// an existing id with 409: a batch re-sent after a lost response is stored once, not twice.
    /// A line that is not a JSON object is stored as `{"event":{"original":"<line>"}}`.
    pub(super) fn encode(&self, alerts: &[&str], out: &mut Vec<u8>) {
        for alert in alerts {
            let digest = Sha256::digest(alert.as_bytes());
            out.extend_from_slice(b"{\"create\":{\"_index\":");
            out.extend_from_slice(self.index_json.as_bytes());
            out.extend_from_slice(b",\"_id\":\"");
            out.extend_from_slice(hex::encode(&digest[..16]).as_bytes());
            out.extend_from_slice(b"\"}}\n");
            if head(alert).is_some() {
                out.extend_from_slice(alert.as_bytes());
            } else {
                out.extend_from_slice(b"{\"event\":{\"original\":");
                json_str(out, alert);
                out.extend_from_slice(b"}}");
            }
            out.push(b'\n');
        }
    }
}

/// Gzip of `body` at the default level.
pub(super) fn gzip(body: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    enc.write_all(body).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail");
}

/// At most 200 characters of a response body, control characters blanked, for error messages.
pub(super) fn snippet(body: &str) -> String {
    let mut s: String = body
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.chars().nth(200).is_some() {
        s.push('…');
    }
    s
}

/// The verdict for a non-2xx answer, or a 2xx that the protocol layer could not interpret.
pub(super) fn by_status(status: u16, body: &str, endpoint: &str) -> DeliveryError {
    let b = snippet(body);
    match status {
        401 | 403 => DeliveryError::Config(format!(
            "{endpoint} refused the credentials (HTTP {status}: {b}); check the token/API key/password file and its permissions on the collector"
        )),
        404 | 405 => DeliveryError::Config(format!(
            "{endpoint} has no such API (HTTP {status}: {b}); check the output's url"
        )),
        300..=399 => DeliveryError::Config(format!(
            "{endpoint} answered with a redirect (HTTP {status}); configure the final URL, redirects are not followed so credentials stay put"
        )),
        408 | 429 | 500..=599 => DeliveryError::Unavailable(format!("{endpoint} is busy or failing (HTTP {status}: {b})")),
        400..=499 => DeliveryError::Rejected(format!("{endpoint} refused the alerts (HTTP {status}: {b})")),
        _ => DeliveryError::Unavailable(format!("{endpoint} gave an unexpected answer (HTTP {status}: {b})")),
    }
}

#[derive(Deserialize)]
struct HecReply {
    #[serde(default)]
    text: String,
    code: Option<i64>,
}

/// Judges a HEC answer. HEC puts the reason in `{"text":…,"code":N}`; the code is more
/// precise than the HTTP status (e.g. 400 means both "bad event" and "index not allowed").
pub(super) fn hec_verdict(status: u16, body: &str, endpoint: &str) -> Result<(), DeliveryError> {
    let reply: Option<HecReply> = serde_json::from_str(body).ok();
    let code = reply.as_ref().and_then(|r| r.code);
    let text = reply.as_ref().map(|r| r.text.as_str()).unwrap_or("");
    match (status, code) {
        // An empty 2xx (a proxy in front of HEC) counts as accepted: the status is the contract.
        (200..=299, Some(0) | None) => Ok(()),
        (_, Some(c @ (1..=4))) => Err(DeliveryError::Config(format!(
            "{endpoint} refused the HEC token (code {c}: {text}); check the token file and that the token is enabled"
        ))),
        (_, Some(7)) => Err(DeliveryError::Config(format!(
            "{endpoint} refused the index (code 7: {text}); set an index this HEC token may write, or none"
        ))),
        (_, Some(c @ (10 | 11 | 14 | 16))) => Err(DeliveryError::Config(format!(
            "{endpoint} wants different HEC settings (code {c}: {text}); turn indexer acknowledgement off for this token"
        ))),
        (_, Some(c @ (8 | 9 | 18))) => Err(DeliveryError::Unavailable(format!("{endpoint} is busy (code {c}: {text})"))),
        (_, Some(c @ (5 | 6 | 12 | 13 | 15))) => Err(DeliveryError::Rejected(format!(
            "{endpoint} refused the events (code {c}: {text})"
        ))),
        _ => Err(by_status(status, body, endpoint)),
    }
}

#[derive(Deserialize)]
struct BulkReply {
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    status: u16,
    #[serde(default)]
    error: Option<BulkError>,
}

#[derive(Deserialize)]
struct BulkError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    reason: String,
}

/// Judges a 2xx `_bulk` answer, whose per-item results decide. Policy (at-least-once):
/// - created, or 409 (the deterministic `_id` exists: an earlier try got through) → delivered;
/// - any item 429/5xx → the whole batch is `Unavailable` and re-sent; items already stored
///   come back as 409, so nothing is stored twice;
/// - else any 401/403/404 (no right to write, index missing and auto-create off) → `Config`;
/// - else any other failure (mapping conflict, bad document) → `Rejected`; items of the same
///   batch that were stored stay stored.
pub(super) fn bulk_verdict(body: &str, endpoint: &str) -> Result<(), DeliveryError> {
    let reply: BulkReply = serde_json::from_str(body).map_err(|e| {
        DeliveryError::Unavailable(format!(
            "{endpoint} sent an unreadable _bulk answer ({e}): {}; re-sending",
            snippet(body)
        ))
    })?;
    if !reply.errors {
        return Ok(());
    }
    let (mut retry, mut config, mut reject) = (0usize, 0usize, 0usize);
    let mut first: [Option<(u16, &BulkItem)>; 3] = [None, None, None];
    for item in reply.items.iter().flat_map(|m| m.values()) {
        let slot = match item.status {
            200..=299 | 409 => continue,
            429 | 500..=599 => {
                retry += 1;
                0
            }
            401 | 403 | 404 => {
                config += 1;
                1
            }
            _ => {
                reject += 1;
                2
            }
        };
        first[slot].get_or_insert((item.status, item));
    }
    let total = reply.items.len();
    let describe = |n: usize, f: Option<(u16, &BulkItem)>| {
        let (status, item) = f.expect("counted items have a first");
        let (kind, reason) = item
            .error
            .as_ref()
            .map(|e| (e.kind.as_str(), snippet(&e.reason)))
            .unwrap_or(("", String::new()));
        format!("{n} of {total} alerts failed at {endpoint}, first: {status} {kind}: {reason}")
    };
    if retry > 0 {
        Err(DeliveryError::Unavailable(describe(retry, first[0])))
    } else if config > 0 {
        Err(DeliveryError::Config(format!(
            "{}; check the index name and the user's or API key's index privileges",
            describe(config, first[1])
        )))
    } else if reject > 0 {
        Err(DeliveryError::Rejected(describe(reject, first[2])))
    } else {
        // `errors: true` with every item fine: only conflicts on our own ids, i.e. delivered.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALERT: &str = r#"{"@timestamp":"2023-11-14T22:13:20.123456Z","observer":{"name":"sensor-1","type":"sensor"},"rule":{"id":"cnic"},"pii":{"matches":[{"type":"cnic","masked":"35202-*******-1"}]}}"#;

    #[test]
    fn hec_envelope_carries_the_alert_verbatim() {
        let enc = HecEncoder::new("nigehban:alert", Some("dlp"));
        let mut out = Vec::new();
        enc.encode(&[ALERT, ALERT], &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let expected = format!(
            r#"{{"time":1700000000.123456,"host":"sensor-1","source":"nigehban","sourcetype":"nigehban:alert","index":"dlp","event":{ALERT}}}"#
        );
        assert_eq!(lines[0], expected);
        // Still valid JSON, and the event is the alert unchanged.
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["event"], serde_json::from_str::<serde_json::Value>(ALERT).unwrap());
    }

    #[test]
    fn hec_non_json_line_becomes_a_string_event() {
        let enc = HecEncoder::new("st", None);
        let mut out = Vec::new();
        enc.encode(&["not json \"quoted\""], &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["event"], "not json \"quoted\"");
        assert!(v.get("time").is_none() && v.get("index").is_none());
    }

    #[test]
    fn bulk_lines_pair_action_and_document_with_stable_ids() {
        let enc = BulkEncoder::new("nigehban-alerts");
        let mut a = Vec::new();
        enc.encode(&[ALERT, "[1,2]"], &mut a);
        let text = String::from_utf8(a.clone()).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        let action: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(action["create"]["_index"], "nigehban-alerts");
        assert_eq!(action["create"]["_id"].as_str().unwrap().len(), 32);
        assert_eq!(lines[1], ALERT);
        let wrapped: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
        assert_eq!(wrapped["event"]["original"], "[1,2]");
        // Same alert, same id: what makes re-sending idempotent.
        let mut b = Vec::new();
        enc.encode(&[ALERT], &mut b);
        assert!(text.starts_with(std::str::from_utf8(&b).unwrap()));
    }

    #[test]
    fn gzip_round_trips() {
        let mut z = Vec::new();
        gzip(ALERT.as_bytes(), &mut z);
        let mut back = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&z[..]), &mut back).unwrap();
        assert_eq!(back, ALERT);
    }

    #[test]
    fn hec_codes_decide_over_status() {
        let ok = hec_verdict(200, r#"{"text":"Success","code":0}"#, "e");
        assert!(ok.is_ok());
        assert!(hec_verdict(200, "", "e").is_ok());
        let e = hec_verdict(403, r#"{"text":"Invalid token","code":4}"#, "e").unwrap_err();
        assert!(matches!(e, DeliveryError::Config(_)), "{e}");
        let e = hec_verdict(
            400,
            r#"{"text":"Incorrect index","code":7,"invalid-event-number":0}"#,
            "e",
        )
        .unwrap_err();
        assert!(matches!(e, DeliveryError::Config(_)), "{e}");
        let e = hec_verdict(503, r#"{"text":"Server is busy","code":9}"#, "e").unwrap_err();
        assert!(matches!(e, DeliveryError::Unavailable(_)), "{e}");
        let e = hec_verdict(400, r#"{"text":"Invalid data format","code":6}"#, "e").unwrap_err();
        assert!(matches!(e, DeliveryError::Rejected(_)), "{e}");
        let e = hec_verdict(502, "<html>bad gateway</html>", "e").unwrap_err();
        assert!(matches!(e, DeliveryError::Unavailable(_)), "{e}");
        let e = hec_verdict(413, "too large", "e").unwrap_err();
        assert!(matches!(e, DeliveryError::Rejected(_)), "{e}");
    }

    #[test]
    fn statuses_map_to_the_fault() {
        assert!(matches!(by_status(401, "", "e"), DeliveryError::Config(_)));
        assert!(matches!(by_status(404, "", "e"), DeliveryError::Config(_)));
        assert!(matches!(by_status(302, "", "e"), DeliveryError::Config(_)));
        assert!(matches!(by_status(429, "", "e"), DeliveryError::Unavailable(_)));
        assert!(matches!(by_status(500, "", "e"), DeliveryError::Unavailable(_)));
        assert!(matches!(by_status(400, "", "e"), DeliveryError::Rejected(_)));
        let long = "x".repeat(5000);
        assert!(by_status(400, &long, "e").to_string().len() < 400);
    }

    fn item(status: u16, kind: &str) -> String {
        format!(r#"{{"create":{{"status":{status},"error":{{"type":"{kind}","reason":"r"}}}}}}"#)
    }

    #[test]
    fn bulk_item_errors_follow_the_documented_policy() {
        let body = |items: &[String], errors: bool| format!(r#"{{"errors":{errors},"items":[{}]}}"#, items.join(","));
        let created = r#"{"create":{"status":201}}"#.to_string();
        assert!(bulk_verdict(&body(std::slice::from_ref(&created), false), "e").is_ok());
        // Conflicts on our own ids are earlier deliveries.
        assert!(bulk_verdict(
            &body(&[created.clone(), item(409, "version_conflict_engine_exception")], true),
            "e"
        )
        .is_ok());
        let mixed = body(
            &[
                created.clone(),
                item(400, "mapper_parsing_exception"),
                item(429, "es_rejected_execution_exception"),
            ],
            true,
        );
        let e = bulk_verdict(&mixed, "e").unwrap_err();
        assert!(matches!(e, DeliveryError::Unavailable(_)), "{e}");
        assert!(e.to_string().contains("1 of 3") && e.to_string().contains("es_rejected_execution_exception"));
        let e = bulk_verdict(&body(&[item(403, "security_exception"), item(400, "x")], true), "e").unwrap_err();
        assert!(matches!(e, DeliveryError::Config(_)), "{e}");
        let e = bulk_verdict(&body(&[created, item(400, "mapper_parsing_exception")], true), "e").unwrap_err();
        assert!(matches!(e, DeliveryError::Rejected(_)), "{e}");
        let e = bulk_verdict("<html>", "e").unwrap_err();
        assert!(matches!(e, DeliveryError::Unavailable(_)), "{e}");
    }
}
