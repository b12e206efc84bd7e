use std::{
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    sync::{Arc, Mutex, atomic::AtomicBool},
};

use super::*;
use crate::sinks::spec::{DiskOptions, SpoolFull};

/// A transport that delivers into a shared list while `up` is set.
#[derive(Clone)]
struct Mock {
    up: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<u64>>>,
}

impl Mock {
    fn new(up: bool) -> Self {
        Self { up: Arc::new(AtomicBool::new(up)), got: Arc::default() }
    }

    fn got(&self) -> Vec<u64> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits until `n` distinct seqs arrived; returns them in first-arrival order.
    fn wait_distinct(&self, n: usize) -> Vec<u64> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut seen = std::collections::HashSet::new();
            let firsts: Vec<u64> = self.got().into_iter().filter(|s| seen.insert(*s)).collect();
            if firsts.len() >= n || Instant::now() > deadline {
                return firsts;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Encoder for Mock {
    fn encode(&self, record: &AuditRecord, _encoded: &[u8]) -> Result<Vec<u8>, SinkError> {
        Ok(format!("record {} {}", record.seq, "x".repeat(84)).into_bytes())
    }
}

impl Transport for Mock {
    fn name(&self) -> &str {
        "mock://x"
    }

    fn deliver(&mut self, batch: &[Outgoing]) -> Result<(), SinkError> {
        if !self.up.load(Ordering::Relaxed) {
            return Err(SinkError::Io {
                sink: "mock".into(),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            });
        }
        for o in batch {
            assert_eq!(o.payload, self.encode(&rec(o.seq), &[]).expect("render"));
        }
        self.got.lock().expect("lock").extend(batch.iter().map(|o| o.seq));
        Ok(())
    }
}

/// Records of the spool's full policy (`sink_spool_full`) taken from `sink`.
fn dropped(sink: &mut DurableSink<Mock>) -> u64 {
    sink.take_dropped().iter().filter(|(r, _)| *r == "sink_spool_full").map(|(_, n)| n).sum()
}

fn rec(seq: u64) -> AuditRecord {
    AuditRecord { seq, ..AuditRecord::default() }
}

fn open(mock: &Mock, dir: &Path, max_bytes: u64, full: SpoolFull) -> DurableSink<Mock> {
    let opts = SpoolOptions { dir: Some(dir.to_owned()), max_bytes, full, disk: DiskOptions::NONE };
    let mut sink = DurableSink::open(mock.clone(), mock.clone(), &opts).expect("open spool");
    sink.set_drain_on_close(Duration::from_millis(300));
    sink
}

fn write_range(sink: &mut DurableSink<Mock>, seqs: std::ops::Range<u64>) {
    for s in seqs {
        sink.write(&rec(s), &[]).expect("write");
        if s % 97 == 0 {
            sink.flush().expect("flush");
        }
    }
    sink.flush().expect("flush");
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn delivers_in_order_with_private_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("spool");
    let mock = Mock::new(true);
    let mut sink = open(&mock, &dir, 4 * 1024 * 1024, SpoolFull::DropOldest);
    write_range(&mut sink, 1..3001);
    assert_eq!(mock.wait_distinct(3000), (1..3001).collect::<Vec<_>>());
    assert_eq!(mock.got().len(), 3000, "no re-sends without errors");
    assert_eq!(dropped(&mut sink), 0);
    let stats = sink.stats();
    assert_eq!(stats.delivered.load(Ordering::Relaxed), 3000);
    assert!(stats.spool_bytes.load(Ordering::Relaxed) <= 4 * 1024 * 1024);
    assert_eq!(std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777, 0o700);
    for f in segments(&dir) {
        assert_eq!(std::fs::metadata(&f).expect("seg").permissions().mode() & 0o777, 0o600);
    }
    drop(sink);
    // Everything was delivered and acknowledged: a new run sends nothing again.
    let again = Mock::new(true);
    let sink = open(&again, &dir, 64 * 1024, SpoolFull::DropOldest);
    std::thread::sleep(Duration::from_millis(300));
    assert!(again.got().is_empty(), "{:?}", again.got());
    drop(sink);
}

#[test]
fn outage_then_recovery_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mock = Mock::new(true);
    let mut sink = open(&mock, tmp.path(), 1024 * 1024, SpoolFull::DropOldest);
    write_range(&mut sink, 1..201);
    mock.wait_distinct(200);
    mock.up.store(false, Ordering::Relaxed);
    write_range(&mut sink, 201..1001);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.stats().pending_records.load(Ordering::Relaxed), 800);
    assert!(!sink.stats().connected.load(Ordering::Relaxed));
    mock.up.store(true, Ordering::Relaxed);
    assert_eq!(mock.wait_distinct(1000), (1..1001).collect::<Vec<_>>());
    assert!(sink.stats().delivery_errors.load(Ordering::Relaxed) > 0);
    drop(sink);
}

