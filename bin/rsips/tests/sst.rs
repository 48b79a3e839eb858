//! The sst module (SIP Session Timers) end to end with a caller and a callee of our own on
//! UDP: `sstCheckMin(1)` answering 422 with our Min-SE, the proxy asking for a session timer
//! the caller did not ask for (`Session-Expires` added to the INVITE), our Min-SE replacing a
//! smaller one of a caller that cannot take a 422, a re-INVITE refreshing the session, and a
//! session nobody refreshes ending the call (`bye-on-timeout`) and counted in `expired_sst`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, Rsips, header, reply_to};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
syslog_enabled=no
udp_workers=1
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "signaling.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
loadmodule "dialog.so"
modparam("dialog", "default_timeout", 3600)
loadmodule "sst.so"
modparam("sst", "sst_flag", "SST")
modparam("sst", "min_se", 3)
route {
    if (has_totag()) {
        if (is_method("ACK") && t_check_trans()) { t_relay(); exit; }
        if (!loose_route()) { send_reply(404, "Not here"); exit; }
        t_relay();
        exit;
    }
    if (is_method("INVITE")) {
        if ($hdr(X-NoCheck) == NULL && sstCheckMin(1)) {
            xlog("SST 422 sent\n");
            exit;
        }
        setflag("SST");
        create_dialog("bye-on-timeout");
        record_route();
    }
    t_relay();
}
"#;

fn start(dir: &Path, port: u16) -> Rsips {
    let text = CONFIG
        .replace("PORT", &port.to_string())
        .replace("FIFO", &Rsips::fifo(dir));
    Rsips::start(dir, &text)
}

fn test_dir(name: &str) -> PathBuf {
    common::test_dir("sst", name)
}

fn invite(px: u16, caller: &Peer, callee: &Peer, callid: &str, cseq: u32, extra: &str) {
    caller.send(
        px,
        &format!(
            "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}-{cseq};rport\r\n\
             From: <sip:alice@example.com>;tag=a-{callid}\r\nTo: <sip:bob@example.com>\r\nCall-ID: {callid}\r\n\
             CSeq: {cseq} INVITE\r\nContact: <sip:alice@127.0.0.1:{}>\r\n{extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port, caller.port
        ),
    );
}

#[allow(clippy::too_many_arguments)]
fn in_dialog(
    px: u16,
    caller: &Peer,
    callee: &Peer,
    callid: &str,
    method: &str,
    cseq: u32,
    route: &str,
    extra: &str,
) {
    caller.send(
        px,
        &format!(
            "{method} sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}-{method}{cseq};rport\r\n\
             Route: {route}\r\nFrom: <sip:alice@example.com>;tag=a-{callid}\r\nTo: <sip:bob@example.com>;tag=b-{callid}\r\n\
             Call-ID: {callid}\r\nCSeq: {cseq} {method}\r\n{extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port
        ),
    );
}

