//! Capture threads → workers: each packet is decoded once, on its capture thread, and what a
//! worker needs of it (flow key, direction, TCP header, payload) is copied into a per-worker
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
use crossbeam_channel::{Receiver, Sender, TrySendError};
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
    /// Transport payload.
    pub payload: &'a [u8],
}

impl<'a> Queued<'a> {
    /// `pkt`, captured at `ts`, if exactly one of its ends is in `home`.
    pub fn of(pkt: &Packet<'a>, ts: Timestamp, home: &HomeNet) -> Option<Queued<'a>> {
        let egress = home.contains(&pkt.src);
        if egress == home.contains(&pkt.dst) {
            return None;
        }
        let (key, dir) = FlowKey::of_packet(pkt);
        Some(Queued {
            ts,
            key,
            dir,
            egress,
            transport: pkt.transport,
            payload: pkt.payload,
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
    batch_packets: usize,
    when_full: WhenFull,
    dropped_packets: u64,
    /// Per worker: the reader's sleep while that worker's queue is full (offline only).
    pace: Vec<Duration>,
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
pub fn channels(
    capture_threads: usize,
    workers: usize,
    queue_batches: usize,
    batch_packets: usize,
    when_full: WhenFull,
) -> (Vec<Dispatcher>, Vec<WorkerQueue>) {
    debug_assert!(capture_threads >= 1 && workers >= 1);
    // Every batch is in a queue, being processed, or being filled by a dispatcher: this many
    // can ever exist.
    let pool_cap = workers * (queue_batches + 1 + capture_threads);
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
            batch_packets,
            when_full,
            dropped_packets: 0,
            pace: vec![Duration::from_micros(100); workers],
        })
        .collect();
    (dispatchers, ends)
}

/// Offline reading's backpressure: sends `b`, waiting while the queue is full; gives it back if
/// the worker is gone. `pace` is how long the reader sleeps between looks at the queue, learned
/// per queue across calls.
///
/// Reading a file outruns the workers, so the queue is full nearly always. Parked in
/// `Sender::send`, the reader would be woken by the worker after every batch it takes: a futex
/// call on the worker's core per batch (4 % of the worker's time in a profile). Instead the
/// reader sleeps on its own core until the queue is half empty; the worker then never has a
/// sleeper to wake, and still has half a queue of work when the reader refills it.
///
/// A fixed 100 µs sleep cost the reader's core a context switch 20 times per refill on large
/// packets (`finish_task_switch`, 2.5 % of all samples). The pace grows while a look finds the
/// queue still over half full and shrinks when one finds it under a quarter full (the worker's
/// reserve ran low), so a refill takes one or two looks on any packet size.
fn send_when_room(q: &Sender<Batch>, mut b: Batch, pace: &mut Duration) -> Result<(), Batch> {
    let capacity = q.capacity().unwrap_or(0);
    let half = capacity / 2;
    loop {
        match q.try_send(b) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Disconnected(back)) => return Err(back),
            Err(TrySendError::Full(back)) => b = back,
        }
        // A worker that is gone leaves its queue full for good: try again at least every
        // ~10 ms, as only `try_send` can tell.
        let mut waited = Duration::ZERO;
        while q.len() > half && waited < GONE_CHECK {
            std::thread::sleep(*pace);
            waited += *pace;
            let len = q.len();
            if len > half {
                *pace = (*pace * 3 / 2).min(PACE_MAX);
            } else if len < capacity / 4 {
                *pace = (*pace / 2).max(PACE_MIN);
            }
        }
    }
}

/// Bounds of the reader's sleep while a queue is full (see [`send_when_room`]).
const PACE_MIN: Duration = Duration::from_micros(25);
const PACE_MAX: Duration = Duration::from_millis(2);
/// How often a reader waiting on a full queue asks whether its worker is gone.
const GONE_CHECK: Duration = Duration::from_millis(10);

impl Dispatcher {
    /// Queues a copy of `q` for `worker`.
    pub fn push(&mut self, worker: usize, q: &Queued<'_>) {
        let b = &mut self.current[worker];
        b.push(q);
        if b.len() >= self.batch_packets || b.data.len() >= BATCH_BYTES {
            self.send(worker);
        }
    }

    /// Sends every partly filled batch (read timeout, end of input).
    pub fn flush(&mut self) {
        for w in 0..self.current.len() {
            if !self.current[w].is_empty() {
                self.send(w);
            }
        }
    }

    /// The batch being filled for `worker`, replaced by an emptied one from the pool (or a new
    /// one while the pool is still filling up).
    fn take_current(&mut self, worker: usize) -> Batch {
        let fresh = self
            .pool
            .try_recv()
            .unwrap_or_else(|_| Batch::with_capacity(self.batch_packets));
        std::mem::replace(&mut self.current[worker], fresh)
    }

    fn send(&mut self, worker: usize) {
        let full = self.take_current(worker);
        let result = match self.when_full {
            WhenFull::Block => send_when_room(&self.queues[worker], full, &mut self.pace[worker]),
            WhenFull::Drop => self.queues[worker].try_send(full).map_err(|e| match e {
                TrySendError::Full(b) | TrySendError::Disconnected(b) => b,
            }),
        };
        if let Err(mut back) = result {
            self.dropped_packets += back.len() as u64;
            back.clear();
            self.current[worker] = back;
        }
    }

    /// Sends every worker the current time with whatever it has queued, so timers run on a quiet
    /// link (live capture only; never blocks).
    pub fn tick(&mut self, now: Timestamp) {
        for w in 0..self.current.len() {
            let mut b = self.take_current(w);
            b.tick = Some(now);
            if let Err(e) = self.queues[w].try_send(b) {
                let mut back = e.into_inner();
                self.dropped_packets += back.len() as u64;
                back.clear();
                self.current[w] = back;
            }
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
