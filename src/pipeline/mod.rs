//! Capture threads → workers: each packet is decoded once, on its capture thread, and what a
//! worker needs of it (flow key, direction, TCP header, payload; of the direction that is not
//! inspected, only the payloads [`AppDecoder::reads_peer_payload`] accepts) is copied into a per-worker
//! batch (one contiguous buffer for the payloads), sent over bounded `crossbeam-channel` queues;
//! the emptied batches come back through a pool, so steady state allocates nothing per packet.
//!
//! Live capture must never block: when a worker's queue is full the batch is dropped and
//! counted. Offline reading blocks instead (backpressure) and loses nothing.

mod reload;
mod worker;
pub use reload::{reload, LiveRules, ReloadError, Reloader};

pub use worker::{Worker, WorkerShared};

use crate::cli::HomeNet;
use crate::clock::Timestamp;
use crate::decode::{Decoder, LinkType, Packet, Transport};
use crate::flow::{Dir, FlowKey};
use crate::l7::AppDecoder;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::collections::VecDeque;
use std::time::Duration;

/// Payload bytes after which a batch is sent even if it holds fewer than `batch_packets` packets.
const BATCH_BYTES: usize = 256 * 1024;

/// A packet as a worker gets it: decoded, and crossing the home-net boundary (no other packet
/// can carry egress bytes).
#[derive(Debug, Clone, Copy)]
pub struct Queued<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// The flow.
    pub key: FlowKey,
    /// The packet's direction within `key`.
    pub dir: Dir,
    /// Sent from inside the home net.
    pub egress: bool,
    /// TCP header or UDP.
    pub transport: Transport,
    /// Transport payload; empty for an ingress payload the worker would not read (see
    /// [`AppDecoder::reads_peer_payload`]).
    pub payload: &'a [u8],
    /// The transport payload's length on the wire, which `payload` may fall short of.
    pub payload_len: u32,
}

impl<'a> Queued<'a> {
    /// `pkt`, captured at `ts`, if exactly one of its ends is in `home`.
    #[inline]
    pub fn of(pkt: &Packet<'a>, ts: Timestamp, home: &HomeNet) -> Option<Queued<'a>> {
        let egress = home.contains(&pkt.src);
        if egress == home.contains(&pkt.dst) {
            return None;
        }
        let (key, dir) = FlowKey::of_packet(pkt);
        let read = egress || AppDecoder::reads_peer_payload(pkt.payload);
        Some(Queued {
            ts,
            key,
            dir,
            egress,
            transport: pkt.transport,
            payload: if read { pkt.payload } else { &[] },
            payload_len: u32::try_from(pkt.payload.len()).unwrap_or(u32::MAX),
        })
    }
}

/// A queued packet in a batch: its payload is `data[start..start + len]`.
#[derive(Debug, Clone, Copy)]
struct PacketMeta {
    ts: Timestamp,
    key: FlowKey,
    dir: Dir,
    egress: bool,
    transport: Transport,
    start: u32,
    len: u32,
    payload_len: u32,
}

/// A batch of packets for one worker.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    pkts: Vec<PacketMeta>,
    /// Live capture on a quiet link: the current time, so the worker can run its timers.
    tick: Option<Timestamp>,
}

impl Batch {
    fn with_capacity(packets: usize) -> Batch {
        Batch {
            data: Vec::with_capacity(BATCH_BYTES + 65536),
            pkts: Vec::with_capacity(packets),
            tick: None,
        }
    }

    /// Appends `q`, with a copy of its payload.
    pub fn push(&mut self, q: &Queued<'_>) {
        let start = u32::try_from(self.data.len()).expect("batch buffers stay far below 4 GiB");
        self.data.extend_from_slice(q.payload);
        self.pkts.push(PacketMeta {
            ts: q.ts,
            key: q.key,
            dir: q.dir,
            egress: q.egress,
            transport: q.transport,
            start,
            len: q.payload.len() as u32,
            payload_len: q.payload_len,
        });
    }

