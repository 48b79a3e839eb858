//! The sqlite:// driver on files made the way an operator following OpenSIPS' schema makes
//! them (`scripts/sqlite/*-create.sql`): reads and writes through the `Connection` trait,
//! quoting, NULLs, blobs and datetimes as OpenSIPS stores them, the version check, and what
//! goes wrong (a file that cannot be opened, a lock held too long, a table that is not there,
//! a file broken under a running server) as errors, never a panic or a hang.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use db::{Connection, DbError, Options, Value};

/// A fresh directory for one test's database file.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rsips-sqlite-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn url(file: &Path) -> String {
    format!("sqlite://{}", file.display())
}

fn open(file: &Path) -> Arc<dyn Connection> {
    db::connect(&url(file), &Options::default()).unwrap()
}

fn with(settings: db::sqlite::Settings) -> Options {
    Options {
        sqlite: settings,
        ..Options::default()
    }
}

/// OpenSIPS' `version`, `subscriber` (auth_db), `acc` and `presentity` tables for SQLite.
const SCHEMA: &str = "\
CREATE TABLE version (table_name CHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_t_name_idx UNIQUE (table_name));
INSERT INTO version (table_name, table_version) VALUES ('subscriber', '8');
CREATE TABLE subscriber (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username CHAR(64) DEFAULT '' NOT NULL, domain CHAR(64) DEFAULT '' NOT NULL,
    password CHAR(25) DEFAULT '' NOT NULL, ha1 CHAR(64) DEFAULT '' NOT NULL,
    ha1_sha256 CHAR(64) DEFAULT '' NOT NULL, ha1_sha512t256 CHAR(64) DEFAULT '' NOT NULL,
    CONSTRAINT subscriber_account_idx UNIQUE (username, domain));
INSERT INTO version (table_name, table_version) VALUES ('acc', '7');
CREATE TABLE acc (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    method CHAR(16) DEFAULT '' NOT NULL, from_tag CHAR(64) DEFAULT '' NOT NULL,
    to_tag CHAR(64) DEFAULT '' NOT NULL, callid CHAR(64) DEFAULT '' NOT NULL,
    sip_code CHAR(3) DEFAULT '' NOT NULL, sip_reason CHAR(32) DEFAULT '' NOT NULL,
    time DATETIME NOT NULL, duration INTEGER DEFAULT 0 NOT NULL,
    ms_duration INTEGER DEFAULT 0 NOT NULL, setuptime INTEGER DEFAULT 0 NOT NULL,
    created DATETIME DEFAULT NULL);
INSERT INTO version (table_name, table_version) VALUES ('presentity', '5');
CREATE TABLE presentity (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username CHAR(64) NOT NULL, domain CHAR(64) NOT NULL, event CHAR(64) NOT NULL,
    etag CHAR(64) NOT NULL, expires INTEGER NOT NULL, received_time INTEGER NOT NULL,
    body BLOB DEFAULT NULL, extra_hdrs BLOB DEFAULT NULL, sender CHAR(255) DEFAULT NULL,
    CONSTRAINT presentity_presentity_idx UNIQUE (username, domain, event, etag));
";

fn s(text: &str) -> Value {
    Value::Str(text.to_owned())
}

