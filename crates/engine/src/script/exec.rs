//! Running compiled routes: OpenSIPS truth rules (>0 true, <0 false, 0 ends the script),
//! `$retcode`, `exit`/`drop`/`return`, sub-route parameters, and a budget on every run so a
//! script can never hang a worker (STYLE rule 7).

use bytestring::ByteString;
use cfg::ast::{AssignOp, BinOp, CmpOp};

use super::avp::avp_get;
use super::ir::{Assign, Call, Expr, Piece, PvRead, Read, Stmt, Write};
use super::{Limits, Log, Script, ScriptError, Worker};
use crate::ctx::MsgCtx;
use crate::value::Value;

/// Why a statement list stopped early.
#[derive(Debug)]
pub(crate) enum Halt {
    /// `exit`, `return(0)`, or a statement whose value was 0: the whole script ends.
    Exit,
    /// `drop`: the script ends and the implicit action is cancelled.
    Drop,
    /// `return(N)` from a sub-route.
    Return(i64),
    /// `break` out of `while`/`switch`.
    Break,
    Fail(ScriptError),
}

pub(crate) type R<T> = Result<T, Halt>;

pub(crate) struct Run<'a> {
    pub script: &'a Script,
    pub worker: &'a mut Worker,
    pub ctx: &'a mut MsgCtx,
    pub log: &'a mut dyn Log,
    pub limits: Limits,
    pub ops: u64,
    pub depth: usize,
    pub params: Vec<Value>,
    /// The names of `params` in an event route (`raise_event` attributes); empty elsewhere.
    pub param_names: Vec<Option<String>>,
    /// The index of the route being run.
    pub route: usize,
    /// `$route.type`: the kind of the top-level route.
    pub kind: &'static str,
    /// Values of the last `return(code, values…)`.
    pub returned: Vec<Value>,
    /// The `E_PROFILING_SCRIPT` session of this run, when somebody subscribed.
    pub prof: Option<crate::profiling::ScriptSession>,
    /// `script_trace()` on: what each statement run prints, until the run ends.
    pub trace: Option<(i32, Vec<super::ir::Piece>, Option<Box<str>>)>,
}

/// C `int` arithmetic, as OpenSIPS does it.
fn wrap(v: i64) -> i64 {
    i64::from(v as i32)
}

pub(super) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Int(i) => *i != 0,
        Value::Str(s) => !s.is_empty(),
    }
}

