//! Media through a real RTPProxy-protocol daemon: Debian's rtpengine, which speaks RTPProxy's
//! UDP control protocol on `--listen-udp` (Debian has no rtpproxy package). The stock
//! residential script's calls: `rtpproxy_offer("ro")` on the INVITE, `rtpproxy_answer("ro")`
//! on the 200, `rtpproxy_unforce()` on the BYE; RTP really flows through the relay; a set
//! whose first node is dead moves the call to the live one and MI shows it out; with no node
//! left the script's own error reply, and the server keeps serving.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

fn rtpengine(dir: &Path, control: u16) -> common::Kill {
    common::rtpengine(
        dir,
        &format!("--listen-udp=127.0.0.1:{control}"),
        (33000, 33999),
        (b"probe V", control),
    )
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}

/// The o= address of a message's SDP.
fn sdp_origin(msg: &str) -> String {
    let body = msg.split("\r\n\r\n").nth(1).unwrap_or("");
    body.lines()
        .find_map(|l| l.strip_prefix("o="))
        .and_then(|o| o.trim().rsplit(' ').next())
        .unwrap_or("")
        .to_owned()
}

fn invite(port: u16, cp: u16, call_id: &str, branch: &str, body: &str) -> String {
    format!(
        "INVITE sip:callee@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cp};branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=caller\r\nTo: <sip:callee@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:{cp}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One RTP packet (version 2, PCMU) with a payload to recognise.
fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Sends RTP from `from` to `to` until `at` receives the payload (the relay may need a packet
/// from each side before it forwards).
fn media_flows(from: &UdpSocket, to: u16, at: &UdpSocket, other: &UdpSocket, other_to: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 2048];
    let mut seq = 1u16;
    while Instant::now() < deadline {
        from.send_to(&rtp(seq, b"hello-callee"), ("127.0.0.1", to))
            .unwrap();
        other
            .send_to(&rtp(seq, b"hello-caller"), ("127.0.0.1", other_to))
            .unwrap();
        seq += 1;
        if let Ok(n) = at.recv(&mut buf)
            && buf[..n].ends_with(b"hello-callee")
        {
            return;
        }
    }
    panic!("no RTP came through the relay");
}

#[test]
fn calls_get_their_media_through_an_rtpproxy() {
    let [port, control, dead] = common::free_ports();
    let dir = std::env::temp_dir().join(format!("rsips-rtpp-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sockets = common::udp_sockets::<4>();
    let [caller, callee, caller_rtp, callee_rtp] = &sockets;
    let p = |s: &UdpSocket| s.local_addr().unwrap().port();
    let (cp, ep) = (p(caller), p(callee));
    // Set 1 has a dead node of weight 1 and the live one of weight 1: a Call-ID whose byte sum
    // is even lands on the dead one first.
    std::fs::write(
        dir.join("rsips.cfg"),
        format!(
            r#"socket=udp:127.0.0.1:{port}
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "{fifo}")
loadmodule "rtpproxy.so"
modparam("rtpproxy", "rtpproxy_sock", "udp:localhost:{control}")
modparam("rtpproxy", "rtpproxy_sock", "1 == udp:127.0.0.1:{dead} udp:127.0.0.1:{control}")
modparam("rtpproxy", "rtpproxy_timeout", "0.3")
modparam("rtpproxy", "rtpproxy_retr", 2)
route {{
    if (is_method("INVITE")) {{
        $var(set) = 0;
        if ($hdr(X-Set) == "1") $var(set) = 1;
        if (!rtpproxy_offer("ro", , $var(set), $var(node), $var(media))) {{
            sl_send_reply(503, "No media relay");
            exit;
        }}
        xlog("L_NOTICE", "offer via $var(node) to $var(media)\n");
        t_on_reply("MEDIA");
    }}
    if (is_method("BYE")) rtpproxy_unforce();
    $du = "sip:127.0.0.1:{ep}";
    t_relay();
}}
onreply_route[MEDIA] {{
    if ($rs == 200) rtpproxy_answer("ro");
}}
"#,
            fifo = dir.join("fifo").display()
        ),
    )
    .unwrap();
    let mut engine = rtpengine(&dir, control);
    let mut server =
        common::spawn_rsips(&dir, "rsips.cfg", |log| log.contains("listening on udp:"));
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();

    // The offer: the callee sees the relay's address (c= and, with o, o=) and port, and the
    // mark.
    let offer = sdp(p(caller_rtp));
    caller
        .send_to(
            invite(port, cp, "media-1", "z9hG4bK-r1", &offer).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let got = common::recv_starting(callee, "INVITE ");
    let ((c, to_callee), origin) = (common::sdp_media(&got), sdp_origin(&got));
    assert_eq!(
        (origin.as_str(), c.as_str()),
        ("127.0.0.1", "127.0.0.1"),
        "{got}"
    );
    assert!((33000..=33999).contains(&to_callee), "{got}");
    assert!(got.contains("\r\na=nortpproxy:yes\r\n"), "{got}");
    // The answer: the caller sees another relay port.
    let answer = sdp(p(callee_rtp));
    callee
        .send_to(
            common::sdp_reply(&got, "200 OK", &answer).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let ok = common::recv_starting(caller, "SIP/2.0 200");
    let ((c, to_caller), origin) = (common::sdp_media(&ok), sdp_origin(&ok));
    assert_eq!(
        (origin.as_str(), c.as_str()),
        ("127.0.0.1", "127.0.0.1"),
        "{ok}"
    );
    assert!(
        (33000..=33999).contains(&to_caller) && to_caller != to_callee,
        "{ok}"
    );
    // RTP from the caller to the port the 200 gave reaches the callee's media socket.
    media_flows(caller_rtp, to_caller, callee_rtp, callee_rtp, to_callee);
    assert!(
        log().contains(&format!(
            "offer via udp:localhost:{control} to 127.0.0.1:{to_callee}"
        )),
        "{}",
        log()
    );
    // An SDP that already went through a relay is refused (no `f` flag).
    let marked = format!("{offer}a=nortpproxy:yes\r\n");
    caller
        .send_to(
            invite(port, cp, "media-2", "z9hG4bK-r2", &marked).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let refused = common::recv_starting(caller, "SIP/2.0 5");
    assert!(
        refused.starts_with("SIP/2.0 503 No media relay"),
        "{refused}"
    );

    // The BYE ends the session at the relay.
    let bye = format!(
        "BYE sip:callee@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-r3\r\n\
         Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=caller\r\nTo: <sip:callee@127.0.0.1>;tag=callee\r\n\
         Call-ID: media-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    caller.send_to(bye.as_bytes(), ("127.0.0.1", port)).unwrap();
    let got = common::recv_starting(callee, "BYE ");
    callee
        .send_to(
            common::sdp_reply(&got, "200 OK", "").as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    common::recv_starting(caller, "SIP/2.0 200");
    let elog = || std::fs::read_to_string(dir.join("rtpengine.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !elog().contains(" D media-1 caller callee") {
        assert!(
            Instant::now() < deadline,
            "no delete at the relay:\n{}",
            elog()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Set 1: "media-3" has an even byte sum, so the dead node is picked first; it does not
    // answer the handshake, is taken out and the live node takes the call.
    assert_eq!("media-3".bytes().map(u32::from).sum::<u32>() % 2, 0);
    let in_set = invite(port, cp, "media-3", "z9hG4bK-r4", &sdp(p(caller_rtp)))
        .replace("Max-Forwards: 70\r\n", "Max-Forwards: 70\r\nX-Set: 1\r\n");
    caller
        .send_to(in_set.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let got = common::recv_starting(callee, "INVITE ");
    assert!(
        (33000..=33999).contains(&common::sdp_media(&got).1),
        "{got}"
    );
    assert!(
        log().contains(&format!("offer via udp:127.0.0.1:{control} to 127.0.0.1:")),
        "{}",
        log()
    );
    let (ok, out) = common::opensips_cli(&dir.join("fifo"), &["rtpproxy:show"]);
    assert!(ok, "{out}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    let set1 = shown
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Set"] == 1)
        .unwrap();
    assert_eq!(set1["Nodes"][0]["url"], format!("udp:127.0.0.1:{dead}"));
    assert_eq!(set1["Nodes"][0]["disabled"], 1, "{out}");
    assert_eq!(set1["Nodes"][1]["disabled"], 0, "{out}");
    let (ok, out) = common::opensips_cli(
        &dir.join("fifo"),
        &["rtpproxy:enable", "udp:127.0.0.1:1", "1"],
    );
    assert!(!ok && out.contains("RTP proxy not found"), "{out}");

    // No relay left: the script's reply, and the server keeps serving.
    engine.terminate(elog);
    caller
        .send_to(
            invite(port, cp, "media-5", "z9hG4bK-r5", &sdp(p(caller_rtp))).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let refused = common::recv_starting(caller, "SIP/2.0 5");
    assert!(
        refused.starts_with("SIP/2.0 503 No media relay"),
        "{refused}"
    );
    let options = format!(
        "OPTIONS sip:callee@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-r6\r\n\
         Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=caller\r\nTo: <sip:callee@127.0.0.1>\r\n\
         Call-ID: media-6\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    caller
        .send_to(options.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    common::recv_starting(callee, "OPTIONS ");
    server.terminate(log);
}

/// A scripted RTPProxy that has every capability: answers the handshake, records each
/// command it gets, and answers `U`/`L` with a fixed address and a port per stream.
fn scripted_rtpproxy(
    sock: UdpSocket,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    std::thread::JoinHandle<()>,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut port = 40000;
        while Instant::now() < deadline {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let (cookie, cmd) = text.split_once(' ').unwrap();
            if cmd == "quit" {
                return;
            }
            log.lock().unwrap().push(cmd.to_owned());
            let answer = match cmd.chars().next().unwrap() {
                'V' if cmd == "V" => "20040107".to_owned(),
                'V' => "1".to_owned(),
                'U' | 'L' => {
                    port += 2;
                    format!("{port} 198.51.100.7")
                }
                'Q' => "60 10 20 30 4".to_owned(),
                _ => "0".to_owned(),
            };
            sock.send_to(format!("{cookie} {answer}\n").as_bytes(), from)
                .unwrap();
        }
    });
    (seen, handle)
}

#[test]
fn commands_follow_the_rtpproxy_protocol() {
    let [port] = common::free_ports();
    let dir = std::env::temp_dir().join(format!("rsips-rtpp2-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let proxy = UdpSocket::bind("127.0.0.1:0").unwrap();
    let control = proxy.local_addr().unwrap().port();
    let (seen, peer) = scripted_rtpproxy(proxy);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    caller
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let cp = caller.local_addr().unwrap().port();
    // The offer goes into a variable (body_var), not the message; the prompt, statistics and
    // recording functions run on the same call.
    std::fs::write(
        dir.join("rsips.cfg"),
        format!(
            r#"socket=udp:127.0.0.1:{port}
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "rtpproxy.so"
modparam("rtpproxy", "rtpproxy_sock", "udp:127.0.0.1:{control}|203.0.113.1")
modparam("rtpproxy", "nortpproxy_str", "a=relayed-by:rsips")
route {{
    $var(sdp) = $rb;
    if (!rtpproxy_offer("rcz20", , , , $var(ret), $var(sdp))) {{
        sl_send_reply(500, "offer failed");
        exit;
    }}
    rtpproxy_stats($var(up), $var(down), $var(sent), $var(fail));
    rtpproxy_start_recording();
    rtpproxy_stream2uac("welcome", 2);
    rtpproxy_stop_stream2uac();
    rtpproxy_unforce();
    xlog("L_NOTICE", "ret=$var(ret) stats=$var(up)/$var(down)/$var(sent)/$var(fail) body-unchanged=$(rb{{s.len}})\n");
    append_to_reply("X-Sdp: $(var(sdp){{s.encode.hexa}})\r\n");
    sl_send_reply(200, "OK");
}}
"#
        ),
    )
    .unwrap();
    let mut server =
        common::spawn_rsips(&dir, "rsips.cfg", |log| log.contains("listening on udp:"));
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    let body = "v=0\r\no=- 1 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0 8\r\nm=video 0 RTP/AVP 31\r\nm=video 4002 RTP/AVP 96\r\n";
    caller
        .send_to(
            invite(port, cp, "proto-1", "z9hG4bK-p1", body).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let ok = common::recv_starting(&caller, "SIP/2.0 200");
    let hex = common::header(&ok, "X-Sdp")[0];
    let sdp = String::from_utf8(
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect(),
    )
    .unwrap();
    // The advertised address of the node wins over the one it answers; the session c= is
    // rewritten once; the port-0 stream is left; the mark is the configured one.
    assert_eq!(
        sdp,
        "v=0\r\no=- 1 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n\
         m=audio 40002 RTP/AVP 0 8\r\nm=video 0 RTP/AVP 31\r\nm=video 40004 RTP/AVP 96\r\n\
         a=relayed-by:rsips\r\n"
    );
    assert!(
        log().contains(&format!(
            "ret=203.0.113.1:40004 stats=10/20/30/4 body-unchanged={}",
            body.len()
        )),
        "{}",
        log()
    );
    caller.send_to(b"x quit", ("127.0.0.1", control)).unwrap();
    peer.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    let commands: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .filter(|c| !c.starts_with('V'))
        .collect();
    assert_eq!(
        commands,
        vec![
            // r: the SDP's address; c: the payload list; z: repacketize; stream numbers
            // count the port-0 stream.
            "UZ20c0,8 proto-1 192.0.2.50 4000 caller;1",
            "UZ20c96 proto-1 192.0.2.50 4002 caller;3",
            "Q proto-1 caller;1",
            "R proto-1 caller",
            "P2 proto-1 welcome session caller;1",
            "S proto-1 caller;1",
            "D proto-1 caller",
        ]
    );
    assert_eq!(seen.first().map(String::as_str), Some("V"));
    assert!(seen.contains(&"VF 20050322".to_owned()), "{seen:?}");
    server.terminate(log);
}

#[test]
fn nodes_come_from_the_table_and_reload() {
    let [port] = common::free_ports();
    let dir = std::env::temp_dir().join(format!("rsips-rtpp3-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    let (first, second) = (
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    );
    let (p1, p2) = (
        first.local_addr().unwrap().port(),
        second.local_addr().unwrap().port(),
    );
    let (seen1, peer1) = scripted_rtpproxy(first);
    let (seen2, peer2) = scripted_rtpproxy(second);
    let table = |p: u16| {
        format!("id(int,auto) rtpproxy_sock(string) set_id(int)\n1:udp\\:127.0.0.1\\:{p}:0\n")
    };
    std::fs::write(db.join("rtpproxy_sockets"), table(p1)).unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        format!(
            r#"socket=udp:127.0.0.1:{port}
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "db_text.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "{fifo}")
loadmodule "rtpproxy.so"
modparam("rtpproxy", "db_url", "text://{db}")
modparam("rtpproxy", "rtpproxy_sock", "udp:127.0.0.1:9")
route {{
    if (rtpproxy_offer("r", , , $var(node))) sl_send_reply(200, "via $var(node)");
    else sl_send_reply(500, "no relay");
}}
"#,
            fifo = dir.join("fifo").display(),
            db = db.display()
        ),
    )
    .unwrap();
    let mut server =
        common::spawn_rsips(&dir, "rsips.cfg", |log| log.contains("listening on udp:"));
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    caller
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let cp = caller.local_addr().unwrap().port();
    let call = |n: u32| {
        caller
            .send_to(
                invite(
                    port,
                    cp,
                    &format!("db-{n}"),
                    &format!("z9hG4bK-d{n}"),
                    &sdp(4000),
                )
                .as_bytes(),
                ("127.0.0.1", port),
            )
            .unwrap();
        common::recv_starting(&caller, "SIP/2.0 ")
    };
    // With db_url the table's nodes are used, not rtpproxy_sock's.
    let ok = call(1);
    assert!(
        ok.starts_with(&format!("SIP/2.0 200 via udp:127.0.0.1:{p1}")),
        "{ok}\n{}",
        log()
    );
    // The table changes (db_text keeps tables in memory: it reads the file again first);
    // MI reload takes the new node.
    std::fs::write(db.join("rtpproxy_sockets"), table(p2)).unwrap();
    let (ok_mi, out) = common::opensips_cli(&dir.join("fifo"), &["dbt_reload"]);
    assert!(ok_mi, "{out}");
    let (ok_mi, out) = common::opensips_cli(&dir.join("fifo"), &["rtpproxy:reload"]);
    assert!(ok_mi && out.contains("OK"), "{out}");
    let ok = call(2);
    assert!(
        ok.starts_with(&format!("SIP/2.0 200 via udp:127.0.0.1:{p2}")),
        "{ok}\n{}",
        log()
    );
    for (p, handle) in [(p1, peer1), (p2, peer2)] {
        caller.send_to(b"x quit", ("127.0.0.1", p)).unwrap();
        handle.join().unwrap();
    }
    let offers = |seen: &std::sync::Arc<std::sync::Mutex<Vec<String>>>| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with('U'))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(offers(&seen1), vec!["Uc0 db-1 127.0.0.1 4000 caller;1"]);
    assert_eq!(offers(&seen2), vec!["Uc0 db-2 127.0.0.1 4000 caller;1"]);
    server.terminate(log);
}

#[test]
fn engage_follows_the_dialog() {
    let [port, control] = common::free_ports();
    let dir = std::env::temp_dir().join(format!("rsips-rtpp4-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sockets = common::udp_sockets::<2>();
    let [caller, callee] = &sockets;
    let p = |s: &UdpSocket| s.local_addr().unwrap().port();
    let (cp, ep) = (p(caller), p(callee));
    std::fs::write(
        dir.join("rsips.cfg"),
        format!(
            r#"socket=udp:127.0.0.1:{port}
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
loadmodule "rtpproxy.so"
modparam("rtpproxy", "rtpproxy_sock", "udp:127.0.0.1:{control}")
route {{
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK") && t_check_trans()) t_relay();
        exit;
    }}
    if (is_method("INVITE")) {{
        record_route();
        if (!rtpproxy_engage("r")) {{
            sl_send_reply(503, "No media relay");
            exit;
        }}
    }}
    $du = "sip:127.0.0.1:{ep}";
    t_relay();
}}
"#
        ),
    )
    .unwrap();
    let _engine = rtpengine(&dir, control);
    let mut server =
        common::spawn_rsips(&dir, "rsips.cfg", |log| log.contains("listening on udp:"));
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    let elog = || std::fs::read_to_string(dir.join("rtpengine.log")).unwrap_or_default();
    let relayed = |port: u16| (33000..=33999).contains(&port);
    // An in-dialog request from the caller, through our Record-Route.
    let in_dialog = |method: &str, call: &str, rr: &str, cseq: u32, body: &str| {
        let ct = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_owned()
        };
        format!(
            "{method} sip:callee@127.0.0.1:{ep} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-{call}-{cseq}{method}\r\n\
             Route: {rr}\r\nMax-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=caller\r\n\
             To: <sip:callee@127.0.0.1>;tag=callee\r\nCall-ID: {call}\r\nCSeq: {cseq} {method}\r\n\
             {ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !elog().contains(what) {
            assert!(Instant::now() < deadline, "no {what:?}:\n{}", elog());
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // The INVITE offers, the 200 answers, the BYE ends the dialog and the session.
    caller
        .send_to(
            invite(port, cp, "eng-1", "z9hG4bK-e1", &sdp(4000)).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let got = common::recv_starting(callee, "INVITE ");
    assert!(relayed(common::sdp_media(&got).1), "{got}\n{}", log());
    callee
        .send_to(
            common::sdp_reply(&got, "200 OK", &sdp(5000)).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let ok = common::recv_starting(caller, "SIP/2.0 200");
    assert!(
        relayed(common::sdp_media(&ok).1) && common::sdp_media(&ok).1 != common::sdp_media(&got).1,
        "{ok}"
    );
    let rr = common::header(&ok, "Record-Route")[0].to_owned();
    caller
        .send_to(
            in_dialog("ACK", "eng-1", &rr, 1, "").as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    common::recv_starting(callee, "ACK ");
    // A re-INVITE offers again; its 200 answers.
    caller
        .send_to(
            in_dialog("INVITE", "eng-1", &rr, 2, &sdp(4010)).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let re = common::recv_starting(callee, "INVITE ");
    assert!(relayed(common::sdp_media(&re).1), "{re}");
    callee
        .send_to(
            common::sdp_reply(&re, "200 OK", &sdp(5010)).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let ok = common::recv_starting(caller, "SIP/2.0 200");
    assert!(relayed(common::sdp_media(&ok).1), "{ok}");
    caller
        .send_to(
            in_dialog("ACK", "eng-1", &rr, 2, "").as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    common::recv_starting(callee, "ACK ");
    caller
        .send_to(
            in_dialog("BYE", "eng-1", &rr, 3, "").as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let bye = common::recv_starting(callee, "BYE ");
    callee
        .send_to(
            common::sdp_reply(&bye, "200 OK", "").as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    common::recv_starting(caller, "SIP/2.0 200");
    wait_for(" D eng-1 caller callee");

    // Late negotiation: no SDP in the INVITE; the 200 offers and the ACK answers.
    caller
        .send_to(
            invite(port, cp, "eng-2", "z9hG4bK-e2", "").as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let got = common::recv_starting(callee, "INVITE ");
    assert!(got.ends_with("\r\n\r\n"), "no SDP to relay: {got}");
    callee
        .send_to(
            common::sdp_reply(&got, "200 OK", &sdp(5002)).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let ok = common::recv_starting(caller, "SIP/2.0 200");
    assert!(
        relayed(common::sdp_media(&ok).1),
        "the 2xx's offer relayed: {ok}"
    );
    let rr = common::header(&ok, "Record-Route")[0].to_owned();
    caller
        .send_to(
            in_dialog("ACK", "eng-2", &rr, 1, &sdp(4002)).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let ack = common::recv_starting(callee, "ACK ");
    assert!(
        relayed(common::sdp_media(&ack).1),
        "the ACK's answer relayed: {ack}"
    );

    // A call that fails ends its session too.
    caller
        .send_to(
            invite(port, cp, "eng-3", "z9hG4bK-e3", &sdp(4004)).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let got = common::recv_starting(callee, "INVITE ");
    callee
        .send_to(
            common::sdp_reply(&got, "486 Busy Here", "").as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    common::recv_starting(caller, "SIP/2.0 486");
    wait_for(" D eng-3 caller");
    server.terminate(log);
}

/// rtp_relay's `rtp_relay_engage("rtpproxy")` engages the dialog as `rtpproxy_engage` does,
/// with the flags provisioned in `$rtp_relay`: the RTPProxy gets the same offer either way
/// (and a different one without the flags). The rtpengine engine, not available through
/// rtp_relay yet, is refused when the script loads.
#[test]
fn rtp_relay_engage_is_rtpproxy_engage_with_the_provisioned_flags() {
    let [port] = common::free_ports();
    let dir = std::env::temp_dir().join(format!("rsips-rtprelay-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let proxy = UdpSocket::bind("127.0.0.1:0").unwrap();
    let control = proxy.local_addr().unwrap().port();
    let (seen, peer) = scripted_rtpproxy(proxy);
    let sockets = common::udp_sockets::<2>();
    let [caller, callee] = &sockets;
    let p = |s: &UdpSocket| s.local_addr().unwrap().port();
    let (cp, ep) = (p(caller), p(callee));
    let cfg = |engage: &str| {
        format!(
            r#"socket=udp:127.0.0.1:{port}
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "dialog.so"
loadmodule "rtpproxy.so"
loadmodule "rtp_relay.so"
modparam("rtpproxy", "rtpproxy_sock", "udp:127.0.0.1:{control}")
route {{
    if (is_method("INVITE")) {{
        if ($ci == "direct") {{
            rtpproxy_engage("ie");
        }} else if ($ci == "relay") {{
            $rtp_relay = "ie";
            {engage}
        }} else {{
            {engage}
        }}
    }}
    $du = "sip:127.0.0.1:{ep}";
    t_relay();
}}
"#
        )
    };
    // A literal engine rsips cannot drive through rtp_relay stops the start, with its reason.
    std::fs::write(
        dir.join("bad.cfg"),
        cfg(r#"rtp_relay_engage("rtpengine");"#),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rsips"))
        .args(["-c", "-f"])
        .arg(dir.join("bad.cfg"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("rtpengine engine is not available through rtp_relay"),
        "{text}"
    );

    std::fs::write(
        dir.join("rsips.cfg"),
        cfg(r#"rtp_relay_engage("rtpproxy");"#),
    )
    .unwrap();
    let mut server =
        common::spawn_rsips(&dir, "rsips.cfg", |log| log.contains("listening on udp:"));
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    for (n, call) in ["direct", "relay", "plain"].iter().enumerate() {
        caller
            .send_to(
                invite(port, cp, call, &format!("z9hG4bK-rr{n}"), &sdp(4000)).as_bytes(),
                ("127.0.0.1", port),
            )
            .unwrap();
        let got = common::recv_starting(callee, "INVITE ");
        assert_eq!(
            common::sdp_media(&got).1,
            40002 + 2 * n as u16,
            "{got}\n{}",
            log()
        );
    }
    // Each offer without its Call-ID: the engaged ones alike, the one without flags not.
    let offers: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.starts_with('U'))
        .map(|c| {
            let mut t: Vec<&str> = c.split(' ').collect();
            t.remove(1);
            t.join(" ")
        })
        .collect();
    assert_eq!(offers.len(), 3, "{offers:?}");
    assert_eq!(offers[0], offers[1], "{offers:?}");
    assert_ne!(offers[0], offers[2], "{offers:?}");
    let _ = peer;
    server.terminate(log);
}
