//! Benchmark captures at any size (100 MB to several GB), streamed straight to a pcap file so the
//! capture never has to fit in memory.
//!
//! Three mixes, each many interleaved flows (thousands open at once), MSS-sized segments each
//! acknowledged by the other side, SYN and FIN, deterministic from a seed:
//! - [`Mix::Cleartext`]: HTTP/1.1 keep-alive POSTs and responses: HTML, digit-heavy JSON full of
//!   13-digit millisecond timestamps (`17…`, CNIC-shaped decoys), gzip'd bodies and binary ones.
//! - [`Mix::Isp`]: mostly TLS 1.2/1.3 (ClientHello, ServerHello, ChangeCipherSpec, then
//!   ApplicationData records of random bytes), with some HTTP and DNS over UDP.
//! - [`Mix::Small`]: 64–200 byte messages, for the packets-per-second limit.
//!
//! A little PII is planted in egress cleartext (one synthetic value per `leak_every` egress bytes,
//! next to a keyword); [`BenchStats::planted`] lists them so a test can check the sensor finds
//! exactly those.

use super::http::{Coding, Framing, Message};
use super::values::{self, Kind};
use super::{Frame, TcpConn};
use crate::clock::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Which traffic a benchmark capture carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Cleartext HTTP: the worst case for the matcher.
    Cleartext,
    /// An ISP's link: mostly TLS, some HTTP and DNS.
    Isp,
    /// Small packets (64–200 byte payloads).
    Small,
}

impl Mix {
    /// The mix's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Mix::Cleartext => "cleartext",
            Mix::Isp => "isp",
            Mix::Small => "small",
        }
    }
}

/// Shape of a benchmark capture.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Traffic mix.
    pub mix: Mix,
    /// Size of the pcap file to write, in bytes (the last flows are closed past it).
    pub file_bytes: u64,
    /// PRNG seed: same seed and size, same file.
    pub seed: u64,
    /// Flows open at once (their segments interleave).
    pub concurrent_flows: usize,
    /// One planted personal value per this many egress cleartext payload bytes (0: none).
    pub leak_every: u64,
}

impl BenchConfig {
    /// Defaults for `mix`: 2,000 concurrent flows (4,000 for small packets), one leak per MiB.
    pub fn new(mix: Mix, file_bytes: u64, seed: u64) -> BenchConfig {
        BenchConfig {
            mix,
            file_bytes,
            seed,
            concurrent_flows: if mix == Mix::Small { 4000 } else { 2000 },
            leak_every: 1 << 20,
        }
    }
}

/// A personal value planted in the capture (synthetic; never log it in clear).
#[derive(Clone, PartialEq, Eq)]
pub struct PlantedValue {
    /// Its kind.
    pub kind: Kind,
    /// Its normalised digits.
    pub digits: String,
}

impl std::fmt::Debug for PlantedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Even synthetic values stay out of Debug output: the rule is the same for all values.
        write!(f, "PlantedValue({:?}, {} digits)", self.kind, self.digits.len())
    }
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct BenchStats {
    /// Frames written.
    pub packets: u64,
    /// Bytes of the pcap file.
    pub file_bytes: u64,
    /// TCP and UDP payload bytes, both directions.
    pub payload_bytes: u64,
    /// Payload bytes sent from inside (10.0.0.0/8) to outside: what the sensor scans.
    pub egress_payload_bytes: u64,
    /// TCP connections opened.
    pub flows: u64,
    /// Values planted, in order.
    pub planted: Vec<PlantedValue>,
}

/// Why a benchmark capture could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// libpcap could not create or write the file.
    #[error("cannot write benchmark capture {path}: {msg}; check the directory exists and is writable")]
    Write {
        /// The output file.
        path: PathBuf,
        /// libpcap's message.
        msg: String,
    },
}

const PCAP_FILE_HEADER: u64 = 24;
const PCAP_RECORD_HEADER: u64 = 16;
/// Payload of a full segment with TCP timestamps on a 1500-byte MTU.
const MSS: usize = 1448;

struct Out {
    file: pcap::Savefile,
    stats: BenchStats,
}

impl Out {
    fn frames(&mut self, frames: Vec<Frame>) {
        for f in frames {
            self.file.write(&pcap::Packet::new(&f.pcap_header(), &f.data));
            self.stats.packets += 1;
            self.stats.file_bytes += PCAP_RECORD_HEADER + f.data.len() as u64;
        }
    }

