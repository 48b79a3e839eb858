//! Reaching dialogs from outside their own messages, end to end: `load_dialog_ctx` by Call-ID
//! and by `$DLG_did`, `get_dialog_info`, `get_dialog_vals`, `get_dialogs_by_val`,
//! `get_dialogs_by_profile` (with `$DLG_ctx_json` parsed back by the json module),
//! `fix_route_dialog` putting a forged request back on the call's path, `dlg_inc_cseq`, and
//! the MI commands `dialog:list_ctx`, `dialog:push_var`, `dialog:set_profile`,
//! `dialog:unset_profile`, `dialog:profile_get_values` and `dialog:profile_end_dlgs` through
//! the real `opensips-cli`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, Rsips, header, reply_to};

use std::path::{Path, PathBuf};
use std::time::Duration;

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
loadmodule "json.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
loadmodule "dialog.so"
modparam("dialog", "profiles_with_value", "calls")
modparam("dialog", "profiles_no_value", "all")
route {
    if ($hdr(X-Lookup) != NULL) {
        if (get_dialog_info("callee", $avp(callees), "caller", $hdr(X-Lookup), $var(n)))
            append_to_reply("X-Info: $var(n) $(avp(callees)[0]) $(avp(callees)[1])\r\n");
        else
            append_to_reply("X-Info: none\r\n");
        if (get_dialogs_by_profile("calls", $hdr(X-Lookup), $avp(js), $var(jn))) {
            $json(d) := $(avp(js)[0]);
            append_to_reply("X-Profile: $var(jn) $json(d/context/values[0]/caller)\r\n");
            append_to_reply("X-Profile-Callid: $json(d/callid)\r\n");
        }
        if (get_dialogs_by_val("callee", "carol", $avp(cj), $var(cn)))
            append_to_reply("X-ByVal: $var(cn)\r\n");
        if (get_dialog_vals($avp(names), $avp(vals), $hdr(X-Callid)))
            append_to_reply("X-Vals: $(avp(names)[0])=$(avp(vals)[0]) $(avp(names)[1])=$(avp(vals)[1])\r\n");
        if (load_dialog_ctx($hdr(X-Callid))) {
            $var(did) = $DLG_did;
            append_to_reply("X-Loaded: $DLG_status $dlg_val(caller) $DLG_did\r\n");
            if (load_dialog_ctx($hdr(X-Callid))) append_to_reply("X-Nested: yes\r\n");
            unload_dialog_ctx();
            append_to_reply("X-After: $DLG_status\r\n");
            if (load_dialog_ctx($var(did), "did", 1)) {
                append_to_reply("X-ByDid: $dlg_val(callee)\r\n");
                unload_dialog_ctx();
            }
        }
        if (!unload_dialog_ctx()) append_to_reply("X-Unload: nothing\r\n");
        send_reply(200, "Looked");
        exit;
    }
    if (has_totag()) {
        if (is_method("ACK") && t_check_trans()) { t_relay(); exit; }
        if (!loose_route()) { send_reply(404, "Not here"); exit; }
        if ($hdr(X-Fix) != NULL) fix_route_dialog();
        if ($hdr(X-Inc) != NULL) dlg_inc_cseq(, $(hdr(X-Inc){s.int}));
        t_relay();
        exit;
    }
    if (is_method("INVITE")) {
        create_dialog();
        $dlg_val(caller) = $fU;
        $dlg_val(callee) = $rU;
        set_dlg_profile("calls", "$fU");
        set_dlg_profile("all");
        set_dlg_sharing_tag("vip");
        record_route();
    }
    t_relay();
}
event_route[E_DLG_STATE_CHANGED] {
    xlog("DLGSTATE $param(callid) $param(old_state)->$param(new_state) id=$param(id) db=$param(db_id) tags=$param(from_tag)/$param(to_tag)\n");
}
"#;

fn start(dir: &Path, port: u16) -> Rsips {
    let text = CONFIG
        .replace("PORT", &port.to_string())
        .replace("FIFO", &Rsips::fifo(dir));
    Rsips::start(dir, &text)
}

fn test_dir(name: &str) -> PathBuf {
    common::test_dir("dlglook", name)
}

/// A call from `user` to `to` answered by `callee`, up to the ACK: the caller's Route.
fn call(px: u16, caller: &Peer, callee: &Peer, user: &str, to: &str, callid: &str) -> String {
    caller.send(
        px,
        &format!(
            "INVITE sip:{to}@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}-1;rport\r\n\
             From: <sip:{user}@example.com>;tag=a-{callid}\r\nTo: <sip:{to}@example.com>\r\nCall-ID: {callid}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:{user}@127.0.0.1:{}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port, caller.port
        ),
    );
    let inv = callee.recv("INVITE");
    let contact = format!("Contact: <sip:{to}@127.0.0.1:{}>\r\n", callee.port);
    callee.send(
        px,
        &reply_to(&inv, "200 OK", &format!("b-{callid}"), &contact),
    );
    let ok = caller.recv("200");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let route = header(&ok, "Record-Route")[0].to_owned();
    in_dialog(px, caller, callee.port, "ACK", 1, &route, callid, "");
    assert!(callee.recv("ACK").starts_with("ACK "));
    route
}

