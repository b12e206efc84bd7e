//! Stable process GUIDs.
//!
//! A GUID is a name-based UUID (v5) of (boot id, pid, start time in clock ticks). Clock ticks are
//! the resolution of `/proc/PID/stat` field 22, so a process seen first in `/proc` and later in a
//! kernel event gets the same GUID; it differs after pid reuse (another start time) and is the
//! same across sensor restarts within one boot.

use std::sync::{Mutex, PoisonError};

use uuid::Uuid;

use crate::fastmap::FastMap;

/// Nanoseconds per clock tick (`USER_HZ` is 100 on every Linux ABI).
pub const NS_PER_TICK: u64 = 10_000_000;

/// GUIDs remembered (every event names its process and its parent: computing a v5 UUID is a
/// SHA-1 per call, a lookup is much cheaper). Cleared when full; about 40 bytes an entry, no
/// heap (a cache of `String`s freed 8,192 of them at once when it was cleared). The table is
/// sized for this many at creation (7/8 of 8,192 buckets, 256 KiB) rather than grown by
/// doubling, which made the resident size step up during the first minute of a busy run.
const CACHE_MAX: usize = 7168;

#[derive(Debug)]
pub struct GuidMaker {
    namespace: Uuid,
    cache: Mutex<FastMap<(u32, u64), Uuid>>,
}

impl Clone for GuidMaker {
    /// A maker for the same namespace, with its own (empty) cache.
    fn clone(&self) -> Self {
        Self { namespace: self.namespace, cache: Mutex::new(new_cache()) }
    }
}

fn new_cache() -> FastMap<(u32, u64), Uuid> {
    FastMap::with_capacity_and_hasher(CACHE_MAX, ahash::RandomState::new())
}

impl GuidMaker {
    pub fn new(boot_id: &str) -> Self {
        let namespace = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("sensor-boot:{boot_id}").as_bytes());
        Self { namespace, cache: Mutex::new(new_cache()) }
    }

    /// GUID of the process `pid` that started at `start_boot_ns`.
    pub fn guid(&self, pid: u32, start_boot_ns: u64) -> String {
        let mut out = String::new();
        self.guid_into(pid, start_boot_ns, &mut out);
        out
    }

    /// [`Self::guid`] written into `out` (in its allocation when it has room).
    pub fn guid_into(&self, pid: u32, start_boot_ns: u64, out: &mut String) {
        let ticks = start_boot_ns / NS_PER_TICK;
        let g = {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            match cache.get(&(pid, ticks)) {
                Some(g) => *g,
                None => {
                    let g = self.make(pid, ticks);
                    if cache.len() >= CACHE_MAX {
                        cache.clear();
                    }
                    cache.insert((pid, ticks), g);
                    g
                }
            }
        };
        out.clear();
        out.push_str(g.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    }

    /// The v5 UUID of the name `{pid}:{ticks}`, the name formatted on the stack.
    fn make(&self, pid: u32, ticks: u64) -> Uuid {
        use std::io::Write as _;
        // u32 and u64 in decimal and a colon: at most 10 + 1 + 20 bytes.
        let mut name = [0u8; 32];
        let mut w = &mut name[..];
        let written = write!(w, "{pid}:{ticks}").map(|()| 32 - w.len());
        match written {
            Ok(n) => Uuid::new_v5(&self.namespace, &name[..n]),
            Err(_) => Uuid::new_v5(&self.namespace, format!("{pid}:{ticks}").as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_process_same_guid_and_reuse_differs() {
        let g = GuidMaker::new("b1");
        assert_eq!(g.guid(10, 5_000_000_001), g.guid(10, 5_000_000_009));
        assert_ne!(g.guid(10, 5_000_000_000), g.guid(10, 6_000_000_000));
        assert_ne!(g.guid(10, 5_000_000_000), g.guid(11, 5_000_000_000));
        assert_ne!(g.guid(10, 5_000_000_000), GuidMaker::new("b2").guid(10, 5_000_000_000));
        // Cached and computed answers agree, also after the cache was cleared.
        let fresh = g.clone();
        for pid in 0..(CACHE_MAX as u32 + 10) {
            assert_eq!(g.guid(pid, 7_000_000_000), fresh.guid(pid, 7_000_000_000));
        }
        assert_eq!(g.guid(10, 5_000_000_001), GuidMaker::new("b1").guid(10, 5_000_000_001));
    }

    /// The name is `{pid}:{ticks}`, the GUID its hyphenated lowercase v5 UUID: GUIDs stay what
    /// earlier versions wrote (records of one boot are joined on them).
    #[test]
    fn guid_is_the_v5_uuid_of_pid_and_ticks() {
        let g = GuidMaker::new("b1");
        let ns = Uuid::new_v5(&Uuid::NAMESPACE_OID, b"sensor-boot:b1");
        for (pid, start) in [(10, 5_000_000_001), (u32::MAX, u64::MAX), (0, 0)] {
            let name = format!("{pid}:{}", start / NS_PER_TICK);
            assert_eq!(g.guid(pid, start), Uuid::new_v5(&ns, name.as_bytes()).to_string());
        }
    }
}
