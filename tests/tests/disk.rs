//! The disk-space policy on a real full file system: a small tmpfs is filled, then grown. The
//! file output and the spool of a network output count what they cannot write, write a loss
//! record (kind `sink`) into their own stream as soon as they can write again, and the hash
//! chain of the record files verifies across the gap (`records verify` reports it).

use std::{
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sensor::{
    enrich::{Enriched, clock::BootClock},
    recordbuild::{RecordBuilder, Sealed},
    sinks::{
        Sink, SinkError, SinkLoss,
        file::FileSink,
        spec::{DiskOptions, FileOptions, LowSpace, SpoolOptions},
        spool::DurableSink,
        transport::{Encoder, Outgoing, Transport},
    },
};
use sensor_proto::{
    AuditRecord,
    v1::{ExecEvent, Host, audit_record::Event},
};
use sensor_tests::{SmallFs, sensor_bin, unique};

/// Kills the sensor when the test fails before stopping it (a failed assertion must not leave a
/// sensor tracing the machine).
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0).unwrap_or(i32::MAX));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn no_reserve(on_low_space: LowSpace) -> DiskOptions {
    DiskOptions { reserve_bytes: 0, reserve_percent: 0, on_low_space }
}

/// Records of one sensor run with a real hash chain, about 1 KiB each.
struct Chain {
    b: RecordBuilder,
    n: u64,
}

impl Chain {
    fn new() -> Self {
        let host = Host { instance_id: unique("disk-test"), hostname: "h".into(), ..Default::default() };
        Self { b: RecordBuilder::new(host, BootClock::now(), None), n: 0 }
    }

    fn record(&mut self) -> Sealed {
        self.n += 1;
        self.b.build(Enriched {
            boot_ns: BootClock::boot_ns_now(),
            process: None,
            ancestors: sensor::enrich::ancestry::Ancestry::empty(),
            event: Event::Exec(ExecEvent {
                filename: format!("/bin/{}-{}", self.n, "x".repeat(1000)),
                ..Default::default()
            }),
        })
    }

    /// The loss record for a gap, as the pipeline builds it.
    fn loss(&mut self, l: SinkLoss) -> Sealed {
        self.b.build(sensor::enrich::sink_loss(BootClock::boot_ns_now(), l))
    }
}

