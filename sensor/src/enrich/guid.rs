//! Stable process GUIDs.
//!
//! A GUID is a name-based UUID (v5) of (boot id, pid, start time in clock ticks). Clock ticks are
//! the resolution of `/proc/PID/stat` field 22, so a process seen first in `/proc` and later in a
//! kernel event gets the same GUID; it differs after pid reuse (another start time) and is the
//! same across sensor restarts within one boot.

use uuid::Uuid;

/// Nanoseconds per clock tick (`USER_HZ` is 100 on every Linux ABI).
pub const NS_PER_TICK: u64 = 10_000_000;

#[derive(Debug, Clone)]
pub struct GuidMaker {
    namespace: Uuid,
}

impl GuidMaker {
    pub fn new(boot_id: &str) -> Self {
        let namespace = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("sensor-boot:{boot_id}").as_bytes());
        Self { namespace }
    }

    /// GUID of the process `pid` that started at `start_boot_ns`.
    pub fn guid(&self, pid: u32, start_boot_ns: u64) -> String {
        let ticks = start_boot_ns / NS_PER_TICK;
        Uuid::new_v5(&self.namespace, format!("{pid}:{ticks}").as_bytes()).to_string()
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
    }
}
