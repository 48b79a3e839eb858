//! The OpenSIPS `rr` module: `record_route`, `loose_route` (RFC 3261 §16.4 and §16.12,
//! strict-router translation and the preloaded-Route rule), `add_rr_param`,
//! `check_route_param`, `is_direction`. The Record-Route itself is built when the request is
//! relayed, from the socket it leaves by (engine `forward`).
#![forbid(unsafe_code)]

use cfg::ast::ParamValue;
use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamCheck, ParamType, RecordRoute, Routes, Value};
use sip::{HeaderName, NameAddr, Uri};

const RR_ROUTES: Routes = Routes::REQUEST.or(Routes::BRANCH).or(Routes::FAILURE);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "rr",
    functions: &[
        FnSpec {
            name: "record_route",
            params: &[(Param::Str, true)],
            routes: RR_ROUTES,
            run: record_route,
        },
        FnSpec {
            name: "record_route_preset",
            params: &[(Param::Str, false), (Param::Str, true)],
            routes: RR_ROUTES,
            run: record_route_preset,
        },
        FnSpec {
            name: "loose_route",
            params: &[],
            routes: Routes::REQUEST,
            run: loose_route,
        },
        FnSpec {
            name: "add_rr_param",
            params: &[(Param::Str, false)],
            routes: RR_ROUTES,
            run: add_rr_param,
        },
        FnSpec {
            name: "check_route_param",
            params: &[(Param::Checked(&ROUTE_PARAM_RE), false)],
            routes: Routes::REQUEST,
            run: check_route_param,
        },
        FnSpec {
            name: "is_direction",
            params: &[(Param::StaticStr, false)],
            routes: Routes::REQUEST,
            run: is_direction,
        },
    ],
    params: &[
        ("append_fromtag", ParamType::Int),
        ("enable_double_rr", ParamType::Int),
        ("add_username", ParamType::Int),
        ("enable_socket_mismatch_warning", ParamType::Int),
        ("ignore_user", ParamType::Str),
    ],
};

fn param_on(f: &FnCtx<'_>, name: &str, default: bool) -> bool {
    f.script
        .modparams("rr")
        .filter(|(p, _)| *p == name)
        .last()
        .map_or(default, |(_, v)| matches!(v, ParamValue::Int(n) if *n != 0))
}

fn normalize_params(p: &str) -> String {
    let p = p.trim();
    if p.is_empty() || p.starts_with(';') {
        p.to_owned()
    } else {
        format!(";{p}")
    }
}

/// A second `record_route()`/`record_route_preset()` for the same request fails and the first
/// stays, as in OpenSIPS.
fn already_recorded(f: &mut FnCtx<'_>) -> bool {
    let done = f.msg.record_route.as_ref().is_some_and(|rr| rr.done);
    if done {
        f.log.log(-1, "Double attempt to record-route\n");
    }
    done
}

/// The pending Record-Route of the request, with the module parameters applied.
fn pending<'a>(f: &'a mut FnCtx<'_>) -> &'a mut RecordRoute {
    let (ftag, double) = (
        param_on(f, "append_fromtag", true),
        param_on(f, "enable_double_rr", true),
    );
    // add_username: the user of the R-URI as received, else of the rewritten one (OpenSIPS).
    let user = param_on(f, "add_username", false)
        .then(|| {
            let received = f
                .msg
                .msg
                .request_uri()
                .ok()
                .and_then(|u| u.user().map(str::to_owned));
            received.or_else(|| {
                f.msg
                    .ruri()
                    .and_then(|r| Uri::parse(r).ok().and_then(|u| u.user().map(str::to_owned)))
            })
        })
        .flatten()
        .filter(|u| !u.is_empty());
    let rr = f.msg.record_route.get_or_insert_with(RecordRoute::default);
    rr.ftag = ftag;
    rr.double = double;
    rr.user = user;
    rr
}

/// `record_route([params])`.
fn record_route(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    if already_recorded(f) {
        return -1;
    }
    let params = args
        .first()
        .filter(|v| !matches!(v, Value::Null))
        .map(|v| normalize_params(&v.to_text()))
        .unwrap_or_default();
    let rr = pending(f);
    rr.params.push_str(&params);
    rr.done = true;
    1
}

/// `record_route_preset(addr[, addr2])`: Record-Route with the given address(es) instead of
/// the sockets' (the second needs `enable_double_rr`).
fn record_route_preset(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    if already_recorded(f) {
        return -1;
    }
    let Some(first) = args.first().map(|v| v.to_text().into_owned()) else {
        return -1;
    };
    let second = args
        .get(1)
        .filter(|v| !matches!(v, Value::Null))
        .map(|v| v.to_text().into_owned());
    if second.is_some() && !param_on(f, "enable_double_rr", true) {
        f.log.log(
            -1,
            "Attempt to double record-route while 'enable_double_rr' param is disabled\n",
        );
        return -1;
    }
    let rr = pending(f);
    rr.preset = Some((first, second));
    rr.done = true;
    1
}

