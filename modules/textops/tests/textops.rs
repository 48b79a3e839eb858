//! textops driven from a script; the edited message is serialized and re-parsed.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bytes::Bytes;
use engine::{Available, MemoryLog, MsgCtx, Script, Worker};
use sip::SipMessage;

const INVITE: &str = "INVITE sip:+4930123@example.com;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
User-Agent: Softphone 1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 42\r\n\r\n\
v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP\r\n";

fn run(body: &str) -> (Vec<String>, MsgCtx) {
    let src = format!("loadmodule \"textops.so\"\nroute {{\n{body}\n}}");
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let available = Available {
        modules: vec![&textops::MODULE],
        builtin: vec![],
        argv: Vec::new(),
    };
    let script = Script::compile(&parsed.config, &sources, &available).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter().map(|d| d.render(&sources)).collect::<String>()
        )
    });
    assert_eq!(INVITE.split("\r\n\r\n").nth(1).unwrap().len(), 42);
    let mut ctx = MsgCtx::new(SipMessage::parse(Bytes::from_static(INVITE.as_bytes())).unwrap());
    let mut log = MemoryLog::default();
    script
        .run(&mut Worker::default(), &mut ctx, &mut log)
        .unwrap();
    (log.lines.into_iter().map(|(_, l)| l).collect(), ctx)
}

fn out(ctx: &MsgCtx) -> String {
    let data = ctx.msg.serialize(&ctx.edits);
    // What goes out re-parses, and Content-Length matches the body.
    let m = SipMessage::parse(Bytes::from(data.clone())).unwrap();
    assert_eq!(m.content_length().unwrap(), Some(m.body().len() as u32));
    String::from_utf8(data).unwrap()
}

#[test]
fn search_is_case_sensitive_with_line_anchors() {
    let (l, _) = run(r#"if (search("^User-Agent: Softphone")) xlog("ua\n");
        if (!search("^user-agent")) xlog("case\n");
        if (search_body("^c=IN IP4 10\.0\.0\.1")) xlog("body\n");
        if (!search_body("10\.0\.0\.1$")) xlog("crlf\n");
        if (!search_body("Softphone")) xlog("not-in-body\n");"#);
    // As with POSIX REG_NEWLINE, `$` is before "\n" only: a CRLF line's `\r` is in the way.
    assert_eq!(
        l,
        vec!["ua\n", "case\n", "body\n", "crlf\n", "not-in-body\n"]
    );
}

#[test]
fn replace_and_subst_rewrite_the_message_and_its_length() {
    let (l, ctx) = run(r#"if (replace("Softphone 1\.0", "Phone/2")) xlog("r\n");
        if (replace_body_all("10\.0\.0\.1", "192.0.2.55")) xlog("b\n");
        if (subst("/^(From: )Alice/\1Carol/")) xlog("s\n");
        if (!replace("nothing-like-this", "x")) xlog("none\n");"#);
    assert_eq!(l, vec!["r\n", "b\n", "s\n", "none\n"]);
    let text = out(&ctx);
    assert!(text.contains("\r\nUser-Agent: Phone/2\r\n"), "{text}");
    assert!(
        text.contains("\r\nFrom: Carol <sip:alice@atlanta.com>;tag=1928301774\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with("c=IN IP4 192.0.2.55\r\nm=audio 4000 RTP\r\n"),
        "{text}"
    );
}

#[test]
fn search_append_inserts_after_the_match() {
    let (_, ctx) = run(r#"search_append_body("m=audio 4000 RTP\r\n", "a=sendonly\r\n");"#);
    assert!(out(&ctx).ends_with("m=audio 4000 RTP\r\na=sendonly\r\n"));
}

#[test]
fn subst_uri_and_subst_user_rewrite_the_request_uri() {
    let (l, _) = run(
        r#"subst_uri("/^sip:\+49(.*)@example\.com/sip:0049\1@gw.example.net/i");
        xlog("$ru\n");
        subst_user("/^0049/0/");
        xlog("$rU\n");
        if (!subst_user("/^xyz/abc/")) xlog("nomatch\n");"#,
    );
    assert_eq!(
        l,
        vec![
            "sip:004930123@gw.example.net;user=phone\n",
            "030123\n",
            "nomatch\n"
        ]
    );
}

#[test]
fn bad_expressions_are_load_or_run_time_errors_not_crashes() {
    let (l, _) = run(r#"if (!subst("/unterminated")) xlog("refused\n");"#);
    assert!(
        l.iter().any(|x| x.contains("not /re/replacement/flags")),
        "{l:?}"
    );
    assert!(l.contains(&"refused\n".to_owned()));
    let (l, _) = run(r#"if (!search("(unclosed")) xlog("refused\n");"#);
    assert!(
        l.iter().any(|x| x.contains("bad regular expression")),
        "{l:?}"
    );
}

#[test]
fn a_rewrite_that_breaks_the_message_is_refused() {
    let (l, ctx) = run(r#"if (!replace("^CSeq: 314159 INVITE", "CSeq: oops")) xlog("kept\n");"#);
    assert_eq!(l, vec!["kept\n"]);
    assert!(out(&ctx).contains("\r\nCSeq: 314159 INVITE\r\n"));
}
