//! Dialog replication over the clusterer (`dialog_replication_cluster`), two rsips nodes on
//! 127.0.0.1: a call through node 1 is listed by node 2 with the same id, Call-ID and state;
//! a BYE reaching node 2 is routed there by the dialog's `did` and ends the call on both; a
//! node started later gets the calls by sync; with a sharing tag only the node holding it
//! active sends the timeout's BYEs; a malformed replication packet is dropped.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::cluster::{Node, ports, wait_for};
use common::{Peer, header, reply_to};
use serde_json::{Value, json};

const NODE: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:SIP
socket=bin:127.0.0.1:BIN
loadmodule "proto_udp.so"
loadmodule "proto_bin.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "clusterer.so"
modparam("clusterer", "my_node_id", ID)
modparam("clusterer", "ping_interval", 1)
modparam("clusterer", "ping_timeout", 500)
modparam("clusterer", "node_timeout", 2)
modparam("clusterer", "seed_fallback_interval", 1)
modparam("clusterer", "db_mode", 0)
PARAMS
loadmodule "dialog.so"
modparam("dialog", "dlg_match_mode", 0)
DLGPARAMS
loadmodule "httpd.so"
modparam("httpd", "ip", "127.0.0.1")
modparam("httpd", "port", HTTP)
loadmodule "mi_http.so"
route {
    if (has_totag()) {
        if (is_method("ACK") && t_check_trans()) { t_relay(); exit; }
        if (!loose_route()) { sl_send_reply(404, "Not here"); exit; }
        xlog("SEQ $rm status=$DLG_status did=$DLG_did\n");
        t_relay();
        exit;
    }
    if (is_method("INVITE")) {
        create_dialog("bye-on-timeout");
        if ($hdr(X-Timeout) != NULL) $DLG_timeout = $(hdr(X-Timeout){s.int});
        if ($hdr(X-Tag) != NULL) set_dlg_sharing_tag("$hdr(X-Tag)");
        xlog("NEW timeout=$DLG_timeout rc=$rc\n");
        $dlg_val(who) = $fU;
        set_dlg_profile("calls");
        if ($hdr(X-Caller) != NULL) set_dlg_profile("caller", "$fU");
        record_route();
    }
    t_relay();
}
"#;

/// Node `id` of a cluster of (id, bin port) nodes; node 1 is the seed; `extra`: more
/// clusterer parameters (sharing tags).
fn start(name: &str, id: u32, all: &[(u32, u16)], p: (u16, u16, u16), extra: &str) -> Node {
    start_with(name, id, all, p, (extra, DIALOG_REPL))
}

/// The dialog parameters of the replication tests.
const DIALOG_REPL: &str = "modparam(\"dialog\", \"dialog_replication_cluster\", 1)\n\
     modparam(\"dialog\", \"profiles_no_value\", \"calls\")";

/// As [`start`], with the dialog module's parameters.
fn start_with(
    name: &str,
    id: u32,
    all: &[(u32, u16)],
    p: (u16, u16, u16),
    (extra, dlg): (&str, &str),
) -> Node {
    let params = common::cluster::topology(id, all, true) + extra;
    let cfg = NODE.replace("DLGPARAMS", dlg).replace("PARAMS", &params);
    Node::start("dlgrepl", name, id, p, &cfg)
}

