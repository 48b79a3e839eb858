//! The dispatcher from a compiled script over a db_text table, as OpenSIPS behaves: the
//! algorithms, failover through the AVPs, marking, the lookups, the MI commands, reloads and a
//! database that cannot be read. The partitions are the process's: every test here shares one
//! table and works on set ids of its own.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use engine::{MsgCtx, Script};
use serde_json::json;

const HEADER: &str = "id(int,auto) setid(int) destination(string) socket(string,null) state(int) \
probe_mode(int) weight(string) priority(int) attrs(string,null) description(string,null)\n";

/// The table every test reads (a set per test).
const ROWS: &str = "\
:1:sip\\:10.0.1.1\\:5060::0:0:1:0::\n\
:1:sip\\:10.0.1.2\\:5060::0:0:1:0::\n\
:1:sip\\:10.0.1.3\\:5060::0:0:1:0::\n\
:2:sip\\:10.0.2.1::0:0:2:0::\n\
:2:sip\\:10.0.2.2::0:0:1:0::\n\
:3:sip\\:10.0.3.1\\:5070::0:0:1:0:a=1:\n\
:3:sip\\:10.0.3.2\\:5070::1:0:1:0:a=2:\n\
:3:sip\\:10.0.3.3\\:5070::0:0:1:0:a=3:\n\
:3:sip\\:10.0.3.9\\:5070::0:0:1:0:last:\n\
:4:sip\\:10.0.4.1\\:5080::0:0:1:0::\n\
:4:sip\\:10.0.4.2\\:5080::0:0:1:0::\n\
:5:sip\\:10.0.5.1::0:0:1:0:carrier=x:first gateway\n\
:5:sip\\:10.0.5.2::2:0:1:0::\n\
:5:sip\\:10.0.5.3::1:0:1:0::\n\
:6:sip\\:10.0.6.1::0:0:1:1::low\n\
:6:sip\\:10.0.6.2::0:0:1:5::high\n\
:7:sip\\:10.0.7.1::0:0:1:0::\n\
:7:sip\\:10.0.7.2::0:0:1:0::\n\
:8:sip\\:10.0.8.1::0:0:1:0::\n\
:8:sip\\:10.0.8.2::0:0:1:0::\n\
:8:sip\\:10.0.8.3::0:0:1:0::\n";

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rsips-ds-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_db(dir: &Path, rows: &str, version: &str) {
    std::fs::write(dir.join("dispatcher"), format!("{HEADER}{rows}")).unwrap();
    std::fs::write(
        dir.join("version"),
        format!("table_name(str) table_version(int)\n{version}"),
    )
    .unwrap();
}

fn compile(extra: &str) -> Script {
    let text = format!(
        "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\n\
         loadmodule \"tm.so\"\nloadmodule \"db_text.so\"\nloadmodule \"dispatcher.so\"\n{extra}"
    );
    testkit::compile(
        &text,
        vec![&sl::SL, &tm::MODULE, &testkit::DB_TEXT, &dispatcher::MODULE],
    )
}

/// The shared table, loaded once; the script compiled against it.
fn setup(routes: &str) -> Script {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = temp("shared");
        write_db(&d, ROWS, "dispatcher:9\n");
        let script = compile(&format!(
            "modparam(\"dispatcher\", \"db_url\", \"text://{}\")\n\
             modparam(\"dispatcher\", \"attrs_avp\", \"$avp(ds_attrs)\")\n\
             modparam(\"dispatcher\", \"hash_pvar\", \"$fU\")\nroute {{ exit; }}",
            d.display()
        ));
        dispatcher::start(&script, &db::Options::default()).unwrap();
        d
    });
    compile(&format!(
        "modparam(\"dispatcher\", \"db_url\", \"text://{}\")\n\
         modparam(\"dispatcher\", \"attrs_avp\", \"$avp(ds_attrs)\")\n\
         modparam(\"dispatcher\", \"hash_pvar\", \"$fU\")\n{routes}",
        dir.display()
    ))
}