    fn payload(&mut self, egress: bool, n: usize) {
        self.stats.payload_bytes += n as u64;
        if egress {
            self.stats.egress_payload_bytes += n as u64;
        }
    }
}

/// What a flow says next: one message from one side.
struct Turn {
    from_client: bool,
    data: Vec<u8>,
    sent: usize,
}

enum Script {
    /// Keep-alive HTTP: `left` more request/response exchanges; `answer` when a request awaits
    /// its response.
    Http { left: u32, answer: bool },
    /// TLS: handshake steps, then `left` more application exchanges.
    Tls { step: u8, v13: bool, left: u32 },
    /// Small request/response messages.
    Small { left: u32 },
}

struct Flow {
    conn: TcpConn,
    script: Script,
    no: u64,
    turn: Option<Turn>,
}

struct Gen {
    cfg: BenchConfig,
    rng: StdRng,
    ts: u64,
    flows_opened: u64,
    egress_since_leak: u64,
    planted: Vec<PlantedValue>,
}

/// Writes a benchmark capture to `path`, streaming frames as they are made.
pub fn generate(cfg: &BenchConfig, path: &Path) -> Result<BenchStats, BenchError> {
    let err = |e: pcap::Error| BenchError::Write {
        path: path.to_path_buf(),
        msg: e.to_string(),
    };
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(err)?;
    let file = dead.savefile(path).map_err(err)?;
    let mut out = Out {
        file,
        stats: BenchStats {
            file_bytes: PCAP_FILE_HEADER,
            ..BenchStats::default()
        },
    };
    let mut g = Gen {
        cfg: cfg.clone(),
        rng: StdRng::seed_from_u64(cfg.seed),
        ts: 1_763_769_600_000_000,
        flows_opened: 0,
        egress_since_leak: 0,
        planted: Vec::new(),
    };
    // Flows open at the end finish their current message, so a small file gets fewer flows to
    // stay near the size asked for.
    let concurrent = cfg.concurrent_flows.min((cfg.file_bytes / (128 << 10)).max(8) as usize);
    let mut open: Vec<Flow> = Vec::with_capacity(concurrent);
    loop {
        let filling = out.stats.file_bytes < cfg.file_bytes;
        while filling && open.len() < concurrent {
            let mut f = g.open_flow();
            out.frames(f.conn.handshake());
            g.ts = f.conn.ts.as_micros();
            open.push(f);
        }
        if open.is_empty() {
            break;
        }
        g.ts += 7;
        if cfg.mix == Mix::Isp && g.rng.gen_ratio(1, 40) {
            g.dns(&mut out);
        }
        let i = g.rng.gen_range(0..open.len());
        let flow = &mut open[i];
        flow.conn.ts = Timestamp::from_micros(g.ts);
        let more = g.step(flow, &mut out, filling);
        g.ts = flow.conn.ts.as_micros();
        if !more {
            let mut f = open.swap_remove(i);
            out.frames(f.conn.close());
            g.ts = f.conn.ts.as_micros();
        }
    }
    out.stats.flows = g.flows_opened;
    out.stats.planted = g.planted;
    out.file.flush().map_err(err)?;
    Ok(out.stats)
}

