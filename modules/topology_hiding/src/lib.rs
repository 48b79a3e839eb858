//! The OpenSIPS `topology_hiding` module: neither side learns the other's Vias, Record-Routes
//! or Contact. Without a dialog the state travels in our Contact (below); with one it is kept
//! in the dialog ([`dlg`]).
//!
//! `topology_hiding([flags[, usernames]])` on an initial request: it leaves with our Via only,
//! no Record-Route, and a Contact of ours whose `thinfo` parameter carries (XOR-ed with
//! `th_contact_encode_passwd`, then base64 or base32) what a request coming back needs: the
//! route set, the remote Contact, flags and our socket. Its replies go back with the
//! request's own Vias and Record-Routes and a Contact of ours encoding the other side.
//! `topology_hiding_match()` on a sequential request sent to such a Contact decodes it and
//! routes the request there (R-URI, Route, `$du`, socket), hiding its own Contact and its
//! replies' in turn.
//!
//! Flag `C` hides the Call-ID from the callee's side (`th_callid_prefix` + the Call-ID XOR-ed
//! with `th_callid_passwd` in OpenSIPS' base64 variant): requests towards the callee carry
//! the hidden one, those from the callee get the caller's back (before the dialog module and
//! the rest of the script see them), and each side's replies carry its own.
//!
//! With `th_callid_loop_protection` the hidden Call-ID also carries the caller's tag, and a
//! call that loops back through us is hidden once more instead of being revealed.
//!
//! When the request has a dialog (the script's `create_dialog()`, or `force_dialog`) the
//! state is kept in the dialog instead ([`dlg`]), as OpenSIPS does; `topology_hiding_match()`
//! first looks for the request's dialog (as `match_dialog()`), and decodes a `thinfo`
//! Contact only when there is none.
#![forbid(unsafe_code)]

mod codec;
mod dlg;

use std::sync::OnceLock;

use engine::{
    FnCtx, FnSpec, HideFixup, ModuleSpec, MsgCtx, Param, ParamType, ReplyFixup, Routes, Script,
    Value,
};
use sip::HeaderName;

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "topology_hiding",
    functions: &[
        FnSpec {
            name: "topology_hiding",
            params: &[(Param::Str, true), (Param::Str, true)],
            routes: Routes::REQUEST,
            run: topology_hiding,
        },
        FnSpec {
            name: "topology_hiding_match",
            params: &[(Param::Str, true)],
            routes: Routes::REQUEST,
            run: topology_hiding_match,
        },
    ],
    params: &[
        ("force_dialog", ParamType::Int),
        ("th_passed_contact_uri_params", ParamType::Str),
        ("th_passed_contact_params", ParamType::Str),
        ("th_callid_passwd", ParamType::Str),
        ("th_callid_prefix", ParamType::Str),
        ("th_contact_encode_passwd", ParamType::Str),
        ("th_contact_encode_param", ParamType::Str),
        ("th_contact_encode_scheme", ParamType::Str),
        ("th_contact_caller_username_var", ParamType::Str),
        ("th_contact_callee_username_var", ParamType::Str),
        ("th_callid_loop_protection", ParamType::Int),
    ],
};

/// Flag `U`: the Contact keeps its user part. The bits are OpenSIPS' (the dialog keeps them
/// next to `TOPOH_ONGOING`).
const KEEP_USER: u32 = 1 << 2;
/// `C`: the callee's side knows the call by another Call-ID.
const HIDE_CALLID: u32 = 1 << 3;
/// `D`: the dialog's id goes in our Contact's user part, not in a `did` parameter.
const DID_IN_USER: u32 = 1 << 4;
/// `a` / `A`: the caller / the callee keeps being shown the Contact first advertised to it.
const KEEP_ADV_A: u32 = 1 << 5;
const KEEP_ADV_B: u32 = 1 << 6;

