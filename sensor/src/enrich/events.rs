//! Raw kernel events → the event part of a record (one function per kind).

use sensor_common::syscalls::Creds;
use sensor_proto::v1::{
    BpfLoadEvent, Credentials, ExecEvent, ExitEvent, ForkEvent, ModuleLoadEvent, PrivilegeEvent, PtraceEvent,
    audit_record::Event,
};

use crate::{
    decode::{BpfLoadRaw, CredRaw, ExecRaw, ExitRaw, ForkRaw, ModuleRaw, PtraceRaw},
    text::text,
};

use super::raw_split;

pub fn exec(e: &ExecRaw, argc_captured: usize) -> Event {
    let (filename, filename_raw) = raw_split(e.filename.clone());
    let (interpreter, interpreter_raw) = e.interpreter.clone().map(raw_split).unwrap_or_default();
    Event::Exec(ExecEvent {
        filename,
        filename_raw,
        argc: u32::try_from(argc_captured).unwrap_or(u32::MAX),
        args_total_bytes: e.args_total_len,
        old_pid: e.old_pid,
        filename_truncated: e.filename_truncated,
        argv_unreadable: e.args_unreadable,
        interpreter,
        interpreter_raw,
        kernel_argc: e.argc,
    })
}

pub fn fork(f: &ForkRaw, parent_guid: String) -> Event {
    Event::Fork(ForkEvent { parent_guid, parent_pid: f.parent_tgid, thread: f.thread })
}

pub fn exit(x: &ExitRaw) -> Event {
    let code = x.exit_code;
    let signal = code & 0x7f;
    Event::Exit(ExitEvent {
        code: if signal == 0 { ((code >> 8) & 0xff) as i32 } else { 0 },
        signal,
        core_dumped: code & 0x80 != 0,
        lifetime_ns: x.header.boot_ns.saturating_sub(x.task.start_boottime_ns),
    })
}

fn creds(c: &Creds) -> Credentials {
    Credentials {
        uid: c.uid,
        euid: c.euid,
        suid: c.suid,
        fsuid: c.fsuid,
        gid: c.gid,
        egid: c.egid,
        sgid: c.sgid,
        fsgid: c.fsgid,
        cap_effective: c.cap_effective,
        cap_permitted: c.cap_permitted,
    }
}

pub fn privilege(c: &CredRaw) -> Event {
    Event::Privilege(PrivilegeEvent {
        syscall: crate::file_syscalls::name(c.syscall_nr)
            .map_or_else(|| format!("syscall#{}", c.syscall_nr), str::to_owned),
        old: Some(creds(&c.old)),
        new: Some(creds(&c.new)),
    })
}

pub fn ptrace(p: &PtraceRaw, target_guid: String, target_exe: String, target_sensor: bool) -> Event {
    use sensor_common::tamper::{REQ_PIDFD_GETFD, REQ_PROCESS_VM_READV, REQ_PROCESS_VM_WRITEV};
    Event::Ptrace(PtraceEvent {
        request: match p.request {
            16 => "attach".into(),
            0x4206 => "seize".into(),
            REQ_PROCESS_VM_WRITEV => "process_vm_writev".into(),
            REQ_PROCESS_VM_READV => "process_vm_readv".into(),
            REQ_PIDFD_GETFD => "pidfd_getfd".into(),
            other => format!("request#{other}"),
        },
        target_pid: p.target_pid,
        target_guid,
        target_exe,
        result: p.result,
        target_sensor,
        target_fd: if p.request == REQ_PIDFD_GETFD { p.target_fd } else { 0 },
    })
}

pub fn module_load(m: &ModuleRaw) -> Event {
    Event::ModuleLoad(ModuleLoadEvent { name: text(&m.name).0, syscall: String::new() })
}

pub fn bpf_load(b: &BpfLoadRaw) -> Event {
    Event::BpfLoad(BpfLoadEvent { prog_type: b.prog_type, prog_name: text(&b.prog_name).0, result: b.result })
}
