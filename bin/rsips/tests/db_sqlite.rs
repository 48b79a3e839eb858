//! rsips on `db_sqlite` end to end, with the tables made as an operator following OpenSIPS'
//! SQLite schema (`scripts/sqlite/*-create.sql`) makes them: usrloc in SQL write-through
//! (a registration lands in the file, survives a restart, an unregistration removes it), the
//! stock dispatcher script with its sets in SQLite (MI state changes written to the file, a
//! SIPp call through, a table gone while running), permissions' `address` table, and the
//! refusals at start (a table missing, a path that cannot be opened).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Kill;
use db::{Connection, Value};

/// OpenSIPS' `version` table for SQLite.
const VERSION: &str = "CREATE TABLE version (table_name CHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_t_name_idx UNIQUE (table_name));\n";

/// usrloc's `location` (v1013) for SQLite.
const LOCATION: &str =
    "INSERT INTO version (table_name, table_version) VALUES ('location', '1013');
CREATE TABLE location (contact_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username CHAR(64) DEFAULT '' NOT NULL, domain CHAR(64) DEFAULT NULL, contact TEXT NOT NULL,
    received CHAR(255) DEFAULT NULL, path CHAR(255) DEFAULT NULL, expires INTEGER NOT NULL,
    q FLOAT(10,2) DEFAULT 1.0 NOT NULL, callid CHAR(255) DEFAULT 'Default-Call-ID' NOT NULL,
    cseq INTEGER DEFAULT 13 NOT NULL, last_modified DATETIME DEFAULT '1900-01-01 00:00:01' NOT NULL,
    flags INTEGER DEFAULT 0 NOT NULL, cflags CHAR(255) DEFAULT NULL,
    user_agent CHAR(255) DEFAULT '' NOT NULL, socket CHAR(64) DEFAULT NULL,
    methods INTEGER DEFAULT NULL, sip_instance CHAR(255) DEFAULT NULL,
    kv_store TEXT(512) DEFAULT NULL, attr CHAR(255) DEFAULT NULL);\n";

/// dispatcher's `dispatcher` (v9) for SQLite.
const DISPATCHER: &str =
    "INSERT INTO version (table_name, table_version) VALUES ('dispatcher', '9');
CREATE TABLE dispatcher (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    setid INTEGER DEFAULT 0 NOT NULL, destination CHAR(192) DEFAULT '' NOT NULL,
    socket CHAR(128) DEFAULT NULL, state INTEGER DEFAULT 0 NOT NULL,
    probe_mode INTEGER DEFAULT 0 NOT NULL, weight CHAR(64) DEFAULT 1 NOT NULL,
    priority INTEGER DEFAULT 0 NOT NULL, attrs CHAR(128) DEFAULT NULL,
    description CHAR(64) DEFAULT NULL);\n";

/// permissions' `address` (v5) for SQLite.
const ADDRESS: &str = "INSERT INTO version (table_name, table_version) VALUES ('address', '5');
CREATE TABLE address (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    grp SMALLINT(5) DEFAULT 0 NOT NULL, ip CHAR(50) NOT NULL, mask SMALLINT DEFAULT 32 NOT NULL,
    port SMALLINT(5) DEFAULT 0 NOT NULL, proto CHAR(4) DEFAULT 'any' NOT NULL,
    pattern CHAR(64) DEFAULT NULL, context_info CHAR(32) DEFAULT NULL);\n";

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rsips-sqlite-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The test's own view of the file (as an operator's `sqlite3` shell would see it).
fn database(file: &Path, schema: &str) -> Arc<dyn Connection> {
    let conn = db::connect(
        &format!("sqlite://{}", file.display()),
        &db::Options::default(),
    )
    .unwrap();
    if !schema.is_empty() {
        conn.raw(schema).unwrap();
    }
    conn
}

fn rows(conn: &dyn Connection, sql: &str) -> Vec<Vec<Value>> {
    conn.raw(sql).unwrap().unwrap()
}

struct Server {
    child: Kill,
    dir: PathBuf,
    port: u16,
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }
}

