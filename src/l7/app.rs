//! Per-direction protocol recognition and dispatch to the decoder that owns the protocol.
//!
//! It also decides when a direction can carry no more cleartext ([`AppDecoder::bypass_ready`]):
//! TLS once its handshake ends (ChangeCipherSpec or the first ApplicationData record), SSH once
//! its key exchange starts, SMTP after STARTTLS. Until then every byte is scanned; a direction
//! that only looks like TLS or SSH goes back to raw scanning and is never bypassed, so faking a
//! handshake cannot hide cleartext.

use super::dns::DnsTcpDecoder;
use super::http::{self, HttpDecoder};
use super::smtp::{self, SmtpDecoder};
use super::{ContentSink, Evidence, Location, Probe, Protocol};

/// Bytes looked at (and held back) before deciding the protocol.
const SNIFF: usize = 16;

/// The application-layer state of one egress direction.
#[derive(Debug)]
pub struct AppDecoder {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Not decided yet; the first bytes wait here.
    Sniff {
        server_port: u16,
        /// Invariant: `len as usize <= SNIFF`.
        len: u8,
        buf: [u8; SNIFF],
        /// Requests the peer sent before this direction said anything (a server answers only
        /// after them), learnt by the HTTP decoder that takes over if this is HTTP.
        peer_http: Option<Box<HttpDecoder>>,
    },
    /// Scanned as is (unrecognised, or a TLS/SSH start whose framing broke).
    Raw(Protocol),
    /// TLS handshake: scanned raw while its record layer is followed.
    Tls(TlsRecords),
    /// SSH version exchange: scanned raw until the first binary packet is confirmed.
    Ssh(SshBanner),
    /// Nothing more is scanned (encrypted from here, or released by the worker); further
    /// bytes are dropped.
    Done(Protocol),
    Http(Box<HttpDecoder>),
    Smtp(Box<SmtpDecoder>),
    DnsTcp(Box<DnsTcpDecoder>),
}

impl AppDecoder {
    /// A direction whose sender uses `sender_port` and receiver `receiver_port`. Ports only
    /// break ties where content cannot (DNS over TCP has no greeting).
    pub fn new(sender_port: u16, receiver_port: u16) -> AppDecoder {
        let server_port = if sender_port == 53 { 53 } else { receiver_port };
        AppDecoder {
            state: State::Sniff {
                server_port,
                len: 0,
                buf: [0; SNIFF],
                peer_http: None,
            },
        }
    }

    /// The next in-order bytes of the direction.
    pub fn data(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) {
        if let State::Sniff {
            len,
            buf,
            server_port,
            peer_http,
        } = &mut self.state
        {
            let have = usize::from(*len);
            let take = bytes.len().min(SNIFF - have);
            buf[have..have + take].copy_from_slice(&bytes[..take]);
            *len += take as u8;
            let seen = &buf[..usize::from(*len)];
            let Some(next) = decide(seen, *server_port, usize::from(*len) == SNIFF) else {
                return;
            };
            let next = with_peer(next, peer_http.take());
            let held = *buf;
            let held_len = usize::from(*len);
            self.state = next;
            self.opened(sink);
            // Replay the held bytes, then the rest of this piece.
            self.dispatch_data(&held[..held_len], sink);
            self.dispatch_data(&bytes[take..], sink);
            return;
        }
        self.dispatch_data(bytes, sink);
    }

    /// A direction scanned as raw bytes, without protocol recognition.
    pub fn raw() -> AppDecoder {
        AppDecoder {
            state: State::Raw(Protocol::Unknown),
        }
    }

    /// `missing` bytes (0 if unknown) will never arrive.
    pub fn gap(&mut self, missing: u64, sink: &mut dyn ContentSink) {
        self.decide_now(sink);
        match &mut self.state {
            State::Sniff { .. } => unreachable!("decided above"),
            State::Raw(_) => sink.gap(),
            // Record or packet boundaries are lost with the missing bytes: scan the rest raw.
            State::Tls(_) => {
                self.state = State::Raw(Protocol::Tls);
                sink.gap();
            }
            State::Ssh(_) => {
                self.state = State::Raw(Protocol::Ssh);
                sink.gap();
            }
            State::Done(_) => {}
            State::Http(d) => d.gap(missing, sink),
            State::Smtp(d) => d.gap(missing, sink),
            State::DnsTcp(d) => d.gap(missing, sink),
        }
    }