#[allow(clippy::too_many_arguments)]
fn in_dialog(
    px: u16,
    caller: &Peer,
    ruri_port: u16,
    method: &str,
    cseq: u32,
    route: &str,
    callid: &str,
    extra: &str,
) {
    caller.send(
        px,
        &format!(
            "{method} sip:x@127.0.0.1:{ruri_port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}-{method}{cseq};rport\r\n\
             Route: {route}\r\nFrom: <sip:a@example.com>;tag=a-{callid}\r\nTo: <sip:b@example.com>;tag=b-{callid}\r\n\
             Call-ID: {callid}\r\nCSeq: {cseq} {method}\r\n{extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            caller.port
        ),
    );
}

/// An out-of-dialog OPTIONS asking the script to look `user`'s calls up (and `callid`'s).
fn lookup(px: u16, peer: &Peer, user: &str, callid: &str) -> String {
    peer.send(
        px,
        &format!(
            "OPTIONS sip:px@127.0.0.1:{px} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-look-{user}{callid}\r\n\
             From: <sip:ops@example.com>;tag=o\r\nTo: <sip:px@example.com>\r\nCall-ID: look-{user}-{callid}\r\n\
             CSeq: 1 OPTIONS\r\nX-Lookup: {user}\r\nX-Callid: {callid}\r\nContent-Length: 0\r\n\r\n",
            peer.port
        ),
    );
    let r = peer.recv("lookup reply");
    assert!(r.starts_with("SIP/2.0 200 Looked"), "{r}");
    r
}

