//! Golden-file tests of the canonical JSON mapping, and protobuf/JSON round trips.
//! Regenerate after an intended schema change with `UPDATE_GOLDEN=1 cargo test -p sensor-proto`.

use std::{collections::BTreeMap, path::PathBuf};

use prost::Message as _;
use sensor_proto::{
    AuditRecord, Timestamp,
    v1::{ExecEvent, Host, LossEvent, Process, audit_record::Event},
};

fn host() -> Host {
    Host {
        hostname: "ward-3-nurse-station".into(),
        machine_id: "3d1219c7c4c5404aaa1f6d2a48adfda4".into(),
        boot_id: "0b0ba7d1-a50b-4693-ae84-8f24314973e6".into(),
        instance_id: "6f4a557b-8b7f-40dc-bb26-89edd165c828".into(),
        labels: BTreeMap::from([("site".into(), "north".into())]),
        kernel: "6.18.44".into(),
    }
}

fn exec_record() -> AuditRecord {
    AuditRecord {
        schema_version: 1,
        seq: 42,
        time: Some(Timestamp { seconds: 1_795_432_000, nanos: 123_456_789 }),
        boot_ns: 6_072_509_633_495,
        host: Some(host()),
        process: Some(Box::new(Process {
            guid: "63115909-2ec7-513b-adb6-e39e707723c1".into(),
            pid: 9816,
            tid: 9816,
            ppid: 9807,
            exe: "/usr/bin/caf\\xe9".into(),
            exe_raw: b"/usr/bin/caf\xe9".to_vec(),
            argv: vec!["caf\\xe9".into(), "line1\nline2".into()],
            argv_raw: vec![b"caf\xe9".to_vec(), b"line1\nline2".to_vec()],
            argv_truncated: false,
            cwd: "/root".into(),
            uid: 0,
            euid: 0,
            gid: 0,
            egid: 0,
            auid: 1000,
            session_id: 3,
            start_time: Some(Timestamp { seconds: 1_795_431_999, nanos: 5 }),
            start_boot_ns: 6_072_507_658_543,
            comm: "café".into(),
            ..Default::default()
        })),
        ancestors: vec![],
        event: Some(Event::Exec(ExecEvent {
            filename: "./caf\\xe9".into(),
            filename_raw: b"./caf\xe9".to_vec(),
            argc: 2,
            args_total_bytes: 17,
            old_pid: 9816,
            filename_truncated: false,
            argv_unreadable: false,
            interpreter: String::new(),
            interpreter_raw: vec![],
            kernel_argc: 2,
        })),
        integrity: None,
    }
}

fn loss_record() -> AuditRecord {
    AuditRecord {
        schema_version: 1,
        seq: 43,
        time: Some(Timestamp { seconds: 1_795_432_001, nanos: 0 }),
        boot_ns: 6_073_000_000_000,
        host: Some(host()),
        event: Some(Event::Loss(LossEvent {
            kind: "exec".into(),
            reason: "ringbuf_full".into(),
            count: 17,
            first_boot_ns: 6_072_000_000_000,
            last_boot_ns: 6_073_000_000_000,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Records an output could not write (its disk was full), as that output's stream shows them.
fn sink_loss_record() -> AuditRecord {
    AuditRecord {
        schema_version: 1,
        seq: 5044,
        time: Some(Timestamp { seconds: 1_795_432_060, nanos: 0 }),
        boot_ns: 6_133_000_000_000,
        host: Some(host()),
        event: Some(Event::Loss(LossEvent {
            kind: "sink".into(),
            reason: "disk_full".into(),
            count: 1000,
            first_boot_ns: 6_080_000_000_000,
            last_boot_ns: 6_130_000_000_000,
            output: "file:/var/lib/sensor/records".into(),
            first_seq: 4044,
            last_seq: 5043,
            gap_prev_hash: "5f1d0a4f3c2e1b6a798897a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6".into(),
        })),
        integrity: Some(sensor_proto::v1::Integrity {
            prev_hash: "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9".into(),
        }),
        ..Default::default()
    }
}

fn check_golden(name: &str, record: &AuditRecord) {
    let json = serde_json::to_string_pretty(record).expect("to json") + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &json).expect("write golden");
    }
    let golden = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 to create)");
    assert_eq!(json, golden, "canonical JSON of {name} changed");

    // JSON -> record -> JSON is stable, and protobuf bytes round trip.
    let back: AuditRecord = serde_json::from_str(&golden).expect("parse golden");
    assert_eq!(&back, record);
    let bytes = record.encode_to_vec();
    assert_eq!(&AuditRecord::decode(bytes.as_slice()).expect("decode"), record);
}

#[test]
fn exec_record_golden() {
    check_golden("exec.json", &exec_record());
}

#[test]
fn loss_record_golden() {
    check_golden("loss.json", &loss_record());
}

#[test]
fn sink_loss_record_golden() {
    check_golden("loss_sink.json", &sink_loss_record());
}

#[test]
fn canonical_json_uses_snake_case_and_keeps_zero_values() {
    let v: serde_json::Value = serde_json::to_value(exec_record()).expect("json");
    assert_eq!(v["process"]["session_id"], 3);
    assert_eq!(v["process"]["uid"], 0, "uid 0 (root) must be present, not omitted");
    assert_eq!(v["seq"], "42", "uint64 is a string in the proto3 JSON mapping");
    assert!(v["process"].get("sessionId").is_none());
}
