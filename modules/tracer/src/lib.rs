//! The OpenSIPS `tracer` and `proto_hep` modules: `trace()` copies SIP traffic to a HEP
//! capture server (Homer) as HEPv3 over UDP or TCP.
//!
//! - `proto_hep`'s `hep_id` names the capture servers: `[name]host[:port][;transport=udp|tcp]
//!   [;version=3]` (port 9060, UDP by default); `hep_capture_id` (default 1) is the agent id.
//! - `tracer`'s `trace_id` names the tracing destinations: `[tid]uri=hep:name` (also written
//!   without `uri=`). `trace_on` (default 1) and MI `trace` turn tracing on and off.
//! - `trace(tid[, scope[, type[, trace_attrs]]])` traces the message being handled and, by
//!   scope: `m` nothing more; `t` every message of its transaction (same Call-ID and CSeq
//!   number: relayed copies, replies both ways, CANCEL, the ACK of a negative reply); `d`
//!   every message of its dialog until the dialog ends. Each message is captured once, with
//!   the socket it really left from or arrived on, and the Call-ID as correlation id.
//! - Per-session tracing (MI `trace_start`) and the per-destination switch of MI `trace` are
//!   not kept: MI `trace` turns all tracing on and off.
//!
//! - `trace_id` may also name a database (`[tid]uri=mysql://…[;table=sip_trace]`, any
//!   driver rsips has, db_text included): one `sip_trace` row (version 5) per message,
//!   written by a thread of its own so that a slow database does not hold up the workers.
//!
//! - A `socket=hep_udp:…` is where HEP over UDP leaves from, as in OpenSIPS (without one, an
//!   ephemeral port); `hep_tcp` sockets are accepted, and HEP over TCP connects from an
//!   ephemeral port.
//!
//! Not here: SIP duplication (`uri=sip:…`), file and syslog destinations, the `xlog` and
//! `rest` types (accepted; a warning says once that they are not captured),
//! `trace_start`/`trace_stop`, HEP versions 1 and 2 (each refused with a message
//! when the script names it), and receiving HEP: what arrives on a `hep_udp`/`hep_tcp` socket
//! is not read (that is a capture server's job).
#![forbid(unsafe_code)]

pub mod hep;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamCheck, ParamType, Routes, Script, Value};

pub use session::{incoming, outgoing, tapping};

pub static PROTO_HEP: ModuleSpec = ModuleSpec {
    name: "proto_hep",
    functions: &[],
    params: &[
        ("hep_id", ParamType::Str),
        ("hep_capture_id", ParamType::Int),
        ("hep_async", ParamType::Int),
        ("hep_async_max_postponed_chunks", ParamType::Int),
        ("hep_max_msg_chunks", ParamType::Int),
        ("homer5_on", ParamType::Int),
        ("homer5_delim", ParamType::Str),
        ("hep_port", ParamType::Int),
        ("hep_send_timeout", ParamType::Int),
        ("hep_max_msg_time", ParamType::Int),
    ],
};

static SCOPE: ParamCheck = ParamCheck {
    what: "trace scope",
    check: |s| Scope::parse(s).map(|_| ()),
};

static KIND: ParamCheck = ParamCheck {
    what: "trace type",
    check: |s| {
        for t in s.split('|').map(str::trim) {
            match t {
                // xlog and rest lines are not captured: `trace()` says so once at run time
                // (OpenSIPS too lets a type it cannot trace pass with a warning).
                "sip" | "xlog" | "rest" => {}
                other => return Err(format!("unknown type `{other}` (sip, xlog, rest)")),
            }
        }
        Ok(())
    },
};

pub static TRACER: ModuleSpec = ModuleSpec {
    name: "tracer",
    functions: &[FnSpec {
        name: "trace",
        params: &[
            (Param::Str, false),
            (Param::Checked(&SCOPE), true),
            (Param::Checked(&KIND), true),
            (Param::Str, true),
            (Param::Str, true),
            (Param::Str, true),
        ],
        routes: Routes::ALL,
        run: trace,
    }],
    params: &[
        ("trace_id", ParamType::Str),
        ("trace_on", ParamType::Int),
        ("trace_local_ip", ParamType::Str),
        ("syslog_default_facility", ParamType::Str),
        ("syslog_default_level", ParamType::Int),
        ("file_mode", ParamType::Int),
    ],
};

