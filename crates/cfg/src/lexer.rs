//! The tokenizer for opensips.cfg (OpenSIPS 4.0 cfg.lex semantics): comments (`#`, nesting
//! `/* */`), strings (escapes in `"..."`, raw `'...'`), numbers (decimal, hex, octal, boolean
//! words), IPv4/IPv6 addresses and networks, PV tokens, operators. Tokens are produced on demand
//! so the parser can take `socket=` and `alias=` values as raw text.

use crate::diag::Diagnostic;
use crate::source::{FileId, Span};

/// Operators and punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Punct {
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Semi,
    Comma,
    Colon,
    Assign,
    ColonAssign,
    PlusAssign,
    MinusAssign,
    StarAssign,
    SlashAssign,
    PercentAssign,
    AndAssign,
    OrAssign,
    XorAssign,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Match,
    NotMatch,
    Not,
    AndAnd,
    OrOr,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Amp,
    Pipe,
    Caret,
    Tilde,
    Shl,
    Shr,
}

/// Longest first, so `==` wins over `=`.
const PUNCTS: &[(&str, Punct)] = &[
    (":=", Punct::ColonAssign),
    ("+=", Punct::PlusAssign),
    ("-=", Punct::MinusAssign),
    ("*=", Punct::StarAssign),
    ("/=", Punct::SlashAssign),
    ("%=", Punct::PercentAssign),
    ("&=", Punct::AndAssign),
    ("|=", Punct::OrAssign),
    ("^=", Punct::XorAssign),
    ("==", Punct::Eq),
    ("!=", Punct::Ne),
    ("<=", Punct::Le),
    (">=", Punct::Ge),
    ("=~", Punct::Match),
    ("!~", Punct::NotMatch),
    ("&&", Punct::AndAnd),
    ("||", Punct::OrOr),
    ("<<", Punct::Shl),
    (">>", Punct::Shr),
    ("{", Punct::LBrace),
    ("}", Punct::RBrace),
    ("(", Punct::LParen),
    (")", Punct::RParen),
    ("[", Punct::LBracket),
    ("]", Punct::RBracket),
    (";", Punct::Semi),
    (",", Punct::Comma),
    (":", Punct::Colon),
    ("=", Punct::Assign),
    ("<", Punct::Lt),
    (">", Punct::Gt),
    ("!", Punct::Not),
    ("+", Punct::Plus),
    ("-", Punct::Minus),
    ("*", Punct::Star),
    ("/", Punct::Slash),
    ("%", Punct::Percent),
    ("&", Punct::Amp),
    ("|", Punct::Pipe),
    ("^", Punct::Caret),
    ("~", Punct::Tilde),
];

