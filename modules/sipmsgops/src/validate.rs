//! `sipmsg_validate([flags])` (OpenSIPS `w_sip_validate`): RFC 3261 sanity checks with
//! OpenSIPS' negative return codes. Flags (any case): `s` SDP body, `h` header bodies,
//! `m` skip Max-Forwards, `r` R-URI, `f` From URI, `t` To URI, `c` Contact.
//!
//! The optional second parameter receives OpenSIPS' reason text on failure (empty for a
//! missing mandatory header, as OpenSIPS leaves it); the reason is also logged at debug level.

use std::borrow::Cow;

use engine::{FnCtx, Value};
use sip::sdp::Sdp;
use sip::{HeaderName, Method, SipMessage, Uri};

use crate::text;

#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    sdp: bool,
    hdrs: bool,
    no_mf: bool,
    ruri: bool,
    from: bool,
    to: bool,
    contact: bool,
}

impl Flags {
    fn parse(s: &str) -> Flags {
        let mut f = Flags::default();
        for c in s.chars().map(|c| c.to_ascii_lowercase()) {
            match c {
                's' => f.sdp = true,
                'h' => f.hdrs = true,
                'm' => f.no_mf = true,
                'r' => f.ruri = true,
                'f' => f.from = true,
                't' => f.to = true,
                'c' => f.contact = true,
                _ => {}
            }
        }
        f
    }
}

/// A failed check: OpenSIPS' return code and reason text.
#[derive(Debug)]
struct Failure {
    code: i64,
    reason: Cow<'static, str>,
}

impl From<(i64, &'static str)> for Failure {
    fn from((code, reason): (i64, &'static str)) -> Self {
        Failure {
            code,
            reason: Cow::Borrowed(reason),
        }
    }
}

type Check = Result<(), Failure>;

/// OpenSIPS `check_hostname`: starts alphanumeric or `[`, then alphanumerics, `-`, `:` and
/// single dots, ends alphanumeric, `.` or `]`.
fn hostname_ok(host: &str) -> bool {
    let b = host.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    if !(first.is_ascii_alphanumeric() || first == b'[') {
        return false;
    }
    let inner = b.get(1..b.len().saturating_sub(1)).unwrap_or(&[]);
    let mut prev = first;
    for &c in inner {
        let ok = c.is_ascii_alphanumeric() || c == b'-' || c == b':' || (c == b'.' && prev != b'.');
        if !ok {
            return false;
        }
        prev = c;
    }
    b.len() == 1 || last.is_ascii_alphanumeric() || last == b'.' || last == b']'
}

/// RFC 3261 `user`: unreserved, escaped and user-unreserved characters.
fn username_ok(user: &str) -> bool {
    let b = user.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(c.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&c)) {
            return false;
        }
        i += 1;
    }
    true
}

fn uri_ok(uri: &Uri<'_>, domain: (i64, &'static str), user: (i64, &'static str)) -> Check {
    if uri.scheme().is_sip() && !uri.host().is_some_and(|h| hostname_ok(h.as_str())) {
        return Err(domain.into());
    }
    if !username_ok(uri.user().unwrap_or("")) {
        return Err(user.into());
    }
    Ok(())
}

