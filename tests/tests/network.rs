//! Network telemetry: TCP v4/v6 connect (success, refused), accept with the peer address,
//! bind/listen ports, UDP first-flow dedup, DNS queries decoded — for this test's own sockets.

use std::{
    net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

use sensor::{enrich::dns::build_query, pipeline::Options};
use sensor_proto::{
    AuditRecord,
    v1::{DnsEvent, NetworkEvent, audit_record::Event},
};
use sensor_tests::TestSensor;

/// Generous: a QEMU guest emulated in software, with a second guest on the same two CPUs, can
/// take seconds to deliver a record. A passing wait returns as soon as its record arrives.
const WAIT: Duration = Duration::from_secs(30);
/// Socket timeouts of the local DNS exchange, for the same reason.
const SOCKET_WAIT: Duration = Duration::from_secs(20);
/// A kernel that skips a program run reports it (see [`TestSensor::retry_on_skip`]): then, and
/// only then, a step is done again.
const TRIES: usize = 3;
// The DNS test's responder outlives its tries (see `dns_queries_are_decoded`).
const _: () = assert!(TRIES <= 3);

fn start() -> TestSensor {
    TestSensor::start(Options { ignore_self: false, ..Options::default() })
}

fn net(r: &AuditRecord) -> Option<&NetworkEvent> {
    match &r.event {
        Some(Event::Network(n)) if r.process.as_ref().is_some_and(|p| p.pid == std::process::id()) => Some(n),
        _ => None,
    }
}

fn wait_net(s: &mut TestSensor, pred: impl Fn(&NetworkEvent) -> bool) -> NetworkEvent {
    try_net(s, pred).expect("network record")
}

/// Does `act` and waits for a network record of this process matching `pred`; does it again
/// only when the kernel reported skipping a network program meanwhile.
fn act_net(s: &mut TestSensor, act: impl FnMut(), pred: impl Fn(&NetworkEvent) -> bool) -> NetworkEvent {
    let r = s.act_until(WAIT, TRIES, "network", act, |r| net(r).is_some_and(&pred)).expect("network record");
    net(&r).cloned().expect("network event")
}

fn try_net(s: &mut TestSensor, pred: impl Fn(&NetworkEvent) -> bool) -> Option<NetworkEvent> {
    let r = s.wait_for(WAIT, |r| net(r).is_some_and(&pred))?;
    net(&r).cloned()
}

/// The bind, listen, connect and accept records of one loopback round trip, and the server's and
/// the client's addresses.
struct RoundTrip {
    records: [NetworkEvent; 4],
    server: SocketAddr,
    client: SocketAddr,
}

fn round_trip_records(s: &mut TestSensor, loopback: &str) -> Option<RoundTrip> {
    let listener = TcpListener::bind(format!("{loopback}:0")).expect("bind");
    let server = listener.local_addr().expect("addr");
    let client = TcpStream::connect(server).expect("connect");
    let client_addr = client.local_addr().expect("client addr");
    let (_conn, peer) = listener.accept().expect("accept");
    assert_eq!(peer, client_addr);
    let port = u32::from(server.port());
    let b = try_net(s, |n| n.op == "bind" && n.local_port == port)?;
    let l = try_net(s, |n| n.op == "listen" && n.local_port == port)?;
    let c = try_net(s, |n| n.op == "connect" && n.remote_port == port)?;
    let a = try_net(s, |n| n.op == "accept" && n.local_port == port)?;
    Some(RoundTrip { records: [b, l, c, a], server, client: client_addr })
}

fn tcp_round_trip(s: &mut TestSensor, loopback: &str, family: &str) {
    let Some(RoundTrip { records: [b, l, c, a], server, client }) =
        s.retry_on_skip(TRIES, "network", |s| round_trip_records(s, loopback))
    else {
        panic!("a network record of the {family} round trip did not come");
    };
    let ip = server.ip().to_string();
    assert_eq!(
        (b.family.as_str(), b.protocol.as_str(), b.local_address.as_str(), b.result),
        (family, "tcp", ip.as_str(), 0)
    );
    assert_eq!(l.result, 0);
    assert_eq!((c.remote_address.as_str(), c.result, c.family.as_str()), (ip.as_str(), 0, family));
    assert_eq!(c.local_port, u32::from(client.port()));
    assert_eq!(a.remote_address, client.ip().to_string(), "accept carries the peer address");
    assert_eq!(a.remote_port, u32::from(client.port()));
    assert!(a.result >= 0, "accepted fd");
}

#[test]
fn tcp_v4_and_v6_connect_accept_bind_listen() {
    let mut s = start();
    tcp_round_trip(&mut s, "127.0.0.1", "ipv4");
    tcp_round_trip(&mut s, "[::1]", "ipv6");
    s.stop();
}

#[test]
fn refused_connects_carry_their_errno() {
    let mut s = start();
    for loopback in ["127.0.0.1", "[::1]"] {
        // A port nobody listens on: bind, note it, close.
        let port = TcpListener::bind(format!("{loopback}:0")).expect("bind").local_addr().expect("a").port();
        let target: SocketAddr = format!("{loopback}:{port}").parse().expect("addr");
        let refused = || assert!(TcpStream::connect(target).is_err());
        // The address is part of the match: the kernel may hand the ::1 round the port the
        // 127.0.0.1 round had (records already seen are searched first).
        let ip = target.ip().to_string();
        let is_refused = |n: &NetworkEvent| {
            n.op == "connect" && n.remote_port == u32::from(port) && n.remote_address == ip && n.result < 0
        };
        let c = act_net(&mut s, refused, is_refused);
        assert_eq!((c.result, c.error.as_str()), (-111, "ECONNREFUSED"));
    }
    // An IPv6 socket connecting to an IPv4-mapped address is shown as IPv4 and flagged.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("a").port();
    let mapped = SocketAddr::new(std::net::IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x7f00, 1)), port);
    let mut conns = Vec::new();
    let connect = || conns.push(TcpStream::connect(mapped).expect("connect v4-mapped"));
    let connected = |n: &NetworkEvent| n.op == "connect" && n.remote_port == u32::from(port) && n.result == 0;
    let c = act_net(&mut s, connect, connected);
    assert!(c.v4_mapped);
    assert_eq!((c.remote_address.as_str(), c.family.as_str()), ("127.0.0.1", "ipv6"));
    s.stop();
}

