//! The OpenSIPS `rtpproxy` module: media relaying through RTPProxy (or any daemon speaking
//! its control protocol, such as rtpengine's `--listen-udp`).
//!
//! `rtpproxy_offer` / `rtpproxy_answer` send one `U` / `L` command per media stream and
//! rewrite the SDP to the address and ports the proxy answers with; `rtpproxy_engage` does
//! both along a dialog by itself (through the dialog module's and tm's media hooks);
//! `rtpproxy_unforce` ends the session (`D`); `rtpproxy_stats` (`Q`), `rtpproxy_start_recording` (`R`/`C`) and the
//! prompt functions (`P`/`S`). Sets of nodes with weights from `rtpproxy_sock` or the
//! `rtpproxy_sockets` table, the version handshake, a node that stops answering taken out for
//! `rtpproxy_disable_tout` seconds, MI `rtpproxy:show`/`enable`/`reload` and the
//! `E_RTPPROXY_STATUS` event.
#![forbid(unsafe_code)]

mod admin;
mod engage;
pub mod nodes;
pub mod offer;
pub mod relay;

pub use admin::commands;
pub use engage::rtpproxy_engage;

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use engine::{FnCtx, FnSpec, ModuleSpec, MsgCtx, Param, ParamType, Routes, Script, Value};
use nodes::{Answer, Node, Set, Timing};
use offer::{Flags, Relayed, Reply};

const ALL: Routes = Routes::REQUEST
    .or(Routes::ONREPLY)
    .or(Routes::FAILURE)
    .or(Routes::BRANCH)
    .or(Routes::LOCAL);
const STREAM: Routes = Routes::REQUEST.or(Routes::ONREPLY).or(Routes::LOCAL);
const RECORD: Routes = Routes::REQUEST
    .or(Routes::ONREPLY)
    .or(Routes::BRANCH)
    .or(Routes::FAILURE);

const OFFER_PARAMS: &[(Param, bool)] = &[
    (Param::Str, true),
    (Param::Str, true),
    (Param::Int, true),
    (Param::Var, true),
    (Param::Var, true),
    (Param::VarInOut, true),
    (Param::Str, true),
];
const SET_SOCK: &[(Param, bool)] = &[(Param::Int, true), (Param::Var, true)];

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "rtpproxy",
    functions: &[
        FnSpec {
            name: "rtpproxy_offer",
            params: OFFER_PARAMS,
            routes: ALL,
            run: rtpproxy_offer,
        },
        FnSpec {
            name: "rtpproxy_answer",
            params: OFFER_PARAMS,
            routes: ALL,
            run: rtpproxy_answer,
        },
        FnSpec {
            name: "rtpproxy_engage",
            params: &[
                (Param::Str, true),
                (Param::Str, true),
                (Param::Int, true),
                (Param::Var, true),
                (Param::Var, true),
            ],
            routes: ALL,
            run: engage::rtpproxy_engage,
        },
        FnSpec {
            name: "rtpproxy_unforce",
            params: SET_SOCK,
            routes: ALL,
            run: rtpproxy_unforce,
        },
        FnSpec {
            name: "rtpproxy_stats",
            params: &[
                (Param::Var, false),
                (Param::Var, false),
                (Param::Var, false),
                (Param::Var, false),
                (Param::Int, true),
                (Param::Var, true),
            ],
            routes: ALL,
            run: rtpproxy_stats,
        },
        FnSpec {
            name: "rtpproxy_start_recording",
            params: &[
                (Param::Int, true),
                (Param::Var, true),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Int, true),
            ],
            routes: RECORD,
            run: rtpproxy_start_recording,
        },
        FnSpec {
            name: "rtpproxy_stream2uac",
            params: &[
                (Param::Str, false),
                (Param::Int, false),
                (Param::Int, true),
                (Param::Var, true),
            ],
            routes: STREAM,
            run: rtpproxy_stream2uac,
        },
        FnSpec {
            name: "rtpproxy_stream2uas",
            params: &[
                (Param::Str, false),
                (Param::Int, false),
                (Param::Int, true),
                (Param::Var, true),
            ],
            routes: STREAM,
            run: rtpproxy_stream2uas,
        },
        FnSpec {
            name: "rtpproxy_stop_stream2uac",
            params: SET_SOCK,
            routes: STREAM,
            run: rtpproxy_stop_stream2uac,
        },
        FnSpec {
            name: "rtpproxy_stop_stream2uas",
            params: SET_SOCK,
            routes: STREAM,
            run: rtpproxy_stop_stream2uas,
        },
    ],
    params: &[
        ("rtpproxy_sock", ParamType::Str),
        ("rtpproxy_disable_tout", ParamType::Int),
        ("rtpproxy_retr", ParamType::Int),
        ("rtpproxy_timeout", ParamType::Str),
        ("rtpproxy_autobridge", ParamType::Int),
        ("default_set", ParamType::Int),
        ("nortpproxy_str", ParamType::Str),
        ("db_url", ParamType::Str),
        ("db_table", ParamType::Str),
        ("rtpp_socket_col", ParamType::Str),
        ("set_id_col", ParamType::Str),
        ("rtpp_notify_socket", ParamType::Str),
        ("generated_sdp_port_min", ParamType::Int),
        ("generated_sdp_port_max", ParamType::Int),
        ("generated_sdp_media_ip", ParamType::Str),
    ],
};

