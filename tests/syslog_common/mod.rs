//! A real rsyslog started by the test on loopback (own config, work dir, pid file, port), and
//! captures whose every flow leaks one distinct CNIC.
#![allow(dead_code)]

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when rsyslogd can run here. As root (CI) a missing rsyslog FAILS the test, so the
/// suite cannot pass without exercising it; elsewhere the test is skipped with a message.
pub fn rsyslog_available() -> bool {
    let found = Path::new("/usr/sbin/rsyslogd").exists();
    if !found {
        assert!(
            !is_root(),
            "rsyslogd is not installed: run deploy/setup-deps.sh (packages rsyslog, rsyslog-openssl)"
        );
        eprintln!("SKIP: rsyslogd not installed and not root (install rsyslog and rsyslog-openssl to run this test)");
    }
    found
}

/// A free TCP/UDP port on loopback (bound and released; good enough for a test).
pub fn free_port() -> u16 {
    let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    t.local_addr().unwrap().port()
}

#[derive(Clone)]
pub enum Listener {
    Tcp,
    Udp,
    /// TLS with the ossl driver; `mutual` requires a client certificate signed by `ca`.
    Tls {
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
        mutual: bool,
    },
}

pub struct Rsyslog {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    listener: Listener,
    /// Network namespace to run in (`ip netns exec`), loopback otherwise.
    pub netns: Option<String>,
}

/// Runs `f` on a thread that has joined network namespace `ns` (sockets it creates live there).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns on a valid namespace descriptor; affects only this thread.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread panicked")
}

impl Rsyslog {
    /// Starts rsyslogd writing each message's MSG part, one per line, to `dir/out.log`.
    pub fn start(dir: &Path, port: u16, listener: Listener) -> Rsyslog {
        Self::start_in(dir, port, listener, None)
    }

    /// Like [`Rsyslog::start`], inside network namespace `netns` when given.
    pub fn start_in(dir: &Path, port: u16, listener: Listener, netns: Option<&str>) -> Rsyslog {
        let mut r = Rsyslog {
            child: None,
            dir: dir.to_path_buf(),
            port,
            listener,
            netns: netns.map(String::from),
        };
        r.restart();
        r
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let d = self.dir.display();
        let (global_tls, input) = match &self.listener {
            Listener::Tcp => (String::new(), format!("module(load=\"imtcp\")\ninput(type=\"imtcp\" port=\"{}\")", self.port)),
            Listener::Udp => (String::new(), format!("module(load=\"imudp\")\ninput(type=\"imudp\" port=\"{}\")", self.port)),
            Listener::Tls { ca, cert, key, mutual } => (
                format!(
                    " DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
                    ca.display(),
                    cert.display(),
                    key.display()
                ),
                format!(
                    "module(load=\"imtcp\" StreamDriver.Name=\"ossl\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"{}\")\ninput(type=\"imtcp\" port=\"{}\")",
                    if *mutual { "x509/certvalid" } else { "anon" },
                    self.port
                ),
            ),
        };
        // Direct queue: each message is written before the next is read, so a kill loses
        // nothing rsyslog already accepted from the socket.
        let conf = format!(
            "global(workDirectory=\"{d}\" maxMessageSize=\"256k\"{global_tls})\n\
             main_queue(queue.type=\"Direct\")\n{input}\n\
             template(name=\"msgonly\" type=\"string\" string=\"%msg%\\n\")\n\
             action(type=\"omfile\" file=\"{d}/out.log\" template=\"msgonly\" flushOnTXEnd=\"on\" asyncWriting=\"off\")\n"
        );
        let conf_path = self.dir.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let _ = std::fs::remove_file(self.dir.join("rsyslog.pid"));
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "/usr/sbin/rsyslogd"]);
                c
            }
            None => Command::new("/usr/sbin/rsyslogd"),
        };
        let child = cmd
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(self.dir.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("rsyslog.stderr")).unwrap())
            .spawn()
            .expect("start rsyslogd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = match self.listener {
                Listener::Udp => self.dir.join("rsyslog.pid").exists(),
                _ => {
                    let port = self.port;
                    let probe = move || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
                    match &self.netns {
                        Some(ns) => in_netns(ns, probe),
                        None => probe(),
                    }
                }
            };
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not start listening on {}: {}",
                self.port,
                std::fs::read_to_string(self.dir.join("rsyslog.stderr")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    /// SIGKILL: the receiver dies without any goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("out.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    /// Waits until at least `n` lines arrived (or `timeout`), then returns all lines.
    pub fn wait_lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let l = self.lines();
            if l.len() >= n || Instant::now() >= deadline {
                // Let stragglers (duplicates) land too before the caller compares.
                std::thread::sleep(Duration::from_millis(200));
                return self.lines();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A distinct CNIC per index (valid shape, province digit 3).
pub fn cnic(i: usize) -> String {
    format!("35202-{:07}-{}", 1_000_000 + i, i % 10)
}

/// `n` egress TCP flows, each leaking `cnic(first + i)`; returns the frames and the expected
/// keyed hashes, sorted.
pub fn leaking_flows(first: usize, n: usize) -> (Vec<nigehban::synth::Frame>, Vec<String>) {
    let mut frames = Vec::new();
    let mut hashes = Vec::new();
    for i in first..first + n {
        let payload = format!("customer cnic {} verified", cnic(i));
        frames.extend(egress_conn(
            10_000 + i as u16,
            payload.as_bytes(),
            &[payload.len()],
            i as u64 * 10_000,
        ));
        hashes.push(expected_hash(&cnic(i)));
    }
    hashes.sort();
    (frames, hashes)
}

/// Keyed hashes in a list of alert JSON lines, sorted.
pub fn hashes_of(lines: &[String]) -> Vec<String> {
    let mut v: Vec<String> = lines
        .iter()
        .flat_map(|l| {
            let a: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not an alert JSON line ({e})"));
            a["pii"]["matches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["hash"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    v.sort();
    v
}

/// `nigehban read` on `pcap` with the test key and rules, alerts also to `alerts` (a file).
pub fn read_cmd(dir: &Path, pcap: &Path, alerts: &Path, extra: &[&str]) -> Command {
    let key = write_key(dir);
    let mut cmd = Command::new(bin());
    cmd.arg("read")
        .arg(pcap)
        .args(["--metrics-listen", "off", "--workers", "2"])
        .arg("--alerts")
        .arg(alerts)
        .arg("--pii-key-file")
        .arg(key)
        .arg("--rules")
        .arg(rules_dir())
        .args(extra);
    cmd
}

pub fn file_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}
