//! avpops' functions on the AVPs of the message: `avp_delete`, `avp_pushto`, `avp_check`,
//! `avp_copy`, `avp_op`, `avp_subst`, `avp_shuffle` and `is_avp_set`, with OpenSIPS 3.x's
//! return codes (1 done, -1 not) and its quirks: a new value goes on top of the AVP (so a
//! `/g` copy comes out in reverse order), a bare `avp_check` value is a string, `avp_op`
//! computes in 32 bits and gives 0 for a division by zero.

use engine::{FnCtx, Value};

use crate::parse::{self, Dest, Op, Operand, RuriPart, Target, Var};

fn fail(f: &mut FnCtx<'_>, what: impl std::fmt::Display) -> i64 {
    f.log.log(-1, &format!("avpops: {what}\n"));
    -1
}

fn text(args: &[Value], i: usize) -> String {
    args.get(i)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default()
}

/// The values of `$avp(name)`, newest first (none when the script never names it).
pub(crate) fn values(f: &FnCtx<'_>, name: &str) -> Vec<Value> {
    f.script
        .avp_id(name)
        .and_then(|id| f.msg.avps.get(id))
        .map(|s| s.iter().rev().cloned().collect())
        .unwrap_or_default()
}

/// The value stack of `$avp(name)` (oldest first); `None` when the script never names it,
/// so no value could ever be read back from it.
fn stack<'f>(f: &'f mut FnCtx<'_>, name: &str) -> Option<&'f mut Vec<Value>> {
    let id = f.script.avp_id(name)?;
    if f.msg.avps.len() <= id {
        f.msg.avps.resize(id + 1, Vec::new());
    }
    f.msg.avps.get_mut(id)
}

/// Replaces the AVP's values (`newest_first`); false when the script never names it.
fn set_values(f: &mut FnCtx<'_>, name: &str, newest_first: Vec<Value>) -> bool {
    match stack(f, name) {
        Some(s) => {
            *s = newest_first.into_iter().rev().collect();
            true
        }
        None => false,
    }
}

/// Pushes `v` on top of the AVP, logging when the script never names it.
fn push(f: &mut FnCtx<'_>, name: &str, v: Value) -> bool {
    match stack(f, name) {
        Some(s) => {
            s.push(v);
            true
        }
        None => {
            fail(f, format!("$avp({name}) is not used by the script"));
            false
        }
    }
}

/// A variable's values: every value of an AVP (newest first), or the one of another variable
/// (none when NULL).
fn var_values(f: &mut FnCtx<'_>, v: &Var) -> Vec<Value> {
    match v {
        Var::Avp(name) => values(f, name),
        Var::Pv(spec) => Some(f.read_pv(spec))
            .filter(|v| !v.is_null())
            .into_iter()
            .collect(),
    }
}

fn operand_values(f: &mut FnCtx<'_>, o: &Operand) -> Vec<Value> {
    match o {
        Operand::Var(v) => var_values(f, v),
        Operand::Int(i) => vec![Value::Int(*i)],
        Operand::Str(s) => vec![Value::from(s.as_str())],
    }
}

/// `avp_delete(name)`: the newest value, every value with `/g`, or every AVP for a type
/// (`*`, `a`, `s`, `i`). 1 when something went, else -1.
pub fn avp_delete(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (target, all) = match parse::delete_target(&text(args, 0)) {
        Ok(t) => t,
        Err(e) => return fail(f, e),
    };
    let deleted = match target {
        Target::Avp(name) => match stack(f, &name) {
            Some(s) if all => std::mem::take(s).len(),
            Some(s) => usize::from(s.pop().is_some()),
            None => 0,
        },
        Target::Every => f.msg.avps.iter_mut().map(|s| std::mem::take(s).len()).sum(),
    };
    if deleted > 0 { 1 } else { -1 }
}

