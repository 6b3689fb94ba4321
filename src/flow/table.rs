//! Per-worker flow table: one LRU list per transport (so each list ages by one idle timeout and
//! expiry is a pop from the front), a lifetime limit checked on access, and a memory cap that
//! evicts the oldest idle flow first. Nothing here is shared between threads.

use super::{FlowKey, Proto};
use crate::clock::Timestamp;
use hashlink::linked_hash_map::RawEntryMut;
use hashlink::LinkedHashMap;
use std::time::Duration;

/// Why a flow left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Both directions finished (FIN) or a RST was seen.
    Closed,
    /// No packet for the transport's idle timeout.
    IdleTimeout,
    /// Older than the lifetime limit; a new flow starts with its next packet.
    Lifetime,
    /// Evicted to stay under the memory cap.
    MemcapEvicted,
    /// The sensor is stopping, or the input ended.
    Shutdown,
}

impl EndReason {
    /// Metric label.
    pub fn as_label(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::Lifetime => "lifetime",
            EndReason::MemcapEvicted => "memcap_evicted",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// Flow table limits.
#[derive(Debug, Clone)]
pub struct FlowTableConfig {
    /// A TCP flow with no packet for this long is ended.
    pub tcp_idle_timeout: Duration,
    /// A UDP flow with no packet for this long is ended.
    pub udp_idle_timeout: Duration,
    /// A flow older than this is ended and restarted on its next packet.
    pub lifetime: Duration,
    /// Most bytes of flow state this table may hold (its flows' own accounting plus a fixed
    /// overhead per entry).
    pub memcap: usize,
    /// Egress payload bytes of a TCP flow inspected before it is bypassed; `None` (the default):
    /// no limit.
    pub stream_depth: Option<u64>,
}

/// A flow and its bookkeeping.
#[derive(Debug)]
pub struct FlowEntry<V> {
    /// First packet time.
    pub first_seen: Timestamp,
    /// Last packet time.
    pub last_seen: Timestamp,
    /// Bytes charged to the memory cap for this flow's variable state (the fixed per-entry
    /// overhead is added by the table). Update it through [`FlowTable::recharge`].
    mem: usize,
    /// The flow's state.
    pub value: V,
}

impl<V> FlowEntry<V> {
    /// Bytes of variable state currently charged for this flow.
    pub fn mem(&self) -> usize {
        self.mem
    }
}

/// Counters since start.
#[derive(Debug, Default, Clone)]
pub struct FlowTableStats {
    /// Flows created.
    pub created: u64,
    /// Flows ended, by reason (index: `EndReason as usize`).
    pub ended: [u64; 5],
}

/// The flow table. `V` is the worker's per-flow state.
pub struct FlowTable<V> {
    cfg: FlowTableConfig,
    tcp: LinkedHashMap<FlowKey, FlowEntry<V>>,
    udp: LinkedHashMap<FlowKey, FlowEntry<V>>,
    /// Invariant: the sum over all entries of `ENTRY_OVERHEAD + entry.mem`.
    mem_used: usize,
    stats: FlowTableStats,
}

impl<V> FlowTable<V> {
    /// Fixed cost charged per flow: the entry itself plus the hash table and list links.
    pub const ENTRY_OVERHEAD: usize = std::mem::size_of::<FlowKey>() + std::mem::size_of::<FlowEntry<V>>() + 48;

    /// An empty table.
    pub fn new(cfg: FlowTableConfig) -> Self {
        FlowTable {
            cfg,
            tcp: LinkedHashMap::default(),
            udp: LinkedHashMap::default(),
            mem_used: 0,
            stats: FlowTableStats::default(),
        }
    }

    fn list(&mut self, proto: Proto) -> &mut LinkedHashMap<FlowKey, FlowEntry<V>> {
        match proto {
            Proto::Tcp => &mut self.tcp,
            Proto::Udp => &mut self.udp,
        }
    }

    /// Number of flows held.
    pub fn len(&self) -> usize {
        self.tcp.len() + self.udp.len()
    }

    /// True when no flow is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged to the memory cap.
    pub fn mem_used(&self) -> usize {
        self.mem_used
    }

    /// Counters since start.
    pub fn stats(&self) -> &FlowTableStats {
        &self.stats
    }

    /// Finds the flow for `key` and marks it most recently used. A flow past its lifetime is
    /// ended (through `on_end`) and `None` returned, so the caller starts a new one.
    pub fn get(
        &mut self,
        key: &FlowKey,
        now: Timestamp,
        on_end: &mut impl FnMut(FlowKey, V, EndReason),
    ) -> Option<&mut FlowEntry<V>> {
        let lifetime = self.cfg.lifetime;
        // One lookup per packet (each is a hash of the key and a probe: 7 % of the data work
        // on the cleartext benchmark was flow lookups, several per packet).
        let list = match key.proto() {
            Proto::Tcp => &mut self.tcp,
            Proto::Udp => &mut self.udp,
        };
        match list.raw_entry_mut().from_key(key) {
            RawEntryMut::Vacant(_) => None,
            RawEntryMut::Occupied(o) if now.since(o.get().first_seen) > lifetime => {
                let (k, e) = o.remove_entry();
                Self::ended(&mut self.mem_used, &mut self.stats, (k, e), EndReason::Lifetime, on_end);
                None
            }
            RawEntryMut::Occupied(mut o) => {
                o.to_back();
                let entry = o.into_mut();
                if now > entry.last_seen {
                    entry.last_seen = now;
                }
                Some(entry)
            }
        }
    }

    /// Finds the flow for `key` without refreshing it (housekeeping must not keep flows alive).
    pub fn peek_mut(&mut self, key: &FlowKey) -> Option<&mut FlowEntry<V>> {
        self.list(key.proto()).get_mut(key)
    }

    /// Inserts a new flow, first evicting the oldest idle flows if the memory cap requires it.
    /// The key must not be present (call [`FlowTable::get`] first).
    pub fn insert(
        &mut self,
        key: FlowKey,
        now: Timestamp,
        value: V,
        on_end: &mut impl FnMut(FlowKey, V, EndReason),
    ) -> &mut FlowEntry<V> {
        debug_assert!(self.list(key.proto()).get(&key).is_none(), "insert of an existing flow");
        while self.mem_used + Self::ENTRY_OVERHEAD > self.cfg.memcap && self.evict_oldest(on_end) {}
        self.mem_used += Self::ENTRY_OVERHEAD;
        self.stats.created += 1;
        let list = self.list(key.proto());
        list.insert(
            key,
            FlowEntry {
                first_seen: now,
                last_seen: now,
                mem: 0,
                value,
            },
        );
        list.get_mut(&key).expect("just inserted")
    }

    /// Sets the variable memory charged for `key`'s flow to `mem` bytes, evicting other flows
    /// (oldest idle first, never `key` itself) while the table is over its cap.
    pub fn recharge(&mut self, key: &FlowKey, mem: usize, on_end: &mut impl FnMut(FlowKey, V, EndReason)) {
        let Some(entry) = self.list(key.proto()).get_mut(key) else {
            return;
        };
        let old = std::mem::replace(&mut entry.mem, mem);
        self.mem_used = self.mem_used - old + mem;
        while self.mem_used > self.cfg.memcap {
            match self.oldest() {
                Some((k, _)) if k != *key => {
                    self.end(&k, EndReason::MemcapEvicted, on_end);
                }
                _ => break,
            }
        }
    }

    /// Removes `key`'s flow, reporting it through `on_end`.
    pub fn end(&mut self, key: &FlowKey, reason: EndReason, on_end: &mut impl FnMut(FlowKey, V, EndReason)) {
        if let Some(e) = self.list(key.proto()).remove(key) {
            Self::ended(&mut self.mem_used, &mut self.stats, (*key, e), reason, on_end);
        }
    }

    /// The accounting of a flow just removed from its list, and its report.
    fn ended(
        mem_used: &mut usize,
        stats: &mut FlowTableStats,
        (key, e): (FlowKey, FlowEntry<V>),
        reason: EndReason,
        on_end: &mut impl FnMut(FlowKey, V, EndReason),
    ) {
        *mem_used -= Self::ENTRY_OVERHEAD + e.mem;
        stats.ended[reason as usize] += 1;
        on_end(key, e.value, reason);
    }

    /// Ends every flow idle for longer than its transport's timeout.
    pub fn expire(&mut self, now: Timestamp, on_end: &mut impl FnMut(FlowKey, V, EndReason)) {
        for proto in [Proto::Tcp, Proto::Udp] {
            let timeout = match proto {
                Proto::Tcp => self.cfg.tcp_idle_timeout,
                Proto::Udp => self.cfg.udp_idle_timeout,
            };
            while let Some((k, e)) = self.list(proto).front() {
                if now.since(e.last_seen) <= timeout {
                    break;
                }
                let k = *k;
                self.end(&k, EndReason::IdleTimeout, on_end);
            }
        }
    }

    /// Visits every flow's state without changing its recency or its memory charge, for rare
    /// whole-table updates (renumbering rules after a rule reload).
    pub fn for_each_mut(&mut self, f: &mut impl FnMut(&FlowKey, &mut V)) {
        for (k, e) in self.tcp.iter_mut().chain(self.udp.iter_mut()) {
            f(k, &mut e.value);
        }
    }

    /// Ends every flow (shutdown, end of input).
    pub fn drain(&mut self, on_end: &mut impl FnMut(FlowKey, V, EndReason)) {
        while let Some((k, _)) = self.oldest() {
            self.end(&k, EndReason::Shutdown, on_end);
        }
    }

    /// The least recently used flow across both lists.
    fn oldest(&self) -> Option<(FlowKey, Timestamp)> {
        let t = self.tcp.front().map(|(k, e)| (*k, e.last_seen));
        let u = self.udp.front().map(|(k, e)| (*k, e.last_seen));
        match (t, u) {
            (Some(t), Some(u)) => Some(if u.1 < t.1 { u } else { t }),
            (t, u) => t.or(u),
        }
    }

    fn evict_oldest(&mut self, on_end: &mut impl FnMut(FlowKey, V, EndReason)) -> bool {
        match self.oldest() {
            Some((k, _)) => {
                self.end(&k, EndReason::MemcapEvicted, on_end);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Endpoint;

    fn key(port: u16, proto: Proto) -> FlowKey {
        let a = Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port,
        };
        let b = Endpoint {
            ip: "1.1.1.1".parse().unwrap(),
            port: 80,
        };
        FlowKey::new(proto, a, b).0
    }

    fn cfg(memcap: usize) -> FlowTableConfig {
        FlowTableConfig {
            tcp_idle_timeout: Duration::from_secs(10),
            udp_idle_timeout: Duration::from_secs(5),
            lifetime: Duration::from_secs(100),
            memcap,
            stream_depth: None,
        }
    }

    fn t(s: u64) -> Timestamp {
        Timestamp::from_micros(s * 1_000_000)
    }

    #[test]
    fn idle_flows_expire_per_transport_timeout() {
        let mut ended = Vec::new();
        let mut on_end = |k: FlowKey, v: u32, r| ended.push((k, v, r));
        let mut tab = FlowTable::new(cfg(usize::MAX));
        tab.insert(key(1, Proto::Tcp), t(0), 1, &mut on_end);
        tab.insert(key(2, Proto::Udp), t(0), 2, &mut on_end);
        tab.insert(key(3, Proto::Tcp), t(4), 3, &mut on_end);
        tab.expire(t(6), &mut on_end);
        tab.expire(t(11), &mut on_end);
        assert_eq!(tab.len(), 1);
        assert_eq!(
            ended.iter().map(|e| (e.1, e.2)).collect::<Vec<_>>(),
            vec![(2, EndReason::IdleTimeout), (1, EndReason::IdleTimeout)]
        );
    }

    #[test]
    fn access_refreshes_and_lifetime_restarts() {
        let ended = std::cell::RefCell::new(Vec::new());
        let mut on_end = |_k: FlowKey, v: u32, r| ended.borrow_mut().push((v, r));
        let mut tab = FlowTable::new(cfg(usize::MAX));
        let k = key(1, Proto::Tcp);
        tab.insert(k, t(0), 7, &mut on_end);
        for s in (5..100).step_by(5) {
            assert!(tab.get(&k, t(s), &mut on_end).is_some());
            tab.expire(t(s), &mut on_end);
        }
        assert!(ended.borrow().is_empty(), "an active flow must not idle out");
        assert!(tab.get(&k, t(101), &mut on_end).is_none());
        assert_eq!(*ended.borrow(), vec![(7, EndReason::Lifetime)]);
        assert_eq!(tab.mem_used(), 0);
        assert_eq!(tab.stats().ended[EndReason::Lifetime as usize], 1);
        assert!(tab.is_empty());
    }

    #[test]
    fn memcap_evicts_oldest_idle_first_and_accounting_balances() {
        let per = FlowTable::<u32>::ENTRY_OVERHEAD;
        let ended = std::cell::RefCell::new(Vec::new());
        let mut on_end = |_k: FlowKey, v: u32, r| ended.borrow_mut().push((v, r));
        let mut tab = FlowTable::new(cfg(per * 3 + 100));
        for i in 0..3u16 {
            tab.insert(key(i, Proto::Tcp), t(i as u64), i as u32, &mut on_end);
        }
        // Touch flow 0 so flow 1 becomes the oldest idle one.
        tab.get(&key(0, Proto::Tcp), t(5), &mut on_end);
        tab.insert(key(9, Proto::Tcp), t(6), 9, &mut on_end);
        assert_eq!(*ended.borrow(), vec![(1, EndReason::MemcapEvicted)]);
        // Growing one flow's state evicts others but never itself.
        tab.recharge(&key(9, Proto::Tcp), per * 2, &mut on_end);
        assert_eq!(tab.len(), 1);
        assert!(tab.mem_used() <= per * 3 + 100);
        tab.drain(&mut on_end);
        assert_eq!(tab.mem_used(), 0);
        assert!(tab.is_empty());
    }
}
