//! The only place that touches Hyperscan directly: compiling, probing patterns, and an owned
//! stream handle that is really freed on drop.
//!
//! `hyperscan` 0.3.2's `Stream` has a no-op `Drop` (its `drop_stream` does nothing), so a
//! dropped stream leaks its state. [`HsStream`] wraps it in `ManuallyDrop` and frees it with
//! `hs_close_stream(stream, NULL, NULL, NULL)`, which Hyperscan documents as valid: the scratch
//! may be NULL when the callback is NULL, and no matches are reported.

use hyperscan::{Pattern, PatternFlags, SomHorizon, Stream, StreamRef, StreamingDatabase};
use std::ffi::{c_int, c_uint, c_ulonglong, c_void};
use std::mem::ManuallyDrop;

type MatchEventHandler = Option<unsafe extern "C" fn(c_uint, c_ulonglong, c_ulonglong, c_uint, *mut c_void) -> c_int>;

extern "C" {
    // From hs_runtime.h (libhs 5.4); the library is linked by hyperscan-sys.
    fn hs_close_stream(
        id: *mut c_void,
        scratch: *mut c_void,
        on_event: MatchEventHandler,
        context: *mut c_void,
    ) -> c_int;
}

/// An open Hyperscan stream that is closed (without reporting matches) when dropped.
pub(super) struct HsStream(ManuallyDrop<Stream>);

impl HsStream {
    pub(super) fn open(db: &StreamingDatabase) -> Result<Self, String> {
        db.open_stream()
            .map(|s| Self(ManuallyDrop::new(s)))
            .map_err(|e| e.to_string())
    }
}

impl std::ops::Deref for HsStream {
    type Target = StreamRef;
    fn deref(&self) -> &StreamRef {
        &self.0
    }
}

impl Drop for HsStream {
    fn drop(&mut self) {
        let r: &StreamRef = &self.0;
        // SAFETY: `foreign_types` reference types are zero-sized opaque views whose address
        // *is* the C pointer (`StreamRef::from_ptr(p)` is `&*p.cast()`), so this is the
        // `hs_stream_t*` returned by `hs_open_stream`. It is closed exactly once: the inner
        // `Stream` is in `ManuallyDrop` and never dropped or closed elsewhere. A NULL scratch is
        // allowed because the callback is NULL.
        let rc = unsafe {
            hs_close_stream(
                (r as *const StreamRef).cast_mut().cast::<c_void>(),
                std::ptr::null_mut(),
                None,
                std::ptr::null_mut(),
            )
        };
        debug_assert_eq!(rc, 0, "hs_close_stream failed");
    }
}

/// Flags every rule pattern is compiled with.
pub(super) fn flags() -> PatternFlags {
    PatternFlags::SOM_LEFTMOST
}

/// A rule pattern ready to compile. SOM horizon "small" (start offsets exact within 2^16
/// bytes of the end) is ample for matches of at most `MAX_MATCH_WIDTH` bytes and keeps the
/// per-stream state small.
pub(super) fn pattern(expr: &str, id: usize) -> Pattern {
    let mut p = Pattern::with_flags(expr, flags()).expect("Pattern::with_flags is infallible");
    p.id = Some(id);
    p.som = Some(SomHorizon::Small);
    p
}

/// A pattern without start of match (its width is fixed, or its start is found otherwise);
/// `caseless` for keyword prefilter expressions (see `Keywords::prefilter_expressions`).
pub(super) fn plain_pattern(expr: &str, id: usize, caseless: bool) -> Pattern {
    let flags = if caseless {
        PatternFlags::CASELESS
    } else {
        PatternFlags::empty()
    };
    let mut p = Pattern::with_flags(expr, flags).expect("Pattern::with_flags is infallible");
    p.id = Some(id);
    p
}

/// The width of every match of `expr`, if it is fixed (and fits a byte); `None` if it varies
/// or Hyperscan cannot tell (the pattern then keeps start of match).
pub(super) fn fixed_width(expr: &str) -> Option<u8> {
    let info = pattern(expr, 0).info().ok()?;
    (info.min_width() == info.max_width())
        .then(|| u8::try_from(info.min_width()).ok())
        .flatten()
}

/// Hyperscan's message for an error, one line.
pub(super) fn message(e: &hyperscan::Error) -> String {
    let s = match e {
        hyperscan::Error::Hyperscan(hyperscan::HsError::CompileError(c)) => c.message().to_string(),
        other => other.to_string(),
    };
    s.replace('\n', " ")
}

/// What the rules loader needs to know about one pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PatternInfo {
    /// Shortest match in bytes.
    pub(crate) min_width: usize,
    /// Longest match in bytes; `None` if unbounded.
    pub(crate) max_width: Option<usize>,
}

/// Checks that Hyperscan accepts `expr` as a streaming `SOM_LEFTMOST` pattern and reports its
/// match widths. The error is Hyperscan's own message.
pub(crate) fn probe_pattern(expr: &str) -> Result<PatternInfo, String> {
    let p = pattern(expr, 0);
    let info = p.info().map_err(|e| message(&e))?;
    let _db: StreamingDatabase = hyperscan::Builder::build(&p).map_err(|e| message(&e))?;
    let max = info.max_width();
    Ok(PatternInfo {
        min_width: info.min_width(),
        max_width: (max != u32::MAX as usize).then_some(max),
    })
}
