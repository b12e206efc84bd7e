//! No silent loss: when the ring buffer overflows, the kernel counts the drops and they arrive
//! as loss records, so delivered + lost accounts for every event; seq has no gaps.

use std::{
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use sensor::{
    pipeline::Options,
    sinks::{Sink, SinkError},
};
use sensor_proto::{AuditRecord, v1::audit_record::Event};
use sensor_tests::{TestSensor, lost, unique};

/// A sink that blocks while the test holds the gate, stalling the whole pipeline.
struct GatedSink(Arc<Mutex<()>>);

impl Sink for GatedSink {
    fn name(&self) -> &str {
        "gated"
    }
    fn write(&mut self, _: &AuditRecord, _: &[u8]) -> Result<(), SinkError> {
        drop(self.0.lock().expect("gate"));
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[test]
fn ring_overflow_becomes_loss_records() {
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().expect("gate");
    let opts = Options {
        extra_sinks: vec![Box::new(GatedSink(gate.clone()))],
        queue_capacity: 1,
        proc_ring_bytes: Some(4096),
        loss_poll_interval: Duration::from_millis(200),
        ..Options::default()
    };
    let mut sensor = TestSensor::start(opts);
    let tag = unique("storm");
    const N: usize = 300;
    let mut pids = Vec::with_capacity(N);
    for _ in 0..N {
        let mut c = Command::new("/bin/true").arg(&tag).spawn().expect("spawn");
        pids.push(c.id());
        c.wait().expect("wait");
    }
    drop(held);
    std::thread::sleep(Duration::from_millis(500));
    let _ = sensor.wait_for(Duration::from_millis(100), |_| false);
    let records = sensor.stop();

    let delivered = records
        .iter()
        .filter(|r| {
            matches!(r.event, Some(Event::Exec(_)))
                && r.process.as_ref().is_some_and(|p| p.argv.get(1) == Some(&tag))
        })
        .count();
    let lost = lost(&records, "exec", Some("ringbuf_full"));
    assert!(lost > 0, "a 4 KiB ring with a stalled reader must overflow (delivered {delivered})");
    // Other processes on the machine may also have lost events, so `lost` can exceed ours.
    assert!(delivered as u64 + lost >= N as u64, "delivered {delivered} + lost {lost} < {N}");
    assert!(delivered < N);
    // seq strictly increasing, no gaps.
    for w in records.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1);
    }
    assert_eq!(records.first().map(|r| r.seq), Some(1));
}

#[test]
fn file_overload_is_shed_and_counted_while_lineage_survives() {
    let opts = Options {
        ignore_self: false,
        file_ring_bytes: Some(4096),
        loss_poll_interval: Duration::from_millis(200),
        ..Options::default()
    };
    let sensor = TestSensor::start(opts);
    let dir = tempfile::tempdir().expect("tempdir");
    let storm_dir = dir.path().to_owned();
    // A file storm from this process into a 4 KiB file ring...
    let storm = std::thread::spawn(move || {
        for i in 0..20_000 {
            std::fs::write(storm_dir.join(format!("f{}", i % 50)), b"x").expect("write");
        }
    });
    // ... while processes start and end.
    let tag = unique("lineage");
    const N: usize = 50;
    for _ in 0..N {
        let mut c = Command::new("/bin/true").arg(&tag).spawn().expect("spawn");
        c.wait().expect("wait");
    }
    storm.join().expect("storm");
    std::thread::sleep(Duration::from_millis(500));
    let records = sensor.stop();
    let execs = records
        .iter()
        .filter(|r| {
            matches!(r.event, Some(Event::Exec(_)))
                && r.process.as_ref().is_some_and(|p| p.argv.get(1) == Some(&tag))
        })
        .count();
    let file_lost = lost(&records, "file", Some("ringbuf_full"));
    let exec_lost = lost(&records, "exec", None);
    assert!(file_lost > 0, "the file storm must overflow a 4 KiB ring");
    assert_eq!(exec_lost, 0, "lineage is never shed with file events");
    assert_eq!(execs, N, "every exec during the file storm is recorded");
}
