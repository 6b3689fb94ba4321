//! DNS messages (RFC 1035) for UDP and TCP: queries for any name (labels are the caller's, so
//! digits can be split across them) and responses that echo the question with answers.

/// Record type A.
pub const TYPE_A: u16 = 1;
/// Record type TXT.
pub const TYPE_TXT: u16 = 16;
/// Record type AAAA.
pub const TYPE_AAAA: u16 = 28;

/// One answer record, for the response's question name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An IPv4 address.
    A([u8; 4]),
    /// A TXT record with one character-string per element (each at most 255 bytes).
    Txt(Vec<String>),
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        let l = label.as_bytes();
        assert!(l.len() <= 63, "a DNS label has at most 63 bytes");
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
}

fn header(out: &mut Vec<u8>, id: u16, flags: u16, qd: u16, an: u16) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&qd.to_be_bytes());
    out.extend_from_slice(&an.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
}

/// A recursive query (RD set) for `name` of type `qtype`, class IN.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 18);
    header(&mut out, id, 0x0100, 1, 0);
    put_name(&mut out, name);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out
}

/// The response to [`query`]`(id, name, qtype)`: the question echoed, then `answers`, each
/// naming the question by a compression pointer.
pub fn response(id: u16, name: &str, qtype: u16, answers: &[Answer]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 18 + 32 * answers.len());
    // QR, RD, RA, NOERROR.
    header(&mut out, id, 0x8180, 1, answers.len() as u16);
    put_name(&mut out, name);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    for a in answers {
        // Pointer to the question name at offset 12.
        out.extend_from_slice(&[0xc0, 12]);
        let (rtype, rdata) = match a {
            Answer::A(ip) => (TYPE_A, ip.to_vec()),
            Answer::Txt(strings) => {
                let mut d = Vec::new();
                for s in strings {
                    assert!(s.len() <= 255, "a TXT character-string has at most 255 bytes");
                    d.push(s.len() as u8);
                    d.extend_from_slice(s.as_bytes());
                }
                (TYPE_TXT, d)
            }
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&300u32.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    out
}

/// A message framed for DNS over TCP (RFC 1035 4.2.2): two-byte length, then the message.
pub fn tcp_framed(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_response_wire_format() {
        let q = query(0x1234, "a.bc.", TYPE_A);
        assert_eq!(
            q,
            [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 2, b'b', b'c', 0, 0, 1, 0, 1]
        );
        let r = response(0x1234, "a.bc", TYPE_TXT, &[Answer::Txt(vec!["hi".into()])]);
        assert_eq!(&r[2..4], &[0x81, 0x80]);
        assert_eq!(&r[6..8], &[0, 1]);
        assert_eq!(&r[12..18], &q[12..18], "question name echoed");
        assert_eq!(&r[22..], &[0xc0, 12, 0, 16, 0, 1, 0, 0, 1, 44, 0, 3, 2, b'h', b'i']);
        assert_eq!(tcp_framed(&q)[..2], [0, 22]);
    }
}