impl Gen {
    fn open_flow(&mut self) -> Flow {
        self.flows_opened += 1;
        let no = self.flows_opened;
        let client = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, (no >> 16) as u8, (no >> 8) as u8, no as u8)),
            1024 + (no % 60000) as u16,
        );
        let server_ip = IpAddr::V4(Ipv4Addr::new(
            [198, 203, 192][(no % 3) as usize],
            [51, 0, 0][(no % 3) as usize],
            [100, 113, 2][(no % 3) as usize],
            (no % 250) as u8 + 1,
        ));
        let script = match self.cfg.mix {
            Mix::Cleartext => Script::Http {
                left: self.rng.gen_range(1..8),
                answer: false,
            },
            Mix::Isp if self.rng.gen_ratio(1, 6) => Script::Http {
                left: self.rng.gen_range(1..4),
                answer: false,
            },
            Mix::Isp => Script::Tls {
                step: 0,
                v13: self.rng.gen_bool(0.7),
                left: self.rng.gen_range(2..20),
            },
            Mix::Small => Script::Small {
                left: self.rng.gen_range(4..40),
            },
        };
        let port = match (&script, self.cfg.mix) {
            (Script::Http { .. }, _) => 80,
            (Script::Tls { .. }, _) => 443,
            _ => 5222,
        };
        let mut conn = TcpConn::new(
            client,
            SocketAddr::new(server_ip, port),
            self.rng.gen(),
            self.rng.gen(),
            Timestamp::from_micros(self.ts),
        );
        conn.mss = MSS;
        Flow {
            conn,
            script,
            no,
            turn: None,
        }
    }

    /// Sends up to a few segments of the flow's current message; false when the flow is done.
    fn step(&mut self, flow: &mut Flow, out: &mut Out, filling: bool) -> bool {
        if flow.turn.is_none() {
            flow.turn = self.next_turn(flow, filling);
        }
        let Some(turn) = flow.turn.as_mut() else {
            return false;
        };
        let n = (turn.data.len() - turn.sent).min(MSS * self.rng.gen_range(1..6));
        let chunk = &turn.data[turn.sent..turn.sent + n];
        out.frames(flow.conn.send(turn.from_client, chunk));
        out.payload(turn.from_client, n);
        turn.sent += n;
        if turn.sent == turn.data.len() {
            flow.turn = None;
        }
        true
    }

    fn next_turn(&mut self, flow: &mut Flow, filling: bool) -> Option<Turn> {
        let turn = |from_client, data| {
            Some(Turn {
                from_client,
                data,
                sent: 0,
            })
        };
        match &mut flow.script {
            Script::Http { left, answer } => {
                if std::mem::take(answer) {
                    return turn(false, self.http_response());
                }
                if *left == 0 || !filling {
                    return None;
                }
                *left -= 1;
                *answer = true;
                turn(true, self.http_request(flow.no))
            }
            Script::Tls { step, v13, left } => {
                let s = *step;
                *step = step.saturating_add(1);
                match s {
                    0 => turn(true, client_hello(&mut self.rng, flow.no, *v13)),
                    1 => turn(false, server_flight(&mut self.rng, *v13)),
                    2 => turn(true, client_finish(&mut self.rng, *v13)),
                    3 if !*v13 => turn(false, [ccs(), record(&mut self.rng, 22, 40)].concat()),
                    _ if *left == 0 || !filling => None,
                    _ => {
                        *left -= 1;
                        if *left % 2 == 1 {
                            let n = self.rng.gen_range(200..3000);
                            turn(true, records(&mut self.rng, n))
                        } else {
                            let n = self.rng.gen_range(4_000..200_000);
                            turn(false, records(&mut self.rng, n))
                        }
                    }
                }
            }
            Script::Small { left } => {
                if *left == 0 || !filling {
                    return None;
                }
                *left -= 1;
                let from_client = *left % 2 == 1;
                let n = self.rng.gen_range(64..=200);
                let mut msg = Vec::with_capacity(n);
                while msg.len() < n {
                    let ts = self.millis();
                    msg.extend_from_slice(format!("{{\"t\":{ts},\"seq\":{},\"st\":\"ok\"}}\n", *left).as_bytes());
                }
                msg.truncate(n);
                if from_client {
                    self.maybe_plant(&mut msg, n as u64);
                }
                turn(from_client, msg)
            }
        }
    }

    fn millis(&mut self) -> u64 {
        self.rng.gen_range(1_704_067_200_000u64..1_798_761_600_000)
    }

    /// Overwrites part of an egress body with a planted value next to its keyword, once per
    /// `leak_every` egress bytes.
    fn maybe_plant(&mut self, body: &mut Vec<u8>, egress: u64) {
        if self.cfg.leak_every == 0 {
            return;
        }
        self.egress_since_leak += egress;
        if self.egress_since_leak < self.cfg.leak_every {
            return;
        }
        self.egress_since_leak = 0;
        let (kind, digits, text) = if self.rng.gen_bool(0.5) {
            let c = values::cnic(&mut self.rng);
            let t = format!(" \"cnic\":\"{}\" ", values::dashed_cnic(&c));
            (Kind::Cnic, c, t)
        } else {
            let p = values::card(&mut self.rng);
            let t = format!(" \"card_number\":\"{}\" ", values::grouped_card(&p, ' '));
            (Kind::Card, p, t)
        };
        // Put it on a line of its own, so no neighbouring digits or keywords change its reading.
        let line = format!("\n{text}\n");
        let at = body.iter().position(|&b| b == b'\n').map_or(body.len(), |p| p + 1);
        body.splice(at..at, line.bytes());
        self.planted(kind, digits);
    }

    fn planted(&mut self, kind: Kind, digits: String) {
        self.planted.push(PlantedValue { kind, digits });
    }

    fn http_request(&mut self, flow: u64) -> Vec<u8> {
        let host = format!("api{}.example.com", flow % 13);
        if self.rng.gen_ratio(1, 4) {
            let target = format!("/v1/items?page={}&_={}", self.rng.gen_range(1..50), self.millis());
            return Message::request("GET", &target)
                .header("Host", &host)
                .header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
                .header("Accept", "*/*")
                .to_bytes();
        }
        let n = self.rng.gen_range(1_000..48_000);
        let mut body = self.json(n);
        self.maybe_plant(&mut body, n as u64);
        let coding = if self.rng.gen_ratio(1, 5) {
            Coding::Gzip
        } else {
            Coding::Identity
        };
        Message::request("POST", &format!("/api/v2/events?session={flow}"))
            .header("Host", &host)
            .header("User-Agent", "app/5.1 (Android 14)")
            .header("Content-Type", "application/json")
            .body(coding, &Framing::Length, &body)
            .to_bytes()
    }

    fn http_response(&mut self) -> Vec<u8> {
        let pick = self.rng.gen_range(0..10);
        let html = "text/html; charset=utf-8";
        let (kind, coding, body) = match pick {
            0..=2 => {
                let n = self.rng.gen_range(2_000..60_000);
                (html, Coding::Identity, self.html(n))
            }
            3..=4 => {
                let n = self.rng.gen_range(8_000..120_000);
                (html, Coding::Gzip, self.html(n))
            }
            5..=6 => {
                let n = self.rng.gen_range(1_000..40_000);
                ("application/json", Coding::Identity, self.json(n))
            }
            7 => {
                let n = self.rng.gen_range(8_000..80_000);
                ("application/json", Coding::Gzip, self.json(n))
            }
            _ => {
                let mut b = vec![0; self.rng.gen_range(4_000..120_000)];
                self.rng.fill_bytes(&mut b);
                ("image/jpeg", Coding::Identity, b)
            }
        };
        Message::response(200, "OK")
            .header("Server", "nginx/1.24.0")
            .header("Content-Type", kind)
            .header("Cache-Control", "max-age=60")
            .body(coding, &Framing::Length, &body)
            .to_bytes()
    }

    /// JSON events, digit-heavy: a millisecond timestamp, ids and coordinates per line.
    fn json(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 160);
        out.extend_from_slice(b"[\n");
        while out.len() < len {
            let ts = self.millis();
            let line = format!(
                "{{\"ts\":{ts},\"seen\":{},\"id\":{},\"lat\":31.{:06},\"lng\":74.{:06},\"ok\":true}},\n",
                ts + self.rng.gen_range(0..5_000),
                self.rng.gen::<u32>(),
                self.rng.gen_range(0..999_999),
                self.rng.gen_range(0..999_999)
            );
            out.extend_from_slice(line.as_bytes());
        }
        out.extend_from_slice(b"{}]\n");
        out
    }

    fn html(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 200);
        out.extend_from_slice(b"<!doctype html><html><body>\n");
        while out.len() < len {
            let line = format!(
                "<div class=\"product\"><a href=\"/item/{}\">Lawn suit, 3 piece, unstitched</a><span class=\"price\">Rs. {},{:03}</span></div>\n",
                self.rng.gen_range(1000..99999),
                self.rng.gen_range(1..20),
                self.rng.gen_range(0..1000)
            );
            out.extend_from_slice(line.as_bytes());
        }
        out.extend_from_slice(b"</body></html>\n");
        out
    }

    /// A DNS query and its answer over UDP.
    fn dns(&mut self, out: &mut Out) {
        let id: u16 = self.rng.gen();
        let name = format!("cdn{}.example.net", self.rng.gen_range(0..500));
        let client = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, 9, self.rng.gen(), self.rng.gen())),
            self.rng.gen_range(1024..65535),
        );
        let resolver = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53)), 53);
        let q = super::dns::query(id, &name, super::dns::TYPE_A);
        let r = super::dns::response(
            id,
            &name,
            super::dns::TYPE_A,
            &[super::dns::Answer::A([203, 0, 113, 7])],
        );
        let ts = Timestamp::from_micros(self.ts);
        out.frames(vec![
            Frame {
                ts,
                data: super::udp_frame(client, resolver, &q),
            },
            Frame {
                ts: Timestamp::from_micros(self.ts + 900),
                data: super::udp_frame(resolver, client, &r),
            },
        ]);
        out.payload(true, q.len());
        out.payload(false, r.len());
    }
}

