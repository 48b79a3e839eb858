//! uac_registrant: rsips registers at an upstream registrar (our own UDP peer) from a
//! db_text `registrant` table — answering its digest challenge, following a 423's
//! Min-Expires, refreshing before the granted expiry with the same Call-ID — and MI
//! `reg_list` / `reg_disable` (an unREGISTER, the state written back) through `opensips-cli`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{Peer, header, reply_to};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "db_text.so"
loadmodule "uac_registrant.so"
modparam("uac_registrant", "db_url", "text://DB")
modparam("uac_registrant", "timer_interval", 10)
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
route {
    sl_send_reply(404, "Not here");
}
event_route[E_REGISTRANT_REGISTERED] {
    xlog("L_NOTICE", "registered event: $param(aor) at $param(registrar)\n");
}
"#;

#[test]
fn registers_authenticates_refreshes_and_unregisters() {
    let registrar = Peer::new();
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-registrant-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(
        db.join("version"),
        "table_name(str) table_version(int)\nregistrant:3\n",
    )
    .unwrap();
    let reg_uri = format!("sip:127.0.0.1:{}", registrar.port);
    let binding = format!("sip:trunk@127.0.0.1:{port}");
    let esc = |s: &str| s.replace(':', "\\:");
    std::fs::write(
        db.join("registrant"),
        format!(
            "id(int,auto) registrar(string) proxy(string,null) aor(string) \
             third_party_registrant(string,null) username(string,null) password(string,null) \
             binding_URI(string) binding_params(string,null) expiry(int,null) \
             forced_socket(string,null) cluster_shtag(string,null) state(int)\n\
             1:{reg}::{aor}::trunk:pw:{bind}::60:::0\n\
             2:{reg}::{aor2}::::{bind2}::60:::1\n\
             3:{bad}::{aor}::::{bind}::60:::0\n",
            reg = esc(&reg_uri),
            aor = esc("sip:trunk@carrier.example"),
            aor2 = esc("sip:off@carrier.example"),
            bind = esc(&binding),
            bind2 = esc(&format!("sip:off@127.0.0.1:{port}")),
            bad = esc("sip:user@registrar.example"),
        ),
    )
    .unwrap();
    let fifo = dir.join("fifo");
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("DB", &db.display().to_string())
            .replace("FIFO", &fifo.display().to_string()),
    )
    .unwrap();
    let log = dir.join("rsips.log");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut server = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("MI listening"));
    assert!(
        read_log().contains("registrar URI `sip:user@registrar.example` has a user part"),
        "{}",
        read_log()
    );

    // The first REGISTER goes out at start; the registrar challenges it.
    let r1 = registrar.recv("REGISTER");
    assert!(
        r1.starts_with(&format!("REGISTER {reg_uri} SIP/2.0")),
        "{r1}"
    );
    assert_eq!(header(&r1, "To"), ["<sip:trunk@carrier.example>"]);
    assert!(header(&r1, "From")[0].starts_with("<sip:trunk@carrier.example>;tag="));
    assert_eq!(
        header(&r1, "Contact"),
        [format!("<{binding}>;expires=60").as_str()]
    );
    assert_eq!(header(&r1, "CSeq"), ["1 REGISTER"]);
    let call_id = header(&r1, "Call-ID")[0].to_owned();
    let challenge =
        "WWW-Authenticate: Digest realm=\"carrier.example\", nonce=\"n1\", qop=\"auth\"\r\n";
    registrar.send(port, &reply_to(&r1, "401 Unauthorized", "r", challenge));

    // Answered with the row's credentials, same Call-ID, next CSeq.
    let r2 = registrar.recv("REGISTER with credentials");
    assert_eq!(header(&r2, "Call-ID"), [call_id.as_str()]);
    assert_eq!(header(&r2, "CSeq"), ["2 REGISTER"]);
    let auth = header(&r2, "Authorization")[0].to_owned();
    assert_eq!(common::digest_param(&auth, "uri"), reg_uri);
    let ha1 = common::md5_hex("trunk:carrier.example:pw");
    let ha2 = common::md5_hex(&format!("REGISTER:{reg_uri}"));
    let want = common::md5_hex(&format!(
        "{ha1}:n1:00000001:{}:auth:{ha2}",
        common::digest_param(&auth, "cnonce")
    ));
    assert_eq!(common::digest_param(&auth, "response"), want, "{auth}");
    // Too brief: asked again for the Min-Expires.
    registrar.send(
        port,
        &reply_to(&r2, "423 Interval Too Brief", "r", "Min-Expires: 120\r\n"),
    );
    let r3 = registrar.recv("REGISTER for longer");
    assert_eq!(
        header(&r3, "Contact"),
        [format!("<{binding}>;expires=120").as_str()]
    );
    assert_eq!(header(&r3, "CSeq"), ["3 REGISTER"]);
    // Granted 30 s for our binding.
    let granted = format!("Contact: <{binding}>;expires=30\r\n");
    registrar.send(port, &reply_to(&r3, "200 OK", "r", &granted));

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (ok, out) = common::opensips_cli(&fifo, &["reg_list"]);
        assert!(ok, "{out}");
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        let recs = list["Records"].as_array().unwrap().clone();
        assert_eq!(recs.len(), 2, "the bad row is not listed: {out}");
        if recs[0]["state"] == "REGISTERED_STATE" {
            assert_eq!(recs[0]["AOR"], "sip:trunk@carrier.example");
            assert_eq!(recs[0]["expires"], 30);
            assert_eq!(recs[0]["enabled"], "yes");
            assert_eq!(recs[1]["enabled"], "no");
            assert_eq!(recs[1]["state"], "NOT_REGISTERED_STATE");
            break;
        }
        assert!(Instant::now() < deadline, "not registered: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        read_log().contains(&format!(
            "registered event: sip:trunk@carrier.example at {reg_uri}"
        )),
        "{}",
        read_log()
    );

    // Refreshed before the 30 s run out (OpenSIPS' 30 − 2 × timer_interval, at the earliest
    // half the granted time: 15 s after the 200), same Call-ID.
    registrar
        .sock
        .set_read_timeout(Some(Duration::from_secs(25)))
        .unwrap();
    let r4 = registrar.recv("refresh");
    assert_eq!(header(&r4, "Call-ID"), [call_id.as_str()]);
    assert_eq!(header(&r4, "CSeq"), ["4 REGISTER"]);
    registrar.send(port, &reply_to(&r4, "200 OK", "r", &granted));

    // Disabled over MI: unregistered at once, the state written back to the table.
    std::thread::sleep(Duration::from_millis(300));
    let (ok, out) = common::opensips_cli(
        &fifo,
        &[
            "reg_disable",
            "aor=sip:trunk@carrier.example",
            &format!("contact={binding}"),
            &format!("registrar={reg_uri}"),
        ],
    );
    assert!(ok, "{out}");
    let r5 = registrar.recv("unREGISTER");
    assert_eq!(
        header(&r5, "Contact"),
        [format!("<{binding}>;expires=0").as_str()]
    );
    registrar.send(port, &reply_to(&r5, "200 OK", "r", ""));
    let (ok, out) = common::opensips_cli(
        &fifo,
        &[
            "reg_disable",
            "aor=sip:x@y",
            "contact=sip:x@y",
            "registrar=sip:y",
        ],
    );
    assert!(!ok && out.contains("No such registrant"), "{out}");
    server.terminate(read_log);
    let table = std::fs::read_to_string(db.join("registrant")).unwrap();
    let row = table.lines().find(|l| l.starts_with("1:")).unwrap();
    assert!(row.ends_with(":1"), "state not written back: {row}");
}
