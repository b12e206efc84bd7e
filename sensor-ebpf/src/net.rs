//! Network events: one program on `sys_enter_*` and one on `sys_exit_*` of connect, accept,
//! accept4, bind, listen, sendto and sendmsg. Which argument is what comes from `NET_SYSCALLS`
//! (written by the loader). Addresses come from the socket (`struct sock_common`) and, for
//! connect/bind/sendto/sendmsg, from the sockaddr argument read at enter.
//!
//! UDP is reported once per (process, remote address, port) flow (`NET_FLOWS`, an LRU), except
//! datagrams to port 53, which are all reported with their payload for DNS decoding.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_task, generated::bpf_probe_read_user},
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap, RingBuf},
    programs::TracePointContext,
};
use sensor_common::{
    EventKind,
    file::ARG_NONE,
    net::{
        DNS_PORT, FlowKey, NET_DATAGRAM, NET_PAYLOAD_MAX, NET_PAYLOAD_TRUNCATED, NetEvent, NetSyscallSpec,
        PendingNet, op,
    },
};

use crate::{
    emit::{Loss, count_loss, fill_header, wakeup_flags},
    file::fd_file,
    kernel::{arg_at, read, read_ptr, tp_args, tp_field},
    maps::{capture, ready},
    off,
    task::fill_task,
};

#[map(name = "NET_EVENTS")]
static NET_EVENTS: RingBuf = RingBuf::with_byte_size(2 * 1024 * 1024, 0);

#[map(name = "NET_SYSCALLS")]
static NET_SYSCALLS: HashMap<u32, NetSyscallSpec> = HashMap::with_max_entries(16, 0);

#[map(name = "PENDING_NET")]
static PENDING_NET: LruHashMap<u32, PendingNet> = LruHashMap::with_max_entries(16384, 0);

/// UDP flows already reported.
#[map(name = "NET_FLOWS")]
static NET_FLOWS: LruHashMap<FlowKey, u8> = LruHashMap::with_max_entries(65536, 0);

const SYSCALL_NR: usize = 8;
const ARGS: usize = 16;
const RET: usize = 16;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_DGRAM: u16 = 2;
const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;

#[tracepoint]
#[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
pub fn sys_enter_net(ctx: TracePointContext) -> u32 {
    if !ready() {
        return 0;
    }
    let cfg = capture();
    if cfg.self_tgid != 0 && ctx.tgid() == cfg.self_tgid {
        return 0;
    }
    // SAFETY: reads of the tracepoint record; map lookup of a plain value.
    let nr: i32 = unsafe { tp_field(&ctx, SYSCALL_NR) };
    let Some(spec) = (unsafe { NET_SYSCALLS.get(nr as u32) }).copied() else { return 0 };
    let args = tp_args(&ctx, ARGS);
    let mut p =
        PendingNet { nr: nr as u32, fd: arg_at(&args, 0) as u32, sockaddr: [0; 28], _pad: 0, buf: 0, len: 0 };
    let mut addr_ptr = if spec.addr != ARG_NONE { arg_at(&args, spec.addr) } else { 0 };
    if spec.buf != ARG_NONE {
        p.buf = arg_at(&args, spec.buf);
        p.len = arg_at(&args, spec.len);
    }
    if spec.msghdr != ARG_NONE {
        // struct user_msghdr (UAPI): msg_name at 0, msg_iov at 16; struct iovec: base, len.
        let msg = arg_at(&args, spec.msghdr);
        let mut hdr = [0u64; 3];
        // SAFETY: user memory read with the probe helper into a stack value.
        unsafe {
            if bpf_probe_read_user(hdr.as_mut_ptr().cast(), 24, msg as *const _) == 0 {
                addr_ptr = hdr[0];
                let mut iov = [0u64; 2];
                if bpf_probe_read_user(iov.as_mut_ptr().cast(), 16, hdr[2] as *const _) == 0 {
                    p.buf = iov[0];
                    p.len = iov[1];
                }
            }
        }
    }
    if addr_ptr != 0 {
        // SAFETY: user memory read with the probe helper into a stack value.
        unsafe { bpf_probe_read_user(p.sockaddr.as_mut_ptr().cast(), 28, addr_ptr as *const _) };
    }
    let _ = PENDING_NET.insert(ctx.pid(), p, 0);
    0
}