/// Waits until `sink` reports the gap (it probes once a second).
fn wait_loss(sink: &mut dyn Sink) -> SinkLoss {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(l) = sink.take_loss(false) {
            return l;
        }
        assert!(Instant::now() < deadline, "the sink never reported that it can write again");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn file_output_on_a_full_disk_reports_the_gap_and_the_chain_verifies_across_it() {
    let fs = SmallFs::new("1m");
    let dir = fs.path().join("records");
    let opts = FileOptions { disk: no_reserve(LowSpace::Stop), ..FileOptions::default() };
    let mut sink = FileSink::open(&dir, opts).expect("open");
    let mut chain = Chain::new();
    // 2000 records of ~1 KiB do not fit in 1 MiB.
    for n in 0..2000 {
        let s = chain.record();
        sink.write(&s.record, &s.bytes).expect("a full disk is not a write error");
        if n % 50 == 0 {
            sink.flush().expect("flush never fails either");
        }
    }
    sink.flush().expect("flush");
    let m = sink.metrics().disk.expect("disk metrics");
    assert!(m.suspended && m.unwritten > 500, "{m:?}");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(sink.take_loss(false), None, "still full: no loss record yet");

    fs.resize("8m");
    let loss = wait_loss(&mut sink);
    assert_eq!(loss.reason, "disk_full");
    assert_eq!(loss.count, m.unwritten);
    assert_eq!(loss.last_seq, 2000);
    assert_eq!(loss.last_seq - loss.first_seq + 1, loss.count);
    // What the pipeline does: the loss record goes next, then the stream goes on.
    let l = chain.loss(loss);
    sink.write(&l.record, &l.bytes).expect("write");
    for _ in 0..20 {
        let s = chain.record();
        sink.write(&s.record, &s.bytes).expect("write");
    }
    sink.flush().expect("flush");
    assert!(!sink.metrics().disk.expect("disk").suspended);
    drop(sink);

    let r = sensor::recordfile::verify::verify(std::slice::from_ref(&dir)).expect("verify");
    assert_eq!(r.problem, None, "a full disk is not tampering: {:?}", r.problem);
    assert_eq!(r.gaps.len(), 1, "{r:?}");
    assert_eq!(r.gaps[0].count, m.unwritten);
    assert_eq!(r.records, 2000 - m.unwritten + 1 + 20);
    let out = Command::new(sensor_bin()).args(["records", "verify"]).arg(&dir).output().expect("verify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("chain intact across 1 gaps") && text.contains("(disk_full)"), "{text}");
}

#[test]
fn on_low_space_rotate_deletes_the_oldest_files_first() {
    let fs = SmallFs::new("4m");
    let dir = fs.path().join("records");
    // Keep 2 MiB free: with 256 KiB files, the oldest go and writing never stops.
    let opts = FileOptions {
        max_file_bytes: 256 * 1024,
        disk: DiskOptions { reserve_bytes: 2 << 20, reserve_percent: 0, on_low_space: LowSpace::Rotate },
        ..FileOptions::default()
    };
    let mut sink = FileSink::open(&dir, opts).expect("open");
    let mut chain = Chain::new();
    for n in 0..6000 {
        let s = chain.record();
        sink.write(&s.record, &s.bytes).expect("write");
        if n % 100 == 0 {
            sink.flush().expect("flush");
        }
    }
    sink.flush().expect("flush");
    let m = sink.metrics().disk.expect("disk");
    assert_eq!(m.unwritten, 0, "{m:?}");
    assert!(m.deleted_files > 5 && !m.suspended, "{m:?}");
    let (free, _) = sensor::sinks::space::fs_space(fs.path()).expect("statvfs");
    // Free space is checked every MiB written (and every second), plus what is buffered.
    assert!(free + (1 << 20) + 512 * 1024 >= 2 << 20, "about the reserve is kept free: {free}");
    drop(sink);
    let r = sensor::recordfile::verify::verify(&[dir]).expect("verify");
    assert_eq!(r.problem, None, "{:?}", r.problem);
}

/// Collects what the spool delivers while `up`.
#[derive(Clone, Default)]
struct Collect {
    up: Arc<std::sync::atomic::AtomicBool>,
    got: Arc<Mutex<Vec<Outgoing>>>,
}

impl Encoder for Collect {
    fn encode(&self, record: &AuditRecord, _encoded: &[u8]) -> Result<Vec<u8>, SinkError> {
        Ok(serde_json::to_vec(record).expect("json"))
    }
}

impl Transport for Collect {
    fn name(&self) -> &str {
        "collect://test"
    }

    fn deliver(&mut self, batch: &[Outgoing]) -> Result<(), SinkError> {
        if !self.up.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(SinkError::Delivery { sink: "collect".into(), reason: "down".into() });
        }
        self.got.lock().expect("lock").extend(batch.iter().cloned());
        Ok(())
    }
}

fn spool_on(fs: &SmallFs, t: &Collect) -> DurableSink<Collect> {
    let opts = SpoolOptions {
        dir: Some(fs.path().join("spool")),
        max_bytes: 64 * 1024 * 1024,
        disk: no_reserve(LowSpace::Stop),
        ..SpoolOptions::default()
    };
    let mut sink = DurableSink::open(t.clone(), t.clone(), &opts).expect("open");
    sink.set_drain_on_close(Duration::from_secs(10));
    sink
}

/// Writes `n` records of `chain` to `sink`, flushing as the pipeline does.
fn write_n(sink: &mut DurableSink<Collect>, chain: &mut Chain, n: u64) {
    for i in 0..n {
        let s = chain.record();
        sink.write(&s.record, &s.bytes).expect("a full disk is not a write error");
        if i % 50 == 0 {
            sink.flush().expect("flush");
        }
    }
}

/// The distinct seqs delivered, in the order they first arrived.
fn delivered(t: &Collect) -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    t.got.lock().expect("lock").iter().map(|o| o.seq).filter(|s| seen.insert(*s)).collect()
}

