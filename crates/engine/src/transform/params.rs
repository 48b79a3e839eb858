//! `param.*` over `name=value;name2;...` lists, and the list parser `uri.param` shares.
//!
//! The grammar follows OpenSIPS' `parse_params`: names run up to white space, `;`, `,` or `=`;
//! a value is a `"quoted string"` (quotes dropped, no escapes) or a token up to white space,
//! `;` or `,`; white space is allowed around `=` and `;`. A `,` or `>` after a parameter ends
//! the list (the rest is ignored). Errors — a missing value after `=`, an unexpected character,
//! a trailing `;` — fail the whole list. A leading `;` yields a first parameter with an empty
//! name, as in OpenSIPS.

use super::TransformOp;
use super::data::{Text, TrValue, arg_int, arg_text, is_ws};
use crate::Value;

/// One parameter; `value` is `None` for a bare flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Param<'a> {
    pub(super) name: &'a str,
    pub(super) value: Option<&'a str>,
}

/// Calls `f` on every parameter in order; `false` if the list is malformed (callers must then
/// discard whatever `f` saw).
pub(super) fn for_each<'a>(s: &'a str, mut f: impl FnMut(Param<'a>)) -> bool {
    let b = s.as_bytes();
    let n = b.len();
    let mut pos = 0;
    let skip_ws = |pos: &mut usize| {
        while *pos < n && is_ws(b[*pos]) {
            *pos += 1;
        }
    };
    loop {
        let start = pos;
        while pos < n && !matches!(b[pos], b';' | b',' | b'=') && !is_ws(b[pos]) {
            pos += 1;
        }
        let Some(name) = s.get(start..pos) else {
            return false;
        };
        skip_ws(&mut pos);
        let mut value = None;
        if pos < n && b[pos] == b'=' {
            pos += 1;
            skip_ws(&mut pos);
            if pos == n {
                return false;
            }
            if b[pos] == b'"' {
                let Some(close) = b[pos + 1..].iter().position(|&c| c == b'"') else {
                    return false;
                };
                value = s.get(pos + 1..pos + 1 + close);
                pos += close + 2;
            } else {
                let vstart = pos;
                while pos < n && !matches!(b[pos], b';' | b',') && !is_ws(b[pos]) {
                    pos += 1;
                }
                if pos == vstart {
                    return false;
                }
                value = s.get(vstart..pos);
            }
            if value.is_none() {
                return false;
            }
            skip_ws(&mut pos);
        }
        f(Param { name, value });
        if pos == n || b[pos] == b',' || b[pos] == b'>' {
            return true;
        }
        if b[pos] != b';' {
            return false;
        }
        pos += 1;
        skip_ws(&mut pos);
        if pos == n {
            return false;
        }
    }
}

/// The first parameter called `name` (ASCII case-insensitive); `None` if absent or the list is
/// malformed.
pub(super) fn find<'a>(s: &'a str, name: &str) -> Option<Param<'a>> {
    let mut hit = None;
    let ok = for_each(s, |p| {
        if hit.is_none() && p.name.eq_ignore_ascii_case(name) {
            hit = Some(p);
        }
    });
    if ok { hit } else { None }
}

/// The `idx`-th parameter, negative from the end.
fn nth<'a>(s: &'a str, idx: i64) -> Option<Param<'a>> {
    let mut all = Vec::new();
    if !for_each(s, |p| all.push(p)) {
        return None;
    }
    let i = if idx < 0 {
        all.len()
            .checked_sub(usize::try_from(idx.unsigned_abs()).ok()?)?
    } else {
        usize::try_from(idx).ok()?
    };
    all.get(i).copied()
}

fn count(s: &str) -> Option<i64> {
    let mut n = 0;
    for_each(s, |_| n += 1).then_some(n)
}

