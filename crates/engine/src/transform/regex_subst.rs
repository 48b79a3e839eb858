//! `re.subst,/re/repl/flags`: sed-like substitution, as OpenSIPS' `subst_parser` reads it.
//!
//! * `\{` and `\}` in the argument stand for `{` and `}` (they could not be written otherwise
//!   inside a transformation).
//! * The separator is the first character (not `\`); the regex ends at the first separator not
//!   preceded by `\`; `\sep` inside the regex is a literal separator.
//! * The replacement ends at the next unescaped separator, which must be there. In it `\0`–`\9`
//!   are the match and its groups (a group that did not take part is empty), `\n` `\r` `\t`
//!   `\\` `\$` what they say, and `\x` for any other `x` is `x`.
//! * Flags: `i` ignore case, `g` replace every match, `s` let `.` match a newline and make `^`/`$`
//!   match only at the ends (by default they also match at line breaks, like POSIX
//!   `REG_NEWLINE`); anything else is an error.
//! * No match returns the input unchanged; a match of the empty string is an error (NULL), as
//!   in OpenSIPS; the input must be a non-empty string.
//!
//! * Pseudo-variables in the replacement (`\1$si`) are read when the transformation runs (the
//!   script compiler passes their values as extra arguments); in an expression that itself
//!   comes from a variable they make it fail (NULL).
//!
//! Not supported (rejected when parsing): `\u` (the request URI) in the replacement.
//!
//! Deviation: the pattern is a Rust `regex`, not a POSIX ERE: alternation is leftmost-first
//! rather than leftmost-longest and `[^x]` also matches a newline. Common patterns behave alike.

use std::cell::RefCell;
use std::rc::Rc;

use regex::{Regex, RegexBuilder};

use super::data::{Text, TrValue};

/// A compiled substitution.
#[derive(Debug)]
pub(crate) struct Subst {
    re: Regex,
    repl: Vec<Piece>,
    global: bool,
    needs_groups: bool,
    /// The pseudo-variables of the replacement, as written, in order.
    vars: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Group(usize),
    /// The value of the replacement's `n`-th pseudo-variable.
    Var(usize),
}

/// Limits what a hostile runtime expression can make the regex compiler build.
const SIZE_LIMIT: usize = 1 << 20;

impl Subst {
    pub(crate) fn parse(raw: &str) -> Result<Subst, String> {
        let expr = raw.replace("\\{", "{").replace("\\}", "}");
        let b = expr.as_bytes();
        if b.len() < 3 {
            return Err(format!("expression '{raw}' is too short"));
        }
        let sep = b[0];
        if sep == b'\\' || !sep.is_ascii() {
            return Err(format!("invalid separator in '{raw}'"));
        }
        let re_end = (1..b.len())
            .find(|&p| b[p] == sep && b[p - 1] != b'\\')
            .ok_or_else(|| format!("no separator after the regex in '{raw}'"))?;
        let re_text = expr.get(1..re_end).ok_or("bad regex")?;
        let mut vars = Vec::new();
        let (repl, flags) = parse_replacement(expr.get(re_end + 1..).unwrap_or(""), sep, &mut vars)
            .map_err(|why| format!("{why} in '{raw}'"))?;
        let (mut icase, mut dotall, mut global) = (false, false, false);
        for f in flags.chars() {
            match f {
                'i' => icase = true,
                's' => dotall = true,
                'g' => global = true,
                _ => return Err(format!("unknown flag '{f}' in '{raw}'")),
            }
        }
        let re = RegexBuilder::new(&unescape_separator(re_text, sep))
            .case_insensitive(icase)
            .multi_line(!dotall)
            .dot_matches_new_line(dotall)
            .size_limit(SIZE_LIMIT)
            .dfa_size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| format!("bad regular expression '{re_text}': {e}"))?;
        let needs_groups = repl.iter().any(|p| matches!(p, Piece::Group(_)));
        Ok(Subst {
            re,
            repl,
            global,
            needs_groups,
            vars,
        })
    }

    /// The replacement's pseudo-variables, as written (their values come as extra arguments).
    pub(crate) fn vars(&self) -> &[String] {
        &self.vars
    }

    /// The substituted string; `Ok(None)` when nothing matched; `Err` on an empty match.
    fn run(&self, s: &str, vars: &[crate::Value]) -> Result<Option<String>, ()> {
        let mut locs = self.re.capture_locations();
        let mut out = String::new();
        let mut last = 0;
        loop {
            let found = if self.needs_groups {
                self.re
                    .captures_read_at(&mut locs, s, last)
                    .map(|m| (m.start(), m.end()))
            } else {
                self.re.find_at(s, last).map(|m| (m.start(), m.end()))
            };
            let Some((start, end)) = found else { break };
            if start == end {
                return Err(());
            }
            out.push_str(s.get(last..start).ok_or(())?);
            for piece in &self.repl {
                match piece {
                    Piece::Lit(l) => out.push_str(l),
                    Piece::Var(k) => {
                        if let Some(v) = vars.get(*k).filter(|v| !v.is_null()) {
                            out.push_str(&v.to_text());
                        }
                    }
                    Piece::Group(0) => out.push_str(s.get(start..end).ok_or(())?),
                    Piece::Group(g) => {
                        if let Some((a, z)) = locs.get(*g) {
                            out.push_str(s.get(a..z).ok_or(())?);
                        }
                    }
                }
            }
            last = end;
            if !self.global {
                break;
            }
        }
        if last == 0 {
            return Ok(None);
        }
        out.push_str(s.get(last..).ok_or(())?);
        Ok(Some(out))
    }
}

