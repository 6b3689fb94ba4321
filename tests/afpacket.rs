//! The AF_PACKET (TPACKET_V3 + PACKET_FANOUT) capture backend on a veth pair between two network
//! namespaces, with real TCP and UDP traffic: it must raise exactly the alerts libpcap raises,
//! with one or two capture threads; the fanout must keep both directions of every flow on one
//! socket; BPF filters apply; counters reach /metrics; SIGTERM ends it cleanly; a link that goes
//! down and up, or an interface that disappears, is handled like libpcap's backend handles it
//! (both backends tested). Needs root (CI runs as root); NIGEHBAN_SKIP_LIVE=1 skips the live
//! tests. Flag errors need no root.

mod common;

use common::netns::*;
use common::*;
use nigehban::capture::{AfPacketConfig, AfPacketSource, Next};
use nigehban::decode::{Decoder, DefragConfig};
use nigehban::flow::FlowKey;
use nigehban::synth::values;
use rand::SeedableRng;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Accepts `argv[1]` TCP connections on 10.99.0.2:8080, reads each to its end, answers.
const SERVER: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.99.0.2", 8080)); s.listen(64)
print("ready", flush=True)
for _ in range(int(sys.argv[1])):
    c, _ = s.accept()
    while c.recv(65536): pass
    c.sendall(b"ok"); c.close()
"#;

/// One TCP connection per hex-encoded stdin line (the payload, sent in two writes); the last
/// line is sent as a UDP datagram to port 5140 instead.
const CLIENT: &str = r#"
import socket, sys, time
lines = [bytes.fromhex(l) for l in sys.stdin.read().split()]
for p in lines[:-1]:
    c = socket.create_connection(("10.99.0.2", 8080))
    half = len(p) // 2
    c.sendall(p[:half]); time.sleep(0.01); c.sendall(p[half:])
    c.shutdown(socket.SHUT_WR); c.recv(100); c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(lines[-1], ("10.99.0.2", 5140))
"#;

const CONNECTIONS: usize = 12;

/// Synthetic payloads: CONNECTIONS HTTP posts with a CNIC and a card each, then a UDP datagram
/// with a CNIC. Returns the payload lines and the expected sorted hashes (TCP, UDP).
fn traffic(seed: u64) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut lines = Vec::new();
    let mut tcp = Vec::new();
    for _ in 0..CONNECTIONS {
        let c = values::cnic(&mut rng);
        let card = values::card(&mut rng);
        let body = format!("name=Ali&cnic={}&card={card}", values::dashed_cnic(&c));
        lines.push(format!(
            "POST /upload HTTP/1.1\r\nHost: 10.99.0.2\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        tcp.push(hash_of(&c));
        tcp.push(hash_of(&card));
    }
    let u = values::cnic(&mut rng);
    lines.push(format!("udp identity card {}", values::dashed_cnic(&u)));
    tcp.sort();
    (lines, tcp, vec![hash_of(&u)])
}

/// Runs the server and client in the namespaces, sending `lines`.
fn send(ns: &Netns, lines: &[String]) {
    let mut server = ns.start_server(SERVER, &[&CONNECTIONS.to_string()]);
    let mut client = ns.start_client(CLIENT, Stdio::null());
    let hex: String = lines.iter().map(|l| format!("{}\n", hex::encode(l))).collect();
    client.stdin.take().unwrap().write_all(hex.as_bytes()).unwrap();
    assert!(client.wait().unwrap().success());
    assert!(server.wait().unwrap().success());
}

/// One sensor run: start with `extra` flags, send the traffic, wait until `want_values` values are
/// counted and `settled` holds of /metrics, stop with SIGTERM. Returns the sorted hashes and the
/// last /metrics text. Capture threads publish their counters once a second, after the workers
/// may already have counted the values, so what a test asserts of them goes in `settled`.
fn run_sensor(
    ns: &Netns,
    port: u16,
    lines: &[String],
    want_values: usize,
    extra: &[&str],
    settled: impl Fn(&str) -> bool,
) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path());
    eprintln!("sensor run with {extra:?}");
    let sensor = ns.start_sensor("10.99.0.1/32", port, &key, extra);
    send(ns, lines);
    let what = format!("{extra:?}: {want_values} values counted and the expected metrics");
    let text = wait_until(ns, port, &what, |t| {
        metric(t, "nigehban_pii_findings_total") >= want_values as f64
            && metric(t, "nigehban_capture_received_total") > 0.0
            && settled(t)
    });
    // Let a late duplicate or a stray extra alert show up before stopping.
    std::thread::sleep(Duration::from_millis(300));
    let (out, err) = stop(sensor);
    assert!(!out.contains("1234567") && !err.contains("panicked"), "{err}");
    let run = stopped_run(out, err);
    for a in &run.alerts {
        assert_eq!(a["source"]["ip"], "10.99.0.1", "{extra:?}");
    }
    (run.hashes(), text)
}