    /// What a capture thread does with a frame, for code that feeds a worker directly (tests,
    /// benchmarks): decodes it and appends it if it crosses the home-net boundary.
    pub fn push_frame(&mut self, decoder: &mut Decoder, home: &HomeNet, ts: Timestamp, link: LinkType, frame: &[u8]) {
        if let Some(q) = decoder
            .decode(link, ts, frame)
            .ok()
            .and_then(|p| Queued::of(&p, ts, home))
        {
            self.push(&q);
        }
    }

    /// Packets in the batch.
    pub fn len(&self) -> usize {
        self.pkts.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.pkts.is_empty()
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.data.clear();
        self.pkts.clear();
        self.tick = None;
    }

    /// The packets, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = Queued<'_>> + '_ {
        self.pkts.iter().map(|m| Queued {
            ts: m.ts,
            key: m.key,
            dir: m.dir,
            egress: m.egress,
            transport: m.transport,
            payload: &self.data[m.start as usize..(m.start + m.len) as usize],
            payload_len: m.payload_len,
        })
    }
}

/// What to do when a worker's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait for the worker (offline: lose nothing).
    Block,
    /// Drop the batch and count it (live: never stall the capture).
    Drop,
}

/// The capture thread's end of the pipeline.
pub struct Dispatcher {
    queues: Vec<Sender<Batch>>,
    current: Vec<Batch>,
    pool: Receiver<Batch>,
    /// Emptied batches at hand: ones a queue refused, or that a gone worker cannot take.
    spare: Vec<Batch>,
    batch_packets: usize,
    /// `None` in live capture, which never waits.
    offline: Option<Offline>,
    dropped_packets: u64,
}

/// Offline reading's backpressure state.
///
/// The reader waits for a free batch, never for one worker's queue: a batch for a worker whose
/// queue is full waits here, in order, and the reader goes on with the packets of the others.
/// Waiting on one full queue left the other workers without packets whenever the next packet
/// was for the busy one.
struct Offline {
    /// Per worker: full batches waiting, in order, for room in its queue.
    waiting: Vec<VecDeque<Batch>>,
    /// Batches this dispatcher may still make. It never makes more than its budget, so the
    /// batches in queues, in workers' hands, waiting and being filled stay within it.
    unmade: usize,
    budget: usize,
    /// The reader's sleep while every batch is out, learned across waits.
    pace: Duration,
}

/// The worker's end: its queue and the way back to the pool.
pub struct WorkerQueue {
    /// Incoming batches.
    pub rx: Receiver<Batch>,
    /// Return emptied batches here.
    pub pool: Sender<Batch>,
}

/// Builds the queues for `workers` workers and one dispatcher per capture thread. Every
/// dispatcher can reach every worker: a flow's packets all arrive through one capture thread
/// (the kernel's fanout hash is symmetric) and go through that thread's dispatcher to one worker,
/// so their order is kept; the queues themselves are multi-producer.
///
/// Each worker's queue holds `queue_batches`. Offline, a dispatcher also keeps batches for a
/// worker whose queue is full, within a budget of `workers * (queue_batches + 2)` batches (a
/// queue's worth, one being filled and one being processed per worker), shared by all workers.
pub fn channels(
    capture_threads: usize,
    workers: usize,
    queue_batches: usize,
    batch_packets: usize,
    when_full: WhenFull,
) -> (Vec<Dispatcher>, Vec<WorkerQueue>) {
    debug_assert!(capture_threads >= 1 && workers >= 1);
    let budget = workers * (queue_batches + 2);
    // Every batch is in a queue, being processed, waiting or being filled by a dispatcher: this
    // many can ever exist, so the pool can take all of them back.
    let pool_cap = capture_threads * budget;
    let (pool_tx, pool_rx) = crossbeam_channel::bounded(pool_cap);
    let mut queues = Vec::with_capacity(workers);
    let mut ends = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = crossbeam_channel::bounded(queue_batches);
        queues.push(tx);
        ends.push(WorkerQueue {
            rx,
            pool: pool_tx.clone(),
        });
    }
    let dispatchers = (0..capture_threads)
        .map(|_| Dispatcher {
            queues: queues.clone(),
            current: (0..workers).map(|_| Batch::with_capacity(batch_packets)).collect(),
            pool: pool_rx.clone(),
            spare: Vec::new(),
            batch_packets,
            offline: (when_full == WhenFull::Block).then(|| Offline {
                waiting: (0..workers).map(|_| VecDeque::new()).collect(),
                unmade: budget - workers,
                budget,
                pace: PACE_MIN,
            }),
            dropped_packets: 0,
        })
        .collect();
    (dispatchers, ends)
}

