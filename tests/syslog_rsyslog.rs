//! Syslog delivery to a real rsyslog (Debian's, ossl TLS driver) started by the test on
//! loopback: TLS with and without client certificates, plain TCP and UDP, CEF; a wrong CA and a
//! wrong server name are refused with one clear line and nothing is lost (it is spooled and
//! delivered by the next run). Needs rsyslog + rsyslog-openssl (deploy/setup-deps.sh); as root a
//! missing rsyslog fails the test.

mod common;
mod common_tls;
mod syslog_common;

use common::*;
use common_tls::Pki;
use std::time::Duration;
use syslog_common::*;

struct Case {
    dir: tempfile::TempDir,
    pcap: std::path::PathBuf,
    hashes: Vec<String>,
}

fn case(n: usize) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let (frames, hashes) = leaking_flows(0, n);
    let pcap = dir.path().join("leaks.pcap");
    nigehban::synth::write_pcap(&pcap, &frames).unwrap();
    Case { dir, pcap, hashes }
}

fn tls_listener(pki: &Pki, names: &[&str], mutual: bool) -> Listener {
    let leaf = pki.leaf("rsyslog", names);
    Listener::Tls {
        ca: pki.ca_path(),
        cert: leaf.cert_path,
        key: leaf.key_path,
        mutual,
    }
}

/// Runs `read` with alerts to a local file and to syslog; returns (file lines, run).
fn run_read(c: &Case, tag: &str, extra: &[&str]) -> (Vec<String>, Run) {
    let alerts = c.dir.path().join(format!("{tag}.json"));
    let out = read_cmd(c.dir.path(), &c.pcap, &alerts, extra).output().unwrap();
    (file_lines(&alerts), output_raw(out))
}

fn assert_all_arrived_exactly(c: &Case, sent: &[String], rs: &Rsyslog) {
    assert_eq!(
        hashes_of(sent),
        c.hashes,
        "the sensor raised one alert per leaking flow"
    );
    let got = rs.wait_lines(sent.len(), Duration::from_secs(15));
    assert_eq!(got.len(), sent.len(), "every alert arrived, once");
    // Same fan-out order for both outputs, and MSG is the alert line byte for byte.
    for (i, (g, s)) in got.iter().zip(sent).enumerate() {
        assert!(
            g == s,
            "syslog message {i} differs from the alert line written to the file"
        );
    }
}

#[test]
fn tls_server_auth_only_delivers_every_alert_exactly() {
    if !rsyslog_available() {
        return;
    }
    let c = case(200);
    let pki = Pki::new("test CA");
    let port = free_port();
    let rs = Rsyslog::start(
        c.dir.path(),
        port,
        tls_listener(&pki, &["localhost", "127.0.0.1"], false),
    );
    let url = format!("tls://localhost:{port}");
    let spool = c.dir.path().join("spool");
    let (sent, run) = run_read(
        &c,
        "a",
        &[
            "--syslog",
            &url,
            "--syslog-ca",
            pki.ca_path().to_str().unwrap(),
            "--spool-dir",
            spool.to_str().unwrap(),
        ],
    );
    assert!(run.status.success(), "{}", run.stderr);
    assert_all_arrived_exactly(&c, &sent, &rs);
    assert!(!run.stderr.contains("cannot deliver"), "{}", run.stderr);
}

#[test]
fn mutual_tls_required_by_rsyslog_works_with_a_client_certificate_and_refuses_without() {
    if !rsyslog_available() {
        return;
    }
    let c = case(150);
    let pki = Pki::new("test CA");
    let client = pki.leaf("sensor", &["sensor.test"]);
    let port = free_port();
    let rs = Rsyslog::start(c.dir.path(), port, tls_listener(&pki, &["localhost"], true));
    let url = format!("tls://localhost:{port}");
    let ca = pki.ca_path();
    let spool = c.dir.path().join("spool");
    let base = [
        "--syslog",
        &url,
        "--syslog-ca",
        ca.to_str().unwrap(),
        "--spool-dir",
        spool.to_str().unwrap(),
    ];

    // Without a certificate the receiver refuses us: nothing arrives, everything is spooled.
    let mut args = base.to_vec();
    args.extend(["--drain-timeout-secs", "2"]);
    let (sent_first, run) = run_read(&c, "nocert", &args);
    assert!(run.status.success(), "{}", run.stderr);
    assert!(
        run.stderr.contains("give --syslog-cert and --syslog-key"),
        "the refusal is explained: {}",
        run.stderr
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(rs.lines().is_empty(), "nothing delivered without a client certificate");

    // With one: the spooled alerts of the first run arrive first, then this run's.
    let mut args = base.to_vec();
    args.extend([
        "--syslog-cert",
        client.cert_path.to_str().unwrap(),
        "--syslog-key",
        client.key_path.to_str().unwrap(),
    ]);
    let (sent_second, run) = run_read(&c, "cert", &args);
    assert!(run.status.success(), "{}", run.stderr);
    let want: Vec<String> = sent_first.iter().chain(&sent_second).cloned().collect();
    let got = rs.wait_lines(want.len(), Duration::from_secs(15));
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "spooled alerts first, then live ones, each exactly as written"
    );
}

