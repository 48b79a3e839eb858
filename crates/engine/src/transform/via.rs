//! `via.*`: parts of a Via value such as `$hdr(Via)`.
//!
//! As in OpenSIPS: only the first value of a comma-separated list is used; the input must be
//! longer than 2 bytes; absent or empty parts are NULL (a bare `rport` too); `via.port` is an
//! integer; `via.params` leaves out the leading `;`; `via.param,name` matches the name
//! case-insensitively and gives "" for a flag; `via.comment` is the text inside a trailing
//! `( ... )`; `via.host` keeps IPv6 brackets.

use sip::Via;

use super::TransformOp;
use super::data::{Text, TrValue, arg_text};
use super::nameaddr::split_top_level;
use crate::Value;

/// Splits a trailing `(comment)` off a Via value: (value, comment inside the parentheses).
fn split_comment(s: &str) -> (&str, Option<&str>) {
    let trimmed = s.trim_end();
    if !trimmed.ends_with(')') {
        return (s, None);
    }
    let mut depth = 0usize;
    for (i, c) in trimmed.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    let inner = trimmed.get(i + 1..trimmed.len() - 1);
                    return (trimmed.get(..i).unwrap_or(""), inner);
                }
            }
            _ => {}
        }
    }
    (s, None)
}

pub(super) fn apply(op: TransformOp, t: &Text<'_>, args: &[Value]) -> TrValue {
    use TransformOp::*;
    let Some(s) = t.str().filter(|s| s.len() > 2) else {
        return TrValue::Null;
    };
    let first = split_top_level(s).next().unwrap_or(s);
    let (value, comment) = split_comment(first);
    let Ok(v) = Via::parse(value) else {
        return TrValue::Null;
    };
    match op {
        ViaName => t.sub_nonempty(Some(v.protocol())),
        ViaVersion => t.sub_nonempty(Some(v.version())),
        ViaTransport => t.sub_nonempty(Some(v.transport())),
        ViaHost => t.sub_nonempty(Some(v.host().as_str())),
        ViaPort => v
            .port()
            .map_or(TrValue::Null, |p| TrValue::Int(i64::from(p))),
        ViaComment => t.sub_nonempty(comment),
        ViaParams => {
            let p = v.params().as_str().trim();
            let p = p.strip_prefix(';').unwrap_or(p).trim_start();
            t.sub_nonempty(Some(p))
        }
        ViaParam => match arg_text(args, 0).filter(|n| !n.is_empty()) {
            Some(name) => match v.param(&name) {
                Some(value) => t.sub(value.unwrap_or("")),
                None => TrValue::Null,
            },
            None => TrValue::Null,
        },
        ViaBranch => t.sub_nonempty(v.branch()),
        ViaReceived => t.sub_nonempty(v.received()),
        ViaRport => t.sub_nonempty(v.param("rport").flatten()),
        _ => TrValue::Null,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use crate::transform::testing::{ap, s};

    const V: &str = "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK776;received=198.51.100.7;\
                     rport=6000;Foo=\"x y\";hidden";

    #[test]
    fn every_part() {
        assert_eq!(ap("via.name", V, &[]), s("SIP"));
        assert_eq!(ap("via.version", V, &[]), s("2.0"));
        assert_eq!(ap("via.transport", V, &[]), s("UDP"));
        assert_eq!(ap("via.host", V, &[]), s("192.0.2.1"));
        assert_eq!(ap("via.domain", V, &[]), s("192.0.2.1"));
        assert_eq!(ap("via.port", V, &[]), Value::Int(5062));
        assert_eq!(
            ap("via.params", V, &[]),
            s("branch=z9hG4bK776;received=198.51.100.7;rport=6000;Foo=\"x y\";hidden")
        );
        assert_eq!(ap("via.branch", V, &[]), s("z9hG4bK776"));
        assert_eq!(ap("via.received", V, &[]), s("198.51.100.7"));
        assert_eq!(ap("via.rport", V, &[]), s("6000"));
        assert_eq!(ap("via.param", V, &["foo"]), s("x y"));
        assert_eq!(ap("via.param", V, &["hidden"]), s(""));
        assert_eq!(ap("via.param", V, &["nope"]), Value::Null);
        assert_eq!(ap("via.comment", V, &[]), Value::Null);
    }

    #[test]
    fn sparse_list_and_comment() {
        let v = "SIP/2.0/TCP [2001:db8::9] ; rport ; branch=z9hG4bKx (proxy (A)), SIP/2.0/UDP b";
        assert_eq!(ap("via.host", v, &[]), s("[2001:db8::9]"));
        assert_eq!(ap("via.port", v, &[]), Value::Null);
        assert_eq!(ap("via.rport", v, &[]), Value::Null); // bare rport
        assert_eq!(ap("via.received", v, &[]), Value::Null);
        assert_eq!(ap("via.branch", v, &[]), s("z9hG4bKx"));
        assert_eq!(ap("via.comment", v, &[]), s("proxy (A)"));
        assert_eq!(ap("via.params", v, &[]), s("rport ; branch=z9hG4bKx"));
        assert_eq!(ap("via.params", "SIP/2.0/UDP h", &[]), Value::Null);
    }

    #[test]
    fn failures() {
        assert_eq!(ap("via.host", "ab", &[]), Value::Null);
        assert_eq!(ap("via.host", "", &[]), Value::Null);
        assert_eq!(ap("via.host", "not a via", &[]), Value::Null);
        assert_eq!(ap("via.host", "SIP/2.0/UDP h (x", &[]), Value::Null);
        assert_eq!(split_comment("a (b"), ("a (b", None));
        assert_eq!(split_comment("a b)"), ("a b)", None));
    }
}
