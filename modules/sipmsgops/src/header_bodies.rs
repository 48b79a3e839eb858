//! `sipmsg_validate("h")` (OpenSIPS `sip_validate_hdrs`): the header bodies OpenSIPS has a
//! parser for must pass it, judged as that parser judges them. Headers it has no parser for
//! pass whatever they hold (Require, Allow-Events, Date …), and so do the ones whose parser
//! never fails: Supported, Session-Expires, Min-SE, Min-Expires. To, CSeq, Content-Length and
//! the first Via were checked before, as every message needs them.
//!
//! Compact forms count as their long names here as everywhere in rsips (OpenSIPS types `s:`
//! or `r:` as unknown headers and does not look at them).

use sip::{AuthHeader, Event, HeaderName, HeaderRef, MediaType, NameAddr, Scheme, SipMessage};

/// RFC 3261 §25.1 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// A list of name-addrs (`parse_multi_to`, `parse_rr`, `parse_contacts`): at least one, each
/// valid.
fn addresses(v: &str) -> bool {
    let mut n = 0;
    for a in sip::split_values(v) {
        if NameAddr::parse(a).is_err() {
            return false;
        }
        n += 1;
    }
    n > 0
}

/// A `Content-Type` (`decode_mime_type` on the header): one type, no wildcard.
fn content_type(v: &str) -> bool {
    MediaType::parse(v).is_ok_and(|m| m.top != "*" && m.sub != "*")
}

/// One `Accept` range (`decode_mime_type`): `type/subtype`, either may be `*`; parameters are
/// skipped.
fn accept_range(r: &str) -> bool {
    let mime = r.split(';').next().unwrap_or("");
    let Some((top, sub)) = mime.split_once('/') else {
        return false;
    };
    let part = |p: &str, extra: &[u8]| {
        let p = p.trim();
        p == "*"
            || (!p.is_empty()
                && p.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || b"-+.".contains(&b) || extra.contains(&b)
                }))
    };
    part(top, b"") && part(sub, b"_")
}

/// `Accept` (`parse_accept_hdr`): a non-empty comma list of ranges.
fn accept(v: &str) -> bool {
    v.split(',').all(accept_range)
}

/// `Privacy` (`parse_privacy`, RFC 3323 §4.2): `;`-separated values OpenSIPS knows, `none`
/// alone.
fn privacy(v: &str) -> bool {
    const KNOWN: [&str; 7] = [
        "critical", "header", "history", "id", "none", "session", "user",
    ];
    let values: Vec<&str> = v.split(';').map(str::trim).collect();
    let known = values
        .iter()
        .all(|p| KNOWN.iter().any(|k| k.eq_ignore_ascii_case(p)));
    let none_alone = values.len() == 1 || !values.iter().any(|p| p.eq_ignore_ascii_case("none"));
    known && none_alone
}

/// `Contact` (`parse_contact`): `*` alone, or a list of addresses.
fn contact(v: &str) -> bool {
    v == "*" || (!v.starts_with('*') && addresses(v))
}

/// Whether the value names the Digest scheme (`parse_digest_cred` looks at nothing else).
fn is_digest(v: &str) -> bool {
    v.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("digest"))
        && v.as_bytes()
            .get(6)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b','))
}

/// `Authorization` / `Proxy-Authorization` (`parse_credentials`): Digest credentials must
/// parse; other schemes are not looked at.
fn credentials(v: &str) -> bool {
    !is_digest(v) || AuthHeader::parse(v).is_ok_and(|a| a.token68().is_none())
}

/// `WWW-Authenticate` / `Proxy-Authenticate` (`parse_authenticate_body`): a Digest challenge
/// with a realm and a nonce.
fn challenge(v: &str) -> bool {
    is_digest(v)
        && AuthHeader::parse(v)
            .is_ok_and(|a| a.token68().is_none() && a.realm().is_some() && a.nonce().is_some())
}

/// A number as OpenSIPS' `str2s` reads Max-Forwards: digits only, at most five.
fn short_number(v: &str) -> bool {
    (1..=5).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit())
}

/// A 32-bit unsigned number (`str2int`, Expires).
fn number(v: &str) -> bool {
    v.bytes().all(|b| b.is_ascii_digit()) && v.parse::<u32>().is_ok()
}

