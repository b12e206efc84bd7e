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

/// An OCSF category and class.
pub struct Class {
    category: (u32, &'static str),
    class: (u32, &'static str),
}

pub const SYSTEM: (u32, &str) = (1, "System Activity");
pub const IAM: (u32, &str) = (3, "Identity & Access Management");
pub const NETWORK: (u32, &str) = (4, "Network Activity");
pub const PROCESS: Class = Class { category: SYSTEM, class: (1007, "Process Activity") };
pub const KERNEL_EXT: Class = Class { category: SYSTEM, class: (1002, "Kernel Extension Activity") };
pub const FILE: Class = Class { category: SYSTEM, class: (1001, "File System Activity") };
pub const AUTH: Class = Class { category: IAM, class: (3002, "Authentication") };
pub const NET: Class = Class { category: NETWORK, class: (4001, "Network Activity") };
pub const DNS: Class = Class { category: NETWORK, class: (4003, "DNS Activity") };
pub const FINDING: Class = Class { category: (2, "Findings"), class: (2004, "Detection Finding") };
pub const BASE: Class = Class { category: (0, "Uncategorized"), class: (0, "Base Event") };
pub const APP_LIFECYCLE: Class =
    Class { category: (6, "Application Activity"), class: (6002, "Application Lifecycle") };

/// The OCSF event for a record.
pub fn map(record: &AuditRecord) -> Value {
    let mut unmapped = Map::new();
    unmapped.insert("seq".into(), json!(record.seq));
    unmapped.insert("boot_ns".into(), json!(record.boot_ns));
    if let Some(i) = &record.integrity {
        unmapped.insert("prev_hash".into(), json!(i.prev_hash));
    }
    if let Some(p) = &record.process {
        unmapped.insert("process".into(), unmapped_process(p));
    }
    let mut ev = Map::new();
    let (class, activity, status) = match &record.event {
        Some(e) => event_fields(e, record.process.as_deref(), &mut ev, &mut unmapped),
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
        Some(e) => sensor_proto::match_event!(e, x => Ocsf::ocsf_severity(x)),
        None => INFORMATIONAL,
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

/// Success or failure, with a status code when failed; `None` when the class has no status.
pub type Status = Option<(bool, Option<String>)>;

/// Class, activity (id, name) and status of an OCSF event.
pub type Mapping = (&'static Class, (u32, String), Status);

/// The default OCSF severity.
pub const INFORMATIONAL: (u32, &str) = (1, "Informational");

/// How a record kind maps to OCSF. Every record kind implements it in its module under
/// `crate::kinds`; the record itself goes under `unmapped` by the kind's name, whatever the
/// kind, so nothing of it is lost.
pub trait Ocsf {
    /// Adds the class-specific attributes to `ev` and says which class, activity and status
    /// the record is. `actor` is the record's acting process.
    fn ocsf(&self, actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping;

    /// The OCSF severity (id, name): Informational unless the kind says otherwise.
    fn ocsf_severity(&self) -> (u32, &'static str) {
        INFORMATIONAL
    }
}

/// Class, activity (id, name), status, and the class-specific attributes.
fn event_fields(
    e: &Event,
    actor: Option<&Process>,
    ev: &mut Map<String, Value>,
    unmapped: &mut Map<String, Value>,
) -> Mapping {
    sensor_proto::match_event!(e, x => {
        unmapped.insert(sensor_proto::name_of(x).into(), to_value(x));
        Ocsf::ocsf(x, actor, ev)
    })
}

/// An activity (id, name).
pub fn activity(id: u32, name: &str) -> (u32, String) {
    (id, name.to_owned())
}

/// Detection Finding attributes: `finding_info` (the rule as the analytic, ATT&CK, the
/// triggering records), `status` New, and the acting process as evidence.
pub fn finding(x: &sensor_proto::v1::AlertEvent, actor: Option<&Process>, ev: &mut Map<String, Value>) {
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

/// The File System Activity of a file operation.
pub fn file_activity(op: &str, flags: &str) -> (u32, String) {
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
pub fn result(res: i64, err: Option<String>) -> (bool, Option<String>) {
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

/// An OCSF file object for a path.
pub fn file_obj(path: &str) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    let parent = path.rsplit_once('/').map_or("", |(d, _)| if d.is_empty() { "/" } else { d });
    json!({ "path": path, "name": name, "parent_folder": parent, "type_id": 1 })
}

fn user(p: &Process) -> Value {
    json!({ "name": p.user, "uid": p.uid.to_string(), "groups": [{ "name": p.group, "uid": p.gid.to_string() }] })
}

/// The acting process's attributes that [`process`] puts into the OCSF process object (or its
/// user, session, parent): every other one goes under `unmapped.process`.
const MAPPED_PROCESS: &[&str] = &[
    "pid",
    "tid",
    "guid",
    "comm",
    "argv",
    "exe",
    "exe_sha256",
    "uid",
    "gid",
    "user",
    "group",
    "start_time",
    "session_id",
    "tty",
    "auid",
    "cgroup",
    "ppid",
    "parent_guid",
];

/// The acting process's attributes OCSF has no place for, as in the canonical JSON: how the
/// executable was found (`exe_memfd`, `exe_deleted`, `exe_writable_tmp`), the 32-bit entry
/// (`syscall_ia32`), effective ids, working directory, namespaces, raw bytes, ...
fn unmapped_process(p: &Process) -> Value {
    let mut v = to_value(p);
    if let Value::Object(m) = &mut v {
        m.retain(|k, _| !MAPPED_PROCESS.contains(&k.as_str()));
    }
    v
}

/// An OCSF process object, with its parent and lineage from the ancestors when given.
pub fn process(p: &Process, ancestors: &[Ancestor]) -> Value {
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
