//! Reads of kernel memory at offsets resolved from the running kernel's BTF.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_probe_read_kernel, generated},
    programs::TracePointContext,
};
use sensor_common::offsets::OFFSET_ABSENT;

/// Error code for an offset the running kernel does not have.
pub const E_NO_FIELD: i32 = -2;
/// Error code for a NULL pointer field.
pub const E_NULL: i32 = -14;

/// Reads a `T` at `base + off` from kernel memory.
///
/// # Safety
/// `base` must be a kernel pointer; the helper validates the access itself.
#[inline(always)]
pub unsafe fn read<T>(base: *const u8, off: u32) -> Result<T, i32> {
    if off == OFFSET_ABSENT {
        return Err(E_NO_FIELD);
    }
    // SAFETY: bpf_probe_read_kernel tolerates any address and reports faults as errors.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize).cast::<T>()) }
}

/// Reads a `T` at `base + off` into `dst` with no branch on the outcome: the helper zero-fills
/// `dst` when the read faults (a NULL `base` included), and an offset this kernel does not have
/// reads from NULL. Straight-line code keeps the verifier's path count down on old kernels,
/// and writing in place needs no temporary that LLVM would zero with a byte-wise `memset`.
///
/// # Safety
/// `dst` must be writable for `size_of::<T>()` bytes; `base` may be any value.
#[inline(always)]
pub unsafe fn read_into<T>(dst: *mut T, base: *const u8, off: u32) {
    // The offset is a load-time constant (a frozen read-only global), so the verifier keeps one
    // side of this select.
    let src = if off == OFFSET_ABSENT { core::ptr::null() } else { base.wrapping_add(off as usize) };
    // SAFETY: the helper validates the source and writes exactly `size_of::<T>()` bytes to `dst`.
    unsafe {
        generated::bpf_probe_read_kernel(dst.cast(), size_of::<T>() as u32, src.cast());
    }
}

/// Copies a `T` between two places in kernel memory (map values, ring entries) with one helper
/// call: a plain assignment of an array or struct of 16 bytes or more becomes a call to a
/// byte-wise `memmove` loop.
///
/// # Safety
/// `dst` must be writable for `size_of::<T>()` bytes.
#[inline(always)]
pub unsafe fn copy_kernel<T>(dst: *mut T, src: *const T) {
    // SAFETY: per the contract; the helper validates `src`.
    unsafe { read_into(dst, src.cast(), 0) }
}

/// [`read_into`] returning the value: zero when the read fails.
///
/// # Safety
/// `T` must be valid for the all-zero bit pattern (integers, pointers, byte arrays).
#[inline(always)]
pub unsafe fn read_z<T>(base: *const u8, off: u32) -> T {
    let mut v = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: the helper writes every byte of `v` (the value read, or zeros).
    unsafe {
        read_into(v.as_mut_ptr(), base, off);
        v.assume_init()
    }
}

/// Reads a non-NULL pointer field at `base + off`.
///
/// # Safety
/// As for [`read`].
#[inline(always)]
pub unsafe fn read_ptr(base: *const u8, off: u32) -> Result<*const u8, i32> {
    // SAFETY: forwarded.
    let p: *const u8 = unsafe { read(base, off)? };
    if p.is_null() { Err(E_NULL) } else { Ok(p) }
}

/// Reads a field that may be absent on this kernel, falling back to `default`.
///
/// # Safety
/// As for [`read`].
#[inline(always)]
pub unsafe fn read_or<T: Copy>(base: *const u8, off: u32, default: T) -> T {
    // SAFETY: forwarded.
    unsafe { read(base, off) }.unwrap_or(default)
}

/// A field of a tracepoint record at constant offset `off`, loaded straight from the context
/// (no helper call on the hot paths).
///
/// # Safety
/// `off` must be a constant, a multiple of `size_of::<T>()` (≤ 8), and inside the record of
/// *every* tracepoint the program is attached to: the verifier refuses a variable offset, and
/// attaching fails (EACCES) when the program reads past a tracepoint's record.
#[inline(always)]
pub unsafe fn tp_field<T: Copy>(ctx: &TracePointContext, off: usize) -> T {
    // SAFETY: per the contract; volatile so LLVM keeps one load of exactly this size.
    unsafe { core::ptr::read_volatile(ctx.as_ptr().cast::<u8>().wrapping_add(off).cast::<T>()) }
}

/// The six syscall argument slots of a `sys_enter_*` record starting at `off`, in one helper
/// call. Slots past the syscall's own arguments hold whatever follows the record in the
/// kernel's per-CPU trace buffer: read them only for arguments the syscall has.
#[inline(always)]
pub fn tp_args(ctx: &TracePointContext, off: usize) -> [u64; 6] {
    // SAFETY: the helper tolerates any address and zero-fills the copy when the read faults
    // (no `unwrap_or([0; 6])`, which LLVM turns into a byte-wise memset loop).
    unsafe { read_z(ctx.as_ptr().cast::<u8>(), off as u32) }
}

/// `N` zero words, stored one by one: LLVM turns a zeroed aggregate of 16 bytes or more into a
/// call to a byte-wise `memset` loop, which old verifiers walk byte by byte.
#[inline(always)]
pub fn zero_words<const N: usize>() -> [u64; N] {
    let mut v = core::mem::MaybeUninit::<[u64; N]>::uninit();
    let p = v.as_mut_ptr().cast::<u64>();
    for i in 0..N {
        // SAFETY: `i < N` words of `v`.
        unsafe { core::ptr::write_volatile(p.add(i), 0) };
    }
    // SAFETY: every word was written.
    unsafe { v.assume_init() }
}

/// Slot `i` (< 6) of syscall arguments saved or copied as `[u64; 6]`. Constant offsets only:
/// indexing with `i` is a variable-offset stack read, which verifiers before 6.12 refuse
/// ("invalid variable-offset read from stack" on 6.1, once LLVM drops the `& 7` after the `< 6`
/// check). Volatile, so LLVM cannot merge the arms back into one indexed load.
#[inline(always)]
pub fn arg_at(args: &[u64; 6], i: u8) -> u64 {
    let at = |k: usize| {
        // SAFETY: `k` < 6 is in bounds of `args`.
        unsafe { core::ptr::read_volatile(&raw const args[k]) }
    };
    match i {
        0 => at(0),
        1 => at(1),
        2 => at(2),
        3 => at(3),
        4 => at(4),
        5 => at(5),
        _ => 0,
    }
}

/// `v`, copied through a helper so the verifier knows nothing about it (an unknown scalar):
/// paths that differ only in `v` then go on as one verifier state instead of one each, which
/// keeps long programs verifiable and quick to load. Costs a helper call: not for hot loops of
/// filtered-out events. On the (impossible) fault, 0.
#[inline(always)]
pub fn opaque(v: u32) -> u32 {
    // SAFETY: reads 4 bytes of this program's own stack.
    unsafe { bpf_probe_read_kernel(&raw const v).unwrap_or(0) }
}
