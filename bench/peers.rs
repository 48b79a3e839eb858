//! Adapters for the peer parsers, `sipx-sip` and `rsipstack`: the same proxy subset and forward
//! step as `rsips_proxy_subset` / `rsips_forward`, written against each peer's public API.
//! Included with `#[path]` by the benchmark and by the agreement test (peers are dev-deps).
#![allow(dead_code)]

use bytes::Bytes;
use rsips_bench::{NEW_RR, NEW_VIA, ProxyView};

pub mod sipx {
    use super::*;
    use sipx_sip::headers::{CSeq, Contact, From, MaxForwards, Route, To, Via};
    use sipx_sip::{Header, HeaderName, Limits, Message, parse_datagram};

    pub fn parse(wire: &[u8], limits: &Limits) -> Message {
        parse_datagram(Bytes::copy_from_slice(wire), limits).expect("sipx parse")
    }

    /// Borrowing access, like `rsips_proxy_subset`.
    pub fn proxy_subset(msg: &Message) -> usize {
        let h = msg.headers();
        let via = h.typed::<Via>().expect("Via").expect("Via");
        let mut n = via.branch().map_or(0, |b| b.len());
        n += h
            .typed::<From>()
            .expect("From")
            .expect("From")
            .tag()
            .map_or(0, |t| t.len());
        n += h
            .typed::<To>()
            .expect("To")
            .expect("To")
            .tag()
            .map_or(0, |t| t.len());
        n += h.value(&HeaderName::CallId).expect("Call-ID").len();
        let cseq = h.typed::<CSeq>().expect("CSeq").expect("CSeq");
        n += cseq.sequence as usize;
        n += usize::from(h.typed::<MaxForwards>().expect("MF").expect("MF").0);
        for r in h.typed_all::<Route>() {
            std::hint::black_box(&r.expect("Route").uri);
            n += 1;
        }
        for c in h.typed_all::<Contact>() {
            std::hint::black_box(&c.expect("Contact").uri);
            n += 1;
        }
        n
    }

    pub fn forward(wire: &[u8], limits: &Limits) -> (usize, Bytes) {
        let mut msg = parse(wire, limits);
        let n = proxy_subset(&msg);
        let hs = msg.headers_mut();
        hs.push_front(
            Header::build(HeaderName::Via, Bytes::from_static(NEW_VIA.as_bytes())).expect("via"),
        );
        hs.push(
            Header::build(
                HeaderName::RecordRoute,
                Bytes::from_static(NEW_RR.as_bytes()),
            )
            .expect("rr"),
        );
        (n, msg.to_bytes())
    }

    pub fn view(wire: &[u8]) -> ProxyView {
        let msg = parse(wire, &Limits::datagram());
        let h = msg.headers();
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let via = h.typed::<Via>().expect("Via").expect("Via");
        let cseq = h.typed::<CSeq>().expect("CSeq").expect("CSeq");
        ProxyView {
            top_via_branch: via.branch().map(s),
            from_tag: h.typed::<From>().expect("From").expect("From").tag().map(s),
            to_tag: h.typed::<To>().expect("To").expect("To").tag().map(s),
            call_id: s(&h.value(&HeaderName::CallId).expect("Call-ID")),
            cseq: cseq.sequence,
            cseq_method: cseq.method.to_string(),
            max_forwards: u32::from(h.typed::<MaxForwards>().expect("MF").expect("MF").0),
            routes: h
                .typed_all::<Route>()
                .map(|r| r.expect("Route").uri.to_string())
                .collect(),
            contacts: h
                .typed_all::<Contact>()
                .map(|c| c.expect("Contact").uri.to_string())
                .collect(),
        }
    }
}

pub mod rsipstack_peer {
    use super::*;
    use rsipstack::sip::prelude::{HasHeaders, HeadersExt, ToTypedHeader};
    use rsipstack::sip::{Header, RecordRoute, SipMessage, Via, parser::parse_message};

    pub fn parse(wire: &[u8]) -> SipMessage {
        parse_message(wire).expect("rsipstack parse")
    }

    pub fn proxy_subset(msg: &SipMessage) -> usize {
        let via = msg.top_via_header().expect("Via").typed().expect("Via");
        let mut n = usize::from(std::hint::black_box(via.branch()).is_some());
        n += msg
            .from_header()
            .expect("From")
            .tag()
            .expect("tag")
            .map_or(0, |t| t.value().len());
        n += msg
            .to_header()
            .expect("To")
            .tag()
            .expect("tag")
            .map_or(0, |t| t.value().len());
        n += msg.call_id_header().expect("Call-ID").value().len();
        n += msg.cseq_header().expect("CSeq").typed().expect("CSeq").seq as usize;
        n += msg
            .max_forwards_header()
            .expect("MF")
            .value()
            .trim()
            .parse::<usize>()
            .expect("MF");
        n += msg.typed_route_headers().expect("Route").len();
        n += msg.typed_contact_headers().expect("Contact").len();
        n
    }

    pub fn forward(wire: &[u8]) -> (usize, Vec<u8>) {
        let mut msg = parse(wire);
        let n = proxy_subset(&msg);
        let hs = msg.headers_mut();
        hs.push_front(Header::Via(Via::new(NEW_VIA)));
        hs.push(Header::RecordRoute(RecordRoute::new(NEW_RR)));
        (n, msg.to_bytes())
    }

    pub fn view(wire: &[u8]) -> ProxyView {
        let msg = parse(wire);
        let via = msg.top_via_header().expect("Via").typed().expect("Via");
        let cseq = msg.cseq_header().expect("CSeq").typed().expect("CSeq");
        ProxyView {
            top_via_branch: via.branch().map(|b| b.to_string()),
            from_tag: msg
                .from_header()
                .expect("From")
                .tag()
                .expect("tag")
                .map(|t| t.to_string()),
            to_tag: msg
                .to_header()
                .expect("To")
                .tag()
                .expect("tag")
                .map(|t| t.to_string()),
            call_id: msg.call_id_header().expect("Call-ID").value().to_string(),
            cseq: cseq.seq,
            cseq_method: cseq.method.to_string(),
            max_forwards: msg
                .max_forwards_header()
                .expect("MF")
                .value()
                .trim()
                .parse()
                .expect("MF"),
            routes: msg
                .typed_route_headers()
                .expect("Route")
                .into_iter()
                .map(|r| r.uri.to_string())
                .collect(),
            contacts: msg
                .typed_contact_headers()
                .expect("Contact")
                .into_iter()
                .map(|c| c.uri.to_string())
                .collect(),
        }
    }
}
