//! name-addr / addr-spec values with header parameters: From, To, Contact, Route, Record-Route,
//! Path (RFC 3261 §20.10, §20.20, §20.39, §20.30, §20.34, §25.1; RFC 3327).

use std::borrow::Cow;

use crate::error::{ParseError, Result};
use crate::params::Params;
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
}

impl<'a> NameAddr<'a> {
    /// Parses one value (already split from its list).
    #[inline]
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>> {
        let raw = trim_lws(s);
        let mut c = Cursor::new(raw);
        let mut display = None;
        let mut display_quoted = false;
        let bracketed;
        if c.peek() == Some(b'"') {
            display = Some(
                c.quoted_string()
                    .ok_or(ParseError::malformed("Unterminated quote"))?,
            );
            display_quoted = true;
            c.skip_lws();
            if !c.eat(b'<') {
                return Err(ParseError::malformed("Missing < after display name"));
            }
            bracketed = true;
        } else {
            let save = c.clone();
            let text = c.take_while(|b| is_token(b) || is_lws(b));
            if c.eat(b'<') {
                let t = trim_lws(text);
                display = (!t.is_empty()).then_some(t);
                bracketed = true;
            } else {
                c = save;
                bracketed = false;
            }
        }
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
        self.params.get("tag").flatten()
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

/// A Contact header set: either `*` (REGISTER only, RFC 3261 §10.2.2) or a list of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts<'a> {
    Star,
    List(Vec<NameAddr<'a>>),
}

#[cfg(test)]
mod tests {
    use super::*;

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
