//! MIME decoder, as a whole message (SMTP DATA) or as a multipart body with a boundary from an
//! outer header, fed a stream cut and holed at fuzzer-chosen points.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nigehban::l7::mime::MimeDecoder;
use nigehban_fuzz::{pieces, CountingSink, Piece};

fuzz_target!(|input: &[u8]| {
    let Some((&mode, input)) = input.split_first() else {
        return;
    };
    let mut d = match mode % 3 {
        0 => MimeDecoder::message(),
        1 => MimeDecoder::multipart(b"XyZ"),
        _ => MimeDecoder::multipart(b""),
    };
    let mut sink = CountingSink::default();
    for p in pieces(input) {
        match p {
            Piece::Data(b) => d.data(b, &mut sink),
            Piece::Gap(_) => d.gap(&mut sink),
        }
        if mode & 0x80 != 0 {
            d.interrupt();
        }
        assert!(d.memory() <= 8 << 20, "MIME decoder holds {} bytes", d.memory());
    }
    d.finish(&mut sink);
});
