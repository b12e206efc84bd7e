//! Reads of kernel memory at offsets resolved from the running kernel's BTF.

use aya_ebpf::helpers::bpf_probe_read_kernel;
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
