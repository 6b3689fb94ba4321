//! Decoder tests against a recording sink. The central property (an oracle test): however the
//! stream is cut into pieces, the decoded sections are exactly those of the whole stream.
//! All values are synthetic; failure messages show section shapes, never the bytes.

use super::*;
use crate::l7::L7Event;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use flate2::Compression;
use proptest::prelude::*;
use std::io::Write;

/// The shared recording sink; the helpers below read it the way these tests need.
use crate::l7::mime::recorder::Recorder as Rec;

trait RecExt {
    fn of(&self, location: Location) -> Vec<(&[u8], &[u8])>;
    fn joined(&self, location: Location) -> Vec<u8>;
    fn header(&self, name: &str) -> Option<&[u8]>;
    fn shape(&self) -> String;
}

impl RecExt for Rec {
    /// Sections of `location`, as (name, data) pairs.
    fn of(&self, location: Location) -> Vec<(&[u8], &[u8])> {
        self.sections
            .iter()
            .filter(|s| s.location == location)
            .map(|s| (s.name.as_slice(), s.data.as_slice()))
            .collect()
    }
    /// Data of the sections of `location`, joined.
    fn joined(&self, location: Location) -> Vec<u8> {
        self.of(location).iter().flat_map(|(_, d)| d.iter().copied()).collect()
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.of(Location::Header)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, d)| d)
    }
    /// A description safe to print: locations, names and data lengths only.
    fn shape(&self) -> String {
        let s: Vec<String> = self
            .sections
            .iter()
            .map(|s| {
                format!(
                    "{}:{}:{}b:{}g",
                    s.location.as_str(),
                    String::from_utf8_lossy(&s.name),
                    s.data.len(),
                    s.gaps
                )
            })
            .collect();
        format!("{s:?} events {:?}", self.events)
    }
}

/// Compares without printing content on failure.
fn assert_same(a: &Rec, b: &Rec, ctx: &str) {
    assert!(
        a == b,
        "{ctx}: sections differ\n  got  {}\n  want {}",
        a.shape(),
        b.shape()
    );
}

fn run_with(peer: &[&[u8]], pieces: &[&[u8]]) -> (Rec, HttpDecoder) {
    let mut d = HttpDecoder::new();
    let mut rec = Rec::default();
    for p in peer {
        d.peer_data(p);
    }
    for p in pieces {
        d.data(p, &mut rec);
    }
    d.finish(&mut rec);
    (rec, d)
}

fn run(pieces: &[&[u8]]) -> Rec {
    run_with(&[], pieces).0
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = ::brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
        w.write_all(data).unwrap();
    }
    out
}

fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut m = format!("{method} {target} HTTP/1.1\r\nHost: shop.example:8080\r\n").into_bytes();
    for (k, v) in headers {
        m.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding")) && !body.is_empty() {
        m.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    m.extend_from_slice(b"\r\n");
    m.extend_from_slice(body);
    m
}

