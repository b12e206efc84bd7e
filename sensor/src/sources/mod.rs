//! Sources: tasks that read the kernel and feed the pipeline.

pub mod loss;
pub mod ringbuf;
pub mod ringfill;

use std::os::fd::AsRawFd;

use tokio::io::{Interest, unix::AsyncFd};

/// Registers a map-backed reader (ring buffer, log buffer) with the reactor for readability.
pub fn readable<T: AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: the aya objects passed here own their map fd (`MapData`) for their whole lifetime
    // and always return that same fd; the AsyncFd takes ownership of them.
    Ok(unsafe { AsyncFd::register_with_interest(inner, Interest::READABLE) }?)
}
