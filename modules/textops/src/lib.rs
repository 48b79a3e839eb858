//! The OpenSIPS `textops` module: regular-expression search and replace over the message
//! (`search`, `search_append`, `replace`, `replace_all`, `subst`), its body (`search_body`,
//! `search_append_body`, `replace_body`, `replace_body_all`, `replace_body_atonce`,
//! `subst_body`) and its Request-URI (`subst_uri`, `subst_user`).
//!
//! Expressions are POSIX-extended as in OpenSIPS, compiled with multi-line anchors (`^`/`$`
//! match at line ends, `.` never crosses one). A rewrite of the message is applied to its text
//! as the script has edited it so far; Content-Length follows the body.
#![forbid(unsafe_code)]

use bytes::Bytes;
use engine::{FnCtx, FnSpec, ModuleSpec, MsgCtx, Param, Routes, Value};
use regex::{Regex, RegexBuilder};
use sip::{Edits, SipMessage};

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

const RE: &[(Param, bool)] = &[(Param::StaticStr, false)];
const RE_TXT: &[(Param, bool)] = &[(Param::StaticStr, false), (Param::Str, false)];

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
        f("replace_body_atonce", RE_TXT, replace_body_all),
        f("subst", RE, subst),
        f("subst_body", RE, subst_body),
        f("subst_uri", RE, subst_uri),
        f("subst_user", RE, subst_user),
    ],
    params: &[],
};

fn arg(args: &[Value], i: usize) -> String {
    args.get(i)
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default()
}

fn regex(f: &mut FnCtx<'_>, re: &str, icase: bool) -> Option<Regex> {
    match RegexBuilder::new(re)
        .multi_line(true)
        .case_insensitive(icase)
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            f.log.log(
                -1,
                &format!("textops: bad regular expression `{re}`: {e}\n"),
            );
            None
        }
    }
}

fn code(b: bool) -> i64 {
    if b { 1 } else { -1 }
}

/// The message as the script has edited it so far (without the R-URI rewrite, which is kept
/// apart as in OpenSIPS).
fn text_of(ctx: &MsgCtx) -> String {
    String::from_utf8_lossy(&ctx.msg.serialize(&ctx.edits)).into_owned()
}

/// Replaces the message with `text` (Content-Length fixed to its body); false when the result
/// is not a SIP message any more (the message is left as it was).
fn set_text(ctx: &mut MsgCtx, text: &str) -> bool {
    let (head, body) = match text.find("\r\n\r\n") {
        Some(i) => (&text[..i + 2], &text[i + 4..]),
        None => return false,
    };
    let mut fixed = String::with_capacity(text.len() + 8);
    for line in head.split_inclusive("\r\n") {
        let name = line.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("content-length") || name == "l" {
            fixed.push_str(&format!("{name}: {}\r\n", body.len()));
        } else {
            fixed.push_str(line);
        }
    }
    fixed.push_str("\r\n");
    fixed.push_str(body);
    match SipMessage::parse(Bytes::from(fixed)) {
        Ok(m) if m.check().is_ok() => {
            ctx.msg = m;
            ctx.edits = Edits::new();
            true
        }
        _ => false,
    }
}

fn body_of(ctx: &MsgCtx) -> String {
    let text = text_of(ctx);
    match text.find("\r\n\r\n") {
        Some(i) => text[i + 4..].to_owned(),
        None => String::new(),
    }
}

fn set_body(ctx: &mut MsgCtx, body: String) -> bool {
    ctx.edits.set_body(Bytes::from(body), None);
    true
}

fn search(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(re) = regex(f, &arg(args, 0), false) else {
        return -1;
    };
    code(re.is_match(&text_of(f.msg)))
}

fn search_body(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(re) = regex(f, &arg(args, 0), false) else {
        return -1;
    };
    code(re.is_match(&body_of(f.msg)))
}

/// Inserts `txt` after the first match.
fn append_after(re: &Regex, text: &str, txt: &str) -> Option<String> {
    let m = re.find(text)?;
    Some(format!("{}{txt}{}", &text[..m.end()], &text[m.end()..]))
}

fn search_append(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(re) = regex(f, &arg(args, 0), false) else {
        return -1;
    };
    match append_after(&re, &text_of(f.msg), &arg(args, 1)) {
        Some(t) => code(set_text(f.msg, &t)),
        None => -1,
    }
}

fn search_append_body(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(re) = regex(f, &arg(args, 0), false) else {
        return -1;
    };
    match append_after(&re, &body_of(f.msg), &arg(args, 1)) {
        Some(b) => code(set_body(f.msg, b)),
        None => -1,
    }
}

/// `txt` taken literally (OpenSIPS `replace` does not expand back-references).
fn replaced(re: &Regex, text: &str, txt: &str, all: bool) -> Option<String> {
    if !re.is_match(text) {
        return None;
    }
    let lit = regex::NoExpand(txt);
    Some(if all {
        re.replace_all(text, lit).into_owned()
    } else {
        re.replace(text, lit).into_owned()
    })
}

fn replace_msg(f: &mut FnCtx<'_>, args: &[Value], all: bool) -> i64 {
    let Some(re) = regex(f, &arg(args, 0), false) else {
        return -1;
    };
    match replaced(&re, &text_of(f.msg), &arg(args, 1), all) {
        Some(t) => code(set_text(f.msg, &t)),
        None => -1,
    }
}

