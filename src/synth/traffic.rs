//! Benign-looking traffic at volume, for benchmarks: many concurrent, interleaved TCP flows of
//! HTML, digit-heavy JSON (millisecond timestamps that look like CNICs), and binary bodies, with a
//! few planted leaks.

use super::{Frame, TcpConn};
use crate::clock::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Shape of a generated mix.
#[derive(Debug, Clone)]
pub struct MixConfig {
    /// PRNG seed (same seed, same bytes).
    pub seed: u64,
    /// Total application payload bytes to generate (approximately).
    pub payload_bytes: usize,
    /// Flows open at once (their segments interleave).
    pub concurrent_flows: usize,
    /// Bytes sent per flow before it closes.
    pub bytes_per_flow: usize,
    /// One planted CNIC or card per this many payload bytes (0 = none).
    pub leak_every: usize,
    /// Share of data segments sent by the inside client (egress, scanned); the rest is the
    /// outside server's (ingress, not scanned). 1.0 makes every byte count.
    pub egress_share: f64,
    /// Frame each sent chunk as one HTTP/1.1 message (keep-alive POSTs from the client, 200
    /// responses from the server) with a JSON, HTML or binary content type in turn, so the same
    /// bodies can be measured with and without HTTP decoding.
    pub http: bool,
}

impl Default for MixConfig {
    fn default() -> Self {
        MixConfig {
            seed: 1,
            payload_bytes: 64 << 20,
            concurrent_flows: 64,
            bytes_per_flow: 256 << 10,
            leak_every: 1 << 20,
            egress_share: 1.0,
            http: false,
        }
    }
}

fn body(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 256);
    while out.len() < len {
        match rng.gen_range(0..10) {
            0..=3 => {
                out.extend_from_slice(b"<div class=\"product\"><a href=\"/item/");
                out.extend_from_slice(rng.gen_range(1000..99999).to_string().as_bytes());
                out.extend_from_slice(
                    b"\">Lawn suit, 3 piece, unstitched</a><span class=\"price\">Rs. 4,590</span></div>\n",
                );
            }
            4..=6 => {
                let ts: u64 = 1_763_000_000_000 + rng.gen_range(0..100_000_000);
                out.extend_from_slice(
                    format!(
                        "{{\"ts\":{ts},\"id\":{},\"lat\":31.{:06},\"lng\":74.{:06},\"ok\":true}},\n",
                        rng.gen::<u32>(),
                        rng.gen_range(0..999999),
                        rng.gen_range(0..999999)
                    )
                    .as_bytes(),
                );
            }
            _ => {
                let n = rng.gen_range(64..512);
                out.extend((0..n).map(|_| rng.gen::<u8>()));
            }
        }
    }
    out.truncate(len);
    out
}

fn leak(rng: &mut StdRng) -> &'static [u8] {
    const LEAKS: [&[u8]; 4] = [
        b" cnic=35202-1234567-2 ",
        b" card 4111 1111 1111 1111 ",
        b" pan=5555555555554444 ",
        b" CNIC: 61101-7654321-8 ",
    ];
    LEAKS[rng.gen_range(0..LEAKS.len())]
}

/// Wraps `body` in an HTTP/1.1 request (client) or response (server) header.
fn http_message(from_client: bool, flow_no: u32, body: Vec<u8>) -> Vec<u8> {
    let kinds = [
        "application/json",
        "text/html; charset=utf-8",
        "application/octet-stream",
    ];
    let kind = kinds[body.len() % kinds.len()];
    let head = if from_client {
        format!(
            "POST /api/v2/events?session={flow_no} HTTP/1.1\r\nHost: collector{}.example.com\r\nUser-Agent: app/5.1\r\nAccept: */*\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
            flow_no % 7,
            body.len()
        )
    } else {
        format!(
            "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
    };
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Generates the mix: inside clients (10.x) talking to outside servers, both directions carrying
/// data; egress is the client side. Frames are in time order.
pub fn benign_mix(cfg: &MixConfig) -> Vec<Frame> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut frames = Vec::new();
    let mut ts = 1_763_769_600_000_000u64;
    let mut produced = 0usize;
    let mut next_leak = cfg.leak_every;
    let mut flow_no = 0u32;
    let mut open: Vec<(TcpConn, usize)> = Vec::new();
    while produced < cfg.payload_bytes || !open.is_empty() {
        while open.len() < cfg.concurrent_flows && produced < cfg.payload_bytes {
            flow_no += 1;
            let client = SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(10, 1, (flow_no >> 8) as u8, flow_no as u8)),
                20000 + (flow_no % 40000) as u16,
            );
            let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, (flow_no % 250) as u8 + 1)), 80);
            let mut c = TcpConn::new(client, server, rng.gen(), rng.gen(), Timestamp::from_micros(ts));
            frames.extend(c.handshake());
            open.push((c, cfg.bytes_per_flow));
        }
        if open.is_empty() {
            break;
        }
        let i = rng.gen_range(0..open.len());
        let (conn, left) = &mut open[i];
        ts += 10;
        conn.ts = Timestamp::from_micros(ts);
        let n = (*left).min(conn.mss * rng.gen_range(1..8));
        let mut data = body(&mut rng, n);
        if cfg.leak_every > 0 && produced + n >= next_leak {
            let l = leak(&mut rng);
            let at = rng.gen_range(0..data.len().saturating_sub(l.len()).max(1));
            let end = (at + l.len()).min(data.len());
            data[at..end].copy_from_slice(&l[..end - at]);
            next_leak += cfg.leak_every;
        }
        let from_client = rng.gen_bool(cfg.egress_share.clamp(0.0, 1.0));
        if cfg.http {
            data = http_message(from_client, flow_no, data);
        }
        frames.extend(conn.send(from_client, &data));
        ts = conn.ts.as_micros();
        produced += n;
        *left -= n;
        if *left == 0 {
            frames.extend(conn.close());
            ts = conn.ts.as_micros();
            open.swap_remove(i);
        }
    }
    frames
}
