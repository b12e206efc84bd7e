//! The field mapping: what a Sigma rule's field names mean on an audit record.
//!
//! Sigma's Linux rules use the field names of Sysmon for Linux (`Image`, `CommandLine`,
//! `ParentImage`, `TargetFilename`, `DestinationIp`, …). Records are read through this table
//! directly — no JSON is built per record — and the table is also the documentation
//! (`sensor rules fields`, README "Field mapping"). Beyond Sysmon: the whole ancestry
//! (`AncestorImage`, `AncestorCommandLine`: any ancestor matches), the login session
//! (`SessionUser`, `SessionService`, `SessionRemoteAddress`), and the executable's flags.

use std::{borrow::Cow, cell::OnceCell, collections::HashMap, sync::LazyLock};

use rsigma_eval::EventValue;
use sensor_proto::{
    AuditRecord,
    v1::{Ancestor, Process, audit_record::Event},
};

use super::category::Category;

/// What the detector knows of a login session (from its `session` record).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionInfo {
    pub user: String,
    pub service: String,
    pub remote_address: String,
    pub remote_port: u32,
    pub tty: String,
}

/// Which records a field is present on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every record with an acting process (all categories but `loss`).
    Process,
    /// Records whose process belongs to a login session the sensor has seen.
    Session,
    /// Only records of these categories.
    Only(&'static [Category]),
}

impl Scope {
    /// True when a record of `cat` can carry the field.
    pub fn covers(self, cat: Category) -> bool {
        match self {
            Self::Process | Self::Session => cat != Category::Loss,
            Self::Only(cats) => cats.contains(&cat),
        }
    }

    /// Text for the documentation table.
    pub fn describe(self) -> String {
        match self {
            Self::Process => "all with a process".to_owned(),
            Self::Session => "all with a process in a known login session".to_owned(),
            Self::Only(cats) => cats.iter().map(|c| c.name()).collect::<Vec<_>>().join(", "),
        }
    }
}

type Getter = for<'a> fn(&'a RecordView<'a>) -> Option<EventValue<'a>>;

/// One field rules can use.
#[derive(Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub scope: Scope,
    pub doc: &'static str,
    get: Getter,
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Field").field("name", &self.name).field("scope", &self.scope).finish()
    }
}

/// A record as a Sigma event, evaluated as one category.
pub struct RecordView<'a> {
    pub record: &'a AuditRecord,
    pub category: Category,
    pub session: Option<&'a SessionInfo>,
    command_line: OnceCell<String>,
    parent_command_line: OnceCell<String>,
}

impl<'a> RecordView<'a> {
    pub fn new(record: &'a AuditRecord, category: Category, session: Option<&'a SessionInfo>) -> Self {
        Self {
            record,
            category,
            session,
            command_line: OnceCell::new(),
            parent_command_line: OnceCell::new(),
        }
    }

    fn process(&self) -> Option<&'a Process> {
        self.record.process.as_ref()
    }

    fn parent(&self) -> Option<&'a Ancestor> {
        self.record.ancestors.first()
    }

    fn event(&self) -> Option<&'a Event> {
        self.record.event.as_ref()
    }

    /// The value of a field, if this record has it.
    pub fn field(&self, name: &str) -> Option<EventValue<'_>> {
        let f = FIELD_INDEX.get(name)?;
        if !f.scope.covers(self.category) {
            return None;
        }
        (f.get)(self)
    }
}

/// argv as one command line, arguments separated by a space (as Sysmon for Linux writes it).
pub fn command_line(argv: &[String]) -> String {
    argv.join(" ")
}

fn s(v: &str) -> Option<EventValue<'_>> {
    Some(EventValue::Str(Cow::Borrowed(v)))
}

/// A string field that is absent when empty (unknown), so `|exists` and `null` mean something.
fn ne(v: &str) -> Option<EventValue<'_>> {
    (!v.is_empty()).then(|| EventValue::Str(Cow::Borrowed(v)))
}

fn int(v: impl Into<i64>) -> Option<EventValue<'static>> {
    Some(EventValue::Int(v.into()))
}

fn boolean(v: bool) -> Option<EventValue<'static>> {
    Some(EventValue::Str(Cow::Borrowed(if v { "true" } else { "false" })))
}

