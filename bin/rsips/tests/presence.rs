//! The presence server of the stock residential script (`route[handle_presence]`:
//! `t_newtran`, `handle_publish`, `handle_subscribe`; presence, presence_xml with
//! `force_active` 1 and xcap on MySQL) on a real MariaDB: a watcher subscribes and is told
//! each change of the presentity's aggregated PIDF document; entity tags refresh, modify and
//! fail (412); a publication that expires turns closed; watcher-info; unsubscribing; the
//! refusals (489 with Allow-Events, 415, 400, 481); MariaDB down (the server goes on from
//! memory and writes what it missed once the database is back); the tables written and read
//! back after a restart; MI through the real opensips-cli.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;
#[path = "../../../crates/db/tests/my_server/mod.rs"]
mod my_server;
#[path = "../../../crates/db/tests/ports/mod.rs"]
mod ports;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Peer, header, reply_to};

fn schema() -> String {
    use common::schema::*;
    mysql(&[
        VERSION,
        "INSERT INTO version VALUES ('presentity', 5), ('active_watchers', 12), ('watchers', 4), ('xcap', 4);\n",
        PRESENCE,
    ])
}

/// The stock residential script's presence parts, with its own socket, FIFO and database.
const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
syslog_enabled=no
socket=udp:127.0.0.1:PORT
alias=example.com
loadmodule "proto_udp.so"
loadmodule "signaling.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "sipmsgops.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
loadmodule "db_mysql.so"
loadmodule "xcap.so"
loadmodule "presence.so"
loadmodule "presence_xml.so"
modparam("xcap|presence", "db_url", "DBURL")
modparam("presence_xml", "force_active", 1)
modparam("presence", "fallback2db", 0)
modparam("presence", "clean_period", 1)
modparam("presence", "db_update_period", 1)

route {
    if (!mf_process_maxfwd_header(10)) {
        send_reply(483,"Too Many Hops");
        exit;
    }
    if (has_totag()) {
        if ( !loose_route() ) {
            if (is_method("SUBSCRIBE") && is_myself("$rd")) {
                # in-dialog subscribe requests
                route(handle_presence);
                exit;
            }
            if ( is_method("ACK") ) {
                exit;
            }
            send_reply(404,"Not here");
        }
        exit;
    }
    if( is_method("PUBLISH|SUBSCRIBE"))
        route(handle_presence);
    send_reply(404,"Not here");
}

route[handle_presence]
{
    if (!t_newtran()) {
        sl_reply_error();
        exit;
    }

    if(is_method("PUBLISH")) {
        handle_publish();
    } else
    if( is_method("SUBSCRIBE")) {
        handle_subscribe();
    }

    exit;
}
"#;

struct Server {
    dir: PathBuf,
    rsips: common::Kill,
}

impl Server {
    fn start(dir: &Path, port: u16, db_port: u16) -> Server {
        let cfg = CONFIG
            .replace("PORT", &port.to_string())
            .replace("FIFO", &dir.join("fifo").display().to_string())
            .replace(
                "DBURL",
                &format!("mysql://opensips:opensipsrw@127.0.0.1:{db_port}/opensips"),
            );
        std::fs::write(dir.join("rsips.cfg"), cfg).unwrap();
        let rsips = common::spawn_rsips(dir, "rsips.cfg", |log| log.contains("listening on udp:"));
        Server {
            dir: dir.to_owned(),
            rsips,
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

    fn stop(&mut self) {
        let log = self.log();
        self.rsips.terminate(|| log.clone());
    }
}

fn pidf(entity: &str, tuple: &str, basic: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{entity}\">\n\
         <tuple id=\"{tuple}\"><status><basic>{basic}</basic></status></tuple>\n</presence>\n"
    )
}

/// A PUBLISH for alice@example.com.
fn publish(p: &Peer, n: u32, event: Option<&str>, extra: &str, body: &str) -> String {
    let ev = event.map_or(String::new(), |e| format!("Event: {e}\r\n"));
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/pidf+xml\r\n".to_owned()
    };
    format!(
        "PUBLISH sip:alice@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-pub{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=pub{n}\r\nTo: <sip:alice@example.com>\r\n\
         Call-ID: pub-{n}@test\r\nCSeq: 1 PUBLISH\r\n{ev}{extra}{ct}Content-Length: {}\r\n\r\n{body}",
        body.len(),
        lp = p.port,
    )
}