/// Where the nodes come from when `db_url` is set.
struct Table {
    db: Arc<dyn db::Connection>,
    table: String,
    socket_col: String,
    set_col: String,
}

struct Config {
    sets: RwLock<Arc<Vec<Set>>>,
    timing: Timing,
    default_set: i64,
    /// `nortpproxy_str`, line end removed; empty: no mark.
    mark: String,
    table: Option<Table>,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

fn config() -> Option<&'static Config> {
    CONFIG.get()
}

impl Config {
    fn sets(&self) -> Arc<Vec<Set>> {
        Arc::clone(
            &self
                .sets
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl Table {
    /// The nodes of the table, ordered by set.
    fn load(&self) -> Result<Vec<Set>, String> {
        let rows = self
            .db
            .query(&self.table, &[&self.socket_col, &self.set_col], &[])
            .map_err(|e| format!("rtpproxy: cannot read {}: {e}", self.table))?;
        let mut values: Vec<(i64, String)> = rows
            .iter()
            .filter_map(|r| {
                let sock = r.first().and_then(db::Value::as_text)?;
                let set = r.get(1).and_then(db::Value::as_int).unwrap_or(0);
                Some((set, sock))
            })
            .collect();
        values.sort_by_key(|(set, _)| *set);
        nodes::parse_sets(&values).map_err(|e| format!("rtpproxy: {e}"))
    }
}

/// Reads the parameters and the nodes when the script loads the module.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("rtpproxy") {
        return Ok(());
    }
    let int = |n: &str, d: i64| script.modparam_int("rtpproxy", n).unwrap_or(d);
    let text = |n: &str| script.modparam_str("rtpproxy", n);
    let timeout = match text("rtpproxy_timeout") {
        None => Duration::from_secs(1),
        Some(t) => {
            let secs: f64 = t
                .trim()
                .parse()
                .map_err(|_| format!("rtpproxy: bad rtpproxy_timeout \"{t}\""))?;
            if !(secs > 0.0 && secs < 3600.0) {
                return Err(format!("rtpproxy: bad rtpproxy_timeout \"{t}\""));
            }
            Duration::from_secs_f64(secs)
        }
    };
    let timing = Timing {
        timeout,
        retries: u32::try_from(int("rtpproxy_retr", 5).max(1)).unwrap_or(5),
        disable_for: Duration::from_secs(
            u64::try_from(int("rtpproxy_disable_tout", 60).max(0)).unwrap_or(60),
        ),
    };
    if text("rtpp_notify_socket").is_some_and(|s| !s.trim().is_empty()) {
        return Err(
            "rtpproxy: rtpp_notify_socket (timeout notifications) is not supported by rsips yet"
                .into(),
        );
    }
    if int("rtpproxy_autobridge", 0) != 0 {
        return Err("rtpproxy: rtpproxy_autobridge is not supported by rsips yet".into());
    }
    let default_set = int("default_set", 0);
    let mark = text("nortpproxy_str")
        .unwrap_or_else(|| "a=nortpproxy:yes".to_owned())
        .trim_end_matches(['\r', '\n'])
        .to_owned();
    let (table, sets) = match text("db_url") {
        Some(url) => {
            let db = db::open_for("rtpproxy", &url, |m| script.loads(m), options)?;
            let t = Table {
                db,
                table: text("db_table").unwrap_or_else(|| "rtpproxy_sockets".into()),
                socket_col: text("rtpp_socket_col").unwrap_or_else(|| "rtpproxy_sock".into()),
                set_col: text("set_id_col").unwrap_or_else(|| "set_id".into()),
            };
            let sets = t.load()?;
            (Some(t), sets)
        }
        None => {
            let values = script
                .modparam_strs("rtpproxy", "rtpproxy_sock")
                .iter()
                .map(|v| nodes::split_set(v, default_set))
                .collect::<Result<Vec<_>, String>>()
                .map_err(|e| format!("rtpproxy: {e}"))?;
            (
                None,
                nodes::parse_sets(&values).map_err(|e| format!("rtpproxy: {e}"))?,
            )
        }
    };
    if sets.iter().all(|s| s.nodes.is_empty()) {
        return Err("rtpproxy: no rtpproxy set specified (rtpproxy_sock or db_url)".into());
    }
    engine::hooks::set_media_hooks(Box::new(engage::Engagement));
    let _ = CONFIG.set(Config {
        sets: RwLock::new(Arc::new(sets)),
        timing,
        default_set,
        mark,
        table,
    });
    Ok(())
}

fn text_arg(args: &[Value], i: usize) -> Option<String> {
    args.get(i)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
}

/// The set a call names (or the default one).
fn set_of<'a>(cfg: &Config, sets: &'a [Set], args: &[Value], i: usize) -> Option<&'a Set> {
    let id = args
        .get(i)
        .and_then(Value::as_int)
        .unwrap_or(cfg.default_set);
    sets.iter().find(|s| s.id == id)
}