fn int_u64(v: u64) -> Option<EventValue<'static>> {
    Some(EventValue::Int(i64::try_from(v).unwrap_or(i64::MAX)))
}

macro_rules! ev {
    ($v:expr, $pat:pat $(if $guard:expr)? => $out:expr) => {
        match $v.event() {
            Some($pat) $(if $guard)? => $out,
            _ => None,
        }
    };
}

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
];
const RESULT_CATS: &[Category] = &[
    Category::FileEvent,
    Category::FileAccess,
    Category::FileDelete,
    Category::FileRename,
    Category::FilePermission,
    Category::NetworkConnection,
    Category::Ptrace,
    Category::BpfLoad,
    Category::MemfdCreate,
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
    match v.event()? {
        Event::File(f) => int(f.result),
        Event::Network(n) => int(n.result),
        Event::Ptrace(p) => int(p.result),
        Event::BpfLoad(b) => int(b.result),
        Event::MemfdCreate(m) => int(m.result),
        _ => None,
    }
}

fn error_of<'a>(v: &RecordView<'a>) -> Option<EventValue<'a>> {
    match v.event()? {
        Event::File(f) => ne(&f.error),
        Event::Network(n) => ne(&n.error),
        _ => None,
    }
}

fn ancestors_str<'a>(
    v: &RecordView<'a>,
    f: fn(&'a Ancestor) -> Option<EventValue<'a>>,
) -> Option<EventValue<'a>> {
    let items: Vec<EventValue<'a>> = v.record.ancestors.iter().filter_map(f).collect();
    (!items.is_empty()).then_some(EventValue::Array(items))
}

fn session_field<'a>(
    v: &RecordView<'a>,
    pick: fn(&'a SessionInfo) -> Option<EventValue<'a>>,
) -> Option<EventValue<'a>> {
    v.session.and_then(pick)
}

