//! Fields of the tamper-evidence records: signals aimed at the sensor, `bpf()` commands on its
//! objects, process access to it, changes to its files, and its lifecycle.

use sensor_proto::v1::audit_record::Event;

use super::{Category, Field, Scope, boolean, int, int_u64, ne};

const FILE_CATS: &[Category] = &[
    Category::FileEvent,
    Category::FileAccess,
    Category::FileDelete,
    Category::FileRename,
    Category::FilePermission,
    Category::SensorFile,
];

pub static TAMPER: &[Field] = &[
    // ---- signal ----
    Field {
        name: "Signal",
        scope: Scope::Only(&[Category::Signal]),
        doc: "signal name, e.g. `SIGKILL`, `SIGSTOP`, `SIGTERM`",
        get: |v| ev!(v, Event::Signal(g) => ne(&g.name)),
    },
    Field {
        name: "SignalNumber",
        scope: Scope::Only(&[Category::Signal]),
        doc: "signal number",
        get: |v| ev!(v, Event::Signal(g) => int(g.signal)),
    },
    Field {
        name: "SignalOrigin",
        scope: Scope::Only(&[Category::Signal]),
        doc: "`user` (kill), `tkill` (tgkill), `queue` (sigqueue), `kernel`, …",
        get: |v| ev!(v, Event::Signal(g) => ne(&g.origin)),
    },
    Field {
        name: "SignalFromParent",
        scope: Scope::Only(&[Category::Signal]),
        doc: "`true` when the sender is the target's parent (its service manager)",
        get: |v| ev!(v, Event::Signal(g) => boolean(g.from_parent)),
    },
    Field {
        name: "TargetIsSensor",
        scope: Scope::Only(&[Category::Signal, Category::Ptrace]),
        doc: "`true` when the signal or the process access is aimed at the sensor itself",
        get: |v| match v.event()? {
            Event::Signal(g) => boolean(g.target_sensor),
            Event::Ptrace(p) => boolean(p.target_sensor),
            _ => None,
        },
    },
    Field {
        name: "SignalTargetImage",
        scope: Scope::Only(&[Category::Signal]),
        doc: "executable of the process the signal is for",
        get: |v| ev!(v, Event::Signal(g) => ne(&g.target_exe)),
    },
    // ---- bpf_access ----
    Field {
        name: "BpfCommand",
        scope: Scope::Only(&[Category::BpfAccess]),
        doc: "`prog_get_fd_by_id`, `map_get_fd_by_id`, `link_get_fd_by_id`, `map_update_elem`, \
              `map_delete_elem`, `map_freeze`, `link_update`, `link_detach`, …",
        get: |v| ev!(v, Event::BpfAccess(b) => ne(&b.command)),
    },
    Field {
        name: "BpfObjectType",
        scope: Scope::Only(&[Category::BpfAccess]),
        doc: "`prog`, `map` or `link`; `pin` for `obj_get` on a pinned object",
        get: |v| ev!(v, Event::BpfAccess(b) => ne(&b.object_type)),
    },
    Field {
        name: "BpfPath",
        scope: Scope::Only(&[Category::BpfAccess]),
        doc: "`obj_get`: path of the pinned object in bpffs",
        get: |v| ev!(v, Event::BpfAccess(b) => ne(&b.path)),
    },
    Field {
        name: "BpfObjectId",
        scope: Scope::Only(&[Category::BpfAccess]),
        doc: "kernel id of the sensor's object",
        get: |v| ev!(v, Event::BpfAccess(b) => int(b.object_id)),
    },
    // ---- files of the sensor ----
    Field {
        name: "SensorPathClass",
        scope: Scope::Only(FILE_CATS),
        doc: "the sensor's own path the record touches: `binary`, `config`, `rules`, `key`, \
              `records`, `spool`, `pins`, `cgroup`, `btf`, `other`",
        get: |v| ev!(v, Event::File(f) => ne(&f.protected)),
    },
    // ---- sensor_lifecycle ----
    Field {
        name: "SensorEvent",
        scope: Scope::Only(&[Category::SensorLifecycle]),
        doc: "`sensor_start`, `sensor_stop`, `heartbeat` or `previous_run`",
        get: |v| match v.event()? {
            Event::SensorStart(_) => ne("sensor_start"),
            Event::SensorStop(_) => ne("sensor_stop"),
            Event::Heartbeat(_) => ne("heartbeat"),
            Event::PreviousRun(_) => ne("previous_run"),
            _ => None,
        },
    },
    Field {
        name: "StopReason",
        scope: Scope::Only(&[Category::SensorLifecycle]),
        doc: "`sensor_stop`: `signal`, `duration` or `error`",
        get: |v| ev!(v, Event::SensorStop(s) => ne(&s.reason)),
    },
    Field {
        name: "PreviousRunSameBoot",
        scope: Scope::Only(&[Category::SensorLifecycle]),
        doc: "`previous_run`: `true` when the previous run ended while the machine kept running \
              (killed or crashed), `false` after a reboot",
        get: |v| ev!(v, Event::PreviousRun(p) => boolean(p.same_boot)),
    },
    Field {
        name: "PreviousRunGapSeconds",
        scope: Scope::Only(&[Category::SensorLifecycle]),
        doc: "`previous_run`: seconds from the previous run's last record to this start",
        get: |v| ev!(v, Event::PreviousRun(p) => int_u64(p.gap_ns / 1_000_000_000)),
    },
];
