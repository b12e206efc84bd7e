//! `sensor rules check|list|test`, a broken rule file at start, and `sensor trace --alert`, with the
//! real binary.

use std::{path::Path, process::Command, time::Duration};

use nix::{sys::signal::Signal, unistd::Pid};
use sensor_tests::{sensor_bin, spawn_sensor, unique};

const GOOD: &str = "title: Base64 Decoder Run
id: site.test.base64
level: low
tags: [attack.defense_evasion, attack.t1140]
logsource: {product: linux, category: process_creation}
detection:
  sel:
    Image|endswith: /base64
  condition: sel
";

const BROKEN: &str = "title: Fine
id: site.test.fine
logsource: {product: linux, category: process_creation}
detection: {s: {Image: /x}, condition: s}
---
title: Broken Modifier
id: site.test.broken
logsource: {product: linux, category: process_creation}
detection:
  s:
    Image|sometimes: /bin/sh
  condition: s
";

const UNSUPPORTED: &str = "title: Auditd Only
id: site.test.auditd
logsource: {product: linux, service: auditd}
detection: {s: {type: EXECVE}, condition: s}
";

fn rules_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write rule");
    }
    dir
}

#[test]
fn rules_check_names_file_line_rule_and_problem() {
    let dir = rules_dir(&[("good.yml", GOOD), ("broken.yml", BROKEN), ("auditd.yml", UNSUPPORTED)]);
    let out = Command::new(sensor_bin()).args(["rules", "check"]).arg(dir.path()).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{err}");
    let broken = dir.path().join("broken.yml");
    assert!(
        err.contains(&format!("{}:6: error: rule site.test.broken: ", broken.display()))
            && err.contains("sometimes"),
        "{err}"
    );
    assert!(err.contains("unsupported: rule site.test.auditd: log source service `auditd`"), "{err}");
    assert!(stdout.starts_with("FAILED: 2 rules"), "{stdout}");

    let ok = rules_dir(&[("good.yml", GOOD)]);
    let out = Command::new(sensor_bin()).args(["rules", "check"]).arg(ok.path()).output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK: 1 rules"));

    let out =
        Command::new(sensor_bin()).args(["rules", "check", "/nonexistent/rules"]).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/rules:1: error: cannot read"));
}

#[test]
fn rules_list_shows_builtin_and_site_rules() {
    let dir = rules_dir(&[("good.yml", GOOD)]);
    let out =
        Command::new(sensor_bin()).args(["rules", "list", "--rules"]).arg(dir.path()).output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("site.test.base64") && text.contains("T1140"), "{text}");
    assert!(text.contains("sensor.execution.reverse_shell"), "{text}");
    let fields = Command::new(sensor_bin()).args(["rules", "fields"]).output().expect("run");
    assert!(String::from_utf8_lossy(&fields.stdout).contains("| `ParentCommandLine` |"));
}

#[test]
fn a_broken_rule_file_stops_the_start_naming_file_rule_and_problem() {
    let dir = rules_dir(&[("broken.yml", BROKEN)]);
    let started = std::time::Instant::now();
    let out = Command::new(sensor_bin())
        .args(["run", "--output", "jsonl:/dev/null", "--duration", "5", "--rules"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.yml:6") && err.contains("site.test.broken") && err.contains("sometimes"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "refused before running");
    assert!(!err.contains("streaming records"), "{err}");
}

#[test]
fn rules_test_replays_records_and_trace_starts_from_the_alert() {
    // On tmpfs: the file output's free-space reserve must not depend on how full the disk is.
    let out_dir = sensor_tests::scratch_dir();
    let records = out_dir.path().join("records");
    let spec = format!("file:{}", records.display());
    let sensor = spawn_sensor(["run", "--output", spec.as_str()]);
    let tag = unique("decode");
    let script = format!("echo aWQgPiAvZGV2L251bGw= | base64 -d | sh; : {tag}");
    let status = Command::new("/bin/bash").args(["-c", &script]).status().expect("activity");
    assert!(status.success());
    std::thread::sleep(Duration::from_secs(2));
    nix::sys::signal::kill(Pid::from_raw(sensor.id() as i32), Signal::SIGINT).expect("SIGINT");
    let out = sensor.wait_with_output().expect("sensor exits");
    assert!(out.status.success());

    // The live run wrote the built-in rule's alert; find its seq.
    let cat = Command::new(sensor_bin()).args(["records", "cat"]).arg(&records).output().expect("cat");
    let seq = String::from_utf8_lossy(&cat.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|r| {
            r["alert"]["rule_id"] == "sensor.defense_evasion.decode_execute"
                && r["process"]["argv"].to_string().contains(&tag)
        })
        .and_then(|r| r["seq"].as_str().map(str::to_owned))
        .expect("the live run raised the decode-execute alert");

    // Offline replay through a site rule.
    let dir = rules_dir(&[("good.yml", GOOD)]);
    let out = Command::new(sensor_bin())
        .args(["rules", "test", "--rules"])
        .arg(dir.path())
        .arg(&records)
        .output()
        .expect("test");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("site.test.base64") && text.contains("/base64"), "{text}");
    let json = Command::new(sensor_bin())
        .args(["rules", "test", "--json", "--builtin", "--rules"])
        .arg(dir.path())
        .arg(&records)
        .output()
        .expect("test");
    let alerts: Vec<serde_json::Value> =
        String::from_utf8_lossy(&json.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        alerts.iter().any(|a| a["alert"]["rule_id"] == "sensor.defense_evasion.decode_execute"),
        "{alerts:?}"
    );

    // The trace from the alert: the shell that decoded and ran the payload, marked.
    let trace = Command::new(sensor_bin())
        .arg("trace")
        .arg(&records)
        .args(["--alert", &seq])
        .output()
        .expect("trace");
    let tree = String::from_utf8_lossy(&trace.stdout);
    assert_eq!(trace.status.code(), Some(0), "{tree}{}", String::from_utf8_lossy(&trace.stderr));
    assert!(tree.contains(&format!("trace --alert {seq}")), "{tree}");
    assert!(tree.contains("ALERT high: Encoded Payload Decoded And Executed"), "{tree}");
    assert!(tree.contains("ACTING") && tree.contains(&tag), "{tree}");
    let missing = Command::new(sensor_bin())
        .arg("trace")
        .arg(&records)
        .args(["--alert", "999999999"])
        .output()
        .expect("trace");
    assert_eq!(missing.status.code(), Some(2), "nothing matched");
    assert!(Path::new(&records).exists());
}
