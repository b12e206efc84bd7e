//! Network events from system-call tracepoints: connect, accept, bind, listen, and the first
//! datagram of each UDP flow (process, remote address, port) with its payload, on any port, so
//! userspace can decode DNS sent to non-standard ports; every datagram to port 53 is reported
//! with its payload. Addresses are read from the socket (`struct sock_common`) and from the
//! sockaddr argument.
//!
//! A [`NetEvent`] travels as its fixed part ([`NET_FIXED_SIZE`] bytes) followed by
//! `payload_len` bytes of payload: `header.size` is `NET_FIXED_SIZE + payload_len`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{
    EventHeader, kind,
    names::{self, KindPrograms},
    task::TaskInfo,
};

/// Network operations (stable numbers).
pub mod op {
    pub const CONNECT: u32 = 1;
    pub const ACCEPT: u32 = 2;
    pub const BIND: u32 = 3;
    pub const LISTEN: u32 = 4;
    /// First datagram of a (process, remote) UDP flow, or a datagram to port 53; both carry
    /// the payload (up to [`super::NET_PAYLOAD_MAX`] bytes).
    pub const SEND: u32 = 5;
}

/// `header.flags`: the socket is connection-less (datagram) — the remote came from the
/// sendto/sendmsg address or the connected peer.
pub const NET_DATAGRAM: u32 = 1 << 0;
/// `header.flags`: the payload was longer than captured.
pub const NET_PAYLOAD_TRUNCATED: u32 = 1 << 1;

/// Bytes of payload captured (DNS over UDP fits in 512).
pub const NET_PAYLOAD_MAX: usize = 512;
/// DNS port: datagrams to it are always reported (not only a flow's first).
pub const DNS_PORT: u16 = 53;

/// A network event.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct NetEvent {
    pub header: EventHeader,
    pub task: TaskInfo,
    pub op: u32,
    /// Return value: 0, a new fd (accept), bytes sent (messages sent for sendmmsg), or -errno.
    pub result: i32,
    /// AF_INET (2) or AF_INET6 (10).
    pub family: u16,
    /// IPPROTO_TCP (6), IPPROTO_UDP (17), ...
    pub protocol: u16,
    /// SOCK_STREAM (1), SOCK_DGRAM (2), ...
    pub sock_type: u16,
    /// Host byte order.
    pub local_port: u16,
    pub remote_port: u16,
    pub _pad: u16,
    pub syscall_nr: u32,
    /// IPv4 in the first 4 bytes, or IPv6.
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    /// Bytes of `payload` that were captured and sent.
    pub payload_len: u32,
    /// Length of the datagram (of the first buffer, for sendmsg/sendmmsg).
    pub payload_total: u32,
    /// Only the first `payload_len` bytes are sent.
    pub payload: [u8; NET_PAYLOAD_MAX],
}

/// Bytes of a [`NetEvent`] before its payload: the size of an event without payload.
pub const NET_FIXED_SIZE: usize = core::mem::offset_of!(NetEvent, payload);
const _: () = assert!(NET_FIXED_SIZE == 232);
const _: () = assert!(core::mem::offset_of!(NetEvent, local_addr) % 8 == 0);

impl Default for NetEvent {
    fn default() -> Self {
        Self {
            header: EventHeader::default(),
            task: TaskInfo::default(),
            op: 0,
            result: 0,
            family: 0,
            protocol: 0,
            sock_type: 0,
            local_port: 0,
            remote_port: 0,
            _pad: 0,
            syscall_nr: 0,
            local_addr: [0; 16],
            remote_addr: [0; 16],
            payload_len: 0,
            payload_total: 0,
            payload: [0; NET_PAYLOAD_MAX],
        }
    }
}

const _: () = assert!(size_of::<NetEvent>() == NET_FIXED_SIZE + NET_PAYLOAD_MAX);
const _: () = assert!(size_of::<NetEvent>().is_multiple_of(8));

/// Where one network syscall keeps its arguments.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct NetSyscallSpec {
    pub op: u32,
    /// Arg index of a `struct sockaddr *` to read at enter (ARG_NONE: none).
    pub addr: u8,
    /// Arg index of the payload buffer (sendto).
    pub buf: u8,
    /// Arg index of the payload length (sendto).
    pub len: u8,
    /// Arg index of a `struct user_msghdr *` (sendmsg), or of a `struct mmsghdr *` (sendmmsg:
    /// its first member is the first message's `user_msghdr`).
    pub msghdr: u8,
}

const _: () = assert!(size_of::<NetSyscallSpec>() == 8);

/// What the enter program keeps for the exit (by thread).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct PendingNet {
    pub nr: u32,
    pub fd: u32,
    /// The sockaddr argument as read at enter, in native-endian words (a `sockaddr_in6` is 28
    /// bytes); zero when none. Words, not bytes, so the programs copy it without byte loops.
    pub sockaddr: [u64; 4],
    /// Where the sockaddr is in the caller's memory (zero when none): read again at exit when
    /// the enter's read found no page there.
    pub sockaddr_ptr: u64,
    pub buf: u64,
    pub len: u64,
}

const _: () = assert!(size_of::<PendingNet>() == 64);

/// Key of the UDP flow table: one report per (process, remote address, remote port).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct FlowKey {
    pub tgid: u32,
    pub family: u16,
    pub port: u16,
    /// IPv4 in the low 4 bytes of the first word, or IPv6; as the bytes lie in memory.
    pub addr: [u64; 2],
}

const _: () = assert!(size_of::<FlowKey>() == 24);

impl KindPrograms for kind::Net {
    const PROGRAMS: &'static [&'static str] = &[names::PROG_SYS_ENTER_NET, names::PROG_SYS_EXIT_NET];
    const RAW_TWINS: &'static [(&'static str, &'static str, &'static str)] = &[
        (names::PROG_SYS_ENTER_NET, "raw_enter_net", "fentry_net"),
        (names::PROG_SYS_EXIT_NET, "raw_exit_net", "fexit_net"),
    ];
}
