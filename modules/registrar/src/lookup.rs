//! `lookup`, `is_registered`, `is_contact_registered` and `remove`: reading the location table
//! from the script.

use engine::ctx::MsgBranch;
use engine::{FnCtx, Value};

use crate::Settings;
use crate::save::aor_of;
use crate::usrloc::{self, Contact};

/// `lookup()` found and set the target.
const FOUND: i64 = 1;
/// No live contact for the AOR.
const NOT_FOUND: i64 = -1;
/// Live contacts, none taking the request's method (`method-filtering`).
const METHOD_UNSUPPORTED: i64 = -2;
/// The request or the AOR could not be read.
const ERROR: i64 = -3;

/// The lookup() flags that change what rsips does.
#[derive(Debug, Default, Clone, Copy)]
struct LookupFlags {
    method_filtering: bool,
    no_branches: bool,
}

fn lookup_flags(text: &str) -> LookupFlags {
    let mut f = LookupFlags::default();
    for flag in text.split(',').map(str::trim) {
        match flag.split_once('=').map_or(flag, |(n, _)| n.trim()) {
            "method-filtering" | "m" => f.method_filtering = true,
            "no-branches" | "b" => f.no_branches = true,
            _ => {}
        }
    }
    f
}

/// Argument `i` as text; `None` when it was not given (or is empty).
pub(crate) fn text_arg(args: &[Value], i: usize) -> Option<String> {
    args.get(i)
        .filter(|v| !matches!(v, Value::Null))
        .map(|v| v.to_text().into_owned())
        .filter(|t| !t.is_empty())
}

/// `lookup(domain[, flags[, aor]])`: the R-URI becomes the first live contact of the AOR (the
/// R-URI's, or `aor`), each other one a branch; their destination is the address the REGISTER
/// came from when `received_avp` recorded it; their flags and send socket as registered.
pub fn lookup(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let table = text_arg(args, 0).unwrap_or_default();
    let flags = lookup_flags(&text_arg(args, 1).unwrap_or_default());
    if f.msg.msg.call_id().is_err() {
        return ERROR;
    }
    let s = Settings::of(f.script);
    let uri = match text_arg(args, 2) {
        Some(u) => u,
        None => match f.msg.ruri() {
            Some(u) => u.to_owned(),
            None => return ERROR,
        },
    };
    let Ok(aor) = aor_of(&uri, &s) else {
        return ERROR;
    };
    let now = usrloc::now();
    let contacts = {
        let mut tables = usrloc::tables();
        tables.maybe_sweep(now);
        tables.table(&table).contacts(&aor, now)
    };
    if contacts.is_empty() {
        return NOT_FOUND;
    }
    let method = f.msg.msg.method_str().unwrap_or("");
    let bit = usrloc::method_bit(method);
    let chosen: Vec<Contact> = contacts
        .into_iter()
        .filter(|c| !flags.method_filtering || c.methods & bit != 0)
        .collect();
    let Some((first, rest)) = chosen.split_first() else {
        return METHOD_UNSUPPORTED;
    };
    f.msg.new_ruri = Some(first.uri.clone());
    if let Some(d) = next_hop(first) {
        f.msg.dst_uri = Some(d);
    }
    f.msg.path = first.path.clone();
    f.msg.ruri_q = first.q;
    f.msg.branch_flags |= first.cflags;
    if let Some(sock) = &first.socket {
        f.msg.send_socket = Some(sock.clone());
    }
    if !flags.no_branches {
        for c in rest {
            f.msg.branches.push(MsgBranch {
                uri: c.uri.clone(),
                dst_uri: next_hop(c),
                path: c.path.clone(),
                q: c.q,
                flags: c.cflags,
                attrs: Default::default(),
                socket: c.socket.clone(),
            });
        }
    }
    FOUND
}

