//! `setup`: idempotent installation of what the build needs, and the mounts the sensor uses.
//!
//! - `rust-src` for the nightly toolchain (the eBPF crate is built with `-Z build-std=core`);
//! - bpf-linker 0.13 built against the nightly toolchain's own libLLVM (Debian 12 has no LLVM
//!   of the right major), with the LLVM prefix kept in `target/tools/llvm` so the binary's
//!   RUNPATH stays valid; rebuilt when the nightly's libLLVM changes;
//! - tracefs at /sys/kernel/tracing and bpffs at /sys/fs/bpf when absent (as root);
//! - rsyslog and its GnuTLS driver (Debian packages), the receiver the syslog output's
//!   integration tests run on loopback, when absent (as root, with apt-get);
//! - the C libraries librdkafka (the Kafka output) is built against: OpenSSL and zlib headers
//!   and pkg-config (Debian packages), when absent (as root, with apt-get);
//! - OpenSSH (server and client; Debian packages), for the integration test that logs in with
//!   `ssh -t`, when absent (as root, with apt-get).

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::util::{self, bpf_linker_bin, tools_dir};

/// The eBPF toolchain (aya-build uses `rustup run nightly`).
pub const NIGHTLY: &str = "nightly";
const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn setup(ws: &Path) -> anyhow::Result<()> {
    ensure_rust_src()?;
    ensure_build_libs();
    ensure_bpf_linker(ws)?;
    ensure_mounts();
    ensure_rsyslog();
    ensure_openssh();
    Ok(())
}

/// Installs openssh-server and openssh-client when `sshd` or `ssh` is missing. Failures are
/// reported, not fatal: only the `ssh -t` login test needs them, and says so.
fn ensure_openssh() {
    if !util::is_root() || (Path::new("/usr/sbin/sshd").exists() && Path::new("/usr/bin/ssh").exists()) {
        return;
    }
    eprintln!("xtask setup: installing openssh-server and openssh-client (for the ssh login test)");
    if let Err(e) = apt_install(&["openssh-server", "openssh-client"]) {
        eprintln!("xtask setup: could not install OpenSSH: {e:#}");
    }
}

fn ensure_rust_src() -> anyhow::Result<()> {
    let installed = util::output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]))
    .context("the nightly toolchain is required for the eBPF build (rustup toolchain install nightly)")?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("xtask setup: adding rust-src to the {NIGHTLY} toolchain");
    util::run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

