//! What a response direction learns from the other direction's packets (best effort, not
//! reassembled): the request lines at the start of payloads, queued in order, so a response can
//! say which method, host and path it answers and a HEAD response is known to have no body.

use super::head::{set_host, set_path};

/// Requests remembered; more outstanding requests than this push the oldest out.
const ENTRIES: usize = 8;
/// Bytes of a peer payload searched for the `Host` header.
const HOST_SCAN: usize = 2048;

/// One request seen in the peer direction. The strings are reused between requests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct PeerRequest {
    /// Request method.
    pub(super) method: String,
    /// Host, lower-case without port (evidence form).
    pub(super) host: String,
    /// Path without query, redacted and bounded (evidence form).
    pub(super) path: String,
}

/// Bounded FIFO of requests seen in the peer direction.
#[derive(Debug, Default)]
pub(super) struct PeerRequests {
    /// Ring storage, allocated on first use. Invariant: `len <= ENTRIES`, and
    /// `slots.len()` is 0 or `ENTRIES`.
    slots: Vec<PeerRequest>,
    head: usize,
    len: usize,
    /// A scratch entry for parsing (reused).
    next: PeerRequest,
    /// Heap bytes held, kept up to date by every change: it is read for every packet.
    heap: usize,
}

impl PeerRequests {
    /// Looks for a request line at the start of `payload` and queues it.
    pub(super) fn learn(&mut self, payload: &[u8]) {
        let Some((method, target)) = request_line(payload) else {
            return;
        };
        self.queue(method, target, payload);
        self.heap = self.heap_now();
    }

    fn queue(&mut self, method: &str, target: &[u8], payload: &[u8]) {
        let next = &mut self.next;
        next.method.clear();
        next.method.push_str(method);
        let host = find_host(&payload[..payload.len().min(HOST_SCAN)]);
        set_path(&mut next.path, &mut next.host, target);
        if let Some(h) = host {
            set_host(&mut next.host, h);
        }
        if self.slots.is_empty() {
            self.slots = vec![PeerRequest::default(); ENTRIES];
        }
        // A retransmitted request packet must not queue the request twice.
        if self.len > 0 && self.slots[(self.head + self.len - 1) % ENTRIES] == self.next {
            return;
        }
        if self.len == ENTRIES {
            self.head = (self.head + 1) % ENTRIES;
            self.len -= 1;
        }
        let slot = (self.head + self.len) % ENTRIES;
        std::mem::swap(&mut self.slots[slot], &mut self.next);
        self.len += 1;
    }

    /// The oldest request not yet answered, if any (not removed).
    pub(super) fn front(&self) -> Option<&PeerRequest> {
        (self.len > 0).then(|| &self.slots[self.head])
    }

    /// Removes the oldest request (its final response has started).
    pub(super) fn pop(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % ENTRIES;
            self.len -= 1;
        }
    }

    /// Forgets everything (this direction carries requests, not responses).
    pub(super) fn clear(&mut self) {
        self.slots = Vec::new();
        self.head = 0;
        self.len = 0;
        self.heap = self.heap_now();
    }

    /// Heap bytes held.
    pub(super) fn memory(&self) -> usize {
        debug_assert_eq!(self.heap, self.heap_now());
        self.heap
    }

    fn heap_now(&self) -> usize {
        let strings = |r: &PeerRequest| r.method.capacity() + r.host.capacity() + r.path.capacity();
        self.slots.capacity() * std::mem::size_of::<PeerRequest>()
            + self.slots.iter().map(strings).sum::<usize>()
            + strings(&self.next)
    }
}

/// `METHOD SP target SP HTTP/1.x` at the start of `p`: the method and target.
fn request_line(p: &[u8]) -> Option<(&str, &[u8])> {
    // Most peer packets are body bytes: reject them before looking for a line end.
    if super::probe(&p[..p.len().min(16)]) != crate::l7::Probe::Yes {
        return None;
    }
    let line = &p[..memchr::memchr(b'\n', p)?];
    let sp = memchr::memchr(b' ', line)?;
    let method = super::known_method(&line[..sp])?;
    let rest = &line[sp + 1..];
    let sp2 = memchr::memchr(b' ', rest)?;
    rest[sp2 + 1..]
        .starts_with(b"HTTP/1.")
        .then_some((method, &rest[..sp2]))
}

/// The value of the first `Host:` header line in `p`.
fn find_host(p: &[u8]) -> Option<&[u8]> {
    let mut lines = p.split(|&b| b == b'\n').skip(1);
    lines.find_map(|l| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if l.len() > 5 && l[..5].eq_ignore_ascii_case(b"host:") {
            Some(l[5..].trim_ascii())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_requests_in_order_once() {
        let mut q = PeerRequests::default();
        q.learn(b"HEAD /a?x=1 HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n");
        q.learn(b"HEAD /a?x=1 HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n");
        q.learn(b"body bytes, not a request");
        q.learn(b"GET /b HTTP/1.1\r\nhost: b.example\r\n\r\n");
        let f = q.front().unwrap();
        assert_eq!(
            (f.method.as_str(), f.host.as_str(), f.path.as_str()),
            ("HEAD", "example.com", "/a")
        );
        q.pop();
        assert_eq!(q.front().unwrap().method, "GET");
        q.pop();
        assert!(q.front().is_none());
    }

    #[test]
    fn is_bounded() {
        let mut q = PeerRequests::default();
        for i in 0..100 {
            q.learn(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes());
        }
        assert_eq!(q.front().unwrap().path, "/92");
        let m = q.memory();
        q.learn(b"GET /x HTTP/1.1\r\n\r\n");
        assert!(q.memory() <= m + 64);
    }
}
