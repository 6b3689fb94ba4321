use super::*;
use crate::pii::{Confidence, PiiHash, PiiKey};
use proptest::prelude::*;
use std::sync::OnceLock;

fn matcher() -> &'static Matcher {
    static M: OnceLock<Matcher> = OnceLock::new();
    M.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        Matcher::new(RuleSet::load_dir(&dir).expect("bundled rules load")).expect("matcher builds")
    })
}

fn key() -> &'static PiiKey {
    static K: OnceLock<PiiKey> = OnceLock::new();
    K.get_or_init(|| PiiKey::new(b"test key"))
}

/// What a finding looks like from outside: rule id, offset, mask, keyed hash and confidence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    offset: u64,
    rule: String,
    masked: String,
    hash: PiiHash,
    confidence: Confidence,
}

fn seen(m: &Matcher, f: &Finding) -> Seen {
    assert_eq!(f.keyword, f.confidence > m.rule(f.rule).confidence);
    Seen {
        rule: m.rule(f.rule).id.clone(),
        offset: f.offset,
        masked: f.value.masked(),
        hash: key().hash(&f.value),
        confidence: f.confidence,
    }
}

/// Findings that alert at the default `--min-confidence`.
fn alerting(v: Vec<Seen>) -> Vec<Seen> {
    v.into_iter()
        .filter(|s| s.confidence >= crate::rules::DEFAULT_MIN_CONFIDENCE)
        .collect()
}

/// The bundled rules with the keyword search always run (the prefilter's oracle).
fn exact_keywords() -> &'static Matcher {
    static M: OnceLock<Matcher> = OnceLock::new();
    M.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        Matcher::oracle(RuleSet::load_dir(&dir).expect("bundled rules load")).expect("matcher builds")
    })
}

/// Feeds `chunks` in order (`None` = gap), then finishes. Findings sorted.
fn run(chunks: &[Option<&[u8]>]) -> Vec<Seen> {
    run_with(matcher(), chunks)
}

fn run_with(m: &Matcher, chunks: &[Option<&[u8]>]) -> Vec<Seen> {
    scan_chunks(m, &mut m.worker().unwrap(), chunks)
}

/// Feeds `chunks` in order (`None` = gap) to a new direction scanned with `w`, then finishes.
/// Findings sorted.
fn scan_chunks(m: &Matcher, w: &mut WorkerScratch, chunks: &[Option<&[u8]>]) -> Vec<Seen> {
    let mut s = DirScanner::default();
    let mut v = Vec::new();
    let mut out = |f: Finding| v.push(seen(m, &f));
    for c in chunks {
        match c {
            Some(c) => s.feed(m, w, c, &mut out),
            None => s.gap(m, w, &mut out),
        }
    }
    s.finish(m, w, &mut out);
    assert_eq!(s.memory(), 0);
    v.sort();
    v
}

fn whole(text: &[u8]) -> Vec<Seen> {
    run(&[Some(text)])
}

fn bytewise(text: &[u8]) -> Vec<Seen> {
    let chunks: Vec<Option<&[u8]>> = text.chunks(1).map(Some).collect();
    run(&chunks)
}

fn ids(v: &[Seen]) -> Vec<(&str, u64, &str, &str)> {
    v.iter()
        .map(|s| (s.rule.as_str(), s.offset, s.masked.as_str(), s.confidence.as_str()))
        .collect()
}

const MIXED: &[u8] =
    b"GET /?cnic=35202-1234567-1&x=1 HTTP/1.1\r\nnic: 4210176543213\r\npan 4111 1111 1111 1111;5555555555554444.";

#[test]
fn whole_stream_findings() {
    assert_eq!(
        ids(&whole(MIXED)),
        vec![
            ("NGB-CNIC-001", 11, "35202-*******-1", "high"),
            ("NGB-CNIC-002", 46, "42101-*******-3", "medium"),
            ("NGB-CARD-002", 65, "411111******1111", "high"),
            ("NGB-CARD-001", 85, "555555******4444", "medium"),
        ]
    );
}

#[test]
fn split_at_every_offset_into_two() {
    let want = whole(MIXED);
    for i in 0..=MIXED.len() {
        let got = run(&[Some(&MIXED[..i]), Some(&MIXED[i..])]);
        assert_eq!(got, want, "split at {i}");
    }
}

#[test]
fn split_at_every_pair_of_offsets_into_three() {
    let text: &[u8] = b"id_card 3520212345671,4111-1111-1111-1111 x 3782 822463 10005; 35202-1234567-1";
    let want = whole(text);
    assert_eq!(want.len(), 4, "{want:?}");
    for i in 0..=text.len() {
        for j in i..=text.len() {
            let got = run(&[Some(&text[..i]), Some(&text[i..j]), Some(&text[j..])]);
            assert_eq!(got, want, "split at {i},{j}");
        }
    }
    assert_eq!(bytewise(text), want);
}

