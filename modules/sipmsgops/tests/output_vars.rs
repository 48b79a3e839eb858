//! The functions that store into a variable given as an argument (OpenSIPS `CMD_PARAM_VAR`):
//! `sip_to_json`, `get_glob_headers_values`, `get_updated_body_part` and the reason of
//! `sipmsg_validate`; and the load errors for an argument that is not a writable variable.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use bytes::Bytes;
use engine::{MsgCtx, Script};
use sip::SipMessage;

const SDP: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 97\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:97 speex/8000\r\n";

fn invite(ct: &str, body: &str) -> Vec<u8> {
    format!(
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
X-Account: 42\r\n\
x-trace: on\r\n\
Content-Type: {ct}\r\n\
Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn multipart() -> Vec<u8> {
    let body = format!(
        "--b1\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--b1--\r\n"
    );
    invite("multipart/mixed;boundary=b1", &body)
}

/// Runs `body` as the main route over `raw` received on `proto`; returns the xlog lines.
fn run_on(body: &str, raw: Vec<u8>, proto: &'static str) -> (Vec<String>, MsgCtx) {
    common::run(body, raw, Some(common::receipt(proto)))
}

fn run(body: &str, raw: Vec<u8>) -> Vec<String> {
    run_on(body, raw, "udp").0
}

/// The rendered load errors of a script, or "" when it compiles.
fn load_errors(body: &str) -> String {
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(
        &mut sources,
        std::path::Path::new("t.cfg"),
        common::source(body),
    );
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    match Script::compile(&parsed.config, &sources, &common::available()) {
        Ok(_) => String::new(),
        Err(d) => d.iter().map(|d| d.render(&sources)).collect(),
    }
}

#[test]
fn sip_to_json_stores_the_message_as_json() {
    let raw = b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVIA: SIP/2.0/UDP c\r\nX-A: \"q\"\r\nContent-Length: 3\r\n\r\na\tb";
    let l = run(
        r#"if (sip_to_json($var(j))) xlog("var $rc $var(j)\n");
        sip_to_json($avp(j));
        xlog("avp $avp(j)\n");"#,
        raw.to_vec(),
    );
    let json = r#"{"first_line":"OPTIONS sip:x@y SIP/2.0\r\n","headers":{"Via":["SIP/2.0/UDP a;branch=z9hG4bK1","SIP/2.0/UDP c"],"X-A":["\"q\""],"Content-Length":["3"]},"body":"a\tb"}"#;
    assert_eq!(l, [format!("var 1 {json}\n"), format!("avp {json}\n")]);
}

#[test]
fn get_glob_headers_values_pushes_names_and_values() {
    let l = run(
        r#"if (get_glob_headers_values("x-*", $avp(names), $avp(vals))) {
            xlog("newest $avp(names)=$avp(vals), oldest $(avp(names)[1])=$(avp(vals)[1])\n");
        }
        $avp(keep) = "kept";
        if (!get_glob_headers_values("P-*", $avp(keep), $avp(none))) {
            xlog("no match: $avp(keep) $avp(none)\n");
        }"#,
        invite("application/sdp", SDP),
    );
    assert_eq!(
        l,
        [
            "newest x-trace=on, oldest X-Account=42\n",
            "no match: kept <null>\n"
        ]
    );
}

#[test]
fn get_updated_body_part_reads_the_edited_body() {
    // After an edit: the SDP as it will be sent; the message is not changed any further.
    let (l, ctx) = run_on(
        r#"codec_delete("speex");
        if (get_updated_body_part("application/sdp", $var(sdp))) xlog("[$var(sdp)]\n");"#,
        invite("application/sdp", SDP),
        "udp",
    );
    let edited = SDP
        .replace(" 0 8 97", " 0 8")
        .replace("a=rtpmap:97 speex/8000\r\n", "");
    assert_eq!(l, [format!("[{edited}]\n")]);
    let out = SipMessage::parse(Bytes::from(ctx.msg.serialize(&ctx.edits))).unwrap();
    assert_eq!(out.body(), edited.as_bytes());

    // One part of a multipart body, or the whole body without a type.
    let l = run(
        r#"get_updated_body_part("text/plain", $var(t));
        xlog("[$var(t)]\n");
        get_updated_body_part(, $var(all));
        xlog("[$var(all)]\n");
        $var(x) = "unchanged";
        get_updated_body_part("image/png", $var(x));
        xlog("$rc $var(x)\n");"#,
        multipart(),
    );
    let whole = String::from_utf8(multipart()).unwrap();
    let whole = whole.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(
        l,
        [
            "[hello]\n".to_owned(),
            format!("[{whole}]\n"),
            "-2 unchanged\n".to_owned()
        ]
    );

    let bodiless = String::from_utf8(invite("application/sdp", ""))
        .unwrap()
        .replace("Content-Type: application/sdp\r\n", "");
    let l = run(
        r#"get_updated_body_part(, $var(b)); xlog("$rc $var(b)\n");"#,
        bodiless.into_bytes(),
    );
    assert_eq!(l, ["-1 <null>\n"]);
}

#[test]
fn sipmsg_validate_stores_the_reason() {
    let check = |raw: Vec<u8>, proto: &'static str, flags: &str| -> String {
        let body = format!(
            r#"$var(r) = "untouched"; sipmsg_validate("{flags}", $var(r)); xlog("$rc [$var(r)]\n");"#
        );
        run_on(&body, raw, proto).0.concat()
    };
    let ok = invite("application/sdp", SDP);
    assert_eq!(check(ok.clone(), "udp", "s"), "1 [untouched]\n");
    let text = String::from_utf8(ok.clone()).unwrap();

    let no_cl = text.replace(&format!("Content-Length: {}\r\n", SDP.len()), "");
    assert_eq!(
        check(no_cl.into_bytes(), "tcp", ""),
        "-4 [message doesn't have Content Length header for proto 2]\n"
    );

    // A missing mandatory header has no reason text (OpenSIPS leaves it empty).
    let no_mf = text.replace("Max-Forwards: 70\r\n", "");
    assert_eq!(check(no_mf.into_bytes(), "udp", ""), "-13 []\n");

    let bad_sdp = invite("application/sdp", "v=0\r\nm=audio 1 RTP/AVP 0\r\n");
    assert_eq!(
        check(bad_sdp, "udp", "s"),
        "-6 [failed to parse SDP message]\n"
    );

    let star = text.replace(
        "Contact: <sip:alice@pc33.atlanta.example.com>",
        "Contact: *",
    );
    assert_eq!(
        check(star.into_bytes(), "udp", "c"),
        "-30 ['Contact' header for SIP message contains '*' only valid for REGISTER request]\n"
    );

    // The reason variable stays optional.
    let l = run(r#"sipmsg_validate("s"); xlog("$rc\n");"#, ok);
    assert_eq!(l, ["1\n"]);
}

#[test]
fn an_output_argument_must_be_a_writable_variable() {
    let e = load_errors(r#"sip_to_json("out");"#);
    assert!(
        e.contains(
            "`sip_to_json` stores into parameter 1: it takes a variable such as `$var(out)`"
        ),
        "{e}"
    );
    assert!(e.contains("t.cfg:3:13"), "{e}");

    let e = load_errors(r#"sip_to_json($ci);"#);
    assert!(e.contains("cannot assign to `$ci`: it is read-only"), "{e}");
    assert!(e.contains("t.cfg:3:13"), "{e}");

    let e = load_errors(r#"get_glob_headers_values("X-*", $var(n), $avp(v));"#);
    assert!(
        e.contains("`get_glob_headers_values` stores into parameter 2: it takes an AVP such as `$avp(out)`, not `$var(n)`"),
        "{e}"
    );
    assert!(e.contains("t.cfg:3:32"), "{e}");

    let e = load_errors(r#"sipmsg_validate("s", 5);"#);
    assert!(e.contains("stores into parameter 2"), "{e}");

    let e = load_errors(r#"get_updated_body_part("application/sdp");"#);
    assert!(!e.is_empty(), "the variable is mandatory");

    assert_eq!(
        load_errors(r#"get_updated_body_part(, $avp(b)); sipmsg_validate(, $var(r));"#),
        ""
    );
}
