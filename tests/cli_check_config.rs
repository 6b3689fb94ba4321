//! `nigehban check-config`: the real binary on real files; every problem is one line naming the
//! file (and line:column where TOML knows it), exit 1 if any, 0 otherwise.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn check(config: &Path, extra: &[&str]) -> Run {
    let out = Command::new(bin())
        .arg("check-config")
        .arg("--config")
        .arg(config)
        .args(extra)
        .output()
        .unwrap();
    output_raw(out)
}

fn problems(r: &Run) -> Vec<&str> {
    r.stdout.lines().filter(|l| !l.ends_with(": ok")).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bundled_config_and_rules_pass() {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nigehban.toml");
    let r = check(&cfg, &["--rules", rules_dir().to_str().unwrap()]);
    assert!(r.status.success(), "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.trim(), format!("{}: ok", cfg.display()));
}

#[test]
fn toml_syntax_error_gives_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "n.toml", "workers = 2\n\n[flow]\nmemcap_mb = = 3\n");
    let r = check(&cfg, &[]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stdout);
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with(&format!("{}:4:13: ", cfg.display())), "{p:?}");
}

#[test]
fn unknown_key_is_located_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "n.toml",
        "workers = 2\n[capture]\nbuffer_mb = 8\nbufer_size = 3\n",
    );
    let r = check(&cfg, &[]);
    assert_eq!(r.status.code(), Some(1));
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with(&format!("{}:4:1: ", cfg.display())), "{p:?}");
    assert!(p[0].contains("bufer_size"), "{p:?}");
}

#[test]
fn wrong_type_and_bad_values_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "n.toml", "workers = \"two\"\n");
    let p = check(&cfg, &[]).stdout;
    assert!(p.starts_with(&format!("{}:1:11: ", cfg.display())), "{p}");
    let cfg = write(dir.path(), "m.toml", "workers = 0\n");
    let r = check(&cfg, &[]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        r.stdout.contains("m.toml") && r.stdout.contains("workers"),
        "{}",
        r.stdout
    );
    let cfg = write(dir.path(), "h.toml", "home_net = [\"10.0.0.0/33\"]\n");
    let r = check(&cfg, &[]);
    assert!(r.stdout.contains("10.0.0.0/33"), "{}", r.stdout);
}

#[test]
fn every_missing_file_is_its_own_line_even_with_other_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "n.toml",
        concat!(
            "workers = 0\n",
            "metrics_bearer_token_file = \"no-token\"\n",
            "[judge]\nknown_values = [\"missing.nhl\"]\n",
            "[output.syslog]\nurl = \"tls://127.0.0.1:6514\"\nca = \"/nonexistent/ca.pem\"\n",
        ),
    );
    let r = check(&cfg, &[]);
    assert_eq!(r.status.code(), Some(1));
    let p = problems(&r);
    assert_eq!(p.len(), 4, "{p:#?}");
    for want in [
        "workers",
        "metrics_bearer_token_file",
        "judge.known_values[0]",
        "output.syslog.ca",
    ] {
        assert!(p.iter().any(|l| l.contains(want)), "{want} not in {p:#?}");
    }
    // Relative paths resolve against the config's directory, as the sensor resolves them.
    let missing = dir.path().join("missing.nhl");
    assert!(p.iter().any(|l| l.contains(missing.to_str().unwrap())), "{p:#?}");
}

#[test]
fn key_file_permissions_refuse_world_warn_group() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path());
    let cfg = write(dir.path(), "n.toml", "pii_key_file = \"key\"\n");
    let r = check(&cfg, &[]);
    assert!(r.status.success(), "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.is_empty(), "{}", r.stderr);

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let r = check(&cfg, &[]);
    assert!(r.status.success(), "{}", r.stdout);
    assert!(r.stderr.contains("group-readable (mode 0640)"), "{}", r.stderr);

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = check(&cfg, &[]);
    assert_eq!(r.status.code(), Some(1));
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("world-readable (mode 0644)") && p[0].contains("chmod 600"),
        "{p:?}"
    );

    // The sensor itself refuses it too, before capturing anything.
    let out = Command::new(bin())
        .args(["read", "/dev/null", "--metrics-listen", "off", "--pii-key-file"])
        .arg(&key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("world-readable"), "{err}");
}

#[test]
fn broken_rule_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::copy(rules_dir().join("card_schemes.toml"), rules.join("card_schemes.toml")).unwrap();
    write(&rules, "bad.toml", "[[rule]]\nid = \"X\"\npatterns = [\n");
    let cfg = write(dir.path(), "n.toml", "rules = \"rules\"\n");
    let r = check(&cfg, &[]);
    assert_eq!(r.status.code(), Some(1));
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains(&format!("{}:", rules.join("bad.toml").display())),
        "{p:?}"
    );
    // --rules overrides the config's directory.
    let r = check(&cfg, &["--rules", rules_dir().to_str().unwrap()]);
    assert!(r.status.success(), "{}", r.stdout);
}

#[test]
fn unknown_user_and_unreadable_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "n.toml", "[capture]\nuser = \"no-such-user-ngb\"\n");
    let r = check(&cfg, &[]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        r.stdout.contains("capture.user") && r.stdout.contains("no such user"),
        "{}",
        r.stdout
    );
    let r = check(&dir.path().join("absent.toml"), &[]);
    assert_eq!(r.status.code(), Some(1));
    assert!(r.stdout.contains("absent.toml: cannot read"), "{}", r.stdout);
}
