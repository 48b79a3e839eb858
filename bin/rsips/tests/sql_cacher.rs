//! sql_cacher end to end, on db_text and on SQLite: `$sql_cached_value` with static and
//! dynamic names (integer and string columns, NULL for a missing key or a NULL column), full
//! caching (a change in the database seen only after MI `sql_cacher:reload` or the periodic
//! reload once the rows expire), on-demand caching (a key read from the database once, then
//! from memory until its expiry or a reload), `sql_cache_dump`, MI reload of a table, of a
//! key and of an on-demand entry (with the real opensips-cli, new and legacy names), a
//! database outage (errors said, the cached rows still served), and bad specs refused at
//! start.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Peer, Rsips};
use db::Connection;

/// The route answers with what the caches hold for the From user as key: the entry (X-Id), a
/// string column (X-Str) and an integer column (X-Int) named by the request, all three
/// given to `$sql_cached_value` as variables; X-Int is the value + 1, so an integer reads 8
/// where a string would read "71". X-Dump asks for `sql_cache_dump` of three columns.
const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
udp_workers=2
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "DRIVER.so"
loadmodule "cachedb_local.so"
loadmodule "sql_cacher.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
MODPARAMS
route {
    $var(id) = $hdr(X-Id);
    $var(sc) = $hdr(X-Str);
    $var(ic) = $hdr(X-Int);
    if ($sql_cached_value($var(id):$var(sc):$fU) == NULL) {
        append_to_reply("X-Str: none\r\n");
    } else {
        append_to_reply("X-Str: $sql_cached_value($var(id):$var(sc):$fU)\r\n");
    }
    if ($sql_cached_value($var(id):$var(ic):$fU) == NULL) {
        append_to_reply("X-Int: none\r\n");
    } else {
        $var(n) = $sql_cached_value($var(id):$var(ic):$fU) + 1;
        append_to_reply("X-Int: $var(n)\r\n");
    }
    append_to_reply("X-Static: $sql_cached_value(cnam:name:alice)\r\n");
    if (is_present_hf("X-Dump")) {
        $var(n) = sql_cache_dump("$var(id)", "$hdr(X-Dump)", "$avp(k),$avp(s),$avp(i)");
        $var(d) = "";
        $var(j) = 0;
        while ($var(j) < $var(n)) {
            $var(d) = $var(d) + "|" + $(avp(k)[$var(j)]) + "=" + $(avp(s)[$var(j)]) + "/" + $(avp(i)[$var(j)]);
            $var(j) = $var(j) + 1;
        }
        append_to_reply("X-Dump: $var(n)$var(d)\r\n");
    }
    sl_send_reply(200, "OK");
}
"#;

fn config(port: u16, dir: &Path, driver: &str, modparams: &str) -> String {
    CONFIG
        .replace("PORT", &port.to_string())
        .replace("FIFO", &Rsips::fifo(dir))
        .replace("DRIVER", driver)
        .replace("MODPARAMS", modparams)
}

/// A full-caching entry's `cache_table`, then the optional fields.
fn entry(id: &str, url: &str, table: &str, key: &str, rest: &str) -> String {
    format!(
        "modparam(\"sql_cacher\", \"cache_table\", \"id={id}\ndb_url={url}\ncachedb_url=local://\ntable={table}\nkey={key}{rest}\")\n"
    )
}

struct Ask<'a> {
    peer: &'a Peer,
    port: u16,
    n: std::cell::Cell<u32>,
}