/// What a `trace()` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Message,
    Transaction,
    Dialog,
}

impl Scope {
    fn parse(s: &str) -> Result<Scope, String> {
        match s.trim() {
            "m" | "M" => Ok(Scope::Message),
            "t" | "T" => Ok(Scope::Transaction),
            "d" | "D" => Ok(Scope::Dialog),
            other => Err(format!("unknown scope `{other}` (m, t or d)")),
        }
    }
}

/// A HEP capture server (`hep_id`).
#[derive(Debug)]
pub struct HepDest {
    pub name: String,
    pub addr: SocketAddr,
    pub tcp: bool,
}

/// Where one `trace_id` line sends its captures.
#[derive(Debug)]
pub enum Dest {
    Hep(Arc<HepDest>),
    /// A `sip_trace` table (version 5): one row per message, written by a thread of its own.
    Db {
        url: String,
        table: String,
        conn: Arc<dyn db::Connection>,
    },
}

/// A tracing destination (`trace_id`; the same name given more than once sends to each).
#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub dests: Vec<Dest>,
}

#[derive(Debug, Default)]
struct Config {
    targets: HashMap<String, Arc<Target>>,
    capture_id: u32,
    /// `trace_local_ip`: the address (and port, when given) shown as ours instead of the
    /// socket's.
    local_ip: Option<(std::net::IpAddr, Option<u16>)>,
}

static CONFIG: OnceLock<RwLock<Config>> = OnceLock::new();
static TRACE_ON: AtomicBool = AtomicBool::new(true);

fn config() -> std::sync::RwLockReadGuard<'static, Config> {
    CONFIG
        .get_or_init(RwLock::default)
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `[name]rest` → (name, rest).
fn bracketed(text: &str) -> Result<(&str, &str), String> {
    let t = text.trim();
    let inner = t
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .ok_or_else(|| format!("\"{text}\": expected `[name]...`"))?;
    if inner.0.trim().is_empty() {
        return Err(format!("\"{text}\": empty name"));
    }
    Ok((inner.0.trim(), inner.1.trim()))
}

/// `trace_local_ip`: `[proto:]ip[:port]`.
fn parse_local(text: &str) -> Option<(std::net::IpAddr, Option<u16>)> {
    let t = text.trim();
    let t = ["udp:", "tcp:", "tls:", "ws:", "wss:"]
        .iter()
        .find_map(|p| t.strip_prefix(p))
        .unwrap_or(t);
    if let Ok(ip) = t.trim_start_matches('[').trim_end_matches(']').parse() {
        return Some((ip, None));
    }
    let (ip, port) = t.rsplit_once(':')?;
    let ip = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some((ip, Some(port.parse().ok()?)))
}

/// `[name]host[:port][;transport=udp|tcp][;version=3]`.
fn parse_hep_id(text: &str) -> Result<HepDest, String> {
    let (name, rest) = bracketed(text)?;
    let mut parts = rest.split(';');
    let hostport = parts.next().unwrap_or_default().trim();
    if hostport.is_empty() {
        return Err(format!("hep_id \"{text}\": no address"));
    }
    // OpenSIPS' defaults: TCP, HEP version 3, port 9060.
    let (mut tcp, mut version) = (true, 3);
    for p in parts.map(str::trim).filter(|p| !p.is_empty()) {
        match p.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("transport", "udp")) => tcp = false,
            Some(("transport", "tcp")) => tcp = true,
            Some(("version", v)) => {
                version = v
                    .parse()
                    .map_err(|_| format!("hep_id \"{text}\": bad version"))?;
            }
            _ => return Err(format!("hep_id \"{text}\": unknown parameter `{p}`")),
        }
    }
    if version != 3 {
        return Err(format!(
            "hep_id \"{text}\": HEP version {version} is not available in rsips (version 3 is)"
        ));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') || h.starts_with('[') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("hep_id \"{text}\": bad port"))?,
        ),
        _ => (hostport, 9060),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    use std::net::ToSocketAddrs;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("hep_id \"{text}\": cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("hep_id \"{text}\": cannot resolve {host}"))?;
    Ok(HepDest {
        name: name.to_owned(),
        addr,
        tcp,
    })
}

