//! The OpenSIPS `drouting` module (dynamic routing): gateways, carriers, prefix rules with
//! priorities and time recurrences, and user groups, read from a database
//! (`dr_gateways`, `dr_carriers`, `dr_rules`, `dr_groups`); `do_routing` rewrites the
//! Request-URI to the first gateway of the best rule (its strip and prefix applied to the
//! number), `use_next_gw` moves to the next one on failure, `is_from_gw` / `goes_to_gw`
//! recognise gateways, and the MI reloads the tables and turns gateways and carriers on and
//! off. The failover list travels in AVPs, as OpenSIPS keeps it.
#![forbid(unsafe_code)]

pub mod data;
pub mod mi;

use std::sync::{Arc, Mutex, OnceLock};

use db::Connection;
use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};

use data::{Data, Pick, Tables};

use ParamType::{Int, Str};

const ROUTING: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::BRANCH)
    .or(Routes::LOCAL)
    .or(Routes::ONREPLY);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "drouting",
    functions: &[
        FnSpec {
            name: "do_routing",
            params: &[
                (Param::Int, true),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Var, true),
                (Param::Var, true),
                (Param::Var, true),
                (Param::Str, true),
            ],
            routes: ROUTING,
            run: do_routing,
        },
        FnSpec {
            name: "route_to_gw",
            params: &[(Param::Str, false), (Param::Var, true), (Param::Str, true)],
            routes: ROUTING,
            run: route_to_gw,
        },
        FnSpec {
            name: "route_to_carrier",
            params: &[
                (Param::Str, false),
                (Param::Var, true),
                (Param::Var, true),
                (Param::Str, true),
            ],
            routes: ROUTING,
            run: route_to_carrier,
        },
        FnSpec {
            name: "use_next_gw",
            params: &[
                (Param::Var, true),
                (Param::Var, true),
                (Param::Var, true),
                (Param::Str, true),
            ],
            routes: ROUTING,
            run: use_next_gw,
        },
        FnSpec {
            name: "is_from_gw",
            params: &[
                (Param::Int, true),
                (Param::Str, true),
                (Param::Var, true),
                (Param::Var, true),
                (Param::Str, true),
            ],
            routes: ROUTING,
            run: is_from_gw,
        },
        FnSpec {
            name: "goes_to_gw",
            params: &[
                (Param::Int, true),
                (Param::Str, true),
                (Param::Var, true),
                (Param::Var, true),
                (Param::Str, true),
            ],
            routes: ROUTING,
            run: goes_to_gw,
        },
        FnSpec {
            name: "dr_is_gw",
            params: &[
                (Param::Str, false),
                (Param::Int, true),
                (Param::Str, true),
                (Param::Var, true),
                (Param::Var, true),
                (Param::Str, true),
            ],
            routes: Routes::ALL,
            run: dr_is_gw,
        },
        FnSpec {
            name: "dr_disable",
            params: &[(Param::Str, true)],
            routes: ROUTING,
            run: dr_disable,
        },
        FnSpec {
            name: "dr_match",
            params: &[
                (Param::Int, false),
                (Param::Str, true),
                (Param::Str, false),
                (Param::Var, true),
                (Param::Str, true),
            ],
            routes: ROUTING,
            run: dr_match,
        },
    ],
    params: &[
        ("db_url", Str),
        ("drd_table", Str),
        ("drr_table", Str),
        ("drc_table", Str),
        ("drg_table", Str),
        ("drg_user_col", Str),
        ("drg_domain_col", Str),
        ("drg_grpid_col", Str),
        ("use_domain", Int),
        ("use_partitions", Int),
        ("ruri_avp", Str),
        ("gw_id_avp", Str),
        ("gw_priprefix_avp", Str),
        ("gw_sock_avp", Str),
        ("rule_id_avp", Str),
        ("rule_prefix_avp", Str),
        ("carrier_id_avp", Str),
        ("probing_interval", Int),
        ("probing_method", Str),
        ("probing_from", Str),
        ("probing_reply_codes", Str),
        ("persistent_state", Int),
        ("no_concurrent_reload", Int),
        ("define_blacklist", Str),
        ("cluster_id", Int),
        ("cluster_sharing_tag", Str),
        ("enable_restart_persistency", Int),
        ("extra_prefix_chars", Str),
    ],
};

/// The AVP with the id of the gateway the request goes to now (`dr_disable`'s).
pub const CURRENT_GW_AVP: &str = "___dr_cur_gw__";

