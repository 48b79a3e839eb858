//! b2b_logic's script functions: `b2b_init_request` (the internal "top hiding" scenario, or a
//! script scenario made of the entities `b2b_server_new` / `b2b_client_new` declared), and the
//! actions of the request route b2b_logic runs for a session's in-dialog requests
//! (`script_req_route`): `b2b_pass_request`, `b2b_send_reply`, `b2b_end_dlg_leg`,
//! `b2b_delete_entity`, `b2b_bridge`; `b2b_handle_reply` in `script_reply_route`.
//!
//! The entities declared before `b2b_init_request`, and the session a route runs for, belong
//! to the worker running the script (thread-local), as OpenSIPS keeps them per process.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use engine::{FnCtx, MsgCtx, Value};
use sip::{HeaderName, SipMessage};
use tm::TxCell;

use crate::flow::{self, our_contact};
use crate::leg::{Leg, Side, State, sdp_of, strip_tag};
use crate::table::{Entity, Place, ServerInvite, Tuple, new_key, new_token, table, unix_now};

/// An entity declared in the request route, created by `b2b_init_request`.
#[derive(Debug, Clone)]
struct Declared {
    id: String,
    side: Side,
    dest: String,
    proxy: Option<String>,
    from_dname: Option<String>,
    adv_contact: Option<String>,
}

/// The session an in-dialog request (or a reply) runs the script for.
#[derive(Debug, Clone)]
struct Current {
    place: Place,
    cell: Option<Arc<TxCell>>,
    req: Option<MsgCtx>,
    /// `b2b_handle_reply` was called (reply route).
    handle_reply: bool,
}

/// What the request being routed (the main route, before and after `b2b_init_request`)
/// prepared: the entities declared, `$b2b_logic.ctx` values set before the session exists,
/// and the session it started.
#[derive(Debug, Default)]
struct PerMsg {
    id: u64,
    declared: Vec<Declared>,
    ctx: HashMap<String, String>,
    key: Option<String>,
}

