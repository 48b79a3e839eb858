//! What the engine's script tests share: compiling a script (diagnostics rendered into the
//! failure) and running its main route once over a message received over UDP.

#![allow(dead_code)] // each test file uses part of it
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use engine::{Available, MemoryLog, MsgCtx, Receipt, Script, Worker};
use sip::SipMessage;

/// `src` compiled with the modules in `available`, or the test fails with its diagnostics.
pub fn compile_with(src: &str, available: &Available) -> Script {
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src.to_owned());
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    match Script::compile(&parsed.config, &sources, available) {
        Ok(s) => s,
        Err(d) => panic!(
            "{}",
            d.iter().map(|d| d.render(&sources)).collect::<String>()
        ),
    }
}

/// `src` compiled without modules.
pub fn compile(src: &str) -> Script {
    compile_with(src, &Available::default())
}

/// Runs the main route of `script` once over `msg`, received from 192.0.2.10:5070 at
/// 127.0.0.1:5060 over UDP: the logged lines and the context.
pub fn run(script: &Script, msg: SipMessage) -> (Vec<String>, MsgCtx) {
    let mut ctx = MsgCtx::new(msg).with_receipt(Receipt {
        source: "192.0.2.10:5070".parse().unwrap(),
        proto: "udp",
        local: "127.0.0.1:5060".parse().unwrap(),
        conn: None,
        proxy: None,
    });
    let (mut w, mut log) = (Worker::default(), MemoryLog::default());
    script.run(&mut w, &mut ctx, &mut log).unwrap();
    (log.lines.into_iter().map(|(_, l)| l).collect(), ctx)
}
