//! Decoding of raw ring-buffer bytes into typed kernel events.
//!
//! Kernel bytes are untrusted input: every fixed part is copied out of the buffer with zerocopy's
//! length-checked `read_from_prefix` (the `sensor_common` types are valid for any bit pattern),
//! every variable length is checked against the bytes left, and every kind number goes through
//! `TryFrom`. A malformed event is an error value, never a panic.

pub mod exec;
pub mod file;
pub mod net;
pub mod path;
pub mod process;
pub mod syscalls;
pub mod tamper;
pub mod task;

pub use exec::{ExeIdentity, ExecRaw};
pub use file::FileRaw;
pub use process::{ExitRaw, ForkRaw};
use sensor_common::{EventHeader, EventKind, UnknownKind, kind};
pub use syscalls::{BpfLoadRaw, CredRaw, ModuleRaw, PtraceRaw};
pub use tamper::{BpfCmdRaw, SignalRaw};
use zerocopy::FromBytes;

/// How a kernel event kind is decoded. Each kind implements it on its marker type
/// (`sensor_common::kind::X`) in its module under `crate::kinds`; [`KernelEvent`] and
/// [`decode`] are generated from the kind table (`sensor_common::for_each_event_kind!`), so a
/// new kind that cannot be decoded does not compile.
pub trait Decode {
    /// The decoded event.
    type Raw: std::fmt::Debug + Clone + PartialEq + Eq;

    /// Size of the fixed part, and whether a variable part follows it.
    const FIXED_PART: (usize, bool);

    /// Decodes the event `buf` (its header included), whose header is `header`.
    fn decode(header: EventHeader, buf: &[u8]) -> Result<Self::Raw, DecodeError>;

    /// The kernel's header of a decoded event.
    fn header(raw: &Self::Raw) -> &EventHeader;
}

macro_rules! kernel_events {
    ([] $($(#[$doc:meta])* $kind:ident = $num:literal => $name:literal,)+) => {
        /// A decoded kernel event: one variant per event kind.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum KernelEvent {
            $($(#[$doc])* $kind(<kind::$kind as Decode>::Raw),)+
        }

        impl KernelEvent {
            /// The kernel's header: time, tgid/tid of the acting task.
            pub fn header(&self) -> &EventHeader {
                match self {
                    $(Self::$kind(e) => <kind::$kind as Decode>::header(e),)+
                }
            }

            /// The kind number this event was decoded from.
            pub fn kind(&self) -> EventKind {
                match self {
                    $(Self::$kind(_) => EventKind::$kind,)+
                }
            }
        }

        /// Decodes an event of `kind`.
        #[inline]
        fn decode_kind(kind: EventKind, h: EventHeader, buf: &[u8]) -> Result<KernelEvent, DecodeError> {
            match kind {
                $(EventKind::$kind => <kind::$kind as Decode>::decode(h, buf).map(KernelEvent::$kind),)+
            }
        }

        /// Size of each kind's fixed part, and whether a variable part follows it.
        #[cfg(test)]
        pub fn fixed_part(kind: EventKind) -> (usize, bool) {
            match kind {
                $(EventKind::$kind => <kind::$kind as Decode>::FIXED_PART,)+
            }
        }
    };
}
sensor_common::for_each_event_kind!(kernel_events);

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
    decode_kind(EventKind::try_from(h.kind)?, h, buf)
}

#[cfg(test)]
mod tests;
