//! MIME decoder tests. The oracle: any split of the input into pieces gives exactly what the
//! whole input gives (same sections, names, bytes and events).

use super::recorder::{Counter, Recorder};
use super::*;
use base64::Engine;
use proptest::prelude::*;

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Base64 wrapped at 76 columns with CRLF, as mailers send it.
fn b64_wrapped(data: &[u8]) -> String {
    b64(data)
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect()
}

/// Synthetic CNIC number `i` (first digit 1–7).
fn cnic(i: usize) -> String {
    format!(
        "{}{:04}-{:07}-{}",
        1 + i % 7,
        i % 10_000,
        (i * 7919) % 10_000_000,
        i % 10
    )
}

fn csv(rows: usize) -> Vec<u8> {
    let mut s = String::from("name,cnic\r\n");
    for i in 0..rows {
        s.push_str(&format!("customer {i},{}\r\n", cnic(i)));
    }
    s.into_bytes()
}

fn run(mut d: MimeDecoder, pieces: &[&[u8]]) -> Recorder {
    let mut r = Recorder::default();
    for p in pieces {
        d.data(p, &mut r);
    }
    d.finish(&mut r);
    r
}

fn message(input: &[u8]) -> Recorder {
    run(MimeDecoder::message(), &[input])
}

/// Every two-piece split (and byte-by-byte) equals the whole.
fn assert_split_invariant(make: &dyn Fn() -> MimeDecoder, input: &[u8]) -> Recorder {
    let whole = run(make(), &[input]);
    for cut in 0..=input.len() {
        let split = run(make(), &[&input[..cut], &input[cut..]]);
        assert!(
            split == whole,
            "split at {cut} differs from the whole: {split:?} vs {whole:?}"
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert!(run(make(), &bytes) == whole, "byte-by-byte differs");
    whole
}

const FORM: &[u8] = b"--XyZ\r\n\
Content-Disposition: form-data; name=\"national_id\"\r\n\
\r\n\
35202-1234567-1\r\n\
--XyZ\r\n\
Content-Disposition: form-data; name=\"note\"\r\n\
\r\n\
line one\r\n--XyZnot a delimiter\r\n-- XyZ\r\n\
--XyZ\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"cnic_35202123.csv\"\r\n\
Content-Type: text/csv\r\n\
\r\n\
a,b\r\n1,4210112345671\r\n\
--XyZ--\r\n";

#[test]
fn form_data_fields_and_file_are_named_sections() {
    let r = assert_split_invariant(&|| MimeDecoder::multipart(b"XyZ"), FORM);
    assert!(r.data(Location::Body, "national_id") == Some(&b"35202-1234567-1"[..]));
    assert!(r.data(Location::Body, "note") == Some(&b"line one\r\n--XyZnot a delimiter\r\n-- XyZ"[..]));
    // File names have their digit runs redacted; the header with the name is still scanned.
    assert!(r.data(Location::Attachment, "cnic_********.csv") == Some(&b"a,b\r\n1,4210112345671"[..]));
    assert!(r.data(Location::Header, "Content-Disposition").is_some());
    assert!(r.contains(b"filename=\"cnic_35202123.csv\""));
    assert!(r.events.is_empty());
}

#[test]
fn form_data_with_preamble_epilogue_and_no_final_line_break() {
    let input = b"preamble 1\r\n--b\r\nContent-Disposition: form-data; name=x\r\n\r\nv\r\n--b--";
    let r = assert_split_invariant(&|| MimeDecoder::multipart(b"b"), input);
    assert!(r.sections[0].data == b"preamble 1");
    assert!(r.data(Location::Body, "x") == Some(&b"v"[..]));
    let input = b"--b\r\n\r\nv\r\n--b--\r\nepilogue";
    let r = assert_split_invariant(&|| MimeDecoder::multipart(b"b"), input);
    assert!(r.sections.last().unwrap().data == b"epilogue");
}

#[test]
fn bare_lf_line_breaks_and_crs_inside_content() {
    let input = b"--b\nContent-Type: text/plain\n\nx\r\r\ny\r\n\r\nz\r\n--b--\n";
    let r = assert_split_invariant(&|| MimeDecoder::multipart(b"b"), input);
    assert!(r.at(Location::Body)[0].data == b"x\r\r\ny\r\n\r\nz");
}

/// A three-level message: mixed → alternative (text QP, html) + related → CSV attachment.
fn nested_message(rows: usize) -> (Vec<u8>, Vec<u8>) {
    let data = csv(rows);
    let msg = format!(
        "From: a@example.pk\r\n\
Subject: =?UTF-8?B?{subj}?=\r\n\
\x20=?UTF-8?Q?_35202-1234567-1?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed;\r\n\tboundary=\"outer\"\r\n\
\r\n\
This is a multi-part message in MIME format.\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"=_alt\"\r\n\
\r\n\
--=_alt\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Customer CNIC 35202-12=\r\n34567-1 and card 4111 1111 =\r\n1111 1111=2E\r\n\
--=_alt\r\n\
Content-Type: multipart/related; boundary=inner\r\n\
\r\n\
--inner\r\n\
Content-Type: text/csv; name=\"list.csv\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"customers.csv\"\r\n\
\r\n\
{att}\
--inner--\r\n\
--=_alt--\r\n\
--outer--\r\n",
        subj = b64("شناختی کارڈ".as_bytes()),
        att = b64_wrapped(&data),
    );
    (msg.into_bytes(), data)
}

#[test]
fn nested_three_levels_with_base64_csv_and_qp_text() {
    let (msg, data) = nested_message(400);
    let r = message(&msg);
    let subject = r.data(Location::Header, "Subject").unwrap();
    assert!(subject == "Subject: شناختی کارڈ 35202-1234567-1".as_bytes());
    let body = r
        .at(Location::Body)
        .into_iter()
        .find(|s| s.data.starts_with(b"Customer"))
        .unwrap();
    assert!(body.data == b"Customer CNIC 35202-1234567-1 and card 4111 1111 1111 1111.");
    let att = r.data(Location::Attachment, "customers.csv").unwrap();
    assert!(att == &data[..], "attachment decoded exactly");
    assert!(att.split(|&b| b == b'\n').count() > 400);
    assert!(r.events.is_empty());
    // The preamble is scanned too (nothing lost); no delimiter or header leaks into a body.
    assert!(r.contains(b"multi-part message"));
    assert!(!r
        .at(Location::Body)
        .iter()
        .any(|s| s.data.windows(2).any(|w| w == b"--")));
}

#[test]
fn nested_message_survives_every_split() {
    let (msg, _) = nested_message(3);
    assert_split_invariant(&MimeDecoder::message, &msg);
}

#[test]
fn urdu_subject_in_q_encoding_and_latin1() {
    let msg = "Subject: =?utf-8?Q?=D8=B4=D9=86=D8=A7=D8=AE=D8=AA=DB=8C_35202-1234567-1?=\r\n\
Comments: =?ISO-8859-1?Q?Jos=E9?=\r\n\r\nbody";
    let r = message(msg.as_bytes());
    assert!(r.data(Location::Header, "Subject") == Some("Subject: شناختی 35202-1234567-1".as_bytes()));
    assert!(r.data(Location::Header, "Comments") == Some("Comments: José".as_bytes()));
    assert!(r.data(Location::Body, "") == Some(&b"body"[..]));
}

#[test]
fn message_without_headers_is_all_body() {
    let r = message(b"CNIC 35202-1234567-1 sent\r\nbye\r\n");
    assert!(r.sections.len() == 1 && r.sections[0].data == b"CNIC 35202-1234567-1 sent\r\nbye\r\n");
}

#[test]
fn latin1_text_part_becomes_utf8_and_unknown_encodings_pass_through() {
    let msg = b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9";
    assert!(message(msg).data(Location::Body, "") == Some("café".as_bytes()));
    let msg = b"Content-Transfer-Encoding: x-uuencode\r\n\r\nraw =41";
    assert!(message(msg).data(Location::Body, "") == Some(&b"raw =41"[..]));
}

#[test]
fn enclosed_message_headers_and_body_are_decoded() {
    let inner = "Subject: =?UTF-8?B?MzUyMDItMTIzNDU2Ny0x?=\r\nContent-Transfer-Encoding: base64\r\n\r\nMzUyMDItMTIzNDU2Ny0x\r\n";
    let msg = format!(
        "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: message/rfc822\r\n\r\n{inner}--m--\r\n"
    );
    let r = message(msg.as_bytes());
    assert!(r.data(Location::Header, "Subject") == Some(&b"Subject: 35202-1234567-1"[..]));
    assert!(r.data(Location::Body, "") == Some(&b"35202-1234567-1"[..]));
}

#[test]
fn nesting_beyond_the_bound_is_counted_and_scanned_undecoded() {
    let depth = MAX_DEPTH + 2;
    let mut msg = String::new();
    for i in 0..depth {
        msg.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
        ));
    }
    msg.push_str("Content-Transfer-Encoding: base64\r\n\r\nMzUyMDItMTIzNDU2Ny0x\r\n");
    for i in (0..depth).rev() {
        msg.push_str(&format!("--b{i}--\r\n"));
    }
    let r = message(msg.as_bytes());
    assert!(r.events == [L7Event::NestingTooDeep]);
    // The too-deep multipart is one raw body: its inner headers and base64 are all there.
    assert!(r.contains(b"MzUyMDItMTIzNDU2Ny0x"));
    assert!(r.contains(&format!("--b{}", MAX_DEPTH + 1).into_bytes()));
    assert_split_invariant(&MimeDecoder::message, msg.as_bytes());
}

