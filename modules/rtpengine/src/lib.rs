//! The OpenSIPS `rtpengine` module: media relaying through the Sipwise rtpengine daemon over
//! its "ng" control protocol (bencoded dictionaries over UDP, each behind a cookie).
//! `rtpengine_offer` / `rtpengine_answer` send the message's SDP and put back the one the
//! daemon rewrote; `rtpengine_delete` ends the session; `rtpengine_manage` picks among them
//! by method and reply. The call's media is controlled with `rtpengine_start/stop/
//! pause_recording`, `rtpengine_play_media`/`stop_media` (the file's duration and the last
//! frame position into variables), `rtpengine_block/unblock_media`, `_block/unblock_dtmf`,
//! `rtpengine_start/stop_forwarding` and `rtpengine_play_dtmf`; the whole-call ones name no
//! tag unless the flags say `directional`, as OpenSIPS sends them. Sets of daemons (`rtpengine_sock`, `rtpengine_use_set`), retries
//! (`rtpengine_retr`, `rtpengine_tout`) and a daemon that stops answering taken out for
//! `rtpengine_disable_tout` seconds.
#![forbid(unsafe_code)]

pub mod bencode;

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bencode::Bencode;
use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};

const OFFER_PARAMS: &[(Param, bool)] = &[
    (Param::Str, true),
    (Param::Var, true),
    (Param::Var, true),
    (Param::Str, true),
];

/// `([flags[, $sock]])`: the commands that only need the call's ids.
const FLAGS_SOCK: &[(Param, bool)] = &[(Param::Str, true), (Param::Var, true)];

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "rtpengine",
    functions: &[
        FnSpec {
            name: "rtpengine_offer",
            params: OFFER_PARAMS,
            routes: Routes::ALL,
            run: rtpengine_offer,
        },
        FnSpec {
            name: "rtpengine_answer",
            params: OFFER_PARAMS,
            routes: Routes::ALL,
            run: rtpengine_answer,
        },
        FnSpec {
            name: "rtpengine_manage",
            params: OFFER_PARAMS,
            routes: Routes::ALL,
            run: rtpengine_manage,
        },
        FnSpec {
            name: "rtpengine_delete",
            params: &[(Param::Str, true), (Param::Var, true)],
            routes: Routes::ALL,
            run: rtpengine_delete,
        },
        FnSpec {
            name: "rtpengine_start_recording",
            params: FLAGS_SOCK,
            routes: Routes::ALL,
            run: rtpengine_start_recording,
        },
        FnSpec {
            name: "rtpengine_stop_recording",
            params: FLAGS_SOCK,
            routes: Routes::ALL,
            run: rtpengine_stop_recording,
        },
        FnSpec {
            name: "rtpengine_pause_recording",
            params: FLAGS_SOCK,
            routes: Routes::ALL,
            run: rtpengine_pause_recording,
        },
        FnSpec {
            name: "rtpengine_play_media",
            params: &[(Param::Str, false), (Param::Var, true), (Param::Var, true)],
            routes: Routes::ALL,
            run: rtpengine_play_media,
        },
        FnSpec {
            name: "rtpengine_stop_media",
            params: &[(Param::Str, true), (Param::Var, true), (Param::Var, true)],
            routes: Routes::ALL,
            run: rtpengine_stop_media,
        },
        FnSpec {
            name: "rtpengine_block_media",
            params: FLAGS_SOCK,
            routes: Routes::ALL,
            run: rtpengine_block_media,
        },
        FnSpec {
            name: "rtpengine_unblock_media",
            params: FLAGS_SOCK,
            routes: Routes::ALL,
            run: rtpengine_unblock_media,
        },
        FnSpec {
            name: "rtpengine_block_dtmf",
            params: FLAGS_SOCK,
            routes: Routes::ALL,
            run: rtpengine_block_dtmf,
        },
        FnSpec {
            name: "rtpengine_unblock_dtmf",
            params: FLAGS_SOCK,
            routes: Routes::ALL,
            run: rtpengine_unblock_dtmf,
        },
        FnSpec {
            name: "rtpengine_start_forwarding",
            params: FLAGS_SOCK,
            routes: Routes::ALL,
            run: rtpengine_start_forwarding,
        },
        FnSpec {
            name: "rtpengine_stop_forwarding",
            params: FLAGS_SOCK,
            routes: Routes::ALL,
            run: rtpengine_stop_forwarding,
        },
        FnSpec {
            name: "rtpengine_play_dtmf",
            params: &[(Param::Str, false), (Param::Str, true), (Param::Var, true)],
            routes: Routes::ALL,
            run: rtpengine_play_dtmf,
        },
        FnSpec {
            name: "rtpengine_use_set",
            params: &[(Param::Int, false)],
            routes: Routes::ALL,
            run: rtpengine_use_set,
        },
    ],
    params: &[
        ("rtpengine_sock", ParamType::Str),
        ("db_url", ParamType::Str),
        ("db_table", ParamType::Str),
        ("socket_col", ParamType::Str),
        ("set_id_col", ParamType::Str),
        ("rtpengine_disable_tout", ParamType::Int),
        ("rtpengine_retr", ParamType::Int),
        ("rtpengine_tout", ParamType::Int),
        ("rtpengine_timer_interval", ParamType::Int),
        ("extra_id_pv", ParamType::Str),
        ("setid_avp", ParamType::Str),
        ("error_pv", ParamType::Str),
        ("notification_sock", ParamType::Str),
        ("ping_enabled", ParamType::Int),
    ],
};