impl Run<'_> {
    /// The `xlog()` threshold: the worker's `$xlog_level` when set, else the configured one.
    fn xlog_level(&self) -> i32 {
        self.worker
            .xlog_level
            .unwrap_or_else(|| crate::script::levels().1.unwrap_or(self.script.xlog_level))
    }

    /// The core log threshold: the worker's `$log_level` when set, else `log_level`.
    fn log_level(&self) -> i32 {
        self.worker
            .log_level
            .unwrap_or_else(|| crate::script::levels().0.unwrap_or(self.script.log_level))
    }

    fn tick(&mut self) -> R<()> {
        self.ops += 1;
        if self.ops > self.limits.max_ops {
            return Err(Halt::Fail(ScriptError::Budget(self.limits.max_ops)));
        }
        Ok(())
    }

    /// Runs a statement list; the value is the last statement's return code.
    pub fn stmts(&mut self, list: &[Stmt]) -> R<i64> {
        let mut code = 1;
        for s in list {
            code = self.stmt(s)?;
            if code == 0 {
                return Err(Halt::Exit);
            }
        }
        Ok(code)
    }

    fn stmt(&mut self, s: &Stmt) -> R<i64> {
        self.tick()?;
        let code = match s {
            Stmt::Call(c) => self.call(c)?,
            Stmt::Assign(a) => self.assign(a)?,
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                let c = self.cond(cond)?;
                if c > 0 {
                    return self.stmt(then);
                }
                return match otherwise {
                    Some(o) => self.stmt(o),
                    None => Ok(1),
                };
            }
            Stmt::While { cond, body } => return self.while_loop(cond, body),
            Stmt::Switch {
                subject,
                cases,
                default,
                body,
            } => return self.switch(subject, cases, *default, body),
            Stmt::Return(v, extra) => {
                let code = match v {
                    None => 1,
                    Some(e) => match self.value(e)? {
                        Value::Int(i) => i,
                        Value::Str(_) => 1,
                        Value::Null => -1,
                    },
                };
                if !extra.is_empty() {
                    let mut values = Vec::with_capacity(extra.len());
                    for e in extra {
                        values.push(self.value(e)?);
                    }
                    self.returned = values;
                }
                return Err(if code == 0 {
                    Halt::Exit
                } else {
                    Halt::Return(code)
                });
            }
            Stmt::Exit => return Err(Halt::Exit),
            Stmt::Drop => return Err(Halt::Drop),
            Stmt::Break => return Err(Halt::Break),
            Stmt::Block(b) => return self.stmts(b),
            Stmt::Nop => 1,
            Stmt::Traced(t) => {
                if let Some((level, format, info)) = self.trace.clone()
                    && level <= self.log_level()
                {
                    let val = self.format(&format)?;
                    let info = info.map_or(String::new(), |i| format!("[{i}]"));
                    let text = format!(
                        "[Script Trace][{}:{}]{info}[{} {}] -> ({})\n",
                        t.file,
                        t.line,
                        t.class,
                        t.action,
                        val.to_text()
                    );
                    self.log.log(level, &text);
                }
                return self.stmt(&t.stmt);
            }
            Stmt::For { var, values, body } => return self.for_each(var, values, body),
            Stmt::Assert { cond, message } => {
                if !self.script.asserts || self.cond(cond)? > 0 {
                    1
                } else {
                    self.log.log(-2, &format!("ASSERTION FAILED - {message}"));
                    // OpenSIPS: error_route runs with the assertion's `$err`, then the script ends.
                    if let Some(i) = self.script.error {
                        self.ctx.err = Some(crate::ErrInfo::assertion());
                        let kind = std::mem::replace(&mut self.kind, "error");
                        let ran = self.route(i, Vec::new());
                        self.kind = kind;
                        if let Err(h @ (Halt::Drop | Halt::Fail(_))) = ran {
                            return Err(h);
                        }
                    }
                    return Err(Halt::Exit);
                }
            }
        };
        self.ctx.retcode = code;
        Ok(code)
    }

    fn while_loop(&mut self, cond: &Expr, body: &Stmt) -> R<i64> {
        let mut n = 0usize;
        loop {
            if n >= self.limits.max_while_loops {
                self.log.log(
                    -1,
                    &format!("while loop stopped after {n} iterations (max_while_loops)"),
                );
                return Ok(1);
            }
            n += 1;
            if self.cond(cond)? <= 0 {
                return Ok(1);
            }
            match self.stmt(body) {
                Ok(_) => {}
                Err(Halt::Break) => return Ok(1),
                Err(h) => return Err(h),
            }
        }
    }

    /// `for (var in $(src[*]))`: every value in turn, until `break`.
    fn for_each(&mut self, var: &Write, values: &PvRead, body: &Stmt) -> R<i64> {
        // A `$json` loop variable takes each item as JSON text (OpenSIPS assigns with `:=`).
        let op = match var {
            Write::Json(_) => AssignOp::Replace,
            _ => AssignOp::Set,
        };
        for v in self.all_values(values)? {
            self.write(var, op, v);
            match self.stmt(body) {
                Ok(_) => {}
                Err(Halt::Break) => break,
                Err(h) => return Err(h),
            }
        }
        Ok(1)
    }

    /// The values an `[*]` read iterates: AVP values newest first, header lines in order, a
    /// `$json` object's values (or keys) or array's elements.
    fn all_values(&mut self, p: &PvRead) -> R<Vec<Value>> {
        Ok(match &p.read {
            Read::Json(path) if path.all => match self.json_steps(path)? {
                Some(steps) => {
                    let root = self.worker.json.get(path.slot).and_then(Option::as_ref);
                    super::json::iterate(super::json::find(root, &steps), path.iter, path.format)
                }
                None => Vec::new(),
            },
            Read::Avp(id, _) => self
                .ctx
                .avps
                .get(*id)
                .map_or(Vec::new(), |s| s.iter().rev().cloned().collect()),
            Read::Core(crate::pv::CorePv::Header(sel, _)) => self
                .ctx
                .msg
                .header_lines_str(&sel.text)
                .map(|l| Value::Str(self.ctx.msg.share(l)))
                .collect(),
            // Contact by contact, up to the first one without the value (OpenSIPS walks the
            // index until it reads NULL).
            Read::Core(crate::pv::CorePv::Contact(field, _)) => (0..)
                .map(|i| {
                    crate::pv::contact::contact(&self.ctx.msg, *field, crate::pv::Index::At(i))
                })
                .take_while(|v| !v.is_null())
                .collect(),
            _ => self
                .read(p)
                .ok()
                .into_iter()
                .filter(|v| !v.is_null())
                .collect(),
        })
    }

    /// A `$json` path with its variable steps read; `None` when an index variable does not
    /// hold an integer (the read is NULL, the assignment fails).
    pub(super) fn json_steps(
        &mut self,
        path: &super::json::JsonPath,
    ) -> R<Option<Vec<super::json::At>>> {
        use super::ir::Dyn;
        use super::json::{At, Step};
        let mut out = Vec::with_capacity(path.steps.len());
        for step in &path.steps {
            out.push(match step {
                Step::Key(Dyn::Static(k)) => At::Key(k.clone()),
                Step::Key(Dyn::Var(p)) => At::Key(self.read(p)?.to_text().into_owned()),
                Step::Index(Dyn::Static(i)) => At::Index(*i),
                Step::Index(Dyn::Var(p)) => match self.read(p)? {
                    Value::Int(i) => At::Index(i),
                    _ => return Ok(None),
                },
                Step::Append => At::Append,
            });
        }
        Ok(Some(out))
    }

    fn switch(
        &mut self,
        subject: &PvRead,
        cases: &[(Value, usize)],
        default: Option<usize>,
        body: &[Stmt],
    ) -> R<i64> {
        let v = self.read(subject)?;
        let start = cases
            .iter()
            .find(|(label, _)| match (label, &v) {
                (Value::Int(a), Value::Int(b)) => a == b,
                (Value::Str(a), Value::Str(b)) => a.eq_ignore_ascii_case(b),
                (Value::Str(a), Value::Int(b)) => a.trim() == b.to_string(),
                _ => false,
            })
            .map(|(_, at)| *at)
            .or(default);
        let Some(start) = start else { return Ok(1) };
        match self.stmts(body.get(start..).unwrap_or(&[])) {
            Ok(c) => Ok(c),
            Err(Halt::Break) => Ok(1),
            Err(h) => Err(h),
        }
    }

    /// A condition's code: > 0 true, < 0 false (errors too); 0 ends the script.
    fn cond(&mut self, e: &Expr) -> R<i64> {
        self.tick()?;
        Ok(match e {
            Expr::Not(x) => {
                let c = self.cond(x)?;
                if c > 0 { -1 } else { 1 }
            }
            Expr::And(a, b) => {
                if self.cond(a)? > 0 {
                    self.cond(b)?
                } else {
                    -1
                }
            }
            Expr::Or(a, b) => {
                if self.cond(a)? > 0 {
                    1
                } else {
                    self.cond(b)?
                }
            }
            Expr::Call(c) => {
                let code = self.call(c)?;
                if code == 0 {
                    return Err(Halt::Exit);
                }
                // OpenSIPS: a call in a condition sets `$rc` for the branch it picks.
                self.ctx.retcode = code;
                code
            }
            Expr::Cmp {
                op,
                left,
                right,
                regex,
            } => bool_code(self.compare(*op, left, right, regex.as_ref())?),
            Expr::CmpNet { negate, left, net } => {
                let v = self.read(left)?;
                let inside = v
                    .to_text()
                    .parse::<std::net::IpAddr>()
                    .ok()
                    .is_some_and(|a| in_net(a, *net));
                bool_code(inside != *negate)
            }
            Expr::Assign(a) => self.assign(a)?,
            other => bool_code(truthy(&self.value(other)?)),
        })
    }

    fn compare(
        &mut self,
        op: CmpOp,
        left: &PvRead,
        right: &Expr,
        regex: Option<&regex::Regex>,
    ) -> R<bool> {
        let l = self.read(left)?;
        let r = self.value(right)?;
        let (ne, nm) = (op == CmpOp::Ne, op == CmpOp::NotMatch);
        Ok(match (&l, &r) {
            (Value::Null, Value::Null) => matches!(op, CmpOp::Eq | CmpOp::Match),
            (Value::Null, _) | (_, Value::Null) => ne || nm,
            _ if matches!(op, CmpOp::Match | CmpOp::NotMatch) => {
                let hit = match (regex, &l, &r) {
                    (_, Value::Int(a), Value::Int(b)) => a == b,
                    (Some(re), _, _) => re.is_match(&l.to_text()),
                    (None, _, _) => crate::regex_cache::icase(&r.to_text(), false)
                        .is_ok_and(|re| re.is_match(&l.to_text())),
                };
                hit != nm
            }
            (Value::Int(a), Value::Int(b)) => ordered(op, a.cmp(b)),
            // A number constant needs an integer on the left (OpenSIPS: type error → false).
            (Value::Str(_), Value::Int(_)) if matches!(right, Expr::Const(_)) => false,
            _ => ordered(op, cmp_ignore_case(&l.to_text(), &r.to_text())),
        })
    }

    pub fn value(&mut self, e: &Expr) -> R<Value> {
        self.tick()?;
        Ok(match e {
            Expr::Const(v) => v.clone(),
            Expr::Pv(p) => self.read(p)?,
            Expr::Format(pieces) => self.format(pieces)?,
            Expr::Binary { .. } => self.arith(e)?.unwrap_or(Value::Null),
            Expr::BitNot(x) => match self.value(x)? {
                Value::Int(i) => Value::Int(wrap(!i)),
                _ => Value::Null,
            },
            Expr::Test(x) => Value::Int(i64::from(truthy(&self.value(x)?))),
            Expr::Call(c) => {
                let code = self.call(c)?;
                if code == 0 {
                    return Err(Halt::Exit);
                }
                self.ctx.retcode = code;
                Value::Int(code)
            }
            // A comparison or logical expression used as a value is 1 or 0 (OpenSIPS
            // eval_expr stores its 0/1 result), not the -1 a false condition reports.
            cond => Value::Int(i64::from(self.cond(cond)? > 0)),
        })
    }

    fn format(&mut self, pieces: &[Piece]) -> R<Value> {
        if let [Piece::Text(t)] = pieces {
            return Ok(Value::Str(t.clone()));
        }
        let mut out = String::new();
        for p in pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Pv(pv) => out.push_str(&self.read(pv)?.to_text()),
            }
        }
        Ok(Value::from(out))
    }

    /// `$(<request>pv)` / `$(<reply>pv)`: with a transaction, its request / picked reply; without
    /// one, the message being handled when it is of that kind, else NULL.
    fn context_read(&self, which: super::ir::Context, pv: &crate::pv::CorePv) -> Value {
        use super::ir::Context;
        let other = self.ctx.tx.as_ref().and_then(|tx| match which {
            Context::Request => tx.request(),
            Context::Reply => tx.picked_reply(),
        });
        match other {
            Some(msg) => {
                let mut ctx = MsgCtx::new(msg);
                ctx.tx = self.ctx.tx.clone();
                self.with_contact_index(pv).read(&ctx)
            }
            None if self.ctx.msg.is_request() == (which == Context::Request) => self.core_read(pv),
            None => Value::Null,
        }
    }

    /// A core PV's value; flag masks (`$mf`, `$bf`, `$msg.branch.flags`) print as the names of
    /// the flags set, newest-declared first, space-separated (as OpenSIPS prints them).
    pub(super) fn core_read(&self, pv: &crate::pv::CorePv) -> Value {
        use crate::pv::{BranchField, CorePv};
        let v = self.with_contact_index(pv).read(self.ctx);
        match (pv, v) {
            (
                CorePv::MsgFlags
                | CorePv::BranchFlags
                | CorePv::Branch(BranchField::Flags, _)
                | CorePv::TmBranch(crate::pv::TmBranchField::Flags, _),
                Value::Int(mask),
            ) => {
                let mut set: Vec<(&u32, &String)> = self
                    .script
                    .names
                    .flags
                    .iter()
                    .filter(|(_, bit)| **bit < 64 && mask as u64 & (1 << **bit) != 0)
                    .map(|(name, bit)| (bit, name))
                    .collect();
                set.sort_unstable_by(|a, b| b.0.cmp(a.0));
                let names: Vec<&str> = set.iter().map(|(_, n)| n.as_str()).collect();
                Value::from(names.join(" "))
            }
            (_, v) => v,
        }
    }

    /// `$(ct[$var(i)])` with the index read from its variable (a non-integer one reads past
    /// the contacts, i.e. NULL); any other PV as it is.
    fn with_contact_index<'p>(
        &self,
        pv: &'p crate::pv::CorePv,
    ) -> std::borrow::Cow<'p, crate::pv::CorePv> {
        use crate::pv::{ContactIndex, CorePv, Index};
        match pv {
            CorePv::Contact(field, ContactIndex::Var(slot)) => {
                let at = self
                    .worker
                    .vars
                    .get(*slot)
                    .and_then(Value::as_int)
                    .unwrap_or(i64::MAX);
                std::borrow::Cow::Owned(CorePv::Contact(*field, ContactIndex::Fixed(Index::At(at))))
            }
            other => std::borrow::Cow::Borrowed(other),
        }
    }

    pub fn read(&mut self, p: &PvRead) -> R<Value> {
        let mut v = match &p.read {
            Read::Core(pv) => self.core_read(pv),
            Read::Var(slot) => self.worker.vars.get(*slot).cloned().unwrap_or_default(),
            Read::Retcode => Value::Int(self.ctx.retcode),
            Read::Param(i) => self.params.get(*i).cloned().unwrap_or_default(),
            Read::ParamNamed(name) => self
                .param_names
                .iter()
                .position(|n| n.as_deref() == Some(name.as_str()))
                .and_then(|i| self.params.get(i))
                .cloned()
                .unwrap_or_default(),
            Read::Flag(bit) => Value::Int(i64::from(self.ctx.flags & (1 << bit) != 0)),
            Read::DlgVal(name) => crate::hooks::dialog_val(self.ctx, name),
            Read::RlCount(name) => crate::hooks::pipe_count(name),
            Read::ShTag(name) => crate::hooks::shtag(name),
            Read::SqlCached(name) => {
                let name = self.format(name)?;
                crate::hooks::sql_cached_value(&name.to_text())
            }
            Read::Identity(name) => crate::hooks::identity(self.ctx, name),
            Read::Tls(name) => crate::hooks::tls(self.ctx, name),
            Read::ThCalleeCallid => crate::hooks::th_callee_callid(self.ctx),
            Read::SourceUri => crate::pv::source_uri(self.ctx),
            Read::ModulePv(pv, arg) => crate::hooks::module_pv(*pv, arg),
            Read::B2b(name, arg, index) => {
                crate::hooks::b2b_pv(self.ctx.id, name, arg.as_deref(), *index)
            }
            Read::Shv(name) => crate::shv::get(name),
            Read::Stat(name) => {
                crate::stats::find(name).map_or(Value::Null, |s| Value::Int(s.get()))
            }
            Read::AccExtra(tag) => self.ctx.acc_extra.as_ref().map_or(Value::Null, |x| {
                let values = x.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                crate::ctx::AccValues::get(&values.extra, tag)
            }),
            Read::AccLeg(tag) => self.ctx.acc_extra.as_ref().map_or(Value::Null, |x| {
                let values = x.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                values
                    .legs
                    .last()
                    .map_or(Value::Null, |leg| crate::ctx::AccValues::get(leg, tag))
            }),
            // The first leg is 0 (OpenSIPS starts a context with one leg).
            Read::AccCurrentLeg => Value::Int(self.ctx.acc_extra.as_ref().map_or(0, |x| {
                let values = x.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                values.legs.len().saturating_sub(1) as i64
            })),
            Read::BranchFlag(bit, at) => match self.ctx.msg_branch_at(*at) {
                Some(0) => Value::Int(i64::from(self.ctx.branch_flags & (1 << bit) != 0)),
                Some(i) => self.ctx.branches.get(i - 1).map_or(Value::Null, |b| {
                    Value::Int(i64::from(b.flags & (1 << bit) != 0))
                }),
                None => Value::Null,
            },
            Read::DynHeader { name, index } => {
                let name = match name {
                    super::ir::Dyn::Static(n) => n.clone(),
                    super::ir::Dyn::Var(p) => self.read(p)?.to_text().into_owned(),
                };
                let index = match index {
                    super::ir::Dyn::Static(i) => *i,
                    super::ir::Dyn::Var(p) => match self.read(p)?.as_int() {
                        Some(i) => crate::pv::Index::At(i),
                        None => return Ok(Value::Null),
                    },
                };
                crate::pv::CorePv::Header(crate::pv::HeaderSel::new(&name), index).read(self.ctx)
            }
            Read::BranchAt { field, at, legacy } => {
                let Some(i) = self.read(at)?.as_int() else {
                    return Ok(Value::Null);
                };
                let i = if *legacy && i >= 0 { i + 1 } else { i };
                self.core_read(&crate::pv::CorePv::Branch(*field, i))
            }
            Read::BranchAttrAt(name, at) => {
                let Some(i) = self.read(at)?.as_int() else {
                    return Ok(Value::Null);
                };
                self.core_read(&crate::pv::CorePv::BranchAttr(name.clone(), Some(i)))
            }
            Read::AvpAt(id, at) => {
                let Some(i) = self.read(at)?.as_int() else {
                    return Ok(Value::Null);
                };
                let stack = self.ctx.avps.get(*id).map_or(&[][..], Vec::as_slice);
                avp_get(stack, crate::pv::Index::At(i))
            }
            Read::Const(v) => v.clone(),
            Read::RouteName => match self.script.route_names.get(self.route) {
                Some(n) if n.is_empty() => Value::str("0"),
                Some(n) => Value::str(n),
                None => Value::Null,
            },
            Read::RouteType => Value::str(self.kind),
            Read::XlogLevel => Value::Int(i64::from(self.xlog_level())),
            Read::LogLevel => Value::Int(i64::from(self.log_level())),
            Read::Returned(i) => self.returned.get(*i).cloned().unwrap_or_default(),
            Read::Avp(id, index) => {
                let stack = self.ctx.avps.get(*id).map_or(&[][..], Vec::as_slice);
                avp_get(stack, *index)
            }
            Read::Bavp(id, index) => {
                let stack = self.ctx.bavps.get(*id).map_or(&[][..], Vec::as_slice);
                avp_get(stack, *index)
            }
            Read::InContext(which, pv) => self.context_read(*which, pv),
            Read::SdpLine(sel) => match self.sdp_indexes(sel)? {
                Some(sel) => crate::pv::sdp_body::with_lines(self.ctx, |lines| {
                    crate::pv::sdp::read(lines, &sel).map(|s| Value::from(s.to_owned()))
                })
                .unwrap_or_default(),
                None => Value::Null,
            },
            Read::Xml(path) => {
                let Some((steps, at)) = super::xml::steps_of(path, |p| self.read(p).ok()) else {
                    return Ok(Value::Null);
                };
                let doc = self.worker.xml.get(path.slot).and_then(Option::as_ref);
                super::xml::read(doc, &steps, &at).map_or(Value::Null, Value::from)
            }
            Read::Json(path) => {
                if path.all {
                    self.log.log(-1, "json: `[*]` is only read by a `for` loop");
                    return Ok(Value::Null);
                }
                match self.json_steps(path)? {
                    Some(steps) => {
                        let root = self.worker.json.get(path.slot).and_then(Option::as_ref);
                        super::json::to_value(super::json::find(root, &steps), path.format)
                    }
                    None => Value::Null,
                }
            }
            Read::SdpLineIdx(sel) => match self.sdp_indexes(sel)? {
                Some(sel) => crate::pv::sdp_body::with_lines(self.ctx, |lines| {
                    lines.find(&sel, false).map(|i| Value::Int(i as i64))
                })
                .unwrap_or_default(),
                None => Value::Null,
            },
        };
        for (tr, args) in &p.transforms {
            if tr.op() == crate::transform::TransformOp::SEval {
                v = self.eval_format(&v.to_text());
                continue;
            }
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(self.value(a)?);
            }
            v = tr.apply(&v, &vals);
        }
        Ok(v)
    }

    /// An arithmetic / concatenation expression; `None` is OpenSIPS' "no value" (a type error
    /// or a division by zero), which makes an assignment fail and leave its target alone.
    fn arith(&mut self, e: &Expr) -> R<Option<Value>> {
        let Expr::Binary { op, left, right } = e else {
            return self.value(e).map(Some);
        };
        let Some(l) = self.arith(left)? else {
            return Ok(None);
        };
        let Some(r) = self.arith(right)? else {
            return Ok(None);
        };
        // An integer literal or an arithmetic result has no string form in OpenSIPS (an integer
        // read from a variable has both), so it cannot be appended to a string.
        let text_less = matches!(
            **right,
            Expr::Const(Value::Int(_)) | Expr::Binary { .. } | Expr::BitNot(_)
        ) && matches!(r, Value::Int(_));
        Ok(binary(*op, &l, &r, text_less))
    }

    fn assign(&mut self, a: &Assign) -> R<i64> {
        let v = match &a.value {
            e @ Expr::Binary { .. } => match self.arith(e)? {
                Some(v) => v,
                // OpenSIPS: "no value in right expression" — the assignment fails.
                None => return Ok(-1),
            },
            e => self.value(e)?,
        };
        let new = match a.op {
            AssignOp::Set | AssignOp::Replace => Some(v),
            op => {
                let old = match a.target {
                    Write::Var(slot) => self.worker.vars.get(slot).cloned().unwrap_or_default(),
                    Write::Avp(id, _) => self
                        .ctx
                        .avps
                        .get(id)
                        .and_then(|s| s.last())
                        .cloned()
                        .unwrap_or_default(),
                    Write::Bavp(id, _) => self
                        .ctx
                        .bavps
                        .get(id)
                        .and_then(|s| s.last())
                        .cloned()
                        .unwrap_or_default(),
                    _ => Value::Null,
                };
                compound(op, &old, &v)
            }
        };
        let Some(new) = new else { return Ok(-1) };
        Ok(if self.write(&a.target, a.op, new) {
            1
        } else {
            -1
        })
    }

    /// A selector with its `[$pv]` indexes read; `None` when one is not an integer.
    pub(super) fn sdp_indexes(
        &mut self,
        sel: &super::ir::SdpSel,
    ) -> R<Option<crate::pv::sdp::Selector<i64>>> {
        use super::ir::SdpIdx;
        let mut failed: Option<Halt> = None;
        let resolved = sel.clone().try_map(|i| match i {
            SdpIdx::At(n) => Ok(n),
            SdpIdx::Pv(p) => match self.read(&p) {
                Ok(v) => match v {
                    Value::Int(n) => Ok(n),
                    Value::Str(_) | Value::Null => v.as_int().ok_or(()),
                },
                Err(h) => {
                    failed = Some(h);
                    Err(())
                }
            },
        });
        if let Some(h) = failed {
            return Err(h);
        }
        Ok(resolved.ok())
    }

    fn call(&mut self, c: &Call) -> R<i64> {
        match c {
            Call::Core(f) => self.core(f),
            Call::Route {
                index,
                params,
                site,
            } => {
                let mut values = Vec::with_capacity(params.len());
                for p in params {
                    values.push(self.value(p)?);
                }
                match self.prof {
                    None => self.route(*index, values),
                    Some(prof) => self.profiled_route(prof, *index, *site, values),
                }
            }
            Call::Async {
                call,
                route,
                launch,
            } => {
                // The function runs to its end here; the resume (or report) route sees its
                // result in `$rc`.
                let code = self.call(call)?;
                self.ctx.retcode = code;
                if let Some(r) = route {
                    self.route(*r, Vec::new())?;
                }
                if *launch { Ok(1) } else { Err(Halt::Exit) }
            }
            Call::Xlog { level, format } => {
                let level = match level {
                    super::ir::Level::Fixed(l) => *l,
                    // OpenSIPS: a PV level must hold an integer at run time.
                    super::ir::Level::Pv(p) => match self.read(p)?.as_int() {
                        Some(l) => l as i32,
                        None => return Ok(-1),
                    },
                };
                let text = self.format(format)?;
                if level <= self.xlog_level() {
                    self.log.log(level, &text.to_text());
                }
                Ok(1)
            }
            Call::Log { level, text } => {
                if *level <= self.log_level() {
                    self.log.log(*level, text);
                }
                Ok(1)
            }
            Call::Module { run, args, outs } => {
                // The worker's argument buffer (taken, as a function may run routes that call
                // other functions).
                let mut values = std::mem::take(&mut self.worker.args);
                values.clear();
                for a in args {
                    values.push(self.value(a)?);
                }
                let mut output_counts: Vec<(usize, usize)> = Vec::new();
                for (param, _, _) in outs {
                    match output_counts.iter_mut().find(|(p, _)| p == param) {
                        Some((_, n)) => *n += 1,
                        None => output_counts.push((*param, 1)),
                    }
                }
                let avp_params = outs
                    .iter()
                    .filter_map(|(p, _, w)| match w {
                        Write::Avp(id, _) => Some((*p, *id)),
                        _ => None,
                    })
                    .collect();
                let mut fctx = crate::module::FnCtx {
                    msg: &mut *self.ctx,
                    log: &mut *self.log,
                    script: self.script,
                    kind: self.kind,
                    worker: &mut *self.worker,
                    output_counts,
                    avp_params,
                    outputs: Vec::new(),
                };
                let code = run(&mut fctx, &values);
                let outputs = fctx.outputs;
                values.clear();
                self.worker.args = values;
                for (param, at, v) in outputs {
                    if let Some((_, _, target)) =
                        outs.iter().find(|(i, k, _)| *i == param && *k == at)
                    {
                        self.write(target, AssignOp::Set, v);
                    }
                }
                Ok(code)
            }
        }
    }

    /// [`Run::route`] between its `enter` and `exit` profiling records: depth one more than
    /// the caller's, `file:line` of the `route()` call, the route's return code as status
    /// (0 when it ended the script, -1 when it failed).
    #[cold]
    fn profiled_route(
        &mut self,
        prof: crate::profiling::ScriptSession,
        index: usize,
        site: u32,
        values: Vec<Value>,
    ) -> R<i64> {
        let script = self.script;
        let name = script.route_names.get(index).map_or("", String::as_str);
        let at = script.sites.get(site as usize).map(|s| (&*s.file, s.line));
        let depth = self.depth + 1;
        prof.record("enter", name, depth, at, None);
        let r = self.route(index, values);
        let status = match &r {
            Ok(code) => *code,
            Err(Halt::Fail(_)) => -1,
            Err(_) => 0,
        };
        prof.record("exit", name, depth, at, Some(status));
        r
    }

    /// Runs a sub-route: its `return(N)` is the value; `exit`/`drop` end the caller too.
    pub fn route(&mut self, index: usize, params: Vec<Value>) -> R<i64> {
        self.route_named(index, params, Vec::new())
    }

    /// Runs a route whose parameters have names (an event route's attributes).
    pub fn route_named(
        &mut self,
        index: usize,
        params: Vec<Value>,
        names: Vec<Option<String>>,
    ) -> R<i64> {
        if self.depth >= self.limits.max_depth {
            return Err(Halt::Fail(ScriptError::Depth(self.limits.max_depth)));
        }
        let Some(body) = self.script.routes.get(index) else {
            return Ok(-1);
        };
        let saved = std::mem::replace(&mut self.params, params);
        let saved_names = std::mem::replace(&mut self.param_names, names);
        let caller = std::mem::replace(&mut self.route, index);
        self.depth += 1;
        let r = self.stmts(body);
        self.depth -= 1;
        self.params = saved;
        self.param_names = saved_names;
        self.route = caller;
        let code = match r {
            Ok(c) => c,
            Err(Halt::Return(c)) => c,
            Err(Halt::Break) => 1,
            Err(h) => return Err(h),
        };
        self.ctx.retcode = code;
        Ok(code)
    }
}

