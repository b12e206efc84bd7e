//! The fentry path's load-time side (see the eBPF crate's `fentry` module): the syscall
//! functions sorted into prototype groups, the probe that decides whether this kernel runs the
//! path, and the stubs loaded against one function each.

use std::{collections::HashMap, time::Instant};

use anyhow::Context as _;
use aya::{Btf, Ebpf, maps::ProgramArray, programs::Program};
use sensor_common::{names, syscalls::SYSCALL_SLOTS};
use tracing::debug;

use crate::btf::KernelBtf;

/// Prefix of the x86-64 system call functions the stubs attach to.
const SYSCALL_PREFIX: &str = "__x64_sys_";
/// Prefix of the 32-bit calls' functions (`__ia32_sys_X`, `__ia32_compat_sys_X`).
const IA32_PREFIX: &str = "__ia32_";

/// The function behind system call `name` on x86-64.
pub fn syscall_function(name: &str) -> String {
    format!("{SYSCALL_PREFIX}{name}")
}

/// The syscall functions of this kernel by prototype group (see
/// `sensor_common::names::FENTRY_GROUPS`).
#[derive(Debug)]
pub struct FentryTargets {
    /// Function name → group.
    group_of: HashMap<String, u32>,
    /// Per group: the function its twins are loaded against, and the one the probe's stubs are
    /// (another one where the group has two, so that the probe tries a tail call across them).
    targets: Vec<(String, String)>,
    /// Per group: its BTF prototype.
    protos: Vec<u32>,
}

impl FentryTargets {
    /// Sorts this kernel's syscall functions by prototype; an error says why the fentry path
    /// cannot run here (no such functions, or more prototypes than groups).
    pub fn of_kernel(kbtf: &KernelBtf) -> Result<Self, String> {
        let functions = kbtf.functions_with_prefix(SYSCALL_PREFIX).map_err(|e| format!("{e}"))?;
        let mut targets = Self::new(functions)?;
        match kbtf.functions_with_prefix(IA32_PREFIX) {
            Ok(ia32) => targets.add_ia32(ia32),
            Err(e) => debug!(error = %e, "no 32-bit syscall functions"),
        }
        Ok(targets)
    }

    /// The 32-bit calls' functions (`__ia32_*`, in BTF order) of the groups' prototypes; the
    /// others are left out, and their calls unwatched on this path.
    fn add_ia32(&mut self, all: Vec<(String, u32)>) {
        for (name, proto) in all {
            if let Some(g) = self.protos.iter().position(|p| *p == proto) {
                // The first of a name, as loading by name takes it.
                self.group_of.entry(name).or_insert(g as u32);
            }
        }
    }

    /// `functions` in BTF order. A name can be there twice (the strong function and the weak
    /// `sys_ni.c` stub, with another prototype); loading by name takes the first, so does this.
    fn new(all: Vec<(String, u32)>) -> Result<Self, String> {
        if all.is_empty() {
            return Err(format!("the kernel's BTF has no x86-64 syscall functions ({SYSCALL_PREFIX}*)"));
        }
        let mut seen = std::collections::HashSet::new();
        let mut functions: Vec<(String, u32)> =
            all.into_iter().filter(|(n, _)| seen.insert(n.clone())).collect();
        functions.sort();
        let mut protos: Vec<(u32, usize)> = Vec::new();
        for (_, p) in &functions {
            match protos.iter_mut().find(|(q, _)| q == p) {
                Some((_, n)) => *n += 1,
                None => protos.push((*p, 1)),
            }
        }
        if protos.len() > names::FENTRY_GROUPS as usize {
            return Err(format!(
                "the kernel's BTF gives its syscall functions {} prototypes; the fentry path has {} groups",
                protos.len(),
                names::FENTRY_GROUPS
            ));
        }
        // The largest group first: stable across kernels of one family.
        protos.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let group = |p: u32| protos.iter().position(|(q, _)| *q == p).map(|g| g as u32);
        let mut targets: Vec<(String, String)> = Vec::new();
        for (g, (p, _)) in protos.iter().enumerate() {
            let mut members = functions.iter().filter(|(_, q)| q == p).map(|(n, _)| n.clone());
            let twin = members.next().unwrap_or_default();
            let probe = members.next().unwrap_or_else(|| twin.clone());
            debug_assert_eq!(targets.len(), g);
            targets.push((twin, probe));
        }
        let group_of = functions.iter().filter_map(|(n, p)| Some((n.clone(), group(*p)?))).collect();
        Ok(Self { group_of, targets, protos: protos.iter().map(|(p, _)| *p).collect() })
    }

