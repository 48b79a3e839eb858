//! Shared inputs and the rsips side of the benchmarks. The peer parsers are dev-dependencies,
//! adapted in `peers.rs` (included by the bench and by the test that checks all three agree).

pub mod inputs;
pub mod script;

use bytes::Bytes;
use sip::{Edits, HeaderName, SipMessage};

/// The top Via and Record-Route a proxy adds when it forwards.
pub const NEW_VIA: &str = "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnew1";
pub const NEW_RR: &str = "<sip:10.0.0.1;lr>";

/// What a proxy reads from a request, copied out so the three parsers can be compared in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyView {
    pub top_via_branch: Option<String>,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: String,
    pub max_forwards: u32,
    pub routes: Vec<String>,
    pub contacts: Vec<String>,
}

/// Parse and read the proxy subset, borrowing only; returns a checksum so nothing is optimised
/// away. This is the timed path.
pub fn rsips_proxy_subset(msg: &SipMessage) -> usize {
    let via = msg.top_via().expect("Via");
    let mut n = via.branch().map_or(0, str::len);
    n += msg.from_tag().expect("From").map_or(0, str::len);
    n += msg.to_tag().expect("To").map_or(0, str::len);
    n += msg.call_id().expect("Call-ID").len();
    let cseq = msg.cseq().expect("CSeq");
    n += cseq.seq as usize + cseq.method_str.len();
    n += msg.max_forwards().expect("Max-Forwards").unwrap_or(0) as usize;
    for r in msg.routes() {
        n += r.expect("Route").uri().as_str().len();
    }
    for c in msg.addresses(HeaderName::Contact) {
        n += c.expect("Contact").uri().as_str().len();
    }
    n
}

/// Parse, read the proxy subset, and serialize with a new Via and Record-Route.
pub fn rsips_forward(wire: &[u8]) -> (usize, Vec<u8>) {
    let msg = SipMessage::parse(Bytes::copy_from_slice(wire)).expect("parse");
    let n = rsips_proxy_subset(&msg);
    let mut e = Edits::new();
    e.add_first("Via", NEW_VIA);
    e.add_record_route(&msg, NEW_RR);
    (n, msg.serialize(&e))
}

/// The proxy subset copied out, for correctness checks.
pub fn rsips_view(wire: &[u8]) -> ProxyView {
    let msg = SipMessage::parse(Bytes::copy_from_slice(wire)).expect("parse");
    let cseq = msg.cseq().expect("CSeq");
    ProxyView {
        top_via_branch: msg.top_via().expect("Via").branch().map(str::to_owned),
        from_tag: msg.from_tag().expect("From").map(str::to_owned),
        to_tag: msg.to_tag().expect("To").map(str::to_owned),
        call_id: msg.call_id().expect("Call-ID").to_owned(),
        cseq: cseq.seq,
        cseq_method: cseq.method_str.to_owned(),
        max_forwards: msg.max_forwards().expect("Max-Forwards").unwrap_or(0),
        routes: msg
            .routes()
            .map(|r| r.expect("Route").uri().as_str().to_owned())
            .collect(),
        contacts: msg
            .addresses(HeaderName::Contact)
            .map(|c| c.expect("Contact").uri().as_str().to_owned())
            .collect(),
    }
}
