//! Rule reload on SIGHUP, end to end: `nigehban capture` on a veth pair between two network
//! namespaces (see tests/common/netns.rs), real TCP and UDP traffic, a copy of rules/ that the
//! test edits between real SIGHUPs. Needs root (CI runs as root); NIGEHBAN_SKIP_LIVE=1 skips.

mod common;

use common::netns::*;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

/// Accepts connections on 10.99.0.2:9000 and reads each until EOF, one thread per connection.
const SERVER: &str = r#"
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.99.0.2", 9000)); s.listen(16)
def serve(c):
    while c.recv(65536): pass
    c.sendall(b"ok"); c.close()
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// Runs one command per stdin line (`open NAME`, `send NAME HEX`, `close NAME`, `udp HEX`) and
/// answers `ok` once it is done, so the test decides exactly when each byte leaves.
const CLIENT: &str = r#"
import socket, sys
conns = {}
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "open":
        conns[args[0]] = socket.create_connection(("10.99.0.2", 9000))
    elif cmd == "send":
        conns[args[0]].sendall(bytes.fromhex(args[1]))
    elif cmd == "close":
        c = conns.pop(args[0]); c.shutdown(socket.SHUT_WR); c.recv(10); c.close()
    elif cmd == "udp":
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(bytes.fromhex(args[0]), ("10.99.0.2", 5140)); u.close()
    print("ok", flush=True)
"#;

