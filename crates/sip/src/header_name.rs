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

/// Names longer than this are not in the table (the longest is `P-Preferred-Identity`).
const MAX_LONG: usize = 24;

/// A name as three overlapping little-endian words that together cover every byte: 8-byte
/// windows at the start, middle and end for 8 to [`MAX_LONG`] bytes, 4-byte ones at the start
/// and end for 4 to 7, 2-byte ones for 2 or 3. Two names of the same length are equal exactly
/// when their words are. `const`, to fold the table at compile time; [`words`] is its
/// run-time twin.
const fn const_words(b: &[u8]) -> [u64; 3] {
    const fn load(b: &[u8], at: usize, width: usize) -> u64 {
        let mut w = 0u64;
        let mut k = 0;
        while k < width {
            w |= (b[at + k] as u64) << (8 * k);
            k += 1;
        }
        w
    }
    let n = b.len();
    if n >= 8 {
        [load(b, 0, 8), load(b, (n - 8) / 2, 8), load(b, n - 8, 8)]
    } else if n >= 4 {
        [load(b, 0, 4), load(b, n - 4, 4), 0]
    } else if n >= 2 {
        [load(b, 0, 2), load(b, n - 2, 2), 0]
    } else {
        [0; 3]
    }
}

/// [`const_words`] with single loads.
#[inline]
fn words(b: &[u8]) -> [u64; 3] {
    fn load<const W: usize>(b: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        if let (Some(dst), Some(src)) = (w.get_mut(..W), b.get(at..at + W)) {
            dst.copy_from_slice(src);
        }
        u64::from_le_bytes(w)
    }
    let n = b.len();
    if n >= 8 {
        [
            load::<8>(b, 0),
            load::<8>(b, (n - 8) / 2),
            load::<8>(b, n - 8),
        ]
    } else if n >= 4 {
        [load::<4>(b, 0), load::<4>(b, n - 4), 0]
    } else if n >= 2 {
        [load::<2>(b, 0), load::<2>(b, n - 2), 0]
    } else {
        [0; 3]
    }
}

/// A known name folded for comparison: its words in lower case, and masks with `0x20` over the
/// letters. A name matches when `word | mask == lower` for each word: at a letter only the case
/// bit may differ, everywhere else the byte must be equal — an exact case-insensitive compare in
/// three operations, without a call.
#[derive(Clone, Copy)]
struct Folded {
    len: usize,
    lower: [u64; 3],
    mask: [u64; 3],
    name: HeaderName,
}

const FOLDED: [Folded; HeaderName::LONG.len()] = {
    let mut t = [Folded {
        len: 0,
        lower: [0; 3],
        mask: [0; 3],
        name: HeaderName::Other,
    }; HeaderName::LONG.len()];
    let mut i = 0;
    while i < t.len() {
        let (canon, name) = HeaderName::LONG[i];
        let canon = canon.as_bytes();
        assert!(canon.len() <= MAX_LONG);
        let mut lower = [0u8; MAX_LONG];
        let mut mask = [0u8; MAX_LONG];
        let mut k = 0;
        while k < canon.len() {
            lower[k] = canon[k].to_ascii_lowercase();
            mask[k] = if canon[k].is_ascii_alphabetic() {
                0x20
            } else {
                0
            };
            k += 1;
        }
        let (lower, _) = lower.split_at(canon.len());
        let (mask, _) = mask.split_at(canon.len());
        t[i] = Folded {
            len: canon.len(),
            lower: const_words(lower),
            mask: const_words(mask),
            name,
        };
        i += 1;
    }
    t
};

impl HeaderName {
    #[inline]
    fn lookup_long(name: &[u8]) -> HeaderName {
        if name.len() > MAX_LONG {
            return HeaderName::Other;
        }
        let Some(slot) = TABLE.get(bucket(name)) else {
            return HeaderName::Other;
        };
        let w = words(name);
        for &i in slot {
            let Some(f) = FOLDED.get(usize::from(i)) else {
                break;
            };
            if f.len == name.len()
                && (w[0] | f.mask[0]) == f.lower[0]
                && (w[1] | f.mask[1]) == f.lower[1]
                && (w[2] | f.mask[2]) == f.lower[2]
            {
                return f.name;
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
    fn folded_compare_is_exact() {
        for near in [
            "Max\rForwards",
            "Max_Forwards",
            "Max-Forward5",
            "Max-Forwardz",
            "Ma\u{e4}Forwards",
            "Call_ID",
            "CSeq\0",
            "Vi",
            "P-Preferred-Identitx",
            "Content-Lengthh",
        ] {
            assert_eq!(HeaderName::parse(near), HeaderName::Other, "{near:?}");
        }
        assert_eq!(HeaderName::parse("cALL-iD"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("sip-etag"), HeaderName::SipETag);
        for canon in HeaderName::LONG.iter().map(|(c, _)| c) {
            assert_eq!(words(canon.as_bytes()), const_words(canon.as_bytes()));
        }
    }

    proptest::proptest! {
        /// The table agrees with a plain case-insensitive search, on names near the known ones.
        #[test]
        fn lookup_matches_a_linear_search(
            i in 0..HeaderName::LONG.len(),
            edits in proptest::collection::vec((0usize..24, proptest::num::u8::ANY), 0..3),
        ) {
            let mut name = HeaderName::LONG[i].0.as_bytes().to_vec();
            for (at, byte) in edits {
                if let Some(c) = name.get_mut(at) {
                    *c = byte;
                }
            }
            let expected = HeaderName::LONG
                .iter()
                .find(|(c, _)| c.as_bytes().eq_ignore_ascii_case(&name))
                .map_or(HeaderName::Other, |(_, h)| *h);
            let got = if name.len() == 1 { expected } else { HeaderName::lookup_long(&name) };
            proptest::prop_assert_eq!(got, expected);
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
