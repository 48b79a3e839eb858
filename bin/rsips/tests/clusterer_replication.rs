//! Data replication over the clusterer: ratelimit's `ratelimit-pipe-repl` capability in
//! `clusterer:list_cap` (and `set_cap_status`), `/b` pipes counted cluster-wide by rsips
//! nodes on 127.0.0.1 (a limit hit by requests spread over two nodes), a node started
//! later getting the counts, a stopped node's counts expiring, and a malformed replication
//! packet dropped.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::cluster::{Node, ports, wait_for};
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
loadmodule "ratelimit.so"
modparam("ratelimit", "pipe_replication_cluster", RLCLUSTER)
modparam("ratelimit", "repl_timer_interval", 100)
modparam("ratelimit", "repl_timer_expire", 1)
modparam("ratelimit", "window_size", 30)
modparam("ratelimit", "slot_period", 500)
RLPARAMS
loadmodule "httpd.so"
modparam("httpd", "ip", "127.0.0.1")
modparam("httpd", "port", HTTP)
loadmodule "mi_http.so"
route {
    if ($rU == "tgw") {
        rl_check("tgw/b", 100);
        append_to_reply("X-Count: $rl_count(tgw)\r\n");
        sl_send_reply(200, "OK");
        exit;
    }
    if ($rU == "count") {
        append_to_reply("X-Count: $rl_count(gw)\r\nX-Local: $rl_count(local)\r\nX-TCount: $rl_count(tgw)\r\n");
        sl_send_reply(200, "OK");
        exit;
    }
    if ($rU == "local") {
        if (!rl_check("local", 100, "SBT")) {
            sl_send_reply(503, "Limiting");
            exit;
        }
        sl_send_reply(200, "OK");
        exit;
    }
    if (!rl_check("gw/b", 5, "SBT")) {
        append_to_reply("X-Count: $rl_count(gw)\r\n");
        sl_send_reply(503, "Limiting");
        exit;
    }
    append_to_reply("X-Count: $rl_count(gw)\r\n");
    sl_send_reply(200, "OK");
}
"#;

/// The db_mode 0 parameters of node `id` in a cluster of `all` (id, bin port) nodes.
fn topology(id: u32, all: &[(u32, u16)]) -> String {
    String::from("modparam(\"clusterer\", \"db_mode\", 0)\n")
        + &common::cluster::topology(id, all, false)
}

fn start(name: &str, id: u32, ports: (u16, u16, u16), params: &str) -> Node {
    start_in(name, id, ports, params, 1, "")
}

fn start_in(
    name: &str,
    id: u32,
    ports: (u16, u16, u16),
    params: &str,
    rl_cluster: u32,
    rl_params: &str,
) -> Node {
    let cfg = NODE
        .replace("RLPARAMS", rl_params)
        .replace("RLCLUSTER", &rl_cluster.to_string())
        .replace("PARAMS", params);
    Node::start("clr", name, id, ports, &cfg)
}

impl Node {
    /// An OPTIONS for `user`: (status code, X-Count).
    fn ask(&self, peer: &Peer, user: &str, n: u32) -> (String, String) {
        peer.send(
            self.sip,
            &format!(
                "OPTIONS sip:{user}@127.0.0.1:{sip} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK{user}{id}x{n}\r\n\
                 From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\n\
                 Call-ID: {user}-{id}-{n}@test\r\nCSeq: 1 OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n",
                sip = self.sip,
                p = peer.port,
                id = self.id,
            ),
        );
        let r = peer.recv("reply");
        let code = r.split(' ').nth(1).unwrap_or_default().to_owned();
        let count = header(&r, "X-Count")
            .first()
            .copied()
            .unwrap_or("")
            .to_owned();
        (code, count)
    }

    /// `$rl_count(tgw)` on this node.
    fn tcount(&self, peer: &Peer) -> String {
        self.count_headers(peer).2
    }

    /// `$rl_count(gw)` and `$rl_count(local)` on this node.
    fn counts(&self, peer: &Peer) -> (String, String) {
        let (a, b, _) = self.count_headers(peer);
        (a, b)
    }

    fn count_headers(&self, peer: &Peer) -> (String, String, String) {
        peer.send(
            self.sip,
            &format!(
                "OPTIONS sip:count@127.0.0.1:{sip} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bKcount{id}{t}\r\n\
                 From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:count@127.0.0.1>\r\n\
                 Call-ID: count-{id}-{t}@test\r\nCSeq: 1 OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n",
                sip = self.sip,
                p = peer.port,
                id = self.id,
                t = Instant::now().elapsed().as_nanos(),
            ),
        );
        let r = peer.recv("reply");
        let get = |h: &str| header(&r, h).first().copied().unwrap_or("").to_owned();
        (get("X-Count"), get("X-Local"), get("X-TCount"))
    }
}

