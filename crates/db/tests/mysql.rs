//! The mysql:// driver against a real MariaDB server started for the test: reads, writes,
//! quoting (backslashes and quotes survive), the version check, and an outage in the middle
//! (clear errors while the server is down, the next call reconnects once it is back).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod my_server;
mod ports;

use db::{DbError, Options, Value};
use my_server::MyServer;

#[test]
fn rows_in_and_out_through_a_real_server_and_back_after_an_outage() {
    let my = MyServer::start("driver", ports::free_port());
    my.sql(
        "USE opensips;\n\
         CREATE TABLE version (table_name CHAR(32) PRIMARY KEY, table_version INT UNSIGNED NOT NULL);\n\
         INSERT INTO version VALUES ('subscriber', 8);\n\
         CREATE TABLE subscriber (id INT AUTO_INCREMENT PRIMARY KEY, username CHAR(64) NOT NULL, \
           domain CHAR(64) NOT NULL DEFAULT '', ha1 CHAR(128) NOT NULL DEFAULT '', \
           weight DOUBLE, created DATETIME);",
    );
    // A server whose SQL mode takes backslashes literally: the driver's quoting must hold.
    my.sql("SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES')");
    let conn = db::connect(&my.url(), &Options::default()).unwrap();
    db::check_version(conn.as_ref(), "subscriber", 8).unwrap();
    assert!(matches!(
        db::check_version(conn.as_ref(), "dispatcher", 9),
        Err(DbError::Version { found: 0, .. })
    ));
    conn.insert(
        "subscriber",
        &[
            ("username", Value::Str("o'neil".into())),
            ("domain", Value::Str("example.com".into())),
            ("ha1", Value::Str("a\\' OR 1=1 -- b\"c\n".into())),
            ("weight", Value::Double(0.5)),
        ],
    )
    .unwrap();
    conn.insert("subscriber", &[("username", Value::Str("bob".into()))])
        .unwrap();
    let rows = conn
        .query(
            "subscriber",
            &["id", "ha1", "weight", "created"],
            &[("username", Value::Str("o'neil".into()))],
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0].as_int(), Some(1));
    assert_eq!(rows[0][1], Value::Str("a\\' OR 1=1 -- b\"c\n".into()));
    assert_eq!(rows[0][2].as_text().as_deref(), Some("0.5"));
    assert_eq!(rows[0][3], Value::Null);
    assert_eq!(
        conn.update(
            "subscriber",
            &[("domain", Value::Str(String::new()))],
            &[("domain", Value::Str("b.org".into()))]
        )
        .unwrap(),
        1
    );
    let err = conn.query("subscriber", &["nope"], &[]).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    // A missing column is the statement's fault: refused, not worth a retry.
    assert!(
        matches!(err, DbError::Refused { .. }) && err.is_permanent(),
        "{err}"
    );
    assert!(!err.to_string().contains("opensipsrw"), "{err}");
    // Statements from several threads run side by side, each on a connection of its own
    // (the driver keeps a few), not one after the other on one.
    let ids: Vec<String> = std::thread::scope(|s| {
        let running: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let rows = conn
                        .raw("SELECT CONNECTION_ID(), SLEEP(0.3)")
                        .unwrap()
                        .unwrap();
                    rows[0][0].as_text().unwrap()
                })
            })
            .collect();
        running.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert!(distinct.len() >= 2, "one connection for all: {ids:?}");
    // The server goes away: errors, not a hang; it comes back: the driver reconnects.
    my.down();
    let started = std::time::Instant::now();
    let err = conn.query("subscriber", &["id"], &[]).unwrap_err();
    assert!(matches!(err, DbError::Server { .. }), "{err}");
    assert!(!err.is_permanent(), "a server away is worth a retry: {err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(12));
    // Right after a failed attempt the driver does not try again: an answer at once.
    let started = std::time::Instant::now();
    let err = conn.query("subscriber", &["id"], &[]).unwrap_err();
    assert!(err.to_string().contains("unavailable"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
    my.up();
    // Back within the driver's pause after the last failure.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let rows = loop {
        match conn.query("subscriber", &["id"], &[]) {
            Ok(rows) => break rows,
            Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(rows.len(), 2);
    assert_eq!(
        conn.delete("subscriber", &[("username", Value::Str("bob".into()))])
            .unwrap(),
        1
    );
    let err = db::connect(
        "mysql://opensips:opensipsrw@127.0.0.1:1/opensips",
        &Options::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}