    /// End of the direction: flush whatever is held.
    pub fn finish(&mut self, sink: &mut dyn ContentSink) {
        self.decide_now(sink);
        match &mut self.state {
            State::Sniff { .. } | State::Raw(_) | State::Tls(_) | State::Ssh(_) | State::Done(_) => {}
            State::Http(d) => d.finish(sink),
            State::Smtp(d) => d.finish(sink),
            State::DnsTcp(d) => d.finish(sink),
        }
    }

    /// Whether [`AppDecoder::peer_data`] reads `payload` at all: only a packet that starts like
    /// an HTTP request (a response decoder learns its request's method, host and path from it).
    /// Capture threads hand workers the other direction's payloads only when this says so, so
    /// that direction's bytes (most of them, downloads and TLS) are never copied.
    pub fn reads_peer_payload(payload: &[u8]) -> bool {
        // Every method is upper case; the first byte alone turns away nearly every packet (body
        // bytes, TLS records) before the method list is compared.
        payload.first().is_some_and(u8::is_ascii_uppercase)
            && !payload.starts_with(b"HTTP/")
            && http::probe(&payload[..payload.len().min(16)]) == Probe::Yes
    }

    /// Payload of one packet of the other direction (not reassembled), for decoders that learn
    /// from the peer (HTTP request line for responses). Ignores what
    /// [`AppDecoder::reads_peer_payload`] rejects.
    pub fn peer_data(&mut self, bytes: &[u8]) {
        if !Self::reads_peer_payload(bytes) {
            return;
        }
        match &mut self.state {
            State::Sniff { peer_http, .. } => {
                peer_http.get_or_insert_with(Box::default).peer_data(bytes);
            }
            State::Http(d) => d.peer_data(bytes),
            // SMTP needs no replies: whether STARTTLS took effect is read from this direction's
            // own next bytes, which (unlike un-reassembled replies) are in order and complete.
            _ => {}
        }
    }

    /// True until the protocol is decided; the matcher has seen none of this direction's bytes.
    pub fn is_sniffing(&self) -> bool {
        matches!(self.state, State::Sniff { .. })
    }

    /// True while a few first bytes wait for the protocol decision (they reach the matcher
    /// once more bytes, a gap or the end arrive).
    pub fn holds_bytes(&self) -> bool {
        matches!(self.state, State::Sniff { len, .. } if len > 0)
    }

    /// The recognised protocol (`Unknown` while undecided or unrecognised).
    pub fn protocol(&self) -> Protocol {
        match &self.state {
            State::Sniff { .. } => Protocol::Unknown,
            State::Raw(p) | State::Done(p) => *p,
            State::Tls(_) => Protocol::Tls,
            State::Ssh(_) => Protocol::Ssh,
            State::Http(_) => Protocol::Http,
            State::Smtp(_) => Protocol::Smtp,
            State::DnsTcp(_) => Protocol::Dns,
        }
    }

    /// The protocol whose direction can carry no more cleartext: TLS after its handshake, SSH
    /// once its key exchange starts, SMTP after STARTTLS took effect. Bytes after that point
    /// are not passed on; the caller should close the direction's scanning and stop
    /// reassembling it, then call [`AppDecoder::release`].
    pub fn bypass_ready(&self) -> Option<Protocol> {
        match &self.state {
            State::Done(p) => Some(*p),
            State::Smtp(d) if d.is_encrypted() => Some(Protocol::Smtp),
            _ => None,
        }
    }

    /// Frees the decoder of a direction that will not be scanned again (bypassed, see
    /// [`AppDecoder::bypass_ready`], or past its depth). Later bytes are dropped; the protocol
    /// is kept for metrics.
    pub fn release(&mut self) {
        self.state = State::Done(self.protocol());
    }

    /// Evidence of the current (or last) message, for decoded protocols.
    pub fn evidence(&self) -> Option<&Evidence> {
        match &self.state {
            State::Http(d) => Some(d.evidence()),
            State::Smtp(d) => Some(d.evidence()),
            State::DnsTcp(d) => Some(d.evidence()),
            _ => None,
        }
    }