#[test]
fn context_keyword_in_an_earlier_chunk() {
    let got = run(&[Some(b"...National_ID"), Some(b": "), Some(b"3520212345671 ")]);
    assert_eq!(ids(&got), vec![("NGB-CNIC-002", 16, "35202-*******-1", "medium")]);
    // The same number without a keyword within 48 bytes stays low (found, not alerted).
    // ("nic" alone is not a keyword inside "cnic", so only "cnic" itself counts.)
    let far = [&b"cnic"[..], &[b' '; 45], b"3520212345671 "].concat();
    assert_eq!(ids(&whole(&far)), vec![("NGB-CNIC-002", 49, "35202-*******-1", "low")]);
    let near = [&b"cnic"[..], &[b' '; 44], b"3520212345671 "].concat();
    assert_eq!(
        ids(&whole(&near)),
        vec![("NGB-CNIC-002", 48, "35202-*******-1", "medium")]
    );
    // A keyword followed by another number does not vouch for a timestamp after that.
    let ts = b"national_id=42101-7654321-3&{\"ts\":1732212345678}";
    assert_eq!(
        ids(&whole(ts)),
        vec![
            ("NGB-CNIC-001", 12, "42101-*******-3", "high"),
            ("NGB-CNIC-002", 34, "17322-*******-8", "low"),
        ]
    );
}

#[test]
fn boundary_digit_in_the_next_chunk_suppresses() {
    assert!(run(&[Some(b"x4111111111111111"), Some(b"2 ")]).is_empty());
    assert!(run(&[Some(b"x4111111111111111"), Some(b"2")]).is_empty());
    assert!(run(&[Some(b"35202-1234567-1"), Some(b"2")]).is_empty());
    assert!(run(&[Some(b"4111 1111 1111 1111"), Some(b" "), Some(b"2")]).is_empty());
    // ...while a non-digit there lets it through.
    assert_eq!(run(&[Some(b"x4111111111111111"), Some(b" ")]).len(), 1);
}

#[test]
fn finish_resolves_a_value_at_the_end_of_the_stream() {
    let m = matcher();
    let mut w = m.worker().unwrap();
    let mut s = DirScanner::default();
    let mut v = Vec::new();
    s.feed(m, &mut w, b"pan 4111111111111111", &mut |f| v.push(seen(m, &f)));
    assert!(v.is_empty(), "boundary after the value is not known yet");
    s.finish(m, &mut w, &mut |f| v.push(seen(m, &f)));
    assert_eq!(ids(&v), vec![("NGB-CARD-001", 4, "411111******1111", "high")]);
}

#[test]
fn gap_prevents_matches_across_a_hole_and_keeps_offsets() {
    assert!(run(&[Some(b"4111111111"), None, Some(b"111111 ")]).is_empty());
    assert!(run(&[Some(b"35202-123"), None, Some(b"4567-1 ")]).is_empty());
    // Context before the hole is not used after it.
    let got = run(&[Some(b"cnic: "), None, Some(b"3520212345671 ")]);
    assert_eq!(ids(&got), vec![("NGB-CNIC-002", 6, "35202-*******-1", "low")]);
    // ...nor context after it.
    let got = run(&[Some(b"x 3520212345671 "), None, Some(b"(cnic)")]);
    assert_eq!(ids(&got), vec![("NGB-CNIC-002", 2, "35202-*******-1", "low")]);
    // A value ending right at the hole is resolved by the gap, with the hole as a boundary.
    let got = run(&[Some(b"ab4111111111111111"), None, Some(b"5555555555554444")]);
    assert_eq!(
        ids(&got),
        vec![
            ("NGB-CARD-001", 2, "411111******1111", "medium"),
            ("NGB-CARD-001", 18, "555555******4444", "medium")
        ]
    );
}

#[test]
fn decoys_produce_nothing() {
    let decoys: &[&[u8]] = &[
        b"{\"ts\":1732212345678,\"created\":1732212345679,\"id\":17322123456789}",
        b"4111111111111112 5555555555554445",
        b"41111111111111110000 x 111141111111111111111",
        b"05202-1234567-1 85202-1234567-1 95202-1234567-1",
        b"cnic 0520212345671 cnic 8520212345671 cnic 9520212345671",
        b"4111 1111-1111 1111 5555-5555 5555-4444 3782-822463 10005",
        b"1 4111 1111 1111 1111 and 4111-1111-1111-1111-1",
        b"35202-1234567-12 135202-1234567-1",
        b"order 9999999999999995 and 411111111111116",
    ];
    for (i, d) in decoys.iter().enumerate() {
        assert_eq!(alerting(whole(d)), vec![], "decoy {i}");
        assert_eq!(alerting(bytewise(d)), vec![], "decoy {i} bytewise");
    }
    // Timestamps that pass the CNIC shape are found, at low confidence only.
    let low: Vec<_> = whole(decoys[0])
        .iter()
        .map(|s| (s.rule.clone(), s.confidence))
        .collect();
    assert_eq!(low, vec![("NGB-CNIC-002".to_string(), Confidence::Low); 2]);
}

