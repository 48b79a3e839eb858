//! Recursive-descent parser for opensips.cfg. It recovers after an error (skipping to the next
//! `;`, `}` or top-level statement) so one run reports every syntax error it can.

mod expr;
mod stmt;

use std::path::{Path, PathBuf};

use crate::ast::{Config, GlobalValue, Item, ParamValue, PvRef, RouteBlock, RouteKind};
use crate::diag::Diagnostic;
use crate::lexer::{Lexer, Punct, Tok, Token};
use crate::source::{FileId, SourceMap, Span, Spanned};

/// Deepest include nesting accepted (OpenSIPS allows 20 open files).
const MAX_INCLUDE_DEPTH: usize = 20;

/// What a parse produced: the tree (possibly partial) and every diagnostic.
#[derive(Debug)]
pub struct Parsed {
    pub config: Config,
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses `text` (already preprocessed) as the file `path`, loading `include_file`s from disk.
pub fn parse(sources: &mut SourceMap, path: &Path, text: String) -> Parsed {
    let file = sources.add(path, text);
    let mut diags = Vec::new();
    let mut items = Vec::new();
    parse_file(sources, file, 0, &mut items, &mut diags);
    Parsed {
        config: Config { items },
        diagnostics: diags,
    }
}

fn parse_file(
    sources: &mut SourceMap,
    file: FileId,
    depth: usize,
    items: &mut Vec<Item>,
    diags: &mut Vec<Diagnostic>,
) {
    let text = sources
        .get(file)
        .map(|f| f.text.clone())
        .unwrap_or_default();
    let mut p = Parser::new(&text, file, depth);
    p.includes_allowed = sources.includes_allowed();
    p.top_level(items);
    let includes = std::mem::take(&mut p.includes);
    diags.append(&mut p.diags);
    // Top-level includes are spliced where they stood; order of items within a file is kept.
    for (at, path, span) in includes.into_iter().rev() {
        let mut sub = Vec::new();
        if let Some(id) = load_include(sources, file, &path, span, depth, diags) {
            parse_file(sources, id, depth + 1, &mut sub, diags);
        }
        let tail = items.split_off(at.min(items.len()));
        items.extend(sub);
        items.extend(tail);
    }
}

/// Largest included file accepted.
const MAX_INCLUDE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads an included file: only regular files, and not huge ones (`/dev/zero` must not hang).
fn read_include(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_INCLUDE_BYTES {
        return Err(std::io::Error::other("file too large"));
    }
    std::fs::read_to_string(path)
}

/// Resolves an include path: as given, else relative to the including file's directory.
fn load_include(
    sources: &mut SourceMap,
    from: FileId,
    path: &str,
    span: Span,
    depth: usize,
    diags: &mut Vec<Diagnostic>,
) -> Option<FileId> {
    if depth + 1 >= MAX_INCLUDE_DEPTH {
        diags.push(
            Diagnostic::error("includes nested too deeply", span)
                .with_help("an included file probably includes itself"),
        );
        return None;
    }
    let direct = PathBuf::from(path);
    let candidate = if direct.is_absolute() || direct.exists() {
        direct
    } else {
        sources
            .path(from)
            .parent()
            .unwrap_or(Path::new("."))
            .join(path)
    };
    if !sources.includes_allowed() {
        diags.push(Diagnostic::error(
            "`include_file` is not allowed here",
            span,
        ));
        return None;
    }
    match read_include(&candidate) {
        Ok(text) => Some(sources.add(candidate, text)),
        Err(e) => {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_owned(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                _ => e.to_string(),
            };
            let dir = sources
                .path(from)
                .parent()
                .map_or(String::new(), |d| d.display().to_string());
            let dir = if dir.is_empty() { ".".to_owned() } else { dir };
            diags.push(
                Diagnostic::error(format!("cannot read included file `{path}`: {why}"), span)
                    .with_help(format!("looked in the current directory and in `{dir}`")),
            );
            None
        }
    }
}

/// The parser state over one file.
pub(crate) struct Parser<'a> {
    lex: Lexer<'a>,
    peeked: Option<Token>,
    last_end: u32,
    file: FileId,
    depth: usize,
    pub(crate) diags: Vec<Diagnostic>,
    /// Top-level includes: (item index, path, span).
    includes: Vec<(usize, String, Span)>,
    /// How many `while`/`for`/`switch` bodies enclose the current statement (for `break`).
    pub(crate) breakable: usize,
    /// Whether `include_file` may read from disk.
    includes_allowed: bool,
}

