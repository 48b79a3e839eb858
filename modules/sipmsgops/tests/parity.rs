//! Behaviour checked against OpenSIPS' sipmsgops source: variables in string arguments,
//! `is_method` lists, `sipmsg_validate`, the Request-URI helpers, `append_urihf`, header text
//! and shell patterns.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use bytes::Bytes;
use engine::{MsgCtx, Script};
use sip::SipMessage;

const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
X-Foo: 1\r\n\
X-A1: a\r\n\
X-B1: b\r\n\
X-C1: c\r\n\
Content-Length: 0\r\n\r\n";

/// Compiles `src`; the rendered load errors, or "" when it compiles.
fn load_errors(src: &str) -> String {
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src.into());
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    match Script::compile(&parsed.config, &sources, &common::available()) {
        Ok(_) => String::new(),
        Err(d) => d.iter().map(|d| d.render(&sources)).collect(),
    }
}

/// Runs `body` as the main route over `raw` received on `proto`: the xlog lines (level 2
/// only) and the context.
fn run_on(body: &str, raw: &str, proto: &'static str) -> (Vec<String>, MsgCtx) {
    common::run(body, raw.as_bytes().to_vec(), Some(common::receipt(proto)))
}

fn run(body: &str, raw: &str) -> Vec<String> {
    run_on(body, raw, "udp").0
}

fn forwarded(ctx: &MsgCtx) -> SipMessage {
    SipMessage::parse(Bytes::from(ctx.msg.serialize(&ctx.edits))).unwrap()
}

fn names(msg: &SipMessage) -> Vec<String> {
    msg.headers().map(|h| h.name_str.to_owned()).collect()
}

// OpenSIPS expands variables in a quoted CMD_PARAM_STR argument and runs the fixup on the
// value: is_method, the append_hf/insert_hf anchor, remove_hf_glob, sipmsg_validate's flags.
#[test]
fn quoted_variables_are_expanded() {
    let (l, ctx) = run_on(
        r#"$var(m) = "INVITE"; $var(h) = "X-Foo"; $var(g) = "X-?1"; $var(f) = "m";
        if (is_method("$var(m)")) xlog("method\n");
        if (append_hf("X-After: 1\r\n", "$var(h)")) xlog("appended\n");
        if (insert_hf("X-Before: 1\r\n", "$var(h)")) xlog("inserted\n");
        if (remove_hf_glob("$var(g)")) xlog("globbed\n");"#,
        INVITE,
        "udp",
    );
    assert_eq!(l, ["method\n", "appended\n", "inserted\n", "globbed\n"]);
    let out = forwarded(&ctx);
    let n = names(&out);
    let foo = n.iter().position(|h| h == "X-Foo").unwrap();
    assert_eq!(
        n.get(foo - 1..foo + 2).unwrap(),
        ["X-Before", "X-Foo", "X-After"]
    );
    assert!(!n.iter().any(|h| h == "X-A1" || h == "X-B1"), "{n:?}");

    // "m" skips the Max-Forwards check; taken literally, "$var(f)" would ask for R-URI and
    // From checks instead, and the missing Max-Forwards would fail the message.
    let no_mf = INVITE.replace("Max-Forwards: 70\r\n", "");
    let l = run(
        r#"$var(f) = "m"; $var(r) = sipmsg_validate("$var(f)"); xlog("$var(r)\n");"#,
        &no_mf,
    );
    assert_eq!(l, ["1\n"]);
}

// A `|` list is turned into method ids: an extension method in it fails the call.
#[test]
fn is_method_lists_take_only_standard_methods() {
    let l = run(
        r#"$var(l) = "INVITE|FOO";
        if (!is_method("INVITE|FOO")) xlog("literal\n");
        if (!is_method("$var(l)")) xlog("variable\n");
        if (is_method("invite|bye")) xlog("standard\n");
        if (!is_method("FOO")) xlog("single\n");"#,
        INVITE,
    );
    assert_eq!(l, ["literal\n", "variable\n", "standard\n", "single\n"]);
}

// get_content_length() is 0 when the header is missing: a datagram whose body has no
// Content-Length fails with -5.
#[test]
fn sipmsg_validate_counts_a_missing_content_length_as_zero() {
    let raw = INVITE.replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Type: text/plain\r\n\r\nhello",
    );
    let l = run(
        r#"$var(r) = sipmsg_validate("", $var(why)); xlog("$var(r) $var(why)\n");"#,
        &raw,
    );
    assert_eq!(
        l,
        ["-5 invalid body - content length 0 different than actual body 5\n"]
    );
    let l = run(
        r#"$var(r) = sipmsg_validate(""); xlog("$var(r)\n");"#,
        INVITE,
    );
    assert_eq!(l, ["1\n"]);
}

