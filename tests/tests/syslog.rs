//! The syslog output against a real rsyslogd on loopback (`cargo xtask setup` installs it):
//! every record of a burst arrives, nothing is lost while rsyslog is down for 10 s, and TLS
//! verifies the receiver (a wrong CA is refused, with no plaintext fallback; the records it
//! kept in the spool are delivered by the next run).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use sensor::{
    pipeline::Options,
    sinks::{
        Output, OutputOptions, OutputSpec,
        spec::{DiskOptions, SpoolOptions, TlsOptions},
    },
};
use sensor_proto::{AuditRecord, v1::audit_record::Event};
use sensor_tests::{TestSensor, unique};

/// TLS material of a throwaway CA and a server certificate for localhost/127.0.0.1.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path, tag: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("test CA {tag}"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
    let params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("server params");
    let key = KeyPair::generate().expect("server key");
    let cert = params.signed_by(&key, &ca).expect("server cert");
    let pki = Pki {
        ca: dir.join(format!("ca-{tag}.pem")),
        cert: dir.join(format!("cert-{tag}.pem")),
        key: dir.join(format!("key-{tag}.pem")),
    };
    std::fs::write(&pki.ca, ca.pem()).expect("write ca");
    std::fs::write(&pki.cert, cert.pem()).expect("write cert");
    std::fs::write(&pki.key, key.serialize_pem()).expect("write key");
    pki
}

/// rsyslogd in the foreground with a private config, writing what it receives to `out`.
struct Rsyslog {
    dir: PathBuf,
    port: u16,
    out: PathBuf,
    child: Option<Child>,
}

impl Rsyslog {
    fn start(dir: &Path, port: u16, tls: Option<&Pki>) -> Self {
        let mut r = Self { dir: dir.to_owned(), port, out: dir.join("received.log"), child: None };
        r.restart(tls);
        r
    }

    fn restart(&mut self, tls: Option<&Pki>) {
        let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("rsyslogd is missing: `cargo xtask setup` installs it (apt-get install rsyslog rsyslog-gnutls)");
        let (global_tls, driver) = match tls {
            Some(p) => (
                format!(
                    "global(DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" \
                     DefaultNetstreamDriverKeyFile=\"{}\")\n",
                    p.ca.display(),
                    p.cert.display(),
                    p.key.display()
                ),
                " StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\"",
            ),
            None => (String::new(), ""),
        };
        let conf = format!(
            "global(workDirectory=\"{dir}\" maxMessageSize=\"256k\")\n{global_tls}\
             module(load=\"imtcp\"{driver})\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n\
             template(name=\"raw\" type=\"string\" \
             string=\"%pri%|%app-name%|%msgid%|%hostname%|%structured-data%|%msg%\\n\")\n\
             action(type=\"omfile\" file=\"{out}\" template=\"raw\")\n",
            dir = self.dir.display(),
            port = self.port,
            out = self.out.display(),
        );
        let conf_path = self.dir.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).expect("write rsyslog.conf");
        let err = std::fs::File::create(self.dir.join("rsyslogd.err")).expect("stderr file");
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start rsyslogd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "rsyslogd did not listen: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.err")).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            let _ = c.wait();
        }
    }

    /// Received sensor messages: (instance, seq) → (pri, msgid, record JSON).
    fn received(&self) -> BTreeMap<(String, u64), (String, String, serde_json::Value)> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        // rsyslog may be writing a line as it is read: only whole lines count.
        let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let mut got = BTreeMap::new();
        for line in whole.lines() {
            let f: Vec<&str> = line.splitn(6, '|').collect();
            if f.len() != 6 || f[1] != "sensor" {
                continue;
            }
            let sd = f[4];
            let seq: u64 = sd_param(sd, "seq").and_then(|s| s.parse().ok()).expect("seq in structured data");
            let instance = sd_param(sd, "instance").expect("instance in structured data").to_owned();
            let json: serde_json::Value = serde_json::from_str(f[5].trim_start())
                .unwrap_or_else(|e| panic!("MSG is not JSON ({e}): {line}"));
            assert_eq!(json["seq"].as_str(), Some(seq.to_string().as_str()), "{line}");
            got.insert((instance, seq), (f[0].to_owned(), f[2].to_owned(), json));
        }
        got
    }

    /// Waits until `pred` holds for what rsyslog received.
    fn wait_until(
        &self,
        timeout: Duration,
        pred: impl Fn(&BTreeMap<(String, u64), (String, String, serde_json::Value)>) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.received()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        pred(&self.received())
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sd_param<'a>(sd: &'a str, name: &str) -> Option<&'a str> {
    let start = sd.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = sd[start..].find('"')?;
    Some(&sd[start..start + end])
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Runs `n` short processes with `tag` in their argv.
fn burst(tag: &str, n: usize) {
    for i in 0..n {
        Command::new("/bin/true").arg(format!("{tag}-{i}")).status().expect("run /bin/true");
    }
}