/// Parse failure already reported as a diagnostic; the caller recovers.
pub(crate) struct Reported;

pub(crate) type PResult<T> = Result<T, Reported>;

impl<'a> Parser<'a> {
    fn new(text: &'a str, file: FileId, depth: usize) -> Parser<'a> {
        Parser {
            lex: Lexer::new(text, file),
            peeked: None,
            last_end: 0,
            file,
            depth,
            diags: Vec::new(),
            includes: Vec::new(),
            breakable: 0,
            includes_allowed: true,
        }
    }

    pub(crate) fn peek(&mut self) -> &Token {
        if self.peeked.is_none() {
            let t = self.lex.next_token();
            self.diags.append(&mut self.lex.errors);
            self.peeked = Some(t);
        }
        self.peeked.get_or_insert_with(|| Token {
            tok: Tok::Eof,
            span: Span::default(),
        })
    }

    pub(crate) fn bump(&mut self) -> Token {
        self.peek();
        let t = self.peeked.take().unwrap_or(Token {
            tok: Tok::Eof,
            span: Span::default(),
        });
        self.last_end = t.span.end;
        t
    }

    /// Length of the file being parsed, to keep spans inside it.
    pub(crate) fn source_len(&self) -> u32 {
        self.lex.source_len() as u32
    }

    pub(crate) fn at(&mut self, p: Punct) -> bool {
        self.peek().tok == Tok::P(p)
    }

    pub(crate) fn at_ident(&mut self, word: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(w) if w == word)
    }

