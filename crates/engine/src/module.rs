//! What a module gives the script engine: its script functions with typed signatures. Modules
//! declare these as statics; `bin/rsips` lists the modules it links in an [`crate::Available`],
//! and the compiler resolves each call to a function pointer once, at load time.

use crate::ctx::MsgCtx;
use crate::script::Log;
use crate::value::Value;

/// What a module function may touch while it runs.
pub struct FnCtx<'a> {
    pub msg: &'a mut MsgCtx,
    pub log: &'a mut dyn Log,
    /// The running script (its sockets, `myself`, routes).
    pub script: &'a crate::Script,
    /// `$route.type` of the route being run: `request`, `failure`, `onreply`, `branch` …
    pub kind: &'static str,
    /// The worker's persistent state, for running another route (tm's branch_route).
    pub worker: &'a mut crate::Worker,
    /// How many variables each [`Param::VarList`] parameter names.
    pub(crate) output_counts: Vec<(usize, usize)>,
    /// The AVP (its slot) each [`Param::Avp`] parameter names.
    pub(crate) avp_params: Vec<(usize, usize)>,
    /// Values for the function's output variables, stored once it returns.
    /// (parameter, position in a [`Param::VarList`] — 0 otherwise, value).
    pub(crate) outputs: Vec<(usize, usize, Value)>,
}

impl FnCtx<'_> {
    /// The interpreter's view of this call, to read variables the way the script would.
    fn run(&mut self) -> crate::script::exec::Run<'_> {
        crate::script::exec::Run {
            script: self.script,
            worker: &mut *self.worker,
            ctx: &mut *self.msg,
            log: &mut *self.log,
            limits: self.script.limits(),
            ops: 0,
            depth: 0,
            params: Vec::new(),
            param_names: Vec::new(),
            route: 0,
            kind: self.kind,
            returned: Vec::new(),
            prof: None,
            trace: None,
        }
    }

    /// A pseudo-variable read now, with its transformations, as the script would read it
    /// (for arguments a function expands itself, like textops' subst replacements).
    pub fn read_pv(&mut self, spec: &cfg::pv::PvSpec) -> Value {
        self.run().eval_pv(spec, 0)
    }

    /// `text` expanded as a format string now (as `{s.eval}` does).
    pub fn eval_format(&mut self, text: &str) -> Value {
        self.run().eval_format(text)
    }

    /// Stores `v` into the variable given as parameter `param` (0-based, a [`Param::Var`] or
    /// [`Param::Avp`]) once the function returns, as `=` would: a `$var` keeps the last value
    /// set, an AVP gets each value pushed in turn (OpenSIPS `pv_set_value`). Nothing happens
    /// when the optional variable was left out.
    pub fn set_output(&mut self, param: usize, v: Value) {
        self.outputs.push((param, 0, v));
    }

    /// Stores `v` into the `index`-th variable (0-based) of the list given as parameter
    /// `param` (a [`Param::VarList`]), as `=` would; nothing happens past the list's end.
    pub fn set_output_at(&mut self, param: usize, index: usize, v: Value) {
        self.outputs.push((param, index, v));
    }

    /// The values of the AVP given as parameter `param` (a [`Param::Avp`]), newest first
    /// (functions that work on a whole AVP: `shuffle_avps`, `set_count`).
    pub fn read_output_avp(&self, param: usize) -> Vec<Value> {
        self.avp_params
            .iter()
            .find(|(p, _)| *p == param)
            .and_then(|(_, id)| self.msg.avps.get(*id))
            .map_or(Vec::new(), |s| s.iter().rev().cloned().collect())
    }

    /// Replaces every value of the AVP given as parameter `param` (`values` newest first).
    pub fn replace_output_avp(&mut self, param: usize, values: Vec<Value>) {
        let Some(&(_, id)) = self.avp_params.iter().find(|(p, _)| *p == param) else {
            return;
        };
        if self.msg.avps.len() <= id {
            self.msg.avps.resize(id + 1, Vec::new());
        }
        self.msg.avps[id] = values.into_iter().rev().collect();
    }

    /// The newest value of `$avp(name)`, when the script uses that AVP and it has one (a
    /// module reading an AVP the script fills by convention: rtp_relay's flags).
    pub fn avp(&self, name: &str) -> Option<Value> {
        let slot = self.script.avp_slot(name)?;
        self.msg.avps.get(slot)?.last().cloned()
    }

    /// How many variables the list given as parameter `param` names (0 when left out).
    pub fn output_count(&self, param: usize) -> usize {
        self.output_counts
            .iter()
            .find(|(p, _)| *p == param)
            .map_or(0, |(_, n)| *n)
    }
}

