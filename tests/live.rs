//! Live capture through libpcap: two network namespaces joined by a veth pair, created by the
//! test, real TCP and UDP traffic between them, `nigehban capture` on one end. Needs root (CI runs
//! as root); set NIGEHBAN_SKIP_LIVE=1 to skip on a workstation.

mod common;

use common::netns::*;
use common::*;
use std::io::Write;
use std::process::Stdio;

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

#[test]
fn live_capture_on_a_veth_pair_alerts_on_real_traffic() {
    if skip_live() {
        return;
    }
    let ns = Netns::new("l");
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path());
    let port = 19750;
    let sensor = ns.start_sensor("10.99.0.1/32", port, &key, &[]);

    let mut server = ns.start_server(SERVER, &["1"]);
    let mut client = ns.start_client(CLIENT, Stdio::null());
    let payload =
        b"POST /upload HTTP/1.1\r\nHost: 10.99.0.2\r\n\r\nname=Ali&cnic=35202-1234567-2&card=5228471630592747\r\n";
    client.stdin.take().unwrap().write_all(payload).unwrap();
    assert!(client.wait().unwrap().success());
    assert!(server.wait().unwrap().success());

    // Alerts come while the sensor runs, not at exit: wait for them in the metrics.
    let text = wait_until(&ns, port, "3 alerts and 8 packets counted", |t| {
        metric(t, "nigehban_alerts_total") >= 3.0 && metric(t, "nigehban_packets_total") >= 8.0
    });
    assert!(text.contains("nigehban_capture_kernel_drops_total"));
    assert!(text.contains("nigehban_queue_depth_batches"));

    let (out, err) = stop(sensor);
    let run = stopped_run(out, err);
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
