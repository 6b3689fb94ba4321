//! A worker owns a shard of the flows: decode → flow table → TCP reassembly → matcher →
//! per-direction de-duplication and batching → alerts. Nothing here is shared or locked; counters
//! are plain fields published to Prometheus once per batch.

use super::{Batch, Queued, WorkerQueue};
use crate::alert::Evasion;
use crate::alert::{
    self, AddOutcome, AlertPolicy, AlertRule, DirLeaks, FlowContext, MessageContext, Observer, PendingBatch, PiiMatch,
};
use crate::clock::Timestamp;
use crate::decode::Transport;
use crate::flow::bypass::{self, BypassKind, BypassReason, Bypassed};
use crate::flow::{Dir, EndReason, FlowEntry, FlowKey, FlowTable, FlowTableConfig, Proto};
use crate::judge::{self, Facts, Judge, Suppression, Verdict};
use crate::l7::{
    self, AppDecoder, ContentSink, Evidence, L7Event, Location, MessageLog, Protocol, SectionLog, MAX_SECTION_NAME,
};
use crate::matcher::{DirScanner, Finding, Matcher, WorkerScratch};
use crate::metrics::Metrics;
use crate::pii::{Confidence, PiiKey};
use crate::reassembly::{Reassembler, ReassemblyConfig, StreamSink, TcpStream};
use crossbeam_channel::Sender;
use prometheus::{IntCounter, IntGauge};
use std::sync::Arc;
use std::time::Duration;

/// Read-only state every worker shares.
pub struct WorkerShared {
    /// Compiled rules; replaced by a SIGHUP reload, picked up by each worker at its next batch.
    pub rules: Arc<super::LiveRules>,
    /// Keyed-hash secret.
    pub key: Arc<PiiKey>,
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
    /// Confidence, known values and allow-lists.
    pub judge: Arc<Judge>,
    /// Decode application protocols (else scan raw bytes).
    pub decode_l7: bool,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Rendered alert lines go here.
    pub alerts: Sender<String>,
}

impl WorkerShared {
    /// What every worker shares; the limits, observer name, alert policy and decoding switch
    /// are taken from `settings`. (The home net is the capture threads': workers get only
    /// packets that cross it.)
    pub fn new(
        settings: &crate::cli::Settings,
        rules: Arc<super::LiveRules>,
        key: PiiKey,
        judge: Arc<Judge>,
        metrics: Arc<Metrics>,
        alerts: Sender<String>,
    ) -> WorkerShared {
        WorkerShared {
            rules,
            key: Arc::new(key),
            observer: Observer::new(settings.observer_name.clone()),
            flow: settings.flow.clone(),
            reassembly: settings.reassembly.clone(),
            reassembly_memcap: settings.reassembly_memcap,
            alert: settings.alert.clone(),
            judge,
            decode_l7: settings.decode_l7,
            metrics,
            alerts,
        }
    }
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
    /// Decoding and matching state of the egress direction (TCP only; UDP uses the worker's).
    scan: EgressScan,
    /// Values found so far in the egress direction; allocated on the first finding.
    leaks: Option<Box<DirLeaks>>,
    /// The other direction sent FIN.
    peer_fin: bool,
    /// Listed in `Engine::pending_flows` (see [`Flow::needs_housekeeping`]).
    listed_pending: bool,
    /// Set once the egress direction is no longer inspected (see `crate::flow::bypass`).
    bypass: Option<Bypassed>,
    /// An evasion alert was raised for this flow: later conflicts are only counted, so one
    /// hostile flow cannot flood the SIEM.
    evasion_alerted: bool,
}

/// What turns the egress direction's reassembled bytes into findings.
struct EgressScan {
    /// Application-layer decoding.
    app: AppDecoder,
    /// Matcher state.
    scanner: DirScanner,
    /// Where recent decoded sections began; allocated with the first section that is not raw.
    sections: Option<Box<SectionLog>>,
    /// Where recent messages began, with their evidence; allocated with the first message.
    messages: Option<Box<MessageLog>>,
}

