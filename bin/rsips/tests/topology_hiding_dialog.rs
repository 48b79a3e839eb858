//! topology_hiding with a dialog (the script's `create_dialog()`, or `force_dialog`): the
//! state is the dialog's and our Contact names it (`;did=`, or with `D` in its user part); the
//! ACK, a re-INVITE of the caller and the callee's BYE are routed from the dialog; flags `a` /
//! `A` keep showing each side the Contact first advertised to it; a request naming no dialog
//! (or a malformed id) gets the script's 404. The no-dialog mode is in topology_hiding.rs.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, header, leaks, reply_to};
#[test]
fn force_dialog_needs_the_dialog_module() {
    let err = common::refused_start(
        "th-force",
        "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"tm.so\"\n\
         loadmodule \"topology_hiding.so\"\nmodparam(\"topology_hiding\", \"force_dialog\", 1)\n\
         route { topology_hiding(\"DaA\"); t_relay(); }\n",
    );
    assert!(
        err.contains("force_dialog needs the dialog module"),
        "{err}"
    );
}

const DLG_CONFIG: &str = r#"
socket=udp:127.0.0.1:PORT
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
loadmodule "topology_hiding.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
#PARAMS
route {
    if (has_totag()) {
        if (is_method("ACK") && t_check_trans()) {
            t_relay();
            exit;
        }
        if (!loose_route() && !MATCH) {
            sl_send_reply(404, "Not here");
            exit;
        }
        t_relay();
        exit;
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) t_relay();
        exit;
    }
    record_route();
    #CREATE
    if (!topology_hiding(ARGS)) {
        sl_send_reply(500, "No hiding");
        exit;
    }
    xlog("L_NOTICE", "callee callid <$TH_callee_callid> for $ci\n");
    $du = "sip:127.0.0.1:CALLEE";
    t_relay();
}
"#;

/// rsips between a caller (behind `upstream`) and a callee (behind `downstream`).
struct Call {
    caller: Peer,
    upstream: Peer,
    callee: Peer,
    downstream: Peer,
    port: u16,
    dir: std::path::PathBuf,
    server: common::Kill,
}

impl Call {
    /// rsips on [`DLG_CONFIG`]: module parameters, what creates the dialog, the arguments of
    /// `topology_hiding()` and the function that matches sequential requests.
    fn start(name: &str, params: &str, create: &str, args: &str, matcher: &str) -> Call {
        let (caller, upstream, callee, downstream) =
            (Peer::new(), Peer::new(), Peer::new(), Peer::new());
        let port = common::free_port();
        let dir = common::test_dir("th", name);
        std::fs::write(
            dir.join("rsips.cfg"),
            DLG_CONFIG
                .replace("PORT", &port.to_string())
                .replace("CALLEE", &callee.port.to_string())
                .replace("FIFO", dir.join("fifo").to_str().unwrap())
                .replace("#PARAMS", params)
                .replace("#CREATE", create)
                .replace("ARGS", args)
                .replace("MATCH", matcher),
        )
        .unwrap();
        let server = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
        Call {
            caller,
            upstream,
            callee,
            downstream,
            port,
            dir,
            server,
        }
    }

    fn dialogs(&self) -> serde_json::Value {
        let (ok, out) = common::opensips_cli(&self.dir.join("fifo"), &["dlg_list"]);
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap()
    }

