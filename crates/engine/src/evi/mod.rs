//! The Event Interface's external subscribers: what `subscribe_event()` and MI `evi:subscribe`
//! register, and what every raised event is delivered to besides its `event_route`.
//!
//! A subscriber's socket names its transport, each a module the script loads:
//! - `udp:host:port` and `unix:/path` (`event_datagram`): one JSON-RPC 2.0 notification per
//!   datagram;
//! - `tcp:host:port[/method]` (`event_stream`): the same notifications written back to back on
//!   one kept-open connection per peer, from a sender thread of its own;
//! - `flatstore:/path/file` (`event_flatstore`): one line per event, `NAME,value,value…`;
//! - `rabbitmq:[user[:password]@]host[:port]/[params?]routing_key` (`event_rabbitmq`): the
//!   notification published to a RabbitMQ broker, from a sender thread per broker;
//! - `xmlrpc:host:port[/path]:method` (`event_xmlrpc`): an XML-RPC call of `method` per
//!   event, from a sender thread of its own ([`xmlrpc`]);
//! - `virtual:POLICY socket socket…` (`event_virtual`): several of the above as one
//!   subscriber, told all at once (PARALLEL), the first that takes it (FAILOVER, a failed one
//!   skipped for `failover_timeout`) or one per event in turn (ROUND-ROBIN).
//!
//! As in OpenSIPS, subscriptions live for the whole server (a reloaded script keeps them), a
//! subscription to the same socket refreshes the one there is, and expired subscribers are
//! dropped when an event is raised or the subscribers are listed (there is no timer).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{LazyLock, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{ModuleSpec, ParamType, Script, Value};

mod virtual_sub;
pub mod xmlrpc;

/// OpenSIPS 3.4's `event_route` module. From 3.5 on the core runs `event_route`s itself, as
/// rsips always does; the module is accepted so that 3.x scripts that load it still start.
pub static EVENT_ROUTE: ModuleSpec = ModuleSpec {
    name: "event_route",
    functions: &[],
    params: &[],
};

/// `event_datagram`: the `udp:` and `unix:` transports. No parameters.
pub static EVENT_DATAGRAM: ModuleSpec = ModuleSpec {
    name: "event_datagram",
    functions: &[],
    params: &[],
};

/// `event_stream`: the `tcp:` transport.
pub static EVENT_STREAM: ModuleSpec = ModuleSpec {
    name: "event_stream",
    functions: &[],
    params: &[
        ("reliable_mode", ParamType::Int),
        ("timeout", ParamType::Int),
        ("event_param", ParamType::Str),
    ],
};

/// `event_virtual`: `virtual:POLICY socket socket…`, several subscribers as one.
pub static EVENT_VIRTUAL: ModuleSpec = ModuleSpec {
    name: "event_virtual",
    functions: &[],
    params: &[("failover_timeout", ParamType::Int)],
};

/// `event_flatstore`: the `flatstore:` transport.
pub static EVENT_FLATSTORE: ModuleSpec = ModuleSpec {
    name: "event_flatstore",
    functions: &[],
    params: &[
        ("max_open_sockets", ParamType::Int),
        ("delimiter", ParamType::Str),
        ("file_permissions", ParamType::Str),
        ("suppress_event_name", ParamType::Int),
        ("escape_delimiter", ParamType::Str),
        ("rotate_period", ParamType::Int),
        ("rotate_count", ParamType::Any),
        ("rotate_size", ParamType::Any),
        ("suffix", ParamType::Str),
    ],
};

/// An event's parameters: named (a JSON object, `$param(name)`) or not (an array).
pub type Params = [(Option<String>, Value)];

/// What the loaded transport modules allow, from their parameters.
#[derive(Debug, Clone, Default)]
struct Settings {
    datagram: bool,
    /// event_virtual's `failover_timeout`, when it is loaded.
    virtual_failover: Option<Duration>,
    stream: Option<StreamSettings>,
    flat: Option<FlatSettings>,
    /// event_xmlrpc is loaded; its `use_struct_param`.
    xmlrpc: bool,
    xmlrpc_struct: bool,
}

