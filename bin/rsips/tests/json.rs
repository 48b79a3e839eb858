//! The `json` module end to end: a web service's JSON answer (`rest_get` against a small HTTP
//! server of the test) parsed with `$json(r) :=`, read by path, index, variable key and
//! iteration, a new document built and edited with `=`, `[]`, NULL and `json_link`, and sent
//! back in reply headers in the `$json`, `$json_compact` and `$json_pretty` forms; a bad path
//! stops the start with its place in the file.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::{Peer, header};

const CFG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "rest_client.so"
loadmodule "json.so"
route {
    if (!rest_get("http://127.0.0.1:WEB/route?user=$fU", $var(body), $var(ctype), $var(rc))) {
        sl_send_reply(503, "No web service");
        exit;
    }
    $json(r) := $var(body);
    append_to_reply("X-Uri: $json(r/route/uri)\r\n");
    append_to_reply("X-Weight: $json(r/route/weight)\r\n");
    $var(w) = $json(r/route/weight) + 1;
    append_to_reply("X-Weight-Plus: $var(w)\r\n");
    append_to_reply("X-Tag-Last: $json(r/tags[-1])\r\n");
    $var(i) = 1;
    append_to_reply("X-Tag-I: $json(r/tags[$var(i)])\r\n");
    $var(k) = "route";
    append_to_reply("X-Dyn: $json(r/$var(k)/uri)\r\n");
    append_to_reply("X-Flag: $json(r/active) $json(r/nothing) $json(r/none)\r\n");
    $var(all) = "";
    for ($var(t) in $(json(r/tags)[*]))
        $var(all) = $var(all) + $var(t) + ";";
    append_to_reply("X-Tags: $var(all)\r\n");
    $var(keys) = "";
    for ($var(t) in $(json(r/route.keys)[*]))
        $var(keys) = $var(keys) + $var(t) + ";";
    append_to_reply("X-Keys: $var(keys)\r\n");

    $json(out) := "{}";
    $json(out/caller) = $fU;
    $json(out/n) = 7;
    $json(out/list) := "[]";
    $json(out/list[]) = "x/y";
    $json(out/list[]) = 2;
    $json(out/list[0]) = "first";
    json_link($json(out/route), $json(r/route));
    $json(out/n) = NULL;
    append_to_reply("X-Out: $json_compact(out)\r\n");
    append_to_reply("X-Spaced: $json(out/list)\r\n");
    if (!($json(out/no/such) = 1))
        append_to_reply("X-Refused: deep\r\n");
    if (!($json(fresh/x) = 1))
        append_to_reply("X-Refused: unset\r\n");
    if (!($json(out/list[9]) = 1))
        append_to_reply("X-Refused: index\r\n");
    $json(bad) := "{not json";
    append_to_reply("X-Bad: $json(bad)\r\n");
    $json(v1) := "{}";
    $json(v1/test1) = "test_val1";
    $json(v1/common_val) = "val_from1";
    $json(v1/gone) = "x";
    $json(v2) := "{\"common_val\": \"val_from2\", \"gone\": null, \"test2\": \"test_val2\"}";
    json_merge($json(v1), $json(v2), $var(merged));
    append_to_reply("X-Merged: $var(merged)\r\n");
    if (!json_merge("{", $json(v2), $var(m2)))
        append_to_reply("X-Merge-Bad: refused\r\n");
    $var(p) = $json_pretty(out/route);
    if ($var(p) == "{\n  \"uri\":\"sip:gw@127.0.0.1\",\n  \"weight\":10\n}")
        append_to_reply("X-Pretty: ok\r\n");
    sl_send_reply(200, "OK");
}
"#;

/// Answers every HTTP request with `body` (as application/json), `n` times, then stops.
fn web_service(body: &'static str, n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..n {
            let Ok((mut c, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn a_web_services_json_is_read_edited_and_sent_back() {
    let web = web_service(
        r#"{"route":{"uri":"sip:gw@127.0.0.1","weight":10},"tags":["a","b","c"],"active":true,"none":null}"#,
        1,
    );
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-json-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        CFG.replace("PORT", &port.to_string())
            .replace("WEB", &web.to_string()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp"));
    let ua = Peer::new();
    ua.send(
        port,
        &format!(
            "OPTIONS sip:svc@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-json-1\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@127.0.0.1>;tag=a\r\n\
             To: <sip:svc@127.0.0.1>\r\n\
             Call-ID: json-1\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            ua.port
        ),
    );
    let reply = ua.recv("the reply");
    assert!(reply.starts_with("SIP/2.0 200 OK"), "{reply}");
    let h = |name: &str| header(&reply, name).join("|");
    assert_eq!(h("X-Uri"), "sip:gw@127.0.0.1");
    assert_eq!(h("X-Weight"), "10");
    assert_eq!(h("X-Weight-Plus"), "11");
    assert_eq!(h("X-Tag-Last"), "c");
    assert_eq!(h("X-Tag-I"), "b");
    assert_eq!(h("X-Dyn"), "sip:gw@127.0.0.1");
    // A boolean reads as its text; a missing key and a JSON null read NULL.
    assert_eq!(h("X-Flag"), "true <null> <null>");
    assert_eq!(h("X-Tags"), "a;b;c;");
    assert_eq!(h("X-Keys"), "uri;weight;");
    assert_eq!(
        h("X-Merged"),
        r#"{"test1":"test_val1","common_val":"val_from2","test2":"test_val2"}"#,
        "json_merge: RFC 7386, the target's key order kept"
    );
    assert_eq!(h("X-Merge-Bad"), "refused");
    assert_eq!(
        h("X-Out"),
        r#"{"caller":"alice","list":["first",2],"route":{"uri":"sip:gw@127.0.0.1","weight":10}}"#
    );
    assert_eq!(h("X-Spaced"), r#"[ "first", 2 ]"#);
    assert_eq!(h("X-Refused"), "deep|unset|index");
    assert_eq!(h("X-Bad"), "<null>");
    assert_eq!(h("X-Pretty"), "ok");
}

#[test]
fn a_bad_json_path_stops_the_start_at_its_place() {
    let err = common::refused_start(
        "json-bad",
        "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"json.so\"\n\
         route {\n    xlog(\"$json(x/a.b)\");\n}\n",
    );
    assert!(err.contains("bad json path `x/a.b`"), "{err}");
    assert!(err.contains("rsips.cfg:5:"), "{err}");
}
