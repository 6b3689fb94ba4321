//! Live capture through libpcap: two network namespaces joined by a veth pair, created by the
//! test, real TCP and UDP traffic between them, `nigehban capture` on one end. Needs root (CI runs
//! as root); set NIGEHBAN_SKIP_LIVE=1 to skip on a workstation.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Netns {
    a: String,
    b: String,
}

fn ip(args: &[&str]) {
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
    fn new(tag: &str) -> Netns {
        let id = std::process::id() % 100_000;
        let n = Netns {
            a: format!("ngb{tag}a{id}"),
            b: format!("ngb{tag}b{id}"),
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
            // Offloads would hand libpcap 64 KiB super-frames; a SPAN port never does.
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off",
                ])
                .output();
        }
        n
    }

    fn exec(&self, ns: &str, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]).args(args);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).output();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

const SERVER: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.99.0.2", 8080)); s.listen(8)
print("ready", flush=True)
for _ in range(int(sys.argv[1])):
    c, _ = s.accept()
    data = b""
    while True:
        d = c.recv(65536)
        if not d: break
        data += d
    c.sendall(b"ok %d" % len(data)); c.close()
"#;

const CLIENT: &str = r#"
import socket, sys, time
payload = sys.stdin.buffer.read()
c = socket.create_connection(("10.99.0.2", 8080))
half = len(payload) // 2
c.sendall(payload[:half]); time.sleep(0.05); c.sendall(payload[half:])
c.shutdown(socket.SHUT_WR); print(c.recv(100)); c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"udp identity card 61101-7654321-8", ("10.99.0.2", 5140))
"#;

fn wait_for_metrics(ns: &Netns, port: u16) -> String {
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

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn stop(mut child: Child) -> (String, String) {
    // SAFETY: plain kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "nigehban did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(child.wait().unwrap().success(), "capture exited with failure: {err}");
    (out, err)
}

#[test]
fn live_capture_on_a_veth_pair_alerts_on_real_traffic() {
    if std::env::var_os("NIGEHBAN_SKIP_LIVE").is_some() {
        eprintln!("skipped by NIGEHBAN_SKIP_LIVE");
        return;
    }
    assert!(
        is_root(),
        "the live-capture test needs root (CI runs as root); set NIGEHBAN_SKIP_LIVE=1 to skip"
    );
    let ns = Netns::new("l");
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path());
    let port = 19750;
    let sensor = ns
        .exec(
            &ns.a,
            bin(),
            &[
                "capture",
                "--interface",
                "ngbva",
                "--home-net",
                "10.99.0.1/32",
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
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_metrics(&ns, port);

    let mut server = ns
        .exec(&ns.b, "python3", &["-c", SERVER, "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    server.stdout.as_mut().unwrap().read_exact(&mut ready).unwrap();
    let mut client = ns
        .exec(&ns.a, "python3", &["-c", CLIENT])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let payload =
        b"POST /upload HTTP/1.1\r\nHost: 10.99.0.2\r\n\r\nname=Ali&cnic=35202-1234567-2&card=5228471630592747\r\n";
    client.stdin.take().unwrap().write_all(payload).unwrap();
    assert!(client.wait().unwrap().success());
    assert!(server.wait().unwrap().success());

    // Alerts come while the sensor runs, not at exit: wait for them in the metrics.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = wait_for_metrics(&ns, port);
        if metric(&text, "nigehban_alerts_total") >= 3.0 {
            break text;
        }
        assert!(Instant::now() < deadline, "no alerts counted: {text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(metric(&text, "nigehban_packets_total") >= 8.0, "{text}");
    assert!(text.contains("nigehban_capture_kernel_drops_total"));
    assert!(text.contains("nigehban_queue_depth_batches"));

    let (out, err) = stop(sensor);
    let run = output_to_run(std::process::Output {
        status: Default::default(),
        stdout: out.into_bytes(),
        stderr: err.into_bytes(),
    });
    let mut want = vec![
        expected_hash("35202-1234567-2"),
        expected_hash("5228471630592747"),
        expected_hash("61101-7654321-8"),
    ];
    want.sort();
    assert_eq!(run.hashes(), want, "stderr: {}", run.stderr);
    for a in &run.alerts {
        assert_eq!(a["source"]["ip"], "10.99.0.1");
        assert_eq!(a["destination"]["ip"], "10.99.0.2");
    }
    assert!(!run.stdout.contains("1234567") && !run.stderr.contains("1234567"));
}