/// The AVPs the failover list lives in (internal names, as OpenSIPS' defaults).
pub const AVPS: [&str; 5] = [
    "___dr_ruri__",
    "___dr_sock__",
    "___dr_gw_id__",
    "___dr_gw_att__",
    "___dr_cr_att__",
];

/// The loaded data and where it comes from.
#[derive(Debug)]
pub struct Router {
    db: Arc<dyn Connection>,
    tables: Tables,
    data: Mutex<Arc<Data>>,
}

impl Router {
    pub fn data(&self) -> Arc<Data> {
        Arc::clone(
            &self
                .data
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Reads the tables again and swaps them in (keeping the states the MI set when
    /// `inherit`); a failed read keeps the old data.
    pub fn reload(&self, inherit: bool) -> Result<(), String> {
        let mut fresh = Data::load(self.db.as_ref(), &self.tables)?;
        let mut data = self
            .data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if inherit {
            for g in &mut fresh.gateways {
                if let Some(old) = data.gateway(&g.id) {
                    g.disabled = old.disabled;
                    g.probing = old.probing;
                }
            }
            for c in &mut fresh.carriers {
                if let Some(old) = data.carriers.iter().find(|o| o.id == c.id) {
                    c.disabled = old.disabled;
                }
            }
        }
        *data = Arc::new(fresh);
        Ok(())
    }

    /// Changes the data in place (MI state changes).
    pub fn update(&self, f: impl FnOnce(&mut Data) -> bool) -> bool {
        let mut data = self
            .data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut copy = (**data).clone();
        let done = f(&mut copy);
        if done {
            *data = Arc::new(copy);
        }
        done
    }
}

fn router_cell() -> &'static OnceLock<Router> {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    &ROUTER
}

pub fn router() -> Option<&'static Router> {
    router_cell().get()
}

/// Opens the database and loads the routing data, as the module does when OpenSIPS starts;
/// tables that cannot be read stop the start.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("drouting") {
        return Ok(());
    }
    if script
        .modparam_int("drouting", "use_partitions")
        .is_some_and(|n| n != 0)
    {
        return Err("drouting: use_partitions is not supported by rsips yet".into());
    }
    let param = |n: &str, d: &str| {
        script
            .modparam_str("drouting", n)
            .unwrap_or_else(|| d.to_owned())
    };
    let url = param("db_url", "mysql://opensips:opensipsrw@localhost/opensips");
    let db = db::open_for("drouting", &url, |m| script.loads(m), options)?;
    let tables = Tables {
        gateways: param("drd_table", "dr_gateways"),
        rules: param("drr_table", "dr_rules"),
        carriers: param("drc_table", "dr_carriers"),
        groups: param("drg_table", "dr_groups"),
    };
    let data = Data::load(db.as_ref(), &tables)?;
    log::info!(
        "drouting: {} gateways, {} carriers, {} rules loaded",
        data.gateways.len(),
        data.carriers.len(),
        data.rules.len()
    );
    let _ = router_cell().set(Router {
        db,
        tables,
        data: Mutex::new(Arc::new(data)),
    });
    Ok(())
}

fn text_arg(args: &[Value], i: usize) -> Option<String> {
    args.get(i)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
        .filter(|s| !s.is_empty())
}

fn stack<'a>(f: &'a mut FnCtx<'_>, name: &str) -> Option<&'a mut Vec<Value>> {
    let slot = f.script.avp_id(name)?;
    if f.msg.avps.len() <= slot {
        f.msg.avps.resize(slot + 1, Vec::new());
    }
    f.msg.avps.get_mut(slot)
}

/// The Request-URI for a gateway: the number with the gateway's strip and prefix, its
/// address as host[:port], the original's parameters and headers kept (OpenSIPS'
/// `build_ruri`).
fn gw_ruri(ruri: &str, gw: &data::Gateway) -> Option<String> {
    let u = sip::Uri::parse(ruri).ok()?;
    let user = u.user().unwrap_or("");
    let strip = gw.strip.min(user.len());
    let rest = user.get(strip..).unwrap_or("");
    let number = format!("{}{rest}", gw.pri_prefix);
    let mut out = String::from("sip:");
    out.push_str(&number);
    if let Some(pass) = u.password() {
        out.push(':');
        out.push_str(pass);
    }
    if !number.is_empty() || u.password().is_some() {
        out.push('@');
    }
    out.push_str(&gw.address);
    let params = u.params().as_str();
    if !params.is_empty() {
        out.push(';');
        out.push_str(params.trim_start_matches(';'));
    }
    if let Some(h) = u.headers() {
        out.push('?');
        out.push_str(h);
    }
    Some(out)
}

