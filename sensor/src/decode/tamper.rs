//! Signals aimed at the sensor and `bpf()` commands on its objects.

use sensor_common::{
    EventHeader,
    tamper::{BpfCmdEvent, FLAG_OWN_OBJECT, FLAG_SENDER_IS_PARENT, FLAG_TARGET_SENSOR, SignalEvent},
};

use super::{DecodeError, fixed, task::TaskRaw};

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

pub fn decode_signal(header: EventHeader, buf: &[u8]) -> Result<SignalRaw, DecodeError> {
    let (e, _) = fixed::<SignalEvent>(buf)?;
    Ok(SignalRaw {
        task: (&e.task).into(),
        target_tgid: e.target_tgid,
        target_tid: e.target_tid,
        target_start_ns: e.target_start_ns,
        signal: e.signal,
        code: e.code,
        group: e.group != 0,
        result: e.result,
        target_sensor: header.flags & FLAG_TARGET_SENSOR != 0,
        from_parent: header.flags & FLAG_SENDER_IS_PARENT != 0,
        header,
    })
}

pub fn decode_bpf_cmd(header: EventHeader, buf: &[u8]) -> Result<BpfCmdRaw, DecodeError> {
    let (e, _) = fixed::<BpfCmdEvent>(buf)?;
    Ok(BpfCmdRaw {
        task: (&e.task).into(),
        cmd: e.cmd,
        obj_type: e.obj_type,
        obj_id: e.obj_id,
        result: e.result,
        own_object: header.flags & FLAG_OWN_OBJECT != 0,
        path: super::task::until_nul(&e.path).to_vec(),
        header,
    })
}