#[derive(Debug, Clone)]
struct StreamSettings {
    reliable: bool,
    timeout: Duration,
    event_param: Option<String>,
}

#[derive(Debug, Clone)]
struct FlatSettings {
    delimiter: String,
    mode: u32,
    suppress_event_name: bool,
}

static SETTINGS: LazyLock<Mutex<Settings>> = LazyLock::new(Mutex::default);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads the transport modules' parameters; a value rsips cannot honour stops the start.
pub fn configure(script: &Script) -> Result<(), String> {
    let mut s = Settings {
        datagram: script.loads("event_datagram"),
        virtual_failover: script.loads("event_virtual").then(|| {
            Duration::from_secs(
                script
                    .modparam_int("event_virtual", "failover_timeout")
                    .filter(|t| *t >= 0)
                    .unwrap_or(30)
                    .unsigned_abs(),
            )
        }),
        xmlrpc: script.loads("event_xmlrpc"),
        xmlrpc_struct: script
            .modparam_int("event_xmlrpc", "use_struct_param")
            .unwrap_or(0)
            != 0,
        ..Settings::default()
    };
    if script.loads("event_stream") {
        let timeout = script
            .modparam_int("event_stream", "timeout")
            .unwrap_or(1000);
        if timeout <= 0 {
            return Err(format!(
                "event_stream: bad timeout {timeout} (milliseconds, > 0)"
            ));
        }
        s.stream = Some(StreamSettings {
            reliable: script
                .modparam_int("event_stream", "reliable_mode")
                .unwrap_or(0)
                != 0,
            timeout: Duration::from_millis(timeout.unsigned_abs()),
            event_param: script
                .modparam_str("event_stream", "event_param")
                .filter(|p| !p.is_empty()),
        });
    }
    if script.loads("event_flatstore") {
        for p in [
            "rotate_period",
            "rotate_count",
            "rotate_size",
            "suffix",
            "escape_delimiter",
        ] {
            if script.modparams("event_flatstore").any(|(n, _)| n == p) {
                return Err(format!(
                    "event_flatstore: `{p}` is not available in rsips yet (rotate with MI \
                     `event_flatstore:rotate` and logrotate)"
                ));
            }
        }
        let delimiter = script
            .modparam_str("event_flatstore", "delimiter")
            .unwrap_or_else(|| ",".into());
        if delimiter.is_empty() {
            return Err("event_flatstore: the delimiter cannot be empty".into());
        }
        let perms = script
            .modparam_str("event_flatstore", "file_permissions")
            .unwrap_or_else(|| "644".into());
        let mode = u32::from_str_radix(perms.trim(), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| format!("event_flatstore: bad file_permissions \"{perms}\" (octal)"))?;
        if let Some(n) = script.modparam_int("event_flatstore", "max_open_sockets")
            && !(1..=65535).contains(&n)
        {
            return Err(format!(
                "event_flatstore: bad max_open_sockets {n} (1 to 65535)"
            ));
        }
        s.flat = Some(FlatSettings {
            delimiter,
            mode,
            suppress_event_name: script
                .modparam_int("event_flatstore", "suppress_event_name")
                .unwrap_or(0)
                != 0,
        });
    }
    *lock(&SETTINGS) = s;
    Ok(())
}

/// Where a subscriber's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Udp(SocketAddr),
    Unix(PathBuf),
    Stream {
        addr: SocketAddr,
        method: Option<String>,
    },
    Flat(PathBuf),
    Rabbitmq(Box<crate::rabbitmq::Subscriber>),
    Xmlrpc(Box<xmlrpc::Target>),
    Virtual(Box<virtual_sub::Virtual>),
}

#[derive(Debug, Clone)]
struct Subscriber {
    /// The socket as subscribed (`udp:127.0.0.1:8888`), as listed.
    socket: String,
    target: Target,
    /// Seconds it lives from `since`; `None`: never expires.
    expire: Option<u64>,
    since: u64,
}

impl Subscriber {
    fn expired(&self, now: u64) -> bool {
        self.expire.is_some_and(|e| self.since + e < now)
    }
}

/// The subscribers of each event, newest first.
/// Whether anyone subscribed since start (never cleared: a subscriber that expired is
/// found by the slower check).
static EVER_SUBSCRIBED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

