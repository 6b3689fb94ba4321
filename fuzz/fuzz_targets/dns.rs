//! DNS decoding: the input as one UDP datagram, and the same bytes as a DNS-over-TCP stream
//! (length-prefixed messages) cut and holed at fuzzer-chosen points.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nigehban::l7::dns::{self, DnsTcpDecoder};
use nigehban::l7::Evidence;
use nigehban_fuzz::{pieces, CountingSink, Piece};

fuzz_target!(|input: &[u8]| {
    let mut sink = CountingSink::default();
    let mut evidence = Evidence::default();
    let decoded = dns::datagram(input, &mut sink, &mut evidence);
    if !decoded {
        assert_eq!(sink.sections + sink.bytes, 0, "a rejected datagram emitted content");
    }

    let mut d = DnsTcpDecoder::new();
    let mut sink = CountingSink::default();
    for p in pieces(input) {
        match p {
            Piece::Data(b) => d.data(b, &mut sink),
            Piece::Gap(n) => d.gap(n, &mut sink),
        }
        assert!(d.memory() <= 1 << 20, "DNS/TCP decoder holds {} bytes", d.memory());
    }
    d.finish(&mut sink);
});