#[test]
fn af_packet_with_one_and_two_threads_alerts_exactly_like_pcap_and_filters_by_bpf() {
    if skip_live() {
        return;
    }
    let ns = Netns::new("afp");
    let (lines, tcp, udp) = traffic(41);
    let mut all: Vec<String> = tcp.iter().chain(&udp).cloned().collect();
    all.sort();

    let any = |_: &str| true;
    let (pcap, _) = run_sensor(&ns, 19761, &lines, all.len(), &[], any);
    assert_eq!(pcap, all, "libpcap baseline");

    let (one, text) = run_sensor(&ns, 19762, &lines, all.len(), &["--capture-backend", "af-packet"], any);
    assert_eq!(one, pcap, "af-packet, one thread");
    assert_eq!(metric(&text, "nigehban_capture_kernel_drops_total"), 0.0, "{text}");
    assert_eq!(metric(&text, "nigehban_queue_drops_total"), 0.0, "{text}");

    let two_flags = ["--capture-backend", "af-packet", "--capture-threads", "2"];
    // 13 flows over two sockets: each thread gets some (all on one: p = 2^-12), and every
    // connection's six or more packets are received. run_sensor fails if this never holds.
    let both_threads_and_all_packets = |text: &str| {
        ["0", "1"].iter().all(|t| {
            let line = format!("nigehban_capture_thread_packets_total{{thread=\"{t}\"}}");
            metric(text, &line) > 0.0
        }) && metric(text, "nigehban_capture_received_total") >= 13.0 * 6.0
    };
    let (two, text) = run_sensor(&ns, 19763, &lines, all.len(), &two_flags, both_threads_and_all_packets);
    assert_eq!(two, pcap, "af-packet, two threads");
    assert!(text.contains("nigehban_capture_ring_freezes_total"), "{text}");

    // The kernel filter drops the UDP datagram before the sensor sees it.
    let bpf = [
        "--capture-backend",
        "af-packet",
        "--capture-threads",
        "2",
        "--bpf",
        "tcp",
    ];
    let (filtered, text) = run_sensor(&ns, 19764, &lines, tcp.len(), &bpf, any);
    assert_eq!(filtered, tcp, "BPF 'tcp' keeps TCP only");
    assert!(metric(&text, "nigehban_capture_received_total") > 0.0, "{text}");
}