fn caps(n: &Node) -> Value {
    n.mi("clusterer:list_cap", Value::Null)["result"].clone()
}

#[test]
fn a_limit_is_hit_by_requests_spread_over_two_nodes() {
    let p = ports(2);
    let all = [(1, p[0].1), (2, p[1].1)];
    let a = start("spread", 1, p[0], &topology(1, &all));
    let b = start("spread", 2, p[1], &topology(2, &all));
    let logs = || a.log() + &b.log();
    wait_for("nodes up", Duration::from_secs(5), logs, || {
        a.link(2) == "Up" && b.link(1) == "Up"
    });
    for n in [&a, &b] {
        assert_eq!(
            caps(n),
            json!({"Clusters": [{"cluster_id": 1, "Capabilities": [
                {"name": "ratelimit-pipe-repl", "state": "Ok", "enabled": "yes"}
            ]}]}),
            "{}",
            logs()
        );
    }
    let peer = Peer::new();
    // Three on node 1 (limit 5 over the window), and a pipe without /b.
    for i in 0..3 {
        assert_eq!(a.ask(&peer, "gw", i).0, "200");
    }
    assert_eq!(a.ask(&peer, "local", 0).0, "200");
    // Node 2 hears node 1's count.
    wait_for("count replicated", Duration::from_secs(3), logs, || {
        b.counts(&peer).0 == "3"
    });
    let dump = b.mi("ratelimit:dump_pipe", json!({"pipe": "gw"}));
    assert_eq!(
        dump["result"]["Replication Nodes"],
        json!([{"MachineID": 1, "NodeCounter": 3}]),
        "{dump}"
    );
    assert_eq!(dump["result"]["Algorithm"], "SBT");
    // The pipe without /b stays on node 1.
    assert_eq!(b.counts(&peer).1, "<null>");
    // Two more pass on node 2 (4, 5 with node 1's three), the next one is over.
    assert_eq!(b.ask(&peer, "gw", 10), ("200".into(), "4".into()));
    assert_eq!(b.ask(&peer, "gw", 11), ("200".into(), "5".into()));
    assert_eq!(b.ask(&peer, "gw", 12), ("503".into(), "6".into()));
    // Node 1 now counts node 2's three too: over the limit there as well.
    wait_for("count back", Duration::from_secs(3), logs, || {
        a.counts(&peer).0 == "6"
    });
    assert_eq!(a.ask(&peer, "gw", 20).0, "503");
}

#[test]
fn a_late_node_gets_the_counts_and_a_stopped_node_stops_counting() {
    let p = ports(3);
    let all = [(1, p[0].1), (2, p[1].1), (3, p[2].1)];
    let mut a = start("late", 1, p[0], &topology(1, &all));
    let b = start("late", 2, p[1], &topology(2, &all));
    wait_for(
        "nodes up",
        Duration::from_secs(5),
        || a.log() + &b.log(),
        || a.link(2) == "Up",
    );
    let peer = Peer::new();
    for i in 0..4 {
        assert_eq!(a.ask(&peer, "gw", i).0, "200");
    }
    // Node 3 starts now: it learns node 1's count, and its capability is in sync.
    let c = start("late", 3, p[2], &topology(3, &all));
    let logs = || b.log() + &c.log();
    wait_for(
        "late node counts",
        Duration::from_secs(5),
        || a.log() + &logs(),
        || c.counts(&peer).0 == "4",
    );
    assert_eq!(
        caps(&c)["Clusters"][0]["Capabilities"][0]["state"],
        "Ok",
        "{}",
        c.log()
    );
    assert_eq!(c.ask(&peer, "gw", 0), ("200".into(), "5".into()));
    assert_eq!(c.ask(&peer, "gw", 1), ("503".into(), "6".into()));
    // Node 1 stops: its count is no longer heard and expires (repl_timer_expire 1 s),
    // though its requests are still within the window.
    a.stop();
    let stopped = Instant::now();
    wait_for("count expired", Duration::from_secs(5), logs, || {
        c.counts(&peer).0 == "2"
    });
    assert!(
        stopped.elapsed() >= Duration::from_millis(800),
        "expired before repl_timer_expire"
    );
    assert_eq!(c.ask(&peer, "gw", 2), ("200".into(), "3".into()));
}

