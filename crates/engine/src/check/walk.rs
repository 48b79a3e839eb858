//! Walks route bodies: resolves every call (core function, grammar form, module function),
//! every `route(...)` target and every pseudo-variable, and checks assignment targets.

use cfg::Diagnostic;
use cfg::ast::{Arg, Call, Expr, ExprKind, PvRef, RouteBlock, RouteKind, Stmt, StmtKind};
use cfg::pv::{FmtPart, PvIndex, PvSpec};
use cfg::source::Span;

use super::tables::{CORE_FUNCTIONS, CORE_PVS, GRAMMAR_CALLS, MODULE_PVS};
use super::{Checker, Loaded};
use crate::catalog::MODULES;

/// Functions whose first argument is a flag name, written as a static string.
const FLAG_FUNCTIONS: &[&str] = &[
    "setflag",
    "resetflag",
    "isflagset",
    "setbflag",
    "resetbflag",
    "isbflagset",
];

impl Checker<'_> {
    pub(super) fn route_body(&mut self, r: &RouteBlock) {
        let kinds = match (r.kind, &r.name) {
            (RouteKind::Request, n) => {
                let key = n.as_ref().map_or(String::new(), |n| {
                    if n.node == "0" {
                        String::new()
                    } else {
                        n.node.clone()
                    }
                });
                self.route_kinds
                    .get(&key)
                    .copied()
                    .unwrap_or(crate::module::Routes::REQUEST)
            }
            (kind, _) => crate::module::Routes::of(kind),
        };
        let label = match &r.name {
            Some(n) => format!("{}[{}]", r.kind.keyword(), n.node),
            None => r.kind.keyword().to_owned(),
        };
        self.current = (kinds, label);
        if r.kind == RouteKind::Timer && r.interval.is_none() {
            self.diags.push(
                Diagnostic::error("a timer route needs an interval", r.span)
                    .with_help("write `timer_route[name, seconds]`"),
            );
        }
        for s in &r.body.stmts {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Call(c) => self.call(c),
            StmtKind::Assign(a) => {
                self.assign_target(&a.target, false);
                self.expr(&a.value);
            }
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                self.cond(cond);
                self.stmt(then);
                if let Some(o) = otherwise {
                    self.stmt(o);
                }
            }
            StmtKind::While { cond, body } => {
                self.cond(cond);
                self.stmt(body);
            }
            StmtKind::For { var, iter, body } => {
                self.assign_target(var, false);
                self.pv(iter);
                if !matches!(iter.spec.index, Some(PvIndex::All)) {
                    self.diags.push(
                        Diagnostic::error(
                            format!(
                                "`for` iterates over all values: write `$({}[*])`",
                                pv_label(&iter.spec)
                            ),
                            iter.span,
                        )
                        .with_label("needs `[*]`"),
                    );
                }
                self.stmt(body);
            }
            StmtKind::Switch {
                subject,
                cases,
                default,
            } => {
                self.pv(subject);
                for c in cases {
                    c.body.iter().for_each(|s| self.stmt(s));
                }
                if let Some(d) = default {
                    d.iter().for_each(|s| self.stmt(s));
                }
            }
            StmtKind::Return(values) => values.iter().flatten().for_each(|e| self.expr(e)),
            StmtKind::Block(b) => b.stmts.iter().for_each(|s| self.stmt(s)),
            StmtKind::Assert { cond, .. } => self.cond(cond),
            StmtKind::Exit | StmtKind::Drop | StmtKind::Break | StmtKind::Nop => {}
        }
    }

    /// A condition: assignments inside it are checked as such (`$sp=5060` in an `if`).
    fn cond(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Assign(a) => {
                self.assign_target(&a.target, true);
                self.expr(&a.value);
            }
            ExprKind::Not(x) | ExprKind::Test(x) => self.cond(x),
            ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                self.cond(a);
                self.cond(b);
            }
            _ => self.expr(e),
        }
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Pv(p) => self.pv(p),
            ExprKind::Call(c) => self.call(c),
            ExprKind::Cmp { left, right, .. } => {
                self.pv(left);
                self.expr(right);
            }
            ExprKind::Binary { left, right, .. } => {
                self.expr(left);
                self.expr(right);
            }
            ExprKind::Not(x) | ExprKind::BitNot(x) | ExprKind::Test(x) => self.expr(x),
            ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Assign(a) => {
                self.assign_target(&a.target, true);
                self.expr(&a.value);
            }
            ExprKind::Int(_) | ExprKind::Str(_) | ExprKind::Null | ExprKind::Ip(_) => {}
        }
    }

    fn call(&mut self, c: &Call) {
        let name = c.name.node.as_str();
        match name {
            "route" => return self.route_call(c),
            "xlog" | "xdbg" => return self.xlog(c),
            "async" | "launch" => return self.async_call(c),
            _ if GRAMMAR_CALLS.contains(&name) => return self.plain_args(c, false),
            _ => {}
        }
        if let Some((_, min, max)) = CORE_FUNCTIONS.iter().find(|(n, ..)| *n == name) {
            self.arity(c, *min, *max);
            if FLAG_FUNCTIONS.contains(&name)
                && let Some(Some(Arg::Ident(w, span))) = c.args.first()
            {
                self.diags.push(
                    Diagnostic::error(
                        format!("flag names are quoted strings in OpenSIPS 4.0: `{name}(\"{w}\")`"),
                        *span,
                    )
                    .with_label("unquoted flag name"),
                );
            }
            return self.plain_args(c, true);
        }
        if let Some(f) = self.available_function(name) {
            self.arity(c, f.min_args(), f.max_args());
            let (kinds, label) = self.current.clone();
            let bad = kinds.missing_from(f.routes);
            if !bad.is_empty() {
                let kinds = bad
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" or ");
                let mut d =
                    Diagnostic::error(format!("`{name}` cannot be used in {kinds}"), c.name.span)
                        .with_label("not allowed in this route");
                if label.starts_with("route[") {
                    d = d.with_help(format!("`{label}` is called from {kinds}"));
                }
                self.diags.push(d);
            }
            return self.module_args(c, f);
        }
        let owners: Vec<&str> = MODULES
            .iter()
            .filter(|(_, f)| f.contains(&name))
            .map(|(m, _)| *m)
            .collect();
        if let Some(m) = owners
            .iter()
            .find(|m| self.module_state(m) == Some(Loaded::Yes))
        {
            // rsips has the module but not this function of it.
            self.diags.push(
                Diagnostic::error(
                    format!("`{name}` (module `{m}`) is not available in rsips yet"),
                    c.name.span,
                )
                .with_label("not implemented yet"),
            );
            return;
        }
        if owners.iter().any(|m| self.module_state(m).is_some()) {
            // A module rsips lacks was already reported at its `loadmodule`.
            return self.plain_args(c, false);
        }
        if let Some(module) = owners.first() {
            self.diags.push(
                Diagnostic::error(
                    format!("`{name}` is exported by module `{module}`, which is not loaded"),
                    c.name.span,
                )
                .with_help(format!("add `loadmodule \"{module}.so\"`")),
            );
            return;
        }
        let loaded = self.loaded_names();
        let candidates = CORE_FUNCTIONS
            .iter()
            .map(|(n, ..)| *n)
            .chain(GRAMMAR_CALLS.iter().copied())
            .chain(
                MODULES
                    .iter()
                    .filter(|(m, _)| loaded.contains(m))
                    .flat_map(|(_, f)| f.iter().copied()),
            );
        let mut d = Diagnostic::error(format!("unknown function `{name}`"), c.name.span);
        if let Some(s) = cfg::suggest(name, candidates) {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
        self.diags.push(d);
    }

    fn arity(&mut self, c: &Call, min: usize, max: usize) {
        let n = c.args.len();
        if n < min || n > max {
            let plural = |k: usize| if k == 1 { "argument" } else { "arguments" };
            let want = match (min, max) {
                (a, b) if a == b => format!("{a} {}", plural(a)),
                (a, b) if b == a + 1 => format!("{a} or {b} {}", plural(b)),
                (a, b) => format!("{a} to {b} {}", plural(b)),
            };
            self.diags.push(
                Diagnostic::error(format!("`{}` takes {want}, found {n}", c.name.node), c.span)
                    .with_label("wrong number of arguments"),
            );
        }
    }

    /// PVs and format strings inside arguments. `formats`: string arguments are format strings.
    fn plain_args(&mut self, c: &Call, formats: bool) {
        for a in c.args.iter().flatten() {
            match a {
                Arg::Pv(p) => self.pv(p),
                Arg::Str(s, span) if formats => self.format(s, *span),
                Arg::Call(inner) => self.call(inner),
                _ => {}
            }
        }
    }

    /// A module function's arguments; those it writes to must be writable variables (an AVP
    /// where the function pushes several values).
    fn module_args(&mut self, c: &Call, f: &crate::module::FnSpec) {
        use crate::module::Param;
        for (i, a) in c.args.iter().enumerate() {
            if let (Some(a), Some((Param::VarList, _))) = (a, f.params.get(i)) {
                self.var_list(f.name, i, a);
                continue;
            }
            let (Some(a), Some((kind @ (Param::Var | Param::VarInOut | Param::Avp), _))) =
                (a, f.params.get(i))
            else {
                match a {
                    Some(Arg::Pv(p)) => self.pv(p),
                    Some(Arg::Str(s, span)) => self.format(s, *span),
                    Some(Arg::Call(inner)) => self.call(inner),
                    _ => {}
                }
                continue;
            };
            let name = f.name;
            let want = if *kind == Param::Avp {
                "an AVP such as `$avp(out)`"
            } else {
                "a variable such as `$var(out)`"
            };
            match a {
                Arg::Pv(p) if *kind == Param::Avp && p.spec.name != "avp" => {
                    self.diags.push(
                        Diagnostic::error(
                            format!(
                                "`{name}` stores into parameter {}: it takes {want}, not `{}`",
                                i + 1,
                                p.text
                            ),
                            p.span,
                        )
                        .with_label("not an AVP"),
                    );
                }
                Arg::Pv(p) => self.assign_target(p, false),
                other => self.diags.push(
                    Diagnostic::error(
                        format!("`{name}` stores into parameter {}: it takes {want}", i + 1),
                        other.span(),
                    )
                    .with_label("not a variable"),
                ),
            }
        }
    }

    fn route_call(&mut self, c: &Call) {
        let Some(Some(target)) = c.args.first() else {
            self.diags
                .push(Diagnostic::error("`route()` needs a route name", c.span));
            return;
        };
        let (name, span) = match target {
            Arg::Ident(n, s) => (n.clone(), *s),
            Arg::Int(i, s) => (i.to_string(), *s),
            Arg::Str(n, s) if !n.contains('$') => (n.clone(), *s),
            Arg::Pv(p) => return self.pv(p),
            _ => return,
        };
        if !self.route_exists(&name) {
            let mut d = Diagnostic::error(format!("called route `{name}` is not defined"), span);
            if let Some(s) = cfg::suggest(&name, self.route_names()) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            self.diags.push(d);
        }
        for a in c.args.iter().skip(1).flatten() {
            if let Arg::Pv(p) = a {
                self.pv(p);
            }
        }
    }

    /// `xlog([level,] format)`: the level is `L_ALERT`…`L_DBG` (3rd letter decides) or a PV.
    fn xlog(&mut self, c: &Call) {
        self.arity(c, 1, 2);
        if c.args.len() == 2 {
            match c.args.first() {
                // A level written as a variable in quotes (`"$var(level)"`) is read at run
                // time, as OpenSIPS does.
                Some(Some(Arg::Str(level, _))) if level.starts_with('$') => {}
                Some(Some(Arg::Str(level, span))) => {
                    let ok = level
                        .as_bytes()
                        .get(2)
                        .is_some_and(|b| b"ACEWNID".contains(b));
                    if !ok {
                        self.diags.push(
                            Diagnostic::error(format!("unknown log level `{level}`"), *span)
                                .with_help("use one of L_ALERT, L_CRIT, L_ERR, L_WARN, L_NOTICE, L_INFO, L_DBG"),
                        );
                    }
                }
                Some(Some(Arg::Pv(p))) => self.pv(p),
                Some(Some(a)) => self.diags.push(Diagnostic::error(
                    "the log level is a string like \"L_ERR\"",
                    a.span(),
                )),
                _ => {}
            }
        }
        match c.args.last() {
            Some(Some(Arg::Str(fmt, span))) => self.format(fmt, *span),
            Some(Some(a)) => self
                .diags
                .push(Diagnostic::error("the log message is a string", a.span())),
            _ => {}
        }
    }

    /// `async(f(...), resume_route[, timeout])` / `launch(f(...)[, report_route[, "str"]])`.
    fn async_call(&mut self, c: &Call) {
        match c.args.first() {
            Some(Some(Arg::Call(inner))) => self.call(inner),
            _ => {
                self.diags.push(
                    Diagnostic::error(
                        format!("`{}` takes a function call first", c.name.node),
                        c.span,
                    )
                    .with_help(format!(
                        "for example `{}(rest_get(\"http://...\", $var(body)), resume)`",
                        c.name.node
                    )),
                );
                return;
            }
        }
        if let Some(Some(Arg::Ident(r, span))) = c.args.get(1)
            && !self.route_exists(r)
        {
            self.diags.push(Diagnostic::error(
                format!("called route `{r}` is not defined"),
                *span,
            ));
        }
    }

    fn format(&mut self, s: &str, span: Span) {
        match cfg::pv::parse_format(s) {
            Ok(parts) => {
                for p in parts {
                    if let FmtPart::Pv(spec, _) = p {
                        let at = self.pv_in_string(&spec, span);
                        self.pv_spec(&spec, at);
                    }
                }
            }
            Err((_, e)) => self.diags.push(Diagnostic::error(
                format!("bad variable in string: {e}"),
                span,
            )),
        }
    }

    /// The span of a PV inside a string literal, found by its `$name` in the source (escapes
    /// before it would shift a computed offset); the whole literal when it cannot be found.
    fn pv_in_string(&self, spec: &PvSpec, literal: Span) -> Span {
        let text = self.sources.snippet(literal);
        let needle = format!("${}", spec.name);
        let Some(at) = text
            .find(&needle)
            .or_else(|| text.find(&format!("$({}", spec.name)))
        else {
            return literal;
        };
        let len = cfg::pv::scan(&text[at..]).unwrap_or(needle.len());
        Span {
            file: literal.file,
            start: literal.start + at as u32,
            end: literal.start + (at + len) as u32,
        }
    }

    pub(super) fn pv(&mut self, p: &PvRef) {
        self.pv_spec(&p.spec, p.span);
    }

    fn pv_spec(&mut self, spec: &PvSpec, span: Span) {
        if let Some(PvIndex::Var(v)) = &spec.index {
            self.pv_spec(v, span);
        }
        if matches!(spec.index, Some(PvIndex::Insert | PvIndex::InsertAfter))
            && !matches!(
                spec.name.as_str(),
                "sdp.line" | "sdp.session" | "sdp.stream"
            )
        {
            self.diags.push(Diagnostic::error(
                format!(
                    "`${}` has no `[insert]` / `[insertAfter]` index: only `$sdp.line`, \
                     `$sdp.session` and `$sdp.stream` have it",
                    spec.name
                ),
                span,
            ));
        }
        for t in &spec.transforms {
            self.transform(t, span);
        }
        let name = spec.name.as_str();
        let has_arg = spec.arg.is_some();
        let core: Vec<&(&str, bool, bool)> = CORE_PVS.iter().filter(|(n, ..)| *n == name).collect();
        if !core.is_empty() {
            if !core.iter().any(|(_, a, _)| *a == has_arg) {
                let msg = if has_arg {
                    format!("`${name}` takes no name in parentheses")
                } else {
                    format!("`${name}` needs a name: `${name}(...)`")
                };
                self.diags.push(Diagnostic::error(msg, span));
            }
            return;
        }
        if let Some((_, module)) = MODULE_PVS
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
        {
            if self.module_state(module).is_none() {
                self.diags.push(
                    Diagnostic::error(
                        format!("`${name}` is provided by module `{module}`, which is not loaded"),
                        span,
                    )
                    .with_help(format!("add `loadmodule \"{module}.so\"`")),
                );
            }
            return;
        }
        let mut d = Diagnostic::error(format!("unknown pseudo-variable `${name}`"), span);
        if let Some((_, instead)) = super::tables::REMOVED_PVS.iter().find(|(n, _)| *n == name) {
            d = d.with_label("not in OpenSIPS 4.0").with_help(*instead);
        } else if let Some(s) = cfg::suggest(name, CORE_PVS.iter().map(|(n, ..)| *n)) {
            d = d.with_help(format!("did you mean `${s}`?"));
        }
        self.diags.push(d);
    }

    /// Resolves one `{class.op,args}` and checks its literal arguments (e.g. the `re.subst`
    /// expression) at load time.
    fn transform(&mut self, t: &cfg::pv::TransformSpec, span: Span) {
        let (name, index) = match crate::transform::split_inline_index(&t.name) {
            Some((n, i)) => (n, Some(i.to_owned())),
            None => (t.name.to_ascii_lowercase(), None),
        };
        let mut args = split_transform_args(&name, t.args.as_deref());
        if let Some(i) = index {
            args.insert(0, i);
        }
        let op = match crate::transform::TransformOp::lookup(&name, args.len()) {
            Ok(op) => op,
            Err(e) => {
                self.diags.push(transform_error(&e, &name, span));
                return;
            }
        };
        let literals: Vec<Option<&str>> = args
            .iter()
            .map(|a| {
                if a.starts_with('$') {
                    None
                } else {
                    Some(a.as_str())
                }
            })
            .collect();
        if let Err(e) = op.check_args(&literals) {
            self.diags.push(transform_error(&e, &name, span));
        }
    }

    /// A `;`-separated list of variables a function stores into: a literal naming only
    /// writable variables.
    fn var_list(&mut self, func: &str, i: usize, a: &Arg) {
        let Arg::Str(s, span) = a else {
            self.diags.push(Diagnostic::error(
                format!(
                    "`{func}` stores into the variables parameter {} names: it takes a literal \
                     list such as \"$avp(a);$var(b)\"",
                    i + 1
                ),
                a.span(),
            ));
            return;
        };
        for text in s.split(';').map(str::trim).filter(|t| !t.is_empty()) {
            match cfg::pv::parse(text) {
                Ok(spec) => self.assign_target(
                    &PvRef {
                        text: text.to_owned(),
                        spec,
                        span: *span,
                    },
                    false,
                ),
                Err(e) => self.diags.push(Diagnostic::error(
                    format!("`{func}`: `{text}` is not a variable: {e}"),
                    *span,
                )),
            }
        }
    }

    fn assign_target(&mut self, p: &PvRef, in_condition: bool) {
        self.pv(p);
        if !p.spec.transforms.is_empty() {
            self.diags.push(Diagnostic::error(
                "cannot assign to a variable with transformations",
                p.span,
            ));
        }
        let name = p.spec.name.as_str();
        let has_arg = p.spec.arg.is_some();
        let entries: Vec<_> = CORE_PVS
            .iter()
            .filter(|(n, a, _)| *n == name && *a == has_arg)
            .collect();
        if !entries.is_empty() && !entries.iter().any(|(.., w)| *w) {
            let mut d = Diagnostic::error(
                format!("cannot assign to `{}`: it is read-only", p.text),
                p.span,
            )
            .with_label("read-only variable");
            if in_condition {
                d = d.with_help("inside a condition `=` assigns; to compare, write `==`");
            }
            self.diags.push(d);
        }
    }
}

