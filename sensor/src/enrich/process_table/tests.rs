use std::{fs, path::Path};

use super::{seed::*, *};
use crate::enrich::guid::NS_PER_TICK;

fn table(max_entries: usize) -> ProcessTable {
    let limits = TableLimits { max_entries, exit_grace_ns: 0, ..TableLimits::default() };
    ProcessTable::new(limits, GuidMaker::new("test-boot"))
}

fn proc(t: &ProcessTable, pid: u32, start_s: u64, exe: &str, session_id: u32) -> Process {
    let start_boot_ns = start_s * 1_000_000_000;
    Process {
        guid: t.guids.guid(pid, start_boot_ns),
        pid,
        tid: pid,
        exe: exe.to_owned(),
        argv: vec![exe.to_owned()],
        session_id,
        auid: if session_id == UNSET { UNSET } else { 1000 },
        start_boot_ns,
        ..Default::default()
    }
}

/// Forks `child` from `parent` then execs `exe` in it; returns the child's GUID.
fn spawn(t: &mut ProcessTable, parent: &Process, child: &Process) -> String {
    t.on_fork(child.clone(), parent.pid, parent.start_boot_ns);
    t.on_exec(child.clone());
    child.guid.clone()
}

fn pids(a: &[Ancestor]) -> Vec<u32> {
    a.iter().map(|a| a.pid).collect()
}

#[test]
fn seed_from_real_proc_finds_this_process() {
    let mut t = ProcessTable::new(TableLimits::default(), GuidMaker::new("b"));
    let s = t.seed_from_proc(Path::new("/proc"), &BootClock::now());
    assert!(s.seeded > 2, "{s:?}");
    assert_eq!(t.stats().live, s.seeded);
    let me = t.live_by_pid(std::process::id()).expect("this process");
    assert_eq!(me.process.ppid, std::os::unix::process::parent_id());
    let exe = std::env::current_exe().expect("own exe");
    assert_eq!(me.process.exe, exe.to_str().expect("utf-8 path"));
    assert_eq!(me.process.uid, nix::unistd::getuid().as_raw());
    assert_eq!(me.process.egid, nix::unistd::getegid().as_raw());
    assert!(!me.process.argv.is_empty());
    let ticks = crate::enrich::procfs::start_ticks(std::process::id()).expect("ticks");
    assert_eq!(me.process.start_boot_ns, ticks * NS_PER_TICK);
    assert!(me.process.start_time.is_some());
    let parent = t.live_by_pid(me.process.ppid).expect("parent seeded");
    assert_eq!(me.parent_guid.as_deref(), Some(parent.process.guid.as_str()));
    assert_eq!(me.process.parent_guid, parent.process.guid);
    let init = t.live_by_pid(1).expect("init");
    assert_eq!(init.parent_guid, None);
    // the chain ends at init (or at a parent outside this session)
    let anc = t.ancestors(&me.process.guid);
    assert_eq!(anc.first().map(|a| a.pid), Some(me.process.ppid));
}

fn fake_pid(root: &Path, pid: u32, stat: &str, status: Option<&str>, cmdline: &[u8]) {
    let dir = root.join(pid.to_string());
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("stat"), stat).expect("stat");
    if let Some(s) = status {
        fs::write(dir.join("status"), s).expect("status");
    }
    fs::write(dir.join("cmdline"), cmdline).expect("cmdline");
}

fn stat_line(pid: u32, comm: &str, ppid: u32, tty: u32, start: u64) -> String {
    format!("{pid} ({comm}) S {ppid} 1 1 {tty} -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 {start} 1 1\n")
}

fn status(tgid: u32, uid: u32, gid: u32) -> String {
    format!("Name:\tx\nTgid:\t{tgid}\nUid:\t{uid}\t{}\t0\t0\nGid:\t{gid}\t{}\t0\t0\n", uid + 1, gid + 1)
}