#[test]
fn udp_flow_is_reported_once() {
    let mut s = start();
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
    let port = sink.local_addr().expect("a").port();
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    for _ in 0..100 {
        sender.send_to(b"telemetry", ("127.0.0.1", port)).expect("send");
    }
    // A marker after the burst: once it is seen, the burst has been processed.
    let marked = s.retry_on_skip(TRIES, "network", |s| {
        let marker = TcpListener::bind("127.0.0.1:0").expect("marker");
        let mport = u32::from(marker.local_addr().expect("a").port());
        try_net(s, |n| n.op == "listen" && n.local_port == mport)
    });
    assert!(marked.is_some(), "the marker's listen record");
    let sends: Vec<&NetworkEvent> = s
        .seen
        .iter()
        .filter_map(net)
        .filter(|n| n.op == "send" && n.remote_port == u32::from(port))
        .collect();
    assert_eq!(sends.len(), 1, "100 datagrams of one flow, one record");
    assert_eq!((sends[0].protocol.as_str(), sends[0].remote_address.as_str()), ("udp", "127.0.0.1"));
    s.stop();
}

/// What a failing DNS test saw: this process's network and DNS events, and every loss record.
fn own_udp(seen: &[AuditRecord]) -> Vec<String> {
    seen.iter()
        .filter_map(|r| match &r.event {
            Some(Event::Dns(d)) if net_owner(r) => Some(format!("seq {} dns {d:?}", r.seq)),
            Some(Event::Network(n)) if net_owner(r) => {
                Some(format!("seq {} {} {} {}:{}", r.seq, n.op, n.protocol, n.remote_address, n.remote_port))
            }
            Some(Event::Loss(l)) => Some(format!("seq {} loss {l:?}", r.seq)),
            _ => None,
        })
        .collect()
}

fn net_owner(r: &AuditRecord) -> bool {
    r.process.as_ref().is_some_and(|p| p.pid == std::process::id())
}

