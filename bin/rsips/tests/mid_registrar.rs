//! mid_registrar end to end: rsips between a UA and a main registrar (both test sockets), in
//! each working mode. What the main registrar receives (our Contacts, the lifetimes asked),
//! what the UA gets back (its own bindings with what was granted), REGISTERs absorbed by the
//! throttling modes, calls from upstream reaching the UA through `mid_registrar_lookup()`,
//! de-registration, and the parameters that refuse the start.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{Peer, Rsips, header, reply_to};

/// The mid-registrar's script (the README's example: the main registrar's answers reach the
/// module without an onreply route).
fn config(port: u16, main: u16, params: &str) -> String {
    format!(
        r#"socket=udp:127.0.0.1:{port}
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "signaling.so"
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "usrloc.so"
loadmodule "mid_registrar.so"
{params}
route {{
    if (is_method("REGISTER")) {{
        mid_registrar_save("location");
        $var(rc) = $retcode;
        if ($var(rc) == 1) {{
            $ru = "sip:127.0.0.1:{main}";
            if (!t_relay())
                send_reply(500, "Server Internal Error 1");
        }} else if ($var(rc) != 2) {{
            xlog("L_ERR", "mid-registrar error $var(rc)\n");
        }}
        exit;
    }}
    if (is_method("INVITE") && $si == "127.0.0.1" && $sp == {main}) {{
        if (!mid_registrar_lookup("location")) {{
            t_reply(404, "Not Found");
            exit;
        }}
        t_relay();
        exit;
    }}
    if (is_method("ACK")) {{
        t_relay();
        exit;
    }}
    sl_send_reply(403, "Forbidden");
}}
"#
    )
}

struct Setup {
    mid: Rsips,
    port: u16,
    main: Peer,
}

fn setup(name: &str, params: &str) -> Setup {
    let dir = common::test_dir("midreg", name);
    let port = common::free_port();
    let main = Peer::new();
    let mid = Rsips::start(&dir, &config(port, main.port, params));
    Setup { mid, port, main }
}

/// A REGISTER of `user@example.com` from `ua` (Contact `contact`, lifetime `expires`).
fn register(ua: &Peer, user: &str, contact: &str, expires: u32, callid: &str, cseq: u32) -> String {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-{callid}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@example.com>;tag=ua{cseq}\r\n\
         To: <sip:{user}@example.com>\r\n\
         Call-ID: {callid}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <{contact}>\r\n\
         Expires: {expires}\r\n\
         User-Agent: test-ua\r\n\
         Content-Length: 0\r\n\r\n",
        p = ua.port
    )
}

/// An INVITE the main registrar sends to `ruri` (one of the Contacts it has from us).
fn invite_from_main(main: &Peer, ruri: &str, callid: &str) -> String {
    format!(
        "INVITE {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-{callid};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:bob@example.com>;tag=bob1\r\n\
         To: <sip:alice@example.com>\r\n\
         Call-ID: {callid}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:bob@127.0.0.1:{p}>\r\n\
         Content-Length: 0\r\n\r\n",
        p = main.port
    )
}

/// The URI inside the first `<…>` of a header value.
fn uri_of(value: &str) -> &str {
    value
        .split_once('<')
        .and_then(|(_, r)| r.split_once('>'))
        .map_or(value, |(u, _)| u)
}

/// The Request-URI of a request.
fn ruri(msg: &str) -> &str {
    msg.split(' ').nth(1).unwrap_or("")
}

/// The ACK the main registrar sends for a negative final `reply` to its `invite`.
fn ack_from_main(invite: &str, reply: &str) -> String {
    format!(
        "ACK {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n\
         Call-ID: {}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        ruri(invite),
        header(invite, "Via")[0],
        header(invite, "From")[0],
        header(reply, "To")[0],
        header(invite, "Call-ID")[0],
    )
}

/// A call from the main registrar to `target`: each UA of `uas` gets the INVITE at its own
/// Contact (`contacts`), answers 486 and takes the ACK; the main registrar gets the 486 and
/// ACKs it.
fn busy_call(s: &Setup, target: &str, callid: &str, uas: &[&Peer], contacts: &[&str]) {
    let invite = invite_from_main(&s.main, target, callid);
    s.main.send(s.port, &invite);
    for (ua, contact) in uas.iter().zip(contacts) {
        let inv = ua.recv("the INVITE");
        assert!(inv.starts_with(&format!("INVITE {contact} ")), "{inv}");
        ua.send(s.port, &reply_to(&inv, "486 Busy Here", "ua-tag", ""));
        let ack = ua.recv("ACK for the 486");
        assert!(ack.starts_with("ACK "), "{ack}");
    }
    let r = s.main.recv("the 486 upstream");
    assert!(r.starts_with("SIP/2.0 486"), "{r}");
    s.main.send(s.port, &ack_from_main(&invite, &r));
}