#[test]
fn restart_delivers_the_spool_first() {
    let tmp = tempfile::tempdir().expect("tmp");
    let down = Mock::new(false);
    let mut sink = open(&down, tmp.path(), 1024 * 1024, SpoolFull::DropOldest);
    write_range(&mut sink, 1..501);
    drop(sink); // remote still down: records stay on disk
    assert!(down.got().is_empty());

    // A new run (its seq starts again at 1) after the remote came back.
    let up = Mock::new(true);
    let mut sink = open(&up, tmp.path(), 1024 * 1024, SpoolFull::DropOldest);
    write_range(&mut sink, 1001..1101);
    let want: Vec<u64> = (1..501).chain(1001..1101).collect();
    assert_eq!(up.wait_distinct(600), want);
    drop(sink);
}

#[test]
fn runs_that_write_nothing_do_not_confuse_the_ack() {
    let tmp = tempfile::tempdir().expect("tmp");
    let up = Mock::new(true);
    let mut sink = open(&up, tmp.path(), 1024 * 1024, SpoolFull::DropOldest);
    write_range(&mut sink, 1..11);
    up.wait_distinct(10);
    drop(sink);
    // A run that writes nothing removes the delivered segment and leaves no new one.
    drop(open(&up, tmp.path(), 1024 * 1024, SpoolFull::DropOldest));
    assert!(segments(tmp.path()).is_empty());
    let down = Mock::new(false);
    let mut sink = open(&down, tmp.path(), 1024 * 1024, SpoolFull::DropOldest);
    write_range(&mut sink, 1..6);
    drop(sink);
    let again = Mock::new(true);
    let sink = open(&again, tmp.path(), 1024 * 1024, SpoolFull::DropOldest);
    assert_eq!(again.wait_distinct(5), (1..6).collect::<Vec<_>>());
    drop(sink);
}

#[test]
fn torn_tail_is_skipped() {
    let tmp = tempfile::tempdir().expect("tmp");
    let down = Mock::new(false);
    let mut sink = open(&down, tmp.path(), 1024 * 1024, SpoolFull::DropOldest);
    write_range(&mut sink, 1..51);
    drop(sink);
    // A crash mid-write: half a frame, then zeros (preallocated space).
    let last = segments(tmp.path()).pop().expect("a segment");
    let mut frame = Vec::new();
    frame::encode(51, b"half of this record never made it", &mut frame);
    frame.truncate(20);
    let mut f = std::fs::OpenOptions::new().append(true).open(&last).expect("open seg");
    f.write_all(&frame).expect("tear");
    drop(f);

    let up = Mock::new(true);
    let mut sink = open(&up, tmp.path(), 1024 * 1024, SpoolFull::DropOldest);
    write_range(&mut sink, 100..110);
    let want: Vec<u64> = (1..51).chain(100..110).collect();
    assert_eq!(up.wait_distinct(60), want);
    drop(sink);

    // Zeros where frames should be are damage too, not records.
    let tmp = tempfile::tempdir().expect("tmp");
    let mut sink = open(&down, tmp.path(), 1024 * 1024, SpoolFull::DropOldest);
    write_range(&mut sink, 1..11);
    drop(sink);
    let last = segments(tmp.path()).pop().expect("a segment");
    let mut f = std::fs::OpenOptions::new().append(true).open(&last).expect("open seg");
    f.write_all(&[0u8; 4096]).expect("zeros");
    drop(f);
    let up = Mock::new(true);
    let sink = open(&up, tmp.path(), 1024 * 1024, SpoolFull::DropOldest);
    assert_eq!(up.wait_distinct(10), (1..11).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(up.got().len(), 10);
    drop(sink);
}

#[test]
fn full_spool_drops_oldest_and_counts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let down = Mock::new(false);
    // About 110-byte frames, 4 KiB segments, 16 KiB spool.
    let mut sink = open(&down, tmp.path(), 16 * 1024, SpoolFull::DropOldest);
    write_range(&mut sink, 1..1001);
    let dropped = dropped(&mut sink);
    assert_eq!(self::dropped(&mut sink), 0, "taken once");
    let stats = sink.stats();
    let pending = stats.pending_records.load(Ordering::Relaxed);
    assert!(dropped > 800 && pending > 100, "dropped {dropped}, pending {pending}");
    assert_eq!(dropped + pending, 1000);
    assert!(stats.spool_bytes.load(Ordering::Relaxed) <= 16 * 1024);
    down.up.store(true, Ordering::Relaxed);
    // The newest records are kept, in order, ending with the last one.
    let got = down.wait_distinct(pending as usize);
    let first = 1000 - pending + 1;
    assert_eq!(got, (first..1001).collect::<Vec<_>>());
    drop(sink);
}

