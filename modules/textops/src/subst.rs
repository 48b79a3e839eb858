//! The sed-like `/re/replacement/flags` of `subst`, `subst_body`, `subst_uri` and
//! `subst_user`, read as OpenSIPS' `subst_parser` reads it (re.c).
//!
//! * The separator is the first character (not `\`). The expression runs to the next separator
//!   that does not follow a `\` and goes to the POSIX compiler as written (where `\/` is `/`).
//! * In the replacement `\0` … `\9` are the match and its groups (empty when a group took no
//!   part), `\n` `\r` `\t` those control characters, `\u` the current Request-URI, `\\` and
//!   `\$` a backslash and a dollar, and `\x` for any other `x` is `x`. A `$` starts a
//!   pseudo-variable, read when the function runs.
//! * Flags: `i` ignores case, `g` replaces every match, `s` lets `.` and `[^…]` match a newline
//!   and `^`/`$` match only at the ends (by default they match at line ends, `REG_NEWLINE`).
//! * A match of the empty string refuses the whole substitution.

use std::ops::Range;

use cfg::pv::PvSpec;

use crate::error::{ExprError, RewriteError};
use crate::posix::{Flags, Hit, Pattern, Scan};

/// A parsed substitution.
#[derive(Debug)]
pub(crate) struct Subst {
    pattern: Pattern,
    repl: Vec<Piece>,
    /// The pseudo-variables of the replacement, in order.
    pvs: Vec<PvSpec>,
    global: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Lit(Vec<u8>),
    Group(usize),
    Uri,
    /// An index into `Subst::pvs`.
    Pv(usize),
}

/// What the replacement needs from the running script, read once per call.
#[derive(Debug, Default)]
pub(crate) struct Env {
    /// The current Request-URI (empty for a reply).
    pub uri: Vec<u8>,
    /// The values of [`Subst::pvs`], in order.
    pub pvs: Vec<Vec<u8>>,
}

/// New bytes for a range of the text searched.
pub(crate) type Replacement = (Range<usize>, Vec<u8>);

impl Subst {
    pub(crate) fn parse(expr: &str) -> Result<Subst, ExprError> {
        let bad = |why: &str| ExprError::Subst {
            expr: expr.to_owned(),
            why: why.to_owned(),
        };
        let b = expr.as_bytes();
        let sep = *b.first().ok_or_else(|| bad("it is empty"))?;
        if b.len() < 3 {
            return Err(bad("it is too short"));
        }
        if sep == b'\\' || !sep.is_ascii() {
            return Err(bad("invalid separator"));
        }
        // As OpenSIPS: a separator right after any backslash is escaped.
        let re_end = (1..b.len())
            .find(|&p| b[p] == sep && b[p - 1] != b'\\')
            .ok_or_else(|| bad("no separator after the regular expression"))?;
        if b.len() < re_end + 2 {
            return Err(bad("it is too short"));
        }
        let (repl, pvs, used) = parse_replacement(&expr[re_end + 1..], sep).map_err(|e| bad(&e))?;
        let mut flags = Flags {
            icase: false,
            newline: true,
        };
        let mut global = false;
        for f in expr[re_end + 1 + used..].chars() {
            match f {
                'i' => flags.icase = true,
                's' => flags.newline = false,
                'g' => global = true,
                _ => return Err(bad(&format!("unknown flag `{f}`"))),
            }
        }
        let pattern = Pattern::compile(&expr[1..re_end], flags)?;
        Ok(Subst {
            pattern,
            repl,
            pvs,
            global,
        })
    }

    /// The pseudo-variables the replacement reads, in the order [`Env::pvs`] holds them.
    pub(crate) fn pvs(&self) -> &[PvSpec] {
        &self.pvs
    }

    pub(crate) fn uses_uri(&self) -> bool {
        self.repl.contains(&Piece::Uri)
    }