#[test]
fn rows_in_and_out_of_tables_made_from_the_opensips_schema() {
    let d = dir("crud");
    let file = d.join("opensips.db");
    let conn = open(&file);
    assert!(file.exists(), "the file is created on first open");
    assert_eq!(conn.raw(SCHEMA).unwrap(), None, "DDL has no result set");
    db::check_version(conn.as_ref(), "subscriber", 8).unwrap();
    assert!(matches!(
        db::check_version(conn.as_ref(), "location", 1013),
        Err(DbError::Version { found: 0, .. })
    ));

    // Quotes, backslashes and an injection attempt are data; columns not named take their
    // defaults; the auto-increment column counts from 1.
    let tricky = "a\\' OR 1=1; DROP TABLE subscriber; -- b\"c\n";
    conn.insert(
        "subscriber",
        &[
            ("username", s("o'neil")),
            ("domain", s("example.com")),
            ("ha1", s(tricky)),
        ],
    )
    .unwrap();
    conn.insert(
        "subscriber",
        &[("username", s("bob")), ("domain", s("example.com"))],
    )
    .unwrap();
    let rows = conn
        .query(
            "subscriber",
            &["id", "username", "ha1", "password"],
            &[("domain", s("example.com"))],
        )
        .unwrap();
    assert_eq!(
        rows,
        vec![
            vec![Value::Int(1), s("o'neil"), s(tricky), s("")],
            vec![Value::Int(2), s("bob"), s(""), s("")],
        ],
        "rows in table order, integers as numbers"
    );
    let rows = conn
        .query("subscriber", &[], &[("username", s("o'neil"))])
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].len(), 7, "no columns named: all of them");
    // Text compares exactly (SQLite's BINARY collation, like PostgreSQL).
    assert!(
        conn.query("subscriber", &["id"], &[("username", s("BOB"))])
            .unwrap()
            .is_empty()
    );

    // A unique key refuses a second row: the statement's fault, not worth a retry.
    let err = conn
        .insert(
            "subscriber",
            &[("username", s("bob")), ("domain", s("example.com"))],
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            DbError::Rejected {
                code: "SQLITE_CONSTRAINT",
                ..
            }
        ) && err.is_permanent(),
        "{err}"
    );
    assert!(err.to_string().contains("UNIQUE"), "{err}");

    // Updates and deletes say how many rows they touched; an integer given as text lands in
    // an INTEGER column as a number, a number in a CHAR column as text.
    assert_eq!(
        conn.update(
            "subscriber",
            &[("username", s("bob"))],
            &[("password", Value::Int(1234)), ("ha1", s(""))]
        )
        .unwrap(),
        1
    );
    assert_eq!(
        conn.query("subscriber", &["password"], &[("id", s("2"))])
            .unwrap(),
        vec![vec![s("1234")]]
    );
    assert_eq!(
        conn.update(
            "subscriber",
            &[("username", s("nobody"))],
            &[("ha1", s("x"))]
        )
        .unwrap(),
        0
    );

    // NULLs in, NULLs out, and NULL as a filter ("IS NULL").
    conn.insert(
        "acc",
        &[
            ("method", s("INVITE")),
            ("callid", s("c1")),
            ("sip_code", Value::Int(200)),
            ("time", Value::DateTime(1_700_000_000)),
            ("duration", Value::Int(i64::from(u32::MAX) + 5)),
            ("created", Value::Null),
        ],
    )
    .unwrap();
    let rows = conn
        .query(
            "acc",
            &["sip_code", "duration", "created", "time"],
            &[("created", Value::Null)],
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], s("200"), "sip_code is CHAR(3)");
    assert_eq!(rows[0][1], Value::Int(4_294_967_300), "64-bit integers");
    assert_eq!(rows[0][2], Value::Null);
    // A datetime is stored as OpenSIPS' db_sqlite stores it: local time as text.
    let time = rows[0][3].as_text().unwrap();
    assert!(
        time.len() == 19 && time.as_bytes()[4] == b'-' && time.as_bytes()[10] == b' ',
        "{time}"
    );
    assert_eq!(
        conn.raw("SELECT strftime('%s', time, 'utc') FROM acc")
            .unwrap(),
        Some(vec![vec![s("1700000000")]]),
        "the moment written is the moment read"
    );
    assert_eq!(
        conn.query(
            "acc",
            &["callid"],
            &[("time", Value::DateTime(1_700_000_000))]
        )
        .unwrap(),
        vec![vec![s("c1")]],
        "a datetime filter matches what was written"
    );

    // Blobs: text in a BLOB column, and a real blob (as OpenSIPS writes one, x'…') read back.
    let body = "<?xml version='1.0'?>\n<presence entity=\"sip:a@b\"/>";
    conn.insert(
        "presentity",
        &[
            ("username", s("alice")),
            ("domain", s("b")),
            ("event", s("presence")),
            ("etag", s("e1")),
            ("expires", Value::Int(3600)),
            ("received_time", Value::Int(1)),
            ("body", s(body)),
        ],
    )
    .unwrap();
    assert_eq!(
        conn.raw(
            "INSERT INTO presentity (username, domain, event, etag, expires, received_time, body) \
             VALUES ('bob', 'b', 'presence', 'e2', 3600, 1, x'3c613e')"
        )
        .unwrap(),
        None
    );
    let bodies = conn
        .query("presentity", &["body", "extra_hdrs"], &[])
        .unwrap();
    assert_eq!(
        bodies,
        vec![vec![s(body), Value::Null], vec![s("<a>"), Value::Null]]
    );

    // Doubles, and text with a NUL byte (refused before it reaches SQLite).
    assert_eq!(
        conn.raw("SELECT 0.5, 1e300, 7, NULL, 'x'").unwrap(),
        Some(vec![vec![
            Value::Double(0.5),
            Value::Double(1e300),
            Value::Int(7),
            Value::Null,
            s("x")
        ]])
    );
    assert!(
        conn.insert("subscriber", &[("username", s("a\0b"))])
            .is_err()
    );

    // What is not there: a table (the text names it), a column.
    let err = conn.query("nope", &["id"], &[]).unwrap_err();
    assert!(
        matches!(err, DbError::NoTable { .. }) && err.is_permanent(),
        "{err}"
    );
    assert!(err.to_string().contains("no table \"nope\""), "{err}");
    let err = conn.query("subscriber", &["nope"], &[]).unwrap_err();
    assert!(
        matches!(err, DbError::Rejected { .. }) && err.is_permanent(),
        "{err}"
    );
    assert!(
        err.to_string().contains("no such column: \"nope\"")
            && !err.to_string().contains("literal"),
        "{err}"
    );
    let err = conn.raw("SELEC 1").unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");

    // A raw query may hold a whole transaction; one it leaves open is undone and refused
    // (it would keep the file locked for every other connection).
    assert_eq!(
        conn.raw(
            "BEGIN; INSERT INTO subscriber (username, domain) VALUES ('tx', 'a'); \
             UPDATE subscriber SET password = 'p' WHERE username = 'tx'; COMMIT"
        )
        .unwrap(),
        None
    );
    let err = conn
        .raw("BEGIN; INSERT INTO subscriber (username, domain) VALUES ('open', 'a')")
        .unwrap_err();
    assert!(err.to_string().contains("transaction"), "{err}");
    assert_eq!(
        conn.raw("SELECT username, password FROM subscriber WHERE domain = 'a'")
            .unwrap(),
        Some(vec![vec![s("tx"), s("p")]])
    );
    assert_eq!(conn.delete("subscriber", &[("domain", s("a"))]).unwrap(), 1);
    assert_eq!(
        conn.delete("subscriber", &[("username", s("bob"))])
            .unwrap(),
        1
    );
    assert_eq!(conn.delete("acc", &[]).unwrap(), 1);
    // The file holds it all: another connection (a restart) reads what was written.
    drop(conn);
    let again = open(&file);
    assert_eq!(
        again.query("subscriber", &["username"], &[]).unwrap(),
        vec![vec![s("o'neil")]]
    );
    assert!(again.query("acc", &["id"], &[]).unwrap().is_empty());
}

