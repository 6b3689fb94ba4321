//! Per-direction scanning state: lazily opened Hyperscan stream, retained tail, pending hits.

use super::hs::HsStream;
use super::{
    digits, DigitBufs, DigitRunMember, DigitRuns, Finding, Hit, HitShape, Inner, KeywordSets, MatchCounters, Matcher,
    PatternKind, RuleFacts, RuleIdx, WorkerScratch, AFTER_BYTES, MAX_CONTEXT_AFTER, MAX_CONTEXT_WINDOW,
    MAX_MATCH_WIDTH,
};
use crate::pii::Confidence;
use crate::validate::{Candidate, Reject, Validator, BEFORE_BYTES};
use hyperscan::Matching;

/// Longest wait after a hit's end: its boundary bytes or its context window after it (plus the
/// byte beyond that decides a word boundary).
const WAIT_MAX: usize = if MAX_CONTEXT_AFTER + 1 > AFTER_BYTES {
    MAX_CONTEXT_AFTER + 1
} else {
    AFTER_BYTES
};
/// Bytes of the stream kept after each chunk: enough for the longest match, the largest context
/// window before it, the boundary bytes or context window after it (a pending hit ends at most
/// that far back), and slack.
pub const TAIL_LEN: usize = MAX_MATCH_WIDTH + MAX_CONTEXT_WINDOW + 1 + BEFORE_BYTES + WAIT_MAX + 4;
/// Hits awaiting their boundary bytes or their context after, per direction. Each pattern can
/// leave at most `AFTER_BYTES` boundary waits (one per end offset); valid values waiting for a
/// keyword after them are at least 14 bytes apart per rule, so at most three per rule fit in
/// the 32-byte window. This only overflows with many overlapping rules (counted).
pub const MAX_PENDING: usize = 32;
/// Largest stack view a validator and the keyword search get.
const VIEW_MAX: usize = MAX_CONTEXT_WINDOW + 1 + MAX_MATCH_WIDTH + WAIT_MAX;

/// Scanning state of one flow direction; holds no Hyperscan stream until the first byte.
///
/// Idle size is one pointer; `Default` allocates nothing.
#[derive(Default)]
pub struct DirScanner {
    active: Option<Box<Active>>,
}

impl std::fmt::Debug for DirScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirScanner")
            .field("active", &self.active.is_some())
            .field("memory", &self.memory())
            .finish()
    }
}

/// A hit waiting for more bytes (16 bytes, so the array stays small).
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    start: u64,
    rule: RuleIdx,
    /// `end - start`; at most `MAX_MATCH_WIDTH`.
    width: u8,
    /// Validated already, with no keyword before it: only the keyword after it is left to
    /// decide. The bytes before a hit and its boundary bytes do not change while it waits, so
    /// the search before it is not repeated (it was the costliest part of a timestamp's hit).
    no_keyword_before: bool,
    shape: HitShape,
}

/// Keyword occurrences remembered per direction for the prefilter.
pub(super) const KEYWORD_RING: usize = 8;

/// Where the most recent keyword occurrences of this Hyperscan stream ended, and since when
/// that record is complete. Answers "might a keyword of set S end in `(lo, hi]`?": "no" only
/// when it knows, so the exact search is skipped only when it would find nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeywordRing {
    /// Ascending end offsets (stream offsets of the current Hyperscan stream) and their sets.
    ends: [u64; KEYWORD_RING],
    sets: [KeywordSets; KEYWORD_RING],
    /// Invariant: `len <= KEYWORD_RING`.
    len: u8,
    /// Every keyword occurrence ending at or after this offset is in the ring.
    complete_from: u64,
}

impl KeywordRing {
    const EMPTY: KeywordRing = KeywordRing {
        ends: [0; KEYWORD_RING],
        sets: [0; KEYWORD_RING],
        len: 0,
        complete_from: 0,
    };

    /// Records an occurrence. Ends nearly always arrive in ascending order (Hyperscan reports by
    /// end offset); one that does not is put in its place.
    fn push(&mut self, end: u64, sets: KeywordSets) {
        if end < self.complete_from {
            return; // already forgotten territory: `maybe` answers true there anyway
        }
        let mut n = usize::from(self.len);
        let at = self.ends[..n].partition_point(|&e| e < end);
        if at < n && self.ends[at] == end {
            self.sets[at] |= sets;
            return;
        }
        let mut at = at;
        if n == KEYWORD_RING {
            // Forget the oldest (possibly this one): occurrences ending at or before it are no
            // longer all known.
            if at == 0 {
                self.complete_from = end + 1;
                return;
            }
            self.complete_from = self.ends[0] + 1;
            self.ends.copy_within(1.., 0);
            self.sets.copy_within(1.., 0);
            n -= 1;
            at -= 1;
        }
        self.ends.copy_within(at..n, at + 1);
        self.sets.copy_within(at..n, at + 1);
        self.ends[at] = end;
        self.sets[at] = sets;
        self.len = (n + 1) as u8;
    }

