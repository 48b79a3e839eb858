//! OpenSIPS 4.0's SDP variables (`$sdp`, `$sdp.line`, `$sdp.session`, `$sdp.stream`,
//! `$sdp.stream.idx`) run over messages: the cases of OpenSIPS' own test/test-sdp-ops.cfg
//! (each with CRLF and LF separators, with and without a line end after the last line), and
//! the bytes of the message that leaves after the edits.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;
use common::{compile, compile_with};

use bytes::Bytes;
use engine::{Available, MemoryLog, MsgCtx, Receipt, Script, Worker};
use sip::SipMessage;

const HEAD: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n";

fn message(extra_headers: &str, body: &str) -> SipMessage {
    let raw = format!(
        "{HEAD}{extra_headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    SipMessage::parse(Bytes::from(raw)).unwrap()
}

/// Runs `route { body }` (asserts enabled) over `msg`; returns the log and the context.
fn run_on(msg: SipMessage, body: &str) -> (Vec<String>, MsgCtx) {
    let script = compile(&format!(
        "enable_asserts = true\nroute {{\n{body}\nxlog(\"done\\n\");\n}}\n"
    ));
    common::run(&script, msg)
}

/// Runs and requires every assertion to hold (the script reaches its end).
fn check(msg: SipMessage, body: &str) -> MsgCtx {
    let (log, ctx) = run_on(msg, body);
    assert!(
        log.last().is_some_and(|l| l == "done\n") && !log.iter().any(|l| l.contains("ASSERT")),
        "{log:#?}"
    );
    ctx
}

fn sent(ctx: &MsgCtx) -> String {
    String::from_utf8(ctx.msg.serialize(&ctx.edits)).unwrap()
}

/// The four separator variants of the OpenSIPS test: (`$var(sep)`, `$var(sep_last)`).
const SEPS: [(&str, &str); 4] = [
    ("\\r\\n", "\\r\\n"),
    ("\\r\\n", ""),
    ("\\n", "\\n"),
    ("\\n", ""),
];

fn sdp_var(lines: &[&str], sep: &str, last: &str) -> String {
    let mut s = String::from("$var(sdp) = ");
    for (i, l) in lines.iter().enumerate() {
        let end = if i + 1 == lines.len() { last } else { sep };
        s.push_str(&format!("\"{l}{end}\""));
        s.push_str(if i + 1 == lines.len() { ";\n" } else { " + " });
    }
    s
}

const T1: [&str; 14] = [
    "v=0",
    "o=Sonus_UAC 14892 145022 IN IP4 1.2.3.4",
    "s=SIP Media Capabilities",
    "c=IN IP4 1.2.3.4",
    "t=0 0",
    "m=audio 46938 RTP/AVP 0 8 18 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:18 G729/8000",
    "a=fmtp:18 annexb=no",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=sendrecv",
    "a=maxptime:20",
];

#[test]
fn t1_sdp_set_null_and_set_again() {
    for (sep, last) in SEPS {
        let ctx = check(
            message("", ""),
            &format!(
                r#"{}
        assert($rb(application/sdp) == NULL, "no sdp yet");
        $sdp = $var(sdp);
        assert($rb(application/sdp) == $var(sdp), "1.1 rb");
        assert($sdp == $var(sdp), "1.1 sdp");
        $sdp = NULL;
        assert($rb(application/sdp) == NULL, "1.2 rb");
        assert($sdp == NULL, "1.2 sdp");
        $sdp = $var(sdp);
        assert($rb(application/sdp) == $var(sdp), "1.3");
        $sdp = NULL;
        assert($sdp == NULL, "1.4");
        $sdp = $var(sdp);
        assert($sdp == $var(sdp), "1.5");"#,
                sdp_var(&T1, sep, last)
            ),
        );
        // The new body leaves with its Content-Type and Content-Length.
        let out = sent(&ctx);
        let sep = sep.replace("\\r", "\r").replace("\\n", "\n");
        let last = last.replace("\\r", "\r").replace("\\n", "\n");
        let body = format!("{}{last}", T1.join(&sep));
        assert!(
            out.ends_with(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )),
            "{out}"
        );
        assert_eq!(out.matches("Content-Length").count(), 1);
    }
}