fn transform_error(e: &crate::transform::TransformError, name: &str, span: Span) -> Diagnostic {
    use crate::transform::{TransformError, TransformOp};
    match e {
        TransformError::Unknown(n) => {
            let mut d = Diagnostic::error(format!("unknown transformation `{n}`"), span);
            if let Some(s) = cfg::suggest(name, TransformOp::names().iter().copied()) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            d
        }
        TransformError::Arity {
            name,
            expected,
            got,
        } => {
            let noun = if expected == "1" {
                "argument"
            } else {
                "arguments"
            };
            Diagnostic::error(
                format!("transformation `{name}` takes {expected} {noun}, found {got}"),
                span,
            )
        }
        TransformError::BadArg { name, why } => {
            // Regex errors come as several lines (pattern, caret, reason): keep it to one.
            let why = match (why.lines().next(), why.lines().last()) {
                (Some(first), Some(last)) if why.contains('\n') => {
                    let head = first
                        .trim_end_matches(':')
                        .trim_end_matches("regex parse error")
                        .trim_end_matches([':', ' ']);
                    format!("{head}: {}", last.trim().trim_start_matches("error: "))
                }
                _ => why.clone(),
            };
            Diagnostic::error(
                format!("bad argument for transformation `{name}`: {why}"),
                span,
            )
        }
    }
}