#[test]
fn a_file_that_cannot_be_used_is_refused_at_start_with_the_reason() {
    let d = dir("refused");
    // A directory that is a file: nothing can be created under it.
    let plain = d.join("plain");
    std::fs::write(&plain, "x").unwrap();
    let file = plain.join("opensips.db");
    let err = db::connect(&url(&file), &Options::default()).unwrap_err();
    assert!(matches!(err, DbError::Server { .. }), "{err}");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "the path is named: {err}"
    );
    // A file that is not a database.
    let junk = d.join("junk.db");
    std::fs::write(
        &junk,
        "this is not an SQLite file, only text, long enough ".repeat(20),
    )
    .unwrap();
    let err = db::connect(&url(&junk), &Options::default()).unwrap_err();
    assert!(err.to_string().contains("not a database"), "{err}");
    // A directory.
    let err = db::connect(&url(&d), &Options::default()).unwrap_err();
    assert!(err.to_string().contains(&d.display().to_string()), "{err}");
    // URLs without a file.
    for bad in ["sqlite://opensips.db", "sqlite:///"] {
        let err = db::connect(bad, &Options::default()).unwrap_err();
        assert!(matches!(err, DbError::BadUrl(_)), "{bad}: {err}");
    }
    // Extensions are native code: refused, and said so.
    let err = db::connect(
        &url(&d.join("ext.db")),
        &with(db::sqlite::Settings {
            extensions: vec!["/usr/lib/sqlite3/pcre.so".into()],
            ..Default::default()
        }),
    )
    .unwrap_err();
    assert!(err.to_string().contains("load_extension"), "{err}");
    assert!(!d.join("ext.db").exists(), "nothing created when refused");
}

