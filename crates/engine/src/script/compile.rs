//! Lowering a checked syntax tree to the [`super::ir`] form: names become slots, bits and
//! indexes. Anything the interpreter does not run yet is reported with its place in the file,
//! rather than silently ignored.

use std::collections::HashMap;

use bytestring::ByteString;
use cfg::Diagnostic;
use cfg::ast::{self, Arg, ExprKind, Item, RouteKind, StmtKind};
use cfg::pv::{FmtPart, PvSpec};
use cfg::source::Span;

use super::ir::{Assign, Call, CoreFn, Expr, Piece, PvRead, Read, Stmt, Write};
use crate::pv::CorePv;
use crate::value::Value;

/// Names collected while lowering.
#[derive(Debug, Default)]
pub(crate) struct Names {
    pub vars: HashMap<String, usize>,
    pub flags: HashMap<String, u32>,
    pub routes: HashMap<String, usize>,
    pub avps: HashMap<String, usize>,
    /// `$bavp(name)`s, numbered apart from `$avp`s.
    pub bavps: HashMap<String, usize>,
    /// `proto:host:port` of the configured sockets, for `force_send_socket`.
    pub sockets: Vec<String>,
    /// failure/onreply/branch/local routes by kind and name ("" for an unnamed one).
    pub special: HashMap<(RouteKind, String), usize>,
}

pub(crate) struct Lower<'a> {
    pub names: &'a mut Names,
    pub diags: Vec<Diagnostic>,
    pub available: &'a crate::Available,
    pub sources: &'a cfg::SourceMap,
}

type L<T> = Result<T, ()>;

fn unsupported(what: String, span: Span) -> Diagnostic {
    Diagnostic::error(what, span).with_label("not supported by the rsips interpreter yet")
}

