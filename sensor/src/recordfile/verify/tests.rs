use std::collections::BTreeMap;

use sensor_proto::v1::{ExecEvent, Host};

use super::*;
use crate::{
    enrich::{Enriched, clock::BootClock},
    recordbuild::RecordBuilder,
    sinks::{Sink, file::FileSink},
};

fn host(instance: &str) -> Host {
    Host { instance_id: instance.into(), hostname: "h".into(), labels: BTreeMap::new(), ..Default::default() }
}

/// Writes `n` records (and a final checkpoint) with a real builder and file sink; returns the
/// frames' byte ranges in the single file written.
fn write_run(dir: &Path, instance: &str, n: usize) {
    write_signed_run(dir, instance, n, None);
}

fn write_signed_run(dir: &Path, instance: &str, n: usize, key: Option<&Path>) {
    let mut sink = FileSink::open(
        dir,
        crate::sinks::spec::FileOptions { disk: crate::sinks::spec::DiskOptions::NONE, ..Default::default() },
    )
    .expect("sink");
    let mut b = RecordBuilder::new(host(instance), BootClock::now(), crate::recordfile::chain_tail(dir));
    if let Some(k) = key {
        b = b.with_signer(crate::recordbuild::signing::CheckpointSigner::load(k).expect("key"));
    }
    for i in 0..n {
        let e = Enriched {
            boot_ns: i as u64,
            process: None,
            ancestors: crate::enrich::ancestry::Ancestry::empty(),
            event: Event::Exec(ExecEvent { filename: format!("/bin/{i}"), ..Default::default() }),
        };
        let s = b.build(e);
        sink.write(&s.record, &s.bytes).expect("write");
    }
    let cp = b.checkpoint(true);
    sink.write(&cp.record, &cp.bytes).expect("write");
    sink.flush().expect("flush");
}

fn only_file(dir: &Path) -> PathBuf {
    let mut files = crate::recordfile::record_files(dir).expect("list");
    assert_eq!(files.len(), 1);
    files.pop().expect("file")
}

/// Byte ranges of the frames (prefix included) of a file.
fn frames(path: &Path) -> Vec<std::ops::Range<usize>> {
    let data = std::fs::read(path).expect("read");
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let mut buf = &data[at..];
        let len = prost::encoding::decode_varint(&mut buf).expect("varint") as usize;
        let prefix = data.len() - at - buf.len();
        out.push(at..at + prefix + len);
        at += prefix + len;
    }
    out
}

#[test]
fn intact_chain_verifies_across_files_and_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_run(dir.path(), "run-1", 5);
    std::thread::sleep(std::time::Duration::from_millis(5));
    write_run(dir.path(), "run-2", 3);
    let r = verify(&[dir.path().to_owned()]).expect("verify");
    assert_eq!(r.problem, None);
    assert_eq!((r.files, r.records, r.runs), (2, 10, 2));
    assert!(r.complete);
}

#[test]
fn a_flipped_byte_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_run(dir.path(), "run", 6);
    let path = only_file(dir.path());
    let f = frames(&path);
    let mut data = std::fs::read(&path).expect("read");
    // Flip a byte inside record 3's file name.
    let third = &f[2];
    let pos = data[third.clone()].windows(6).position(|w| w == b"/bin/2").expect("name") + third.start + 5;
    data[pos] = b'9';
    std::fs::write(&path, &data).expect("write");
    let r = verify(&[path]).expect("verify");
    let p = r.problem.expect("detected");
    assert_eq!(p.seq, Some(4), "the record after the altered one no longer links: {p}");
}

#[test]
fn a_deleted_record_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_run(dir.path(), "run", 6);
    let path = only_file(dir.path());
    let f = frames(&path);
    let data = std::fs::read(&path).expect("read");
    let mut cut = data[..f[2].start].to_vec();
    cut.extend_from_slice(&data[f[2].end..]);
    std::fs::write(&path, &cut).expect("write");
    let p = verify(&[path]).expect("verify").problem.expect("detected");
    assert_eq!(p.seq, Some(4));
}

#[test]
fn swapped_records_are_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_run(dir.path(), "run", 6);
    let path = only_file(dir.path());
    let f = frames(&path);
    let data = std::fs::read(&path).expect("read");
    let mut swapped = data[..f[2].start].to_vec();
    swapped.extend_from_slice(&data[f[3].clone()]);
    swapped.extend_from_slice(&data[f[2].clone()]);
    swapped.extend_from_slice(&data[f[3].end..]);
    std::fs::write(&path, &swapped).expect("write");
    let p = verify(&[path]).expect("verify").problem.expect("detected");
    assert_eq!(p.seq, Some(4), "{p}");
}

