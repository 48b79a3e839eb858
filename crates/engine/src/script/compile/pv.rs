//! Lowering pseudo-variables: which slot, bit, field or core reader each `$name(arg)[index]`
//! becomes when read and when assigned.

use super::*;

/// tls_mgm's variables: the connection's, the peer certificate's and our own's.
const TLS_PVS: &[&str] = &[
    "tls_version",
    "tls_description",
    "tls_cipher_info",
    "tls_cipher_bits",
    "tls_peer_version",
    "tls_peer_serial",
    "tls_peer_subject",
    "tls_peer_issuer",
    "tls_peer_subject_cn",
    "tls_peer_issuer_cn",
    "tls_peer_subject_locality",
    "tls_peer_issuer_locality",
    "tls_peer_subject_country",
    "tls_peer_issuer_country",
    "tls_peer_subject_state",
    "tls_peer_issuer_state",
    "tls_peer_subject_organization",
    "tls_peer_issuer_organization",
    "tls_peer_subject_unit",
    "tls_peer_issuer_unit",
    "tls_peer_subject_serial",
    "tls_peer_san_email",
    "tls_peer_san_hostname",
    "tls_peer_san_uri",
    "tls_peer_san_ip",
    "tls_peer_verified",
    "tls_peer_revoked",
    "tls_peer_expired",
    "tls_peer_selfsigned",
    "tls_peer_notBefore",
    "tls_peer_notAfter",
    "tls_my_version",
    "tls_my_serial",
    "tls_my_subject",
    "tls_my_issuer",
    "tls_my_subject_cn",
    "tls_my_issuer_cn",
    "tls_my_subject_locality",
    "tls_my_issuer_locality",
    "tls_my_subject_country",
    "tls_my_issuer_country",
    "tls_my_subject_state",
    "tls_my_issuer_state",
    "tls_my_subject_organization",
    "tls_my_issuer_organization",
    "tls_my_subject_unit",
    "tls_my_issuer_unit",
    "tls_my_subject_serial",
    "tls_my_san_email",
    "tls_my_san_hostname",
    "tls_my_san_uri",
    "tls_my_san_ip",
];

/// rtp_relay's `$rtp_relay(field)` / `$rtp_relay_peer(field)` (no field: `flags`) are kept in
/// the transaction-long AVPs `rtp_relay:field` / `rtp_relay_peer:field`, where
/// `rtp_relay_engage()` reads them. `None`: not one of these.
fn rtp_relay_avp(spec: &PvSpec) -> Option<PvSpec> {
    if !matches!(spec.name.as_str(), "rtp_relay" | "rtp_relay_peer") {
        return None;
    }
    let field = spec.arg.as_deref().map_or("flags", str::trim);
    let mut avp = spec.clone();
    avp.name = "avp".into();
    avp.arg = Some(format!("{}:{field}", spec.name));
    // `$(rtp_relay[n])`: the branch's leg; rsips keeps one set per transaction.
    avp.index = None;
    Some(avp)
}

