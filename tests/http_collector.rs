//! The HTTP collector transports against a small HTTPS receiver started on loopback, which
//! speaks enough Splunk HEC and Elasticsearch `_bulk` to check what the sensor sends (auth
//! header, gzip, framing, every alert byte-identical) and to answer with failures on demand.

mod common_tls;

use common_tls::Pki;
use nigehban::sink::http::{transport, CollectorKind, HttpOutputConfig};
use nigehban::sink::output::{DeliveryError, Transport};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HEC_TOKEN: &str = "0b5e3c8e-test-hec-token";
const API_KEY: &str = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";

/// What the receiver does with the next request.
#[derive(Debug, Clone)]
enum Answer {
    /// This HTTP status and body, storing nothing.
    Status(u16, &'static str),
    /// `_bulk`: the item at this position fails with this status (not stored); others proceed.
    FailItem(usize, u16),
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    content_type: Option<String>,
    content_encoding: Option<String>,
    authorization: Option<String>,
    events: usize,
}

#[derive(Default)]
struct State {
    expected_auth: String,
    /// Answers for the next requests, in order; when empty the receiver behaves normally.
    script: VecDeque<Answer>,
    /// Requests with more events than this get 413.
    max_events: Option<usize>,
    /// HEC: accepted event objects, one line each, as received.
    hec: Vec<String>,
    /// `_bulk`: stored documents in arrival order, and their ids.
    docs: Vec<String>,
    ids: HashSet<String>,
    seen: Vec<Seen>,
}

/// An HTTPS receiver on 127.0.0.1 with a certificate from its own test CA.
struct Receiver {
    addr: SocketAddr,
    pki: Pki,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    fn start(expected_auth: &str) -> Receiver {
        Self::start_with(expected_auth, None)
    }

    /// `client_ca`: require client certificates signed by that CA.
    fn start_with(expected_auth: &str, client_ca: Option<&Pki>) -> Receiver {
        let pki = Pki::new("receiver test CA");
        let tls = pki.server_config(&["127.0.0.1", "localhost"], client_ca);
        Self::start_tls(pki, tls, expected_auth)
    }

    fn start_tls(pki: Pki, tls: Arc<ServerConfig>, expected_auth: &str) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            expected_auth: expected_auth.to_string(),
            ..State::default()
        }));
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (tls, st) = (Arc::clone(&tls), Arc::clone(&st));
                std::thread::spawn(move || {
                    let raw = conn.try_clone().unwrap();
                    serve(conn, tls, &st);
                    linger(raw);
                });
            }
        });
        Receiver { addr, pki, state }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn hec_config(&self, token_file: &Path) -> HttpOutputConfig {
        let mut c = HttpOutputConfig::new(CollectorKind::SplunkHec, self.url());
        c.token_file = Some(token_file.to_path_buf());
        c.ca = Some(self.pki.ca_path());
        c.timeout_secs = Some(5);
        c
    }

    fn elastic_config(&self, api_key_file: &Path) -> HttpOutputConfig {
        let mut c = HttpOutputConfig::new(CollectorKind::Elasticsearch, self.url());
        c.api_key_file = Some(api_key_file.to_path_buf());
        c.ca = Some(self.pki.ca_path());
        c.timeout_secs = Some(5);
        c
    }
}

/// Closes like a careful server (nginx's lingering close): stop writing, then read what the
/// client still sends. Closing with unread input makes the kernel send RST, which can destroy
/// a TLS alert (e.g. "certificate required", sent after a TLS 1.3 client already thinks the
/// handshake is done) before the client reads it.
fn linger(raw: TcpStream) {
    let _ = raw.shutdown(std::net::Shutdown::Write);
    let _ = raw.set_read_timeout(Some(Duration::from_secs(2)));
    let mut sink = [0u8; 4096];
    while matches!((&raw).read(&mut sink), Ok(n) if n > 0) {}
}