impl Ask<'_> {
    /// (X-Str, X-Int, X-Static) for `user` in entry `id` with these columns.
    fn read(&self, id: &str, user: &str, cols: (&str, &str)) -> (String, String, String) {
        let r = self.send(id, user, cols, "");
        let h = |n: &str| {
            common::header(&r, n)
                .first()
                .copied()
                .unwrap_or("")
                .to_owned()
        };
        (h("X-Str"), h("X-Int"), h("X-Static"))
    }

    /// `sql_cache_dump` of `cols`: (returned count, its rows sorted).
    fn dump(&self, id: &str, cols: &str) -> (String, Vec<String>) {
        let r = self.send(id, "nobody", ("x", "y"), &format!("X-Dump: {cols}\r\n"));
        let line = common::header(&r, "X-Dump")
            .first()
            .copied()
            .unwrap()
            .to_owned();
        let mut parts: Vec<String> = line.split('|').map(str::to_owned).collect();
        let n = parts.remove(0);
        parts.sort();
        (n, parts)
    }

    fn send(&self, id: &str, user: &str, cols: (&str, &str), extra: &str) -> String {
        let n = self.n.get() + 1;
        self.n.set(n);
        let (port, me) = (self.port, self.peer.port);
        self.peer.send(
            port,
            &format!(
                "OPTIONS sip:cache@127.0.0.1:{port} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-sqlc-{n}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@example.com>;tag=f{n}\r\n\
                 To: <sip:cache@127.0.0.1>\r\nCall-ID: sqlc-{n}-{port}\r\nCSeq: 1 OPTIONS\r\n\
                 X-Id: {id}\r\nX-Str: {}\r\nX-Int: {}\r\n{extra}Content-Length: 0\r\n\r\n",
                cols.0, cols.1
            ),
        );
        let r = self.peer.recv("reply");
        assert!(r.starts_with("SIP/2.0 200 "), "{r}");
        r
    }
}

fn s(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.to_owned(), b.to_owned(), c.to_owned())
}

fn write_cnam(db: &Path, rows: &str) {
    std::fs::write(
        db.join("cnam"),
        format!("caller(string) name(string,null) score(int,null)\n{rows}"),
    )
    .unwrap();
}

const NS: (&str, &str) = ("name", "score");

#[test]
fn db_text_full_and_on_demand_caching_with_mi_reloads() {
    let dir = common::test_dir("sqlc", "text");
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    write_cnam(&db, "alice:Alice:7\nbob:Bob:\n");
    let url = format!("text://{}", db.display());
    let port = common::free_port();
    let modparams = format!(
        "modparam(\"db_text\", \"db_mode\", 1)\n{}{}",
        entry(
            "cnam",
            &url,
            "cnam",
            "caller",
            "\ncolumns=caller name score"
        ),
        entry(
            "cnam_od",
            &url,
            "cnam",
            "caller",
            "\ncolumns=name score\non_demand=1"
        ),
    );
    let rs = Rsips::start(&dir, &config(port, &dir, "db_text", &modparams));
    let peer = Peer::new();
    let ask = Ask {
        peer: &peer,
        port,
        n: Default::default(),
    };

    // Full caching: string and integer columns, a NULL column, a key the table lacks.
    assert_eq!(ask.read("cnam", "alice", NS), s("Alice", "8", "Alice"));
    assert_eq!(ask.read("cnam", "bob", NS), s("Bob", "none", "Alice"));
    assert_eq!(ask.read("cnam", "carol", NS), s("none", "none", "Alice"));
    // An unknown column or entry reads NULL.
    assert_eq!(ask.read("cnam", "alice", ("nick", "age")).0, "none");
    assert_eq!(ask.read("nope", "alice", NS).0, "none");
    assert_eq!(
        ask.dump("cnam", "caller,name,score"),
        (
            "2".into(),
            vec!["alice=Alice/7".into(), "bob=Bob/<null>".into()]
        )
    );
    // On demand: alice read from the table now, dave found missing (and remembered so).
    assert_eq!(ask.read("cnam_od", "alice", NS), s("Alice", "8", "Alice"));
    assert_eq!(ask.read("cnam_od", "dave", NS), s("none", "none", "Alice"));
    assert_eq!(
        ask.dump("cnam_od", "name,score,name"),
        ("1".into(), vec!["Alice=7/Alice".into()])
    );

    // The table changes: nothing cached sees it yet.
    write_cnam(
        &db,
        "alice:Alicia:70\nbob:Bob:\ncarol:Carol:3\ndave:Dave:1\n",
    );
    assert_eq!(ask.read("cnam", "alice", NS), s("Alice", "8", "Alice"));
    assert_eq!(ask.read("cnam", "carol", NS), s("none", "none", "Alice"));
    assert_eq!(ask.read("cnam_od", "alice", NS), s("Alice", "8", "Alice"));
    assert_eq!(ask.read("cnam_od", "dave", NS), s("none", "none", "Alice"));

    // The whole table again.
    assert_eq!(rs.mi(&["sql_cacher:reload", "cnam"]), "OK");
    assert_eq!(ask.read("cnam", "alice", NS), s("Alicia", "71", "Alicia"));
    assert_eq!(ask.read("cnam", "carol", NS), s("Carol", "4", "Alicia"));
    // One on-demand key (legacy name), the others stay as cached.
    assert_eq!(rs.mi(&["sql_cacher_reload", "cnam_od", "dave"]), "OK");
    assert_eq!(ask.read("cnam_od", "dave", NS), s("Dave", "2", "Alicia"));
    assert_eq!(ask.read("cnam_od", "alice", NS), s("Alice", "8", "Alicia"));
    // Every on-demand key dropped: read again when asked for.
    assert_eq!(rs.mi(&["sql_cacher:reload", "cnam_od"]), "OK");
    assert_eq!(
        ask.read("cnam_od", "alice", NS),
        s("Alicia", "71", "Alicia")
    );

    // One key of a fully cached table; a key the table no longer has is reported and gone.
    write_cnam(&db, "alice:Alice II:5\ncarol:Caroline:9\ndave:Dave:1\n");
    assert_eq!(rs.mi(&["sql_cacher:reload", "cnam", "alice"]), "OK");
    assert_eq!(
        ask.read("cnam", "alice", NS),
        s("Alice II", "6", "Alice II")
    );
    assert_eq!(ask.read("cnam", "carol", NS), s("Carol", "4", "Alice II"));
    let err = rs.mi_error(&["sql_cacher:reload", "cnam", "bob"]);
    assert!(err.contains("key not found"), "{err}");
    assert_eq!(ask.read("cnam", "bob", NS), s("none", "none", "Alice II"));
    let err = rs.mi_error(&["sql_cacher:reload", "nope"]);
    assert!(err.contains("Cache entry not found"), "{err}");
    assert_eq!(
        ask.dump("cnam", "caller,name,score"),
        (
            "3".into(),
            vec![
                "alice=Alice II/5".into(),
                "carol=Carol/3".into(),
                "dave=Dave/1".into()
            ]
        )
    );
}

