//! permissions from a compiled script over a db_text address table: single addresses and
//! subnets, ports, protocols, patterns, context info, groups, and the MI reload and dumps.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::sync::OnceLock;

use engine::Script;
use serde_json::json;

const HEADER: &str = "id(int,auto) grp(int) ip(string) mask(int) port(int) proto(string,null) \
pattern(string,null) context_info(string,null)\n";

fn db_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("rsips-perm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("address"),
            format!(
                "{HEADER}:1:192.0.2.10:32:5060:udp::trunk-a\n\
                 :1:198.51.100.0:24:0:any:gw*:carrier-b\n\
                 :2:2001\\:db8\\:\\:1:128:0:::v6 peer\n\
                 :3:203.0.113.7:32:0:tls::\n"
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("version"),
            "table_name(str) table_version(int)\naddress:5\n",
        )
        .unwrap();
        d
    })
}

fn setup(routes: &str) -> Script {
    static STARTED: OnceLock<()> = OnceLock::new();
    let s = compile(routes);
    STARTED.get_or_init(|| permissions::start(&s, &db::Options::default()).unwrap());
    s
}

fn compile(routes: &str) -> Script {
    let text = format!(
        "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"db_text.so\"\n\
         loadmodule \"permissions.so\"\nmodparam(\"permissions\", \"db_url\", \"text://{}\")\n{routes}",
        db_dir().display()
    );
    testkit::compile(&text, vec![&testkit::DB_TEXT, &permissions::MODULE])
}

fn run(script: &Script, source: &str, proto: &'static str) -> String {
    let raw = "INVITE sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
               From: <sip:a@example.com>;tag=1\r\nTo: <sip:x@example.com>\r\nCall-ID: c\r\n\
               CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let mut ctx = testkit::request(raw, source);
    if let Some(r) = ctx.receipt.as_mut() {
        r.proto = proto;
    }
    // The module's own error lines are not the script's output.
    testkit::run(script, &mut ctx, &["permissions:"])
}

#[test]
fn source_checks_by_address_subnet_port_and_protocol() {
    let s = setup(
        "route {\n\
         $var(r) = check_source_address(1, $var(ctx));\n\
         xlog(\"$var(r) $var(ctx)\");\n\
         if (get_source_group($var(g))) xlog(\"group $var(g)\"); }",
    );
    assert_eq!(run(&s, "192.0.2.10:5060", "udp"), "1 trunk-a|group 1");
    assert_eq!(run(&s, "192.0.2.10:5070", "udp"), "-1 <null>", "port");
    // get_source_group looks at address and port only (OpenSIPS' hash lookup).
    assert_eq!(
        run(&s, "192.0.2.10:5060", "tcp"),
        "-1 <null>|group 1",
        "protocol"
    );
    assert_eq!(
        run(&s, "198.51.100.77:5999", "tcp"),
        "1 carrier-b",
        "subnet, any port and proto"
    );
    assert_eq!(run(&s, "198.51.101.1:5060", "udp"), "-1 <null>");
    let any = setup("route { $var(r) = check_source_address(0); xlog(\"$var(r)\"); }");
    assert_eq!(run(&any, "[2001:db8::1]:5060", "udp"), "1");
    assert_eq!(run(&any, "203.0.113.7:5061", "tls"), "1");
    assert_eq!(run(&any, "203.0.113.7:5061", "udp"), "-1");
    let missing = setup("route { $var(r) = check_source_address(9); xlog(\"$var(r)\"); }");
    assert_eq!(
        run(&missing, "192.0.2.10:5060", "udp"),
        "-2",
        "a group with no rows"
    );
}

#[test]
fn explicit_addresses_and_patterns() {
    let s = setup(
        "route {\n\
         if (check_address(1, \"198.51.100.5\", 0, \"any\", $var(c), \"gw-east\")) xlog(\"pattern ok $var(c)\");\n\
         if (!check_address(1, \"198.51.100.5\", 0, \"any\", $var(c), \"lb-east\")) xlog(\"pattern refused\");\n\
         if (check_address(1, \"198.51.100.5\", 5060, \"UDP\")) xlog(\"no pattern given\");\n\
         if (!check_address(1, \"not-an-ip\", 0, \"any\")) xlog(\"bad ip\"); }",
    );
    assert_eq!(
        run(&s, "192.0.2.99:1", "udp"),
        "pattern ok carrier-b|pattern refused|no pattern given|bad ip"
    );
}

#[test]
fn mi_dumps_and_reloads() {
    setup("route { exit; }");
    let mut mi = ::mi::Mi::new();
    permissions::mi::commands(&mut mi);
    let call = |method: &str, params: serde_json::Value| -> serde_json::Value {
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        serde_json::from_str(&mi.handle(req.to_string().as_bytes()).unwrap()).unwrap()
    };
    let hosts = call("permissions:address_dump", json!([]));
    let rows = &hosts["result"]["Partitions"][0]["Destinations"];
    assert_eq!(rows.as_array().unwrap().len(), 3, "{hosts}");
    assert_eq!(rows[0]["ip"], "192.0.2.10");
    assert_eq!(rows[0]["context_info"], "trunk-a");
    let subnets = call("subnet_dump", json!({"partition": "default"}));
    assert_eq!(
        subnets["result"]["Destinations"][0]["mask"], "24",
        "{subnets}"
    );
    let out = call("address_dump", json!({"partition": "nope"}));
    assert_eq!(out["error"]["message"], "No such partition");
    assert_eq!(call("address_reload", json!([]))["result"], "OK");
}