impl std::fmt::Debug for FnCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnCtx")
            .field("msg", &self.msg)
            .finish_non_exhaustive()
    }
}

/// A script function: gets its evaluated arguments (`Value::Null` for an omitted optional one)
/// and returns the OpenSIPS return code (> 0 true, < 0 false, 0 ends the script).
pub type ScriptFn = fn(&mut FnCtx<'_>, &[Value]) -> i64;

/// The kind of one parameter (OpenSIPS `CMD_PARAM_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// A string: a literal is a format string (PVs expanded), a variable is read.
    Str,
    /// A string taken literally (a regex, a header name list).
    StaticStr,
    /// As [`Param::StaticStr`], and a literal is checked when the script loads (a regex that
    /// does not compile is a load error at its position, as OpenSIPS' fixups refuse it). A
    /// variable is read when the function runs, and the function checks it then.
    Checked(&'static ParamCheck),
    /// An integer whose literal (a number, or a string without variables) is checked when the
    /// script loads, as OpenSIPS' fixups refuse a reply code out of range; a variable is read
    /// when the function runs.
    CheckedInt(&'static ParamCheck),
    /// A string (a literal is a format string, its variables read when the function runs)
    /// whose literal without variables is checked when the script loads, as an OpenSIPS
    /// string parameter the module checks once it knows the value (stir_shaken's
    /// attestation level: `"A"` is checked at load, `"$var(attest)"` when called).
    CheckedStr(&'static ParamCheck),
    /// An integer.
    Int,
    /// The name of a route of this kind, resolved when the script is compiled; the function
    /// gets its index as an integer (`t_on_failure("name")`).
    Route(cfg::ast::RouteKind),
    /// A writable variable the function stores a result into with [`FnCtx::set_output`]
    /// (OpenSIPS `CMD_PARAM_VAR`); anything else is a load error. The function's argument
    /// value is `Value::Null`.
    Var,
    /// As [`Param::Var`], and the function also reads it: its argument value is the
    /// variable's value when the function is called (rtpproxy's `body_var`, an SDP taken from
    /// the variable and written back to it).
    VarInOut,
    /// As [`Param::Var`], but only an AVP (OpenSIPS functions that push several values).
    Avp,
    /// An output written as a string literal: one of these words, or a writable variable
    /// in quotes (`"$var(out)"`, OpenSIPS `CMD_PARAM_NO_EXPAND` outputs such as
    /// stir_shaken's `out`). The argument value is the literal text; the function stores into
    /// the variable with [`FnCtx::set_output`].
    OutVarOr(&'static [&'static str]),
    /// A literal list of writable variables separated by `;` (sqlops' result columns,
    /// `"$avp(uri);$var(prio)"`), resolved when the script loads; the function stores into
    /// them with [`FnCtx::set_output_at`]. The argument value is `Value::Null`.
    VarList,
}

/// A load-time check of a literal parameter: `Err` is the diagnostic text.
#[derive(Debug)]
pub struct ParamCheck {
    /// What the parameter is ("regular expression"), for messages and equality.
    pub what: &'static str,
    pub check: fn(&str) -> Result<(), String>,
}

impl PartialEq for ParamCheck {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for ParamCheck {}

/// An integer literal between `lo` and `hi`, for [`Param::CheckedInt`] checks.
pub fn int_between(text: &str, lo: i64, hi: i64) -> Result<(), String> {
    match text.trim().parse::<i64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(()),
        Ok(n) => Err(format!("{n} is not between {lo} and {hi}")),
        Err(_) => Err(format!("`{text}` is not a number")),
    }
}

/// A SIP reply code literal (`sl_send_reply`, `send_reply`, `t_reply`): 1xx to 6xx only.
pub static REPLY_CODE: ParamCheck = ParamCheck {
    what: "reply code",
    check: |text| int_between(text, 100, 699),
};

/// The kinds of route a function may run in (OpenSIPS route masks), as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Routes(pub u16);

impl Routes {
    pub const REQUEST: Routes = Routes(1);
    pub const ONREPLY: Routes = Routes(1 << 1);
    pub const FAILURE: Routes = Routes(1 << 2);
    pub const BRANCH: Routes = Routes(1 << 3);
    pub const LOCAL: Routes = Routes(1 << 4);
    pub const ERROR: Routes = Routes(1 << 5);
    pub const STARTUP: Routes = Routes(1 << 6);
    pub const TIMER: Routes = Routes(1 << 7);
    pub const EVENT: Routes = Routes(1 << 8);
    pub const ALL: Routes = Routes(0x1ff);
    pub const NONE: Routes = Routes(0);

    pub const fn or(self, other: Routes) -> Routes {
        Routes(self.0 | other.0)
    }

    pub fn contains(self, other: Routes) -> bool {
        self.0 & other.0 == other.0
    }

    /// The kind of a route block.
    pub fn of(kind: cfg::ast::RouteKind) -> Routes {
        use cfg::ast::RouteKind::*;
        match kind {
            Request => Routes::REQUEST,
            Reply => Routes::ONREPLY,
            Failure => Routes::FAILURE,
            Branch => Routes::BRANCH,
            Local => Routes::LOCAL,
            Error => Routes::ERROR,
            Startup => Routes::STARTUP,
            Timer => Routes::TIMER,
            Event => Routes::EVENT,
        }
    }

    /// The route kinds in `self` that are not in `allowed`, by their block keyword.
    pub fn missing_from(self, allowed: Routes) -> Vec<&'static str> {
        use cfg::ast::RouteKind::*;
        [
            Request, Reply, Failure, Branch, Local, Error, Startup, Timer, Event,
        ]
        .into_iter()
        .filter(|k| self.contains(Routes::of(*k)) && !allowed.contains(Routes::of(*k)))
        .map(cfg::ast::RouteKind::keyword)
        .collect()
    }
}

/// One exported function.
#[derive(Debug, Clone, Copy)]
pub struct FnSpec {
    pub name: &'static str,
    /// Parameters in order; `true` marks an optional one.
    pub params: &'static [(Param, bool)],
    /// The routes it may be called from.
    pub routes: Routes,
    pub run: ScriptFn,
}

impl FnSpec {
    pub fn min_args(&self) -> usize {
        self.params
            .iter()
            .rposition(|(_, optional)| !optional)
            .map_or(0, |i| i + 1)
    }

    pub fn max_args(&self) -> usize {
        self.params.len()
    }
}

/// The type of a module parameter; OpenSIPS checks it strictly (`modparam` "type mismatch").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Int,
    Str,
    /// Accepts either (OpenSIPS registers both types for a few parameters).
    Any,
    /// A string the module checks when the script loads (an unusable value is an error at
    /// its `modparam` line).
    CheckedStr(&'static ParamCheck),
}

/// A module as the engine sees it.
#[derive(Debug)]
pub struct ModuleSpec {
    /// The OpenSIPS name (`sipmsgops`, `tm` …).
    pub name: &'static str,
    pub functions: &'static [FnSpec],
    /// `modparam` parameters and their types.
    pub params: &'static [(&'static str, ParamType)],
}

impl ModuleSpec {
    pub fn function(&self, name: &str) -> Option<&'static FnSpec> {
        self.functions.iter().find(|f| f.name == name)
    }
}