#[test]
fn seed_parses_odd_comm_kernel_threads_and_skips_the_unreadable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    fake_pid(root, 1, &stat_line(1, "init", 0, 0, 1), Some(&status(1, 0, 0)), b"/sbin/init\0");
    let odd = stat_line(10, "a) (b c", 1, (136 << 8) | 3, 500);
    fake_pid(root, 10, &odd, Some(&status(10, 1000, 100)), b"vi\0a\xffb\0");
    std::os::unix::fs::symlink("/usr/bin/vim (deleted)", root.join("10/exe")).expect("exe");
    std::os::unix::fs::symlink("/home/u", root.join("10/cwd")).expect("cwd");
    fs::write(root.join("10/loginuid"), "1000").expect("loginuid");
    fs::write(root.join("10/sessionid"), "7\n").expect("sessionid");
    fake_pid(root, 11, &stat_line(11, "kworker/0:1", 2, 0, 2), Some(&status(11, 0, 0)), b"");
    fake_pid(root, 12, &stat_line(12, "gone", 1, 0, 3), None, b"x\0"); // vanished
    fake_pid(root, 13, &stat_line(13, "thr", 1, 0, 4), Some(&status(10, 0, 0)), b""); // a thread
    fake_pid(root, 14, "14 (trunc", Some(&status(14, 0, 0)), b""); // bad stat
    fs::create_dir(root.join("self")).expect("non-numeric");

    let mut t = table(100);
    let s = t.seed_from_proc(root, &BootClock::now());
    assert_eq!(s, SeedStats { seeded: 3, skipped: 3 });
    let vi = t.live_by_pid(10).expect("vi").process.clone();
    assert_eq!(vi.comm, "a) (b c");
    assert_eq!((vi.ppid, vi.start_boot_ns), (1, 500 * NS_PER_TICK));
    assert_eq!((vi.uid, vi.euid, vi.gid, vi.egid), (1000, 1001, 100, 101));
    assert_eq!(vi.argv, vec!["vi".to_owned(), "a\\xffb".to_owned()]);
    assert_eq!(vi.argv_raw, vec![b"vi".to_vec(), b"a\xffb".to_vec()]);
    assert_eq!((vi.exe.as_str(), vi.exe_deleted), ("/usr/bin/vim", true));
    assert_eq!((vi.cwd.as_str(), vi.tty.as_str()), ("/home/u", "pts/3"));
    assert_eq!((vi.auid, vi.session_id), (1000, 7));
    assert_eq!(vi.parent_guid, t.live_by_pid(1).expect("init").process.guid);
    assert_eq!(t.get(&vi.parent_guid).expect("init").live_children(), 1);
    let kw = &t.live_by_pid(11).expect("kworker").process;
    assert!(kw.argv.is_empty() && kw.exe.is_empty());
    assert_eq!((kw.auid, kw.session_id), (UNSET, UNSET));
    assert_eq!(kw.parent_guid, "", "pid 2 was not seeded");
    assert_eq!(t.live_by_pid(1).expect("init").process.argv, vec!["/sbin/init"]);
}

#[test]
fn tty_names_and_stat_parsing() {
    assert_eq!(tty_name(0), "");
    assert_eq!(tty_name((136 << 8) | 5), "pts/5");
    assert_eq!(tty_name((4 << 8) | 1), "tty1");
    assert_eq!(tty_name((4 << 8) | 64), "ttyS0");
    assert_eq!(tty_name((136 << 8) | (1 << 20) | 2), "pts/258");
    let s = parse_stat(stat_line(5, ") )", 4, 0, 77).as_bytes()).expect("parse");
    assert_eq!((s.comm.as_str(), s.ppid, s.start_ticks), (") )", 4, 77));
    assert!(parse_stat(b"5 (x) S 4").is_none());
}

#[test]
fn fork_exec_chain_gives_ancestors_nearest_first() {
    let mut t = table(100);
    let init = proc(&t, 1, 1, "/sbin/init", UNSET);
    t.on_exec(init.clone());
    let sh = proc(&t, 100, 5, "/bin/sh", UNSET);
    spawn(&mut t, &init, &sh);
    let mut ls = proc(&t, 200, 9, "/bin/ls", UNSET);
    t.on_fork(ls.clone(), sh.pid, sh.start_boot_ns);
    ls.argv = vec!["ls".into(), "-l".into()];
    ls.uid = 42;
    t.on_exec(ls.clone());

    let e = t.get(&ls.guid).expect("ls");
    assert_eq!((e.process.ppid, e.process.uid), (100, 42));
    assert_eq!(e.process.parent_guid, sh.guid);
    assert_eq!(e.parent_guid.as_deref(), Some(sh.guid.as_str()));
    let anc = t.ancestors(&ls.guid);
    assert_eq!(pids(&anc), vec![100, 1]);
    assert_eq!(anc[0].guid, sh.guid);
    assert_eq!(anc[0].exe, "/bin/sh");
    assert_eq!(anc[1].argv, vec!["/sbin/init"]);
    assert!(t.ancestors(&init.guid).is_empty());
    assert!(t.ancestors("no-such-guid").is_empty());
    assert_eq!(t.get(&sh.guid).expect("sh").live_children(), 1);
}

