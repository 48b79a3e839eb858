//! msilo end to end (the `silo` table in db_text): MESSAGEs to a user who is not registered
//! are stored, the sender is told (`from_address`/`offline_message`, to its Contact); when the
//! user registers, `m_dump()` sends them through tm (via `outbound_proxy`, back through the
//! script to the new contact), a text one with its arrival time in front, another type as it
//! was; answered 2xx, they are gone (a second registration gets nothing). A full inbox
//! (`max_messages`) refuses more, and a message whose Expires passed is removed by the timer.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{Peer, header, reply_to};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "db_text.so"
loadmodule "msilo.so"
modparam("msilo", "db_url", "text://DB")
modparam("msilo", "outbound_proxy", "sip:127.0.0.1:PORT")
modparam("msilo", "from_address", "sip:registrar@127.0.0.1")
modparam("msilo", "offline_message", "*** User $rU is offline!")
modparam("msilo", "max_messages", 3)
modparam("msilo", "check_time", 1)
modparam("msilo", "clean_period", 1)

route {
    if (is_method("REGISTER")) {
        save("location");
        m_dump();
        exit;
    }
    if (is_method("MESSAGE")) {
        if ($fU == "registrar") {
            t_relay();
            exit;
        }
        if (lookup("location")) {
            t_relay();
            exit;
        }
        if (m_store())
            sl_send_reply(202, "Accepted");
        else
            sl_send_reply(503, "Not Stored");
        exit;
    }
    if (t_check_trans())
        t_relay();
}
"#;

fn message(
    from: &Peer,
    port: u16,
    to: &str,
    n: u32,
    ctype: &str,
    body: &str,
    extra: &str,
) -> String {
    format!(
        "MESSAGE sip:{to}@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-ms-{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a{n}\r\nTo: <sip:{to}@127.0.0.1>\r\n\
         Call-ID: ms-{n}-{port}\r\nCSeq: 1 MESSAGE\r\nContact: <sip:alice@127.0.0.1:{p}>\r\n\
         {extra}Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
        p = from.port
    )
}

/// Sends a REGISTER: its reply, and the requests that came before it (m_dump's MESSAGEs may
/// overtake the REGISTER's 200).
fn register(phone: &Peer, port: u16, user: &str, n: u32) -> (String, Vec<String>) {
    phone.send(
        port,
        &format!(
            "REGISTER sip:127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-msreg-{user}-{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=r{n}\r\nTo: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: msreg-{user}-{port}\r\nCSeq: {n} REGISTER\r\n\
             Contact: <sip:{user}@127.0.0.1:{p}>;expires=300\r\nContent-Length: 0\r\n\r\n",
            p = phone.port
        ),
    );
    let mut early = Vec::new();
    loop {
        let m = phone.recv("REGISTER reply");
        if m.starts_with("SIP/2.0") {
            return (m, early);
        }
        early.push(m);
    }
}

/// The next request `peer` gets (replies and retransmissions skipped).
fn next_request(peer: &Peer, what: &str) -> String {
    loop {
        let m = peer.recv(what);
        if !m.starts_with("SIP/2.0") {
            return m;
        }
    }
}

/// The reply to a stored MESSAGE and the offline notice m_store sends meanwhile, whichever
/// comes first; the notice is answered.
fn stored(alice: &Peer, port: u16) -> (String, String) {
    let (a, b) = (
        alice.recv("a reply or the notice"),
        alice.recv("a reply or the notice"),
    );
    let (reply, note) = if a.starts_with("SIP/2.0") {
        (a, b)
    } else {
        (b, a)
    };
    alice.send(port, &reply_to(&note, "200 OK", "n", ""));
    (reply, note)
}

