//! Assignments: what each script variable kind does with the value it is given (the
//! branch fields are in `branch_writes`).

use cfg::ast::AssignOp;

use super::avp::avp_set;
use super::exec::{Run, truthy};
use super::ir::Write;
use crate::value::Value;

impl Run<'_> {
    pub(super) fn write(&mut self, target: &Write, op: AssignOp, v: Value) -> bool {
        let text = || match &v {
            Value::Null => None,
            other => Some(other.to_text().into_owned()),
        };
        match *target {
            Write::Var(slot) => {
                if self.worker.vars.len() <= slot {
                    self.worker.vars.resize(slot + 1, Value::Null);
                }
                if let Some(s) = self.worker.vars.get_mut(slot) {
                    *s = v;
                }
                true
            }
            // OpenSIPS pvar.c setters: `$ru` takes any text but not NULL; NULL removes the user
            // part or the port; the host cannot be NULL.
            Write::Ruri => match text() {
                Some(t) => {
                    self.ctx.assign_ruri(&t);
                    true
                }
                None => false,
            },
            Write::RuriUser => self.ctx.set_ruri_user(&text().unwrap_or_default()),
            Write::RuriHost => text().is_some_and(|t| self.ctx.set_ruri_host(&t)),
            Write::RuriPort => self.ctx.set_ruri_port(&text().unwrap_or_default()),
            // An empty destination is none (OpenSIPS `set_dst_uri`).
            Write::DstUri => {
                self.ctx.dst_uri = text().filter(|t| !t.is_empty());
                true
            }
            // `$dd` / `$dp`: NULL removes the port; a host is required.
            Write::DstHost => text().is_some_and(|t| self.ctx.set_dst_host_port(Some(&t), None)),
            Write::DstPort => {
                let port = text().unwrap_or_default();
                self.ctx.set_dst_host_port(None, Some(&port))
            }
            // A configured socket (`proto:host:port`, as `force_send_socket`); NULL clears.
            Write::AppendBranch => match text() {
                Some(uri) if sip::Uri::parse(&uri).is_ok() => {
                    self.ctx.branches.push(crate::ctx::MsgBranch {
                        uri,
                        dst_uri: None,
                        path: None,
                        q: -1,
                        flags: 0,
                        attrs: Default::default(),
                        socket: None,
                    });
                    true
                }
                _ => false,
            },
            Write::FrTimeout | Write::FrInvTimeout => {
                let secs = match &v {
                    Value::Null => None,
                    v => v.as_int().and_then(|n| u32::try_from(n).ok()),
                };
                let ok = secs.is_some() || matches!(v, Value::Null);
                let inv = matches!(target, Write::FrInvTimeout);
                match (&self.ctx.tx, ok) {
                    (_, false) => {}
                    // Once the transaction exists the value is its own (OpenSIPS writes
                    // `t->fr_timeout`), in every route that has it.
                    (Some(tx), true) => tx.set_fr_timeout(inv, secs),
                    (None, true) if inv => self.ctx.fr_inv_timeout = secs,
                    (None, true) => self.ctx.fr_timeout = secs,
                }
                ok
            }
            Write::SocketOut => match self.socket_named("$socket_out", &v) {
                Some(socket) => {
                    self.ctx.send_socket = socket;
                    true
                }
                None => false,
            },
            // An integer (q × 1000), above 1000 taken as 1000; NULL and strings are refused
            // (OpenSIPS `pv_set_ru_q`).
            Write::RuriQ => match v {
                Value::Int(q) => {
                    self.ctx.ruri_q = q.clamp(i64::from(i32::MIN), 1000) as i32;
                    true
                }
                Value::Null | Value::Str(_) => false,
            },
            // OpenSIPS: an integer sets this process' level as it is, NULL goes back to the
            // configured one, a string is refused.
            Write::LogLevel | Write::XlogLevel => {
                let level = match v {
                    Value::Null => None,
                    Value::Int(l) => Some(l as i32),
                    Value::Str(_) => return false,
                };
                if matches!(target, Write::LogLevel) {
                    self.worker.log_level = level;
                } else {
                    self.worker.xlog_level = level;
                }
                true
            }
            Write::Flag(bit) => {
                if truthy(&v) {
                    self.ctx.flags |= 1 << bit;
                } else {
                    self.ctx.flags &= !(1 << bit);
                }
                true
            }
            Write::DlgVal(ref name) => crate::hooks::dialog_set_val(self.ctx, name, &v),
            Write::ShTag(ref name) => crate::hooks::shtag_set(name, &v),
            Write::B2bCtx(ref name) => {
                crate::hooks::b2b_pv_set(self.ctx.id, "b2b_logic.ctx", Some(name), &v)
            }
            Write::Shv(ref name) => {
                crate::shv::set(name, v.clone());
                true
            }
            // OpenSIPS resets a statistic whatever value is assigned.
            Write::Stat(ref name) => crate::stats::find(name).is_some_and(|s| {
                s.reset();
                true
            }),
            Write::DlgTimeout => match &v {
                Value::Null => false,
                v => v
                    .as_int()
                    .and_then(|n| u32::try_from(n).ok())
                    .is_some_and(|secs| crate::hooks::dialog_set_timeout(self.ctx, secs)),
            },
            Write::AccExtra(ref tag) => {
                let shared = self.ctx.acc_extra.get_or_insert_with(Default::default);
                let mut values = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                crate::ctx::AccValues::set(&mut values.extra, tag, v);
                true
            }
            Write::AccLeg(ref tag) => {
                let shared = self.ctx.acc_extra.get_or_insert_with(Default::default);
                let mut values = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if values.legs.is_empty() {
                    values.legs.push(Vec::new());
                }
                if let Some(leg) = values.legs.last_mut() {
                    crate::ctx::AccValues::set(leg, tag, v);
                }
                true
            }
            Write::BranchFlag(bit, at) => {
                let on = truthy(&v);
                let flags = match self.ctx.msg_branch_at(at) {
                    Some(0) => Some(&mut self.ctx.branch_flags),
                    Some(i) => self.ctx.branches.get_mut(i - 1).map(|b| &mut b.flags),
                    None => None,
                };
                let Some(flags) = flags else {
                    self.log
                        .log(-1, "$msg.branch.flag: no such branch to assign\n");
                    return false;
                };
                if on {
                    *flags |= 1 << bit;
                } else {
                    *flags &= !(1 << bit);
                }
                true
            }
            Write::Avp(id, slot) => {
                if self.ctx.avps.len() <= id {
                    self.ctx.avps.resize(id + 1, Vec::new());
                }
                let Some(stack) = self.ctx.avps.get_mut(id) else {
                    return false;
                };
                avp_set(stack, slot, op, v);
                true
            }
            // OpenSIPS: branch AVPs exist only while tm handles a branch (branch, onreply and
            // failure routes); elsewhere the assignment fails.
            Write::Bavp(id, slot) => {
                if !matches!(self.kind, "branch" | "onreply" | "failure") || self.ctx.tx.is_none() {
                    return false;
                }
                if self.ctx.bavps.len() <= id {
                    self.ctx.bavps.resize(id + 1, Vec::new());
                }
                let Some(stack) = self.ctx.bavps.get_mut(id) else {
                    return false;
                };
                avp_set(stack, slot, op, v);
                true
            }
            Write::Sdp(ref t) => self.write_sdp(t, v),
            Write::BranchAttr(ref name, at) => self.ctx.set_branch_attr(at, name, v),
            Write::BranchField(field, at) => self.write_branch_field(field, at, v),
            // OpenSIPS tm: only where a branch is being handled.
            Write::TmBranchAttr(ref name, at) => {
                matches!(self.kind, "branch" | "onreply" | "failure")
                    && self.ctx.set_tm_branch_attr(at, name, v)
            }
            Write::Json(ref path) => self.write_json(path, op, &v),
            Write::Xml(ref path) => self.write_xml(path, &v),
        }
    }

    /// `$xml(path) = v`: a string, or NULL; a failure is logged (as OpenSIPS' xml module).
    fn write_xml(&mut self, path: &super::xml::XmlPath, v: &Value) -> bool {
        let value = match v {
            Value::Null => None,
            Value::Str(s) => Some(s.to_string()),
            Value::Int(_) => {
                self.log.log(-1, "xml: a non-string value\n");
                return false;
            }
        };
        let Some((steps, at)) = super::xml::steps_of(path, |p| self.read(p).ok()) else {
            self.log
                .log(-1, "xml: an index in the path is not a number\n");
            return false;
        };
        if self.worker.xml.len() <= path.slot {
            self.worker.xml.resize(path.slot + 1, None);
        }
        let Some(slot) = self.worker.xml.get_mut(path.slot) else {
            return false;
        };
        match super::xml::write(slot, &steps, &at, value.as_deref()) {
            Ok(()) => true,
            Err(e) => {
                self.log.log(-1, &format!("xml: {e}\n"));
                false
            }
        }
    }

    /// `$json(path) = v` / `:= text`. A NULL (or text that does not parse with `:=`) deletes
    /// the node; a refused assignment is logged and fails, as in OpenSIPS.
    fn write_json(&mut self, path: &super::json::JsonPath, op: AssignOp, v: &Value) -> bool {
        let Ok(Some(steps)) = self.json_steps(path) else {
            self.log
                .log(-1, "json: an index in the path is not an integer\n");
            return false;
        };
        let parse = op == AssignOp::Replace;
        let new = super::json::from_value(v, parse);
        let unparsable = parse && new.is_none() && !v.is_null();
        if self.worker.json.len() <= path.slot {
            self.worker.json.resize(path.slot + 1, None);
        }
        let Some(root) = self.worker.json.get_mut(path.slot) else {
            return false;
        };
        match super::json::set(root, &steps, new) {
            Ok(()) if unparsable => {
                self.log.log(-1, "json: cannot parse the value as JSON\n");
                false
            }
            Ok(()) => true,
            Err(e) => {
                self.log.log(-1, &format!("json: setting PV failed: {e}\n"));
                false
            }
        }
    }

    /// An assignment to `$sdp` or one of its lines; refused ones are logged, as OpenSIPS does.
    fn write_sdp(&mut self, target: &super::ir::SdpTarget, v: Value) -> bool {
        use super::ir::SdpTarget;
        use crate::pv::sdp_body;
        let value = match &v {
            Value::Null => None,
            Value::Str(s) => Some(&**s),
            Value::Int(_) => {
                self.log
                    .log(-1, "refusing to set an SDP value from an integer\n");
                return false;
            }
        };
        let done = match target {
            SdpTarget::Body => sdp_body::set_sdp(self.ctx, value),
            SdpTarget::Lines(sel, op) => match self.sdp_indexes(sel) {
                Ok(Some(sel)) => sdp_body::set_line(self.ctx, &sel, *op, value),
                _ => Err("the SDP index is not a non-negative integer".into()),
            },
        };
        match done {
            Ok(()) => true,
            Err(e) => {
                self.log.log(-1, &format!("SDP assignment refused: {e}\n"));
                false
            }
        }
    }
}