fn need(msg: &SipMessage, name: HeaderName, fail: (i64, &'static str)) -> Check {
    if msg.header(name).is_some() {
        Ok(())
    } else {
        Err(fail.into())
    }
}

/// OpenSIPS `validate_contact_header`.
fn contacts(msg: &SipMessage, method: Method) -> Check {
    let with_contact = matches!(
        method,
        Method::Invite | Method::Register | Method::Update | Method::Subscribe | Method::Refer
    );
    if !with_contact {
        return Ok(());
    }
    need(
        msg,
        HeaderName::Contact,
        (-14, "SIP message doesn't have 'Contact' header"),
    )?;
    let parse_err = (-26, "failed to parse 'Contact' header");
    let star = msg.values(HeaderName::Contact).any(|v| v.trim() == "*");
    if !star {
        for na in msg.addresses(HeaderName::Contact) {
            na.map_err(|_| parse_err)?;
        }
        return Ok(());
    }
    if method != Method::Register {
        return Err((
            -30,
            "'Contact' header for SIP message contains '*' only valid for REGISTER request",
        )
            .into());
    }
    if !msg.is_request() {
        return Err((
            -30,
            "'Contact' header for REGISTER reply contains '*' only valid for REGISTER request",
        )
            .into());
    }
    match msg.expires() {
        Ok(Some(0)) => Ok(()),
        Ok(None) | Err(_) => Err((-30, "failed to parse 'Expires' header").into()),
        Ok(Some(_)) => Err((
            -30,
            "'Expires' header greater than 0 for REGISTER 'Contact' header with '*' value",
        )
            .into()),
    }
}

/// Content-Length against the body. A missing header counts as 0, as in OpenSIPS: a datagram
/// whose body has no Content-Length fails (RFC 3261 §18.3 lets it be left out; OpenSIPS
/// does not, here).
fn body_length(msg: &SipMessage) -> Check {
    let Ok(cl) = msg.content_length() else {
        return Ok(());
    };
    let (cl, len) = (cl.unwrap_or(0) as usize, msg.body().len());
    if cl == len {
        return Ok(());
    }
    Err(Failure {
        code: -5,
        reason: format!("invalid body - content length {cl} different than actual body {len}")
            .into(),
    })
}

fn validate(msg: &SipMessage, proto: &str, fl: Flags) -> Check {
    let bad_hdr = (-2, "message parsing failed");
    if msg.vias().any(|v| v.is_err())
        || msg.header(HeaderName::CSeq).is_some() && msg.cseq().is_err()
        || msg.header(HeaderName::To).is_some() && msg.to_header().is_err()
        || msg.content_length().is_err()
    {
        return Err(bad_hdr.into());
    }
    need(msg, HeaderName::CallId, (-3, "message doesn't have callid"))?;
    if proto != "udp" && msg.header(HeaderName::ContentLength).is_none() {
        // OpenSIPS names the transport by its `enum sip_protos` number.
        let n = match proto {
            "tcp" => 2,
            "tls" => 3,
            "sctp" => 4,
            "ws" => 5,
            "wss" => 6,
            _ => 0,
        };
        return Err(Failure {
            code: -4,
            reason: format!("message doesn't have Content Length header for proto {n}").into(),
        });
    }
    let cancel = msg.method() == Some(Method::Cancel);
    if !cancel {
        body_length(msg)?;
        let is_sdp = msg
            .content_type()
            .ok()
            .flatten()
            .is_some_and(|c| c.is("application", "sdp"));
        if fl.sdp && !msg.body().is_empty() && is_sdp {
            let ok =
                std::str::from_utf8(msg.body()).is_ok_and(|t| Sdp::parse(t).validate().is_ok());
            if !ok {
                return Err((-6, "failed to parse SDP message").into());
            }
        }
    }
    need(msg, HeaderName::CSeq, (-7, ""))?;
    need(msg, HeaderName::From, (-8, ""))?;
    need(msg, HeaderName::To, (-9, ""))?;
    need(msg, HeaderName::Via, (-10, ""))?;
    if fl.to {
        let to = msg
            .to_header()
            .map_err(|_| (-22, "failed to parse 'To' header"))?;
        uri_ok(
            to.uri(),
            (-23, "invalid domain for 'To' header"),
            (-29, "invalid username for 'To' header"),
        )?;
    }
    if fl.from {
        let from = msg
            .from_header()
            .map_err(|_| (-24, "failed to parse 'From' header"))?;
        uri_ok(
            from.uri(),
            (-25, "invalid domain for 'From' header"),
            (-28, "invalid username for 'From' header"),
        )?;
    }
    let method = match msg.method() {
        Some(m) => {
            request(msg, m, fl)?;
            m
        }
        None => reply(msg, fl)?,
    };
    if method != Method::Cancel {
        body_length(msg)?;
        if !msg.body().is_empty() {
            need(msg, HeaderName::ContentType, (-21, ""))?;
        }
    }
    if fl.hdrs && !crate::header_bodies::header_bodies(msg) {
        return Err((-2, "failed to parse headers").into());
    }
    Ok(())
}

fn request(msg: &SipMessage, m: Method, fl: Flags) -> Check {
    if fl.ruri {
        let uri = msg
            .request_uri()
            .map_err(|_| (-11, "failed to parse R-URI"))?;
        if !uri.host().is_some_and(|h| hostname_ok(h.as_str())) {
            return Err((-12, "invalid domain for R-URI").into());
        }
        if !username_ok(uri.user().unwrap_or("")) {
            return Err((-27, "invalid username for R-URI").into());
        }
    }
    if !fl.no_mf {
        need(msg, HeaderName::MaxForwards, (-13, ""))?;
    }
    if fl.contact {
        contacts(msg, m)?;
    }
    if m != Method::Register && msg.header(HeaderName::Path).is_some() {
        return Err((-15, "PATH header supported only for REGISTERs").into());
    }
    Ok(())
}

fn reply(msg: &SipMessage, fl: Flags) -> Result<Method, Failure> {
    let method = msg
        .cseq()
        .map_err(|_| (-7, "cseq not parsed properly"))?
        .method;
    let status = msg.status().unwrap_or(0);
    if method != Method::Cancel {
        match status {
            405 => need(msg, HeaderName::Allow, (-16, ""))?,
            423 if method == Method::Register => need(msg, HeaderName::MinExpires, (-17, ""))?,
            407 => need(msg, HeaderName::ProxyAuthenticate, (-18, ""))?,
            420 => need(msg, HeaderName::Unsupported, (-19, ""))?,
            401 => need(msg, HeaderName::WwwAuthenticate, (-20, ""))?,
            _ => {}
        }
    }
    if fl.contact && (200..400).contains(&status) {
        contacts(msg, method)?;
    }
    Ok(method)
}

/// `sipmsg_validate([flags[, result_pv]])`: 1, or the OpenSIPS code of the first failed
/// check, its reason stored into `result_pv`.
pub fn sipmsg_validate(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let fl = Flags::parse(&text(args.first()));
    let proto = f.msg.receipt.as_ref().map_or("udp", |r| r.proto);
    match validate(&f.msg.msg, proto, fl) {
        Ok(()) => 1,
        Err(Failure { code, reason }) => {
            f.log.log(3, &format!("sipmsg_validate: {code} {reason}\n"));
            f.set_output(1, Value::from(reason.into_owned()));
            code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{hostname_ok, username_ok};

    #[test]
    fn hostnames_and_users() {
        for h in ["example.com", "a", "[::1]", "10.0.0.1", "a-b.c."] {
            assert!(hostname_ok(h), "{h}");
        }
        for h in ["", "-a.com", "a..b", "a_b.com", "a-"] {
            assert!(!hostname_ok(h), "{h}");
        }
        assert!(username_ok("alice+1%20x;npdi"));
        assert!(!username_ok("al ice"));
        assert!(!username_ok("bad%2"));
    }
}