// The `h` flag runs the parsers OpenSIPS runs, and only those.
#[test]
fn sipmsg_validate_h_checks_what_opensips_parses() {
    let check = |extra: &str| -> String {
        let raw = INVITE.replace("X-Foo: 1\r\n", extra);
        run(
            r#"$var(r) = sipmsg_validate("h"); xlog("$var(r)\n");"#,
            &raw,
        )
        .concat()
    };
    // Parsers that accept an empty list, headers OpenSIPS does not parse, parsers that
    // never fail.
    for ok in [
        "Supported: \r\n",
        "Allow: \r\n",
        "Require: \r\n",
        "Min-Expires: soon\r\n",
        "Session-Expires: x\r\n",
        "Authorization: Basic dXNlcjpwYXNz\r\n",
        "P-Asserted-Identity: <sip:a@b.example.com>, <tel:+15551234567>\r\n",
        "Privacy: id;critical\r\n",
        "Accept: application/sdp, */*\r\n",
    ] {
        assert_eq!(check(ok), "1\n", "{ok:?}");
    }
    for bad in [
        "P-Asserted-Identity: <sip:a@b.example.com>, <sip:c@d.example.com>\r\n",
        "P-Asserted-Identity: <sip:a@b.example.com>\r\nP-Asserted-Identity: <tel:+1555>\r\nP-Asserted-Identity: <tel:+1556>\r\n",
        "Diversion: <<sip:x\r\n",
        "Remote-Party-ID: <<sip:x\r\n",
        "Content-Disposition: ;handling=required\r\n",
        "Event: \r\n",
        "Authorization: Digest ===\r\n",
        "WWW-Authenticate: Digest realm=\"a\"\r\n",
        "Call-Info: \r\n",
        "Privacy: id;foo\r\n",
        "Accept: \r\n",
        "Subject: \r\n",
        "Max-Forwards: 123456\r\n",
    ] {
        assert_eq!(check(bad), "-2\n", "{bad:?}");
    }
}

// OpenSIPS allows the Request-URI helpers in local_route.
#[test]
fn request_uri_helpers_load_in_local_route() {
    let e = load_errors(
        r#"loadmodule "sipmsgops.so"
route { exit; }
local_route {
    ruri_add_param("a=1");
    if (ruri_has_param("a", "1")) ruri_del_param("a");
    ruri_tel2sip();
}"#,
    );
    assert_eq!(e, "");
}

const TEL: &str = "INVITE Tel:+4912345;phone-context=example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
To: <tel:+4912345>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: tel-2\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";

