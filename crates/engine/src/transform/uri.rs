//! `uri.*`: parts of a SIP/SIPS/TEL URI.
//!
//! As in OpenSIPS, an absent or empty part is NULL; `uri.params` and `uri.headers` leave out
//! the leading `;` / `?`; `uri.port` is an integer; `uri.lr`, `uri.r2`, `uri.transport`,
//! `uri.ttl`, `uri.uparam` (`user=`), `uri.maddr` and `uri.method` give the *value* of that
//! parameter (so a bare `;lr` is NULL); `uri.param,name` gives a value, or "" for a flag.
//! URIs of other schemes fail (OpenSIPS' parser rejects them).

use sip::{Scheme, Uri};

use super::TransformOp;
use super::data::{Text, TrValue, arg_text};
use super::params;
use crate::Value;

/// The URI parameters without the leading `;`.
fn params_text<'a>(u: &Uri<'a>) -> &'a str {
    let p = u.params().as_str();
    p.strip_prefix(';').unwrap_or(p)
}

pub(super) fn apply(op: TransformOp, t: &Text<'_>, args: &[Value]) -> TrValue {
    use TransformOp::*;
    let Some(s) = t.str().filter(|s| !s.is_empty()) else {
        return TrValue::Null;
    };
    let Ok(u) = Uri::parse(s) else {
        return TrValue::Null;
    };
    if let Scheme::Other(_) = u.scheme() {
        return TrValue::Null;
    }
    let named = |name: &str| {
        let value = params::find(params_text(&u), name).and_then(|p| p.value);
        t.sub_nonempty(value)
    };
    match op {
        UriUser => t.sub_nonempty(u.user()),
        UriHost => t.sub_nonempty(u.host().map(|h| h.as_str())),
        UriPasswd => t.sub_nonempty(u.password()),
        UriPort => u
            .port()
            .map_or(TrValue::Null, |p| TrValue::Int(i64::from(p))),
        UriParams => t.sub_nonempty(Some(params_text(&u))),
        UriParam => match arg_text(args, 0) {
            Some(name) => match params::find(params_text(&u), &name) {
                Some(p) => t.sub(p.value.unwrap_or("")),
                None => TrValue::Null,
            },
            None => TrValue::Null,
        },
        UriHeaders => t.sub_nonempty(u.headers()),
        UriTransport => named("transport"),
        UriTtl => named("ttl"),
        UriUParam => named("user"),
        UriMaddr => named("maddr"),
        UriMethod => named("method"),
        UriLr => named("lr"),
        UriR2 => named("r2"),
        UriSchema => t.sub_nonempty(s.split(':').next()),
        _ => TrValue::Null,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use crate::transform::testing::{ap, s};

    const U: &str = "sip:alice:secret@example.com:5070;transport=tcp;ttl=5;user=phone;\
                     maddr=10.0.0.1;method=INVITE;lr=on;r2=on;foo;Bar=baz?subject=hi&x=y";

    #[test]
    fn every_part() {
        assert_eq!(ap("uri.user", U, &[]), s("alice"));
        assert_eq!(ap("uri.passwd", U, &[]), s("secret"));
        assert_eq!(ap("uri.host", U, &[]), s("example.com"));
        assert_eq!(ap("uri.domain", U, &[]), s("example.com"));
        assert_eq!(ap("uri.port", U, &[]), Value::Int(5070));
        assert_eq!(
            ap("uri.params", U, &[]),
            s(
                "transport=tcp;ttl=5;user=phone;maddr=10.0.0.1;method=INVITE;lr=on;r2=on;foo;Bar=baz"
            )
        );
        assert_eq!(ap("uri.headers", U, &[]), s("subject=hi&x=y"));
        assert_eq!(ap("uri.transport", U, &[]), s("tcp"));
        assert_eq!(ap("uri.ttl", U, &[]), s("5"));
        assert_eq!(ap("uri.uparam", U, &[]), s("phone"));
        assert_eq!(ap("uri.maddr", U, &[]), s("10.0.0.1"));
        assert_eq!(ap("uri.method", U, &[]), s("INVITE"));
        assert_eq!(ap("uri.lr", U, &[]), s("on"));
        assert_eq!(ap("uri.r2", U, &[]), s("on"));
        assert_eq!(ap("uri.schema", U, &[]), s("sip"));
        assert_eq!(ap("uri.param", U, &["bar"]), s("baz"));
        assert_eq!(ap("uri.param", U, &["foo"]), s("")); // flag: empty string
        assert_eq!(ap("uri.param", U, &["nope"]), Value::Null);
        assert_eq!(ap("uri.param", U, &[""]), Value::Null);
    }

    #[test]
    fn absent_parts_are_null() {
        let u = "sips:[2001:db8::1];lr";
        assert_eq!(ap("uri.host", u, &[]), s("[2001:db8::1]"));
        assert_eq!(ap("uri.schema", u, &[]), s("sips"));
        assert_eq!(ap("uri.user", u, &[]), Value::Null);
        assert_eq!(ap("uri.passwd", u, &[]), Value::Null);
        assert_eq!(ap("uri.port", u, &[]), Value::Null);
        assert_eq!(ap("uri.headers", u, &[]), Value::Null);
        assert_eq!(ap("uri.lr", u, &[]), Value::Null); // bare lr has no value
        assert_eq!(ap("uri.param", u, &["lr"]), s(""));
        assert_eq!(ap("uri.params", "sip:h", &[]), Value::Null);
        assert_eq!(ap("uri.transport", "sip:h", &[]), Value::Null);
    }

    #[test]
    fn tel_and_failures() {
        assert_eq!(
            ap("uri.user", "tel:+1-201-555-0123", &[]),
            s("+1-201-555-0123")
        );
        assert_eq!(ap("uri.host", "tel:+1-201-555-0123", &[]), Value::Null);
        assert_eq!(ap("uri.schema", "TEL:+1234", &[]), s("TEL"));
        assert_eq!(ap("uri.user", "http://example.com/", &[]), Value::Null);
        assert_eq!(ap("uri.user", "<sip:a@b>", &[]), Value::Null);
        assert_eq!(ap("uri.user", "", &[]), Value::Null);
        assert_eq!(ap("uri.user", "garbage", &[]), Value::Null);
        assert_eq!(TransformOp::UriHost.apply(&Value::Int(5), &[]), Value::Null);
    }
}
