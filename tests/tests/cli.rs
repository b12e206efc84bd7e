//! The `sensor` binary as users run it: `run` with jsonl and file outputs, SIGTERM shutdown,
//! and `records cat` on the files it wrote.

use std::{
    os::unix::fs::PermissionsExt as _,
    process::{Command, Stdio},
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use sensor_tests::{sensor_bin, spawn_sensor, unique};

#[test]
fn run_writes_jsonl_and_record_files_and_stops_on_sigterm() {
    let dir = sensor_tests::scratch_dir();
    let jsonl = dir.path().join("out.jsonl");
    let records_dir = dir.path().join("records");
    // Returns once the programs are attached (the sensor says so on stderr).
    let mut sensor = spawn_sensor([
        "run".to_owned(),
        "--label".to_owned(),
        "site=test-ward".to_owned(),
        "--output".to_owned(),
        format!("jsonl:{}", jsonl.display()),
        "--output".to_owned(),
        format!("file:{}", records_dir.display()),
    ]);

    let tag = unique("cli");
    let mut child = Command::new("/bin/echo").arg(&tag).stdout(Stdio::null()).spawn().expect("spawn");
    let pid = child.id();
    child.wait().expect("wait");
    std::thread::sleep(Duration::from_millis(300));

    nix::sys::signal::kill(Pid::from_raw(sensor.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let status = sensor.wait().expect("wait sensor");
    assert!(status.success(), "sensor exit status {status}");

    // jsonl: the child's exec record, canonical snake_case JSON.
    let text = std::fs::read_to_string(&jsonl).expect("jsonl written");
    let rec = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("valid JSON line"))
        .find(|v| v["process"]["pid"] == pid && v["exec"].is_object())
        .expect("exec record of the child in jsonl");
    assert_eq!(rec["process"]["argv"][1], tag.as_str());
    assert_eq!(rec["host"]["labels"]["site"], "test-ward");
    assert!(rec["seq"].as_str().is_some_and(|s| s.parse::<u64>().is_ok()), "seq is a uint64 string");
    assert_eq!(std::fs::metadata(&jsonl).expect("meta").permissions().mode() & 0o777, 0o600);

    // file: 0700 dir, 0600 files; `records cat` prints the same record.
    assert_eq!(std::fs::metadata(&records_dir).expect("dir").permissions().mode() & 0o777, 0o700);
    for f in std::fs::read_dir(&records_dir).expect("list") {
        let f = f.expect("entry").path();
        assert_eq!(
            std::fs::metadata(&f).expect("meta").permissions().mode() & 0o777,
            0o600,
            "{}",
            f.display()
        );
    }
    let cat =
        Command::new(sensor_bin()).args(["records", "cat"]).arg(&records_dir).output().expect("records cat");
    assert!(cat.status.success(), "{}", String::from_utf8_lossy(&cat.stderr));
    let cat_text = String::from_utf8(cat.stdout).expect("utf8");
    assert_eq!(cat_text.lines().count(), text.lines().count(), "both sinks got every record");
    let from_file = cat_text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .find(|v| v["process"]["pid"] == pid && v["exec"].is_object())
        .expect("record in files");
    assert_eq!(from_file, rec);

    // The files' hash chain verifies, and a run that stopped cleanly ends with a checkpoint.
    let verify =
        Command::new(sensor_bin()).args(["records", "verify"]).arg(&records_dir).output().expect("verify");
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{out}{}", String::from_utf8_lossy(&verify.stderr));
    assert!(out.starts_with("OK:") && out.contains("ends with a final checkpoint"), "{out}");

    // One flipped byte in the middle of the file is reported, with a non-zero exit.
    let file = std::fs::read_dir(&records_dir).expect("list").next().expect("a file").expect("entry").path();
    let mut data = std::fs::read(&file).expect("read");
    let mid = data.len() / 2;
    data[mid] ^= 0x20;
    std::fs::write(&file, &data).expect("write");
    let verify =
        Command::new(sensor_bin()).args(["records", "verify"]).arg(&records_dir).output().expect("verify");
    assert_eq!(verify.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&verify.stdout).starts_with("FAILED:"));
}

#[test]
fn bad_output_spec_is_a_clear_error() {
    let out = Command::new(sensor_bin()).args(["run", "--output", "bogus:x"]).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown output `bogus`"), "{err}");
}

fn sensor_cmd(args: &[&str], paths: &[&std::path::Path]) -> (Option<i32>, String, String) {
    let out = Command::new(sensor_bin()).args(args).args(paths).output().expect("run sensor command");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn sigkilled_sensor_leaves_readable_files_and_the_signed_chain_continues() {
    let dir = sensor_tests::scratch_dir();
    let key = dir.path().join("cp.key");
    let (code, _, err) = sensor_cmd(&["keygen"], &[&key]);
    assert_eq!(code, Some(0), "{err}");
    let public = dir.path().join("cp.pub");
    let records = dir.path().join("records");
    let args = vec![
        "--output".to_owned(),
        format!("file:{}", records.display()),
        "--signing-key".to_owned(),
        key.display().to_string(),
    ];

    let sensor = spawn_sensor(std::iter::once("run".to_owned()).chain(args.clone()));
    for _ in 0..20 {
        Command::new("/bin/true").status().expect("true");
    }
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(Pid::from_raw(sensor.id() as i32), Signal::SIGKILL).expect("SIGKILL");
    let mut sensor = sensor;
    sensor.wait().expect("reap");

    // A crash mid-write leaves half a record at the end: append one to be sure it happens.
    let file = std::fs::read_dir(&records).expect("list").next().expect("a file").expect("entry").path();
    let mut data = std::fs::read(&file).expect("read");
    let whole = data.len();
    let half: Vec<u8> = data[..whole.min(400)].to_vec();
    data.extend_from_slice(&[0xc8, 0x03]); // varint 456: longer than what follows
    data.extend_from_slice(&half[..half.len().min(200)]);
    std::fs::write(&file, &data).expect("write");

    let (code, out, err) = sensor_cmd(&["records", "cat"], &[&records]);
    assert_eq!(code, Some(0), "a torn tail is not an error: {err}");
    assert!(err.contains("torn"), "{err}");
    let seqs: Vec<u64> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .map(|v| v["seq"].as_str().expect("seq").parse().expect("number"))
        .collect();
    assert!(seqs.len() > 20, "records up to the crash: {}", seqs.len());
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "no gaps before the tear");

    let (code, out, err) = sensor_cmd(&["records", "verify"], &[&records]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("does not end with a final checkpoint"), "{out}");
    assert!(err.contains("torn record"), "{err}");

    // A restart continues the chain after the last whole record; its checkpoints are signed.
    let mut sensor = spawn_sensor(std::iter::once("run".to_owned()).chain(args.clone()));
    Command::new("/bin/true").status().expect("true");
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(Pid::from_raw(sensor.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    assert!(sensor.wait().expect("wait").success());
    let pk = format!("--public-key={}", public.display());
    let (code, out, err) = sensor_cmd(&["records", "verify", &pk], &[&records]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("from 2 sensor runs") && out.contains("ends with a final checkpoint"), "{out}");
    // At least the final checkpoint (one is also written every 1000 records, and how many records
    // a run writes depends on what else the machine is doing).
    assert!(
        out.contains("checkpoints verified; 0 records after") && !out.contains("signatures: 0 "),
        "{out}"
    );

    // Another key does not verify the signed checkpoint.
    let other = dir.path().join("other.key");
    sensor_cmd(&["keygen"], &[&other]);
    let pk = format!("--public-key={}", dir.path().join("other.pub").display());
    let (code, out, _) = sensor_cmd(&["records", "verify", &pk], &[&records]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("signature does not verify"), "{out}");
}
