//! Busy lamps and message waiting through one rsips, as OpenSIPS does them: a proxy that
//! marks its calls with `dialoginfo_set()` (pua_dialoginfo) publishes each call's state
//! through pua to its own presence server (presence, presence_dialoginfo), which tells the
//! watchers of the caller and the callee (RFC 4235 dialog-info): early, confirmed,
//! terminated, for an answered call and a refused one. presence_mwi keeps a voicemail
//! server's message summaries for their watchers (RFC 3842). pua's publications are in its
//! table (db_text) when rsips stops mid-call, and found there when it starts again.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Peer, header, reply_to};
use roxmltree::Document;

/// pua's table as a db_text file.
const PUA_TABLE: &str = "id(int,auto) pres_uri(string) pres_id(string) event(int) expires(int) \
     desired_expires(int) flag(int) etag(string,null) tuple_id(string,null) \
     watcher_uri(string,null) to_uri(string,null) call_id(string,null) to_tag(string,null) \
     from_tag(string,null) cseq(int,null) record_route(string,null) contact(string,null) \
     remote_contact(string,null) version(int,null) extra_headers(string,null) \
     sharing_tag(string,null)\n";

/// presence's and pua's tables in `db`, the `version` file listing them and `extra`.
fn tables(db: &Path, extra: &str) {
    std::fs::create_dir_all(db).unwrap();
    for (name, text) in common::schema::DBTEXT_PRESENCE {
        std::fs::write(db.join(name), text).unwrap();
    }
    std::fs::write(db.join("pua"), PUA_TABLE).unwrap();
    std::fs::write(
        db.join("version"),
        format!(
            "table_name(str) table_version(int)\npresentity:5\nactive_watchers:12\nwatchers:4\npua:9\n{extra}"
        ),
    )
    .unwrap();
}

/// The presence server's route, the same in both configs.
const PRESENCE_ROUTE: &str = r#"
route[presence] {
    if (!t_newtran()) {
        sl_reply_error();
        exit;
    }
    if (is_method("PUBLISH"))
        handle_publish();
    else
        handle_subscribe();
    exit;
}
"#;

const CONFIG: &str = r#"
socket=udp:127.0.0.1:PORT
alias=example.com
stderror_enabled=yes
log_level=3
loadmodule "proto_udp.so"
loadmodule "signaling.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
loadmodule "db_text.so"
loadmodule "presence.so"
loadmodule "presence_dialoginfo.so"
loadmodule "presence_mwi.so"
loadmodule "presence_reginfo.so"
loadmodule "pua.so"
loadmodule "pua_dialoginfo.so"
modparam("presence|pua", "db_url", "text://DB")
modparam("pua_dialoginfo", "presence_server", "sip:127.0.0.1:PORT")

route {
    if (has_totag()) {
        if (loose_route()) {
            t_relay();
            exit;
        }
        if (is_method("SUBSCRIBE"))
            route(presence);
        if (is_method("ACK") && t_check_trans())
            t_relay();
        exit;
    }
    if (is_method("PUBLISH|SUBSCRIBE"))
        route(presence);
    if (is_method("INVITE")) {
        record_route();
        dialoginfo_set();
        $du = "sip:127.0.0.1:BOB";
        t_relay();
        exit;
    }
    send_reply(404, "Not here");
}

"#;

fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// A SUBSCRIBE from the watcher to `target`@example.com.
fn subscribe(w: &Peer, port: u16, target: &str, event: &str, call: &str) -> String {
    w.send(
        port,
        &format!(
            "SUBSCRIBE sip:{target}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-{call}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:watcher@example.com>;tag=w-{call}\r\nTo: <sip:{target}@example.com>\r\n\
             Call-ID: {call}\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:watcher@127.0.0.1:{lp}>\r\n\
             Event: {event}\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n",
            lp = w.port
        ),
    );
    w.recv("the SUBSCRIBE reply")
}

/// The watcher's next NOTIFY, answered 200.
fn notify(w: &Peer, port: u16, log: &dyn Fn() -> String) -> String {
    let n = w.recv("NOTIFY");
    assert!(
        n.starts_with("NOTIFY sip:watcher@"),
        "at port {}: {n}\n{}",
        w.port,
        log()
    );
    w.send(port, &reply_to(&n, "200 OK", "", ""));
    n
}

