//! The load-time check of a parsed configuration: every name is resolved once (globals, modules,
//! modparams, routes, functions, pseudo-variables) and everything wrong is reported together,
//! each diagnostic with its place in the file. Nothing here looks anything up per packet.

mod tables;
pub(crate) mod walk;

use std::collections::{HashMap, HashSet};

use cfg::Diagnostic;
use cfg::ast::{Config, GlobalValue, Item, ParamValue, RouteKind};
use cfg::source::{SourceMap, Span, Spanned};

use crate::catalog::MODULES;
use tables::{GLOBALS, GlobalKind, REMOVED_GLOBALS};

/// What rsips itself provides to a configuration.
#[derive(Debug, Clone, Default)]
pub struct Available {
    /// Modules implemented by rsips, with their functions.
    pub modules: Vec<&'static crate::module::ModuleSpec>,
    /// Modules the runtime provides without script functions (transports such as `proto_udp`).
    pub builtin: Vec<&'static str>,
    /// `-o name=value` command-line options, read by the script as `$argv(name)`.
    pub argv: Vec<(String, String)>,
}

impl Available {
    pub fn has(&self, name: &str) -> bool {
        self.builtin.contains(&name) || self.modules.iter().any(|m| m.name == name)
    }

    /// A function exported by an implemented module.
    pub fn function(&self, name: &str) -> Option<&'static crate::module::FnSpec> {
        self.modules.iter().find_map(|m| m.function(name))
    }
}

/// Checks a parsed configuration; returns every problem found (empty when it is clean).
pub fn check(config: &Config, sources: &SourceMap, available: &Available) -> Vec<Diagnostic> {
    let mut c = Checker::new(available, sources);
    c.items(config);
    c.diags
}

/// A module named by `loadmodule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loaded {
    /// Implemented by rsips.
    Yes,
    /// An OpenSIPS module rsips does not have yet (already reported once).
    Missing,
}

pub(crate) struct Checker<'a> {
    available: &'a Available,
    sources: &'a SourceMap,
    pub(crate) diags: Vec<Diagnostic>,
    loaded: HashMap<String, Loaded>,
    /// Named routes per kind, with where they were defined.
    routes: HashMap<(RouteKind, String), Span>,
    /// The kinds of route each request route runs in (top-level kind, or its callers' kinds).
    pub(crate) route_kinds: HashMap<String, crate::module::Routes>,
    /// The route kinds of the block being walked, and its label for messages.
    pub(crate) current: (crate::module::Routes, String),
}

