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
    /// An integer.
    Int,
}

/// One exported function.
#[derive(Debug, Clone, Copy)]
pub struct FnSpec {
    pub name: &'static str,
    /// Parameters in order; `true` marks an optional one.
    pub params: &'static [(Param, bool)],
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

/// A module as the engine sees it.
#[derive(Debug)]
pub struct ModuleSpec {
    /// The OpenSIPS name (`sipmsgops`, `tm` …).
    pub name: &'static str,
    pub functions: &'static [FnSpec],
}

impl ModuleSpec {
    pub fn function(&self, name: &str) -> Option<&'static FnSpec> {
        self.functions.iter().find(|f| f.name == name)
    }
}