/// Where a contact is sent (`$du`): the first URI of its Path, else its received address
/// (OpenSIPS `push_branch`); `None` leaves the R-URI to decide.
pub fn next_hop(c: &Contact) -> Option<String> {
    if let Some(path) = &c.path {
        // Read leniently: a Path URI may carry `received="sip:…"` (path-received), which a
        // strict URI parser refuses.
        let first = sip::split_values(path).next()?.trim();
        let uri = match first.find('<') {
            Some(open) => first.get(open + 1..open + 1 + first[open + 1..].find('>')?)?,
            None => first,
        };
        return Some(uri.to_owned());
    }
    c.received.clone()
}

/// The AOR a check is about: `aor` when given, else the From URI (the To URI of a REGISTER).
fn checked_aor(f: &FnCtx<'_>, aor: Option<String>, s: &Settings) -> Option<String> {
    let uri = match aor {
        Some(a) => a,
        None => {
            let msg = &f.msg.msg;
            let h = if msg.method() == Some(sip::Method::Register) {
                msg.to_header()
            } else {
                msg.from_header()
            };
            h.ok()?.uri().as_str().to_owned()
        }
    };
    aor_of(&uri, s).ok()
}

/// `is_registered(domain[, aor])`: 1 when the AOR has a live contact, else -1.
pub fn is_registered(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let table = text_arg(args, 0).unwrap_or_default();
    let s = Settings::of(f.script);
    let Some(aor) = checked_aor(f, text_arg(args, 1), &s) else {
        return -1;
    };
    let now = usrloc::now();
    let live = usrloc::tables()
        .get(&table)
        .is_some_and(|t| !t.contacts(&aor, now).is_empty());
    if live { 1 } else { -1 }
}

/// `is_contact_registered(domain[, aor[, contact[, callid]]])`: 1 when the AOR has a binding
/// with that contact URI and/or Call-ID (exact match; without either, the request's first
/// Contact that does not unregister), else -1.
pub fn is_contact_registered(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let table = text_arg(args, 0).unwrap_or_default();
    let s = Settings::of(f.script);
    let Some(aor) = checked_aor(f, text_arg(args, 1), &s) else {
        return -1;
    };
    let mut contact = text_arg(args, 2);
    let callid = text_arg(args, 3);
    if contact.is_none() && callid.is_none() {
        let expires_hf = f.msg.msg.expires().ok().flatten();
        contact = match f.msg.msg.contacts() {
            Ok(sip::headers::Contacts::List(list)) => list
                .into_iter()
                .find(|c| {
                    let e = c
                        .param("expires")
                        .flatten()
                        .and_then(|v| v.trim().parse::<u32>().ok())
                        .or(expires_hf);
                    e != Some(0)
                })
                .map(|c| c.uri().as_str().to_owned()),
            _ => None,
        };
        if contact.is_none() {
            return -1;
        }
    }
    let tables = usrloc::tables();
    let found = tables
        .get(&table)
        .and_then(|t| t.all_contacts(&aor))
        .is_some_and(|list| {
            list.iter().any(|c| {
                contact.as_ref().is_none_or(|u| *u == c.uri)
                    && callid.as_ref().is_none_or(|id| *id == c.callid)
            })
        });
    if found { 1 } else { -1 }
}

/// `remove(domain, aor[, contact[, next_hop[, sip_instance[, bflag]]]])`: the AOR's bindings
/// (those with that exact contact URI, or all) leave the table; 1, or -1 for an AOR that does
/// not read.
pub fn remove(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let table = text_arg(args, 0).unwrap_or_default();
    let s = Settings::of(f.script);
    let Some(aor) = text_arg(args, 1).and_then(|a| aor_of(&a, &s).ok()) else {
        return -1;
    };
    let contact = text_arg(args, 2);
    let instance = text_arg(args, 4);
    let mut tables = usrloc::tables();
    let Some(t) = tables.get_mut(&table) else {
        return 1;
    };
    if contact.is_none() && instance.is_none() {
        t.remove_aor(&aor);
        return 1;
    }
    let doomed: Vec<Contact> = t
        .all_contacts(&aor)
        .unwrap_or_default()
        .iter()
        .filter(|c| {
            contact.as_ref().is_none_or(|u| *u == c.uri)
                && instance
                    .as_ref()
                    .is_none_or(|i| c.instance.as_ref() == Some(i))
        })
        .cloned()
        .collect();
    for c in doomed {
        t.remove_contact(&aor, &c.uri, Some(&c.callid));
    }
    1
}

