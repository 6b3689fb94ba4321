//! Where runs of ASCII digits end, 64 bytes at a time: the scan behind [`super::DigitRuns`].
//!
//! Why not Hyperscan: a pattern such as `\d{13,19}` is a repeated character class with no
//! literal for Hyperscan to anchor on, so it runs its automaton over every byte and calls back
//! at every end. On the cleartext benchmark's egress (one 13-digit timestamp every 55 bytes)
//! Hyperscan block mode ran `\d{13,19}` alone at about 1,040 MiB/s, and this scan finds the
//! same ends at about 5,100 MiB/s (a one-off harness over the `line_rate` capture). In the
//! sensor (`benches/profile.sh cleartext 16M`) Hyperscan's streaming scan fell from 139 M to
//! 22 M instructions and this scan, with the hits it hands on, costs 33 M. Every other
//! pattern, and the keyword prefilter, stay in Hyperscan's streaming database; the matcher's
//! oracle tests compare the result with Hyperscan itself.
//!
//! A match of `\d{m,n}` (no anchors, leftmost start) ends at offset `e` exactly when the `m`
//! bytes before `e` are digits, so "ends of runs at least `m` long" are exactly its ends.

const BLOCK: usize = 64;

/// Calls `on_end(end, run)` for every offset `end` in `data` (exclusive end of a byte) where
/// the run of digits ending there is at least `min` long, in increasing order. `run` counts
/// `carry` (the digits that ended the bytes before `data`) too, saturating at `u32::MAX`.
/// Leaves in `carry` the run that ends `data`.
///
/// `min` must be in `1..=64`.
pub(super) fn run_ends(data: &[u8], min: u32, carry: &mut u32, on_end: impl FnMut(usize, u32)) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bw") {
        // SAFETY: the CPU has AVX-512BW (checked just above; the answer is cached).
        return unsafe { run_ends_avx512(data, min, carry, on_end) };
    }
    scan(data, min, carry, on_end, digit_mask)
}

/// [`run_ends`] with each block's digits found by one AVX-512 compare instead of four SSE2
/// ones and their masks' assembly (with the shift plan below, the data work of
/// `benches/profile.sh cleartext 16M` fell from 193.2 M to 189.6 M instructions).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
fn run_ends_avx512(data: &[u8], min: u32, carry: &mut u32, on_end: impl FnMut(usize, u32)) {
    scan(data, min, carry, on_end, |block| {
        use std::arch::x86_64::{
            __m512i, _mm512_cmple_epu8_mask, _mm512_loadu_si512, _mm512_set1_epi8, _mm512_sub_epi8,
        };
        // SAFETY: `block` is 64 readable bytes, all an unaligned load reads; AVX-512BW is
        // enabled for this function.
        unsafe {
            let v = _mm512_loadu_si512(block.as_ptr().cast::<__m512i>());
            // A digit is a byte whose distance from '0' is at most 9, unsigned.
            _mm512_cmple_epu8_mask(_mm512_sub_epi8(v, _mm512_set1_epi8(b'0' as i8)), _mm512_set1_epi8(9))
        }
    })
}

/// The scan, given how a block's digit mask is found (inlined into each caller, so the mask
/// instructions are those its caller's target features allow).
#[inline(always)]
fn scan(
    data: &[u8],
    min: u32,
    carry: &mut u32,
    mut on_end: impl FnMut(usize, u32),
    mask: impl Fn(&[u8; BLOCK]) -> u64,
) {
    debug_assert!((1..=64).contains(&min), "digit run minimum {min} out of range");
    let plan = Plan::new(min);
    let mut blocks = data.chunks_exact(BLOCK);
    let mut base = 0;
    for block in &mut blocks {
        let d = mask(block.try_into().expect("chunks_exact gives whole blocks"));
        block_ends(d, BLOCK as u32, base, &plan, carry, &mut on_end);
        base += BLOCK;
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        // Padded with a non-digit, so the mask of the missing bytes is zero.
        let mut padded = [0u8; BLOCK];
        padded[..rest.len()].copy_from_slice(rest);
        block_ends(mask(&padded), rest.len() as u32, base, &plan, carry, &mut on_end);
    }
}

/// The shifts that find runs of at least `min` set bits ([`Plan::at_least`]), worked out once
/// per call rather than once per block.
struct Plan {
    min: u32,
    /// `shifts[..n]`: doubling shifts 1, 2, 4, ..., then the top-up (7 at most for `min <= 64`).
    shifts: [u32; 7],
    n: usize,
}

impl Plan {
    fn new(min: u32) -> Plan {
        let (mut shifts, mut n, mut len) = ([0; 7], 0, 1);
        while len * 2 <= min {
            shifts[n] = len;
            n += 1;
            len *= 2;
        }
        if len < min {
            shifts[n] = min - len;
            n += 1;
        }
        Plan { min, shifts, n }
    }

    /// Bit `j` set when bits `j - min + 1 ..= j` of `x` are all set, bits below 0 counting as
    /// clear (runs doubled, then topped up).
    #[inline(always)]
    fn at_least(&self, x: u64) -> u64 {
        self.shifts[..self.n].iter().fold(x, |r, &s| r & (r << s))
    }
}

