//! Application-layer decoder throughput: `HttpDecoder` over a realistic client direction (JSON
//! POSTs full of timestamps and ids, chunked JSON, GETs with query strings and cookies, form
//! posts) and a server direction (gzip'd JSON responses, chunked HTML), in 1460-byte pieces,
//! into a sink that only counts. The figure is wire bytes per second, to set against the
//! matcher's own throughput (`cargo bench --bench matcher`), which every decoded byte then pays.
//!
//! Run: `cargo bench --bench l7` (set `CARGO_TARGET_DIR` as usual).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flate2::write::GzEncoder;
use flate2::Compression;
use nigehban::l7::http::HttpDecoder;
use nigehban::l7::{ContentSink, L7Event, Location};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::io::Write;

const TARGET: usize = 8 << 20;
const MSS: usize = 1460;

/// Counts what a matcher would be handed.
#[derive(Default)]
struct Count {
    bytes: u64,
    sections: u64,
    events: u64,
}

impl ContentSink for Count {
    fn section(&mut self, _location: Location, _name: &[u8]) {
        self.sections += 1;
    }
    fn data(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
    }
    fn gap(&mut self) {}
    fn event(&mut self, _event: L7Event) {
        self.events += 1;
    }
}

fn json_record(rng: &mut StdRng) -> String {
    let ts: u64 = 1_700_000_000_000 + rng.gen_range(0..100_000_000_000u64);
    format!(
        "{{\"ts\":{ts},\"updated\":{},\"id\":{},\"amount\":{}.{:02},\"order\":\"ORD-{:010}\",\"phone\":\"+92300{:07}\",\"ua\":\"Mozilla/5.0 (X11; Linux x86_64)\"}}",
        ts + 17,
        rng.gen::<u64>(),
        rng.gen_range(0..1_000_000u32),
        rng.gen_range(0..100u32),
        rng.gen_range(0..10_000_000_000u64),
        rng.gen_range(0..10_000_000u32),
    )
}

fn json_body(rng: &mut StdRng) -> Vec<u8> {
    let n = rng.gen_range(5..30);
    let items: Vec<String> = (0..n).map(|_| json_record(rng)).collect();
    format!("{{\"events\":[{}]}}", items.join(",")).into_bytes()
}

fn headers(m: &mut Vec<u8>) {
    m.extend_from_slice(
        b"Host: api.shop.example\r\nUser-Agent: okhttp/4.12.0\r\nAccept: application/json\r\n\
          Accept-Encoding: gzip, br\r\nCookie: sid=8f14e45fceea167a5a36dedd4bea2543; lang=ur\r\n\
          Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig\r\n",
    );
}

fn client_stream() -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(0x6874_7470);
    let mut out = Vec::with_capacity(TARGET + 65536);
    while out.len() < TARGET {
        match rng.gen_range(0..10) {
            0..=4 => {
                let body = json_body(&mut rng);
                out.extend_from_slice(b"POST /api/v1/events HTTP/1.1\r\n");
                headers(&mut out);
                out.extend_from_slice(
                    format!(
                        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(&body);
            }
            5..=6 => {
                let body = json_body(&mut rng);
                out.extend_from_slice(b"POST /api/v1/batch HTTP/1.1\r\n");
                headers(&mut out);
                out.extend_from_slice(b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
                for c in body.chunks(rng.gen_range(200..1500)) {
                    out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            7..=8 => {
                let q = format!(
                    "GET /search?q=red+shoes&page={}&ts={}&ref=%2Fhome%3Fa%3D1 HTTP/1.1\r\n",
                    rng.gen_range(1..50),
                    rng.gen::<u32>()
                );
                out.extend_from_slice(q.as_bytes());
                headers(&mut out);
                out.extend_from_slice(b"Referer: https://shop.example/cart?item=12345&qty=2\r\n\r\n");
            }
            _ => {
                let body = format!(
                    "name=Ali+Khan&city=Lahore&phone=%2B92300{:07}&order={}&note=deliver+after+5pm",
                    rng.gen_range(0..10_000_000u32),
                    rng.gen::<u64>()
                );
                out.extend_from_slice(b"POST /checkout HTTP/1.1\r\n");
                headers(&mut out);
                out.extend_from_slice(
                    format!(
                        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(body.as_bytes());
            }
        }
    }
    out
}

fn server_stream() -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(0x7265_7370);
    let mut out = Vec::with_capacity(TARGET + 65536);
    while out.len() < TARGET {
        if rng.gen_bool(0.7) {
            let mut e = GzEncoder::new(Vec::new(), Compression::default());
            e.write_all(&json_body(&mut rng)).unwrap();
            let gz = e.finish().unwrap();
            out.extend_from_slice(
                format!(
                    "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n\
                     Vary: Accept-Encoding\r\nContent-Length: {}\r\n\r\n",
                    gz.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(&gz);
        } else {
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n");
            for _ in 0..rng.gen_range(2..8) {
                let row = format!(
                    "<div class=\"row item-{}\"><a href=\"/p/view?id={}\">Buy</a><span>PKR 4,999</span></div>\n",
                    rng.gen_range(0..100_000u32),
                    rng.gen::<u32>()
                )
                .repeat(4);
                out.extend_from_slice(format!("{:x}\r\n{row}\r\n", row.len()).as_bytes());
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
    out
}

fn decode(stream: &[u8]) -> Count {
    let mut d = HttpDecoder::new();
    let mut sink = Count::default();
    for piece in stream.chunks(MSS) {
        d.data(piece, &mut sink);
    }
    d.finish(&mut sink);
    sink
}

fn bench(c: &mut Criterion) {
    let client = client_stream();
    let server = server_stream();
    for (name, s) in [("client", &client), ("server", &server)] {
        let n = decode(s);
        eprintln!(
            "{name}: {} wire bytes -> {} decoded bytes in {} sections, {} events",
            s.len(),
            n.bytes,
            n.sections,
            n.events
        );
        assert_eq!(n.events, 0, "the benchmark mix must decode cleanly");
    }

    let mut g = c.benchmark_group("l7_http");
    g.sample_size(20);
    for (name, s) in [
        ("client_requests_1460", &client),
        ("server_gzip_responses_1460", &server),
    ] {
        g.throughput(Throughput::Bytes(s.len() as u64));
        g.bench_function(name, |b| b.iter(|| black_box(decode(s).bytes)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