impl Flow {
    /// True when a timer may have work for this flow: a hit waiting for its boundary, values
    /// waiting to be raised, or out-of-order bytes behind a hole.
    fn needs_housekeeping(&self) -> bool {
        self.scan.scanner.has_pending()
            || self.scan.app.holds_bytes()
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
    /// Per rule, per [`Suppression`] (index in `Suppression::ALL`).
    suppressed: Vec<[u64; 3]>,
    below_min: Vec<u64>,
    protocols: [u64; Protocol::ALL.len()],
    l7_events: [u64; L7Event::ALL.len()],
    /// Per `BypassKind::PROTOCOLS` index, per `BypassReason::ALL` index.
    bypassed_bytes: [[u64; BypassReason::ALL.len()]; BypassKind::PROTOCOLS.len()],
    bypassed_flows: [[u64; BypassReason::ALL.len()]; BypassKind::PROTOCOLS.len()],
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
    /// The rules in use by this worker, and their generation in `shared.rules`.
    matcher: Matcher,
    generation: u64,
    reassembler: Reassembler,
    scratch: WorkerScratch,
    findings: Vec<Finding>,
    /// Where each finding of `findings` was (same index), captured when it was reported.
    found: Vec<FoundAt>,
    /// Findings were counted below the minimum since the last judging (see `ScanContent`).
    quiet_since_judged: bool,
    /// Matcher stream reused for every UDP datagram, with its sections.
    udp_scanner: DirScanner,
    udp_sections: Option<Box<SectionLog>>,
    udp_messages: Option<Box<MessageLog>>,
    udp_evidence: Evidence,
    /// Flows a timer may have work for (see [`Flow::needs_housekeeping`]).
    pending_flows: std::collections::HashSet<FlowKey, foldhash::fast::RandomState>,
    /// Latest packet time seen; the clock for flows ended at shutdown.
    last_seen: Timestamp,
    local: Local,
    published: Local,
    handles: Handles,
    /// Offset of an overlap conflict reported during the current segment (see `ScanSink`).
    overlap_conflict: Option<u64>,
}

/// One worker thread's state.
pub struct Worker {
    id: usize,
    table: FlowTable<Flow>,
    engine: Engine,
    last_tick: Timestamp,
}

/// Decoded content of one egress direction → its matcher stream, remembering where each
/// section began so findings can say where they were found.
struct ScanContent<'a> {
    matcher: &'a Matcher,
    scanner: &'a mut DirScanner,
    scratch: &'a mut WorkerScratch,
    findings: &'a mut Vec<Finding>,
    sections: &'a mut Option<Box<SectionLog>>,
    messages: &'a mut Option<Box<MessageLog>>,
    found: &'a mut Vec<FoundAt>,
    events: &'a mut [u64; L7Event::ALL.len()],
    /// Findings decided where the matcher reports them: below the minimum confidence when the
    /// judge needs no facts to say so (`quiet_below`, from
    /// [`Judge::below_minimum_needs_no_facts`]). On digit-heavy traffic nearly every finding is
    /// a low-confidence timestamp; they skip the queue, the location capture and the judge.
    /// Where no remembered section is at a location that could raise them, the matcher counts
    /// them itself (`WorkerScratch::set_quiet_below`) and no `Finding` is built.
    quiet_below: Option<Confidence>,
    /// Per-rule count of those (`Local::below_min`).
    below_min: &'a mut [u64],
    /// Set when one was counted: the flow is then treated as having had findings, so what
    /// follows findings (raising due alerts) happens exactly as before.
    quiet_since_judged: &'a mut bool,
}

/// Where a finding was, captured the moment the matcher reports it: by the time the packet's
/// findings are judged, later sections and messages of the same packet may have pushed its own
/// out of the logs.
#[derive(Clone, Copy)]
struct FoundAt {
    location: Option<Location>,
    name_len: u8,
    name: [u8; MAX_SECTION_NAME],
    /// Sequence number of its message in the direction's `MessageLog`.
    message: Option<u32>,
}

impl FoundAt {
    fn of(sections: Option<&SectionLog>, messages: Option<&MessageLog>, offset: u64) -> FoundAt {
        let mut at = FoundAt {
            location: Some(Location::Raw),
            name_len: 0,
            name: [0; MAX_SECTION_NAME],
            message: messages.and_then(|m| m.seq_at(offset)),
        };
        if let Some(log) = sections {
            at.location = None;
            if let Some((location, name)) = log.lookup(offset) {
                at.location = Some(location);
                at.name[..name.len()].copy_from_slice(name);
                at.name_len = name.len() as u8;
            }
        }
        at
    }
    fn name(&self) -> &[u8] {
        &self.name[..usize::from(self.name_len)]
    }
}

