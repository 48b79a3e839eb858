//! The path module end to end on UDP: a REGISTER relayed to a registrar of our own gets our
//! Path header (above the ones it has; with the user and `;received=` of the source for
//! `add_path_received`), two Path headers with `;r2=on` when it leaves by another socket,
//! and with `use_received` a request routed back by that Path goes to the address the
//! REGISTER came from.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, header};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
syslog_enabled=no
udp_workers=1
socket=udp:127.0.0.1:P1
socket=udp:127.0.0.1:P2
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "path.so"
modparam("path", "use_received", 1)
route {
    if (is_method("REGISTER")) {
        if ($hdr(X-User) != NULL) add_path_received("$hdr(X-User)");
        else add_path();
        if ($hdr(X-Out) != NULL) force_send_socket("udp:127.0.0.1:P2");
        $du = "sip:127.0.0.1:@REGISTRAR@";
        forward();
        exit;
    }
    # An edge proxy: requests the registrar routes by the Paths go on (a preloaded Route
    # to us on an initial request makes loose_route false, as in OpenSIPS).
    if (is_present_hf("Route")) {
        loose_route();
        forward();
        exit;
    }
    sl_send_reply(404, "Not here");
}
"#;

fn register(px: u16, ua: &Peer, n: u32, extra: &str) {
    ua.send(
        px,
        &format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-path{n}\r\n\
             From: <sip:ua@example.com>;tag=p{n}\r\nTo: <sip:ua@example.com>\r\nCall-ID: path-{n}\r\n\
             CSeq: 1 REGISTER\r\nContact: <sip:ua@127.0.0.1:{}>\r\n{extra}Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
            ua.port, ua.port
        ),
    );
}

#[test]
fn registers_get_our_path_and_requests_find_their_way_back() {
    let dir = std::env::temp_dir().join(format!("rsips-path-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let [p1, p2] = common::free_ports::<2>();
    let (ua, registrar) = (Peer::new(), Peer::new());
    let cfg = CONFIG
        .replace("P1", &p1.to_string())
        .replace("P2", &p2.to_string())
        .replace("@REGISTRAR@", &registrar.port.to_string());
    std::fs::write(dir.join("rsips.cfg"), cfg).unwrap();
    let _px = common::spawn_rsips(&dir, "rsips.cfg", |log| log.contains("listening on udp:"));

    register(p1, &ua, 1, "");
    let r = registrar.recv("REGISTER");
    assert_eq!(
        header(&r, "Path"),
        [format!("<sip:127.0.0.1:{p1};lr>")],
        "{r}"
    );

    // Above the Path the request brought, with our user and where it came from.
    register(
        p1,
        &ua,
        2,
        "X-User: lb\r\nPath: <sip:edge.example.com;lr>\r\n",
    );
    let r = registrar.recv("REGISTER 2");
    assert_eq!(
        header(&r, "Path"),
        [
            format!(
                "<sip:lb@127.0.0.1:{p1};received=sip:127.0.0.1:{};lr>",
                ua.port
            ),
            "<sip:edge.example.com;lr>".to_owned()
        ],
        "{r}"
    );

    // Out by the other socket: one Path for each, the received address in the second.
    register(p1, &ua, 3, "X-User: lb\r\nX-Out: 1\r\n");
    let r = registrar.recv("REGISTER 3");
    assert_eq!(
        header(&r, "Path"),
        [
            format!("<sip:lb@127.0.0.1:{p2};r2=on;lr>"),
            format!(
                "<sip:lb@127.0.0.1:{p1};r2=on;received=sip:127.0.0.1:{};lr>",
                ua.port
            )
        ],
        "{r}"
    );

    // A request the registrar routes by that Path reaches the UA at its received address,
    // whatever its R-URI says.
    // The registrar routes by both Paths (RFC 3327): both ours, with r2=on.
    let route = header(&r, "Path").join(", ");
    registrar.send(
        p1,
        &format!(
            "MESSAGE sip:ua@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-pathmsg\r\n\
             Route: {route}\r\nFrom: <sip:reg@example.com>;tag=r\r\nTo: <sip:ua@example.com>\r\n\
             Call-ID: path-msg\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            registrar.port
        ),
    );
    let m = ua.recv("MESSAGE routed back");
    assert!(
        m.starts_with("MESSAGE sip:ua@192.0.2.1:5060 SIP/2.0"),
        "{m}"
    );
    assert!(
        header(&m, "Route").is_empty(),
        "our Route was consumed: {m}"
    );
}