/// A SUBSCRIBE from `who` (a dialog of its own when `to_tag` is given).
fn subscribe(
    p: &Peer,
    (who, target): (&str, &str),
    event: &str,
    call: &str,
    cseq: u32,
    to_tag: &str,
    expires: u32,
) -> String {
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    format!(
        "SUBSCRIBE sip:{target}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-{call}-{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{who}@example.com>;tag={who}tag\r\nTo: <sip:{target}@example.com>{to_tag}\r\n\
         Call-ID: {call}\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:{who}@127.0.0.1:{lp}>\r\n\
         Event: {event}\r\nExpires: {expires}\r\nContent-Length: 0\r\n\r\n",
        lp = p.port
    )
}

/// The next NOTIFY at `p`, answered 200.
fn notify(p: &Peer, port: u16) -> String {
    let n = p.recv("NOTIFY");
    assert!(n.starts_with("NOTIFY sip:"), "{n}");
    p.send(port, &reply_to(&n, "200 OK", "", ""));
    n
}

fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn the_stock_presence_server_on_mariadb() {
    let my = my_server::MyServer::start("presence", ports::free_port());
    my.sql(&schema());
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-presence-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = Server::start(&dir, port, my.port);
    let (alice, bob) = (Peer::new(), Peer::new());

    // Bob watches alice: 200 with our To tag, Contact and Expires; then a NOTIFY with no body
    // (nothing published yet) in bob's dialog.
    bob.send(
        port,
        &subscribe(&bob, ("bob", "alice"), "presence", "watch-1", 1, "", 600),
    );
    let ok = bob.recv("200");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}\n{}", server.log());
    let our_tag = header(&ok, "To")[0]
        .split(";tag=")
        .nth(1)
        .unwrap()
        .to_owned();
    assert_eq!(header(&ok, "Expires"), vec!["600"]);
    assert_eq!(
        header(&ok, "Contact"),
        vec![format!("<sip:presence@127.0.0.1:{port}>").as_str()]
    );
    let n = notify(&bob, port);
    assert!(
        n.starts_with(&format!("NOTIFY sip:bob@127.0.0.1:{} SIP/2.0", bob.port)),
        "{n}"
    );
    assert_eq!(
        header(&n, "From"),
        vec![format!("<sip:alice@example.com>;tag={our_tag}").as_str()]
    );
    assert_eq!(header(&n, "To"), vec!["<sip:bob@example.com>;tag=bobtag"]);
    assert_eq!(header(&n, "Call-ID"), vec!["watch-1"]);
    assert_eq!(header(&n, "CSeq"), vec!["1 NOTIFY"]);
    assert_eq!(header(&n, "Event"), vec!["presence"]);
    let state = header(&n, "Subscription-State")[0];
    assert!(
        state == "active;expires=600" || state == "active;expires=599",
        "{n}"
    );
    assert!(
        header(&n, "Content-Type").is_empty() && body(&n).is_empty(),
        "{n}"
    );

    // Alice publishes: 200 with an entity tag; bob hears the document.
    let open = pidf("sip:alice@example.com", "phone", "open");
    alice.send(
        port,
        &publish(&alice, 1, Some("presence"), "Expires: 60\r\n", &open),
    );
    let ok = alice.recv("200");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert_eq!(header(&ok, "Expires"), vec!["60"]);
    let etag1 = header(&ok, "SIP-ETag")[0].to_owned();
    let n = notify(&bob, port);
    assert_eq!(header(&n, "CSeq"), vec!["2 NOTIFY"]);
    assert_eq!(header(&n, "Content-Type"), vec!["application/pidf+xml"]);
    assert!(body(&n).contains("entity=\"sip:alice@example.com\""), "{n}");
    assert!(
        body(&n).contains("<tuple id=\"phone\"><status><basic>open</basic>"),
        "{n}"
    );

    // A refresh (SIP-If-Match, no body) gets a new tag and tells nobody.
    alice.send(
        port,
        &publish(
            &alice,
            2,
            Some("presence"),
            &format!("SIP-If-Match: {etag1}\r\nExpires: 60\r\n"),
            "",
        ),
    );
    let ok = alice.recv("200");
    let etag2 = header(&ok, "SIP-ETag")[0].to_owned();
    assert!(ok.starts_with("SIP/2.0 200") && etag2 != etag1, "{ok}");
    assert_eq!(bob.quiet(Duration::from_millis(400)), None);
    // The old tag is gone: 412.
    alice.send(
        port,
        &publish(
            &alice,
            3,
            Some("presence"),
            &format!("SIP-If-Match: {etag1}\r\n"),
            "",
        ),
    );
    let refused = alice.recv("412");
    assert!(
        refused.starts_with("SIP/2.0 412 Conditional request failed"),
        "{refused}"
    );
    // A modification: bob hears alice go closed.
    let closed = pidf("sip:alice@example.com", "phone", "closed");
    alice.send(
        port,
        &publish(
            &alice,
            4,
            Some("presence"),
            &format!("SIP-If-Match: {etag2}\r\nExpires: 60\r\n"),
            &closed,
        ),
    );
    let ok = alice.recv("200");
    let etag3 = header(&ok, "SIP-ETag")[0].to_owned();
    let n = notify(&bob, port);
    assert_eq!(header(&n, "CSeq"), vec!["3 NOTIFY"]);
    assert!(body(&n).contains("<basic>closed</basic>"), "{n}");
    let rows = my.sql("USE opensips; SELECT username, domain, event, etag FROM presentity;");
    assert!(
        rows.contains(&format!("alice\texample.com\tpresence\t{etag3}")),
        "{rows}"
    );

    // What the server refuses.
    alice.send(port, &publish(&alice, 5, None, "", &open));
    let refused = alice.recv("489");
    assert!(refused.starts_with("SIP/2.0 489 Bad Event"), "{refused}");
    assert_eq!(
        header(&refused, "Allow-Events"),
        vec!["presence.winfo, presence"]
    );
    alice.send(port, &publish(&alice, 6, Some("dialog"), "", &open));
    assert!(alice.recv("489").starts_with("SIP/2.0 489 Bad Event"));
    alice.send(port, &publish(&alice, 7, Some("presence"), "", "not xml <"));
    let refused = alice.recv("415");
    assert!(
        refused.starts_with("SIP/2.0 415 Unsupported media type"),
        "{refused}"
    );
    alice.send(port, &publish(&alice, 8, Some("presence"), "", ""));
    assert!(alice.recv("400").starts_with("SIP/2.0 400 Bad request"));
    bob.send(
        port,
        &subscribe(
            &bob,
            ("bob", "alice"),
            "presence",
            "watch-9",
            2,
            "nosuchtag",
            600,
        ),
    );
    let refused = bob.recv("481");
    assert!(
        refused.starts_with("SIP/2.0 481 Subscription does not exist"),
        "{refused}"
    );

    // A second device publishes for a second: both tuples, then it expires and turns closed.
    let desk = pidf("sip:alice@example.com", "desk", "open");
    alice.send(
        port,
        &publish(&alice, 10, Some("presence"), "Expires: 1\r\n", &desk),
    );
    assert!(alice.recv("200").starts_with("SIP/2.0 200"));
    let n = notify(&bob, port);
    assert!(
        body(&n).contains("<tuple id=\"desk\"><status><basic>open</basic>")
            && body(&n).contains("<tuple id=\"phone\">"),
        "{n}"
    );
    let n = notify(&bob, port);
    assert!(
        body(&n).contains("<tuple id=\"desk\"><status><basic>closed</basic>"),
        "{n}"
    );

    // Alice watches her own watchers: a full list with bob active.
    alice.send(
        port,
        &subscribe(
            &alice,
            ("alice", "alice"),
            "presence.winfo",
            "winfo-1",
            1,
            "",
            600,
        ),
    );
    let ok = alice.recv("200");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    let winfo_tag = header(&ok, "To")[0]
        .split(";tag=")
        .nth(1)
        .unwrap()
        .to_owned();
    let n = notify(&alice, port);
    assert_eq!(
        header(&n, "Content-Type"),
        vec!["application/watcherinfo+xml"]
    );
    assert!(body(&n).contains("state=\"full\""), "{n}");
    assert!(
        body(&n).contains("<watcher id=\"watch-1\" event=\"subscribe\" status=\"active\">sip:bob@example.com</watcher>"),
        "{n}"
    );

    // MI through opensips-cli.
    let subs = server.mi(&["presence:subs_phtable_list"]);
    let watch = subs
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["callid"] == "watch-1")
        .unwrap();
    assert_eq!(watch["pres_uri"], "sip:alice@example.com");
    assert_eq!(watch["local_cseq"], 5);
    // OpenSIPS' shape: the expiry as a local date and time.
    let expires = watch["expires"].as_str().unwrap();
    assert!(
        expires.len() == 19 && expires.as_bytes()[4] == b'-' && expires.as_bytes()[13] == b':',
        "{watch}"
    );
    let pres = server.mi(&["pres_phtable_list"]);
    assert_eq!(pres[0]["pres_uri"], "sip:alice@example.com");
    assert_eq!(pres[0]["etag"], etag3.as_str());

    // The subscriptions reach the database on the update timer.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let rows = my.sql(
            "USE opensips; SELECT callid, status, local_cseq FROM active_watchers ORDER BY callid;",
        );
        if rows.contains("watch-1\t1\t5") && rows.contains("winfo-1\t1\t1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{rows}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let rows =
        my.sql("USE opensips; SELECT presentity_uri, watcher_username, status FROM watchers;");
    assert!(rows.contains("sip:alice@example.com\tbob\t1"), "{rows}");

    // MariaDB goes down: publishing and notifying go on from memory, the errors are logged,
    // and what could not be written is written once the database is back.
    my.down();
    let tablet = pidf("sip:alice@example.com", "tablet", "open");
    alice.send(
        port,
        &publish(&alice, 11, Some("presence"), "Expires: 600\r\n", &tablet),
    );
    let ok = alice.recv("200");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    let etag_tablet = header(&ok, "SIP-ETag")[0].to_owned();
    let n = notify(&bob, port);
    assert_eq!(header(&n, "CSeq"), vec!["6 NOTIFY"]);
    assert!(body(&n).contains("<tuple id=\"tablet\">"), "{n}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        server
            .log()
            .contains("cannot store the publication of alice@example.com"),
        "{}",
        server.log()
    );
    my.up();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = my.sql(
            "USE opensips; SELECT etag FROM presentity; SELECT callid, local_cseq FROM active_watchers;",
        );
        if rows.contains(&etag_tablet) && rows.contains("watch-1\t6") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{rows}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A restart: alice's publication and both subscriptions come back. Bob's refresh is
    // known (no 481), and a new watcher hears alice's document.
    server.stop();
    let mut server = Server::start(&dir, port, my.port);
    bob.send(
        port,
        &subscribe(
            &bob,
            ("bob", "alice"),
            "presence",
            "watch-1",
            2,
            &our_tag,
            600,
        ),
    );
    let ok = bob.recv("200");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}\n{}", server.log());
    let n = notify(&bob, port);
    assert_eq!(header(&n, "CSeq"), vec!["7 NOTIFY"]);
    assert!(
        body(&n).contains("<tuple id=\"phone\"><status><basic>closed</basic>")
            && body(&n).contains("<tuple id=\"tablet\">"),
        "{n}"
    );
    // Alice's watcher list hears of each of bob's subscribes, this one too.
    let n = notify(&alice, port);
    assert!(
        body(&n).contains("state=\"partial\"")
            && body(&n).contains("status=\"active\">sip:bob@example.com<"),
        "{n}"
    );

    // Bob unsubscribes: 200 Expires 0, a last NOTIFY, and alice's watcher list hears it.
    bob.send(
        port,
        &subscribe(
            &bob,
            ("bob", "alice"),
            "presence",
            "watch-1",
            3,
            &our_tag,
            0,
        ),
    );
    let ok = bob.recv("200");
    assert_eq!(header(&ok, "Expires"), vec!["0"]);
    let n = notify(&bob, port);
    assert_eq!(
        header(&n, "Subscription-State"),
        vec!["terminated;reason=timeout"]
    );
    let n = notify(&alice, port);
    assert_eq!(
        header(&n, "From")[0],
        format!("<sip:alice@example.com>;tag={winfo_tag}")
    );
    assert!(body(&n).contains("state=\"partial\""), "{n}");
    assert!(
        body(&n).contains("status=\"terminated\">sip:bob@example.com<"),
        "{n}"
    );
    // Gone from the table too.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let rows = my.sql("USE opensips; SELECT callid FROM active_watchers;");
        if !rows.contains("watch-1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{rows}");
        std::thread::sleep(Duration::from_millis(200));
    }
    server.stop();
}
