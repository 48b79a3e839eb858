//! Media through a real rtpengine daemon (Debian's `rtpengine-daemon`, userspace forwarding):
//! the INVITE's SDP goes out rewritten to the daemon's address and ports by
//! `rtpengine_offer`, the 200's by `rtpengine_answer`, the BYE ends the session with
//! `rtpengine_delete`; with the daemon gone calls get the script's error reply and the
//! server keeps serving.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;

fn rtpengine(dir: &Path, ng: u16) -> common::Kill {
    common::rtpengine(
        dir,
        &format!("--listen-ng=127.0.0.1:{ng}"),
        (31000, 31999),
        (b"t1 d7:command4:pinge", ng),
    )
}

fn sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}

/// A test's rsips port, rtpengine's ng port, the caller and callee sockets and the test dir.
struct Media {
    dir: std::path::PathBuf,
    port: u16,
    ng: u16,
    caller: std::net::UdpSocket,
    callee: std::net::UdpSocket,
}

impl Media {
    fn new(name: &str) -> Media {
        let [port, ng] = common::free_ports();
        let dir = std::env::temp_dir().join(format!("rsips-{name}-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let [callee, caller] = common::udp_sockets::<2>();
        Media {
            dir,
            port,
            ng,
            caller,
            callee,
        }
    }

    fn caller_port(&self) -> u16 {
        self.caller.local_addr().unwrap().port()
    }

    fn callee_port(&self) -> u16 {
        self.callee.local_addr().unwrap().port()
    }

    /// The config: rtpengine on the test's daemon (1 s, 1 try), then `routes`.
    fn write_config(&self, routes: &str) {
        let (port, ng) = (self.port, self.ng);
        std::fs::write(
            self.dir.join("rsips.cfg"),
            format!(
                "socket=udp:127.0.0.1:{port}\nstderror_enabled=yes\n\
                 loadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\nloadmodule \"tm.so\"\n\
                 loadmodule \"sipmsgops.so\"\nloadmodule \"rtpengine.so\"\n\
                 modparam(\"rtpengine\", \"rtpengine_sock\", \"udp:127.0.0.1:{ng}\")\n\
                 modparam(\"rtpengine\", \"rtpengine_tout\", 1)\n\
                 modparam(\"rtpengine\", \"rtpengine_retr\", 1)\n{routes}"
            ),
        )
        .unwrap();
    }

    /// The caller's INVITE with `offer`.
    fn invite(&self, call_id: &str, branch: &str, offer: &str) -> String {
        let (port, cp) = (self.port, self.caller_port());
        format!(
            "INVITE sip:callee@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cp};branch={branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=caller\r\nTo: <sip:callee@127.0.0.1>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:{cp}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
            offer.len()
        )
    }
}

#[test]
fn calls_get_their_media_through_rtpengine() {
    let m = Media::new("rtpe");
    let (port, ng, dir) = (m.port, m.ng, m.dir.clone());
    let (caller, callee) = (&m.caller, &m.callee);
    let (cp, ep) = (m.caller_port(), m.callee_port());
    m.write_config(&format!(
        r#"route {{
    if (is_method("INVITE")) {{
        if (!rtpengine_offer("replace-origin replace-session-connection")) {{
            sl_send_reply(503, "No media relay");
            exit;
        }}
        t_on_reply("MEDIA");
    }}
    if (is_method("BYE")) rtpengine_delete();
    $du = "sip:127.0.0.1:{ep}";
    t_relay();
}}
onreply_route[MEDIA] {{
    if ($rs == 200) rtpengine_answer("replace-origin replace-session-connection");
}}
"#
    ));
    let engine = rtpengine(&dir, ng);
    let _server = common::spawn_rsips(&dir, "rsips.cfg", |log| log.contains("listening on udp:"));
    let offer = sdp("192.0.2.50", 4000);
    let invite = m.invite("media-1", "z9hG4bK-m1", &offer);
    caller
        .send_to(invite.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let got = common::recv_starting(callee, "INVITE ");
    let (ip, out_port) = common::sdp_media(&got);
    assert_eq!(ip, "127.0.0.1", "{got}");
    assert!((31000..=31999).contains(&out_port), "{got}");
    let answer = sdp("192.0.2.60", 5000);
    callee
        .send_to(
            common::sdp_reply(&got, "200 OK", &answer).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    let ok = common::recv_starting(caller, "SIP/2.0 200");
    let (ip, back_port) = common::sdp_media(&ok);
    let rsips_log = std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    assert_eq!(ip, "127.0.0.1", "{ok}\n{rsips_log}");
    assert!(
        (31000..=31999).contains(&back_port) && back_port != out_port,
        "{ok}"
    );
    let bye = format!(
        "BYE sip:callee@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-m2\r\n\
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
    let log = std::fs::read_to_string(dir.join("rtpengine.log")).unwrap_or_default();
    assert!(
        log.contains("Received command 'offer'")
            && log.contains("Received command 'answer'")
            && log.contains("Received command 'delete'"),
        "{log}"
    );
    // The daemon goes away: the script's own answer, and the server keeps serving.
    drop(engine);
    let again = invite
        .replace("media-1", "media-2")
        .replace("z9hG4bK-m1", "z9hG4bK-m3");
    caller
        .send_to(again.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let refused = common::recv_starting(caller, "SIP/2.0 5");
    assert!(
        refused.starts_with("SIP/2.0 503 No media relay"),
        "{refused}"
    );
}

/// The media-control commands on a live call through the real daemon: each is sent as the
/// ng command OpenSIPS sends (whole-call ones without tags unless `directional`), the
/// function returns 1 when the daemon says ok and -1 (-2 for `play_dtmf`) when it refuses,
/// and the daemon's address lands in the `$sock` variable.
#[test]
fn media_control_commands_reach_the_daemon() {
    let m = Media::new("rtpe-ctl");
    let (port, ng, dir) = (m.port, m.ng, m.dir.clone());
    let (caller, callee) = (&m.caller, &m.callee);
    let (cp, ep) = (m.caller_port(), m.callee_port());
    m.write_config(&format!(
        r#"route {{
    if (is_method("INFO")) {{
        $var(op) = $hdr(X-Op);
        if ($var(op) == "block_media") $var(rc) = rtpengine_block_media(, $var(sock));
        else if ($var(op) == "unblock_media") $var(rc) = rtpengine_unblock_media("directional");
        else if ($var(op) == "block_dtmf") $var(rc) = rtpengine_block_dtmf();
        else if ($var(op) == "unblock_dtmf") $var(rc) = rtpengine_unblock_dtmf();
        else if ($var(op) == "start_recording") $var(rc) = rtpengine_start_recording();
        else if ($var(op) == "stop_recording") $var(rc) = rtpengine_stop_recording();
        else if ($var(op) == "play_media") $var(rc) = rtpengine_play_media("file=/nonexistent/rsips.wav", $var(ms));
        else if ($var(op) == "stop_media") $var(rc) = rtpengine_stop_media();
        else if ($var(op) == "play_dtmf") $var(rc) = rtpengine_play_dtmf("5");
        else if ($var(op) == "unknown_call") $var(rc) = rtpengine_block_media("call-id=no-such-call");
        append_to_reply("X-Sock: $var(sock)\r\n");
        sl_send_reply(200, "rc $var(rc)");
        exit;
    }}
    if (is_method("INVITE")) {{
        rtpengine_offer();
        t_on_reply("MEDIA");
    }}
    $du = "sip:127.0.0.1:{ep}";
    t_relay();
}}
onreply_route[MEDIA] {{
    if ($rs == 200) rtpengine_answer();
}}
"#
    ));
    let _engine = rtpengine(&dir, ng);
    let _server = common::spawn_rsips(&dir, "rsips.cfg", |log| log.contains("listening on udp:"));
    let offer = sdp("127.0.0.1", cp + 1);
    let invite = m.invite("media-ctl", "z9hG4bK-c1", &offer);
    caller
        .send_to(invite.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let got = common::recv_starting(callee, "INVITE ");
    let answer = sdp("127.0.0.1", ep + 1);
    callee
        .send_to(
            common::sdp_reply(&got, "200 OK", &answer).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    common::recv_starting(caller, "SIP/2.0 200");
    let mut n = 0;
    let mut op = |name: &str| {
        n += 1;
        let info = format!(
            "INFO sip:callee@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-i{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=caller\r\nTo: <sip:callee@127.0.0.1>;tag=callee\r\n\
             Call-ID: media-ctl\r\nCSeq: {} INFO\r\nX-Op: {name}\r\nContent-Length: 0\r\n\r\n",
            n + 1
        );
        caller
            .send_to(info.as_bytes(), ("127.0.0.1", port))
            .unwrap();
        common::recv_starting(caller, "SIP/2.0 200")
    };
    let r = op("block_media");
    assert!(r.starts_with("SIP/2.0 200 rc 1\r\n"), "{r}");
    assert_eq!(
        common::header(&r, "X-Sock"),
        [format!("udp:127.0.0.1:{ng}")],
        "{r}"
    );
    for (name, want) in [
        ("unblock_media", "1"),
        ("block_dtmf", "1"),
        ("unblock_dtmf", "1"),
        ("start_recording", "1"),
        ("stop_recording", "1"),
        // No such file, nothing playing, an unknown call, no telephone-event codec in the
        // call's SDP: the daemon refuses and the script hears it.
        ("play_media", "-1"),
        ("stop_media", "-1"),
        ("unknown_call", "-1"),
        ("play_dtmf", "-2"),
    ] {
        let r = op(name);
        assert!(
            r.starts_with(&format!("SIP/2.0 200 rc {want}\r\n")),
            "{name}: {r}\n{}",
            std::fs::read_to_string(dir.join("rtpengine.log")).unwrap_or_default()
        );
    }
    let log = std::fs::read_to_string(dir.join("rtpengine.log")).unwrap_or_default();
    for cmd in [
        "block media",
        "unblock media",
        "block DTMF",
        "unblock DTMF",
        "start recording",
        "stop recording",
        "play media",
        "stop media",
        "play DTMF",
    ] {
        assert!(
            log.contains(&format!("Received command '{cmd}'")),
            "{cmd}: {log}"
        );
    }
}

/// The daemons come from a database (`db_url`, OpenSIPS' `rtpengine` table: socket, set_id)
/// instead of `rtpengine_sock`: set 1 is the table's row, and an offer through it reaches the
/// daemon. A table of the wrong version stops the start.
#[test]
fn daemons_from_the_rtpengine_table() {
    let m = Media::new("rtpe-db");
    let (port, ng, dir) = (m.port, m.ng, m.dir.clone());
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(
        db.join("rtpengine"),
        format!("id(int,auto) socket(string) set_id(int)\n1:udp\\:127.0.0.1\\:{ng}:1\n"),
    )
    .unwrap();
    std::fs::write(
        db.join("version"),
        "table_name(str) table_version(int)\nrtpengine:1\n",
    )
    .unwrap();
    let ep = m.callee_port();
    let cfg = format!(
        "socket=udp:127.0.0.1:{port}\nstderror_enabled=yes\n\
         loadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\nloadmodule \"tm.so\"\n\
         loadmodule \"sipmsgops.so\"\nloadmodule \"db_text.so\"\nloadmodule \"rtpengine.so\"\n\
         modparam(\"rtpengine\", \"db_url\", \"text://{}\")\n\
         modparam(\"rtpengine\", \"rtpengine_tout\", 1)\n\
         route {{\n    rtpengine_use_set(1);\n    \
         if (!rtpengine_offer(\"replace-origin\")) {{ sl_send_reply(503, \"No media relay\"); exit; }}\n    \
         $du = \"sip:127.0.0.1:{ep}\";\n    t_relay();\n}}\n",
        db.display()
    );
    std::fs::write(dir.join("rsips.cfg"), &cfg).unwrap();
    let _engine = rtpengine(&dir, ng);
    let server = common::spawn_rsips(&dir, "rsips.cfg", |log| log.contains("listening on udp:"));
    let invite = m.invite("media-db", "z9hG4bK-db1", &sdp("192.0.2.50", 4000));
    m.caller
        .send_to(invite.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let got = common::recv_starting(&m.callee, "INVITE ");
    let (ip, out_port) = common::sdp_media(&got);
    assert!(
        ip == "127.0.0.1" && (31000..=31999).contains(&out_port),
        "{got}"
    );
    drop(server);
    std::fs::write(
        db.join("version"),
        "table_name(str) table_version(int)\nrtpengine:7\n",
    )
    .unwrap();
    let err = common::run_to_exit(&dir, "rsips.cfg").1;
    assert!(
        err.contains("rtpengine") && err.contains("version"),
        "{err}"
    );
}
