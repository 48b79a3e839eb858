//! `tcp_mgm`: TCP connection profiles from the `tcp_mgm` table (db_text here), each matching
//! connections by protocol, remote network/port and local listener/port. Real sockets on
//! loopback addresses (127.0.0.x): a profile's `con_lifetime` closes an idle connection from
//! its remote address while the global lifetime keeps another one; its `msg_read_timeout`
//! closes a connection that stalls mid-message; `no_new_conn` makes tm's relay to that peer
//! fail with 477 while another peer gets its connection; `tcp_mgm:reload` after the table
//! changed changes that, a table that no longer reads fails the reload and keeps the profiles,
//! and a row that cannot be used is skipped with the reason logged.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use common::Rsips;

const HEADER: &str = "id(int,auto) proto(string) remote_addr(string,null) remote_port(int) \
    local_addr(string,null) local_port(int) priority(int) attrs(string,null) \
    connect_timeout(int) con_lifetime(int) msg_read_timeout(int) send_threshold(int) \
    no_new_conn(int) alias_mode(int) keepalive(int) keepcount(int) keepidle(int) \
    keepinterval(int)";

/// A db_text row: OpenSIPS' column defaults with `set` (column, value) applied.
fn row(id: u32, set: &[(&str, &str)]) -> String {
    let mut cols: Vec<(&str, String)> = [
        ("id", id.to_string()),
        ("proto", "any".into()),
        ("remote_addr", String::new()),
        ("remote_port", "0".into()),
        ("local_addr", String::new()),
        ("local_port", "0".into()),
        ("priority", "0".into()),
        ("attrs", String::new()),
        ("connect_timeout", "100".into()),
        ("con_lifetime", "120".into()),
        ("msg_read_timeout", "4".into()),
        ("send_threshold", "0".into()),
        ("no_new_conn", "0".into()),
        ("alias_mode", "0".into()),
        ("keepalive", "1".into()),
        ("keepcount", "9".into()),
        ("keepidle", "7200".into()),
        ("keepinterval", "75".into()),
    ]
    .into_iter()
    .collect();
    for (name, value) in set {
        let c = cols.iter_mut().find(|(n, _)| n == name).unwrap();
        c.1 = (*value).to_owned();
    }
    cols.into_iter()
        .map(|(_, v)| v)
        .collect::<Vec<_>>()
        .join(":")
}

/// The `tcp_mgm` table (and its version) in `dir/db`.
fn write_table(dir: &Path, rows: &[String]) {
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(
        db.join("version"),
        "table_name(str) table_version(int)\ntcp_mgm:2\n",
    )
    .unwrap();
    let mut text = format!("{HEADER}\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(db.join("tcp_mgm"), text).unwrap();
}

/// Requests for `relay-<port>` (`port` one of `relays`) go to 127.0.0.1:<port> over TCP
/// through tm; any other gets a 200.
fn config(dir: &Path, port: u16, relays: &[u16]) -> String {
    let relays: String = relays
        .iter()
        .map(|p| {
            format!(
                "    if ($rU == \"relay-{p}\") {{ $du = \"sip:127.0.0.1:{p};transport=tcp\"; t_relay(); exit; }}\n"
            )
        })
        .collect();
    format!(
        r#"
log_level=3
stderror_enabled=yes
tcp_connection_lifetime=60
tcp_max_msg_time=30
socket=udp:127.0.0.1:{port}
socket=tcp:127.0.0.1:{port}
loadmodule "proto_udp.so"
loadmodule "proto_tcp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "db_text.so"
modparam("db_text", "db_mode", 1)
loadmodule "tcp_mgm.so"
modparam("tcp_mgm", "db_url", "text://{db}")
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "{fifo}")
route {{
{relays}    sl_send_reply(200, "OK");
}}
"#,
        db = dir.join("db").display(),
        fifo = Rsips::fifo(dir),
    )
}

