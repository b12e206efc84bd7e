//! `kafka://BROKER[,BROKER...]/TOPIC`: one Kafka message per record, through librdkafka.
//!
//! - key: the host identity (`host.machine_id`, or the hostname when the machine has no
//!   machine id), so all records of one host land in one partition, in `seq` order;
//! - value: the record as one JSON object in the output's format (canonical JSON or OCSF);
//! - an idempotent producer (`enable.idempotence=true`, `acks=all`), lz4 compression; the
//!   output's `kafka` options are librdkafka properties applied on top of these defaults.
//!
//! [`KafkaEncoder`] renders the key and value on the record thread; [`KafkaTransport`] holds the
//! output's one producer (librdkafka client) on the spool's sender thread.
//! [`KafkaTransport::deliver`] produces a batch and waits for every delivery report, so the
//! spool only forgets records the brokers have acknowledged. A batch that is re-sent after an
//! error may duplicate records on the topic; consumers de-duplicate by `seq` (at-least-once).

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, ClientContext, Message as _,
    config::RDKafkaLogLevel,
    error::{KafkaError, RDKafkaErrorCode},
    producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext},
};
use sensor_proto::AuditRecord;
use tracing::{debug, error, info, warn};

use super::{
    SinkError, render,
    spec::Format,
    transport::{self, Encoder, Outgoing, Transport},
};

/// How long librdkafka keeps trying to deliver a message (`message.timeout.ms`) unless the
/// output's options say otherwise. After it, `deliver` fails and the spool retries the batch.
/// Kept short because a `deliver` in progress also delays shutdown while Kafka is down.
const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time `deliver` waits past the message timeout for the last delivery reports.
const REPORT_GRACE: Duration = Duration::from_secs(3);
/// How long one `poll` of the producer blocks while waiting for delivery reports.
const POLL_SLICE: Duration = Duration::from_millis(5);

/// The producer properties the sink sets before the output's own `kafka` options.
pub fn producer_config(brokers: &str, extra: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "sensor")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", DEFAULT_MESSAGE_TIMEOUT.as_millis().to_string());
    for (k, v) in extra {
        config.set(k, v);
    }
    config
}

/// The message key of a record: the host it comes from.
pub fn key(record: &AuditRecord) -> &str {
    let host = record.host.as_ref();
    match host.map(|h| h.machine_id.as_str()) {
        Some(id) if !id.is_empty() => id,
        _ => host.map_or("", |h| h.hostname.as_str()),
    }
}

/// Version of the spool payload layout (payloads outlive the process in the disk spool).
const PAYLOAD_V1: u8 = 1;

/// Packs a key and a value into one spool payload: a version byte, the key's length (u32, big
/// endian), the key, then the value.
pub fn encode(key: &[u8], value: &[u8]) -> Vec<u8> {
    // Keys are host ids, far below 4 GiB; cut rather than wrap on absurd input.
    let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
    let key = key.get(..len as usize).unwrap_or(key);
    let mut out = Vec::with_capacity(5 + key.len() + value.len());
    out.push(PAYLOAD_V1);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

/// Splits a payload made by [`encode`] into key and value; `None` if it is malformed.
pub fn decode(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&version, rest) = payload.split_first()?;
    if version != PAYLOAD_V1 {
        return None;
    }
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// Delivery reports of the batch in flight.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Tally {
    /// The batch whose reports count; late reports of an earlier batch are ignored.
    generation: usize,
    acked: usize,
    failed: usize,
    first_error: Option<String>,
}

/// librdkafka's callbacks: delivery reports and logs.
#[derive(Debug, Default)]
struct Context {
    tally: Mutex<Tally>,
}

impl Context {
    fn start(&self, generation: usize) {
        *self.tally.lock().unwrap_or_else(PoisonError::into_inner) = Tally { generation, ..Tally::default() };
    }

    fn tally(&self) -> Tally {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl ClientContext for Context {
    // Broker connection trouble is not data loss (the spool keeps the records), so librdkafka's
    // errors are warnings here; `deliver` failing is what the pipeline counts.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => warn!(facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => info!(facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Debug => debug!(facility = fac, "librdkafka: {message}"),
        }
    }

    // librdkafka reports connection errors both as a log line (above) and as an error event;
    // the log line is enough.
    fn error(&self, error: KafkaError, reason: &str) {
        debug!(error = %error, "librdkafka: {reason}");
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, generation: usize) {
        let mut t = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        if t.generation != generation {
            return;
        }
        match result {
            Ok(_) => t.acked += 1,
            Err((e, msg)) => {
                t.failed += 1;
                if t.first_error.is_none() {
                    t.first_error =
                        Some(format!("{e} (partition {}, offset {})", msg.partition(), msg.offset()));
                }
            }
        }
    }
}

