//! Byte-level scanning shared by the header and URI parsers: the character classes of
//! RFC 3261 §25.1 and a cursor that never indexes past the end of its input.

/// Builds a 256-entry membership table from a list of ASCII bytes plus alphanumerics.
const fn table(extra: &[u8], alnum: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        if alnum && c.is_ascii_alphanumeric() {
            t[i] = true;
        }
        i += 1;
    }
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
}

/// RFC 3261 §25.1 `token` characters.
pub(crate) static TOKEN: [bool; 256] = table(b"-.!%*_+`'~", true);

/// Characters allowed unescaped in a SIP URI user part: unreserved / user-unreserved (RFC 3261 §25.1).
static USER: [bool; 256] = table(b"-_.!~*'()&=+$,;?/", true);

/// The user characters that cannot also end a user part or start something else: all of
/// [`USER`] but `;`, `?` and `,`. The one-pass URI scanner reads a user part made of these (and
/// escapes) and leaves the rest to the general parser.
pub(crate) static USER_PLAIN: [bool; 256] = table(b"-_.!~*'()&=+$/", true);

/// Characters allowed in a URI password: unreserved / "&" / "=" / "+" / "$" / ",".
static PASSWORD: [bool; 256] = table(b"-_.!~*'()&=+$,", true);

/// Characters of a URI parameter name or value: paramchar (RFC 3261 §25.1), escapes aside.
pub(crate) static PARAMCHAR: [bool; 256] = table(b"[]/:&+$-_.!~*'()", true);

/// [`PARAMCHAR`] and `%`, for reading parameters already validated (escapes included).
pub(crate) static PARAMCHAR_ESCAPED: [bool; 256] = table(b"[]/:&+$-_.!~*'()%", true);

/// Characters of a URI header name or value: hnv-unreserved / unreserved.
static HNVCHAR: [bool; 256] = table(b"[]/?:+$-_.!~*'()", true);

/// Host name characters (RFC 3261 hostname, plus `_` seen in the wild).
static DOMAIN: [bool; 256] = table(b"-._", true);

/// Characters of an unquoted header parameter value: any visible octet, UTF-8 included, but the
/// separators `;` `,` `"` `<` `>` (white space and controls end it too).
pub(crate) static HEADER_VALUE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0x21;
    while i < 256 {
        t[i] = !matches!(i as u8, b';' | b',' | b'"' | b'<' | b'>' | 0x7f);
        i += 1;
    }
    t
};

/// Host name characters by class, for [`crate::host::scan_domain`]: 0 ends the name.
pub(crate) const HOST_DIGIT: u8 = 1;
/// A letter, `-` or `_`: the name is not an IPv4 address.
pub(crate) const HOST_NAME: u8 = 2;
pub(crate) const HOST_DOT: u8 = 4;
pub(crate) static HOST_CLASS: [u8; 256] = {
    let mut t = [0; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = if c.is_ascii_digit() {
            HOST_DIGIT
        } else if c == b'.' {
            HOST_DOT
        } else if DOMAIN[i] {
            HOST_NAME
        } else {
            0
        };
        i += 1;
    }
    t
};

/// Where the run of bytes in `class` that starts at `i` ends. Eight bytes at a time while eight
/// remain: the length is checked once per block, so each byte costs a load, a table look-up and
/// a branch.
#[inline(always)]
pub(crate) fn span(b: &[u8], i: usize, class: &[bool; 256]) -> usize {
    let Some(rest) = b.get(i..) else {
        return i;
    };
    let mut blocks = rest.chunks_exact(8);
    let mut at = i;
    for block in &mut blocks {
        for (k, &c) in block.iter().enumerate() {
            if !class[c as usize] {
                return at + k;
            }
        }
        at += 8;
    }
    for &c in blocks.remainder() {
        if !class[c as usize] {
            return at;
        }
        at += 1;
    }
    at
}

/// Position of `needle` in `hay`. Header values are short, where a plain loop beats memchr's
/// dispatch; long ones go to memchr.
#[inline]
pub(crate) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    if hay.len() < 64 {
        hay.iter().position(|&c| c == needle)
    } else {
        memchr::memchr(needle, hay)
    }
}