/// One daemon.
#[derive(Debug)]
struct Daemon {
    /// As configured (`udp:host:port`), for `$var(sock)` and messages.
    text: String,
    addr: Option<SocketAddr>,
    /// Taken out until then after it stopped answering.
    disabled_until: Mutex<Option<Instant>>,
}

#[derive(Debug)]
struct Config {
    /// (set id, daemons).
    sets: Vec<(i64, Vec<Daemon>)>,
    timeout: Duration,
    retries: u32,
    disable_for: Duration,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// `udp:host:port` (or `host:port`, `udp6:…`) as an address.
fn daemon(text: &str) -> Daemon {
    let t = text.trim();
    let hostport = t
        .strip_prefix("udp:")
        .or_else(|| t.strip_prefix("udp6:"))
        .unwrap_or(t)
        .split('=')
        .next()
        .unwrap_or("");
    let addr = hostport.to_socket_addrs().ok().and_then(|mut a| a.next());
    if addr.is_none() {
        log::error!("rtpengine: cannot resolve the daemon \"{t}\"");
    }
    Daemon {
        text: t.to_owned(),
        addr,
        disabled_until: Mutex::new(None),
    }
}

/// Reads the daemons (`"[set ==] udp:host:port …"`, repeatable) when the script loads the
/// module.
/// The version of OpenSIPS' `rtpengine` table (id, socket, set_id).
const TABLE_VERSION: i64 = 1;

/// The `rtpengine_sock` values a database gives (`db_url`): one per row, `set_id==socket`
/// (a socket cell may hold several daemons, blank-separated, as the parameter does).
fn sockets_from_db(script: &Script, options: &db::Options) -> Result<Vec<String>, String> {
    let Some(url) = script.modparam_str("rtpengine", "db_url") else {
        return Ok(Vec::new());
    };
    let param = |n: &str, d: &str| {
        script
            .modparam_str("rtpengine", n)
            .unwrap_or_else(|| d.to_owned())
    };
    let (table, socket_col, set_col) = (
        param("db_table", "rtpengine"),
        param("socket_col", "socket"),
        param("set_id_col", "set_id"),
    );
    let conn = db::open_for("rtpengine", &url, |m| script.loads(m), options)?;
    db::check_version(conn.as_ref(), &table, TABLE_VERSION)
        .map_err(|e| format!("rtpengine: table `{table}`: {e}"))?;
    let rows = conn
        .query(&table, &[socket_col.as_str(), set_col.as_str()], &[])
        .map_err(|e| format!("rtpengine: cannot read table `{table}`: {e}"))?;
    rows.iter()
        .map(|r| {
            let socket = r
                .first()
                .and_then(db::Value::as_text)
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| format!("rtpengine: a row of `{table}` has no socket"))?;
            let set = r.get(1).and_then(db::Value::as_int).unwrap_or(0);
            Ok(format!("{set}=={socket}"))
        })
        .collect()
}

pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("rtpengine") {
        return Ok(());
    }
    let mut sets: Vec<(i64, Vec<Daemon>)> = Vec::new();
    let mut socks = script.modparam_strs("rtpengine", "rtpengine_sock");
    socks.extend(sockets_from_db(script, options)?);
    for value in socks {
        let (set, list) = match value.split_once("==") {
            Some((id, rest)) => (
                id.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("rtpengine: bad set id in \"{value}\""))?,
                rest,
            ),
            None => (0, value.as_str()),
        };
        let daemons: Vec<Daemon> = list.split_whitespace().map(daemon).collect();
        match sets.iter_mut().find(|(id, _)| *id == set) {
            Some((_, d)) => d.extend(daemons),
            None => sets.push((set, daemons)),
        }
    }
    if sets.is_empty() {
        return Err(
            "rtpengine: no rtpengine_sock and no row in its db_url table: the module has no \
             daemon to talk to"
                .into(),
        );
    }
    let int = |n: &str, d: i64| script.modparam_int("rtpengine", n).unwrap_or(d).max(0);
    let _ = CONFIG.set(Config {
        sets,
        timeout: Duration::from_secs(int("rtpengine_tout", 1).max(1) as u64),
        retries: int("rtpengine_retr", 5).max(1) as u32,
        disable_for: Duration::from_secs(int("rtpengine_disable_tout", 60) as u64),
    });
    Ok(())
}

thread_local! {
    /// (message, set) chosen by `rtpengine_use_set`.
    static USE_SET: std::cell::Cell<(u64, i64)> = const { std::cell::Cell::new((0, 0)) };
}

/// `rtpengine_use_set(id)`: the set this message's next commands go to.
pub fn rtpengine_use_set(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(set) = args.first().and_then(Value::as_int) else {
        return -1;
    };
    if !CONFIG
        .get()
        .is_some_and(|c| c.sets.iter().any(|(id, _)| *id == set))
    {
        return -1;
    }
    let id = f.msg.id;
    USE_SET.with(|s| s.set((id, set)));
    1
}

/// Sends one command to a daemon of the set and returns its answer; a daemon that does not
/// answer within the retries is taken out and the next one is tried.
fn call(set: i64, req: &Bencode) -> Result<(Bencode, String), String> {
    static COOKIE: AtomicU64 = AtomicU64::new(0);
    let cfg = CONFIG.get().ok_or("rtpengine is not configured")?;
    let daemons = cfg
        .sets
        .iter()
        .find(|(id, _)| *id == set)
        .map(|(_, d)| d)
        .ok_or_else(|| format!("no rtpengine set {set}"))?;
    let cookie = format!(
        "{}_{}",
        std::process::id(),
        COOKIE.fetch_add(1, Ordering::Relaxed)
    );
    let mut packet = format!("{cookie} ").into_bytes();
    req.encode(&mut packet);
    for d in daemons {
        let Some(addr) = d.addr else { continue };
        {
            let mut off = d
                .disabled_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match *off {
                Some(t) if Instant::now() < t => continue,
                _ => *off = None,
            }
        }
        match exchange(addr, &packet, &cookie, cfg) {
            Ok(answer) => return Ok((answer, d.text.clone())),
            Err(e) => {
                log::error!(
                    "rtpengine: {}: {e}; disabled for {:?}",
                    d.text,
                    cfg.disable_for
                );
                *d.disabled_until
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Instant::now() + cfg.disable_for);
            }
        }
    }
    Err("no rtpengine daemon answered".into())
}