const T2: [&str; 14] = [
    "v=0",
    "o=Sonus_UAC 14892 145022 IN IP4 1.2.3.4",
    "s=SIP Media Capabilities",
    "c=IN IP4 1.2.3.4",
    "t=0 0",
    "m=audio 46938 RTP/AVP 0 8 18 101",
    "a=rtpmap:0 PCMU/8000 bitrate=7000 bitrate=4000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:18 G729/8000",
    "a=fmtp:18 annexb=no",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=sendrecv",
    "a=maxptime:20",
];

#[test]
fn t2_line_reads_and_writes() {
    for (sep, last) in SEPS {
        let mut reads = String::new();
        for (i, l) in T2.iter().enumerate() {
            reads.push_str(&format!(
                "assert($sdp.line([{i}]) == \"{l}\", \"2.1 line {i}\");\n\
                 assert($sdp.line([{i}]) == $sdp.line([$var(i)]), \"2.1 pv {i}\"); $var(i) += 1;\n"
            ));
        }
        let script = format!(
            r#"{}
        $sdp = $var(sdp);
        $var(i) = 0;
        {reads}
        assert($sdp.line([14]) == NULL, "2.1 past the end");
        assert($sdp.line([$var(i)]) == NULL, "2.1 pv past the end");
        assert($sdp.line(a=rtpmap/PCMU) == "PCMU/8000", "2.2.0");
        $var(i) = 2;
        assert($sdp.line(a=rtpmap[0]) == "a=rtpmap:0 PCMU/8000 bitrate=7000 bitrate=4000", "2.2.1");
        assert($sdp.line(a=rtpmap[1]) == "a=rtpmap:8 PCMA/8000", "2.2.2");
        assert($sdp.line(a=rtpmap[2]) == "a=rtpmap:18 G729/8000", "2.2.3");
        assert($sdp.line(a=rtpmap[$var(i)]) == "a=rtpmap:18 G729/8000", "2.2.4");
        assert($sdp.line(a=rtpmap[3]) == "a=rtpmap:101 telephone-event/8000", "2.2.5");
        assert($sdp.line(a=rtpmap[4]) == NULL, "2.2.5b");
        assert($sdp.line(a=[3]) == "a=fmtp:18 annexb=no", "2.2.6");
        assert($sdp.line(a=[30]) == NULL, "2.2.7");
        $var(i) = 0;
        assert($sdp.line(a=[3]/annexb) == "annexb=no", "2.2.8");
        assert($sdp.line(a=[3]/annexb[0]) == "annexb=no", "2.2.9");
        assert($sdp.line(a=[3]/annexb[$var(i)]) == "annexb=no", "2.2.10"); $var(i) += 1;
        assert($sdp.line(a=[3]/annexb ) == NULL, "2.2.11");
        assert($sdp.line(a=[3]/annexb [0]) == NULL, "2.2.12");
        assert($sdp.line(a=[3]/annexb[1]) == NULL, "2.2.13");
        assert($sdp.line(a=[3]/annexb[$var(i)]) == NULL, "2.2.14");
        assert($sdp.line(a=rtpmap[0]/bitrate[1]) == "bitrate=4000", "2.2.15");
        $sdp.line([3]) = "c=IN IP4 1.2.3.10";
        assert($sdp.line([3]) == "c=IN IP4 1.2.3.10", "2.3.0");
        $sdp.line([12]) = "a=nortpproxy:yes";
        assert($sdp.line([11]) == "a=fmtp:101 0-15", "2.3.1");
        assert($sdp.line([12]) == "a=nortpproxy:yes", "2.3.2");
        assert($sdp.line([13]) == "a=maxptime:20", "2.3.3");
        $sdp.line([13]) = NULL;
        assert($sdp.line([12]) == "a=nortpproxy:yes", "2.5.0");
        assert($sdp.line([13]) == NULL, "2.5.1");
        $sdp.line([15]) = NULL;
        $sdp.line(a=maxptime) = "a=maxptime:20";
        assert($rc < 0, "a missing line is not written");
        $sdp.line([12]) = NULL;
        $sdp.line(a=fmtp:101) = "a=fmtp:101 0-15";
        $sdp.line(a=fmtp:101) = "a=fmtp:101 0-15" + $var(sep);
        xlog("$sdp");"#,
            sdp_var(&T2, sep, last)
        )
        .replace("$var(sep)", &format!("\"{sep}\""));
        let ctx = check(message("", ""), &script);
        // Lines edited, the rest as set; every line ends with the separator now.
        let sep = sep.replace("\\r", "\r").replace("\\n", "\n");
        let mut want: Vec<&str> = T2[..12].to_vec();
        want[3] = "c=IN IP4 1.2.3.10";
        let want = format!("{}{sep}", want.join(&sep));
        let out = sent(&ctx);
        assert!(
            out.ends_with(&format!("Content-Length: {}\r\n\r\n{want}", want.len())),
            "{out:?}"
        );
    }
}