#[test]
fn mirror_mode_relays_registers_and_routes_calls_back_by_contact_id() {
    let s = setup("mirror", "");
    let ua = Peer::new();
    let contact = format!("sip:alice@127.0.0.1:{}", ua.port);
    ua.send(
        s.port,
        &register(&ua, "alice", &contact, 600, "mirror-1", 1),
    );

    // Upstream: one Contact of ours carrying the contact id, the UA's lifetime untouched.
    let req = s.main.recv("the relayed REGISTER");
    assert!(
        req.starts_with(&format!("REGISTER sip:127.0.0.1:{} ", s.main.port)),
        "{req}"
    );
    let cts = header(&req, "Contact");
    assert_eq!(cts.len(), 1, "{req}");
    let ours = uri_of(cts[0]).to_owned();
    assert!(
        ours.starts_with(&format!("sip:alice@127.0.0.1:{};ctid=", s.port)),
        "{req}"
    );
    assert!(cts[0].ends_with(";expires=600"), "{req}");
    assert!(
        !cts[0].contains(&ua.port.to_string()),
        "the UA's address stays here: {req}"
    );
    assert_eq!(header(&req, "Expires"), ["600"], "{req}");

    // The main registrar grants less: the UA is told so, with its own Contact.
    s.main.send(
        s.port,
        &reply_to(
            &req,
            "200 OK",
            "main1",
            &format!("Contact: <{ours}>;expires=300\r\n"),
        ),
    );
    let ok = ua.recv("the 200 OK");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert_eq!(
        header(&ok, "Contact"),
        [format!("<{contact}>;expires=300")],
        "{ok}"
    );
    assert!(header(&ok, "Expires").is_empty(), "{ok}");

    // A call from upstream to our Contact reaches the UA.
    busy_call(&s, &ours, "call-1", &[&ua], &[&contact]);

    // Every REGISTER goes upstream in this mode: the de-registration too.
    ua.send(s.port, &register(&ua, "alice", &contact, 0, "mirror-1", 2));
    let req = s.main.recv("the relayed de-REGISTER");
    assert!(header(&req, "Contact")[0].ends_with(";expires=0"), "{req}");
    assert!(
        uri_of(header(&req, "Contact")[0]) == ours,
        "the same contact id: {req}"
    );
    s.main.send(s.port, &reply_to(&req, "200 OK", "main2", ""));
    let ok = ua.recv("the 200 OK to the de-REGISTER");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert!(header(&ok, "Contact").is_empty(), "{ok}");
    s.main
        .send(s.port, &invite_from_main(&s.main, &ours, "call-2"));
    let r = s.main.recv("the 404");
    assert!(r.starts_with("SIP/2.0 404 Not Found"), "{r}");
    assert!(ua.quiet(Duration::from_millis(300)).is_none());
    drop(s.mid);
}

#[test]
fn contact_ids_can_replace_the_user_part() {
    let s = setup(
        "ctuser",
        "modparam(\"mid_registrar\", \"contact_id_insertion\", \"ct-username\")",
    );
    let ua = Peer::new();
    let contact = format!("sip:frank@127.0.0.1:{};transport=udp", ua.port);
    ua.send(
        s.port,
        &register(&ua, "frank", &contact, 120, "ctuser-1", 1),
    );
    let req = s.main.recv("the relayed REGISTER");
    let ct = header(&req, "Contact")[0].to_owned();
    let ours = uri_of(&ct).to_owned();
    let (user, host) = ours.trim_start_matches("sip:").split_once('@').unwrap();
    assert!(
        user.parse::<u64>().is_ok(),
        "the user part is the contact id: {req}"
    );
    assert_eq!(host, format!("127.0.0.1:{}", s.port), "{req}");
    assert!(ct.ends_with(";expires=120"), "{req}");
    s.main.send(
        s.port,
        &reply_to(
            &req,
            "200 OK",
            "m1",
            &format!("Contact: <{ours}>;expires=120\r\n"),
        ),
    );
    let ok = ua.recv("the 200 OK");
    assert_eq!(
        header(&ok, "Contact"),
        [format!("<{contact}>;expires=120")],
        "{ok}"
    );
    busy_call(&s, &ours, "ctuser-call", &[&ua], &[&contact]);
    drop(s.mid);
}