/// Bounds of the reader's sleep while every batch is out (offline only).
///
/// Parked in a blocking receive, the reader would be woken by a worker after every batch it
/// returns: a futex call on the worker's core per batch (4 % of the worker's time in a
/// profile). The reader sleeps on its own core instead. The pace grows while a look finds no
/// batch back and shrinks when one finds a quarter of the budget back, so a refill takes one
/// or two looks whatever the packet size.
const PACE_MIN: Duration = Duration::from_micros(25);
const PACE_MAX: Duration = Duration::from_millis(2);

impl Dispatcher {
    /// Queues a copy of `q` for `worker`.
    pub fn push(&mut self, worker: usize, q: &Queued<'_>) {
        let b = &mut self.current[worker];
        b.push(q);
        if b.len() >= self.batch_packets || b.data.len() >= BATCH_BYTES {
            self.send(worker);
        }
    }

    /// Sends every partly filled batch (read timeout, end of input). Offline, returns once
    /// every batch is in a worker's queue (or its worker is gone).
    pub fn flush(&mut self) {
        for w in 0..self.current.len() {
            if !self.current[w].is_empty() {
                self.send(w);
            }
        }
        while self
            .offline
            .as_ref()
            .is_some_and(|o| o.waiting.iter().any(|q| !q.is_empty()))
        {
            self.move_waiting();
            self.sleep(|_| false);
        }
    }

    fn send(&mut self, worker: usize) {
        let full = std::mem::take(&mut self.current[worker]);
        self.dispatch(worker, full);
        self.current[worker] = self.fresh();
    }

    /// Sends every worker the current time with whatever it has queued, so timers run on a quiet
    /// link (live capture only; never blocks).
    pub fn tick(&mut self, now: Timestamp) {
        for w in 0..self.current.len() {
            self.current[w].tick = Some(now);
            self.send(w);
        }
    }

    /// Hands `b` to `worker`'s queue: live, or counted as dropped if the queue is full; offline,
    /// behind the batches already waiting for that worker.
    fn dispatch(&mut self, worker: usize, b: Batch) {
        match &mut self.offline {
            None => {
                if let Err(e) = self.queues[worker].try_send(b) {
                    self.drop_batch(e.into_inner());
                }
            }
            Some(o) => {
                o.waiting[worker].push_back(b);
                self.move_waiting();
            }
        }
    }

    /// Offline: moves waiting batches into queues that have room, in order.
    fn move_waiting(&mut self) {
        let Some(o) = &mut self.offline else { return };
        let mut gone = Vec::new();
        for (w, waiting) in o.waiting.iter_mut().enumerate() {
            while let Some(b) = waiting.pop_front() {
                match self.queues[w].try_send(b) {
                    Ok(()) => {}
                    Err(TrySendError::Full(b)) => {
                        waiting.push_front(b);
                        break;
                    }
                    Err(TrySendError::Disconnected(b)) => gone.push(b),
                }
            }
        }
        for b in gone {
            self.drop_batch(b);
        }
    }

