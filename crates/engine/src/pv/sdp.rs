//! OpenSIPS 4.0's SDP line variables (`$sdp.line`, `$sdp.session`, `$sdp.stream`,
//! `$sdp.stream.idx`, sdp_ops.c): the selector syntax, parsed once when the script is compiled,
//! and the line model they read and edit. Message glue (which body part is the SDP, storing an
//! edited one) is in `sdp_body.rs`.
//!
//! A selector is up to three `/`-separated chunks, each a prefix and an optional `[index]`:
//! a stream (`$sdp.stream` only: `audio[1]` is the second `m=audio…` description), a line
//! (`a=rtpmap[2]`: the third line starting `a=rtpmap`, case-insensitively) and a token (a
//! whitespace-separated word of that line, by prefix and index). `\/` and `\\` escape.

use std::borrow::Cow;

/// Which variable a selector belongs to: where lines are looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpScope {
    /// `$sdp.line`: the whole body.
    Body,
    /// `$sdp.session`: the lines before the first `m=`.
    Session,
    /// `$sdp.stream` / `$sdp.stream.idx`: one media description, its `m=` line first.
    Stream,
}

/// One chunk of a selector: a prefix and which match of it (0 = the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<I> {
    pub prefix: String,
    pub idx: I,
}

/// An index as written: a number, or a PV read at run time (`[$var(i)]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawIdx {
    At(i64),
    Pv(cfg::pv::PvSpec),
}

/// A parsed selector. `stream` is set for the stream scope only; `token` when a token is
/// selected (even with an empty prefix: `[3]/[1]` is the second word of line 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector<I> {
    pub scope: SdpScope,
    pub stream: Option<Chunk<I>>,
    pub line: Chunk<I>,
    pub token: Option<Chunk<I>>,
}

impl<I> Selector<I> {
    /// The same selector with every index converted (a PV compiled, or read at run time).
    pub fn try_map<J, E>(self, mut f: impl FnMut(I) -> Result<J, E>) -> Result<Selector<J>, E> {
        let mut chunk = |c: Chunk<I>| {
            Ok(Chunk {
                prefix: c.prefix,
                idx: f(c.idx)?,
            })
        };
        Ok(Selector {
            scope: self.scope,
            stream: self.stream.map(&mut chunk).transpose()?,
            line: chunk(self.line)?,
            token: self.token.map(&mut chunk).transpose()?,
        })
    }
}

/// Parses `[N]` / `[$pv]` at the start of `s` (after the `[`); returns the index and the rest
/// after `]`. `[]` is index 0, as OpenSIPS' strtol reading makes it.
fn parse_index(s: &str) -> Result<(RawIdx, &str), String> {
    let t = s.trim_start();
    let (idx, rest) = if t.starts_with('$') {
        let n = cfg::pv::scan(t).ok_or_else(|| format!("bad index variable in `[{s}`"))?;
        let spec = cfg::pv::parse(&t[..n])?;
        (RawIdx::Pv(spec), &t[n..])
    } else {
        let end = t
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && matches!(c, '-' | '+'))))
            .map_or(t.len(), |(i, _)| i);
        let n = match &t[..end] {
            "" => 0,
            digits => digits
                .parse::<i64>()
                .map_err(|_| format!("bad index `{digits}`"))?,
        };
        if n < 0 {
            return Err(format!("negative index `{n}`"));
        }
        (RawIdx::At(n), &t[end..])
    };
    let rest = rest
        .trim_start()
        .strip_prefix(']')
        .ok_or_else(|| format!("missing `]` in `[{s}`"))?;
    Ok((idx, rest))
}

