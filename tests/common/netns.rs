//! Two network namespaces joined by a veth pair, for tests that capture real traffic live
//! (root only): `a` is 10.99.0.1 on `ngbva`, `b` is 10.99.0.2 on `ngbvb`. Both are deleted on drop.

use super::{bin, rules_dir};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Address of namespace `a`.
pub const A_IP: &str = "10.99.0.1";
/// Address of namespace `b`.
pub const B_IP: &str = "10.99.0.2";
/// The veth end in namespace `a`, where the sensor captures.
pub const A_DEV: &str = "ngbva";

pub struct Netns {
    pub a: String,
    pub b: String,
    /// Sensors started here, killed on drop if a failed test left them running.
    sensors: std::sync::Mutex<Vec<u32>>,
}

pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2 'ip' is installed");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let id = std::process::id() % 100_000;
        let n = Netns {
            a: format!("ngb{tag}a{id}"),
            b: format!("ngb{tag}b{id}"),
            sensors: Default::default(),
        };
        ip(&["netns", "add", &n.a]);
        ip(&["netns", "add", &n.b]);
        ip(&[
            "link", "add", "ngbva", "netns", &n.a, "type", "veth", "peer", "name", "ngbvb", "netns", &n.b,
        ]);
        ip(&["-n", &n.a, "addr", "add", "10.99.0.1/24", "dev", "ngbva"]);
        ip(&["-n", &n.b, "addr", "add", "10.99.0.2/24", "dev", "ngbvb"]);
        for (ns, dev) in [(&n.a, "ngbva"), (&n.b, "ngbvb")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            // Offloads would hand libpcap 64 KiB super-frames; a SPAN port never does. `tx off`:
            // checksums computed in software, as a SPAN port sees them, so the sensor's checksum
            // validation judges real checksums rather than partial ones.
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", "tx", "off",
                ])
                .output();
        }
        n
    }

    pub fn exec(&self, ns: &str, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]).args(args);
        c
    }

    /// Starts the Python `script` (with `args`) in namespace `b` and returns once it has
    /// printed `ready`, i.e. listens.
    pub fn start_server(&self, script: &str, args: &[&str]) -> Child {
        let mut server = self
            .exec(&self.b, "python3", &[&["-c", script], args].concat())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = [0u8; 6];
        server.stdout.as_mut().unwrap().read_exact(&mut ready).unwrap();
        server
    }

    /// Starts the Python `script` in namespace `a` with its stdin piped, to be fed by the test.
    pub fn start_client(&self, script: &str, stdout: Stdio) -> Child {
        self.exec(&self.a, "python3", &["-c", script])
            .stdin(Stdio::piped())
            .stdout(stdout)
            .spawn()
            .unwrap()
    }

    /// `nigehban capture` on `ngbva` in namespace `a`, alerts on stdout, metrics on
    /// 127.0.0.1:`port` inside `a`; returns once the metrics endpoint answers, which the sensor
    /// opens after its capture socket, so traffic sent from then on is captured.
    pub fn start_sensor(&self, home_net: &str, port: u16, key: &Path, extra: &[&str]) -> Child {
        let mut child = self
            .exec(
                &self.a,
                bin(),
                &[
                    "capture",
                    "--interface",
                    A_DEV,
                    "--home-net",
                    home_net,
                    "--alerts",
                    "-",
                    "--workers",
                    "1",
                ],
            )
            .args([
                "--metrics-listen",
                &format!("127.0.0.1:{port}"),
                "--rules",
                rules_dir().to_str().unwrap(),
                "--pii-key-file",
                key.to_str().unwrap(),
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drain_output(&mut child);
        self.sensors.lock().unwrap().push(child.id());
        wait_for_metrics(self, port);
        child
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // A sensor still has its output readers registered until `stop` or `wait_exit` reaped
        // it, so its pid cannot have been reused: kill what a panicking test left behind.
        let running: Vec<u32> = DRAINS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(pid, _)| *pid)
            .collect();
        for pid in self.sensors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if running.contains(pid) {
                // SAFETY: plain kill(2) on our own unreaped child.
                unsafe {
                    libc::kill(*pid as i32, libc::SIGKILL);
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.a]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).output();
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when live tests are skipped on purpose; otherwise asserts we are root.
pub fn skip_live() -> bool {
    if std::env::var_os("NIGEHBAN_SKIP_LIVE").is_some() {
        eprintln!("skipped by NIGEHBAN_SKIP_LIVE");
        return true;
    }
    assert!(
        is_root(),
        "live-capture tests need root (CI runs as root); set NIGEHBAN_SKIP_LIVE=1 to skip"
    );
    false
}

/// The sensor's /metrics text, scraped from inside namespace `a`; waits up to 20 s for it.
pub fn wait_for_metrics(ns: &Netns, port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let script = format!("import urllib.request;print(urllib.request.urlopen('{url}', timeout=2).read().decode())");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ns.exec(&ns.a, "python3", &["-c", &script]).output().unwrap();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "metrics endpoint never came up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Scrapes /metrics until `ok(text)` holds and returns that text; fails after 20 s naming `what`.
/// Counters that capture threads publish once a second lag what workers count, so a test waits
/// for every value it will assert rather than for one of them.
pub fn wait_until(ns: &Netns, port: u16, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = wait_for_metrics(ns, port);
        if ok(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sum of every sample of metric `name` in a /metrics text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Threads reading a child's stdout and stderr to the end.
pub type Drains = (std::thread::JoinHandle<String>, std::thread::JoinHandle<String>);

/// Reads the child's stdout and stderr on two threads as it runs (both must be piped).
pub fn drain(child: &mut Child) -> Drains {
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    (
        read_all(Box::new(child.stdout.take().unwrap())),
        read_all(Box::new(child.stderr.take().unwrap())),
    )
}

/// Readers of each running sensor's stdout and stderr, by pid.
static DRAINS: std::sync::Mutex<Vec<(u32, Drains)>> = std::sync::Mutex::new(Vec::new());

/// Reads the child's stdout and stderr as it runs: a sensor blocked writing alerts into a
/// full pipe would otherwise never see SIGTERM through to its exit.
fn drain_output(child: &mut Child) {
    let drains = drain(child);
    DRAINS.lock().unwrap().push((child.id(), drains));
}

/// SIGTERM to the sensor; waits for a clean exit and returns its (stdout, stderr).
pub fn stop(child: Child) -> (String, String) {
    // SAFETY: plain kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let (status, out, err) = wait_exit(child, "nigehban did not stop on SIGTERM");
    assert!(status.success(), "capture exited with failure: {err}");
    (out, err)
}

/// Waits up to 20 s for the sensor to exit (else fails with `why`); returns its exit status,
/// stdout and stderr.
pub fn wait_exit(mut child: Child, why: &str) -> (std::process::ExitStatus, String, String) {
    if super::exited_within(&mut child, Duration::from_secs(20)).is_none() {
        panic!("{why}");
    }
    let drains = {
        let mut all = DRAINS.lock().unwrap();
        let i = all
            .iter()
            .position(|(pid, _)| *pid == child.id())
            .expect("started by start_sensor");
        all.swap_remove(i).1
    };
    let out = drains.0.join().unwrap();
    let err = drains.1.join().unwrap();
    (child.wait().unwrap(), out, err)
}