fn replace(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    replace_msg(f, args, false)
}

fn replace_all(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    replace_msg(f, args, true)
}

fn replace_body_with(f: &mut FnCtx<'_>, args: &[Value], all: bool) -> i64 {
    let Some(re) = regex(f, &arg(args, 0), false) else {
        return -1;
    };
    match replaced(&re, &body_of(f.msg), &arg(args, 1), all) {
        Some(b) => code(set_body(f.msg, b)),
        None => -1,
    }
}

fn replace_body(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    replace_body_with(f, args, false)
}

fn replace_body_all(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    replace_body_with(f, args, true)
}

/// A sed-like `/re/replacement/flags` (any delimiter; flags `i` and `g`), with `\1`…`\9`
/// back-references and `\\` / `\<delimiter>` escapes in the replacement.
#[derive(Debug)]
pub struct Subst {
    re: Regex,
    replacement: String,
    global: bool,
}

impl Subst {
    pub fn parse(expr: &str) -> Result<Subst, String> {
        let mut chars = expr.chars();
        let delim = chars.next().ok_or("empty subst expression")?;
        // The three parts, split at unescaped delimiters; an escaped delimiter stands for
        // itself, other escapes are kept for the regex / the replacement.
        let mut parts: Vec<String> = vec![String::new()];
        let mut current = String::new();
        let mut escaped = false;
        for c in chars {
            if escaped {
                if c != delim {
                    current.push('\\');
                }
                current.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == delim {
                parts.push(std::mem::take(&mut current));
            } else {
                current.push(c);
            }
        }
        parts.push(current);
        // The first element is the (empty) text before the opening delimiter.
        parts.remove(0);
        if parts.len() != 3 || escaped {
            return Err(format!("`{expr}` is not /re/replacement/flags"));
        }
        let flags = parts.pop().unwrap_or_default();
        let repl = parts.pop().unwrap_or_default();
        let re = parts.pop().unwrap_or_default();
        let mut icase = false;
        let mut global = false;
        for fl in flags.chars() {
            match fl {
                'i' => icase = true,
                'g' => global = true,
                _ => return Err(format!("unknown subst flag `{fl}`")),
            }
        }
        let re = RegexBuilder::new(&re)
            .multi_line(true)
            .case_insensitive(icase)
            .build()
            .map_err(|e| format!("bad regular expression `{re}`: {e}"))?;
        // `\N` → `${N}`, `\\` → `\`, `$` taken literally.
        let mut replacement = String::new();
        let mut it = repl.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '\\' => match it.next() {
                    Some(d) if d.is_ascii_digit() => replacement.push_str(&format!("${{{d}}}")),
                    Some(o) => replacement.push(o),
                    None => replacement.push('\\'),
                },
                '$' => replacement.push_str("$$"),
                o => replacement.push(o),
            }
        }
        Ok(Subst {
            re,
            replacement,
            global,
        })
    }

    /// The text with the substitution applied; `None` when nothing matched.
    pub fn apply(&self, text: &str) -> Option<String> {
        if !self.re.is_match(text) {
            return None;
        }
        let r = self.replacement.as_str();
        Some(if self.global {
            self.re.replace_all(text, r).into_owned()
        } else {
            self.re.replace(text, r).into_owned()
        })
    }
}

fn subst_expr(f: &mut FnCtx<'_>, args: &[Value]) -> Option<Subst> {
    match Subst::parse(&arg(args, 0)) {
        Ok(s) => Some(s),
        Err(e) => {
            f.log.log(-1, &format!("textops: {e}\n"));
            None
        }
    }
}

fn subst(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(s) = subst_expr(f, args) else {
        return -1;
    };
    match s.apply(&text_of(f.msg)) {
        Some(t) => code(set_text(f.msg, &t)),
        None => -1,
    }
}

fn subst_body(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(s) = subst_expr(f, args) else {
        return -1;
    };
    match s.apply(&body_of(f.msg)) {
        Some(b) => code(set_body(f.msg, b)),
        None => -1,
    }
}

fn subst_uri(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(s) = subst_expr(f, args) else {
        return -1;
    };
    let ruri = f.msg.ruri().unwrap_or("").to_owned();
    match s.apply(&ruri) {
        Some(u) => code(f.msg.set_ruri(&u)),
        None => -1,
    }
}

fn subst_user(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(s) = subst_expr(f, args) else {
        return -1;
    };
    let user = f.msg.ruri_user().unwrap_or_default();
    match s.apply(&user) {
        Some(u) => {
            let ruri = f.msg.ruri().unwrap_or("").to_owned();
            let Ok(parsed) = sip::Uri::parse(&ruri) else {
                return -1;
            };
            let scheme_end = ruri.find(':').map_or(0, |i| i + 1);
            let rest = match parsed.user() {
                Some(old) => ruri[scheme_end..]
                    .strip_prefix(old)
                    .unwrap_or(&ruri[scheme_end..])
                    .to_owned(),
                None => format!("@{}", &ruri[scheme_end..]),
            };
            let rest = if u.is_empty() {
                rest.trim_start_matches('@').to_owned()
            } else {
                rest
            };
            code(f.msg.set_ruri(&format!("{}{u}{rest}", &ruri[..scheme_end])))
        }
        None => -1,
    }
}
