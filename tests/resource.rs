//! Resource attacks and bypass through the real worker pipeline (decode → flow table →
//! reassembly → l7 → matcher → judge → alerts), in process so the Prometheus registry can be
//! read: floods stay under the configured caps, every cap hit is counted, the sensor keeps
//! working, and a real leak sent after the flood is still alerted. Encrypted flows and flows
//! past the depth are bypassed and counted, and a fake handshake cannot hide cleartext.
//! Assertions are on metrics and alert output only, never on timings.

mod common;

use common::{expected_hash, rules_dir, sa, t, KEY};
use crossbeam_channel::Receiver;
use nigehban::cli::{self, CommonArgs, HomeNet};
use nigehban::decode::{Decoder, LinkType};
use nigehban::metrics::Metrics;
use nigehban::pii::PiiKey;
use nigehban::pipeline::{Batch, Worker, WorkerShared};
use nigehban::synth::{self, Flags, Frame, TcpConn};
use std::io::Write;
use std::sync::Arc;

const CNIC: &str = "35202-1234567-2";
const MIB: f64 = 1024.0 * 1024.0;

/// One worker of the real pipeline with its metrics and alert channel.
struct Sensor {
    worker: Worker,
    /// What the capture thread would do with each frame.
    decoder: Decoder,
    home: HomeNet,
    metrics: Arc<Metrics>,
    alerts: Receiver<String>,
    /// Highest flow-memory and out-of-order gauges seen after any batch.
    peak_flow_mem: f64,
    peak_ooo: f64,
}

impl Sensor {
    /// A sensor with `toml` as its config file (one worker, so caps are not divided).
    fn new(toml: &str) -> Sensor {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("n.toml");
        std::fs::write(&cfg, toml).unwrap();
        let common = CommonArgs {
            config: Some(cfg),
            workers: Some(1),
            metrics_listen: Some("off".into()),
            alerts: Some("-".into()),
            rules: Some(rules_dir()),
            ..CommonArgs::default()
        };
        let settings = cli::settings(None, &common).unwrap();
        let key = PiiKey::new(KEY);
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = crossbeam_channel::unbounded();
        let judge = Arc::new(nigehban::judge::Judge::from_settings(&settings, &key).unwrap());
        let shared = Arc::new(WorkerShared::new(
            &settings,
            Arc::new(nigehban::pipeline::LiveRules::new(
                nigehban::app::load_matcher(&settings.rules_dir).unwrap(),
            )),
            key,
            judge,
            Arc::clone(&metrics),
            tx,
        ));
        Sensor {
            worker: Worker::new(0, shared).unwrap(),
            decoder: Decoder::new(settings.defrag.clone()),
            home: settings.home_net.clone(),
            metrics,
            alerts: rx,
            peak_flow_mem: 0.0,
            peak_ooo: 0.0,
        }
    }

    /// Feeds frames in batches of 64, recording the memory gauges after each batch.
    fn feed(&mut self, frames: impl IntoIterator<Item = Frame>) {
        let mut batch = Batch::default();
        let mut frames = frames.into_iter().peekable();
        while frames.peek().is_some() {
            for f in frames.by_ref().take(64) {
                batch.push_frame(&mut self.decoder, &self.home, f.ts, LinkType::Ethernet, &f.data);
            }
            self.worker.batch(&batch);
            batch.clear();
            self.peak_flow_mem = self
                .peak_flow_mem
                .max(self.value("nigehban_flow_memory_bytes{worker=\"0\"}"));
            self.peak_ooo = self
                .peak_ooo
                .max(self.value("nigehban_reassembly_ooo_bytes{worker=\"0\"}"));
        }
    }

    /// Ends every flow and returns the alert lines raised so far.
    fn finish(&mut self) -> Vec<serde_json::Value> {
        self.worker.shutdown();
        self.alerts
            .try_iter()
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect()
    }

