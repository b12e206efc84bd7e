//! Fields of the acting process, its ancestry and its login session.

use std::borrow::Cow;

use rsigma_eval::EventValue;
use sensor_proto::v1::Ancestor;

use super::{Field, RecordView, Scope, SessionInfo, boolean, command_line, int, ne, s};

fn ancestors_str<'a>(
    v: &RecordView<'a>,
    f: fn(&'a Ancestor) -> Option<EventValue<'a>>,
) -> Option<EventValue<'a>> {
    let items: Vec<EventValue<'a>> = v.ancestors.iter().filter_map(f).collect();
    (!items.is_empty()).then_some(EventValue::Array(items))
}

fn session_field<'a>(
    v: &RecordView<'a>,
    pick: fn(&'a SessionInfo) -> Option<EventValue<'a>>,
) -> Option<EventValue<'a>> {
    v.session.and_then(pick)
}

/// Fields every record with a process has, in documentation order.
pub(super) static PROCESS: &[Field] = &[
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
        get: |v| ne(&v.ancestors.get(1)?.exe),
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
        name: "SyscallIa32",
        scope: Scope::Process,
        doc: "`true` when the event's system call came through the 32-bit entry (`int 0x80`, a 32-bit program)",
        get: |v| boolean(v.process()?.syscall_ia32),
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
        doc: "command lines of all ancestors (any matches; above the parent as the record has them, cut to `limits.ancestor_argv_bytes`)",
        get: |v| {
            let lines = v
                .ancestor_command_lines
                .get_or_init(|| v.ancestors.iter().map(|a| command_line(&a.argv)).collect());
            let items: Vec<EventValue<'_>> =
                lines.iter().map(|l| EventValue::Str(Cow::Borrowed(l.as_str()))).collect();
            (!items.is_empty()).then_some(EventValue::Array(items))
        },
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
];
