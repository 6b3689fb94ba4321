//! The spool against an obviously-correct model: a `VecDeque` of records.

use super::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(String),
    /// Peek up to `max`, then acknowledge `ack` of what came back (clamped).
    PeekAck {
        max: usize,
        ack: usize,
    },
    Prepend(Vec<String>),
    Sync,
    /// Drop the spool without syncing and open it again (a crash after `write`: the page cache
    /// survives a process crash, so nothing is lost).
    Reopen,
    /// Sync, drop, cut `cut` bytes (at least 1) off the newest segment inside its last record,
    /// reopen: a crash in the middle of writing that record.
    TearLast {
        cut: usize,
    },
}

fn record() -> impl Strategy<Value = String> {
    // Mostly small alert-like lines; some long enough to cross segment boundaries.
    prop_oneof![
        "[a-z{}\":, ]{0,40}",
        "[a-zA-Z0-9]{200,700}",
        Just("\u{1f600} unicode é".to_string()),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => record().prop_map(Op::Append),
        4 => (1usize..8, 0usize..8).prop_map(|(max, ack)| Op::PeekAck { max, ack }),
        1 => prop::collection::vec(record(), 0..4).prop_map(Op::Prepend),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => (1usize..2000).prop_map(|cut| Op::TearLast { cut }),
    ]
}

fn newest_segment(dir: &Path) -> Option<PathBuf> {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.pop()
}

fn check_contents(spool: &mut Spool, model: &VecDeque<String>) {
    let all = spool.peek(usize::MAX).unwrap();
    assert_eq!(all.len(), model.len(), "record count differs from the model");
    assert!(
        all.iter().zip(model.iter()).all(|(a, b)| a == b),
        "records differ from the model"
    );
    assert_eq!(spool.is_empty(), model.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn spool_behaves_like_a_queue(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let max = 1 << 30;
        let seg = 1024;
        let mut spool = Some(Spool::open_with_segment_size(dir.path(), max, seg).unwrap());
        let mut model: VecDeque<String> = VecDeque::new();
        for op in ops {
            let s = spool.as_mut().unwrap();
            match op {
                Op::Append(r) => {
                    s.append(&r).unwrap();
                    model.push_back(r);
                }
                Op::PeekAck { max, ack } => {
                    let got = s.peek(max).unwrap();
                    let want: Vec<_> = model.iter().take(max).cloned().collect();
                    prop_assert_eq!(&got, &want);
                    let ack = ack.min(got.len());
                    s.ack(ack).unwrap();
                    model.drain(..ack);
                }
                Op::Prepend(rs) => {
                    let kept = s.prepend(&rs).unwrap();
                    prop_assert_eq!(kept, rs.len());
                    for r in rs.into_iter().rev() {
                        model.push_front(r);
                    }
                }
                Op::Sync => s.sync().unwrap(),
                Op::Reopen => {
                    drop(spool.take());
                    spool = Some(Spool::open_with_segment_size(dir.path(), max, seg).unwrap());
                }
                Op::TearLast { cut } => {
                    s.sync().unwrap();
                    drop(spool.take());
                    if let (Some(path), Some(last)) = (newest_segment(dir.path()), model.back()) {
                        // The newest record is the last one in the newest segment (prepends go to
                        // the oldest end) unless that segment holds only prepended records.
                        let size = (HEADER + last.len()) as u64;
                        let len = std::fs::metadata(&path).unwrap().len();
                        let (valid, _) = scan(&path).unwrap();
                        let only_record_is_last = valid >= size;
                        if only_record_is_last && len == valid {
                            let cut = (cut as u64).min(size);
                            let f = OpenOptions::new().write(true).open(&path).unwrap();
                            f.set_len(len - cut).unwrap();
                            model.pop_back();
                        }
                    }
                    spool = Some(Spool::open_with_segment_size(dir.path(), max, seg).unwrap());
                }
            }
            check_contents(spool.as_mut().unwrap(), &model);
        }
        // Whatever happened, a final reopen sees exactly the model.
        spool.as_mut().unwrap().sync().unwrap();
        drop(spool.take());
        let mut s = Spool::open_with_segment_size(dir.path(), max, seg).unwrap();
        check_contents(&mut s, &model);
        drop(spool);
    }
}

#[test]
fn cap_refuses_new_records_and_keeps_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open_with_segment_size(dir.path(), 100, 64).unwrap();
    s.append(&"a".repeat(40)).unwrap();
    s.append(&"b".repeat(40)).unwrap();
    let e = s.append("c").unwrap_err();
    assert!(matches!(e, SpoolError::Full { .. }));
    assert!(e.to_string().contains("full"), "{e}");
    assert_eq!(s.peek(10).unwrap(), vec!["a".repeat(40), "b".repeat(40)]);
    s.ack(1).unwrap();
    // The first segment is gone, so there is room again.
    s.append("c").unwrap();
    assert_eq!(s.peek(10).unwrap(), vec!["b".repeat(40), "c".to_string()]);
}

#[test]
fn acknowledged_records_stay_acknowledged_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        for i in 0..10 {
            s.append(&format!("alert {i}")).unwrap();
        }
        s.sync().unwrap();
        assert_eq!(s.peek(3).unwrap().len(), 3);
        s.ack(3).unwrap();
    }
    let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(s.peek(1).unwrap(), vec!["alert 3".to_string()]);
    s.peek(100).unwrap();
    s.ack(7).unwrap();
    assert!(s.is_empty());
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        files,
        vec![std::ffi::OsString::from("lock")],
        "a drained spool leaves no segments or cursor"
    );
}

#[test]
fn second_process_on_one_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _a = Spool::open(dir.path(), 1 << 20).unwrap();
    // flock locks are per open file description, so a second open in this process conflicts too.
    let e = Spool::open(dir.path(), 1 << 20).unwrap_err();
    assert!(matches!(e, SpoolError::Locked(_)), "{e}");
}

#[test]
fn damaged_record_in_the_middle_is_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Spool::open_with_segment_size(dir.path(), 1 << 20, 1 << 20).unwrap();
        for r in ["first", "second", "third"] {
            s.append(r).unwrap();
        }
        s.sync().unwrap();
    }
    // Flip a byte of "second" after the open-time scan would have accepted it: reopen, then damage.
    let mut s = Spool::open_with_segment_size(dir.path(), 1 << 20, 1 << 20).unwrap();
    let path = newest_segment(dir.path()).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = HEADER + "first".len() + HEADER;
    bytes[at] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    s.reader = None;
    assert_eq!(s.peek(10).unwrap(), vec!["first".to_string(), "third".to_string()]);
    s.ack(2).unwrap();
    assert!(s.is_empty());
}