fn fail(f: &mut FnCtx<'_>, what: &str, why: &str) -> i64 {
    f.log.log(-1, &format!("rtpproxy: {what}: {why}\n"));
    -1
}

/// (Call-ID, From tag, To tag) of the message.
fn ids(f: &FnCtx<'_>) -> Result<(String, String, String), &'static str> {
    ids_of(&f.msg.msg)
}

fn ids_of(m: &sip::SipMessage) -> Result<(String, String, String), &'static str> {
    let call_id = m.call_id().map_err(|_| "no Call-ID")?.to_owned();
    let from_tag = m
        .from_tag()
        .ok()
        .flatten()
        .filter(|t| !t.is_empty())
        .ok_or("no From tag")?
        .to_owned();
    let to_tag = m.to_tag().ok().flatten().unwrap_or("").to_owned();
    Ok((call_id, from_tag, to_tag))
}

/// `rtpproxy_offer([flags[, ip[, set[, $sock[, $ret[, $body[, bind_local]]]]]]])`.
pub fn rtpproxy_offer(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    offer_answer(f, args, true)
}

/// `rtpproxy_answer(…)`: as the offer, for the other side.
pub fn rtpproxy_answer(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    offer_answer(f, args, false)
}

fn offer_answer(f: &mut FnCtx<'_>, args: &[Value], offer: bool) -> i64 {
    let a = MediaArgs {
        flags: text_arg(args, 0).unwrap_or_default(),
        ip: text_arg(args, 1).filter(|s| !s.is_empty()),
        set: args.get(2).and_then(Value::as_int),
        body: args
            .get(5)
            .filter(|v| !v.is_null())
            .map(|v| v.to_text().into_owned()),
        bind_local: text_arg(args, 6).filter(|s| !s.is_empty()),
    };
    let mut out = MediaOut::default();
    let code = media(f.msg, f.log, &a, offer, &mut out);
    if let Some(url) = out.node {
        f.set_output(3, Value::from(url));
    }
    if let Some(l) = out.ret {
        f.set_output(4, Value::from(l));
    }
    if let Some(b) = out.body {
        f.set_output(5, Value::from(b));
    }
    code
}