fn syslog_output(tls: bool, port: u16, spool: &Path, ca: Option<&Path>) -> Output {
    let host = "127.0.0.1".to_owned();
    Output {
        spec: OutputSpec::Syslog { tls, host, port },
        options: OutputOptions {
            // No free-space reserve: delivery must not depend on how full the disk is (disk.rs).
            spool: SpoolOptions {
                dir: Some(spool.to_owned()),
                disk: DiskOptions::NONE,
                ..SpoolOptions::default()
            },
            tls: TlsOptions {
                ca_file: ca.map(Path::to_owned),
                server_name: Some("localhost".into()),
                ..TlsOptions::default()
            },
            ..OutputOptions::default()
        },
    }
}

/// Every record the sensor produced is in what rsyslog received (by instance and seq).
fn assert_all_arrived(records: &[AuditRecord], rsyslog: &Rsyslog) {
    let instance = records[0].host.as_ref().expect("host").instance_id.clone();
    let want: BTreeSet<u64> = records.iter().map(|r| r.seq).collect();
    let complete = rsyslog.wait_until(Duration::from_secs(15), |got| {
        want.iter().all(|s| got.contains_key(&(instance.clone(), *s)))
    });
    if !complete {
        let got = rsyslog.received();
        let missing: Vec<u64> =
            want.iter().filter(|s| !got.contains_key(&(instance.clone(), **s))).copied().collect();
        panic!(
            "{} of {} records missing, e.g. {:?}; rsyslogd: {}",
            missing.len(),
            want.len(),
            &missing[..missing.len().min(20)],
            rsyslog.stderr()
        );
    }
}

#[test]
fn rsyslog_receives_every_record_of_a_burst() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let rsyslog = Rsyslog::start(dir.path(), port, None);
    let spec = format!("syslog+tcp://127.0.0.1:{port}");
    // The binary's default spool directory for this output; the configuration only lifts the
    // free-space reserve, so that delivery does not depend on how full the disk is (disk.rs).
    let spool = sensor::sinks::spool::spool_dir(&spec, &SpoolOptions::default());
    let _ = std::fs::remove_dir_all(&spool);
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!("[[output]]\nurl = \"{spec}\"\nspool = {{ reserve = 0, reserve_percent = 0 }}\n"),
    )
    .expect("write config");

    let mut sensor =
        sensor_tests::spawn_sensor([std::ffi::OsStr::new("run"), "--config".as_ref(), config.as_ref()]);

    let tag = unique("syslog-burst");
    burst(&tag, 200);
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(Pid::from_raw(sensor.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    assert!(sensor.wait().expect("wait sensor").success());

    // Every seq from 1 to the final checkpoint arrived, as authpriv messages of app `sensor`.
    let ok =
        rsyslog.wait_until(Duration::from_secs(10), |got| got.values().any(|(_, id, _)| id == "checkpoint"));
    assert!(ok, "the final checkpoint did not arrive; rsyslogd: {}", rsyslog.stderr());
    let got = rsyslog.received();
    let instances: BTreeSet<&String> = got.keys().map(|(i, _)| i).collect();
    assert_eq!(instances.len(), 1, "one sensor run: {instances:?}");
    let seqs: Vec<u64> = got.keys().map(|(_, s)| *s).collect();
    let last = *seqs.last().expect("records");
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "no gaps from 1 to {last}");
    let (pri, msgid, json) = got.values().last().expect("last");
    assert_eq!((msgid.as_str(), json["checkpoint"]["final"].as_bool()), ("checkpoint", Some(true)));
    assert_eq!(pri, "86", "authpriv.info");
    let execs: BTreeSet<String> = got
        .values()
        .filter(|(_, id, _)| id == "exec")
        .filter_map(|(_, _, j)| j["process"]["argv"][1].as_str().map(str::to_owned))
        .filter(|a| a.starts_with(&tag))
        .collect();
    assert_eq!(execs.len(), 200, "an exec record for each process of the burst");
    let _ = std::fs::remove_dir_all(&spool);
}

