//! `nameaddr.*`: parts of a name-addr / addr-spec such as a From, To or Contact value.
//!
//! OpenSIPS semantics: a comma-separated list is allowed and an optional index (0 = first,
//! the default; negative from the end; out of range → NULL) picks the body; any malformed body
//! fails the whole value. `nameaddr.name` is the display name as written, quotes included;
//! `nameaddr.uri` the URI without `<>`; `nameaddr.params` the header parameters without the
//! leading `;`; `nameaddr.param,name` matches the name case-sensitively (OpenSIPS uses
//! `strncmp` here) and is NULL for a flag; `nameaddr.len` is the length of the body up to the
//! end of the URI part (display name and `<...>`), excluding header parameters.
//!
//! Deviation: OpenSIPS' `nameaddr.len` also counts the CRLF it appends internally when the
//! body has no parameters; we do not.

use sip::NameAddr;

use super::TransformOp;
use super::data::{Text, TrValue, arg_int, arg_text};
use crate::Value;

/// Splits at commas outside quoted strings and `<...>`, trimming each piece.
pub(super) fn split_top_level(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let cur = rest?;
        let b = cur.as_bytes();
        let (mut quoted, mut angle, mut escaped) = (false, false, false);
        for (i, &c) in b.iter().enumerate() {
            if quoted {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => quoted = false,
                    _ => {}
                }
                continue;
            }
            match c {
                b'"' if !angle => quoted = true,
                b'<' => angle = true,
                b'>' => angle = false,
                b',' if !angle => {
                    rest = cur.get(i + 1..);
                    return cur.get(..i).map(str::trim);
                }
                _ => {}
            }
        }
        rest = None;
        Some(cur.trim())
    })
}

/// Offset of `sub` inside `whole` when it is a sub-slice of it.
fn offset_in(whole: &str, sub: &str) -> Option<usize> {
    let off = (sub.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (off + sub.len() <= whole.len()).then_some(off)
}

/// The display name as written, with its quotes when it had them.
fn display_as_written<'a>(na: &NameAddr<'a>) -> Option<&'a str> {
    let raw = na.as_str();
    let d = na.display_name_raw()?;
    let off = offset_in(raw, d)?;
    if off > 0 && raw.as_bytes().get(off - 1) == Some(&b'"') {
        raw.get(off - 1..off + d.len() + 1)
    } else {
        Some(d)
    }
}

/// The header parameters without the leading `;` and surrounding white space.
fn params_text<'a>(na: &NameAddr<'a>) -> &'a str {
    let p = na.params().as_str().trim();
    p.strip_prefix(';').unwrap_or(p).trim_start()
}