#[test]
fn a_spool_on_a_full_disk_delivers_the_loss_record_after_the_gap() {
    // The remote is down and the disk full: the memory lane (8 MiB) holds the latest records,
    // the oldest it had to let go are the gap. ~1.2 KiB per record: 10 000 overflow the lane.
    const N: u64 = 10_000;
    let fs = SmallFs::new("1m");
    let t = Collect::default();
    let mut sink = spool_on(&fs, &t);
    let mut chain = Chain::new();
    write_n(&mut sink, &mut chain, N);
    let unwritten = sink.metrics().disk.expect("disk").unwritten;
    assert!(unwritten > 500, "{unwritten}");
    fs.resize("24m");
    let loss = wait_loss(&mut sink);
    assert_eq!(loss.count, unwritten);
    assert_eq!(loss.last_seq - loss.first_seq + 1, loss.count, "one run: {loss:?}");
    assert!(loss.last_seq < N, "the latest records were held in memory: {loss:?}");
    let (first_missing, last_missing) = (loss.first_seq, loss.last_seq);
    let l = chain.loss(loss);
    sink.write(&l.record, &l.bytes).expect("write");
    write_n(&mut sink, &mut chain, 10);
    sink.flush().expect("flush");
    t.up.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(sink);
    let want: Vec<u64> = (1..first_missing).chain(last_missing + 1..=N + 11).collect();
    assert_eq!(
        delivered(&t),
        want,
        "what was spooled before the gap, what memory held, the loss record, what followed"
    );
    let got = t.got.lock().expect("lock").clone();
    let lr: serde_json::Value =
        serde_json::from_slice(&got.iter().find(|o| o.seq == N + 1).expect("loss record").payload)
            .expect("json");
    assert_eq!(lr["loss"]["kind"], "sink");
    assert_eq!(lr["loss"]["count"], unwritten.to_string());
}

