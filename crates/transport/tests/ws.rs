//! WebSocket: RFC 6455 handshake and frame examples, RFC 7118 subprotocol selection, every error
//! path, byte-by-byte decoding and encode → decode round trips.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use transport::ws::{
    Decoder, MAX_HEAD, Message, Opcode, UpgradeRequest, WsError, accept_key, accept_response,
    client_request, close_code, close_payload, encode, encode_frame, parse_accept_response,
    parse_upgrade_request, reject_response,
};

const RFC6455_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The 16 bytes RFC6455_KEY encodes ("the sample nonce").
const RFC6455_NONCE: &[u8; 16] = b"the sample nonce";

/// RFC 7118 §4.1's example request.
const RFC7118_REQUEST: &str = "GET / HTTP/1.1\r\n\
    Host: sip-ws.example.com\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://www.example.com\r\n\
    Sec-WebSocket-Protocol: sip\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

fn upgrade(req: &str) -> (UpgradeRequest, usize) {
    parse_upgrade_request(req.as_bytes()).unwrap().unwrap()
}

/// RFC7118_REQUEST with header `name` replaced by `line` (or removed when `line` is empty).
fn with_header(name: &str, line: &str) -> String {
    let mut out = String::new();
    for l in RFC7118_REQUEST.split_inclusive("\r\n") {
        if l.to_ascii_lowercase()
            .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        {
            if !line.is_empty() {
                out.push_str(line);
                out.push_str("\r\n");
            }
        } else {
            out.push_str(l);
        }
    }
    out
}

fn decode_one(decoder: &mut Decoder, bytes: &[u8]) -> Result<Option<Message>, WsError> {
    decoder.decode(&mut BytesMut::from(bytes))
}

fn frame(fin: bool, op: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(fin, op, payload, mask, &mut out);
    out.to_vec()
}

// --- handshake ---------------------------------------------------------------------------------

