use std::time::Duration;

use super::*;
use crate::sinks::spec::{Format, Fsync, SpoolFull};

/// The single problem `text` has; panics when it parses or has several.
fn problem(text: &str) -> Problem {
    match parse(text) {
        Ok(o) => panic!("accepted: {o:?}"),
        Err(mut p) => {
            assert_eq!(p.len(), 1, "{p:?}");
            p.remove(0)
        }
    }
}

fn example_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sensor.example.toml")
}

/// The documented example is also the package's /etc/sensor/sensor.toml: what it sets is the
/// defaults, with the default record directory as its one output (no live view under systemd),
/// and pinning on (the service keeps its programs attached across restarts).
#[test]
fn example_file_is_the_defaults() {
    let o = load(&example_path()).unwrap_or_else(|e| panic!("{e}"));
    let mut defaults = Options::default();
    defaults.outputs.push(OutputSpec::File("/var/lib/sensor/records".into()).into());
    defaults.pinning =
        Some(crate::pin::PinOptions { dir: crate::pin::DEFAULT_PIN_DIR.into(), unpin_on_stop: false });
    assert_eq!(summary(&o), summary(&defaults));
    assert!(o.labels.is_empty() && o.metrics_listen.is_none() && o.signing_key.is_none());
}

/// Lines `# X` where X alone is TOML (`key = value`, `[table]`) without their `# `; prose stays
/// a comment.
fn uncomment_examples(text: &str) -> String {
    text.lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if toml::from_str::<toml::Table>(rest)
                    .is_ok_and(|t| !t.is_empty() || rest.starts_with('[')) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every commented example in the file is valid as written once uncommented.
#[test]
fn example_files_examples_are_accepted() {
    let text = std::fs::read_to_string(example_path()).expect("example");
    let o = parse(&uncomment_examples(&text)).unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(o.outputs.len(), 3);
    assert_eq!(o.outputs[0].spec, OutputSpec::File("/var/lib/sensor/records".into()));
    assert_eq!(o.labels.get("site").map(String::as_str), Some("north-ward"));
    assert_eq!(o.metrics_listen, Some("127.0.0.1:9464".parse().expect("addr")));
    assert_eq!(o.signing_key.as_deref(), Some(Path::new("/etc/sensor/checkpoint.key")));
    let s = summary(&o);
    assert!(
        s.contains("syslog+tls://siem.example.org:6514 (format json; tls ca /etc/sensor/siem-ca.pem"),
        "{s}"
    );
    assert!(s.contains("kafka://broker1:9092,broker2:9092/audit"), "{s}");
    assert!(
        s.contains("rotate at 64MiB or 1h, keep 64 files / 4GiB, fsync batch (at most every 200ms)"),
        "{s}"
    );
}

#[test]
fn empty_file_is_the_defaults() {
    let o = parse("").expect("empty");
    let d = Options::default();
    assert!(o.outputs.is_empty());
    assert_eq!(
        (o.args_max, o.queue_capacity, o.filter_refresh),
        (d.args_max, d.queue_capacity, d.filter_refresh)
    );
    assert_eq!(o.metrics_listen, None);
}

#[test]
fn every_output_option_maps() {
    let o = parse(
        r#"
        [[output]]
        url = "file:/r"
        file = { max_file_bytes = "1MiB", max_file_age = "10m", max_files = 3, max_total_bytes = "8MiB", fsync = "never", fsync_interval = "1s" }

        [[output]]
        url = "syslog+tls://siem:6514"
        format = "ocsf"
        tls = { ca_file = "/ca.pem", cert_file = "/c.pem", key_file = "/k.pem", server_name = "siem.lan" }
        spool = { dir = "/spool", max_bytes = "2GiB", full = "drop-newest" }

        [[output]]
        url = "kafka://b1:9092/audit"
        [output.kafka]
        "security.protocol" = "ssl"
        "batch.size" = 1000
        "#,
    )
    .expect("valid");
    let f = &o.outputs[0].options.file;
    assert_eq!(
        (f.max_file_bytes, f.max_file_age, f.max_files, f.max_total_bytes, f.fsync, f.fsync_interval),
        (1 << 20, Duration::from_secs(600), 3, 8 << 20, Fsync::Never, Duration::from_secs(1))
    );
    let s = &o.outputs[1].options;
    assert_eq!(s.format, Format::Ocsf);
    assert_eq!(s.tls.key_file.as_deref(), Some(Path::new("/k.pem")));
    assert_eq!(s.tls.server_name.as_deref(), Some("siem.lan"));
    assert_eq!((s.spool.dir.as_deref(), s.spool.max_bytes), (Some(Path::new("/spool")), 2 << 30));
    assert_eq!(s.spool.full, SpoolFull::DropNewest);
    let k = &o.outputs[2].options.kafka;
    assert_eq!(k.get("batch.size").map(String::as_str), Some("1000"));
    assert_eq!(k.get("security.protocol").map(String::as_str), Some("ssl"));
}

#[test]
fn limits_and_filters_map() {
    let o = parse(
        r#"
        [sensor]
        args_max = 4096
        report_threads = true
        btf = "/etc/sensor/5.10.0-46-cloud-amd64.btf"
        [filters]
        sensitive = ["/srv/x"]
        no_default_sensitive = true
        exclude_paths = ["/tmp"]
        include_paths = ["/home"]
        refresh = "1m"
        [limits]
        queue_capacity = 100
        process_table_entries = 1000
        ancestry_depth = 4
        ancestor_argv_bytes = "1KiB"
        hash_max_file_size = "1MiB"
        proc_ring_buffer = "1MiB"
        net_ring_buffer = "64KiB"
        [integrity]
        signing_key = "/etc/sensor/k"
        "#,
    )
    .expect("valid");
    assert_eq!((o.args_max, o.report_threads, o.no_default_sensitive), (4096, true, true));
    assert_eq!(o.filter_refresh, Duration::from_secs(60));
    assert_eq!((o.queue_capacity, o.enrich.table.max_entries, o.enrich.table.max_ancestors), (100, 1000, 4));
    assert_eq!(o.enrich.table.ancestor_argv_bytes, 1024);
    assert_eq!(
        (o.enrich.hash_max_bytes, o.proc_ring_bytes, o.file_ring_bytes, o.net_ring_bytes),
        (Some(1 << 20), Some(1 << 20), None, Some(64 << 10))
    );
    assert_eq!(o.signing_key.as_deref(), Some(Path::new("/etc/sensor/k")));
    assert_eq!(o.btf.as_deref(), Some(Path::new("/etc/sensor/5.10.0-46-cloud-amd64.btf")));
}

#[test]
fn read_errors_name_the_key_and_line() {
    let p = problem(
        "[[output]]\nurl = \"file:/a\"\n[[output]]\nurl = \"syslog+tcp://h:1\"\nspool = { max_bytes = \"12 parsecs\" }\n",
    );
    assert_eq!(p.key, "output[1].spool.max_bytes");
    assert_eq!(p.at.map(|a| a.0), Some(5));
    assert!(p.reason.contains("`12 parsecs` is not a size") && p.reason.contains("MiB"), "{p}");

    let p = problem("[[output]]\nurl = \"file:/a\"\nfile = { fsync = \"sometimes\" }\n");
    assert_eq!(p.key, "output[0].file.fsync");
    assert!(p.reason.contains("unknown variant `sometimes`"), "{p}");

    let p = problem("[limits]\nqueue_capcity = 5\n");
    assert_eq!(p.key, "limits.queue_capcity");
    assert!(p.reason.contains("unknown field"), "{p}");
    assert_eq!(p.to_string().split(':').next(), Some("line 2, column 1"));

    let p = problem("[filters]\nrefresh = 30\n");
    assert_eq!(p.key, "filters.refresh");
    assert!(p.reason.contains("duration with a unit"), "{p}");

    let p = problem("[[output]]\nformat = \"json\"\n");
    assert_eq!(p.key, "output[0]");
    assert!(p.reason.contains("missing field `url`"), "{p}");

    let p = problem("[metric]\nlisten = \"127.0.0.1:1\"\n");
    assert_eq!(p.key, "metric");
    assert!(p.reason.contains("unknown field"), "{p}");

    let p = problem("[[output]]\nurl = \"file:/a\"\nfile = { max_files = \"3\" }\n");
    assert_eq!(p.key, "output[0].file.max_files");
    assert!(p.reason.contains("invalid type"), "{p}");

    let p = problem("[sensor\n");
    assert_eq!((p.key.as_str(), p.at.map(|a| a.0)), ("", Some(1)));
}

#[test]
fn semantic_errors_name_the_key() {
    for (text, key, why) in [
        ("[[output]]\nurl = \"ftp://x\"", "output[0].url", "unknown output `ftp://`"),
        ("[[output]]\nurl = \"syslog+tcp://h:0\"", "output[0].url", "port 0"),
        ("[[output]]\nurl = \"file:records\"", "output[0].url", "absolute path is required"),
        ("[[output]]\nurl = \"file:/r\"\nfile = { max_files = 0 }", "output[0].file.max_files", "too small"),
        (
            "[[output]]\nurl = \"file:/r\"\nfile = { fsync_interval = \"2m\" }",
            "output[0].file.fsync_interval",
            "too large",
        ),
        (
            "[[output]]\nurl = \"file:/r\"\nfile = { max_total_bytes = \"1MiB\" }",
            "output[0].file.max_total_bytes",
            "less than max_file_bytes",
        ),
        (
            "[[output]]\nurl = \"file:/r\"\ntls = { ca_file = \"/ca\" }",
            "output[0].tls",
            "does not apply to file outputs",
        ),
        ("[[output]]\nurl = \"syslog+tcp://h:514\"\ntls = {}", "output[0].tls", "only to syslog+tls"),
        ("[[output]]\nurl = \"jsonl:-\"\nspool = {}", "output[0].spool", "does not apply to jsonl"),
        ("[[output]]\nurl = \"file:/r\"\nformat = \"ocsf\"", "output[0].format", "does not apply to file"),
        ("[[output]]\nurl = \"kafka://b:1/t\"\nfile = {}", "output[0].file", "does not apply to kafka"),
        (
            "[[output]]\nurl = \"syslog+tls://h:1\"\ntls = { cert_file = \"/c\" }",
            "output[0].tls.cert_file",
            "without key_file",
        ),
        (
            "[[output]]\nurl = \"syslog+tls://h:1\"\ntls = { ca_file = \"ca.pem\" }",
            "output[0].tls.ca_file",
            "relative",
        ),
        (
            "[[output]]\nurl = \"kafka://b:1/t\"\nspool = { dir = \"spool\" }",
            "output[0].spool.dir",
            "relative",
        ),
        (
            "[[output]]\nurl = \"kafka://b:1/t\"\nkafka = { \"bootstrap.servers\" = \"x\" }",
            "output[0].kafka.\"bootstrap.servers\"",
            "from the url",
        ),
        (
            "[[output]]\nurl = \"jsonl:-\"\n[[output]]\nurl = \"jsonl:-\"",
            "output[1].url",
            "same destination as output[0]",
        ),
        ("[metrics]\nlisten = \"localhost:9464\"", "metrics.listen", "not an IP address"),
        ("[metrics]\nlisten = \"127.0.0.1:0\"", "metrics.listen", "port 0"),
        ("[integrity]\nsigning_key = \"k.pem\"", "integrity.signing_key", "relative"),
        ("[sensor]\nargs_max = 0", "sensor.args_max", "out of range"),
        ("[limits]\nqueue_capacity = 0", "limits.queue_capacity", "too small"),
        ("[limits]\nfile_ring_buffer = \"3MiB\"", "limits.file_ring_buffer", "power of two"),
        ("[filters]\nexclude_paths = [\"tmp\"]", "filters.exclude_paths[0]", "relative"),
        ("[filters]\nrefresh = \"0s\"", "filters.refresh", "too small"),
    ] {
        let p = problem(text);
        assert_eq!(p.key, key, "{text}: {p}");
        assert!(p.reason.contains(why), "{text}: {p}");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let p = parse("[sensor]\nargs_max = 0\n[[output]]\nurl = \"file:r\"\n").expect_err("invalid");
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["sensor.args_max", "output[0].url"]);
}

/// The per-site configuration in the README's "Install" section, with its template variables
/// filled in, is a valid configuration.
#[test]
fn readme_site_configuration_is_accepted() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
        .expect("README.md");
    let section = readme.split("### Rolling out to many machines").nth(1).expect("rollout section");
    let toml = section.split("```toml\n").nth(1).and_then(|t| t.split("```").next()).expect("toml block");
    let text = toml
        .replace("{{ site }}", "north")
        .replace("{{ department }}", "radiology")
        .replace("{{ siem_host }}", "siem.north.example");
    let o = parse(&text).unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(o.outputs.len(), 2);
    assert_eq!(o.labels.get("department").map(String::as_str), Some("radiology"));
    let s = summary(&o);
    assert!(s.contains("syslog+tls://siem.north.example:6514"), "{s}");
    assert!(s.contains("client cert /etc/sensor/tls/client.pem"), "{s}");
}
