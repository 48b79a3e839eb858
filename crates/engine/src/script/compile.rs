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
    /// `$json(name)` variables.
    pub json: HashMap<String, usize>,
    /// `$xml(name)` objects.
    pub xml: HashMap<String, usize>,
    pub flags: HashMap<String, u32>,
    pub routes: HashMap<String, usize>,
    pub avps: HashMap<String, usize>,
    /// `$bavp(name)`s, numbered apart from `$avp`s.
    pub bavps: HashMap<String, usize>,
    /// `proto:host:port` of the configured sockets, for `force_send_socket`.
    pub sockets: Vec<String>,
    /// `sockets_mgm` is loaded: a socket named in the script may be one opened at run time.
    pub dynamic_sockets: bool,
    /// failure/onreply/branch/local routes by kind and name ("" for an unnamed one).
    pub special: HashMap<(RouteKind, String), usize>,
    /// Event names `raise_event`/`subscribe_event` give as literals: published when the
    /// script loads, as OpenSIPS' fixups publish them (MI can subscribe to them at once).
    pub events: Vec<String>,
}

pub(crate) struct Lower<'a> {
    pub names: &'a mut Names,
    pub diags: Vec<Diagnostic>,
    pub available: &'a crate::Available,
    pub sources: &'a cfg::SourceMap,
    /// Where the script first calls `forward()` (it turns stateless forwarding on, or is an
    /// error under an explicit `disable_stateless_fwd=yes`).
    pub forward_used: Option<Span>,
    /// The places of the `route()` calls (profiling reports them), by the index calls keep.
    pub sites: Vec<super::ir::Site>,
    /// The script calls `script_trace()`: each statement keeps where it is written.
    pub trace: bool,
}

type L<T> = Result<T, ()>;

mod json;
mod pv;
mod trace;
mod xml;

fn unsupported(what: String, span: Span) -> Diagnostic {
    Diagnostic::error(what, span).with_label("not supported by the rsips interpreter yet")
}

