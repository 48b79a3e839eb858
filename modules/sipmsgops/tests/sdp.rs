//! SDP, body-part, validation and list-header functions run from a script over real
//! messages; the edited message is serialized and parsed again.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use bytes::Bytes;
use engine::MsgCtx;
use sip::SipMessage;

const SDP: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 18 97 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:97 speex/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=sendrecv\r\n\
m=video 51372 RTP/AVP 31 34\r\n\
a=rtpmap:31 H261/90000\r\n\
a=rtpmap:34 H263/90000\r\n";

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
Supported: replaces, 100rel,timer\r\n\
Content-Type: {ct}\r\n\
Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn multipart(sdp: &str) -> Vec<u8> {
    let body = format!(
        "--unique-boundary-1\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n\
--unique-boundary-1\r\nContent-Type: application/isup;version=nxv3\r\nContent-Disposition: signal;handling=optional\r\n\r\nISUP-BYTES\r\n\
--unique-boundary-1--\r\n"
    );
    invite("multipart/mixed;boundary=unique-boundary-1", &body)
}

fn run(body: &str, raw: Vec<u8>) -> (Vec<String>, MsgCtx) {
    common::run(body, raw, None)
}

fn forwarded(ctx: &MsgCtx) -> SipMessage {
    let out = SipMessage::parse(Bytes::from(ctx.msg.serialize(&ctx.edits))).unwrap();
    let cl = out.content_length().unwrap().unwrap();
    assert_eq!(cl as usize, out.body().len(), "Content-Length is right");
    out
}

fn body(ctx: &MsgCtx) -> String {
    String::from_utf8(forwarded(ctx).body().to_vec()).unwrap()
}

/// Runs `script` over an INVITE with `SDP` and returns the log and the resulting body.
fn sdp_run(script: &str) -> (Vec<String>, String) {
    let (l, ctx) = run(script, invite("application/sdp", SDP));
    (l, body(&ctx))
}

#[test]
fn codec_exists_by_name_clock_and_regex() {
    let (l, b) = sdp_run(
        r#"if (codec_exists("pcmu")) xlog("pcmu\n");
        if (codec_exists("G729", "8000")) xlog("g729-static\n");
        if (!codec_exists("speex", "16000")) xlog("no-speex16\n");
        if (codec_exists("H263")) xlog("video\n");
        if (!codec_exists("opus")) xlog("no-opus\n");
        if (codec_exists_re("^tele.*")) xlog("re\n");
        if (!codec_exists_re("^AMR")) xlog("no-amr\n");"#,
    );
    assert_eq!(
        l,
        [
            "pcmu\n",
            "g729-static\n",
            "no-speex16\n",
            "video\n",
            "no-opus\n",
            "re\n",
            "no-amr\n"
        ]
    );
    assert_eq!(b, SDP, "lookups leave the body alone");
}

#[test]
fn codec_delete_takes_the_payload_and_its_lines() {
    let (l, b) = sdp_run(
        r#"if (codec_delete("speex")) xlog("speex\n");
        if (codec_delete("G729", "8000")) xlog("g729\n");
        if (!codec_delete("PCMU", "16000")) xlog("wrong-clock\n");
        if (!codec_exists("speex")) xlog("gone\n");"#,
    );
    assert_eq!(l, ["speex\n", "g729\n", "wrong-clock\n", "gone\n"]);
    let expected = SDP
        .replace("RTP/AVP 0 8 18 97 101", "RTP/AVP 0 8 101")
        .replace("a=fmtp:18 annexb=no\r\n", "")
        .replace("a=rtpmap:97 speex/8000\r\n", "");
    assert_eq!(b, expected);
}

