//! The OpenSIPS `tm` module: RFC 3261 transactions with unlimited branches (a configurable cap),
//! CANCEL, failover in failure_route, per-branch onreply routes, local 100/408/477 replies.
//!
//! The engine is [`core::Tm`]; the server installs one per process ([`install`]) with the
//! transport as its [`core::Host`], hands it every reply ([`core::Tm::on_reply`]) and ticks its
//! timers. Script functions find it through [`global`].
#![forbid(unsafe_code)]

mod branch_attrs;
pub mod core;
mod messages;
mod relay;
mod routes;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cfg::ast::{ParamValue, RouteKind};
use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Value};

pub use crate::core::{
    Arm, Found, Host, LegacyMatching, LocalReplied, LocalReply, Params, Runner, SendDone, Tm,
    TxCell,
};
pub use crate::messages::{DialogTarget, dialog_target};
use crate::relay::{send_branches, t_check_trans, t_newtran, t_relay, t_reply, t_reply_with_body};
use crate::routes::{
    t_check_status, t_local_replied, t_on_branch, t_on_failure, t_on_reply, t_was_cancelled,
};

static TM: OnceLock<Arc<Tm>> = OnceLock::new();

/// Installs the process' transaction table (once; later calls return the first).
pub fn install(tm: Arc<Tm>) -> Arc<Tm> {
    Arc::clone(TM.get_or_init(|| tm))
}

/// The installed transaction table.
pub fn global() -> Option<&'static Arc<Tm>> {
    TM.get()
}

/// Registers tm's statistics (so they are listed before first use).
pub fn register_stats() {
    for name in [
        "received_replies",
        "relayed_replies",
        "local_replies",
        "UAS_transactions",
        "UAC_transactions",
        "2xx_transactions",
        "3xx_transactions",
        "4xx_transactions",
        "5xx_transactions",
        "6xx_transactions",
        "timeout_finalresponse",
        "timeout_finalresponse_inv",
        "retransmission_req_T1_1",
        "retransmission_req_T1_2",
        "retransmission_req_T1_3",
        "retransmission_req_T2",
        "retransmission_rpl_T2",
        "cluster_reply_sent",
        "cluster_request_sent",
        "cluster_cancel_sent",
        "cluster_reply_recv",
        "cluster_request_recv",
        "cluster_cancel_recv",
    ] {
        engine::stats::counter("tm", name);
    }
    engine::stats::gauge("tm", "inuse_transactions");
}

/// tm's parameters from the script's `modparam("tm", …)` lines.
pub fn params(script: &engine::Script) -> Params {
    messages::set_user_agent(script);
    // Parameters a config may set that rsips accepts but does not act on: said once, at start,
    // rather than ignored in silence.
    let unapplied: Vec<&str> = script
        .modparams("tm")
        .filter(|(name, value)| {
            [
                "local_request_route",
                "local_reply_route",
                "tm_replication_cluster",
                "cluster_param",
                "cluster_auto_cancel",
                "pass_provisional_replies",
                "tw_append",
            ]
            .contains(name)
                // Statistics are always kept: only turning them off goes unapplied.
                || (*name == "enable_stats" && matches!(value, ParamValue::Int(0)))
        })
        .map(|(name, _)| name)
        .collect();
    if !unapplied.is_empty() {
        log::warn!(
            "tm parameters set but not applied by rsips: {}",
            unapplied.join(", ")
        );
    }
    let mut p = Params {
        disable_503_translation: script
            .global_int("disable_503_translation")
            .is_some_and(|n| n != 0),
        disable_dns_failover: script
            .global_int("disable_dns_failover")
            .is_some_and(|n| n != 0),
        ..Params::default()
    };
    for (name, value) in script.modparams("tm") {
        // A named flag (`modparam("tm", "minor_branch_flag", "MINOR")`).
        if let (ParamValue::Str(flag), "minor_branch_flag") = (value, name) {
            p.minor_flag = script.flag_bit(flag.trim());
            continue;
        }
        let ParamValue::Int(n) = value else { continue };
        let n = (*n).max(0) as u64;
        match name {
            "fr_timeout" => p.fr_timeout = Duration::from_secs(n.max(1)),
            "fr_inv_timeout" => p.fr_inv_timeout = Duration::from_secs(n.max(1)),
            "wt_timer" => p.wt_timer = Duration::from_secs(n),
            "T1_timer" => p.t1 = Duration::from_millis(n.max(1)),
            "T2_timer" => p.t2 = Duration::from_millis(n.max(1)),
            "auto_100trying" => p.auto_100trying = n != 0,
            "restart_fr_on_each_reply" => p.restart_fr_on_each_reply = n != 0,
            "disable_6xx_block" => p.disable_6xx_block = n != 0,
            "onreply_avp_mode" => p.onreply_avps = n != 0,
            "max_branches" => p.max_branches = (n as usize).max(1),
            "minor_branch_flag" => p.minor_flag = u32::try_from(n).ok().filter(|b| *b < 64),
            "ruri_matching" => p.legacy.ruri = n != 0,
            "via1_matching" => p.legacy.via1 = n != 0,
            _ => {}
        }
    }
    p
}

