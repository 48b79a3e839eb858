//! usrloc's per-record key-value store: `ul_add_key`, `ul_get_key`, `ul_del_key` on a
//! registered user (false for one that is not), the store gone with the record.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, header};

const CONFIG: &str = r#"
socket=udp:127.0.0.1:PORT
log_level=3
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
route {
    if (is_method("REGISTER")) {
        save("location");
        exit;
    }
    if ($rU == "set") {
        if (ul_add_key("location", "$fU@$fd", "service_route", "<sip:orig@scscf.example.com;lr>"))
            append_to_reply("X-Set: ok\r\n");
        else
            append_to_reply("X-Set: no record\r\n");
    }
    if ($rU == "del")
        ul_del_key("location", "$fU@$fd", "service_route");
    if (ul_get_key("location", "$fU@$fd", "service_route", $var(sr)))
        append_to_reply("X-Service-Route: $var(sr)\r\n");
    else
        append_to_reply("X-Service-Route: none\r\n");
    sl_send_reply(200, "OK");
}
"#;

fn request(
    p: &Peer,
    port: u16,
    method: &str,
    from: &str,
    ruri: &str,
    extra: &str,
    n: u32,
) -> String {
    common::request_from(p, port, (method, from, ruri), extra, n)
}

#[test]
fn keys_live_with_the_registration() {
    let port = common::free_port();
    let dir = common::test_dir("usrlockv", &port.to_string());
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG.replace("PORT", &port.to_string()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let p = Peer::new();
    let sr = |r: &str| header(r, "X-Service-Route").join("|");

    // Not registered: nothing to keep the key in.
    let r = request(&p, port, "OPTIONS", "alice", "sip:set@example.com", "", 1);
    assert_eq!(header(&r, "X-Set"), ["no record"], "{r}");
    assert_eq!(sr(&r), "none");

    let contact = format!(
        "Contact: <sip:alice@127.0.0.1:{}>\r\nExpires: 600\r\n",
        p.port
    );
    let r = request(
        &p,
        port,
        "REGISTER",
        "alice",
        "sip:example.com",
        &contact,
        2,
    );
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let r = request(&p, port, "OPTIONS", "alice", "sip:set@example.com", "", 3);
    assert_eq!(header(&r, "X-Set"), ["ok"], "{r}");
    assert_eq!(sr(&r), "<sip:orig@scscf.example.com;lr>");
    let r = request(&p, port, "OPTIONS", "alice", "sip:get@example.com", "", 4);
    assert_eq!(sr(&r), "<sip:orig@scscf.example.com;lr>");
    let r = request(&p, port, "OPTIONS", "alice", "sip:del@example.com", "", 5);
    assert_eq!(sr(&r), "none");

    // Set again, then unregister: the key goes with the record.
    request(&p, port, "OPTIONS", "alice", "sip:set@example.com", "", 6);
    let gone = format!(
        "Contact: <sip:alice@127.0.0.1:{}>\r\nExpires: 0\r\n",
        p.port
    );
    let r = request(&p, port, "REGISTER", "alice", "sip:example.com", &gone, 7);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let r = request(
        &p,
        port,
        "REGISTER",
        "alice",
        "sip:example.com",
        &contact,
        8,
    );
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let r = request(&p, port, "OPTIONS", "alice", "sip:get@example.com", "", 9);
    assert_eq!(sr(&r), "none", "{r}");
}
