//! auth and auth_db from a compiled script over a db_text subscriber table. The expected
//! responses are computed here with the md-5 crate directly (RFC 2617 §3.2.2), not with the
//! code under test.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::sync::OnceLock;

use engine::{MsgCtx, Script};
use md5::{Digest as _, Md5};

fn md5(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn db_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("rsips-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let ha1 = md5("alice:example.com:secret");
        std::fs::write(
            d.join("subscriber"),
            format!(
                "id(int,auto) username(string) domain(string) password(string) ha1(string) \
                 ha1_sha256(string,null) ha1_sha512t256(string,null) rpid(string,null)\n\
                 :alice:example.com:secret:{ha1}:::+15551234\n\
                 :bob:example.com:pa\\:ss:{}:::\n",
                md5("bob:example.com:pa:ss")
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("version"),
            "table_name(str) table_version(int)\nsubscriber:8\n",
        )
        .unwrap();
        d
    })
}

fn compile(params: &str, routes: &str) -> Script {
    let text = format!(
        "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\n\
         loadmodule \"signaling.so\"\nloadmodule \"db_text.so\"\nloadmodule \"auth.so\"\n\
         loadmodule \"auth_db.so\"\nmodparam(\"auth_db\", \"db_url\", \"text://{}\")\n{params}\n{routes}",
        db_dir().display()
    );
    let script = testkit::compile(
        &text,
        vec![
            &sl::SL,
            &sl::SIGNALING,
            &testkit::DB_TEXT,
            &auth::AUTH,
            &auth::AUTH_DB,
        ],
    );
    auth::start(&script, &db::Options::default()).unwrap();
    script
}

const REGISTRAR: &str = "route {\n\
    $var(r) = www_authorize(\"\", \"subscriber\");\n\
    xlog(\"auth $var(r)\");\n\
    if ($var(r) < 0) { www_challenge(\"\", \"$var(qop)\"); }\n\
    consume_credentials();\n\
    sl_send_reply(200, \"OK\");\n}";

