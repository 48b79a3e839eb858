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

const SCHEMA: &str = "USE opensips;\n\
CREATE TABLE version (table_name CHAR(32) NOT NULL, table_version INT UNSIGNED DEFAULT 0 NOT NULL, \
  CONSTRAINT t_name_idx UNIQUE (table_name));\n\
INSERT INTO version VALUES ('address', 5), ('dr_gateways', 6), ('dr_rules', 4), ('dr_carriers', 3), ('dr_groups', 2);\n\
CREATE TABLE address (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, grp SMALLINT(5) UNSIGNED DEFAULT 0 NOT NULL, \
  ip CHAR(50) NOT NULL, mask TINYINT DEFAULT 32 NOT NULL, port SMALLINT(5) UNSIGNED DEFAULT 0 NOT NULL, \
  proto CHAR(4) DEFAULT 'any' NOT NULL, pattern CHAR(64) DEFAULT NULL, context_info CHAR(32) DEFAULT NULL);\n\
CREATE TABLE dr_gateways (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, gwid CHAR(64) NOT NULL, \
  type INT(11) UNSIGNED DEFAULT 0 NOT NULL, address CHAR(128) NOT NULL, strip INT(11) UNSIGNED DEFAULT 0 NOT NULL, \
  pri_prefix CHAR(16) DEFAULT NULL, attrs CHAR(255) DEFAULT NULL, probe_mode INT(11) UNSIGNED DEFAULT 0 NOT NULL, \
  state INT(11) UNSIGNED DEFAULT 0 NOT NULL, socket CHAR(128) DEFAULT NULL, description CHAR(128) DEFAULT NULL);\n\
CREATE TABLE dr_rules (ruleid INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, groupid CHAR(255) NOT NULL, \
  prefix CHAR(64) NOT NULL, timerec CHAR(255) DEFAULT NULL, priority INT(11) DEFAULT 0 NOT NULL, \
  routeid CHAR(255) DEFAULT NULL, gwlist CHAR(255), sort_alg CHAR(1) DEFAULT 'N' NOT NULL, \
  sort_profile INT(10) UNSIGNED DEFAULT NULL, attrs CHAR(255) DEFAULT NULL, description CHAR(128) DEFAULT NULL);\n\
CREATE TABLE dr_carriers (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, carrierid CHAR(64) NOT NULL, \
  gwlist CHAR(255) NOT NULL, flags INT(11) UNSIGNED DEFAULT 0 NOT NULL, sort_alg CHAR(1) DEFAULT 'N' NOT NULL, \
  state INT(11) UNSIGNED DEFAULT 0 NOT NULL, attrs CHAR(255) DEFAULT NULL, description CHAR(128) DEFAULT NULL);\n\
CREATE TABLE dr_groups (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, username CHAR(64) NOT NULL, \
  domain CHAR(128) DEFAULT NULL, groupid INT(11) UNSIGNED DEFAULT 0 NOT NULL, description CHAR(128) DEFAULT NULL);";

#[test]
fn the_stock_trunking_script_unchanged_on_mariadb() {
    let my = my_server::MyServer::start("trunking", ports::free_port());
    let [dead_port, uas_port, uac_port] = common::free_ports();
    my.sql(SCHEMA);
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