/// `\sep` in the regex is a literal separator.
fn unescape_separator(re: &str, sep: u8) -> String {
    let sep = char::from(sep);
    let mut out = String::with_capacity(re.len());
    let mut chars = re.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(n) if n == sep => out.push_str(&regex::escape(&n.to_string())),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The replacement up to the closing separator, and the flags after it.
fn parse_replacement<'a>(
    s: &'a str,
    sep: u8,
    vars: &mut Vec<String>,
) -> Result<(Vec<Piece>, &'a str), String> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            let Some((_, e)) = chars.next() else { break };
            match e {
                'n' => lit.push('\n'),
                'r' => lit.push('\r'),
                't' => lit.push('\t'),
                'u' => return Err("\\u (the request URI) is not supported".into()),
                '0'..='9' => {
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Group(e as usize - '0' as usize));
                }
                other => lit.push(other),
            }
        } else if c == '$' {
            let rest = s.get(i..).unwrap_or("");
            let Some(len) = cfg::pv::scan(rest).filter(|n| *n > 1) else {
                lit.push('$');
                continue;
            };
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Var(vars.len()));
            vars.push(rest.get(..len).unwrap_or("").to_owned());
            // The PV's own characters are not the replacement's.
            for _ in 1..rest.get(..len).map_or(0, |p| p.chars().count()) {
                chars.next();
            }
        } else if c.is_ascii() && c as u8 == sep {
            if !lit.is_empty() {
                pieces.push(Piece::Lit(lit));
            }
            return Ok((pieces, s.get(i + 1..).unwrap_or("")));
        } else {
            lit.push(c);
        }
    }
    Err("missing separator after the replacement".into())
}

pub(super) fn apply(subst: &Subst, t: &Text<'_>, vars: &[crate::Value]) -> TrValue {
    let Some(s) = t.str().filter(|s| !s.is_empty()) else {
        return TrValue::Null;
    };
    match subst.run(s, vars) {
        Ok(None) => t.whole(),
        Ok(Some(out)) => TrValue::string(out),
        Err(()) => TrValue::Null,
    }
}

const CACHE_SIZE: usize = 16;

type Cache = Vec<(String, Option<Rc<Subst>>)>;

thread_local! {
    /// Expressions that came from variables, compiled on first use (failures remembered too).
    static CACHE: RefCell<Cache> = const { RefCell::new(Vec::new()) };
}

