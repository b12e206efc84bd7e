//! Decoding of raw ring-buffer bytes into typed kernel events.
//!
//! Kernel bytes are untrusted input: every fixed part is copied out of the buffer with zerocopy's
//! length-checked `read_from_prefix` (the `sensor_common` types are valid for any bit pattern),
//! every variable length is checked against the bytes left, and every kind number goes through
//! `TryFrom`. A malformed event is an error value, never a panic.

mod exec;
pub mod file;
pub mod net;
pub mod path;
mod process;
mod syscalls;
mod tamper;
pub mod task;

pub use exec::{ExeIdentity, ExecRaw};
pub use file::FileRaw;
pub use process::{ExitRaw, ForkRaw};
use sensor_common::{EventHeader, EventKind, UnknownKind};
pub use syscalls::{BpfLoadRaw, CredRaw, MemfdRaw, ModuleRaw, PtraceRaw};
pub use tamper::{BpfCmdRaw, SignalRaw};
use zerocopy::FromBytes;

/// A decoded kernel event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    Exec(ExecRaw),
    Fork(ForkRaw),
    Exit(ExitRaw),
    Cred(CredRaw),
    Ptrace(PtraceRaw),
    ModuleLoad(ModuleRaw),
    BpfLoad(BpfLoadRaw),
    MemfdCreate(MemfdRaw),
    Signal(SignalRaw),
    BpfAccess(BpfCmdRaw),
    File(FileRaw),
    Net(net::NetRaw),
}

impl KernelEvent {
    /// The kernel's header: time, tgid/tid of the acting task.
    pub fn header(&self) -> &EventHeader {
        match self {
            Self::Exec(e) => &e.header,
            Self::Fork(e) => &e.header,
            Self::Exit(e) => &e.header,
            Self::Cred(e) => &e.header,
            Self::Ptrace(e) => &e.header,
            Self::ModuleLoad(e) => &e.header,
            Self::BpfLoad(e) => &e.header,
            Self::MemfdCreate(e) => &e.header,
            Self::Signal(e) => &e.header,
            Self::BpfAccess(e) => &e.header,
            Self::File(e) => &e.header,
            Self::Net(e) => &e.header,
        }
    }

    /// The kind number this event was decoded from.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::Exec(_) => EventKind::Exec,
            Self::Fork(_) => EventKind::Fork,
            Self::Exit(_) => EventKind::Exit,
            Self::Cred(_) => EventKind::Cred,
            Self::Ptrace(_) => EventKind::Ptrace,
            Self::ModuleLoad(_) => EventKind::ModuleLoad,
            Self::BpfLoad(_) => EventKind::BpfLoad,
            Self::MemfdCreate(_) => EventKind::MemfdCreate,
            Self::Signal(_) => EventKind::Signal,
            Self::BpfAccess(_) => EventKind::BpfAccess,
            Self::File(_) => EventKind::File,
            Self::Net(_) => EventKind::Net,
        }
    }
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("event of {got} bytes is shorter than its {need}-byte fixed part")]
    Short { need: usize, got: usize },
    #[error("event header says {claimed} bytes but {got} were received")]
    SizeMismatch { claimed: u32, got: usize },
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error("{field} length {len} exceeds the {avail} bytes left")]
    FieldOverrun { field: &'static str, len: u32, avail: usize },
}

impl From<UnknownKind> for DecodeError {
    fn from(UnknownKind(k): UnknownKind) -> Self {
        Self::UnknownKind(k)
    }
}

/// The fixed part `T` at the start of `buf`, copied out (kernel bytes are never reinterpreted
/// in place), and the bytes after it. `T` derives zerocopy's `FromBytes`: every bit pattern is
/// a valid value, and a buffer shorter than `T` is [`DecodeError::Short`].
pub(crate) fn fixed<T: FromBytes>(buf: &[u8]) -> Result<(T, Tail<'_>), DecodeError> {
    let (value, rest) =
        T::read_from_prefix(buf).map_err(|_| DecodeError::Short { need: size_of::<T>(), got: buf.len() })?;
    Ok((value, Tail::new(rest)))
}

/// The variable part of an event after its fixed part, taken field by field.
pub(crate) struct Tail<'a> {
    rest: &'a [u8],
}

impl<'a> Tail<'a> {
    pub(crate) fn new(rest: &'a [u8]) -> Self {
        Self { rest }
    }

    /// The next `len` bytes; an error naming `field` if they are not all there.
    pub(crate) fn take(&mut self, len: u32, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let avail = self.rest.len();
        let overrun = DecodeError::FieldOverrun { field, len, avail };
        let n = usize::try_from(len).map_err(|_| overrun.clone())?;
        let (out, rest) = self.rest.split_at_checked(n).ok_or(overrun)?;
        self.rest = rest;
        Ok(out)
    }
}

/// Decodes the header of an event.
pub fn header(buf: &[u8]) -> Result<EventHeader, DecodeError> {
    fixed::<EventHeader>(buf).map(|(h, _)| h)
}

/// Decodes one ring-buffer item.
pub fn decode(buf: &[u8]) -> Result<KernelEvent, DecodeError> {
    let h = header(buf)?;
    if usize::try_from(h.size).ok() != Some(buf.len()) {
        return Err(DecodeError::SizeMismatch { claimed: h.size, got: buf.len() });
    }
    match EventKind::try_from(h.kind)? {
        EventKind::Exec => exec::decode(h, buf).map(KernelEvent::Exec),
        EventKind::Fork => process::decode_fork(h, buf).map(KernelEvent::Fork),
        EventKind::Exit => process::decode_exit(h, buf).map(KernelEvent::Exit),
        EventKind::Cred => syscalls::decode_cred(h, buf).map(KernelEvent::Cred),
        EventKind::Ptrace => syscalls::decode_ptrace(h, buf).map(KernelEvent::Ptrace),
        EventKind::ModuleLoad => syscalls::decode_module(h, buf).map(KernelEvent::ModuleLoad),
        EventKind::BpfLoad => syscalls::decode_bpf(h, buf).map(KernelEvent::BpfLoad),
        EventKind::MemfdCreate => syscalls::decode_memfd(h, buf).map(KernelEvent::MemfdCreate),
        EventKind::Signal => tamper::decode_signal(h, buf).map(KernelEvent::Signal),
        EventKind::BpfAccess => tamper::decode_bpf_cmd(h, buf).map(KernelEvent::BpfAccess),
        EventKind::File => file::decode(h, buf).map(KernelEvent::File),
        EventKind::Net => net::decode(h, buf).map(KernelEvent::Net),
    }
}

#[cfg(test)]
mod tests;
