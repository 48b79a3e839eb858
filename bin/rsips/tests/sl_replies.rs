//! sl's stateless replies on the wire (OpenSIPS sl behaviour): the To tag from 180 up, the
//! absorbed ACK for a stateless reply, `server_signature` / `server_header`, 3xx replies with the
//! destination set as Contact, and `sl_reply_error()` after a failed relay.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Kill, free_port};

struct Server {
    _child: Kill,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// rsips on 127.0.0.1 with `globals` and `route`; returns once it answers an OPTIONS.
fn start(globals: &str, route: &str) -> Server {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("rsips-sl-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("t.cfg");
    std::fs::write(
        &cfg,
        format!(
            "socket=udp:127.0.0.1:{port}\n{globals}\nloadmodule \"proto_udp.so\"\n\
             loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"sipmsgops.so\"\n\
             route {{\n  if (is_method(\"OPTIONS\")) {{ sl_send_reply(200, \"OK\"); exit; }}\n{route}\n}}\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("rsips.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .args(["-F", "-f"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Server {
        _child: Kill(child),
        port,
        dir,
    };
    // Probes sent before the socket is bound are lost: ask often.
    let c = client();
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if exchange(&server, &c, &request("OPTIONS", "probe", "")).is_some() {
            return server;
        }
    }
    let log = std::fs::read_to_string(server.dir.join("rsips.log")).unwrap_or_default();
    panic!("rsips did not answer:\n{log}");
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn exchange(server: &Server, c: &UdpSocket, msg: &str) -> Option<String> {
    c.send_to(msg.as_bytes(), ("127.0.0.1", server.port))
        .unwrap();
    let mut buf = [0u8; 65_535];
    let (n, _) = c.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A request from 127.0.0.1 (rport) with `to_tag` on its To when not empty.
fn request(method: &str, call_id: &str, to_tag: &str) -> String {
    let tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    format!(
        "{method} sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{call_id};rport\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>{tag}\r\nCall-ID: {call_id}\r\n\
         CSeq: 7 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn header<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    reply.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn to_tag(reply: &str) -> Option<&str> {
    header(reply, "To")?.split(";tag=").nth(1)
}

#[test]
fn the_to_tag_comes_from_180_up_and_the_ack_for_a_stateless_reply_is_absorbed() {
    let server = start(
        "",
        r#"  xlog("L_NOTICE", "script saw $rm $ci\n");
  if (is_method("ACK")) exit;
  if ($ci == "ringing") { sl_send_reply(180, "Ringing"); exit; }
  if ($ci == "early") { sl_send_reply(150, "Queued Early"); exit; }
  sl_send_reply(404, "Not Here");"#,
    );
    let c = client();
    let r = exchange(&server, &c, &request("INVITE", "early", "")).unwrap();
    assert!(r.starts_with("SIP/2.0 150 Queued Early\r\n"), "{r}");
    assert_eq!(to_tag(&r), None, "no tag below 180: {r}");
    let r = exchange(&server, &c, &request("INVITE", "ringing", "")).unwrap();
    let ringing = to_tag(&r).unwrap().to_owned();
    let r = exchange(&server, &c, &request("INVITE", "busy", "")).unwrap();
    assert!(r.starts_with("SIP/2.0 404 Not Here\r\n"), "{r}");
    let tag = to_tag(&r).unwrap().to_owned();
    // `<4 hex>.<32 hex>`, the prefix the same for every stateless reply of this server.
    let (prefix, digest) = tag.split_once('.').unwrap();
    assert!(
        prefix.len() == 4
            && digest.len() == 32
            && tag.chars().all(|c| c == '.' || c.is_ascii_hexdigit()),
        "{tag}"
    );
    assert!(ringing.starts_with(&format!("{prefix}.")), "{ringing}");
    assert_ne!(ringing, tag, "another request, another tag");
    // A retransmission gets the same tag.
    let again = exchange(&server, &c, &request("INVITE", "busy", "")).unwrap();
    assert_eq!(to_tag(&again), Some(tag.as_str()));
    // The ACK for the 404 ends in sl; an ACK with a tag that is not ours reaches the script.
    c.send_to(
        request("ACK", "busy", &tag).as_bytes(),
        ("127.0.0.1", server.port),
    )
    .unwrap();
    c.send_to(
        request("ACK", "other", "f00.1234").as_bytes(),
        ("127.0.0.1", server.port),
    )
    .unwrap();
    // Our tag on an ACK with another top Via (another server's reply, seen passing through):
    // not ours.
    c.send_to(
        request("ACK", "passing", &tag).as_bytes(),
        ("127.0.0.1", server.port),
    )
    .unwrap();
    let log_path = server.dir.join("rsips.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut log = String::new();
    while Instant::now() < deadline
        && !(log.contains("script saw ACK other") && log.contains("script saw ACK passing"))
    {
        std::thread::sleep(Duration::from_millis(50));
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
    }
    assert!(log.contains("script saw ACK other"), "{log}");
    assert!(log.contains("script saw ACK passing"), "{log}");
    assert!(!log.contains("script saw ACK busy"), "{log}");
}

#[test]
fn server_signature_and_server_header() {
    let server = start("", r#"  sl_send_reply(403, "No");"#);
    let r = exchange(&server, &client(), &request("MESSAGE", "sig1", "")).unwrap();
    assert!(
        header(&r, "Server").is_some_and(|s| s.starts_with("rsips (")),
        "{r}"
    );
    drop(server);
    let server = start(
        "server_header=\"Server: Edge Proxy 7\"",
        r#"  sl_send_reply(403, "No");"#,
    );
    let r = exchange(&server, &client(), &request("MESSAGE", "sig2", "")).unwrap();
    assert_eq!(header(&r, "Server"), Some("Edge Proxy 7"), "{r}");
    drop(server);
    let server = start("server_signature=no", r#"  sl_send_reply(403, "No");"#);
    let r = exchange(&server, &client(), &request("MESSAGE", "sig3", "")).unwrap();
    assert!(r.starts_with("SIP/2.0 403 No\r\n"), "{r}");
    assert_eq!(header(&r, "Server"), None, "{r}");
}

#[test]
fn a_redirect_lists_the_destination_set_as_contacts() {
    let server = start(
        "",
        r#"  if ($ci == "plain") { sl_send_reply(302, "Moved"); exit; }
  $ru = "sip:carol@192.0.2.10";
  append_msg_branch("sip:dave@192.0.2.11", "0.5");
  append_msg_branch("sip:erin@192.0.2.12");
  sl_send_reply(302, "Moved Temporarily");"#,
    );
    let c = client();
    let r = exchange(&server, &c, &request("INVITE", "moved", "")).unwrap();
    assert!(r.starts_with("SIP/2.0 302 Moved Temporarily\r\n"), "{r}");
    assert_eq!(
        header(&r, "Contact"),
        Some("<sip:carol@192.0.2.10>, <sip:dave@192.0.2.11>;q=0.5, <sip:erin@192.0.2.12>"),
        "{r}"
    );
    let r = exchange(&server, &c, &request("INVITE", "plain", "")).unwrap();
    assert!(r.starts_with("SIP/2.0 302 Moved\r\n"), "{r}");
    assert_eq!(header(&r, "Contact"), None, "an empty destination set: {r}");
}

#[test]
fn sl_reply_error_answers_for_the_last_error() {
    let server = start(
        "",
        r#"  if ($ci == "nothing") { sl_reply_error(); exit; }
  $du = "sip:no-such-host.invalid";
  if ($ci == "auto") {
    if (t_relay()) xlog("t_relay true after its own reply\n");
    exit;
  }
  if (!t_relay("no-auto-477")) sl_reply_error();"#,
    );
    let c = client();
    let r = exchange(&server, &c, &request("MESSAGE", "nothing", "")).unwrap();
    assert!(
        r.starts_with("SIP/2.0 500 Server error occurred (1/SL)\r\n"),
        "{r}"
    );
    let r = exchange(&server, &c, &request("MESSAGE", "unresolvable", "")).unwrap();
    assert!(
        r.starts_with("SIP/2.0 476 Unresolvable destination (476/SL)\r\n"),
        "{r}"
    );
    // Without no-auto-477, t_relay answers a transaction it could not relay itself, with the
    // reason, and succeeds (OpenSIPS' kill_transaction).
    let r = exchange(&server, &c, &request("MESSAGE", "auto", "")).unwrap();
    assert!(
        r.starts_with("SIP/2.0 476 Unresolvable destination (476/TM)\r\n"),
        "{r}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = std::fs::read_to_string(server.dir.join("rsips.log")).unwrap_or_default();
        if log.contains("t_relay true") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(log.contains("t_relay true after its own reply"), "{log}");
}

// OpenSIPS copies the request's Record-Route into replies from 180 to 299 (those that can set
// up a dialog), not into provisional 1xx below 180 nor into negative replies.
#[test]
fn record_route_is_copied_into_replies_from_180_to_299() {
    let server = start(
        "",
        r#"  if ($ci == "c100") { sl_send_reply(100, "Trying"); exit; }
  if ($ci == "c180") { sl_send_reply(180, "Ringing"); exit; }
  if ($ci == "c200") { sl_send_reply(200, "OK"); exit; }
  sl_send_reply(486, "Busy Here");"#,
    );
    let c = client();
    let with_rr = |call_id: &str| {
        request("INVITE", call_id, "").replacen(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nRecord-Route: <sip:p1.example.com;lr>\r\nRecord-Route: <sip:p2.example.com;lr>\r\n",
            1,
        )
    };
    let rr_lines = |r: &str| {
        r.lines()
            .filter(|l| l.starts_with("Record-Route:"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let both = vec![
        "Record-Route: <sip:p1.example.com;lr>".to_owned(),
        "Record-Route: <sip:p2.example.com;lr>".to_owned(),
    ];
    let r = exchange(&server, &c, &with_rr("c180")).unwrap();
    assert_eq!(rr_lines(&r), both, "{r}");
    let r = exchange(&server, &c, &with_rr("c200")).unwrap();
    assert_eq!(rr_lines(&r), both, "{r}");
    let r = exchange(&server, &c, &with_rr("c100")).unwrap();
    assert!(rr_lines(&r).is_empty(), "{r}");
    let r = exchange(&server, &c, &with_rr("c486")).unwrap();
    assert!(r.starts_with("SIP/2.0 486 "), "{r}");
    assert!(rr_lines(&r).is_empty(), "{r}");
}

// An ACK is never answered, and sl_send_reply on it is a success (OpenSIPS returns 1).
#[test]
fn sl_send_reply_on_an_ack_sends_nothing_and_succeeds() {
    let server = start(
        "",
        r#"  if (is_method("ACK")) {
    if (sl_send_reply(404, "No")) xlog("ack-reply-true\n"); else xlog("ack-reply-false\n");
    exit;
  }"#,
    );
    let c = client();
    c.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    assert_eq!(
        exchange(&server, &c, &request("ACK", "ack1", "foreign")),
        None,
        "no reply to an ACK"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = std::fs::read_to_string(server.dir.join("rsips.log")).unwrap_or_default();
        if log.contains("ack-reply-") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(log.contains("ack-reply-true"), "{log}");
}

// A reply code or Max-Forwards literal out of range stops the start with its position, as
// OpenSIPS' fixups do (`rsips -c` reports it); a quoted number counts as a literal.
#[test]
fn out_of_range_literals_fail_the_config_check() {
    let dir = std::env::temp_dir().join(format!("rsips-sl-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.cfg");
    std::fs::write(
        &cfg,
        "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\n\
         loadmodule \"tm.so\"\nloadmodule \"maxfwd.so\"\nroute {\n\
         \x20 if (!mf_process_maxfwd_header(0)) exit;\n\
         \x20 sl_send_reply(700, \"Too big\");\n\
         \x20 t_reply(\"99\", \"Too small\");\n\
         \x20 $var(c) = 700;\n\
         \x20 sl_send_reply($var(c), \"Checked when it runs\");\n}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .args(["-c", "-f"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "bad Max-Forwards value for `mf_process_maxfwd_header`: 0 is not between 1 and 256"
        ) && err.contains("bad.cfg:7:33"),
        "{err}"
    );
    assert!(
        err.contains("bad reply code for `sl_send_reply`: 700 is not between 100 and 699")
            && err.contains("bad.cfg:8:17"),
        "{err}"
    );
    assert!(
        err.contains("bad reply code for `t_reply`: 99 is not between 100 and 699"),
        "{err}"
    );
    assert_eq!(err.matches("bad reply code").count(), 2, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Local replies list their headers in OpenSIPS' order whatever the request's: every Via,
/// Record-Route (180-299), To, From, Call-ID, CSeq, then the script's headers and Server.
#[test]
fn local_replies_put_their_headers_in_opensips_order() {
    let server = start(
        "",
        r#"  append_to_reply("X-Script: 1\r\n");
  sl_send_reply(180, "Ringing");"#,
    );
    let req = "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nCSeq: 7 INVITE\r\nCall-ID: order\r\n\
               From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n\
               Record-Route: <sip:rr.example.com;lr>\r\nMax-Forwards: 70\r\n\
               Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKorder;rport\r\n\
               Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKup\r\nContent-Length: 0\r\n\r\n";
    let r = exchange(&server, &client(), req).unwrap();
    let names: Vec<&str> = r
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':').map(|(n, _)| n))
        .collect();
    assert_eq!(
        names,
        [
            "Via",
            "Via",
            "Record-Route",
            "To",
            "From",
            "Call-ID",
            "CSeq",
            "X-Script",
            "Server",
            "Content-Length"
        ],
        "{r}"
    );
}
