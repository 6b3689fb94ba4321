//! Synthetic traffic for tests, benchmarks and the demo capture: real Ethernet/IP/TCP/UDP frames
//! built with etherparse and written with libpcap's own pcap writer, so everything the sensor
//! reads in a test went through the same code paths as a capture from the wire.
//!
//! Nothing here touches a network; it only builds bytes.

pub mod bench;
pub mod corpus;
pub mod dns;
pub mod http;
pub mod smtp;
mod traffic;
pub mod values;

pub use traffic::{benign_mix, MixConfig};

use crate::clock::Timestamp;
use etherparse::PacketBuilder;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// One frame with its capture time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Capture time.
    pub ts: Timestamp,
    /// Ethernet frame bytes.
    pub data: Vec<u8>,
}

impl Frame {
    /// The pcap record header of this frame, captured whole.
    pub fn pcap_header(&self) -> pcap::PacketHeader {
        let micros = self.ts.as_micros();
        pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: (micros / 1_000_000) as libc::time_t,
                tv_usec: (micros % 1_000_000) as libc::suseconds_t,
            },
            caplen: self.data.len() as u32,
            len: self.data.len() as u32,
        }
    }
}

/// Writes frames as a classic pcap file (link type Ethernet) with libpcap.
pub fn write_pcap(path: &Path, frames: &[Frame]) -> Result<(), pcap::Error> {
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET)?;
    let mut out = dead.savefile(path)?;
    for f in frames {
        out.write(&pcap::Packet::new(&f.pcap_header(), &f.data));
    }
    out.flush()
}

/// IPv4 fragments of an Ethernet + IPv4 frame, each carrying at most `chunk` bytes of IP
/// payload (`chunk` must be a multiple of 8), all with IP id 0x4242.
pub fn ipv4_fragments(frame: &Frame, chunk: usize) -> Vec<Frame> {
    assert_eq!(chunk % 8, 0, "fragment offsets count 8-byte units");
    let (eth, ip) = frame.data.split_at(14);
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let (hdr, payload) = ip.split_at(ihl);
    let mut out = Vec::new();
    for (i, part) in payload.chunks(chunk).enumerate() {
        let mut h = hdr.to_vec();
        let total = (ihl + part.len()) as u16;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&0x4242u16.to_be_bytes());
        let more = (i + 1) * chunk < payload.len();
        let off = ((i * chunk / 8) as u16) | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&off.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let sum = crate::decode::ipv4_checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut data = eth.to_vec();
        data.extend_from_slice(&h);
        data.extend_from_slice(part);
        out.push(Frame { ts: frame.ts, data });
    }
    out
}

/// TCP flags of a synthetic segment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    /// SYN.
    pub syn: bool,
    /// ACK (always set after the handshake).
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
}

impl Flags {
    /// SYN alone: a client opening a connection.
    pub const SYN: Flags = Flags {
        syn: true,
        ack: false,
        fin: false,
        rst: false,
    };
    /// SYN and ACK: the server's answer.
    pub const SYN_ACK: Flags = Flags {
        syn: true,
        ack: true,
        fin: false,
        rst: false,
    };
    /// ACK alone: every segment after the handshake.
    pub const ACK: Flags = Flags {
        syn: false,
        ack: true,
        fin: false,
        rst: false,
    };
    /// FIN and ACK: one side closing.
    pub const FIN_ACK: Flags = Flags {
        syn: false,
        ack: true,
        fin: true,
        rst: false,
    };
}

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

/// Builds one Ethernet frame carrying a TCP segment (optionally VLAN-tagged: one tag or QinQ).
pub fn tcp_frame(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: Flags,
    payload: &[u8],
    vlans: &[u16],
) -> Vec<u8> {
    let mut b = ip_builder(src.ip(), dst.ip()).tcp(src.port(), dst.port(), seq, 64240);
    if flags.syn {
        b = b.syn();
    }
    if flags.ack {
        b = b.ack(ack);
    }
    if flags.fin {
        b = b.fin();
    }
    if flags.rst {
        b = b.rst();
    }
    if !payload.is_empty() {
        b = b.psh();
    }
    let mut ip = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut ip, payload).expect("synthetic packet serialises");
    ethernet(&ip, src.is_ipv6(), vlans)
}

/// Builds one Ethernet frame carrying a UDP datagram.
pub fn udp_frame(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let b = ip_builder(src.ip(), dst.ip()).udp(src.port(), dst.port());
    let mut ip = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut ip, payload).expect("synthetic packet serialises");
    ethernet(&ip, src.is_ipv6(), &[])
}

