//! Helpers for the operations tests (tests/ops.rs, tests/prometheus.rs): a sensor started in a
//! network namespace with its output in files (so tests can read it while it runs), traffic that
//! carries known synthetic values, and HTTP(S) fetches from inside the namespace.
#![allow(dead_code)]

use crate::common::netns::*;
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A sensor whose stdout and stderr go to files in `dir`.
pub struct Sensor {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Sensor {
    /// `nigehban capture` on the veth in namespace `a` with `args` (no defaults beyond the
    /// interface, rules and workers); returns once `url` (inside `a`) answers anything.
    pub fn start(ns: &Netns, dir: &Path, args: &[&str], health_url: &str) -> Sensor {
        let stdout = dir.join("sensor.out");
        let stderr = dir.join("sensor.err");
        let child = ns
            .exec(
                &ns.a,
                bin(),
                &[
                    "capture",
                    "--interface",
                    A_DEV,
                    "--workers",
                    "1",
                    "--rules",
                    rules_dir().to_str().unwrap(),
                ],
            )
            .args(args)
            .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .unwrap();
        let mut s = Sensor { child, stdout, stderr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while fetch(ns, health_url, None, None).is_err() {
            if let Some(st) = s.child.try_wait().unwrap() {
                panic!("sensor exited ({st}): {}", s.stderr_text());
            }
            assert!(
                Instant::now() < deadline,
                "sensor never answered on {health_url}: {}",
                s.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        s
    }

    /// A sensor serving /metrics over HTTPS on 127.0.0.1:`port` with `leaf`'s certificate,
    /// asking for the bearer token in the file `token`; alerts on stdout.
    pub fn start_tls_metrics(
        ns: &Netns,
        dir: &Path,
        port: u16,
        leaf: &crate::common_tls::Leaf,
        token: &Path,
    ) -> Sensor {
        let listen = format!("127.0.0.1:{port}");
        Sensor::start(
            ns,
            dir,
            &[
                "--home-net",
                "10.99.0.1/32",
                "--metrics-listen",
                &listen,
                "--metrics-tls-cert",
                leaf.cert_path.to_str().unwrap(),
                "--metrics-tls-key",
                leaf.key_path.to_str().unwrap(),
                "--metrics-bearer-token-file",
                token.to_str().unwrap(),
                "--alerts",
                "-",
            ],
            &format!("https://{listen}/healthz"),
        )
    }

    /// The sensor's own pid: the child itself, or under the suite's audit wrapper
    /// (`tests/audit/nigehban-audit.sh`) the wrapper's `nigehban` child.
    pub fn pid(&self) -> u32 {
        let id = self.child.id();
        let comm = |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm(&id.to_string()).trim() == "nigehban" {
            return id;
        }
        let children = std::fs::read_to_string(format!("/proc/{id}/task/{id}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .find(|c| comm(c).trim() == "nigehban")
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no nigehban process under pid {id}"))
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM; waits for a clean exit; returns (stdout, stderr).
    pub fn stop(mut self) -> (String, String) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "sensor did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        let err = self.stderr_text();
        assert!(status.success(), "sensor failed: {err}");
        (std::fs::read_to_string(&self.stdout).unwrap(), err)
    }
}

const FETCH: &str = r#"
import ssl, sys, urllib.request, urllib.error
url, ca, token = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca) if ca else ssl._create_unverified_context()
req = urllib.request.Request(url)
if token:
    req.add_header("Authorization", "Bearer " + token)
try:
    r = urllib.request.urlopen(req, timeout=3, context=ctx)
    print(r.status); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); sys.stdout.write(e.read().decode())
"#;

/// GET `url` from inside namespace `a`: Ok((status, body)), or Err(what failed) when no HTTP
/// answer came (connection refused, TLS verification failed). Without `ca`, HTTPS is unverified.
pub fn fetch(ns: &Netns, url: &str, ca: Option<&Path>, token: Option<&str>) -> Result<(u16, String), String> {
    let ca = ca.map(|p| p.to_str().unwrap().to_string()).unwrap_or_default();
    let out = ns
        .exec(&ns.a, "python3", &["-c", FETCH, url, &ca, token.unwrap_or("")])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, body) = text.split_once('\n').unwrap_or((&text, ""));
    Ok((code.trim().parse().unwrap(), body.to_string()))
}

const SERVER: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.99.0.2", 8080)); s.listen(8)
print("ready", flush=True)
c, _ = s.accept()
while c.recv(65536): pass
c.sendall(b"ok"); c.close()
"#;

const CLIENT: &str = r#"
import socket, sys
c = socket.create_connection(("10.99.0.2", 8080))
c.sendall(sys.stdin.buffer.read()); c.shutdown(socket.SHUT_WR); c.recv(10); c.close()
"#;

/// The synthetic CNIC the traffic carries.
pub const CNIC: &str = "35202-1234567-2";

/// One HTTP POST from `a` to `b` carrying [`CNIC`] (synthetic), over a real TCP connection.
pub fn send_cnic(ns: &Netns) {
    use std::io::Write;
    let mut server = ns.start_server(SERVER, &[]);
    let mut client = ns.start_client(CLIENT, Stdio::inherit());
    let body = format!("cnic={CNIC}");
    let req = format!(
        "POST /kyc HTTP/1.1\r\nHost: 10.99.0.2\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    client.stdin.take().unwrap().write_all(req.as_bytes()).unwrap();
    assert!(client.wait().unwrap().success());
    assert!(server.wait().unwrap().success());
}

/// Waits until `cond` holds for the sensor's /metrics text (fetched through `url`).
pub fn wait_metrics(
    ns: &Netns,
    url: &str,
    ca: Option<&Path>,
    token: Option<&str>,
    cond: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, text)) = fetch(ns, url, ca, token) {
            if cond(&text) {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "metrics condition never held at {url}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