#[test]
fn session_timers_are_checked_requested_refreshed_and_enforced() {
    let dir = test_dir("all");
    let port = common::free_port();
    let s = start(&dir, port);
    let (caller, callee) = (Peer::new(), Peer::new());

    // Too small, and the caller supports timers: 422 with our Min-SE, nothing forwarded.
    invite(
        port,
        &caller,
        &callee,
        "s0",
        1,
        "Supported: timer\r\nSession-Expires: 2\r\nMin-SE: 2\r\n",
    );
    let small = caller.recv("422");
    assert!(
        small.starts_with("SIP/2.0 422 Session Timer Too Small"),
        "{small}"
    );
    assert_eq!(header(&small, "Min-SE"), ["3"], "{small}");
    assert_eq!(callee.quiet(Duration::from_millis(300)), None);

    // Too small, and the caller cannot take a 422 (sstCheckMin, which does not look at
    // Supported, is skipped): our Min-SE goes on instead of its own.
    invite(
        port,
        &caller,
        &callee,
        "s9",
        1,
        "X-NoCheck: 1\r\nSession-Expires: 2\r\nMin-SE: 1\r\n",
    );
    let inv = callee.recv("INVITE s9");
    assert_eq!(header(&inv, "Min-SE"), ["3"], "{inv}");
    assert_eq!(header(&inv, "Session-Expires"), ["2"], "{inv}");
    callee.send(port, &reply_to(&inv, "486 Busy Here", "b-s9", ""));
    let busy = caller.recv("486");
    assert!(busy.starts_with("SIP/2.0 486"), "{busy}");
    assert!(
        callee
            .recv("the proxy's ACK of the 486")
            .starts_with("ACK ")
    );
    caller.send(
        port,
        &format!(
            "ACK sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: s9\r\n\
             CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            callee.port,
            header(&busy, "Via")[0],
            header(&busy, "From")[0],
            header(&busy, "To")[0]
        ),
    );

    // The caller asks for timers, the callee answers without: the caller becomes the
    // refresher on the 2xx's way back.
    invite(
        port,
        &caller,
        &callee,
        "s2",
        1,
        "Supported: timer\r\nSession-Expires: 3\r\n",
    );
    let inv = callee.recv("INVITE s2");
    assert_eq!(header(&inv, "Session-Expires"), ["3"], "{inv}");
    callee.send(
        port,
        &reply_to(
            &inv,
            "200 OK",
            "b-s2",
            &format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", callee.port),
        ),
    );
    let ok = caller.recv("200 of s2");
    assert_eq!(header(&ok, "Session-Expires"), ["3;refresher=uac"], "{ok}");
    assert_eq!(header(&ok, "Require"), ["timer"], "{ok}");
    let route2 = header(&ok, "Record-Route")[0].to_owned();
    in_dialog(port, &caller, &callee, "s2", "ACK", 1, &route2, "");
    assert!(callee.recv("ACK of s2").starts_with("ACK "));
    in_dialog(port, &caller, &callee, "s2", "BYE", 2, &route2, "");
    let bye = callee.recv("BYE of s2");
    assert!(bye.starts_with("BYE "), "{bye}");
    callee.send(port, &reply_to(&bye, "200 OK", "", ""));
    assert!(caller.recv("200 of the BYE").starts_with("SIP/2.0 200"));

    // No timer asked: the proxy asks for one of min_se.
    invite(port, &caller, &callee, "s1", 1, "");
    let inv = callee.recv("INVITE s1");
    assert_eq!(header(&inv, "Session-Expires"), ["3"], "{inv}");
    let answer = |req: &str| {
        reply_to(
            req,
            "200 OK",
            "b-s1",
            &format!(
                "Contact: <sip:bob@127.0.0.1:{}>\r\nSession-Expires: 3;refresher=uas\r\nRequire: timer\r\n",
                callee.port
            ),
        )
    };
    callee.send(port, &answer(&inv));
    let ok = caller.recv("200");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let answered = Instant::now();
    let route = header(&ok, "Record-Route")[0].to_owned();
    in_dialog(port, &caller, &callee, "s1", "ACK", 1, &route, "");
    assert!(callee.recv("ACK").starts_with("ACK "));

    // A refresh 2 s in: the session runs 3 s from it, past the first expiry (3 s after the
    // answer, seen within the dialog's one-second sweep).
    std::thread::sleep(Duration::from_millis(2000));
    in_dialog(
        port,
        &caller,
        &callee,
        "s1",
        "INVITE",
        2,
        &route,
        "Supported: timer\r\nSession-Expires: 3;refresher=uac\r\n",
    );
    let reinvite = callee.recv("re-INVITE");
    assert!(reinvite.starts_with("INVITE "), "{reinvite}");
    callee.send(port, &answer(&reinvite));
    assert!(
        caller
            .recv("200 of the re-INVITE")
            .starts_with("SIP/2.0 200")
    );
    in_dialog(port, &caller, &callee, "s1", "ACK", 2, &route, "");
    assert!(callee.recv("ACK 2").starts_with("ACK "));
    let refreshed = Instant::now();
    // Read now: opensips-cli takes a while to start on a loaded machine, and the session
    // ends 3 s after the refresh.
    let list = s.mi(&["dlg_list"]);
    assert_eq!(list["Dialogs"][0]["state"], 4, "{list}");
    let quiet_until = answered + Duration::from_millis(4300);
    assert_eq!(
        callee.quiet(quiet_until.saturating_duration_since(Instant::now())),
        None,
        "the refreshed session must outlive its first interval"
    );

    // No more refreshes: the session ends with a BYE to each side.
    let bye = callee.recv("BYE at the callee");
    assert!(bye.starts_with("BYE "), "{bye}");
    let waited = refreshed.elapsed();
    assert!(
        waited >= Duration::from_millis(2800) && waited < Duration::from_millis(5000),
        "ended one interval (3 s) after the refresh, within the 1 s sweep: {waited:?}"
    );
    let bye = caller.recv("BYE at the caller");
    assert!(bye.starts_with("BYE "), "{bye}");
    let stats = s.mi(&["get_statistics", "expired_sst"]);
    assert_eq!(stats["sst:expired_sst"], 1, "{stats}");
}

#[test]
fn sst_without_its_flag_or_the_dialog_module_is_refused() {
    let base = "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"tm.so\"\n";
    let err = common::refused_start(
        "sst-noflag",
        &format!("{base}loadmodule \"dialog.so\"\nloadmodule \"sst.so\"\nroute {{ exit; }}\n"),
    );
    assert!(err.contains("sst_flag"), "{err}");
    let err = common::refused_start(
        "sst-nodlg",
        &format!(
            "{base}loadmodule \"sst.so\"\nmodparam(\"sst\", \"sst_flag\", \"SST\")\n\
             route {{ setflag(\"SST\"); exit; }}\n"
        ),
    );
    assert!(err.contains("dialog module"), "{err}");
}
