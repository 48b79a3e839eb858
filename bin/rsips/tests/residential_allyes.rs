//! The stock OpenSIPS residential script with every option on (`residential_allyes.cfg`:
//! auth_db, alias_db, domain, presence, dialog, nathelper, rtpproxy, dialplan, drouting, acc,
//! usrloc in SQL write-back mode, TLS) run on a real MariaDB, unchanged but for its sockets,
//! FIFO, HTTP port, logging, database address, certificate files and the RTPProxy's address
//! (rtpengine on its RTPProxy-protocol port). Local users authenticate; a watcher subscribes
//! and hears a publication through the presence route; a call from a user behind NAT to a
//! registered user behind NAT gets its media through the RTPProxy both ways.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;
#[path = "../../../crates/db/tests/my_server/mod.rs"]
mod my_server;
#[path = "../../../crates/db/tests/ports/mod.rs"]
mod ports;

use common::{Peer, digest_param, header, md5_hex, reply_to};

/// The tables the script's modules read, with their versions, a local domain and three users.
fn schema() -> String {
    use common::schema::*;
    let data = "INSERT INTO version VALUES ('location', 1013), ('acc', 7), ('missed_calls', 5), ('dialog', 12), \
  ('subscriber', 8), ('dbaliases', 2), ('domain', 4), ('dialplan', 5), ('dr_gateways', 6), \
  ('dr_rules', 4), ('dr_carriers', 3), ('dr_groups', 2), ('presentity', 5), ('active_watchers', 12), \
  ('watchers', 4), ('xcap', 4);\n\
INSERT INTO domain (domain) VALUES ('example.com');\n\
INSERT INTO subscriber (username, domain, password) VALUES \
  ('alice', 'example.com', 'alicepw'), ('bob', 'example.com', 'bobpw'), ('carol', 'example.com', 'carolpw');";
    mysql(&[
        VERSION, LOCATION, ACC, DIALOG, AUTH, DIALPLAN, DROUTING, PRESENCE, data,
    ])
}

/// `request` again with credentials for the challenge it got (`header`: Authorization or
/// Proxy-Authorization), CSeq raised and a new branch.
fn with_credentials(request: &str, challenge: &str, user: &str, password: &str) -> String {
    let (name, value) = if let Some(v) = header(challenge, "Proxy-Authenticate").first() {
        ("Proxy-Authorization", v.to_string())
    } else {
        (
            "Authorization",
            header(challenge, "WWW-Authenticate")[0].to_owned(),
        )
    };
    let (realm, nonce) = (digest_param(&value, "realm"), digest_param(&value, "nonce"));
    let first = request.lines().next().unwrap();
    let mut parts = first.split(' ');
    let (method, uri) = (parts.next().unwrap(), parts.next().unwrap());
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
    let creds = format!(
        "{name}: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         qop=auth, nc=00000001, cnonce=\"c0ffee\", response=\"{response}\"\r\n"
    );
    let cseq = header(request, "CSeq")[0];
    let (n, m) = cseq.split_once(' ').unwrap();
    let next = format!("{} {m}", n.parse::<u32>().unwrap() + 1);
    request
        .replacen("\r\n\r\n", &format!("\r\n{creds}\r\n"), 1)
        .replace(&format!("CSeq: {cseq}"), &format!("CSeq: {next}"))
        .replace(";branch=z9hG4bK-", ";branch=z9hG4bK-auth-")
}

/// Sends `request`, answers the challenge and returns the final reply.
fn authenticated(p: &Peer, port: u16, request: &str, user: &str, password: &str) -> String {
    p.send(port, request);
    let challenge = p.recv("challenge");
    assert!(
        challenge.starts_with("SIP/2.0 407") || challenge.starts_with("SIP/2.0 401"),
        "{challenge}"
    );
    p.send(port, &with_credentials(request, &challenge, user, password));
    p.recv("final reply")
}

fn request(
    method: &str,
    ruri: &str,
    from: &str,
    p: &Peer,
    call: &str,
    extra: &str,
    body: &str,
) -> String {
    let (to_user, _) = ruri.trim_start_matches("sip:").split_once('@').unwrap();
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-{call}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{from}@example.com>;tag={from}-{call}\r\nTo: <sip:{to_user}@example.com>\r\n\
         Call-ID: {call}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len(),
        lp = p.port
    )
}

/// The ACK for a negative reply to an INVITE (same branch, To tag of the reply).
fn ack_for(invite: &str, reply: &str) -> String {
    let first = invite.lines().next().unwrap().replacen("INVITE", "ACK", 1);
    let cseq = header(invite, "CSeq")[0].replace("INVITE", "ACK");
    format!(
        "{first}\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq}\r\n\
         Content-Length: 0\r\n\r\n",
        header(invite, "Via")[0],
        header(invite, "From")[0],
        header(reply, "To")[0],
        header(invite, "Call-ID")[0]
    )
}

fn sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
    )
}

