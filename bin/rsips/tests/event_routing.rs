//! event_routing end to end, on the push-notification pattern of OpenSIPS' documentation: a
//! call to a user with no contact is kept open (`t_wait_for_new_branches`) with
//! `notify_on_event("E_UL_CONTACT_INSERT", …)`; when the user registers, usrloc's event runs
//! the notification route, which `t_inject_branches("event")` the new contact into the waiting
//! call — the callee's phone rings and its answer reaches the caller. A registration of
//! somebody else does not match the filter. `wait_for_event` holds a request until a matching
//! registration (its attributes in `$avp`s) or its timeout.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{Peer, header, reply_to};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
udp_workers=4
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "tm.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "event_routing.so"

route {
    if (is_method("REGISTER")) {
        save("location");
        exit;
    }
    if ($rU == "wait") {
        $avp(filter) = "aor=waiter@*";
        $avp(filter) = "uri=sip:waiter@*";
        wait_for_event("E_UL_CONTACT_INSERT", $avp(filter), 8);
        if ($rc == 1)
            sl_send_reply(200, "Registered $avp(uri)");
        else
            sl_send_reply(408, "Nobody $rc");
        exit;
    }
    if ($rU == "nowait") {
        $avp(filter) = "aor=nobody@*";
        wait_for_event("E_UL_CONTACT_INSERT", $avp(filter), 1);
        sl_send_reply(408, "Nobody $rc");
        exit;
    }
    if (is_method("INVITE")) {
        t_newtran();
        t_wait_for_new_branches();
        $avp(filter) = "aor=" + $rU + "@" + $rd;
        if (!notify_on_event("E_UL_CONTACT_INSERT", $avp(filter), "fork_call", 20))
            xlog("L_ERR", "cannot subscribe\n");
        if (lookup("location"))
            t_relay();
        exit;
    }
    if (t_check_trans())
        t_relay();
}

route[fork_call] {
    xlog("L_NOTICE", "injecting $avp(uri) for $avp(aor)\n");
    t_inject_branches("event");
}
"#;

fn register(phone: &Peer, port: u16, user: &str, n: u32) -> String {
    phone.send(
        port,
        &format!(
            "REGISTER sip:127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-reg-{user}-{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=r{n}\r\nTo: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: reg-{user}-{n}-{port}\r\nCSeq: {n} REGISTER\r\n\
             Contact: <sip:{user}@127.0.0.1:{p}>;expires=300\r\nContent-Length: 0\r\n\r\n",
            p = phone.port
        ),
    );
    phone.recv("REGISTER reply")
}

fn options(peer: &Peer, port: u16, to: &str, n: u32) {
    peer.send(
        port,
        &format!(
            "OPTIONS sip:{to}@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-ebr-{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a{n}\r\nTo: <sip:{to}@127.0.0.1>\r\n\
             Call-ID: ebr-{n}-{port}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            peer.port
        ),
    );
}

#[test]
fn a_waiting_call_rings_the_phone_that_registers_and_wait_for_event_wakes() {
    let port = common::free_port();
    let dir = common::test_dir("ebr", &port.to_string());
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG.replace("PORT", &port.to_string()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    let (caller, bob, carol) = (Peer::new(), Peer::new(), Peer::new());

    // Alice calls bob, who has no contact yet: the call waits.
    caller.send(
        port,
        &format!(
            "INVITE sip:bob@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-push-1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=al\r\nTo: <sip:bob@127.0.0.1>\r\n\
             Call-ID: push-{port}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{c}>\r\n\
             Content-Length: 0\r\n\r\n",
            c = caller.port
        ),
    );
    assert_eq!(
        caller.quiet(Duration::from_millis(500)),
        None,
        "the call waits: {}",
        log()
    );
    // Somebody else registers: the filter keeps the call from them.
    let r = register(&carol, port, "carol", 1);
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    assert_eq!(carol.quiet(Duration::from_millis(500)), None, "{}", log());
    // Bob's phone registers (woken by a push, say): it rings.
    let r = register(&bob, port, "bob", 1);
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    let invite = bob.recv("the injected INVITE");
    assert!(
        invite.starts_with(&format!("INVITE sip:bob@127.0.0.1:{} SIP/2.0", bob.port)),
        "{invite}\n{}",
        log()
    );
    assert_eq!(header(&invite, "Call-ID"), [format!("push-{port}")]);
    assert!(
        log().contains(&format!(
            "injecting sip:bob@127.0.0.1:{} for bob@127.0.0.1",
            bob.port
        )),
        "{}",
        log()
    );
    // Bob answers; the answer reaches alice.
    bob.send(port, &reply_to(&invite, "200 OK", "b", ""));
    let answer = caller.recv("200 OK");
    assert!(answer.starts_with("SIP/2.0 200 OK"), "{answer}");
    assert_eq!(header(&answer, "CSeq"), ["1 INVITE"]);

    // wait_for_event: the request waits for the matching registration; its attributes are
    // $avp(name)s afterwards.
    let waiter = Peer::new();
    options(&caller, port, "wait", 2);
    assert_eq!(caller.quiet(Duration::from_millis(500)), None, "it waits");
    let r = register(&waiter, port, "waiter", 1);
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    let woken = caller.recv("the waiting request's reply");
    assert_eq!(
        woken.lines().next().unwrap(),
        format!(
            "SIP/2.0 200 Registered sip:waiter@127.0.0.1:{}",
            waiter.port
        ),
        "{}",
        log()
    );
    // Nobody comes: -2 after its timeout.
    options(&caller, port, "nowait", 3);
    let r = caller.recv("the timeout");
    assert_eq!(r.lines().next().unwrap(), "SIP/2.0 408 Nobody -2");
}
