//! A worker owns a shard of the flows: decode → flow table → TCP reassembly → matcher →
//! per-direction de-duplication and batching → alerts. Nothing here is shared or locked; counters
//! are plain fields published to Prometheus once per batch.

use super::{Batch, WorkerQueue};
use crate::alert::{self, AddOutcome, AlertPolicy, AlertRule, DirLeaks, FlowContext, Observer, PendingBatch, PiiMatch};
use crate::cli::HomeNet;
use crate::clock::Timestamp;
use crate::decode::{Decoder, DefragConfig, LinkType, Transport};
use crate::flow::{Dir, EndReason, FlowKey, FlowTable, FlowTableConfig, Proto};
use crate::matcher::{DirScanner, Finding, Matcher, WorkerScratch};
use crate::metrics::Metrics;
use crate::pii::PiiKey;
use crate::reassembly::{Reassembler, ReassemblyConfig, StreamSink, TcpStream};
use crossbeam_channel::Sender;
use prometheus::{IntCounter, IntGauge};
use std::sync::Arc;
use std::time::Duration;

/// Read-only state every worker shares.
pub struct WorkerShared {
    /// Compiled rules.
    pub matcher: Matcher,
    /// Keyed-hash secret.
    pub key: Arc<PiiKey>,
    /// Inside networks.
    pub home_net: HomeNet,
    /// `observer` in alerts.
    pub observer: Observer,
    /// Flow table limits (per worker).
    pub flow: FlowTableConfig,
    /// Reassembly limits.
    pub reassembly: ReassemblyConfig,
    /// Out-of-order bytes per worker.
    pub reassembly_memcap: usize,
    /// Alert batching.
    pub alert: AlertPolicy,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Rendered alert lines go here.
    pub alerts: Sender<String>,
}

/// How often (packet time) idle flows are expired and waiting batches raised.
const TICK: Duration = Duration::from_secs(1);

/// A hit at the very end of a stream's data waits for the next bytes to check its boundary; if
/// the stream stays quiet this long, it is decided without them.
const SETTLE_AFTER: Duration = Duration::from_secs(1);

/// Per-flow state. A flow is only tracked when it crosses the home-net boundary, so exactly one
/// direction is egress; only that direction is reassembled and scanned.
struct Flow {
    /// The direction whose sender is inside and receiver outside.
    egress: Dir,
    /// Reassembly of the egress direction (TCP only).
    stream: TcpStream,
    /// Matcher state of the egress direction (TCP only; UDP scans per datagram).
    scanner: DirScanner,
    /// Values found so far in the egress direction; allocated on the first finding.
    leaks: Option<Box<DirLeaks>>,
    /// The other direction sent FIN.
    peer_fin: bool,
    /// Listed in `Engine::pending_flows` (see [`Flow::needs_housekeeping`]).
    listed_pending: bool,
}

impl Flow {
    /// True when a timer may have work for this flow: a hit waiting for its boundary, values
    /// waiting to be raised, or out-of-order bytes behind a hole.
    fn needs_housekeeping(&self) -> bool {
        self.scanner.has_pending()
            || self.stream.held_bytes() > 0
            || self.leaks.as_ref().is_some_and(|l| l.has_pending())
    }
}

/// Thread-local counters, published once per batch.
#[derive(Default)]
struct Local {
    packets: u64,
    hits: Vec<u64>,
    findings: Vec<u64>,
    scanned: u64,
    reported: Vec<u64>,
    alerts: Vec<u64>,
    flows_tcp: u64,
    flows_udp: u64,
    ended: [u64; 5],
    gaps: u64,
    gap_bytes: u64,
    conflicts: u64,
    dup_bytes: u64,
    seg_dropped: u64,
}

/// Prometheus handles resolved once per worker.
struct Handles {
    packets: IntCounter,
    hits: Vec<IntCounter>,
    findings: Vec<IntCounter>,
    reported: Vec<IntCounter>,
    alerts: Vec<IntCounter>,
    flows_active: IntGauge,
    flow_memory: IntGauge,
    ooo_bytes: IntGauge,
}

