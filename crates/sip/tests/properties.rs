//! Property tests: URIs, name-addrs, Via values and whole messages survive a format → parse round
//! trip with every component intact, and arbitrary bytes never panic the parser.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bytes::Bytes;
use proptest::prelude::*;
use sip::{Edits, HeaderName, NameAddr, SipMessage, Uri, Via};

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,11}"
}

fn user() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_.!~*'()&=+$,;?/-]{1,16}",
        "[a-z]{1,4}%[0-9A-F]{2}[a-z]{0,4}",
    ]
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
        any::<[u8; 4]>().prop_map(|a| std::net::Ipv4Addr::from(a).to_string()),
        any::<[u16; 8]>().prop_map(|a| format!("[{}]", std::net::Ipv6Addr::from(a))),
    ]
}

fn uri_param() -> impl Strategy<Value = (String, Option<String>)> {
    (
        "[a-z][a-z0-9-]{0,8}",
        proptest::option::of("[A-Za-z0-9_.:/+$-]{1,10}"),
    )
}

#[derive(Debug, Clone)]
struct UriParts {
    secure: bool,
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: Option<u16>,
    params: Vec<(String, Option<String>)>,
    headers: Vec<(String, String)>,
}

impl UriParts {
    fn render(&self) -> String {
        let mut s = String::from(if self.secure { "sips:" } else { "sip:" });
        if let Some(u) = &self.user {
            s.push_str(u);
            if let Some(p) = &self.password {
                s.push(':');
                s.push_str(p);
            }
            s.push('@');
        }
        s.push_str(&self.host);
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        for (n, v) in &self.params {
            s.push(';');
            s.push_str(n);
            if let Some(v) = v {
                s.push('=');
                s.push_str(v);
            }
        }
        for (i, (n, v)) in self.headers.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            s.push_str(&format!("{n}={v}"));
        }
        s
    }
}

fn uri_parts() -> impl Strategy<Value = UriParts> {
    uri_parts_with(0..3)
}

fn uri_parts_with(headers: std::ops::Range<usize>) -> impl Strategy<Value = UriParts> {
    (
        any::<bool>(),
        proptest::option::of(user()),
        proptest::option::of("[A-Za-z0-9&=+$,_.-]{1,8}"),
        host(),
        proptest::option::of(1u16..),
        proptest::collection::vec(uri_param(), 0..4),
        proptest::collection::vec(("[a-z]{1,6}", "[A-Za-z0-9:/]{0,6}(%[0-9A-F]{2})?"), headers),
    )
        .prop_map(
            |(secure, user, password, host, port, params, headers)| UriParts {
                secure,
                password: user.as_ref().and(password),
                user,
                host,
                port,
                params,
                headers,
            },
        )
}