/// Appends the current Request-URI to the destination set (OpenSIPS `append_branch` without
/// a URI), before the R-URI is rewritten with the next value.
fn ruri_to_branch(f: &mut FnCtx<'_>) {
    let Some(uri) = f.msg.ruri().map(str::to_owned) else {
        return;
    };
    let b = engine::MsgBranch {
        uri,
        dst_uri: f.msg.dst_uri.clone(),
        path: f.msg.path.clone(),
        q: f.msg.ruri_q,
        flags: f.msg.branch_flags,
        ..Default::default()
    };
    f.msg.branches.push(b);
}

fn push_one(f: &mut FnCtx<'_>, dest: Dest, v: &Value, first: bool) -> bool {
    match dest {
        Dest::Ruri(part) => {
            if !first {
                ruri_to_branch(f);
            }
            let t = v.to_text();
            match part {
                RuriPart::Whole => f.msg.set_ruri(&t),
                RuriPart::User => f.msg.set_ruri_user(&t),
                RuriPart::Host => f.msg.set_ruri_host(&t),
            }
        }
        // `$du` and `$br` take strings only.
        Dest::Du | Dest::Branch if matches!(v, Value::Int(_)) => false,
        Dest::Du => {
            f.msg.dst_uri = Some(v.to_text().into_owned());
            true
        }
        Dest::Branch => {
            let uri = v.to_text().into_owned();
            if sip::Uri::parse(&uri).is_err() {
                return false;
            }
            f.msg.branches.push(engine::MsgBranch {
                uri,
                q: -1,
                ..Default::default()
            });
            true
        }
    }
}

/// `avp_pushto(destination, name)`: the variable's value into `$ru` (or its user or host
/// part), `$du` or a new branch (`$br`); with `/g` every value of an AVP, each further one
/// moving the current R-URI into a branch first. 1, or -1 without a value or on a failure.
pub fn avp_pushto(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let dest = match parse::push_dest(&text(args, 0)) {
        Ok(d) => d,
        Err(e) => return fail(f, e),
    };
    let source = text(args, 1);
    let parsed = parse::split_pv(&source).and_then(|(spec, flags)| {
        let all = parse::Flags::parse(flags.unwrap_or(""), "g")?.global;
        Ok((parse::var(spec)?, all))
    });
    let (var, all) = match parsed {
        Ok(p) => p,
        Err(e) => return fail(f, e),
    };
    let mut vals = var_values(f, &var);
    if vals.is_empty() {
        return fail(f, format!("no value in `{source}`"));
    }
    if !all {
        vals.truncate(1);
    }
    for (i, v) in vals.iter().enumerate() {
        if !push_one(f, dest, v, i == 0) {
            return fail(f, format!("cannot push `{v}`"));
        }
    }
    1
}

/// Byte-wise comparison ignoring ASCII case (OpenSIPS' strncasecmp over the longer length).
fn cmp_icase(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// One `avp_check` comparison of `a` (the variable's value) with `b`; values of different
/// types never match.
pub(crate) fn check_one(op: Op, icase: bool, a: &Value, b: &Value) -> bool {
    use std::cmp::Ordering::{Greater, Less};
    match (a, b) {
        (Value::Int(a), Value::Int(b)) => match op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::And => a & b != 0,
            Op::Or => a | b != 0,
            Op::Xor => a ^ b != 0,
            _ => false,
        },
        (Value::Str(a), Value::Str(b)) => {
            let eq = if icase {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            };
            match op {
                Op::Eq => eq,
                Op::Ne => !eq,
                // Orderings always ignore case, as OpenSIPS compares them.
                Op::Lt => cmp_icase(a, b) == Less,
                Op::Le => cmp_icase(a, b) != Greater,
                Op::Gt => cmp_icase(a, b) == Greater,
                Op::Ge => cmp_icase(a, b) != Less,
                Op::Re => engine::regex_cache::icase(b, true).is_ok_and(|re| re.is_match(a)),
                Op::Fm if icase => engine::fnmatch(&b.to_lowercase(), &a.to_lowercase()),
                Op::Fm => engine::fnmatch(b, a),
                _ => false,
            }
        }
        _ => false,
    }
}

