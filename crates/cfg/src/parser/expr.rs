//! Conditions and assignment right-hand sides, with OpenSIPS 4.0 precedence: `&&` and `||` share
//! one level (left-associative); a comparison is `PV op value`; in arithmetic, `| & ^ << >>` sit
//! below `+ - * / %`, which share one level; `~` binds tightest.

use super::{PResult, Parser, describe};
use crate::ast::{BinOp, CmpOp, Expr, ExprKind};
use crate::diag::Diagnostic;
use crate::lexer::{Punct, Tok};
use crate::source::Span;

fn cmp_op(p: Punct) -> Option<CmpOp> {
    Some(match p {
        Punct::Eq => CmpOp::Eq,
        Punct::Ne => CmpOp::Ne,
        Punct::Lt => CmpOp::Lt,
        Punct::Le => CmpOp::Le,
        Punct::Gt => CmpOp::Gt,
        Punct::Ge => CmpOp::Ge,
        Punct::Match => CmpOp::Match,
        Punct::NotMatch => CmpOp::NotMatch,
        _ => return None,
    })
}

fn bit_op(p: Punct) -> Option<BinOp> {
    Some(match p {
        Punct::Pipe => BinOp::BitOr,
        Punct::Amp => BinOp::BitAnd,
        Punct::Caret => BinOp::BitXor,
        Punct::Shl => BinOp::Shl,
        Punct::Shr => BinOp::Shr,
        _ => return None,
    })
}

fn arith_op(p: Punct) -> Option<BinOp> {
    Some(match p {
        Punct::Plus => BinOp::Add,
        Punct::Minus => BinOp::Sub,
        Punct::Star => BinOp::Mul,
        Punct::Slash => BinOp::Div,
        Punct::Percent => BinOp::Mod,
        _ => return None,
    })
}