/// rsips in `dir` on the config `cfg` makes for its port and FIFO path.
fn start(dir: &Path, cfg: impl Fn(u16, &str) -> String) -> Server {
    let port = common::free_port();
    let fifo = dir.join("opensips_fifo");
    let text = cfg(port, fifo.to_str().unwrap());
    assert!(
        text.contains(&format!(":{port}")),
        "the test's port is in the config"
    );
    std::fs::write(dir.join("opensips.cfg"), text).unwrap();
    let ready = fifo.clone();
    let needs_fifo = std::fs::read_to_string(dir.join("opensips.cfg"))
        .unwrap()
        .contains("mi_fifo");
    let child = common::spawn_rsips(dir, "opensips.cfg", move |log| {
        log.contains("listening on udp:") && (!needs_fifo || ready.exists())
    });
    Server {
        child,
        dir: dir.to_owned(),
        port,
    }
}

/// A UDP endpoint of the test (a phone).
struct Phone {
    sock: UdpSocket,
    port: u16,
}

fn phone() -> Phone {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    Phone { sock, port }
}

impl Phone {
    fn send(&self, server: &Server, text: &str) {
        self.sock
            .send_to(text.as_bytes(), ("127.0.0.1", server.port))
            .unwrap();
    }

    /// The next message whose first line starts with `start`, within 5 s.
    fn recv(&self, start: &str, server: &Server) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 65535];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                if m.starts_with(start) {
                    return m;
                }
            }
        }
        panic!(
            "nothing starting with {start:?} within 5 s; log:\n{}",
            server.log()
        );
    }

    /// A request `method` to `user`@the server, with `extra` header lines.
    fn request(&self, server: &Server, method: &str, user: &str, call: &str, extra: &str) {
        self.send(
            server,
            &format!(
                "{method} sip:{user}@127.0.0.1:{sp} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:{pp};branch=z9hG4bK-{call}\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:{user}@127.0.0.1>;tag=t-{call}\r\n\
                 To: <sip:{user}@127.0.0.1>\r\n\
                 Call-ID: {call}\r\n\
                 CSeq: 1 {method}\r\n\
                 {extra}Content-Length: 0\r\n\r\n",
                sp = server.port,
                pp = self.port
            ),
        );
    }
}

