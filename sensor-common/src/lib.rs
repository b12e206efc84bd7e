//! The kernel ↔ userspace ABI of the sensor, defined once and used by both sides.
//!
//! Every event written to a ring buffer starts with an [`EventHeader`] whose `kind` is one of the
//! stable numeric [`EventKind`] values and whose `size` is the number of bytes of the event.
//! All types here are `#[repr(C)]`, have no implicit padding (sizes are asserted at compile time)
//! and contain only integers and byte arrays, so they are valid for any bit pattern. Userspace
//! never reinterprets kernel bytes in place: it decodes them with length checks (see the
//! `sensor` crate's `decode` module).
#![no_std]

pub mod exec;
pub mod file;
pub mod header;
pub mod names;
pub mod net;
pub mod offsets;
pub mod path;
pub mod process;
pub mod syscalls;
pub mod tamper;
pub mod task;

pub use exec::{ExecEvent, ExecFixed};
pub use header::{EventHeader, EventKind, LossCounter, UnknownKind};
pub use offsets::KernelOffsets;
pub use task::TaskInfo;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: these are `repr(C)`, contain only integers/byte arrays and have no padding
    // (asserted at compile time next to each definition), so every bit pattern is valid.
    unsafe impl aya::Pod for crate::KernelOffsets {}
    unsafe impl aya::Pod for crate::EventHeader {}
    unsafe impl aya::Pod for crate::LossCounter {}
    unsafe impl aya::Pod for crate::exec::CaptureConfig {}
    unsafe impl aya::Pod for crate::file::FileSyscallSpec {}
    unsafe impl aya::Pod for crate::file::InodeKey {}
    unsafe impl aya::Pod for crate::net::NetSyscallSpec {}
    unsafe impl aya::Pod for crate::tamper::Control {}
}
