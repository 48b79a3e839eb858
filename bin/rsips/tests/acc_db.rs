//! acc's `db` backend on a real MariaDB: answered and failed calls become rows of `acc` with
//! the `db` extra fields, failed ones rows of `missed_calls` too, `acc_db_request` writes to
//! the table it names — and while the database is down the proxy keeps routing calls and
//! their rows arrive once it is back.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;
#[path = "../../../crates/db/tests/my_server/mod.rs"]
mod my_server;
#[path = "../../../crates/db/tests/ports/mod.rs"]
mod ports;

use std::time::{Duration, Instant};

use common::{Peer, header, reply_to};

const SCHEMA: &str = "USE opensips;\n\
CREATE TABLE version (table_name CHAR(32) NOT NULL, table_version INT UNSIGNED DEFAULT 0 NOT NULL, \
  CONSTRAINT t_name_idx UNIQUE (table_name));\n\
INSERT INTO version VALUES ('acc', 7), ('missed_calls', 5);\n\
CREATE TABLE acc (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, method CHAR(16) DEFAULT '' NOT NULL, \
  from_tag CHAR(64) DEFAULT '' NOT NULL, to_tag CHAR(64) DEFAULT '' NOT NULL, callid CHAR(64) DEFAULT '' NOT NULL, \
  sip_code CHAR(3) DEFAULT '' NOT NULL, sip_reason CHAR(32) DEFAULT '' NOT NULL, time DATETIME NOT NULL, \
  duration INT(11) UNSIGNED DEFAULT 0 NOT NULL, ms_duration INT(11) UNSIGNED DEFAULT 0 NOT NULL, \
  setuptime INT(11) UNSIGNED DEFAULT 0 NOT NULL, created DATETIME DEFAULT NULL, user_agent CHAR(64) DEFAULT NULL);\n\
CREATE TABLE missed_calls (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, method CHAR(16) DEFAULT '' NOT NULL, \
  from_tag CHAR(64) DEFAULT '' NOT NULL, to_tag CHAR(64) DEFAULT '' NOT NULL, callid CHAR(64) DEFAULT '' NOT NULL, \
  sip_code CHAR(3) DEFAULT '' NOT NULL, sip_reason CHAR(32) DEFAULT '' NOT NULL, time DATETIME NOT NULL, \
  user_agent CHAR(64) DEFAULT NULL);\n\
CREATE TABLE audit (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, method CHAR(16) DEFAULT '' NOT NULL, \
  from_tag CHAR(64) DEFAULT '' NOT NULL, to_tag CHAR(64) DEFAULT '' NOT NULL, callid CHAR(64) DEFAULT '' NOT NULL, \
  sip_code CHAR(3) DEFAULT '' NOT NULL, sip_reason CHAR(32) DEFAULT '' NOT NULL, time DATETIME NOT NULL, \
  user_agent CHAR(64) DEFAULT NULL);\n\
CREATE TABLE broken (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, method CHAR(16), callid CHAR(64));";

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
syslog_enabled=no
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "signaling.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "db_mysql.so"
loadmodule "acc.so"
modparam("acc", "db_url", "DBURL")
modparam("acc", "extra_fields", "db: ua->user_agent")
route {
    if (has_totag()) {
        if (is_method("ACK") && t_check_trans()) { t_relay(); exit; }
        if (!loose_route()) { send_reply(404, "Not here"); exit; }
        if (is_method("BYE")) do_accounting("db", "failed");
        t_relay();
        exit;
    }
    if (is_method("MESSAGE")) {
        acc_db_request("202 Audited", "audit");
        send_reply(202, "Accepted");
        exit;
    }
    if (is_method("OPTIONS")) {
        acc_db_request("200", "broken");
        send_reply(200, "OK");
        exit;
    }
    record_route();
    $acc_extra(ua) = $ua;
    do_accounting("db", "missed|failed");
    t_relay();
}
"#;

fn invite(caller: &Peer, callee: &Peer, callid: &str) -> String {
    format!(
        "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid};rport\r\n\
         From: <sip:alice@example.com>;tag=a-{callid}\r\nTo: <sip:bob@example.com>\r\nCall-ID: {callid}\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{}>\r\nUser-Agent: phone-{callid}\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        callee.port, caller.port, caller.port
    )
}

