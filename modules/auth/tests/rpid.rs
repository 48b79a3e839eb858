//! auth's Remote-Party-ID helpers from a compiled script: the RPID AVP appended with the
//! default or the given prefix and suffix, and its user checked for E.164.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

const REQUEST: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-rpid\r\n\
From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n\
Call-ID: rpid\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

fn run(route: &str) -> (Vec<String>, String) {
    let text = format!("loadmodule \"auth.so\"\nroute {{ {route} }}");
    let script = testkit::compile(&text, vec![&auth::AUTH]);
    let mut ctx = testkit::request(REQUEST, "192.0.2.1:5060");
    let lines = testkit::run_lines(&script, &mut ctx);
    let sent = String::from_utf8_lossy(&ctx.msg.serialize(&ctx.edits)).into_owned();
    (lines, sent)
}

fn rpid_headers(sent: &str) -> Vec<&str> {
    sent.lines()
        .filter_map(|l| l.strip_prefix("Remote-Party-ID: "))
        .collect()
}

#[test]
fn the_rpid_is_appended_and_checked() {
    let (lines, sent) = run("$avp(rpid) = \"<sip:+4930123456@example.com>\"; \
         if (is_rpid_user_e164()) xlog(\"e164\\n\"); \
         append_rpid_hf(); append_rpid_hf(\"Caller \", \";privacy=full\");");
    assert_eq!(lines, ["e164"]);
    assert_eq!(
        rpid_headers(&sent),
        [
            "<sip:+4930123456@example.com>;party=calling;id-type=subscriber;screen=yes",
            "Caller <sip:+4930123456@example.com>;privacy=full"
        ]
    );
    // Not E.164: no plus, or too long; without an RPID nothing is appended.
    for (rpid, want) in [
        ("<sip:4930123@x>", "no"),
        ("<sip:+1234567890123456@x>", "no"),
        ("sip:+12@x", "yes"),
    ] {
        let (lines, _) = run(&format!(
            "$avp(rpid) = \"{rpid}\"; if (is_rpid_user_e164()) xlog(\"yes\\n\"); else xlog(\"no\\n\");"
        ));
        assert_eq!(lines, [want], "{rpid}");
    }
    let (lines, sent) = run("if (!append_rpid_hf()) xlog(\"none\\n\");");
    assert_eq!(lines, ["append_rpid_hf: no RPID to append", "none"]);
    assert!(rpid_headers(&sent).is_empty());
}