#[test]
fn one_finding_per_value_and_rule() {
    // \d{13,19} fires at ends 13..=16 inside one 16-digit number: exactly one finding survives.
    let m = matcher();
    let mut w = m.worker().unwrap();
    let mut s = DirScanner::default();
    let mut v = Vec::new();
    s.feed(m, &mut w, b" 4111111111111111 ", &mut |f| v.push(seen(m, &f)));
    s.finish(m, &mut w, &mut |f| v.push(seen(m, &f)));
    assert_eq!(ids(&v), vec![("NGB-CARD-001", 1, "411111******1111", "medium")]);
    let plain = m.rules().rules().iter().position(|r| r.id == "NGB-CARD-001").unwrap();
    assert_eq!(w.counters.hits[plain], 4);
    assert_eq!(w.counters.findings[plain], 1);
    // 3 from the card rule, 4 from the bare-CNIC rule (\d{13} inside a 16-digit run).
    assert_eq!(w.counters.rejected[crate::validate::Reject::Boundary.index()], 7);
    assert_eq!(w.counters.bytes, 18);
    assert_eq!(w.counters.streams_opened, 1);
}

#[test]
fn idle_scanner_is_tiny_and_active_scanner_bounded() {
    assert_eq!(std::mem::size_of::<DirScanner>(), std::mem::size_of::<usize>());
    let m = matcher();
    let mut w = m.worker().unwrap();
    let mut s = DirScanner::default();
    assert_eq!(s.memory(), 0);
    s.feed(m, &mut w, b"hello", &mut |_| {});
    let mem = s.memory();
    assert!(mem > m.stream_size(), "memory {mem}");
    assert!(mem < 2048, "active scanner holds {mem} bytes");
    s.finish(m, &mut w, &mut |_| {});
    assert_eq!(s.memory(), 0);
    // Empty feeds open nothing.
    s.feed(m, &mut w, b"", &mut |_| {});
    assert_eq!(s.memory(), 0);
}

#[test]
fn datagrams_are_independent() {
    let m = matcher();
    let mut w = m.worker().unwrap();
    let mut v = Vec::new();
    m.scan_datagram(&mut w, b"q=35202-1234567-1", &mut |f| v.push(seen(m, &f)));
    m.scan_datagram(&mut w, b"4111111111", &mut |f| v.push(seen(m, &f)));
    m.scan_datagram(&mut w, b"111111", &mut |f| v.push(seen(m, &f)));
    m.scan_datagram(&mut w, b"5555555555554444", &mut |f| v.push(seen(m, &f)));
    assert_eq!(
        ids(&v),
        vec![
            ("NGB-CNIC-001", 2, "35202-*******-1", "medium"),
            ("NGB-CARD-001", 0, "555555******4444", "medium")
        ]
    );
}

#[test]
fn long_chunks_and_tail_rollover() {
    // A value straddling chunks after lots of data, with its keyword in the previous chunk.
    let mut a = vec![b'x'; 5000];
    a.extend_from_slice(b" cnic: 35202123");
    let b = b"45671 and more";
    let got = run(&[Some(&a), Some(b)]);
    assert_eq!(ids(&got), vec![("NGB-CNIC-002", 5007, "35202-*******-1", "medium")]);
    // "xcnic" is not the word "cnic".
    a[5000] = b'x';
    assert_eq!(ids(&run(&[Some(&a), Some(b)]))[0].3, "low");
}

#[test]
fn keyword_after_the_value_in_later_chunks() {
    let text: &[u8] = b"x 3520212345671 (CNIC) and 4111111111111111 visa; 35202-1234567-1 shanakhti";
    let want = whole(text);
    assert_eq!(
        ids(&want),
        vec![
            ("NGB-CNIC-002", 2, "35202-*******-1", "medium"),
            ("NGB-CARD-001", 27, "411111******1111", "high"),
            ("NGB-CNIC-001", 50, "35202-*******-1", "medium"),
        ]
    );
    for i in 0..=text.len() {
        for j in (i..=text.len()).step_by(3) {
            let got = run(&[Some(&text[..i]), Some(&text[i..j]), Some(&text[j..])]);
            assert_eq!(got, want, "split at {i},{j}");
        }
    }
    assert_eq!(bytewise(text), want);
    // Urdu keyword after the value, split inside a UTF-8 character.
    let urdu = "نمبر 3740512345679 شناختی کارڈ".as_bytes();
    let want = whole(urdu);
    assert_eq!(ids(&want), vec![("NGB-CNIC-002", 9, "37405-*******-9", "medium")]);
    for i in 0..=urdu.len() {
        assert_eq!(run(&[Some(&urdu[..i]), Some(&urdu[i..])]), want, "split at {i}");
    }
}

#[test]
fn a_keyword_that_labels_the_next_field_does_not_vouch_backwards() {
    let text = b"{\"ts\":1732212345678,\"cnic\":\"35202-1234567-1\",\"n\":1732212345679,\"nic\":\"x\"}";
    assert_eq!(
        ids(&whole(text)),
        vec![
            ("NGB-CNIC-002", 6, "17322-*******-8", "low"),
            ("NGB-CNIC-001", 28, "35202-*******-1", "high"),
            ("NGB-CNIC-002", 49, "17322-*******-9", "low"),
        ]
    );
}

