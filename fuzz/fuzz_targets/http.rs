//! HTTP/1.x decoder (requests and responses, bodies with every coding and media type) fed a
//! stream cut and holed at fuzzer-chosen points; the first byte may prime it with a peer request
//! so the response path (HEAD, method-dependent bodies) is reached too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nigehban::l7::http::HttpDecoder;
use nigehban_fuzz::{pieces, CountingSink, Piece};

fuzz_target!(|input: &[u8]| {
    let Some((&mode, input)) = input.split_first() else {
        return;
    };
    let mut d = HttpDecoder::new();
    match mode % 3 {
        1 => d.peer_data(b"HEAD /x HTTP/1.1\r\nHost: a.example\r\n\r\n"),
        2 => d.peer_data(b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n"),
        _ => {}
    }
    let mut sink = CountingSink::default();
    for p in pieces(input) {
        match p {
            Piece::Data(b) => d.data(b, &mut sink),
            Piece::Gap(n) => d.gap(n, &mut sink),
        }
        assert!(d.memory() <= 8 << 20, "HTTP decoder holds {} bytes", d.memory());
    }
    d.finish(&mut sink);
});