pub(super) fn apply(op: TransformOp, t: &Text<'_>, args: &[Value]) -> TrValue {
    use TransformOp::*;
    let Some(s) = t.str().filter(|s| !s.is_empty()) else {
        return TrValue::Null;
    };
    // The optional index comes first; nameaddr.param's name comes last.
    let has_index = args.len() == if op == NameaddrParam { 2 } else { 1 };
    let index = if has_index {
        match arg_int(args, 0) {
            Some(i) => i,
            None => return TrValue::Null,
        }
    } else {
        0
    };
    let mut bodies = Vec::new();
    for part in split_top_level(s) {
        match NameAddr::parse(part) {
            Ok(na) => bodies.push(na),
            Err(_) => return TrValue::Null,
        }
    }
    let pick = if index < 0 {
        usize::try_from(index.unsigned_abs())
            .ok()
            .and_then(|back| bodies.len().checked_sub(back))
    } else {
        usize::try_from(index).ok()
    };
    let Some(na) = pick.and_then(|i| bodies.get(i)) else {
        return TrValue::Null;
    };
    match op {
        NameaddrName => t.sub_nonempty(display_as_written(na)),
        NameaddrUri => t.sub_nonempty(Some(na.uri().as_str())),
        NameaddrLen => {
            let raw = na.as_str();
            let body = raw
                .len()
                .checked_sub(na.params().as_str().len())
                .and_then(|n| raw.get(..n))
                .unwrap_or(raw)
                .trim_end();
            TrValue::Int(body.len() as i64)
        }
        NameaddrParams => t.sub_nonempty(Some(params_text(na))),
        NameaddrParam => {
            let Some(name) = arg_text(args, args.len().saturating_sub(1)) else {
                return TrValue::Null;
            };
            let value = na
                .params()
                .iter()
                .flatten()
                .find(|p| p.name == name)
                .and_then(|p| p.value);
            t.sub_nonempty(value)
        }
        _ => TrValue::Null,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use crate::transform::testing::{ap, s};

    #[test]
    fn single_body() {
        let v = "\"Alice A.\" <sip:alice@example.com;transport=tcp>;tag=abc;lr;x=\"q v\"";
        assert_eq!(ap("nameaddr.name", v, &[]), s("\"Alice A.\""));
        assert_eq!(
            ap("nameaddr.uri", v, &[]),
            s("sip:alice@example.com;transport=tcp")
        );
        assert_eq!(ap("nameaddr.params", v, &[]), s("tag=abc;lr;x=\"q v\""));
        assert_eq!(ap("nameaddr.param", v, &["tag"]), s("abc"));
        assert_eq!(ap("nameaddr.param", v, &["x"]), s("q v"));
        assert_eq!(ap("nameaddr.param", v, &["TAG"]), Value::Null); // case-sensitive
        assert_eq!(ap("nameaddr.param", v, &["lr"]), Value::Null); // flag
        assert_eq!(ap("nameaddr.param", v, &["transport"]), Value::Null); // URI param
        assert_eq!(
            ap("nameaddr.len", v, &[]),
            Value::Int("\"Alice A.\" <sip:alice@example.com;transport=tcp>".len() as i64)
        );
    }

    #[test]
    fn forms_without_parts() {
        assert_eq!(ap("nameaddr.name", "Bob <sip:bob@b>", &[]), s("Bob"));
        assert_eq!(ap("nameaddr.name", "<sip:bob@b>", &[]), Value::Null);
        assert_eq!(ap("nameaddr.params", "<sip:bob@b>", &[]), Value::Null);
        // addr-spec: everything after the first ';' belongs to the header.
        assert_eq!(ap("nameaddr.uri", "sip:bob@b;tag=1", &[]), s("sip:bob@b"));
        assert_eq!(ap("nameaddr.param", "sip:bob@b;tag=1", &["tag"]), s("1"));
        assert_eq!(ap("nameaddr.len", " sip:bob@b ; tag=1", &[]), Value::Int(9));
        assert_eq!(ap("nameaddr.uri", "", &[]), Value::Null);
        assert_eq!(ap("nameaddr.uri", "<sip:a@b", &[]), Value::Null);
    }

    #[test]
    fn indexes() {
        // The docs' example.
        let v = "\"first\" <first@opensips.org>, \"second\" <second@opensips.org>";
        let v = v.replace("<f", "<sip:f").replace("<s", "<sip:s");
        assert_eq!(ap("nameaddr.name", &v, &["0"]), s("\"first\""));
        assert_eq!(ap("nameaddr.name", &v, &["1"]), s("\"second\""));
        assert_eq!(ap("nameaddr.name", &v, &["-1"]), s("\"second\""));
        assert_eq!(ap("nameaddr.name", &v, &["-2"]), s("\"first\""));
        assert_eq!(ap("nameaddr.name", &v, &[]), s("\"first\""));
        assert_eq!(ap("nameaddr.uri", &v, &["2"]), Value::Null);
        assert_eq!(ap("nameaddr.uri", &v, &["-3"]), Value::Null);
        assert_eq!(
            ap(
                "nameaddr.param",
                "<sip:a@b>;q=1, <sip:c@d>;q=2",
                &["1", "q"]
            ),
            s("2")
        );
        assert_eq!(ap("nameaddr.uri", "\"a,b\" <sip:x@y>", &[]), s("sip:x@y"));
        assert_eq!(ap("nameaddr.uri", "<sip:a@b>, junk", &[]), Value::Null);
        assert_eq!(ap("nameaddr.uri", "<sip:a@b>,", &[]), Value::Null);
        assert_eq!(ap("nameaddr.uri", "<sip:a@b>", &["x"]), Value::Null);
        assert_eq!(
            ap("nameaddr.uri", "<sip:a@b>", &[&i64::MIN.to_string()]),
            Value::Null
        );
    }

    #[test]
    fn splitting() {
        let parts: Vec<&str> = split_top_level(r#""a\",b" <sip:x,y@z>, c , "#).collect();
        assert_eq!(parts, vec![r#""a\",b" <sip:x,y@z>"#, "c", ""]);
    }
}