/// `add_rr_param(";p=v")`: added to the Record-Route this request gets, now or when
/// `record_route()` runs later; on its own it adds no Record-Route.
fn add_rr_param(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(p) = args.first().map(|v| normalize_params(&v.to_text())) else {
        return -1;
    };
    let rr = pending(f);
    rr.params.push_str(&p);
    1
}

/// Every Route value with the index of its header line.
fn route_values(msg: &sip::SipMessage) -> Vec<(usize, String)> {
    msg.headers()
        .filter(|h| h.name == HeaderName::Route)
        .flat_map(|h| sip::split_values(h.value).map(move |v| (h.index, v.trim().to_owned())))
        .collect()
}

/// Whether a Route/R-URI value names us: its `maddr` or host, and its port — 5060 (5061 for
/// `sips:` and TLS) when it has none, as OpenSIPS' `get_uri_port` reads it.
fn is_ours(f: &FnCtx<'_>, uri: &Uri<'_>) -> bool {
    let Some(host) = uri.host() else { return false };
    let maddr = uri.param("maddr").flatten();
    let tls = matches!(uri.scheme(), sip::Scheme::Sips)
        || uri
            .param("transport")
            .flatten()
            .is_some_and(|t| t.eq_ignore_ascii_case("tls") || t.eq_ignore_ascii_case("wss"));
    let port = uri.port().unwrap_or(if tls { 5061 } else { 5060 });
    f.script
        .is_myself(maddr.unwrap_or(host.as_str()), Some(port))
}

/// The configured socket a Route URI of ours names (`proto:host:port`), if any.
fn socket_of(f: &FnCtx<'_>, u: &Uri<'_>) -> Option<String> {
    let host = u.host()?.as_str().to_ascii_lowercase();
    let proto = u
        .param("transport")
        .flatten()
        .map_or_else(|| "udp".to_owned(), str::to_ascii_lowercase);
    let default_port = if proto == "tls" || proto == "wss" {
        5061
    } else {
        5060
    };
    let name = format!("{proto}:{host}:{}", u.port().unwrap_or(default_port));
    f.script.has_socket(&name).then_some(name)
}

/// Rewrites the Route lines so that only `keep` (the values after the first `drop`) remain.
fn drop_routes(f: &mut FnCtx<'_>, values: &[(usize, String)], drop: usize) {
    let mut lines: Vec<usize> = values.iter().map(|(i, _)| *i).collect();
    lines.dedup();
    for line in lines {
        let remaining: Vec<&str> = values
            .iter()
            .enumerate()
            .filter(|(n, (i, _))| *i == line && *n >= drop)
            .map(|(_, (_, v))| v.as_str())
            .collect();
        let total = values.iter().filter(|(i, _)| *i == line).count();
        if remaining.is_empty() {
            f.msg.edits.remove(line);
        } else if remaining.len() != total {
            f.msg.edits.replace_value(line, remaining.join(", "));
        }
    }
}