fn invite(call: &str, from_user: &str) -> String {
    format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-{call}\r\n\
         From: <sip:{from_user}@example.com>;tag=f\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: {call}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Runs the main route over `raw` from `source`: the log lines and the context after it.
fn run(script: &Script, raw: &str) -> (Vec<String>, MsgCtx) {
    let mut ctx = testkit::request(raw, "192.0.2.10:5070");
    let lines = testkit::run_lines(script, &mut ctx);
    (lines, ctx)
}

#[test]
fn hash_over_call_id_is_stable_and_spreads_over_the_set() {
    let s = setup("route { if (ds_select_dst(1, 0)) xlog(\"$du\"); }");
    let pick = |call: &str| run(&s, &invite(call, "alice")).0.join("");
    let first = pick("call-a");
    assert!(first.starts_with("sip:10.0.1."), "{first}");
    assert_eq!(
        pick("call-a"),
        first,
        "the same Call-ID, the same destination"
    );
    let seen: std::collections::HashSet<String> =
        (0..60).map(|i| pick(&format!("call-{i}"))).collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[test]
fn weighted_round_robin_picks_each_destination_weight_times() {
    let s = setup("route { ds_select_dst(2, 4); xlog(\"$du\"); }");
    let seq: Vec<String> = (0..6)
        .map(|i| run(&s, &invite(&format!("rr-{i}"), "a")).0.join(""))
        .collect();
    // 10.0.2.1 has weight 2, 10.0.2.2 weight 1: the pattern repeats every three picks.
    let a = "sip:10.0.2.1".to_owned();
    let b = "sip:10.0.2.2".to_owned();
    let pattern: Vec<&String> = seq.iter().collect();
    let twice_a = pattern
        .windows(3)
        .any(|w| *w[0] == a && *w[1] == a && *w[2] == b);
    assert!(twice_a, "{seq:?}");
    assert_eq!(seq.iter().filter(|d| **d == a).count(), 4, "{seq:?}");
    assert_eq!(seq.iter().filter(|d| **d == b).count(), 2, "{seq:?}");
}

#[test]
fn failover_walks_the_active_destinations_then_ends() {
    // Set 3: .1, .2 (inactive), .3, .9 — algorithm 8 starts at the first.
    let s = setup(
        "route { ds_select_dst(3, 8, \"f\"); xlog(\"$du $avp(ds_cnt_failover) $avp(ds_grp_failover) $avp(ds_attrs)|\");\n\
         while (ds_next_dst()) { xlog(\"$du $avp(ds_attrs)|\"); } xlog(\"end\"); }",
    );
    let (lines, _) = run(&s, &invite("fo-1", "a"));
    assert_eq!(
        lines.join(""),
        "sip:10.0.3.1:5070 3 3 a=1|sip:10.0.3.3:5070 a=3|sip:10.0.3.9:5070 last|end"
    );
    // Without `f` nothing is stored to fail over to.
    let s = setup(
        "route { ds_select_dst(3, 8); if (!ds_next_dst()) xlog(\"none $avp(ds_cnt_failover)\"); }",
    );
    assert_eq!(run(&s, &invite("fo-2", "a")).0.join(""), "none 0");
    // max_res 2: the chosen one and one more.
    let s = setup("route { ds_select_dst(3, 8, \"f\", , 2); xlog(\"$avp(ds_cnt_failover)\"); }");
    assert_eq!(run(&s, &invite("fo-3", "a")).0.join(""), "2");
}

#[test]
fn use_default_keeps_the_last_destination_for_last() {
    // Set 3 with `d`: .9 is the default, tried after the others.
    let s = setup(
        "route { ds_select_dst(3, 8, \"fd\"); xlog(\"$du|\"); while (ds_next_dst()) xlog(\"$du|\"); }",
    );
    assert_eq!(
        run(&s, &invite("def-1", "a")).0.join(""),
        "sip:10.0.3.1:5070|sip:10.0.3.3:5070|sip:10.0.3.9:5070|"
    );
}

#[test]
fn marking_takes_a_destination_out_and_probing_needs_the_threshold() {
    let sel = setup("route { ds_select_dst(4, 8, \"f\"); xlog(\"$du\"); }");
    let mark = setup("route { ds_select_dst(4, 8, \"f\"); ds_mark_dst(\"p\"); }");
    assert_eq!(
        run(&sel, &invite("m-0", "a")).0.join(""),
        "sip:10.0.4.1:5080"
    );
    // Two failures are below ds_probing_threshold (3): still chosen.
    run(&mark, &invite("m-1", "a"));
    run(&mark, &invite("m-2", "a"));
    assert_eq!(
        run(&sel, &invite("m-3", "a")).0.join(""),
        "sip:10.0.4.1:5080"
    );
    run(&mark, &invite("m-4", "a"));
    assert_eq!(
        run(&sel, &invite("m-5", "a")).0.join(""),
        "sip:10.0.4.2:5080"
    );
    let count = setup(
        "route { ds_count(4, \"p\", $var(p)); ds_count(4, \"a\", $var(a)); xlog(\"$var(p) $var(a)\"); }",
    );
    assert_eq!(run(&count, &invite("m-6", "a")).0.join(""), "1 1");
    // The last one down: nothing to select.
    let down = setup(
        "route { ds_select_dst(4, 8, \"f\"); ds_mark_dst(); if (!ds_select_dst(4, 8)) xlog(\"none\"); }",
    );
    assert_eq!(run(&down, &invite("m-7", "a")).0.join(""), "none");
    let up = setup("route { ds_select_dst(4, 8, \"f\"); ds_mark_dst(\"a\"); }");
    // Nothing is active, so there is no current destination to mark: -1, no change.
    run(&up, &invite("m-8", "a"));
    assert_eq!(run(&count, &invite("m-9", "a")).0.join(""), "1 0");
}

#[test]
fn lookups_by_address_count_and_attributes() {
    let s = setup(
        "route {\n\
         if (ds_is_in_list(\"10.0.3.3\", 5070)) xlog(\"in $avp(ds_attrs)|\");\n\
         if (!ds_is_in_list(\"10.0.3.3\", 5071)) xlog(\"port|\");\n\
         if (ds_is_in_list(\"10.0.3.3\", 0, 3)) xlog(\"any port|\");\n\
         if (!ds_is_in_list(\"10.0.3.3\", 0, 1)) xlog(\"other set|\");\n\
         if (!ds_is_in_list(\"10.0.3.2\", 0, -1, , 1)) xlog(\"inactive|\");\n\
         if (ds_is_in_list(\"10.0.3.2\", 0, -1, , 0)) xlog(\"any state|\");\n\
         if (ds_is_in_list(\"10.0.5.1\", 0, -1, , 0, \"carrier=*\")) xlog(\"pattern|\");\n\
         if (!ds_is_in_list(\"10.0.5.2\", 0, -1, , 0, \"carrier=*\")) xlog(\"no attrs|\");\n\
         ds_count(5, \"a\", $var(a)); ds_count(5, \"i\", $var(i)); ds_count(5, \"p\", $var(p));\n\
         ds_count(5, \"ip\", $var(ip)); ds_count(5, \"\", $var(all));\n\
         xlog(\"$var(a) $var(i) $var(p) $var(ip) $var(all)\"); }",
    );
    assert_eq!(
        run(&s, &invite("l-1", "a")).0.join(""),
        "in a=3|port|any port|other set|inactive|any state|pattern|no attrs|1 1 1 2 3"
    );
}

#[test]
fn priority_orders_the_set_and_domain_rewrites_the_request_uri() {
    let s = setup("route { ds_select_domain(6, 8); xlog(\"$ru $du\"); }");
    assert_eq!(
        run(&s, &invite("p-1", "a")).0.join(""),
        "sip:bob@10.0.6.2 <null>",
        "the higher priority value first; $du untouched"
    );
}

#[test]
fn hash_algorithms_read_their_inputs() {
    // From user (7 with hash_pvar = $fU) and From URI (1): the same user, the same pick.
    for alg in [1, 7] {
        let s = setup(&format!(
            "route {{ ds_select_dst(7, {alg}); xlog(\"$du\"); }}"
        ));
        let a1 = run(&s, &invite("h-1", "carol")).0.join("");
        let a2 = run(&s, &invite("h-2", "carol")).0.join("");
        assert_eq!(a1, a2, "alg {alg}");
        let all: std::collections::HashSet<String> = (0..40)
            .map(|i| {
                run(&s, &invite(&format!("h-{i}"), &format!("user{i}")))
                    .0
                    .join("")
            })
            .collect();
        assert_eq!(all.len(), 2, "alg {alg}: {all:?}");
    }
    // 5 with credentials hashes the user name; without, it is round-robin.
    let s = setup("route { ds_select_dst(7, 5); xlog(\"$du\"); }");
    let with_auth = |call: &str| {
        invite(call, "x").replace(
            "Max-Forwards",
            "Authorization: Digest username=\"dave\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"0\"\r\nMax-Forwards",
        )
    };
    let d1 = run(&s, &with_auth("a-1")).0.join("");
    let d2 = run(&s, &with_auth("a-2")).0.join("");
    assert_eq!(d1, d2);
    let rr: std::collections::HashSet<String> = (0..4)
        .map(|i| run(&s, &invite(&format!("a-{i}"), "x")).0.join(""))
        .collect();
    assert_eq!(rr.len(), 2);
}

fn mi() -> ::mi::Mi {
    let mut mi = ::mi::Mi::new();
    let script = Arc::new(setup("route { exit; }"));
    dispatcher::mi::commands(&mut mi, Arc::new(move || Arc::clone(&script)));
    mi
}

fn call(mi: &::mi::Mi, method: &str, params: serde_json::Value) -> serde_json::Value {
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let out = mi.handle(req.to_string().as_bytes()).unwrap();
    serde_json::from_str(&out).unwrap()
}

#[test]
fn mi_lists_and_sets_states() {
    let mi = mi();
    let list = call(&mi, "dispatcher:list", json!({"full": "1"}));
    let parts = &list["result"]["PARTITIONS"];
    assert_eq!(parts[0]["name"], "default");
    let set5 = parts[0]["SETS"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == 5)
        .unwrap();
    let d = &set5["Destinations"][0];
    assert_eq!(d["URI"], "sip:10.0.5.1");
    assert_eq!(d["state"], "Active");
    assert_eq!(d["attr"], "carrier=x");
    assert_eq!(d["weight"], 1);
    assert_eq!(d["priority"], 0);
    assert_eq!(d["description"], "first gateway");
    assert_eq!(d["resolved_addresses"], json!(["10.0.5.1:5060"]));
    assert_eq!(set5["Destinations"][1]["state"], "Probing");
    assert_eq!(set5["Destinations"][2]["state"], "Inactive");
    // Set 8: the MI takes one destination out of the rotation and puts it back.
    let out = call(&mi, "ds_set_state", json!(["i", "8", "sip:10.0.8.2"]));
    assert_eq!(out["result"], "OK", "{out}");
    let s = setup("route { ds_select_dst(8, 4); xlog(\"$du|\"); }");
    let picks: String = (0..6)
        .map(|i| run(&s, &invite(&format!("mi-{i}"), "a")).0.join(""))
        .collect();
    assert!(!picks.contains("10.0.8.2"), "{picks}");
    assert!(
        picks.contains("10.0.8.1") && picks.contains("10.0.8.3"),
        "{picks}"
    );
    let out = call(
        &mi,
        "dispatcher:set_state",
        json!({"state": "a", "group": "default:8", "address": "sip:10.0.8.2"}),
    );
    assert_eq!(out["result"], "OK", "{out}");
    let picks: String = (0..6)
        .map(|i| run(&s, &invite(&format!("mj-{i}"), "a")).0.join(""))
        .collect();
    assert!(picks.contains("10.0.8.2"), "{picks}");
    // Errors as OpenSIPS words them.
    let out = call(
        &mi,
        "dispatcher:set_state",
        json!(["x", "8", "sip:10.0.8.2"]),
    );
    assert_eq!(out["error"]["message"], "Bad state value", "{out}");
    let out = call(
        &mi,
        "dispatcher:set_state",
        json!(["a", "8", "sip:10.9.9.9"]),
    );
    assert_eq!(out["error"]["code"], 404, "{out}");
    let out = call(
        &mi,
        "dispatcher:set_state",
        json!(["a", "nope:8", "sip:10.0.8.2"]),
    );
    assert_eq!(out["error"]["message"], "ERROR Unknown partition", "{out}");
    let out = call(&mi, "dispatcher:list", json!({"partition": "nope"}));
    assert_eq!(out["error"]["message"], "ERROR Unknown partition", "{out}");
}

#[test]
fn a_database_that_cannot_be_read_stops_the_start_with_the_reason() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("ver", ROWS, "", "no row for it there"),
        ("ver8", ROWS, "dispatcher:8\n", "version 8"),
        (
            "broken",
            ":x:sip\\:a::0:0:1:0::\n",
            "dispatcher:9\n",
            "dispatcher:2:2:",
        ),
    ];
    for (name, rows, version, want) in cases {
        let d = temp(name);
        write_db(&d, rows, version);
        let s = compile(&format!(
            "modparam(\"dispatcher\", \"db_url\", \"text://{}\")\nroute {{ exit; }}",
            d.display()
        ));
        let err = dispatcher::start(&s, &db::Options::default()).unwrap_err();
        assert!(err.contains(want), "{name}: {err}");
    }
    let s = compile(
        "modparam(\"dispatcher\", \"db_url\", \"mysql://u:p@localhost/opensips\")\nroute { exit; }",
    );
    let err = dispatcher::start(&s, &db::Options::default()).unwrap_err();
    assert!(err.contains("db_mysql"), "{err}");
    let s = compile("route { exit; }");
    let err = dispatcher::start(&s, &db::Options::default()).unwrap_err();
    assert!(err.contains("db_url"), "{err}");
}