/// Enters namespace `name` on this thread (setns affects only the calling thread).
fn enter_netns(name: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{name}")).unwrap();
    // SAFETY: setns on a valid namespace descriptor, for this thread only.
    let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

#[test]
fn fanout_keeps_both_directions_of_every_flow_on_one_socket() {
    if skip_live() {
        return;
    }
    let ns = Netns::new("fan");
    let a = ns.a.clone();
    let (start_tx, start_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        enter_netns(&a);
        let cfg = AfPacketConfig {
            interface: A_DEV,
            bpf: Some("tcp port 8080"),
            ring_mb: 16,
            fanout_group: Some(0x4e47),
        };
        let mut socks = [AfPacketSource::open(&cfg).unwrap(), AfPacketSource::open(&cfg).unwrap()];
        start_tx.send(()).unwrap();
        let mut decoder = Decoder::new(DefragConfig {
            memcap: 1 << 20,
            timeout: Duration::from_secs(30),
        });
        // flow -> (socket, directions seen)
        let mut seen: HashMap<FlowKey, (usize, HashSet<String>)> = HashMap::new();
        let mut split = 0;
        let mut done: Option<Instant> = None;
        let mut last_packet = Instant::now();
        loop {
            let mut any = false;
            for (i, s) in socks.iter_mut().enumerate() {
                let link = s.link();
                while let Next::Packet(p) = s.next_packet().unwrap() {
                    any = true;
                    let pkt = decoder.decode(link, p.ts, p.data).unwrap();
                    let (key, dir) = FlowKey::of_packet(&pkt);
                    let e = seen.entry(key).or_insert((i, HashSet::new()));
                    if e.0 != i {
                        split += 1;
                    }
                    e.1.insert(format!("{dir:?}"));
                }
            }
            if any {
                last_packet = Instant::now();
            }
            if done.is_none() && done_rx.try_recv().is_ok() {
                done = Some(Instant::now());
            }
            // The sender has finished: read until the rings stay quiet for a second.
            if done.is_some_and(|d| d.elapsed() > Duration::from_secs(1))
                && last_packet.elapsed() > Duration::from_secs(1)
            {
                break;
            }
        }
        let drops: u64 = socks.iter_mut().map(|s| s.stats().dropped).sum();
        (seen, split, drops)
    });
    start_rx.recv().unwrap();
    let (lines, _, _) = traffic(7);
    send(&ns, &lines);
    done_tx.send(()).unwrap();
    let (seen, split, drops) = reader.join().unwrap();
    assert_eq!(drops, 0, "the test reader fell behind: kernel drops");
    assert_eq!(seen.len(), CONNECTIONS, "every connection captured");
    assert_eq!(split, 0, "a flow's packets reached both sockets");
    assert!(
        seen.values().all(|(_, dirs)| dirs.len() == 2),
        "both directions of each flow seen on its socket"
    );
    let on_first = seen.values().filter(|(s, _)| *s == 0).count();
    assert!(
        on_first > 0 && on_first < CONNECTIONS,
        "fanout spread {CONNECTIONS} flows {on_first}/{}",
        CONNECTIONS - on_first
    );
}

