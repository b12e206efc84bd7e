//! Log source categories: which rules a record meets.
//!
//! Sigma rules name a `logsource`; for `product: linux` the sensor serves the Sigma categories
//! `process_creation`, `file_event`, `network_connection` and `dns_query` (Sysmon for Linux's
//! taxonomy), and categories of its own, with the same rule syntax, for what Sigma has no Linux
//! category for. Every record kind says which categories it meets (`Detectable::categories`, in
//! its module under `crate::kinds`), so a new kind of record cannot be added without deciding
//! which rules it meets.

use sensor_proto::{AuditRecord, v1::FileEvent};

use super::kind::Detectable;

/// Declares the categories once: variant and the `logsource.category` name rules use.
/// Generates [`Category`], [`Category::ALL`] (length counted from the table) and
/// [`Category::name`].
macro_rules! categories {
    ($($(#[$doc:meta])* $cat:ident => $name:literal,)+) => {
        /// A log source category. The discriminants index per-category tables.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Category {
            $($(#[$doc])* $cat,)+
        }

        impl Category {
            /// Every category, in discriminant order.
            pub const ALL: [Self; [$($name),+].len()] = [$(Self::$cat),+];

            /// The `logsource.category` value rules use.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$cat => $name,)+
                }
            }
        }
    };
}

categories! {
    /// A program was executed (`exec` records). Sigma.
    ProcessCreation => "process_creation",
    /// A file was created or written: opens with write intent, links, symlinks, device nodes,
    /// truncation, and the new name of a rename. Sigma.
    FileEvent => "file_event",
    /// A connect, accept, bind, listen or first UDP datagram (`network` records). Sigma.
    NetworkConnection => "network_connection",
    /// A DNS query (`dns` records). Sigma.
    DnsQuery => "dns_query",
    /// A read-only open: reads of sensitive files and denied opens. The sensor's own.
    FileAccess => "file_access",
    /// unlink, rmdir. The sensor's own.
    FileDelete => "file_delete",
    /// rename (old and new name). The sensor's own.
    FileRename => "file_rename",
    /// chmod, chown, setxattr of `security.*`. The sensor's own.
    FilePermission => "file_permission",
    /// A successful credential change (setuid family, capset). The sensor's own.
    PrivilegeChange => "privilege_change",
    /// ptrace attach/seize of another process. The sensor's own.
    Ptrace => "ptrace",
    /// A BPF program was loaded by another process. The sensor's own.
    BpfLoad => "bpf_load",
    /// A kernel module was loaded. The sensor's own.
    ModuleLoad => "module_load",
    /// memfd_create. The sensor's own.
    MemfdCreate => "memfd_create",
    /// io_uring_setup: what the process submits through the ring is not seen. The sensor's own.
    IoUring => "io_uring",
    /// A login session was first seen. The sensor's own.
    Session => "session",
    /// A process ended. The sensor's own.
    ProcessExit => "process_exit",
    /// Events were lost before they became records (a flood can be an attempt to blind the
    /// sensor). The sensor's own.
    Loss => "loss",
    /// A signal generated for the sensor (`signal` records). The sensor's own.
    Signal => "signal",
    /// A `bpf()` command by another process on the sensor's programs, maps or links. The
    /// sensor's own.
    BpfAccess => "bpf_access",
    /// A change by another process to one of the sensor's own files (binary, configuration,
    /// keys, rules, outputs, spools, cgroup freeze/kill controls): file records with
    /// `protected` set, except read-only opens. The sensor's own.
    SensorFile => "sensor_file",
    /// The sensor's own lifecycle: `sensor_start`, `sensor_stop`, `heartbeat`, `previous_run`.
    /// The sensor's own.
    SensorLifecycle => "sensor_lifecycle",
}

impl Category {
    /// Where a rule with only `product: linux` (no category) and field selections is evaluated:
    /// the records whose text an actor chose — command lines, created and deleted paths (a
    /// rename's new name is a `file_event`), destinations and DNS names; the other categories
    /// only repeat the process's. Such rules made of keywords only (SigmaHQ's shell and log
    /// keyword rules: command text like `rm *bash_history`) meet `process_creation` records
    /// only, whose command line is the text they were written for.
    pub const UNSCOPED: [Self; 5] =
        [Self::ProcessCreation, Self::FileEvent, Self::FileDelete, Self::NetworkConnection, Self::DnsQuery];

    /// True for the categories Sigma itself defines for Linux.
    pub const fn is_sigma(self) -> bool {
        matches!(self, Self::ProcessCreation | Self::FileEvent | Self::NetworkConnection | Self::DnsQuery)
    }

    /// Index into per-category tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The category a rule's `logsource.category` names.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The categories a record is evaluated as (most records: one; a rename is both a
/// `file_rename` and a `file_event` at its new name). Alerts and checkpoints: none, so the
/// sensor never alerts on its own verdicts.
pub fn categories_of(record: &AuditRecord) -> &'static [Category] {
    match &record.event {
        Some(e) => sensor_proto::match_event!(e, x => Detectable::categories(x)),
        None => &[],
    }
}

/// The categories of a file record: by operation, plus `sensor_file` when it touches the
/// sensor's own files.
pub fn file_categories(f: &FileEvent) -> &'static [Category] {
    use Category as C;
    if !f.protected.is_empty() {
        return match f.op.as_str() {
            "open" if write_intent(f.flags_raw) => &[C::FileEvent, C::SensorFile],
            "open" => &[C::FileAccess],
            "link" | "symlink" | "mknod" | "truncate" => &[C::FileEvent, C::SensorFile],
            "unlink" | "rmdir" => &[C::FileDelete, C::SensorFile],
            "rename" => &[C::FileRename, C::FileEvent, C::SensorFile],
            "chmod" | "chown" | "setxattr" => &[C::FilePermission, C::SensorFile],
            _ => &[C::SensorFile],
        };
    }
    match f.op.as_str() {
        "open" if write_intent(f.flags_raw) => &[C::FileEvent],
        "open" => &[C::FileAccess],
        "link" | "symlink" | "mknod" | "truncate" => &[C::FileEvent],
        "unlink" | "rmdir" => &[C::FileDelete],
        "rename" => &[C::FileRename, C::FileEvent],
        "chmod" | "chown" | "setxattr" => &[C::FilePermission],
        _ => &[],
    }
}