/// Everything a worker owns except the flow table (split so both can be borrowed at once).
struct Engine {
    shared: Arc<WorkerShared>,
    reassembler: Reassembler,
    scratch: WorkerScratch,
    findings: Vec<Finding>,
    /// Flows a timer may have work for (see [`Flow::needs_housekeeping`]).
    pending_flows: std::collections::HashSet<FlowKey, foldhash::fast::RandomState>,
    /// Latest packet time seen; the clock for flows ended at shutdown.
    last_seen: Timestamp,
    local: Local,
    published: Local,
    handles: Handles,
}

/// One worker thread's state.
pub struct Worker {
    id: usize,
    decoder: Decoder,
    table: FlowTable<Flow>,
    engine: Engine,
    last_tick: Timestamp,
}

/// Feeds reassembled bytes of the egress direction to its scanner, collecting findings.
struct ScanSink<'a> {
    matcher: &'a Matcher,
    scanner: &'a mut DirScanner,
    scratch: &'a mut WorkerScratch,
    findings: &'a mut Vec<Finding>,
}

impl ScanSink<'_> {
    /// The stream ended: report what the scanner holds and release its Hyperscan stream.
    fn finish(&mut self) {
        let findings = &mut *self.findings;
        self.scanner
            .finish(self.matcher, self.scratch, &mut |f| findings.push(f));
    }
}

impl StreamSink for ScanSink<'_> {
    fn data(&mut self, bytes: &[u8]) {
        let findings = &mut *self.findings;
        self.scanner
            .feed(self.matcher, self.scratch, bytes, &mut |f| findings.push(f));
    }
    fn gap(&mut self, _missing: u64) {
        let findings = &mut *self.findings;
        self.scanner.gap(self.matcher, self.scratch, &mut |f| findings.push(f));
    }
}

impl Worker {
    /// A worker with its own scratch, decoder and tables.
    pub fn new(id: usize, shared: Arc<WorkerShared>) -> anyhow::Result<Worker> {
        let scratch = shared
            .matcher
            .worker()
            .map_err(|e| anyhow::anyhow!("worker {id}: {e}"))?;
        let n = shared.matcher.rules().rules().len();
        let m = &shared.metrics;
        let per_rule = |v: &prometheus::IntCounterVec| -> Vec<IntCounter> {
            shared
                .matcher
                .rules()
                .rules()
                .iter()
                .map(|r| v.with_label_values(&[r.id.as_str()]))
                .collect()
        };
        let wid = id.to_string();
        let handles = Handles {
            packets: m.worker_packets.with_label_values(&[wid.as_str()]),
            hits: per_rule(&m.pattern_hits),
            findings: per_rule(&m.pii_findings),
            reported: per_rule(&m.pii_reported),
            alerts: per_rule(&m.alerts),
            flows_active: m.flows_active.with_label_values(&[wid.as_str()]),
            flow_memory: m.flow_memory.with_label_values(&[wid.as_str()]),
            ooo_bytes: m.reassembly_ooo_bytes.with_label_values(&[wid.as_str()]),
        };
        let zeroed = || Local {
            hits: vec![0; n],
            findings: vec![0; n],
            reported: vec![0; n],
            alerts: vec![0; n],
            ..Local::default()
        };
        let engine = Engine {
            reassembler: Reassembler::new(shared.reassembly.clone(), shared.reassembly_memcap),
            scratch,
            findings: Vec::with_capacity(64),
            pending_flows: Default::default(),
            last_seen: Timestamp::default(),
            local: zeroed(),
            published: zeroed(),
            handles,
            shared: Arc::clone(&shared),
        };
        // Fragments are reassembled by the capture thread; workers never hold any.
        let decoder = Decoder::new(DefragConfig {
            memcap: 0,
            timeout: Duration::from_secs(1),
        });
        Ok(Worker {
            id,
            decoder,
            table: FlowTable::new(shared.flow.clone()),
            engine,
            last_tick: Timestamp::default(),
        })
    }

    /// Worker id (its shard number).
    pub fn id(&self) -> usize {
        self.id
    }