#[test]
fn the_stock_allyes_residential_script_on_mariadb() {
    let my = my_server::MyServer::start("resall", ports::free_port());
    my.sql(&schema());
    let [port, tls, http, control] = common::free_ports();
    let dir = std::env::temp_dir().join(format!("rsips-resall-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = common::TestCa::new(&dir, "Residential CA");
    ca.issue("server", "127.0.0.1", "IP:127.0.0.1");
    let _engine = common::rtpengine(
        &dir,
        &format!("--listen-udp=127.0.0.1:{control}"),
        (34000, 34999),
        (b"probe V", control),
    );
    let text = common::stock_on_test_ports(
        "residential_allyes.cfg",
        port,
        tls,
        http,
        &dir.join("fifo"),
        my.port,
    )
    .replace("udp:localhost:12221", &format!("udp:127.0.0.1:{control}"))
    .replace(
        "/etc/opensips/tls/user/user-cert.pem",
        &ca.path("server.pem"),
    )
    .replace(
        "/etc/opensips/tls/user/user-privkey.pem",
        &ca.path("server.key"),
    )
    .replace("/etc/opensips/tls/user/user-calist.pem", &ca.path("ca.pem"));
    std::fs::write(dir.join("opensips.cfg"), text).unwrap();
    let mut server = common::spawn_rsips(&dir, "opensips.cfg", |log| {
        log.contains("listening on tls:")
    });
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    let (alice, bob, carol) = (Peer::new(), Peer::new(), Peer::new());

    // Presence: bob (authenticated) watches alice; alice (authenticated) publishes.
    let contact = |p: &Peer, u: &str| format!("Contact: <sip:{u}@127.0.0.1:{}>\r\n", p.port);
    let sub = request(
        "SUBSCRIBE",
        "sip:alice@example.com",
        "bob",
        &bob,
        "pres-sub",
        &format!(
            "{}Event: presence\r\nExpires: 300\r\n",
            contact(&bob, "bob")
        ),
        "",
    );
    let ok = authenticated(&bob, port, &sub, "bob", "bobpw");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}\n{}", log());
    let n = bob.recv("NOTIFY");
    assert!(n.starts_with("NOTIFY "), "{n}");
    bob.send(port, &reply_to(&n, "200 OK", "", ""));
    let pidf = "<?xml version=\"1.0\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
        entity=\"sip:alice@example.com\"><tuple id=\"t1\"><status><basic>open</basic></status></tuple></presence>\n";
    let publish = request(
        "PUBLISH",
        "sip:alice@example.com",
        "alice",
        &alice,
        "pres-pub",
        "Event: presence\r\nExpires: 300\r\nContent-Type: application/pidf+xml\r\n",
        pidf,
    );
    let ok = authenticated(&alice, port, &publish, "alice", "alicepw");
    assert!(
        ok.starts_with("SIP/2.0 200 OK") && !header(&ok, "SIP-ETag").is_empty(),
        "{ok}"
    );
    let n = bob.recv("NOTIFY");
    bob.send(port, &reply_to(&n, "200 OK", "", ""));
    assert!(n.contains("<basic>open</basic>"), "{n}");

    // carol registers from behind a NAT (a private Contact): the registration keeps where it
    // came from.
    let register = request(
        "REGISTER",
        "sip:carol@example.com",
        "carol",
        &carol,
        "reg-carol",
        "Contact: <sip:carol@10.0.0.5:5060>\r\nExpires: 300\r\n",
        "",
    )
    .replacen(
        "REGISTER sip:carol@example.com",
        "REGISTER sip:example.com",
        1,
    );
    let ok = authenticated(&carol, port, &register, "carol", "carolpw");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}\n{}", log());

    // alice, also behind a NAT, calls carol: the INVITE reaches carol's NAT address with the
    // relay's address in its SDP; carol's answer reaches alice through the relay too.
    let invite = request(
        "INVITE",
        "sip:carol@example.com",
        "alice",
        &alice,
        "call-1",
        "Contact: <sip:alice@192.168.1.5:5060>\r\nContent-Type: application/sdp\r\n",
        &sdp("192.168.1.5", 4000),
    );
    alice.send(port, &invite);
    let challenge = alice.recv("407");
    assert!(challenge.starts_with("SIP/2.0 407"), "{challenge}");
    alice.send(port, &ack_for(&invite, &challenge));
    alice.send(
        port,
        &with_credentials(&invite, &challenge, "alice", "alicepw"),
    );
    let at_carol = carol.recv("INVITE");
    assert!(
        at_carol.starts_with("INVITE sip:carol@10.0.0.5:5060 "),
        "{at_carol}"
    );
    let (ip, to_carol) = common::sdp_media(&at_carol);
    assert_eq!(ip, "127.0.0.1", "{at_carol}");
    assert!((34000..=34999).contains(&to_carol), "{at_carol}");
    assert!(at_carol.contains("a=nortpproxy:yes"), "{at_carol}");
    let answer = sdp("10.0.0.5", 5000);
    carol.send(
        port,
        &reply_to(
            &at_carol,
            "200 OK",
            "carol-1",
            &format!(
                "Contact: <sip:carol@10.0.0.5:5060>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n",
                answer.len()
            ),
        )
        .replace("Content-Length: 0\r\n\r\n", &format!("\r\n{answer}")),
    );
    let ok = loop {
        let m = alice.recv("200");
        if m.starts_with("SIP/2.0 200") {
            break m;
        }
    };
    let (ip, to_alice) = common::sdp_media(&ok);
    assert_eq!(ip, "127.0.0.1", "{ok}");
    assert!(
        (34000..=34999).contains(&to_alice) && to_alice != to_carol,
        "{ok}"
    );
    // The Record-Route marks the call as NATed for its sequential requests.
    assert!(header(&ok, "Record-Route")[0].contains("nat=yes"), "{ok}");
    server.terminate(log);
}