impl ScanContent<'_> {
    /// Runs `op` on the scanner with a callback that records each finding and where it was.
    fn scan(&mut self, op: impl FnOnce(&mut DirScanner, &Matcher, &mut WorkerScratch, &mut dyn FnMut(Finding))) {
        let (findings, found, quiet_below) = (&mut *self.findings, &mut *self.found, self.quiet_below);
        let (below_min, quiet_since_judged) = (&mut *self.below_min, &mut *self.quiet_since_judged);
        let (sections, messages) = (self.sections.as_deref(), self.messages.as_deref());
        // Nearly every finding on digit-heavy traffic is quiet; the rest are queued out of line,
        // so the quiet path saves and restores fewer registers.
        #[inline(never)]
        fn queue(
            f: Finding,
            found: &mut Vec<FoundAt>,
            findings: &mut Vec<Finding>,
            sections: Option<&SectionLog>,
            messages: Option<&MessageLog>,
        ) {
            found.push(FoundAt::of(sections, messages, f.offset));
            findings.push(f);
        }
        // Where no remembered section's location can raise a finding, the matcher itself counts
        // the quiet ones instead of building and handing them over.
        let location_may_raise = sections.is_some_and(|log| judge::RAISING_LOCATIONS.iter().any(|&l| log.holds(l)));
        self.scratch
            .set_quiet_below(quiet_below.filter(|_| !location_may_raise));
        let mut out = |f: Finding| {
            if let Some(min) = quiet_below.filter(|min| f.confidence < *min) {
                let location = sections.map_or(Some(Location::Raw), |log| log.lookup(f.offset).map(|(l, _)| l));
                if judge::confidence_at(&f, location) < min {
                    below_min[f.rule as usize] += 1;
                    *quiet_since_judged = true;
                    return;
                }
            }
            queue(f, found, findings, sections, messages);
        };
        op(self.scanner, self.matcher, self.scratch, &mut out);
        let quiet = &mut self.scratch.counters.quiet;
        if quiet.iter().any(|&n| n > 0) {
            for (total, quiet) in below_min.iter_mut().zip(quiet) {
                *total += std::mem::take(quiet);
            }
            *quiet_since_judged = true;
        }
    }
}

impl ContentSink for ScanContent<'_> {
    fn section(&mut self, location: Location, name: &[u8]) {
        if location == Location::Raw && self.sections.is_none() {
            // A raw direction needs no log: every finding is `raw`.
            return;
        }
        if self.scanner.fed() > 0 {
            // A line break keeps values of two sections apart while the previous section's
            // tail stays visible as keyword context (`Name: value`, `field=value`).
            self.data(b"\n");
        }
        let start = self.scanner.fed();
        self.sections
            .get_or_insert_with(Box::default)
            .push(start, location, name);
    }
    fn data(&mut self, bytes: &[u8]) {
        self.scan(|s, m, w, out| s.feed(m, w, bytes, out));
    }
    fn gap(&mut self) {
        self.scan(|s, m, w, out| s.gap(m, w, out));
    }
    fn message(&mut self, evidence: &Evidence) {
        let start = self.scanner.fed();
        self.messages.get_or_insert_with(Box::default).push(start, evidence);
    }
    fn event(&mut self, event: L7Event) {
        if let Some(i) = L7Event::ALL.iter().position(|e| *e == event) {
            self.events[i] += 1;
        }
    }
}

/// Reassembled bytes of the egress direction → its application decoder → [`ScanContent`].
struct ScanSink<'a> {
    app: &'a mut AppDecoder,
    content: ScanContent<'a>,
    /// Set to the offset of the first conflicting byte when the reassembler reports an overlap
    /// conflict; the worker raises the evasion alert after the segment. (fuzz)
    conflict: &'a mut Option<u64>,
}

impl ScanSink<'_> {
    /// The stream ended: flush the decoder, report what the scanner holds and release its
    /// Hyperscan stream.
    fn finish(&mut self) {
        self.app.finish(&mut self.content);
        self.content.scan(|s, m, w, out| s.finish(m, w, out));
    }
}

impl StreamSink for ScanSink<'_> {
    fn data(&mut self, bytes: &[u8]) {
        self.app.data(bytes, &mut self.content);
    }
    fn gap(&mut self, missing: u64) {
        self.app.gap(missing, &mut self.content);
    }
    fn overlap_conflict(&mut self, at: u64) {
        self.conflict.get_or_insert(at);
    }
}

/// Where a batch of findings came from, for judging and alert context.
#[derive(Clone, Copy)]
struct Source<'a> {
    protocol: Protocol,
    /// The decoder's latest evidence, for findings whose message is no longer logged.
    evidence: Option<&'a Evidence>,
    messages: Option<&'a MessageLog>,
}

impl<'a> Source<'a> {
    fn of(scan: &'a EgressScan) -> Self {
        Source {
            protocol: scan.app.protocol(),
            evidence: scan.app.evidence(),
            messages: scan.messages.as_deref(),
        }
    }
}