/// An OPTIONS with a Call-ID and branch of its own (tm would take a repeat for a
/// retransmission).
fn options(user: &str, proto: &str, via: SocketAddr) -> String {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = format!(
        "{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    format!(
        "OPTIONS sip:{user}@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/{proto} {via};branch=z9hG4bK-{user}-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:t@127.0.0.1>;tag=f\r\n\
         To: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: tcpmgm-{user}-{n}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// A TCP connection to the server from `from` (a loopback address, ephemeral port).
fn connect_from(from: &str, port: u16) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    sock.bind(&local.into()).unwrap();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    sock.connect_timeout(&to.into(), Duration::from_secs(2))
        .unwrap();
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// Reads until a complete header block arrives (5 s at most).
fn read_reply(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether the server closed `s` within `wait` (EOF or reset); `false` when it stays open.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn profiles_set_lifetime_and_read_timeout_per_remote_address() {
    let port = common::free_port();
    let dir = common::test_dir("tcpmgm", "lifetime");
    write_table(
        &dir,
        &[
            // 127.0.0.2 at a worse (higher) priority than row 4: not used.
            row(
                1,
                &[
                    ("remote_addr", "127.0.0.2"),
                    ("priority", "5"),
                    ("con_lifetime", "30"),
                ],
            ),
            // 127.0.0.2 and .3, less specific than rows 3 and 4 at the same priority.
            row(
                2,
                &[
                    ("remote_addr", "127.0.0.2/31"),
                    ("con_lifetime", "30"),
                    ("msg_read_timeout", "30"),
                ],
            ),
            // 127.0.0.3: a message must be complete within 1 s.
            row(
                3,
                &[("remote_addr", "127.0.0.3"), ("msg_read_timeout", "1")],
            ),
            // 127.0.0.2: idle connections last 1 s.
            row(4, &[("remote_addr", "127.0.0.2/32"), ("con_lifetime", "1")]),
        ],
    );
    let server = Rsips::start(&dir, &config(&dir, port, &[]));
    assert!(
        server.log().contains("4 records found in tcp_mgm table"),
        "{}",
        server.log()
    );

    // Every connection first shows it is served.
    let mut short = connect_from("127.0.0.2", port);
    let mut plain = connect_from("127.0.0.1", port);
    let mut stall = connect_from("127.0.0.3", port);
    let mut stall_plain = connect_from("127.0.0.1", port);
    for s in [&mut short, &mut plain, &mut stall, &mut stall_plain] {
        let via = s.local_addr().unwrap();
        s.write_all(options("ping", "TCP", via).as_bytes()).unwrap();
        let reply = read_reply(s);
        assert!(
            reply.starts_with("SIP/2.0 200"),
            "{reply}\n{}",
            server.log()
        );
    }
    // Half a message each on the two stalling connections.
    for s in [&mut stall, &mut stall_plain] {
        let via = s.local_addr().unwrap();
        let half = options("half", "TCP", via);
        s.write_all(&half.as_bytes()[..40]).unwrap();
    }
    let started = Instant::now();
    assert!(
        closed_within(&mut short, Duration::from_secs(4)),
        "the 1 s profile kept an idle connection open\n{}",
        server.log()
    );
    assert!(
        closed_within(&mut stall, Duration::from_secs(4)),
        "the stalled message outlived msg_read_timeout=1\n{}",
        server.log()
    );
    // Both went well before the globals (60 s, 30 s) would close anything; the others stay.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!closed_within(&mut plain, Duration::from_millis(500)));
    assert!(!closed_within(&mut stall_plain, Duration::from_millis(500)));
    let log = server.wait_log("message not complete within tcp_max_msg_time (1s)");
    assert!(
        log.contains("message not complete within tcp_max_msg_time (1s)"),
        "{log}"
    );
    // The default-profile connection still works.
    let via = plain.local_addr().unwrap();
    plain
        .write_all(options("again", "TCP", via).as_bytes())
        .unwrap();
    assert!(read_reply(&mut plain).starts_with("SIP/2.0 200"));
}

/// A UDP client's request relayed over TCP: the reply it gets back (skipping 100).
fn relay(client: &UdpSocket, server: u16, to: u16) -> String {
    let via = client.local_addr().unwrap();
    let user = format!("relay-{to}");
    client
        .send_to(options(&user, "UDP", via).as_bytes(), ("127.0.0.1", server))
        .unwrap();
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, _) = client.recv_from(&mut buf).unwrap();
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !m.starts_with("SIP/2.0 100 ") {
            return m;
        }
    }
}

/// Whether `l` gets a connection within `wait`; it answers the request on it with 200.
fn answered(l: &TcpListener, wait: Duration) -> bool {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + wait;
    loop {
        match l.accept() {
            Ok((mut c, _)) => {
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let req = read_reply(&mut c);
                let reply = common::reply_to(&req, "200 OK", "uas", "");
                c.write_all(reply.as_bytes()).unwrap();
                return true;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

#[test]
fn no_new_conn_fails_relays_to_its_peer_and_a_reload_changes_it() {
    let port = common::free_port();
    let dir = common::test_dir("tcpmgm", "nonew");
    let blocked = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let (b, o) = (
        blocked.local_addr().unwrap().port(),
        open.local_addr().unwrap().port(),
    );
    let b_text = b.to_string();
    let nonew = row(
        1,
        &[
            ("proto", "tcp"),
            ("remote_addr", "127.0.0.1"),
            ("remote_port", &b_text),
            ("no_new_conn", "1"),
        ],
    );
    let malformed = [
        row(7, &[("proto", "udp")]),
        row(8, &[("remote_addr", "not-an-ip")]),
        row(9, &[("alias_mode", "7")]),
    ];
    let mut rows = vec![nonew];
    rows.extend(malformed.iter().cloned());
    write_table(&dir, &rows);
    let server = Rsips::start(&dir, &config(&dir, port, &[b, o]));
    let log = server.log();
    for want in [
        "failed to validate TCP path with id: 7: unacceptable TCP-based protocol: udp, skipping",
        "failed to validate TCP path with id: 8: remote address: `not-an-ip` is not an IP address, skipping",
        "failed to validate TCP path with id: 9: invalid alias_mode: 7, skipping",
        "1 records found in tcp_mgm table",
    ] {
        assert!(log.contains(want), "not logged: {want}\n{log}");
    }

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The profile's peer: no connection is opened, tm answers 477.
    let reply = relay(&client, port, b);
    assert!(
        reply.starts_with("SIP/2.0 477"),
        "{reply}\n{}",
        server.log()
    );
    assert!(!answered(&blocked, Duration::from_millis(300)));
    // Another port of the same host is not the profile's: it gets its connection.
    let reply_thread = {
        let client = client.try_clone().unwrap();
        std::thread::spawn(move || relay(&client, port, o))
    };
    assert!(answered(&open, Duration::from_secs(5)), "{}", server.log());
    let reply = reply_thread.join().unwrap();
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");

    // A table that no longer reads: the reload fails and the profile stays.
    std::fs::write(
        dir.join("db").join("tcp_mgm"),
        "not a db_text header\n1:2\n",
    )
    .unwrap();
    let err = server.mi_error(&["tcp_mgm:reload"]);
    assert!(err.contains("Failed to reload"), "{err}");
    assert!(relay(&client, port, b).starts_with("SIP/2.0 477"));

    // The row allows new connections now: after the reload (legacy name) the relay goes out.
    write_table(
        &dir,
        &[row(
            1,
            &[
                ("proto", "tcp"),
                ("remote_addr", "127.0.0.1"),
                ("remote_port", &b_text),
                ("no_new_conn", "0"),
            ],
        )],
    );
    assert_eq!(server.mi(&["tcp_reload"]), serde_json::json!("OK"));
    let reply_thread = {
        let client = client.try_clone().unwrap();
        std::thread::spawn(move || relay(&client, port, b))
    };
    assert!(
        answered(&blocked, Duration::from_secs(5)),
        "{}",
        server.log()
    );
    let reply = reply_thread.join().unwrap();
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
}

#[test]
fn a_table_of_another_version_stops_the_start() {
    let port = common::free_port();
    let dir = common::test_dir("tcpmgm", "version");
    write_table(&dir, &[row(1, &[])]);
    std::fs::write(
        dir.join("db").join("version"),
        "table_name(str) table_version(int)\ntcp_mgm:1\n",
    )
    .unwrap();
    std::fs::write(dir.join("rsips.cfg"), config(&dir, port, &[])).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rsips"))
        .args(["-F", "-f"])
        .arg(dir.join("rsips.cfg"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("tcp_mgm") && err.contains("version"), "{err}");
}

/// A profile's `alias_mode=2` aliases its connections without the Via asking and with
/// `tcp_accept_aliases` off: a request for the client's Via address goes down the connection
/// the client opened (nothing listens at that address).
#[test]
fn alias_mode_2_reuses_the_connection_without_tcp_accept_aliases() {
    let port = common::free_port();
    let unreachable = common::free_port();
    let dir = common::test_dir("tcpmgm", "alias");
    write_table(
        &dir,
        &[row(1, &[("remote_addr", "127.0.0.5"), ("alias_mode", "2")])],
    );
    let cfg = config(&dir, port, &[]).replace(
        "    sl_send_reply(200, \"OK\");\n}",
        &format!(
            "    if ($socket_in(proto) == \"tcp\") {{ sl_send_reply(200, \"OK\"); exit; }}\n    \
             forward(\"tcp:127.0.0.5:{unreachable}\");\n}}"
        ),
    );
    let server = Rsips::start(&dir, &cfg);
    let mut s = connect_from("127.0.0.5", port);
    let via: SocketAddr = format!("127.0.0.5:{unreachable}").parse().unwrap();
    s.write_all(options("reg", "TCP", via).as_bytes()).unwrap();
    assert!(read_reply(&mut s).starts_with("SIP/2.0 200"));
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let req = options("in", "UDP", client.local_addr().unwrap());
    client.send_to(req.as_bytes(), ("127.0.0.1", port)).unwrap();
    let got = read_reply(&mut s);
    assert!(
        got.starts_with("OPTIONS sip:in@"),
        "{got}\n{}",
        server.log()
    );
}

/// The kernel's view of the server's side of a connection from `client`: (timer kind, time
/// to it in clock ticks) from /proc/net/tcp (kind 2: the keepalive timer; 0: none).
fn server_timer(server_port: u16, client: SocketAddr) -> (u32, u64) {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let want_local = format!(":{server_port:04X}");
    let want_remote = format!(":{:04X}", client.port());
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 5 && f[1].ends_with(&want_local) && f[2].ends_with(&want_remote) {
            let (kind, when) = f[5].split_once(':').unwrap();
            return (
                u32::from_str_radix(kind, 16).unwrap(),
                u64::from_str_radix(when, 16).unwrap(),
            );
        }
    }
    panic!("no connection {client} -> :{server_port} in /proc/net/tcp:\n{table}");
}

#[test]
fn keepalive_follows_the_profile() {
    let port = common::free_port();
    let dir = common::test_dir("tcpmgm", "keepalive");
    write_table(
        &dir,
        &[
            row(1, &[("remote_addr", "127.0.0.6"), ("keepidle", "77")]),
            row(
                2,
                &[
                    ("remote_addr", "127.0.0.7"),
                    ("keepalive", "0"),
                    ("keepcount", "0"),
                    ("keepidle", "0"),
                    ("keepinterval", "0"),
                ],
            ),
        ],
    );
    let server = Rsips::start(&dir, &config(&dir, port, &[]));
    let mut conns = Vec::new();
    for from in ["127.0.0.6", "127.0.0.7", "127.0.0.1"] {
        let mut s = connect_from(from, port);
        let via = s.local_addr().unwrap();
        s.write_all(options("ka", "TCP", via).as_bytes()).unwrap();
        assert!(
            read_reply(&mut s).starts_with("SIP/2.0 200"),
            "{}",
            server.log()
        );
        conns.push((s.local_addr().unwrap(), s));
    }
    // Clock ticks are 1/100 s (USER_HZ) on Linux.
    let (kind, when) = server_timer(port, conns[0].0);
    assert_eq!(kind, 2, "no keepalive timer for the keepidle=77 profile");
    assert!(when <= 77 * 100, "keepidle=77 not applied: {when} ticks");
    let (kind, _) = server_timer(port, conns[1].0);
    assert_eq!(kind, 0, "keepalive on although the profile turns it off");
    // Without a profile: keepalive on (the core default) with the kernel's idle time (2 h).
    let (kind, when) = server_timer(port, conns[2].0);
    assert_eq!(kind, 2);
    assert!(when > 1000 * 100, "{when}");
}

#[test]
fn connect_timeout_gives_up_on_an_unanswering_peer_early() {
    // A listener with a full accept queue: the kernel drops further SYNs, so a connect to it
    // hangs until the connecting side gives up.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    sock.bind(&any.into()).unwrap();
    sock.listen(0).unwrap();
    let silent: SocketAddr = sock.local_addr().unwrap().as_socket().unwrap();
    let _fillers: Vec<TcpStream> = (0..3)
        .filter_map(|_| TcpStream::connect_timeout(&silent, Duration::from_millis(200)).ok())
        .collect();

    let port = common::free_port();
    let dir = common::test_dir("tcpmgm", "connect");
    let silent_port = silent.port().to_string();
    write_table(
        &dir,
        &[row(
            1,
            &[
                ("remote_addr", "127.0.0.1"),
                ("remote_port", &silent_port),
                ("connect_timeout", "300"),
            ],
        )],
    );
    let cfg = config(&dir, port, &[silent.port()]).replace(
        "tcp_max_msg_time=30\n",
        "tcp_max_msg_time=30\ntcp_connect_timeout=20000\n",
    );
    let server = Rsips::start(&dir, &cfg);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let started = Instant::now();
    let reply = relay(&client, port, silent.port());
    // The global 20 s (or tm's 5 s timer, with its 408) would take far longer.
    assert!(
        reply.starts_with("SIP/2.0 477"),
        "{reply}\n{}",
        server.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let log = server.wait_log("timed out after 300ms");
    assert!(log.contains("timed out after 300ms"), "{log}");
}
