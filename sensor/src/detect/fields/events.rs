//! Fields of the event itself, per log source category.

use std::borrow::Cow;

use rsigma_eval::EventValue;
use sensor_proto::v1::audit_record::Event;

use super::{Category, Field, RecordView, Scope, boolean, int, int_u64, ne, s};
use crate::detect::kind::Detectable;

/// The network endpoints as Sysmon names them: the source is the side that initiated.
struct Endpoints<'a> {
    src_ip: &'a str,
    src_port: u32,
    dst_ip: &'a str,
    dst_port: u32,
}

fn endpoints<'a>(v: &RecordView<'a>) -> Option<Endpoints<'a>> {
    let Some(Event::Network(n)) = v.event() else { return None };
    Some(match n.op.as_str() {
        "accept" => Endpoints {
            src_ip: &n.remote_address,
            src_port: n.remote_port,
            dst_ip: &n.local_address,
            dst_port: n.local_port,
        },
        "bind" | "listen" => {
            Endpoints { src_ip: "", src_port: 0, dst_ip: &n.local_address, dst_port: n.local_port }
        }
        _ => Endpoints {
            src_ip: &n.local_address,
            src_port: n.local_port,
            dst_ip: &n.remote_address,
            dst_port: n.remote_port,
        },
    })
}

const FILE_CATS: &[Category] = &[
    Category::FileEvent,
    Category::FileAccess,
    Category::FileDelete,
    Category::FileRename,
    Category::FilePermission,
    Category::SensorFile,
];
const RESULT_CATS: &[Category] = &[
    Category::FileEvent,
    Category::FileAccess,
    Category::FileDelete,
    Category::FileRename,
    Category::FilePermission,
    Category::SensorFile,
    Category::NetworkConnection,
    Category::Ptrace,
    Category::BpfAccess,
    Category::BpfLoad,
    Category::MemfdCreate,
    Category::IoUring,
];

fn target_filename<'a>(v: &RecordView<'a>) -> Option<EventValue<'a>> {
    ev!(v, Event::File(f) => match f.op.as_str() {
        "rename" | "link" => ne(&f.path2),
        _ => ne(&f.path),
    })
}

fn source_filename<'a>(v: &RecordView<'a>) -> Option<EventValue<'a>> {
    ev!(v, Event::File(f) => match f.op.as_str() {
        "rename" | "link" => ne(&f.path),
        "symlink" => ne(&f.path2),
        _ => None,
    })
}

fn executed_file<'a>(v: &RecordView<'a>) -> Option<EventValue<'a>> {
    let Some(Event::Exec(e)) = v.event() else { return None };
    let p = v.process()?;
    if e.interpreter.is_empty() || e.filename.is_empty() {
        return ne(&p.exe);
    }
    if e.filename.starts_with('/') {
        return Some(EventValue::Str(Cow::Owned(normalize(&e.filename))));
    }
    if p.cwd.is_empty() {
        return ne(&e.filename);
    }
    Some(EventValue::Str(Cow::Owned(normalize(&format!("{}/{}", p.cwd, e.filename)))))
}

/// `/a/./b/../c` → `/a/c` (lexically; the kernel already resolved the real file).
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn result_of<'a>(v: &RecordView<'a>) -> Option<EventValue<'a>> {
    sensor_proto::match_event!(v.event()?, x => Detectable::result(x).and_then(int))
}

fn error_of<'a>(v: &RecordView<'a>) -> Option<EventValue<'a>> {
    sensor_proto::match_event!(v.event()?, x => Detectable::error(x).and_then(ne))
}

fn syscall_of<'a>(v: &RecordView<'a>) -> Option<EventValue<'a>> {
    sensor_proto::match_event!(v.event()?, x => Detectable::syscall(x).and_then(ne))
}

