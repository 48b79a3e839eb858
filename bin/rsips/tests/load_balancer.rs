//! The stock OpenSIPS load-balancer script (`loadbalancer_default.cfg`: load_balancer with
//! `lb_start(1,"channel")`, dialog with `db_mode` 2, both on MySQL) run unchanged on a real
//! MariaDB — only its socket, FIFO, logging and the database's address differ. Gateways of the
//! test's own answer or fail: calls go to the gateway with the most free channels, fail over
//! with `lb_next()`, are refused when every channel is taken, free their channel when they
//! end; the calls in progress are written to the `dialog` table at shutdown and their load
//! comes back after a restart.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;
#[path = "../../../crates/db/tests/my_server/mod.rs"]
mod my_server;
#[path = "../../../crates/db/tests/ports/mod.rs"]
mod ports;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Peer, header, reply_to};

/// load_balancer's table (v3) and dialog's.
fn schema() -> String {
    use common::schema::*;
    let load_balancer = "INSERT INTO version VALUES ('load_balancer', 3), ('dialog', 12);\n\
CREATE TABLE load_balancer (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, \
  group_id INT(11) UNSIGNED DEFAULT 0 NOT NULL, dst_uri CHAR(128) NOT NULL, resources CHAR(255) NOT NULL, \
  probe_mode INT(11) UNSIGNED DEFAULT 0 NOT NULL, attrs CHAR(255) DEFAULT NULL, description CHAR(128) DEFAULT NULL);\n";
    mysql(&[VERSION, load_balancer, DIALOG])
}

struct Lb {
    dir: PathBuf,
    proc: common::Kill,
}

impl Lb {
    fn start(dir: &Path, port: u16, db_port: u16) -> Lb {
        let stock =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(
                "../../../shared/reference/opensips-configs/rendered/loadbalancer_default.cfg",
            ))
            .unwrap();
        let text = stock
            .replace(
                "socket=udp:127.0.0.1:5060",
                &format!("socket=udp:127.0.0.1:{port}"),
            )
            .replace("/tmp/opensips_fifo", dir.join("fifo").to_str().unwrap())
            .replace("stderror_enabled=no", "stderror_enabled=yes")
            .replace("syslog_enabled=yes", "syslog_enabled=no")
            .replace("@localhost/", &format!("@127.0.0.1:{db_port}/"));
        assert!(
            text.contains("lb_start(1,\"channel\")") && text.contains("\"db_mode\", 2"),
            "the stock script as expected"
        );
        std::fs::write(dir.join("opensips.cfg"), text).unwrap();
        let proc =
            common::spawn_rsips(dir, "opensips.cfg", |log| log.contains("listening on udp:"));
        Lb {
            dir: dir.to_owned(),
            proc,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }

    fn mi(&self, args: &[&str]) -> serde_json::Value {
        let (ok, out) = common::opensips_cli(&self.dir.join("fifo"), args);
        assert!(ok, "opensips-cli {args:?}: {out}\n{}", self.log());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// The channels in use on each destination, by id.
    fn loads(&self) -> Vec<(i64, i64, String)> {
        self.mi(&["lb_list"])["Destinations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["id"].as_i64().unwrap(),
                    d["Resources"][0]["load"].as_i64().unwrap(),
                    d["enabled"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn stop(mut self) {
        let dir = self.dir.clone();
        self.proc
            .terminate(|| std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default());
    }
}

fn invite(caller: &Peer, callid: &str) -> String {
    format!(
        "INVITE sip:5551000@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid};rport\r\n\
         From: <sip:alice@example.com>;tag=a-{callid}\r\nTo: <sip:5551000@example.com>\r\nCall-ID: {callid}\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        caller.port, caller.port
    )
}

/// The INVITE of `callid` at gateway `gw` (it must get it), answered `status`; a 200 is
/// followed by the caller's ACK. The 2xx's Record-Route for sequential requests.
fn answer(lb: u16, caller: &Peer, gw: &Peer, callid: &str, status: &str) -> Option<String> {
    let inv = gw.recv(&format!("INVITE {callid} at gateway {}", gw.port));
    assert!(inv.starts_with("INVITE "), "{inv}");
    assert_eq!(header(&inv, "Call-ID"), vec![callid]);
    let contact = format!("Contact: <sip:gw@127.0.0.1:{}>\r\n", gw.port);
    gw.send(
        lb,
        &reply_to(&inv, status, &format!("g-{callid}"), &contact),
    );
    if !status.starts_with("200") {
        // tm ACKs a negative reply hop by hop.
        let ack = gw.recv("hop-by-hop ACK");
        assert!(ack.starts_with("ACK "), "{ack}");
        return None;
    }
    let ok = caller.recv("200");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let route = header(&ok, "Record-Route")[0].to_owned();
    caller.send(
        lb,
        &format!(
            "ACK sip:gw@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}-ack\r\n\
             Route: {route}\r\nFrom: <sip:alice@example.com>;tag=a-{callid}\r\nTo: <sip:5551000@example.com>;tag=g-{callid}\r\n\
             Call-ID: {callid}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            gw.port, caller.port
        ),
    );
    let ack = gw.recv("ACK");
    assert!(ack.starts_with("ACK "), "{ack}");
    Some(route)
}

/// The caller's ACK for a negative final reply (or tm retransmits it).
fn ack_negative(lb: u16, caller: &Peer, reply: &str) {
    let callid = header(reply, "Call-ID")[0];
    caller.send(
        lb,
        &format!(
            "ACK sip:5551000@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid};rport\r\n\
             From: <sip:alice@example.com>;tag=a-{callid}\r\nTo: {}\r\nCall-ID: {callid}\r\n\
             CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            caller.port,
            header(reply, "To")[0]
        ),
    );
}

fn bye(lb: u16, caller: &Peer, gw: &Peer, callid: &str, route: &str) {
    caller.send(
        lb,
        &format!(
            "BYE sip:gw@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}-bye\r\n\
             Route: {route}\r\nFrom: <sip:alice@example.com>;tag=a-{callid}\r\nTo: <sip:5551000@example.com>;tag=g-{callid}\r\n\
             Call-ID: {callid}\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            gw.port, caller.port
        ),
    );
    let b = gw.recv("BYE");
    assert!(b.starts_with("BYE "), "{b}");
    gw.send(lb, &reply_to(&b, "200 OK", "", ""));
    assert!(caller.recv("200 for BYE").starts_with("SIP/2.0 200"));
}

#[test]
fn the_stock_load_balancer_script_unchanged_on_mariadb() {
    let my = my_server::MyServer::start("lb", ports::free_port());
    my.sql(&schema());
    let (gw1, gw2, caller) = (Peer::new(), Peer::new(), Peer::new());
    my.sql(&format!(
        "USE opensips;\n\
         INSERT INTO load_balancer (id, group_id, dst_uri, resources) VALUES \
         (1, 1, 'sip:127.0.0.1:{}', 'channel=1'), (2, 1, 'sip:127.0.0.1:{}', 'channel=2'), \
         (3, 2, 'sip:127.0.0.1:9', 'channel=50');",
        gw1.port, gw2.port
    ));
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-lb-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let lb = Lb::start(&dir, port, my.port);
    assert_eq!(
        lb.loads(),
        vec![
            (1, 0, "yes".into()),
            (2, 0, "yes".into()),
            (3, 0, "yes".into())
        ]
    );

    // Call 1: gateway 2 has the most free channels (2 against 1).
    caller.send(port, &invite(&caller, "c1"));
    let route1 = answer(port, &caller, &gw2, "c1", "200 OK").unwrap();
    assert_eq!(
        lb.loads()[..2],
        [(1, 0, "yes".into()), (2, 1, "yes".into())]
    );

    // Call 2: a tie (one free each) goes to the first; its 503 fails over to gateway 2.
    caller.send(port, &invite(&caller, "c2"));
    answer(port, &caller, &gw1, "c2", "503 Service Unavailable");
    let route2 = answer(port, &caller, &gw2, "c2", "200 OK").unwrap();
    assert_eq!(
        lb.loads()[..2],
        [(1, 0, "yes".into()), (2, 2, "yes".into())]
    );
    // The failure route sees the request as the request route left it (OpenSIPS 3.1+).
    assert!(
        lb.log().contains("Failed trunk example.com/"),
        "{}",
        lb.log()
    );

    // Call 3: gateway 1 fails and gateway 2 is full: "All GW are down".
    caller.send(port, &invite(&caller, "c3"));
    answer(port, &caller, &gw1, "c3", "500 Server Error");
    let refused = caller.recv("500");
    assert!(
        refused.starts_with("SIP/2.0 500 All GW are down"),
        "{refused}"
    );
    ack_negative(port, &caller, &refused);
    assert_eq!(gw2.quiet(Duration::from_millis(300)), None);

    // Call 1 ends: its channel is free again.
    bye(port, &caller, &gw2, "c1", &route1);
    assert_eq!(
        lb.loads()[..2],
        [(1, 0, "yes".into()), (2, 1, "yes".into())]
    );

    // Disabled from the MI, gateway 2 gets nothing; with gateway 1 full too, no destination.
    assert_eq!(lb.mi(&["lb_status", "2", "0"]), serde_json::json!("OK"));
    assert_eq!(lb.mi(&["lb_status", "2"])["enable"], "no");
    caller.send(port, &invite(&caller, "c4"));
    let route4 = answer(port, &caller, &gw1, "c4", "200 OK").unwrap();
    caller.send(port, &invite(&caller, "c5"));
    let refused = caller.recv("500");
    assert!(
        refused.starts_with("SIP/2.0 500 No Destination available"),
        "{refused}"
    );
    ack_negative(port, &caller, &refused);
    assert_eq!(lb.mi(&["lb_status", "2", "1"]), serde_json::json!("OK"));
    let (ok, out) = common::opensips_cli(&dir.join("fifo"), &["lb_status", "99"]);
    assert!(!ok && out.contains("Destination ID not found"), "{out}");
    let calls = lb.mi(&["dlg_list"])["Dialogs"].as_array().unwrap().len();
    assert_eq!(calls, 2, "calls 2 and 4 are up");

    // A restart: the two calls were written to MariaDB at shutdown and come back with their
    // load.
    lb.stop();
    let rows = my.sql("USE opensips; SELECT callid, state FROM dialog ORDER BY callid;");
    assert!(rows.contains("c2\t4") && rows.contains("c4\t4"), "{rows}");
    let lb = Lb::start(&dir, port, my.port);
    assert_eq!(
        lb.loads()[..2],
        [(1, 1, "yes".into()), (2, 1, "yes".into())]
    );
    // Both calls end through the restarted proxy; the table empties.
    bye(port, &caller, &gw2, "c2", &route2);
    bye(port, &caller, &gw1, "c4", &route4);
    assert_eq!(
        lb.loads()[..2],
        [(1, 0, "yes".into()), (2, 0, "yes".into())]
    );
    lb.stop();
    let rows = my.sql("USE opensips; SELECT COUNT(*) FROM dialog;");
    assert!(rows.trim().ends_with('0'), "{rows}");
}

/// Probing: a destination with `probe_mode` 2 gets OPTIONS every `probing_interval`; one that
/// stops answering is disabled and takes no calls, one that answers again is enabled. The
/// tables are db_text here.
#[test]
fn probes_disable_a_silent_destination_and_bring_it_back() {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-lbprobe-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("db")).unwrap();
    let gw = Peer::new();
    std::fs::write(
        dir.join("db/version"),
        "table_name(str) table_version(int)\nload_balancer:3\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("db/load_balancer"),
        format!(
            "id(int,auto) group_id(int) dst_uri(str) resources(str) probe_mode(int) attrs(str,null) description(str,null)\n\
             1:1:sip\\:127.0.0.1\\:{}:pstn=10:2:NULL:NULL\n",
            gw.port
        ),
    )
    .unwrap();
    let cfg = format!(
        "log_level=3\nstderror_enabled=yes\nsyslog_enabled=no\nsocket=udp:127.0.0.1:{port}\n\
         loadmodule \"proto_udp.so\"\nloadmodule \"tm.so\"\nloadmodule \"sl.so\"\nloadmodule \"rr.so\"\n\
         loadmodule \"mi_fifo.so\"\nloadmodule \"db_text.so\"\nloadmodule \"dialog.so\"\n\
         loadmodule \"load_balancer.so\"\n\
         modparam(\"tm\", \"fr_timeout\", 1)\n\
         modparam(\"mi_fifo\", \"fifo_name\", \"{}\")\n\
         modparam(\"load_balancer\", \"db_url\", \"text://{}\")\n\
         modparam(\"load_balancer\", \"probing_interval\", 1)\n\
         modparam(\"load_balancer\", \"probing_from\", \"sip:pinger@example.com\")\n\
         route {{\n    if (!lb_start(1, \"pstn\")) {{ sl_send_reply(500, \"No Destination\"); exit; }}\n    t_relay();\n}}\n",
        dir.join("fifo").display(),
        dir.join("db").display()
    );
    std::fs::write(dir.join("opensips.cfg"), cfg).unwrap();
    let server = common::spawn_rsips(&dir, "opensips.cfg", |log| {
        log.contains("listening on udp:")
    });
    let lb = Lb {
        dir: dir.clone(),
        proc: server,
    };
    // A thread plays the gateway: it answers every probe the moment it comes while `answer`
    // is set, and passes everything else on. The MI calls here go through opensips-cli, whose
    // round trip can outlast a probe's 1 s timeout on a busy machine: answering from this
    // thread keeps the test's own slowness from disabling the destination.
    use std::sync::atomic::{AtomicBool, Ordering};
    let (stop, answer) = (AtomicBool::new(false), AtomicBool::new(true));
    let (probes_tx, probes) = std::sync::mpsc::channel();
    let (calls_tx, calls) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                match gw.quiet(Duration::from_millis(100)) {
                    Some(m) if m.starts_with("OPTIONS ") => {
                        if answer.load(Ordering::Relaxed) {
                            gw.send(port, &reply_to(&m, "200 OK", "p", ""));
                        }
                        let _ = probes_tx.send(m);
                    }
                    Some(m) => {
                        let _ = calls_tx.send(m);
                    }
                    None => {}
                }
            }
        });
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let wait_for = |enabled: &str| {
                let deadline = std::time::Instant::now() + Duration::from_secs(15);
                while lb.loads()[0].2 != enabled {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "enabled never became {enabled}:\n{}",
                        lb.log()
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            };
            // Probes come, and are answered.
            for _ in 0..2 {
                let probe = probes
                    .recv_timeout(Duration::from_secs(5))
                    .expect("an OPTIONS probe");
                assert!(
                    probe.starts_with(&format!("OPTIONS sip:127.0.0.1:{} ", gw.port)),
                    "{probe}"
                );
                assert!(
                    header(&probe, "From")[0].contains("sip:pinger@example.com"),
                    "{probe}"
                );
            }
            assert_eq!(lb.loads(), vec![(1, 0, "yes".into())]);
            assert!(!lb.log().contains("disabled"), "{}", lb.log());
            // Silent: after a probe times out the destination is disabled, and a call is refused.
            answer.store(false, Ordering::Relaxed);
            wait_for("no");
            let caller = Peer::new();
            caller.send(port, &invite(&caller, "p1"));
            let refused = caller.recv("500");
            assert!(
                refused.starts_with("SIP/2.0 500 No Destination"),
                "{refused}"
            );
            // It answers again: enabled, and the next call goes to it.
            answer.store(true, Ordering::Relaxed);
            wait_for("yes");
            assert!(
                lb.log().contains("answers probes again: enabled"),
                "{}",
                lb.log()
            );
            caller.send(port, &invite(&caller, "p2"));
            let m = calls
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("no INVITE p2 at the gateway:\n{}", lb.log()));
            assert!(m.starts_with("INVITE "), "{m}");
            assert_eq!(header(&m, "Call-ID"), vec!["p2"]);
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}