    /// Counts `b`'s packets as dropped and keeps the emptied batch at hand.
    fn drop_batch(&mut self, mut b: Batch) {
        self.dropped_packets += b.len() as u64;
        b.clear();
        self.spare.push(b);
    }

    /// An empty batch: one at hand, one back from a worker, or a new one. Offline, once the
    /// budget is made, waits for a worker to give one back.
    fn fresh(&mut self) -> Batch {
        loop {
            if let Some(b) = self.spare.pop() {
                return b;
            }
            let all_gone = match self.pool.try_recv() {
                Ok(b) => return b,
                Err(e) => e.is_disconnected(),
            };
            match &mut self.offline {
                Some(o) if o.unmade == 0 && !all_gone => {}
                Some(o) => {
                    // Every worker gone: what is sent now is dropped and comes back as a spare,
                    // so this is made at most once more.
                    o.unmade = o.unmade.saturating_sub(1);
                    return Batch::with_capacity(self.batch_packets);
                }
                None => return Batch::with_capacity(self.batch_packets),
            }
            self.move_waiting();
            self.sleep(|pool| pool == 0);
        }
    }

    /// Offline: one sleep at the learned pace; `slow(batches back in the pool)` says whether
    /// that look came too early.
    fn sleep(&mut self, slow: impl Fn(usize) -> bool) {
        let Some(o) = &mut self.offline else { return };
        std::thread::sleep(o.pace);
        let back = self.pool.len();
        if slow(back) {
            o.pace = (o.pace * 3 / 2).min(PACE_MAX);
        } else if back >= o.budget / 4 {
            o.pace = (o.pace / 2).max(PACE_MIN);
        }
    }

    /// Packets dropped because a worker's queue was full (live) or gone.
    pub fn dropped_packets(&self) -> u64 {
        self.dropped_packets
    }

    /// Batches waiting in each worker's queue.
    pub fn queue_depths(&self) -> impl Iterator<Item = usize> + '_ {
        self.queues.iter().map(|q| q.len())
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.queues.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{Endpoint, Proto};
    use std::sync::Arc;

