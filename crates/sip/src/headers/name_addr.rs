//! name-addr / addr-spec values with header parameters: From, To, Contact, Route, Record-Route,
//! Path (RFC 3261 §20.10, §20.20, §20.39, §20.30, §20.34, §25.1; RFC 3327).

use std::borrow::Cow;

use crate::error::{ParseError, Result};
use crate::params::{Params, header_params_scan};
use crate::scan::{Cursor, find_byte, is_lws, is_token, trim_lws, unquote};
use crate::uri::Uri;

/// One address with optional display name and header parameters.
///
/// Parameters after `>` belong to the header (`tag`, `expires`, `q`); parameters inside `<...>`
/// belong to the URI. In the addr-spec form (no `<>`), everything after the first `;` is a header
/// parameter (RFC 3261 §20.10), so the URI then has no parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    raw: &'a str,
    display: Option<&'a str>,
    display_quoted: bool,
    uri: Uri<'a>,
    bracketed: bool,
    params: Params<'a>,
    /// `params.get("tag").flatten()`, picked out while the parameters are scanned.
    tag: Option<&'a str>,
}

impl<'a> NameAddr<'a> {
    /// Parses one value (already split from its list).
    #[inline]
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>> {
        let raw = trim_lws(s);
        match NameAddr::scan(raw) {
            Some((a, n)) if n == raw.len() => Ok(a),
            _ => NameAddr::parse_general(raw),
        }
    }

    /// One pass over the name-addr or addr-spec that `s` starts with, up to the end of its last
    /// header parameter: the display name, then the URI by [`Uri::scan_sip`], then the
    /// parameters, each byte read once. Returns the address and where it ends; the caller
    /// decides whether what follows may end it (the end of the value, or a `,` in a list).
    ///
    /// `None` for anything the URI scanner leaves to the general parser and for every error;
    /// `parse_general(&s[..n])` returns exactly what this returns (asserted in debug builds).
    #[inline]
    pub(crate) fn scan(s: &'a str) -> Option<(NameAddr<'a>, usize)> {
        let mut c = Cursor::new(s);
        let (display, display_quoted, bracketed) = display_part(&mut c).ok()?;
        let rest = c.rest();
        let (uri, n) = Uri::scan_sip(rest, bracketed)?;
        let stop = rest.as_bytes().get(n).copied();
        if bracketed {
            if stop != Some(b'>') {
                return None;
            }
            c.advance(n + 1);
        } else {
            if !stop.is_none_or(|b| b == b';' || b == b',' || is_lws(b)) {
                return None;
            }
            c.advance(n);
        }
        let params_start = c.pos();
        let (end, tag) = header_params_scan(s.as_bytes(), params_start, b"tag")?;
        let a = NameAddr {
            raw: s.get(..end)?,
            display,
            display_quoted,
            uri,
            bracketed,
            params: Params::validated(s.get(params_start..end)?, false),
            tag: match tag {
                Some(r) => Some(s.get(r)?),
                None => None,
            },
        };
        debug_assert_eq!(
            NameAddr::parse_general(a.raw),
            Ok(a),
            "one-pass scan of {:?}",
            a.raw
        );
        Some((a, end))
    }

    /// The reference parser, for a value with no white space around it: every form, and the
    /// reason for every error.
    fn parse_general(raw: &'a str) -> Result<NameAddr<'a>> {
        let mut c = Cursor::new(raw);
        let (display, display_quoted, bracketed) = display_part(&mut c)?;
        let uri_text = if bracketed {
            let rest = c.rest();
            let close = find_byte(b'>', rest.as_bytes())
                .ok_or(ParseError::malformed("Missing > in address"))?;
            c.advance(close + 1);
            rest.get(..close).unwrap_or("")
        } else {
            let u = c.take_while(|b| b != b';' && !is_lws(b));
            if u.contains('?') || u.contains(',') {
                return Err(ParseError::malformed("URI with ? or , must be in <>"));
            }
            u
        };
        let uri = Uri::parse(uri_text)?;
        let params = Params::header(c.rest())?;
        Ok(NameAddr {
            raw,
            display,
            display_quoted,
            uri,
            bracketed,
            params,
            tag: params.get("tag").flatten(),
        })
    }

    /// The value as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// The display name without quotes and escapes.
    pub fn display_name(&self) -> Option<Cow<'a, str>> {
        self.display.map(|d| {
            if self.display_quoted {
                unquote(d)
            } else {
                Cow::Borrowed(d)
            }
        })
    }

    /// The display name as written (inside the quotes, escapes kept).
    pub fn display_name_raw(&self) -> Option<&'a str> {
        self.display
    }

    pub fn uri(&self) -> &Uri<'a> {
        &self.uri
    }

    /// Whether the URI was written inside `<>`.
    pub fn is_bracketed(&self) -> bool {
        self.bracketed
    }

    /// Header parameters (after `>`, or after the first `;` of an addr-spec).
    pub fn params(&self) -> Params<'a> {
        self.params
    }

    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params.get(name)
    }

    /// The `tag` parameter of From/To (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&'a str> {
        self.tag
    }

    /// Contact `expires` parameter; `None` when absent or not a number in range.
    pub fn expires(&self) -> Option<u32> {
        self.params
            .get("expires")
            .flatten()
            .and_then(crate::scan::parse_u32)
    }

    /// Contact `q` parameter as written (`0.5`).
    pub fn q(&self) -> Option<&'a str> {
        self.params.get("q").flatten()
    }

    /// RFC 5626 `+sip.instance`, without its quotes.
    pub fn instance(&self) -> Option<&'a str> {
        self.params.get("+sip.instance").flatten()
    }

    /// RFC 5626 `reg-id`.
    pub fn reg_id(&self) -> Option<u32> {
        self.params
            .get("reg-id")
            .flatten()
            .and_then(crate::scan::parse_u32)
    }
}

