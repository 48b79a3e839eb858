//! The OpenSIPS `textops` module: regular-expression search and replace over the message
//! (`search`, `search_append`, `replace`, `replace_all`, `subst`), its body (`search_body`,
//! `search_append_body`, `replace_body`, `replace_body_all`, `replace_body_atonce`,
//! `subst_body`) and its Request-URI (`subst_uri`, `subst_user`).
//!
//! As in OpenSIPS every function reads the message as it was received, and a rewrite is only
//! recorded — as byte-range patches in [`sip::Edits`], applied when the message is sent. So a
//! `search` after a `replace` still sees the old text, two replaces do not feed each other,
//! and pseudo-variables and local replies see the headers as received. `search` looks at the
//! whole message; the other message functions start after the first line, which is never
//! rewritten; the `*_body` functions look at the body and are false when there is none.
//! Regular expressions are POSIX extended ones (see `posix.rs`), case-insensitive with line
//! anchors as OpenSIPS compiles them; `subst*` is case-sensitive unless given the `i` flag.
#![forbid(unsafe_code)]

mod cache;
mod error;
mod posix;
mod subst;

use bytes::Bytes;
use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamCheck, Routes, Value};

use crate::error::{ExprError, RewriteError};
use crate::posix::{Pattern, Scan};
use crate::subst::{Env, Replacement, Subst};

const TEXT_ROUTES: Routes = Routes::REQUEST
    .or(Routes::ONREPLY)
    .or(Routes::FAILURE)
    .or(Routes::BRANCH)
    .or(Routes::LOCAL);

const fn f(name: &'static str, params: &'static [(Param, bool)], run: engine::ScriptFn) -> FnSpec {
    FnSpec {
        name,
        params,
        routes: TEXT_ROUTES,
        run,
    }
}

/// A regular expression parameter: a literal that does not compile stops the script from
/// loading (OpenSIPS' `fixup_regcomp`).
static REGEX: ParamCheck = ParamCheck {
    what: "regular expression",
    check: |re| cache::pattern(re).map(|_| ()).map_err(|e| e.to_string()),
};

/// A subst expression parameter (`/re/replacement/flags`), checked the same way.
static SUBST: ParamCheck = ParamCheck {
    what: "subst expression",
    check: |expr| cache::subst(expr).map(|_| ()).map_err(|e| e.to_string()),
};

const RE: &[(Param, bool)] = &[(Param::Checked(&REGEX), false)];
const RE_TXT: &[(Param, bool)] = &[(Param::Checked(&REGEX), false), (Param::Str, false)];
const SUBST_EXPR: &[(Param, bool)] = &[(Param::Checked(&SUBST), false)];

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "textops",
    functions: &[
        f("search", RE, search),
        f("search_body", RE, search_body),
        f("search_append", RE_TXT, search_append),
        f("search_append_body", RE_TXT, search_append_body),
        f("replace", RE_TXT, replace),
        f("replace_all", RE_TXT, replace_all),
        f("replace_body", RE_TXT, replace_body),
        f("replace_body_all", RE_TXT, replace_body_all),
        f("replace_body_atonce", RE_TXT, replace_body_atonce),
        f("subst", SUBST_EXPR, subst),
        f("subst_body", SUBST_EXPR, subst_body),
        f("subst_uri", SUBST_EXPR, subst_uri),
        f("subst_user", SUBST_EXPR, subst_user),
    ],
    params: &[],
};

/// The part of the received message a function looks at (OpenSIPS textops.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    /// The whole message (`search`).
    Whole,
    /// From after the first line to the end (`get_header()`).
    Headers,
    /// The body (`get_body()`); a function finds nothing in an empty one.
    Body,
}

/// The bytes of `region` and where they start in the message; `None` for an empty body.
fn region(raw: &[u8], body_len: usize, region: Region) -> Option<(usize, &[u8])> {
    let start = match region {
        Region::Whole => 0,
        Region::Headers => raw
            .iter()
            .position(|&c| c == b'\n')
            .map_or(raw.len(), |i| i + 1),
        // The message ends with its body.
        Region::Body => raw.len().checked_sub(body_len)?,
    };
    let bytes = raw.get(start..)?;
    (region != Region::Body || !bytes.is_empty()).then_some((start, bytes))
}

fn arg(args: &[Value], i: usize) -> String {
    args.get(i)
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default()
}

fn code(b: bool) -> i64 {
    if b { 1 } else { -1 }
}

fn log_expr(f: &mut FnCtx<'_>, e: &ExprError) {
    f.log.log(-1, &format!("textops: {e}\n"));
}

fn log_refused(f: &mut FnCtx<'_>, e: &RewriteError) {
    f.log.log(-1, &format!("textops: nothing changed: {e}\n"));
}

/// The regular expression of parameter 0.
fn pattern(f: &mut FnCtx<'_>, args: &[Value]) -> Option<std::rc::Rc<Pattern>> {
    cache::pattern(&arg(args, 0))
        .inspect_err(|e| log_expr(f, e))
        .ok()
}

/// Records `reps` (offsets into the part of the message that starts at `base`) as patches:
/// all of them, or none when one overlaps an earlier change.
fn record(f: &mut FnCtx<'_>, base: usize, reps: Vec<Replacement>) -> i64 {
    let at = |r: &std::ops::Range<usize>| base + r.start..base + r.end;
    // The ranges of one call never overlap each other: checking them first keeps it whole.
    if !reps.iter().all(|(r, _)| f.msg.edits.can_patch(at(r))) {
        log_refused(f, &RewriteError::Overlap);
        return -1;
    }
    for (r, with) in reps {
        f.msg.edits.patch(at(&r), Bytes::from(with));
    }
    1
}

