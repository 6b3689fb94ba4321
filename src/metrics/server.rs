//! The `/metrics` endpoint (tiny_http, one thread).

use super::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running metrics endpoint; stops when dropped.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` and serves `GET /metrics` (and `/healthz`) from a background thread.
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<MetricsServer> {
        let server = tiny_http::Server::http(addr).map_err(|e| {
            anyhow::anyhow!("cannot listen for metrics on {addr}: {e} (use --metrics-listen ADDR or off)")
        })?;
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let s = Arc::clone(&server);
        let thread = std::thread::Builder::new().name("metrics".into()).spawn(move || {
            for req in s.incoming_requests() {
                let resp = match (req.method(), req.url()) {
                    (tiny_http::Method::Get, "/metrics") => {
                        let ct = tiny_http::Header::from_bytes(
                            &b"Content-Type"[..],
                            &b"text/plain; version=0.0.4; charset=utf-8"[..],
                        )
                        .expect("static header");
                        tiny_http::Response::from_string(metrics.render()).with_header(ct)
                    }
                    (tiny_http::Method::Get, "/healthz") => tiny_http::Response::from_string("ok\n"),
                    _ => tiny_http::Response::from_string("not found; try /metrics\n").with_status_code(404),
                };
                let _ = req.respond(resp);
            }
        })?;
        Ok(MetricsServer {
            server,
            thread: Some(thread),
            addr,
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
