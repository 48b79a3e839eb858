//! Runs one rsips step of the `sip_parse` benchmark a fixed number of times, for instruction
//! counts that do not depend on machine load:
//!
//! ```sh
//! cargo build --profile bench -p rsips-bench --example count_sip_parse
//! valgrind --tool=callgrind target/release/examples/count_sip_parse invite proxy_subset 10000
//! ```
//!
//! Divide the total (`Ir`) by the count; the start-up cost is a few hundred thousand
//! instructions, so run at least 10,000 iterations.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a measuring tool: a panic is the report

use std::hint::black_box;

use bytes::Bytes;
use rsips_bench::inputs::{INVITE, REGISTER};
use rsips_bench::{rsips_forward, rsips_proxy_subset};
use sip::SipMessage;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let input = args.get(1).map_or("invite", String::as_str);
    let step = args.get(2).map_or("proxy_subset", String::as_str);
    let n: usize = args.get(3).map_or(10_000, |s| s.parse().unwrap());
    let wire = match input {
        "invite" => INVITE,
        "register" => REGISTER,
        other => panic!("unknown input {other}"),
    }
    .as_bytes();
    let mut sum = 0usize;
    for _ in 0..n {
        sum = sum.wrapping_add(match step {
            "parse" => {
                let m = SipMessage::parse(Bytes::copy_from_slice(black_box(wire))).unwrap();
                m.header_entries().len()
            }
            "proxy_subset" => {
                let m = SipMessage::parse(Bytes::copy_from_slice(black_box(wire))).unwrap();
                rsips_proxy_subset(&m)
            }
            "forward" => {
                let (k, out) = rsips_forward(black_box(wire));
                k + out.len()
            }
            other => panic!("unknown step {other}"),
        });
    }
    println!("{sum}");
}
