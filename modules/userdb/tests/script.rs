//! group and alias_db from a compiled script over db_text tables.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;

use engine::Script;

fn compile(dir: &Path, params: &str, routes: &str) -> Script {
    let text = format!(
        "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"db_text.so\"\n\
         loadmodule \"group.so\"\nloadmodule \"alias_db.so\"\n\
         modparam(\"group|alias_db\", \"db_url\", \"text://{}\")\n{params}\n{routes}",
        dir.display()
    );
    let s = testkit::compile(
        &text,
        vec![&testkit::DB_TEXT, &userdb::GROUP, &userdb::ALIAS_DB],
    );
    userdb::start(&s, &db::Options::default()).unwrap();
    s
}

fn run(script: &Script, ruri: &str) -> String {
    let raw = format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
         From: <sip:alice@example.com>;tag=1\r\nTo: <{ruri}>\r\nCall-ID: c\r\n\
         CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    testkit::run(script, &mut testkit::request(&raw, "192.0.2.1:5060"), &[])
}

#[test]
fn groups_and_aliases() {
    let d = std::env::temp_dir().join(format!("rsips-userdb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("grp"),
        "id(int,auto) username(string) domain(string) grp(string) last_modified(int)\n\
         :alice:example.com:ld:0\n:bob:example.com:local:0\n",
    )
    .unwrap();
    std::fs::write(
        d.join("re_grp"),
        "id(int,auto) reg_exp(string) group_id(int)\n:^sip\\:1[0-9]+@:7\n:example\\\\.com$:9\n",
    )
    .unwrap();
    std::fs::write(
        d.join("dbaliases"),
        "id(int,auto) alias_username(string) alias_domain(string) username(string) domain(string)\n\
         :sales:example.com:alice:example.com\n:sales:example.com:bob:example.com\n\
         :support:other.org:carol:example.com\n",
    )
    .unwrap();
    let s = compile(
        &d,
        "",
        "route {\n\
         if (db_is_user_in(\"From\", \"ld\")) xlog(\"alice ld\");\n\
         if (!db_is_user_in(\"From\", \"local\")) xlog(\"alice not local\");\n\
         if (db_is_user_in(\"sip:bob@example.com\", \"local\")) xlog(\"bob local\");\n\
         if (db_get_user_group(\"Request-URI\", $avp(g))) xlog(\"groups $(avp(g)[*])\");\n\
         if (alias_db_lookup(\"dbaliases\")) xlog(\"alias -> $ru\");\n\
         if (alias_db_find(\"dbaliases\", \"sip:carol@example.com\", $var(a), \"r\")) xlog(\"reverse $var(a)\");\n\
         if (!alias_db_find(\"dbaliases\", \"sip:support@elsewhere.org\", $var(a))) xlog(\"no alias\");\n\
         if (alias_db_find(\"dbaliases\", \"sip:support@elsewhere.org\", $var(a), \"d\")) xlog(\"by user $var(a)\");\n}",
    );
    assert_eq!(
        run(&s, "sip:sales@example.com"),
        "alice ld|alice not local|bob local|groups 9|alias -> sip:alice@example.com|\
         reverse sip:support@other.org|no alias|by user sip:carol@example.com"
    );
    // Both expressions match: tried last row first (9, then 7), each pushed onto the AVP,
    // so the newest, 7, reads first.
    assert_eq!(
        run(&s, "sip:1234@example.com").split('|').nth(3),
        Some("groups 7, 9")
    );
}
