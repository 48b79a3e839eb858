//! The OpenSIPS `mathops` module: `math_eval` (infix expressions), `math_rpn` (reverse Polish
//! notation), `math_trunc` / `math_floor` / `math_ceil` / `math_round` (integers, or a
//! rounded decimal string) and `math_round_sf` (significant figures). Results that are not
//! integers are written with `decimal_digits` decimals (default 6), as OpenSIPS prints them;
//! an expression that does not parse, or whose value is not a number, fails (-1).
#![forbid(unsafe_code)]

mod expr;

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Value};

const ALL: Routes = Routes::ALL;

macro_rules! f {
    ($name:literal, $params:expr, $run:expr) => {
        FnSpec {
            name: $name,
            params: $params,
            routes: ALL,
            run: $run,
        }
    };
}

const TWO: &[(Param, bool)] = &[(Param::Str, false), (Param::Var, false)];

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "mathops",
    functions: &[
        f!("math_eval", TWO, math_eval),
        f!("math_rpn", TWO, math_rpn),
        f!("math_trunc", TWO, |f, a| integer(f, a, f64::trunc)),
        f!("math_floor", TWO, |f, a| integer(f, a, f64::floor)),
        f!("math_ceil", TWO, |f, a| integer(f, a, f64::ceil)),
        f!(
            "math_round",
            &[(Param::Str, false), (Param::Var, false), (Param::Int, true)],
            math_round
        ),
        f!(
            "math_round_sf",
            &[(Param::Str, false), (Param::Var, false), (Param::Int, true)],
            math_round_sf
        ),
        f!(
            "math_compare",
            &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Var, false)
            ],
            math_compare
        ),
    ],
    params: &[("decimal_digits", ParamType::Int)],
};

fn digits(f: &FnCtx<'_>) -> usize {
    f.script
        .modparam_int("mathops", "decimal_digits")
        .and_then(|d| usize::try_from(d).ok())
        .unwrap_or(6)
}

/// A result as OpenSIPS prints a double: `decimal_digits` decimals, `inf`, `-inf`, `nan`.
fn text(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v:.digits$}")
    }
}

fn arg(args: &[Value]) -> String {
    args.first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default()
}

/// The number a rounding function reads: a string that does not parse is 0, as in OpenSIPS.
fn number(args: &[Value]) -> f64 {
    arg(args).trim().parse().unwrap_or(0.0)
}

fn math_eval(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    match expr::infix(&arg(args)) {
        Some(v) if !v.is_nan() => {
            let d = digits(f);
            f.set_output(1, Value::from(text(v, d)));
            1
        }
        _ => {
            f.log.log(
                -1,
                &format!("math_eval: cannot evaluate \"{}\"\n", arg(args)),
            );
            -1
        }
    }
}

/// `math_compare(exp1, exp2, $out)`: 1, -1 or 0 as the first expression's value is above,
/// below or equal to the second's; -1 when one does not evaluate.
fn math_compare(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let eval = |i: usize| {
        let text = args
            .get(i)
            .map(|v| v.to_text().trim().to_owned())
            .unwrap_or_default();
        expr::infix(&text).filter(|v| !v.is_nan()).ok_or(text)
    };
    match (eval(0), eval(1)) {
        (Ok(a), Ok(b)) => {
            let r = if a > b {
                1
            } else if a < b {
                -1
            } else {
                0
            };
            f.set_output(2, Value::Int(r));
            1
        }
        (Err(text), _) | (_, Err(text)) => {
            f.log
                .log(-1, &format!("math_compare: cannot evaluate \"{text}\"\n"));
            -1
        }
    }
}

fn math_rpn(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    match expr::rpn(&arg(args)) {
        Ok(v) if !v.is_nan() => {
            let d = digits(f);
            f.set_output(1, Value::from(text(v, d)));
            1
        }
        Ok(_) => -1,
        Err(e) => {
            f.log
                .log(-1, &format!("math_rpn: {e} in \"{}\"\n", arg(args)));
            -1
        }
    }
}

/// An integer result, saturating at the ends of i64.
fn int_of(v: f64) -> i64 {
    if v.is_nan() { 0 } else { v as i64 }
}

fn integer(f: &mut FnCtx<'_>, args: &[Value], op: fn(f64) -> f64) -> i64 {
    f.set_output(1, Value::Int(int_of(op(number(args)))));
    1
}

/// `math_round(number, var[, decimals])`: half away from zero to an integer, or with
/// decimals to a string of that many.
fn math_round(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let v = number(args);
    match args.get(2).and_then(Value::as_int).filter(|d| *d > 0) {
        None => f.set_output(1, Value::Int(int_of(v.round()))),
        Some(d) => {
            let d = usize::try_from(d).unwrap_or(0).min(30);
            f.set_output(1, Value::from(format!("{v:.d$}")));
        }
    }
    1
}

/// `math_round_sf(number, var, figures)`: to that many significant figures.
fn math_round_sf(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let v = number(args);
    let Some(figures) = args.get(2).and_then(Value::as_int).filter(|n| *n > 0) else {
        f.set_output(1, Value::Int(int_of(v.round())));
        return 1;
    };
    let rounded = if v == 0.0 {
        f64::NAN
    } else {
        let magnitude = v.abs().log10().ceil();
        let factor = 10f64.powf(figures as f64 - magnitude);
        (v * factor).round() / factor
    };
    let d = digits(f);
    f.set_output(1, Value::from(text(rounded, d)));
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        assert_eq!(text(6.0, 6), "6.000000");
        assert_eq!(text(f64::INFINITY, 6), "inf");
        assert_eq!(text(1.0 / 3.0, 2), "0.33");
    }
}