struct Client {
    child: Reap,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Client {
    fn cmd(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        assert_eq!(answer.trim(), "ok", "client failed on {:?}", line.split(' ').next());
    }
    fn open(&mut self, name: &str) {
        self.cmd(&format!("open {name}"));
    }
    fn send(&mut self, name: &str, data: &[u8]) {
        self.cmd(&format!("send {name} {}", hex::encode(data)));
        // Separate segments, so the sensor sees the bytes as sent.
        std::thread::sleep(Duration::from_millis(50));
    }
    fn close(&mut self, name: &str) {
        self.cmd(&format!("close {name}"));
    }
    fn udp(&mut self, data: &[u8]) {
        self.cmd(&format!("udp {}", hex::encode(data)));
    }
}

/// The sensor with `--rules dir`, its stdout and stderr read as it runs.
struct Sensor {
    child: Child,
    out: Option<std::thread::JoinHandle<String>>,
    err: Option<std::thread::JoinHandle<String>>,
}

/// Kills a child still running when a failed assertion unwinds past it.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sensor {
    fn start(ns: &Netns, rules: &std::path::Path, key: &std::path::Path, port: u16) -> Sensor {
        let mut child = ns
            .exec(
                &ns.a,
                bin(),
                &["capture", "--interface", A_DEV, "--home-net", "10.99.0.1/32"],
            )
            .args([
                "--alerts",
                "-",
                "--workers",
                "2",
                "--metrics-listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args([
                "--rules",
                rules.to_str().unwrap(),
                "--pii-key-file",
                key.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (out, err) = drain(&mut child);
        let sensor = Sensor {
            child,
            out: Some(out),
            err: Some(err),
        };
        wait_for_metrics(ns, port);
        sensor
    }

    fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child (`ip netns exec` execs the sensor in place).
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// SIGTERM; waits for a clean exit; returns (stdout, stderr).
    fn stop(&mut self) -> (String, String) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "nigehban did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = self.out.take().unwrap().join().unwrap();
        let err = self.err.take().unwrap().join().unwrap();
        assert!(
            self.child.wait().unwrap().success(),
            "capture exited with failure: {err}"
        );
        (out, err)
    }
}

#[test]
fn sighup_reloads_rules_without_losing_packets_or_values() {
    if skip_live() {
        return;
    }
    let ns = Netns::new("r");
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path());
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    for e in std::fs::read_dir(rules_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, rules.join(p.file_name().unwrap())).unwrap();
        }
    }
    let port = 19760;
    let mut sensor = Sensor::start(&ns, &rules, &key, port);
    let text = wait_for_metrics(&ns, port);
    assert_eq!(metric(&text, "nigehban_rules_generation"), 1.0, "{text}");
    let rules_at_start = metric(&text, "nigehban_rules_loaded");

    let server = Reap(ns.start_server(SERVER, &[]));
    let mut child = ns.start_client(CLIENT, Stdio::piped());
    let mut client = Client {
        stdin: child.stdin.take().unwrap(),
        stdout: BufReader::new(child.stdout.take().unwrap()),
        child: Reap(child),
    };

    // A long-lived connection sends the first half of a CNIC before any reload.
    client.open("long");
    client.send("long", b"hello, here is my identity card: 35202-12");

    // Generation 1: card and CNIC rules alert.
    client.open("a");
    client.send("a", b"card=5228471630592747 and CNIC 61101-7654321-8 done\n");
    client.close("a");
    wait_until(&ns, port, "generation 1 alerts", |t| {
        metric(t, "nigehban_alerts_total{rule=\"NGB-CARD-") >= 1.0 && metric(t, "nigehban_alerts_total") >= 2.0
    });

    // Disable the card rules → SIGHUP → generation 2.
    std::fs::remove_file(rules.join("card.toml")).unwrap();
    sensor.signal(libc::SIGHUP);
    let text = wait_until(&ns, port, "reload ok", |t| {
        metric(t, "nigehban_rule_reloads_total{result=\"ok\"}") == 1.0
    });
    assert_eq!(metric(&text, "nigehban_rules_generation"), 2.0, "{text}");
    assert!(metric(&text, "nigehban_rules_loaded") < rules_at_start, "{text}");
    assert_eq!(metric(&text, "nigehban_rules_last_reload_successful"), 1.0, "{text}");

    // New behaviour: the card is no longer reported (TCP or UDP), the CNIC is.
    client.open("b");
    client.send("b", b"pan 4929123456789015, CNIC 42101-7654321-3 done\n");
    client.close("b");
    client.udp(b"udp card 5457623890123454 end");
    wait_until(&ns, port, "generation 2 alert", |t| {
        metric(t, "nigehban_alerts_total") >= 3.0
    });

    // A broken rule file is refused; generation 2 keeps running and alerting.
    std::fs::write(
        rules.join("zz-broken.toml"),
        "[[rule]]\nid = \"NGB-BROKEN\"\npii = \"cnic\"\nnonsense = 1\n",
    )
    .unwrap();
    sensor.signal(libc::SIGHUP);
    let text = wait_until(&ns, port, "reload failed", |t| {
        metric(t, "nigehban_rule_reloads_total{result=\"failed\"}") == 1.0
    });
    assert_eq!(metric(&text, "nigehban_rules_generation"), 2.0, "{text}");
    assert_eq!(metric(&text, "nigehban_rules_last_reload_successful"), 0.0, "{text}");
    client.open("c");
    client.send("c", b"nic: 61101-1111111-8 done\n");
    client.close("c");

    // The long-lived connection sends the rest of its CNIC under generation 2: one alert.
    client.send("long", b"34567-1, thanks\n");
    client.close("long");
    let text = wait_until(&ns, port, "all alerts", |t| metric(t, "nigehban_alerts_total") >= 5.0);

    let Client { mut child, stdin, .. } = client;
    drop(stdin);
    assert!(child.0.wait().unwrap().success(), "client failed");
    drop(server);
    let (out, err) = sensor.stop();
    let run = stopped_run(out, err);
    let mut want = vec![
        expected_hash("5228471630592747"),
        expected_hash("61101-7654321-8"),
        expected_hash("42101-7654321-3"),
        expected_hash("61101-1111111-8"),
        expected_hash("35202-1234567-1"),
    ];
    want.sort();
    assert_eq!(run.hashes(), want, "each value exactly once, no card after the reload");

    // Nothing lost: no capture or queue drops, every packet seen processed.
    assert_eq!(metric(&text, "nigehban_queue_drops_total"), 0.0, "{text}");
    assert_eq!(metric(&text, "nigehban_capture_kernel_drops_total"), 0.0, "{text}");
    assert_eq!(metric(&text, "nigehban_capture_interface_drops_total"), 0.0, "{text}");

    // One error line for the refused set, naming the file; the good reload is logged too.
    let refused: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("rule reload refused"))
        .collect();
    assert_eq!(refused.len(), 1, "{}", run.stderr);
    assert!(
        refused[0].contains("zz-broken.toml:") && refused[0].contains("ERROR"),
        "{}",
        refused[0]
    );
    assert!(run.stderr.contains("rules reloaded"), "{}", run.stderr);
    assert!(!run.stdout.contains("1234567") && !run.stderr.contains("1234567"));
}