fn ip_builder(src: IpAddr, dst: IpAddr) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 64),
        _ => panic!("synthetic flow mixes IPv4 and IPv6"),
    }
}

/// Wraps an IP packet in Ethernet II, with 802.1Q tags (QinQ: the outer one is 802.1ad).
fn ethernet(ip: &[u8], v6: bool, vlans: &[u16]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * vlans.len() + ip.len());
    f.extend_from_slice(&SERVER_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    for (i, v) in vlans.iter().enumerate() {
        let tpid: u16 = if vlans.len() > 1 && i == 0 { 0x88a8 } else { 0x8100 };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(v & 0x0fff).to_be_bytes());
    }
    let ethertype: u16 = if v6 { 0x86dd } else { 0x0800 };
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// A synthetic TCP connection that produces correctly sequenced frames.
#[derive(Debug, Clone)]
pub struct TcpConn {
    /// Client (opens the connection).
    pub client: SocketAddr,
    /// Server.
    pub server: SocketAddr,
    /// Next sequence number the client will send.
    pub client_seq: u32,
    /// Next sequence number the server will send.
    pub server_seq: u32,
    /// Time of the next frame.
    pub ts: Timestamp,
    /// Largest segment payload.
    pub mss: usize,
    /// VLAN tags (outer first).
    pub vlans: Vec<u16>,
}

impl TcpConn {
    /// A connection with the given initial sequence numbers, starting at `ts`.
    pub fn new(client: SocketAddr, server: SocketAddr, client_isn: u32, server_isn: u32, ts: Timestamp) -> TcpConn {
        TcpConn {
            client,
            server,
            client_seq: client_isn,
            server_seq: server_isn,
            ts,
            mss: 1460,
            vlans: Vec::new(),
        }
    }

    fn tick(&mut self) -> Timestamp {
        let t = self.ts;
        self.ts = Timestamp::from_micros(t.as_micros() + 50);
        t
    }

    fn ends(&self, from_client: bool) -> (SocketAddr, SocketAddr) {
        if from_client {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        }
    }

    /// A single frame from one side with explicit sequence number (for crafted tests).
    pub fn frame_at(&mut self, from_client: bool, seq: u32, flags: Flags, payload: &[u8]) -> Frame {
        let (s, d) = self.ends(from_client);
        let ack = if from_client { self.server_seq } else { self.client_seq };
        let ts = self.tick();
        Frame {
            ts,
            data: tcp_frame(s, d, seq, ack, flags, payload, &self.vlans),
        }
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) -> Vec<Frame> {
        let syn = Flags::SYN;
        let f1 = self.frame_at(true, self.client_seq, syn, &[]);
        self.client_seq = self.client_seq.wrapping_add(1);
        let f2 = self.frame_at(false, self.server_seq, Flags::SYN_ACK, &[]);
        self.server_seq = self.server_seq.wrapping_add(1);
        let f3 = self.frame_at(true, self.client_seq, Flags::ACK, &[]);
        vec![f1, f2, f3]
    }

    /// Data segments of at most `mss` bytes from one side, each acknowledged by the other.
    pub fn send(&mut self, from_client: bool, data: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        for chunk in data.chunks(self.mss.max(1)) {
            out.extend(self.segments(from_client, chunk, &[chunk.len()]));
            let (seq, _) = self.seqs(!from_client);
            out.push(self.frame_at(!from_client, seq, Flags::ACK, &[]));
        }
        out
    }

    fn seqs(&self, from_client: bool) -> (u32, u32) {
        if from_client {
            (self.client_seq, self.server_seq)
        } else {
            (self.server_seq, self.client_seq)
        }
    }

    /// `data` cut into segments of the given sizes (the last size repeats), no ACKs in between.
    pub fn segments(&mut self, from_client: bool, data: &[u8], sizes: &[usize]) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut off = 0;
        let mut i = 0;
        while off < data.len() {
            let size = sizes.get(i).or(sizes.last()).copied().unwrap_or(data.len()).max(1);
            let end = (off + size).min(data.len());
            let (seq, _) = self.seqs(from_client);
            out.push(self.frame_at(from_client, seq, Flags::ACK, &data[off..end]));
            let len = (end - off) as u32;
            if from_client {
                self.client_seq = self.client_seq.wrapping_add(len);
            } else {
                self.server_seq = self.server_seq.wrapping_add(len);
            }
            off = end;
            i += 1;
        }
        out
    }

    /// FIN from each side and the last ACK.
    pub fn close(&mut self) -> Vec<Frame> {
        let fin = Flags::FIN_ACK;
        let f1 = self.frame_at(true, self.client_seq, fin, &[]);
        self.client_seq = self.client_seq.wrapping_add(1);
        let f2 = self.frame_at(false, self.server_seq, fin, &[]);
        self.server_seq = self.server_seq.wrapping_add(1);
        let f3 = self.frame_at(true, self.client_seq, Flags::ACK, &[]);
        vec![f1, f2, f3]
    }
}

