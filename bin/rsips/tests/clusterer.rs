//! clusterer + proto_bin: rsips nodes on 127.0.0.1 pinging each other over BIN, link states
//! and node events, sharing-tag takeover seen through MI and `$cluster.sh_tag`, generic
//! messages into `event_route`s, MI run on the other nodes, hand-built OpenSIPS packets on
//! the wire, the table of db_mode 1, and the errors of bad parameters and MI calls.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Peer, header};
use serde_json::{Value, json};

const NODE: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:SIP
socket=bin:127.0.0.1:BIN
loadmodule "proto_udp.so"
loadmodule "proto_bin.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "clusterer.so"
modparam("clusterer", "my_node_id", ID)
modparam("clusterer", "ping_interval", 1)
modparam("clusterer", "ping_timeout", 500)
modparam("clusterer", "node_timeout", 2)
PARAMS
loadmodule "httpd.so"
modparam("httpd", "ip", "127.0.0.1")
modparam("httpd", "port", HTTP)
loadmodule "mi_http.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
route {
    if ($rU == "bcast") {
        cluster_broadcast_req(1, "hello from ID", $var(tag));
        append_to_reply("X-Ret: $rc\r\nX-Sent-Tag: $var(tag)\r\n");
    } else if ($rU == "take") {
        $cluster.sh_tag(vip/1) = "active";
    } else if ($rU == "bself") {
        cluster_broadcast_req(1, "self too", , 1);
        append_to_reply("X-Ret: $rc\r\n");
    } else if ($rU == "send") {
        cluster_send_req(1, $(hdr(X-Dst){s.int}), "direct from ID");
        append_to_reply("X-Ret: $rc\r\n");
    } else if ($rU == "check") {
        if (cluster_check_addr(1, "127.0.0.1", "bin"))
            append_to_reply("X-Bin: yes\r\n");
        if (!cluster_check_addr(1, "10.9.9.9", "bin"))
            append_to_reply("X-Other: no\r\n");
    }
    append_to_reply("X-Tag: $cluster.sh_tag(vip/1)\r\n");
    sl_send_reply(200, "OK");
}
event_route[E_CLUSTERER_NODE_STATE_CHANGED] {
    xlog("NODE-EVENT cluster=$param(cluster_id) node=$param(node_id) state=$param(new_state)\n");
}
event_route[E_CLUSTERER_SHARING_TAG_CHANGED] {
    xlog("TAG-EVENT $param(name)/$param(cluster) $param(state) ($param(reason))\n");
}
event_route[E_CLUSTERER_REQ_RECEIVED] {
    xlog("REQ-EVENT from=$param(src_id) msg=[$param(msg)] tag=$param(tag)\n");
    cluster_send_rpl($param(cluster_id), $param(src_id), "ack from ID", $param(tag));
}
event_route[E_CLUSTERER_RPL_RECEIVED] {
    xlog("RPL-EVENT from=$param(src_id) msg=[$param(msg)] tag=$param(tag)\n");
}
"#;

/// One rsips node of the test's cluster.
struct Node {
    rsips: Option<common::Kill>,
    id: u32,
    sip: u16,
    http: u16,
    dir: PathBuf,
}

/// Ports for `n` nodes: (sip, bin, http) each.
fn ports(n: usize) -> Vec<(u16, u16, u16)> {
    (0..n)
        .map(|_| {
            let [a, b, c] = common::free_ports::<3>();
            (a, b, c)
        })
        .collect()
}

/// The db_mode 0 parameters of node `id` in a cluster with `all` (id, bin port) nodes.
fn topology(id: u32, all: &[(u32, u16)], tag: &str) -> String {
    let mut p = String::from("modparam(\"clusterer\", \"db_mode\", 0)\n");
    for (n, bin) in all {
        if *n == id {
            p += &format!(
                "modparam(\"clusterer\", \"my_node_info\", \"cluster_id=1,url=bin:127.0.0.1:{bin}\")\n"
            );
        } else {
            p += &format!(
                "modparam(\"clusterer\", \"neighbor_node_info\", \"cluster_id=1,node_id={n},url=bin:127.0.0.1:{bin}\")\n"
            );
        }
    }
    p + &format!("modparam(\"clusterer\", \"sharing_tag\", \"vip/1={tag}\")\n")
}

