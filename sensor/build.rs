//! Builds the eBPF object (crate `sensor-ebpf`) with aya-build; it is embedded in the agent.
//! Also embeds the built-in detection rules (`rules/*.yml`).
use std::{
    env,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};
use object::build::elf::SectionData;

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let workspace = manifest.parent().context("workspace root")?;
    embed_rules(&workspace.join("rules"))?;

    // `cargo xtask setup` installs bpf-linker under target/tools; make it findable by the inner
    // eBPF build even when cargo is run directly rather than through xtask.
    let linker_dir = workspace.join("target/tools/bpf-linker/bin");
    println!("cargo:rerun-if-changed={}", linker_dir.display());
    if linker_dir.join("bpf-linker").exists() {
        let mut paths = vec![linker_dir];
        paths.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
        let path = env::join_paths(paths).context("joining PATH")?;
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { env::set_var("PATH", path) };
    }

    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(workspace.join("Cargo.toml"))
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "sensor-ebpf")
        .ok_or_else(|| anyhow!("sensor-ebpf package not found"))?;
    let root_dir = ebpf.manifest_path.parent().context("sensor-ebpf manifest dir")?.as_str();
    aya_build::build_ebpf(
        [Package { name: "sensor-ebpf", root_dir, ..Default::default() }],
        Toolchain::default(),
    )
    .context("building the eBPF programs (run `cargo xtask setup` if bpf-linker is missing)")?;
    let object = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR")?).join("sensor-ebpf");
    strip_dwarf(&object).with_context(|| format!("stripping the debug info of {}", object.display()))
}

/// Drops the DWARF sections (and their relocations) from the eBPF object. The eBPF crate is
/// built with debug info only so that bpf-linker can emit BTF; aya reads `.BTF` and `.BTF.ext`,
/// never DWARF, which was three quarters of the object embedded in the agent: every byte of it
/// is read when the object is parsed at start, and stayed in the sensor's resident memory.
fn strip_dwarf(path: &Path) -> anyhow::Result<()> {
    let data = std::fs::read(path)?;
    let mut elf = object::build::elf::Builder::read(&*data).map_err(|e| anyhow!("reading: {e}"))?;
    for section in elf.sections.iter_mut() {
        let name = section.name.as_slice();
        if [&b".debug_"[..], b".rel.debug_", b".rela.debug_"].iter().any(|p| name.starts_with(p)) {
            section.delete = true;
        }
    }
    elf.delete_orphans();
    // LLVM names the sections in the symbol string table; the writer wants a table of its own.
    if !elf.sections.iter().any(|s| matches!(s.data, SectionData::SectionString)) {
        let names = elf.sections.add();
        names.name = b".shstrtab"[..].into();
        names.sh_type = object::elf::SHT_STRTAB;
        names.sh_addralign = 1;
        names.data = SectionData::SectionString;
    }
    let mut out = Vec::with_capacity(data.len());
    elf.write(&mut out).map_err(|e| anyhow!("writing: {e}"))?;
    std::fs::write(path, out)?;
    Ok(())
}

/// Writes `builtin_rules.rs`: a slice of (file name, text) of every `rules/*.yml`, sorted.
fn embed_rules(dir: &Path) -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    let mut out = String::from("&[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_name().context("file name")?.to_string_lossy();
        writeln!(out, "    ({name:?}, include_str!({:?})),", f.display().to_string())?;
    }
    out.push(']');
    let dest = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR")?).join("builtin_rules.rs");
    std::fs::write(&dest, out).with_context(|| format!("writing {}", dest.display()))?;
    Ok(())
}