#[test]
fn other_dialogs_are_found_loaded_and_managed() {
    let dir = test_dir("all");
    let port = common::free_port();
    let s = start(&dir, port);
    let (alice, bob, carol, ops) = (Peer::new(), Peer::new(), Peer::new(), Peer::new());
    let route1 = call(port, &alice, &bob, "alice", "bob", "k1");
    let _route2 = call(port, &alice, &carol, "alice", "carol", "k2");

    let r = lookup(port, &ops, "alice", "k1");
    // Both of alice's calls, in no particular order (OpenSIPS walks its hash table).
    let info = header(&r, "X-Info");
    assert!(info == ["2 bob carol"] || info == ["2 carol bob"], "{r}");
    assert_eq!(header(&r, "X-Profile"), ["2 alice"], "{r}");
    let callid = header(&r, "X-Profile-Callid");
    assert!(callid == ["k1"] || callid == ["k2"], "{r}");
    assert_eq!(header(&r, "X-ByVal"), ["1"], "{r}");
    // Pushed in the dialog's order, read newest first.
    assert_eq!(header(&r, "X-Vals"), ["callee=bob caller=alice"], "{r}");
    let loaded = header(&r, "X-Loaded")[0].to_owned();
    assert!(loaded.starts_with("4 alice "), "confirmed, alice's: {r}");
    let did = loaded.rsplit(' ').next().unwrap();
    assert!(
        route1.contains(&format!(";did={did}")),
        "$DLG_did is the did of our Record-Route: {did} / {route1}"
    );
    assert!(header(&r, "X-Nested").is_empty(), "no nested load: {r}");
    assert_eq!(header(&r, "X-After"), ["<null>"], "{r}");
    assert_eq!(header(&r, "X-ByDid"), ["bob"], "{r}");
    assert_eq!(header(&r, "X-Unload"), ["nothing"], "{r}");
    let none = lookup(port, &ops, "mallory", "nope");
    assert_eq!(header(&none, "X-Info"), ["none"], "{none}");
    assert!(header(&none, "X-Loaded").is_empty(), "{none}");

    // MI: the context, a value pushed, profiles edited and counted.
    let list = s.mi(&["dialog:list_ctx", "callid=k1"]);
    let d = &list["Dialogs"][0];
    assert_eq!(d["context"]["values"][0]["caller"], "alice", "{list}");
    assert_eq!(d["context"]["profiles"][0]["calls"], "alice", "{list}");
    let plain = s.mi(&["dialog:list", "callid=k1"]);
    assert!(plain["Dialogs"][0].get("context").is_none(), "{plain}");
    let id = d["ID"].as_str().unwrap().to_owned();
    assert_eq!(s.mi(&["dialog:push_var", "note", "vip", &id]), "OK");
    let list = s.mi(&["dialog:list_ctx", "callid=k1"]);
    assert_eq!(
        list["Dialogs"][0]["context"]["values"][2]["note"], "vip",
        "{list}"
    );
    assert_eq!(
        s.mi(&[
            "dialog:set_profile",
            "dlg_id=k2",
            "profile=calls",
            "value=boss",
            "clear_values=1"
        ]),
        "OK"
    );
    let values = s.mi(&["dialog:profile_get_values", "calls"]);
    assert_eq!(
        values,
        serde_json::json!([{"value": "alice", "count": 1}, {"value": "boss", "count": 1}])
    );
    assert_eq!(
        s.mi(&["dialog:profile_get_values", "all"]),
        serde_json::json!([{"value": null, "count": 2}])
    );
    assert_eq!(
        s.mi(&["dialog:unset_profile", "dlg_id=k2", "profile=all"]),
        "OK"
    );
    assert_eq!(s.mi(&["profile_get_size", "all"])["Profile"]["count"], 1);
    assert!(
        s.mi_error(&["dialog:set_profile", "dlg_id=k2", "profile=nosuch"])
            .contains("Bad param")
    );
    assert!(
        s.mi_error(&["dialog:set_profile", "dlg_id=zz", "profile=all"])
            .contains("Dialog Not Found")
    );
    assert!(
        s.mi_error(&["dialog:profile_get_values", "nosuch"])
            .contains("Profile not found")
    );

    // fix_route_dialog: a request aimed elsewhere goes to the callee's Contact all the same;
    // dlg_inc_cseq moves the numbering of what follows.
    in_dialog(
        port,
        &alice,
        1,
        "INFO",
        2,
        &route1,
        "k1",
        "X-Fix: yes\r\nX-Inc: 5\r\n",
    );
    let info = bob.recv("INFO at the callee");
    assert!(
        info.starts_with(&format!("INFO sip:bob@127.0.0.1:{} SIP/2.0", bob.port)),
        "{info}"
    );
    assert_eq!(header(&info, "CSeq"), ["2 INFO"], "{info}");
    bob.send(port, &reply_to(&info, "200 OK", "", ""));
    assert!(alice.recv("INFO's 200").starts_with("SIP/2.0 200"));
    in_dialog(port, &alice, bob.port, "INFO", 3, &route1, "k1", "");
    let info = bob.recv("second INFO");
    assert_eq!(
        header(&info, "CSeq"),
        ["8 INFO"],
        "2 + 5, then one up: {info}"
    );
    bob.send(port, &reply_to(&info, "200 OK", "", ""));
    let ok = alice.recv("second INFO's 200");
    assert_eq!(header(&ok, "CSeq"), ["3 INFO"], "{ok}");

    // MI dialog:send_sequential: an INFO to k2's callee, its reply given back.
    let fifo = dir.join("fifo");
    let mi = std::thread::spawn(move || {
        common::opensips_cli(
            &fifo,
            &[
                "dialog:send_sequential",
                "callid=k2",
                "method=INFO",
                "mode=callee",
                "body=custom:text/plain:hello carol",
                "headers=X-Why: test",
            ],
        )
    });
    let info = carol.recv("INFO from MI");
    assert!(info.starts_with("INFO sip:carol@127.0.0.1:"), "{info}");
    assert_eq!(header(&info, "CSeq"), ["2 INFO"], "{info}");
    assert_eq!(header(&info, "Content-Type"), ["text/plain"], "{info}");
    assert_eq!(header(&info, "X-Why"), ["test"], "{info}");
    assert!(info.ends_with("\r\n\r\nhello carol"), "{info}");
    carol.send(port, &reply_to(&info, "202 Fine Then", "", ""));
    let (ok, out) = mi.join().unwrap();
    assert!(ok, "{out}");
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"Code": 202, "Reason": "Fine Then"})
    );
    assert!(
        s.mi_error(&["dialog:send_sequential", "callid=k2", "mode=challenge"])
            .contains("Not Acceptable")
    );
    assert!(
        s.mi_error(&["dialog:send_sequential", "callid=nope"])
            .contains("Dialog Not Found")
    );
    assert!(
        s.mi_error(&["dialog:send_sequential", "callid=k2", "mode=sideways"])
            .contains("Invalid mode")
    );

    // profile_end_dlgs ends alice's call in `calls` with a BYE to each side.
    assert_eq!(s.mi(&["dialog:profile_end_dlgs", "calls", "alice"]), "OK");
    let bye = bob.recv("BYE at the callee");
    assert!(bye.starts_with("BYE "), "{bye}");
    assert_eq!(header(&bye, "CSeq"), ["9 BYE"], "after what bob saw: {bye}");
    let bye = alice.recv("BYE at the caller");
    assert!(bye.starts_with("BYE "), "{bye}");
    assert_eq!(carol.quiet(Duration::from_millis(300)), None, "k2 goes on");

    // E_DLG_STATE_CHANGED followed k1 from its 200 to its end (raised from the event thread).
    let want = [
        "DLGSTATE k1 1->3 ".to_owned(),
        "DLGSTATE k1 3->4 ".to_owned(),
        "DLGSTATE k1 4->5 ".to_owned(),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let log = loop {
        let log = s.log();
        if want.iter().all(|w| log.contains(w.as_str())) || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("DLGSTATE k1 ")).collect();
    assert_eq!(lines.len(), 3, "{log}");
    for (line, w) in lines.iter().zip(&want) {
        assert!(line.contains(w.as_str()), "{line} / {w}");
        assert!(
            line.contains(&format!("id={did} db={id} tags=a-k1/b-k1")),
            "{line}"
        );
    }
}
