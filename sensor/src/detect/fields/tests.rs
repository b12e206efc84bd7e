use rsigma_eval::{Event as _, EventValue};
use sensor_proto::v1::{Ancestor, FileEvent, NetworkEvent, Process};

use super::*;

fn exec_record() -> AuditRecord {
    AuditRecord {
        seq: 7,
        process: Some(Box::new(Process {
            exe: "/usr/bin/bash".into(),
            argv: vec!["bash".into(), "-c".into(), "id".into()],
            cwd: "/tmp".into(),
            user: String::new(),
            uid: 1001,
            auid: 1000,
            exe_writable_tmp: true,
            ..Default::default()
        })),
        ancestors: vec![
            Ancestor {
                exe: "/usr/sbin/nginx".into(),
                argv: vec!["nginx: worker".into()],
                ..Default::default()
            },
            Ancestor { exe: "/usr/lib/systemd/systemd".into(), ..Default::default() },
        ],
        event: Some(Event::Exec(Default::default())),
        ..Default::default()
    }
}

fn str_of(v: Option<EventValue<'_>>) -> Option<String> {
    match v? {
        EventValue::Str(s) => Some(s.into_owned()),
        EventValue::Int(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}

#[test]
fn process_fields_follow_sysmon_names() {
    let r = exec_record();
    let v = RecordView::new(&r, Category::ProcessCreation, None);
    assert_eq!(str_of(v.get_field("Image")).as_deref(), Some("/usr/bin/bash"));
    assert_eq!(str_of(v.get_field("CommandLine")).as_deref(), Some("bash -c id"));
    assert_eq!(str_of(v.get_field("User")).as_deref(), Some("1001"), "no name: the uid");
    assert_eq!(str_of(v.get_field("LogonId")).as_deref(), Some("1000"));
    assert_eq!(str_of(v.get_field("ParentImage")).as_deref(), Some("/usr/sbin/nginx"));
    assert_eq!(str_of(v.get_field("ParentCommandLine")).as_deref(), Some("nginx: worker"));
    assert_eq!(str_of(v.get_field("ImageWritableTmp")).as_deref(), Some("true"));
    assert!(v.get_field("TargetFilename").is_none(), "file fields are not on exec records");
    assert!(v.get_field("Hashes").is_none(), "no digest yet");
    match v.get_field("AncestorImage") {
        Some(EventValue::Array(a)) => assert_eq!(a.len(), 2),
        other => panic!("{other:?}"),
    }
    // Joined once per view, the same every time a rule asks.
    for _ in 0..2 {
        match v.get_field("AncestorCommandLine") {
            Some(EventValue::Array(a)) => {
                let lines: Vec<Option<String>> = a.into_iter().map(|x| str_of(Some(x))).collect();
                assert_eq!(lines, [Some("nginx: worker".to_owned()), Some(String::new())]);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn rename_targets_the_new_name() {
    let r = AuditRecord {
        process: Some(Box::new(Process::default())),
        event: Some(Event::File(FileEvent {
            op: "rename".into(),
            path: "/srv/share/a.docx".into(),
            path2: "/srv/share/a.docx.locked".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let v = RecordView::new(&r, Category::FileRename, None);
    assert_eq!(str_of(v.get_field("TargetFilename")).as_deref(), Some("/srv/share/a.docx.locked"));
    assert_eq!(str_of(v.get_field("SourceFilename")).as_deref(), Some("/srv/share/a.docx"));
    assert_eq!(str_of(v.get_field("FileOperation")).as_deref(), Some("rename"));
}

#[test]
fn accepts_put_the_peer_at_the_source() {
    let net = |op: &str| AuditRecord {
        process: Some(Box::new(Process::default())),
        event: Some(Event::Network(NetworkEvent {
            op: op.into(),
            local_address: "10.0.0.5".into(),
            local_port: 22,
            remote_address: "192.0.2.9".into(),
            remote_port: 50000,
            ..Default::default()
        })),
        ..Default::default()
    };
    let r = net("accept");
    let v = RecordView::new(&r, Category::NetworkConnection, None);
    assert_eq!(str_of(v.get_field("Initiated")).as_deref(), Some("false"));
    assert_eq!(str_of(v.get_field("SourceIp")).as_deref(), Some("192.0.2.9"));
    assert_eq!(str_of(v.get_field("DestinationPort")).as_deref(), Some("22"));
    let r = net("connect");
    let v = RecordView::new(&r, Category::NetworkConnection, None);
    assert_eq!(str_of(v.get_field("Initiated")).as_deref(), Some("true"));
    assert_eq!(str_of(v.get_field("DestinationIp")).as_deref(), Some("192.0.2.9"));
    assert_eq!(str_of(v.get_field("DestinationPort")).as_deref(), Some("50000"));
}

#[test]
fn session_fields_come_from_the_session_cache() {
    let r = exec_record();
    let info = SessionInfo {
        user: "nurse".into(),
        service: "sshd".into(),
        remote_address: "198.51.100.7".into(),
        ..Default::default()
    };
    let v = RecordView::new(&r, Category::ProcessCreation, Some(&info));
    assert_eq!(str_of(v.get_field("SessionService")).as_deref(), Some("sshd"));
    assert_eq!(str_of(v.get_field("SessionRemoteAddress")).as_deref(), Some("198.51.100.7"));
    let v = RecordView::new(&r, Category::ProcessCreation, None);
    assert!(v.get_field("SessionUser").is_none());
}

#[test]
fn every_field_is_named_once_and_documented() {
    let mut names: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate field names");
    assert!(FIELDS.iter().all(|f| !f.doc.is_empty()));
    assert!(FIELDS.iter().all(|f| lookup(f.name).is_some()));
}

#[test]
fn keyword_search_covers_the_event_text_not_the_ancestry() {
    let r = exec_record();
    let v = RecordView::new(&r, Category::ProcessCreation, None);
    assert!(v.any_string_value(&|s| s.contains("nginx")), "the parent's image");
    assert!(v.any_string_value(&|s| s == "bash -c id"), "the command line");
    assert!(!v.any_string_value(&|s| s.contains("systemd")), "the grandparent: by AncestorImage only");
    assert!(!v.any_string_value(&|s| s.contains("nothing-like-this")));
    assert!(keyword_fields(Category::ProcessCreation).any(|f| f == "CommandLine"));
    // On other records only the event's own fields: the process was searched at its exec.
    let mut f = exec_record();
    f.event = Some(Event::File(FileEvent {
        op: "open".into(),
        path: "/etc/ld.so.preload".into(),
        ..Default::default()
    }));
    let v = RecordView::new(&f, Category::FileEvent, None);
    assert!(v.any_string_value(&|s| s == "/etc/ld.so.preload"));
    assert!(!v.any_string_value(&|s| s.contains("bash")));
    assert!(!keyword_fields(Category::FileEvent).any(|f| f == "CommandLine"));
    // The JSON view is the reference correlations keep.
    assert_eq!(v.to_json(), serde_json::json!({ "event_id": "7" }));
}

#[test]
fn executed_file_is_the_script_made_absolute() {
    let mut r = exec_record();
    r.event = Some(Event::Exec(sensor_proto::v1::ExecEvent {
        filename: "./run/../update.sh".into(),
        interpreter: "/bin/sh".into(),
        ..Default::default()
    }));
    let v = RecordView::new(&r, Category::ProcessCreation, None);
    assert_eq!(str_of(v.get_field("ExecutedFile")).as_deref(), Some("/tmp/update.sh"));
    let r = exec_record();
    let v = RecordView::new(&r, Category::ProcessCreation, None);
    assert_eq!(str_of(v.get_field("ExecutedFile")).as_deref(), Some("/usr/bin/bash"));
}
