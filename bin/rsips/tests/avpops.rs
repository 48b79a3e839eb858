//! OpenSIPS 3.x avpops: user preferences on db_text (`avp_db_store`/`avp_db_load`/
//! `avp_db_delete` with `use_domain` 0 and 1), `avp_db_query` on PostgreSQL, and the AVP
//! operations in memory (`avp_check`, `avp_copy`, `avp_op`, `avp_subst`, `avp_pushto`,
//! `avp_delete`, `is_avp_set`), each seen in the headers of the reply to an OPTIONS. A bad
//! operation in the script stops the start at its position.

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
loadmodule "avpops.so"
modparam("avpops", "db_url", "text://DB")
USE_DOMAIN
route {
    if ($rU == "store") {
        $avp(pref) = "blue";
        $avp(pref) = 7;
        if (avp_db_store("$fu", "$avp(pref)"))
            append_to_reply("X-Stored: yes\r\n");
    }
    if ($rU == "read") {
        if (avp_db_load("$fu", "$avp(pref)"))
            append_to_reply("X-Pref: $(avp(pref)[0]),$(avp(pref)[1])\r\n");
        else
            append_to_reply("X-Pref: none\r\n");
    }
    if ($rU == "delete" && avp_db_delete("$fu", "$avp(pref)"))
        append_to_reply("X-Deleted: yes\r\n");
    if ($rU == "byid") {
        if (avp_db_load("u-1", "*", , "p_"))
            append_to_reply("X-Byid: $avp(p_color) $avp(p_limit)\r\n");
        $var(l) = $avp(p_limit) + 1;
        append_to_reply("X-Limit: $var(l)\r\n");
    }
    if ($rU == "check") {
        $avp(n) = 5;
        $avp(s) = "Alice";
        $avp(l) = "a";
        $avp(l) = "b";
        if (avp_check("$avp(n)", "eq/i:5")) append_to_reply("X-Check: eq-int\r\n");
        if (!avp_check("$avp(n)", "lt/345")) append_to_reply("X-Check: bare-is-string\r\n");
        if (avp_check("$avp(n)", "lt/i:0x159")) append_to_reply("X-Check: lt-hex\r\n");
        if (avp_check("$avp(n)", "and/i:4")) append_to_reply("X-Check: and\r\n");
        if (!avp_check("$avp(s)", "eq/alice")) append_to_reply("X-Check: case\r\n");
        if (avp_check("$avp(s)", "eq/alice/i")) append_to_reply("X-Check: icase\r\n");
        if (avp_check("$avp(s)", "re/^al.c")) append_to_reply("X-Check: re\r\n");
        if (avp_check("$avp(s)", "fm/A*e")) append_to_reply("X-Check: fm\r\n");
        if (avp_check("$avp(s)", "lt/$avp(l)")) append_to_reply("X-Check: lt-avp\r\n");
        if (!avp_check("$avp(l)", "eq/a")) append_to_reply("X-Check: newest-only\r\n");
        if (avp_check("$avp(l)", "eq/a/g")) append_to_reply("X-Check: all\r\n");
    }
    if ($rU == "copy") {
        $avp(src) = "1";
        $avp(src) = "2";
        $avp(src) = "3";
        avp_copy("$avp(src)", "$avp(one)");
        avp_copy("$avp(src)", "$avp(all)/g");
        avp_copy("$avp(src)", "$avp(num)/n");
        $var(sum) = $avp(num) + 1;
        avp_copy("$avp(src)", "$avp(moved)/gd");
        append_to_reply("X-Copy: $avp(one) $(avp(all)[0])$(avp(all)[1])$(avp(all)[2]) $var(sum) $(avp(moved)[0])$(avp(moved)[2])\r\n");
        if (!is_avp_set("$avp(src)") && !avp_copy("$avp(src)", "$avp(one)"))
            append_to_reply("X-Copy-Src: gone\r\n");
    }
    if ($rU == "op") {
        $avp(x) = 10;
        avp_op("$avp(x)", "add/i:5");
        append_to_reply("X-Add: $(avp(x)[0]) $(avp(x)[1])\r\n");
        avp_op("$avp(x)/$avp(y)", "mul/i:0x2");
        append_to_reply("X-Mul: $(avp(y)[0]) $(avp(y)[1])\r\n");
        $var(d) = 3;
        avp_op("$avp(x)/$avp(z)", "div/$var(d)/d");
        append_to_reply("X-Div: $(avp(z)[0]) $(avp(z)[1])\r\n");
        if (!is_avp_set("$avp(x)")) append_to_reply("X-Div-Src: gone\r\n");
        $avp(w) = 7;
        avp_op("$avp(w)", "mod/i:0");
        append_to_reply("X-Mod: $avp(w)\r\n");
        $avp(t) = "text";
        if (!avp_op("$avp(t)", "sub/i:1")) append_to_reply("X-Op-Str: refused\r\n");
    }
    if ($rU == "subst") {
        $avp(u) = "sip:alice@a.com";
        $avp(u) = "sip:bob@a.com";
        avp_subst("$avp(u)", "/a.com/b.net/");
        append_to_reply("X-Subst: $(avp(u)[0]) $(avp(u)[1])\r\n");
        avp_subst("$avp(u)/$avp(v)/g", "/sip:/tel:/");
        append_to_reply("X-Subst-G: $(avp(v)[0]) $(avp(v)[1]) $(avp(u)[0])\r\n");
        if (!avp_subst("$avp(u)", "/nomatch/x/"))
            append_to_reply("X-Subst-None: yes\r\n");
    }
    if ($rU == "push") {
        $avp(dest) = "sip:carol@127.0.0.1:5099";
        avp_pushto("$ru", "$avp(dest)");
        append_to_reply("X-Ru: $ru\r\n");
        $avp(user) = "dave";
        avp_pushto("$ru/username", "$avp(user)");
        append_to_reply("X-Ru-User: $ru\r\n");
        $avp(proxy) = "sip:10.0.0.1:5070";
        if (avp_pushto("$du", "$avp(proxy)"))
            append_to_reply("X-Du: $du\r\n");
        $avp(port) = 5070;
        if (!avp_pushto("$du", "$avp(port)"))
            append_to_reply("X-Du-Int: refused\r\n");
        $avp(gw) = "sip:gw1@h.net";
        $avp(gw) = "sip:gw2@h.net";
        avp_pushto("$ru", "$avp(gw)/g");
        append_to_reply("X-Ru-G: $ru $(branch(uri)[0])\r\n");
    }
    if ($rU == "hidden") {
        $avp(h) = "sip:h@10.0.0.9";
        avp_copy("$avp(h)", "$avp(only_in_strings)");
        if (avp_pushto("$du", "$avp(only_in_strings)"))
            append_to_reply("X-Hidden: $du\r\n");
    }
    if ($rU == "delete-mem") {
        $avp(del) = 1;
        $avp(del) = 2;
        $avp(del) = 3;
        avp_delete("$avp(del)");
        append_to_reply("X-Del: $avp(del)\r\n");
        avp_delete("$avp(del)/g");
        if (!is_avp_set("$avp(del)") && !avp_delete("$avp(del)"))
            append_to_reply("X-Del-All: gone\r\n");
    }
    if ($rU == "isset") {
        $avp(e) = "";
        $avp(e) = 0;
        $avp(e) = "text";
        if (is_avp_set("$avp(e)")) append_to_reply("X-Set: any\r\n");
        if (is_avp_set("$avp(e)/s")) append_to_reply("X-Set: str\r\n");
        if (!is_avp_set("$avp(e)/n")) append_to_reply("X-Set: not-int\r\n");
        if (!is_avp_set("$avp(e)/e")) append_to_reply("X-Set: not-empty\r\n");
        if (is_avp_set("$avp(e)[1]/ne")) append_to_reply("X-Set: zero\r\n");
        if (is_avp_set("$avp(e)[2]/es")) append_to_reply("X-Set: empty-str\r\n");
        if (!is_avp_set("$avp(e)[3]")) append_to_reply("X-Set: past-end\r\n");
        if (!is_avp_set("$avp(never)")) append_to_reply("X-Set: never\r\n");
    }
    sl_send_reply(200, "OK");
}
"#;