/// What offer and answer are asked (their script arguments, or what engage kept).
#[derive(Debug, Clone, Default)]
struct MediaArgs {
    flags: String,
    ip: Option<String>,
    set: Option<i64>,
    /// The SDP to use instead of the message's (`body_var`); the result goes to
    /// [`MediaOut::body`].
    body: Option<String>,
    bind_local: Option<String>,
}

/// What offer and answer give back beside the rewritten message.
#[derive(Debug, Default)]
struct MediaOut {
    node: Option<String>,
    ret: Option<String>,
    body: Option<String>,
}

fn log_fail(log: &mut dyn engine::Log, what: &str, why: &str) -> i64 {
    log.log(-1, &format!("rtpproxy: {what}: {why}\n"));
    -1
}

/// Offer (`U`) or answer (`L`) for the SDP of `msg` (or `a.body`).
fn media(
    msg: &mut MsgCtx,
    log: &mut dyn engine::Log,
    a: &MediaArgs,
    offer: bool,
    out: &mut MediaOut,
) -> i64 {
    let what = if offer {
        "rtpproxy_offer"
    } else {
        "rtpproxy_answer"
    };
    let Some(cfg) = config() else {
        return log_fail(log, what, "the module is not configured");
    };
    let flags = Flags::parse(&a.flags);
    let from_var = a.body.is_some();
    let body = if let Some(b) = &a.body {
        b.clone()
    } else {
        match sipmsgops::current_sdp(msg) {
            sipmsgops::SdpBody::Sdp(s) => s,
            // A body with no SDP in it: nothing to relay (OpenSIPS returns success).
            sipmsgops::SdpBody::NotSdp => return 1,
            sipmsgops::SdpBody::Empty => return log_fail(log, what, "the message has no body"),
        }
    };
    if offer::is_marked(&body, &cfg.mark) && !flags.force {
        log.log(
            3,
            &format!("rtpproxy: {what}: the SDP already went through an RTPProxy\n"),
        );
        return -1;
    }
    let (call_id, from_tag, to_tag) = match ids_of(&msg.msg) {
        Ok(t) => t,
        Err(e) => return log_fail(log, what, e),
    };
    let request = msg.msg.is_request();
    let mut swap = offer != request;
    if flags.lookup && offer {
        swap = !swap;
    }
    let (tag1, tag2) = if swap {
        let to = if to_tag.is_empty() {
            if !flags.lookup {
                return log_fail(log, what, "the message has no To tag");
            }
            "dummy".to_owned()
        } else {
            to_tag
        };
        (to, from_tag)
    } else {
        (from_tag, to_tag)
    };
    let letter = if offer && !flags.lookup { 'U' } else { 'L' };
    let sdp = sip::sdp::Sdp::parse(&body);
    let streams = match offer::streams(&sdp) {
        Ok(s) => s,
        Err(e) => return log_fail(log, what, &e),
    };
    let sets = cfg.sets();
    let set_id = a.set.unwrap_or(cfg.default_set);
    let Some(set) = sets.iter().find(|s| s.id == set_id) else {
        return log_fail(log, what, "no such rtpproxy set");
    };
    let source = msg.receipt.as_ref().map(|r| r.source.ip());
    let local = msg.receipt.as_ref().map(|r| r.local.ip());
    let forced_ip = a.ip.clone();
    let bind_local = a.bind_local.clone();
    let mut relayed = Vec::with_capacity(streams.len());
    let mut node_url = None;
    let mut last = None;
    for s in &streams {
        let media_ip = match (flags.trust_address, source) {
            (false, Some(ip)) => ip.to_string(),
            _ => s.address.clone(),
        };
        let v6 = media_ip.contains(':');
        // A node that does not answer, or answers E7–E10, gives an offer to the next one.
        let mut tries = set.nodes.len().max(1);
        let answer = loop {
            let Some(node) = set.select(&call_id, &cfg.timing) else {
                return log_fail(log, what, "no RTPProxy of the set is available");
            };
            let cmd = command(
                letter,
                &flags,
                v6,
                bind_local.as_deref(),
                node,
                s,
                &call_id,
                &media_ip,
                &tag1,
                &tag2,
            );
            let reply = match node.command(&cmd, &cfg.timing) {
                Answer::Text(t) => offer::parse_reply(&t),
                Answer::Silent => Reply::Error(0),
            };
            tries -= 1;
            match reply {
                Reply::Error(code @ (0 | 7..=10)) if offer && tries > 0 => {
                    if code != 0 {
                        node.disable(&cfg.timing);
                    }
                    continue;
                }
                r => break (node, r),
            }
        };
        let (node, reply) = answer;
        node_url = Some(node.url.clone());
        let (port, reply_ip, reply_v6) = match reply {
            Reply::Media { port, ip, ipv6 } => (port, ip, ipv6),
            Reply::Error(0) => {
                out.node = Some(node.url.clone());
                return log_fail(log, what, &format!("{} does not answer", node.url));
            }
            Reply::Error(code) => {
                if (7..=10).contains(&code) {
                    node.disable(&cfg.timing);
                }
                out.node = Some(node.url.clone());
                return log_fail(log, what, &format!("{} answered error E{code}", node.url));
            }
            Reply::Bad(t) => {
                out.node = Some(node.url.clone());
                if flags.lookup && t.trim_start().starts_with('0') {
                    return -1;
                }
                return log_fail(log, what, &format!("{} answered \"{t}\"", node.url));
            }
        };
        let ip = if offer::is_null(&s.address) {
            if reply_v6 { "::" } else { "0.0.0.0" }.to_owned()
        } else if let Some(ip) = &forced_ip {
            ip.clone()
        } else if let Some(adv) = &node.advertised {
            adv.clone()
        } else if let Some(ip) = reply_ip.filter(|ip| !offer::is_null(ip)) {
            ip
        } else if let Some(l) = local {
            l.to_string()
        } else {
            return log_fail(log, what, "no address to put in the SDP");
        };
        let ipv6 = ip.contains(':');
        last = Some(if ipv6 {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        });
        relayed.push(Relayed {
            media: s.media,
            port,
            ip,
            ipv6,
        });
    }
    out.node = node_url;
    out.ret = last;
    if flags.keep_sdp {
        return 1;
    }
    let mut new_sdp = offer::rewrite(&sdp, &relayed, &flags);
    if !cfg.mark.is_empty() && !offer::is_marked(&new_sdp, &cfg.mark) {
        new_sdp = offer::add_mark(&new_sdp, &cfg.mark);
    }
    if from_var {
        out.body = Some(new_sdp);
    } else if !sipmsgops::replace_sdp(msg, &new_sdp) {
        return log_fail(log, what, "the SDP could not be replaced");
    }
    1
}

