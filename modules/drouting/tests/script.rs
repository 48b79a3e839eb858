//! drouting from a compiled script over db_text tables: longest prefix, priority, time,
//! groups from dr_groups, carriers, strip and prefix, failover, gateway recognition and the
//! MI. The routing data is the process's: every test shares one set of tables.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::sync::OnceLock;

use engine::Script;
use serde_json::json;

fn db_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("rsips-dr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let w = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
        w(
            "version",
            "table_name(str) table_version(int)\ndr_gateways:6\ndr_rules:4\ndr_carriers:3\ndr_groups:2\n",
        );
        w(
            "dr_gateways",
            "id(int,auto) gwid(string) type(int) address(string) strip(int) pri_prefix(string,null) \
             attrs(string,null) probe_mode(int) state(int) socket(string,null) description(string,null)\n\
             :gw1:0:10.0.0.1\\:5060:2:00:gw one:0:0::\n\
             :gw2:0:10.0.0.2:0::gw two:0:0::\n\
             :gw3:1:10.0.0.3\\:5070:0:::0:0::\n\
             :gw4:0:10.0.0.4:0:::0:1::\n",
        );
        w(
            "dr_carriers",
            "id(int,auto) carrierid(string) gwlist(string) flags(int) sort_alg(string) state(int) \
             attrs(string,null) description(string,null)\n\
             :cr1:gw3,gw2:0:N:0:carrier one:\n\
             :cr2:gw3,gw2:1:N:0::\n",
        );
        w(
            "dr_rules",
            "ruleid(int,auto) groupid(string) prefix(string) timerec(string,null) priority(int) \
             routeid(string,null) gwlist(string,null) sort_alg(string) sort_profile(int,null) \
             attrs(string,null) description(string,null)\n\
             :1:4021::0::gw1,gw2:N::rule 4021:\n\
             :1:40::0::gw2:N::rule 40:\n\
             :1:4022::5::gw4,#cr1:N::high:\n\
             :1:4022::1::gw1:N::low:\n\
             :1:4023:20000101T000000|20000101T010000:9::gw3:N::expired:\n\
             :1:4023::1::#cr2:N::only first:\n\
             :2:::0::gw3:N::group 2 default:\n",
        );
        w(
            "dr_groups",
            "id(int,auto) username(string) domain(string,null) groupid(int) description(string,null)\n\
             :bob:example.com:2:\n",
        );
        d
    })
}

/// The tests share one routing table and one of them switches gateways off: they run one at
/// a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn setup(routes: &str) -> Script {
    static STARTED: OnceLock<()> = OnceLock::new();
    let text = format!(
        "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"db_text.so\"\n\
         loadmodule \"drouting.so\"\nmodparam(\"drouting\", \"db_url\", \"text://{}\")\n{routes}",
        db_dir().display()
    );
    let s = testkit::compile(&text, vec![&testkit::DB_TEXT, &drouting::MODULE]);
    STARTED.get_or_init(|| drouting::start(&s, &db::Options::default()).unwrap());
    s
}

