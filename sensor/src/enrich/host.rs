//! Identity of this machine and sensor run, carried on every record.

use std::collections::BTreeMap;

use sensor_proto::v1::Host;

/// Reads hostname, machine id, boot id and kernel release; `labels` come from the config.
pub fn identify(labels: BTreeMap<String, String>) -> Host {
    let uname = nix::sys::utsname::uname().ok();
    Host {
        hostname: nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default(),
        machine_id: read_trimmed("/etc/machine-id"),
        boot_id: boot_id(),
        instance_id: uuid::Uuid::new_v4().to_string(),
        labels,
        kernel: uname.map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default(),
    }
}

/// `/proc/sys/kernel/random/boot_id`: changes at every boot.
pub fn boot_id() -> String {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default()
}