struct Config {
    /// `th_callid_passwd` and `th_callid_prefix` (flag `C`).
    callid_passwd: Vec<u8>,
    callid_prefix: String,
    /// `th_callid_loop_protection`: the hidden Call-ID carries the caller's tag, so that a
    /// call looping back through us is hidden again rather than revealed.
    loop_protection: bool,
    passwd: Vec<u8>,
    param: String,
    base32: bool,
    /// Contact URI parameters copied into ours.
    uri_params: Vec<String>,
    /// Contact header parameters copied after ours.
    hdr_params: Vec<String>,
    /// The dialog module runs: a request with a dialog is hidden through it.
    with_dialog: bool,
    /// `force_dialog`: `topology_hiding()` creates the dialog an INVITE lacks.
    force_dialog: bool,
    /// The dialog values keeping the usernames shown to the caller and to the callee.
    caller_var: String,
    callee_var: String,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

fn list(text: Option<String>) -> Vec<String> {
    text.unwrap_or_default()
        .split(';')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Reads the parameters when the script loads the module.
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("topology_hiding") {
        return Ok(());
    }
    let text = |n: &str| script.modparam_str("topology_hiding", n);
    let with_dialog = script.loads("dialog");
    let force_dialog = script
        .modparam_int("topology_hiding", "force_dialog")
        .unwrap_or(0)
        != 0;
    if force_dialog && !with_dialog {
        return Err(
            "topology_hiding: force_dialog needs the dialog module, which is not loaded".into(),
        );
    }
    let base32 = match text("th_contact_encode_scheme").as_deref() {
        None | Some("base64") => false,
        Some("base32") => true,
        Some(other) => {
            return Err(format!(
                "topology_hiding: th_contact_encode_scheme must be base64 or base32, not \"{other}\""
            ));
        }
    };
    let passwd = text("th_contact_encode_passwd").unwrap_or_else(|| "ToPoCtPaSS".into());
    if passwd.is_empty() {
        return Err("topology_hiding: th_contact_encode_passwd is empty".into());
    }
    let _ = CONFIG.set(Config {
        loop_protection: script
            .modparam_int("topology_hiding", "th_callid_loop_protection")
            .unwrap_or(0)
            != 0,
        callid_passwd: text("th_callid_passwd")
            .unwrap_or_else(|| "OpenSIPS".into())
            .into_bytes(),
        callid_prefix: text("th_callid_prefix").unwrap_or_else(|| "DLGCH_".into()),
        passwd: passwd.into_bytes(),
        param: text("th_contact_encode_param").unwrap_or_else(|| "thinfo".into()),
        base32,
        uri_params: list(text("th_passed_contact_uri_params")),
        hdr_params: list(text("th_passed_contact_params")),
        with_dialog,
        force_dialog,
        caller_var: text("th_contact_caller_username_var")
            .unwrap_or_else(|| "_th_contact_caller_username_var_".into()),
        callee_var: text("th_contact_callee_username_var")
            .unwrap_or_else(|| "_th_contact_callee_username_var_".into()),
    });
    engine::hooks::set_hidden_contact(Box::new(reply_contact));
    if with_dialog {
        dialog::on_request_within(dlg::within);
        engine::hooks::set_th_callid_reader(Box::new(callee_callid));
    }
    Ok(())
}

/// `$TH_callee_callid`: the Call-ID the callee sees of the message's hidden dialog (flag
/// `C`); NULL otherwise.
fn callee_callid(ctx: &MsgCtx) -> Value {
    let (Some(cfg), Some(mark)) = (CONFIG.get(), ctx.dialog) else {
        return Value::Null;
    };
    let dialogs = dialog::table::dialogs();
    let Some(d) = dialogs.by_id.get(&mark.id) else {
        return Value::Null;
    };
    if d.mod_flags & dialog::table::TOPOH_ONGOING == 0 || d.mod_flags & HIDE_CALLID == 0 {
        return Value::Null;
    }
    let plain = if cfg.loop_protection {
        format!("{}|{}", d.callid, d.caller.tag)
    } else {
        d.callid.clone()
    };
    Value::from(codec::hide_call_id(
        &plain,
        &cfg.callid_passwd,
        &cfg.callid_prefix,
    ))
}

fn parse_flags(text: &str) -> u32 {
    text.chars().fold(0, |f, c| {
        f | match c {
            'U' => KEEP_USER,
            'C' => HIDE_CALLID,
            'D' => DID_IN_USER,
            'a' => KEEP_ADV_A,
            'A' => KEEP_ADV_B,
            _ => 0,
        }
    })
}

/// `"name"`, `"/caller"`, `"//callee"`, `"/caller/callee"`: (caller, callee) Contact users.
fn usernames(text: &str) -> (Option<String>, Option<String>) {
    let t = text.trim();
    let some = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
    match t.strip_prefix('/') {
        None => (some(t), some(t)),
        Some(rest) => match rest.split_once('/') {
            Some((caller, callee)) => (some(caller), some(callee)),
            None => (some(rest), None),
        },
    }
}

/// Our address as a socket shows it (advertised, else its own), with `;transport=` off UDP.
fn socket_address(script: &Script, proto: &'static str, local: std::net::SocketAddr) -> String {
    let net = script.net();
    let adv = net
        .listen
        .iter()
        .find(|s| s.proto == proto && s.addr == Some(local))
        .and_then(|s| s.advertised.clone());
    let mut out = match adv {
        Some((h, p)) => format!("{h}:{}", p.unwrap_or(local.port())),
        None => match local {
            std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
            a => a.to_string(),
        },
    };
    if proto != "udp" {
        out.push_str(";transport=");
        out.push_str(proto);
    }
    out
}

/// Parameters as (name, value).
type Params = Vec<(String, Option<String>)>;

/// The first Contact of a message: (its URI, its user, its URI parameters, its header
/// parameters).
fn contact_of(msg: &sip::SipMessage) -> Option<(String, String, Params, Params)> {
    let sip::headers::Contacts::List(list) = msg.contacts().ok()? else {
        return None;
    };
    let c = list.first()?;
    let uri = c.uri();
    let uri_params = uri
        .params()
        .iter()
        .filter_map(Result::ok)
        .map(|p| (p.name.to_owned(), p.value.map(str::to_owned)))
        .collect();
    let hdr_params = c
        .params()
        .iter()
        .filter_map(Result::ok)
        .map(|p| (p.name.to_owned(), p.value.map(str::to_owned)))
        .collect();
    Some((
        uri.as_str().to_owned(),
        uri.user().unwrap_or("").to_owned(),
        uri_params,
        hdr_params,
    ))
}

/// `<sip:[user@]addr;thinfo=…[;kept uri params]>[;kept header params]`.
fn our_contact(
    cfg: &Config,
    user: Option<&str>,
    addr: &str,
    encoded: &str,
    uri_params: &Params,
    hdr_params: &Params,
) -> String {
    let mut c = String::from("<sip:");
    if let Some(u) = user.filter(|u| !u.is_empty()) {
        c.push_str(u);
        c.push('@');
    }
    c.push_str(addr);
    c.push(';');
    c.push_str(&cfg.param);
    c.push('=');
    c.push_str(encoded);
    push_passed_params(cfg, &mut c, uri_params, hdr_params);
    c
}

/// The Contact's URI parameters and header parameters the module passes on, around the `>`
/// that closes our URI.
fn push_passed_params(cfg: &Config, c: &mut String, uri_params: &Params, hdr_params: &Params) {
    for (n, v) in uri_params {
        if cfg.uri_params.iter().any(|k| k.eq_ignore_ascii_case(n)) {
            c.push(';');
            c.push_str(n);
            if let Some(v) = v {
                c.push('=');
                c.push_str(v);
            }
        }
    }
    c.push('>');
    for (n, v) in hdr_params {
        if cfg.hdr_params.iter().any(|k| k.eq_ignore_ascii_case(n)) {
            c.push(';');
            c.push_str(n);
            if let Some(v) = v {
                c.push('=');
                c.push_str(v);
            }
        }
    }
}

/// The Record-Route values of a message, comma-joined, in order or reversed.
fn record_routes(msg: &sip::SipMessage, reversed: bool) -> String {
    let mut v: Vec<&str> = msg.values(HeaderName::RecordRoute).map(str::trim).collect();
    if reversed {
        v.reverse();
    }
    v.join(",")
}

/// What the replies to a request need to build their Contact: flags, our address towards
/// the request's sender, the user to show, and (sequential requests) the route set to encode.
struct ReplyState {
    flags: u32,
    addr: String,
    user: Option<String>,
    routes: Option<String>,
}

impl ReplyState {
    fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.flags,
            self.addr,
            self.user.as_deref().unwrap_or(""),
            self.routes
                .as_deref()
                .map_or(String::new(), |r| format!("={r}"))
        )
    }

    fn parse(text: &str) -> Option<ReplyState> {
        let mut l = text.splitn(4, '\n');
        Some(ReplyState {
            flags: l.next()?.parse().ok()?,
            addr: l.next()?.to_owned(),
            user: Some(l.next()?.to_owned()).filter(|u| !u.is_empty()),
            routes: l
                .next()
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_owned),
        })
    }
}