impl Node {
    fn dialogs(&self) -> Vec<Value> {
        let r = self.mi("dlg_list", Value::Null);
        r["result"]["Dialogs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The capability's state in `list_cap` ("Ok" once synced).
    fn cap_state(&self) -> String {
        let r = self.mi("clusterer:list_cap", Value::Null);
        r["result"]["Clusters"][0]["Capabilities"]
            .as_array()
            .and_then(|caps| caps.iter().find(|c| c["name"] == "dialog-dlg-repl"))
            .and_then(|c| c["state"].as_str())
            .unwrap_or("")
            .to_owned()
    }

    /// The values of the first dialog `dlg_list_ctx` lists, by name.
    fn values(&self) -> Value {
        let r = self.mi("dlg_list_ctx", Value::Null);
        let mut out = json!({});
        for v in r["result"]["Dialogs"][0]["context"]["values"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            if let Some(o) = v.as_object() {
                for (k, x) in o {
                    out[k] = x.clone();
                }
            }
        }
        out
    }
}

/// A call from `caller` to `callee` through the node on port `px`, up to the 200 OK: the
/// Record-Route the caller got (with the did) and the callee's tag.
fn call(px: u16, caller: &Peer, callee: &Peer, callid: &str, extra: &str) -> (String, String) {
    let invite = format!(
        "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}-1;rport\r\n\
         From: <sip:alice@example.com>;tag=a-{callid}\r\nTo: <sip:bob@example.com>\r\nCall-ID: {callid}\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{}>\r\n{extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        callee.port, caller.port, caller.port
    );
    caller.send(px, &invite);
    let at_callee = callee.recv("INVITE at the callee");
    assert!(at_callee.starts_with("INVITE "), "{at_callee}");
    let contact = format!("Contact: <sip:bob@127.0.0.1:{}>\r\n", callee.port);
    let tag = format!("b-{callid}");
    callee.send(px, &reply_to(&at_callee, "200 OK", &tag, &contact));
    let ok = caller.recv("200");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    (header(&ok, "Record-Route")[0].to_owned(), tag)
}

/// A sequential request from the caller to the node on port `px`, with `route` (the
/// callee's `tag`, the call's `callid`).
fn in_dialog(
    px: u16,
    (caller, callee): (&Peer, &Peer),
    (method, cseq): (&str, u32),
    (route, tag, callid): (&str, &str, &str),
) {
    caller.send(
        px,
        &format!(
            "{method} sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{callid}-{method}{cseq};rport\r\n\
             Route: {route}\r\nFrom: <sip:alice@example.com>;tag=a-{callid}\r\nTo: <sip:bob@example.com>;tag={tag}\r\n\
             Call-ID: {callid}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            callee.port, caller.port
        ),
    );
}

/// The did of a Record-Route.
fn did(rr: &str) -> String {
    rr.split(";did=")
        .nth(1)
        .unwrap()
        .trim_end_matches('>')
        .split([';', '>'])
        .next()
        .unwrap()
        .to_owned()
}

/// Two nodes up, their capability synced (node 1 the seed).
fn pair(name: &str, extra: [&str; 2]) -> (Node, Node) {
    let p = ports(2);
    let all = [(1, p[0].1), (2, p[1].1)];
    let a = start(name, 1, &all, p[0], extra[0]);
    let b = start(name, 2, &all, p[1], extra[1]);
    wait_for(
        "both nodes synced",
        Duration::from_secs(10),
        || a.log() + &b.log(),
        || a.cap_state() == "Ok" && b.cap_state() == "Ok",
    );
    (a, b)
}

#[test]
fn a_call_through_node_1_is_on_node_2_and_a_bye_there_ends_it_on_both() {
    let (a, b) = pair("call", ["", ""]);
    let logs = || a.log() + &b.log();
    let (caller, callee) = (Peer::new(), Peer::new());
    let (rr, tag) = call(a.sip, &caller, &callee, "rc1", "");
    let mine = a.dialogs();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["state"], 3);
    wait_for(
        "dialog created on node 2",
        Duration::from_secs(3),
        logs,
        || b.dialogs().len() == 1,
    );
    let theirs = b.dialogs();
    for key in [
        "ID",
        "callid",
        "state",
        "caller_tag",
        "from_uri",
        "to_uri",
        "timestart",
    ] {
        assert_eq!(
            theirs[0][key], mine[0][key],
            "{key}: {theirs:?} vs {mine:?}"
        );
    }
    assert_eq!(
        theirs[0]["CALLEES"][0]["callee_contact"],
        format!("sip:bob@127.0.0.1:{}", callee.port)
    );
    assert_eq!(theirs[0]["CALLEES"][0]["callee_tag"], tag);
    assert_eq!(b.values()["who"], "alice", "{}", logs());
    let p2 = b.mi("dialog:profile_get_size", json!({"profile": "calls"}));
    assert_eq!(p2["result"]["Profile"]["count"], 1, "{p2}");

    // The ACK (to node 1) confirms it: node 2 hears the update.
    in_dialog(a.sip, (&caller, &callee), ("ACK", 1), (&rr, &tag, "rc1"));
    assert!(callee.recv("ACK").starts_with("ACK "));
    wait_for("state 4 on node 2", Duration::from_secs(3), logs, || {
        b.dialogs().first().is_some_and(|d| d["state"] == 4)
    });

    // A BYE reaching node 2 (its own address, node 1's did): found by the did alone
    // (dlg_match_mode 0), relayed to the callee, ended on both nodes.
    let route = format!("<sip:127.0.0.1:{};lr;did={}>", b.sip, did(&rr));
    in_dialog(b.sip, (&caller, &callee), ("BYE", 2), (&route, &tag, "rc1"));
    let bye = callee.recv("BYE via node 2");
    assert!(bye.starts_with("BYE "), "{bye}");
    callee.send(b.sip, &reply_to(&bye, "200 OK", "", ""));
    assert!(caller.recv("200 for BYE").starts_with("SIP/2.0 200"));
    let seen = format!("SEQ BYE status=5 did={}", did(&rr));
    assert!(b.log().contains(&seen), "{}", b.log());
    for n in [&a, &b] {
        wait_for("the dialog gone", Duration::from_secs(4), logs, || {
            n.dialogs().is_empty()
        });
    }
    let p1 = a.mi("dialog:profile_get_size", json!({"profile": "calls"}));
    assert_eq!(p1["result"]["Profile"]["count"], 0, "{p1}");
}

#[test]
fn a_node_started_later_gets_the_calls_by_sync() {
    let p = ports(2);
    let all = [(1, p[0].1), (2, p[1].1)];
    let a = start("sync", 1, &all, p[0], "");
    wait_for(
        "node 1 synced alone",
        Duration::from_secs(5),
        || a.log(),
        || a.cap_state() == "Ok",
    );
    let (caller, callee) = (Peer::new(), Peer::new());
    let mut calls = Vec::new();
    for i in 0..3 {
        let callid = format!("sync{i}");
        let (rr, tag) = call(a.sip, &caller, &callee, &callid, "");
        in_dialog(a.sip, (&caller, &callee), ("ACK", 1), (&rr, &tag, &callid));
        assert!(callee.recv("ACK").starts_with("ACK "));
        calls.push((callid, did(&rr)));
    }
    let mut b = start("sync", 2, &all, p[1], "");
    let logs = || a.log() + &b.log();
    wait_for("node 2 synced", Duration::from_secs(10), logs, || {
        b.cap_state() == "Ok" && b.dialogs().len() == 3
    });
    let mut mine: Vec<(String, String, Value)> = a
        .dialogs()
        .iter()
        .map(|d| {
            (
                d["callid"].to_string(),
                d["ID"].to_string(),
                d["state"].clone(),
            )
        })
        .collect();
    let mut theirs: Vec<(String, String, Value)> = b
        .dialogs()
        .iter()
        .map(|d| {
            (
                d["callid"].to_string(),
                d["ID"].to_string(),
                d["state"].clone(),
            )
        })
        .collect();
    mine.sort_by(|x, y| x.0.cmp(&y.0));
    theirs.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(theirs, mine);
    assert!(theirs.iter().all(|d| d.2 == 4), "{theirs:?}");
    assert!(
        b.log().contains("dialogs synced from the cluster"),
        "{}",
        b.log()
    );
    // dlg_cluster_sync asks again: the same three calls, no duplicates.
    let r = b.mi("dlg_cluster_sync", Value::Null);
    assert_eq!(r["result"], "OK", "{r}");
    wait_for("synced again", Duration::from_secs(5), logs, || {
        b.cap_state() == "Ok" && b.log().matches("dialogs synced from the cluster").count() == 2
    });
    assert_eq!(b.dialogs().len(), 3, "{:?}", b.dialogs());
    // A call node 2 creates itself gets an id of its own, not one of the synced ones.
    let (rr, _) = call(b.sip, &caller, &callee, "own", "");
    assert!(calls.iter().all(|(_, d)| *d != did(&rr)), "{calls:?} {rr}");
    b.stop();
}

#[test]
fn only_the_node_holding_the_sharing_tag_sends_the_timeouts_byes() {
    let tag =
        |state: &str| format!("modparam(\"clusterer\", \"sharing_tag\", \"vip/1={state}\")\n");
    let (a, b) = pair("shtag", [&tag("active"), &tag("backup")]);
    let logs = || a.log() + &b.log();
    let (caller, callee) = (Peer::new(), Peer::new());
    let (rr, t) = call(
        a.sip,
        &caller,
        &callee,
        "tagged",
        "X-Timeout: 2\r\nX-Tag: vip\r\n",
    );
    in_dialog(a.sip, (&caller, &callee), ("ACK", 1), (&rr, &t, "tagged"));
    assert!(callee.recv("ACK").starts_with("ACK "));
    wait_for("on node 2", Duration::from_secs(3), logs, || {
        b.dialogs().first().is_some_and(|d| d["state"] == 4)
    });
    assert_eq!(b.values()["dlgX_shtag"], "vip", "{}", logs());
    // The timeout: one BYE each way, from node 1 (answered), none from the backup node.
    for (peer, what) in [
        (&callee, "BYE to the callee"),
        (&caller, "BYE to the caller"),
    ] {
        let bye = peer
            .quiet(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no {what}: {:?} {}", a.dialogs(), logs()));
        assert!(bye.starts_with("BYE "), "{bye}");
        peer.send(a.sip, &reply_to(&bye, "200 OK", "", ""));
    }
    assert_eq!(
        callee.quiet(Duration::from_millis(2500)),
        None,
        "a second BYE: {}",
        logs()
    );
    assert_eq!(
        caller.quiet(Duration::from_millis(200)),
        None,
        "a second BYE: {}",
        logs()
    );
    for n in [&a, &b] {
        wait_for("ended", Duration::from_secs(4), logs, || {
            n.dialogs().is_empty()
        });
    }
}

#[test]
fn a_malformed_replication_packet_is_dropped() {
    let (a, b) = pair("bad", ["", ""]);
    let logs = || a.log() + &b.log();
    let cap = b"dialog-dlg-repl";
    let packet = |version: i16, kind: i32, body: &[u8]| {
        let mut pk = b"P4CK".to_vec();
        pk.extend_from_slice(&[0; 4]);
        pk.extend_from_slice(&version.to_le_bytes());
        pk.extend_from_slice(&(cap.len() as u16).to_le_bytes());
        pk.extend_from_slice(cap);
        pk.extend_from_slice(&kind.to_le_bytes());
        pk.extend_from_slice(body);
        for v in [1i32, 1, 2] {
            pk.extend_from_slice(&v.to_le_bytes());
        }
        let len = (pk.len() as u32).to_le_bytes();
        pk[4..8].copy_from_slice(&len);
        pk
    };
    // A CREATED cut after the Call-ID and tags, a string longer than the body, an unknown
    // version and an unknown type.
    let mut cut = Vec::new();
    for s in ["evil", "a", "b"] {
        cut.extend_from_slice(&(s.len() as u16).to_le_bytes());
        cut.extend_from_slice(s.as_bytes());
    }
    let mut long = cut.clone();
    long.extend_from_slice(&500u16.to_le_bytes());
    long.extend_from_slice(b"short");
    let mut s = TcpStream::connect(("127.0.0.1", b.bin)).unwrap();
    for pk in [
        packet(4, 1, &cut),
        packet(4, 2, &long),
        packet(9, 1, &cut),
        packet(4, 77, &cut),
    ] {
        s.write_all(&pk).unwrap();
    }
    wait_for(
        "malformed packets logged",
        Duration::from_secs(3),
        logs,
        || {
            let l = b.log();
            l.contains("malformed dialog replication packet 1 from node 1")
                && l.contains("malformed dialog replication packet 2 from node 1")
                && l.contains("unsupported BIN version 9")
                && l.contains("invalid dialog binary packet command: 77")
        },
    );
    assert!(b.dialogs().is_empty(), "{:?}", b.dialogs());
    assert_eq!(b.cap_state(), "Ok", "{}", b.log());
    // Node 2 still takes a real call's replication.
    let (caller, callee) = (Peer::new(), Peer::new());
    call(a.sip, &caller, &callee, "after", "");
    wait_for("the call replicated", Duration::from_secs(3), logs, || {
        b.dialogs().len() == 1
    });
}

#[test]
fn profile_counts_are_replicated_and_expire() {
    let p = ports(2);
    let all = [(1, p[0].1), (2, p[1].1)];
    let dlg = "modparam(\"dialog\", \"profile_replication_cluster\", 1)\n\
               modparam(\"dialog\", \"replicate_profiles_timer\", 100)\n\
               modparam(\"dialog\", \"replicate_profiles_expire\", 3)\n\
               modparam(\"dialog\", \"profiles_no_value\", \"calls/b\")\n\
               modparam(\"dialog\", \"profiles_with_value\", \"caller / b\")";
    let mut a = start_with("prof", 1, &all, p[0], ("", dlg));
    let b = start_with("prof", 2, &all, p[1], ("", dlg));
    let logs = || a.log() + &b.log();
    let size = |n: &Node| {
        let r = n.mi("dialog:profile_get_size", json!({"profile": "calls"}));
        r["result"]["Profile"]["count"].as_i64().unwrap_or(-1)
    };
    let (caller, callee) = (Peer::new(), Peer::new());
    let alice = |n: &Node| {
        let r = n.mi(
            "dialog:profile_get_size",
            json!({"profile": "caller", "value": "alice"}),
        );
        r["result"]["Profile"]["count"].as_i64().unwrap_or(-1)
    };
    let (rr, tag) = call(a.sip, &caller, &callee, "p1", "X-Caller: 1\r\n");
    assert_eq!(size(&a), 1);
    wait_for(
        "alice's count on node 2",
        Duration::from_secs(5),
        logs,
        || alice(&b) == 1,
    );
    // Node 2 has no dialog of its own: its count is node 1's.
    wait_for(
        "node 1's count on node 2",
        Duration::from_secs(5),
        logs,
        || size(&b) == 1,
    );
    assert!(b.dialogs().is_empty(), "{:?}", b.dialogs());
    call(b.sip, &caller, &callee, "p2", "");
    for n in [&a, &b] {
        wait_for("both calls counted", Duration::from_secs(3), logs, || {
            size(n) == 2
        });
    }
    // Call 1 ends on node 1: node 2's count follows.
    in_dialog(a.sip, (&caller, &callee), ("BYE", 2), (&rr, &tag, "p1"));
    let bye = callee.recv("BYE");
    assert!(bye.starts_with("BYE "), "{bye}");
    callee.send(a.sip, &reply_to(&bye, "200 OK", "", ""));
    assert!(caller.recv("200 for BYE").starts_with("SIP/2.0 200"));
    // Well before the 3 s expiry: node 1 sent the value's count once more, as 0.
    let ended = Instant::now();
    wait_for(
        "node 2 back to its own call",
        Duration::from_secs(3),
        logs,
        || size(&b) == 1 && alice(&b) == 0,
    );
    assert!(
        ended.elapsed() < Duration::from_millis(1500),
        "{:?}",
        ended.elapsed()
    );
    assert_eq!(size(&a), 1);
    // A new call on node 1, then node 1 stops: its count expires on node 2.
    call(a.sip, &caller, &callee, "p3", "");
    wait_for(
        "node 1's new call counted",
        Duration::from_secs(3),
        logs,
        || size(&b) == 2,
    );
    a.stop();
    wait_for(
        "node 1's count expired",
        Duration::from_secs(6),
        || b.log(),
        || size(&b) == 1,
    );
}