#[test]
fn full_spool_drops_newest_and_counts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let down = Mock::new(false);
    let mut sink = open(&down, tmp.path(), 16 * 1024, SpoolFull::DropNewest);
    write_range(&mut sink, 1..1001);
    let dropped = dropped(&mut sink);
    let pending = sink.stats().pending_records.load(Ordering::Relaxed);
    assert_eq!(dropped + pending, 1000);
    // About 110-byte frames: the spool holds what fits in 16 KiB, nothing more.
    assert!((140..=16 * 1024 / 100).contains(&pending), "pending {pending}");
    down.up.store(true, Ordering::Relaxed);
    assert_eq!(down.wait_distinct(pending as usize), (1..=pending).collect::<Vec<_>>());
    drop(sink);
}

#[test]
fn one_sensor_per_spool() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mock = Mock::new(true);
    let sink = open(&mock, tmp.path(), 1024 * 1024, SpoolFull::DropOldest);
    let opts =
        SpoolOptions { dir: Some(tmp.path().to_owned()), disk: DiskOptions::NONE, ..SpoolOptions::default() };
    let err = DurableSink::open(mock.clone(), mock.clone(), &opts).expect_err("locked");
    assert!(err.to_string().contains("in use"), "{err}");
    drop(sink);
}

#[test]
fn default_dir_is_named_after_the_sink() {
    let d = spool_dir("syslog+tls://siem.example:6514", &SpoolOptions::default());
    assert_eq!(d, Path::new("/var/lib/sensor/spool/syslog_tls___siem.example_6514"));
    let out: crate::sinks::Output =
        "syslog+tls://siem.example:6514".parse::<crate::sinks::OutputSpec>().expect("spec").into();
    assert_eq!(output_spool_dir(&out), Some(d));
    let file: crate::sinks::Output = crate::sinks::OutputSpec::File("/x".into()).into();
    assert_eq!(output_spool_dir(&file), None);
}

/// Leaves 3 segments of 100 records each undelivered in `dir`; returns their paths.
fn three_segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let down = Mock::new(false);
    // About 110-byte frames and 4 KiB segments (max_bytes / 8 is clamped to 4096).
    let mut sink = open(&down, dir, 16 * 1024, SpoolFull::DropNewest);
    write_range(&mut sink, 1..101);
    drop(sink);
    segments(dir)
}

#[test]
fn a_damaged_or_foreign_ack_never_deletes_undelivered_records() {
    for ack in [
        "garbage\n".to_owned(),
        format!("{:020} {:020}\n", 99_999_999u64, 0),
        format!("{:020} {:020}\n", u64::MAX, u64::MAX),
        "1 2 3\n".to_owned(),
        "\u{0}\u{0}\u{0}".to_owned(),
    ] {
        let tmp = tempfile::tempdir().expect("tmp");
        let segs = three_segments(tmp.path());
        assert!(segs.len() >= 3, "{segs:?}");
        std::fs::write(tmp.path().join("ack"), &ack).expect("ack");
        let up = Mock::new(true);
        let sink = open(&up, tmp.path(), 16 * 1024, SpoolFull::DropNewest);
        assert_eq!(up.wait_distinct(100), (1..101).collect::<Vec<_>>(), "ack {ack:?}");
        drop(sink);
    }
    // An offset beyond the end of the segment it names.
    let tmp = tempfile::tempdir().expect("tmp");
    let segs = three_segments(tmp.path());
    let id: u64 = segs[1].file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()).expect("id");
    std::fs::write(tmp.path().join("ack"), format!("{id:020} {:020}\n", 1u64 << 40)).expect("ack");
    let up = Mock::new(true);
    let sink = open(&up, tmp.path(), 16 * 1024, SpoolFull::DropNewest);
    assert_eq!(up.wait_distinct(100), (1..101).collect::<Vec<_>>());
    drop(sink);
}

