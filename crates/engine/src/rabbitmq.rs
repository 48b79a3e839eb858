//! OpenSIPS' `event_rabbitmq`: RabbitMQ as an Event Interface transport
//! (`rabbitmq:[user[:password]@]host[:port]/[params?]routing_key` subscribers get each event's
//! JSON-RPC notification as a message) and `rabbitmq_publish()` to the brokers named by
//! `server_id` (`[ID] uri = amqp://…; exchange = …; heartbeat = …`). The AMQP client is
//! [`crate::amqp`]. TLS to the broker (`use_tls`, `amqps://`, `tls_domain`) is not available in
//! rsips yet: a script that asks for it is refused at start.

use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use crate::amqp::{Broker, Message};
use crate::module::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes};
use crate::{Script, Value};

pub static EVENT_RABBITMQ: ModuleSpec = ModuleSpec {
    name: "event_rabbitmq",
    functions: &[FnSpec {
        name: "rabbitmq_publish",
        params: &[
            (Param::Str, false),
            (Param::Str, false),
            (Param::Str, false),
            (Param::Str, true),
            (Param::Avp, true),
            (Param::Avp, true),
        ],
        routes: Routes::ALL,
        run: rabbitmq_publish,
    }],
    params: &[
        ("heartbeat", ParamType::Int),
        ("connect_timeout", ParamType::Int),
        ("use_tls", ParamType::Int),
        ("timeout", ParamType::Int),
        ("server_id", ParamType::Str),
    ],
};

/// A `server_id`: its broker and how its messages go out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Server {
    id: String,
    broker: Broker,
    exchange: String,
    persistent: bool,
    mandatory: bool,
    immediate: bool,
}

/// The module's settings, for EVI subscribers and `rabbitmq_publish`.
#[derive(Debug, Clone)]
struct Settings {
    heartbeat: u16,
    connect_timeout: Duration,
    timeout: Duration,
    servers: Vec<Server>,
}

static SETTINGS: RwLock<Option<Settings>> = RwLock::new(None);