#[test]
fn waiting_for_context_after_is_bounded_and_skipped_when_not_needed() {
    let m = matcher();
    let mut w = m.worker().unwrap();
    let mut v = Vec::new();
    // Keyword before: reported as soon as the boundary bytes are in, without waiting.
    let mut s = DirScanner::default();
    s.feed(m, &mut w, b"cnic 3520212345671, ", &mut |f| v.push(seen(m, &f)));
    assert_eq!(v.len(), 1);
    assert!(!s.has_pending());
    // No keyword before: waits for the window after (32 bytes plus one)...
    s.feed(m, &mut w, b" x 3520212345671 ", &mut |f| v.push(seen(m, &f)));
    assert_eq!(v.len(), 1);
    assert!(s.has_pending());
    s.feed(m, &mut w, &[b'.'; 31], &mut |f| v.push(seen(m, &f)));
    assert_eq!(v.len(), 1, "32 bytes after the value are not all in yet");
    s.feed(m, &mut w, b"..", &mut |f| v.push(seen(m, &f)));
    assert_eq!(v.len(), 2);
    assert_eq!(v[1].confidence, Confidence::Low);
    // ...or until the stream goes quiet (settle) and decides with what it has.
    s.feed(m, &mut w, b" 3520212345671 (cn", &mut |f| v.push(seen(m, &f)));
    assert_eq!(v.len(), 2);
    s.settle(m, &mut w, &mut |f| v.push(seen(m, &f)));
    assert_eq!(v.len(), 3);
    assert_eq!(v[2].confidence, Confidence::Low);
    // A high-confidence rule never waits for context.
    s.feed(m, &mut w, b" PK36SCBL0000001123456702  ", &mut |f| v.push(seen(m, &f)));
    assert_eq!(
        ids(&v[3..]),
        vec![("NGB-IBAN-001", 89, "PK36SCBL************6702", "high")]
    );
    s.finish(m, &mut w, &mut |f| v.push(seen(m, &f)));
    assert_eq!(v.len(), 4);
    // Dense values fed a byte at a time never overflow the pending array.
    let dense = b"4222222222222 ".repeat(20);
    let got = bytewise(&dense);
    assert_eq!(got.len(), 40, "each 13-digit Visa is also a bare CNIC shape");
    let mut w = m.worker().unwrap();
    let mut s = DirScanner::default();
    for b in dense.chunks(1) {
        s.feed(m, &mut w, b, &mut |_| {});
    }
    s.finish(m, &mut w, &mut |_| {});
    assert_eq!(w.counters.pending_overflow, 0);
    assert_eq!(w.counters.window_overflow, 0);
}

#[test]
fn ibans_compact_grouped_and_split() {
    let text = b"iban=PK36SCBL0000001123456702&to=PK72 HABB 0012 3456 7890 1234.";
    let want = whole(text);
    assert_eq!(
        ids(&want),
        vec![
            ("NGB-IBAN-001", 5, "PK36SCBL************6702", "high"),
            ("NGB-IBAN-001", 33, "PK72HABB************1234", "high"),
        ]
    );
    for i in 0..=text.len() {
        assert_eq!(run(&[Some(&text[..i]), Some(&text[i..])]), want, "split at {i}");
    }
}

/// `text` cut at the given places, each cut followed by a gap (`None`) when its flag is set.
fn cut<'t>(text: &'t [u8], cuts: &[(prop::sample::Index, bool)]) -> Vec<Option<&'t [u8]>> {
    let mut at: Vec<(usize, bool)> = cuts.iter().map(|(i, gap)| (i.index(text.len() + 1), *gap)).collect();
    at.sort_unstable();
    let mut chunks = Vec::new();
    let mut prev = 0;
    for (c, gap) in at {
        chunks.push(Some(&text[prev..c]));
        if gap {
            chunks.push(None);
        }
        prev = c;
    }
    chunks.push(Some(&text[prev..]));
    chunks
}

/// Builds a stream from tokens: benign filler, digit noise, keywords and planted values.
fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z ,:=\"{}]{0,12}".prop_map(String::into_bytes),
        "[0-9]{1,22}".prop_map(String::into_bytes),
        "[0-9 -]{1,12}".prop_map(String::into_bytes),
        Just(b"cnic: ".to_vec()),
        Just(b"national_id=".to_vec()),
        Just(b"35202-1234567-1".to_vec()),
        Just(b"4210176543213".to_vec()),
        Just(b"4111111111111111".to_vec()),
        Just(b"4111 1111 1111 1111".to_vec()),
        Just(b"5555-5555-5555-4444".to_vec()),
        Just(b"378282246310005".to_vec()),
        Just(b"3782 822463 10005".to_vec()),
        Just(b"1732212345678".to_vec()),
        Just(b" (cnic) ".to_vec()),
        Just(b"\"cnic\":".to_vec()),
        Just(b"clinic ".to_vec()),
        Just(b" visa".to_vec()),
        Just("شناختی کارڈ".as_bytes().to_vec()),
        Just(b"PK36SCBL0000001123456702".to_vec()),
        Just(b"4111111111111111003".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn any_split_gives_the_same_findings(
        tokens in proptest::collection::vec(token(), 1..24),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let text: Vec<u8> = tokens.concat();
        let cuts: Vec<(prop::sample::Index, bool)> = cuts.into_iter().map(|i| (i, false)).collect();
        let chunks = cut(&text, &cuts);
        let want = whole(&text);
        prop_assert_eq!(run(&chunks), want.clone());
        prop_assert_eq!(bytewise(&text), want);
    }
}