/// `body` in chunks of the given sizes (the last chunk takes the rest).
fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    for &n in sizes.iter().chain(std::iter::once(&usize::MAX)) {
        let n = n.min(rest.len());
        if n == 0 {
            break;
        }
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

const JSON: &[u8] =
    br#"{"name":"Ayesha","cnic":"35202-1234567-1","ts":1700000000123,"card":"\u0034\u0031\u0031\u0031111111111111"}"#;

/// A form upload: a text field and a base64-encoded CSV file.
const MULTIPART: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nnic 42101-7654321-3\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"ids.csv\"\r\nContent-Type: text/csv\r\n\
Content-Transfer-Encoding: base64\r\n\r\nY25pYwozNTIwMi0xMjM0NTY3LTEK\r\n--XyZ--\r\n";

/// A client direction exercising every request-side decoding.
fn request_stream() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend(request(
        "GET",
        "/lookup/%33%35%32%30%32?id=%34%32%31%30%31+76543213&q=a+b",
        &[
            ("Referer", "https://portal.example/form?cnic=%33%35%32%30%32-1234567-1"),
            ("Cookie", "nic=42101%2D7654321%2D3; x=a+b"),
        ],
        b"",
    ));
    s.extend(request(
        "POST",
        "/submit",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"name=Ali+Khan&national_id=%34%32%31%30%31-7654321-3&empty=&flag&x%3D=%zz%4",
    ));
    s.extend(request(
        "POST",
        "/api/v1/customers",
        &[("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
        &chunked(JSON, &[30, 1, 7]),
    ));
    s.extend(request(
        "PUT",
        "/upload.csv",
        &[("Content-Type", "text/csv"), ("Content-Encoding", "gzip")],
        &gzip(b"cnic,card\n35202-1234567-1,4111111111111111\n42101-7654321-3,5555555555554444\n"),
    ));
    s.extend(request(
        "POST",
        "/zlib",
        &[("Content-Type", "application/json"), ("Content-Encoding", "deflate")],
        &zlib(JSON),
    ));
    s.extend(request(
        "POST",
        "/raw-deflate",
        &[("Content-Encoding", "deflate")],
        &raw_deflate(b"id 3520212345671 end"),
    ));
    let br = brotli(JSON);
    let mut te = request(
        "POST",
        "/br",
        &[
            ("Content-Type", "application/vnd.api+json"),
            ("Content-Encoding", "br"),
            ("Transfer-Encoding", "chunked"),
        ],
        b"",
    );
    te.extend(chunked(&br, &[5, 9]));
    s.extend(te);
    s.extend(request(
        "POST",
        "/upload",
        &[("Content-Type", "multipart/form-data; boundary=XyZ")],
        MULTIPART,
    ));
    s.extend(request("DELETE", "/items/9", &[], b""));
    s
}

/// A server direction: responses to GET, HEAD, GET (204), GET (304), GET (chunked gzip), GET
/// (close-delimited).
fn response_stream() -> (Vec<Vec<u8>>, Vec<u8>) {
    let peer: Vec<Vec<u8>> = [
        "GET /a",
        "HEAD /b",
        "GET /c",
        "GET /d",
        "GET /e/35202-1234567-1",
        "GET /f",
    ]
    .iter()
    .map(|r| format!("{r}?secret=1 HTTP/1.1\r\nHost: App.Example\r\n\r\n").into_bytes())
    .collect();
    let mut s = Vec::new();
    s.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"n\":\"\\u0033\"}\n\n",
    );
    s.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n");
    s.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
    s.extend_from_slice(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n");
    let gz = gzip(b"customer 4111 1111 1111 1111 ok");
    s.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\nLocation: /x?c=%33%35\r\n\r\n",
    );
    s.extend(chunked(&gz, &[3, 10]));
    s.extend_from_slice(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close 35202-1234567-1");
    (peer, s)
}

#[test]
fn probe_recognises_methods_and_status_lines() {
    assert_eq!(probe(b"GET / HTTP/1.1"), Probe::Yes);
    assert_eq!(probe(b"PROPFIND /x"), Probe::Yes);
    assert_eq!(probe(b"HTTP/1.0 200"), Probe::Yes);
    assert_eq!(probe(b""), Probe::Unsure);
    assert_eq!(probe(b"PO"), Probe::Unsure);
    assert_eq!(probe(b"GET"), Probe::Unsure);
    assert_eq!(probe(b"HTTP/"), Probe::Unsure);
    assert_eq!(probe(b"GETX / HTTP/1.1"), Probe::No);
    assert_eq!(probe(b"EHLO mail"), Probe::No);
    assert_eq!(probe(b"HTTP/2.0"), Probe::No);
    assert_eq!(probe(b"\x16\x03\x01"), Probe::No);
}

#[test]
fn requests_decode_url_headers_and_bodies() {
    let rec = run(&[&request_stream()]);
    assert!(rec.events.is_empty(), "{}", rec.shape());
    let urls = rec.of(Location::Url);
    assert_eq!(urls.len(), 9, "{}", rec.shape());
    assert_eq!(urls[0].1, b"/lookup/35202?id=42101 76543213&q=a b");
    assert_eq!(
        rec.header("Referer").unwrap(),
        b"Referer: https://portal.example/form?cnic=35202-1234567-1"
    );
    assert_eq!(rec.header("Cookie").unwrap(), b"Cookie: nic=42101-7654321-3; x=a b");
    // Form fields: one section each, named by the field.
    let body = rec.of(Location::Body);
    let form: Vec<_> = body.iter().take(5).copied().collect();
    assert_eq!(
        form,
        vec![
            (&b"name"[..], &b"name=Ali Khan"[..]),
            (b"national_id", b"national_id=42101-7654321-3"),
            (b"empty", b"empty="),
            (b"flag", b"flag"),
            (b"x=", b"x==%zz%4"),
        ]
    );
    let expected_json = br#"{"name":"Ayesha","cnic":"35202-1234567-1","ts":1700000000123,"card":"4111111111111111"}"#;
    assert_eq!(body[5].1, expected_json, "chunked JSON is contiguous and unescaped");
    assert_eq!(
        body[6].1,
        b"cnic,card\n35202-1234567-1,4111111111111111\n42101-7654321-3,5555555555554444\n"
    );
    assert_eq!(body[7].1, expected_json, "zlib deflate");
    assert_eq!(body[8].1, b"id 3520212345671 end", "raw deflate");
    assert_eq!(body[9].1, expected_json, "brotli, chunked");
    // Multipart: the field is a named body, the file an attachment, decoded from base64.
    assert_eq!(body[10], (&b"comment"[..], &b"nic 42101-7654321-3"[..]));
    assert_eq!(
        rec.of(Location::Attachment),
        vec![(&b"ids.csv"[..], &b"cnic\n35202-1234567-1\n"[..])]
    );
}

#[test]
fn request_evidence_has_no_query_and_masks_digits() {
    let msg = request(
        "GET",
        "/u/%33%35%32%30%32-1234567-1/profile?cnic=3520212345671",
        &[],
        b"",
    );
    let (_, d) = run_with(&[], &[&msg]);
    let ev = d.evidence();
    assert_eq!(ev.http_method, "GET");
    assert_eq!(ev.http_host, "shop.example");
    assert_eq!(ev.url_path, "/u/*****-*******-*/profile");
    assert_eq!(ev.http_status, None);
}

#[test]
fn responses_use_the_peer_requests_for_head_and_evidence() {
    let (peer, stream) = response_stream();
    let peer: Vec<&[u8]> = peer.iter().map(Vec::as_slice).collect();
    let (rec, d) = run_with(&peer, &[&stream]);
    assert!(rec.events.is_empty(), "{}", rec.shape());
    let bodies = rec.of(Location::Body);
    // The HEAD response's Content-Length announces no body, nor do 204 and 304.
    assert_eq!(bodies.len(), 3, "{}", rec.shape());
    assert_eq!(bodies[0].1, b"{\"n\":\"3\"}\n\n", "16-byte JSON body");
    assert_eq!(bodies[1].1, b"customer 4111 1111 1111 1111 ok");
    assert_eq!(bodies[2].1, b"until close 35202-1234567-1");
    assert_eq!(rec.header("Location").unwrap(), b"Location: /x?c=35");
    let ev = d.evidence();
    assert_eq!(
        (ev.http_method.as_str(), ev.http_host.as_str(), ev.url_path.as_str()),
        ("GET", "app.example", "/f")
    );
    assert_eq!(ev.http_status, Some(200));
}

#[test]
fn app_decoder_hands_requests_seen_while_sniffing_to_the_response_decoder() {
    // The server's direction is still sniffing when the client's HEAD arrives.
    let mut app = crate::l7::AppDecoder::new(80, 40000);
    let mut rec = Rec::default();
    app.peer_data(b"HEAD /r/35202-1234567-1?x=1 HTTP/1.1\r\nHost: Intra.Example\r\n\r\n");
    app.peer_data(b"GET /next HTTP/1.1\r\nHost: intra.example\r\n\r\n");
    assert!(app.memory() > 0);
    app.data(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", &mut rec);
    let ev = app.evidence().unwrap();
    assert_eq!(
        (ev.http_method.as_str(), ev.url_path.as_str()),
        ("HEAD", "/r/*****-*******-*")
    );
    assert_eq!(ev.http_host, "intra.example");
    app.data(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", &mut rec);
    app.finish(&mut rec);
    assert!(rec.events.is_empty(), "{}", rec.shape());
    assert_eq!(rec.joined(Location::Body), b"ok");
    assert_eq!(app.evidence().unwrap().url_path, "/next");
}

#[test]
fn head_response_without_peer_knowledge_is_not_a_parse_error_for_204() {
    let s = b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let rec = run(&[s]);
    assert!(rec.events.is_empty());
    assert_eq!(rec.joined(Location::Body), b"ok");
}

#[test]
fn keep_alive_pipelined_requests() {
    let mut s = Vec::new();
    for i in 0..3 {
        s.extend(request(
            "POST",
            &format!("/p/{i}"),
            &[("Content-Type", "application/json")],
            format!("{{\"i\":{i}}}").as_bytes(),
        ));
    }
    let (rec, d) = run_with(&[], &[&s]);
    let urls: Vec<_> = rec.of(Location::Url).into_iter().map(|(_, u)| u.to_vec()).collect();
    assert_eq!(urls, [b"/p/0".to_vec(), b"/p/1".to_vec(), b"/p/2".to_vec()]);
    assert_eq!(rec.joined(Location::Body), br#"{"i":0}{"i":1}{"i":2}"#);
    assert_eq!(d.evidence().url_path, "/p/2");
    assert_eq!(d.messages, 3);
}

#[test]
fn number_across_chunk_boundary_is_contiguous() {
    let body = b"cnic=35202-1234567-1";
    let msg = request(
        "POST",
        "/f",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Transfer-Encoding", "chunked"),
        ],
        &chunked(body, &[8, 3, 1, 1]),
    );
    let rec = run(&[&msg]);
    assert_eq!(rec.of(Location::Body), vec![(&b"cnic"[..], &body[..])]);
}

/// Every cut of `stream` into two pieces, and into single bytes, decodes like the whole.
fn assert_split_invariant(peer: &[&[u8]], stream: &[u8]) {
    let (whole, _) = run_with(peer, &[stream]);
    for cut in 0..=stream.len() {
        let (split, _) = run_with(peer, &[&stream[..cut], &stream[cut..]]);
        assert_same(&split, &whole, &format!("cut at {cut}"));
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_same(&run_with(peer, &bytes).0, &whole, "byte by byte");
}

#[test]
fn oracle_requests_split_anywhere() {
    assert_split_invariant(&[], &request_stream());
}

#[test]
fn oracle_responses_split_anywhere() {
    let (peer, stream) = response_stream();
    let peer: Vec<&[u8]> = peer.iter().map(Vec::as_slice).collect();
    assert_split_invariant(&peer, &stream);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn oracle_random_multi_splits(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 1..12)) {
        let stream = request_stream();
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        at.sort_unstable();
        let mut pieces = Vec::new();
        let mut prev = 0;
        for &c in &at {
            pieces.push(&stream[prev..c]);
            prev = c;
        }
        pieces.push(&stream[prev..]);
        let whole = run(&[&stream]);
        let split = run(&pieces);
        prop_assert!(split == whole, "{}", split.shape());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Fuzz-style: a valid stream with bytes overwritten, cut anywhere, never panics, always
    /// opens a section before data (the recording sink checks), and stays within its bounds.
    #[test]
    fn mutated_streams_are_handled(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut stream = request_stream();
        for (at, b) in &flips {
            let i = at.index(stream.len());
            stream[i] = *b;
        }
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        at.sort_unstable();
        let mut d = HttpDecoder::new();
        let mut rec = Rec::default();
        let mut prev = 0;
        for c in at.into_iter().chain(std::iter::once(stream.len())) {
            d.data(&stream[prev..c], &mut rec);
            prev = c;
            prop_assert!(d.memory() < 256 << 10);
        }
        d.finish(&mut rec);
        // Decoding only ever shrinks content here (no compressed body in this stream inflates
        // past its size by more than its plain text).
        let out: usize = rec.sections.iter().map(|s| s.data.len()).sum();
        prop_assert!(out <= 4 * stream.len());
    }
}

#[test]
fn zip_bomb_is_cut_off_with_bounded_memory() {
    // 1 GiB of zeros, gzip'd and sent chunked as the encoder produces it: never materialised.
    let mut d = HttpDecoder::new();
    let mut rec = Rec::default();
    d.data(
        b"POST /bomb HTTP/1.1\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        &mut rec,
    );
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    let zeros = vec![0u8; 1 << 20];
    let mut compressed = 0usize;
    let mut peak = 0;
    let mut send = |d: &mut HttpDecoder, rec: &mut Rec, bytes: &mut Vec<u8>| {
        if !bytes.is_empty() {
            compressed += bytes.len();
            d.data(format!("{:x}\r\n", bytes.len()).as_bytes(), rec);
            d.data(bytes, rec);
            d.data(b"\r\n", rec);
            bytes.clear();
            peak = peak.max(d.memory());
        }
    };
    for _ in 0..1024 {
        enc.write_all(&zeros).unwrap();
        send(&mut d, &mut rec, enc.get_mut());
    }
    let mut tail = enc.finish().unwrap();
    send(&mut d, &mut rec, &mut tail);
    d.data(b"0\r\n\r\n", &mut rec);
    d.data(&request("GET", "/after", &[], b""), &mut rec);
    d.finish(&mut rec);
    assert_eq!(rec.events, [L7Event::DecompressionBomb]);
    let inflated = rec.joined(Location::Body).len() as u64;
    assert!(
        (coding::RATIO_FLOOR..coding::RATIO_FLOOR + (1 << 20)).contains(&inflated),
        "inflated {inflated}"
    );
    // The rest of the compressed body was scanned raw, and decoding went on after it.
    let raw = rec.joined(Location::Raw).len();
    assert!(raw > compressed / 2 && raw <= compressed, "raw {raw} of {compressed}");
    assert_eq!(rec.of(Location::Url).last().unwrap().1, b"/after");
    assert!(peak < 256 << 10, "peak decoder memory {peak}");
}

#[test]
fn corrupt_gzip_is_scanned_raw_and_decoding_resumes() {
    let mut body = gzip(b"first part 35202-1234567-1 and more text to make a longer stream");
    let n = body.len();
    for b in &mut body[12..n - 8] {
        *b ^= 0x5a;
    }
    let mut s = request("POST", "/c", &[("Content-Encoding", "gzip")], &body);
    s.extend(request("POST", "/next", &[], b"ok"));
    let rec = run(&[&s]);
    assert_eq!(rec.events, [L7Event::DecompressionError]);
    assert!(!rec.joined(Location::Raw).is_empty());
    assert!(rec.joined(Location::Raw).len() <= n);
    assert_eq!(rec.of(Location::Url).last().unwrap().1, b"/next");
    assert!(rec.joined(Location::Body).ends_with(b"ok"));

    // A body labelled gzip that is not gzip at all passes raw whole.
    let rec = run(&[&request(
        "POST",
        "/c",
        &[("Content-Encoding", "gzip")],
        b"plain 35202-1234567-1",
    )]);
    assert_eq!(rec.events, [L7Event::DecompressionError]);
    assert_eq!(rec.joined(Location::Raw), b"plain 35202-1234567-1");
}

#[test]
fn trailing_junk_after_gzip_stream_is_raw() {
    let mut body = gzip(b"abc");
    body.extend_from_slice(b"JUNK 123");
    let rec = run(&[&request("POST", "/j", &[("Content-Encoding", "gzip")], &body)]);
    assert_eq!(rec.events, [L7Event::DecompressionError]);
    assert_eq!(rec.joined(Location::Body), b"abc");
    assert_eq!(rec.joined(Location::Raw), b"JUNK 123");
}

#[test]
fn multi_member_gzip_is_one_body() {
    let mut body = gzip(b"35202-");
    body.extend(gzip(b"1234567-1"));
    let rec = run(&[&request("POST", "/m", &[("Content-Encoding", "x-gzip")], &body)]);
    assert!(rec.events.is_empty());
    assert_eq!(rec.of(Location::Body), vec![(&b""[..], &b"35202-1234567-1"[..])]);
}

#[test]
fn garbage_is_a_parse_error_and_passes_raw() {
    let s = b"\x00\x01binary garbage 35202-1234567-1 not http at all\r\n\r\nmore";
    let rec = run(&[&s[..5], &s[5..]]);
    assert_eq!(rec.events, [L7Event::ParseError]);
    assert_eq!(rec.joined(Location::Raw), s);

    // A valid first message, then a broken one: the second passes raw from its first byte.
    let mut s = request("GET", "/ok", &[], b"");
    let bad = b"GET /bad HTTP/1.1\r\nBad Header\r\n\r\ntrailing";
    s.extend_from_slice(bad);
    let rec = run(&[&s]);
    assert_eq!(rec.events, [L7Event::ParseError]);
    assert_eq!(rec.of(Location::Url).len(), 1);
    assert_eq!(rec.joined(Location::Raw), bad);
}

#[test]
fn malformed_chunk_size_passes_raw_without_loss() {
    let s = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n12345zz\r\nrest";
    let rec = run(&[s]);
    assert_eq!(rec.events, [L7Event::ParseError]);
    assert_eq!(rec.joined(Location::Body), b"abc");
    assert_eq!(rec.joined(Location::Raw), b"12345zz\r\nrest");
}

#[test]
fn oversized_header_block_passes_raw() {
    let mut s = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    s.extend(std::iter::repeat_n(b'a', MAX_HEAD));
    s.extend_from_slice(b"\r\n\r\nGET /next HTTP/1.1\r\n\r\n");
    let pieces: Vec<&[u8]> = s.chunks(1460).collect();
    let (rec, d) = run_with(&[], &pieces);
    assert_eq!(rec.events, [L7Event::HeaderTooLarge]);
    assert_eq!(rec.joined(Location::Raw), s);
    assert!(d.memory() <= 2 * MAX_HEAD, "memory {}", d.memory());

    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..200 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let rec = run(&[&many]);
    assert_eq!(rec.events, [L7Event::HeaderTooLarge]);
    assert_eq!(rec.joined(Location::Raw), many);
}

#[test]
fn gaps_with_known_length_inside_bodies_are_skipped() {
    let mut d = HttpDecoder::new();
    let mut rec = Rec::default();
    let msg = request("POST", "/g", &[], b"0123456789");
    let head_len = msg.len() - 10;
    d.data(&msg[..head_len + 3], &mut rec);
    d.gap(4, &mut rec);
    d.data(&msg[head_len + 7..], &mut rec);
    let c = request(
        "POST",
        "/c",
        &[("Transfer-Encoding", "chunked")],
        &chunked(b"abcdefgh", &[8]),
    );
    let c_head = c.len() - b"8\r\nabcdefgh\r\n0\r\n\r\n".len();
    d.data(&c[..c_head + 5], &mut rec);
    d.gap(3, &mut rec);
    d.data(&c[c_head + 8..], &mut rec);
    d.data(&request("GET", "/after", &[], b""), &mut rec);
    d.finish(&mut rec);
    assert!(rec.events.is_empty(), "{}", rec.shape());
    let bodies: Vec<_> = rec.sections.iter().filter(|s| s.location == Location::Body).collect();
    assert_eq!((bodies[0].data.as_slice(), bodies[0].gaps), (&b"012789"[..], 1));
    assert_eq!((bodies[1].data.as_slice(), bodies[1].gaps), (&b"abfgh"[..], 1));
    assert_eq!(rec.of(Location::Url).last().unwrap().1, b"/after");
}

#[test]
fn unknown_gaps_lose_framing_and_go_raw() {
    let mut d = HttpDecoder::new();
    let mut rec = Rec::default();
    d.data(b"GET /a HTTP/1.1\r\nHost: x", &mut rec);
    d.gap(0, &mut rec);
    d.data(b"\r\n35202-1234567-1", &mut rec);
    d.data(b"POST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nok", &mut rec);
    d.finish(&mut rec);
    assert_eq!(rec.events, [L7Event::GapInMessage]);
    let raw: Vec<_> = rec.sections.iter().filter(|s| s.location == Location::Raw).collect();
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].gaps, 1);
    assert_eq!(raw[0].data, b"GET /a HTTP/1.1\r\nHost: x\r\n35202-1234567-1");
    // A piece that starts with a request line resynchronises.
    assert_eq!(rec.of(Location::Url), vec![(&b""[..], &b"/b"[..])]);
    assert_eq!(rec.joined(Location::Body), b"ok");

    // A gap inside a gzip body: the rest of that body is raw, the next message decodes.
    let gz = gzip(b"abcdefghijklmnopqrstuvwxyz0123456789");
    let mut s = request("POST", "/z", &[("Content-Encoding", "gzip")], &gz);
    let cut = s.len() - gz.len() + 10;
    let mut d = HttpDecoder::new();
    let mut rec = Rec::default();
    d.data(&s[..cut], &mut rec);
    d.gap(5, &mut rec);
    s.extend(request("GET", "/next", &[], b""));
    d.data(&s[cut + 5..], &mut rec);
    d.finish(&mut rec);
    assert_eq!(rec.events, [L7Event::GapInMessage]);
    assert_eq!(rec.of(Location::Url).last().unwrap().1, b"/next");
}

#[test]
fn large_upload_streams_with_bounded_memory() {
    let mut csv = b"cnic,amount\n".to_vec();
    for i in 0..100_000u32 {
        csv.extend_from_slice(format!("{:05}-{:07}-{},{}\n", 35202 + i % 7, 1_000_000 + i, i % 10, i).as_bytes());
    }
    let mut body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"all.csv\"\r\n\r\n".to_vec();
    body.extend_from_slice(&csv);
    body.extend_from_slice(b"\r\n--B--\r\n");
    let msg = request(
        "POST",
        "/bulk",
        &[("Content-Type", "multipart/form-data; boundary=B")],
        &body,
    );
    let mut d = HttpDecoder::new();
    let mut rec = Rec::default();
    let mut peak = 0;
    for piece in msg.chunks(1460) {
        d.data(piece, &mut rec);
        peak = peak.max(d.memory());
    }
    d.finish(&mut rec);
    assert!(rec.events.is_empty(), "{}", rec.shape());
    assert!(rec.joined(Location::Attachment) == csv, "{}", rec.shape());
    assert!(
        peak < 64 << 10,
        "peak decoder memory {peak} for a {} byte upload",
        msg.len()
    );
}

#[test]
fn connect_and_upgrade_become_raw_tunnels() {
    let s = b"CONNECT files.example:443 HTTP/1.1\r\nHost: files.example:443\r\n\r\n\x16\x03\x01\x00\x05hello";
    let (rec, d) = run_with(&[], &[s]);
    assert!(rec.events.is_empty());
    assert_eq!(rec.joined(Location::Raw), b"\x16\x03\x01\x00\x05hello");
    assert_eq!(d.evidence().http_host, "files.example");

    let s = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello";
    let rec = run(&[s]);
    assert!(rec.events.is_empty());
    assert_eq!(rec.joined(Location::Raw), b"\x81\x05hello");
}

#[test]
fn interim_responses_keep_their_request() {
    let peer: &[&[u8]] = &[b"HEAD /h HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"];
    let s = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (rec, d) = run_with(peer, &[s]);
    assert!(rec.events.is_empty(), "{}", rec.shape());
    assert_eq!(rec.joined(Location::Body), b"ok");
    assert_eq!(d.evidence().http_method, "", "the FIFO is empty for the last response");
}

#[test]
fn debug_output_holds_no_content() {
    let mut d = HttpDecoder::new();
    let mut rec = Rec::default();
    let msg = request(
        "POST",
        "/u/3520212345671?cnic=3520212345671",
        &[("Cookie", "id=3520212345671")],
        b"cnic=3520212345671",
    );
    d.data(&msg[..msg.len() - 4], &mut rec);
    let dbg = format!("{d:?}");
    assert!(
        !dbg.contains("3520212345671") && !dbg.contains("35202"),
        "debug output leaks content"
    );
    assert!(dbg.contains("HttpDecoder"));
}

#[test]
fn memory_is_reused_across_messages() {
    let mut d = HttpDecoder::new();
    let mut rec = Rec::default();
    let gz = request(
        "POST",
        "/z",
        &[("Content-Encoding", "gzip"), ("Content-Type", "application/json")],
        &gzip(JSON),
    );
    d.data(&gz, &mut rec);
    let warm = d.memory();
    for _ in 0..200 {
        d.data(&gz, &mut rec);
        rec.sections.clear();
    }
    assert_eq!(d.memory(), warm);
    assert!(warm < 128 << 10, "memory {warm}");
}

#[test]
fn an_inflate_state_is_held_only_while_a_body_inflates() {
    let body = gzip(JSON);
    let s = request("POST", "/z", &[("Content-Encoding", "gzip")], &body);
    let cut = s.len() - body.len() / 2;
    let mut d = HttpDecoder::new();
    let mut rec = Rec::default();
    d.data(&s[..cut], &mut rec);
    assert!(d.memory() >= coding::INFLATE_STATE, "memory {}", d.memory());
    d.data(&s[cut..], &mut rec);
    assert!(d.memory() < coding::INFLATE_STATE, "memory {}", d.memory());
    assert!(rec.joined(Location::Body) == JSON, "{}", rec.shape());
}

/// Inflate states are reused across flows on a thread (`coding::spare`): the next body must
/// start from a clean state, whatever the last one was, and never see the last body's window.
#[test]
fn a_reused_inflate_state_starts_clean() {
    let first = b"the first flow's body, 35202-1234567-1, which no other body may refer back to";
    let rec = run(&[&request("POST", "/a", &[("Content-Encoding", "gzip")], &gzip(first))]);
    assert!(rec.joined(Location::Body) == first, "{}", rec.shape());

    // Raw deflate made with the first body as its preset dictionary: its first symbol copies
    // from before its own start, which only the old window could answer.
    let mut c = flate2::Compress::new(Compression::default(), false);
    c.set_dictionary(first).unwrap();
    let mut refers_back = Vec::with_capacity(256);
    c.compress_vec(first, &mut refers_back, flate2::FlushCompress::Finish)
        .unwrap();
    let mut with_window = flate2::Decompress::new(false);
    with_window.set_dictionary(first).unwrap();
    let mut whole = Vec::with_capacity(2 * first.len());
    with_window
        .decompress_vec(&refers_back, &mut whole, flate2::FlushDecompress::Finish)
        .unwrap();
    assert!(
        whole == first && refers_back.len() < first.len() / 2,
        "not a back-reference"
    );
    let rec = run(&[&request("POST", "/b", &[("Content-Encoding", "deflate")], &refers_back)]);
    assert_eq!(rec.events, [L7Event::DecompressionError]);
    // At most the literals before the first back-reference are decoded.
    assert!(rec.joined(Location::Body).len() < 8, "{}", rec.shape());

    // After a body that failed, and with the other header mode, decoding is whole again.
    let rec = run(&[&request("POST", "/c", &[("Content-Encoding", "deflate")], &zlib(JSON))]);
    assert!(
        rec.events.is_empty() && rec.joined(Location::Body) == JSON,
        "{}",
        rec.shape()
    );
    let rec = run(&[&request(
        "POST",
        "/d",
        &[("Content-Encoding", "deflate")],
        &raw_deflate(JSON),
    )]);
    assert!(
        rec.events.is_empty() && rec.joined(Location::Body) == JSON,
        "{}",
        rec.shape()
    );
}
