//! sipmsgops functions over header names by pattern, the Request-URI's parameters and user,
//! and Privacy: `remove_hf_re`, `remove_hf_glob`, `ruri_has_param`, `ruri_add_param`,
//! `ruri_del_param`, `is_uri_user_e164`, `ruri_tel2sip`, `is_privacy`.

use engine::{FnCtx, Value};
use sip::Uri;

use crate::{code, text};

/// Removes every header whose name `keep` rejects; true when one was removed.
fn remove_where(f: &mut FnCtx<'_>, matches: impl Fn(&str) -> bool) -> i64 {
    let lines: Vec<usize> = f
        .msg
        .msg
        .headers()
        .filter(|h| matches(h.name_str))
        .map(|h| h.index)
        .collect();
    for &i in &lines {
        f.msg.edits.remove(i);
    }
    code(!lines.is_empty())
}

/// `remove_hf_re(re)`: headers whose name matches (case-insensitive).
pub fn remove_hf_re(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let re = text(args.first());
    let Ok(re) = regex::RegexBuilder::new(&re).case_insensitive(true).build() else {
        f.log.log(
            -1,
            &format!("remove_hf_re: bad regular expression `{re}`\n"),
        );
        return -1;
    };
    remove_where(f, |n| re.is_match(n))
}

/// A shell glob (`*`, `?`, `[...]` taken literally) against a header name, case-insensitive.
pub(crate) fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            glob(rest, name) || name.split_first().is_some_and(|(_, n)| glob(pattern, n))
        }
        (Some((b'?', rest)), Some((_, n))) => glob(rest, n),
        (Some((p, rest)), Some((c, n))) => p.eq_ignore_ascii_case(c) && glob(rest, n),
        _ => false,
    }
}

/// `remove_hf_glob(glob)`.
pub fn remove_hf_glob(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let g = text(args.first());
    remove_where(f, |n| glob(g.as_bytes(), n.as_bytes()))
}

/// URI parameters as (name, value) pairs.
type UriParams = Vec<(String, Option<String>)>;

/// The R-URI and its parameters (`;a=b;c`).
fn ruri_params(f: &FnCtx<'_>) -> Option<(String, UriParams)> {
    let ruri = f.msg.ruri()?.to_owned();
    let u = Uri::parse(&ruri).ok()?;
    let params = u
        .params()
        .as_str()
        .split(';')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (p.to_owned(), None),
        })
        .collect();
    Some((ruri, params))
}

/// `ruri_has_param(name[, value])`.
pub fn ruri_has_param(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let name = text(args.first());
    let want = args
        .get(1)
        .filter(|v| !matches!(v, Value::Null))
        .map(|v| v.to_text().into_owned());
    let Some((_, params)) = ruri_params(f) else {
        return -1;
    };
    code(params.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case(&name)
            && match &want {
                None => v.is_none(),
                Some(w) => v.as_deref() == Some(w.as_str()),
            }
    }))
}

/// Rebuilds the R-URI with `params` in place of its parameter list.
fn set_params(f: &mut FnCtx<'_>, ruri: &str, params: &[(String, Option<String>)]) -> i64 {
    let Ok(u) = Uri::parse(ruri) else { return -1 };
    let old = u.params().as_str();
    let Some(at) = ruri.find(old).filter(|_| !old.is_empty()).or_else(|| {
        // No parameters yet: they go before the headers (`?…`), else at the end.
        Some(u.headers().map_or(ruri.len(), |h| ruri.len() - h.len() - 1))
    }) else {
        return -1;
    };
    let list: String = params
        .iter()
        .map(|(n, v)| match v {
            Some(v) => format!(";{n}={v}"),
            None => format!(";{n}"),
        })
        .collect();
    let rebuilt = format!("{}{list}{}", &ruri[..at], &ruri[at + old.len()..]);
    code(f.msg.set_ruri(&rebuilt))
}

/// `ruri_add_param("name[=value]")`.
pub fn ruri_add_param(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let p = text(args.first());
    let p = p.trim_start_matches(';');
    if p.is_empty() {
        return -1;
    }
    let Some((ruri, mut params)) = ruri_params(f) else {
        return -1;
    };
    params.push(match p.split_once('=') {
        Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
        None => (p.to_owned(), None),
    });
    set_params(f, &ruri, &params)
}

/// `ruri_del_param(name)`.
pub fn ruri_del_param(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let name = text(args.first());
    let Some((ruri, mut params)) = ruri_params(f) else {
        return -1;
    };
    let before = params.len();
    params.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
    if params.len() == before {
        return -1;
    }
    set_params(f, &ruri, &params)
}

/// `is_uri_user_e164(uri)`: the user part is `+` and 2 to 15 digits.
pub fn is_uri_user_e164(_: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let uri = text(args.first());
    let user = Uri::parse(&uri)
        .ok()
        .and_then(|u| u.user().map(str::to_owned));
    code(user.is_some_and(|u| {
        u.strip_prefix('+')
            .is_some_and(|d| (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
    }))
}

/// `ruri_tel2sip()`: `tel:+N;params` becomes `sip:+N@<From host>;user=phone`.
pub fn ruri_tel2sip(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(ruri) = f.msg.ruri().map(str::to_owned) else {
        return -1;
    };
    let Some(number) = ruri
        .strip_prefix("tel:")
        .or_else(|| ruri.strip_prefix("TEL:"))
    else {
        // Not a tel URI: nothing to do.
        return 1;
    };
    let number = number.split(';').next().unwrap_or("");
    let host = f
        .msg
        .msg
        .headers()
        .find(|h| h.name == sip::HeaderName::From)
        .and_then(|h| {
            sip::NameAddr::parse(h.value)
                .ok()
                .and_then(|na| na.uri().host().map(|h| h.as_str().to_owned()))
        });
    let Some(host) = host else { return -1 };
    code(f.msg.set_ruri(&format!("sip:{number}@{host};user=phone")))
}

/// `is_privacy(value)`: the Privacy header lists `value` (`none`, `header`, `session`, `user`,
/// `id`, `critical`).
pub fn is_privacy(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let want = text(args.first());
    code(f.msg.msg.headers().any(|h| {
        h.name_str.eq_ignore_ascii_case("Privacy")
            && h.value
                .split(';')
                .any(|v| v.trim().eq_ignore_ascii_case(&want))
    }))
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs_match_header_names_case_insensitively() {
        assert!(glob(b"X-*", b"x-custom"));
        assert!(glob(b"P-?-Id", b"p-a-id"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"X-*", b"Y-custom"));
        assert!(!glob(b"Via?", b"Via"));
    }
}
