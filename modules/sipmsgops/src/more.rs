//! sipmsgops functions over header names by pattern, the Request-URI's parameters and user,
//! and Privacy: `remove_hf_re`, `remove_hf_glob`, `ruri_has_param`, `ruri_add_param`,
//! `ruri_del_param`, `is_uri_user_e164`, `ruri_tel2sip`, `is_privacy`.

use engine::{FnCtx, Value};
use sip::Uri;

use crate::glob::glob;
use crate::{code, text};

/// Removes every header whose name `keep` rejects; true when one was removed.
fn remove_where(f: &mut FnCtx<'_>, matches: impl Fn(&str) -> bool) -> i64 {
    let lines: Vec<usize> = f
        .msg
        .msg
        .headers()
        .filter(|h| matches(h.name_str) && !f.msg.edits.is_removed(h.index))
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
    let re = match crate::regex(&re) {
        Ok(re) => re,
        Err(e) => {
            f.log.log(
                -1,
                &format!("remove_hf_re: bad regular expression `{re}`: {e}\n"),
            );
            return -1;
        }
    };
    remove_where(f, |n| re.is_match(n))
}

/// `remove_hf_glob(glob)`: headers whose name matches the shell pattern (see [`glob`]).
pub fn remove_hf_glob(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let g = text(args.first());
    remove_where(f, |n| glob(g.as_bytes(), n.as_bytes()))
}

/// The R-URI's parameters (`;a=b;c`) as (name, value) pairs, as written.
fn ruri_params(f: &FnCtx<'_>) -> Option<Vec<(String, Option<String>)>> {
    let u = Uri::parse(f.msg.ruri()?).ok()?;
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
    Some(params)
}

/// `ruri_has_param(name[, value])`: the first parameter of that name decides; without a
/// value it must have none (or an empty one). Names and values compare as written, case
/// included, as OpenSIPS does.
pub fn ruri_has_param(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let name = text(args.first());
    let want = args
        .get(1)
        .filter(|v| !matches!(v, Value::Null))
        .map(|v| v.to_text().into_owned());
    let Some(params) = ruri_params(f) else {
        return -1;
    };
    let Some((_, value)) = params.iter().find(|(n, _)| *n == name) else {
        return -1;
    };
    let value = value.as_deref().unwrap_or("");
    code(want.as_deref().unwrap_or("") == value)
}

/// Where `part` (a slice of `whole`) starts in `whole`.
fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let at = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (at + part.len() <= whole.len()).then_some(at)
}

/// `ruri_add_param("name[=value]")`: `;name=value` after the last parameter (before the
/// `?headers`). Nothing to add succeeds, as in OpenSIPS; a leading `;` is not doubled.
pub fn ruri_add_param(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let p = text(args.first());
    let p = p.trim_start_matches(';');
    if p.is_empty() {
        return 1;
    }
    let Some(ruri) = f.msg.ruri().map(str::to_owned) else {
        return -1;
    };
    let Ok(u) = Uri::parse(&ruri) else { return -1 };
    let end = u
        .headers()
        .and_then(|h| offset_in(&ruri, h))
        .map_or(ruri.len(), |h| h.saturating_sub(1));
    let (head, tail) = (ruri.get(..end).unwrap_or(""), ruri.get(end..).unwrap_or(""));
    code(f.msg.set_ruri(&format!("{head};{p}{tail}")))
}

/// `ruri_del_param(name)`: the first parameter of that name (case included, as in OpenSIPS).
/// An empty name succeeds without a change.
pub fn ruri_del_param(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let name = text(args.first());
    if name.is_empty() {
        return 1;
    }
    let Some(ruri) = f.msg.ruri().map(str::to_owned) else {
        return -1;
    };
    let Ok(u) = Uri::parse(&ruri) else { return -1 };
    let params = u.params().as_str();
    let Some(mut at) = offset_in(&ruri, params).filter(|_| params.starts_with(';')) else {
        return -1;
    };
    // `at` walks the `;` that opens each parameter.
    for p in params.split(';').skip(1) {
        let end = at + 1 + p.len();
        let key = p.split_once('=').map_or(p, |(k, _)| k);
        if key == name {
            let rebuilt = format!(
                "{}{}",
                ruri.get(..at).unwrap_or(""),
                ruri.get(end..).unwrap_or("")
            );
            return code(f.msg.set_ruri(&rebuilt));
        }
        at = end;
    }
    -1
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

/// `ruri_tel2sip()`: `tel:+N;params` becomes `sip:+N;params@<From host>;user=phone`: the
/// whole telephone-subscriber, parameters included, is the user part (RFC 3261 §19.1.6), as
/// OpenSIPS writes it. The scheme is matched in any case.
pub fn ruri_tel2sip(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(ruri) = f.msg.ruri().map(str::to_owned) else {
        return -1;
    };
    let Some(number) = ruri
        .get(..4)
        .filter(|s| s.eq_ignore_ascii_case("tel:"))
        .and_then(|_| ruri.get(4..))
    else {
        // Not a tel URI: nothing to do.
        return 1;
    };
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