static SUBSCRIBERS: LazyLock<Mutex<BTreeMap<String, Vec<Subscriber>>>> =
    LazyLock::new(Mutex::default);

/// Events published at run time by a subscription or a raise of a name nobody publishes.
static PUBLISHED: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Mutex::default);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Publishes `event` (a name `subscribe_event` or `raise_event` uses): it is listed from now on.
pub fn publish(event: &str) {
    let mut p = lock(&PUBLISHED);
    if !p.iter().any(|e| e == event) {
        p.push(event.to_owned());
    }
}

/// The events published at run time, in the order they were.
pub fn published() -> Vec<String> {
    lock(&PUBLISHED).clone()
}

/// Why a subscription was refused (MI answers 400 "Bad parameter value" for each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeError {
    /// No loaded module handles the socket's protocol.
    NoTransport(String),
    /// The socket does not parse or resolve.
    BadSocket(String),
}

impl std::fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubscribeError::NoTransport(s) => write!(f, "couldn't find a protocol to support {s}"),
            SubscribeError::BadSocket(s) => f.write_str(s),
        }
    }
}

/// Parses a subscriber socket (`proto:rest`) for the loaded transports.
fn parse_socket(socket: &str) -> Result<Target, SubscribeError> {
    let no_transport = || SubscribeError::NoTransport(socket.to_owned());
    let (proto, rest) = socket.split_once(':').ok_or_else(no_transport)?;
    let settings = lock(&SETTINGS).clone();
    let bad = |why: &str| SubscribeError::BadSocket(format!("bad socket \"{socket}\": {why}"));
    match proto {
        "udp" if settings.datagram => Ok(Target::Udp(resolve(rest).map_err(|e| bad(&e))?)),
        "unix" if settings.datagram => {
            if rest.is_empty() {
                return Err(bad("no path"));
            }
            Ok(Target::Unix(PathBuf::from(rest)))
        }
        "tcp" if settings.stream.is_some() => {
            let (hostport, method) = match rest.split_once('/') {
                Some((h, m)) if !m.is_empty() => (h, Some(m.to_owned())),
                Some((h, _)) => (h, None),
                None => (rest, None),
            };
            Ok(Target::Stream {
                addr: resolve(hostport).map_err(|e| bad(&e))?,
                method,
            })
        }
        "flatstore" if settings.flat.is_some() => {
            let path = Path::new(rest);
            if rest.is_empty() || path.is_dir() {
                return Err(bad("not a file path"));
            }
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !dir.is_dir() {
                return Err(bad("its directory does not exist"));
            }
            Ok(Target::Flat(path.to_owned()))
        }
        "virtual" if settings.virtual_failover.is_some() => {
            virtual_sub::parse(rest, &bad).map(|v| Target::Virtual(Box::new(v)))
        }
        "xmlrpc" if settings.xmlrpc => xmlrpc::parse(rest)
            .map(|t| Target::Xmlrpc(Box::new(t)))
            .map_err(|e| bad(&e)),
        "rabbitmq" => match crate::rabbitmq::parse_subscriber(rest) {
            Some(Ok(sub)) => Ok(Target::Rabbitmq(Box::new(sub))),
            Some(Err(e)) => Err(bad(&e)),
            None => Err(no_transport()),
        },
        _ => Err(no_transport()),
    }
}

/// `host:port` (port required, not 0), resolved now as OpenSIPS does at subscribe time.
fn resolve(hostport: &str) -> Result<SocketAddr, String> {
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| "port not specified".to_owned())?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| "malformed port".to_owned())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {host}"))
}

/// Subscribes `socket` to `event`. `expire`: seconds; `None` never expires. A socket already
/// subscribed is refreshed (its expiry replaced only by a new one, as OpenSIPS does).
pub fn subscribe(event: &str, socket: &str, expire: Option<u64>) -> Result<(), SubscribeError> {
    let target = parse_socket(socket)?;
    crate::profiling::subscribed(event);
    EVER_SUBSCRIBED.store(true, std::sync::atomic::Ordering::Relaxed);
    let now = now();
    let mut subs = lock(&SUBSCRIBERS);
    let list = subs.entry(event.to_owned()).or_default();
    if let Some(old) = list.iter_mut().find(|s| s.target == target) {
        old.since = now;
        if expire.is_some() {
            old.expire = expire;
        }
        return Ok(());
    }
    list.insert(
        0,
        Subscriber {
            socket: socket.to_owned(),
            target,
            expire,
            since: now,
        },
    );
    Ok(())
}

