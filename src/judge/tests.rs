use super::*;
use crate::matcher::Finding;

fn finding(kind: PiiKind, value: &str, confidence: Confidence) -> Finding {
    Finding {
        rule: 0,
        value: PiiValue::parse(Some(kind), value.as_bytes()).unwrap(),
        offset: 0,
        confidence,
        keyword: false,
    }
}

fn facts(receiver: &str) -> Facts<'static> {
    Facts {
        receiver: receiver.parse().unwrap(),
        http_host: "",
        location: None,
    }
}

fn key() -> PiiKey {
    PiiKey::new(b"judge test key")
}

#[test]
fn min_confidence_decides_what_alerts() {
    let k = key();
    let j = Judge::new(Confidence::Medium);
    let low = finding(PiiKind::Cnic, "1732212345678", Confidence::Low);
    let med = finding(PiiKind::Cnic, "3520212345671", Confidence::Medium);
    let f = facts("198.51.100.7");
    assert_eq!(
        j.judge(&low, &k.hash(&low.value), &f),
        Verdict::BelowMinimum(Confidence::Low)
    );
    assert_eq!(
        j.judge(&med, &k.hash(&med.value), &f),
        Verdict::Alert {
            confidence: Confidence::Medium,
            known: false
        }
    );
    let strict = Judge::new(Confidence::High);
    assert_eq!(
        strict.judge(&med, &k.hash(&med.value), &f),
        Verdict::BelowMinimum(Confidence::Medium)
    );
    let all = Judge::new(Confidence::Low);
    assert!(matches!(
        all.judge(&low, &k.hash(&low.value), &f),
        Verdict::Alert { .. }
    ));
    assert_eq!(Judge::default().min_confidence(), Confidence::Medium);
}

#[test]
fn dns_cnic_label_raises_a_cnic_to_medium_only() {
    let k = key();
    let j = Judge::default();
    let mut f = facts("198.51.100.7");
    f.location = Some(Location::DnsCnicLabel);
    let bare = finding(PiiKind::Cnic, "3520212345671", Confidence::Low);
    assert_eq!(
        j.judge(&bare, &k.hash(&bare.value), &f),
        Verdict::Alert {
            confidence: Confidence::Medium,
            known: false
        }
    );
    let high = finding(PiiKind::Cnic, "3520212345671", Confidence::High);
    assert!(matches!(
        j.judge(&high, &k.hash(&high.value), &f),
        Verdict::Alert {
            confidence: Confidence::High,
            ..
        }
    ));
    // Not a CNIC, or not the label location: no raise.
    let card = finding(PiiKind::Card, "4222222222222", Confidence::Low);
    assert!(matches!(
        j.judge(&card, &k.hash(&card.value), &f),
        Verdict::BelowMinimum(_)
    ));
    f.location = Some(Location::DnsQuery);
    assert!(matches!(
        j.judge(&bare, &k.hash(&bare.value), &f),
        Verdict::BelowMinimum(_)
    ));
}

fn settings_with(known: &[PathBuf]) -> JudgeSettings {
    JudgeSettings {
        known_values: known.to_vec(),
        allow_destinations: vec!["203.0.113.0/24".parse().unwrap()],
        allow_http_hosts: vec![HostPattern::parse("*.bank.example").unwrap()],
        test_values: TestValues(vec!["42101-7654321-3".into()]),
        ..JudgeSettings::default()
    }
}

#[test]
fn order_allow_lists_then_known_then_location_then_minimum() {
    let k = key();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("known.nhl");
    let known_cnic = finding(PiiKind::Cnic, "6110111111118", Confidence::Low);
    let test_cnic = finding(PiiKind::Cnic, "4210176543213", Confidence::High);
    // The test value is on the known list too: the allow-list wins.
    KnownValues::from_hashes([k.hash(&known_cnic.value), k.hash(&test_cnic.value)])
        .write(&list, &k)
        .unwrap();
    let j = Judge::from_judge_settings(&settings_with(&[list]), &k).unwrap();
    assert_eq!(j.known_values(), 2);
    assert_eq!(j.test_values(), BUILTIN_TEST_CARDS.len() + 1);
    let out = facts("198.51.100.7");
    let hk = k.hash(&known_cnic.value);

    // Known: a bare 13-digit number without context becomes high.
    assert_eq!(
        j.judge(&known_cnic, &hk, &out),
        Verdict::Alert {
            confidence: Confidence::High,
            known: true
        }
    );
    // Allowed destination, then host, then test value — each before the known list.
    assert_eq!(
        j.judge(&known_cnic, &hk, &facts("203.0.113.9")),
        Verdict::Suppressed(Suppression::Destination)
    );
    let host = Facts {
        http_host: "API.Bank.Example:443",
        ..out
    };
    assert_eq!(
        j.judge(&known_cnic, &hk, &host),
        Verdict::Suppressed(Suppression::HttpHost)
    );
    let other_host = Facts {
        http_host: "bank.example.evil",
        ..out
    };
    assert!(matches!(
        j.judge(&known_cnic, &hk, &other_host),
        Verdict::Alert { known: true, .. }
    ));
    assert_eq!(
        j.judge(&test_cnic, &k.hash(&test_cnic.value), &out),
        Verdict::Suppressed(Suppression::TestValue)
    );
    // Built-in test PANs, in any spelling (the hash is over the digits).
    let visa = finding(PiiKind::Card, "4111 1111 1111 1111", Confidence::High);
    assert_eq!(
        j.judge(&visa, &k.hash(&visa.value), &out),
        Verdict::Suppressed(Suppression::TestValue)
    );
    // A real-looking card is not suppressed.
    let other = finding(PiiKind::Card, "4000000000000010", Confidence::Medium);
    assert!(matches!(
        j.judge(&other, &k.hash(&other.value), &out),
        Verdict::Alert { known: false, .. }
    ));
}

