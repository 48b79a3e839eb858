//! The stock OpenSIPS redirect server (`opensips-redirect-server-BRANCH_2.cfg`: sqlops loads
//! gateways from MySQL, `$msg.branch` turns them into the 302's Contacts) on a real MariaDB,
//! changed only for its socket, FIFO, logging, the database's address and the network it
//! accepts calls from.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;
#[path = "../../../crates/db/tests/my_server/mod.rs"]
mod my_server;
#[path = "../../../crates/db/tests/ports/mod.rs"]
mod ports;

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

fn invite(did: &str, port: u16, call: &str) -> String {
    format!(
        "INVITE sip:{did}@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call}\r\n\
         From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:{did}@127.0.0.1>\r\n\
         Call-ID: {call}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends `msg` and returns the first final reply (5 s at most).
fn final_reply(sock: &UdpSocket, to: u16, msg: &str) -> String {
    sock.send_to(msg.as_bytes(), ("127.0.0.1", to)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 8192];
    while std::time::Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("SIP/2.0 1") {
                return text;
            }
        }
    }
    panic!("no final reply to:\n{msg}");
}

#[test]
fn the_stock_redirect_server_answers_from_mariadb() {
    // gw_prio is an integer (q × 1000): `$msg.branch.q` takes only an integer, in OpenSIPS
    // as here (the sample's comment calls the column a string, which OpenSIPS would refuse).
    let my = my_server::MyServer::start("redirect", ports::free_port());
    my.sql(
        "USE opensips;\n\
         CREATE TABLE lcr_table (destination_did CHAR(64) NOT NULL, gw_uri CHAR(64) NOT NULL, \
           gw_prio INT NOT NULL);\n\
         INSERT INTO lcr_table VALUES ('5551000', 'sip:5551000@gw1.example.com', 900), \
           ('5551000', 'sip:5551000@gw2.example.com', 500);",
    );
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-redirect-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../../../shared/reference/opensips-configs/master/opensips-redirect-server-BRANCH_2.cfg",
    ))
    .unwrap();
    let text = stock
        .replace(
            "socket=udp:127.0.0.1:5060",
            &format!("socket=udp:127.0.0.1:{port}"),
        )
        .replace(
            "/run/opensips/opensips_fifo",
            dir.join("fifo").to_str().unwrap(),
        )
        .replace("stderror_enabled=no", "stderror_enabled=yes")
        .replace("syslog_enabled=yes", "syslog_enabled=no")
        .replace("@localhost/", &format!("@127.0.0.1:{}/", my.port))
        .replace("192.168.1.1/24", "127.0.0.1/8");
    assert!(
        text.contains(&format!("udp:127.0.0.1:{port}")),
        "the socket line moved"
    );
    std::fs::write(dir.join("opensips.cfg"), text).unwrap();
    let _server = common::spawn_rsips(&dir, "opensips.cfg", |log| {
        log.contains("listening on udp:")
    });
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = sock.local_addr().unwrap().port();
    let reply = final_reply(&sock, port, &invite("5551000", me, "r1"));
    assert!(reply.starts_with("SIP/2.0 302 LCR Redirect\r\n"), "{reply}");
    let contact = reply
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("contact:"))
        .unwrap_or_default()
        .to_owned();
    // The first row comes out first; each with its q.
    let first = contact.find("gw1.example.com").unwrap_or(usize::MAX);
    let second = contact.find("gw2.example.com").unwrap_or(usize::MAX);
    assert!(first < second && second < usize::MAX, "{reply}");
    assert!(
        contact.contains("q=0.9") && contact.contains("q=0.5"),
        "{reply}"
    );
    let reply = final_reply(&sock, port, &invite("5559999", me, "r2"));
    assert!(
        reply.starts_with("SIP/2.0 404 Destination not found"),
        "{reply}"
    );
    // The database goes away: no crash, the call gets an answer, and service resumes.
    my.down();
    let reply = final_reply(&sock, port, &invite("5551000", me, "r3"));
    assert!(reply.starts_with("SIP/2.0 404"), "{reply}");
    my.up();
    // Calls are served from the database again within the driver's pause after the last
    // failed attempt.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for attempt in 0.. {
        let reply = final_reply(
            &sock,
            port,
            &invite("5551000", me, &format!("r4-{attempt}")),
        );
        if reply.starts_with("SIP/2.0 302") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{reply}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
