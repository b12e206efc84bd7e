//! `cargo xtask soak`: the sensor as a ward terminal runs it, for a long time. The bench's mixed
//! load (file create/chmod/rename/unlink, loopback connects and accepts, fork+exec) at a steady
//! rate, with bursts (a login storm, a software update) at a fixed interval; the sensor writes
//! record files and serves metrics. Every 10 s: resident memory, open fds, threads, the loss the
//! sensor reported and its queue depth. At the end, what it delivered of the load. The sensor
//! records file activity of the load's directory only: the machine is shared with builds and
//! tests whose file storms are not the load under test.
//!
//! Writes `results.md` (figures and the samples) and `soak.svg` (the samples over time) to
//! `docs/soak/` (or `--out`).

mod svg;

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    bench::{count, workloads},
    util,
};

/// Options of a soak run.
#[derive(Debug, Clone)]
pub struct SoakOpts {
    pub minutes: f64,
    /// Events per second of the steady load.
    pub rate: u64,
    /// Events per second during a burst.
    pub burst_rate: u64,
    pub burst_secs: u64,
    /// A burst starts this often.
    pub burst_every_secs: u64,
    pub out: Option<PathBuf>,
}

/// One sample of the sensor's state.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub secs: f64,
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
    /// Sum of `sensor_lost_events_total` (all kinds and reasons).
    pub lost: u64,
    /// `sensor_queue_depth` of both queues.
    pub queue: u64,
    pub records: u64,
    pub burst: bool,
}

/// Everything a run measured.
#[derive(Debug, Default)]
pub struct SoakResult {
    pub opts_line: String,
    pub samples: Vec<Sample>,
    pub expected: u64,
    pub delivered: u64,
    pub loss_reported: u64,
    pub elapsed: Duration,
    pub bursts: u32,
    pub machine: String,
}