    /// Processes batches until the queue closes, then ends every flow.
    pub fn run(mut self, q: WorkerQueue) {
        for mut batch in q.rx.iter() {
            self.batch(&batch);
            batch.clear();
            let _ = q.pool.try_send(batch);
        }
        self.shutdown();
    }

    /// Processes one batch.
    pub fn batch(&mut self, batch: &Batch) {
        for (ts, link, frame) in batch.iter() {
            // Housekeeping first, so a quiet flow's waiting hit is decided with the time of its
            // own last packet, not that of whatever packet came next.
            if ts.since(self.last_tick) >= TICK {
                self.tick(ts);
            }
            self.packet(ts, link, frame);
        }
        if let Some(ts) = batch.tick {
            if ts.since(self.last_tick) >= TICK {
                self.tick(ts);
            }
        }
        self.engine.publish(&self.table);
    }

    /// Ends every flow, raising what is pending.
    pub fn shutdown(&mut self) {
        let Worker { table, engine, .. } = self;
        table.drain(&mut |k, f, r| engine.end_flow(k, f, r, None));
        engine.publish(table);
    }

    fn tick(&mut self, now: Timestamp) {
        self.last_tick = now;
        let Worker { table, engine, .. } = self;
        table.expire(now, &mut |k, f, r| engine.end_flow(k, f, r, Some(now)));
        let keys = std::mem::take(&mut engine.pending_flows);
        for key in keys {
            let Some(entry) = table.peek_mut(&key) else { continue };
            let last_seen = entry.last_seen;
            let flow = &mut entry.value;
            if flow.stream.held_bytes() > 0 {
                // A quiet stream with a hole: skip it once it is older than the gap timeout.
                let (reassembler, mut sink) = engine.stream_parts(&mut flow.scanner);
                reassembler.expire(&mut flow.stream, now, &mut sink);
                if !engine.findings.is_empty() {
                    engine.record_findings(&key, flow, now);
                }
            }
            if flow.scanner.has_pending() && now.since(last_seen) >= SETTLE_AFTER {
                let e = &mut *engine;
                let findings = &mut e.findings;
                flow.scanner
                    .settle(&e.shared.matcher, &mut e.scratch, &mut |f| findings.push(f));
                if !e.findings.is_empty() {
                    // The value was complete when the flow's last packet arrived.
                    e.record_findings(&key, flow, last_seen);
                }
            }
            engine.raise_due(&key, flow, now, false);
            flow.listed_pending = flow.needs_housekeeping();
            if flow.listed_pending {
                engine.pending_flows.insert(key);
            }
        }
    }