    /// The `did` of the only dialog (`entry.id` in reversed hex, from its MI `ID`).
    fn did(&self) -> String {
        let listed = self.dialogs();
        let id: u64 = listed["Dialogs"][0]["ID"]
            .as_str()
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("{listed}"));
        let rev = |n: u64| {
            let s: String = format!("{n:x}").chars().rev().collect();
            s
        };
        format!("{}.{}", rev(id >> 32), rev(id & 0xffff_ffff))
    }

    fn caller_side(&self) -> [u16; 2] {
        [self.caller.port, self.upstream.port]
    }

    fn callee_side(&self) -> [u16; 2] {
        [self.callee.port, self.downstream.port]
    }

    /// The INVITE as the upstream proxy relays it: its Via and Record-Route on top.
    fn invite(&self, call_id: &str) -> String {
        format!(
            "INVITE sip:bob@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{up};branch=z9hG4bK-up1\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-a1;rport\r\n\
             Record-Route: <sip:127.0.0.1:{up};lr>\r\n\
             Max-Forwards: 69\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{cp};ob>;expires=60\r\n\
             Content-Length: 0\r\n\r\n",
            up = self.upstream.port,
            cp = self.caller.port
        )
    }

    /// A request within the call from the caller's side (as its proxy relays it), to `ruri`.
    fn caller_request(
        &self,
        method: &str,
        ruri: &str,
        call_id: &str,
        cseq: u32,
        branch: &str,
    ) -> String {
        format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{up};branch=z9hG4bK-u{branch}\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-c{branch}\r\n\
             Max-Forwards: 69\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b1\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@127.0.0.1:{cp};moved>\r\n\
             Content-Length: 0\r\n\r\n",
            up = self.upstream.port,
            cp = self.caller.port
        )
    }

    /// A request within the call from the callee, to `ruri`.
    fn callee_request(
        &self,
        method: &str,
        ruri: &str,
        call_id: &str,
        cseq: u32,
        branch: &str,
    ) -> String {
        format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{ep};branch=z9hG4bK-e{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=b1\r\nTo: <sip:alice@example.com>;tag=a1\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:bob@127.0.0.1:{ep}>\r\n\
             Content-Length: 0\r\n\r\n",
            ep = self.callee.port
        )
    }

    /// Sets the call up: the INVITE reaches the callee, its 200 (through its proxy, whose
    /// Record-Route it carries) the caller. (INVITE as the callee got it, 200 as the caller
    /// got it.)
    fn answer(&self, call_id: &str) -> (String, String) {
        let got = self.offer(call_id);
        let ok = self.reply(&got, "200 OK");
        (got, ok)
    }

    /// The INVITE, as the callee gets it.
    fn offer(&self, call_id: &str) -> String {
        self.upstream.send(self.port, &self.invite(call_id));
        self.callee.recv("INVITE")
    }

    /// The callee's reply to its INVITE (tag `b1`, through its proxy), as the caller gets it.
    fn reply(&self, invite: &str, status: &str) -> String {
        let ok = reply_to(
            invite,
            status,
            "b1",
            &format!(
                "Record-Route: <sip:127.0.0.1:{dp};lr>\r\nContact: <sip:bob@127.0.0.1:{ep}>\r\n",
                dp = self.downstream.port,
                ep = self.callee.port
            ),
        );
        self.callee.send(self.port, &ok);
        self.upstream.recv(status)
    }
}

/// The URI of a `<…>` Contact value.
fn uri_of(contact: &str) -> &str {
    contact.trim_start_matches('<').split('>').next().unwrap()
}