/// The test's own connection to the SQLite file (as an operator's `sqlite3` shell).
fn sqlite(file: &Path) -> Arc<dyn Connection> {
    db::connect(
        &format!("sqlite://{}", file.display()),
        &db::Options::default(),
    )
    .unwrap()
}

fn sql(conn: &dyn Connection, statement: &str) {
    conn.raw(statement).unwrap();
}

fn sqlite_db(dir: &Path) -> (String, Arc<dyn Connection>) {
    let file = dir.join("cache.sqlite");
    let conn = sqlite(&file);
    sql(
        &*conn,
        "CREATE TABLE cnam (caller TEXT PRIMARY KEY, name TEXT, score INTEGER);
         INSERT INTO cnam VALUES ('alice', 'Alice', 7), ('bob', 'Bob', NULL);
         CREATE TABLE rates (id INTEGER PRIMARY KEY, prefix TEXT, price INTEGER);
         INSERT INTO rates VALUES (1, '+49', 12), (2, '+33', 20);",
    );
    (format!("sqlite://{}", file.display()), conn)
}

/// Polls `f` until it returns `want` (8 s at most); how long that took.
fn until<T: PartialEq + std::fmt::Debug>(want: T, f: impl Fn() -> T) -> Duration {
    let start = Instant::now();
    loop {
        let got = f();
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "still {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sqlite_rows_change_only_at_the_reload_or_the_expiry() {
    let dir = common::test_dir("sqlc", "sqlite");
    let (url, conn) = sqlite_db(&dir);
    let port = common::free_port();
    // Full caching of every column (none named), reloaded every 3 - 1 = 2 s; rates on
    // demand by an integer key, kept 2 s.
    let modparams = format!(
        "modparam(\"sql_cacher\", \"full_caching_expire\", 3)\n\
         modparam(\"sql_cacher\", \"reload_interval\", 1)\n{}{}",
        entry("cnam", &url, "cnam", "caller", ""),
        entry(
            "rates",
            &url,
            "rates",
            "id",
            "\nkey_type=int\ncolumns=prefix price\non_demand=1\nexpire=2"
        ),
    );
    let rs = Rsips::start(&dir, &config(port, &dir, "db_sqlite", &modparams));
    let peer = Peer::new();
    let ask = Ask {
        peer: &peer,
        port,
        n: Default::default(),
    };
    const PP: (&str, &str) = ("prefix", "price");
    assert_eq!(ask.read("cnam", "alice", NS), s("Alice", "8", "Alice"));
    assert_eq!(ask.read("cnam", "bob", NS), s("Bob", "none", "Alice"));
    assert_eq!(ask.read("cnam", "bob", ("caller", "caller")).0, "bob");
    assert_eq!(ask.read("rates", "1", PP), s("+49", "13", "Alice"));
    assert_eq!(ask.read("rates", "9", PP), s("none", "none", "Alice"));
    assert_eq!(
        ask.dump("cnam", "caller,name,score"),
        (
            "2".into(),
            vec!["alice=Alice/7".into(), "bob=Bob/<null>".into()]
        )
    );

    sql(
        &*conn,
        "UPDATE cnam SET name = 'Alicia' WHERE caller = 'alice';
         UPDATE rates SET price = 14 WHERE id = 1;
         INSERT INTO rates VALUES (9, '+1', 1);",
    );
    let changed = Instant::now();
    // Right after the change the caches answer as before: the on-demand row was read once.
    assert_eq!(ask.read("cnam", "alice", NS), s("Alice", "8", "Alice"));
    assert_eq!(ask.read("rates", "1", PP), s("+49", "13", "Alice"));
    assert_eq!(ask.read("rates", "9", PP), s("none", "none", "Alice"));
    // Then the periodic reload and the on-demand expiry bring the new rows.
    until("Alicia".to_owned(), || ask.read("cnam", "alice", NS).0);
    until("15".to_owned(), || ask.read("rates", "1", PP).1);
    until("+1".to_owned(), || ask.read("rates", "9", PP).0);
    assert!(changed.elapsed() > Duration::from_millis(900));
    assert_eq!(ask.read("rates", "2", PP), s("+33", "21", "Alicia"));
    assert_eq!(
        ask.dump("rates", "prefix,price,prefix"),
        (
            "3".into(),
            vec!["+1=1/+1".into(), "+33=20/+33".into(), "+49=14/+49".into()]
        )
    );

    // With the table gone the periodic reload fails and says so; the rows read before are
    // served until they expire, full_caching_expire (3 s) after their last reload.
    sql(&*conn, "ALTER TABLE cnam RENAME TO cnam_away");
    let gone = Instant::now();
    assert_eq!(ask.read("cnam", "alice", NS).0, "Alicia");
    let log = rs.wait_log("cannot reload table cnam of entry cnam");
    assert!(
        log.contains("ERROR:sql_cacher: cannot reload table cnam of entry cnam: no table \"cnam\""),
        "{log}"
    );
    assert_eq!(ask.read("cnam", "alice", NS).0, "Alicia");
    until("none".to_owned(), || ask.read("cnam", "alice", NS).0);
    assert!(gone.elapsed() > Duration::from_millis(900));
}

#[test]
fn a_database_outage_is_reported_and_the_cache_keeps_serving() {
    let dir = common::test_dir("sqlc", "outage");
    let (url, conn) = sqlite_db(&dir);
    let port = common::free_port();
    let modparams = format!(
        "{}{}",
        entry("cnam", &url, "cnam", "caller", "\ncolumns=name score"),
        entry(
            "cnam_od",
            &url,
            "cnam",
            "caller",
            "\ncolumns=name score\non_demand=1"
        ),
    );
    let rs = Rsips::start(&dir, &config(port, &dir, "db_sqlite", &modparams));
    let peer = Peer::new();
    let ask = Ask {
        peer: &peer,
        port,
        n: Default::default(),
    };
    assert_eq!(ask.read("cnam", "alice", NS), s("Alice", "8", "Alice"));
    assert_eq!(ask.read("cnam_od", "alice", NS), s("Alice", "8", "Alice"));

    // The table goes away under the server.
    sql(&*conn, "ALTER TABLE cnam RENAME TO cnam_away");
    assert_eq!(ask.read("cnam", "alice", NS), s("Alice", "8", "Alice"));
    assert_eq!(ask.read("cnam_od", "alice", NS), s("Alice", "8", "Alice"));
    assert_eq!(ask.read("cnam_od", "bob", NS), s("none", "none", "Alice"));
    let log = rs.wait_log("cannot load key bob");
    assert!(
        log.contains("ERROR:sql_cacher: cannot load key bob of entry cnam_od: no table \"cnam\""),
        "{log}"
    );
    let err = rs.mi_error(&["sql_cacher:reload", "cnam"]);
    assert!(
        err.contains("ERROR Reloading SQL database") && err.contains("no table"),
        "{err}"
    );
    let err = rs.mi_error(&["sql_cacher:reload", "cnam_od", "bob"]);
    assert!(
        err.contains("ERROR Reloading key from SQL database"),
        "{err}"
    );
    // A failed reload keeps the rows read before.
    assert_eq!(ask.read("cnam", "alice", NS), s("Alice", "8", "Alice"));
    assert_eq!(ask.read("cnam", "bob", NS), s("Bob", "none", "Alice"));

    // Back: a reload works again, and bob is read on demand.
    sql(
        &*conn,
        "ALTER TABLE cnam_away RENAME TO cnam; UPDATE cnam SET score = 1 WHERE caller = 'bob'",
    );
    assert_eq!(rs.mi(&["sql_cacher:reload", "cnam"]), "OK");
    assert_eq!(ask.read("cnam", "bob", NS), s("Bob", "2", "Alice"));
    assert_eq!(ask.read("cnam_od", "bob", NS), s("Bob", "2", "Alice"));
}

#[test]
fn bad_specs_stop_the_start() {
    let dir = common::test_dir("sqlc", "bad");
    let (url, _conn) = sqlite_db(&dir);
    let refused = |name: &str, modparams: &str| {
        common::refused_start(
            name,
            &CONFIG
                .replace("FIFO", &Rsips::fifo(&dir))
                .replace("DRIVER", "db_sqlite")
                .replace("MODPARAMS", modparams),
        )
    };
    // No key field.
    let err = refused(
        "sqlc-nokey",
        &format!(
            "modparam(\"sql_cacher\", \"cache_table\", \"id=c\ndb_url={url}\ncachedb_url=local://\ntable=cnam\")"
        ),
    );
    assert!(
        err.contains("sql_cacher: invalid cache_table: cache entry `c`: expected `key=`"),
        "{err}"
    );
    // A column the table does not have.
    let err = refused(
        "sqlc-column",
        &entry("c", &url, "cnam", "caller", "\ncolumns=name nick"),
    );
    assert!(
        err.contains("sql_cacher: cache entry `c`: the test query on table cnam failed")
            && err.contains("nick"),
        "{err}"
    );
    // A table the database does not have.
    let err = refused("sqlc-table", &entry("c", &url, "nope", "caller", ""));
    assert!(
        err.contains("sql_cacher: cache entry `c`") && err.contains("nope"),
        "{err}"
    );
    // A cache engine rsips does not keep sql_cacher's rows in.
    let err = refused(
        "sqlc-redis",
        &entry("c", &url, "cnam", "caller", "").replace("local://", "redis://127.0.0.1:6379/"),
    );
    assert!(err.contains("takes only the local cachedb engine"), "{err}");
    // An unknown option.
    let err = refused(
        "sqlc-opt",
        &entry("c", &url, "cnam", "caller", "\ncolour=red"),
    );
    assert!(
        err.contains("unknown or misplaced parameter `colour=red`"),
        "{err}"
    );
    // The PV without the module.
    let err = common::refused_start(
        "sqlc-nomod",
        &CONFIG
            .replace("loadmodule \"sql_cacher.so\"", "")
            .replace("FIFO", &Rsips::fifo(&dir))
            .replace("DRIVER", "db_sqlite")
            .replace("MODPARAMS", ""),
    );
    assert!(err.contains("provided by module `sql_cacher`"), "{err}");
}
