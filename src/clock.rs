//! Packet time. Every timeout in the sensor runs on the capture's clock, not the wall clock, so that
//! reading a week-old pcap behaves exactly as the live capture did.

use std::time::Duration;

/// A packet timestamp in microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// Builds a timestamp from microseconds since the Unix epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// Builds a timestamp from a `timeval`-style pair.
    pub fn from_secs_micros(secs: i64, micros: i64) -> Self {
        let secs = u64::try_from(secs).unwrap_or(0);
        let micros = u64::try_from(micros).unwrap_or(0);
        Self(secs.saturating_mul(1_000_000).saturating_add(micros))
    }

    /// The wall clock now (for `event.created` and for timers on a quiet live link).
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later (packets can be reordered).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// This timestamp moved forward by `d`.
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)))
    }
}
