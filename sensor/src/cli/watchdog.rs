//! `sensor run` under systemd (`Type=notify`, `WatchdogSec=`): readiness once records stream,
//! then a watchdog ping every half period while the record stage makes progress.
//!
//! Readiness makes boot wait until the programs are attached (the unit runs before
//! `sysinit.target`), so what follows is recorded. The watchdog answers an attacker's cheap way
//! to blind a sensor without killing it: `kill -STOP` freezes every thread, pings stop, and
//! systemd kills and restarts the sensor after `WatchdogSec`; the next run reports the frozen one
//! (`previous_run`), and the kernel's record of the SIGSTOP (a `signal` record) is delivered when
//! the rings are adopted (pinning) — the same happens when the record stage hangs (events
//! arrive, none is taken for a whole period). Without `NOTIFY_SOCKET` (not under systemd) all
//! of this does nothing.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use sd_notify::NotifyState;
use tracing::{error, info, warn};

use crate::stats::Stats;

/// Tells the service manager that the sensor is up (no-op outside systemd).
pub fn ready() {
    if let Err(e) = sd_notify::notify(false, &[NotifyState::Ready]) {
        warn!(error = %e, "telling systemd that the sensor is ready failed");
    }
}

/// Tells the service manager that the sensor is stopping (no-op outside systemd).
pub fn stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

/// Starts the pings when the service manager asked for a watchdog (`WATCHDOG_USEC`).
pub fn spawn(stats: Arc<Stats>) -> Option<tokio::task::JoinHandle<()>> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let period = (Duration::from_micros(usec) / 2).max(Duration::from_millis(100));
    info!(ping_every_ms = period.as_millis(), "systemd watchdog on");
    Some(tokio::spawn(async move {
        let mut progress = Progress::default();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let arrived = stats.kernel_events.load(Ordering::Relaxed);
            let taken = stats.events_taken.load(Ordering::Relaxed);
            match progress.check(arrived, taken) {
                Health::Alive => {
                    if let Err(e) = sd_notify::notify(false, &[NotifyState::Watchdog]) {
                        warn!(error = %e, "systemd watchdog ping failed");
                    }
                }
                Health::Stalled { periods } => {
                    if periods == STALLED_PERIODS {
                        error!(
                            stalled_secs = (period * periods).as_secs(),
                            "the record stage takes no events while they arrive: no more watchdog \
                             pings, systemd restarts the sensor"
                        );
                    }
                }
            }
        }
    }))
}

/// Periods without progress (events arrive, none is taken) before the pings stop: two half
/// periods, a whole `WatchdogSec`, so a slow moment (a sink's long fsync) is not a restart.
const STALLED_PERIODS: u32 = 2;

/// The record stage's progress between two ticks.
#[derive(Debug, Default)]
struct Progress {
    arrived: u64,
    taken: u64,
    stalled: u32,
}

#[derive(Debug, PartialEq, Eq)]
enum Health {
    Alive,
    Stalled { periods: u32 },
}

impl Progress {
    /// `arrived`: kernel events read so far; `taken`: events the record stage took so far.
    fn check(&mut self, arrived: u64, taken: u64) -> Health {
        let waiting = arrived != self.arrived;
        let moved = taken != self.taken;
        self.arrived = arrived;
        self.taken = taken;
        self.stalled = if waiting && !moved { self.stalled + 1 } else { 0 };
        if self.stalled >= STALLED_PERIODS {
            Health::Stalled { periods: self.stalled }
        } else {
            Health::Alive
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_stop_only_when_events_arrive_and_none_is_taken_for_a_whole_period() {
        let mut p = Progress::default();
        assert_eq!(p.check(10, 10), Health::Alive);
        // Idle machine: nothing arrives, nothing is taken.
        assert_eq!(p.check(10, 10), Health::Alive);
        // Busy and keeping up, or behind but moving.
        assert_eq!(p.check(500, 300), Health::Alive);
        assert_eq!(p.check(900, 301), Health::Alive);
        // Events arrive, none is taken: one half period is tolerated, two are not.
        assert_eq!(p.check(950, 301), Health::Alive);
        assert_eq!(p.check(990, 301), Health::Stalled { periods: 2 });
        assert_eq!(p.check(995, 301), Health::Stalled { periods: 3 });
        // It moves again: pings resume.
        assert_eq!(p.check(999, 350), Health::Alive);
    }
}
