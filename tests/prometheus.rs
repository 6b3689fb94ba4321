//! Prometheus and Grafana integration, against the real tools (Debian `prometheus`, installed by
//! deploy/setup-deps.sh): promtool checks our alert rules, example config and /metrics output; a
//! real Prometheus server scrapes a live sensor (plain, and over HTTPS with a bearer token) and
//! its HTTP API returns what the sensor reported; every metric the dashboard and the rules query
//! is one the sensor exports, and every dashboard query is valid PromQL. The live parts need root
//! for the network namespace (CI runs as root); NIGEHBAN_SKIP_LIVE=1 skips them.

mod common;
mod common_tls;
mod ops_common;

use common::netns::*;
use common::*;
use ops_common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn manifest(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn promtool(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut c = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus; deploy/setup-deps.sh)");
    let input = c.stdin.take().unwrap();
    if let Some(text) = stdin {
        let mut input = input;
        input.write_all(text.as_bytes()).unwrap();
    }
    c.wait_with_output().unwrap()
}

/// Every metric family name the sensor registers: the `"nigehban_…"` literals in src/, where
/// families are defined (src/metrics/mod.rs defines them all; other modules may add their own).
fn exported_families() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut dirs = vec![manifest("src")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for (i, _) in text.match_indices("\"nigehban_") {
                    let rest = &text[i + 1..];
                    let end = rest.find('"').unwrap();
                    let name = &rest[..end];
                    if name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    {
                        names.insert(name.to_string());
                    }
                }
            }
        }
    }
    names
}

/// `nigehban_…` identifiers in a PromQL expression (histogram suffixes folded to the family).
fn queried(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in expr.match_indices("nigehban_") {
        if i > 0 && (expr.as_bytes()[i - 1].is_ascii_alphanumeric() || expr.as_bytes()[i - 1] == b'_') {
            continue;
        }
        let name: String = expr[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.push(name);
    }
    out
}

fn dashboard_exprs() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(e)) = m.get("expr") {
                    out.push(e.clone());
                }
                m.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(manifest("deploy/grafana/nigehban.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is valid JSON");
    let mut out = Vec::new();
    walk(&dash, &mut out);
    out
}

#[test]
fn dashboard_and_alert_rules_query_only_exported_metrics() {
    let exported = exported_families();
    assert!(
        exported.contains("nigehban_packets_total") && exported.len() > 30,
        "{exported:?}"
    );
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 30, "{exprs:?}");
    let mut used = BTreeSet::new();
    for e in &exprs {
        for name in queried(e) {
            assert!(
                exported.contains(&name),
                "dashboard queries {name}, which the sensor does not export: {e}"
            );
            used.insert(name);
        }
    }
    // What operators must see (issue 6): throughput, drops, flows, queue depth, matches and alerts
    // by rule, SIEM delivery and spool, memory caps.
    for must in [
        "nigehban_bytes_total",
        "nigehban_capture_kernel_drops_total",
        "nigehban_capture_interface_drops_total",
        "nigehban_queue_drops_total",
        "nigehban_flows_active",
        "nigehban_queue_depth_batches",
        "nigehban_pattern_hits_total",
        "nigehban_alerts_total",
        "nigehban_output_delivered_total",
        "nigehban_output_failed_total",
        "nigehban_output_spool_bytes",
        "nigehban_reassembly_segments_dropped_total",
        "nigehban_defrag_dropped_total",
    ] {
        assert!(used.contains(must), "dashboard lacks {must}");
    }
    let rules = std::fs::read_to_string(manifest("deploy/prometheus/nigehban-alerts.yml")).unwrap();
    let in_rules: BTreeSet<String> = queried(&rules).into_iter().collect();
    for name in &in_rules {
        assert!(
            exported.contains(name),
            "alert rules query {name}, which the sensor does not export"
        );
    }
    assert!(in_rules.len() >= 10, "{in_rules:?}");
}

