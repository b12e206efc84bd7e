//! Maps and load-time globals shared by the programs.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use sensor_common::{
    KernelOffsets, LossCounter,
    exec::{CaptureConfig, ExecEvent},
    header::{BPF_F_MMAPABLE, HANDOVER_SLOTS, LOSS_COUNTER_SLOTS},
    syscalls::PendingSyscall,
    tamper::Control,
};

/// Process lifecycle and privilege events. Kept apart from high-volume file/network events so
/// that those can never crowd lineage out.
#[map(name = "PROC_EVENTS")]
pub static PROC_EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Per-CPU loss counters indexed by event kind.
#[map(name = "LOSS")]
pub static LOSS: PerCpuArray<LossCounter> = PerCpuArray::with_max_entries(LOSS_COUNTER_SLOTS, 0);

/// One slot per CPU (the loader sets max_entries to the CPU count) where an exec event is
/// assembled. A plain array because the event is larger than a per-CPU value may be (32 KiB).
#[map(name = "EXEC_SCRATCH")]
pub static EXEC_SCRATCH: Array<ExecEvent> = Array::with_max_entries(256, 0);

/// State saved at `sys_enter_*` for the matching `sys_exit_*`, by thread id. LRU, so a thread
/// that never returns (killed in the syscall) cannot leak an entry forever.
#[map(name = "PENDING")]
pub static PENDING: LruHashMap<u32, PendingSyscall> = LruHashMap::with_max_entries(16384, 0);

/// Per-CPU scratch for building a [`PendingSyscall`] (too large for the stack).
#[map(name = "PENDING_SCRATCH")]
pub static PENDING_SCRATCH: PerCpuArray<PendingSyscall> = PerCpuArray::with_max_entries(1, 0);

/// Who the sensor is (see [`Control`]); written by userspace, also by a sensor that adopts these
/// programs from their pins.
#[map(name = "CONTROL")]
pub static CONTROL: Array<Control> = Array::with_max_entries(1, 0);

/// `(kind << 32) | id` of the sensor's own programs, maps and links (frozen after attach).
#[map(name = "OWN_IDS")]
pub static OWN_IDS: HashMap<u64, u32> = HashMap::with_max_entries(1024, 0);

/// What a run hands to the next one that adopts these programs (userspace only, mmapped by it;
/// see `sensor::handover`).
#[map(name = "HANDOVER")]
pub static HANDOVER: Array<u64> = Array::with_max_entries(HANDOVER_SLOTS, BPF_F_MMAPABLE);

/// Struct offsets of the running kernel, written by the loader (see `sensor::btf`).
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets::UNSET;

/// Capture settings, written by the loader.
#[unsafe(no_mangle)]
static CAPTURE: CaptureConfig = CaptureConfig::DEFAULT;

/// Offset of the `__data_loc char[] name` field in a `module_load` record, written by the loader.
#[unsafe(no_mangle)]
static MODULE_NAME_LOC: u32 = u32::MAX;

/// Reads one field of [`OFFSETS`]. Volatile so the compiler cannot fold in the defaults; the
/// verifier still sees the loaded values as constants (the global is a frozen map).
#[macro_export]
macro_rules! off {
    ($field:ident) => {
        $crate::maps::offset(|o| &o.$field)
    };
}

/// See [`off!`].
#[inline(always)]
pub fn offset(field: impl Fn(&KernelOffsets) -> &u32) -> u32 {
    // SAFETY: a reference to a field of a valid static, read volatile.
    unsafe { core::ptr::read_volatile(field(&OFFSETS)) }
}

/// The capture settings as set at load time.
#[inline(always)]
pub fn capture() -> CaptureConfig {
    // SAFETY: a valid static; volatile only to defeat constant folding.
    unsafe { core::ptr::read_volatile(&raw const CAPTURE) }
}

/// See [`MODULE_NAME_LOC`].
#[inline(always)]
pub fn module_name_loc() -> u32 {
    // SAFETY: as for `capture`.
    unsafe { core::ptr::read_volatile(&raw const MODULE_NAME_LOC) }
}

/// True once the loader has filled [`OFFSETS`].
#[inline(always)]
pub fn ready() -> bool {
    off!(ready) != 0
}

/// The control block, when the programs may emit: offsets loaded and not muted.
#[inline(always)]
pub fn control() -> Option<&'static Control> {
    if !ready() {
        return None;
    }
    let c = CONTROL.get(0)?;
    // SAFETY: a map value of plain integers; volatile so each run reads what userspace wrote.
    let muted = unsafe { core::ptr::read_volatile(&raw const c.muted) };
    if muted != 0 { None } else { Some(c) }
}

/// True when `tgid`'s own activity is not reported (the sensor's, unless tests turned that off).
#[inline(always)]
pub fn ignored(c: &Control, tgid: u32) -> bool {
    // SAFETY: as in `control`.
    let ignore = unsafe { core::ptr::read_volatile(&raw const c.ignore_tgid) };
    ignore != 0 && tgid == ignore
}

/// The sensor's tgid (0 while no sensor has claimed the programs).
#[inline(always)]
pub fn sensor_tgid(c: &Control) -> u32 {
    // SAFETY: as in `control`.
    unsafe { core::ptr::read_volatile(&raw const c.sensor_tgid) }
}
