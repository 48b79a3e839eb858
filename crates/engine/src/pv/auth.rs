//! Digest PVs (OpenSIPS pvar.c): the credentials a request carries (`$au $ad $aU $ar $an $adu
//! $auth.*`), the challenge of a 401/407 reply (`$challenge.*`) and the user to account (`$Au`).
//! Values are the parameter text as written between the quotes.

use sip::{AuthHeader, HeaderName, Method, SipMessage};

use super::{AuthPart, ChallengeField};
use crate::value::Value;

/// The value of a parameter of `h` as written (escapes kept), shared with the message.
fn raw_param<'m>(h: &AuthHeader<'m>, name: &str) -> Option<&'m str> {
    h.params()
        .flatten()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value)
}

/// A credentials attribute: of the first Proxy-Authorization header when there is one, else
/// of the first Authorization; NULL for ACK and CANCEL (which carry none to check), for other
/// schemes than Digest and for empty values.
pub(super) fn credentials(msg: &SipMessage, part: AuthPart) -> Value {
    if matches!(msg.method(), Some(Method::Ack | Method::Cancel)) {
        return Value::Null;
    }
    let first = |name| msg.auth_headers(name).next();
    let Some(Ok(cred)) =
        first(HeaderName::ProxyAuthorization).or_else(|| first(HeaderName::Authorization))
    else {
        return Value::Null;
    };
    if !cred.is_digest() {
        return Value::Null;
    }
    let username = raw_param(&cred, "username").unwrap_or("");
    // `user@domain` splits only when there is room for both sides (OpenSIPS parse_username).
    let split = username
        .split_once('@')
        .filter(|_| username.len() > 2)
        .map_or((username, ""), |(u, d)| (u, d));
    let s = match part {
        AuthPart::Username => username,
        AuthPart::User => split.0,
        AuthPart::Domain => split.1,
        AuthPart::Realm => raw_param(&cred, "realm").unwrap_or(""),
        AuthPart::Nonce => raw_param(&cred, "nonce").unwrap_or(""),
        AuthPart::Uri => raw_param(&cred, "uri").unwrap_or(""),
        AuthPart::Response => raw_param(&cred, "response").unwrap_or(""),
        AuthPart::Cnonce => raw_param(&cred, "cnonce").unwrap_or(""),
        AuthPart::Opaque => raw_param(&cred, "opaque").unwrap_or(""),
        AuthPart::Algorithm => raw_param(&cred, "algorithm").unwrap_or(""),
        AuthPart::Qop => raw_param(&cred, "qop").unwrap_or(""),
        AuthPart::Nc => raw_param(&cred, "nc").unwrap_or(""),
    };
    if s.is_empty() {
        Value::Null
    } else {
        Value::Str(msg.share(s))
    }
}

/// The canonical name of a digest algorithm OpenSIPS knows (RFC 7616 ones, and the AKA ones
/// of RFC 3310 / 4169 over them); `None` for any other.
fn algorithm_name(alg: &str) -> Option<String> {
    let aka = ["AKAv1-", "AKAv2-"].into_iter().find(|p| {
        alg.get(..p.len())
            .is_some_and(|a| a.eq_ignore_ascii_case(p))
    });
    let base = sip::digest::Algorithm::parse(alg.get(aka.map_or(0, str::len)..)?)?;
    Some(format!("{}{}", aka.unwrap_or(""), base.as_str()))
}

/// `$challenge.*`: a field of the first challenge of a 401 (WWW-Authenticate) or 407
/// (Proxy-Authenticate) reply. NULL elsewhere and when that challenge is not a Digest one with
/// a realm, a nonce, a known algorithm and a true/false `stale`; an absent field reads as an
/// empty string, and an absent algorithm as `Unknown` (OpenSIPS pvar.c `pv_get_cauthattr`).
pub(super) fn challenge(msg: &SipMessage, field: ChallengeField) -> Value {
    let name = match msg.status() {
        Some(401) => HeaderName::WwwAuthenticate,
        Some(407) => HeaderName::ProxyAuthenticate,
        _ => return Value::Null,
    };
    let Some(Ok(ch)) = msg.auth_headers(name).next() else {
        return Value::Null;
    };
    let param = |n: &str| raw_param(&ch, n).filter(|v| !v.is_empty());
    let algorithm = match param("algorithm") {
        Some(a) => match algorithm_name(a) {
            Some(a) => a,
            None => return Value::Null,
        },
        None => "Unknown".to_owned(),
    };
    let stale_ok = param("stale")
        .is_none_or(|s| s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false"));
    if !ch.is_digest() || param("realm").is_none() || param("nonce").is_none() || !stale_ok {
        return Value::Null;
    }
    let text = |n: &str| param(n).map_or(Value::str(""), |v| Value::Str(msg.share(v)));
    match field {
        ChallengeField::Algorithm => Value::from(algorithm),
        ChallengeField::Realm => text("realm"),
        ChallengeField::Nonce => text("nonce"),
        ChallengeField::Opaque => text("opaque"),
        ChallengeField::Qop => text("qop"),
        ChallengeField::Ik => text("ik"),
        ChallengeField::Ck => text("ck"),
    }
}

/// `$Au`: `user@domain` of the From URI (`@domain` without a user part; empty without From).
/// OpenSIPS first takes the credentials an auth module authorized; no module here authorizes
/// any, so that step never applies.
pub(super) fn acc_username(msg: &SipMessage) -> Value {
    if msg.header(HeaderName::From).is_none() {
        return Value::str("");
    }
    let Ok(from) = msg.from_header() else {
        return Value::Null;
    };
    let uri = from.uri();
    let host = uri.host().map_or("", |h| h.as_str());
    Value::from(format!("{}@{host}", uri.user().unwrap_or("")))
}
