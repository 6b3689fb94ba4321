//! Evasion (Ptacek & Newsham, 1998) through the real binary on crafted captures: each technique is
//! either detected (the value is found, or an evasion alert says the sensor may have been fooled)
//! or pinned here as a documented blind spot, so a change in behaviour shows up as a failure.

mod common;

use common::*;
use nigehban::synth::{self, Flags, Frame, TcpConn};
use serde_json::Value;

const CNIC: &str = "35202-1234567-2";
/// The payload carrying the value, and the same length of harmless bytes an attacker sends in
/// its place to the sensor only.
const REAL: &[u8] = b"customer cnic 35202-1234567-2 verified";
const DECOY: &[u8] = b"customer cnic xxxxx-xxxxxxx-x verified";
const ISN: u32 = 1_000;

fn pii_hashes(run: &Run) -> Vec<String> {
    run.alerts
        .iter()
        .filter_map(|a| a["pii"]["matches"].as_array())
        .flatten()
        .map(|m| m["hash"].as_str().unwrap().to_string())
        .collect()
}

fn evasion_alerts(run: &Run) -> Vec<&Value> {
    run.alerts
        .iter()
        .filter(|a| a["event"]["dataset"] == "nigehban.evasion")
        .collect()
}

fn conn(port: u16) -> TcpConn {
    TcpConn::new(
        sa(&format!("10.0.0.5:{port}")),
        sa("203.0.113.10:80"),
        ISN,
        9_000,
        t(1_000_000),
    )
}

/// Handshake, then the 20 bytes from offset 10 twice (`first`, then `second`), then the first 10
/// bytes, which makes both copies overlap out-of-order bytes, then the close.
fn overlapping(port: u16, first: &[u8], second: &[u8]) -> Vec<Frame> {
    let mut c = conn(port);
    let data = ISN + 1;
    let mut f = c.handshake();
    f.push(c.frame_at(true, data + 10, Flags::ACK, &first[10..30]));
    f.push(c.frame_at(true, data + 10, Flags::ACK, &second[10..30]));
    f.push(c.frame_at(true, data, Flags::ACK, &first[..10]));
    f.push(c.frame_at(true, data + 30, Flags::ACK, &first[30..]));
    let end = data + first.len() as u32;
    f.push(c.frame_at(true, end, Flags::FIN_ACK, b""));
    f.push(c.frame_at(false, 9_001, Flags::FIN_ACK, b""));
    f
}

