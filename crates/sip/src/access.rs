//! Typed, lazily parsed access to a [`SipMessage`]'s start line and headers. Nothing is cached:
//! each accessor finds its header in the index and parses only that value.

use crate::error::{ParseError, Result};
use crate::header_name::HeaderName;
use crate::headers::{
    AuthHeader, CSeq, Contacts, Event, MediaType, NameAddr, RAck, Reason, SipDate, Via,
};
use crate::message::{HeaderEntry, SipMessage, StartLine};
use crate::method::Method;
use crate::params::skip_lws;
use crate::scan::{CommaSplit, is_token_str, parse_u32};
use crate::uri::Uri;

/// One header line as seen through [`SipMessage::headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    /// Position in the header index, for edits.
    pub index: usize,
    pub name: HeaderName,
    /// The name as written (`v`, `VIA`, `X-Custom`).
    pub name_str: &'a str,
    /// The value with outer white space trimmed; folded lines keep their CR LF.
    pub value: &'a str,
}

/// "Missing X header": a fixed reason phrase per header, so errors stay small.
fn missing(name: &'static str) -> ParseError {
    ParseError::malformed(match name {
        "Via" => "Missing Via header",
        "From" => "Missing From header",
        "To" => "Missing To header",
        "Call-ID" => "Missing Call-ID header",
        "CSeq" => "Missing CSeq header",
        _ => "Missing header",
    })
}

/// "Bad X header".
fn bad(name: &'static str) -> ParseError {
    ParseError::malformed(match name {
        "From" => "Bad From header",
        "To" => "Bad To header",
        "Call-ID" => "Bad Call-ID header",
        "Max-Forwards" => "Bad Max-Forwards header",
        "Content-Length" => "Bad Content-Length header",
        "Expires" => "Bad Expires header",
        "Min-Expires" => "Bad Min-Expires header",
        "RSeq" => "Bad RSeq header",
        "Contact" => "Bad Contact header",
        _ => "Bad header",
    })
}

/// Which tag [`SipMessage::remember_tag`] keeps.
pub(crate) const FROM_TAG: usize = 0;
pub(crate) const TO_TAG: usize = 1;