/// A random-enough token for Call-IDs and tags of locally generated requests.
fn token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

/// A request rsips sends itself (`tm:uac_dlg`, `t_new_request`): the given headers (From and
/// To required), with a From tag, Call-ID, CSeq and Max-Forwards added when missing. Our Via
/// is added when it is sent.
pub fn build_request(
    method: &str,
    ruri: &str,
    headers: &str,
    body: Option<&str>,
) -> Result<sip::SipMessage, String> {
    let mut text = format!("{method} {ruri} SIP/2.0\r\n");
    let has = |name: &str, compact: &str| {
        headers.lines().any(|l| {
            let n = l.split(':').next().unwrap_or("").trim();
            n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(compact)
        })
    };
    let (from, to, call_id, cseq, mf) = (
        has("From", "f"),
        has("To", "t"),
        has("Call-ID", "i"),
        has("CSeq", "CSeq"),
        has("Max-Forwards", "Max-Forwards"),
    );
    if !from || !to {
        return Err("headers need From and To".into());
    }
    for line in headers.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").trim();
        let tagless = (name.eq_ignore_ascii_case("From") || name.eq_ignore_ascii_case("f"))
            && !line.to_ascii_lowercase().contains(";tag=");
        text.push_str(line);
        if tagless {
            text.push_str(&format!(";tag={}", token()));
        }
        text.push_str("\r\n");
    }
    if !call_id {
        text.push_str(&format!("Call-ID: {}@rsips\r\n", token()));
    }
    if !cseq {
        text.push_str(&format!("CSeq: 1 {method}\r\n"));
    }
    if !mf {
        text.push_str("Max-Forwards: 70\r\n");
    }
    let body = body.unwrap_or("");
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    // Our Via is added when it is sent, so only the parse is checked here.
    sip::SipMessage::parse(bytes::Bytes::from(text)).map_err(|e| e.to_string())
}

const REQ_FAIL: Routes = Routes::REQUEST.or(Routes::FAILURE);
const ALL_TM: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::ONREPLY)
    .or(Routes::BRANCH);