#[test]
fn a_refused_register_stores_nothing() {
    let s = setup("refused", "");
    let ua = Peer::new();
    let contact = format!("sip:carol@127.0.0.1:{}", ua.port);
    ua.send(
        s.port,
        &register(&ua, "carol", &contact, 600, "refused-1", 1),
    );
    let req = s.main.recv("the relayed REGISTER");
    let ours = uri_of(header(&req, "Contact")[0]).to_owned();
    s.main.send(
        s.port,
        &reply_to(
            &req,
            "401 Unauthorized",
            "main1",
            "WWW-Authenticate: Digest realm=\"example.com\", nonce=\"n\"\r\n",
        ),
    );
    let r = ua.recv("the 401");
    assert!(r.starts_with("SIP/2.0 401"), "{r}");
    assert_eq!(header(&r, "WWW-Authenticate").len(), 1, "{r}");
    s.main
        .send(s.port, &invite_from_main(&s.main, &ours, "call-r"));
    let r = s.main.recv("the 404");
    assert!(r.starts_with("SIP/2.0 404"), "{r}");
    drop(s.mid);
}

#[test]
fn contact_throttling_absorbs_refreshes_until_upstream_needs_one() {
    let s = setup(
        "ctthrottle",
        "modparam(\"mid_registrar\", \"mode\", 1)\nmodparam(\"mid_registrar\", \"outgoing_expires\", 3600)",
    );
    let ua = Peer::new();
    let contact = format!("sip:alice@127.0.0.1:{}", ua.port);
    ua.send(s.port, &register(&ua, "alice", &contact, 60, "ct-1", 1));

    // Upstream asks outgoing_expires, in the header and the Contact.
    let req = s.main.recv("the relayed REGISTER");
    let ct = header(&req, "Contact")[0].to_owned();
    let ours = uri_of(&ct).to_owned();
    assert!(
        ours.starts_with(&format!("sip:alice@127.0.0.1:{};ctid=", s.port)),
        "{req}"
    );
    assert!(ct.ends_with(";expires=3600"), "{req}");
    assert_eq!(header(&req, "Expires"), ["3600"], "{req}");
    s.main.send(
        s.port,
        &reply_to(
            &req,
            "200 OK",
            "main1",
            &format!("Contact: <{ours}>;expires=3600\r\n"),
        ),
    );
    // The UA keeps its own rhythm.
    let ok = ua.recv("the 200 OK");
    assert_eq!(
        header(&ok, "Contact"),
        [format!("<{contact}>;expires=60")],
        "{ok}"
    );

    // Its refreshes are answered here; the main registrar hears nothing.
    for cseq in 2..4 {
        ua.send(s.port, &register(&ua, "alice", &contact, 60, "ct-1", cseq));
        let ok = ua.recv("the absorbed 200 OK");
        assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
        assert_eq!(header(&ok, "CSeq"), [format!("{cseq} REGISTER")], "{ok}");
        assert_eq!(
            header(&ok, "Contact"),
            [format!("<{contact}>;expires=60")],
            "{ok}"
        );
    }
    assert!(
        s.main.quiet(Duration::from_millis(400)).is_none(),
        "refreshes absorbed"
    );

    // A call from upstream still finds the UA by the contact id.
    busy_call(&s, &ours, "ct-call", &[&ua], &[&contact]);

    // A de-registration goes upstream at once.
    ua.send(s.port, &register(&ua, "alice", &contact, 0, "ct-1", 4));
    let req = s.main.recv("the relayed de-REGISTER");
    assert!(header(&req, "Contact")[0].ends_with(";expires=0"), "{req}");
    assert_eq!(header(&req, "Expires"), ["0"], "{req}");
    s.main.send(s.port, &reply_to(&req, "200 OK", "main2", ""));
    let ok = ua.recv("the 200 OK to the de-REGISTER");
    assert!(header(&ok, "Contact").is_empty(), "{ok}");
    s.main
        .send(s.port, &invite_from_main(&s.main, &ours, "ct-call-2"));
    let r = s.main.recv("the 404");
    assert!(r.starts_with("SIP/2.0 404"), "{r}");
    drop(s.mid);
}