/// One block: `d` has bit `i` set when byte `i` is a digit; only the first `len` bytes exist.
///
/// Everything stays in 64-bit words: a run inside the block is found by [`Plan::at_least`] on
/// `d` alone, and the digits carried in from before the block only matter for the run that
/// starts at bit 0, whose ends are added as one range. (A 128-bit word holding the carry below
/// the block cost twice the instructions: its shifts are three instructions each.)
#[inline(always)]
fn block_ends(d: u64, len: u32, base: usize, plan: &Plan, carry: &mut u32, on_end: &mut impl FnMut(usize, u32)) {
    if d == 0 {
        *carry = 0;
        return;
    }
    let mut ends = plan.at_least(d);
    // The digits from bit 0 up continue the carried run: bit `j` of them ends a run of
    // `j + 1 + carry`, long enough from bit `min - 1 - carry` on.
    let first = d.trailing_ones();
    let from = (plan.min - 1).saturating_sub(*carry);
    if *carry > 0 && from < first {
        ends |= ones_below(first) & !ones_below(from);
    }
    while ends != 0 {
        let i = ends.trailing_zeros();
        ends &= ends - 1;
        // The ones of `d` from bit `i` down, moved to the top and counted as leading zeros of
        // the complement; the zeros shifted in make it 64 when they reach bit 0.
        let ones = (!d << (63 - i)).leading_zeros();
        let run = if ones > i { (i + 1).saturating_add(*carry) } else { ones };
        on_end(base + i as usize + 1, run);
    }
    let valid = ones_below(len);
    *carry = if d == valid {
        carry.saturating_add(len)
    } else {
        // Digits at the top of the existing bytes.
        (d << (64 - len)).leading_ones()
    };
}

/// The low `n` bits set (`n <= 64`).
#[inline(always)]
fn ones_below(n: u32) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Bit `i` set when `block[i]` is an ASCII digit.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn digit_mask(block: &[u8; BLOCK]) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_set1_epi8, _mm_sub_epi8,
    };
    let mut m = 0u64;
    for (k, lane) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of the x86_64 baseline, so these instructions always exist (the
        // intrinsics are `unsafe` only because they are `#[target_feature]` functions), and
        // `lane` is 16 readable bytes, which is all `_mm_loadu_si128` (unaligned) reads.
        let lane_mask = unsafe {
            let v = _mm_loadu_si128(lane.as_ptr().cast::<__m128i>());
            // A digit is a byte whose distance from '0' is at most 9, unsigned.
            let from_zero = _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8));
            _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(from_zero, _mm_set1_epi8(9)), from_zero))
        };
        m |= u64::from(lane_mask as u16) << (16 * k);
    }
    m
}

/// Bit `i` set when `block[i]` is an ASCII digit.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn digit_mask(block: &[u8; BLOCK]) -> u64 {
    block
        .iter()
        .enumerate()
        .fold(0, |m, (i, b)| m | u64::from(b.is_ascii_digit()) << i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Byte by byte: the obviously right version.
    fn oracle(chunks: &[Vec<u8>], min: u32) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        let (mut run, mut at) = (0u32, 0);
        for b in chunks.iter().flatten() {
            at += 1;
            run = if b.is_ascii_digit() { run + 1 } else { 0 };
            if run >= min {
                out.push((at, run));
            }
        }
        out
    }

    /// What `run_ends` finds, checked to be what the portable scan finds (where the CPU has
    /// AVX-512BW, `run_ends` takes the other path).
    fn scanned(chunks: &[Vec<u8>], min: u32) -> Vec<(usize, u32)> {
        let with = |portable: bool| {
            let mut out = Vec::new();
            let (mut carry, mut base) = (0, 0);
            for c in chunks {
                let on_end = |e, r| out.push((base + e, r));
                if portable {
                    scan(c, min, &mut carry, on_end, digit_mask);
                } else {
                    run_ends(c, min, &mut carry, on_end);
                }
                base += c.len();
            }
            out
        };
        let found = with(false);
        assert_eq!(found, with(true), "run_ends and the portable scan differ (min {min})");
        found
    }

    fn byte() -> impl Strategy<Value = u8> {
        // Mostly digits, the bytes next to them, and anything.
        prop_oneof![4 => b'0'..=b'9', 1 => Just(b'/'), 1 => Just(b':'), 1 => any::<u8>()]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn finds_exactly_the_ends_a_byte_by_byte_count_finds(
            chunks in proptest::collection::vec(proptest::collection::vec(byte(), 0..200), 1..6),
            min in 1u32..=64,
        ) {
            prop_assert_eq!(scanned(&chunks, min), oracle(&chunks, min));
        }
    }

    #[test]
    fn runs_longer_than_a_block_carry_across_blocks_and_chunks() {
        let long = vec![b'7'; 300];
        for min in [1, 13, 63, 64] {
            let whole = vec![long.clone()];
            let split: Vec<Vec<u8>> = long.chunks(37).map(<[u8]>::to_vec).collect();
            assert_eq!(scanned(&whole, min), oracle(&whole, min), "min {min}");
            assert_eq!(scanned(&split, min), oracle(&split, min), "min {min} split");
        }
    }

    #[test]
    fn every_byte_value_is_classified_like_is_ascii_digit() {
        let all: Vec<u8> = (0..=255u8).collect();
        let mut block = [0u8; BLOCK];
        for part in all.chunks(BLOCK) {
            block.copy_from_slice(part);
            let want = part
                .iter()
                .enumerate()
                .fold(0u64, |m, (i, b)| m | u64::from(b.is_ascii_digit()) << i);
            assert_eq!(digit_mask(&block), want);
        }
        // And the path `run_ends` takes on this CPU: with a minimum of 1, every digit ends a run.
        let mut ends = Vec::new();
        run_ends(&all, 1, &mut 0, |e, _| ends.push(e - 1));
        let digits: Vec<usize> = (0..all.len()).filter(|&i| all[i].is_ascii_digit()).collect();
        assert_eq!(ends, digits);
    }
}
