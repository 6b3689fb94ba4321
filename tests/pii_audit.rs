//! No personal value ever leaves the sensor in clear: `deploy/test.sh` runs the whole suite with
//! `NIGEHBAN_TEST_AUDIT_DIR` set, so every run of the binary keeps a copy of its stdout, stderr and
//! alert file there (see `tests/audit/nigehban-audit.sh`), and then runs the ignored test below
//! over that directory and the suite's own log. Every CNIC, card number or IBAN shape that passes
//! its validator is a failure, reported masked, with the file it was in.
//!
//! The detector is independent of the sensor's matcher on purpose: it looks for the shapes a
//! person would recognise (dashed and bare CNICs, Luhn-valid card numbers with or without
//! separators, mod-97-valid PK IBANs), not for what the rules say.

use nigehban::pii::{PiiKind, PiiValue};
use nigehban::validate::{luhn_valid, mod97_valid};
use std::path::{Path, PathBuf};

/// A value found in clear: its kind, masked form and where.
#[derive(Debug, PartialEq, Eq)]
struct Exposure {
    file: PathBuf,
    kind: PiiKind,
    masked: String,
}

/// Card prefixes of the schemes the sensor knows (Visa, Mastercard, Amex, Discover, JCB, UnionPay,
/// PayPak); anything else Luhn-valid is as likely to be an ID as a card.
fn card_prefix(d: &[u8]) -> bool {
    let n = |k: usize| d[..k].iter().fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
    matches!(d[0], b'4')
        || (51..=55).contains(&n(2))
        || (2221..=2720).contains(&n(4))
        || matches!(n(2), 34 | 37 | 35 | 62 | 65 | 22)
        || n(4) == 6011
}

/// Every exposure in `text`.
fn scan(file: &Path, text: &[u8]) -> Vec<Exposure> {
    let mut out = Vec::new();
    let mut push = |kind: PiiKind, digits: &[u8]| {
        let v = PiiValue::new(kind, digits).expect("validated shape");
        out.push(Exposure {
            file: file.to_path_buf(),
            kind,
            masked: v.masked(),
        });
    };
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < text.len() {
        // PK IBAN: PK, 2 check digits, 4 bank letters, 16 digits, spaces allowed between groups.
        if text[i..].starts_with(b"PK") && (i == 0 || !word(text[i - 1])) {
            let compact: Vec<u8> = text[i..]
                .iter()
                .take(40)
                .copied()
                .filter(|b| *b != b' ')
                .take(24)
                .collect();
            if compact.len() == 24 && compact.iter().all(u8::is_ascii_alphanumeric) && mod97_valid(&compact) {
                push(PiiKind::Iban, &compact);
            }
        }
        if !text[i].is_ascii_digit() || (i > 0 && word(text[i - 1])) {
            i += 1;
            continue;
        }
        // A run of digits with single space or dash separators, bounded by non-word bytes.
        let start = i;
        let mut digits = Vec::with_capacity(24);
        let mut j = i;
        while j < text.len() {
            let b = text[j];
            if b.is_ascii_digit() {
                digits.push(b);
                j += 1;
            } else if (b == b' ' || b == b'-') && j + 1 < text.len() && text[j + 1].is_ascii_digit() {
                j += 1;
            } else {
                break;
            }
        }
        let bounded = j == text.len() || !word(text[j]);
        let run = &text[start..j];
        if bounded {
            let dashed_cnic = run.len() == 15 && run[5] == b'-' && run[13] == b'-';
            if digits.len() == 13 && (b'1'..=b'7').contains(&digits[0]) && (dashed_cnic || run.len() == 13) {
                push(PiiKind::Cnic, &digits);
            } else if (13..=19).contains(&digits.len()) && card_prefix(&digits) && luhn_valid(&digits) {
                push(PiiKind::Card, &digits);
            }
        }
        i = j.max(i + 1);
    }
    out
}

fn scan_dir(dir: &Path) -> (usize, Vec<Exposure>) {
    let mut files = 0;
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                found.extend(scan(&p, &std::fs::read(&p).unwrap()));
            }
        }
    }
    (files, found)
}

#[test]
fn the_detector_finds_every_shape_and_ignores_hashes_masks_and_timestamps() {
    let f = Path::new("t");
    // Synthetic values (valid shapes, not real people or cards).
    let text = b"cnic=35202-1234567-3 bare 4210112345671 card 4532 0173 9246 5814, 5228-4716-3059-2747\n\
        {\"iban\":\"PK36SCBL0000001123456702\"}";
    let kinds: Vec<PiiKind> = scan(f, text).into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            PiiKind::Cnic,
            PiiKind::Cnic,
            PiiKind::Card,
            PiiKind::Card,
            PiiKind::Iban
        ]
    );
    let masked = scan(f, b"35202-1234567-3")[0].masked.clone();
    assert!(!masked.contains("1234567"), "exposures are reported masked");
    let clean = b"35202-*******-3 453201******5814 hash=a1735202123456739f \
        ts=2026-11-22T10:00:00.123Z id 8123456789012 count 1735202123456 x17352021234567";
    // `1735202123456` is a millisecond timestamp shape: bare 13 digits starting with 1 do count
    // as a CNIC here (the auditor is stricter than the sensor's confidence rules).
    let found = scan(f, clean);
    assert_eq!(found.len(), 1, "only the bare 13-digit number is a CNIC shape");
}

#[test]
#[ignore = "run by deploy/test.sh after the whole suite, over NIGEHBAN_TEST_AUDIT_DIR"]
fn no_output_of_the_test_suite_carries_a_value_in_clear() {
    let dir = PathBuf::from(std::env::var_os("NIGEHBAN_TEST_AUDIT_DIR").expect("set NIGEHBAN_TEST_AUDIT_DIR"));
    let (files, found) = scan_dir(&dir);
    assert!(
        files > 0,
        "{}: no outputs were kept; was the suite run with the audit wrapper?",
        dir.display()
    );
    for e in &found {
        eprintln!("{}: {} {} in clear", e.file.display(), e.kind.as_str(), e.masked);
    }
    assert!(
        found.is_empty(),
        "{} values in clear across {files} output files",
        found.len()
    );
    eprintln!("audited {files} output files: no value in clear");
}
