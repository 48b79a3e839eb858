//! Core pseudo-variables read and assigned as OpenSIPS 4.0 pvar.c does: URI defaults, `$dd`
//! and `$dp` writes, NULL assignments, indexed `$ct`, the credentials PVs, display names,
//! `$socket_out`, `$rb`, `$cs`, `$challenge.*`, `$Au` and the legacy `$branch` forms. Each
//! test compiles a script and runs its main route over a message.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use bytes::Bytes;
use engine::MsgCtx;
use sip::SipMessage;

/// An INVITE with a quoted display name, three contacts on two Contact lines and credentials
/// in Authorization only.
const INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: \"Alice A\" <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 0010 INVITE\r\n\
Contact: \"Al\" <sip:alice@pc33.atlanta.com>;expires=60;q=0.5, <sip:alice@192.0.2.4>\r\n\
Contact: <sip:third@192.0.2.5>;q=0.1\r\n\
Authorization: Digest username=\"bob\", realm=\"biloxi.com\", nonce=\"n1\", uri=\"sip:bob@biloxi.com\", response=\"r\"\r\n\
Content-Length: 0\r\n\r\n";

/// A message from its text, with a Content-Length that fits its body.
fn message(raw: &str) -> SipMessage {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let head: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.starts_with("Content-Length"))
        .collect();
    let text = format!(
        "{}\r\nContent-Length: {}\r\n\r\n{body}",
        head.join("\r\n"),
        body.len()
    );
    SipMessage::parse(Bytes::from(text)).unwrap()
}

/// Runs the main route once over `raw`; returns the xlog lines and the context.
fn run_on(src: &str, raw: &str) -> (Vec<String>, MsgCtx) {
    common::run(&common::compile(src), message(raw))
}

fn logs(src: &str) -> Vec<String> {
    run_on(src, INVITE).0
}

/// `INVITE` with its request line and extra header lines replaced / added.
fn invite_with(ruri: &str, extra: &str) -> String {
    INVITE
        .replacen("sip:bob@biloxi.com SIP/2.0", &format!("{ruri} SIP/2.0"), 1)
        .replacen("Content-Length", &format!("{extra}Content-Length"), 1)
}

// Item 1: without a port or transport, the URI PVs give the transport's defaults.
#[test]
fn uri_ports_and_transports_default_as_opensips_does() {
    let l = logs(
        r#"route {
        xlog("r $rp $rP o $op $oP\n");
        if ($rP == "udp") xlog("udp\n");
        $du = "sip:1.2.3.4";
        xlog("d $dd:$dp $dP\n");
        $du = "sips:gw.example.com";
        xlog("sips $dp $dP\n");
        $du = "sip:gw.example.com;transport=ws";
        xlog("ws $dp $dP\n");
        $du = "sip:gw.example.com;transport=TLS";
        xlog("tls $dp $dP\n");
        $ru = "sip:x@y.com;transport=wss";
        xlog("ru $rp $rP\n");
        $du = "sip:gw.example.com:5070;transport=tcp";
        xlog("written $dp $dP\n");
    }"#,
    );
    assert_eq!(
        l,
        [
            "r 5060 udp o 5060 udp\n",
            "udp\n",
            "d 1.2.3.4:5060 udp\n",
            "sips 5061 tls\n",
            "ws 80 ws\n",
            "tls 5061 TLS\n",
            "ru 443 wss\n",
            "written 5070 tcp\n",
        ]
    );
}

