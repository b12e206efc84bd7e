//! Reads of kernel memory at offsets resolved from the running kernel's BTF.

use aya_ebpf::{EbpfContext as _, helpers::bpf_probe_read_kernel, programs::TracePointContext};
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
    // SAFETY: bpf_probe_read_kernel tolerates any address and reports faults as errors.
    unsafe { bpf_probe_read_kernel(ctx.as_ptr().cast::<u8>().wrapping_add(off).cast::<[u64; 6]>()) }
        .unwrap_or([0; 6])
}