const T3: [&str; 29] = [
    "v=0",
    "o=Sonus_UAC 14892 145022 IN IP4 1.2.3.4",
    "s=SIP Media Capabilities",
    "c=IN IP4 1.2.3.4",
    "t=0 0",
    "m=audio 46938 RTP/AVP 0 8 18 101",
    "a=rtpmap:0 PCMU/8000 bitrate=7000 bitrate=4000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:18 G729/8000",
    "a=fmtp:18 annexb=no",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=sendrecv",
    "a=maxptime:20",
    "m=video 8000/2 RTP/AVP 96 97",
    "a=rtpmap:96 H264/90000",
    "a=fmtp:96 packetization-mode=0; profile-level-id=4D4033",
    "a=rtpmap:97 H264/90000",
    "a=fmtp:97 packetization-mode=0; profile-level-id=4D4033",
    "a=control:trackID=1",
    "m=audio 27292 RTP/AVP 9 8 0 2 102 100 99 101",
    "a=rtpmap:2 G726-32/8000",
    "a=rtpmap:102 G726-32/8000",
    "a=rtpmap:100 G726-40/8000",
    "a=rtpmap:99 G726-24/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=sendrecv",
    "a=ptime:20",
];

#[test]
fn t3_stream_reads_writes_and_indexes() {
    for (sep, last) in SEPS {
        let script = format!(
            r#"{}
        $sdp = $var(sdp);
        assert($sdp.stream(/) == "m=audio 46938 RTP/AVP 0 8 18 101", "3.1.1");
        assert($sdp.stream(/[0]) == "m=audio 46938 RTP/AVP 0 8 18 101", "3.1.2");
        assert($sdp.stream([0]/[0]) == "m=audio 46938 RTP/AVP 0 8 18 101", "3.1.3");
        assert($sdp.stream([1]/) == "m=video 8000/2 RTP/AVP 96 97", "3.1.4");
        assert($sdp.stream([2]/[0]) == "m=audio 27292 RTP/AVP 9 8 0 2 102 100 99 101", "3.1.5");
        assert($sdp.stream(a) == "m=audio 46938 RTP/AVP 0 8 18 101", "3.2.1");
        assert($sdp.stream(audio[0]/) == "m=audio 46938 RTP/AVP 0 8 18 101", "3.2.2");
        assert($sdp.stream(audio/a=rtpmap[1]) == "a=rtpmap:8 PCMA/8000", "3.2.3");
        assert($sdp.stream(audio[0]/a=rtpmap[3]) == "a=rtpmap:101 telephone-event/8000", "3.2.4");
        assert($sdp.stream(audio[0]/a=rtpmap[4]) == NULL, "3.2.5");
        $var(i) = 1; $var(j) = 2;
        assert($sdp.stream(audio[1]/a=rtpmap) == "a=rtpmap:2 G726-32/8000", "3.2.6");
        assert($sdp.stream(audio[$var(i)]/a=rtpmap[$var(j)]) == "a=rtpmap:100 G726-40/8000", "3.2.7");
        assert($sdp.stream(audio[1]/a=rtpmap[4]) == "a=rtpmap:101 telephone-event/8000", "3.2.8");
        assert($sdp.stream(audio[1]/a=rtpmap[5]) == NULL, "3.2.9");
        assert($sdp.stream(audio[2]/a=rtpmap) == NULL, "3.2.10");
        assert($sdp.stream(video/) == "m=video 8000/2 RTP/AVP 96 97", "3.3.1");
        assert($sdp.stream(video[0]/a=rtpmap[1]) == "a=rtpmap:97 H264/90000", "3.3.2");
        assert($sdp.stream(video[0]/a=rtpmap[2]) == NULL, "3.3.3");
        assert($sdp.stream(video[1]) == NULL, "3.3.4");
        assert($sdp.stream(video[1]/a=rtpmap[0]) == NULL, "3.3.5");
        assert($sdp.stream(video/a=fmtp:97/profile) == "profile-level-id=4D4033", "3.3.6");
        $sdp.stream(audio[1]/a=rtpmap[2]) = "a=rtpmap:100 G726-40/16000";
        $sdp.stream(audio[1]/a=rtpmap[4]) = NULL;
        assert($sdp.stream(audio[1]/a=rtpmap[2]) == "a=rtpmap:100 G726-40/16000", "3.4.1");
        assert($sdp.stream(audio[1]/a=rtpmap[4]) == NULL, "3.4.2");
        assert($sdp.stream(audio[1]/a=fmtp) == "a=fmtp:101 0-15", "3.4.3");
        assert($sdp.stream.idx(/v=0) == NULL, "3.5.1");
        assert($sdp.stream.idx(audio/a=rtpmap:18) == 8, "3.5.2");
        assert($sdp.stream.idx(video/a=rtpmap:97) == 17, "3.5.3");
        assert($sdp.stream.idx(audio[1]/a=fmtp) == 25, "3.5.4");
        assert($sdp.stream.idx(audio[1]/a=xmtp) == NULL, "3.5.5");
        $var(line_idx) = $sdp.stream.idx(video/a=fmtp/packetization-mode=);
        assert($var(line_idx) == 16, "3.5.6");
        $var(data) = $sdp.line([$var(line_idx)]);
        $sdp.line([$var(line_idx)]) = $var(data) + "; max-br=500";
        assert($sdp.stream(video/a=fmtp[0]) == "a=fmtp:96 packetization-mode=0; profile-level-id=4D4033; max-br=500", "3.5.7");
        $sdp.stream(video/a=fmtp:96/packetization-mode=) = "1;";
        assert($sdp.line([16]/[1]) == "packetization-mode=1;", "3.6.1");"#,
            sdp_var(&T3, sep, last)
        );
        let ctx = check(message("", ""), &script);
        let out = sent(&ctx);
        assert!(
            out.contains("a=fmtp:96 packetization-mode=1; profile-level-id=4D4033; max-br=500")
        );
        assert!(!out.contains(
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\na=ptime"
        ));
    }
}

