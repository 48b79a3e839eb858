//! The dialog module end to end, with a caller and a callee of our own on UDP: a call's
//! states as `dialog:list` shows them through the real `opensips-cli`, profiles limiting calls
//! per caller, `validate_dialog` on good and bad sequential requests, a BYE ending it, the
//! timeout ending a call with a BYE to each side (seen by `local_route`), and dialogs kept in
//! a database across a restart.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, header, reply_to};

use std::path::{Path, PathBuf};
use std::time::Duration;

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
syslog_enabled=no
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "signaling.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "sipmsgops.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
loadmodule "dialog.so"
modparam("dialog", "default_timeout", TIMEOUT)
modparam("dialog", "profiles_with_value", "caller")
modparam("dialog", "profiles_no_value", "calls")
DBPARAMS
route {
    if (has_totag()) {
        if (is_method("ACK") && t_check_trans()) { t_relay(); exit; }
        if (!loose_route()) { send_reply(404, "Not here"); exit; }
        validate_dialog();
        $var(valid) = $rc;
        xlog("SEQ $rm status=$DLG_status dir=$DLG_dir valid=$var(valid) who=$dlg_val(who)\n");
        if (is_dlg_flag_set("F_ONE")) xlog("SEQFLAG $rm one\n");
        if (test_and_set_dlg_flag("F_TWO", 0)) xlog("SEQFLAG $rm two flipped flags=$DLG_flags\n");
        if ($DLG_status != NULL && $var(valid) < 0) {
            send_reply(400, "Not valid $var(valid)");
            exit;
        }
        if (is_method("BYE")) xlog("BYE ended: $DLG_end_reason\n");
        t_relay();
        exit;
    }
    if (is_method("INVITE") && $hdr(X-Reject) != NULL) {
        t_newtran();
        create_dialog();
        set_dlg_profile("calls");
        t_reply(486, "Rejected");
        exit;
    }
    if (is_method("INVITE")) {
        $var(flags) = "bye-on-timeout";
        if ($hdr(X-Flags) != NULL) $var(flags) = $hdr(X-Flags);
        if (!create_dialog($var(flags))) { send_reply(500, "No dialog"); exit; }
        if ($hdr(X-Timeout) != NULL) {
            $DLG_timeout = $(hdr(X-Timeout){s.int});
            dlg_on_timeout("dlg_timeout");
        }
        dlg_on_answer("dlg_answered");
        dlg_on_hangup("dlg_ended");
        $dlg_val(who) = $fU;
        get_profile_size("caller", "$fU", $var(n));
        if ($var(n) >= 1) { send_reply(486, "Busy Here"); exit; }
        set_dlg_profile("caller", "$fU");
        set_dlg_profile("calls");
        set_dlg_flag("F_ONE");
        set_dlg_flag("F_TWO");
        reset_dlg_flag("F_TWO");
        xlog("NEW status=$DLG_status dir=$DLG_dir flags=$DLG_flags count=$DLG_count\n");
        record_route();
    }
    t_relay();
}
route[dlg_answered] {
    xlog("ANSWERED status=$DLG_status who=$dlg_val(who)\n");
}
route[dlg_ended] {
    xlog("HANGUP reason=$DLG_end_reason who=$dlg_val(who)\n");
}
route[dlg_timeout] {
    if ($dlg_val(extended) == NULL) {
        $dlg_val(extended) = "yes";
        $DLG_timeout = 1;
        xlog("EXPIRY extended\n");
    } else {
        xlog("EXPIRY again\n");
    }
}
local_route {
    if (is_method("BYE")) xlog("LOCAL BYE dir=$DLG_dir status=$DLG_status to $ru\n");
}
"#;

struct Server {
    dir: PathBuf,
    port: u16,
    _proc: common::Kill,
}