fn ask(peer: &Peer, port: u16, user: &str, from: &str) -> String {
    peer.send(
        port,
        &format!(
            "OPTIONS sip:{user}@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-avpops-{user}-{from}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{from}>;tag=f\r\n\
             To: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: avpops-{user}-{from}-{port}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            peer.port
        ),
    );
    peer.recv("reply")
}

/// rsips on the config with `use_domain` as given (left out: the default), a fresh db_text
/// database holding one row by uuid.
fn start(name: &str, use_domain: Option<i64>) -> (common::Kill, u16, std::path::PathBuf) {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-avpops-{name}-{}", std::process::id()));
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
         1:u-1:::color:2:green\n\
         2:u-1:::limit:3:41\n",
    )
    .unwrap();
    let param = use_domain.map_or(String::new(), |u| {
        format!("modparam(\"avpops\", \"use_domain\", {u})")
    });
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("DB", &db.display().to_string())
            .replace("USE_DOMAIN", &param),
    )
    .unwrap();
    let server = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    (server, port, dir)
}

fn log_of(dir: &std::path::Path) -> impl Fn() -> String + '_ {
    move || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default()
}

#[test]
fn preferences_without_domain_by_default() {
    let (mut server, port, dir) = start("nodomain", None);
    let peer = Peer::new();
    let r = ask(&peer, port, "store", "alice@example.com");
    assert_eq!(header(&r, "X-Stored"), ["yes"], "{r}");
    let rows = std::fs::read_to_string(dir.join("db/usr_preferences")).unwrap_or_default();
    let r = ask(&peer, port, "read", "alice@example.com");
    // Two rows (newest value first), the last one loaded on top.
    assert_eq!(header(&r, "X-Pref"), ["blue,7"], "{r}\n{rows}");
    // use_domain 0: the user's rows whatever the domain.
    let r = ask(&peer, port, "read", "alice@other.com");
    assert_eq!(header(&r, "X-Pref"), ["blue,7"], "{r}");
    let r = ask(&peer, port, "byid", "alice@example.com");
    assert_eq!(header(&r, "X-Byid"), ["green 41"], "{r}");
    // An integer preference is an integer.
    assert_eq!(header(&r, "X-Limit"), ["42"], "{r}");
    let r = ask(&peer, port, "delete", "alice@other.com");
    assert_eq!(header(&r, "X-Deleted"), ["yes"], "{r}");
    let r = ask(&peer, port, "read", "alice@example.com");
    assert_eq!(header(&r, "X-Pref"), ["none"], "{r}");
    server.terminate(log_of(&dir));
}