    /// The replacements for `hay`, in order; none when nothing matched.
    pub(crate) fn run(&self, hay: &[u8], env: &Env) -> Result<Vec<Replacement>, RewriteError> {
        let scan = if self.global {
            Scan::All { renew_bol: true }
        } else {
            Scan::First
        };
        let groups = self.repl.iter().any(|p| matches!(p, Piece::Group(_)));
        let hits = self.pattern.matches(hay, scan, groups)?;
        Ok(hits
            .into_iter()
            .map(|h| {
                let with = self.build(hay, &h, env);
                (h.span, with)
            })
            .collect())
    }

    /// `hay` with the substitution made; `None` when nothing matched.
    pub(crate) fn apply(&self, hay: &[u8], env: &Env) -> Result<Option<Vec<u8>>, RewriteError> {
        let reps = self.run(hay, env)?;
        if reps.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(hay.len() + 16);
        let mut pos = 0;
        for (range, with) in reps {
            out.extend_from_slice(hay.get(pos..range.start).unwrap_or(&[]));
            out.extend_from_slice(&with);
            pos = range.end;
        }
        out.extend_from_slice(hay.get(pos..).unwrap_or(&[]));
        Ok(Some(out))
    }

    fn build(&self, hay: &[u8], hit: &Hit, env: &Env) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in &self.repl {
            let part = match piece {
                Piece::Lit(l) => &l[..],
                Piece::Group(g) => hit
                    .groups
                    .get(*g)
                    .cloned()
                    .flatten()
                    .and_then(|r| hay.get(r))
                    .unwrap_or(&[]),
                Piece::Uri => &env.uri,
                Piece::Pv(i) => env.pvs.get(*i).map_or(&[][..], Vec::as_slice),
            };
            out.extend_from_slice(part);
        }
        out
    }
}