/// usrloc in SQL write-through on a SQLite file: the registration is in the file at once (q
/// and last_modified as OpenSIPS writes them), a new rsips on the same file loads it and calls
/// reach the phone, an unregistration removes the row. The `db_sqlite` parameters reach the
/// driver (the file is in WAL mode after `exec_pragma`).
#[test]
fn registrations_survive_a_restart_in_sql_write_through() {
    let dir = test_dir("usrloc");
    let file = dir.join("opensips.db");
    let db = database(&file, &format!("{VERSION}{LOCATION}"));
    let url = format!("sqlite://{}", file.display());
    let cfg = |port: u16, _: &str| {
        format!(
            r#"socket=udp:127.0.0.1:{port}
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "db_sqlite.so"
modparam("db_sqlite", "busy_timeout", 2000)
modparam("db_sqlite", "exec_pragma", "journal_mode=wal")
loadmodule "usrloc.so"
modparam("usrloc", "working_mode_preset", "single-instance-sql-write-through")
modparam("usrloc", "db_url", "{url}")
loadmodule "registrar.so"
route {{
    if (is_method("REGISTER")) {{
        if (!save("location")) sl_reply_error();
        exit;
    }}
    if (!lookup("location")) {{ sl_send_reply(404, "Not Found"); exit; }}
    t_relay();
}}
"#
        )
    };
    let location = |db: &dyn Connection| {
        rows(
            db,
            "SELECT username, domain, contact, q, expires, last_modified FROM location",
        )
    };
    let wait_rows = |want: usize| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = location(db.as_ref());
            if now.len() == want {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "location table: {now:?}, want {want} rows"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let alice = phone();
    let contact = format!(
        "Contact: <sip:alice@127.0.0.1:{}>;q=0.5\r\nExpires: 300\r\n",
        alice.port
    );
    {
        let server = start(&dir, cfg);
        alice.request(&server, "REGISTER", "alice", "reg-sqlite", &contact);
        let ok = alice.recv("SIP/2.0 ", &server);
        assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
        let got = wait_rows(1);
        let row = &got[0];
        assert_eq!(row[0], Value::Str("alice".into()));
        assert_eq!(row[1], Value::Str("127.0.0.1".into()));
        assert_eq!(
            row[2],
            Value::Str(format!("sip:alice@127.0.0.1:{}", alice.port))
        );
        assert_eq!(row[3], Value::Double(0.5));
        let expires = row[4].as_int().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (now + 290..=now + 310).contains(&expires),
            "{expires} vs {now}"
        );
        let modified = row[5].as_text().unwrap();
        assert!(
            modified.len() == 19
                && modified.as_bytes()[10] == b' '
                && !modified.starts_with("1900"),
            "last_modified as a datetime: {modified}"
        );
        assert_eq!(
            rows(db.as_ref(), "PRAGMA journal_mode"),
            vec![vec![Value::Str("wal".into())]],
            "exec_pragma ran on rsips' connections"
        );
    }
    // A new rsips on the same file: alice is still registered, calls reach her.
    let mut server = start(&dir, cfg);
    assert!(
        server
            .log()
            .contains("1 contacts loaded from table location"),
        "{}",
        server.log()
    );
    let caller = phone();
    caller.request(&server, "INVITE", "alice", "call-after-restart", "");
    let got = alice.recv("INVITE ", &server);
    assert!(got.contains("Call-ID: call-after-restart"), "{got}");
    // Unregistering removes the row.
    let gone = format!(
        "Contact: <sip:alice@127.0.0.1:{}>\r\nExpires: 0\r\n",
        alice.port
    );
    alice.request(&server, "REGISTER", "alice", "reg-sqlite-2", &gone);
    let ok = alice.recv("SIP/2.0 200", &server);
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    wait_rows(0);
    let log = server.dir.join("rsips.log");
    server
        .child
        .terminate(|| std::fs::read_to_string(&log).unwrap_or_default());
}