#[test]
fn set_cap_status_stops_replication_and_bad_packets_are_dropped() {
    let p = ports(2);
    let all = [(1, p[0].1), (2, p[1].1)];
    let a = start("capst", 1, p[0], &topology(1, &all));
    let b = start("capst", 2, p[1], &topology(2, &all));
    let logs = || a.log() + &b.log();
    wait_for("nodes up", Duration::from_secs(5), logs, || {
        a.link(2) == "Up" && b.link(1) == "Up"
    });
    let r = a.mi(
        "clusterer:set_cap_status",
        json!({"cluster_id": 1, "capability": "ratelimit-pipe-repl", "status": 0}),
    );
    assert_eq!(r["result"], "OK", "{r}");
    assert_eq!(
        caps(&a)["Clusters"][0]["Capabilities"][0],
        json!({"name": "ratelimit-pipe-repl", "state": "not synced", "enabled": "no"})
    );
    let peer = Peer::new();
    assert_eq!(a.ask(&peer, "gw", 0).0, "200");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        b.counts(&peer).0,
        "<null>",
        "node 1 sent with the capability disabled"
    );
    let r = a.mi(
        "clusterer_set_cap_status",
        json!({"cluster_id": 1, "capability": "ratelimit-pipe-repl", "status": 1}),
    );
    assert_eq!(r["result"], "OK");
    assert_eq!(caps(&a)["Clusters"][0]["Capabilities"][0]["enabled"], "yes");
    assert_eq!(a.ask(&peer, "gw", 1).0, "200");
    wait_for("replicated again", Duration::from_secs(3), logs, || {
        b.counts(&peer).0 == "2"
    });
    for (params, msg) in [
        (
            json!({"cluster_id": 1, "capability": "nosuch", "status": 1}),
            "Capability not found",
        ),
        (
            json!({"cluster_id": 9, "capability": "ratelimit-pipe-repl", "status": 1}),
            "Cluster id not found",
        ),
    ] {
        let r = a.mi("clusterer:set_cap_status", params);
        assert_eq!(r["error"]["message"], msg, "{r}");
    }

    // A hand-made packet "from node 1": one whole pipe, then a pipe cut short.
    let mut body = Vec::new();
    let pipe = |b: &mut Vec<u8>, name: &str, count: i32| {
        b.extend_from_slice(&(name.len() as u16).to_le_bytes());
        b.extend_from_slice(name.as_bytes());
        for v in [1i32, 5, 9, count] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    };
    pipe(&mut body, "evil", 7);
    body.extend_from_slice(&5u16.to_le_bytes());
    body.extend_from_slice(b"cut");
    let cap = b"ratelimit-pipe-repl";
    let mut pk = b"P4CK".to_vec();
    pk.extend_from_slice(&[0; 4]);
    pk.extend_from_slice(&1i16.to_le_bytes());
    pk.extend_from_slice(&(cap.len() as u16).to_le_bytes());
    pk.extend_from_slice(cap);
    pk.extend_from_slice(&0i32.to_le_bytes());
    pk.extend_from_slice(&body);
    for v in [1i32, 1, 2] {
        pk.extend_from_slice(&v.to_le_bytes());
    }
    let len = (pk.len() as u32).to_le_bytes();
    pk[4..8].copy_from_slice(&len);
    let mut s = TcpStream::connect(("127.0.0.1", p[1].1)).unwrap();
    s.write_all(&pk).unwrap();
    wait_for(
        "malformed packet logged",
        Duration::from_secs(3),
        logs,
        || b.log().contains("malformed pipe replication packet"),
    );
    let dump = b.mi("ratelimit:dump_pipe", json!({"pipe": "evil"}));
    assert_eq!(
        dump["result"]["Replication Nodes"],
        json!([{"MachineID": 1, "NodeCounter": 7}]),
        "{dump}"
    );
    // A packet whose trailer is cut is not a module packet at all: dropped, node fine.
    let mut short = pk[..pk.len() - 10].to_vec();
    let len = (short.len() as u32).to_le_bytes();
    short[4..8].copy_from_slice(&len);
    s.write_all(&short).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(b.link(1), "Up", "{}", b.log());
    assert_eq!(
        caps(&b)["Clusters"][0]["Capabilities"][0]["state"],
        "Ok",
        "{}",
        b.log()
    );
}

