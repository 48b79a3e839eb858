//! The stock OpenSIPS load-balancer script (`loadbalancer_dispatcher.cfg`, the dispatcher
//! variant of the loadbalancer template) run by rsips end to end with its MySQL table swapped
//! for a db_text one, as the seed's gateway setup does: SIPp calls spread over the gateways,
//! failing over from a dead one, probing taking it out and bringing it back, the table
//! reloaded and the states written back through the real `opensips-cli`, and a table that
//! cannot be read stopping the start.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Kill;

const HEADER: &str = "id(int,auto) setid(int) destination(string) socket(string,null) state(int) \
probe_mode(int) weight(string) priority(int) attrs(string,null) description(string,null)\n";

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

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rsips-ds-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("db")).unwrap();
    dir
}

/// The dispatcher table (`rows` after the header) and the version table.
fn write_tables(dir: &Path, rows: &str) {
    std::fs::write(dir.join("db/dispatcher"), format!("{HEADER}{rows}")).unwrap();
    std::fs::write(
        dir.join("db/version"),
        "table_name(str) table_version(int)\ndispatcher:9\n",
    )
    .unwrap();
}

/// The stock script on the test's port, FIFO and table; `edit` makes the test's own changes.
fn stock_config(dir: &Path, port: u16, edit: impl Fn(String) -> String) -> String {
    let stock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../../shared/reference/opensips-configs/rendered/loadbalancer_dispatcher.cfg",
        ))
        .unwrap();
    let text = stock
        .replace(
            "socket=udp:127.0.0.1:5060",
            &format!("socket=udp:127.0.0.1:{port}"),
        )
        .replace(
            "/tmp/opensips_fifo",
            dir.join("opensips_fifo").to_str().unwrap(),
        )
        .replace("stderror_enabled=no", "stderror_enabled=yes")
        .replace("syslog_enabled=yes", "syslog_enabled=no")
        .replace("loadmodule \"db_mysql.so\"", "loadmodule \"db_text.so\"")
        .replace("loadmodule \"sqlops.so\"\n", "")
        .replace(
            "mysql://opensips:opensipsrw@localhost/opensips",
            &format!("text://{}", dir.join("db").display()),
        );
    let text = edit(text);
    assert!(text.contains(&format!(":{port}")));
    text
}

fn start(dir: &Path, edit: impl Fn(String) -> String) -> Server {
    let port = common::free_port();
    std::fs::write(dir.join("opensips.cfg"), stock_config(dir, port, edit)).unwrap();
    let fifo = dir.join("opensips_fifo");
    let child = common::spawn_rsips(dir, "opensips.cfg", move |log| {
        log.contains("listening on udp:") && fifo.exists()
    });
    Server {
        child,
        dir: dir.to_owned(),
        port,
    }
}

/// `opensips-cli -x mi …` over the script's FIFO: (succeeded, what it printed).
fn cli(server: &Server, args: &[&str]) -> (bool, String) {
    common::opensips_cli(&server.dir.join("opensips_fifo"), args)
}