/// The display name, if any, and whether the URI is in `<>`; leaves the cursor at the URI (just
/// past the `<`). Without `<` it is an addr-spec and the cursor does not move.
#[inline]
fn display_part<'a>(c: &mut Cursor<'a>) -> Result<(Option<&'a str>, bool, bool)> {
    // The usual case, and what the token read below would conclude.
    if c.eat(b'<') {
        return Ok((None, false, true));
    }
    if c.peek() == Some(b'"') {
        let display = c
            .quoted_string()
            .ok_or(ParseError::malformed("Unterminated quote"))?;
        c.skip_lws();
        if !c.eat(b'<') {
            return Err(ParseError::malformed("Missing < after display name"));
        }
        return Ok((Some(display), true, true));
    }
    let save = c.clone();
    let text = c.take_while(|b| is_token(b) || is_lws(b));
    if c.eat(b'<') {
        let t = trim_lws(text);
        return Ok(((!t.is_empty()).then_some(t), false, true));
    }
    *c = save;
    Ok((None, false, false))
}

/// A Contact header set: either `*` (REGISTER only, RFC 3261 §10.2.2) or a list of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts<'a> {
    Star,
    List(Vec<NameAddr<'a>>),
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::uri::tests::uri_like;
    use proptest::prelude::*;

    /// Text shaped like a name-addr or addr-spec: display names quoted, unterminated or made
    /// of tokens, `<>` present, missing or spaced, header parameters with white space, quoted
    /// values and mistakes.
    pub(crate) fn name_addr_like() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                4 => Just(""),
                1 => Just("\"Al \\\"x\\\" ,ice\" "),
                1 => Just("\"open "),
                2 => Just("Bob "),
                1 => Just("A B\t"),
                1 => Just("tok"),
            ],
            prop_oneof![6 => Just("<"), 3 => Just(""), 1 => Just("< ")],
            uri_like(),
            prop_oneof![6 => Just(">"), 2 => Just(""), 1 => Just(" >"), 1 => Just(">>")],
            prop_oneof![
                5 => "(;[a-z]{1,5}(=[a-z0-9.]{1,5})?){0,3}",
                3 => "( ?; ?[a-z+.-]{0,5}( ?= ?([a-z0-9.]{0,5}|\"[a-z ,;<>]{0,5}\"))?){0,3}",
            ],
            prop_oneof![6 => Just(String::new()), 1 => "[ \t;>\"]{1,2}"],
        )
            .prop_map(|(display, open, uri, close, params, tail)| {
                format!("{display}{open}{uri}{close}{params}{tail}")
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The one-pass scan only ever stands in for the general parser: same address, same
        /// error, and on any prefix it accepts, the same parts.
        #[test]
        fn one_pass_scan_agrees_with_the_general_parser(s in name_addr_like()) {
            prop_assert_eq!(NameAddr::parse(&s), NameAddr::parse_general(trim_lws(&s)));
            let raw = trim_lws(&s);
            if let Some((a, n)) = NameAddr::scan(raw) {
                prop_assert_eq!(NameAddr::parse_general(&raw[..n]), Ok(a));
            }
        }
    }

    #[test]
    fn forms() {
        let a = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(a.display_name().unwrap(), r#"J Rosenberg \""#);
        assert_eq!(a.tag(), Some("98asjd8"));
        assert_eq!(a.uri().user(), Some("jdrosen"));

        let a =
            NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert!(!a.is_bracketed());
        assert_eq!(a.tag(), Some("1918181833n"));

        let a = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(a.display_name().unwrap(), "caller");

        let a = NameAddr::parse("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=_1")
            .unwrap();
        assert_eq!(a.display_name().unwrap(), "token1~` token2'+_ token3*%!.-");
    }

    #[test]
    fn contact_params_inside_and_outside() {
        let outside = NameAddr::parse("sip:user@host5.example.net;unknownparam").unwrap();
        assert!(outside.params().contains("unknownparam"));
        assert!(outside.uri().params().is_empty());
        let inside = NameAddr::parse("<sip:user@host5.example.net;unknownparam>").unwrap();
        assert!(inside.uri().params().contains("unknownparam"));
        assert!(inside.params().is_empty());
        let c = NameAddr::parse(
            r#"<sip:a@192.0.2.1:5060>;expires=3600;q=0.7;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>";reg-id=1"#,
        )
        .unwrap();
        assert_eq!(c.expires(), Some(3600));
        assert_eq!(c.q(), Some("0.7"));
        assert_eq!(
            c.instance(),
            Some("<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>")
        );
        assert_eq!(c.reg_id(), Some(1));
    }

    #[test]
    fn rejects() {
        for s in [
            r#""Mr. J. User <sip:j.user@example.com>"#,
            "< sip:t.watson@example.org >",
            "Bell, Alexander <sip:a.g.bell@example.com>",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            r#""Joe" <sip:joe@example.org>;;;;"#,
            "<sip:a@b",
            "",
        ] {
            assert!(NameAddr::parse(s).is_err(), "{s:?}");
        }
    }
}
