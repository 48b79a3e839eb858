//! What the sipmsgops test files share: the module as the only one loaded, and a route run over
//! a message, keeping the level-2 `xlog` lines.

#![allow(dead_code)] // each test file uses part of it
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bytes::Bytes;
use engine::{Available, MemoryLog, MsgCtx, Receipt, Script, Worker};
use sip::SipMessage;

pub fn available() -> Available {
    Available {
        modules: vec![&sipmsgops::MODULE],
        builtin: vec![],
        argv: Vec::new(),
    }
}

/// `body` as the main route of a script that loads sipmsgops.
pub fn source(body: &str) -> String {
    format!("loadmodule \"sipmsgops.so\"\nroute {{\n{body}\n}}")
}

/// Compiles `route { body }`, or fails the test with the rendered diagnostics.
pub fn compile(body: &str) -> Script {
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), source(body));
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    Script::compile(&parsed.config, &sources, &available()).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter().map(|d| d.render(&sources)).collect::<String>()
        )
    })
}

/// How a test message arrived: from 192.0.2.10:5070 at 127.0.0.1:5060 over `proto`.
pub fn receipt(proto: &'static str) -> Receipt {
    Receipt {
        source: "192.0.2.10:5070".parse().unwrap(),
        proto,
        local: "127.0.0.1:5060".parse().unwrap(),
        conn: None,
        proxy: None,
    }
}

/// Runs `body` as the main route over `raw` (received as `receipt` says, when given): the
/// xlog lines at level 2 only, and the context after the route.
pub fn run(body: &str, raw: Vec<u8>, receipt: Option<Receipt>) -> (Vec<String>, MsgCtx) {
    let script = compile(body);
    let mut ctx = MsgCtx::new(SipMessage::parse(Bytes::from(raw)).unwrap());
    if let Some(r) = receipt {
        ctx = ctx.with_receipt(r);
    }
    let mut log = MemoryLog::default();
    script
        .run(&mut Worker::default(), &mut ctx, &mut log)
        .unwrap();
    let lines = log
        .lines
        .into_iter()
        .filter(|(level, _)| *level == 2)
        .map(|(_, l)| l)
        .collect();
    (lines, ctx)
}