#[test]
fn preferences_by_user_and_domain() {
    let (mut server, port, dir) = start("domain", Some(1));
    let peer = Peer::new();
    let r = ask(&peer, port, "store", "alice@example.com");
    assert_eq!(header(&r, "X-Stored"), ["yes"], "{r}");
    let r = ask(&peer, port, "read", "alice@other.com");
    assert_eq!(header(&r, "X-Pref"), ["none"], "{r}");
    let r = ask(&peer, port, "read", "alice@example.com");
    assert_eq!(header(&r, "X-Pref"), ["blue,7"], "{r}");
    // Another domain's delete leaves the rows.
    let _ = ask(&peer, port, "delete", "alice@other.com");
    let r = ask(&peer, port, "read", "alice@example.com");
    assert_eq!(header(&r, "X-Pref"), ["blue,7"], "{r}");
    let _ = ask(&peer, port, "delete", "alice@example.com");
    let r = ask(&peer, port, "read", "alice@example.com");
    assert_eq!(header(&r, "X-Pref"), ["none"], "{r}");
    server.terminate(log_of(&dir));
}

#[test]
fn avp_operations_in_memory() {
    let (mut server, port, dir) = start("memory", None);
    let peer = Peer::new();
    let from = "alice@example.com";

    let r = ask(&peer, port, "check", from);
    assert_eq!(
        header(&r, "X-Check"),
        [
            "eq-int",
            "bare-is-string",
            "lt-hex",
            "and",
            "case",
            "icase",
            "re",
            "fm",
            "lt-avp",
            "newest-only",
            "all"
        ],
        "{r}"
    );

    let r = ask(&peer, port, "copy", from);
    // One value; every value (reversed); cast to an integer; moved (reversed) and gone.
    assert_eq!(header(&r, "X-Copy"), ["3 123 4 13"], "{r}");
    assert_eq!(header(&r, "X-Copy-Src"), ["gone"], "{r}");

    let r = ask(&peer, port, "op", from);
    assert_eq!(header(&r, "X-Add"), ["15 10"], "{r}");
    // Every integer value of the source, each result on top.
    assert_eq!(header(&r, "X-Mul"), ["20 30"], "{r}");
    assert_eq!(header(&r, "X-Div"), ["3 5"], "{r}");
    assert_eq!(header(&r, "X-Div-Src"), ["gone"], "{r}");
    assert_eq!(header(&r, "X-Mod"), ["0"], "{r}");
    assert_eq!(header(&r, "X-Op-Str"), ["refused"], "{r}");

    let r = ask(&peer, port, "subst", from);
    // In place, the first value that matched only, now on top.
    assert_eq!(
        header(&r, "X-Subst"),
        ["sip:bob@b.net sip:alice@a.com"],
        "{r}"
    );
    assert_eq!(
        header(&r, "X-Subst-G"),
        ["tel:alice@a.com tel:bob@b.net sip:bob@b.net"],
        "{r}"
    );
    assert_eq!(header(&r, "X-Subst-None"), ["yes"], "{r}");

    let r = ask(&peer, port, "push", from);
    assert_eq!(header(&r, "X-Ru"), ["sip:carol@127.0.0.1:5099"], "{r}");
    assert_eq!(header(&r, "X-Ru-User"), ["sip:dave@127.0.0.1:5099"], "{r}");
    assert_eq!(header(&r, "X-Du"), ["sip:10.0.0.1:5070"], "{r}");
    assert_eq!(header(&r, "X-Du-Int"), ["refused"], "{r}");
    // The newest value first; the next one moves it into a branch.
    assert_eq!(header(&r, "X-Ru-G"), ["sip:gw1@h.net sip:gw2@h.net"], "{r}");

    // An AVP named only inside the functions' strings is an AVP all the same.
    let r = ask(&peer, port, "hidden", from);
    assert_eq!(header(&r, "X-Hidden"), ["sip:h@10.0.0.9"], "{r}");
    let r = ask(&peer, port, "delete-mem", from);
    assert_eq!(header(&r, "X-Del"), ["2"], "{r}");
    assert_eq!(header(&r, "X-Del-All"), ["gone"], "{r}");

    let r = ask(&peer, port, "isset", from);
    assert_eq!(
        header(&r, "X-Set"),
        [
            "any",
            "str",
            "not-int",
            "not-empty",
            "zero",
            "empty-str",
            "past-end",
            "never"
        ],
        "{r}"
    );
    server.terminate(log_of(&dir));
}