    /// The group of function `function`; `None` when this kernel has no such function.
    pub fn group_of(&self, function: &str) -> Option<u32> {
        self.group_of.get(function).copied()
    }

    /// The function the twins of group `g` are loaded against.
    pub fn twin_target(&self, g: u32) -> Option<&str> {
        self.targets.get(g as usize).map(|(t, _)| t.as_str())
    }

    /// The groups this kernel has.
    pub fn groups(&self) -> u32 {
        self.targets.len() as u32
    }

    /// The function fentry twin `name` is loaded against (`{base}_{group}`), if its group exists.
    pub fn target_of_twin(&self, name: &str) -> Option<&str> {
        let (_, g) = name.rsplit_once('_')?;
        self.twin_target(g.parse().ok()?)
    }
}

/// Whether this kernel loads tracing programs at all, asked cheaply before anything of the
/// fentry path is prepared: a 2-instruction `fentry` program without a target. A kernel that
/// knows tracing programs refuses it with EINVAL ("must provide btf_id"); one whose policy
/// forbids them refuses it with EPERM before looking (this host, see the toolchain notes).
pub fn tracing_refused() -> Option<String> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_TRACING: u64 = 26;
    const BPF_TRACE_FENTRY: u64 = 24;
    // `r0 = 0; exit`.
    let insns: [u64; 2] = [0xb7, 0x95];
    let license = b"GPL\0";
    // `union bpf_attr` for BPF_PROG_LOAD up to `attach_btf_id` (left 0), as 64-bit words.
    let mut attr = [0u64; 14];
    attr[0] = BPF_PROG_TYPE_TRACING | (2 << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    attr[8] = BPF_TRACE_FENTRY << 32;
    // The pointers in `attr` stay valid for the call.
    match crate::guard::bpf(BPF_PROG_LOAD, &attr) {
        Ok(fd) => {
            // SAFETY: a descriptor the kernel just returned, owned here.
            drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) });
            None
        }
        Err(e) => match e.raw_os_error() {
            Some(libc::EINVAL) => None,
            _ => Some(format!("the kernel refuses tracing programs: {e}")),
        },
    }
}

/// A slot of the fentry tables no system call uses: the last (x86-64 has < 470 calls).
const PROBE_SLOT: u32 = SYSCALL_SLOTS - 1;

/// For each group, the last stub pair, kept for this probe: loaded against another syscall
/// function than the twins, given a twin each in slot [`PROBE_SLOT`], emptied again. A kernel
/// that refuses tracing programs, or tail calls between the two functions' programs, fails
/// here, before anything is attached.
pub fn probe(ebpf: &mut Ebpf, btf: &Btf, targets: &FentryTargets) -> anyhow::Result<()> {
    let last = names::FENTRY_STUBS - 1;
    for (g, (_, function)) in targets.targets.iter().enumerate() {
        for exit in [false, true] {
            let stub = stub_name(exit, g as u32, last);
            load_stub(ebpf, &stub, function, btf)?;
            let prefix = if exit { "fexit_" } else { "fentry_" };
            let base = names::raw_twins()
                .map(|(_, _, f)| *f)
                .find(|f| f.starts_with(prefix))
                .context("no fentry twin")?;
            let twin = format!("{base}_{g}");
            let fd = program_fd(ebpf, &twin)?;
            let table = table(exit, g as u32);
            let map = ebpf.map_mut(table).with_context(|| format!("map {table} missing"))?;
            let mut progs: ProgramArray<_> = ProgramArray::try_from(map)?;
            progs
                .set(PROBE_SLOT, &fd, 0)
                .with_context(|| format!("tail call from {stub} ({function}) to {twin}"))?;
            progs.clear_index(&PROBE_SLOT).with_context(|| format!("{table}[{PROBE_SLOT}] emptied"))?;
        }
    }
    Ok(())
}

/// The program array of group `g`'s entry (or exit) stubs.
pub fn table(exit: bool, g: u32) -> &'static str {
    let tables = if exit { &names::MAP_FEXIT_PROGS } else { &names::MAP_FENTRY_PROGS };
    tables[g as usize]
}

