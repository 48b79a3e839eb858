//! The benchmark compares like with like: all three parsers read the same values from the inputs,
//! and each forwarded message carries the new Via on top and the Record-Route.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use rsips_bench::inputs::{INVITE, REGISTER};
use rsips_bench::{NEW_RR, NEW_VIA, ProxyView, rsips_forward, rsips_view};

#[path = "../peers.rs"]
mod peers;

fn expected_invite() -> ProxyView {
    ProxyView {
        top_via_branch: Some("z9hG4bK74bf9.1".into()),
        from_tag: Some("1928301774".into()),
        to_tag: None,
        call_id: "a84b4c76e66710@pc33.atlanta.com".into(),
        cseq: 314159,
        cseq_method: "INVITE".into(),
        max_forwards: 69,
        routes: vec![
            "sip:proxy2.biloxi.com;lr".into(),
            "sip:edge.biloxi.com:5060;transport=udp;lr".into(),
        ],
        contacts: vec!["sip:alice@pc33.atlanta.com:5060;transport=udp".into()],
    }
}

#[test]
fn inputs_are_well_formed() {
    for wire in [INVITE, REGISTER] {
        let m = sip::SipMessage::parse(bytes::Bytes::from_static(wire.as_bytes())).unwrap();
        m.check().unwrap();
        assert_eq!(m.content_length().unwrap(), Some(m.body().len() as u32));
        assert!(!wire.replace("\r\n", "").contains('\n'));
    }
    assert!(
        (850..1000).contains(&INVITE.len()),
        "a typical ~900-byte INVITE"
    );
}

#[test]
fn rsips_reads_the_proxy_subset() {
    assert_eq!(rsips_view(INVITE.as_bytes()), expected_invite());
    let r = rsips_view(REGISTER.as_bytes());
    assert_eq!(r.contacts, ["sip:bob@192.0.2.55"]);
    assert_eq!(
        (r.cseq, r.cseq_method.as_str(), r.max_forwards),
        (2, "REGISTER", 70)
    );
}

#[test]
fn peers_read_the_same_values() {
    for wire in [INVITE, REGISTER] {
        let ours = rsips_view(wire.as_bytes());
        let sipx = peers::sipx::view(wire.as_bytes());
        assert_eq!(sipx, ours);
        let mut rs = peers::rsipstack_peer::view(wire.as_bytes());
        // rsipstack normalises `transport=udp` to `transport=UDP` when printing URIs and drops
        // Contact URI parameters; compare case-insensitively up to the first ';' of contacts.
        rs.routes = rs.routes.iter().map(|r| r.to_ascii_lowercase()).collect();
        let lower: Vec<String> = ours.routes.iter().map(|r| r.to_ascii_lowercase()).collect();
        assert_eq!(rs.routes, lower);
        let strip = |v: &[String]| {
            v.iter()
                .map(|c| c.split(';').next().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&rs.contacts), strip(&ours.contacts));
        assert_eq!(
            (
                rs.top_via_branch,
                rs.from_tag,
                rs.to_tag,
                rs.call_id,
                rs.cseq,
                rs.cseq_method,
                rs.max_forwards
            ),
            (
                ours.top_via_branch,
                ours.from_tag,
                ours.to_tag,
                ours.call_id,
                ours.cseq,
                ours.cseq_method,
                ours.max_forwards
            )
        );
    }
}

fn check_forwarded(who: &str, input: &str, out: &[u8]) {
    let text = String::from_utf8(out.to_vec()).unwrap();
    let new_via = text
        .find(NEW_VIA)
        .unwrap_or_else(|| panic!("{who}: no new Via"));
    let old_via = text.find("Via: SIP/2.0/UDP").unwrap();
    assert!(new_via <= old_via + 5, "{who}: new Via is on top");
    assert!(text.contains(NEW_RR), "{who}: Record-Route");
    let body = input.split("\r\n\r\n").nth(1).unwrap();
    assert!(text.ends_with(body), "{who}: body intact");
}

#[test]
fn every_forward_step_produces_the_same_message_shape() {
    let limits = sipx_sip::Limits::datagram();
    for wire in [INVITE, REGISTER] {
        let (_, ours) = rsips_forward(wire.as_bytes());
        check_forwarded("rsips", wire, &ours);
        let m = sip::SipMessage::parse(bytes::Bytes::from(ours.clone())).unwrap();
        m.check().unwrap();
        assert_eq!(m.vias().count(), wire.matches("\r\nVia:").count() + 1);
        check_forwarded(
            "sipx-sip",
            wire,
            &peers::sipx::forward(wire.as_bytes(), &limits).1,
        );
        check_forwarded(
            "rsipstack",
            wire,
            &peers::rsipstack_peer::forward(wire.as_bytes()).1,
        );
    }
}