#[path = "../../../crates/db/tests/pg_server/mod.rs"]
mod pg_server;
#[path = "../../../crates/db/tests/ports/mod.rs"]
mod ports;

const QUERY_CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "db_text.so"
loadmodule "db_postgres.so"
loadmodule "avpops.so"
modparam("avpops", "db_url", "text://DB")
modparam("avpops", "db_url", "1 PG")
route {
    if ($rU == "rows") {
        avp_db_query("SELECT name, prio, note FROM gw ORDER BY prio", "$avp(name), $avp(prio);$avp(note)", 1);
        $var(r) = $rc;
        append_to_reply("X-Rows: $var(r) $(avp(name)[0]) $(avp(name)[1]) $(avp(prio)[1]) $(avp(note)[0]) $(avp(note)[1])\r\n");
        avp_db_query("SELECT name, prio FROM gw WHERE prio = 2", , 1);
        $var(r) = $rc;
        append_to_reply("X-Default: $var(r) $avp(1) $avp(2)\r\n");
    }
    if ($rU == "empty") {
        avp_db_query("SELECT name FROM gw WHERE prio > 100", "$avp(name)", 1);
        $var(r) = $rc;
        append_to_reply("X-Empty: $var(r)\r\n");
        avp_db_query("SELECT name FROM gw", "$avp(name)");
        $var(r) = $rc;
        append_to_reply("X-Text: $var(r)\r\n");
    }
    sl_send_reply(200, "OK");
}
"#;

