//! Invariants exercised by the cargo-fuzz targets in `fuzz/` and replayed over the committed
//! corpus by the ordinary test suite. Each function panics only when an invariant breaks.

use bytes::Bytes;

use crate::{Edits, HeaderName, ParseConfig, SipMessage, framing};

/// Parse a datagram and a stream frame; if it parses, touch every typed accessor, check that an
/// unedited serialization is byte-exact and that an edited one parses again with the edits.
pub fn parse_invariants(data: &[u8]) {
    let stream = ParseConfig {
        stream: true,
        ..ParseConfig::default()
    };
    let _ = SipMessage::parse_with(Bytes::copy_from_slice(data), &stream);
    let Ok(msg) = SipMessage::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    touch_everything(&msg);
    assert_eq!(
        msg.serialize(&Edits::new()),
        msg.as_bytes(),
        "unedited output must be identical"
    );
    if msg.check().is_err() {
        return;
    }
    let mut e = Edits::new();
    e.add_first("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfuzz");
    e.add_record_route(&msg, "<sip:192.0.2.1;lr>");
    e.remove_top_via(&msg);
    e.force_content_length();
    if msg.is_request() {
        e.set_request_uri("sip:fuzz@192.0.2.2:5080");
    }
    let out = SipMessage::parse(Bytes::from(msg.serialize(&e))).expect("edited message must parse");
    let via = out.top_via().expect("new top Via");
    assert_eq!(via.branch(), Some("z9hG4bKfuzz"));
    let rr = out
        .record_routes()
        .next()
        .expect("Record-Route")
        .expect("valid Record-Route");
    assert_eq!(rr.uri().as_str(), "sip:192.0.2.1;lr");
    assert_eq!(out.body(), msg.body(), "body unchanged");
    assert_eq!(out.call_id().ok(), msg.call_id().ok());
    if msg.is_request() {
        assert_eq!(out.request_uri_str(), Some("sip:fuzz@192.0.2.2:5080"));
    }
}

fn touch_everything(m: &SipMessage) {
    use std::hint::black_box;
    black_box((
        m.method(),
        m.method_str(),
        m.status(),
        m.reason_phrase(),
        m.body(),
    ));
    if let Ok(u) = m.request_uri() {
        black_box((
            u.user_unescaped(),
            u.params().iter().count(),
            u.equivalent(&u),
        ));
    }
    for h in m.headers() {
        black_box((h.name, h.name_str, h.value));
    }
    let _ = black_box(m.check());
    for v in m.vias().flatten() {
        black_box((v.branch(), v.received_ip(), v.rport(), v.ttl()));
    }
    let _ = black_box(m.from_header().map(|a| (a.tag(), a.display_name())));
    let _ = black_box(m.to_header().map(|a| a.uri().user_unescaped()));
    let _ = black_box((
        m.call_id(),
        m.cseq(),
        m.max_forwards(),
        m.content_length(),
        m.expires(),
    ));
    let _ = black_box((
        m.min_expires(),
        m.rseq(),
        m.rack(),
        m.content_type(),
        m.event(),
        m.date(),
    ));
    let _ = black_box(m.contacts().map(|c| format!("{c:?}")));
    for name in [HeaderName::Route, HeaderName::RecordRoute, HeaderName::Path] {
        for a in m.addresses(name).flatten() {
            black_box((a.expires(), a.instance(), a.reg_id()));
        }
    }
    for name in [
        HeaderName::Allow,
        HeaderName::Supported,
        HeaderName::Require,
    ] {
        black_box(m.tokens(name).count());
    }
    for name in [HeaderName::Authorization, HeaderName::WwwAuthenticate] {
        for a in m.auth_headers(name).flatten() {
            black_box((a.username(), a.response()));
        }
    }
    for r in m.reasons().flatten() {
        black_box((r.cause(), r.text()));
    }
}

/// Frame a byte stream repeatedly: every frame reported lies inside the buffer, consumes at least
/// one byte, and a framed message parses (or fails) without panicking.
pub fn framing_invariants(data: &[u8]) {
    let limits = framing::Limits {
        max_header_bytes: 4096,
        max_message_bytes: 8192,
    };
    let stream = ParseConfig {
        stream: true,
        ..ParseConfig::default()
    };
    let mut rest = data;
    for _ in 0..data.len() + 1 {
        let len = match framing::check(rest, &limits) {
            Ok(Some(framing::Frame::Message { len })) => {
                let frame = rest.get(..len).expect("frame inside buffer");
                let _ = SipMessage::parse_with(Bytes::copy_from_slice(frame), &stream);
                len
            }
            Ok(Some(framing::Frame::Ping { len } | framing::Frame::Pong { len })) => len,
            Ok(None) | Err(_) => return,
        };
        assert!(
            len > 0 && len <= rest.len(),
            "frame length {len} of {}",
            rest.len()
        );
        rest = rest.get(len..).unwrap_or(&[]);
    }
    panic!("framing did not terminate");
}
