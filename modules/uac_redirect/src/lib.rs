//! The OpenSIPS `uac_redirect` module (3.x/4.0): in a failure route, `get_redirects()` turns
//! the contacts of the 3xx reply into the request's new destinations — the first one the
//! R-URI, the others new branches — for the script to `t_relay()`.
//!
//! - Contacts are read from every Contact header of the reply (16 at most), with q (absent:
//!   0.01; a bad one skips the contact), filtered, then ordered by q as OpenSIPS orders them
//!   (ascending, header order among equals) and cut to `max_branch`, then to `max_total`.
//! - Filters are case-insensitive regular expressions on the contact URI: an accept filter
//!   keeps a contact; with `default_filter` "accept" a deny filter drops it; what matches
//!   neither follows `default_filter`. `set_accept_filter` / `set_deny_filter` add filters
//!   (5 each) for the message, with the flags `reset_all`, `reset_default`, `reset_added`;
//!   `get_redirects()` puts the module's own back afterwards.
//! - 1 when a contact was added, -1 otherwise.
//!
//! One departure: only the reply tm picked (the failure route's winning reply) is read, where
//! OpenSIPS reads every branch of the last forking step that ended with a 3xx.
#![forbid(unsafe_code)]

use std::cell::RefCell;

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamCheck, ParamType, Routes, Script, Value};
use regex::Regex;

static FLAGS: ParamCheck = ParamCheck {
    what: "filter flags",
    check: |s| match s.trim() {
        "" | "reset_all" | "reset_default" | "reset_added" => Ok(()),
        other => Err(format!(
            "unknown flag `{other}` (reset_all, reset_default, reset_added)"
        )),
    },
};

static MAX: ParamCheck = ParamCheck {
    what: "maximum",
    check: |s| match s.trim().parse::<u32>() {
        Ok(n) if n <= 255 => Ok(()),
        _ => Err("0 (no limit) to 255".into()),
    },
};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "uac_redirect",
    functions: &[
        FnSpec {
            name: "get_redirects",
            params: &[
                (Param::CheckedInt(&MAX), true),
                (Param::CheckedInt(&MAX), true),
            ],
            routes: Routes::FAILURE,
            run: get_redirects,
        },
        FnSpec {
            name: "set_accept_filter",
            params: &[(Param::Str, false), (Param::Checked(&FLAGS), false)],
            routes: Routes::FAILURE,
            run: |f, a| set_filter(f, a, true),
        },
        FnSpec {
            name: "set_deny_filter",
            params: &[(Param::Str, false), (Param::Checked(&FLAGS), false)],
            routes: Routes::FAILURE,
            run: |f, a| set_filter(f, a, false),
        },
    ],
    params: &[
        ("default_filter", ParamType::Str),
        ("deny_filter", ParamType::Str),
        ("accept_filter", ParamType::Str),
    ],
};

/// The filters in force for a message: the module's (from its parameters) and the added ones.
#[derive(Debug, Clone, Default)]
struct Filters {
    accept_default: Option<Regex>,
    deny_default: Option<Regex>,
    accept: Vec<Regex>,
    deny: Vec<Regex>,
}

thread_local! {
    /// The filters set for the message this worker handles: (its Call-ID and CSeq, filters).
    static SET: RefCell<Option<(String, Filters)>> = const { RefCell::new(None) };
}

fn regex(text: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(text)
        .case_insensitive(true)
        .build()
        .map_err(|e| e.to_string())
}

/// The module's own filters and whether what matches none is accepted.
fn defaults(script: &Script) -> (Filters, bool) {
    let get = |p: &str| {
        script
            .modparam_str("uac_redirect", p)
            .and_then(|t| regex(&t).ok())
    };
    let accept_by_default = script
        .modparam_str("uac_redirect", "default_filter")
        .is_none_or(|d| !d.trim().eq_ignore_ascii_case("deny"));
    (
        Filters {
            accept_default: get("accept_filter"),
            deny_default: get("deny_filter"),
            ..Filters::default()
        },
        accept_by_default,
    )
}

/// Checks the module's parameters: a filter that does not compile stops the start.
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("uac_redirect") {
        return Ok(());
    }
    for p in ["accept_filter", "deny_filter"] {
        if let Some(t) = script.modparam_str("uac_redirect", p) {
            regex(&t).map_err(|e| format!("uac_redirect: bad {p} \"{t}\": {e}"))?;
        }
    }
    if let Some(d) = script.modparam_str("uac_redirect", "default_filter")
        && !["accept", "deny"].contains(&d.trim().to_ascii_lowercase().as_str())
    {
        return Err(format!(
            "uac_redirect: bad default_filter \"{d}\" (accept or deny)"
        ));
    }
    Ok(())
}

/// The identity of the message being handled, so that filters set for one do not leak into
/// the next.
fn message_key(f: &FnCtx<'_>) -> String {
    let msg = &f.msg.msg;
    format!(
        "{}\u{0}{}",
        msg.call_id().unwrap_or_default(),
        msg.header(sip::HeaderName::CSeq).unwrap_or_default()
    )
}

fn current(f: &FnCtx<'_>) -> Filters {
    let key = message_key(f);
    SET.with(|s| match &*s.borrow() {
        Some((k, filters)) if *k == key => filters.clone(),
        _ => defaults(f.script).0,
    })
}

