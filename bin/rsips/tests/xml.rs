//! The xml module from a script, on the shapes real configs use: a document taken from a
//! request body and read by paths (`.val`, `.attr/name`, indexes from a `$var` in a loop), a
//! document built and changed step by step, the objects kept by the worker between
//! messages, and a body that is not XML failing the assignment without disturbing anything.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, header};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
udp_workers=1
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "xml.so"

route {
    if ($rU == "parse") {
        $xml(mms_doc) = $rb;
        append_to_reply("X-Name: $xml(mms_doc/file/file-info/file-name.val)\r\n");
        append_to_reply("X-Url: $xml(mms_doc/file/file-info/data.attr/url)\r\n");
        $var(idx) = 0;
        while ($xml(mms_doc/file/id[$var(idx)]) != NULL) {
            append_to_reply("X-Id: $xml(mms_doc/file/id[$var(idx)].val)\r\n");
            $var(idx) = $var(idx) + 1;
        }
        $var(el) = "file-info";
        $var(at) = "type";
        append_to_reply("X-Dyn: $xml(mms_doc/file/$var(el).attr/$var(at))\r\n");
        append_to_reply("X-Missing: $xml(mms_doc/file/nothing.val)\r\n");
    } else if ($rU == "build") {
        $xml(my_doc) = "<doc></doc>";
        $xml(my_doc/doc) = "<list></list>";
        $xml(my_doc/doc/list) = "<item>some_value</item>";
        $xml(my_doc/doc/list) = "<item>another_value</item>";
        $xml(my_doc/doc/list/item[1].val) = "new_val";
        $xml(my_doc/doc/list.attr/sort) = "asc";
        append_to_reply("X-List: $xml(my_doc/doc/list)\r\n");
        $xml(my_doc/doc/list/item[0]) = NULL;
    } else if ($rU == "later") {
        # The worker kept the object built by the previous request.
        append_to_reply("X-Kept: $xml(my_doc/doc/list)\r\n");
        $xml(my_doc) = NULL;
        append_to_reply("X-Cleared: $xml(my_doc)\r\n");
    }
    sl_send_reply(200, "OK");
}
"#;

const BODY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<file xmlns="urn:gsma:params:xml:ns:rcs:rcs:fthttp">
  <id>a</id><id>b</id><id>c</id>
  <file-info type="file">
    <file-size>2048</file-size>
    <file-name>photo&amp;1.jpg</file-name>
    <data url="https://ft.example.com/f?id=1&amp;k=2" until="2026-12-31T00:00:00Z"/>
  </file-info>
</file>"#;

fn ask(peer: &Peer, port: u16, to: &str, n: u32, body: &str) -> String {
    peer.send(
        port,
        &format!(
            "MESSAGE sip:{to}@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-xml-{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a{n}\r\nTo: <sip:{to}@127.0.0.1>\r\n\
             Call-ID: xml-{n}-{port}\r\nCSeq: 1 MESSAGE\r\nContent-Type: application/xml\r\n\
             Content-Length: {}\r\n\r\n{body}",
            peer.port,
            body.len()
        ),
    );
    peer.recv("reply")
}

#[test]
fn documents_from_bodies_and_built_by_the_script() {
    let port = common::free_port();
    let dir = common::test_dir("xml", &port.to_string());
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG.replace("PORT", &port.to_string()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let peer = Peer::new();

    let r = ask(&peer, port, "parse", 1, BODY);
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert_eq!(header(&r, "X-Name"), ["photo&1.jpg"], "{r}");
    assert_eq!(
        header(&r, "X-Url"),
        ["https://ft.example.com/f?id=1&k=2"],
        "{r}"
    );
    assert_eq!(header(&r, "X-Id"), ["a", "b", "c"], "{r}");
    assert_eq!(header(&r, "X-Dyn"), ["file"], "{r}");
    assert_eq!(header(&r, "X-Missing"), ["<null>"], "{r}");

    // A body that is not XML: the assignment fails (logged), the old document is kept.
    let r = ask(&peer, port, "parse", 2, "<file><id>unclosed</file>");
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert_eq!(header(&r, "X-Name"), ["photo&1.jpg"], "{r}");

    let r = ask(&peer, port, "build", 3, "");
    assert_eq!(
        header(&r, "X-List"),
        [r#"<list sort="asc"><item>some_value</item><item>new_val</item></list>"#],
        "{r}"
    );
    let r = ask(&peer, port, "later", 4, "");
    assert_eq!(
        header(&r, "X-Kept"),
        [r#"<list sort="asc"><item>new_val</item></list>"#],
        "{r}"
    );
    assert_eq!(header(&r, "X-Cleared"), ["<null>"], "{r}");
    let log = std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    assert!(log.contains("xml: "), "the failed parse is logged: {log}");
}
