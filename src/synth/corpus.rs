//! The labelled detection corpus: one capture per category of leak (and of decoy), each with the
//! list of values planted in it and where an analyst would say each was found. The corpus test
//! runs the sensor on every capture and scores recall and precision against these labels.
//!
//! Deterministic: the same seed gives the same bytes. Every planted value is distinct across the
//! whole corpus, so an alert's hash names exactly one planted value.

use super::dns;
use super::http::{self, Coding, FormPart, Framing, Message};
use super::smtp::{self, Cte, Envelope, Mime, Turn};
use super::values::{self, decoy, Kind};
use super::{udp_frame, Frame, TcpConn};
use crate::clock::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::net::SocketAddr;

/// One value planted in a capture.
#[derive(Clone, PartialEq, Eq)]
pub struct Planted {
    /// What it is.
    pub kind: Kind,
    /// Normalised value: digits for CNICs and cards, upper-case alphanumerics for IBANs.
    pub value: String,
    /// Expected `network.protocol` of its alert.
    pub protocol: &'static str,
    /// Acceptable `pii.matches[].location` values.
    pub locations: &'static [&'static str],
    /// On the sample's known-value list (expect `known: true`).
    pub known: bool,
    /// For values in an HTTP request: its method and the start of its path (`url.path`).
    pub request: Option<(&'static str, &'static str)>,
}

// Clear values never go to Debug output, even synthetic ones: tests print samples.
impl std::fmt::Debug for Planted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planted")
            .field("kind", &self.kind)
            .field("protocol", &self.protocol)
            .field("locations", &self.locations)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

/// One category's capture and labels.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Category name (table row).
    pub category: &'static str,
    /// The capture.
    pub frames: Vec<Frame>,
    /// Values that must be reported.
    pub planted: Vec<Planted>,
    /// How many look-alike values that must not be reported the capture holds.
    pub decoys: usize,
    /// Normalised values to put on the known-value list for this capture (empty: no list).
    pub known_values: Vec<String>,
}

const RAW: &[&str] = &["raw"];
const URL: &[&str] = &["url"];
const HEADER: &[&str] = &["header"];
const BODY: &[&str] = &["body"];
const ATTACHMENT: &[&str] = &["attachment"];
const DNS_QUERY: &[&str] = &["dns_query"];
const DNS_LABEL: &[&str] = &["dns_cnic_label"];
const DNS_ANSWER: &[&str] = &["dns_answer"];

const NAMES: [&str; 10] = [
    "Ayesha Khan",
    "Muhammad Ali",
    "Fatima Noor",
    "Bilal Ahmed",
    "Zainab Raza",
    "Usman Tariq",
    "Hina Shah",
    "Imran Qureshi",
    "Sana Javed",
    "Hamza Malik",
];
const CITIES: [&str; 6] = ["Lahore", "Karachi", "Islamabad", "Peshawar", "Quetta", "Multan"];

/// Random source plus the set of values already used, so none repeats.
struct Gen {
    rng: StdRng,
    seen: HashSet<String>,
}

impl Gen {
    fn unique(&mut self, f: fn(&mut StdRng) -> String) -> String {
        loop {
            let v = f(&mut self.rng);
            if self.seen.insert(v.clone()) {
                return v;
            }
        }
    }
    fn name(&mut self) -> &'static str {
        NAMES[self.rng.gen_range(0..NAMES.len())]
    }
    fn city(&mut self) -> &'static str {
        CITIES[self.rng.gen_range(0..CITIES.len())]
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.rng.gen_range(0..xs.len())]
    }
}

/// A sample under construction: frames of sequential flows and their labels.
struct Builder {
    sample: Sample,
    ts: u64,
    port: u16,
    /// Method and path prefix of the HTTP request being written; labels values planted in it.
    request: Option<(&'static str, &'static str)>,
}

impl Builder {
    fn new(category: &'static str) -> Builder {
        Builder {
            sample: Sample {
                category,
                frames: Vec::new(),
                planted: Vec::new(),
                decoys: 0,
                known_values: Vec::new(),
            },
            ts: 1_763_769_600_000_000,
            port: 40_000,
            request: None,
        }
    }