/// Case-insensitive ordering without allocating (OpenSIPS compares lower-cased bytes over the
/// common prefix, then lengths).
fn cmp_ignore_case(a: &str, b: &str) -> std::cmp::Ordering {
    let (x, y) = (
        a.bytes().map(|c| c.to_ascii_lowercase()),
        b.bytes().map(|c| c.to_ascii_lowercase()),
    );
    x.cmp(y)
}

pub(crate) fn bool_code(b: bool) -> i64 {
    if b { 1 } else { -1 }
}

fn ordered(op: CmpOp, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => o == Equal,
        CmpOp::Ne => o != Equal,
        CmpOp::Lt => o == Less,
        CmpOp::Le => o != Greater,
        CmpOp::Gt => o == Greater,
        CmpOp::Ge => o != Less,
        CmpOp::Match | CmpOp::NotMatch => false,
    }
}

fn in_net(a: std::net::IpAddr, (net, bits): (std::net::IpAddr, u8)) -> bool {
    match (a, net) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `+ - * / % & | ^ << >>` with OpenSIPS' rules (route.c eval_elem): integer math in C `int`
/// when the left side is an integer (a NULL right side counts as 0); otherwise `+` concatenates
/// (NULL as empty), but not an integer without a string form (`text_less`: a literal or an
/// arithmetic result). `None` is "no value" (division by zero, type error).
fn binary(op: BinOp, l: &Value, r: &Value, text_less: bool) -> Option<Value> {
    if let Value::Int(a) = l {
        let b = match r {
            Value::Null => 0,
            Value::Int(b) => *b,
            Value::Str(_) => return None,
        };
        let (a, b) = (*a as i32, b as i32);
        return Some(Value::Int(i64::from(match op {
            BinOp::Add => a.wrapping_add(b),
            BinOp::Sub => a.wrapping_sub(b),
            BinOp::Mul => a.wrapping_mul(b),
            BinOp::Div => a.checked_div(b)?,
            BinOp::Mod => a.checked_rem(b)?,
            BinOp::BitAnd => a & b,
            BinOp::BitOr => a | b,
            BinOp::BitXor => a ^ b,
            BinOp::Shl => a.wrapping_shl(b as u32),
            BinOp::Shr => a.wrapping_shr(b as u32),
        })));
    }
    match op {
        BinOp::Add if text_less => None,
        BinOp::Add => {
            let right = match r {
                Value::Null => String::new(),
                other => other.to_text().into_owned(),
            };
            let left = match l {
                Value::Null => String::new(),
                other => other.to_text().into_owned(),
            };
            Some(Value::Str(ByteString::from(left + &right)))
        }
        _ => None,
    }
}

/// `+= -= …`: both sides must be set; two strings only concatenate; two integers do math.
fn compound(op: AssignOp, old: &Value, v: &Value) -> Option<Value> {
    let bin = match op {
        AssignOp::Add => BinOp::Add,
        AssignOp::Sub => BinOp::Sub,
        AssignOp::Mul => BinOp::Mul,
        AssignOp::Div => BinOp::Div,
        AssignOp::Mod => BinOp::Mod,
        AssignOp::And => BinOp::BitAnd,
        AssignOp::Or => BinOp::BitOr,
        AssignOp::Xor => BinOp::BitXor,
        AssignOp::Set | AssignOp::Replace => return Some(v.clone()),
    };
    match (old, v) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Int(_), Value::Int(_)) => binary(bin, old, v, false),
        (Value::Str(_), Value::Str(_)) if bin == BinOp::Add => binary(bin, old, v, false),
        _ => None,
    }
}