// Item 2: `$dd` and `$dp` rebuild `$du`; NULL removes the port; without `$du` they fail.
#[test]
fn dd_and_dp_rewrite_the_destination_uri() {
    let l = logs(
        r#"route {
        $dd = "10.0.0.1";
        xlog("no du $rc\n");
        $du = "sip:gw@gw.example.com;lr";
        $dp = 5080;
        xlog("port $du\n");
        $dd = "10.0.0.1";
        xlog("host $du\n");
        $dp = NULL;
        xlog("no port $du\n");
        $dd = NULL;
        xlog("null host $rc $du\n");
        $dp = "5090";
        xlog("string port $du $dp\n");
    }"#,
    );
    assert_eq!(
        l,
        [
            "no du -1\n",
            "port sip:gw@gw.example.com:5080;lr\n",
            "host sip:gw@10.0.0.1:5080;lr\n",
            "no port sip:gw@10.0.0.1;lr\n",
            "null host -1 sip:gw@10.0.0.1;lr\n",
            "string port sip:gw@10.0.0.1:5090;lr 5090\n",
        ]
    );
}

// Item 3: a NULL user or port removes that part of the R-URI.
#[test]
fn null_user_or_port_removes_it_from_the_ruri() {
    let l = logs(
        r#"route {
        $rU = $avp(missing);
        xlog("user $rc $ru\n");
        $rU = "carol";
        $rp = 5080;
        xlog("$ru\n");
        $rp = NULL;
        xlog("port $rc $ru\n");
        $rd = NULL;
        xlog("host $rc $ru\n");
        $ru = NULL;
        xlog("whole $rc $ru\n");
    }"#,
    );
    assert_eq!(
        l,
        [
            "user 1 sip:biloxi.com\n",
            "sip:carol@biloxi.com:5080\n",
            "port 1 sip:carol@biloxi.com\n",
            "host -1 sip:carol@biloxi.com\n",
            "whole -1 sip:carol@biloxi.com\n",
        ]
    );
}

// Item 4: `$ct` counts every contact of every Contact line; `[*]` joins them.
#[test]
fn contact_indexes_walk_every_contact_header() {
    let l = logs(
        r#"route {
        xlog("0 $(ct[0])\n");
        xlog("1 $(ct[1])\n");
        xlog("-1 $(ct[-1])\n");
        xlog("3 $(ct[3]) -4 $(ct[-4])\n");
        xlog("all $(ct[*])\n");
        xlog("uri1 $(ct.fields(uri)[1]) uri-1 $(ct.fields(uri)[-1])\n");
        xlog("q* $(ct.fields(q)[*])\n");
        $var(i) = 2;
        xlog("var $(ct[$var(i)]) $(ct.fields(uri)[$var(i)])\n");
        for ($var(c) in $(ct[*])) xlog("each $var(c)\n");
        for ($var(q) in $(ct.fields(q)[*])) xlog("q $var(q)\n");
    }"#,
    );
    assert_eq!(
        l,
        [
            "0 \"Al\" <sip:alice@pc33.atlanta.com>;expires=60;q=0.5\n",
            "1 <sip:alice@192.0.2.4>\n",
            "-1 <sip:third@192.0.2.5>;q=0.1\n",
            "3 <null> -4 <null>\n",
            "all \"Al\" <sip:alice@pc33.atlanta.com>;expires=60;q=0.5, <sip:alice@192.0.2.4>, \
             <sip:third@192.0.2.5>;q=0.1\n",
            "uri1 sip:alice@192.0.2.4 uri-1 sip:third@192.0.2.5\n",
            "q* 0.5, , 0.1\n",
            "var <sip:third@192.0.2.5>;q=0.1 sip:third@192.0.2.5\n",
            "each \"Al\" <sip:alice@pc33.atlanta.com>;expires=60;q=0.5\n",
            "each <sip:alice@192.0.2.4>\n",
            "each <sip:third@192.0.2.5>;q=0.1\n",
            // Iteration stops at the first contact without a q, as OpenSIPS' does.
            "q 0.5\n",
        ]
    );
}