impl Worker {
    /// A worker with its own scratch, decoder and tables.
    pub fn new(id: usize, shared: Arc<WorkerShared>) -> anyhow::Result<Worker> {
        let (generation, matcher) = shared.rules.current();
        let scratch = matcher.worker().map_err(|e| anyhow::anyhow!("worker {id}: {e}"))?;
        let m = &shared.metrics;
        let wid = id.to_string();
        let mut handles = Handles {
            packets: m.worker_packets.with_label_values(&[wid.as_str()]),
            hits: Vec::new(),
            findings: Vec::new(),
            reported: Vec::new(),
            alerts: Vec::new(),
            flows_active: m.flows_active.with_label_values(&[wid.as_str()]),
            flow_memory: m.flow_memory.with_label_values(&[wid.as_str()]),
            ooo_bytes: m.reassembly_ooo_bytes.with_label_values(&[wid.as_str()]),
        };
        handles.per_rule(m, &matcher);
        let (mut local, mut published) = (Local::default(), Local::default());
        local.per_rule(matcher.rules().rules().len());
        published.per_rule(matcher.rules().rules().len());
        let engine = Engine {
            matcher,
            generation,
            reassembler: Reassembler::new(shared.reassembly.clone(), shared.reassembly_memcap),
            scratch,
            findings: Vec::with_capacity(64),
            udp_scanner: DirScanner::default(),
            udp_sections: None,
            udp_messages: None,
            found: Vec::with_capacity(64),
            quiet_since_judged: false,
            udp_evidence: Evidence::default(),
            pending_flows: Default::default(),
            last_seen: Timestamp::default(),
            local,
            published,
            handles,
            shared: Arc::clone(&shared),
            overlap_conflict: None,
        };
        Ok(Worker {
            id,
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
        if self.engine.shared.rules.generation() != self.engine.generation {
            self.adopt_rules();
        }
        for q in batch.iter() {
            // Housekeeping first, so a quiet flow's waiting hit is decided with the time of its
            // own last packet, not that of whatever packet came next.
            if q.ts.since(self.last_tick) >= TICK {
                self.tick(q.ts);
            }
            self.packet(q);
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
                let (reassembler, mut sink) = engine.stream_parts(&mut flow.scan);
                reassembler.expire(&mut flow.stream, now, &mut sink);
                if engine.has_findings() {
                    engine.record_findings(&key, flow, now);
                }
            }
            if flow.scan.app.holds_bytes() && now.since(last_seen) >= SETTLE_AFTER {
                // A few bytes too ambiguous to name the protocol, and nothing more came: scan
                // them as they are.
                let (_, mut sink) = engine.stream_parts(&mut flow.scan);
                sink.app.gap(0, &mut sink.content);
                if engine.has_findings() {
                    engine.record_findings(&key, flow, last_seen);
                }
            }
            if flow.scan.scanner.has_pending() && now.since(last_seen) >= SETTLE_AFTER {
                let (_, mut sink) = engine.stream_parts(&mut flow.scan);
                sink.content.scan(|s, m, w, out| s.settle(m, w, out));
                if engine.has_findings() {
                    // The value was complete when the flow's last packet arrived.
                    engine.record_findings(&key, flow, last_seen);
                }
            }
            engine.raise_due(&key, flow, now, false);
            flow.listed_pending = flow.needs_housekeeping();
            if flow.listed_pending {
                engine.pending_flows.insert(key);
            }
        }
    }

    /// One packet the capture thread decoded and found crossing the home-net boundary.
    fn packet(&mut self, pkt: Queued<'_>) {
        let Queued {
            ts,
            key,
            egress: is_egress,
            ..
        } = pkt;
        self.engine.local.packets += 1;
        if ts > self.engine.last_seen {
            self.engine.last_seen = ts;
        }
        let Worker { table, engine, .. } = self;

        let syn_only = matches!(pkt.transport, Transport::Tcp(h) if h.syn && !h.ack);
        let found = table.get(&key, ts, &mut |k, f, r| engine.end_flow(k, f, r, Some(ts)));
        let entry = match found {
            // Most packets: a known flow, not bypassed, and no SYN that could start a new
            // connection on its 5-tuple. Their flow is found with this one lookup.
            Some(e) if !syn_only && e.value.bypass.is_none() => e,
            found => {
                let bypassed = found.map(|e| e.value.bypass.is_some());
                match flow_of_other_packet(table, engine, &pkt, bypassed) {
                    Some(e) => e,
                    None => return,
                }
            }
        };
        let before = entry.mem();
        let flow = &mut entry.value;
        let mut closed = false;
        match pkt.transport {
            Transport::Tcp(h) => {
                if !is_egress && !pkt.payload.is_empty() {
                    // (only what `reads_peer_payload` accepted has bytes here)
                    flow.scan.app.peer_data(pkt.payload);
                }
                let (reassembler, mut sink) = engine.stream_parts(&mut flow.scan);
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
                // (QUIC is recognised from its first egress datagram)
                let quic = is_egress && engine.shared.decode_l7 && bypass::is_quic_long_header(pkt.payload);
                if quic {
                    engine.bypass_quic(flow, pkt.payload.len());
                }
                if is_egress && !quic {
                    engine.datagram(&key, flow, pkt.payload, ts);
                }
            }
        }
        if is_egress && !closed && key.proto() == Proto::Tcp && flow.bypass.is_none() {
            let kind = match flow.scan.app.bypass_ready() {
                Some(p) => Some(BypassKind::tcp(p, BypassReason::Encrypted)),
                None => engine
                    .shared
                    .flow
                    .stream_depth
                    .filter(|d| flow.stream.offset() >= *d)
                    .map(|_| BypassKind::tcp(flow.scan.app.protocol(), BypassReason::Depth)),
            };
            if let Some(kind) = kind {
                engine.bypass_tcp(&key, flow, kind, ts);
            }
        }
        if let Some(offset) = engine.overlap_conflict.take() {
            engine.raise_evasion(&key, flow, ts, Evasion::TcpOverlapConflict { offset });
        }
        if engine.has_findings() {
            engine.record_findings(&key, flow, ts);
        }
        if !flow.listed_pending && flow.needs_housekeeping() {
            flow.listed_pending = true;
            engine.pending_flows.insert(key);
        }
        let mem = flow.scan.scanner.memory()
            + flow.scan.app.memory()
            + flow
                .scan
                .sections
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<SectionLog>())
            + flow.leaks.as_ref().map_or(0, |l| l.memory());
        if closed {
            table.end(&key, EndReason::Closed, &mut |k, f, r| {
                engine.end_flow(k, f, r, Some(ts))
            });
        } else if mem != before {
            table.recharge(&key, mem, &mut |k, f, r| engine.end_flow(k, f, r, Some(ts)));
        }
    }
}

