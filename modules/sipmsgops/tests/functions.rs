//! sipmsgops functions driven from a script, with the edited message serialized and re-parsed.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bytes::Bytes;
use engine::{Available, MemoryLog, MsgCtx, Script, Worker};
use sip::{HeaderName, SipMessage};

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Route: <sip:p1.example.com;lr>\r\n\
Route: <sip:p2.example.com;lr>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

fn run(body: &str, raw: &'static [u8]) -> (Vec<String>, MsgCtx) {
    let src = format!("loadmodule \"sipmsgops.so\"\nroute {{\n{body}\n}}");
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let available = Available {
        modules: vec![&sipmsgops::MODULE],
        builtin: vec![],
        argv: Vec::new(),
    };
    let script = Script::compile(&parsed.config, &sources, &available).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter().map(|d| d.render(&sources)).collect::<String>()
        )
    });
    let mut ctx = MsgCtx::new(SipMessage::parse(Bytes::from_static(raw)).unwrap());
    let mut log = MemoryLog::default();
    script
        .run(&mut Worker::default(), &mut ctx, &mut log)
        .unwrap();
    (log.lines.into_iter().map(|(_, l)| l).collect(), ctx)
}

fn forwarded(ctx: &MsgCtx) -> SipMessage {
    SipMessage::parse(Bytes::from(ctx.msg.serialize(&ctx.edits))).unwrap()
}

#[test]
fn tests_on_the_message() {
    let (l, _) = run(
        r#"if (is_method("REGISTER|invite")) xlog("method\n");
        if (!is_method("BYE")) xlog("not-bye\n");
        if (!has_totag()) xlog("initial\n");
        if (has_body()) xlog("body\n");
        if (has_body("application/SDP")) xlog("sdp\n");
        if (!has_body("text/plain")) xlog("not-text\n");
        if (is_present_hf("route")) xlog("route\n");
        if (is_present_hf("i")) xlog("compact\n");
        if (!is_present_hf("X-Missing")) xlog("missing\n");"#,
        INVITE,
    );
    assert_eq!(
        l,
        [
            "method\n",
            "not-bye\n",
            "initial\n",
            "body\n",
            "sdp\n",
            "not-text\n",
            "route\n",
            "compact\n",
            "missing\n"
        ]
    );
}

#[test]
fn is_method_on_a_reply_uses_the_cseq_method() {
    const REPLY: &[u8] = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n";
    let (l, _) = run(
        r#"if (is_method("BYE")) xlog("bye\n"); if (has_totag()) xlog("totag\n"); if (!has_body()) xlog("nobody\n");"#,
        REPLY,
    );
    assert_eq!(l, ["bye\n", "totag\n", "nobody\n"]);
}

#[test]
fn header_edits_reach_the_forwarded_message() {
    let (_, ctx) = run(
        r#"append_hf("P-hint: outbound\r\n");
        append_hf("X-After-Via: 1\r\n", "Via");
        insert_hf("X-First: $ci\r\n");
        if (remove_hf("Route")) xlog("removed\n");
        if (!remove_hf("X-Nothing")) xlog("nothing-removed\n");"#,
        INVITE,
    );
    let out = forwarded(&ctx);
    let names: Vec<&str> = out.headers().map(|h| h.name_str).collect();
    assert_eq!(names.first(), Some(&"X-First"));
    assert_eq!(
        out.header_str("X-First"),
        Some("a84b4c76e66710@pc33.atlanta.com"),
        "format string expanded"
    );
    assert_eq!(names.get(1..3), Some(&["Via", "X-After-Via"][..]));
    assert_eq!(out.header_str("P-hint"), Some("outbound"));
    assert_eq!(out.header_count(HeaderName::Route), 0);
    assert_eq!(out.body(), b"v=0\n");
    out.check().unwrap();
}

#[test]
fn append_to_reply_collects_headers() {
    let (_, ctx) = run(
        r#"append_to_reply("Retry-After: 30\r\nX-Reason: busy\r\n");"#,
        INVITE,
    );
    assert_eq!(ctx.reply_headers, ["Retry-After: 30", "X-Reason: busy"]);
}

#[test]
fn bad_header_text_is_refused() {
    let (l, ctx) = run(
        r#"if (!append_hf("no colon here")) xlog("refused\n");"#,
        INVITE,
    );
    assert_eq!(l, ["refused\n"]);
    assert!(ctx.edits.is_empty());
}

const TEL: &[u8] = b"INVITE tel:+4930123456;phone-context=x SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
To: <tel:+4930123456>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: tel-1\r\n\
CSeq: 1 INVITE\r\n\
X-One: 1\r\n\
X-Two: 2\r\n\
P-Asserted-Identity: <sip:a@b>\r\n\
Privacy: id;critical\r\n\
Content-Length: 0\r\n\r\n";

#[test]
fn headers_go_by_regex_and_glob() {
    let (l, ctx) = run(
        r#"if (remove_hf_glob("x-*")) xlog("glob\n");
        if (remove_hf_re("^P-Asserted")) xlog("re\n");
        if (!remove_hf_glob("Nope-*")) xlog("none\n");"#,
        TEL,
    );
    assert_eq!(l, vec!["glob\n", "re\n", "none\n"]);
    let out = forwarded(&ctx);
    assert!(out.headers().all(|h| !h.name_str.starts_with("X-")));
    assert!(!out.headers().any(|h| h.name_str == "P-Asserted-Identity"));
    assert!(out.headers().any(|h| h.name_str == "Privacy"));
}