/// Serves HTTP/1.1 requests on one keep-alive TLS connection until the client closes it.
fn serve(conn: TcpStream, tls: Arc<ServerConfig>, state: &Mutex<State>) {
    let Ok(server) = ServerConnection::new(tls) else { return };
    let mut stream = BufReader::new(StreamOwned::new(server, conn));
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let (mut length, mut ctype, mut cenc, mut auth) = (0usize, None, None, None);
        loop {
            let mut h = String::new();
            if stream.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').expect("header line has a colon");
            let value = value.trim().to_string();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap(),
                "content-type" => ctype = Some(value),
                "content-encoding" => cenc = Some(value),
                "authorization" => auth = Some(value),
                _ => {}
            }
        }
        let mut raw = vec![0; length];
        if stream.read_exact(&mut raw).is_err() {
            return;
        }
        let body = if cenc.as_deref() == Some("gzip") {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&raw[..]).read_to_string(&mut s).unwrap();
            s
        } else {
            String::from_utf8(raw).unwrap()
        };
        let seen = Seen {
            target: target.clone(),
            content_type: ctype,
            content_encoding: cenc,
            authorization: auth,
            events: 0,
        };
        let (status, reply) = answer(state, seen, &body);
        let out = stream.get_mut();
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            reply.len()
        );
        if out
            .write_all(head.as_bytes())
            .and_then(|_| out.write_all(reply.as_bytes()))
            .and_then(|_| out.flush())
            .is_err()
        {
            return;
        }
    }
}