/// The flow of a packet that is not simply the next one of a known, live flow: `found` is
/// `None` when no flow was found, else whether the found one is bypassed. Ends a finished
/// flow whose 5-tuple a SYN reuses, starts new flows, and handles a bypassed flow's packet;
/// `None` when nothing is left to do with the packet.
fn flow_of_other_packet<'t>(
    table: &'t mut FlowTable<Flow>,
    engine: &mut Engine,
    pkt: &Queued<'_>,
    found: Option<bool>,
) -> Option<&'t mut FlowEntry<Flow>> {
    let Queued {
        ts,
        key,
        dir,
        egress: is_egress,
        ..
    } = *pkt;
    let (mut exists, bypassed) = (found.is_some(), found == Some(true));
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
        if !exists && !h.syn && pkt.payload_len == 0 {
            return None;
        }
    }
    if exists
        && bypassed
        && bypassed_packet(
            table,
            engine,
            &key,
            pkt.transport,
            pkt.payload_len as usize,
            is_egress,
            ts,
        )
    {
        return None;
    }
    if !exists {
        let egress = if is_egress { dir } else { dir.reverse() };
        let (sender, receiver) = key.endpoints(egress);
        let flow = Flow {
            egress,
            stream: TcpStream::default(),
            scan: EgressScan {
                app: if engine.shared.decode_l7 {
                    AppDecoder::new(sender.port, receiver.port)
                } else {
                    AppDecoder::raw()
                },
                scanner: DirScanner::default(),
                sections: None,
                messages: None,
            },
            leaks: None,
            peer_fin: false,
            listed_pending: false,
            bypass: None,
            evasion_alerted: false,
        };
        match key.proto() {
            Proto::Tcp => engine.local.flows_tcp += 1,
            Proto::Udp => engine.local.flows_udp += 1,
        }
        return Some(table.insert(key, ts, flow, &mut |k, f, r| engine.end_flow(k, f, r, Some(ts))));
    }
    Some(table.peek_mut(&key).expect("a flow found and not ended is still there"))
}

/// A packet of a bypassed flow: only counted, and its FIN or RST followed so the flow still
/// ends. Returns `false` (doing nothing) when the flow is not bypassed.
fn bypassed_packet(
    table: &mut FlowTable<Flow>,
    engine: &mut Engine,
    key: &FlowKey,
    transport: Transport,
    payload_len: usize,
    is_egress: bool,
    ts: Timestamp,
) -> bool {
    let Some(entry) = table.peek_mut(key) else { return false };
    let flow = &mut entry.value;
    let Some(b) = flow.bypass.as_mut() else { return false };
    if is_egress {
        engine.local.bypassed_bytes[b.kind.protocol_index()][b.kind.reason_index()] += payload_len as u64;
    }
    if let Transport::Tcp(h) = transport {
        if is_egress {
            b.egress_fin |= h.fin;
        } else {
            flow.peer_fin |= h.fin;
        }
        if h.rst || (b.egress_fin && flow.peer_fin) {
            table.end(key, EndReason::Closed, &mut |k, f, r| {
                engine.end_flow(k, f, r, Some(ts))
            });
        }
    }
    true
}

impl Engine {
    /// Stops inspecting `flow`'s egress TCP direction: held out-of-order bytes are dropped (their
    /// budget returned), the decoder is flushed and the matcher's pending hits decided and
    /// recorded, then the Hyperscan stream, decoder state and section logs are freed.
    fn bypass_tcp(&mut self, key: &FlowKey, flow: &mut Flow, kind: BypassKind, now: Timestamp) {
        let (reassembler, mut sink) = self.stream_parts(&mut flow.scan);
        reassembler.abandon(&mut flow.stream);
        sink.finish();
        if self.has_findings() {
            self.record_findings(key, flow, now);
        }
        flow.scan.app.release();
        flow.scan.sections = None;
        flow.scan.messages = None;
        flow.bypass = Some(Bypassed {
            kind,
            egress_fin: false,
        });
        self.local.bypassed_flows[kind.protocol_index()][kind.reason_index()] += 1;
    }

