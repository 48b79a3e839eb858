//! One side of a B2B session as a SIP dialog (RFC 3261 §12): what rsips, as the UA on that
//! side, knows of it and the requests it builds inside it. No I/O here.

use sip::{HeaderName, SipMessage};

/// Which role rsips plays on a leg: the UAS of the caller's dialog (`b2b_server_new`) or the
/// UAC of a dialog it starts (`b2b_client_new`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Server => "server",
            Side::Client => "client",
        }
    }
}

/// Where a leg's dialog is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Created, its INVITE not sent yet (a client entity waiting for `b2b_bridge`).
    New,
    /// The initial INVITE is pending.
    Early,
    /// A 2xx answered the initial INVITE.
    Confirmed,
    /// A BYE ended it, or the initial INVITE failed.
    Ended,
}

impl State {
    /// The numbers OpenSIPS' `b2b_entities:list` shows (`B2B_NEW` … `B2B_TERMINATED`).
    pub fn code(self) -> u32 {
        match self {
            State::New => 0,
            State::Early => 2,
            State::Confirmed => 5,
            State::Ended => 8,
        }
    }
}

/// The dialog state of one leg, from rsips' point of view (`local` is rsips).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leg {
    pub callid: String,
    pub local_tag: String,
    /// Empty until the far side gave one (a client leg before the first tagged reply).
    pub remote_tag: String,
    /// Our address of record on this leg: a header value without its tag.
    pub local_uri: String,
    pub remote_uri: String,
    /// Where requests to the far side go: its Contact.
    pub remote_target: String,
    /// Route headers for requests to the far side, nearest first.
    pub route_set: Vec<String>,
    /// The last CSeq number we used / the far side used.
    pub local_cseq: u32,
    pub remote_cseq: u32,
    /// The Contact URI we give on this leg.
    pub contact: String,
    /// The last session description the far side sent (offer or answer).
    pub remote_sdp: Option<(String, String)>,
}

impl Leg {
    /// The leg rsips answers as UAS: from the caller's initial `invite`, with our To tag
    /// `local_tag` and `contact`.
    pub fn server(invite: &SipMessage, local_tag: &str, contact: &str) -> Result<Leg, String> {
        let callid = invite.call_id().map_err(|_| "no Call-ID")?.to_owned();
        let remote_tag = invite
            .from_tag()
            .ok()
            .flatten()
            .ok_or("no From tag")?
            .to_owned();
        let from = invite.header(HeaderName::From).ok_or("no From")?;
        let to = invite.header(HeaderName::To).ok_or("no To")?;
        let cseq = invite.cseq().map_err(|_| "no CSeq")?.seq;
        Ok(Leg {
            callid,
            local_tag: local_tag.to_owned(),
            remote_tag,
            local_uri: strip_tag(to),
            remote_uri: strip_tag(from),
            remote_target: contact_uri(invite).unwrap_or_default(),
            // RFC 3261 §12.1.1: the UAS keeps the Record-Route values in order.
            route_set: invite
                .values(HeaderName::RecordRoute)
                .map(|v| v.trim().to_owned())
                .collect(),
            local_cseq: 0,
            remote_cseq: cseq,
            contact: contact.to_owned(),
            remote_sdp: sdp_of(invite),
        })
    }

    /// A leg rsips starts as UAC towards `target` (the Request-URI of its INVITE), as
    /// `local_uri` (From, no tag) to `remote_uri` (To).
    pub fn client(
        callid: &str,
        local_tag: &str,
        local_uri: &str,
        remote_uri: &str,
        target: &str,
        contact: &str,
    ) -> Leg {
        Leg {
            callid: callid.to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag: String::new(),
            local_uri: local_uri.to_owned(),
            remote_uri: remote_uri.to_owned(),
            remote_target: target.to_owned(),
            route_set: Vec::new(),
            local_cseq: 0,
            remote_cseq: 0,
            contact: contact.to_owned(),
            remote_sdp: None,
        }
    }

    /// A client leg's dialog as a reply to its INVITE establishes it (RFC 3261 §12.1.2): the
    /// far tag, its Contact as the target, the Record-Route values reversed.
    pub fn confirm_from_reply(&mut self, reply: &SipMessage) {
        if let Some(tag) = reply.to_tag().ok().flatten() {
            self.remote_tag = tag.to_owned();
        }
        if let Some(c) = contact_uri(reply) {
            self.remote_target = c;
        }
        let rr: Vec<String> = reply
            .values(HeaderName::RecordRoute)
            .map(|v| v.trim().to_owned())
            .collect();
        if !rr.is_empty() {
            self.route_set = rr.into_iter().rev().collect();
        }
        if let Some(sdp) = sdp_of(reply) {
            self.remote_sdp = Some(sdp);
        }
    }

