//! uac_redirect: a callee answers 302 with three contacts; the failure route denies one by
//! filter and `get_redirects(2)` makes the lowest-q contact the R-URI and the next a branch;
//! `t_relay()` rings both, the first to answer gets the call and the other a CANCEL. A 302
//! whose contacts are all filtered out leaves `get_redirects()` failing.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, reply_to};

const CONFIG: &str = r#"
socket=udp:127.0.0.1:PORT
udp_workers=1
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "uac_redirect.so"
modparam("uac_redirect", "deny_filter", "nowhere")
route {
    if (is_method("ACK")) {
        t_relay();
        exit;
    }
    t_on_failure("redir");
    $du = "sip:127.0.0.1:CALLEE";
    t_relay();
}
failure_route[redir] {
    if (t_check_status("3[0-9][0-9]")) {
        set_deny_filter("bad\.example", "");
        if (get_redirects(2)) {
            t_relay();
            exit;
        }
        t_reply(404, "No redirect");
    }
}
"#;

fn invite(caller: &Peer, id: &str) -> String {
    format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-{id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: {id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{cp}>\r\n\
         Content-Length: 0\r\n\r\n",
        cp = caller.port
    )
}

#[test]
fn a_302_becomes_new_branches() {
    let (caller, callee, gw2, gw3) = (Peer::new(), Peer::new(), Peer::new(), Peer::new());
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-uacr-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("CALLEE", &callee.port.to_string()),
    )
    .unwrap();
    let _server = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));

    caller.send(port, &invite(&caller, "rd-1"));
    let inv = callee.recv("INVITE");
    let contacts = format!(
        "Contact: <sip:gw2@127.0.0.1:{}>;q=0.5, <sip:x@bad.example>;q=0.9\r\n\
         Contact: <sip:gw3@127.0.0.1:{}>;q=0.2\r\n",
        gw2.port, gw3.port
    );
    callee.send(
        port,
        &reply_to(&inv, "302 Moved Temporarily", "c1", &contacts),
    );
    assert!(callee.recv("ACK of the 302").starts_with("ACK "));
    // The lowest q first: gw3 as the R-URI, gw2 as a branch; bad.example denied.
    let to3 = gw3.recv("INVITE to gw3");
    assert!(
        to3.starts_with(&format!("INVITE sip:gw3@127.0.0.1:{} SIP/2.0", gw3.port)),
        "{to3}"
    );
    let to2 = gw2.recv("INVITE to gw2");
    assert!(
        to2.starts_with(&format!("INVITE sip:gw2@127.0.0.1:{} SIP/2.0", gw2.port)),
        "{to2}"
    );
    // gw2 rings (a branch can only be cancelled once it answered provisionally).
    gw2.send(port, &reply_to(&to2, "180 Ringing", "g2", ""));
    assert!(caller.recv("180").starts_with("SIP/2.0 180"));
    let contact = format!("Contact: <sip:gw3@127.0.0.1:{}>\r\n", gw3.port);
    gw3.send(port, &reply_to(&to3, "200 OK", "g3", &contact));
    let ok = caller.recv("200");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert!(gw2.recv("CANCEL to gw2").starts_with("CANCEL "));

    // Every contact filtered out: get_redirects() fails, the script answers 404.
    caller.send(port, &invite(&caller, "rd-2"));
    let inv = callee.recv("INVITE 2");
    callee.send(
        port,
        &reply_to(
            &inv,
            "302 Moved Temporarily",
            "c2",
            "Contact: <sip:y@bad.example>\r\n",
        ),
    );
    assert!(callee.recv("ACK of the 302").starts_with("ACK "));
    let r = caller.recv("404");
    assert!(r.starts_with("SIP/2.0 404 No redirect"), "{r}");
}