    /// A UDP flow recognised as QUIC from its datagram of `len` bytes: it and the rest are not
    /// scanned. UDP flows hold no scanning state of their own, so there is nothing to free.
    fn bypass_quic(&mut self, flow: &mut Flow, len: usize) {
        let kind = BypassKind::quic();
        flow.bypass = Some(Bypassed {
            kind,
            egress_fin: false,
        });
        self.local.bypassed_flows[kind.protocol_index()][kind.reason_index()] += 1;
        self.local.bypassed_bytes[kind.protocol_index()][kind.reason_index()] += len as u64;
    }
}

impl Engine {
    /// The reassembler and a sink that decodes and scans into `flow`'s egress state, borrowed
    /// together.
    fn stream_parts<'a>(&'a mut self, scan: &'a mut EgressScan) -> (&'a mut Reassembler, ScanSink<'a>) {
        let sink = ScanSink {
            app: &mut scan.app,
            content: ScanContent {
                matcher: &self.matcher,
                scanner: &mut scan.scanner,
                scratch: &mut self.scratch,
                findings: &mut self.findings,
                sections: &mut scan.sections,
                messages: &mut scan.messages,
                found: &mut self.found,
                events: &mut self.local.l7_events,
                quiet_below: self.shared.judge.below_minimum_needs_no_facts(),
                below_min: &mut self.local.below_min,
                quiet_since_judged: &mut self.quiet_since_judged,
            },
            conflict: &mut self.overlap_conflict,
        };
        (&mut self.reassembler, sink)
    }

    /// Decodes (DNS) or passes raw one egress UDP datagram into the shared datagram stream,
    /// then records its findings with the datagram's own context.
    fn datagram(&mut self, key: &FlowKey, flow: &mut Flow, payload: &[u8], ts: Timestamp) {
        let mut content = ScanContent {
            matcher: &self.matcher,
            scanner: &mut self.udp_scanner,
            scratch: &mut self.scratch,
            findings: &mut self.findings,
            sections: &mut self.udp_sections,
            messages: &mut self.udp_messages,
            found: &mut self.found,
            events: &mut self.local.l7_events,
            quiet_below: self.shared.judge.below_minimum_needs_no_facts(),
            below_min: &mut self.local.below_min,
            quiet_since_judged: &mut self.quiet_since_judged,
        };
        self.udp_evidence = Evidence::default();
        let (sender, receiver) = key.endpoints(flow.egress);
        let dns = self.shared.decode_l7
            && (sender.port == 53 || receiver.port == 53)
            && l7::dns::datagram(payload, &mut content, &mut self.udp_evidence);
        if !dns {
            content.data(payload);
        }
        content.scan(|s, m, w, out| s.reset(m, w, out));
        let protocol = if dns { Protocol::Dns } else { Protocol::Unknown };
        self.local.protocols[protocol_index(protocol)] += 1;
        if self.has_findings() {
            let evidence = std::mem::take(&mut self.udp_evidence);
            let src = Source {
                protocol,
                evidence: dns.then_some(&evidence),
                messages: None,
            };
            self.judge_findings(key, flow.egress, &mut flow.leaks, src, ts);
            self.udp_evidence = evidence;
            self.raise_due(key, flow, ts, false);
        }
        // The logs restart with the next datagram (the stream's offsets restart at 0).
        self.udp_sections = None;
        self.udp_messages = None;
    }

    /// Judges and de-duplicates the findings of one packet of a TCP flow, and raises what is due.
    /// Findings were reported since they were last judged (some may have been counted
    /// already, see `ScanContent::quiet_below`).
    fn has_findings(&self) -> bool {
        !self.findings.is_empty() || self.quiet_since_judged
    }

    fn record_findings(&mut self, key: &FlowKey, flow: &mut Flow, now: Timestamp) {
        let src = Source::of(&flow.scan);
        self.judge_findings(key, flow.egress, &mut flow.leaks, src, now);
        self.raise_due(key, flow, now, false);
    }

    /// Judges each pending finding and queues the alertable ones in `leaks`.
    fn judge_findings(
        &mut self,
        key: &FlowKey,
        egress: Dir,
        leaks: &mut Option<Box<DirLeaks>>,
        src: Source<'_>,
        now: Timestamp,
    ) {
        let (_, receiver) = key.endpoints(egress);
        self.quiet_since_judged = false;
        debug_assert_eq!(self.findings.len(), self.found.len());
        for (f, at) in self.findings.drain(..).zip(self.found.drain(..)) {
            let evidence = at
                .message
                .and_then(|seq| src.messages.and_then(|m| m.evidence(seq)))
                .or(src.evidence);
            let http_host = evidence.map_or("", |e| e.http_host.as_str());
            let (location, name) = (at.location, at.name());
            let facts = Facts {
                receiver: receiver.ip,
                http_host,
                location,
            };
            let rule = f.rule as usize;
            // Most low-confidence findings (timestamps) are decided without the keyed hash.
            let (verdict, hash) = match self.shared.judge.judge_without_hash(&f, &facts) {
                Some(v) => (v, None),
                None => {
                    let h = self.shared.key.hash(&f.value);
                    (self.shared.judge.judge(&f, &h, &facts), Some(h))
                }
            };
            let (confidence, known) = match verdict {
                Verdict::Alert { confidence, known } => (confidence, known),
                Verdict::Suppressed(reason) => {
                    let i = Suppression::ALL.iter().position(|r| *r == reason).unwrap_or(0);
                    self.local.suppressed[rule][i] += 1;
                    continue;
                }
                Verdict::BelowMinimum(_) => {
                    self.local.below_min[rule] += 1;
                    continue;
                }
            };
            let h = hash.unwrap_or_else(|| self.shared.key.hash(&f.value));
            let short = h.short() ^ (f.value.kind() as u64);
            let outcome = leaks.get_or_insert_with(Box::default).add(
                f.rule,
                short,
                || PiiMatch {
                    kind: f.value.kind(),
                    masked: f.value.masked(),
                    hash: h.to_hex(),
                    confidence,
                    known,
                    location,
                    field: (!name.is_empty()).then(|| l7::redact_digits(&String::from_utf8_lossy(name))),
                },
                || MessageContext {
                    protocol: Some(src.protocol),
                    evidence: evidence.cloned(),
                },
                now,
                &self.shared.alert,
            );
            if outcome != AddOutcome::Duplicate {
                self.local.reported[rule] += 1;
            }
        }
    }

    fn raise_due(&mut self, key: &FlowKey, flow: &mut Flow, now: Timestamp, force: bool) {
        let Some(leaks) = flow.leaks.as_mut() else { return };
        let mut batches: Vec<PendingBatch> = Vec::new();
        leaks.take_due(now, &self.shared.alert, force, &mut |b| batches.push(b));
        self.raise(key, flow.egress, batches, now);
    }

    /// Renders and sends `batches` (rule indices of `self.matcher`) of `key`'s egress direction.
    fn raise(&mut self, key: &FlowKey, egress: Dir, batches: Vec<PendingBatch>, now: Timestamp) {
        if batches.is_empty() {
            return;
        }
        let community_id = key.community_id();
        let ctx = flow_context(key, egress, &community_id);
        let rules = self.matcher.rules().rules();
        for b in batches {
            let rule = &rules[b.rule as usize];
            let severity = crate::judge::bulk_severity(rule.severity, b.distinct);
            let line = alert::render(now, AlertRule::from(rule), severity, &ctx, &self.shared.observer, &b);
            self.local.alerts[b.rule as usize] += 1;
            self.send_alert(line);
        }
    }

    /// Hands a rendered alert to the outputs; a closed channel counts as a write error.
    fn send_alert(&self, line: String) {
        if self.shared.alerts.send(line).is_err() {
            self.shared.metrics.alert_write_errors.inc();
        }
    }

    /// Raises an evasion alert for `flow`, once per flow (later ones are counted by the
    /// reassembler only).
    fn raise_evasion(&mut self, key: &FlowKey, flow: &mut Flow, now: Timestamp, evasion: Evasion) {
        if std::mem::replace(&mut flow.evasion_alerted, true) {
            return;
        }
        let community_id = key.community_id();
        let ctx = flow_context(key, flow.egress, &community_id);
        let line = alert::render_evasion(now, evasion, &ctx, flow.scan.app.protocol(), &self.shared.observer);
        self.shared.metrics.alerts.with_label_values(&[evasion.rule_id()]).inc();
        self.send_alert(line);
    }

    /// A flow left the table: finish its streams, raise everything pending.
    fn end_flow(&mut self, key: FlowKey, mut flow: Flow, reason: EndReason, now: Option<Timestamp>) {
        self.local.ended[reason as usize] += 1;
        if key.proto() == Proto::Tcp {
            let (reassembler, mut sink) = self.stream_parts(&mut flow.scan);
            reassembler.finish(&mut flow.stream, &mut sink);
            sink.finish();
            if flow.stream.offset() > 0 {
                self.local.protocols[protocol_index(flow.scan.app.protocol())] += 1;
            }
        }
        let now = now.unwrap_or(self.last_seen);
        if self.has_findings() {
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
        let rules = self.matcher.rules().rules();
        for (i, rule) in rules.iter().enumerate() {
            for (j, reason) in Suppression::ALL.iter().enumerate() {
                let d = delta(l.suppressed[i][j], &mut p.suppressed[i][j]);
                if d > 0 {
                    m.pii_suppressed
                        .with_label_values(&[rule.id.as_str(), reason.as_str()])
                        .inc_by(d);
                }
            }
            let d = delta(l.below_min[i], &mut p.below_min[i]);
            if d > 0 {
                m.pii_below_min_confidence
                    .with_label_values(&[rule.id.as_str()])
                    .inc_by(d);
            }
        }
        for (i, proto) in Protocol::ALL.iter().enumerate() {
            let d = delta(l.protocols[i], &mut p.protocols[i]);
            if d > 0 {
                m.l7_protocol.with_label_values(&[proto.as_str()]).inc_by(d);
            }
        }
        for (i, event) in L7Event::ALL.iter().enumerate() {
            let d = delta(l.l7_events[i], &mut p.l7_events[i]);
            if d > 0 {
                m.l7_events.with_label_values(&[event.as_str()]).inc_by(d);
            }
        }
        for (i, proto) in BypassKind::PROTOCOLS.iter().enumerate() {
            for (j, reason) in BypassReason::ALL.iter().enumerate() {
                let d = delta(l.bypassed_flows[i][j], &mut p.bypassed_flows[i][j]);
                if d > 0 {
                    m.flows_bypassed
                        .with_label_values(&[proto, reason.as_label()])
                        .inc_by(d);
                }
                let d = delta(l.bypassed_bytes[i][j], &mut p.bypassed_bytes[i][j]);
                if d > 0 {
                    m.bypassed_bytes
                        .with_label_values(&[proto, reason.as_label()])
                        .inc_by(d);
                }
            }
        }
        self.handles.flows_active.set(table.len() as i64);
        self.handles.flow_memory.set(table.mem_used() as i64);
        self.handles.ooo_bytes.set(self.reassembler.held_bytes() as i64);
    }
}

