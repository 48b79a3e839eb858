//! The stock OpenSIPS trunking script (`trunking_default.cfg`: permissions for the trunks,
//! drouting to the gateways, sqlops and db_mysql loaded) run unchanged on a real MariaDB —
//! only its socket, FIFO, logging and the database's address differ. A SIPp call from a trunk
//! goes to the first gateway of the rule, which never answers, fails over on the 408 to the
//! second (a SIPp answering it) and completes; an unknown source gets 403.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;
#[path = "../../../crates/db/tests/my_server/mod.rs"]
mod my_server;
#[path = "../../../crates/db/tests/ports/mod.rs"]
mod ports;

use std::net::UdpSocket;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// The trunking script's tables: permissions' `address` (v5) and drouting's.
fn schema() -> String {
    use common::schema::*;
    let address = "INSERT INTO version VALUES ('address', 5), ('dr_gateways', 6), ('dr_rules', 4), ('dr_carriers', 3), ('dr_groups', 2);\n\
CREATE TABLE address (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, grp SMALLINT(5) UNSIGNED DEFAULT 0 NOT NULL, \
  ip CHAR(50) NOT NULL, mask TINYINT DEFAULT 32 NOT NULL, port SMALLINT(5) UNSIGNED DEFAULT 0 NOT NULL, \
  proto CHAR(4) DEFAULT 'any' NOT NULL, pattern CHAR(64) DEFAULT NULL, context_info CHAR(32) DEFAULT NULL);\n";
    mysql(&[VERSION, address, DROUTING])
}