/// `re.subst` with an expression known only at run time.
pub(super) fn apply_dynamic(expr: &str, t: &Text<'_>) -> TrValue {
    if t.str().is_none_or(str::is_empty) {
        return TrValue::Null;
    }
    let subst = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some((_, s)) = c.iter().find(|(e, _)| e == expr) {
            return s.clone();
        }
        let s = Subst::parse(expr)
            .ok()
            .filter(|s| s.vars.is_empty())
            .map(Rc::new);
        if c.len() >= CACHE_SIZE {
            c.remove(0);
        }
        c.push((expr.to_owned(), s.clone()));
        s
    });
    match subst {
        Some(s) => apply(&s, t, &[]),
        None => TrValue::Null,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Value;
    use crate::transform::TransformOp;

    fn ap(input: &str, expr: &str) -> Value {
        TransformOp::ReSubst.apply(&Value::str(input), &[Value::str(expr)])
    }
    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn basics_and_flags() {
        assert_eq!(ap("abcabc", "/b/X/"), s("aXcabc"));
        assert_eq!(ap("abcabc", "/b/X/g"), s("aXcaXc"));
        assert_eq!(ap("aBcabc", "/b/X/gi"), s("aXcaXc"));
        assert_eq!(ap("abc", "/z/X/"), s("abc")); // no match: unchanged
        assert_eq!(ap("abc", "/b//"), s("ac"));
        assert_eq!(ap("abc", "#b#X#"), s("aXc"));
        // The docs' example: strip a leading "+" from a number.
        assert_eq!(ap("+40212345678", "/^\\+(.*)/\\1/"), s("40212345678"));
        assert_eq!(
            ap("sip:alice@x", "/^sip:([^@]+)@(.*)$/\\2-\\1-\\0/"),
            s("x-alice-sip:alice@x")
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(ap("a/b", "/\\//|/"), s("a|b")); // escaped separator in the regex
        assert_eq!(ap("ab", "/b/\\//"), s("a/")); // ... and in the replacement
        assert_eq!(ap("ab", "/b/\\n\\t\\\\\\$/"), s("a\n\t\\$"));
        assert_eq!(ap("a1", "/(x)?1/[\\1]/"), s("a[]")); // group that did not take part
        assert_eq!(ap("a1", "/1/\\5/"), s("a")); // group that does not exist
        assert_eq!(ap("aaa", "/a\\{2\\}/X/"), s("Xa")); // \{ \} stand for braces
        assert_eq!(ap("a,b", "/\\,/;/"), s("a;b"));
        assert_eq!(ap("a|b", "|\\||-|"), s("a-b"));
    }

    /// Pseudo-variables in the replacement become `Var` pieces filled from extra arguments;
    /// an escaped `$` stays literal; in a dynamic expression they make it fail.
    #[test]
    fn variables_in_the_replacement() {
        let s = Subst::parse("/(IP4.).*/\\1$si:$var(p)\\$x/g").unwrap();
        assert_eq!(s.vars(), ["$si", "$var(p)"]);
        let t = TrValue::from(&crate::Value::str("IP4 10.0.0.1"));
        let out = apply(
            &s,
            &Text::of(&t).unwrap(),
            &[crate::Value::str("192.0.2.7"), crate::Value::Int(5060)],
        );
        assert_eq!(out.into_value(), s_("IP4 192.0.2.7:5060$x"));
        assert_eq!(ap("abc", "/b/$si/"), Value::Null);
    }

    fn s_(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn lines() {
        assert_eq!(ap("a\nb", "/^b/X/"), s("a\nX")); // REG_NEWLINE: ^ after a line break
        assert_eq!(ap("a\nb", "/^b/X/s"), s("a\nb"));
        assert_eq!(ap("a\nb", "/a.b/X/"), s("a\nb"));
        assert_eq!(ap("a\nb", "/a.b/X/s"), s("X"));
        assert_eq!(ap("aa", "/^a/X/g"), s("Xa")); // ^ does not match again mid-string
    }

    #[test]
    fn failures() {
        assert_eq!(ap("abc", "/x*/y/"), Value::Null); // empty match is an error
        assert_eq!(ap("abc", "/b*/y/g"), Value::Null);
        assert_eq!(ap("", "/a/b/"), Value::Null);
        assert_eq!(ap("abc", "/a/b"), Value::Null);
        assert_eq!(ap("abc", "/a(/b/"), Value::Null);
        assert_eq!(
            TransformOp::ReSubst.apply(&s("abc"), &[Value::Null]),
            Value::Null
        );
        assert_eq!(
            TransformOp::ReSubst.apply(&Value::Int(12), &[s("/1/x/")]),
            s("x2")
        );
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "", "/a", "/a/", "\\a\\b\\", "/a/b", "/a/b/x", "/a(/b/", "/a/\\u/", "éaébé",
        ] {
            assert!(Subst::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Subst::parse("/a//").is_ok());
        assert!(Subst::parse("/a/b/gis").is_ok());
        assert_eq!(
            parse_replacement("x\\1y/g", b'/', &mut Vec::new()).unwrap(),
            (
                vec![
                    Piece::Lit("x".into()),
                    Piece::Group(1),
                    Piece::Lit("y".into())
                ],
                "g"
            )
        );
    }

    #[test]
    fn dynamic_cache_is_bounded() {
        for i in 0..40 {
            let expr = format!("/{i}/x/");
            assert_eq!(ap(&format!("a{i}"), &expr), s("ax"));
        }
        assert!(CACHE.with(|c| c.borrow().len()) <= CACHE_SIZE);
        assert_eq!(ap("a", "/(/x/"), Value::Null);
        assert_eq!(ap("a", "/(/x/"), Value::Null);
    }
}
