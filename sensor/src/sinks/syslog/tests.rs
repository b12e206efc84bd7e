use std::{io::BufRead as _, net::TcpListener};

use sensor_proto::{
    Timestamp,
    v1::{ExecEvent, Host, LossEvent, PrivilegeEvent, audit_record::Event},
};

use super::*;

fn record(seq: u64, event: Event) -> AuditRecord {
    AuditRecord {
        seq,
        time: Some(Timestamp { seconds: 1_700_000_000, nanos: 123_456_789 }),
        host: Some(Host { hostname: "ward-7".into(), instance_id: "i-1".into(), ..Host::default() }),
        event: Some(event),
        ..AuditRecord::default()
    }
}

fn encoder() -> SyslogEncoder {
    SyslogEncoder::new(false, "127.0.0.1", 514, Format::Json)
}

/// Splits octet-counted frames (`LEN SP MSG`).
fn frames(mut data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let sp = data.iter().position(|b| *b == b' ').expect("length then space");
        let len: usize = std::str::from_utf8(&data[..sp]).expect("ascii").parse().expect("decimal length");
        out.push(String::from_utf8(data[sp + 1..sp + 1 + len].to_vec()).expect("utf8"));
        data = &data[sp + 1 + len..];
    }
    out
}

#[test]
fn renders_rfc5424_with_octet_counting() {
    let t = encoder();
    let payload = t.encode(&record(17, Event::Exec(ExecEvent::default())), &[]).expect("render");
    let msgs = frames(&payload);
    assert_eq!(msgs.len(), 1);
    let pid = std::process::id();
    let want = format!(
        "<86>1 2023-11-14T22:13:20.123456Z ward-7 sensor {pid} exec [sensor@32473 seq=\"17\" instance=\"i-1\"] {{"
    );
    assert!(msgs[0].starts_with(&want), "{}", msgs[0]);
    let json = msgs[0].split_once("] ").expect("MSG").1;
    let v: serde_json::Value = serde_json::from_str(json).expect("MSG is JSON");
    assert_eq!(v["seq"], "17");
    assert!(v["exec"].is_object());
}

#[test]
fn severity_follows_the_event() {
    let t = encoder();
    let loss = t.encode(&record(1, Event::Loss(LossEvent::default())), &[]).expect("render");
    assert!(frames(&loss)[0].starts_with("<84>1 "), "loss is authpriv.warning");
    let p = t.encode(&record(1, Event::Privilege(PrivilegeEvent::default())), &[]).expect("render");
    assert!(frames(&p)[0].contains("<85>1 ") && frames(&p)[0].contains(" privilege [sensor@"));
}

#[test]
fn header_fields_are_sanitised() {
    let mut r = record(5, Event::Exec(ExecEvent::default()));
    r.time = None;
    r.host = Some(Host { hostname: "bad host".into(), instance_id: "a\"b]c\\".into(), ..Host::default() });
    let msg = frames(&encoder().encode(&r, &[]).expect("render")).remove(0);
    assert!(msg.contains(" - bad_host sensor "), "{msg}");
    assert!(msg.contains(r#"instance="a\"b\]c\\"]"#), "{msg}");
    r.host = None;
    let msg = frames(&encoder().encode(&r, &[]).expect("render")).remove(0);
    assert!(msg.contains(" - - sensor "), "{msg}");
    assert!(msg.contains("[sensor@32473 seq=\"5\"] "), "{msg}");
}

#[test]
fn timestamps() {
    let f = |s, n| {
        let mut out = String::new();
        rfc3339(s, n, &mut out);
        out
    };
    assert_eq!(f(0, 0), "1970-01-01T00:00:00.000000Z");
    assert_eq!(f(951_782_400, 999_999_999), "2000-02-29T00:00:00.999999Z");
    assert_eq!(f(4_102_444_799, 0), "2099-12-31T23:59:59.000000Z");
    assert_eq!(f(-1, 0), "-", "before 1970: RFC 5424's NILVALUE");
    assert_eq!(f(i64::MAX, 0), "-");
}

#[test]
fn delivers_over_tcp_and_reconnects_after_the_receiver_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut t = SyslogTransport::new(false, "127.0.0.1", port, &OutputOptions::default()).expect("new");
    let batch: Vec<Outgoing> = (1..=3)
        .map(|s| Outgoing {
            seq: s,
            payload: encoder().encode(&record(s, Event::Exec(ExecEvent::default())), &[]).expect("r"),
        })
        .collect();

    t.deliver(&batch).expect("deliver");
    let (conn, _) = listener.accept().expect("accept");
    conn.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut reader = io::BufReader::new(conn);
    let mut got = Vec::new();
    while frames_complete(&got) < 3 {
        let buf = reader.fill_buf().expect("read").to_vec();
        reader.consume(buf.len());
        got.extend(buf);
    }
    let msgs = frames(&got);
    assert_eq!(msgs.len(), 3);
    assert!(msgs[2].contains("seq=\"3\""));

    // The receiver goes away: the next delivery notices the closed connection and reconnects.
    drop(reader);
    std::thread::sleep(Duration::from_millis(50));
    t.deliver(&batch[..1]).expect("reconnects");
    let (mut conn, _) = listener.accept().expect("second connection");
    conn.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut buf = vec![0u8; batch[0].payload.len()];
    conn.read_exact(&mut buf).expect("read");
    assert_eq!(buf, batch[0].payload);

    // Nobody listening: an error, not a hang.
    drop(conn);
    drop(listener);
    std::thread::sleep(Duration::from_millis(50));
    assert!(t.deliver(&batch).is_err());
}

fn frames_complete(data: &[u8]) -> usize {
    let mut n = 0;
    let mut d = data;
    while let Some(sp) = d.iter().position(|b| *b == b' ') {
        let Some(len) = std::str::from_utf8(&d[..sp]).ok().and_then(|s| s.parse::<usize>().ok()) else {
            break;
        };
        if d.len() < sp + 1 + len {
            break;
        }
        n += 1;
        d = &d[sp + 1 + len..];
    }
    n
}

#[test]
fn tls_material_errors_are_clear() {
    let tls = |t: TlsOptions| OutputOptions { tls: t, ..OutputOptions::default() };
    let missing = TlsOptions { ca_file: Some("/nonexistent/ca.pem".into()), ..TlsOptions::default() };
    let err = SyslogTransport::new(true, "siem", 6514, &tls(missing)).err().expect("missing CA file");
    assert!(err.to_string().contains("CA file /nonexistent/ca.pem"), "{err}");
    let half = TlsOptions { cert_file: Some("/x.pem".into()), ..TlsOptions::default() };
    let half = TlsOptions { ca_file: None, ..half };
    if let Err(err) = SyslogTransport::new(true, "siem", 6514, &tls(half)) {
        let msg = err.to_string();
        assert!(msg.contains("both cert_file and key_file") || msg.contains("no system CA"), "{msg}");
    } else {
        panic!("a client certificate without a key is refused");
    }
}
