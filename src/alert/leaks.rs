//! Per-flow-direction leak bookkeeping: which values were already reported, and the batches of
//! values waiting to be raised.

use super::{MessageContext, PiiMatch};
use crate::clock::Timestamp;
use crate::matcher::RuleIdx;
use std::collections::HashSet;
use std::time::Duration;

/// When batched values are raised, and how many distinct values one direction remembers.
#[derive(Debug, Clone)]
pub struct AlertPolicy {
    /// Most values in one alert (default 100). Keeps alert documents under roughly 16 KiB.
    pub max_matches_per_alert: usize,
    /// A batch waits at most this long, in packet time, after its first value (default 5 s).
    pub batch_interval: Duration,
    /// Distinct values remembered per flow direction for de-duplication (default 100 000, about
    /// 1.6 MiB); values beyond it are still reported, but may repeat.
    pub max_distinct_per_direction: usize,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            max_matches_per_alert: 100,
            batch_interval: Duration::from_secs(5),
            max_distinct_per_direction: 100_000,
        }
    }
}

/// What [`DirLeaks::add`] did with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// First time this direction sent it: queued for an alert.
    New,
    /// Already reported for this direction.
    Duplicate,
    /// New, queued, but the de-duplication set is full, so a repeat may be reported again.
    NewUntracked,
}

/// Values of one rule ready to be raised as one alert.
#[derive(Debug)]
pub struct PendingBatch {
    /// The rule.
    pub rule: RuleIdx,
    /// At most `max_matches_per_alert` values.
    pub matches: Vec<PiiMatch>,
    /// 1 for the first alert of this rule in this direction, then 2, 3, …
    pub batch: u32,
    /// The message the batch's first value travelled in.
    pub context: MessageContext,
    /// Distinct values this direction has sent so far (all rules), for bulk severity.
    pub distinct: usize,
}

#[derive(Debug)]
struct RuleBatch {
    rule: RuleIdx,
    pending: Vec<PiiMatch>,
    /// Context of the message every pending value travelled in.
    context: MessageContext,
    /// Values of earlier messages, closed when a value of a different message arrived: each
    /// group is raised as its own alert so an alert's method, host and path are its values'.
    closed: Vec<(Vec<PiiMatch>, MessageContext)>,
    /// Alerts already raised for this rule in this direction.
    raised: u32,
    /// Packet time of the oldest pending value.
    since: Timestamp,
}

/// Leak state of one flow direction; created on its first finding.
#[derive(Debug, Default)]
pub struct DirLeaks {
    seen: HashSet<u64, foldhash::fast::RandomState>,
    batches: Vec<RuleBatch>,
}

impl DirLeaks {
    /// Records a finding. `short` identifies the value (kind and keyed hash); `make` builds its
    /// alert entry only when the value is new, and `context` describes its message when it
    /// starts a batch.
    pub fn add(
        &mut self,
        rule: RuleIdx,
        short: u64,
        make: impl FnOnce() -> PiiMatch,
        context: impl FnOnce() -> MessageContext,
        now: Timestamp,
        policy: &AlertPolicy,
    ) -> AddOutcome {
        let outcome = if self.seen.contains(&short) {
            return AddOutcome::Duplicate;
        } else if self.seen.len() < policy.max_distinct_per_direction {
            self.seen.insert(short);
            AddOutcome::New
        } else {
            AddOutcome::NewUntracked
        };
        let b = match self.batches.iter().position(|b| b.rule == rule) {
            Some(i) => &mut self.batches[i],
            None => {
                self.batches.push(RuleBatch {
                    rule,
                    pending: Vec::new(),
                    context: MessageContext::default(),
                    closed: Vec::new(),
                    raised: 0,
                    since: now,
                });
                self.batches.last_mut().expect("just pushed")
            }
        };
        if b.pending.is_empty() {
            b.since = now;
            b.context = context();
        } else {
            let ctx = context();
            if ctx != b.context {
                let group = std::mem::take(&mut b.pending);
                b.closed.push((group, std::mem::replace(&mut b.context, ctx)));
            }
        }
        b.pending.push(make());
        outcome
    }