/// Runs `find` over `region` of the received message and records what it returns; false when
/// it finds nothing.
fn rewrite(
    f: &mut FnCtx<'_>,
    within: Region,
    find: impl FnOnce(&[u8]) -> Result<Vec<Replacement>, RewriteError>,
) -> i64 {
    let raw = f.msg.msg.raw().clone();
    let Some((base, hay)) = region(&raw, f.msg.msg.body().len(), within) else {
        return -1;
    };
    match find(hay) {
        Ok(reps) if reps.is_empty() => -1,
        Ok(reps) => record(f, base, reps),
        Err(e) => {
            log_refused(f, &e);
            -1
        }
    }
}

fn search_in(f: &mut FnCtx<'_>, args: &[Value], within: Region) -> i64 {
    let Some(p) = pattern(f, args) else {
        return -1;
    };
    let raw = f.msg.msg.raw();
    code(region(raw, f.msg.msg.body().len(), within).is_some_and(|(_, hay)| p.is_match(hay)))
}

fn search(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    search_in(f, args, Region::Whole)
}

fn search_body(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    search_in(f, args, Region::Body)
}

/// Inserts parameter 1 after the first match.
fn append_in(f: &mut FnCtx<'_>, args: &[Value], within: Region) -> i64 {
    let Some(p) = pattern(f, args) else {
        return -1;
    };
    let txt = arg(args, 1).into_bytes();
    rewrite(f, within, |hay| {
        Ok(p.find(hay)
            .map(|m| (m.end..m.end, txt))
            .into_iter()
            .collect())
    })
}

fn search_append(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    append_in(f, args, Region::Headers)
}

fn search_append_body(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    append_in(f, args, Region::Body)
}

/// Replaces the matches `scan` takes by parameter 1, taken literally (OpenSIPS `replace*`
/// expands nothing in it). Only the loops refuse an empty match: a single `replace` of one
/// inserts, as in OpenSIPS.
fn replace_in(f: &mut FnCtx<'_>, args: &[Value], within: Region, scan: Scan) -> i64 {
    let Some(p) = pattern(f, args) else {
        return -1;
    };
    let txt = arg(args, 1).into_bytes();
    rewrite(f, within, |hay| match scan {
        Scan::First => Ok(p.find(hay).map(|m| (m, txt)).into_iter().collect()),
        Scan::All { .. } => {
            let hits = p.matches(hay, scan, false)?;
            Ok(hits.into_iter().map(|h| (h.span, txt.clone())).collect())
        }
    })
}

fn replace(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    replace_in(f, args, Region::Headers, Scan::First)
}

fn replace_all(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    replace_in(f, args, Region::Headers, Scan::All { renew_bol: true })
}

fn replace_body(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    replace_in(f, args, Region::Body, Scan::First)
}

fn replace_body_all(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    replace_in(f, args, Region::Body, Scan::All { renew_bol: true })
}

/// As `replace_body_all`, but `^` never matches where a match stopped, even at a line start
/// (OpenSIPS keeps `REG_NOTBOL` set after the first match).
fn replace_body_atonce(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    replace_in(f, args, Region::Body, Scan::All { renew_bol: false })
}

/// The subst expression of parameter 0 and what its replacement reads now.
fn subst_expr(f: &mut FnCtx<'_>, args: &[Value]) -> Option<(std::rc::Rc<Subst>, Env)> {
    let s = cache::subst(&arg(args, 0))
        .inspect_err(|e| log_expr(f, e))
        .ok()?;
    let mut env = Env::default();
    if s.uses_uri() {
        env.uri = f.msg.ruri().unwrap_or("").as_bytes().to_vec();
    }
    // Pseudo-variables are read per call, as the script would read them (transformations
    // and contexts included).
    for spec in s.pvs() {
        let value = f.read_pv(spec);
        env.pvs.push(value.to_text().as_bytes().to_vec());
    }
    Some((s, env))
}

fn subst_in(f: &mut FnCtx<'_>, args: &[Value], within: Region) -> i64 {
    let Some((s, env)) = subst_expr(f, args) else {
        return -1;
    };
    rewrite(f, within, |hay| s.run(hay, &env))
}

fn subst(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    subst_in(f, args, Region::Headers)
}

fn subst_body(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    subst_in(f, args, Region::Body)
}

/// `input` with the substitution made, as text; `None` (logged when it is an error) when
/// nothing matched or the result is not text.
fn subst_text(f: &mut FnCtx<'_>, s: &Subst, env: &Env, input: &str) -> Option<String> {
    match s.apply(input.as_bytes(), env) {
        Ok(out) => out.and_then(|o| String::from_utf8(o).ok()),
        Err(e) => {
            log_refused(f, &e);
            None
        }
    }
}

/// Substitutes in the current Request-URI.
fn subst_uri(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some((s, env)) = subst_expr(f, args) else {
        return -1;
    };
    let Some(uri) = f.msg.ruri().map(str::to_owned) else {
        return -1;
    };
    match subst_text(f, &s, &env, &uri) {
        Some(new) => code(f.msg.set_ruri(&new)),
        None => -1,
    }
}

/// Substitutes in the user part of the current Request-URI (empty when it has none).
fn subst_user(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some((s, env)) = subst_expr(f, args) else {
        return -1;
    };
    let user = match f.msg.ruri().map(sip::Uri::parse) {
        Some(Ok(uri)) => uri.user().unwrap_or("").to_owned(),
        _ => return -1,
    };
    match subst_text(f, &s, &env, &user) {
        Some(new) => code(f.msg.set_ruri_user(&new)),
        None => -1,
    }
}
