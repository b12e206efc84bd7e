use sensor_proto::v1::{ExecEvent, FileEvent, Process, SessionEvent};

use super::*;

const RULES: &str = r"
title: Shell Under Web Server
id: r-webshell
level: high
tags: [attack.persistence, attack.t1505.003]
logsource: {product: linux, category: process_creation}
detection:
  sel:
    Image|endswith: [/bash, /sh]
    AncestorImage|endswith: /nginx
  condition: sel
---
title: Encrypted Extension
id: r-locked
name: locked
level: low
logsource: {product: linux, category: file_rename}
detection:
  sel:
    TargetFilename|endswith: .locked
  condition: sel
---
title: Ransomware Burst
id: r-burst
level: critical
tags: [attack.impact, attack.t1486]
correlation:
  type: event_count
  rules: [locked]
  group-by: [ProcessGuid]
  timespan: 30s
  condition: {gte: 5}
---
title: Login From Outside
id: r-outside
level: medium
tags: [attack.initial_access, attack.t1078]
logsource: {product: linux, category: process_creation}
detection:
  sel:
    SessionService: sshd
  filter:
    SessionRemoteAddress|cidr: 10.20.0.0/16
  condition: sel and not filter
";

fn detector(cfg: &DetectConfig) -> Detector {
    Detector::from_rules(&load::load_text("t.yml", RULES), cfg).expect("rules load")
}

fn cfg() -> DetectConfig {
    DetectConfig { sources: Sources::default(), ..DetectConfig::default() }
}

fn exec(seq: u64, guid: &str, exe: &str, ancestors: &[&str], session: u32) -> AuditRecord {
    AuditRecord {
        seq,
        time: Some(sensor_proto::Timestamp { seconds: 1_000 + i64::try_from(seq).unwrap_or(0), nanos: 0 }),
        process: Some(Box::new(Process {
            guid: guid.into(),
            exe: exe.into(),
            session_id: session,
            ..Default::default()
        })),
        ancestors: ancestors
            .iter()
            .map(|a| sensor_proto::v1::Ancestor { exe: (*a).into(), ..Default::default() })
            .collect(),
        event: Some(Event::Exec(ExecEvent::default())),
        ..Default::default()
    }
}

