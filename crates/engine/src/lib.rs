//! The rsips script engine: checks a parsed opensips.cfg at load time (every name resolved once),
//! and holds what running it needs: script values, the per-message context, core pseudo-variable
//! reads and the transformation library. The route interpreter is built on these (issue #3).
#![forbid(unsafe_code)]

pub mod amqp;
#[doc(hidden)]
pub mod cachedb;
pub mod catalog;
pub mod check;
pub mod ctx;
pub mod dset;
pub mod ebr;
pub mod evi;
mod fnmatch;
pub mod forward;
pub use fnmatch::fnmatch;
pub mod hooks;
pub mod jsonrpc;
pub mod memcached;
pub mod module;
pub mod profiling;
pub mod pv;
pub mod rabbitmq;
pub mod redis;
pub mod regex_cache;
pub mod script;
pub mod script_helper;
pub mod shv;
pub mod stats;
pub mod timerec;
pub mod transform;
mod value;

pub use check::{Available, check};
pub use ctx::{
    Accounting, AddPath, DialogMark, ErrInfo, HideFixup, MsgBranch, MsgCtx, Outbound, Receipt,
    RecordRoute, ReplyFixup, ReplyInfo, TmBranchInfo, Transaction,
};
pub use dset::{BranchAttrs, DsetIdx};
pub use module::{FnCtx, FnSpec, ModuleSpec, Param, ParamCheck, ParamType, Routes, ScriptFn};
pub use pv::CorePv;
pub use script::{Limits, Log, MemoryLog, Outcome, Script, ScriptError, Worker};
pub use value::Value;

/// The config fuzz invariants: parse (see [`cfg::fuzz_parse`]), then check what parsed cleanly,
/// rendering every diagnostic. Panics only on a broken invariant.
#[doc(hidden)]
pub fn fuzz_config(data: &[u8]) {
    let (parsed, sources) = cfg::fuzz_parse(data);
    if parsed.has_errors() {
        return;
    }
    for d in check(&parsed.config, &sources, &Available::default()) {
        let _ = d.render(&sources);
    }
}