#[tracepoint]
#[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
pub fn sys_exit_net(ctx: TracePointContext) -> u32 {
    match try_exit(&ctx) {
        Ok(()) => 0,
        Err(why) => {
            count_loss(EventKind::Net, why);
            0
        }
    }
}

/// Family, port (host order) and address of a sockaddr read at enter.
#[inline(always)]
fn sockaddr(sa: &[u8; 28]) -> (u16, u16, [u8; 16]) {
    let family = u16::from_ne_bytes([sa[0], sa[1]]);
    let port = u16::from_be_bytes([sa[2], sa[3]]);
    let mut addr = [0u8; 16];
    if family == AF_INET {
        addr[..4].copy_from_slice(&sa[4..8]);
    } else if family == AF_INET6 {
        addr.copy_from_slice(&sa[8..24]);
    }
    (family, port, addr)
}

fn try_exit(ctx: &TracePointContext) -> Result<(), Loss> {
    if !ready() {
        return Ok(());
    }
    let tid = ctx.pid();
    let tgid = ctx.tgid();
    // SAFETY: map lookups; the value is copied out before removal.
    let Some(p) = (unsafe { PENDING_NET.get(tid) }).copied() else { return Ok(()) };
    let _ = PENDING_NET.remove(tid);
    // SAFETY: map lookup of a plain value.
    let Some(spec) = (unsafe { NET_SYSCALLS.get(p.nr) }).copied() else { return Ok(()) };
    // SAFETY: reads the tracepoint record.
    let ret: i64 = unsafe { tp_field(ctx, RET) };
    let fd = if spec.op == op::ACCEPT {
        if ret < 0 {
            return Ok(()); // a failed accept (e.g. EAGAIN) is not a connection
        }
        ret as u32
    } else {
        p.fd
    };
    // SAFETY: plain helper call.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let Ok(sk) = socket_of(task, fd) else { return Ok(()) };
    // SAFETY: probe reads of the sock.
    let family: u16 = unsafe { read(sk, off!(sk_family)) }.unwrap_or(0);
    if family != AF_INET && family != AF_INET6 {
        return Ok(());
    }
    // SAFETY: probe reads.
    let (sock_type, protocol): (u16, u16) =
        unsafe { (read(sk, off!(sk_type)).unwrap_or(0), read(sk, off!(sk_protocol)).unwrap_or(0)) };
    let (sa_family, sa_port, sa_addr) = sockaddr(&p.sockaddr);
    let (local_port, local_addr) = local_of(sk, family);
    let (mut remote_port, mut remote_addr) = remote_of(sk, family);
    if (sa_family == AF_INET || sa_family == AF_INET6) && matches!(spec.op, op::CONNECT | op::SEND) {
        remote_port = sa_port;
        remote_addr = sa_addr;
    }
    let datagram = sock_type == SOCK_DGRAM;
    let mut capture_payload = false;
    match spec.op {
        op::SEND => {
            if !datagram {
                return Ok(());
            }
            if remote_port == DNS_PORT {
                capture_payload = true;
            } else {
                let key = FlowKey { tgid, family, port: remote_port, addr: remote_addr };
                // SAFETY: map lookup of a plain value.
                if unsafe { NET_FLOWS.get(key) }.is_some() {
                    return Ok(());
                }
                let _ = NET_FLOWS.insert(key, 1, 0);
            }
        }
        op::CONNECT if datagram => {
            let key = FlowKey { tgid, family, port: remote_port, addr: remote_addr };
            let _ = NET_FLOWS.insert(key, 1, 0);
        }
        _ => {}
    }

    let Some(mut entry) = NET_EVENTS.reserve::<NetEvent>(0) else { return Err(Loss::RingFull) };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is a reserved entry of the right size; reads through probe helpers.
    let filled = unsafe {
        let r = fill_task(task, &raw mut (*ev).task);
        (*ev).op = spec.op;
        (*ev).result = ret as i32;
        (*ev).family = family;
        (*ev).protocol = protocol;
        (*ev).sock_type = sock_type;
        (*ev).local_port = local_port;
        (*ev).remote_port = remote_port;
        (*ev)._pad = 0;
        (*ev).syscall_nr = p.nr;
        (*ev).local_addr = local_addr;
        (*ev).remote_addr = remote_addr;
        (*ev).payload_len = 0;
        (*ev).payload_total = 0;
        let mut flags = if datagram { NET_DATAGRAM } else { 0 };
        if capture_payload && p.buf != 0 {
            let total = p.len;
            let mut n = total as u32;
            if total > NET_PAYLOAD_MAX as u64 {
                n = NET_PAYLOAD_MAX as u32;
                flags |= NET_PAYLOAD_TRUNCATED;
            }
            let n = n & (NET_PAYLOAD_MAX as u32 * 2 - 1);
            let n = if n > NET_PAYLOAD_MAX as u32 { NET_PAYLOAD_MAX as u32 } else { n };
            let dst = (&raw mut (*ev).payload).cast::<u8>();
            if n > 0 && bpf_probe_read_user(dst.cast(), n, p.buf as *const _) == 0 {
                (*ev).payload_len = n;
                (*ev).payload_total = total as u32;
            }
        }
        fill_header(&raw mut (*ev).header, EventKind::Net, size_of::<NetEvent>(), tgid, tid, flags);
        r
    };
    match filled {
        Ok(()) => {
            entry.submit(wakeup_flags(&NET_EVENTS));
            Ok(())
        }
        Err(_) => {
            entry.discard(0);
            Err(Loss::ReadFailed)
        }
    }
}

