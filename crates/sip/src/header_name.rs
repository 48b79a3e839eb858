//! Header names: the ones rsips understands as an enum, compact forms mapped at parse time
//! (RFC 3261 §7.3.3 and the IANA compact-form registry), everything else as [`HeaderName::Other`].

use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ; )*) => {
        /// A header field name. Comparison of names is case-insensitive; compact forms
        /// (`v`, `f`, `t`, `i`, `m`, `l`, `c`, `k`, `s`, `e`, `o`, `u`, `r`, `b`, `x`, `y`, `a`, `j`, `d`)
        /// parse to the same variant as their long form.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $( #[doc = $canon] $variant, )*
            /// Any other header; its name is kept in the message as written.
            Other,
        }

        impl HeaderName {
            /// The canonical spelling of the long form, `None` for [`HeaderName::Other`].
            pub fn as_str(self) -> Option<&'static str> {
                match self {
                    $( HeaderName::$variant => Some($canon), )*
                    HeaderName::Other => None,
                }
            }

            /// The compact form (RFC 3261 §7.3.3), when the header has one.
            pub fn compact(self) -> Option<char> {
                match self {
                    $( $( HeaderName::$variant => Some($compact), )? )*
                    _ => None,
                }
            }

            const LONG: &'static [(&'static str, HeaderName)] = &[ $( ($canon, HeaderName::$variant), )* ];

            fn lookup_compact(c: u8) -> HeaderName {
                $( $( if char::from(c.to_ascii_lowercase()) == $compact { return HeaderName::$variant; } )? )*
                HeaderName::Other
            }
        }
    };
}

header_names! {
    Via => "Via", 'v';
    From => "From", 'f';
    To => "To", 't';
    CallId => "Call-ID", 'i';
    CSeq => "CSeq";
    MaxForwards => "Max-Forwards";
    Contact => "Contact", 'm';
    Route => "Route";
    RecordRoute => "Record-Route";
    ContentLength => "Content-Length", 'l';
    ContentType => "Content-Type", 'c';
    ContentEncoding => "Content-Encoding", 'e';
    ContentDisposition => "Content-Disposition";
    ContentLanguage => "Content-Language";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    AuthenticationInfo => "Authentication-Info";
    Allow => "Allow";
    Supported => "Supported", 'k';
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Unsupported => "Unsupported";
    RSeq => "RSeq";
    RAck => "RAck";
    Event => "Event", 'o';
    AllowEvents => "Allow-Events", 'u';
    SubscriptionState => "Subscription-State";
    Path => "Path";
    Reason => "Reason";
    UserAgent => "User-Agent";
    Server => "Server";
    Date => "Date";
    Subject => "Subject", 's';
    ReferTo => "Refer-To", 'r';
    ReferredBy => "Referred-By", 'b';
    SessionExpires => "Session-Expires", 'x';
    MinSe => "Min-SE";
    Identity => "Identity", 'y';
    AcceptContact => "Accept-Contact", 'a';
    RejectContact => "Reject-Contact", 'j';
    RequestDisposition => "Request-Disposition", 'd';
    Accept => "Accept";
    AcceptEncoding => "Accept-Encoding";
    AcceptLanguage => "Accept-Language";
    AlertInfo => "Alert-Info";
    CallInfo => "Call-Info";
    ErrorInfo => "Error-Info";
    InReplyTo => "In-Reply-To";
    MimeVersion => "MIME-Version";
    Organization => "Organization";
    Priority => "Priority";
    ReplyTo => "Reply-To";
    RetryAfter => "Retry-After";
    Timestamp => "Timestamp";
    Warning => "Warning";
    Privacy => "Privacy";
    PAssertedIdentity => "P-Asserted-Identity";
    PPreferredIdentity => "P-Preferred-Identity";
    Replaces => "Replaces";
    ServiceRoute => "Service-Route";
    SipETag => "SIP-ETag";
    SipIfMatch => "SIP-If-Match";
}

const BUCKETS: usize = 256;
const EMPTY: u8 = u8::MAX;

/// A cheap case-insensitive hash of a header name: its length and first and last letters.
#[inline]
const fn bucket(name: &[u8]) -> usize {
    if name.is_empty() {
        return 0;
    }
    let first = name[0].to_ascii_lowercase() as usize;
    let last = name[name.len() - 1].to_ascii_lowercase() as usize;
    (name.len() * 31 + first * 7 + last * 3) % BUCKETS
}