/// Every field, in documentation order.
pub static FIELDS: &[Field] = &[
    // ---- The acting process (Sysmon for Linux names first) ----
    Field {
        name: "Image",
        scope: Scope::Process,
        doc: "absolute path of the executable",
        get: |v| ne(&v.process()?.exe),
    },
    Field {
        name: "CommandLine",
        scope: Scope::Process,
        doc: "argv joined with spaces",
        get: |v| {
            let p = v.process()?;
            Some(EventValue::Str(Cow::Borrowed(
                v.command_line.get_or_init(|| command_line(&p.argv)).as_str(),
            )))
        },
    },
    Field {
        name: "CurrentDirectory",
        scope: Scope::Process,
        doc: "working directory",
        get: |v| ne(&v.process()?.cwd),
    },
    Field {
        name: "User",
        scope: Scope::Process,
        doc: "name of the real user (the uid in decimal when it has no name)",
        get: |v| {
            let p = v.process()?;
            if p.user.is_empty() { Some(EventValue::Str(Cow::Owned(p.uid.to_string()))) } else { s(&p.user) }
        },
    },
    Field {
        name: "LogonId",
        scope: Scope::Process,
        doc: "login uid (auid; 4294967295 = not set), as Sysmon for Linux",
        get: |v| int(v.process()?.auid),
    },
    Field { name: "ProcessId", scope: Scope::Process, doc: "pid", get: |v| int(v.process()?.pid) },
    Field {
        name: "ProcessGuid",
        scope: Scope::Process,
        doc: "the process GUID",
        get: |v| ne(&v.process()?.guid),
    },
    Field { name: "ParentProcessId", scope: Scope::Process, doc: "ppid", get: |v| int(v.process()?.ppid) },
    Field {
        name: "ParentProcessGuid",
        scope: Scope::Process,
        doc: "the parent's GUID",
        get: |v| ne(&v.process()?.parent_guid),
    },
    Field {
        name: "ParentImage",
        scope: Scope::Process,
        doc: "the parent's executable",
        get: |v| ne(&v.parent()?.exe),
    },
    Field {
        name: "ParentCommandLine",
        scope: Scope::Process,
        doc: "the parent's argv joined with spaces",
        get: |v| {
            let p = v.parent()?;
            Some(EventValue::Str(Cow::Borrowed(
                v.parent_command_line.get_or_init(|| command_line(&p.argv)).as_str(),
            )))
        },
    },
    Field {
        name: "GrandparentImage",
        scope: Scope::Process,
        doc: "the parent's parent's executable",
        get: |v| ne(&v.record.ancestors.get(1)?.exe),
    },
    Field {
        name: "Hashes",
        scope: Scope::Process,
        doc: "`SHA256=<hex>` of the executable, once computed",
        get: |v| {
            let p = v.process()?;
            (!p.exe_sha256.is_empty())
                .then(|| EventValue::Str(Cow::Owned(format!("SHA256={}", p.exe_sha256))))
        },
    },
    Field {
        name: "Sha256",
        scope: Scope::Process,
        doc: "SHA-256 of the executable (hex), once computed",
        get: |v| ne(&v.process()?.exe_sha256),
    },
    Field {
        name: "Comm",
        scope: Scope::Process,
        doc: "the thread's command name (comm)",
        get: |v| ne(&v.process()?.comm),
    },
    Field { name: "UserId", scope: Scope::Process, doc: "real uid", get: |v| int(v.process()?.uid) },
    Field {
        name: "EffectiveUserId",
        scope: Scope::Process,
        doc: "effective uid",
        get: |v| int(v.process()?.euid),
    },
    Field { name: "GroupId", scope: Scope::Process, doc: "real gid", get: |v| int(v.process()?.gid) },
    Field {
        name: "EffectiveGroupId",
        scope: Scope::Process,
        doc: "effective gid",
        get: |v| int(v.process()?.egid),
    },
    Field {
        name: "LoginUser",
        scope: Scope::Process,
        doc: "name of the login uid",
        get: |v| ne(&v.process()?.login_user),
    },
    Field {
        name: "SessionId",
        scope: Scope::Process,
        doc: "audit session id (4294967295 = not set)",
        get: |v| int(v.process()?.session_id),
    },
    Field {
        name: "Terminal",
        scope: Scope::Process,
        doc: "controlling terminal, e.g. `pts/0`",
        get: |v| ne(&v.process()?.tty),
    },
    Field {
        name: "Cgroup",
        scope: Scope::Process,
        doc: "cgroup v2 path (systemd unit or container)",
        get: |v| ne(&v.process()?.cgroup),
    },
    Field {
        name: "ImageMemfd",
        scope: Scope::Process,
        doc: "`true` when the executable is a memfd (fileless)",
        get: |v| boolean(v.process()?.exe_memfd),
    },
    Field {
        name: "ImageDeleted",
        scope: Scope::Process,
        doc: "`true` when the executable's file was deleted",
        get: |v| boolean(v.process()?.exe_deleted),
    },
    Field {
        name: "ImageWritableTmp",
        scope: Scope::Process,
        doc: "`true` when the executable lives on a writable tmpfs (/tmp, /dev/shm, …)",
        get: |v| boolean(v.process()?.exe_writable_tmp),
    },
    Field {
        name: "AncestorImage",
        scope: Scope::Process,
        doc: "executables of all ancestors, nearest first (a value matches when any ancestor matches)",
        get: |v| ancestors_str(v, |a| ne(&a.exe)),
    },
    Field {
        name: "AncestorCommandLine",
        scope: Scope::Process,
        doc: "command lines of all ancestors (any matches)",
        get: |v| ancestors_str(v, |a| Some(EventValue::Str(Cow::Owned(command_line(&a.argv))))),
    },
    Field {
        name: "AncestorUserId",
        scope: Scope::Process,
        doc: "real uids of all ancestors (any matches)",
        get: |v| ancestors_str(v, |a| int(a.uid)),
    },
    // ---- The login session ----
    Field {
        name: "SessionUser",
        scope: Scope::Session,
        doc: "the session's login user",
        get: |v| session_field(v, |s| ne(&s.user)),
    },
    Field {
        name: "SessionService",
        scope: Scope::Session,
        doc: "the service that started the session (sshd, login, cron, …)",
        get: |v| session_field(v, |s| ne(&s.service)),
    },
    Field {
        name: "SessionRemoteAddress",
        scope: Scope::Session,
        doc: "the client address of an sshd session (use `|cidr`)",
        get: |v| session_field(v, |s| ne(&s.remote_address)),
    },
    Field {
        name: "SessionRemotePort",
        scope: Scope::Session,
        doc: "the client port of an sshd session",
        get: |v| session_field(v, |s| (s.remote_port != 0).then_some(EventValue::Int(s.remote_port.into()))),
    },
    Field {
        name: "SessionTerminal",
        scope: Scope::Session,
        doc: "the session's terminal",
        get: |v| session_field(v, |s| ne(&s.tty)),
    },
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
        get: |v| match v.event()? {
            Event::File(f) => ne(&f.syscall),
            Event::Network(n) => ne(&n.syscall),
            Event::Privilege(p) => ne(&p.syscall),
            Event::ModuleLoad(m) => ne(&m.syscall),
            _ => None,
        },
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
        doc: "`attach` or `seize`",
        get: |v| ev!(v, Event::Ptrace(p) => ne(&p.request)),
    },
    // ---- bpf_load, module_load, memfd_create ----
    Field {
        name: "BpfProgramType",
        scope: Scope::Only(&[Category::BpfLoad]),
        doc: "enum bpf_prog_type number (e.g. 2 = kprobe, 26 = tracing)",
        get: |v| ev!(v, Event::BpfLoad(b) => int(b.prog_type)),
    },
    Field {
        name: "BpfProgramName",
        scope: Scope::Only(&[Category::BpfLoad]),
        doc: "the program name the loader gave",
        get: |v| ev!(v, Event::BpfLoad(b) => ne(&b.prog_name)),
    },
    Field {
        name: "ModuleName",
        scope: Scope::Only(&[Category::ModuleLoad]),
        doc: "kernel module name",
        get: |v| ev!(v, Event::ModuleLoad(m) => ne(&m.name)),
    },
    Field {
        name: "MemfdName",
        scope: Scope::Only(&[Category::MemfdCreate]),
        doc: "name given to memfd_create",
        get: |v| ev!(v, Event::MemfdCreate(m) => s(&m.name)),
    },
    Field {
        name: "MemfdFlags",
        scope: Scope::Only(&[Category::MemfdCreate]),
        doc: "MFD_* flags (a number)",
        get: |v| ev!(v, Event::MemfdCreate(m) => int(m.flags)),
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

static FIELD_INDEX: LazyLock<HashMap<&'static str, &'static Field>> =
    LazyLock::new(|| FIELDS.iter().map(|f| (f.name, f)).collect());

/// The field mapping as a Markdown table (`sensor rules fields`, the README).
pub fn markdown_table() -> String {
    let mut s = String::from("| field | on | meaning |\n|---|---|---|\n");
    for f in FIELDS {
        s.push_str(&format!("| `{}` | {} | {} |\n", f.name, f.scope.describe(), f.doc.replace('|', "\\|")));
    }
    s
}

/// The field of this name, if the sensor provides it.
pub fn lookup(name: &str) -> Option<&'static Field> {
    FIELD_INDEX.get(name).copied()
}