// Items 4 and 10: the contact fields, parameters without their `;` and as strings (as
// written), names in any case.
#[test]
fn contact_fields_as_opensips_keeps_them() {
    let l = logs(
        r#"route {
        xlog("name $ct.fields(name) params $ct.fields(params) expires $ct.fields(expires)\n");
        xlog("URI $ct.fields(URI) name1 $(ct.fields(name)[1]) params1 $(ct.fields(params)[1])\n");
        if ($ct.fields(expires) == 60) xlog("int compare\n");
        if ($ct.fields(expires) == "60") xlog("string compare\n");
    }"#,
    );
    assert_eq!(
        l,
        [
            "name \"Al\" params expires=60;q=0.5 expires 60\n",
            "URI sip:alice@pc33.atlanta.com name1 <null> params1 <null>\n",
            "string compare\n",
        ]
    );
}

// Item 5: Proxy-Authorization when present, else Authorization, for any method but ACK and
// CANCEL; `$ad` only from a `user@domain` username.
#[test]
fn credentials_come_from_either_header_whatever_the_method() {
    let script = r#"route { xlog("$au|$ad|$aU|$ar|$an\n"); }"#;
    let (l, _) = run_on(script, INVITE);
    assert_eq!(l, ["bob|<null>|bob|biloxi.com|n1\n"]);
    let both = invite_with(
        "sip:bob@biloxi.com",
        "Proxy-Authorization: Digest username=\"alice@atlanta.com\", realm=\"atlanta.com\", \
         nonce=\"n2\", uri=\"sip:bob@biloxi.com\", response=\"r\"\r\n",
    );
    let (l, _) = run_on(script, &both);
    assert_eq!(l, ["alice|atlanta.com|alice@atlanta.com|atlanta.com|n2\n"]);
    let reg = INVITE
        .replace("INVITE sip:bob@biloxi.com", "REGISTER sip:biloxi.com")
        .replace("0010 INVITE", "1 REGISTER");
    let (l, _) = run_on(script, &reg);
    assert_eq!(l, ["bob|<null>|bob|biloxi.com|n1\n"]);
    let ack = INVITE
        .replace("INVITE sip:bob@biloxi.com", "ACK sip:bob@biloxi.com")
        .replace("0010 INVITE", "10 ACK");
    let (l, _) = run_on(script, &ack);
    assert_eq!(l, ["<null>|<null>|<null>|<null>|<null>\n"]);
}

// Item 6: display names keep their quotes; a token name is as written.
#[test]
fn display_names_keep_their_quotes() {
    let l = logs(
        r#"route {
        xlog("$fn|$tn\n");
        if ($fn == "\"Alice A\"") xlog("quoted\n");
    }"#,
    );
    assert_eq!(l, ["\"Alice A\"|Bob\n", "quoted\n"]);
    let empty = INVITE.replace("\"Alice A\" <sip:alice", "\"\" <sip:alice");
    let (l, _) = run_on(r#"route { xlog("[$fn]\n"); }"#, &empty);
    assert_eq!(l, ["[\"\"]\n"]);
}

// Item 7: `$socket_out` is the receiving socket until one is forced; `$socket_out(forced)` only
// the forced one; the field names are matched in any case.
#[test]
fn socket_out_falls_back_to_the_receiving_socket() {
    let (l, c) = run_on(
        r#"route {
        xlog("$socket_out $socket_out(proto) $socket_out(PORT) $socket_in(IP)\n");
        if ($socket_out(forced) == NULL) xlog("none forced\n");
        xlog("$proxy_protocol(SRC_IP)\n");
    }"#,
        INVITE,
    );
    assert_eq!(
        l,
        [
            "udp:127.0.0.1:5060 udp 5060 127.0.0.1\n",
            "none forced\n",
            "<null>\n"
        ]
    );
    assert_eq!(c.send_socket, None, "reading forces nothing");
}

