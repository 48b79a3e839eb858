//! dialplan from a compiled script over a db_text table: string and regex rules, case,
//! priority, subst rewrites with groups, fixed replacements, disabled rules, attributes,
//! and the MI.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::json;

#[test]
fn translations_by_priority_with_groups_and_attributes() {
    let d = std::env::temp_dir().join(format!("rsips-dp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("version"),
        "table_name(str) table_version(int)\ndialplan:5\n",
    )
    .unwrap();
    std::fs::write(
        d.join("dialplan"),
        "id(int,auto) dpid(int) pr(int) match_op(int) match_exp(string) match_flags(int) \
         subst_exp(string,null) repl_exp(string,null) timerec(string,null) disabled(int) attrs(string,null)\n\
         :1:5:1:^(0040|\\\\+40|0|40)21[0-9]+:0:^(0040|\\\\+40|0|40)(.+):40\\\\2::0:bucharest\n\
         :1:9:0:112:0::911::0:emergency\n\
         :1:1:0:GERMANY:1::DE::0:\n\
         :1:0:0:0721000000:0::X::1:disabled\n\
         :1:2:1:^0721:0::mobile::0:\n\
         :2:0:1:.*:0::::0:\n",
    )
    .unwrap();
    let text = format!(
        "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"db_text.so\"\n\
         loadmodule \"dialplan.so\"\nmodparam(\"dialplan\", \"db_url\", \"text://{}\")\n\
         route {{\n\
           if (dp_translate(1, $rU, $var(out), $var(attrs))) xlog(\"$var(out) [$var(attrs)]\");\n\
           else xlog(\"no translation\");\n\
           if (dp_translate(2, $rU, $var(out2))) xlog(\"as is $var(out2)\");\n}}",
        d.display()
    );
    let s = testkit::compile(&text, vec![&testkit::DB_TEXT, &dialplan::MODULE]);
    dialplan::start(&s, &db::Options::default()).unwrap();
    let run = |user: &str| {
        let raw = format!(
            "INVITE sip:{user}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:{user}@example.com>\r\nCall-ID: c\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        testkit::run(&s, &mut testkit::request(&raw, "192.0.2.1:5060"), &[])
    };
    assert_eq!(run("0040213456"), "40213456 [bucharest]|as is 0040213456");
    assert_eq!(run("112"), "911 [emergency]|as is 112");
    assert_eq!(
        run("germany"),
        "DE []|as is germany",
        "match_flags 1: any case"
    );
    assert_eq!(
        run("0721000000"),
        "mobile []|as is 0721000000",
        "the disabled rule is skipped"
    );
    assert_eq!(run("999"), "no translation|as is 999");
    let mut mi = ::mi::Mi::new();
    dialplan::commands(&mut mi);
    let call = |method: &str, params: serde_json::Value| -> serde_json::Value {
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        serde_json::from_str(&mi.handle(req.to_string().as_bytes()).unwrap()).unwrap()
    };
    assert_eq!(
        call("dialplan:translate", json!({"dpid": 1, "input": "+40211"}))["result"],
        json!({"Output": "40211", "ATTRIBUTES": "bucharest"})
    );
    assert_eq!(
        call("dp_translate", json!(["7", "1"]))["error"]["message"],
        "No information available for dpid"
    );
    assert_eq!(
        call("dp_translate", json!(["1", "x"]))["error"]["message"],
        "No translation"
    );
    assert_eq!(call("dp_reload", json!([]))["result"], "OK");
}
