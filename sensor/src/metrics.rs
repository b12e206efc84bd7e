//! Prometheus metrics: the text exposition format of [`Stats`], served at `GET /metrics`.
//!
//! The responder is hand-rolled on a tokio `TcpListener` rather than built on hyper: it answers
//! one path with `Connection: close`, which is all a Prometheus scraper needs, in ~100 lines and
//! no new dependencies (hyper would bring http, httparse, h1 machinery and its own upgrade
//! cadence into an agent that is installed on old, hard-to-update hosts). Requests are read
//! with a size limit and a deadline, and at most [`MAX_CONNECTIONS`] are served at once.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use sensor_common::EventKind;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
};
use tracing::{debug, info, warn};

use crate::{
    flow::Ring,
    sources::ringfill::RingFill,
    stats::{SinkStats, Stats},
};

/// Fill level of each ring buffer, indexed like [`Ring::ALL`], read when scraped; `None` when it
/// could not be mapped.
pub type RingFills = [Option<RingFill>; Ring::ALL.len()];

/// Scrapes served at the same time; more are closed at once.
const MAX_CONNECTIONS: usize = 8;
/// Longest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// Time a client has to send its request and read the answer.
const DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("metrics endpoint: binding {addr}: {source}")]
pub struct BindError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// Binds the listener (done before the programs load, so a taken port fails the start).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError { addr, source })
}

/// Serves `GET /metrics` until `stop`.
pub async fn serve(
    listener: TcpListener,
    stats: Arc<Stats>,
    rings: Arc<RingFills>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics endpoint listening: GET /metrics");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (conn, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return Ok(()),
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "metrics endpoint: too many connections");
            continue;
        };
        let (stats, rings) = (stats.clone(), rings.clone());
        tokio::spawn(async move {
            if let Err(e) = tokio::time::timeout(DEADLINE, respond(conn, &stats, &rings)).await {
                debug!(%peer, error = %e, "metrics endpoint: client too slow");
            }
            drop(permit);
        });
    }
}