/// Renders records into spool payloads: the key ([`key`]) and the JSON value, packed by
/// [`encode`].
#[derive(Debug)]
pub struct KafkaEncoder {
    name: String,
    format: Format,
}

impl KafkaEncoder {
    pub fn new(brokers: &str, topic: &str, format: Format) -> Self {
        Self { name: output_name(brokers, topic), format }
    }
}

impl Encoder for KafkaEncoder {
    fn encode(&self, record: &AuditRecord, _encoded: &[u8]) -> Result<Vec<u8>, SinkError> {
        let mut value = Vec::with_capacity(1024);
        render::json(record, self.format, &mut value)
            .map_err(|source| SinkError::Json { sink: self.name.clone(), source })?;
        Ok(encode(key(record).as_bytes(), &value))
    }
}

/// The output's name, `kafka://BROKERS/TOPIC`.
fn output_name(brokers: &str, topic: &str) -> String {
    format!("kafka://{brokers}/{topic}")
}

/// A Kafka topic as a [`Transport`] for the spool.
pub struct KafkaTransport {
    name: String,
    topic: String,
    config: ClientConfig,
    /// Made by the first `deliver` (so a sensor whose spool is empty never connects), and
    /// made anew after a fatal producer error.
    producer: Option<BaseProducer<Context>>,
    generation: usize,
    /// How long `deliver` waits for the reports of a batch.
    wait: Duration,
}

impl std::fmt::Debug for KafkaTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTransport").field("name", &self.name).finish_non_exhaustive()
    }
}

impl KafkaTransport {
    /// Checks the producer configuration: an unknown property, a bad value or a conflict (such
    /// as `acks=1` with idempotence) is an error here, at start, not a delivery error later.
    /// The producer that is kept is created, and connects, on the first `deliver`.
    pub fn new(brokers: &str, topic: &str, extra: &BTreeMap<String, String>) -> Result<Self, SinkError> {
        let name = output_name(brokers, topic);
        let config = producer_config(brokers, extra);
        let timeout_ms = config
            .get("message.timeout.ms")
            .or_else(|| config.get("delivery.timeout.ms"))
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map_or(DEFAULT_MESSAGE_TIMEOUT, Duration::from_millis);
        // Some conflicts are only found when a client is made; this one is closed at once,
        // before it has connected (it has nothing to send).
        drop(create(&config).map_err(|source| SinkError::Kafka { sink: name.clone(), source })?);
        transport::count_built();
        Ok(Self {
            name,
            topic: topic.to_owned(),
            config,
            producer: None,
            generation: 0,
            wait: timeout_ms + REPORT_GRACE,
        })
    }

    fn failed(&self, reason: String) -> SinkError {
        SinkError::Delivery { sink: self.name.clone(), reason }
    }
}

fn create(config: &ClientConfig) -> Result<BaseProducer<Context>, KafkaError> {
    config.create_with_context(Context::default())
}

impl Transport for KafkaTransport {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Outgoing]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let producer = match self.producer.take() {
            Some(p) => p,
            None => {
                let p = create(&self.config)
                    .map_err(|source| SinkError::Kafka { sink: self.name.clone(), source })?;
                info!(sink = %self.name, "kafka producer created");
                p
            }
        };
        let res = self.produce_all(&producer, generation, batch);
        if let Some((code, reason)) = producer.client().fatal_error() {
            // An idempotent producer that hit a fatal error accepts nothing more: start over.
            warn!(sink = %self.name, ?code, reason, "kafka producer failed fatally; recreating it");
        } else {
            self.producer = Some(producer);
        }
        res
    }
}