    /// A UDP packet at `micros` with `payload`, on a fixed flow whose direction is `dir`.
    fn q(micros: u64, payload: &[u8], dir: Dir) -> Queued<'_> {
        let ends = [
            Endpoint {
                ip: [10, 0, 0, 1].into(),
                port: 1000,
            },
            Endpoint {
                ip: [192, 0, 2, 1].into(),
                port: 53,
            },
        ];
        let (key, _) = FlowKey::new(Proto::Udp, ends[0], ends[1]);
        Queued {
            ts: Timestamp::from_micros(micros),
            key,
            dir,
            egress: dir == Dir::AtoB,
            transport: Transport::Udp,
            payload,
            payload_len: payload.len() as u32,
        }
    }

    #[test]
    fn ingress_payloads_are_queued_only_when_the_worker_reads_them() {
        let home = HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap();
        let mut decoder = Decoder::new(crate::decode::DefragConfig {
            memcap: 1 << 20,
            timeout: Duration::from_secs(30),
        });
        let frame = |from_inside: bool, payload: &[u8]| {
            let (inside, outside) = ("10.0.0.5:40000".parse().unwrap(), "192.0.2.80:80".parse().unwrap());
            let (src, dst) = if from_inside {
                (inside, outside)
            } else {
                (outside, inside)
            };
            crate::synth::tcp_frame(src, dst, 1, 1, crate::synth::Flags::ACK, payload, &[])
        };
        let sent: [(bool, &[u8]); 6] = [
            (true, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            (true, b"{\"id\":35202}"),
            (false, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            (false, b"{\"id\":35202}"),
            (false, b"\x17\x03\x03\x00\x20GET / HTTP/1.1"),
            // A request coming in: a response decoder learns method, host and path from it.
            (false, b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n"),
        ];
        let mut batch = Batch::default();
        for (i, (inside, p)) in sent.iter().enumerate() {
            let ts = Timestamp::from_micros(i as u64);
            batch.push_frame(&mut decoder, &home, ts, LinkType::Ethernet, &frame(*inside, p));
        }
        assert_eq!(batch.len(), sent.len());
        for ((inside, p), q) in sent.iter().zip(batch.iter()) {
            assert_eq!(q.egress, *inside);
            assert_eq!(q.payload_len as usize, p.len(), "the length on the wire is kept");
            let read = *inside || p.starts_with(b"GET ");
            assert_eq!(q.payload, if read { *p } else { &[][..] }, "from inside {inside}");
        }
    }

    #[test]
    fn batches_carry_packets_intact_and_come_back_through_the_pool() {
        let (mut d, ends) = channels(1, 2, 4, 3, WhenFull::Block);
        let mut d = d.remove(0);
        for i in 0..7u8 {
            let dir = if i % 2 == 0 { Dir::AtoB } else { Dir::BtoA };
            d.push((i % 2) as usize, &q(i as u64, &[i; 5], dir));
        }
        d.flush();
        let mut got = Vec::new();
        for (w, end) in ends.iter().enumerate() {
            while let Ok(b) = end.rx.try_recv() {
                for p in b.iter() {
                    assert_eq!(p.payload, &[p.ts.as_micros() as u8; 5]);
                    assert_eq!(p.dir == Dir::AtoB, p.egress);
                    assert_eq!(p.dir, if w == 0 { Dir::AtoB } else { Dir::BtoA }, "metadata kept");
                    got.push((w, p.ts.as_micros()));
                }
                let mut b = b;
                b.clear();
                end.pool.send(b).unwrap();
            }
        }
        got.sort();
        assert_eq!(got, vec![(0, 0), (0, 2), (0, 4), (0, 6), (1, 1), (1, 3), (1, 5)]);
        assert_eq!(d.dropped_packets(), 0);
    }

    #[test]
    fn live_mode_drops_and_counts_instead_of_blocking() {
        let (mut d, _ends) = channels(1, 1, 1, 2, WhenFull::Drop);
        let mut d = d.remove(0);
        for i in 0..10u64 {
            d.push(0, &q(i, &[0; 10], Dir::AtoB));
        }
        // Queue holds one batch of 2; the rest (4 batches of 2) were dropped.
        assert_eq!(d.dropped_packets(), 8);
    }

    #[test]
    fn offline_backpressure_loses_nothing_behind_a_slow_worker_and_ends_if_the_worker_is_gone() {
        let (mut d, mut ends) = channels(1, 1, 4, 2, WhenFull::Block);
        let mut d = d.remove(0);
        let end = ends.remove(0);
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Ok(mut b) = end.rx.recv() {
                // Slower than the sender: the queue fills and the sender waits.
                std::thread::sleep(std::time::Duration::from_micros(300));
                got.extend(b.iter().map(|p| p.ts.as_micros()));
                b.clear();
                let _ = end.pool.try_send(b);
                if got.len() == 100 {
                    break; // gone, with its queue about to fill
                }
            }
            got
        });
        for i in 0..100u64 {
            d.push(0, &q(i, &[1; 8], Dir::AtoB));
        }
        d.flush();
        assert_eq!(reader.join().unwrap(), (0..100).collect::<Vec<_>>());
        assert_eq!(d.dropped_packets(), 0);
        // The worker is gone: the queue fills and then sending gives up instead of waiting.
        for i in 0..20u64 {
            d.push(0, &q(i, &[1; 8], Dir::AtoB));
        }
        assert_eq!(d.dropped_packets(), 20);
    }

    #[test]
    fn offline_a_full_queue_holds_back_only_its_own_worker_within_the_batch_budget() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // Two workers, queues of 2, one packet per batch: a budget of 2 * (2 + 2) = 8 batches.
        let (mut d, ends) = channels(1, 2, 2, 1, WhenFull::Block);
        let mut d = d.remove(0);
        let (slow, fast) = (&ends[0], &ends[1]);
        let pushed = Arc::new(AtomicUsize::new(0));
        let reader = {
            let pushed = Arc::clone(&pushed);
            std::thread::spawn(move || {
                // Worker 0 takes nothing for now: its queue fills and its third packet waits.
                for i in 0..3u64 {
                    d.push(0, &q(i, &[0; 4], Dir::AtoB));
                }
                for i in 0..20u64 {
                    d.push(1, &q(i, &[1; 4], Dir::AtoB));
                }
                for i in 3..100u64 {
                    d.push(0, &q(i, &[0; 4], Dir::AtoB));
                    pushed.fetch_add(1, Ordering::SeqCst);
                }
                d.flush();
                d.dropped_packets()
            })
        };
        let take = |end: &WorkerQueue, got: &mut Vec<u64>| {
            let mut b = end.rx.recv_timeout(Duration::from_secs(10)).expect("a batch arrives");
            got.extend(b.iter().map(|p| p.ts.as_micros()));
            b.clear();
            // Once the reader has flushed and returned, the pool has no receiver left (its last
            // batches may still be in the queue): as a worker does, a batch nobody takes back
            // is simply dropped.
            let _ = end.pool.send(b);
        };
        // Worker 1 gets every packet meant for it while worker 0's queue stays full.
        let mut fast_got = Vec::new();
        while fast_got.len() < 20 {
            take(fast, &mut fast_got);
        }
        assert_eq!(fast_got, (0..20).collect::<Vec<_>>());
        // Behind a worker that takes nothing, the reader stops once the budget is out.
        std::thread::sleep(Duration::from_millis(50));
        let held = 3 + pushed.load(Ordering::SeqCst);
        assert!(
            held <= 8,
            "{held} packets held for a worker that took none: over the budget of 8"
        );
        let mut got = Vec::new();
        while got.len() < 100 {
            take(slow, &mut got);
        }
        assert_eq!(got, (0..100).collect::<Vec<_>>(), "in order, none lost");
        assert_eq!(reader.join().unwrap(), 0);
    }

    #[test]
    fn several_dispatchers_feed_the_same_workers_and_workers_end_when_all_are_gone() {
        let (ds, ends) = channels(3, 2, 8, 4, WhenFull::Block);
        assert_eq!(ds.len(), 3);
        let mut handles = Vec::new();
        for (c, mut d) in ds.into_iter().enumerate() {
            handles.push(std::thread::spawn(move || {
                // Each capture thread sends its own "flow" (worker c % 2) in order.
                for i in 0..40u64 {
                    d.push(c % 2, &q(c as u64 * 1000 + i, &[c as u8; 3], Dir::AtoB));
                }
                d.flush();
            }));
        }
        let readers: Vec<_> = ends
            .into_iter()
            .enumerate()
            .map(|(w, end)| {
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    // recv ends with an error only once every dispatcher (sender) is dropped.
                    while let Ok(mut b) = end.rx.recv() {
                        for p in b.iter() {
                            let c = p.payload[0];
                            assert_eq!(c as usize % 2, w, "packet reached the worker its sender chose");
                            got.push((c as usize, p.ts.as_micros() - u64::from(c) * 1000));
                        }
                        b.clear();
                        let _ = end.pool.try_send(b);
                    }
                    got
                })
            })
            .collect();
        let mut per_thread: Vec<Vec<u64>> = vec![Vec::new(); 3];
        for r in readers {
            for (c, i) in r.join().unwrap() {
                per_thread[c].push(i);
            }
        }
        for h in handles {
            h.join().unwrap();
        }
        for seq in per_thread {
            assert_eq!(seq, (0..40).collect::<Vec<_>>(), "each sender's order is kept");
        }
    }
}
