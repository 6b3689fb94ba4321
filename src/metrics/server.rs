//! The `/metrics` endpoint: a minimal HTTP/1.1 responder, plain or over TLS (rustls, ring
//! provider), optionally behind a bearer token.
//!
//! Why not an HTTP library: the endpoint answers two GET paths, and the only HTTP server already
//! in the dependency tree (tiny_http) brings its own, older rustls. One request per connection
//! (`Connection: close`) keeps the responder small; Prometheus reconnects per scrape happily.
//!
//! Design constraints: a scraper that stalls must not stop other scrapes (one thread per
//! connection, at most [`MAX_CONNECTIONS`] at once, read and write timeouts); a request head is
//! read into a bounded buffer; the token is compared in constant time.

use super::Metrics;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections served at once; more are closed straight away.
pub const MAX_CONNECTIONS: usize = 16;
/// Longest request head read (request line and headers).
const MAX_HEAD: usize = 8 * 1024;
/// A client gets this long for each read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the accept loop looks at the stop flag while no one connects.
const POLL: Duration = Duration::from_millis(50);

/// TLS and authentication for the endpoint, for scrapes that cross hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSecurity {
    /// PEM certificate chain and private key; `None` = plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// File with the bearer token `/metrics` requires; `None` = no authentication.
    pub bearer_token_file: Option<PathBuf>,
}

