//! `;name=value` parameter lists of header values (RFC 3261 §7.3.1 generic-param, with LWS around
//! `;` and `=`) and of URIs (RFC 3261 §19.1.1 uri-parameters, no LWS).

use crate::error::{ParseError, Result};
use crate::scan::{
    Cursor, HEADER_VALUE, PARAMCHAR, PARAMCHAR_ESCAPED, TOKEN, is_lws, is_param_char, is_token,
    span,
};
use crate::uri::unescape;

/// One parameter. `value` has the quotes of a quoted-string removed (escapes kept, see
/// [`crate::unquote`]); `quoted` says it had them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a str,
    pub value: Option<&'a str>,
    pub quoted: bool,
}

/// Which grammar a parameter list follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Header,
    Uri,
}

/// A validated parameter list, kept as the original text and iterated on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    text: &'a str,
    uri: bool,
}

fn is_header_value_char(c: u8) -> bool {
    HEADER_VALUE[c as usize]
}

impl<'a> Params<'a> {
    /// Header parameters: `text` is whatever follows the value proper, e.g. `;tag=1 ; lr`.
    #[inline]
    pub(crate) fn header(text: &'a str) -> Result<Params<'a>> {
        if header_params_valid(text.as_bytes()) {
            Ok(Params { text, uri: false })
        } else {
            Err(Params { text, uri: false }.first_error())
        }
    }

    /// URI parameters: `text` starts at the first `;` and ends before `?`.
    #[inline]
    pub(crate) fn uri(text: &'a str) -> Result<Params<'a>> {
        if uri_params_valid(text.as_bytes()) {
            Ok(Params { text, uri: true })
        } else {
            Err(ParseError::malformed("Bad URI parameters"))
        }
    }

    /// A list already validated by its parser (e.g. kept as offsets in a [`crate::Uri`]).
    pub(crate) fn validated(text: &'a str, uri: bool) -> Params<'a> {
        Params { text, uri }
    }

    fn flavor(&self) -> Flavor {
        if self.uri {
            Flavor::Uri
        } else {
            Flavor::Header
        }
    }

    /// The error the iterator reports for an invalid list (for its specific reason).
    fn first_error(&self) -> ParseError {
        self.iter()
            .find_map(|p| p.err())
            .unwrap_or(ParseError::malformed("Bad parameter list"))
    }

    /// The parameter text as written (starting at the first `;`).
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.trim().is_empty()
    }

    /// All parameters in order.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            c: Cursor::new(self.text),
            flavor: self.flavor(),
            done: false,
        }
    }

    /// The first parameter named `name` (case-insensitive). `Some(None)` for a flag parameter.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        let mut i = 0;
        while let Some((p, next)) = self.param_at(i) {
            if p.name.eq_ignore_ascii_case(name) || (self.uri && escaped_name_matches(p.name, name))
            {
                return Some(p.value);
            }
            i = next;
        }
        None
    }

    /// The parameter starting at byte `i` and where it ends. Reads as [`ParamIter`] does, minus
    /// the error paths a validated list never takes (URI lists hold no white space, so skipping
    /// it is harmless there).
    #[inline]
    fn param_at(&self, i: usize) -> Option<(Param<'a>, usize)> {
        let (b, uri) = (self.text.as_bytes(), self.uri);
        let semi = skip_lws(b, i);
        if b.get(semi) != Some(&b';') {
            return None;
        }
        let start = skip_lws(b, semi + 1);
        // `%` is a parameter character in URIs (escapes), and a token character.
        let end = span(b, start, if uri { &PARAMCHAR_ESCAPED } else { &TOKEN });
        let name = self.text.get(start..end)?;
        let eq = skip_lws(b, end);
        if b.get(eq) != Some(&b'=') {
            let p = Param {
                name,
                value: None,
                quoted: false,
            };
            return Some((p, end));
        }
        let vs = skip_lws(b, eq + 1);
        if !uri && b.get(vs) == Some(&b'"') {
            let ve = quoted_end(b, vs + 1)?;
            let p = Param {
                name,
                value: self.text.get(vs + 1..ve - 1),
                quoted: true,
            };
            return Some((p, ve));
        }
        let ve = span(
            b,
            vs,
            if uri {
                &PARAMCHAR_ESCAPED
            } else {
                &HEADER_VALUE
            },
        );
        let p = Param {
            name,
            value: self.text.get(vs..ve),
            quoted: false,
        };
        Some((p, ve))
    }

    /// Whether a parameter named `name` is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

#[inline]
pub(crate) fn skip_lws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|&c| is_lws(c)) {
        i += 1;
    }
    i
}

pub(crate) fn is_hex(c: Option<&u8>) -> bool {
    c.is_some_and(u8::is_ascii_hexdigit)
}

