//! End-to-end detection through the real binary on captures built by the test: every split,
//! reordering, retransmission, encapsulation and direction the issue names.

mod common;

use common::*;
use nigehban::synth::{Flags, Frame, TcpConn};

const CNIC: &str = "35202-1234567-2";
const CARD: &str = "4532 0173 9246 5814";

fn assert_no_clear_values(run: &Run, values: &[&str]) {
    for v in values {
        let digits: String = v.chars().filter(|c| c.is_ascii_digit()).collect();
        for hay in [&run.stdout, &run.stderr] {
            assert!(!hay.contains(v), "a clear value appeared in the output");
            assert!(!hay.contains(&digits), "clear digits appeared in the output");
        }
    }
}

#[test]
fn cnic_split_at_every_byte_offset_is_found_once_per_flow() {
    let payload = format!("customer cnic {CNIC} verified");
    let mut frames = Vec::new();
    for cut in 1..payload.len() {
        frames.extend(egress_conn(
            20000 + cut as u16,
            payload.as_bytes(),
            &[cut, payload.len()],
            cut as u64 * 10_000,
        ));
    }
    frames.sort_by_key(|f| f.ts);
    let run = read_frames(&frames, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    let hashes = run.hashes();
    assert_eq!(hashes.len(), payload.len() - 1, "one report per flow");
    assert!(hashes.iter().all(|h| *h == expected_hash(CNIC)));
    assert_no_clear_values(&run, &[CNIC]);
    // Masked form as PCI/CNIC policy allows.
    assert_eq!(run.alerts[0]["pii"]["matches"][0]["masked"], "35202-*******-2");
}

#[test]
fn card_split_into_three_and_ten_segments_and_out_of_order() {
    let payload = format!("pay with {CARD} now");
    let mut frames = Vec::new();
    // Three segments at every pair of cut points inside the number.
    let mut port = 30000;
    for a in 9..18 {
        for b in (a + 1)..28 {
            port += 1;
            frames.extend(egress_conn(
                port,
                payload.as_bytes(),
                &[a, b - a, payload.len()],
                u64::from(port) * 1000,
            ));
        }
    }
    let n_three = port - 30000;
    // Ten tiny segments, delivered in reverse order.
    let mut c = TcpConn::new(sa("10.0.0.6:40000"), sa("203.0.113.10:443"), 5, 6, t(900_000_000));
    let mut rev = c.handshake();
    let mut segs = c.segments(true, payload.as_bytes(), &[3]);
    segs.reverse();
    rev.extend(segs);
    rev.extend(c.close());
    frames.extend(rev);
    let run = read_frames(&frames, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.hashes().len(), n_three as usize + 1);
    assert!(run.hashes().iter().all(|h| *h == expected_hash(CARD)));
    assert_eq!(run.alerts[0]["pii"]["matches"][0]["masked"], "453201******5814");
    assert_no_clear_values(&run, &[CARD]);
}

#[test]
fn retransmissions_and_overlaps_do_not_duplicate_or_hide() {
    let payload = format!("id card {CNIC} and card {CARD}.");
    let mut c = TcpConn::new(sa("10.0.0.7:40001"), sa("203.0.113.10:80"), 100, 200, t(0));
    let mut f = c.handshake();
    let base = c.client_seq;
    let segs = c.segments(true, payload.as_bytes(), &[10]);
    // Every segment twice, plus an overlapping re-send of the middle with the same bytes.
    for s in &segs {
        f.push(s.clone());
        f.push(s.clone());
    }
    f.push(c.frame_at(true, base + 5, Flags::ACK, &payload.as_bytes()[5..30]));
    f.extend(c.close());
    let run = read_frames(&f, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    let mut want = vec![expected_hash(CNIC), expected_hash(CARD)];
    want.sort();
    assert_eq!(run.hashes(), want);
}

#[test]
fn ipv6_vlan_qinq_and_midstream_pickup() {
    let payload = format!("cnic {CNIC}");
    // IPv6 with a full handshake.
    let mut v6 = TcpConn::new(sa("[fd00::5]:40000"), sa("[2001:db8::10]:443"), 1, 2, t(0));
    let mut frames = v6.handshake();
    frames.extend(v6.send(true, payload.as_bytes()));
    frames.extend(v6.close());
    // Single VLAN tag and QinQ.
    for (port, vlans) in [(40010u16, vec![100u16]), (40011, vec![200, 300])] {
        let mut c = TcpConn::new(
            sa(&format!("10.0.0.8:{port}")),
            sa("203.0.113.10:443"),
            1,
            2,
            t(u64::from(port)),
        );
        c.vlans = vlans;
        frames.extend(c.handshake());
        frames.extend(c.send(true, payload.as_bytes()));
        frames.extend(c.close());
    }
    // Midstream: capture starts after the handshake.
    let mut m = TcpConn::new(
        sa("10.0.0.9:40020"),
        sa("203.0.113.10:443"),
        4_294_967_270,
        2,
        t(50_000),
    );
    m.handshake();
    frames.extend(m.send(true, b"earlier bytes of a long-lived session; "));
    frames.extend(m.send(true, payload.as_bytes()));
    frames.sort_by_key(|f| f.ts);
    let run = read_frames(&frames, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.hashes().len(), 4, "{:?}", run.alerts);
    let v6_alert = run
        .alerts
        .iter()
        .find(|a| a["network"]["type"] == "ipv6")
        .expect("an IPv6 alert");
    assert_eq!(v6_alert["source"]["ip"], "fd00::5");
    assert_eq!(v6_alert["destination"]["ip"], "2001:db8::10");
}

#[test]
fn ipv4_fragments_in_any_order_are_reassembled() {
    let payload = format!("{:>200}cnic {CNIC} end", "");
    let mut c = TcpConn::new(sa("10.0.0.10:40030"), sa("203.0.113.10:443"), 1, 2, t(0));
    let mut frames = c.handshake();
    let seg = c.segments(true, payload.as_bytes(), &[payload.len()]).remove(0);
    let mut frags = nigehban::synth::ipv4_fragments(&seg, 64);
    assert!(frags.len() >= 3);
    frags.reverse();
    frames.extend(frags);
    frames.extend(c.close());
    let run = read_frames(&frames, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.hashes(), vec![expected_hash(CNIC)]);
}

#[test]
fn decoys_never_alert() {
    let decoys = [
        "{\"ts\":1732212345678,\"t2\":1763769600123}", // millisecond timestamps
        "order 4111111111111112 ref",                  // Luhn-invalid
        "run 41111111111111111111 end",                // 20-digit run containing a valid PAN
        "id 05202-1234567-2 x 85202-1234567-2",        // CNIC-shaped, first digit 0 / 8
        "35202-1234567-23",                            // CNIC followed by another digit
        "4111-1111 1111-1111",                         // mixed separators
        "bare 3520212345672 without any context",      // bare 13 digits, no keyword
    ];
    let mut frames = Vec::new();
    for (i, d) in decoys.iter().enumerate() {
        frames.extend(egress_conn(41000 + i as u16, d.as_bytes(), &[7], i as u64 * 10_000));
    }
    let run = read_frames(&frames, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.alerts.is_empty(), "decoys alerted: {:?}", run.alerts);
}

#[test]
fn bare_cnic_alerts_only_next_to_a_keyword() {
    let frames = egress_conn(41100, b"national_id: 3520212345672;", &[5], 0);
    let run = read_frames(&frames, &[]);
    assert_eq!(run.hashes(), vec![expected_hash("3520212345672")]);
}

/// One conversation between `a` and `b` where each side sends a CNIC.
fn both_ways(a: &str, b: &str, start: u64) -> Vec<Frame> {
    let mut c = TcpConn::new(sa(a), sa(b), 10, 20, t(start));
    let mut f = c.handshake();
    f.extend(c.send(true, b"client says cnic 35202-1234567-2\n"));
    f.extend(c.send(false, b"server says cnic 61101-7654321-8\n"));
    f.extend(c.close());
    f
}

#[test]
fn only_inside_to_outside_bytes_alert() {
    let mut frames = Vec::new();
    frames.extend(both_ways("10.0.0.1:1000", "203.0.113.1:80", 0)); // inside client → outside: client's CNIC
    frames.extend(both_ways("198.51.100.1:1001", "192.168.1.1:80", 100_000)); // outside client → inside server: server's CNIC
    frames.extend(both_ways("10.0.0.1:1002", "10.0.0.2:80", 200_000)); // inside ↔ inside: nothing
    frames.extend(both_ways("198.51.100.1:1003", "203.0.113.1:80", 300_000)); // outside ↔ outside: nothing
    let run = read_frames(&frames, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    let mut got: Vec<(String, String, String)> = run
        .alerts
        .iter()
        .map(|a| {
            (
                a["source"]["ip"].as_str().unwrap().to_string(),
                a["destination"]["ip"].as_str().unwrap().to_string(),
                a["pii"]["matches"][0]["hash"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Flows are spread over workers, so alerts of different flows may interleave.
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "10.0.0.1".into(),
                "203.0.113.1".into(),
                expected_hash("35202-1234567-2")
            ),
            (
                "192.168.1.1".into(),
                "198.51.100.1".into(),
                expected_hash("61101-7654321-8")
            ),
        ]
    );
    for a in &run.alerts {
        assert_eq!(a["network"]["direction"], "egress");
        assert!(a["network"]["community_id"].as_str().unwrap().starts_with("1:"));
    }
    // --home-net moves the boundary: with only 10.0.0.1 inside, 10.0.0.2 is outside.
    let run = read_frames(
        &both_ways("10.0.0.1:1002", "10.0.0.2:80", 0),
        &["--home-net", "10.0.0.1/32"],
    );
    assert_eq!(run.hashes(), vec![expected_hash("35202-1234567-2")]);
}

#[test]
fn bulk_upload_reports_each_value_once_in_few_alerts() {
    // 450 distinct card numbers (Luhn-valid Visa, generated), each sent twice.
    let cards: Vec<String> = (0..450u64)
        .map(|i| luhn_complete(&format!("4{:014}", 100_000_000 + i * 7919)))
        .collect();
    let mut body = String::from("card\n");
    for c in cards.iter().chain(cards.iter()) {
        body.push_str(c);
        body.push('\n');
    }
    let mut c = TcpConn::new(sa("10.0.0.11:40040"), sa("203.0.113.10:443"), 1, 2, t(0));
    let mut frames = c.handshake();
    frames.extend(c.send(true, body.as_bytes()));
    frames.extend(c.close());
    let run = read_frames(&frames, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    let mut want: Vec<String> = cards.iter().map(|c| expected_hash(c)).collect();
    want.sort();
    assert_eq!(run.hashes(), want, "every distinct value exactly once");
    assert!(
        run.alerts.len() <= 2 + 450 / 100,
        "{} alerts for one upload",
        run.alerts.len()
    );
    for a in &run.alerts {
        assert!(a["pii"]["matches"].as_array().unwrap().len() <= 100);
    }
}

fn luhn_complete(prefix: &str) -> String {
    let digits: Vec<u32> = prefix.chars().map(|c| c.to_digit(10).unwrap()).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    format!("{prefix}{}", (10 - sum % 10) % 10)
}

#[test]
fn udp_datagrams_are_scanned() {
    let frames = vec![Frame {
        ts: t(0),
        data: nigehban::synth::udp_frame(
            sa("10.0.0.12:5353"),
            sa("203.0.113.53:53"),
            format!("identity card {CNIC}").as_bytes(),
        ),
    }];
    let run = read_frames(&frames, &[]);
    assert_eq!(run.hashes(), vec![expected_hash(CNIC)]);
    assert_eq!(run.alerts[0]["network"]["transport"], "udp");
}

#[test]
fn alert_is_raised_when_the_value_leaks_not_at_flow_end() {
    // The flow never closes; the alert's timestamp is the packet that completed the value.
    let payload = format!("cnic {CNIC}");
    let mut c = TcpConn::new(sa("10.0.0.13:40050"), sa("203.0.113.10:443"), 1, 2, t(0));
    let mut frames = c.handshake();
    frames.extend(c.segments(true, payload.as_bytes(), &[payload.len()]));
    let leak_ts = frames.last().unwrap().ts;
    c.ts = nigehban::clock::Timestamp::from_micros(leak_ts.as_micros() + 30_000_000);
    frames.extend(c.send(true, b"keepalive"));
    let run = read_frames(&frames, &[]);
    assert_eq!(run.alerts.len(), 1);
    assert_eq!(run.alerts[0]["@timestamp"], nigehban::alert::rfc3339(leak_ts));
}

#[test]
fn a_syn_reusing_a_finished_five_tuple_starts_a_new_flow_and_a_repeated_syn_does_not() {
    let payload = format!("customer cnic {CNIC} verified");
    let cut = payload.find(CNIC).expect("the value is in the payload") + 6;
    // One client port, two connections one after the other. The first ends with the client's
    // FIN only (the server never closes), so its flow is still held when the second SYN finds
    // it finished: that SYN starts a new flow, whose value is reported too.
    let (client, server) = (sa("10.0.0.5:41000"), sa("203.0.113.10:443"));
    let mut first = TcpConn::new(client, server, 1_000, 77, t(0));
    let mut frames = first.handshake();
    frames.extend(first.segments(true, payload.as_bytes(), &[payload.len()]));
    let fin_seq = first.client_seq;
    frames.push(first.frame_at(true, fin_seq, Flags::FIN_ACK, &[]));
    let mut second = TcpConn::new(client, server, 9_000_000, 5_000_000, t(10_000_000));
    frames.extend(second.handshake());
    frames.extend(second.segments(true, payload.as_bytes(), &[payload.len()]));
    frames.extend(second.close());
    // A SYN again in the middle of a live connection's data (a late retransmission): the flow
    // goes on, and the value split around it is found once.
    let mut c = TcpConn::new(sa("10.0.0.5:41001"), sa("203.0.113.10:443"), 5_000, 77, t(20_000_000));
    let isn = c.client_seq;
    frames.extend(c.handshake());
    frames.extend(c.segments(true, &payload.as_bytes()[..cut], &[cut]));
    frames.push(c.frame_at(true, isn, Flags::SYN, &[]));
    frames.extend(c.segments(true, &payload.as_bytes()[cut..], &[payload.len()]));
    frames.extend(c.close());
    let run = read_frames(&frames, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.hashes(), vec![expected_hash(CNIC); 3]);
    assert_no_clear_values(&run, &[CNIC]);
}
