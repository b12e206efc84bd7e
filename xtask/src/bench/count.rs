//! What a tracer delivered for a workload: sensor records (read back with `sensor records cat`)
//! or auditd `SYSCALL` records, matched to the workload by pid and kind.

use std::{
    io::BufRead as _,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use super::{
    auditd,
    workloads::{MIXED_DIR, NOISE_FILE, Storm, WRITE_DIR},
};

/// Which records belong to the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matcher {
    Storm(Storm),
    Mixed,
}

/// Records matched, and losses the tracer itself reported.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub matched: u64,
    /// Sum of the sensor's loss records (all kinds), or the kernel audit `lost` counter delta.
    pub loss_reported: u64,
}

#[derive(Debug, Deserialize)]
struct Rec {
    process: Option<Proc>,
    exec: Option<Exec>,
    file: Option<File>,
    network: Option<Net>,
    loss: Option<Loss>,
}

#[derive(Debug, Deserialize)]
struct Proc {
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    ppid: u32,
}

#[derive(Debug, Deserialize)]
struct Exec {
    #[serde(default)]
    filename: String,
}

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    op: String,
    #[serde(default)]
    path: String,
}

#[derive(Debug, Deserialize)]
struct Net {
    #[serde(default)]
    op: String,
}

#[derive(Debug, Deserialize)]
struct Loss {
    /// uint64: a string in the proto3 JSON mapping.
    #[serde(default)]
    count: serde_json::Value,
}

fn under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// True when the sensor record belongs to the workload run by process `me`.
fn sensor_match(r: &Rec, m: Matcher, me: u32) -> bool {
    let Some(p) = &r.process else { return false };
    let exec = r.exec.as_ref().is_some_and(|e| e.filename == "/bin/true") && p.ppid == me;
    if p.pid != me && !exec {
        return false;
    }
    let file = |pred: &dyn Fn(&File) -> bool| r.file.as_ref().is_some_and(pred);
    let net = |ops: &[&str]| r.network.as_ref().is_some_and(|n| ops.contains(&n.op.as_str()));
    match m {
        Matcher::Storm(Storm::Exec) => exec,
        Matcher::Storm(Storm::Write) => file(&|f| f.op == "open" && under(&f.path, WRITE_DIR)),
        Matcher::Storm(Storm::Noise) => file(&|f| f.path == NOISE_FILE),
        Matcher::Storm(Storm::Connect) => net(&["connect"]),
        Matcher::Mixed => exec || file(&|f| under(&f.path, MIXED_DIR)) || net(&["connect", "accept"]),
    }
}

/// Counts the sensor's records in `records_dir` that belong to the workload run by `me`.
pub fn sensor_records(bin: &Path, records_dir: &Path, m: Matcher, me: u32) -> anyhow::Result<Delivered> {
    let mut child = Command::new(bin)
        .args(["records", "cat"])
        .arg(records_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting sensor records cat")?;
    let stdout = child.stdout.take().context("records cat stdout")?;
    let mut out = Delivered::default();
    for line in std::io::BufReader::with_capacity(1 << 20, stdout).lines() {
        let line = line?;
        let rec: Rec = serde_json::from_str(&line).with_context(|| format!("parsing record {line}"))?;
        if let Some(l) = &rec.loss {
            out.loss_reported += match &l.count {
                serde_json::Value::String(s) => s.parse().unwrap_or(0),
                v => v.as_u64().unwrap_or(0),
            };
        }
        out.matched += u64::from(sensor_match(&rec, m, me));
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("sensor records cat {} failed: {status}", records_dir.display());
    }
    Ok(out)
}

/// True when the audit record belongs to the workload run by `me`.
fn audit_match(r: &auditd::SyscallRecord, m: Matcher, me: u32) -> bool {
    let key = r.key.strip_prefix(auditd::KEY_PREFIX).unwrap_or("");
    let exec = key == "exec" && r.ppid == me && r.success && r.exe.ends_with("/true");
    // Successful calls only: the workloads' ops all succeed (the acceptor's polls do not).
    let mine = |keys: &[&str]| r.pid == me && r.success && keys.contains(&key);
    match m {
        Matcher::Storm(Storm::Exec) => exec,
        Matcher::Storm(Storm::Write) => mine(&["wopen"]),
        // Read-only opens must not match any rule: anything of ours is noise that got through.
        Matcher::Storm(Storm::Noise) => r.pid == me && !r.key.is_empty(),
        Matcher::Storm(Storm::Connect) => mine(&["connect"]),
        Matcher::Mixed => exec || mine(&["wopen", "chmod", "rename", "unlink", "connect", "accept"]),
    }
}

/// Counts the `SYSCALL` records in auditd's log that belong to the workload run by `me`.
pub fn audit_log(log: &Path, m: Matcher, me: u32) -> anyhow::Result<u64> {
    let file = std::fs::File::open(log).with_context(|| format!("opening {}", log.display()))?;
    let mut n = 0;
    for line in std::io::BufReader::with_capacity(1 << 20, file).split(b'\n') {
        let line = line?;
        let line = String::from_utf8_lossy(&line);
        if let Some(r) = auditd::parse_syscall(&line) {
            n += u64::from(audit_match(&r, m, me));
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_records_match_by_pid_and_kind() {
        let rec = |json: &str| serde_json::from_str::<Rec>(json).expect("record");
        let exec = rec(r#"{"process":{"pid":5,"ppid":7},"exec":{"filename":"/bin/true"}}"#);
        assert!(sensor_match(&exec, Matcher::Storm(Storm::Exec), 7));
        assert!(!sensor_match(&exec, Matcher::Storm(Storm::Exec), 8));
        let open = rec(r#"{"process":{"pid":7},"file":{"op":"open","path":"/dev/shm/sensor-bench/f1"}}"#);
        assert!(sensor_match(&open, Matcher::Storm(Storm::Write), 7));
        assert!(!sensor_match(&open, Matcher::Mixed, 7));
        let loss = rec(r#"{"loss":{"kind":"file","count":"17"}}"#);
        assert!(!sensor_match(&loss, Matcher::Mixed, 7));
    }
}