/// `dispatcher:list` as JSON, through the real `opensips-cli`.
fn ds_list(server: &Server) -> serde_json::Value {
    let (ok, out) = common::opensips_cli(&server.dir.join("opensips_fifo"), &["dispatcher:list"]);
    assert!(ok, "{out}\n{}", server.log());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn ds_state(server: &Server, uri: &str) -> String {
    let l = ds_list(server);
    l["PARTITIONS"][0]["SETS"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["Destinations"].as_array().into_iter().flatten())
        .find(|d| d["URI"] == uri)
        .and_then(|d| d["state"].as_str())
        .unwrap_or_else(|| panic!("no {uri} in {l}"))
        .to_owned()
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// The stock load-balancer script as shipped but for its socket, FIFO and logging, with
/// `db_sqlite` where it loads `db_mysql`: the sets come from the SQLite file, a call goes
/// through, a state set over the MI is written to the file, and a table dropped while rsips
/// runs makes a reload fail with the reason while the loaded sets keep serving.
#[test]
fn the_stock_dispatcher_script_on_sqlite() {
    let dir = test_dir("dispatcher");
    let file = dir.join("opensips.db");
    let [uas_port] = common::free_ports();
    let db = database(
        &file,
        &format!(
            "{VERSION}{DISPATCHER}INSERT INTO dispatcher (setid, destination, description) VALUES \
             (1, 'sip:127.0.0.1:{uas_port}', 'sipp uas'), (1, 'sip:127.0.0.1:5999', 'it''s spare');"
        ),
    );
    let stock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../../shared/reference/opensips-configs/rendered/loadbalancer_dispatcher.cfg",
        ))
        .unwrap();
    let url = format!("sqlite://{}", file.display());
    let server = start(&dir, |port, fifo| {
        let text = stock
            .replace(
                "socket=udp:127.0.0.1:5060",
                &format!("socket=udp:127.0.0.1:{port}"),
            )
            .replace("/tmp/opensips_fifo", fifo)
            .replace("stderror_enabled=no", "stderror_enabled=yes")
            .replace("syslog_enabled=yes", "syslog_enabled=no")
            .replace("loadmodule \"db_mysql.so\"", "loadmodule \"db_sqlite.so\"")
            .replace("mysql://opensips:opensipsrw@localhost/opensips", &url);
        assert!(text.contains("loadmodule \"db_sqlite.so\"") && text.contains(&url));
        text
    });
    let uas_uri = format!("sip:127.0.0.1:{uas_port}");
    assert_eq!(ds_state(&server, &uas_uri), "Active");
    assert_eq!(ds_state(&server, "sip:127.0.0.1:5999"), "Active");
    // The spare gateway out of rotation: the call goes to SIPp.
    let fifo = dir.join("opensips_fifo");
    let (ok, out) = common::opensips_cli(
        &fifo,
        &["dispatcher:set_state", "i", "1", "sip:127.0.0.1:5999"],
    );
    assert!(ok, "{out}");
    assert_eq!(
        rows(
            db.as_ref(),
            "SELECT state FROM dispatcher WHERE destination = 'sip:127.0.0.1:5999'"
        ),
        vec![vec![Value::Int(1)]],
        "the state is written to the file"
    );
    let _uas = Kill(
        common::sipp()
            .arg("-sf")
            .arg(scenario("uas_answer.xml"))
            .args(["-i", "127.0.0.1", "-p", &uas_port.to_string()])
            .args(["-nostdin", "-timeout", "60s"])
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = common::sipp()
        .arg("-sf")
        .arg(scenario("uac_call.xml"))
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &common::free_port().to_string(),
            "-s",
            "gw",
        ])
        .arg(format!("127.0.0.1:{}", server.port))
        .args([
            "-m",
            "2",
            "-r",
            "5",
            "-timeout",
            "30s",
            "-timeout_error",
            "-nostdin",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sipp uac failed:\n{}\nrsips:\n{}",
        String::from_utf8_lossy(&out.stdout),
        server.log()
    );
    // The table goes away under the running server: a reload says why, the sets stay.
    db.raw("ALTER TABLE dispatcher RENAME TO dispatcher_old")
        .unwrap();
    let (ok, out) = common::opensips_cli(&fifo, &["dispatcher:reload"]);
    assert!(!ok && out.contains("ERROR Reloading data"), "{out}");
    assert!(
        server.log().contains("no table \"dispatcher\""),
        "the log names the table:\n{}",
        server.log()
    );
    assert_eq!(
        ds_state(&server, &uas_uri),
        "Active",
        "the loaded sets stay"
    );
    db.raw(
        "ALTER TABLE dispatcher_old RENAME TO dispatcher;\n\
         INSERT INTO dispatcher (setid, destination) VALUES (2, 'sip:127.0.0.1:5998');",
    )
    .unwrap();
    let (ok, out) = common::opensips_cli(&fifo, &["dispatcher:reload"]);
    assert!(ok, "{out}\n{}", server.log());
    assert_eq!(ds_state(&server, "sip:127.0.0.1:5998"), "Active");
    assert_eq!(ds_state(&server, "sip:127.0.0.1:5999"), "Inactive");
}