#[test]
fn nothing_is_lost_while_rsyslog_is_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut rsyslog = Rsyslog::start(dir.path(), port, None);
    let spool = dir.path().join("spool");
    let sensor = TestSensor::start(Options {
        outputs: vec![syslog_output(false, port, &spool, None)],
        ..Options::default()
    });
    let tag = unique("syslog-outage");
    burst(&format!("{tag}-a"), 60);
    std::thread::sleep(Duration::from_millis(300));

    rsyslog.stop();
    let down = Instant::now();
    burst(&format!("{tag}-b"), 80);
    std::thread::sleep(Duration::from_secs(10).saturating_sub(down.elapsed()));
    rsyslog.restart(None);
    burst(&format!("{tag}-c"), 60);

    let records = sensor.stop();
    let exec_of = |prefix: &str| {
        records
            .iter()
            .filter(|r| matches!(r.event, Some(Event::Exec(_))))
            .filter_map(|r| r.process.as_ref()?.argv.get(1))
            .filter(|a| a.starts_with(prefix))
            .count()
    };
    assert_eq!(exec_of(&format!("{tag}-b")), 80, "records made while rsyslog was down");
    assert_all_arrived(&records, &rsyslog);
}

#[test]
fn tls_delivers_with_ca_verification() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(dir.path(), "good");
    let port = free_port();
    let rsyslog = Rsyslog::start(dir.path(), port, Some(&pki));

    // The right CA: records arrive over TLS.
    let sensor = TestSensor::start(Options {
        outputs: vec![syslog_output(true, port, &dir.path().join("spool-good"), Some(&pki.ca))],
        ..Options::default()
    });
    let tag = unique("syslog-tls");
    burst(&tag, 20);
    std::thread::sleep(Duration::from_millis(300));
    let records = sensor.stop();
    assert_all_arrived(&records, &rsyslog);
}

#[test]
fn tls_refuses_a_wrong_ca_and_the_next_run_delivers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(dir.path(), "good");
    let other = make_pki(dir.path(), "other");
    let port = free_port();
    let rsyslog = Rsyslog::start(dir.path(), port, Some(&pki));
    let tag = unique("syslog-tls");

    // A CA that did not sign the server: refused, nothing sent in clear, all kept in the spool.
    let spool = dir.path().join("spool-other");
    let sensor = TestSensor::start(Options {
        outputs: vec![syslog_output(true, port, &spool, Some(&other.ca))],
        ..Options::default()
    });
    burst(&format!("{tag}-refused"), 5);
    std::thread::sleep(Duration::from_secs(1));
    let refused = sensor.stop();
    let instance = refused[0].host.as_ref().expect("host").instance_id.clone();
    std::thread::sleep(Duration::from_secs(1));
    let got = rsyslog.received();
    assert!(!got.keys().any(|(i, _)| *i == instance), "records reached a receiver the CA did not vouch for");
    let spooled: u64 = std::fs::read_dir(&spool)
        .expect("spool dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    assert!(spooled > 0, "undelivered records stay in the spool");

    // The operator fixes the CA and restarts: the next run delivers the spooled records first.
    let sensor = TestSensor::start(Options {
        outputs: vec![syslog_output(true, port, &spool, Some(&pki.ca))],
        ..Options::default()
    });
    assert_all_arrived(&refused, &rsyslog);
    let _ = sensor.stop();
}