#[test]
fn an_outer_delimiter_closes_unterminated_inner_parts() {
    let msg = b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n\
Content-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\n\r\ninner\r\n--o\r\n\r\nnext\r\n--o--\r\n";
    let r = assert_split_invariant(&MimeDecoder::message, msg);
    let bodies: Vec<&[u8]> = r.at(Location::Body).iter().map(|s| &s.data[..]).collect();
    assert!(bodies == [&b"inner"[..], &b"next"[..]]);
}

#[test]
fn nested_boundary_that_extends_the_outer_one() {
    // The inner boundary starts with the outer one: each delimiter line is matched exactly.
    let msg = b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n\
Content-Type: multipart/mixed; boundary=a_1\r\n\r\n--a_1\r\n\r\none\r\n--a_1\r\n\r\ntwo\r\n--a_1--\r\n--a--\r\n";
    let r = assert_split_invariant(&MimeDecoder::message, msg);
    let bodies: Vec<&[u8]> = r.at(Location::Body).iter().map(|s| &s.data[..]).collect();
    assert!(bodies == [&b"one"[..], &b"two"[..]]);
}

#[test]
fn folded_headers_are_unfolded_and_long_ones_counted() {
    let msg = b"X-Note: cnic\r\n  35202-1234567-1\r\n\r\n";
    assert!(message(msg).data(Location::Header, "X-Note") == Some(&b"X-Note: cnic  35202-1234567-1"[..]));

    let mut msg = b"X-Long: ".to_vec();
    msg.extend(std::iter::repeat_n(b'a', MAX_LINE + 10));
    msg.extend_from_slice(b" 35202-1234567-1\r\nSubject: s\r\n\r\nbody");
    let r = message(&msg);
    assert!(r.events == [L7Event::HeaderTooLarge]);
    assert!(r.contains(b"35202-1234567-1"), "the overlong line is passed on raw");
    assert!(r.data(Location::Header, "Subject") == Some(&b"Subject: s"[..]));
    assert!(r.data(Location::Body, "") == Some(&b"body"[..]));

    let mut msg = b"X-Fold: a\r\n".to_vec();
    for _ in 0..(MAX_HEADER / 100 + 2) {
        msg.extend_from_slice(b" ");
        msg.extend(std::iter::repeat_n(b'b', 99));
        msg.extend_from_slice(b"\r\n");
    }
    msg.extend_from_slice(b" 35202-1234567-1\r\n\r\nbody");
    let r = message(&msg);
    assert!(r.events == [L7Event::HeaderTooLarge]);
    assert!(r.contains(b"35202-1234567-1"));
    assert!(r.data(Location::Body, "") == Some(&b"body"[..]));
}

