//! presence_xml with `force_active` 0 and `integrated_xcap_server` 1 (db_text): new watchers
//! are authorized by the presentity's pres-rules document in the `xcap` table — allowed (200,
//! active, the document), confirm (202 OK, pending, no body), block (200, terminated;
//! reason=rejected), no matching rule (pending); MI `refresh_watchers` with type 0 applies a
//! changed document and tells the watchers whose state changed.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{Peer, header, reply_to};

/// The `version` file of the tables.
const VERSION: &str =
    "table_name(str) table_version(int)\npresentity:5\nactive_watchers:12\nwatchers:4\nxcap:4\n";

/// The `xcap` table with alice's pres-rules document.
fn xcap_table(rules: &str) -> String {
    let doc = format!(
        "<?xml version=\"1.0\"?><cr:ruleset xmlns=\"urn:ietf:params:xml:ns:pres-rules\" \
         xmlns:cr=\"urn:ietf:params:xml:ns:common-policy\">{rules}</cr:ruleset>"
    );
    format!(
        "id(int,auto) username(string) domain(string) doc(blob) doc_type(int) etag(string) \
         source(int) doc_uri(string) port(int)\n1:alice:example.com:{}:2:e1:1:{}:0\n",
        doc.replace(':', "\\:"),
        "sip\\:alice@example.com/pres-rules"
    )
}

fn rule(cond: &str, handling: &str) -> String {
    format!(
        "<cr:rule id=\"r\"><cr:conditions><cr:identity>{cond}</cr:identity></cr:conditions>\
         <cr:actions><sub-handling>{handling}</sub-handling></cr:actions></cr:rule>"
    )
}

const CONFIG: &str = r#"
socket=udp:127.0.0.1:PORT
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "signaling.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
loadmodule "db_text.so"
loadmodule "xcap.so"
loadmodule "presence.so"
loadmodule "presence_xml.so"
modparam("xcap|presence", "db_url", "text://DB")
modparam("xcap", "integrated_xcap_server", 1)
modparam("presence_xml", "force_active", 0)
route {
    if (!t_newtran()) { sl_reply_error(); exit; }
    if (is_method("SUBSCRIBE")) handle_subscribe();
    exit;
}
"#;

fn subscribe(p: &Peer, who: &str, domain: &str) -> String {
    format!(
        "SUBSCRIBE sip:alice@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-{who}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{who}@{domain}>;tag={who}tag\r\nTo: <sip:alice@example.com>\r\n\
         Call-ID: rules-{who}\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:{who}@127.0.0.1:{lp}>\r\n\
         Event: presence\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n",
        lp = p.port
    )
}

/// The reply and the NOTIFY (answered) a watcher gets for its SUBSCRIBE.
fn watch(p: &Peer, port: u16, who: &str, domain: &str) -> (String, String) {
    p.send(port, &subscribe(p, who, domain));
    let reply = p.recv("reply");
    let notify = p.recv("NOTIFY");
    p.send(port, &reply_to(&notify, "200 OK", "", ""));
    (reply, notify)
}

#[test]
fn pres_rules_decide_who_watches() {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-prules-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    for (name, text) in common::schema::DBTEXT_PRESENCE {
        std::fs::write(db.join(name), text).unwrap();
    }
    std::fs::write(db.join("version"), VERSION).unwrap();
    // eve is blocked, bob allowed, the rest of example.com must be confirmed.
    let rules = [
        rule("<cr:one id=\"sip:eve@example.com\"/>", "block"),
        rule("<cr:one id=\"sip:bob@example.com\"/>", "allow"),
        rule("<cr:many domain=\"example.com\"/>", "confirm"),
    ]
    .concat();
    std::fs::write(db.join("xcap"), xcap_table(&rules)).unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("FIFO", &dir.join("fifo").display().to_string())
            .replace("DB", &db.display().to_string()),
    )
    .unwrap();
    let mut server = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    let (bob, carol, eve, mal) = (Peer::new(), Peer::new(), Peer::new(), Peer::new());

    let (ok, n) = watch(&bob, port, "bob", "example.com");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}\n{}", log());
    assert!(
        header(&n, "Subscription-State")[0].starts_with("active;expires="),
        "{n}"
    );
    let (ok, n) = watch(&carol, port, "carol", "example.com");
    assert!(ok.starts_with("SIP/2.0 202 OK"), "{ok}");
    assert!(
        header(&n, "Subscription-State")[0].starts_with("pending;expires="),
        "{n}"
    );
    assert!(header(&n, "Content-Type").is_empty(), "{n}");
    let (ok, n) = watch(&eve, port, "eve", "example.com");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert_eq!(
        header(&n, "Subscription-State"),
        vec!["terminated;reason=rejected"]
    );
    let (ok, n) = watch(&mal, port, "mal", "other.net");
    assert!(ok.starts_with("SIP/2.0 202 OK"), "{ok}");
    assert!(
        header(&n, "Subscription-State")[0].starts_with("pending;"),
        "{n}"
    );

    // alice now allows the whole of example.com; MI applies it: carol hears she is active,
    // bob (no change) hears nothing.
    let rules = [
        rule("<cr:one id=\"sip:eve@example.com\"/>", "block"),
        rule("<cr:many domain=\"example.com\"/>", "allow"),
    ]
    .concat();
    std::fs::write(db.join("xcap"), xcap_table(&rules)).unwrap();
    let fifo = dir.join("fifo");
    // db_text reads the xcap file again (only it: the other tables' changes are in memory).
    let db_name = format!("text://{}", db.display());
    let (ok, out) = common::opensips_cli(&fifo, &["dbt_reload", &db_name, "xcap"]);
    assert!(ok, "{out}");
    let (ok, out) = common::opensips_cli(
        &fifo,
        &[
            "presence:refresh_watchers",
            "sip:alice@example.com",
            "presence",
            "0",
        ],
    );
    assert!(ok && out.contains("OK"), "{out}\n{}", log());
    let n = carol.recv("NOTIFY");
    carol.send(port, &reply_to(&n, "200 OK", "", ""));
    assert!(
        header(&n, "Subscription-State")[0].starts_with("active;expires="),
        "{n}"
    );
    assert_eq!(header(&n, "CSeq"), vec!["2 NOTIFY"]);
    assert_eq!(bob.quiet(Duration::from_millis(300)), None);
    // Without a document the refresh fails as an MI error.
    std::fs::write(
        db.join("xcap"),
        "id(int,auto) username(string) domain(string) doc(blob) doc_type(int) etag(string) \
         source(int) doc_uri(string) port(int)\n",
    )
    .unwrap();
    common::opensips_cli(&fifo, &["dbt_reload", &db_name, "xcap"]);
    let (ok, out) = common::opensips_cli(
        &fifo,
        &[
            "presence:refresh_watchers",
            "sip:alice@example.com",
            "presence",
            "0",
        ],
    );
    assert!(!ok && out.contains("Failed to refresh watchers"), "{out}");
    server.terminate(log);
    // The watchers table holds each decision (written back at shutdown).
    let watchers = std::fs::read_to_string(db.join("watchers")).unwrap();
    for (who, status) in [("bob", 1), ("carol", 1), ("eve", 3), ("mal", 2)] {
        assert!(
            watchers
                .lines()
                .any(|l| l.contains(&format!(":{who}:"))
                    && l.contains(&format!(":presence:{status}:"))),
            "{who}: {watchers}"
        );
    }
}