#[test]
fn db_query_into_avps() {
    let pg = pg_server::PgServer::start("avpops", ports::free_port());
    pg.psql(
        "CREATE TABLE gw (name VARCHAR(32), prio INTEGER, note VARCHAR(32));\n\
         INSERT INTO gw VALUES ('gw-a', 1, NULL), ('gw-b', 2, 'backup');\n\
         GRANT ALL ON ALL TABLES IN SCHEMA public TO opensips;",
        "opensips",
    );
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-avpops-query-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("db")).unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        QUERY_CONFIG
            .replace("PORT", &port.to_string())
            .replace("DB", &dir.join("db").display().to_string())
            .replace("PG", &pg.url()),
    )
    .unwrap();
    let mut server = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let peer = Peer::new();
    let r = ask(&peer, port, "rows", "alice@example.com");
    // The first row on top; NULL as `<null>`.
    assert_eq!(header(&r, "X-Rows"), ["1 gw-a gw-b 2 <null> backup"], "{r}");
    // Without a list, $avp(1), $avp(2) …
    assert_eq!(header(&r, "X-Default"), ["1 gw-b 2"], "{r}");
    let r = ask(&peer, port, "empty", "alice@example.com");
    assert_eq!(header(&r, "X-Empty"), ["-2"], "{r}");
    // The default database (id 0) is db_text, which takes no raw SQL.
    assert_eq!(header(&r, "X-Text"), ["-1"], "{r}");
    server.terminate(log_of(&dir));
}

#[test]
fn bad_parameters_stop_the_start() {
    let base = "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\n\
                loadmodule \"avpops.so\"\n";
    let err = common::refused_start(
        "avpops-op",
        &format!("{base}route {{\n    $avp(x) = 1;\n    avp_op(\"$avp(x)\", \"pow/i:2\");\n}}\n"),
    );
    assert!(err.contains("rsips.cfg:6:"), "{err}");
    assert!(err.contains("unknown operator `pow`"), "{err}");
    let err = common::refused_start(
        "avpops-int",
        &format!("{base}route {{\n    avp_op(\"$avp(x)\", \"add/345\");\n}}\n"),
    );
    assert!(
        err.contains("rsips.cfg:5:") && err.contains("value must be int"),
        "{err}"
    );
    let err = common::refused_start(
        "avpops-scheme",
        &format!(
            "{base}modparam(\"avpops\", \"db_scheme\", \"s1:table=subscriber\")\nroute {{ }}\n"
        ),
    );
    assert!(
        err.contains("avpops: db_scheme is not available in rsips yet"),
        "{err}"
    );
}
