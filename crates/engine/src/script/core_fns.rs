//! The core functions the interpreter runs itself (OpenSIPS core_cmds.c): flags, R-URI and
//! destination rewrites, the destination set, `is_myself`, socket and rport forcing.

use super::exec::{R, Run, bool_code};
use super::ir::{CoreFn, Expr};
use crate::value::Value;
use cfg::ast::AssignOp;

impl Run<'_> {
    fn text_arg(&mut self, e: &Expr) -> R<String> {
        Ok(self.value(e)?.to_text().into_owned())
    }

    /// Whether a `cache_*` id reaches a cache rsips has: `local[:group]` with cachedb_local
    /// loaded. Anything else is logged and the function fails.
    /// The cache engine of collection `id`; `None` (logged) when there is none.
    fn cache(&mut self, id: &str) -> Option<crate::cachedb::Backend> {
        let b = crate::cachedb::backend(id, self.script.loads("cachedb_local"));
        if b.is_none() {
            self.log.log(
                -1,
                &format!(
                    "cache: no cachedb engine for `{id}` (rsips has cachedb_local `local`, cachedb_redis `redis[:group]` and cachedb_memcached `memcached[:group]`)\n"
                ),
            );
        }
        b
    }

    /// A cache call's outcome: the code, or -1 with the error logged.
    fn cached<T>(&mut self, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.log.log(-1, &format!("cache: {e}\n"));
                None
            }
        }
    }

    /// A dset function's branch index (left out or not a number: the R-URI's).
    fn dset_idx(&mut self, e: Option<&Expr>) -> R<crate::dset::DsetIdx> {
        let i = match e {
            Some(e) => self.value(e)?.as_int(),
            None => None,
        };
        Ok(crate::dset::DsetIdx::from_script(i))
    }

    pub(super) fn core(&mut self, f: &CoreFn) -> R<i64> {
        let ctx = &mut *self.ctx;
        Ok(match f {
            CoreFn::SetFlag(b) => {
                ctx.flags |= 1 << b;
                1
            }
            CoreFn::ResetFlag(b) => {
                ctx.flags &= !(1 << b);
                1
            }
            CoreFn::IsFlagSet(b) => bool_code(ctx.flags & (1 << b) != 0),
            CoreFn::SetBFlag(b) => {
                ctx.branch_flags |= 1 << b;
                1
            }
            CoreFn::ResetBFlag(b) => {
                ctx.branch_flags &= !(1 << b);
                1
            }
            CoreFn::IsBFlagSet(b) => bool_code(ctx.branch_flags & (1 << b) != 0),
            CoreFn::RevertUri => {
                ctx.new_ruri = None;
                1
            }
            CoreFn::ResetDstUri => {
                ctx.dst_uri = None;
                1
            }
            CoreFn::IsDstUriSet => bool_code(ctx.dst_uri.is_some()),
            CoreFn::SetUri(e) => {
                let t = self.text_arg(e)?;
                bool_code(self.ctx.set_ruri(&t))
            }
            CoreFn::SetHost(e) => {
                let t = self.text_arg(e)?;
                bool_code(self.ctx.set_ruri_host(&t))
            }
            CoreFn::SetHostPort(e) => {
                let t = self.text_arg(e)?;
                let (h, p) = t
                    .rsplit_once(':')
                    .filter(|(_, p)| p.parse::<u16>().is_ok())
                    .unwrap_or((&t, ""));
                bool_code(self.ctx.set_ruri_host(h) && (p.is_empty() || self.ctx.set_ruri_port(p)))
            }
            CoreFn::SetUser(e) => {
                let t = self.text_arg(e)?;
                bool_code(self.ctx.set_ruri_user(&t))
            }
            CoreFn::SetPort(e) => {
                let t = self.text_arg(e)?;
                bool_code(self.ctx.set_ruri_port(&t))
            }
            CoreFn::Prefix(e) => {
                let t = self.text_arg(e)?;
                let user = self.ctx.ruri_user().unwrap_or_default();
                bool_code(self.ctx.set_ruri_user(&format!("{t}{user}")))
            }
            CoreFn::Strip(e) | CoreFn::StripTail(e) => {
                let n = self.value(e)?.as_int().unwrap_or(0).max(0) as usize;
                let user = self.ctx.ruri_user().unwrap_or_default();
                let keep: String = if matches!(f, CoreFn::Strip(_)) {
                    user.chars().skip(n).collect()
                } else {
                    user.chars()
                        .take(user.chars().count().saturating_sub(n))
                        .collect()
                };
                bool_code(self.ctx.set_ruri_user(&keep))
            }
            CoreFn::SetDstUri(e) => {
                let t = self.text_arg(e)?;
                let ok = sip::Uri::parse(&t).is_ok();
                if ok {
                    self.ctx.dst_uri = Some(t);
                }
                bool_code(ok)
            }
            CoreFn::Forward(dest) => {
                let dest = match dest {
                    Some(e) => Some(self.text_arg(e)?),
                    None => None,
                };
                match crate::forward::forward(self.ctx, dest.as_deref(), &self.script.net()) {
                    Ok(out) => {
                        self.ctx.outbox.push(out);
                        self.ctx.last_error = 0;
                        1
                    }
                    Err(why) => {
                        self.log.log(-1, &format!("forward() failed: {why}"));
                        self.ctx.last_error = -476;
                        -1
                    }
                }
            }
            CoreFn::Send(dest, headers) => {
                let dest = self.text_arg(dest)?;
                let headers = match headers {
                    Some(h) => Some(self.text_arg(h)?),
                    None => None,
                };
                match crate::forward::send(self.ctx, &dest, headers.as_deref(), &self.script.net())
                {
                    Ok(out) => {
                        self.ctx.outbox.push(out);
                        1
                    }
                    Err(why) => {
                        self.log.log(-1, &format!("send() failed: {why}"));
                        -1
                    }
                }
            }
            CoreFn::SocketBelongsToBond(socket, bond) => {
                let socket = self.text_arg(socket)?.to_ascii_lowercase();
                let member = self
                    .script
                    .net
                    .bond(bond)
                    .is_some_and(|m| m.contains(&socket));
                bool_code(member)
            }
            CoreFn::ScriptTrace(None) => {
                self.trace = None;
                1
            }
            CoreFn::ScriptTrace(Some(spec)) => {
                let level = self.value(&spec.level)?.as_int().unwrap_or(-3);
                let level = i32::try_from(level).unwrap_or(-3);
                self.trace = Some((level, spec.format.clone(), spec.info.clone()));
                1
            }
            CoreFn::RaiseEvent(name, attrs, vals) => {
                let name = self.text_arg(name)?;
                // OpenSIPS walks both AVPs newest value first; without a values AVP the event
                // has no parameters.
                let mut params = Vec::new();
                if let Some(vals) = vals {
                    let stack = |id: &usize| self.ctx.avps.get(*id).cloned().unwrap_or_default();
                    let values = stack(vals);
                    let names = attrs.as_ref().map(stack);
                    for (i, v) in values.into_iter().rev().enumerate() {
                        let name = match &names {
                            None => None,
                            Some(n) => match n.iter().rev().nth(i) {
                                Some(crate::value::Value::Str(s)) => Some(s.to_string()),
                                // A missing or numeric attribute name fails the raise.
                                _ => return Ok(-1),
                            },
                        };
                        params.push((name, v));
                    }
                }
                crate::evi::publish(&name);
                // The external subscribers first (newest first), the event_route (subscribed
                // at start) last; nobody listening is not an error, any failure is.
                let failed = crate::evi::deliver(&name, &params);
                let routed = match self.script.route_index(cfg::ast::RouteKind::Event, &name) {
                    Some(index) => {
                        let mut copy = self.ctx.clone();
                        copy.outbox.clear();
                        let outcome =
                            self.script
                                .run_event(index, self.worker, &mut copy, self.log, params);
                        // What the event route queued (a reply, a forward) is sent.
                        self.ctx.outbox.append(&mut copy.outbox);
                        outcome.is_ok()
                    }
                    None => true,
                };
                bool_code(routed && failed == 0)
            }
            // OpenSIPS links by reference; here the destination gets a copy of the source.
            CoreFn::JsonLink(dest, src) => {
                let (Some(src_steps), Some(dest_steps)) =
                    (self.json_steps(src)?, self.json_steps(dest)?)
                else {
                    return Ok(-1);
                };
                let root = self.worker.json.get(src.slot).and_then(Option::as_ref);
                let Some(value) = crate::script::json::find(root, &src_steps).cloned() else {
                    return Ok(-1);
                };
                if self.worker.json.len() <= dest.slot {
                    self.worker.json.resize(dest.slot + 1, None);
                }
                match self.worker.json.get_mut(dest.slot) {
                    Some(root) => {
                        bool_code(crate::script::json::set(root, &dest_steps, Some(value)).is_ok())
                    }
                    None => -1,
                }
            }
            CoreFn::SubscribeEvent(event, socket, expire) => {
                let (event, socket) = (self.text_arg(event)?, self.text_arg(socket)?);
                let expire = match expire {
                    Some(e) => self.value(e)?.as_int(),
                    None => None,
                };
                if event.is_empty() {
                    return Ok(-1);
                }
                // No expire, or 0, never expires; a negative one is a bad parameter.
                let expire = match expire {
                    Some(n) if n < 0 => return Ok(-1),
                    Some(0) | None => None,
                    Some(n) => Some(n.unsigned_abs()),
                };
                crate::evi::publish(&event);
                match crate::evi::subscribe(&event, &socket, expire) {
                    Ok(()) => 1,
                    Err(e) => {
                        self.log.log(-1, &format!("subscribe_event: {e}"));
                        -1
                    }
                }
            }
            CoreFn::ForceTcpAlias(port) => {
                let port = match port {
                    Some(p) => self.value(p)?.as_int().and_then(|p| u16::try_from(p).ok()),
                    None => Some(0),
                };
                let stream = self.ctx.receipt.as_ref().is_some_and(|r| r.conn.is_some());
                match port {
                    Some(p) if stream => {
                        self.ctx.tcp_alias = Some(p);
                        1
                    }
                    _ => -1,
                }
            }
            CoreFn::AppendBranch(uri, q, flags) => {
                let q = match q {
                    Some(e) => {
                        let v = self.value(e)?;
                        Some(v.as_int().map_or_else(
                            || {
                                v.to_text()
                                    .parse::<f64>()
                                    .map_or(-1, |f| (f * 1000.0).round() as i32)
                            },
                            |n| n as i32,
                        ))
                    }
                    None => None,
                };
                // OpenSIPS core_cmds.c: `append_msg_branch` gives the branch its URI and q
                // only, unless the `inherite` flag asks for the R-URI branch's `$du`, flags
                // and q; `append_branch_old` always takes the `$du` and flags, and without a
                // URI moves the R-URI branch itself into the set (its `$du`, flags and q reset).
                let inherit = match flags {
                    None => true,
                    Some(None) => false,
                    Some(Some(e)) => self
                        .text_arg(e)?
                        .split([',', '|', ' ', ';'])
                        .any(|f| f.trim().eq_ignore_ascii_case("inherite")),
                };
                let moved = uri.is_none();
                let uri = match uri {
                    Some(e) => self.text_arg(e)?,
                    None => self.ctx.ruri().unwrap_or("").to_owned(),
                };
                if sip::Uri::parse(&uri).is_err() {
                    self.log
                        .log(-1, &format!("append branch: bad URI `{uri}`\n"));
                    return Ok(-1);
                }
                let (dst_uri, flags_bits, socket) = if inherit {
                    (
                        self.ctx.dst_uri.clone(),
                        self.ctx.branch_flags,
                        self.ctx.send_socket.clone(),
                    )
                } else {
                    (None, 0, None)
                };
                // The path goes with the R-URI branch when it moves (OpenSIPS keeps it with the
                // destination it leads to).
                let path = if moved || inherit {
                    self.ctx.path.clone()
                } else {
                    None
                };
                // An unspecified q is the R-URI's when inheriting (append_branch_old with a
                // URI keeps it unspecified).
                let q = match q {
                    Some(q) => q,
                    None if inherit && (moved || flags.is_some()) => self.ctx.ruri_q,
                    None => -1,
                };
                self.ctx.branches.push(crate::ctx::MsgBranch {
                    uri,
                    dst_uri,
                    path,
                    q,
                    flags: flags_bits,
                    attrs: Default::default(),
                    socket,
                });
                if moved {
                    self.ctx.dst_uri = None;
                    self.ctx.path = None;
                    self.ctx.branch_flags = 0;
                    self.ctx.ruri_q = -1;
                    self.ctx.send_socket = None;
                }
                1
            }
            CoreFn::RemoveMsgBranch(i) => match self.value(i)?.as_int() {
                Some(i) => bool_code(self.ctx.remove_msg_branch(i)),
                None => -1,
            },
            CoreFn::MoveMsgBranch(src, dst, keep) => {
                let src = self.dset_idx(src.as_ref())?;
                let dst = self.dset_idx(dst.as_ref())?;
                let keep = match keep {
                    Some(k) => self.text_arg(k)?.eq_ignore_ascii_case("keep"),
                    None => false,
                };
                bool_code(self.ctx.move_msg_branch(src, dst, keep))
            }
            CoreFn::SerializeBranches(clear, keep) => {
                let clear = self.value(clear)?.as_int().unwrap_or(0) != 0;
                let keep = match keep {
                    Some(k) => self.value(k)?.as_int().unwrap_or(0) != 0,
                    None => false,
                };
                self.ctx.serialize_branches(clear, keep);
                1
            }
            // OpenSIPS: 1 closed, -1 nothing matched (or no TCP at all), -2 a bad argument.
            CoreFn::TcpCloseConn(desc) => {
                let desc = self.text_arg(desc)?;
                match crate::hooks::close_tcp(&desc) {
                    Some(Ok(true)) => 1,
                    Some(Ok(false)) | None => -1,
                    Some(Err(e)) => {
                        self.log.log(-1, &format!("tcp_close_conn: {e}\n"));
                        -2
                    }
                }
            }
            CoreFn::CacheStore(args, expire) => {
                let [id, attr, val] = &**args;
                let (id, attr, val) = (
                    self.text_arg(id)?,
                    self.text_arg(attr)?,
                    self.text_arg(val)?,
                );
                let expire = match expire {
                    Some(e) => self.value(e)?.as_int().unwrap_or(0),
                    None => 0,
                };
                let Some(b) = self.cache(&id).filter(|_| !attr.is_empty()) else {
                    return Ok(-1);
                };
                let r = b.store(&id, &attr, &val, expire);
                self.cached(r).unwrap_or(-1)
            }
            CoreFn::CacheRemove(id, attr) => {
                let (id, attr) = (self.text_arg(id)?, self.text_arg(attr)?);
                let Some(b) = self.cache(&id).filter(|_| !attr.is_empty()) else {
                    return Ok(-1);
                };
                let r = b.remove(&id, &attr);
                self.cached(r).unwrap_or(-1)
            }
            // 1 found (stored in the variable), -2 not there, -1 an error (as cachedb_local).
            CoreFn::CacheFetch(id, attr, out, counter) => {
                let (id, attr) = (self.text_arg(id)?, self.text_arg(attr)?);
                let Some(b) = self.cache(&id).filter(|_| !attr.is_empty()) else {
                    return Ok(-1);
                };
                let r = b.fetch(&id, &attr);
                let Some(found) = self.cached(r) else {
                    return Ok(-1);
                };
                match found {
                    None => -2,
                    Some(v) if *counter => match v.trim().parse::<i64>() {
                        Ok(n) => bool_code(self.write(out, AssignOp::Set, Value::Int(n))),
                        Err(_) => -1,
                    },
                    Some(v) => bool_code(self.write(out, AssignOp::Set, Value::from(v))),
                }
            }
            CoreFn::CacheRawQuery(id, query, avp) => {
                let (id, query) = (self.text_arg(id)?, self.text_arg(query)?);
                let Some(b) = self.cache(&id) else {
                    return Ok(-1);
                };
                let r = b.raw(&query);
                let Some(values) = self.cached(r) else {
                    return Ok(-1);
                };
                if let Some(id) = avp {
                    // The AVP holds the reply's values, the first one newest.
                    if self.ctx.avps.len() <= *id {
                        self.ctx.avps.resize(*id + 1, Vec::new());
                    }
                    if let Some(stack) = self.ctx.avps.get_mut(*id) {
                        stack.clear();
                        stack.extend(values.into_iter().rev());
                    }
                }
                1
            }
            CoreFn::CacheAdd(args, out, sub) => {
                let [id, attr, n, expire] = &**args;
                let (id, attr) = (self.text_arg(id)?, self.text_arg(attr)?);
                let n = self.value(n)?.as_int().unwrap_or(0);
                let expire = self.value(expire)?.as_int().unwrap_or(0);
                let Some(b) = self.cache(&id).filter(|_| !attr.is_empty()) else {
                    return Ok(-1);
                };
                let delta = if *sub {
                    n.checked_neg().unwrap_or(0)
                } else {
                    n
                };
                let r = b.add(&id, &attr, delta, expire);
                match self.cached(r) {
                    None => -1,
                    Some(v) => match out {
                        Some(w) => bool_code(self.write(w, AssignOp::Set, Value::Int(v))),
                        None => 1,
                    },
                }
            }
            CoreFn::SetAdvertised { address, value } => {
                let v = self.text_arg(value)?;
                let v = v.trim().to_owned();
                if v.is_empty() || (!*address && v.parse::<u16>().is_err()) {
                    return Ok(-1);
                }
                if *address {
                    self.ctx.adv_address = Some(v);
                } else {
                    self.ctx.adv_port = Some(v);
                }
                1
            }
            CoreFn::SetViaHandling {
                force_rport,
                local_rport,
                reply_to_via,
                tcp_alias,
            } => {
                self.ctx.force_rport |= *force_rport;
                self.ctx.local_rport |= *local_rport;
                self.ctx.reply_to_via |= *reply_to_via;
                let stream = self.ctx.receipt.as_ref().is_some_and(|r| r.conn.is_some());
                if *tcp_alias && stream && self.ctx.tcp_alias.is_none() {
                    self.ctx.tcp_alias = Some(0);
                }
                1
            }
            CoreFn::AddLocalRport => {
                self.ctx.local_rport = true;
                1
            }
            CoreFn::SetUserPass(pass) => {
                let pass = self.text_arg(pass)?;
                bool_code(self.ctx.set_ruri_password(&pass))
            }
            // OpenSIPS prints every AVP at debug level; so does this, by name.
            CoreFn::AvpPrint => {
                let mut names: Vec<(&String, &usize)> = self.script.names.avps.iter().collect();
                names.sort();
                for (name, &id) in names {
                    for v in self.ctx.avps.get(id).map_or(&[][..], Vec::as_slice) {
                        let line = match v {
                            Value::Int(i) => format!("avp_print: $avp({name}) int value={i}\n"),
                            other => {
                                format!("avp_print: $avp({name}) str value=<{}>\n", other.to_text())
                            }
                        };
                        self.log.log(4, &line);
                    }
                }
                1
            }
            CoreFn::NextBranches => {
                if !matches!(self.kind, "request" | "failure") {
                    self.log
                        .log(-1, "next_branches: only in request and failure routes\n");
                    return Ok(-1);
                }
                self.ctx.next_branches()
            }
            CoreFn::ConstructUri(args, out) => {
                let mut parts: [String; 5] = Default::default();
                for (part, arg) in parts.iter_mut().zip(args.iter()) {
                    if let Some(e) = arg {
                        *part = self.text_arg(e)?;
                    }
                }
                let [proto, user, domain, port, extra] = parts;
                if proto.is_empty() || domain.is_empty() {
                    self.log
                        .log(-1, "construct_uri: no protocol or no domain\n");
                    return Ok(-1);
                }
                let mut uri = format!("{proto}:");
                if !user.is_empty() {
                    uri.push_str(&user);
                    uri.push('@');
                }
                uri.push_str(&domain);
                if !port.is_empty() {
                    uri.push(':');
                    uri.push_str(&port);
                }
                if !extra.is_empty() {
                    uri.push(';');
                    uri.push_str(&extra);
                }
                bool_code(self.write(out, AssignOp::Set, Value::from(uri)))
            }
            CoreFn::GetTimestamp(sec, usec) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let s = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
                let u = i64::from(now.subsec_micros());
                let ok = self.write(sec, AssignOp::Set, Value::Int(s))
                    && self.write(usec, AssignOp::Set, Value::Int(u));
                bool_code(ok)
            }
            CoreFn::PvPrintf(out, fmt) => {
                let v = self.value(fmt)?;
                bool_code(self.write(out, AssignOp::Set, v))
            }
            CoreFn::SwapMsgBranches(a, b) => {
                let a = self.dset_idx(a.as_ref())?;
                let b = self.dset_idx(b.as_ref())?;
                bool_code(self.ctx.swap_msg_branches(a, b))
            }
            CoreFn::ForceRport => {
                self.ctx.force_rport = true;
                1
            }
            CoreFn::ForceSendSocket(s) => {
                self.ctx.send_socket = Some(s.clone());
                1
            }
            CoreFn::IsMyself(h, p) => {
                let host = self.text_arg(h)?;
                let port = match p {
                    Some(p) => self.value(p)?.as_int().and_then(|p| u16::try_from(p).ok()),
                    None => None,
                };
                bool_code(self.script.is_myself(&host, port))
            }
        })
    }
}
