//! Corrupt, truncated and foreign input on every path the sensor reads: each gives one line
//! saying what is wrong and where, and a non-zero exit; nothing panics. (tests/cli.rs covers a
//! missing file, a text file, a broken rule and a record cut short; these are the rest.)

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(args: &[&str]) -> Run {
    output_raw(Command::new(bin()).args(args).output().unwrap())
}

/// `nigehban read FILE` with a key, the shipped rules and extra flags.
fn read(dir: &Path, input: &Path, extra: &[&str]) -> Run {
    let key = write_key(dir);
    let mut args = vec![
        "read",
        input.to_str().unwrap(),
        "--metrics-listen",
        "off",
        "--alerts",
        "-",
        "--workers",
        "1",
        "--pii-key-file",
        key.to_str().unwrap(),
    ];
    let rules = rules_dir();
    args.extend(["--rules", rules.to_str().unwrap()]);
    args.extend_from_slice(extra);
    // `args` borrows `key` and `rules`: run before they go.
    run(&args)
}

/// The single error line, checked for the `nigehban: error:` prefix and the absence of panics.
fn error_line(r: &Run) -> String {
    assert!(!r.stderr.contains("panicked"), "panic: {}", r.stderr);
    assert!(!r.stderr.contains("RUST_BACKTRACE"), "panic: {}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("nigehban: error:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {}", r.stderr);
    lines[0].to_string()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A pcap global header (little-endian, microseconds) for `dlt`.
fn pcap_header(dlt: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&dlt.to_le_bytes());
    h
}

#[test]
fn empty_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "empty.pcap", b"");
    let r = read(dir.path(), &p, &[]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert!(error_line(&r).contains("empty.pcap"));
}

#[test]
fn truncated_global_header_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "short.pcap", &pcap_header(1)[..10]);
    let r = read(dir.path(), &p, &[]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert!(error_line(&r).contains("short.pcap"));
}

#[test]
fn garbage_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let p = write(dir.path(), "junk.bin", &junk);
    let r = read(dir.path(), &p, &[]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert!(error_line(&r).contains("junk.bin"));
}

#[test]
fn directory_as_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("captures");
    std::fs::create_dir(&sub).unwrap();
    let r = read(dir.path(), &sub, &[]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert!(error_line(&r).contains("captures"));
}

#[test]
fn unknown_link_type_is_named_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = pcap_header(147); // DLT_USER0
    bytes.extend_from_slice(&[0; 8]);
    bytes.extend_from_slice(&4u32.to_le_bytes());
    bytes.extend_from_slice(&4u32.to_le_bytes());
    bytes.extend_from_slice(b"abcd");
    let p = write(dir.path(), "user0.pcap", &bytes);
    let r = read(dir.path(), &p, &[]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    let line = error_line(&r);
    assert!(line.contains("user0.pcap") && line.contains("147"), "{line}");
}

#[test]
fn truncated_record_header_processes_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.pcap");
    nigehban::synth::write_pcap(&p, &egress_conn(42000, b"cnic 35202-1234567-2 sent", &[100], 0)).unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.extend_from_slice(&[1, 0, 0, 0, 0, 0]); // 6 of a record header's 16 bytes
    std::fs::write(&p, &bytes).unwrap();
    let r = read(dir.path(), &p, &[]);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(
        r.stdout.contains("35202-*******-2"),
        "flows before the damage are flushed: {}",
        r.stderr
    );
    if !r.status.success() {
        assert!(error_line(&r).contains("cut.pcap"));
    }
}

#[test]
fn pcapng_with_a_bad_block_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // A section header block, then a block whose length is not a multiple of 4 and runs past
    // the end of the file.
    let mut b = Vec::new();
    b.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    b.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&u64::MAX.to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    b.extend_from_slice(&6u32.to_le_bytes()); // enhanced packet block
    b.extend_from_slice(&0xffff_fff1u32.to_le_bytes());
    b.extend_from_slice(&[0xab; 20]);
    let p = write(dir.path(), "bad.pcapng", &b);
    let r = read(dir.path(), &p, &[]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert!(error_line(&r).contains("bad.pcapng"));
}

#[test]
fn garbage_config_is_named_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("e.pcap");
    nigehban::synth::write_pcap(&cap, &[]).unwrap();
    let cfg = write(dir.path(), "n.toml", b"\x00\xff[[[ not toml at all = = \n");
    let r = read(dir.path(), &cap, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert!(error_line(&r).contains("n.toml"));

    let cfg = write(dir.path(), "typo.toml", b"[reassembly]\noverlap_polcy = \"last\"\n");
    let r = read(dir.path(), &cap, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    let line = error_line(&r);
    assert!(line.contains("typo.toml") && line.contains("overlap_polcy"), "{line}");
}

#[test]
fn bad_overlap_policy_names_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("e.pcap");
    nigehban::synth::write_pcap(&cap, &[]).unwrap();
    let r = read(dir.path(), &cap, &["--overlap-policy", "windows"]);
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("first, last"), "{}", r.stderr);

    let cfg = write(dir.path(), "n.toml", b"[reassembly]\noverlap_policy = \"bsd\"\n");
    let r = read(dir.path(), &cap, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    let line = error_line(&r);
    assert!(
        line.contains("reassembly.overlap_policy") && line.contains("first, last"),
        "{line}"
    );
}

#[test]
fn garbage_rules_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    write(&rules, "junk.toml", b"\x00\x01\x02 ]]]] \xff\xfe");
    let r = run(&["rules", "check", rules.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert!(error_line(&r).contains("junk.toml"));
}

#[test]
fn garbage_known_values_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("e.pcap");
    nigehban::synth::write_pcap(&cap, &[]).unwrap();
    let kv = write(dir.path(), "known.bin", b"\x89PNG\r\n\x1a\n not a hash list \xff\xff");
    let r = read(dir.path(), &cap, &["--known-values", kv.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert!(error_line(&r).contains("known.bin"));
}

#[test]
fn unusable_key_file_is_named() {
    // Any bytes make a key (binary keys are legitimate), so "garbage" here is a key file with
    // nothing in it, one of whitespace only, or a path that is not a readable file.
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("e.pcap");
    nigehban::synth::write_pcap(&cap, &[]).unwrap();
    write(dir.path(), "empty.key", b"");
    write(dir.path(), "blank.key", b" \n\t\n");
    std::fs::create_dir(dir.path().join("dir.key")).unwrap();
    for name in ["empty.key", "blank.key", "dir.key", "missing.key"] {
        let key = dir.path().join(name);
        let r = run(&[
            "read",
            cap.to_str().unwrap(),
            "--metrics-listen",
            "off",
            "--pii-key-file",
            key.to_str().unwrap(),
        ]);
        assert_eq!(r.status.code(), Some(1), "{name}: {}", r.stderr);
        assert!(error_line(&r).contains(name), "{name}: {}", r.stderr);
    }
}
