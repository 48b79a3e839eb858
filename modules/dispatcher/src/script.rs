//! The dispatcher's script functions. A selection leaves its state in AVPs, as OpenSIPS does,
//! so it travels with the transaction into `failure_route`: the destinations left to try
//! (`dst_avp`, newest first, the current one on top), their sockets (`sock_avp`), the set
//! (`grp_avp`) and how many were stored (`cnt_avp`).

use std::sync::Arc;

use engine::{FnCtx, Value};

use crate::partition::{NewState, Partition, Settings, partition};
use crate::sets::{self, Pick};

/// The `flags` argument of `ds_select_dst`.
#[derive(Debug, Default, Clone, Copy)]
struct Flags {
    failover: bool,
    user_only: bool,
    use_default: bool,
    append: bool,
}

fn flags(text: &str) -> Option<Flags> {
    let mut f = Flags::default();
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        match c.to_ascii_lowercase() {
            'f' => f.failover = true,
            'u' => f.user_only = true,
            'd' => f.use_default = true,
            'a' => f.append = true,
            _ => return None,
        }
    }
    Some(f)
}

fn text_arg(args: &[Value], i: usize) -> Option<String> {
    args.get(i)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
}

fn int_arg(args: &[Value], i: usize) -> Option<i64> {
    args.get(i).filter(|v| !v.is_null()).and_then(Value::as_int)
}

/// The partition argument `i`, or `None` (logged) when no such partition exists.
fn partition_arg(args: &[Value], i: usize) -> Option<Arc<Partition>> {
    let name = text_arg(args, i);
    let p = partition(name.as_deref());
    if p.is_none() {
        log::error!(
            "dispatcher: unknown partition \"{}\"",
            name.as_deref().unwrap_or("default")
        );
    }
    p
}

/// The AVP stack called `name`, made to exist (the script may not mention it).
fn stack<'a>(f: &'a mut FnCtx<'_>, name: &str) -> Option<&'a mut Vec<Value>> {
    let slot = f.script.avp_id(name)?;
    if f.msg.avps.len() <= slot {
        f.msg.avps.resize(slot + 1, Vec::new());
    }
    f.msg.avps.get_mut(slot)
}

fn push(f: &mut FnCtx<'_>, name: &str, v: Value) {
    if let Some(s) = stack(f, name) {
        s.push(v);
    }
}

fn pop(f: &mut FnCtx<'_>, name: &str) -> Option<Value> {
    stack(f, name)?.pop()
}

fn top(f: &mut FnCtx<'_>, name: &str) -> Option<Value> {
    stack(f, name)?.last().cloned()
}

/// The hash input of algorithms 0–3: Call-ID, or From / To / R-URI as user and
/// host[:port] (the port only when it is not the default; only the user with flag `u`).
fn uri_keys(uri: &str, user_only: bool) -> Option<u32> {
    let u = sip::Uri::parse(uri.trim()).ok()?;
    let host = u.host()?;
    let user = u.user().unwrap_or("");
    if user_only {
        return Some(sets::hash(Some(user.as_bytes()), None));
    }
    let default = if u.scheme().as_str().eq_ignore_ascii_case("sips") {
        5061
    } else {
        5060
    };
    let hostport = match u.port() {
        Some(p) if p != default => format!("{}:{p}", host.as_str()),
        _ => host.as_str().to_owned(),
    };
    Some(sets::hash(Some(user.as_bytes()), Some(hostport.as_bytes())))
}

