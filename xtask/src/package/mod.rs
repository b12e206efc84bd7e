//! `cargo xtask package`: the Debian package `target/package/sensor_VERSION_ARCH.deb`.
//!
//! The binary is built with cargo-zigbuild for `x86_64-unknown-linux-gnu.2.31`: zig links it
//! against glibc 2.31's symbol versions (Debian 11, Ubuntu 20.04 and newer), and the `vendored`
//! feature builds OpenSSL and zlib from source into librdkafka, so it needs nothing else of the
//! system than glibc and libgcc_s. The eBPF object is built and embedded by sensor/build.rs as
//! in every build. Man pages and shell completions come from the CLI's clap definitions
//! (`sensor/examples/sensor-docs.rs`, built in the same cargo run). The tree is assembled under
//! `target/package/root` and packed with `dpkg-deb`; the unit and maintainer scripts are in
//! `packaging/debian/`.

pub mod elf;
pub mod install_test;
mod tools;

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};

use crate::util::{self, cargo};

use elf::Needs;

/// The zig target: the host's architecture with glibc 2.31 symbol versions.
const GLIBC_SUFFIX: &str = "2.31";
const PACKAGE: &str = "sensor";
const MAINTAINER: &str = "sensor developers <sensor@localhost>";

/// Where things go in the package, besides the generated man pages and completions.
const UNIT: &str = "lib/systemd/system/sensor.service";
const CONFIG: &str = "etc/sensor/sensor.toml";
const RULES_DIR: &str = "etc/sensor/rules.d";
const STATE_DIR: &str = "var/lib/sensor";
const BINARY: &str = "usr/sbin/sensor";

/// Builds the package; returns its path.
pub fn package(ws: &Path) -> anyhow::Result<PathBuf> {
    let started = Instant::now();
    tools::ensure(ws)?;
    let (arch, triple) = arch()?;
    let target = format!("{triple}.{GLIBC_SUFFIX}");

    eprintln!("xtask package: building sensor for {target} (release, OpenSSL and zlib vendored)");
    let mut cmd = cargo(ws);
    cmd.args(["zigbuild", "--release", "--package", "sensor", "--features", "vendored"]).args([
        "--bin",
        "sensor",
        "--example",
        "sensor-docs",
        "--target",
        &target,
    ]);
    prepend_path(&mut cmd, &[tools::zig_dir(ws), tools::zigbuild_dir(ws)]);
    util::run(&mut cmd).context("building the packaged binary")?;
    let out = ws.join("target").join(triple).join("release");
    let binary = out.join("sensor");

    let needs = elf::needs(&binary)?;
    elf::check(&needs).with_context(|| format!("{} does not fit old systems", binary.display()))?;

    let pkg_dir = ws.join("target/package");
    let root = pkg_dir.join("root");
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    stage(ws, &root, &binary, &out.join("examples/sensor-docs"))?;
    let version = env!("CARGO_PKG_VERSION");
    write_control(&root, version, arch, &needs)?;

    let deb = pkg_dir.join(format!("{PACKAGE}_{version}_{arch}.deb"));
    util::run(Command::new("dpkg-deb").args(["--root-owner-group", "-Zxz", "--build"]).arg(&root).arg(&deb))?;
    eprintln!(
        "xtask package: {} ({} KiB) in {:.0} s; binary needs {:?}, glibc {}",
        deb.display(),
        fs::metadata(&deb)?.len() / 1024,
        started.elapsed().as_secs_f64(),
        needs.libraries,
        needs.glibc.map_or_else(|| "none (static)".to_owned(), |(a, b, c)| format!("{a}.{b}.{c}")),
    );
    Ok(deb)
}

/// Debian architecture and Rust target triple of the host.
fn arch() -> anyhow::Result<(&'static str, &'static str)> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(("amd64", "x86_64-unknown-linux-gnu")),
        "aarch64" => Ok(("arm64", "aarch64-unknown-linux-gnu")),
        other => bail!("packaging for {other} is not supported"),
    }
}

fn prepend_path(cmd: &mut Command, dirs: &[PathBuf]) {
    let current = cmd
        .get_envs()
        .find(|(k, _)| *k == "PATH")
        .and_then(|(_, v)| v.map(ToOwned::to_owned))
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let mut paths = dirs.to_vec();
    paths.extend(std::env::split_paths(&current));
    if let Ok(joined) = std::env::join_paths(paths) {
        cmd.env("PATH", joined);
    }
}