/// `load_balance()`, the older name OpenSIPS 4.0 still exports for `lb_start_or_next()`, as
/// configs written for it call it (group as a string): the call goes to the group's gateway.
#[test]
fn load_balance_is_lb_start_or_next() {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-lbold-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("db")).unwrap();
    let (caller, gw) = (Peer::new(), Peer::new());
    std::fs::write(
        dir.join("db/version"),
        "table_name(str) table_version(int)\nload_balancer:3\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("db/load_balancer"),
        format!(
            "id(int,auto) group_id(int) dst_uri(str) resources(str) probe_mode(int) attrs(str,null) description(str,null)\n\
             1:1:sip\\:127.0.0.1\\:{}:channel=10:0:NULL:NULL\n",
            gw.port
        ),
    )
    .unwrap();
    let cfg = format!(
        "socket=udp:127.0.0.1:{port}\n\
         loadmodule \"proto_udp.so\"\nloadmodule \"tm.so\"\nloadmodule \"sl.so\"\nloadmodule \"rr.so\"\n\
         loadmodule \"db_text.so\"\nloadmodule \"dialog.so\"\nloadmodule \"load_balancer.so\"\n\
         modparam(\"load_balancer\", \"db_url\", \"text://{}\")\n\
         route {{\n    if (!load_balance(\"1\", \"channel\")) {{ sl_send_reply(500, \"No Destination\"); exit; }}\n    t_relay();\n}}\n",
        dir.join("db").display()
    );
    std::fs::write(dir.join("opensips.cfg"), cfg).unwrap();
    let server = common::spawn_rsips(&dir, "opensips.cfg", |log| {
        log.contains("listening on udp:")
    });
    let lb = Lb {
        dir: dir.clone(),
        proc: server,
    };
    caller.send(port, &invite(&caller, "lbold-1"));
    assert!(answer(port, &caller, &gw, "lbold-1", "486 Busy Here").is_none());
    drop(lb);
}
