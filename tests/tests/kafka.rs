//! The `kafka://` output end to end: the real sensor in process, writing to librdkafka's mock
//! cluster (it speaks the real Kafka protocol on localhost), then a consumer reading the topic
//! back. Every record of the run must arrive, keyed by the host, as valid JSON.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer as _},
    mocking::MockCluster,
};
use sensor::{
    pipeline::Options,
    sinks::{self, Output, OutputOptions, OutputSpec, spec::DiskOptions},
};
use sensor_proto::{AuditRecord, v1::audit_record::Event};
use sensor_tests::{SmallFs, TestSensor, is_exec_of, scratch_dir, unique};

const TOPIC: &str = "audit";
const PARTITIONS: i32 = 3;
const BURST: usize = 200;

/// One message read back from the topic.
struct Received {
    partition: i32,
    key: Vec<u8>,
    json: serde_json::Value,
}

impl Received {
    fn seq(&self) -> u64 {
        self.json["seq"].as_str().and_then(|s| s.parse().ok()).expect("seq in the JSON")
    }
}

fn kafka_output(bootstrap: &str, spool: &std::path::Path, extra: &[(&str, &str)]) -> Output {
    let mut options = OutputOptions::default();
    options.spool.dir = Some(spool.to_owned());
    // No free-space reserve: the default (5 % of the file system) would make delivery depend on
    // how full the machine's disk is, which is disk.rs's subject, not this test's.
    options.spool.disk = DiskOptions::NONE;
    options.kafka = extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>();
    Output { spec: OutputSpec::Kafka { brokers: bootstrap.to_owned(), topic: TOPIC.to_owned() }, options }
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kafka-integration-test")
        .create()
        .expect("consumer")
}

/// Everything on the topic now, all partitions.
fn read_topic(bootstrap: &str) -> Vec<Received> {
    let consumer = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    let mut left = BTreeMap::new();
    for p in 0..PARTITIONS {
        let (_, high) = consumer.fetch_watermarks(TOPIC, p, Duration::from_secs(10)).expect("watermarks");
        if high > 0 {
            tpl.add_partition_offset(TOPIC, p, Offset::Beginning).expect("partition");
            left.insert(p, high);
        }
    }
    let mut got = Vec::new();
    if left.is_empty() {
        return got;
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !left.is_empty() {
        assert!(Instant::now() < deadline, "topic not read to its end: {left:?} left");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if left.get(&m.partition()).is_some_and(|&high| m.offset() + 1 >= high) {
                    left.remove(&m.partition());
                }
                let payload = m.payload().expect("payload");
                let json = serde_json::from_slice(payload)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(payload)));
                got.push(Received {
                    partition: m.partition(),
                    key: m.key().map(<[u8]>::to_vec).unwrap_or_default(),
                    json,
                });
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    got
}

/// Runs `BURST` short processes; returns their pids.
fn burst(tag: &str) -> Vec<u32> {
    (0..BURST)
        .map(|i| {
            let mut c = Command::new("/bin/true").arg(tag).arg(i.to_string()).spawn().expect("spawn");
            let pid = c.id();
            c.wait().expect("wait");
            pid
        })
        .collect()
}