impl rsigma_eval::Event for RecordView<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        // The sessions' fields are filled from the session record itself on `session` records.
        if self.category == Category::Session
            && let Some(Event::Session(s)) = self.event()
        {
            match path {
                "SessionUser" => return ne(&s.user),
                "SessionService" => return ne(&s.service),
                "SessionRemoteAddress" => return ne(&s.remote_address),
                "SessionRemotePort" => {
                    return (s.remote_port != 0).then_some(EventValue::Int(s.remote_port.into()));
                }
                "SessionTerminal" => return ne(&s.tty),
                _ => {}
            }
        }
        self.field(path)
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        let mut hit = false;
        self.visit_string_values(&mut |v| hit = hit || pred(v));
        hit
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out = Vec::new();
        self.visit_string_values(&mut |v| out.push(Cow::Owned(v.to_owned())));
        out
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        for f in FIELDS.iter().filter(|f| f.scope.covers(self.category)) {
            if let Some(v) = rsigma_eval::Event::get_field(self, f.name) {
                visit_value(&v, visit);
            }
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("event_id".into(), serde_json::Value::String(self.record.seq.to_string()));
        for f in FIELDS.iter().filter(|f| f.scope.covers(self.category)) {
            if let Some(v) = rsigma_eval::Event::get_field(self, f.name) {
                map.insert(f.name.into(), v.to_json());
            }
        }
        serde_json::Value::Object(map)
    }
}

fn visit_value(v: &EventValue<'_>, visit: &mut dyn FnMut(&str)) {
    match v {
        EventValue::Str(s) => visit(s),
        EventValue::Array(items) => items.iter().for_each(|i| visit_value(i, visit)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