fn body(m: &str) -> &str {
    m.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn offline_messages_are_kept_and_delivered_on_registration() {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-msilo-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("db")).unwrap();
    std::fs::write(
        dir.join("db/version"),
        "table_name(str) table_version(int)\nsilo:6\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("db/silo"),
        "id(int,auto) src_addr(str) dst_addr(str) username(str) domain(str) inc_time(int) \
         exp_time(int) snd_time(int) ctype(str,null) body(str,null)\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("DB", dir.join("db").to_str().unwrap()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    let (alice, bob, carol) = (Peer::new(), Peer::new(), Peer::new());

    // Bob is offline: two messages are stored, the sender told each time.
    let before = now();
    for (n, (ctype, text)) in [
        ("text/plain", "hello bob"),
        ("application/json", "{\"a\":1}"),
    ]
    .into_iter()
    .enumerate()
    {
        alice.send(
            port,
            &message(&alice, port, "bob", n as u32, ctype, text, ""),
        );
        let (r, note) = stored(&alice, port);
        assert!(r.starts_with("SIP/2.0 202 Accepted"), "{r}\n{}", log());
        assert!(
            note.starts_with(&format!("MESSAGE sip:alice@127.0.0.1:{}", alice.port)),
            "{note}"
        );
        assert_eq!(body(&note), "*** User bob is offline!");
        assert!(
            header(&note, "From")[0].contains("sip:registrar@127.0.0.1"),
            "{note}"
        );
    }
    // A message to carol that expires in a second: the timer removes it.
    alice.send(
        port,
        &message(
            &alice,
            port,
            "carol",
            9,
            "text/plain",
            "soon gone",
            "Expires: 1\r\n",
        ),
    );
    assert!(stored(&alice, port).0.starts_with("SIP/2.0 202"));

    // Bob registers: both messages come, through the script, to his new contact.
    let (r, mut got) = register(&bob, port, "bob", 1);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    while got.len() < 2 {
        got.push(next_request(&bob, "a stored message"));
    }
    let (first, second) = (got[0].clone(), got[1].clone());
    for m in [&first, &second] {
        assert!(
            m.starts_with(&format!("MESSAGE sip:bob@127.0.0.1:{} ", bob.port)),
            "{m}"
        );
        assert!(header(m, "From")[0].contains("sip:alice@127.0.0.1"), "{m}");
        assert_eq!(header(m, "Contact"), ["<sip:alice@127.0.0.1>"], "{m}");
        assert_eq!(header(m, "Date").len(), 1, "{m}");
    }
    let (text, json) = if body(&first).ends_with("hello bob") {
        (&first, &second)
    } else {
        (&second, &first)
    };
    // The text one with its arrival time in front (C's ctime, UTC); the other as it was.
    let b = body(text);
    assert!(
        b.starts_with("[Offline message - ") && b.ends_with("] hello bob"),
        "{b}"
    );
    let stamp = &b["[Offline message - ".len()..b.len() - "] hello bob".len()];
    assert_eq!(stamp.len(), 24, "{stamp}");
    assert!(stamp.ends_with(&year(before)), "{stamp}");
    assert_eq!(body(json), "{\"a\":1}");
    assert_eq!(header(json, "Content-Type"), ["application/json"]);
    bob.send(port, &reply_to(&first, "200 OK", "b1", ""));
    bob.send(port, &reply_to(&second, "200 OK", "b2", ""));
    // Answered: gone from the silo; a second registration gets nothing.
    std::thread::sleep(Duration::from_millis(300));
    let (r, early) = register(&bob, port, "bob", 2);
    assert!(
        r.starts_with("SIP/2.0 200") && early.is_empty(),
        "{r} {early:?}"
    );
    assert_eq!(bob.quiet(Duration::from_millis(700)), None, "{}", log());

    // Carol's message expired meanwhile: she gets nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    while now() < before + 3 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1200));
    let (r, early) = register(&carol, port, "carol", 1);
    assert!(
        r.starts_with("SIP/2.0 200") && early.is_empty(),
        "{r} {early:?}"
    );
    assert_eq!(carol.quiet(Duration::from_millis(700)), None, "{}", log());

    // max_messages 3: dave's fourth message is refused.
    for n in 0..4u32 {
        alice.send(
            port,
            &message(&alice, port, "dave", 20 + n, "text/plain", "x", ""),
        );
        if n < 3 {
            assert!(stored(&alice, port).0.starts_with("SIP/2.0 202"));
        } else {
            let r = alice.recv("dave's reply");
            assert!(r.starts_with("SIP/2.0 503 Not Stored"), "{r}");
            assert!(
                log().contains("inbox of dave@127.0.0.1 is full"),
                "{}",
                log()
            );
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The year of a Unix time, as text (good for the years this test runs in).
fn year(t: i64) -> String {
    // Days from 1970 to each New Year, counted until past `t`.
    let mut y = 1970;
    let mut start = 0i64;
    loop {
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let next = start + if leap { 366 } else { 365 } * 86_400;
        if t < next {
            return y.to_string();
        }
        start = next;
        y += 1;
    }
}