thread_local! {
    static DECLARED: RefCell<PerMsg> = RefCell::new(PerMsg::default());
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// Runs `f` on what message `id` prepared (started afresh for a new message).
fn per_msg<R>(id: u64, f: impl FnOnce(&mut PerMsg) -> R) -> R {
    DECLARED.with(|cell| {
        let mut m = cell.borrow_mut();
        if m.id != id {
            *m = PerMsg {
                id,
                ..PerMsg::default()
            };
        }
        f(&mut m)
    })
}

fn text(v: Option<&Value>) -> Option<String> {
    v.filter(|v| !matches!(v, Value::Null))
        .map(|v| v.to_text().trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn declare(f: &FnCtx<'_>, d: Declared) {
    per_msg(f.msg.id, |m| {
        m.declared.retain(|x| x.id != d.id);
        m.declared.push(d);
    });
}

fn take_declared(f: &FnCtx<'_>) -> Vec<Declared> {
    per_msg(f.msg.id, |m| std::mem::take(&mut m.declared))
}

/// `b2b_server_new(id[, adv_contact[, ...]])`.
pub fn b2b_server_new(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(id) = text(args.first()) else {
        return -1;
    };
    declare(
        f,
        Declared {
            id,
            side: Side::Server,
            dest: String::new(),
            proxy: None,
            from_dname: None,
            adv_contact: text(args.get(1)),
        },
    );
    1
}

/// `b2b_client_new(id, dest_uri[, proxy[, from_dname[, adv_contact[, ...]]]])`: declared
/// for `b2b_init_request`, or (in the session's request route) added to the session for
/// `b2b_bridge`.
pub fn b2b_client_new(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (Some(id), Some(dest)) = (text(args.first()), text(args.get(1))) else {
        return -1;
    };
    let d = Declared {
        id,
        side: Side::Client,
        dest,
        proxy: text(args.get(2)),
        from_dname: text(args.get(3)),
        adv_contact: text(args.get(4)),
    };
    if let Some(cur) = CURRENT.with(|c| c.borrow().clone()) {
        return add_client(&cur.place.0, &d, f.msg);
    }
    declare(f, d);
    1
}

/// A client entity of session `key` for `d` (not started: `b2b_bridge` starts it).
fn add_client(key: &str, d: &Declared, ctx: &MsgCtx) -> i64 {
    let mut t = table();
    let Some(tuple) = t.tuples.get(key) else {
        return -1;
    };
    // The new dialog speaks for the session's caller: its From, the destination as To.
    let from = tuple
        .entities
        .iter()
        .find(|e| e.side == Side::Server)
        .map(|e| e.leg.remote_uri.clone())
        .unwrap_or_else(|| "<sip:b2b@localhost>".into());
    let e = client_entity(d, &from, ctx);
    match t.add_entity(key, e) {
        Some(_) => 1,
        None => -1,
    }
}

fn client_entity(d: &Declared, from: &str, ctx: &MsgCtx) -> Entity {
    let s = crate::settings();
    let from = match &d.from_dname {
        Some(name) => format!("\"{}\" <{}>", name.trim_matches('"'), uri_of(from)),
        None => from.to_owned(),
    };
    let user = s.contact_user.then(|| user_of(&from)).flatten();
    let contact = our_contact(ctx, d.adv_contact.as_deref(), user.as_deref());
    let leg = Leg::client(
        &new_token(&s.prefix),
        &new_token(&s.prefix),
        &from,
        &format!("<{}>", d.dest),
        &d.dest,
        &contact,
    );
    let mut e = Entity::new(&d.id, Side::Client, leg);
    e.proxy = d.proxy.clone();
    e
}

/// The URI of a name-addr value.
fn uri_of(v: &str) -> String {
    match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].to_owned(),
        _ => v.split(';').next().unwrap_or(v).trim().to_owned(),
    }
}

fn user_of(v: &str) -> Option<String> {
    let uri = uri_of(v);
    sip::Uri::parse(&uri).ok()?.user().map(str::to_owned)
}

/// `b2b_init_request(scenario[, flags[, req_route[, reply_route]]])`.
pub fn b2b_init_request(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(scenario) = text(args.first()) else {
        return -1;
    };
    if f.msg.msg.method() != Some(sip::Method::Invite)
        || f.msg.msg.to_tag().ok().flatten().is_some()
    {
        f.log.log(
            -1,
            "b2b_init_request: only an initial INVITE starts a B2B session\n",
        );
        return -1;
    }
    let declared = take_declared(f);
    let Some(tm) = tm::global() else { return -1 };
    let now = Instant::now();
    // A retransmission of an INVITE that already started a session.
    match tm.lookup_request(&f.msg.msg) {
        tm::Found::Retransmission(c) => {
            tm.resend_last_reply(&c);
            return 0;
        }
        tm::Found::None => {}
        _ => return 0,
    }
    let entities = match session_entities(f, &scenario, &declared) {
        Ok(e) => e,
        Err(e) => {
            f.log.log(-1, &format!("b2b_init_request: {e}\n"));
            return -1;
        }
    };
    let Some(cell) = tm.create(f.msg, now) else {
        return -1;
    };
    start_session(f, scenario, entities, cell)
}

/// The server entity of the caller, then the client(s): top hiding's one client goes to the
/// R-URI (`$du` as its next hop); a script scenario's are the declared ones.
fn session_entities(
    f: &FnCtx<'_>,
    scenario: &str,
    declared: &[Declared],
) -> Result<Vec<Entity>, String> {
    let s = crate::settings();
    let msg = &f.msg.msg;
    let to = flow::header(msg, HeaderName::To).ok_or("no To")?;
    let from = strip_tag(&flow::header(msg, HeaderName::From).ok_or("no From")?);
    let server_decl = declared.iter().find(|d| d.side == Side::Server);
    let user = s.contact_user.then(|| user_of(&to)).flatten();
    let contact = our_contact(
        f.msg,
        server_decl.and_then(|d| d.adv_contact.as_deref()),
        user.as_deref(),
    );
    let leg = Leg::server(msg, &new_token(&s.prefix), &contact)?;
    let server_id = server_decl.map_or("", |d| d.id.as_str());
    let mut out = vec![Entity::new(server_id, Side::Server, leg)];
    if scenario == crate::TOP_HIDING {
        let ruri = f.msg.ruri().ok_or("no R-URI")?.to_owned();
        let d = Declared {
            id: String::new(),
            side: Side::Client,
            dest: ruri,
            proxy: f.msg.dst_uri.clone(),
            from_dname: None,
            adv_contact: None,
        };
        let mut e = client_entity(&d, &from, f.msg);
        // Top hiding keeps the caller's To.
        e.leg.remote_uri = strip_tag(&to);
        out.push(e);
        return Ok(out);
    }
    if server_decl.is_none() {
        return Err(format!(
            "scenario `{scenario}` needs a server entity (b2b_server_new)"
        ));
    }
    let clients: Vec<&Declared> = declared.iter().filter(|d| d.side == Side::Client).collect();
    if clients.is_empty() {
        return Err(format!(
            "scenario `{scenario}` needs a client entity (b2b_client_new)"
        ));
    }
    out.extend(clients.into_iter().map(|d| client_entity(d, &from, f.msg)));
    Ok(out)
}

/// Stores the session (server bridged with the first client) and sends the client's INVITE
/// with the caller's body and the headers that pass.
fn start_session(
    f: &mut FnCtx<'_>,
    scenario: String,
    mut entities: Vec<Entity>,
    cell: Arc<TxCell>,
) -> i64 {
    let key = new_key();
    let ctx = per_msg(f.msg.id, |m| {
        m.key = Some(key.clone());
        std::mem::take(&mut m.ctx)
    });
    if let Some(server) = entities.first_mut() {
        server.state = State::Early;
        server.peer = Some(1);
        server.invite = Some(ServerInvite {
            cell: Arc::clone(&cell),
            req: f.msg.clone(),
            answered: false,
        });
    }
    if let Some(client) = entities.get_mut(1) {
        client.peer = Some(0);
    }
    let tuple = Tuple {
        key: key.clone(),
        scenario,
        entities,
        script: f.msg.script.clone(),
        ctx,
        ending: false,
        created: unix_now(),
    };
    table().insert(tuple);
    let mut extra = String::new();
    if let Some(mf) = f.msg.msg.header(HeaderName::MaxForwards) {
        extra.push_str(&format!("Max-Forwards: {}\r\n", mf.trim()));
    }
    extra.push_str(&flow::passed_headers(&f.msg.msg));
    extra.push_str(&init_callid_line(&key));
    let body = sdp_of(&f.msg.msg);
    let place = (key.clone(), 1);
    if let Err(e) = flow::send_initial(&place, &extra, &body) {
        f.log
            .log(-1, &format!("b2b_init_request: the INVITE not sent: {e}\n"));
        table().remove(&key);
        let req = f.msg.clone();
        flow::reply_uas(&cell, &req, 500, "Server Internal Error", "", "", "", &None);
        return -1;
    }
    1
}

/// Runs `script_req_route` for an in-dialog request of a script scenario's entity `p`:
/// whether a route ran (without one, the default handling applies).
pub fn run_request_route(
    p: &Place,
    cell: &Arc<TxCell>,
    ctx: &mut MsgCtx,
    script: &engine::Script,
    worker: &mut engine::Worker,
    log: &mut dyn engine::Log,
) -> bool {
    let Some(route) = crate::settings()
        .req_route
        .as_deref()
        .and_then(|n| script.request_route(n))
    else {
        return false;
    };
    let saved = CURRENT.with(|c| {
        c.borrow_mut().replace(Current {
            place: p.clone(),
            cell: Some(Arc::clone(cell)),
            req: Some(ctx.clone()),
            handle_reply: false,
        })
    });
    if let Err(e) = script.run_index(route, worker, ctx, log) {
        log.log(-1, &format!("b2b_logic request route: {e}\n"));
    }
    CURRENT.with(|c| *c.borrow_mut() = saved);
    true
}

/// Runs `script_reply_route` for the final reply to client `p`'s INVITE: whether the route
/// asked for it to be handled (`b2b_handle_reply`).
pub fn run_reply_route(p: &Place, reply: &SipMessage) -> bool {
    let script = table().tuples.get(&p.0).and_then(|t| t.script.clone());
    let Some(script) = script else { return true };
    let Some(route) = crate::settings()
        .reply_route
        .as_deref()
        .and_then(|n| script.request_route(n))
    else {
        return true;
    };
    let mut ctx = MsgCtx::new(reply.clone());
    ctx.script = Some(Arc::clone(&script));
    CURRENT.with(|c| {
        *c.borrow_mut() = Some(Current {
            place: p.clone(),
            cell: None,
            req: None,
            handle_reply: false,
        })
    });
    let mut worker = engine::Worker::default();
    if let Err(e) = script.run_index(route, &mut worker, &mut ctx, &mut crate::ModuleLog) {
        log::error!("b2b_logic reply route: {e}");
    }
    CURRENT
        .with(|c| c.borrow_mut().take())
        .is_some_and(|c| c.handle_reply)
}

fn current() -> Option<Current> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The session a message belongs to: the one whose route runs, else the one the request
/// being routed started.
pub(crate) fn session_of(msg_id: u64) -> Option<Place> {
    if let Some(cur) = current() {
        return Some(cur.place);
    }
    let key = per_msg(msg_id, |m| m.key.clone())?;
    Some((key, 0))
}

/// `$b2b_logic.ctx` values message `msg_id` set before its session existed.
pub(crate) fn pending_ctx<R>(msg_id: u64, f: impl FnOnce(&mut HashMap<String, String>) -> R) -> R {
    per_msg(msg_id, |m| f(&mut m.ctx))
}

/// The session a script route runs for on this thread (tests of the variables).
#[cfg(test)]
pub(crate) fn set_current(place: Option<Place>) {
    CURRENT.with(|c| {
        *c.borrow_mut() = place.map(|place| Current {
            place,
            cell: None,
            req: None,
            handle_reply: false,
        })
    });
}

/// `b2b_handle_reply([flags])`.
pub fn b2b_handle_reply(_f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(cur) => {
            cur.handle_reply = true;
            1
        }
        None => -1,
    })
}