    fn packet(&mut self, ts: Timestamp, link: LinkType, frame: &[u8]) {
        self.engine.local.packets += 1;
        if ts > self.engine.last_seen {
            self.engine.last_seen = ts;
        }
        // The capture thread decoded this frame already and counted failures.
        let Ok(pkt) = self.decoder.decode(link, ts, frame) else {
            return;
        };
        let home = &self.engine.shared.home_net;
        let (src_in, dst_in) = (home.contains(&pkt.src), home.contains(&pkt.dst));
        if src_in == dst_in {
            return;
        }
        let (key, dir) = FlowKey::of_packet(&pkt);
        let is_egress = src_in;
        let Worker { table, engine, .. } = self;

        let mut exists = table
            .get(&key, ts, &mut |k, f, r| engine.end_flow(k, f, r, Some(ts)))
            .is_some();
        if let Transport::Tcp(h) = pkt.transport {
            // A SYN opening a new connection on a finished 5-tuple (port reuse) starts a new flow.
            if exists && h.syn && !h.ack {
                let reuse = table
                    .peek_mut(&key)
                    .is_some_and(|e| e.value.stream.is_closed() || e.value.peer_fin);
                if reuse {
                    table.end(&key, EndReason::Closed, &mut |k, f, r| {
                        engine.end_flow(k, f, r, Some(ts))
                    });
                    exists = false;
                }
            }
            // Bare ACKs, FINs and RSTs of flows we do not know carry nothing to scan.
            if !exists && !h.syn && pkt.payload.is_empty() {
                return;
            }
        }
        if !exists {
            let egress = if is_egress { dir } else { dir.reverse() };
            let flow = Flow {
                egress,
                stream: TcpStream::default(),
                scanner: DirScanner::default(),
                leaks: None,
                peer_fin: false,
                listed_pending: false,
            };
            match key.proto() {
                Proto::Tcp => engine.local.flows_tcp += 1,
                Proto::Udp => engine.local.flows_udp += 1,
            }
            table.insert(key, ts, flow, &mut |k, f, r| engine.end_flow(k, f, r, Some(ts)));
        }
        let entry = table.peek_mut(&key).expect("flow present: found or just inserted");
        let before = entry.mem();
        let flow = &mut entry.value;
        let mut closed = false;
        match pkt.transport {
            Transport::Tcp(h) => {
                let (reassembler, mut sink) = engine.stream_parts(&mut flow.scanner);
                if is_egress {
                    reassembler.segment(&mut flow.stream, &h, pkt.payload, ts, &mut sink);
                    if flow.stream.is_closed() {
                        // The sender is done: release the Hyperscan stream now rather than when
                        // the peer finishes too (which may be never).
                        sink.finish();
                    }
                } else {
                    if h.ack {
                        reassembler.peer_ack(&mut flow.stream, h.ack_num, ts, &mut sink);
                    }
                    flow.peer_fin |= h.fin;
                }
                closed = h.rst || (flow.stream.is_closed() && flow.peer_fin);
            }
            Transport::Udp => {
                if is_egress {
                    let e = &mut *engine;
                    let findings = &mut e.findings;
                    e.shared
                        .matcher
                        .scan_datagram(&mut e.scratch, pkt.payload, &mut |f| findings.push(f));
                }
            }
        }
        if !engine.findings.is_empty() {
            engine.record_findings(&key, flow, ts);
        }
        if !flow.listed_pending && flow.needs_housekeeping() {
            flow.listed_pending = true;
            engine.pending_flows.insert(key);
        }
        let mem = flow.scanner.memory() + flow.leaks.as_ref().map_or(0, |l| l.memory());
        if closed {
            table.end(&key, EndReason::Closed, &mut |k, f, r| {
                engine.end_flow(k, f, r, Some(ts))
            });
        } else if mem != before {
            table.recharge(&key, mem, &mut |k, f, r| engine.end_flow(k, f, r, Some(ts)));
        }
    }
}