    /// Heap bytes held, for flow memory accounting.
    pub fn memory(&self) -> usize {
        match &self.state {
            State::Sniff { peer_http, .. } => peer_http
                .as_ref()
                .map_or(0, |d| std::mem::size_of::<HttpDecoder>() + d.memory()),
            State::Raw(_) | State::Tls(_) | State::Ssh(_) | State::Done(_) => 0,
            State::Http(d) => std::mem::size_of::<HttpDecoder>() + d.memory(),
            State::Smtp(d) => std::mem::size_of::<SmtpDecoder>() + d.memory(),
            State::DnsTcp(d) => std::mem::size_of::<DnsTcpDecoder>() + d.memory(),
        }
    }

    /// Ends sniffing with what has been seen (a gap or the end came first).
    fn decide_now(&mut self, sink: &mut dyn ContentSink) {
        if let State::Sniff {
            len,
            buf,
            server_port,
            peer_http,
        } = &mut self.state
        {
            let held = *buf;
            let held_len = usize::from(*len);
            let next = decide(&held[..held_len], *server_port, true).expect("final decision");
            self.state = with_peer(next, peer_http.take());
            self.opened(sink);
            self.dispatch_data(&held[..held_len], sink);
        }
    }

    /// Just decided: a raw direction starts its one section.
    fn opened(&mut self, sink: &mut dyn ContentSink) {
        if matches!(self.state, State::Raw(_) | State::Tls(_) | State::Ssh(_)) {
            // The worker's sink needs a section before data so findings carry `location: raw`.
            sink.section(Location::Raw, b"");
        }
    }

    fn dispatch_data(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) {
        if bytes.is_empty() {
            return;
        }
        match &mut self.state {
            State::Sniff { .. } => unreachable!("dispatch only after the decision"),
            State::Raw(_) => sink.data(bytes),
            State::Tls(t) => {
                let (scan, next) = t.feed(bytes);
                sink.data(&bytes[..scan]);
                if let Some(next) = next {
                    self.state = next;
                    if let State::Raw(_) = self.state {
                        sink.data(&bytes[scan..]);
                    }
                }
            }
            State::Ssh(b) => {
                let (scan, next) = b.feed(bytes);
                sink.data(&bytes[..scan]);
                if let Some(next) = next {
                    self.state = next;
                    if let State::Raw(_) = self.state {
                        sink.data(&bytes[scan..]);
                    }
                }
            }
            State::Done(_) => {}
            State::Http(d) => d.data(bytes, sink),
            State::Smtp(d) => d.data(bytes, sink),
            State::DnsTcp(d) => d.data(bytes, sink),
        }
    }
}

/// Longest TLS record body: 2^14 plus the largest expansion a cipher may add (RFC 8446 §5.2,
/// RFC 5246 §6.2.3).
const TLS_MAX_RECORD: u16 = (1 << 14) + 2048;

/// Follows the record layer of a TLS direction through its handshake. Records may straddle
/// segments; only the 5-byte header is ever held.
#[derive(Debug, Default)]
struct TlsRecords {
    /// Body bytes of the current record still to come.
    remaining: u16,
    /// Invariant: `hdr_len <= 5`; `hdr[..hdr_len]` is the start of the next record header.
    hdr_len: u8,
    hdr: [u8; 5],
}

impl TlsRecords {
    /// Follows `bytes`: returns how many of them are to be scanned and, when the handshake is over
    /// or the framing broke, the next state. The rest of `bytes` is encrypted (after `Done`)
    /// or, after `Raw`, is to be scanned too.
    fn feed(&mut self, bytes: &[u8]) -> (usize, Option<State>) {
        let mut at = 0;
        while at < bytes.len() {
            if self.remaining > 0 {
                let n = usize::from(self.remaining).min(bytes.len() - at);
                self.remaining -= n as u16;
                at += n;
                continue;
            }
            let have = usize::from(self.hdr_len);
            let n = (5 - have).min(bytes.len() - at);
            self.hdr[have..have + n].copy_from_slice(&bytes[at..at + n]);
            self.hdr_len += n as u8;
            at += n;
            if self.hdr_len < 5 {
                break;
            }
            self.hdr_len = 0;
            let [kind, major, minor, hi, lo] = self.hdr;
            let len = u16::from_be_bytes([hi, lo]);
            // 20 ChangeCipherSpec, 21 Alert, 22 Handshake, 23 ApplicationData, 24 Heartbeat.
            if !(20..=24).contains(&kind) || major != 3 || minor > 4 || len > TLS_MAX_RECORD {
                return (at, Some(State::Raw(Protocol::Tls)));
            }
            if kind == 20 || kind == 23 {
                return (at, Some(State::Done(Protocol::Tls)));
            }
            self.remaining = len;
        }
        (at, None)
    }
}

