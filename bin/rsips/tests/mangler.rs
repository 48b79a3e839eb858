//! mangler through a forwarding proxy: the SDP's private addresses and its ports rewritten,
//! the Contact encoded towards the public address (what the next hop gets), and an encoded
//! R-URI decoded back to the device behind it (where the request then goes).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, header};

#[test]
fn sdp_and_contacts_mangled_on_the_way() {
    let port = common::free_port();
    let (caller, next) = (Peer::new(), Peer::new());
    let dir = common::test_dir("mangler", &port.to_string());
    let cfg = format!(
        r#"log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:{port}
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "mangler.so"
route {{
    if ($rU =~ "^enc") {{
        decode_contact();
        forward();
        exit;
    }}
    $var(ip) = sdp_mangle_ip("10.0.0.0/8", "198.51.100.1");
    $var(port) = sdp_mangle_port(-1000);
    $var(enc) = encode_contact("enc", "198.51.100.1");
    append_hf("X-Rc: $var(ip) $var(port) $var(enc)\r\n");
    $du = "sip:127.0.0.1:{next}";
    forward();
}}
"#,
        next = next.port
    );
    std::fs::write(dir.join("rsips.cfg"), cfg).unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
               m=audio 20000 RTP/AVP 0\r\nc=IN IP4 192.0.2.9\r\nm=video 30000/2 RTP/AVP 96\r\n";
    caller.send(
        port,
        &format!(
            "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-mg1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n\
             Call-ID: mg-{port}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice:pw@10.0.0.5:5070;transport=tcp>;expires=60\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len(),
            c = caller.port
        ),
    );
    let got = next.recv("the INVITE");
    // One address in the private network changed (not o=, not the public one); both ports.
    assert_eq!(header(&got, "X-Rc"), ["2 3 1"], "{got}");
    let body = got.split_once("\r\n\r\n").unwrap().1;
    assert!(body.contains("c=IN IP4 198.51.100.1\r\n"), "{body}");
    assert!(body.contains("c=IN IP4 192.0.2.9\r\n"), "{body}");
    assert!(body.contains("o=- 1 1 IN IP4 10.0.0.5\r\n"), "{body}");
    assert!(body.contains("m=audio 19000 RTP/AVP 0\r\n"), "{body}");
    assert!(body.contains("m=video 29000/2 RTP/AVP 96\r\n"), "{body}");
    assert_eq!(
        header(&got, "Content-Length"),
        [body.len().to_string()],
        "the length follows the body"
    );
    assert_eq!(
        header(&got, "Contact"),
        ["<sip:enc*alice*pw*10.0.0.5*5070*tcp@198.51.100.1>;expires=60"],
        "{got}"
    );

    // A request to an encoded URI goes to the device it stands for.
    caller.send(
        port,
        &format!(
            "MESSAGE sip:enc*bob**127.0.0.1*{n}*udp@198.51.100.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-mg2\r\nMax-Forwards: 70\r\n\
             From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n\
             Call-ID: mg2-{port}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
            n = next.port,
            c = caller.port
        ),
    );
    let got = next.recv("the decoded request");
    assert!(
        got.starts_with(&format!(
            "MESSAGE sip:bob@127.0.0.1:{};transport=udp SIP/2.0",
            next.port
        )),
        "{got}"
    );
}