#[test]
fn cluster_bridges_carry_each_clusters_total_to_the_other() {
    // Cluster 1: nodes 1 and 2 (node 1 holds the bridge tag); cluster 2: node 3.
    let p = ports(3);
    let db = std::env::temp_dir().join(format!("rsips-clr-db-{}-{}", std::process::id(), p[0].0));
    let _ = std::fs::remove_dir_all(&db);
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(
        db.join("version"),
        "table_name(string) table_version(int)\nclusterer:4\nclusterer_bridge:1\n",
    )
    .unwrap();
    std::fs::write(
        db.join("clusterer"),
        format!(
            "id(int,auto) cluster_id(int) node_id(int) url(string) state(int) no_ping_retries(int) priority(int) sip_addr(string,null) flags(string,null) description(string,null)\n\
             1:1:1:bin\\:127.0.0.1\\:{}:1:3:50:::\n\
             2:1:2:bin\\:127.0.0.1\\:{}:1:3:50:::\n\
             3:2:3:bin\\:127.0.0.1\\:{}:1:3:50:::\n",
            p[0].1, p[1].1, p[2].1
        ),
    )
    .unwrap();
    std::fs::write(
        db.join("clusterer_bridge"),
        format!(
            "id(int,auto) cluster_a(int) cluster_b(int) send_shtag(string) dst_node_csv(blob)\n\
             1:1:2:wan:bin\\:127.0.0.1\\:{}\n\
             2:2:1:wan:bin\\:127.0.0.1\\:{},bin\\:127.0.0.1\\:{}\n",
            p[2].1,
            common::free_port(),
            p[1].1
        ),
    )
    .unwrap();
    let params = |tag: &str| {
        format!(
            "loadmodule \"db_text.so\"\nmodparam(\"clusterer\", \"db_url\", \"text://{}\")\nmodparam(\"clusterer\", \"sharing_tag\", \"{tag}\")\n",
            db.display()
        )
    };
    let rl = "modparam(\"ratelimit\", \"bridge_replication\", 1)\nmodparam(\"ratelimit\", \"bridge_repl_timer_interval\", 100)\n";
    let a = start_in("bridge", 1, p[0], &params("wan/1=active"), 1, rl);
    let b = start_in("bridge", 2, p[1], &params("wan/1=backup"), 1, rl);
    let c = start_in("bridge", 3, p[2], &params("wan/2=active"), 2, rl);
    let logs = || a.log() + &b.log() + &c.log();
    wait_for("cluster 1 up", Duration::from_secs(5), logs, || {
        a.link(2) == "Up"
    });
    assert_eq!(
        caps(&c)["Clusters"],
        json!([{"cluster_id": 2, "Capabilities": [
            {"name": "ratelimit-pipe-repl", "state": "Ok", "enabled": "yes"}
        ]}])
    );
    let peer = Peer::new();
    for i in 0..3 {
        assert_eq!(a.ask(&peer, "tgw", i).0, "200");
    }
    // Cluster 1's count reaches node 3 over the bridge (node 1 holds the tag).
    wait_for("bridged count", Duration::from_secs(3), logs, || {
        c.tcount(&peer) == "3"
    });
    let dump = c.mi("ratelimit:dump_pipe", json!({"pipe": "tgw"}));
    assert_eq!(
        dump["result"]["Replication Nodes"],
        json!([{"MachineID": 1, "NodeCounter": 3}]),
        "{dump}"
    );
    assert_eq!(c.ask(&peer, "tgw", 0).1, "4");
    assert_eq!(c.ask(&peer, "tgw", 1).1, "5");
    // Node 3's count (the bridge's first destination is down: the second one takes it)
    // reaches node 2, which passes it on to node 1 inside cluster 1.
    wait_for("bridged back", Duration::from_secs(3), logs, || {
        b.tcount(&peer) == "2"
    });
    wait_for("passed on", Duration::from_secs(3), logs, || {
        a.tcount(&peer) == "5"
    });
    // Node 2 holds the tag as backup: it sends nothing over the bridge (its own count, 0,
    // would replace cluster 1's 3 on node 3).
    for _ in 0..10 {
        let dump = c.mi("ratelimit:dump_pipe", json!({"pipe": "tgw"}));
        assert_eq!(
            dump["result"]["Replication Nodes"],
            json!([{"MachineID": 1, "NodeCounter": 3}]),
            "{dump}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn replication_to_a_cluster_the_node_is_not_in_refuses_to_start() {
    let bin = common::free_port();
    let base = format!(
        "socket=udp:127.0.0.1:PORT\nsocket=bin:127.0.0.1:{bin}\nloadmodule \"proto_udp.so\"\n\
         loadmodule \"proto_bin.so\"\nloadmodule \"clusterer.so\"\n\
         modparam(\"clusterer\", \"my_node_id\", 1)\nmodparam(\"clusterer\", \"db_mode\", 0)\n\
         modparam(\"clusterer\", \"my_node_info\", \"cluster_id=1,url=bin:127.0.0.1:{bin}\")\n\
         loadmodule \"ratelimit.so\"\n"
    );
    let err = common::refused_start(
        "clr-nocluster",
        &format!(
            "{base}modparam(\"ratelimit\", \"pipe_replication_cluster\", 5)\nroute {{ exit; }}\n"
        ),
    );
    assert!(
        err.contains("ratelimit-pipe-repl") && err.contains("cluster id 5 is not defined"),
        "{err}"
    );
    let err = common::refused_start(
        "clr-noclusterer",
        "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"ratelimit.so\"\n\
         modparam(\"ratelimit\", \"pipe_replication_cluster\", 1)\nroute { exit; }\n",
    );
    assert!(err.contains("needs the clusterer module"), "{err}");
}
