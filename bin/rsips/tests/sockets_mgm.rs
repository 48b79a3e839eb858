//! `sockets_mgm`: SIP sockets from the `sockets` table, opened when rsips starts and opened or
//! closed by MI `sockets_reload` while it runs, driven by the real `opensips-cli`. On a real
//! MariaDB: the table's UDP and TCP sockets answer, name themselves in `$socket_in`, count for
//! `is_myself` and send what `force_send_socket` gives them; a reload follows the table; a
//! database outage fails the reload and leaves every socket serving. On `db_text`: rows that
//! cannot be sockets are skipped with the reason logged, `max_sockets` caps what opens, and a
//! table of the wrong version stops the start.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;
#[path = "../../../crates/db/tests/my_server/mod.rs"]
mod my_server;
#[path = "../../../crates/db/tests/ports/mod.rs"]
mod ports;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Peer, header};

const SCHEMA: &str = "USE opensips;\n\
CREATE TABLE version (table_name CHAR(32) NOT NULL, table_version INT UNSIGNED DEFAULT 0 NOT NULL, \
  CONSTRAINT t_name_idx UNIQUE (table_name));\n\
INSERT INTO version VALUES ('sockets', 1);\n\
CREATE TABLE sockets (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, \
  socket CHAR(128) NOT NULL, advertised CHAR(128), tag CHAR(128), flags CHAR(128), tos CHAR(32));";

/// Answers every request on every socket with what it learnt of the socket; `sip:out@…`
/// requests are relayed to the peer from the first dynamic socket.
const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "proto_tcp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "DBMODULE"
loadmodule "sockets_mgm.so"
modparam("sockets_mgm", "db_url", "DBURL")
modparam("sockets_mgm", "processes", 2)
EXTRA
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
route {
    if ($rU == "out") {
        force_send_socket("udp:127.0.0.1:DYN1");
        forward("udp:127.0.0.1:PEER");
        exit;
    }
    if (is_myself("edge.example.com", 7070))
        append_to_reply("X-Adv-Myself: yes\r\n");
    append_to_reply("X-In: $socket_in tag=$socket_in(tag)\r\n");
    sl_send_reply(200, "OK");
}
"#;

fn options(port: u16, ruser: &str, from_port: u16, proto: &str) -> String {
    format!(
        "OPTIONS sip:{ruser}@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/{proto} 127.0.0.1:{from_port};branch=z9hG4bK-{ruser}-{port}-{}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:t@127.0.0.1>;tag=f\r\n\
         To: <sip:{ruser}@127.0.0.1>\r\n\
         Call-ID: sm-{ruser}-{port}-{}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        std::process::id(),
        std::process::id()
    )
}

/// An OPTIONS to `port` over UDP: the reply and where it came from, or `None` after 1 s.
fn ask_udp(peer: &Peer, port: u16) -> Option<(String, SocketAddr)> {
    peer.send(port, &options(port, "ask", peer.port, "UDP"));
    peer.sock
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let got = peer
        .sock
        .recv_from(&mut buf)
        .ok()
        .map(|(n, from)| (String::from_utf8_lossy(&buf[..n]).into_owned(), from));
    peer.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    got
}

/// An OPTIONS to `port` over a new TCP connection: the reply, or the connect error.
fn ask_tcp(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = s.local_addr().unwrap().port();
    s.write_all(options(port, "ask", local, "TCP").as_bytes())
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let mut got = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !got.contains("\r\n\r\n") && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    Ok(got)
}

fn mi(fifo: &Path, cmd: &str) -> (bool, String) {
    common::opensips_cli(fifo, &[cmd])
}

fn config(
    port: u16,
    db_module: &str,
    url: &str,
    extra: &str,
    fifo: &Path,
    dyn1: u16,
    peer: u16,
) -> String {
    CONFIG
        .replace("DBMODULE", db_module)
        .replace("DBURL", url)
        .replace("EXTRA", extra)
        .replace("FIFO", &fifo.display().to_string())
        .replace("DYN1", &dyn1.to_string())
        .replace("PEER", &peer.to_string())
        .replace("PORT", &port.to_string())
}