/// The bundled demo capture: a few benign conversations and a few leaks (all values synthetic).
pub fn demo() -> Vec<Frame> {
    let t0 = Timestamp::from_micros(1_763_769_600_000_000); // 2025-11-22T00:00:00Z
    let sa = |s: &str| s.parse::<SocketAddr>().expect("literal address");
    let mut frames = Vec::new();

    // 1. An inside client posts a customer record with a dashed CNIC to an outside web service,
    //    split across two segments right inside the number.
    let mut c = TcpConn::new(sa("10.20.1.15:51234"), sa("203.0.113.80:80"), 1000, 90_000, t0);
    frames.extend(c.handshake());
    let body = b"POST /api/customers HTTP/1.1\r\nHost: crm.example.net\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{\"name\":\"Ayesha Khan\",\"cnic\":\"35202-1234567-2\",\"city\":\"Lahore\"}";
    let cut = body.len() - 20;
    frames.extend(c.segments(true, &body[..cut], &[cut]));
    frames.extend(c.segments(true, &body[cut..], &[body.len() - cut]));
    frames.extend(c.send(false, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"));
    frames.extend(c.close());

    // A conversation opened by `client` at `secs` after t0: handshake, what each side says, close.
    let conversation =
        |client: &str, server: &str, isns: (u32, u32), secs: u64, client_says: &[u8], server_says: &[u8]| {
            let start = Timestamp::from_micros(t0.as_micros() + secs * 1_000_000);
            let mut c = TcpConn::new(sa(client), sa(server), isns.0, isns.1, start);
            let mut f = c.handshake();
            f.extend(c.send(true, client_says));
            if !server_says.is_empty() {
                f.extend(c.send(false, server_says));
            }
            f.extend(c.close());
            f
        };

    // 2. An inside web server answers an outside client with card numbers (egress response).
    //    The last row is a public test card number: allowed by default, counted, not alerted.
    let csv = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\n\r\norder,card\r\n1001,4532 0173 9246 5814\r\n1002,5228-4716-3059-2747\r\n1003,378291638457209\r\n1004,4111 1111 1111 1111\r\n";
    let get = b"GET /orders/export HTTP/1.1\r\nHost: shop.internal\r\n\r\n";
    frames.extend(conversation(
        "198.51.100.7:44000",
        "192.168.10.5:8080",
        (5000, 7000),
        1,
        get,
        csv,
    ));

    // 3. Benign: telemetry with 13-digit millisecond timestamps and Luhn-invalid ids, egress.
    let telemetry =
        b"{\"ts\":1732212345678,\"seen\":1763769600123,\"order\":4111111111111112,\"phone\":\"03001234567\"}";
    frames.extend(conversation(
        "10.20.1.16:40000",
        "198.51.100.20:443",
        (1, 2),
        2,
        telemetry,
        b"",
    ));

    // 4. Inside to inside: a CNIC that never leaves the network is not an alert.
    let insert = b"INSERT INTO people VALUES ('61101-7654321-8');";
    frames.extend(conversation(
        "10.20.1.17:40001",
        "10.30.0.9:5432",
        (10, 20),
        3,
        insert,
        b"",
    ));

    // 5. A CNIC in a UDP datagram (syslog-style) to an outside collector, and the same CNIC sent
    //    again in the first connection's style over IPv6.
    frames.push(Frame {
        ts: Timestamp::from_micros(t0.as_micros() + 4_000_000),
        data: udp_frame(
            sa("10.20.1.18:514"),
            sa("203.0.113.99:514"),
            b"<134>app: verified identity card 42101-9876543-3 ok",
        ),
    });
    let form = b"cnic=35202-1234567-2&card=6011473902561870";
    frames.extend(conversation(
        "[fd00::15]:50000",
        "[2001:db8::80]:80",
        (77, 88),
        5,
        form,
        b"",
    ));
    frames.sort_by_key(|f| f.ts);
    frames
}