#[test]
fn t4_session_reads_and_writes() {
    for (sep, last) in SEPS {
        let script = format!(
            r#"{}
        $sdp = $var(sdp);
        $var(i) = 3; $var(j) = 2;
        assert($sdp.session(/) == "v=0", "4.1.1");
        assert($sdp.session(/[0]) == "v=0", "4.1.2");
        assert($sdp.session([1]/) == "o=Sonus_UAC", "4.1.3");
        assert($sdp.session([3]/[1]) == "IP4", "4.1.4");
        assert($sdp.session([$var(i)]/[$var(j)]) == "1.2.3.4", "4.1.5");
        assert($sdp.session([3]/[3]) == NULL, "4.1.6");
        assert($sdp.session([4]) == "t=0 0", "4.1.7");
        assert($sdp.session([5]) == NULL, "4.1.8");
        assert($sdp.session(a=rtpmap) == NULL, "4.1.9");
        $sdp.session([4]) = "a=test";
        assert($sdp.session([4]) == "a=test", "4.2.1");
        $sdp.session([5]) = "a=not-in-session";
        assert($rc < 0, "4.2.2");
        $sdp.session([0]) = NULL;
        assert($sdp.session([0]) == "o=Sonus_UAC 14892 145022 IN IP4 1.2.3.4", "4.2.3");
        assert($sdp.session([4]) == NULL, "4.2.4");"#,
            sdp_var(&T1, sep, last)
        );
        let ctx = check(message("", ""), &script);
        let sep = sep.replace("\\r", "\r").replace("\\n", "\n");
        let body = ctx.msg.serialize(&ctx.edits);
        let body = String::from_utf8(body).unwrap();
        let want = format!("\r\n\r\n{}{sep}a=test{sep}m=audio", T1[1..4].join(&sep));
        assert!(body.contains(&want), "{body:?}");
    }
}

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=nortpproxy:yes\r\n";