/// Longest SSH identification line, CR LF included (RFC 4253 §4.2).
const SSH_MAX_BANNER: u16 = 255;
/// Largest binary packet an implementation must accept, as a sanity bound (RFC 4253 §6.1).
const SSH_MAX_PACKET: u32 = 35_000;
/// SSH_MSG_KEXINIT: the first binary packet of each side.
const SSH_MSG_KEXINIT: u8 = 20;

/// Follows an SSH direction's identification line and the header of its first binary packet.
/// Only when that header is a plausible KEXINIT is the direction bypassed: a fake banner
/// followed by cleartext stays scanned.
#[derive(Debug, Default)]
struct SshBanner {
    /// Bytes of the identification line seen so far.
    line: u16,
    /// The line ended (LF seen).
    ended: bool,
    /// Invariant: `hdr_len <= 6`; packet length (4), padding length (1), message code (1).
    hdr_len: u8,
    hdr: [u8; 6],
}

impl SshBanner {
    /// Like [`TlsRecords::feed`].
    fn feed(&mut self, bytes: &[u8]) -> (usize, Option<State>) {
        let mut at = 0;
        if !self.ended {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) if usize::from(self.line) + i < usize::from(SSH_MAX_BANNER) => {
                    self.ended = true;
                    at = i + 1;
                }
                _ if usize::from(self.line) + bytes.len() < usize::from(SSH_MAX_BANNER) => {
                    self.line += bytes.len() as u16;
                    return (bytes.len(), None);
                }
                _ => return (0, Some(State::Raw(Protocol::Ssh))),
            }
        }
        let have = usize::from(self.hdr_len);
        let n = (6 - have).min(bytes.len() - at);
        self.hdr[have..have + n].copy_from_slice(&bytes[at..at + n]);
        self.hdr_len += n as u8;
        at += n;
        if self.hdr_len < 6 {
            return (at, None);
        }
        let len = u32::from_be_bytes([self.hdr[0], self.hdr[1], self.hdr[2], self.hdr[3]]);
        let (pad, code) = (self.hdr[4], self.hdr[5]);
        if code == SSH_MSG_KEXINIT && (4..=255).contains(&pad) && u32::from(pad) < len && len <= SSH_MAX_PACKET {
            (at, Some(State::Done(Protocol::Ssh)))
        } else {
            (at, Some(State::Raw(Protocol::Ssh)))
        }
    }
}

/// Picks a decoder from the first bytes; `None` means "need more bytes" (only when `last` is
/// false). A raw decision starts its one section here so its findings say `raw`.
fn decide(seen: &[u8], server_port: u16, last: bool) -> Option<State> {
    if seen.len() >= 3 && seen[0] == 0x16 && seen[1] == 0x03 && seen[2] <= 0x04 {
        return Some(State::Tls(TlsRecords::default()));
    }
    if seen.starts_with(b"SSH-") {
        return Some(State::Ssh(SshBanner::default()));
    }
    let probes = [http::probe(seen), smtp::probe(seen)];
    match probes {
        [Probe::Yes, _] => return Some(State::Http(Box::default())),
        [_, Probe::Yes] => return Some(State::Smtp(Box::default())),
        _ => {}
    }
    if server_port == 53 {
        return Some(State::DnsTcp(Box::default()));
    }
    let tls_start = seen.len() < 3 && [0x16, 0x03].starts_with(seen);
    let unsure = probes.contains(&Probe::Unsure) || (seen.len() < 4 && b"SSH-".starts_with(seen)) || tls_start;
    if unsure && !last {
        return None;
    }
    Some(State::Raw(Protocol::Unknown))
}