fn settings() -> Option<Settings> {
    SETTINGS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Reads the module's parameters; a bad `server_id`, or TLS, stops the start.
pub fn configure(script: &Script) -> Result<(), String> {
    if !script.loads("event_rabbitmq") {
        *SETTINGS.write().unwrap_or_else(PoisonError::into_inner) = None;
        return Ok(());
    }
    let int = |p: &str| script.modparam_int("event_rabbitmq", p);
    if int("use_tls").is_some_and(|v| v != 0) {
        return Err(
            "event_rabbitmq: use_tls: TLS to RabbitMQ is not available in rsips yet".into(),
        );
    }
    let heartbeat = match int("heartbeat").unwrap_or(0) {
        h @ 0..=65535 => u16::try_from(h).unwrap_or(0),
        h => {
            return Err(format!(
                "event_rabbitmq: bad heartbeat {h} (seconds, 0 to 65535)"
            ));
        }
    };
    let ms = |p: &str, default: i64| -> Result<Duration, String> {
        match int(p).unwrap_or(default) {
            v if v >= 0 => Ok(Duration::from_millis(v.unsigned_abs())),
            v => Err(format!("event_rabbitmq: bad {p} {v} (milliseconds)")),
        }
    };
    let connect_timeout = ms("connect_timeout", 500)?;
    let connect_timeout = if connect_timeout.is_zero() {
        Duration::from_millis(500)
    } else {
        connect_timeout
    };
    // 0: "blocking" in OpenSIPS; a write still gives up after a while here.
    let timeout = match ms("timeout", 0)? {
        t if t.is_zero() => Duration::from_secs(5),
        t => t,
    };
    let mut s = Settings {
        heartbeat,
        connect_timeout,
        timeout,
        servers: Vec::new(),
    };
    for text in script.modparam_strs("event_rabbitmq", "server_id") {
        let server = parse_server_id(&text, &s).map_err(|e| format!("event_rabbitmq: {e}"))?;
        if s.servers.iter().any(|o| o.id == server.id) {
            return Err(format!(
                "event_rabbitmq: server_id [{}] is given twice",
                server.id
            ));
        }
        s.servers.push(server);
    }
    *SETTINGS.write().unwrap_or_else(PoisonError::into_inner) = Some(s);
    Ok(())
}

fn broker(s: &Settings, host: &str, port: u16, user: &str, password: &str) -> Broker {
    Broker {
        host: host.to_owned(),
        port,
        user: user.to_owned(),
        password: password.to_owned(),
        vhost: "/".into(),
        heartbeat: s.heartbeat,
        frame_max: 131_072,
        connect_timeout: s.connect_timeout,
        timeout: s.timeout,
        retries: 0,
    }
}

/// `[ID] uri = amqp://…; key = value; flag; …`
fn parse_server_id(text: &str, s: &Settings) -> Result<Server, String> {
    let bad = |why: &str| format!("server_id \"{text}\": {why}");
    let rest = text.trim_start();
    let (id, rest) = rest
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .ok_or_else(|| bad("expected [id] uri = amqp://…"))?;
    let id = id.trim();
    if id.is_empty() {
        return Err(bad("an empty id"));
    }
    let mut uri = None;
    let mut server = Server {
        id: id.to_owned(),
        broker: broker(s, "localhost", 5672, "guest", "guest"),
        exchange: String::new(),
        persistent: true,
        mandatory: false,
        immediate: false,
    };
    for part in rest.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (part, None),
        };
        let need = || value.ok_or_else(|| bad(&format!("`{key}` needs a value")));
        let number = |what: &str| -> Result<u64, String> {
            need()?
                .parse::<u64>()
                .map_err(|_| bad(&format!("`{what}` is not a number")))
        };
        match key {
            "uri" => uri = Some(need()?.to_owned()),
            "exchange" => server.exchange = need()?.to_owned(),
            "frames" => {
                server.broker.frame_max =
                    u32::try_from(number("frames")?).map_err(|_| bad("`frames` is too large"))?;
            }
            "retries" => {
                server.broker.retries =
                    u32::try_from(number("retries")?).map_err(|_| bad("`retries` too large"))?;
            }
            "heartbeat" => {
                server.broker.heartbeat = u16::try_from(number("heartbeat")?)
                    .map_err(|_| bad("`heartbeat` is too large"))?;
            }
            "immediate" => server.immediate = true,
            "mandatory" => server.mandatory = true,
            "non-persistent" => server.persistent = false,
            "tls_domain" => {
                return Err(bad(
                    "TLS to RabbitMQ (tls_domain) is not available in rsips yet",
                ));
            }
            other => return Err(bad(&format!("unknown parameter `{other}`"))),
        }
    }
    let uri = uri.ok_or_else(|| bad("no uri"))?;
    parse_amqp_uri(&uri, &mut server.broker).map_err(|e| bad(&e))?;
    Ok(server)
}

/// `amqp://[user[:password]@]host[:port][/vhost]` (RabbitMQ's URI spec: no path is the
/// vhost `/`, a path is the vhost percent-decoded, so `/%2f` is `/`).
fn parse_amqp_uri(uri: &str, b: &mut Broker) -> Result<(), String> {
    let rest = if let Some(r) = uri.strip_prefix("amqp://") {
        r
    } else if uri.starts_with("amqps://") {
        return Err("amqps (TLS) is not available in rsips yet".into());
    } else {
        return Err(format!("\"{uri}\" is not an amqp:// URI"));
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    let (cred, hostport) = match authority.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, authority),
    };
    if let Some(c) = cred {
        let (u, p) = c.split_once(':').unwrap_or((c, ""));
        b.user = percent_decode(u)?;
        b.password = percent_decode(p)?;
    }
    let (host, port) = split_host_port(hostport, 5672)?;
    if !host.is_empty() {
        b.host = host;
    }
    b.port = port;
    if let Some(p) = path {
        b.vhost = percent_decode(p.split('?').next().unwrap_or(""))?;
    }
    Ok(())
}