    /// False only if certainly no keyword of `set` ends in `(lo, hi]`. A rule outside the
    /// prefilter (`set` 0) always gets true.
    fn maybe(&self, set: KeywordSets, lo: u64, hi: u64) -> bool {
        if set == 0 || lo + 1 < self.complete_from {
            return true;
        }
        let n = usize::from(self.len);
        self.ends[..n]
            .iter()
            .zip(&self.sets[..n])
            .any(|(&e, &s)| s & set != 0 && lo < e && e <= hi)
    }
}

struct Active {
    /// Declared before `owner` so it is closed before the database it was opened from can be
    /// freed (fields drop in declaration order).
    stream: HsStream,
    /// The matcher whose database opened `stream`. Holding it keeps that database alive for as
    /// long as the stream is open, even after a rule reload replaced it everywhere else.
    owner: Matcher,
    /// Bytes of Hyperscan state behind `stream`.
    stream_size: u32,
    /// Scanner offset of the Hyperscan stream's offset 0 (bytes fed before the last gap).
    base: u64,
    /// Bytes scanned by the current Hyperscan stream.
    pos: u64,
    /// Invariant: `tail_len <= TAIL_LEN` and `tail_len <= pos`; `tail[..tail_len]` are the
    /// stream bytes at `pos - tail_len .. pos`.
    tail_len: u16,
    /// Invariant: `n_pending <= MAX_PENDING`; each pending hit ends at or after
    /// `pos + 1 - WAIT_MAX`.
    n_pending: u8,
    /// Digits that end the bytes scanned by the current Hyperscan stream (the digit-run scan's
    /// carry; like Hyperscan it starts from nothing after a gap).
    digit_run: u32,
    tail: [u8; TAIL_LEN],
    pending: [Pending; MAX_PENDING],
    keywords: KeywordRing,
}

/// Tail ++ chunk, addressed by Hyperscan stream offset.
struct View<'a> {
    tail: &'a [u8],
    chunk: &'a [u8],
    /// Stream offset of `chunk[0]` (= end of `tail`).
    pos: u64,
}

impl View<'_> {
    fn first(&self) -> u64 {
        self.pos - self.tail.len() as u64
    }
    fn end(&self) -> u64 {
        self.pos + self.chunk.len() as u64
    }
    /// Stream bytes `lo..hi` (inside the view, at most `VIEW_MAX` long): borrowed when they lie
    /// in the tail or in the chunk alone, else copied into `buf`. Forced inline: it runs per hit
    /// and per digit run, and as a call it cost 2.5 % of the data work (callgrind).
    #[inline(always)]
    fn window<'b>(&'b self, lo: u64, hi: u64, buf: &'b mut [u8; VIEW_MAX]) -> &'b [u8] {
        match self.borrowed(lo, hi) {
            Some(bytes) => bytes,
            None => {
                let len = (hi - lo) as usize;
                self.copy(lo, hi, &mut buf[..len]);
                &buf[..len]
            }
        }
    }

    /// Stream bytes `lo..hi` (inside the view) when they lie in the tail or in the chunk alone;
    /// `None` when they straddle the two.
    #[inline(always)]
    fn borrowed(&self, lo: u64, hi: u64) -> Option<&[u8]> {
        debug_assert!(self.first() <= lo && lo <= hi && hi <= self.end());
        if lo >= self.pos {
            Some(&self.chunk[(lo - self.pos) as usize..(hi - self.pos) as usize])
        } else if hi <= self.pos {
            Some(&self.tail[(lo - self.first()) as usize..(hi - self.first()) as usize])
        } else {
            None
        }
    }

    /// The validator's verdict on a hit of the digit-run scan, told without assembling its
    /// candidate, when the hit lies in the tail or in the chunk alone; `None` when that is not
    /// known (a candidate then decides). The candidate would hold the byte before the hit
    /// exactly when the hit starts after the view does, and the byte after it exactly when the
    /// bytes seen go beyond its end (`seen`). `h` lies inside the view.
    #[inline(always)]
    fn digits_verdict(
        &self,
        h: Hit,
        digit_before: bool,
        seen: u64,
        validator: crate::validate::Validator,
        inner: &Inner,
    ) -> Option<Result<(), crate::validate::Reject>> {
        let hit = self.borrowed(h.start, h.end)?;
        let before = digit_before && h.start > self.first();
        // One byte never straddles the tail and the chunk.
        let after = h.end < seen && self.borrowed(h.end, h.end + 1).is_some_and(|b| b[0].is_ascii_digit());
        validator.digits_verdict(hit, before || after, inner.rules.schemes())
    }

    /// Copies stream bytes `lo..hi` (inside the view) into `dst`.
    fn copy(&self, lo: u64, hi: u64, dst: &mut [u8]) {
        debug_assert!(self.first() <= lo && lo <= hi && hi <= self.end());
        let mut n = 0;
        if lo < self.pos {
            let a = (lo - self.first()) as usize;
            let b = (hi.min(self.pos) - self.first()) as usize;
            dst[..b - a].copy_from_slice(&self.tail[a..b]);
            n = b - a;
        }
        if hi > self.pos {
            let a = (lo.max(self.pos) - self.pos) as usize;
            let b = (hi - self.pos) as usize;
            dst[n..n + b - a].copy_from_slice(&self.chunk[a..b]);
        }
    }
}