fn run(script: &Script, number: &str, from: &str, source: &str) -> String {
    let raw = format!(
        "INVITE sip:{number}@trunk.example.com;user=phone SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
         From: <sip:{from}>;tag=1\r\nTo: <sip:{number}@trunk.example.com>\r\nCall-ID: c\r\n\
         CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    testkit::run(script, &mut testkit::request(&raw, source), &[])
}

const WALK: &str = "route {\n\
    if (!do_routing(1, , , $var(rule), $var(gw))) { xlog(\"none\"); exit; }\n\
    xlog(\"$ru [$var(rule)] [$var(gw)]\");\n\
    while (use_next_gw(, $var(gw))) xlog(\"$ru [$var(gw)]\");\n}";

#[test]
fn the_longest_prefix_then_failover_with_strip_and_prefix() {
    let _serial = serial();
    let s = setup(WALK);
    // 40215551234: rule 4021 (gw1: strip 2, prefix 00; then gw2).
    assert_eq!(
        run(&s, "40215551234", "alice@example.com", "192.0.2.9:5060"),
        "sip:00215551234@10.0.0.1:5060;user=phone [rule 4021] [gw one]|\
         sip:40215551234@10.0.0.2;user=phone [gw two]"
    );
    // 4099: only the shorter prefix 40.
    assert_eq!(
        run(&s, "4099", "alice@example.com", "192.0.2.9:5060"),
        "sip:4099@10.0.0.2;user=phone [rule 40] [gw two]"
    );
    assert_eq!(
        run(&s, "5000", "alice@example.com", "192.0.2.9:5060"),
        "none"
    );
}

#[test]
fn priority_carriers_and_disabled_gateways() {
    let _serial = serial();
    let s = setup(WALK);
    // 4022: the priority 5 rule; gw4 is disabled (state 1); carrier cr1 gives gw3, gw2.
    assert_eq!(
        run(&s, "40221", "alice@example.com", "192.0.2.9:5060"),
        "sip:40221@10.0.0.3:5070;user=phone [high] []|sip:40221@10.0.0.2;user=phone [gw two]"
    );
    // 4023: the priority 9 rule's time is over; cr2 takes only its first gateway.
    assert_eq!(
        run(&s, "40231", "alice@example.com", "192.0.2.9:5060"),
        "sip:40231@10.0.0.3:5070;user=phone [only first] []"
    );
}

#[test]
fn groups_from_the_table_fallback_and_gateway_recognition() {
    let _serial = serial();
    let by_user = setup("route { if (do_routing()) xlog(\"$ru\"); else xlog(\"none\"); }");
    assert_eq!(
        run(&by_user, "777", "bob@example.com", "192.0.2.9:5060"),
        "sip:777@10.0.0.3:5070;user=phone"
    );
    assert_eq!(
        run(&by_user, "777", "carol@example.com", "192.0.2.9:5060"),
        "none"
    );
    let fallback = setup(
        "route { do_routing(1, \"F\"); xlog(\"$ru\"); while (use_next_gw()) xlog(\"$ru\"); }",
    );
    assert_eq!(
        run(&fallback, "4099", "a@example.com", "192.0.2.9:5060"),
        "sip:4099@10.0.0.2;user=phone"
    );
    assert_eq!(
        run(&fallback, "40215", "a@example.com", "192.0.2.9:5060"),
        "sip:00215@10.0.0.1:5060;user=phone|sip:40215@10.0.0.2;user=phone|sip:40215@10.0.0.2;user=phone",
        "with F the rules of shorter prefixes follow"
    );
    let check = setup(
        "route {\n\
         if (is_from_gw()) xlog(\"gw\"); else xlog(\"not gw\");\n\
         if (is_from_gw(1)) xlog(\"type 1\");\n\
         if (is_from_gw(-1, \"n\", $var(a))) xlog(\"any port [$var(a)]\");\n\
         if (do_routing(1, \"C\")) xlog(\"routable $ru\"); }",
    );
    assert_eq!(
        run(&check, "4021", "a@example.com", "10.0.0.1:5060"),
        "gw|any port [gw one]|routable sip:4021@trunk.example.com;user=phone"
    );
    assert_eq!(
        run(&check, "4021", "a@example.com", "10.0.0.3:5070"),
        "gw|type 1|any port []|routable sip:4021@trunk.example.com;user=phone"
    );
    assert_eq!(
        run(&check, "9", "a@example.com", "10.0.0.1:9999"),
        "not gw|any port [gw one]"
    );
}

#[test]
fn mi_lists_and_switches_gateways() {
    let _serial = serial();
    let s = setup(WALK);
    let mut mi = ::mi::Mi::new();
    drouting::mi::commands(&mut mi);
    let call = |method: &str, params: serde_json::Value| -> serde_json::Value {
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        serde_json::from_str(&mi.handle(req.to_string().as_bytes()).unwrap()).unwrap()
    };
    let list = call("dr_gw_status", json!([]));
    assert_eq!(
        list["result"]["Gateways"][3],
        json!({"ID": "gw4", "IP": "10.0.0.4", "State": "Disabled MI"})
    );
    assert_eq!(
        call("drouting:gw_status", json!(["gw2", "0"]))["result"],
        "OK"
    );
    assert_eq!(
        call("dr_gw_status", json!(["gw2"]))["result"]["State"],
        "Disabled MI"
    );
    assert_eq!(
        run(&s, "4099", "alice@example.com", "192.0.2.9:5060"),
        "none",
        "rule 40's only gateway is off"
    );
    assert_eq!(
        call("dr_gw_status", json!({"gw_id": "gw2", "status": 1}))["result"],
        "OK"
    );
    assert_eq!(
        call("dr_gw_status", json!(["nope"]))["error"]["message"],
        "GW ID not found"
    );
    assert_eq!(
        call("dr_carrier_status", json!(["cr1"]))["result"],
        json!({"ATTRS": "carrier one", "Enabled": "yes"})
    );
    assert_eq!(call("dr_reload", json!([]))["result"], "OK");
    assert_eq!(
        run(&s, "4099", "alice@example.com", "192.0.2.9:5060"),
        "sip:4099@10.0.0.2;user=phone [rule 40] [gw two]"
    );
}

/// `route_to_gw()` and `route_to_carrier()`: the listed gateways (or the carriers' gateways)
/// in order, a disabled one (gw4) and an unknown id left out, the rest for `use_next_gw`;
/// the gateway's and carrier's attributes to the output variables.
#[test]
fn route_to_gw_and_route_to_carrier_walk_their_lists() {
    let _serial = serial();
    let gws = setup(
        "route {\n\
         if (!route_to_gw(\"gw4, nosuch, gw2,gw1\", $var(gw))) { xlog(\"none\"); exit; }\n\
         xlog(\"$ru [$var(gw)]\");\n\
         while (use_next_gw(, $var(gw))) xlog(\"$ru [$var(gw)]\");\n}",
    );
    assert_eq!(
        run(&gws, "5551234", "alice@example.com", "192.0.2.9:5060"),
        "sip:5551234@10.0.0.2;user=phone [gw two]|\
         sip:0051234@10.0.0.1:5060;user=phone [gw one]"
    );
    let carriers = setup(
        "route {\n\
         if (!route_to_carrier(\"cr1\", $var(gw), $var(cr))) { xlog(\"none\"); exit; }\n\
         xlog(\"$ru [$var(cr)]\");\n\
         while (use_next_gw(, $var(gw))) xlog(\"$ru [$var(gw)]\");\n}",
    );
    assert_eq!(
        run(&carriers, "5551234", "alice@example.com", "192.0.2.9:5060"),
        "sip:5551234@10.0.0.3:5070;user=phone [carrier one]|\
         sip:5551234@10.0.0.2;user=phone [gw two]"
    );
    let none = setup("route {\n if (!route_to_gw(\"gw4\")) xlog(\"none\");\n}");
    assert_eq!(
        run(&none, "5551234", "alice@example.com", "192.0.2.9:5060"),
        "none"
    );
}

/// `dr_is_gw(uri)` recognises a gateway's address in any URI; `dr_match` tells whether a
/// group's rules route a number (its attributes out); `dr_disable` switches off the gateway
/// the request went to last (`do_routing` or `use_next_gw`), so the next routing skips it.
#[test]
fn dr_is_gw_dr_match_and_dr_disable() {
    let _serial = serial();
    let s = setup(
        "route {\n\
         if (dr_is_gw(\"sip:x@10.0.0.3:5070\", 1, , $var(a))) xlog(\"gw3 [$var(a)]\");\n\
         if (!dr_is_gw(\"sip:x@10.0.0.3:5071\")) xlog(\"not on 5071\");\n\
         if (!dr_is_gw(\"sip:x@gw.example.com\")) xlog(\"not a name\");\n\
         if (dr_match(1, , \"40215\", $var(r))) xlog(\"match [$var(r)]\");\n\
         if (!dr_match(1, \"L\", \"40215\")) xlog(\"no exact\");\n\
         if (!dr_match(3, , \"40215\")) xlog(\"no group 3\");\n\
         if (!dr_disable()) xlog(\"nothing to disable\");\n}",
    );
    assert_eq!(
        run(&s, "1", "alice@example.com", "192.0.2.9:5060"),
        "gw3 []|not on 5071|not a name|match [rule 4021]|no exact|no group 3|nothing to disable"
    );
    // 4021 goes to gw1 then gw2; gw2 is disabled after use_next_gw moved to it.
    let disable = setup(
        "route {\n\
         if (!do_routing(1)) { xlog(\"none\"); exit; }\n\
         xlog(\"$ru\");\n\
         if (use_next_gw()) { xlog(\"$ru\"); dr_disable(); }\n}",
    );
    assert_eq!(
        run(&disable, "4021", "alice@example.com", "192.0.2.9:5060"),
        "sip:0021@10.0.0.1:5060;user=phone|sip:4021@10.0.0.2;user=phone"
    );
    assert_eq!(
        run(&disable, "4021", "alice@example.com", "192.0.2.9:5060"),
        "sip:0021@10.0.0.1:5060;user=phone",
        "gw2 is off now"
    );
    let mut mi = ::mi::Mi::new();
    drouting::mi::commands(&mut mi);
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": "dr_gw_status", "params": ["gw2"]});
    let out: serde_json::Value =
        serde_json::from_str(&mi.handle(req.to_string().as_bytes()).unwrap()).unwrap();
    assert_eq!(out["result"]["State"], "Disabled MI", "{out}");
    // Back on for the other tests.
    let req = json!({"jsonrpc": "2.0", "id": 2, "method": "dr_gw_status", "params": ["gw2", "1"]});
    mi.handle(req.to_string().as_bytes()).unwrap();
}
