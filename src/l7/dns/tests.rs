use super::*;
use crate::l7::mime::recorder::Recorder;
use crate::l7::L7Event;

fn header(flags: u16, qd: u16, an: u16) -> Vec<u8> {
    let mut h = vec![0x12, 0x34];
    for v in [flags, qd, an, 0, 0] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h
}

fn name(n: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in n.split('.').filter(|l| !l.is_empty()) {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

fn query(n: &str) -> Vec<u8> {
    let mut q = header(0x0100, 1, 0);
    q.extend(name(n));
    q.extend_from_slice(&[0, 1, 0, 1]);
    q
}

/// A response to `qname` whose answers' owner is a pointer to the question name.
fn response(qname: &str, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut m = header(0x8180, 1, answers.len() as u16);
    m.extend(name(qname));
    m.extend_from_slice(&[0, 16, 0, 1]);
    for (rtype, rdata) in answers {
        m.extend_from_slice(&[0xc0, 12]);
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }
    m
}

fn decode(msg: &[u8]) -> Option<(Recorder, Evidence)> {
    let mut r = Recorder::default();
    let mut ev = Evidence::default();
    let ok = datagram(msg, &mut r, &mut ev);
    assert!(
        ok || (r.sections.is_empty() && r.events.is_empty()),
        "nothing is emitted for non-DNS"
    );
    ok.then_some((r, ev))
}

fn texts(r: &Recorder, location: Location) -> Vec<String> {
    r.at(location)
        .iter()
        .map(|s| String::from_utf8_lossy(&s.data).into_owned())
        .collect()
}

/// Whether `b` holds `DDDDD-DDDDDDD-D`.
fn has_dashed_cnic(b: &[u8]) -> bool {
    b.windows(15).any(|w| {
        w.iter().enumerate().all(|(i, c)| {
            if i == 5 || i == 13 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
    })
}

#[test]
fn digits_split_across_labels_are_joined() {
    let (r, ev) = decode(&query("35202.1234567.1.x.Example")).unwrap();
    let q = texts(&r, Location::DnsQuery);
    assert!(q == ["35202.1234567.1.x.Example", "3520212345671.x.Example"]);
    assert!(r.at(Location::DnsQuery).iter().all(|s| s.name == b"x.example"));
    // Thirteen digits spelled over labels carry the same context as one 13-digit label.
    assert!(texts(&r, Location::DnsCnicLabel) == ["3520212345671"]);
    let (r, _) = decode(&query("35202.1234567.12.x.example")).unwrap();
    assert!(r.at(Location::DnsCnicLabel).is_empty(), "14 digits are not a CNIC");
    assert_eq!(ev.dns_domain, "x.example");
}

#[test]
fn a_13_digit_label_is_its_own_section() {
    let (r, ev) = decode(&query("3520212345671.exfil.example")).unwrap();
    assert!(
        texts(&r, Location::DnsQuery) == ["3520212345671.exfil.example"],
        "no digit labels to join"
    );
    assert!(texts(&r, Location::DnsCnicLabel) == ["3520212345671"]);
    assert_eq!(ev.dns_domain, "exfil.example");
    // Digits in the registered domain itself are redacted in evidence.
    let (_, ev) = decode(&query("a.3520212345671.example")).unwrap();
    assert_eq!(ev.dns_domain, "*************.example");
}

#[test]
fn joining_creates_no_dashed_cnic_and_skips_reverse_names() {
    // `1.2.3.4.5-1234567-1` must not become `12345-1234567-1`: only digit-only labels join.
    for n in [
        "1.2.3.4.5-1234567-1.example",
        "a-35202.1234.567.1-b.example",
        "x.35202.1234567-1.example",
        "35202-.1234567.-1.x.example",
    ] {
        let (r, _) = decode(&query(n)).unwrap();
        for s in r.at(Location::DnsQuery) {
            assert!(!has_dashed_cnic(&s.data), "{n}: a dashed CNIC was created");
        }
    }
    let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";
    let (r, _) = decode(&query(v6)).unwrap();
    assert_eq!(r.at(Location::DnsQuery).len(), 1);
    let (r, _) = decode(&query("10.1.168.192.in-addr.arpa")).unwrap();
    assert_eq!(r.at(Location::DnsQuery).len(), 1);
}

#[test]
fn a_response_scans_answers_not_the_echoed_question() {
    let mut txt = vec![13];
    txt.extend_from_slice(b"cnic=35202-12");
    txt.push(7);
    txt.extend_from_slice(b"34567-1");
    let cname = name("cdn.61101-1234567-3.example");
    let mut mx = vec![0, 10];
    mx.extend_from_slice(&[0xc0, 12]); // compressed: points at the question name
    let answers = [
        (16, txt),
        (5, cname),
        (15, mx),
        (1, vec![10, 0, 0, 1]),
        (10, b"null 42101".to_vec()),
    ];
    let (r, ev) = decode(&response("3520212345671.x.example", &answers)).unwrap();
    assert!(r.at(Location::DnsQuery).is_empty() && r.at(Location::DnsCnicLabel).is_empty());
    let a = texts(&r, Location::DnsAnswer);
    assert!(
        a == [
            "cnic=35202-1234567-1",
            "cdn.61101-1234567-3.example",
            "3520212345671.x.example",
            "null 42101"
        ]
    );
    assert_eq!(ev.dns_domain, "x.example");
}

#[test]
fn compression_pointer_loops_and_forward_pointers_are_rejected() {
    // The question name is a pointer to itself.
    let mut m = header(0x0100, 1, 0);
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert!(decode(&m).is_none());
    // Two pointers pointing at each other (the first one points forwards).
    let mut m = header(0x0100, 1, 0);
    m.extend_from_slice(&[0xc0, 14, 0xc0, 12, 0, 1, 0, 1]);
    assert!(decode(&m).is_none());
    // A reserved label type.
    let mut m = header(0x0100, 1, 0);
    m.extend_from_slice(&[0x40, 0, 0, 1, 0, 1]);
    assert!(decode(&m).is_none());
    // A CNAME whose data points back into itself.
    let mut resp = response("a.example", &[]);
    resp[7] = 1;
    let own = resp.len() + 12;
    resp.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2]);
    resp.extend_from_slice(&[0xc0 | (own >> 8) as u8, own as u8]);
    assert!(decode(&resp).is_none());
}

#[test]
fn truncated_and_non_dns_bytes_are_refused_whole() {
    let q = query("35202.1234567.1.x.example");
    let mut txt = vec![5];
    txt.extend_from_slice(b"hello");
    let resp = response("q.example", &[(16, txt), (5, name("c.example"))]);
    for msg in [&q, &resp] {
        assert!(decode(msg).is_some());
        for cut in 0..msg.len() {
            assert!(decode(&msg[..cut]).is_none(), "prefix of {cut} bytes accepted");
        }
    }
    assert!(decode(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_none());
    assert!(decode(&[0u8; 40]).is_none(), "no question");
    let mut bad_class = query("a.example");
    let n = bad_class.len();
    bad_class[n - 1] = 9;
    assert!(decode(&bad_class).is_none());
}

#[test]
fn label_count_is_bounded() {
    let ok = vec!["1"; 127].join(".") + ".x";
    assert!(decode(&query(&ok)).is_some());
    let too_many = vec!["1"; 128].join(".") + ".x";
    assert!(decode(&query(&too_many)).is_none());
}

fn framed(msgs: &[Vec<u8>]) -> Vec<u8> {
    msgs.iter()
        .flat_map(|m| (m.len() as u16).to_be_bytes().into_iter().chain(m.iter().copied()))
        .collect()
}

fn tcp(pieces: &[&[u8]]) -> (Recorder, Evidence) {
    let mut d = DnsTcpDecoder::new();
    let mut r = Recorder::default();
    for p in pieces {
        d.data(p, &mut r);
    }
    d.finish(&mut r);
    (r, d.evidence().clone())
}

#[test]
fn tcp_messages_split_anywhere_equal_the_whole() {
    let stream = framed(&[query("35202.1234567.1.a.example"), query("3520212345671.b.example")]);
    let whole = tcp(&[&stream]);
    assert_eq!(whole.1.dns_domain, "b.example");
    assert_eq!(whole.0.at(Location::DnsQuery).len(), 3);
    assert_eq!(
        whole.0.at(Location::DnsCnicLabel).len(),
        2,
        "one per query: split over labels and whole"
    );
    for cut in 0..=stream.len() {
        assert!(tcp(&[&stream[..cut], &stream[cut..]]) == whole, "split at {cut}");
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert!(tcp(&bytes) == whole);
}

#[test]
fn tcp_garbage_is_counted_and_passed_raw() {
    let mut stream = framed(&[query("a.example")]);
    stream.extend_from_slice(b"\x00\x10not a dns message 35202-1234567-1");
    let (r, _) = tcp(&[&stream]);
    assert_eq!(r.events, [L7Event::ParseError]);
    assert!(r.at(Location::Raw).len() == 1 && r.contains(b"not a dns message 35202-1234567-1"));
}

#[test]
fn tcp_gap_inside_a_message_resynchronises() {
    let first = query("35202.1234567.1.a.example");
    let stream = framed(&[first.clone(), query("3520212345671.b.example")]);
    let mut d = DnsTcpDecoder::new();
    let mut r = Recorder::default();
    d.data(&stream[..10], &mut r);
    d.gap(5, &mut r);
    d.data(&stream[15..], &mut r);
    d.finish(&mut r);
    assert_eq!(r.events, [L7Event::GapInMessage]);
    assert_eq!(r.at(Location::DnsCnicLabel).len(), 1, "the next message decodes");
    assert_eq!(d.evidence().dns_domain, "b.example");
    // A gap of unknown size: the rest is raw.
    let mut d = DnsTcpDecoder::new();
    let mut r = Recorder::default();
    d.data(&stream[..10], &mut r);
    d.gap(0, &mut r);
    d.data(&stream[15..], &mut r);
    assert!(r.at(Location::DnsQuery).is_empty() && r.at(Location::Raw).len() == 1);
}

#[test]
fn tcp_memory_is_bounded_by_one_message() {
    let mut d = DnsTcpDecoder::new();
    let mut r = Recorder::default();
    d.data(&[0xff, 0xff], &mut r);
    for _ in 0..110 {
        d.data(&[0u8; 600], &mut r);
    }
    assert!(d.memory() <= 2 * 65535);
    // The oversized buffer is released after the message.
    assert!(r.events == [L7Event::ParseError]);
    let mut d = DnsTcpDecoder::new();
    let big = query(&(vec!["a"; 100].join(".") + ".example"));
    let stream = framed(&[big.clone(), big]);
    for c in stream.chunks(7) {
        d.data(c, &mut r);
    }
    assert!(d.memory() < 4096);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
    /// Mutated messages never panic; when accepted, the TCP decoder gives the same at any split.
    #[test]
    fn fuzz_mutated_messages(
        flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..6),
        cut in proptest::prelude::any::<usize>(),
        which in 0usize..3,
    ) {
        let mut txt = vec![9];
        txt.extend_from_slice(b"x=35202-1");
        let mut msg = match which {
            0 => query("35202.1234567.1.a.example"),
            1 => response("a.b.example", &[(16, txt), (5, vec![1, b'c', 0xc0, 12])]),
            _ => query("3520212345671.example"),
        };
        for (at, v) in flips {
            let i = at % msg.len();
            msg[i] = v;
        }
        let _ = decode(&msg);
        let stream = framed(&[msg.clone(), query("a.example")]);
        let cut = cut % (stream.len() + 1);
        proptest::prop_assert!(tcp(&[&stream[..cut], &stream[cut..]]) == tcp(&[&stream]));
    }
}

#[test]
fn the_dispatcher_decodes_dns_over_tcp_on_port_53() {
    use crate::l7::{AppDecoder, Protocol};
    let stream = framed(&[query("35202.1234567.1.a.example"), query("3520212345671.b.example")]);
    let mut app = AppDecoder::new(40000, 53);
    let mut r = Recorder::default();
    for c in stream.chunks(5) {
        app.data(c, &mut r);
    }
    app.finish(&mut r);
    assert_eq!(app.protocol(), Protocol::Dns);
    assert!(r == tcp(&[&stream]).0);
    assert_eq!(app.evidence().unwrap().dns_domain, "b.example");
}