    /// Hands over every batch that is due: a rule's first values, full batches, batches older
    /// than the interval, or (with `force`, at flow end) everything.
    pub fn take_due(&mut self, now: Timestamp, policy: &AlertPolicy, force: bool, out: &mut impl FnMut(PendingBatch)) {
        let max = policy.max_matches_per_alert.max(1);
        let distinct = self.seen.len();
        for b in &mut self.batches {
            // Values of finished messages go at once (each group is one message's).
            for (group, context) in b.closed.drain(..) {
                raise_group(b.rule, &mut b.raised, &group, &context, max, distinct, out);
            }
            if b.pending.is_empty() {
                continue;
            }
            let due = force || b.raised == 0 || b.pending.len() >= max || now.since(b.since) >= policy.batch_interval;
            if !due {
                continue;
            }
            // Raise full chunks; a partial remainder waits unless this is the first alert
            // (raised at once) or everything is forced out.
            while !b.pending.is_empty() {
                let take = b.pending.len().min(max);
                if take < max && !(force || b.raised == 0 || now.since(b.since) >= policy.batch_interval) {
                    break;
                }
                let rest = b.pending.split_off(take);
                let matches = std::mem::replace(&mut b.pending, rest);
                b.raised += 1;
                out(PendingBatch {
                    rule: b.rule,
                    matches,
                    batch: b.raised,
                    context: b.context.clone(),
                    distinct,
                });
            }
            b.since = now;
        }
    }

    /// Renumbers rules after a rule reload: `map` gives a rule's index in the new set, or `None`
    /// when the new set no longer has it. Values of a removed rule waiting to be raised are
    /// handed to `gone` at once (to be raised under the old rule), and its batch is dropped.
    pub fn remap_rules(
        &mut self,
        map: impl Fn(RuleIdx) -> Option<RuleIdx>,
        policy: &AlertPolicy,
        gone: &mut impl FnMut(PendingBatch),
    ) {
        let max = policy.max_matches_per_alert.max(1);
        let distinct = self.seen.len();
        let mut i = 0;
        while i < self.batches.len() {
            if let Some(n) = map(self.batches[i].rule) {
                self.batches[i].rule = n;
                i += 1;
                continue;
            }
            let mut b = self.batches.swap_remove(i);
            let pending = (std::mem::take(&mut b.pending), b.context.clone());
            for (group, context) in b.closed.drain(..).chain(std::iter::once(pending)) {
                raise_group(b.rule, &mut b.raised, &group, &context, max, distinct, gone);
            }
        }
    }

    /// True when some value waits to be raised.
    pub fn has_pending(&self) -> bool {
        self.batches
            .iter()
            .any(|b| !b.pending.is_empty() || !b.closed.is_empty())
    }

    /// Approximate heap bytes held, for the flow memory cap.
    pub fn memory(&self) -> usize {
        let pending: usize = self
            .batches
            .iter()
            .map(|b| {
                let closed: usize = b.closed.iter().map(|(g, _)| g.capacity()).sum();
                (b.pending.capacity() + closed) * (std::mem::size_of::<PiiMatch>() + 96)
            })
            .sum();
        self.seen.capacity() * 9 + self.batches.capacity() * std::mem::size_of::<RuleBatch>() + pending
    }
}