/// Why the endpoint could not start. All are the operator's to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsServerError {
    /// The address is taken or not ours.
    #[error("cannot listen for metrics on {addr}: {source} (use --metrics-listen ADDR or off)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The certificate chain could not be loaded.
    #[error("metrics TLS: {0}")]
    Certificate(#[from] crate::sink::tls::TlsConfigError),
    /// The private key could not be loaded.
    #[error("metrics TLS key {}: {reason}; give a PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    Key {
        /// The key path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Certificate and key do not belong together, or the key type is unsupported.
    #[error("metrics TLS certificate {} with key {}: {reason}", cert.display(), key.display())]
    Pair {
        /// Certificate path.
        cert: PathBuf,
        /// Key path.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The token file is missing, unreadable or empty.
    #[error("metrics bearer token file {}: {reason}", path.display())]
    Token {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// What each connection thread needs; shared read-only.
struct Shared {
    metrics: Arc<Metrics>,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// SHA-256 of the token: comparing digests keeps the comparison's time independent of the
    /// token's length as well as its content.
    token_digest: Option<[u8; 32]>,
}

/// A running metrics endpoint; stops when dropped.
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
    tls: bool,
}

impl MetricsServer {
    /// Binds `addr` and serves `GET /metrics` (and `/healthz`, which needs no token) from a
    /// background thread, loading the TLS files and token first so any mistake fails the start.
    pub fn start(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        security: &EndpointSecurity,
    ) -> Result<MetricsServer, MetricsServerError> {
        let tls = match &security.tls {
            Some((cert, key)) => Some(server_config(cert, key)?),
            None => None,
        };
        let token_digest = match &security.bearer_token_file {
            Some(p) => Some(digest(read_token(p)?.as_bytes())),
            None => None,
        };
        let listener = TcpListener::bind(addr).map_err(|source| MetricsServerError::Bind { addr, source })?;
        let bound = listener.local_addr().unwrap_or(addr);
        listener
            .set_nonblocking(true)
            .map_err(|source| MetricsServerError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            metrics,
            tls: tls.clone(),
            token_digest,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || accept_loop(listener, shared, flag))
            .map_err(|source| MetricsServerError::Bind { addr, source })?;
        Ok(MetricsServer {
            stop,
            thread: Some(thread),
            addr: bound,
            tls: tls.is_some(),
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// True if the endpoint speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Parked, not asleep: dropping the server unparks it, so shutdown need not wait.
                std::thread::park_timeout(POLL);
                continue;
            }
            Err(e) => {
                // EMFILE and friends: back off rather than spin.
                tracing::debug!(error = %e, "metrics accept failed");
                std::thread::sleep(POLL);
                continue;
            }
        };
        if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            continue; // dropping the stream closes it
        }
        active.fetch_add(1, Ordering::Relaxed);
        let (shared, done) = (Arc::clone(&shared), Arc::clone(&active));
        let spawned = std::thread::Builder::new().name("metrics-conn".into()).spawn(move || {
            if let Err(e) = serve(stream, &shared) {
                tracing::debug!(error = %e, "metrics connection ended with an error");
            }
            done.fetch_sub(1, Ordering::Relaxed);
        });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    match &shared.tls {
        None => respond(stream, shared),
        Some(cfg) => {
            let conn = rustls::ServerConnection::new(Arc::clone(cfg)).map_err(std::io::Error::other)?;
            let mut tls = rustls::StreamOwned::new(conn, stream);
            respond(&mut tls, shared)?;
            tls.conn.send_close_notify();
            tls.flush()
        }
    }
}

/// Reads one request head and writes one response.
fn respond<S: Read + Write>(mut s: S, shared: &Shared) -> std::io::Result<()> {
    let mut buf = [0u8; MAX_HEAD];
    let mut len = 0;
    let head_len = loop {
        if len == buf.len() {
            return write_response(&mut s, 431, "text/plain", b"request head too large\n", false);
        }
        let n = s.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(()); // closed before a full request; nothing to answer
        }
        len += n;
        if let Some(end) = memchr::memmem::find(&buf[..len], b"\r\n\r\n") {
            break end + 4;
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(&buf[..head_len]), Ok(httparse::Status::Complete(_))) {
        return write_response(&mut s, 400, "text/plain", b"bad request\n", false);
    }
    if req.method != Some("GET") {
        return write_response(&mut s, 405, "text/plain", b"only GET\n", false);
    }
    // Query strings are ignored: Prometheus may add none, curl users may add some.
    let path = req.path.unwrap_or("/").split('?').next().unwrap_or("/");
    match path {
        "/healthz" => write_response(&mut s, 200, "text/plain", b"ok\n", false),
        "/metrics" => {
            if let Some(want) = &shared.token_digest {
                let given = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(bearer);
                if !given.is_some_and(|t| constant_time_eq(&digest(t.as_bytes()), want)) {
                    return write_response(&mut s, 401, "text/plain", b"bearer token required\n", true);
                }
            }
            let body = shared.metrics.render();
            write_response(
                &mut s,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
                false,
            )
        }
        _ => write_response(&mut s, 404, "text/plain", b"not found; try /metrics\n", false),
    }
}

/// The token of an `Authorization: Bearer TOKEN` value (scheme case-insensitive, RFC 6750).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn write_response<S: Write>(s: &mut S, status: u16, ctype: &str, body: &[u8], challenge: bool) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let auth = if challenge {
        "WWW-Authenticate: Bearer realm=\"nigehban\"\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    s.flush()
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Compares without an early exit, so the time taken says nothing about where digests differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold back into an early-exit compare.
    std::hint::black_box(diff) == 0
}

/// Loads the TLS files and token as [`MetricsServer::start`] would, without binding (for
/// `check-config`).
pub fn check_security(security: &EndpointSecurity) -> Result<(), MetricsServerError> {
    if let Some((cert, key)) = &security.tls {
        server_config(cert, key)?;
    }
    if let Some(p) = &security.bearer_token_file {
        read_token(p)?;
    }
    Ok(())
}

fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, MetricsServerError> {
    let chain = crate::sink::tls::read_certs("metrics TLS certificate", cert)?;
    let pem = std::fs::read(key).map_err(|e| MetricsServerError::Key {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| MetricsServerError::Key {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| MetricsServerError::Pair {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

/// The token: the file's content without surrounding whitespace; one line, not empty.
pub fn read_token(path: &Path) -> Result<String, MetricsServerError> {
    let bad = |reason: String| MetricsServerError::Token {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("{e}; check the path and its permissions")))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(bad("empty; put the token on one line".into()));
    }
    if token.contains(['\n', '\r']) {
        return Err(bad("has several lines; put only the token in it".into()));
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad(
            "contains spaces or control characters, which HTTP headers cannot carry".into(),
        ));
    }
    if let Ok(crate::pii::KeyFileAccess::WorldReadable(mode)) = crate::pii::key_file_access(path) {
        tracing::warn!(path = %path.display(), mode = format_args!("{mode:04o}"), "metrics bearer token file is world-readable: any local user can scrape; chmod 600 it");
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, head: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_metrics_health_and_refuses_the_rest() {
        let m = Arc::new(Metrics::new());
        m.packets.with_label_values(&["queued"]).inc_by(7);
        let srv = MetricsServer::start("127.0.0.1:0".parse().unwrap(), m, &EndpointSecurity::default()).unwrap();
        let r = get(srv.addr(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("nigehban_packets_total{result=\"queued\"} 7"), "{r}");
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        assert!(get(srv.addr(), "GET /healthz HTTP/1.1\r\n\r\n").ends_with("\r\n\r\nok\n"));
        assert!(get(srv.addr(), "GET /x HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(srv.addr(), "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get(srv.addr(), "\x01\x02 nonsense\r\n\r\n").starts_with("HTTP/1.1 400"));
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let mut s = TcpStream::connect(srv.addr()).unwrap();
        let _ = s.write_all(huge.as_bytes());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    }

    #[test]
    fn bearer_token_guards_metrics_only() {
        let dir = tempfile::tempdir().unwrap();
        let tok = dir.path().join("token");
        std::fs::write(&tok, "s3cret-Token_1\n").unwrap();
        let sec = EndpointSecurity {
            tls: None,
            bearer_token_file: Some(tok),
        };
        let srv = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(Metrics::new()), &sec).unwrap();
        let a = srv.addr();
        let r = get(a, "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 401") && r.contains("WWW-Authenticate: Bearer"),
            "{r}"
        );
        assert!(get(a, "GET /metrics HTTP/1.1\r\nAuthorization: Bearer wrong\r\n\r\n").starts_with("HTTP/1.1 401"));
        assert!(get(
            a,
            "GET /metrics HTTP/1.1\r\nAuthorization: Basic s3cret-Token_1\r\n\r\n"
        )
        .starts_with("HTTP/1.1 401"));
        assert!(get(
            a,
            "GET /metrics HTTP/1.1\r\nAuthorization: Bearer s3cret-Token_\r\n\r\n"
        )
        .starts_with("HTTP/1.1 401"));
        assert!(get(
            a,
            "GET /metrics HTTP/1.1\r\nauthorization: bearer s3cret-Token_1\r\n\r\n"
        )
        .starts_with("HTTP/1.1 200"));
        assert!(get(a, "GET /healthz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
    }

    #[test]
    fn bad_token_files_and_tls_files_fail_the_start_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let start = |sec: EndpointSecurity| {
            MetricsServer::start(addr, Arc::new(Metrics::new()), &sec)
                .err()
                .unwrap()
        };
        for (content, want) in [("", "empty"), ("a\nb\n", "several lines"), ("a b", "spaces")] {
            let p = dir.path().join("t");
            std::fs::write(&p, content).unwrap();
            let e = start(EndpointSecurity {
                tls: None,
                bearer_token_file: Some(p),
            });
            assert!(e.to_string().contains(want), "{e}");
        }
        let missing = dir.path().join("missing.pem");
        let e = start(EndpointSecurity {
            tls: Some((missing.clone(), missing)),
            bearer_token_file: None,
        });
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }

    #[test]
    fn constant_time_eq_is_equality() {
        let (a, b) = (digest(b"x"), digest(b"y"));
        assert!(constant_time_eq(&a, &a));
        assert!(!constant_time_eq(&a, &b));
        assert_eq!(bearer("Bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
    }
}
