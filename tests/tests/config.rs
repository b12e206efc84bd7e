//! `sensor config check`: the shipped example passes; a broken file names each bad key.

use std::process::Command;

use sensor_tests::sensor_bin;

#[test]
fn example_config_checks_ok() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/sensor.example.toml");
    let out = Command::new(sensor_bin()).args(["config", "check", example]).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("OK: "), "{stdout}");
    // As shipped (the package's /etc/sensor/sensor.toml): the defaults, records to the default
    // directory, metrics off.
    assert!(stdout.contains("outputs:\n  file:/var/lib/sensor/records ("), "{stdout}");
    assert!(stdout.contains("metrics: off"), "{stdout}");
}

#[test]
fn bad_config_names_the_keys_and_exits_1() {
    let dir = sensor_tests::scratch_dir();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[[output]]\nurl = \"file:/r\"\nfile = { max_files = 0 }\ntls = {}\n")
        .expect("write");
    let out = Command::new(sensor_bin()).arg("config").arg("check").arg(&file).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("output[0].file.max_files: 0 is too small"), "{err}");
    assert!(err.contains("output[0].tls: does not apply to file outputs"), "{err}");

    // `run` refuses the same file before loading anything.
    let out = Command::new(sensor_bin()).arg("run").arg("--config").arg(&file).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("output[0].file.max_files"));
}
