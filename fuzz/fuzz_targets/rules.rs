//! Rule loader: fuzzer bytes as a rule file (TOML → RuleSet, pattern probing through Hyperscan).
//! It must refuse bad files with an error, never panic. With a leading `+` the shipped rule
//! files are loaded alongside, so duplicate ids and card-scheme references are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nigehban::rules::RuleSet;
use std::path::Path;
use std::sync::OnceLock;

/// One directory per process, reused: creating one per input would dominate the run time.
fn dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temporary directory"))
        .path()
}

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let dir = dir();
    let with_shipped = text.starts_with('+');
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    for entry in std::fs::read_dir(&shipped).expect("shipped rules directory") {
        let path = entry.expect("shipped rule file").path();
        let Some(name) = path.file_name() else { continue };
        let copy = dir.join(name);
        if with_shipped {
            if !copy.exists() {
                std::fs::copy(&path, &copy).expect("copy shipped rule file");
            }
        } else {
            let _ = std::fs::remove_file(&copy);
        }
    }
    std::fs::write(dir.join("zz-fuzz.toml"), text.trim_start_matches('+')).expect("write rule file");
    if let Ok(set) = RuleSet::load_dir(dir) {
        assert!(!set.rules().is_empty(), "an empty rule set was accepted");
    }
});
