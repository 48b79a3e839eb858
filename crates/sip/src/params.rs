//! `;name=value` parameter lists of header values (RFC 3261 §7.3.1 generic-param, with LWS around
//! `;` and `=`) and of URIs (RFC 3261 §19.1.1 uri-parameters, no LWS).

use crate::error::{ParseError, Result};
use crate::scan::{Cursor, is_lws, is_param_char, is_token};
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
    !matches!(c, b';' | b',' | b'"' | b'<' | b'>') && !is_lws(c) && (c >= 0x20 && c != 0x7f)
}

impl<'a> Params<'a> {
    /// Header parameters: `text` is whatever follows the value proper, e.g. `;tag=1 ; lr`.
    pub(crate) fn header(text: &'a str) -> Result<Params<'a>> {
        let p = Params { text, uri: false };
        p.validate()?;
        Ok(p)
    }

    /// URI parameters: `text` starts at the first `;` and ends before `?`.
    pub(crate) fn uri(text: &'a str) -> Result<Params<'a>> {
        let p = Params { text, uri: true };
        p.validate()?;
        Ok(p)
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

    fn validate(&self) -> Result<()> {
        let mut it = self.iter();
        for p in &mut it {
            p?;
        }
        Ok(())
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
        let uri = self.uri;
        self.iter()
            .flatten()
            .find(|p| {
                p.name.eq_ignore_ascii_case(name) || (uri && escaped_name_matches(p.name, name))
            })
            .map(|p| p.value)
    }

    /// Whether a parameter named `name` is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
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