/// Keyword-dense text: more keyword occurrences than the prefilter remembers, on both sides of
/// values, in every case and separator spelling.
fn dense_token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        token(),
        Just(b"card ".to_vec()),
        Just(b"CC ".to_vec()),
        Just(b"Pan-".to_vec()),
        Just(b"nic,".to_vec()),
        Just(b"ID_Card ".to_vec()),
        Just(b"identity-card: ".to_vec()),
        Just(b"NADRA ".to_vec()),
        Just(b"accc".to_vec()),
        Just(b"cardNumber=".to_vec()),
        Just(b" (Mastercard)".to_vec()),
        Just("کارڈ ".as_bytes().to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Skipping the keyword search where Hyperscan saw no keyword changes no finding or
    /// confidence, however the stream is cut and however many keywords crowd it.
    #[test]
    fn keyword_prefilter_changes_nothing(
        tokens in proptest::collection::vec(dense_token(), 1..40),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let text: Vec<u8> = tokens.concat();
        let cuts: Vec<(prop::sample::Index, bool)> = cuts.into_iter().map(|i| (i, false)).collect();
        let chunks = cut(&text, &cuts);
        let want = run_with(exact_keywords(), &[Some(&text)]);
        prop_assert_eq!(run(&chunks), want.clone());
        prop_assert_eq!(run_with(exact_keywords(), &chunks), want);
    }
}

/// Findings and every counter the matcher keeps: raw hits per rule and rejections by reason.
fn run_counting(m: &Matcher, chunks: &[Option<&[u8]>]) -> (Vec<Seen>, Vec<u64>, Vec<u64>) {
    let mut w = m.worker().unwrap();
    let v = scan_chunks(m, &mut w, chunks);
    (v, w.counters.hits.clone(), w.counters.rejected.to_vec())
}

/// Digit runs of every length, separators and letters around them.
fn digits_token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        token(),
        "[0-9]{1,70}".prop_map(String::into_bytes),
        "[0-9]{12,20}".prop_map(String::into_bytes),
        "[0-9]{4}[ -][0-9]{4}[ -][0-9]{4}[ -][0-9]{4}".prop_map(String::into_bytes),
        "[a-z]{0,3}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Scanning digit runs as one pattern without start of match, and fixed-width patterns
    /// without it, gives exactly the hits (per rule), rejections and findings of every pattern
    /// scanned on its own with leftmost start of match, across splits and gaps.
    #[test]
    fn lean_database_gives_the_hits_of_start_of_match_everywhere(
        tokens in proptest::collection::vec(digits_token(), 1..30),
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..6),
    ) {
        let text: Vec<u8> = tokens.concat();
        let chunks = cut(&text, &cuts);
        prop_assert_eq!(run_counting(matcher(), &chunks), run_counting(exact_keywords(), &chunks));
    }
}

#[test]
fn digit_run_patterns_are_recognised_exactly() {
    assert_eq!(digit_run(r"\d{13}"), Some((13, 13)));
    assert_eq!(digit_run(r"\d{13,16}"), Some((13, 16)));
    assert_eq!(digit_run("[0-9]{17,19}"), Some((17, 19)));
    for not in [
        r"\d{13,}",
        r"\d{5}-\d{7}-\d",
        r"\d{0,3}",
        r"\d{9,3}",
        r"\d{13}x",
        r"x\d{13}",
        r"\D{13}",
        r"\d{65}",
    ] {
        assert_eq!(digit_run(not), None, "{not}");
    }
}

#[test]
fn keyword_prefilter_falls_back_when_keywords_crowd_the_ring() {
    // The keyword before the value is pushed out of the ring by the many after it (all in one
    // chunk); the exact search must still run and find it.
    let mut text = b"cnic: 4210176543213 ".to_vec();
    for _ in 0..(2 * stream::KEYWORD_RING) {
        text.extend_from_slice(b"nadra ");
    }
    let got = whole(&text);
    assert_eq!(got, run_with(exact_keywords(), &[Some(&text)]));
    assert!(
        got.iter()
            .any(|s| s.rule == "NGB-CNIC-002" && s.confidence == Confidence::Medium),
        "{:?}",
        ids(&got)
    );
}

#[test]
fn thread_safety_contract() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Matcher>();
    sync::<Matcher>();
    send::<WorkerScratch>();
    send::<DirScanner>();
    send::<Finding>();
}

// Rule reload: a stream opened by one matcher continues under another (see `Active::switch`).

/// The bundled rules, compiled again: same rules, a different matcher (as after a reload).
fn reloaded() -> &'static Matcher {
    static M: OnceLock<Matcher> = OnceLock::new();
    M.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        Matcher::new(RuleSet::load_dir(&dir).expect("bundled rules load")).expect("matcher builds")
    })
}

/// The bundled rules without the card rules (card.toml removed).
fn without_cards() -> &'static Matcher {
    static M: OnceLock<Matcher> = OnceLock::new();
    M.get_or_init(|| {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let dir = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") && p.file_name().unwrap() != "card.toml" {
                std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
            }
        }
        Matcher::new(RuleSet::load_dir(dir.path()).expect("rules load")).expect("matcher builds")
    })
}