fn exchange(
    addr: SocketAddr,
    packet: &[u8],
    cookie: &str,
    cfg: &Config,
) -> Result<Bencode, String> {
    let local: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().map_err(|_| "address")?
    } else {
        "[::]:0".parse().map_err(|_| "address")?
    };
    let sock = UdpSocket::bind(local).map_err(|e| e.to_string())?;
    sock.connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(cfg.timeout))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65_536];
    for _ in 0..cfg.retries {
        sock.send(packet).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + cfg.timeout;
        while Instant::now() < deadline {
            let Ok(n) = sock.recv(&mut buf) else { break };
            let reply = &buf[..n];
            // Answers to an earlier try carry another cookie: skip them.
            let Some(body) = reply.strip_prefix(format!("{cookie} ").as_bytes()) else {
                continue;
            };
            return Bencode::decode(body).map_err(|e| format!("a bad answer: {e}"));
        }
    }
    Err(format!("no answer after {} tries", cfg.retries))
}

/// The flags argument as the ng dictionary's entries (OpenSIPS' translation: `replace-X`,
/// `rtcp-mux-X`, `SDES-X`, `direction=X` go to their lists, `transcode-X`/`codec-strip-X`/
/// `codec-mask-X` into `codec`, transport protocols to `transport-protocol`, other
/// `key=value` as they are, bare words to `flags`).
fn flag_dict(text: &str, dict: &mut BTreeMap<Vec<u8>, Bencode>) {
    let mut push = |key: &str, value: &str| {
        let entry = dict
            .entry(key.as_bytes().to_vec())
            .or_insert_with(|| Bencode::List(Vec::new()));
        if let Bencode::List(l) = entry {
            l.push(Bencode::str(value));
        }
    };
    let mut singles: Vec<(String, String)> = Vec::new();
    let mut codec: BTreeMap<Vec<u8>, Bencode> = BTreeMap::new();
    for token in text.split_whitespace() {
        let lower = token.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("replace-") {
            push("replace", v);
        } else if let Some(v) = lower.strip_prefix("rtcp-mux-") {
            push("rtcp-mux", v);
        } else if let Some(v) = token.strip_prefix("SDES-") {
            push("SDES", v);
        } else if let Some(v) = lower.strip_prefix("direction=") {
            push("direction", v);
        } else if let Some((kind, codec_name)) = [
            ("transcode-", "transcode"),
            ("codec-strip-", "strip"),
            ("codec-mask-", "mask"),
        ]
        .iter()
        .find_map(|(p, k)| token.strip_prefix(p).map(|c| (*k, c)))
        {
            let e = codec
                .entry(kind.as_bytes().to_vec())
                .or_insert_with(|| Bencode::List(Vec::new()));
            if let Bencode::List(l) = e {
                l.push(Bencode::str(codec_name));
            }
        } else if [
            "rtp/avp",
            "rtp/savp",
            "rtp/avpf",
            "rtp/savpf",
            "udp/tls/rtp/savp",
            "udp/tls/rtp/savpf",
        ]
        .contains(&lower.as_str())
        {
            singles.push(("transport-protocol".into(), token.to_owned()));
        } else if let Some((k, v)) = token.split_once('=') {
            singles.push((k.to_owned(), v.to_owned()));
        } else {
            push("flags", token);
        }
    }
    for (k, v) in singles {
        dict.insert(k.into_bytes(), Bencode::str(&v));
    }
    if !codec.is_empty() {
        dict.insert(b"codec".to_vec(), Bencode::Dict(codec));
    }
}

