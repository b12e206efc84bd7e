//! The links of this run's attachments, owned by the sensor rather than by their programs
//! (`loader::attach` takes them), so that stopping can release them all at once.
//!
//! **Released after the process where the kernel is slow to detach.** On the fentry path each
//! traced syscall function's trampoline is unregistered one after another under ftrace's lock,
//! each after an RCU-tasks grace period: 178 links took 15.6 s in the 6.1 guest, and threads
//! cannot overlap the waits. The task that drops a link's last reference does that work (a
//! descriptor closed at exit included), so the sensor's stop used to take that long. At stop the
//! links' descriptors are first registered with a new io_uring instance (its table of fixed
//! files holds a reference to each), the sensor's own descriptors are closed, then the ring: the
//! kernel tears a ring down in its own worker, which drops the last references and detaches the
//! programs after the sensor has exited (meanwhile they write into rings nobody reads). A sensor
//! started meanwhile waits for ftrace's lock only to attach. (Unpinning links from bpffs is no
//! way out: the unlinking task detaches them, 10-130 ms per unlink in the 6.1 guest.) Where
//! io_uring is unavailable (kernel option, `io_uring_disabled`, a seccomp filter), the links are
//! released here as before.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use tracing::debug;

/// Links owned by the sensor: dropping one detaches its program from its hook.
#[derive(Default)]
pub struct Links(Vec<Box<dyn Send>>);

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Links({})", self.0.len())
    }
}

impl Links {
    pub(crate) fn push(&mut self, link: impl Send + 'static) {
        self.0.push(Box::new(link));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Detaches every link at once. The kernel waits for an RCU grace period when a tracepoint
    /// attachment goes (tens of milliseconds each, more on a busy machine); one after another,
    /// the ~110 attachments took 4-8 s. Released from a thread each, the waits overlap. (Pinned
    /// links stay attached: only this process's reference goes.)
    pub fn release(self) {
        /// Threads at most; a link each on this sensor (about 110 attachments).
        const THREADS: usize = 128;
        let mut links = self.0;
        let per = links.len().div_ceil(THREADS).max(1);
        std::thread::scope(|s| {
            while !links.is_empty() {
                let chunk: Vec<Box<dyn Send>> = links.drain(..per.min(links.len())).collect();
                s.spawn(move || drop(chunk));
            }
        });
    }

    /// Releases the links, the BPF links among them detached by the kernel after this process
    /// rather than by it (see the module's documentation). Hands over every BPF link descriptor
    /// the process holds: at a stop whose programs detach, those are this run's (a fresh load's,
    /// or with `unpin_on_stop` the adopted ones too, pushed here first). Returns how many went
    /// that way.
    pub fn release_in_background(self) -> usize {
        let fds: Vec<i32> = crate::guard::held_link_fds().into_iter().map(|(fd, _)| fd).collect();
        let ring = if fds.is_empty() { None } else { ring_holding(&fds) };
        let handed = if ring.is_some() { fds.len() } else { 0 };
        self.release();
        // Closed after this process's own descriptors: the ring's are the last references.
        drop(ring);
        handed
    }
}

/// A new io_uring instance with `fds` as its fixed files (each a reference to its file);
/// `None` where io_uring is unavailable.
fn ring_holding(fds: &[i32]) -> Option<OwnedFd> {
    /// `IORING_REGISTER_FILES` (include/uapi/linux/io_uring.h).
    const IORING_REGISTER_FILES: libc::c_long = 2;
    // `struct io_uring_params`: 120 bytes, all zero = defaults (the kernel fills in the rest).
    let mut params = [0u64; 15];
    // SAFETY: `io_uring_setup(2)` with one entry and a zeroed parameter block it writes to.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        debug!(error = %std::io::Error::last_os_error(), "no io_uring: links released in this process");
        return None;
    }
    // SAFETY: a descriptor the kernel just returned, owned here.
    let ring = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let n = u32::try_from(fds.len()).ok()?;
    // SAFETY: `io_uring_register(2)` with an array of `n` descriptors that outlives the call.
    let r = unsafe {
        libc::syscall(libc::SYS_io_uring_register, ring.as_raw_fd(), IORING_REGISTER_FILES, fds.as_ptr(), n)
    };
    if r < 0 {
        debug!(error = %std::io::Error::last_os_error(), "io_uring refused the links: released in this process");
        return None;
    }
    Some(ring)
}
