//! The bundled demo capture is exactly what `synth::demo()` builds, and the sensor finds in it
//! what the README promises. Regenerate with `NIGEHBAN_REGEN_DEMO=1 cargo test --test demo`.

mod common;

use common::*;
use std::path::Path;

#[test]
fn demo_capture_is_current_and_alerts_as_documented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/demo.pcap");
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("demo.pcap");
    nigehban::synth::write_pcap(&fresh, &nigehban::synth::demo()).unwrap();
    if std::env::var_os("NIGEHBAN_REGEN_DEMO").is_some() {
        std::fs::copy(&fresh, &path).unwrap();
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&fresh).unwrap(),
        "tests/data/demo.pcap is stale: regenerate it (see this file's doc)"
    );

    let run = read_files(dir.path(), &[path.as_path()], &[]);
    assert!(run.status.success(), "{}", run.stderr);
    let mut got: Vec<(String, String)> = run
        .alerts
        .iter()
        .flat_map(|a| {
            let src = a["source"]["ip"].as_str().unwrap().to_string();
            a["pii"]["matches"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |m| (src.clone(), m["masked"].as_str().unwrap().to_string()))
        })
        .collect();
    got.sort();
    let want: Vec<(String, String)> = [
        ("10.20.1.15", "35202-*******-2"),
        ("10.20.1.18", "42101-*******-3"),
        ("192.168.10.5", "378291*****7209"),
        ("192.168.10.5", "453201******5814"),
        ("192.168.10.5", "522847******2747"),
        ("fd00::15", "35202-*******-2"),
        ("fd00::15", "601147******1870"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
}