/// `b2b_pass_request()`.
pub fn b2b_pass_request(_f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    match current() {
        Some(Current {
            place,
            cell: Some(cell),
            req: Some(req),
            ..
        }) => crate::session::pass_request(&place, cell, &req),
        _ => -1,
    }
}

/// `b2b_send_reply(code, reason[, headers[, body]])`.
pub fn b2b_send_reply(_f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(Current {
        place,
        cell: Some(cell),
        req: Some(req),
        ..
    }) = current()
    else {
        return -1;
    };
    let Some(code) = args
        .first()
        .and_then(Value::as_int)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..700).contains(c))
    else {
        return -1;
    };
    let reason = text(args.get(1)).unwrap_or_default();
    let mut extra = text(args.get(2)).unwrap_or_default();
    if !extra.is_empty() && !extra.ends_with('\n') {
        extra.push_str("\r\n");
    }
    let body = text(args.get(3)).map(|b| ("application/sdp".to_owned(), b));
    let contact = table()
        .entity(&place)
        .map(|e| e.leg.contact.clone())
        .unwrap_or_default();
    flow::reply_uas(&cell, &req, code, &reason, "", &contact, &extra, &body)
}

/// `b2b_end_dlg_leg()`: a BYE ends the entity the request came from.
pub fn b2b_end_dlg_leg(_f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(cur) = current() else { return -1 };
    crate::session::end_leg(&cur.place);
    1
}