/// The dialogs of a NOTIFY's dialog-info document: (id, state, direction, remote identity,
/// its display name).
fn dialogs(n: &str) -> Vec<(String, String, String, String, String)> {
    assert_eq!(
        header(n, "Content-Type"),
        ["application/dialog-info+xml"],
        "{n}"
    );
    let text = body(n);
    let doc = Document::parse(text).unwrap_or_else(|e| panic!("{e}: {n}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "dialog-info", "{n}");
    assert_eq!(root.attribute("state"), Some("full"), "{n}");
    root.children()
        .filter(|d| d.tag_name().name() == "dialog")
        .map(|d| {
            let child = |name: &str| d.children().find(|c| c.tag_name().name() == name);
            let remote = child("remote")
                .and_then(|r| r.children().find(|c| c.tag_name().name() == "identity"));
            (
                d.attribute("id").unwrap_or("").to_owned(),
                child("state")
                    .and_then(|s| s.text())
                    .unwrap_or("")
                    .to_owned(),
                d.attribute("direction").unwrap_or("").to_owned(),
                remote.and_then(|r| r.text()).unwrap_or("").to_owned(),
                remote
                    .and_then(|r| r.attribute("display"))
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect()
}

/// A call from alice answered by bob, `ringing` run once alice has the 180: (the 200 alice
/// got).
fn answered_call(a: &Peer, b: &Peer, port: u16, call: &str, ringing: impl Fn()) -> String {
    a.send(port, &common::invite_to_bob(a, call));
    let inv = b.recv("the INVITE at bob");
    assert!(inv.starts_with("INVITE sip:bob@example.com"), "{inv}");
    b.send(
        port,
        &reply_to(&inv, "180 Ringing", &format!("b-{call}"), ""),
    );
    assert!(a.recv("180").starts_with("SIP/2.0 180"));
    ringing();
    b.send(
        port,
        &reply_to(
            &inv,
            "200 OK",
            &format!("b-{call}"),
            &format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", b.port),
        ),
    );
    let ok = a.recv("200");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    a.send(
        port,
        &common::within(a, &ok, "ACK", 1, &format!("{call}-ack")),
    );
    assert!(b.recv("ACK").starts_with("ACK "));
    ok
}

fn start(dir: &Path) -> common::Kill {
    common::spawn_rsips(dir, "rsips.cfg", |l| l.contains("listening on udp:"))
}

#[test]
fn busy_lamps_and_message_waiting() {
    let dir = common::test_dir("blf", "main");
    let db = dir.join("db");
    tables(&db, "");
    let port = common::free_port();
    let (w, a, b, vm) = (Peer::new(), Peer::new(), Peer::new(), Peer::new());
    std::fs::write(
        dir.join("rsips.cfg"),
        (CONFIG.to_owned() + PRESENCE_ROUTE)
            .replace("PORT", &port.to_string())
            .replace("BOB", &b.port.to_string())
            .replace("DB", &db.display().to_string()),
    )
    .unwrap();
    let mut rsips = start(&dir);
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();

    // An event nobody handles: the two this server has.
    let r = subscribe(&w, port, "bob", "conference", "sub-0");
    assert!(r.starts_with("SIP/2.0 489"), "{r}");
    let allow = header(&r, "Allow-Events").join(",");
    assert!(
        allow.contains("dialog") && allow.contains("message-summary"),
        "{r}"
    );

    // Bob's lamp: nothing going on yet.
    let r = subscribe(&w, port, "bob", "dialog", "sub-bob");
    assert!(r.starts_with("SIP/2.0 200"), "{r}\n{}", log());
    let n = notify(&w, port, &log);
    assert!(
        header(&n, "Subscription-State")[0].starts_with("active"),
        "{n}"
    );
    assert!(dialogs(&n).is_empty(), "{n}");
    let entity = Document::parse(body(&n))
        .unwrap()
        .root_element()
        .attribute("entity")
        .map(str::to_owned);
    assert_eq!(entity.as_deref(), Some("sip:bob@example.com"));

    // An answered call: ringing, then talking, then idle again.
    a.send(port, &common::invite_to_bob(&a, "call-1"));
    let inv = b.recv("the INVITE at bob");
    b.send(port, &reply_to(&inv, "180 Ringing", "b-call-1", ""));
    assert!(a.recv("180").starts_with("SIP/2.0 180"));
    let n = notify(&w, port, &log);
    assert_eq!(
        dialogs(&n),
        vec![(
            "call-1.0".into(),
            "early".into(),
            "recipient".into(),
            "sip:alice@example.com".into(),
            "Alice".into()
        )],
        "{n}"
    );
    b.send(
        port,
        &reply_to(
            &inv,
            "200 OK",
            "b-call-1",
            &format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", b.port),
        ),
    );
    let ok = a.recv("200");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let n = notify(&w, port, &log);
    let d = dialogs(&n);
    assert_eq!(d.len(), 1, "{n}");
    assert_eq!(
        (d[0].0.as_str(), d[0].1.as_str()),
        ("call-1.0", "confirmed"),
        "{n}"
    );
    a.send(port, &common::within(&a, &ok, "ACK", 1, "call-1-ack"));
    assert!(b.recv("ACK").starts_with("ACK "));
    a.send(port, &common::within(&a, &ok, "BYE", 2, "call-1-bye"));
    let bye = b.recv("BYE");
    assert!(bye.starts_with("BYE "), "{bye}");
    b.send(port, &reply_to(&bye, "200 OK", "", ""));
    assert!(a.recv("BYE 200").starts_with("SIP/2.0 200"));
    // The PUBLISH that ends the publication says terminated; then the lamp is idle.
    let n = notify(&w, port, &log);
    let d = dialogs(&n);
    assert_eq!(
        (d[0].0.as_str(), d[0].1.as_str()),
        ("call-1.0", "terminated"),
        "{n}"
    );
    let n = notify(&w, port, &log);
    assert!(dialogs(&n).is_empty(), "{n}");

    // A refused call: ringing, then busy. (Each state is seen before the next comes: a
    // NOTIFY tells the state as it is when it is sent, so a quicker change would skip one.)
    let state_of = |n: &str| {
        dialogs(n)
            .first()
            .map_or_else(|| "idle".to_owned(), |d| d.1.clone())
    };
    a.send(port, &common::invite_to_bob(&a, "call-2"));
    let inv = b.recv("the INVITE at bob");
    b.send(port, &reply_to(&inv, "180 Ringing", "b-call-2", ""));
    assert!(a.recv("180").starts_with("SIP/2.0 180"));
    assert_eq!(state_of(&notify(&w, port, &log)), "early");
    b.send(port, &reply_to(&inv, "486 Busy Here", "b-call-2", ""));
    assert!(b.recv("tm's ACK of the 486").starts_with("ACK "));
    let busy = a.recv("486");
    assert!(busy.starts_with("SIP/2.0 486"), "{busy}");
    a.send(port, &common::ack_for(&busy, "sip:bob@example.com"));
    let states: Vec<String> = (0..2).map(|_| state_of(&notify(&w, port, &log))).collect();
    assert_eq!(states, ["terminated", "idle"], "{}", log());
    assert_eq!(w.quiet(Duration::from_millis(300)), None);

    // Message waiting: the voicemail server publishes carol's summary; her phone subscribes.
    let summary = "Messages-Waiting: yes\r\nMessage-Account: sip:carol@example.com\r\nVoice-Message: 2/8 (0/2)\r\n";
    vm.send(
        port,
        &format!(
            "PUBLISH sip:carol@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-vm1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:voicemail@example.com>;tag=vm1\r\nTo: <sip:carol@example.com>\r\n\
             Call-ID: vm-1\r\nCSeq: 1 PUBLISH\r\nEvent: message-summary\r\nExpires: 600\r\n\
             Content-Type: application/simple-message-summary\r\nContent-Length: {}\r\n\r\n{summary}",
            summary.len(),
            lp = vm.port
        ),
    );
    let r = vm.recv("the PUBLISH reply");
    assert!(r.starts_with("SIP/2.0 200"), "{r}\n{}", log());
    assert_eq!(header(&r, "SIP-ETag").len(), 1, "{r}");
    let carol = Peer::new();
    let r = subscribe(&carol, port, "carol", "message-summary", "sub-carol");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let n = notify(&carol, port, &log);
    assert_eq!(
        header(&n, "Content-Type"),
        ["application/simple-message-summary"],
        "{n}"
    );
    assert_eq!(body(&n), summary, "{n}");
    // Nobody publishes for dave: a NOTIFY without a body. (Another phone: carol's may get
    // a second NOTIFY, from the PUBLISH's own round of NOTIFYs, which raced her SUBSCRIBE.)
    let dave = Peer::new();
    let r = subscribe(&dave, port, "dave", "message-summary", "sub-dave");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let n = notify(&dave, port, &log);
    assert!(
        body(&n).is_empty() && header(&n, "Content-Type").is_empty(),
        "{n}"
    );

    // Registration state (presence_reginfo): the published document with the watcher's own
    // version, one more at each change.
    let reg = |state: &str| {
        format!(
            "<?xml version=\"1.0\"?>\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"0\" \
             state=\"full\"><registration aor=\"sip:erin@example.com\" id=\"a1\" state=\"{state}\"/></reginfo>"
        )
    };
    let publish_reg = |body: &str, n: u32, etag: Option<&str>| {
        let if_match = etag.map_or(String::new(), |e| format!("SIP-If-Match: {e}\r\n"));
        vm.send(
            port,
            &format!(
                "PUBLISH sip:erin@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-reg{n}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:registrar@example.com>;tag=reg{n}\r\nTo: <sip:erin@example.com>\r\n\
                 Call-ID: reg-{n}\r\nCSeq: 1 PUBLISH\r\nEvent: reg\r\nExpires: 600\r\n{if_match}\
                 Content-Type: application/reginfo+xml\r\nContent-Length: {}\r\n\r\n{body}",
                body.len(),
                lp = vm.port
            ),
        );
        let r = vm.recv("the PUBLISH reply");
        assert!(r.starts_with("SIP/2.0 200"), "{r}\n{}", log());
        header(&r, "SIP-ETag")[0].to_owned()
    };
    // Subscribed first (a NOTIFY without a body), so that each PUBLISH makes one NOTIFY.
    let erin = Peer::new();
    let r = subscribe(&erin, port, "erin", "reg", "sub-erin");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let n = notify(&erin, port, &log);
    assert!(body(&n).is_empty(), "{n}");
    let version_state = |n: &str| {
        assert_eq!(
            header(n, "Content-Type"),
            ["application/reginfo+xml"],
            "{n}"
        );
        let d = Document::parse(body(n)).unwrap_or_else(|e| panic!("{e}: {n}"));
        let root = d.root_element();
        let state = root
            .first_element_child()
            .and_then(|r| r.attribute("state"))
            .unwrap_or("")
            .to_owned();
        (
            root.attribute("version")
                .unwrap_or("")
                .parse::<u32>()
                .unwrap(),
            state,
        )
    };
    let etag = publish_reg(&reg("active"), 1, None);
    let (v1, st) = version_state(&notify(&erin, port, &log));
    assert_eq!(st, "active");
    publish_reg(&reg("terminated"), 2, Some(&etag));
    let (v2, st) = version_state(&notify(&erin, port, &log));
    assert_eq!((v2, st.as_str()), (v1 + 1, "terminated"));

    // A call in progress when rsips stops: pua's two publications (alice's and bob's) are
    // written to its table, and read back at the next start.
    answered_call(&a, &b, port, "call-3", || {
        assert_eq!(state_of(&notify(&w, port, &log)), "early");
    });
    assert_eq!(state_of(&notify(&w, port, &log)), "confirmed");
    // The confirmed publications have their entity tags before rsips stops.
    std::thread::sleep(Duration::from_millis(300));
    rsips.terminate(log);
    let table = std::fs::read_to_string(db.join("pua")).unwrap();
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{table}\n{}", log());
    for who in ["alice", "bob"] {
        assert!(
            rows.iter()
                .any(|r| r.contains(&format!("sip\\:{who}@example.com:call-3.0:64:"))),
            "{table}"
        );
    }
    let mut rsips = start(&dir);
    let restarted = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !restarted().contains("pua: 2 publication(s) restored") {
        assert!(std::time::Instant::now() < deadline, "{}", restarted());
        std::thread::sleep(Duration::from_millis(50));
    }
    rsips.terminate(restarted);
}

#[test]
fn pua_dialoginfo_needs_pua_and_dialog() {
    let base = "loadmodule \"proto_udp.so\"\nsocket=udp:127.0.0.1:PORT\nloadmodule \"signaling.so\"\n\
                loadmodule \"sl.so\"\nloadmodule \"tm.so\"\n";
    let out = common::refused_start(
        "blf-nopua",
        &format!(
            "{base}loadmodule \"dialog.so\"\nloadmodule \"pua_dialoginfo.so\"\nroute {{ exit; }}\n"
        ),
    );
    assert!(out.contains("pua_dialoginfo needs the pua module"), "{out}");
    let out = common::refused_start(
        "blf-nodlg",
        &format!(
            "{base}loadmodule \"db_text.so\"\nloadmodule \"pua.so\"\nmodparam(\"pua\", \"db_url\", \"text:///nonexistent\")\n\
             loadmodule \"pua_dialoginfo.so\"\nroute {{ exit; }}\n"
        ),
    );
    assert!(
        out.contains("pua_dialoginfo needs the dialog module"),
        "{out}"
    );
    let out = common::refused_start(
        "blf-nopres",
        &format!("{base}loadmodule \"presence_mwi.so\"\nroute {{ exit; }}\n"),
    );
    assert!(
        out.contains("presence_mwi needs the presence module"),
        "{out}"
    );
}

const UL_CONFIG: &str = r#"
socket=udp:127.0.0.1:PORT
alias=example.com
stderror_enabled=yes
log_level=3
loadmodule "proto_udp.so"
loadmodule "signaling.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "db_text.so"
loadmodule "xcap.so"
loadmodule "presence.so"
loadmodule "presence_xml.so"
loadmodule "pua.so"
loadmodule "pua_usrloc.so"
modparam("xcap|presence|pua", "db_url", "text://DB")
modparam("presence_xml", "force_active", 1)
modparam("pua_usrloc", "presence_server", "sip:127.0.0.1:PORT")

route {
    if (has_totag()) {
        if (is_method("SUBSCRIBE"))
            route(presence);
        exit;
    }
    if (is_method("PUBLISH|SUBSCRIBE"))
        route(presence);
    if (is_method("REGISTER")) {
        if ($fU != "bob")
            pua_set_publish();
        save("location");
        exit;
    }
    send_reply(404, "Not here");
}

"#;

fn register(p: &Peer, port: u16, user: &str, cseq: u32, expires: u32) -> String {
    p.send(
        port,
        &format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-reg-{user}-{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@example.com>;tag=r-{user}\r\nTo: <sip:{user}@example.com>\r\n\
             Call-ID: reg-{user}@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:{lp}>\r\n\
             Expires: {expires}\r\nContent-Length: 0\r\n\r\n",
            lp = p.port
        ),
    );
    p.recv("the REGISTER reply")
}

/// The `<basic>` of a NOTIFY's PIDF document; "none" without a body.
fn basic(n: &str) -> String {
    let text = body(n);
    if text.is_empty() {
        return "none".into();
    }
    assert_eq!(header(n, "Content-Type"), ["application/pidf+xml"], "{n}");
    let doc = Document::parse(text).unwrap_or_else(|e| panic!("{e}: {n}"));
    doc.descendants()
        .find(|x| x.has_tag_name("basic"))
        .and_then(|b| b.text())
        .unwrap_or("")
        .to_owned()
}

/// pua_usrloc: a REGISTER marked with `pua_set_publish()` publishes the user open while the
/// contact lasts and closed once it is removed; an unmarked one publishes nothing.
#[test]
fn registrations_publish_presence() {
    let dir = common::test_dir("blf", "usrloc");
    let db = dir.join("db");
    tables(&db, "xcap:4\n");
    std::fs::write(
        db.join("xcap"),
        "id(int,auto) username(string) domain(string) doc(blob) doc_type(int) etag(string) \
         source(int) doc_uri(string) port(int)\n",
    )
    .unwrap();
    let port = common::free_port();
    std::fs::write(
        dir.join("rsips.cfg"),
        (UL_CONFIG.to_owned() + PRESENCE_ROUTE)
            .replace("PORT", &port.to_string())
            .replace("DB", &db.display().to_string()),
    )
    .unwrap();
    let mut rsips = start(&dir);
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    let (w, alice, bob) = (Peer::new(), Peer::new(), Peer::new());

    for (who, call) in [("alice", "sub-alice"), ("bob", "sub-bob")] {
        let r = subscribe(&w, port, who, "presence", call);
        assert!(r.starts_with("SIP/2.0 200"), "{r}\n{}", log());
        assert_eq!(basic(&notify(&w, port, &log)), "none");
    }
    let r = register(&alice, port, "alice", 1, 600);
    assert!(r.starts_with("SIP/2.0 200"), "{r}\n{}", log());
    let n = notify(&w, port, &log);
    assert!(n.contains("Call-ID: sub-alice"), "{n}");
    assert_eq!(basic(&n), "open", "{n}");
    // A refresh changes nothing the watcher sees (pua refreshes without a body).
    let r = register(&alice, port, "alice", 2, 600);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    assert_eq!(w.quiet(Duration::from_millis(500)), None);
    // bob's REGISTER is not marked: no publication.
    let r = register(&bob, port, "bob", 1, 600);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    assert_eq!(w.quiet(Duration::from_millis(500)), None);
    // alice unregisters: closed, then no publication at all.
    let r = register(&alice, port, "alice", 3, 0);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let states: Vec<String> = (0..2).map(|_| basic(&notify(&w, port, &log))).collect();
    assert_eq!(states, ["closed", "none"], "{}", log());
    rsips.terminate(log);
}