#[test]
fn parent_seen_after_child_links_up() {
    let mut t = table(100);
    let p = proc(&t, 10, 1, "/bin/p", UNSET);
    let c = proc(&t, 11, 2, "/bin/c", UNSET);
    t.on_fork(c.clone(), p.pid, p.start_boot_ns);
    assert!(t.ancestors(&c.guid).is_empty());
    t.on_exec(p.clone());
    assert_eq!(pids(&t.ancestors(&c.guid)), vec![10]);
    t.on_exit(&p.guid, 50);
    assert!(t.get(&p.guid).is_some(), "kept for its child");
}

#[test]
fn stops_after_pid_1_limit_and_cycles() {
    let mut t = table(100);
    let swapper = proc(&t, 0, 0, "", UNSET);
    t.on_exec(swapper.clone());
    let init = proc(&t, 1, 1, "/sbin/init", UNSET);
    spawn(&mut t, &swapper, &init);
    let mut last = init;
    for i in 0..30 {
        let p = proc(&t, 10 + i, 2 + u64::from(i), "/bin/sh", UNSET);
        spawn(&mut t, &last, &p);
        last = p;
    }
    let anc = t.ancestors(&last.guid);
    assert_eq!(anc.len(), 16);
    assert_eq!(anc[0].pid, 38);
    let p5 = t.live_by_pid(5 + 10).expect("p5").process.guid.clone();
    assert_eq!(pids(&t.ancestors(&p5)), vec![14, 13, 12, 11, 10, 1]);

    let a = proc(&t, 500, 1, "/a", UNSET);
    let b = proc(&t, 501, 1, "/b", UNSET);
    t.on_fork(a.clone(), b.pid, b.start_boot_ns);
    t.on_fork(b.clone(), a.pid, a.start_boot_ns);
    assert_eq!(pids(&t.ancestors(&a.guid)), vec![501]);
    assert_eq!(pids(&t.ancestors(&b.guid)), vec![500]);
}

#[test]
fn session_rule_stops_at_the_service_outside_the_session() {
    let mut t = table(100);
    let init = proc(&t, 1, 1, "/sbin/init", UNSET);
    t.on_exec(init.clone());
    let sshd = proc(&t, 300, 2, "/usr/sbin/sshd", UNSET);
    spawn(&mut t, &init, &sshd);
    let priv_ = proc(&t, 400, 3, "/usr/lib/openssh/sshd-session", 5);
    spawn(&mut t, &sshd, &priv_);
    let bash = proc(&t, 410, 4, "/bin/bash", 5);
    spawn(&mut t, &priv_, &bash);
    let vim = proc(&t, 420, 5, "/usr/bin/vim", 5);
    spawn(&mut t, &bash, &vim);
    let anc = t.ancestors(&vim.guid);
    assert_eq!(pids(&anc), vec![410, 400, 300]);
    assert_eq!(anc[2].exe, "/usr/sbin/sshd");
    assert_eq!(anc[1].session_id, 5);
    // no session: up to init
    assert_eq!(pids(&t.ancestors(&sshd.guid)), vec![1]);
}

#[test]
fn pid_reuse_makes_a_new_entry_and_retires_the_old() {
    let mut t = table(100);
    let init = proc(&t, 1, 1, "/sbin/init", UNSET);
    t.on_exec(init.clone());
    let old = proc(&t, 50, 10, "/bin/old", UNSET);
    spawn(&mut t, &init, &old);
    let new = proc(&t, 50, 20, "/bin/new", UNSET);
    assert_ne!(old.guid, new.guid);
    spawn(&mut t, &init, &new); // the old one's exit was never seen
    assert_eq!(t.live_by_pid(50).expect("pid 50").process.exe, "/bin/new");
    assert!(t.get(&old.guid).is_none());
    assert_eq!(t.stats().retired, 1);
    assert_eq!(t.get(&init.guid).expect("init").live_children(), 1);
    // a late event about the old holder does not take the pid back
    t.on_exec(old.clone());
    assert_eq!(t.live_by_pid(50).expect("pid 50").process.guid, new.guid);
    assert!(t.get(&old.guid).is_none());
    assert_eq!(t.stats(), TableStats { live: 2, exited: 0, evicted: 0, retired: 2 });
}