/// Index just past the closing quote of a quoted string whose inside starts at `i`, with the
/// same rules as [`crate::scan::Cursor::quoted_string`].
fn quoted_end(b: &[u8], mut i: usize) -> Option<usize> {
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => return Some(i + 1),
            b'\\' => match b.get(i + 1) {
                Some(&n) if n != b'\r' && n != b'\n' && n.is_ascii() => i += 2,
                _ => return None,
            },
            _ => i += 1,
        }
    }
    None
}

/// One pass over header parameters: `*(LWS ";" LWS token [LWS "=" LWS (token-ish | quoted)]) LWS`.
#[inline]
fn header_params_valid(b: &[u8]) -> bool {
    header_params_end(b, 0).is_some_and(|e| skip_lws(b, e) == b.len())
}

/// Scans header parameters from `i`: as many `LWS ";" LWS name [LWS "=" LWS value]` as follow.
/// Returns the end of the last one (before any white space after it; `i` when there is none), or
/// `None` for a parameter without a name or with an empty or unterminated value. The caller
/// decides whether what follows may end the list (the end of the value, or a `,`).
#[inline]
pub(crate) fn header_params_end(b: &[u8], end: usize) -> Option<usize> {
    header_params_scan(b, end, b"").map(|(end, _)| end)
}

/// [`header_params_end`] that also picks out the value of the first parameter named `want`
/// (ASCII case ignored, not empty) as `Params::get(want).flatten()` reads it — quotes removed,
/// `None` for a flag — so a reader wanting one parameter (a tag, a branch) need not walk the
/// list again.
#[inline]
pub(crate) fn header_params_scan(
    b: &[u8],
    mut end: usize,
    want: &[u8],
) -> Option<(usize, Option<std::ops::Range<usize>>)> {
    // `Some(value)` once a parameter named `want` has been read.
    let mut found: Option<Option<std::ops::Range<usize>>> = None;
    loop {
        let semi = skip_lws(b, end);
        if b.get(semi) != Some(&b';') {
            return Some((end, found.flatten()));
        }
        let start = skip_lws(b, semi + 1);
        end = span(b, start, &TOKEN);
        if end == start {
            return None;
        }
        let wanted = found.is_none()
            && end - start == want.len()
            && b.get(start..end)
                .is_some_and(|n| n.eq_ignore_ascii_case(want));
        let eq = skip_lws(b, end);
        if b.get(eq) == Some(&b'=') {
            let vs = skip_lws(b, eq + 1);
            let quoted = b.get(vs) == Some(&b'"');
            end = if quoted {
                quoted_end(b, vs + 1)?
            } else {
                span(b, vs, &HEADER_VALUE)
            };
            if end == vs {
                return None;
            }
            if wanted {
                found = Some(Some(if quoted { vs + 1..end - 1 } else { vs..end }));
            }
        } else if wanted {
            found = Some(None);
        }
    }
}

/// One pass over URI parameters: `*(";" pname ["=" pvalue])`, paramchar or `%HH` (RFC 3261 §25.1).
#[inline]
fn uri_params_valid(b: &[u8]) -> bool {
    uri_params_end(b, 0) == Some(b.len())
}

/// Scans URI parameters from `i`: as many `";" pname ["=" pvalue]` as follow. Returns where they
/// end — the first byte that neither belongs to a parameter nor starts another — or `None` for
/// an empty parameter or a bad escape. Also the parameter pass of the one-pass URI scanner.
#[inline]
pub(crate) fn uri_params_end(b: &[u8], mut i: usize) -> Option<usize> {
    while b.get(i) == Some(&b';') {
        i += 1;
        let start = i;
        let mut value = false;
        while let Some(&c) = b.get(i) {
            if PARAMCHAR[c as usize] {
                i += 1;
                continue;
            }
            match c {
                b'=' if !value && i > start => {
                    value = true;
                    i += 1;
                }
                b'%' if is_hex(b.get(i + 1)) && is_hex(b.get(i + 2)) => i += 3,
                b'%' => return None,
                _ => break,
            }
        }
        if i == start {
            return None;
        }
    }
    Some(i)
}

/// URI parameter names may be %-escaped (`%6C%72` is `lr`, RFC 3261 §19.1.4).
fn escaped_name_matches(written: &str, wanted: &str) -> bool {
    written.contains('%') && unescape(written).eq_ignore_ascii_case(wanted.as_bytes())
}

/// Iterator over a [`Params`] list. Yields an error once and stops on bad syntax.
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    c: Cursor<'a>,
    flavor: Flavor,
    done: bool,
}