#[test]
fn privacy_and_e164() {
    let (l, _) = run(
        r#"if (is_privacy("id")) xlog("id\n");
        if (is_privacy("CRITICAL")) xlog("critical\n");
        if (!is_privacy("user")) xlog("not-user\n");
        if (is_uri_user_e164("sip:+4930123456@x")) xlog("e164\n");
        if (!is_uri_user_e164("sip:030123@x")) xlog("not-e164\n");
        if (!is_uri_user_e164("sip:+1@x")) xlog("too-short\n");"#,
        TEL,
    );
    assert_eq!(
        l,
        vec![
            "id\n",
            "critical\n",
            "not-user\n",
            "e164\n",
            "not-e164\n",
            "too-short\n"
        ]
    );
}

#[test]
fn tel_uris_become_sip_and_params_come_and_go() {
    let (l, _) = run(
        r#"ruri_tel2sip(); xlog("$ru\n");
        if (ruri_has_param("user", "phone")) xlog("has\n");
        ruri_add_param("npdi"); ruri_add_param("rn=123"); xlog("$ru\n");
        if (ruri_has_param("npdi")) xlog("flag\n");
        if (!ruri_has_param("rn", "999")) xlog("other-value\n");
        ruri_del_param("user"); xlog("$ru\n");
        if (!ruri_del_param("absent")) xlog("absent\n");"#,
        TEL,
    );
    assert_eq!(
        l,
        vec![
            "sip:+4930123456;phone-context=x@atlanta.com;user=phone\n",
            "has\n",
            "sip:+4930123456;phone-context=x@atlanta.com;user=phone;npdi;rn=123\n",
            "flag\n",
            "other-value\n",
            "sip:+4930123456;phone-context=x@atlanta.com;npdi;rn=123\n",
            "absent\n"
        ]
    );
}

#[test]
fn change_reply_status_rewrites_the_status_line_within_its_class() {
    let src = r#"loadmodule "sipmsgops.so"
route { exit; }
onreply_route {
    if (!change_reply_status(200, "Nope")) xlog("refused\n");
    if (change_reply_status(404, "Not Here Either")) xlog("changed\n");
}"#;
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src.into());
    let available = Available {
        modules: vec![&sipmsgops::MODULE],
        builtin: vec![],
        argv: Vec::new(),
    };
    let script = Script::compile(&parsed.config, &sources, &available).unwrap();
    let reply = b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bKx\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: r\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let mut ctx = MsgCtx::new(SipMessage::parse(Bytes::from_static(reply)).unwrap());
    let mut log = MemoryLog::default();
    script
        .run_index(
            script.reply_route().unwrap(),
            &mut Worker::default(),
            &mut ctx,
            &mut log,
        )
        .unwrap();
    let lines: Vec<String> = log.lines.into_iter().map(|(_, l)| l).collect();
    assert!(lines.iter().any(|l| l == "refused\n"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "changed\n"), "{lines:?}");
    let out = String::from_utf8(ctx.msg.serialize(&ctx.edits)).unwrap();
    assert!(
        out.starts_with("SIP/2.0 404 Not Here Either\r\nVia: "),
        "{out}"
    );
}

// Header order as OpenSIPS writes it: lines of one call and successive calls keep their order
// (after an anchor, before an anchor, at the top); a missing anchor header falls back to the
// default place (end for append_hf, top for insert_hf) and still succeeds.
#[test]
fn added_headers_keep_their_order_and_a_missing_anchor_falls_back() {
    let (l, ctx) = run(
        r#"append_hf("A-1: 1\r\nA-2: 2\r\n", "Max-Forwards");
        append_hf("A-3: 3\r\n", "Max-Forwards");
        insert_hf("T-1: 1\r\n");
        insert_hf("T-2: 2\r\nT-3: 3\r\n");
        if (append_hf("E-1: 1\r\n", "X-Missing")) xlog("appended\n");
        if (insert_hf("T-0: 0\r\n", "X-Missing")) xlog("inserted\n");"#,
        INVITE,
    );
    assert_eq!(l, ["appended\n", "inserted\n"]);
    let out = forwarded(&ctx);
    let names: Vec<&str> = out.headers().map(|h| h.name_str).collect();
    assert_eq!(
        names.get(..5),
        Some(&["T-1", "T-2", "T-3", "T-0", "Via"][..]),
        "{names:?}"
    );
    let mf = names.iter().position(|n| *n == "Max-Forwards").unwrap();
    assert_eq!(
        names.get(mf..mf + 4),
        Some(&["Max-Forwards", "A-1", "A-2", "A-3"][..]),
        "{names:?}"
    );
    assert_eq!(names.last(), Some(&"E-1"), "{names:?}");
}

// A header removed once is not there to remove again: the second remove_hf is false
// (OpenSIPS counts only the lines it deletes now).
#[test]
fn a_second_remove_of_the_same_header_is_false() {
    let (l, _) = run(
        r#"if (remove_hf("Route")) xlog("first\n");
        if (!remove_hf("Route")) xlog("second false\n");
        if (!remove_hf_re("^Rou")) xlog("re false\n");"#,
        INVITE,
    );
    assert_eq!(l, ["first\n", "second false\n", "re false\n"]);
}
