//! sqlops from a compiled script over a db_text database: the JSON-described statements,
//! results into AVPs (every row, the first on top) and into variables (the first row), the
//! return codes, and what the load-time check refuses.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;

use engine::Script;

fn db_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rsips-sqlops-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("lcr"),
        "id(int,auto) did(string) gw(string) prio(int,null)\n\
         :100:sip\\:gw1.example.com:10\n:100:sip\\:gw2.example.com:20\n:200:sip\\:gw3.example.com:\n",
    )
    .unwrap();
    d
}

fn compile(dir: &Path, routes: &str) -> Result<Script, String> {
    let text = format!(
        "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"db_text.so\"\n\
         loadmodule \"sqlops.so\"\nmodparam(\"sqlops\", \"db_url\", \"text://{}\")\n\
         modparam(\"sqlops\", \"db_url\", \"2 text://{}\")\n{routes}",
        dir.display(),
        dir.display()
    );
    let script = testkit::try_compile(&text, vec![&testkit::DB_TEXT, &sqlops::MODULE])?;
    sqlops::start(&script, &db::Options::default()).unwrap();
    Ok(script)
}

fn run(script: &Script) -> String {
    let raw = "OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
               From: <sip:a@example.com>;tag=1\r\nTo: <sip:x@example.com>\r\nCall-ID: c\r\n\
               CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    testkit::run(script, &mut testkit::request(raw, "192.0.2.1:5060"), &[])
}

#[test]
fn selects_fill_avps_with_every_row_and_variables_with_the_first() {
    let d = db_dir("select");
    let s = compile(
        &d,
        "route {\n\
         $var(r) = sql_select('[\"gw\",\"prio\"]', \"lcr\", '{\"did\": \"100\"}', \"prio\", \"$avp(gw);$avp(prio)\");\n\
         xlog(\"$var(r) $avp(gw) $avp(prio)\");\n\
         $avp(gw) = NULL; $avp(prio) = NULL;\n\
         xlog(\"$avp(gw) $avp(prio)\");\n\
         sql_select_one('[\"gw\",\"prio\"]', \"lcr\", '{\"did\": \"200\"}', , \"$var(gw);$var(prio)\");\n\
         xlog(\"$var(gw) $var(prio)\");\n\
         $var(r) = sql_select('[\"gw\"]', \"lcr\", '{\"did\": \"999\"}', , \"$avp(none)\");\n\
         xlog(\"none $var(r)\");\n\
         sql_select_one(, \"lcr\", '{\"did\": \"200\"}', , \"$var(id);$var(did);$var(gw);$var(p)\");\n\
         xlog(\"all columns $var(id) $var(did) $var(gw)\");\n}",
    )
    .unwrap();
    assert_eq!(
        run(&s),
        "1 sip:gw1.example.com 10|sip:gw2.example.com 20|sip:gw3.example.com <null>|none -2|\
         all columns 3 200 sip:gw3.example.com"
    );
}

#[test]
fn writes_change_the_table() {
    let d = db_dir("write");
    let s = compile(
        &d,
        "route {\n\
         sql_insert(\"lcr\", '{\"did\": \"300\", \"gw\": \"sip:new.example.com\", \"prio\": 5}');\n\
         sql_update('{\"prio\": 7}', \"lcr\", '{\"did\": \"300\"}');\n\
         sql_select_one('[\"gw\",\"prio\"]', \"lcr\", '{\"did\": \"300\"}', , \"$var(gw);$var(p)\", 2);\n\
         xlog(\"$var(gw) $var(p)\");\n\
         sql_delete(\"lcr\", '{\"did\": \"300\"}');\n\
         $var(r) = sql_select_one('[\"gw\"]', \"lcr\", '{\"did\": \"300\"}', , \"$var(gw)\");\n\
         xlog(\"after delete $var(r)\");\n\
         $var(r) = sql_query(\"select gw from lcr\", \"$avp(gw)\");\n\
         xlog(\"raw on db_text $var(r)\");\n\
         $var(r) = sql_update('{\"prio\": {\">\": 1}}', \"lcr\");\n\
         xlog(\"operator $var(r)\");\n}",
    )
    .unwrap();
    assert_eq!(
        run(&s)
            .split('|')
            .filter(|l| !l.starts_with("sqlops:"))
            .collect::<Vec<_>>()
            .join("|"),
        "sip:new.example.com 7|after delete -2|raw on db_text -1|operator -1"
    );
}

#[test]
fn result_lists_must_name_writable_variables() {
    let d = db_dir("check");
    let err = compile(
        &d,
        "route { sql_query(\"select 1\", \"$avp(a);$ru_q;$si\"); }",
    )
    .err()
    .unwrap();
    assert!(err.contains("$si"), "{err}");
    let err = compile(&d, "route { sql_query(\"select 1\", $var(list)); }")
        .err()
        .unwrap();
    assert!(err.contains("literal"), "{err}");
}
