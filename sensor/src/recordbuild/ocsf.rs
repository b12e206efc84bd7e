//! OCSF mapping of audit records (`format = "ocsf"` on the jsonl, syslog and kafka outputs).
//!
//! Each record becomes one OCSF 1.3 event: exec/fork/exit/privilege/ptrace/memfd → Process
//! Activity (1007), module and bpf loads → Kernel Extension Activity (1002), sessions →
//! Authentication (3002), file events → File System Activity (1001), network events → Network
//! Activity (4001), DNS queries → DNS Activity (4003); alerts → Detection Finding (2004); loss
//! and checkpoint records → Base Event (0). The acting process (with its GUID, user, session and lineage) is the `actor`. What OCSF
//! has no attribute for (sequence number, hash chain link, raw bytes, flags) is kept under
//! `unmapped`, so nothing of the record is lost. `docs/records.md` has the table.

use sensor_proto::{
    AuditRecord,
    v1::{Ancestor, Host, Process, audit_record::Event},
};
use serde_json::{Map, Value, json};

/// OCSF schema version this mapping follows.
pub const OCSF_VERSION: &str = "1.3.0";

struct Class {
    category: (u32, &'static str),
    class: (u32, &'static str),
}

const SYSTEM: (u32, &str) = (1, "System Activity");
const IAM: (u32, &str) = (3, "Identity & Access Management");
const NETWORK: (u32, &str) = (4, "Network Activity");
const PROCESS: Class = Class { category: SYSTEM, class: (1007, "Process Activity") };
const KERNEL_EXT: Class = Class { category: SYSTEM, class: (1002, "Kernel Extension Activity") };
const FILE: Class = Class { category: SYSTEM, class: (1001, "File System Activity") };
const AUTH: Class = Class { category: IAM, class: (3002, "Authentication") };
const NET: Class = Class { category: NETWORK, class: (4001, "Network Activity") };
const DNS: Class = Class { category: NETWORK, class: (4003, "DNS Activity") };
const FINDING: Class = Class { category: (2, "Findings"), class: (2004, "Detection Finding") };
const BASE: Class = Class { category: (0, "Uncategorized"), class: (0, "Base Event") };
const APP_LIFECYCLE: Class =
    Class { category: (6, "Application Activity"), class: (6002, "Application Lifecycle") };

/// The OCSF event for a record.
pub fn map(record: &AuditRecord) -> Value {
    let mut unmapped = Map::new();
    unmapped.insert("seq".into(), json!(record.seq));
    unmapped.insert("boot_ns".into(), json!(record.boot_ns));
    if let Some(i) = &record.integrity {
        unmapped.insert("prev_hash".into(), json!(i.prev_hash));
    }
    let mut ev = Map::new();
    let (class, activity, status) = match &record.event {
        Some(e) => event_fields(e, record.process.as_ref(), &mut ev, &mut unmapped),
        None => (&BASE, (0, "Unknown".to_owned()), None),
    };
    ev.insert("category_uid".into(), json!(class.category.0));
    ev.insert("category_name".into(), json!(class.category.1));
    ev.insert("class_uid".into(), json!(class.class.0));
    ev.insert("class_name".into(), json!(class.class.1));
    ev.insert("activity_id".into(), json!(activity.0));
    ev.insert("type_uid".into(), json!(u64::from(class.class.0) * 100 + u64::from(activity.0)));
    ev.insert("type_name".into(), json!(format!("{}: {}", class.class.1, activity.1)));
    ev.insert("activity_name".into(), json!(activity.1));
    let (severity_id, severity) = match &record.event {
        // A loss record means events are missing.
        Some(Event::Loss(_)) => (3, "Medium"),
        Some(Event::Alert(a)) => alert_severity(&a.level),
        _ => (1, "Informational"),
    };
    ev.insert("severity_id".into(), json!(severity_id));
    ev.insert("severity".into(), json!(severity));
    if let Some((ok, code)) = status {
        ev.insert("status_id".into(), json!(if ok { 1 } else { 2 }));
        ev.insert("status".into(), json!(if ok { "Success" } else { "Failure" }));
        if let Some(code) = code {
            ev.insert("status_code".into(), json!(code));
        }
    }
    let time = record.time.as_ref().map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
    ev.insert("time".into(), json!(time));
    ev.insert("metadata".into(), metadata(record));
    if let Some(h) = &record.host {
        ev.insert("device".into(), device(h));
    }
    if let Some(p) = &record.process {
        ev.insert("actor".into(), json!({ "process": process(p, &record.ancestors), "user": user(p) }));
    }
    ev.insert("unmapped".into(), Value::Object(unmapped));
    Value::Object(ev)
}

type Status = Option<(bool, Option<String>)>;

/// Class, activity (id, name), status, and the class-specific attributes.
fn event_fields(
    e: &Event,
    actor: Option<&Process>,
    ev: &mut Map<String, Value>,
    unmapped: &mut Map<String, Value>,
) -> (&'static Class, (u32, String), Status) {
    let a = |id: u32, name: &str| (id, name.to_owned());
    match e {
        Event::Exec(x) => {
            unmapped.insert("exec".into(), to_value(x));
            if let Some(p) = actor {
                ev.insert("process".into(), process(p, &[]));
            }
            (&PROCESS, a(1, "Launch"), Some((true, None)))
        }
        Event::Fork(x) => {
            unmapped.insert("fork".into(), to_value(x));
            if let Some(p) = actor {
                ev.insert("process".into(), process(p, &[]));
            }
            (&PROCESS, a(1, "Launch"), Some((true, None)))
        }
        Event::Exit(x) => {
            unmapped.insert("exit".into(), to_value(x));
            if let Some(p) = actor {
                ev.insert("process".into(), process(p, &[]));
            }
            ev.insert("exit_code".into(), json!(x.code));
            (&PROCESS, a(2, "Terminate"), None)
        }
        Event::Privilege(x) => {
            unmapped.insert("privilege".into(), to_value(x));
            if let Some(p) = actor {
                ev.insert("process".into(), process(p, &[]));
            }
            (&PROCESS, a(5, "Set User ID"), Some((true, None)))
        }
        Event::Ptrace(x) => {
            unmapped.insert("ptrace".into(), to_value(x));
            ev.insert(
                "process".into(),
                json!({ "pid": x.target_pid, "uid": x.target_guid, "file": file_obj(&x.target_exe) }),
            );
            (&PROCESS, a(4, "Inject"), Some(result(i64::from(x.result), None)))
        }
        Event::MemfdCreate(x) => {
            unmapped.insert("memfd_create".into(), to_value(x));
            if let Some(p) = actor {
                ev.insert("process".into(), process(p, &[]));
            }
            (&PROCESS, a(99, "Other"), Some(result(i64::from(x.result), None)))
        }
        Event::ModuleLoad(x) => {
            unmapped.insert("module_load".into(), to_value(x));
            ev.insert("driver".into(), json!({ "file": { "name": x.name, "type_id": 1 } }));
            (&KERNEL_EXT, a(1, "Load"), None)
        }
        Event::BpfLoad(x) => {
            unmapped.insert("bpf_load".into(), to_value(x));
            ev.insert(
                "driver".into(),
                json!({ "file": { "name": x.prog_name, "type_id": 99, "type": "BPF program" } }),
            );
            (&KERNEL_EXT, a(1, "Load"), Some(result(i64::from(x.result), None)))
        }
        Event::Session(x) => {
            unmapped.insert("session".into(), to_value(x));
            ev.insert("user".into(), json!({ "name": x.user, "uid": x.auid.to_string() }));
            ev.insert("session".into(), json!({ "uid": x.session_id.to_string(), "terminal": x.tty }));
            ev.insert("logon_process".into(), json!({ "name": x.service, "uid": x.leader_guid }));
            if !x.remote_address.is_empty() {
                ev.insert("src_endpoint".into(), json!({ "ip": x.remote_address, "port": x.remote_port }));
            }
            (&AUTH, a(1, "Logon"), Some((true, None)))
        }
        Event::File(x) => {
            unmapped.insert("file".into(), to_value(x));
            ev.insert("file".into(), file_obj(&x.path));
            if !x.path2.is_empty() {
                ev.insert("file_result".into(), file_obj(&x.path2));
            }
            let err = (!x.error.is_empty()).then(|| x.error.clone());
            (&FILE, file_activity(&x.op, &x.flags), Some(result(x.result, err)))
        }
        Event::Network(x) => {
            unmapped.insert("network".into(), to_value(x));
            ev.insert("src_endpoint".into(), json!({ "ip": x.local_address, "port": x.local_port }));
            if !x.remote_address.is_empty() {
                ev.insert("dst_endpoint".into(), json!({ "ip": x.remote_address, "port": x.remote_port }));
            }
            ev.insert(
                "connection_info".into(),
                json!({
                    "protocol_name": x.protocol,
                    "protocol_ver_id": if x.family == "ipv6" { 6 } else { 4 },
                    "direction_id": if x.op == "accept" { 1 } else { 2 },
                }),
            );
            let err = (!x.error.is_empty()).then(|| x.error.clone());
            let activity = match (x.op.as_str(), x.result < 0, x.error.as_str()) {
                ("connect", true, "ECONNREFUSED") => a(5, "Refuse"),
                ("connect", true, "EINPROGRESS") => a(1, "Open"),
                (_, true, _) => a(4, "Fail"),
                ("connect" | "accept", false, _) => a(1, "Open"),
                ("listen", false, _) => a(7, "Listen"),
                ("send", false, _) => a(6, "Traffic"),
                _ => a(99, "Bind"),
            };
            (&NET, activity, Some(result(x.result, err)))
        }
        Event::Dns(x) => {
            unmapped.insert("dns".into(), to_value(x));
            ev.insert("query".into(), json!({ "hostname": x.name, "type": x.r#type, "packet_uid": x.id }));
            ev.insert("dst_endpoint".into(), json!({ "ip": x.server_address, "port": x.server_port }));
            (&DNS, a(1, "Query"), None)
        }
        Event::Loss(x) => {
            unmapped.insert("loss".into(), to_value(x));
            ev.insert("message".into(), json!(format!("{} {} events lost: {}", x.count, x.kind, x.reason)));
            (&BASE, a(99, "Loss"), None)
        }
        Event::Checkpoint(x) => {
            unmapped.insert("checkpoint".into(), to_value(x));
            (&BASE, a(99, "Checkpoint"), None)
        }
        Event::Signal(x) => {
            unmapped.insert("signal".into(), to_value(x));
            ev.insert(
                "process".into(),
                json!({ "pid": x.target_pid, "uid": x.target_guid, "file": file_obj(&x.target_exe) }),
            );
            ev.insert("message".into(), json!(format!("{} sent to pid {}", x.name, x.target_pid)));
            (&PROCESS, a(99, "Signal"), None)
        }
        Event::BpfAccess(x) => {
            unmapped.insert("bpf_access".into(), to_value(x));
            let name = format!("{} {}", x.object_type, x.object_id);
            let file = if x.path.is_empty() {
                json!({ "name": name, "type_id": 99, "type": "BPF object" })
            } else {
                json!({ "name": name, "path": x.path, "type_id": 99, "type": "BPF object" })
            };
            ev.insert("driver".into(), json!({ "file": file }));
            (&KERNEL_EXT, a(99, "Access"), Some(result(i64::from(x.result), None)))
        }
        Event::SensorStart(x) => {
            unmapped.insert("sensor_start".into(), to_value(x));
            ev.insert("app".into(), json!({ "name": "sensor", "version": x.version }));
            (&APP_LIFECYCLE, a(3, "Start"), None)
        }
        Event::SensorStop(x) => {
            unmapped.insert("sensor_stop".into(), to_value(x));
            ev.insert("app".into(), json!({ "name": "sensor" }));
            ev.insert("message".into(), json!(format!("stopping: {}", x.reason)));
            (&APP_LIFECYCLE, a(4, "Stop"), Some((x.reason != "error", None)))
        }
        Event::Heartbeat(x) => {
            unmapped.insert("heartbeat".into(), to_value(x));
            (&BASE, a(99, "Heartbeat"), None)
        }
        Event::PreviousRun(x) => {
            unmapped.insert("previous_run".into(), to_value(x));
            ev.insert("app".into(), json!({ "name": "sensor" }));
            ev.insert(
                "message".into(),
                json!(format!("previous run {} ended without a final checkpoint", x.instance_id)),
            );
            (&APP_LIFECYCLE, a(4, "Stop"), Some((false, Some("no final checkpoint".to_owned()))))
        }
        Event::Alert(x) => {
            unmapped.insert("alert".into(), to_value(x));
            finding(x, actor, ev);
            (&FINDING, a(1, "Create"), None)
        }
    }
}

/// OCSF severity of an alert, from its Sigma level.
fn alert_severity(level: &str) -> (u32, &'static str) {
    match level {
        "critical" => (5, "Critical"),
        "high" => (4, "High"),
        "medium" => (3, "Medium"),
        "low" => (2, "Low"),
        _ => (1, "Informational"),
    }
}

/// Detection Finding attributes: `finding_info` (the rule as the analytic, ATT&CK, the
/// triggering records), `status` New, and the acting process as evidence.
fn finding(x: &sensor_proto::v1::AlertEvent, actor: Option<&Process>, ev: &mut Map<String, Value>) {
    let attacks: Vec<Value> = x
        .techniques
        .iter()
        .map(|t| json!({ "technique": { "uid": t }, "version": "v15" }))
        .chain(x.tactics.iter().map(|t| json!({ "tactic": { "name": t }, "version": "v15" })))
        .collect();
    let related: Vec<Value> = x.trigger_seqs.iter().map(|s| json!({ "uid": s.to_string() })).collect();
    ev.insert(
        "finding_info".into(),
        json!({
            "uid": format!("{}:{}", x.rule_id, x.trigger_seqs.last().copied().unwrap_or_default()),
            "title": x.title,
            "desc": x.description,
            "types": [x.category],
            "analytic": { "uid": x.rule_id, "name": x.title, "type_id": 1, "type": "Rule", "category": x.category },
            "attacks": attacks,
            "related_events": related,
            "src_url": x.references.first().cloned().unwrap_or_default(),
        }),
    );
    ev.insert("status_id".into(), json!(1));
    ev.insert("status".into(), json!("New"));
    ev.insert("confidence_id".into(), json!(if x.correlation_type.is_empty() { 2 } else { 3 }));
    if let Some(p) = actor {
        ev.insert("evidences".into(), json!([{ "process": process(p, &[]) }]));
    }
}

fn file_activity(op: &str, flags: &str) -> (u32, String) {
    let (id, name) = match op {
        "open" if flags.contains("O_CREAT") => (1, "Create"),
        "open" if flags.contains("O_WRONLY") || flags.contains("O_RDWR") || flags.contains("O_TRUNC") => {
            (3, "Update")
        }
        "open" => (2, "Read"),
        "unlink" | "rmdir" => (4, "Delete"),
        "rename" => (5, "Rename"),
        "link" | "symlink" | "mknod" => (1, "Create"),
        "truncate" => (3, "Update"),
        "chmod" | "chown" | "setxattr" => (7, "Set Security"),
        _ => (99, "Other"),
    };
    (id, name.to_owned())
}

/// (success, status code) from a result that is negative on error.
fn result(res: i64, err: Option<String>) -> (bool, Option<String>) {
    if res < 0 { (false, err.or_else(|| Some(format!("errno {}", -res)))) } else { (true, None) }
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn metadata(r: &AuditRecord) -> Value {
    let instance = r.host.as_ref().map(|h| h.instance_id.as_str()).unwrap_or_default();
    json!({
        "version": OCSF_VERSION,
        "product": { "name": "sensor", "vendor_name": "sensor project", "version": env!("CARGO_PKG_VERSION") },
        "uid": format!("{instance}:{}", r.seq),
        "sequence": r.seq,
        "log_provider": "eBPF",
    })
}

fn device(h: &Host) -> Value {
    json!({
        "hostname": h.hostname,
        "uid": h.machine_id,
        "type_id": 0,
        "os": { "name": "Linux", "type_id": 200, "version": h.kernel },
        "boot_uid": h.boot_id,
        "labels": h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
    })
}

fn file_obj(path: &str) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    let parent = path.rsplit_once('/').map_or("", |(d, _)| if d.is_empty() { "/" } else { d });
    json!({ "path": path, "name": name, "parent_folder": parent, "type_id": 1 })
}

fn user(p: &Process) -> Value {
    json!({ "name": p.user, "uid": p.uid.to_string(), "groups": [{ "name": p.group, "uid": p.gid.to_string() }] })
}

/// An OCSF process object, with its parent and lineage from the ancestors when given.
fn process(p: &Process, ancestors: &[Ancestor]) -> Value {
    let mut file = file_obj(&p.exe);
    if !p.exe_sha256.is_empty() {
        file["hashes"] = json!([{ "algorithm_id": 3, "algorithm": "SHA-256", "value": p.exe_sha256 }]);
    }
    let created = p.start_time.as_ref().map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
    let mut v = json!({
        "pid": p.pid,
        "tid": p.tid,
        "uid": p.guid,
        "name": p.comm,
        "cmd_line": p.argv.join(" "),
        "file": file,
        "user": user(p),
        "created_time": created,
        "session": { "uid": p.session_id.to_string(), "terminal": p.tty },
        "auid": p.auid,
        "container": { "cgroup": p.cgroup },
    });
    if let Some(parent) = ancestors.first() {
        v["parent_process"] = json!({
            "pid": parent.pid,
            "uid": parent.guid,
            "cmd_line": parent.argv.join(" "),
            "file": file_obj(&parent.exe),
        });
    } else if p.ppid != 0 {
        v["parent_process"] = json!({ "pid": p.ppid, "uid": p.parent_guid });
    }
    if !ancestors.is_empty() {
        v["lineage"] = json!(ancestors.iter().map(|a| a.exe.as_str()).collect::<Vec<_>>());
    }
    v
}

#[cfg(test)]
mod tests;
