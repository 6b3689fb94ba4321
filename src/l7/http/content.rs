//! The last stage of a body: what its media type means for the matcher. Form bodies become one
//! section per field (percent-decoded, `+` as space), JSON has its string escapes decoded,
//! multipart bodies go to the MIME decoder, and everything else passes through unchanged.

use super::json::JsonUnescape;
use super::percent::PercentState;
use crate::l7::mime::MimeDecoder;
use crate::l7::{ContentSink, Location};

/// Longest form field name used as a section name; longer names are cut (the sink keeps even
/// fewer bytes) but still scanned in full as data.
const FORM_NAME: usize = 64;
/// Decoded form bytes are collected here and handed to the sink in runs, not byte by byte.
const BATCH: usize = 512;

/// How a body's media type is decoded, read from `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MediaKind {
    /// Text, CSV, binary, unknown: passed through.
    Plain,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json` and `+json` types.
    Json,
    /// `multipart/*` with a boundary (the boundary is kept by the caller).
    Multipart,
}

/// Decoding state of the current body's content.
#[derive(Debug)]
pub(super) enum Content {
    /// No body in progress, or the body's content was finished early (cut off).
    Done,
    /// Pass-through; `started` once the body section is open.
    Plain { started: bool },
    /// Form fields, one section each.
    Form(Box<FormState>),
    /// JSON with escapes decoded.
    Json { started: bool, unescape: JsonUnescape },
    /// Parts decoded by the MIME decoder, which opens its own sections.
    Multipart(Box<MimeDecoder>),
}

impl Content {
    /// The decoding for a new body of `kind` (`boundary` only for multipart).
    pub(super) fn start(kind: MediaKind, boundary: &[u8]) -> Content {
        match kind {
            MediaKind::Plain => Content::Plain { started: false },
            MediaKind::Form => Content::Form(Box::default()),
            MediaKind::Json => Content::Json {
                started: false,
                unescape: JsonUnescape::default(),
            },
            MediaKind::Multipart => Content::Multipart(Box::new(MimeDecoder::multipart(boundary))),
        }
    }

    /// The next decoded (de-chunked, decompressed) bytes of the body.
    pub(super) fn feed(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) {
        if bytes.is_empty() {
            return;
        }
        match self {
            Content::Done => {}
            Content::Plain { started } => {
                open_body(started, sink);
                sink.data(bytes);
            }
            Content::Form(f) => f.feed(bytes, sink),
            Content::Json { started, unescape } => {
                open_body(started, sink);
                unescape.feed(bytes, |s| sink.data(s));
            }
            Content::Multipart(m) => m.data(bytes, sink),
        }
    }

    /// Content is missing here: pending partial escapes are released and the sink told.
    pub(super) fn gap(&mut self, sink: &mut dyn ContentSink) {
        match self {
            Content::Form(f) => f.flush(sink),
            Content::Json { unescape, .. } => unescape.flush(|s| sink.data(s)),
            Content::Done | Content::Plain { .. } | Content::Multipart(_) => {}
        }
        sink.gap();
    }

    /// End of the body (or of its decodable part): flush what is held. Idempotent.
    pub(super) fn finish(&mut self, sink: &mut dyn ContentSink) {
        match self {
            Content::Form(f) => f.flush(sink),
            Content::Json { unescape, .. } => unescape.flush(|s| sink.data(s)),
            Content::Multipart(m) => m.finish(sink),
            Content::Done | Content::Plain { .. } => {}
        }
        *self = Content::Done;
    }

    /// Heap bytes held.
    pub(super) fn memory(&self) -> usize {
        match self {
            Content::Form(_) => std::mem::size_of::<FormState>(),
            Content::Multipart(m) => std::mem::size_of::<MimeDecoder>() + m.memory(),
            Content::Done | Content::Plain { .. } | Content::Json { .. } => 0,
        }
    }
}

fn open_body(started: &mut bool, sink: &mut dyn ContentSink) {
    if !*started {
        sink.section(Location::Body, b"");
        *started = true;
    }
}

/// Where a form decoder is within `name=value&…`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum FormPhase {
    /// Collecting a field name; no section open for it yet.
    #[default]
    Name,
    /// The name outgrew [`FORM_NAME`]: its section is open and the rest of it streams as data.
    LongName,
    /// In the value; the section is open.
    Value,
}

/// Streaming `application/x-www-form-urlencoded` decoder. Each field becomes a
/// [`Location::Body`] section named after the field, whose data is the decoded `name=value`
/// (the name stays in the data so it counts as keyword context).
pub(super) struct FormState {
    pct: PercentState,
    phase: FormPhase,
    /// Invariant: `name_len <= FORM_NAME`.
    name: [u8; FORM_NAME],
    name_len: usize,
    /// Invariant: `out_len <= BATCH`; bytes of the open section not yet given to the sink.
    out: [u8; BATCH],
    out_len: usize,
}

impl Default for FormState {
    fn default() -> FormState {
        FormState {
            pct: PercentState::default(),
            phase: FormPhase::Name,
            name: [0; FORM_NAME],
            name_len: 0,
            out: [0; BATCH],
            out_len: 0,
        }
    }
}

/// Position only: the held name and value bytes are content.
impl std::fmt::Debug for FormState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormState")
            .field("phase", &self.phase)
            .field("name_len", &self.name_len)
            .finish_non_exhaustive()
    }
}

impl FormState {
    fn feed(&mut self, bytes: &[u8], sink: &mut dyn ContentSink) {
        for &b in bytes {
            match b {
                // Separators are recognised before decoding: `%26` is data, not a new field.
                b'&' => {
                    self.end_field(sink);
                }
                b'=' if self.phase != FormPhase::Value => {
                    self.release_pct(sink);
                    self.open_field(sink);
                    self.put(b'=', sink);
                    self.phase = FormPhase::Value;
                }
                _ => {
                    let mut pct = self.pct;
                    pct.push(b, true, |c| self.put(c, sink));
                    self.pct = pct;
                }
            }
        }
        self.flush_out(sink);
    }

    /// Ends the field in progress (at `&`, the end of the body or a gap).
    fn end_field(&mut self, sink: &mut dyn ContentSink) {
        self.release_pct(sink);
        if self.phase == FormPhase::Name && self.name_len > 0 {
            // A field without `=` is still content.
            self.open_field(sink);
        }
        self.flush_out(sink);
        self.phase = FormPhase::Name;
        self.name_len = 0;
    }

    fn flush(&mut self, sink: &mut dyn ContentSink) {
        self.end_field(sink);
    }

    fn release_pct(&mut self, sink: &mut dyn ContentSink) {
        let mut pct = self.pct;
        pct.flush(|c| self.put(c, sink));
        self.pct = pct;
    }

    /// Opens the section of the field whose name is collected, and emits the name as data.
    fn open_field(&mut self, sink: &mut dyn ContentSink) {
        if self.phase != FormPhase::Name {
            return;
        }
        sink.section(Location::Body, &self.name[..self.name_len]);
        sink.data(&self.name[..self.name_len]);
        self.phase = FormPhase::LongName;
    }

    #[inline]
    fn put(&mut self, c: u8, sink: &mut dyn ContentSink) {
        if self.phase == FormPhase::Name {
            if self.name_len < FORM_NAME {
                self.name[self.name_len] = c;
                self.name_len += 1;
                return;
            }
            self.open_field(sink);
        }
        if self.out_len == BATCH {
            self.flush_out(sink);
        }
        self.out[self.out_len] = c;
        self.out_len += 1;
    }

    fn flush_out(&mut self, sink: &mut dyn ContentSink) {
        if self.out_len > 0 {
            sink.data(&self.out[..self.out_len]);
            self.out_len = 0;
        }
    }
}
