//! Small helpers: the workspace root, running commands with the project's PATH.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// The workspace root (parent of this crate).
pub fn workspace_root() -> anyhow::Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest.parent().context("xtask has no parent directory")?.to_owned())
}

/// Where setup puts the tools it builds (inside the project's build directory).
pub fn tools_dir(ws: &Path) -> PathBuf {
    ws.join("target").join("tools")
}

/// Directory holding the bpf-linker binary.
pub fn bpf_linker_bin(ws: &Path) -> PathBuf {
    tools_dir(ws).join("bpf-linker").join("bin")
}

/// A `cargo` command (the toolchain xtask runs with) in the workspace, with bpf-linker on PATH.
pub fn cargo(ws: &Path) -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(ws);
    with_tools_path(&mut cmd, ws);
    cmd
}

/// Puts the project's tools first on the command's PATH.
pub fn with_tools_path(cmd: &mut Command, ws: &Path) {
    let mut paths = vec![bpf_linker_bin(ws)];
    paths.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
    if let Ok(joined) = env::join_paths(paths) {
        cmd.env("PATH", joined);
    }
}

/// Runs a command, failing with its rendering when it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Runs a command and returns its stdout as text.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when running as root.
pub fn is_root() -> bool {
    // `id -u` avoids a libc dependency for one call.
    output(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0")
}
