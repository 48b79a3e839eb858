//! POSIX extended regular expressions as OpenSIPS compiles them (glibc `regcomp` with
//! `REG_EXTENDED`, and `REG_ICASE` / `REG_NEWLINE` as asked), rewritten in the `regex` crate's
//! syntax and run over bytes.
//!
//! Where the two syntaxes disagree the POSIX meaning is kept:
//! * with `REG_NEWLINE`, `.` and a non-matching list `[^…]` never match a newline and `^`/`$`
//!   match at line ends; without it both match newlines and `^`/`$` match only at the ends;
//! * inside brackets a backslash is an ordinary character, `]` first is literal, and
//!   `[:class:]`, `[=c=]` and `[.c.]` are understood;
//! * `\c` for an ordinary `c` is `c` (`\d` is `d`, `\n` is `n`); the GNU escapes `\w \W \s \S
//!   \b \B \< \> \` \'` keep their meaning;
//! * `{,n}` is `{0,n}`; a repetition of a repetition repeats it (`a*?` is the greedy `(a*)?`);
//!   an unmatched `)` is literal;
//! * bytes are matched as bytes, as in the C locale: case folding is ASCII only, and bytes that
//!   are not UTF-8 match `.` and lists like any other.
//!
//! Not supported: back-references (`\1` … `\9` are an error). Still different: alternation
//! is leftmost-first, not leftmost-longest (`Soft|Softphone` matches `Soft` in `Softphone`).

use std::fmt::Write as _;
use std::ops::Range;

use regex::bytes::{CaptureLocations, Regex, RegexBuilder};

use crate::error::{ExprError, RewriteError};

/// The `regcomp` flags that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flags {
    pub icase: bool,
    /// `REG_NEWLINE`.
    pub newline: bool,
}

/// Which matches a rewrite takes (OpenSIPS runs `regexec` again from the end of a match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    First,
    /// Every match; `renew_bol`: `^` may match where a match ending in CR or LF stopped
    /// (`replace_all`, `subst`), else never there (`replace_body_atonce`, `REG_NOTBOL`).
    All {
        renew_bol: bool,
    },
}

/// One match: its span, and the spans of the groups (0 is the match) when asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    pub span: Range<usize>,
    pub groups: Vec<Option<Range<usize>>>,
}

/// A compiled expression.
#[derive(Debug)]
pub(crate) struct Pattern {
    re: Regex,
    newline: bool,
}

/// Limits what a hostile expression (one read from a variable) can make the compiler build.
const SIZE_LIMIT: usize = 1 << 20;

impl Pattern {
    pub(crate) fn compile(posix: &str, flags: Flags) -> Result<Pattern, ExprError> {
        let bad = |why: String| ExprError::Regex {
            re: posix.to_owned(),
            why,
        };
        let rust = translate(posix, flags.newline).map_err(bad)?;
        let re = RegexBuilder::new(&rust)
            .unicode(false)
            .case_insensitive(flags.icase)
            .multi_line(flags.newline)
            .dot_matches_new_line(!flags.newline)
            .size_limit(SIZE_LIMIT)
            .dfa_size_limit(SIZE_LIMIT)
            .build()
            // The crate's message draws the pattern over several lines; its last line says why.
            .map_err(|e| bad(e.to_string().lines().last().unwrap_or("").trim().to_owned()))?;
        Ok(Pattern {
            re,
            newline: flags.newline,
        })
    }

    pub(crate) fn is_match(&self, hay: &[u8]) -> bool {
        self.re.is_match(hay)
    }

    /// The first match in `hay`.
    pub(crate) fn find(&self, hay: &[u8]) -> Option<Range<usize>> {
        self.re.find(hay).map(|m| m.range())
    }

    /// The matches `scan` takes, each with its groups when `groups` is set. A match of the
    /// empty string is refused, as OpenSIPS refuses it ("invalid regexp?").
    pub(crate) fn matches(
        &self,
        hay: &[u8],
        scan: Scan,
        groups: bool,
    ) -> Result<Vec<Hit>, RewriteError> {
        let mut locs = self.re.capture_locations();
        let mut hits = Vec::new();
        let (mut pos, mut bol) = (0, true);
        while pos < hay.len() || hits.is_empty() {
            let Some(hit) = self.search(hay, pos, bol, groups.then_some(&mut locs)) else {
                break;
            };
            if hit.span.is_empty() {
                return Err(RewriteError::EmptyMatch);
            }
            pos = hit.span.end;
            hits.push(hit);
            match scan {
                Scan::First => break,
                Scan::All { renew_bol } => {
                    bol = renew_bol && matches!(hay.get(pos - 1), Some(b'\n' | b'\r'));
                }
            }
        }
        Ok(hits)
    }

