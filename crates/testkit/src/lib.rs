//! What the module tests share: a script compiled with the modules a test chooses (plus a
//! stand-in for the `db_text` module, whose driver lives in the `db` crate), a request as a
//! UDP transport would hand it over, and the log lines a run of the main route wrote.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)] // test support: a panic is the failure report

use bytes::Bytes;
use engine::{Available, MemoryLog, ModuleSpec, MsgCtx, Receipt, Script, Worker};
use sip::SipMessage;

/// `loadmodule "db_text.so"` for tests (its parameters are the server binary's business).
pub static DB_TEXT: ModuleSpec = ModuleSpec {
    name: "db_text",
    functions: &[],
    params: &[],
};

/// `text` compiled with `modules` (and `proto_udp`): the script, or its diagnostics rendered.
pub fn try_compile(text: &str, modules: Vec<&'static ModuleSpec>) -> Result<Script, String> {
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), text.to_owned());
    if parsed.has_errors() {
        return Err(format!("{:?}", parsed.diagnostics));
    }
    let available = Available {
        modules,
        builtin: vec!["proto_udp"],
        argv: Vec::new(),
    };
    Script::compile(&parsed.config, &sources, &available)
        .map_err(|d| d.iter().map(|d| d.render(&sources)).collect::<String>())
}

/// As [`try_compile`], failing the test with the diagnostics.
pub fn compile(text: &str, modules: Vec<&'static ModuleSpec>) -> Script {
    try_compile(text, modules).unwrap_or_else(|e| panic!("{e}"))
}

/// `raw` as received over UDP from `source` on 127.0.0.1:5060.
pub fn request(raw: &str, source: &str) -> MsgCtx {
    MsgCtx::new(SipMessage::parse(Bytes::from(raw.to_owned())).unwrap()).with_receipt(Receipt {
        source: source.parse().unwrap(),
        proto: "udp",
        local: "127.0.0.1:5060".parse().unwrap(),
        conn: None,
        proxy: None,
    })
}

/// Runs the main route over `ctx`: the lines it logged, trimmed.
pub fn run_lines(script: &Script, ctx: &mut MsgCtx) -> Vec<String> {
    let mut log = MemoryLog::default();
    script.run(&mut Worker::default(), ctx, &mut log).unwrap();
    log.lines
        .into_iter()
        .map(|(_, l)| l.trim_end().to_owned())
        .collect()
}

/// As [`run_lines`], joined by `|`, without the lines starting with one of `skip` (a
/// module's own error lines).
pub fn run(script: &Script, ctx: &mut MsgCtx, skip: &[&str]) -> String {
    run_lines(script, ctx)
        .into_iter()
        .filter(|l| !skip.iter().any(|s| l.starts_with(s)))
        .collect::<Vec<_>>()
        .join("|")
}