/// `loose_route()`: true when the request follows a Route set (its next hop now in `$du` or
/// the R-URI); false without Route headers, and for a lone preloaded Route naming us on an
/// initial request (removed, so the script routes the request itself).
fn loose_route(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let values = route_values(&f.msg.msg);
    if values.is_empty() {
        return -1;
    }
    let parsed: Vec<Option<String>> = values
        .iter()
        .map(|(_, v)| {
            NameAddr::parse(v)
                .ok()
                .map(|na| na.uri().as_str().to_owned())
        })
        .collect();
    // A top Route that does not parse is no Route set to follow (OpenSIPS).
    if parsed.first().is_none_or(Option::is_none) {
        return -1;
    }
    // A strict router before us put our Record-Route URI in the R-URI (RFC 3261 §16.4): the
    // last Route value is the real destination.
    let ruri = f.msg.ruri().unwrap_or("").to_owned();
    // Ours by host, port and transport, whatever the user part (OpenSIPS' is_myself).
    let ruri_ours = Uri::parse(&ruri).is_ok_and(|u| is_ours(f, &u));
    if ruri_ours && f.msg.msg.to_tag().ok().flatten().is_some() {
        let Some(Some(last)) = parsed.last() else {
            return -1;
        };
        // With double RR the other half of our pair may still be on top: it goes too.
        let twin = parsed.len() > 1
            && parsed.first().and_then(Option::as_deref).is_some_and(|v| {
                Uri::parse(v).is_ok_and(|u| u.param("r2").is_some() && is_ours(f, &u))
            });
        // The next hop is the first remaining Route when it is a loose router.
        let next = parsed
            .get(usize::from(twin))
            .filter(|_| parsed.len() > 1 + usize::from(twin))
            .and_then(Option::as_deref)
            .filter(|v| Uri::parse(v).is_ok_and(|u| u.is_loose_router()))
            .map(str::to_owned);
        if let Ok(u) = Uri::parse(last) {
            f.msg.rr_params = Some(params_of(&u));
        }
        let last = last.clone();
        f.msg.set_ruri(&last);
        if next.is_some() {
            f.msg.dst_uri = next;
        }
        let n = values.len();
        let kept: Vec<(usize, String)> = values.clone();
        // Remove the last value (and our twin on top).
        let mut lines: Vec<usize> = kept.iter().map(|(i, _)| *i).collect();
        lines.dedup();
        for line in lines {
            let remaining: Vec<&str> = kept
                .iter()
                .enumerate()
                .filter(|(k, (i, _))| *i == line && *k + 1 != n && !(twin && *k == 0))
                .map(|(_, (_, v))| v.as_str())
                .collect();
            let total = kept.iter().filter(|(i, _)| *i == line).count();
            if remaining.is_empty() {
                f.msg.edits.remove(line);
            } else if remaining.len() != total {
                f.msg.edits.replace_value(line, remaining.join(", "));
            }
        }
        engine::hooks::dialog_routed(f.msg);
        engine::hooks::routed(f.msg);
        return 1;
    }
    // Our own Route on top is consumed; when it carries `r2` (double RR), so is the one after
    // it, whatever it names (OpenSIPS), unless `enable_double_rr` is off.
    let mut ours = 0;
    if let Some(Ok(u)) = parsed.first().and_then(Option::as_deref).map(Uri::parse)
        && is_ours(f, &u)
    {
        f.msg.rr_params = Some(params_of(&u));
        ours = 1;
        if u.param("r2").is_some() && param_on(f, "enable_double_rr", true) && parsed.len() > 1 {
            ours = 2;
        }
    }
    // Double RR: the request leaves by the socket the second of our pair names (the other
    // network of a multihomed proxy), as OpenSIPS forces it.
    if ours == 2
        && let Some(Ok(u)) = parsed.get(1).and_then(Option::as_deref).map(Uri::parse)
        && let Some(name) = socket_of(f, &u)
    {
        f.msg.send_socket = Some(name);
    }
    let initial = f.msg.msg.to_tag().ok().flatten().is_none();
    if ours > 0 && ours == values.len() && initial {
        // A preloaded Route to us on an initial request: removed, not followed; the modules
        // still see it (OpenSIPS runs its rr callbacks: path's `received`).
        drop_routes(f, &values, ours);
        engine::hooks::routed(f.msg);
        return -1;
    }
    drop_routes(f, &values, ours);
    // A sequential request of ours: the dialog module matches it (by its `did`).
    if ours > 0 {
        engine::hooks::dialog_routed(f.msg);
        engine::hooks::routed(f.msg);
    }
    match parsed.get(ours) {
        Some(Some(next)) => {
            let loose = Uri::parse(next).is_ok_and(|u| u.is_loose_router());
            if loose {
                f.msg.dst_uri = Some(next.clone());
            } else {
                // A strict router next (RFC 3261 §16.6 step 6): it becomes the R-URI and the
                // R-URI goes to the end of the Route set.
                let old = ruri;
                f.msg.set_ruri(next);
                if let Some((line, _)) = values.get(ours) {
                    let rest: Vec<&str> = values
                        .iter()
                        .skip(ours + 1)
                        .filter(|(i, _)| i == line)
                        .map(|(_, v)| v.as_str())
                        .collect();
                    if rest.is_empty() {
                        f.msg.edits.remove(*line);
                    } else {
                        f.msg.edits.replace_value(*line, rest.join(", "));
                    }
                }
                f.msg.edits.append("Route", &format!("<{old}>"));
            }
            1
        }
        // Only our Route(s): the R-URI is the destination.
        _ => 1,
    }
}

/// The URI parameters as written (`;lr;ftag=x`).
/// The parameters of our Route URI as `$rr_params` and `check_route_param` see them: as
/// OpenSIPS keeps a parsed URI's parameters, without the `;` that opens them.
fn params_of(u: &Uri<'_>) -> String {
    let p = u.params().as_str();
    p.strip_prefix(';').unwrap_or(p).to_owned()
}

/// `check_route_param`'s regex, as OpenSIPS compiles regex parameters (REG_ICASE); a literal
/// that does not compile stops the script from loading.
fn route_param_re(re: &str) -> Result<std::rc::Rc<regex::Regex>, String> {
    engine::regex_cache::icase(re, true).map_err(|e| e.to_string())
}

static ROUTE_PARAM_RE: ParamCheck = ParamCheck {
    what: "regular expression",
    check: |re| route_param_re(re).map(|_| ()),
};

/// `check_route_param(re)`: the parameters of our Route, with the `;` that opens them, against
/// the regex; false when the Route had none.
fn check_route_param(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let re = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let re = match route_param_re(&re) {
        Ok(re) => re,
        Err(e) => {
            f.log
                .log(-1, &format!("check_route_param: bad regex `{re}`: {e}\n"));
            return -1;
        }
    };
    let ok = f
        .msg
        .rr_params
        .as_deref()
        .filter(|p| !p.is_empty())
        .is_some_and(|p| re.is_match(&format!(";{p}")));
    if ok { 1 } else { -1 }
}

/// `is_direction("downstream"|"upstream")`: upstream only when our Route's `ftag` and the From
/// tag are both present and differ; without either the request counts as downstream (OpenSIPS).
fn is_direction(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let dir = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let want_up = dir.eq_ignore_ascii_case("upstream");
    if f.msg.is_upstream() == want_up {
        1
    } else {
        -1
    }
}