impl KafkaTransport {
    fn produce_all(
        &self,
        producer: &BaseProducer<Context>,
        generation: usize,
        batch: &[Outgoing],
    ) -> Result<(), SinkError> {
        producer.context().start(generation);
        let deadline = Instant::now() + self.wait;
        let mut expected = 0;
        for out in batch {
            let Some((key, value)) = decode(&out.payload) else {
                // Retrying cannot fix it, and failing would stop the spool behind it for good.
                error!(sink = %self.name, seq = out.seq, "malformed spooled payload; record not sent");
                continue;
            };
            expected += 1;
            let mut record = BaseRecord::with_opaque_to(&self.topic, generation).key(key).payload(value);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        if Instant::now() >= deadline {
                            return Err(self.failed("producer queue stayed full".to_owned()));
                        }
                        record = back;
                        producer.poll(POLL_SLICE);
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                        // Above message.max.bytes: it would fail every retry, like a corrupt payload.
                        error!(sink = %self.name, seq = out.seq, bytes = value.len(),
                            "record larger than message.max.bytes; not sent to kafka");
                        expected -= 1;
                        break;
                    }
                    Err((source, _)) => return Err(SinkError::Kafka { sink: self.name.clone(), source }),
                }
            }
        }
        loop {
            let t = producer.context().tally();
            if t.acked + t.failed >= expected {
                return match t.first_error {
                    None => Ok(()),
                    Some(first) => {
                        Err(self
                            .failed(format!("{} of {} not delivered, first: {first}", t.failed, expected)))
                    }
                };
            }
            if Instant::now() >= deadline {
                return Err(self.failed(format!(
                    "{} of {} not acknowledged within {:?}",
                    expected - t.acked - t.failed,
                    expected,
                    self.wait
                )));
            }
            producer.poll(POLL_SLICE);
        }
    }
}

#[cfg(test)]
mod tests {
    use sensor_proto::v1::Host;

    use super::*;

    fn record(machine_id: &str, hostname: &str, seq: u64) -> AuditRecord {
        AuditRecord {
            seq,
            host: Some(Host { machine_id: machine_id.into(), hostname: hostname.into(), ..Host::default() }),
            ..AuditRecord::default()
        }
    }