/// Fields of the events, in documentation order.
pub(super) static EVENTS: &[Field] = &[
    // ---- process_creation ----
    Field {
        name: "Filename",
        scope: Scope::Only(&[Category::ProcessCreation]),
        doc: "file name as passed to execve (a script's path for `#!` scripts)",
        get: |v| ev!(v, Event::Exec(e) => ne(&e.filename)),
    },
    Field {
        name: "ExecutedFile",
        scope: Scope::Only(&[Category::ProcessCreation]),
        doc: "the file that was executed: the script for `#!` scripts (made absolute with the working directory), else `Image`",
        get: executed_file,
    },
    Field {
        name: "Interpreter",
        scope: Scope::Only(&[Category::ProcessCreation]),
        doc: "the `#!` interpreter of a script",
        get: |v| ev!(v, Event::Exec(e) => ne(&e.interpreter)),
    },
    Field {
        name: "ArgumentsTruncated",
        scope: Scope::Only(&[Category::ProcessCreation]),
        doc: "`true` when argv was cut at the capture limit",
        get: |v| boolean(v.process()?.argv_truncated),
    },
    // ---- file categories ----
    Field {
        name: "TargetFilename",
        scope: Scope::Only(FILE_CATS),
        doc: "the file acted on; for rename and link the new name",
        get: target_filename,
    },
    Field {
        name: "SourceFilename",
        scope: Scope::Only(FILE_CATS),
        doc: "rename/link: the old name; symlink: the link's target text",
        get: source_filename,
    },
    Field {
        name: "FileOperation",
        scope: Scope::Only(FILE_CATS),
        doc: "open, unlink, rmdir, rename, link, symlink, chmod, chown, truncate, mknod, setxattr",
        get: |v| ev!(v, Event::File(f) => s(&f.op)),
    },
    Field {
        name: "Syscall",
        scope: Scope::Only(&[
            Category::FileEvent,
            Category::FileAccess,
            Category::FileDelete,
            Category::FileRename,
            Category::FilePermission,
            Category::NetworkConnection,
            Category::PrivilegeChange,
            Category::ModuleLoad,
        ]),
        doc: "the system call, e.g. `openat`, `renameat2`, `setresuid`, `finit_module`",
        get: syscall_of,
    },
    Field {
        name: "FileFlags",
        scope: Scope::Only(FILE_CATS),
        doc: "open flags as text, e.g. `O_WRONLY|O_CREAT|O_TRUNC`",
        get: |v| ev!(v, Event::File(f) => ne(&f.flags)),
    },
    Field {
        name: "FileMode",
        scope: Scope::Only(FILE_CATS),
        doc: "mode of create/chmod/mknod in octal, e.g. `4755`",
        get: |v| ev!(v, Event::File(f) => ne(&f.mode_octal)),
    },
    Field {
        name: "FileModeBits",
        scope: Scope::Only(FILE_CATS),
        doc: "the same mode as a number (for `|gt` and friends)",
        get: |v| ev!(v, Event::File(f) => int(f.mode)),
    },
    Field {
        name: "Sensitive",
        scope: Scope::Only(FILE_CATS),
        doc: "`true` when the file is a configured sensitive path",
        get: |v| ev!(v, Event::File(f) => boolean(f.sensitive)),
    },
    Field {
        name: "OwnerUid",
        scope: Scope::Only(&[Category::FilePermission]),
        doc: "chown: the new owner (4294967295 = unchanged)",
        get: |v| ev!(v, Event::File(f) if f.op == "chown" => int(f.uid)),
    },
    Field {
        name: "OwnerGid",
        scope: Scope::Only(&[Category::FilePermission]),
        doc: "chown: the new group (4294967295 = unchanged)",
        get: |v| ev!(v, Event::File(f) if f.op == "chown" => int(f.gid)),
    },
    Field {
        name: "Xattr",
        scope: Scope::Only(&[Category::FilePermission]),
        doc: "setxattr: the attribute name",
        get: |v| ev!(v, Event::File(f) => ne(&f.xattr)),
    },
    Field {
        name: "Result",
        scope: Scope::Only(RESULT_CATS),
        doc: "0 or a positive value (fd, bytes) on success, -errno on failure",
        get: result_of,
    },
    Field {
        name: "Error",
        scope: Scope::Only(RESULT_CATS),
        doc: "errno name on failure, e.g. `EACCES`",
        get: error_of,
    },
    // ---- network_connection ----
    Field {
        name: "Initiated",
        scope: Scope::Only(&[Category::NetworkConnection]),
        doc: "`true` for connects and sent datagrams, `false` for accepts, binds and listens",
        get: |v| ev!(v, Event::Network(n) => boolean(matches!(n.op.as_str(), "connect" | "send"))),
    },
    Field {
        name: "DestinationIp",
        scope: Scope::Only(&[Category::NetworkConnection]),
        doc: "the side that was connected to (the remote end of a connect, the local end of an accept/bind/listen)",
        get: |v| ne(endpoints(v)?.dst_ip),
    },
    Field {
        name: "DestinationPort",
        scope: Scope::Only(&[Category::NetworkConnection]),
        doc: "port of the destination",
        get: |v| int(endpoints(v)?.dst_port),
    },
    Field {
        name: "DestinationIsIpv6",
        scope: Scope::Only(&[Category::NetworkConnection]),
        doc: "`true` for IPv6 (IPv4-mapped addresses count as IPv4)",
        get: |v| ev!(v, Event::Network(n) => boolean(n.family == "ipv6" && !n.v4_mapped)),
    },
    Field {
        name: "SourceIp",
        scope: Scope::Only(&[Category::NetworkConnection]),
        doc: "the initiating side (the local end of a connect, the peer of an accept)",
        get: |v| ne(endpoints(v)?.src_ip),
    },
    Field {
        name: "SourcePort",
        scope: Scope::Only(&[Category::NetworkConnection]),
        doc: "port of the source",
        get: |v| {
            let e = endpoints(v)?;
            (!e.src_ip.is_empty()).then_some(EventValue::Int(e.src_port.into()))
        },
    },
    Field {
        name: "Protocol",
        scope: Scope::Only(&[Category::NetworkConnection]),
        doc: "`tcp`, `udp` or the protocol number",
        get: |v| ev!(v, Event::Network(n) => ne(&n.protocol)),
    },
    Field {
        name: "NetworkOperation",
        scope: Scope::Only(&[Category::NetworkConnection]),
        doc: "connect, accept, bind, listen, send",
        get: |v| ev!(v, Event::Network(n) => s(&n.op)),
    },
    // ---- dns_query ----
    Field {
        name: "QueryName",
        scope: Scope::Only(&[Category::DnsQuery]),
        doc: "the name asked for",
        get: |v| ev!(v, Event::Dns(d) => ne(&d.name)),
    },
    Field {
        name: "QueryType",
        scope: Scope::Only(&[Category::DnsQuery]),
        doc: "A, AAAA, TXT, …",
        get: |v| ev!(v, Event::Dns(d) => ne(&d.r#type)),
    },
    Field {
        name: "DnsServer",
        scope: Scope::Only(&[Category::DnsQuery]),
        doc: "address the query was sent to",
        get: |v| ev!(v, Event::Dns(d) => ne(&d.server_address)),
    },
    Field {
        name: "DnsServerPort",
        scope: Scope::Only(&[Category::DnsQuery]),
        doc: "port the query was sent to (53 normally)",
        get: |v| ev!(v, Event::Dns(d) => int(d.server_port)),
    },
    Field {
        name: "DnsMalformed",
        scope: Scope::Only(&[Category::DnsQuery]),
        doc: "`true` when a datagram to port 53 was not a decodable query",
        get: |v| ev!(v, Event::Dns(d) => boolean(d.malformed)),
    },
    // ---- privilege_change ----
    Field {
        name: "OldUserId",
        scope: Scope::Only(&[Category::PrivilegeChange]),
        doc: "real uid before",
        get: |v| ev!(v, Event::Privilege(p) => int(p.old.as_ref()?.uid)),
    },
    Field {
        name: "NewUserId",
        scope: Scope::Only(&[Category::PrivilegeChange]),
        doc: "real uid after",
        get: |v| ev!(v, Event::Privilege(p) => int(p.new.as_ref()?.uid)),
    },
    Field {
        name: "OldEffectiveUserId",
        scope: Scope::Only(&[Category::PrivilegeChange]),
        doc: "effective uid before",
        get: |v| ev!(v, Event::Privilege(p) => int(p.old.as_ref()?.euid)),
    },
    Field {
        name: "NewEffectiveUserId",
        scope: Scope::Only(&[Category::PrivilegeChange]),
        doc: "effective uid after",
        get: |v| ev!(v, Event::Privilege(p) => int(p.new.as_ref()?.euid)),
    },
    Field {
        name: "OldGroupId",
        scope: Scope::Only(&[Category::PrivilegeChange]),
        doc: "real gid before",
        get: |v| ev!(v, Event::Privilege(p) => int(p.old.as_ref()?.gid)),
    },
    Field {
        name: "NewGroupId",
        scope: Scope::Only(&[Category::PrivilegeChange]),
        doc: "real gid after",
        get: |v| ev!(v, Event::Privilege(p) => int(p.new.as_ref()?.gid)),
    },
    Field {
        name: "NewEffectiveGroupId",
        scope: Scope::Only(&[Category::PrivilegeChange]),
        doc: "effective gid after",
        get: |v| ev!(v, Event::Privilege(p) => int(p.new.as_ref()?.egid)),
    },
    Field {
        name: "NewCapabilities",
        scope: Scope::Only(&[Category::PrivilegeChange]),
        doc: "effective capability bits after (a number)",
        get: |v| ev!(v, Event::Privilege(p) => int_u64(p.new.as_ref()?.cap_effective)),
    },
    // ---- ptrace ----
    Field {
        name: "TargetImage",
        scope: Scope::Only(&[Category::Ptrace]),
        doc: "executable of the traced process",
        get: |v| ev!(v, Event::Ptrace(p) => ne(&p.target_exe)),
    },
    Field {
        name: "TargetProcessId",
        scope: Scope::Only(&[Category::Ptrace]),
        doc: "pid of the traced process",
        get: |v| ev!(v, Event::Ptrace(p) => int(p.target_pid)),
    },
    Field {
        name: "TargetProcessGuid",
        scope: Scope::Only(&[Category::Ptrace]),
        doc: "GUID of the traced process",
        get: |v| ev!(v, Event::Ptrace(p) => ne(&p.target_guid)),
    },
    Field {
        name: "PtraceRequest",
        scope: Scope::Only(&[Category::Ptrace]),
        doc: "`attach`, `seize`, `process_vm_writev`, `process_vm_readv` (of the sensor only) or `pidfd_getfd`",
        get: |v| ev!(v, Event::Ptrace(p) => ne(&p.request)),
    },
    // ---- process_exit ----
    Field {
        name: "ExitCode",
        scope: Scope::Only(&[Category::ProcessExit]),
        doc: "exit status when it exited normally",
        get: |v| ev!(v, Event::Exit(e) => int(e.code)),
    },
    Field {
        name: "ExitSignal",
        scope: Scope::Only(&[Category::ProcessExit]),
        doc: "terminating signal number, 0 when it exited normally",
        get: |v| ev!(v, Event::Exit(e) => int(e.signal)),
    },
    Field {
        name: "LifetimeSeconds",
        scope: Scope::Only(&[Category::ProcessExit]),
        doc: "how long the process lived, whole seconds",
        get: |v| ev!(v, Event::Exit(e) => int_u64(e.lifetime_ns / 1_000_000_000)),
    },
    // ---- session ----
    Field {
        name: "SessionLeaderImage",
        scope: Scope::Only(&[Category::Session]),
        doc: "executable of the first process seen in the session",
        get: |v| ev!(v, Event::Session(_) => ne(&v.process()?.exe)),
    },
    // ---- loss ----
    Field {
        name: "LossKind",
        scope: Scope::Only(&[Category::Loss]),
        doc: "which events were lost (exec, file, network, record, …)",
        get: |v| ev!(v, Event::Loss(l) => ne(&l.kind)),
    },
    Field {
        name: "LossReason",
        scope: Scope::Only(&[Category::Loss]),
        doc: "ringbuf_full, kernel_skipped, read_failed, decode_error, sink_spool_full, …",
        get: |v| ev!(v, Event::Loss(l) => ne(&l.reason)),
    },
    Field {
        name: "LossCount",
        scope: Scope::Only(&[Category::Loss]),
        doc: "how many events were lost",
        get: |v| ev!(v, Event::Loss(l) => int_u64(l.count)),
    },
];