fn capture_error(args: &[&str]) -> String {
    let out = std::process::Command::new(bin())
        .args(["capture", "--interface", "lo", "--metrics-listen", "off"])
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} accepted");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn bad_backend_and_threads_without_af_packet_are_one_line_errors() {
    let e = capture_error(&["--capture-backend", "dpdk"]);
    assert!(e.contains("dpdk") && e.contains("af-packet"), "{e}");
    let e = capture_error(&["--capture-threads", "2"]);
    assert!(e.contains("--capture-threads 2") && e.contains("af-packet"), "{e}");
    let e = capture_error(&["--capture-backend", "af-packet", "--capture-threads", "0"]);
    assert!(e.contains("at least 1"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("n.toml");
    std::fs::write(&cfg, "[capture]\nbackend = \"pf_ring\"\n").unwrap();
    let e = capture_error(&["--config", cfg.to_str().unwrap()]);
    assert!(e.contains("pf_ring"), "{e}");
}

/// Sends `argv[1]` TCP segments from 10.99.0.2 (ports 40000, 40001, …) to 10.99.0.1:8080 through
/// a raw socket on `ngbvb`, each with a correct IPv4 header checksum and a wrong TCP checksum.
const BAD_CHECKSUMS: &str = r#"
import socket, struct, sys
def csum(b):
    b += b"\0" * (len(b) % 2)
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
src, dst = socket.inet_aton("10.99.0.2"), socket.inet_aton("10.99.0.1")
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(("ngbvb", 0))
for i in range(int(sys.argv[1])):
    body = struct.pack("!HHIIBBHHH", 40000 + i, 8080, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + b"no pii here"
    good = csum(src + dst + struct.pack("!BBH", 0, 6, len(body)) + body)
    tcp = body[:16] + struct.pack("!H", good ^ 0x00ff) + body[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s.send(b"\xff" * 6 + b"\x02\0\0\0\0\x01" + b"\x08\x00" + ip + tcp)
"#;

#[test]
fn checksum_errors_seen_by_two_capture_threads_add_up() {
    if skip_live() {
        return;
    }
    const SEGMENTS: usize = 16;
    let ns = Netns::new("csum");
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path());
    let port = 19765;
    let flags = [
        "--capture-backend",
        "af-packet",
        "--capture-threads",
        "2",
        "--checksum-validation",
        "on",
    ];
    let sensor = ns.start_sensor("10.99.0.1/32", port, &key, &flags);
    let sent = ns
        .exec(&ns.b, "python3", &["-c", BAD_CHECKSUMS, &SEGMENTS.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    // 16 flows over two sockets: both threads see some (all on one: p = 2^-15). Each thread must
    // add what its own decoder counted; adding the difference to the shared total, as it once
    // did, leaves the total at the larger thread's count and this wait times out.
    let text = wait_until(&ns, port, "16 checksum errors from both threads", |t| {
        ["0", "1"].iter().all(|th| {
            let line = format!("nigehban_capture_thread_packets_total{{thread=\"{th}\"}}");
            metric(t, &line) > 0.0
        }) && metric(t, "nigehban_checksum_errors_total") >= SEGMENTS as f64
    });
    assert_eq!(
        metric(&text, "nigehban_checksum_errors_total"),
        SEGMENTS as f64,
        "{text}"
    );
    stop(sensor);
}

/// CPU time (user + system, in clock ticks) the process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn a_link_that_goes_down_is_waited_for_without_spinning_and_captured_again() {
    if skip_live() {
        return;
    }
    let af_packet = ["--capture-backend", "af-packet", "--capture-threads", "2"];
    for (tag, port, flags) in [("flap", 19766, &af_packet[..]), ("flapp", 19768, &[][..])] {
        eprintln!("link down and up with {flags:?}");
        let ns = Netns::new(tag);
        let dir = tempfile::tempdir().unwrap();
        let key = write_key(dir.path());
        let sensor = ns.start_sensor("10.99.0.1/32", port, &key, flags);
        ip(&["-n", &ns.a, "link", "set", A_DEV, "down"]);
        // The kernel flags the sockets' error when the link goes down; a socket whose error is
        // not taken makes poll(2) return at once, forever. Waiting costs next to nothing (a
        // spinning af-packet capture thread used ~70 % of a core here); the bound is far from
        // both.
        let before = cpu_ticks(sensor.id());
        std::thread::sleep(Duration::from_secs(2));
        let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        let spent = cpu_ticks(sensor.id()) - before;
        assert!(
            spent < ticks_per_s / 2,
            "{flags:?}: {spent} ticks of CPU in 2 s with the link down"
        );

        ip(&["-n", &ns.a, "link", "set", A_DEV, "up"]);
        let (lines, tcp, udp) = traffic(43);
        let mut all: Vec<String> = tcp.iter().chain(&udp).cloned().collect();
        all.sort();
        send(&ns, &lines);
        wait_until(&ns, port, "the values sent after the link came up", |t| {
            metric(t, "nigehban_pii_findings_total") >= all.len() as f64
        });
        let (out, err) = stop(sensor);
        let run = stopped_run(out, err.clone());
        assert_eq!(run.hashes(), all, "{flags:?}");
        if !flags.is_empty() {
            assert!(err.contains("the link went down"), "{err}");
            assert!(err.contains("packets arrive again"), "{err}");
        }
    }
}

#[test]
fn an_interface_that_disappears_ends_the_capture_with_a_one_line_error() {
    if skip_live() {
        return;
    }
    let af_packet = ["--capture-backend", "af-packet", "--capture-threads", "2"];
    let cases = [
        ("gone", 19767, &af_packet[..], "af-packet: the interface disappeared"),
        ("gonep", 19769, &[][..], "libpcap error: The interface disappeared"),
    ];
    for (tag, port, flags, why) in cases {
        let ns = Netns::new(tag);
        let dir = tempfile::tempdir().unwrap();
        let key = write_key(dir.path());
        let sensor = ns.start_sensor("10.99.0.1/32", port, &key, flags);
        // The sockets can never see the interface again, so the sensor exits with an error
        // for its supervisor to restart it; both backends say so in one line.
        ip(&["-n", &ns.a, "link", "del", A_DEV]);
        let (status, _, err) = wait_exit(sensor, "the sensor kept running on a removed interface");
        assert!(!status.success(), "{flags:?}");
        let last = err.lines().last().unwrap_or_default();
        assert_eq!(last, format!("nigehban: error: interface ngbva: {why}"), "{err}");
    }
}