#[test]
fn contact_throttling_forwards_when_the_upstream_binding_runs_short() {
    // outgoing_expires no longer than the UA's lifetime: the upstream binding would not outlive
    // the UA's next refresh, so every refresh goes upstream.
    let s = setup(
        "ctshort",
        "modparam(\"mid_registrar\", \"mode\", 1)\nmodparam(\"mid_registrar\", \"outgoing_expires\", 60)",
    );
    let ua = Peer::new();
    let contact = format!("sip:dave@127.0.0.1:{}", ua.port);
    for cseq in 1..3 {
        ua.send(
            s.port,
            &register(&ua, "dave", &contact, 60, "short-1", cseq),
        );
        let req = s.main.recv("a relayed REGISTER");
        let ours = uri_of(header(&req, "Contact")[0]).to_owned();
        s.main.send(
            s.port,
            &reply_to(
                &req,
                "200 OK",
                "m",
                &format!("Contact: <{ours}>;expires=60\r\n"),
            ),
        );
        let ok = ua.recv("the 200 OK");
        assert_eq!(
            header(&ok, "Contact"),
            [format!("<{contact}>;expires=60")],
            "{ok}"
        );
    }
    drop(s.mid);
}

#[test]
fn aor_throttling_registers_the_aor_once_and_forks_to_its_contacts() {
    let s = setup(
        "aorthrottle",
        "modparam(\"mid_registrar\", \"mode\", 2)\nmodparam(\"mid_registrar\", \"outgoing_expires\", 3600)",
    );
    let (ua1, ua2) = (Peer::new(), Peer::new());
    let c1 = format!("sip:alice@127.0.0.1:{}", ua1.port);
    let c2 = format!("sip:alice@127.0.0.1:{}", ua2.port);
    ua1.send(s.port, &register(&ua1, "alice", &c1, 60, "aor-1", 1));

    // Upstream: one Contact naming the AoR here.
    let req = s.main.recv("the relayed REGISTER");
    let aor_ct = format!("sip:alice%40example.com@127.0.0.1:{}", s.port);
    assert_eq!(header(&req, "Contact"), [format!("<{aor_ct}>")], "{req}");
    assert_eq!(header(&req, "Expires"), ["3600"], "{req}");
    s.main.send(
        s.port,
        &reply_to(
            &req,
            "200 OK",
            "main1",
            &format!("Contact: <{aor_ct}>;expires=3600\r\n"),
        ),
    );
    let ok = ua1.recv("the 200 OK");
    assert_eq!(
        header(&ok, "Contact"),
        [format!("<{c1}>;expires=60")],
        "{ok}"
    );

    // A second device of the AoR, and a refresh of the first: both answered here.
    ua2.send(s.port, &register(&ua2, "alice", &c2, 60, "aor-2", 1));
    let ok = ua2.recv("the absorbed 200 OK");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    let listed = header(&ok, "Contact")[0];
    assert!(
        listed.contains(&format!("<{c1}>;expires="))
            && listed.contains(&format!("<{c2}>;expires=60")),
        "{ok}"
    );
    ua1.send(s.port, &register(&ua1, "alice", &c1, 60, "aor-1", 2));
    let ok = ua1.recv("the absorbed refresh");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert!(
        s.main.quiet(Duration::from_millis(400)).is_none(),
        "absorbed"
    );

    // A call to the AoR from upstream rings both devices.
    busy_call(&s, &aor_ct, "aor-call", &[&ua1, &ua2], &[&c1, &c2]);

    // Device 2 leaves: absorbed (device 1 keeps the AoR); device 1 leaves: upstream knows.
    ua2.send(s.port, &register(&ua2, "alice", &c2, 0, "aor-2", 2));
    let ok = ua2.recv("the 200 OK to device 2's de-REGISTER");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    // Device 1's binding was refreshed a moment ago: 60 s, or 59 once a second turned.
    let left = header(&ok, "Contact");
    assert!(
        left == [format!("<{c1}>;expires=60")] || left == [format!("<{c1}>;expires=59")],
        "{ok}"
    );
    assert!(
        s.main.quiet(Duration::from_millis(400)).is_none(),
        "absorbed"
    );
    ua1.send(s.port, &register(&ua1, "alice", &c1, 0, "aor-1", 3));
    let req = s.main.recv("the AoR's de-REGISTER");
    assert!(req.starts_with("REGISTER "), "{req}");
    assert_eq!(header(&req, "Contact"), [format!("<{aor_ct}>")], "{req}");
    assert_eq!(header(&req, "Expires"), ["0"], "{req}");
    s.main.send(s.port, &reply_to(&req, "200 OK", "main2", ""));
    let ok = ua1.recv("the 200 OK to device 1's de-REGISTER");
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert!(header(&ok, "Contact").is_empty(), "{ok}");
    s.main
        .send(s.port, &invite_from_main(&s.main, &aor_ct, "aor-call-2"));
    let r = s.main.recv("the 404");
    assert!(r.starts_with("SIP/2.0 404"), "{r}");
    drop(s.mid);
}

