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

#[test]
fn calls_get_their_media_through_rtpengine() {
    let [port, ng] = common::free_ports();
    let dir = std::env::temp_dir().join(format!("rsips-rtpe-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let [callee, caller] = common::udp_sockets::<2>();
    let (cp, ep) = (
        caller.local_addr().unwrap().port(),
        callee.local_addr().unwrap().port(),
    );
    std::fs::write(
        dir.join("rsips.cfg"),
        format!(
            r#"socket=udp:127.0.0.1:{port}
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "sipmsgops.so"
loadmodule "rtpengine.so"
modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:{ng}")
modparam("rtpengine", "rtpengine_tout", 1)
modparam("rtpengine", "rtpengine_retr", 1)
route {{
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
        ),
    )
    .unwrap();
    let engine = rtpengine(&dir, ng);
    let _server = common::spawn_rsips(&dir, "rsips.cfg", |log| log.contains("listening on udp:"));
    let offer = sdp("192.0.2.50", 4000);
    let invite = format!(
        "INVITE sip:callee@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-m1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=caller\r\nTo: <sip:callee@127.0.0.1>\r\n\
         Call-ID: media-1\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:{cp}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
        offer.len()
    );
    caller
        .send_to(invite.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let got = common::recv_starting(&callee, "INVITE ");
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
    let ok = common::recv_starting(&caller, "SIP/2.0 200");
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
    let got = common::recv_starting(&callee, "BYE ");
    callee
        .send_to(
            common::sdp_reply(&got, "200 OK", "").as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    common::recv_starting(&caller, "SIP/2.0 200");
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
    let refused = common::recv_starting(&caller, "SIP/2.0 5");
    assert!(
        refused.starts_with("SIP/2.0 503 No media relay"),
        "{refused}"
    );
}
