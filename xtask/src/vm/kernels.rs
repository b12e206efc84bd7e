//! The kernels of the matrix: Debian cloud kernels fetched with `apt-get download` through a
//! throwaway apt configuration (its own sources, lists and cache under `target/vm/apt`; the
//! machine's apt sources are read, never touched: their Debian mirror URIs are reused with the
//! suites below), cached under `target/vm/kernels/<label>/`.
//!
//! Package ABI names move with security updates (`linux-image-5.10.0-46-…` today, `-47-`
//! tomorrow), so the name is resolved against the throwaway lists: the highest ABI number that
//! matches the pattern and has an install candidate. A cached kernel is reused as it is.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use super::mirrors;
use crate::util;

/// One kernel of the matrix and the Debian package that provides it.
#[derive(Debug, Clone)]
pub struct KernelSpec {
    /// What `--kernel` selects and the matrix shows ("5.10").
    pub label: String,
    /// (major, minor), to compare with the sensor's minimum.
    pub version: (u32, u32),
    /// Package name prefix; the rest is `<N>[+debNN]-cloud-amd64`.
    pub prefix: String,
    /// This machine's own kernel series.
    pub host: bool,
}

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub spec: KernelSpec,
    pub vmlinuz: PathBuf,
    /// Where it came from ("linux-image-… 5.10.262-1" or a /boot path).
    pub origin: String,
}

/// Debian suites that carry the kernels, asked of the machine's own Debian archive:
/// bookworm (6.1, 6.12), trixie-backports (6.18), sid (7.2); and of its security archive:
/// bookworm-security (6.1), bullseye-security (5.10).
const ARCHIVE_SUITES: [&str; 3] = ["bookworm", "trixie-backports", "sid"];
const SECURITY_SUITES: [&str; 2] = ["bookworm-security", "bullseye-security"];

/// The matrix: 5.10 (bullseye), 6.1 and 6.12 (bookworm), 7.2 (sid), plus the host's series.
pub fn matrix() -> Vec<KernelSpec> {
    let mut specs: Vec<KernelSpec> = [
        ("5.10", (5, 10), "linux-image-5.10.0-"),
        ("6.1", (6, 1), "linux-image-6.1.0-"),
        ("6.12", (6, 12), "linux-image-6.12."),
        // sid ships the image in linux-binary-* (usr/lib/modules/<ver>/vmlinuz).
        ("7.2", (7, 2), "linux-binary-7.2."),
    ]
    .into_iter()
    .map(|(label, version, prefix)| KernelSpec {
        label: label.to_owned(),
        version,
        prefix: prefix.to_owned(),
        host: false,
    })
    .collect();
    if let Some(host) = host_spec() {
        match specs.iter_mut().find(|s| s.version == host.version) {
            Some(s) => s.host = true,
            None => specs.push(host),
        }
    }
    specs.sort_by_key(|s| s.version);
    specs
}

/// This machine's kernel series (`uname -r`), fetched from Debian like the others when /boot
/// has no image for it.
fn host_spec() -> Option<KernelSpec> {
    let release = util::output(Command::new("uname").arg("-r")).ok()?;
    let version = parse_major_minor(release.trim())?;
    let prefix = if version.0 >= 7 { "linux-binary-" } else { "linux-image-" };
    Some(KernelSpec {
        label: format!("{}.{}", version.0, version.1),
        version,
        prefix: format!("{prefix}{}.{}.", version.0, version.1),
        host: true,
    })
}

fn parse_major_minor(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The kernels to run: all of the matrix, or those named by `--kernel` (label or "host").
pub fn select(wanted: &[String]) -> anyhow::Result<Vec<KernelSpec>> {
    let all = matrix();
    if wanted.is_empty() {
        return Ok(all);
    }
    wanted
        .iter()
        .map(|w| {
            all.iter().find(|s| &s.label == w || (w == "host" && s.host)).cloned().with_context(|| {
                let labels: Vec<&str> = all.iter().map(|s| s.label.as_str()).collect();
                format!("unknown kernel {w}; the matrix has {} and host", labels.join(", "))
            })
        })
        .collect()
}

/// Fetches (or reuses) the kernel image of each spec.
pub fn fetch_all(ws: &Path, specs: &[KernelSpec]) -> anyhow::Result<Vec<Kernel>> {
    let mut apt = Apt::new(ws)?;
    specs.iter().map(|s| fetch(ws, &mut apt, s)).collect()
}

fn fetch(ws: &Path, apt: &mut Apt, spec: &KernelSpec) -> anyhow::Result<Kernel> {
    let dir = ws.join("target/vm/kernels").join(&spec.label);
    let vmlinuz = dir.join("vmlinuz");
    let origin_file = dir.join("origin");
    if vmlinuz.exists()
        && let Ok(origin) = fs::read_to_string(&origin_file)
    {
        return Ok(Kernel { spec: spec.clone(), vmlinuz, origin: origin.trim().to_owned() });
    }
    if spec.host
        && let Ok(release) = util::output(Command::new("uname").arg("-r"))
    {
        let boot = PathBuf::from(format!("/boot/vmlinuz-{}", release.trim()));
        if boot.exists() {
            return Ok(Kernel {
                spec: spec.clone(),
                vmlinuz: boot.clone(),
                origin: boot.display().to_string(),
            });
        }
    }
    apt.update()?;
    let (package, version) = apt.resolve(&spec.prefix)?;
    eprintln!("xtask vm-test: fetching {package} {version}");
    let work = dir.join("download");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;
    util::run(
        apt.cmd("apt-get").current_dir(&work).args(["download", "-q"]).arg(format!("{package}={version}")),
    )?;
    let deb = fs::read_dir(&work)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let image = extract_vmlinuz(&deb, &work)?;
    fs::rename(&image, &vmlinuz)?;
    fs::remove_dir_all(&work)?;
    let origin = format!("{package} {version}");
    fs::write(&origin_file, format!("{origin}\n"))?;
    Ok(Kernel { spec: spec.clone(), vmlinuz, origin })
}

/// `dpkg-deb --fsys-tarfile DEB | tar -x '*vmlinuz*'`; returns the image's path.
fn extract_vmlinuz(deb: &Path, into: &Path) -> anyhow::Result<PathBuf> {
    let mut dpkg = Command::new("dpkg-deb").arg("--fsys-tarfile").arg(deb).stdout(Stdio::piped()).spawn()?;
    let tar_in = dpkg.stdout.take().context("dpkg-deb stdout")?;
    let status = Command::new("tar")
        .current_dir(into)
        .args(["-x", "--wildcards", "--no-anchored", "vmlinuz*"])
        .stdin(tar_in)
        .status()?;
    let dpkg_status = dpkg.wait()?;
    if !status.success() || !dpkg_status.success() {
        bail!("extracting the kernel image from {} failed", deb.display());
    }
    find_file(into, "vmlinuz").with_context(|| format!("no vmlinuz in {}", deb.display()))
}

fn find_file(dir: &Path, prefix: &str) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        let ty = entry.file_type().ok()?;
        if ty.is_dir() {
            if let Some(found) = find_file(&path, prefix) {
                return Some(found);
            }
        } else if ty.is_file() && entry.file_name().to_string_lossy().starts_with(prefix) {
            return Some(path);
        }
    }
    None
}

