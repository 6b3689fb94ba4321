//! Bad input gets one clear line and a non-zero exit; a damaged capture is processed up to the
//! damage, which is reported with its offset.

mod common;

use common::*;
use std::process::Command;

fn run(args: &[&str]) -> Run {
    output_raw(Command::new(bin()).args(args).output().unwrap())
}

fn one_line_error(r: &Run) -> &str {
    let lines: Vec<&str> = r.stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {}", r.stderr);
    assert!(lines[0].starts_with("nigehban: error: "), "{}", lines[0]);
    lines[0]
}

#[test]
fn unknown_flag_is_one_line_exit_2() {
    let r = run(&["read", "x.pcap", "--frobnicate"]);
    assert_eq!(r.status.code(), Some(2));
    assert!(one_line_error(&r).contains("--frobnicate"));
}

#[test]
fn bad_cidr_names_the_cidr() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("e.pcap");
    nigehban::synth::write_pcap(&p, &[]).unwrap();
    let r = run(&[
        "read",
        p.to_str().unwrap(),
        "--home-net",
        "10.0.0.0/40",
        "--metrics-listen",
        "off",
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert!(one_line_error(&r).contains("10.0.0.0/40"));
}

#[test]
fn missing_and_non_pcap_files_are_named() {
    let r = run(&["read", "/nonexistent/dir/capture.pcap", "--metrics-listen", "off"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(one_line_error(&r).contains("/nonexistent/dir/capture.pcap"));

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("readme.txt");
    std::fs::write(&p, "this is a text file, not a capture; it is long enough for a header").unwrap();
    let r = run(&["read", p.to_str().unwrap(), "--metrics-listen", "off"]);
    assert_eq!(r.status.code(), Some(1));
    let line = one_line_error(&r);
    assert!(line.contains("readme.txt") && line.contains("pcap"), "{line}");
}

#[test]
fn broken_rule_is_named_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        rules_dir().join("card_schemes.toml"),
        dir.path().join("card_schemes.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("broken.toml"),
        "[[rule]]\nid = \"X-1\"\nname = \"broken\"\npii = \"cnic\"\nseverity = \"high\"\nvalidator = \"cnic\"\npatterns = ['\\d{5}-(\\d{7}']\n",
    )
    .unwrap();
    let r = run(&["rules", "check", dir.path().to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1));
    let line = one_line_error(&r);
    assert!(line.contains("broken.toml") && line.contains("X-1"), "{line}");

    let pcap = dir.path().join("e.pcap");
    nigehban::synth::write_pcap(&pcap, &[]).unwrap();
    let r = run(&[
        "read",
        pcap.to_str().unwrap(),
        "--rules",
        dir.path().to_str().unwrap(),
        "--metrics-listen",
        "off",
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert!(one_line_error(&r).contains("broken.toml"));
}

#[test]
fn bundled_rules_check_passes() {
    let r = run(&["rules", "check", rules_dir().to_str().unwrap()]);
    assert!(r.status.success(), "{}", r.stderr);
}

#[test]
fn truncated_capture_processes_what_is_readable_and_reports_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.pcap");
    let frames = egress_conn(50000, b"cnic 35202-1234567-2 sent", &[100], 0);
    nigehban::synth::write_pcap(&p, &frames).unwrap();
    // Append a record header that promises more bytes than the file holds.
    let mut bytes = std::fs::read(&p).unwrap();
    let damage = bytes.len();
    bytes.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 200, 0, 0, 0, 200, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&p, &bytes).unwrap();
    let r = read_files(dir.path(), &[p.as_path()], &[]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert_eq!(
        r.hashes(),
        vec![expected_hash("35202-1234567-2")],
        "packets before the damage are processed and flows flushed"
    );
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("nigehban: error:"))
        .expect("error line");
    assert!(line.contains(&format!("offset {damage}")), "{line}");
    assert!(line.contains("t.pcap"), "{line}");
}

#[test]
fn help_and_version_exit_zero() {
    assert!(run(&["--help"]).status.success());
    assert!(run(&["--version"]).status.success());
}

/// A capture piped in (`tcpdump -w - | nigehban read /dev/stdin`) is read once, whole: the
/// up-front check of the input files must not swallow a pipe's bytes, which cannot be read twice.
#[test]
fn a_capture_piped_into_stdin_is_read_like_the_file() {
    use std::io::Write;
    use std::process::Stdio;
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/demo.pcap");
    let dir = tempfile::tempdir().unwrap();
    let alerts = |name: &str| dir.path().join(name);
    let args = |input: &str, out: &std::path::Path| {
        let mut c = Command::new(bin());
        c.args([
            "read",
            input,
            "--metrics-listen",
            "off",
            "--alerts",
            out.to_str().unwrap(),
        ]);
        c
    };
    let file = args(demo.to_str().unwrap(), &alerts("file.json")).output().unwrap();
    assert!(file.status.success(), "{}", String::from_utf8_lossy(&file.stderr));

    let count = |p: &std::path::Path| std::fs::read_to_string(p).unwrap().lines().count();
    assert!(count(&alerts("file.json")) > 0);
    // `-` names standard input, as for `tcpdump -r -`.
    for (n, input) in ["/dev/stdin", "-"].into_iter().enumerate() {
        let log_path = dir.path().join(format!("pipe{n}.log"));
        let out = alerts(&format!("pipe{n}.json"));
        let mut child = args(input, &out)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        let bytes = std::fs::read(&demo).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // The pipe closes when the writer is done, which ends the capture.
        let writer = std::thread::spawn(move || stdin.write_all(&bytes));
        let Some(status) = exited_within(&mut child, std::time::Duration::from_secs(30)) else {
            child.kill().unwrap();
            panic!("reading a capture from a pipe ({input}) did not end");
        };
        writer.join().unwrap().unwrap();
        let log = std::fs::read_to_string(&log_path).unwrap();
        assert!(status.success(), "{input}: {log}");
        assert_eq!(count(&out), count(&alerts("file.json")), "{input}");
    }
}

/// `--metrics-dump` writes the run's final counters in the Prometheus text format, and they
/// agree with what the run did: the alerts written, the packets in the capture. A path that
/// cannot be written is refused up front, in one line, before anything is read.
#[test]
fn metrics_dump_holds_the_final_counters_of_a_read() {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/demo.pcap");
    let dir = tempfile::tempdir().unwrap();
    let (alerts, dump) = (dir.path().join("a.json"), dir.path().join("m.prom"));
    let (demo_s, alerts_s) = (demo.to_str().unwrap(), alerts.to_str().unwrap());
    let read_dumping_to = |dump: &std::path::Path| {
        let dump = dump.to_str().unwrap();
        run(&[
            "read",
            demo_s,
            "--metrics-listen",
            "off",
            "--alerts",
            alerts_s,
            "--metrics-dump",
            dump,
        ])
    };
    let r = read_dumping_to(&dump);
    assert!(r.status.success(), "{}", r.stderr);
    let text = std::fs::read_to_string(&dump).unwrap();
    // Summed over label sets: `name{labels} value` or `name value`.
    let sum = |name: &str| -> f64 {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.split(['{', ' ']).next() == Some(name))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    let written = std::fs::read_to_string(&alerts).unwrap().lines().count();
    assert!(written > 0);
    assert_eq!(sum("nigehban_alerts_total"), written as f64);
    let mut capture = pcap::Capture::from_file(&demo).unwrap();
    let mut frames = 0u64;
    while capture.next_packet().is_ok() {
        frames += 1;
    }
    assert_eq!(
        sum("nigehban_packets_total"),
        frames as f64,
        "every packet counted once, by triage"
    );

    let bad = dir.path().join("no-such-dir/m.prom");
    let r = read_dumping_to(&bad);
    assert!(!r.status.success());
    let line = one_line_error(&r);
    assert!(
        line.contains("--metrics-dump") && line.contains("no-such-dir"),
        "{line}"
    );
}