    /// The first match at or after `pos`, `^` matching at `pos` itself only when `bol` says so
    /// (`regexec` on the rest of the text, with or without `REG_NOTBOL`). The crate decides
    /// that from the byte before `pos`; when the two disagree the rest is searched alone, or
    /// behind a stand-in byte that is not a line end.
    fn search(
        &self,
        hay: &[u8],
        pos: usize,
        bol: bool,
        mut locs: Option<&mut CaptureLocations>,
    ) -> Option<Hit> {
        let before = pos.checked_sub(1).and_then(|i| hay.get(i));
        let crate_bol = before.is_none() || (self.newline && before == Some(&b'\n'));
        let rest = hay.get(pos..)?;
        if bol == crate_bol {
            return self.read(hay, pos, 0, locs);
        }
        if bol {
            return self.read(rest, 0, pos, locs);
        }
        // A match that does not start at `pos` cannot have used `^` there: no copy needed.
        let hit = self.read(hay, pos, 0, locs.as_deref_mut())?;
        if hit.span.start > pos {
            return Some(hit);
        }
        let mut behind = Vec::with_capacity(rest.len() + 1);
        behind.push(b' ');
        behind.extend_from_slice(rest);
        // Offsets in `behind` are one past those in `rest`.
        self.read(&behind, 1, pos - 1, locs)
    }

    /// A match in `hay` from `start`, offsets shifted by `shift`.
    fn read(
        &self,
        hay: &[u8],
        start: usize,
        shift: usize,
        locs: Option<&mut CaptureLocations>,
    ) -> Option<Hit> {
        let moved = |(a, z): (usize, usize)| a + shift..z + shift;
        match locs {
            None => self.re.find_at(hay, start).map(|m| Hit {
                span: moved((m.start(), m.end())),
                groups: Vec::new(),
            }),
            Some(locs) => {
                let m = self.re.captures_read_at(locs, hay, start)?;
                Some(Hit {
                    span: moved((m.start(), m.end())),
                    groups: (0..locs.len()).map(|g| locs.get(g).map(moved)).collect(),
                })
            }
        }
    }
}

/// Characters the `regex` crate gives a meaning to, inside or outside brackets: escaped to
/// stand for themselves. Other printable ASCII goes as it is (escaping it is an error there).
const META: &[u8] = b"\\.+*?()|[]{}^$#&-~";

/// The POSIX character classes (glibc, C locale).
const CLASSES: &[&str] = &[
    "alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space",
    "upper", "xdigit",
];

/// `c` as a literal: its UTF-8 bytes, each matched as a byte.
fn push_literal(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    for &b in c.encode_utf8(&mut buf).as_bytes() {
        if META.contains(&b) {
            out.push('\\');
            out.push(char::from(b));
        } else if b.is_ascii_graphic() || b == b' ' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
}

/// A POSIX ERE in the `regex` crate's syntax (see the module notes).
pub(crate) fn translate(posix: &str, newline: bool) -> Result<String, String> {
    let mut t = Translator {
        out: String::with_capacity(posix.len() + 8),
        groups: Vec::new(),
        operand: None,
        repeated: false,
    };
    let mut rest = posix;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '\\' => {
                let e = rest.chars().next().ok_or("trailing backslash")?;
                rest = &rest[e.len_utf8()..];
                t.escape(e)?;
            }
            '[' => {
                let (set, used) = bracket(rest, newline)?;
                rest = &rest[used..];
                t.atom(&set);
            }
            '(' => {
                t.groups.push(t.out.len());
                t.anchor("(");
            }
            ')' => match t.groups.pop() {
                Some(start) => {
                    t.out.push(')');
                    t.operand = Some(start);
                    t.repeated = false;
                }
                None => t.literal(')'),
            },
            '|' | '^' | '$' => t.anchor(c.encode_utf8(&mut [0; 4])),
            '.' => t.atom("."),
            '*' | '+' | '?' => t.repeat(c.encode_utf8(&mut [0; 4]))?,
            '{' => {
                let (rep, used) = interval(rest)?;
                rest = &rest[used..];
                t.repeat(&rep)?;
            }
            _ => t.literal(c),
        }
    }
    if !t.groups.is_empty() {
        return Err("unmatched `(`".into());
    }
    Ok(t.out)
}

struct Translator {
    out: String,
    /// Where each open group starts in `out`.
    groups: Vec<usize>,
    /// Where the last thing a repetition may apply to starts in `out`.
    operand: Option<usize>,
    /// Whether that thing is already repeated.
    repeated: bool,
}

impl Translator {
    fn atom(&mut self, s: &str) {
        self.operand = Some(self.out.len());
        self.out.push_str(s);
        self.repeated = false;
    }

