//! The stock OpenSIPS 4.0 `opensips.cfg` (the residential script: usrloc, registrar, tm, rr,
//! acc) run by rsips end to end, changed only where the test must (its socket's port, the FIFO
//! path, logging to stderr): registrations with OpenSIPS' 200 OK, calls to what registered
//! (forked to every contact, q first), 404 for the rest, unregistering, the refusals, and the
//! location table through the real `opensips-cli`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Kill;

struct Server {
    child: Kill,
    dir: PathBuf,
    port: u16,
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }

    /// A clean stop (SIGTERM), waited for.
    fn stop(&mut self) {
        let log = self.log();
        self.child.terminate(|| log.clone());
    }
}

/// rsips on the stock opensips.cfg.
fn start() -> Server {
    let stock = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/reference/opensips-configs/4.0/opensips.cfg"),
    )
    .unwrap();
    start_on(|port, fifo| {
        stock
            .replace(
                "socket=udp:127.0.0.1:5060",
                &format!("socket=udp:127.0.0.1:{port}"),
            )
            .replace("/run/opensips/opensips_fifo", fifo)
            .replace("stderror_enabled=no", "stderror_enabled=yes")
            .replace("syslog_enabled=yes", "syslog_enabled=no")
    })
}

/// rsips on the config `cfg` makes for a free port and a FIFO path.
fn start_on(cfg: impl Fn(u16, &str) -> String) -> Server {
    start_at(common::free_port(), cfg)
}

/// As [`start_on`], on a given port (a restart on the same one).
fn start_at(port: u16, cfg: impl Fn(u16, &str) -> String) -> Server {
    let dir = std::env::temp_dir().join(format!("rsips-registrar-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("opensips_fifo");
    let text = cfg(port, fifo.to_str().unwrap());
    assert!(
        text.contains(&format!(":{port}")) && text.contains(fifo.to_str().unwrap()),
        "the test's port and FIFO are in the config"
    );
    std::fs::write(dir.join("opensips.cfg"), text).unwrap();
    let fifo_ready = fifo.clone();
    let child = common::spawn_rsips(&dir, "opensips.cfg", move |log| {
        log.contains("listening on udp:") && fifo_ready.exists()
    });
    Server { child, dir, port }
}

/// A config on the test's port and FIFO that loads every module these tests use (UDP and TCP,
/// sl, signaling, tm, usrloc, registrar, nathelper, mi_fifo), then `rest`: more globals and
/// modparams, and the routes.
fn with_modules(port: u16, fifo: &str, rest: &str) -> String {
    format!(
        r#"socket=udp:127.0.0.1:{port}
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "proto_tcp.so"
loadmodule "sl.so"
loadmodule "signaling.so"
loadmodule "tm.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "nathelper.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "{fifo}")
{rest}"#
    )
}

/// A UDP endpoint of the test (a phone).
struct Phone {
    sock: UdpSocket,
    port: u16,
}

fn phone() -> Phone {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    Phone { sock, port }
}

impl Phone {
    fn send(&self, server: &Server, text: &str) {
        self.sock
            .send_to(text.as_bytes(), ("127.0.0.1", server.port))
            .unwrap();
    }

    /// The next message whose first line starts with `start`, within 5 s.
    fn recv(&self, start: &str, server: &Server) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 65535];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                if m.starts_with(start) {
                    return m;
                }
            }
        }
        panic!(
            "nothing starting with {start:?} within 5 s; server log:\n{}",
            server.log()
        );
    }
}

/// A REGISTER for `user` from `phone` (its Contact names the phone), with extra header lines.
fn register(
    server: &Server,
    phone: &Phone,
    user: &str,
    call: &str,
    cseq: u32,
    contact: &str,
    extra: &str,
) -> String {
    format!(
        "REGISTER sip:127.0.0.1:{sp} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{pp};branch=z9hG4bK-{call}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@127.0.0.1>;tag=r{cseq}\r\n\
         To: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: {call}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: {contact}\r\n\
         {extra}Content-Length: 0\r\n\r\n",
        sp = server.port,
        pp = phone.port
    )
}