/// One subscriber as MI `evi:subscribers` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub socket: String,
    /// `None`: never expires.
    pub expire: Option<u64>,
    /// Seconds left; `None` once expired.
    pub ttl: Option<u64>,
}

/// Drops the expired subscribers of `event` (all events when `None`).
fn purge(subs: &mut BTreeMap<String, Vec<Subscriber>>, now: u64) {
    for list in subs.values_mut() {
        list.retain(|s| !s.expired(now));
    }
    subs.retain(|_, l| !l.is_empty());
}

/// The live subscribers of `event`, newest first (expired ones are dropped first).
pub fn subscribers(event: &str) -> Vec<Listed> {
    let now = now();
    let mut subs = lock(&SUBSCRIBERS);
    purge(&mut subs, now);
    subs.get(event)
        .map(|l| {
            l.iter()
                .map(|s| Listed {
                    socket: s.socket.clone(),
                    expire: s.expire,
                    ttl: s
                        .expire
                        .and_then(|e| (s.since + e).checked_sub(now))
                        .filter(|t| *t > 0),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The events that have live subscribers.
pub fn subscribed_events() -> Vec<String> {
    let mut subs = lock(&SUBSCRIBERS);
    purge(&mut subs, now());
    subs.keys().cloned().collect()
}

/// Whether `event` has a live subscriber.
pub fn has_subscribers(event: &str) -> bool {
    // event_routing's subscriptions (their own check is as cheap while there are none).
    if crate::ebr::wants(event) {
        return true;
    }
    // Modules ask on their data path (dialog state changes): no lock while nobody ever
    // subscribed.
    if !EVER_SUBSCRIBED.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    let now = now();
    lock(&SUBSCRIBERS)
        .get(event)
        .is_some_and(|l| l.iter().any(|s| !s.expired(now)))
}

/// Delivers a raised event to its live subscribers (newest first). Gives the number of
/// subscribers it could not be handed to (a stream subscriber counts as delivered once queued).
pub fn deliver(event: &str, params: &Params) -> usize {
    crate::ebr::offer(event, params);
    let targets: Vec<Target> = {
        let now = now();
        let mut subs = lock(&SUBSCRIBERS);
        let Some(list) = subs.get_mut(event) else {
            return 0;
        };
        list.retain(|s| !s.expired(now));
        list.iter().map(|s| s.target.clone()).collect()
    };
    if targets.is_empty() {
        return 0;
    }
    let settings = lock(&SETTINGS).clone();
    let mut failed = 0;
    for t in targets {
        if let Err(e) = deliver_to(&t, event, params, &settings) {
            log::error!("cannot deliver {event}: {e}");
            failed += 1;
        }
    }
    failed
}

/// Hands an event to one subscriber.
fn deliver_to(t: &Target, event: &str, params: &Params, settings: &Settings) -> Result<(), String> {
    match t {
        Target::Udp(addr) => send_udp(*addr, payload(event, params, None, None).as_bytes()),
        Target::Unix(path) => UnixDatagram::unbound()
            .and_then(|s| s.send_to(payload(event, params, None, None).as_bytes(), path))
            .map(|_| ())
            .map_err(|e| format!("unix:{}: {e}", path.display())),
        Target::Stream { addr, method } => match &settings.stream {
            Some(st) => queue_stream(*addr, method.as_deref().unwrap_or(event), params, st),
            None => Err("event_stream is not loaded".into()),
        },
        Target::Flat(path) => match &settings.flat {
            Some(fs) => write_flat(path, &flat_line(event, params, fs), fs.mode),
            None => Err("event_flatstore is not loaded".into()),
        },
        Target::Rabbitmq(sub) => crate::rabbitmq::deliver(sub, payload(event, params, None, None)),
        Target::Xmlrpc(t) => xmlrpc::deliver(t, event, params),
        Target::Virtual(v) => virtual_sub::deliver(v, event, params, settings),
    }
}

/// The JSON-RPC 2.0 request of an event, compact, keys in OpenSIPS' order: `id` (only with
/// one), `jsonrpc`, `method`, `params` (left out without parameters; an array when the first
/// one has no name, else an object). `extra` goes first among the parameters.
pub fn payload(
    method: &str,
    params: &Params,
    id: Option<u64>,
    extra: Option<(&str, &str)>,
) -> String {
    let mut out = String::with_capacity(64 + method.len());
    out.push('{');
    if let Some(id) = id {
        out.push_str(&format!("\"id\":{id},"));
    }
    out.push_str("\"jsonrpc\":\"2.0\",\"method\":");
    json_str(&mut out, method);
    let present: Vec<&(Option<String>, Value)> =
        params.iter().filter(|(_, v)| !v.is_null()).collect();
    if !present.is_empty() {
        let named = present[0].0.is_some();
        out.push_str(if named {
            ",\"params\":{"
        } else {
            ",\"params\":["
        });
        let mut first = true;
        if let Some((key, value)) = extra {
            if named {
                json_str(&mut out, key);
                out.push(':');
            }
            json_str(&mut out, value);
            first = false;
        }
        for (name, value) in present {
            if !first {
                out.push(',');
            }
            first = false;
            if named {
                json_str(&mut out, name.as_deref().unwrap_or_default());
                out.push(':');
            }
            match value {
                Value::Int(i) => out.push_str(&i.to_string()),
                other => json_str(&mut out, &other.to_text()),
            }
        }
        out.push(if named { '}' } else { ']' });
    }
    out.push('}');
    out
}

/// Appends `s` as a JSON string literal (the short escapes where JSON has them, `\u00XX` for
/// the other control characters).
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn send_udp(addr: SocketAddr, data: &[u8]) -> Result<(), String> {
    static V4: OnceLock<Option<UdpSocket>> = OnceLock::new();
    static V6: OnceLock<Option<UdpSocket>> = OnceLock::new();
    let (cell, any) = if addr.is_ipv4() {
        (&V4, "0.0.0.0:0")
    } else {
        (&V6, "[::]:0")
    };
    let socket = cell
        .get_or_init(|| {
            let s = UdpSocket::bind(any).ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        })
        .as_ref()
        .ok_or_else(|| "no UDP socket for events".to_owned())?;
    socket
        .send_to(data, addr)
        .map(|_| ())
        .map_err(|e| format!("udp:{addr}: {e}"))
}

/// An event's flatstore line: `NAME` then `<delimiter>value` per parameter (names are not
/// written; a delimiter inside a string value becomes a space), then a newline.
fn flat_line(event: &str, params: &Params, s: &FlatSettings) -> String {
    let mut line = String::new();
    if !s.suppress_event_name {
        line.push_str(event);
    }
    let first = s.delimiter.chars().next().unwrap_or(',');
    for (i, (_, v)) in params.iter().enumerate() {
        if !s.suppress_event_name || i != 0 {
            line.push_str(&s.delimiter);
        }
        match v {
            Value::Null => {}
            Value::Int(n) => line.push_str(&n.to_string()),
            Value::Str(t) => line.extend(t.chars().map(|c| if c == first { ' ' } else { c })),
        }
    }
    line.push('\n');
    line
}

/// The flatstore files open for appending.
static FLAT_FILES: LazyLock<Mutex<HashMap<PathBuf, File>>> = LazyLock::new(Mutex::default);

fn write_flat(path: &Path, line: &str, mode: u32) -> Result<(), String> {
    let mut files = lock(&FLAT_FILES);
    if !files.contains_key(path) {
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(mode)
            .open(path)
            .map_err(|e| format!("flatstore:{}: {e}", path.display()))?;
        files.insert(path.to_owned(), f);
    }
    let f = files
        .get_mut(path)
        .ok_or_else(|| format!("flatstore:{}: not open", path.display()))?;
    if let Err(e) = f.write_all(line.as_bytes()) {
        files.remove(path);
        return Err(format!("flatstore:{}: {e}", path.display()));
    }
    Ok(())
}

/// MI `event_flatstore:rotate`: the file is closed and opened again at its next event (after
/// logrotate moved it). `false` when no subscriber writes to `path`.
pub fn rotate(path: &str) -> bool {
    let target = Target::Flat(PathBuf::from(path));
    let known = lock(&SUBSCRIBERS)
        .values()
        .any(|l| l.iter().any(|s| s.target == target));
    if known {
        lock(&FLAT_FILES).remove(Path::new(path));
    }
    known
}

/// A notification for the stream sender thread.
struct StreamJob {
    addr: SocketAddr,
    payload: String,
    id: Option<u64>,
    timeout: Duration,
}

fn queue_stream(
    addr: SocketAddr,
    method: &str,
    params: &Params,
    s: &StreamSettings,
) -> Result<(), String> {
    static SENDER: OnceLock<Mutex<SyncSender<StreamJob>>> = OnceLock::new();
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = s
        .reliable
        .then(|| NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let extra = s.event_param.as_deref().map(|k| (k, method));
    let job = StreamJob {
        addr,
        payload: payload(method, params, id, extra),
        id,
        timeout: s.timeout,
    };
    let sender = SENDER.get_or_init(|| {
        // Bounded: a peer that is down costs dropped events, not memory.
        let (tx, rx) = sync_channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("event_stream".into())
            .spawn(move || stream_sender(&rx));
        if let Err(e) = spawned {
            log::error!("event_stream: cannot start its sender: {e}");
        }
        Mutex::new(tx)
    });
    let queued = lock(sender).try_send(job);
    match queued {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(_)) => Err(format!(
            "event_stream: {QUEUE} events already wait for their peers, this one is dropped"
        )),
        Err(TrySendError::Disconnected(_)) => Err("event_stream: the sender has stopped".into()),
    }
}

/// How many events may wait for the stream sender.
const QUEUE: usize = 10_000;

/// How long a peer that refused a connection is left alone (its events dropped meanwhile).
const COOLDOWN: Duration = Duration::from_secs(5);

/// The stream sender: one connection per peer, opened on first use and again after it broke.
/// Replies are read and dropped; in reliable mode the reply to each notification is awaited
/// (up to `timeout`) and an error reply or none is logged.
fn stream_sender(rx: &Receiver<StreamJob>) {
    let mut conns: HashMap<SocketAddr, TcpStream> = HashMap::new();
    let mut refused: HashMap<SocketAddr, Instant> = HashMap::new();
    while let Ok(job) = rx.recv() {
        if refused
            .get(&job.addr)
            .is_some_and(|t| t.elapsed() < COOLDOWN)
        {
            continue;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > 2 {
                log::error!("event_stream: {} keeps closing the connection", job.addr);
                break;
            }
            let conn = match conns.get_mut(&job.addr) {
                Some(c) => c,
                None => match TcpStream::connect_timeout(&job.addr, job.timeout) {
                    Ok(c) => {
                        let _ = c.set_write_timeout(Some(job.timeout));
                        let _ = c.set_nodelay(true);
                        conns.entry(job.addr).or_insert(c)
                    }
                    Err(e) => {
                        log::error!(
                            "event_stream: cannot connect to {}: {e} (its events are dropped for {} s)",
                            job.addr,
                            COOLDOWN.as_secs()
                        );
                        refused.insert(job.addr, Instant::now());
                        break;
                    }
                },
            };
            // A connection the peer closed meanwhile is opened again first.
            if !drain(conn) {
                conns.remove(&job.addr);
                continue;
            }
            match conn.write_all(job.payload.as_bytes()) {
                Ok(()) => {
                    if let Some(id) = job.id
                        && let Err(e) = await_reply(conn, id, job.timeout)
                    {
                        log::error!(
                            "event_stream: handling JSON-RPC command [{}] failed: {e}",
                            job.payload
                        );
                    }
                    break;
                }
                Err(e) => {
                    conns.remove(&job.addr);
                    // A kept connection that broke meanwhile: one fresh try.
                    if attempt >= 2 {
                        log::error!("event_stream: cannot write to {}: {e}", job.addr);
                        break;
                    }
                }
            }
        }
    }
}

/// Reads and drops what the peer sent (replies nobody waits for); `false` once the peer
/// closed the connection or it broke.
fn drain(conn: &mut TcpStream) -> bool {
    if conn.set_nonblocking(true).is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    let open = loop {
        match conn.read(&mut buf) {
            Ok(0) => break false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break false,
        }
    };
    open && conn.set_nonblocking(false).is_ok()
}

/// Waits for the reply to request `id`: an object with `"id":id`; one with `"error"` fails.
fn await_reply(conn: &mut TcpStream, id: u64, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let want = format!("\"id\":{id}");
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out".into());
        }
        let _ = conn.set_read_timeout(Some(left));
        match conn.read(&mut buf) {
            Ok(0) => return Err("connection closed".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err("timed out".into());
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Err("timed out".into()),
            Err(e) => return Err(e.to_string()),
        }
        let text = String::from_utf8_lossy(&got).replace(' ', "");
        if text.contains(&want) {
            return if text.contains("\"error\"") {
                Err("error reply".into())
            } else {
                Ok(())
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(pairs: &[(&str, Value)]) -> Vec<(Option<String>, Value)> {
        pairs
            .iter()
            .map(|(n, v)| (Some((*n).to_owned()), v.clone()))
            .collect()
    }

    #[test]
    fn payload_shapes() {
        assert_eq!(
            payload("E_X", &[], None, None),
            r#"{"jsonrpc":"2.0","method":"E_X"}"#
        );
        assert_eq!(
            payload(
                "E_PIKE_BLOCKED",
                &named(&[("ip", Value::str("10.0.0.1"))]),
                None,
                None
            ),
            r#"{"jsonrpc":"2.0","method":"E_PIKE_BLOCKED","params":{"ip":"10.0.0.1"}}"#
        );
        let unnamed = vec![(None, Value::Int(1)), (None, Value::str("a\"b"))];
        assert_eq!(
            payload("E_X", &unnamed, Some(7), Some(("event", "E_X"))),
            r#"{"id":7,"jsonrpc":"2.0","method":"E_X","params":["E_X",1,"a\"b"]}"#
        );
        assert_eq!(
            payload(
                "m",
                &named(&[("a", Value::Null), ("b", Value::Int(-2))]),
                None,
                Some(("ev", "E"))
            ),
            r#"{"jsonrpc":"2.0","method":"m","params":{"ev":"E","b":-2}}"#
        );
    }

    #[test]
    fn flat_lines() {
        let s = FlatSettings {
            delimiter: ",".into(),
            mode: 0o644,
            suppress_event_name: false,
        };
        let p = named(&[
            ("a", Value::str("x,y")),
            ("b", Value::Null),
            ("c", Value::Int(3)),
        ]);
        assert_eq!(flat_line("E_X", &p, &s), "E_X,x y,,3\n");
        assert_eq!(flat_line("E_X", &[], &s), "E_X\n");
        let s = FlatSettings {
            suppress_event_name: true,
            delimiter: "|".into(),
            ..s
        };
        assert_eq!(flat_line("E_X", &p, &s), "x,y||3\n");
    }

    #[test]
    fn expiry_and_listing() {
        let sub = Subscriber {
            socket: "udp:127.0.0.1:9".into(),
            target: Target::Udp("127.0.0.1:9".parse().unwrap()),
            expire: Some(10),
            since: 100,
        };
        assert!(!sub.expired(110));
        assert!(sub.expired(111));
        let never = Subscriber {
            expire: None,
            ..sub
        };
        assert!(!never.expired(u64::MAX / 2));
    }

    #[test]
    fn sockets_need_their_module() {
        // No transport module configured: nothing parses.
        assert!(matches!(
            parse_socket("udp:127.0.0.1:9"),
            Err(SubscribeError::NoTransport(_))
        ));
        assert!(matches!(
            parse_socket("nonsense"),
            Err(SubscribeError::NoTransport(_))
        ));
        assert_eq!(resolve("127.0.0.1:0"), Err("malformed port".into()));
        assert_eq!(resolve("127.0.0.1"), Err("port not specified".into()));
    }
}
