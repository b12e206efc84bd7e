//! Default sizes of the three kernel ring buffers, scaled to the machine's online CPUs.
//!
//! A ring's data pages are mapped twice into the sensor (the reader's view wraps around), so
//! every byte of ring is two bytes of the sensor's resident memory: the fixed sizes the sensor
//! had before (4 + 8 + 2 MiB) were 28 MiB of a 2-CPU terminal's 49 MiB. The burst a ring must
//! absorb while the reader is off the CPU grows with the CPUs writing into it, so the default is
//! a share per online CPU, between a floor (a small machine still absorbs a burst of a few
//! thousand events) and the old sizes' double as a ceiling. `[limits] *_ring_buffer` overrides it.

use crate::flow::Ring;

const KIB: u32 = 1024;
const MIB: u32 = 1024 * KIB;

/// Bytes per online CPU, floor and ceiling of each ring's default (all powers of two).
const fn share(ring: Ring) -> (u32, u32, u32) {
    match ring {
        Ring::Proc => (512 * KIB, MIB, 8 * MIB),
        Ring::File => (MIB, 2 * MIB, 16 * MIB),
        Ring::Net => (256 * KIB, 512 * KIB, 4 * MIB),
    }
}

/// Online CPUs, not possible ones (a VM may declare many more than it has); the possible ones
/// when the online list cannot be read.
pub fn online_cpus() -> usize {
    aya::util::online_cpus().map(|c| c.len()).or_else(|_| aya::util::nr_cpus()).unwrap_or(1)
}

/// The default size of `ring` in bytes on a machine with `cpus` online CPUs: a power of two
/// (what the kernel requires), at least a page on every architecture the sensor builds for.
pub fn default_bytes(ring: Ring, cpus: usize) -> u32 {
    let (each, floor, ceiling) = share(ring);
    let wanted = each.saturating_mul(u32::try_from(cpus).unwrap_or(u32::MAX));
    wanted.checked_next_power_of_two().unwrap_or(ceiling).clamp(floor, ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_scale_with_the_cpus_within_floor_and_ceiling() {
        assert_eq!(default_bytes(Ring::File, 0), 2 * MIB);
        assert_eq!(default_bytes(Ring::File, 1), 2 * MIB);
        assert_eq!(default_bytes(Ring::File, 2), 2 * MIB);
        assert_eq!(default_bytes(Ring::File, 3), 4 * MIB);
        assert_eq!(default_bytes(Ring::File, 8), 8 * MIB);
        assert_eq!(default_bytes(Ring::File, 4096), 16 * MIB);
        assert_eq!(default_bytes(Ring::File, usize::MAX), 16 * MIB);
        assert_eq!(default_bytes(Ring::Proc, 2), MIB);
        assert_eq!(default_bytes(Ring::Proc, 8), 4 * MIB);
        assert_eq!(default_bytes(Ring::Net, 2), 512 * KIB);
        assert_eq!(default_bytes(Ring::Net, 64), 4 * MIB);
    }

    #[test]
    fn every_default_is_a_power_of_two_and_a_multiple_of_any_page() {
        for ring in Ring::ALL {
            for cpus in 0..=1024 {
                let b = default_bytes(ring, cpus);
                assert!(b.is_power_of_two() && b >= 64 * KIB, "{ring:?} {cpus}: {b}");
            }
        }
    }
}