/// apt with its own configuration file, sources, lists and cache.
struct Apt {
    conf: PathBuf,
    updated: bool,
}

impl Apt {
    fn new(ws: &Path) -> anyhow::Result<Self> {
        let root = ws.join("target/vm/apt");
        for d in ["lists/partial", "cache/archives/partial", "parts", "sources.d"] {
            fs::create_dir_all(root.join(d))?;
        }
        let mirrors = mirrors::debian_mirrors(&mirrors::machine_sources(Path::new("/etc/apt")))?;
        if mirrors.security_derived {
            eprintln!(
                "xtask vm-test: no Debian security archive in this machine's apt sources; using {}",
                mirrors.security.uri
            );
        }
        fs::write(root.join("sources.list"), mirrors.sources_list(&ARCHIVE_SUITES, &SECURITY_SUITES))?;
        let status = root.join("status");
        if !status.exists() {
            fs::write(&status, "")?;
        }
        let r = root.display();
        let conf = root.join("apt.conf");
        fs::write(
            &conf,
            format!(
                "Dir::Etc::SourceList \"{r}/sources.list\";\n\
                 Dir::Etc::SourceParts \"{r}/sources.d\";\n\
                 Dir::Etc::Parts \"{r}/parts\";\n\
                 Dir::State::Lists \"{r}/lists\";\n\
                 Dir::State::status \"{r}/status\";\n\
                 Dir::Cache \"{r}/cache\";\n\
                 APT::Architecture \"amd64\";\n\
                 APT::Architectures {{ \"amd64\"; }};\n\
                 APT::Sandbox::User \"root\";\n\
                 Acquire::Languages \"none\";\n\
                 Acquire::Check-Valid-Until \"false\";\n"
            ),
        )?;
        Ok(Self { conf, updated: false })
    }

    fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("APT_CONFIG", &self.conf);
        cmd
    }

    fn update(&mut self) -> anyhow::Result<()> {
        if self.updated {
            return Ok(());
        }
        eprintln!("xtask vm-test: apt-get update (throwaway lists under target/vm/apt)");
        util::run(self.cmd("apt-get").args(["update", "-qq"])).context("apt-get update (throwaway lists)")?;
        self.updated = true;
        Ok(())
    }

    /// The newest `<prefix><N>[+debNN]-cloud-amd64` with an install candidate, and its version.
    fn resolve(&self, prefix: &str) -> anyhow::Result<(String, String)> {
        let names = util::output(self.cmd("apt-cache").args(["pkgnames", prefix]))?;
        let mut candidates: Vec<(u32, String)> = names
            .lines()
            .filter_map(|name| {
                let middle = name.strip_prefix(prefix)?.strip_suffix("-cloud-amd64")?;
                let (abi, rest) = middle.split_once('+').unwrap_or((middle, "deb"));
                let deb_ok = rest.strip_prefix("deb").is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
                (deb_ok && !abi.is_empty()).then_some(())?;
                Some((abi.parse().ok()?, name.to_owned()))
            })
            .collect();
        candidates.sort();
        for (_, name) in candidates.iter().rev() {
            let policy = util::output(self.cmd("apt-cache").args(["policy", name]))?;
            let candidate = policy.lines().find_map(|l| l.trim().strip_prefix("Candidate: "));
            if let Some(v) = candidate.filter(|v| *v != "(none)") {
                return Ok((name.clone(), v.to_owned()));
            }
        }
        bail!("no package {prefix}<N>-cloud-amd64 with an install candidate in the throwaway apt lists")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_minor_of_a_release() {
        assert_eq!(parse_major_minor("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_major_minor("5.10.0-46-cloud-amd64"), Some((5, 10)));
        assert_eq!(parse_major_minor("x"), None);
    }
}