fn test_dir(name: &str, port: u16) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rsips-{name}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn sockets_from_mariadb_open_close_and_outlive_an_outage() {
    let my = my_server::MyServer::start("sockmgm", ports::free_port());
    my.sql(SCHEMA);
    let [port, dyn1, dyn2, dyn3] = common::free_ports::<4>();
    my.sql(&format!(
        "USE opensips; INSERT INTO sockets (socket, advertised, tag) VALUES \
         ('udp:127.0.0.1:{dyn1}', 'edge.example.com:7070', 'edge'); \
         INSERT INTO sockets (socket, tag, tos) VALUES ('tcp:127.0.0.1:{dyn2}', 'trunk', 'IPTOS_LOWDELAY');"
    ));
    let (caller, callee) = (Peer::new(), Peer::new());
    let dir = test_dir("sockmgm", port);
    let fifo = dir.join("fifo");
    std::fs::write(
        dir.join("rsips.cfg"),
        config(port, "db_mysql.so", &my.url(), "", &fifo, dyn1, callee.port),
    )
    .unwrap();
    let log = dir.join("rsips.log");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut server = common::spawn_rsips(&dir, "rsips.cfg", |l| {
        l.contains(&format!("listening on tcp:127.0.0.1:{dyn2}")) && l.contains("MI listening")
    });

    // The UDP socket of the table answers from its own address, with its tag, and its
    // advertised name is ours.
    let (reply, from) = ask_udp(&caller, dyn1).expect("no reply on the dynamic UDP socket");
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
    assert_eq!(from.port(), dyn1, "replied from {from}");
    assert_eq!(
        header(&reply, "X-In"),
        [format!("udp:127.0.0.1:{dyn1} tag=edge").as_str()]
    );
    assert_eq!(header(&reply, "X-Adv-Myself"), ["yes"], "{reply}");
    // The TCP one too.
    let reply = ask_tcp(dyn2).unwrap();
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
    assert_eq!(
        header(&reply, "X-In"),
        [format!("tcp:127.0.0.1:{dyn2} tag=trunk").as_str()]
    );
    // The configured socket is not one of them.
    let (reply, _) = ask_udp(&caller, port).expect("no reply on the configured socket");
    assert!(header(&reply, "X-In")[0].ends_with("tag=<null>"), "{reply}");

    // force_send_socket() names a dynamic socket: the request leaves from it, and the Via
    // names its advertised address.
    caller.send(dyn1, &options(dyn1, "out", caller.port, "UDP"));
    let mut buf = vec![0u8; 65535];
    let (n, from) = callee.sock.recv_from(&mut buf).expect("nothing relayed");
    let relayed = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(from.port(), dyn1, "relayed from {from}:\n{relayed}");
    assert!(
        header(&relayed, "Via")[0].starts_with("SIP/2.0/UDP edge.example.com:7070;"),
        "{relayed}"
    );

    // sockets_list, through the real opensips-cli.
    let (ok, out) = mi(&fifo, "sockets_list");
    assert!(ok, "{out}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        list,
        serde_json::json!([
            {"socket": format!("udp:127.0.0.1:{dyn1}"), "advertised": "edge.example.com:7070", "tag": "edge"},
            {"socket": format!("tcp:127.0.0.1:{dyn2}"), "tag": "trunk", "tos": 16},
        ]),
        "{out}"
    );

    // The table changes: the UDP socket goes, the TCP one gets another tag, a new UDP one
    // comes. Nothing changes until the reload.
    my.sql(&format!(
        "USE opensips; DELETE FROM sockets WHERE socket = 'udp:127.0.0.1:{dyn1}'; \
         UPDATE sockets SET tag = 'trunk2' WHERE socket = 'tcp:127.0.0.1:{dyn2}'; \
         INSERT INTO sockets (socket) VALUES ('udp:127.0.0.1:{dyn3}');"
    ));
    assert!(
        ask_udp(&caller, dyn3).is_none(),
        "dyn3 open before the reload"
    );
    let (ok, out) = mi(&fifo, "sockets_reload");
    assert!(ok && out.contains("OK"), "{out}");
    assert!(ask_udp(&caller, dyn1).is_none(), "dyn1 still answers");
    let (reply, from) = ask_udp(&caller, dyn3).expect("no reply on the new socket");
    assert_eq!(from.port(), dyn3);
    assert_eq!(
        header(&reply, "X-In"),
        [format!("udp:127.0.0.1:{dyn3} tag=<null>").as_str()]
    );
    let reply = ask_tcp(dyn2).unwrap();
    assert!(reply.contains("tag=trunk2"), "{reply}");
    // A socket that is gone no longer counts as ours, nor can the script send from it.
    caller.send(dyn3, &options(dyn3, "out", caller.port, "UDP"));
    assert_eq!(callee.quiet(Duration::from_millis(700)), None);
    assert!(
        read_log().contains(&format!("udp:127.0.0.1:{dyn1}")),
        "{}",
        read_log()
    );

    // The database goes away: the reload fails with an MI error and every socket keeps
    // serving.
    my.down();
    let (ok, out) = mi(&fifo, "sockets_reload");
    assert!(
        !ok && out.contains("Could not reload sockets"),
        "{ok} {out}"
    );
    assert!(ask_udp(&caller, dyn3).is_some(), "dyn3 lost in the outage");
    assert!(ask_tcp(dyn2).unwrap().starts_with("SIP/2.0 200"));
    assert!(ask_udp(&caller, port).is_some());
    let (ok, out) = mi(&fifo, "sockets_list");
    assert!(
        ok && out.contains(&format!("udp:127.0.0.1:{dyn3}")),
        "{out}"
    );

    // Back: the next reload works again.
    my.up();
    my.sql(&format!(
        "USE opensips; INSERT INTO sockets (socket, tag) VALUES ('udp:127.0.0.1:{dyn1}', 'back');"
    ));
    let (ok, out) = mi(&fifo, "sockets_reload");
    assert!(ok, "{out}");
    let (reply, _) = ask_udp(&caller, dyn1).expect("dyn1 not back");
    assert!(reply.contains("tag=back"), "{reply}");
    server.terminate(read_log);
}