fn rename(seq: u64, guid: &str, to: &str) -> AuditRecord {
    AuditRecord {
        seq,
        time: Some(sensor_proto::Timestamp { seconds: 2_000 + i64::try_from(seq).unwrap_or(0), nanos: 0 }),
        process: Some(Box::new(Process {
            guid: guid.into(),
            exe: "/usr/bin/mv".into(),
            ..Default::default()
        })),
        event: Some(Event::File(FileEvent {
            op: "rename".into(),
            path: "/srv/a".into(),
            path2: to.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn alerts(d: &mut Detector, r: &AuditRecord) -> Vec<AlertEvent> {
    let mut out = Vec::new();
    d.evaluate(r, &mut out);
    out.into_iter()
        .map(|e| match e.event {
            Event::Alert(a) => a,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_match_becomes_an_alert_with_the_rule_and_the_trigger() {
    let mut d = detector(&cfg());
    let a = alerts(&mut d, &exec(42, "g1", "/usr/bin/bash", &["/usr/sbin/nginx", "/sbin/init"], u32::MAX));
    assert_eq!(a.len(), 1);
    let a = &a[0];
    assert_eq!(
        (a.rule_id.as_str(), a.level.as_str(), a.trigger_seqs.as_slice()),
        ("r-webshell", "high", &[42][..])
    );
    assert_eq!(
        (a.techniques.as_slice(), a.tactics.as_slice()),
        (&["T1505.003".to_owned()][..], &["persistence".to_owned()][..])
    );
    assert_eq!(a.category, "process_creation");
    assert!(a.matched.iter().any(|m| m.starts_with("Image=")), "{:?}", a.matched);
    assert!(alerts(&mut d, &exec(43, "g2", "/usr/bin/bash", &["/usr/sbin/sshd"], u32::MAX)).is_empty());
}

#[test]
fn the_same_rule_on_the_same_process_is_suppressed_for_a_while() {
    let mut d = detector(&cfg());
    let r = |seq| exec(seq, "g1", "/usr/bin/bash", &["/usr/sbin/nginx"], u32::MAX);
    assert_eq!(alerts(&mut d, &r(1)).len(), 1);
    assert!(alerts(&mut d, &r(2)).is_empty());
    assert_eq!(d.stats().suppressed, 1);
    let mut late = r(3);
    late.time = Some(sensor_proto::Timestamp { seconds: 5_000, nanos: 0 });
    assert_eq!(alerts(&mut d, &late).len(), 1, "after the window");
    let mut d = detector(&DetectConfig { suppress_secs: 0, ..cfg() });
    assert_eq!((alerts(&mut d, &r(1)).len(), alerts(&mut d, &r(2)).len()), (1, 1));
}

#[test]
fn correlation_counts_per_process_and_names_the_triggers() {
    let mut d = detector(&cfg());
    let mut fired = Vec::new();
    for seq in 1..=6 {
        fired.extend(alerts(&mut d, &rename(seq, "p1", &format!("/srv/f{seq}.locked"))));
        // Another process's renames count on their own.
        fired.extend(alerts(&mut d, &rename(100 + seq, "p2", "/srv/x.txt")));
    }
    let burst: Vec<&AlertEvent> = fired.iter().filter(|a| a.rule_id == "r-burst").collect();
    assert_eq!(burst.len(), 1, "{fired:?}");
    let b = burst[0];
    assert_eq!((b.correlation_type.as_str(), b.count, b.window_secs), ("event_count", 5, 30));
    assert_eq!(b.group_key.get("ProcessGuid").map(String::as_str), Some("p1"));
    assert_eq!(b.trigger_seqs, [1, 2, 3, 4, 5]);
    assert_eq!(b.level, "critical");
    // The base rule is a correlation-only rule (generate: false): no alert of its own.
    assert!(fired.iter().all(|a| a.rule_id != "r-locked"), "{fired:?}");
}

#[test]
fn session_fields_and_cidr_filters_work() {
    let mut d = detector(&cfg());
    let session = |id: u32, addr: &str| AuditRecord {
        seq: 1,
        process: Some(Box::new(Process { session_id: id, ..Default::default() })),
        event: Some(Event::Session(SessionEvent {
            session_id: id,
            service: "sshd".into(),
            remote_address: addr.into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    alerts(&mut d, &session(5, "10.20.3.4"));
    alerts(&mut d, &session(6, "203.0.113.8"));
    assert!(alerts(&mut d, &exec(2, "a", "/usr/bin/id", &[], 5)).is_empty(), "inside 10.20.0.0/16");
    let a = alerts(&mut d, &exec(3, "b", "/usr/bin/id", &[], 6));
    assert_eq!(a.iter().map(|a| a.rule_id.as_str()).collect::<Vec<_>>(), ["r-outside"]);
}

#[test]
fn min_level_disable_and_exceptions_mute_alerts() {
    let r = exec(1, "g", "/usr/bin/bash", &["/usr/sbin/nginx"], u32::MAX);
    let mut d = detector(&DetectConfig { min_level: Level::Critical, ..cfg() });
    assert!(alerts(&mut d, &r).is_empty());
    let mut d = detector(&DetectConfig { disable: vec!["r-webshell".into()], ..cfg() });
    assert!(alerts(&mut d, &r).is_empty());
    let mut d = detector(&DetectConfig {
        exceptions: vec![ExceptionSpec {
            rules: vec!["r-webshell".into()],
            ancestor_image: vec!["/usr/sbin/nginx".into()],
            ..Default::default()
        }],
        ..cfg()
    });
    assert!(alerts(&mut d, &r).is_empty());
    assert_eq!(d.stats().excepted, 1);
}

#[test]
fn broken_rules_and_exceptions_refuse_to_build() {
    let bad = load::load_text(
        "x.yml",
        "title: x\nid: x\nlogsource: {product: linux, category: process_creation}\ndetection: {condition: nope}\n",
    );
    match Detector::from_rules(&bad, &cfg()) {
        Err(DetectError::Rules(p)) => assert!(p[0].to_string().contains("x.yml"), "{p:?}"),
        other => panic!("{other:?}"),
    }
    let cfg = DetectConfig { exceptions: vec![ExceptionSpec::default()], ..cfg() };
    assert!(matches!(
        Detector::from_rules(&load::load_text("t.yml", RULES), &cfg),
        Err(DetectError::Exception { index: 0, .. })
    ));
}

#[test]
fn alerts_and_checkpoints_are_never_evaluated() {
    let mut d = detector(&cfg());
    let mut r = exec(1, "g", "/usr/bin/bash", &["/usr/sbin/nginx"], u32::MAX);
    r.event = Some(Event::Alert(AlertEvent::default()));
    assert!(alerts(&mut d, &r).is_empty());
    assert_eq!(d.stats().evaluated, 0);
}

#[test]
fn correlation_windows_are_capped_above_their_thresholds() {
    let set = load::load_text("t.yml", RULES);
    let caps: Vec<Option<usize>> = set.correlations.iter().map(|c| window_entries(&c.rule)).collect();
    assert_eq!(caps, [Some(MIN_WINDOW_ENTRIES)], "gte 5: the minimum");
    let big = RULES.replace("condition: {gte: 5}", "condition: {gte: 300}");
    let set = load::load_text("t.yml", &big);
    assert_eq!(window_entries(&set.correlations[0].rule), Some(600), "twice the threshold");
    // A busy process: a long run of matches still leaves room for the count the rule asks for.
    let mut d = detector(&cfg());
    let mut fired = Vec::new();
    for seq in 1..=2_000 {
        fired.extend(alerts(&mut d, &rename(seq, "p1", &format!("/srv/f{seq}.locked"))));
    }
    assert!(fired.iter().any(|a| a.rule_id == "r-burst"), "{fired:?}");
}

/// The detector with the built-in rules only, as the sensor runs with no configuration.
fn builtin_detector() -> Detector {
    let builtin = DetectConfig {
        sources: Sources { builtin: true, paths: Vec::new(), optional_dir: None },
        ..DetectConfig::default()
    };
    Detector::new(&builtin).expect("built-in rules")
}

fn connect(seq: u64, secs: i64, guid: &str, port: u32) -> AuditRecord {
    AuditRecord {
        seq,
        time: Some(sensor_proto::Timestamp { seconds: secs, nanos: 0 }),
        process: Some(Box::new(Process {
            guid: guid.into(),
            exe: "/usr/bin/python3".into(),
            ..Default::default()
        })),
        event: Some(Event::Network(sensor_proto::v1::NetworkEvent {
            op: "connect".into(),
            protocol: "tcp".into(),
            remote_address: "10.0.0.9".into(),
            remote_port: port,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// `value_count` correlations are not fed a value their window already holds (`repeats.rs`):
/// a client connecting to one port all day costs no recount, and a scan is still seen, also
/// one that starts after a long run of repeats and one made of ports seen before.
#[test]
fn repeated_values_are_held_back_from_value_count_windows() {
    let mut d = builtin_detector();
    let scans = |a: &[AlertEvent]| a.iter().filter(|a| a.rule_id == "sensor.discovery.port_scan").count();
    let mut seq = 0;
    let mut fired = 0;
    // 3,000 connects to 443 over 100 s (30 a second): never a scan, nearly all held back.
    for i in 0..3_000 {
        seq += 1;
        fired += scans(&alerts(&mut d, &connect(seq, 1_000 + i / 30, "client", 443)));
    }
    assert_eq!(fired, 0);
    assert!(d.repeats.held_back >= 2_990, "{}", d.repeats.held_back);
    // Then the same process scans 25 ports within a second, still connecting to 443 between.
    for port in 1..=25 {
        seq += 1;
        fired += scans(&alerts(&mut d, &connect(seq, 1_100, "client", 8_000 + port)));
        seq += 1;
        fired += scans(&alerts(&mut d, &connect(seq, 1_100, "client", 443)));
    }
    assert_eq!(fired, 1, "the scan is seen");
    // The same ports again a minute later (the window was reset when it fired): seen again.
    for port in 1..=25 {
        seq += 1;
        fired += scans(&alerts(&mut d, &connect(seq, 1_170, "client", 8_000 + port)));
    }
    assert_eq!(fired, 2, "ports fed before the reset count again");
}

/// Correlation state is bounded however many groups a workload opens: a Python script writing
/// file after file under /tmp opens a download-then-execute group per path.
#[test]
fn correlation_groups_are_bounded() {
    let mut d = builtin_detector();
    let write = |seq: u64| AuditRecord {
        seq,
        time: Some(sensor_proto::Timestamp { seconds: 1_000, nanos: 0 }),
        process: Some(Box::new(Process {
            guid: "py".into(),
            exe: "/usr/bin/python3.11".into(),
            ..Default::default()
        })),
        event: Some(Event::File(FileEvent {
            op: "open".into(),
            path: format!("/tmp/build/f{seq}"),
            flags: "O_WRONLY|O_CREAT".into(),
            flags_raw: 0o101,
            ..Default::default()
        })),
        ..Default::default()
    };
    let n = u64::try_from(MAX_CORRELATION_GROUPS).expect("fits") + 5_000;
    for seq in 1..=n {
        alerts(&mut d, &write(seq));
    }
    let groups = d.correlation_groups();
    assert!(groups > 1_000, "the writes open groups: {groups}");
    assert!(groups <= MAX_CORRELATION_GROUPS, "{groups}");
}
