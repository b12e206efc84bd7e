//! Network events: one program on `sys_enter_*` and one on `sys_exit_*` of connect, accept,
//! accept4, bind, listen, sendto, sendmsg and sendmmsg. Which argument is what comes from
//! `NET_SYSCALLS` (written by the loader). Addresses come from the socket (`struct sock_common`)
//! and, for connect/bind/sendto/sendmsg, from the sockaddr argument read at enter (or at exit,
//! when its page was not there yet at enter).
//!
//! UDP is reported once per (process, remote address, port) flow (`NET_FLOWS`, an LRU): the
//! flow's first datagram, with up to `NET_PAYLOAD_MAX` bytes of its payload, whatever the port
//! (userspace recognises DNS sent to other ports). Datagrams to port 53 are all reported, with
//! their payload.
//!
//! Written for old verifiers (5.10, 6.1; 1M-instruction budget, little state pruning): the
//! event is assembled in a per-CPU slot and sent with an explicit length (fixed part + the
//! payload actually read), so nothing is zeroed; addresses move as 64-bit words, so LLVM emits
//! no byte-wise `memset`/`memcpy` loops; kernel reads do not branch on their outcome.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, generated::bpf_probe_read_user},
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
};
use sensor_common::{
    EventKind,
    file::ARG_NONE,
    net::{
        DNS_PORT, FlowKey, NET_DATAGRAM, NET_FIXED_SIZE, NET_PAYLOAD_MAX, NET_PAYLOAD_TRUNCATED, NetEvent,
        NetSyscallSpec, PendingNet, op,
    },
    syscalls::SYSCALL_SLOTS,
};

use crate::{
    dispatch::Syscall,
    emit::{Loss, count_loss, fill_header, output_flags},
    file::fd_file,
    kernel::{arg_at, read_ptr, read_z, zero_words},
    maps::{control, ignored},
    off,
    task::fill_task,
};

#[map(name = "NET_EVENTS")]
static NET_EVENTS: RingBuf = RingBuf::with_byte_size(2 * 1024 * 1024, 0);

/// syscall number → argument layout (written by the loader; `op` 0: not watched). An array for
/// the reason `FILE_SYSCALLS` is one.
#[map(name = "NET_SYSCALLS")]
static NET_SYSCALLS: Array<NetSyscallSpec> = Array::with_max_entries(SYSCALL_SLOTS, 0);

/// The argument layout of a watched call; `None` for the others.
#[inline(always)]
fn spec_of(nr: u32) -> Option<NetSyscallSpec> {
    NET_SYSCALLS.get(nr).copied().filter(|s| s.op != 0)
}

#[map(name = "PENDING_NET")]
static PENDING_NET: LruHashMap<u32, PendingNet> = LruHashMap::with_max_entries(16384, 0);

/// UDP flows already reported.
#[map(name = "NET_FLOWS")]
static NET_FLOWS: LruHashMap<FlowKey, u8> = LruHashMap::with_max_entries(65536, 0);

/// Where this CPU assembles a network event.
#[map(name = "NET_SCRATCH")]
static NET_SCRATCH: PerCpuArray<NetEvent> = PerCpuArray::with_max_entries(1, 0);

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_DGRAM: u16 = 2;
const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
const PAYLOAD_MAX: u64 = NET_PAYLOAD_MAX as u64;

crate::syscall_program!(enter sys_enter_net, raw_enter_net, ia32_enter_net, [fentry_net_0 = 0 fentry_net_1 = 1], enter);
crate::syscall_program!(exit sys_exit_net, raw_exit_net, ia32_exit_net, [fexit_net_0 = 0 fexit_net_1 = 1], exit);