impl DirScanner {
    /// Feeds the next in-order bytes of the stream.
    pub fn feed(&mut self, m: &Matcher, w: &mut WorkerScratch, data: &[u8], out: &mut dyn FnMut(Finding)) {
        if data.is_empty() {
            return;
        }
        let Some(a) = self.current(m, w) else { return };
        w.counters.bytes += data.len() as u64;
        a.scan(&m.inner, w, data);
        a.resolve(&m.inner, w, data, false, out);
    }

    /// The stream's state for matcher `m`: opened on the first byte, switched over (see
    /// [`Active::switch`]) when it was opened by another matcher, i.e. the rules were reloaded.
    /// `None` when Hyperscan cannot allocate a stream or `w` is not `m`'s (both counted).
    fn current(&mut self, m: &Matcher, w: &mut WorkerScratch) -> Option<&mut Active> {
        if w.owner != m.id() {
            debug_assert!(false, "WorkerScratch used with a different Matcher");
            w.counters.scan_errors += 1;
            return None;
        }
        let opened = match self.active.take() {
            Some(a) if a.owner.id() == m.id() => return Some(self.active.insert(a)),
            Some(old) => Active::switch(old, m, w),
            None => Active::open(m, 0),
        };
        match opened {
            Ok(a) => {
                w.counters.streams_opened += 1;
                Some(self.active.insert(a))
            }
            Err(_) => {
                w.counters.scan_errors += 1;
                None
            }
        }
    }

    /// Bytes are missing here and never coming; matches cannot span this point.
    pub fn gap(&mut self, m: &Matcher, w: &mut WorkerScratch, out: &mut dyn FnMut(Finding)) {
        if self.active.is_some() {
            if let Some(a) = self.current(m, w) {
                a.end(&m.inner, w, out);
            }
        }
    }

    /// End of stream: report what is pending and release the Hyperscan stream.
    pub fn finish(&mut self, m: &Matcher, w: &mut WorkerScratch, out: &mut dyn FnMut(Finding)) {
        self.gap(m, w, out);
        self.active = None;
    }

    /// Like `gap`, and restarts offsets at 0 (one datagram done; the stream is kept for reuse).
    pub fn reset(&mut self, m: &Matcher, w: &mut WorkerScratch, out: &mut dyn FnMut(Finding)) {
        self.gap(m, w, out);
        if let Some(a) = self.active.as_mut() {
            a.base = 0;
        }
    }

    /// Bytes fed so far: the offset the next fed byte will have in findings.
    pub fn fed(&self) -> u64 {
        self.active.as_ref().map_or(0, |a| a.base + a.pos)
    }

    /// True when some hit waits for the bytes after it before it can be validated.
    pub fn has_pending(&self) -> bool {
        self.active.as_ref().is_some_and(|a| a.n_pending > 0)
    }

    /// The stream went quiet: decide the waiting hits now, treating the current end as a
    /// boundary, and keep the stream open. Without this a value that ends a segment would only be
    /// reported when the next segment or the end of the flow arrives, which on an idle keep-alive
    /// connection can be minutes later.
    pub fn settle(&mut self, m: &Matcher, w: &mut WorkerScratch, out: &mut dyn FnMut(Finding)) {
        if self.has_pending() {
            if let Some(a) = self.current(m, w) {
                w.hits.clear();
                a.resolve(&m.inner, w, &[], true, out);
            }
        }
    }

    /// Heap bytes held (Hyperscan stream state and the tail), for memory accounting.
    pub fn memory(&self) -> usize {
        self.active
            .as_ref()
            .map_or(0, |a| std::mem::size_of::<Active>() + a.stream_size as usize)
    }
}

impl Active {
    fn open(m: &Matcher, base: u64) -> Result<Box<Active>, String> {
        Ok(Box::new(Active {
            stream: HsStream::open(&m.inner.db)?,
            owner: m.clone(),
            stream_size: m.inner.stream_size.try_into().unwrap_or(u32::MAX),
            base,
            pos: 0,
            tail_len: 0,
            n_pending: 0,
            digit_run: 0,
            tail: [0; TAIL_LEN],
            pending: [Pending::default(); MAX_PENDING],
            keywords: KeywordRing::EMPTY,
        }))
    }

