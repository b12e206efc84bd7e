//! The kernel ↔ userspace ABI of the sensor, defined once and used by both sides.
//!
//! Every event written to a ring buffer starts with an [`EventHeader`] whose `kind` is one of the
//! stable numeric [`EventKind`] values and whose `size` is the number of bytes of the event.
//! All types here are `#[repr(C)]` and derive zerocopy's `FromBytes` (valid for any bit
//! pattern), `IntoBytes` (no padding: the derive fails to compile otherwise), `Immutable` and
//! `KnownLayout`; each size is also asserted at compile time next to its definition, so a
//! change on one side of the ABI cannot go unnoticed. Userspace never reinterprets kernel bytes
//! in place: it copies each fixed part out with zerocopy's length-checked `read_from_prefix` and
//! takes variable parts with length checks (see the `sensor` crate's `decode` module).
#![no_std]

pub mod exec;
pub mod file;
pub mod header;
pub mod ia32;
pub mod names;
pub mod net;
pub mod offsets;
pub mod path;
pub mod process;
pub mod syscalls;
pub mod tamper;
pub mod task;

pub use exec::{ExecEvent, ExecFixed};
pub use header::{EventHeader, EventKind, LossCounter, UnknownKind, kind};
pub use offsets::KernelOffsets;
pub use task::TaskInfo;

/// `aya::Pod` for the types userspace reads from or writes into maps and globals. aya's trait
/// cannot be implemented for every zerocopy type at once (it is foreign), so each type is
/// listed, and the listing only compiles for types that derive zerocopy's byte-level traits.
#[cfg(feature = "user")]
mod pod {
    use zerocopy::{FromBytes, Immutable, IntoBytes};

    /// Compiles only for `T` that zerocopy proves valid for any bit pattern and free of padding.
    const fn plain_bytes<T: FromBytes + IntoBytes + Immutable>() {}

    macro_rules! pod {
        ($($t:ty),+ $(,)?) => {$(
            const _: () = plain_bytes::<$t>();
            // SAFETY: aya::Pod asks for a `Copy` type that is valid for any bit pattern and has
            // no uninitialised bytes. The line above compiles only if `$t` implements zerocopy's
            // `FromBytes` (every bit pattern is a valid value) and `IntoBytes` (no padding), which
            // zerocopy's derives check against the type's fields and `repr(C)` layout.
            unsafe impl aya::Pod for $t {}
        )+};
    }

    pod!(
        crate::KernelOffsets,
        crate::EventHeader,
        crate::LossCounter,
        crate::exec::CaptureConfig,
        crate::file::FileSyscallSpec,
        crate::ia32::Ia32Call,
        crate::file::InodeKey,
        crate::net::NetSyscallSpec,
        crate::tamper::Control,
    );
}