#[test]
fn exited_parent_is_kept_while_a_child_lives_then_retired() {
    let mut t = table(100);
    let g = proc(&t, 1, 1, "/sbin/init", UNSET);
    t.on_exec(g.clone());
    let p = proc(&t, 20, 2, "/bin/p", UNSET);
    spawn(&mut t, &g, &p);
    let c = proc(&t, 21, 3, "/bin/c", UNSET);
    spawn(&mut t, &p, &c);
    let d = proc(&t, 22, 4, "/bin/d", UNSET);
    spawn(&mut t, &c, &d);
    t.on_exit(&p.guid, 100);
    t.on_exit(&c.guid, 101);
    assert!(t.live_by_pid(20).is_none());
    assert_eq!(t.get(&p.guid).expect("kept").exited_boot_ns, Some(100));
    assert_eq!(pids(&t.ancestors(&d.guid)), vec![21, 20, 1]);
    assert_eq!(t.stats(), TableStats { live: 2, exited: 2, evicted: 0, retired: 0 });
    t.on_exit(&d.guid, 102);
    assert!(t.get(&p.guid).is_none() && t.get(&c.guid).is_none());
    assert!(t.get(&d.guid).is_none());
    assert_eq!(t.stats(), TableStats { live: 1, exited: 0, evicted: 0, retired: 3 });
    assert_eq!(t.get(&g.guid).expect("init").live_children(), 0);
    t.on_exit(&d.guid, 103); // twice: no effect
    assert_eq!(t.stats().retired, 3);
}

#[test]
fn eviction_keeps_the_cap_exited_first() {
    let mut t = table(10);
    let init = proc(&t, 1, 1, "/sbin/init", UNSET);
    t.on_exec(init.clone());
    let mut kids = Vec::new();
    for i in 0..3 {
        let p = proc(&t, 100 + i, 2, "/bin/p", UNSET);
        spawn(&mut t, &init, &p);
        let c = proc(&t, 200 + i, 3, "/bin/c", UNSET);
        spawn(&mut t, &p, &c);
        kids.push((p, c));
    }
    for (p, _) in kids.iter().rev() {
        t.on_exit(&p.guid, 9); // exit order: 102, 101, 100
    }
    assert_eq!(t.stats().exited, 3);
    for i in 0..4 {
        t.on_exec(proc(&t, 300 + i, 4, "/bin/x", UNSET));
    }
    assert_eq!(t.len(), 10);
    assert_eq!(t.stats().evicted, 1);
    assert!(t.get(&kids[2].0.guid).is_none(), "first exited, first evicted");
    assert!(t.get(&kids[1].0.guid).is_some());
    for i in 0..20 {
        t.on_exec(proc(&t, 400 + i, 5, "/bin/y", UNSET));
    }
    assert_eq!(t.len(), 10);
    let s = t.stats();
    assert_eq!((s.live, s.exited, s.evicted), (10, 0, 21));
    assert!(t.live_by_pid(1).is_none(), "oldest live evicted");
    assert!(t.live_by_pid(419).is_some());
    assert!(t.orphans.values().sum::<u32>() <= 10);
}

#[test]
fn an_exited_process_stays_for_the_grace_period_for_its_queued_events() {
    let limits = TableLimits { exit_grace_ns: 10_000_000_000, ..TableLimits::default() };
    let mut t = ProcessTable::new(limits, GuidMaker::new("test-boot"));
    let init = proc(&t, 1, 1, "/sbin/init", UNSET);
    t.on_exec(init.clone());
    let sh = proc(&t, 30, 2, "/bin/sh", UNSET);
    spawn(&mut t, &init, &sh);
    t.on_exit(&sh.guid, 100_000_000_000);
    // Its last file events arrive after the exit: the entry and ancestry are still there.
    assert_eq!(t.get(&sh.guid).expect("kept in grace").process.exe, "/bin/sh");
    assert_eq!(pids(&t.ancestors(&sh.guid)), vec![1]);
    assert!(t.live_by_pid(30).is_none(), "no longer live");
    t.advance(105_000_000_000);
    assert!(t.get(&sh.guid).is_some());
    t.advance(110_000_000_001);
    assert!(t.get(&sh.guid).is_none(), "retired after the grace period");
    assert_eq!(t.stats().retired, 1);
}

