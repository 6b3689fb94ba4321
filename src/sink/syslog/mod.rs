//! Syslog output: RFC 5424 messages over UDP (RFC 5426, one message per datagram), TCP
//! (RFC 6587 octet counting) or TLS (RFC 5425: octet counting inside TLS 1.2+, via rustls).
//!
//! With `format = json` (the default) MSG is the alert's JSON line byte for byte, so a SIEM
//! parses one format whichever transport carried it; `cef` renders ArcSight CEF instead.
//!
//! Acknowledgement: a TCP/TLS batch counts as delivered once written and flushed into the
//! socket. Syslog has no application-level acknowledgement, so before every batch the
//! connection is probed (a non-blocking read): a receiver that closed or reset the connection
//! since the last batch is noticed *before* more alerts are written into the void, and the
//! batch goes to a fresh connection or to the spool. A receiver that dies between that probe and
//! the write, or with alerts still unread in its socket buffer, can still lose them: only an
//! acknowledging protocol (RELP, HTTP) closes that window.

mod format;

pub use format::{cef, octet_counted, AlertView, Facility, Header};

use super::output::{DeliveryError, Transport};
use super::tls;
use rustls::pki_types::ServerName;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Largest UDP syslog message: the IPv4 UDP payload limit. Receivers often accept far less
/// (rsyslog: `maxMessageSize`, default 8 KiB); prefer TCP/TLS for large alerts.
pub const MAX_UDP_MESSAGE: usize = 65_507;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Transport named by the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogProto {
    /// `udp://`, default port 514.
    Udp,
    /// `tcp://`, default port 601.
    Tcp,
    /// `tls://`, default port 6514.
    Tls,
}

/// Message body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    /// MSG is the alert's JSON line, unchanged.
    #[default]
    Json,
    /// ArcSight Common Event Format (ArcSight, QRadar).
    Cef,
}

/// A validated syslog output.
#[derive(Debug, Clone)]
pub struct SyslogConfig {
    /// Transport.
    pub proto: SyslogProto,
    /// Host name or address to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Message body format.
    pub format: SyslogFormat,
    /// Facility.
    pub facility: Facility,
    /// HOSTNAME field (the observer name).
    pub hostname: String,
    /// TLS: PEM CA bundle; `None` = system roots.
    pub ca: Option<PathBuf>,
    /// TLS: client certificate and key (mutual TLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// TLS: name the certificate must carry (default: `host`).
    pub server_name: Option<String>,
    /// TLS: accept any certificate. For lab use only.
    pub insecure_skip_verify: bool,
}