/// The rules of one rule file, `toml`, loaded from a rules directory holding only it.
fn rules_of(toml: &str) -> RuleSet {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.toml"), toml).unwrap();
    RuleSet::load_dir(dir.path()).unwrap()
}

/// Feeds `chunks[k]` with `matchers[k]` (each with its own worker scratch, as a worker gets a new
/// one on reload), then finishes with the last matcher. Findings sorted, rule ids by the
/// matcher that reported them; checks offsets never go backwards.
fn run_switching(chunks: &[&[u8]], matchers: &[&Matcher]) -> Vec<Seen> {
    let mut s = DirScanner::default();
    let mut v = Vec::new();
    let mut fed = 0;
    for (c, m) in chunks.iter().zip(matchers) {
        let mut w = m.worker().unwrap();
        let mut out = |f: Finding| v.push(seen(m, &f));
        s.feed(m, &mut w, c, &mut out);
        assert!(s.fed() >= fed, "offsets go backwards");
        fed = s.fed();
        if std::ptr::eq(*m, *matchers.last().unwrap()) && std::ptr::eq(*c, *chunks.last().unwrap()) {
            s.finish(m, &mut w, &mut out);
        }
    }
    v.sort();
    v
}

#[test]
fn a_value_split_across_a_reload_is_found_exactly_once_at_every_offset() {
    let (a, b) = (matcher(), reloaded());
    assert_ne!(a.id(), b.id());
    let want = whole(MIXED);
    for i in 0..=MIXED.len() {
        let got = run_switching(&[&MIXED[..i], &MIXED[i..]], &[a, b]);
        assert_eq!(got, want, "switch at {i}");
    }
    // Two reloads inside one stream, at every pair of points.
    let text: &[u8] = b"id_card 3520212345671,4111-1111-1111-1111 x 3782 822463 10005; 35202-1234567-1";
    let want = whole(text);
    for i in 0..=text.len() {
        for j in i..=text.len() {
            let got = run_switching(&[&text[..i], &text[i..j], &text[j..]], &[a, b, a]);
            assert_eq!(got, want, "switch at {i},{j}");
        }
    }
}

#[test]
fn pending_hits_of_the_old_stream_are_decided_by_the_next_bytes() {
    let (a, b) = (matcher(), reloaded());
    let mut s = DirScanner::default();
    let (mut wa, mut wb) = (a.worker().unwrap(), b.worker().unwrap());
    let mut v = Vec::new();
    s.feed(a, &mut wa, b"CNIC: 35202-1234567-1", &mut |f| v.push(seen(a, &f)));
    assert!(s.has_pending() && v.is_empty(), "the value waits for its boundary byte");
    // The byte after it is a digit: no CNIC, under either rule set.
    s.feed(b, &mut wb, b"2 more", &mut |f| v.push(seen(b, &f)));
    s.finish(b, &mut wb, &mut |f| v.push(seen(b, &f)));
    assert!(v.is_empty(), "{v:?}");

    let mut s = DirScanner::default();
    let mut wb = b.worker().unwrap();
    s.feed(a, &mut wa, b"CNIC: 35202-1234567-1", &mut |f| v.push(seen(a, &f)));
    s.feed(b, &mut wb, b" more", &mut |f| v.push(seen(b, &f)));
    assert!(!s.has_pending());
    s.finish(b, &mut wb, &mut |f| v.push(seen(b, &f)));
    assert_eq!(ids(&v), vec![("NGB-CNIC-001", 6, "35202-*******-1", "high")]);
    assert_eq!(
        wb.counters.hits.iter().sum::<u64>(),
        1,
        "the re-scanned tail counts only the kept hit"
    );
}

#[test]
fn a_rule_removed_by_the_reload_no_longer_fires_after_the_switch() {
    let (a, b) = (matcher(), without_cards());
    let is_card = |s: &Seen| s.rule.starts_with("NGB-CARD");
    let want = whole(MIXED);
    assert_eq!(want.iter().filter(|s| is_card(s)).count(), 2);
    for i in 0..=MIXED.len() {
        let got = run_switching(&[&MIXED[..i], &MIXED[i..]], &[a, b]);
        let others: Vec<_> = got.iter().filter(|s| !is_card(s)).cloned().collect();
        assert_eq!(
            others,
            want.iter().filter(|s| !is_card(s)).cloned().collect::<Vec<_>>(),
            "switch at {i}"
        );
        for s in got.iter().filter(|s| is_card(s)) {
            // Only a card decided before the switch; its digits all came before it.
            assert!(
                s.offset + 16 <= i as u64,
                "card rule fired after the switch at {i}: {s:?}"
            );
            assert!(want.contains(s));
        }
    }
    // Decided before the switch (the context window after the last one is in), both cards were
    // the old rules' to report.
    let text = [MIXED, &[b' '; 40]].concat();
    let got = run_switching(&[&text, b" end"], &[a, b]);
    assert_eq!(got.iter().filter(|s| is_card(s)).count(), 2);
}