impl Lower<'_> {
    fn fail<T>(&mut self, d: Diagnostic) -> L<T> {
        self.diags.push(d);
        Err(())
    }

    pub fn block(&mut self, stmts: &[ast::Stmt]) -> Vec<Stmt> {
        stmts.iter().filter_map(|s| self.stmt(s).ok()).collect()
    }

    fn stmt(&mut self, s: &ast::Stmt) -> L<Stmt> {
        Ok(match &s.kind {
            StmtKind::Call(c) => Stmt::Call(self.call(c)?),
            StmtKind::Assign(a) => Stmt::Assign(self.assign(a)?),
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => Stmt::If {
                cond: self.expr(cond)?,
                then: Box::new(self.stmt(then)?),
                otherwise: match otherwise {
                    Some(o) => Some(Box::new(self.stmt(o)?)),
                    None => None,
                },
            },
            StmtKind::While { cond, body } => Stmt::While {
                cond: self.expr(cond)?,
                body: Box::new(self.stmt(body)?),
            },
            StmtKind::Switch {
                subject,
                cases,
                default,
            } => self.switch(subject, cases, default.as_deref())?,
            StmtKind::Return(values) => {
                let code = match values.first() {
                    None => None,
                    Some(None) => Some(Expr::Const(Value::Int(1))),
                    Some(Some(e)) => Some(self.expr(e)?),
                };
                let mut extra = Vec::new();
                for v in values.iter().skip(1) {
                    extra.push(match v {
                        Some(e) => self.expr(e)?,
                        None => Expr::Const(Value::Null),
                    });
                }
                Stmt::Return(code, extra)
            }
            StmtKind::Exit => Stmt::Exit,
            StmtKind::Drop => Stmt::Drop,
            StmtKind::Break => Stmt::Break,
            StmtKind::Block(b) => Stmt::Block(self.block(&b.stmts)),
            StmtKind::Nop => Stmt::Nop,
            StmtKind::For { var, iter, body } => {
                let var = self.write(var)?;
                let values = self.read(&iter.spec, iter.span)?;
                Stmt::For {
                    var,
                    values,
                    body: Box::new(self.stmt(body)?),
                }
            }
            StmtKind::Assert { cond, message } => Stmt::Assert {
                cond: self.expr(cond)?,
                message: message.clone().unwrap_or_else(|| "assertion failed".into()),
            },
        })
    }

    fn switch(
        &mut self,
        subject: &ast::PvRef,
        cases: &[ast::Case],
        default: Option<&[ast::Stmt]>,
    ) -> L<Stmt> {
        let subject = self.read(&subject.spec, subject.span)?;
        let mut body = Vec::new();
        let mut labels = Vec::new();
        for c in cases {
            let v = match &c.label.node {
                ast::CaseLabel::Int(i) => Value::Int(*i),
                ast::CaseLabel::Str(s) => Value::str(s),
            };
            labels.push((v, body.len()));
            body.extend(self.block(&c.body));
        }
        let default = default.map(|d| {
            let at = body.len();
            body.extend(self.block(d));
            at
        });
        Ok(Stmt::Switch {
            subject,
            cases: labels,
            default,
            body,
        })
    }

    fn assign(&mut self, a: &ast::Assign) -> L<Assign> {
        let target = self.write(&a.target)?;
        Ok(Assign {
            target,
            op: a.op,
            value: self.expr(&a.value)?,
        })
    }

    fn write(&mut self, p: &ast::PvRef) -> L<Write> {
        Ok(match (p.spec.name.as_str(), p.spec.arg.as_deref()) {
            ("var", Some(name)) => Write::Var(self.var(name)),
            ("ru" | "ruri", None) => Write::Ruri,
            ("rU" | "ruri.user", None) => Write::RuriUser,
            ("rd" | "ruri.domain", None) => Write::RuriHost,
            ("rp", None) => Write::RuriPort,
            ("du" | "duri", None) => Write::DstUri,
            ("ru_q", None) => Write::RuriQ,
            ("socket_out", None) => Write::SocketOut,
            ("T_fr_timeout", None) => Write::FrTimeout,
            ("msg.branch" | "branch", None) => Write::AppendBranch,
            ("T_fr_inv_timeout", None) => Write::FrInvTimeout,
            ("log_level", None) => Write::LogLevel,
            ("xlog_level", None) => Write::XlogLevel,
            ("msg.flag", Some(name)) => Write::Flag(self.flag_named(name, p.span)?),
            ("acc_extra", Some(tag)) if !tag.contains('$') => Write::AccExtra(tag.trim().into()),
            ("msg.branch.flag" | "branch.flag", Some(name)) => {
                let at = self.branch_flag_index(&p.spec, p.span)?;
                Write::BranchFlag(self.flag_named(name, p.span)?, at)
            }
            ("msg.branch.attr" | "tm.branch.attr", Some(name)) if !name.contains('$') => {
                let at = match &p.spec.index {
                    None => None,
                    Some(cfg::pv::PvIndex::At(i)) => Some(*i),
                    Some(cfg::pv::PvIndex::Var(_)) => {
                        return self.fail(unsupported("a computed branch index".into(), p.span));
                    }
                    Some(_) => {
                        return self.fail(Diagnostic::error(
                            format!("`${}` takes a branch number as its index", p.spec.name),
                            p.span,
                        ));
                    }
                };
                if p.spec.name == "tm.branch.attr" {
                    Write::TmBranchAttr(name.into(), at)
                } else {
                    Write::BranchAttr(name.into(), at)
                }
            }
            (
                name @ ("msg.branch.uri" | "msg.branch.duri" | "msg.branch.q" | "msg.branch.flags"
                | "msg.branch.socket"),
                None,
            ) => {
                use crate::pv::BranchField;
                let field = match name {
                    "msg.branch.uri" => BranchField::Uri,
                    "msg.branch.duri" => BranchField::Duri,
                    "msg.branch.q" => BranchField::Q,
                    "msg.branch.socket" => BranchField::Socket,
                    _ => BranchField::Flags,
                };
                let at = match &p.spec.index {
                    None => None,
                    Some(cfg::pv::PvIndex::At(i)) => Some(*i),
                    Some(cfg::pv::PvIndex::Var(_)) => {
                        return self.fail(unsupported("a computed branch index".into(), p.span));
                    }
                    Some(_) => {
                        return self.fail(Diagnostic::error(
                            format!("`${name}` takes a branch number as its index"),
                            p.span,
                        ));
                    }
                };
                Write::BranchField(field, at)
            }
            ("avp", Some(name)) if !name.contains('$') => {
                let slot = self.avp_slot(p)?;
                Write::Avp(self.avp(name), slot)
            }
            ("bavp", Some(name)) if !name.contains('$') => {
                let slot = self.avp_slot(p)?;
                Write::Bavp(self.bavp(name), slot)
            }
            ("sdp", None) if p.spec.index.is_none() => {
                Write::Sdp(Box::new(super::ir::SdpTarget::Body))
            }
            ("sdp.line" | "sdp.session" | "sdp.stream", Some(arg)) => {
                use crate::pv::sdp::LineOp;
                // OpenSIPS 4.0 sdp_ops: `[insert]` / `[insertAfter]` add a line before / after
                // the selected one instead of replacing it; no other index exists.
                let op = match &p.spec.index {
                    None => LineOp::Set,
                    Some(cfg::pv::PvIndex::Insert) => LineOp::Insert,
                    Some(cfg::pv::PvIndex::InsertAfter) => LineOp::InsertAfter,
                    Some(_) => {
                        return self.fail(
                            Diagnostic::error(
                                format!(
                                    "`${}` takes only `[insert]` or `[insertAfter]` as an index",
                                    p.spec.name
                                ),
                                p.span,
                            )
                            .with_help(
                                "select the line inside the parentheses: `[12]`, `a=rtpmap[1]`",
                            ),
                        );
                    }
                };
                let sel = self.sdp_selector(&p.spec.name, arg, p.span)?;
                Write::Sdp(Box::new(super::ir::SdpTarget::Lines(sel, op)))
            }
            ("sdp.stream.idx", _) => {
                return self.fail(Diagnostic::error("`$sdp.stream.idx` is read-only", p.span));
            }
            _ => return self.fail(unsupported(format!("assigning to `{}`", p.text), p.span)),
        })
    }

    /// The selector of `$sdp.line/.session/.stream/.stream.idx(...)`, its `[$pv]` indexes
    /// compiled.
    fn sdp_selector(&mut self, name: &str, arg: &str, span: Span) -> L<super::ir::SdpSel> {
        use crate::pv::sdp::{RawIdx, SdpScope, parse_selector};
        let scope = match name {
            "sdp.line" => SdpScope::Body,
            "sdp.session" => SdpScope::Session,
            _ => SdpScope::Stream,
        };
        let sel = match parse_selector(scope, arg) {
            Ok(sel) => sel,
            Err(e) => {
                return self.fail(Diagnostic::error(
                    format!("bad `${name}` selector: {e}"),
                    span,
                ));
            }
        };
        sel.try_map(|i| match i {
            RawIdx::At(n) => Ok(super::ir::SdpIdx::At(n)),
            RawIdx::Pv(spec) => Ok(super::ir::SdpIdx::Pv(Box::new(self.read(&spec, span)?))),
        })
    }

    fn avp(&mut self, name: &str) -> usize {
        let n = self.names.avps.len();
        *self.names.avps.entry(name.to_owned()).or_insert(n)
    }

    fn bavp(&mut self, name: &str) -> usize {
        let n = self.names.bavps.len();
        *self.names.bavps.entry(name.to_owned()).or_insert(n)
    }

    /// The AVP slot an assignment names (`$avp(x)`, `$(avp(x)[1])`, `[append]`, `[*]`).
    fn avp_slot(&mut self, p: &ast::PvRef) -> L<super::ir::AvpSlot> {
        Ok(match &p.spec.index {
            None => super::ir::AvpSlot::Newest,
            Some(cfg::pv::PvIndex::At(i)) => super::ir::AvpSlot::At(*i),
            Some(cfg::pv::PvIndex::Append) => super::ir::AvpSlot::Append,
            Some(cfg::pv::PvIndex::All) => super::ir::AvpSlot::All,
            Some(cfg::pv::PvIndex::Var(_)) => {
                return self.fail(unsupported("a computed AVP index".into(), p.span));
            }
            // The checker refuses these on anything but SDP lines.
            Some(cfg::pv::PvIndex::Insert | cfg::pv::PvIndex::InsertAfter) => {
                return self.fail(Diagnostic::error("an SDP-only index on an AVP", p.span));
            }
        })
    }

    fn var(&mut self, name: &str) -> usize {
        let n = self.names.vars.len();
        *self.names.vars.entry(name.to_owned()).or_insert(n)
    }

    fn flag(&mut self, arg: Option<&Option<Arg>>, span: Span) -> L<u32> {
        let Some(Some(Arg::Str(name, _))) = arg else {
            return self.fail(Diagnostic::error("a flag name is a quoted string", span));
        };
        self.flag_named(name, span)
    }

    /// The branch `$msg.branch.flag(NAME)[i]` names: a fixed number, or none (the last
    /// branch). The legacy `$branch.flag(NAME)` counts the appended branches only, as
    /// `$branch(...)` does (its 0 is the first one appended).
    fn branch_flag_index(&mut self, spec: &PvSpec, span: Span) -> L<Option<i64>> {
        let at = match &spec.index {
            None => None,
            Some(cfg::pv::PvIndex::At(i)) => Some(*i),
            Some(cfg::pv::PvIndex::Var(_)) => {
                return self.fail(unsupported("a computed branch index".into(), span));
            }
            Some(_) => {
                return self.fail(Diagnostic::error(
                    format!("`${}` takes a branch number as its index", spec.name),
                    span,
                ));
            }
        };
        Ok(match (spec.name.as_str(), at) {
            ("branch.flag", Some(i)) if i >= 0 => Some(i + 1),
            _ => at,
        })
    }

    /// The bit of a named flag, numbered on first use.
    fn flag_named(&mut self, name: &str, span: Span) -> L<u32> {
        // `$msg.flag("NAT")` and `$msg.flag(NAT)` name the flag `setflag("NAT")` sets.
        let name = &name
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_owned();
        let n = self.names.flags.len() as u32;
        if n >= 64 && !self.names.flags.contains_key(name) {
            return self.fail(Diagnostic::error("more than 64 distinct flags", span));
        }
        Ok(*self.names.flags.entry(name.clone()).or_insert(n))
    }

    pub fn read(&mut self, spec: &PvSpec, span: Span) -> L<PvRead> {
        if let Some(context) = &spec.context {
            let which = match context.trim().to_ascii_lowercase().as_str() {
                "request" => super::ir::Context::Request,
                "reply" => super::ir::Context::Reply,
                other => {
                    return self.fail(
                        Diagnostic::error(format!("unknown PV context `<{other}>`"), span)
                            .with_help("the contexts are `<request>` and `<reply>`"),
                    );
                }
            };
            let mut inner = spec.clone();
            inner.context = None;
            inner.transforms.clear();
            let mut read = self.read(&inner, span)?;
            // Only message reads depend on the message; `$var`, `$avp` … read the same anywhere.
            if let Read::Core(pv) = read.read {
                read.read = Read::InContext(which, pv);
            }
            for t in &spec.transforms {
                let t = self.transform(t, span)?;
                read.transforms.push(t);
            }
            return Ok(read);
        }
        let read = match (spec.name.as_str(), spec.arg.as_deref()) {
            ("var", Some(name)) if spec.index.is_none() => Read::Var(self.var(name)),
            ("cfg_line", None) => {
                let line = self
                    .sources
                    .get(span.file)
                    .map_or(0, |f| f.line_col(span.start).0);
                Read::Const(Value::Int(line as i64))
            }
            ("cfg_file", None) => Read::Const(Value::from(
                self.sources.path(span.file).display().to_string(),
            )),
            ("msg.flag", Some(name)) => Read::Flag(self.flag_named(name, span)?),
            ("acc_extra", Some(tag)) if !tag.contains('$') => Read::AccExtra(tag.trim().into()),
            ("msg.branch.flag" | "branch.flag", Some(name)) => {
                let at = self.branch_flag_index(spec, span)?;
                Read::BranchFlag(self.flag_named(name, span)?, at)
            }
            ("route" | "route.name", None) => Read::RouteName,
            ("route.type", None) => Read::RouteType,
            ("xlog_level", None) => Read::XlogLevel,
            ("log_level", None) => Read::LogLevel,
            // `-o name=value`: fixed for the life of the process; unknown or empty is NULL.
            ("argv", Some(name)) => Read::Const(
                self.available
                    .argv
                    .iter()
                    .find(|(n, v)| n == name && !v.is_empty())
                    .map_or(Value::Null, |(_, v)| Value::from(v.clone())),
            ),
            ("return", Some(i)) => match i.trim().parse::<usize>() {
                Ok(i) => Read::Returned(i),
                Err(_) => return self.fail(unsupported(format!("`$return({i})`"), span)),
            },
            ("hdr", Some(name))
                if name.starts_with('$')
                    || matches!(spec.index, Some(cfg::pv::PvIndex::Var(_))) =>
            {
                use super::ir::Dyn;
                let name = if name.starts_with('$') {
                    let inner = cfg::pv::parse(name)
                        .map_err(|e| self.diags.push(Diagnostic::error(e, span)))?;
                    Dyn::Var(Box::new(self.read(&inner, span)?))
                } else {
                    Dyn::Static(name.to_owned())
                };
                let index = match &spec.index {
                    Some(cfg::pv::PvIndex::Var(v)) => Dyn::Var(Box::new(self.read(v, span)?)),
                    Some(cfg::pv::PvIndex::At(i)) => Dyn::Static(crate::pv::Index::At(*i)),
                    Some(cfg::pv::PvIndex::All) => Dyn::Static(crate::pv::Index::All),
                    _ => Dyn::Static(crate::pv::Index::First),
                };
                Read::DynHeader { name, index }
            }
            ("avp", Some(name))
                if !name.contains('$') && matches!(spec.index, Some(cfg::pv::PvIndex::Var(_))) =>
            {
                let Some(cfg::pv::PvIndex::Var(v)) = &spec.index else {
                    return Err(());
                };
                let at = self.read(v, span)?;
                Read::AvpAt(self.avp(name), Box::new(at))
            }
            ("avp", Some(name)) if !name.contains('$') => {
                let index = match &spec.index {
                    None => crate::pv::Index::First,
                    Some(cfg::pv::PvIndex::At(i)) => crate::pv::Index::At(*i),
                    Some(cfg::pv::PvIndex::All) => crate::pv::Index::All,
                    Some(_) => return self.fail(unsupported("a computed AVP index".into(), span)),
                };
                Read::Avp(self.avp(name), index)
            }
            ("bavp", Some(name)) if !name.contains('$') => {
                let index = match &spec.index {
                    None => crate::pv::Index::First,
                    Some(cfg::pv::PvIndex::At(i)) => crate::pv::Index::At(*i),
                    Some(cfg::pv::PvIndex::All) => crate::pv::Index::All,
                    Some(_) => return self.fail(unsupported("a computed AVP index".into(), span)),
                };
                Read::Bavp(self.bavp(name), index)
            }
            ("msg.branch.attr" | "tm.branch.attr", Some(_))
                if !matches!(spec.index, None | Some(cfg::pv::PvIndex::At(_))) =>
            {
                return self.fail(match spec.index {
                    Some(cfg::pv::PvIndex::Var(_)) => {
                        unsupported("a computed branch index".into(), span)
                    }
                    _ => Diagnostic::error(
                        format!("`${}` takes a branch number as its index", spec.name),
                        span,
                    ),
                });
            }
            ("tm.branch.flag", Some(name)) => {
                let index = match &spec.index {
                    None => None,
                    Some(cfg::pv::PvIndex::At(i)) => Some(*i),
                    Some(_) => {
                        return self.fail(unsupported("a computed branch index".into(), span));
                    }
                };
                let bit = self.flag_named(name, span)?;
                Read::Core(CorePv::TmBranch(crate::pv::TmBranchField::Flag(bit), index))
            }
            ("sdp.line" | "sdp.session" | "sdp.stream" | "sdp.stream.idx", Some(arg)) => {
                if let Some(i) = &spec.index {
                    let text = match i {
                        cfg::pv::PvIndex::Insert | cfg::pv::PvIndex::InsertAfter => format!(
                            "`[insert]` / `[insertAfter]` only apply when assigning to `${}`",
                            spec.name
                        ),
                        _ => format!("`${}` takes no index", spec.name),
                    };
                    return self.fail(Diagnostic::error(text, span));
                }
                let sel = Box::new(self.sdp_selector(&spec.name, arg, span)?);
                if spec.name == "sdp.stream.idx" {
                    Read::SdpLineIdx(sel)
                } else {
                    Read::SdpLine(sel)
                }
            }
            ("sdp.line" | "sdp.session" | "sdp.stream" | "sdp.stream.idx", None) => {
                return self.fail(
                    Diagnostic::error(format!("`${}` needs a selector", spec.name), span)
                        .with_help("e.g. `$sdp.line(a=rtpmap[1])`, `$sdp.stream(audio/a=ptime)`"),
                );
            }
            ("param", Some(i)) => match i.parse::<usize>() {
                Ok(i) if i >= 1 => Read::Param(i - 1),
                Err(_) if !i.contains('$') && !i.trim().is_empty() => {
                    Read::ParamNamed(i.trim().to_owned())
                }
                _ => return self.fail(unsupported(format!("`$param({i})`"), span)),
            },
            _ => match CorePv::resolve(spec) {
                Some(CorePv::Retcode) => Read::Retcode,
                Some(pv) => Read::Core(pv),
                None => {
                    return self.fail(unsupported(
                        format!("the pseudo-variable `${}`", spec.name),
                        span,
                    ));
                }
            },
        };
        let mut transforms = Vec::new();
        for t in &spec.transforms {
            transforms.push(self.transform(t, span)?);
        }
        Ok(PvRead { read, transforms })
    }

    fn transform(
        &mut self,
        t: &cfg::pv::TransformSpec,
        span: Span,
    ) -> L<(crate::transform::Compiled, Vec<Expr>)> {
        let (name, index) = match crate::transform::split_inline_index(&t.name) {
            Some((n, i)) => (n, Some(i.to_owned())),
            None => (t.name.to_ascii_lowercase(), None),
        };
        let mut args = crate::check::walk::split_transform_args(&name, t.args.as_deref());
        if let Some(i) = index {
            args.insert(0, i);
        }
        let literals: Vec<Option<&str>> = args
            .iter()
            .map(|a| (!a.starts_with('$')).then_some(a.as_str()))
            .collect();
        let compiled = crate::transform::TransformOp::lookup(&name, args.len())
            .and_then(|op| op.compile(&literals));
        let compiled = match compiled {
            Ok(c) => c,
            Err(e) => {
                return self.fail(Diagnostic::error(
                    format!("transformation `{name}`: {e}"),
                    span,
                ));
            }
        };
        let mut exprs = Vec::new();
        for a in &args {
            exprs.push(if a.starts_with('$') {
                let spec =
                    cfg::pv::parse(a).map_err(|e| self.diags.push(Diagnostic::error(e, span)))?;
                Expr::Pv(Box::new(self.read(&spec, span)?))
            } else {
                Expr::Const(Value::str(a))
            });
        }
        Ok((compiled, exprs))
    }

    /// A string argument: a format string when it holds PVs, else a constant.
    fn format(&mut self, s: &str, span: Span) -> L<Vec<Piece>> {
        let parts = match cfg::pv::parse_format(s) {
            Ok(p) => p,
            Err((_, e)) => return self.fail(Diagnostic::error(e, span)),
        };
        let mut pieces = Vec::new();
        for p in parts {
            pieces.push(match p {
                FmtPart::Text(t) => Piece::Text(ByteString::from(t)),
                FmtPart::Pv(spec, _) => Piece::Pv(self.read(&spec, span)?),
            });
        }
        Ok(pieces)
    }

    /// A function argument as an expression (string arguments are format strings).
    fn arg(&mut self, a: Option<&Option<Arg>>, span: Span) -> L<Expr> {
        match a {
            Some(Some(Arg::Str(s, sp))) => Ok(Expr::Format(self.format(s, *sp)?)),
            Some(Some(Arg::Int(i, _))) => Ok(Expr::Const(Value::Int(*i))),
            Some(Some(Arg::Pv(p))) => Ok(Expr::Pv(Box::new(self.read(&p.spec, p.span)?))),
            _ => self.fail(Diagnostic::error("missing or unsupported argument", span)),
        }
    }

    /// An output argument that must be an `$avp(name)` (OpenSIPS `fixup_check_avp`).
    fn avp_output(&mut self, a: Option<&Option<Arg>>, func: &str, span: Span) -> L<Write> {
        match a {
            Some(Some(Arg::Pv(p))) if p.spec.name == "avp" => self.write(p),
            _ => self.fail(Diagnostic::error(
                format!("`{func}` stores its result in an `$avp(name)`"),
                span,
            )),
        }
    }

    /// An optional argument: `None` when left out.
    fn opt_arg(&mut self, a: Option<&Option<Arg>>, span: Span) -> L<Option<Expr>> {
        match a {
            Some(Some(_)) => Ok(Some(self.arg(a, span)?)),
            _ => Ok(None),
        }
    }

    fn call(&mut self, c: &ast::Call) -> L<Call> {
        let a = |i: usize| c.args.get(i);
        let name = c.name.node.as_str();
        let core = match name {
            "route" => return self.route_call(c),
            "xlog" | "xdbg" => return self.xlog(c),
            "log" => {
                let (level, text) = match (a(0), a(1)) {
                    (Some(Some(Arg::Int(l, _))), Some(Some(Arg::Str(t, _)))) => {
                        (*l as i32, t.clone())
                    }
                    (Some(Some(Arg::Str(t, _))), None) => (4, t.clone()),
                    _ => {
                        return self
                            .fail(Diagnostic::error("`log` takes [level,] \"text\"", c.span));
                    }
                };
                return Ok(Call::Log {
                    level,
                    text: ByteString::from(text),
                });
            }
            "setflag" => CoreFn::SetFlag(self.flag(a(0), c.span)?),
            "resetflag" => CoreFn::ResetFlag(self.flag(a(0), c.span)?),
            "isflagset" => CoreFn::IsFlagSet(self.flag(a(0), c.span)?),
            "setbflag" => CoreFn::SetBFlag(self.flag(a(0), c.span)?),
            "resetbflag" => CoreFn::ResetBFlag(self.flag(a(0), c.span)?),
            "isbflagset" => CoreFn::IsBFlagSet(self.flag(a(0), c.span)?),
            "seturi" => CoreFn::SetUri(self.arg(a(0), c.span)?),
            "sethost" => CoreFn::SetHost(self.arg(a(0), c.span)?),
            "sethostport" => CoreFn::SetHostPort(self.arg(a(0), c.span)?),
            "setuser" => CoreFn::SetUser(self.arg(a(0), c.span)?),
            "setport" => CoreFn::SetPort(self.arg(a(0), c.span)?),
            "prefix" => CoreFn::Prefix(self.arg(a(0), c.span)?),
            "strip" => CoreFn::Strip(self.arg(a(0), c.span)?),
            "strip_tail" => CoreFn::StripTail(self.arg(a(0), c.span)?),
            "revert_uri" => CoreFn::RevertUri,
            "setdsturi" => CoreFn::SetDstUri(self.arg(a(0), c.span)?),
            "resetdsturi" => CoreFn::ResetDstUri,
            "isdsturiset" => CoreFn::IsDstUriSet,
            "force_rport" => CoreFn::ForceRport,
            "forward" => match a(0) {
                Some(Some(_)) => CoreFn::Forward(Some(self.arg(a(0), c.span)?)),
                _ => CoreFn::Forward(None),
            },
            "send" => CoreFn::Send(
                self.arg(a(0), c.span)?,
                match a(1) {
                    Some(Some(_)) => Some(self.arg(a(1), c.span)?),
                    _ => None,
                },
            ),
            "append_msg_branch" | "append_branch_old" => {
                let uri = match a(0) {
                    Some(Some(_)) => Some(self.arg(a(0), c.span)?),
                    _ if c.name.node == "append_msg_branch" => {
                        return self
                            .fail(Diagnostic::error("`append_msg_branch` needs a URI", c.span));
                    }
                    _ => None,
                };
                let q = match a(1) {
                    Some(Some(_)) => Some(self.arg(a(1), c.span)?),
                    _ => None,
                };
                let flags = if c.name.node == "append_msg_branch" {
                    Some(match a(2) {
                        Some(Some(_)) => Some(self.arg(a(2), c.span)?),
                        _ => None,
                    })
                } else {
                    None
                };
                CoreFn::AppendBranch(uri, q, flags)
            }
            "remove_msg_branch" => CoreFn::RemoveMsgBranch(self.arg(a(0), c.span)?),
            "move_msg_branch" => CoreFn::MoveMsgBranch(
                self.opt_arg(a(0), c.span)?,
                self.opt_arg(a(1), c.span)?,
                self.opt_arg(a(2), c.span)?,
            ),
            "swap_msg_branches" => {
                CoreFn::SwapMsgBranches(self.opt_arg(a(0), c.span)?, self.opt_arg(a(1), c.span)?)
            }
            "serialize_branches" => {
                CoreFn::SerializeBranches(self.arg(a(0), c.span)?, self.opt_arg(a(1), c.span)?)
            }
            "next_branches" => CoreFn::NextBranches,
            "add_local_rport" => CoreFn::AddLocalRport,
            "setuserpass" => CoreFn::SetUserPass(self.arg(a(0), c.span)?),
            "avp_print" => CoreFn::AvpPrint,
            "tcp_close_conn" => CoreFn::TcpCloseConn(self.arg(a(0), c.span)?),
            "cache_store" => CoreFn::CacheStore(
                Box::new([
                    self.arg(a(0), c.span)?,
                    self.arg(a(1), c.span)?,
                    self.arg(a(2), c.span)?,
                ]),
                self.opt_arg(a(3), c.span)?,
            ),
            "cache_remove" => CoreFn::CacheRemove(self.arg(a(0), c.span)?, self.arg(a(1), c.span)?),
            "cache_fetch" | "cache_counter_fetch" => {
                let out = match a(2) {
                    Some(Some(Arg::Pv(p))) => self.write(p)?,
                    _ => {
                        return self.fail(Diagnostic::error(
                            format!("`{name}` stores the value in a variable (its third argument)"),
                            c.span,
                        ));
                    }
                };
                CoreFn::CacheFetch(
                    self.arg(a(0), c.span)?,
                    self.arg(a(1), c.span)?,
                    out,
                    name == "cache_counter_fetch",
                )
            }
            "cache_add" | "cache_sub" => {
                let out = match a(4) {
                    Some(Some(Arg::Pv(p))) => Some(self.write(p)?),
                    Some(Some(_)) => {
                        return self.fail(Diagnostic::error(
                            format!("`{name}` stores the new value in a variable"),
                            c.span,
                        ));
                    }
                    _ => None,
                };
                CoreFn::CacheAdd(
                    Box::new([
                        self.arg(a(0), c.span)?,
                        self.arg(a(1), c.span)?,
                        self.arg(a(2), c.span)?,
                        self.arg(a(3), c.span)?,
                    ]),
                    out,
                    name == "cache_sub",
                )
            }
            "set_advertised_address" | "set_advertised_port" => CoreFn::SetAdvertised {
                address: name == "set_advertised_address",
                value: self.arg(a(0), c.span)?,
            },
            "set_via_handling" => {
                let Some(Some(Arg::Str(flags, _))) = a(0) else {
                    return self.fail(Diagnostic::error(
                        "`set_via_handling` takes a quoted list of flag names",
                        c.span,
                    ));
                };
                let (mut force_rport, mut local_rport, mut reply_to_via, mut tcp_alias) =
                    (false, false, false, false);
                for f in flags
                    .split([',', ' '])
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                {
                    match f.to_ascii_lowercase().as_str() {
                        "force-rport" => force_rport = true,
                        "add-local-rport" => local_rport = true,
                        "reply-to-via" => reply_to_via = true,
                        "force-tcp-alias" => tcp_alias = true,
                        other => {
                            return self.fail(
                                Diagnostic::error(
                                    format!("`set_via_handling`: unknown flag `{other}`"),
                                    c.span,
                                )
                                .with_help(
                                    "the flags are force-rport, add-local-rport, reply-to-via \
                                     and force-tcp-alias",
                                ),
                            );
                        }
                    }
                }
                CoreFn::SetViaHandling {
                    force_rport,
                    local_rport,
                    reply_to_via,
                    tcp_alias,
                }
            }
            "construct_uri" => {
                let out = self.avp_output(a(5), "construct_uri", c.span)?;
                let mut args: [Option<Expr>; 5] = Default::default();
                for (i, slot) in args.iter_mut().enumerate() {
                    *slot = self.opt_arg(a(i), c.span)?;
                }
                if args[0].is_none() || args[2].is_none() {
                    return self.fail(Diagnostic::error(
                        "`construct_uri` needs a protocol and a domain",
                        c.span,
                    ));
                }
                CoreFn::ConstructUri(Box::new(args), out)
            }
            "get_timestamp" => CoreFn::GetTimestamp(
                self.avp_output(a(0), "get_timestamp", c.span)?,
                self.avp_output(a(1), "get_timestamp", c.span)?,
            ),
            "pv_printf" => {
                let out = match a(0) {
                    Some(Some(Arg::Pv(p))) => self.write(p)?,
                    _ => {
                        return self.fail(Diagnostic::error(
                            "`pv_printf` writes into a variable: its first argument is one",
                            c.span,
                        ));
                    }
                };
                CoreFn::PvPrintf(out, self.arg(a(1), c.span)?)
            }
            "raise_event" => {
                let mut avps = [None, None];
                for (i, slot) in avps.iter_mut().enumerate() {
                    match a(i + 1) {
                        Some(Some(Arg::Pv(p)))
                            if p.spec.name == "avp"
                                && p.spec.arg.as_deref().is_some_and(|n| !n.contains('$')) =>
                        {
                            *slot = Some(self.avp(p.spec.arg.as_deref().unwrap_or_default()));
                        }
                        Some(Some(_)) => {
                            return self.fail(Diagnostic::error(
                                "`raise_event` takes the attribute names and the values in \
                                 `$avp(name)` variables",
                                c.span,
                            ));
                        }
                        _ => {}
                    }
                }
                CoreFn::RaiseEvent(self.arg(a(0), c.span)?, avps[0], avps[1])
            }
            "force_tcp_alias" => CoreFn::ForceTcpAlias(match a(0) {
                Some(Some(_)) => Some(self.arg(a(0), c.span)?),
                _ => None,
            }),
            "socket_belongs_to_bond" => {
                let Some(Some(Arg::Str(bond, sp))) = a(1) else {
                    return self.fail(Diagnostic::error(
                        "`socket_belongs_to_bond` takes a socket and a bond name",
                        c.span,
                    ));
                };
                let bond = bond.to_ascii_lowercase();
                let full = if bond.starts_with("bond:") {
                    bond.clone()
                } else {
                    format!("bond:{bond}")
                };
                if !self.names.sockets.contains(&full) {
                    return self.fail(Diagnostic::error(
                        format!("`{bond}` is not a defined bond socket"),
                        *sp,
                    ));
                }
                CoreFn::SocketBelongsToBond(self.arg(a(0), c.span)?, full)
            }
            "force_send_socket" => {
                let Some(Some(Arg::Str(sock, sp))) = a(0) else {
                    return self.fail(Diagnostic::error(
                        "`force_send_socket` takes \"proto:host:port\"",
                        c.span,
                    ));
                };
                let want = sock.to_ascii_lowercase();
                if !self.names.sockets.contains(&want) {
                    let mut d =
                        Diagnostic::error(format!("`{sock}` is not a configured socket"), *sp);
                    if !self.names.sockets.is_empty() {
                        d = d.with_help(format!("configured: {}", self.names.sockets.join(", ")));
                    }
                    return self.fail(d);
                }
                CoreFn::ForceSendSocket(want)
            }
            "is_myself" => {
                let port = match a(1) {
                    Some(Some(_)) => Some(self.arg(a(1), c.span)?),
                    _ => None,
                };
                CoreFn::IsMyself(self.arg(a(0), c.span)?, port)
            }
            _ => return self.module_call(c),
        };
        Ok(Call::Core(core))
    }

    /// A function of an implemented module: resolved to its function pointer, arguments
    /// lowered by their declared kinds.
    fn module_call(&mut self, c: &ast::Call) -> L<Call> {
        let name = c.name.node.as_str();
        let Some(spec) = self.available.function(name) else {
            return self.fail(unsupported(format!("the function `{name}`"), c.name.span));
        };
        let mut args = Vec::with_capacity(spec.params.len());
        let mut outs = Vec::new();
        for (i, (kind, _)) in spec.params.iter().enumerate() {
            let arg = match (c.args.get(i), kind) {
                (None | Some(None), _) => Expr::Const(Value::Null),
                (Some(Some(a)), crate::module::Param::Var | crate::module::Param::Avp) => {
                    // The checker has refused anything but a writable variable.
                    let Arg::Pv(p) = a else {
                        return self.fail(Diagnostic::error("expected a variable", a.span()));
                    };
                    outs.push((i, self.write(p)?));
                    Expr::Const(Value::Null)
                }
                (
                    Some(Some(Arg::Str(s, sp) | Arg::Ident(s, sp))),
                    crate::module::Param::Route(kind),
                ) => match self.names.special.get(&(*kind, s.clone())) {
                    Some(&i) => Expr::Const(Value::Int(i as i64)),
                    None => {
                        return self.fail(Diagnostic::error(
                            format!("{} `{s}` is not defined", kind.keyword()),
                            *sp,
                        ));
                    }
                },
                (Some(Some(Arg::Int(n, sp))), crate::module::Param::Route(kind)) => {
                    match self.names.special.get(&(*kind, n.to_string())) {
                        Some(&i) => Expr::Const(Value::Int(i as i64)),
                        None => {
                            return self.fail(Diagnostic::error(
                                format!("{} `{n}` is not defined", kind.keyword()),
                                *sp,
                            ));
                        }
                    }
                }
                (Some(Some(_)), crate::module::Param::Route(kind)) => {
                    return self.fail(Diagnostic::error(
                        format!("expected the name of a {}", kind.keyword()),
                        c.span,
                    ));
                }
                (Some(Some(Arg::Str(s, _))), crate::module::Param::StaticStr) => {
                    Expr::Const(Value::str(s))
                }
                (a @ Some(Some(_)), _) => self.arg(a, c.span)?,
            };
            args.push(arg);
        }
        Ok(Call::Module {
            run: spec.run,
            args,
            outs,
        })
    }

    fn route_call(&mut self, c: &ast::Call) -> L<Call> {
        let target = match c.args.first() {
            Some(Some(Arg::Ident(n, _) | Arg::Str(n, _))) => n.clone(),
            Some(Some(Arg::Int(i, _))) => i.to_string(),
            _ => return self.fail(unsupported("a computed route name".into(), c.span)),
        };
        let Some(&index) = self.names.routes.get(&target) else {
            return self.fail(Diagnostic::error(
                format!("called route `{target}` is not defined"),
                c.span,
            ));
        };
        let mut params = Vec::new();
        for p in c.args.iter().skip(1) {
            params.push(match p {
                Some(Arg::Str(s, _)) => Expr::Const(Value::str(s)),
                Some(Arg::Int(i, _)) => Expr::Const(Value::Int(*i)),
                Some(Arg::Pv(pv)) => Expr::Pv(Box::new(self.read(&pv.spec, pv.span)?)),
                _ => Expr::Const(Value::Null),
            });
        }
        Ok(Call::Route { index, params })
    }

    fn xlog(&mut self, c: &ast::Call) -> L<Call> {
        use super::ir::Level;
        let (level, fmt) = match (c.args.first(), c.args.get(1)) {
            (Some(Some(Arg::Str(f, sp))), None) => (Level::Fixed(2), self.format(f, *sp)?),
            (Some(Some(Arg::Str(l, _))), Some(Some(Arg::Str(f, sp)))) => {
                (Level::Fixed(xlog_level(l)), self.format(f, *sp)?)
            }
            (Some(Some(Arg::Pv(p))), Some(Some(Arg::Str(f, sp)))) => {
                (Level::Pv(self.read(&p.spec, p.span)?), self.format(f, *sp)?)
            }
            _ => return self.fail(unsupported("this form of `xlog`".into(), c.span)),
        };
        Ok(Call::Xlog { level, format: fmt })
    }

    pub fn expr(&mut self, e: &ast::Expr) -> L<Expr> {
        Ok(match &e.kind {
            ExprKind::Int(i) => Expr::Const(Value::Int(*i)),
            ExprKind::Str(s) => Expr::Const(Value::str(s)),
            ExprKind::Null => Expr::Const(Value::Null),
            ExprKind::Ip(a) => Expr::Const(Value::str(a)),
            ExprKind::Pv(p) => Expr::Pv(Box::new(self.read(&p.spec, p.span)?)),
            ExprKind::Call(c) => Expr::Call(Box::new(self.call(c)?)),
            ExprKind::Not(x) => Expr::Not(Box::new(self.expr(x)?)),
            ExprKind::And(a, b) => Expr::And(Box::new(self.expr(a)?), Box::new(self.expr(b)?)),
            ExprKind::Or(a, b) => Expr::Or(Box::new(self.expr(a)?), Box::new(self.expr(b)?)),
            ExprKind::Cmp { op, left, right } => self.cmp(*op, left, right)?,
            ExprKind::Binary { op, left, right } => Expr::Binary {
                op: *op,
                left: Box::new(self.expr(left)?),
                right: Box::new(self.expr(right)?),
            },
            ExprKind::BitNot(x) => Expr::BitNot(Box::new(self.expr(x)?)),
            ExprKind::Assign(a) => Expr::Assign(Box::new(self.assign(a)?)),
            ExprKind::Test(x) => Expr::Test(Box::new(self.expr(x)?)),
        })
    }

    fn cmp(&mut self, op: ast::CmpOp, left: &ast::PvRef, right: &ast::Expr) -> L<Expr> {
        let l = Box::new(self.read(&left.spec, left.span)?);
        if let ExprKind::Ip(text) = &right.kind {
            let negate = match op {
                ast::CmpOp::Eq => false,
                ast::CmpOp::Ne => true,
                _ => {
                    return self.fail(Diagnostic::error(
                        "addresses compare only with `==` or `!=`",
                        right.span,
                    ));
                }
            };
            let Some(net) = parse_net(text) else {
                return self.fail(Diagnostic::error(
                    format!("bad network `{text}`"),
                    right.span,
                ));
            };
            return Ok(Expr::CmpNet {
                negate,
                left: l,
                net,
            });
        }
        let mut regex = None;
        if let (ast::CmpOp::Match | ast::CmpOp::NotMatch, ExprKind::Str(pattern)) =
            (op, &right.kind)
        {
            // OpenSIPS: REG_EXTENDED|REG_ICASE, unanchored, compiled once when constant.
            match regex::RegexBuilder::new(pattern)
                .case_insensitive(true)
                .build()
            {
                Ok(r) => regex = Some(r),
                Err(e) => {
                    let why = e.to_string().lines().last().unwrap_or("").trim().to_owned();
                    return self.fail(Diagnostic::error(
                        format!("bad regular expression: {why}"),
                        right.span,
                    ));
                }
            }
        }
        Ok(Expr::Cmp {
            op,
            left: l,
            right: Box::new(self.expr(right)?),
            regex,
        })
    }
}