/// Assembles the installed tree under `root` (modes set here; dpkg-deb makes root the owner).
fn stage(ws: &Path, root: &Path, binary: &Path, docs_tool: &Path) -> anyhow::Result<()> {
    let deb_src = ws.join("packaging/debian");
    put(binary, &root.join(BINARY), 0o755)?;
    util::run(Command::new("strip").arg("--strip-unneeded").arg(root.join(BINARY)))?;
    put(&deb_src.join("sensor.service"), &root.join(UNIT), 0o644)?;
    // May hold Kafka SASL passwords: root only.
    put(&ws.join("docs/sensor.example.toml"), &root.join(CONFIG), 0o600)?;
    mkdir(&root.join(RULES_DIR), 0o755)?;
    mkdir(&root.join(STATE_DIR), 0o700)?;

    // Man pages and completions from the clap definitions.
    let gen_dir = root.parent().context("staging root has a parent")?.join("generated");
    if gen_dir.exists() {
        fs::remove_dir_all(&gen_dir)?;
    }
    util::run(Command::new(docs_tool).arg(&gen_dir))?;
    let man8 = root.join("usr/share/man/man8");
    let mut pages = 0;
    for entry in fs::read_dir(gen_dir.join("man"))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).context("man page name")?;
        put(&path, &man8.join(name), 0o644)?;
        pages += 1;
    }
    if pages < 2 {
        bail!("sensor-docs wrote {pages} man pages; expected sensor(8) and one per subcommand");
    }
    // Debian compresses man pages; -n keeps the package reproducible (no name or time stamp).
    util::run(Command::new("sh").arg("-c").arg("gzip -9n \"$0\"/*.8").arg(&man8))?;
    let comp = gen_dir.join("completions");
    put(&comp.join("sensor.bash"), &root.join("usr/share/bash-completion/completions/sensor"), 0o644)?;
    put(&comp.join("_sensor"), &root.join("usr/share/zsh/vendor-completions/_sensor"), 0o644)?;
    put(&comp.join("sensor.fish"), &root.join("usr/share/fish/vendor_completions.d/sensor.fish"), 0o644)?;
    put(&deb_src.join("copyright"), &root.join("usr/share/doc/sensor/copyright"), 0o644)?;

    let control = root.join("DEBIAN");
    mkdir(&control, 0o755)?;
    for script in ["postinst", "prerm", "postrm"] {
        put(&deb_src.join(script), &control.join(script), 0o755)?;
    }
    fs::write(control.join("conffiles"), format!("/{CONFIG}\n"))?;
    write_md5sums(root)
}

/// Copies `from` to `to` (creating parent directories 0755) with `mode`.
fn put(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        mkdir(parent, 0o755)?;
    }
    fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn mkdir(dir: &Path, mode: u32) -> anyhow::Result<()> {
    let mut missing = vec![];
    let mut d = dir;
    while !d.exists() {
        missing.push(d.to_owned());
        d = d.parent().context("directory has a parent")?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for m in missing {
        let mode = if m == dir { mode } else { 0o755 };
        fs::set_permissions(&m, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// DEBIAN/md5sums for every file but the conffiles (dpkg tracks those itself).
fn write_md5sums(root: &Path) -> anyhow::Result<()> {
    let list =
        util::output(Command::new("find").current_dir(root).args(["usr", "lib", "-type", "f", "-print"]))?;
    let mut files: Vec<&str> = list.lines().collect();
    files.sort_unstable();
    let sums = util::output(Command::new("md5sum").current_dir(root).args(&files))?;
    fs::write(root.join("DEBIAN/md5sums"), sums)?;
    Ok(())
}

fn write_control(root: &Path, version: &str, arch: &str, needs: &Needs) -> anyhow::Result<()> {
    let kib = util::output(Command::new("du").args(["-sk", "--exclude=DEBIAN"]).arg(root))?;
    let kib = kib.split_whitespace().next().context("du printed nothing")?;
    let control = format!(
        "Package: {PACKAGE}\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: {MAINTAINER}\n\
         Installed-Size: {kib}\n\
         {}\
         Section: admin\n\
         Priority: optional\n\
         Description: eBPF audit telemetry for Linux fleets\n \
         sensor watches a machine from inside the kernel with eBPF and writes audit\n \
         records: which process did something, started by whom, from which login\n \
         session, and what it did (exec, file, network, DNS, privilege changes).\n \
         Records go to local verifiable files, syslog over TLS or Kafka.\n",
        match depends(needs) {
            d if d.is_empty() => String::new(),
            d => format!("Depends: {d}\n"),
        },
    );
    fs::write(root.join("DEBIAN/control"), control)?;
    Ok(())
}

/// Depends from what the binary needs: glibc from the newest symbol version it uses, and
/// libgcc's unwinder under its Debian 11+ or Debian 10 name.
fn depends(needs: &Needs) -> String {
    let mut deps = vec![match needs.glibc {
        Some((a, b, _)) => format!("libc6 (>= {a}.{b})"),
        None => return String::new(),
    }];
    if needs.libraries.iter().any(|l| l == "libgcc_s.so.1") {
        deps.push("libgcc-s1 | libgcc1".to_owned());
    }
    deps.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_follow_the_binary() {
        let n =
            Needs { libraries: vec!["libgcc_s.so.1".into(), "libc.so.6".into()], glibc: Some((2, 30, 0)) };
        assert_eq!(depends(&n), "libc6 (>= 2.30), libgcc-s1 | libgcc1");
        let n = Needs { libraries: vec!["libc.so.6".into()], glibc: Some((2, 17, 0)) };
        assert_eq!(depends(&n), "libc6 (>= 2.17)");
    }
}