    /// A request the far side sent inside the dialog: its CSeq, a new target (a re-INVITE's
    /// Contact, RFC 3261 §12.2.2) and its session description.
    pub fn note_request(&mut self, req: &SipMessage) {
        if let Ok(c) = req.cseq() {
            self.remote_cseq = self.remote_cseq.max(c.seq);
        }
        if req.method() == Some(sip::Method::Invite)
            && let Some(c) = contact_uri(req)
        {
            self.remote_target = c;
        }
        if let Some(sdp) = sdp_of(req) {
            self.remote_sdp = Some(sdp);
        }
    }

    /// The next CSeq number of ours on this leg.
    pub fn next_cseq(&mut self) -> u32 {
        self.local_cseq += 1;
        self.local_cseq
    }

    /// The header block (no Via: tm adds ours) of a request of ours inside the dialog:
    /// Route, From, To, Call-ID, CSeq, Contact, Max-Forwards, then `extra` lines (each ending
    /// in CRLF). The Content-Type goes in `extra` when there is a body.
    pub fn request_headers(&self, method: &str, cseq: u32, extra: &str) -> String {
        let mut h = String::with_capacity(256 + extra.len());
        if !self.route_set.is_empty() {
            h.push_str("Route: ");
            h.push_str(&self.route_set.join(", "));
            h.push_str("\r\n");
        }
        push_tagged(&mut h, "From", &self.local_uri, &self.local_tag);
        push_tagged(&mut h, "To", &self.remote_uri, &self.remote_tag);
        h.push_str(&format!(
            "Call-ID: {}\r\nCSeq: {cseq} {method}\r\nContact: <{}>\r\n",
            self.callid, self.contact
        ));
        // A Max-Forwards passed from the other side wins over ours.
        let passed_mf = extra.lines().any(|l| {
            l.split(':')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case("Max-Forwards"))
        });
        if !passed_mf {
            h.push_str("Max-Forwards: 70\r\n");
        }
        h.push_str(extra);
        h
    }

    /// Where a request inside the dialog is sent first: the first Route (loose routing),
    /// else the target itself (`None`: the Request-URI).
    pub fn next_hop(&self) -> Option<String> {
        let first = self.route_set.first()?;
        let first = sip::split_values(first).next().unwrap_or(first);
        let uri = first.trim().trim_start_matches('<');
        Some(uri.split('>').next().unwrap_or(uri).to_owned())
    }
}

fn push_tagged(h: &mut String, name: &str, value: &str, tag: &str) {
    h.push_str(name);
    h.push_str(": ");
    h.push_str(value);
    if !tag.is_empty() {
        h.push_str(";tag=");
        h.push_str(tag);
    }
    h.push_str("\r\n");
}

/// A From/To header value without its `tag` parameter.
pub fn strip_tag(value: &str) -> String {
    let value = value.trim();
    // Parameters of the header start after the closing `>` of a bracketed URI.
    let params_at = value.rfind('>').map_or(0, |i| i + 1);
    let (head, params) = value.split_at(params_at);
    let mut out = head.to_owned();
    if params_at == 0 {
        // `sip:a@b;tag=x`: the header parameters are the URI's trailing ones.
        let mut parts = value.split(';');
        out = parts.next().unwrap_or("").to_owned();
        for p in parts.filter(|p| !is_tag(p)) {
            out.push(';');
            out.push_str(p);
        }
        return out;
    }
    for p in params.split(';').skip(1).filter(|p| !is_tag(p)) {
        out.push(';');
        out.push_str(p);
    }
    out
}

fn is_tag(param: &str) -> bool {
    param
        .split('=')
        .next()
        .is_some_and(|n| n.trim().eq_ignore_ascii_case("tag"))
}

/// The URI of a message's first Contact.
pub fn contact_uri(msg: &SipMessage) -> Option<String> {
    match msg.contacts().ok()? {
        sip::Contacts::List(l) => l.first().map(|c| c.uri().as_str().to_owned()),
        sip::Contacts::Star => None,
    }
}