#[inline(always)]
fn enter(ctx: &impl Syscall) -> u32 {
    let Some(control) = control() else { return 0 };
    let id = bpf_get_current_pid_tgid();
    if ignored(control, (id >> 32) as u32) {
        return 0;
    }
    let (nr, args) = ctx.call();
    let Some(spec) = spec_of(nr) else { return 0 };
    let mut addr_ptr = if spec.addr != ARG_NONE { arg_at(&args, spec.addr) } else { 0 };
    let (mut buf, mut len) = (0, 0);
    if spec.buf != ARG_NONE {
        buf = arg_at(&args, spec.buf);
        len = arg_at(&args, spec.len);
    }
    if spec.msghdr != ARG_NONE && ctx.ia32() {
        (addr_ptr, buf, len) = compat_msghdr(arg_at(&args, spec.msghdr));
    } else if spec.msghdr != ARG_NONE {
        // struct user_msghdr (UAPI): msg_name at 0, msg_iov at 16; struct iovec: base, len.
        // For sendmmsg the argument is a `struct mmsghdr *`, whose first member is that.
        let msg = arg_at(&args, spec.msghdr);
        // SAFETY: user memory read with the probe helper into stack values, which it fills
        // (with zeros when the read faults).
        unsafe {
            let mut hdr = core::mem::MaybeUninit::<[u64; 3]>::uninit();
            if bpf_probe_read_user(hdr.as_mut_ptr().cast(), 24, msg as *const _) == 0 {
                let hdr = hdr.assume_init();
                addr_ptr = hdr[0];
                let mut iov = core::mem::MaybeUninit::<[u64; 2]>::uninit();
                if bpf_probe_read_user(iov.as_mut_ptr().cast(), 16, hdr[2] as *const _) == 0 {
                    let iov = iov.assume_init();
                    buf = iov[0];
                    len = iov[1];
                }
            }
        }
    }
    let mut p = pending(nr, arg_at(&args, 0) as u32, buf, len);
    p.sockaddr_ptr = addr_ptr;
    read_sockaddr(&mut p.sockaddr, addr_ptr);
    let _ = PENDING_NET.insert(id as u32, p, 0);
    0
}

/// The name, first buffer and its length of a 32-bit caller's `struct compat_msghdr` at `msg`
/// (all words 32-bit: `msg_name` at 0, `msg_iov` at 8; `struct compat_iovec`: base, len); zeros
/// where unreadable. For sendmmsg, `struct compat_mmsghdr` starts with one.
#[inline(always)]
fn compat_msghdr(msg: u64) -> (u64, u64, u64) {
    // SAFETY: user memory read with the probe helper into stack values, which it fills (with
    // zeros when the read faults).
    unsafe {
        let mut hdr = core::mem::MaybeUninit::<[u32; 4]>::uninit();
        if bpf_probe_read_user(hdr.as_mut_ptr().cast(), 16, msg as *const _) != 0 {
            return (0, 0, 0);
        }
        let hdr = hdr.assume_init();
        let mut iov = core::mem::MaybeUninit::<[u32; 2]>::uninit();
        if bpf_probe_read_user(iov.as_mut_ptr().cast(), 8, u64::from(hdr[2]) as *const _) != 0 {
            return (u64::from(hdr[0]), 0, 0);
        }
        let iov = iov.assume_init();
        (u64::from(hdr[0]), u64::from(iov[0]), u64::from(iov[1]))
    }
}

/// The caller's sockaddr at `ptr` (none when zero) into `sa`. A sockaddr_in is 16 bytes, a
/// sockaddr_in6 28: the longer one is read only for IPv6, so a short sockaddr at the end of a
/// page still reads; a failed read leaves zeros.
#[inline(always)]
fn read_sockaddr(sa: &mut [u64; 4], ptr: u64) {
    if ptr == 0 {
        return;
    }
    let to = sa.as_mut_ptr().cast();
    // SAFETY: user memory read with the probe helper into `sa`, within its 32 bytes.
    unsafe {
        bpf_probe_read_user(to, 16, ptr as *const _);
        if sa[0] as u16 == AF_INET6 {
            bpf_probe_read_user(to, 28, ptr as *const _);
        }
    }
}