/// `U`/`L` with its modifiers, for one stream.
#[allow(clippy::too_many_arguments)] // the fields of one protocol line
fn command(
    letter: char,
    flags: &Flags,
    v6: bool,
    bind_local: Option<&str>,
    node: &Node,
    s: &offer::Stream,
    call_id: &str,
    ip: &str,
    tag1: &str,
    tag2: &str,
) -> String {
    let mut c = String::with_capacity(96);
    c.push(letter);
    c.push_str(&flags.modifiers);
    if v6 {
        c.push('6');
    }
    if let Some(b) = bind_local {
        c.push('l');
        c.push_str(b);
    }
    if let Some(z) = &flags.repacketize {
        if node.has(nodes::REPACK) {
            c.push('Z');
            c.push_str(z);
        } else {
            log::warn!("rtpproxy: {} cannot repacketize: flag z ignored", node.url);
        }
    }
    if s.rtp && node.has(nodes::CODECS) && !s.payloads.is_empty() {
        c.push('c');
        c.push_str(&s.payloads.join(","));
    }
    let n = s.number;
    c.push_str(&format!(" {call_id} {ip} {} {tag1};{n}", s.port));
    if !tag2.is_empty() {
        c.push_str(&format!(" {tag2};{n}"));
    }
    c
}