/// `avp_check(name, "op/value[/flags]")`: compares the variable (the newest value of an AVP,
/// every value with `/g`) with the value (each value of an AVP). 1 on a match, else -1.
pub fn avp_check(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let var = match parse::var(&text(args, 0)) {
        Ok(v) => v,
        Err(e) => return fail(f, e),
    };
    let ov = match parse::check_op(&text(args, 1)) {
        Ok(o) => o,
        Err(e) => return fail(f, e),
    };
    let mut left = var_values(f, &var);
    if !ov.flags.global {
        left.truncate(1);
    }
    let right = operand_values(f, &ov.value);
    let hit = left
        .iter()
        .any(|a| right.iter().any(|b| check_one(ov.op, ov.flags.icase, a, b)));
    if hit { 1 } else { -1 }
}

/// OpenSIPS' `str2int`: unsigned decimal only.
fn str2int(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `avp_copy(from, "to[/flags]")`: the newest value (every value with `g`) of one AVP on top
/// of another; `d` deletes what was copied, `n`/`s` cast to an integer / a string. 1 when
/// something was copied, else -1.
pub fn avp_copy(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let parsed = parse::avp(&text(args, 0))
        .and_then(|(from, _)| Ok((from, parse::avp_flags(&text(args, 1), "gdns")?)));
    let (from, (to, _, flags)) = match parsed {
        Ok(p) => p,
        Err(e) => return fail(f, e),
    };
    let src = values(f, &from);
    let take = if flags.global { src.len() } else { 1 };
    let mut copies = Vec::new();
    for v in src.iter().take(take) {
        copies.push(match v {
            Value::Str(s) if flags.int => match str2int(s) {
                Some(n) => Value::Int(n),
                None => return fail(f, format!("`{s}` is not an integer")),
            },
            Value::Int(n) if flags.string => Value::from(n.to_string()),
            v => v.clone(),
        });
    }
    if copies.is_empty() {
        return -1;
    }
    if flags.delete {
        // Before the push: the destination may be the source.
        set_values(f, &from, src.get(copies.len()..).unwrap_or(&[]).to_vec());
    }
    for v in copies {
        if !push(f, &to, v) {
            return -1;
        }
    }
    1
}

/// One `avp_op` step in OpenSIPS' 32-bit integers; a division by zero gives 0 (and a log line,
/// `false` here).
pub(crate) fn arith(op: Op, a: i64, b: i64) -> (i64, bool) {
    let (a, b) = (a as i32, b as i32);
    let r = match op {
        Op::Add => a.wrapping_add(b),
        Op::Sub => a.wrapping_sub(b),
        Op::Mul => a.wrapping_mul(b),
        Op::Div | Op::Mod if b == 0 => return (0, false),
        Op::Div => a.wrapping_div(b),
        Op::Mod => a.wrapping_rem(b),
        Op::And => a & b,
        Op::Or => a | b,
        Op::Xor => a ^ b,
        Op::Not => !b,
        _ => 0,
    };
    (i64::from(r), true)
}

/// `avp_op("$avp(src)[/$avp(dst)]", "op/value[/flags]")`: each integer value of the source
/// combined with each value of the operand, the results on top of the destination (the
/// source when there is none); `d` deletes the source values used. 1, or -1 when the source
/// has no integer value or the operand is not an integer.
pub fn avp_op(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let parsed =
        parse::src_dst(&text(args, 0)).and_then(|sd| Ok((sd, parse::arith_op(&text(args, 1))?)));
    let ((src, dst), ov) = match parsed {
        Ok(p) => p,
        Err(e) => return fail(f, e),
    };
    let dst = dst.unwrap_or_else(|| src.clone());
    let operands = match &ov.value {
        Operand::Var(Var::Avp(name)) => values(f, name)
            .iter()
            .filter_map(|v| match v {
                Value::Int(i) => Some(*i),
                _ => None,
            })
            .collect(),
        other => match operand_values(f, other).first() {
            Some(Value::Int(i)) => vec![*i],
            _ => return fail(f, "avp_op: the value is not an integer"),
        },
    };
    let all = values(f, &src);
    let ints: Vec<i64> = all
        .iter()
        .filter_map(|v| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        })
        .collect();
    if ints.is_empty() && ov.op != Op::Not {
        return fail(f, format!("$avp({src}) has no integer value"));
    }
    // `not` needs no source value: one round without one.
    let lefts = if ints.is_empty() { vec![0] } else { ints };
    let mut results = Vec::new();
    for a in &lefts {
        for b in &operands {
            let (r, ok) = arith(ov.op, *a, *b);
            if !ok {
                fail(f, "avp_op: division by zero");
            }
            results.push(r);
        }
    }
    if ov.flags.delete {
        let kept = all.into_iter().filter(|v| !matches!(v, Value::Int(_)));
        set_values(f, &src, kept.collect());
    }
    for r in results {
        if !push(f, &dst, Value::Int(r)) {
            return -1;
        }
    }
    1
}

