//! userblacklist on db_text: a user's blacklist (longest prefix, a whitelist entry lifting a
//! shorter blacklisted prefix, non-digits ignored, the number given or the R-URI user), the
//! global list kept in memory until MI `reload_blacklist` (driven by the real opensips-cli),
//! and a missing table version refused at start.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::Peer;

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "db_text.so"
loadmodule "userblacklist.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
modparam("userblacklist", "db_url", "text://DB")
route {
    if (is_present_hf("X-Num")) {
        if (!check_user_blacklist("$fU", "$fd", "$hdr(X-Num)")) {
            sl_send_reply(403, "Number blacklisted");
            exit;
        }
        sl_send_reply(200, "Number OK");
        exit;
    }
    if (!check_user_blacklist("$fU", "$fd")) {
        sl_send_reply(403, "User blacklisted");
        exit;
    }
    if (!check_blacklist("globalblacklist")) {
        sl_send_reply(403, "Global blacklisted");
        exit;
    }
    sl_send_reply(200, "OK");
}
"#;

fn write_db(db: &std::path::Path, global: &str) {
    std::fs::write(
        db.join("version"),
        "table_name(string) table_version(int)\nuserblacklist:2\nglobalblacklist:2\n",
    )
    .unwrap();
    std::fs::write(
        db.join("userblacklist"),
        "id(int,auto) username(string) domain(string) prefix(string) whitelist(int)\n\
         1:alice:example.com:49:0\n\
         2:alice:example.com:4915:1\n\
         3:bob:example.com:33:0\n",
    )
    .unwrap();
    std::fs::write(
        db.join("globalblacklist"),
        format!("id(int,auto) prefix(string) whitelist(int) description(string,null)\n{global}"),
    )
    .unwrap();
}

fn ask(peer: &Peer, port: u16, from: &str, to: &str, extra: &str, n: u32) -> String {
    peer.send(
        port,
        &format!(
            "INVITE sip:{to}@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-ubl-{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{from}@example.com>;tag=f{n}\r\n\
             To: <sip:{to}@127.0.0.1>\r\nCall-ID: ubl-{n}-{port}\r\nCSeq: 1 INVITE\r\n\
             {extra}Content-Length: 0\r\n\r\n",
            peer.port
        ),
    );
    let r = peer.recv("reply");
    r.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn blacklists_decide_by_longest_prefix() {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-ubl-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    write_db(&db, "1:900:0:premium\n2:9001:1:allowed range\n");
    let fifo = dir.join("fifo");
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("FIFO", fifo.to_str().unwrap())
            .replace("DB", db.to_str().unwrap()),
    )
    .unwrap();
    let _server = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("MI listening"));
    let peer = Peer::new();
    let cases = [
        // alice: 49 blacklisted, 4915 whitelisted inside it.
        ("alice", "4930123", "", "SIP/2.0 403 User blacklisted"),
        ("alice", "4915123", "", "SIP/2.0 200 OK"),
        // Non-digits are dropped before matching.
        ("alice", "+49-30-1", "", "SIP/2.0 403 User blacklisted"),
        // The global list: 900 blacklisted, 9001 lifted.
        ("alice", "9005", "", "SIP/2.0 403 Global blacklisted"),
        ("bob", "90012", "", "SIP/2.0 200 OK"),
        ("bob", "3312", "", "SIP/2.0 403 User blacklisted"),
        ("carol", "3312", "", "SIP/2.0 200 OK"),
        // The number given instead of the R-URI user.
        (
            "alice",
            "1",
            "X-Num: 4933\r\n",
            "SIP/2.0 403 Number blacklisted",
        ),
        ("alice", "4933", "X-Num: 1234\r\n", "SIP/2.0 200 Number OK"),
    ];
    for (n, (from, to, extra, want)) in cases.iter().enumerate() {
        let got = ask(&peer, port, from, to, extra, n as u32);
        assert_eq!(&got, want, "{from} -> {to} {extra}");
    }
    // The global list stays as read until reload_blacklist.
    write_db(
        &db,
        "1:900:0:premium\n2:9001:1:allowed range\n3:777:0:new\n",
    );
    let (ok, out) = common::opensips_cli(&fifo, &["dbt_reload"]);
    assert!(ok, "{out}");
    assert_eq!(ask(&peer, port, "carol", "7770", "", 20), "SIP/2.0 200 OK");
    let (ok, out) = common::opensips_cli(&fifo, &["reload_blacklist"]);
    assert!(ok && out.contains("OK"), "{out}");
    assert_eq!(
        ask(&peer, port, "carol", "7770", "", 21),
        "SIP/2.0 403 Global blacklisted"
    );
}

#[test]
fn a_table_of_another_version_stops_the_start() {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-ubl-bad-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    write_db(&db, "");
    std::fs::write(
        db.join("version"),
        "table_name(string) table_version(int)\nuserblacklist:1\n",
    )
    .unwrap();
    let err = common::refused_start(
        "ubl-version",
        &CONFIG
            .replace("FIFO", dir.join("fifo").to_str().unwrap())
            .replace("DB", db.to_str().unwrap()),
    );
    assert!(
        err.contains("userblacklist") && err.contains("version"),
        "{err}"
    );
}
