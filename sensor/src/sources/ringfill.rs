//! How full a BPF ring buffer is, for the metrics endpoint.
//!
//! aya 0.14 keeps the ring's positions private, so this maps the ring's two metadata pages a
//! second time, read-only: page 0 holds the consumer position (advanced by our reader), page 1
//! the producer position (advanced by the kernel). Their difference is the bytes written and not
//! yet read. Reading them never changes the ring, so the reader is unaffected.

use std::{
    os::fd::{AsFd, AsRawFd as _},
    ptr::NonNull,
    sync::atomic::{AtomicUsize, Ordering},
};

use aya::maps::MapData;

/// A read-only mapping of a ring buffer's consumer and producer pages.
pub struct RingFill {
    base: NonNull<libc::c_void>,
    page: usize,
    size: u64,
}

// SAFETY: the mapping is read-only shared memory that lives as long as `RingFill`; it is only
// read through atomic loads, which is sound from any thread.
unsafe impl Send for RingFill {}
// SAFETY: as above; `&RingFill` only allows atomic loads.
unsafe impl Sync for RingFill {}

impl std::fmt::Debug for RingFill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingFill").field("size", &self.size).field("pending", &self.pending()).finish()
    }
}

impl RingFill {
    /// Maps the position pages of the ring buffer behind `ring`.
    pub fn new(ring: &impl AsFd) -> std::io::Result<Self> {
        let fd = ring.as_fd();
        let size = MapData::from_fd(fd.try_clone_to_owned()?)
            .and_then(|m| m.info())
            .map(|i| u64::from(i.max_entries()))
            .map_err(std::io::Error::other)?;
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        // SAFETY: a fresh read-only shared mapping of two pages of a ring buffer map fd, which
        // the kernel allows for any offset; the fd stays valid for the call and the mapping
        // keeps the map alive after it is closed.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), 2 * page, libc::PROT_READ, libc::MAP_SHARED, fd.as_raw_fd(), 0)
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = NonNull::new(ptr).ok_or_else(|| std::io::Error::other("mmap returned null"))?;
        Ok(Self { base, page, size })
    }

    /// Size of the ring's data area in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes the kernel has written that the reader has not consumed yet.
    pub fn pending(&self) -> u64 {
        let load = |offset: usize| {
            // SAFETY: `offset` is 0 or one page into the two-page mapping; the kernel keeps an
            // aligned `unsigned long` position at the start of each page and updates it
            // atomically.
            unsafe { self.base.byte_add(offset).cast::<AtomicUsize>().as_ref() }.load(Ordering::Acquire)
        };
        let consumer = load(0);
        let producer = load(self.page);
        // Positions only grow (wrapping), and the producer is never behind the consumer.
        (producer.wrapping_sub(consumer) as u64).min(self.size)
    }
}

impl Drop for RingFill {
    fn drop(&mut self) {
        // SAFETY: `base` is the start of a mapping of exactly `2 * page` bytes made in `new`,
        // and no reference into it outlives `self`.
        unsafe {
            libc::munmap(self.base.as_ptr(), 2 * self.page);
        }
    }
}