#[test]
fn a_forwarded_invite_carries_the_edited_sdp() {
    let msg = message("Content-Type: application/sdp\r\n", OFFER);
    let ctx = check(
        msg,
        r#"
        assert($sdp == $rb, "the received body");
        $sdp.line(c=) = "c=IN IP4 192.0.2.1";
        $sdp.stream(audio/a=nortpproxy) = NULL;
        $sdp.line(m=audio/4000) = "";
        $sdp.line(m=audio/[1]) = "20000";
        assert($rb == $sdp, "rb follows");"#,
    );
    let want_body = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
m=audio 20000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n";
    let want = format!(
        "{HEAD}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{want_body}",
        want_body.len()
    );
    assert_eq!(sent(&ctx), want);
}

#[test]
fn forward_relays_the_edited_body() {
    let script = compile_with(
        "socket = udp:127.0.0.1:5060\ndisable_stateless_fwd = no\nloadmodule \"proto_udp.so\"\n\
         route {\n $sdp.line(a=nortpproxy) = NULL;\n forward(\"udp:127.0.0.1:5080\");\n}\n",
        &Available {
            builtin: vec!["proto_udp"],
            ..Available::default()
        },
    );
    let mut ctx =
        MsgCtx::new(message("Content-Type: application/sdp\r\n", OFFER)).with_receipt(Receipt {
            source: "192.0.2.10:5070".parse().unwrap(),
            proto: "udp",
            local: "127.0.0.1:5060".parse().unwrap(),
            conn: None,
            proxy: None,
        });
    let (mut w, mut log) = (Worker::default(), MemoryLog::default());
    script.run(&mut w, &mut ctx, &mut log).unwrap();
    let out = ctx
        .outbox
        .first()
        .unwrap_or_else(|| panic!("{:?}", log.lines));
    let text = String::from_utf8(out.data.clone()).unwrap();
    let body = OFFER.replace("a=nortpproxy:yes\r\n", "");
    assert!(text.starts_with("INVITE sip:bob@biloxi.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1"));
    assert!(
        text.ends_with(&format!("Content-Length: {}\r\n\r\n{body}", body.len())),
        "{text}"
    );
    let relayed = SipMessage::parse(Bytes::from(out.data.clone())).unwrap();
    assert_eq!(relayed.body(), body.as_bytes());
}

const MULTIPART_HEAD: &str = "Content-Type: multipart/mixed;boundary=unique-boundary-1\r\n";

fn multipart(sdp: &str) -> String {
    format!(
        "--unique-boundary-1\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n\
--unique-boundary-1\r\nContent-Type: application/isup; version=itu-t92+\r\n\r\nISUP-DATA\r\n\
--unique-boundary-1--\r\n"
    )
}