impl Server {
    fn start(dir: &Path, port: u16, timeout: u32, db: &str) -> Server {
        let text = CONFIG
            .replace("PORT", &port.to_string())
            .replace("FIFO", dir.join("fifo").to_str().unwrap())
            .replace("TIMEOUT", &timeout.to_string())
            .replace("DBPARAMS", db);
        std::fs::write(dir.join("rsips.cfg"), text).unwrap();
        let proc = common::spawn_rsips(dir, "rsips.cfg", |log| log.contains("listening on udp:"));
        Server {
            dir: dir.to_owned(),
            port,
            _proc: proc,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }

    fn mi(&self, args: &[&str]) -> serde_json::Value {
        let (ok, out) = common::opensips_cli(&self.dir.join("fifo"), args);
        assert!(ok, "opensips-cli {args:?}: {out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Stops with SIGTERM (what is kept in memory is written out) and waits.
    fn stop(mut self) {
        let dir = self.dir.clone();
        self._proc
            .terminate(|| std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default());
    }
}

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rsips-dlg-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("db")).unwrap();
    dir
}

/// A call from `caller` (user `user`) to `callee` through the proxy, up to the ACK: the
/// Route the caller uses for sequential requests and the callee's To tag.
fn call(px: u16, caller: &Peer, callee: &Peer, user: &str, callid: &str) -> (String, String) {
    call_with(px, caller, callee, user, callid, "")
}

/// As [`call`], with extra INVITE headers (`X-Flags`, `X-Timeout` for the test script).
fn call_with(
    px: u16,
    caller: &Peer,
    callee: &Peer,
    user: &str,
    callid: &str,
    extra: &str,
) -> (String, String) {
    let invite = format!(
        "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}-1;rport\r\n\
         From: <sip:{user}@example.com>;tag=a-{callid}\r\nTo: <sip:bob@example.com>\r\nCall-ID: {callid}\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:{user}@127.0.0.1:{}>\r\n{extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        callee.port, caller.port, caller.port
    );
    caller.send(px, &invite);
    let at_callee = callee.recv("INVITE at the callee");
    assert!(at_callee.starts_with("INVITE "), "{at_callee}");
    let rr = header(&at_callee, "Record-Route");
    assert_eq!(rr.len(), 1, "{at_callee}");
    assert!(
        rr[0].contains(";did="),
        "the Record-Route carries the dialog id: {at_callee}"
    );
    let contact = format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", callee.port);
    let tag = format!("b-{callid}");
    callee.send(px, &reply_to(&at_callee, "180 Ringing", &tag, &contact));
    let ringing = caller.recv("180");
    assert!(ringing.starts_with("SIP/2.0 180"), "{ringing}");
    callee.send(px, &reply_to(&at_callee, "200 OK", &tag, &contact));
    let ok = caller.recv("200");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let route = header(&ok, "Record-Route")[0].to_owned();
    (route, tag)
}

/// The caller's ACK for the call, seen arriving at the callee.
fn ack(px: u16, caller: &Peer, callee: &Peer, dialog: (&str, &str), who: (&str, &str)) {
    in_dialog(px, caller, callee, "ACK", 1, dialog, who);
    let ack = callee.recv("ACK");
    assert!(ack.starts_with("ACK "), "{ack}");
}

/// A sequential request from the caller with its Route.
fn in_dialog(
    px: u16,
    caller: &Peer,
    callee: &Peer,
    method: &str,
    cseq: u32,
    (route, tag): (&str, &str),
    (user, callid): (&str, &str),
) {
    caller.send(
        px,
        &format!(
            "{method} sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}-{method}{cseq};rport\r\n\
             Route: {route}\r\nFrom: <sip:{user}@example.com>;tag=a-{callid}\r\nTo: <sip:bob@example.com>;tag={tag}\r\n\
             Call-ID: {callid}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port
        ),
    );
}

fn dialogs(s: &Server) -> Vec<serde_json::Value> {
    s.mi(&["dlg_list"])["Dialogs"].as_array().cloned().unwrap()
}

/// Waits (3 s at most) until no dialog is listed: an ended one stays, deleted (state 5),
/// until the module's next once-a-second sweep.
fn wait_no_dialogs(s: &Server) {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let list = dialogs(s);
        if list.is_empty() {
            return;
        }
        assert!(list.iter().all(|d| d["state"] == 5), "{list:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "still listed: {list:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_call_through_its_states_profiles_validation_and_bye() {
    let dir = test_dir("states");
    let port = common::free_port();
    let s = Server::start(&dir, port, 3600, "");
    let (caller, callee) = (Peer::new(), Peer::new());
    let (route, tag) = call(port, &caller, &callee, "alice", "c1");
    let list = dialogs(&s);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["state"], 3, "confirmed, not yet ACKed: {list:?}");
    assert_eq!(list[0]["callid"], "c1");
    assert_eq!(list[0]["caller_tag"], "a-c1");
    assert_eq!(
        list[0]["CALLEES"][0]["callee_contact"],
        format!("sip:bob@127.0.0.1:{}", callee.port)
    );
    let size = s.mi(&["profile_get_size", "caller", "alice"]);
    assert_eq!(size["Profile"]["count"], 1, "{size}");
    assert_eq!(s.mi(&["profile_get_size", "calls"])["Profile"]["count"], 1);

    // The ACK confirms it.
    ack(port, &caller, &callee, (&route, &tag), ("alice", "c1"));
    assert_eq!(dialogs(&s)[0]["state"], 4);

    // A second call from the same caller is over its profile's limit.
    let other = Peer::new();
    other.send(
        port,
        &format!(
            "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-c2\r\n\
             From: <sip:alice@example.com>;tag=x\r\nTo: <sip:bob@example.com>\r\nCall-ID: c2\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, other.port, other.port
        ),
    );
    let busy = other.recv("486");
    assert!(busy.starts_with("SIP/2.0 486 Busy Here"), "{busy}");
    // The refused call's dialog went away with its stateless reply.
    assert_eq!(dialogs(&s).len(), 1);

    // An old CSeq is refused by validate_dialog (-1); a good INFO passes.
    in_dialog(
        port,
        &caller,
        &callee,
        "INFO",
        1,
        (&route, &tag),
        ("alice", "c1"),
    );
    let bad = caller.recv("400");
    assert!(bad.starts_with("SIP/2.0 400 Not valid -1"), "{bad}");
    in_dialog(
        port,
        &caller,
        &callee,
        "INFO",
        2,
        (&route, &tag),
        ("alice", "c1"),
    );
    let info = callee.recv("INFO");
    assert!(info.starts_with("INFO "), "{info}");
    callee.send(port, &reply_to(&info, "200 OK", "", ""));
    assert!(caller.recv("200 for INFO").starts_with("SIP/2.0 200"));
    // A request for another target than the callee's Contact: -2.
    caller.send(
        port,
        &format!(
            "INFO sip:mallory@127.0.0.1:9 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-c1-m\r\n\
             Route: {route}\r\nFrom: <sip:alice@example.com>;tag=a-c1\r\nTo: <sip:bob@example.com>;tag={tag}\r\n\
             Call-ID: c1\r\nCSeq: 3 INFO\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            caller.port
        ),
    );
    let bad = caller.recv("400");
    assert!(bad.starts_with("SIP/2.0 400 Not valid -2"), "{bad}");

    // The callee hangs up: the BYE goes upstream to the caller's Contact.
    callee.send(
        port,
        &format!(
            "BYE sip:alice@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-c1-bye\r\n\
             Route: {route}\r\nFrom: <sip:bob@example.com>;tag={tag}\r\nTo: <sip:alice@example.com>;tag=a-c1\r\n\
             Call-ID: c1\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            caller.port, callee.port
        ),
    );
    let bye = caller.recv("BYE");
    assert!(bye.starts_with("BYE "), "{bye}");
    caller.send(port, &reply_to(&bye, "200 OK", "", ""));
    assert!(callee.recv("200 for BYE").starts_with("SIP/2.0 200"));
    let log = s.log();
    assert!(log.contains("NEW status=1 dir=DOWNSTREAM flags=1"), "{log}");
    assert!(
        log.contains("SEQ INFO status=4 dir=DOWNSTREAM valid=1"),
        "{log}"
    );
    assert!(
        log.contains("SEQ BYE status=5 dir=UPSTREAM valid=1"),
        "{log}"
    );
    assert!(log.contains("BYE ended: Upstream BYE"), "{log}");
    // The dialog's routes: when it was answered, when it ended.
    assert!(log.contains("ANSWERED status=3 who=alice"), "{log}");
    assert!(
        log.contains("HANGUP reason=Upstream BYE who=alice"),
        "{log}"
    );
    // Dialog flags are the dialog's: set with the INVITE, seen by its sequential requests;
    // test_and_set flips F_TWO (bit 1) once only.
    assert!(log.contains("SEQFLAG INFO one"), "{log}");
    assert!(log.contains("SEQFLAG BYE one"), "{log}");
    assert_eq!(log.matches("two flipped flags=3").count(), 1, "{log}");
    wait_no_dialogs(&s);
    assert_eq!(
        s.mi(&["profile_get_size", "caller", "alice"])["Profile"]["count"],
        0
    );
    // Now alice may call again.
    let (_, _) = call(port, &caller, &callee, "alice", "c3");
    let stats = s.mi(&["get_statistics", "dialog:"]);
    assert_eq!(stats["dialog:active_dialogs"], 1, "{stats}");
    assert_eq!(stats["dialog:processed_dialogs"], 3, "{stats}");
}

#[test]
fn a_failed_call_leaves_no_dialog_and_frees_its_profile() {
    let dir = test_dir("failed");
    let port = common::free_port();
    let s = Server::start(&dir, port, 3600, "");
    let (caller, callee) = (Peer::new(), Peer::new());
    caller.send(
        port,
        &format!(
            "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-f1\r\n\
             From: <sip:carol@example.com>;tag=f\r\nTo: <sip:bob@example.com>\r\nCall-ID: f1\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:carol@127.0.0.1:{}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port, caller.port
        ),
    );
    let inv = callee.recv("INVITE");
    callee.send(port, &reply_to(&inv, "180 Ringing", "t", ""));
    assert!(caller.recv("180").starts_with("SIP/2.0 180"));
    let list = dialogs(&s);
    assert_eq!(list[0]["state"], 2, "early: {list:?}");
    assert_eq!(
        s.mi(&["get_statistics", "dialog:early_dialogs"])["dialog:early_dialogs"],
        1
    );
    callee.send(port, &reply_to(&inv, "486 Busy Here", "t", ""));
    let busy = caller.recv("486");
    assert!(busy.starts_with("SIP/2.0 486"), "{busy}");
    ack_negative(port, &caller, &busy, "z9hG4bK-f1");
    wait_no_dialogs(&s);
    assert_eq!(
        s.mi(&["profile_get_size", "caller", "carol"])["Profile"]["count"],
        0
    );
    let stats = s.mi(&["get_statistics", "dialog:"]);
    assert_eq!(stats["dialog:failed_dialogs"], 1, "{stats}");
    assert_eq!(stats["dialog:early_dialogs"], 0, "{stats}");
    // A dialog created after t_newtran and refused by t_reply goes too, and leaves its
    // profile.
    caller.send(
        port,
        &format!(
            "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-f2\r\n\
             From: <sip:carol@example.com>;tag=f2\r\nTo: <sip:bob@example.com>\r\nCall-ID: f2\r\n\
             CSeq: 1 INVITE\r\nX-Reject: yes\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port
        ),
    );
    let refused = caller.recv("486 Rejected");
    assert!(refused.starts_with("SIP/2.0 486 Rejected"), "{refused}");
    ack_negative(port, &caller, &refused, "z9hG4bK-f2");
    wait_no_dialogs(&s);
    assert_eq!(s.mi(&["profile_get_size", "calls"])["Profile"]["count"], 0);
    let stats = s.mi(&["get_statistics", "dialog:"]);
    assert_eq!(stats["dialog:failed_dialogs"], 2, "{stats}");
    // Bad MI calls get JSON-RPC errors.
    let (ok, out) = common::opensips_cli(&dir.join("fifo"), &["profile_get_size", "nosuch"]);
    assert!(!ok && out.contains("Profile not found"), "{out}");
    let (ok, out) = common::opensips_cli(&dir.join("fifo"), &["dlg_end_dlg", "12345"]);
    assert!(!ok && out.contains("Requested Dialog not found"), "{out}");
}

/// The caller's ACK for a negative final reply (the INVITE's branch), or tm retransmits it.
fn ack_negative(px: u16, caller: &Peer, reply: &str, branch: &str) {
    caller.send(
        px,
        &format!(
            "ACK sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch={branch}\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
            caller.port,
            header(reply, "From")[0],
            header(reply, "To")[0],
            header(reply, "Call-ID")[0]
        ),
    );
}

/// The BYE for one side: to its Contact, with the dialog's tags and the next CSeq.
fn check_bye(bye: &str, to: &Peer, from_tag: &str, to_tag: &str, cseq: u32) {
    assert!(
        bye.starts_with("BYE sip:")
            && bye
                .lines()
                .next()
                .unwrap()
                .contains(&format!("127.0.0.1:{}", to.port)),
        "{bye}"
    );
    assert!(
        header(bye, "From")[0].ends_with(&format!("tag={from_tag}")),
        "{bye}"
    );
    assert!(
        header(bye, "To")[0].ends_with(&format!("tag={to_tag}")),
        "{bye}"
    );
    assert_eq!(
        header(bye, "CSeq"),
        vec![format!("{cseq} BYE").as_str()],
        "{bye}"
    );
}

#[test]
fn the_timeout_ends_the_call_with_a_bye_to_each_side() {
    let dir = test_dir("timeout");
    let port = common::free_port();
    // The module's default would be an hour; the script sets this call's to 2 s.
    let s = Server::start(&dir, port, 3600, "");
    let (caller, callee) = (Peer::new(), Peer::new());
    let (route, tag) = call_with(port, &caller, &callee, "dave", "t1", "X-Timeout: 2\r\n");
    ack(port, &caller, &callee, (&route, &tag), ("dave", "t1"));
    let left = dialogs(&s)[0]["timeout"].as_i64().unwrap();
    assert!(left > 0, "an absolute timeout");
    let to_callee = callee.recv("BYE at the callee");
    check_bye(&to_callee, &callee, "a-t1", &tag, 2);
    let to_caller = caller.recv("BYE at the caller");
    check_bye(&to_caller, &caller, &tag, "a-t1", 1);
    callee.send(port, &reply_to(&to_callee, "200 OK", "", ""));
    caller.send(port, &reply_to(&to_caller, "200 OK", "", ""));
    // No retransmission once answered.
    assert_eq!(caller.quiet(Duration::from_millis(800)), None);
    let log = s.log();
    assert!(
        log.contains(&format!(
            "LOCAL BYE dir=UPSTREAM status=5 to sip:dave@127.0.0.1:{}",
            caller.port
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "LOCAL BYE dir=DOWNSTREAM status=5 to sip:bob@127.0.0.1:{}",
            callee.port
        )),
        "{log}"
    );
    // dlg_on_timeout's route gave the call one more second, once.
    assert_eq!(log.matches("EXPIRY extended").count(), 1, "{log}");
    assert_eq!(log.matches("EXPIRY again").count(), 1, "{log}");
    assert!(
        log.contains("HANGUP reason=Lifetime Timeout who=dave"),
        "{log}"
    );
    wait_no_dialogs(&s);
    let stats = s.mi(&["get_statistics", "dialog:"]);
    assert_eq!(stats["dialog:expired_dialogs"], 1, "{stats}");
    assert_eq!(stats["dialog:active_dialogs"], 0, "{stats}");
}

#[test]
fn dialogs_survive_a_restart_in_the_database() {
    let dir = test_dir("restart");
    std::fs::write(
        dir.join("db/version"),
        "table_name(str) table_version(int)\ndialog:12\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("db/dialog"),
        "dlg_id(long) callid(str) from_uri(str) from_tag(str) to_uri(str) to_tag(str) \
         mangled_from_uri(str,null) mangled_to_uri(str,null) caller_cseq(str) callee_cseq(str) \
         caller_ping_cseq(int,null) callee_ping_cseq(int,null) caller_route_set(str,null) \
         callee_route_set(str,null) caller_contact(str) callee_contact(str) caller_sock(str,null) \
         callee_sock(str,null) state(int) start_time(int) timeout(int) vars(str,null) \
         profiles(str,null) script_flags(str,null) module_flags(int,null) flags(int) \
         rt_on_answer(str,null) rt_on_timeout(str,null) rt_on_hangup(str,null)\n",
    )
    .unwrap();
    let db = format!(
        "loadmodule \"db_text.so\"\nmodparam(\"dialog\", \"db_mode\", 2)\n\
         modparam(\"dialog\", \"db_update_period\", 1)\n\
         modparam(\"dialog\", \"db_url\", \"text://{}\")",
        dir.join("db").display()
    );
    let port = common::free_port();
    let s = Server::start(&dir, port, 3600, &db);
    let (caller, callee) = (Peer::new(), Peer::new());
    let (route, tag) = call(port, &caller, &callee, "erin", "r1");
    ack(port, &caller, &callee, (&route, &tag), ("erin", "r1"));
    let before = dialogs(&s);
    s.stop();
    let table = std::fs::read_to_string(dir.join("db/dialog")).unwrap();
    assert!(
        table.contains(":r1:"),
        "the dialog was written at shutdown:\n{table}"
    );

    let s = Server::start(&dir, port, 3600, &db);
    let after = dialogs(&s);
    assert_eq!(after.len(), 1, "{after:?}");
    for key in [
        "ID",
        "state",
        "callid",
        "caller_tag",
        "caller_contact",
        "timestart",
    ] {
        assert_eq!(
            after[0][key], before[0][key],
            "{key}: {after:?} vs {before:?}"
        );
    }
    assert_eq!(
        after[0]["CALLEES"][0]["callee_contact"],
        before[0]["CALLEES"][0]["callee_contact"]
    );
    assert_eq!(
        s.mi(&["profile_get_size", "caller", "erin"])["Profile"]["count"],
        1
    );
    // The restarted proxy still knows the call: the caller's BYE matches and ends it.
    in_dialog(
        port,
        &caller,
        &callee,
        "BYE",
        2,
        (&route, &tag),
        ("erin", "r1"),
    );
    let bye = callee.recv("BYE");
    callee.send(port, &reply_to(&bye, "200 OK", "", ""));
    assert!(caller.recv("200 for BYE").starts_with("SIP/2.0 200"));
    let log = s.log();
    assert!(
        log.contains("SEQ BYE status=5 dir=DOWNSTREAM valid=1"),
        "{log}"
    );
    wait_no_dialogs(&s);
    // The delayed write removes it from the table.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(dir.join("db/dialog"))
        .unwrap()
        .contains(":r1:")
        && std::time::Instant::now() < deadline
    {
        let _ = s.mi(&["dbt_dump"]);
        std::thread::sleep(Duration::from_millis(200));
    }
    let table = std::fs::read_to_string(dir.join("db/dialog")).unwrap();
    assert!(!table.contains(":r1:"), "{table}");
    let _ = s.port;
}

#[test]
fn a_callee_that_stops_answering_pings_ends_the_call() {
    let dir = test_dir("pings");
    let port = common::free_port();
    let s = Server::start(
        &dir,
        port,
        3600,
        "modparam(\"dialog\", \"options_ping_interval\", 1)",
    );
    let (caller, callee) = (Peer::new(), Peer::new());
    let (route, tag) = call_with(
        port,
        &caller,
        &callee,
        "fay",
        "p1",
        "X-Flags: options-ping-callee\r\n",
    );
    ack(port, &caller, &callee, (&route, &tag), ("fay", "p1"));
    // A ping answered keeps the call.
    let ping = callee.recv("first OPTIONS ping");
    assert!(
        ping.starts_with(&format!("OPTIONS sip:bob@127.0.0.1:{} ", callee.port)),
        "{ping}"
    );
    assert!(header(&ping, "From")[0].ends_with("tag=a-p1"), "{ping}");
    assert!(
        header(&ping, "To")[0].ends_with(&format!("tag={tag}")),
        "{ping}"
    );
    callee.send(port, &reply_to(&ping, "200 OK", "", ""));
    assert_eq!(dialogs(&s)[0]["state"], 4);
    // A retransmission (same Via branch: our reply was slow to arrive on a loaded machine)
    // is not the next ping nor the BYE.
    let fresh = |what: &str, seen: &[String]| loop {
        let m = callee.recv(what);
        if !seen
            .iter()
            .any(|p| header(&m, "Via")[0] == header(p, "Via")[0])
        {
            break m;
        }
    };
    // The next one gets 481: the call ends, with a BYE to each side.
    let second = fresh("second OPTIONS ping", std::slice::from_ref(&ping));
    assert!(second.starts_with("OPTIONS "), "{second}");
    callee.send(
        port,
        &reply_to(&second, "481 Call/Transaction Does Not Exist", "", ""),
    );
    // (A next ping may already be on its way on a loaded machine: the BYE follows it.)
    let seen = [ping, second];
    let bye = loop {
        let m = fresh("BYE at the callee", &seen);
        if !m.starts_with("OPTIONS ") {
            break m;
        }
    };
    assert!(bye.starts_with("BYE "), "{bye}");
    callee.send(port, &reply_to(&bye, "200 OK", "", ""));
    // The caller was never pinged: the first thing it gets is its BYE.
    let bye = caller.recv("BYE at the caller");
    assert!(bye.starts_with("BYE "), "{bye}");
    caller.send(port, &reply_to(&bye, "200 OK", "", ""));
    wait_no_dialogs(&s);
    assert!(
        s.log().contains("answered its ping with 481"),
        "{}",
        s.log()
    );
}

#[test]
fn unknown_flags_are_refused_at_load() {
    let dir = test_dir("flags");
    let cfg = dir.join("bad.cfg");
    std::fs::write(
        &cfg,
        "loadmodule \"proto_udp.so\"\nloadmodule \"tm.so\"\nloadmodule \"rr.so\"\n\
         loadmodule \"dialog.so\"\nsocket=udp:127.0.0.1:5060\n\
         route {\n    create_dialog(\"bye-on-timeout,reinvite-ping-sideways\");\n}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rsips"))
        .args(["-c", "-f"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("unknown create_dialog flag `reinvite-ping-sideways`"),
        "{err}"
    );
    assert!(err.contains("bad.cfg:7:"), "points at the call: {err}");
}

#[test]
fn the_mi_lists_one_call_and_ends_it_with_a_bye_to_each_side() {
    let dir = test_dir("mi-end");
    let port = common::free_port();
    let s = Server::start(&dir, port, 3600, "");
    let (caller, callee) = (Peer::new(), Peer::new());
    let (route, tag) = call(port, &caller, &callee, "gus", "e1");
    ack(port, &caller, &callee, (&route, &tag), ("gus", "e1"));
    let (other_route, other_tag) = call(port, &caller, &callee, "hal", "e2");
    // `$DLG_count`: the calls going on, this one included.
    assert!(s.log().contains("flags=1 count=2"), "{}", s.log());
    // dlg_list by Call-ID (and From tag) shows that call only.
    let one = s.mi(&["dlg_list", "e1"]);
    let list = one["Dialogs"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{one}");
    assert_eq!(list[0]["callid"], "e1");
    // Two positional parameters are ambiguous (Call-ID and From tag, or a page), as in
    // OpenSIPS: named ones say which.
    let (ok, out) = common::opensips_cli(&dir.join("fifo"), &["dlg_list", "e2", "a-e2"]);
    assert!(!ok && out.contains("Ambiguous call"), "{out}");
    assert_eq!(
        s.mi(&["dlg_list", "callid=e2", "from_tag=a-e2"])["Dialogs"][0]["callid"],
        "e2"
    );
    let (ok, out) =
        common::opensips_cli(&dir.join("fifo"), &["dlg_list", "callid=e2", "from_tag=x"]);
    assert!(!ok && out.contains("Nothing found"), "{out}");
    // Paged: the first of two, with the total.
    let page = s.mi(&["dlg_list", "index=0", "counter=1"]);
    assert_eq!(page["count"], 2, "{page}");
    assert_eq!(page["Dialogs"].as_array().unwrap().len(), 1, "{page}");
    // Ended from the MI, with an extra header on both BYEs.
    let id = list[0]["ID"].as_str().unwrap().to_owned();
    assert_eq!(
        s.mi(&["dlg_end_dlg", &id, "X-Reason: operator\r\n"]),
        serde_json::json!("OK")
    );
    let bye = callee.recv("BYE at the callee");
    assert!(bye.starts_with("BYE "), "{bye}");
    assert_eq!(header(&bye, "Call-ID"), vec!["e1"]);
    assert_eq!(header(&bye, "X-Reason"), vec!["operator"], "{bye}");
    callee.send(port, &reply_to(&bye, "200 OK", "", ""));
    let bye = caller.recv("BYE at the caller");
    assert_eq!(header(&bye, "Call-ID"), vec!["e1"]);
    caller.send(port, &reply_to(&bye, "200 OK", "", ""));
    // The other call is untouched.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let left = dialogs(&s);
        if left.len() == 1 {
            assert_eq!(left[0]["callid"], "e2");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = (other_route, other_tag);
}

/// Sequential requests with a `did` that is not one of ours — malformed, out of range, or a
/// real dialog's id with another Call-ID — match no dialog: the call they aim at stays up,
/// and the proxy keeps serving.
#[test]
fn forged_and_malformed_dialog_ids_match_nothing() {
    let dir = test_dir("forged");
    let port = common::free_port();
    let s = Server::start(&dir, port, 3600, "");
    let (caller, callee) = (Peer::new(), Peer::new());
    let (route, tag) = call(port, &caller, &callee, "ivy", "g1");
    ack(port, &caller, &callee, (&route, &tag), ("ivy", "g1"));
    let did = route
        .split(";did=")
        .nth(1)
        .and_then(|r| r.split(['>', ';']).next())
        .unwrap()
        .to_owned();
    let attacker = Peer::new();
    let forged = [
        ("f1", "a-f1", "ffffffffffff.1".to_owned()),
        ("f2", "a-f2", ".".to_owned()),
        ("f3", "a-f3", "zz.yy".to_owned()),
        ("f4", "a-f4", String::new()),
        ("f5", "a-f5", format!("{did};did={did}")),
        // The real id, but not its Call-ID or tags.
        ("f6", "a-g1", did.clone()),
    ];
    for (callid, from_tag, value) in &forged {
        attacker.send(
            port,
            &format!(
                "BYE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}\r\n\
                 Route: <sip:127.0.0.1:{port};lr;did={value}>\r\nFrom: <sip:ivy@example.com>;tag={from_tag}\r\n\
                 To: <sip:bob@example.com>;tag={tag}\r\nCall-ID: {callid}\r\nCSeq: 9 BYE\r\n\
                 Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                callee.port, attacker.port
            ),
        );
        // Relayed as a request of no dialog (the callee gets it, and answers 481).
        let bye = callee.recv("relayed BYE");
        assert_eq!(header(&bye, "Call-ID"), vec![*callid], "{bye}");
        callee.send(
            port,
            &reply_to(&bye, "481 Call/Transaction Does Not Exist", "", ""),
        );
        assert!(attacker.recv("481").starts_with("SIP/2.0 481"));
    }
    let log = s.log();
    assert_eq!(
        log.matches("SEQ BYE status=<null> dir=<null>").count(),
        forged.len(),
        "{log}"
    );
    let list = dialogs(&s);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["state"], 4, "the real call is untouched: {list:?}");
}

/// A socket the script forces for the call after `create_dialog` is the one the proxy's own
/// BYE to the callee leaves from.
#[test]
fn the_bye_to_the_callee_leaves_from_the_socket_the_call_went_out_on() {
    let dir = test_dir("socket");
    let [port, out] = common::free_ports();
    std::fs::write(
        dir.join("rsips.cfg"),
        format!(
            "log_level=3\nstderror_enabled=yes\nsyslog_enabled=no\n\
             socket=udp:127.0.0.1:{port}\nsocket=udp:127.0.0.1:{out}\n\
             loadmodule \"proto_udp.so\"\nloadmodule \"tm.so\"\nloadmodule \"sl.so\"\n\
             loadmodule \"rr.so\"\nloadmodule \"sipmsgops.so\"\nloadmodule \"dialog.so\"\n\
             modparam(\"dialog\", \"default_timeout\", 1)\n\
             route {{\n\
                 if (has_totag()) {{ if (loose_route() || t_check_trans()) t_relay(); exit; }}\n\
                 create_dialog(\"bye-on-timeout\");\n\
                 record_route();\n\
                 force_send_socket(\"udp:127.0.0.1:{out}\");\n\
                 t_relay();\n\
             }}\n"
        ),
    )
    .unwrap();
    let _server = common::spawn_rsips(&dir, "rsips.cfg", |l| {
        l.matches("listening on udp:").count() == 2
    });
    let (caller, callee) = (Peer::new(), Peer::new());
    caller.send(
        port,
        &format!(
            "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-s1\r\n\
             From: <sip:jo@example.com>;tag=a-s1\r\nTo: <sip:bob@example.com>\r\nCall-ID: s1\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:jo@127.0.0.1:{}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port, caller.port
        ),
    );
    let inv = callee.recv("INVITE");
    // Two sockets: the proxy records both (double Record-Route).
    assert_eq!(header(&inv, "Record-Route").len(), 2, "{inv}");
    let contact = format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", callee.port);
    callee.send(port, &reply_to(&inv, "200 OK", "b-s1", &contact));
    assert!(caller.recv("200").starts_with("SIP/2.0 200"));
    let mut buf = vec![0u8; 65535];
    let mut from_port = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < deadline {
        let (n, from) = callee.sock.recv_from(&mut buf).unwrap();
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if m.starts_with("BYE ") {
            from_port = Some(from.port());
            callee.send(port, &reply_to(&m, "200 OK", "", ""));
            break;
        }
    }
    assert_eq!(from_port, Some(out), "the BYE came from the forced socket");
}