/// db_text's `sockets` table with `rows` (after the header), and its version.
fn text_db(dir: &Path, version: i64, rows: &[String]) {
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(
        db.join("version"),
        format!("table_name(str) table_version(int)\nsockets:{version}\n"),
    )
    .unwrap();
    let mut text = "id(int,auto) socket(string) advertised(string,null) tag(string,null) \
                    flags(string,null) tos(string,null)\n"
        .to_owned();
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(db.join("sockets"), text).unwrap();
}

/// A port `p` with `p + 1` free too (a port range row), both taken from the ports the other
/// tests of this binary are given.
fn two_free_ports() -> u16 {
    let mut p = common::free_port();
    for _ in 0..100 {
        let q = common::free_port();
        if q == p + 1 {
            return p;
        }
        p = q;
    }
    panic!("no two consecutive free ports");
}

#[test]
fn unusable_rows_are_skipped_and_a_wrong_table_version_stops_the_start() {
    let [port, a, b, c] = common::free_ports::<4>();
    let range = two_free_ports();
    let dir = test_dir("sockmgm-text", port);
    let fifo = dir.join("fifo");
    let url = format!("text://{}", dir.join("db").display());
    let extra = "loadmodule \"db_text.so\"\nmodparam(\"db_text\", \"db_mode\", 1)\n\
                 modparam(\"sockets_mgm\", \"max_sockets\", 3)";
    std::fs::write(
        dir.join("rsips.cfg"),
        config(port, "db_text.so", &url, extra, &fifo, a, 9),
    )
    .unwrap();

    // A table of another version: rsips does not start, and says why.
    text_db(&dir, 2, &[]);
    let (code, err) = common::run_to_exit(&dir, "rsips.cfg");
    assert!(code.is_some_and(|c| c != 0), "{err}");
    assert!(err.contains("sockets") && err.contains("version"), "{err}");

    let esc = |s: String| s.replace(':', "\\:");
    text_db(
        &dir,
        1,
        &[
            format!("1:{}::bad1::", esc("bin:127.0.0.1:5555".into())),
            format!("2:{}::bad2::", esc("udp:no-such-if0:5060".into())),
            format!("3:{}::bad3:fast:", esc(format!("udp:127.0.0.1:{b}"))),
            // The configured socket's address: it cannot be opened twice.
            format!("4:{}::bad4::", esc(format!("udp:127.0.0.1:{port}"))),
            "5:::null::".to_owned(),
            format!("6:{}::good1::", esc(format!("udp:127.0.0.1:{a}"))),
            format!("7:{}::good2:reuse_port:", esc(format!("tcp:127.0.0.1:{c}"))),
            // A range: two sockets, the second one over max_sockets.
            format!(
                "8:{}::range::",
                esc(format!("udp:127.0.0.1:{range}-{}", range + 1))
            ),
        ],
    );
    let log = dir.join("rsips.log");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut server = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("MI listening"));
    let logged = read_log();
    for want in [
        "skipping `bin:127.0.0.1:5555`: protocol `bin` cannot be a dynamic SIP socket",
        "skipping `udp:no-such-if0:5060`: `no-such-if0` is neither an IP address nor an interface",
        "unknown flag `fast`",
        "NULL or empty socket - skipping",
        &format!("cannot open `udp:127.0.0.1:{port}`"),
        &format!(
            "skipping `udp:127.0.0.1:{}`: max_sockets (3) are open",
            range + 1
        ),
    ] {
        assert!(logged.contains(want), "not logged: {want}\n{logged}");
    }
    let (ok, out) = mi(&fifo, "sockets_mgm:list");
    assert!(ok, "{out}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        list,
        serde_json::json!([
            {"socket": format!("udp:127.0.0.1:{a}"), "tag": "good1"},
            {"socket": format!("tcp:127.0.0.1:{c}"), "tag": "good2", "flags": "reuse_port"},
            {"socket": format!("udp:127.0.0.1:{range}"), "tag": "range"},
        ])
    );
    let peer = Peer::new();
    assert!(ask_udp(&peer, a).is_some());
    assert!(ask_udp(&peer, range).unwrap().0.contains("tag=range"));
    assert!(
        ask_udp(&peer, range + 1).is_none(),
        "the socket over max_sockets opened"
    );
    assert!(ask_tcp(c).unwrap().contains("tag=good2"));

    // A table that no longer reads: the reload is refused, the sockets stay.
    std::fs::write(
        dir.join("db").join("sockets"),
        "not a db_text header\n1:2:3\n",
    )
    .unwrap();
    let (ok, out) = mi(&fifo, "sockets_reload");
    assert!(!ok && out.contains("Could not reload sockets"), "{out}");
    assert!(ask_udp(&peer, a).is_some());
    // The server kept running through all of it.
    assert!(ask_udp(&peer, port).is_some());
    server.terminate(read_log);
}

