use std::collections::BTreeMap;

use sensor_proto::v1::{ExecEvent, Host};

use super::*;
use crate::{
    enrich::{Enriched, clock::BootClock},
    record::RecordBuilder,
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
    let mut sink = FileSink::open(dir, crate::sinks::spec::FileOptions::default()).expect("sink");
    let mut b = RecordBuilder::new(host(instance), BootClock::now(), crate::sinks::file::chain_tail(dir));
    if let Some(k) = key {
        b = b.with_signer(crate::record::signing::CheckpointSigner::load(k).expect("key"));
    }
    for i in 0..n {
        let e = Enriched {
            boot_ns: i as u64,
            process: None,
            ancestors: Vec::new(),
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
    let mut files = crate::sinks::file::record_files(dir).expect("list");
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
    use crate::record::signing;
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