/// `avp_subst("$avp(src)[/$avp(dst)][/flags]", "/re/repl/flags")`: the substitution on the
/// string values of the source, newest first, stopping after the first that changed
/// (every value with `g`); each result goes on top of the destination, or replaces its value
/// in place without one (`d` also deletes the source value). 1 when something changed.
pub fn avp_subst(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (src, dst, flags) = match parse::subst_avps(&text(args, 0)) {
        Ok(p) => p,
        Err(e) => return fail(f, e),
    };
    let expr = Value::from(text(args, 1));
    let Ok(subst) = engine::transform::TransformOp::lookup("re.subst", 1) else {
        return fail(f, "no re.subst");
    };
    let delete = flags.delete || dst.is_none();
    let mut kept = Vec::new();
    let mut made = Vec::new();
    for v in values(f, &src) {
        let done = !flags.global && !made.is_empty();
        let out = match &v {
            Value::Str(_) if !done => subst.apply(&v, std::slice::from_ref(&expr)),
            _ => Value::Null,
        };
        // re.subst gives the input back when nothing matched.
        if out.is_null() || out == v {
            kept.push(v);
            continue;
        }
        if !delete {
            kept.push(v);
        }
        made.push(out);
    }
    if made.is_empty() {
        return -1;
    }
    set_values(f, &src, kept);
    let to = dst.unwrap_or(src);
    for v in made {
        if !push(f, &to, v) {
            return -1;
        }
    }
    1
}

