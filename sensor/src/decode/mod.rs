//! Decoding of raw ring-buffer bytes into typed kernel events.
//!
//! Kernel bytes are untrusted input: every length is checked against the buffer and every kind
//! number goes through `TryFrom`. A malformed event is an error value, never a panic.

mod exec;
pub mod file;
pub mod net;
pub mod path;
mod process;
mod syscalls;
mod tamper;
pub mod task;

pub use exec::ExecRaw;
pub use file::FileRaw;
pub use process::{ExitRaw, ForkRaw};
use sensor_common::{EventHeader, EventKind, UnknownKind, header::HEADER_SIZE};
pub use syscalls::{BpfLoadRaw, CredRaw, MemfdRaw, ModuleRaw, PtraceRaw};
pub use tamper::{BpfCmdRaw, SignalRaw};

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

/// Little helper to read native-endian integers at fixed offsets with bounds checks.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], need: usize) -> Result<Self, DecodeError> {
        if buf.len() < need {
            return Err(DecodeError::Short { need, got: buf.len() });
        }
        Ok(Self { buf })
    }

    fn array<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut out = [0u8; N];
        // In bounds: `new` checked the fixed part, and offsets come from `offset_of!`.
        if let Some(src) = self.buf.get(off..off + N) {
            out.copy_from_slice(src);
        }
        out
    }

    pub(crate) fn u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.array(off))
    }

    pub(crate) fn u64(&self, off: usize) -> u64 {
        u64::from_ne_bytes(self.array(off))
    }

    pub(crate) fn bytes<const N: usize>(&self, off: usize) -> [u8; N] {
        self.array(off)
    }

    /// `len` bytes at `*cursor`, advancing it; an error if they are not all there.
    pub(crate) fn take(
        &self,
        cursor: &mut usize,
        len: u32,
        field: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let avail = self.buf.len().saturating_sub(*cursor);
        let n = usize::try_from(len).map_err(|_| DecodeError::FieldOverrun { field, len, avail })?;
        let out =
            self.buf.get(*cursor..*cursor + n).ok_or(DecodeError::FieldOverrun { field, len, avail })?;
        *cursor += n;
        Ok(out)
    }
}

/// Decodes the header of an event.
pub fn header(buf: &[u8]) -> Result<EventHeader, DecodeError> {
    use std::mem::offset_of;
    let r = Reader::new(buf, HEADER_SIZE)?;
    Ok(EventHeader {
        kind: r.u32(offset_of!(EventHeader, kind)),
        size: r.u32(offset_of!(EventHeader, size)),
        boot_ns: r.u64(offset_of!(EventHeader, boot_ns)),
        tgid: r.u32(offset_of!(EventHeader, tgid)),
        tid: r.u32(offset_of!(EventHeader, tid)),
        cpu: r.u32(offset_of!(EventHeader, cpu)),
        flags: r.u32(offset_of!(EventHeader, flags)),
    })
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
