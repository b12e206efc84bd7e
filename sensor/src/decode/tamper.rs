//! Signals aimed at the sensor and `bpf()` commands on its objects.

use std::mem::offset_of;

use sensor_common::{
    EventHeader,
    tamper::{
        BPF_PATH_LEN, BpfCmdEvent, FLAG_OWN_OBJECT, FLAG_SENDER_IS_PARENT, FLAG_TARGET_SENSOR, SignalEvent,
    },
};

use super::{DecodeError, Reader, task::TaskRaw};

/// A signal generated for the sensor; `header`/`task` are the sending context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalRaw {
    pub header: EventHeader,
    pub task: TaskRaw,
    pub target_tgid: u32,
    pub target_tid: u32,
    pub target_start_ns: u64,
    pub signal: u32,
    /// `si_code`.
    pub code: i32,
    pub group: bool,
    pub result: u32,
    pub target_sensor: bool,
    pub from_parent: bool,
}

/// A `bpf()` command on one of the sensor's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfCmdRaw {
    pub header: EventHeader,
    pub task: TaskRaw,
    pub cmd: u32,
    pub obj_type: u32,
    pub obj_id: u32,
    pub result: i32,
    pub own_object: bool,
    /// `BPF_OBJ_GET`: the pin's path as given (may be relative).
    pub path: Vec<u8>,
}

fn i32_at(r: &Reader<'_>, off: usize) -> i32 {
    i32::from_ne_bytes(r.u32(off).to_ne_bytes())
}

pub(super) fn decode_signal(header: EventHeader, buf: &[u8]) -> Result<SignalRaw, DecodeError> {
    let r = Reader::new(buf, size_of::<SignalEvent>())?;
    Ok(SignalRaw {
        task: super::task::decode(&r, offset_of!(SignalEvent, task)),
        target_tgid: r.u32(offset_of!(SignalEvent, target_tgid)),
        target_tid: r.u32(offset_of!(SignalEvent, target_tid)),
        target_start_ns: r.u64(offset_of!(SignalEvent, target_start_ns)),
        signal: r.u32(offset_of!(SignalEvent, signal)),
        code: i32_at(&r, offset_of!(SignalEvent, code)),
        group: r.u32(offset_of!(SignalEvent, group)) != 0,
        result: r.u32(offset_of!(SignalEvent, result)),
        target_sensor: header.flags & FLAG_TARGET_SENSOR != 0,
        from_parent: header.flags & FLAG_SENDER_IS_PARENT != 0,
        header,
    })
}

pub(super) fn decode_bpf_cmd(header: EventHeader, buf: &[u8]) -> Result<BpfCmdRaw, DecodeError> {
    let r = Reader::new(buf, size_of::<BpfCmdEvent>())?;
    Ok(BpfCmdRaw {
        task: super::task::decode(&r, offset_of!(BpfCmdEvent, task)),
        cmd: r.u32(offset_of!(BpfCmdEvent, cmd)),
        obj_type: r.u32(offset_of!(BpfCmdEvent, obj_type)),
        obj_id: r.u32(offset_of!(BpfCmdEvent, obj_id)),
        result: i32_at(&r, offset_of!(BpfCmdEvent, result)),
        own_object: header.flags & FLAG_OWN_OBJECT != 0,
        path: super::task::until_nul(&r.bytes::<BPF_PATH_LEN>(offset_of!(BpfCmdEvent, path))).to_vec(),
        header,
    })
}