/// `avp_shuffle("$avp(x)")`: the values in a random order (Fisher–Yates). Always 1 once the
/// name is understood.
pub fn avp_shuffle(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let name = match parse::avp(&text(args, 0)) {
        Ok((n, _)) => n,
        Err(e) => return fail(f, e),
    };
    let mut vals = values(f, &name);
    let mut seed = random_seed() | 1;
    for i in (1..vals.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        vals.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    set_values(f, &name, vals);
    1
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// `is_avp_set("$avp(x)[n][/flags]")`: whether the value at the index (the newest for none,
/// 0 or less) exists; with `s`/`n` it must be a string / an integer, with `e` empty (an empty
/// string or 0). 1 or -1.
pub fn is_avp_set(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (name, index, flags) = match parse::avp_flags(&text(args, 0), "esn") {
        Ok(p) => p,
        Err(e) => return fail(f, e),
    };
    if flags.string && flags.int {
        return fail(f, "is_avp_set: `s` and `n` exclude each other");
    }
    let at = usize::try_from(index.unwrap_or(0).max(0)).unwrap_or(0);
    let vals = values(f, &name);
    let Some(v) = vals.get(at) else {
        return -1;
    };
    let ok = match v {
        Value::Str(s) => !flags.int && (!flags.empty || s.is_empty()),
        Value::Int(i) => !flags.string && (!flags.empty || *i == 0),
        Value::Null => false,
    };
    if ok { 1 } else { -1 }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s(t: &str) -> Value {
        Value::from(t)
    }

    #[test]
    fn string_checks() {
        assert!(check_one(Op::Eq, false, &s("abc"), &s("abc")));
        assert!(!check_one(Op::Eq, false, &s("abc"), &s("ABC")));
        assert!(check_one(Op::Eq, true, &s("abc"), &s("ABC")));
        assert!(check_one(Op::Ne, false, &s("abc"), &s("ABC")));
        // Orderings ignore case whatever the flags.
        assert!(check_one(Op::Lt, false, &s("ABC"), &s("abd")));
        assert!(check_one(Op::Le, false, &s("ABC"), &s("abc")));
        assert!(!check_one(Op::Gt, false, &s("ABC"), &s("abc")));
        assert!(check_one(Op::Gt, false, &s("abcd"), &s("abc")));
        assert!(check_one(Op::Re, false, &s("sip:Bob@x"), &s("^sip:bob@")));
        assert!(check_one(Op::Fm, false, &s("sip:bob@x"), &s("sip:*@x")));
        assert!(!check_one(Op::Fm, false, &s("SIP:bob@x"), &s("sip:*")));
        assert!(check_one(Op::Fm, true, &s("SIP:bob@x"), &s("sip:*")));
        assert!(!check_one(Op::And, false, &s("1"), &s("1")));
    }

    #[test]
    fn int_checks_and_type_mismatch() {
        let (a, b) = (Value::Int(5), Value::Int(6));
        assert!(check_one(Op::Lt, false, &a, &b));
        assert!(!check_one(Op::Ge, false, &a, &b));
        assert!(check_one(Op::And, false, &a, &Value::Int(4)));
        assert!(!check_one(Op::And, false, &a, &Value::Int(2)));
        assert!(check_one(Op::Xor, false, &a, &Value::Int(4)));
        assert!(!check_one(Op::Xor, false, &a, &a));
        // An integer AVP against a bare (string) value never matches.
        assert!(!check_one(Op::Lt, false, &a, &s("345")));
        assert!(!check_one(Op::Ne, false, &a, &s("5")));
    }

    #[test]
    fn arithmetic() {
        assert_eq!(arith(Op::Add, 2, 3), (5, true));
        assert_eq!(arith(Op::Sub, 2, 3), (-1, true));
        assert_eq!(arith(Op::Mul, 4, 3), (12, true));
        assert_eq!(arith(Op::Div, 7, 2), (3, true));
        assert_eq!(arith(Op::Div, 7, 0), (0, false));
        assert_eq!(arith(Op::Mod, 7, 0), (0, false));
        assert_eq!(arith(Op::Mod, -7, 2), (-1, true));
        assert_eq!(arith(Op::And, 6, 3), (2, true));
        assert_eq!(arith(Op::Or, 6, 3), (7, true));
        assert_eq!(arith(Op::Xor, 6, 3), (5, true));
        // `not` is the operand's complement, not the AVP's.
        assert_eq!(arith(Op::Not, 100, 5), (-6, true));
        // 32-bit, as OpenSIPS' int.
        assert_eq!(
            arith(Op::Add, i64::from(i32::MAX), 1),
            (i64::from(i32::MIN), true)
        );
    }

    #[test]
    fn str2int_is_unsigned_decimal() {
        assert_eq!(str2int("42"), Some(42));
        assert_eq!(str2int("-1"), None);
        assert_eq!(str2int("0x1"), None);
        assert_eq!(str2int(""), None);
    }
}
