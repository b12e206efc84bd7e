//! tracefs: mounting it when absent, tracepoint ids and record field offsets from format files.

use std::{collections::HashMap, path::PathBuf};

use anyhow::{Context as _, bail};
use tracing::{debug, info};

/// Where tracefs lives on current kernels.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Mounts tracefs at [`TRACEFS`] when no tracefs is reachable (classic tracepoints need it).
pub fn ensure_mounted() -> anyhow::Result<()> {
    let events = PathBuf::from(TRACEFS).join("events");
    if events.is_dir() || PathBuf::from("/sys/kernel/debug/tracing/events").is_dir() {
        return Ok(());
    }
    info!(path = TRACEFS, "mounting tracefs");
    nix::mount::mount(Some("tracefs"), TRACEFS, Some("tracefs"), nix::mount::MsFlags::empty(), None::<&str>)
        .with_context(|| format!("mounting tracefs at {TRACEFS}"))?;
    Ok(())
}

fn event_dir(category: &str, name: &str) -> PathBuf {
    let primary = PathBuf::from(TRACEFS).join("events").join(category).join(name);
    if primary.is_dir() {
        return primary;
    }
    PathBuf::from("/sys/kernel/debug/tracing/events").join(category).join(name)
}

/// The event id of a tracepoint (the `common_type` of its records).
pub fn event_id(category: &str, name: &str) -> anyhow::Result<u32> {
    let path = event_dir(category, name).join("id");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.trim().parse().with_context(|| format!("parsing {}", path.display()))
}

/// Field offsets of a tracepoint record, from its `format` file.
pub fn field_offsets(category: &str, name: &str) -> anyhow::Result<HashMap<String, u32>> {
    let path = event_dir(category, name).join("format");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(parse_format(&text))
}

/// Parses lines like `\tfield:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;`.
fn parse_format(text: &str) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut field = None;
        let mut offset = None;
        for part in line.split(';') {
            let part = part.trim();
            if let Some(decl) = part.strip_prefix("field:") {
                // The name is the last word, without any array suffix.
                field = decl.split_whitespace().last().map(|w| w.split('[').next().unwrap_or(w).to_owned());
            } else if let Some(o) = part.strip_prefix("offset:") {
                offset = o.trim().parse().ok();
            }
        }
        if let (Some(f), Some(o)) = (field, offset) {
            out.insert(f, o);
        }
    }
    out
}

/// Checks the record layout the syscall programs assume (`sensor-ebpf/src/syscalls.rs`).
pub fn check_syscall_layout() -> anyhow::Result<()> {
    let exit = field_offsets("syscalls", "sys_exit_setuid")?;
    let enter = field_offsets("syscalls", "sys_enter_ptrace")?;
    let expect = [(&exit, "ret", 16), (&enter, "request", 16), (&enter, "pid", 24)];
    for (fields, name, want) in expect {
        match fields.get(name) {
            Some(&got) if got == want => {}
            got => bail!("syscall tracepoint field `{name}` at {got:?}, expected {want}: unsupported layout"),
        }
    }
    debug!("syscall tracepoint layout checked");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_format_fields() {
        let text = "name: module_load\nID: 400\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\tfield:unsigned int taints;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;\n\tfield:char comm[16];\toffset:16;\tsize:16;\tsigned:0;\n";
        let f = parse_format(text);
        assert_eq!(f.get("name"), Some(&12));
        assert_eq!(f.get("taints"), Some(&8));
        assert_eq!(f.get("common_type"), Some(&0));
        assert_eq!(f.get("comm"), Some(&16));
    }
}