/// Parses the name of `$sdp.line(...)`, `$sdp.session(...)` or `$sdp.stream(...)` the way
/// OpenSIPS' pv_parse_sdp_line_name / pv_parse_sdp_stream_name do: chunks end at `/` or at an
/// index (anything between the index's `]` and the next `/` is ignored); leading blanks of a
/// prefix are dropped, trailing ones kept; chunks beyond the last one are ignored.
pub fn parse_selector(scope: SdpScope, text: &str) -> Result<Selector<RawIdx>, String> {
    if text.trim().is_empty() {
        return Err("an SDP selector is needed, e.g. `a=rtpmap[1]`".into());
    }
    if text.starts_with('$') {
        return Err("the SDP selector cannot be a variable".into());
    }
    if text.starts_with('@') {
        return Err("named SDP holders (`@name`) are not supported".into());
    }
    let slots = if scope == SdpScope::Stream { 3 } else { 2 };
    let mut chunks: Vec<Chunk<RawIdx>> = Vec::new();
    let mut prefix = String::new();
    let mut rest = text;
    let mut ended_by_slash = false;
    while chunks.len() < slots {
        let mut chars = rest.char_indices();
        let mut stop = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match rest[i + 1..].chars().next() {
                    Some(e @ ('\\' | '/')) => {
                        prefix.push(e);
                        chars.next();
                    }
                    _ => prefix.push('\\'),
                },
                '/' | '[' => {
                    stop = Some((i, c));
                    break;
                }
                c => prefix.push(c),
            }
        }
        let name = prefix.trim_start().to_owned();
        prefix.clear();
        match stop {
            None => {
                if !rest.is_empty() || ended_by_slash {
                    chunks.push(Chunk {
                        prefix: name,
                        idx: RawIdx::At(0),
                    });
                }
                break;
            }
            Some((i, '/')) => {
                chunks.push(Chunk {
                    prefix: name,
                    idx: RawIdx::At(0),
                });
                rest = &rest[i + 1..];
                ended_by_slash = true;
            }
            Some((i, _)) => {
                let (idx, after) = parse_index(&rest[i + 1..])?;
                chunks.push(Chunk { prefix: name, idx });
                match after.find('/') {
                    Some(s) => {
                        rest = &after[s + 1..];
                        ended_by_slash = true;
                    }
                    None => break,
                }
            }
        }
    }
    let mut it = chunks.into_iter();
    let first = || Chunk {
        prefix: String::new(),
        idx: RawIdx::At(0),
    };
    let stream = if scope == SdpScope::Stream {
        Some(it.next().unwrap_or_else(first))
    } else {
        None
    };
    Ok(Selector {
        scope,
        stream,
        line: it.next().unwrap_or_else(first),
        token: it.next(),
    })
}

/// An SDP body cut into lines (separators excluded) on the separator its first line uses
/// (`\r\n`, `\n` or `\r`), as OpenSIPS does; `None` when no line ends at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines<'a> {
    pub sep: &'static str,
    pub lines: Vec<Cow<'a, str>>,
}

impl<'a> Lines<'a> {
    pub fn parse(sdp: &'a str) -> Option<Lines<'a>> {
        let first = sdp.find(['\r', '\n'])?;
        let sep = if sdp[first..].starts_with("\r\n") {
            "\r\n"
        } else if sdp[first..].starts_with('\r') {
            "\r"
        } else {
            "\n"
        };
        let mut lines: Vec<Cow<'a, str>> = sdp.split(sep).map(Cow::Borrowed).collect();
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        Some(Lines { sep, lines })
    }

    /// The body again, every line ended by the separator (OpenSIPS normalizes a missing last
    /// one the same way).
    pub fn render(&self) -> String {
        let len = self.lines.iter().map(|l| l.len() + self.sep.len()).sum();
        let mut out = String::with_capacity(len);
        for l in &self.lines {
            out.push_str(l);
            out.push_str(self.sep);
        }
        out
    }

    fn is_m(&self, i: usize) -> bool {
        self.lines
            .get(i)
            .is_some_and(|l| l.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("m=")))
    }

    /// `[from, until)` of the scope a selector searches; `None` when its stream is missing.
    fn range(&self, sel: &Selector<i64>) -> Option<(usize, usize)> {
        let n = self.lines.len();
        let next_m = |from: usize| (from..n).find(|&i| self.is_m(i)).unwrap_or(n);
        match (sel.scope, &sel.stream) {
            (SdpScope::Session, _) => Some((0, next_m(0))),
            (SdpScope::Stream, Some(s)) => {
                if s.idx < 0 {
                    return None;
                }
                let mut left = s.idx;
                let start = (0..n).filter(|&i| self.is_m(i)).find(|&i| {
                    let kind = self.lines.get(i).and_then(|l| l.get(2..)).unwrap_or("");
                    if !starts_with_ci(kind, &s.prefix) {
                        return false;
                    }
                    left -= 1;
                    left < 0
                })?;
                Some((start, next_m(start + 1)))
            }
            _ => Some((0, n)),
        }
    }