/// Waits until the topic holds a message with this seq; on failure, lists what the topic holds
/// and every loss record the sensor wrote (a sink or spool that stopped says so there).
fn wait_for_seq(sensor: &mut TestSensor, bootstrap: &str, seq: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = read_topic(bootstrap);
        if got.iter().any(|r| r.seq() == seq) {
            return;
        }
        if Instant::now() >= deadline {
            let _ = sensor.wait_for(Duration::from_secs(1), |_| false);
            let losses: Vec<String> = sensor
                .seen
                .iter()
                .filter_map(|r| match &r.event {
                    Some(Event::Loss(l)) => Some(format!("seq {} {l:?}", r.seq)),
                    _ => None,
                })
                .collect();
            let on_topic: BTreeSet<u64> = got.iter().map(Received::seq).collect();
            panic!(
                "seq {seq} did not reach the topic within {timeout:?}; on the topic: {} messages \
                 (seq {:?}..={:?}); loss records: {losses:#?}",
                got.len(),
                on_topic.first(),
                on_topic.last()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every record the sensor produced is on the topic, keyed by the host, in one partition.
fn assert_all_arrived(records: &[AuditRecord], got: &[Received]) {
    let first = records.iter().map(|r| r.seq).min().expect("records");
    let last = records.iter().map(|r| r.seq).max().expect("records");
    let host = records[0].host.as_ref().expect("host");
    let key = if host.machine_id.is_empty() { &host.hostname } else { &host.machine_id };
    let seqs: BTreeSet<u64> = got.iter().map(Received::seq).collect();
    let missing: Vec<u64> = (first..=last).filter(|s| !seqs.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "{} of seq {first}..={last} missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    for r in got {
        assert_eq!(r.key, key.as_bytes(), "message key is the host id");
        assert_eq!(r.json["host"]["instance_id"], host.instance_id.as_str());
    }
    let partitions: BTreeSet<i32> = got.iter().map(|r| r.partition).collect();
    assert_eq!(partitions.len(), 1, "one host, one partition: {partitions:?}");
    // In the partition, each record's first copy comes in seq order (re-sends may repeat some).
    // Urgent alerts (tamper evidence, e.g. another sensor on this machine being killed while
    // this test runs) are sent ahead of the spool by design and again in order with it: they
    // are left out of the order check.
    let mut seen = BTreeSet::new();
    let mut high = 0;
    for r in got.iter().filter(|r| r.json.get("alert").is_none()) {
        let s = r.seq();
        if seen.insert(s) {
            assert!(s > high, "seq {s} arrived after {high}: {}", r.json);
            high = s;
        }
    }
}

#[test]
fn every_record_of_a_burst_reaches_the_topic_keyed_by_host() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let spool = scratch_dir();

    let mut sensor = TestSensor::start(Options {
        outputs: vec![kafka_output(&bootstrap, spool.path(), &[])],
        ..Options::default()
    });
    let tag = unique("kafka-burst");
    let pids = burst(&tag);
    let last = *pids.last().expect("pids");
    let rec =
        sensor.wait_for(Duration::from_secs(20), |r| is_exec_of(r, last)).expect("exec of the last process");
    wait_for_seq(&mut sensor, &bootstrap, rec.seq, Duration::from_secs(30));
    let records = sensor.stop();

    let got = read_topic(&bootstrap);
    assert_all_arrived(&records, &got);
    for pid in pids {
        assert!(
            got.iter().any(|r| r.json["exec"].is_object() && r.json["process"]["pid"] == pid),
            "exec of pid {pid} not on the topic"
        );
    }
}

#[test]
fn records_survive_a_broker_outage() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let spool = scratch_dir();
    // Short timeouts so the outage makes deliveries fail and the spool re-send them.
    let extra = [("message.timeout.ms", "1500"), ("reconnect.backoff.max.ms", "500")];

    // Opened here rather than as an output so the test can see the spool's counters.
    let sink = sinks::open(&kafka_output(&bootstrap, spool.path(), &extra)).expect("kafka sink");
    let stats = sink.spool_stats().expect("a spooled sink");
    let mut sensor = TestSensor::start(Options { extra_sinks: vec![sink], ..Options::default() });
    let tag = unique("kafka-outage");
    let before = burst(&tag);
    let rec = sensor
        .wait_for(Duration::from_secs(20), |r| is_exec_of(r, *before.last().expect("pids")))
        .expect("exec before the outage");
    wait_for_seq(&mut sensor, &bootstrap, rec.seq, Duration::from_secs(30));

    cluster.broker_down(1).expect("broker down");
    let during = burst(&tag);
    let rec = sensor
        .wait_for(Duration::from_secs(20), |r| is_exec_of(r, *during.last().expect("pids")))
        .expect("exec during the outage");
    // Long enough for deliveries to time out and be retried from the spool.
    std::thread::sleep(Duration::from_secs(4));
    assert!(stats.delivery_errors.load(Ordering::Relaxed) > 0, "the outage made deliveries fail");
    assert!(!stats.connected.load(Ordering::Relaxed));
    cluster.broker_up(1).expect("broker up");
    wait_for_seq(&mut sensor, &bootstrap, rec.seq, Duration::from_secs(60));
    let records = sensor.stop();
    assert_eq!(stats.pending_records.load(Ordering::Relaxed), 0, "spool drained");
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);

    let got = read_topic(&bootstrap);
    assert_all_arrived(&records, &got);
    for pid in before.into_iter().chain(during) {
        assert!(
            got.iter().any(|r| r.json["exec"].is_object() && r.json["process"]["pid"] == pid),
            "exec of pid {pid} not on the topic"
        );
    }
}

#[test]
fn a_spool_disk_below_its_reserve_does_not_blind_the_output() {
    // The spool's file system (16 MiB) is below the default reserve (256 MiB) from the start,
    // as on a disk an attacker filled: nothing can be spooled, yet every record reaches the
    // topic (held in memory while the broker is reachable), and nothing is reported lost.
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let fs = SmallFs::new("16m");
    let mut output = kafka_output(&bootstrap, &fs.path().join("spool"), &[]);
    output.options.spool.disk = DiskOptions::default();
    let sink = sinks::open(&output).expect("kafka sink");
    let stats = sink.spool_stats().expect("a spooled sink");
    let mut sensor = TestSensor::start(Options { extra_sinks: vec![sink], ..Options::default() });
    let pids = burst(&unique("kafka-full-disk"));
    let rec = sensor
        .wait_for(Duration::from_secs(20), |r| is_exec_of(r, *pids.last().expect("pids")))
        .expect("exec of the last process");
    wait_for_seq(&mut sensor, &bootstrap, rec.seq, Duration::from_secs(30));
    assert_eq!(stats.spool_bytes.load(Ordering::Relaxed), 0, "nothing was spooled");
    let records = sensor.stop();
    let lost: Vec<_> = records.iter().filter(|r| matches!(r.event, Some(Event::Loss(_)))).collect();
    assert!(lost.is_empty(), "nothing is missing: {lost:?}");
    let got = read_topic(&bootstrap);
    assert_all_arrived(&records, &got);
}