/// Position of the first of three bytes, as [`find_byte`].
#[inline]
fn find_byte3(a: u8, b: u8, c: u8, hay: &[u8]) -> Option<usize> {
    if hay.len() < 64 {
        hay.iter().position(|&x| x == a || x == b || x == c)
    } else {
        memchr::memchr3(a, b, c, hay)
    }
}

/// RFC 3261 token character.
#[inline]
pub(crate) fn is_token(c: u8) -> bool {
    TOKEN[c as usize]
}

/// Whether `s` is a non-empty RFC 3261 token.
#[inline]
pub(crate) fn is_token_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token)
}

#[inline]
pub(crate) fn is_user_char(c: u8) -> bool {
    USER[c as usize] || c == b'%'
}

#[inline]
pub(crate) fn is_user_plain_char(c: u8) -> bool {
    USER_PLAIN[c as usize]
}

#[inline]
pub(crate) fn is_password_char(c: u8) -> bool {
    PASSWORD[c as usize] || c == b'%'
}

#[inline]
pub(crate) fn is_param_char(c: u8) -> bool {
    PARAMCHAR[c as usize] || c == b'%'
}

#[inline]
pub(crate) fn is_hnv_char(c: u8) -> bool {
    HNVCHAR[c as usize] || c == b'%'
}

/// Linear white space inside a header value: SP, HT, and the CR LF of a folded line (RFC 3261 §7.3.1).
#[inline]
pub(crate) fn is_lws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims linear white space (including folding) from both ends. Works on bytes: the trimmed
/// octets are ASCII, so the cuts fall on character boundaries.
#[inline]
pub(crate) fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let mut start = 0;
    while b.get(start).is_some_and(|&c| is_lws(c)) {
        start += 1;
    }
    let mut end = b.len();
    while end > start && b.get(end - 1).is_some_and(|&c| is_lws(c)) {
        end -= 1;
    }
    s.get(start..end).unwrap_or("")
}

/// Checks in one pass that every byte is allowed by `ok` or starts a valid `%HH` escape.
#[inline]
pub(crate) fn escaped_chars_valid(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            match (b.get(i + 1), b.get(i + 2)) {
                (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else if ok(c) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// Checks that every `%` in `s` starts a valid `%HH` escape.
pub(crate) fn escapes_valid(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match (b.get(i + 1), b.get(i + 2)) {
                (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

/// Parses a decimal number of at most `u32::MAX`; leading zeros are allowed ("0068").
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut v: u64 = 0;
    for c in s.bytes() {
        v = v * 10 + u64::from(c - b'0');
        if v > u64::from(u32::MAX) {
            return None;
        }
    }
    u32::try_from(v).ok()
}

/// Splits a header value at top-level commas: commas inside quoted strings or `<...>` do not
/// separate values (RFC 3261 §7.3.1). Empty elements are yielded too, so callers can reject them.
#[derive(Debug, Clone)]
pub(crate) struct CommaSplit<'a> {
    rest: Option<&'a str>,
}

impl<'a> CommaSplit<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        CommaSplit { rest: Some(s) }
    }

    /// What is left after the values yielded so far; `None` once the last one is out.
    pub(crate) fn remainder(&self) -> Option<&'a str> {
        self.rest
    }
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        let b = s.as_bytes();
        let mut i = 0;
        // Jump between the only bytes that matter: outside quotes and <>, a comma ends the value.
        while let Some(off) = b.get(i..).and_then(|t| find_byte3(b',', b'"', b'<', t)) {
            i += off;
            match b.get(i) {
                Some(b',') => {
                    self.rest = s.get(i + 1..);
                    return Some(trim_lws(s.get(..i).unwrap_or("")));
                }
                Some(b'"') => i = skip_quoted(b, i + 1),
                _ => {
                    i = b
                        .get(i..)
                        .and_then(|t| find_byte(b'>', t))
                        .map_or(b.len(), |o| i + o + 1)
                }
            }
        }
        self.rest = None;
        Some(trim_lws(s))
    }
}

/// Index just past the closing quote of a quoted string whose inside starts at `i`
/// (or the end when it is unterminated).
fn skip_quoted(b: &[u8], mut i: usize) -> usize {
    while let Some(off) = b.get(i..).and_then(|t| memchr::memchr2(b'"', b'\\', t)) {
        i += off;
        if b.get(i) == Some(&b'"') {
            return i + 1;
        }
        i += 2;
    }
    b.len()
}