#[test]
fn a_full_disk_does_not_blind_a_network_output_whose_remote_is_up() {
    // Filling the disk is the cheapest way to silence a sensor that only spools: while the
    // spool cannot write, records go to the remote from memory, and nothing is lost.
    let fs = SmallFs::new("1m");
    let t = Collect::default();
    t.up.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sink = spool_on(&fs, &t);
    let stats = sink.stats();
    let mut chain = Chain::new();
    write_n(&mut sink, &mut chain, 3000);
    sink.flush().expect("flush");
    assert!(sink.gap_open(), "the disk filled up: the spool stopped writing");
    let deadline = Instant::now() + Duration::from_secs(20);
    while delivered(&t).len() < 3000 {
        assert!(Instant::now() < deadline, "{} of 3000 delivered", delivered(&t).len());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(delivered(&t), (1..=3000).collect::<Vec<_>>(), "every record, in order");
    assert_eq!(sink.metrics().disk.expect("disk").unwritten, 0, "nothing lost");
    fs.resize("24m");
    // Writing works again: no gap to report, the episode ends quietly.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.gap_open() {
        assert_eq!(sink.take_loss(false).map(|l| l.count), None, "no loss record: nothing is missing");
        assert!(Instant::now() < deadline, "the episode never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    write_n(&mut sink, &mut chain, 10);
    drop(sink);
    assert_eq!(delivered(&t), (1..=3010).collect::<Vec<_>>());
    assert_eq!(stats.held_records.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn stopping_on_a_full_disk_with_the_remote_down_counts_what_memory_holds() {
    // Nothing can keep the held records for the next run: the loss record says they are missing
    // (the drain may still deliver some; a loss record never understates).
    let fs = SmallFs::new("1m");
    let t = Collect::default();
    let mut sink = spool_on(&fs, &t);
    sink.set_drain_on_close(Duration::from_millis(200));
    let mut chain = Chain::new();
    write_n(&mut sink, &mut chain, 3000);
    sink.flush().expect("flush");
    assert_eq!(sink.metrics().disk.expect("disk").unwritten, 0, "all held in memory so far");
    let loss = sink.take_loss(true).expect("a loss record at stop");
    assert_eq!(loss.last_seq, 3000, "{loss:?}");
    assert_eq!(loss.last_seq - loss.first_seq + 1, loss.count, "{loss:?}");
    assert!(loss.count > 1000, "{loss:?}");
    drop(sink);
}

#[test]
fn sensor_with_its_record_directory_on_a_full_disk() {
    let fs = SmallFs::new("2m");
    let dir = fs.path().join("records");
    let work = tempfile::tempdir().expect("tempdir");
    let jsonl = work.path().join("out.jsonl");
    let config = work.path().join("sensor.toml");
    // File events only from the test's own directory: the machine's other activity (a parallel
    // build, a VM test) must not fill the grown file system a second time.
    let busy = work.path().join("busy");
    std::fs::create_dir(&busy).expect("mkdir");
    std::fs::write(
        &config,
        format!(
            "[sensor]\nheartbeat = \"1s\"\n[filters]\ninclude_paths = [\"{}\"]\n\
             [[output]]\nurl = \"file:{}\"\n[output.file]\nreserve = 0\nreserve_percent = 0\n\
             [[output]]\nurl = \"jsonl:{}\"\n",
            busy.display(),
            dir.display(),
            jsonl.display()
        ),
    )
    .expect("config");
    let log = work.path().join("sensor.log");
    let mut sensor = Command::new(sensor_bin())
        .args(["run", "--metrics", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .stderr(std::fs::File::create(&log).expect("log"))
        .stdout(Stdio::null())
        .spawn()
        .expect("start sensor");
    let _reap = KillOnPanic(sensor.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("streaming records") {
        assert!(Instant::now() < deadline, "sensor did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // File activity the sensor records: about 8000 records, far more than 2 MiB holds.
    let storm = |n: usize| {
        for i in 0..n {
            let p = busy.join(format!("f{i}"));
            std::fs::write(&p, b"x").expect("write");
            std::fs::remove_file(&p).expect("rm");
        }
    };
    storm(4000);
    std::thread::sleep(Duration::from_secs(2));
    let metrics = scrape(&log);
    let sink = format!("{{sink=\"file:{}\"}}", dir.display());
    assert!(metrics.contains(&format!("sensor_sink_disk_suspended{sink} 1")), "{metrics}");
    assert!(metrics.contains(&format!("sensor_sink_disk_reserve_bytes{sink} 0")), "{metrics}");
    assert!(!metrics.contains(&format!("sensor_sink_unwritten_records_total{sink} 0\n")), "{metrics}");
    // The other outputs learn at once, from the heartbeats, which output stopped writing.
    let file_output = format!("file:{}", dir.display());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&jsonl).unwrap_or_default().lines().any(|l| {
        serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
            v["heartbeat"]["suspended_outputs"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| *o == *file_output))
        })
    }) {
        assert!(Instant::now() < deadline, "no heartbeat names {file_output} as suspended");
        std::thread::sleep(Duration::from_millis(200));
    }
    fs.resize("512m");
    storm(200);
    // The loss record reaches the other outputs too.
    let deadline = Instant::now() + Duration::from_secs(20);
    let loss = loop {
        let text = std::fs::read_to_string(&jsonl).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["loss"]["kind"] == "sink");
        if let Some(v) = found {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no loss record of kind sink in {} ({} lines); sensor log:\n{}",
            jsonl.display(),
            text.lines().count(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(loss["loss"]["reason"], "disk_full");
    let metrics = scrape(&log);
    assert!(metrics.contains(&format!("sensor_sink_disk_suspended{sink} 0")), "{metrics}");
    assert!(metrics.contains("sensor_lost_events_total{kind=\"sink\",reason=\"disk_full\"}"), "{metrics}");
    assert_eq!(loss["loss"]["output"], format!("file:{}", dir.display()));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(sensor.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM");
    assert!(sensor.wait().expect("wait").success());

    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(text.matches("writing records failed").count(), 1, "one warning per episode:\n{text}");
    let out = Command::new(sensor_bin()).args(["records", "verify"]).arg(&dir).output().expect("verify");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("across 1 gaps") && report.contains("ends with a final checkpoint"), "{report}");
    let count: u64 = loss["loss"]["count"].as_str().and_then(|c| c.parse().ok()).expect("count");
    assert!(report.contains(&format!("gap: {count} records")), "{report}");
}

/// `GET /metrics` from the sensor whose log is `log` (it logs the address it listens on).
fn scrape(log: &Path) -> String {
    use std::io::{Read as _, Write as _};
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let addr = text
        .lines()
        .find(|l| l.contains("metrics endpoint listening"))
        .and_then(|l| l.split("addr=").nth(1))
        .and_then(|a| a.split_whitespace().next())
        .expect("metrics address in the log");
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("request");
    let mut body = String::new();
    c.read_to_string(&mut body).expect("response");
    body
}