pub(super) fn apply(op: TransformOp, t: &Text<'_>, args: &[Value]) -> TrValue {
    let Some(s) = t.str().filter(|s| !s.is_empty()) else {
        return TrValue::Null;
    };
    let value_of = |p: Param<'_>| t.sub(p.value.unwrap_or(""));
    match op {
        TransformOp::ParamValue => match arg_text(args, 0) {
            Some(name) => find(s, &name).map_or(TrValue::Null, value_of),
            None => TrValue::Null,
        },
        TransformOp::ParamExist => match arg_text(args, 0) {
            Some(name) => {
                let mut hit = false;
                if for_each(s, |p| hit |= p.name.eq_ignore_ascii_case(&name)) {
                    TrValue::flag(hit)
                } else {
                    TrValue::Null
                }
            }
            None => TrValue::Null,
        },
        TransformOp::ParamValueAt => match arg_int(args, 0).and_then(|i| nth(s, i)) {
            Some(p) => value_of(p),
            None => TrValue::Null,
        },
        TransformOp::ParamName => match arg_int(args, 0).and_then(|i| nth(s, i)) {
            Some(p) => t.sub(p.name),
            None => TrValue::Null,
        },
        TransformOp::ParamCount => count(s).map_or(TrValue::Null, TrValue::Int),
        _ => TrValue::Null,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use crate::transform::testing::{ap, s};

    fn list(x: &str) -> Option<Vec<(String, Option<String>)>> {
        let mut v = Vec::new();
        for_each(x, |p| {
            v.push((p.name.to_owned(), p.value.map(str::to_owned)))
        })
        .then_some(v)
    }

    #[test]
    fn parser_rules() {
        let p = |n: &str, v: Option<&str>| (n.to_owned(), v.map(str::to_owned));
        assert_eq!(
            list("a=1;b=2"),
            Some(vec![p("a", Some("1")), p("b", Some("2"))])
        );
        assert_eq!(
            list("a = 1 ; lr ; c=\"x;y\""),
            Some(vec![p("a", Some("1")), p("lr", None), p("c", Some("x;y"))])
        );
        assert_eq!(list("a=b=c"), Some(vec![p("a", Some("b=c"))]));
        assert_eq!(list(";a=1"), Some(vec![p("", None), p("a", Some("1"))]));
        assert_eq!(list("a=1,b=2"), Some(vec![p("a", Some("1"))]));
        assert_eq!(list("a=1>junk"), Some(vec![p("a", Some("1>junk"))]));
        assert_eq!(list("a>x"), Some(vec![p("a>x", None)]));
        assert_eq!(list("a >x"), Some(vec![p("a", None)]));
        assert_eq!(list("a=\"\""), Some(vec![p("a", Some(""))]));
        assert_eq!(list("a=1;"), None);
        assert_eq!(list("a="), None);
        assert_eq!(list("a=;b"), None);
        assert_eq!(list("a b"), None);
        assert_eq!(list("a=\"x"), None);
        assert_eq!(list("a=\"x\"y"), None);
    }

    #[test]
    fn value_exist_count() {
        // The docs' example list.
        let l = "a=1;b=2;c=3";
        assert_eq!(ap("param.value", l, &["b"]), s("2"));
        assert_eq!(ap("param.value", l, &["B"]), s("2")); // strncasecmp
        assert_eq!(ap("param.value", l, &["d"]), Value::Null);
        assert_eq!(ap("param.value", "a;b=2", &["a"]), s("")); // flag: empty, not NULL
        assert_eq!(ap("param.value", "a=1;", &["a"]), Value::Null); // malformed list
        assert_eq!(ap("param.value", "", &["a"]), Value::Null);
        assert_eq!(ap("param.exist", l, &["c"]), Value::Int(1));
        assert_eq!(ap("param.exists", l, &["x"]), Value::Int(0));
        assert_eq!(ap("param.exist", "a b", &["a"]), Value::Null);
        assert_eq!(ap("param.count", l, &[]), Value::Int(3));
        assert_eq!(ap("param.count", "x", &[]), Value::Int(1));
        assert_eq!(ap("param.count", "", &[]), Value::Null);
    }

    #[test]
    fn by_index() {
        let l = "a=1;b;c=3";
        assert_eq!(ap("param.valueat", l, &["0"]), s("1"));
        assert_eq!(ap("param.valueat", l, &["1"]), s(""));
        assert_eq!(ap("param.valueat", l, &["-1"]), s("3"));
        assert_eq!(ap("param.valueat", l, &["-3"]), s("1"));
        assert_eq!(ap("param.valueat", l, &["3"]), Value::Null);
        assert_eq!(ap("param.valueat", l, &["-4"]), Value::Null);
        assert_eq!(ap("param.name", l, &["1"]), s("b"));
        assert_eq!(ap("param.name", l, &["-1"]), s("c"));
        assert_eq!(ap("param.name", l, &["x"]), Value::Null);
        let min = i64::MIN.to_string();
        assert_eq!(ap("param.name", l, &[&min]), Value::Null);
    }
}
