//! Script benchmark support: the stock `opensips.cfg` compiled with every module function it
//! calls replaced by a no-op (the issue's benchmark definition), and an allocation counter.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use engine::{
    Available, FnCtx, FnSpec, MemoryLog, ModuleSpec, MsgCtx, Param, Script, Value, Worker,
};
use sip::SipMessage;

/// A route that only tests and sets flags and PVs: it must not allocate.
pub const FLAGS_AND_PVS: &str = r#"
route {
    setflag("SEEN");
    if (isflagset("SEEN") && $rm == "INVITE") {
        $var(count) = 1;
        $var(count) += 2;
    }
    if ($rU != NULL && $fd == "atlanta.com" && $var(count) > 2) {
        resetflag("SEEN");
        setbflag("NAT");
    }
    if ($ci =~ "^a84b" || $cs > 1) {
        $var(ok) = 1;
    }
}
"#;

fn noop(_: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    1
}

const ANY_ARGS: &[(Param, bool)] = &[(Param::Str, true); 8];

/// Every module of the OpenSIPS catalog as rsips would see it if it had them, each function a
/// no-op; `sipmsgops` is the real one. The stubs declare the parameters the stock
/// `opensips.cfg` sets, so its `modparam`s pass the strict check.
pub fn stub_modules() -> Available {
    let config = opensips_cfg();
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("opensips.cfg"), config);
    let mut params: Vec<(String, &'static str)> = Vec::new();
    for item in &parsed.config.items {
        if let cfg::ast::Item::ModParam { module, param, .. } = item {
            params.push((
                module.node.clone(),
                Box::leak(param.node.clone().into_boxed_str()),
            ));
        }
    }
    stub_modules_with(&params)
}

fn stub_modules_with(params: &[(String, &'static str)]) -> Available {
    let mut modules: Vec<&'static ModuleSpec> = vec![&sipmsgops::MODULE];
    let mut builtin = Vec::new();
    for (name, functions) in engine::catalog::MODULES {
        if *name == "sipmsgops" {
            continue;
        }
        if functions.is_empty() {
            builtin.push(*name);
            continue;
        }
        let specs: Vec<FnSpec> = functions
            .iter()
            .map(|f| FnSpec {
                name: f,
                params: ANY_ARGS,
                routes: engine::Routes::ALL,
                run: noop,
            })
            .collect();
        let declared: Vec<(&'static str, engine::ParamType)> = params
            .iter()
            .filter(|(m, _)| m == name)
            .map(|(_, p)| (*p, engine::ParamType::Any))
            .collect();
        let spec = ModuleSpec {
            params: Box::leak(declared.into_boxed_slice()),
            name,
            functions: Box::leak(specs.into_boxed_slice()),
        };
        modules.push(Box::leak(Box::new(spec)));
    }
    Available {
        modules,
        builtin,
        argv: Vec::new(),
    }
}

/// Compiles configuration text; panics with the rendered diagnostics if it does not compile.
pub fn compile(text: &str, available: &Available) -> Script {
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(
        &mut sources,
        std::path::Path::new("bench.cfg"),
        text.to_owned(),
    );
    match Script::compile(&parsed.config, &sources, available) {
        Ok(s) => s,
        Err(d) => panic!(
            "{}",
            d.iter().map(|d| d.render(&sources)).collect::<String>()
        ),
    }
}

/// The stock OpenSIPS 4.0 `etc/opensips.cfg` (from ../shared beside the repository).
pub fn opensips_cfg() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference/opensips-configs/4.0/opensips.cfg"
    );
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn message(wire: &str) -> MsgCtx {
    MsgCtx::new(SipMessage::parse(Bytes::copy_from_slice(wire.as_bytes())).expect("parse"))
}

/// Counts heap allocations per thread (install as the `#[global_allocator]`), so tests running
/// in parallel do not count each other's allocations.
#[derive(Debug)]
pub struct CountingAlloc;

thread_local! {
    // `const` and without a destructor: using it inside the allocator never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

#[allow(unsafe_code)] // delegating to the system allocator is the only way to count
// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations made so far by the calling thread.
pub fn allocations() -> u64 {
    ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

/// Heap allocations made by one run of the main route over `ctx` (needs [`CountingAlloc`]).
pub fn allocations_per_run(script: &Script, worker: &mut Worker, mut ctx: MsgCtx) -> u64 {
    let mut log = MemoryLog::default();
    let before = allocations();
    let _ = script.run(worker, &mut ctx, &mut log);
    let after = allocations();
    drop(ctx);
    after - before
}