impl Engine {
    /// The reassembler and a sink that scans into `scanner`, borrowed together.
    fn stream_parts<'a>(&'a mut self, scanner: &'a mut DirScanner) -> (&'a mut Reassembler, ScanSink<'a>) {
        let sink = ScanSink {
            matcher: &self.shared.matcher,
            scanner,
            scratch: &mut self.scratch,
            findings: &mut self.findings,
        };
        (&mut self.reassembler, sink)
    }

    /// De-duplicates the findings of one packet and raises what is due.
    fn record_findings(&mut self, key: &FlowKey, flow: &mut Flow, now: Timestamp) {
        let leaks = flow.leaks.get_or_insert_with(Box::default);
        for f in self.findings.drain(..) {
            // Interim until the judge is wired in: alert what clears the default minimum.
            if f.confidence < crate::rules::DEFAULT_MIN_CONFIDENCE {
                continue;
            }
            let h = self.shared.key.hash(&f.value);
            let short = h.short() ^ (f.value.kind() as u64);
            let outcome = leaks.add(
                f.rule,
                short,
                || PiiMatch {
                    kind: f.value.kind(),
                    masked: f.value.masked(),
                    hash: h.to_hex(),
                },
                now,
                &self.shared.alert,
            );
            if outcome != AddOutcome::Duplicate {
                self.local.reported[f.rule as usize] += 1;
            }
        }
        self.raise_due(key, flow, now, false);
    }

    fn raise_due(&mut self, key: &FlowKey, flow: &mut Flow, now: Timestamp, force: bool) {
        let Some(leaks) = flow.leaks.as_mut() else { return };
        let mut batches: Vec<PendingBatch> = Vec::new();
        leaks.take_due(now, &self.shared.alert, force, &mut |b| batches.push(b));
        if batches.is_empty() {
            return;
        }
        let (sender, receiver) = key.endpoints(flow.egress);
        let community_id = key.community_id();
        let ctx = FlowContext {
            sender,
            receiver,
            proto: key.proto(),
            community_id: &community_id,
        };
        let rules = self.shared.matcher.rules().rules();
        for b in batches {
            let rule = &rules[b.rule as usize];
            let line = alert::render(
                now,
                AlertRule::from(rule),
                &ctx,
                &self.shared.observer,
                &b.matches,
                b.batch,
            );
            self.local.alerts[b.rule as usize] += 1;
            if self.shared.alerts.send(line).is_err() {
                self.shared.metrics.alert_write_errors.inc();
            }
        }
    }

    /// A flow left the table: finish its streams, raise everything pending.
    fn end_flow(&mut self, key: FlowKey, mut flow: Flow, reason: EndReason, now: Option<Timestamp>) {
        self.local.ended[reason as usize] += 1;
        if key.proto() == Proto::Tcp {
            let (reassembler, mut sink) = self.stream_parts(&mut flow.scanner);
            reassembler.finish(&mut flow.stream, &mut sink);
            sink.finish();
        }
        let now = now.unwrap_or(self.last_seen);
        if !self.findings.is_empty() {
            self.record_findings(&key, &mut flow, now);
        }
        self.raise_due(&key, &mut flow, now, true);
    }

    /// Publishes counter deltas and gauges.
    fn publish(&mut self, table: &FlowTable<Flow>) {
        let m = &self.shared.metrics;
        let (l, p) = (&mut self.local, &mut self.published);
        let delta = |now: u64, then: &mut u64| {
            let d = now - *then;
            *then = now;
            d
        };
        self.handles.packets.inc_by(delta(l.packets, &mut p.packets));
        let c = &self.scratch.counters;
        for (i, h) in self.handles.hits.iter().enumerate() {
            h.inc_by(delta(c.hits.get(i).copied().unwrap_or(0), &mut p.hits[i]));
            self.handles.findings[i].inc_by(delta(c.findings.get(i).copied().unwrap_or(0), &mut p.findings[i]));
            self.handles.reported[i].inc_by(delta(l.reported[i], &mut p.reported[i]));
            self.handles.alerts[i].inc_by(delta(l.alerts[i], &mut p.alerts[i]));
        }
        m.scanned_bytes.inc_by(delta(c.bytes, &mut p.scanned));
        m.flows_created
            .with_label_values(&["tcp"])
            .inc_by(delta(l.flows_tcp, &mut p.flows_tcp));
        m.flows_created
            .with_label_values(&["udp"])
            .inc_by(delta(l.flows_udp, &mut p.flows_udp));
        for (i, r) in [
            EndReason::Closed,
            EndReason::IdleTimeout,
            EndReason::Lifetime,
            EndReason::MemcapEvicted,
            EndReason::Shutdown,
        ]
        .iter()
        .enumerate()
        {
            let d = delta(l.ended[i], &mut p.ended[i]);
            if d > 0 {
                m.flows_ended.with_label_values(&[r.as_label()]).inc_by(d);
            }
        }
        let rc = self.reassembler.counters();
        m.reassembly_gaps.inc_by(delta(rc.gaps, &mut p.gaps));
        m.reassembly_gap_bytes.inc_by(delta(rc.gap_bytes, &mut p.gap_bytes));
        m.reassembly_overlap_conflicts
            .inc_by(delta(rc.overlap_conflicts, &mut p.conflicts));
        m.reassembly_duplicate_bytes
            .inc_by(delta(rc.duplicate_bytes, &mut p.dup_bytes));
        m.reassembly_segments_dropped
            .inc_by(delta(rc.segments_dropped, &mut p.seg_dropped));
        self.handles.flows_active.set(table.len() as i64);
        self.handles.flow_memory.set(table.mem_used() as i64);
        self.handles.ooo_bytes.set(self.reassembler.held_bytes() as i64);
    }
}