#[test]
fn reload_swaps_the_sets_keeps_states_and_survives_a_broken_table() {
    let d = temp("reload");
    write_db(
        &d,
        ":1:sip\\:10.1.0.1::0:0:1:0::\n:1:sip\\:10.1.0.2::0:0:1:0::\n",
        "dispatcher:9\n",
    );
    let s = compile(&format!(
        "modparam(\"dispatcher\", \"partition\", \"rl: db_url = text://{}; attrs_avp = $avp(rl_attrs)\")\nroute {{ exit; }}",
        d.display()
    ));
    let p = {
        // Loaded on its own (start would replace the shared partitions).
        let settings = dispatcher::partition::Settings::of(&s);
        let part =
            dispatcher::partition::open_partition(&s, "rl", &db::Options::default()).unwrap();
        assert!(part.set_state(
            &settings,
            1,
            "sip:10.1.0.2",
            dispatcher::partition::NewState::Inactive,
            "test"
        ));
        assert!(!part.set_state(
            &settings,
            2,
            "sip:10.1.0.2",
            dispatcher::partition::NewState::Inactive,
            "test"
        ));
        part
    };
    // The new state is in the table (persistent_state), to be written back with the rest.
    let table = db::connect(&format!("text://{}", d.display()), &db::Options::default()).unwrap();
    let state = table
        .query(
            "dispatcher",
            &["state"],
            &[("destination", db::Value::Str("sip:10.1.0.2".into()))],
        )
        .unwrap();
    assert_eq!(state, vec![vec![db::Value::Int(1)]]);
    let settings = dispatcher::partition::Settings::of(&s);
    std::fs::write(
        d.join("dispatcher"),
        format!("{HEADER}:1:sip\\:10.1.0.2::0:0:1:0::\n:1:sip\\:10.1.0.3::0:0:1:0::\n"),
    )
    .unwrap();
    db::text::open("", &d, &Default::default())
        .reload(None)
        .unwrap();
    assert_eq!(p.reload(&settings, true).unwrap(), 2);
    let states: Vec<(String, &str)> = p.sets().sets[0]
        .dests
        .iter()
        .map(|d| (d.uri.clone(), d.state_name()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("sip:10.1.0.2".into(), "Inactive"),
            ("sip:10.1.0.3".into(), "Active")
        ]
    );
    assert_eq!(p.reload(&settings, false).unwrap(), 2);
    assert_eq!(p.sets().sets[0].dests[0].state_name(), "Active");
    // A table that no longer reads: the error, and the sets as they were.
    std::fs::write(d.join("version"), "table_name(str) table_version(int)\n").unwrap();
    db::text::open("", &d, &Default::default())
        .reload(None)
        .unwrap();
    let err = p.reload(&settings, true).unwrap_err();
    assert!(err.contains("no row"), "{err}");
    assert_eq!(p.sets().sets[0].dests.len(), 2);
}