/// Indexes into `HeaderName::LONG` by [`bucket`], built at compile time. A bucket holds at
/// most three names; a fourth collision fails the build.
const TABLE: [[u8; 3]; BUCKETS] = {
    let mut t = [[EMPTY; 3]; BUCKETS];
    let mut i = 0;
    while i < HeaderName::LONG.len() {
        let b = bucket(HeaderName::LONG[i].0.as_bytes());
        let mut k = 0;
        while t[b][k] != EMPTY {
            k += 1;
        }
        t[b][k] = i as u8;
        i += 1;
    }
    t
};

impl HeaderName {
    #[inline]
    fn lookup_long(name: &[u8]) -> HeaderName {
        let Some(slot) = TABLE.get(bucket(name)) else {
            return HeaderName::Other;
        };
        for &i in slot {
            match HeaderName::LONG.get(usize::from(i)) {
                // Peers nearly always write the canonical spelling: an exact compare first.
                Some((canon, h))
                    if canon.as_bytes() == name || canon.as_bytes().eq_ignore_ascii_case(name) =>
                {
                    return *h;
                }
                Some(_) => {}
                None => break,
            }
        }
        HeaderName::Other
    }

    /// Classifies a header name as written on the wire (already trimmed), case-insensitively.
    pub fn parse(name: &str) -> HeaderName {
        HeaderName::parse_bytes(name.as_bytes())
    }

    /// [`HeaderName::parse`] over bytes, as the message indexer sees them.
    #[inline]
    pub fn parse_bytes(name: &[u8]) -> HeaderName {
        match name {
            [c] => HeaderName::lookup_compact(*c),
            _ => HeaderName::lookup_long(name),
        }
    }

    /// Whether several values of this header may be combined in one line separated by commas
    /// (RFC 3261 §7.3.1). The authentication headers are not: their parameters use commas.
    pub fn is_list(self) -> bool {
        use HeaderName::*;
        matches!(
            self,
            Via | Contact
                | Route
                | RecordRoute
                | Path
                | ServiceRoute
                | Allow
                | Supported
                | Require
                | ProxyRequire
                | Unsupported
                | AllowEvents
                | Accept
                | AcceptEncoding
                | AcceptLanguage
                | AlertInfo
                | CallInfo
                | ErrorInfo
                | ContentEncoding
                | ContentLanguage
                | InReplyTo
                | Reason
                | Warning
                | AcceptContact
                | RejectContact
                | RequestDisposition
                | PAssertedIdentity
                | PPreferredIdentity
                | Privacy
        )
    }

    /// Headers that must appear at most once in a message (RFC 3261 §7.3.1, §20).
    pub fn is_singleton(self) -> bool {
        use HeaderName::*;
        matches!(
            self,
            From | To | CallId | CSeq | MaxForwards | ContentLength
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str().unwrap_or("<other>"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_compact_forms() {
        assert_eq!(HeaderName::parse("MaX-fOrWaRdS"), HeaderName::MaxForwards);
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("I"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("m"), HeaderName::Contact);
        assert_eq!(HeaderName::parse("l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::parse("k"), HeaderName::Supported);
        assert_eq!(HeaderName::parse("o"), HeaderName::Event);
        assert_eq!(HeaderName::parse("u"), HeaderName::AllowEvents);
        assert_eq!(HeaderName::parse("x"), HeaderName::SessionExpires);
        assert_eq!(HeaderName::parse("y"), HeaderName::Identity);
        assert_eq!(HeaderName::parse("a"), HeaderName::AcceptContact);
        assert_eq!(HeaderName::parse("j"), HeaderName::RejectContact);
        assert_eq!(HeaderName::parse("d"), HeaderName::RequestDisposition);
        assert_eq!(HeaderName::parse("b"), HeaderName::ReferredBy);
        assert_eq!(HeaderName::parse("r"), HeaderName::ReferTo);
        assert_eq!(HeaderName::parse("z"), HeaderName::Other);
        assert_eq!(HeaderName::parse("NewFangledHeader"), HeaderName::Other);
        assert_eq!(HeaderName::Via.compact(), Some('v'));
        assert_eq!(HeaderName::CSeq.compact(), None);
    }

    #[test]
    fn every_long_name_round_trips() {
        for (canon, h) in HeaderName::LONG {
            assert_eq!(HeaderName::parse(canon), *h, "{canon}");
            assert_eq!(
                HeaderName::parse(&canon.to_ascii_uppercase()),
                *h,
                "{canon}"
            );
            assert_eq!(
                HeaderName::parse(&canon.to_ascii_lowercase()),
                *h,
                "{canon}"
            );
            assert_eq!(h.as_str(), Some(*canon));
        }
    }

    #[test]
    fn list_and_singleton_classes() {
        assert!(HeaderName::Via.is_list());
        assert!(!HeaderName::Authorization.is_list());
        assert!(HeaderName::CSeq.is_singleton());
        assert!(!HeaderName::Via.is_singleton());
    }
}
