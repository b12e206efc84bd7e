use sensor_proto::v1::{DnsEvent, ExecEvent, FileEvent, Integrity, LossEvent, NetworkEvent};

use super::*;

fn record(event: Event) -> AuditRecord {
    AuditRecord {
        seq: 42,
        time: Some(sensor_proto::Timestamp { seconds: 1_700_000_000, nanos: 5_000_000 }),
        host: Some(Host { hostname: "ward-7".into(), instance_id: "inst".into(), ..Default::default() }),
        process: Some(Box::new(Process {
            guid: "g-leaf".into(),
            pid: 100,
            exe: "/usr/bin/curl".into(),
            argv: vec!["curl".into(), "http://x".into()],
            user: "nurse".into(),
            uid: 1000,
            exe_sha256: "ab".repeat(32),
            ..Default::default()
        })),
        ancestors: vec![
            Ancestor {
                guid: "g-sh".into(),
                pid: 99,
                exe: "/bin/sh".into(),
                argv: vec!["sh".into()],
                ..Default::default()
            },
            Ancestor { guid: "g-sshd".into(), pid: 1, exe: "/usr/sbin/sshd".into(), ..Default::default() },
        ],
        event: Some(event),
        integrity: Some(Integrity { prev_hash: "00".repeat(32) }),
        ..Default::default()
    }
}

#[test]
fn exec_is_process_launch_with_actor_and_lineage() {
    let v = map(&record(Event::Exec(ExecEvent { filename: "/usr/bin/curl".into(), ..Default::default() })));
    assert_eq!(v["class_uid"], 1007);
    assert_eq!(v["category_uid"], 1);
    assert_eq!(v["activity_id"], 1);
    assert_eq!(v["type_uid"], 100_701);
    assert_eq!(v["time"], 1_700_000_000_005_i64);
    assert_eq!(v["metadata"]["version"], OCSF_VERSION);
    assert_eq!(v["metadata"]["sequence"], 42);
    assert_eq!(v["device"]["hostname"], "ward-7");
    let p = &v["actor"]["process"];
    assert_eq!(p["uid"], "g-leaf");
    assert_eq!(p["cmd_line"], "curl http://x");
    assert_eq!(p["file"]["name"], "curl");
    assert_eq!(p["file"]["hashes"][0]["algorithm_id"], 3);
    assert_eq!(p["parent_process"]["uid"], "g-sh");
    assert_eq!(p["lineage"], json!(["/bin/sh", "/usr/sbin/sshd"]));
    assert_eq!(v["actor"]["user"]["name"], "nurse");
    assert_eq!(v["unmapped"]["seq"], 42);
    assert_eq!(v["unmapped"]["prev_hash"], "00".repeat(32));
    let u = &v["unmapped"]["process"];
    assert_eq!(u["syscall_ia32"], false);
    assert!(u.get("guid").is_none() && u.get("argv").is_none(), "mapped attributes are not repeated: {u}");
}

/// What OCSF's process object has no attribute for (how the executable was found, the 32-bit
/// entry, the working directory, ...) is kept under `unmapped.process`: a SIEM rule on a
/// program run from a memfd must still see it in OCSF output.
#[test]
fn the_process_attributes_ocsf_lacks_are_under_unmapped() {
    let mut r = record(Event::File(FileEvent { op: "rename".into(), ..Default::default() }));
    let p = r.process.as_mut().expect("process");
    p.syscall_ia32 = true;
    p.exe_memfd = true;
    p.exe_deleted = true;
    p.exe_writable_tmp = true;
    p.cwd = "/var/tmp".into();
    p.euid = 0;
    p.uid = 1000;
    let u = map(&r)["unmapped"]["process"].clone();
    for flag in ["syscall_ia32", "exe_memfd", "exe_deleted", "exe_writable_tmp"] {
        assert_eq!(u[flag], true, "{flag}: {u}");
    }
    assert_eq!(u["cwd"], "/var/tmp");
    assert_eq!(u["euid"], 0);
    assert!(u.get("uid").is_none(), "uid is in actor.user");
}

/// Every attribute named as mapped is one of `Process`'s: a field renamed in the proto would
/// otherwise be both mapped and repeated under `unmapped.process`.
#[test]
fn mapped_process_attributes_exist() {
    let all = super::to_value(&Process {
        start_time: Some(sensor_proto::Timestamp::default()),
        namespaces: Some(sensor_proto::v1::Namespaces::default()),
        ..Default::default()
    });
    let names = all.as_object().expect("object");
    for k in super::MAPPED_PROCESS {
        assert!(names.contains_key(*k), "{k} is not a Process attribute: {all}");
    }
}

#[test]
fn file_ops_map_to_file_system_activities() {
    let f = |op: &str, flags: &str, result: i64, error: &str| {
        map(&record(Event::File(FileEvent {
            op: op.into(),
            path: "/data/a.docx".into(),
            path2: if op == "rename" { "/data/a.docx.locked".into() } else { String::new() },
            flags: flags.into(),
            result,
            error: error.into(),
            ..Default::default()
        })))
    };
    let r = f("rename", "", 0, "");
    assert_eq!((r["class_uid"].clone(), r["activity_id"].clone()), (json!(1001), json!(5)));
    assert_eq!(r["file"]["parent_folder"], "/data");
    assert_eq!(r["file_result"]["path"], "/data/a.docx.locked");
    assert_eq!(r["status_id"], 1);
    assert_eq!(f("open", "O_WRONLY|O_CREAT|O_TRUNC", 3, "")["activity_id"], 1);
    assert_eq!(f("open", "O_RDWR", 3, "")["activity_id"], 3);
    let denied = f("open", "O_RDONLY", -13, "EACCES");
    assert_eq!(denied["activity_id"], 2);
    assert_eq!(denied["status_id"], 2);
    assert_eq!(denied["status_code"], "EACCES");
    assert_eq!(f("unlink", "", 0, "")["activity_id"], 4);
    assert_eq!(f("chmod", "", 0, "")["activity_id"], 7);
}

#[test]
fn network_dns_and_loss() {
    let n = |op: &str, result: i64, error: &str| {
        map(&record(Event::Network(NetworkEvent {
            op: op.into(),
            protocol: "tcp".into(),
            family: "ipv6".into(),
            remote_address: "::1".into(),
            remote_port: 443,
            result,
            error: error.into(),
            ..Default::default()
        })))
    };
    let refused = n("connect", -111, "ECONNREFUSED");
    assert_eq!(refused["class_uid"], 4001);
    assert_eq!(refused["activity_id"], 5);
    assert_eq!(refused["dst_endpoint"]["port"], 443);
    assert_eq!(refused["connection_info"]["protocol_ver_id"], 6);
    assert_eq!(n("connect", 0, "")["activity_id"], 1);
    assert_eq!(n("listen", 0, "")["activity_id"], 7);
    assert_eq!(n("send", 10, "")["activity_id"], 6);

    let d = map(&record(Event::Dns(DnsEvent {
        name: "evil.example".into(),
        r#type: "A".into(),
        ..Default::default()
    })));
    assert_eq!(d["class_uid"], 4003);
    assert_eq!(d["query"]["hostname"], "evil.example");

    let l = map(&record(Event::Loss(LossEvent {
        kind: "file".into(),
        reason: "ringbuf_full".into(),
        count: 7,
        ..Default::default()
    })));
    assert_eq!(l["class_uid"], 0);
    assert_eq!(l["severity_id"], 3);
    assert_eq!(l["unmapped"]["loss"]["count"], "7", "pbjson renders u64 as a string");
}