/// A token's kind and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    /// Numbers and the boolean words (`yes`/`on`/`true`/`enable` = 1 …).
    Int(i64),
    Str(String),
    /// A pseudo-variable token as written (`$var(x)`, `$(hdr(Via)[0])`).
    Pv(String),
    /// An IPv4/IPv6 address or network (`10.0.0.0/8`).
    Ip(String),
    Null,
    P(Punct),
    Eof,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Tokenizer over one (include-expanded) file.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    file: FileId,
    /// Problems found so far; the token stream continues past them.
    pub errors: Vec<Diagnostic>,
    /// Set by an error after which nothing more can be read (an unterminated string or
    /// comment swallowed the rest of the file).
    pub fatal: bool,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str, file: FileId) -> Lexer<'a> {
        Lexer {
            src,
            pos: 0,
            file,
            errors: Vec::new(),
            fatal: false,
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn source_len(&self) -> usize {
        self.src.len()
    }

    fn byte(&self, i: usize) -> Option<u8> {
        self.src.as_bytes().get(i).copied()
    }

    fn span(&self, start: usize) -> Span {
        Span::new(self.file, start, self.pos)
    }

    fn err(&self, msg: impl Into<String>, start: usize) -> Diagnostic {
        Diagnostic::error(
            msg,
            Span::new(
                self.file,
                start,
                self.pos.max(start + 1).min(self.src.len().max(start)),
            ),
        )
    }

    /// Skips white space, line continuations and comments.
    fn skip_trivia(&mut self) -> Result<(), Diagnostic> {
        loop {
            match (self.byte(self.pos), self.byte(self.pos + 1)) {
                (Some(b' ' | b'\t' | b'\r' | b'\n' | 0x08), _) => self.pos += 1,
                (Some(b'\\'), Some(b'\n')) => self.pos += 2,
                // A no-break space (U+00A0, what editors and web pages slip into scripts):
                // blank, as OpenSIPS' lexer lets it pass, with a warning.
                (Some(0xc2), Some(0xa0)) => {
                    self.errors.push(Diagnostic::warning(
                        "a no-break space (U+00A0) taken as a blank",
                        Span::new(self.file, self.pos, self.pos + 2),
                    ));
                    self.pos += 2;
                }
                (Some(b'#'), _) => {
                    while self.byte(self.pos).is_some_and(|c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                (Some(b'/'), Some(b'*')) => self.block_comment()?,
                _ => return Ok(()),
            }
        }
    }

    /// `/* ... */`, nesting as in OpenSIPS.
    fn block_comment(&mut self) -> Result<(), Diagnostic> {
        let start = self.pos;
        let mut depth = 0usize;
        while let Some(c) = self.byte(self.pos) {
            if c == b'/' && self.byte(self.pos + 1) == Some(b'*') {
                depth += 1;
                self.pos += 2;
            } else if c == b'*' && self.byte(self.pos + 1) == Some(b'/') {
                depth -= 1;
                self.pos += 2;
                if depth == 0 {
                    return Ok(());
                }
            } else {
                self.pos += 1;
            }
        }
        self.fatal = true;
        let d = Diagnostic::error(
            "unterminated comment: `/*` without `*/`",
            Span::new(self.file, start, start + 2),
        );
        self.pos = self.src.len();
        Err(d)
    }

    /// The next token. Errors are collected in [`Lexer::errors`]: a malformed number stands in as
    /// `0`, an unexpected character is skipped, and after a fatal error the stream ends.
    pub fn next_token(&mut self) -> Token {
        loop {
            if self.fatal {
                return Token {
                    tok: Tok::Eof,
                    span: Span::new(self.file, self.src.len(), self.src.len()),
                };
            }
            match self.token() {
                Ok(t) => return t,
                Err(d) => self.errors.push(d),
            }
        }
    }

    fn token(&mut self) -> Result<Token, Diagnostic> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(c) = self.byte(start) else {
            return Ok(Token {
                tok: Tok::Eof,
                span: self.span(start),
            });
        };
        let tok = match c {
            b'"' => Tok::Str(self.double_quoted()?),
            b'\'' => Tok::Str(self.single_quoted()?),
            b'$' => Tok::Pv(self.pv()),
            b'0'..=b'9' | b':' if self.ip_literal() => {
                Tok::Ip(self.src[start..self.pos].to_owned())
            }
            b'0'..=b'9' => match self.number() {
                Ok(i) => Tok::Int(i),
                Err(d) => {
                    // Report it, and let the parser see a number so nothing cascades.
                    self.errors.push(d);
                    Tok::Int(0)
                }
            },
            _ if is_ident_start(c) => self.word(),
            _ => return self.punct(start),
        };
        Ok(Token {
            tok,
            span: self.span(start),
        })
    }

    fn punct(&mut self, start: usize) -> Result<Token, Diagnostic> {
        let rest = &self.src[start..];
        for (text, p) in PUNCTS {
            if rest.starts_with(text) {
                self.pos += text.len();
                return Ok(Token {
                    tok: Tok::P(*p),
                    span: self.span(start),
                });
            }
        }
        let ch = rest.chars().next().unwrap_or('?');
        self.pos += ch.len_utf8();
        Err(self.err(format!("unexpected character `{ch}`"), start))
    }

    fn word(&mut self) -> Tok {
        let start = self.pos;
        while self.byte(self.pos).is_some_and(is_ident) {
            self.pos += 1;
        }
        match &self.src[start..self.pos] {
            "yes" | "true" | "on" | "enable" => Tok::Int(1),
            "no" | "false" | "off" | "disable" => Tok::Int(0),
            "null" | "NULL" => Tok::Null,
            "and" => Tok::P(Punct::AndAnd),
            "or" => Tok::P(Punct::OrOr),
            "not" => Tok::P(Punct::Not),
            w => Tok::Ident(w.to_owned()),
        }
    }

    fn number(&mut self) -> Result<i64, Diagnostic> {
        let start = self.pos;
        let rest = &self.src[start..];
        let (digits, radix, skip) = if rest.starts_with("0x") || rest.starts_with("0X") {
            (
                rest[2..].bytes().take_while(u8::is_ascii_hexdigit).count(),
                16,
                2,
            )
        } else if rest.len() > 1 && rest.starts_with('0') && rest.as_bytes()[1].is_ascii_digit() {
            (
                rest[1..]
                    .bytes()
                    .take_while(|c| (b'0'..=b'7').contains(c))
                    .count(),
                8,
                1,
            )
        } else {
            (rest.bytes().take_while(u8::is_ascii_digit).count(), 10, 0)
        };
        self.pos += skip + digits;
        let text = &self.src[start + skip..self.pos];
        let v = i64::from_str_radix(text, radix)
            .ok()
            .filter(|v| *v <= i64::from(u32::MAX))
            .ok_or_else(|| {
                self.err(
                    format!("number `{}` is out of range", &self.src[start..self.pos]),
                    start,
                )
            })?;
        if self.byte(self.pos).is_some_and(is_ident) {
            while self.byte(self.pos).is_some_and(is_ident) {
                self.pos += 1;
            }
            return Err(self.err(
                format!("bad number `{}`", &self.src[start..self.pos]),
                start,
            ));
        }
        // C int semantics: hex 0xFFFFFFFF is -1.
        Ok(i64::from(v as u32 as i32))
    }

    /// IPv4 `a.b.c.d[/n|/a.b.c.d]` or IPv6 (with `::` or 8 groups) `[/n]`; consumes it on success.
    fn ip_literal(&mut self) -> bool {
        let rest = &self.src[self.pos..];
        let run = rest
            .bytes()
            .take_while(|c| c.is_ascii_hexdigit() || matches!(c, b'.' | b':' | b'/'))
            .count();
        let cand = &rest[..run];
        let (addr, mask) = match cand.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (cand, None),
        };
        let addr_ok = addr.parse::<std::net::Ipv4Addr>().is_ok()
            || (addr.contains(':') && addr.parse::<std::net::Ipv6Addr>().is_ok());
        let mask_ok =
            mask.is_none_or(|m| m.parse::<u8>().is_ok() || m.parse::<std::net::IpAddr>().is_ok());
        let end_ok = rest.as_bytes().get(run).is_none_or(|&c| !is_ident(c));
        if addr_ok && mask_ok && end_ok {
            self.pos += run;
            return true;
        }
        false
    }

    /// A PV token: at parenthesis depth 0 it ends at white space, `;`, `,`, an operator or an
    /// unmatched `)` (OpenSIPS cfg.lex SCRIPTVARS rules).
    fn pv(&mut self) -> String {
        let start = self.pos;
        self.pos += 1;
        let (mut depth, mut braces) = (0usize, 0usize);
        while let Some(c) = self.byte(self.pos) {
            match c {
                // Inside `{...}` (transformations) parentheses are data, e.g. a regex.
                b'{' if depth > 0 => braces += 1,
                b'}' if braces > 0 => braces -= 1,
                _ if braces > 0 => {}
                b'(' => depth += 1,
                b')' if depth == 0 => break,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        break;
                    }
                }
                b' ' | b'\t' | b'\r' | b'\n' | b';' | b',' | b'=' | b'+' | b'-' | b'*' | b'/'
                | b'%' | b'&' | b'|' | b'^' | b'~' | b'<' | b'>' | b'!'
                    if depth == 0 =>
                {
                    break;
                }
                b'\n' => break,
                _ => {}
            }
            self.pos += 1;
        }
        self.src[start..self.pos].to_owned()
    }

    fn double_quoted(&mut self) -> Result<String, Diagnostic> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.src[self.pos..].chars().next() else {
                self.fatal = true;
                return Err(Diagnostic::error(
                    "unterminated string",
                    Span::new(self.file, start, start + 1),
                )
                .with_label("this quote is never closed"));
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => self.escape(&mut out),
                _ => out.push(c),
            }
        }
    }

    /// After a backslash in a double-quoted string.
    fn escape(&mut self, out: &mut String) {
        let rest = &self.src[self.pos..];
        let simple = match rest.as_bytes().first() {
            Some(b'n') => Some('\n'),
            Some(b'r') => Some('\r'),
            Some(b'a') => Some('\x07'),
            Some(b't') => Some('\t'),
            Some(b'"') => Some('"'),
            Some(b'\\') => Some('\\'),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch);
            self.pos += 1;
            return;
        }
        if rest.starts_with('\n') {
            self.pos += 1;
            return;
        }
        let hex = rest
            .strip_prefix('x')
            .map(|h| h.bytes().take(2).take_while(u8::is_ascii_hexdigit).count());
        if let Some(n @ 1..) = hex
            && let Ok(v) = u8::from_str_radix(&rest[1..1 + n], 16)
        {
            out.push(char::from(v));
            self.pos += 1 + n;
            return;
        }
        let oct = rest
            .bytes()
            .take(3)
            .take_while(|c| (b'0'..=b'7').contains(c))
            .count();
        if oct >= 2
            && let Ok(v) = u8::from_str_radix(&rest[..oct], 8)
        {
            out.push(char::from(v));
            self.pos += oct;
            return;
        }
        // Any other escape is kept as written: "^\+[1-9]" keeps its backslash for the regex.
        out.push('\\');
    }

    fn single_quoted(&mut self) -> Result<String, Diagnostic> {
        let start = self.pos;
        let Some(end) = self.src[start + 1..].find('\'') else {
            self.fatal = true;
            self.pos = self.src.len();
            return Err(Diagnostic::error(
                "unterminated string",
                Span::new(self.file, start, start + 1),
            )
            .with_label("this quote is never closed"));
        };
        self.pos = start + 1 + end + 1;
        Ok(self.src[start + 1..start + 1 + end].to_owned())
    }

    /// The rest of a `socket=` / `alias=` value: up to the end of the line (or of a `{...}` bond
    /// list), without a trailing comment.
    pub fn raw_value(&mut self) -> (String, Span) {
        while matches!(self.byte(self.pos), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        let start = self.pos;
        let (mut quoted, mut braces) = (false, 0usize);
        let mut end = start;
        while let Some(c) = self.byte(self.pos) {
            if !quoted
                && braces == 0
                && (c == b'\n' || c == b'#' || self.src.as_bytes()[self.pos..].starts_with(b"/*"))
            {
                break;
            }
            match c {
                b'"' => quoted = !quoted,
                b'{' if !quoted => braces += 1,
                b'}' if !quoted => braces = braces.saturating_sub(1),
                _ => {}
            }
            self.pos += 1;
            if !c.is_ascii_whitespace() {
                end = self.pos;
            }
        }
        self.pos = end.max(start);
        (
            self.src[start..end].to_owned(),
            Span::new(self.file, start, end),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let mut l = Lexer::new(s, FileId(0));
        let mut v = Vec::new();
        loop {
            let t = l.next_token().tok;
            if t == Tok::Eof {
                return v;
            }
            v.push(t);
        }
    }

    #[test]
    fn a_no_break_space_is_a_blank_with_a_warning() {
        let src = "exit;\u{a0}exit; \"a\u{a0}b\" \u{2003}";
        let mut l = Lexer::new(src, FileId(0));
        let mut got = Vec::new();
        loop {
            let t = l.next_token().tok;
            if t == Tok::Eof {
                break;
            }
            got.push(t);
        }
        assert_eq!(
            got,
            vec![
                Tok::Ident("exit".into()),
                Tok::P(Punct::Semi),
                Tok::Ident("exit".into()),
                Tok::P(Punct::Semi),
                // Inside a string it stays what it is.
                Tok::Str("a\u{a0}b".into()),
            ]
        );
        let (warnings, errors): (Vec<_>, Vec<_>) = l.errors.iter().partition(|d| !d.is_error());
        assert_eq!(warnings.len(), 1, "{:?}", l.errors);
        // Other non-ASCII blanks stay errors.
        assert_eq!(errors.len(), 1, "{:?}", l.errors);
        assert!(
            errors[0].message.contains("unexpected character"),
            "{:?}",
            errors
        );
    }

    #[test]
    fn basic_tokens() {
        use Punct::*;
        assert_eq!(
            toks("if (!mf_process_maxfwd_header(10)) { exit; } # c\n/* a /* nested */ b */"),
            vec![
                Tok::Ident("if".into()),
                Tok::P(LParen),
                Tok::P(Not),
                Tok::Ident("mf_process_maxfwd_header".into()),
                Tok::P(LParen),
                Tok::Int(10),
                Tok::P(RParen),
                Tok::P(RParen),
                Tok::P(LBrace),
                Tok::Ident("exit".into()),
                Tok::P(Semi),
                Tok::P(RBrace),
            ]
        );
    }

    #[test]
    fn numbers_and_words() {
        assert_eq!(
            toks("0x1F 0666 42 yes off NULL"),
            vec![
                Tok::Int(31),
                Tok::Int(438),
                Tok::Int(42),
                Tok::Int(1),
                Tok::Int(0),
                Tok::Null
            ]
        );
        assert_eq!(toks("0xFFFFFFFF"), vec![Tok::Int(-1)]);
        for bad in ["12abc", "99999999999"] {
            let mut l = Lexer::new(bad, FileId(0));
            assert_eq!(l.next_token().tok, Tok::Int(0), "a placeholder stands in");
            assert_eq!(l.errors.len(), 1);
        }
    }

    #[test]
    fn strings() {
        assert_eq!(
            toks(r#""a\n\t\"b\\" 'raw\n' "^\+[1-9]" "\x41\101""#),
            vec![
                Tok::Str("a\n\t\"b\\".into()),
                Tok::Str("raw\\n".into()),
                Tok::Str("^\\+[1-9]".into()),
                Tok::Str("AA".into()),
            ]
        );
        let mut l = Lexer::new("\"open { x", FileId(0));
        assert_eq!(l.next_token().tok, Tok::Eof);
        assert!(l.fatal && l.errors.len() == 1);
        let mut l = Lexer::new("/* open\n route { }", FileId(0));
        assert_eq!(
            l.next_token().tok,
            Tok::Eof,
            "the comment swallows the rest"
        );
    }

    #[test]
    fn pvs_and_ips() {
        use Punct::*;
        assert_eq!(
            toks("$rU==NULL"),
            vec![Tok::Pv("$rU".into()), Tok::P(Eq), Tok::Null]
        );
        assert_eq!(
            toks("$(hdr(Via)[-1]{s.len}) != 1"),
            vec![
                Tok::Pv("$(hdr(Via)[-1]{s.len})".into()),
                Tok::P(Ne),
                Tok::Int(1)
            ]
        );
        assert_eq!(
            toks("is_myself(\"$rd\") $var(x)=1;"),
            vec![
                Tok::Ident("is_myself".into()),
                Tok::P(LParen),
                Tok::Str("$rd".into()),
                Tok::P(RParen),
                Tok::Pv("$var(x)".into()),
                Tok::P(Assign),
                Tok::Int(1),
                Tok::P(Semi)
            ]
        );
        assert_eq!(
            toks("f($var(a))"),
            vec![
                Tok::Ident("f".into()),
                Tok::P(LParen),
                Tok::Pv("$var(a)".into()),
                Tok::P(RParen)
            ]
        );
        assert_eq!(
            toks("$si==10.0.0.0/8 && $si != ::1"),
            vec![
                Tok::Pv("$si".into()),
                Tok::P(Eq),
                Tok::Ip("10.0.0.0/8".into()),
                Tok::P(AndAnd),
                Tok::Pv("$si".into()),
                Tok::P(Ne),
                Tok::Ip("::1".into())
            ]
        );
        assert_eq!(
            toks("case 1:"),
            vec![Tok::Ident("case".into()), Tok::Int(1), Tok::P(Colon)]
        );
    }

    #[test]
    fn raw_values_with_multibyte_text() {
        // Found by fuzzing: the comment check must not slice inside a character.
        let mut l = Lexer::new("alias=é /* x */\nroute", FileId(0));
        for _ in 0..2 {
            l.next_token();
        }
        assert_eq!(l.raw_value().0, "é");
        assert_eq!(l.next_token().tok, Tok::Ident("route".into()));
    }

    #[test]
    fn raw_values() {
        let src = "socket=udp:127.0.0.1:5060   # CUSTOMIZE ME\nx";
        let mut l = Lexer::new(src, FileId(0));
        for _ in 0..2 {
            l.next_token();
        }
        let (v, span) = l.raw_value();
        assert_eq!(v, "udp:127.0.0.1:5060");
        assert_eq!((span.start, span.end), (7, 25));
        assert_eq!(l.next_token().tok, Tok::Ident("x".into()));
    }
}