#[test]
fn dns_queries_are_decoded() {
    let mut s = start();
    let server = UdpSocket::bind("127.0.0.77:53").expect("bind a local DNS responder on port 53 (root)");
    server.set_read_timeout(Some(SOCKET_WAIT)).expect("timeout");
    // Answers every datagram (a query sent again included) until told to stop, or until the
    // test has had all its tries. A quiet spell is no reason to stop: the test waits up to
    // `WAIT` for a record before it asks again, longer than a read times out.
    let responder = std::thread::spawn(move || {
        // Two acts of up to `TRIES` waits each, and a margin.
        let deadline = std::time::Instant::now() + WAIT * 8;
        let mut buf = [0u8; 512];
        loop {
            let (n, from) = match server.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
                        && std::time::Instant::now() < deadline =>
                {
                    continue;
                }
                Err(_) => break,
            };
            if &buf[..n] == b"stop" {
                break;
            }
            let mut reply = buf[..n].to_vec();
            if reply.len() > 2 {
                reply[2] |= 0x80; // QR: a response (no answers)
            }
            let _ = server.send_to(&reply, from);
        }
    });
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client.set_read_timeout(Some(SOCKET_WAIT)).expect("timeout");
    let dns = |r: &AuditRecord| match &r.event {
        Some(Event::Dns(d)) if net_owner(r) => Some(d.clone()),
        _ => None,
    };
    let query = build_query(0x4242, "patient-portal.example.org", 1);
    let ask = || {
        client.send_to(&query, "127.0.0.77:53").expect("query");
        let mut buf = [0u8; 512];
        let _ = client.recv_from(&mut buf).expect("answer");
    };
    // Matched by server too: this process's other tests send DNS-shaped datagrams of their own.
    let ours = |d: &DnsEvent| d.server_address == "127.0.0.77";
    let Some(rec) =
        s.act_until(WAIT, TRIES, "network", ask, |r| dns(r).is_some_and(|d| ours(&d) && !d.malformed))
    else {
        panic!("no dns record of the query; this process's network and dns records: {:#?}", own_udp(&s.seen));
    };
    let d: DnsEvent = dns(&rec).expect("dns");
    assert_eq!((d.name.as_str(), d.r#type.as_str(), d.id), ("patient-portal.example.org", "A", 0x4242));
    assert_eq!((d.server_address.as_str(), d.server_port), ("127.0.0.77", 53));
    let garbage = || {
        client.send_to(b"\x01\x02garbage", "127.0.0.77:53").expect("malformed");
    };
    let Some(bad) =
        s.act_until(WAIT, TRIES, "network", garbage, |r| dns(r).is_some_and(|d| ours(&d) && d.malformed))
    else {
        panic!("no dns record of the malformed datagram; this process's records: {:#?}", own_udp(&s.seen));
    };
    assert!(!dns(&bad).expect("dns").error.is_empty());
    client.send_to(b"stop", "127.0.0.77:53").expect("stop the responder");
    responder.join().expect("responder");
    s.stop();
}

#[test]
fn udp_sendmsg_flow_is_reported_with_its_address() {
    use std::{io::IoSlice, os::fd::AsRawFd as _};

    use nix::sys::socket::{MsgFlags, SockaddrIn, sendmsg};
    let mut s = start();
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
    let port = sink.local_addr().expect("a").port();
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let to = SockaddrIn::new(127, 0, 0, 1, port);
    for _ in 0..10 {
        sendmsg(sender.as_raw_fd(), &[IoSlice::new(b"hl7")], &[], MsgFlags::empty(), Some(&to))
            .expect("sendmsg");
    }
    let n = wait_net(&mut s, |n| n.op == "send" && n.remote_port == u32::from(port));
    assert_eq!(
        (n.syscall.as_str(), n.remote_address.as_str(), n.protocol.as_str()),
        ("sendmsg", "127.0.0.1", "udp")
    );
    s.stop();
}

/// The kernel side of DNS on any port: the first datagram of every UDP flow arrives with its
/// payload (whole, or cut at 512 bytes and flagged), later datagrams of the flow do not arrive,
/// and datagrams to port 53 all arrive. Read straight from the network ring buffer, before any
/// userspace interpretation of the payload.
#[test]
fn first_datagram_of_every_udp_flow_carries_its_payload() {
    use sensor::{
        decode::{KernelEvent, decode},
        loader::{self, LoadConfig},
    };
    loader::preflight().expect("root");
    let mut loaded = loader::load(LoadConfig {
        btf: None,
        args_max: 4096,
        self_tgid: 0,
        report_threads: false,
        // The syscall tracepoints here: the other tests run what this kernel gets by default
        // (the raw dispatcher on the 6.18 host; the fentry path where the kernel allows it;
        // the tracepoints where the dispatcher runs preemptibly).
        syscall_dispatcher: sensor::options::SyscallDispatcher::Off,
        syscall_fentry: sensor::options::SyscallFentry::Off,
        include_mode: false,
        proc_ring_bytes: None,
        file_ring_bytes: None,
        net_ring_bytes: None,
    })
    .expect("load");
    assert_eq!(loaded.hooks, loader::SyscallHooks::Tracepoints, "switched off");
    let (_attached, _links) =
        loader::attach(&mut loaded.ebpf, loaded.hooks, loaded.fentry.take()).expect("attach");

    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
    let port = sink.local_addr().expect("a").port();
    let big_sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
    let big_port = big_sink.local_addr().expect("a").port();
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let query = build_query(0x7777, "records.ward-3.example.org", 16);
    sender.send_to(&query, ("127.0.0.1", port)).expect("send");
    sender.send_to(b"second datagram of the flow", ("127.0.0.1", port)).expect("send");
    let big = vec![0x5a_u8; 700];
    sender.send_to(&big, ("127.0.0.1", big_port)).expect("send big");
    for _ in 0..2 {
        // Port 53: every datagram (nothing listens there; the send still succeeds).
        sender.send_to(&query, "127.0.0.1:53").expect("send to 53");
    }

    let me = std::process::id();
    let mut seen: Vec<(u16, Vec<u8>, bool)> = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline && seen.len() < 4 {
        while let Some(item) = loaded.maps.net_events.next() {
            if let Ok(KernelEvent::Net(n)) = decode(&item)
                && n.header.tgid == me
                && [port, big_port, 53].contains(&n.remote_port)
            {
                seen.push((n.remote_port, n.payload.clone(), n.payload_truncated));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let of = |p: u16| seen.iter().filter(|s| s.0 == p).collect::<Vec<_>>();
    assert_eq!(of(port), vec![&(port, query.clone(), false)], "the flow's first datagram only, whole");
    let b = of(big_port);
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].1.len(), b[0].2), (512, true), "cut at 512 bytes and flagged");
    assert_eq!(of(53).len(), 2, "every datagram to port 53");
    assert!(of(53).iter().all(|s| s.1 == query));
}

/// A destination in memory the sender has not touched yet (a program's static data before its
/// first use) has no page when the call starts, and a probe read cannot fault one in: the
/// address is read again when the call returns, once the kernel has copied it.
#[test]
fn a_destination_in_an_untouched_page_is_still_reported() {
    let mut s = start();
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
    let port = sink.local_addr().expect("a").port();
    // struct sockaddr_in: family, port (network order), address, zero padding.
    let mut sa = [0u8; 16];
    sa[..2].copy_from_slice(&u16::try_from(libc::AF_INET).expect("family").to_ne_bytes());
    sa[2..4].copy_from_slice(&port.to_be_bytes());
    sa[4..8].copy_from_slice(&[127, 0, 0, 1]);
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let n = act_net(
        &mut s,
        || {
            let to = sensor_tests::untouched_page(&sa);
            let fd = std::os::fd::AsRawFd::as_raw_fd(&sender);
            // SAFETY: sendto from a live buffer to a 16-byte sockaddr_in in a live mapping.
            let sent = unsafe { libc::sendto(fd, b"x".as_ptr().cast(), 1, 0, to.cast(), 16) };
            assert_eq!(sent, 1, "sendto: {}", std::io::Error::last_os_error());
        },
        |n| n.op == "send" && n.remote_port == u32::from(port),
    );
    assert_eq!((n.protocol.as_str(), n.remote_address.as_str()), ("udp", "127.0.0.1"));
    s.stop();
}
