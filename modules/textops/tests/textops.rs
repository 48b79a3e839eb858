//! textops driven from a script: what the functions return and log, and the message that
//! goes out once the recorded patches are applied (Content-Length checked on every output).

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

/// A MESSAGE with a Latin-1 header and a binary body.
const BINARY: &[u8] = b"MESSAGE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKbin\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: bin1\r\n\
CSeq: 1 MESSAGE\r\n\
Subject: hello caf\xe9\r\n\
Content-Type: application/octet-stream\r\n\
Content-Length: 6\r\n\r\n\
caf\xe9\x00\x01";

const NO_BODY: &str = "OPTIONS sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKnb\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: nb1\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

fn compile(body: &str) -> Script {
    let src = format!("loadmodule \"textops.so\"\nroute {{\n{body}\n}}");
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let available = Available {
        modules: vec![&textops::MODULE],
        builtin: vec![],
        argv: Vec::new(),
    };
    Script::compile(&parsed.config, &sources, &available).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter().map(|d| d.render(&sources)).collect::<String>()
        )
    })
}

/// Runs the script `body` over `msg`: the lines it logged, and the context after it.
fn run_on(msg: &[u8], body: &str) -> (Vec<String>, MsgCtx) {
    let script = compile(body);
    let mut ctx = MsgCtx::new(SipMessage::parse(Bytes::copy_from_slice(msg)).unwrap());
    let mut log = MemoryLog::default();
    script
        .run(&mut Worker::default(), &mut ctx, &mut log)
        .unwrap();
    // The functions record edits; the received message stays as it was.
    assert_eq!(ctx.msg.as_bytes(), msg);
    (log.lines.into_iter().map(|(_, l)| l).collect(), ctx)
}

fn run(body: &str) -> (Vec<String>, MsgCtx) {
    assert_eq!(INVITE.split("\r\n\r\n").nth(1).unwrap().len(), 42);
    run_on(INVITE.as_bytes(), body)
}

/// What goes out: it re-parses, and Content-Length matches the body.
fn out_bytes(ctx: &MsgCtx) -> Vec<u8> {
    let data = ctx.msg.serialize(&ctx.edits);
    let m = SipMessage::parse(Bytes::from(data.clone())).unwrap();
    assert_eq!(m.content_length().unwrap(), Some(m.body().len() as u32));
    data
}

fn out(ctx: &MsgCtx) -> String {
    String::from_utf8(out_bytes(ctx)).unwrap()
}