/// `t_on_failure`/`t_on_reply`: in a `local_route` too, for the request rsips sends (as
/// OpenSIPS allows: a local UPDATE or PRACK gets its own reply and failure routes).
const ARMS: Routes = ALL_TM.or(Routes::LOCAL);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "tm",
    functions: &[
        FnSpec {
            name: "t_relay",
            params: &[(Param::Str, true), (Param::Str, true)],
            routes: REQ_FAIL,
            run: t_relay,
        },
        FnSpec {
            name: "t_newtran",
            params: &[],
            routes: Routes::REQUEST,
            run: t_newtran,
        },
        FnSpec {
            name: "t_reply",
            params: &[
                (Param::CheckedInt(&engine::module::REPLY_CODE), false),
                (Param::Str, false),
            ],
            routes: REQ_FAIL,
            run: t_reply,
        },
        FnSpec {
            name: "t_reply_with_body",
            params: &[
                (Param::CheckedInt(&engine::module::REPLY_CODE), false),
                (Param::Str, false),
                (Param::Str, false),
            ],
            routes: REQ_FAIL,
            run: t_reply_with_body,
        },
        FnSpec {
            name: "t_check_trans",
            params: &[],
            routes: Routes::REQUEST.or(Routes::BRANCH),
            run: t_check_trans,
        },
        FnSpec {
            name: "t_check_status",
            params: &[(Param::Checked(&routes::STATUS_RE), false)],
            routes: ALL_TM,
            run: t_check_status,
        },
        FnSpec {
            name: "t_on_failure",
            params: &[(Param::Route(RouteKind::Failure), false)],
            routes: ARMS,
            run: t_on_failure,
        },
        FnSpec {
            name: "t_on_reply",
            params: &[(Param::Route(RouteKind::Reply), false)],
            routes: ARMS,
            run: t_on_reply,
        },
        FnSpec {
            name: "t_on_branch",
            params: &[(Param::Route(RouteKind::Branch), false)],
            routes: REQ_FAIL,
            run: t_on_branch,
        },
        FnSpec {
            name: "t_was_cancelled",
            params: &[],
            routes: ALL_TM,
            run: t_was_cancelled,
        },
        FnSpec {
            name: "t_cancel_branch",
            params: &[(Param::StaticStr, true)],
            routes: Routes::ONREPLY,
            run: t_cancel_branch,
        },
        FnSpec {
            name: "t_add_hdrs",
            params: &[(Param::Str, false)],
            routes: REQ_FAIL.or(Routes::BRANCH),
            run: t_add_hdrs,
        },
        FnSpec {
            name: "t_new_request",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: Routes::ALL,
            run: t_new_request,
        },
        FnSpec {
            name: "t_replicate",
            params: &[(Param::Str, false), (Param::Str, true)],
            routes: REQ_FAIL,
            run: t_replicate,
        },
        FnSpec {
            name: "t_add_cancel_reason",
            params: &[(Param::Str, false)],
            routes: ALL_TM,
            run: t_add_cancel_reason,
        },
        FnSpec {
            name: "t_flush_flags",
            params: &[],
            routes: ALL_TM,
            run: t_flush_flags,
        },
        FnSpec {
            name: "t_reply_by_callid",
            params: &[
                (Param::Int, false),
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: Routes::REQUEST,
            run: t_reply_by_callid,
        },
        FnSpec {
            name: "t_wait_for_new_branches",
            params: &[(Param::Int, true)],
            routes: Routes::REQUEST,
            run: t_wait_for_new_branches,
        },
        FnSpec {
            name: "t_wait_no_more_branches",
            params: &[],
            routes: ALL_TM,
            run: t_wait_no_more_branches,
        },
        FnSpec {
            name: "t_inject_branches",
            params: &[(Param::StaticStr, false), (Param::StaticStr, true)],
            routes: Routes::REQUEST.or(Routes::ONREPLY),
            run: t_inject_branches,
        },
        FnSpec {
            name: "t_local_replied",
            params: &[(Param::Checked(&routes::LOCAL_REPLIED), false)],
            routes: ALL_TM,
            run: t_local_replied,
        },
        FnSpec {
            name: "t_get_branch_idx_by_attr",
            params: &[
                (Param::Str, false),
                (Param::Str, true),
                (Param::Int, true),
                (Param::Var, true),
                (Param::Int, true),
            ],
            routes: Routes::ONREPLY.or(Routes::BRANCH).or(Routes::FAILURE),
            run: branch_attrs::t_get_branch_idx_by_attr,
        },
    ],
    params: &[
        ("fr_timeout", ParamType::Int),
        ("fr_inv_timeout", ParamType::Int),
        ("wt_timer", ParamType::Int),
        ("delete_timer", ParamType::Int),
        ("T1_timer", ParamType::Int),
        ("T2_timer", ParamType::Int),
        ("ruri_matching", ParamType::Int),
        ("via1_matching", ParamType::Int),
        ("unix_tx_timeout", ParamType::Int),
        ("restart_fr_on_each_reply", ParamType::Int),
        ("tw_append", ParamType::Str),
        ("pass_provisional_replies", ParamType::Int),
        ("syn_branch", ParamType::Int),
        ("onreply_avp_mode", ParamType::Int),
        ("disable_6xx_block", ParamType::Int),
        ("enable_stats", ParamType::Int),
        ("minor_branch_flag", ParamType::Any),
        ("timer_partitions", ParamType::Int),
        ("auto_100trying", ParamType::Int),
        ("tm_replication_cluster", ParamType::Int),
        ("cluster_param", ParamType::Str),
        ("cluster_auto_cancel", ParamType::Int),
        ("local_request_route", ParamType::Str),
        ("local_reply_route", ParamType::Str),
        ("max_branches", ParamType::Int),
    ],
};