/// A UA that stops refreshing: once its binding here expires, the main registrar (which holds
/// ours for `outgoing_expires`) gets a De-REGISTER from us, in the registration's dialog.
fn expired_binding_is_unregistered_upstream(mode: u32, name: &str) {
    let s = setup(
        name,
        &format!(
            "modparam(\"mid_registrar\", \"mode\", {mode})\n\
             modparam(\"mid_registrar\", \"min_expires\", 0)"
        ),
    );
    let ua = Peer::new();
    let contact = format!("sip:erin@127.0.0.1:{}", ua.port);
    ua.send(s.port, &register(&ua, "erin", &contact, 2, "exp-1", 7));
    let req = s.main.recv("the relayed REGISTER");
    let ours = uri_of(header(&req, "Contact")[0]).to_owned();
    assert_eq!(header(&req, "Expires"), ["3600"], "{req}");
    s.main.send(
        s.port,
        &reply_to(
            &req,
            "200 OK",
            "m1",
            &format!("Contact: <{ours}>;expires=3600\r\n"),
        ),
    );
    let ok = ua.recv("the 200 OK");
    assert_eq!(
        header(&ok, "Contact"),
        [format!("<{contact}>;expires=2")],
        "{ok}"
    );
    let started = std::time::Instant::now();
    let dereg = s.main.recv("the De-REGISTER from the mid-registrar");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the expiry"
    );
    assert!(
        dereg.starts_with(&format!("REGISTER sip:127.0.0.1:{} ", s.main.port)),
        "{dereg}"
    );
    assert_eq!(
        header(&dereg, "Contact"),
        [format!("<{ours}>;expires=0")],
        "{dereg}"
    );
    assert_eq!(header(&dereg, "Call-ID"), ["exp-1"], "{dereg}");
    assert_eq!(header(&dereg, "CSeq"), ["8 REGISTER"], "{dereg}");
    assert!(
        uri_of(header(&dereg, "To")[0]) == "sip:erin@example.com",
        "{dereg}"
    );
    s.main.send(s.port, &reply_to(&dereg, "200 OK", "m2", ""));
    assert!(
        s.main.quiet(Duration::from_millis(1500)).is_none(),
        "one De-REGISTER only"
    );
    assert!(
        ua.quiet(Duration::from_millis(100)).is_none(),
        "the UA hears nothing of it"
    );
    drop(s.mid);
}

#[test]
fn contact_throttling_unregisters_an_expired_contact_upstream() {
    expired_binding_is_unregistered_upstream(1, "ctexpiry");
}

#[test]
fn aor_throttling_unregisters_an_expired_aor_upstream() {
    expired_binding_is_unregistered_upstream(2, "aorexpiry");
}

#[test]
fn bad_parameters_refuse_the_start() {
    let base = "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\n\
                loadmodule \"signaling.so\"\nloadmodule \"tm.so\"\nloadmodule \"usrloc.so\"\n\
                loadmodule \"mid_registrar.so\"\n";
    let cases = [
        ("modparam(\"mid_registrar\", \"mode\", 5)", "bad \"mode\" 5"),
        (
            "modparam(\"mid_registrar\", \"outgoing_expires\", 0)",
            "bad \"outgoing_expires\" value: 0",
        ),
        (
            "modparam(\"mid_registrar\", \"contact_id_param\", \"ct id\")",
            "contains bad chars: 'ct id'",
        ),
        (
            "modparam(\"mid_registrar\", \"received_avp\", \"$var(rcv)\")",
            "malformed or non AVP definition",
        ),
    ];
    for (i, (param, want)) in cases.iter().enumerate() {
        let err = common::refused_start(
            &format!("midreg-bad-{i}"),
            &format!("{base}{param}\nroute {{ exit; }}\n"),
        );
        assert!(
            err.contains("mid_registrar") && err.contains(want),
            "{param}: {err}"
        );
    }
    let err = common::refused_start(
        "midreg-no-usrloc",
        "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\n\
         loadmodule \"signaling.so\"\nloadmodule \"tm.so\"\nloadmodule \"mid_registrar.so\"\n\
         route { exit; }\n",
    );
    assert!(err.contains("needs module \"usrloc\""), "{err}");
}
