//! A [`ContentSink`] for tests: records sections (location, name, bytes), gaps and events.
//! Its `Debug` never prints content (test data is synthetic, but assertion messages follow the
//! same rule as logs).

use crate::l7::{ContentSink, L7Event, Location};

/// One recorded section.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub(crate) location: Location,
    pub(crate) name: Vec<u8>,
    pub(crate) data: Vec<u8>,
    /// Gaps reported inside this section.
    pub(crate) gaps: usize,
}

impl std::fmt::Debug for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} [{} name bytes] {} bytes, {} gaps",
            self.location,
            self.name.len(),
            self.data.len(),
            self.gaps
        )
    }
}

/// Records everything a decoder emits.
#[derive(Default, Clone, PartialEq, Eq, Debug)]
pub(crate) struct Recorder {
    pub(crate) sections: Vec<Section>,
    pub(crate) events: Vec<L7Event>,
}

impl Recorder {
    /// Sections at `location`.
    pub(crate) fn at(&self, location: Location) -> Vec<&Section> {
        self.sections.iter().filter(|s| s.location == location).collect()
    }

    /// The data of the first section at `location` named `name`.
    pub(crate) fn data(&self, location: Location, name: &str) -> Option<&[u8]> {
        self.sections
            .iter()
            .find(|s| s.location == location && s.name == name.as_bytes())
            .map(|s| &s.data[..])
    }

    /// Whether some section's data contains `needle`.
    pub(crate) fn contains(&self, needle: &[u8]) -> bool {
        self.sections
            .iter()
            .any(|s| s.data.windows(needle.len()).any(|w| w == needle))
    }
}

impl ContentSink for Recorder {
    fn section(&mut self, location: Location, name: &[u8]) {
        self.sections.push(Section {
            location,
            name: name.to_vec(),
            data: Vec::new(),
            gaps: 0,
        });
    }
    fn data(&mut self, bytes: &[u8]) {
        match self.sections.last_mut() {
            Some(s) => s.data.extend_from_slice(bytes),
            None => panic!("data before any section"),
        }
    }
    fn gap(&mut self) {
        if let Some(s) = self.sections.last_mut() {
            s.gaps += 1;
        }
    }
    fn event(&mut self, event: L7Event) {
        self.events.push(event);
    }
}

/// A sink that keeps only counts (for huge inputs).
#[derive(Default, Debug)]
pub(crate) struct Counter {
    pub(crate) sections: usize,
    pub(crate) bytes: usize,
    pub(crate) digits: usize,
    /// Count of the byte `7` (a marker for exact accounting).
    pub(crate) sevens: usize,
    pub(crate) events: Vec<L7Event>,
}

impl ContentSink for Counter {
    fn section(&mut self, _location: Location, _name: &[u8]) {
        self.sections += 1;
    }
    fn data(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len();
        self.digits += bytes.iter().filter(|b| b.is_ascii_digit()).count();
        self.sevens += bytes.iter().filter(|&&b| b == b'7').count();
    }
    fn gap(&mut self) {}
    fn event(&mut self, event: L7Event) {
        self.events.push(event);
    }
}