/// `struct sock *` behind a socket fd (checks that the fd is a socket).
#[inline(always)]
fn socket_of(task: *const u8, fd: u32) -> Result<*const u8, i32> {
    let file = fd_file(task, fd)?;
    // SAFETY: probe reads.
    unsafe {
        let inode = read_ptr(file, off!(file_inode))?;
        let mode: u16 = read(inode, off!(inode_mode))?;
        if mode & S_IFMT != S_IFSOCK {
            return Err(-88);
        }
        let socket = read_ptr(file, off!(file_private_data))?;
        read_ptr(socket, off!(socket_sk))
    }
}

#[inline(always)]
fn local_of(sk: *const u8, family: u16) -> (u16, [u8; 16]) {
    let mut addr = [0u8; 16];
    // SAFETY: probe reads.
    unsafe {
        let port: u16 = read(sk, off!(sk_num)).unwrap_or(0);
        if family == AF_INET {
            let a: [u8; 4] = read(sk, off!(sk_rcv_saddr)).unwrap_or([0; 4]);
            addr[..4].copy_from_slice(&a);
        } else {
            addr = read(sk, off!(sk_v6_rcv_saddr)).unwrap_or([0; 16]);
        }
        (port, addr)
    }
}

#[inline(always)]
fn remote_of(sk: *const u8, family: u16) -> (u16, [u8; 16]) {
    let mut addr = [0u8; 16];
    // SAFETY: probe reads.
    unsafe {
        let port: u16 = u16::from_be(read(sk, off!(sk_dport)).unwrap_or(0));
        if family == AF_INET {
            let a: [u8; 4] = read(sk, off!(sk_daddr)).unwrap_or([0; 4]);
            addr[..4].copy_from_slice(&a);
        } else {
            addr = read(sk, off!(sk_v6_daddr)).unwrap_or([0; 16]);
        }
        (port, addr)
    }
}