fn refused_then_delivered(server_names: &[&str], wrong_ca: bool, server_name_flag: Option<&str>, needle: &str) {
    let c = case(60);
    let pki = Pki::new("right CA");
    let other = Pki::new("wrong CA");
    let port = free_port();
    let rs = Rsyslog::start(c.dir.path(), port, tls_listener(&pki, server_names, false));
    let url = format!("tls://localhost:{port}");
    let spool = c.dir.path().join("spool");
    let bad_ca = if wrong_ca { other.ca_path() } else { pki.ca_path() };
    let mut args = vec![
        "--syslog",
        &url,
        "--spool-dir",
        spool.to_str().unwrap(),
        "--drain-timeout-secs",
        "1",
    ];
    args.extend(["--syslog-ca", bad_ca.to_str().unwrap()]);
    if let Some(n) = server_name_flag {
        args.extend(["--syslog-server-name", n]);
    }
    let (sent, run) = run_read(&c, "bad", &args);
    assert!(run.status.success(), "{}", run.stderr);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line saying '{needle}': {}", run.stderr));
    assert!(
        line.contains(&format!("tls://localhost:{port}")),
        "the error names the receiver: {line}"
    );
    assert!(
        rs.lines().is_empty(),
        "nothing sent over a connection that failed verification"
    );
    assert_eq!(sent.len(), 60);

    // Fixed configuration, next start, nothing new to read: the spool is delivered.
    let empty = c.dir.path().join("empty.pcap");
    nigehban::synth::write_pcap(&empty, &[]).unwrap();
    let alerts = c.dir.path().join("second.json");
    let ca = pki.ca_path();
    let out = read_cmd(
        c.dir.path(),
        &empty,
        &alerts,
        &[
            "--syslog",
            &url,
            "--syslog-ca",
            ca.to_str().unwrap(),
            "--spool-dir",
            spool.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_all_arrived_exactly(&c, &sent, &rs);
}

#[test]
fn wrong_ca_is_refused_with_one_clear_line_and_spooled() {
    if !rsyslog_available() {
        return;
    }
    refused_then_delivered(&["localhost"], true, None, "not signed by a trusted CA");
}

#[test]
fn wrong_server_name_is_refused_with_one_clear_line_and_spooled() {
    if !rsyslog_available() {
        return;
    }
    refused_then_delivered(
        &["localhost"],
        false,
        Some("siem.wrong.example"),
        "not valid for the name",
    );
}

#[test]
fn plain_tcp_delivers_every_alert_exactly() {
    if !rsyslog_available() {
        return;
    }
    let c = case(200);
    let port = free_port();
    let rs = Rsyslog::start(c.dir.path(), port, Listener::Tcp);
    let (sent, run) = run_read(&c, "t", &["--syslog", &format!("tcp://127.0.0.1:{port}")]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_all_arrived_exactly(&c, &sent, &rs);
}

#[test]
fn udp_delivers_every_alert_exactly() {
    if !rsyslog_available() {
        return;
    }
    // Few enough that loopback UDP buffers cannot overflow: UDP itself promises nothing.
    let c = case(40);
    let port = free_port();
    let rs = Rsyslog::start(c.dir.path(), port, Listener::Udp);
    let (sent, run) = run_read(&c, "u", &["--syslog", &format!("udp://127.0.0.1:{port}")]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_all_arrived_exactly(&c, &sent, &rs);
}

#[test]
fn cef_format_reaches_rsyslog_as_one_cef_record_per_alert() {
    if !rsyslog_available() {
        return;
    }
    let c = case(30);
    let port = free_port();
    let rs = Rsyslog::start(c.dir.path(), port, Listener::Tcp);
    let (sent, run) = run_read(
        &c,
        "c",
        &["--syslog", &format!("tcp://127.0.0.1:{port}"), "--syslog-format", "cef"],
    );
    assert!(run.status.success(), "{}", run.stderr);
    let got = rs.wait_lines(sent.len(), Duration::from_secs(15));
    assert_eq!(got.len(), sent.len());
    let mut hashes: Vec<String> = Vec::new();
    for l in &got {
        assert!(l.starts_with("CEF:0|Nigehban|Nigehban|"), "{l}");
        let cs3 = l.split(" cs3=").nth(1).unwrap().split(' ').next().unwrap();
        hashes.extend(cs3.split(',').map(String::from));
    }
    for i in 0..30 {
        let digits: String = cnic(i).chars().filter(char::is_ascii_digit).collect();
        assert!(
            got.iter().all(|l| !l.contains(&cnic(i)) && !l.contains(&digits)),
            "a clear CNIC reached the CEF output"
        );
    }
    hashes.sort();
    assert_eq!(hashes, c.hashes);
}