/// `(Content-Type, body)` of a message with a body.
pub fn sdp_of(msg: &SipMessage) -> Option<(String, String)> {
    let body = msg.body();
    if body.is_empty() {
        return None;
    }
    let ct = msg
        .header(HeaderName::ContentType)
        .unwrap_or("application/sdp")
        .trim()
        .to_owned();
    Some((ct, String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SipMessage {
        SipMessage::parse(bytes::Bytes::from(text.replace('\n', "\r\n"))).unwrap()
    }

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1
Record-Route: <sip:p1.example.com;lr>
Record-Route: <sip:p2.example.com;lr>
From: \"Alice\" <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>
Call-ID: c1@10.0.0.1
CSeq: 7 INVITE
Contact: <sip:alice@10.0.0.1:5060>
Content-Type: application/sdp
Content-Length: 5

v=0
";

    #[test]
    fn server_leg_takes_the_caller_dialog() {
        let leg = Leg::server(&parse(INVITE), "B2B.1.2.3", "sip:127.0.0.1:5060").unwrap();
        assert_eq!(leg.callid, "c1@10.0.0.1");
        assert_eq!(leg.remote_tag, "a1");
        assert_eq!(leg.remote_uri, "\"Alice\" <sip:alice@example.com>");
        assert_eq!(leg.local_uri, "<sip:bob@example.com>");
        assert_eq!(leg.remote_target, "sip:alice@10.0.0.1:5060");
        assert_eq!(leg.remote_cseq, 7);
        // The UAS keeps the route set in the order of the Record-Routes.
        assert_eq!(
            leg.route_set,
            vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(leg.next_hop().as_deref(), Some("sip:p1.example.com;lr"));
        assert_eq!(
            leg.remote_sdp,
            Some(("application/sdp".into(), "v=0\r\n".into()))
        );
    }

    #[test]
    fn requests_towards_the_caller_swap_the_dialog() {
        let mut leg = Leg::server(&parse(INVITE), "B2B.1.2.3", "sip:127.0.0.1:5060").unwrap();
        let n = leg.next_cseq();
        let h = leg.request_headers("BYE", n, "");
        assert!(h.starts_with("Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"));
        assert!(
            h.contains("From: <sip:bob@example.com>;tag=B2B.1.2.3\r\n"),
            "{h}"
        );
        assert!(
            h.contains("To: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"),
            "{h}"
        );
        assert!(h.contains("CSeq: 1 BYE\r\n"));
        assert!(h.contains("Contact: <sip:127.0.0.1:5060>\r\n"));
        assert_eq!(leg.next_cseq(), 2);
    }

    #[test]
    fn client_leg_is_set_up_by_the_answer() {
        let mut leg = Leg::client(
            "B2B.9",
            "B2B.t",
            "<sip:alice@example.com>",
            "<sip:bob@example.com>",
            "sip:bob@10.0.0.2",
            "sip:127.0.0.1:5060",
        );
        assert_eq!(leg.next_hop(), None);
        let ok = parse(
            "SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK2
Record-Route: <sip:q1;lr>
Record-Route: <sip:q2;lr>
From: <sip:alice@example.com>;tag=B2B.t
To: <sip:bob@example.com>;tag=b7
Call-ID: B2B.9
CSeq: 1 INVITE
Contact: <sip:bob@10.0.0.9:5070>
Content-Length: 0

",
        );
        leg.confirm_from_reply(&ok);
        assert_eq!(leg.remote_tag, "b7");
        assert_eq!(leg.remote_target, "sip:bob@10.0.0.9:5070");
        // The UAC reverses the Record-Routes.
        assert_eq!(leg.route_set, vec!["<sip:q2;lr>", "<sip:q1;lr>"]);
        assert_eq!(leg.remote_sdp, None);
    }

    #[test]
    fn tags_come_off_header_values() {
        assert_eq!(strip_tag("<sip:a@b>;tag=1;x=2"), "<sip:a@b>;x=2");
        assert_eq!(
            strip_tag("\"A;B\" <sip:a@b;tag=u>;TAG=1"),
            "\"A;B\" <sip:a@b;tag=u>"
        );
        assert_eq!(strip_tag("sip:a@b;tag=1"), "sip:a@b");
        assert_eq!(strip_tag("<sip:a@b>"), "<sip:a@b>");
    }
}