    /// The line a selector names. `insert` allows the position just past the scope's last
    /// line (appending to it); OpenSIPS' `_sdp_ops_find_line` bounds otherwise.
    pub fn find(&self, sel: &Selector<i64>, insert: bool) -> Option<usize> {
        let (from, until) = self.range(sel)?;
        let idx = usize::try_from(sel.line.idx).ok()?;
        let at = from.checked_add(idx)?;
        if at > until || (at == until && (!insert || sel.token.is_some())) {
            return None;
        }
        if sel.line.prefix.is_empty() {
            return Some(at);
        }
        (from..until)
            .filter(|&i| {
                self.lines
                    .get(i)
                    .is_some_and(|l| starts_with_ci(l, &sel.line.prefix))
            })
            .nth(idx)
    }
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The byte range of the token a chunk selects in `line`: whitespace-separated words, matched
/// by case-insensitive prefix, the `idx`-th match.
pub fn find_token(line: &str, token: &Chunk<i64>) -> Option<(usize, usize)> {
    let idx = usize::try_from(token.idx).ok()?;
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in line
        .char_indices()
        .chain(std::iter::once((line.len(), ' ')))
    {
        match (is_ws(c), start) {
            (true, Some(s)) => {
                words.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    words
        .into_iter()
        .filter(|&(s, e)| starts_with_ci(line.get(s..e).unwrap_or(""), &token.prefix))
        .nth(idx)
}

/// What a read yields: the selected line, or the selected token of it.
pub fn read<'a>(lines: &'a Lines<'_>, sel: &Selector<i64>) -> Option<&'a str> {
    let line = lines.lines.get(lines.find(sel, false)?)?;
    match &sel.token {
        None => Some(line),
        Some(t) => {
            let (s, e) = find_token(line, t)?;
            line.get(s..e)
        }
    }
}

/// How an assignment changes the selected line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOp {
    /// Replace it (NULL: delete it).
    Set,
    /// `[insert]`: a new line before it.
    Insert,
    /// `[insertAfter]`: a new line before the next match (OpenSIPS: the index plus one).
    InsertAfter,
}

/// Why an SDP line edit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("no SDP line matches the selector")]
    NoLine,
    #[error("no token of the line matches the selector")]
    NoToken,
    #[error("a NULL value cannot be inserted")]
    InsertNull,
}

/// A value as OpenSIPS stores it in a line: one trailing `\r\n`, `\n` or `\r` dropped.
fn trim_line_end(v: &str) -> &str {
    v.strip_suffix("\r\n")
        .or_else(|| v.strip_suffix('\n'))
        .or_else(|| v.strip_suffix('\r'))
        .unwrap_or(v)
}

/// Applies one assignment. A token write keeps the token's matched prefix and replaces the
/// rest of it (`a=fmtp:101/0-` = `"0-16"`); NULL deletes the line or the token.
pub fn edit(
    lines: &mut Lines<'_>,
    sel: &Selector<i64>,
    op: LineOp,
    value: Option<&str>,
) -> Result<(), EditError> {
    if let Some(tok) = &sel.token {
        let at = lines.find(sel, false).ok_or(EditError::NoLine)?;
        let line = lines.lines.get(at).ok_or(EditError::NoLine)?;
        let (s, e) = find_token(line, tok).ok_or(EditError::NoToken)?;
        let new = match value {
            Some(v) => {
                let keep = line.get(..s + tok.prefix.len()).unwrap_or("");
                format!("{keep}{v}{}", line.get(e..).unwrap_or(""))
            }
            None => {
                let rest = line.get(e..).unwrap_or("").trim_start_matches(is_ws);
                let head = line.get(..s).unwrap_or("");
                let head = if rest.is_empty() {
                    head.trim_end_matches(is_ws)
                } else {
                    head
                };
                format!("{head}{rest}")
            }
        };
        if let Some(l) = lines.lines.get_mut(at) {
            *l = Cow::Owned(new);
        }
        return Ok(());
    }
    match (op, value) {
        (LineOp::Set, None) => {
            let at = lines.find(sel, false).ok_or(EditError::NoLine)?;
            lines.lines.remove(at);
        }
        (LineOp::Set, Some(v)) => {
            let at = lines.find(sel, false).ok_or(EditError::NoLine)?;
            if let Some(l) = lines.lines.get_mut(at) {
                *l = Cow::Owned(trim_line_end(v).to_owned());
            }
        }
        (_, None) => return Err(EditError::InsertNull),
        (LineOp::Insert | LineOp::InsertAfter, Some(v)) => {
            let mut at_sel = sel.clone();
            if op == LineOp::InsertAfter {
                at_sel.line.idx = at_sel.line.idx.saturating_add(1);
            }
            let at = lines.find(&at_sel, true).ok_or(EditError::NoLine)?;
            lines
                .lines
                .insert(at, Cow::Owned(trim_line_end(v).to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "sdp_tests.rs"]
mod tests;