    /// The value of one exposition series (`name{labels}`), 0 if absent.
    fn value(&self, series: &str) -> f64 {
        self.metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

/// Hashes of every value reported in `alerts`.
fn hashes(alerts: &[serde_json::Value]) -> Vec<String> {
    alerts
        .iter()
        .flat_map(|a| a["pii"]["matches"].as_array().unwrap().iter())
        .map(|m| m["hash"].as_str().unwrap().to_string())
        .collect()
}

/// A whole egress conversation from `client` carrying `payload` in MSS segments.
fn conn(client: &str, payload: &[u8], start: u64) -> Vec<Frame> {
    let mut c = TcpConn::new(sa(client), sa("203.0.113.10:8080"), 7_000, 9_000, t(start));
    let mut f = c.handshake();
    f.extend(c.send(true, payload));
    f.extend(c.close());
    f
}

fn leak_body() -> Vec<u8> {
    format!("POST /kyc HTTP/1.1\r\nHost: x.example\r\nContent-Length: 30\r\n\r\ncnic={CNIC}&ok=1234567").into_bytes()
}

/// The leak sent after a flood must be alerted, once, with its keyed hash only.
fn assert_leak_alerted(alerts: &[serde_json::Value]) {
    assert!(
        hashes(alerts).contains(&expected_hash(CNIC)),
        "the leak after the flood was missed"
    );
    let text = serde_json::to_string(alerts).unwrap();
    assert!(!text.contains(CNIC), "a clear value appeared in an alert");
}

/// Deterministic pseudo-random numbers (xorshift), so floods need no extra crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn a_syn_flood_is_held_under_the_flow_memcap_and_a_later_leak_is_alerted() {
    let mut s = Sensor::new("[flow]\nmemcap_mb = 1\n");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let syns = (0..60_000u64).map(|i| {
        let r = rng.next();
        let src = format!(
            "10.{}.{}.{}:{}",
            r as u8,
            (r >> 8) as u8,
            (r >> 16) as u8,
            1024 + (r >> 24) as u16 % 60000
        );
        Frame {
            ts: t(i * 10),
            data: synth::tcp_frame(sa(&src), sa("203.0.113.10:443"), r as u32, 0, Flags::SYN, &[], &[]),
        }
    });
    s.feed(syns);
    assert!(
        s.peak_flow_mem <= MIB,
        "flow memory {} above the 1 MiB cap",
        s.peak_flow_mem
    );
    let evicted = s.value("nigehban_flows_ended_total{reason=\"memcap_evicted\"}");
    assert!(evicted > 40_000.0, "evictions counted: {evicted}");
    s.feed(conn("10.200.0.1:40000", &leak_body(), 700_000));
    let alerts = s.finish();
    assert_leak_alerted(&alerts);
    assert_eq!(s.value("nigehban_flows_created_total{transport=\"tcp\"}"), 60_001.0);
}

#[test]
fn many_tiny_flows_with_open_matcher_streams_stay_under_the_memcap() {
    let mut s = Sensor::new("[flow]\nmemcap_mb = 2\n");
    // Each flow sends a few bytes and never closes: its Hyperscan stream stays open.
    let flows = (0..8_000u64).flat_map(|i| {
        let client = format!("10.1.{}.{}:{}", i / 250, i % 250, 20000 + i % 1000);
        let mut c = TcpConn::new(sa(&client), sa("203.0.113.10:8080"), 1, 2, t(i * 100));
        let mut f = c.handshake();
        f.extend(c.segments(true, b"hi there", &[8]));
        f
    });
    s.feed(flows);
    assert!(
        s.peak_flow_mem <= 2.0 * MIB,
        "flow memory {} above the 2 MiB cap",
        s.peak_flow_mem
    );
    assert!(s.value("nigehban_flows_ended_total{reason=\"memcap_evicted\"}") > 1_000.0);
    s.feed(conn("10.200.0.2:40000", &leak_body(), 5_000_000));
    assert_leak_alerted(&s.finish());
}

#[test]
fn endless_tiny_out_of_order_segments_stay_under_the_reassembly_memcap() {
    let mut s = Sensor::new(
        "[reassembly]\nmemcap_mb = 1\nmax_ooo_bytes_per_stream = 65536\nmax_ooo_segments_per_stream = 64\n",
    );
    // 200 flows, each leaving its first byte out and then sending 1-byte segments at every
    // other offset: every segment opens a new hole.
    let mut frames = Vec::new();
    for i in 0..200u32 {
        let client = format!("10.2.0.{}:{}", i % 250, 30000 + i);
        let mut c = TcpConn::new(sa(&client), sa("203.0.113.10:8080"), 100, 200, t(u64::from(i)));
        frames.extend(c.handshake());
        let base = c.client_seq;
        for k in 0..2_000u32 {
            frames.push(c.frame_at(true, base.wrapping_add(1 + 2 * k), Flags::ACK, b"x"));
        }
    }
    s.feed(frames);
    assert!(
        s.peak_ooo <= MIB,
        "out-of-order bytes {} above the 1 MiB cap",
        s.peak_ooo
    );
    assert!(s.peak_ooo > 0.0, "the attack held something");
    let gaps = s.value("nigehban_reassembly_gaps_total");
    assert!(gaps > 1_000.0, "per-stream segment cap skips holes, counted: {gaps}");
    s.feed(conn("10.200.0.3:40000", &leak_body(), 10_000_000));
    assert_leak_alerted(&s.finish());
    assert_eq!(
        s.value("nigehban_reassembly_ooo_bytes{worker=\"0\"}"),
        0.0,
        "budget returned"
    );
}

#[test]
fn a_flood_of_one_byte_segments_in_one_flow_still_finds_the_value_inside_it() {
    let mut s = Sensor::new("");
    let mut body = vec![b'a'; 100_000];
    body.extend_from_slice(format!(" cnic {CNIC} ").as_bytes());
    body.extend(std::iter::repeat_n(b'b', 100_000));
    let mut c = TcpConn::new(sa("10.3.0.1:40000"), sa("203.0.113.10:9000"), 5, 6, t(0));
    let mut frames = c.handshake();
    frames.extend(c.segments(true, &body, &[1]));
    frames.extend(c.close());
    s.feed(frames);
    assert_eq!(s.peak_ooo, 0.0);
    assert_leak_alerted(&s.finish());
}

#[test]
fn a_decompression_bomb_is_counted_and_a_later_request_on_the_same_connection_is_scanned() {
    use flate2::write::GzEncoder;
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..256 {
        gz.write_all(&[b'0'; 1 << 20]).unwrap();
    }
    let bomb = gz.finish().unwrap();
    let mut stream = format!(
        "POST /up HTTP/1.1\r\nHost: x.example\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        bomb.len()
    )
    .into_bytes();
    stream.extend_from_slice(&bomb);
    stream.extend_from_slice(&leak_body());
    let mut s = Sensor::new("");
    s.feed(conn("10.4.0.1:40000", &stream, 0));
    let alerts = s.finish();
    assert_eq!(s.value("nigehban_l7_events_total{event=\"decompression_bomb\"}"), 1.0);
    assert_leak_alerted(&alerts);
}

#[test]
fn a_huge_header_is_counted_and_a_later_request_on_the_same_connection_is_scanned() {
    let mut stream = b"GET / HTTP/1.1\r\nHost: x.example\r\nX-Junk: ".to_vec();
    stream.extend(std::iter::repeat_n(b'j', 1 << 20));
    stream.extend_from_slice(b"\r\n\r\n");
    stream.extend_from_slice(&leak_body());
    let mut s = Sensor::new("");
    s.feed(conn("10.4.0.2:40000", &stream, 0));
    let alerts = s.finish();
    assert!(s.value("nigehban_l7_events_total{event=\"header_too_large\"}") >= 1.0);
    assert_leak_alerted(&alerts);
}

#[test]
fn deeply_nested_mime_is_counted_and_a_leak_in_another_flow_is_found() {
    let mut mime = String::new();
    for d in 0..64 {
        mime += &format!("Content-Type: multipart/mixed; boundary=\"b{d}\"\r\n\r\n--b{d}\r\n");
    }
    mime += "Content-Type: text/plain\r\n\r\nhello\r\n";
    let smtp = format!(
        "EHLO a.example\r\nMAIL FROM:<a@a.example>\r\nRCPT TO:<b@b.example>\r\nDATA\r\nSubject: x\r\n{mime}\r\n.\r\nQUIT\r\n"
    );
    let mut c = TcpConn::new(sa("10.4.0.3:40000"), sa("203.0.113.10:25"), 1, 2, t(0));
    let mut frames = c.handshake();
    frames.extend(c.send(true, smtp.as_bytes()));
    frames.extend(c.close());
    let mut s = Sensor::new("");
    s.feed(frames);
    s.feed(conn("10.4.0.4:40000", &leak_body(), 1_000_000));
    let alerts = s.finish();
    assert!(s.value("nigehban_l7_events_total{event=\"nesting_too_deep\"}") >= 1.0);
    assert_leak_alerted(&alerts);
}

/// A TLS record: content type, version 3.3, body.
fn record(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![kind, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

#[test]
fn tls_after_its_handshake_is_bypassed_and_counted() {
    let hello = record(22, &[1u8; 512]);
    // Bytes after the handshake are never scanned, even if they look like a value.
    let secret: Vec<u8> = (0..200)
        .flat_map(|_| record(23, format!("cnic={CNIC} ").as_bytes()))
        .collect();
    let mut c = TcpConn::new(sa("10.5.0.1:40000"), sa("203.0.113.10:443"), 1, 2, t(0));
    let mut frames = c.handshake();
    frames.extend(c.send(true, &hello));
    // An out-of-order tail is held until the bypass, then dropped with its budget returned.
    let seq = c.client_seq;
    frames.push(c.frame_at(true, seq.wrapping_add(100_000), Flags::ACK, b"held out of order"));
    let mut s = Sensor::new("");
    s.feed(frames);
    let mut frames = c.send(true, &record(20, &[1]));
    frames.extend(c.send(true, &secret));
    frames.extend(c.close());
    s.feed(frames);
    let alerts = s.finish();
    assert!(hashes(&alerts).is_empty(), "encrypted bytes were scanned");
    assert_eq!(
        s.value("nigehban_flows_bypassed_total{protocol=\"tls\",reason=\"encrypted\"}"),
        1.0
    );
    assert_eq!(
        s.value("nigehban_bypassed_bytes_total{protocol=\"tls\",reason=\"encrypted\"}"),
        secret.len() as f64
    );
    assert_eq!(s.peak_ooo, 17.0, "the tail was held before the bypass");
    assert_eq!(s.value("nigehban_reassembly_ooo_bytes{worker=\"0\"}"), 0.0);
    assert_eq!(
        s.value("nigehban_reassembly_gaps_total"),
        0.0,
        "dropped, not skipped as a gap"
    );
    assert_eq!(
        s.value("nigehban_flows_ended_total{reason=\"closed\"}"),
        1.0,
        "FIN still ends it"
    );
    let scanned = s.value("nigehban_scanned_bytes_total");
    assert!(scanned < 1_000.0, "only the handshake was scanned: {scanned}");
}

#[test]
fn a_fake_tls_start_followed_by_cleartext_is_scanned_and_alerted() {
    let mut stream = record(22, &[1u8; 40]);
    stream.extend_from_slice(&leak_body());
    stream.extend_from_slice(&record(20, &[1]));
    let mut s = Sensor::new("");
    s.feed(conn("10.5.0.2:40000", &stream, 0));
    let alerts = s.finish();
    assert_leak_alerted(&alerts);
    assert_eq!(
        s.value("nigehban_flows_bypassed_total{protocol=\"tls\",reason=\"encrypted\"}"),
        0.0
    );
}

#[test]
fn quic_flows_are_bypassed_and_other_udp_is_scanned() {
    let mut initial = vec![0xc3, 0, 0, 0, 1, 8];
    initial.extend_from_slice(format!("12345678 cnic {CNIC} ").as_bytes());
    let short = format!("\x41 cnic {CNIC} ").into_bytes();
    let (client, server) = (sa("10.6.0.1:50000"), sa("203.0.113.10:443"));
    let mut frames = vec![Frame {
        ts: t(0),
        data: synth::udp_frame(client, server, &initial),
    }];
    for i in 1..10 {
        frames.push(Frame {
            ts: t(i),
            data: synth::udp_frame(client, server, &short),
        });
    }
    // Cleartext UDP to another port is still scanned.
    frames.push(Frame {
        ts: t(20),
        data: synth::udp_frame(
            sa("10.6.0.2:50001"),
            sa("203.0.113.10:5140"),
            format!("cnic={CNIC}").as_bytes(),
        ),
    });
    let mut s = Sensor::new("");
    s.feed(frames);
    let alerts = s.finish();
    assert_eq!(
        hashes(&alerts),
        vec![expected_hash(CNIC)],
        "only the cleartext datagram alerts"
    );
    assert_eq!(
        s.value("nigehban_flows_bypassed_total{protocol=\"quic\",reason=\"encrypted\"}"),
        1.0
    );
    let bytes = (initial.len() + 9 * short.len()) as f64;
    assert_eq!(
        s.value("nigehban_bypassed_bytes_total{protocol=\"quic\",reason=\"encrypted\"}"),
        bytes
    );
}

#[test]
fn stream_depth_bypasses_the_rest_of_a_flow() {
    let mut early = leak_body();
    early.extend(std::iter::repeat_n(b' ', 3000));
    let late_value = "4532 0173 9246 5814";
    early.extend_from_slice(format!("card={late_value}\n").as_bytes());
    let mut s = Sensor::new("[flow]\nstream_depth = 2000\n");
    s.feed(conn("10.7.0.1:40000", &early, 0));
    let alerts = s.finish();
    assert_eq!(
        hashes(&alerts),
        vec![expected_hash(CNIC)],
        "the value past the depth is not inspected"
    );
    assert_eq!(
        s.value("nigehban_flows_bypassed_total{protocol=\"http\",reason=\"depth\"}"),
        1.0
    );
    assert!(s.value("nigehban_bypassed_bytes_total{protocol=\"http\",reason=\"depth\"}") > 0.0);
}

/// Low-confidence findings (timestamps) are counted where the matcher reports them when the
/// judge needs no facts to call them below the minimum. The counts and the alerts must be those
/// the judge gives when it does need facts (an allow-list is configured, so every finding goes
/// through it).
#[test]
fn below_minimum_findings_are_counted_the_same_with_or_without_the_judge() {
    let mut body = String::from("[");
    for i in 0..40u64 {
        body.push_str(&format!("{{\"ts\":{},\"id\":{i}}},", 1_732_000_000_000u64 + i * 7_919));
    }
    body.push_str(&format!("{{\"cnic\":\"{CNIC}\"}}]"));
    let request = format!(
        "POST /events HTTP/1.1\r\nHost: x.example\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let frames = || {
        let mut f = conn("10.7.0.1:40000", request.as_bytes(), 0);
        f.push(Frame {
            ts: t(30),
            data: synth::udp_frame(
                sa("10.7.0.2:50001"),
                sa("203.0.113.10:5140"),
                b"t=1732000000123 u=1732000000456",
            ),
        });
        f
    };
    let series = "nigehban_pii_below_min_confidence_total{rule=\"NGB-CNIC-002\"}";
    let mut results = Vec::new();
    for toml in ["", "[allow]\ndestinations = [\"192.0.2.0/24\"]\n"] {
        let mut s = Sensor::new(toml);
        s.feed(frames());
        let alerts = s.finish();
        assert_leak_alerted(&alerts);
        results.push((s.value(series), hashes(&alerts)));
    }
    assert_eq!(results[0].0, 42.0, "40 timestamps over TCP and 2 over UDP");
    assert_eq!(results[0], results[1]);
}