/// `create_dialog()` then `topology_hiding("C")`: the dialog mode, end to end.
#[test]
fn with_a_dialog_the_call_is_hidden_and_routed_from_it() {
    let mut call = Call::start(
        "dlg",
        "",
        "create_dialog();",
        "\"C\"",
        "topology_hiding_match()",
    );
    let log_file = call.dir.join("rsips.log");
    let log = || std::fs::read_to_string(&log_file).unwrap_or_default();
    let port = call.port;
    let invite = call.offer("th-d1");
    // (Answered at once: tm retransmits the INVITE until then.)
    let early = call.reply(&invite, "183 Session Progress");
    let did = call.did();
    let ours = format!("<sip:127.0.0.1:{port};did={did}>");
    let to_us = uri_of(&ours).to_owned();

    // Early: the 183 shows our Contact, and an UPDATE sent there reaches the callee (the
    // dialog keeps its target from the 183).
    assert_eq!(header(&early, "Contact"), vec![ours.as_str()], "{early}");
    assert_eq!(
        leaks(&early, &call.callee_side()),
        Vec::<u16>::new(),
        "{early}"
    );
    call.upstream.send(
        port,
        &call.caller_request("UPDATE", &to_us, "th-d1", 2, "up1"),
    );
    let got = call.downstream.recv("UPDATE");
    assert!(
        got.starts_with(&format!(
            "UPDATE sip:bob@127.0.0.1:{} SIP/2.0\r\n",
            call.callee.port
        )),
        "{got}\n{}",
        log()
    );
    assert_eq!(header(&got, "Contact"), vec![ours.as_str()], "{got}");
    call.downstream
        .send(port, &reply_to(&got, "200 OK", "", ""));
    assert!(
        call.upstream
            .recv("200 to the UPDATE")
            .starts_with("SIP/2.0 200 OK")
    );
    let ok = call.reply(&invite, "200 OK");

    // The callee: our Via only, no Record-Route, our Contact naming the dialog (no user
    // without `U`), another Call-ID.
    assert_eq!(header(&invite, "Via").len(), 1, "{invite}");
    assert!(header(&invite, "Record-Route").is_empty(), "{invite}");
    assert_eq!(header(&invite, "Contact"), vec![ours.as_str()], "{invite}");
    assert_eq!(
        leaks(&invite, &call.caller_side()),
        Vec::<u16>::new(),
        "{invite}"
    );
    let hidden = header(&invite, "Call-ID")[0].to_owned();
    assert!(
        hidden.starts_with("DLGCH_") && !hidden.contains("th-d1"),
        "{invite}"
    );
    // $TH_callee_callid is that Call-ID, while $ci stays the caller's.
    assert!(
        log().contains(&format!("callee callid <{hidden}> for th-d1")),
        "{}",
        log()
    );
    // The caller: its own Vias and Record-Route back, our Contact, its Call-ID.
    assert_eq!(header(&ok, "Via").len(), 2, "{ok}");
    assert!(header(&ok, "Via")[0].contains("z9hG4bK-up1"), "{ok}");
    assert_eq!(
        header(&ok, "Record-Route"),
        vec![format!("<sip:127.0.0.1:{};lr>", call.upstream.port).as_str()],
        "{ok}"
    );
    assert_eq!(header(&ok, "Contact"), vec![ours.as_str()], "{ok}");
    assert_eq!(leaks(&ok, &call.callee_side()), Vec::<u16>::new(), "{ok}");
    assert_eq!(header(&ok, "Call-ID"), vec!["th-d1"], "{ok}");

    // The ACK to our Contact reaches the callee's proxy: its target, its route set.
    call.upstream.send(
        port,
        &call.caller_request("ACK", &to_us, "th-d1", 1, "ack1"),
    );
    let got = call.downstream.recv("ACK");
    assert!(
        got.starts_with(&format!(
            "ACK sip:bob@127.0.0.1:{} SIP/2.0\r\n",
            call.callee.port
        )),
        "{got}\n{}",
        log()
    );
    assert_eq!(
        header(&got, "Route"),
        vec![format!("<sip:127.0.0.1:{};lr>", call.downstream.port).as_str()],
        "{got}"
    );
    assert_eq!(header(&got, "Via").len(), 1, "{got}");
    assert_eq!(header(&got, "Contact"), vec![ours.as_str()], "{got}");
    assert_eq!(header(&got, "Call-ID"), vec![hidden.as_str()], "{got}");
    assert_eq!(leaks(&got, &call.caller_side()), Vec::<u16>::new(), "{got}");
    let listed = call.dialogs();
    assert_eq!(listed["Dialogs"][0]["callid"], "th-d1", "{listed}");
    assert_eq!(listed["Dialogs"][0]["state"], 4, "{listed}");

    // The caller's re-INVITE (a new Contact): to the callee, hidden; its 200 back, hidden.
    call.upstream.send(
        port,
        &call.caller_request("INVITE", &to_us, "th-d1", 3, "re1"),
    );
    let got = call.downstream.recv("re-INVITE");
    assert!(
        got.starts_with(&format!(
            "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\n",
            call.callee.port
        )),
        "{got}\n{}",
        log()
    );
    assert_eq!(header(&got, "Via").len(), 1, "{got}");
    assert_eq!(header(&got, "Contact"), vec![ours.as_str()], "{got}");
    assert_eq!(header(&got, "Call-ID"), vec![hidden.as_str()], "{got}");
    assert_eq!(leaks(&got, &call.caller_side()), Vec::<u16>::new(), "{got}");
    let re_ok = reply_to(
        &got,
        "200 OK",
        "",
        &format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", call.callee.port),
    );
    call.downstream.send(port, &re_ok);
    let back = call.upstream.recv("200 to the re-INVITE");
    assert!(back.starts_with("SIP/2.0 200 OK"), "{back}");
    assert_eq!(header(&back, "Via").len(), 2, "{back}");
    assert!(header(&back, "Via")[0].contains("z9hG4bK-ure1"), "{back}");
    assert!(header(&back, "Record-Route").is_empty(), "{back}");
    assert_eq!(header(&back, "Contact"), vec![ours.as_str()], "{back}");
    assert_eq!(header(&back, "Call-ID"), vec!["th-d1"], "{back}");
    assert_eq!(
        leaks(&back, &call.callee_side()),
        Vec::<u16>::new(),
        "{back}"
    );
    call.upstream.send(
        port,
        &call.caller_request("ACK", &to_us, "th-d1", 3, "ack2"),
    );
    assert!(call.downstream.recv("ACK").starts_with("ACK sip:bob@"));

    // The callee hangs up, with the Call-ID it knows, to the Contact it got: the BYE goes to
    // the caller's new Contact through the caller's proxy, with the caller's Call-ID.
    call.callee.send(
        port,
        &call.callee_request("BYE", &to_us, &hidden, 1, "bye1"),
    );
    let got = call.upstream.recv("BYE");
    assert!(
        got.starts_with(&format!(
            "BYE sip:alice@127.0.0.1:{};moved SIP/2.0\r\n",
            call.caller.port
        )),
        "{got}\n{}",
        log()
    );
    assert_eq!(
        header(&got, "Route"),
        vec![format!("<sip:127.0.0.1:{};lr>", call.upstream.port).as_str()],
        "{got}"
    );
    assert_eq!(header(&got, "Via").len(), 1, "{got}");
    assert_eq!(header(&got, "Contact"), vec![ours.as_str()], "{got}");
    assert_eq!(header(&got, "Call-ID"), vec!["th-d1"], "{got}");
    assert_eq!(leaks(&got, &call.callee_side()), Vec::<u16>::new(), "{got}");
    call.upstream.send(port, &reply_to(&got, "200 OK", "", ""));
    let ok = call.callee.recv("200 to the BYE");
    assert_eq!(
        header(&ok, "Via"),
        vec![
            format!(
                "SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-ebye1",
                call.callee.port
            )
            .as_str()
        ],
        "{ok}"
    );
    assert_eq!(header(&ok, "Call-ID"), vec![hidden.as_str()], "{ok}");
    assert_eq!(leaks(&ok, &call.caller_side()), Vec::<u16>::new(), "{ok}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while call.dialogs()["Dialogs"]
        .as_array()
        .is_some_and(|d| !d.is_empty())
    {
        assert!(std::time::Instant::now() < deadline, "{}", call.dialogs());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A request naming no dialog, or a malformed id: the script's 404, nothing relayed.
    for (n, ruri) in [
        format!("sip:127.0.0.1:{port};did=fff.fff"),
        format!("sip:127.0.0.1:{port};did=zz"),
        format!("sip:127.0.0.1:{port};did=.1"),
        format!("sip:127.0.0.1:{port};did"),
        format!("sip:X.did.q.@127.0.0.1:{port}"),
        format!("sip:X.did.123456789.1@127.0.0.1:{port}"),
    ]
    .iter()
    .enumerate()
    {
        call.callee.send(
            port,
            &call.callee_request("BYE", ruri, "no-such-call", 2, &format!("x{n}")),
        );
        let got = call.callee.recv("404");
        assert!(got.starts_with("SIP/2.0 404 Not here"), "{ruri}: {got}");
    }
    assert!(
        call.upstream
            .quiet(std::time::Duration::from_millis(300))
            .is_none()
    );
    call.server.terminate(log);
}

/// `topology_hiding()` without flags: no user part in either Contact, the Call-ID kept.
#[test]
fn without_flags_the_contacts_show_no_user() {
    let mut call = Call::start(
        "noflags",
        "",
        "create_dialog();",
        "",
        "topology_hiding_match()",
    );
    let log_file = call.dir.join("rsips.log");
    let log = || std::fs::read_to_string(&log_file).unwrap_or_default();
    let port = call.port;
    let (invite, ok) = call.answer("th-n1");
    let ours = format!("<sip:127.0.0.1:{port};did={}>", call.did());
    assert_eq!(header(&invite, "Contact"), vec![ours.as_str()], "{invite}");
    assert_eq!(header(&ok, "Contact"), vec![ours.as_str()], "{ok}");
    assert_eq!(header(&invite, "Call-ID"), vec!["th-n1"], "{invite}");
    call.server.terminate(log);
}

/// `force_dialog` (no `create_dialog()` in the script) with `D`, `U` and usernames per side:
/// the dialog's id is in our Contact's user part, after the username shown to that side, and
/// requests sent there are matched by it. With `a` / `A` each side keeps being shown the
/// Contact first advertised to it; without, sequential requests show OpenSIPS' copy of the
/// usernames (the callee's written over the caller's). `match_dialog()` finds such requests
/// and hides them as well as `topology_hiding_match()` (OpenSIPS runs the same callback).
#[test]
fn force_dialog_with_did_in_the_user_part_and_kept_contacts() {
    forced_call("DUaA", "topology_hiding_match()");
}

#[test]
fn force_dialog_with_did_in_the_user_part_matched_by_match_dialog() {
    forced_call("DU", "match_dialog()");
}

fn forced_call(flags: &str, matcher: &str) {
    let keep = flags.contains('a');
    let mut call = Call::start(
        &format!("force-{flags}"),
        "modparam(\"topology_hiding\", \"force_dialog\", 1)",
        "",
        &format!("\"{flags}\", \"/alice1/bob\""),
        matcher,
    );
    let log_file = call.dir.join("rsips.log");
    let log = || std::fs::read_to_string(&log_file).unwrap_or_default();
    let port = call.port;
    let (invite, ok) = call.answer("th-f1");
    let did = call.did();
    let contact = |user: &str| format!("<sip:{user}.did.{did}@127.0.0.1:{port}>");
    assert_eq!(
        header(&invite, "Contact"),
        vec![contact("bob").as_str()],
        "{invite}"
    );
    assert_eq!(
        header(&ok, "Contact"),
        vec![contact("alice1").as_str()],
        "{ok}"
    );
    assert_eq!(header(&invite, "Call-ID"), vec!["th-f1"], "{invite}");
    assert_eq!(
        leaks(&invite, &call.caller_side()),
        Vec::<u16>::new(),
        "{invite}"
    );
    assert_eq!(leaks(&ok, &call.callee_side()), Vec::<u16>::new(), "{ok}");

    // The ACK to the caller's Contact (the id in its user part) reaches the callee.
    let to_us_caller = uri_of(&contact("alice1")).to_owned();
    call.upstream.send(
        port,
        &call.caller_request("ACK", &to_us_caller, "th-f1", 1, "ack1"),
    );
    let got = call.downstream.recv("ACK");
    assert!(
        got.starts_with(&format!(
            "ACK sip:bob@127.0.0.1:{} SIP/2.0\r\n",
            call.callee.port
        )),
        "{got}\n{}",
        log()
    );
    let seq_user = if keep { "bob" } else { "bobce1" };
    assert_eq!(
        header(&got, "Contact"),
        vec![contact(seq_user).as_str()],
        "{got}"
    );

    // The callee's re-INVITE to its Contact: the caller sees the one of the 200 with `a`.
    let to_us_callee = uri_of(&contact("bob")).to_owned();
    call.callee.send(
        port,
        &call.callee_request("INVITE", &to_us_callee, "th-f1", 1, "re1"),
    );
    let got = call.upstream.recv("re-INVITE");
    assert!(
        got.starts_with(&format!(
            "INVITE sip:alice@127.0.0.1:{};ob SIP/2.0\r\n",
            call.caller.port
        )),
        "{got}\n{}",
        log()
    );
    let seq_user = if keep { "alice1" } else { "bobce1" };
    assert_eq!(
        header(&got, "Contact"),
        vec![contact(seq_user).as_str()],
        "{got}"
    );
    assert_eq!(leaks(&got, &call.callee_side()), Vec::<u16>::new(), "{got}");
    call.upstream.send(
        port,
        &reply_to(
            &got,
            "200 OK",
            "",
            &format!("Contact: <sip:alice@127.0.0.1:{}>\r\n", call.caller.port),
        ),
    );
    let back = call.callee.recv("200 to the re-INVITE");
    assert_eq!(
        header(&back, "Contact"),
        vec![contact("bob").as_str()],
        "{back}"
    );
    assert_eq!(header(&back, "Via").len(), 1, "{back}");
    assert_eq!(
        leaks(&back, &call.caller_side()),
        Vec::<u16>::new(),
        "{back}"
    );

    // The caller hangs up: the BYE reaches the callee's target through its proxy.
    call.upstream.send(
        port,
        &call.caller_request("BYE", &to_us_caller, "th-f1", 2, "bye1"),
    );
    let got = call.downstream.recv("BYE");
    assert!(
        got.starts_with(&format!(
            "BYE sip:bob@127.0.0.1:{} SIP/2.0\r\n",
            call.callee.port
        )),
        "{got}\n{}",
        log()
    );
    call.downstream
        .send(port, &reply_to(&got, "200 OK", "", ""));
    let ok = call.upstream.recv("200 to the BYE");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert_eq!(header(&ok, "Via").len(), 2, "{ok}");
    call.server.terminate(log);
}

/// What the SIPp caller checks on the 200 and sends (OpenSIPS' sipssert
/// topology-hiding/05.th-dialog-did has the same checks): one Via, no Route, our Contact with
/// the dialog's id in its user part; the ACK and the BYE go to that Contact.
const SIPP_UAC: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="th dialog did caller">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Max-Forwards: 70
      From: <sip:caller@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true">
    <action>
      <ereg regexp=".+" search_in="hdr" header="Via:" occurence="2" check_it_inverse="true" assign_to="dummy"/>
      <ereg regexp=".+" search_in="hdr" header="Route:" check_it_inverse="true" assign_to="dummy"/>
      <ereg regexp="&lt;sip:X[.]did[.][0-9a-f]+[.][0-9a-f]+@127[.]0[.]0[.]1:RSIPS&gt;" search_in="hdr" header="Contact:" check_it="true" assign_to="dummy"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      [routes]
      CSeq: 1 ACK
      Contact: <sip:[local_ip]:[local_port]>
      Call-ID: [call_id]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="300"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      [routes]
      CSeq: 2 BYE
      Contact: <sip:[local_ip]:[local_port]>
      Call-ID: [call_id]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#;

/// The SIPp callee: the same checks on the INVITE, the ACK and the BYE.
const SIPP_UAS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="th dialog did callee">
  <recv request="INVITE" rrs="true">
    <action>
      <ereg regexp=".+" search_in="hdr" header="Via:" occurence="2" check_it_inverse="true" assign_to="dummy"/>
      <ereg regexp=".+" search_in="hdr" header="Record-Route:" check_it_inverse="true" assign_to="dummy"/>
      <ereg regexp="&lt;sip:X[.]did[.][0-9a-f]+[.][0-9a-f]+@127[.]0[.]0[.]1:RSIPS&gt;" search_in="hdr" header="Contact:" check_it="true" assign_to="dummy"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]UAS[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]UAS[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK">
    <action>
      <ereg regexp=".+" search_in="hdr" header="Via:" occurence="2" check_it_inverse="true" assign_to="dummy"/>
      <ereg regexp=".+" search_in="hdr" header="Route:" check_it_inverse="true" assign_to="dummy"/>
      <ereg regexp="&lt;sip:X[.]did[.][0-9a-f]+[.][0-9a-f]+@127[.]0[.]0[.]1:RSIPS&gt;" search_in="hdr" header="Contact:" check_it="true" assign_to="dummy"/>
    </action>
  </recv>
  <recv request="BYE">
    <action>
      <ereg regexp=".+" search_in="hdr" header="Route:" check_it_inverse="true" assign_to="dummy"/>
      <ereg regexp="&lt;sip:X[.]did[.][0-9a-f]+[.][0-9a-f]+@127[.]0[.]0[.]1:RSIPS&gt;" search_in="hdr" header="Contact:" check_it="true" assign_to="dummy"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="500"/>
</scenario>
"#;

/// A SIPp caller and callee through `create_dialog()` + `topology_hiding("D")` (the routing of
/// OpenSIPS' sipssert test topology-hiding/05.th-dialog-did): both scenarios' checks pass and
/// the dialog ends with the BYE.
#[test]
fn sipp_call_with_the_dialog_id_in_the_contact_user() {
    let uas_port = common::free_port();
    let port = common::free_port();
    let dir = common::test_dir("th", "sipp-did");
    let cfg = DLG_CONFIG
        .replace("PORT", &port.to_string())
        .replace("CALLEE", &uas_port.to_string())
        .replace("FIFO", dir.join("fifo").to_str().unwrap())
        .replace("#PARAMS", "")
        .replace("#CREATE", "create_dialog();")
        .replace("ARGS", "\"D\"")
        .replace("MATCH", "topology_hiding_match()");
    std::fs::write(dir.join("rsips.cfg"), cfg).unwrap();
    std::fs::write(
        dir.join("uac.xml"),
        SIPP_UAC.replace("RSIPS", &port.to_string()),
    )
    .unwrap();
    std::fs::write(
        dir.join("uas.xml"),
        SIPP_UAS.replace("RSIPS", &port.to_string()),
    )
    .unwrap();
    let mut server = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    let mut uas = common::Kill(
        common::sipp()
            .args([
                "-sf",
                "uas.xml",
                "-i",
                "127.0.0.1",
                "-p",
                &uas_port.to_string(),
            ])
            .args(["-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error"])
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let uac = common::sipp()
        .args(["-sf", "uac.xml", "-i", "127.0.0.1"])
        .args(["-p", &common::free_port().to_string(), "-s", "bob"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        uac.status.success(),
        "sipp caller failed:\n{}\nrsips:\n{}",
        String::from_utf8_lossy(&uac.stdout),
        log()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(s) = uas.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sipp callee still running"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "sipp callee failed:\n{}", log());
    let (ok, out) = common::opensips_cli(&dir.join("fifo"), &["dlg_list"]);
    assert!(ok, "{out}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        listed["Dialogs"].as_array().is_none_or(|d| d.is_empty()),
        "{listed}"
    );
    server.terminate(log);
}

/// The dialog keeps the hiding across a restart (`db_mode`, its `module_flags` column): the
/// callee's BYE after it still reaches the caller, routed from the dialog.
#[test]
fn a_hidden_dialog_survives_a_restart() {
    let dir = common::test_dir("th", "restart-db");
    std::fs::create_dir_all(dir.join("db")).unwrap();
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
         modparam(\"dialog\", \"db_url\", \"text://{}\")",
        dir.join("db").display()
    );
    let mut call = Call::start(
        "restart",
        &db,
        "create_dialog();",
        "\"U\"",
        "topology_hiding_match()",
    );
    let log_file = call.dir.join("rsips.log");
    let log = || std::fs::read_to_string(&log_file).unwrap_or_default();
    let port = call.port;
    let (invite, _) = call.answer("th-r1");
    let ours = header(&invite, "Contact")[0].to_owned();
    assert!(
        ours.starts_with(&format!("<sip:alice@127.0.0.1:{port};did=")),
        "{invite}"
    );
    call.server.terminate(log);
    call.server = common::spawn_rsips(&call.dir, "rsips.cfg", |l| l.contains("listening on udp:"));

    call.callee.send(
        port,
        &call.callee_request("BYE", uri_of(&ours), "th-r1", 2, "bye1"),
    );
    let got = call.upstream.recv("BYE after the restart");
    assert!(
        got.starts_with(&format!(
            "BYE sip:alice@127.0.0.1:{};ob SIP/2.0\r\n",
            call.caller.port
        )),
        "{got}\n{}",
        log()
    );
    assert_eq!(header(&got, "Via").len(), 1, "{got}");
    assert!(
        header(&got, "Contact")[0].starts_with(&format!("<sip:bob@127.0.0.1:{port};did=")),
        "{got}"
    );
    assert_eq!(leaks(&got, &call.callee_side()), Vec::<u16>::new(), "{got}");
    call.server.terminate(log);
}
