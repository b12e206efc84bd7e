//! Network events: the fixed part, then `payload_len` bytes of payload (only sends carry one).

use std::mem::offset_of;

use sensor_common::{
    EventHeader,
    net::{NET_DATAGRAM, NET_FIXED_SIZE, NET_PAYLOAD_MAX, NET_PAYLOAD_TRUNCATED, NetEvent},
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
    let r = Reader::new(buf, NET_FIXED_SIZE)?;
    let u16_at = |off: usize| {
        let b: [u8; 2] = r.bytes(off);
        u16::from_ne_bytes(b)
    };
    let len = r.u32(offset_of!(NetEvent, payload_len));
    if len as usize > NET_PAYLOAD_MAX {
        return Err(DecodeError::FieldOverrun { field: "payload", len, avail: NET_PAYLOAD_MAX });
    }
    let mut cursor = NET_FIXED_SIZE;
    let payload = r.take(&mut cursor, len, "payload")?.to_vec();
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
        payload,
        payload_truncated: header.flags & NET_PAYLOAD_TRUNCATED != 0,
        datagram: header.flags & NET_DATAGRAM != 0,
        header,
    })
}

#[cfg(test)]
mod tests {
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