/// Splits a transformation's raw arguments the way each op reads them: `re.subst` takes the
/// whole rest (it has its own delimiters), `s.select` takes an index and one separator character
/// (which may itself be `,`), the others are comma-separated.
pub(crate) fn split_transform_args(name: &str, raw: Option<&str>) -> Vec<String> {
    let Some(raw) = raw else { return Vec::new() };
    // OpenSIPS skips the blanks before a number or a variable (`{s.substr, 1, $var(l)}`).
    let arg = |a: &str| {
        let t = a.trim_start();
        if t.starts_with('$') || t.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+')
        {
            t.trim_end().to_owned()
        } else {
            a.to_owned()
        }
    };
    match name {
        "re.subst" => vec![raw.to_owned()],
        // The separator is the one character right after the comma, whatever it is (OpenSIPS
        // reads no further): `{s.select,1, }` splits on a space.
        "s.select" => match raw.split_once(',') {
            Some((i, sep)) => {
                let sep = sep.chars().next().map(String::from).unwrap_or_default();
                vec![arg(i), sep]
            }
            None => vec![arg(raw)],
        },
        _ => raw.split(',').map(arg).collect(),
    }
}

fn pv_label(spec: &PvSpec) -> String {
    match &spec.arg {
        Some(a) => format!("{}({a})", spec.name),
        None => spec.name.clone(),
    }
}