/// The node for this message's call in the set parameter `i` names (its URL into `sock_var`).
fn node_for<'s>(
    f: &mut FnCtx<'_>,
    cfg: &Config,
    sets: &'s [Set],
    args: &[Value],
    i: usize,
    call_id: &str,
) -> Option<&'s Node> {
    let set = set_of(cfg, sets, args, i)?;
    let node = set.select(call_id, &cfg.timing)?;
    f.set_output(i + 1, Value::from(node.url.clone()));
    Some(node)
}

/// `rtpproxy_unforce([set[, $sock]])`: `D <callid> <from tag> [<to tag>]`.
pub fn rtpproxy_unforce(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(cfg) = config() else {
        return fail(f, "rtpproxy_unforce", "the module is not configured");
    };
    let (call_id, from_tag, to_tag) = match ids(f) {
        Ok(t) => t,
        Err(e) => return fail(f, "rtpproxy_unforce", e),
    };
    let sets = cfg.sets();
    let Some(node) = node_for(f, cfg, &sets, args, 0, &call_id) else {
        return fail(f, "rtpproxy_unforce", "no RTPProxy of the set is available");
    };
    let mut cmd = format!("D {call_id} {from_tag}");
    if !to_tag.is_empty() {
        cmd.push(' ');
        cmd.push_str(&to_tag);
    }
    // As in OpenSIPS, the outcome of the delete does not change the result.
    if let Answer::Text(t) = node.command(&cmd, &cfg.timing)
        && t.starts_with('E')
    {
        f.log
            .log(3, &format!("rtpproxy_unforce: {} answered {t}\n", node.url));
    }
    1
}

/// The tags in the order a command about the caller's side wants them: in a reply, the To
/// tag first.
fn ordered_tags(f: &FnCtx<'_>, from_tag: String, to_tag: String) -> (String, String) {
    if f.msg.msg.is_request() {
        (from_tag, to_tag)
    } else {
        (to_tag, from_tag)
    }
}

/// `rtpproxy_stats($up, $down, $sent, $fail[, set[, $sock]])`: the session's packet counters
/// (`Q`): packets from the caller and from the callee, relayed and dropped.
pub fn rtpproxy_stats(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(cfg) = config() else {
        return fail(f, "rtpproxy_stats", "the module is not configured");
    };
    let (call_id, from_tag, to_tag) = match ids(f) {
        Ok(t) => t,
        Err(e) => return fail(f, "rtpproxy_stats", e),
    };
    let sets = cfg.sets();
    if set_of(cfg, &sets, args, 4).is_none() {
        return 0;
    }
    let Some(node) = node_for(f, cfg, &sets, args, 4, &call_id) else {
        return fail(f, "rtpproxy_stats", "no RTPProxy of the set is available");
    };
    if !node.has(nodes::STATS) {
        return fail(
            f,
            "rtpproxy_stats",
            &format!("{} does not support statistics queries", node.url),
        );
    }
    let (t1, t2) = ordered_tags(f, from_tag, to_tag);
    let mut cmd = format!("Q {call_id} {t1};1");
    if !t2.is_empty() {
        cmd.push_str(&format!(" {t2};1"));
    }
    let Answer::Text(t) = node.command(&cmd, &cfg.timing) else {
        return -1;
    };
    if let Some(code) = t.strip_prefix('E') {
        return -code.trim().parse::<i64>().unwrap_or(1);
    }
    // ttl npkts_ina npkts_ino nrelayed ndropped
    let n: Vec<i64> = t
        .split_whitespace()
        .map(|w| w.parse::<i64>())
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    let [_, up, down, sent, dropped, ..] = n.as_slice() else {
        return fail(
            f,
            "rtpproxy_stats",
            &format!("{} answered \"{t}\"", node.url),
        );
    };
    for (i, v) in [*up, *down, *sent, *dropped].into_iter().enumerate() {
        f.set_output(i, Value::Int(v));
    }
    1
}