fn split_host_port(hp: &str, default: u16) -> Result<(String, u16), String> {
    if let Some(v6) = hp.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("bad host \"{hp}\""))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("bad port in \"{hp}\""))?,
            None if after.is_empty() => default,
            None => return Err(format!("bad host \"{hp}\"")),
        };
        return Ok((host.to_owned(), port));
    }
    match hp.rsplit_once(':') {
        Some((h, p)) => Ok((
            h.to_owned(),
            p.parse().map_err(|_| format!("bad port in \"{hp}\""))?,
        )),
        None => Ok((hp.to_owned(), default)),
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad escape in \"{s}\""))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("\"{s}\" is not UTF-8"))
}

/// An EVI subscriber's socket after `rabbitmq:`, parsed: where to connect and how its
/// messages go (`exchange`, `persistent` and `tls_domain` params before a `?`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    broker: Broker,
    exchange: String,
    routing_key: String,
    persistent: bool,
}

/// Parses the part of a subscriber socket after `rabbitmq:`; `None` when event_rabbitmq is
/// not loaded.
pub fn parse_subscriber(rest: &str) -> Option<Result<Subscriber, String>> {
    let s = settings()?;
    Some(subscriber(rest, &s))
}

fn subscriber(rest: &str, s: &Settings) -> Result<Subscriber, String> {
    let (authority, tail) = rest
        .split_once('/')
        .ok_or_else(|| "expected [user[:password]@]host[:port]/[params?]routing_key".to_owned())?;
    let (cred, hostport) = match authority.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, authority),
    };
    let (user, password) = match cred {
        Some(c) => c.split_once(':').unwrap_or((c, "guest")),
        None => ("guest", "guest"),
    };
    let (host, port) = split_host_port(hostport, 5672)?;
    if host.is_empty() {
        return Err("no host".into());
    }
    let (params, routing_key) = match tail.split_once('?') {
        Some((p, k)) => (p, k),
        None => ("", tail),
    };
    if routing_key.is_empty() {
        return Err("no routing key".into());
    }
    let mut sub = Subscriber {
        broker: broker(s, &host, port, user, password),
        exchange: String::new(),
        routing_key: routing_key.to_owned(),
        persistent: false,
    };
    for p in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        match p.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("exchange", v)) => sub.exchange = v.to_owned(),
            Some(("tls_domain", _)) => {
                return Err("TLS to RabbitMQ (tls_domain) is not available in rsips yet".into());
            }
            None if p == "persistent" => sub.persistent = true,
            _ => return Err(format!("unknown parameter `{p}`")),
        }
    }
    Ok(sub)
}

/// Queues an event's notification for a subscriber (the outcome is logged).
pub fn deliver(sub: &Subscriber, payload: String) -> Result<(), String> {
    let m = Message {
        exchange: sub.exchange.clone(),
        routing_key: sub.routing_key.clone(),
        body: payload.into_bytes(),
        persistent: sub.persistent,
        ..Message::default()
    };
    crate::amqp::publish(&sub.broker, m, None)
}