#[test]
fn promtool_accepts_alert_rules_and_example_config() {
    let out = promtool(
        &[
            "check",
            "rules",
            manifest("deploy/prometheus/nigehban-alerts.yml").to_str().unwrap(),
        ],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("SUCCESS: 13 rules found"), "{text}");

    // The example names files under /etc/prometheus; promtool checks they exist, so point them here.
    let dir = tempfile::tempdir().unwrap();
    let pki = common_tls::Pki::new("example CA");
    std::fs::copy(pki.ca_path(), dir.path().join("nigehban-ca.pem")).unwrap();
    std::fs::write(dir.path().join("nigehban.token"), "t\n").unwrap();
    std::fs::copy(
        manifest("deploy/prometheus/nigehban-alerts.yml"),
        dir.path().join("nigehban-alerts.yml"),
    )
    .unwrap();
    let cfg = std::fs::read_to_string(manifest("deploy/prometheus/prometheus.yml"))
        .unwrap()
        .replace("/etc/prometheus/", &format!("{}/", dir.path().display()));
    let p = dir.path().join("prometheus.yml");
    std::fs::write(&p, cfg).unwrap();
    let out = promtool(&["check", "config", p.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Prometheus server in namespace `a`, killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Prometheus {
    fn start(ns: &Netns, dir: &Path, config: &str, port: u16) -> Prometheus {
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, config).unwrap();
        let log = dir.join("prometheus.log");
        let child = ns
            .exec(
                &ns.a,
                "prometheus",
                &[
                    &format!("--config.file={}", cfg.display()),
                    &format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
                    &format!("--web.listen-address=127.0.0.1:{port}"),
                    "--log.level=warn",
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("prometheus is installed (Debian package prometheus; deploy/setup-deps.sh)");
        let mut p = Prometheus { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(fetch(ns, &p.url("/-/ready"), None, None), Ok((200, _))) {
            if let Some(st) = p.child.try_wait().unwrap() {
                panic!("prometheus exited ({st}): {}", std::fs::read_to_string(&p.log).unwrap());
            }
            assert!(Instant::now() < deadline, "prometheus never became ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `/api/v1/query`; returns the `data` object (asserting `status` is success).
    fn query(&self, ns: &Netns, promql: &str) -> serde_json::Value {
        let q = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect::<String>();
        let (code, body) = fetch(ns, &self.url(&format!("/api/v1/query?query={q}")), None, None).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{code}: {body}"));
        assert_eq!(v["status"], "success", "query {promql}: {body}");
        v["data"].clone()
    }

    /// The single value of an instant vector with one sample, once Prometheus has one.
    fn scalar(&self, ns: &Netns, promql: &str) -> Option<f64> {
        let d = self.query(ns, promql);
        let r = d["result"].as_array()?;
        (r.len() == 1).then(|| r[0]["value"][1].as_str().unwrap().parse().unwrap())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `f` returns Some(true) (20 s).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn prometheus_scrapes_the_live_sensor_and_reports_its_values() {
    if skip_live() {
        return;
    }
    let ns = Netns::new("p");
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path());
    let metrics_url = "http://127.0.0.1:19764/metrics";
    let sensor = Sensor::start(
        &ns,
        dir.path(),
        &[
            "--home-net",
            "10.99.0.1/32",
            "--metrics-listen",
            "127.0.0.1:19764",
            "--alerts",
            "-",
            "--pii-key-file",
            key.to_str().unwrap(),
        ],
        metrics_url,
    );
    send_cnic(&ns);
    // The capture thread publishes once a second; wait until the flow's packets are counted.
    let text = wait_metrics(&ns, metrics_url, None, None, |t| {
        metric(t, "nigehban_alerts_total") >= 1.0 && metric(t, "nigehban_packets_total") >= 6.0
    });

    // Our exposition passes Prometheus's own linter.
    let out = promtool(&["check", "metrics"], Some(&text));
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every family the sensor serves is one the dashboard test knows about.
    let exported = exported_families();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(exported.contains(name), "{name} served but not found in src/");
    }

    let rules_dir = dir.path().join("prom");
    std::fs::create_dir(&rules_dir).unwrap();
    std::fs::copy(
        manifest("deploy/prometheus/nigehban-alerts.yml"),
        rules_dir.join("nigehban-alerts.yml"),
    )
    .unwrap();
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
         rule_files: [{rules}]\n\
         scrape_configs:\n  - job_name: nigehban\n    static_configs: [{{targets: ['127.0.0.1:19764']}}]\n",
        rules = rules_dir.join("nigehban-alerts.yml").display()
    );
    let prom = Prometheus::start(&ns, &rules_dir, &config, 19090);

    // Prometheus must return what the sensor reports. Stray frames (IPv6 neighbour discovery on
    // the veth) can still move the counters, so compare against a fresh reading each time.
    let mut last = (0.0, None);
    eventually("Prometheus has the sensor's packet, alert and libpcap counts", || {
        let t = wait_metrics(&ns, metrics_url, None, None, |_| true);
        let want = [
            ("sum(nigehban_packets_total)", metric(&t, "nigehban_packets_total")),
            ("sum(nigehban_alerts_total)", metric(&t, "nigehban_alerts_total")),
            (
                "nigehban_capture_received_total",
                metric(&t, "nigehban_capture_received_total"),
            ),
        ];
        last = (want[0].1, prom.scalar(&ns, want[0].0));
        want.iter().all(|(q, v)| prom.scalar(&ns, q) == Some(*v))
    });
    assert!(last.0 >= 6.0, "{last:?}");
    assert_eq!(prom.scalar(&ns, "up{job=\"nigehban\"}"), Some(1.0));
    let by_rule = prom.query(&ns, "nigehban_alerts_total");
    let rules: Vec<_> = by_rule["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metric"]["rule"].as_str().unwrap().to_string())
        .collect();
    assert!(rules.iter().any(|r| r.starts_with("NGB-CNIC")), "{rules:?}");

    // Our alert rules load and evaluate without error.
    eventually("alert rules evaluated", || {
        let (_, body) = fetch(&ns, &prom.url("/api/v1/rules"), None, None).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let groups = v["data"]["groups"].as_array().unwrap();
        let rules: Vec<_> = groups.iter().flat_map(|g| g["rules"].as_array().unwrap()).collect();
        rules.len() == 13 && rules.iter().all(|r| r["health"] == "ok")
    });
    // Every dashboard query is valid PromQL that Prometheus evaluates (Grafana's variables filled in).
    for e in dashboard_exprs() {
        let e = e.replace("$__rate_interval", "1m").replace("$instance", ".*");
        prom.query(&ns, &e);
    }
    drop(prom);
    let (out, _) = sensor.stop();
    assert!(out.contains(&expected_hash(CNIC)));
}

#[test]
fn prometheus_scrapes_over_https_with_a_bearer_token() {
    if skip_live() {
        return;
    }
    let ns = Netns::new("s");
    let dir = tempfile::tempdir().unwrap();
    let pki = common_tls::Pki::new("scrape CA");
    let leaf = pki.leaf("sensor", &["127.0.0.1"]);
    let token = dir.path().join("token");
    std::fs::write(&token, "scrape-7d2e\n").unwrap();
    let wrong = dir.path().join("wrong-token");
    std::fs::write(&wrong, "scrape-0000\n").unwrap();
    let sensor = Sensor::start_tls_metrics(&ns, dir.path(), 19765, &leaf, &token);
    let job = |name: &str, token: &Path| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config: {{ca_file: '{}'}}\n    \
             authorization: {{credentials_file: '{}'}}\n    static_configs: [{{targets: ['127.0.0.1:19765']}}]\n",
            pki.ca_path().display(),
            token.display()
        )
    };
    let config = format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n{}{}",
        job("nigehban", &token),
        job("wrong-token", &wrong)
    );
    let prom_dir = dir.path().join("prom");
    std::fs::create_dir(&prom_dir).unwrap();
    let prom = Prometheus::start(&ns, &prom_dir, &config, 19091);
    eventually("HTTPS scrape with the right token succeeds", || {
        prom.scalar(&ns, "up{job=\"nigehban\"}") == Some(1.0)
            && prom.scalar(&ns, "nigehban_build_info{job=\"nigehban\"}") == Some(1.0)
    });
    eventually("the wrong token is refused with 401", || {
        let (_, body) = fetch(&ns, &prom.url("/api/v1/targets"), None, None).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["activeTargets"].as_array().unwrap().iter().any(|t| {
            t["labels"]["job"] == "wrong-token"
                && t["health"] == "down"
                && t["lastError"].as_str().unwrap_or("").contains("401")
        })
    });
    assert_eq!(prom.scalar(&ns, "up{job=\"wrong-token\"}"), Some(0.0));
    drop(prom);
    sensor.stop();
}