    /// Moves a stream opened by an older matcher (rules reloaded) onto `m` without losing or
    /// repeating a value. Let S be the bytes fed so far (the switch point):
    ///
    /// - Every hit that ended at or before S and was already decided stays the old stream's.
    /// - A new Hyperscan stream is opened at S minus the retained tail, and the tail is scanned
    ///   again with `m`'s patterns. Its hits all end at or before S, so they are dropped, except
    ///   those the old stream still held pending (same rule id and span): they stay pending in the
    ///   new stream and are decided by `m`'s version of their rule when the next bytes arrive,
    ///   exactly as if no reload had happened. A rule the reload removed cannot re-find its hit.
    /// - Hits the new stream finds in later data end after S and are reported as usual; a value
    ///   straddling S is found there once, since the tail holds more than the widest match.
    ///
    /// Offsets stay monotonic: the new stream's offset 0 is scanner offset S minus the tail. The
    /// old Hyperscan stream is closed without reporting (its end-of-data matches are not needed:
    /// the new stream sees the same bytes and continues past them).
    fn switch(old: Box<Active>, m: &Matcher, w: &mut WorkerScratch) -> Result<Box<Active>, String> {
        let tail = &old.tail[..usize::from(old.tail_len)];
        let mut a = Active::open(m, old.base + old.pos - tail.len() as u64)?;
        if !tail.is_empty() {
            a.find_hits(&m.inner, w, Some(tail), false);
            // Old pending offsets are in the old stream's numbering; `shift` maps them.
            let shift = old.pos - tail.len() as u64;
            let olds = &old.pending[..usize::from(old.n_pending)];
            for h in w.hits.iter() {
                let was_pending = olds.iter().any(|p| {
                    p.start == h.start + shift
                        && u64::from(p.width) == h.end - h.start
                        && old.owner.rule(p.rule).id == m.rule(h.rule).id
                });
                if was_pending && usize::from(a.n_pending) < MAX_PENDING {
                    w.counters.hits[h.rule as usize] += 1;
                    a.pending[usize::from(a.n_pending)] = Pending {
                        start: h.start,
                        rule: h.rule,
                        width: (h.end - h.start) as u8,
                        // The new rule's keywords may differ: search before it again.
                        no_keyword_before: false,
                        shape: h.shape,
                    };
                    a.n_pending += 1;
                }
            }
            w.hits.clear();
            a.push_tail(tail);
        }
        debug_assert_eq!(a.base + a.pos, old.base + old.pos);
        Ok(a)
    }

    /// Finds the hits in `data` (Hyperscan and the digit-run scan), leaving them in `w.hits`.
    fn scan(&mut self, inner: &Inner, w: &mut WorkerScratch, data: &[u8]) {
        self.find_hits(inner, w, Some(data), true);
    }

    /// Hyperscan and the digit-run scan over `data`, or with `None` the end of the current run
    /// (end-of-data matches, then the stream is reset); hits land in `w.hits` in order of their
    /// end, and are counted if `count`.
    fn find_hits(&mut self, inner: &Inner, w: &mut WorkerScratch, data: Option<&[u8]>, count: bool) {
        let WorkerScratch {
            scratch,
            hits,
            digit_bufs,
            counters,
            quiet_below,
            ..
        } = w;
        hits.clear();
        let kinds = &inner.pattern_kind;
        // Keyword occurrences go straight into the ring: every one ending in the bytes seen so
        // far is known before any hit is decided (a pending hit's window after it may end here).
        let keywords = &mut self.keywords;
        let on_match = |id: u32, from: u64, to: u64, _flags: u32| {
            let hit = |rule, start| Hit {
                rule,
                shape: HitShape::Unknown,
                start,
                end: to,
            };
            match kinds[id as usize] {
                PatternKind::Som(rule) => hits.push(hit(rule, from)),
                PatternKind::Fixed(rule, width) => hits.push(hit(rule, to - u64::from(width))),
                PatternKind::Keyword(sets) => keywords.push(to, sets),
                PatternKind::Placeholder => {}
            }
            Matching::Continue
        };
        let r = match data {
            Some(d) => self.stream.scan(d, scratch, on_match),
            None => self.stream.reset(scratch, on_match),
        };
        if r.is_err() {
            counters.scan_errors += 1;
        }
        match data {
            Some(d) if !inner.digit_runs.members.is_empty() => {
                // Decided here, as `resolve` would decide it at once (every keyword ending in
                // this chunk is in the ring): most digit-run hits are timestamps, rejected or
                // quiet, and never become a `Hit` to store and go over again. Not when the
                // bytes are a tail scanned again after a reload (`count` false): the old
                // stream decided those hits already.
                let decide = count.then_some(ScanDecide {
                    keywords: &self.keywords,
                    quiet_below: *quiet_below,
                    schemes: inner.rules.schemes(),
                });
                digit_run_hits(
                    d,
                    self.pos,
                    &mut self.digit_run,
                    &inner.digit_runs,
                    (hits, digit_bufs),
                    counters,
                    decide,
                );
            }
            Some(_) => {}
            None => self.digit_run = 0,
        }
        if count {
            for h in hits.iter() {
                counters.hits[h.rule as usize] += 1;
            }
        }
    }

