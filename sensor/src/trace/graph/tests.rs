//! Tests of the incident graph: the index, the nodes and what they take from records.

use super::*;
use sensor_proto::v1::ForkEvent;

pub(crate) fn rec(guid: &str, parent: &str, ancestors: &[&str]) -> AuditRecord {
    AuditRecord {
        process: Some(Box::new(Process {
            guid: guid.into(),
            parent_guid: parent.into(),
            ..Default::default()
        })),
        ancestors: ancestors.iter().map(|g| Ancestor { guid: (*g).into(), ..Default::default() }).collect(),
        ..Default::default()
    }
}

fn k(s: &str) -> Key {
    key(s).expect("key")
}

#[test]
fn chain_comes_from_parent_guids_and_ancestry() {
    let mut ix = ParentIndex::default();
    // Only the leaf's record is present; its ancestry gives the whole chain.
    ix.observe(&rec("leaf", "sh", &["sh", "svc", "init"]));
    assert_eq!(ix.chain(k("leaf")), vec![k("sh"), k("svc"), k("init")]);
    // A record with only GUIDs (queued after exit) still links.
    ix.observe(&rec("child", "leaf", &[]));
    assert_eq!(ix.chain(k("child"))[..2], [k("leaf"), k("sh")]);
}

#[test]
fn fork_event_parent_is_used_when_process_has_none() {
    let mut ix = ParentIndex::default();
    let mut r = rec("c", "", &[]);
    r.event = Some(Event::Fork(ForkEvent { parent_guid: "p".into(), ..Default::default() }));
    ix.observe(&r);
    assert_eq!(ix.parent(k("c")), Some(k("p")));
}

#[test]
fn cycles_do_not_loop() {
    let mut ix = ParentIndex::default();
    ix.observe(&rec("a", "b", &[]));
    ix.observe(&rec("b", "a", &[]));
    assert_eq!(ix.chain(k("a")), vec![k("b")]);
    let roots = HashSet::from([k("a")]);
    assert_eq!(ix.descendants(&roots, 10).0, vec![k("b")]);
}

#[test]
fn descendants_are_capped_and_counted() {
    let mut ix = ParentIndex::default();
    for i in 0..5 {
        ix.observe(&rec(&format!("c{i}"), "root", &[]));
        ix.observe(&rec(&format!("g{i}"), &format!("c{i}"), &[]));
    }
    ix.observe(&rec("other", "elsewhere", &[]));
    let roots = HashSet::from([k("root")]);
    let (all, more) = ix.descendants(&roots, 100);
    assert_eq!((all.len(), more), (10, 0));
    let (some, more) = ix.descendants(&roots, 3);
    assert_eq!((some.len(), more), (3, 7));
}

#[test]
fn uuid_guids_are_their_own_key() {
    let g = "54912664-c749-50ff-9215-48b44bc80690";
    assert_eq!(key(g), Some(uuid::Uuid::parse_str(g).expect("uuid").as_u128()));
    assert_eq!(key(""), None);
}

#[test]
fn empty_fields_do_not_overwrite_known_ones() {
    let mut n = Node::new(1, Role::Acting);
    let p = Process {
        guid: "g".into(),
        pid: 7,
        exe: "/usr/bin/bash".into(),
        argv: vec!["bash".into(), "/tmp/x y.sh".into()],
        user: "root".into(),
        ..Default::default()
    };
    n.absorb_process(&p, Some(&Event::Exec(Default::default())));
    n.absorb_process(&Process { guid: "g".into(), ..Default::default() }, None);
    assert_eq!(n.exe, "/usr/bin/bash");
    assert_eq!(n.pid, 7);
    assert_eq!(n.command(), "/usr/bin/bash (bash '/tmp/x y.sh')");
    assert_eq!(command_line("/p", &["p".into(), "-c".into(), "a\nb".into()]), "/p (p -c 'a\\nb')");
    assert_eq!(n.records, 2);
    assert!(!n.from_ancestry);
}

#[test]
fn an_ancestors_whole_command_line_replaces_a_cut_one() {
    let mut n = Node::new(1, Role::Ancestor);
    let seen = |argv: &[&str], cut: bool| Ancestor {
        guid: "g".into(),
        exe: "/usr/bin/java".into(),
        argv: argv.iter().map(|&a| a.into()).collect(),
        argv_truncated: cut,
        ..Default::default()
    };
    n.absorb_ancestor(&seen(&["java", "-cp"], true), None);
    assert_eq!(n.argv, ["java", "-cp"]);
    n.absorb_ancestor(&seen(&["java", "-cp", "/opt/his.jar", "Main"], false), None);
    assert_eq!(n.argv, ["java", "-cp", "/opt/his.jar", "Main"]);
    n.absorb_ancestor(&seen(&["java"], true), None);
    assert_eq!(n.argv, ["java", "-cp", "/opt/his.jar", "Main"], "a cut one never replaces a whole one");
}