fn start(name: &str, id: u32, (sip, bin, http): (u16, u16, u16), params: &str) -> Node {
    let dir =
        std::env::temp_dir().join(format!("rsips-cl-{name}-{id}-{}-{sip}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = NODE
        .replace("PARAMS", params)
        .replace("SIP", &sip.to_string())
        .replace("BIN", &bin.to_string())
        .replace("HTTP", &http.to_string())
        .replace("FIFO", &dir.join("fifo").display().to_string())
        .replace("ID", &id.to_string());
    std::fs::write(dir.join("rsips.cfg"), &cfg).unwrap();
    let mut node = Node {
        rsips: None,
        id,
        sip,
        http,
        dir,
    };
    node.restart();
    node
}

impl Node {
    fn restart(&mut self) {
        self.rsips = Some(common::spawn_rsips(&self.dir, "rsips.cfg", |l| {
            l.contains("MI listening")
        }));
    }

    fn stop(&mut self) {
        if let Some(mut k) = self.rsips.take() {
            k.terminate(|| self.log());
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }

    /// One MI call over HTTP: the whole JSON-RPC response.
    fn mi(&self, method: &str, params: Value) -> Value {
        let mut req = json!({"jsonrpc": "2.0", "method": method, "id": 1});
        if !params.is_null() {
            req["params"] = params;
        }
        serde_json::from_str(&common::mi_http(self.http, &req.to_string())).unwrap()
    }

    /// `link_state` of node `other` in `clusterer:list`.
    fn link(&self, other: u32) -> String {
        let r = self.mi("clusterer:list", Value::Null);
        r["result"]["Clusters"][0]["Nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == other)
            .map(|n| n["link_state"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    fn tag(&self) -> String {
        let r = self.mi("clusterer:list_shtags", Value::Null);
        r["result"][0]["State"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// An OPTIONS to the node's script for user `user`: the reply.
    fn ask(&self, peer: &Peer, user: &str, extra: &str) -> String {
        peer.send(
            self.sip,
            &format!(
                "OPTIONS sip:{user}@127.0.0.1:{sip} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK{user}{n}\r\n\
                 From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\n\
                 Call-ID: {user}-{n}@test\r\nCSeq: 1 OPTIONS\r\n{extra}Content-Length: 0\r\n\r\n",
                sip = self.sip,
                p = peer.port,
                n = self.id,
            ),
        );
        peer.recv("reply")
    }
}

/// Waits (bounded) until `f` holds; panics with `what` and `log()` otherwise.
fn wait_for(what: &str, within: Duration, log: impl Fn() -> String, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "{what} not within {within:?}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pair(name: &str, tags: [&str; 2]) -> (Node, Node) {
    let p = ports(2);
    let all = [(1, p[0].1), (2, p[1].1)];
    let a = start(name, 1, p[0], &topology(1, &all, tags[0]));
    let b = start(name, 2, p[1], &topology(2, &all, tags[1]));
    wait_for(
        "nodes up",
        Duration::from_secs(5),
        || a.log() + &b.log(),
        || a.link(2) == "Up" && b.link(1) == "Up",
    );
    (a, b)
}

#[test]
fn nodes_come_up_a_stopped_one_goes_down_and_comes_back() {
    let p = ports(3);
    let all = [(1, p[0].1), (2, p[1].1), (3, p[2].1)];
    let a = start("updown", 1, p[0], &topology(1, &all, "active"));
    let mut b = start("updown", 2, p[1], &topology(2, &all, "backup"));
    let c = start("updown", 3, p[2], &topology(3, &all, "backup"));
    let logs = || a.log() + &b.log() + &c.log();
    wait_for("full mesh up", Duration::from_secs(5), logs, || {
        a.link(2) == "Up" && a.link(3) == "Up" && b.link(3) == "Up" && c.link(1) == "Up"
    });
    let list = a.mi("clusterer_list", Value::Null);
    let n2 = &list["result"]["Clusters"][0]["Nodes"][0];
    assert_eq!(list["result"]["Clusters"][0]["cluster_id"], 1);
    assert_eq!(n2["node_id"], 2, "{list}");
    assert_eq!(n2["url"], format!("bin:127.0.0.1:{}", p[1].1));
    assert_eq!(n2["state"], "enabled");
    assert_eq!(n2["next_hop"], "2");
    assert_eq!(n2["description"], "none");
    let top = a.mi("clusterer:list_topology", Value::Null);
    assert_eq!(
        top["result"]["Clusters"][0]["Nodes"][0],
        json!({"node_id": 1, "Neighbours": [2, 3]})
    );
    wait_for(
        "up event",
        Duration::from_secs(2),
        || a.log(),
        || a.log().contains("NODE-EVENT cluster=1 node=2 state=1"),
    );

    // Node 2 stops: after the ping timeouts and retries the others see it down.
    let stopped = Instant::now();
    b.stop();
    wait_for(
        "node 2 down",
        Duration::from_secs(8),
        || a.log(),
        || a.link(2) == "Down",
    );
    assert!(
        stopped.elapsed() >= Duration::from_millis(500),
        "down before any ping timeout"
    );
    wait_for(
        "node 2 down on 3",
        Duration::from_secs(8),
        || c.log(),
        || c.link(2) == "Down",
    );
    wait_for(
        "down event",
        Duration::from_secs(2),
        || a.log(),
        || a.log().contains("NODE-EVENT cluster=1 node=2 state=0"),
    );
    // Node 3 stays up all along (a link that blinks under load would show here).
    wait_for(
        "view without node 2",
        Duration::from_secs(3),
        || a.log(),
        || {
            let top = a.mi("clusterer:list_topology", Value::Null);
            let stats = a.mi("get_statistics", json!([["clusterer:"]]));
            top["result"]["Clusters"][0]["Nodes"][0]["Neighbours"] == json!([3])
                && stats["result"]
                    == json!({"clusterer:clusterer_nodes": 2, "clusterer:clusterer_nodes_up": 1, "clusterer:clusterer_nodes_down": 1})
        },
    );
    assert!(!a.log().contains("node=3 state=0"), "{}", a.log());

    // It comes back: its pings revive the link at once.
    b.restart();
    wait_for(
        "node 2 back",
        Duration::from_secs(5),
        || a.log() + &b.log(),
        || a.link(2) == "Up" && b.link(1) == "Up" && c.link(2) == "Up",
    );
    wait_for(
        "second up event",
        Duration::from_secs(2),
        || a.log(),
        || {
            a.log()
                .matches("NODE-EVENT cluster=1 node=2 state=1")
                .count()
                == 2
        },
    );
}

#[test]
fn sharing_tag_takeover_through_mi_and_the_script_variable() {
    let (a, b) = pair("shtag", ["active", "backup"]);
    let peer = Peer::new();
    assert_eq!(header(&a.ask(&peer, "t", ""), "X-Tag"), ["active"]);
    assert_eq!(header(&b.ask(&peer, "t", ""), "X-Tag"), ["backup"]);
    // Node 2 takes the tag (the real opensips-cli, over the FIFO): node 1 hears it.
    let (ok, out) = common::opensips_cli(
        &b.dir.join("fifo"),
        &["clusterer:shtag_set_active", "vip/1"],
    );
    assert!(ok, "{out}");
    wait_for(
        "node 1 backup",
        Duration::from_secs(3),
        || a.log(),
        || a.tag() == "backup",
    );
    assert_eq!(b.tag(), "active");
    assert_eq!(header(&a.ask(&peer, "t", ""), "X-Tag"), ["backup"]);
    assert_eq!(header(&b.ask(&peer, "t", ""), "X-Tag"), ["active"]);
    wait_for(
        "tag events",
        Duration::from_secs(2),
        || a.log() + &b.log(),
        || {
            a.log()
                .contains("TAG-EVENT vip/1 backup (cluster broadcast from 2)")
                && b.log().contains("TAG-EVENT vip/1 active (MI command)")
        },
    );
    let (ok, out) = common::opensips_cli(&a.dir.join("fifo"), &["clusterer:list_shtags"]);
    assert!(ok && out.contains("\"State\": \"backup\""), "{out}");
    // And back, through the 3.x name over HTTP.
    let r = a.mi("clusterer_shtag_set_active", json!(["vip/1"]));
    assert_eq!(r["result"], "OK", "{r}");
    wait_for(
        "node 2 backup",
        Duration::from_secs(3),
        || b.log(),
        || b.tag() == "backup",
    );
    assert_eq!(a.tag(), "active");
    // The script variable takes it too.
    assert_eq!(header(&b.ask(&peer, "take", ""), "X-Tag"), ["active"]);
    wait_for(
        "node 1 backup again",
        Duration::from_secs(3),
        || a.log(),
        || a.tag() == "backup",
    );
    wait_for(
        "script tag event",
        Duration::from_secs(2),
        || b.log(),
        || b.log().contains("TAG-EVENT vip/1 active (script variable)"),
    );
    // No link blinked meanwhile.
    for n in [&a, &b] {
        assert!(!n.log().contains("state=0"), "{}", n.log());
    }
}

#[test]
fn generic_messages_reach_the_event_routes_and_come_back() {
    let (a, b) = pair("generic", ["active", "backup"]);
    let peer = Peer::new();
    let r = a.ask(&peer, "bcast", "");
    assert_eq!(header(&r, "X-Ret"), ["1"], "{r}");
    let tag = header(&r, "X-Sent-Tag")[0].to_owned();
    assert!(tag.starts_with("1-1-") && tag.len() == 4 + 24, "{tag}");
    wait_for(
        "request on node 2",
        Duration::from_secs(3),
        || b.log(),
        || {
            b.log()
                .contains(&format!("REQ-EVENT from=1 msg=[hello from 1] tag={tag}"))
        },
    );
    wait_for(
        "reply on node 1",
        Duration::from_secs(3),
        || a.log(),
        || {
            a.log()
                .contains(&format!("RPL-EVENT from=2 msg=[ack from 2] tag={tag}"))
        },
    );
    // include_self: the sender's own event route runs too.
    let r = a.ask(&peer, "bself", "");
    assert_eq!(header(&r, "X-Ret"), ["1"], "{r}");
    wait_for(
        "self and other",
        Duration::from_secs(3),
        || a.log() + &b.log(),
        || {
            a.log().contains("REQ-EVENT from=1 msg=[self too]")
                && b.log().contains("REQ-EVENT from=1 msg=[self too]")
        },
    );
    let r = b.ask(&peer, "send", "X-Dst: 1\r\n");
    assert_eq!(header(&r, "X-Ret"), ["1"], "{r}");
    wait_for(
        "direct request",
        Duration::from_secs(3),
        || a.log(),
        || a.log().contains("REQ-EVENT from=2 msg=[direct from 2]"),
    );
    // A node that does not exist is an error; the bin address check knows the neighbour.
    let r = b.ask(&peer, "send", "X-Dst: 9\r\n");
    assert_eq!(header(&r, "X-Ret"), ["-3"], "{r}");
    let r = a.ask(&peer, "check", "");
    assert_eq!(header(&r, "X-Bin"), ["yes"], "{r}");
    assert_eq!(header(&r, "X-Other"), ["no"], "{r}");
    // No link blinked meanwhile.
    for n in [&a, &b] {
        assert!(!n.log().contains("state=0"), "{}", n.log());
    }
}

#[test]
fn mi_commands_run_on_the_other_nodes() {
    let (a, b) = pair("mi", ["active", "backup"]);
    let r = a.mi(
        "clusterer:broadcast_mi",
        json!({"cluster_id": 1, "cmd_name": "core:xlog_level", "cmd_params": ["1"]}),
    );
    assert_eq!(r["result"]["xLog Level"], 1, "{r}");
    wait_for(
        "xlog level on node 2",
        Duration::from_secs(3),
        || b.log(),
        || b.mi("core:xlog_level", Value::Null)["result"]["xLog Level"] == 1,
    );
    let r = b.mi(
        "cluster_send_mi",
        json!({"cluster_id": 1, "destination": 1, "cmd_name": "core:xlog_level", "cmd_params": ["3"]}),
    );
    assert_eq!(r["result"], "OK", "{r}");
    wait_for(
        "xlog level on node 1",
        Duration::from_secs(3),
        || a.log(),
        || a.mi("core:xlog_level", Value::Null)["result"]["xLog Level"] == 3,
    );
    assert_eq!(
        b.mi("core:xlog_level", Value::Null)["result"]["xLog Level"],
        1
    );
    // Disabling node 2 on node 1: its link goes down and messages to it are refused.
    let r = a.mi("clusterer:set_status", json!([1, 2, 0]));
    assert_eq!(r["result"], "OK", "{r}");
    assert_eq!(a.link(2), "Down");
    let r = a.mi("clusterer:send_mi", json!([1, 2, "core:uptime"]));
    assert_eq!(r["error"]["message"], "Destination down", "{r}");
    let r = a.mi(
        "clusterer:set_status",
        json!({"cluster_id": 1, "node_id": 2, "status": 1}),
    );
    assert_eq!(r["result"], "OK", "{r}");
    wait_for(
        "node 2 enabled again",
        Duration::from_secs(4),
        || a.log(),
        || a.link(2) == "Up",
    );
    let r = a.mi("clusterer:list_cap", Value::Null);
    assert_eq!(
        r["result"],
        json!({"Clusters": [{"cluster_id": 1, "Capabilities": []}]})
    );
}

#[test]
fn bad_mi_calls_get_json_rpc_errors() {
    let p = ports(1);
    let a = start(
        "mierr",
        1,
        p[0],
        &topology(1, &[(1, p[0].1), (2, common::free_port())], "backup"),
    );
    let err = |method: &str, params: Value| -> (i64, String) {
        let r = a.mi(method, params);
        (
            r["error"]["code"].as_i64().unwrap_or(0),
            r["error"]["message"].as_str().unwrap_or("").to_owned(),
        )
    };
    assert_eq!(
        err("clusterer:shtag_set_active", json!(["vip"])),
        (400, "Bad tag format <name/cluster_id>".into())
    );
    assert_eq!(
        err("clusterer:shtag_set_active", json!(["vip/x"])),
        (400, "Bad cluster ID in tag".into())
    );
    assert_eq!(
        err("clusterer:shtag_set_active", json!(["vip/7"])),
        (404, "Cluster ID not found".into())
    );
    assert_eq!(
        err("clusterer:set_status", json!([1, 5])),
        (400, "Bad value for 'status'".into())
    );
    assert_eq!(
        err("clusterer:set_status", json!([0, 1])),
        (400, "Bad value for 'cluster_id'".into())
    );
    assert_eq!(
        err("clusterer:set_status", json!([7, 1])),
        (404, "Cluster id not found".into())
    );
    assert_eq!(
        err("clusterer:set_status", json!([1, 9, 1])),
        (404, "Node id not found".into())
    );
    assert_eq!(
        err("clusterer:send_mi", json!([1, 1, "core:uptime"])),
        (400, "Local node specified as destination".into())
    );
    assert_eq!(
        err("clusterer:send_mi", json!([1, 2, "core:uptime"])),
        (400, "Destination down".into())
    );
    assert_eq!(
        err("clusterer:reload", Value::Null),
        (400, "Non-DB mode".into())
    );
    assert_eq!(err("clusterer:list", json!([1])).0, -32602);
    assert_eq!(err("clusterer:broadcast_mi", json!([1])).0, -32602);
    assert_eq!(
        err("clusterer:broadcast_mi", json!([1, "no:such"])),
        (400, "Command to be run not found".into())
    );
    assert_eq!(
        err("clusterer:set_cap_status", json!([1, "dialog-dlg-repl", 1])),
        (404, "Capability not found".into())
    );
    // remove_node (db_mode 0): an unknown node is an error, a known one goes from the list.
    assert_eq!(
        err("clusterer:remove_node", json!([1, 9])),
        (400, "Unknown node id".into())
    );
    assert_eq!(a.mi("clusterer_remove_node", json!([1, 2]))["result"], "OK");
    let list = a.mi("clusterer:list", Value::Null);
    assert_eq!(list["result"]["Clusters"][0]["Nodes"], json!([]), "{list}");
}

fn packet(
    cap: &str,
    kind: i32,
    ints: &[i32],
    strs_then_ints: Option<(&[&str], &[i32])>,
) -> Vec<u8> {
    // Built by hand from OpenSIPS' bin_interface layout: "P4CK", u32 total length, i16
    // version 1, u16-prefixed capability, i32 type, then the body (all little-endian).
    let mut body = Vec::new();
    for v in ints {
        body.extend_from_slice(&v.to_le_bytes());
    }
    if let Some((strs, tail)) = strs_then_ints {
        for s in strs {
            body.extend_from_slice(&(s.len() as u16).to_le_bytes());
            body.extend_from_slice(s.as_bytes());
        }
        for v in tail {
            body.extend_from_slice(&v.to_le_bytes());
        }
    }
    let mut p = b"P4CK".to_vec();
    let total = 4 + 4 + 2 + 2 + cap.len() + 4 + body.len();
    p.extend_from_slice(&(total as u32).to_le_bytes());
    p.extend_from_slice(&1i16.to_le_bytes());
    p.extend_from_slice(&(cap.len() as u16).to_le_bytes());
    p.extend_from_slice(cap.as_bytes());
    p.extend_from_slice(&kind.to_le_bytes());
    p.extend_from_slice(&body);
    p
}

/// The next whole BIN packet on `c`.
fn read_packet(c: &mut TcpStream) -> Vec<u8> {
    let mut head = [0u8; 8];
    c.read_exact(&mut head).unwrap();
    assert_eq!(&head[..4], b"P4CK");
    let len = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
    let mut rest = vec![0u8; len - 8];
    c.read_exact(&mut rest).unwrap();
    [&head[..], &rest].concat()
}

fn ints_after(p: &[u8], cap: &str) -> Vec<i32> {
    let start = 12 + cap.len();
    p[start..]
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The capability name of a BIN packet.
fn cap_of(p: &[u8]) -> &str {
    let n = u16::from_le_bytes([p[10], p[11]]) as usize;
    std::str::from_utf8(&p[12..12 + n]).unwrap()
}

#[test]
fn hand_built_opensips_packets_on_the_wire() {
    const INT: &str = "clusterer-internal";
    const EXTRA: &str = "clusterer-extra";
    let p = ports(1);
    // Node 2 is this test: a BIN listener rsips connects to.
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_port = fake.local_addr().unwrap().port();
    let a = start(
        "wire",
        1,
        p[0],
        &topology(1, &[(1, p[0].1), (2, fake_port)], "active"),
    );
    let mut from_rsips = common::accept_within(&fake);
    from_rsips
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let ping = read_packet(&mut from_rsips);
    assert_eq!(&ping[8..10], &1i16.to_le_bytes(), "BIN version 1");
    assert_eq!(cap_of(&ping), INT);
    // type PING (0), cluster 1, source 1, node list wanted.
    assert_eq!(ints_after(&ping, INT), vec![0, 1, 1, 1]);

    // Pongs go on a connection of our own to rsips' BIN socket, as OpenSIPS sends them; a
    // thread answers every ping at once and hands the other packets over.
    let mut to_rsips = TcpStream::connect(("127.0.0.1", p[0].1)).unwrap();
    to_rsips
        .write_all(&packet(INT, 1, &[1, 2, 0], None))
        .unwrap();
    let mut ponger = to_rsips.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        loop {
            let mut head = [0u8; 8];
            if from_rsips.read_exact(&mut head).is_err() {
                return;
            }
            let len = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
            let mut rest = vec![0u8; len.saturating_sub(8)];
            if from_rsips.read_exact(&mut rest).is_err() {
                return;
            }
            let pk = [&head[..], &rest].concat();
            if cap_of(&pk) == INT && ints_after(&pk, INT).first() == Some(&0) {
                let _ = ponger.write_all(&packet(INT, 1, &[1, 2, 0], None));
            } else if tx.send(pk).is_err() {
                return;
            }
        }
    });
    wait_for(
        "link up",
        Duration::from_secs(4),
        || a.log(),
        || a.link(2) == "Up",
    );
    let next_extra = || loop {
        let pk = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a clusterer-extra packet");
        if cap_of(&pk) == EXTRA {
            return pk;
        }
    };
    // The active sharing tag is announced to the node that came up: SHTAG_ACTIVE (13), the
    // tag name, then the trailer: cluster 1, source 1, destination 2.
    let announce = next_extra();
    let body = &announce[12 + EXTRA.len()..];
    let mut want = 13i32.to_le_bytes().to_vec();
    want.extend_from_slice(&3u16.to_le_bytes());
    want.extend_from_slice(b"vip");
    for v in [1i32, 1, 2] {
        want.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(body, &want[..]);

    // A generic request (type 7: req_like, tag, msg, trailer) raises the event route, which
    // answers with a reply-like generic message to node 2.
    to_rsips
        .write_all(&packet(
            EXTRA,
            7,
            &[1],
            Some((&["1-2-wire", "from a test"], &[1, 2, 1])),
        ))
        .unwrap();
    wait_for(
        "request event",
        Duration::from_secs(3),
        || a.log(),
        || {
            a.log()
                .contains("REQ-EVENT from=2 msg=[from a test] tag=1-2-wire")
        },
    );
    let reply = next_extra();
    let mut want = 7i32.to_le_bytes().to_vec();
    want.extend_from_slice(&0i32.to_le_bytes());
    want.extend_from_slice(&8u16.to_le_bytes());
    want.extend_from_slice(b"1-2-wire");
    want.extend_from_slice(&10u16.to_le_bytes());
    want.extend_from_slice(b"ack from 1");
    for v in [1i32, 1, 2] {
        want.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(&reply[12 + EXTRA.len()..], &want[..]);

    // A SHTAG_ACTIVE from node 2 moves the tag to backup.
    to_rsips
        .write_all(&packet(EXTRA, 13, &[], Some((&["vip"], &[1, 2, 1]))))
        .unwrap();
    wait_for(
        "tag backup",
        Duration::from_secs(3),
        || a.log(),
        || a.tag() == "backup",
    );
    wait_for(
        "tag event",
        Duration::from_secs(2),
        || a.log(),
        || {
            a.log()
                .contains("TAG-EVENT vip/1 backup (cluster broadcast from 2)")
        },
    );

    // An unknown node pinging is told so on the connection its ping came on (db_mode 0).
    let mut stranger = TcpStream::connect(("127.0.0.1", p[0].1)).unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stranger
        .write_all(&packet(INT, 0, &[1, 7, 1], None))
        .unwrap();
    let unknown = read_packet(&mut stranger);
    assert_eq!(
        ints_after(&unknown, INT),
        vec![4, 1, 1],
        "UNKNOWN_ID from node 1"
    );
    // Garbage closes that connection only; node 2's link stays up.
    stranger.write_all(b"INVITE sip:x SIP/2.0\r\n\r\n").unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(stranger.read(&mut buf), Ok(0) | Err(_)));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(a.link(2), "Up");
}

#[test]
fn db_mode_1_reads_the_clusterer_table_and_reloads_it() {
    let p = ports(2);
    let db = std::env::temp_dir().join(format!("rsips-cl-db-{}-{}", std::process::id(), p[0].0));
    let _ = std::fs::remove_dir_all(&db);
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(
        db.join("version"),
        "table_name(string) table_version(int)\nclusterer:4\n",
    )
    .unwrap();
    let rows = |extra: &str| {
        format!(
            "id(int,auto) cluster_id(int) node_id(int) url(string) state(int) no_ping_retries(int) priority(int) sip_addr(string,null) flags(string,null) description(string,null)\n\
             1:1:1:bin\\:127.0.0.1\\:{}:1:3:50:::node one\n\
             2:1:2:bin\\:127.0.0.1\\:{}:1:3:50:::node two\n{extra}",
            p[0].1, p[1].1
        )
    };
    std::fs::write(db.join("clusterer"), rows("")).unwrap();
    let params = format!(
        "loadmodule \"db_text.so\"\nmodparam(\"clusterer\", \"db_url\", \"text://{}\")\n",
        db.display()
    );
    let a = start("db", 1, p[0], &params);
    let b = start("db", 2, p[1], &params);
    wait_for(
        "db nodes up",
        Duration::from_secs(5),
        || a.log() + &b.log(),
        || a.link(2) == "Up" && b.link(1) == "Up",
    );
    let list = a.mi("clusterer:list", Value::Null);
    assert_eq!(
        list["result"]["Clusters"][0]["Nodes"][0]["db_id"], 2,
        "{list}"
    );
    assert_eq!(
        list["result"]["Clusters"][0]["Nodes"][0]["description"],
        "node two"
    );
    // A third node in the table appears after a reload; node 2 keeps its link.
    std::fs::write(
        db.join("clusterer"),
        rows("3:1:3:bin\\:127.0.0.1\\:9:1:3:50:::node three\n"),
    )
    .unwrap();
    let r = a.mi("db_text:reload", Value::Null);
    assert_eq!(r["result"], "OK", "{r}");
    let r = a.mi("clusterer:reload", Value::Null);
    assert_eq!(r["result"], "OK", "{r}");
    assert_eq!(a.link(2), "Up");
    let list = a.mi("clusterer:list", Value::Null);
    let nodes = list["result"]["Clusters"][0]["Nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{list}");
    assert!(
        nodes
            .iter()
            .any(|n| n["node_id"] == 3 && n["description"] == "node three"),
        "{list}"
    );
}

#[test]
fn bad_parameters_refuse_the_start() {
    let base = |params: &str| {
        format!(
            "socket=udp:127.0.0.1:PORT\nsocket=bin:127.0.0.1:{}\nloadmodule \"proto_udp.so\"\nloadmodule \"proto_bin.so\"\n\
             loadmodule \"clusterer.so\"\n{params}\nroute {{ exit; }}\n",
            common::free_port()
        )
    };
    let mine = "modparam(\"clusterer\", \"db_mode\", 0)\nmodparam(\"clusterer\", \"my_node_info\", \"cluster_id=1,url=bin:127.0.0.1:5566\")";
    let err = common::refused_start("cl-noid", &base(mine));
    assert!(err.contains("my_node_id"), "{err}");
    let err = common::refused_start(
        "cl-tag",
        &base(&format!(
            "modparam(\"clusterer\", \"my_node_id\", 1)\n{mine}\nmodparam(\"clusterer\", \"sharing_tag\", \"vip=active\")"
        )),
    );
    assert!(
        err.contains("rsips.cfg:9:") && err.contains("sharing tag"),
        "{err}"
    );
    let err = common::refused_start(
        "cl-neigh",
        &base(&format!(
            "modparam(\"clusterer\", \"my_node_id\", 1)\n{mine}\nmodparam(\"clusterer\", \"neighbor_node_info\", \"cluster_id=1,url=bin:127.0.0.1:5567\")"
        )),
    );
    assert!(
        err.contains("rsips.cfg:9:") && err.contains("node id"),
        "{err}"
    );
    let err = common::refused_start(
        "cl-pv",
        &base(&format!(
            "modparam(\"clusterer\", \"my_node_id\", 1)\n{mine}\nroute[x] {{ $var(t) = $cluster.sh_tag(vip); }}"
        )),
    );
    assert!(
        err.contains("rsips.cfg:9:") && err.contains("sh_tag"),
        "{err}"
    );
    let err = common::refused_start(
        "cl-nodb",
        &base("modparam(\"clusterer\", \"my_node_id\", 1)"),
    );
    assert!(err.contains("db_url"), "{err}");
    let err = common::refused_start(
        "cl-nobin",
        "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"proto_bin.so\"\nloadmodule \"clusterer.so\"\n\
         modparam(\"clusterer\", \"my_node_id\", 1)\nmodparam(\"clusterer\", \"db_mode\", 0)\n\
         modparam(\"clusterer\", \"my_node_info\", \"cluster_id=1,url=bin:127.0.0.1:5566\")\nroute { exit; }\n",
    );
    assert!(err.contains("socket=bin"), "{err}");
    let err = common::refused_start(
        "cl-noproto",
        "socket=udp:127.0.0.1:PORT\nsocket=bin:127.0.0.1:5566\nloadmodule \"proto_udp.so\"\nroute { exit; }\n",
    );
    assert!(err.contains("proto_bin"), "{err}");
}

#[test]
fn the_events_exist_without_an_event_route() {
    let [sip, bin, http] = common::free_ports::<3>();
    let dir = std::env::temp_dir().join(format!("rsips-cl-evi-{}-{sip}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        format!(
            "socket=udp:127.0.0.1:{sip}\nsocket=bin:127.0.0.1:{bin}\n\
             loadmodule \"proto_udp.so\"\nloadmodule \"proto_bin.so\"\nloadmodule \"clusterer.so\"\n\
             modparam(\"clusterer\", \"my_node_id\", 1)\nmodparam(\"clusterer\", \"db_mode\", 0)\n\
             modparam(\"clusterer\", \"my_node_info\", \"cluster_id=1,url=bin:127.0.0.1:{bin}\")\n\
             loadmodule \"httpd.so\"\nmodparam(\"httpd\", \"ip\", \"127.0.0.1\")\n\
             modparam(\"httpd\", \"port\", {http})\nloadmodule \"mi_http.so\"\nroute {{ exit; }}\n"
        ),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("MI listening"));
    let events = common::mi_http(http, r#"{"jsonrpc":"2.0","method":"evi:list","id":1}"#);
    for e in [
        "E_CLUSTERER_REQ_RECEIVED",
        "E_CLUSTERER_RPL_RECEIVED",
        "E_CLUSTERER_NODE_STATE_CHANGED",
        "E_CLUSTERER_SHARING_TAG_CHANGED",
    ] {
        assert!(events.contains(e), "{events}");
    }
    // A node alone in its cluster: nothing to list but the cluster, no tag yet.
    let list = common::mi_http(
        http,
        r#"{"jsonrpc":"2.0","method":"clusterer:list","id":1}"#,
    );
    assert!(
        list.contains(r#""Clusters":[{"cluster_id":1,"Nodes":[]}]"#),
        "{list}"
    );
    let tags = common::mi_http(
        http,
        r#"{"jsonrpc":"2.0","method":"clusterer:list_shtags","id":1}"#,
    );
    assert!(tags.contains(r#""result":[]"#), "{tags}");
}