    fn literal(&mut self, c: char) {
        self.operand = Some(self.out.len());
        push_literal(&mut self.out, c);
        self.repeated = false;
    }

    /// Something a repetition cannot follow (glibc: "Invalid preceding regular expression").
    fn anchor(&mut self, s: &str) {
        self.out.push_str(s);
        self.operand = None;
        self.repeated = false;
    }

    fn repeat(&mut self, op: &str) -> Result<(), String> {
        let start = self
            .operand
            .ok_or_else(|| format!("`{op}` repeats nothing"))?;
        if self.repeated {
            self.out.insert_str(start, "(?:");
            self.out.push(')');
        }
        self.out.push_str(op);
        self.repeated = true;
        Ok(())
    }

    fn escape(&mut self, e: char) -> Result<(), String> {
        match e {
            '1'..='9' => return Err(format!("back-reference `\\{e}` is not supported")),
            'w' | 'W' | 's' | 'S' => self.atom(&format!("\\{e}")),
            'b' | 'B' => self.anchor(&format!("\\{e}")),
            '<' => self.anchor("\\b{start}"),
            '>' => self.anchor("\\b{end}"),
            '`' => self.anchor("\\A"),
            '\'' => self.anchor("\\z"),
            _ => self.literal(e),
        }
        Ok(())
    }
}

/// A bracket expression (`rest` follows its `[`): the crate's class and the bytes used.
fn bracket(rest: &str, newline: bool) -> Result<(String, usize), String> {
    let b = rest.as_bytes();
    let negated = b.first() == Some(&b'^');
    let mut i = usize::from(negated);
    let mut set = String::new();
    let mut first = true;
    loop {
        let c = *b.get(i).ok_or("unterminated `[`")?;
        if c == b']' && !first {
            i += 1;
            break;
        }
        first = false;
        if let Some(class) = rest[i..].strip_prefix("[:") {
            let end = class.find(":]").ok_or("unterminated `[:`")?;
            let name = &class[..end];
            if !CLASSES.contains(&name) {
                return Err(format!("unknown character class `{name}`"));
            }
            let _ = write!(set, "[:{name}:]");
            i += end + 4;
            continue;
        }
        let (lo, used) = element(&rest[i..])?;
        i += used;
        if b.get(i) == Some(&b'-') && b.get(i + 1).is_some_and(|&n| n != b']') {
            let (hi, used) = element(&rest[i + 1..])?;
            i += 1 + used;
            if !lo.is_ascii() || !hi.is_ascii() {
                return Err("ranges of non-ASCII characters are not supported".into());
            }
            if lo > hi {
                return Err(format!("invalid range `{lo}-{hi}`"));
            }
            push_literal(&mut set, lo);
            set.push('-');
            push_literal(&mut set, hi);
        } else {
            push_literal(&mut set, lo);
        }
    }
    // REG_NEWLINE: "a non-matching list does not match a newline".
    let nl = if negated && newline { "\\n" } else { "" };
    let hat = if negated { "^" } else { "" };
    Ok((format!("[{hat}{set}{nl}]"), i))
}

/// One character of a bracket expression, `[=c=]` and `[.c.]` included, and the bytes used.
fn element(s: &str) -> Result<(char, usize), String> {
    for (open, close) in [("[=", "=]"), ("[.", ".]")] {
        if let Some(inner) = s.strip_prefix(open) {
            let end = inner
                .find(close)
                .ok_or_else(|| format!("unterminated `{open}`"))?;
            let mut cs = inner[..end].chars();
            return match (cs.next(), cs.next()) {
                (Some(c), None) => Ok((c, end + 4)),
                _ => Err("multi-character collating elements are not supported".into()),
            };
        }
    }
    if s.starts_with("[:") {
        return Err("a character class cannot end a range".into());
    }
    let c = s.chars().next().ok_or("unterminated `[`")?;
    Ok((c, c.len_utf8()))
}

/// An interval (`rest` follows its `{`): the crate's form and the bytes used.
fn interval(rest: &str) -> Result<(String, usize), String> {
    let end = rest.find('}').ok_or("unterminated `{`")?;
    let body = &rest[..end];
    let (min, max) = match body.split_once(',') {
        Some((a, b)) => (a, Some(b)),
        None => (body, None),
    };
    let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if !digits(min) || !max.is_none_or(digits) || (min.is_empty() && max.is_none()) {
        return Err(format!("invalid interval `{{{body}}}`"));
    }
    let min = if min.is_empty() { "0" } else { min };
    let rep = match max {
        Some(max) => format!("{{{min},{max}}}"),
        None => format!("{{{min}}}"),
    };
    Ok((rep, end + 1))
}

#[cfg(test)]
#[path = "posix_tests.rs"]
mod tests;
