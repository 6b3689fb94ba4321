//! The out-of-order store of one stream direction: held bytes as sorted, disjoint runs.
//!
//! It is allocated only while a hole is open and freed as soon as the hole closes, so an idle stream
//! owns no heap. It knows nothing of budgets or sinks; the reassembler charges every byte it adds
//! or removes here to the worker's budget.

use crate::clock::Timestamp;

/// Contiguous held bytes starting at stream offset `start`.
#[derive(Debug)]
pub(super) struct Run {
    /// Stream offset of `data[0]`.
    pub(super) start: u64,
    /// When the oldest byte of this run arrived (packet time).
    pub(super) first_seen: Timestamp,
    /// Never empty.
    pub(super) data: Vec<u8>,
}

impl Run {
    /// One past the last offset of this run.
    pub(super) fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }
}

/// How a new segment met the bytes already held.
#[derive(Debug, Default)]
pub(super) struct Overlap {
    /// Bytes of the segment that were held already.
    pub(super) bytes: u64,
    /// Held runs whose overlapping bytes differ from the segment's.
    pub(super) conflicts: u64,
    /// Stream offset of the first differing byte.
    pub(super) first_conflict: Option<u64>,
}

/// Held runs of one stream.
#[derive(Debug)]
pub(super) struct OooStore {
    /// Invariant: sorted by `start`, disjoint and non-adjacent (touching runs are merged), none
    /// empty, never empty as a whole while the store exists.
    runs: Vec<Run>,
    /// Invariant: the sum of `runs[i].data.len()`.
    held: usize,
    /// Invariant: the least `first_seen` of `runs`, i.e. when the leading hole opened.
    oldest: Timestamp,
}

impl OooStore {
    /// A store holding one run.
    pub(super) fn new(start: u64, bytes: &[u8], now: Timestamp) -> OooStore {
        debug_assert!(!bytes.is_empty());
        let run = Run {
            start,
            first_seen: now,
            data: bytes.to_vec(),
        };
        OooStore {
            runs: vec![run],
            held: bytes.len(),
            oldest: now,
        }
    }

    /// Bytes held.
    pub(super) fn held(&self) -> usize {
        self.held
    }

    /// Runs held (each is preceded by a hole).
    pub(super) fn runs(&self) -> usize {
        self.runs.len()
    }

    /// When the leading hole opened: the arrival of the oldest byte held beyond it.
    pub(super) fn oldest(&self) -> Timestamp {
        self.oldest
    }

    /// Start of the first run, i.e. end of the leading hole.
    pub(super) fn first_start(&self) -> u64 {
        self.runs[0].start
    }

    /// Index of the first run ending after `offset`: the run containing `offset`, or else the first
    /// run after it (`runs()` if none).
    pub(super) fn find(&self, offset: u64) -> usize {
        self.runs.partition_point(|r| r.end() <= offset)
    }

    /// The run at `idx`, if any.
    pub(super) fn get(&self, idx: usize) -> Option<&Run> {
        self.runs.get(idx)
    }

    /// True if bytes starting at `start`, to be inserted at `idx` (from `find`), would extend the
    /// previous run instead of creating a new one.
    pub(super) fn extends_previous(&self, idx: usize, start: u64) -> bool {
        idx > 0 && self.runs[idx - 1].end() == start
    }

    /// Compares `bytes` (at stream offset `start`) with every held byte they overlap and, when
    /// `replace`, overwrites the held bytes with them (the last copy wins).
    pub(super) fn overlap(&mut self, start: u64, bytes: &[u8], replace: bool) -> Overlap {
        let end = start + bytes.len() as u64;
        let mut o = Overlap::default();
        let from = self.find(start);
        for run in &mut self.runs[from..] {
            if run.start >= end {
                break;
            }
            let lo = run.start.max(start);
            let hi = run.end().min(end);
            let held = &mut run.data[(lo - run.start) as usize..(hi - run.start) as usize];
            let new = &bytes[(lo - start) as usize..(hi - start) as usize];
            o.bytes += hi - lo;
            if held != new {
                o.conflicts += 1;
                if o.first_conflict.is_none() {
                    let differs = held.iter().zip(new).position(|(a, b)| a != b).unwrap_or(0);
                    o.first_conflict = Some(lo + differs as u64);
                }
                if replace {
                    held.copy_from_slice(new);
                }
            }
        }
        o
    }

    /// Holds `bytes` at `start`, where `idx` is `find(start)` and `start..start+len` lies entirely
    /// in a hole. Merges with the neighbours it touches.
    pub(super) fn insert(&mut self, idx: usize, start: u64, bytes: &[u8], now: Timestamp) {
        debug_assert!(!bytes.is_empty());
        debug_assert_eq!(idx, self.find(start));
        let end = start + bytes.len() as u64;
        debug_assert!(
            self.runs.get(idx).is_none_or(|r| r.start >= end),
            "insert over held bytes"
        );
        let at = if self.extends_previous(idx, start) {
            self.runs[idx - 1].data.extend_from_slice(bytes);
            idx - 1
        } else {
            self.runs.insert(
                idx,
                Run {
                    start,
                    first_seen: now,
                    data: bytes.to_vec(),
                },
            );
            idx
        };
        if self.runs.get(at + 1).is_some_and(|r| r.start == end) {
            let next = self.runs.remove(at + 1);
            let run = &mut self.runs[at];
            run.data.extend_from_slice(&next.data);
            run.first_seen = run.first_seen.min(next.first_seen);
        }
        self.held += bytes.len();
        self.oldest = self.oldest.min(now);
        self.check();
    }

    /// Removes and returns the first run.
    pub(super) fn pop_front(&mut self) -> Run {
        let run = self.runs.remove(0);
        self.held -= run.data.len();
        self.refresh_oldest();
        self.check();
        run
    }

    /// Drops every held byte at or after `offset` (beyond a FIN). Returns the bytes dropped.
    pub(super) fn truncate_from(&mut self, offset: u64) -> usize {
        let idx = self.find(offset);
        let mut freed = 0;
        if let Some(run) = self.runs.get_mut(idx) {
            if run.start < offset {
                let keep = (offset - run.start) as usize;
                freed += run.data.len() - keep;
                run.data.truncate(keep);
                run.data.shrink_to_fit();
            }
        }
        let first_dropped = if freed > 0 { idx + 1 } else { idx };
        freed += self.runs.drain(first_dropped..).map(|r| r.data.len()).sum::<usize>();
        self.held -= freed;
        self.refresh_oldest();
        freed
    }

    /// True when no run is left (the store should then be freed).
    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    fn refresh_oldest(&mut self) {
        if let Some(t) = self.runs.iter().map(|r| r.first_seen).min() {
            self.oldest = t;
        }
    }

    /// Checks the invariants (debug builds only).
    fn check(&self) {
        if cfg!(debug_assertions) {
            debug_assert_eq!(self.held, self.runs.iter().map(|r| r.data.len()).sum::<usize>());
            debug_assert!(self.runs.iter().all(|r| !r.data.is_empty()));
            debug_assert!(self.runs.windows(2).all(|w| w[0].end() < w[1].start));
        }
    }
}
