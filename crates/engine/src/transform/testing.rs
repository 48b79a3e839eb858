//! Helpers shared by the transformation tests.
#![allow(clippy::unwrap_used)]

use crate::Value;
use crate::transform::TransformOp;

/// Applies the transformation `name` to `input` with literal `args`.
pub(crate) fn ap(name: &str, input: &str, args: &[&str]) -> Value {
    let args: Vec<Value> = args.iter().map(|a| Value::str(a)).collect();
    TransformOp::lookup(name, args.len())
        .unwrap()
        .apply(&Value::str(input), &args)
}

pub(crate) fn s(x: &str) -> Value {
    Value::str(x)
}
