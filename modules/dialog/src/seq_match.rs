//! Matching a sequential request to its dialog as OpenSIPS' `match_dialog` does, with the
//! dialog id a request addressed to us without Route headers (topology hiding's Contact)
//! names in its R-URI, and handing the requests of dialogs another module marked to it.

use std::sync::OnceLock;

use engine::FnCtx;

use crate::table::{self, Dialog};
use crate::{matched, settings};

/// A `dlg_match_mode` name as its number.
pub fn match_mode(name: &str) -> Option<i64> {
    match name.to_ascii_uppercase().as_str() {
        "DID_ONLY" => Some(0),
        "DID_FALLBACK" => Some(1),
        "DID_NONE" => Some(2),
        _ => None,
    }
}

/// What another module does with a sequential request matched to a dialog it marked in
/// [`table::Dialog::mod_flags`] (OpenSIPS' `DLGCB_REQ_WITHIN`): topology_hiding routes it
/// from the state it keeps there. It gets the dialog as it was when the request came, and
/// whether the request goes upstream (from the callee).
pub type WithinHook = fn(&mut FnCtx<'_>, &Dialog, bool);

static WITHIN: OnceLock<WithinHook> = OnceLock::new();

/// Installs the [`WithinHook`] (once).
pub fn on_request_within(hook: WithinHook) {
    let _ = WITHIN.set(hook);
}

/// OpenSIPS' `match_dialog`: finds the dialog of a sequential request (`mode` as
/// `dlg_match_mode`, `None` the module's); true when the request has one. A request for us
/// without Route headers (topology hiding's Contact) names its dialog in the R-URI: a `did`
/// parameter, or `….did.<entry>.<id>` in the user part; a malformed one matches nothing.
pub fn match_request(f: &mut FnCtx<'_>, mode: Option<i64>) -> bool {
    if f.msg.dialog.is_some() {
        return true;
    }
    let mode = mode.unwrap_or(settings().match_mode);
    let uri_did = uri_did(f);
    if uri_did
        .as_ref()
        .is_some_and(|d| table::parse_did(d).is_none())
    {
        f.log.log(
            -1,
            &format!(
                "match_dialog: malformed dialog id [{}]\n",
                uri_did.as_deref().unwrap_or("")
            ),
        );
        return false;
    }
    let kept = matched(f.msg, mode, uri_did);
    if let (Some(d), Some(mark), Some(hook)) = (kept, f.msg.dialog, WITHIN.get()) {
        hook(f, &d, mark.upstream);
    }
    f.msg.dialog.is_some()
}

/// The dialog id a request names in its R-URI when it is addressed to us and has no Route
/// headers (topology hiding): the `rr_param` URI parameter, else `.did.` in the user part.
fn uri_did(f: &FnCtx<'_>) -> Option<String> {
    let m = &f.msg.msg;
    if m.header(sip::HeaderName::Route).is_some() {
        return None;
    }
    let ruri = sip::Uri::parse(f.msg.ruri()?).ok()?;
    let host = ruri.host().map(|h| h.as_str().to_owned())?;
    if !f.script.is_myself(&host, Some(ruri.port().unwrap_or(5060))) {
        return None;
    }
    let name = &settings().rr_param;
    if let Some(v) = ruri
        .params()
        .iter()
        .filter_map(Result::ok)
        .find(|p| p.name == name.as_str())
    {
        return Some(v.value.unwrap_or("").to_owned());
    }
    did_in_user(ruri.user()?, name).map(str::to_owned)
}

/// `X.did.<entry>.<id>`: what follows the first `.did.` of the user part.
fn did_in_user<'a>(user: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = user;
    while let Some(i) = rest.find('.') {
        let after = rest.get(i + 1..)?;
        // OpenSIPS wants more than one character after the name's two dots.
        if after.len() > name.len() + 2
            && after.starts_with(name)
            && after.as_bytes().get(name.len()) == Some(&b'.')
        {
            return after.get(name.len() + 1..);
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::did_in_user;

    #[test]
    fn the_dialog_id_follows_did_in_the_user_part() {
        assert_eq!(did_in_user("X.did.a1.b2", "did"), Some("a1.b2"));
        assert_eq!(did_in_user("alice.did.0.f", "did"), Some("0.f"));
        assert_eq!(did_in_user("a.b.did.1.2", "did"), Some("1.2"));
        assert_eq!(did_in_user("X.dlg.1.2", "dlg"), Some("1.2"));
        // Nothing after it, another name, no separator: none.
        assert_eq!(did_in_user("X.did.", "did"), None);
        assert_eq!(did_in_user("X.did.a", "did"), None);
        assert_eq!(did_in_user("X.did.ab", "did"), Some("ab"));
        assert_eq!(did_in_user("X.dix.1.2", "did"), None);
        assert_eq!(did_in_user("did.1.2", "did"), None);
        assert_eq!(did_in_user("X.did1.2", "did"), None);
        assert_eq!(did_in_user("", "did"), None);
        assert_eq!(did_in_user("é.did.é", "did"), Some("é"));
    }
}