fn register(auth: Option<&str>, method: &str) -> String {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    format!(
        "{method} sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-1\r\n\
         From: <sip:alice@example.com>;tag=f\r\nTo: <sip:alice@example.com>\r\n\
         Call-ID: c1\r\nCSeq: 1 {method}\r\n{auth}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The log and the replies of one run.
fn run(script: &Script, raw: &str) -> (String, Vec<String>, MsgCtx) {
    let mut ctx = testkit::request(raw, "192.0.2.10:5070");
    let lines = testkit::run(script, &mut ctx, &[]);
    let replies = ctx
        .outbox
        .iter()
        .map(|o| String::from_utf8_lossy(&o.data).into_owned())
        .collect();
    (lines, replies, ctx)
}

fn header<'a>(m: &'a str, name: &str) -> Vec<&'a str> {
    m.lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

/// The nonce of the (first) challenge in `reply`.
fn nonce_of(reply: &str) -> String {
    let h = header(reply, "WWW-Authenticate")[0];
    h.split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

/// Credentials for `user`/`pass` answering `nonce` (RFC 2069 form without qop).
fn answer(user: &str, pass: &str, nonce: &str, method: &str, qop: Option<(&str, &str)>) -> String {
    let ha1 = md5(&format!("{user}:example.com:{pass}"));
    let ha2 = md5(&format!("{method}:sip:example.com"));
    match qop {
        None => format!(
            "Digest username=\"{user}\", realm=\"example.com\", nonce=\"{nonce}\", uri=\"sip:example.com\", response=\"{}\"",
            md5(&format!("{ha1}:{nonce}:{ha2}"))
        ),
        Some((nc, cnonce)) => format!(
            "Digest username=\"{user}\", realm=\"example.com\", nonce=\"{nonce}\", uri=\"sip:example.com\", qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{}\"",
            md5(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
        ),
    }
}

fn challenge(script: &Script) -> String {
    let (log, replies, _) = run(script, &register(None, "REGISTER"));
    assert_eq!(log, "auth -4");
    assert!(
        replies[0].starts_with("SIP/2.0 401 Unauthorized\r\n"),
        "{}",
        replies[0]
    );
    replies[0].clone()
}

#[test]
fn a_challenge_then_the_right_answer_authorizes_once() {
    let s = compile("", &REGISTRAR.replace("$var(qop)", ""));
    let reply = challenge(&s);
    let hdr = header(&reply, "WWW-Authenticate");
    assert_eq!(hdr.len(), 1);
    let nonce = nonce_of(&reply);
    assert_eq!(
        hdr[0],
        format!("Digest realm=\"example.com\", nonce=\"{nonce}\""),
        "MD5 by default: no algorithm= and no qop"
    );
    let creds = answer("alice", "secret", &nonce, "REGISTER", None);
    let (log, replies, ctx) = run(&s, &register(Some(&creds), "REGISTER"));
    assert_eq!(log, "auth 1");
    assert!(replies[0].starts_with("SIP/2.0 200 OK"), "{}", replies[0]);
    // consume_credentials took the header out of what would be relayed.
    let line = ctx
        .msg
        .headers()
        .find(|h| h.name == sip::HeaderName::Authorization)
        .unwrap()
        .index;
    assert!(ctx.edits.is_removed(line));
    // The same nonce again: stale, and the new challenge says so.
    let (log, replies, _) = run(&s, &register(Some(&creds), "REGISTER"));
    assert_eq!(log, "auth -3");
    assert!(
        header(&replies[0], "WWW-Authenticate")[0].ends_with(", stale=true"),
        "{}",
        replies[0]
    );
}

#[test]
fn wrong_passwords_unknown_users_and_forged_nonces() {
    let s = compile("", &REGISTRAR.replace("$var(qop)", ""));
    let nonce = nonce_of(&challenge(&s));
    let (log, replies, _) = run(
        &s,
        &register(
            Some(&answer("alice", "nope", &nonce, "REGISTER", None)),
            "REGISTER",
        ),
    );
    assert_eq!(log, "auth -2");
    assert!(
        !header(&replies[0], "WWW-Authenticate")[0].contains("stale"),
        "a wrong password is not stale"
    );
    let nonce = nonce_of(&challenge(&s));
    let (log, _, _) = run(
        &s,
        &register(
            Some(&answer("carol", "x", &nonce, "REGISTER", None)),
            "REGISTER",
        ),
    );
    assert_eq!(log, "auth -1");
    let (log, _, _) = run(
        &s,
        &register(
            Some(&answer(
                "alice",
                "secret",
                "0123456789abcdef",
                "REGISTER",
                None,
            )),
            "REGISTER",
        ),
    );
    assert_eq!(log, "auth -3");
    // Credentials for another realm are no credentials for this one.
    let nonce = nonce_of(&challenge(&s));
    let other = answer("alice", "secret", &nonce, "REGISTER", None)
        .replace("realm=\"example.com\"", "realm=\"other.org\"");
    let (log, _, _) = run(&s, &register(Some(&other), "REGISTER"));
    assert_eq!(log, "auth -4");
    // Credentials that cannot be checked (no response): 400 and the script ends.
    let broken = answer("alice", "secret", &nonce, "REGISTER", None);
    let broken = broken.split(", response=").next().unwrap();
    let (log, replies, _) = run(&s, &register(Some(broken), "REGISTER"));
    assert_eq!(log, "");
    assert!(
        replies[0].starts_with("SIP/2.0 400 Bad Request"),
        "{}",
        replies[0]
    );
}

#[test]
fn qop_auth_with_a_password_column_and_escaped_secrets() {
    let s = compile(
        "modparam(\"auth_db\", \"calculate_ha1\", 1)\nmodparam(\"auth_db\", \"password_column\", \"password\")",
        &REGISTRAR.replace("$var(qop)", "auth"),
    );
    let reply = challenge(&s);
    assert!(
        header(&reply, "WWW-Authenticate")[0].ends_with(", qop=\"auth\""),
        "{reply}"
    );
    let nonce = nonce_of(&reply);
    let creds = answer(
        "alice",
        "secret",
        &nonce,
        "REGISTER",
        Some(("00000001", "abc")),
    );
    assert_eq!(run(&s, &register(Some(&creds), "REGISTER")).0, "auth 1");
    // bob's password holds a ':' (escaped in the file).
    let nonce = nonce_of(&challenge(&s));
    let creds = answer(
        "bob",
        "pa:ss",
        &nonce,
        "REGISTER",
        Some(("00000001", "xyz")),
    );
    let raw = register(Some(&creds), "REGISTER");
    assert_eq!(run(&s, &raw).0, "auth 1");
    // A qop challenge answered in the RFC 2069 form (no qop): the nonce counts as answered
    // with auth (RFC 8760) and the response is checked in the form the client used, as
    // OpenSIPS does.
    let nonce = nonce_of(&challenge(&s));
    let creds = answer("alice", "secret", &nonce, "REGISTER", None);
    assert_eq!(run(&s, &register(Some(&creds), "REGISTER")).0, "auth 1");
}

#[test]
fn several_algorithms_are_offered_strongest_first() {
    let s = compile(
        "",
        "route { www_challenge(\"example.com\", \"\", \"MD5,SHA-256,SHA-512-256\"); }",
    );
    let (_, replies, _) = run(&s, &register(None, "REGISTER"));
    let h = header(&replies[0], "WWW-Authenticate");
    assert_eq!(h.len(), 3, "{}", replies[0]);
    assert!(
        h[0].ends_with(", qop=\"auth\", algorithm=SHA-512-256"),
        "{}",
        h[0]
    );
    assert!(h[1].ends_with(", algorithm=SHA-256"), "{}", h[1]);
    assert!(h[2].ends_with(", algorithm=MD5"), "{}", h[2]);
}

#[test]
fn proxy_authentication_and_what_passes_without() {
    let s = compile(
        "",
        "route {\n\
         $var(r) = proxy_authorize(\"example.com\", \"subscriber\");\n\
         xlog(\"auth $var(r)\");\n\
         if ($var(r) < 0) proxy_challenge(\"example.com\", \"auth\");\n\
         if (db_does_uri_exist(\"sip:bob@example.com\", \"subscriber\")) xlog(\"bob\");\n\
         if (!db_does_uri_exist(\"sip:zed@example.com\", \"subscriber\")) xlog(\"no zed\");\n}",
    );
    let invite = register(None, "INVITE").replace("REGISTER", "INVITE");
    let (log, replies, _) = run(&s, &invite);
    assert_eq!(log, "auth -4");
    assert!(
        replies[0].starts_with("SIP/2.0 407 Proxy Authentication Required"),
        "{}",
        replies[0]
    );
    assert_eq!(header(&replies[0], "Proxy-Authenticate").len(), 1);
    // ACK and CANCEL are never challenged.
    let ack = register(None, "ACK");
    assert_eq!(run(&s, &ack).0, "auth 1|bob|no zed");
}

/// A user with no SHA-256 hash (the schema's empty default) cannot be impersonated by
/// answering a SHA-256 challenge with an empty HA1: 500, never authorized.
#[test]
fn an_empty_stored_hash_authorizes_nobody() {
    use sha2::{Digest as _, Sha256};
    let sha = |s: &str| -> String {
        Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let s = compile(
        "",
        "route {\n\
         $var(r) = www_authorize(\"example.com\", \"subscriber\");\n\
         xlog(\"auth $var(r)\");\n\
         if ($var(r) < 0) www_challenge(\"example.com\", \"auth\", \"SHA-256,MD5\");\n}",
    );
    let (_, replies, _) = run(&s, &register(None, "REGISTER"));
    let hdr = header(&replies[0], "WWW-Authenticate")[0].to_owned();
    assert!(hdr.ends_with("algorithm=SHA-256"), "{hdr}");
    let nonce = hdr
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let ha2 = sha("REGISTER:sip:example.com");
    let forged = sha(&format!(":{nonce}:00000001:c0ffee:auth:{ha2}"));
    let creds = format!(
        "Digest username=\"alice\", realm=\"example.com\", nonce=\"{nonce}\", uri=\"sip:example.com\", \
         algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"c0ffee\", response=\"{forged}\""
    );
    let (log, replies, _) = run(&s, &register(Some(&creds), "REGISTER"));
    assert!(!log.contains("auth 1"), "{log}");
    assert!(replies[0].starts_with("SIP/2.0 500"), "{}", replies[0]);
}
