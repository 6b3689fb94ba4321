//! Where each recent section of decoded content began, so a finding (which carries only its
//! offset in the matcher's stream) can say where it was found.

use super::{Evidence, Location};

/// Sections remembered per direction. A finding is decided at most a few hundred bytes after
/// its section began (the matcher's retained tail), so only a burst of more than this many
/// tiny sections in that span loses a location (reported as unknown, never wrong).
const ENTRIES: usize = 8;
/// Longest section name kept (header name, form field, file name), in bytes.
pub const MAX_SECTION_NAME: usize = 40;

#[derive(Debug, Clone, Copy)]
struct Entry {
    start: u64,
    location: Location,
    name_len: u8,
    name: [u8; MAX_SECTION_NAME],
}

/// Ring of the latest section starts of one direction.
#[derive(Debug)]
pub struct SectionLog {
    /// Invariant: `len <= ENTRIES`; entries are in start order, oldest at `head`.
    entries: [Entry; ENTRIES],
    head: usize,
    len: usize,
}

impl Default for SectionLog {
    fn default() -> Self {
        let e = Entry {
            start: 0,
            location: Location::Raw,
            name_len: 0,
            name: [0; MAX_SECTION_NAME],
        };
        SectionLog {
            entries: [e; ENTRIES],
            head: 0,
            len: 0,
        }
    }
}

impl SectionLog {
    /// Records that a section of `location` named `name` (truncated) starts at stream offset
    /// `start`. A start below the last one means the stream restarted: the log starts over.
    pub fn push(&mut self, start: u64, location: Location, name: &[u8]) {
        let n = name.len().min(MAX_SECTION_NAME);
        let mut e = Entry {
            start,
            location,
            name_len: n as u8,
            name: [0; MAX_SECTION_NAME],
        };
        e.name[..n].copy_from_slice(&name[..n]);
        if self.len > 0 {
            let last = self.entries[(self.head + self.len - 1) % ENTRIES];
            if start < last.start {
                // The matcher stream restarted (a new datagram, or data after the end): what
                // was logged belongs to offsets that are gone.
                self.len = 0;
                self.head = 0;
            } else if last.start == start {
                // An empty section replaced by the next one.
                self.entries[(self.head + self.len - 1) % ENTRIES] = e;
                return;
            }
        }
        if self.len < ENTRIES {
            self.entries[(self.head + self.len) % ENTRIES] = e;
            self.len += 1;
        } else {
            self.entries[self.head] = e;
            self.head = (self.head + 1) % ENTRIES;
        }
    }

    /// Whether a remembered section is at `location` (so [`SectionLog::lookup`] can answer it).
    pub fn holds(&self, location: Location) -> bool {
        (0..self.len).any(|i| self.entries[(self.head + i) % ENTRIES].location == location)
    }

    /// The section holding stream offset `offset`: its location and name. `None` when that
    /// section is older than the ring (or nothing was recorded).
    pub fn lookup(&self, offset: u64) -> Option<(Location, &[u8])> {
        (0..self.len).rev().find_map(|i| {
            let e = &self.entries[(self.head + i) % ENTRIES];
            (e.start <= offset).then(|| (e.location, &e.name[..usize::from(e.name_len)]))
        })
    }
}

/// Messages remembered per direction (pipelined requests in one packet, SMTP transactions).
const MESSAGES: usize = 8;

/// Ring of the latest message starts of one direction with their evidence, so a finding is
/// reported with the method, host and path of the message it was in, not of whatever message
/// came last in the same packet. Slots are reused: after warm-up, recording a message copies
/// its evidence into existing buffers.
#[derive(Debug, Default)]
pub struct MessageLog {
    /// Invariant: `len <= MESSAGES`; entries in start order, oldest at `head`.
    entries: [(u64, u32, Evidence); MESSAGES],
    head: usize,
    len: usize,
    next_seq: u32,
}

impl MessageLog {
    /// Records that a message with `evidence` starts at stream offset `start`; returns its
    /// sequence number. A start below the last one means the stream restarted.
    pub fn push(&mut self, start: u64, evidence: &Evidence) -> u32 {
        if self.len > 0 {
            let last = (self.head + self.len - 1) % MESSAGES;
            if start < self.entries[last].0 {
                self.len = 0;
                self.head = 0;
            } else if self.entries[last].0 == start {
                // No content since the previous start: this one replaces it.
                self.len -= 1;
            }
        }
        let slot = if self.len < MESSAGES {
            self.len += 1;
            (self.head + self.len - 1) % MESSAGES
        } else {
            let s = self.head;
            self.head = (self.head + 1) % MESSAGES;
            s
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        let e = &mut self.entries[slot];
        e.0 = start;
        e.1 = self.next_seq;
        e.2.clone_from(evidence);
        self.next_seq
    }

    /// Sequence number of the message holding stream offset `offset`, if still remembered.
    pub fn seq_at(&self, offset: u64) -> Option<u32> {
        (0..self.len).rev().find_map(|i| {
            let e = &self.entries[(self.head + i) % MESSAGES];
            (e.0 <= offset).then_some(e.1)
        })
    }

    /// Evidence of message `seq`, if still remembered.
    pub fn evidence(&self, seq: u32) -> Option<&Evidence> {
        (0..self.len)
            .map(|i| &self.entries[(self.head + i) % MESSAGES])
            .find(|e| e.1 == seq)
            .map(|e| &e.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_enclosing_section() {
        let mut log = SectionLog::default();
        assert!(log.lookup(0).is_none());
        log.push(0, Location::Url, b"");
        log.push(10, Location::Header, b"Cookie");
        log.push(30, Location::Body, b"");
        assert_eq!(log.lookup(5).unwrap().0, Location::Url);
        assert_eq!(log.lookup(10).unwrap(), (Location::Header, &b"Cookie"[..]));
        assert_eq!(log.lookup(1000).unwrap().0, Location::Body);
    }

    #[test]
    fn old_sections_are_forgotten_not_misreported() {
        let mut log = SectionLog::default();
        for i in 0..20u64 {
            log.push(i * 10, Location::Header, b"h");
        }
        assert!(log.lookup(5).is_none());
        assert_eq!(log.lookup(195).unwrap().0, Location::Header);
    }

    #[test]
    fn messages_are_found_by_offset_and_forgotten_when_old() {
        let mut log = MessageLog::default();
        let ev = |m: &str| Evidence {
            http_method: m.into(),
            ..Evidence::default()
        };
        let a = log.push(0, &ev("GET"));
        let b = log.push(100, &ev("DELETE"));
        assert_eq!(log.seq_at(50), Some(a));
        assert_eq!(log.seq_at(100), Some(b));
        assert_eq!(log.evidence(a).unwrap().http_method, "GET");
        for i in 2..20u64 {
            log.push(i * 100, &ev("POST"));
        }
        assert!(log.evidence(a).is_none() && log.seq_at(50).is_none());
    }

    #[test]
    fn long_names_are_truncated_and_empty_sections_replaced() {
        let mut log = SectionLog::default();
        log.push(0, Location::Body, &[b'a'; 100]);
        assert_eq!(log.lookup(0).unwrap().1.len(), MAX_SECTION_NAME);
        log.push(0, Location::Attachment, b"x.csv");
        assert_eq!(log.lookup(0).unwrap(), (Location::Attachment, &b"x.csv"[..]));
    }
}
