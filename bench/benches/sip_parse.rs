//! Parse a ~900-byte INVITE and a REGISTER, read what a proxy needs, and forward with a new Via
//! and Record-Route — rsips against sipx-sip and rsipstack on the same inputs in the same run.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use rsips_bench::inputs::{INVITE, REGISTER};
use rsips_bench::{rsips_forward, rsips_proxy_subset};
use sip::SipMessage;

#[path = "../peers.rs"]
mod peers;

fn bench_input(c: &mut Criterion, name: &str, wire: &'static str) {
    let wire = wire.as_bytes();
    let limits = sipx_sip::Limits::datagram();
    let mut g = c.benchmark_group(name);

    g.bench_function("rsips/parse", |b| {
        b.iter(|| SipMessage::parse(Bytes::copy_from_slice(black_box(wire))).expect("parse"))
    });
    g.bench_function("rsips/proxy_subset", |b| {
        b.iter(|| {
            let m = SipMessage::parse(Bytes::copy_from_slice(black_box(wire))).expect("parse");
            rsips_proxy_subset(&m)
        })
    });
    g.bench_function("rsips/forward", |b| {
        b.iter(|| rsips_forward(black_box(wire)))
    });

    g.bench_function("sipx-sip/parse", |b| {
        b.iter(|| peers::sipx::parse(black_box(wire), &limits))
    });
    g.bench_function("sipx-sip/proxy_subset", |b| {
        b.iter(|| peers::sipx::proxy_subset(&peers::sipx::parse(black_box(wire), &limits)))
    });
    g.bench_function("sipx-sip/forward", |b| {
        b.iter(|| peers::sipx::forward(black_box(wire), &limits))
    });

    g.bench_function("rsipstack/parse", |b| {
        b.iter(|| peers::rsipstack_peer::parse(black_box(wire)))
    });
    g.bench_function("rsipstack/proxy_subset", |b| {
        b.iter(|| {
            peers::rsipstack_peer::proxy_subset(&peers::rsipstack_peer::parse(black_box(wire)))
        })
    });
    g.bench_function("rsipstack/forward", |b| {
        b.iter(|| peers::rsipstack_peer::forward(black_box(wire)))
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_input(c, "invite", INVITE);
    bench_input(c, "register", REGISTER);
}

criterion_group!(sip_parse, benches);
criterion_main!(sip_parse);
