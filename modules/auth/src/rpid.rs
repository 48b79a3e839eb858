//! auth's Remote-Party-ID helpers: the RPID that `auth_db`'s `load_credentials` (or the
//! script) put in the `rpid_avp` AVP, appended as a header (`append_rpid_hf`, with
//! `rpid_prefix`/`rpid_suffix` or the function's own), and checked for an E.164 user
//! (`is_rpid_user_e164`).

use engine::{FnCtx, Value};

/// The AVP `rpid_avp` names (`$avp(rpid)` by default).
fn rpid(f: &FnCtx<'_>) -> Option<String> {
    let spec = f
        .script
        .modparam_str("auth", "rpid_avp")
        .unwrap_or_else(|| "$avp(rpid)".to_owned());
    let name = spec
        .trim()
        .strip_prefix("$avp(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(spec.trim())
        .to_owned();
    let id = f.script.avp_id(&name)?;
    f.msg
        .avps
        .get(id)?
        .last()
        .map(|v| v.to_text().into_owned())
        .filter(|v| !v.is_empty())
}

/// `append_rpid_hf([prefix, suffix])`: `Remote-Party-ID: <prefix><rpid><suffix>`; -1 without
/// an RPID.
pub fn append_rpid_hf(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(rpid) = rpid(f) else {
        f.log.log(-1, "append_rpid_hf: no RPID to append\n");
        return -1;
    };
    let given = |i: usize| {
        args.get(i)
            .filter(|v| !v.is_null())
            .map(|v| v.to_text().into_owned())
    };
    let param = |n: &str, d: &str| {
        f.script
            .modparam_str("auth", n)
            .unwrap_or_else(|| d.to_owned())
    };
    let (prefix, suffix) = match (given(0), given(1)) {
        (Some(p), Some(s)) => (p, s),
        _ => (
            param("rpid_prefix", ""),
            param(
                "rpid_suffix",
                ";party=calling;id-type=subscriber;screen=yes",
            ),
        ),
    };
    f.msg
        .edits
        .append("Remote-Party-ID", &format!("{prefix}{rpid}{suffix}"));
    1
}

/// `is_rpid_user_e164()`: whether the RPID's user is `+` and 2 to 15 digits.
pub fn is_rpid_user_e164(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(rpid) = rpid(f) else {
        return -1;
    };
    let uri = match rpid.find('<') {
        Some(lt) => rpid[lt + 1..].split('>').next().unwrap_or(""),
        None => rpid.split(';').next().unwrap_or(""),
    };
    let user = sip::Uri::parse(uri.trim())
        .ok()
        .and_then(|u| u.user().map(str::to_owned))
        .unwrap_or_default();
    let e164 = user
        .strip_prefix('+')
        .is_some_and(|d| (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
    if e164 { 1 } else { -1 }
}
