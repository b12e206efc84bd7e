//! Credential, ptrace, module and BPF-load events.

use sensor_common::{
    EventHeader,
    syscalls::{BpfLoadEvent, CredEvent, Creds, ModuleEvent, PtraceEvent},
};

use super::{
    DecodeError, fixed,
    task::{TaskRaw, until_nul},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredRaw {
    pub header: EventHeader,
    pub task: TaskRaw,
    pub old: Creds,
    pub new: Creds,
    /// System call number (see `enrich::syscall_names`).
    pub syscall_nr: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtraceRaw {
    pub header: EventHeader,
    pub task: TaskRaw,
    /// A ptrace request, or a `sensor_common::tamper::REQ_*` value.
    pub request: u64,
    pub target_pid: u32,
    pub result: i32,
    pub target_fd: u32,
    pub target_sensor: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRaw {
    pub header: EventHeader,
    pub task: TaskRaw,
    pub name: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfLoadRaw {
    pub header: EventHeader,
    pub task: TaskRaw,
    pub prog_type: u32,
    pub result: i32,
    pub prog_name: Vec<u8>,
}

pub fn decode_cred(header: EventHeader, buf: &[u8]) -> Result<CredRaw, DecodeError> {
    let (e, _) = fixed::<CredEvent>(buf)?;
    Ok(CredRaw { task: (&e.task).into(), old: e.old, new: e.new, syscall_nr: e.syscall_nr, header })
}

pub fn decode_ptrace(header: EventHeader, buf: &[u8]) -> Result<PtraceRaw, DecodeError> {
    let (e, _) = fixed::<PtraceEvent>(buf)?;
    Ok(PtraceRaw {
        task: (&e.task).into(),
        request: e.request,
        target_pid: e.target_pid,
        result: e.result,
        target_fd: e.target_fd,
        target_sensor: header.flags & sensor_common::tamper::FLAG_TARGET_SENSOR != 0,
        header,
    })
}

pub fn decode_module(header: EventHeader, buf: &[u8]) -> Result<ModuleRaw, DecodeError> {
    let (e, _) = fixed::<ModuleEvent>(buf)?;
    Ok(ModuleRaw { task: (&e.task).into(), name: until_nul(&e.name).to_vec(), header })
}

pub fn decode_bpf(header: EventHeader, buf: &[u8]) -> Result<BpfLoadRaw, DecodeError> {
    let (e, _) = fixed::<BpfLoadEvent>(buf)?;
    Ok(BpfLoadRaw {
        task: (&e.task).into(),
        prog_type: e.prog_type,
        result: e.result,
        prog_name: until_nul(&e.prog_name).to_vec(),
        header,
    })
}