pub fn soak(ws: &Path, opts: &SoakOpts) -> anyhow::Result<()> {
    if !util::is_root() {
        bail!("the soak runs the sensor (eBPF): run as root");
    }
    util::run(util::cargo(ws).args(["build", "--release", "--package", "sensor"]))?;
    let bin = ws.join("target/release/sensor");
    let tmp = ws.join("target/soak-tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let records = tmp.join("records");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let sensor = Running::start(&bin, &records, port, &tmp.join("sensor.log"))?;

    let total = Duration::from_secs_f64(opts.minutes * 60.0);
    let mut res = SoakResult {
        opts_line: format!(
            "{} min; steady {} events/s; bursts of {} events/s for {} s every {} s",
            opts.minutes, opts.rate, opts.burst_rate, opts.burst_secs, opts.burst_every_secs
        ),
        machine: crate::bench::machine(),
        ..SoakResult::default()
    };
    let start = Instant::now();
    let mut next_sample = Duration::ZERO;
    let mut next_burst = Duration::from_secs(opts.burst_every_secs);
    eprintln!("xtask soak: {} (sensor pid {})", res.opts_line, sensor.pid());
    while start.elapsed() < total {
        let now = start.elapsed();
        let burst = now >= next_burst;
        let (rate, len) = if burst {
            next_burst += Duration::from_secs(opts.burst_every_secs);
            res.bursts += 1;
            (opts.burst_rate, Duration::from_secs(opts.burst_secs))
        } else {
            (
                opts.rate,
                next_burst.saturating_sub(now).min(Duration::from_secs(30)).max(Duration::from_secs(1)),
            )
        };
        let len = len.min(total.saturating_sub(now)).max(Duration::from_millis(100));
        let mut tick = || {
            if start.elapsed() >= next_sample {
                next_sample += Duration::from_secs(10);
                let s = sensor.sample(start.elapsed(), burst);
                if res.samples.len().is_multiple_of(6) {
                    eprintln!(
                        "xtask soak: {:>5.0} s  rss {} MiB  fds {}  threads {}  lost {}  queue {}  records {}",
                        s.secs,
                        s.rss_kib / 1024,
                        s.fds,
                        s.threads,
                        s.lost,
                        s.queue,
                        s.records
                    );
                }
                res.samples.push(s);
            }
        };
        let load = workloads::mixed(rate, len, &mut tick)?;
        tick();
        res.expected += load.expected();
    }
    res.elapsed = start.elapsed();
    res.samples.push(sensor.sample(res.elapsed, false));
    sensor.stop()?;
    workloads::cleanup_mixed();
    eprintln!("xtask soak: counting what the sensor delivered");
    let d = count::sensor_records(&bin, &records, count::Matcher::Mixed, std::process::id())?;
    res.delivered = d.matched;
    res.loss_reported = d.loss_reported;

    let out = opts.out.clone().unwrap_or_else(|| ws.join("docs/soak"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let md = markdown(&res);
    std::fs::write(out.join("results.md"), &md)?;
    std::fs::write(out.join("soak.svg"), svg::chart(&res))?;
    print!("{md}");
    eprintln!("xtask soak: written to {}", out.display());
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// The sensor binary, running with a file output and a metrics endpoint.
struct Running {
    child: Child,
    port: u16,
}

impl Running {
    fn start(bin: &Path, records: &Path, port: u16, log: &Path) -> anyhow::Result<Self> {
        // The machine is shared (builds, tests, fuzzers): file activity is recorded for the
        // load's directory only (exec, fork, exit and network records of everything still
        // are). Retention keeps the whole run, so what was delivered can be counted; the disk
        // reserve still applies (and what it keeps from being written is in loss records).
        std::fs::create_dir_all(workloads::MIXED_DIR)?;
        let config = log.with_file_name("sensor.toml");
        std::fs::write(
            &config,
            format!(
                "[[output]]\nurl = \"file:{}\"\n[output.file]\nmax_files = 1000000\nmax_total_bytes = \"1TiB\"\n\
                 [filters]\ninclude_paths = [\"{}\"]\n",
                records.display(),
                workloads::MIXED_DIR
            ),
        )?;
        let child = Command::new(bin)
            .args(["run", "--metrics", &format!("127.0.0.1:{port}"), "--config"])
            .arg(&config)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("starting the sensor")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.contains("streaming records") {
                return Ok(Self { child, port });
            }
            if Instant::now() > deadline || text.contains("ERROR") {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                bail!("sensor did not start:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn sample(&self, at: Duration, burst: bool) -> Sample {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
        let metrics = scrape(self.port).unwrap_or_default();
        Sample {
            secs: at.as_secs_f64(),
            rss_kib: field("VmRSS:"),
            fds,
            threads: field("Threads:"),
            lost: sum_series(&metrics, "sensor_lost_events_total"),
            queue: sum_series(&metrics, "sensor_queue_depth"),
            records: sum_series(&metrics, "sensor_records_total"),
            burst,
        }
    }

    fn stop(mut self) -> anyhow::Result<()> {
        util::run(Command::new("kill").args(["-TERM", &self.pid().to_string()]))?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("sensor exited with {status}");
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let _ = self.child.wait();
        }
    }
}

/// `GET /metrics`.
fn scrape(port: u16) -> anyhow::Result<String> {
    let mut c = TcpStream::connect(("127.0.0.1", port))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let mut body = String::new();
    c.read_to_string(&mut body)?;
    Ok(body)
}

/// The sum of every sample of a metric family (all label sets).
pub fn sum_series(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn markdown(r: &SoakResult) -> String {
    use std::fmt::Write as _;
    let s = &r.samples;
    let max = |f: fn(&Sample) -> u64| s.iter().map(f).max().unwrap_or(0);
    let min = |f: fn(&Sample) -> u64| s.iter().map(f).min().unwrap_or(0);
    let first = s.first().copied().unwrap_or_default();
    let last = s.last().copied().unwrap_or_default();
    // Memory after the first 5 minutes vs at the end: growth that is not the start-up.
    let settled = s.iter().find(|x| x.secs >= 300.0).copied().unwrap_or(first);
    let mib = |k: u64| k as f64 / 1024.0;
    let mut o = String::new();
    let _ = writeln!(o, "# Soak: `cargo xtask soak`\n");
    let _ = writeln!(
        o,
        "{}; {} bursts; ran {:.1} min on {}.\n",
        r.opts_line,
        r.bursts,
        r.elapsed.as_secs_f64() / 60.0,
        r.machine
    );
    let _ = writeln!(o, "| figure | value |\n|---|---|");
    let _ = writeln!(o, "| events of the load (expected records) | {} |", r.expected);
    let _ = writeln!(
        o,
        "| records of the load delivered | {} ({:.3} %) |",
        r.delivered,
        100.0 * r.delivered as f64 / r.expected.max(1) as f64
    );
    let _ = writeln!(o, "| events lost, as the sensor's loss records say | {} |", r.loss_reported);
    let _ = writeln!(o, "| `sensor_lost_events_total` at the end | {} |", last.lost);
    let _ = writeln!(o, "| records written (all, incl. other activity) | {} |", last.records);
    let _ = writeln!(
        o,
        "| RSS: start / after 5 min / end / max (MiB) | {:.1} / {:.1} / {:.1} / {:.1} |",
        mib(first.rss_kib),
        mib(settled.rss_kib),
        mib(last.rss_kib),
        mib(max(|x| x.rss_kib))
    );
    let _ =
        writeln!(o, "| open fds: min / max / end | {} / {} / {} |", min(|x| x.fds), max(|x| x.fds), last.fds);
    let _ = writeln!(
        o,
        "| threads: min / max / end | {} / {} / {} |",
        min(|x| x.threads),
        max(|x| x.threads),
        last.threads
    );
    let _ = writeln!(o, "| queue depth: max / end | {} / {} |", max(|x| x.queue), last.queue);
    let _ = writeln!(o, "\n![samples over time](soak.svg)\n");
    let _ = writeln!(o, "## Samples (every minute)\n");
    let _ = writeln!(
        o,
        "| min | RSS MiB | fds | threads | lost | queue | records | burst |\n|---|---|---|---|---|---|---|---|"
    );
    let mut next = 0.0;
    for x in s {
        if x.secs + 0.5 >= next {
            next += 60.0;
            let _ = writeln!(
                o,
                "| {:.1} | {:.1} | {} | {} | {} | {} | {} | {} |",
                x.secs / 60.0,
                mib(x.rss_kib),
                x.fds,
                x.threads,
                x.lost,
                x.queue,
                x.records,
                if x.burst { "yes" } else { "" }
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_metric_family() {
        let m = "# HELP sensor_queue_depth x\nsensor_queue_depth{queue=\"lineage\"} 3\n\
                 sensor_queue_depth{queue=\"bulk\"} 4\nsensor_queue_depth_other 9\nsensor_records_total 12\n";
        assert_eq!(sum_series(m, "sensor_queue_depth"), 7);
        assert_eq!(sum_series(m, "sensor_records_total"), 12);
        assert_eq!(sum_series(m, "sensor_lost_events_total"), 0);
    }
}
