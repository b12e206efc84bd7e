//! Credential, ptrace, module, BPF-load and memfd events.

use std::mem::offset_of;

use sensor_common::{
    EventHeader,
    syscalls::{BpfLoadEvent, CredEvent, Creds, MemfdEvent, ModuleEvent, PtraceEvent},
};

use super::{
    DecodeError, Reader,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemfdRaw {
    pub header: EventHeader,
    pub task: TaskRaw,
    pub flags: u32,
    pub result: i32,
    pub name: Vec<u8>,
}

fn creds(r: &Reader<'_>, base: usize) -> Creds {
    let u = |f: usize| r.u32(base + f);
    Creds {
        uid: u(offset_of!(Creds, uid)),
        euid: u(offset_of!(Creds, euid)),
        suid: u(offset_of!(Creds, suid)),
        fsuid: u(offset_of!(Creds, fsuid)),
        gid: u(offset_of!(Creds, gid)),
        egid: u(offset_of!(Creds, egid)),
        sgid: u(offset_of!(Creds, sgid)),
        fsgid: u(offset_of!(Creds, fsgid)),
        cap_effective: r.u64(base + offset_of!(Creds, cap_effective)),
        cap_permitted: r.u64(base + offset_of!(Creds, cap_permitted)),
    }
}

fn i32_at(r: &Reader<'_>, off: usize) -> i32 {
    i32::from_ne_bytes(r.u32(off).to_ne_bytes())
}

pub(super) fn decode_cred(header: EventHeader, buf: &[u8]) -> Result<CredRaw, DecodeError> {
    let r = Reader::new(buf, size_of::<CredEvent>())?;
    Ok(CredRaw {
        task: super::task::decode(&r, offset_of!(CredEvent, task)),
        old: creds(&r, offset_of!(CredEvent, old)),
        new: creds(&r, offset_of!(CredEvent, new)),
        syscall_nr: r.u32(offset_of!(CredEvent, syscall_nr)),
        header,
    })
}

pub(super) fn decode_ptrace(header: EventHeader, buf: &[u8]) -> Result<PtraceRaw, DecodeError> {
    let r = Reader::new(buf, size_of::<PtraceEvent>())?;
    Ok(PtraceRaw {
        task: super::task::decode(&r, offset_of!(PtraceEvent, task)),
        request: r.u64(offset_of!(PtraceEvent, request)),
        target_pid: r.u32(offset_of!(PtraceEvent, target_pid)),
        result: i32_at(&r, offset_of!(PtraceEvent, result)),
        target_fd: r.u32(offset_of!(PtraceEvent, target_fd)),
        target_sensor: header.flags & sensor_common::tamper::FLAG_TARGET_SENSOR != 0,
        header,
    })
}

pub(super) fn decode_module(header: EventHeader, buf: &[u8]) -> Result<ModuleRaw, DecodeError> {
    let r = Reader::new(buf, size_of::<ModuleEvent>())?;
    let name: [u8; sensor_common::syscalls::MODULE_NAME_LEN] = r.bytes(offset_of!(ModuleEvent, name));
    Ok(ModuleRaw {
        task: super::task::decode(&r, offset_of!(ModuleEvent, task)),
        name: until_nul(&name).to_vec(),
        header,
    })
}

pub(super) fn decode_bpf(header: EventHeader, buf: &[u8]) -> Result<BpfLoadRaw, DecodeError> {
    let r = Reader::new(buf, size_of::<BpfLoadEvent>())?;
    let name: [u8; sensor_common::syscalls::BPF_NAME_LEN] = r.bytes(offset_of!(BpfLoadEvent, prog_name));
    Ok(BpfLoadRaw {
        task: super::task::decode(&r, offset_of!(BpfLoadEvent, task)),
        prog_type: r.u32(offset_of!(BpfLoadEvent, prog_type)),
        result: i32_at(&r, offset_of!(BpfLoadEvent, result)),
        prog_name: until_nul(&name).to_vec(),
        header,
    })
}

pub(super) fn decode_memfd(header: EventHeader, buf: &[u8]) -> Result<MemfdRaw, DecodeError> {
    let r = Reader::new(buf, size_of::<MemfdEvent>())?;
    let name: [u8; sensor_common::syscalls::MEMFD_NAME_LEN] = r.bytes(offset_of!(MemfdEvent, name));
    Ok(MemfdRaw {
        task: super::task::decode(&r, offset_of!(MemfdEvent, task)),
        flags: r.u32(offset_of!(MemfdEvent, flags)),
        result: i32_at(&r, offset_of!(MemfdEvent, result)),
        name: until_nul(&name).to_vec(),
        header,
    })
}