impl Lower<'_> {
    pub(super) fn write(&mut self, p: &ast::PvRef) -> L<Write> {
        if let Some(spec) = rtp_relay_avp(&p.spec) {
            let avp = ast::PvRef {
                text: p.text.clone(),
                spec,
                span: p.span,
            };
            return self.write(&avp);
        }
        Ok(match (p.spec.name.as_str(), p.spec.arg.as_deref()) {
            ("xml", Some(_)) => Write::Xml(Box::new(self.xml_path(&p.spec, p.span)?)),
            (name, Some(_)) if super::json::format_of(name).is_some() => {
                let format =
                    super::json::format_of(name).unwrap_or(crate::script::json::Format::Spaced);
                let path = self.json_path(&p.spec, format, p.span)?;
                if path.all {
                    return self.fail(Diagnostic::error(
                        "`[*]` is read by a `for` loop, not assigned",
                        p.span,
                    ));
                }
                Write::Json(Box::new(path))
            }
            ("var", Some(name)) => Write::Var(self.var(name)),
            ("ru" | "ruri", None) => Write::Ruri,
            ("rU" | "ruri.user", None) => Write::RuriUser,
            ("rd" | "ruri.domain", None) => Write::RuriHost,
            ("rp", None) => Write::RuriPort,
            ("du" | "duri", None) => Write::DstUri,
            // The host / port of `$du`, i.e. of the R-URI branch's destination.
            ("dd", None) => Write::DstHost,
            ("dp", None) => Write::DstPort,
            ("ru_q", None) => Write::RuriQ,
            ("socket_out", None) => Write::SocketOut,
            ("T_fr_timeout", None) => Write::FrTimeout,
            ("msg.branch" | "branch", None) => Write::AppendBranch,
            ("T_fr_inv_timeout", None) => Write::FrInvTimeout,
            ("log_level", None) => Write::LogLevel,
            ("xlog_level", None) => Write::XlogLevel,
            ("msg.flag", Some(name)) => Write::Flag(self.flag_named(name, p.span)?),
            ("acc_extra", Some(tag)) if !tag.contains('$') => Write::AccExtra(tag.trim().into()),
            ("dlg_val", Some(name)) if !name.contains('$') => Write::DlgVal(name.trim().into()),
            ("stat", Some(name)) if !name.contains('$') => Write::Stat(name.trim().into()),
            ("shv", Some(name)) if !name.contains('$') => {
                crate::shv::declare(name.trim());
                Write::Shv(name.trim().into())
            }
            ("b2b_logic.ctx", Some(name)) if !name.contains('$') => {
                Write::B2bCtx(name.trim().into())
            }
            ("cluster.sh_tag", Some(name)) if name.contains('/') && !name.contains('$') => {
                Write::ShTag(name.trim().into())
            }
            ("DLG_timeout", None) => Write::DlgTimeout,
            ("acc_leg", Some(tag)) if !tag.contains('$') => Write::AccLeg(tag.trim().into()),
            ("msg.branch.flag" | "branch.flag", Some(name)) => {
                let at = self.branch_flag_index(&p.spec, p.span)?;
                Write::BranchFlag(self.flag_named(name, p.span)?, at)
            }
            ("msg.branch.attr" | "tm.branch.attr", Some(name)) if !name.contains('$') => {
                let at = self.branch_number(&p.spec, p.span)?;
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
                Write::BranchField(field, self.branch_number(&p.spec, p.span)?)
            }
            // Legacy `$branch(field)[i]`: the appended branches only, 0 the first one (no
            // index: the first). `path` is not kept here, so assigning it is not supported.
            ("branch", Some(field)) => {
                use crate::pv::BranchField as F;
                let field = match field.to_ascii_lowercase().as_str() {
                    "uri" => F::Uri,
                    "duri" => F::Duri,
                    "q" => F::Q,
                    "flags" => F::Flags,
                    "socket" => F::Socket,
                    _ => {
                        return self
                            .fail(unsupported(format!("assigning to `{}`", p.text), p.span));
                    }
                };
                let at = match &p.spec.index {
                    None => 1,
                    Some(cfg::pv::PvIndex::At(i)) if *i < 0 => *i,
                    // The legacy index counts the appended branches only: +1 (saturating, a
                    // huge index is merely out of range).
                    Some(cfg::pv::PvIndex::At(i)) => i.saturating_add(1),
                    Some(cfg::pv::PvIndex::Var(_)) => {
                        return self.fail(unsupported("a computed branch index".into(), p.span));
                    }
                    Some(_) => {
                        return self.fail(Diagnostic::error(
                            "`$branch(...)` takes a branch number as its index",
                            p.span,
                        ));
                    }
                };
                Write::BranchField(field, Some(at))
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
                Write::Sdp(Box::new(crate::script::ir::SdpTarget::Body))
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
                Write::Sdp(Box::new(crate::script::ir::SdpTarget::Lines(sel, op)))
            }
            ("sdp.stream.idx", _) => {
                return self.fail(Diagnostic::error("`$sdp.stream.idx` is read-only", p.span));
            }
            _ => return self.fail(unsupported(format!("assigning to `{}`", p.text), p.span)),
        })
    }

    /// The selector of `$sdp.line/.session/.stream/.stream.idx(...)`, its `[$pv]` indexes
    /// compiled.
    fn sdp_selector(&mut self, name: &str, arg: &str, span: Span) -> L<crate::script::ir::SdpSel> {
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
            RawIdx::At(n) => Ok(crate::script::ir::SdpIdx::At(n)),
            RawIdx::Pv(spec) => Ok(crate::script::ir::SdpIdx::Pv(Box::new(
                self.read(&spec, span)?,
            ))),
        })
    }

    pub(super) fn avp(&mut self, name: &str) -> usize {
        let n = self.names.avps.len();
        *self.names.avps.entry(name.to_owned()).or_insert(n)
    }

    fn bavp(&mut self, name: &str) -> usize {
        let n = self.names.bavps.len();
        *self.names.bavps.entry(name.to_owned()).or_insert(n)
    }

    /// The AVP slot an assignment names (`$avp(x)`, `$(avp(x)[1])`, `[append]`, `[*]`).
    fn avp_slot(&mut self, p: &ast::PvRef) -> L<crate::script::ir::AvpSlot> {
        Ok(match &p.spec.index {
            None => crate::script::ir::AvpSlot::Newest,
            Some(cfg::pv::PvIndex::At(i)) => crate::script::ir::AvpSlot::At(*i),
            Some(cfg::pv::PvIndex::Append) => crate::script::ir::AvpSlot::Append,
            Some(cfg::pv::PvIndex::All) => crate::script::ir::AvpSlot::All,
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

    pub(super) fn flag(&mut self, arg: Option<&Option<Arg>>, span: Span) -> L<u32> {
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
            ("branch.flag", Some(i)) if i >= 0 => Some(i.saturating_add(1)),
            _ => at,
        })
    }

    /// The branch a `$msg.branch.*` / `$tm.branch.attr` write names: a literal index, or none
    /// (the last / current branch); a computed one is not supported.
    fn branch_number(&mut self, spec: &cfg::pv::PvSpec, span: Span) -> L<Option<i64>> {
        match &spec.index {
            None => Ok(None),
            Some(cfg::pv::PvIndex::At(i)) => Ok(Some(*i)),
            Some(cfg::pv::PvIndex::Var(_)) => {
                self.fail(unsupported("a computed branch index".into(), span))
            }
            Some(_) => self.fail(Diagnostic::error(
                format!("`${}` takes a branch number as its index", spec.name),
                span,
            )),
        }
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
                "request" => crate::script::ir::Context::Request,
                "reply" => crate::script::ir::Context::Reply,
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
        if let Some(avp) = rtp_relay_avp(spec) {
            return self.read(&avp, span);
        }
        let read = match (spec.name.as_str(), spec.arg.as_deref()) {
            ("xml", Some(_)) => Read::Xml(Box::new(self.xml_path(spec, span)?)),
            (name, Some(_)) if super::json::format_of(name).is_some() => {
                let format =
                    super::json::format_of(name).unwrap_or(crate::script::json::Format::Spaced);
                Read::Json(Box::new(self.json_path(spec, format, span)?))
            }
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
            ("dlg_val", Some(name)) if !name.contains('$') => Read::DlgVal(name.trim().into()),
            ("rl_count", Some(name)) if !name.contains('$') => Read::RlCount(name.trim().into()),
            ("sql_cached_value", Some(name)) => Read::SqlCached(self.format(name, span)?.into()),
            ("cluster.sh_tag", Some(name)) => {
                let ok = name.split_once('/').is_some_and(|(tag, id)| {
                    !tag.trim().is_empty() && id.trim().parse::<u32>().is_ok_and(|i| i > 0)
                });
                if !ok {
                    return self.fail(Diagnostic::error(
                        format!("bad sharing tag `{name}` for `$cluster.sh_tag`: <name/cluster_id> expected"),
                        span,
                    ));
                }
                Read::ShTag(name.trim().into())
            }
            ("TH_callee_callid", None) => Read::ThCalleeCallid,
            (name, None) if TLS_PVS.contains(&name) => {
                Read::Tls(TLS_PVS.iter().find(|n| **n == name).copied().unwrap_or(""))
            }
            // A bare `$identity` is the decoded header, as its field number 0 is in OpenSIPS.
            ("identity", None) => Read::Identity("header"),
            ("identity", Some(name)) => {
                const FIELDS: [&str; 8] = [
                    "header", "x5u", "payload", "attest", "dest", "iat", "orig", "origid",
                ];
                match FIELDS.iter().find(|f| **f == name.trim()) {
                    Some(f) => Read::Identity(f),
                    None => {
                        return self.fail(Diagnostic::error(
                            format!("bad subname `{name}` for `$identity`"),
                            span,
                        ));
                    }
                }
            }
            ("stat", Some(name)) if !name.contains('$') => Read::Stat(name.trim().into()),
            ("shv", Some(name)) if !name.contains('$') => {
                crate::shv::declare(name.trim());
                Read::Shv(name.trim().into())
            }
            ("b2b_logic.key" | "b2b_logic.scenario", None)
            | ("b2b_logic.entity" | "b2b_logic.ctx", Some(_))
                if !spec.arg.as_deref().is_some_and(|a| a.contains('$')) =>
            {
                let index = match &spec.index {
                    None => None,
                    Some(cfg::pv::PvIndex::At(i)) if *i >= 0 => usize::try_from(*i).ok(),
                    Some(_) => {
                        return self.fail(Diagnostic::error(
                            format!(
                                "`${}` takes an entity number (0 or 1) as its index",
                                spec.name
                            ),
                            span,
                        ));
                    }
                };
                Read::B2b(
                    spec.name.as_str().into(),
                    spec.arg.as_deref().map(|a| a.trim().into()),
                    index,
                )
            }
            ("mqk", Some(q)) => Read::ModulePv(crate::hooks::ModulePv::MqKey, q.trim().into()),
            ("mqv", Some(q)) => Read::ModulePv(crate::hooks::ModulePv::MqValue, q.trim().into()),
            ("mq_size", Some(q)) => Read::ModulePv(crate::hooks::ModulePv::MqSize, q.trim().into()),
            ("BM_time_diff", None) => Read::ModulePv(crate::hooks::ModulePv::BmTimeDiff, "".into()),
            ("keepalive.socket", Some(uri)) => {
                Read::ModulePv(crate::hooks::ModulePv::KeepaliveSocket, uri.trim().into())
            }
            ("source_uri", None) => Read::SourceUri,
            ("acc_leg", Some(tag)) if !tag.contains('$') => Read::AccLeg(tag.trim().into()),
            ("acc_current_leg", None) => Read::AccCurrentLeg,
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
                use crate::script::ir::Dyn;
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
            // `$(ct[$var(i)])`: the interpreter reads the index when it reads the PV.
            ("ct", None) | ("ct.fields", Some(_))
                if matches!(spec.index, Some(cfg::pv::PvIndex::Var(_))) =>
            {
                let mut fixed = spec.clone();
                fixed.index = None;
                fixed.transforms.clear();
                let Some(CorePv::Contact(field, _)) = CorePv::resolve(&fixed) else {
                    return self.fail(unsupported(
                        format!("the pseudo-variable `${}`", spec.name),
                        span,
                    ));
                };
                let Some(cfg::pv::PvIndex::Var(v)) = &spec.index else {
                    return Err(());
                };
                let slot = match self.read(v, span)? {
                    PvRead {
                        read: Read::Var(slot),
                        transforms,
                    } if transforms.is_empty() => slot,
                    _ => {
                        return self.fail(unsupported(
                            "a Contact index other than a `$var`".into(),
                            span,
                        ));
                    }
                };
                Read::Core(CorePv::Contact(field, crate::pv::ContactIndex::Var(slot)))
            }
            (name, field)
                if matches!(spec.index, Some(cfg::pv::PvIndex::Var(_)))
                    && ((name.starts_with("msg.branch.") && field.is_none())
                        || (name == "branch" && !field.is_some_and(|f| f.contains('$')))) =>
            {
                let Some(cfg::pv::PvIndex::Var(v)) = &spec.index else {
                    return Err(());
                };
                let legacy = name == "branch";
                let field_name = if legacy {
                    field.unwrap_or("uri").to_ascii_lowercase()
                } else {
                    name.trim_start_matches("msg.branch.").to_owned()
                };
                let Some(field) = crate::pv::BranchField::named(&field_name) else {
                    return self.fail(Diagnostic::error(
                        format!("unknown branch field in `${name}`"),
                        span,
                    ));
                };
                let at = Box::new(self.read(v, span)?);
                Read::BranchAt { field, at, legacy }
            }
            ("msg.branch.attr", Some(name))
                if !name.contains('$') && matches!(spec.index, Some(cfg::pv::PvIndex::Var(_))) =>
            {
                let Some(cfg::pv::PvIndex::Var(v)) = &spec.index else {
                    return Err(());
                };
                let at = Box::new(self.read(v, span)?);
                Read::BranchAttrAt(name.into(), at)
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
}