#[test]
fn torn_tail_is_accepted_up_to_the_last_whole_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_run(dir.path(), "run", 4);
    let path = only_file(dir.path());
    let f = frames(&path);
    let data = std::fs::read(&path).expect("read");
    let keep = f[3].start + 3; // into record 4
    std::fs::write(&path, &data[..keep]).expect("truncate");
    let r = verify(std::slice::from_ref(&path)).expect("verify");
    assert_eq!(r.problem, None);
    assert_eq!(r.records, 3);
    assert_eq!(r.torn.len(), 1);
    assert!(!r.complete, "no final checkpoint: the run was cut short");
    // A new run in the same directory continues the chain from the last whole record.
    std::thread::sleep(std::time::Duration::from_millis(5));
    write_run(dir.path(), "run-2", 2);
    let r = verify(&[dir.path().to_owned()]).expect("verify");
    assert_eq!(r.problem, None, "{:?}", r.problem);
    assert_eq!(r.records, 3 + 3);
    assert!(r.complete);
}

#[test]
fn signed_checkpoints_verify_and_a_recomputed_chain_does_not() {
    use crate::recordbuild::signing;
    let keys = tempfile::tempdir().expect("tempdir");
    let key = keys.path().join("cp.key");
    let public = signing::load_public(&signing::generate(&key).expect("keygen")).expect("pub");
    let other = keys.path().join("other.key");
    let other_pub = signing::load_public(&signing::generate(&other).expect("keygen")).expect("pub");

    let dir = tempfile::tempdir().expect("tempdir");
    write_signed_run(dir.path(), "run-1", 5, Some(&key));
    let ok = verify_with(&[dir.path().to_owned()], Some(&public)).expect("verify");
    assert_eq!(ok.problem, None);
    assert_eq!((ok.signed_checkpoints, ok.unsigned_tail), (1, 0));
    let wrong = verify_with(&[dir.path().to_owned()], Some(&other_pub)).expect("verify");
    assert!(wrong.problem.expect("wrong key").reason.contains("signature does not verify"));

    // An attacker rewrites history with a fresh, internally consistent chain (their own key or
    // none): the hashes all link, but the signatures do not verify.
    let forged = tempfile::tempdir().expect("tempdir");
    write_signed_run(forged.path(), "run-1", 5, Some(&other));
    assert_eq!(verify(&[forged.path().to_owned()]).expect("verify").problem, None, "hashes alone pass");
    let r = verify_with(&[forged.path().to_owned()], Some(&public)).expect("verify");
    assert!(r.problem.expect("forged").reason.contains("signature"));
    let unsigned = tempfile::tempdir().expect("tempdir");
    write_run(unsigned.path(), "run-1", 5);
    let r = verify_with(&[unsigned.path().to_owned()], Some(&public)).expect("verify");
    assert!(r.problem.expect("unsigned").reason.contains("not signed"));
}

/// A run of `n` records of which the output wrote all but `lost` (seq range), with the loss
/// record for the gap built the way the pipeline builds it: right after the gap. `tweak` may
/// alter the loss record before it is sealed. Returns the path of the single file written.
fn write_run_with_gap(
    dir: &Path,
    n: u64,
    lost: std::ops::RangeInclusive<u64>,
    mut tweak: impl FnMut(&mut crate::sinks::SinkLoss),
) -> PathBuf {
    let mut b = RecordBuilder::new(host("gap-run"), BootClock::now(), None);
    let mut out = Vec::new();
    let frame = |out: &mut Vec<u8>, bytes: &[u8]| {
        prost::encoding::encode_varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    };
    let mut gap: Option<crate::sinks::SinkLoss> = None;
    for i in 1..=n {
        // As the pipeline does: once writing works again, the loss record comes first.
        if !lost.contains(&(b.count() + 1))
            && let Some(mut g) = gap.take()
        {
            tweak(&mut g);
            let l = b.build(crate::enrich::sink_loss(i, g));
            frame(&mut out, &l.bytes);
        }
        let s = b.build(Enriched {
            boot_ns: i,
            process: None,
            ancestors: crate::enrich::ancestry::Ancestry::empty(),
            event: Event::Exec(ExecEvent { filename: format!("/bin/{i}"), ..Default::default() }),
        });
        if lost.contains(&s.record.seq) {
            let g = gap.get_or_insert_with(|| crate::sinks::SinkLoss {
                sink: "file:/x".into(),
                reason: "disk_full",
                count: 0,
                first_seq: s.record.seq,
                last_seq: 0,
                first_boot_ns: s.record.boot_ns,
                last_boot_ns: 0,
                prev_hash: s.record.integrity.as_ref().expect("linked").prev_hash.clone(),
            });
            g.count += 1;
            g.last_seq = s.record.seq;
            g.last_boot_ns = s.record.boot_ns;
            continue;
        }
        frame(&mut out, &s.bytes);
    }
    let cp = b.checkpoint(true);
    frame(&mut out, &cp.bytes);
    let path = dir.join("audit-0000000000001-000000.pb");
    std::fs::write(&path, out).expect("write");
    path
}

