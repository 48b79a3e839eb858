//! usrloc over the clusterer (`location_cluster`, `full-sharing-cluster`), between rsips
//! nodes on 127.0.0.1: a phone registered at node 1 is called through node 2, an update and
//! a de-registration reach node 2, contacts expire on each node, a node started later gets
//! the table by sync, and hand-made packets in OpenSIPS' layout are applied (a malformed one
//! dropped, the node fine); the cluster settings are refused where OpenSIPS refuses them.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Peer;
use common::cluster::{Node, ports, wait_for};
use serde_json::{Value, json};

const NODE: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:SIP
socket=bin:127.0.0.1:BIN
loadmodule "proto_udp.so"
loadmodule "proto_bin.so"
loadmodule "sl.so"
loadmodule "clusterer.so"
modparam("clusterer", "my_node_id", ID)
modparam("clusterer", "ping_interval", 1)
modparam("clusterer", "ping_timeout", 500)
modparam("clusterer", "node_timeout", 2)
modparam("clusterer", "seed_fallback_interval", 1)
TOPOLOGY
loadmodule "usrloc.so"
modparam("usrloc", "working_mode_preset", "full-sharing-cluster")
modparam("usrloc", "location_cluster", 1)
modparam("usrloc", "timer_interval", 1)
loadmodule "registrar.so"
modparam("registrar", "min_expires", 1)
loadmodule "httpd.so"
modparam("httpd", "ip", "127.0.0.1")
modparam("httpd", "port", HTTP)
loadmodule "mi_http.so"
route {
    if ($rm == "REGISTER") {
        save("location");
        exit;
    }
    if (!lookup("location")) {
        sl_send_reply(404, "Not Found");
        exit;
    }
    forward();
}
"#;

/// Node `id` of cluster 1, whose nodes are `all` (id, bin port). Node 1 is the seed: with
/// nobody to sync from it has the (empty) table in sync after `seed_fallback_interval`.
fn start(name: &str, id: u32, ports: (u16, u16, u16), all: &[(u32, u16)]) -> Node {
    let topo = String::from("modparam(\"clusterer\", \"db_mode\", 0)\n")
        + &common::cluster::topology(id, all, true);
    Node::start("ulr", name, id, ports, &NODE.replace("TOPOLOGY", &topo))
}