/// `rtpproxy_start_recording([set[, $sock[, flags[, destination[, stream]]]]])`: `R` (the
/// proxy's own recording directory), or `C` per stream to a destination. Needs a node that
/// can record; in a reply, the To tag.
pub fn rtpproxy_start_recording(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let what = "rtpproxy_start_recording";
    let Some(cfg) = config() else {
        return fail(f, what, "the module is not configured");
    };
    let (call_id, from_tag, to_tag) = match ids(f) {
        Ok(t) => t,
        Err(e) => return fail(f, what, e),
    };
    let sets = cfg.sets();
    let Some(node) = node_for(f, cfg, &sets, args, 0, &call_id) else {
        return fail(f, what, "no RTPProxy of the set is available");
    };
    if !node.has(nodes::RECORD) {
        return fail(f, what, &format!("{} cannot record", node.url));
    }
    if !f.msg.msg.is_request() && to_tag.is_empty() {
        return fail(f, what, "the reply has no To tag");
    }
    let (t1, t2) = ordered_tags(f, from_tag, to_tag);
    let flags = text_arg(args, 2).unwrap_or_default();
    let cmds: Vec<String> = match text_arg(args, 3).filter(|d| !d.is_empty()) {
        None => vec![
            format!("R{flags} {call_id} {t1} {t2}")
                .trim_end()
                .to_owned(),
        ],
        Some(dest) => {
            let streams = args
                .get(4)
                .and_then(Value::as_int)
                .filter(|n| *n > 0)
                .map_or(1..=1, |n| n..=n);
            streams
                .map(|n| format!("C{flags} {call_id} {dest} {t1};{n} {t2};{n}"))
                .collect()
        }
    };
    // As in OpenSIPS, what the proxy answers does not change the result (it is logged).
    for cmd in cmds {
        if let Answer::Text(t) = node.command(&cmd, &cfg.timing)
            && t.starts_with('E')
        {
            f.log.log(
                -1,
                &format!("rtpproxy: {what}: {} answered {t}\n", node.url),
            );
        }
    }
    1
}

/// `P<count> <callid> <prompt> session <t1>;1 <t2>;1` (`play`: a prompt played to one side)
/// or `S <callid> <t1>;1 <t2>;1` (it stops). `t1` is the tag of the side that hears it.
fn prompt(f: &mut FnCtx<'_>, args: &[Value], to_caller: bool, play: bool) -> i64 {
    let what = match (play, to_caller) {
        (true, true) => "rtpproxy_stream2uac",
        (true, false) => "rtpproxy_stream2uas",
        (false, true) => "rtpproxy_stop_stream2uac",
        (false, false) => "rtpproxy_stop_stream2uas",
    };
    let Some(cfg) = config() else {
        return fail(f, what, "the module is not configured");
    };
    let (call_id, from_tag, to_tag) = match ids(f) {
        Ok(t) => t,
        Err(e) => return fail(f, what, e),
    };
    let (t1, t2) = match (to_caller, to_tag.is_empty()) {
        (true, _) => (from_tag, to_tag),
        (false, true) => return fail(f, what, "the message has no To tag"),
        (false, false) => (to_tag, from_tag),
    };
    // The set and $sock follow the prompt and count when playing.
    let set_arg = if play { 2 } else { 0 };
    let sets = cfg.sets();
    let Some(node) = node_for(f, cfg, &sets, args, set_arg, &call_id) else {
        return fail(f, what, "no RTPProxy of the set is available");
    };
    if !node.has(nodes::CODECS) {
        return fail(f, what, &format!("{} cannot play prompts", node.url));
    }
    let mut cmd = if play {
        let name = text_arg(args, 0).unwrap_or_default();
        let count = args.get(1).and_then(Value::as_int).unwrap_or(1);
        format!("P{count} {call_id} {name} session {t1};1")
    } else {
        format!("S {call_id} {t1};1")
    };
    if !t2.is_empty() {
        cmd.push_str(&format!(" {t2};1"));
    }
    match node.command(&cmd, &cfg.timing) {
        Answer::Text(t) if !t.starts_with('E') => 1,
        Answer::Text(t) => fail(f, what, &format!("{} answered {t}", node.url)),
        Answer::Silent => -1,
    }
}

pub fn rtpproxy_stream2uac(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    prompt(f, args, true, true)
}

pub fn rtpproxy_stream2uas(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    prompt(f, args, false, true)
}

pub fn rtpproxy_stop_stream2uac(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    prompt(f, args, true, false)
}

pub fn rtpproxy_stop_stream2uas(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    prompt(f, args, false, false)
}