    pub(crate) fn eat(&mut self, p: Punct) -> bool {
        if self.at(p) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Span from `start` to the end of the last consumed token.
    pub(crate) fn since(&self, start: Span) -> Span {
        Span {
            file: self.file,
            start: start.start,
            end: self.last_end.max(start.end),
        }
    }

    pub(crate) fn error<T>(&mut self, d: Diagnostic) -> PResult<T> {
        // After a fatal lexer error (unterminated string or comment) everything that follows
        // is a consequence of it: say nothing more.
        if !self.lex.fatal {
            self.diags.push(d);
        }
        Err(Reported)
    }

    /// Reports what was found where something else was expected.
    pub(crate) fn unexpected<T>(&mut self, expected: &str) -> PResult<T> {
        let t = self.peek().clone();
        let found = describe(&t.tok);
        self.error(Diagnostic::error(
            format!("expected {expected}, found {found}"),
            t.span,
        ))
    }

    pub(crate) fn expect(&mut self, p: Punct, what: &str) -> PResult<Span> {
        if self.at(p) {
            Ok(self.bump().span)
        } else {
            self.unexpected(what)
        }
    }

    pub(crate) fn pv_ref(&mut self, text: String, span: Span) -> PResult<PvRef> {
        match crate::pv::parse(&text) {
            Ok(spec) => Ok(PvRef { text, spec, span }),
            Err(e) => self.error(Diagnostic::error(
                format!("bad pseudo-variable `{text}`: {e}"),
                span,
            )),
        }
    }

    /// Top level: globals, sockets, modules, routes — no separators between them.
    fn top_level(&mut self, items: &mut Vec<Item>) {
        loop {
            let t = self.peek().clone();
            let r = match &t.tok {
                Tok::Eof => return,
                Tok::Ident(w) if w == "loadmodule" => self.loadmodule(items),
                Tok::Ident(w) if w == "modparam" => self.modparam(items),
                Tok::Ident(w) if w == "include_file" || w == "import_file" => {
                    self.top_include(items.len())
                }
                Tok::Ident(w) if RouteKind::from_keyword(w).is_some() => self.route_block(items),
                Tok::Ident(_) => self.global(items),
                Tok::P(Punct::Semi) => {
                    self.bump();
                    self.error(
                        Diagnostic::error("unexpected `;` at the top level", t.span)
                            .with_help("top-level statements take no `;`"),
                    )
                }
                _ => {
                    self.unexpected("a global parameter, `loadmodule`, `modparam` or a route block")
                }
            };
            if r.is_err() {
                self.recover_top();
            }
        }
    }

    /// Skips to the start of the next line that begins a top-level statement.
    fn recover_top(&mut self) {
        let mut depth = 0i32;
        loop {
            let t = self.peek().clone();
            match &t.tok {
                Tok::Eof => return,
                Tok::P(Punct::LBrace) => depth += 1,
                Tok::P(Punct::RBrace) => {
                    depth -= 1;
                    if depth <= 0 {
                        self.bump();
                        return;
                    }
                }
                Tok::Ident(w)
                    if depth <= 0 && starts_top_item(w) && t.span.start > self.last_end =>
                {
                    return;
                }
                _ => {}
            }
            self.bump();
        }
    }

    fn top_include(&mut self, at: usize) -> PResult<()> {
        let kw = self.bump();
        let t = self.bump();
        let Tok::Str(path) = t.tok else {
            return self.error(Diagnostic::error(
                "`include_file` needs a quoted file name",
                t.span,
            ));
        };
        self.eat(Punct::Semi);
        self.includes.push((at, path, self.since(kw.span)));
        Ok(())
    }

    /// Statements of an included file spliced into a route body.
    pub(crate) fn nested_include(&mut self, path: &str, span: Span) -> Vec<crate::ast::Stmt> {
        if !self.includes_allowed {
            self.diags.push(Diagnostic::error(
                "`include_file` is not allowed here",
                span,
            ));
            return Vec::new();
        }
        let Ok(text) = read_include(Path::new(path)) else {
            self.diags.push(Diagnostic::error(
                format!("cannot read included file `{path}`"),
                span,
            ));
            return Vec::new();
        };
        if self.depth + 1 >= MAX_INCLUDE_DEPTH {
            self.diags
                .push(Diagnostic::error("includes nested too deeply", span));
            return Vec::new();
        }
        // Route-level includes share this file id space only through spans of the includer;
        // their statements are parsed as if written here.
        let mut sub = Parser::new(&text, self.file, self.depth + 1);
        sub.includes_allowed = self.includes_allowed;
        let mut stmts = Vec::new();
        while sub.peek().tok != Tok::Eof {
            match sub.statement() {
                Ok(s) => stmts.push(s),
                Err(Reported) => sub.recover_stmt(),
            }
        }
        for mut d in sub.diags {
            d.span = Some(span);
            self.diags.push(d);
        }
        stmts
    }

    fn loadmodule(&mut self, items: &mut Vec<Item>) -> PResult<()> {
        self.bump();
        let t = self.bump();
        match t.tok {
            Tok::Str(s) => {
                items.push(Item::LoadModule(Spanned::new(s, t.span)));
                Ok(())
            }
            _ => self.error(
                Diagnostic::error("`loadmodule` needs a quoted module file name", t.span)
                    .with_help("for example `loadmodule \"tm.so\"`"),
            ),
        }
    }

    fn modparam(&mut self, items: &mut Vec<Item>) -> PResult<()> {
        self.bump();
        self.expect(Punct::LParen, "`(` after `modparam`")?;
        let module = self.string_arg("the module name")?;
        self.expect(Punct::Comma, "`,`")?;
        let param = self.string_arg("the parameter name")?;
        self.expect(Punct::Comma, "`,`")?;
        let t = self.bump();
        let value = match t.tok {
            Tok::Int(i) => Spanned::new(ParamValue::Int(i), t.span),
            Tok::P(Punct::Minus) | Tok::P(Punct::Plus) => {
                let neg = t.tok == Tok::P(Punct::Minus);
                let n = self.bump();
                let Tok::Int(i) = n.tok else {
                    return self.error(Diagnostic::error(
                        "expected a number after the sign",
                        n.span,
                    ));
                };
                Spanned::new(ParamValue::Int(if neg { -i } else { i }), t.span.to(n.span))
            }
            Tok::Str(mut s) => {
                let mut span = t.span;
                while let Tok::Str(more) = &self.peek().tok {
                    s.push_str(more);
                    span = span.to(self.bump().span);
                }
                Spanned::new(ParamValue::Str(s), span)
            }
            other => {
                let msg = format!(
                    "a modparam value must be a string or a number, found {}",
                    describe(&other)
                );
                return self.error(Diagnostic::error(msg, t.span));
            }
        };
        self.expect(Punct::RParen, "`)` after the modparam value")?;
        items.push(Item::ModParam {
            module,
            param,
            value,
        });
        Ok(())
    }

    fn string_arg(&mut self, what: &str) -> PResult<Spanned<String>> {
        let t = self.bump();
        match t.tok {
            Tok::Str(s) => Ok(Spanned::new(s, t.span)),
            _ => self.error(Diagnostic::error(
                format!("expected {what} as a quoted string"),
                t.span,
            )),
        }
    }

    /// `name = value`, with the raw-text values of `socket`/`alias`.
    fn global(&mut self, items: &mut Vec<Item>) -> PResult<()> {
        let t = self.bump();
        let Tok::Ident(name) = t.tok else {
            return self.unexpected("a parameter name");
        };
        let name = Spanned::new(name, t.span);
        if !self.at(Punct::Assign) {
            let found = self.peek().clone();
            if (found.tok == Tok::P(Punct::LBrace) || found.tok == Tok::P(Punct::LBracket))
                && name.node.ends_with("route")
            {
                let kinds = [
                    "route",
                    "onreply_route",
                    "failure_route",
                    "branch_route",
                    "local_route",
                    "error_route",
                    "startup_route",
                    "timer_route",
                    "event_route",
                ];
                let mut d =
                    Diagnostic::error(format!("unknown route type `{}`", name.node), name.span);
                if let Some(s) = crate::diag::suggest(&name.node, kinds) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                return self.error(d);
            }
            if found.tok == Tok::P(Punct::LParen) || found.tok == Tok::P(Punct::LBrace) {
                return self.error(
                    Diagnostic::error(
                        format!("`{}` cannot start a top-level statement", name.node),
                        name.span,
                    )
                    .with_help("function calls belong inside a route block"),
                );
            }
            return self.unexpected(&format!("`=` after `{}`", name.node));
        }
        self.bump();
        if matches!(name.node.as_str(), "socket" | "listen" | "alias") {
            let (raw, span) = self.lex.raw_value();
            self.peeked = None;
            return self.socket_or_alias(items, name, Spanned::new(raw, span));
        }
        let value = match name.node.as_str() {
            "auto_scaling_profile" => self.auto_scaling_profile()?,
            "dst_blacklist" => self.dst_blacklist()?,
            _ => self.global_value(&name.node)?,
        };
        items.push(Item::Global { name, value });
        Ok(())
    }

    /// A word of a global's own grammar (case as OpenSIPS' lexer takes it: lower or upper).
    fn keyword(&mut self, word: &str, what: &str) -> PResult<()> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Ident(w) if w.eq_ignore_ascii_case(word) => {
                self.bump();
                Ok(())
            }
            // The lexer reads `on` as the boolean 1.
            Tok::Int(1) if word == "on" => {
                self.bump();
                Ok(())
            }
            _ => self.unexpected(&format!("`{word}` in {what}")),
        }
    }

    fn number(&mut self, what: &str) -> PResult<i64> {
        let t = self.bump();
        match t.tok {
            Tok::Int(n) => Ok(n),
            _ => self.error(Diagnostic::error(
                format!("expected a number in {what}"),
                t.span,
            )),
        }
    }

    /// `NAME scale up to N on P% for C cycles [within W] [scale down to M on Q% for D cycles]`
    /// (OpenSIPS' auto-scaling profile). The value is the profile's name: rsips' workers do not
    /// scale, but `use_auto_scaling_profile` may name it.
    fn auto_scaling_profile(&mut self) -> PResult<Spanned<GlobalValue>> {
        const WHAT: &str = "an auto-scaling profile";
        let t = self.bump();
        let Tok::Ident(profile) = t.tok else {
            return self.error(Diagnostic::error(
                "expected the profile's name after `auto_scaling_profile =`",
                t.span,
            ));
        };
        let part = |p: &mut Self, direction: &str| -> PResult<()> {
            p.keyword("scale", WHAT)?;
            p.keyword(direction, WHAT)?;
            p.keyword("to", WHAT)?;
            p.number(WHAT)?;
            p.keyword("on", WHAT)?;
            let pct = p.number(WHAT)?;
            if !p.eat(Punct::Percent) {
                return p.unexpected("`%` after the load");
            }
            if !(0..=100).contains(&pct) {
                return p.error(Diagnostic::error(
                    "a load is a percentage, 0 to 100",
                    t.span,
                ));
            }
            p.keyword("for", WHAT)?;
            p.number(WHAT)?;
            p.keyword("cycles", WHAT)
        };
        part(self, "up")?;
        if self.at_ident("within") || self.at_ident("WITHIN") {
            self.bump();
            self.number(WHAT)?;
        }
        if self.at_ident("scale") || self.at_ident("SCALE") {
            part(self, "down")?;
        }
        Ok(Spanned::new(
            GlobalValue::Ident(profile),
            self.since(t.span),
        ))
    }

    /// `NAME[/flags][: { rule, … }]` with rules `[!](proto, ipnet, port, "regex")` and their
    /// shorter forms (OpenSIPS' script blacklists). The value is the list's name.
    fn dst_blacklist(&mut self) -> PResult<Spanned<GlobalValue>> {
        const WHAT: &str = "a dst_blacklist";
        let t = self.bump();
        let Tok::Ident(list) = t.tok else {
            return self.error(Diagnostic::error(
                "expected the blacklist's name after `dst_blacklist =`",
                t.span,
            ));
        };
        if self.eat(Punct::Slash) {
            loop {
                let f = self.bump();
                match &f.tok {
                    Tok::Ident(w)
                        if ["readonly", "expire", "default"]
                            .iter()
                            .any(|k| w.eq_ignore_ascii_case(k)) => {}
                    _ => {
                        return self.error(Diagnostic::error(
                            "expected a blacklist flag (readonly, expire, default)",
                            f.span,
                        ));
                    }
                }
                if !self.eat(Punct::Comma) {
                    break;
                }
            }
        }
        if self.eat(Punct::Colon) {
            if !self.eat(Punct::LBrace) {
                return self.unexpected("`{` to start the blacklist's rules");
            }
            while !self.eat(Punct::RBrace) {
                self.eat(Punct::Not);
                if self.eat(Punct::LParen) {
                    // (proto, ipnet, port, "regex") or a prefix of it.
                    loop {
                        let v = self.bump();
                        match v.tok {
                            Tok::Ident(_) | Tok::Ip(_) | Tok::Int(_) | Tok::Str(_) => {}
                            _ => {
                                return self.error(Diagnostic::error(
                                    format!(
                                        "expected a protocol, network, port or regex in {WHAT}"
                                    ),
                                    v.span,
                                ));
                            }
                        }
                        if self.eat(Punct::RParen) {
                            break;
                        }
                        if !self.eat(Punct::Comma) {
                            return self.unexpected("`,` or `)` in a blacklist rule");
                        }
                    }
                } else {
                    let v = self.bump();
                    if !matches!(v.tok, Tok::Ip(_)) {
                        return self.error(Diagnostic::error(
                            format!("expected a rule in {WHAT}"),
                            v.span,
                        ));
                    }
                }
                if !self.eat(Punct::Comma) && !self.at(Punct::RBrace) {
                    return self.unexpected("`,` or `}` between blacklist rules");
                }
            }
        }
        Ok(Spanned::new(GlobalValue::Ident(list), self.since(t.span)))
    }

    fn global_value(&mut self, name: &str) -> PResult<Spanned<GlobalValue>> {
        let t = self.bump();
        let mut v = match t.tok {
            Tok::Int(i) => GlobalValue::Int(i),
            Tok::P(Punct::Minus) => match self.bump().tok {
                Tok::Int(i) => GlobalValue::Int(-i),
                _ => return self.error(Diagnostic::error("expected a number after `-`", t.span)),
            },
            Tok::Str(s) => GlobalValue::Str(s),
            Tok::Ident(s) => GlobalValue::Ident(s),
            Tok::Ip(s) => GlobalValue::Ip(s),
            other => {
                let msg = format!("expected a value for `{name}`, found {}", describe(&other));
                return self.error(Diagnostic::error(msg, t.span));
            }
        };
        if let (GlobalValue::Int(n), true) = (&v, self.at_ident("use_auto_scaling_profile")) {
            let n = *n;
            self.bump();
            let p = self.bump();
            let Tok::Ident(profile) = p.tok else {
                return self.error(Diagnostic::error("expected a profile name", p.span));
            };
            v = GlobalValue::Workers { count: n, profile };
        }
        if let (GlobalValue::Str(first), true) = (&v, self.at(Punct::Colon)) {
            let mut paths = vec![first.clone()];
            while self.eat(Punct::Colon) {
                paths.push(self.string_arg("a directory")?.node);
            }
            v = GlobalValue::Paths(paths);
        }
        Ok(Spanned::new(v, self.since(t.span)))
    }

    fn socket_or_alias(
        &mut self,
        items: &mut Vec<Item>,
        name: Spanned<String>,
        raw: Spanned<String>,
    ) -> PResult<()> {
        if name.node == "listen" {
            // The value is read already: report and go on with the next statement (no
            // recovery that would lex the next `listen=` line's address as tokens).
            self.diags.push(
                Diagnostic::error("`listen` is not a parameter in OpenSIPS 4.0", name.span)
                    .with_label("removed in 4.0")
                    .with_help(format!("use `socket={}`", raw.node)),
            );
            return Ok(());
        }
        let span = name.span.to(raw.span);
        let result = if name.node == "alias" {
            crate::socket::parse_aliases(&raw.node).map(|a| Item::Alias(Spanned::new(a, span)))
        } else {
            crate::socket::parse_socket(&raw.node).map(|s| Item::Socket(Spanned::new(s, span)))
        };
        match result {
            Ok(item) => {
                items.push(item);
                Ok(())
            }
            Err(e) => {
                let mut d = Diagnostic::error(
                    format!("bad {} definition: {}", name.node, e.message),
                    crate::socket::sub_span(raw.span, &e.at),
                );
                if let Some(h) = e.help {
                    d = d.with_help(h);
                }
                self.diags.push(d);
                Ok(())
            }
        }
    }

    /// `route[name] { ... }`, `timer_route[name, secs] { ... }` …
    fn route_block(&mut self, items: &mut Vec<Item>) -> PResult<()> {
        let kw = self.bump();
        let Tok::Ident(word) = &kw.tok else {
            return self.unexpected("a route block");
        };
        let kind = RouteKind::from_keyword(word).unwrap_or(RouteKind::Request);
        let (mut name, mut interval) = (None, None);
        if self.eat(Punct::LBracket) {
            let t = self.bump();
            let n = match t.tok {
                Tok::Ident(s) | Tok::Str(s) => s,
                Tok::Int(i) => i.to_string(),
                _ => return self.error(Diagnostic::error("expected a route name", t.span)),
            };
            name = Some(Spanned::new(n, t.span));
            if self.eat(Punct::Comma) {
                let t = self.bump();
                let Tok::Int(secs) = t.tok else {
                    return self.error(Diagnostic::error(
                        "expected the timer interval in seconds",
                        t.span,
                    ));
                };
                interval = Some(Spanned::new(secs, t.span));
            }
            self.expect(Punct::RBracket, "`]` after the route name")?;
        }
        let header = self.since(kw.span);
        if !self.at(Punct::LBrace) {
            return self.unexpected("`{` to open the route body");
        }
        let body = self.block()?;
        items.push(Item::Route(RouteBlock {
            kind,
            name,
            interval,
            body,
            span: header,
        }));
        Ok(())
    }
}