/// A TLS record of `len` random bytes (an encrypted body, or a stand-in for certificates).
fn record(rng: &mut StdRng, content_type: u8, len: usize) -> Vec<u8> {
    let mut r = vec![0; 5 + len];
    r[0] = content_type;
    r[1..3].copy_from_slice(&[3, 3]);
    r[3..5].copy_from_slice(&(len as u16).to_be_bytes());
    rng.fill_bytes(&mut r[5..]);
    r
}

fn ccs() -> Vec<u8> {
    vec![20, 3, 3, 0, 1, 1]
}

/// ApplicationData records carrying about `n` bytes: full 16 KiB records (plus AEAD overhead)
/// and a shorter last one.
fn records(rng: &mut StdRng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut left = n;
    while left > 0 {
        let len = left.min(16_384);
        out.extend_from_slice(&record(rng, 23, len + 17));
        left -= len;
    }
    out
}

/// A handshake record holding one handshake message.
fn handshake(msg_type: u8, body: &[u8], record_version: [u8; 2]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 9);
    out.push(22);
    out.extend_from_slice(&record_version);
    out.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    out.push(msg_type);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

fn client_hello(rng: &mut StdRng, flow: u64, v13: bool) -> Vec<u8> {
    let mut b = vec![3, 3];
    let mut random = [0u8; 32];
    rng.fill_bytes(&mut random);
    b.extend_from_slice(&random);
    b.push(32);
    rng.fill_bytes(&mut random);
    b.extend_from_slice(&random);
    let suites: [u16; 6] = [0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xcca9];
    b.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        b.extend_from_slice(&s.to_be_bytes());
    }
    b.extend_from_slice(&[1, 0]);
    let mut ext = Vec::new();
    let host = format!("www{}.example.org", flow % 97);
    let mut sni = Vec::new();
    sni.extend_from_slice(&((host.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(host.len() as u16).to_be_bytes());
    sni.extend_from_slice(host.as_bytes());
    extension(&mut ext, 0, &sni);
    extension(&mut ext, 10, &[0, 4, 0, 0x1d, 0, 0x17]);
    extension(&mut ext, 16, b"\x00\x0c\x02h2\x08http/1.1");
    if v13 {
        extension(&mut ext, 43, &[4, 3, 4, 3, 3]);
        let mut ks = vec![0, 36, 0, 0x1d, 0, 32];
        ks.extend_from_slice(&random);
        extension(&mut ext, 51, &ks);
    }
    b.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    b.extend_from_slice(&ext);
    handshake(1, &b, [3, 1])
}

/// ServerHello and the rest of the server's first flight.
fn server_flight(rng: &mut StdRng, v13: bool) -> Vec<u8> {
    let mut b = vec![3, 3];
    let mut random = [0u8; 32];
    rng.fill_bytes(&mut random);
    b.extend_from_slice(&random);
    b.push(32);
    rng.fill_bytes(&mut random);
    b.extend_from_slice(&random);
    b.extend_from_slice(if v13 { &[0x13, 0x01] } else { &[0xc0, 0x2f] });
    b.push(0);
    let mut ext = Vec::new();
    if v13 {
        extension(&mut ext, 43, &[3, 4]);
        let mut ks = vec![0, 0x1d, 0, 32];
        ks.extend_from_slice(&random);
        extension(&mut ext, 51, &ks);
    }
    b.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    b.extend_from_slice(&ext);
    let mut out = handshake(2, &b, [3, 3]);
    let certs = rng.gen_range(1_800..4_500);
    if v13 {
        // Everything after ServerHello is encrypted: middlebox-compatibility CCS, then records.
        out.extend_from_slice(&ccs());
        out.extend_from_slice(&record(rng, 23, certs));
    } else {
        let mut cert = vec![0; certs];
        rng.fill_bytes(&mut cert);
        out.extend_from_slice(&handshake(11, &cert, [3, 3]));
        out.extend_from_slice(&handshake(12, &cert[..300], [3, 3]));
        out.extend_from_slice(&handshake(14, &[], [3, 3]));
    }
    out
}

fn client_finish(rng: &mut StdRng, v13: bool) -> Vec<u8> {
    if v13 {
        [ccs(), record(rng, 23, 53)].concat()
    } else {
        let mut key = vec![32];
        key.extend((0..32).map(|_| rng.gen::<u8>()));
        [handshake(16, &key, [3, 3]), ccs(), record(rng, 22, 40)].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{FileSource, Next};
    use crate::decode::{Decoder, DefragConfig};
    use crate::pii::{PiiKey, PiiKind, PiiValue};
    use std::collections::BTreeSet;
    use std::time::Duration;

    /// Reads `path` back with the sensor's own reader and decoder: (packets, payload bytes,
    /// undecodable frames).
    fn read_back(path: &Path) -> (u64, u64, u64) {
        let mut src = FileSource::open(path).unwrap();
        let mut dec = Decoder::new(DefragConfig {
            memcap: 1 << 20,
            timeout: Duration::from_secs(30),
        });
        let link = src.link();
        let (mut packets, mut payload, mut bad) = (0, 0, 0);
        while let Next::Packet(p) = src.next_packet().unwrap() {
            packets += 1;
            match dec.decode(link, p.ts, p.data) {
                Ok(pkt) => payload += pkt.payload.len() as u64,
                Err(_) => bad += 1,
            }
        }
        (packets, payload, bad)
    }

    #[test]
    fn every_mix_reads_back_whole_and_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        for mix in [Mix::Cleartext, Mix::Isp, Mix::Small] {
            let a = dir.path().join(format!("{}-a.pcap", mix.as_str()));
            let b = dir.path().join(format!("{}-b.pcap", mix.as_str()));
            let cfg = BenchConfig::new(mix, 2 << 20, 9);
            let stats = generate(&cfg, &a).unwrap();
            generate(&cfg, &b).unwrap();
            assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "{mix:?}");
            assert_eq!(std::fs::metadata(&a).unwrap().len(), stats.file_bytes, "{mix:?}");
            assert!(stats.file_bytes >= 2 << 20, "{mix:?}: {} bytes", stats.file_bytes);
            let (packets, payload, bad) = read_back(&a);
            assert_eq!(
                (packets, payload, bad),
                (stats.packets, stats.payload_bytes, 0),
                "{mix:?}"
            );
            assert!(stats.flows >= 16, "{mix:?}: {} flows", stats.flows);
            if mix == Mix::Small {
                // Every data frame carries 64..=200 bytes; the rest are ACKs, SYNs and FINs.
                let data_frames = stats.packets / 2;
                assert!(stats.payload_bytes / data_frames <= 200, "{mix:?}");
            }
        }
    }

    #[test]
    fn the_sensor_finds_exactly_the_planted_values() {
        let dir = tempfile::tempdir().unwrap();
        let pcap = dir.path().join("c.pcap");
        let mut cfg = BenchConfig::new(Mix::Cleartext, 3 << 20, 4);
        cfg.leak_every = 64 << 10;
        let stats = generate(&cfg, &pcap).unwrap();
        assert!(stats.planted.len() >= 10, "{} planted", stats.planted.len());
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, b"bench-test-key").unwrap();
        std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let alerts = dir.path().join("alerts.json");
        let common = crate::cli::CommonArgs {
            workers: Some(2),
            metrics_listen: Some("off".into()),
            alerts: Some(alerts.display().to_string()),
            pii_key_file: Some(key_file.clone()),
            rules: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")),
            ..Default::default()
        };
        let settings = crate::cli::settings(Some(crate::cli::InputArgs::Files(vec![pcap])), &common).unwrap();
        crate::app::run(settings, std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false))).unwrap();
        let key = PiiKey::from_file(&key_file).unwrap();
        let want: BTreeSet<(String, String)> = stats
            .planted
            .iter()
            .map(|p| {
                let kind = match p.kind {
                    Kind::Cnic => PiiKind::Cnic,
                    Kind::Card => PiiKind::Card,
                    Kind::Iban => PiiKind::Iban,
                };
                let v = PiiValue::new(kind, p.digits.as_bytes()).unwrap();
                (kind.as_str().to_string(), key.hash(&v).to_hex())
            })
            .collect();
        let mut got = BTreeSet::new();
        let mut reported = 0;
        for line in std::fs::read_to_string(&alerts).unwrap().lines() {
            let a: serde_json::Value = serde_json::from_str(line).unwrap();
            for m in a["pii"]["matches"].as_array().unwrap() {
                reported += 1;
                got.insert((
                    m["type"].as_str().unwrap().to_string(),
                    m["hash"].as_str().unwrap().to_string(),
                ));
            }
        }
        assert_eq!(reported, want.len(), "each planted value reported once, nothing else");
        assert!(got == want, "reported hashes differ from the planted values' hashes");
    }
}