/// Raises one message's values (`group`) in batches of at most `max`, numbering them on from
/// `raised`.
fn raise_group(
    rule: RuleIdx,
    raised: &mut u32,
    group: &[PiiMatch],
    context: &MessageContext,
    max: usize,
    distinct: usize,
    out: &mut impl FnMut(PendingBatch),
) {
    for chunk in group.chunks(max) {
        *raised += 1;
        out(PendingBatch {
            rule,
            matches: chunk.to_vec(),
            batch: *raised,
            context: context.clone(),
            distinct,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::PiiKind;

    fn m(i: u64) -> PiiMatch {
        PiiMatch {
            kind: PiiKind::Card,
            masked: format!("m{i}"),
            hash: format!("h{i}"),
            confidence: crate::pii::Confidence::Medium,
            known: false,
            location: None,
            field: None,
        }
    }

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_micros(ms * 1000)
    }

    fn collect(l: &mut DirLeaks, now: Timestamp, p: &AlertPolicy, force: bool) -> Vec<(u32, usize)> {
        let mut v = Vec::new();
        l.take_due(now, p, force, &mut |b| v.push((b.batch, b.matches.len())));
        v
    }

    #[test]
    fn first_value_raises_at_once_then_batches() {
        let p = AlertPolicy {
            max_matches_per_alert: 10,
            batch_interval: Duration::from_secs(1),
            max_distinct_per_direction: 1000,
        };
        let mut l = DirLeaks::default();
        assert_eq!(l.add(0, 1, || m(1), MessageContext::default, t(0), &p), AddOutcome::New);
        assert_eq!(collect(&mut l, t(0), &p, false), vec![(1, 1)]);
        for i in 2..=26 {
            assert_eq!(
                l.add(0, i, || m(i), MessageContext::default, t(10), &p),
                AddOutcome::New
            );
        }
        // 25 pending: two full batches go, five wait for the interval.
        assert_eq!(collect(&mut l, t(10), &p, false), vec![(2, 10), (3, 10)]);
        assert!(l.has_pending());
        assert_eq!(collect(&mut l, t(500), &p, false), vec![]);
        assert_eq!(collect(&mut l, t(1100), &p, false), vec![(4, 5)]);
        assert!(!l.has_pending());
    }

    #[test]
    fn each_value_is_reported_once_and_force_flushes() {
        let p = AlertPolicy::default();
        let mut l = DirLeaks::default();
        l.add(3, 42, || m(42), MessageContext::default, t(0), &p);
        assert_eq!(
            l.add(3, 42, || m(42), MessageContext::default, t(1), &p),
            AddOutcome::Duplicate
        );
        collect(&mut l, t(1), &p, false);
        l.add(3, 43, || m(43), MessageContext::default, t(2), &p);
        assert_eq!(collect(&mut l, t(2), &p, true), vec![(2, 1)]);
    }

    #[test]
    fn values_of_different_messages_are_raised_apart() {
        let p = AlertPolicy::default();
        let mut l = DirLeaks::default();
        let ctx = |m: &str| MessageContext {
            protocol: None,
            evidence: Some(crate::l7::Evidence {
                http_method: m.into(),
                ..Default::default()
            }),
        };
        l.add(0, 1, || m(1), || ctx("GET"), t(0), &p);
        let mut v = Vec::new();
        l.take_due(t(0), &p, false, &mut |b| v.push(b));
        l.add(0, 2, || m(2), || ctx("POST"), t(1), &p);
        l.add(0, 3, || m(3), || ctx("POST"), t(1), &p);
        l.add(0, 4, || m(4), || ctx("DELETE"), t(1), &p);
        l.take_due(t(1), &p, true, &mut |b| v.push(b));
        let got: Vec<(String, usize)> = v
            .iter()
            .map(|b| {
                (
                    b.context.evidence.as_ref().unwrap().http_method.clone(),
                    b.matches.len(),
                )
            })
            .collect();
        assert_eq!(got, [("GET".into(), 1), ("POST".into(), 2), ("DELETE".into(), 1)]);
    }

    #[test]
    fn dedup_set_is_bounded() {
        let p = AlertPolicy {
            max_distinct_per_direction: 2,
            ..AlertPolicy::default()
        };
        let mut l = DirLeaks::default();
        assert_eq!(l.add(0, 1, || m(1), MessageContext::default, t(0), &p), AddOutcome::New);
        assert_eq!(l.add(0, 2, || m(2), MessageContext::default, t(0), &p), AddOutcome::New);
        assert_eq!(
            l.add(0, 3, || m(3), MessageContext::default, t(0), &p),
            AddOutcome::NewUntracked
        );
        assert_eq!(
            l.add(0, 3, || m(3), MessageContext::default, t(0), &p),
            AddOutcome::NewUntracked
        );
    }

    #[test]
    fn remap_renumbers_kept_rules_and_hands_over_removed_ones() {
        let p = AlertPolicy::default();
        let mut l = DirLeaks::default();
        let ctx = MessageContext::default;
        // Rule 0 raised once and has one value waiting; rule 1 has two values waiting.
        l.add(0, 1, || m(1), ctx, t(0), &p);
        assert_eq!(collect(&mut l, t(0), &p, false), vec![(1, 1)]);
        l.add(0, 2, || m(2), ctx, t(1), &p);
        l.add(1, 3, || m(3), ctx, t(1), &p);
        l.add(1, 4, || m(4), ctx, t(1), &p);
        // The new set drops rule 1 and renumbers rule 0 as 5.
        let mut gone = Vec::new();
        l.remap_rules(|r| (r == 0).then_some(5), &p, &mut |b| {
            gone.push((b.rule, b.batch, b.matches.len()))
        });
        assert_eq!(gone, vec![(1, 1, 2)]);
        assert_eq!(
            l.add(1, 3, || m(3), ctx, t(2), &p),
            AddOutcome::Duplicate,
            "values stay known"
        );
        let mut v = Vec::new();
        l.take_due(t(2), &p, true, &mut |b| v.push((b.rule, b.batch, b.matches.len())));
        assert_eq!(v, vec![(5, 2, 1)], "rule 0's batch continues as rule 5");
    }
}
