//! db_virtual end to end: sqlops writes through a FAILOVER set whose first database (a MySQL
//! server that is not there) is down — the row lands in the second (SQLite), the request is
//! answered, and MI `db_virtual:get` from opensips-cli shows the first one marked down;
//! `db_virtual:set` takes a database out of use and back. A set
//! whose database's driver is not loaded stops the start.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, header};

#[test]
fn a_failover_set_writes_to_the_database_that_works() {
    let port = common::free_port();
    let dir = common::test_dir("dbvirt", &port.to_string());
    let file = dir.join("t.sqlite");
    let local = db::connect(
        &format!("sqlite://{}", file.display()),
        &db::Options::default(),
    )
    .unwrap();
    local
        .raw("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v CHAR(64));")
        .unwrap();
    let fifo = dir.join("fifo");
    let cfg = format!(
        "log_level=3\nstderror_enabled=yes\nsocket=udp:127.0.0.1:{port}\n\
         loadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\nloadmodule \"sipmsgops.so\"\n\
         loadmodule \"mi_fifo.so\"\nloadmodule \"db_mysql.so\"\nloadmodule \"db_sqlite.so\"\n\
         loadmodule \"db_virtual.so\"\nloadmodule \"sqlops.so\"\n\
         modparam(\"mi_fifo\", \"fifo_name\", \"{}\")\n\
         modparam(\"db_virtual\", \"db_urls\", \"define fo FAILOVER\")\n\
         modparam(\"db_virtual\", \"db_urls\", \"mysql://u:secret@127.0.0.1:1/x\")\n\
         modparam(\"db_virtual\", \"db_urls\", \"sqlite://{}\")\n\
         modparam(\"sqlops\", \"db_url\", \"virtual://fo\")\n\
         route {{\n    if (sql_insert(\"t\", '{{\"v\": \"$fU\"}}'))\n        \
         append_to_reply(\"X-Stored: yes\\r\\n\");\n    sl_send_reply(200, \"OK\");\n}}\n",
        fifo.display(),
        file.display()
    );
    std::fs::write(dir.join("rsips.cfg"), &cfg).unwrap();
    // Ready once the MI FIFO is there too (opensips-cli talks to it).
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| {
        l.contains("listening on udp:") && fifo.exists()
    });
    let peer = Peer::new();
    let r = common::options(&peer, port, "x", "dbv");
    assert_eq!(header(&r, "X-Stored"), ["yes"], "{r}");
    let rows = local.raw("SELECT v FROM t").unwrap().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0].as_text().as_deref(), Some("alice"));
    let (ok, out) = common::opensips_cli(&fifo, &["db_virtual:get"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dbs = &v["SETS"][0]["DBs"];
    assert_eq!(v["SETS"][0]["mode"], "FAILOVER", "{out}");
    assert_eq!(dbs[0]["flags"], "MAY_USE", "{out}");
    assert_eq!(dbs[1]["flags"], "CAN_USE, MAY_USE", "{out}");
    assert!(!out.contains("secret"), "{out}");
    // The operator takes the SQLite database out of use: nothing is left to write to; let
    // back in, it takes writes again.
    let (ok, out) = common::opensips_cli(&fifo, &["db_virtual:set", "0", "1", "0"]);
    assert!(ok, "{out}");
    let r = common::options(&peer, port, "x", "dbv2");
    assert!(
        r.starts_with("SIP/2.0 200") && header(&r, "X-Stored").is_empty(),
        "{r}"
    );
    let (ok, out) = common::opensips_cli(&fifo, &["db_virtual:set", "0", "1", "1"]);
    assert!(ok, "{out}");
    let r = common::options(&peer, port, "x", "dbv3");
    assert_eq!(header(&r, "X-Stored"), ["yes"], "{r}");
    assert_eq!(local.raw("SELECT v FROM t").unwrap().unwrap().len(), 2);
    let (ok, out) = common::opensips_cli(&fifo, &["db_virtual:set", "0", "7", "1"]);
    assert!(!ok && out.contains("400"), "{out}");

    // A real database whose driver is not loaded: the start stops, saying which.
    let err = common::refused_start(
        "db_virtual_driver",
        &cfg.replace("loadmodule \"db_mysql.so\"\n", "")
            .replace(&format!(":{port}"), ":PORT")
            .replace(fifo.to_str().unwrap(), dir.join("fifo2").to_str().unwrap()),
    );
    assert!(err.contains("needs loadmodule \"db_mysql.so\""), "{err}");
}