// Item 8: `$rb` is NULL without a body; `$(rb[i])` and `$(rb(type)[i])` pick body parts.
#[test]
fn message_body_is_null_when_empty_and_indexed_by_part() {
    let l = logs(
        r#"route {
        if ($rb == NULL) xlog("no body\n");
        xlog("$(rb[0])\n");
    }"#,
    );
    assert_eq!(l, ["no body\n", "<null>\n"]);
    let multi = INVITE.replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Type: multipart/mixed;boundary=\"xyz\"\r\nContent-Length: 0\r\n\r\n\
         --xyz\r\nContent-Type: text/plain\r\n\r\none\r\n--xyz\r\n\
         Content-Type: application/isup\r\n\r\nISUP\r\n--xyz\r\n\
         Content-Type: text/plain\r\n\r\ntwo\r\n--xyz--\r\n",
    );
    let (l, _) = run_on(
        r#"route {
        xlog("[$(rb[0])] [$(rb[1])] [$(rb[-1])] [$(rb[3])]\n");
        xlog("[$rb(text/plain)] [$(rb(text/plain)[1])] [$(rb(text/plain)[2])]\n");
    }"#,
        &multi,
    );
    assert_eq!(
        l,
        ["[one] [ISUP] [two] [<null>]\n", "[one] [two] [<null>]\n"]
    );
    let plain = INVITE.replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Type: text/plain\r\nContent-Length: 0\r\n\r\nhello",
    );
    let (l, _) = run_on(
        r#"route { xlog("[$rb] [$(rb[0])] [$(rb[1])]\n"); }"#,
        &plain,
    );
    assert_eq!(l, ["[hello] [hello] [<null>]\n"]);
}

// Item 9: an empty `$du` is no destination.
#[test]
fn empty_destination_uri_clears_it() {
    let (l, c) = run_on(
        r#"route {
        $du = "sip:gw.example.com";
        $du = "";
        if ($du == NULL) xlog("du NULL\n");
        if (!isdsturiset()) xlog("not set\n");
    }"#,
        INVITE,
    );
    assert_eq!(l, ["du NULL\n", "not set\n"]);
    assert_eq!(c.dst_uri, None);
}

// Item 12: `$ru` takes any text (an unparsable one reads NULL), "" goes back to the received
// R-URI, and a new R-URI has no q.
#[test]
fn ruri_assignment_takes_text_as_it_is() {
    let l = logs(
        r#"route {
        $ru = "not a uri";
        xlog("bad $rc $ru $rU\n");
        $ru = "";
        xlog("empty $rc $ru\n");
        $ru_q = 500;
        $ru = "sip:z@example.net";
        xlog("q $ru_q\n");
    }"#,
    );
    assert_eq!(
        l,
        [
            "bad 1 <null> <null>\n",
            "empty 1 sip:bob@biloxi.com\n",
            "q -1\n"
        ]
    );
}

// Item 13: `$cs` is the number as written, a string.
#[test]
fn cseq_number_is_a_string() {
    let l = logs(
        r#"route {
        xlog("$cs\n");
        if ($cs == 10) xlog("int compare\n");
        if ($cs == "0010") xlog("string compare\n");
    }"#,
    );
    assert_eq!(l, ["0010\n", "string compare\n"]);
}

// Item 15: forms OpenSIPS accepts that did not load.
#[test]
fn legacy_branch_writes_and_star_indexes() {
    let l = logs(
        r#"route {
        $branch = "sip:one@example.com";
        $branch = "sip:two@example.com";
        $branch(uri) = "sip:first@example.com";
        $(branch(q)[1]) = 500;
        $(branch(DURI)[-1]) = "sip:10.0.0.2";
        xlog("$(branch[*]) | $(branch(q)[*]) | $(branch(duri)[*])\n");
        xlog("$(msg.branch.uri[*])\n");
        xlog("$branch(URI) $(branch(uri)[1])\n");
        xlog("$(hdr_name[*])\n");
    }"#,
    );
    assert_eq!(
        l,
        [
            "sip:first@example.com, sip:two@example.com | , 0.5 | , sip:10.0.0.2\n",
            "sip:bob@biloxi.com, sip:first@example.com, sip:two@example.com\n",
            "sip:first@example.com sip:two@example.com\n",
            "Via, Max-Forwards, To, From, Call-ID, CSeq, Contact, Contact, Authorization, \
             Content-Length\n",
        ]
    );
}

