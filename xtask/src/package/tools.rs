//! The packaging tools, installed on first use into `target/tools/` (idempotent, version-stamped
//! like bpf-linker in setup.rs):
//!
//! - zig, from the Python package index's `ziglang` wheel (`pip install --target`, no system
//!   change): the C compiler and linker that targets an old glibc's symbol versions;
//! - cargo-zigbuild (crate registry, `cargo install`): runs cargo with zig as the C compiler and
//!   linker for `x86_64-unknown-linux-gnu.2.31`;
//! - binutils (Debian package): `objdump` for the symbol-version check, `strip`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{
    setup,
    util::{self, tools_dir},
};

const ZIG_VERSION: &str = "0.15.2";
const ZIGBUILD_VERSION: &str = "0.24.1";

/// Directory holding the `zig` executable.
pub fn zig_dir(ws: &Path) -> PathBuf {
    tools_dir(ws).join("zig").join("ziglang")
}

/// Directory holding `cargo-zigbuild`.
pub fn zigbuild_dir(ws: &Path) -> PathBuf {
    tools_dir(ws).join("cargo-zigbuild").join("bin")
}

pub fn ensure(ws: &Path) -> anyhow::Result<()> {
    ensure_binutils()?;
    ensure_zig(ws)?;
    ensure_zigbuild(ws)
}

fn ensure_binutils() -> anyhow::Result<()> {
    if ["objdump", "strip"].iter().all(|t| util::output(Command::new(t).arg("--version")).is_ok()) {
        return Ok(());
    }
    if !util::is_root() {
        bail!("packaging needs binutils (objdump, strip): apt-get install binutils, or run as root");
    }
    eprintln!("xtask package: installing binutils (objdump, strip)");
    setup::apt_install(&["binutils"]).context("installing binutils")
}

fn ensure_zig(ws: &Path) -> anyhow::Result<()> {
    let zig = zig_dir(ws).join("zig");
    let have = util::output(Command::new(&zig).arg("version")).unwrap_or_default();
    if have.trim() == ZIG_VERSION {
        return Ok(());
    }
    eprintln!("xtask package: installing zig {ZIG_VERSION} (the `ziglang` wheel) into target/tools/zig");
    let dest = tools_dir(ws).join("zig");
    if dest.exists() {
        fs::remove_dir_all(&dest).with_context(|| format!("removing {}", dest.display()))?;
    }
    // `--target` installs into a plain directory: no virtual environment, nothing system-wide.
    let mut pip = Command::new("python3");
    pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"])
        .args(["--only-binary", ":all:", "--target"])
        .arg(&dest)
        .arg(format!("ziglang=={ZIG_VERSION}"));
    if util::run(&mut pip).is_err() {
        // A fresh Debian machine may have python3 without pip.
        if !util::is_root() {
            bail!("installing zig needs pip (apt-get install python3-pip, or run as root)");
        }
        setup::apt_install(&["python3-pip"]).context("installing python3-pip")?;
        util::run(&mut pip).context("pip install ziglang")?;
    }
    let got = util::output(Command::new(&zig).arg("version")).context("running the installed zig")?;
    if got.trim() != ZIG_VERSION {
        bail!("{} reports version {}, expected {ZIG_VERSION}", zig.display(), got.trim());
    }
    Ok(())
}

fn ensure_zigbuild(ws: &Path) -> anyhow::Result<()> {
    let bin = zigbuild_dir(ws).join("cargo-zigbuild");
    let have = util::output(Command::new(&bin).arg("--version")).unwrap_or_default();
    if have.split_whitespace().nth(1) == Some(ZIGBUILD_VERSION) {
        return Ok(());
    }
    eprintln!("xtask package: building cargo-zigbuild {ZIGBUILD_VERSION} (about 2 minutes)");
    let mut cmd = Command::new("cargo");
    cmd.args(["install", &format!("cargo-zigbuild@{ZIGBUILD_VERSION}"), "--locked", "--force"])
        .args(["--no-default-features", "--root"])
        .arg(tools_dir(ws).join("cargo-zigbuild"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR");
    util::run(&mut cmd).context("building cargo-zigbuild")
}
