//! A route that only tests and sets flags and PVs runs without a heap allocation (issue #3's
//! target), and the stock opensips.cfg compiles with its module functions stubbed.

use engine::Worker;
use rsips_bench::inputs::INVITE;
use rsips_bench::script::{
    CountingAlloc, FLAGS_AND_PVS, allocations_per_run, compile, message, opensips_cfg, stub_modules,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn flags_and_pvs_route_allocates_nothing() {
    let script = compile(FLAGS_AND_PVS, &stub_modules());
    let mut worker = Worker::default();
    let _ = allocations_per_run(&script, &mut worker, message(INVITE)); // sizes the $var slots
    for _ in 0..3 {
        assert_eq!(
            allocations_per_run(&script, &mut worker, message(INVITE)),
            0
        );
    }
    assert_eq!(
        script.var(&worker, "count"),
        engine::Value::Int(3),
        "the route really ran"
    );
    assert_eq!(script.var(&worker, "ok"), engine::Value::Int(1));
}

#[test]
fn stock_opensips_cfg_runs_with_stubbed_modules() {
    let script = compile(&opensips_cfg(), &stub_modules());
    let mut worker = Worker::default();
    let mut ctx = message(rsips_bench::inputs::REGISTER);
    let mut log = engine::MemoryLog::default();
    script.run(&mut worker, &mut ctx, &mut log).unwrap();
    // With every module function a no-op returning 1, `loose_route()` is true, so the default
    // config takes its "preloaded Route" branch and logs with its PVs expanded.
    let lines: Vec<&str> = log.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        lines,
        [
            "Attempt to route with preloaded Route's [sip:bob@biloxi.com/sip:bob@biloxi.com/sip:biloxi.com/a2e3f1c9@192.0.2.55]"
        ]
    );
}