/// `L_ALERT` … `L_DBG`: the third letter decides, as in OpenSIPS.
fn xlog_level(l: &str) -> i32 {
    match l.as_bytes().get(2) {
        Some(b'A') => -3,
        Some(b'C') => -2,
        Some(b'E') => -1,
        Some(b'W') => 1,
        Some(b'N') => 2,
        Some(b'I') => 3,
        Some(b'D') => 4,
        _ => 2,
    }
}

/// `10.0.0.0/8`, `192.0.2.1`, `2001:db8::/32`; a bare address is a full-length network.
pub(crate) fn parse_net(text: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, mask) = text.split_once('/').unwrap_or((text, ""));
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let full = if addr.is_ipv4() { 32 } else { 128 };
    let bits = if mask.is_empty() {
        full
    } else {
        mask.parse().ok().filter(|m| *m <= full)?
    };
    Some((addr, bits))
}

/// The name a request route is called by; the main route (`route`, `route[0]`) is "".
fn route_key(r: &ast::RouteBlock) -> String {
    match r.name.as_ref() {
        Some(n) if n.node != "0" => n.node.clone(),
        _ => String::new(),
    }
}

/// Request routes in definition order, the main route first, and their indexes by name.
pub(crate) fn route_table(config: &ast::Config) -> (HashMap<String, usize>, Vec<&ast::RouteBlock>) {
    let mut blocks: Vec<&ast::RouteBlock> = config
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Route(r) if r.kind == RouteKind::Request => Some(r),
            _ => None,
        })
        .collect();
    blocks.sort_by_key(|b| !route_key(b).is_empty());
    let table = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| (route_key(b), i))
        .collect();
    (table, blocks)
}