/// Static `route(name)` targets called anywhere in a statement list.
pub(super) fn route_targets(stmts: &[Stmt], out: &mut Vec<String>) {
    for s in stmts {
        match &s.kind {
            StmtKind::Call(c) => call_targets(c, out),
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                expr_targets(cond, out);
                route_targets(std::slice::from_ref(then), out);
                if let Some(o) = otherwise {
                    route_targets(std::slice::from_ref(o), out);
                }
            }
            StmtKind::While { cond, body } => {
                expr_targets(cond, out);
                route_targets(std::slice::from_ref(body), out);
            }
            StmtKind::For { body, .. } => route_targets(std::slice::from_ref(body), out),
            StmtKind::Switch { cases, default, .. } => {
                for c in cases {
                    route_targets(&c.body, out);
                }
                if let Some(d) = default {
                    route_targets(d, out);
                }
            }
            StmtKind::Block(b) => route_targets(&b.stmts, out),
            StmtKind::Assign(a) => expr_targets(&a.value, out),
            _ => {}
        }
    }
}

fn call_targets(c: &Call, out: &mut Vec<String>) {
    if c.name.node == "route"
        && let Some(Some(Arg::Ident(n, _) | Arg::Str(n, _))) = c.args.first()
    {
        out.push(n.clone());
    }
}

fn expr_targets(e: &Expr, out: &mut Vec<String>) {
    match &e.kind {
        ExprKind::Call(c) => call_targets(c, out),
        ExprKind::Not(x) | ExprKind::Test(x) | ExprKind::BitNot(x) => expr_targets(x, out),
        ExprKind::And(a, b) | ExprKind::Or(a, b) => {
            expr_targets(a, out);
            expr_targets(b, out);
        }
        ExprKind::Binary { left, right, .. } => {
            expr_targets(left, out);
            expr_targets(right, out);
        }
        ExprKind::Assign(a) => expr_targets(&a.value, out),
        _ => {}
    }
}