fn starts_top_item(w: &str) -> bool {
    matches!(
        w,
        "loadmodule" | "modparam" | "include_file" | "import_file" | "socket" | "alias"
    ) || RouteKind::from_keyword(w).is_some()
}

/// How a token is named in "expected X, found Y".
pub(crate) fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(w) => format!("`{w}`"),
        Tok::Int(i) => format!("number `{i}`"),
        Tok::Str(s) => format!("string \"{}\"", s.escape_debug()),
        Tok::Pv(p) => format!("`{p}`"),
        Tok::Ip(a) => format!("address `{a}`"),
        Tok::Null => "`NULL`".into(),
        Tok::P(p) => format!("`{}`", punct_text(*p)),
        Tok::Eof => "end of file".into(),
    }
}

pub(crate) fn punct_text(p: Punct) -> &'static str {
    use Punct::*;
    match p {
        LBrace => "{",
        RBrace => "}",
        LParen => "(",
        RParen => ")",
        LBracket => "[",
        RBracket => "]",
        Semi => ";",
        Comma => ",",
        Colon => ":",
        Assign => "=",
        ColonAssign => ":=",
        PlusAssign => "+=",
        MinusAssign => "-=",
        StarAssign => "*=",
        SlashAssign => "/=",
        PercentAssign => "%=",
        AndAssign => "&=",
        OrAssign => "|=",
        XorAssign => "^=",
        Eq => "==",
        Ne => "!=",
        Lt => "<",
        Le => "<=",
        Gt => ">",
        Ge => ">=",
        Match => "=~",
        NotMatch => "!~",
        Not => "!",
        AndAnd => "&&",
        OrOr => "||",
        Plus => "+",
        Minus => "-",
        Star => "*",
        Slash => "/",
        Percent => "%",
        Amp => "&",
        Pipe => "|",
        Caret => "^",
        Tilde => "~",
        Shl => "<<",
        Shr => ">>",
    }
}