/// What algorithm `alg` starts from for this request; `None` when its input is missing.
fn pick(f: &mut FnCtx<'_>, alg: i64, user_only: bool) -> Option<Pick> {
    let m = &f.msg.msg;
    Some(match alg {
        0 => Pick::Hash(sets::hash(Some(m.call_id().ok()?.trim().as_bytes()), None)),
        1 => Pick::Hash(uri_keys(m.from_header().ok()?.uri().as_str(), user_only)?),
        2 => Pick::Hash(uri_keys(m.to_header().ok()?.uri().as_str(), user_only)?),
        3 => Pick::Hash(uri_keys(f.msg.ruri()?, user_only)?),
        4 => Pick::RoundRobin,
        5 => {
            let user = [
                sip::HeaderName::ProxyAuthorization,
                sip::HeaderName::Authorization,
            ]
            .into_iter()
            .find_map(|h| m.auth_headers(h).find_map(Result::ok)?.username())
            .map(|u| u.split('@').next().unwrap_or("").trim().to_owned())
            .filter(|u| !u.is_empty());
            match user {
                Some(u) => Pick::Hash(sets::hash(Some(u.as_bytes()), None)),
                None => Pick::RoundRobin,
            }
        }
        6 => Pick::Hash(random()),
        7 => {
            let Some(model) = f.script.modparam_str("dispatcher", "hash_pvar") else {
                log::error!("dispatcher: algorithm 7 needs the hash_pvar parameter");
                return None;
            };
            let text = f.eval_format(&model).to_text().trim().to_owned();
            if text.is_empty() {
                return None;
            }
            Pick::Hash(sets::hash(Some(text.as_bytes()), None))
        }
        _ => Pick::First,
    })
}

fn random() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into()),
    );
    h.finish() as u32
}

/// Sends the request to `uri`: as `$du`, or (`domain`) as the R-URI's host and port.
fn set_destination(f: &mut FnCtx<'_>, uri: &str, socket: Option<&str>, domain: bool) -> bool {
    if domain {
        let Ok(u) = sip::Uri::parse(uri) else {
            return false;
        };
        let Some(host) = u.host() else {
            return false;
        };
        let port = u.port().map(|p| p.to_string()).unwrap_or_default();
        if !f.msg.set_ruri_host(host.as_str()) || !f.msg.set_ruri_port(&port) {
            return false;
        }
    } else {
        f.msg.dst_uri = Some(uri.to_owned());
    }
    if let Some(s) = socket.filter(|s| !s.is_empty()) {
        f.msg.send_socket = Some(s.to_owned());
    }
    true
}

/// One destination as the AVPs carry it.
struct Chosen {
    uri: String,
    socket: Option<String>,
    attrs: Option<String>,
    script_attrs: Option<String>,
}

fn select(f: &mut FnCtx<'_>, args: &[Value], domain: bool) -> i64 {
    let (Some(set_id), Some(alg)) = (int_arg(args, 0), int_arg(args, 1)) else {
        return -1;
    };
    let Some(fl) = flags(&text_arg(args, 2).unwrap_or_default()) else {
        log::error!(
            "dispatcher: bad flags \"{}\" (f, u, d, a)",
            text_arg(args, 2).unwrap_or_default()
        );
        return -1;
    };
    let Some(p) = partition_arg(args, 3) else {
        return -1;
    };
    let max = int_arg(args, 4).map(|n| usize::try_from(n).unwrap_or(0));
    let Some(how) = pick(f, alg, fl.user_only) else {
        return -1;
    };
    let (chosen, rest) = {
        let mut all = p.sets();
        let Some(set) = all.set_mut(set_id) else {
            log::error!(
                "dispatcher: destination set [{set_id}] not found in partition [{}]",
                p.name
            );
            return -1;
        };
        let Some(sel) = sets::select(set, how, fl.use_default, max) else {
            return -1;
        };
        let take = |i: usize| {
            let d = &set.dests[i];
            Chosen {
                uri: d.uri.clone(),
                socket: d.socket.clone(),
                attrs: d.attrs.clone(),
                script_attrs: d.script_attrs.clone(),
            }
        };
        let rest: Vec<Chosen> = sel.failover.iter().map(|&i| take(i)).collect();
        (take(sel.index), rest)
    };
    if !set_destination(f, &chosen.uri, chosen.socket.as_deref(), domain) {
        return -1;
    }
    let a = &p.avps;
    let mut count = 0;
    if fl.failover {
        if !fl.append {
            for name in [Some(&a.dst), Some(&a.grp), Some(&a.cnt), Some(&a.sock)]
                .into_iter()
                .chain([a.attrs.as_ref(), a.script_attrs.as_ref()])
                .flatten()
            {
                if let Some(s) = stack(f, name) {
                    s.clear();
                }
            }
        }
        // The stack's top is what ds_next_dst takes next: push the farthest first.
        for d in rest.iter().rev() {
            push(
                f,
                &a.sock,
                Value::from(d.socket.clone().unwrap_or_default()),
            );
            push(f, &a.dst, Value::from(d.uri.clone()));
            push_attrs(f, &p, d);
            count += 1;
        }
        push(f, &a.dst, Value::from(chosen.uri.clone()));
        count += 1;
    }
    push_attrs(f, &p, &chosen);
    push(f, &a.grp, Value::Int(set_id));
    push(f, &a.cnt, Value::Int(count));
    1
}

