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
mod compile;
mod core_fns;
mod exec;
mod ir;

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

/// Per-worker state that persists across messages (OpenSIPS `$var`s are per process).
#[derive(Debug, Clone, Default)]
pub struct Worker {
    vars: Vec<Value>,
    /// `$log_level` / `$xlog_level` set by the script: this worker's own level until set to NULL.
    log_level: Option<i32>,
    xlog_level: Option<i32>,
}

/// A compiled configuration.
#[derive(Debug)]
pub struct Script {
    /// Request routes; index 0 is the main route when there is one.
    routes: Vec<Vec<ir::Stmt>>,
    main: Option<usize>,
    log_level: i32,
    xlog_level: i32,
    limits: Limits,
    /// Hosts (and ports) that are "us": socket addresses and aliases.
    myself: Vec<(String, Option<u16>)>,
    names: compile::Names,
    /// `enable_asserts`: `assert()` is a no-op unless set.
    pub(crate) asserts: bool,
    /// Request route names by index ("" for the main route).
    pub(crate) route_names: Vec<String>,
    udp_workers: usize,
    /// `disable_stateless_fwd` (OpenSIPS 4.0 default: yes — `forward()` refuses).
    pub(crate) stateless_fwd: bool,
}

/// `proto:host:port` of every configured listening socket (each port of a range).
fn socket_names(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for item in &config.items {
        if let Item::Socket(s) = item
            && let cfg::socket::SocketDef::Listen(spec) = &s.node
        {
            let default = if matches!(spec.proto.as_str(), "tls" | "wss") {
                5061
            } else {
                5060
            };
            let ports: Vec<u16> = if spec.ports.is_empty() {
                vec![default]
            } else {
                spec.ports.iter().flat_map(|(a, b)| *a..=*b).collect()
            };
            for p in ports {
                out.push(format!(
                    "{}:{}:{p}",
                    spec.proto,
                    spec.host.to_ascii_lowercase()
                ));
            }
        }
    }
    out
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
            ..Default::default()
        };
        let mut lower = compile::Lower {
            names: &mut names,
            diags: Vec::new(),
            available,
            sources,
        };
        let routes: Vec<Vec<ir::Stmt>> =
            blocks.iter().map(|b| lower.block(&b.body.stmts)).collect();
        let errors = lower.diags;
        if !errors.is_empty() {
            return Err(errors);
        }
        let main = names.routes.get("").copied();
        crate::pv::time::startup_secs();
        let (mut log_level, mut xlog_level, mut limits, mut myself, mut asserts) =
            (2, 2, Limits::default(), Vec::new(), false);
        let mut udp_workers = 8;
        let mut stateless_fwd = false;
        for item in &config.items {
            match item {
                Item::Global { name, value } => match (name.node.as_str(), &value.node) {
                    ("xlog_level", GlobalValue::Int(l)) => xlog_level = *l as i32,
                    ("log_level", GlobalValue::Int(l)) => log_level = *l as i32,
                    ("max_while_loops", GlobalValue::Int(n)) => {
                        limits.max_while_loops = (*n).max(0) as usize
                    }
                    ("enable_asserts", GlobalValue::Int(n)) => asserts = *n != 0,
                    ("disable_stateless_fwd", GlobalValue::Int(n)) => stateless_fwd = *n == 0,
                    (
                        "udp_workers",
                        GlobalValue::Int(n) | GlobalValue::Workers { count: n, .. },
                    ) => udp_workers = (*n).max(1) as usize,
                    _ => {}
                },
                Item::Socket(s) => {
                    if let cfg::socket::SocketDef::Listen(spec) = &s.node {
                        let port = spec.ports.first().map(|p| p.0);
                        myself.push((spec.host.clone(), port));
                        if let Some((adv, p)) = &spec.advertised {
                            myself.push((adv.clone(), p.or(port)));
                        }
                    }
                }
                Item::Alias(a) => myself.extend(a.node.iter().map(|a| (a.host.clone(), a.port))),
                _ => {}
            }
        }
        let mut route_names = vec![String::new(); routes.len()];
        for (name, &i) in &names.routes {
            if let Some(slot) = route_names.get_mut(i) {
                *slot = name.clone();
            }
        }
        Ok(Script {
            routes,
            main,
            log_level,
            xlog_level,
            limits,
            myself,
            names,
            asserts,
            route_names,
            udp_workers,
            stateless_fwd,
        })
    }

    /// Overrides the run limits (tests and the benchmark use small budgets).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Whether `host` (and `port`, when given) names this server.
    pub fn is_myself(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.myself.iter().any(|(h, p)| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(host)
                && (port.is_none() || p.is_none() || *p == port)
        })
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
        let mut run = exec::Run {
            script: self,
            worker,
            ctx,
            log,
            limits: self.limits,
            ops: 0,
            depth: 0,
            params: Vec::new(),
            route: main,
            returned: Vec::new(),
        };
        match run.route(main, Vec::new()) {
            Ok(_) | Err(exec::Halt::Exit) | Err(exec::Halt::Return(_)) | Err(exec::Halt::Break) => {
                Ok(Outcome::Exit)
            }
            Err(exec::Halt::Drop) => Ok(Outcome::Drop),
            Err(exec::Halt::Fail(e)) => {
                run.log.log(-1, &format!("{e}"));
                Err(e)
            }
        }
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

    /// The configured listening sockets as `proto:host:port` (each port of a range).
    pub fn sockets(&self) -> &[String] {
        &self.names.sockets
    }

    /// `udp_workers` (OpenSIPS default 8).
    pub fn udp_workers(&self) -> usize {
        self.udp_workers
    }

    /// The bit of a named flag, if the script uses it.
    pub fn flag_bit(&self, name: &str) -> Option<u32> {
        self.names.flags.get(name).copied()
    }
}