/// The address a contact is reached at, as `(host, port)`: its received address when the
/// registrar kept one, else its Contact's (OpenSIPS compares against the same).
fn reached_at(c: &Contact) -> Option<(String, u16)> {
    let uri = c.received.as_deref().unwrap_or(&c.uri);
    let u = sip::Uri::parse(uri).ok()?;
    let host = u
        .host()?
        .as_str()
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    Some((host, u.port().unwrap_or(5060)))
}

/// Whether `ip` (and `port`, when given) names where `c` is reached (IP text compared as
/// addresses when both parse).
fn reached_by(c: &Contact, ip: &str, port: Option<u16>) -> bool {
    let Some((host, p)) = reached_at(c) else {
        return false;
    };
    let ip = ip.trim().trim_matches(['[', ']']);
    let same_ip = match (
        host.parse::<std::net::IpAddr>(),
        ip.parse::<std::net::IpAddr>(),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => host.eq_ignore_ascii_case(ip),
    };
    same_ip && port.is_none_or(|want| want == p)
}

/// `is_ip_registered(domain[, aor], ip[, port])`: 1 when a live contact of the AOR (default:
/// the From URI's, the To URI's for a REGISTER) is reached at `ip` (and `port`), else -1.
pub fn is_ip_registered(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let table = text_arg(args, 0).unwrap_or_default();
    let s = Settings::of(f.script);
    let Some(aor) = checked_aor(f, text_arg(args, 1), &s) else {
        return -1;
    };
    let Some(ip) = text_arg(args, 2) else {
        return -1;
    };
    let port = text_arg(args, 3).and_then(|p| p.trim().parse::<u16>().ok());
    let now = usrloc::now();
    let found = usrloc::tables().get(&table).is_some_and(|t| {
        t.contacts(&aor, now)
            .iter()
            .any(|c| reached_by(c, &ip, port))
    });
    if found { 1 } else { -1 }
}

/// `remove_ip_port(ip, port, domain[, aor])`: removes the contacts reached at `ip:port` (of
/// the AOR, or of every AOR); 1 when some went, else -1.
pub fn remove_ip_port(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (Some(ip), Some(port)) = (
        text_arg(args, 0),
        args.get(1)
            .and_then(Value::as_int)
            .and_then(|p| u16::try_from(p).ok()),
    ) else {
        return -1;
    };
    let table = text_arg(args, 2).unwrap_or_default();
    let s = Settings::of(f.script);
    let only = match text_arg(args, 3) {
        Some(a) => match aor_of(&a, &s) {
            Ok(aor) => Some(aor),
            Err(_) => return -1,
        },
        None => None,
    };
    let mut tables = usrloc::tables();
    let Some(t) = tables.get_mut(&table) else {
        return -1;
    };
    let doomed: Vec<(String, Contact)> = t
        .all_aors()
        .into_iter()
        .filter(|(aor, _)| only.as_deref().is_none_or(|o| o == *aor))
        .flat_map(|(aor, list)| {
            list.iter()
                .filter(|c| reached_by(c, &ip, Some(port)))
                .map(move |c| (aor.to_owned(), c.clone()))
        })
        .collect();
    for (aor, c) in &doomed {
        t.remove_contact(aor, &c.uri, Some(&c.callid));
    }
    if doomed.is_empty() { -1 } else { 1 }
}