#[test]
fn a_rule_set_of_digit_runs_only_still_compiles_and_finds() {
    // Every pattern goes to the digit-run scan and no rule has keywords: Hyperscan gets a
    // placeholder so its database is not empty, and its hits must not be counted twice.
    let bare = r#"
[[rule]]
id = "T-CNIC-BARE"
name = "bare CNIC, no context"
pii = "cnic"
severity = "high"
validator = "cnic"
confidence = "medium"
patterns = ['\d{13}']

[rule.examples]
match = ["3520212345671"]
no_match = ["35202123456712"]
"#;
    let lean = Matcher::new(rules_of(bare)).unwrap();
    let oracle = Matcher::oracle(rules_of(bare)).unwrap();
    assert!(matches!(lean.inner.pattern_kind[..], [PatternKind::Placeholder]));
    let text = b"id=3520212345671&t=17322123456789&x=42101765432130";
    let chunks: Vec<Option<&[u8]>> = text.chunks(7).map(Some).collect();
    let got = run_counting(&lean, &chunks);
    assert_eq!(got, run_counting(&oracle, &chunks));
    assert_eq!(got.0.len(), 1, "{:?}", got.0);
    assert_eq!(got.1, vec![5], "a hit at every end of 13 digits in a row (1 + 2 + 2)");
}

/// What the matcher counts besides its findings: findings per rule and by confidence,
/// rejections by reason, and hits lost to a full pending array or the tail.
type Counts = (Vec<u64>, [u64; 3], Vec<u64>, u64, u64);

/// Findings, per-rule quiet counts and the other counters, with findings below `quiet`
/// counted instead of reported.
fn run_quiet(chunks: &[Option<&[u8]>], quiet: Option<Confidence>) -> (Vec<Seen>, Vec<u64>, Counts) {
    let m = matcher();
    let mut w = m.worker().unwrap();
    w.set_quiet_below(quiet);
    let v = scan_chunks(m, &mut w, chunks);
    let c = &w.counters;
    let counts = (
        c.findings.clone(),
        c.by_confidence,
        c.rejected.to_vec(),
        c.pending_overflow,
        c.window_overflow,
    );
    (v, c.quiet.clone(), counts)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Counting the findings below a confidence instead of reporting them (and deciding quiet
    /// bare CNICs without their candidate) reports exactly the others, counts exactly those
    /// (per rule), and leaves every other counter as it was.
    #[test]
    fn quiet_findings_are_counted_exactly_where_they_would_have_been_reported(
        tokens in proptest::collection::vec(digits_token(), 1..30),
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..6),
        min in prop_oneof![Just(Confidence::Medium), Just(Confidence::High)],
    ) {
        let text: Vec<u8> = tokens.concat();
        let chunks = cut(&text, &cuts);
        let (all, none_quiet, counts) = run_quiet(&chunks, None);
        prop_assert!(none_quiet.iter().all(|&n| n == 0));
        let (reported, quiet, q_counts) = run_quiet(&chunks, Some(min));
        let (want, below): (Vec<Seen>, Vec<Seen>) = all.into_iter().partition(|s| s.confidence >= min);
        prop_assert_eq!(reported, want);
        let mut want_quiet = vec![0u64; quiet.len()];
        for s in &below {
            let i = matcher().rules().rules().iter().position(|r| r.id == s.rule).unwrap();
            want_quiet[i] += 1;
        }
        prop_assert_eq!(quiet, want_quiet);
        prop_assert_eq!(q_counts, counts);
    }
}

#[test]
fn a_timestamp_is_counted_quiet_and_a_cnic_next_to_its_keyword_is_reported() {
    let text = b"{\"ts\":1732212345678,\"n\":1} cnic=3520212345671 ";
    let (reported, quiet, _) = run_quiet(&[Some(text)], Some(Confidence::Medium));
    assert_eq!(ids(&reported), [("NGB-CNIC-002", 32, "35202-*******-1", "medium")]);
    let rules = matcher().rules().rules();
    let quiet: Vec<(&str, u64)> = rules
        .iter()
        .zip(&quiet)
        .filter(|(_, &n)| n > 0)
        .map(|(r, &n)| (r.id.as_str(), n))
        .collect();
    assert_eq!(quiet, [("NGB-CNIC-002", 1)]);
}

#[test]
fn a_quiet_looking_cnic_waits_for_a_keyword_after_it_in_later_chunks() {
    // No keyword before the value, and its window after is not all seen: it waits, and the
    // keyword that arrives next makes it medium, so it is reported, not counted.
    let text = b"x 3520212345671 (CNIC) y";
    for cut in 16..text.len() {
        let (a, b) = text.split_at(cut);
        let (reported, quiet, _) = run_quiet(&[Some(a), Some(b)], Some(Confidence::Medium));
        assert_eq!(
            ids(&reported),
            [("NGB-CNIC-002", 2, "35202-*******-1", "medium")],
            "cut at {cut}"
        );
        assert!(quiet.iter().all(|&n| n == 0), "cut at {cut}");
    }
}