/// Reads one request head and writes one response.
async fn respond(mut conn: TcpStream, stats: &Stats, rings: &RingFills) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut parts = std::str::from_utf8(line).unwrap_or_default().split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = path.split('?').next().unwrap_or_default();
    let (status, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", render(stats, rings)),
        ("GET" | "HEAD", "/") => ("200 OK", "sensor: metrics at /metrics\n".to_owned()),
        ("GET" | "HEAD", _) => ("404 Not Found", "not found; try /metrics\n".to_owned()),
        ("", _) => ("400 Bad Request", "bad request\n".to_owned()),
        _ => ("405 Method Not Allowed", "only GET\n".to_owned()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = head.into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    if conn.write_all(&out).await.is_ok() {
        let _ = conn.shutdown().await;
    }
}

/// One metric family: HELP and TYPE lines, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

/// `{k="v",…}` with the values escaped as the exposition format requires.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Per-sink families: name, type, help; values in the order of [`sink_values`].
const SINK_FAMILIES: [(&str, &str, &str); 5] = [
    ("sensor_sink_records_total", "counter", "Records each sink accepted."),
    ("sensor_sink_write_errors_total", "counter", "Sink writes and flushes that failed."),
    ("sensor_sink_spool_bytes", "gauge", "Bytes waiting in a network sink's spool."),
    ("sensor_sink_delivered_total", "counter", "Records a network sink's destination acknowledged."),
    ("sensor_sink_delivery_errors_total", "counter", "Failed delivery attempts of a network sink."),
];

fn sink_values(s: &SinkStats) -> [u64; 5] {
    [&s.records, &s.write_errors, &s.spool_bytes, &s.delivered, &s.delivery_errors]
        .map(|a| a.load(Ordering::Relaxed))
}

/// Series of the sinks that write to a local disk (`file:` and the spools).
const DISK_FAMILIES: [(&str, &str, &str); 5] = [
    ("sensor_sink_disk_free_bytes", "gauge", "Free bytes on the file system a sink writes to."),
    ("sensor_sink_disk_reserve_bytes", "gauge", "Free space a sink leaves to the rest of the machine."),
    (
        "sensor_sink_disk_suspended",
        "gauge",
        "1 while a sink does not write (below its reserve, or a write failed).",
    ),
    (
        "sensor_sink_unwritten_records_total",
        "counter",
        "Records a sink could not write (full disk, I/O error); loss records of kind sink account for them.",
    ),
    (
        "sensor_sink_low_space_deleted_files_total",
        "counter",
        "Oldest files a sink deleted to keep its disk reserve (on_low_space = rotate).",
    ),
];

fn disk_values(s: &SinkStats) -> [u64; 5] {
    [&s.disk_free, &s.disk_reserve, &s.disk_suspended, &s.unwritten, &s.deleted_files]
        .map(|a| a.load(Ordering::Relaxed))
}

/// The Prometheus text exposition (version 0.0.4) of `stats` and the ring fill levels.
pub fn render(stats: &Stats, fills: &RingFills) -> String {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let one = |v: u64| vec![(String::new(), v)];
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "sensor_build_info",
        "gauge",
        "Version of the running sensor (always 1).",
        &[(labels(&[("version", env!("CARGO_PKG_VERSION"))]), 1)],
    );
    let by_kind: Vec<_> = EventKind::ALL
        .iter()
        .zip(&stats.events_by_kind)
        .map(|(k, n)| (labels(&[("kind", k.name())]), get(n)))
        .collect();
    family(
        &mut out,
        "sensor_kernel_events_total",
        "counter",
        "Kernel events decoded, by event kind.",
        &by_kind,
    );
    family(
        &mut out,
        "sensor_kernel_decode_errors_total",
        "counter",
        "Kernel events that could not be decoded (each also counted as lost).",
        &one(get(&stats.decode_errors)),
    );
    let rings: Vec<_> = Ring::ALL
        .iter()
        .map(|r| (labels(&[("ring", r.name())]), get(&stats.ring_bytes[*r as usize])))
        .collect();
    family(
        &mut out,
        "sensor_ringbuf_read_bytes_total",
        "counter",
        "Bytes read from each BPF ring buffer.",
        &rings,
    );
    let fill = |f: fn(&RingFill) -> u64| -> Vec<(String, u64)> {
        Ring::ALL
            .iter()
            .zip(fills)
            .filter_map(|(r, fill)| fill.as_ref().map(|fill| (labels(&[("ring", r.name())]), f(fill))))
            .collect()
    };
    family(
        &mut out,
        "sensor_ringbuf_pending_bytes",
        "gauge",
        "Bytes in each BPF ring buffer written by the kernel and not yet read.",
        &fill(RingFill::pending),
    );
    family(
        &mut out,
        "sensor_ringbuf_size_bytes",
        "gauge",
        "Size of each BPF ring buffer.",
        &fill(RingFill::size),
    );
    family(
        &mut out,
        "sensor_records_total",
        "counter",
        "Audit records built and handed to the sinks (loss and checkpoint records included).",
        &one(get(&stats.records)),
    );
    family(
        &mut out,
        "sensor_loss_records_total",
        "counter",
        "Loss records emitted.",
        &one(get(&stats.loss_records)),
    );
    // Every kernel kind and reason is listed, at 0 until it happens, so alerts can use rate().
    let mut lost = std::collections::BTreeMap::new();
    for k in EventKind::ALL {
        for reason in ["ringbuf_full", "read_failed", "kernel_skipped"] {
            lost.insert((k.name(), reason), 0);
        }
    }
    lost.extend(stats.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter());
    let lost: Vec<_> =
        lost.iter().map(|((kind, reason), n)| (labels(&[("kind", kind), ("reason", reason)]), *n)).collect();
    family(
        &mut out,
        "sensor_lost_events_total",
        "counter",
        "Events lost before they became records (the sum of loss record counts), by kind and reason.",
        &lost,
    );
    let queues: Vec<_> = ["lineage", "bulk"]
        .iter()
        .zip(&stats.queue_depth)
        .map(|(q, n)| (labels(&[("queue", q)]), get(n)))
        .collect();
    family(
        &mut out,
        "sensor_queue_depth",
        "gauge",
        "Events waiting for the record stage, per queue.",
        &queues,
    );
    family(
        &mut out,
        "sensor_queue_capacity",
        "gauge",
        "Capacity of each queue, in events.",
        &one(get(&stats.queue_capacity)),
    );
    let table = [("live", get(&stats.table_live)), ("exited", get(&stats.table_exited))]
        .map(|(s, n)| (labels(&[("state", s)]), n));
    family(&mut out, "sensor_process_table_entries", "gauge", "Processes in the process table.", &table);
    family(
        &mut out,
        "sensor_process_table_evicted_total",
        "counter",
        "Process table entries dropped because the table was full.",
        &one(get(&stats.table_evicted)),
    );
    for (i, (name, kind, help)) in SINK_FAMILIES.iter().enumerate() {
        let samples: Vec<_> =
            stats.sinks.iter().map(|s| (labels(&[("sink", &s.name)]), sink_values(s)[i])).collect();
        family(&mut out, name, kind, help, &samples);
    }
    for (i, (name, kind, help)) in DISK_FAMILIES.iter().enumerate() {
        let samples: Vec<_> = stats
            .sinks
            .iter()
            .filter(|s| s.has_disk.load(Ordering::Relaxed))
            .map(|s| (labels(&[("sink", &s.name)]), disk_values(s)[i]))
            .collect();
        if !samples.is_empty() {
            family(&mut out, name, kind, help, &samples);
        }
    }
    let alerts = stats.alerts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let by_rule: Vec<_> =
        alerts.iter().map(|((rule, level), n)| (labels(&[("rule", rule), ("level", level)]), *n)).collect();
    drop(alerts);
    family(
        &mut out,
        "sensor_alerts_total",
        "counter",
        "Alert records written, by rule id and level (a rule appears once it has fired).",
        &by_rule,
    );
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::flow::LossReport;

    fn stats() -> Stats {
        let s = Stats {
            sinks: vec![SinkStats { name: "jsonl:/tmp/a \"b\".jsonl".into(), ..SinkStats::default() }],
            queue_capacity: AtomicU64::new(16),
            ..Stats::default()
        };
        s.add_event(EventKind::Exec);
        s.add_event(EventKind::Exec);
        s.add_kernel_bytes(Ring::File, 100);
        s.add_loss(&LossReport {
            kind: "file",
            reason: "ringbuf_full",
            count: 7,
            first_boot_ns: 0,
            last_boot_ns: 0,
        });
        s.add_loss(&LossReport {
            kind: "file",
            reason: "ringbuf_full",
            count: 3,
            first_boot_ns: 0,
            last_boot_ns: 0,
        });
        s.add_loss(&LossReport {
            kind: "record",
            reason: "sink_spool_full",
            count: 1,
            first_boot_ns: 0,
            last_boot_ns: 0,
        });
        s.sinks[0].records.store(5, Ordering::Relaxed);
        s.alerts.lock().expect("lock").insert(("sensor.execution.reverse_shell".into(), "high".into()), 2);
        s
    }

    #[test]
    fn text_format() {
        let text = render(&stats(), &RingFills::default());
        for line in [
            "# HELP sensor_kernel_events_total Kernel events decoded, by event kind.",
            "# TYPE sensor_kernel_events_total counter",
            "sensor_kernel_events_total{kind=\"exec\"} 2",
            "sensor_kernel_events_total{kind=\"network\"} 0",
            "sensor_ringbuf_read_bytes_total{ring=\"file\"} 100",
            "sensor_lost_events_total{kind=\"file\",reason=\"ringbuf_full\"} 10",
            "sensor_lost_events_total{kind=\"exec\",reason=\"read_failed\"} 0",
            "sensor_lost_events_total{kind=\"record\",reason=\"sink_spool_full\"} 1",
            "sensor_alerts_total{rule=\"sensor.execution.reverse_shell\",level=\"high\"} 2",
            "sensor_queue_capacity 16",
            "# TYPE sensor_sink_spool_bytes gauge",
            "sensor_sink_records_total{sink=\"jsonl:/tmp/a \\\"b\\\".jsonl\"} 5",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Every sample belongs to a family announced just before it, and names are sensor_*.
        let mut family = String::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap_or_default().to_owned();
                assert!(family.starts_with("sensor_"), "{l}");
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap_or_default();
                assert_eq!(name, family, "{l}");
                assert!(l.rsplit(' ').next().is_some_and(|v| v.parse::<u64>().is_ok()), "{l}");
            }
        }
    }

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut c = TcpStream::connect(addr).await.expect("connect");
        c.write_all(request.as_bytes()).await.expect("send");
        let mut out = String::new();
        c.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn serves_get_metrics() {
        let listener = bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop_tx, stop_rx) = watch::channel(false);
        let server =
            tokio::spawn(serve(listener, Arc::new(stats()), Arc::new(RingFills::default()), stop_rx));
        let ok = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("text/plain; version=0.0.4"), "{ok}");
        assert!(ok.contains("\r\n\r\n# HELP sensor_build_info"), "{ok}");
        assert!(get(addr, "GET /nope HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 404"));
        assert!(get(addr, "POST /metrics HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 405"));
        let head = get(addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"), "{head}");
        stop_tx.send(true).expect("stop");
        server.await.expect("join").expect("serve");
    }
}