impl SipMessage {
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method; `None` for responses.
    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The request method as written.
    pub fn method_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { method_span, .. } => Some(self.str_at(method_span)),
            StartLine::Response { .. } => None,
        }
    }

    /// The response status code; `None` for requests.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response (may be empty, may be UTF-8).
    pub fn reason_phrase(&self) -> Option<&str> {
        match self.start {
            StartLine::Response { reason_span, .. } => Some(self.str_at(reason_span)),
            StartLine::Request { .. } => None,
        }
    }

    /// The Request-URI text.
    pub fn request_uri_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { uri_span, .. } => Some(self.str_at(uri_span)),
            StartLine::Response { .. } => None,
        }
    }

    /// The parsed Request-URI.
    pub fn request_uri(&self) -> Result<Uri<'_>> {
        let s = self
            .request_uri_str()
            .ok_or(ParseError::malformed("Not a request"))?;
        Uri::parse(s).map_err(|_| ParseError::malformed("Bad Request-URI"))
    }

    /// Every header line in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderRef<'_>> + '_ {
        self.headers
            .iter()
            .enumerate()
            .map(|(index, h)| self.header_ref(index, h))
    }

    fn header_ref<'a>(&'a self, index: usize, h: &HeaderEntry) -> HeaderRef<'a> {
        HeaderRef {
            index,
            name: h.name,
            name_str: self.str_at(h.name_span),
            value: self.value_of(h),
        }
    }

    /// The value of the first header line named `name`.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| self.value_of(h))
    }

    /// The value of the first header with this name as text, compact forms and case ignored
    /// (`header_str("X-Foo")`, `header_str("v")`).
    pub fn header_str<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.header_lines_str(name).next()
    }

    /// All header lines with this name as text.
    pub fn header_lines_str<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let known = HeaderName::parse(name);
        self.headers
            .iter()
            .filter(move |h| {
                if known == HeaderName::Other {
                    h.name == HeaderName::Other
                        && self.str_at(h.name_span).eq_ignore_ascii_case(name)
                } else {
                    h.name == known
                }
            })
            .map(|h| self.value_of(h))
    }

    /// How many header lines have this name.
    pub fn header_count(&self, name: HeaderName) -> usize {
        self.headers.iter().filter(|h| h.name == name).count()
    }

    /// Every value of `name`: each line, split at commas for list headers (RFC 3261 §7.3.1).
    pub fn values(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        let split = name.is_list();
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .flat_map(move |h| {
                let v = self.value_of(h);
                let (list, whole) = if split {
                    (Some(CommaSplit::new(v)), None)
                } else {
                    (None, Some(v))
                };
                list.into_iter().flatten().chain(whole)
            })
    }

    fn single(&self, name: HeaderName, label: &'static str) -> Result<&str> {
        self.header(name).ok_or_else(|| missing(label))
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Result<Via<'_>> {
        if let Some(Some(spans)) = self.top_via.get() {
            return Ok(Via::from_spans(&self.text, spans));
        }
        let via = self.vias().next().ok_or_else(|| missing("Via"))?;
        self.remember_top_via(via.as_ref().ok());
        via
    }

    /// Keeps what the top Via parsed to (or that it did not parse) for the next `top_via`.
    pub(crate) fn remember_top_via(&self, via: Option<&Via<'_>>) {
        if self.top_via.get().is_none() {
            let _ = self.top_via.set(via.and_then(|v| v.spans(&self.text)));
        }
    }

    /// All Via values, top first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>>> + '_ {
        self.parsed_values(HeaderName::Via)
    }

    /// The values of `name` as [`SipMessage::values`] cuts them, each parsed by `parse`. In a
    /// comma-separated line, `scan` reads a value and finds where it ends in the same pass (a
    /// `,` or the end of the line must follow), so the line is not first scanned for commas and
    /// then parsed; when `scan` declines, the value is cut as `values` does and `parse` reports
    /// on it.
    fn parsed_values<'a, T: ListValue<'a>>(&'a self, name: HeaderName) -> ParsedValues<'a, T> {
        ParsedValues {
            msg: self,
            lines: self.headers.iter(),
            name,
            rest: None,
            _value: std::marker::PhantomData,
        }
    }

    pub fn from_header(&self) -> Result<NameAddr<'_>> {
        NameAddr::parse(self.single(HeaderName::From, "From")?).map_err(|_| bad("From"))
    }

    pub fn to_header(&self) -> Result<NameAddr<'_>> {
        NameAddr::parse(self.single(HeaderName::To, "To")?).map_err(|_| bad("To"))
    }

    /// The From tag (`None` when the From header has none).
    pub fn from_tag(&self) -> Result<Option<&str>> {
        self.tag_of(FROM_TAG)
    }

    /// The To tag (`None` for an out-of-dialog request).
    pub fn to_tag(&self) -> Result<Option<&str>> {
        self.tag_of(TO_TAG)
    }

    /// A From or To tag: remembered after the first read (see [`SipMessage::remember_tag`]).
    fn tag_of(&self, which: usize) -> Result<Option<&str>> {
        if let Some(known) = self.tags.get(which).and_then(std::sync::OnceLock::get) {
            return Ok(known.map(|s| self.str_at(s)));
        }
        let header = if which == FROM_TAG {
            self.from_header()?
        } else {
            self.to_header()?
        };
        let tag = header.tag();
        self.remember_tag(which, tag);
        Ok(tag)
    }

    /// Keeps the tag a From (`FROM_TAG`) or To (`TO_TAG`) header was read with, when it is a
    /// slice of the message text.
    pub(crate) fn remember_tag(&self, which: usize, tag: Option<&str>) {
        let span = match tag {
            None => None,
            Some(t) => {
                let Some(start) = (t.as_ptr() as usize).checked_sub(self.text.as_ptr() as usize)
                else {
                    return;
                };
                if start + t.len() > self.text.len() {
                    return;
                }
                Some(crate::message::Span {
                    start: start as u32,
                    end: (start + t.len()) as u32,
                })
            }
        };
        if let Some(slot) = self.tags.get(which) {
            let _ = slot.set(span);
        }
    }

    /// Call-ID (RFC 3261 §20.8): `word [ "@" word ]`, no white space.
    pub fn call_id(&self) -> Result<&str> {
        let v = self.single(HeaderName::CallId, "Call-ID")?;
        if v.is_empty() || v.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("Call-ID"));
        }
        Ok(v)
    }

    pub fn cseq(&self) -> Result<CSeq<'_>> {
        CSeq::parse(self.single(HeaderName::CSeq, "CSeq")?)
    }

    /// Max-Forwards; `None` when absent (RFC 2543 peers).
    pub fn max_forwards(&self) -> Result<Option<u32>> {
        self.header(HeaderName::MaxForwards)
            .map(|v| parse_u32(v).ok_or_else(|| bad("Max-Forwards")))
            .transpose()
    }

    /// Content-Length as written; `None` when absent.
    pub fn content_length(&self) -> Result<Option<u32>> {
        self.header(HeaderName::ContentLength)
            .map(|v| parse_u32(v).ok_or_else(|| bad("Content-Length")))
            .transpose()
    }

    /// Expires header (RFC 3261 §20.19).
    pub fn expires(&self) -> Result<Option<u32>> {
        self.header(HeaderName::Expires)
            .map(|v| parse_u32(v).ok_or_else(|| bad("Expires")))
            .transpose()
    }

    /// Min-Expires header (RFC 3261 §20.23).
    pub fn min_expires(&self) -> Result<Option<u32>> {
        self.header(HeaderName::MinExpires)
            .map(|v| parse_u32(v).ok_or_else(|| bad("Min-Expires")))
            .transpose()
    }

    /// RSeq (RFC 3262 §7.1).
    pub fn rseq(&self) -> Result<Option<u32>> {
        self.header(HeaderName::RSeq)
            .map(|v| parse_u32(v).ok_or_else(|| bad("RSeq")))
            .transpose()
    }

    pub fn rack(&self) -> Result<Option<RAck<'_>>> {
        self.header(HeaderName::RAck).map(RAck::parse).transpose()
    }

    pub fn content_type(&self) -> Result<Option<MediaType<'_>>> {
        self.header(HeaderName::ContentType)
            .map(MediaType::parse)
            .transpose()
    }

    pub fn event(&self) -> Result<Option<Event<'_>>> {
        self.header(HeaderName::Event).map(Event::parse).transpose()
    }

    pub fn date(&self) -> Result<Option<SipDate>> {
        self.header(HeaderName::Date)
            .map(SipDate::parse)
            .transpose()
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.header(HeaderName::UserAgent)
    }

    pub fn server(&self) -> Option<&str> {
        self.header(HeaderName::Server)
    }

    /// Contact set: `*` or the list of addresses (all Contact lines).
    pub fn contacts(&self) -> Result<Contacts<'_>> {
        let mut list = Vec::new();
        let mut star = false;
        for v in self.values(HeaderName::Contact) {
            if v == "*" {
                star = true;
            } else {
                list.push(NameAddr::parse(v).map_err(|_| bad("Contact"))?);
            }
        }
        match (star, list.is_empty()) {
            (true, true) => Ok(Contacts::Star),
            (true, false) => Err(bad("Contact")),
            (false, _) => Ok(Contacts::List(list)),
        }
    }

    /// Address-list headers one value at a time: Contact, Route, Record-Route, Path …
    pub fn addresses(&self, name: HeaderName) -> impl Iterator<Item = Result<NameAddr<'_>>> + '_ {
        self.parsed_values(name)
    }

    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>>> + '_ {
        self.addresses(HeaderName::Route)
    }

    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>>> + '_ {
        self.addresses(HeaderName::RecordRoute)
    }

    pub fn paths(&self) -> impl Iterator<Item = Result<NameAddr<'_>>> + '_ {
        self.addresses(HeaderName::Path)
    }

    /// Option-tag and method lists (Allow, Supported, Require, Proxy-Require, Unsupported …):
    /// each element must be a token.
    pub fn tokens(&self, name: HeaderName) -> impl Iterator<Item = Result<&str>> + '_ {
        self.values(name).filter(|v| !v.is_empty()).map(move |v| {
            if is_token_str(v) {
                Ok(v)
            } else {
                Err(ParseError::malformed("Bad token list"))
            }
        })
    }

    /// Authentication headers of one kind (Authorization, Proxy-Authorization,
    /// WWW-Authenticate, Proxy-Authenticate), one per line.
    pub fn auth_headers(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<AuthHeader<'_>>> + '_ {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| AuthHeader::parse(self.value_of(h)))
    }

    pub fn reasons(&self) -> impl Iterator<Item = Result<Reason<'_>>> + '_ {
        self.values(HeaderName::Reason).map(Reason::parse)
    }
}