#[test]
fn codec_delete_re_and_except_re() {
    let (l, b) = sdp_run(r#"if (codec_delete_re("PCM[AU]")) xlog("pcm\n");"#);
    assert_eq!(l, ["pcm\n"]);
    let expected = SDP
        .replace("RTP/AVP 0 8 18", "RTP/AVP 18")
        .replace("a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", "");
    assert_eq!(b, expected);

    let (_, b) = sdp_run(r#"codec_delete_except_re("PCMA|telephone-event");"#);
    let expected = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 8 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=sendrecv\r\n\
m=video 0 RTP/AVP\r\n";
    assert_eq!(b, expected, "video lost every codec: port 0, as OpenSIPS");
}

#[test]
fn codec_moves_keep_relative_order() {
    let (l, b) = sdp_run(
        r#"if (codec_move_up("speex")) xlog("up\n");
        if (codec_move_down_re("PCM")) xlog("down\n");
        if (codec_move_up_re("h263")) xlog("video-up\n");
        if (codec_move_down("telephone-event", "8000")) xlog("dtmf-down\n");
        if (!codec_move_up("opus")) xlog("absent\n");"#,
    );
    assert_eq!(
        l,
        ["up\n", "down\n", "video-up\n", "dtmf-down\n", "absent\n"]
    );
    assert!(b.contains("m=audio 49170 RTP/AVP 97 18 0 8 101\r\n"), "{b}");
    assert!(b.contains("m=video 51372 RTP/AVP 34 31\r\n"), "{b}");
    assert_eq!(b.len(), SDP.len());
}

#[test]
fn streams_exist_and_go() {
    let (l, b) = sdp_run(
        r#"if (stream_exists("video")) xlog("video\n");
        if (stream_exists("audio", "RTP/AVP")) xlog("avp\n");
        if (!stream_exists("audio", "SAVP")) xlog("no-savp\n");
        if (!stream_exists("image")) xlog("no-fax\n");
        if (stream_delete("video")) xlog("deleted\n");
        if (!stream_exists("video")) xlog("gone\n");
        if (!stream_delete("video")) xlog("nothing-left\n");"#,
    );
    assert_eq!(
        l,
        [
            "video\n",
            "avp\n",
            "no-savp\n",
            "no-fax\n",
            "deleted\n",
            "gone\n",
            "nothing-left\n"
        ]
    );
    assert_eq!(b, SDP.split("m=video").next().unwrap());
}

#[test]
fn sdp_functions_reach_into_multipart_bodies() {
    let (l, ctx) = run(
        r#"if (has_body_part("application/sdp")) xlog("sdp\n");
        if (has_body("application/isup")) xlog("isup\n");
        if (has_body_part("multipart/mixed")) xlog("mixed\n");
        if (!has_body_part("text/plain")) xlog("no-text\n");
        if (codec_delete("PCMU")) xlog("deleted\n");
        if (stream_delete("video")) xlog("no-video\n");"#,
        multipart(SDP),
    );
    assert_eq!(
        l,
        [
            "sdp\n",
            "isup\n",
            "mixed\n",
            "no-text\n",
            "deleted\n",
            "no-video\n"
        ]
    );
    let edited = SDP
        .split("m=video")
        .next()
        .unwrap()
        .replace("RTP/AVP 0 8", "RTP/AVP 8")
        .replace("a=rtpmap:0 PCMU/8000\r\n", "");
    let out = forwarded(&ctx);
    let expected = String::from_utf8(multipart(&edited)).unwrap();
    let expected_body = expected
        .split("\r\n\r\n")
        .skip(1)
        .collect::<Vec<_>>()
        .join("\r\n\r\n");
    assert_eq!(
        String::from_utf8(out.body().to_vec()).unwrap(),
        expected_body
    );
    assert_eq!(
        out.header(sip::HeaderName::ContentType),
        Some("multipart/mixed;boundary=unique-boundary-1")
    );
}

#[test]
fn audio_on_hold_codes() {
    let hold = |sdp: &str| {
        let (l, _) = run(
            r#"is_audio_on_hold(); xlog("$rc\n");"#,
            invite("application/sdp", sdp),
        );
        l
    };
    assert_eq!(hold(SDP), ["-1\n"]);
    assert_eq!(hold(&SDP.replace("a=sendrecv", "a=sendonly")), ["2\n"]);
    assert_eq!(hold(&SDP.replace("a=sendrecv", "a=inactive")), ["2\n"]);
    assert_eq!(
        hold(&SDP.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0")),
        ["1\n"]
    );
    // Only audio counts: a held video stream is not an audio hold.
    let video_held = SDP.replace(
        "a=rtpmap:34 H263/90000\r\n",
        "a=rtpmap:34 H263/90000\r\na=inactive\r\n",
    );
    assert_eq!(hold(&video_held), ["-1\n"]);
}

#[test]
fn malformed_sdp_is_no_sdp_and_never_panics() {
    let bad = [
        "",
        "garbage",
        "v=0\r\nm=audio 1 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 a\r\nm=audio\r\nc=IN IP4 1.2.3.4\r\n",
        "v=0\no=- 1 1 IN IP4 a\nc=IN IP4 1.1.1.1\nm=audio 9 RTP/AVP 0\na=rtpmap:0\na=fmtp:\na=rtpmap:0 /\n",
        "\u{0}\u{1}=\r\r\n\n=a=rtpmap:0 PCMU/8000",
    ];
    for sdp in bad {
        let (l, ctx) = run(
            r#"if (!codec_delete("PCMU")) xlog("refused\n");
            if (!stream_delete("audio")) xlog("refused\n");
            if (!is_audio_on_hold()) xlog("refused\n");"#,
            invite("application/sdp", sdp),
        );
        let valid = sdp.contains("c=IN IP4 1.1.1.1");
        if !valid {
            assert_eq!(l, ["refused\n", "refused\n", "refused\n"], "{sdp:?}");
            assert!(ctx.edits.is_empty(), "{sdp:?}");
        }
    }
    // LF-only but acceptable: edited in place with LF kept.
    let (_, b) = sdp_run_text(
        r#"codec_delete("PCMU");"#,
        "v=0\no=- 1 1 IN IP4 a\nc=IN IP4 1.1.1.1\nm=audio 9 RTP/AVP 0 8\na=rtpmap:0 PCMU/8000\n",
    );
    assert_eq!(
        b,
        "v=0\no=- 1 1 IN IP4 a\nc=IN IP4 1.1.1.1\nm=audio 9 RTP/AVP 8\n"
    );
}

fn sdp_run_text(script: &str, sdp: &str) -> (Vec<String>, String) {
    let (l, ctx) = run(script, invite("application/sdp", sdp));
    (l, body(&ctx))
}

#[test]
fn add_body_part_turns_a_single_body_into_multipart() {
    let (l, ctx) = run(
        r#"if (add_body_part("<xml/>", "application/pidf+xml", "Content-ID: <a@b>\r\n")) xlog("added\n");"#,
        invite("application/sdp", SDP),
    );
    assert_eq!(l, ["added\n"]);
    let out = forwarded(&ctx);
    assert_eq!(
        out.header(sip::HeaderName::ContentType),
        Some("multipart/mixed;boundary=OSS-unique-boundary-42")
    );
    let expected = format!(
        "--OSS-unique-boundary-42\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n\
--OSS-unique-boundary-42\r\nContent-Type: application/pidf+xml\r\nContent-ID: <a@b>\r\n\r\n<xml/>\r\n\
--OSS-unique-boundary-42--\r\n"
    );
    assert_eq!(String::from_utf8(out.body().to_vec()).unwrap(), expected);
}

#[test]
fn add_then_remove_body_parts() {
    // Added to an existing multipart body, with its own boundary, before the closing line.
    let (_, ctx) = run(
        r#"add_body_part("hello", "text/plain");
        if (has_body_part("text/plain")) xlog("sees-new-part\n");"#,
        multipart(SDP),
    );
    let b = body(&ctx);
    assert!(
        b.ends_with("ISUP-BYTES\r\n--unique-boundary-1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--unique-boundary-1--\r\n"),
        "{b}"
    );

    // n → 1: the SDP part becomes the whole body, Content-Type follows.
    let (l, ctx) = run(
        r#"if (remove_body_part("application/isup")) xlog("removed\n");
        if (!remove_body_part("text/html")) xlog("none\n");"#,
        multipart(SDP),
    );
    assert_eq!(l, ["removed\n", "none\n"]);
    let out = forwarded(&ctx);
    assert_eq!(String::from_utf8(out.body().to_vec()).unwrap(), SDP);
    assert_eq!(
        out.header(sip::HeaderName::ContentType),
        Some("application/sdp")
    );

    // "revert": all but SDP.
    let (_, ctx) = run(
        r#"remove_body_part("application/sdp", "revert");"#,
        multipart(SDP),
    );
    assert_eq!(body(&ctx), SDP);

    // Everything: no body, no Content-Type, Content-Length 0.
    let (l, ctx) = run(
        r#"if (remove_body_part()) xlog("all\n"); if (!has_body()) xlog("empty\n");"#,
        invite("application/sdp", SDP),
    );
    assert_eq!(l, ["all\n", "empty\n"]);
    let out = forwarded(&ctx);
    assert!(out.body().is_empty());
    assert_eq!(out.header(sip::HeaderName::ContentType), None);

    // A body added to an empty message is the whole body.
    let (_, ctx) = run(
        r#"remove_body_part(); add_body_part("hi", "text/plain");"#,
        invite("application/sdp", SDP),
    );
    let out = forwarded(&ctx);
    assert_eq!(out.body(), b"hi");
    assert_eq!(out.header(sip::HeaderName::ContentType), Some("text/plain"));
}

#[test]
fn sipmsg_validate_codes() {
    let code = |script_flags: &str, raw: Vec<u8>| {
        let (l, _) = run(
            &format!(r#"sipmsg_validate("{script_flags}"); xlog("$rc\n");"#),
            raw,
        );
        l.first().cloned().unwrap()
    };
    let ok = invite("application/sdp", SDP);
    assert_eq!(code("", ok.clone()), "1\n");
    assert_eq!(code("shrftc", ok.clone()), "1\n");
    let s = String::from_utf8(ok).unwrap();
    let without = |h: &str| {
        s.lines()
            .filter(|l| !l.starts_with(h))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .replace('\n', "\r\n")
            .replace("\r\r\n", "\r\n")
            .into_bytes()
    };
    assert_eq!(code("", without("Max-Forwards")), "-13\n");
    assert_eq!(code("m", without("Max-Forwards")), "1\n");
    assert_eq!(code("", without("Content-Type")), "-21\n");
    assert_eq!(code("c", without("Contact")), "-14\n");
    let bad_sdp = invite("application/sdp", "v=0\r\nm=audio 1 RTP/AVP 0\r\n");
    assert_eq!(code("", bad_sdp.clone()), "1\n");
    assert_eq!(code("s", bad_sdp), "-6\n");
    let bad_ruri = s.replacen("sip:bob@biloxi.example.com SIP", "sip:bob@bad_host SIP", 1);
    assert_eq!(code("r", bad_ruri.clone().into_bytes()), "-12\n");
    assert_eq!(code("", bad_ruri.into_bytes()), "1\n");
    let bad_from_user = s.replacen("sip:alice@atlanta", "sip:al{ice@atlanta", 1);
    // rsips' URI parser already refuses characters outside RFC 3261 `user`, so such a From is a
    // parse error (-24), not OpenSIPS' later "bad From username" (-28).
    assert_eq!(code("f", bad_from_user.clone().into_bytes()), "-24\n");
    assert_eq!(code("", bad_from_user.into_bytes()), "1\n");
    let bad_to_host = s.replacen(
        "To: Bob <sip:bob@biloxi.example.com>",
        "To: Bob <sip:bob@bad_host>",
        1,
    );
    assert_eq!(code("t", bad_to_host.into_bytes()), "-23\n");
    let path = s.replacen("Supported:", "Path: <sip:p@x;lr>\r\nSupported:", 1);
    assert_eq!(code("", path.into_bytes()), "-15\n");
    let star = s.replacen(
        "Contact: <sip:alice@pc33.atlanta.example.com>",
        "Contact: *",
        1,
    );
    assert_eq!(code("c", star.into_bytes()), "-30\n");
    let reply = b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
    let (l, _) = {
        // validate runs in onreply routes too; here the route kind does not matter.
        run(r#"sipmsg_validate(); xlog("$rc\n");"#, reply.to_vec())
    };
    assert_eq!(l, ["-20\n"]);
}

#[test]
fn list_header_options() {
    let (l, ctx) = run(
        r#"if (list_hdr_has_option("Supported", "100REL")) xlog("has\n");
        if (!list_hdr_has_option("Supported", "path")) xlog("not\n");
        if (!list_hdr_has_option("Require", "100rel")) xlog("no-header\n");
        if (list_hdr_remove_option("Supported", "100rel")) xlog("removed\n");
        if (list_hdr_add_option("Supported", "path")) xlog("second-change\n");
        if (!list_hdr_add_option("Require", "path")) xlog("absent\n");"#,
        invite("application/sdp", SDP),
    );
    assert_eq!(
        l,
        [
            "has\n",
            "not\n",
            "no-header\n",
            "removed\n",
            "second-change\n",
            "absent\n"
        ]
    );
    assert_eq!(
        forwarded(&ctx).header_str("Supported"),
        Some("replaces, timer,path"),
        "both changes to the line add up"
    );

    let (_, ctx) = run(
        r#"list_hdr_add_option("Supported", "path");"#,
        invite("application/sdp", SDP),
    );
    assert_eq!(
        forwarded(&ctx).header_str("Supported"),
        Some("replaces, 100rel,timer,path")
    );

    let last = |opt: &str| {
        let (_, ctx) = run(
            &format!(r#"list_hdr_remove_option("Supported", "{opt}");"#),
            invite("application/sdp", SDP),
        );
        forwarded(&ctx).header_str("Supported").map(str::to_owned)
    };
    assert_eq!(last("timer").as_deref(), Some("replaces, 100rel"));
    assert_eq!(last("replaces").as_deref(), Some("100rel,timer"));

    let single = String::from_utf8(invite("application/sdp", SDP))
        .unwrap()
        .replace("Supported: replaces, 100rel,timer", "Supported: timer");
    let (_, ctx) = run(
        r#"list_hdr_remove_option("Supported", "timer");"#,
        single.into_bytes(),
    );
    assert_eq!(
        forwarded(&ctx).header_str("Supported"),
        None,
        "last option: header removed"
    );
}

#[test]
fn append_time_adds_a_date_to_the_reply() {
    let (_, ctx) = run(r#"append_time();"#, invite("application/sdp", SDP));
    let [date] = &ctx.reply_headers[..] else {
        panic!("{:?}", ctx.reply_headers)
    };
    let value = date.strip_prefix("Date: ").unwrap();
    assert!(sip::SipDate::parse(value).is_ok(), "{value}");
}

#[test]
fn json_and_glob_views() {
    let raw = b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nv: SIP/2.0/UDP b;branch=z9hG4bK2\r\nVIA: SIP/2.0/UDP c\r\nX-A: \"q\"\r\nx-b: 2\r\nContent-Length: 3\r\n\r\na\tb";
    let msg = SipMessage::parse(Bytes::from_static(raw)).unwrap();
    assert_eq!(
        sipmsgops::sip_to_json(&msg),
        r#"{"first_line":"OPTIONS sip:x@y SIP/2.0\r\n","headers":{"Via":["SIP/2.0/UDP a;branch=z9hG4bK1","SIP/2.0/UDP c"],"v":["SIP/2.0/UDP b;branch=z9hG4bK2"],"X-A":["\"q\""],"x-b":["2"],"Content-Length":["3"]},"body":"a\tb"}"#
    );
    assert_eq!(
        sipmsgops::glob_headers_values(&msg, "x-*"),
        [("X-A", "\"q\""), ("x-b", "2")]
    );
}