impl<'a> ParamIter<'a> {
    fn lws(&mut self) {
        if self.flavor == Flavor::Header {
            self.c.skip_lws();
        }
    }

    fn next_param(&mut self) -> Result<Option<Param<'a>>> {
        self.lws();
        if self.c.eof() {
            return Ok(None);
        }
        if !self.c.eat(b';') {
            return Err(ParseError::malformed("Bad parameter list"));
        }
        self.lws();
        let name = match self.flavor {
            Flavor::Header => self.c.take_while(is_token),
            Flavor::Uri => self.c.take_while(is_param_char),
        };
        if name.is_empty() {
            return Err(ParseError::malformed("Empty parameter name"));
        }
        self.lws();
        if !self.c.eat(b'=') {
            return Ok(Some(Param {
                name,
                value: None,
                quoted: false,
            }));
        }
        self.lws();
        if self.flavor == Flavor::Header && self.c.peek() == Some(b'"') {
            let v = self
                .c
                .quoted_string()
                .ok_or(ParseError::malformed("Unterminated quote"))?;
            return Ok(Some(Param {
                name,
                value: Some(v),
                quoted: true,
            }));
        }
        let value = match self.flavor {
            Flavor::Header => self.c.take_while(is_header_value_char),
            Flavor::Uri => self.c.take_while(is_param_char),
        };
        if value.is_empty() && self.flavor == Flavor::Header {
            return Err(ParseError::malformed("Empty parameter value"));
        }
        Ok(Some(Param {
            name,
            value: Some(value),
            quoted: false,
        }))
    }
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Result<Param<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_param() {
            Ok(Some(p)) => Some(Ok(p)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_value_table_is_the_rfc_class() {
        let rule = |c: u8| {
            !matches!(c, b';' | b',' | b'"' | b'<' | b'>') && !is_lws(c) && c >= 0x20 && c != 0x7f
        };
        for c in 0..=255u8 {
            assert_eq!(is_header_value_char(c), rule(c), "{c:#x}");
        }
    }

    proptest! {
        /// `get` finds what a search through the iterator finds, on any list the validators
        /// accept.
        #[test]
        fn get_agrees_with_the_iterator(
            text in "( ?;\t?[a-cA-C%+.l]{0,3}( ?= ?([a-z0-9%:.]{0,4}|\"[a-z ;,\\\\\"]{0,4}\"))?){0,4} ?",
            name in "[a-cA-C]{1,2}|%6[cC]%72|lr",
        ) {
            let lists = [Params::header(&text), Params::uri(&text)];
            for p in lists.into_iter().flatten() {
                let uri = p.flavor() == Flavor::Uri;
                let want = p
                    .iter()
                    .flatten()
                    .find(|q| q.name.eq_ignore_ascii_case(&name) || (uri && escaped_name_matches(q.name, &name)))
                    .map(|q| q.value);
                prop_assert_eq!(p.get(&name), want);
            }
        }
    }

    #[test]
    fn header_params_with_lws() {
        let p = Params::header(" ;   tag    = 1918181833n").unwrap();
        assert_eq!(p.get("TAG"), Some(Some("1918181833n")));
        let p =
            Params::header(";\r\n  branch=\r\n z9hG4bK30239 ; rport; received=[2001:db8::9:255]")
                .unwrap();
        assert_eq!(p.get("branch"), Some(Some("z9hG4bK30239")));
        assert_eq!(p.get("rport"), Some(None));
        assert_eq!(p.get("received"), Some(Some("[2001:db8::9:255]")));
        assert_eq!(p.get("missing"), None);
        let q = Params::header(r#";+sip.instance="<urn:uuid:1>";q=0.5"#).unwrap();
        let first = q.iter().next().unwrap().unwrap();
        assert_eq!(
            first,
            Param {
                name: "+sip.instance",
                value: Some("<urn:uuid:1>"),
                quoted: true
            }
        );
    }

    #[test]
    fn bad_header_params() {
        assert!(Params::header(";;").is_err());
        assert!(Params::header(";;;;").is_err());
        assert!(Params::header(";a=\"x").is_err());
        assert!(Params::header(";a=").is_err());
        assert!(Params::header("garbage").is_err());
        assert!(Params::header(";a b").is_err());
    }

    #[test]
    fn uri_params() {
        let p = Params::uri(";lr;unknownwith=value;unknown-no-value;%6C%72").unwrap();
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.get("unknownwith"), Some(Some("value")));
        assert!(p.contains("%6C%72"));
        let escaped = Params::uri(";%6C%72;n%61me=v").unwrap();
        assert!(escaped.contains("lr"));
        assert_eq!(escaped.get("name"), Some(Some("v")));
        assert!(Params::uri("; lr").is_err());
    }
}