/// permissions' `address` table read from SQLite at start: the test's own address is in
/// group 1 (a /32), group 2 is a subnet it is not in.
#[test]
fn permissions_addresses_from_sqlite() {
    let dir = test_dir("permissions");
    let file = dir.join("opensips.db");
    database(
        &file,
        &format!(
            "{VERSION}{ADDRESS}INSERT INTO address (grp, ip, mask, port, proto, context_info) VALUES \
             (1, '127.0.0.1', 32, 0, 'any', 'local'), (2, '10.0.0.0', 8, 0, 'udp', NULL);"
        ),
    );
    let url = format!("sqlite://{}", file.display());
    let server = start(&dir, |port, _| {
        format!(
            r#"socket=udp:127.0.0.1:{port}
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "db_sqlite.so"
loadmodule "permissions.so"
modparam("permissions", "db_url", "{url}")
route {{
    if ($rU == "g1" && check_source_address(1, $var(ctx))) {{
        sl_send_reply(200, "In group 1 $var(ctx)");
        exit;
    }}
    if ($rU == "g2" && check_source_address(2)) {{
        sl_send_reply(200, "In group 2");
        exit;
    }}
    sl_send_reply(403, "Not in the group");
}}
"#
        )
    });
    assert!(
        server.log().contains("2 addresses loaded"),
        "{}",
        server.log()
    );
    let p = phone();
    p.request(&server, "OPTIONS", "g1", "perm-1", "");
    let r = p.recv("SIP/2.0 ", &server);
    assert!(r.starts_with("SIP/2.0 200 In group 1 local"), "{r}");
    p.request(&server, "OPTIONS", "g2", "perm-2", "");
    let r = p.recv("SIP/2.0 ", &server);
    assert!(r.starts_with("SIP/2.0 403"), "{r}");
}

/// What stops the start: a table the module needs is not in the file, the file cannot be
/// opened, the driver module is not loaded. Each names its reason.
#[test]
fn a_database_that_cannot_serve_stops_the_start_with_the_reason() {
    let dir = test_dir("refused");
    let file = dir.join("opensips.db");
    database(&file, VERSION);
    let cfg = |url: &str, driver: &str| {
        format!(
            r#"socket=udp:127.0.0.1:PORT
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
{driver}
loadmodule "dispatcher.so"
modparam("dispatcher", "db_url", "{url}")
route {{ sl_send_reply(200, "OK"); }}
"#
        )
    };
    let url = format!("sqlite://{}", file.display());
    let err = common::refused_start("sqlite-nodisp", &cfg(&url, "loadmodule \"db_sqlite.so\""));
    assert!(err.contains("dispatcher"), "{err}");
    assert!(err.contains("version"), "the version check fails: {err}");
    // A path under a regular file cannot be opened.
    let bad = format!("sqlite://{}/opensips.db", file.display());
    let err = common::refused_start("sqlite-badpath", &cfg(&bad, "loadmodule \"db_sqlite.so\""));
    assert!(
        err.contains(&format!("{}/opensips.db", file.display())),
        "{err}"
    );
    let err = common::refused_start("sqlite-nodriver", &cfg(&url, ""));
    assert!(err.contains("needs loadmodule \"db_sqlite.so\""), "{err}");
}

/// auth_db's `subscriber` (v8), acc's `acc` (v7) and `missed_calls` (v5) for SQLite.
const AUTH_ACC: &str = "INSERT INTO version (table_name, table_version) VALUES ('subscriber', '8');
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
CREATE INDEX acc_callid_idx ON acc (callid);
INSERT INTO version (table_name, table_version) VALUES ('missed_calls', '5');
CREATE TABLE missed_calls (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    method CHAR(16) DEFAULT '' NOT NULL, from_tag CHAR(64) DEFAULT '' NOT NULL,
    to_tag CHAR(64) DEFAULT '' NOT NULL, callid CHAR(64) DEFAULT '' NOT NULL,
    sip_code CHAR(3) DEFAULT '' NOT NULL, sip_reason CHAR(32) DEFAULT '' NOT NULL,
    time DATETIME NOT NULL, setuptime INTEGER DEFAULT 0 NOT NULL,
    created DATETIME DEFAULT NULL);\n";