/// Reads both modules' parameters and opens the trace tables; what rsips cannot honour
/// stops the start.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("tracer") && !script.loads("proto_hep") {
        return Ok(());
    }
    // A `hep_udp` socket is where HEP over UDP leaves from (receiving HEP on it, a capture
    // server's job, is not done: what arrives there is not read).
    for name in script.sockets() {
        let Some(hostport) = name.strip_prefix("hep_udp:") else {
            continue;
        };
        let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("proto_hep: cannot resolve hep_udp:{hostport}"))?;
        let bound = std::net::UdpSocket::bind(addr)
            .and_then(session::send_from)
            .map_err(|e| format!("proto_hep: cannot open hep_udp:{addr}: {e}"));
        bound?;
        log::info!("proto_hep: HEP over UDP leaves from {addr}");
    }
    let mut heps = HashMap::new();
    for text in script.modparam_strs("proto_hep", "hep_id") {
        let d = parse_hep_id(&text).map_err(|e| format!("proto_hep: {e}"))?;
        heps.insert(d.name.clone(), Arc::new(d));
    }
    let mut targets: HashMap<String, Vec<Dest>> = HashMap::new();
    for text in script.modparam_strs("tracer", "trace_id") {
        let (name, rest) = bracketed(&text).map_err(|e| format!("tracer: trace_id {e}"))?;
        let mut uri = None;
        let mut table = "sip_trace".to_owned();
        for part in rest.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("uri", v)) => uri = Some(v.trim()),
                Some(("table", v)) => table = v.trim().to_owned(),
                _ if uri.is_none() => uri = Some(part),
                _ => {
                    return Err(format!(
                        "tracer: trace_id \"{text}\": unknown parameter `{part}` (uri, table)"
                    ));
                }
            }
        }
        let uri = uri.ok_or_else(|| format!("tracer: trace_id \"{text}\": no uri"))?;
        let dest = match uri.split_once(':') {
            Some(("hep", id)) => Dest::Hep(heps.get(id.trim()).cloned().ok_or_else(|| {
                format!(
                    "tracer: trace_id \"{text}\": no hep_id named `{}`",
                    id.trim()
                )
            })?),
            Some(("sip" | "file" | "syslog", _)) => {
                return Err(format!(
                    "tracer: trace_id \"{text}\": SIP, file and syslog destinations are not available in rsips yet"
                ));
            }
            _ => {
                let conn = db::open_for("tracer", uri, |m| script.loads(m), options)?;
                db::check_version(&*conn, &table, 5)
                    .map_err(|e| format!("tracer: trace_id \"{text}\": {e}"))?;
                Dest::Db {
                    url: db::redact(uri),
                    table,
                    conn,
                }
            }
        };
        targets.entry(name.to_owned()).or_default().push(dest);
    }
    let targets: HashMap<String, Arc<Target>> = targets
        .into_iter()
        .map(|(name, dests)| {
            let t = Arc::new(Target {
                name: name.clone(),
                dests,
            });
            (name, t)
        })
        .collect();
    let capture_id = script
        .modparam_int("proto_hep", "hep_capture_id")
        .unwrap_or(1);
    let capture_id = u32::try_from(capture_id)
        .map_err(|_| format!("proto_hep: bad hep_capture_id {capture_id}"))?;
    let local_ip = match script.modparam_str("tracer", "trace_local_ip") {
        Some(text) => Some(
            parse_local(&text).ok_or_else(|| format!("tracer: bad trace_local_ip \"{text}\""))?,
        ),
        None => None,
    };
    TRACE_ON.store(
        script.modparam_int("tracer", "trace_on").unwrap_or(1) != 0,
        Ordering::Relaxed,
    );
    *CONFIG
        .get_or_init(RwLock::default)
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Config {
        targets,
        capture_id,
        local_ip,
    };
    Ok(())
}