/// The nightly's libLLVM shared library and its LLVM major version.
fn nightly_llvm() -> anyhow::Result<(PathBuf, String)> {
    let vv = util::output(Command::new("rustc").args([&format!("+{NIGHTLY}"), "-vV"]))?;
    let major = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("rustc -vV printed no LLVM version")?
        .to_owned();
    let sysroot = util::output(Command::new("rustc").args([&format!("+{NIGHTLY}"), "--print", "sysroot"]))?;
    let lib = PathBuf::from(sysroot.trim()).join("lib");
    let so = fs::read_dir(&lib)
        .with_context(|| format!("listing {}", lib.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libLLVM.so.")))
        .with_context(|| format!("no libLLVM.so.* in {}", lib.display()))?;
    Ok((so, major))
}

fn ensure_bpf_linker(ws: &Path) -> anyhow::Result<()> {
    let (so, major) = nightly_llvm()?;
    let stamp_text = format!("bpf-linker {BPF_LINKER_VERSION} llvm {major} {}\n", so.display());
    let bin = bpf_linker_bin(ws).join("bpf-linker");
    let stamp = tools_dir(ws).join("bpf-linker.stamp");
    if bin.exists() && fs::read_to_string(&stamp).is_ok_and(|s| s == stamp_text) {
        return Ok(());
    }
    eprintln!(
        "xtask setup: building bpf-linker {BPF_LINKER_VERSION} against the nightly's LLVM {major} (about a minute)"
    );
    // An LLVM "prefix" whose lib/ holds the nightly's libLLVM under the names the build looks for.
    let prefix = tools_dir(ws).join("llvm");
    let lib = prefix.join("lib");
    if lib.exists() {
        fs::remove_dir_all(&lib).with_context(|| format!("removing {}", lib.display()))?;
    }
    fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    let soname = so.file_name().context("libLLVM file name")?;
    symlink(&so, lib.join("libLLVM.so"))?;
    symlink(&so, lib.join(soname))?;
    let mut cmd = Command::new("cargo");
    cmd.args([
        "install",
        &format!("bpf-linker@{BPF_LINKER_VERSION}"),
        "--force",
        "--no-default-features",
        "--features",
        &format!("llvm-{major}"),
        "--root",
    ])
    .arg(tools_dir(ws).join("bpf-linker"))
    .env("LLVM_PREFIX", &prefix)
    // Build it with the default toolchain whatever the caller's override is.
    .env_remove("RUSTUP_TOOLCHAIN")
    .env_remove("CARGO_TARGET_DIR");
    util::run(&mut cmd).context("building bpf-linker")?;
    if !bin.exists() {
        bail!("bpf-linker was not installed at {}", bin.display());
    }
    fs::write(&stamp, stamp_text)?;
    Ok(())
}

/// Debian packages `vm-test` uses: QEMU, busybox-static (the guest's shell and tools) and
/// binutils (objcopy strips the test binaries). Installed with apt when missing (as root).
pub fn ensure_vm_packages() -> anyhow::Result<()> {
    let wanted = [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("/bin/busybox", "busybox-static"),
        ("objcopy", "binutils"),
    ];
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(cmd, _)| {
            if cmd.starts_with('/') {
                !Path::new(cmd).exists()
            } else {
                util::output(Command::new("sh").args(["-c", &format!("command -v {cmd}")])).is_err()
            }
        })
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !util::is_root() {
        bail!("vm-test needs these Debian packages: {} (run as root to install them)", missing.join(" "));
    }
    eprintln!("xtask setup: installing {}", missing.join(" "));
    apt_install(&missing).context("installing the vm-test packages")
}

/// Mounts tracefs and bpffs if they are missing. Failures are reported, not fatal: the sensor
/// says what it needs when it starts.
fn ensure_mounts() {
    if !util::is_root() {
        return;
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for (fstype, target) in [("tracefs", "/sys/kernel/tracing"), ("bpf", "/sys/fs/bpf")] {
        let mounted = mounts.lines().any(|l| {
            let mut f = l.split(' ');
            f.nth(4) == Some(target) && l.split(" - ").nth(1).is_some_and(|t| t.starts_with(fstype))
        });
        if mounted {
            continue;
        }
        let res = util::run(Command::new("mount").args(["-t", fstype, fstype, target]));
        if let Err(e) = res {
            eprintln!("xtask setup: could not mount {fstype} at {target}: {e:#}");
        }
    }
}

/// Installs rsyslog and rsyslog-gnutls when `rsyslogd` or the TLS driver is missing. Failures
/// are reported, not fatal: only the syslog integration tests need them, and say so.
fn ensure_rsyslog() {
    if !util::is_root() {
        return;
    }
    let have_bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"].iter().any(|p| Path::new(p).exists());
    let have_tls = Path::new("/usr/lib/rsyslog/lmnsd_gtls.so").exists()
        || fs::read_dir("/usr/lib")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .any(|e| e.path().join("rsyslog/lmnsd_gtls.so").exists());
    if have_bin && have_tls {
        return;
    }
    eprintln!("xtask setup: installing rsyslog and rsyslog-gnutls (for the syslog output tests)");
    if let Err(e) = apt_install(&["rsyslog", "rsyslog-gnutls"]) {
        eprintln!("xtask setup: could not install rsyslog: {e:#}");
    }
}

/// Debian packages the build needs (librdkafka links the system OpenSSL and zlib), each with a
/// file that shows it is installed.
const BUILD_PACKAGES: &[(&str, &str)] = &[
    ("libssl-dev", "/usr/include/openssl/ssl.h"),
    ("zlib1g-dev", "/usr/include/zlib.h"),
    ("pkg-config", "/usr/bin/pkg-config"),
];

/// Installs the build's missing Debian packages. Failures are reported, not fatal: the build
/// then stops with the -sys crate's own message.
fn ensure_build_libs() {
    let missing: Vec<&str> =
        BUILD_PACKAGES.iter().filter(|(_, file)| !Path::new(file).exists()).map(|(pkg, _)| *pkg).collect();
    if missing.is_empty() {
        return;
    }
    if !util::is_root() {
        eprintln!(
            "xtask setup: the build needs {}; install them (apt-get install) or run as root",
            missing.join(" ")
        );
        return;
    }
    eprintln!("xtask setup: installing {} (librdkafka is built against them)", missing.join(" "));
    if let Err(e) = apt_install(&missing) {
        eprintln!("xtask setup: could not install {}: {e:#}", missing.join(" "));
    }
}

/// `apt-get install` without questions or recommends, updating the package lists first when
/// the install fails (a fresh machine may have none).
pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let apt = |args: &[&str]| {
        util::run(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(std::process::Stdio::null()),
        )
    };
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend_from_slice(packages);
    apt(&install).or_else(|_| apt(&["update", "-qq"]).and_then(|()| apt(&install)))
}