/// TLS and WS rows serve like the configured sockets: the TLS one with the `tls_mgm` domain's
/// certificate (checked against the test CA), the WS one after the RFC 7118 upgrade.
#[test]
fn tls_and_ws_rows_serve_too() {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    use std::sync::Arc;

    let [port, tls, ws] = common::free_ports::<3>();
    let dir = test_dir("sockmgm-tls", port);
    let ca = common::TestCa::new(&dir, "rsips sockets_mgm ca");
    ca.issue("server", "127.0.0.1", "IP:127.0.0.1");
    let fifo = dir.join("fifo");
    let url = format!("text://{}", dir.join("db").display());
    let extra = format!(
        "loadmodule \"db_text.so\"\nloadmodule \"proto_tls.so\"\nloadmodule \"proto_ws.so\"\n\
         loadmodule \"tls_mgm.so\"\nloadmodule \"tls_wolfssl.so\"\n\
         modparam(\"tls_mgm\", \"server_domain\", \"default\")\n\
         modparam(\"tls_mgm\", \"match_ip_address\", \"[default]*\")\n\
         modparam(\"tls_mgm\", \"verify_cert\", \"[default]0\")\n\
         modparam(\"tls_mgm\", \"require_cert\", \"[default]0\")\n\
         modparam(\"tls_mgm\", \"certificate\", \"[default]{}\")\n\
         modparam(\"tls_mgm\", \"private_key\", \"[default]{}\")",
        ca.path("server.pem"),
        ca.path("server.key")
    );
    std::fs::write(
        dir.join("rsips.cfg"),
        config(port, "db_text.so", &url, &extra, &fifo, 1, 9),
    )
    .unwrap();
    let esc = |s: String| s.replace(':', "\\:");
    text_db(
        &dir,
        1,
        &[
            format!("1:{}::tlsdyn::", esc(format!("tls:127.0.0.1:{tls}"))),
            format!("2:{}::wsdyn::", esc(format!("ws:127.0.0.1:{ws}"))),
        ],
    );
    let log = dir.join("rsips.log");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut server = common::spawn_rsips(&dir, "rsips.cfg", |l| {
        l.contains(&format!("listening on ws:127.0.0.1:{ws}"))
    });

    // TLS: the certificate verifies against the CA, the row's tag is the socket's.
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let conn = rustls::ClientConnection::new(
        client,
        rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into()),
    )
    .unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", tls)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    stream
        .write_all(options(tls, "tls", 5999, "TLS").as_bytes())
        .unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !got.contains("\r\n\r\n") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.starts_with("SIP/2.0 200"), "{got}");
    assert_eq!(
        header(&got, "X-In"),
        [format!("tls:127.0.0.1:{tls} tag=tlsdyn").as_str()]
    );

    // WS: the upgrade with the `sip` subprotocol, then SIP in text frames.
    use tungstenite::client::IntoClientRequest as _;
    let mut req = format!("ws://127.0.0.1:{ws}/")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    req.headers_mut()
        .insert("Origin", "http://127.0.0.1".parse().unwrap());
    let (mut socket, _) = tungstenite::connect(req).unwrap();
    socket
        .send(tungstenite::Message::text(options(ws, "ws", 5998, "WS")))
        .unwrap();
    let reply = loop {
        match socket.read().unwrap() {
            tungstenite::Message::Text(t) => break t.to_string(),
            tungstenite::Message::Binary(b) => break String::from_utf8_lossy(&b).into_owned(),
            _ => {}
        }
    };
    assert_eq!(
        header(&reply, "X-In"),
        [format!("ws:127.0.0.1:{ws} tag=wsdyn").as_str()],
        "{reply}"
    );
    server.terminate(read_log);
}
