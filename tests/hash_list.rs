//! `nigehban hash-list` through the real binary: a CSV in, a known-values file out, whose hashes
//! are checked against HMACs computed here independently; bad rows are reported by line number
//! without their values; a file made with another key is refused.

mod common;

use common::*;
use nigehban::judge::{KnownError, KnownValues};
use nigehban::pii::{PiiHash, PiiKey};
use std::path::Path;
use std::process::Command;

fn hash_list(dir: &Path, csv: &str, extra: &[&str]) -> Run {
    let input = dir.join("customers.csv");
    std::fs::write(&input, csv).unwrap();
    let key = write_key(dir);
    let out = Command::new(bin())
        .arg("hash-list")
        .arg("--pii-key-file")
        .arg(&key)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(dir.join("known.nhl"))
        .args(extra)
        .output()
        .unwrap();
    output_raw(out)
}

fn hash_of(normalised: &str) -> PiiHash {
    // `expected_hash` keeps digits only; an IBAN's letters are hashed too, so compute it here.
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY).unwrap();
    mac.update(normalised.as_bytes());
    PiiHash(mac.finalize().into_bytes().into())
}

fn load(dir: &Path) -> KnownValues {
    KnownValues::load(&dir.join("known.nhl"), &PiiKey::new(KEY)).unwrap()
}

const CSV: &str = "name,cnic,card,iban\n\
Ali,35202-1234567-1,4000 0000 0000 0010,PK36SCBL0000001123456702\n\
Sara,4210176543213,5555-5555-5555-4444,pk72 habb 0012 3456 7890 1234\n\
Bad1,05202-1234567-1,4000000000000011,PK37SCBL0000001123456702\n\
Dup,3520212345671,4000000000000010,PK36SCBL0000001123456702\n\
\"Quoted, name\",\"61101-1111111-8\",,\n\
Bad2,352021234567,x,\n";

#[test]
fn cnic_column_by_name_round_trips_and_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let r = hash_list(dir.path(), CSV, &["--column", "CNIC", "--kind", "cnic"]);
    assert!(r.status.success(), "{}", r.stderr);
    let line = r.stdout.trim();
    assert!(
        line.contains("3 distinct values hashed (4 CNIC, 0 card, 0 IBAN) from 6 rows; duplicates: 1"),
        "{line}"
    );
    assert!(
        line.ends_with("rejected: 2 rows: line 4 (a CNIC starts with 1-7), line 7 (wrong length for a CNIC)"),
        "{line}"
    );
    for clear in ["05202", "352021234567", "Bad1"] {
        assert!(
            !r.stdout.contains(clear) && !r.stderr.contains(clear),
            "printed {clear}"
        );
    }
    let set = load(dir.path());
    assert_eq!(set.len(), 3);
    for v in ["3520212345671", "4210176543213", "6110111111118"] {
        assert!(set.contains(&hash_of(v)), "missing a planted CNIC");
    }
    assert!(!set.contains(&hash_of("0520212345671")));
}

#[test]
fn card_and_iban_columns_by_number_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let r = hash_list(dir.path(), CSV, &["--column", "3", "--kind", "card"]);
    assert!(r.status.success(), "{}", r.stderr);
    assert!(
        r.stdout.contains("(0 CNIC, 3 card, 0 IBAN) from 6 rows"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "rejected: 3 rows: line 4 (card number fails the Luhn check), line 6 (empty value), \
             line 7 (unexpected characters for a card number)"
        ),
        "{}",
        r.stdout
    );
    let set = load(dir.path());
    assert_eq!(set.len(), 2);
    assert!(set.contains(&hash_of("4000000000000010")) && set.contains(&hash_of("5555555555554444")));

    let r = hash_list(dir.path(), CSV, &["--column", "iban", "--kind", "iban"]);
    assert!(r.status.success(), "{}", r.stderr);
    let set = load(dir.path());
    assert_eq!(set.len(), 2);
    assert!(set.contains(&hash_of("PK36SCBL0000001123456702")));
    assert!(set.contains(&hash_of("PK72HABB0012345678901234")));
}

#[test]
fn headerless_csv_with_auto_kind() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "35202-1234567-1\n4000000000000010\nPK36 SCBL 0000 0011 2345 6702\n";
    let r = hash_list(dir.path(), csv, &[]);
    assert!(r.status.success(), "{}", r.stderr);
    assert!(
        r.stdout.contains("(1 CNIC, 1 card, 1 IBAN) from 3 rows"),
        "{}",
        r.stdout
    );
    let set = load(dir.path());
    for v in ["3520212345671", "4000000000000010", "PK36SCBL0000001123456702"] {
        assert!(set.contains(&hash_of(v)));
    }
}

#[test]
fn a_file_made_with_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = hash_list(dir.path(), CSV, &["--column", "cnic"]);
    assert!(r.status.success(), "{}", r.stderr);
    let e = KnownValues::load(&dir.path().join("known.nhl"), &PiiKey::new(b"some other key")).unwrap_err();
    assert!(matches!(e, KnownError::WrongKey { .. }), "{e}");
    assert!(e.to_string().contains("known.nhl"), "{e}");
}

#[test]
fn mistakes_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = hash_list(dir.path(), CSV, &["--column", "passport"]);
    assert_eq!(r.status.code(), Some(1));
    let err = r.stderr.trim();
    assert!(
        err.starts_with("nigehban: error: ") && err.contains("\"passport\"") && err.contains("name, cnic, card, iban"),
        "{err}"
    );
    assert!(!err.contains('\n'));
    let r = hash_list(dir.path(), "a,b\nx,y\n", &["--column", "2"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(r.stderr.contains("no valid value"), "{}", r.stderr);
    assert!(!dir.path().join("known.nhl").exists(), "nothing written on error");
    let r = hash_list(dir.path(), CSV, &["--column", "0"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(r.stderr.contains("start at 1"), "{}", r.stderr);
}
