//! DNS over UDP and TCP: query names are where malware spells data out. Digit-only labels are
//! joined (`35202.1234567.1.x.example` → `3520212345671.x.example` is scanned as well as the
//! name itself), a label of exactly 13 digits gets its own [`Location::DnsCnicLabel`] section,
//! and a response's question section (an echo of the query) is not scanned; its answers are.
//!
//! Design constraints:
//! - Untrusted bytes are read only through `wire::Reader`, which fails on missing data;
//!   compression pointers must point strictly backwards (so they cannot loop) and a name has at
//!   most `wire::MAX_LABELS` labels.
//! - A message is checked whole before anything is emitted: bytes that are not DNS are left to
//!   the caller to scan raw, so nothing is lost and nothing is reported twice.
//! - No allocation per message: names are assembled in a stack buffer.

mod tcp;
mod wire;

pub use tcp::DnsTcpDecoder;

use self::wire::{Malformed, Name, Reader};
use super::{redact_digits, ContentSink, Evidence, Location};

/// Digits in a CNIC: a label of exactly this many digits is its own section.
const CNIC_LABEL: usize = 13;
/// Most questions accepted in one message (real ones carry one).
const MAX_QUESTIONS: u16 = 16;

/// Record types whose data is a domain name (possibly compressed), after a fixed prefix.
fn name_rdata(rtype: u16) -> Option<(usize, &'static str)> {
    match rtype {
        2 => Some((0, "NS")),
        5 => Some((0, "CNAME")),
        12 => Some((0, "PTR")),
        15 => Some((2, "MX")),
        33 => Some((6, "SRV")),
        39 => Some((0, "DNAME")),
        _ => None,
    }
}

/// Decodes one DNS message carried in a UDP datagram. Returns `false` (and emits nothing) when
/// the bytes are not a DNS message, so the caller scans them raw.
pub fn datagram(bytes: &[u8], sink: &mut dyn ContentSink, evidence: &mut Evidence) -> bool {
    if walk(bytes, None, evidence).is_err() {
        return false;
    }
    walk(bytes, Some(sink), evidence).is_ok()
}

/// Reads a whole message; emits its sections when `sink` is given (the second pass, after
/// the first found the message well-formed).
fn walk(msg: &[u8], mut sink: Option<&mut dyn ContentSink>, evidence: &mut Evidence) -> Result<(), Malformed> {
    let mut r = Reader::new(msg);
    let _id = r.u16()?;
    let flags = r.u16()?;
    let (qd, an) = (r.u16()?, r.u16()?);
    let (_ns, _ar) = (r.u16()?, r.u16()?);
    let response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    // QUERY, IQUERY, STATUS, NOTIFY, UPDATE; anything else is not DNS we know.
    if !matches!(opcode, 0 | 1 | 2 | 4 | 5) || qd > MAX_QUESTIONS {
        return Err(Malformed);
    }
    // Only a response may lack a question (later messages of a zone transfer).
    if qd == 0 && !(response && an > 0) {
        return Err(Malformed);
    }
    let mut name = Name::new();
    for i in 0..qd {
        r.name(&mut name)?;
        let _qtype = r.u16()?;
        let qclass = r.u16()? & 0x7fff; // the top bit is mDNS's unicast-response flag
        if !matches!(qclass, 1 | 3 | 4 | 254 | 255) {
            return Err(Malformed);
        }
        if i == 0 {
            set_domain(&name, evidence);
            if let Some(sink) = sink.as_deref_mut() {
                sink.message(evidence);
            }
        }
        // A response's question echoes the query: scanning it again would report one leak twice.
        if !response {
            if let Some(sink) = sink.as_deref_mut() {
                emit_query(&name, &evidence.dns_domain, sink);
            }
        }
    }
    if !response {
        // Answers, authority and additional records of a query (EDNS options, updates) carry
        // no names worth scanning.
        return Ok(());
    }
    for _ in 0..an {
        r.name(&mut name)?; // the owner name repeats the question
        let rtype = r.u16()?;
        let _class = r.u16()?;
        let _ttl = r.u32()?;
        let len = usize::from(r.u16()?);
        let start = r.pos();
        let rdata = r.bytes(len)?;
        answer(msg, rtype, start, rdata, &mut name, sink.as_deref_mut())?;
    }
    Ok(())
}