    /// Collects end-of-data matches, resolves everything pending with the end counting as a
    /// boundary, and resets the Hyperscan stream and the tail.
    fn end(&mut self, inner: &Inner, w: &mut WorkerScratch, out: &mut dyn FnMut(Finding)) {
        self.find_hits(inner, w, None, true);
        self.resolve(inner, w, &[], true, out);
        self.base += self.pos;
        self.pos = 0;
        self.tail_len = 0;
        self.keywords = KeywordRing::EMPTY;
        debug_assert_eq!(self.n_pending, 0);
    }

    /// Validates pending hits and `w.hits` whose boundary bytes are known (all of them if
    /// `eos`), keeps the rest pending, then appends `chunk` to the tail.
    fn resolve(&mut self, inner: &Inner, w: &mut WorkerScratch, chunk: &[u8], eos: bool, out: &mut dyn FnMut(Finding)) {
        let view = View {
            tail: &self.tail[..usize::from(self.tail_len)],
            chunk,
            pos: self.pos,
        };
        let seen = view.end();
        let keywords = &self.keywords;
        let n_old = usize::from(self.n_pending);
        self.n_pending = 0;
        w.emitted.clear();
        let WorkerScratch {
            hits,
            counters,
            emitted,
            quiet_below,
            ..
        } = w;
        // Only for windows that straddle the tail and the chunk; the rest are borrowed in place.
        let mut buf = [0u8; VIEW_MAX];
        // The pending hits first, then this call's, in one loop. Pending hits are kept in place:
        // the one at `k` is read before anything is written, and every hit decided before it
        // left at most one entry, so writes land at `n_pending <= k` (no copy of the array).
        for k in 0..n_old + hits.len() {
            let (h, no_keyword_before) = match self.pending[..n_old].get(k) {
                Some(p) => {
                    let h = Hit {
                        rule: p.rule,
                        shape: p.shape,
                        start: p.start,
                        end: p.start + u64::from(p.width),
                    };
                    (h, p.no_keyword_before)
                }
                None => (hits[k - n_old], false),
            };
            debug_assert!(k >= n_old || usize::from(self.n_pending) <= k);
            let mut pend = |h: Hit, no_keyword_before: bool, counters: &mut super::MatchCounters| {
                if usize::from(self.n_pending) < MAX_PENDING && h.end - h.start <= MAX_MATCH_WIDTH as u64 {
                    self.pending[usize::from(self.n_pending)] = Pending {
                        start: h.start,
                        rule: h.rule,
                        width: (h.end - h.start) as u8,
                        no_keyword_before,
                        shape: h.shape,
                    };
                    self.n_pending += 1;
                } else {
                    counters.pending_overflow += 1;
                }
            };
            if !eos && h.end + AFTER_BYTES as u64 > seen {
                pend(h, false, counters);
                continue;
            }
            if h.start < view.first() || h.end > seen || h.end - h.start > MAX_MATCH_WIDTH as u64 {
                counters.window_overflow += 1;
                continue;
            }
            let facts = &inner.facts[h.rule as usize];
            let after_wait = u64::from(facts.after_wait);
            let verdict = |digit_before| view.digits_verdict(h, digit_before, seen, facts.validator, inner);
            match quick(
                h,
                facts,
                *quiet_below,
                no_keyword_before,
                keywords,
                (seen, eos),
                verdict,
            ) {
                Quick::Rejected(reason) => {
                    counters.rejected[reason.index()] += 1;
                    continue;
                }
                Quick::Quiet => {
                    if !duplicate(emitted, h) {
                        emitted.push((h.rule, h.start));
                        counters.count_quiet(h.rule, facts.confidence);
                    }
                    continue;
                }
                Quick::Wait => {
                    pend(h, true, counters);
                    continue;
                }
                Quick::Slow => {}
            }
            let lo = h.start.saturating_sub(u64::from(facts.before_needed)).max(view.first());
            let hi = (h.end + after_wait.max(AFTER_BYTES as u64)).min(seen);
            let bytes = view.window(lo, hi, &mut buf);
            let start = (h.start - lo) as usize;
            let end = (h.end - lo) as usize;
            let Some(c) = Candidate::new(bytes, start, end) else {
                counters.window_overflow += 1;
                continue;
            };
            let value = match facts.validator.run(&c, inner.rules.schemes()) {
                Ok(v) => v,
                Err(reason) => {
                    counters.rejected[reason.index()] += 1;
                    continue;
                }
            };
            let mut keyword = false;
            if facts.raisable {
                // The exact search, only where the prefilter cannot rule a keyword out.
                let exact = || {
                    inner.rules.rules()[h.rule as usize]
                        .context
                        .as_ref()
                        .map(|c| c.keywords())
                };
                let set = facts.keyword_set;
                keyword = !no_keyword_before
                    && keywords.maybe(set, h.start.saturating_sub(u64::from(facts.window)), h.start)
                    && exact().is_some_and(|k| k.before(&c, usize::from(facts.window)));
                if !keyword && after_wait > 0 {
                    if !eos && h.end + after_wait > seen {
                        // Valid, but a keyword may still follow: decide when the window is in.
                        pend(h, true, counters);
                        continue;
                    }
                    keyword = keywords.maybe(set, h.end, h.end + u64::from(facts.window_after))
                        && exact().is_some_and(|k| k.after(&c, usize::from(facts.window_after)));
                }
            }
            let confidence = if keyword {
                raise(facts.confidence)
            } else {
                facts.confidence
            };
            if duplicate(emitted, h) {
                continue;
            }
            emitted.push((h.rule, h.start));
            if quiet_below.is_some_and(|min| confidence < min) {
                counters.count_quiet(h.rule, confidence);
                continue;
            }
            counters.findings[h.rule as usize] += 1;
            counters.by_confidence[confidence as usize] += 1;
            out(Finding {
                rule: h.rule,
                value,
                offset: self.base + h.start,
                confidence,
                keyword,
            });
        }
        self.push_tail(chunk);
    }