/// MI `tracer:trace` (`trace`): named parameters `id` and `mode` (`on` / `off`); with none,
/// the global switch and the destinations.
pub fn commands(mi: &mut mi::Mi) {
    use serde_json::json;
    mi.add(mi::Command::new(
        "tracer:trace",
        &["trace"],
        &[&[], &["mode"], &["id"], &["id", "mode"]],
        |p| {
            let on = |b: bool| if b { "on" } else { "off" };
            let wanted = p.str("id")?;
            if let Some(id) = &wanted
                && !config().targets.contains_key(id.trim())
            {
                return Err(mi::MiError::new(400, "Bad trace id value"));
            }
            match p.str("mode")? {
                None => {
                    let cfg = config();
                    let mut names: Vec<&String> = cfg.targets.keys().collect();
                    names.sort();
                    let dests: Vec<serde_json::Value> = names
                        .into_iter()
                        .filter_map(|n| cfg.targets.get(n))
                        .filter(|t| wanted.as_deref().is_none_or(|w| w.trim() == t.name))
                        .flat_map(|t| {
                            t.dests.iter().map(|d| {
                                let (kind, uri) = match d {
                                    Dest::Hep(h) => ("HEP", h.addr.to_string()),
                                    Dest::Db { url, .. } => ("Database", url.clone()),
                                };
                                json!({
                                    "name": t.name,
                                    "type": kind,
                                    "uri": uri,
                                    "state": on(TRACE_ON.load(Ordering::Relaxed)),
                                })
                            })
                        })
                        .collect();
                    if wanted.is_some() {
                        return Ok(json!({ "trace destinations": dests }));
                    }
                    Ok(json!({
                        "global": on(TRACE_ON.load(Ordering::Relaxed)),
                        "trace destinations": dests,
                    }))
                }
                Some(m) => match m.trim().to_ascii_lowercase().as_str() {
                    "on" => {
                        TRACE_ON.store(true, Ordering::Relaxed);
                        Ok(json!("OK"))
                    }
                    "off" => {
                        TRACE_ON.store(false, Ordering::Relaxed);
                        session::clear();
                        Ok(json!("OK"))
                    }
                    _ => Err(mi::MiError::new(500, "Bad parameter value")),
                },
            }
        },
    ));
}

/// `trace(tid[, scope[, type[, trace_attrs[, flags[, correlation_id]]]]])`: 1 when the
/// message is traced (or tracing is off, as in OpenSIPS), -1 when `tid` names no
/// destination. Without a scope: the dialog of an initial INVITE when the dialog module is
/// loaded, else the transaction; a reply is traced alone under `t`, anything but an initial
/// INVITE under its transaction for `d`.
fn trace(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    if !TRACE_ON.load(Ordering::Relaxed) {
        return 1;
    }
    let tid = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let Some(target) = config().targets.get(tid.trim()).cloned() else {
        f.log
            .log(-1, &format!("tracer: no trace_id named `{tid}`\n"));
        return -1;
    };
    // The types asked for: SIP is traced only when asked (or by default); xlog and rest
    // lines are not captured by rsips.
    if let Some(Value::Str(types)) = args.get(2).filter(|v| !v.is_null()) {
        let types: Vec<&str> = types.split('|').map(str::trim).collect();
        if types.iter().any(|t| *t == "xlog" || *t == "rest") {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                log::warn!("tracer: xlog and rest tracing is not done by rsips; SIP is traced")
            });
        }
        if !types.contains(&"sip") {
            return 1;
        }
    }
    let msg = &f.msg.msg;
    let initial_invite = msg.is_request()
        && msg.method_str() == Some("INVITE")
        && !msg
            .headers()
            .any(|h| h.name == sip::HeaderName::To && h.value.contains("tag="));
    let asked = match args.get(1) {
        Some(Value::Str(s)) if !s.trim().is_empty() => Scope::parse(s).ok(),
        _ => None,
    };
    let scope = match asked {
        None if initial_invite && f.script.loads("dialog") => Scope::Dialog,
        None => Scope::Transaction,
        Some(s) => s,
    };
    let scope = match scope {
        Scope::Transaction if !msg.is_request() => Scope::Message,
        Scope::Dialog if !initial_invite => Scope::Transaction,
        s => s,
    };
    let attrs = match args.get(3) {
        Some(Value::Str(a)) if !a.is_empty() => Some(a.to_string()),
        _ => None,
    };
    session::start(f.msg, target, scope, attrs);
    1
}