/// Alert context of `key`'s egress direction (`community_id` is `key.community_id()`, kept by
/// the caller because the context borrows it).
fn flow_context<'a>(key: &FlowKey, egress: Dir, community_id: &'a str) -> FlowContext<'a> {
    let (sender, receiver) = key.endpoints(egress);
    FlowContext {
        sender,
        receiver,
        proto: key.proto(),
        community_id,
    }
}

fn protocol_index(p: Protocol) -> usize {
    Protocol::ALL.iter().position(|q| *q == p).unwrap_or(0)
}

impl Handles {
    /// Resolves the per-rule counters for `matcher`'s rules.
    fn per_rule(&mut self, m: &Metrics, matcher: &Matcher) {
        let per_rule = |v: &prometheus::IntCounterVec| -> Vec<IntCounter> {
            let rules = matcher.rules().rules();
            rules.iter().map(|r| v.with_label_values(&[r.id.as_str()])).collect()
        };
        self.hits = per_rule(&m.pattern_hits);
        self.findings = per_rule(&m.pii_findings);
        self.reported = per_rule(&m.pii_reported);
        self.alerts = per_rule(&m.alerts);
    }
}

impl Local {
    /// Zeroes the per-rule counters, sized for `n` rules.
    fn per_rule(&mut self, n: usize) {
        self.hits = vec![0; n];
        self.findings = vec![0; n];
        self.reported = vec![0; n];
        self.alerts = vec![0; n];
        self.suppressed = vec![[0; 3]; n];
        self.below_min = vec![0; n];
    }
}