fn invite(server: &Server, caller: &Phone, callee: &str, call: &str) -> String {
    format!(
        "INVITE sip:{callee}@127.0.0.1:{sp} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-{call}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:carol@127.0.0.1>;tag=c1\r\n\
         To: <sip:{callee}@127.0.0.1>\r\n\
         Call-ID: {call}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:carol@127.0.0.1:{cp}>\r\n\
         Content-Length: 0\r\n\r\n",
        sp = server.port,
        cp = caller.port
    )
}

fn header<'a>(m: &'a str, name: &str) -> Option<&'a str> {
    m.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A reply to `req` (as the phone got it), with a To tag.
fn answer(req: &str, code: u16, reason: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for l in req.lines().skip(1) {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" | "record-route" => {
                out.push_str(l);
                out.push_str("\r\n");
            }
            "to" => {
                out.push_str(l);
                out.push_str(";tag=callee\r\n");
            }
            _ => {}
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

#[test]
fn registered_contacts_get_the_calls_and_unregistering_ends_that() {
    let server = start();
    let (desk, mobile, caller) = (phone(), phone(), phone());
    let desk_uri = format!("sip:alice@127.0.0.1:{}", desk.port);
    let mobile_uri = format!("sip:alice@127.0.0.1:{}", mobile.port);

    desk.send(
        &server,
        &register(
            &server,
            &desk,
            "alice",
            "reg-desk",
            1,
            &format!("<{desk_uri}>"),
            "Expires: 300\r\n",
        ),
    );
    let ok = desk.recv("SIP/2.0 ", &server);
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    assert_eq!(
        header(&ok, "Contact"),
        Some(format!("<{desk_uri}>;expires=300").as_str()),
        "{ok}"
    );
    assert!(header(&ok, "To").unwrap().contains(";tag="), "{ok}");

    // A second device with a q: the 200 lists every binding, the higher q first.
    mobile.send(
        &server,
        &register(
            &server,
            &mobile,
            "alice",
            "reg-mobile",
            7,
            &format!("<{mobile_uri}>;q=0.5;expires=120"),
            "",
        ),
    );
    let ok = mobile.recv("SIP/2.0 ", &server);
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    let contact = header(&ok, "Contact").unwrap();
    assert!(
        contact.starts_with(&format!("<{mobile_uri}>;q=0.5;expires=12"))
            && contact.contains(&format!(", <{desk_uri}>;expires=")),
        "{contact}"
    );

    // A call to alice rings both (the R-URI is each contact), record-routed; the desk
    // answers, the mobile is cancelled.
    caller.send(&server, &invite(&server, &caller, "alice", "call-1"));
    let at_desk = desk.recv("INVITE ", &server);
    let at_mobile = mobile.recv("INVITE ", &server);
    assert!(
        at_desk.starts_with(&format!("INVITE {desk_uri} SIP/2.0")),
        "{at_desk}"
    );
    assert!(
        at_mobile.starts_with(&format!("INVITE {mobile_uri} SIP/2.0")),
        "{at_mobile}"
    );
    assert!(header(&at_desk, "Record-Route").is_some(), "{at_desk}");
    // The mobile rings (a branch is cancelled once it answered provisionally).
    mobile
        .sock
        .send_to(
            answer(&at_mobile, 180, "Ringing").as_bytes(),
            ("127.0.0.1", server.port),
        )
        .unwrap();
    caller.recv("SIP/2.0 180", &server);
    desk.sock
        .send_to(
            answer(&at_desk, 200, "OK").as_bytes(),
            ("127.0.0.1", server.port),
        )
        .unwrap();
    let ok = caller.recv("SIP/2.0 200", &server);
    assert_eq!(header(&ok, "Call-ID"), Some("call-1"));
    let cancel = mobile.recv("CANCEL ", &server);
    assert!(
        cancel.starts_with(&format!("CANCEL {mobile_uri} SIP/2.0")),
        "{cancel}"
    );

    // Nobody registered as bob.
    caller.send(&server, &invite(&server, &caller, "bob", "call-2"));
    let nf = caller.recv("SIP/2.0 4", &server);
    assert!(nf.starts_with("SIP/2.0 404 Not Found\r\n"), "{nf}");

    // The desk unregisters (Expires: 0): the 200 lists what is left.
    desk.send(
        &server,
        &register(
            &server,
            &desk,
            "alice",
            "reg-desk",
            2,
            &format!("<{desk_uri}>"),
            "Expires: 0\r\n",
        ),
    );
    let ok = desk.recv("SIP/2.0 ", &server);
    let contact = header(&ok, "Contact").unwrap();
    assert!(
        contact.starts_with(&format!("<{mobile_uri}>;q=0.5;expires=")) && !contact.contains(','),
        "{ok}"
    );

    // `Contact: *` with Expires 0 removes the rest: no Contact in the 200, and calls to
    // alice now get the 404.
    mobile.send(
        &server,
        &register(
            &server,
            &mobile,
            "alice",
            "reg-mobile",
            8,
            "*",
            "Expires: 0\r\n",
        ),
    );
    let ok = mobile.recv("SIP/2.0 ", &server);
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    assert_eq!(header(&ok, "Contact"), None, "{ok}");
    caller.send(&server, &invite(&server, &caller, "alice", "call-3"));
    let nf = caller.recv("SIP/2.0 4", &server);
    assert!(nf.starts_with("SIP/2.0 404 Not Found\r\n"), "{nf}");
}

#[test]
fn refused_registrations_say_why() {
    let server = start();
    let p = phone();
    let uri = format!("sip:dave@127.0.0.1:{}", p.port);
    for (cseq, contact, extra, want) in [
        (
            1,
            "*",
            "Expires: 300\r\n",
            "* used in contact and expires is not zero",
        ),
        (2, "<sip:x@h>;q=1.5", "", "Invalid q param in contact"),
        (3, "<sip:x@h>", "Expires: soon\r\n", "Expires parse error"),
    ] {
        p.send(
            &server,
            &register(&server, &p, "dave", "bad", cseq, contact, extra),
        );
        let r = p.recv("SIP/2.0 ", &server);
        assert!(r.starts_with("SIP/2.0 400 Bad Request\r\n"), "{r}");
        assert_eq!(header(&r, "P-Registrar-Error"), Some(want), "{r}");
    }
    // An older CSeq of the same call cannot rewrite a binding.
    p.send(
        &server,
        &register(&server, &p, "dave", "seq", 10, &format!("<{uri}>"), ""),
    );
    assert!(p.recv("SIP/2.0 ", &server).starts_with("SIP/2.0 200 OK"));
    p.send(
        &server,
        &register(&server, &p, "dave", "seq", 5, &format!("<{uri}>"), ""),
    );
    let r = p.recv("SIP/2.0 ", &server);
    assert!(r.starts_with("SIP/2.0 400 Bad Request\r\n"), "{r}");
    assert_eq!(header(&r, "P-Registrar-Error"), Some("Invalid CSeq number"));
    assert!(
        header(&r, "Contact").is_some_and(|c| c.starts_with(&format!("<{uri}>;expires="))),
        "the refusal lists the bindings as they stand: {r}"
    );
    // A REGISTER without Contact asks for the bindings.
    p.send(
        &server,
        &register(&server, &p, "dave", "query", 1, "<x>", "").replace("Contact: <x>\r\n", ""),
    );
    let r = p.recv("SIP/2.0 ", &server);
    assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
    assert!(header(&r, "Contact").is_some_and(|c| c.starts_with(&format!("<{uri}>"))));
    // The server still serves.
    assert!(server.log().contains("listening on udp:"));
}

/// `opensips-cli -x mi …` over the stock config's FIFO.
fn cli(server: &Server, args: &[&str]) -> (bool, String) {
    // The stock config leaves mi_fifo's reply_dir at /tmp/, opensips-cli's default too.
    common::opensips_cli(&server.dir.join("opensips_fifo"), args)
}

#[test]
fn the_location_table_through_opensips_cli() {
    let server = start();
    let p = phone();
    let uri = format!("sip:erin@127.0.0.1:{}", p.port);
    p.send(
        &server,
        &register(
            &server,
            &p,
            "erin",
            "mi-reg",
            3,
            &format!("<{uri}>;q=0.25"),
            "Expires: 600\r\nUser-Agent: TestPhone/1.0\r\nAllow: INVITE, ACK, BYE\r\n",
        ),
    );
    assert!(p.recv("SIP/2.0 ", &server).starts_with("SIP/2.0 200 OK"));

    let (ok, out) = cli(&server, &["ul_show_contact", "location", "erin@127.0.0.1"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["AOR"], "erin@127.0.0.1", "{out}");
    let c = &v["Contacts"][0];
    assert_eq!(c["Contact"], uri.as_str(), "{out}");
    assert_eq!(c["Q"], "0.25");
    assert_eq!(c["Callid"], "mi-reg");
    assert_eq!(c["Cseq"], 3);
    assert_eq!(c["User-agent"], "TestPhone/1.0");
    assert_eq!(c["Methods"], 1 + 4 + 8, "INVITE, ACK and BYE: {out}");
    assert_eq!(
        c["Socket"],
        format!("udp:127.0.0.1:{}", server.port).as_str()
    );
    let left = c["Expires"].as_u64().unwrap();
    assert!((595..=600).contains(&left), "{out}");

    let (ok, out) = cli(&server, &["usrloc:dump"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["Domains"][0]["name"], "location", "{out}");
    assert_eq!(v["Domains"][0]["hash_size"], 512, "{out}");
    assert_eq!(v["Domains"][0]["AORs"][0]["AOR"], "erin@127.0.0.1", "{out}");

    let (ok, out) = cli(&server, &["get_statistics", "usrloc:", "registrar:"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["usrloc:registered_users"], 1, "{out}");
    assert_eq!(v["usrloc:location-contacts"], 1, "{out}");
    assert_eq!(v["registrar:accepted_regs"], 1, "{out}");
    assert_eq!(v["registrar:default_expire"], 3600, "{out}");

    // Errors come back as OpenSIPS words them.
    let (ok, out) = cli(
        &server,
        &["ul_show_contact", "location", "nobody@127.0.0.1"],
    );
    assert!(!ok && out.contains("AOR not found"), "{out}");
    let (ok, out) = cli(&server, &["ul_show_contact", "location", "erin"]);
    assert!(!ok && out.contains("Domain missing in AOR"), "{out}");
    let (ok, out) = cli(&server, &["ul_show_contact", "nowhere", "erin@127.0.0.1"]);
    assert!(!ok && out.contains("Table not found"), "{out}");

    // ul_rm takes the AOR away: calls to erin are answered 404 from then on.
    let (ok, out) = cli(&server, &["ul_rm", "location", "erin@127.0.0.1"]);
    assert!(ok, "{out}");
    let caller = phone();
    caller.send(&server, &invite(&server, &caller, "erin", "after-rm"));
    assert!(
        caller
            .recv("SIP/2.0 4", &server)
            .starts_with("SIP/2.0 404 Not Found")
    );

    // ul_add puts one back, and the next call goes to it.
    let (ok, out) = cli(
        &server,
        &[
            "ul_add",
            "location",
            "erin@127.0.0.1",
            &uri,
            "0",
            "1",
            "0",
            "0",
            "4294967295",
        ],
    );
    assert!(ok, "{out}");
    caller.send(&server, &invite(&server, &caller, "erin", "after-add"));
    let inv = p.recv("INVITE ", &server);
    assert!(inv.starts_with(&format!("INVITE {uri} SIP/2.0")), "{inv}");
    let (ok, out) = cli(&server, &["ul_show_contact", "location", "erin@127.0.0.1"]);
    assert!(ok && out.contains("\"permanent\""), "{out}");
}

// The embedded default config (etc/rsips.cfg) registers and routes too, and keeps its
// registrations in a SQLite file it creates on first start: after a clean stop and a new
// start the user is still reachable.
#[test]
fn the_embedded_default_config_is_a_registrar() {
    let embedded = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/rsips.cfg"),
    )
    .unwrap();
    assert!(embedded.contains("sqlite:///var/tmp/rsips.sqlite"));
    let db = std::env::temp_dir().join(format!("rsips-embedded-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let http = common::free_port();
    let port = common::free_port();
    let cfg = |_, fifo: &str| {
        embedded
            .replace("127.0.0.1:5060", &format!("127.0.0.1:{port}"))
            .replace("/tmp/rsips_fifo", fifo)
            .replace("/var/tmp/rsips.sqlite", db.to_str().unwrap())
            .replace(
                "loadmodule \"httpd.so\"",
                &format!("loadmodule \"httpd.so\"\nmodparam(\"httpd\", \"port\", {http})"),
            )
    };
    let mut server = start_at(port, cfg);
    assert!(db.exists(), "the database file is made on first start");
    let (p, caller) = (phone(), phone());
    let uri = format!("sip:frank@127.0.0.1:{}", p.port);
    p.send(
        &server,
        &register(&server, &p, "frank", "emb", 1, &format!("<{uri}>"), ""),
    );
    let ok = p.recv("SIP/2.0 ", &server);
    assert_eq!(
        header(&ok, "Contact"),
        Some(format!("<{uri}>;expires=3600").as_str()),
        "{ok}"
    );
    caller.send(&server, &invite(&server, &caller, "frank", "emb-call"));
    let inv = p.recv("INVITE ", &server);
    assert!(inv.starts_with(&format!("INVITE {uri} SIP/2.0")), "{inv}");
    caller.send(&server, &invite(&server, &caller, "grace", "emb-404"));
    assert!(
        caller
            .recv("SIP/2.0 4", &server)
            .starts_with("SIP/2.0 404 Not Found")
    );

    // A clean stop writes the registration back; the next start (on the existing file)
    // loads it.
    server.stop();
    let server = start_at(port, cfg);
    let log = server.log();
    assert!(log.contains("1 contacts loaded"), "{log}");
    caller.send(&server, &invite(&server, &caller, "frank", "emb-call-2"));
    let inv = p.recv("INVITE ", &server);
    assert!(inv.contains("Call-ID: emb-call-2"), "{inv}");
    let _ = std::fs::remove_file(&db);
}

// registrar's tcp_persistent_flag: a REGISTER over TCP with the flag set keeps its connection
// open as long as the registration lasts, past tcp_connection_lifetime (2 s here); without
// the flag the idle connection closes. A call to the user then comes down that connection.
#[test]
fn a_persistent_tcp_registration_keeps_its_connection_open() {
    use std::io::{Read, Write};
    let server = start_on(|port, fifo| {
        with_modules(
            port,
            fifo,
            &(format!("socket=tcp:127.0.0.1:{port}\n")
                + r#"tcp_connection_lifetime=2
modparam("registrar", "tcp_persistent_flag", "TCP_PERSISTENT")
route {
    if ($rm == "REGISTER") {
        if ($hdr(X-Persist) != NULL) setflag("TCP_PERSISTENT");
        save("location");
        exit;
    }
    if (!lookup("location")) { sl_send_reply(404, "Not Found"); exit; }
    t_relay();
}
"#),
        )
    });
    let connect = |user: &str, persist: bool| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let me = s.local_addr().unwrap().port();
        let extra = if persist { "X-Persist: 1\r\n" } else { "" };
        let reg = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/TCP 127.0.0.1:{me};branch=z9hG4bK-tcp-{user}\r\n\
             From: <sip:{user}@127.0.0.1>;tag=t\r\nTo: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: tcp-{user}\r\nCSeq: 1 REGISTER\r\n\
             Contact: <sip:{user}@127.0.0.1:{me};transport=tcp>\r\nExpires: 60\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        s.write_all(reg.as_bytes()).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
        s
    };
    let mut kept = connect("tina", true);
    let mut dropped = connect("uma", false);
    // Past the 2 s lifetime (the server checks idle connections when their deadline comes).
    std::thread::sleep(Duration::from_millis(3500));
    let mut buf = [0u8; 4096];
    match dropped.read(&mut buf) {
        Ok(0) => {}
        other => panic!("the connection without the flag is still open: {other:?}"),
    }
    let caller = phone();
    caller.send(&server, &invite(&server, &caller, "tina", "tcp-call"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = String::new();
    while Instant::now() < deadline && !got.contains("\r\n\r\n") {
        match kept.read(&mut buf) {
            Ok(0) => panic!("the persistent connection closed; log:\n{}", server.log()),
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
    }
    assert!(
        got.starts_with("INVITE sip:tina@127.0.0.1:"),
        "{got}\n{}",
        server.log()
    );
}

// With a transaction (t_newtran before save), the registrar's reply goes through tm and keeps
// its Contact list; a retransmitted REGISTER then gets the same reply from the transaction.
#[test]
fn save_answers_through_the_transaction_when_there_is_one() {
    let server = start_on(|port, fifo| {
        with_modules(
            port,
            fifo,
            r#"route {
    if (!t_newtran()) exit;
    save("location");
}
"#,
        )
    });
    let p = phone();
    let uri = format!("sip:hugo@127.0.0.1:{}", p.port);
    let reg = register(&server, &p, "hugo", "tx-reg", 1, &format!("<{uri}>"), "");
    p.send(&server, &reg);
    let first = p.recv("SIP/2.0 200", &server);
    assert_eq!(
        header(&first, "Contact"),
        Some(format!("<{uri}>;expires=3600").as_str()),
        "{first}"
    );
    p.send(&server, &reg);
    let again = p.recv("SIP/2.0 200", &server);
    assert_eq!(again, first, "the transaction's reply, resent");
}

// Real SIPp phones on the stock config: a uas registers (from the port it then answers on) as
// "ivan"; a uac calls ivan through the proxy and completes the call (INVITE, 180, 200, ACK
// and BYE along the Record-Route).
#[test]
fn sipp_calls_a_registered_sipp_through_the_stock_config() {
    let server = start();
    let uas_port = common::free_port();
    {
        let sock = UdpSocket::bind(("127.0.0.1", uas_port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let me = Phone {
            sock,
            port: uas_port,
        };
        me.send(
            &server,
            &register(
                &server,
                &me,
                "ivan",
                "sipp-reg",
                1,
                &format!("<sip:ivan@127.0.0.1:{uas_port}>"),
                "",
            ),
        );
        let ok = me.recv("SIP/2.0 ", &server);
        assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    }
    let scenarios = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp");
    let uas = Kill(
        common::sipp()
            .arg("-sf")
            .arg(scenarios.join("uas_answer.xml"))
            .args(["-i", "127.0.0.1", "-p", &uas_port.to_string()])
            .args(["-m", "1", "-nostdin", "-timeout", "30s"])
            .current_dir(&server.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let uac_port = common::free_port();
    let out = common::sipp()
        .arg("-sf")
        .arg(scenarios.join("uac_call.xml"))
        .args(["-i", "127.0.0.1", "-p", &uac_port.to_string(), "-s", "ivan"])
        .arg(format!("127.0.0.1:{}", server.port))
        .args(["-m", "1", "-timeout", "20s", "-timeout_error", "-nostdin"])
        .current_dir(&server.dir)
        .output()
        .unwrap();
    drop(uas);
    assert!(
        out.status.success(),
        "sipp uac failed ({:?}):\n{}\nrsips:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        server.log()
    );
}

// A phone behind a NAT registers a private Contact; nathelper's fix_nated_register() makes
// the registrar keep where the REGISTER really came from, and calls reach the phone there
// (the R-URI still its registered Contact).
#[test]
fn a_natted_phone_is_called_at_the_address_it_registered_from() {
    let server = start_on(|port, fifo| {
        with_modules(
            port,
            fifo,
            r#"modparam("nathelper", "received_avp", "$avp(rcv)")
modparam("registrar", "received_avp", "$avp(rcv)")
route {
    if ($rm == "REGISTER") {
        if (nat_uac_test("private-contact")) fix_nated_register();
        save("location");
        exit;
    }
    if (!lookup("location")) { sl_send_reply(404, "Not Found"); exit; }
    t_relay();
}
"#,
        )
    });
    let (p, caller) = (phone(), phone());
    p.send(
        &server,
        &register(
            &server,
            &p,
            "nora",
            "nat-reg",
            1,
            "<sip:nora@192.168.1.10:5060>",
            "",
        ),
    );
    let ok = p.recv("SIP/2.0 ", &server);
    assert!(
        header(&ok, "Contact")
            .is_some_and(|c| c.ends_with(&format!(";received=\"sip:127.0.0.1:{}\"", p.port))),
        "{ok}"
    );
    caller.send(&server, &invite(&server, &caller, "nora", "nat-call"));
    let inv = p.recv("INVITE ", &server);
    assert!(
        inv.starts_with("INVITE sip:nora@192.168.1.10:5060 SIP/2.0"),
        "{inv}"
    );
}

// nathelper's keepalives: every natping_interval (1 s here) a NATed contact (registered with
// the NAT flag, ping_nated_only) gets four zero bytes at the address it registered from, or
// an OPTIONS when it also has sipping_bflag; a contact without the NAT flag gets nothing.
#[test]
fn natted_contacts_get_keepalive_pings() {
    let server = start_on(|port, fifo| {
        with_modules(
            port,
            fifo,
            r#"modparam("usrloc", "nat_bflag", "NAT")
modparam("nathelper", "natping_interval", 1)
modparam("nathelper", "ping_nated_only", 1)
modparam("nathelper", "received_avp", "$avp(rcv)")
modparam("nathelper", "sipping_bflag", "SIPPING")
modparam("nathelper", "sipping_from", "sip:pinger@127.0.0.1")
modparam("nathelper", "max_pings_lost", 3)
modparam("registrar", "received_avp", "$avp(rcv)")
route {
    if (nat_uac_test("private-contact")) {
        fix_nated_register();
        setbflag("NAT");
        if ($hdr(X-Sipping) != NULL) setbflag("SIPPING");
    }
    save("location");
}
"#,
        )
    });
    let (natted, sipping, public) = (phone(), phone(), phone());
    for (p, user, contact, extra) in [
        (&natted, "olga", "<sip:olga@10.1.1.1:5060>".to_owned(), ""),
        (
            &sipping,
            "pia",
            "<sip:pia@10.1.1.2:5060>".to_owned(),
            "X-Sipping: 1\r\n",
        ),
        (
            &public,
            "quin",
            format!("<sip:quin@127.0.0.1:{}>", public.port),
            "",
        ),
    ] {
        p.send(
            &server,
            &register(&server, p, user, user, 1, &contact, extra),
        );
        assert!(p.recv("SIP/2.0 ", &server).starts_with("SIP/2.0 200 OK"));
    }
    // Four zero bytes for the NATed one.
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut buf = [0u8; 2048];
    let mut got = None;
    while Instant::now() < deadline && got.is_none() {
        if let Ok((n, _)) = natted.sock.recv_from(&mut buf) {
            got = Some(buf[..n].to_vec());
        }
    }
    assert_eq!(got, Some(vec![0, 0, 0, 0]), "{}", server.log());
    // An OPTIONS for the one with sipping_bflag.
    let ping = sipping.recv("OPTIONS ", &server);
    assert!(
        ping.starts_with("OPTIONS sip:pia@10.1.1.2:5060 SIP/2.0"),
        "{ping}"
    );
    assert_eq!(
        header(&ping, "From").map(|f| f.starts_with("<sip:pinger@127.0.0.1>;tag=")),
        Some(true)
    );
    // What rsips does not do is said at start.
    assert!(
        server.log().contains(
            "nathelper: max_pings_lost is not supported by rsips yet: contacts that stop answering pings are not removed"
        ),
        "{}",
        server.log()
    );
    // Nothing for the contact registered without the NAT flag.
    let deadline = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < deadline {
        if let Ok((n, _)) = public.sock.recv_from(&mut buf) {
            panic!("a ping to the public contact: {:?}", &buf[..n]);
        }
    }
}

// A phone registered through an edge proxy (RFC 3327 Path, save() with path-lazy): a call to
// it goes to the edge, with the Path as the first Route header and the phone's Contact as
// the R-URI; the 200 of the registration names the Path back.
#[test]
fn a_call_to_a_phone_registered_through_an_edge_goes_via_the_edge() {
    let server = start_on(|port, fifo| {
        with_modules(
            port,
            fifo,
            r#"route {
    if ($rm == "REGISTER") { save("location", "path-lazy"); exit; }
    if (!lookup("location")) { sl_send_reply(404, "Not Found"); exit; }
    record_route();
    t_relay();
}
loadmodule "rr.so"
"#,
        )
    });
    let (edge, caller) = (phone(), phone());
    let path = format!("<sip:127.0.0.1:{};lr>", edge.port);
    edge.send(
        &server,
        &register(
            &server,
            &edge,
            "rita",
            "path-reg",
            1,
            "<sip:rita@192.168.7.7:5060>",
            &format!("Path: {path}\r\nSupported: path\r\n"),
        ),
    );
    let ok = edge.recv("SIP/2.0 ", &server);
    assert_eq!(header(&ok, "Path"), Some(path.as_str()), "{ok}");
    caller.send(&server, &invite(&server, &caller, "rita", "path-call"));
    let inv = edge.recv("INVITE ", &server);
    assert!(
        inv.starts_with("INVITE sip:rita@192.168.7.7:5060 SIP/2.0"),
        "{inv}"
    );
    let routes: Vec<&str> = inv
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("route:"))
        .collect();
    assert_eq!(routes, [format!("Route: {path}")], "{inv}");
}

#[path = "../../../crates/db/tests/my_server/mod.rs"]
mod my_server;
#[path = "../../../crates/db/tests/ports/mod.rs"]
mod ports;

// usrloc in SQL write-through on a real MariaDB: a registration lands in the location table at
// once, survives a restart of rsips (the next one loads it and calls reach the phone), and an
// unregistration removes the row.
#[test]
fn registrations_survive_a_restart_in_sql_write_through() {
    let my = my_server::MyServer::start("usrloc", ports::free_port());
    my.sql(
        "USE opensips;\n\
         CREATE TABLE version (table_name CHAR(32) NOT NULL, table_version INT UNSIGNED DEFAULT 0 NOT NULL, \
           CONSTRAINT t_name_idx UNIQUE (table_name));\n\
         INSERT INTO version VALUES ('location', 1013);\n\
         CREATE TABLE location (contact_id BIGINT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, \
           username CHAR(64) DEFAULT '' NOT NULL, domain CHAR(64) DEFAULT NULL, contact TEXT NOT NULL, \
           received CHAR(255) DEFAULT NULL, path CHAR(255) DEFAULT NULL, expires INT(10) UNSIGNED NOT NULL, \
           q FLOAT(10,2) DEFAULT 1.0 NOT NULL, callid CHAR(255) DEFAULT 'Default-Call-ID' NOT NULL, \
           cseq INT(11) DEFAULT 13 NOT NULL, last_modified DATETIME DEFAULT '1900-01-01 00:00:01' NOT NULL, \
           flags INT(11) DEFAULT 0 NOT NULL, cflags CHAR(255) DEFAULT NULL, user_agent CHAR(255) DEFAULT '' NOT NULL, \
           socket CHAR(64) DEFAULT NULL, methods INT(11) DEFAULT NULL, sip_instance CHAR(255) DEFAULT NULL, \
           kv_store TEXT(512) DEFAULT NULL, attr CHAR(255) DEFAULT NULL) ENGINE=InnoDB;",
    );
    let url = my.url();
    let cfg = move |port: u16, fifo: &str| {
        with_modules(
            port,
            fifo,
            &format!(
                r#"loadmodule "db_mysql.so"
loadmodule "sipmsgops.so"
modparam("usrloc", "working_mode_preset", "single-instance-sql-write-through")
modparam("usrloc", "db_url", "{url}")
route {{
    if (is_method("REGISTER")) {{
        if (!save("location")) sl_reply_error();
        exit;
    }}
    if (!lookup("location")) {{ sl_send_reply(404, "Not Found"); exit; }}
    t_relay();
}}
"#
            ),
        )
    };
    let rows = |my: &my_server::MyServer| {
        my.sql("SELECT username, domain, contact, q FROM opensips.location")
    };
    let wait_rows = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = rows(&my);
            if now == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "location table: {now:?}, want {want:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let alice = phone();
    let contact = format!("<sip:alice@127.0.0.1:{}>;q=0.5", alice.port);
    {
        let server = start_on(&cfg);
        alice.send(
            &server,
            &register(
                &server,
                &alice,
                "alice",
                "reg-sql",
                1,
                &contact,
                "Expires: 300\r\n",
            ),
        );
        let ok = alice.recv("SIP/2.0 ", &server);
        assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
        wait_rows(&format!(
            "alice\t127.0.0.1\tsip:alice@127.0.0.1:{}\t0.50\n",
            alice.port
        ));
    }
    // A new rsips on the same table: alice is still registered, calls reach her.
    let server = start_on(&cfg);
    assert!(
        server
            .log()
            .contains("1 contacts loaded from table location"),
        "{}",
        server.log()
    );
    let caller = phone();
    caller.send(
        &server,
        &invite(&server, &caller, "alice", "call-after-restart"),
    );
    let got = alice.recv("INVITE ", &server);
    assert!(got.contains("Call-ID: call-after-restart"), "{got}");
    // Unregistering removes the row.
    alice.send(
        &server,
        &register(
            &server,
            &alice,
            "alice",
            "reg-sql",
            2,
            &contact,
            "Expires: 0\r\n",
        ),
    );
    let ok = alice.recv("SIP/2.0 200", &server);
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    wait_rows("");
}
