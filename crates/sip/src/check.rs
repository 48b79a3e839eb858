//! Message validation beyond framing: the checks a proxy applies before routing
//! (RFC 3261 §8.2, §16.3) so that a malformed request gets a 400 naming the fault.

use crate::error::{ErrorKind, ParseError, Result};
use crate::header_name::HeaderName;
use crate::headers::Contacts;
use crate::message::SipMessage;
use crate::uri::Scheme;

impl SipMessage {
    /// Validates what every SIP element relies on: the Request-URI (416 for schemes we cannot
    /// route, 400 for `?headers` in it), the mandatory headers (Via, From, To, Call-ID, CSeq)
    /// and their syntax, single occurrence of From/To/Call-ID/CSeq/Max-Forwards/Content-Length,
    /// the CSeq method against the request method, Max-Forwards and every Contact. In a
    /// response, From and To need only be present, and Contact is not looked at.
    ///
    /// Errors in responses carry [`crate::Reaction::Drop`].
    pub fn check(&self) -> Result<()> {
        self.check_inner()
            .map_err(|e| e.in_response(!self.is_request()))
    }

    fn check_inner(&self) -> Result<()> {
        if self.is_request() {
            let uri = self.request_uri()?;
            match uri.scheme() {
                Scheme::Sip | Scheme::Sips | Scheme::Tel => {}
                Scheme::Other(_) => {
                    return Err(ParseError::new(
                        ErrorKind::UnsupportedUriScheme,
                        "Unsupported URI Scheme",
                    ));
                }
            }
            if uri.headers().is_some() {
                return Err(ParseError::malformed("Headers in Request-URI"));
            }
        }
        // One pass over the header lines counts what must appear once (or at least once).
        const ONCE: [(HeaderName, &str); 6] = [
            (HeaderName::From, "Duplicate From header"),
            (HeaderName::To, "Duplicate To header"),
            (HeaderName::CallId, "Duplicate Call-ID header"),
            (HeaderName::CSeq, "Duplicate CSeq header"),
            (HeaderName::MaxForwards, "Duplicate Max-Forwards header"),
            (HeaderName::ContentLength, "Duplicate Content-Length header"),
        ];
        let mut seen = [0usize; ONCE.len()];
        let mut vias = 0usize;
        for h in &self.headers {
            if h.name == HeaderName::Via {
                vias += 1;
            } else if let Some(i) = ONCE.iter().position(|(n, _)| *n == h.name)
                && let Some(count) = seen.get_mut(i)
            {
                *count += 1;
            }
        }
        if let Some(((_, reason), _)) = ONCE.iter().zip(seen).find(|(_, n)| *n > 1) {
            return Err(ParseError::malformed(reason));
        }
        if vias == 0 {
            return Err(ParseError::malformed("Missing Via header"));
        }
        let mut vias = self.vias();
        if let Some(top) = vias.next() {
            self.remember_top_via(top.as_ref().ok());
            top?;
        }
        for via in vias {
            via?;
        }
        if self.is_request() {
            let from = self.from_header()?;
            self.remember_tag(crate::access::FROM_TAG, from.tag());
            let to = self.to_header()?;
            self.remember_tag(crate::access::TO_TAG, to.tag());
        } else {
            // A response is relayed on its Vias, CSeq and Call-ID; like OpenSIPS, a proxy does
            // not judge the syntax of its From, To or Contact (a UA's business end to end),
            // but they must be there.
            if seen.first() == Some(&0) {
                return Err(ParseError::malformed("Missing From header"));
            }
            if seen.get(1) == Some(&0) {
                return Err(ParseError::malformed("Missing To header"));
            }
        }
        self.call_id()?;
        let cseq = self.cseq()?;
        if self.method_str().is_some_and(|m| m != cseq.method_str) {
            return Err(ParseError::malformed(
                "CSeq method does not match request method",
            ));
        }
        self.max_forwards()?;
        if self.is_request() {
            let star = matches!(self.contacts()?, Contacts::Star);
            if star && self.method() != Some(crate::Method::Register) {
                return Err(ParseError::malformed("Bad Contact header"));
            }
        }
        Ok(())
    }
}