    #[test]
    fn kafka_payload_roundtrip() {
        let p = encode(b"host-1", b"{\"seq\":\"1\"}");
        assert_eq!(&p[..5], &[1, 0, 0, 0, 6]);
        assert_eq!(decode(&p), Some((&b"host-1"[..], &b"{\"seq\":\"1\"}"[..])));
        assert_eq!(decode(&encode(b"", b"v")), Some((&b""[..], &b"v"[..])));
        assert_eq!(decode(&encode(b"k", b"")), Some((&b"k"[..], &b""[..])));
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"\x01\0\0"), None);
        assert_eq!(decode(b"\x01\0\0\0\x09short"), None);
        assert_eq!(decode(b"\x02\0\0\0\0"), None, "unknown layout version");
    }

    #[test]
    fn kafka_key_is_the_host() {
        assert_eq!(key(&record("m1", "ward-7", 1)), "m1");
        assert_eq!(key(&record("", "ward-7", 1)), "ward-7");
        assert_eq!(key(&AuditRecord::default()), "");
    }

    #[test]
    fn kafka_config_defaults_then_options() {
        let mut extra = BTreeMap::new();
        extra.insert("compression.type".to_owned(), "none".to_owned());
        extra.insert("security.protocol".to_owned(), "plaintext".to_owned());
        let c = producer_config("a:9092,b:9092", &extra);
        assert_eq!(c.get("bootstrap.servers"), Some("a:9092,b:9092"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("compression.type"), Some("none"));
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
    }

    #[test]
    fn kafka_render_is_keyed_json() {
        let t = KafkaEncoder::new("127.0.0.1:1", "audit", Format::Json);
        let rec = record("m1", "ward-7", 42);
        let payload = t.encode(&rec, &[]).expect("render");
        let (k, v) = decode(&payload).expect("decode");
        assert_eq!(k, b"m1");
        let json: serde_json::Value = serde_json::from_slice(v).expect("json");
        assert_eq!(json["seq"], "42");
        assert_eq!(json["host"]["machine_id"], "m1");
        let ocsf = KafkaEncoder::new("127.0.0.1:1", "audit", Format::Ocsf);
        let (_, v) = decode(&ocsf.encode(&rec, &[]).expect("render"))
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .expect("d");
        let json: serde_json::Value = serde_json::from_slice(&v).expect("ocsf json");
        assert!(json.is_object());
    }

    #[test]
    fn kafka_rejects_unknown_property() {
        let mut extra = BTreeMap::new();
        extra.insert("no.such.property".to_owned(), "1".to_owned());
        let err = KafkaTransport::new("127.0.0.1:1", "audit", &extra).expect_err("invalid");
        assert!(err.to_string().contains("no.such.property"), "{err}");
    }

    #[test]
    fn kafka_rejects_conflicting_properties() {
        let mut extra = BTreeMap::new();
        extra.insert("acks".to_owned(), "1".to_owned());
        let t0 = Instant::now();
        let err = KafkaTransport::new("127.0.0.1:1", "audit", &extra).expect_err("acks=1");
        assert!(err.to_string().contains("acks"), "{err}");
        KafkaTransport::new("127.0.0.1:1", "audit", &BTreeMap::new()).expect("defaults");
        assert!(t0.elapsed() < Duration::from_secs(2), "validation took {:?}", t0.elapsed());
    }

    #[test]
    fn kafka_accepts_tls_properties() {
        // librdkafka rejects these when it was built without OpenSSL.
        let extra: BTreeMap<String, String> = [
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "sensor"),
            ("sasl.password", "secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        KafkaTransport::new("127.0.0.1:1", "audit", &extra).expect("TLS is built in");
    }

    #[test]
    fn kafka_delivery_fails_when_no_broker_answers() {
        let mut extra = BTreeMap::new();
        extra.insert("message.timeout.ms".to_owned(), "300".to_owned());
        let mut t = KafkaTransport::new("127.0.0.1:1", "audit", &extra).expect("producer");
        let e = KafkaEncoder::new("127.0.0.1:1", "audit", Format::Json);
        let payload = e.encode(&record("m1", "h", 1), &[]).expect("render");
        let err = t.deliver(&[Outgoing { seq: 1, payload }]).expect_err("nobody listens");
        assert!(err.to_string().contains("not delivered"), "{err}");
    }

    /// Reads everything in partition 0 of `topic`: (key, value) pairs.
    fn consume(bootstrap: &str, topic: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        use rdkafka::{
            Offset, TopicPartitionList,
            consumer::{BaseConsumer, Consumer as _},
        };
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "kafka-unit-test")
            .create()
            .expect("consumer");
        let (_, high) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(10)).expect("watermarks");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning).expect("partition");
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = Vec::new();
        let mut next = 0;
        while next < high {
            assert!(Instant::now() < deadline, "read {next} of {high} messages");
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    next = m.offset() + 1;
                    got.push((
                        m.key().map(<[u8]>::to_vec).unwrap_or_default(),
                        m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    ));
                }
                Some(Err(e)) => panic!("consume: {e}"),
                None => {}
            }
        }
        got
    }

    #[test]
    fn kafka_delivers_to_mock_cluster_and_survives_a_broker_outage() {
        let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("audit", 1, 1).expect("topic");
        let bootstrap = cluster.bootstrap_servers();
        let mut extra = BTreeMap::new();
        extra.insert("message.timeout.ms".to_owned(), "3000".to_owned());
        extra.insert("message.max.bytes".to_owned(), "2000".to_owned());
        let mut t = KafkaTransport::new(&bootstrap, "audit", &extra).expect("producer");
        let e = KafkaEncoder::new(&bootstrap, "audit", Format::Json);
        let batch = |seqs: std::ops::Range<u64>| -> Vec<Outgoing> {
            seqs.map(|seq| Outgoing { seq, payload: e.encode(&record("m1", "h", seq), &[]).expect("render") })
                .collect()
        };
        let (mut first, second) = (batch(1..4), batch(4..6));
        // A corrupt payload is skipped (logged at ERROR), not retried forever.
        first.insert(1, Outgoing { seq: 99, payload: b"garbage".to_vec() });
        // So is a record above message.max.bytes.
        let huge = e.encode(&record("m1", &"h".repeat(3000), 98), &[]).expect("render");
        first.insert(2, Outgoing { seq: 98, payload: huge });
        // Under load (the whole unit-test suite on 2 vCPUs) the first connection can outlast the
        // message timeout: re-send as the spool does.
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = t.deliver(&first) {
            assert!(Instant::now() < deadline, "first batch not delivered: {e}");
        }

        cluster.broker_down(1).expect("down");
        let err = t.deliver(&second).expect_err("broker is down");
        assert!(err.to_string().contains("delivery failed"), "{err}");
        cluster.broker_up(1).expect("up");
        // As the spool does: re-send the batch until it is acknowledged (reconnecting and
        // getting a new producer id take a moment).
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = t.deliver(&second) {
            assert!(Instant::now() < deadline, "not delivered after the outage: {e}");
        }

        let got = consume(&bootstrap, "audit");
        let seqs: Vec<u64> = got
            .iter()
            .map(|(k, v)| {
                assert_eq!(k, b"m1");
                let json: serde_json::Value = serde_json::from_slice(v).expect("json");
                json["seq"].as_str().and_then(|s| s.parse().ok()).expect("seq")
            })
            .collect();
        // Every record at least once, first arrivals in order (a failed batch may have partly
        // arrived before its retry).
        let mut first_seen = Vec::new();
        for s in &seqs {
            if !first_seen.contains(s) {
                first_seen.push(*s);
            }
        }
        assert_eq!(first_seen, [1, 2, 3, 4, 5], "{seqs:?}");
    }
}
