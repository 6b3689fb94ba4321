use super::*;
use crate::l7::mime::recorder::Recorder;

fn run(pieces: &[&[u8]]) -> (Recorder, Evidence) {
    let mut d = SmtpDecoder::new();
    let mut r = Recorder::default();
    for p in pieces {
        d.data(p, &mut r);
    }
    d.finish(&mut r);
    (r, d.evidence().clone())
}

/// Every two-piece split and byte-by-byte feeding equal the whole.
fn split_invariant(input: &[u8]) -> (Recorder, Evidence) {
    let whole = run(&[input]);
    for cut in 0..=input.len() {
        let split = run(&[&input[..cut], &input[cut..]]);
        assert!(split == whole, "split at {cut} differs from the whole");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert!(run(&bytes) == whole, "byte-by-byte differs");
    whole
}

#[test]
fn probe_needs_a_greeting() {
    assert_eq!(probe(b"EHLO mail.example.pk\r\n"), Probe::Yes);
    assert_eq!(probe(b"helo x"), Probe::Yes);
    assert_eq!(probe(b"eh"), Probe::Unsure);
    assert_eq!(probe(b"HELO"), Probe::Unsure);
    assert_eq!(probe(b""), Probe::Unsure);
    assert_eq!(probe(b"EHLOX"), Probe::No);
    assert_eq!(probe(b"GET / HTTP/1.1"), Probe::No);
}

const SESSION: &[u8] = b"EHLO client.example.pk\r\n\
MAIL FROM:<Clerk@Branch7.Example.PK> SIZE=900\r\n\
RCPT TO:<3520212345671@Mail.Example.com>\r\n\
RCPT TO:<boss@mail.example.com>\r\n\
RCPT TO:<x@Other.org>\r\n\
DATA\r\n\
From: clerk@branch7.example.pk\r\n\
Subject: =?UTF-8?B?2LTZhtin2K7YqtuMINqp2KfYsdqIIDM1MjAyLTEyMzQ1NjctMQ==?=\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
CNIC 42101-98=\r\n76543-1\r\n\
..35202-1234567-1 stuffed\r\n\
..\r\n\
--b1\r\n\
Content-Disposition: attachment; filename=\"list.csv\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
MzUyMDItMTIzNDU2Ny0xCjQyMTAxLTk4NzY1NDMtMQo=\r\n\
--b1--\r\n\
.\r\n\
MAIL FROM:<>\r\n\
RCPT TO:<ops@second.example>\r\n\
DATA\r\n\
Subject: two\r\n\
\r\n\
second 61101-1234567-3\r\n\
.\r\n\
QUIT\r\n";

#[test]
fn session_with_two_messages_is_split_invariant() {
    let (r, ev) = split_invariant(SESSION);
    // Commands are scanned, recipients' local parts included.
    let rcpt = r
        .at(Location::Command)
        .into_iter()
        .filter(|s| s.name == b"RCPT")
        .count();
    assert_eq!(rcpt, 4);
    assert!(r.data(Location::Command, "RCPT") == Some(&b"RCPT TO:<3520212345671@Mail.Example.com>\r\n"[..]));
    let subject = r.data(Location::Header, "Subject").unwrap();
    assert!(subject == "Subject: شناختی کارڈ 35202-1234567-1".as_bytes());
    let text = r
        .at(Location::Body)
        .into_iter()
        .find(|s| s.data.starts_with(b"CNIC"))
        .unwrap();
    assert!(
        text.data == b"CNIC 42101-9876543-1\r\n.35202-1234567-1 stuffed\r\n.",
        "QP joined, dots unstuffed"
    );
    assert!(r.data(Location::Attachment, "list.csv") == Some(&b"35202-1234567-1\n42101-9876543-1\n"[..]));
    assert!(r.contains(b"second 61101-1234567-3\r\n"));
    assert!(r.data(Location::Command, "QUIT").is_some());
    // Evidence is the last transaction's: null sender, one recipient domain.
    assert_eq!(ev.smtp_from_domain, "");
    assert_eq!(ev.smtp_to_domains, ["second.example"]);
    assert!(r.events.is_empty());
}

#[test]
fn evidence_is_domains_only_lower_case_distinct_and_bounded() {
    let mut d = SmtpDecoder::new();
    let mut r = Recorder::default();
    d.data(b"EHLO x\r\nmail from:<Clerk@Branch7.Example.PK>\r\n", &mut r);
    for i in 0..40 {
        d.data(format!("RCPT TO:<u{i}@d{}.Example.COM>\r\n", i % 20).as_bytes(), &mut r);
        d.data(b"RCPT TO:<u@d0.example.com>\r\n", &mut r);
    }
    d.data(b"RCPT TO:<a@1234567890123.example>\r\n", &mut r);
    let ev = d.evidence();
    assert_eq!(ev.smtp_from_domain, "branch7.example.pk");
    assert_eq!(ev.smtp_to_domains.len(), MAX_DOMAINS);
    assert_eq!(ev.smtp_to_domains[0], "d0.example.com");
    assert!(
        ev.smtp_to_domains.iter().all(|d| !d.contains('u')),
        "local parts never kept"
    );
    // A digit run in a domain is redacted (evidence never carries a number in clear).
    d.data(b"RSET\r\nMAIL FROM:<a@35202-1234567-1.example>\r\n", &mut r);
    assert_eq!(d.evidence().smtp_from_domain, "*****-*******-*.example");
    assert!(d.evidence().smtp_to_domains.is_empty(), "reset per transaction");
}

#[test]
fn starttls_stops_scanning() {
    let mut input = b"EHLO x\r\nSTARTTLS\r\n\x16\x03\x01\x02\x00".to_vec();
    input.extend_from_slice(b"MAIL FROM:<a@b.c>\r\nDATA\r\n35202-1234567-1\r\n.\r\n");
    let (r, ev) = split_invariant(&input);
    assert_eq!(r.events, [L7Event::StartTls]);
    assert_eq!(r.sections.len(), 2, "EHLO and STARTTLS only");
    assert!(!r.contains(b"35202"));
    assert_eq!(ev, Evidence::default());
}

#[test]
fn refused_starttls_goes_on_in_clear() {
    let input = b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<a@b.example>\r\nDATA\r\n\r\n35202-1234567-1\r\n.\r\n";
    let (r, ev) = split_invariant(input);
    assert_eq!(r.events, [L7Event::StartTls]);
    assert!(r.data(Location::Body, "") == Some(&b"35202-1234567-1\r\n"[..]));
    assert_eq!(ev.smtp_from_domain, "b.example");
}

#[test]
fn terminator_variants_and_lone_cr_after_a_dot() {
    // `.` CR x is stuffing followed by a CR; `.` LF ends leniently.
    let input = b"EHLO x\r\nDATA\r\n\r\na\r\n.\rb\r\n.\nNOOP\r\n";
    let (r, _) = split_invariant(input);
    assert!(r.data(Location::Body, "") == Some(&b"a\r\n\rb\r\n"[..]));
    assert!(r.data(Location::Command, "NOOP").is_some());
}

#[test]
fn bdat_chunks_form_one_message() {
    let body = b"Subject: s\r\n\r\n35202-123";
    let rest = b"4567-1\r\n";
    let mut input = format!("EHLO x\r\nMAIL FROM:<a@b.example>\r\nBDAT {}\r\n", body.len()).into_bytes();
    input.extend_from_slice(body);
    input.extend_from_slice(format!("BDAT {} LAST\r\n", rest.len()).as_bytes());
    input.extend_from_slice(rest);
    input.extend_from_slice(b"BDAT 0 LAST\r\nQUIT\r\n");
    let (r, _) = split_invariant(&input);
    assert!(r.data(Location::Body, "") == Some(&b"35202-1234567-1\r\n"[..]));
    assert!(r.data(Location::Header, "Subject").is_some());
    assert!(r.data(Location::Command, "QUIT").is_some());
}

#[test]
fn a_gap_in_data_is_counted_and_the_next_transaction_decodes() {
    let mut d = SmtpDecoder::new();
    let mut r = Recorder::default();
    d.data(
        b"EHLO x\r\nDATA\r\nContent-Transfer-Encoding: base64\r\n\r\nMzUy",
        &mut r,
    );
    d.gap(100, &mut r);
    d.data(b"MjAyLTEyMzQ1NjctMQ==\r\n.\r\nDATA\r\n\r\nafter\r\n.\r\n", &mut r);
    d.finish(&mut r);
    assert_eq!(r.events, [L7Event::GapInMessage]);
    assert!(r.contains(b"MjAyLTEyMzQ1NjctMQ=="), "raw after the gap");
    assert!(r.at(Location::Body).last().unwrap().data == b"after\r\n");
}

#[test]
fn a_gap_in_bdat_resumes_or_falls_back_to_raw() {
    let mut d = SmtpDecoder::new();
    let mut r = Recorder::default();
    d.data(b"EHLO x\r\nBDAT 20 LAST\r\n\r\n0123", &mut r);
    d.gap(6, &mut r);
    d.data(b"abcdefghNOOP\r\n", &mut r);
    d.finish(&mut r);
    assert!(r.data(Location::Command, "NOOP").is_some(), "framing kept");

    let mut d = SmtpDecoder::new();
    let mut r = Recorder::default();
    d.data(b"EHLO x\r\nBDAT 20 LAST\r\n\r\n0123", &mut r);
    d.gap(0, &mut r);
    d.data(b"NOOP 35202-1234567-1\r\n", &mut r);
    d.finish(&mut r);
    assert!(
        r.at(Location::Raw).len() == 1 && r.contains(b"35202-1234567-1"),
        "unknown gap: raw"
    );
}

#[test]
fn overlong_command_lines_pass_on_raw() {
    let mut input = b"EHLO x\r\nRCPT TO:<".to_vec();
    input.extend(std::iter::repeat_n(b'a', MAX_COMMAND + 100));
    input.extend_from_slice(b"35202-1234567-1@x.example>\r\nQUIT\r\n");
    let (r, _) = run(&[&input]);
    assert_eq!(r.events, [L7Event::HeaderTooLarge]);
    assert!(r.contains(b"35202-1234567-1@x.example>\r\n"));
    assert!(r.data(Location::Command, "QUIT").is_some());
    let mut d = SmtpDecoder::new();
    d.data(&input, &mut Recorder::default());
    assert!(d.memory() <= MAX_COMMAND + 64);
}

#[test]
fn commands_between_bdat_chunks_reopen_the_message_section() {
    let input = b"EHLO x\r\nBDAT 12\r\n\r\n35202-1234BDAT 7 LAST\r\n567-1\r\n";
    let (r, _) = split_invariant(input);
    assert!(
        r.data(Location::Body, "") == Some(&b"35202-1234567-1\r\n"[..]),
        "chunks joined"
    );
    let input = b"EHLO x\r\nBDAT 12\r\n\r\n35202-1234NOOP\r\nBDAT 7 LAST\r\n567-1\r\n";
    let (r, _) = split_invariant(input);
    let bodies: Vec<&[u8]> = r.at(Location::Body).iter().map(|s| &s.data[..]).collect();
    assert!(
        bodies == [&b"35202-1234"[..], &b"567-1\r\n"[..]],
        "the NOOP section in between"
    );
}

const WORDS: &[&[u8]] = &[
    b"EHLO x\r\n",
    b"DATA\r\n",
    b"BDAT 7\r\n",
    b"BDAT 3 LAST\r\n",
    b"BDAT 0 LAST\r\n",
    b".\r\n",
    b"\r\n.\r\n",
    b"..",
    b".",
    b"\r\n",
    b"\n",
    b"\r",
    b"MAIL FROM:<a@B.example>\r\n",
    b"RCPT TO:<3520212345671@y.example>\r\n",
    b"RSET\r\n",
    b"STARTTLS\r\n",
    b"\x16\x03",
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"--b\r\n",
    b"--b--",
    b"Content-Transfer-Encoding: base64\r\n",
    b"MzUy",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    /// Arbitrary SMTP-ish input never panics, and any split gives what the whole gives.
    #[test]
    fn fuzz_split_invariance(
        words in proptest::collection::vec(0..WORDS.len(), 0..60),
        a in proptest::prelude::any::<usize>(),
        b in proptest::prelude::any::<usize>(),
    ) {
        let input: Vec<u8> = words.iter().flat_map(|&i| WORDS[i].iter().copied()).collect();
        let (mut a, mut b) = (a % (input.len() + 1), b % (input.len() + 1));
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        proptest::prop_assert!(run(&[&input[..a], &input[a..b], &input[b..]]) == run(&[&input]));
    }
}

#[test]
fn the_dispatcher_picks_smtp_by_content_on_any_port() {
    use crate::l7::{AppDecoder, Protocol};
    let mut app = AppDecoder::new(40000, 2525);
    let mut r = Recorder::default();
    for c in SESSION.chunks(3) {
        app.data(c, &mut r);
    }
    app.finish(&mut r);
    assert_eq!(app.protocol(), Protocol::Smtp);
    assert!(r == run(&[SESSION]).0, "same as the decoder fed directly");
    assert_eq!(app.evidence().unwrap().smtp_to_domains, ["second.example"]);
}
