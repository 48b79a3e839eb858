//! The postgres:// driver against a real PostgreSQL server started for the test: reads,
//! writes, quoting, the version check, and an outage in the middle (clear errors while the
//! server is down, the next call reconnects once it is back).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod pg_server;
mod ports;

use db::{DbError, Options, Value};
use pg_server::PgServer;

#[test]
fn rows_in_and_out_through_a_real_server_and_back_after_an_outage() {
    let pg = PgServer::start("driver", ports::free_port());
    pg.psql(
        "CREATE TABLE version (table_name VARCHAR(32) PRIMARY KEY, table_version INTEGER);\n\
         INSERT INTO version VALUES ('subscriber', 8);\n\
         CREATE TABLE subscriber (id SERIAL PRIMARY KEY, username VARCHAR(64) NOT NULL, \
           domain VARCHAR(64) NOT NULL DEFAULT '', ha1 VARCHAR(128) NOT NULL DEFAULT '', \
           weight DOUBLE PRECISION, created TIMESTAMP);\n\
         GRANT ALL ON ALL TABLES IN SCHEMA public TO opensips;\n\
         GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO opensips;",
        "opensips",
    );
    // A database where backslashes escape in literals: the driver's quoting must hold.
    pg.psql(
        "ALTER DATABASE opensips SET standard_conforming_strings = off",
        "postgres",
    );
    let conn = db::connect(&pg.url(), &Options::default()).unwrap();
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
            ("ha1", Value::Str("a\\' OR 1=1 -- b\"c".into())),
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
    assert_eq!(rows[0][1], Value::Str("a\\' OR 1=1 -- b\"c".into()));
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
    assert!(
        !err.to_string().contains("opensipsrw"),
        "the password stays out of messages: {err}"
    );
    // Statements from several threads run side by side, each on a connection of its own
    // (the driver keeps a few), not one after the other on one.
    let ids: Vec<String> = std::thread::scope(|s| {
        let running: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let rows = conn
                        .raw("SELECT pg_backend_pid(), pg_sleep(0.3)")
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
    pg.down();
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
    pg.up();
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
    // A server that is not there at all: the start-time error names it.
    let err = db::connect(
        "postgres://opensips:opensipsrw@127.0.0.1:1/opensips",
        &Options::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}