fn push_attrs(f: &mut FnCtx<'_>, p: &Partition, d: &Chosen) {
    if let Some(name) = &p.avps.attrs {
        push(f, name, Value::from(d.attrs.clone().unwrap_or_default()));
    }
    if let Some(name) = &p.avps.script_attrs {
        push(
            f,
            name,
            Value::from(d.script_attrs.clone().unwrap_or_default()),
        );
    }
}

/// `ds_select_dst(set, alg[, flags[, partition[, max_res]]])`: `$du` becomes a destination of
/// the set. 1, or -1 when the set has nothing active (or does not exist).
pub fn ds_select_dst(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    select(f, args, false)
}

/// `ds_select_domain(…)`: as `ds_select_dst`, rewriting the R-URI's host and port instead.
pub fn ds_select_domain(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    select(f, args, true)
}

fn next(f: &mut FnCtx<'_>, args: &[Value], domain: bool) -> i64 {
    let Some(p) = partition_arg(args, 0) else {
        return -1;
    };
    let a = &p.avps;
    if pop(f, &a.dst).is_none() {
        return -1;
    }
    for name in [a.attrs.as_ref(), a.script_attrs.as_ref()]
        .into_iter()
        .flatten()
    {
        pop(f, name);
    }
    let Some(Value::Str(uri)) = top(f, &a.dst) else {
        return -1;
    };
    let socket = pop(f, &a.sock).map(|v| v.to_text().into_owned());
    if set_destination(f, &uri, socket.as_deref(), domain) {
        1
    } else {
        -1
    }
}

/// `ds_next_dst([partition])`: `$du` becomes the next destination the last selection (with
/// flag `f`) stored; -1 when none is left.
pub fn ds_next_dst(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    next(f, args, false)
}

/// `ds_next_domain([partition])`: as `ds_next_dst`, for the R-URI's host and port.
pub fn ds_next_domain(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    next(f, args, true)
}

/// `ds_mark_dst([state[, partition]])`: the current destination (the last selected or
/// `ds_next_dst`'s) becomes inactive (the default), active, or probing once
/// `ds_probing_threshold` calls said so.
pub fn ds_mark_dst(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let to = match text_arg(args, 0).filter(|s| !s.trim().is_empty()) {
        None => NewState::Inactive,
        Some(s) => match NewState::parse(&s) {
            Some(NewState::Probing { .. }) => NewState::Probing { counted: true },
            Some(st) => st,
            None => {
                log::error!("dispatcher: ds_mark_dst: bad state \"{s}\" (a, i, p)");
                return -1;
            }
        },
    };
    let Some(p) = partition_arg(args, 1) else {
        return -1;
    };
    let (Some(group), Some(Value::Str(uri))) = (
        top(f, &p.avps.grp).and_then(|v| v.as_int()),
        top(f, &p.avps.dst),
    ) else {
        return -1;
    };
    let settings = Settings::of(f.script);
    if p.set_state(&settings, group, &uri, to, "script function ds_mark()") {
        1
    } else {
        -1
    }
}