fn answer(state: &Mutex<State>, mut seen: Seen, body: &str) -> (u16, String) {
    let mut st = state.lock().unwrap();
    let hec = seen.target == "/services/collector/event";
    let bulk = seen.target.starts_with("/_bulk?");
    let lines: Vec<&str> = body.lines().filter(|l| !l.is_empty()).collect();
    seen.events = if bulk { lines.len() / 2 } else { lines.len() };
    let events = seen.events;
    let authorized = seen.authorization.as_deref() == Some(st.expected_auth.as_str());
    st.seen.push(seen);
    if !hec && !bulk {
        return (404, r#"{"error":"no handler"}"#.into());
    }
    if !authorized {
        return if hec {
            (403, r#"{"text":"Invalid token","code":4}"#.into())
        } else {
            (
                401,
                r#"{"error":{"type":"security_exception","reason":"unable to authenticate"},"status":401}"#.into(),
            )
        };
    }
    if st.max_events.is_some_and(|m| events > m) {
        return (413, "request entity too large".into());
    }
    let next = st.script.pop_front();
    if let Some(Answer::Status(status, reply)) = next {
        return (status, reply.into());
    }
    if hec {
        for l in &lines {
            let v: serde_json::Value = match serde_json::from_str(l) {
                Ok(v) => v,
                Err(_) => return (400, r#"{"text":"Invalid data format","code":6}"#.into()),
            };
            if v.get("event").is_none() {
                return (400, r#"{"text":"Event field is required","code":12}"#.into());
            }
        }
        st.hec.extend(lines.iter().map(|l| l.to_string()));
        return (200, r#"{"text":"Success","code":0}"#.into());
    }
    let fail = match next {
        Some(Answer::FailItem(i, s)) => Some((i, s)),
        _ => None,
    };
    let mut items = Vec::new();
    let mut errors = false;
    for (i, pair) in lines.chunks(2).enumerate() {
        let action: serde_json::Value = serde_json::from_str(pair[0]).expect("action line is JSON");
        let id = action["create"]["_id"]
            .as_str()
            .expect("create action with _id")
            .to_string();
        assert_eq!(action["create"]["_index"], "nigehban-alerts");
        let item = match fail {
            Some((at, s)) if at == i => {
                format!(r#"{{"create":{{"status":{s},"error":{{"type":"injected","reason":"test says {s}"}}}}}}"#)
            }
            _ if st.ids.contains(&id) => {
                r#"{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}}"#
                    .to_string()
            }
            _ => {
                st.ids.insert(id);
                st.docs.push(pair[1].to_string());
                r#"{"create":{"status":201}}"#.to_string()
            }
        };
        errors |= !item.contains("\"status\":201");
        items.push(item);
    }
    (200, format!(r#"{{"errors":{errors},"items":[{}]}}"#, items.join(",")))
}

/// Synthetic alerts shaped like the sensor's, with escapes and non-ASCII that a re-encoder
/// would be tempted to change. Masked values only, as real alerts carry.
fn alerts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"@timestamp":"2024-03-01T10:{:02}:{:02}.{:06}Z","observer":{{"name":"sensor-لاہور","type":"sensor"}},"rule":{{"id":"pk-cnic","name":"CNIC \"in clear\"\ttab"}},"url":{{"original":"/up?x=1&y=\u00fc\/{i}"}},"pii":{{"matches":[{{"type":"cnic","masked":"35202-*******-{}","hash":"{:064x}"}}]}}}}"#,
                i / 60 % 60,
                i % 60,
                i * 7,
                i % 10,
                i * 2_654_435_761
            )
        })
        .collect()
}

fn send_all(t: &mut dyn Transport, alerts: &[String]) -> Result<(), DeliveryError> {
    let refs: Vec<&str> = alerts.iter().map(String::as_str).collect();
    for chunk in refs.chunks(t.max_batch()) {
        t.send(chunk)?;
    }
    Ok(())
}

fn secret_file(dir: &Path, name: &str, value: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    p
}

#[test]
fn hec_alerts_arrive_byte_identical_in_their_envelopes() {
    let rx = Receiver::start(&format!("Splunk {HEC_TOKEN}"));
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rx.hec_config(&secret_file(dir.path(), "hec.token", HEC_TOKEN));
    cfg.max_batch = Some(40);
    cfg.index = Some("dlp".into());
    let mut t = transport(&cfg, dir.path()).unwrap();
    assert_eq!(t.max_batch(), 40);
    let sent = alerts(250);
    send_all(t.as_mut(), &sent).unwrap();

    let st = rx.state();
    assert_eq!(st.seen.len(), 7, "250 alerts in batches of 40");
    for s in &st.seen {
        assert_eq!(s.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(s.content_type.as_deref(), Some("application/json"));
    }
    assert_eq!(st.hec.len(), sent.len());
    for (line, alert) in st.hec.iter().zip(&sent) {
        assert!(
            line.ends_with(&format!(r#","event":{alert}}}"#)),
            "event not verbatim: {line}"
        );
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["sourcetype"], "nigehban:alert");
        assert_eq!(v["index"], "dlp");
        assert_eq!(v["host"], "sensor-لاہور");
        assert!(v["time"].as_f64().unwrap() > 1.7e9);
    }
}

#[test]
fn bulk_alerts_arrive_byte_identical_as_ndjson() {
    let rx = Receiver::start(&format!("ApiKey {API_KEY}"));
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rx.elastic_config(&secret_file(dir.path(), "es.key", API_KEY));
    cfg.max_batch = Some(100);
    let mut t = transport(&cfg, dir.path()).unwrap();
    let sent = alerts(230);
    send_all(t.as_mut(), &sent).unwrap();

    let st = rx.state();
    assert_eq!(st.seen.len(), 3);
    for s in &st.seen {
        assert!(s.target.starts_with("/_bulk?filter_path="), "{}", s.target);
        assert_eq!(s.content_type.as_deref(), Some("application/x-ndjson"));
        assert_eq!(s.content_encoding.as_deref(), Some("gzip"));
    }
    assert_eq!(st.docs, sent, "documents differ from the alerts sent");
}

#[test]
fn basic_auth_and_plain_bodies_work_too() {
    let dir = tempfile::tempdir().unwrap();
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode("nigehban:s3cret pass")
    };
    let rx = Receiver::start(&format!("Basic {basic}"));
    let mut cfg = HttpOutputConfig::new(CollectorKind::Elasticsearch, rx.url());
    cfg.user = Some("nigehban".into());
    cfg.password_file = Some(secret_file(dir.path(), "es.pass", "s3cret pass"));
    cfg.ca = Some(rx.pki.ca_path());
    cfg.gzip = false;
    let mut t = transport(&cfg, dir.path()).unwrap();
    let sent = alerts(5);
    send_all(t.as_mut(), &sent).unwrap();
    let st = rx.state();
    assert_eq!(st.seen[0].content_encoding, None);
    assert_eq!(st.docs, sent);
}

#[test]
fn hec_503_is_unavailable_then_the_retry_delivers_once() {
    let rx = Receiver::start(&format!("Splunk {HEC_TOKEN}"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = rx.hec_config(&secret_file(dir.path(), "hec.token", HEC_TOKEN));
    let mut t = transport(&cfg, dir.path()).unwrap();
    rx.state()
        .script
        .push_back(Answer::Status(503, r#"{"text":"Server is busy","code":9}"#));
    let sent = alerts(10);
    let err = send_all(t.as_mut(), &sent).unwrap_err();
    assert!(matches!(err, DeliveryError::Unavailable(_)), "{err}");
    assert!(rx.state().hec.is_empty());
    send_all(t.as_mut(), &sent).unwrap();
    assert_eq!(rx.state().hec.len(), sent.len());
}

#[test]
fn bulk_item_429_resends_the_batch_and_nothing_is_stored_twice() {
    let rx = Receiver::start(&format!("ApiKey {API_KEY}"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = rx.elastic_config(&secret_file(dir.path(), "es.key", API_KEY));
    let mut t = transport(&cfg, dir.path()).unwrap();
    rx.state().script.push_back(Answer::FailItem(3, 429));
    let sent = alerts(8);
    let err = send_all(t.as_mut(), &sent).unwrap_err();
    assert!(matches!(err, DeliveryError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("1 of 8"), "{err}");
    assert_eq!(rx.state().docs.len(), 7);
    // The delivery thread re-sends the same batch: 7 conflicts (already stored) and 1 created.
    send_all(t.as_mut(), &sent).unwrap();
    let mut stored = rx.state().docs.clone();
    stored.sort();
    let mut want = sent.clone();
    want.sort();
    assert_eq!(stored, want, "each alert stored exactly once");
}

#[test]
fn bulk_item_400_is_rejected() {
    let rx = Receiver::start(&format!("ApiKey {API_KEY}"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = rx.elastic_config(&secret_file(dir.path(), "es.key", API_KEY));
    let mut t = transport(&cfg, dir.path()).unwrap();
    rx.state().script.push_back(Answer::FailItem(0, 400));
    let err = send_all(t.as_mut(), &alerts(3)).unwrap_err();
    assert!(matches!(err, DeliveryError::Rejected(_)), "{err}");
}

#[test]
fn http_400_is_rejected_and_413_splits_the_batch() {
    let rx = Receiver::start(&format!("Splunk {HEC_TOKEN}"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = rx.hec_config(&secret_file(dir.path(), "hec.token", HEC_TOKEN));
    let mut t = transport(&cfg, dir.path()).unwrap();
    rx.state()
        .script
        .push_back(Answer::Status(400, r#"{"text":"Invalid data format","code":6}"#));
    let err = send_all(t.as_mut(), &alerts(3)).unwrap_err();
    assert!(matches!(err, DeliveryError::Rejected(_)), "{err}");

    rx.state().max_events = Some(16);
    let sent = alerts(100);
    send_all(t.as_mut(), &sent).unwrap();
    let st = rx.state();
    assert_eq!(st.hec.len(), 100);
    for (line, alert) in st.hec.iter().zip(&sent) {
        assert!(
            line.ends_with(&format!(r#","event":{alert}}}"#)),
            "order kept across splits"
        );
    }
}

#[test]
fn wrong_token_is_a_config_error() {
    let rx = Receiver::start(&format!("Splunk {HEC_TOKEN}"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = rx.hec_config(&secret_file(dir.path(), "hec.token", "not-the-token"));
    let mut t = transport(&cfg, dir.path()).unwrap();
    let err = send_all(t.as_mut(), &alerts(1)).unwrap_err();
    assert!(matches!(err, DeliveryError::Config(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("token") && !msg.contains("not-the-token"), "{msg}");

    let rx = Receiver::start(&format!("ApiKey {API_KEY}"));
    let cfg = rx.elastic_config(&secret_file(dir.path(), "es.key", "wrong-key"));
    let mut t = transport(&cfg, dir.path()).unwrap();
    let err = send_all(t.as_mut(), &alerts(1)).unwrap_err();
    assert!(matches!(err, DeliveryError::Config(_)), "{err}");
    assert!(!err.to_string().contains("wrong-key"));
}

#[test]
fn wrong_ca_is_a_config_error_that_says_what_to_fix() {
    let rx = Receiver::start(&format!("Splunk {HEC_TOKEN}"));
    let other = Pki::new("some other CA");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rx.hec_config(&secret_file(dir.path(), "hec.token", HEC_TOKEN));
    cfg.ca = Some(other.ca_path());
    let mut t = transport(&cfg, dir.path()).unwrap();
    let err = send_all(t.as_mut(), &alerts(1)).unwrap_err();
    assert!(matches!(err, DeliveryError::Config(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("UnknownIssuer") && msg.contains("--http-ca"), "{msg}");
    assert!(rx.state().seen.is_empty(), "nothing may be sent to an untrusted server");
}

#[test]
fn certificate_for_another_name_is_a_config_error() {
    let pki = Pki::new("receiver test CA");
    let tls = pki.server_config(&["siem.example"], None);
    let rx = Receiver::start_tls(pki, tls, &format!("Splunk {HEC_TOKEN}"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = rx.hec_config(&secret_file(dir.path(), "hec.token", HEC_TOKEN));
    let mut t = transport(&cfg, dir.path()).unwrap();
    let err = send_all(t.as_mut(), &alerts(1)).unwrap_err();
    assert!(matches!(err, DeliveryError::Config(_)), "{err}");
    assert!(err.to_string().contains("not valid for name"), "{err}");
}

#[test]
fn insecure_skip_verify_reaches_an_untrusted_receiver() {
    let rx = Receiver::start(&format!("Splunk {HEC_TOKEN}"));
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rx.hec_config(&secret_file(dir.path(), "hec.token", HEC_TOKEN));
    cfg.ca = None;
    cfg.insecure_skip_verify = true;
    let mut t = transport(&cfg, dir.path()).unwrap();
    send_all(t.as_mut(), &alerts(2)).unwrap();
    assert_eq!(rx.state().hec.len(), 2);
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let clients = Pki::new("client CA");
    let leaf = clients.leaf("sensor", &["nigehban-sensor"]);
    let rx = Receiver::start_with(&format!("Splunk {HEC_TOKEN}"), Some(&clients));
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rx.hec_config(&secret_file(dir.path(), "hec.token", HEC_TOKEN));
    let mut t = transport(&cfg, dir.path()).unwrap();
    let err = send_all(t.as_mut(), &alerts(1)).unwrap_err();
    assert!(matches!(err, DeliveryError::Config(_)), "{err}");
    cfg.client_cert = Some(leaf.cert_path.clone());
    cfg.client_key = Some(leaf.key_path.clone());
    let mut t = transport(&cfg, dir.path()).unwrap();
    send_all(t.as_mut(), &alerts(3)).unwrap();
    assert_eq!(rx.state().hec.len(), 3);
}

#[test]
fn refused_and_silent_receivers_are_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let token = secret_file(dir.path(), "hec.token", HEC_TOKEN);
    let pki = Pki::new("unused CA");
    // A port nobody listens on: bind, learn the port, close.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = HttpOutputConfig::new(CollectorKind::SplunkHec, format!("https://127.0.0.1:{port}"));
    cfg.token_file = Some(token.clone());
    cfg.ca = Some(pki.ca_path());
    let mut t = transport(&cfg, dir.path()).unwrap();
    let err = send_all(t.as_mut(), &alerts(1)).unwrap_err();
    assert!(matches!(err, DeliveryError::Unavailable(_)), "{err}");

    // Accepts the connection and never says a word: the timeout must end the wait.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = HttpOutputConfig::new(
        CollectorKind::SplunkHec,
        format!("https://127.0.0.1:{}", silent.local_addr().unwrap().port()),
    );
    cfg.token_file = Some(token);
    cfg.ca = Some(pki.ca_path());
    cfg.timeout_secs = Some(1);
    let mut t = transport(&cfg, dir.path()).unwrap();
    let start = std::time::Instant::now();
    let err = send_all(t.as_mut(), &alerts(1)).unwrap_err();
    assert!(matches!(err, DeliveryError::Unavailable(_)), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    drop(silent);
}