#[test]
fn a_value_two_patterns_of_one_rule_find_is_counted_quiet_once() {
    // Both patterns go to the digit-run scan and report the same 13 digits: the hits decided
    // while scanning must not count the value once per pattern.
    let m = Matcher::new(rules_of(
        r#"
[[rule]]
id = "T-CNIC-TWICE"
name = "bare CNIC, two overlapping patterns"
pii = "cnic"
severity = "high"
validator = "cnic"
confidence = "low"
patterns = ['\d{13}', '\d{13,14}']

[rule.examples]
match = [{ text = "3520212345671", confidence = "low" }]
no_match = ["352021234567123"]
"#,
    ))
    .unwrap();
    let text = b"{\"ts\":1732212345678,\"n\":1} and 3520212345671 ";
    for cut in 0..=text.len() {
        let (a, b) = text.split_at(cut);
        for quiet in [None, Some(Confidence::Medium)] {
            let mut w = m.worker().unwrap();
            w.set_quiet_below(quiet);
            let v = scan_chunks(&m, &mut w, &[Some(a), Some(b)]);
            let c = &w.counters;
            assert_eq!(c.hits, [4], "two patterns, two values (cut at {cut})");
            assert_eq!(c.findings, [2], "each value once (cut at {cut}, quiet {quiet:?})");
            let (reported, counted) = if quiet.is_some() { (0, 2) } else { (2, 0) };
            assert_eq!(
                (v.len(), c.quiet[0]),
                (reported, counted),
                "cut at {cut}, quiet {quiet:?}"
            );
        }
    }
}

#[test]
fn a_reload_counts_each_rejected_or_quiet_timestamp_once() {
    // The new stream scans the old one's tail again; hits the old stream decided there must not
    // be counted a second time, wherever the reload falls.
    let (a, b) = (matcher(), reloaded());
    let text = b"{\"ts\":1732212345678,\"seen\":1732212349999,\"id\":4111111111111112},{\"ts\":1732212350001}\n";
    let counts = |w: &WorkerScratch| {
        (
            w.counters.rejected,
            w.counters.quiet.clone(),
            w.counters.findings.clone(),
        )
    };
    let mut one = a.worker().unwrap();
    one.set_quiet_below(Some(Confidence::Medium));
    assert!(scan_chunks(a, &mut one, &[Some(text)]).is_empty());
    let want = counts(&one);
    assert!(
        want.1.iter().sum::<u64>() >= 3 && want.0.iter().sum::<u64>() >= 3,
        "{want:?}"
    );
    for cut in 0..=text.len() {
        let (wa, wb) = (&mut a.worker().unwrap(), &mut b.worker().unwrap());
        wa.set_quiet_below(Some(Confidence::Medium));
        wb.set_quiet_below(Some(Confidence::Medium));
        let mut s = DirScanner::default();
        let mut out = |f: Finding| panic!("nothing here is reported: {}", f.rule);
        s.feed(a, wa, &text[..cut], &mut out);
        s.feed(b, wb, &text[cut..], &mut out);
        s.finish(b, wb, &mut out);
        let (ca, cb) = (counts(wa), counts(wb));
        let sum = |x: &[u64], y: &[u64]| x.iter().zip(y).map(|(p, q)| p + q).collect::<Vec<u64>>();
        let got = (sum(&ca.0, &cb.0), sum(&ca.1, &cb.1), sum(&ca.2, &cb.2));
        assert_eq!(
            got,
            (want.0.to_vec(), want.1.clone(), want.2.clone()),
            "reload at {cut}"
        );
    }
}

#[test]
fn a_chunk_longer_than_a_run_piece_is_decided_as_in_small_chunks() {
    // The digit-run scan gathers run ends a piece of the chunk at a time: values across a
    // piece's edge, at every alignment, are found, rejected and counted as when the same bytes
    // come in small chunks (where every piece is a whole chunk).
    let record: &[u8] =
        b"{\"ts\":1732212345678,\"card\":4111111111111111,\"v\":35202123456712345678,\"x\":\"cnic 3520212345671\"},";
    let mut text = Vec::new();
    while text.len() < 3 * stream::RUN_PIECE {
        text.extend_from_slice(record);
        // A pad of a growing length moves the next record along the pieces' edges.
        text.extend(std::iter::repeat_n(b' ', text.len() / record.len() % 7));
    }
    for quiet in [None, Some(Confidence::Medium)] {
        let hits = |chunks: &[Option<&[u8]>]| {
            let m = matcher();
            let mut w = m.worker().unwrap();
            w.set_quiet_below(quiet);
            let seen = scan_chunks(m, &mut w, chunks);
            let c = &w.counters;
            (seen, c.hits.clone(), c.quiet.clone(), c.findings.clone(), c.rejected)
        };
        let whole = hits(&[Some(&text)]);
        let small: Vec<Option<&[u8]>> = text.chunks(100).map(Some).collect();
        assert_eq!(whole, hits(&small), "quiet below {quiet:?}");
        let (_, hit_counts, quiet_counts, findings, rejected) = &whole;
        let records = (text.len() / record.len()) as u64;
        assert!(hit_counts.iter().sum::<u64>() >= 3 * records, "{hit_counts:?}");
        assert!(findings.iter().sum::<u64>() >= 2 * records, "{findings:?}");
        assert!(rejected.iter().sum::<u64>() >= records, "{rejected:?}");
        assert_eq!(quiet_counts.iter().sum::<u64>() > 0, quiet.is_some());
    }
}
