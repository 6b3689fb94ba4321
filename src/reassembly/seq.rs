//! 32-bit TCP sequence numbers at the edge, 64-bit stream offsets inside.
//!
//! A sequence number is only meaningful relative to another one (RFC 1982 serial arithmetic): the
//! signed 32-bit difference says which is later, correctly across the 2^32 wrap, as long as the two
//! are less than 2^31 apart. The reassembler anchors every comparison at the stream's next expected
//! offset, so a stream can run past 4 GiB and wrap any number of times.

/// Signed distance from `from` to `to` in sequence space (RFC 1982): positive when `to` is later.
pub(super) fn seq_diff(to: u32, from: u32) -> i32 {
    to.wrapping_sub(from) as i32
}

/// The sequence number of stream offset `offset`, where `base` is the sequence number of offset 0.
pub(super) fn seq_at(base: u32, offset: u64) -> u32 {
    // Truncation is the point: sequence numbers are offsets modulo 2^32.
    base.wrapping_add(offset as u32)
}

/// The stream offset of sequence number `seq`, interpreted as the offset nearest to `anchor`
/// (an offset already known, normally the next expected one). Negative when `seq` lies before the
/// start of the stream.
pub(super) fn offset_of(base: u32, anchor: u64, seq: u32) -> i64 {
    // Stream offsets stay far below 2^63: that many bytes never cross one connection.
    anchor as i64 + i64::from(seq_diff(seq, seq_at(base, anchor)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_is_signed_and_wraps() {
        assert_eq!(seq_diff(5, 3), 2);
        assert_eq!(seq_diff(3, 5), -2);
        assert_eq!(seq_diff(2, u32::MAX - 1), 4);
        assert_eq!(seq_diff(u32::MAX - 1, 2), -4);
    }

    #[test]
    fn offsets_across_the_wrap() {
        let base = u32::MAX - 9; // offset 10 is sequence number 0
        assert_eq!(seq_at(base, 10), 0);
        assert_eq!(offset_of(base, 0, 0), 10);
        assert_eq!(offset_of(base, 8, 3), 13);
        assert_eq!(offset_of(base, 0, base.wrapping_sub(4)), -4);
        // Many wraps in: anchor 5 GiB + 3.
        let anchor = (5u64 << 30) + 3;
        let s = seq_at(base, anchor);
        assert_eq!(offset_of(base, anchor, s.wrapping_add(100)), anchor as i64 + 100);
        assert_eq!(offset_of(base, anchor, s.wrapping_sub(100)), anchor as i64 - 100);
    }
}
