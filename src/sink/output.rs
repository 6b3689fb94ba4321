//! The seam between the delivery machinery (queue, spool, retry) and one receiver's wire
//! protocol. Each configured output runs one delivery thread that owns one [`Transport`].

/// One receiver's wire protocol (syslog over UDP/TCP/TLS, Splunk HEC, Elasticsearch `_bulk`).
/// Called only from that output's delivery thread, so implementations need no locking.
pub trait Transport: Send {
    /// Short, fixed label for metrics and logs, e.g. `syslog-tls`, `splunk-hec`.
    fn kind(&self) -> &'static str;
    /// Where it delivers, for log lines (host and port or URL without credentials).
    fn endpoint(&self) -> String;
    /// Delivers `alerts` (each one alert's JSON line, no newline) in order. `Ok` only when the
    /// receiver has them as far as the protocol can tell: TCP/TLS syslog written and flushed,
    /// HTTP answered 2xx with no per-item error. On `Err` the whole batch is retried later
    /// (at-least-once: a receiver may see a batch twice, never zero times).
    fn send(&mut self, alerts: &[&str]) -> Result<(), DeliveryError>;
    /// Most alerts worth passing to one `send` call (default 1).
    fn max_batch(&self) -> usize {
        1
    }
}

/// Why a delivery failed, which decides what the delivery thread does next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The receiver is unreachable or failed transiently (refused, timeout, reset, HTTP 5xx/429):
    /// keep the alerts (spool) and retry with backoff.
    #[error("{0}")]
    Unavailable(String),
    /// The operator's configuration is wrong (certificate not trusted, name mismatch,
    /// credentials refused): keep the alerts, log loudly, retry at the longest backoff.
    #[error("{0}")]
    Config(String),
    /// The receiver refuses these alerts for good (HTTP 400/413): retrying cannot help; they are
    /// counted as failed and dropped from the queue.
    #[error("{0}")]
    Rejected(String),
}