#[test]
fn a_lock_held_past_busy_timeout_is_an_error_and_the_next_call_works() {
    let d = dir("busy");
    let file = d.join("opensips.db");
    let conn = db::connect(
        &url(&file),
        &with(db::sqlite::Settings {
            busy_timeout_ms: 200,
            ..Default::default()
        }),
    )
    .unwrap();
    conn.raw("CREATE TABLE version (table_name CHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL)")
        .unwrap();
    // Another process (an operator's sqlite3 shell) holds the database.
    let other = rusqlite::Connection::open(&file).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let err = conn
        .insert(
            "version",
            &[
                ("table_name", s("location")),
                ("table_version", Value::Int(1013)),
            ],
        )
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, DbError::Server { .. }) && !err.is_permanent(),
        "{err}"
    );
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(err.to_string().contains("busy_timeout 200 ms"), "{err}");
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    other.execute_batch("COMMIT").unwrap();
    conn.insert(
        "version",
        &[
            ("table_name", s("location")),
            ("table_version", Value::Int(1013)),
        ],
    )
    .unwrap();
    assert_eq!(db::table_version(conn.as_ref(), "location").unwrap(), 1013);
}

/// Writers and readers side by side, through two connections to one file (two modules with
/// the same db_url): no statement fails on a lock rsips' own connections hold, and a table
/// another connection has just made is found.
#[test]
fn several_threads_read_and_write_the_same_file() {
    let d = dir("threads");
    let file = d.join("opensips.db");
    let (one, two) = (open(&file), open(&file));
    // Both have read the (empty) schema; the tables come through one of them.
    one.raw(SCHEMA).unwrap();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let conn = if t % 2 == 0 { &one } else { &two };
            scope.spawn(move || {
                for i in 0..20 {
                    conn.insert(
                        "acc",
                        &[
                            ("callid", s(&format!("{t}-{i}"))),
                            ("time", Value::DateTime(i)),
                        ],
                    )
                    .unwrap();
                    assert!(!conn.query("acc", &["id"], &[]).unwrap().is_empty());
                    conn.update(
                        "acc",
                        &[("callid", s(&format!("{t}-{i}")))],
                        &[("duration", Value::Int(i))],
                    )
                    .unwrap();
                }
            });
        }
    });
    assert_eq!(two.query("acc", &["id"], &[]).unwrap().len(), 160);
    assert_eq!(
        one.raw("SELECT sum(duration) FROM acc").unwrap(),
        Some(vec![vec![Value::Int(8 * (0..20).sum::<i64>())]])
    );
}

#[test]
fn pragmas_run_on_each_connection_and_a_bad_one_does_not_stop_the_start() {
    let d = dir("pragma");
    let conn = db::connect(
        &url(&d.join("opensips.db")),
        &with(db::sqlite::Settings {
            pragmas: vec!["journal_mode=wal".into(), "this is ((not a pragma".into()],
            ..Default::default()
        }),
    )
    .unwrap();
    assert_eq!(
        conn.raw("PRAGMA journal_mode").unwrap(),
        Some(vec![vec![s("wal")]])
    );
}

#[test]
fn a_runaway_statement_is_interrupted() {
    let d = dir("runaway");
    let conn = open(&d.join("opensips.db"));
    let started = Instant::now();
    let err = conn
        .raw("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n")
        .unwrap_err();
    assert!(err.to_string().contains("interrupted"), "{err}");
    assert!(started.elapsed() < db::sqlite::TIMEOUT + Duration::from_secs(3));
    // The connection serves the next statement.
    assert_eq!(
        conn.raw("SELECT 1").unwrap(),
        Some(vec![vec![Value::Int(1)]])
    );
}

#[test]
fn a_file_broken_under_a_running_server_gives_errors_until_it_is_back() {
    let d = dir("outage");
    let file = d.join("opensips.db");
    let conn = open(&file);
    conn.raw(SCHEMA).unwrap();
    conn.insert("subscriber", &[("username", s("alice"))])
        .unwrap();
    let good = std::fs::read(&file).unwrap();
    // Overwritten in place with something else (a bad restore, a disk gone wrong).
    std::fs::write(&file, vec![b'x'; good.len()]).unwrap();
    for _ in 0..3 {
        let err = conn.query("subscriber", &["username"], &[]).unwrap_err();
        assert!(!err.is_permanent(), "{err}");
        assert!(err.to_string().contains("not a database"), "{err}");
    }
    // A table dropped while the server runs: the error names it.
    std::fs::write(&file, &good).unwrap();
    assert_eq!(
        conn.query("subscriber", &["username"], &[]).unwrap(),
        vec![vec![s("alice")]]
    );
    conn.raw("DROP TABLE subscriber").unwrap();
    let err = conn.query("subscriber", &["username"], &[]).unwrap_err();
    assert!(err.to_string().contains("no table \"subscriber\""), "{err}");
}
