//! Booting one kernel under QEMU (TCG: /dev/kvm here cannot run normal kernels) with the
//! serial console in a file, and reading the results back from that file.

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::initramfs::MARK;

/// How a boot ended.
#[derive(Debug)]
pub struct Boot {
    pub elapsed: Duration,
    pub timed_out: bool,
    /// The serial console, as text (lossy).
    pub console: String,
}

/// Boots `vmlinuz` with `initrd`, console to `log`; kills the guest after `timeout`.
pub fn boot(
    vmlinuz: &Path,
    initrd: &Path,
    extra_append: &str,
    log: &Path,
    timeout: Duration,
) -> anyhow::Result<Boot> {
    let _ = fs::remove_file(log);
    let append = format!("console=ttyS0 panic=-1 quiet loglevel=4 {extra_append}");
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        // One host thread runs both vCPUs: with multi-threaded TCG, guests (6.12, 7.2) oopsed
        // now and then on an int3 left by the kernel's live patching of the syscall tracepoint
        // static keys, which another vCPU still executed from a stale translation.
        .args(["-accel", "tcg,thread=single", "-smp", "2", "-m", "1024"])
        .args(["-nographic", "-no-reboot", "-monitor", "none", "-nic", "none"])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(append)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let mut timed_out = false;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = child.wait_with_output()?;
    let mut console = String::from_utf8_lossy(&fs::read(log).unwrap_or_default()).into_owned();
    if !out.stderr.is_empty() {
        console.push_str("\n[qemu stderr]\n");
        console.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    if timed_out {
        console.push_str(&format!("\n[xtask] guest killed after {}s\n", timeout.as_secs()));
        fs::write(log, &console)?;
    }
    Ok(Boot { elapsed: started.elapsed(), timed_out, console })
}

/// The first kernel oops or panic line on the console, if the guest kernel crashed.
pub fn guest_oops(console: &str) -> Option<&str> {
    console
        .lines()
        .find(|l| l.contains("] Oops: ") || l.contains("] Kernel panic") || l.contains("] BUG: "))
        .map(|l| l.split_once("] ").map_or(l, |(_, r)| r).trim())
}

/// One test binary's outcome in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Exit code and the names of the failing tests.
    Fail(i32, Vec<String>),
    /// Started but never ended (guest crash or timeout), or never started.
    NoResult(&'static str),
    /// Not run: the collector it tests is switched off on this kernel (the reason is in the
    /// sensor's start-up log).
    Off(String),
}

/// The outcome of test `name` in the console text. Lines are matched anywhere (`grep -a`
/// style): the first console line carries terminal escape codes.
pub fn outcome(console: &str, name: &str) -> Outcome {
    if let Some(why) = marker_value(console, &format!("off {name}")) {
        return Outcome::Off(why.to_owned());
    }
    let start = format!("{MARK} start {name}");
    let end = format!("{MARK} end {name} rc=");
    let Some(from) = console.find(&start) else { return Outcome::NoResult("did not start") };
    let section = &console[from..];
    let Some(at) = section.find(&end) else { return Outcome::NoResult("no end marker (crash or timeout)") };
    let rc: i32 = section[at + end.len()..]
        .split(|c: char| !c.is_ascii_digit() && c != '-')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    if rc == 0 {
        return Outcome::Pass;
    }
    Outcome::Fail(rc, failed_tests(&section[..at]))
}

/// The failed tests of one binary's output: the list libtest prints last (`failures:` and a
/// name per indented line), which stays whole when log lines of the test interleave with its
/// `test NAME ... FAILED` line; those lines where there is no list.
fn failed_tests(output: &str) -> Vec<String> {
    if let Some(at) = output.rfind("\nfailures:\n") {
        let names: Vec<String> = output[at + 11..]
            .lines()
            .take_while(|l| l.starts_with("    "))
            .map(|l| l.trim().to_owned())
            .collect();
        if !names.is_empty() {
            return names;
        }
    }
    output
        .lines()
        .filter_map(|l| {
            let l = l.trim_end();
            let rest = &l[l.find("test ")? + 5..];
            rest.strip_suffix(" ... FAILED").map(str::to_owned)
        })
        .collect()
}

/// Value after `"{MARK} {key} "` on the console, if printed.
pub fn marker_value<'a>(console: &'a str, key: &str) -> Option<&'a str> {
    let m = format!("{MARK} {key} ");
    console.lines().find_map(|l| l.find(&m).map(|i| l[i + m.len()..].trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_oops_is_found_in_kernel_lines_only() {
        let console = "@@VMTEST start file\ntest BUG: in a name ... ok\n[    7.071424] Oops: int3: 0000 [#1] SMP NOPTI\n";
        assert_eq!(guest_oops(console), Some("Oops: int3: 0000 [#1] SMP NOPTI"));
        assert_eq!(guest_oops("@@VMTEST start file\ntest a ... ok\n"), None);
    }

    #[test]
    fn outcomes_from_console_text() {
        let console = "\x1b[?7l@@VMTEST kernel 6.1.0\n@@VMTEST start exec\ntest a ... ok\ntest b ... FAILED\n\
                       @@VMTEST end exec rc=101\n@@VMTEST start file\ntest c ... ok\n@@VMTEST end file rc=0\n\
                       @@VMTEST start net\n@@VMTEST off dns the dns collector is off\n";
        assert_eq!(outcome(console, "exec"), Outcome::Fail(101, vec!["b".to_owned()]));
        assert_eq!(outcome(console, "file"), Outcome::Pass);
        assert!(matches!(outcome(console, "net"), Outcome::NoResult(_)));
        assert!(matches!(outcome(console, "lineage"), Outcome::NoResult(_)));
        assert_eq!(outcome(console, "dns"), Outcome::Off("the dns collector is off".to_owned()));
        assert_eq!(marker_value(console, "kernel"), Some("6.1.0"));
    }

    #[test]
    fn failed_tests_come_from_the_final_list_when_log_lines_interleave() {
        let output = "test a ... INFO sensor: pins removed\nFAILED\ntest b ... ok\n\nfailures:\n\n\
                      ---- a stdout ----\npanicked\n\nfailures:\n    a\n    c\n\ntest result: FAILED.\n";
        assert_eq!(failed_tests(output), vec!["a".to_owned(), "c".to_owned()]);
        assert_eq!(failed_tests("test x ... FAILED\n"), vec!["x".to_owned()]);
    }
}