#[test]
fn a_gap_passes_the_part_on_raw_until_the_next_delimiter() {
    let mut d = MimeDecoder::message();
    let mut r = Recorder::default();
    d.data(
        b"Content-Type: multipart/mixed; boundary=g\r\n\r\n--g\r\nContent-Transfer-Encoding: base64\r\n\r\nMzUy",
        &mut r,
    );
    d.gap(&mut r);
    d.data(
        b"MjAyLTEyMzQ1NjctMQ==\r\n--g\r\nContent-Transfer-Encoding: base64\r\n\r\nMTIz\r\n--g--\r\n",
        &mut r,
    );
    d.finish(&mut r);
    assert!(r.sections.iter().map(|s| s.gaps).sum::<usize>() == 1);
    assert!(r.contains(b"MjAyLTEyMzQ1NjctMQ=="), "raw after the gap");
    assert!(
        r.at(Location::Body).last().unwrap().data == b"123",
        "decoding resumes at the delimiter"
    );
}

#[test]
fn huge_attachment_streams_with_bounded_memory() {
    let boundary = b"big";
    let mut d = MimeDecoder::multipart(boundary);
    let mut c = Counter::default();
    d.data(
        b"--big\r\nContent-Disposition: form-data; name=f; filename=x.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        &mut c,
    );
    let line = format!("{}\r\n", b64(&[b'7'; 57]));
    let piece = line.repeat(1000); // 78 KB of base64 per piece
    let mut peak = 0;
    for _ in 0..100 {
        d.data(piece.as_bytes(), &mut c);
        peak = peak.max(d.memory());
    }
    // A line with no break at all, 8 MB long, in one body.
    d.data(b"\r\n--big\r\nContent-Disposition: form-data; name=g\r\n\r\n", &mut c);
    let long = vec![b'x'; 1 << 20];
    for _ in 0..8 {
        d.data(&long, &mut c);
        peak = peak.max(d.memory());
    }
    d.data(b"\r\n--big--\r\n", &mut c);
    d.finish(&mut c);
    assert!(c.sevens == 57 * 1000 * 100, "every decoded byte arrived");
    assert!(c.bytes >= 57 * 1000 * 100 + (8 << 20));
    assert!(peak < 4096, "peak memory {peak} bytes");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_splits_equal_the_whole(cuts in proptest::collection::vec(0usize..2000, 0..12)) {
        let (msg, _) = nested_message(20);
        let whole = message(&msg);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (msg.len() + 1)).collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut last = 0;
        for c in cuts {
            pieces.push(&msg[last..c]);
            last = c;
        }
        pieces.push(&msg[last..]);
        prop_assert!(run(MimeDecoder::message(), &pieces) == whole);
    }
}