#[test]
fn the_stock_trunking_script_unchanged_on_mariadb() {
    let my = my_server::MyServer::start("trunking", ports::free_port());
    let [dead_port, uas_port, uac_port] = common::free_ports();
    my.sql(&schema());
    my.sql(&format!(
        "USE opensips;\n\
         INSERT INTO address (grp, ip, mask, port, context_info) VALUES (1, '127.0.0.1', 32, {uac_port}, 'trunk A');\n\
         INSERT INTO dr_gateways (gwid, address) VALUES ('silent', '127.0.0.1:{dead_port}'), ('sipp', '127.0.0.1:{uas_port}');\n\
         INSERT INTO dr_rules (groupid, prefix, gwlist, description) VALUES ('1', '', 'silent,sipp', 'everything');"
    ));
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-trunking-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stock = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/reference/opensips-configs/rendered/trunking_default.cfg"),
    )
    .unwrap();
    let text = stock
        .replace(
            "socket=udp:127.0.0.1:5060",
            &format!("socket=udp:127.0.0.1:{port}"),
        )
        .replace("/tmp/opensips_fifo", dir.join("fifo").to_str().unwrap())
        .replace("stderror_enabled=no", "stderror_enabled=yes")
        .replace("syslog_enabled=yes", "syslog_enabled=no")
        .replace("@localhost/", &format!("@127.0.0.1:{}/", my.port));
    assert!(
        text.contains("loadmodule \"drouting.so\"")
            && text.contains("loadmodule \"permissions.so\"")
    );
    std::fs::write(dir.join("opensips.cfg"), text).unwrap();
    let server = common::spawn_rsips(&dir, "opensips.cfg", |log| {
        log.contains("listening on udp:")
    });
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp");
    let _uas = common::Kill(
        common::sipp()
            .arg("-sf")
            .arg(scenarios.join("uas_answer.xml"))
            .args(["-i", "127.0.0.1", "-p", &uas_port.to_string()])
            .args(["-nostdin", "-timeout", "60s"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = common::sipp()
        .arg("-sf")
        .arg(scenarios.join("uac_call.xml"))
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &uac_port.to_string(),
            "-s",
            "15551234",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-m", "1", "-timeout", "40s", "-timeout_error", "-nostdin"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let log = std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "sipp uac failed ({:?}):\n{}\nrsips:\n{log}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        log.contains("Failed GW 127.0.0.1"),
        "the failure route ran:\n{log}"
    );
    // Not a trunk, not a gateway: refused.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = sock.local_addr().unwrap().port();
    let invite = format!(
        "INVITE sip:15551234@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-x\r\n\
         From: <sip:x@127.0.0.1>;tag=x\r\nTo: <sip:15551234@127.0.0.1>\r\nCall-ID: stranger\r\n\
         CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(invite.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("SIP/2.0 403 Forbidden"), "{reply}");
    drop(server);
}

/// The tables `trunking_allyes.cfg` adds: dialplan, acc, missed_calls, dialog.
/// What the all-options script adds: dialplan, acc and dialog.
fn allyes_schema() -> String {
    use common::schema::*;
    mysql(&[
        "INSERT INTO version VALUES ('dialplan', 5), ('acc', 7), ('missed_calls', 5), ('dialog', 12);\n",
        DIALPLAN,
        ACC,
        DIALOG,
    ])
}

/// The "everything on" trunking script (`trunking_allyes.cfg`: dialog with a per-trunk call
/// limit in a profile, dialplan, db accounting, drouting, permissions, TLS, the HTTP MI) run
/// unchanged on MariaDB but for its sockets, FIFO, HTTP port, logging, database address and
/// certificate files: a trunk allowed one call gets 486 for its second, the dialed number is
/// rewritten by the dialplan, the calls are accounted in the `acc` table, and the gateway's
/// BYE (a gateway may send in-dialog requests) ends the call and frees the trunk.
#[test]
fn the_stock_allyes_trunking_script_on_mariadb() {
    use common::{Peer, header, reply_to};
    let my = my_server::MyServer::start("trunkall", ports::free_port());
    my.sql(&schema());
    my.sql(&allyes_schema());
    let (trunk, gw) = (Peer::new(), Peer::new());
    my.sql(&format!(
        "USE opensips;\n\
         INSERT INTO address (grp, ip, mask, port, context_info) VALUES (1, '127.0.0.1', 32, {}, '1');\n\
         INSERT INTO dr_gateways (gwid, address) VALUES ('gw', '127.0.0.1:{}');\n\
         INSERT INTO dr_rules (groupid, prefix, gwlist) VALUES ('1', '49', 'gw');\n\
         INSERT INTO dialplan (dpid, pr, match_op, match_exp, subst_exp, repl_exp) \
           VALUES (0, 1, 1, '^0([1-9][0-9]+)$', '^0([1-9][0-9]+)$', '49\\\\1');",
        trunk.port, gw.port
    ));
    let [port, tls, http] = common::free_ports();
    let dir = std::env::temp_dir().join(format!("rsips-trunkall-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = common::TestCa::new(&dir, "Trunk CA");
    ca.issue("server", "127.0.0.1", "IP:127.0.0.1");
    let text = common::stock_on_test_ports(
        "trunking_allyes.cfg",
        port,
        tls,
        http,
        &dir.join("fifo"),
        my.port,
    )
    .replace(
        "/etc/opensips/tls/user/user-cert.pem",
        &ca.path("server.pem"),
    )
    .replace(
        "/etc/opensips/tls/user/user-privkey.pem",
        &ca.path("server.key"),
    )
    .replace("/etc/opensips/tls/user/user-calist.pem", &ca.path("ca.pem"));
    std::fs::write(dir.join("opensips.cfg"), text).unwrap();
    let _server = common::spawn_rsips(&dir, "opensips.cfg", |log| {
        log.contains("listening on tls:")
    });
    let invite = |callid: &str| {
        format!(
            "INVITE sip:0301234567@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}\r\n\
             From: <sip:trunk@example.com>;tag=t-{callid}\r\nTo: <sip:0301234567@example.com>\r\nCall-ID: {callid}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:trunk@127.0.0.1:{}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            trunk.port, trunk.port
        )
    };
    trunk.send(port, &invite("k1"));
    let inv = gw.recv("INVITE at the gateway");
    assert!(
        inv.starts_with(&format!("INVITE sip:49301234567@127.0.0.1:{} ", gw.port)),
        "dialplan and drouting rewrote the R-URI: {inv}"
    );
    let contact = format!("Contact: <sip:gw@127.0.0.1:{}>\r\n", gw.port);
    gw.send(port, &reply_to(&inv, "200 OK", "g-k1", &contact));
    let ok = trunk.recv("200");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let route = header(&ok, "Record-Route")[0].to_owned();
    trunk.send(
        port,
        &format!(
            "ACK sip:gw@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-k1-ack\r\n\
             Route: {route}\r\nFrom: <sip:trunk@example.com>;tag=t-k1\r\nTo: <sip:0301234567@example.com>;tag=g-k1\r\n\
             Call-ID: k1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            gw.port, trunk.port
        ),
    );
    assert!(gw.recv("ACK").starts_with("ACK "));
    // The trunk's limit (its address' context_info) is one call.
    trunk.send(port, &invite("k2"));
    let busy = trunk.recv("486");
    assert!(busy.starts_with("SIP/2.0 486 Busy Here"), "{busy}");
    // The gateway hangs up (it passes is_from_gw); the BYE goes upstream to the trunk.
    gw.send(
        port,
        &format!(
            "BYE sip:trunk@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-k1-bye\r\n\
             Route: {route}\r\nFrom: <sip:0301234567@example.com>;tag=g-k1\r\nTo: <sip:trunk@example.com>;tag=t-k1\r\n\
             Call-ID: k1\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            trunk.port, gw.port
        ),
    );
    let bye = trunk.recv("BYE at the trunk");
    assert!(bye.starts_with("BYE "), "{bye}");
    trunk.send(port, &reply_to(&bye, "200 OK", "", ""));
    assert!(gw.recv("200 for BYE").starts_with("SIP/2.0 200"));
    // The trunk may call again.
    trunk.send(port, &invite("k3"));
    let inv = gw.recv("INVITE k3 at the gateway");
    assert_eq!(header(&inv, "Call-ID"), vec!["k3"]);
    gw.send(port, &reply_to(&inv, "404 Not Found", "g-k3", ""));
    assert!(gw.recv("ACK for 404").starts_with("ACK "));
    assert!(trunk.recv("404").starts_with("SIP/2.0 404"));
    // Accounted in the acc table: the answered INVITE and the BYE (the stock script accounts
    // failed BYEs too); a plain `do_accounting("db")` does not account the 404.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let want = "INVITE\tk1\t200\nBYE\tk1\t200\n";
    loop {
        let rows = my.sql("SELECT method, callid, sip_code FROM opensips.acc ORDER BY id");
        if rows == want {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "acc rows:\n{rows}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