#[test]
fn a_valid_ack_still_counts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let segs = three_segments(tmp.path());
    let id: u64 = segs[1].file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()).expect("id");
    // Everything before the second segment was delivered.
    std::fs::write(tmp.path().join("ack"), format!("{id:020} {:020}\n", 0)).expect("ack");
    let first_seq_of_second = {
        let bytes = std::fs::read(&segs[1]).expect("read");
        match frame::parse(&bytes) {
            frame::Parsed::Frame(o, _) => o.seq,
            _ => panic!("frame"),
        }
    };
    let up = Mock::new(true);
    let sink = open(&up, tmp.path(), 16 * 1024, SpoolFull::DropNewest);
    let want: Vec<u64> = (first_seq_of_second..101).collect();
    assert_eq!(up.wait_distinct(want.len()), want);
    drop(sink);
}

#[test]
fn segment_names_that_are_not_ids_are_left_alone_and_ids_do_not_overflow() {
    let tmp = tempfile::tempdir().expect("tmp");
    let huge = tmp.path().join(format!("{}.seg", u64::MAX));
    std::fs::write(&huge, b"not ours").expect("write");
    std::fs::create_dir(tmp.path().join("00000000000000000007.seg")).expect("a directory");
    std::fs::write(tmp.path().join("ack"), format!("{} 0\n", u64::MAX)).expect("ack");
    let up = Mock::new(true);
    let mut sink = open(&up, tmp.path(), 1024 * 1024, SpoolFull::DropOldest);
    write_range(&mut sink, 1..11);
    assert_eq!(up.wait_distinct(10), (1..11).collect::<Vec<_>>());
    drop(sink);
    assert!(huge.exists(), "a file that is not a segment is not deleted");
}

#[test]
fn damage_in_the_middle_keeps_the_records_after_it_and_counts_the_lost() {
    let tmp = tempfile::tempdir().expect("tmp");
    let down = Mock::new(false);
    let mut sink = open(&down, tmp.path(), 1024 * 1024, SpoolFull::DropOldest);
    write_range(&mut sink, 1..51);
    drop(sink);
    let seg = segments(tmp.path()).pop().expect("segment");
    let mut bytes = std::fs::read(&seg).expect("read");
    // Overwrite frames 11 to 13 (about 110 bytes each) with garbage.
    let frame_len = bytes.len() / 50;
    for b in &mut bytes[10 * frame_len + 5..13 * frame_len - 3] {
        *b = 0xa5;
    }
    std::fs::write(&seg, &bytes).expect("damage");
    let up = Mock::new(true);
    let mut sink = open(&up, tmp.path(), 1024 * 1024, SpoolFull::DropOldest);
    let dropped: Vec<_> = sink.take_dropped().into_iter().filter(|(r, _)| *r == "spool_damaged").collect();
    assert_eq!(dropped, vec![("spool_damaged", 3)], "three records were in the damaged bytes");
    let want: Vec<u64> = (1..11).chain(14..51).collect();
    assert_eq!(up.wait_distinct(want.len()), want);
    drop(sink);
}

#[test]
fn an_urgent_record_goes_ahead_of_the_backlog_and_again_in_order() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("spool");
    let mock = Mock::new(true);
    let mut sink = open(&mock, &dir, 4 * 1024 * 1024, SpoolFull::DropOldest);
    // Buffered, not yet handed to the sender.
    for s in 1..51 {
        sink.write(&rec(s), &[]).expect("write");
    }
    sink.urgent(&rec(50), &[]).expect("urgent");
    let firsts = mock.wait_distinct(50);
    assert_eq!(firsts.first(), Some(&50), "the urgent record went first: {firsts:?}");
    let mut sorted = firsts.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..51).collect::<Vec<_>>());
    // In order from the spool as well (receivers de-duplicate by seq).
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.got().len() < 51 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(mock.got()[1..], (1..51).collect::<Vec<_>>()[..]);
}
