//! The guest's root file system, as one uncompressed initramfs (newc cpio, written here; the
//! kernel unpacks it faster than it could decompress anything under emulation).
//!
//! Layout (merged /usr, like Debian): busybox-static and its applets in /usr/bin; the real
//! coreutils the tests name (`/bin/true`, `/bin/echo`, `/bin/sleep`, `/bin/cat`: the tests
//! assert `exe == /usr/bin/true` and hash `/usr/bin/sleep`, which busybox links would not
//! satisfy) with the shared libraries `ldd` lists and the loader; the sensor at /t/sensor and
//! the test binaries at /t/deps/ (the CLI tests find the sensor at `<exe>/../../sensor`);
//! minimal /etc; and /init.

use std::{
    collections::BTreeSet,
    fs,
    io::{BufWriter, Write as _},
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::util;

/// A test binary to run in the guest.
#[derive(Debug, Clone)]
pub struct TestBin {
    /// Short name (`exec`), the matrix column.
    pub name: String,
    pub path: PathBuf,
    /// Arguments after `--test-threads=1` (e.g. `--skip NAME`).
    pub args: Vec<String>,
    /// The sensor collector these tests need: when the sensor switches it off on a kernel
    /// (and says why at start-up), the binary is not run there and the matrix shows "off".
    pub collector: Option<String>,
    /// A second run of a binary with the fentry path switched off (`SENSOR_TEST_SYSCALL_FENTRY`
    /// = false, read by the tests' sensor): the path the kernel would fall back to, so both
    /// paths are tested where both load. Only where the sensor took the fentry path at start-up.
    pub fentry_off: bool,
}

/// The column name of a binary's run with the fentry path off.
pub fn fentry_off_name(name: &str) -> String {
    format!("{name}.fb")
}

/// Markers /init prints on the serial console; the host greps for them.
pub const MARK: &str = "@@VMTEST";

/// Host programs the tests run by absolute path, copied with their libraries.
const HOST_PROGRAMS: [&str; 4] = ["/usr/bin/true", "/usr/bin/echo", "/usr/bin/sleep", "/usr/bin/cat"];
const BUSYBOX: &str = "/bin/busybox";

/// Builds `<work>/initramfs.cpio` (staging in `<work>/rootfs`) holding `sensor` and `tests`;
/// returns its path.
pub fn build(work: &Path, sensor: &Path, tests: &[TestBin]) -> anyhow::Result<PathBuf> {
    let root = work.join("rootfs");
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    for d in [
        "usr/bin",
        "usr/lib/x86_64-linux-gnu",
        "usr/lib64",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "root",
        "t/deps",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    for (link, target) in
        [("bin", "usr/bin"), ("sbin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")]
    {
        symlink(target, root.join(link))?;
    }
    symlink("bin", root.join("usr/sbin"))?;
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;

    // busybox and its applets (real programs copied below replace their links).
    fs::copy(BUSYBOX, root.join("usr/bin/busybox")).with_context(|| format!("copying {BUSYBOX}"))?;
    let applets = util::output(Command::new(BUSYBOX).arg("--list"))?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty() && *a != "busybox") {
        symlink("busybox", root.join("usr/bin").join(applet))?;
    }

    let mut elves: Vec<PathBuf> = Vec::new();
    for prog in HOST_PROGRAMS {
        let dst = root.join(prog.trim_start_matches('/'));
        let _ = fs::remove_file(&dst);
        fs::copy(prog, &dst).with_context(|| format!("copying {prog}"))?;
        elves.push(PathBuf::from(prog));
    }
    strip_into(sensor, &root.join("t/sensor"))?;
    elves.push(sensor.to_owned());
    for t in tests {
        let name = t.path.file_name().context("test binary name")?;
        strip_into(&t.path, &root.join("t/deps").join(name))?;
        elves.push(t.path.clone());
    }
    copy_libraries(&root, &elves)?;

    write_etc(&root)?;
    let init = root.join("init");
    fs::write(&init, init_script(tests)?)?;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755))?;

    let cpio = work.join("initramfs.cpio");
    write_cpio(&root, &cpio)?;
    fs::remove_dir_all(&root)?;
    Ok(cpio)
}