/// One SQLite file for auth_db, acc and sqlops: sipsak registers after the challenge (its
/// credentials checked against `subscriber`), the registration is accounted in `acc` with
/// its time as OpenSIPS writes a datetime, wrong credentials are refused, and `sql_query`
/// reads the accounting back into the script.
#[test]
fn auth_db_acc_and_sqlops_share_one_file() {
    let dir = test_dir("auth-acc");
    let file = dir.join("opensips.db");
    let db = database(
        &file,
        &format!(
            "{VERSION}{AUTH_ACC}INSERT INTO subscriber (username, domain, password, ha1) VALUES \
             ('alice', 'example.com', 'secret', '{}');",
            common::md5_hex("alice:example.com:secret")
        ),
    );
    let url = format!("sqlite://{}", file.display());
    let server = start(&dir, |port, _| {
        format!(
            r#"socket=udp:127.0.0.1:{port}
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "signaling.so"
loadmodule "sipmsgops.so"
loadmodule "tm.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "db_sqlite.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
modparam("auth_db", "db_url", "{url}")
loadmodule "acc.so"
modparam("acc", "db_url", "{url}")
loadmodule "sqlops.so"
modparam("sqlops", "db_url", "{url}")
route {{
    if (is_method("REGISTER")) {{
        if (!www_authorize("example.com", "subscriber")) {{
            www_challenge("example.com", "auth");
            exit;
        }}
        consume_credentials();
        acc_db_request("200 Registered", "acc");
        if (!save("location")) sl_reply_error();
        exit;
    }}
    if ($hdr(X-Replace) != NULL) {{
        # REPLACE on SQLite too: the row with the same unique key goes first.
        sql_replace("version", "{{\"table_name\": \"scratch\", \"table_version\": 7}}");
        sql_replace("version", "{{\"table_name\": \"scratch\", \"table_version\": 8}}");
        sql_query("SELECT count(*), max(table_version) FROM version WHERE table_name = 'scratch'", "$avp(n);$avp(v)");
        append_to_reply("X-Replaced: $avp(n) $avp(v)\r\n");
        sl_send_reply(200, "Replaced");
        exit;
    }}
    if (sql_query("SELECT count(*), max(sip_reason) FROM acc WHERE method = 'REGISTER'", "$avp(n);$avp(why)")) {{
        append_to_reply("X-Accounted: $avp(n) $avp(why)\r\n");
        sl_send_reply(200, "OK");
        exit;
    }}
    sl_send_reply(500, "No query");
}}
"#
        )
    });
    let sipsak = |user: &str, password: &str| {
        let out = common::installed("sipsak", "-V", "apt-get install sipsak")
            .args(["-U", "-i", "-H", "127.0.0.1", "-x", "60", "-vvv"])
            .arg("-C")
            .arg(format!("sip:{user}@127.0.0.1:17999"))
            .arg("-s")
            .arg(format!("sip:{user}@127.0.0.1:{}", server.port))
            .args(["-u", user, "-a", password])
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}\nrsips:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                server.log()
            ),
        )
    };
    let (ok, out) = sipsak("alice", "secret");
    assert!(ok && out.contains("SIP/2.0 401 Unauthorized"), "{out}");
    let (ok, out) = sipsak("alice", "wrong");
    assert!(!ok, "{out}");
    // acc may write from a queue: the row within 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    let acc = loop {
        let acc = rows(
            db.as_ref(),
            "SELECT method, sip_code, sip_reason, time, strftime('%s', time, 'utc') FROM acc",
        );
        if !acc.is_empty() || Instant::now() > deadline {
            break acc;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        acc.len(),
        1,
        "only the authorised REGISTER is accounted: {acc:?}"
    );
    assert_eq!(
        acc[0][..3],
        [
            Value::Str("REGISTER".into()),
            Value::Str("200".into()),
            Value::Str("Registered".into())
        ]
    );
    let time = acc[0][3].as_text().unwrap();
    assert!(time.len() == 19 && time.as_bytes()[10] == b' ', "{time}");
    let at = acc[0][4].as_int().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - 30..=now).contains(&at),
        "accounted at {at}, now {now}"
    );
    let p = phone();
    p.request(&server, "OPTIONS", "q", "sqlops-1", "");
    let r = p.recv("SIP/2.0 ", &server);
    assert!(r.contains("X-Accounted: 1 Registered"), "{r}");
    p.request(&server, "OPTIONS", "q", "sqlops-2", "X-Replace: 1\r\n");
    let r = p.recv("SIP/2.0 ", &server);
    assert!(r.contains("X-Replaced: 1 8"), "{r}");
}