/// The Contact of a reply going back (tm calls it through the hook): the far side's Contact,
/// route set and the socket the reply came in on, encoded.
fn reply_contact(
    reply: &sip::SipMessage,
    came_on: Option<(&'static str, std::net::SocketAddr)>,
    state: &str,
) -> Option<String> {
    let cfg = CONFIG.get()?;
    if let Some(st) = dlg::DlgState::parse(state) {
        return dlg::reply_contact(cfg, reply, &st);
    }
    let st = ReplyState::parse(state)?;
    let (uri, user, uri_params, hdr_params) = contact_of(reply)?;
    let routes = st
        .routes
        .clone()
        .unwrap_or_else(|| record_routes(reply, true));
    let socket = came_on
        .map(|(p, a)| engine::forward::socket_name(p, a))
        .unwrap_or_default();
    let encoded = codec::encode(
        [&routes, &uri, &st.flags.to_string(), &socket],
        &cfg.passwd,
        cfg.base32,
    );
    let user = st
        .user
        .clone()
        .or_else(|| (st.flags & KEEP_USER != 0).then_some(user));
    Some(our_contact(
        cfg,
        user.as_deref(),
        &st.addr,
        &encoded,
        &uri_params,
        &hdr_params,
    ))
}

/// The request's Vias as its replies must carry them back (the first as recorded on
/// receipt).
fn vias_back(ctx: &MsgCtx) -> Vec<String> {
    let m = &ctx.msg;
    let mut out: Vec<String> = m.values(HeaderName::Via).map(str::to_owned).collect();
    if let (Some(r), Some(first)) = (ctx.receipt.as_ref(), out.first_mut())
        && let Some(v) = engine::forward::received_top_via(m, r.source, ctx.force_rport)
    {
        *first = v;
    }
    out
}

/// Replaces the request's Contact with ours for the next hop: its own Record-Routes, Contact
/// and receiving socket encoded.
fn hide_request_contact(f: &mut FnCtx<'_>, cfg: &Config, flags: u32, user: Option<&str>) {
    let Some((uri, own_user, uri_params, hdr_params)) = contact_of(&f.msg.msg) else {
        return;
    };
    let Some(h) = f
        .msg
        .msg
        .headers()
        .find(|h| h.name == HeaderName::Contact)
        .map(|h| h.index)
    else {
        return;
    };
    let socket = f
        .msg
        .receipt
        .as_ref()
        .map(|r| engine::forward::socket_name(r.proto, r.local))
        .unwrap_or_default();
    let routes = record_routes(&f.msg.msg, false);
    let encoded = codec::encode(
        [&routes, &uri, &flags.to_string(), &socket],
        &cfg.passwd,
        cfg.base32,
    );
    let user = user
        .map(str::to_owned)
        .or_else(|| (flags & KEEP_USER != 0).then_some(own_user));
    let value = our_contact(
        cfg,
        user.as_deref(),
        engine::forward::SEND_ADDRESS,
        &encoded,
        &uri_params,
        &hdr_params,
    );
    f.msg.edits.replace_value(h, value);
}

/// Takes the received Record-Route headers out of the request (and `record_route()`'s).
fn drop_record_routes(ctx: &mut MsgCtx) {
    let lines: Vec<usize> = ctx
        .msg
        .headers()
        .filter(|h| h.name == HeaderName::RecordRoute)
        .map(|h| h.index)
        .collect();
    for i in lines {
        ctx.edits.remove(i);
    }
    ctx.record_route = None;
}

/// `topology_hiding([flags[, usernames]])`.
pub fn topology_hiding(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(cfg) = CONFIG.get() else { return -1 };
    if f.msg.msg.to_tag().ok().flatten().is_some() {
        return -1;
    }
    let flags = parse_flags(
        &args
            .first()
            .filter(|v| !v.is_null())
            .map(|v| v.to_text().into_owned())
            .unwrap_or_default(),
    );
    let (caller_user, callee_user) = args
        .get(1)
        .filter(|v| !v.is_null())
        .map_or((None, None), |v| usernames(&v.to_text()));
    if cfg.with_dialog {
        if f.msg.dialog.is_none()
            && cfg.force_dialog
            && let Err(e) = dialog::create(f.msg, dialog::table::Flags::default())
        {
            f.log.log(
                -1,
                &format!("topology_hiding: failed to create the dialog: {e}\n"),
            );
            return -1;
        }
        if let Some(mark) = f.msg.dialog {
            return dlg::hide_initial(f, cfg, mark.id, flags, (caller_user, callee_user));
        }
    }
    if flags & DID_IN_USER != 0 {
        f.log.log(
            1,
            "topology_hiding: cannot store the dialog id in the Contact user without a dialog\n",
        );
    }
    let Some(receipt) = f.msg.receipt.clone() else {
        return -1;
    };
    let record_route = record_routes(&f.msg.msg, false);
    let vias = vias_back(f.msg);
    drop_record_routes(f.msg);
    hide_request_contact(f, cfg, flags, caller_user.as_deref());
    f.msg.hide_topology = true;
    let call_id = if flags & HIDE_CALLID != 0 {
        hide_call_id(f.msg, cfg)
    } else {
        None
    };
    let state = ReplyState {
        flags: flags & (KEEP_USER | HIDE_CALLID),
        addr: socket_address(f.script, receipt.proto, receipt.local),
        user: callee_user,
        routes: None,
    };
    f.msg
        .reply_fixups
        .push(ReplyFixup::Hide(Box::new(HideFixup {
            vias,
            record_route: Some(record_route).filter(|r| !r.is_empty()),
            contact: true,
            state: state.to_text(),
            call_id,
        })));
    1
}

/// Flag `C` on a request going towards the callee: it leaves with the hidden Call-ID; the
/// Call-ID its replies must carry back is returned. REGISTER, PUBLISH and SUBSCRIBE keep
/// theirs, as in OpenSIPS.
fn hide_call_id(ctx: &mut MsgCtx, cfg: &Config) -> Option<String> {
    let m = &ctx.msg;
    let method = m.cseq().ok()?.method_str.to_ascii_uppercase();
    if ["REGISTER", "PUBLISH", "SUBSCRIBE"].contains(&method.as_str()) {
        return None;
    }
    let original = m.call_id().ok()?.to_owned();
    let line = m.headers().find(|h| h.name == HeaderName::CallId)?.index;
    let plain = if cfg.loop_protection {
        // OpenSIPS hides nothing when there is no tag to add.
        let tag = m.from_tag().ok().flatten().filter(|t| !t.is_empty())?;
        format!("{original}|{tag}")
    } else {
        original.clone()
    };
    let hidden = codec::hide_call_id(&plain, &cfg.callid_passwd, &cfg.callid_prefix);
    ctx.edits.replace_value(line, hidden);
    Some(original)
}

/// Flag `C` on a request coming from the callee: the message takes back the caller's Call-ID
/// (the script, the dialog and the caller see that one); the hidden one its replies carry
/// back is returned. `None` when its Call-ID is not one we hid.
fn reveal_call_id(ctx: &mut MsgCtx, cfg: &Config) -> Option<String> {
    let m = &ctx.msg;
    let hidden = m.call_id().ok()?.to_owned();
    let mut original = codec::reveal_call_id(&hidden, &cfg.callid_passwd, &cfg.callid_prefix)?;
    if cfg.loop_protection {
        let (cid, tag) = original.rsplit_once('|')?;
        // The caller's own tag: the call came round to us again; it stays hidden.
        if m.from_tag().ok().flatten() == Some(tag) {
            return None;
        }
        original = cid.to_owned();
    }
    let raw = m.as_bytes();
    let value = m.headers().find(|h| h.name == HeaderName::CallId)?.value;
    // The value is a slice of the message: its place in the bytes.
    let at = (value.as_ptr() as usize).checked_sub(raw.as_ptr() as usize)?;
    let end = at.checked_add(value.len()).filter(|e| *e <= raw.len())?;
    let mut text = raw.get(..at)?.to_vec();
    text.extend_from_slice(original.as_bytes());
    text.extend_from_slice(raw.get(end..)?);
    let msg = sip::SipMessage::parse(bytes::Bytes::from(text)).ok()?;
    ctx.msg = msg;
    Some(hidden)
}

/// `topology_hiding_match([mode])`: a sequential request of a hidden call is routed where
/// its dialog (matched as `match_dialog(mode)` does) or our Contact's `thinfo` says. 1 when
/// it was (or when it has a dialog that hides nothing); -1 otherwise.
pub fn topology_hiding_match(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(cfg) = CONFIG.get() else { return -1 };
    let mut revealed = None;
    if cfg.with_dialog {
        let mode = args
            .first()
            .filter(|v| !v.is_null())
            .and_then(|v| dialog::match_mode(&v.to_text()));
        // `C`: the dialog knows the call by the caller's Call-ID (OpenSIPS restores it as the
        // message arrives).
        if f.msg.dialog.is_none() {
            revealed = reveal_call_id(f.msg, cfg);
        }
        if dialog::match_request(f, mode) {
            if let Some(hidden) = revealed
                && let Some(ReplyFixup::Hide(h)) = f.msg.reply_fixups.last_mut()
                && h.call_id.is_none()
            {
                h.call_id = Some(hidden);
            }
            return 1;
        }
    }
    match_no_dialog(f, cfg, revealed)
}

/// The no-dialog mode's matching: the R-URI's `thinfo` decoded. `revealed`: the hidden Call-ID
/// the request came with, already given back the caller's.
fn match_no_dialog(f: &mut FnCtx<'_>, cfg: &Config, revealed: Option<String>) -> i64 {
    let m = &f.msg.msg;
    if m.header(HeaderName::Route).is_some() {
        return -1;
    }
    let Ok(ruri) = m.request_uri() else { return -1 };
    let host = ruri
        .host()
        .map(|h| h.as_str().to_owned())
        .unwrap_or_default();
    if !f.script.is_myself(&host, Some(ruri.port().unwrap_or(5060))) {
        return -1;
    }
    let Some(Some(encoded)) = ruri
        .params()
        .iter()
        .filter_map(Result::ok)
        .find(|p| p.name == cfg.param)
        .map(|p| p.value.map(str::to_owned))
    else {
        return -1;
    };
    let Some([routes, contact, flags, socket]) = codec::decode(&encoded, &cfg.passwd, cfg.base32)
    else {
        f.log.log(
            3,
            &format!(
                "topology_hiding: cannot decode the {} parameter\n",
                cfg.param
            ),
        );
        return -1;
    };
    let flags: u32 = flags.trim().parse().unwrap_or(0);
    let Some(receipt) = f.msg.receipt.clone() else {
        return -1;
    };
    let vias = vias_back(f.msg);
    drop_record_routes(f.msg);
    let route_list: Vec<String> = sip::split_values(&routes)
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect();
    let first_uri = route_list.first().and_then(|r| {
        sip::NameAddr::parse(r)
            .ok()
            .map(|a| (a.uri().as_str().to_owned(), a.uri().is_loose_router()))
    });
    f.msg.dst_uri = None;
    let kept_routes = match first_uri {
        None => {
            if !contact.is_empty() {
                f.msg.new_ruri = Some(contact.clone());
            }
            String::new()
        }
        Some((uri, true)) => {
            if !contact.is_empty() {
                f.msg.new_ruri = Some(contact.clone());
            }
            f.msg.edits.add_top("Route", &route_list.join(","));
            f.msg.dst_uri = Some(uri);
            route_list.join(",")
        }
        Some((uri, false)) => {
            // A strict router next: it gets the request-URI, the contact goes last.
            f.msg.new_ruri = Some(uri);
            let mut rest: Vec<String> = route_list.iter().skip(1).cloned().collect();
            if !contact.is_empty() {
                rest.push(format!("<{contact}>"));
            }
            if !rest.is_empty() {
                f.msg.edits.add_top("Route", &rest.join(","));
            }
            route_list
                .iter()
                .skip(1)
                .cloned()
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    if !socket.is_empty() {
        if f.script.has_socket(&socket) {
            f.msg.send_socket = Some(socket);
        } else {
            f.log.log(
                2,
                &format!("topology_hiding: {socket} is not one of our sockets\n"),
            );
        }
    }
    hide_request_contact(f, cfg, flags, None);
    f.msg.hide_topology = true;
    // `C`: from the callee the Call-ID comes back to the caller's; from the caller it is
    // hidden again.
    let call_id = if flags & HIDE_CALLID != 0 {
        revealed
            .or_else(|| reveal_call_id(f.msg, cfg))
            .or_else(|| hide_call_id(f.msg, cfg))
    } else {
        None
    };
    let state = ReplyState {
        flags: flags & (KEEP_USER | HIDE_CALLID),
        addr: socket_address(f.script, receipt.proto, receipt.local),
        user: None,
        routes: Some(kept_routes),
    };
    f.msg
        .reply_fixups
        .push(ReplyFixup::Hide(Box::new(HideFixup {
            vias,
            record_route: None,
            contact: true,
            state: state.to_text(),
            call_id,
        })));
    // The dialog (and uac's restore) see the request as loose_route would show it to them.
    engine::hooks::dialog_routed(f.msg);
    engine::hooks::routed(f.msg);
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_usernames() {
        assert_eq!(parse_flags("U"), KEEP_USER);
        assert_eq!(parse_flags("UCx"), KEEP_USER | HIDE_CALLID);
        assert_eq!(
            usernames("alice"),
            (Some("alice".into()), Some("alice".into()))
        );
        assert_eq!(usernames("/a/b"), (Some("a".into()), Some("b".into())));
        assert_eq!(usernames("//b"), (None, Some("b".into())));
        assert_eq!(usernames("/a"), (Some("a".into()), None));
        assert_eq!(usernames(""), (None, None));
    }

    #[test]
    fn reply_state_round_trips() {
        let s = ReplyState {
            flags: 4,
            addr: "127.0.0.1:5060;transport=tcp".into(),
            user: Some("bob".into()),
            routes: Some("<sip:p1;lr>,<sip:p2;lr>".into()),
        };
        let back = ReplyState::parse(&s.to_text()).unwrap();
        assert_eq!(
            (
                back.flags,
                back.addr.as_str(),
                back.user.as_deref(),
                back.routes.as_deref()
            ),
            (
                4,
                "127.0.0.1:5060;transport=tcp",
                Some("bob"),
                Some("<sip:p1;lr>,<sip:p2;lr>")
            )
        );
        let none = ReplyState {
            flags: 0,
            addr: "a".into(),
            user: None,
            routes: None,
        };
        let back = ReplyState::parse(&none.to_text()).unwrap();
        assert!(back.user.is_none() && back.routes.is_none());
        let empty = ReplyState {
            routes: Some(String::new()),
            ..none
        };
        assert_eq!(
            ReplyState::parse(&empty.to_text())
                .unwrap()
                .routes
                .as_deref(),
            Some("")
        );
    }
}