#[test]
fn multipart_bodies_change_only_their_sdp_part() {
    let msg = message(MULTIPART_HEAD, &multipart(OFFER));
    let ctx = check(
        msg,
        r#"
        assert($sdp.line([1]) == "o=- 1 1 IN IP4 10.0.0.1", "reads the SDP part");
        assert($sdp.stream(audio/a=nortpproxy) == "a=nortpproxy:yes", "stream");
        $sdp.stream(audio/a=nortpproxy) = NULL;
        assert($rb(application/isup) == "ISUP-DATA", "other part kept");"#,
    );
    let body = multipart(&OFFER.replace("a=nortpproxy:yes\r\n", ""));
    let want = format!(
        "{HEAD}{MULTIPART_HEAD}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(sent(&ctx), want);

    // `$sdp = NULL` takes the SDP part out; `$sdp = x` replaces it.
    let ctx = check(
        message(MULTIPART_HEAD, &multipart(OFFER)),
        "$sdp = NULL; assert($sdp == NULL, \"gone\");",
    );
    let body = "--unique-boundary-1\r\nContent-Type: application/isup; version=itu-t92+\r\n\r\n\
ISUP-DATA\r\n--unique-boundary-1--\r\n";
    assert!(sent(&ctx).ends_with(&format!("Content-Length: {}\r\n\r\n{body}", body.len())));
    let new = OFFER.replace("10.0.0.1", "10.0.0.2");
    let ctx = check(
        message(MULTIPART_HEAD, &multipart(OFFER)),
        &format!("$sdp = \"{}\";", new.replace("\r\n", "\\r\\n")),
    );
    let body = multipart(&new);
    assert!(sent(&ctx).ends_with(&format!(
        "{MULTIPART_HEAD}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )));
}

#[test]
fn null_removes_the_body_and_its_content_type() {
    let ctx = check(
        message("Content-Type: application/sdp\r\n", OFFER),
        "$sdp = NULL; assert($sdp == NULL, \"null\"); assert($sdp.line([0]) == NULL, \"no lines\");\n\
         assert($rb == NULL, \"empty body: NULL\");",
    );
    assert_eq!(sent(&ctx), format!("{HEAD}Content-Length: 0\r\n\r\n"));
    // Set again after NULL: the Content-Type comes back.
    let ctx = check(
        message("Content-Type: application/sdp\r\n", OFFER),
        &format!(
            "$sdp = NULL; $sdp = \"{}\";",
            OFFER.replace("\r\n", "\\r\\n")
        ),
    );
    assert_eq!(
        sent(&ctx),
        format!(
            "{HEAD}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
            OFFER.len()
        )
    );
}

#[test]
fn bad_values_indexes_and_bodies_are_refused_without_panics() {
    // Out of range and non-integer indexes read NULL; refused writes leave the body alone.
    let ctx = check(
        message("Content-Type: application/sdp\r\n", OFFER),
        r#"
        $var(neg) = -1; $var(txt) = "x";
        assert($sdp.line([999999999999]) == NULL, "huge");
        assert($sdp.line([$var(neg)]) == NULL, "negative");
        assert($sdp.line([$var(txt)]) == NULL, "text");
        assert($sdp.line([$var(unset)]) == NULL, "unset");
        assert($sdp.stream(audio[$var(neg)]/) == NULL, "negative stream");
        assert($sdp.stream(video/) == NULL, "no such stream");
        assert($sdp.line(m=/[99]) == NULL, "no such token");
        $sdp.line([$var(neg)]) = "x=1";
        assert($rc < 0, "negative index write");
        $sdp.line([1]) = 5;
        assert($rc < 0, "integers are refused");
        $sdp = "no sdp at all";
        assert($rc < 0, "not SDP");
        $sdp = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n";
        assert($rc < 0, "no media");
        $sdp = "";
        assert($rc < 0, "empty");"#,
    );
    assert_eq!(
        sent(&ctx),
        String::from_utf8(
            message("Content-Type: application/sdp\r\n", OFFER)
                .as_bytes()
                .to_vec()
        )
        .unwrap()
    );
    // Malformed or foreign bodies: reads are NULL, writes fail, nothing panics.
    for (ct, body) in [
        (
            "Content-Type: application/sdp\r\n",
            "v=0 without any line end",
        ),
        ("Content-Type: application/sdp\r\n", "\r\n\r\n\r\n"),
        ("Content-Type: application/sdp\r\n", "m=\r\nm=\r\na\r\n"),
        ("Content-Type: text/plain\r\n", OFFER),
        (
            "Content-Type: multipart/mixed;boundary=x\r\n",
            "--x\r\n--x--",
        ),
        ("Content-Type: multipart/mixed\r\n", OFFER),
        ("", OFFER),
    ] {
        let (log, ctx) = run_on(
            message(ct, body),
            r#"
            xlog("[$sdp.line([1])][$sdp.stream(/a=)][$sdp.session([0]/[5])][$sdp.stream.idx(m/)]\n");
            $sdp.line([0]) = "v=0";
            $sdp.stream(/[1]) = NULL;
            $sdp.session(/) = "x";"#,
        );
        assert_eq!(
            log.last().map(String::as_str),
            Some("done\n"),
            "{ct}{body}: {log:?}"
        );
        let _ = sent(&ctx);
    }
}

#[test]
fn selectors_that_cannot_work_are_load_errors() {
    for bad in [
        "$var(x) = $sdp.line(a=[1);",
        "$var(x) = $sdp.line($var(y));",
        "$var(x) = $(sdp.line(a=)[1]);",
        "$sdp.stream.idx(audio/) = \"x\";",
        "$sdp.line(@rpl) = \"x\";",
        "xlog(\"$sdp.session\");",
    ] {
        let mut sources = cfg::SourceMap::new();
        let parsed = cfg::parse(
            &mut sources,
            std::path::Path::new("t.cfg"),
            format!("route {{ {bad} }}"),
        );
        let failed = parsed.has_errors()
            || Script::compile(&parsed.config, &sources, &Available::default()).is_err();
        assert!(failed, "{bad}");
    }
}

// OpenSIPS test-sdp-ops.cfg 2.3.5 / 2.4.0 / 2.5.0: `[insert]` puts a new line before the
// selected one, `[insertAfter]` after it; the lines after move down.
#[test]
fn t2_insert_and_insert_after_lines() {
    for (sep, last) in SEPS {
        let script = format!(
            r#"{}
        $sdp = $var(sdp);
        $sdp.line([12]) = "a=nortpproxy:yes";
        $(sdp.line([12])[insert]) = "a=sendrecv";
        assert($sdp.line([10]) == "a=rtpmap:101 telephone-event/8000", "2.3.5 10");
        assert($sdp.line([11]) == "a=fmtp:101 0-15", "2.3.5 11");
        assert($sdp.line([12]) == "a=sendrecv", "2.3.5 12");
        assert($sdp.line([13]) == "a=nortpproxy:yes", "2.3.5 13");
        assert($sdp.line([14]) == "a=maxptime:20", "2.3.5 14");
        $(sdp.line([12])[insertAfter]) = "a=ptime:80";
        assert($sdp.line([12]) == "a=sendrecv", "2.4.0 12");
        assert($sdp.line([13]) == "a=ptime:80", "2.4.0 13");
        assert($sdp.line([14]) == "a=nortpproxy:yes", "2.4.0 14");
        assert($sdp.line([15]) == "a=maxptime:20", "2.4.0 15");
        assert($sdp.line([16]) == NULL, "2.4.0 16");
        $sdp.line([13]) = NULL;
        assert($sdp.line([12]) == "a=sendrecv", "2.5.0 12");
        assert($sdp.line([13]) == "a=nortpproxy:yes", "2.5.0 13");
        assert($sdp.line([14]) == "a=maxptime:20", "2.5.0 14");
        $(sdp.line(a=maxptime)[insertAfter]) = "a=none";
        assert($rc < 0, "by prefix, after means before the next match: there is none");
        $(sdp.line([14])[insertAfter]) = "a=last";
        assert($sdp.line([15]) == "a=last", "after the last line");
        $(sdp.line(a=rtpmap[1])[INSERT]) = "a=rtpmap:9 G722/8000" + $var(sep);
        assert($sdp.line(a=rtpmap[1]) == "a=rtpmap:9 G722/8000", "by prefix, line end dropped");
        assert($sdp.line(a=rtpmap[2]) == "a=rtpmap:8 PCMA/8000", "by prefix, moved down");"#,
            sdp_var(&T2, sep, last)
        )
        .replace("$var(sep)", &format!("\"{sep}\""));
        let ctx = check(message("", ""), &script);
        let sep = sep.replace("\\r", "\r").replace("\\n", "\n");
        let mut want: Vec<&str> = T2.to_vec();
        want.insert(13, "a=nortpproxy:yes");
        want.insert(7, "a=rtpmap:9 G722/8000");
        want.push("a=last");
        let want = format!("{}{sep}", want.join(&sep));
        let out = sent(&ctx);
        assert!(
            out.ends_with(&format!("Content-Length: {}\r\n\r\n{want}", want.len())),
            "{out:?}"
        );
    }
}

// OpenSIPS test-sdp-ops.cfg 3.4-WRITE (stream lines) and 4.2-WRITE (session lines).
#[test]
fn t3_t4_insert_into_streams_and_the_session() {
    for (sep, last) in SEPS {
        let script = format!(
            r#"{}
        $sdp = $var(sdp);
        $(sdp.stream(audio[0]/a=rtpmap[1])[insertAfter]) = "a=rtpmap:9 PCMX/8000";
        $(sdp.stream(audio[0]/a=rtpmap[2])[insert]) = "a=rtpmap:40 Opus/32000";
        assert($sdp.stream(audio[0]/a=rtpmap[0]) == "a=rtpmap:0 PCMU/8000 bitrate=7000 bitrate=4000", "3.4 0");
        assert($sdp.stream(audio[0]/a=rtpmap[1]) == "a=rtpmap:8 PCMA/8000", "3.4 1");
        assert($sdp.stream(audio[0]/a=rtpmap[2]) == "a=rtpmap:40 Opus/32000", "3.4 2");
        assert($sdp.stream(audio[0]/a=rtpmap[3]) == "a=rtpmap:9 PCMX/8000", "3.4 3");
        assert($sdp.stream(audio[0]/a=rtpmap[4]) == "a=rtpmap:18 G729/8000", "3.4 4");
        assert($sdp.stream(audio[0]/a=rtpmap[5]) == "a=rtpmap:101 telephone-event/8000", "3.4 5");
        assert($sdp.stream(audio[0]/a=rtpmap[6]) == NULL, "3.4 6");
        assert($sdp.stream(video/) == "m=video 8000/2 RTP/AVP 96 97", "other streams stay");
        $(sdp.session([0])[insert]) = "x=0";
        $sdp.session([5]) = "a=test";
        $(sdp.session([4])[insertAfter]) = "a=test2";
        assert($sdp.session([0]) == "x=0", "4.2 0");
        assert($sdp.session([1]) == "v=0", "4.2 1");
        assert($sdp.session([4]) == "c=IN IP4 1.2.3.4", "4.2 4");
        assert($sdp.session([5]) == "a=test2", "4.2 5");
        assert($sdp.session([6]) == "a=test", "4.2 6");
        assert($sdp.session([7]) == NULL, "4.2 7");
        assert($sdp.stream(/) == "m=audio 46938 RTP/AVP 0 8 18 101", "the first stream follows");"#,
            sdp_var(&T3, sep, last)
        );
        check(message("", ""), &script);
    }
}

#[test]
fn inserts_that_cannot_work_are_refused() {
    let script = format!(
        r#"{}
        $sdp = $var(sdp);
        $(sdp.line([40])[insert]) = "a=x";
        xlog("past the end: $rc\n");
        $(sdp.line([2])[insert]) = NULL;
        xlog("null: $rc\n");
        $(sdp.line(a=rtpmap[0]/PCMU)[insert]) = "x";
        xlog("token: $rc $sdp.line(a=rtpmap[0])\n");
        $(sdp.session([5])[insert]) = "a=y";
        xlog("session end: $rc\n");"#,
        sdp_var(&T1, "\\r\\n", "\\r\\n")
    );
    let (log, ctx) = run_on(message("", ""), &script);
    // A token selector edits the token: the index is ignored, as in OpenSIPS.
    let results: Vec<&String> = log
        .iter()
        .filter(|l| l.contains(": ") && !l.starts_with("SDP"))
        .collect();
    assert_eq!(
        results,
        [
            "past the end: -1\n",
            "null: -1\n",
            "token: 1 a=rtpmap:0 PCMUx\n",
            "session end: 1\n"
        ],
        "{log:?}"
    );
    let out = sent(&ctx);
    assert!(out.contains("t=0 0\r\na=y\r\nm=audio"), "{out:?}");
}

#[test]
fn insert_indexes_outside_sdp_line_writes_are_load_errors() {
    for (bad, want) in [
        (
            "$(sdp.line([1])[2]) = \"x\";",
            "`$sdp.line` takes only `[insert]` or `[insertAfter]` as an index",
        ),
        (
            "$var(x) = $(sdp.line([1])[insert]);",
            "`[insert]` / `[insertAfter]` only apply when assigning to `$sdp.line`",
        ),
        (
            "$(avp(x)[insert]) = 1;",
            "`$avp` has no `[insert]` / `[insertAfter]` index",
        ),
        (
            "$(sdp.stream.idx(audio/)[insertAfter]) = \"x\";",
            "`$sdp.stream.idx` has no `[insert]`",
        ),
    ] {
        let mut sources = cfg::SourceMap::new();
        let parsed = cfg::parse(
            &mut sources,
            std::path::Path::new("t.cfg"),
            format!("route {{\n{bad}\n}}"),
        );
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let Err(d) = Script::compile(&parsed.config, &sources, &Available::default()) else {
            panic!("{bad} compiled");
        };
        let text: String = d.iter().map(|d| d.render(&sources)).collect();
        assert!(text.contains(want), "{bad}: {text}");
        assert!(text.contains("t.cfg:2:"), "{text}");
    }
}