impl Parser<'_> {
    fn expr(&self, kind: ExprKind, start: Span) -> Expr {
        Expr {
            kind,
            span: self.since(start),
        }
    }

    fn peek_punct(&mut self) -> Option<Punct> {
        match self.peek().tok {
            Tok::P(p) => Some(p),
            _ => None,
        }
    }

    /// A condition: `a && b || !c` (one precedence level for `&&`/`||`).
    pub(crate) fn condition(&mut self) -> PResult<Expr> {
        let start = self.peek().span;
        let mut left = self.cond_unary()?;
        loop {
            let and = match self.peek_punct() {
                Some(Punct::AndAnd) => true,
                Some(Punct::OrOr) => false,
                _ => return Ok(left),
            };
            self.bump();
            let right = Box::new(self.cond_unary()?);
            let l = Box::new(left);
            left = self.expr(
                if and {
                    ExprKind::And(l, right)
                } else {
                    ExprKind::Or(l, right)
                },
                start,
            );
        }
    }

    fn cond_unary(&mut self) -> PResult<Expr> {
        let start = self.peek().span;
        if self.eat(Punct::Not) {
            let inner = self.cond_unary()?;
            return Ok(self.expr(ExprKind::Not(Box::new(inner)), start));
        }
        self.cond_atom()
    }

    fn cond_atom(&mut self) -> PResult<Expr> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::P(Punct::LParen) => {
                self.bump();
                let e = self.condition()?;
                self.expect(Punct::RParen, "`)`")?;
                Ok(e)
            }
            Tok::P(Punct::LBracket) => {
                self.bump();
                let e = self.assign_expr()?;
                self.expect(Punct::RBracket, "`]`")?;
                Ok(self.expr(ExprKind::Test(Box::new(e)), t.span))
            }
            Tok::Pv(_) => self.pv_led(true),
            Tok::Int(i) => {
                let i = *i;
                self.bump();
                self.no_comparison_after("a number", t.span)?;
                Ok(self.expr(ExprKind::Int(i), t.span))
            }
            Tok::Ident(w) => {
                let w = w.clone();
                self.bump();
                if !self.at(Punct::LParen) {
                    return self.bare_word_condition(&w, t.span);
                }
                let call = self.call_after_name(crate::source::Spanned::new(w, t.span))?;
                self.no_comparison_after("a function call", call.span)?;
                Ok(self.expr(ExprKind::Call(call), t.span))
            }
            Tok::Str(_) => {
                self.bump();
                self.no_comparison_after("a string", t.span)?;
                self.error(Diagnostic::error("a string is not a condition", t.span))
            }
            _ => self.unexpected("a condition"),
        }
    }

    /// OpenSIPS only compares a variable with a value; `1 == $x` or `f() == 1` is an error.
    fn no_comparison_after(&mut self, what: &str, left: Span) -> PResult<()> {
        let t = self.peek().clone();
        if let Tok::P(p) = t.tok
            && cmp_op(p).is_some()
        {
            return self.error(
                Diagnostic::error(
                    format!("the left side of a comparison must be a variable, not {what}"),
                    left,
                )
                .with_help("write the variable first, e.g. `$var(x) == 1`"),
            );
        }
        Ok(())
    }

    /// A word that is neither a call nor a keyword where a condition belongs. The 1.x-era
    /// forms `uri == myself`, `method == "X"`, `src_ip == ...` get their 4.0 replacement.
    fn bare_word_condition(&mut self, w: &str, span: Span) -> PResult<Expr> {
        let help = match w {
            "uri" => {
                Some("`uri == myself` no longer exists: use `is_myself(\"$rd\")`, or compare `$ru`")
            }
            "method" => {
                Some("`method` no longer exists: use `is_method(\"...\")` or compare `$rm`")
            }
            "src_ip" => Some("`src_ip` no longer exists: compare `$si`"),
            "dst_ip" => Some("`dst_ip` no longer exists: use `$socket_in(ip)`"),
            "src_port" => Some("`src_port` no longer exists: compare `$sp`"),
            "dst_port" => Some("`dst_port` no longer exists: use `$socket_in(port)`"),
            "proto" => Some("`proto` no longer exists: use `$socket_in(proto)`"),
            "myself" => Some("`myself` is not a value in OpenSIPS 4.0: use `is_myself(\"$rd\")`"),
            _ => None,
        };
        let mut d = Diagnostic::error(format!("`{w}` is not a condition"), span);
        d = match help {
            Some(h) => d.with_label("not supported in OpenSIPS 4.0").with_help(h),
            None => d.with_help(format!(
                "call a function as `{w}()`, or test a variable like `$var({w})`"
            )),
        };
        self.error(d)
    }

    /// A PV, then optionally a comparison or (in conditions) an assignment.
    fn pv_led(&mut self, allow_assign: bool) -> PResult<Expr> {
        let t = self.bump();
        let Tok::Pv(text) = t.tok else {
            return self.unexpected("a variable");
        };
        let pv = self.pv_ref(text, t.span)?;
        let Some(p) = self.peek_punct() else {
            return Ok(self.expr(ExprKind::Pv(pv), t.span));
        };
        if let Some(op) = cmp_op(p) {
            self.bump();
            let right = self.cmp_value(op)?;
            return Ok(self.expr(
                ExprKind::Cmp {
                    op,
                    left: pv,
                    right: Box::new(right),
                },
                t.span,
            ));
        }
        if let (true, Some(op)) = (allow_assign, super::stmt::assign_op(p)) {
            self.bump();
            let value = self.assign_expr()?;
            let a = crate::ast::Assign {
                target: pv,
                op,
                value,
            };
            return Ok(self.expr(ExprKind::Assign(Box::new(a)), t.span));
        }
        Ok(self.expr(ExprKind::Pv(pv), t.span))
    }

    /// The right side of `PV op ...`: a PV, string, number, NULL or IP/network.
    fn cmp_value(&mut self, op: CmpOp) -> PResult<Expr> {
        let t = self.bump();
        let kind = match t.tok {
            Tok::Pv(text) => ExprKind::Pv(self.pv_ref(text, t.span)?),
            Tok::Str(s) => ExprKind::Str(s),
            Tok::Int(i) => ExprKind::Int(i),
            Tok::P(Punct::Minus) => match self.bump().tok {
                Tok::Int(i) => ExprKind::Int(-i),
                _ => return self.error(Diagnostic::error("expected a number after `-`", t.span)),
            },
            Tok::Null => ExprKind::Null,
            Tok::Ip(a) => ExprKind::Ip(a),
            Tok::P(Punct::LBracket) => {
                let a = self.bump();
                let Tok::Ip(addr) = a.tok else {
                    return self.error(Diagnostic::error(
                        "expected an IPv6 address inside `[ ]`",
                        a.span,
                    ));
                };
                self.expect(Punct::RBracket, "`]`")?;
                ExprKind::Ip(addr)
            }
            Tok::Ident(w) => {
                return self.error(
                    Diagnostic::error(format!("cannot compare with the bare word `{w}`"), t.span)
                        .with_help(format!("quote it: \"{w}\"")),
                );
            }
            other => {
                let msg = format!(
                    "expected a value to compare with, found {}",
                    describe(&other)
                );
                return self.error(Diagnostic::error(msg, t.span));
            }
        };
        if matches!(kind, ExprKind::Null) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            return self.error(Diagnostic::error(
                "NULL can only be compared with `==` or `!=`",
                t.span,
            ));
        }
        Ok(self.expr(kind, t.span))
    }

    /// The right side of an assignment.
    pub(crate) fn assign_expr(&mut self) -> PResult<Expr> {
        self.left_assoc(Self::arith, bit_op)
    }

    fn arith(&mut self) -> PResult<Expr> {
        self.left_assoc(Self::arith_unary, arith_op)
    }

    /// `operand (op operand)*`, folded to the left.
    fn left_assoc(
        &mut self,
        operand: fn(&mut Self) -> PResult<Expr>,
        op_of: fn(Punct) -> Option<BinOp>,
    ) -> PResult<Expr> {
        let start = self.peek().span;
        let mut left = operand(self)?;
        while let Some(op) = self.peek_punct().and_then(op_of) {
            self.bump();
            let right = operand(self)?;
            left = self.expr(
                ExprKind::Binary {
                    op,
                    left: Box::new(left),
                    right: Box::new(right),
                },
                start,
            );
        }
        Ok(left)
    }

    fn arith_unary(&mut self) -> PResult<Expr> {
        let t = self.peek().clone();
        match t.tok {
            Tok::P(Punct::Tilde) => {
                self.bump();
                let inner = self.arith_unary()?;
                Ok(self.expr(ExprKind::BitNot(Box::new(inner)), t.span))
            }
            Tok::P(Punct::Minus) | Tok::P(Punct::Plus) => {
                self.bump();
                let n = self.bump();
                match n.tok {
                    Tok::Int(i) => Ok(self.expr(
                        ExprKind::Int(if t.tok == Tok::P(Punct::Minus) { -i } else { i }),
                        t.span,
                    )),
                    _ => self.error(
                        Diagnostic::error("a sign can only precede a number", n.span)
                            .with_help("write `0 - $var(x)`"),
                    ),
                }
            }
            Tok::Int(i) => {
                self.bump();
                Ok(self.expr(ExprKind::Int(i), t.span))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(self.expr(ExprKind::Str(s), t.span))
            }
            Tok::Null => {
                self.bump();
                Ok(self.expr(ExprKind::Null, t.span))
            }
            Tok::Ip(a) => {
                self.bump();
                Ok(self.expr(ExprKind::Ip(a), t.span))
            }
            Tok::Pv(_) => self.pv_led(false),
            Tok::Ident(_) => {
                let call = self.call()?;
                Ok(self.expr(ExprKind::Call(call), t.span))
            }
            Tok::P(Punct::LParen) => {
                self.bump();
                let e = self.assign_expr()?;
                self.expect(Punct::RParen, "`)`")?;
                Ok(e)
            }
            _ => self.unexpected("a value"),
        }
    }
}