#[test]
fn overlap_with_conflicting_data_first_policy_scans_the_first_copy_and_alerts_once() {
    let run = read_frames(&overlapping(41000, REAL, DECOY), &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(pii_hashes(&run), vec![expected_hash(CNIC)]);
    let ev = evasion_alerts(&run);
    assert_eq!(ev.len(), 1, "one evasion alert per flow: {:?}", run.alerts);
    assert_eq!(ev[0]["rule"]["id"], "NGB-EVASION-001");
    assert_eq!(ev[0]["source"]["ip"], "10.0.0.5");
    assert_eq!(ev[0]["source"]["port"], 41000);
    assert_eq!(
        ev[0]["nigehban"]["evasion"]["stream_offset"], 14,
        "first differing byte"
    );
    assert!(ev[0].get("pii").is_none());
    assert!(!run.stdout.contains("1234567"), "no clear digits in alerts");
}

#[test]
fn overlap_with_conflicting_data_last_policy_scans_the_last_copy_and_alerts() {
    // The decoy comes first: under `first` the value is missed (and the conflict alerted);
    // under `last`, the policy of Windows receivers, the real copy replaces it and is found.
    let frames = overlapping(41001, DECOY, REAL);
    let first = read_frames(&frames, &[]);
    assert!(pii_hashes(&first).is_empty());
    assert_eq!(evasion_alerts(&first).len(), 1);

    let last = read_frames(&frames, &["--overlap-policy", "last"]);
    assert!(last.status.success(), "{}", last.stderr);
    assert_eq!(pii_hashes(&last), vec![expected_hash(CNIC)]);
    assert_eq!(evasion_alerts(&last).len(), 1);
}

#[test]
fn overlap_policy_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("n.toml");
    std::fs::write(&cfg, "[reassembly]\noverlap_policy = \"last\"\n").unwrap();
    let run = read_frames(&overlapping(41002, DECOY, REAL), &["--config", cfg.to_str().unwrap()]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(pii_hashes(&run), vec![expected_hash(CNIC)]);
}

#[test]
fn many_conflicts_in_one_flow_raise_one_evasion_alert() {
    let (real, decoy) = ([REAL, REAL].concat(), [DECOY, DECOY].concat());
    let mut c = conn(41004);
    let data = ISN + 1;
    let mut f = c.handshake();
    for (lo, hi) in [(10, 30), (48, 68)] {
        f.push(c.frame_at(true, data + lo, Flags::ACK, &real[lo as usize..hi as usize]));
        f.push(c.frame_at(true, data + lo, Flags::ACK, &decoy[lo as usize..hi as usize]));
    }
    for (lo, hi) in [(0, 10), (30, 48), (68, real.len() as u32)] {
        f.push(c.frame_at(true, data + lo, Flags::ACK, &real[lo as usize..hi as usize]));
    }
    f.push(c.frame_at(true, data + real.len() as u32, Flags::FIN_ACK, b""));
    f.push(c.frame_at(false, 9_001, Flags::FIN_ACK, b""));
    let run = read_frames(&f, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(pii_hashes(&run), vec![expected_hash(CNIC)]);
    assert_eq!(evasion_alerts(&run).len(), 1, "rate-limited to one per flow");
}

#[test]
fn identical_retransmissions_raise_no_evasion_alert() {
    let run = read_frames(&overlapping(41003, REAL, REAL), &[]);
    assert_eq!(pii_hashes(&run), vec![expected_hash(CNIC)]);
    assert!(evasion_alerts(&run).is_empty());
}

#[test]
fn one_byte_segments_are_reassembled() {
    let run = read_frames(&egress_conn(41010, REAL, &[1], 0), &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(pii_hashes(&run), vec![expected_hash(CNIC)]);
}

#[test]
fn segment_far_outside_the_window_does_not_hide_in_window_data() {
    // A receiver drops a segment 1 GB ahead of its window; the sensor holds it out of order (under
    // its caps) and must still see the real bytes in order.
    let mut c = conn(41020);
    let mut f = c.handshake();
    f.push(c.frame_at(true, ISN + 1 + (1 << 30), Flags::ACK, DECOY));
    f.extend(c.segments(true, REAL, &[7]));
    f.extend(c.close());
    let run = read_frames(&f, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(pii_hashes(&run), vec![expected_hash(CNIC)]);
}

#[test]
fn rst_with_a_bad_sequence_number_does_not_blind_the_sensor() {
    // The receiver ignores a RST outside its window; the sensor ends the flow on it, and picks
    // the connection up again at its next data segment, so the value is still found.
    let mut c = conn(41030);
    let mut f = c.handshake();
    f.push(c.frame_at(
        true,
        ISN + 500_000,
        Flags {
            rst: true,
            ..Flags::default()
        },
        b"",
    ));
    f.extend(c.segments(true, REAL, &[REAL.len()]));
    f.extend(c.close());
    let run = read_frames(&f, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(pii_hashes(&run), vec![expected_hash(CNIC)]);
}

#[test]
fn ip_fragments_overlapping_with_conflicting_data_keep_the_first_copy() {
    let mut c = conn(41040);
    let mut f = c.handshake();
    let seg = c.segments(true, REAL, &[REAL.len()]).remove(0);
    let frags = synth::ipv4_fragments(&seg, 16);
    assert!(frags.len() >= 3);
    // A second copy of the fragment holding the digits, with letters in their place.
    let mut decoy = frags[2].clone();
    for b in &mut decoy.data[34..] {
        if b.is_ascii_digit() {
            *b = b'x';
        }
    }
    f.extend(frags.iter().take(2).cloned());
    f.push(frags[2].clone());
    f.push(decoy);
    f.extend(frags.iter().skip(3).cloned());
    f.extend(c.close());
    let run = read_frames(&f, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(pii_hashes(&run), vec![expected_hash(CNIC)]);
}

/// A decoy in order with a broken TCP checksum (the receiver drops it), then the real bytes as a
/// "retransmission", after `warmup` packets of clean traffic.
fn bad_checksum_decoy(port: u16, warmup: usize) -> Vec<Frame> {
    let mut f = Vec::new();
    let mut p = 50_000;
    while f.len() < warmup {
        p += 1;
        f.extend(egress_conn(p, b"nothing to see here", &[19], 0));
    }
    let mut c = conn(port);
    f.extend(c.handshake());
    let mut decoy = c.frame_at(true, ISN + 1, Flags::ACK, DECOY);
    decoy.data[14 + 20 + 16] ^= 0x5a; // TCP checksum
    f.push(decoy);
    f.push(c.frame_at(true, ISN + 1, Flags::ACK, REAL));
    let end = ISN + 1 + REAL.len() as u32;
    f.push(c.frame_at(true, end, Flags::FIN_ACK, b""));
    f.push(c.frame_at(false, 9_001, Flags::FIN_ACK, b""));
    f.sort_by_key(|f| f.ts);
    f
}

#[test]
fn bad_checksum_decoy_is_dropped_when_checksums_are_verified() {
    let run = read_frames(&bad_checksum_decoy(41060, 0), &["--checksum-validation", "on"]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(pii_hashes(&run), vec![expected_hash(CNIC)]);
}

#[test]
fn bad_checksum_decoy_is_dropped_by_auto_after_a_clean_window() {
    let run = read_frames(&bad_checksum_decoy(41061, 1100), &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(pii_hashes(&run), vec![expected_hash(CNIC)]);
}

#[test]
fn bad_checksum_decoy_wins_when_not_verified() {
    // `off`, and `auto` within its first (measuring) window, keep the decoy: documented.
    for extra in [&["--checksum-validation", "off"][..], &[]] {
        let run = read_frames(&bad_checksum_decoy(41062, 0), extra);
        assert!(run.status.success(), "{}", run.stderr);
        assert!(pii_hashes(&run).is_empty(), "{extra:?}");
    }
}

#[test]
fn in_order_decoy_then_real_retransmission_is_a_documented_blind_spot() {
    // TTL tricks: a decoy the receiver never gets (its TTL expires between the sensor and the
    // receiver; the sensor cannot know the hop count) arrives first and in order, then the real bytes as a "retransmission". Delivered
    // bytes are not kept, so the sensor cannot tell the copies differ: the value is missed and no
    // evasion alert is raised. Pinned so the day this is caught, this test is updated.
    let mut c = conn(41050);
    let mut f = c.handshake();
    f.push(c.frame_at(true, ISN + 1, Flags::ACK, DECOY));
    f.push(c.frame_at(true, ISN + 1, Flags::ACK, REAL));
    let end = ISN + 1 + REAL.len() as u32;
    f.push(c.frame_at(true, end, Flags::FIN_ACK, b""));
    f.push(c.frame_at(false, 9_001, Flags::FIN_ACK, b""));
    let run = read_frames(&f, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert!(pii_hashes(&run).is_empty());
    assert!(evasion_alerts(&run).is_empty());
}
