//! `sensor run --config FILE` with the metrics endpoint on: scrape, cause execs, scrape again,
//! and check that the counters moved.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    process::Command,
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};

fn scrape(addr: SocketAddr) -> String {
    let mut c = TcpStream::connect(addr).expect("connect to metrics");
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: sensor\r\n\r\n").expect("send");
    let mut out = String::new();
    c.read_to_string(&mut out).expect("read");
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    out
}

/// The value of the sample whose name and labels are exactly `series`.
fn value(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

#[test]
fn metrics_endpoint_counts_execs_and_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jsonl = dir.path().join("out.jsonl");
    // A free loopback port: bind port 0, note it, let it go.
    let addr = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port");
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[sensor]\nlabels = {{ site = \"metrics-test\" }}\n\n[[output]]\nurl = \"jsonl:{}\"\n\n\
             [metrics]\nlisten = \"{addr}\"\n",
            jsonl.display()
        ),
    )
    .expect("write config");

    let mut sensor =
        sensor_tests::spawn_sensor([std::ffi::OsStr::new("run"), "--config".as_ref(), config.as_ref()]);

    let before = scrape(addr);
    let sink = format!("sensor_sink_records_total{{sink=\"jsonl:{}\"}}", jsonl.display());
    let exec = "sensor_kernel_events_total{kind=\"exec\"}";
    let (execs0, records0) = (value(&before, exec), value(&before, "sensor_records_total"));
    for _ in 0..5 {
        Command::new("/bin/true").status().expect("run /bin/true");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let text = scrape(addr);
        // Wait for everything asserted below: the counters are published by different stages,
        // so the exec count can move a moment before the record counts do.
        let moved = value(&text, exec) >= execs0 + 5
            && value(&text, "sensor_records_total") >= records0 + 5
            && value(&text, &sink) >= 5;
        if moved || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(value(&after, exec) >= execs0 + 5, "exec events did not move:\n{after}");
    assert!(value(&after, "sensor_records_total") >= records0 + 5, "records did not move:\n{after}");
    assert!(value(&after, &sink) >= 5, "the jsonl sink's records did not move:\n{after}");
    assert!(value(&after, "sensor_ringbuf_read_bytes_total{ring=\"proc\"}") > 0, "{after}");
    let size = value(&after, "sensor_ringbuf_size_bytes{ring=\"proc\"}");
    assert!(size > 0 && value(&after, "sensor_ringbuf_pending_bytes{ring=\"proc\"}") <= size, "{after}");
    let errors = sink.replace("sensor_sink_records_total", "sensor_sink_write_errors_total");
    assert_eq!(value(&after, &errors), 0, "{after}");
    for family in ["sensor_lost_events_total", "sensor_queue_depth", "sensor_sink_spool_bytes"] {
        assert!(after.contains(&format!("# TYPE {family} ")), "{family} missing:\n{after}");
    }

    nix::sys::signal::kill(Pid::from_raw(sensor.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    assert!(sensor.wait().expect("wait sensor").success());
    let text = std::fs::read_to_string(&jsonl).expect("jsonl written");
    assert!(text.contains("metrics-test"), "the file's labels reached the records");
}