/// An HTTP decision takes over the decoder that learnt the peer's requests while sniffing.
fn with_peer(next: State, peer_http: Option<Box<HttpDecoder>>) -> State {
    match (next, peer_http) {
        (State::Http(_), Some(d)) => State::Http(d),
        (next, _) => next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l7::L7Event;
    use proptest::prelude::*;

    /// Collects what a decoder emits: sections with their bytes, gaps as a marker section.
    #[derive(Default)]
    struct Rec {
        sections: Vec<(Location, Vec<u8>)>,
    }

    impl ContentSink for Rec {
        fn section(&mut self, location: Location, _name: &[u8]) {
            self.sections.push((location, Vec::new()));
        }
        fn data(&mut self, bytes: &[u8]) {
            self.sections
                .last_mut()
                .expect("data after a section")
                .1
                .extend_from_slice(bytes);
        }
        fn gap(&mut self) {
            self.sections.push((Location::Raw, b"<gap>".to_vec()));
        }
        fn event(&mut self, _event: L7Event) {}
    }

    fn feed_pieces(d: &mut AppDecoder, data: &[u8], piece: usize, rec: &mut Rec) {
        for c in data.chunks(piece) {
            d.data(c, rec);
        }
        d.finish(rec);
    }

    proptest! {
        /// The first-byte shortcut turns away nothing the decoders would read: exactly the
        /// packets that start with an HTTP method and a space.
        #[test]
        fn reads_peer_payload_is_the_request_probe(
            payload in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..40),
                "(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|CONNECT|TRACE|PROPFIND|MKCOL|LOCK|UNLOCK|PURGE|MKCALENDAR|HTTP/1\\.1|get|Get|G|GE)[ /]?[ -~]{0,20}"
                    .prop_map(String::into_bytes),
            ]
        ) {
            let probe = http::probe(&payload[..payload.len().min(16)]) == Probe::Yes;
            prop_assert_eq!(
                AppDecoder::reads_peer_payload(&payload),
                probe && !payload.starts_with(b"HTTP/")
            );
        }
    }

    #[test]
    fn unrecognised_bytes_pass_raw_whatever_the_piece_size() {
        let data = b"id=35202-1234567-1&x=1 and some more bytes after it";
        let mut whole = Rec::default();
        feed_pieces(&mut AppDecoder::new(40000, 8080), data, data.len(), &mut whole);
        assert_eq!(whole.sections, vec![(Location::Raw, data.to_vec())]);
        for piece in 1..20 {
            let mut rec = Rec::default();
            let mut d = AppDecoder::new(40000, 8080);
            feed_pieces(&mut d, data, piece, &mut rec);
            assert_eq!(rec.sections, whole.sections, "piece size {piece}");
            assert_eq!(d.protocol(), Protocol::Unknown);
        }
    }

    #[test]
    fn encrypted_protocols_are_named() {
        let mut d = AppDecoder::new(40000, 443);
        d.data(&[0x16, 0x03, 0x01, 0x02, 0x00], &mut Rec::default());
        assert_eq!(d.protocol(), Protocol::Tls);
        let mut d = AppDecoder::new(22, 40000);
        d.data(b"SSH-2.0-OpenSSH_9.2\r\n", &mut Rec::default());
        assert_eq!(d.protocol(), Protocol::Ssh);
    }

    #[test]
    fn a_short_ambiguous_start_is_flushed_by_a_gap_or_the_end() {
        // "SS" could still become "SSH-": held until decided.
        let mut rec = Rec::default();
        let mut d = AppDecoder::new(40000, 9000);
        d.data(b"SS", &mut rec);
        assert!(d.is_sniffing() && rec.sections.is_empty());
        d.gap(10, &mut rec);
        assert!(!d.is_sniffing());
        assert_eq!(rec.sections[0], (Location::Raw, b"SS".to_vec()));
        assert_eq!(rec.sections[1].1, b"<gap>");

        let mut rec = Rec::default();
        let mut d = AppDecoder::new(40000, 9000);
        d.data(b"SS", &mut rec);
        d.finish(&mut rec);
        assert_eq!(rec.sections, vec![(Location::Raw, b"SS".to_vec())]);
    }

    /// A TLS record: content type, version 3.3, body.
    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    fn scanned(rec: &Rec) -> Vec<u8> {
        rec.sections.iter().flat_map(|s| s.1.clone()).collect()
    }

    #[test]
    fn tls_is_bypassed_at_change_cipher_spec_or_application_data_at_any_split() {
        let hello = record(22, &[1u8; 300]);
        for end in [record(20, &[1]), record(23, b"secret 35202-1234567-1")] {
            let mut stream = hello.clone();
            stream.extend_from_slice(&end);
            stream.extend_from_slice(&record(23, b"more ciphertext"));
            let expect = &stream[..hello.len() + 5];
            for piece in [1, 2, 3, 5, 7, 64, stream.len()] {
                let mut rec = Rec::default();
                let mut d = AppDecoder::new(40000, 443);
                for c in stream.chunks(piece) {
                    d.data(c, &mut rec);
                }
                assert_eq!(d.bypass_ready(), Some(Protocol::Tls), "piece {piece}");
                assert_eq!(scanned(&rec), expect, "only the handshake and the header are scanned");
            }
        }
    }

    #[test]
    fn a_broken_tls_record_header_falls_back_to_raw_scanning() {
        let mut stream = record(22, &[1u8; 40]);
        // Not a content type: cleartext dressed as a handshake start.
        stream.extend_from_slice(b"POST /x cnic=35202-1234567-1");
        stream.extend_from_slice(&record(23, b"x"));
        let mut rec = Rec::default();
        let mut d = AppDecoder::new(40000, 443);
        feed_pieces(&mut d, &stream, 9, &mut rec);
        assert_eq!(d.bypass_ready(), None);
        assert_eq!(d.protocol(), Protocol::Tls);
        assert_eq!(scanned(&rec), stream, "every byte scanned");
        // An oversized record length is no TLS either.
        let mut rec = Rec::default();
        let mut d = AppDecoder::new(40000, 443);
        d.data(&[22, 3, 1, 0xff, 0xff, 0], &mut rec);
        d.data(&record(23, b"x"), &mut rec);
        assert_eq!(d.bypass_ready(), None);
    }

    #[test]
    fn a_gap_in_the_tls_handshake_keeps_the_direction_scanned() {
        let mut rec = Rec::default();
        let mut d = AppDecoder::new(40000, 443);
        d.data(&record(22, &[1u8; 10])[..8], &mut rec);
        d.gap(100, &mut rec);
        d.data(&record(23, b"x"), &mut rec);
        assert_eq!(d.bypass_ready(), None);
    }

    /// An SSH binary packet header: length, padding length, message code.
    fn ssh_packet(code: u8) -> Vec<u8> {
        let mut p = 1000u32.to_be_bytes().to_vec();
        p.extend_from_slice(&[8, code]);
        p.extend_from_slice(&[0u8; 40]);
        p
    }

    #[test]
    fn ssh_is_bypassed_at_its_first_kexinit_only() {
        let banner = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
        let mut stream = banner.to_vec();
        stream.extend_from_slice(&ssh_packet(20));
        for piece in [1, 3, 10, stream.len()] {
            let mut rec = Rec::default();
            let mut d = AppDecoder::new(40000, 22);
            for c in stream.chunks(piece) {
                d.data(c, &mut rec);
            }
            assert_eq!(d.bypass_ready(), Some(Protocol::Ssh), "piece {piece}");
            assert_eq!(scanned(&rec), &stream[..banner.len() + 6]);
        }
        // A banner followed by cleartext is scanned in full.
        let mut stream = banner.to_vec();
        stream.extend_from_slice(b"card 4532 0173 9246 5814\n");
        let mut rec = Rec::default();
        let mut d = AppDecoder::new(40000, 22);
        feed_pieces(&mut d, &stream, 4, &mut rec);
        assert_eq!(d.bypass_ready(), None);
        assert_eq!(scanned(&rec), stream);
        // So is an endless "banner".
        let stream = [b"SSH-".as_slice(), &[b'a'; 400]].concat();
        let mut rec = Rec::default();
        let mut d = AppDecoder::new(40000, 22);
        feed_pieces(&mut d, &stream, 50, &mut rec);
        assert_eq!(d.bypass_ready(), None);
        assert_eq!(scanned(&rec), stream);
    }

    #[test]
    fn smtp_is_bypassed_once_starttls_takes_effect() {
        let mut rec = Rec::default();
        let mut d = AppDecoder::new(40000, 25);
        d.data(b"EHLO a.example\r\nSTARTTLS\r\n", &mut rec);
        assert_eq!(d.bypass_ready(), None);
        d.data(&record(22, &[1; 20]), &mut rec);
        assert_eq!(d.bypass_ready(), Some(Protocol::Smtp));
        d.release();
        assert_eq!(d.protocol(), Protocol::Smtp);
        assert_eq!(d.memory(), 0);
    }

    #[test]
    fn dns_over_tcp_is_chosen_by_port() {
        let mut d = AppDecoder::new(40000, 53);
        d.data(&[0, 30, 1, 2], &mut Rec::default());
        assert_eq!(d.protocol(), Protocol::Dns);
    }
}
