//! Runs the request route of the stock OpenSIPS 4.0 `opensips.cfg` (module functions as no-ops)
//! over an INVITE and a REGISTER, and a route that only tests and sets flags and PVs; reports
//! time per run and heap allocations per run.

#![allow(clippy::print_stdout)] // the allocation counts are part of the report

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use engine::{MemoryLog, Worker};
use rsips_bench::inputs::{INVITE, REGISTER};
use rsips_bench::script::{
    CountingAlloc, FLAGS_AND_PVS, allocations_per_run, compile, message, opensips_cfg, stub_modules,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn bench(c: &mut Criterion) {
    let available = stub_modules();
    let stock = compile(&opensips_cfg(), &available);
    let flags = compile(FLAGS_AND_PVS, &available);
    let mut g = c.benchmark_group("script");
    for (name, script, wire) in [
        ("opensips_cfg/invite", &stock, INVITE),
        ("opensips_cfg/register", &stock, REGISTER),
        ("flags_and_pvs/invite", &flags, INVITE),
    ] {
        let mut worker = Worker::default();
        // Warm the worker's $var slots, then count one run.
        let _ = allocations_per_run(script, &mut worker, message(wire));
        println!(
            "{name}: {} heap allocations per run",
            allocations_per_run(script, &mut worker, message(wire))
        );
        g.bench_function(name, |b| {
            let mut log = MemoryLog::default();
            b.iter_batched(
                || message(wire),
                |mut ctx| {
                    let _ = script.run(&mut worker, &mut ctx, &mut log);
                    log.lines.clear();
                    ctx
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(script, bench);
criterion_main!(script);
