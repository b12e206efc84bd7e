//! Network events: the fixed part, then `payload_len` bytes of payload (only sends carry one).

use sensor_common::{
    EventHeader,
    net::{NET_DATAGRAM, NET_FIXED_SIZE, NET_PAYLOAD_MAX, NET_PAYLOAD_TRUNCATED, NetEvent},
};

use zerocopy::{FromZeros, IntoBytes};

use super::{DecodeError, Tail, task::TaskRaw};

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

pub fn decode(header: EventHeader, buf: &[u8]) -> Result<NetRaw, DecodeError> {
    if buf.len() < NET_FIXED_SIZE {
        return Err(DecodeError::Short { need: NET_FIXED_SIZE, got: buf.len() });
    }
    // Only `payload_len` bytes of the payload array travel: copy what came into a zeroed event.
    let mut e = NetEvent::new_zeroed();
    let n = buf.len().min(size_of::<NetEvent>());
    e.as_mut_bytes()[..n].copy_from_slice(&buf[..n]);
    let len = e.payload_len;
    if len as usize > NET_PAYLOAD_MAX {
        return Err(DecodeError::FieldOverrun { field: "payload", len, avail: NET_PAYLOAD_MAX });
    }
    let payload = Tail::new(&buf[NET_FIXED_SIZE..]).take(len, "payload")?.to_vec();
    Ok(NetRaw {
        task: (&e.task).into(),
        op: e.op,
        result: e.result,
        family: e.family,
        protocol: e.protocol,
        sock_type: e.sock_type,
        local_port: e.local_port,
        remote_port: e.remote_port,
        syscall_nr: e.syscall_nr,
        local_addr: e.local_addr,
        remote_addr: e.remote_addr,
        payload,
        payload_truncated: header.flags & NET_PAYLOAD_TRUNCATED != 0,
        datagram: header.flags & NET_DATAGRAM != 0,
        header,
    })
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use sensor_common::EventKind;

    use super::*;

    fn event(payload: &[u8], claimed_len: u32) -> Vec<u8> {
        let mut b = vec![0u8; NET_FIXED_SIZE];
        let put32 = |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        let size = (NET_FIXED_SIZE + payload.len()) as u32;
        put32(&mut b, offset_of!(EventHeader, kind), EventKind::Net as u32);
        put32(&mut b, offset_of!(EventHeader, size), size);
        put32(&mut b, offset_of!(NetEvent, op), sensor_common::net::op::SEND);
        put32(&mut b, offset_of!(NetEvent, payload_len), claimed_len);
        b[offset_of!(NetEvent, remote_port)..][..2].copy_from_slice(&5353u16.to_ne_bytes());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn the_payload_follows_the_fixed_part() {
        let b = event(b"\x12\x34dns", 5);
        let n = decode(crate::decode::header(&b).expect("header"), &b).expect("decodes");
        assert_eq!((n.payload.as_slice(), n.remote_port), (&b"\x12\x34dns"[..], 5353));
        let b = event(b"", 0);
        assert!(decode(crate::decode::header(&b).expect("header"), &b).expect("decodes").payload.is_empty());
    }

    #[test]
    fn a_payload_length_past_the_event_is_an_error() {
        let b = event(b"abc", 4);
        assert!(matches!(
            decode(crate::decode::header(&b).expect("header"), &b),
            Err(DecodeError::FieldOverrun { field: "payload", .. })
        ));
        let b = event(b"abc", 4096);
        assert!(decode(crate::decode::header(&b).expect("header"), &b).is_err());
    }
}