pub(crate) fn tm(f: &mut FnCtx<'_>) -> Option<&'static Arc<Tm>> {
    let tm = global();
    if tm.is_none() {
        f.log.log(
            -1,
            "tm: no transaction table (the server did not start tm)\n",
        );
    }
    tm
}

/// The transaction of the message, when it is one of ours.
pub(crate) fn cell_of(f: &FnCtx<'_>) -> Option<Arc<TxCell>> {
    f.msg.tx.clone()?.into_any().downcast::<TxCell>().ok()
}

pub(crate) fn bool_code(b: bool) -> i64 {
    if b { 1 } else { -1 }
}

/// `t_wait_for_new_branches([max])`: the transaction (it must exist) stays open for injected
/// branches after its own have ended.
fn t_wait_for_new_branches(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(tm) = tm(f) else { return -1 };
    let Some(cell) = cell_of(f) else {
        f.log.log(
            -1,
            "t_wait_for_new_branches: no transaction (call t_newtran first)\n",
        );
        return -1;
    };
    let max = match args.first() {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_int() {
            Some(n) if n > 0 => Some(n as usize),
            _ => {
                f.log.log(
                    -1,
                    "t_wait_for_new_branches: the branch count must be positive\n",
                );
                return -1;
            }
        },
    };
    tm.wait_for_new_branches(&cell, max, Instant::now());
    1
}

/// `t_wait_no_more_branches()`.
fn t_wait_no_more_branches(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(tm) = tm(f) else { return -1 };
    let Some(cell) = cell_of(f) else { return -1 };
    tm.wait_no_more_branches(&cell);
    1
}

/// `t_inject_branches(source[, flags])`: new branches for the transaction in context, from the
/// message's destination set (`msg`) or from the usrloc contact event an event_routing
/// notification route runs for (`event`: its `uri`, `received`, `path`, `socket`).
/// `cancel`/`c` cancels the ongoing branches first, `l` makes this the last injection.
fn t_inject_branches(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(tm) = tm(f) else { return -1 };
    let source = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let flags = args
        .get(1)
        .filter(|v| !matches!(v, Value::Null))
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let flags: Vec<&str> = flags
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = flags.iter().find(|f| !matches!(**f, "cancel" | "c" | "l")) {
        f.log
            .log(-1, &format!("t_inject_branches: unknown flag `{bad}`\n"));
        return -1;
    }
    match source.as_str() {
        "msg" => {}
        "event" => {
            // The contact of the usrloc event an event_routing notification route runs for:
            // its `uri`, and where to send (`received`), its `path` and `socket`.
            let Some(event) = f.msg.event.clone() else {
                f.log.log(
                    -1,
                    "t_inject_branches: source `event` outside an event_routing notification route\n",
                );
                return -1;
            };
            let attr = |name: &str| {
                event
                    .iter()
                    .find(|(n, _)| n.as_deref() == Some(name))
                    .map(|(_, v)| v.to_text().into_owned())
                    .filter(|v| !v.is_empty())
            };
            let Some(uri) = attr("uri") else {
                f.log
                    .log(-1, "t_inject_branches: the event has no contact `uri`\n");
                return -1;
            };
            if !f.msg.set_ruri(&uri) {
                f.log
                    .log(-1, &format!("t_inject_branches: bad contact uri `{uri}`\n"));
                return -1;
            }
            f.msg.dst_uri = attr("received");
            f.msg.path = attr("path");
            f.msg.send_socket = attr("socket");
            f.msg.branches.clear();
        }
        other => {
            f.log.log(
                -1,
                &format!("t_inject_branches: unknown source `{other}`\n"),
            );
            return -1;
        }
    }
    let Some(cell) = cell_of(f) else {
        f.log
            .log(-1, "t_inject_branches: no transaction in this context\n");
        return -1;
    };
    if !f.msg.msg.is_request() {
        f.log.log(-1, "t_inject_branches: `msg` needs a request\n");
        return -1;
    }
    let now = Instant::now();
    if flags.iter().any(|f| matches!(*f, "cancel" | "c")) {
        tm.cancel_branches(&cell, usize::MAX, "a", now);
    }
    let before = cell.branch_count();
    let (result, first_err) = send_branches(f, tm, &cell, None, now);
    let added = cell.branch_count() - before;
    tm.injected(&cell, added, flags.contains(&"l"));
    match (result, first_err) {
        (Some(ok), _) => ok,
        (None, Some(code)) => code,
        (None, None) => -3,
    }
}

/// `t_cancel_branch([flags])` in an onreply route.
fn t_cancel_branch(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(tm) = tm(f) else { return -1 };
    let flags = args
        .first()
        .filter(|v| !matches!(v, Value::Null))
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let (Some(cell), Some(current)) = (cell_of(f), f.msg.branch_index) else {
        return -1;
    };
    tm.cancel_branches(&cell, current, &flags, Instant::now());
    1
}

/// `t_add_hdrs("Name: value\r\n…")`: header lines the CANCELs and hop-by-hop ACKs tm builds
/// for the transaction carry (OpenSIPS `extra_hdrs`: not the relayed requests); a later call
/// replaces them. Needs the transaction (`t_newtran` first).
fn t_add_hdrs(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (Some(tm), Some(cell)) = (tm(f), cell_of(f)) else {
        return -1;
    };
    let text = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let mut hdrs = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.trim().is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            f.log
                .log(-1, &format!("t_add_hdrs: `{line}` is not a header\n"));
            return -1;
        };
        hdrs.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    tm.set_extra_hdrs(&cell, hdrs);
    1
}