    fn push_tail(&mut self, chunk: &[u8]) {
        let tl = usize::from(self.tail_len);
        if chunk.len() >= TAIL_LEN {
            self.tail.copy_from_slice(&chunk[chunk.len() - TAIL_LEN..]);
            self.tail_len = TAIL_LEN as u16;
        } else {
            let keep = tl.min(TAIL_LEN - chunk.len());
            self.tail.copy_within(tl - keep..tl, 0);
            self.tail[keep..keep + chunk.len()].copy_from_slice(chunk);
            self.tail_len = (keep + chunk.len()) as u16;
        }
        self.pos += chunk.len() as u64;
        debug_assert!(usize::from(self.tail_len) <= TAIL_LEN && u64::from(self.tail_len) <= self.pos);
    }
}

/// Whether a finding of `h`'s rule at `h`'s start was already emitted: two patterns of one rule
/// can report the same span, and a value is reported once per rule. Hits are decided in order
/// of their end and a match is at most `MAX_MATCH_WIDTH` wide, so a finding with this start is
/// among the last ones whose start is at most that far back (a large decoded body can report
/// thousands per call).
#[inline]
fn duplicate(emitted: &[(RuleIdx, u64)], h: Hit) -> bool {
    emitted
        .iter()
        .rev()
        .take_while(|&&(_, s)| s + MAX_MATCH_WIDTH as u64 >= h.start)
        .any(|&(r, s)| r == h.rule && s == h.start)
}

/// What a hit's bytes alone decide, without its candidate or value.
enum Quick {
    /// Its validator rejects it.
    Rejected(crate::validate::Reject),
    /// Valid, below the quiet minimum, and the keyword prefilter rules out a keyword on both
    /// sides: counted, never reported.
    Quiet,
    /// Valid and quiet so far, but the window after it is not all in yet.
    Wait,
    /// Not known this way: the candidate decides.
    Slow,
}

