//! Maps and load-time globals shared by the programs.

use aya_ebpf::{
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use sensor_common::{
    KernelOffsets, LossCounter,
    exec::{ExecConfig, ExecEvent},
    header::LOSS_COUNTER_SLOTS,
};

/// Process lifecycle events. Kept apart from high-volume file/network events so that those can
/// never crowd lineage out.
#[map(name = "PROC_EVENTS")]
pub static PROC_EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Per-CPU loss counters indexed by event kind.
#[map(name = "LOSS")]
pub static LOSS: PerCpuArray<LossCounter> = PerCpuArray::with_max_entries(LOSS_COUNTER_SLOTS, 0);

/// Per-CPU scratch where an exec event is assembled before it is copied to the ring buffer.
#[map(name = "EXEC_SCRATCH")]
pub static EXEC_SCRATCH: PerCpuArray<ExecEvent> = PerCpuArray::with_max_entries(1, 0);

/// Struct offsets of the running kernel, written by the loader (see `sensor::btf`).
#[unsafe(no_mangle)]
static OFFSETS: KernelOffsets = KernelOffsets::UNSET;

/// Exec capture settings, written by the loader.
#[unsafe(no_mangle)]
static EXEC_CONFIG: ExecConfig = ExecConfig::DEFAULT;

/// The offsets as set at load time. Volatile so the compiler does not fold the defaults in.
#[inline(always)]
pub fn offsets() -> KernelOffsets {
    // SAFETY: a valid static; the read is volatile only to defeat constant folding.
    unsafe { core::ptr::read_volatile(&raw const OFFSETS) }
}

/// The exec settings as set at load time.
#[inline(always)]
pub fn exec_config() -> ExecConfig {
    // SAFETY: as for `offsets`.
    unsafe { core::ptr::read_volatile(&raw const EXEC_CONFIG) }
}
