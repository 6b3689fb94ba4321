//! Per-direction protocol recognition and dispatch to the decoder that owns the protocol.

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
    /// Scanned as is (unrecognised, or encrypted until bypass lands).
    Raw(Protocol),
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
            State::Http(d) => d.gap(missing, sink),
            State::Smtp(d) => d.gap(missing, sink),
            State::DnsTcp(d) => d.gap(missing, sink),
        }
    }

    /// End of the direction: flush whatever is held.
    pub fn finish(&mut self, sink: &mut dyn ContentSink) {
        self.decide_now(sink);
        match &mut self.state {
            State::Sniff { .. } | State::Raw(_) => {}
            State::Http(d) => d.finish(sink),
            State::Smtp(d) => d.finish(sink),
            State::DnsTcp(d) => d.finish(sink),
        }
    }

    /// Payload of one packet of the other direction (not reassembled), for decoders that learn
    /// from the peer (HTTP request line for responses, SMTP replies).
    pub fn peer_data(&mut self, bytes: &[u8]) {
        match &mut self.state {
            State::Sniff { peer_http, .. } if http::probe(bytes) == Probe::Yes && !bytes.starts_with(b"HTTP/") => {
                peer_http.get_or_insert_with(Box::default).peer_data(bytes);
            }
            State::Http(d) => d.peer_data(bytes),
            State::Smtp(d) => d.peer_data(bytes),
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
            State::Raw(p) => *p,
            State::Http(_) => Protocol::Http,
            State::Smtp(_) => Protocol::Smtp,
            State::DnsTcp(_) => Protocol::Dns,
        }
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
            State::Raw(_) => 0,
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
        if matches!(self.state, State::Raw(_)) {
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
            State::Http(d) => d.data(bytes, sink),
            State::Smtp(d) => d.data(bytes, sink),
            State::DnsTcp(d) => d.data(bytes, sink),
        }
    }
}

/// Picks a decoder from the first bytes; `None` means "need more bytes" (only when `last` is
/// false). A raw decision starts its one section here so its findings say `raw`.
fn decide(seen: &[u8], server_port: u16, last: bool) -> Option<State> {
    if seen.len() >= 3 && seen[0] == 0x16 && seen[1] == 0x03 && seen[2] <= 0x04 {
        return Some(State::Raw(Protocol::Tls));
    }
    if seen.starts_with(b"SSH-") {
        return Some(State::Raw(Protocol::Ssh));
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
    let unsure = probes.contains(&Probe::Unsure) || (seen.len() < 4 && b"SSH-".starts_with(seen));
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

    #[test]
    fn dns_over_tcp_is_chosen_by_port() {
        let mut d = AppDecoder::new(40000, 53);
        d.data(&[0, 30, 1, 2], &mut Rec::default());
        assert_eq!(d.protocol(), Protocol::Dns);
    }
}