/// What a command needs of the message.
fn command(f: &FnCtx<'_>, name: &str, flags: &str, sdp: Option<String>) -> Result<Bencode, String> {
    let m = &f.msg.msg;
    let mut dict: BTreeMap<Vec<u8>, Bencode> = BTreeMap::new();
    flag_dict(flags, &mut dict);
    // Explicit ids among the flags win over the message's.
    let take = |dict: &mut BTreeMap<Vec<u8>, Bencode>, k: &str| match dict.remove(k.as_bytes()) {
        Some(Bencode::Bytes(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    };
    let call_id = take(&mut dict, "call-id")
        .or_else(|| m.call_id().ok().map(str::to_owned))
        .ok_or("no Call-ID")?;
    let from_tag = take(&mut dict, "from-tag")
        .or_else(|| m.from_tag().ok().flatten().map(str::to_owned))
        .ok_or("no From tag")?;
    let to_tag = take(&mut dict, "to-tag").or_else(|| m.to_tag().ok().flatten().map(str::to_owned));
    if let Some(which) = take(&mut dict, "via-branch") {
        let nth = match which.as_str() {
            "2" => 1,
            "auto" if !m.is_request() => 1,
            _ => 0,
        };
        if let Some(Ok(via)) = m.vias().nth(nth)
            && let Some(branch) = via.branch()
        {
            dict.insert(b"via-branch".to_vec(), Bencode::str(branch));
        }
    }
    dict.insert(b"command".to_vec(), Bencode::str(name));
    dict.insert(b"call-id".to_vec(), Bencode::str(&call_id));
    dict.insert(b"from-tag".to_vec(), Bencode::str(&from_tag));
    if let Some(t) = to_tag.filter(|t| !t.is_empty()) {
        dict.insert(b"to-tag".to_vec(), Bencode::str(&t));
    }
    if let Some(sdp) = sdp {
        dict.insert(b"sdp".to_vec(), Bencode::Bytes(sdp.into_bytes()));
    }
    if let Some(r) = &f.msg.receipt {
        let family = if r.source.is_ipv4() { "IP4" } else { "IP6" };
        dict.insert(
            b"received-from".to_vec(),
            Bencode::List(vec![
                Bencode::str(family),
                Bencode::str(&r.source.ip().to_string()),
            ]),
        );
    }
    Ok(Bencode::Dict(dict))
}

fn text_arg(args: &[Value], i: usize) -> Option<String> {
    args.get(i)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
}

fn chosen_set(f: &FnCtx<'_>) -> i64 {
    let (id, set) = USE_SET.with(std::cell::Cell::get);
    if id == f.msg.id { set } else { 0 }
}

/// offer / answer: the SDP out (the body, or the `body` argument), the daemon's SDP back
/// into the body (or into `$sdp` when given).
fn sdp_command(f: &mut FnCtx<'_>, args: &[Value], name: &str) -> i64 {
    let sdp = match text_arg(args, 3) {
        Some(b) => b,
        None => String::from_utf8_lossy(f.msg.msg.body()).into_owned(),
    };
    if sdp.trim().is_empty() {
        f.log
            .log(-1, &format!("rtpengine: {name}: the message has no SDP\n"));
        return -1;
    }
    let req = match command(f, name, &text_arg(args, 0).unwrap_or_default(), Some(sdp)) {
        Ok(r) => r,
        Err(e) => {
            f.log.log(-1, &format!("rtpengine: {name}: {e}\n"));
            return -1;
        }
    };
    let (answer, daemon) = match call(chosen_set(f), &req) {
        Ok(a) => a,
        Err(e) => {
            f.log.log(-1, &format!("rtpengine: {name}: {e}\n"));
            return -1;
        }
    };
    f.set_output(1, Value::from(daemon));
    if answer.get_str("result").as_deref() != Some("ok") {
        let why = answer
            .get_str("error-reason")
            .unwrap_or_else(|| "no reason given".into());
        f.log
            .log(-1, &format!("rtpengine: {name} refused: {why}\n"));
        return -1;
    }
    let Some(new_sdp) = answer.get_str("sdp") else {
        f.log
            .log(-1, &format!("rtpengine: {name}: the answer has no SDP\n"));
        return -1;
    };
    if f.output_count(2) > 0 {
        f.set_output(2, Value::from(new_sdp));
    } else {
        f.msg.edits.set_body(bytes::Bytes::from(new_sdp), None);
    }
    1
}

/// `rtpengine_offer([flags[, $sock[, $sdp[, body]]]])`.
pub fn rtpengine_offer(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    sdp_command(f, args, "offer")
}

/// `rtpengine_answer([flags[, $sock[, $sdp[, body]]]])`.
pub fn rtpengine_answer(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    sdp_command(f, args, "answer")
}

/// `rtpengine_delete([flags[, $sock]])`: the session ends.
pub fn rtpengine_delete(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let req = match command(f, "delete", &text_arg(args, 0).unwrap_or_default(), None) {
        Ok(r) => r,
        Err(e) => {
            f.log.log(-1, &format!("rtpengine: delete: {e}\n"));
            return -1;
        }
    };
    match call(chosen_set(f), &req) {
        Ok((answer, daemon)) => {
            f.set_output(1, Value::from(daemon));
            if answer.get_str("result").as_deref() == Some("ok") {
                1
            } else {
                -1
            }
        }
        Err(e) => {
            f.log.log(-1, &format!("rtpengine: delete: {e}\n"));
            -1
        }
    }
}

/// `rtpengine_manage(…)`: offer for an INVITE or UPDATE with SDP, answer for an ACK with SDP
/// or an SDP reply to them, delete for BYE, CANCEL and a failed INVITE.
pub fn rtpengine_manage(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let m = &f.msg.msg;
    let has_sdp = !m.body().is_empty();
    let cseq_method = m
        .cseq()
        .map(|c| c.method_str.to_owned())
        .unwrap_or_default();
    let action = if m.is_request() {
        match m.method_str().unwrap_or("") {
            "INVITE" | "UPDATE" if has_sdp => "offer",
            "ACK" if has_sdp => "answer",
            "BYE" | "CANCEL" => "delete",
            _ => return 1,
        }
    } else {
        let code = m.status().unwrap_or(0);
        match (code, cseq_method.as_str()) {
            (100..=299, "INVITE" | "UPDATE") if has_sdp => "answer",
            (300..=699, "INVITE") => "delete",
            _ => return 1,
        }
    };
    if action == "delete" {
        rtpengine_delete(f, args)
    } else {
        sdp_command(f, args, action)
    }
}

/// Which ids a command names besides the Call-ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The message's From tag (and To tag when it has one), as offer and delete send them.
    Tags,
    /// The whole call: no tag unless the flags ask for `directional` (then the From tag) or
    /// name the tags (OpenSIPS' media player, blocking and forwarding commands).
    Call,
}

/// Sends `name` with the flags argument `args[0]` (and `extra` entries); stores the daemon in
/// the variable `args[sock]`. The daemon's answer when it said ok.
fn simple_command(
    f: &mut FnCtx<'_>,
    args: &[Value],
    name: &str,
    scope: Scope,
    sock: usize,
    extra: &[(&str, String)],
) -> Option<Bencode> {
    let flags = text_arg(args, 0).unwrap_or_default();
    let directional = flags
        .split_whitespace()
        .any(|t| t.eq_ignore_ascii_case("directional"));
    let named = |k: &str| {
        flags
            .split_whitespace()
            .any(|t| t.to_ascii_lowercase().starts_with(&format!("{k}=")))
    };
    let (from_named, to_named) = (named("from-tag"), named("to-tag"));
    let mut req = match command(f, name, &flags, None) {
        Ok(r) => r,
        Err(e) => {
            f.log.log(-1, &format!("rtpengine: {name}: {e}\n"));
            return None;
        }
    };
    if let Bencode::Dict(dict) = &mut req {
        if scope == Scope::Call {
            if !directional && !from_named {
                dict.remove(b"from-tag".as_slice());
            }
            if !to_named {
                dict.remove(b"to-tag".as_slice());
            }
        }
        // `directional` tells us which tags to send; the daemon does not take it as a flag.
        if let Some(Bencode::List(l)) = dict.get_mut(b"flags".as_slice()) {
            l.retain(|t| !matches!(t, Bencode::Bytes(b) if b.eq_ignore_ascii_case(b"directional")));
            if l.is_empty() {
                dict.remove(b"flags".as_slice());
            }
        }
        for (k, v) in extra {
            dict.insert(k.as_bytes().to_vec(), Bencode::str(v));
        }
    }
    match call(chosen_set(f), &req) {
        Ok((answer, daemon)) => {
            f.set_output(sock, Value::from(daemon));
            if answer.get_str("result").as_deref() == Some("ok") {
                Some(answer)
            } else {
                let why = answer
                    .get_str("error-reason")
                    .unwrap_or_else(|| "no reason given".into());
                f.log
                    .log(-1, &format!("rtpengine: {name} refused: {why}\n"));
                None
            }
        }
        Err(e) => {
            f.log.log(-1, &format!("rtpengine: {name}: {e}\n"));
            None
        }
    }
}

fn code(answer: Option<Bencode>) -> i64 {
    if answer.is_some() { 1 } else { -1 }
}

/// `rtpengine_start_recording([flags[, $sock]])`.
pub fn rtpengine_start_recording(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    code(simple_command(
        f,
        args,
        "start recording",
        Scope::Tags,
        1,
        &[],
    ))
}

/// `rtpengine_stop_recording([flags[, $sock]])`.
pub fn rtpengine_stop_recording(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    code(simple_command(
        f,
        args,
        "stop recording",
        Scope::Tags,
        1,
        &[],
    ))
}

/// `rtpengine_pause_recording([flags[, $sock]])`.
pub fn rtpengine_pause_recording(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    code(simple_command(
        f,
        args,
        "pause recording",
        Scope::Tags,
        1,
        &[],
    ))
}

/// The daemon's integer `key` (-1 when it has none), for an output variable.
fn int_of(answer: &Bencode, key: &str) -> Value {
    Value::Int(
        answer
            .get_str(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1),
    )
}

/// `rtpengine_play_media(flags[, $duration[, $sock]])`: `file=`, `blob=` or `db-id=` in the
/// flags; the file's length (ms) into `$duration`.
pub fn rtpengine_play_media(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(answer) = simple_command(f, args, "play media", Scope::Call, 2, &[]) else {
        return -1;
    };
    f.set_output(1, int_of(&answer, "duration"));
    1
}

/// `rtpengine_stop_media([flags[, $sock[, $last_frame_pos]]])`.
pub fn rtpengine_stop_media(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(answer) = simple_command(f, args, "stop media", Scope::Call, 1, &[]) else {
        return -1;
    };
    f.set_output(2, int_of(&answer, "last-frame-pos"));
    1
}

/// `rtpengine_block_media([flags[, $sock]])`.
pub fn rtpengine_block_media(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    code(simple_command(f, args, "block media", Scope::Call, 1, &[]))
}

/// `rtpengine_unblock_media([flags[, $sock]])`.
pub fn rtpengine_unblock_media(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    code(simple_command(
        f,
        args,
        "unblock media",
        Scope::Call,
        1,
        &[],
    ))
}

/// `rtpengine_block_dtmf([flags[, $sock]])`.
pub fn rtpengine_block_dtmf(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    code(simple_command(f, args, "block DTMF", Scope::Call, 1, &[]))
}

/// `rtpengine_unblock_dtmf([flags[, $sock]])`.
pub fn rtpengine_unblock_dtmf(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    code(simple_command(f, args, "unblock DTMF", Scope::Call, 1, &[]))
}

/// `rtpengine_start_forwarding([flags[, $sock]])`.
pub fn rtpengine_start_forwarding(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    code(simple_command(
        f,
        args,
        "start forwarding",
        Scope::Call,
        1,
        &[],
    ))
}

/// `rtpengine_stop_forwarding([flags[, $sock]])`.
pub fn rtpengine_stop_forwarding(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    code(simple_command(
        f,
        args,
        "stop forwarding",
        Scope::Call,
        1,
        &[],
    ))
}

/// `rtpengine_play_dtmf(code[, flags[, $sock]])`: a DTMF event (`0`-`9`, `*`, `#`, `A`-`D`)
/// into the call's media; -2 when the daemon cannot (as OpenSIPS).
pub fn rtpengine_play_dtmf(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(digit) = text_arg(args, 0).filter(|c| !c.is_empty()) else {
        return -1;
    };
    // The flags are the second argument here.
    let shifted: Vec<Value> = args.iter().skip(1).cloned().collect();
    let answer = simple_command(f, &shifted, "play DTMF", Scope::Tags, 2, &[("code", digit)]);
    if answer.is_some() { 1 } else { -2 }
}