    fn plant(&mut self, kind: Kind, value: &str, protocol: &'static str, locations: &'static [&'static str]) {
        self.sample.planted.push(Planted {
            kind,
            value: value.to_string(),
            protocol,
            locations,
            known: false,
            request: if protocol == "http" { self.request } else { None },
        });
    }

    /// A CNIC in one of the ways people write it, planted; returns the text.
    fn cnic(&mut self, g: &mut Gen, protocol: &'static str, loc: &'static [&'static str]) -> String {
        let v = g.unique(values::cnic);
        self.plant(Kind::Cnic, &v, protocol, loc);
        let d = values::dashed_cnic(&v);
        match g.rng.gen_range(0..6) {
            0 => format!("CNIC: {d}"),
            1 => format!("cnic={v}"),
            2 => format!("National ID {d}"),
            3 => format!("identity card no. {v}"),
            4 => format!("شناختی کارڈ نمبر {d}"),
            _ => d,
        }
    }

    /// A card number with a keyword, planted; returns the text.
    fn card(&mut self, g: &mut Gen, protocol: &'static str, loc: &'static [&'static str]) -> String {
        let v = g.unique(values::card);
        self.plant(Kind::Card, &v, protocol, loc);
        match g.rng.gen_range(0..4) {
            0 => format!("card {}", values::grouped_card(&v, ' ')),
            1 => format!("pan={v}"),
            2 => format!("Card Number: {}", values::grouped_card(&v, '-')),
            _ => format!("visa/mc {v}"),
        }
    }

    /// A bare value of `kind` (normalised form), planted.
    fn bare(&mut self, g: &mut Gen, kind: Kind, protocol: &'static str, loc: &'static [&'static str]) -> String {
        let v = match kind {
            Kind::Cnic => g.unique(values::cnic),
            Kind::Card => g.unique(values::card),
            Kind::Iban => g.unique(values::iban),
        };
        self.plant(kind, &v, protocol, loc);
        v
    }

    fn next_port(&mut self) -> u16 {
        self.port += 1;
        self.port
    }

    /// One TCP connection from `client_ip` (ephemeral port) to `server`, saying `turns`, with a
    /// random MSS so values straddle segments.
    fn tcp(&mut self, g: &mut Gen, client_ip: &str, server: &str, turns: &[Turn]) {
        let mss = g.pick(&[61usize, 97, 211, 536, 1000, 1460]);
        self.tcp_mss(g, client_ip, server, turns, mss);
    }

    fn tcp_mss(&mut self, g: &mut Gen, client_ip: &str, server: &str, turns: &[Turn], mss: usize) {
        let client = sock(&format!("{client_ip}:{}", self.next_port()));
        let mut c = TcpConn::new(
            client,
            sock(server),
            g.rng.gen(),
            g.rng.gen(),
            Timestamp::from_micros(self.ts),
        );
        c.mss = mss;
        let mut f = c.handshake();
        for (from_client, bytes) in turns {
            f.extend(c.send(*from_client, bytes));
        }
        f.extend(c.close());
        self.sample.frames.extend(f);
        self.ts = c.ts.as_micros() + 10_000;
    }

    fn udp(&mut self, client: &str, server: &str, payload: &[u8]) {
        self.sample.frames.push(Frame {
            ts: Timestamp::from_micros(self.ts),
            data: udp_frame(sock(client), sock(server), payload),
        });
        self.ts += 1_000;
    }

    fn done(mut self) -> Sample {
        self.sample.frames.sort_by_key(|f| f.ts);
        self.sample
    }
}

fn sock(s: &str) -> SocketAddr {
    s.parse().expect("literal socket address")
}

fn ok_json() -> Vec<u8> {
    Message::response(200, "OK")
        .header("Content-Type", "application/json")
        .body(Coding::Identity, &Framing::Length, b"{\"status\":\"ok\"}")
        .to_bytes()
}

fn req(method: &str, target: &str, host: &str) -> Message {
    Message::request(method, target)
        .header("Host", host)
        .header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
        .header("Accept", "*/*")
}

/// The whole corpus for `seed`, one sample per category.
pub fn corpus(seed: u64) -> Vec<Sample> {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        seen: HashSet::new(),
    };
    let builders: [fn(&mut Gen) -> Sample; 24] = [
        raw_tcp,
        http_url,
        http_headers,
        http_form,
        http_json,
        http_chunked,
        |g| http_coded(g, "http_gzip", Coding::Gzip),
        |g| http_coded(g, "http_deflate", Coding::Deflate),
        |g| http_coded(g, "http_br", Coding::Br),
        http_multipart,
        http_keep_alive,
        http_response,
        smtp_base64,
        smtp_qp,
        smtp_attachment,
        smtp_rfc2047,
        dns_udp,
        dns_tcp,
        iban,
        known_values,
        decoys,
        decoy_direction,
        decoy_starttls,
        decoy_dns_echo,
    ];
    builders.iter().map(|b| b(&mut g)).collect()
}

fn filler(g: &mut Gen) -> &'static str {
    g.pick(&[
        "status ok; queue drained; retrying later",
        "customer record synchronised with branch ledger",
        "lorem ipsum dolor sit amet, consectetur adipiscing elit",
        "export batch continues with the next page of results",
    ])
}

fn raw_tcp(g: &mut Gen) -> Sample {
    let mut b = Builder::new("raw_tcp");
    for i in 0..8 {
        let mut text = String::from("HELLO legacy-sync v2\n");
        for _ in 0..3 {
            let f = filler(g);
            let value = if g.rng.gen_bool(0.5) {
                b.cnic(g, "unknown", RAW)
            } else {
                b.card(g, "unknown", RAW)
            };
            text.push_str(&format!("REC name=\"{}\" {value} ; {f}\n", g.name()));
        }
        let turns = [(true, text.into_bytes()), (false, b"ACK\n".to_vec())];
        b.tcp(
            g,
            &format!("10.0.1.{}", 10 + i),
            &format!("203.0.113.{}:{}", 20 + i, 9000 + i),
            &turns,
        );
    }
    for i in 0..4 {
        let value = b.cnic(g, "unknown", RAW);
        let msg = format!("<134>Nov 22 10:00:0{i} app01 kyc[812]: verified {value} ok");
        b.udp(&format!("10.0.1.50:{}", 5140 + i), "203.0.113.99:514", msg.as_bytes());
    }
    b.done()
}

fn http_url(g: &mut Gen) -> Sample {
    let mut b = Builder::new("http_url");
    for i in 0..10 {
        let target = match i % 4 {
            0 => {
                b.request = Some(("GET", "/v1/customers/"));
                let c = b.bare(g, Kind::Cnic, "http", URL);
                let card = b.bare(g, Kind::Card, "http", URL);
                let card = http::percent_encode(&values::grouped_card(&card, ' '), false);
                format!("/v1/customers/{}/profile?card_number={card}", values::dashed_cnic(&c))
            }
            1 => {
                b.request = Some(("GET", "/search"));
                let c = b.bare(g, Kind::Cnic, "http", URL);
                format!("/search?q={}&page=2", http::percent_encode(&format!("cnic:{c}"), true))
            }
            2 => {
                b.request = Some(("GET", "/verify"));
                let c = b.bare(g, Kind::Cnic, "http", URL);
                let card = b.bare(g, Kind::Card, "http", URL);
                format!("/verify?nic={c}&pan={}&lang=ur", http::percent_encode(&card, true))
            }
            _ => {
                b.request = Some(("GET", "/kyc/lookup"));
                let c = b.bare(g, Kind::Cnic, "http", URL);
                format!(
                    "/kyc/lookup?national_id={}&ts=1763769600",
                    http::percent_encode(&values::dashed_cnic(&c), false)
                )
            }
        };
        let r = req("GET", &target, "api.partner-bank.example").to_bytes();
        b.tcp(
            g,
            &format!("10.0.2.{}", 10 + i),
            "203.0.113.80:80",
            &[(true, r), (false, ok_json())],
        );
    }
    b.done()
}

fn http_headers(g: &mut Gen) -> Sample {
    let mut b = Builder::new("http_headers");
    b.request = Some(("GET", "/assets/app.js"));
    for i in 0..8 {
        let c1 = b.bare(g, Kind::Cnic, "http", HEADER);
        let c2 = b.bare(g, Kind::Cnic, "http", HEADER);
        let card = b.bare(g, Kind::Card, "http", HEADER);
        let referer = format!(
            "https://portal.bank.example/customers?cnic={}&tab=2",
            http::percent_encode(&values::dashed_cnic(&c1), i % 2 == 0)
        );
        let r = req("GET", "/assets/app.js", "cdn.analytics.example")
            .header("Referer", &referer)
            .header("Cookie", &format!("sid=a8f3e2c1; national_id={c2}; theme=dark"))
            .header("X-Card-Number", &values::grouped_card(&card, '-'))
            .to_bytes();
        b.tcp(
            g,
            &format!("10.0.3.{}", 10 + i),
            "203.0.113.81:80",
            &[(true, r), (false, ok_json())],
        );
    }
    b.done()
}

fn http_form(g: &mut Gen) -> Sample {
    let mut b = Builder::new("http_form");
    b.request = Some(("POST", "/apply/submit"));
    for i in 0..8 {
        let c = b.bare(g, Kind::Cnic, "http", BODY);
        let card = b.bare(g, Kind::Card, "http", BODY);
        let phone = decoy::phone(&mut g.rng);
        b.sample.decoys += 1;
        let cnic_field = if i % 2 == 0 { values::dashed_cnic(&c) } else { c.clone() };
        let mut form = http::form_urlencode(&[
            ("full_name", g.name()),
            ("cnic", &cnic_field),
            ("card_number", &values::grouped_card(&card, ' ')),
            ("cvv", "123"),
            ("phone", &phone),
            ("city", g.city()),
        ]);
        if i % 3 == 0 {
            // Digits percent-encoded too, as obfuscating clients send them.
            form.push_str(&format!(
                "&alt_nic={}",
                http::percent_encode(&b.bare(g, Kind::Cnic, "http", BODY), true)
            ));
        }
        let r = req("POST", "/apply/submit", "forms.loans.example")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(Coding::Identity, &Framing::Length, form.as_bytes())
            .to_bytes();
        b.tcp(
            g,
            &format!("10.0.4.{}", 10 + i),
            "203.0.113.82:80",
            &[(true, r), (false, ok_json())],
        );
    }
    b.done()
}

fn customer_json(b: &mut Builder, g: &mut Gen, escape: bool, protocol: &'static str) -> String {
    let c = b.bare(g, Kind::Cnic, protocol, BODY);
    let card = b.bare(g, Kind::Card, protocol, BODY);
    let (c, card) = if escape {
        (http::json_escape_digits(&c), http::json_escape_digits(&card))
    } else {
        (values::dashed_cnic(&c), card)
    };
    let phone = decoy::phone(&mut g.rng);
    let ts = decoy::millis(&mut g.rng);
    b.sample.decoys += 2;
    format!(
        "{{\"customer\":{{\"name\":\"{}\",\"national_id\":\"{c}\",\"phone\":\"{phone}\",\"city\":\"{}\"}},\"payment\":{{\"card_number\":\"{card}\",\"expiry\":\"12/27\"}},\"created_ms\":{ts}}}",
        g.name(),
        g.city()
    )
}

fn http_json(g: &mut Gen) -> Sample {
    let mut b = Builder::new("http_json");
    b.request = Some(("POST", "/api/v2/onboarding"));
    for i in 0..10 {
        let n = 1 + i % 3;
        let records: Vec<String> = (0..n)
            .map(|k| customer_json(&mut b, g, (i + k) % 2 == 0, "http"))
            .collect();
        let body = format!("{{\"records\":[{}]}}", records.join(","));
        let r = req("POST", "/api/v2/onboarding", "api.crm-saas.example")
            .header("Content-Type", "application/json; charset=utf-8")
            .body(Coding::Identity, &Framing::Length, body.as_bytes())
            .to_bytes();
        b.tcp(
            g,
            &format!("10.0.5.{}", 10 + i),
            "203.0.113.83:443",
            &[(true, r), (false, ok_json())],
        );
    }
    b.done()
}

fn csv_rows(b: &mut Builder, g: &mut Gen, rows: usize, protocol: &'static str, loc: &'static [&'static str]) -> String {
    let mut out = String::from("id,name,cnic,card,city\n");
    for i in 0..rows {
        let c = b.bare(g, Kind::Cnic, protocol, loc);
        let card = b.bare(g, Kind::Card, protocol, loc);
        let card = if i % 2 == 0 {
            values::grouped_card(&card, ' ')
        } else {
            card
        };
        out.push_str(&format!(
            "{},{},{},{card},{}\n",
            1001 + i,
            g.name(),
            values::dashed_cnic(&c),
            g.city()
        ));
    }
    out
}

fn http_chunked(g: &mut Gen) -> Sample {
    let mut b = Builder::new("http_chunked");
    b.request = Some(("POST", "/upload/stream"));
    for i in 0..6 {
        let body = if i % 2 == 0 {
            customer_json(&mut b, g, i % 4 == 0, "http")
        } else {
            csv_rows(&mut b, g, 3, "http", BODY)
        };
        // Small odd chunk sizes: most values straddle at least one chunk boundary.
        let sizes: Vec<usize> = (0..8).map(|_| g.rng.gen_range(5..24)).collect();
        let ct = if i % 2 == 0 { "application/json" } else { "text/csv" };
        let r = req("POST", "/upload/stream", "ingest.example.net")
            .header("Content-Type", ct)
            .body(Coding::Identity, &Framing::Chunked(sizes), body.as_bytes())
            .to_bytes();
        b.tcp(
            g,
            &format!("10.0.6.{}", 10 + i),
            "203.0.113.84:80",
            &[(true, r), (false, ok_json())],
        );
    }
    b.done()
}

fn http_coded(g: &mut Gen, category: &'static str, coding: Coding) -> Sample {
    let mut b = Builder::new(category);
    b.request = Some(("POST", "/api/import"));
    for i in 0..5 {
        let (ct, body) = if i % 2 == 0 {
            ("application/json", customer_json(&mut b, g, i == 2, "http"))
        } else {
            ("text/csv", csv_rows(&mut b, g, 4, "http", BODY))
        };
        let framing = if i % 2 == 1 {
            Framing::Chunked(vec![g.rng.gen_range(7..40)])
        } else {
            Framing::Length
        };
        // Some servers send bare RFC 1951 data as "deflate"; decoders must take both.
        let coding = if coding == Coding::Deflate && i == 4 {
            Coding::RawDeflate
        } else {
            coding
        };
        let r = req("POST", "/api/import", "sync.example.com")
            .header("Content-Type", ct)
            .body(coding, &framing, body.as_bytes())
            .to_bytes();
        b.tcp(
            g,
            &format!("10.0.7.{}", 10 + i),
            "203.0.113.85:80",
            &[(true, r), (false, ok_json())],
        );
    }
    b.done()
}

fn http_multipart(g: &mut Gen) -> Sample {
    let mut b = Builder::new("http_multipart");
    b.request = Some(("POST", "/files/upload"));
    let applicant = b.cnic(g, "http", BODY);
    let csv = csv_rows(&mut b, g, 250, "http", ATTACHMENT);
    let parts = vec![
        FormPart::field("applicant", &format!("{} {applicant}", g.name())),
        FormPart::field("note", "quarterly customer export"),
        FormPart::file("file", "customers.csv", "text/csv", csv.into_bytes()),
    ];
    let boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW";
    let body = http::multipart_form(boundary, &parts);
    let r = req("POST", "/files/upload", "files.share.example")
        .header("Content-Type", &format!("multipart/form-data; boundary={boundary}"))
        .body(Coding::Identity, &Framing::Length, &body)
        .to_bytes();
    b.tcp(g, "10.0.8.10", "203.0.113.86:80", &[(true, r), (false, ok_json())]);

    // A part with its own transfer encoding.
    let csv = csv_rows(&mut b, g, 30, "http", ATTACHMENT);
    let mut part = FormPart::file("backup", "kyc.csv", "text/csv", csv.into_bytes());
    part.base64 = true;
    let body = http::multipart_form("xYzZY", &[FormPart::field("kind", "kyc"), part]);
    let r = req("POST", "/files/upload", "files.share.example")
        .header("Content-Type", "multipart/form-data; boundary=xYzZY")
        .body(Coding::Identity, &Framing::Chunked(vec![1000]), &body)
        .to_bytes();
    b.tcp(g, "10.0.8.11", "203.0.113.86:80", &[(true, r), (false, ok_json())]);
    b.done()
}

fn http_keep_alive(g: &mut Gen) -> Sample {
    let mut b = Builder::new("http_keep_alive");
    let host = "api.partner-bank.example";
    let mut turns = Vec::new();
    b.request = Some(("POST", "/v1/notes"));
    for _ in 0..5 {
        let note = b.cnic(g, "http", BODY);
        let pay = b.card(g, "http", BODY);
        let form = http::form_urlencode(&[("note", &note), ("payment", &pay), ("status", "verified")]);
        let r = req("POST", "/v1/notes", host)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(Coding::Identity, &Framing::Length, form.as_bytes())
            .to_bytes();
        turns.push((true, r));
        turns.push((false, ok_json()));
    }
    // Pipelined: three requests in one write, then three responses.
    let mut pipelined = Vec::new();
    b.request = Some(("GET", "/v1/customers"));
    for _ in 0..3 {
        let c = b.bare(g, Kind::Cnic, "http", URL);
        pipelined.extend(req("GET", &format!("/v1/customers?cnic={c}"), host).to_bytes());
    }
    turns.push((true, pipelined));
    turns.push((false, [ok_json(), ok_json(), ok_json()].concat()));
    // A chunked body followed at once by the next request.
    b.request = Some(("POST", "/v1/customers"));
    let body = customer_json(&mut b, g, false, "http");
    let mut two = req("POST", "/v1/customers", host)
        .header("Content-Type", "application/json")
        .body(Coding::Identity, &Framing::Chunked(vec![17]), body.as_bytes())
        .to_bytes();
    b.request = Some(("DELETE", "/v1/customers/"));
    let c = b.bare(g, Kind::Cnic, "http", URL);
    two.extend(req("DELETE", &format!("/v1/customers/{}", values::dashed_cnic(&c)), host).to_bytes());
    turns.push((true, two));
    turns.push((false, [ok_json(), ok_json()].concat()));
    b.tcp(g, "10.0.9.10", "203.0.113.87:80", &turns);
    b.done()
}

fn http_response(g: &mut Gen) -> Sample {
    let mut b = Builder::new("http_response");
    for i in 0..4 {
        let get = req("GET", "/export/customers", "reports.corp.example").to_bytes();
        let (ct, content) = if i % 2 == 0 {
            ("text/csv", csv_rows(&mut b, g, 10, "http", BODY))
        } else {
            let r: Vec<String> = (0..3).map(|_| customer_json(&mut b, g, false, "http")).collect();
            ("application/json", format!("[{}]", r.join(",")))
        };
        let (coding, framing) = match i {
            0 => (Coding::Identity, Framing::Length),
            1 => (Coding::Identity, Framing::Chunked(vec![13])),
            2 => (Coding::Gzip, Framing::Length),
            _ => (Coding::Br, Framing::Chunked(vec![64])),
        };
        let resp = Message::response(200, "OK")
            .header("Server", "nginx/1.22.1")
            .header("Content-Type", ct)
            .body(coding, &framing, content.as_bytes())
            .to_bytes();
        // An outside client fetching from an inside server: the response is the egress.
        b.tcp(
            g,
            &format!("198.51.100.{}", 10 + i),
            "192.168.10.5:8080",
            &[(true, get), (false, resp)],
        );
    }
    b.done()
}

fn envelope(g: &mut Gen) -> Envelope {
    Envelope {
        helo: "ws-fin-07.bank.example.pk".into(),
        mail_from: format!("{}@bank.example.pk", g.pick(&["hr", "ops", "finance"])),
        rcpt_to: vec![
            "personal.archive@mail.example.com".into(),
            "cc@partner.example.org".into(),
        ],
    }
}

fn mail_headers(subject: &str) -> Vec<(String, String)> {
    vec![
        ("From".into(), "Ops <ops@bank.example.pk>".into()),
        ("To".into(), "personal.archive@mail.example.com".into()),
        ("Subject".into(), subject.into()),
        ("Date".into(), "Sat, 22 Nov 2025 10:00:00 +0500".into()),
        ("Message-ID".into(), "<a1b2c3@bank.example.pk>".into()),
    ]
}

fn mail(subject: &str, body: &Mime) -> Vec<u8> {
    let h = mail_headers(subject);
    let refs: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    smtp::message(&refs, body)
}

fn smtp_base64(g: &mut Gen) -> Sample {
    let mut b = Builder::new("smtp_base64");
    for (i, port) in [25u16, 587, 2525].into_iter().enumerate() {
        let mut msgs = Vec::new();
        for _ in 0..2 {
            let text = format!(
                "Dear team,\r\nPlease update the record of {}.\r\n{}\r\n{}\r\n{}\r\nRegards\r\n",
                g.name(),
                b.cnic(g, "smtp", BODY),
                b.card(g, "smtp", BODY),
                b.cnic(g, "smtp", BODY),
            );
            msgs.push(mail("Record update", &Mime::text(Cte::Base64, &text)));
        }
        let env = envelope(g);
        let turns = smtp::session(&env, &msgs);
        b.tcp(
            g,
            &format!("10.0.10.{}", 10 + i),
            &format!("203.0.113.25:{port}"),
            &turns,
        );
    }
    b.done()
}

/// Text with planted values and the offsets of soft line breaks, one inside each value.
fn qp_text(b: &mut Builder, g: &mut Gen, n: usize, loc: &'static [&'static str]) -> (String, Vec<usize>) {
    let mut text = String::from("Salam,\r\nDetails as requested:\r\n");
    let mut breaks = Vec::new();
    for _ in 0..n {
        let v = if g.rng.gen_bool(0.6) {
            b.cnic(g, "smtp", loc)
        } else {
            b.card(g, "smtp", loc)
        };
        // Break somewhere inside the value's digits (after its keyword).
        let digits_at = v.find(|c: char| c.is_ascii_digit()).unwrap_or(0);
        let span = v.len() - digits_at;
        breaks.push(text.len() + digits_at + g.rng.gen_range(2..span - 2));
        text.push_str(&format!("{} - {v} - {}\r\n", g.name(), g.city()));
    }
    text.push_str("Shukriya\r\n");
    (text, breaks)
}

fn smtp_qp(g: &mut Gen) -> Sample {
    let mut b = Builder::new("smtp_qp");
    for i in 0..4 {
        let (text, breaks) = qp_text(&mut b, g, 4, BODY);
        let m = mail("Customer details", &Mime::text(Cte::QuotedPrintable(breaks), &text));
        let turns = smtp::session(&envelope(g), &[m]);
        b.tcp(g, &format!("10.0.11.{}", 10 + i), "203.0.113.25:25", &turns);
    }
    b.done()
}

fn smtp_attachment(g: &mut Gen) -> Sample {
    let mut b = Builder::new("smtp_attachment");
    for i in 0..2 {
        let (text, breaks) = qp_text(&mut b, g, 2, BODY);
        let html = format!(
            "<html><body><p>See attached. {}</p></body></html>",
            b.cnic(g, "smtp", BODY)
        );
        let csv = csv_rows(&mut b, g, 100, "smtp", ATTACHMENT);
        let body = Mime::Multipart {
            subtype: "mixed".into(),
            boundary: format!("=_outer_{i}_8f2a"),
            parts: vec![
                Mime::Multipart {
                    subtype: "alternative".into(),
                    boundary: format!("=_alt_{i}_77c1"),
                    parts: vec![
                        Mime::text(Cte::QuotedPrintable(breaks), &text),
                        Mime::Leaf {
                            content_type: "text/html; charset=utf-8".into(),
                            filename: None,
                            cte: Cte::Base64,
                            content: html.into_bytes(),
                        },
                    ],
                },
                Mime::attachment(
                    "text/csv; name=\"customers.csv\"",
                    "customers.csv",
                    Cte::Base64,
                    csv.into_bytes(),
                ),
            ],
        };
        let turns = smtp::session(&envelope(g), &[mail("Monthly export", &body)]);
        b.tcp(g, &format!("10.0.12.{}", 10 + i), "203.0.113.25:25", &turns);
    }
    b.done()
}

fn smtp_rfc2047(g: &mut Gen) -> Sample {
    let mut b = Builder::new("smtp_rfc2047");
    for i in 0..8 {
        let c = b.bare(g, Kind::Cnic, "smtp", HEADER);
        let subject = match i % 4 {
            0 => smtp::encoded_word_b(&format!("شناختی کارڈ نمبر {}", values::dashed_cnic(&c))),
            1 => smtp::encoded_word_q(&format!("Customer CNIC {}", values::dashed_cnic(&c))),
            2 => smtp::encoded_word_b(&format!("فوری: شناختی کارڈ {c}")),
            // Python's email package: the Urdu words encoded, the ASCII number left plain.
            _ => format!(
                "{} {}",
                smtp::encoded_word_b("شناختی کارڈ نمبر"),
                values::dashed_cnic(&c)
            ),
        };
        let text = Mime::text(Cte::SevenBit, "Please see the subject line.\r\n");
        let body = if i % 2 == 0 {
            text
        } else {
            Mime::Multipart {
                subtype: "mixed".into(),
                boundary: format!("==============={i}0815=="),
                parts: vec![
                    text,
                    Mime::attachment("text/plain", "notes.txt", Cte::Base64, b"see subject\r\n".to_vec()),
                ],
            }
        };
        let turns = smtp::session(&envelope(g), &[mail(&subject, &body)]);
        // Whole messages in one segment: every header section starts in the same packet.
        b.tcp_mss(g, &format!("10.0.13.{}", 10 + i), "203.0.113.25:25", &turns, 1460);
    }
    b.done()
}

/// A query name carrying a planted CNIC in one of three shapes, and its expected location.
fn dns_name(b: &mut Builder, g: &mut Gen, i: usize) -> String {
    match i % 3 {
        0 => {
            let c = b.bare(g, Kind::Cnic, "dns", DNS_LABEL);
            format!("{c}.id.telemetry-cdn.example")
        }
        1 => {
            // Thirteen digits spelled over labels: the decoder gives them a CNIC-label section.
            let c = b.bare(g, Kind::Cnic, "dns", DNS_LABEL);
            format!("{}.{}.{}.t.exfil.example", &c[..5], &c[5..12], &c[12..])
        }
        _ => {
            let c = b.bare(g, Kind::Cnic, "dns", DNS_QUERY);
            format!("{}.q.lookup.example", values::dashed_cnic(&c))
        }
    }
}

fn dns_udp(g: &mut Gen) -> Sample {
    let mut b = Builder::new("dns_udp");
    for i in 0..12 {
        let name = dns_name(&mut b, g, i);
        let id: u16 = g.rng.gen();
        let client = format!("10.0.14.{}:{}", 10 + i, 50_000 + i);
        b.udp(&client, "203.0.113.53:53", &dns::query(id, &name, dns::TYPE_A));
        // The outside resolver's answer comes back in: ingress, never a second leak.
        b.udp(
            "203.0.113.53:53",
            &client,
            &dns::response(id, &name, dns::TYPE_A, &[dns::Answer::A([203, 0, 113, 7])]),
        );
    }
    // An inside authoritative server answering an outside client with a TXT record.
    for i in 0..2 {
        let text = b.cnic(g, "dns", DNS_ANSWER);
        let name = "kyc-status.corp.example";
        let client = format!("198.51.100.{}:{}", 60 + i, 40_000 + i);
        b.udp(
            &client,
            "192.168.53.2:53",
            &dns::query(7 + i as u16, name, dns::TYPE_TXT),
        );
        let answer = dns::Answer::Txt(vec![format!("v=kyc1 {text}")]);
        b.udp(
            "192.168.53.2:53",
            &client,
            &dns::response(7 + i as u16, name, dns::TYPE_TXT, &[answer]),
        );
    }
    b.done()
}

fn dns_tcp(g: &mut Gen) -> Sample {
    let mut b = Builder::new("dns_tcp");
    for conn in 0..2 {
        let mut turns = Vec::new();
        for k in 0..4 {
            let name = dns_name(&mut b, g, conn * 4 + k);
            let id: u16 = g.rng.gen();
            turns.push((true, dns::tcp_framed(&dns::query(id, &name, dns::TYPE_AAAA))));
            turns.push((false, dns::tcp_framed(&dns::response(id, &name, dns::TYPE_AAAA, &[]))));
        }
        b.tcp_mss(g, &format!("10.0.15.{}", 10 + conn), "203.0.113.53:53", &turns, 37);
    }
    b.done()
}

fn iban(g: &mut Gen) -> Sample {
    let mut b = Builder::new("iban");
    let iban_text = |b: &mut Builder, g: &mut Gen, proto: &'static str, loc: &'static [&'static str]| {
        let v = b.bare(g, Kind::Iban, proto, loc);
        match g.rng.gen_range(0..3) {
            0 => format!("IBAN: {}", values::grouped_iban(&v)),
            1 => format!("iban={v}"),
            _ => format!("account {v}"),
        }
    };
    // Raw TCP.
    for i in 0..3 {
        let text = format!(
            "PAYOUT batch {i}\n{} to be paid today\n{}\n",
            iban_text(&mut b, g, "unknown", RAW),
            iban_text(&mut b, g, "unknown", RAW)
        );
        b.tcp(
            g,
            &format!("10.0.16.{}", 10 + i),
            "203.0.113.90:7000",
            &[(true, text.into_bytes())],
        );
    }
    // HTTP form and JSON bodies, and a query string.
    b.request = Some(("POST", "/transfer"));
    for i in 0..4 {
        let v = b.bare(g, Kind::Iban, "http", BODY);
        let w = b.bare(g, Kind::Iban, "http", BODY);
        let body = if i % 2 == 0 {
            http::form_urlencode(&[
                ("beneficiary", g.name()),
                ("iban", &values::grouped_iban(&v)),
                ("to_iban", &w),
            ])
        } else {
            format!(
                "{{\"from\":{{\"iban\":\"{v}\"}},\"to\":{{\"iban\":\"{}\"}},\"amount\":\"25000.00\"}}",
                values::grouped_iban(&w)
            )
        };
        let ct = if i % 2 == 0 {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        };
        let r = req("POST", "/transfer", "payments.fintech.example")
            .header("Content-Type", ct)
            .body(Coding::Identity, &Framing::Length, body.as_bytes())
            .to_bytes();
        b.tcp(
            g,
            &format!("10.0.16.{}", 20 + i),
            "203.0.113.91:80",
            &[(true, r), (false, ok_json())],
        );
    }
    b.request = Some(("GET", "/beneficiary/check"));
    for i in 0..3 {
        let v = b.bare(g, Kind::Iban, "http", URL);
        let r = req(
            "GET",
            &format!("/beneficiary/check?iban={v}"),
            "payments.fintech.example",
        )
        .to_bytes();
        b.tcp(
            g,
            &format!("10.0.16.{}", 30 + i),
            "203.0.113.91:80",
            &[(true, r), (false, ok_json())],
        );
    }
    // Mail.
    let text = format!(
        "Please transfer the salary to {} from next month\r\nand the bonus to {}\r\n",
        iban_text(&mut b, g, "smtp", BODY),
        iban_text(&mut b, g, "smtp", BODY)
    );
    let turns = smtp::session(&envelope(g), &[mail("Salary account", &Mime::text(Cte::Base64, &text))]);
    b.tcp(g, "10.0.16.40", "203.0.113.25:25", &turns);
    b.done()
}

fn known_values(g: &mut Gen) -> Sample {
    let mut b = Builder::new("known_values");
    let mut lines = Vec::new();
    for i in 0..60 {
        // Bare numbers with no keyword: only the list makes them reportable. One in four is
        // not on the list and must stay silent.
        let on_list = i % 4 != 3;
        let v = g.unique(values::cnic);
        if on_list {
            b.sample.known_values.push(v.clone());
        } else {
            b.sample.decoys += 1;
        }
        lines.push((v, on_list));
    }
    let amount = |g: &mut Gen| format!("{}.{:02}", g.rng.gen_range(100..99_999), g.rng.gen_range(0..100));
    // Half over raw TCP, half in an HTTP upload.
    let (raw_part, http_part) = lines.split_at(30);
    let mut text = String::from("ref,amount,account\n");
    for (k, (v, on)) in raw_part.iter().enumerate() {
        if *on {
            b.plant(Kind::Cnic, v, "unknown", RAW);
        }
        text.push_str(&format!("{},{},{v}\n", 500 + k, amount(g)));
    }
    b.tcp(g, "10.0.17.10", "203.0.113.92:6000", &[(true, text.into_bytes())]);
    b.request = Some(("PUT", "/bucket/ledger.csv"));
    let mut text = String::from("ref,amount,account\n");
    for (k, (v, on)) in http_part.iter().enumerate() {
        if *on {
            b.plant(Kind::Cnic, v, "http", BODY);
        }
        text.push_str(&format!("{},{},{v}\n", 900 + k, amount(g)));
    }
    let r = req("PUT", "/bucket/ledger.csv", "storage.cloud.example")
        .header("Content-Type", "text/csv")
        .body(Coding::Identity, &Framing::Length, text.as_bytes())
        .to_bytes();
    b.tcp(g, "10.0.17.11", "203.0.113.93:80", &[(true, r), (false, ok_json())]);
    for p in &mut b.sample.planted {
        p.known = true;
    }
    b.done()
}

fn decoys(g: &mut Gen) -> Sample {
    let mut b = Builder::new("decoys");
    for i in 0..6 {
        let mut items = Vec::new();
        for _ in 0..5 {
            let r = &mut g.rng;
            items.push(format!(
                "{{\"event\":\"checkout\",\"ts\":{},\"phone\":\"{}\",\"order\":\"{}\",\"app\":\"{}\",\"id\":{},\"order_no\":{},\"ref\":\"{}\"}}",
                decoy::millis(r),
                decoy::phone(r),
                decoy::order_id(r),
                decoy::version(r),
                decoy::snowflake(r),
                values::cnic(r),
                decoy::luhn_invalid(r),
            ));
        }
        b.sample.decoys += 5 * 7;
        let body = format!("[{}]", items.join(","));
        let r = req("POST", "/collect", "telemetry.example.io")
            .header("Content-Type", "application/json")
            .body(Coding::Gzip, &Framing::Length, body.as_bytes())
            .to_bytes();
        b.tcp(
            g,
            &format!("10.0.18.{}", 10 + i),
            "203.0.113.94:80",
            &[(true, r), (false, ok_json())],
        );
    }
    // Near-misses next to the right keywords.
    for i in 0..4 {
        let mut text = String::new();
        for _ in 0..5 {
            let r = &mut g.rng;
            text.push_str(&format!(
                "CNIC: {} ; cnic={} ; card {} ; IBAN {} ; last login {} ; kernel {}\n",
                decoy::bad_province_cnic(r),
                decoy::fourteen(r),
                decoy::luhn_invalid(r),
                decoy::bad_iban(r),
                decoy::millis(r),
                decoy::version(r),
            ));
        }
        b.sample.decoys += 5 * 6;
        b.tcp(
            g,
            &format!("10.0.18.{}", 30 + i),
            "203.0.113.95:5000",
            &[(true, text.into_bytes())],
        );
    }
    // Mail full of phone numbers and order ids.
    let mut text = String::from("Order summary\r\n");
    for _ in 0..10 {
        let r = &mut g.rng;
        text.push_str(&format!(
            "order {} placed at {}; call {}\r\n",
            decoy::order_id(r),
            decoy::millis(r),
            decoy::phone(r)
        ));
    }
    b.sample.decoys += 30;
    let turns = smtp::session(
        &envelope(g),
        &[mail("Orders", &Mime::text(Cte::QuotedPrintable(Vec::new()), &text))],
    );
    b.tcp(g, "10.0.18.50", "203.0.113.25:25", &turns);
    b.done()
}

fn decoy_direction(g: &mut Gen) -> Sample {
    let mut b = Builder::new("decoy_direction");
    // Real values, but travelling inward or staying inside: not egress.
    for i in 0..3 {
        let csv = {
            let mut scratch = Builder::new("scratch");
            csv_rows(&mut scratch, g, 5, "http", BODY)
        };
        b.sample.decoys += 10;
        let get = req("GET", "/download/sample.csv", "data.example.org").to_bytes();
        let resp = Message::response(200, "OK")
            .header("Content-Type", "text/csv")
            .body(Coding::Identity, &Framing::Length, csv.as_bytes())
            .to_bytes();
        b.tcp(
            g,
            &format!("10.0.19.{}", 10 + i),
            "203.0.113.96:80",
            &[(true, get), (false, resp.clone())],
        );
        let post = req("POST", "/internal/import", "hr.corp.example")
            .header("Content-Type", "text/csv")
            .body(Coding::Identity, &Framing::Length, csv.as_bytes())
            .to_bytes();
        b.tcp(
            g,
            &format!("10.0.19.{}", 20 + i),
            "10.30.0.9:80",
            &[(true, post), (false, ok_json())],
        );
    }
    b.done()
}

fn decoy_starttls(g: &mut Gen) -> Sample {
    let mut b = Builder::new("decoy_starttls");
    for i in 0..3 {
        // Stand-in for TLS records, with clear-looking values inside: after STARTTLS nothing is
        // scanned, so these must stay silent.
        let mut client = vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01];
        client.extend((0..300).map(|_| g.rng.gen::<u8>()));
        let c = values::cnic(&mut g.rng);
        let card = values::card(&mut g.rng);
        client.extend(format!("cnic {} card {card} ", values::dashed_cnic(&c)).as_bytes());
        client.extend((0..300).map(|_| g.rng.gen::<u8>()));
        let mut server = vec![0x16, 0x03, 0x03, 0x00, 0x7a, 0x02];
        server.extend((0..200).map(|_| g.rng.gen::<u8>()));
        b.sample.decoys += 2;
        let turns = smtp::starttls_session(&envelope(g), client, server);
        b.tcp(g, &format!("10.0.20.{}", 10 + i), "203.0.113.25:587", &turns);
    }
    b.done()
}

fn decoy_dns_echo(g: &mut Gen) -> Sample {
    let mut b = Builder::new("decoy_dns_echo");
    // An outside client asks an inside server about a name with a CNIC in it; the answer
    // echoes the question back out. The name came from outside: not a leak.
    for i in 0..6 {
        let c = values::cnic(&mut g.rng);
        let name = match i % 3 {
            0 => format!("{c}.id.corp.example"),
            1 => format!("{}.{}.{}.corp.example", &c[..5], &c[5..12], &c[12..]),
            _ => format!("{}.corp.example", values::dashed_cnic(&c)),
        };
        b.sample.decoys += 1;
        let id: u16 = g.rng.gen();
        let client = format!("198.51.100.{}:{}", 70 + i, 33_000 + i);
        b.udp(&client, "192.168.53.2:53", &dns::query(id, &name, dns::TYPE_A));
        b.udp(
            "192.168.53.2:53",
            &client,
            &dns::response(id, &name, dns::TYPE_A, &[dns::Answer::A([192, 168, 1, 9])]),
        );
    }
    b.done()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_distinct_and_complete() {
        let a = corpus(3);
        let b = corpus(3);
        assert_eq!(a.len(), 24);
        let mut seen = HashSet::new();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.frames, y.frames, "{}", x.category);
            assert!(!x.frames.is_empty(), "{}", x.category);
            for p in &x.planted {
                assert!(seen.insert(p.value.clone()), "a value repeats in {}", x.category);
            }
            if !x.category.starts_with("decoy") {
                assert!(!x.planted.is_empty(), "{}", x.category);
            }
        }
        let multipart = a.iter().find(|s| s.category == "http_multipart").unwrap();
        assert!(multipart.planted.len() >= 500);
    }
}