fn set_filter(f: &mut FnCtx<'_>, args: &[Value], accept: bool) -> i64 {
    let text = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let flags = args
        .get(1)
        .map(|v| v.to_text().trim().to_owned())
        .unwrap_or_default();
    let re = match regex(&text) {
        Ok(r) => r,
        Err(e) => {
            f.log
                .log(-1, &format!("uac_redirect: bad filter \"{text}\": {e}\n"));
            return -1;
        }
    };
    let mut filters = current(f);
    let (added, default) = if accept {
        (&mut filters.accept, &mut filters.accept_default)
    } else {
        (&mut filters.deny, &mut filters.deny_default)
    };
    if added.len() >= 5 {
        return -1;
    }
    match flags.as_str() {
        "reset_all" => {
            added.clear();
            *default = None;
        }
        "reset_default" => *default = None,
        "reset_added" => added.clear(),
        _ => {}
    }
    added.push(re);
    let key = message_key(f);
    SET.with(|s| *s.borrow_mut() = Some((key, filters)));
    1
}

/// Whether a contact URI passes the filters.
fn passes(uri: &str, filters: &Filters, accept_by_default: bool) -> bool {
    let any = |list: &[Regex], one: &Option<Regex>| one.iter().chain(list).any(|r| r.is_match(uri));
    if any(&filters.accept, &filters.accept_default) {
        return true;
    }
    if accept_by_default && any(&filters.deny, &filters.deny_default) {
        return false;
    }
    accept_by_default
}

/// A contact's q × 1000: absent 10 (0.01), `None` when it does not parse or is above 1.
fn q_of(q: Option<Option<&str>>) -> Option<i32> {
    match q {
        None => Some(10),
        Some(None) => None,
        Some(Some(v)) => {
            let v: f64 = v.trim().parse().ok()?;
            (0.0..=1.0)
                .contains(&v)
                .then(|| (v * 1000.0).round() as i32)
        }
    }
}

/// The contacts of a reply to follow: (URI, q × 1000), filtered, ordered, cut.
fn contacts(
    reply: &sip::SipMessage,
    filters: &Filters,
    accept_by_default: bool,
    max_branch: usize,
) -> Vec<(String, i32)> {
    let Ok(sip::Contacts::List(list)) = reply.contacts() else {
        return Vec::new();
    };
    let mut found: Vec<(String, i32)> = list
        .iter()
        .take(16)
        .filter_map(|c| Some((c.uri().as_str().to_owned(), q_of(c.param("q"))?)))
        .filter(|(uri, _)| passes(uri, filters, accept_by_default))
        .collect();
    found.sort_by_key(|(_, q)| *q);
    if max_branch > 0 {
        found.truncate(max_branch);
    }
    found
}

/// `get_redirects([max_total[, max_branch]])`.
fn get_redirects(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let limit = |i: usize| {
        args.get(i)
            .and_then(Value::as_int)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
    };
    let (max_total, max_branch) = (limit(0), limit(1));
    let filters = current(f);
    let (_, accept_by_default) = defaults(f.script);
    SET.with(|s| *s.borrow_mut() = None);
    let Some(reply) = f.msg.tx.as_ref().and_then(|t| t.picked_reply()) else {
        return -1;
    };
    if !(300..400).contains(&reply.status().unwrap_or(0)) {
        return -1;
    }
    let mut found = contacts(&reply, &filters, accept_by_default, max_branch);
    if max_total > 0 {
        found.truncate(max_total);
    }
    let mut added = 0;
    for (i, (uri, q)) in found.into_iter().enumerate() {
        if i == 0 {
            if !f.msg.set_ruri(&uri) {
                continue;
            }
            f.msg.ruri_q = q;
            f.msg.dst_uri = None;
        } else {
            f.msg.branches.push(engine::MsgBranch {
                uri,
                q,
                ..Default::default()
            });
        }
        added += 1;
    }
    if added > 0 { 1 } else { -1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_order() {
        let raw = b"SIP/2.0 302 Moved\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
            Contact: <sip:one@gw1.example>;q=0.5, <sip:two@gw2.example>\r\n\
            Contact: <sip:three@bad.example>;q=0.1, <sip:four@gw1.example>;q=x\r\n\
            Content-Length: 0\r\n\r\n";
        let reply = sip::SipMessage::parse(bytes::Bytes::from_static(raw)).unwrap();
        let none = Filters::default();
        assert_eq!(
            contacts(&reply, &none, true, 0),
            vec![
                ("sip:two@gw2.example".to_owned(), 10),
                ("sip:three@bad.example".to_owned(), 100),
                ("sip:one@gw1.example".to_owned(), 500),
            ]
        );
        let deny = Filters {
            deny: vec![regex("BAD").unwrap()],
            ..Filters::default()
        };
        assert_eq!(contacts(&reply, &deny, true, 0).len(), 2);
        let only_gw1 = Filters {
            accept: vec![regex("gw1").unwrap()],
            ..Filters::default()
        };
        assert_eq!(
            contacts(&reply, &only_gw1, false, 0),
            vec![("sip:one@gw1.example".to_owned(), 500)]
        );
        assert_eq!(contacts(&reply, &none, true, 1).len(), 1);
    }
}