/// A value of a list header, read by [`SipMessage::parsed_values`]: `scan` reads the value a
/// text starts with and where it ends (`None` for anything it leaves to `parse`), `parse` is
/// the reference for one value already cut from its list. Static functions rather than
/// function pointers, so the readers are inlined into the iterator and the values built in
/// place.
trait ListValue<'a>: Copy + PartialEq + std::fmt::Debug {
    fn scan(s: &'a str) -> Option<(Self, usize)>;
    fn parse(s: &'a str) -> Result<Self>;
}

impl<'a> ListValue<'a> for NameAddr<'a> {
    #[inline]
    fn scan(s: &'a str) -> Option<(Self, usize)> {
        NameAddr::scan(s)
    }
    fn parse(s: &'a str) -> Result<Self> {
        NameAddr::parse(s)
    }
}

impl<'a> ListValue<'a> for Via<'a> {
    #[inline]
    fn scan(s: &'a str) -> Option<(Self, usize)> {
        Via::scan(s).ok()
    }
    fn parse(s: &'a str) -> Result<Self> {
        Via::parse(s)
    }
}

/// The iterator of [`SipMessage::parsed_values`].
struct ParsedValues<'a, T> {
    msg: &'a SipMessage,
    lines: std::slice::Iter<'a, HeaderEntry>,
    name: HeaderName,
    /// The part of a comma-separated line not yet read, as [`CommaSplit`] keeps it.
    rest: Option<&'a str>,
    _value: std::marker::PhantomData<T>,
}

