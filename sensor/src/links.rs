//! The links of this run's attachments, owned by the sensor rather than by their programs
//! (`loader::attach` takes them), so that stopping can release them all at once.

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
}