// Item 15: `$challenge.*` of a 401/407 reply and `$Au`.
#[test]
fn challenge_and_accounting_user() {
    let reply = "SIP/2.0 407 Proxy Authentication Required\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
To: Bob <sip:bob@biloxi.com>;tag=abc\r\n\
From: \"Alice A\" <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 2 INVITE\r\n\
Proxy-Authenticate: Digest realm=\"biloxi.com\", nonce=\"xyz\", qop=\"auth,auth-int\", algorithm=sha-256\r\n\
Content-Length: 0\r\n\r\n";
    let script = r#"route {
        xlog("$challenge.realm|$challenge.nonce|$challenge.qop|$challenge.algorithm|[$challenge.opaque]\n");
        xlog("$Au\n");
    }"#;
    let (l, _) = run_on(script, reply);
    assert_eq!(
        l,
        [
            "biloxi.com|xyz|auth,auth-int|SHA-256|[]\n",
            "alice@atlanta.com\n"
        ]
    );
    let (l, _) = run_on(script, INVITE);
    assert_eq!(
        l,
        [
            "<null>|<null>|<null>|<null>|[<null>]\n",
            "alice@atlanta.com\n"
        ]
    );
}

// Item 16: `$log_level` takes an integer as it is and refuses a string; a new host drops the
// R-URI's `maddr`.
#[test]
fn log_level_and_host_rewrite_details() {
    let l = logs(
        r#"route {
        $log_level = 10;
        xlog("level $log_level\n");
        $log_level = "2";
        xlog("string $rc $log_level\n");
        $log_level = NULL;
        $ru = "sip:bob@biloxi.com;maddr=10.0.0.9;lr";
        $rd = "example.net";
        xlog("$ru\n");
    }"#,
    );
    assert_eq!(
        l,
        ["level 10\n", "string -1 10\n", "sip:bob@example.net;lr\n"]
    );
}

// A branch index at the very end of the integer range is out of range, not an overflow.
#[test]
fn a_huge_branch_index_loads_without_overflow() {
    let src = "route {\n  $(branch(uri)[9223372036854775807]) = \"sip:x@example.com\";\n}\n";
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src.to_owned());
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let available = engine::Available {
        modules: Vec::new(),
        builtin: Vec::new(),
        argv: Vec::new(),
    };
    // Whether it loads or is refused, it must not panic.
    let _ = engine::Script::compile(&parsed.config, &sources, &available);
}

/// `$(msg.branch.<field>[$var])` / `$(branch(<field>)[$var])`: the branch a variable names
/// (0 the R-URI's for `$msg.branch`, the first appended one for `$branch`), walked in a loop
/// as configs do until NULL.
#[test]
fn branch_fields_indexed_by_a_variable() {
    let l = logs(
        r#"route {
        $ru = "sip:main@example.com";
        $branch = "sip:one@example.com";
        $branch = "sip:two@example.com";
        $(branch(q)[1]) = 500;
        $var(i) = 0;
        while ($(msg.branch.uri[$var(i)]) != NULL) {
            xlog("$var(i)=$(msg.branch.uri[$var(i)])\n");
            $var(i) = $var(i) + 1;
        }
        $var(i) = 1;
        xlog("legacy $(branch(uri)[$var(i)]) q=$(branch(q)[$var(i)])\n");
        $var(i) = -1;
        xlog("last $(msg.branch.uri[$var(i)])\n");
        $var(i) = "x";
        xlog("not a number $(msg.branch.uri[$var(i)])\n");
    }"#,
    );
    assert_eq!(
        l,
        [
            "0=sip:main@example.com\n",
            "1=sip:one@example.com\n",
            "2=sip:two@example.com\n",
            "legacy sip:two@example.com q=0.5\n",
            "last sip:two@example.com\n",
            "not a number <null>\n",
        ]
    );
}
