//! The compiled script and the interpreter that runs it over messages (issue #3).
//!
//! [`Script::compile`] checks the configuration (every diagnostic at once), then lowers the
//! request routes to an IR in which every name is resolved. [`Script::run`] executes the main
//! route for one message with a [`Worker`]'s persistent `$var`s, under [`Limits`].
//!
//! Covered so far: every statement form except `for`, expressions and comparisons with OpenSIPS'
//! semantics, `$var`, the message PVs of [`crate::pv`], R-URI/`$du` writes, transformations,
//! `route()` with parameters, `xlog`/`log`, flags, the R-URI functions and `is_myself`. Other
//! functions and PVs are refused at load time with a diagnostic naming them.

mod avp;
mod branch_writes;
mod compile;
mod core_fns;
pub(crate) mod exec;
mod ir;
mod json;
mod seval;
mod sockets;
mod writes;
pub(crate) mod xml;

pub use json::MODULE as JSON;
pub use sockets::interface_addresses;
use sockets::{listen_sockets, socket_names};
pub use xml::MODULE as XML;

use std::collections::HashMap;
use std::sync::Arc;

use cfg::ast::{Config, GlobalValue, Item};
use cfg::{Diagnostic, SourceMap};

use crate::ctx::MsgCtx;
use crate::value::Value;

/// Where log lines from `xlog`/`log` go (levels as OpenSIPS: -3 alert … 4 debug).
pub trait Log {
    fn log(&mut self, level: i32, text: &str);
}

/// Collects log lines (tests, and the check mode).
#[derive(Debug, Default)]
pub struct MemoryLog {
    pub lines: Vec<(i32, String)>,
}

impl Log for MemoryLog {
    fn log(&mut self, level: i32, text: &str) {
        self.lines.push((level, text.to_owned()));
    }
}

/// Bounds on one run, so a script can never hang a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `max_while_loops`: iterations of one `while` before it is left with an error log.
    pub max_while_loops: usize,
    /// Statements and expressions evaluated in one run.
    pub max_ops: u64,
    /// Nested `route()` calls.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_while_loops: 10_000,
            max_ops: 1_000_000,
            max_depth: 100,
        }
    }
}

/// A run that had to be stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error("script stopped after {0} operations (the per-message budget)")]
    Budget(u64),
    #[error("route recursion limit reached ({0} nested calls)")]
    Depth(usize),
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The route ended or called `exit`: the implicit action stands.
    Exit,
    /// `drop`: the implicit action is cancelled.
    Drop,
}

/// Process-wide `log_level` / `xlog_level` set at run time (MI `core:log_level`,
/// `core:xlog_level`); `i32::MIN` = not set, the configured value applies.
static LOG_LEVEL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(i32::MIN);
static XLOG_LEVEL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(i32::MIN);

/// The run-time `log_level` and `xlog_level`, when set.
pub fn levels() -> (Option<i32>, Option<i32>) {
    let get = |a: &std::sync::atomic::AtomicI32| {
        Some(a.load(std::sync::atomic::Ordering::Relaxed)).filter(|l| *l != i32::MIN)
    };
    (get(&LOG_LEVEL), get(&XLOG_LEVEL))
}

/// Sets the process-wide `log_level` for every worker (a worker's own `$log_level` still wins).
pub fn set_log_level(level: i32) {
    LOG_LEVEL.store(level, std::sync::atomic::Ordering::Relaxed);
}

/// Sets the process-wide `xlog_level` for every worker.
pub fn set_xlog_level(level: i32) {
    XLOG_LEVEL.store(level, std::sync::atomic::Ordering::Relaxed);
}

/// Per-worker state that persists across messages (OpenSIPS `$var`s are per process).
#[derive(Debug, Clone, Default)]
pub struct Worker {
    vars: Vec<Value>,
    /// The `$json(name)` variables, by slot (`None`: not set).
    json: Vec<Option<serde_json::Value>>,
    /// The `$xml(name)` objects, by slot (`None`: empty).
    xml: Vec<Option<xml::Doc>>,
    /// The argument list of module function calls, kept between calls (one allocation per
    /// worker instead of one per call).
    args: Vec<Value>,
    /// `$log_level` / `$xlog_level` set by the script: this worker's own level until set to NULL.
    log_level: Option<i32>,
    xlog_level: Option<i32>,
    /// What the last top-level route run returned besides its code (`return(1, v…)`).
    returned: Vec<Value>,
}

impl Worker {
    /// The values the last route run on this worker returned with `return(code, v…)`.
    pub fn returned(&self) -> &[Value] {
        &self.returned
    }
}