/// Runs the script's `local_route` (if any) over a request rsips generated, before it is sent;
/// false when the route dropped it.
pub fn run_local_route(
    script: &engine::Script,
    worker: &mut engine::Worker,
    ctx: &mut engine::MsgCtx,
    log: &mut dyn engine::Log,
) -> bool {
    match script.route_index(RouteKind::Local, "") {
        None => true,
        Some(index) => !matches!(
            script.run_index(index, worker, ctx, log),
            Ok(engine::Outcome::Drop)
        ),
    }
}

/// `t_new_request(method, ruri, from, to[, body[, ctx]])`: a new request, sent statefully;
/// `body` is `content-type` then the body after the first blank (`"text/plain hello"`).
fn t_new_request(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(tm) = tm(f) else { return -1 };
    let arg = |i: usize| {
        args.get(i)
            .filter(|v| !matches!(v, Value::Null))
            .map(|v| v.to_text().into_owned())
    };
    let (Some(method), Some(ruri), Some(from), Some(to)) = (arg(0), arg(1), arg(2), arg(3)) else {
        return -1;
    };
    let mut headers = format!("From: {}\r\nTo: {}\r\n", name_addr(&from), name_addr(&to));
    // The body starts with its content type and a space ("text/plain Hello"), as in OpenSIPS.
    let body = match arg(4) {
        Some(b) => match b.split_once(' ') {
            Some((ct, rest)) => {
                headers.push_str("Content-Type: ");
                headers.push_str(ct);
                headers.push_str("\r\n");
                Some(rest.to_owned())
            }
            None => {
                f.log.log(
                    -1,
                    &format!("t_new_request: no content type at the start of the body <{b}>\n"),
                );
                return -1;
            }
        },
        None => None,
    };
    let msg = match build_request(&method, &ruri, &headers, body.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            f.log.log(-1, &format!("t_new_request: {e}\n"));
            return -1;
        }
    };
    let mut ctx = engine::MsgCtx::new(msg);
    // The context string rides with the new transaction as `$avp(uac_ctx)`.
    if let (Some(value), Some(id)) = (arg(5), f.script.avp_id("uac_ctx")) {
        ctx.avps.resize(id + 1, Vec::new());
        if let Some(stack) = ctx.avps.get_mut(id) {
            stack.push(Value::from(value));
        }
    }
    if !run_local_route(f.script, f.worker, &mut ctx, f.log) {
        return -1;
    }
    match tm.new_request(ctx, None, &f.script.net(), Instant::now(), Box::new(|_| {})) {
        Ok(_) => 1,
        Err(e) => {
            f.log.log(-1, &format!("t_new_request: {e}\n"));
            -1
        }
    }
}