/// `rabbitmq_publish(server_id, routing_key, message[, content_type[, headers,
/// headers_vals]])`: 1 published, -1 not (an unknown server, headers without their values,
/// the broker unreachable).
fn rabbitmq_publish(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let text = |i: usize| {
        args.get(i)
            .filter(|v| !v.is_null())
            .map(|v| v.to_text().into_owned())
    };
    let Some(s) = settings() else {
        return -1;
    };
    let id = text(0).unwrap_or_default();
    let Some(server) = s.servers.iter().find(|sv| sv.id == id) else {
        f.log.log(
            -1,
            &format!("rabbitmq_publish: no server_id [{id}] (event_rabbitmq's server_id)\n"),
        );
        return -1;
    };
    let names = f.read_output_avp(4);
    let values = f.read_output_avp(5);
    if names.len() != values.len() {
        f.log.log(
            -1,
            &format!(
                "rabbitmq_publish: {} header names but {} values\n",
                names.len(),
                values.len()
            ),
        );
        return -1;
    }
    let headers = names
        .iter()
        .zip(&values)
        .map(|(n, v)| (n.to_text().into_owned(), v.to_text().into_owned()))
        .collect();
    let m = Message {
        exchange: server.exchange.clone(),
        routing_key: text(1).unwrap_or_default(),
        body: text(2).unwrap_or_default().into_bytes(),
        content_type: text(3).filter(|c| !c.is_empty()),
        headers,
        persistent: server.persistent,
        mandatory: server.mandatory,
        immediate: server.immediate,
    };
    let b = &server.broker;
    let wait = b.connect_timeout * 2 + b.timeout * (b.retries + 2);
    match crate::amqp::publish(b, m, Some(wait)) {
        Ok(()) => 1,
        Err(e) => {
            f.log.log(-1, &format!("rabbitmq_publish: [{id}] {e}\n"));
            -1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            heartbeat: 0,
            connect_timeout: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
            servers: Vec::new(),
        }
    }

    #[test]
    fn subscriber_sockets() {
        let s = settings();
        let a = subscriber("guest:guest@127.0.0.1:5672/pike", &s).unwrap();
        let b = subscriber("127.0.0.1/pike", &s).unwrap();
        assert_eq!(a, b, "the defaults are guest/guest on 5672");
        assert_eq!(b.routing_key, "pike");
        let c = subscriber("u:p@[::1]:5673/exchange=ex;persistent?calls", &s).unwrap();
        assert_eq!((c.broker.host.as_str(), c.broker.port), ("::1", 5673));
        assert_eq!(
            (c.broker.user.as_str(), c.broker.password.as_str()),
            ("u", "p")
        );
        assert_eq!(
            (c.exchange.as_str(), c.routing_key.as_str()),
            ("ex", "calls")
        );
        assert!(c.persistent);
        assert!(subscriber("127.0.0.1", &s).is_err(), "no routing key part");
        assert!(
            subscriber("127.0.0.1/", &s).is_err(),
            "an empty routing key"
        );
        assert!(subscriber("127.0.0.1/tls_domain=rmq?pike", &s).is_err());
        assert!(subscriber("127.0.0.1/bogus=1?pike", &s).is_err());
        assert!(subscriber("127.0.0.1:x/pike", &s).is_err());
    }

    #[test]
    fn server_ids() {
        let s = settings();
        let v = parse_server_id("[ID1] uri = amqp://127.0.0.1", &s).unwrap();
        assert_eq!(v.id, "ID1");
        assert_eq!(
            (
                v.broker.host.as_str(),
                v.broker.port,
                v.broker.vhost.as_str()
            ),
            ("127.0.0.1", 5672, "/")
        );
        assert!(v.persistent, "persistent unless non-persistent");
        let v = parse_server_id(
            "[ID2] uri = amqp://u:p%40ss@h:5673/%2fvh; heartbeat = 5; exchange = ex; \
             non-persistent; mandatory; retries=2; frames=8192",
            &s,
        )
        .unwrap();
        assert_eq!(v.broker.password, "p@ss");
        assert_eq!(v.broker.vhost, "/vh");
        assert_eq!(
            (v.broker.heartbeat, v.broker.retries, v.broker.frame_max),
            (5, 2, 8192)
        );
        assert!(!v.persistent && v.mandatory && !v.immediate);
        assert_eq!(v.exchange, "ex");
        assert!(parse_server_id("uri = amqp://h", &s).is_err(), "no id");
        assert!(parse_server_id("[X] exchange=e", &s).is_err(), "no uri");
        assert!(parse_server_id("[X] uri = amqps://h", &s).is_err(), "TLS");
        assert!(parse_server_id("[X] uri = http://h", &s).is_err());
        assert!(parse_server_id("[X] uri = amqp://h; what=1", &s).is_err());
        assert!(parse_server_id("[X] uri = amqp://h/%zz", &s).is_err());
    }
}