fn check_uri(u: &Uri<'_>, p: &UriParts) {
    assert_eq!(u.scheme().as_str(), if p.secure { "sips" } else { "sip" });
    assert_eq!(u.user(), p.user.as_deref());
    assert_eq!(u.password(), p.password.as_deref());
    assert_eq!(u.host().unwrap().as_str(), p.host);
    assert_eq!(u.port(), p.port);
    let params: Vec<(String, Option<String>)> = u
        .params()
        .iter()
        .map(|x| x.unwrap())
        .map(|x| (x.name.to_owned(), x.value.map(str::to_owned)))
        .collect();
    assert_eq!(params, p.params);
    let headers = p
        .headers
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    assert_eq!(u.headers().unwrap_or(""), headers);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn uri_round_trip(p in uri_parts()) {
        let text = p.render();
        let u = Uri::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        check_uri(&u, &p);
        prop_assert!(u.equivalent(&u));
        let upper = UriParts { host: p.host.to_ascii_uppercase(), ..p.clone() }.render();
        prop_assert!(Uri::parse(&upper).unwrap().equivalent(&u), "host case must not matter");
    }

    #[test]
    fn name_addr_round_trip(
        p in uri_parts(),
        display in proptest::option::of(prop_oneof![
            "[A-Za-z0-9 ,;:<>@\"\\\\é]{0,12}".prop_map(|d| (true, d)),
            "[A-Za-z0-9]{1,6}( [A-Za-z0-9]{1,6}){0,2}".prop_map(|d| (false, d)),
        ]),
        tag in proptest::option::of(token()),
        expires in proptest::option::of(any::<u32>()),
    ) {
        let mut s = String::new();
        if let Some((quoted, d)) = &display {
            if *quoted {
                s.push('"');
                for c in d.chars() {
                    if c == '"' || c == '\\' { s.push('\\'); }
                    s.push(c);
                }
                s.push_str("\" ");
            } else {
                s.push_str(d);
                s.push(' ');
            }
        }
        s.push('<');
        s.push_str(&p.render());
        s.push('>');
        if let Some(t) = &tag { s.push_str(&format!(";tag={t}")); }
        if let Some(e) = expires { s.push_str(&format!(" ; expires = {e}")); }
        let a = NameAddr::parse(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
        check_uri(a.uri(), &p);
        prop_assert_eq!(a.display_name().map(|d| d.into_owned()), display.map(|(_, d)| d));
        prop_assert_eq!(a.tag(), tag.as_deref());
        prop_assert_eq!(a.expires(), expires);
    }

    #[test]
    fn via_round_trip(
        transport in prop_oneof![Just("UDP"), Just("TCP"), Just("TLS"), Just("WS"), Just("WSS"), Just("SCTP")],
        h in host(),
        port in proptest::option::of(1u16..),
        branch in "[A-Za-z0-9.!%*_+`'~-]{1,20}",
        rport in proptest::option::of(proptest::option::of(1u16..)),
        sp in prop_oneof![Just(""), Just(" "), Just("\r\n "), Just("  \t")],
    ) {
        let mut s = format!("SIP{sp}/{sp}2.0{sp}/{sp}{transport} {h}");
        if let Some(p) = port { s.push_str(&format!(":{p}")); }
        s.push_str(&format!("{sp};{sp}branch{sp}={sp}z9hG4bK{branch}"));
        match rport {
            Some(Some(p)) => s.push_str(&format!(";rport={p}")),
            Some(None) => s.push_str(";rport"),
            None => {}
        }
        let v = Via::parse(&s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        prop_assert_eq!(v.transport(), transport);
        prop_assert_eq!(v.host().as_str(), h.as_str());
        prop_assert_eq!(v.port(), port);
        let want_branch = format!("z9hG4bK{branch}");
        prop_assert_eq!(v.branch(), Some(want_branch.as_str()));
        prop_assert!(v.has_rfc3261_branch());
        prop_assert_eq!(v.rport(), rport);
    }

    #[test]
    fn message_round_trip(
        method in prop_oneof![Just("INVITE"), Just("OPTIONS"), Just("REGISTER"), Just("X-CUSTOM")],
        p in uri_parts_with(0..1),
        extra in proptest::collection::vec(("X-[A-Za-z0-9-]{1,10}", "[ -~]{0,30}"), 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..200),
        seq in any::<u32>(),
    ) {
        let ruri = p.render();
        let mut b = sip::RequestBuilder::new(method, &ruri)
            .header("Via", "SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKprop")
            .header("From", "<sip:a@example.com>;tag=1")
            .header("To", "<sip:b@example.com>")
            .header("Call-ID", "prop@192.0.2.9")
            .header("CSeq", &format!("{seq} {method}"))
            .header("Max-Forwards", "70");
        for (n, v) in &extra {
            b = b.header(n, v);
        }
        let bytes = b.body(&body);
        let m = SipMessage::parse(Bytes::from(bytes.clone())).unwrap();
        m.check().unwrap();
        check_uri(&m.request_uri().unwrap(), &p);
        prop_assert_eq!(m.method_str(), Some(method));
        prop_assert_eq!(m.cseq().unwrap().seq, seq);
        prop_assert_eq!(m.body(), &body[..]);
        for (n, v) in &extra {
            prop_assert!(m.header_lines_str(n).any(|x| x == v.trim()), "{} lost", n);
        }
        prop_assert_eq!(m.serialize(&Edits::new()), bytes);

        let mut e = Edits::new();
        e.add_first("Via", "SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKnew");
        e.add_record_route(&m, "<sip:10.0.0.1;lr>");
        let out = SipMessage::parse(Bytes::from(m.serialize(&e))).unwrap();
        prop_assert_eq!(out.vias().count(), 2);
        prop_assert_eq!(out.top_via().unwrap().branch(), Some("z9hG4bKnew"));
        prop_assert_eq!(out.header_count(HeaderName::RecordRoute), 1);
        prop_assert_eq!(out.body(), &body[..]);
        for (n, v) in &extra {
            prop_assert!(out.header_lines_str(n).any(|x| x == v.trim()));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        sip::fuzzing::parse_invariants(&data);
        sip::fuzzing::framing_invariants(&data);
    }

    #[test]
    fn mutated_messages_never_panic(pos in 0usize..400, byte in any::<u8>(), cut in 0usize..420) {
        let base = b"INVITE sip:bob@biloxi.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776\r\nMax-Forwards: 70\r\nTo: Bob <sip:bob@biloxi.com>\r\nFrom: Alice <sip:alice@atlanta.com>;tag=1928301774\r\nCall-ID: a84b4c76e66710@pc33.atlanta.com\r\nCSeq: 314159 INVITE\r\nContact: <sip:alice@pc33.atlanta.com>\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";
        let mut d = base.to_vec();
        if let Some(b) = d.get_mut(pos) { *b = byte; }
        d.truncate(cut);
        sip::fuzzing::parse_invariants(&d);
        sip::fuzzing::framing_invariants(&d);
    }
}

proptest! {
    /// The one-pass dotted-quad reader accepts exactly what `Ipv4Addr::from_str` accepts, with
    /// the same address: on strings made of digits and dots, and on formatted addresses.
    #[test]
    fn ipv4_reader_agrees_with_std(
        s in "[0-9.]{0,18}",
        quad in "[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{0,4}\\.[0-9]{1,4}\\.?",
        a in any::<[u8; 4]>(),
    ) {
        prop_assert_eq!(sip::parse_ipv4(s.as_bytes()), s.parse::<std::net::Ipv4Addr>().ok());
        prop_assert_eq!(sip::parse_ipv4(quad.as_bytes()), quad.parse::<std::net::Ipv4Addr>().ok());
        let formatted = std::net::Ipv4Addr::from(a).to_string();
        prop_assert_eq!(sip::parse_ipv4(formatted.as_bytes()), Some(std::net::Ipv4Addr::from(a)));
    }
}

#[test]
fn ipv4_reader_edge_cases() {
    for s in [
        "0.0.0.0",
        "255.255.255.255",
        "1.2.3.4",
        "01.2.3.4",
        "1.2.3.04",
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.",
        ".1.2.3.4",
        "1..2.3",
        "1.2.3.4.5",
        "1000.1.1.1",
        "",
        "00.0.0.0",
        "1.2.3.400",
    ] {
        assert_eq!(
            sip::parse_ipv4(s.as_bytes()),
            s.parse::<std::net::Ipv4Addr>().ok(),
            "{s:?}"
        );
    }
}