/// Copies a binary without its debug info (the dev-profile test binaries are ~60 MiB each).
fn strip_into(src: &Path, dst: &Path) -> anyhow::Result<()> {
    util::run(Command::new("objcopy").arg("--strip-debug").arg(src).arg(dst))
        .with_context(|| format!("copying {} without debug info", src.display()))
}

/// Every shared library (and the loader) the binaries need, at the same paths in the guest.
fn copy_libraries(root: &Path, elves: &[PathBuf]) -> anyhow::Result<()> {
    let mut libs = BTreeSet::new();
    for elf in elves {
        let out = util::output(Command::new("ldd").arg(elf))?;
        for line in out.lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
            let path = line.split("=>").last().unwrap_or(line).split_whitespace().next().unwrap_or("");
            if path.starts_with('/') {
                libs.insert(PathBuf::from(path));
            }
        }
    }
    for lib in libs {
        let rel = lib.strip_prefix("/").context("absolute")?;
        let dst = root.join(rel);
        // The guest's /lib and /lib64 are links into /usr, as on the host.
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent)?;
        }
        if !dst.exists() {
            fs::copy(&lib, &dst).with_context(|| format!("copying {}", lib.display()))?;
        }
    }
    Ok(())
}

fn write_etc(root: &Path) -> anyhow::Result<()> {
    let etc = root.join("etc");
    let files: [(&str, &str, u32); 7] = [
        (
            "passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
            0o644,
        ),
        ("group", "root:x:0:\nnogroup:x:65534:\n", 0o644),
        // Root-only, so an unprivileged `cat /etc/shadow` fails with EACCES (file tests).
        ("shadow", "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0o640),
        ("hostname", "vm-guest\n", 0o644),
        ("hosts", "127.0.0.1 localhost\n::1 localhost\n", 0o644),
        ("machine-id", "5e11507e57000000000000000000cafe\n", 0o444),
        ("nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n", 0o644),
    ];
    for (name, text, mode) in files {
        let path = etc.join(name);
        fs::write(&path, text)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// The guest's /init (busybox sh): mounts, loopback, a sensor start-up report, each test
/// binary between start/end markers with its exit code, then power off.
fn init_script(tests: &[TestBin]) -> anyhow::Result<String> {
    let mut s = String::from(
        r#"#!/bin/sh
export PATH=/usr/bin LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu HOME=/root TMPDIR=/tmp RUST_BACKTRACE=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tracefs tracefs /sys/kernel/tracing
mount -t securityfs securityfs /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
hostname vm-guest
M=@@VMTEST
echo "$M kernel $(uname -r)"
echo "$M lsm $(cat /sys/kernel/security/lsm 2>/dev/null)"
if [ ! -e /sys/kernel/btf/vmlinux ]; then
    echo "$M unsupported no BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)"
    poweroff -f
fi
# What the sensor attaches on this kernel, and what it switches off (and why, with the
# verifier's log when it refused a program), with each program's verification time and
# instruction count, and how long the stop took to release them. If it does not start, the
# tests cannot run.
echo "$M start sensor-startup"
SENSOR_LOG=info,sensor::loader=debug,sensor::kernel=debug,sensor::links=debug,sensor::enrich=warn,sensor::pipeline=warn NO_COLOR=1 /t/sensor run --duration 1 --output jsonl:/dev/null >/tmp/startup.log 2>&1
rc=$?
cat /tmp/startup.log
echo "$M end sensor-startup rc=$rc"
if [ $rc -ne 0 ]; then
    echo "$M nostart $(grep -m1 -E 'ERROR|Error' /tmp/startup.log | cut -c1-240)"
    poweroff -f
fi
if grep -q vmtest.startup_only /proc/cmdline; then
    echo "$M done"
    poweroff -f
fi
cd /t
"#,
    );
    for t in tests {
        let file = t.path.file_name().and_then(|n| n.to_str()).context("test binary name")?;
        if t.name.contains(char::is_whitespace) || t.args.iter().any(|a| a.contains('\'')) {
            bail!("test name/arguments must be shell-safe: {t:?}");
        }
        let args: Vec<String> = t.args.iter().map(|a| format!("'{a}'")).collect();
        let env = if t.fentry_off { "SENSOR_TEST_SYSCALL_FENTRY=false " } else { "" };
        let mut run = format!(
            "echo \"$M start {n}\"\n{env}./deps/{file} --test-threads=1 {a} 2>&1\necho \"$M end {n} rc=$?\"\n",
            n = t.name,
            a = args.join(" "),
        );
        if t.fentry_off {
            run = format!(
                "if grep -q 'programs attached.*syscalls=\"fentry\"' /tmp/startup.log; then\n{run}else\n\
                 echo \"$M off {n} the sensor does not take the fentry path on this kernel: the other runs test its fallback\"\nfi\n",
                n = t.name
            );
        }
        match &t.collector {
            Some(c) => s.push_str(&format!(
                "if grep -q 'collector disabled on this kernel collector=\"{c}\"' /tmp/startup.log; then\n\
                 echo \"$M off {n} the sensor switched the {c} collector off on this kernel\"\nelse\n{run}fi\n",
                n = t.name
            )),
            None => s.push_str(&run),
        }
    }
    s.push_str("echo \"$M done\"\npoweroff -f\n");
    Ok(s)
}

/// Writes the tree at `root` as a newc cpio archive, every entry owned by root.
fn write_cpio(root: &Path, out: &Path) -> anyhow::Result<()> {
    let mut w = BufWriter::new(fs::File::create(out)?);
    let mut entries = Vec::new();
    collect(root, root, &mut entries)?;
    for (ino, rel) in (1u32..).zip(&entries) {
        let path = root.join(rel);
        let meta = fs::symlink_metadata(&path)?;
        let data = if meta.file_type().is_symlink() {
            fs::read_link(&path)?.into_os_string().into_encoded_bytes()
        } else if meta.is_file() {
            fs::read(&path)?
        } else {
            Vec::new()
        };
        let name = rel.to_str().context("non-UTF-8 path in the rootfs")?;
        let nlink = if meta.is_dir() { 2 } else { 1 };
        cpio_entry(&mut w, name, meta.permissions().mode(), nlink, ino, &data)?;
    }
    cpio_entry(&mut w, "TRAILER!!!", 0, 1, 0, &[])?;
    w.flush()?;
    Ok(())
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut children: Vec<_> = fs::read_dir(dir)?.filter_map(Result::ok).collect();
    children.sort_by_key(fs::DirEntry::file_name);
    for child in children {
        let path = child.path();
        out.push(path.strip_prefix(root)?.to_owned());
        if child.file_type()?.is_dir() {
            collect(root, &path, out)?;
        }
    }
    Ok(())
}

fn cpio_entry(
    w: &mut impl std::io::Write,
    name: &str,
    mode: u32,
    nlink: u32,
    ino: u32,
    data: &[u8],
) -> anyhow::Result<()> {
    let size = u32::try_from(data.len()).context("file too large for cpio")?;
    let namesize = u32::try_from(name.len() + 1)?;
    // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
    // rdevminor, namesize, check
    let header = format!(
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{namesize:08x}{:08x}",
        0, 0, 0, 0, 0, 0, 0, 0
    );
    w.write_all(header.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    pad(w, header.len() + name.len() + 1)?;
    w.write_all(data)?;
    pad(w, data.len())?;
    Ok(())
}

fn pad(w: &mut impl std::io::Write, len: usize) -> std::io::Result<()> {
    let n = (4 - len % 4) % 4;
    w.write_all(&[0u8; 3][..n])
}