#[test]
fn builtin_test_cards_can_be_turned_off() {
    let k = key();
    let s = JudgeSettings {
        builtin_test_cards: false,
        ..JudgeSettings::default()
    };
    let j = Judge::from_judge_settings(&s, &k).unwrap();
    assert_eq!(j.test_values(), 0);
    let visa = finding(PiiKind::Card, "4111111111111111", Confidence::Medium);
    assert!(matches!(
        j.judge(&visa, &k.hash(&visa.value), &facts("198.51.100.7")),
        Verdict::Alert { .. }
    ));
}

#[test]
fn errors_name_the_file_or_key_and_never_the_value() {
    let k = key();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("other-key.nhl");
    KnownValues::from_hashes([k.hash(&PiiValue::parse(None, b"3520212345671").unwrap())])
        .write(&list, &PiiKey::new(b"another key"))
        .unwrap();
    let e = format!(
        "{:#}",
        Judge::from_judge_settings(&settings_with(&[list]), &k).unwrap_err()
    );
    assert!(
        e.contains("other-key.nhl") && e.contains("different PII key") && !e.contains('\n'),
        "{e}"
    );
    let bad = JudgeSettings {
        test_values: TestValues(vec!["3520212345671".into(), "4111111111111112".into()]),
        ..JudgeSettings::default()
    };
    let e = format!("{:#}", Judge::from_judge_settings(&bad, &k).unwrap_err());
    assert!(
        e.contains("allow.test_values[1]") && e.contains("Luhn") && !e.contains("4111"),
        "{e}"
    );
    assert_eq!(format!("{:?}", bad.test_values), "TestValues(2)");
    assert!(!format!("{bad:?}").contains("3520212345671"));
}

#[test]
fn bulk_thresholds() {
    use Severity::*;
    for (base, n, want) in [
        (High, 1, High),
        (High, 9, High),
        (High, 10, Critical),
        (Low, 10, Medium),
        (Medium, 99, High),
        (Low, 100, Critical),
        (Critical, 5, Critical),
        (Medium, 0, Medium),
    ] {
        assert_eq!(bulk_severity(base, n), want, "{base:?} x {n}");
    }
}

#[test]
fn without_hash_agrees_with_judge_where_it_decides() {
    let k = key();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("known.nhl");
    let plain = Judge::from_judge_settings(&settings_with(&[]), &k).unwrap();
    KnownValues::from_hashes([k.hash(&PiiValue::parse(None, b"6110111111118").unwrap())])
        .write(&list, &k)
        .unwrap();
    let with_list = Judge::from_judge_settings(&settings_with(&[list]), &k).unwrap();
    let out = facts("198.51.100.7");
    let low = finding(PiiKind::Cnic, "1732212345678", Confidence::Low);
    let med = finding(PiiKind::Cnic, "3520212345671", Confidence::Medium);
    let visa = finding(PiiKind::Card, "4111111111111111", Confidence::High);
    let allowed = facts("203.0.113.1");
    let mut dns = out;
    dns.location = Some(Location::DnsCnicLabel);
    // Decided without the hash: allow-lists, and below-minimum when no list could lift it.
    assert_eq!(
        plain.judge_without_hash(&low, &out),
        Some(Verdict::BelowMinimum(Confidence::Low))
    );
    assert_eq!(
        plain.judge_without_hash(&med, &allowed),
        Some(Verdict::Suppressed(Suppression::Destination))
    );
    // Needs the hash: a known-value list could lift it, it could alert, or it could be a test value.
    assert_eq!(with_list.judge_without_hash(&low, &out), None);
    assert_eq!(plain.judge_without_hash(&med, &out), None);
    assert_eq!(plain.judge_without_hash(&visa, &out), None);
    assert_eq!(plain.judge_without_hash(&low, &dns), None);
    for j in [&plain, &with_list] {
        for f in [&low, &med, &visa] {
            for fa in [&out, &allowed, &dns] {
                if let Some(v) = j.judge_without_hash(f, fa) {
                    assert_eq!(v, j.judge(f, &k.hash(&f.value), fa));
                }
            }
        }
    }
}