/// Waits (20 s at most) until `sql` answers `want`.
fn wait_for(my: &my_server::MyServer, sql: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = my.sql(sql);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}:\n{got}\nwanted:\n{want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A MariaDB with the accounting tables, and rsips on `config` using it: (database, SIP port,
/// rsips' directory, rsips).
fn start(name: &str, config: &str) -> (my_server::MyServer, u16, std::path::PathBuf, common::Kill) {
    let my = my_server::MyServer::start(name, ports::free_port());
    my.sql(SCHEMA);
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-{name}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        config
            .replace("PORT", &port.to_string())
            .replace("DBURL", &my.url()),
    )
    .unwrap();
    let server = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    (my, port, dir, server)
}

#[test]
fn calls_are_accounted_in_mariadb_and_survive_an_outage() {
    let (my, port, dir, _server) = start("accdb", CONFIG);
    let (caller, callee) = (Peer::new(), Peer::new());

    // An answered call, then its BYE.
    caller.send(port, &invite(&caller, &callee, "c1"));
    let inv = callee.recv("INVITE");
    let contact = format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", callee.port);
    callee.send(port, &reply_to(&inv, "200 OK", "b-c1", &contact));
    let ok = caller.recv("200");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let route = header(&ok, "Record-Route")[0].to_owned();
    caller.send(
        port,
        &format!(
            "BYE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-c1-bye\r\n\
             Route: {route}\r\nFrom: <sip:alice@example.com>;tag=a-c1\r\nTo: <sip:bob@example.com>;tag=b-c1\r\n\
             Call-ID: c1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port
        ),
    );
    let bye = callee.recv("BYE");
    callee.send(port, &reply_to(&bye, "200 OK", "", ""));
    assert!(caller.recv("200 for BYE").starts_with("SIP/2.0 200"));

    // A busy callee: a failed call, and a missed one.
    caller.send(port, &invite(&caller, &callee, "c2"));
    let inv = callee.recv("INVITE");
    callee.send(port, &reply_to(&inv, "486 Busy Here", "b-c2", ""));
    assert!(callee.recv("ACK").starts_with("ACK "));
    let busy = caller.recv("486");
    assert!(busy.starts_with("SIP/2.0 486"), "{busy}");

    // acc_db_request into the table it names.
    caller.send(
        port,
        &format!(
            "MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-m1\r\n\
             From: <sip:alice@example.com>;tag=m\r\nTo: <sip:bob@example.com>\r\nCall-ID: m1\r\n\
             CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            caller.port
        ),
    );
    assert!(caller.recv("202").starts_with("SIP/2.0 202"));
    // A table the row does not fit: the database refuses it, it is dropped with an error and
    // the rows after it still go in.
    caller.send(
        port,
        &format!(
            "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-o1\r\n\
             From: <sip:alice@example.com>;tag=o\r\nTo: <sip:bob@example.com>\r\nCall-ID: o1\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            caller.port
        ),
    );
    assert!(caller.recv("200 for OPTIONS").starts_with("SIP/2.0 200"));

    let acc = "SELECT method, from_tag, to_tag, callid, sip_code, sip_reason, IFNULL(user_agent, '-'), \
               time > NOW() - INTERVAL 1 MINUTE FROM opensips.acc ORDER BY id";
    wait_for(
        &my,
        acc,
        "INVITE\ta-c1\tb-c1\tc1\t200\tOK\tphone-c1\t1\n\
         BYE\ta-c1\tb-c1\tc1\t200\tOK\t-\t1\n\
         INVITE\ta-c2\tb-c2\tc2\t486\tBusy Here\tphone-c2\t1\n",
    );
    wait_for(
        &my,
        "SELECT method, callid, sip_code, sip_reason FROM opensips.missed_calls",
        "INVITE\tc2\t486\tBusy Here\n",
    );
    wait_for(
        &my,
        "SELECT method, callid, sip_code, sip_reason FROM opensips.audit",
        "MESSAGE\tm1\t202\tAudited\n",
    );

    // The database goes away: calls still go through, and their rows wait.
    my.down();
    for n in 3..5 {
        let callid = format!("c{n}");
        caller.send(port, &invite(&caller, &callee, &callid));
        let inv = callee.recv("INVITE during the outage");
        callee.send(
            port,
            &reply_to(&inv, "200 OK", &format!("b-{callid}"), &contact),
        );
        let ok = caller.recv("200 during the outage");
        assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    }
    std::thread::sleep(Duration::from_millis(1500));
    my.up();
    wait_for(
        &my,
        "SELECT callid, sip_code FROM opensips.acc WHERE id > 3 ORDER BY id",
        "c3\t200\nc4\t200\n",
    );
    let log = std::fs::read_to_string(dir.join("rsips.log")).unwrap();
    assert!(
        log.contains("acc: cannot write to the database, rows kept and retried"),
        "{log}"
    );
    assert!(
        log.contains("acc: the database refused a row for table broken, dropped"),
        "{log}"
    );
    assert_eq!(my.sql("SELECT COUNT(*) FROM opensips.broken"), "0\n");
}

const CDR_CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
syslog_enabled=no
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "signaling.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "db_mysql.so"
loadmodule "dialog.so"
loadmodule "acc.so"
modparam("acc", "db_url", "DBURL")
modparam("acc", "extra_fields", "db: ua->user_agent")
modparam("acc", "extra_fields", "log: ua")
route {
    if (has_totag()) {
        if (is_method("ACK") && t_check_trans()) { t_relay(); exit; }
        if (!loose_route()) { send_reply(404, "Not here"); exit; }
        if (is_method("INVITE")) do_accounting("log", "cdr");
        t_relay();
        exit;
    }
    record_route();
    $acc_extra(ua) = $ua;
    do_accounting("log|db", "cdr|missed");
    t_relay();
}
"#;

/// With `cdr`, an answered call is one record when it ends (log line and row, with its
/// duration and set-up time), not a record per transaction; a failed one is still a missed
/// call.
#[test]
fn answered_calls_are_one_record_each_when_they_end() {
    let (my, port, dir, _server) = start("acccdr", CDR_CONFIG);
    let (caller, callee) = (Peer::new(), Peer::new());
    caller.send(port, &invite(&caller, &callee, "d1"));
    let inv = callee.recv("INVITE");
    // A second of ringing is the call's set-up time.
    callee.send(port, &reply_to(&inv, "180 Ringing", "b-d1", ""));
    assert!(caller.recv("180").starts_with("SIP/2.0 180"));
    std::thread::sleep(Duration::from_millis(1100));
    let contact = format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", callee.port);
    callee.send(port, &reply_to(&inv, "200 OK", "b-d1", &contact));
    let ok = caller.recv("200");
    let route = header(&ok, "Record-Route")[0].to_owned();
    // A re-INVITE in the call (the script asks for `cdr` again): a transaction of its own,
    // not a second record of the call.
    caller.send(
        port,
        &format!(
            "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-d1-re\r\n\
             Route: {route}\r\nFrom: <sip:alice@example.com>;tag=a-d1\r\nTo: <sip:bob@example.com>;tag=b-d1\r\n\
             Call-ID: d1\r\nCSeq: 2 INVITE\r\nContact: <sip:alice@127.0.0.1:{}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port, caller.port
        ),
    );
    let reinvite = callee.recv("re-INVITE");
    callee.send(port, &reply_to(&reinvite, "200 OK", "", &contact));
    assert!(
        caller
            .recv("200 for the re-INVITE")
            .starts_with("SIP/2.0 200")
    );
    // Nothing is written while the call lasts.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(my.sql("SELECT COUNT(*) FROM opensips.acc"), "0\n");
    caller.send(
        port,
        &format!(
            "BYE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-d1-bye\r\n\
             Route: {route}\r\nFrom: <sip:alice@example.com>;tag=a-d1\r\nTo: <sip:bob@example.com>;tag=b-d1\r\n\
             Call-ID: d1\r\nCSeq: 3 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port
        ),
    );
    let bye = callee.recv("BYE");
    callee.send(port, &reply_to(&bye, "200 OK", "", ""));
    assert!(caller.recv("200 for BYE").starts_with("SIP/2.0 200"));
    wait_for(
        &my,
        "SELECT method, from_tag, to_tag, callid, sip_code, user_agent, \
         duration BETWEEN FLOOR(ms_duration / 1000) AND FLOOR(ms_duration / 1000) + 1, ms_duration BETWEEN 1400 AND 4000, \
         setuptime BETWEEN 1 AND 2, TIMESTAMPDIFF(SECOND, created, time) = setuptime \
         FROM opensips.acc",
        "INVITE\ta-d1\tb-d1\td1\t200\tphone-d1\t1\t1\t1\t1\n",
    );
    let log = std::fs::read_to_string(dir.join("rsips.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("ACC: call ended: "))
        .unwrap_or_else(|| panic!("no CDR line:\n{log}"));
    let field = |name: &str| -> i64 {
        line.split(';')
            .find_map(|f| f.rsplit(' ').next()?.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    let (ms, secs) = (field("ms_duration"), field("duration"));
    assert!(
        (1400..4000).contains(&ms) && (ms / 1000..=ms / 1000 + 1).contains(&secs),
        "{line}"
    );
    assert!((1..=2).contains(&field("setuptime")), "{line}");
    assert_eq!(
        field("call_start_time") - field("created"),
        field("setuptime"),
        "{line}"
    );
    assert!(
        line.contains(
            ";method=INVITE;from_tag=a-d1;to_tag=b-d1;call_id=d1;code=200;reason=OK;ua=phone-d1"
        ),
        "{line}"
    );
    assert_eq!(log.matches("ACC: call ended: ").count(), 1, "{log}");
    // The only transaction record is the re-INVITE's (the call's INVITE is in the CDR).
    let answered: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ACC: transaction answered"))
        .collect();
    assert_eq!(answered.len(), 1, "{log}");
    assert!(
        answered[0].contains("method=INVITE") && answered[0].contains("call_id=d1"),
        "{log}"
    );
    // A failed call is a missed call, at once.
    caller.send(port, &invite(&caller, &callee, "d2"));
    let inv = callee.recv("INVITE d2");
    callee.send(
        port,
        &reply_to(&inv, "480 Temporarily Unavailable", "b-d2", ""),
    );
    assert!(callee.recv("ACK").starts_with("ACK "));
    assert!(caller.recv("480").starts_with("SIP/2.0 480"));
    wait_for(
        &my,
        "SELECT callid, sip_code FROM opensips.missed_calls",
        "d2\t480\n",
    );
}