impl SyslogConfig {
    /// Parses `udp://host:port`, `tcp://host:port` or `tls://host:port` (port optional;
    /// IPv6 hosts in brackets). Other fields take their defaults.
    pub fn parse_url(url: &str, hostname: &str) -> Result<SyslogConfig, String> {
        let bad = |why: &str| {
            format!("bad syslog URL '{url}': {why} (expected udp://host:514, tcp://host:601 or tls://host:6514)")
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (proto, default_port) = match scheme {
            "udp" => (SyslogProto::Udp, 514),
            "tcp" => (SyslogProto::Tcp, 601),
            "tls" => (SyslogProto::Tls, 6514),
            _ => return Err(bad("unknown scheme")),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.is_empty() {
            return Err(bad("expected only host and port"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("bad port"))?,
                None if after.is_empty() => default_port,
                None => return Err(bad("junk after ']'")),
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
                None => (rest.to_string(), default_port),
            }
        };
        if host.is_empty() || port == 0 {
            return Err(bad("empty host or port 0"));
        }
        Ok(SyslogConfig {
            proto,
            host,
            port,
            format: SyslogFormat::Json,
            facility: Facility(16),
            hostname: hostname.to_string(),
            ca: None,
            client_cert: None,
            server_name: None,
            insecure_skip_verify: false,
        })
    }

    /// `scheme://host:port`, for logs.
    pub fn url(&self) -> String {
        let scheme = match self.proto {
            SyslogProto::Udp => "udp",
            SyslogProto::Tcp => "tcp",
            SyslogProto::Tls => "tls",
        };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

/// The syslog [`Transport`].
pub struct SyslogTransport {
    cfg: SyslogConfig,
    header: Header,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    conn: Option<Conn>,
    udp: Option<UdpSocket>,
    buf: Vec<u8>,
    msg: Vec<u8>,
}

impl SyslogTransport {
    /// Builds the transport; for TLS, reads the CA bundle and client certificate now, so a bad
    /// file fails at start. Does not connect (the delivery thread does, with backoff).
    pub fn new(cfg: SyslogConfig) -> anyhow::Result<SyslogTransport> {
        let tls = match cfg.proto {
            SyslogProto::Tls => {
                let client = cfg.client_cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
                let config = tls::client_config(cfg.ca.as_deref(), client, cfg.insecure_skip_verify)
                    .map_err(|e| anyhow::anyhow!("syslog {}: {e}", cfg.url()))?;
                let name = cfg.server_name.clone().unwrap_or_else(|| cfg.host.clone());
                let name = ServerName::try_from(name.clone())
                    .map_err(|_| anyhow::anyhow!("syslog {}: '{name}' is not a valid TLS server name", cfg.url()))?;
                if cfg.insecure_skip_verify {
                    tracing::warn!(output = "syslog", url = %cfg.url(), "TLS certificate verification is OFF (--syslog-tls-insecure-skip-verify): anyone on the path can read and forge alerts");
                }
                Some((config, name))
            }
            _ => {
                if cfg.ca.is_some() || cfg.client_cert.is_some() || cfg.server_name.is_some() {
                    anyhow::bail!(
                        "syslog {}: CA, client certificate and server name apply only to tls:// URLs",
                        cfg.url()
                    );
                }
                None
            }
        };
        Ok(SyslogTransport {
            header: Header::new(cfg.facility, &cfg.hostname),
            cfg,
            tls,
            conn: None,
            udp: None,
            buf: Vec::new(),
            msg: Vec::new(),
        })
    }

    fn unavailable(&self, what: &str, e: impl std::fmt::Display) -> DeliveryError {
        DeliveryError::Unavailable(format!("syslog {}: {what}: {e}", self.cfg.url()))
    }

    fn resolve(&self) -> Result<Vec<SocketAddr>, DeliveryError> {
        let addrs: Vec<SocketAddr> = (self.cfg.host.as_str(), self.cfg.port)
            .to_socket_addrs()
            .map_err(|e| self.unavailable("cannot resolve host", e))?
            .collect();
        if addrs.is_empty() {
            return Err(self.unavailable("cannot resolve host", "no address"));
        }
        Ok(addrs)
    }

    fn connect_tcp(&self) -> Result<TcpStream, DeliveryError> {
        let mut last = None;
        for a in self.resolve()? {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    s.set_write_timeout(Some(IO_TIMEOUT))
                        .and_then(|_| s.set_read_timeout(Some(IO_TIMEOUT)))
                        .map_err(|e| self.unavailable("socket setup", e))?;
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(self.unavailable("cannot connect", last.expect("at least one address was tried")))
    }

    fn connect(&mut self) -> Result<Conn, DeliveryError> {
        let tcp = self.connect_tcp()?;
        let Some((config, name)) = &self.tls else {
            return Ok(Conn::Tcp(tcp));
        };
        let conn = rustls::ClientConnection::new(Arc::clone(config), name.clone())
            .map_err(|e| self.unavailable("TLS setup", e))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            if let Err(e) = s.conn.complete_io(&mut s.sock) {
                return Err(self.tls_error(&e));
            }
        }
        // TLS 1.3 ends the client's handshake before the server has checked the client's
        // certificate (or noticed it lacks one): a refusal arrives as an alert right after, and
        // alerts written meanwhile would be lost. Wait briefly for it (or for session tickets)
        // so a refused client fails here, not in the first write. Once per connection.
        if s.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
            let _ = s.sock.set_read_timeout(Some(Duration::from_millis(300)));
            let mut scratch = [0u8; 256];
            match s.read(&mut scratch) {
                Ok(0) => return Err(self.unavailable("TLS", "the receiver closed the connection after the handshake")),
                Err(e) if !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Err(self.tls_error(&e))
                }
                _ => {}
            }
            let _ = s.sock.set_read_timeout(Some(IO_TIMEOUT));
        }
        Ok(Conn::Tls(Box::new(s)))
    }

    /// One line naming the TLS failure and what to check.
    fn tls_error(&self, e: &std::io::Error) -> DeliveryError {
        let url = self.cfg.url();
        let Some(r) = tls::rustls_error(e) else {
            return self.unavailable("TLS handshake", e);
        };
        use rustls::{CertificateError as C, Error as R};
        let msg = match r {
            R::InvalidCertificate(C::UnknownIssuer) | R::InvalidCertificate(C::BadSignature) => format!(
                "syslog {url}: the receiver's certificate is not signed by a trusted CA ({r}); give its CA bundle with --syslog-ca"
            ),
            R::InvalidCertificate(C::NotValidForName) | R::InvalidCertificate(C::NotValidForNameContext { .. }) => {
                let name = self.tls.as_ref().map(|t| format!("{:?}", t.1)).unwrap_or_default();
                format!("syslog {url}: the receiver's certificate is not valid for the name {name} ({r}); connect by a name the certificate carries, or set --syslog-server-name")
            }
            R::InvalidCertificate(_) => format!("syslog {url}: the receiver's certificate is refused ({r})"),
            R::AlertReceived(_) | R::NoCertificatesPresented => format!(
                "syslog {url}: the receiver refused the TLS handshake ({r}); if it requires a client certificate give --syslog-cert and --syslog-key"
            ),
            _ => format!("syslog {url}: TLS failed ({r})"),
        };
        if tls::is_config_failure(r) {
            DeliveryError::Config(msg)
        } else {
            DeliveryError::Unavailable(msg)
        }
    }

    /// True if the open connection is still usable: nothing to read (the receiver never sends
    /// application data), no FIN, no reset. TLS records that did arrive (session tickets, a
    /// close_notify, an alert) are processed.
    fn alive(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else { return false };
        let sock = match conn {
            Conn::Tcp(s) => s,
            Conn::Tls(s) => &mut s.sock,
        };
        if sock.set_nonblocking(true).is_err() {
            return false;
        }
        let mut b = [0u8; 1];
        let peek = sock.peek(&mut b);
        let alive = match (peek, &mut *conn) {
            (Err(e), _) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            (Ok(n), Conn::Tls(s)) if n > 0 => {
                // Let rustls read what arrived; a close or an alert ends the connection.
                let r = s.conn.read_tls(&mut s.sock).and_then(|_| {
                    s.conn
                        .process_new_packets()
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
                });
                match r {
                    Ok(state) if state.peer_has_closed() => false,
                    Ok(_) => {
                        let mut sink = [0u8; 512];
                        // Drain plaintext (none expected); EOF from a close_notify shows up here.
                        !matches!(s.conn.reader().read(&mut sink), Ok(0))
                    }
                    Err(_) => false,
                }
            }
            // A TCP receiver that talks back is odd but alive; FIN (0) or an error is not.
            (Ok(n), Conn::Tcp(_)) => n > 0,
            _ => false,
        };
        let sock = match conn {
            Conn::Tcp(s) => s,
            Conn::Tls(s) => &mut s.sock,
        };
        alive && sock.set_nonblocking(false).is_ok()
    }

    fn send_stream(&mut self) -> Result<(), DeliveryError> {
        if self.conn.is_some() && !self.alive() {
            tracing::info!(output = "syslog", url = %self.cfg.url(), "receiver closed the connection; reconnecting");
            self.conn = None;
        }
        if self.conn.is_none() {
            let c = self.connect()?;
            tracing::info!(output = "syslog", url = %self.cfg.url(), "connected");
            self.conn = Some(c);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let r = match conn {
            Conn::Tcp(s) => s.write_all(&self.buf).and_then(|_| s.flush()),
            Conn::Tls(s) => s.write_all(&self.buf).and_then(|_| s.flush()),
        };
        if let Err(e) = r {
            self.conn = None;
            return Err(self.unavailable("write failed", e));
        }
        Ok(())
    }

    fn render(&mut self, alert: &str) {
        let view = AlertView::parse(alert);
        self.msg.clear();
        let now = time::OffsetDateTime::now_utc();
        match self.cfg.format {
            SyslogFormat::Json => self.header.write(&mut self.msg, view.syslog_severity(), now, alert),
            SyslogFormat::Cef => self
                .header
                .write(&mut self.msg, view.syslog_severity(), now, &cef(alert, &view)),
        }
    }
}

impl Transport for SyslogTransport {
    fn kind(&self) -> &'static str {
        match self.cfg.proto {
            SyslogProto::Udp => "syslog-udp",
            SyslogProto::Tcp => "syslog-tcp",
            SyslogProto::Tls => "syslog-tls",
        }
    }

    fn endpoint(&self) -> String {
        self.cfg.url()
    }

    fn send(&mut self, alerts: &[&str]) -> Result<(), DeliveryError> {
        if self.cfg.proto == SyslogProto::Udp {
            if self.udp.is_none() {
                let addr = self.resolve()?[0];
                let bind: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(bind)
                    .and_then(|s| s.connect(addr).map(|_| s))
                    .map_err(|e| self.unavailable("UDP socket", e))?;
                self.udp = Some(s);
            }
            for a in alerts {
                self.render(a);
                if self.msg.len() > MAX_UDP_MESSAGE {
                    return Err(DeliveryError::Rejected(format!(
                        "syslog {}: alert of {} bytes does not fit a UDP datagram; use tcp:// or tls://",
                        self.cfg.url(),
                        self.msg.len()
                    )));
                }
                let sock = self.udp.as_ref().expect("bound above");
                if let Err(e) = sock.send(&self.msg) {
                    // ICMP port unreachable from an earlier datagram surfaces here.
                    self.udp = None;
                    return Err(self.unavailable("UDP send", e));
                }
            }
            return Ok(());
        }
        self.buf.clear();
        for a in alerts {
            self.render(a);
            octet_counted(&mut self.buf, &self.msg);
        }
        self.send_stream()
    }

    fn max_batch(&self) -> usize {
        match self.cfg.proto {
            // One datagram per alert: batching would only widen what one failure covers.
            SyslogProto::Udp => 1,
            _ => 256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;

    #[test]
    fn url_parsing() {
        let c = SyslogConfig::parse_url("tls://siem.example:6514", "h").unwrap();
        assert_eq!(
            (c.proto, c.host.as_str(), c.port),
            (SyslogProto::Tls, "siem.example", 6514)
        );
        let c = SyslogConfig::parse_url("udp://10.0.0.1", "h").unwrap();
        assert_eq!((c.proto, c.port), (SyslogProto::Udp, 514));
        let c = SyslogConfig::parse_url("tcp://[::1]:1601", "h").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 1601));
        assert_eq!(c.url(), "tcp://[::1]:1601");
        for bad in [
            "http://x",
            "tcp://",
            "tcp://h:0",
            "tcp://h:x",
            "tls://u@h:1",
            "tcp://h:1/path",
            "h:514",
        ] {
            let e = SyslogConfig::parse_url(bad, "h").unwrap_err();
            assert!(e.contains(bad) && e.contains("expected"), "{e}");
        }
    }

    /// A TCP receiver that reads octet-counted frames and returns their MSG parts.
    fn read_frames(stream: TcpStream, n: usize) -> Vec<String> {
        let mut r = std::io::BufReader::new(stream);
        let mut out = Vec::new();
        for _ in 0..n {
            let mut len = Vec::new();
            r.read_until(b' ', &mut len).unwrap();
            let len: usize = std::str::from_utf8(&len[..len.len() - 1]).unwrap().parse().unwrap();
            let mut msg = vec![0u8; len];
            r.read_exact(&mut msg).unwrap();
            let msg = String::from_utf8(msg).unwrap();
            // Seven header fields, then MSG.
            let body = msg.splitn(8, ' ').nth(7).unwrap().to_string();
            out.push(body);
        }
        out
    }

    #[test]
    fn tcp_frames_carry_the_alert_exactly_and_reconnect_after_the_receiver_closes() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let cfg = SyslogConfig::parse_url(&format!("tcp://127.0.0.1:{port}"), "sensor").unwrap();
        let mut t = SyslogTransport::new(cfg).unwrap();
        let alerts = [r#"{"a":1,"s":"x y"}"#, r#"{"b":"é"}"#];
        t.send(&alerts).unwrap();
        let (s1, _) = l.accept().unwrap();
        assert_eq!(read_frames(s1.try_clone().unwrap(), 2), alerts);
        // The receiver goes away; the next batch must notice and use a new connection, not
        // write into the dead one.
        drop(s1);
        std::thread::sleep(Duration::from_millis(50));
        t.send(&["{\"c\":3}"]).unwrap();
        let (s2, _) = l.accept().unwrap();
        assert_eq!(read_frames(s2, 1), ["{\"c\":3}"]);
    }

    #[test]
    fn refused_connection_is_unavailable_naming_the_url() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let cfg = SyslogConfig::parse_url(&format!("tcp://127.0.0.1:{port}"), "sensor").unwrap();
        let mut t = SyslogTransport::new(cfg).unwrap();
        match t.send(&["{}"]) {
            Err(DeliveryError::Unavailable(m)) => assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn udp_sends_one_unframed_message_per_datagram() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rx.local_addr().unwrap().port();
        let mut cfg = SyslogConfig::parse_url(&format!("udp://127.0.0.1:{port}"), "sensor").unwrap();
        cfg.format = SyslogFormat::Cef;
        let mut t = SyslogTransport::new(cfg).unwrap();
        t.send(&[r#"{"rule":{"id":"R1","name":"n"},"event":{"severity":4}}"#])
            .unwrap();
        let mut b = [0u8; 2048];
        let n = rx.recv(&mut b).unwrap();
        let m = std::str::from_utf8(&b[..n]).unwrap();
        assert!(m.starts_with("<130>1 "), "{m}");
        assert!(
            m.contains(" nigehban ") && m.contains(" alert - CEF:0|Nigehban|Nigehban|"),
            "{m}"
        );
        assert!(m.contains("|R1|n|10|"), "{m}");
        // CEF maps only known fields; a JSON-format output sends the whole line.
        let json = SyslogConfig::parse_url(&format!("udp://127.0.0.1:{port}"), "sensor").unwrap();
        let mut t = SyslogTransport::new(json).unwrap();
        let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_UDP_MESSAGE));
        let r = t.send(&[&huge]);
        assert!(matches!(r, Err(DeliveryError::Rejected(_))), "{r:?}");
    }

    #[test]
    fn tls_options_on_a_plain_url_are_refused() {
        let mut cfg = SyslogConfig::parse_url("tcp://127.0.0.1:1", "s").unwrap();
        cfg.ca = Some("/x".into());
        let e = SyslogTransport::new(cfg).err().unwrap().to_string();
        assert!(e.contains("only to tls://"), "{e}");
    }
}