#[test]
fn an_exited_process_goes_once_the_bulk_queues_are_past_its_exit() {
    let limits = TableLimits {
        exit_grace_ns: 10_000_000_000,
        exit_settle_ns: 1_000_000_000,
        ..TableLimits::default()
    };
    let mut t = ProcessTable::new(limits, GuidMaker::new("test-boot"));
    let init = proc(&t, 1, 1, "/sbin/init", UNSET);
    t.on_exec(init.clone());
    let sh = proc(&t, 30, 2, "/bin/sh", UNSET);
    let tar = proc(&t, 31, 3, "/bin/tar", UNSET);
    spawn(&mut t, &init, &sh);
    spawn(&mut t, &init, &tar);
    t.on_exit(&sh.guid, 100_000_000_000);
    t.on_exit(&tar.guid, 100_500_000_000);
    // Lineage runs ahead of the bulk queues: event time alone is short of the grace, and the
    // bulk mark has not passed the exits by the settle margin.
    t.advance(101_000_000_000);
    t.settle(100_900_000_000);
    assert!(t.get(&sh.guid).is_some() && t.get(&tar.guid).is_some(), "bulk events may still name them");
    t.settle(101_000_000_000);
    assert!(t.get(&sh.guid).is_none(), "its events up to a second past the exit are enriched");
    assert!(t.get(&tar.guid).is_some(), "exited later: still in its margin");
    // A mark that goes back changes nothing; the grace still retires without the mark.
    t.settle(0);
    assert!(t.get(&tar.guid).is_some());
    t.advance(110_500_000_000);
    assert!(t.get(&tar.guid).is_none());
    assert_eq!(t.stats().retired, 2);
}

#[test]
fn shared_ancestry_is_reused_until_a_lineage_changes() {
    let mut t = table(100);
    let init = proc(&t, 1, 1, "/sbin/init", UNSET);
    t.on_exec(init.clone());
    let sh = proc(&t, 100, 5, "/bin/sh", UNSET);
    spawn(&mut t, &init, &sh);
    let tar = proc(&t, 200, 9, "/bin/tar", UNSET);
    spawn(&mut t, &sh, &tar);
    let first = t.ancestry(&tar.guid);
    assert_eq!(pids(&first.to_vec()), vec![100, 1]);
    assert!(Arc::ptr_eq(&first, &t.ancestry(&tar.guid)), "nothing changed: the same ancestry");
    // A sibling forked and exited: the ancestry of tar is still the same one.
    let ls = proc(&t, 300, 10, "/bin/ls", UNSET);
    t.on_fork(ls.clone(), sh.pid, sh.start_boot_ns);
    assert!(Arc::ptr_eq(&first, &t.ancestry(&tar.guid)));
    // The shell runs another program: every record after it names the new one.
    let mut python = sh.clone();
    python.exe = "/usr/bin/python3".into();
    python.argv = vec!["python3".into(), "x.py".into()];
    t.on_exec(python);
    let after = t.ancestry(&tar.guid);
    assert_eq!(after.to_vec()[0].exe, "/usr/bin/python3");
    assert_eq!(after.to_vec()[0].argv, vec!["python3", "x.py"]);
    assert_eq!(after.to_vec(), t.ancestors(&tar.guid).as_slice());
    assert!(t.ancestry("no-such-guid").to_vec().is_empty());
}

/// Any sequence of forks, execs and exits: the shared ancestry of every process is always what
/// walking the table gives.
#[test]
fn shared_ancestry_always_equals_the_walk() {
    for max_ancestors in [16, 3] {
        random_lineage_ops(max_ancestors);
    }
}

