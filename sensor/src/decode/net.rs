//! Network events.

use std::mem::offset_of;

use sensor_common::{
    EventHeader,
    net::{NET_DATAGRAM, NET_PAYLOAD_MAX, NET_PAYLOAD_TRUNCATED, NetEvent},
};

use super::{DecodeError, Reader, task::TaskRaw};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRaw {
    pub header: EventHeader,
    pub task: TaskRaw,
    pub op: u32,
    pub result: i32,
    pub family: u16,
    pub protocol: u16,
    pub sock_type: u16,
    pub local_port: u16,
    pub remote_port: u16,
    pub syscall_nr: u32,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub payload: Vec<u8>,
    pub payload_truncated: bool,
    pub datagram: bool,
}

pub(super) fn decode(header: EventHeader, buf: &[u8]) -> Result<NetRaw, DecodeError> {
    let r = Reader::new(buf, size_of::<NetEvent>())?;
    let u16_at = |off: usize| {
        let b: [u8; 2] = r.bytes(off);
        u16::from_ne_bytes(b)
    };
    let payload: [u8; NET_PAYLOAD_MAX] = r.bytes(offset_of!(NetEvent, payload));
    let len = (r.u32(offset_of!(NetEvent, payload_len)) as usize).min(NET_PAYLOAD_MAX);
    Ok(NetRaw {
        task: super::task::decode(&r, offset_of!(NetEvent, task)),
        op: r.u32(offset_of!(NetEvent, op)),
        result: i32::from_ne_bytes(r.u32(offset_of!(NetEvent, result)).to_ne_bytes()),
        family: u16_at(offset_of!(NetEvent, family)),
        protocol: u16_at(offset_of!(NetEvent, protocol)),
        sock_type: u16_at(offset_of!(NetEvent, sock_type)),
        local_port: u16_at(offset_of!(NetEvent, local_port)),
        remote_port: u16_at(offset_of!(NetEvent, remote_port)),
        syscall_nr: r.u32(offset_of!(NetEvent, syscall_nr)),
        local_addr: r.bytes(offset_of!(NetEvent, local_addr)),
        remote_addr: r.bytes(offset_of!(NetEvent, remote_addr)),
        payload: payload[..len].to_vec(),
        payload_truncated: header.flags & NET_PAYLOAD_TRUNCATED != 0,
        datagram: header.flags & NET_DATAGRAM != 0,
        header,
    })
}
