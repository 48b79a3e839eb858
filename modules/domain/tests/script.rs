//! domain from a compiled script over a db_text domain table (cached, `db_mode` 1): the
//! checks with attributes and subdomains, the domains counting for `is_myself`, and the MI.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;

use engine::Script;
use serde_json::json;

fn compile(dir: &Path, routes: &str) -> Script {
    let text = format!(
        "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"db_text.so\"\n\
         loadmodule \"domain.so\"\nmodparam(\"domain\", \"db_url\", \"text://{}\")\n\
         modparam(\"domain\", \"db_mode\", 1)\n{routes}",
        dir.display()
    );
    testkit::compile(&text, vec![&testkit::DB_TEXT, &domain::MODULE])
}

fn run(script: &Script, from_host: &str, ruri_host: &str) -> String {
    let raw = format!(
        "INVITE sip:bob@{ruri_host} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
         From: <sip:alice@{from_host}>;tag=1\r\nTo: <sip:bob@{ruri_host}>\r\nCall-ID: c\r\n\
         CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    testkit::run(script, &mut testkit::request(&raw, "192.0.2.1:5060"), &[])
}

#[test]
fn local_domains_from_the_table() {
    let d = std::env::temp_dir().join(format!("rsips-domain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("domain"),
        "id(int,auto) domain(string) attrs(string,null) accept_subdomain(int) last_modified(int)\n\
         :example.com:tier=gold:0:0\n:corp.net::1:0\n",
    )
    .unwrap();
    std::fs::write(
        d.join("version"),
        "table_name(str) table_version(int)\ndomain:4\n",
    )
    .unwrap();
    let s = compile(
        &d,
        "route {\n\
         if (is_from_local($var(a))) xlog(\"from local $var(a)\");\n\
         if (is_uri_host_local()) xlog(\"ruri local\");\n\
         if (is_domain_local(\"EXAMPLE.com\", $var(b))) xlog(\"case $var(b)\");\n\
         if (!is_domain_local(\"www.example.com\")) xlog(\"no subdomains of example.com\");\n\
         if (is_domain_local(\"sip.corp.net\")) xlog(\"subdomain of corp.net\");\n\
         if (!is_domain_local(\"evilcorp.net\")) xlog(\"not a label boundary\");\n\
         if (is_myself(\"corp.net\")) xlog(\"myself\");\n}",
    );
    domain::start(&s, &db::Options::default()).unwrap();
    assert_eq!(
        run(&s, "example.com", "sip.corp.net"),
        "from local tier=gold|ruri local|case tier=gold|no subdomains of example.com|\
         subdomain of corp.net|not a label boundary|myself"
    );
    assert_eq!(
        run(&s, "elsewhere.org", "elsewhere.org"),
        "case tier=gold|no subdomains of example.com|subdomain of corp.net|not a label boundary|myself"
    );
    // The MI: the cached table, and a reload that sees an edit.
    let mut mi = ::mi::Mi::new();
    domain::commands(&mut mi);
    let call = |method: &str| -> serde_json::Value {
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": []});
        serde_json::from_str(&mi.handle(req.to_string().as_bytes()).unwrap()).unwrap()
    };
    assert_eq!(
        call("domain:dump")["result"]["Domains"],
        json!([{"name": "example.com", "attributes": "tier=gold"}, {"name": "corp.net"}])
    );
    std::fs::write(
        d.join("domain"),
        "id(int,auto) domain(string) attrs(string,null) accept_subdomain(int) last_modified(int)\n\
         :elsewhere.org::0:0\n",
    )
    .unwrap();
    db::text::open("", &d, &Default::default())
        .reload(None)
        .unwrap();
    assert_eq!(call("reload")["result"], "OK");
    assert_eq!(
        run(&s, "elsewhere.org", "x.org"),
        "from local <null>|no subdomains of example.com|not a label boundary"
    );
}