/// Sends the request to `pick`: the R-URI rewritten, its socket forced; its attributes to
/// the output variables `gw_out` / `cr_out` (parameter positions).
fn apply(
    f: &mut FnCtx<'_>,
    ruri: &str,
    pick: &Pick,
    gw_out: Option<usize>,
    cr_out: Option<usize>,
) -> bool {
    if !f.msg.set_ruri(ruri) {
        return false;
    }
    if let Some(s) = stack(f, CURRENT_GW_AVP) {
        s.clear();
        s.push(Value::from(pick.gw.id.clone()));
    }
    if let Some(s) = &pick.gw.socket {
        f.msg.send_socket = Some(s.clone());
    }
    if let Some(at) = gw_out {
        f.set_output(at, Value::from(pick.gw.attrs.clone().unwrap_or_default()));
    }
    if let Some(at) = cr_out {
        f.set_output(
            at,
            Value::from(pick.carrier_attrs.clone().unwrap_or_default()),
        );
    }
    true
}

/// `do_routing([group][, flags][, whitelist][, $rule_attrs][, $gw_attrs][, $carrier_attrs])`:
/// 1 when a rule routes the number (the R-URI goes to its first gateway), -1 when none does.
pub fn do_routing(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(r) = router() else {
        return -1;
    };
    let data = r.data();
    let flags = text_arg(args, 1).unwrap_or_default();
    let (fallback, strict, check_only) = (
        flags.contains('F'),
        flags.contains('L'),
        flags.contains('C'),
    );
    let Some(ruri) = f.msg.ruri().map(str::to_owned) else {
        return -1;
    };
    let number = sip::Uri::parse(&ruri)
        .ok()
        .and_then(|u| u.user().map(str::to_owned))
        .unwrap_or_default();
    let group = match args.first().and_then(Value::as_int) {
        Some(g) if g >= 0 => g,
        _ => {
            let use_domain = f
                .script
                .modparam_int("drouting", "use_domain")
                .is_none_or(|n| n != 0);
            let from = f.msg.msg.from_header().ok().and_then(|h| {
                Some((
                    h.uri().user()?.to_owned(),
                    h.uri().host()?.as_str().to_owned(),
                ))
            });
            match from.and_then(|(u, d)| data.group_of(&u, &d, use_domain)) {
                Some(g) => g,
                None => return -1,
            }
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let rules = data.rules_for(group, &number, now, fallback, strict);
    if rules.is_empty() {
        return -1;
    }
    if check_only {
        return 1;
    }
    let whitelist: Option<Vec<String>> =
        text_arg(args, 2).map(|w| w.split(',').map(|x| x.trim().to_owned()).collect());
    let seed = now as u64 ^ f.msg.id.rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15;
    let mut picks: Vec<(Pick, Option<String>)> = Vec::new();
    for rule in &rules {
        for p in data.expand(rule, seed) {
            if whitelist.as_ref().is_none_or(|w| w.contains(&p.gw.id)) {
                picks.push((p, rule.attrs.clone()));
            }
        }
    }
    let attrs = picks
        .first()
        .and_then(|(_, a)| a.clone())
        .unwrap_or_default();
    let picks: Vec<Pick> = picks.into_iter().map(|(p, _)| p).collect();
    if picks.is_empty() {
        return -1;
    }
    f.set_output(3, Value::from(attrs));
    route_to(f, &ruri, &picks, Some(4), Some(5))
}

/// Sends the request to the first of `picks` and leaves the others, in order, for
/// `use_next_gw`; the first one's gateway and carrier attributes go to the output variables
/// at those parameter positions.
fn route_to(
    f: &mut FnCtx<'_>,
    ruri: &str,
    picks: &[Pick],
    gw_out: Option<usize>,
    cr_out: Option<usize>,
) -> i64 {
    let Some((first, rest)) = picks.split_first() else {
        return -1;
    };
    let Some(first_ruri) = gw_ruri(ruri, &first.gw) else {
        return -1;
    };
    for name in AVPS {
        if let Some(s) = stack(f, name) {
            s.clear();
        }
    }
    // The stack's top is the next to try: push the farthest first.
    for p in rest.iter().rev() {
        let Some(next) = gw_ruri(ruri, &p.gw) else {
            continue;
        };
        let values = [
            next,
            p.gw.socket.clone().unwrap_or_default(),
            p.gw.id.clone(),
            p.gw.attrs.clone().unwrap_or_default(),
            p.carrier_attrs.clone().unwrap_or_default(),
        ];
        for (name, v) in AVPS.iter().zip(values) {
            if let Some(s) = stack(f, name) {
                s.push(Value::from(v));
            }
        }
    }
    if apply(f, &first_ruri, first, gw_out, cr_out) {
        1
    } else {
        -1
    }
}

/// The request's R-URI and a seed for weighted orders.
fn ruri_and_seed(f: &FnCtx<'_>) -> Option<(String, u64)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ruri = f.msg.ruri()?.to_owned();
    Some((ruri, now ^ f.msg.id.rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15))
}

/// The gateways (or carriers) of a comma-separated id list, as a rule without prefix would
/// route to them: in the given order, disabled ones left out, carriers by their own sorting.
fn listed(data: &Data, list: &str, carriers: bool, seed: u64) -> Vec<Pick> {
    let targets = list
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| {
            if carriers {
                data::Target::Carrier(id.to_owned(), 0)
            } else {
                data::Target::Gw(id.to_owned(), 0)
            }
        })
        .collect();
    let rule = data::Rule {
        id: 0,
        groups: Vec::new(),
        prefix: String::new(),
        time: None,
        priority: 0,
        targets,
        sort_weights: false,
        attrs: None,
    };
    data.expand(&rule, seed)
}

/// `route_to_gw(gw_list[, $gw_attrs][, partition])`: the request goes to the first usable
/// gateway of the list, the others stay for `use_next_gw`; -1 when none is usable.
pub fn route_to_gw(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (Some(r), Some(list)) = (router(), text_arg(args, 0)) else {
        return -1;
    };
    let Some((ruri, seed)) = ruri_and_seed(f) else {
        return -1;
    };
    let picks = listed(&r.data(), &list, false, seed);
    route_to(f, &ruri, &picks, Some(1), None)
}

/// `route_to_carrier(carrier_list[, $gw_attrs][, $carrier_attrs][, partition])`: as
/// `route_to_gw`, through the carriers' gateways (each carrier's own order and flags).
pub fn route_to_carrier(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (Some(r), Some(list)) = (router(), text_arg(args, 0)) else {
        return -1;
    };
    let Some((ruri, seed)) = ruri_and_seed(f) else {
        return -1;
    };
    let picks = listed(&r.data(), &list, true, seed);
    route_to(f, &ruri, &picks, Some(1), Some(2))
}

/// `use_next_gw([$rule_attrs][, $gw_attrs][, $carrier_attrs])`: the R-URI goes to the next
/// gateway `do_routing` left; -1 when none is left.
pub fn use_next_gw(f: &mut FnCtx<'_>, _args: &[Value]) -> i64 {
    let mut values = Vec::with_capacity(AVPS.len());
    for name in AVPS {
        values.push(stack(f, name).and_then(Vec::pop));
    }
    let Some(Some(ruri)) = values.first().cloned() else {
        return -1;
    };
    let text = |i: usize| {
        values
            .get(i)
            .cloned()
            .flatten()
            .map(|v| v.to_text().into_owned())
            .filter(|s| !s.is_empty())
    };
    let gw = data::Gateway {
        id: text(2).unwrap_or_default(),
        gw_type: 0,
        address: String::new(),
        addrs: Vec::new(),
        port: 0,
        strip: 0,
        pri_prefix: String::new(),
        attrs: text(3),
        probe_mode: 0,
        disabled: false,
        probing: false,
        socket: text(1),
        description: None,
    };
    let pick = Pick {
        gw,
        carrier_attrs: text(4),
    };
    if apply(f, &ruri.to_text(), &pick, Some(1), Some(2)) {
        1
    } else {
        -1
    }
}

/// The gateway at `ip`:`port` (port checked unless `ignore_port`) of `gw_type` (-1: any).
fn find_gw(
    data: &Data,
    ip: std::net::IpAddr,
    port: u16,
    gw_type: i64,
    ignore_port: bool,
) -> Option<data::Gateway> {
    data.gateways
        .iter()
        .find(|g| {
            (gw_type < 0 || g.gw_type == gw_type)
                && g.addrs.iter().any(|a| {
                    a.ip() == ip && (ignore_port || g.port == 0 || port == 0 || a.port() == port)
                })
        })
        .cloned()
}

/// Whether `ip`:`port` is a gateway; `args` are `[type][, flags][, $gw_attrs]` from their
/// first position on (`dr_is_gw` has the URI before them).
fn gw_check(
    f: &mut FnCtx<'_>,
    all: &[Value],
    first: usize,
    ip: std::net::IpAddr,
    port: u16,
) -> i64 {
    let Some(r) = router() else {
        return -1;
    };
    let args = all.get(first..).unwrap_or(&[]);
    let gw_type = args.first().and_then(Value::as_int).unwrap_or(-1);
    let flags = text_arg(args, 1).unwrap_or_default();
    let Some(g) = find_gw(&r.data(), ip, port, gw_type, flags.contains('n')) else {
        return -1;
    };
    if flags.contains('s') && g.strip > 0 {
        let user = f
            .msg
            .ruri()
            .and_then(|u| sip::Uri::parse(u).ok()?.user().map(str::to_owned))
            .unwrap_or_default();
        let _ = f
            .msg
            .set_ruri_user(user.get(g.strip.min(user.len())..).unwrap_or(""));
    }
    if flags.contains('p') && !g.pri_prefix.is_empty() {
        let user = f
            .msg
            .ruri()
            .and_then(|u| sip::Uri::parse(u).ok()?.user().map(str::to_owned))
            .unwrap_or_default();
        let _ = f.msg.set_ruri_user(&format!("{}{user}", g.pri_prefix));
    }
    f.set_output(first + 2, Value::from(g.attrs.unwrap_or_default()));
    1
}

/// `is_from_gw([type][, flags][, $gw_attrs][, $carrier_attrs])`: whether the request came
/// from a gateway (address and port; flag `n` ignores the port).
pub fn is_from_gw(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(src) = f.msg.receipt.as_ref().map(|r| r.source) else {
        return -1;
    };
    gw_check(f, args, 0, src.ip(), src.port())
}

/// `goes_to_gw(…)`: whether the request's destination (`$du`, else the R-URI) is a gateway.
pub fn goes_to_gw(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let dest = f
        .msg
        .dst_uri
        .clone()
        .or_else(|| f.msg.ruri().map(str::to_owned))
        .unwrap_or_default();
    uri_check(f, args, 0, &dest)
}

/// Whether the host and port of `uri` (an IP address) are a gateway's.
fn uri_check(f: &mut FnCtx<'_>, args: &[Value], first: usize, uri: &str) -> i64 {
    let Some((ip, port)) = sip::Uri::parse(uri)
        .ok()
        .and_then(|u| Some((u.host()?.ip()?, u.port().unwrap_or(0))))
    else {
        return -1;
    };
    gw_check(f, args, first, ip, port)
}

/// `dr_is_gw(uri[, type][, flags][, $gw_attrs][, $carrier_attrs][, partition])`: whether
/// the URI's address is a gateway's.
pub fn dr_is_gw(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(uri) = text_arg(args, 0) else {
        return -1;
    };
    uri_check(f, args, 1, &uri)
}

/// `dr_disable([partition])`: the gateway the request was last sent to by drouting is
/// disabled (in failure_route, after it failed), as MI `dr_gw_status` would; -1 when the
/// request did not go to one.
pub fn dr_disable(f: &mut FnCtx<'_>, _args: &[Value]) -> i64 {
    let Some(r) = router() else {
        return -1;
    };
    let Some(id) = stack(f, CURRENT_GW_AVP)
        .and_then(|s| s.last().cloned())
        .map(|v| v.to_text().into_owned())
        .filter(|id| !id.is_empty())
    else {
        return -1;
    };
    r.update(|d| match d.gateways.iter_mut().find(|g| g.id == id) {
        Some(g) if !g.disabled => {
            g.disabled = true;
            log::info!("drouting: gateway {id} disabled by the script (dr_disable)");
            true
        }
        _ => false,
    });
    1
}

/// `dr_match(group, [flags], number[, $rule_attrs][, partition])`: whether a rule of
/// `group` routes `number` now (flags `L` strict length, `F` fallback to shorter
/// prefixes); its attributes go to the variable.
pub fn dr_match(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (Some(r), Some(group)) = (router(), args.first().and_then(Value::as_int)) else {
        return -1;
    };
    let flags = text_arg(args, 1).unwrap_or_default();
    let number = text_arg(args, 2).unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let data = r.data();
    let rules = data.rules_for(
        group,
        &number,
        now,
        flags.contains('F'),
        flags.contains('L'),
    );
    let Some(rule) = rules.first() else {
        return -1;
    };
    f.set_output(3, Value::from(rule.attrs.clone().unwrap_or_default()));
    1
}