/// A forward-only cursor over a `&str`. Every position it stops at is an ASCII delimiter or the
/// end, so the slices it hands out always fall on character boundaries.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    #[inline]
    pub(crate) fn eof(&self) -> bool {
        self.pos >= self.s.len()
    }

    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Consumes `c` if it is next.
    #[inline]
    pub(crate) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips SP, HT and folding CR LF.
    #[inline]
    pub(crate) fn skip_lws(&mut self) {
        while let Some(c) = self.peek() {
            if !is_lws(c) {
                break;
            }
            self.pos += 1;
        }
    }

    /// Consumes bytes while `f` holds. `f` must treat all non-ASCII bytes alike.
    #[inline]
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !f(c) {
                break;
            }
            self.pos += 1;
        }
        self.slice(start, self.pos)
    }

    /// The text between two positions this cursor has stood at.
    #[inline]
    pub(crate) fn slice(&self, start: usize, end: usize) -> &'a str {
        self.s.get(start..end).unwrap_or("")
    }

    /// Moves forward `n` bytes of the rest (which the caller has checked are ASCII).
    #[inline]
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.s.len());
    }

    /// Everything not yet consumed.
    #[inline]
    pub(crate) fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    /// Consumes a quoted string (RFC 3261 §25.1 quoted-string) and returns its inside, escapes kept.
    /// `None` when the closing quote is missing.
    pub(crate) fn quoted_string(&mut self) -> Option<&'a str> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.pos;
        let b = self.s.as_bytes();
        let mut i = self.pos;
        while i < b.len() {
            match b[i] {
                b'\\' => {
                    // quoted-pair: the escaped octet may not be CR or LF.
                    match b.get(i + 1) {
                        Some(b'\r') | Some(b'\n') | None => return None,
                        Some(c) if !c.is_ascii() => return None,
                        _ => i += 2,
                    }
                }
                b'"' => {
                    self.pos = i + 1;
                    return Some(self.slice(start, i));
                }
                _ => i += 1,
            }
        }
        None
    }
}

/// The values of a comma-separated header value (RFC 3261 §7.3.1): commas inside quoted strings
/// and `<...>` do not separate. Empty elements are yielded as empty strings.
pub fn split_values(value: &str) -> impl Iterator<Item = &str> + '_ {
    CommaSplit::new(value)
}

/// Removes the backslash escapes of a quoted string's inside.
pub fn unquote(inner: &str) -> std::borrow::Cow<'_, str> {
    if !inner.contains('\\') {
        return std::borrow::Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_classes() {
        assert!(is_token_str("z9hG4bK-.!%*_+`'~"));
        assert!(!is_token_str(""));
        assert!(!is_token_str("a b"));
        assert!(!is_token_str("a,b"));
    }

    #[test]
    fn u32_bounds() {
        assert_eq!(parse_u32("0009"), Some(9));
        assert_eq!(parse_u32("4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32("4294967296"), None);
        assert_eq!(parse_u32("36893488147419103232"), None);
        assert_eq!(parse_u32("-1"), None);
        assert_eq!(parse_u32(""), None);
    }

    #[test]
    fn comma_split_respects_quotes_and_angles() {
        let v: Vec<_> = CommaSplit::new(r#""a,b" <sip:x;p=1,2>, <sip:y> , c"#).collect();
        assert_eq!(v, vec![r#""a,b" <sip:x;p=1,2>"#, "<sip:y>", "c"]);
        let v: Vec<_> = CommaSplit::new(";;,;,,").collect();
        assert_eq!(v, vec![";;", ";", "", ""]);
    }

    #[test]
    fn quoted_strings() {
        let mut c = Cursor::new(r#""J Rosenberg \\\"" <x>"#);
        assert_eq!(c.quoted_string(), Some(r#"J Rosenberg \\\""#));
        assert_eq!(unquote(r#"J Rosenberg \\\""#), r#"J Rosenberg \""#);
        assert_eq!(Cursor::new(r#""unterminated"#).quoted_string(), None);
    }

    #[test]
    fn escapes() {
        assert!(escapes_valid("%75se%72"));
        assert!(!escapes_valid("%7"));
        assert!(!escapes_valid("%zz"));
    }
}