/// `b2b_delete_entity()`: the entity the request came from leaves the session.
pub fn b2b_delete_entity(_f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(cur) = current() else { return -1 };
    let mut t = table();
    let Some(tuple) = t.tuples.get_mut(&cur.place.0) else {
        return -1;
    };
    for e in tuple.entities.iter_mut() {
        if e.peer == Some(cur.place.1) {
            e.peer = None;
        }
    }
    if let Some(e) = tuple.entities.get_mut(cur.place.1) {
        e.deleted = true;
        e.state = State::Ended;
        e.peer = None;
    }
    1
}

/// `b2b_bridge(entity1, entity2[, ...])`: connects an entity of the session with a new
/// client (declared by `b2b_client_new` in this route): the client gets an INVITE with the
/// first entity's last session description, and once it answers, the first entity gets a
/// re-INVITE with the client's.
pub fn b2b_bridge(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(cur) = current() else { return -1 };
    let (Some(a), Some(b)) = (text(args.first()), text(args.get(1))) else {
        return -1;
    };
    let key = cur.place.0.clone();
    let (ia, ib, body) = {
        let mut t = table();
        let Some(tuple) = t.tuples.get_mut(&key) else {
            return -1;
        };
        let (Some(ia), Some(ib)) = (tuple.index_of(&a), tuple.index_of(&b)) else {
            f.log
                .log(-1, &format!("b2b_bridge: no entity `{a}` or `{b}`\n"));
            return -1;
        };
        if tuple.entities[ib].state != State::New || tuple.entities[ib].side != Side::Client {
            f.log.log(
                -1,
                "b2b_bridge: rsips bridges an entity with a new client entity only\n",
            );
            return -1;
        }
        tuple.entities[ia].peer = Some(ib);
        tuple.entities[ib].peer = Some(ia);
        (ia, ib, tuple.entities[ia].leg.remote_sdp.clone())
    };
    let _ = ia;
    let extra = init_callid_line(&key);
    match flow::send_initial(&(key, ib), &extra, &body) {
        Ok(()) => 1,
        Err(e) => {
            f.log.log(-1, &format!("b2b_bridge: {e}\n"));
            -1
        }
    }
}

/// Functions rsips registers so configs load, but does not implement: they fail (-1) with an
/// error each time they run.
pub fn unsupported(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    f.log.log(
        -1,
        "b2b_logic: b2b_bridge_request, b2b_bridge_retry and b2b_trigger_scenario are not \
         supported by rsips\n",
    );
    -1
}

/// b2b_entities' `ua_session_*` functions: registered so configs load; they fail (-1) with
/// an error each time they run.
pub fn unsupported_ua(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    f.log.log(
        -1,
        "b2b_entities: the ua_session_* functions are not supported by rsips\n",
    );
    -1
}

/// `init_callid_hdr: <the caller's Call-ID>` for the INVITEs of session `key`, when set.
fn init_callid_line(key: &str) -> String {
    let Some(name) = crate::settings().init_callid_hdr.as_deref() else {
        return String::new();
    };
    let t = table();
    t.tuples
        .get(key)
        .and_then(|t| t.entities.iter().find(|e| e.side == Side::Server))
        .map(|e| format!("{name}: {}\r\n", e.leg.callid))
        .unwrap_or_default()
}
