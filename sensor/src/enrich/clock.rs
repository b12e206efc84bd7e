//! Converts kernel CLOCK_BOOTTIME nanoseconds to wall-clock time.

use nix::time::{ClockId, clock_gettime};
use sensor_proto::Timestamp;

/// Offset between CLOCK_REALTIME and CLOCK_BOOTTIME, taken once at start.
#[derive(Debug, Clone, Copy)]
pub struct BootClock {
    /// realtime_ns - boottime_ns
    offset_ns: i128,
}

impl BootClock {
    pub fn now() -> Self {
        let real = ns(ClockId::CLOCK_REALTIME);
        let boot = ns(ClockId::CLOCK_BOOTTIME);
        Self { offset_ns: real - boot }
    }

    /// Boot-time ns at this instant.
    pub fn boot_ns_now() -> u64 {
        u64::try_from(ns(ClockId::CLOCK_BOOTTIME)).unwrap_or(0)
    }

    /// Wall-clock time of a boot-time instant.
    pub fn wall(&self, boot_ns: u64) -> Timestamp {
        let t = i128::from(boot_ns) + self.offset_ns;
        Timestamp {
            seconds: i64::try_from(t.div_euclid(1_000_000_000)).unwrap_or(0),
            nanos: i32::try_from(t.rem_euclid(1_000_000_000)).unwrap_or(0),
        }
    }
}

fn ns(clock: ClockId) -> i128 {
    clock_gettime(clock).map_or(0, |t| i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_time_is_close_to_now() {
        let c = BootClock::now();
        let w = c.wall(BootClock::boot_ns_now());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after epoch")
            .as_secs() as i64;
        assert!((w.seconds - now).abs() <= 1, "{} vs {now}", w.seconds);
        assert!((0..1_000_000_000).contains(&w.nanos));
    }
}