#[test]
fn a_gap_the_sensor_reported_is_followed_and_reported_not_called_tampering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_run_with_gap(dir.path(), 10, 4..=7, |_| {});
    let r = verify(&[path]).expect("verify");
    assert_eq!(r.problem, None, "{:?}", r.problem);
    assert_eq!(r.gaps.len(), 1);
    let g = &r.gaps[0];
    assert_eq!((g.count, g.first_seq, g.last_seq, g.seq), (4, 4, 7, 8));
    assert_eq!(g.reason, "disk_full");
    assert_eq!(r.records, 10 - 4 + 1 + 1, "6 records, the loss record, the final checkpoint");
    assert_eq!(r.runs, 1);
    assert!(r.complete);
    assert!(g.to_string().contains("4 records (seq 4 to 7) not written (disk_full)"), "{g}");
}

#[test]
fn a_gap_record_that_does_not_match_the_gap_is_a_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Claims fewer records than are missing.
    let path = write_run_with_gap(dir.path(), 10, 4..=7, |g| {
        g.count = 3;
        g.first_seq = 5;
    });
    let p = verify(&[path]).expect("verify").problem.expect("detected");
    assert!(p.reason.contains("starts at seq 5 but the record before it is seq 3"), "{p}");
    // Names another record before the gap.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_run_with_gap(dir.path(), 10, 4..=7, |g| g.prev_hash = "00".repeat(32));
    let p = verify(&[path]).expect("verify").problem.expect("detected");
    assert!(p.reason.contains("does not name the record before it"), "{p}");
    // A count that does not match the range.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_run_with_gap(dir.path(), 10, 4..=7, |g| g.count = 9);
    let p = verify(&[path]).expect("verify").problem.expect("detected");
    assert!(p.reason.contains("does not end right before it"), "{p}");
}

#[test]
fn records_removed_before_a_reported_gap_are_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_run_with_gap(dir.path(), 10, 4..=7, |_| {});
    let f = frames(&path);
    let data = std::fs::read(&path).expect("read");
    // Remove seq 3, the last record before the gap: the gap record no longer fits.
    let mut cut = data[..f[2].start].to_vec();
    cut.extend_from_slice(&data[f[2].end..]);
    std::fs::write(&path, &cut).expect("write");
    let p = verify(&[path]).expect("verify").problem.expect("detected");
    assert_eq!(p.seq, Some(8), "{p}");
}

/// Writes `n` records of a run that is cut short (no final checkpoint).
fn write_killed_run(dir: &Path, instance: &str, n: usize) {
    let mut sink = FileSink::open(
        dir,
        crate::sinks::spec::FileOptions { disk: crate::sinks::spec::DiskOptions::NONE, ..Default::default() },
    )
    .expect("sink");
    let mut b = RecordBuilder::new(host(instance), BootClock::now(), crate::recordfile::chain_tail(dir));
    for i in 0..n {
        let event = Event::Exec(ExecEvent { filename: format!("/bin/{i}"), ..Default::default() });
        let s = b.build(Enriched {
            boot_ns: BootClock::boot_ns_now(),
            process: None,
            ancestors: crate::enrich::ancestry::Ancestry::empty(),
            event,
        });
        sink.write(&s.record, &s.bytes).expect("write");
    }
    sink.flush().expect("flush");
}

#[test]
fn every_run_that_ended_without_a_final_checkpoint_is_reported() {
    let dir = tempfile::tempdir().expect("dir");
    let pause = || std::thread::sleep(std::time::Duration::from_millis(5));
    write_killed_run(dir.path(), "killed-1", 4);
    pause();
    write_run(dir.path(), "clean", 3);
    pause();
    write_killed_run(dir.path(), "killed-2", 2);
    pause();
    write_run(dir.path(), "last", 2);
    let r = verify(&[dir.path().to_owned()]).expect("verify");
    assert_eq!(r.problem, None);
    assert!(r.complete, "the last run ended cleanly");
    assert_eq!(r.runs, 4);
    let named: Vec<(&str, u64, &str)> = r
        .unfinished
        .iter()
        .map(|u| (u.instance_id.as_str(), u.last_seq, u.next_instance_id.as_str()))
        .collect();
    assert_eq!(named, [("killed-1", 4, "clean"), ("killed-2", 2, "last")], "{:#?}", r.unfinished);
    assert!(r.unfinished[0].to_string().contains("ended without a final checkpoint after seq 4"));
}