/// A compiled configuration.
#[derive(Debug)]
pub struct Script {
    /// Request routes (index 0 is the main route when there is one), then `startup_route` and
    /// the `timer_route`s, which `route()` cannot name.
    routes: Vec<Vec<ir::Stmt>>,
    /// `$route.type` of the top-level route at each index.
    pub(crate) route_types: Vec<&'static str>,
    startup: Option<usize>,
    error: Option<usize>,
    /// `timer_route[name, seconds]`: route index, name, interval.
    timers: Vec<(usize, String, u64)>,
    /// The unnamed `onreply_route`, run for every reply.
    reply_route: Option<usize>,
    main: Option<usize>,
    log_level: i32,
    xlog_level: i32,
    limits: Limits,
    /// Hosts (and ports) that are "us": socket addresses and aliases.
    myself: Vec<Myself>,
    names: compile::Names,
    /// `enable_asserts`: `assert()` is a no-op unless set.
    pub(crate) asserts: bool,
    /// Request route names by index ("" for the main route).
    pub(crate) route_names: Vec<String>,
    udp_workers: usize,
    /// The listening sockets with their addresses, for choosing where forwarded requests leave.
    pub(crate) net: Arc<crate::forward::Sockets>,
    /// The sockets the server opens at run time (`sockets_mgm`), once it attaches them.
    dynamic: std::sync::OnceLock<Arc<crate::forward::DynamicSockets>>,
    /// `net` with the dynamic sockets added, as of a generation of theirs.
    merged: std::sync::RwLock<(u64, Arc<crate::forward::Sockets>)>,
    /// Every global parameter as written (`tcp_connect_timeout`, `tcp_workers`…), last one wins.
    globals: HashMap<String, GlobalValue>,
    /// Every `modparam` in order: (module pattern, parameter, value).
    modparams: Vec<(String, String, cfg::ast::ParamValue)>,
    /// The modules `loadmodule` names.
    loaded: Vec<String>,
    /// The main configuration file (files the script names without a directory are next
    /// to it, as OpenSIPS' `cfg_file`).
    cfg_file: std::path::PathBuf,
    /// Stateless forwarding is on: `disable_stateless_fwd=no`, or unset and the script calls
    /// `forward()` (OpenSIPS' `sl_fwd_disabled`, -1 until either says otherwise).
    pub(crate) stateless_fwd: bool,
    /// `check_via`: a reply relayed statelessly must name this server in its top Via (read
    /// once here: each such reply asks).
    check_via: bool,
    /// The flag bits of `tcp_no_new_conn_bflag` and `tcp_no_new_conn_rplflag`.
    no_new_conn: (Option<u32>, Option<u32>),
    /// `mhomed`: UDP sends leave by the socket of the kernel's route to the destination.
    mhomed: bool,
    /// `exec_msg_threshold` in µs (0: off), read once here rather than per message.
    exec_msg_threshold: i64,
    /// Where each `route()` call is written (profiling).
    pub(crate) sites: Vec<ir::Site>,
    /// Where each route's first statement is written, by route index (profiling).
    route_sites: Vec<Option<ir::Site>>,
}

/// The message routes without one (startup, timers) run over: it has no source, so `$si` and
/// `$socket_in` are NULL, and nothing it sends goes anywhere.
pub(crate) fn placeholder() -> MsgCtx {
    const DUMMY: &[u8] = b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKdummy\r\nFrom: <sip:rsips@127.0.0.1>;tag=dummy\r\nTo: <sip:rsips@127.0.0.1>\r\nCall-ID: dummy\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    match sip::SipMessage::parse(bytes::Bytes::from_static(DUMMY)) {
        Ok(m) => MsgCtx::new(m),
        Err(e) => unreachable!("the placeholder message parses: {e}"),
    }
}

/// A name of this server (`is_myself`): host without brackets, port (`None`: any), and
/// whether its subdomains count too (`accept_subdomain`).
#[derive(Debug, Clone)]
struct Myself {
    host: String,
    port: Option<u16>,
    subdomain: bool,
}

impl Myself {
    fn new(host: &str, port: Option<u16>, subdomain: bool) -> Myself {
        Myself {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            subdomain,
        }
    }
}