/// Checks (and with a sink, emits) one answer record's data.
fn answer<'s>(
    msg: &[u8],
    rtype: u16,
    start: usize,
    rdata: &[u8],
    name: &mut Name,
    sink: Option<&mut (dyn ContentSink + 's)>,
) -> Result<(), Malformed> {
    if let Some((skip, label)) = name_rdata(rtype) {
        // The name may point anywhere earlier in the message, so it is read from the message.
        let mut r = Reader::at(&msg[..start + rdata.len()], start);
        r.bytes(skip)?;
        r.name(name)?;
        if let Some(sink) = sink {
            sink.section(Location::DnsAnswer, label.as_bytes());
            sink.data(name.text());
        }
        return Ok(());
    }
    match rtype {
        // A: four bytes cannot hold a number worth finding; OPT is not data.
        1 | 41 => Ok(()),
        16 | 99 => {
            // TXT/SPF: character-strings, joined (a long value is split across them).
            let mut r = Reader::new(rdata);
            let mut sink = sink;
            if let Some(s) = sink.as_deref_mut() {
                s.section(Location::DnsAnswer, b"TXT");
            }
            while !r.is_empty() {
                let n = usize::from(r.u8()?);
                let s = r.bytes(n)?;
                if let Some(sink) = sink.as_deref_mut() {
                    sink.data(s);
                }
            }
            Ok(())
        }
        6 => {
            // SOA: two names (primary server, responsible mailbox), then numbers.
            let mut r = Reader::at(&msg[..start + rdata.len()], start);
            let mut sink = sink;
            for _ in 0..2 {
                r.name(name)?;
                if let Some(sink) = sink.as_deref_mut() {
                    sink.section(Location::DnsAnswer, b"SOA");
                    sink.data(name.text());
                }
            }
            Ok(())
        }
        _ => {
            if let Some(sink) = sink {
                if !rdata.is_empty() {
                    sink.section(Location::DnsAnswer, b"rdata");
                    sink.data(rdata);
                }
            }
            Ok(())
        }
    }
}

/// Emits a query name: whole, with digit-only labels joined, and each 13-digit label alone.
fn emit_query(name: &Name, domain: &str, sink: &mut dyn ContentSink) {
    let section_name = domain.as_bytes();
    sink.section(Location::DnsQuery, section_name);
    sink.data(name.text());

    let labels = name.labels();
    let digits = |l: &[u8]| !l.is_empty() && l.iter().all(u8::is_ascii_digit);
    let consecutive = labels
        .windows(2)
        .any(|w| digits(name.label(w[0])) && digits(name.label(w[1])));
    // Reverse-mapping names are addresses spelled backwards, one octet or nibble per label.
    let reverse = {
        let t = name.text();
        let ends = |s: &[u8]| t.len() >= s.len() && t[t.len() - s.len()..].eq_ignore_ascii_case(s);
        ends(b".in-addr.arpa") || ends(b".ip6.arpa")
    };
    if consecutive && !reverse {
        let mut joined = [0u8; wire::MAX_NAME];
        let mut len = 0;
        let mut prev_digits = false;
        for (i, &l) in labels.iter().enumerate() {
            let label = name.label(l);
            let d = digits(label);
            if i > 0 && !(d && prev_digits) {
                joined[len] = b'.';
                len += 1;
            }
            joined[len..len + label.len()].copy_from_slice(label);
            len += label.len();
            prev_digits = d;
        }
        sink.section(Location::DnsQuery, section_name);
        sink.data(&joined[..len]);
    }
    for &l in labels {
        let label = name.label(l);
        if label.len() == CNIC_LABEL && digits(label) {
            sink.section(Location::DnsCnicLabel, section_name);
            sink.data(label);
        }
    }
    if reverse {
        return;
    }
    // A run of digit-only labels holding exactly 13 digits (`35202.1234567.1`) is a CNIC spelled
    // across labels: the same structural context as a single 13-digit label.
    let mut run = [0u8; CNIC_LABEL];
    let (mut run_len, mut run_labels) = (0usize, 0usize);
    for i in 0..=labels.len() {
        let label = labels.get(i).map(|&l| name.label(l));
        match label {
            Some(label) if digits(label) && run_len + label.len() <= CNIC_LABEL => {
                run[run_len..run_len + label.len()].copy_from_slice(label);
                run_len += label.len();
                run_labels += 1;
                continue;
            }
            _ => {}
        }
        if run_labels >= 2 && run_len == CNIC_LABEL {
            sink.section(Location::DnsCnicLabel, section_name);
            sink.data(&run);
        }
        // A digit label that overflowed the run starts the next one.
        (run_len, run_labels) = (0, 0);
        if let Some(label) = label.filter(|l| digits(l) && l.len() <= CNIC_LABEL) {
            run[..label.len()].copy_from_slice(label);
            (run_len, run_labels) = (label.len(), 1);
        }
    }
}

/// Evidence: the last two labels of the query name, lower-case, digit runs redacted.
fn set_domain(name: &Name, evidence: &mut Evidence) {
    let labels = name.labels();
    let from = labels.len().saturating_sub(2);
    let d = &mut evidence.dns_domain;
    d.clear();
    for (i, &l) in labels[from..].iter().enumerate() {
        if i > 0 {
            d.push('.');
        }
        for &c in name.label(l) {
            d.push(if c.is_ascii_graphic() {
                char::from(c.to_ascii_lowercase())
            } else {
                '?'
            });
        }
    }
    if d.bytes().any(|c| c.is_ascii_digit()) {
        *d = redact_digits(d);
    }
}

#[cfg(test)]
mod tests;