impl Worker {
    /// Moves this worker to the rule set now in `shared.rules` (a reload happened). Runs at a
    /// batch boundary, so no packet sees two rule sets. Per-rule counters of the old set are
    /// published first; values of rules the new set lacks that wait in alert batches are raised
    /// now under their old rule; the rest of each flow's alert state is renumbered by rule id.
    /// Each flow's stream moves at its next bytes (see `DirScanner`).
    fn adopt_rules(&mut self) {
        let Worker { table, engine, id, .. } = self;
        let (generation, new) = engine.shared.rules.current();
        engine.generation = generation;
        let mut scratch = match new.worker() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(
                    worker = *id,
                    generation,
                    "cannot use the reloaded rules: {e}; this worker keeps its current rules"
                );
                return;
            }
        };
        engine.publish(table);
        let old = engine.matcher.clone();
        let map = |r: crate::matcher::RuleIdx| new.rule_index(&old.rule(r).id);
        let now = engine.last_seen;
        table.for_each_mut(&mut |key, flow| {
            if let Some(leaks) = flow.leaks.as_mut() {
                let mut gone = Vec::new();
                leaks.remap_rules(map, &engine.shared.alert, &mut |b| gone.push(b));
                engine.raise(key, flow.egress, gone, now);
            }
        });
        let n = new.rules().rules().len();
        scratch.counters = std::mem::take(&mut engine.scratch.counters);
        scratch.counters.hits = vec![0; n];
        scratch.counters.findings = vec![0; n];
        engine.scratch = scratch;
        engine.local.per_rule(n);
        engine.published.per_rule(n);
        engine.handles.per_rule(&engine.shared.metrics, &new);
        engine.matcher = new;
    }
}