impl Script {
    /// Checks and compiles a parsed configuration; on failure every diagnostic is returned.
    pub fn compile(
        config: &Config,
        sources: &SourceMap,
        available: &crate::Available,
    ) -> Result<Script, Vec<Diagnostic>> {
        let diags = crate::check(config, sources, available);
        if diags.iter().any(Diagnostic::is_error) {
            return Err(diags);
        }
        let (table, blocks) = compile::route_table(config);
        let mut names = compile::Names {
            routes: table,
            sockets: socket_names(config),
            dynamic_sockets: config
                .items
                .iter()
                .any(|i| matches!(i, Item::LoadModule(m) if module_file(&m.node) == "sockets_mgm")),
            ..Default::default()
        };
        // An AVP a module parameter names (registrar's `received_avp`, an AVP inside a
        // dispatcher `partition` definition), and those a loaded module uses by default
        // (dispatcher's failover AVPs), are the script's even when no route mentions them:
        // modules store into them and read them back.
        let mut intern = |name: &str| {
            let n = names.avps.len();
            names.avps.entry(name.trim().to_owned()).or_insert(n);
        };
        for item in &config.items {
            if let Item::ModParam { value, .. } = item
                && let cfg::ast::ParamValue::Str(v) = &value.node
            {
                for (at, _) in v.match_indices("$avp(") {
                    if let Some(end) = v[at + 5..].find(')') {
                        intern(&v[at + 5..at + 5 + end]);
                    }
                }
            }
        }
        for (module, avps) in crate::catalog::MODULE_AVPS {
            if config
                .items
                .iter()
                .any(|i| matches!(i, Item::LoadModule(m) if module_file(&m.node) == *module))
            {
                avps.iter().for_each(|a| intern(a));
            }
        }
        // Every route gets its index before any body is lowered, so `t_on_failure("x")` can
        // name a failure_route defined further down.
        let first_special = blocks.len();
        let mut route_types = vec!["request"; blocks.len()];
        let mut extra_names = Vec::new();
        let (mut startup, mut error, mut timers, mut reply_route) = (None, None, Vec::new(), None);
        let mut special_blocks = Vec::new();
        for r in config.items.iter().filter_map(|i| match i {
            Item::Route(r) => Some(r),
            _ => None,
        }) {
            let index = first_special + special_blocks.len();
            let name = r.name.as_ref().map_or(String::new(), |n| n.node.clone());
            use cfg::ast::RouteKind as K;
            let kind = match r.kind {
                K::Startup => {
                    startup = Some(index);
                    extra_names.push("startup_route".to_owned());
                    "startup"
                }
                K::Error => {
                    error = Some(index);
                    extra_names.push("error_route".to_owned());
                    "error"
                }
                K::Timer => {
                    let secs = r.interval.as_ref().map_or(1, |i| i.node.max(1) as u64);
                    timers.push((index, name.clone(), secs));
                    extra_names.push(name);
                    "timer"
                }
                K::Failure | K::Reply | K::Branch | K::Local | K::Event => {
                    if r.kind == K::Reply && name.is_empty() {
                        reply_route = Some(index);
                    }
                    names.special.insert((r.kind, name.clone()), index);
                    extra_names.push(name);
                    match r.kind {
                        K::Failure => "failure",
                        K::Reply => "onreply",
                        K::Branch => "branch",
                        K::Event => "event",
                        _ => "local",
                    }
                }
                _ => continue,
            };
            route_types.push(kind);
            special_blocks.push(r);
        }
        let mut lower = compile::Lower {
            names: &mut names,
            diags: Vec::new(),
            available,
            sources,
            forward_used: None,
            sites: Vec::new(),
            // Only a script that may turn tracing on pays for the statements' places.
            trace: sources.files().any(|f| f.text.contains("script_trace")),
        };
        let mut routes: Vec<Vec<ir::Stmt>> =
            blocks.iter().map(|b| lower.block(&b.body.stmts)).collect();
        for r in &special_blocks {
            routes.push(lower.block(&r.body.stmts));
        }
        // Profiling names a top-level route by its first statement (none for an empty one).
        let route_sites: Vec<Option<ir::Site>> = blocks
            .iter()
            .map(|b| &b.body)
            .chain(special_blocks.iter().map(|r| &r.body))
            .map(|body| body.stmts.first().map(|st| lower.site_of(st.span)))
            .collect();
        let sites = std::mem::take(&mut lower.sites);
        // `disable_stateless_fwd` (OpenSIPS): unset, stateless forwarding (forward() and the
        // relaying of replies no transaction takes) is on when the script calls forward(); an
        // explicit `no` turns it on, an explicit `yes` forbids forward().
        let forward_used = lower.forward_used;
        let mut errors = lower.diags;
        let disabled = config.items.iter().rev().find_map(|i| match i {
            Item::Global { name, value } if name.node == "disable_stateless_fwd" => {
                match value.node {
                    GlobalValue::Int(n) => Some(n != 0),
                    _ => None,
                }
            }
            _ => None,
        });
        if let (Some(true), Some(span)) = (disabled, forward_used) {
            errors.push(Diagnostic::error(
                "forward() is used, but stateless forwarding is disabled (`disable_stateless_fwd=yes`)",
                span,
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let stateless_fwd = disabled.map_or(forward_used.is_some(), |d| !d);
        let main = names.routes.get("").copied();
        crate::pv::time::startup_secs();
        let (mut log_level, mut xlog_level, mut limits, mut myself, mut asserts) =
            (2, 2, Limits::default(), Vec::new(), false);
        let mut udp_workers = 8;
        let loaded: Vec<String> = config
            .items
            .iter()
            .filter_map(|i| match i {
                Item::LoadModule(path) => Some(module_file(&path.node).to_owned()),
                _ => None,
            })
            .collect();
        let (mut net, mut globals, mut modparams) = (
            crate::forward::Sockets::default(),
            HashMap::new(),
            Vec::new(),
        );
        let mut bond_errors = Vec::new();
        for item in &config.items {
            if let Item::Global { name, value } = item {
                globals.insert(name.node.clone(), value.node.clone());
            }
            if let Item::ModParam {
                module,
                param,
                value,
            } = item
            {
                modparams.push((module.node.clone(), param.node.clone(), value.node.clone()));
            }
            match item {
                Item::Global { name, value } => match (name.node.as_str(), &value.node) {
                    ("xlog_level", GlobalValue::Int(l)) => xlog_level = *l as i32,
                    ("log_level", GlobalValue::Int(l)) => log_level = *l as i32,
                    ("max_while_loops", GlobalValue::Int(n)) => {
                        limits.max_while_loops = (*n).max(0) as usize
                    }
                    ("enable_asserts", GlobalValue::Int(n)) => asserts = *n != 0,
                    (
                        "udp_workers",
                        GlobalValue::Int(n) | GlobalValue::Workers { count: n, .. },
                    ) => udp_workers = (*n).max(1) as usize,
                    _ => {}
                },
                Item::Socket(s) => {
                    if let cfg::socket::SocketDef::Bond { name, members } = &s.node {
                        let members: Vec<String> =
                            members.iter().map(|m| m.to_ascii_lowercase()).collect();
                        for m in &members {
                            if !names.sockets.contains(m) {
                                bond_errors.push(
                                    Diagnostic::error(
                                        format!("bond member `{m}` is not a defined socket"),
                                        s.span,
                                    )
                                    .with_help("define the socket with its own `socket=` line before the bond"),
                                );
                            }
                        }
                        net.bonds.push((name.clone(), members));
                    }
                    if let cfg::socket::SocketDef::Listen(spec) = &s.node {
                        let expanded = listen_sockets(spec);
                        let sub = spec.accept_subdomain;
                        for s in expanded.iter().filter(|s| s.addr.is_some()) {
                            myself.push(Myself::new(&s.host, Some(s.port), sub));
                        }
                        // A socket without a port listens on its protocol's default one.
                        let port = spec
                            .ports
                            .first()
                            .map_or(crate::forward::default_port(&spec.proto), |p| p.0);
                        net.listen.extend(expanded);
                        myself.push(Myself::new(&spec.host, Some(port), sub));
                        if let Some((adv, p)) = &spec.advertised {
                            myself.push(Myself::new(adv, Some(p.unwrap_or(port)), sub));
                        }
                    }
                }
                Item::Alias(a) => myself.extend(
                    a.node
                        .iter()
                        .map(|a| Myself::new(&a.host, a.port, a.accept_subdomain)),
                ),
                _ => {}
            }
        }
        if !bond_errors.is_empty() {
            return Err(bond_errors);
        }
        let mut route_names = vec![String::new(); routes.len() - extra_names.len()];
        for (name, &i) in &names.routes {
            if let Some(slot) = route_names.get_mut(i) {
                *slot = name.clone();
            }
        }
        route_names.extend(extra_names);
        // `advertised_address` / `advertised_port`: what every socket announces in Via and
        // Record-Route (over its own `as`, as in OpenSIPS), and names this server.
        let global_text = |name: &str| match globals.get(name) {
            Some(GlobalValue::Str(s)) => Some(s.clone()),
            Some(GlobalValue::Int(n)) => Some(n.to_string()),
            _ => None,
        };
        let adv_address = global_text("advertised_address").filter(|a| !a.is_empty());
        let adv_port = global_text("advertised_port").and_then(|p| p.trim().parse::<u16>().ok());
        if adv_address.is_some() || adv_port.is_some() {
            for s in &mut net.listen {
                let own = s.advertised.take();
                let host = adv_address
                    .clone()
                    .or_else(|| own.as_ref().map(|(h, _)| h.clone()))
                    .unwrap_or_else(|| match s.addr {
                        Some(std::net::SocketAddr::V6(a)) => format!("[{}]", a.ip()),
                        Some(a) => a.ip().to_string(),
                        None => s.host.clone(),
                    });
                let port = adv_port.or(own.and_then(|(_, p)| p));
                myself.push(Myself::new(&host, Some(port.unwrap_or(s.port)), false));
                s.advertised = Some((host, port));
            }
        }
        let flag_of = |global: &str| match globals.get(global) {
            Some(GlobalValue::Str(n) | GlobalValue::Ident(n)) => {
                names.flags.get(n.trim_matches('"')).copied()
            }
            _ => None,
        };
        let mhomed = matches!(globals.get("mhomed"), Some(GlobalValue::Int(n)) if *n != 0);
        let no_new_conn = (
            flag_of("tcp_no_new_conn_bflag"),
            flag_of("tcp_no_new_conn_rplflag"),
        );
        let exec_msg_threshold = match globals.get("exec_msg_threshold") {
            Some(GlobalValue::Int(n)) => (*n).max(0),
            _ => 0,
        };
        let check_via = match globals.get("check_via") {
            Some(GlobalValue::Int(n)) => *n != 0,
            Some(GlobalValue::Str(v)) => v.trim().parse::<i64>().is_ok_and(|n| n != 0),
            _ => false,
        };
        Ok(Script {
            routes,
            route_types,
            startup,
            error,
            reply_route,
            timers,
            main,
            log_level,
            xlog_level,
            limits,
            myself,
            names,
            asserts,
            route_names,
            udp_workers,
            merged: std::sync::RwLock::new((0, Arc::new(net.clone()))),
            net: Arc::new(net),
            dynamic: std::sync::OnceLock::new(),
            globals,
            modparams,
            loaded,
            cfg_file: sources
                .files()
                .next()
                .map(|f| f.path.clone())
                .unwrap_or_default(),
            stateless_fwd,
            check_via,
            exec_msg_threshold,
            no_new_conn,
            mhomed,
            sites,
            route_sites,
        })
    }

    /// `exec_msg_threshold` (µs): a message whose handling takes longer is reported
    /// (`E_CORE_THRESHOLD`); 0, the default, turns that off.
    pub fn exec_msg_threshold(&self) -> i64 {
        self.exec_msg_threshold
    }

    /// Overrides the run limits (tests and the benchmark use small budgets).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Whether `host` (and `port`, when given) names this server: a socket, its `as` address,
    /// an `alias`, the global `advertised_address` — or a subdomain of one marked
    /// `accept_subdomain` — or a domain a module lists (the `domain` table).
    pub fn is_myself(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.myself.iter().any(|m| {
            let h = m.host.as_str();
            let named = h.eq_ignore_ascii_case(host)
                || (m.subdomain
                    && host.len() > h.len() + 1
                    && host.is_char_boundary(host.len() - h.len() - 1)
                    && host[host.len() - h.len()..].eq_ignore_ascii_case(h)
                    && host.as_bytes()[host.len() - h.len() - 1] == b'.');
            named && (port.is_none() || m.port.is_none() || m.port == port)
        }) || self.is_dynamic_socket(host, port)
            || crate::hooks::is_alias(host)
    }

    /// Runs the main request route over a message.
    pub fn run(
        &self,
        worker: &mut Worker,
        ctx: &mut MsgCtx,
        log: &mut dyn Log,
    ) -> Result<Outcome, ScriptError> {
        let Some(main) = self.main else {
            return Ok(Outcome::Exit);
        };
        let active = crate::profiling::active();
        if active & crate::profiling::PROC == 0 {
            return self.run_top(main, worker, ctx, log, Vec::new(), active).0;
        }
        // OpenSIPS' receive_msg() reports the request script as a step of the worker.
        use crate::profiling::{LEVEL_SIP, proc_enter, proc_exit};
        proc_enter(LEVEL_SIP, "request_script", "run", line!(), false);
        let (r, status) = self.run_top(main, worker, ctx, log, Vec::new(), active);
        proc_exit(LEVEL_SIP, "request_script", "run", line!(), status);
        r
    }

    /// Runs `startup_route` once (the server does, before it listens), over a placeholder
    /// message as in OpenSIPS. `Exit` when there is none.
    pub fn run_startup(
        &self,
        worker: &mut Worker,
        log: &mut dyn Log,
    ) -> Result<Outcome, ScriptError> {
        match self.startup {
            Some(i) => self.run_route(i, worker, &mut placeholder(), log),
            None => Ok(Outcome::Exit),
        }
    }

    /// Whether the script has an `error_route`.
    pub fn has_error_route(&self) -> bool {
        self.error.is_some()
    }

    /// Runs `error_route` over a message that failed to parse (`ctx.err` says why). Nothing is
    /// sent unless the route sends it.
    pub fn run_error(
        &self,
        worker: &mut Worker,
        ctx: &mut MsgCtx,
        log: &mut dyn Log,
    ) -> Result<Outcome, ScriptError> {
        match self.error {
            Some(i) => self.run_route(i, worker, ctx, log),
            None => Ok(Outcome::Exit),
        }
    }

    /// The `timer_route`s: name and interval in seconds, in definition order.
    pub fn timers(&self) -> impl Iterator<Item = (&str, u64)> {
        self.timers.iter().map(|(_, n, s)| (n.as_str(), *s))
    }

    /// Runs the `n`-th `timer_route` once over a placeholder message.
    pub fn run_timer(
        &self,
        n: usize,
        worker: &mut Worker,
        log: &mut dyn Log,
    ) -> Result<Outcome, ScriptError> {
        match self.timers.get(n) {
            Some((i, _, _)) => self.run_route(*i, worker, &mut placeholder(), log),
            None => Ok(Outcome::Exit),
        }
    }

    fn run_route(
        &self,
        main: usize,
        worker: &mut Worker,
        ctx: &mut MsgCtx,
        log: &mut dyn Log,
    ) -> Result<Outcome, ScriptError> {
        self.run_route_with(main, worker, ctx, log, Vec::new())
    }

    /// A core event (`E_CORE_TCP_DISCONNECT` …) raised outside any message: goes to its
    /// external subscribers (`crate::evi`) and runs its `event_route`, if the script has one,
    /// with the event's parameters; gives what the route queued for sending. `None` when
    /// nobody listens.
    pub fn raise_core_event(
        &self,
        name: &str,
        worker: &mut Worker,
        log: &mut dyn Log,
        params: Vec<(Option<String>, Value)>,
    ) -> Option<Result<Vec<crate::Outbound>, ScriptError>> {
        let external = crate::evi::has_subscribers(name);
        if external && crate::evi::deliver(name, &params) > 0 {
            log.log(-1, &format!("{name}: not every subscriber could be told"));
        }
        let Some(index) = self.route_index(cfg::ast::RouteKind::Event, name) else {
            return external.then(|| Ok(Vec::new()));
        };
        let mut ctx = placeholder();
        Some(
            self.run_route_with(index, worker, &mut ctx, log, params)
                .map(|_| std::mem::take(&mut ctx.outbox)),
        )
    }

    /// Runs an `event_route` with the event's parameters (`$param(name)`, `$param(i)`).
    pub fn run_event(
        &self,
        index: usize,
        worker: &mut Worker,
        ctx: &mut MsgCtx,
        log: &mut dyn Log,
        params: Vec<(Option<String>, Value)>,
    ) -> Result<Outcome, ScriptError> {
        if index >= self.routes.len() {
            return Ok(Outcome::Exit);
        }
        self.run_route_with(index, worker, ctx, log, params)
    }

    fn run_route_with(
        &self,
        main: usize,
        worker: &mut Worker,
        ctx: &mut MsgCtx,
        log: &mut dyn Log,
        params: Vec<(Option<String>, Value)>,
    ) -> Result<Outcome, ScriptError> {
        let active = crate::profiling::active();
        self.run_top(main, worker, ctx, log, params, active).0
    }

    /// The name profiling gives a top-level route: OpenSIPS' `<root>` for the main request
    /// and reply routes and the error, local and startup routes, else the route's name.
    fn profiled_name(&self, index: usize, kind: &str) -> &str {
        let name = self.route_names.get(index).map_or("", String::as_str);
        match kind {
            "error" | "local" | "startup" => "<root>",
            "request" | "onreply" if name.is_empty() => "<root>",
            _ => name,
        }
    }

    /// Runs top-level route `main`; gives the outcome and OpenSIPS' status of the run (its
    /// action flags: 0 ended or returned, 1 `exit`, 5 `drop`; -1 for a failed run). `active`
    /// is what [`crate::profiling::active`] said: `E_PROFILING_SCRIPT` records the run when
    /// it has the script bit and the event a subscriber.
    fn run_top(
        &self,
        main: usize,
        worker: &mut Worker,
        ctx: &mut MsgCtx,
        log: &mut dyn Log,
        params: Vec<(Option<String>, Value)>,
        active: u8,
    ) -> (Result<Outcome, ScriptError>, i64) {
        let kind = self.route_types.get(main).copied().unwrap_or("request");
        let prof = if active & crate::profiling::SCRIPT == 0 {
            None
        } else {
            crate::profiling::ScriptSession::open(ctx, kind)
        };
        let at = prof.and_then(|_| {
            self.route_sites
                .get(main)
                .and_then(Option::as_ref)
                .map(|s| (&*s.file, s.line))
        });
        if let Some(p) = prof {
            let name = self.profiled_name(main, kind);
            p.record("start", name, 1, None, None);
            p.record("enter", name, 1, at, None);
        }
        let (param_names, params): (Vec<_>, Vec<_>) = params.into_iter().unzip();
        let mut run = exec::Run {
            script: self,
            worker,
            ctx,
            log,
            limits: self.limits,
            ops: 0,
            depth: 0,
            params: Vec::new(),
            param_names: Vec::new(),
            route: main,
            kind,
            returned: Vec::new(),
            prof,
            trace: None,
        };
        let (r, status) = match run.route_named(main, params, param_names) {
            Ok(_) | Err(exec::Halt::Return(_)) | Err(exec::Halt::Break) => (Ok(Outcome::Exit), 0),
            Err(exec::Halt::Exit) => (Ok(Outcome::Exit), 1),
            Err(exec::Halt::Drop) => (Ok(Outcome::Drop), 5),
            Err(exec::Halt::Fail(e)) => {
                run.log.log(-1, &format!("{e}"));
                (Err(e), -1)
            }
        };
        run.worker.returned = std::mem::take(&mut run.returned);
        if let Some(p) = prof {
            let name = self.profiled_name(main, kind);
            p.record("exit", name, 1, at, Some(status));
            p.record("end", name, 1, None, Some(status));
        }
        (r, status)
    }

    /// Runs route `index` (a failure, onreply, branch or local route a module armed) over `ctx`.
    pub fn run_index(
        &self,
        index: usize,
        worker: &mut Worker,
        ctx: &mut MsgCtx,
        log: &mut dyn Log,
    ) -> Result<Outcome, ScriptError> {
        if index >= self.routes.len() {
            return Ok(Outcome::Exit);
        }
        self.run_route(index, worker, ctx, log)
    }

    /// The unnamed `onreply_route` (run for every reply tm handles), if any.
    pub fn reply_route(&self) -> Option<usize> {
        self.reply_route
    }

    /// The index of a named request route (`route[x]`).
    pub fn request_route(&self, name: &str) -> Option<usize> {
        self.names
            .routes
            .get(name)
            .copied()
            .filter(|_| !name.is_empty())
    }

    /// The index of a named route of a kind (`failure_route[x]` …).
    pub fn route_index(&self, kind: cfg::ast::RouteKind, name: &str) -> Option<usize> {
        self.names.special.get(&(kind, name.to_owned())).copied()
    }

    /// The names of the script's `event_route[…]`s, sorted (MI `evi:list`, `evi:subscribers`).
    pub fn event_route_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .names
            .special
            .keys()
            .filter(|(kind, _)| *kind == cfg::ast::RouteKind::Event)
            .map(|(_, name)| name.clone())
            .collect();
        v.sort();
        v
    }

    /// The slot of `$avp(name)`, when the script uses that AVP.
    pub(crate) fn avp_slot(&self, name: &str) -> Option<usize> {
        self.names.avps.get(name).copied()
    }

    /// The event names the script raises or subscribes to by a literal name: published from
    /// the start, as OpenSIPS publishes them when it loads the script.
    pub fn literal_event_names(&self) -> &[String] {
        &self.names.events
    }

    /// The value of `$var(name)` in a worker (for tests and MI).
    pub fn var(&self, worker: &Worker, name: &str) -> Value {
        self.names
            .vars
            .get(name)
            .and_then(|&i| worker.vars.get(i))
            .cloned()
            .unwrap_or_default()
    }

    /// Sets `$var(name)` in a worker (cfgutils' `varset`, before the workers start); `false`
    /// when the script never uses that variable.
    pub fn set_var(&self, worker: &mut Worker, name: &str, value: Value) -> bool {
        let Some(&slot) = self.names.vars.get(name) else {
            return false;
        };
        if worker.vars.len() <= slot {
            worker.vars.resize(slot + 1, Value::Null);
        }
        worker.vars[slot] = value;
        true
    }

    /// The configured listening sockets as `proto:host:port` (each port of a range).
    pub fn sockets(&self) -> &[String] {
        &self.names.sockets
    }

    /// A global parameter as an integer (`yes`/`no` are 1/0), if the script sets it.
    pub fn global_int(&self, name: &str) -> Option<i64> {
        match self.globals.get(name)? {
            GlobalValue::Int(n) | GlobalValue::Workers { count: n, .. } => Some(*n),
            GlobalValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A global parameter set as text (a string, a name or an address), borrowed.
    pub fn global_text(&self, name: &str) -> Option<&str> {
        match self.globals.get(name)? {
            GlobalValue::Str(s) | GlobalValue::Ident(s) | GlobalValue::Ip(s) => Some(s),
            _ => None,
        }
    }

    /// A global parameter as text, if the script sets it.
    pub fn global_str(&self, name: &str) -> Option<String> {
        match self.globals.get(name)? {
            GlobalValue::Str(s) | GlobalValue::Ident(s) | GlobalValue::Ip(s) => Some(s.clone()),
            GlobalValue::Int(n) | GlobalValue::Workers { count: n, .. } => Some(n.to_string()),
            _ => None,
        }
    }

    /// Whether the script loads `module` (`loadmodule "module.so"`).
    pub fn loads(&self, module: &str) -> bool {
        self.loaded.iter().any(|m| m == module)
    }

    /// A file the script names: as written when it has a directory, else next to the main
    /// configuration file (OpenSIPS' `get_pathname`).
    pub fn cfg_relative(&self, name: &str) -> std::path::PathBuf {
        if name.contains('/') {
            return std::path::PathBuf::from(name);
        }
        match self.cfg_file.parent() {
            Some(dir) => dir.join(name),
            None => std::path::PathBuf::from(name),
        }
    }

    /// Where `module`'s `loadmodule` line comes among the script's (0 first), if it has one.
    pub fn load_position(&self, module: &str) -> Option<usize> {
        self.loaded.iter().position(|m| m == module)
    }

    /// The `modparam`s addressed to `module` (by name or a `a|b` pattern naming it), in order.
    pub fn modparams<'s>(
        &'s self,
        module: &'s str,
    ) -> impl Iterator<Item = (&'s str, &'s cfg::ast::ParamValue)> + 's {
        self.modparams
            .iter()
            .filter(move |(m, _, _)| m.split('|').any(|m| m.trim().eq_ignore_ascii_case(module)))
            .map(|(_, p, v)| (p.as_str(), v))
    }

    /// `modparam(module, name, …)` as a number (a numeric string counts); when the script sets
    /// it more than once the last one wins, as in OpenSIPS.
    pub fn modparam_int(&self, module: &str, name: &str) -> Option<i64> {
        self.modparams(module)
            .filter(|(p, _)| *p == name)
            .last()
            .and_then(|(_, v)| match v {
                cfg::ast::ParamValue::Int(n) => Some(*n),
                cfg::ast::ParamValue::Str(s) => s.trim().parse().ok(),
            })
    }

    /// `modparam(module, name, …)` as text (a number as its digits); the last one set wins.
    pub fn modparam_str(&self, module: &str, name: &str) -> Option<String> {
        self.modparams(module)
            .filter(|(p, _)| *p == name)
            .last()
            .map(|(_, v)| match v {
                cfg::ast::ParamValue::Str(s) => s.clone(),
                cfg::ast::ParamValue::Int(n) => n.to_string(),
            })
    }

    /// Every value `modparam(module, name, …)` is set to, in order (parameters a module takes
    /// more than once, like dispatcher's `partition`).
    pub fn modparam_strs(&self, module: &str, name: &str) -> Vec<String> {
        self.modparams(module)
            .filter(|(p, _)| *p == name)
            .map(|(_, v)| match v {
                cfg::ast::ParamValue::Str(s) => s.clone(),
                cfg::ast::ParamValue::Int(n) => n.to_string(),
            })
            .collect()
    }

    /// Whether stateless forwarding is on (see `stateless_fwd`): `forward()` works and a reply
    /// no transaction takes is relayed by its Vias; otherwise such a reply is dropped.
    pub fn stateless_fwd(&self) -> bool {
        self.stateless_fwd
    }

    /// `check_via` is on.
    pub fn check_via(&self) -> bool {
        self.check_via
    }

    /// The sockets and bonds, as forwarding needs them.
    /// The listening sockets (one per port of a range) with their protocol, bound address
    /// (when the host is an IP literal or `*`) and `as` advertised address.
    pub fn listen_sockets(&self) -> &[crate::forward::Socket] {
        &self.net.listen
    }

    /// `udp_workers` (OpenSIPS default 8).
    pub fn udp_workers(&self) -> usize {
        self.udp_workers
    }

    /// The bit of a named flag, if the script uses it.
    pub fn flag_bit(&self, name: &str) -> Option<u32> {
        self.names.flags.get(name).copied()
    }

    /// The name of flag bit `bit`, if the script named one (MI `Cflags`).
    pub fn flag_name(&self, bit: u32) -> Option<&str> {
        self.names
            .flags
            .iter()
            .find(|(_, b)| **b == bit)
            .map(|(n, _)| n.as_str())
    }

    /// `mhomed` (read once at load).
    pub fn mhomed(&self) -> bool {
        self.mhomed
    }

    /// The flag bit `tcp_no_new_conn_bflag` / `tcp_no_new_conn_rplflag` (`global`) names,
    /// looked up once at load (this is asked for every message sent).
    pub fn no_new_conn_flag(&self, global: &str) -> Option<u32> {
        match global {
            "tcp_no_new_conn_bflag" => self.no_new_conn.0,
            "tcp_no_new_conn_rplflag" => self.no_new_conn.1,
            _ => None,
        }
    }

    /// The run limits of the script (for an interpreter a module function starts).
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// The names of every AVP the script uses.
    pub fn avp_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.names.avps.keys().cloned().collect();
        v.sort();
        v
    }

    /// The slot of `$avp(name)` in [`MsgCtx::avps`], if the script uses that AVP.
    pub fn avp_id(&self, name: &str) -> Option<usize> {
        self.names.avps.get(name).copied()
    }
}

/// The module a `loadmodule` path names: `/usr/lib/opensips/modules/tm.so` → `tm`.
fn module_file(path: &str) -> &str {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.strip_suffix(".so").unwrap_or(file)
}