/// The fast path for a hit of the digit-run scan, the same steps as the candidate's path in
/// [`Active::resolve`] where it applies: check digits reject nearly every random run, and
/// nearly every bare CNIC is a quiet timestamp. Any other hit is [`Quick::Slow`] and pays for
/// both. `verdict(digit_before)` is the validator's verdict from the hit's bytes (see
/// `Validator::digits_verdict`); `quiet_below` is the worker's (see
/// [`WorkerScratch::set_quiet_below`]); the stream's bytes are seen up to `seen`, its end is `eos`.
#[inline(always)]
fn quick(
    h: Hit,
    facts: &RuleFacts,
    quiet_below: Option<Confidence>,
    no_keyword_before: bool,
    keywords: &KeywordRing,
    (seen, eos): (u64, bool),
    verdict: impl FnOnce(bool) -> Option<Result<(), crate::validate::Reject>>,
) -> Quick {
    let HitShape::Digits { digit_before } = h.shape else {
        return Quick::Slow;
    };
    // Quiet unless a keyword raises it (or its location, which the caller rules out).
    let quiet = quiet_below.is_some_and(|min| facts.confidence < min);
    if !quiet && !facts.validator.has_check_digits() {
        return Quick::Slow;
    }
    match verdict(digit_before) {
        Some(Err(reason)) => Quick::Rejected(reason),
        Some(Ok(())) if quiet => {
            let set = facts.keyword_set;
            let before = facts.raisable
                && !no_keyword_before
                && keywords.maybe(set, h.start.saturating_sub(u64::from(facts.window)), h.start);
            if before {
                return Quick::Slow;
            }
            let after_wait = u64::from(facts.after_wait);
            if after_wait > 0 && !eos && h.end + after_wait > seen {
                return Quick::Wait;
            }
            if after_wait > 0 && keywords.maybe(set, h.end, h.end + u64::from(facts.window_after)) {
                Quick::Slow
            } else {
                Quick::Quiet
            }
        }
        _ => Quick::Slow,
    }
}

/// Bytes of a chunk whose digit-run ends are gathered at once: bounds the `(end, run)` buffer
/// whatever the chunk's size.
pub(super) const RUN_PIECE: usize = 8 * 1024;

/// The verdict of a member whose hits are not decided while scanning.
type NoVerdict = fn(&[u8], bool) -> Option<Result<(), Reject>>;

/// What deciding a digit-run hit while scanning needs besides its bytes.
struct ScanDecide<'a> {
    /// Every keyword ending in the bytes seen so far, this chunk's included.
    keywords: &'a KeywordRing,
    quiet_below: Option<Confidence>,
    schemes: &'a crate::validate::CardSchemes,
}

/// Adds the hits of the digit-run members ending in `chunk` (at stream offset `pos`) to `hits`,
/// keeping them in order of their end (at one end, Hyperscan's hits first, then the members in
/// their order), except those decided here when `decide` is given (see [`member_hits`]).
///
/// Member by member over a piece's run ends rather than run end by run end over the members:
/// a member's facts and its validator's dispatch are then loop invariants, and its counts are
/// added once per piece (on the cleartext benchmark a run end cost about 290 instructions the
/// other way round).
fn digit_run_hits(
    chunk: &[u8],
    pos: u64,
    carry: &mut u32,
    runs: &DigitRuns,
    (hits, DigitBufs { ends, found }): (&mut Vec<Hit>, &mut DigitBufs),
    counters: &mut MatchCounters,
    decide: Option<ScanDecide<'_>>,
) {
    found.clear();
    for (p, piece) in chunk.chunks(RUN_PIECE).enumerate() {
        ends.clear();
        digits::run_ends(piece, u32::from(runs.shortest), carry, |end, run| {
            ends.push((end as u32, run))
        });
        if ends.is_empty() {
            continue;
        }
        let from = found.len();
        let base = p * RUN_PIECE;
        for (k, member) in runs.members.iter().enumerate() {
            let at = (k as u32, member);
            let sink = (&mut *found, &mut *counters);
            // One monomorphic loop per validator: its verdict inlines into the loop.
            match (&decide, member.facts.validator) {
                (None, _) | (Some(_), Validator::Iban) => {
                    member_hits(at, ends, (chunk, pos, base), None::<(_, NoVerdict)>, sink)
                }
                (Some(s), v @ Validator::Card) => {
                    let verdict = |hit: &[u8], touches| v.digits_verdict(hit, touches, s.schemes);
                    member_hits(at, ends, (chunk, pos, base), Some((s, verdict)), sink)
                }
                (Some(s), v @ Validator::Cnic) => {
                    let verdict = |hit: &[u8], touches| v.digits_verdict(hit, touches, s.schemes);
                    member_hits(at, ends, (chunk, pos, base), Some((s, verdict)), sink)
                }
            }
        }
        // Each member's hits are in order of their end; at one end, in member order. Unstable
        // sorting never allocates, and the keys are distinct.
        found[from..].sort_unstable_by_key(|&(k, h)| (h.end, k));
    }
    if found.is_empty() {
        return;
    }
    // Merged from the back into `hits` grown by the digit-run hits: no allocation once both
    // buffers have grown. At one end the digit-run hit goes after Hyperscan's.
    let (n, m) = (hits.len(), found.len());
    hits.resize(
        n + m,
        Hit {
            rule: 0,
            shape: HitShape::Unknown,
            start: 0,
            end: 0,
        },
    );
    let (mut i, mut j) = (n, m);
    for k in (0..n + m).rev() {
        if j == 0 {
            break;
        }
        if i > 0 && hits[i - 1].end > found[j - 1].1.end {
            hits[k] = hits[i - 1];
            i -= 1;
        } else {
            hits[k] = found[j - 1].1;
            j -= 1;
        }
    }
    debug_assert!(hits.windows(2).all(|w| w[0].end <= w[1].end), "hits out of order");
}

