//! The HTTPS side: one keep-alive ureq agent per output over the shared rustls configuration,
//! and the mapping from what went wrong on the wire to what the delivery thread should do.

use super::config::{CollectorKind, Secret};
use super::encode::{self, BulkEncoder, HecEncoder};
use crate::sink::output::{DeliveryError, Transport};
use crate::sink::tls;
use std::io::Read;

/// Most response bytes read; `_bulk` answers are trimmed by `filter_path`, so this is far above
/// what a healthy collector sends for the largest batch.
const MAX_RESPONSE: u64 = 4 << 20;

/// What the request body speaks.
#[derive(Debug)]
pub(super) enum Protocol {
    /// Splunk HEC, with the channel id sent as `X-Splunk-Request-Channel`.
    Hec { encoder: HecEncoder, channel: String },
    /// Elasticsearch/OpenSearch `_bulk`.
    Bulk(BulkEncoder),
}

/// One HTTP collector output.
pub(super) struct HttpTransport {
    pub(super) agent: ureq::Agent,
    /// Full request URL: API path appended, and for `_bulk` the `filter_path` query.
    pub(super) url: String,
    /// `url` without the query, for messages.
    pub(super) endpoint: String,
    /// The whole `Authorization` header value.
    pub(super) auth: Secret,
    pub(super) protocol: Protocol,
    pub(super) gzip: bool,
    pub(super) max_batch: usize,
    /// Reused request buffers (plain and compressed), so steady delivery allocates little.
    pub(super) body: Vec<u8>,
    pub(super) zipped: Vec<u8>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .field("protocol", &self.protocol)
            .field("gzip", &self.gzip)
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

/// A request's outcome before 413 splitting is decided.
enum Posted {
    Done(Result<(), DeliveryError>),
    TooLarge(DeliveryError),
}

impl HttpTransport {
    fn post(&mut self, alerts: &[&str]) -> Posted {
        self.body.clear();
        let content_type = match &self.protocol {
            Protocol::Hec { encoder, .. } => {
                encoder.encode(alerts, &mut self.body);
                "application/json"
            }
            Protocol::Bulk(encoder) => {
                encoder.encode(alerts, &mut self.body);
                "application/x-ndjson"
            }
        };
        let mut req = self
            .agent
            .post(&self.url)
            .set("Authorization", self.auth.expose())
            .set("Content-Type", content_type);
        if let Protocol::Hec { channel, .. } = &self.protocol {
            req = req.set("X-Splunk-Request-Channel", channel);
        }
        let sent = if self.gzip {
            encode::gzip(&self.body, &mut self.zipped);
            req.set("Content-Encoding", "gzip").send_bytes(&self.zipped)
        } else {
            req.send_bytes(&self.body)
        };
        let (status, body) = match sent {
            Ok(resp) => (resp.status(), read_body(resp)),
            Err(ureq::Error::Status(status, resp)) => (status, read_body(resp)),
            Err(ureq::Error::Transport(t)) => return Posted::Done(Err(transport_error(&t, &self.endpoint))),
        };
        let verdict = match (&self.protocol, status) {
            (_, 413) => return Posted::TooLarge(encode::by_status(status, &body, &self.endpoint)),
            (Protocol::Hec { .. }, _) => encode::hec_verdict(status, &body, &self.endpoint),
            (Protocol::Bulk(_), 200..=299) => encode::bulk_verdict(&body, &self.endpoint),
            (Protocol::Bulk(_), _) => Err(encode::by_status(status, &body, &self.endpoint)),
        };
        Posted::Done(verdict)
    }
}

impl Transport for HttpTransport {
    fn kind(&self) -> &'static str {
        match self.protocol {
            Protocol::Hec { .. } => CollectorKind::SplunkHec.label(),
            Protocol::Bulk(_) => CollectorKind::Elasticsearch.label(),
        }
    }

    fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Sends `alerts` as one request; when the collector answers 413 (body too large), sends
    /// each half on its own, down to single alerts, so one oversized batch does not cost the
    /// alerts in it. Halves already accepted are sent again if a later half fails
    /// (at-least-once).
    fn send(&mut self, alerts: &[&str]) -> Result<(), DeliveryError> {
        if alerts.is_empty() {
            return Ok(());
        }
        match self.post(alerts) {
            Posted::Done(r) => r,
            Posted::TooLarge(e) if alerts.len() == 1 => Err(e),
            Posted::TooLarge(_) => {
                tracing::debug!(endpoint = %self.endpoint, alerts = alerts.len(), "collector said 413; splitting the batch");
                let (a, b) = alerts.split_at(alerts.len() / 2);
                self.send(a)?;
                self.send(b)
            }
        }
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }
}

fn read_body(resp: ureq::Response) -> String {
    let mut buf = Vec::new();
    // A body that breaks off is judged on what arrived; the status line already counted.
    let _ = resp.into_reader().take(MAX_RESPONSE).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Connection-level failures: TLS trust problems are the operator's to fix; everything else
/// (refused, reset, timeout, DNS) may pass and is retried.
fn transport_error(t: &ureq::Transport, endpoint: &str) -> DeliveryError {
    if let Some(r) = tls::rustls_error(t) {
        if tls::is_config_failure(r) {
            return DeliveryError::Config(format!(
                "TLS with {endpoint} failed: {r}; check that the CA bundle (`ca`, --http-ca) holds the CA that signed the collector's certificate, that the URL's host is named in that certificate, and any client certificate"
            ));
        }
    }
    match t.kind() {
        ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme | ureq::ErrorKind::InsecureRequestHttpsOnly => {
            DeliveryError::Config(format!("cannot use URL {endpoint}: {t}"))
        }
        _ => DeliveryError::Unavailable(format!("cannot reach {endpoint}: {t}")),
    }
}