/// Sends one capture to each of a target's destinations. `sent`: the message left us (our
/// side is the source), else it arrived (our side is the destination); `trace_local_ip`
/// replaces ours.
fn send(target: &Target, c: &hep::Capture<'_>, sent: bool) {
    let cfg = config();
    let mut c = c.clone();
    if let Some((ip, port)) = cfg.local_ip {
        let ours = if sent { &mut c.src } else { &mut c.dst };
        *ours = SocketAddr::new(ip, port.unwrap_or(ours.port()));
    }
    let capture_id = cfg.capture_id;
    drop(cfg);
    for d in &target.dests {
        match d {
            Dest::Hep(h) => {
                if c.payload.len() > 65_000 {
                    log::error!(
                        "tracer: a {}-byte message is too big for HEP",
                        c.payload.len()
                    );
                    continue;
                }
                session::deliver(h, hep::encode(&c, capture_id, None));
            }
            Dest::Db { table, conn, .. } => {
                session::store(Arc::clone(conn), table.clone(), row(&c, sent));
            }
        }
    }
}

/// The `sip_trace` row of a capture.
fn row(c: &hep::Capture<'_>, sent: bool) -> Vec<(&'static str, db::Value)> {
    use db::Value::{DateTime, Int, Str};
    let text = String::from_utf8_lossy(c.payload).into_owned();
    let first = text.lines().next().unwrap_or_default();
    let cseq_method = session::header_of(c.payload, "CSeq", None)
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_owned();
    let (method, status) = match first.strip_prefix("SIP/2.0 ") {
        Some(rest) => (
            cseq_method,
            rest.split_whitespace().next().unwrap_or("").to_owned(),
        ),
        None => (
            first.split(' ').next().unwrap_or("").to_owned(),
            String::new(),
        ),
    };
    let fromtag = session::header_of(c.payload, "From", Some("f"))
        .and_then(|f| f.split(';').find_map(|p| p.trim().strip_prefix("tag=")))
        .unwrap_or_default()
        .to_owned();
    let now = c
        .time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let ip = |a: SocketAddr| engine::pv::ip_text(a.ip());
    vec![
        ("time_stamp", DateTime(now)),
        ("callid", Str(c.correlation.unwrap_or_default().to_owned())),
        (
            "trace_attrs",
            c.attrs.map_or(db::Value::Null, |a| Str(a.to_owned())),
        ),
        ("msg", Str(text)),
        ("method", Str(method)),
        ("status", Str(status)),
        ("from_proto", Str(c.proto.to_ascii_lowercase())),
        ("from_ip", Str(ip(c.src))),
        ("from_port", Int(i64::from(c.src.port()))),
        ("to_proto", Str(c.proto.to_ascii_lowercase())),
        ("to_ip", Str(ip(c.dst))),
        ("to_port", Int(i64::from(c.dst.port()))),
        ("fromtag", Str(fromtag)),
        ("direction", Str(if sent { "out" } else { "in" }.to_owned())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hep_ids() {
        let d = parse_hep_id("[hid]127.0.0.1:9061;transport=tcp;version=3").unwrap();
        assert_eq!((d.name.as_str(), d.addr.port(), d.tcp), ("hid", 9061, true));
        let d = parse_hep_id("[h2]127.0.0.1").unwrap();
        assert_eq!((d.addr.port(), d.tcp), (9060, true));
        let d = parse_hep_id("[h3] 127.0.0.1:9062; transport=udp").unwrap();
        assert_eq!((d.addr.port(), d.tcp), (9062, false));
        assert!(parse_hep_id("[h]127.0.0.1:9060;version=2").is_err());
        assert!(parse_hep_id("127.0.0.1:9060").is_err());
        assert!(parse_hep_id("[h]127.0.0.1:9060;foo=bar").is_err());
    }

    #[test]
    fn scopes() {
        assert_eq!(Scope::parse("t"), Ok(Scope::Transaction));
        assert!(Scope::parse("x").is_err());
        assert!((KIND.check)("sip").is_ok());
        assert!((KIND.check)("sip|xlog").is_ok());
        assert!((KIND.check)("xlog|rest").is_ok());
        assert!((KIND.check)("sip|foo").is_err());
    }
}
