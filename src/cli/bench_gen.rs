//! `nigehban bench-gen`: writes a benchmark capture (see `synth::bench`) of a given size, streamed
//! to disk so gigabytes need no more memory than a few segments.

use crate::synth::bench::{self, BenchConfig, BenchStats, Mix};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// `bench-gen` flags.
#[derive(Debug, Args)]
pub struct BenchGenArgs {
    /// Traffic mix: `cleartext` (HTTP), `isp` (mostly TLS, some HTTP and DNS) or `small` (64–200 byte payloads).
    #[arg(long, value_parser = parse_mix, default_value = "cleartext")]
    pub mix: Mix,
    /// Size of the pcap file: bytes, or with a K, M or G suffix (powers of 1024), e.g. `256M`, `2G`.
    #[arg(long, value_parser = parse_size, default_value = "256M")]
    pub size: u64,
    /// PRNG seed: the same seed, mix and size give the same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output pcap file (replaced).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Parses `--mix`.
pub fn parse_mix(s: &str) -> Result<Mix, String> {
    match s {
        "cleartext" => Ok(Mix::Cleartext),
        "isp" => Ok(Mix::Isp),
        "small" => Ok(Mix::Small),
        _ => Err(format!("unknown mix {s:?}: use cleartext, isp or small")),
    }
}

/// Parses a size such as `1G`, `256M`, `512K`, `100MB` or a plain byte count.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let digits = upper.trim_end_matches('B').trim_end_matches('I');
    let (num, shift) = match digits.chars().last() {
        Some('K') => (&digits[..digits.len() - 1], 10),
        Some('M') => (&digits[..digits.len() - 1], 20),
        Some('G') => (&digits[..digits.len() - 1], 30),
        _ => (digits, 0),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad size {s:?}: give bytes or a number with K, M or G, e.g. 256M"))?;
    if n == 0 {
        return Err(format!("bad size {s:?}: must be more than zero"));
    }
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("bad size {s:?}: too large"))
}

/// Writes the capture and returns a one-line summary.
pub fn run(a: &BenchGenArgs) -> anyhow::Result<String> {
    let cfg = BenchConfig::new(a.mix, a.size, a.seed);
    let s: BenchStats = bench::generate(&cfg, &a.out).with_context(|| format!("bench-gen --mix {}", a.mix.as_str()))?;
    Ok(format!(
        "{}: {} mix, {} MiB, {} packets, {} TCP flows, payload {} MiB ({} MiB egress), {} planted values",
        a.out.display(),
        a.mix.as_str(),
        s.file_bytes >> 20,
        s.packets,
        s.flows,
        s.payload_bytes >> 20,
        s.egress_payload_bytes >> 20,
        s.planted.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes_and_reject_nonsense() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("100MB"), Ok(100 << 20));
        assert_eq!(parse_size("4KiB"), Ok(4 << 10));
        assert_eq!(parse_size("12345"), Ok(12345));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").unwrap_err().contains("256M"));
        assert!(parse_size("99999999999G").is_err());
        assert_eq!(parse_mix("isp"), Ok(Mix::Isp));
        assert!(parse_mix("tls").unwrap_err().contains("cleartext, isp or small"));
    }
}