/// `ds_is_in_list(ip, port[, set[, partition[, active_only[, pattern]]]])`: whether the
/// address (port 0: any) is a destination's, in `set` or any set (-1 or left out);
/// `pattern` a shell-style match on the destination's attributes.
pub fn ds_is_in_list(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(ip) = text_arg(args, 0).and_then(|t| {
        t.trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok()
    }) else {
        log::error!("dispatcher: ds_is_in_list: not an IP address");
        return -1;
    };
    let port = int_arg(args, 1)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(0);
    let set = int_arg(args, 2).unwrap_or(-1);
    let Some(p) = partition_arg(args, 3) else {
        return -1;
    };
    let active_only = int_arg(args, 4).is_some_and(|n| n != 0);
    let pattern = text_arg(args, 5);
    let attrs = {
        let all = p.sets();
        all.sets
            .iter()
            .filter(|s| set == -1 || s.id == set)
            .flat_map(|s| s.dests.iter())
            .find(|d| {
                sets::has_addr(d, ip, port)
                    && (!active_only || d.is_active())
                    && pattern.as_deref().is_none_or(|pat| {
                        d.attrs.as_deref().is_some_and(|a| engine::fnmatch(pat, a))
                    })
            })
            .map(|d| (d.attrs.clone(), d.script_attrs.clone()))
    };
    let Some((attrs, script_attrs)) = attrs else {
        return -1;
    };
    if let Some(name) = &p.avps.attrs {
        push(f, name, Value::from(attrs.unwrap_or_default()));
    }
    if let Some(name) = &p.avps.script_attrs {
        push(f, name, Value::from(script_attrs.unwrap_or_default()));
    }
    1
}

/// `ds_count`'s filter: a combination of `a`, `i`, `p` (anything else counts all).
pub static COUNT_FILTER: engine::ParamCheck = engine::ParamCheck {
    what: "ds_count filter",
    check: |s| {
        if s.trim().is_empty() || s.chars().all(|c| "aipAIP".contains(c)) {
            Ok(())
        } else {
            Err(format!(
                "\"{s}\": the filter combines a (active), i (inactive), p (probing)"
            ))
        }
    },
};

/// `ds_count(set, filter, $var[, partition])`: how many destinations of the set are in the
/// states the filter names.
pub fn ds_count(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(set_id) = int_arg(args, 0) else {
        return -1;
    };
    let filter = text_arg(args, 1).unwrap_or_default().to_ascii_lowercase();
    let Some(p) = partition_arg(args, 3) else {
        return -1;
    };
    let count = {
        let all = p.sets();
        let Some(set) = all.set(set_id) else {
            return -1;
        };
        let (a, i, pr) = (
            filter.contains('a'),
            filter.contains('i'),
            filter.contains('p'),
        );
        let any = !(a || i || pr);
        set.dests
            .iter()
            .filter(|d| {
                any || (a && d.is_active()) || (i && d.inactive) || (pr && d.probing && !d.inactive)
            })
            .count()
    };
    f.set_output(2, Value::Int(count as i64));
    1
}

/// `ds_push_script_attrs(attrs, ip, port[, set[, partition]])`: attaches `attrs` to the
/// destinations at that address (port 0: any) of the set (or of every set).
pub fn ds_push_script_attrs(_f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let attrs = text_arg(args, 0).unwrap_or_default();
    let Some(ip) = text_arg(args, 1).and_then(|t| t.trim().parse().ok()) else {
        return -1;
    };
    let port = int_arg(args, 2)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(0);
    let set = int_arg(args, 3).unwrap_or(-1);
    let Some(p) = partition_arg(args, 4) else {
        return -1;
    };
    if push_script_attrs(&p, &attrs, ip, port, set) > 0 {
        1
    } else {
        -1
    }
}

/// Sets the script attributes of the matching destinations; how many matched.
pub fn push_script_attrs(
    p: &Partition,
    attrs: &str,
    ip: std::net::IpAddr,
    port: u16,
    set: i64,
) -> usize {
    let mut all = p.sets();
    let mut n = 0;
    for d in all
        .sets
        .iter_mut()
        .filter(|s| set == -1 || s.id == set)
        .flat_map(|s| s.dests.iter_mut())
        .filter(|d| sets::has_addr(d, ip, port))
    {
        d.script_attrs = Some(attrs.to_owned());
        n += 1;
    }
    n
}

/// `ds_get_script_attrs(uri, set[, partition], $var)`: the script attributes of the
/// destination `uri` of the set.
pub fn ds_get_script_attrs(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (Some(uri), Some(set)) = (text_arg(args, 0), int_arg(args, 1)) else {
        return -1;
    };
    let Some(p) = partition_arg(args, 2) else {
        return -1;
    };
    let attrs = p.sets().dest_mut(set, &uri).map(|d| d.script_attrs.clone());
    match attrs {
        Some(a) => {
            f.set_output(3, a.map_or(Value::Null, Value::from));
            1
        }
        None => -1,
    }
}