/// A [`PendingNet`] with no sockaddr yet, written word by word (a struct literal with zeros
/// becomes a byte-wise `memset` loop).
#[inline(always)]
fn pending(nr: u32, fd: u32, buf: u64, len: u64) -> PendingNet {
    let mut p = core::mem::MaybeUninit::<PendingNet>::uninit();
    let w = p.as_mut_ptr();
    // SAFETY: every field of `p` is written before it is read.
    unsafe {
        core::ptr::write_volatile(&raw mut (*w).nr, nr);
        core::ptr::write_volatile(&raw mut (*w).fd, fd);
        core::ptr::write_volatile(&raw mut (*w).sockaddr, zero_words());
        core::ptr::write_volatile(&raw mut (*w).sockaddr_ptr, 0);
        core::ptr::write_volatile(&raw mut (*w).buf, buf);
        core::ptr::write_volatile(&raw mut (*w).len, len);
        p.assume_init()
    }
}

#[inline(always)]
fn exit(ctx: &impl Syscall) -> u32 {
    match try_exit(ctx) {
        Ok(()) => 0,
        Err(why) => {
            count_loss(EventKind::Net, why);
            0
        }
    }
}

/// Family, port (host order) and address (two native-endian words, IPv4 in the low 4 bytes)
/// of a sockaddr read at enter: `sockaddr_in` {family, port (BE), addr} or `sockaddr_in6`
/// {family, port (BE), flowinfo, addr[16], scope}.
#[inline(always)]
fn sockaddr(sa: &[u64; 4]) -> (u16, u16, [u64; 2]) {
    let family = sa[0] as u16;
    let port = u16::from_be((sa[0] >> 16) as u16);
    let addr = match family {
        AF_INET => [sa[0] >> 32, 0],
        AF_INET6 => [sa[1], sa[2]],
        _ => [0, 0],
    };
    (family, port, addr)
}

