//! Statements inside route blocks (OpenSIPS 4.0 cfg.y `action`/`stm`).

use super::{PResult, Parser, Reported, describe};
use crate::ast::{Arg, Assign, AssignOp, Block, Call, Case, CaseLabel, Stmt, StmtKind};
use crate::diag::Diagnostic;
use crate::lexer::{Punct, Tok};
use crate::source::Spanned;

/// Assignment operators and what they mean.
pub(crate) fn assign_op(p: Punct) -> Option<AssignOp> {
    Some(match p {
        Punct::Assign => AssignOp::Set,
        Punct::ColonAssign => AssignOp::Replace,
        Punct::PlusAssign => AssignOp::Add,
        Punct::MinusAssign => AssignOp::Sub,
        Punct::StarAssign => AssignOp::Mul,
        Punct::SlashAssign => AssignOp::Div,
        Punct::PercentAssign => AssignOp::Mod,
        Punct::AndAssign => AssignOp::And,
        Punct::OrAssign => AssignOp::Or,
        Punct::XorAssign => AssignOp::Xor,
        _ => return None,
    })
}

impl Parser<'_> {
    /// `{ stmt* }`
    pub(crate) fn block(&mut self) -> PResult<Block> {
        let open = self.expect(Punct::LBrace, "`{`")?;
        let mut stmts = Vec::new();
        loop {
            match &self.peek().tok {
                Tok::P(Punct::RBrace) => {
                    self.bump();
                    break;
                }
                Tok::Eof => {
                    return self.error(
                        Diagnostic::error("this `{` is never closed", open)
                            .with_label("unclosed block"),
                    );
                }
                Tok::Ident(w) if w == "include_file" || w == "import_file" => {
                    let kw = self.bump();
                    let t = self.bump();
                    if let Tok::Str(path) = t.tok {
                        self.eat(Punct::Semi);
                        let span = self.since(kw.span);
                        stmts.extend(self.nested_include(&path, span));
                    } else {
                        self.diags.push(Diagnostic::error(
                            "`include_file` needs a quoted file name",
                            t.span,
                        ));
                    }
                }
                _ => match self.statement() {
                    Ok(s) => stmts.push(s),
                    Err(Reported) => self.recover_stmt(),
                },
            }
        }
        // A stray `;` after `}` is tolerated, as older scripts have it.
        Ok(Block {
            stmts,
            span: self.since(open),
        })
    }

    /// Skips to just after the next `;` or before the `}` closing the current block.
    pub(crate) fn recover_stmt(&mut self) {
        let mut depth = 0i32;
        loop {
            match self.peek().tok {
                Tok::Eof => return,
                Tok::P(Punct::Semi) if depth <= 0 => {
                    self.bump();
                    return;
                }
                Tok::P(Punct::LBrace) => depth += 1,
                Tok::P(Punct::RBrace) => {
                    if depth <= 0 {
                        return;
                    }
                    depth -= 1;
                    if depth == 0 {
                        self.bump();
                        return;
                    }
                }
                _ => {}
            }
            self.bump();
        }
    }

    /// One statement.
    pub(crate) fn statement(&mut self) -> PResult<Stmt> {
        let t = self.peek().clone();
        let start = t.span;
        let kind = match &t.tok {
            Tok::P(Punct::Semi) => {
                self.bump();
                StmtKind::Nop
            }
            Tok::P(Punct::LBrace) => StmtKind::Block(self.block()?),
            Tok::Ident(w) => match w.as_str() {
                "if" => self.if_stmt()?,
                "while" => self.while_stmt()?,
                "for" => self.for_stmt()?,
                "switch" => self.switch_stmt()?,
                "return" => self.return_stmt()?,
                "exit" | "drop" => {
                    self.bump();
                    if self.eat(Punct::LParen) {
                        self.expect(Punct::RParen, "`)`")?;
                    }
                    self.end_stmt()?;
                    if w == "exit" {
                        StmtKind::Exit
                    } else {
                        StmtKind::Drop
                    }
                }
                "break" => {
                    self.bump();
                    if self.breakable == 0 {
                        return self.error(
                            Diagnostic::error(
                                "`break` outside of `switch`, `while` or `for`",
                                start,
                            )
                            .with_help("use `return` or `exit` to leave a route"),
                        );
                    }
                    self.end_stmt()?;
                    StmtKind::Break
                }
                "assert" => {
                    self.bump();
                    self.expect(Punct::LParen, "`(` after `assert`")?;
                    let cond = self.condition()?;
                    let mut message = None;
                    if self.eat(Punct::Comma) {
                        let t = self.bump();
                        let Tok::Str(m) = t.tok else {
                            return self.error(Diagnostic::error(
                                "the assert message is a string",
                                t.span,
                            ));
                        };
                        message = Some(m);
                    }
                    self.expect(Punct::RParen, "`)` after the assertion")?;
                    self.end_stmt()?;
                    StmtKind::Assert { cond, message }
                }
                "else" => {
                    return self.error(Diagnostic::error("`else` without a matching `if`", start));
                }
                "case" | "default" => {
                    return self.error(Diagnostic::error(
                        format!("`{w}` outside of a `switch`"),
                        start,
                    ));
                }
                _ => {
                    let call = self.call()?;
                    self.end_stmt()?;
                    StmtKind::Call(call)
                }
            },
            Tok::Pv(_) => {
                let a = self.assignment()?;
                self.end_stmt()?;
                StmtKind::Assign(a)
            }
            _ => return self.unexpected("a statement"),
        };
        Ok(Stmt {
            kind,
            span: self.since(start),
        })
    }

    fn end_stmt(&mut self) -> PResult<()> {
        if self.eat(Punct::Semi) {
            return Ok(());
        }
        let end = self.last_end();
        let at = crate::source::Span {
            file: self.peek().span.file,
            start: end,
            end: (end + 1).min(self.source_len()),
        };
        self.error(
            Diagnostic::error("expected `;` after the statement", at).with_label("missing `;`"),
        )
    }

    fn last_end(&self) -> u32 {
        self.since(crate::source::Span::default()).end
    }

    /// `PV op value` (`$var(x) = 1`, `$avp(a) := NULL`).
    pub(crate) fn assignment(&mut self) -> PResult<Assign> {
        let t = self.bump();
        let Tok::Pv(text) = t.tok else {
            return self.unexpected("a variable");
        };
        let target = self.pv_ref(text, t.span)?;
        let op_tok = self.peek().clone();
        let op = match op_tok.tok {
            Tok::P(p) => assign_op(p),
            _ => None,
        };
        let Some(op) = op else {
            return self.error(Diagnostic::error(
                format!(
                    "expected an assignment operator after `{}`, found {}",
                    target.text,
                    describe(&op_tok.tok)
                ),
                op_tok.span,
            ));
        };
        self.bump();
        let value = self.assign_expr()?;
        Ok(Assign { target, op, value })
    }

    fn if_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        self.expect(Punct::LParen, "`(` after `if`")?;
        let cond = self.condition()?;
        self.expect(Punct::RParen, "`)` to close the condition")?;
        let then = Box::new(self.statement()?);
        let otherwise = if self.at_ident("else") {
            self.bump();
            Some(Box::new(self.statement()?))
        } else {
            None
        };
        Ok(StmtKind::If {
            cond,
            then,
            otherwise,
        })
    }

    fn while_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        self.expect(Punct::LParen, "`(` after `while`")?;
        let cond = self.condition()?;
        self.expect(Punct::RParen, "`)` to close the condition")?;
        self.breakable += 1;
        let body = self.statement();
        self.breakable -= 1;
        Ok(StmtKind::While {
            cond,
            body: Box::new(body?),
        })
    }

    /// `for ($var(x) in $(avp(y)[*])) stmt`
    fn for_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        self.expect(Punct::LParen, "`(` after `for`")?;
        let v = self.bump();
        let Tok::Pv(text) = v.tok else {
            return self.error(Diagnostic::error("expected the loop variable", v.span));
        };
        let var = self.pv_ref(text, v.span)?;
        if !self.at_ident("in") {
            return self.unexpected("`in`");
        }
        self.bump();
        let it = self.bump();
        let Tok::Pv(text) = it.tok else {
            return self.error(Diagnostic::error(
                "expected an indexed variable to iterate over",
                it.span,
            ));
        };
        let iter = self.pv_ref(text, it.span)?;
        self.expect(Punct::RParen, "`)`")?;
        self.breakable += 1;
        let body = self.statement();
        self.breakable -= 1;
        Ok(StmtKind::For {
            var,
            iter,
            body: Box::new(body?),
        })
    }

    /// `switch ($pv) { case 1: ... break; case "x": ... default: ... }`
    fn switch_stmt(&mut self) -> PResult<StmtKind> {
        let kw = self.bump();
        self.expect(Punct::LParen, "`(` after `switch`")?;
        let s = self.bump();
        let Tok::Pv(text) = s.tok else {
            return self.error(Diagnostic::error("`switch` takes a variable", s.span));
        };
        let subject = self.pv_ref(text, s.span)?;
        self.expect(Punct::RParen, "`)`")?;
        self.expect(Punct::LBrace, "`{`")?;
        let (mut cases, mut default) = (Vec::new(), None);
        self.breakable += 1;
        let r = self.switch_body(&mut cases, &mut default);
        self.breakable -= 1;
        r?;
        if cases.is_empty() {
            return self.error(Diagnostic::error("`switch` without any `case`", kw.span));
        }
        Ok(StmtKind::Switch {
            subject,
            cases,
            default,
        })
    }

    fn switch_body(
        &mut self,
        cases: &mut Vec<Case>,
        default: &mut Option<Vec<crate::ast::Stmt>>,
    ) -> PResult<()> {
        loop {
            let t = self.peek().clone();
            match &t.tok {
                Tok::P(Punct::RBrace) => {
                    self.bump();
                    return Ok(());
                }
                Tok::Eof => return self.unexpected("`}` to close the `switch`"),
                Tok::Ident(w) if w == "case" => {
                    self.bump();
                    if default.is_some() {
                        self.diags.push(Diagnostic::error(
                            "`default` must be the last label of a `switch`",
                            t.span,
                        ));
                    }
                    let label = self.case_label();
                    if !self.eat(Punct::Colon) {
                        let _ = self.unexpected::<()>("`:` after the case label");
                        self.skip_to_label_end();
                    }
                    let body = self.case_body()?;
                    // A bad label was reported; keep the case so no "switch without any case" follows.
                    let label = label.unwrap_or_else(|| Spanned::new(CaseLabel::Int(0), t.span));
                    cases.push(Case { label, body });
                }
                Tok::Ident(w) if w == "default" => {
                    self.bump();
                    if default.is_some() {
                        self.diags.push(Diagnostic::error(
                            "a `switch` has only one `default`",
                            t.span,
                        ));
                    }
                    self.expect(Punct::Colon, "`:` after `default`")?;
                    *default = Some(self.case_body()?);
                }
                _ => {
                    self.diags.push(
                        Diagnostic::error(
                            format!("expected `case` or `default`, found {}", describe(&t.tok)),
                            t.span,
                        )
                        .with_help("statements in a `switch` belong after a `case ...:` label"),
                    );
                    // Consume the statement so the rest of the switch still parses.
                    if self.statement().is_err() {
                        self.recover_stmt();
                    }
                }
            }
        }
    }

    /// A `case` label; on error it is reported and `None` returned.
    fn case_label(&mut self) -> Option<Spanned<CaseLabel>> {
        let l = self.bump();
        let label = match l.tok {
            Tok::Int(i) => CaseLabel::Int(i),
            Tok::P(Punct::Minus) => match self.peek().tok {
                Tok::Int(i) => {
                    self.bump();
                    CaseLabel::Int(-i)
                }
                _ => {
                    self.diags
                        .push(Diagnostic::error("expected a number after `-`", l.span));
                    return None;
                }
            },
            Tok::Str(s) => CaseLabel::Str(s),
            other => {
                self.diags.push(
                    Diagnostic::error(
                        format!(
                            "a `case` label is a number or a string, found {}",
                            describe(&other)
                        ),
                        l.span,
                    )
                    .with_help("compare variables with `if` instead"),
                );
                return None;
            }
        };
        Some(Spanned::new(label, self.since(l.span)))
    }

    /// After a bad label: skip to its `:` (or the end of the switch).
    fn skip_to_label_end(&mut self) {
        while !matches!(
            self.peek().tok,
            Tok::P(Punct::Colon) | Tok::P(Punct::RBrace) | Tok::Eof
        ) {
            self.bump();
        }
        self.eat(Punct::Colon);
    }

    fn case_body(&mut self) -> PResult<Vec<Stmt>> {
        let mut body = Vec::new();
        loop {
            match &self.peek().tok {
                Tok::P(Punct::RBrace) | Tok::Eof => return Ok(body),
                Tok::Ident(w) if w == "case" || w == "default" => return Ok(body),
                _ => match self.statement() {
                    Ok(s) => body.push(s),
                    Err(Reported) => self.recover_stmt(),
                },
            }
        }
    }

    /// `return`, `return N`, `return(N)`, `return($v)`, `return(N, a, b)`, `return(, a)`.
    fn return_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let mut values = Vec::new();
        if self.eat(Punct::LParen) {
            if !self.eat(Punct::RParen) {
                loop {
                    if self.at(Punct::Comma) {
                        values.push(None);
                    } else {
                        values.push(Some(self.assign_expr()?));
                    }
                    if !self.eat(Punct::Comma) {
                        break;
                    }
                }
                self.expect(Punct::RParen, "`)` after the return values")?;
            }
        } else if !self.at(Punct::Semi) {
            values.push(Some(self.assign_expr()?));
        }
        self.end_stmt()?;
        Ok(StmtKind::Return(values))
    }

    /// `name(args)`. A bare word needs `()` (OpenSIPS: "bare word ... need '()'").
    pub(crate) fn call(&mut self) -> PResult<Call> {
        let t = self.bump();
        let Tok::Ident(name) = t.tok else {
            return self.unexpected("a function name");
        };
        let name = Spanned::new(name, t.span);
        if !self.at(Punct::LParen) {
            let found = self.peek().clone();
            return self.error(
                Diagnostic::error(
                    format!(
                        "expected `(` after `{}`, found {}",
                        name.node,
                        describe(&found.tok)
                    ),
                    found.span,
                )
                .with_help(format!("a function is called as `{}()`", name.node)),
            );
        }
        self.call_after_name(name)
    }

    fn arg(&mut self) -> PResult<Arg> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Str(mut s) => {
                self.bump();
                let mut span = t.span;
                while let Tok::Str(more) = &self.peek().tok {
                    s.push_str(more);
                    span = span.to(self.bump().span);
                }
                Ok(Arg::Str(s, span))
            }
            Tok::Int(i) => {
                self.bump();
                Ok(Arg::Int(i, t.span))
            }
            Tok::P(Punct::Minus) | Tok::P(Punct::Plus) => {
                self.bump();
                let n = self.bump();
                match n.tok {
                    Tok::Int(i) => Ok(Arg::Int(
                        if t.tok == Tok::P(Punct::Minus) { -i } else { i },
                        t.span.to(n.span),
                    )),
                    _ => self.error(Diagnostic::error(
                        "expected a number after the sign",
                        n.span,
                    )),
                }
            }
            Tok::Pv(text) => {
                self.bump();
                Ok(Arg::Pv(self.pv_ref(text, t.span)?))
            }
            Tok::Null => {
                self.bump();
                Ok(Arg::Null(t.span))
            }
            Tok::Ident(w) => {
                self.bump();
                if self.at(Punct::LParen) {
                    // The function inside `async(f(...), resume)` / `launch(f(...))`.
                    let call = self.call_after_name(Spanned::new(w, t.span))?;
                    return Ok(Arg::Call(Box::new(call)));
                }
                Ok(Arg::Ident(w, t.span))
            }
            _ => self.unexpected("a function argument (a string, a number or a variable)"),
        }
    }

    /// Finishes a call whose name was already consumed and whose `(` is next.
    pub(crate) fn call_after_name(&mut self, name: Spanned<String>) -> PResult<Call> {
        self.bump();
        let mut args = Vec::new();
        if !self.eat(Punct::RParen) {
            loop {
                if self.at(Punct::Comma) || self.at(Punct::RParen) {
                    args.push(None);
                } else {
                    args.push(Some(self.arg()?));
                }
                if self.eat(Punct::Comma) {
                    continue;
                }
                self.expect(Punct::RParen, "`,` or `)` in the argument list")?;
                break;
            }
        }
        Ok(Call {
            span: self.since(name.span),
            name,
            args,
        })
    }
}
