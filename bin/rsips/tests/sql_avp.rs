//! sqlops' user preferences on db_text: `sql_avp_load` by URI (username and domain, as
//! `use_domain` defaults to in 4.0) or by uuid, integer and string values, every attribute
//! at once with a prefix; `sql_avp_store` and `sql_avp_delete` round trips.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, header};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "db_text.so"
loadmodule "sqlops.so"
modparam("sqlops", "db_url", "text://DB")
route {
    if ($rU == "load") {
        if (sql_avp_load("$fu", "$avp(fwd)"))
            append_to_reply("X-Fwd: $(avp(fwd)[0]) $(avp(fwd)[1])\r\n");
        if (sql_avp_load("$fu", "$avp(maxcalls)")) {
            $var(m) = $avp(maxcalls) + 1;
            append_to_reply("X-Max: $var(m)\r\n");
        }
        if (!sql_avp_load("$fu", "$avp(bad)"))
            append_to_reply("X-Bad: none\r\n");
        if (sql_avp_load("u-123", "$avp(byid)/usr_preferences"))
            append_to_reply("X-Byid: $avp(byid)\r\n");
        if (sql_avp_load("$fu", "*", , "p_"))
            append_to_reply("X-All: $avp(p_maxcalls) $avp(p_fwd)\r\n");
    }
    if ($rU == "user") {
        if (sql_avp_load("$fu/username", "$avp(fwd)"))
            append_to_reply("X-Any-Domain: $(avp(fwd)[0]) $(avp(fwd)[2])\r\n");
    }
    if ($rU == "store") {
        $avp(pref) = "blue";
        $avp(pref) = 7;
        if (sql_avp_store("$fu", "$avp(pref)"))
            append_to_reply("X-Stored: yes\r\n");
    }
    if ($rU == "read") {
        if (sql_avp_load("$fu", "$avp(pref)"))
            append_to_reply("X-Pref: $(avp(pref)[0]),$(avp(pref)[1])\r\n");
        else
            append_to_reply("X-Pref: none\r\n");
    }
    if ($rU == "delete")
        sql_avp_delete("$fu", "$avp(pref)");
    sl_send_reply(200, "OK");
}
"#;

fn ask(peer: &Peer, port: u16, user: &str) -> String {
    peer.send(
        port,
        &format!(
            "OPTIONS sip:{user}@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-avp-{user}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@example.com>;tag=f\r\n\
             To: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: avp-{user}-{port}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            peer.port
        ),
    );
    peer.recv("reply")
}

#[test]
fn preferences_load_store_and_delete() {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-sqlavp-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(
        db.join("version"),
        "table_name(str) table_version(int)\nusr_preferences:3\n",
    )
    .unwrap();
    std::fs::write(
        db.join("usr_preferences"),
        "id(int,auto) uuid(string) username(string) domain(string) attribute(string) type(int) value(string)\n\
         1::alice:example.com:fwd:2:sip\\:bob@example.com\n\
         2::alice:example.com:fwd:2:sip\\:carol@example.com\n\
         3::alice:example.com:maxcalls:3:5\n\
         4::alice:other.com:fwd:2:sip\\:wrong@other.com\n\
         5:u-123:::byid:2:by uuid\n\
         6::alice:example.com:bad:3:-5\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("DB", &db.display().to_string()),
    )
    .unwrap();
    let log = dir.join("rsips.log");
    let mut server = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let peer = Peer::new();

    let r = ask(&peer, port, "load");
    // The last row on top; the other domain's row not taken.
    assert_eq!(
        header(&r, "X-Fwd"),
        ["sip:carol@example.com sip:bob@example.com"],
        "{r}"
    );
    // An integer preference is an integer.
    assert_eq!(header(&r, "X-Max"), ["6"], "{r}");
    // A row whose integer does not convert is skipped.
    assert_eq!(header(&r, "X-Bad"), ["none"], "{r}");
    assert_eq!(header(&r, "X-Byid"), ["by uuid"], "{r}");
    assert_eq!(header(&r, "X-All"), ["5 sip:carol@example.com"], "{r}");
    // By username only: every domain's rows.
    let r = ask(&peer, port, "user");
    assert_eq!(
        header(&r, "X-Any-Domain"),
        ["sip:wrong@other.com sip:bob@example.com"],
        "{r}"
    );

    let r = ask(&peer, port, "store");
    assert_eq!(header(&r, "X-Stored"), ["yes"], "{r}");
    let r = ask(&peer, port, "read");
    assert_eq!(header(&r, "X-Pref"), ["blue,7"], "{r}");
    let _ = ask(&peer, port, "delete");
    let r = ask(&peer, port, "read");
    assert_eq!(header(&r, "X-Pref"), ["none"], "{r}");
    server.terminate(|| std::fs::read_to_string(&log).unwrap_or_default());
}