impl<'a, T: ListValue<'a>> ParsedValues<'a, T> {
    /// The next value of the line remainder `s`; leaves `rest` where [`CommaSplit`] would.
    fn element(&mut self, s: &'a str) -> Result<T> {
        let b = s.as_bytes();
        let start = skip_lws(b, 0);
        if let Some((v, n)) = s.get(start..).and_then(T::scan) {
            let after = skip_lws(b, start + n);
            let rest = match b.get(after) {
                None => Some(None),
                Some(b',') => Some(s.get(after + 1..)),
                Some(_) => None,
            };
            if let Some(rest) = rest {
                debug_assert_eq!(
                    {
                        let mut split = CommaSplit::new(s);
                        let first = split.next().map(T::parse);
                        (first, split.remainder())
                    },
                    (Some(Ok(v)), rest),
                    "one-pass list value in {s:?}"
                );
                self.rest = rest;
                return Ok(v);
            }
        }
        let mut split = CommaSplit::new(s);
        let value = split.next().unwrap_or("");
        self.rest = split.remainder();
        T::parse(value)
    }
}

impl<'a, T: ListValue<'a>> Iterator for ParsedValues<'a, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if let Some(s) = self.rest.take() {
            return Some(self.element(s));
        }
        let name = self.name;
        let h = self.lines.find(|h| h.name == name)?;
        let v = self.msg.value_of(h);
        if name.is_list() {
            Some(self.element(v))
        } else {
            Some(T::parse(v))
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use crate::headers::{name_addr_like, via_like};
    use crate::{HeaderName, NameAddr, SipMessage, Via};

    /// The values joined by the separators, starting with separator `skip`.
    fn join(values: &[String], seps: &[String], skip: usize) -> String {
        let mut line = String::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                line.push_str(seps.get(skip + i).map_or(",", String::as_str));
            }
            line.push_str(v);
        }
        line
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Reading list values in one pass cuts and parses them exactly as splitting at commas
        /// and then parsing each does, errors and empty elements included.
        #[test]
        fn one_pass_lists_match_split_then_parse(
            addrs in proptest::collection::vec(name_addr_like(), 1..4),
            vias in proptest::collection::vec(via_like(), 1..3),
            seps in proptest::collection::vec("[ \t]{0,2},[ \t]{0,2}|,,", 4),
        ) {
            let (addrs, vias, seps): (Vec<String>, Vec<String>, Vec<String>) = (addrs, vias, seps);
            let wire = format!(
                "OPTIONS sip:x SIP/2.0\r\nVia: {}\r\nv: {}\r\nRoute: {}\r\nContact: {}\r\n\r\n",
                join(&vias, &seps, 0),
                join(&vias, &seps, 1),
                join(&addrs, &seps, 0),
                join(&addrs, &seps, 2),
            );
            let Ok(m) = SipMessage::parse(Bytes::from(wire)) else {
                return Ok(());
            };
            for name in [HeaderName::Route, HeaderName::Contact] {
                let got: Vec<_> = m.addresses(name).collect();
                let want: Vec<_> = m.values(name).map(NameAddr::parse).collect();
                prop_assert_eq!(got, want);
            }
            let got: Vec<_> = m.vias().collect();
            let want: Vec<_> = m.values(HeaderName::Via).map(Via::parse).collect();
            prop_assert_eq!(got, want);
        }

        /// The From and To tags a message remembers (from `check` or a first read) are the
        /// tags a fresh parse of the headers gives.
        #[test]
        fn the_remembered_tags_are_the_parsed_ones(
            from in name_addr_like(),
            to in name_addr_like(),
            checked in any::<bool>(),
        ) {
            let (from, to): (String, String) = (from, to);
            let wire = format!(
                "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: {from}\r\n\
                 To: {to}\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n"
            );
            let Ok(m) = SipMessage::parse(Bytes::from(wire)) else {
                return Ok(());
            };
            let fresh_from = NameAddr::parse(m.header(HeaderName::From).unwrap_or("")).map(|n| n.tag());
            let fresh_to = NameAddr::parse(m.header(HeaderName::To).unwrap_or("")).map(|n| n.tag());
            if checked {
                let _ = m.check();
            }
            for _ in 0..2 {
                prop_assert_eq!(m.from_tag().ok(), fresh_from.clone().ok());
                prop_assert_eq!(m.to_tag().ok(), fresh_to.clone().ok());
            }
        }

        /// The top Via a message remembers (from `check` or a first `top_via`) is the Via a
        /// fresh parse gives, parts and errors alike.
        #[test]
        fn the_remembered_top_via_is_the_parsed_one(
            via in via_like(),
            lead in "|\r\n\r\n",
            checked in any::<bool>(),
        ) {
            let wire = format!(
                "{lead}OPTIONS sip:x SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@b>;tag=1\r\n\
                 To: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n"
            );
            let Ok(m) = SipMessage::parse(Bytes::from(wire)) else {
                return Ok(());
            };
            let fresh = m.vias().next().expect("one Via");
            if checked {
                let _ = m.check();
            }
            let first = m.top_via();
            let again = m.top_via();
            prop_assert_eq!(&first, &fresh);
            prop_assert_eq!(&again, &fresh);
            if let (Ok(a), Ok(b)) = (&again, &fresh) {
                prop_assert_eq!(a.host().kind(), b.host().kind());
                prop_assert_eq!(a.params().as_str(), b.params().as_str());
                prop_assert_eq!(a.rport(), b.rport());
                prop_assert_eq!(a.branch(), b.branch());
            }
        }
    }
}