/// Stub `n` of group `g`, entry or exit.
pub fn stub_name(exit: bool, g: u32, n: u32) -> String {
    let prefix = if exit { names::FEXIT_STUB_PREFIX } else { names::FENTRY_STUB_PREFIX };
    format!("{prefix}{g}_{n}")
}

/// Loads stub `stub` against kernel function `function`.
pub fn load_stub(ebpf: &mut Ebpf, stub: &str, function: &str, btf: &Btf) -> anyhow::Result<()> {
    let started = Instant::now();
    match ebpf.program_mut(stub).with_context(|| format!("program {stub} missing"))? {
        Program::FEntry(p) => p.load(function, btf),
        Program::FExit(p) => p.load(function, btf),
        _ => anyhow::bail!("program {stub} is no fentry/fexit program"),
    }
    .with_context(|| format!("loading {stub} against {function}"))?;
    debug!(prog = stub, function, elapsed_ms = started.elapsed().as_millis(), "stub loaded");
    Ok(())
}

/// A duplicate of loaded program `name`'s descriptor.
pub fn program_fd(ebpf: &Ebpf, name: &str) -> anyhow::Result<aya::programs::ProgramFd> {
    Ok(ebpf
        .program(name)
        .with_context(|| format!("program {name} missing"))?
        .fd()
        .with_context(|| format!("program {name} not loaded"))?
        .try_clone()?)
}

#[cfg(test)]
mod tests {
    use super::FentryTargets;

    fn f(name: &str, proto: u32) -> (String, u32) {
        (format!("__x64_sys_{name}"), proto)
    }

    #[test]
    fn functions_are_grouped_by_prototype_largest_group_first() {
        let t = FentryTargets::new(vec![
            f("openat", 7),
            f("accept", 9),
            f("close", 7),
            f("unlink", 7),
            f("connect", 9),
        ])
        .expect("two prototypes");
        assert_eq!(t.groups(), 2);
        assert_eq!(t.group_of("__x64_sys_openat"), Some(0));
        assert_eq!(t.group_of("__x64_sys_accept"), Some(1));
        assert_eq!(t.group_of("__x64_sys_fchmodat2"), None, "not in this kernel");
        // Twins against the first function by name, the probe against the second.
        assert_eq!(t.targets[0], ("__x64_sys_close".into(), "__x64_sys_openat".into()));
        assert_eq!(t.targets[1], ("__x64_sys_accept".into(), "__x64_sys_connect".into()));
        assert_eq!(t.target_of_twin("fexit_file_1"), Some("__x64_sys_accept"));
        assert_eq!(t.target_of_twin("fexit_file_2"), None);
        let twice = FentryTargets::new(vec![f("accept", 9), f("openat", 7), f("accept", 7)]).expect("two");
        assert_eq!(twice.group_of("__x64_sys_accept"), Some(1), "the first of a name counts");
        let one = FentryTargets::new(vec![f("openat", 7)]).expect("one");
        assert_eq!(one.targets[0], ("__x64_sys_openat".into(), "__x64_sys_openat".into()));
    }

    #[test]
    fn the_32_bit_functions_join_the_groups_of_their_prototypes() {
        let mut t = FentryTargets::new(vec![f("openat", 7), f("accept", 9)]).expect("two prototypes");
        let ia32 = |n: &str, p| (format!("__ia32_{n}"), p);
        t.add_ia32(vec![
            ia32("compat_sys_openat", 7),
            ia32("sys_connect", 9),
            ia32("sys_odd", 5),
            ia32("sys_connect", 7),
        ]);
        assert_eq!(t.group_of("__ia32_compat_sys_openat"), Some(0));
        assert_eq!(t.group_of("__ia32_sys_connect"), Some(1), "the first of a name counts");
        assert_eq!(t.group_of("__ia32_sys_odd"), None, "a prototype of no group: left out");
        assert_eq!(t.groups(), 2, "no group of their own");
    }

    #[test]
    fn more_prototypes_than_groups_or_none_refuse_the_path() {
        let e = FentryTargets::new(vec![f("a", 1), f("b", 2), f("c", 3)]).expect_err("three");
        assert!(e.contains("3 prototypes"), "{e}");
        assert!(FentryTargets::new(Vec::new()).expect_err("none").contains("no x86-64 syscall functions"));
    }
}