// The telephone-subscriber with its parameters becomes the user part (RFC 3261 §19.1.6), and
// the scheme is matched in any case.
#[test]
fn tel2sip_keeps_the_parameters() {
    let l = run(r#"ruri_tel2sip(); xlog("$ru\n");"#, TEL);
    assert_eq!(
        l,
        ["sip:+4912345;phone-context=example.com@atlanta.com;user=phone\n"]
    );
}

const PARAMS: &str = "INVITE sip:bob@biloxi.example.com;a=1;b;a=2;Tr=x SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
To: <sip:bob@biloxi.example.com>\r\n\
From: <sip:alice@atlanta.example.com>;tag=1\r\n\
Call-ID: params\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";

// Names compare case-sensitively; the first parameter of a name decides; one is deleted at a
// time; an empty name or parameter succeeds without a change.
#[test]
fn request_uri_parameters_as_opensips_handles_them() {
    let l = run(
        r#"if (!ruri_has_param("A", "1")) xlog("case\n");
        if (!ruri_has_param("a", "2")) xlog("first-decides\n");
        if (ruri_has_param("b")) xlog("flag\n");
        if (!ruri_del_param("tr")) xlog("del-case\n");
        if (ruri_del_param("")) xlog("del-empty\n");
        if (ruri_add_param("")) xlog("add-empty\n");
        ruri_del_param("a"); xlog("$ru\n");
        ruri_add_param("c=3"); xlog("$ru\n");"#,
        PARAMS,
    );
    assert_eq!(
        l,
        [
            "case\n",
            "first-decides\n",
            "flag\n",
            "del-case\n",
            "del-empty\n",
            "add-empty\n",
            "sip:bob@biloxi.example.com;b;a=2;Tr=x\n",
            "sip:bob@biloxi.example.com;b;a=2;Tr=x;c=3\n"
        ]
    );
    let raw = PARAMS.replace(";Tr=x SIP", ";lr?h=1 SIP");
    let l = run(r#"ruri_add_param("c"); xlog("$ru\n");"#, &raw);
    assert_eq!(l, ["sip:bob@biloxi.example.com;a=1;b;a=2;lr;c?h=1\n"]);
}

// OpenSIPS copies the request line's URI, not a rewritten one.
#[test]
fn append_urihf_uses_the_received_request_uri() {
    let (_, ctx) = run_on(
        r#"$ru = "sip:new@example.org"; append_urihf("X-U: <", ">\r\n");"#,
        INVITE,
        "udp",
    );
    let out = forwarded(&ctx);
    assert_eq!(out.header_str("X-U"), Some("<sip:bob@biloxi.example.com>"));
}

// Empty text adds nothing and succeeds (OpenSIPS inserts the empty string); a folded line
// continues its header.
#[test]
fn header_text_empty_or_folded() {
    let (l, ctx) = run_on(
        r#"$var(empty) = "";
        if (append_hf("$var(empty)")) xlog("append\n");
        if (insert_hf("")) xlog("insert\n");
        if (append_to_reply("")) xlog("reply\n");
        if (append_hf("X-Long: a,\r\n b\r\n")) xlog("folded\n");"#,
        INVITE,
        "udp",
    );
    assert_eq!(l, ["append\n", "insert\n", "reply\n", "folded\n"]);
    assert!(ctx.reply_headers.is_empty());
    let out = forwarded(&ctx);
    assert_eq!(out.header_str("X-Long"), Some("a, b"));
    assert_eq!(
        out.headers().count(),
        SipMessage::parse(Bytes::from(INVITE))
            .unwrap()
            .headers()
            .count()
            + 1
    );
}

// fnmatch: bracket sets and escapes.
#[test]
fn remove_hf_glob_understands_sets() {
    let (l, ctx) = run_on(
        r#"if (remove_hf_glob("X-[AB]1")) xlog("set\n");"#,
        INVITE,
        "udp",
    );
    assert_eq!(l, ["set\n"]);
    let n = names(&forwarded(&ctx));
    assert!(n.iter().any(|h| h == "X-C1"), "{n:?}");
    assert!(!n.iter().any(|h| h == "X-A1" || h == "X-B1"), "{n:?}");
}

// Not OpenSIPS: a compact form is the same header as its long name for every name-based
// function (OpenSIPS knows only v f t i m l k c o x as compact forms, so `remove_hf("Refer-To")`
// leaves an `r:` header in place). Kept on purpose: stripping and presence checks must not be
// dodged by writing the short name.
#[test]
fn compact_forms_are_their_long_names() {
    let raw = INVITE.replace(
        "X-Foo: 1\r\n",
        "r: <sip:x@y.example.com>\r\nb: <sip:z@y.example.com>\r\n",
    );
    let (l, ctx) = run_on(
        r#"if (is_present_hf("Refer-To")) xlog("present\n");
        if (remove_hf("Referred-By")) xlog("removed\n");"#,
        &raw,
        "udp",
    );
    assert_eq!(l, ["present\n", "removed\n"]);
    assert!(!names(&forwarded(&ctx)).iter().any(|h| h == "b"));
}

// CMD_PARAM_REGEX: a literal that does not compile stops OpenSIPS from starting.
#[test]
fn a_bad_literal_regex_is_a_load_error() {
    let src = |call: &str| format!("loadmodule \"sipmsgops.so\"\nroute {{\n    {call}\n}}");
    for call in [
        r#"remove_hf_re("X-(");"#,
        r#"codec_delete_re("[pcmu");"#,
        r#"stream_exists("audio", "(");"#,
    ] {
        let e = load_errors(&src(call));
        assert!(e.contains("bad regular expression for `"), "{call}: {e}");
        assert!(e.contains("t.cfg:3:"), "{call}: {e}");
    }
    assert_eq!(load_errors(&src(r#"remove_hf_re("^X-(A|B)");"#)), "");
    // From a variable it is checked when the function runs.
    let l = run(
        r#"$var(re) = "X-("; if (!remove_hf_re($var(re))) xlog("refused\n");"#,
        INVITE,
    );
    assert_eq!(l, ["refused\n"]);
}