/// One member's hits at the run ends `ends` (`(end, run)`, ends relative to byte `base` of
/// `chunk`, which starts at stream offset `pos`), pushed to `found` with index `k`, except
/// those `decide` settles: a hit inside the chunk with its boundary bytes after it, which
/// [`quick`] finds rejected, or quiet in a rule with no other pattern (`resolve` counts a
/// value once per rule and start; with no other pattern nothing else can report it). Those
/// are counted exactly where `resolve` would have counted them, and never stored.
///
/// `verdict(hit, touches_digit)` is the member's `Validator::digits_verdict`.
#[inline(always)]
fn member_hits(
    (k, member): (u32, &DigitRunMember),
    ends: &[(u32, u32)],
    (chunk, pos, base): (&[u8], u64, usize),
    decide: Option<(&ScanDecide<'_>, impl Fn(&[u8], bool) -> Option<Result<(), Reject>>)>,
    (found, counters): (&mut Vec<(u32, Hit)>, &mut MatchCounters),
) {
    let (m, n) = (u32::from(member.m), u32::from(member.n));
    let facts = &member.facts;
    let seen = pos + chunk.len() as u64;
    let (mut decided, mut quiet) = (0u64, 0u64);
    let mut rejected = [0u64; Reject::COUNT];
    for &(end, run) in ends {
        let width = run.min(n);
        if width < m {
            continue;
        }
        let e = base + end as usize;
        let w = width as usize;
        let h = Hit {
            rule: member.rule,
            shape: HitShape::Digits {
                digit_before: run > width,
            },
            start: (pos + e as u64) - u64::from(width),
            end: pos + e as u64,
        };
        // Its bytes and the byte after it are read straight from the chunk, and the byte
        // before it is a digit exactly when the scan says so.
        if let Some((s, verdict)) = &decide {
            if w <= e && e + AFTER_BYTES <= chunk.len() {
                let v = |digit_before: bool| verdict(&chunk[e - w..e], digit_before || chunk[e].is_ascii_digit());
                match quick(h, facts, s.quiet_below, false, s.keywords, (seen, false), v) {
                    Quick::Rejected(reason) => {
                        rejected[reason.index()] += 1;
                        decided += 1;
                        continue;
                    }
                    Quick::Quiet if member.alone => {
                        quiet += 1;
                        decided += 1;
                        continue;
                    }
                    _ => {}
                }
            }
        }
        found.push((k, h));
    }
    if decided > 0 {
        counters.hits[member.rule as usize] += decided;
        for (total, n) in counters.rejected.iter_mut().zip(rejected) {
            *total += n;
        }
        counters.count_quiet_n(member.rule, facts.confidence, quiet);
    }
}

/// One confidence level up (High stays High).
fn raise(c: Confidence) -> Confidence {
    match c {
        Confidence::Low => Confidence::Medium,
        Confidence::Medium | Confidence::High => Confidence::High,
    }
}

#[cfg(test)]
mod ring_tests {
    use super::*;

    fn ring(ends: &[u64]) -> KeywordRing {
        let mut r = KeywordRing::EMPTY;
        for &e in ends {
            r.push(e, 1);
        }
        r
    }

    #[test]
    fn answers_no_only_when_it_knows() {
        let r = ring(&[10, 20]);
        assert!(r.maybe(1, 5, 10) && r.maybe(1, 15, 25));
        assert!(!r.maybe(1, 10, 19), "(10, 19] holds no end");
        assert!(!r.maybe(2, 0, 100), "another keyword set");
        assert!(r.maybe(0, 0, 1), "a rule outside the prefilter always searches");
    }

    #[test]
    fn out_of_order_and_repeated_ends_are_kept_sorted() {
        let mut r = ring(&[10, 30]);
        r.push(20, 2);
        r.push(30, 4);
        assert_eq!(&r.ends[..3], &[10, 20, 30]);
        assert_eq!(&r.sets[..3], &[1, 2, 5]);
    }

    #[test]
    fn eviction_makes_the_forgotten_range_unknown() {
        let ends: Vec<u64> = (1..=KEYWORD_RING as u64 + 2).map(|i| i * 10).collect();
        let r = ring(&ends);
        assert_eq!(r.complete_from, 21, "10 and 20 were forgotten");
        assert!(r.maybe(1, 0, 5), "before the record: unknown, so maybe");
        assert!(!r.maybe(1, 20, 29));
        // One older than everything kept is forgotten at once.
        let mut r2 = r;
        r2.push(25, 1);
        assert_eq!(r2.complete_from, 26);
        assert_eq!(r2.ends, r.ends);
    }
}
