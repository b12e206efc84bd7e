//! How the previous run writing to the same file output ended: a run that stopped cleanly wrote
//! a final checkpoint as its last record; anything else (SIGKILL, a crash, the OOM killer, power
//! lost) is reported at the next start with a `previous_run` record naming that run, its last
//! record, and the gap until this start.

use std::path::Path;

use sensor_proto::{
    AuditRecord,
    v1::{PreviousRunEvent, audit_record::Event},
};

use crate::recordfile::reader::{Frame, RecordReader};

/// The last whole record of the newest record file in `dir` that has one, and whether that file
/// ends in a torn record.
fn last_record(dir: &Path) -> Option<(AuditRecord, bool)> {
    for path in crate::recordfile::record_files(dir).ok()?.iter().rev() {
        let Ok(file) = std::fs::File::open(path) else { continue };
        let mut last = None;
        let mut torn = false;
        for frame in RecordReader::new(std::io::BufReader::new(file)) {
            match frame {
                Frame::Record { record, .. } => last = Some(*record),
                Frame::Damaged { .. } => {
                    torn = true;
                    break;
                }
            }
        }
        if let Some(r) = last {
            return Some((r, torn));
        }
    }
    None
}

/// The `previous_run` event when the last run writing to `dir` did not end with a final
/// checkpoint; `now_unix_ns` is this start's time, `boot_id` this boot's id.
pub fn unfinished(dir: &Path, now_unix_ns: i128, boot_id: &str) -> Option<Event> {
    let (last, torn) = last_record(dir)?;
    if matches!(&last.event, Some(Event::Checkpoint(c)) if c.r#final) && !torn {
        return None;
    }
    let host = last.host.clone().unwrap_or_default();
    let last_ns =
        last.time.as_ref().map_or(0, |t| i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos));
    let gap_ns = if last_ns > 0 { u64::try_from(now_unix_ns - last_ns).unwrap_or(0) } else { 0 };
    Some(Event::PreviousRun(PreviousRunEvent {
        instance_id: host.instance_id,
        last_seq: last.seq,
        last_event: crate::sinks::syslog::kind(&last).0.to_owned(),
        last_time: last.time,
        gap_ns,
        same_boot: !host.boot_id.is_empty() && host.boot_id == boot_id,
        output: format!("file:{}", dir.display()),
        torn,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sensor_proto::v1::{ExecEvent, Host};

    use super::*;
    use crate::{
        enrich::{Enriched, clock::BootClock},
        recordbuild::RecordBuilder,
        sinks::{Sink, file::FileSink},
    };

    fn run(dir: &Path, instance: &str, n: usize, clean: bool) {
        let mut sink = FileSink::open(
            dir,
            crate::sinks::spec::FileOptions {
                disk: crate::sinks::spec::DiskOptions::NONE,
                ..Default::default()
            },
        )
        .expect("sink");
        let host = Host {
            instance_id: instance.into(),
            boot_id: "boot-1".into(),
            labels: BTreeMap::new(),
            ..Default::default()
        };
        let mut b = RecordBuilder::new(host, BootClock::now(), crate::recordfile::chain_tail(dir));
        for i in 0..n {
            let event = Event::Exec(ExecEvent { filename: format!("/bin/{i}"), ..Default::default() });
            let boot_ns = BootClock::boot_ns_now();
            let s = b.build(Enriched {
                boot_ns,
                process: None,
                ancestors: crate::enrich::ancestry::Ancestry::empty(),
                event,
            });
            sink.write(&s.record, &s.bytes).expect("write");
        }
        if clean {
            let cp = b.checkpoint(true);
            sink.write(&cp.record, &cp.bytes).expect("write");
        }
        sink.flush().expect("flush");
    }

    #[test]
    fn a_run_cut_short_is_named_and_a_clean_one_is_not() {
        let dir = tempfile::tempdir().expect("dir");
        assert_eq!(unfinished(dir.path(), 0, "boot-1"), None, "no records yet");
        run(dir.path(), "run-a", 3, true);
        assert_eq!(unfinished(dir.path(), 0, "boot-1"), None, "clean end");
        run(dir.path(), "run-b", 5, false);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("now");
        let later = i128::try_from(now.as_nanos()).expect("ns") + 7_000_000_000;
        let Some(Event::PreviousRun(p)) = unfinished(dir.path(), later, "boot-1") else {
            panic!("not reported")
        };
        assert_eq!(p.instance_id, "run-b");
        assert_eq!(p.last_event, "exec");
        assert!(p.same_boot && !p.torn);
        assert!((6_000_000_000..8_000_000_000).contains(&p.gap_ns), "{}", p.gap_ns);
        let Some(Event::PreviousRun(p)) = unfinished(dir.path(), later, "boot-2") else {
            panic!("not reported")
        };
        assert!(!p.same_boot, "another boot");
    }
}
