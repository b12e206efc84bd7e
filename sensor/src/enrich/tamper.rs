//! Signals aimed at the sensor, `bpf()` commands on its objects, and process access, as record
//! events.

use sensor_common::tamper::{OBJ_LINK, OBJ_MAP, OBJ_PROG, SI_KERNEL, SI_QUEUE, SI_TKILL, SI_USER, bpf_cmd};
use sensor_proto::v1::{BpfAccessEvent, SignalEvent, audit_record::Event};

use crate::decode::{BpfCmdRaw, SignalRaw};

/// Name of a signal number, e.g. "SIGKILL" (real-time signals: "SIGRTMIN+3").
pub fn signal_name(sig: u32) -> String {
    let Ok(n) = i32::try_from(sig) else { return format!("signal#{sig}") };
    if let Ok(s) = nix::sys::signal::Signal::try_from(n) {
        return s.as_str().to_owned();
    }
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if (min..=max).contains(&n) { format!("SIGRTMIN+{}", n - min) } else { format!("signal#{sig}") }
}

/// Who generated a signal, from its `si_code`.
pub fn origin(code: i32) -> String {
    match code {
        SI_USER => "user".into(),
        SI_TKILL => "tkill".into(),
        SI_QUEUE => "queue".into(),
        SI_KERNEL => "kernel".into(),
        // Positive codes are the kernel's own (faults, child status, polling).
        c if c > 0 => "kernel".into(),
        -2 => "timer".into(),
        -3 => "mesgq".into(),
        -4 => "asyncio".into(),
        -5 => "sigio".into(),
        c => format!("code#{c}"),
    }
}

/// What `signal_generate` says the kernel did with the signal.
fn result(r: u32) -> String {
    match r {
        0 => "delivered".into(),
        1 => "ignored".into(),
        2 => "already_pending".into(),
        3 => "overflow".into(),
        4 => "lose_info".into(),
        other => format!("result#{other}"),
    }
}

pub fn signal(s: &SignalRaw, target_guid: String, target_exe: String) -> Event {
    Event::Signal(SignalEvent {
        signal: s.signal,
        name: signal_name(s.signal),
        origin: origin(s.code),
        target_pid: s.target_tgid,
        target_tid: s.target_tid,
        target_guid,
        target_exe,
        target_sensor: s.target_sensor,
        from_parent: s.from_parent,
        result: result(s.result),
    })
}

pub fn bpf_access(b: &BpfCmdRaw) -> Event {
    let object_type = match u64::from(b.obj_type) {
        OBJ_PROG => "prog",
        OBJ_MAP => "map",
        OBJ_LINK => "link",
        _ if b.cmd == bpf_cmd::OBJ_GET => "pin",
        _ => "other",
    };
    Event::BpfAccess(BpfAccessEvent {
        command: bpf_cmd::name(b.cmd).to_owned(),
        object_type: object_type.to_owned(),
        object_id: b.obj_id,
        result: b.result,
        path: crate::text::text(&b.path).0,
    })
}

/// Whether a `bpf()` command event concerns the sensor. The kernel reports get-fd-by-id and
/// map/link commands only on the sensor's own objects, but every `BPF_OBJ_GET` (it cannot tell
/// which pins are ours): those count when the path is below one of the sensor's `pins`
/// (protected as such), or relative (resolved against a working directory that may be there).
/// The sensor's own commands (adopting pins at start) never count.
pub fn concerns_sensor(b: &BpfCmdRaw, protected: &crate::protect::ProtectedPaths) -> bool {
    if b.header.tgid == std::process::id() {
        return false;
    }
    if b.cmd != bpf_cmd::OBJ_GET {
        return true;
    }
    !b.path.starts_with(b"/") || protected.classify(&b.path) == Some("pins")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_and_origins() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(19), "SIGSTOP");
        assert_eq!(signal_name(15), "SIGTERM");
        assert!(signal_name(u32::try_from(libc::SIGRTMIN()).expect("rt") + 2).starts_with("SIGRTMIN+"));
        assert_eq!(signal_name(999), "signal#999");
        assert_eq!(origin(0), "user");
        assert_eq!(origin(-6), "tkill");
        assert_eq!(origin(0x80), "kernel");
        assert_eq!(origin(1), "kernel");
        assert_eq!(origin(-1), "queue");
    }
}