/// The per-header check; `first` says whether this is the first header of its name (OpenSIPS
/// parses only the first Accept and the first Privacy header).
fn header_ok(h: &HeaderRef<'_>, first: bool) -> bool {
    let v = h.value.trim();
    let other = |name: &str| h.name == HeaderName::Other && h.name_str.eq_ignore_ascii_case(name);
    match h.name {
        HeaderName::ContentType => content_type(v),
        HeaderName::ContentDisposition => Event::parse(v).is_ok(), // token *(;param) as well
        HeaderName::From | HeaderName::ReferTo => NameAddr::parse(v).is_ok(),
        HeaderName::PAssertedIdentity | HeaderName::PPreferredIdentity => addresses(v),
        HeaderName::MaxForwards => short_number(v),
        HeaderName::Accept => !first || accept(v),
        HeaderName::Privacy => !first || privacy(v),
        HeaderName::Contact => contact(v),
        HeaderName::Path | HeaderName::Route | HeaderName::RecordRoute => addresses(v),
        HeaderName::Authorization | HeaderName::ProxyAuthorization => credentials(v),
        HeaderName::Expires => number(v),
        HeaderName::Allow => sip::split_values(v).all(|m| m.is_empty() || is_token(m)),
        HeaderName::Event => Event::parse(v).is_ok(),
        HeaderName::CallInfo => addresses(v),
        HeaderName::WwwAuthenticate | HeaderName::ProxyAuthenticate => challenge(v),
        HeaderName::CallId
        | HeaderName::ProxyRequire
        | HeaderName::Unsupported
        | HeaderName::AcceptLanguage
        | HeaderName::Organization
        | HeaderName::Priority
        | HeaderName::Subject
        | HeaderName::UserAgent
        | HeaderName::RetryAfter => !v.is_empty(),
        HeaderName::Other if other("Remote-Party-ID") => NameAddr::parse(v).is_ok(),
        HeaderName::Other if other("Diversion") => addresses(v),
        HeaderName::Other if other("Accept-Disposition") => !v.is_empty(),
        _ => true,
    }
}

/// RFC 3325 §9.1 as OpenSIPS enforces it on P-Asserted-Identity and P-Preferred-Identity: at
/// most two values over all the headers of that name, each a SIP, SIPS or tel URI, and when
/// there are two, one of them a tel URI and the other not.
fn identities(msg: &SipMessage, name: HeaderName) -> bool {
    let uris: Vec<Option<bool>> = msg
        .values(name)
        .map(|v| {
            NameAddr::parse(v)
                .ok()
                .and_then(|na| match na.uri().scheme() {
                    Scheme::Tel => Some(true),
                    Scheme::Sip | Scheme::Sips => Some(false),
                    Scheme::Other(_) => None,
                })
        })
        .collect();
    match uris.as_slice() {
        [] | [Some(_)] => true,
        [Some(a), Some(b)] => a != b,
        _ => false,
    }
}

/// Whether every header body OpenSIPS would parse parses.
pub(crate) fn header_bodies(msg: &SipMessage) -> bool {
    let (mut accept_seen, mut privacy_seen) = (false, false);
    let each = msg.headers().all(|h| {
        let first = match h.name {
            HeaderName::Accept => !std::mem::replace(&mut accept_seen, true),
            HeaderName::Privacy => !std::mem::replace(&mut privacy_seen, true),
            _ => true,
        };
        header_ok(&h, first)
    });
    each && msg.vias().all(|v| v.is_ok())
        && identities(msg, HeaderName::PAssertedIdentity)
        && identities(msg, HeaderName::PPreferredIdentity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_grammars() {
        assert!(accept("application/sdp, */*;q=0.1, text/x_y"));
        assert!(!accept(""));
        assert!(!accept("application/sdp,"));
        assert!(!accept("sdp"));
        assert!(privacy("id; critical"));
        assert!(privacy("none"));
        assert!(!privacy("id;none"));
        assert!(!privacy("id;foo"));
        assert!(!privacy("id;"));
        assert!(contact("*"));
        assert!(!contact("*, <sip:a@b>"));
        assert!(!contact(""));
        assert!(credentials("Basic dXNlcjpwYXNz"));
        assert!(credentials("Digest"));
        assert!(credentials(r#"Digest username="a", realm="b""#));
        assert!(!credentials("Digest ==="));
        assert!(challenge(r#"Digest realm="a", nonce="b""#));
        assert!(!challenge(r#"Digest realm="a""#));
        assert!(!challenge(r#"Basic realm="a""#));
        assert!(short_number("70") && !short_number("") && !short_number("123456"));
    }
}