/// A From/To value of `t_new_request`, "[display ]URI" (the display name is what comes before
/// the last space), as a header value.
fn name_addr(text: &str) -> String {
    let text = text.trim();
    let (display, uri) = match text.rsplit_once(' ') {
        Some((d, u)) => (d.trim(), u),
        None => ("", text),
    };
    let uri = uri.trim_start_matches('<').trim_end_matches('>');
    if display.is_empty() {
        format!("<{uri}>")
    } else {
        format!("{display} <{uri}>")
    }
}

/// `t_replicate(uri[, flags])`: a copy of the request, sent statefully to `uri`; its replies
/// are absorbed (REGISTER replication). INVITE is refused (it would become a transaction of
/// ours, ACKing a 2xx itself, where OpenSIPS forwards it as a proxy).
fn t_replicate(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(tm) = tm(f) else { return -1 };
    let Some(uri) = args.first().map(|v| v.to_text().into_owned()) else {
        return -1;
    };
    let mut copy = f.msg.clone();
    copy.tx = None;
    copy.outbox.clear();
    copy.branches.clear();
    copy.dst_uri = None;
    match tm.new_request(
        copy,
        Some(&uri),
        &f.script.net(),
        Instant::now(),
        Box::new(|_| {}),
    ) {
        Ok(_) => 1,
        Err(e) => {
            f.log.log(-1, &format!("t_replicate: {e}\n"));
            -1
        }
    }
}

/// `t_add_cancel_reason("SIP;cause=…;text=…")` (a Reason header value, or a whole
/// `Reason: …` line).
fn t_add_cancel_reason(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(tm) = tm(f) else { return -1 };
    let text = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let value = text.trim().trim_end_matches("\r\n");
    let value = match value.split_once(':') {
        Some((name, v)) if name.trim().eq_ignore_ascii_case("Reason") => v.trim(),
        _ => value,
    };
    // The transaction of the message, or for a CANCEL the INVITE it cancels.
    let cell = cell_of(f).or_else(|| match tm.lookup_request(&f.msg.msg) {
        Found::CancelFor(c) => Some(c),
        _ => None,
    });
    let Some(cell) = cell else { return -1 };
    if value.is_empty() {
        return -1;
    }
    tm.set_cancel_reason(&cell, value);
    1
}

/// `t_flush_flags()`: the message flags set since `t_relay` go to the transaction.
fn t_flush_flags(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(tm) = tm(f) else { return -1 };
    let Some(cell) = cell_of(f) else { return -1 };
    tm.flush_flags(&cell, f.msg.flags);
    1
}

/// `t_reply_by_callid(code, reason[, callid][, cseq])`: a stateful reply to another
/// transaction, found by Call-ID and CSeq number (the message's own when not given). -2: no
/// Call-ID, -3: no CSeq, -4: no such transaction (OpenSIPS' codes).
fn t_reply_by_callid(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(tm) = tm(f) else { return -1 };
    let Some(code) = args
        .first()
        .and_then(Value::as_int)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..=699).contains(c))
    else {
        return -1;
    };
    let arg = |i: usize| {
        args.get(i)
            .filter(|v| !matches!(v, Value::Null))
            .map(|v| v.to_text().into_owned())
    };
    let reason = arg(1).unwrap_or_default();
    let callid = match arg(2) {
        Some(c) => c,
        None => match f.msg.msg.call_id() {
            Ok(c) => c.to_owned(),
            Err(_) => return -2,
        },
    };
    let cseq = match arg(3) {
        Some(c) => c,
        None => match f.msg.msg.cseq() {
            Ok(c) => c.seq.to_string(),
            Err(_) => return -3,
        },
    };
    tm.reply_by_callid(&callid, &cseq, code, &reason, Instant::now())
}