/// `dispatcher:list` as JSON.
fn list(server: &Server) -> serde_json::Value {
    let (ok, out) = cli(server, &["dispatcher:list"]);
    assert!(ok, "{out}\n{}", server.log());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The state of destination `uri` in set 1, as the MI lists it.
fn state_of(server: &Server, uri: &str) -> String {
    let l = list(server);
    l["PARTITIONS"][0]["SETS"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == 1)
        .and_then(|s| {
            s["Destinations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["URI"] == uri)
        })
        .map_or_else(
            || format!("absent from {l}"),
            |d| d["state"].as_str().unwrap().to_owned(),
        )
}

/// Waits (20 s at most) until `uri` is in `state`.
fn wait_for_state(server: &Server, uri: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = state_of(server, uri);
        if now == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{uri} still {now}, not {state}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// SIPp calls (tests/sipp/uac_call.xml: the BYE follows the Record-Route): `calls` calls at
/// `rate`/s to the server; fails the test on any failed call.
fn sipp_calls(server: &Server, calls: u32, rate: u32) {
    let port = common::free_port();
    let out = common::sipp()
        .arg("-sf")
        .arg(scenario("uac_call.xml"))
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-s", "gw"])
        .arg(format!("127.0.0.1:{}", server.port))
        .args(["-m", &calls.to_string(), "-r", &rate.to_string()])
        .args(["-timeout", "60s", "-timeout_error", "-nostdin"])
        .current_dir(&server.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sipp uac failed ({:?}):\n{}\nrsips:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        server.log()
    );
}

fn sipp_uas(dir: &Path, port: u16) -> Kill {
    Kill(
        common::sipp()
            .arg("-sf")
            .arg(scenario("uas_answer.xml"))
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-nostdin", "-timeout", "120s"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// A gateway that only answers OPTIONS with 200, from a thread, while `up` holds.
fn options_responder(sock: UdpSocket, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let req = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !req.starts_with("OPTIONS ") {
            continue;
        }
        let mut reply = String::from("SIP/2.0 200 OK\r\n");
        for l in req.lines() {
            let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
            if ["via", "from", "call-id", "cseq"].contains(&name.as_str()) {
                reply.push_str(l);
                reply.push_str("\r\n");
            } else if name == "to" {
                reply.push_str(l);
                reply.push_str(";tag=gw\r\n");
            }
        }
        reply.push_str("Content-Length: 0\r\n\r\n");
        let _ = sock.send_to(reply.as_bytes(), from);
    }
}

#[test]
fn calls_fail_over_from_a_dead_gateway_and_probing_takes_it_out_and_back() {
    let dir = test_dir("failover");
    let [dead_port, uas_port] = common::free_ports();
    let (dead, live) = (
        format!("sip:127.0.0.1:{dead_port}"),
        format!("sip:127.0.0.1:{uas_port}"),
    );
    let esc = |u: &str| u.replace(':', "\\:");
    write_tables(
        &dir,
        &format!(
            ":1:{}::0:1:1:0::dead gateway\n:1:{}::0:0:1:0::sipp uas\n",
            esc(&dead),
            esc(&live)
        ),
    );
    let server = start(&dir, |t| {
        t.replace("ds_select_dst(1,4)", "ds_select_dst(1,4,\"f\")")
            .replace(
                "modparam(\"tm\", \"fr_timeout\", 5)",
                "modparam(\"tm\", \"fr_timeout\", 1)",
            )
            .replace("\"ds_ping_interval\", 30", "\"ds_ping_interval\", 1")
    });
    assert_eq!(state_of(&server, &dead), "Active");
    let _uas = sipp_uas(&dir, uas_port);
    std::thread::sleep(Duration::from_millis(300));
    // Round-robin sends every other call to the dead gateway first: after fr_timeout the
    // failure route moves it to the next one, and every call completes.
    sipp_calls(&server, 4, 4);
    let l = list(&server);
    let dests = l["PARTITIONS"][0]["SETS"][0]["Destinations"]
        .as_array()
        .unwrap()
        .clone();
    let hits = |uri: &str| {
        dests
            .iter()
            .find(|d| d["URI"] == uri)
            .map_or(0, |d| d["first_hit_counter"].as_u64().unwrap())
    };
    assert!(hits(&dead) >= 1 && hits(&live) >= 1, "{l}");
    // The dead gateway's probe_mode column asks for probes whatever its state (the live one,
    // a SIPp that would not answer OPTIONS, gets none): an OPTIONS every second times out
    // three times (ds_probing_threshold) and it is out of the rotation; new calls go straight
    // to the live one.
    wait_for_state(&server, &dead, "Probing");
    let before = hits(&dead);
    sipp_calls(&server, 4, 10);
    let l = list(&server);
    let now = l["PARTITIONS"][0]["SETS"][0]["Destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["URI"] == dead.as_str())
        .map_or(0, |d| d["first_hit_counter"].as_u64().unwrap());
    assert_eq!(now, before, "no call went to the probing gateway: {l}");
    // It answers probes again: back in.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let responder = {
        let (sock, stop) = (
            UdpSocket::bind(("127.0.0.1", dead_port)).unwrap(),
            std::sync::Arc::clone(&stop),
        );
        std::thread::spawn(move || options_responder(sock, stop))
    };
    wait_for_state(&server, &dead, "Active");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    responder.join().unwrap();
}

#[test]
fn the_table_reloads_and_states_are_written_back_at_shutdown() {
    let dir = test_dir("reload");
    write_tables(&dir, ":1:sip\\:127.0.0.1\\:5901::0:0:1:0::\n");
    let mut server = start(&dir, |t| {
        t + "\nevent_route[E_DISPATCHER_STATUS] {\n\
             xlog(\"L_NOTICE\", \"ds event $param(group) $param(address) $param(status) [$param(reason)]\\n\");\n}\n"
    });
    // An edited table: db_text re-reads its file, dispatcher its sets.
    std::fs::write(
        dir.join("db/dispatcher"),
        format!(
            "{HEADER}:1:sip\\:127.0.0.1\\:5901::0:0:1:0::\n:1:sip\\:127.0.0.1\\:5902::0:0:1:0::\n"
        ),
    )
    .unwrap();
    assert_eq!(
        state_of(&server, "sip:127.0.0.1:5902").split(' ').next(),
        Some("absent")
    );
    let (ok, out) = cli(&server, &["dbt_reload"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&server, &["dispatcher:reload"]);
    assert!(ok, "{out}");
    assert_eq!(state_of(&server, "sip:127.0.0.1:5902"), "Active");
    // An operator takes one out; the state survives a restart through the table.
    let (ok, out) = cli(
        &server,
        &["dispatcher:set_state", "i", "1", "sip:127.0.0.1:5902"],
    );
    assert!(ok, "{out}");
    assert_eq!(state_of(&server, "sip:127.0.0.1:5902"), "Inactive");
    // The change raised E_DISPATCHER_STATUS; its event_route ran.
    assert!(
        server
            .log()
            .contains("ds event 1 sip:127.0.0.1:5902 inactive [MI command]"),
        "{}",
        server.log()
    );
    let (ok, out) = cli(&server, &["evi:list"]);
    assert!(ok && out.contains("E_DISPATCHER_STATUS"), "{out}");
    let (ok, out) = cli(
        &server,
        &["dispatcher:set_state", "i", "1", "sip:127.0.0.1:5999"],
    );
    assert!(!ok && out.contains("destination not found"), "{out}");
    let pid = server.child.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.child.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "rsips did not stop:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let table = std::fs::read_to_string(dir.join("db/dispatcher")).unwrap();
    assert!(
        table.contains("1:1:sip\\:127.0.0.1\\:5901::0:0:1:0::\n")
            && table.contains(":1:sip\\:127.0.0.1\\:5902::1:0:1:0::\n"),
        "{table}"
    );
}

/// rsips on `cfg`: its exit code and what it printed.
fn run_to_failure(dir: &Path, edit: impl Fn(String) -> String) -> (Option<i32>, String) {
    let port = common::free_port();
    std::fs::write(dir.join("opensips.cfg"), stock_config(dir, port, edit)).unwrap();
    common::run_to_exit(dir, "opensips.cfg")
}

#[test]
fn a_table_that_cannot_be_read_stops_the_start_with_the_reason() {
    let dir = test_dir("broken");
    write_tables(&dir, ":1:sip\\:127.0.0.1\\:5901::zero:0:1:0::\n");
    let (code, out) = run_to_failure(&dir, |t| t);
    let path = format!("{}:2:", dir.join("db/dispatcher").display());
    assert!(
        code == Some(1) && out.contains(&path) && out.contains("not an integer"),
        "{code:?}\n{out}"
    );
    std::fs::write(
        dir.join("db/version"),
        "table_name(str) table_version(int)\ndispatcher:8\n",
    )
    .unwrap();
    let (code, out) = run_to_failure(&dir, |t| t);
    assert!(
        code == Some(1) && out.contains("version 8") && out.contains("expects 9"),
        "{code:?}\n{out}"
    );
    let (code, out) = run_to_failure(&dir, |t| {
        t.replace(
            &format!("text://{}", dir.join("db").display()),
            "mysql://opensips:opensipsrw@localhost/opensips",
        )
    });
    assert!(
        code == Some(1) && out.contains("db_mysql"),
        "{code:?}\n{out}"
    );
}

#[path = "../../../crates/db/tests/pg_server/mod.rs"]
mod pg_server;
#[path = "../../../crates/db/tests/ports/mod.rs"]
mod ports;

/// The stock script on PostgreSQL, as an operator would run it with `db_postgres`: the sets
/// come from a real server, a state set through the MI lands in its table at once, and an
/// outage makes a reload fail with the reason while the loaded sets keep serving.
#[test]
fn the_stock_script_on_postgresql_with_an_outage() {
    let pg = pg_server::PgServer::start("dispatcher", ports::free_port());
    pg.psql(
        "CREATE TABLE version (table_name VARCHAR(32) PRIMARY KEY, table_version INTEGER NOT NULL);\n\
         INSERT INTO version VALUES ('dispatcher', 9);\n\
         CREATE TABLE dispatcher (id SERIAL PRIMARY KEY, setid INTEGER NOT NULL DEFAULT 0, \
           destination VARCHAR(192) NOT NULL DEFAULT '', socket VARCHAR(128) DEFAULT NULL, \
           state INTEGER NOT NULL DEFAULT 0, probe_mode INTEGER NOT NULL DEFAULT 0, \
           weight VARCHAR(64) NOT NULL DEFAULT '1', priority INTEGER NOT NULL DEFAULT 0, \
           attrs VARCHAR(128) DEFAULT NULL, description VARCHAR(64) DEFAULT NULL);\n\
         INSERT INTO dispatcher (setid, destination, weight, description) VALUES \
           (1, 'sip:127.0.0.1:5901', '1', 'gw one'), (1, 'sip:127.0.0.1:5902', '2', 'gw two');\n\
         GRANT ALL ON ALL TABLES IN SCHEMA public TO opensips;",
        "opensips",
    );
    let dir = test_dir("postgres");
    let url = pg.url();
    let server = start(&dir, |t| {
        t.replace("loadmodule \"db_text.so\"", "loadmodule \"db_postgres.so\"")
            .replace(&format!("text://{}", dir.join("db").display()), &url)
    });
    assert_eq!(state_of(&server, "sip:127.0.0.1:5902"), "Active");
    let (ok, out) = cli(
        &server,
        &["dispatcher:set_state", "i", "1", "sip:127.0.0.1:5902"],
    );
    assert!(ok, "{out}");
    assert_eq!(
        pg.query("SELECT state FROM dispatcher WHERE destination = 'sip:127.0.0.1:5902'"),
        "1\n"
    );
    pg.down();
    let (ok, out) = cli(&server, &["dispatcher:reload"]);
    assert!(!ok && out.contains("ERROR Reloading data"), "{out}");
    assert_eq!(
        state_of(&server, "sip:127.0.0.1:5901"),
        "Active",
        "the loaded sets stay"
    );
    pg.up();
    pg.psql(
        "INSERT INTO dispatcher (setid, destination) VALUES (1, 'sip:127.0.0.1:5903')",
        "opensips",
    );
    // The database answers again within the driver's pause after the last failed attempt.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, out) = cli(&server, &["dispatcher:reload"]);
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "{out}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(state_of(&server, "sip:127.0.0.1:5903"), "Active");
    assert_eq!(state_of(&server, "sip:127.0.0.1:5902"), "Inactive");
}

#[path = "../../../crates/db/tests/my_server/mod.rs"]
mod my_server;

/// The stock script exactly as shipped but for its socket, FIFO, logging and the database's
/// address: `db_mysql` and `sqlops` loaded, the sets in a real MariaDB, a SIPp call through.
#[test]
fn the_stock_script_unchanged_on_mariadb() {
    let my = my_server::MyServer::start("dispatcher", ports::free_port());
    let [uas_port] = common::free_ports();
    my.sql(&format!(
        "USE opensips;\n\
         CREATE TABLE version (table_name CHAR(32) NOT NULL, table_version INT UNSIGNED DEFAULT 0 NOT NULL, \
           CONSTRAINT t_name_idx UNIQUE (table_name));\n\
         INSERT INTO version VALUES ('dispatcher', 9);\n\
         CREATE TABLE dispatcher (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, \
           setid INT DEFAULT 0 NOT NULL, destination CHAR(192) DEFAULT '' NOT NULL, \
           socket CHAR(128) DEFAULT NULL, state INT DEFAULT 0 NOT NULL, probe_mode INT DEFAULT 0 NOT NULL, \
           weight CHAR(64) DEFAULT 1 NOT NULL, priority INT DEFAULT 0 NOT NULL, \
           attrs CHAR(128) DEFAULT NULL, description CHAR(64) DEFAULT NULL);\n\
         INSERT INTO dispatcher (setid, destination, description) VALUES \
           (1, 'sip:127.0.0.1:{uas_port}', 'sipp uas');"
    ));
    let dir = test_dir("mariadb");
    let stock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../../shared/reference/opensips-configs/rendered/loadbalancer_dispatcher.cfg",
        ))
        .unwrap();
    let port = common::free_port();
    let text = stock
        .replace(
            "socket=udp:127.0.0.1:5060",
            &format!("socket=udp:127.0.0.1:{port}"),
        )
        .replace(
            "/tmp/opensips_fifo",
            dir.join("opensips_fifo").to_str().unwrap(),
        )
        .replace("stderror_enabled=no", "stderror_enabled=yes")
        .replace("syslog_enabled=yes", "syslog_enabled=no")
        .replace("@localhost/", &format!("@127.0.0.1:{}/", my.port));
    assert!(
        text.contains("loadmodule \"db_mysql.so\"") && text.contains("loadmodule \"sqlops.so\"")
    );
    std::fs::write(dir.join("opensips.cfg"), text).unwrap();
    let fifo = dir.join("opensips_fifo");
    let server = Server {
        child: common::spawn_rsips(&dir, "opensips.cfg", move |log| {
            log.contains("listening on udp:") && fifo.exists()
        }),
        dir: dir.clone(),
        port,
    };
    let uri = format!("sip:127.0.0.1:{uas_port}");
    assert_eq!(state_of(&server, &uri), "Active");
    let _uas = sipp_uas(&dir, uas_port);
    std::thread::sleep(Duration::from_millis(300));
    sipp_calls(&server, 2, 5);
}
