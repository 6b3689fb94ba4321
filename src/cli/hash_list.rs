//! `nigehban hash-list`: a CSV of customers' values → a known-values file of keyed hashes
//! (format in `judge::known`). Runs offline; the clear values never leave this process, and
//! rejected rows are reported by line number only.

use crate::judge::KnownValues;
use crate::pii::{PiiKey, PiiKind, PiiValue, ValueError};
use anyhow::{bail, Context};
use clap::Args;
use std::fmt;
use std::path::PathBuf;

/// `hash-list` flags.
#[derive(Debug, Args)]
pub struct HashListArgs {
    /// The PII key file the sensors use (`--pii-key-file`); hashes made with another key never match.
    #[arg(long, value_name = "PATH")]
    pub pii_key_file: PathBuf,
    /// CSV file with one value per row in the chosen column.
    #[arg(long, value_name = "CSV")]
    pub input: PathBuf,
    /// Known-values file to write (replaced atomically).
    #[arg(long, value_name = "PATH")]
    pub output: PathBuf,
    /// Column: a header name (the first row is then the header) or a 1-based number
    /// (default 1). With a number, a first row whose cell has no digit is taken as a header.
    #[arg(long, value_name = "NAME|N")]
    pub column: Option<String>,
    /// What the column holds; `auto` decides per value (letters: IBAN; dashed or 13 digits
    /// starting 1-7: CNIC; otherwise card).
    #[arg(long, value_enum, default_value_t = KindArg::Auto)]
    pub kind: KindArg,
}

/// `--kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    /// CNICs (dashed or 13 digits).
    Cnic,
    /// Card numbers (spaces and dashes ignored, Luhn-checked).
    Card,
    /// Pakistani IBANs (spaces ignored, mod-97-checked).
    Iban,
    /// Decide per value.
    Auto,
}

impl KindArg {
    fn kind(self) -> Option<PiiKind> {
        match self {
            KindArg::Cnic => Some(PiiKind::Cnic),
            KindArg::Card => Some(PiiKind::Card),
            KindArg::Iban => Some(PiiKind::Iban),
            KindArg::Auto => None,
        }
    }
}

/// Line numbers of rejected rows listed in the report; the rest are only counted.
const LISTED_REJECTS: usize = 20;

/// What `hash-list` did.
#[derive(Debug, Default)]
pub struct HashListReport {
    /// Where the file was written.
    pub output: PathBuf,
    /// Data rows read (header excluded).
    pub rows: usize,
    /// Distinct values written.
    pub written: usize,
    /// Valid rows whose value was already seen.
    pub duplicates: usize,
    /// Valid values by kind: CNIC, card, IBAN.
    pub by_kind: [usize; 3],
    /// Rejected rows.
    pub rejected: usize,
    /// The first rejected rows: 1-based CSV line and the reason (never the value).
    pub rejects: Vec<(u64, ValueError)>,
}

impl fmt::Display for HashListReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} distinct values hashed ({} CNIC, {} card, {} IBAN) from {} rows; duplicates: {}",
            self.output.display(),
            self.written,
            self.by_kind[0],
            self.by_kind[1],
            self.by_kind[2],
            self.rows,
            self.duplicates
        )?;
        if self.rejected > 0 {
            write!(f, "; rejected: {} rows:", self.rejected)?;
            for (i, (line, why)) in self.rejects.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                write!(f, "{sep}line {line} ({why})")?;
            }
            if self.rejected > self.rejects.len() {
                write!(f, " and {} more", self.rejected - self.rejects.len())?;
            }
        }
        Ok(())
    }
}

/// Which column, once the header (if any) is known.
enum Column {
    Name(String),
    Number(usize),
}

/// Reads the CSV, hashes every valid value and writes the known-values file.
pub fn run(args: &HashListArgs) -> anyhow::Result<HashListReport> {
    let key = PiiKey::from_file(&args.pii_key_file)
        .with_context(|| format!("cannot read PII key file {}", args.pii_key_file.display()))?;
    let column = match args.column.as_deref().map(str::trim) {
        None => Column::Number(0),
        Some(c) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) => match c.parse::<usize>() {
            Ok(n) if n >= 1 => Column::Number(n - 1),
            _ => bail!("--column {c}: column numbers start at 1"),
        },
        Some("") => bail!("--column is empty: give a header name or a 1-based number"),
        Some(name) => Column::Name(name.to_string()),
    };
    let input = std::fs::File::open(&args.input).with_context(|| format!("cannot open {}", args.input.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(std::io::BufReader::new(input));
    let mut report = HashListReport {
        output: args.output.clone(),
        ..HashListReport::default()
    };
    let mut hashes = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut index = None;
    let mut first = true;
    loop {
        let more = reader.read_byte_record(&mut record).map_err(|e| {
            // The csv crate's message can quote the offending bytes; keep only the position.
            let line = e.position().map_or(0, |p| p.line());
            anyhow::anyhow!(
                "{}: CSV error at line {line}: not valid CSV (check quoting)",
                args.input.display()
            )
        })?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, |p| p.line());
        let col = match (&column, index) {
            (_, Some(i)) => i,
            (Column::Name(name), None) => {
                let found = record
                    .iter()
                    .position(|h| h.trim_ascii().eq_ignore_ascii_case(name.as_bytes()));
                let Some(i) = found else {
                    let names: Vec<String> = record.iter().map(|h| String::from_utf8_lossy(h).into_owned()).collect();
                    bail!(
                        "{}: no column {name:?} in the header (line {line}); columns: {}",
                        args.input.display(),
                        names.join(", ")
                    );
                };
                index = Some(i);
                first = false;
                continue;
            }
            (Column::Number(n), None) => {
                index = Some(*n);
                *n
            }
        };
        let cell = record.get(col).unwrap_or(b"");
        if std::mem::take(&mut first) && !cell.iter().any(u8::is_ascii_digit) {
            continue; // a header row
        }
        report.rows += 1;
        match PiiValue::parse(args.kind.kind(), cell) {
            Ok(v) => {
                report.by_kind[v.kind() as usize] += 1;
                hashes.push(key.hash(&v));
            }
            Err(why) => {
                report.rejected += 1;
                if report.rejects.len() < LISTED_REJECTS {
                    report.rejects.push((line, why));
                }
            }
        }
    }
    if hashes.is_empty() {
        bail!(
            "{}: no valid value in {} rows{}: nothing written",
            args.input.display(),
            report.rows,
            if report.rejected > 0 {
                " (see --column and --kind)"
            } else {
                ""
            }
        );
    }
    let valid = hashes.len();
    let set = KnownValues::from_hashes(hashes);
    report.written = set.len();
    report.duplicates = valid - set.len();
    set.write(&args.output, &key)?;
    Ok(report)
}