#[test]
fn expressions_ignore_case_and_anchor_at_lines() {
    let (l, _) = run(r#"if (search("^User-Agent: Softphone")) xlog("ua\n");
        if (search("^user-agent: SOFTPHONE")) xlog("icase\n");
        if (search("^INVITE sip:\+4930123@")) xlog("first-line\n");
        if (search_body("^c=IN IP4 10\.0\.0\.1")) xlog("body\n");
        if (!search_body("10\.0\.0\.1$")) xlog("crlf\n");
        if (!search_body("Softphone")) xlog("not-in-body\n");"#);
    // As with POSIX REG_NEWLINE, `$` is before "\n" only: a CRLF line's `\r` is in the way.
    assert_eq!(
        l,
        vec![
            "ua\n",
            "icase\n",
            "first-line\n",
            "body\n",
            "crlf\n",
            "not-in-body\n"
        ]
    );
}

#[test]
fn replace_and_subst_rewrite_the_message_and_its_length() {
    let (l, ctx) = run(r#"if (replace("softphone 1\.0", "Phone/2")) xlog("r\n");
        if (replace_body_all("10\.0\.0\.1", "192.0.2.55")) xlog("b\n");
        if (subst("/^(From: )Alice/\1Carol/")) xlog("s\n");
        if (!replace("nothing-like-this", "x")) xlog("none\n");"#);
    assert_eq!(l, vec!["r\n", "b\n", "s\n", "none\n"]);
    assert!(!ctx.edits.is_empty());
    let text = out(&ctx);
    assert!(text.contains("\r\nUser-Agent: Phone/2\r\n"), "{text}");
    assert!(
        text.contains("\r\nFrom: Carol <sip:alice@atlanta.com>;tag=1928301774\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nContent-Length: 44\r\n"), "{text}");
    assert!(
        text.contains("\r\nContent-Type: application/sdp\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with("\r\n\r\nv=0\r\nc=IN IP4 192.0.2.55\r\nm=audio 4000 RTP\r\n"),
        "{text}"
    );
}

#[test]
fn functions_see_the_message_as_received() {
    let (l, ctx) = run(r#"replace("Softphone 1\.0", "Phone/2");
        if (search("Softphone 1\.0")) xlog("old\n");
        if (!search("Phone/2")) xlog("not-new\n");
        xlog("$ua\n");
        replace("Bob", "Carol");
        if (!replace("Carol", "Dave")) xlog("no-cascade\n");
        search_append("^To: [^\r\n]*\r\n", "X-Added: 1\r\n");
        if (!search("X-Added")) xlog("not-added\n");"#);
    assert_eq!(
        l,
        vec![
            "old\n",
            "not-new\n",
            "Softphone 1.0\n",
            "no-cascade\n",
            "not-added\n"
        ]
    );
    let text = out(&ctx);
    assert!(
        text.contains("\r\nTo: Carol <sip:bob@biloxi.com>\r\nX-Added: 1\r\nFrom: Alice"),
        "{text}"
    );
    assert!(text.contains("\r\nUser-Agent: Phone/2\r\n"), "{text}");
}

#[test]
fn the_first_line_is_never_rewritten() {
    let (l, ctx) = run(
        r#"if (!replace("\+4930123", "999")) xlog("uri-untouched\n");
        if (subst("/INVITE/OPTIONS/g")) xlog("subst\n");
        if (replace_all("atlanta\.com", "example.org")) xlog("all\n");
        xlog("$ou $rm\n");"#,
    );
    assert_eq!(
        l,
        vec![
            "uri-untouched\n",
            "subst\n",
            "all\n",
            "sip:+4930123@example.com;user=phone INVITE\n"
        ]
    );
    let text = out(&ctx);
    assert!(
        text.starts_with("INVITE sip:+4930123@example.com;user=phone SIP/2.0\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nCSeq: 314159 OPTIONS\r\n"), "{text}");
    assert!(text.contains("UDP pc33.example.org;branch"), "{text}");
    assert!(text.contains("Call-ID: a84b4c76e66710@pc33.example.org\r\n"));
    assert!(!text.contains("atlanta.com"), "{text}");
}

#[test]
fn a_negated_list_stops_at_the_line_end() {
    let (l, ctx) = run(r#"if (replace("^User-Agent: [^/]*", "User-Agent: Hidden")) xlog("r\n");"#);
    assert_eq!(l, vec!["r\n"]);
    let text = out(&ctx);
    // `[^/]*` takes the line's CR but not its LF, as POSIX REG_NEWLINE has it.
    assert!(
        text.contains("\r\nUser-Agent: Hidden\nContent-Type: application/sdp\r\n"),
        "{text}"
    );
}

#[test]
fn bytes_that_are_not_text_survive() {
    let (l, ctx) = run_on(
        BINARY,
        r#"if (replace("^Subject: hello", "Subject: bye")) xlog("r\n");"#,
    );
    assert_eq!(l, vec!["r\n"]);
    let data = out_bytes(&ctx);
    assert!(data.ends_with(
        b"\r\nSubject: bye caf\xe9\r\n\
Content-Type: application/octet-stream\r\nContent-Length: 6\r\n\r\ncaf\xe9\x00\x01"
    ));
    let (l, ctx) = run_on(
        BINARY,
        r#"if (replace_body("^caf", "coffee ")) xlog("b\n");
        if (search_body("caf.\x00")) xlog("nul\n");"#,
    );
    assert_eq!(l, vec!["b\n", "nul\n"]);
    let data = out_bytes(&ctx);
    assert!(data.ends_with(b"\r\nContent-Length: 10\r\n\r\ncoffee \xe9\x00\x01"));
    assert!(data.windows(19).any(|w| w == b"Subject: hello caf\xe9"));
}

#[test]
fn an_empty_match_changes_nothing() {
    let (l, ctx) = run(r#"if (!replace_all("x*", "y")) xlog("all\n");
        if (!replace_body_all("^v*", "y")) xlog("body-all\n");
        if (!replace_body_atonce("q?", "y")) xlog("atonce\n");
        if (!subst("/^/+/")) xlog("subst\n");
        if (!subst_body("/z*/+/g")) xlog("subst-body\n");
        if (!subst_user("/^/+/")) xlog("user\n");
        xlog("$ru\n");"#);
    let said: Vec<&String> = l.iter().filter(|x| !x.starts_with("textops:")).collect();
    assert_eq!(
        said,
        vec![
            "all\n",
            "body-all\n",
            "atonce\n",
            "subst\n",
            "subst-body\n",
            "user\n",
            "sip:+4930123@example.com;user=phone\n"
        ]
    );
    let errors = l.iter().filter(|x| x.contains("empty string")).count();
    assert_eq!(errors, 6, "{l:?}");
    assert!(ctx.edits.is_empty());
}

#[test]
fn replace_body_atonce_does_not_anchor_where_it_stopped() {
    let script = r#"if (FN("^[cm]=[^\n]*\n", "")) xlog("done\n");"#;
    let (_, ctx) = run(&script.replace("FN", "replace_body_all"));
    assert!(out(&ctx).ends_with("Content-Length: 5\r\n\r\nv=0\r\n"));
    let (_, ctx) = run(&script.replace("FN", "replace_body_atonce"));
    assert!(out(&ctx).ends_with("\r\n\r\nv=0\r\nm=audio 4000 RTP\r\n"));
}

#[test]
fn body_functions_find_nothing_in_an_empty_body() {
    let (l, ctx) = run_on(
        NO_BODY.as_bytes(),
        r#"if (!search_body(".*")) xlog("search\n");
        if (!replace_body("^", "x")) xlog("replace\n");
        if (!search_append_body("^", "x")) xlog("append\n");
        if (!subst_body("/^/x/")) xlog("subst\n");"#,
    );
    assert_eq!(l, vec!["search\n", "replace\n", "append\n", "subst\n"]);
    assert!(ctx.edits.is_empty());
}

#[test]
fn search_append_inserts_after_the_match() {
    let (_, ctx) = run(r#"search_append_body("m=audio 4000 RTP\r\n", "a=sendonly\r\n");"#);
    assert!(out(&ctx).ends_with("m=audio 4000 RTP\r\na=sendonly\r\n"));
}

#[test]
fn a_single_replace_of_nothing_inserts() {
    let (l, ctx) = run(r#"if (replace("^", "X-First: 1\r\n")) xlog("r\n");
        if (replace_body("^", "a=1\r\n")) xlog("b\n");"#);
    assert_eq!(l, vec!["r\n", "b\n"]);
    let text = out(&ctx);
    assert!(
        text.starts_with(
            "INVITE sip:+4930123@example.com;user=phone SIP/2.0\r\nX-First: 1\r\nVia: "
        ),
        "{text}"
    );
    assert!(text.contains("\r\n\r\na=1\r\nv=0\r\n"), "{text}");
}

#[test]
fn subst_replacements_expand_groups_escapes_and_variables() {
    let (l, ctx) = run(r#"$var(x) = "VAR";
        if (subst('/^(User-Agent: )Softphone [0-9.]+/\1$var(x)\t$fU\u\$/')) xlog("s\n");
        if (!subst('/Call-ID:.*CSeq/CSeq/')) xlog("lines\n");
        if (subst('/Call-ID:.*CSeq/CSeq/s')) xlog("dotall\n");"#);
    assert_eq!(l, vec!["s\n", "lines\n", "dotall\n"]);
    let text = out(&ctx);
    assert!(
        text.contains(
            "tag=1928301774\r\nCSeq: 314159 INVITE\r\n\
             User-Agent: VAR\talicesip:+4930123@example.com;user=phone$\r\n"
        ),
        "{text}"
    );
}

#[test]
fn subst_uri_and_subst_user_rewrite_the_request_uri() {
    let (l, _) = run(
        r#"subst_uri("/^sip:\+49(.*)@example\.com/sip:0049\1@gw.example.net/i");
        xlog("$ru\n");
        $var(p) = "00";
        subst_user('/^0049/$var(p)/');
        xlog("$rU\n");
        $var(p) = "+";
        subst_user('/^00/$var(p)/');
        xlog("$rU\n");
        if (!subst_user("/^xyz/abc/")) xlog("nomatch\n");
        xlog("$ou\n");"#,
    );
    assert_eq!(
        l,
        vec![
            "sip:004930123@gw.example.net;user=phone\n",
            "0030123\n",
            "+30123\n",
            "nomatch\n",
            "sip:+4930123@example.com;user=phone\n"
        ]
    );
}

#[test]
fn overlapping_rewrites_are_refused() {
    let (l, ctx) = run(r#"if (replace("Softphone", "A")) xlog("first\n");
        if (!replace("phone 1", "B")) xlog("second\n");"#);
    assert_eq!(
        l[..2],
        [
            "first\n".to_owned(),
            "textops: nothing changed: it overlaps an earlier change of the message\n".to_owned()
        ]
    );
    assert_eq!(l[2], "second\n");
    assert!(out(&ctx).contains("\r\nUser-Agent: A 1.0\r\n"));
}

/// The diagnostics of a script that must not load.
fn load_errors(body: &str) -> String {
    let src = format!("loadmodule \"textops.so\"\nroute {{\n{body}\n}}");
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let available = Available {
        modules: vec![&textops::MODULE],
        builtin: vec![],
        argv: Vec::new(),
    };
    match Script::compile(&parsed.config, &sources, &available) {
        Ok(_) => panic!("the script loaded: {body}"),
        Err(d) => d.iter().map(|d| d.render(&sources)).collect(),
    }
}

// A literal expression that does not compile stops the script from loading, at its position
// (OpenSIPS' fixups); one built in a variable is refused when the function runs.
#[test]
fn bad_expressions_fail_the_load_or_the_call() {
    let e = load_errors(r#"  if (search("(unclosed")) exit;"#);
    assert!(
        e.contains("bad regular expression for `search`") && e.contains("t.cfg:3:14"),
        "{e}"
    );
    let e = load_errors(r#"  subst("/unterminated");"#);
    assert!(
        e.contains("bad subst expression for `subst`") && e.contains("t.cfg:3:9"),
        "{e}"
    );
    let (l, _) = run(r#"$var(re) = "(unclosed";
        if (!search($var(re))) xlog("refused\n");"#);
    assert!(
        l.iter().any(|x| x.contains("bad regular expression")),
        "{l:?}"
    );
    assert!(l.contains(&"refused\n".to_owned()));
}

// Pseudo-variables in a subst replacement are read as the script reads them, transformations
// included.
#[test]
fn subst_replacements_read_pvs_with_transformations() {
    let (l, ctx) = run(r#"$var(x) = "abcd";
        if (subst('/^(User-Agent: )Softphone [0-9.]+/\1$(var(x){s.len})-$(fU{s.toupper})/')) xlog("s\n");"#);
    assert_eq!(l, vec!["s\n"]);
    assert!(
        out(&ctx).contains("\r\nUser-Agent: 4-ALICE\r\n"),
        "{}",
        out(&ctx)
    );
}

#[test]
fn a_rewrite_that_breaks_the_message_is_still_made() {
    let (l, ctx) = run(r#"if (replace("^CSeq: 314159 INVITE", "CSeq: oops")) xlog("made\n");"#);
    assert_eq!(l, vec!["made\n"]);
    assert!(out(&ctx).contains("\r\nCSeq: oops\r\n"));
}