#[inline(always)]
fn try_exit(ctx: &impl Syscall) -> Result<(), Loss> {
    if control().is_none() {
        return Ok(());
    }
    let id = bpf_get_current_pid_tgid();
    let tid = id as u32;
    let tgid = (id >> 32) as u32;
    // SAFETY: map lookups; the value is copied out before removal.
    let Some(mut p) = (unsafe { PENDING_NET.get(tid) }).copied() else { return Ok(()) };
    let _ = PENDING_NET.remove(tid);
    let Some(spec) = spec_of(p.nr) else { return Ok(()) };
    let ret = ctx.ret();
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
    // SAFETY: probe reads of the sock (zero when they fail).
    let (family, sock_type, protocol): (u16, u16, u16) =
        unsafe { (read_z(sk, off!(sk_family)), read_z(sk, off!(sk_type)), read_z(sk, off!(sk_protocol))) };
    if family != AF_INET && family != AF_INET6 {
        return Ok(());
    }
    let datagram = sock_type == SOCK_DGRAM;
    if p.sockaddr[0] as u16 == 0 {
        // Not read at enter: no page was there yet (a probe read cannot fault one in, and a
        // sockaddr in a program's untouched static data has none until used). The call has
        // copied it in by now.
        read_sockaddr(&mut p.sockaddr, p.sockaddr_ptr);
    }
    let (sa_family, sa_port, sa_addr) = sockaddr(&p.sockaddr);
    let (mut remote_port, mut remote_addr) = remote_of(sk, family);
    if (sa_family == AF_INET || sa_family == AF_INET6) && matches!(spec.op, op::CONNECT | op::SEND) {
        remote_port = sa_port;
        remote_addr = sa_addr;
    }
    if spec.op == op::SEND {
        if !datagram {
            return Ok(());
        }
        if remote_port != DNS_PORT {
            let key = FlowKey { tgid, family, port: remote_port, addr: remote_addr };
            // SAFETY: map lookup of a plain value.
            if unsafe { NET_FLOWS.get(key) }.is_some() {
                return Ok(()); // not the flow's first datagram
            }
            let _ = NET_FLOWS.insert(key, 1, 0);
        }
    }

    let ev = NET_SCRATCH.get_ptr_mut(0).ok_or(Loss::ReadFailed)?;
    // SAFETY: `ev` is this CPU's slot; kernel and user memory is read with probe helpers; the
    // payload read is bounded by NET_PAYLOAD_MAX, the size of `payload`.
    unsafe {
        let filled = fill_task(task, &raw mut (*ev).task);
        (*ev).op = spec.op;
        (*ev).result = ret as i32;
        (*ev).family = family;
        (*ev).protocol = protocol;
        (*ev).sock_type = sock_type;
        (*ev).local_port = read_z(sk, off!(sk_num));
        (*ev).remote_port = remote_port;
        (*ev)._pad = 0;
        (*ev).syscall_nr = p.nr;
        let local = (&raw mut (*ev).local_addr).cast::<[u64; 2]>();
        if family == AF_INET {
            *local = [u64::from(read_z::<u32>(sk, off!(sk_rcv_saddr))), 0];
        } else {
            *local = read_z(sk, off!(sk_v6_rcv_saddr));
        }
        *(&raw mut (*ev).remote_addr).cast::<[u64; 2]>() = remote_addr;

        // The payload: sends only (the flow's first datagram, or any to port 53).
        let mut flags = if datagram { NET_DATAGRAM } else { 0 };
        let mut n = 0u64;
        if spec.op == op::SEND && p.buf != 0 {
            n = if p.len > PAYLOAD_MAX {
                flags |= NET_PAYLOAD_TRUNCATED;
                PAYLOAD_MAX
            } else {
                p.len & (PAYLOAD_MAX * 2 - 1)
            };
            let dst = (&raw mut (*ev).payload).cast::<u8>();
            if n > 0 && bpf_probe_read_user(dst.cast(), n as u32, p.buf as *const _) != 0 {
                n = 0;
            }
        }
        (*ev).payload_len = n as u32;
        (*ev).payload_total = if p.len > u64::from(u32::MAX) { u32::MAX } else { p.len as u32 };
        let size = NET_FIXED_SIZE + (n & (PAYLOAD_MAX * 2 - 1)) as usize;
        fill_header(&raw mut (*ev).header, EventKind::Net, size, tgid, tid, flags);
        if filled.is_err() {
            return Err(Loss::ReadFailed);
        }
        let size = if size > size_of::<NetEvent>() { size_of::<NetEvent>() } else { size };
        let bytes = core::slice::from_raw_parts(ev.cast::<u8>(), size);
        NET_EVENTS.output::<[u8]>(bytes, output_flags(&NET_EVENTS, bytes.len())).map_err(|_| Loss::RingFull)
    }
}

/// `struct sock *` behind a socket fd (checks that the fd is a socket).
#[inline(always)]
fn socket_of(task: *const u8, fd: u32) -> Result<*const u8, i32> {
    let file = fd_file(task, fd)?;
    // SAFETY: probe reads.
    unsafe {
        let inode: *const u8 = read_z(file, off!(file_inode));
        let mode: u16 = read_z(inode, off!(inode_mode));
        if mode & S_IFMT != S_IFSOCK {
            return Err(-88);
        }
        let socket: *const u8 = read_z(file, off!(file_private_data));
        read_ptr(socket, off!(socket_sk))
    }
}

/// Remote port (host order) and address (as [`sockaddr`]) of a socket.
#[inline(always)]
fn remote_of(sk: *const u8, family: u16) -> (u16, [u64; 2]) {
    // SAFETY: probe reads (zero when they fail).
    unsafe {
        let port = u16::from_be(read_z(sk, off!(sk_dport)));
        let addr = if family == AF_INET {
            [u64::from(read_z::<u32>(sk, off!(sk_daddr))), 0]
        } else {
            read_z(sk, off!(sk_v6_daddr))
        };
        (port, addr)
    }
}