impl Node {
    /// The contacts of `aor` in this node's `ul_dump` (empty when the AoR is not there).
    fn contacts(&self, aor: &str) -> Vec<Value> {
        let d = self.mi("ul_dump", Value::Null);
        d["result"]["Domains"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["name"] == "location")
            .flat_map(|t| t["AORs"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["AOR"] == aor)
            .flat_map(|a| a["Contacts"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// A REGISTER of `user`'s phone at this node; the reply's status code.
    fn register(&self, phone: &Peer, user: &str, cseq: u32, expires: u32, ua: &str) -> String {
        phone.send(
            self.sip,
            &format!(
                "REGISTER sip:127.0.0.1:{sip} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bKreg{user}{cseq}\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:{user}@127.0.0.1>;tag=r{cseq}\r\nTo: <sip:{user}@127.0.0.1>\r\n\
                 Call-ID: reg-{user}@test\r\nCSeq: {cseq} REGISTER\r\n\
                 Contact: <sip:{user}@127.0.0.1:{p}>\r\nExpires: {expires}\r\n\
                 User-Agent: {ua}\r\nContent-Length: 0\r\n\r\n",
                sip = self.sip,
                p = phone.port,
            ),
        );
        let r = phone.recv("REGISTER reply");
        r.split(' ').nth(1).unwrap_or_default().to_owned()
    }

    /// An INVITE for `user` from `caller` at this node: the caller's reply when the node
    /// answers itself (404), `None` when it relayed the call.
    fn call(&self, caller: &Peer, user: &str, n: u32) -> Option<String> {
        caller.send(
            self.sip,
            &format!(
                "INVITE sip:{user}@127.0.0.1:{sip} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bKinv{user}{n}\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:caller@127.0.0.1>;tag=i{n}\r\nTo: <sip:{user}@127.0.0.1>\r\n\
                 Call-ID: inv-{user}-{n}@test\r\nCSeq: 1 INVITE\r\n\
                 Content-Length: 0\r\n\r\n",
                sip = self.sip,
                p = caller.port,
            ),
        );
        caller.quiet(Duration::from_millis(500))
    }
}

fn two_nodes(name: &str) -> (Node, Node) {
    let p = ports(2);
    let all = [(1, p[0].1), (2, p[1].1)];
    let a = start(name, 1, p[0], &all);
    let b = start(name, 2, p[1], &all);
    wait_for(
        "nodes up",
        Duration::from_secs(6),
        || a.log() + &b.log(),
        || a.link(2) == "Up" && b.link(1) == "Up",
    );
    (a, b)
}

#[test]
fn a_phone_registered_at_one_node_is_called_through_the_other() {
    let (a, b) = two_nodes("call");
    let logs = || a.log() + &b.log();
    let (phone, caller) = (Peer::new(), Peer::new());
    let aor = "alice@127.0.0.1";
    // Not registered yet: node 2 has nobody to call.
    assert!(
        b.call(&caller, "alice", 0)
            .is_some_and(|r| r.starts_with("SIP/2.0 404")),
        "{}",
        logs()
    );
    assert_eq!(a.register(&phone, "alice", 1, 600, "Desk/1"), "200");
    wait_for("contact replicated", Duration::from_secs(3), logs, || {
        !b.contacts(aor).is_empty()
    });
    let (on_a, on_b) = (a.contacts(aor), b.contacts(aor));
    assert_eq!(on_b.len(), 1, "{on_b:?}");
    for k in ["Contact", "ContactID", "Callid", "Cseq", "User-agent", "Q"] {
        assert_eq!(on_a[0][k], on_b[0][k], "{k}: {on_a:?} / {on_b:?}");
    }
    assert_eq!(
        on_b[0]["Contact"],
        format!("sip:alice@127.0.0.1:{}", phone.port)
    );
    let left = on_b[0]["Expires"].as_u64().unwrap();
    assert!((590..=600).contains(&left), "{on_b:?}");
    // Node 1's socket is not node 2's: node 2 keeps none.
    assert!(on_a[0]["Socket"].is_string(), "{on_a:?}");
    assert!(on_b[0].get("Socket").is_none(), "{on_b:?}");

    // The call through node 2 reaches the phone.
    assert_eq!(b.call(&caller, "alice", 1), None, "{}", logs());
    let inv = phone.recv("INVITE");
    assert!(
        inv.starts_with(&format!(
            "INVITE sip:alice@127.0.0.1:{} SIP/2.0",
            phone.port
        )),
        "{inv}"
    );

    // A refresh with a new User-Agent is an update on node 2.
    assert_eq!(a.register(&phone, "alice", 2, 600, "Desk/2"), "200");
    wait_for("update replicated", Duration::from_secs(3), logs, || {
        b.contacts(aor)
            .first()
            .is_some_and(|c| c["User-agent"] == "Desk/2" && c["Cseq"] == 2)
    });
    assert_eq!(b.contacts(aor).len(), 1);

    // De-registration at node 1 removes it at node 2.
    assert_eq!(a.register(&phone, "alice", 3, 0, "Desk/2"), "200");
    wait_for("delete replicated", Duration::from_secs(3), logs, || {
        b.contacts(aor).is_empty()
    });
    assert!(
        b.call(&caller, "alice", 2)
            .is_some_and(|r| r.starts_with("SIP/2.0 404")),
        "{}",
        logs()
    );
    // Node 2 did not echo the packets back: node 1 has nothing either.
    assert!(a.contacts(aor).is_empty());
    assert!(!logs().contains("failed to process"), "{}", logs());
}

#[test]
fn contacts_expire_on_every_node() {
    let (a, b) = two_nodes("expire");
    let logs = || a.log() + &b.log();
    let phone = Peer::new();
    let caller = Peer::new();
    assert_eq!(a.register(&phone, "erin", 1, 2, "Short/1"), "200");
    wait_for("contact replicated", Duration::from_secs(3), logs, || {
        !b.contacts("erin@127.0.0.1").is_empty()
    });
    // Found on node 2 while it lives...
    assert_eq!(b.call(&caller, "erin", 0), None, "{}", logs());
    phone.recv("INVITE");
    // ...and gone from both once its 2 s are over: usrloc's timer on each node removes it,
    // with nothing sent (node 1 sends no delete for an expiry).
    let t0 = Instant::now();
    wait_for("expired", Duration::from_secs(6), logs, || {
        a.contacts("erin@127.0.0.1").is_empty() && b.contacts("erin@127.0.0.1").is_empty()
    });
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(
        b.call(&caller, "erin", 1)
            .is_some_and(|r| r.starts_with("SIP/2.0 404")),
        "{}",
        logs()
    );
    let stats = b.mi("get_statistics", json!([["usrloc:location-expires"]]));
    assert_eq!(stats["result"]["usrloc:location-expires"], 1, "{stats}");
}

#[test]
fn a_node_started_later_gets_the_registrations_by_sync() {
    let p = ports(2);
    let all = [(1, p[0].1), (2, p[1].1)];
    let a = start("sync", 1, p[0], &all);
    let phones = [Peer::new(), Peer::new(), Peer::new()];
    for (i, (user, ph)) in ["ann", "ben", "cid"].iter().zip(&phones).enumerate() {
        assert_eq!(a.register(ph, user, 1, 600, &format!("P/{i}")), "200");
    }
    let b = start("sync", 2, p[1], &all);
    let logs = || a.log() + &b.log();
    wait_for("sync", Duration::from_secs(8), logs, || {
        ["ann", "ben", "cid"]
            .iter()
            .all(|u| b.contacts(&format!("{u}@127.0.0.1")).len() == 1)
    });
    assert_eq!(
        b.contacts("ben@127.0.0.1")[0]["User-agent"],
        "P/1",
        "{}",
        logs()
    );
    let caps = b.mi("clusterer:list_cap", Value::Null);
    assert_eq!(
        caps["result"]["Clusters"][0]["Capabilities"][0],
        json!({"name": "usrloc-contact-repl", "state": "Ok", "enabled": "yes"}),
        "{caps}"
    );
    // With the capability disabled on node 1, its registrations stay there; a sync that
    // node 2 asks for by MI brings them over.
    let cap = |status: u32| {
        let r = a.mi(
            "clusterer:set_cap_status",
            json!({"cluster_id": 1, "capability": "usrloc-contact-repl", "status": status}),
        );
        assert_eq!(r["result"], "OK", "{r}");
    };
    cap(0);
    let dan = Peer::new();
    assert_eq!(a.register(&dan, "dan", 1, 600, "Dan/1"), "200");
    cap(1);
    std::thread::sleep(Duration::from_millis(300));
    assert!(b.contacts("dan@127.0.0.1").is_empty(), "{}", logs());
    let r = b.mi("ul_cluster_sync", Value::Null);
    assert_eq!(r["result"], "OK", "{r}");
    wait_for("MI sync", Duration::from_secs(3), logs, || {
        b.contacts("dan@127.0.0.1").len() == 1
    });
    assert_eq!(
        b.contacts("ben@127.0.0.1").len(),
        1,
        "synced twice, kept once"
    );
    // And a call through node 2 reaches a phone that registered before it started.
    let caller = Peer::new();
    assert_eq!(b.call(&caller, "cid", 0), None, "{}", logs());
    assert!(
        phones[2]
            .recv("INVITE")
            .starts_with("INVITE sip:cid@127.0.0.1:")
    );
}

/// A module packet as a node sends it: header, capability, type, body, trailer.
fn packet(ptype: i32, version: i16, body: &[u8], src: i32, dst: i32) -> Vec<u8> {
    let cap = b"usrloc-contact-repl";
    let mut pk = b"P4CK".to_vec();
    pk.extend_from_slice(&[0; 4]);
    pk.extend_from_slice(&version.to_le_bytes());
    pk.extend_from_slice(&(cap.len() as u16).to_le_bytes());
    pk.extend_from_slice(cap);
    pk.extend_from_slice(&ptype.to_le_bytes());
    pk.extend_from_slice(body);
    for v in [1i32, src, dst] {
        pk.extend_from_slice(&v.to_le_bytes());
    }
    let len = (pk.len() as u32).to_le_bytes();
    pk[4..8].copy_from_slice(&len);
    pk
}

fn s(b: &mut Vec<u8>, v: &[u8]) {
    b.extend_from_slice(&(v.len() as u16).to_le_bytes());
    b.extend_from_slice(v);
}

#[test]
fn hand_made_packets_are_applied_and_malformed_ones_dropped() {
    let (a, b) = two_nodes("raw");
    let logs = || a.log() + &b.log();
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 300;
    // A UCONTACT_INSERT (type 3, version 5) laid out field by field as ul_cluster.c does.
    let mut body = Vec::new();
    s(&mut body, b"location");
    s(&mut body, b"zed@127.0.0.1");
    s(&mut body, b"sip:zed@192.0.2.9:5062");
    s(&mut body, &0x0000_0042_0000_0001u64.to_le_bytes());
    s(&mut body, b"zed-call");
    s(&mut body, b"Raw/1");
    s(&mut body, b""); // path
    s(&mut body, b""); // attr
    s(&mut body, b""); // received
    s(&mut body, b""); // instance
    s(&mut body, &expires.to_le_bytes());
    s(&mut body, &(-1i32).to_le_bytes());
    s(&mut body, b"udp:10.9.9.9:5060"); // a socket node 2 does not have
    body.extend_from_slice(&5i32.to_le_bytes()); // cseq
    body.extend_from_slice(&0i32.to_le_bytes()); // flags
    s(&mut body, b""); // cflags
    body.extend_from_slice(&(-1i32).to_le_bytes()); // methods
    s(&mut body, &(expires - 600).to_le_bytes());
    s(&mut body, b""); // kv store
    body.extend_from_slice(&0i32.to_le_bytes()); // match: contact only
    let good = packet(3, 5, &body, 1, 2);
    // The same cut inside the expires field, its length fixed: malformed.
    let cut = packet(3, 5, &body[..body.len() - 60], 1, 2);
    let mut sock = TcpStream::connect(("127.0.0.1", b.bin)).unwrap();
    sock.write_all(&cut).unwrap();
    sock.write_all(&packet(77, 5, &body, 1, 2)).unwrap();
    sock.write_all(&packet(3, 9, &body, 1, 2)).unwrap();
    sock.write_all(&good).unwrap();
    wait_for(
        "hand-made contact applied",
        Duration::from_secs(3),
        logs,
        || !b.contacts("zed@127.0.0.1").is_empty(),
    );
    let c = &b.contacts("zed@127.0.0.1")[0];
    assert_eq!(c["Contact"], "sip:zed@192.0.2.9:5062");
    assert_eq!(c["Callid"], "zed-call");
    assert_eq!(c["Cseq"], 5);
    assert_eq!(c["ContactID"], (0x0000_0042_0000_0001u64).to_string());
    let left = c["Expires"].as_u64().unwrap();
    assert!((290..=300).contains(&left), "{c}");
    let log = b.log();
    assert!(log.contains("packet cut short"), "{log}");
    assert!(
        log.contains("invalid usrloc binary packet type: 77"),
        "{log}"
    );
    assert!(log.contains("unsupported BIN version 9"), "{log}");
    // An older CSeq for the same contact changes nothing.
    let mut old = body.clone();
    // cseq, flags, cflags, methods, last modified, kv store, match: 30 bytes from the end.
    let at = old.len() - 30;
    old[at..at + 4].copy_from_slice(&3i32.to_le_bytes());
    let ua = old.windows(5).position(|w| w == b"Raw/1").unwrap();
    old[ua..ua + 5].copy_from_slice(b"Old/1");
    sock.write_all(&packet(3, 5, &old, 1, 2)).unwrap();
    // A delete (type 5) with the contact's CSeq removes it.
    let mut del = Vec::new();
    s(&mut del, b"location");
    s(&mut del, b"zed@127.0.0.1");
    s(&mut del, b"sip:zed@192.0.2.9:5062");
    s(&mut del, b"zed-call");
    del.extend_from_slice(&5i32.to_le_bytes());
    del.extend_from_slice(&1i32.to_le_bytes());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.contacts("zed@127.0.0.1")[0]["User-agent"], "Raw/1");
    sock.write_all(&packet(5, 5, &del, 1, 2)).unwrap();
    wait_for(
        "hand-made delete applied",
        Duration::from_secs(3),
        logs,
        || b.contacts("zed@127.0.0.1").is_empty(),
    );
    // Node 2 is fine and still linked.
    assert_eq!(b.link(1), "Up", "{}", logs());
    // Nothing of it went back to node 1 (a received packet is not sent on).
    assert!(a.contacts("zed@127.0.0.1").is_empty());
}

#[test]
fn cluster_settings_are_checked_as_opensips_does() {
    let base = "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\n\
                loadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n";
    for (params, says) in [
        (
            "modparam(\"usrloc\", \"working_mode_preset\", \"full-sharing-cluster\")\n",
            "'location_cluster' is not set!",
        ),
        (
            "modparam(\"usrloc\", \"location_cluster\", 1)\n",
            "a 'location_cluster' has been defined with a single-instance clustering mode!",
        ),
        (
            "modparam(\"usrloc\", \"restart_persistency\", \"sync-from-cluster\")\n",
            "cannot sync from cluster without first enabling a clustering mode!",
        ),
        (
            "modparam(\"usrloc\", \"cluster_mode\", \"full-sharing\")\n\
             modparam(\"usrloc\", \"location_cluster\", 1)\n",
            "failed to load clusterer API",
        ),
    ] {
        let err = common::refused_start("ulr-settings", &format!("{base}{params}route {{ }}\n"));
        assert!(err.contains(says), "{params}: {err}");
    }
}
