//! Authorization, Proxy-Authorization, WWW-Authenticate and Proxy-Authenticate
//! (RFC 3261 §20.7, §20.28, §20.27, §20.44; RFC 7616 digest parameters; RFC 7235 token68).

use std::borrow::Cow;

use crate::error::{ParseError, Result};
use crate::scan::{Cursor, is_lws, is_token, trim_lws, unquote};

/// One authentication header: a scheme and either comma-separated `name=value` parameters or an
/// opaque token68 (e.g. Basic credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthHeader<'a> {
    scheme: &'a str,
    rest: &'a str,
    token68: bool,
}

/// One `name=value` of an authentication header; `value` is unquoted text with escapes kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthParam<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub quoted: bool,
}

fn bad() -> ParseError {
    ParseError::malformed("Bad authentication header")
}

fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

impl<'a> AuthHeader<'a> {
    pub fn parse(s: &'a str) -> Result<AuthHeader<'a>> {
        let s = trim_lws(s);
        let mut c = Cursor::new(s);
        let scheme = c.take_while(is_token);
        if scheme.is_empty() {
            return Err(bad());
        }
        let rest = trim_lws(c.rest());
        if !rest.is_empty() && c.peek().is_some_and(|b| !is_lws(b)) {
            return Err(bad());
        }
        let h = AuthHeader {
            scheme,
            rest,
            token68: false,
        };
        if h.params().all(|p| p.is_ok()) {
            return Ok(h);
        }
        if !rest.is_empty() && rest.bytes().all(is_token68) {
            return Ok(AuthHeader { token68: true, ..h });
        }
        Err(bad())
    }

    /// The scheme as written (`Digest`).
    pub fn scheme(&self) -> &'a str {
        self.scheme
    }

    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }

    /// The token68 credentials of non-parameter schemes (`Basic QWxh...`).
    pub fn token68(&self) -> Option<&'a str> {
        self.token68.then_some(self.rest)
    }

    /// The parameters in order.
    pub fn params(&self) -> AuthParams<'a> {
        AuthParams {
            c: Cursor::new(if self.token68 { "" } else { self.rest }),
            first: true,
            done: false,
        }
    }

    /// A parameter value by case-insensitive name, unquoted and unescaped.
    pub fn param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.params()
            .flatten()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| {
                if p.quoted {
                    unquote(p.value)
                } else {
                    Cow::Borrowed(p.value)
                }
            })
    }

    pub fn username(&self) -> Option<Cow<'a, str>> {
        self.param("username")
    }
    pub fn realm(&self) -> Option<Cow<'a, str>> {
        self.param("realm")
    }
    pub fn nonce(&self) -> Option<Cow<'a, str>> {
        self.param("nonce")
    }
    pub fn uri(&self) -> Option<Cow<'a, str>> {
        self.param("uri")
    }
    pub fn response(&self) -> Option<Cow<'a, str>> {
        self.param("response")
    }
    pub fn algorithm(&self) -> Option<Cow<'a, str>> {
        self.param("algorithm")
    }
    pub fn qop(&self) -> Option<Cow<'a, str>> {
        self.param("qop")
    }
    pub fn nc(&self) -> Option<Cow<'a, str>> {
        self.param("nc")
    }
    pub fn cnonce(&self) -> Option<Cow<'a, str>> {
        self.param("cnonce")
    }
    pub fn opaque(&self) -> Option<Cow<'a, str>> {
        self.param("opaque")
    }
}

/// Iterator over `name=value` pairs separated by commas (RFC 3261 §25.1 auth-param).
#[derive(Debug, Clone)]
pub struct AuthParams<'a> {
    c: Cursor<'a>,
    first: bool,
    done: bool,
}

impl<'a> AuthParams<'a> {
    fn next_param(&mut self) -> Result<Option<AuthParam<'a>>> {
        self.c.skip_lws();
        if self.c.eof() {
            return Ok(None);
        }
        if !self.first && !self.c.eat(b',') {
            return Err(bad());
        }
        self.first = false;
        self.c.skip_lws();
        let name = self.c.take_while(is_token);
        self.c.skip_lws();
        if name.is_empty() || !self.c.eat(b'=') {
            return Err(bad());
        }
        self.c.skip_lws();
        if self.c.peek() == Some(b'"') {
            let value = self.c.quoted_string().ok_or_else(bad)?;
            return Ok(Some(AuthParam {
                name,
                value,
                quoted: true,
            }));
        }
        let value = self.c.take_while(is_token);
        if value.is_empty() {
            return Err(bad());
        }
        Ok(Some(AuthParam {
            name,
            value,
            quoted: false,
        }))
    }
}

impl<'a> Iterator for AuthParams<'a> {
    type Item = Result<AuthParam<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.next_param().transpose();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_credentials() {
        let a = AuthHeader::parse(
            r#"Digest username="Mufasa", realm="testrealm@host.com",
      nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:a@b",
      qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1",
      algorithm=MD5, opaque="5ccc\"069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert!(a.is_digest());
        assert_eq!(a.username().unwrap(), "Mufasa");
        assert_eq!(a.qop().unwrap(), "auth");
        assert_eq!(a.nc().unwrap(), "00000001");
        assert_eq!(a.algorithm().unwrap(), "MD5");
        assert_eq!(a.opaque().unwrap(), "5ccc\"069c403ebaf9f0171e9517f40e41");
        assert_eq!(
            a.param("NONCE").unwrap(),
            "dcd98b7102dd2f0e8b11d0f600bfb0c093"
        );
    }

    #[test]
    fn other_schemes() {
        let a = AuthHeader::parse("NoOneKnowsThisScheme opaque-data=here").unwrap();
        assert_eq!(a.scheme(), "NoOneKnowsThisScheme");
        assert_eq!(a.param("opaque-data").unwrap(), "here");
        let b = AuthHeader::parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        assert_eq!(b.token68(), Some("QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
        assert!(AuthHeader::parse("").is_err());
        assert!(AuthHeader::parse(r#"Digest realm="x"#).is_err());
        assert!(AuthHeader::parse("Digest a=b,,c=d").is_err());
    }
}