impl<'a> Checker<'a> {
    fn new(available: &'a Available, sources: &'a SourceMap) -> Checker<'a> {
        Checker {
            available,
            sources,
            diags: Vec::new(),
            loaded: HashMap::new(),
            routes: HashMap::new(),
            route_kinds: HashMap::new(),
            current: (crate::module::Routes::REQUEST, String::new()),
        }
    }

    fn items(&mut self, config: &Config) {
        for item in &config.items {
            match item {
                Item::LoadModule(path) => self.loadmodule(path),
                Item::Global { name, value } => self.global(name, value),
                _ => {}
            }
        }
        // `use_auto_scaling_profile NAME` names a profile the script defines (OpenSIPS fails
        // at start otherwise).
        let profiles: Vec<&str> = config
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Global { name, value } if name.node == "auto_scaling_profile" => {
                    match &value.node {
                        GlobalValue::Ident(p) => Some(p.as_str()),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect();
        for item in &config.items {
            if let Item::Global { value, .. } = item
                && let GlobalValue::Workers { profile, .. } = &value.node
                && !profiles.contains(&profile.as_str())
            {
                self.diags.push(Diagnostic::error(
                    format!("no auto_scaling_profile named `{profile}`"),
                    value.span,
                ));
            }
        }
        for item in &config.items {
            match item {
                Item::ModParam {
                    module,
                    param,
                    value,
                } => self.modparam(module, param, value),
                Item::Route(r) => self.declare_route(r),
                Item::Socket(s) => self.socket(s),
                _ => {}
            }
        }
        self.route_kinds = route_kinds(config);
        for item in &config.items {
            if let Item::Route(r) = item {
                self.route_body(r);
            }
        }
    }

    fn loadmodule(&mut self, path: &Spanned<String>) {
        let file = path.node.rsplit('/').next().unwrap_or(&path.node);
        let name = file.strip_suffix(".so").unwrap_or(file).to_owned();
        if self.loaded.contains_key(&name) {
            self.diags.push(Diagnostic::warning(
                format!("module `{name}` is loaded twice"),
                path.span,
            ));
            return;
        }
        if self.available.has(&name) {
            self.loaded.insert(name, Loaded::Yes);
        } else if MODULES.iter().any(|(m, _)| *m == name) {
            self.diags.push(
                Diagnostic::error(
                    format!("module `{name}` is not available in rsips"),
                    path.span,
                )
                .with_label("not implemented yet"),
            );
            self.loaded.insert(name, Loaded::Missing);
        } else {
            let mut d = Diagnostic::error(format!("unknown module `{name}`"), path.span);
            if let Some(s) = cfg::suggest(&name, MODULES.iter().map(|(m, _)| *m)) {
                d = d.with_help(format!("did you mean `{s}.so`?"));
            }
            self.diags.push(d);
            self.loaded.insert(name, Loaded::Missing);
        }
    }

    fn global(&mut self, name: &Spanned<String>, value: &Spanned<GlobalValue>) {
        let Some((_, kind)) = GLOBALS.iter().find(|(n, _)| *n == name.node) else {
            let mut d = Diagnostic::error(
                format!("unknown global parameter `{}`", name.node),
                name.span,
            );
            if let Some((_, why)) = REMOVED_GLOBALS.iter().find(|(n, _)| *n == name.node) {
                d = d
                    .with_label("not a parameter in OpenSIPS 4.0")
                    .with_help(*why);
            } else if let Some(s) = cfg::suggest(&name.node, GLOBALS.iter().map(|(n, _)| *n)) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            self.diags.push(d);
            return;
        };
        let ok = match (kind, &value.node) {
            (GlobalKind::SignedInt | GlobalKind::Int, GlobalValue::Int(i)) => {
                *kind == GlobalKind::SignedInt || *i >= 0
            }
            (GlobalKind::Bool, GlobalValue::Int(i)) => *i == 0 || *i == 1,
            (GlobalKind::Workers, GlobalValue::Int(i) | GlobalValue::Workers { count: i, .. }) => {
                *i >= 0
            }
            (GlobalKind::Str, GlobalValue::Str(f))
                if name.node == "stderror_log_format" || name.node == "syslog_log_format" =>
            {
                if !["plain_text", "json", "json_cee"].contains(&f.as_str()) {
                    self.diags.push(
                        Diagnostic::error(format!("unknown log format `{f}`"), value.span)
                            .with_help("use plain_text, json or json_cee"),
                    );
                }
                true
            }
            (GlobalKind::Str | GlobalKind::StrOrWord, GlobalValue::Str(_)) => true,
            (GlobalKind::Word, GlobalValue::Ident(w)) if name.node == "syslog_facility" => {
                if !tables::SYSLOG_FACILITIES.contains(&w.as_str()) {
                    let mut d =
                        Diagnostic::error(format!("unknown syslog facility `{w}`"), value.span);
                    if let Some(s) = cfg::suggest(
                        &w.to_ascii_uppercase(),
                        tables::SYSLOG_FACILITIES.iter().copied(),
                    ) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    self.diags.push(d);
                }
                true
            }
            (GlobalKind::StrOrWord | GlobalKind::Word, GlobalValue::Ident(_)) => true,
            (GlobalKind::IntOrWord, GlobalValue::Int(_) | GlobalValue::Ident(_)) => true,
            (
                GlobalKind::Address,
                GlobalValue::Str(_) | GlobalValue::Ip(_) | GlobalValue::Ident(_),
            ) => true,
            (GlobalKind::Paths, GlobalValue::Str(_) | GlobalValue::Paths(_)) => true,
            _ => false,
        };
        if !ok {
            let want = match kind {
                GlobalKind::SignedInt => "a number",
                GlobalKind::Int => "a number (not negative)",
                GlobalKind::Bool => "yes or no",
                GlobalKind::Workers => "a number of workers",
                GlobalKind::Str | GlobalKind::Paths => "a quoted string",
                GlobalKind::StrOrWord => "a string",
                GlobalKind::Word => "an unquoted name",
                GlobalKind::IntOrWord => "a number or a name",
                GlobalKind::Address => "an address",
            };
            self.diags.push(
                Diagnostic::error(format!("`{}` takes {want}", name.node), value.span)
                    .with_label("wrong type of value"),
            );
        }
    }

    /// The modules a modparam module pattern selects (an anchored, case-insensitive regex in
    /// OpenSIPS; rsips accepts names and `a|b` alternations).
    fn modparam(
        &mut self,
        module: &Spanned<String>,
        param: &Spanned<String>,
        value: &Spanned<ParamValue>,
    ) {
        // OpenSIPS matches the first argument as an extended, case-insensitive regex anchored as
        // `^(X)$` against every loaded module name ("auth_db|usrloc", "xcap|presence").
        let re = match regex::RegexBuilder::new(&format!("^({})$", module.node))
            .case_insensitive(true)
            .build()
        {
            Ok(re) => re,
            Err(_) => {
                self.diags.push(Diagnostic::error(
                    format!("bad module pattern `{}`", module.node),
                    module.span,
                ));
                return;
            }
        };
        let pattern = module.node.to_ascii_lowercase();
        let selected: Vec<&str> = pattern.split('|').map(str::trim).collect();
        let matched: Vec<Loaded> = self
            .loaded
            .iter()
            .filter(|(name, _)| re.is_match(name))
            .map(|(_, l)| *l)
            .collect();
        if matched.is_empty() {
            let mut d = Diagnostic::error(
                format!("modparam for `{}`, which is not loaded", module.node),
                module.span,
            );
            let known = MODULES.iter().any(|(m, _)| selected.contains(m));
            if known {
                d = d.with_help(format!(
                    "add `loadmodule \"{}.so\"` before this line",
                    selected.first().unwrap_or(&"")
                ));
            } else if let Some(s) =
                cfg::suggest(&module.node, self.loaded.keys().map(String::as_str))
            {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            self.diags.push(d);
        }
        for m in self
            .available
            .modules
            .iter()
            .filter(|m| re.is_match(m.name))
        {
            if self.loaded.get(m.name) != Some(&Loaded::Yes) {
                continue;
            }
            match m.params.iter().find(|(n, _)| *n == param.node) {
                None => {
                    let mut d = Diagnostic::error(
                        format!(
                            "parameter `{}` not found in module `{}`",
                            param.node, m.name
                        ),
                        param.span,
                    );
                    if let Some(s) = cfg::suggest(&param.node, m.params.iter().map(|(n, _)| *n)) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    self.diags.push(d);
                }
                Some((_, crate::module::ParamType::CheckedStr(c))) => {
                    let found = match &value.node {
                        ParamValue::Str(text) => (c.check)(text).err(),
                        ParamValue::Int(_) => Some(format!("it takes a string ({})", c.what)),
                    };
                    if let Some(why) = found {
                        self.diags.push(
                            Diagnostic::error(
                                format!("bad `{}` for module `{}`: {why}", param.node, m.name),
                                value.span,
                            )
                            .with_label("not usable here"),
                        );
                    }
                }
                Some((_, ty)) => {
                    let ok = matches!(
                        (ty, &value.node),
                        (crate::module::ParamType::Any, _)
                            | (crate::module::ParamType::Int, ParamValue::Int(_))
                            | (crate::module::ParamType::Str, ParamValue::Str(_))
                    );
                    if !ok {
                        let want = if *ty == crate::module::ParamType::Int {
                            "a number"
                        } else {
                            "a string"
                        };
                        self.diags.push(
                            Diagnostic::error(
                                format!(
                                    "type mismatch: `{}` of module `{}` takes {want}",
                                    param.node, m.name
                                ),
                                value.span,
                            )
                            .with_label("wrong type of value"),
                        );
                    }
                }
            }
        }
    }

    fn socket(&mut self, s: &Spanned<cfg::socket::SocketDef>) {
        let cfg::socket::SocketDef::Listen(spec) = &s.node else {
            return;
        };
        // HEP sockets (both transports) come with proto_hep.
        let module = match spec.proto.as_str() {
            "hep_udp" | "hep_tcp" => "proto_hep".to_owned(),
            p => format!("proto_{p}"),
        };
        if !self.loaded.contains_key(&module) {
            self.diags.push(
                Diagnostic::error(
                    format!("no transport module for `{}` sockets", spec.proto),
                    s.span,
                )
                .with_help(format!("add `loadmodule \"{module}.so\"`")),
            );
        }
    }

    fn declare_route(&mut self, r: &cfg::ast::RouteBlock) {
        let name = r.name.as_ref().map_or_else(String::new, |n| n.node.clone());
        // `route[0]` is the main route, like `route`.
        let name = if r.kind == RouteKind::Request && name == "0" {
            String::new()
        } else {
            name
        };
        let key = (r.kind, name);
        if let Some(first) = self.routes.get(&key) {
            let what = if key.1.is_empty() {
                key.0.keyword().to_owned()
            } else {
                format!("{}[{}]", key.0.keyword(), key.1)
            };
            let first = *first;
            self.diags.push(
                Diagnostic::error(format!("`{what}` is defined twice"), r.span)
                    .with_label("second definition")
                    .with_help(format!(
                        "the first one is at {}",
                        self.sources.location(first)
                    )),
            );
            return;
        }
        self.routes.insert(key, r.span);
    }

    pub(crate) fn route_exists(&self, name: &str) -> bool {
        self.routes
            .contains_key(&(RouteKind::Request, name.to_owned()))
    }

    pub(crate) fn route_names(&self) -> Vec<&str> {
        self.routes
            .keys()
            .filter(|(k, n)| *k == RouteKind::Request && !n.is_empty())
            .map(|(_, n)| n.as_str())
            .collect()
    }

    /// A function of an implemented module that the configuration loads.
    pub(crate) fn available_function(&self, name: &str) -> Option<&'static crate::module::FnSpec> {
        self.available
            .modules
            .iter()
            .filter(|m| self.loaded.get(m.name) == Some(&Loaded::Yes))
            .find_map(|m| m.function(name))
    }

    /// Which loaded modules there are, for function and PV resolution.
    pub(crate) fn module_state(&self, module: &str) -> Option<Loaded> {
        self.loaded.get(module).copied()
    }

    pub(crate) fn loaded_names(&self) -> HashSet<&str> {
        self.loaded.keys().map(String::as_str).collect()
    }
}

/// The route kinds every request route runs in. Top-level blocks run in their own kind; a
/// `route[x]` runs in the kinds of the blocks that call it (OpenSIPS `check_rls`), or as a
/// request route when nothing calls it. Only static `route(name)` calls are followed.
fn route_kinds(config: &Config) -> HashMap<String, crate::module::Routes> {
    use crate::module::Routes;
    let mut calls: Vec<(Option<String>, Routes, Vec<String>)> = Vec::new();
    for item in &config.items {
        if let Item::Route(r) = item {
            let name = (r.kind == RouteKind::Request)
                .then(|| r.name.as_ref().map_or(String::new(), |n| n.node.clone()))
                .map(|n| if n == "0" { String::new() } else { n });
            let mut targets = Vec::new();
            walk::route_targets(&r.body.stmts, &mut targets);
            calls.push((name, Routes::of(r.kind), targets));
        }
    }
    let mut kinds: HashMap<String, Routes> = HashMap::new();
    kinds.insert(String::new(), Routes::REQUEST);
    let mut changed = true;
    let mut rounds = 0;
    while changed && rounds <= calls.len() + 1 {
        changed = false;
        rounds += 1;
        for (name, own, targets) in &calls {
            let from = match name {
                None => *own,
                Some(n) if n.is_empty() => Routes::REQUEST,
                Some(n) => kinds.get(n).copied().unwrap_or(Routes::NONE),
            };
            for t in targets {
                let e = kinds.entry(t.clone()).or_insert(Routes::NONE);
                let merged = e.or(from);
                if merged != *e {
                    *e = merged;
                    changed = true;
                }
            }
        }
    }
    for (name, ..) in &calls {
        if let Some(n) = name {
            let k = kinds.entry(n.clone()).or_insert(Routes::NONE);
            if *k == Routes::NONE {
                *k = Routes::REQUEST;
            }
        }
    }
    kinds
}