#[test]
fn accept_key_rfc6455_example() {
    assert_eq!(accept_key(RFC6455_KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn rfc7118_handshake() {
    let mut buf = RFC7118_REQUEST.as_bytes().to_vec();
    buf.extend_from_slice(b"\x81\x00"); // a frame right behind the head stays in the buffer
    let (req, n) = parse_upgrade_request(&buf).unwrap().unwrap();
    assert_eq!(n, RFC7118_REQUEST.len());
    assert_eq!(req.path, "/");
    assert_eq!(req.host, "sip-ws.example.com");
    assert_eq!(req.origin.as_deref(), Some("http://www.example.com"));
    assert_eq!(req.key, RFC6455_KEY);
    assert_eq!(req.protocols, ["sip"]);
    assert!(req.x_forwarded_for.is_empty());
    assert!(req.offers_sip());
    assert_eq!(
        accept_response(&req),
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
    );
}

#[test]
fn rfc6455_sample_request_without_sip() {
    let req = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
               Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
               Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
               Sec-WebSocket-Version: 13\r\n\r\n";
    let (req, _) = upgrade(req);
    assert_eq!(req.path, "/chat");
    assert_eq!(req.protocols, ["chat", "superchat"]);
    assert!(!req.offers_sip());
    let resp = String::from_utf8(accept_response(&req)).unwrap();
    assert!(!resp.contains("Sec-WebSocket-Protocol"));
    assert!(resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
}

#[test]
fn lists_and_case_insensitive_tokens() {
    let req = "GET /ws?user=alice HTTP/1.1\r\nhost: [2001:db8::1]:8080\r\nupgrade: WebSocket\r\n\
               connection: keep-alive, Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
               SEC-WEBSOCKET-VERSION: 13\r\nSec-WebSocket-Protocol: chat\r\n\
               Sec-WebSocket-Protocol:  ,SIP , x\t\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n\
               x-forwarded-for: 10.0.0.2\r\n\r\n";
    let (req, _) = upgrade(req);
    assert_eq!(req.path, "/ws?user=alice");
    assert_eq!(req.host, "[2001:db8::1]:8080");
    assert_eq!(req.origin, None);
    assert_eq!(req.protocols, ["chat", "SIP", "x"]);
    assert!(req.offers_sip());
    assert_eq!(req.x_forwarded_for, ["203.0.113.9", "10.0.0.1", "10.0.0.2"]);
}

#[test]
fn upgrade_request_errors() {
    let cases: Vec<(String, WsError)> = vec![
        ("POST / HTTP/1.1\r\n\r\n".into(), WsError::BadMethod),
        ("OPTIONS sip:x SIP/2.0\r\n\r\n".into(), WsError::BadMethod),
        ("\x16\x03\x01".into(), WsError::BadRequestLine),
        (
            RFC7118_REQUEST.replacen("GET / ", "GET  ", 1),
            WsError::BadRequestLine,
        ),
        (
            RFC7118_REQUEST.replacen("HTTP/1.1", "HTTP/1.0", 1),
            WsError::BadRequestLine,
        ),
        (
            RFC7118_REQUEST.replacen("HTTP/1.1", "HTTP/1.1 x", 1),
            WsError::BadRequestLine,
        ),
        (with_header("Host", ""), WsError::MissingHost),
        (with_header("Host", "Host:"), WsError::MissingHost),
        (
            with_header("Host", "Host: a\r\nHost: b"),
            WsError::MissingHost,
        ),
        (with_header("Upgrade", ""), WsError::NotWebSocket),
        (
            with_header("Upgrade", "Upgrade: h2c"),
            WsError::NotWebSocket,
        ),
        (
            with_header("Connection", "Connection: keep-alive"),
            WsError::NoConnectionUpgrade,
        ),
        (with_header("Connection", ""), WsError::NoConnectionUpgrade),
        (
            with_header("Sec-WebSocket-Version", ""),
            WsError::UnsupportedVersion,
        ),
        (
            with_header("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"),
            WsError::UnsupportedVersion,
        ),
        (with_header("Sec-WebSocket-Key", ""), WsError::BadKey),
        (
            with_header("Sec-WebSocket-Key", "Sec-WebSocket-Key: c2hvcnQ="),
            WsError::BadKey,
        ),
        (
            with_header("Sec-WebSocket-Key", "Sec-WebSocket-Key: !!!!"),
            WsError::BadKey,
        ),
        (
            with_header(
                "Sec-WebSocket-Key",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",
            ),
            WsError::BadKey,
        ),
        (with_header("Origin", " Origin: x"), WsError::BadHeader("")),
        (with_header("Origin", "Origin x"), WsError::BadHeader("")),
        (with_header("Origin", "Ori gin: x"), WsError::BadHeader("")),
        (
            with_header("Origin", "Origin: a\rb"),
            WsError::BadHeader(""),
        ),
        (
            with_header("Origin", "Origin: a\nb"),
            WsError::BadHeader(""),
        ),
        (
            with_header("Origin", "Origin: \u{0}"),
            WsError::BadHeader(""),
        ),
    ];
    for (input, expected) in &cases {
        let got = parse_upgrade_request(input.as_bytes()).unwrap_err();
        match expected {
            WsError::BadHeader(_) => {
                assert!(matches!(got, WsError::BadHeader(_)), "{input:?}: {got:?}")
            }
            _ => assert_eq!(&got, expected, "{input:?}"),
        }
        assert!(
            got.http_status().is_some(),
            "{got:?} maps to an HTTP status"
        );
        assert_eq!(got.close_code(), None);
    }
    // Non-UTF-8 in a kept value is refused; elsewhere it is not looked at.
    let mut raw = with_header("Origin", "Origin: \u{ff}").into_bytes();
    let at = raw.iter().position(|&b| b == 0xc3).unwrap();
    raw.remove(at);
    assert!(matches!(
        parse_upgrade_request(&raw),
        Err(WsError::BadHeader(_))
    ));
}

#[test]
fn error_statuses() {
    assert_eq!(WsError::UnsupportedVersion.http_status(), Some(426));
    assert_eq!(WsError::BadMethod.http_status(), Some(405));
    assert_eq!(WsError::HeadTooLarge.http_status(), Some(431));
    assert_eq!(WsError::BadKey.http_status(), Some(400));
    assert_eq!(WsError::BadAccept.http_status(), None);
}

#[test]
fn head_limit() {
    let mut big = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
    big.resize(MAX_HEAD - 1, b'a');
    assert_eq!(parse_upgrade_request(&big), Ok(None));
    big.push(b'a');
    assert_eq!(parse_upgrade_request(&big), Err(WsError::HeadTooLarge));
    // A head that fits exactly is fine.
    let mut exact = with_header("Origin", "X-Pad: ").into_bytes();
    let pad = MAX_HEAD - exact.len();
    let at = exact.windows(7).position(|w| w == b"X-Pad: ").unwrap() + 7;
    exact.splice(at..at, std::iter::repeat_n(b'p', pad));
    assert_eq!(exact.len(), MAX_HEAD);
    assert_eq!(parse_upgrade_request(&exact).unwrap().unwrap().1, MAX_HEAD);
}

#[test]
fn upgrade_request_byte_by_byte() {
    let req = RFC7118_REQUEST.as_bytes();
    for p in 0..req.len() {
        assert_eq!(parse_upgrade_request(&req[..p]), Ok(None), "prefix {p}");
    }
    assert_eq!(parse_upgrade_request(req).unwrap().unwrap().1, req.len());
}

#[test]
fn reject_responses() {
    assert_eq!(
        reject_response(400, "Bad Request"),
        b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(
        reject_response(426, "Upgrade Required"),
        b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\n\
          Content-Length: 0\r\n\r\n"
    );
    assert!(
        reject_response(400, "no\r\nInjected: 1").starts_with(b"HTTP/1.1 400 no  Injected: 1\r\n")
    );
}

#[test]
fn client_handshake_round_trip() {
    let key = RFC6455_NONCE;
    let req = client_request("sip-ws.example.com", "/", key);
    let (parsed, n) = parse_upgrade_request(&req).unwrap().unwrap();
    assert_eq!(n, req.len());
    assert_eq!(parsed.key, RFC6455_KEY);
    assert!(parsed.offers_sip());
    let mut resp = accept_response(&parsed);
    let head = resp.len();
    resp.extend_from_slice(b"\x81\x00");
    assert_eq!(parse_accept_response(&resp, key), Ok(Some(head)));
    for p in 0..head {
        assert_eq!(
            parse_accept_response(&resp[..p], key),
            Ok(None),
            "prefix {p}"
        );
    }
}

#[test]
fn accept_response_errors() {
    let key = RFC6455_NONCE;
    let good = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n";
    assert_eq!(
        parse_accept_response(good.as_bytes(), key),
        Ok(Some(good.len()))
    );
    let cases: Vec<(String, WsError)> = vec![
        ("HTTP/1.0 101 x\r\n\r\n".into(), WsError::BadStatusLine),
        ("SIP/2.0 200 OK\r\n\r\n".into(), WsError::BadStatusLine),
        ("HTTP/1.1 1x1 x\r\n\r\n".into(), WsError::BadStatusLine),
        ("HTTP/1.1 1011 x\r\n\r\n".into(), WsError::BadStatusLine),
        (
            "HTTP/1.1 400 Bad Request\r\n\r\n".into(),
            WsError::UnexpectedStatus(400),
        ),
        (
            good.replace("Upgrade: websocket\r\n", ""),
            WsError::NotWebSocket,
        ),
        (
            good.replace("Connection: Upgrade", "Connection: close"),
            WsError::NoConnectionUpgrade,
        ),
        (good.replace("xOo=", "xOp="), WsError::BadAccept),
        (
            good.replace("Protocol: sip", "Protocol: chat"),
            WsError::NoSipProtocol,
        ),
        (
            good.replace("Sec-WebSocket-Protocol: sip\r\n", ""),
            WsError::NoSipProtocol,
        ),
        (
            good.replace(
                "\r\n\r\n",
                "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
            ),
            WsError::UnexpectedExtension,
        ),
    ];
    for (input, expected) in &cases {
        assert_eq!(
            parse_accept_response(input.as_bytes(), key).as_ref(),
            Err(expected),
            "{input:?}"
        );
    }
    assert_eq!(
        parse_accept_response(good.as_bytes(), &[1; 16]),
        Err(WsError::BadAccept)
    );
}

// --- frames: RFC 6455 §5.7 examples ------------------------------------------------------------

const HELLO_UNMASKED: &[u8] = &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
const HELLO_MASKED: &[u8] = &[
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

#[test]
fn single_frame_unmasked_text() {
    let mut d = Decoder::client(1 << 20);
    assert_eq!(
        decode_one(&mut d, HELLO_UNMASKED),
        Ok(Some(Message::Text(Bytes::from_static(b"Hello"))))
    );
    let mut out = BytesMut::new();
    encode(Opcode::Text, b"Hello", None, &mut out);
    assert_eq!(&out[..], HELLO_UNMASKED);
}

#[test]
fn single_frame_masked_text() {
    let mut d = Decoder::server(1 << 20);
    assert_eq!(
        decode_one(&mut d, HELLO_MASKED),
        Ok(Some(Message::Text(Bytes::from_static(b"Hello"))))
    );
    let mut out = BytesMut::new();
    encode(Opcode::Text, b"Hello", Some(MASK), &mut out);
    assert_eq!(&out[..], HELLO_MASKED);
}

#[test]
fn fragmented_unmasked_text() {
    let mut d = Decoder::client(1 << 20);
    let mut buf = BytesMut::from(&[0x01, 0x03, 0x48, 0x65, 0x6c][..]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    assert!(buf.is_empty(), "the first fragment is consumed");
    buf.extend_from_slice(&[0x80, 0x02, 0x6c, 0x6f]);
    assert_eq!(
        d.decode(&mut buf),
        Ok(Some(Message::Text(Bytes::from_static(b"Hello"))))
    );
    assert_eq!(
        frame(false, Opcode::Text, b"Hel", None),
        [0x01, 0x03, 0x48, 0x65, 0x6c]
    );
    assert_eq!(
        frame(true, Opcode::Continuation, b"lo", None),
        [0x80, 0x02, 0x6c, 0x6f]
    );
}

#[test]
fn ping_and_masked_pong() {
    let mut client = Decoder::client(1 << 20);
    let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    assert_eq!(
        decode_one(&mut client, &ping),
        Ok(Some(Message::Ping(Bytes::from_static(b"Hello"))))
    );
    let mut server = Decoder::server(1 << 20);
    let pong = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(
        decode_one(&mut server, &pong),
        Ok(Some(Message::Pong(Bytes::from_static(b"Hello"))))
    );
}

#[test]
fn binary_256_bytes_and_64_kib() {
    for (len, head) in [
        (256usize, vec![0x82, 0x7E, 0x01, 0x00]),
        (65536, vec![0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]),
    ] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut out = BytesMut::new();
        encode(Opcode::Binary, &payload, None, &mut out);
        assert_eq!(&out[..head.len()], &head[..]);
        assert_eq!(out.len(), head.len() + len);
        let mut d = Decoder::client(1 << 20);
        assert_eq!(
            d.decode(&mut out),
            Ok(Some(Message::Binary(payload.into())))
        );
        assert!(out.is_empty());
    }
}

#[test]
fn control_frames_inside_a_fragmented_message() {
    let mut bytes = frame(false, Opcode::Binary, b"ab", Some(MASK));
    bytes.extend(frame(true, Opcode::Ping, b"p", Some(MASK)));
    bytes.extend(frame(false, Opcode::Continuation, b"cd", Some(MASK)));
    bytes.extend(frame(true, Opcode::Pong, b"", Some(MASK)));
    bytes.extend(frame(true, Opcode::Continuation, b"ef", Some(MASK)));
    let mut d = Decoder::server(1 << 20);
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(
        d.decode(&mut buf),
        Ok(Some(Message::Ping(Bytes::from_static(b"p"))))
    );
    assert_eq!(d.decode(&mut buf), Ok(Some(Message::Pong(Bytes::new()))));
    assert_eq!(
        d.decode(&mut buf),
        Ok(Some(Message::Binary(Bytes::from_static(b"abcdef"))))
    );
    assert_eq!(d.decode(&mut buf), Ok(None));
}

#[test]
fn close_payloads() {
    let mut d = Decoder::client(1 << 20);
    assert_eq!(
        decode_one(&mut d, &[0x88, 0x00]),
        Ok(Some(Message::Close(None)))
    );
    let normal = frame(true, Opcode::Close, &close_payload(1000, "bye"), None);
    assert_eq!(
        decode_one(&mut d, &normal),
        Ok(Some(Message::Close(Some((1000, "bye".into())))))
    );
    for code in [1001, 1003, 1007, 1011, 1014, 3000, 4999] {
        let f = frame(true, Opcode::Close, &close_payload(code, ""), None);
        assert_eq!(
            decode_one(&mut d, &f),
            Ok(Some(Message::Close(Some((code, String::new())))))
        );
    }
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        let f = frame(true, Opcode::Close, &close_payload(code, ""), None);
        assert_eq!(
            decode_one(&mut d, &f),
            Err(WsError::BadClose),
            "code {code}"
        );
    }
    assert_eq!(
        decode_one(&mut d, &[0x88, 0x01, 0x03]),
        Err(WsError::BadClose)
    );
    let bad_reason = frame(true, Opcode::Close, &[0x03, 0xe8, 0xff], None);
    assert_eq!(decode_one(&mut d, &bad_reason), Err(WsError::InvalidUtf8));
    let mut out = BytesMut::new();
    Message::Close(Some((1000, "bye".into()))).encode(None, &mut out);
    assert_eq!(&out[..], &normal[..]);
}

#[test]
fn frame_errors_and_close_codes() {
    let server = || Decoder::server(1000);
    let client = || Decoder::client(1000);
    let masked = |fin, op, payload: &[u8]| frame(fin, op, payload, Some(MASK));
    let cases: Vec<(Decoder, Vec<u8>, WsError, u16)> = vec![
        (server(), vec![0xC1, 0x80], WsError::ReservedBits, 1002),
        (server(), vec![0xA1], WsError::ReservedBits, 1002),
        (server(), vec![0x93], WsError::ReservedBits, 1002),
        (server(), vec![0x83], WsError::UnknownOpcode(3), 1002),
        (server(), vec![0x8B], WsError::UnknownOpcode(0xB), 1002),
        (
            server(),
            HELLO_UNMASKED.to_vec(),
            WsError::UnmaskedFrame,
            1002,
        ),
        (client(), HELLO_MASKED.to_vec(), WsError::MaskedFrame, 1002),
        (
            server(),
            vec![0x89, 0xFE, 0x00, 0x7E],
            WsError::ControlTooLong,
            1002,
        ),
        (
            server(),
            masked(false, Opcode::Ping, b""),
            WsError::FragmentedControl,
            1002,
        ),
        (
            server(),
            masked(false, Opcode::Close, b""),
            WsError::FragmentedControl,
            1002,
        ),
        (
            server(),
            masked(true, Opcode::Continuation, b"x"),
            WsError::UnexpectedContinuation,
            1002,
        ),
        (
            server(),
            [
                masked(false, Opcode::Text, b"a"),
                masked(true, Opcode::Text, b"b"),
            ]
            .concat(),
            WsError::ExpectedContinuation,
            1002,
        ),
        (
            server(),
            [
                masked(false, Opcode::Text, b"a"),
                masked(false, Opcode::Binary, b"b"),
            ]
            .concat(),
            WsError::ExpectedContinuation,
            1002,
        ),
        (
            client(),
            vec![0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0],
            WsError::LengthOverflow,
            1002,
        ),
        (
            client(),
            vec![0x82, 0x7E, 0x03, 0xE9],
            WsError::TooBig(1000),
            1009,
        ),
        (
            client(),
            vec![0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            WsError::TooBig(1000),
            1009,
        ),
        (
            server(),
            [
                masked(false, Opcode::Binary, &[0; 600]),
                masked(true, Opcode::Continuation, &[0; 401]),
            ]
            .concat(),
            WsError::TooBig(1000),
            1009,
        ),
        (
            server(),
            masked(true, Opcode::Text, &[0xC3, 0x28]),
            WsError::InvalidUtf8,
            1007,
        ),
        (
            server(),
            [
                masked(false, Opcode::Text, &[0xE2, 0x82]),
                masked(true, Opcode::Continuation, &[0x28]),
            ]
            .concat(),
            WsError::InvalidUtf8,
            1007,
        ),
        (
            server(),
            masked(true, Opcode::Close, &[0x03]),
            WsError::BadClose,
            1002,
        ),
    ];
    for (mut d, bytes, expected, code) in cases {
        let mut buf = BytesMut::from(&bytes[..]);
        let got = loop {
            match d.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("{bytes:02x?}: no error"),
                Err(e) => break e,
            }
        };
        assert_eq!(got, expected, "{bytes:02x?}");
        assert_eq!(got.close_code(), Some(code));
        assert_eq!(got.http_status(), None);
    }
}

#[test]
fn a_message_exactly_at_the_limit_passes() {
    let mut d = Decoder::server(1000);
    let mut buf = BytesMut::from(&frame(false, Opcode::Binary, &[1; 600], Some(MASK))[..]);
    buf.extend_from_slice(&frame(true, Opcode::Continuation, &[2; 400], Some(MASK)));
    let Ok(Some(Message::Binary(b))) = d.decode(&mut buf) else {
        panic!("one message")
    };
    assert_eq!(b.len(), 1000);
}

#[test]
fn text_split_inside_a_utf8_sequence_is_valid() {
    let euro = "€".as_bytes();
    let mut buf = BytesMut::from(&frame(false, Opcode::Text, &euro[..1], None)[..]);
    buf.extend_from_slice(&frame(true, Opcode::Continuation, &euro[1..], None));
    let mut d = Decoder::client(100);
    assert_eq!(
        d.decode(&mut buf),
        Ok(Some(Message::Text(Bytes::from_static("€".as_bytes()))))
    );
}

#[test]
fn non_minimal_lengths_are_accepted() {
    let mut d = Decoder::client(100);
    let bytes = [0x82, 0x7E, 0x00, 0x01, 0xAA];
    assert_eq!(
        decode_one(&mut d, &bytes),
        Ok(Some(Message::Binary(Bytes::from_static(&[0xAA]))))
    );
    let bytes = [0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xBB];
    assert_eq!(
        decode_one(&mut d, &bytes),
        Ok(Some(Message::Binary(Bytes::from_static(&[0xBB]))))
    );
}

#[test]
fn byte_by_byte_decoding() {
    let mut stream = frame(false, Opcode::Text, b"INVITE sip:bob", Some(MASK));
    stream.extend(frame(true, Opcode::Ping, b"", Some(MASK)));
    stream.extend(frame(
        true,
        Opcode::Continuation,
        b"@example.com SIP/2.0\r\n",
        Some(MASK),
    ));
    stream.extend(frame(true, Opcode::Binary, &[7; 300], Some(MASK)));
    stream.extend(frame(
        true,
        Opcode::Close,
        &close_payload(1000, ""),
        Some(MASK),
    ));
    let mut d = Decoder::server(1 << 16);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in &stream {
        buf.extend_from_slice(&[*b]);
        while let Some(m) = d.decode(&mut buf).unwrap() {
            got.push(m);
        }
    }
    assert!(buf.is_empty());
    assert_eq!(
        got,
        [
            Message::Ping(Bytes::new()),
            Message::Text(Bytes::from_static(
                b"INVITE sip:bob@example.com SIP/2.0\r\n"
            )),
            Message::Binary(vec![7; 300].into()),
            Message::Close(Some((close_code::NORMAL, String::new()))),
        ]
    );
}

// --- properties --------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Sent {
    Data {
        text: bool,
        payload: Vec<u8>,
        cuts: Vec<prop::sample::Index>,
    },
    Control(Message),
}

fn sent() -> impl Strategy<Value = Sent> {
    let data = (
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..2000),
        "\\PC{0,200}",
        proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
    )
        .prop_map(|(text, bin, s, cuts)| Sent::Data {
            text,
            payload: if text { s.into_bytes() } else { bin },
            cuts,
        });
    let small = proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Bytes::from);
    let control = prop_oneof![
        small.clone().prop_map(Message::Ping),
        small.prop_map(Message::Pong),
        Just(Message::Close(None)),
        (
            prop_oneof![1000..=1003u16, 1007..=1014u16, 3000..=4999u16],
            "[a-z ]{0,60}"
        )
            .prop_map(|(c, r)| Message::Close(Some((c, r)))),
    ]
    .prop_map(Sent::Control);
    prop_oneof![3 => data, 1 => control]
}

/// Frames for `items`, control frames placed after the first fragment of the next data message.
fn frames(items: &[Sent], mask: Option<[u8; 4]>) -> (Vec<u8>, Vec<Message>) {
    let (mut out, mut expect, mut pending) = (BytesMut::new(), Vec::new(), Vec::new());
    for item in items {
        match item {
            Sent::Control(m) => pending.push(m.clone()),
            Sent::Data {
                text,
                payload,
                cuts,
            } => {
                let mut at: Vec<usize> = cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
                at.sort_unstable();
                at.push(payload.len());
                let mut start = 0;
                for (i, end) in at.iter().enumerate() {
                    let op = match (i, text) {
                        (0, true) => Opcode::Text,
                        (0, false) => Opcode::Binary,
                        _ => Opcode::Continuation,
                    };
                    let fin = i + 1 == at.len();
                    encode_frame(fin, op, &payload[start..*end], mask, &mut out);
                    start = *end;
                    if fin {
                        let body = Bytes::from(payload.clone());
                        expect.push(if *text {
                            Message::Text(body)
                        } else {
                            Message::Binary(body)
                        });
                    }
                    for m in pending.drain(..) {
                        m.encode(mask, &mut out);
                        expect.push(m);
                    }
                }
            }
        }
    }
    for m in pending.drain(..) {
        m.encode(mask, &mut out);
        expect.push(m);
    }
    (out.to_vec(), expect)
}

proptest! {
    #[test]
    fn encode_decode_round_trip(
        items in proptest::collection::vec(sent(), 0..8),
        mask in proptest::option::of(any::<[u8; 4]>()),
        chunks in proptest::collection::vec(1usize..700, 1..20),
    ) {
        let (bytes, expect) = frames(&items, mask);
        let mut d = Decoder::new(1 << 16, mask.is_some());
        let (mut buf, mut got, mut rest) = (BytesMut::new(), Vec::new(), &bytes[..]);
        for size in chunks.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at((*size).min(rest.len()));
            buf.extend_from_slice(now);
            rest = later;
            while let Some(m) = d.decode(&mut buf).unwrap() {
                got.push(m);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, expect);
    }

    #[test]
    fn arbitrary_bytes_hold_the_fuzz_invariants(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        transport::ws::fuzz_invariants(&data);
    }

    #[test]
    fn mutated_frames_hold_the_fuzz_invariants(
        items in proptest::collection::vec(sent(), 1..4),
        mask in proptest::option::of(any::<[u8; 4]>()),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..3),
    ) {
        let (mut bytes, _) = frames(&items, mask);
        if !bytes.is_empty() {
            for (at, x) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= x;
            }
        }
        transport::ws::fuzz_invariants(&bytes);
    }

    #[test]
    fn mutated_handshakes_hold_the_fuzz_invariants(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let mut bytes = RFC7118_REQUEST.as_bytes().to_vec();
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        transport::ws::fuzz_invariants(&bytes);
    }
}