fn random_lineage_ops(max_ancestors: usize) {
    // Command lines above the parent cut to 24 bytes: the shared and the walked ancestries
    // must cut the same ones the same way.
    let limits = TableLimits {
        max_entries: 40,
        exit_grace_ns: 0,
        max_ancestors,
        ancestor_argv_bytes: 24,
        ..TableLimits::default()
    };
    let mut t = ProcessTable::new(limits, GuidMaker::new("test-boot"));
    let init = proc(&t, 1, 1, "/sbin/init", UNSET);
    t.on_exec(init.clone());
    let mut procs = vec![init];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(seed >> 33).expect("31 bits") % n
    };
    let mut cut = 0;
    for step in 0..3000u64 {
        let pick = procs[next(procs.len())].clone();
        match next(6) {
            0 | 1 => {
                // fork (sometimes with the parent not yet known: an orphan)
                let pid = 1000 + u32::try_from(step).expect("small");
                let child = proc(&t, pid, 100 + step, "/bin/child", UNSET);
                t.on_fork(child.clone(), pick.pid, pick.start_boot_ns);
                procs.push(child);
            }
            2 => {
                // an exec, sometimes into another login session (its own ancestry then stops
                // elsewhere), of a leaf or of a process with descendants
                let mut p = pick;
                p.exe = format!("/bin/prog{step}");
                p.argv = vec![p.exe.clone(), "--opt".repeat(next(8))];
                p.session_id = match next(3) {
                    0 => UNSET,
                    n => u32::try_from(n).expect("small"),
                };
                t.on_exec(p.clone());
                if let Some(q) = procs.iter_mut().find(|q| q.guid == p.guid) {
                    *q = p;
                }
            }
            3 if pick.pid != 1 => {
                t.on_exit(&pick.guid, step * 10);
                procs.retain(|p| p.guid != pick.guid);
            }
            4 => t.advance(step * 10),
            _ => {
                let _ = t.ancestry(&pick.guid);
            }
        }
        for p in &procs {
            let walked = t.ancestors(&p.guid);
            assert_eq!(
                t.ancestry(&p.guid).to_vec(),
                walked,
                "max {max_ancestors}, step {step}, pid {}",
                p.pid
            );
            if let Some(parent) = walked.first() {
                let whole = procs.iter().find(|q| q.guid == parent.guid).map(|q| &q.argv);
                assert!(whole.is_none_or(|w| *w == parent.argv), "the parent's command line is whole");
            }
            for a in walked.iter().skip(1) {
                let len: usize = a.argv.iter().map(String::len).sum();
                assert!(len <= 24, "{a:?}");
                cut += usize::from(a.argv_truncated);
            }
        }
    }
    assert!(cut > 0, "the test cut some command lines");
}

/// The ancestries kept for reuse stay within their byte budget, and are given back when their
/// processes go; past the budget every record still gets the right ancestry.
#[test]
fn shared_ancestries_stay_within_their_budget() {
    let limits = TableLimits { exit_grace_ns: 0, ancestry_cache_bytes: 1000, ..TableLimits::default() };
    let mut t = ProcessTable::new(limits, GuidMaker::new("test-boot"));
    let init = proc(&t, 1, 1, "/sbin/init", UNSET);
    t.on_exec(init.clone());
    let mut svc = proc(&t, 10, 2, "/opt/pacs/bin/server", UNSET);
    svc.argv = vec!["x".repeat(300)];
    spawn(&mut t, &init, &svc);
    let mut kids = Vec::new();
    for i in 0..20 {
        let k = proc(&t, 100 + i, 10 + u64::from(i), "/bin/worker", UNSET);
        spawn(&mut t, &svc, &k);
        kids.push(k);
    }
    for k in &kids {
        let a = t.ancestry(&k.guid);
        assert_eq!(a.to_vec(), t.ancestors(&k.guid).as_slice());
        assert!(t.cached_ancestry_bytes() <= 1000, "{}", t.cached_ancestry_bytes());
    }
    assert!(t.cached_ancestry_bytes() > 0);
    for k in &kids {
        t.on_exit(&k.guid, 1_000);
    }
    t.advance(2_000);
    assert!(kids.iter().all(|k| t.get(&k.guid).is_none()));
    assert_eq!(t.cached_ancestry_bytes(), 0, "every kept ancestry was given back");
}

/// An exec does not change who a process's ancestors are: its shared ancestry is kept (a
/// fork+exec storm builds one per process, not two); a new login session, where the walk stops,
/// rebuilds it.
#[test]
fn an_exec_keeps_the_process_own_ancestry() {
    let mut t = ProcessTable::new(TableLimits::default(), GuidMaker::new("test-boot"));
    let init = proc(&t, 1, 1, "/sbin/init", UNSET);
    t.on_exec(init.clone());
    let sh = proc(&t, 10, 2, "/bin/sh", UNSET);
    spawn(&mut t, &init, &sh);
    let child = proc(&t, 11, 3, "/bin/sh", UNSET);
    t.on_fork(child.clone(), sh.pid, sh.start_boot_ns);
    let before = t.ancestry(&child.guid);
    let mut execd = child.clone();
    execd.exe = "/usr/bin/true".into();
    t.on_exec(execd.clone());
    assert!(Arc::ptr_eq(&before, &t.ancestry(&child.guid)), "kept across the exec");
    let mut login = execd;
    login.session_id = 5;
    t.on_exec(login);
    let after = t.ancestry(&child.guid);
    assert!(!Arc::ptr_eq(&before, &after), "rebuilt for the new session");
    assert_eq!(after.to_vec(), t.ancestors(&child.guid));
}