impl Lower<'_> {
    /// The index of a route a function names: a request route by its name (`route[x]`,
    /// dialog's `dlg_on_*`), any other kind among the special routes.
    fn route_named(&self, kind: RouteKind, name: &str) -> Option<usize> {
        match kind {
            RouteKind::Request => self
                .names
                .routes
                .get(name)
                .copied()
                .filter(|_| !name.is_empty()),
            kind => self.names.special.get(&(kind, name.to_owned())).copied(),
        }
    }

    /// The file and line `span` starts at.
    pub fn site_of(&self, span: Span) -> super::ir::Site {
        super::ir::Site {
            file: std::sync::Arc::from(self.sources.path(span.file).display().to_string()),
            line: self
                .sources
                .get(span.file)
                .map_or(0, |f| f.line_col(span.start).0 as u32),
        }
    }

    fn fail<T>(&mut self, d: Diagnostic) -> L<T> {
        self.diags.push(d);
        Err(())
    }

    pub fn block(&mut self, stmts: &[ast::Stmt]) -> Vec<Stmt> {
        stmts.iter().filter_map(|s| self.stmt(s).ok()).collect()
    }

    fn stmt(&mut self, s: &ast::Stmt) -> L<Stmt> {
        let stmt = self.stmt_untraced(s)?;
        if !self.trace || matches!(s.kind, StmtKind::Block(_) | StmtKind::Nop) {
            return Ok(stmt);
        }
        Ok(self.traced(s, stmt))
    }

    fn stmt_untraced(&mut self, s: &ast::Stmt) -> L<Stmt> {
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
        for a in args.iter().chain(compiled.extra_pvs()) {
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

    /// Notes an event name given as a literal without variables.
    fn literal_event(&mut self, a: Option<&Option<Arg>>) {
        if let Some(Some(Arg::Str(name, _))) = a
            && !name.is_empty()
            && !name.contains('$')
            && !self.names.events.contains(name)
        {
            self.names.events.push(name.clone());
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
            "async" | "launch" => return self.async_call(c),
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
            "script_trace" => match (a(0), a(1)) {
                (None | Some(None), None) => CoreFn::ScriptTrace(None),
                (Some(Some(_)), Some(Some(Arg::Str(f, sp)))) => {
                    let info = match a(2) {
                        Some(Some(Arg::Str(i, _))) => Some(i.as_str().into()),
                        None | Some(None) => None,
                        Some(Some(_)) => {
                            return self.fail(Diagnostic::error(
                                "`script_trace`'s info is a string",
                                c.span,
                            ));
                        }
                    };
                    CoreFn::ScriptTrace(Some(Box::new(super::ir::TraceSpec {
                        level: self.arg(a(0), c.span)?,
                        format: self.format(f, *sp)?,
                        info,
                    })))
                }
                _ => {
                    return self.fail(Diagnostic::error(
                        "`script_trace` takes nothing, or a log level, a format string and \
                         optional info",
                        c.span,
                    ));
                }
            },
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
            "forward" => {
                self.forward_used.get_or_insert(c.span);
                match a(0) {
                    Some(Some(_)) => CoreFn::Forward(Some(self.arg(a(0), c.span)?)),
                    _ => CoreFn::Forward(None),
                }
            }
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
            "cache_raw_query" => {
                let avp = match a(2) {
                    None | Some(None) => None,
                    Some(Some(Arg::Pv(p))) if p.spec.name == "avp" => {
                        Some(self.avp(p.spec.arg.as_deref().unwrap_or_default()))
                    }
                    Some(Some(Arg::Str(text, sp))) => match cfg::pv::parse(text.trim()) {
                        Ok(spec) if spec.name == "avp" && spec.arg.is_some() => {
                            Some(self.avp(spec.arg.as_deref().unwrap_or_default()))
                        }
                        _ => {
                            return self.fail(Diagnostic::error(
                                "`cache_raw_query` puts the result in an AVP: \"$avp(name)\"",
                                *sp,
                            ));
                        }
                    },
                    Some(Some(_)) => {
                        return self.fail(Diagnostic::error(
                            "`cache_raw_query` puts the result in an AVP: \"$avp(name)\"",
                            c.span,
                        ));
                    }
                };
                CoreFn::CacheRawQuery(self.arg(a(0), c.span)?, self.arg(a(1), c.span)?, avp)
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
                self.literal_event(a(0));
                CoreFn::RaiseEvent(self.arg(a(0), c.span)?, avps[0], avps[1])
            }
            "json_link" => {
                let mut paths = Vec::new();
                for i in 0..2 {
                    let Some(Some(Arg::Pv(p))) = a(i) else {
                        return self.fail(Diagnostic::error(
                            "`json_link` takes two `$json(...)` variables",
                            c.span,
                        ));
                    };
                    let Some(format) = json::format_of(&p.spec.name) else {
                        return self.fail(Diagnostic::error(
                            "`json_link` takes two `$json(...)` variables",
                            p.span,
                        ));
                    };
                    paths.push(Box::new(self.json_path(&p.spec, format, p.span)?));
                }
                let src = paths.pop().ok_or(())?;
                let dest = paths.pop().ok_or(())?;
                CoreFn::JsonLink(dest, src)
            }
            "subscribe_event" => CoreFn::SubscribeEvent(
                {
                    self.literal_event(a(0));
                    self.arg(a(0), c.span)?
                },
                self.arg(a(1), c.span)?,
                self.opt_arg(a(2), c.span)?,
            ),
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
                // With `sockets_mgm` the socket may be one of its table's, checked when sent.
                let dynamic =
                    self.names.dynamic_sockets && crate::forward::socket_address(&want).is_some();
                if !dynamic && !self.names.sockets.contains(&want) {
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
    /// The `$avp(name)`s a literal module argument names (avpops' `"$avp(a)/$avp(b)"`): the
    /// module reads and writes them by name, so they are the script's AVPs even when no
    /// route uses them as variables.
    fn intern_avps(&mut self, text: &str) {
        for (at, _) in text.match_indices("$avp(") {
            if let Some(end) = text[at + 5..].find(')') {
                let name = text[at + 5..at + 5 + end].trim();
                if !name.is_empty() && !name.contains('$') {
                    self.avp(name);
                }
            }
        }
    }

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
                    outs.push((i, 0, self.write(p)?));
                    Expr::Const(Value::Null)
                }
                (a @ Some(Some(Arg::Pv(p))), crate::module::Param::VarInOut) => {
                    outs.push((i, 0, self.write(p)?));
                    self.arg(a, c.span)?
                }
                (Some(Some(a)), crate::module::Param::VarInOut) => {
                    return self.fail(Diagnostic::error("expected a variable", a.span()));
                }
                (Some(Some(Arg::Str(s, sp))), crate::module::Param::VarList) => {
                    // The checker has refused anything but writable variables.
                    for (k, text) in s
                        .split(';')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .enumerate()
                    {
                        let Ok(spec) = cfg::pv::parse(text) else {
                            return self.fail(Diagnostic::error("expected a variable", *sp));
                        };
                        let p = ast::PvRef {
                            text: text.to_owned(),
                            spec,
                            span: *sp,
                        };
                        outs.push((i, k, self.write(&p)?));
                    }
                    Expr::Const(Value::Null)
                }
                (Some(Some(Arg::Pv(p))), crate::module::Param::OutVarOr(_)) => {
                    outs.push((i, 0, self.write(p)?));
                    Expr::Const(Value::str(&p.text))
                }
                (Some(Some(Arg::Str(s, sp))), crate::module::Param::OutVarOr(words)) => {
                    if !words.contains(&s.as_str()) {
                        let Ok(spec) = cfg::pv::parse(s) else {
                            return self.fail(Diagnostic::error(
                                format!("expected {} or a variable", words.join(", ")),
                                *sp,
                            ));
                        };
                        let p = ast::PvRef {
                            text: s.clone(),
                            spec,
                            span: *sp,
                        };
                        outs.push((i, 0, self.write(&p)?));
                    }
                    Expr::Const(Value::str(s))
                }
                (
                    Some(Some(Arg::Str(s, sp) | Arg::Ident(s, sp))),
                    crate::module::Param::Route(kind),
                ) => match self.route_named(*kind, s) {
                    Some(i) => Expr::Const(Value::Int(i as i64)),
                    None => {
                        return self.fail(Diagnostic::error(
                            format!("{} `{s}` is not defined", kind.keyword()),
                            *sp,
                        ));
                    }
                },
                (Some(Some(Arg::Int(n, sp))), crate::module::Param::Route(kind)) => {
                    match self.route_named(*kind, &n.to_string()) {
                        Some(i) => Expr::Const(Value::Int(i as i64)),
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
                    self.intern_avps(s);
                    Expr::Const(Value::str(s))
                }
                (Some(Some(Arg::Int(n, sp))), crate::module::Param::CheckedInt(check)) => {
                    if let Err(e) = (check.check)(&n.to_string()) {
                        return self.fail(Diagnostic::error(
                            format!("bad {} for `{}`: {e}", check.what, c.name.node),
                            *sp,
                        ));
                    }
                    Expr::Const(Value::Int(*n))
                }
                (Some(Some(Arg::Str(s, sp))), crate::module::Param::CheckedInt(check))
                    if !s.contains('$') =>
                {
                    if let Err(e) = (check.check)(s) {
                        return self.fail(Diagnostic::error(
                            format!("bad {} for `{}`: {e}", check.what, c.name.node),
                            *sp,
                        ));
                    }
                    Expr::Const(Value::str(s))
                }
                (Some(Some(Arg::Str(s, sp))), crate::module::Param::CheckedStr(check))
                    if !s.contains('$') =>
                {
                    if let Err(e) = (check.check)(s) {
                        return self.fail(Diagnostic::error(
                            format!("bad {} for `{}`: {e}", check.what, c.name.node),
                            *sp,
                        ));
                    }
                    Expr::Const(Value::str(s))
                }
                (Some(Some(Arg::Str(s, sp))), crate::module::Param::Checked(check)) => {
                    if let Err(e) = (check.check)(s) {
                        return self.fail(Diagnostic::error(
                            format!("bad {} for `{}`: {e}", check.what, c.name.node),
                            *sp,
                        ));
                    }
                    self.intern_avps(s);
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

    /// `async(f(...), resume_route)` / `launch(f(...)[, report_route])`. rsips' workers run
    /// the function to its end (as OpenSIPS does with a function that has no asynchronous
    /// form), then the resume or report route; after `async` the calling route ends.
    fn async_call(&mut self, c: &ast::Call) -> L<Call> {
        let launch = c.name.node == "launch";
        let Some(Some(Arg::Call(inner))) = c.args.first() else {
            return self.fail(Diagnostic::error(
                format!("`{}` takes a function call first", c.name.node),
                c.span,
            ));
        };
        let route = match c.args.get(1) {
            Some(Some(Arg::Ident(n, sp) | Arg::Str(n, sp))) => match self.names.routes.get(n) {
                Some(&index) => Some(index),
                None => {
                    return self.fail(Diagnostic::error(
                        format!("called route `{n}` is not defined"),
                        *sp,
                    ));
                }
            },
            None | Some(None) if launch => None,
            _ => {
                return self.fail(Diagnostic::error(
                    "`async` needs the route to resume in",
                    c.span,
                ));
            }
        };
        Ok(Call::Async {
            call: Box::new(self.call(inner)?),
            route,
            launch,
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
        let site = self.sites.len() as u32;
        self.sites.push(self.site_of(c.span));
        Ok(Call::Route {
            index,
            params,
            site,
        })
    }

    fn xlog(&mut self, c: &ast::Call) -> L<Call> {
        use super::ir::Level;
        let (level, fmt) = match (c.args.first(), c.args.get(1)) {
            (Some(Some(Arg::Str(f, sp))), None) => (Level::Fixed(2), self.format(f, *sp)?),
            (Some(Some(Arg::Str(l, lsp))), Some(Some(Arg::Str(f, sp)))) if l.starts_with('$') => {
                let spec = match cfg::pv::parse(l) {
                    Ok(spec) => spec,
                    Err(e) => return self.fail(Diagnostic::error(e, *lsp)),
                };
                (Level::Pv(self.read(&spec, *lsp)?), self.format(f, *sp)?)
            }
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