/// open(2) flags that create or change a file.
pub fn write_intent(flags: u32) -> bool {
    let f = i32::from_ne_bytes(flags.to_ne_bytes());
    f & libc::O_ACCMODE != libc::O_RDONLY || f & (libc::O_CREAT | libc::O_TRUNC) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_index_in_order() {
        for (i, c) in Category::ALL.into_iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(Category::from_name(c.name()), Some(c));
        }
        assert_eq!(Category::from_name("registry_event"), None);
    }

    #[test]
    fn file_ops_map_to_categories() {
        let f = |op: &str, flags: i32| FileEvent {
            op: op.into(),
            flags_raw: u32::from_ne_bytes(flags.to_ne_bytes()),
            ..Default::default()
        };
        assert_eq!(file_categories(&f("open", libc::O_RDONLY)), [Category::FileAccess]);
        assert_eq!(file_categories(&f("open", libc::O_WRONLY)), [Category::FileEvent]);
        assert_eq!(file_categories(&f("open", libc::O_RDONLY | libc::O_CREAT)), [Category::FileEvent]);
        assert_eq!(file_categories(&f("rename", 0)), [Category::FileRename, Category::FileEvent]);
        assert_eq!(file_categories(&f("chown", 0)), [Category::FilePermission]);
        assert_eq!(file_categories(&f("unlink", 0)), [Category::FileDelete]);
    }
}
