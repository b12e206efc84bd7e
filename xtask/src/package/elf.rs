//! What a built binary needs from the system it runs on: its shared libraries (`NEEDED`) and
//! the newest glibc symbol version it references, read from `objdump -p`.

use std::{path::Path, process::Command};

use anyhow::{Context as _, bail};

use crate::util;

/// The glibc the package supports at least: Debian 11 (bullseye), Ubuntu 20.04.
pub const MAX_GLIBC: (u32, u32) = (2, 31);

/// Shared libraries the packaged binary may need: glibc's own (with its dynamic loader) and
/// libgcc's unwinder, which every Debian and Ubuntu release has. Anything else (libssl, libz,
/// ...) must be static.
const ALLOWED_NEEDED: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    "libgcc_s.so.1",
];

#[derive(Debug, PartialEq, Eq)]
pub struct Needs {
    /// `NEEDED` entries of the dynamic section; empty for a static binary.
    pub libraries: Vec<String>,
    /// The newest `GLIBC_x.y[.z]` version referenced, if any.
    pub glibc: Option<(u32, u32, u32)>,
}

pub fn needs(binary: &Path) -> anyhow::Result<Needs> {
    let text = util::output(Command::new("objdump").arg("-p").arg(binary))
        .with_context(|| format!("objdump -p {}", binary.display()))?;
    Ok(parse_objdump(&text))
}

/// Fails unless `needs` fits every system the package supports.
pub fn check(needs: &Needs) -> anyhow::Result<()> {
    let extra: Vec<&String> =
        needs.libraries.iter().filter(|l| !ALLOWED_NEEDED.contains(&l.as_str())).collect();
    if !extra.is_empty() {
        bail!("the binary needs shared libraries beyond glibc and libgcc: {extra:?}");
    }
    if let Some(v) = needs.glibc
        && (v.0, v.1) > MAX_GLIBC
    {
        bail!(
            "the binary needs glibc {}.{}.{} symbols; at most {}.{} is allowed",
            v.0,
            v.1,
            v.2,
            MAX_GLIBC.0,
            MAX_GLIBC.1
        );
    }
    Ok(())
}

pub fn parse_objdump(text: &str) -> Needs {
    let libraries =
        text.lines().filter_map(|l| l.trim().strip_prefix("NEEDED")).map(|l| l.trim().to_owned()).collect();
    let glibc = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(parse_version)
        .max();
    Needs { libraries, glibc }
}

fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.').map(str::parse::<u32>);
    let major = it.next()?.ok()?;
    let minor = it.next()?.ok()?;
    let patch = match it.next() {
        Some(p) => p.ok()?,
        None => 0,
    };
    it.next().is_none().then_some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJDUMP: &str = "
sensor:     file format elf64-x86-64

Dynamic Section:
  NEEDED               libgcc_s.so.1
  NEEDED               libc.so.6
  FLAGS_1              0x0000000008000001

Version References:
  required from libgcc_s.so.1:
    0x0b792650 0x00 06 GCC_3.0
  required from libc.so.6:
    0x09691a75 0x00 09 GLIBC_2.2.5
    0x06969191 0x00 13 GLIBC_2.11
    0x06969197 0x00 10 GLIBC_2.17
    0x0696919a 0x00 05 GLIBC_2.30
";

    #[test]
    fn reads_libraries_and_the_newest_glibc() {
        let n = parse_objdump(OBJDUMP);
        assert_eq!(n.libraries, ["libgcc_s.so.1", "libc.so.6"]);
        assert_eq!(n.glibc, Some((2, 30, 0)));
        check(&n).expect("fits");
    }

    #[test]
    fn too_new_glibc_or_extra_libraries_fail() {
        let n = parse_objdump(&OBJDUMP.replace("GLIBC_2.30", "GLIBC_2.34"));
        assert!(check(&n).expect_err("2.34").to_string().contains("glibc 2.34.0"));
        let n = parse_objdump(&OBJDUMP.replace("NEEDED               libc.so.6", "NEEDED libssl.so.3"));
        assert!(check(&n).expect_err("libssl").to_string().contains("libssl.so.3"));
    }

    #[test]
    fn a_static_binary_needs_nothing() {
        let n = parse_objdump("sensor:     file format elf64-x86-64\n");
        assert_eq!(n, Needs { libraries: vec![], glibc: None });
        check(&n).expect("static");
    }
}