/// The replacement up to its closing separator: pieces, pseudo-variables, and the bytes used
/// (the separator included).
fn parse_replacement(s: &str, sep: u8) -> Result<(Vec<Piece>, Vec<PvSpec>, usize), String> {
    let b = s.as_bytes();
    let (mut pieces, mut pvs, mut lit) = (Vec::new(), Vec::new(), Vec::new());
    let flush = |lit: &mut Vec<u8>, pieces: &mut Vec<Piece>| {
        if !lit.is_empty() {
            pieces.push(Piece::Lit(std::mem::take(lit)));
        }
    };
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => {
                let Some(&e) = b.get(i + 1) else { break };
                i += 2;
                match e {
                    b'n' => lit.push(b'\n'),
                    b'r' => lit.push(b'\r'),
                    b't' => lit.push(b'\t'),
                    b'u' => {
                        flush(&mut lit, &mut pieces);
                        pieces.push(Piece::Uri);
                    }
                    b'0'..=b'9' => {
                        flush(&mut lit, &mut pieces);
                        pieces.push(Piece::Group(usize::from(e - b'0')));
                    }
                    // `\\`, `\$`, an escaped separator, or any other byte as it is.
                    other => lit.push(other),
                }
            }
            b'$' => {
                let n = cfg::pv::scan(&s[i..])
                    .ok_or_else(|| format!("bad pseudo-variable at `{}`", &s[i..]))?;
                let spec = cfg::pv::parse(&s[i..i + n])
                    .map_err(|e| format!("bad pseudo-variable `{}`: {e}", &s[i..i + n]))?;
                flush(&mut lit, &mut pieces);
                pieces.push(Piece::Pv(pvs.len()));
                pvs.push(spec);
                i += n;
            }
            _ if c == sep => {
                flush(&mut lit, &mut pieces);
                return Ok((pieces, pvs, i + 1));
            }
            _ => {
                lit.push(c);
                i += 1;
            }
        }
    }
    Err("no separator after the replacement".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sub(expr: &str, input: &str) -> Option<String> {
        let env = Env {
            uri: b"sip:u@h".to_vec(),
            pvs: vec![b"PV".to_vec(); 4],
        };
        let s = Subst::parse(expr).unwrap();
        s.apply(input.as_bytes(), &env)
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn replacement_syntax() {
        assert_eq!(sub("/b/X/", "abcb").as_deref(), Some("aXcb"));
        assert_eq!(sub("/b/X/g", "abcb").as_deref(), Some("aXcX"));
        assert_eq!(sub("/B/X/gi", "abcb").as_deref(), Some("aXcX"));
        assert_eq!(sub("/B/X/g", "abcb"), None, "case-sensitive without i");
        assert_eq!(
            sub("/(a)(b)?c/[\\2|\\1|\\0|\\9]/", "ac").as_deref(),
            Some("[|a|ac|]")
        );
        assert_eq!(
            sub("/b/\\n\\r\\t\\\\\\$\\//", "b").as_deref(),
            Some("\n\r\t\\$/")
        );
        assert_eq!(sub("/b/<\\u>/", "b").as_deref(), Some("<sip:u@h>"));
        assert_eq!(
            sub("/b/$var(x)-$fU.$avp(y)/", "b").as_deref(),
            Some("PV-PV.PV")
        );
        assert_eq!(sub("#a/b#c#", "xa/b").as_deref(), Some("xc"));
        assert_eq!(sub("/a\\/b/c/", "xa/b").as_deref(), Some("xc"));
        assert_eq!(sub("/a//", "xay").as_deref(), Some("xy"));
    }

    #[test]
    fn pseudo_variables_are_listed_in_order() {
        let s = Subst::parse("/x/$(var(a))\\1$ru$$/").unwrap_err();
        assert!(s.to_string().contains("bad pseudo-variable"), "{s}");
        let s = Subst::parse("/x/$var(a)\\1$(avp(b)[1])/").unwrap();
        let names: Vec<&str> = s.pvs().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["var", "avp"]);
        assert!(!s.uses_uri());
        assert!(Subst::parse("/x/\\u/").unwrap().uses_uri());
    }

    #[test]
    fn lines_and_the_s_flag() {
        assert_eq!(sub("/^b/X/g", "b\nb").as_deref(), Some("X\nX"));
        assert_eq!(sub("/^b/X/gs", "b\nb").as_deref(), Some("X\nb"));
        assert_eq!(sub("/a.b/X/", "a\nb a-b").as_deref(), Some("a\nb X"));
        assert_eq!(sub("/a.b/X/s", "a\nb a-b").as_deref(), Some("X a-b"));
        assert_eq!(sub("/a[^-]b/X/", "a\nb").as_deref(), None);
        assert_eq!(sub("/a[^-]b/X/s", "a\nb").as_deref(), Some("X"));
        assert_eq!(sub("/b$/X/g", "b\r\nb\nb").as_deref(), Some("b\r\nX\nX"));
    }

    #[test]
    fn empty_matches_refuse_everything() {
        let env = Env::default();
        let s = Subst::parse("/x*/y/").unwrap();
        assert_eq!(s.run(b"abc", &env), Err(RewriteError::EmptyMatch));
        let s = Subst::parse("/^/+/").unwrap();
        assert_eq!(s.run(b"bob", &env), Err(RewriteError::EmptyMatch));
        let s = Subst::parse("/b*/y/g").unwrap();
        assert_eq!(s.run(b"bba", &env), Err(RewriteError::EmptyMatch));
    }

    #[test]
    fn malformed_expressions() {
        for bad in [
            "",
            "/a",
            "/a/",
            "\\a\\b\\",
            "/a/b",
            "/a/b/x",
            "/a(/b/",
            "/a/$ /",
            "éaébé",
            "/(a)\\1/b/",
        ] {
            assert!(Subst::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Subst::parse("/a/b/gis").is_ok());
        assert!(Subst::parse("/a/\\u\\$/").is_ok());
    }
}
