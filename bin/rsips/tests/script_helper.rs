//! script_helper: a main route that only picks the destination runs a whole call, because the
//! module record-routes the INVITE and takes the sequential requests itself (loose routing,
//! `sequential_route` before relaying, the main route never run for them); an in-dialog
//! request without our Route gets `404 Not Here`; `exit` in the sequential route keeps the
//! request from being relayed. A script that loads it without rr/sl/tm does not start.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, header, reply_to};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "script_helper.so"
modparam("script_helper", "sequential_route", "in_dialog")

route {
    xlog("L_NOTICE", "main route: $rm\n");
    append_hf("X-Main: yes\r\n");
    $du = "sip:127.0.0.1:CALLEE";
    t_relay();
}

route[in_dialog] {
    xlog("L_NOTICE", "sequential route: $rm\n");
    if (is_method("INFO")) {
        sl_send_reply(200, "Handled Here");
        exit;
    }
}
"#;

fn in_dialog(caller: &Peer, port: u16, method: &str, cseq: u32, route: Option<&str>) -> String {
    let route = route.map_or(String::new(), |r| format!("Route: {r}\r\n"));
    format!(
        "{method} sip:bob@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-sh-{cseq}{method}\r\n\
         {route}Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=al\r\nTo: <sip:bob@127.0.0.1>;tag=bo\r\n\
         Call-ID: sh-{port}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
        c = caller.port
    )
}

#[test]
fn a_bare_main_route_runs_a_whole_call() {
    let port = common::free_port();
    let (caller, callee) = (Peer::new(), Peer::new());
    let dir = common::test_dir("sh", &port.to_string());
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("CALLEE", &callee.port.to_string()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();

    // The INVITE goes through the main route, record-routed by the module.
    caller.send(
        port,
        &format!(
            "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-sh-inv\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=al\r\nTo: <sip:bob@127.0.0.1>\r\n\
             Call-ID: sh-{port}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{c}>\r\n\
             Content-Length: 0\r\n\r\n",
            c = caller.port
        ),
    );
    let invite = callee.recv("INVITE");
    assert!(invite.starts_with("INVITE "), "{invite}");
    assert_eq!(header(&invite, "X-Main"), ["yes"], "{invite}");
    let rr = header(&invite, "Record-Route");
    assert_eq!(rr.len(), 1, "{invite}");
    assert!(rr[0].contains(&format!("127.0.0.1:{port}")), "{invite}");
    callee.send(
        port,
        &reply_to(
            &invite,
            "200 OK",
            "bo",
            &format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", callee.port),
        ),
    );
    let ok = caller.recv("200 OK");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    let route = header(&ok, "Record-Route")[0].to_owned();

    // In the dialog, through our Route (the R-URI is the callee's Contact): the module
    // relays, after the sequential route; the main route does not run (no X-Main).
    let bye_ruri = format!("sip:bob@127.0.0.1:{}", callee.port);
    let bye = in_dialog(&caller, port, "BYE", 2, Some(&route)).replacen(
        "sip:bob@127.0.0.1",
        &bye_ruri,
        1,
    );
    caller.send(port, &bye);
    let got = callee.recv("BYE");
    assert!(got.starts_with("BYE "), "{got}");
    assert!(header(&got, "X-Main").is_empty(), "{got}");
    callee.send(port, &reply_to(&got, "200 OK", "", ""));
    let r = caller.recv("BYE's 200");
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert!(log().contains("sequential route: BYE"), "{}", log());
    assert!(!log().contains("main route: BYE"), "{}", log());

    // `exit` in the sequential route: answered there, never relayed.
    let info = in_dialog(&caller, port, "INFO", 3, Some(&route)).replacen(
        "sip:bob@127.0.0.1",
        &bye_ruri,
        1,
    );
    caller.send(port, &info);
    let r = caller.recv("INFO's reply");
    assert!(r.starts_with("SIP/2.0 200 Handled Here"), "{r}");
    assert_eq!(callee.quiet(std::time::Duration::from_millis(300)), None);

    // In a dialog but without our Route: 404 Not Here.
    caller.send(port, &in_dialog(&caller, port, "OPTIONS", 4, None));
    let r = caller.recv("404");
    assert!(r.starts_with("SIP/2.0 404 Not Here"), "{r}");
    assert!(!log().contains("main route: OPTIONS"), "{}", log());
}

#[test]
fn it_needs_rr_sl_and_tm() {
    let err = common::refused_start(
        "script_helper_deps",
        "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\n\
         loadmodule \"script_helper.so\"\nroute { exit; }\n",
    );
    assert!(
        err.contains("script_helper needs modules `rr`, `tm` loaded"),
        "{err}"
    );
}
