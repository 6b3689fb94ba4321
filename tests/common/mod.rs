//! Shared helpers for the integration tests: build captures, run the real binary, read alerts.
#![allow(dead_code)]

use nigehban::clock::Timestamp;
use nigehban::synth::{self, Frame, TcpConn};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

pub mod netns;

/// Waits up to `within` for `child` to exit: its status, or `None` if it is still running.
pub fn exited_within(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The key every test uses, so hashes can be computed independently.
pub const KEY: &[u8] = b"nigehban-test-key";

/// The binary under test; while `deploy/test.sh` audits the suite's outputs for personal data
/// (`NIGEHBAN_TEST_AUDIT_DIR` set), a wrapper that runs it and keeps a copy of what it wrote.
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("NIGEHBAN_TEST_AUDIT_DIR") {
        Some(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/tests/audit/nigehban-audit.sh").to_string(),
        None => env!("CARGO_BIN_EXE_nigehban").to_string(),
    })
}

pub fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn t(micros: u64) -> Timestamp {
    Timestamp::from_micros(1_763_769_600_000_000 + micros)
}

/// Expected keyed hash of a value's digits, computed here independently of the sensor.
pub fn expected_hash(digits: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY).unwrap();
    let d: String = digits.chars().filter(|c| c.is_ascii_digit()).collect();
    mac.update(d.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub struct Run {
    pub alerts: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
    pub status: std::process::ExitStatus,
}

impl Run {
    /// (type, hash) of every reported value, in order.
    pub fn values(&self) -> Vec<(String, String)> {
        self.alerts
            .iter()
            .flat_map(|a| a["pii"]["matches"].as_array().unwrap().iter())
            .map(|m| {
                (
                    m["type"].as_str().unwrap().to_string(),
                    m["hash"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
    pub fn hashes(&self) -> Vec<String> {
        let mut v: Vec<_> = self.values().into_iter().map(|(_, h)| h).collect();
        v.sort();
        v
    }
}

pub fn write_key(dir: &Path) -> PathBuf {
    let p = dir.join("key");
    std::fs::write(&p, [KEY, b"\n"].concat()).unwrap();
    // the sensor refuses world-readable key files
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    p
}

/// Writes `frames` to a pcap in `dir` and runs `nigehban read` on it with extra args.
pub fn read_frames(frames: &[Frame], extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("t.pcap");
    synth::write_pcap(&pcap, frames).unwrap();
    read_files(dir.path(), &[pcap.as_path()], extra)
}

pub fn read_files(dir: &Path, files: &[&Path], extra: &[&str]) -> Run {
    let key = write_key(dir);
    let mut cmd = Command::new(bin());
    cmd.arg("read");
    for f in files {
        cmd.arg(f);
    }
    cmd.args(["--metrics-listen", "off", "--alerts", "-", "--workers", "2"])
        .arg("--pii-key-file")
        .arg(&key)
        .arg("--rules")
        .arg(rules_dir());
    cmd.args(extra);
    output_to_run(cmd.output().unwrap())
}

/// Like [`output_to_run`] for commands whose stdout is not alerts.
pub fn output_raw(out: Output) -> Run {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Run {
        alerts: Vec::new(),
        stdout,
        stderr,
        status: out.status,
    }
}

/// The run of a live sensor from its collected stdout and stderr, once it exited cleanly.
pub fn stopped_run(stdout: String, stderr: String) -> Run {
    output_to_run(Output {
        status: Default::default(),
        stdout: stdout.into_bytes(),
        stderr: stderr.into_bytes(),
    })
}

pub fn output_to_run(out: Output) -> Run {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let alerts = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("alert line is not JSON ({e}): {l}")))
        .collect();
    Run {
        alerts,
        stdout,
        stderr,
        status: out.status,
    }
}

/// A full egress TCP conversation from an inside client carrying `payload`, cut by `sizes`.
pub fn egress_conn(port: u16, payload: &[u8], sizes: &[usize], start: u64) -> Vec<Frame> {
    let mut c = TcpConn::new(
        sa(&format!("10.0.0.5:{port}")),
        sa("203.0.113.10:443"),
        1_000_000 + u32::from(port),
        77,
        t(start),
    );
    let mut f = c.handshake();
    f.extend(c.segments(true, payload, sizes));
    f.extend(c.close());
    f
}

/// Expected keyed hash of a value in any of its written forms, normalised as the sensor does:
/// upper-case alphanumerics for an IBAN (a value with letters), digits only otherwise.
pub fn hash_of(value: &str) -> String {
    use hmac::{Hmac, Mac};
    let norm: String = if value.chars().any(|c| c.is_ascii_alphabetic()) {
        value
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect()
    } else {
        value.chars().filter(char::is_ascii_digit).collect()
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY).unwrap();
    mac.update(norm.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Writes `values` as the `cnic` column of a customer CSV in `dir` and turns it into a
/// known-value list with the real `nigehban hash-list` and the test key; returns the list's path.
pub fn hash_list(dir: &Path, values: &[String]) -> PathBuf {
    try_hash_list(dir, values).unwrap_or_else(|e| panic!("{e}"))
}

/// [`hash_list`], returning hash-list's complaint instead of panicking.
pub fn try_hash_list(dir: &Path, values: &[String]) -> Result<PathBuf, String> {
    let csv = dir.join("known.csv");
    let mut text = String::from("customer_id,name,cnic\n");
    for (i, v) in values.iter().enumerate() {
        text.push_str(&format!("{},Customer {i},{v}\n", 7001 + i));
    }
    std::fs::write(&csv, text).unwrap();
    let key = write_key(dir);
    let out_path = dir.join("known.hashes");
    let out = Command::new(bin())
        .arg("hash-list")
        .arg("--input")
        .arg(&csv)
        .arg("--column")
        .arg("cnic")
        .arg("--pii-key-file")
        .arg(&key)
        .arg("--output")
        .arg(&out_path)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!(
            "nigehban hash-list failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out_path)
}
