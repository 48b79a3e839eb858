//! The connection-oriented transports (TCP, TLS, WS, WSS): one tokio runtime with `tcp_threads`
//! threads owns every connection, frames complete SIP messages and hands them to the SIP workers
//! over a channel. Workers submit writes back and get the outcome (sent / connect failed / write
//! failed) through a callback — the write-outcome reporting OpenSIPS 4.0 lists as future work.
//!
//! Connections are found again by id (a reply goes back on the connection its request came in
//! on), by peer address per protocol, and by aliases (Via `alias`, RFC 5923-style reuse).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

use crate::proto::Proto;
use crate::proxy_protocol;
use crate::tls::TlsContext;
use crate::ws;

mod listeners;
mod prefixed;
mod profile;
mod settings;

use prefixed::Prefixed;
use profile::ConnSettings;
pub use profile::{Profile, Profiles};
use settings::keepalive;
pub use settings::{Keepalive, Settings};

/// A complete SIP message read from a connection.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub data: Bytes,
    pub proto: Proto,
    /// The peer (or the client a PROXY protocol header named).
    pub source: SocketAddr,
    /// The listening socket the connection belongs to.
    pub local: SocketAddr,
    /// The connection it came on; replies go back on it.
    pub conn: u64,
    /// The (source, destination) a PROXY protocol header named, if the connection had one.
    pub proxy: Option<(SocketAddr, SocketAddr)>,
    /// Not a message: the connection has closed (`data` is empty), for OpenSIPS'
    /// `E_CORE_TCP_DISCONNECT`.
    pub closed: bool,
    /// The alias mode of the connection's profile (`tcp_mgm`: 0 never, 1 when the Via asks,
    /// 2 always) in place of `tcp_accept_aliases`; `None` without a profile.
    pub alias_mode: Option<u8>,
}

/// What became of a write job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Sent,
    ConnectFailed(String),
    WriteFailed(String),
}

impl WriteOutcome {
    pub fn is_sent(&self) -> bool {
        *self == WriteOutcome::Sent
    }
}

/// Called once with the outcome of a write.
pub type Done = Box<dyn FnOnce(WriteOutcome) + Send>;

/// A listening socket of a stream protocol.
#[derive(Debug, Clone)]
pub struct Listen {
    pub proto: Proto,
    pub addr: SocketAddr,
    /// `allow_proxy_protocol`: a connection must start with a PROXY v1/v2 header.
    pub proxy_protocol: bool,
    /// `send_proxy_protocol`: connections opened from this socket start with a PROXY v2 header.
    pub send_proxy_protocol: bool,
    /// `reuse_port`: connections opened from this socket use its port as their source port.
    pub reuse_port: bool,
    /// `tos`: the IP TOS byte (traffic class on IPv6) of its connections.
    pub tos: Option<u32>,
}

/// One open connection, as `tcp:list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub id: u64,
    pub proto: Proto,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Seconds since the last read or write.
    pub idle_secs: u64,
    pub outgoing: bool,
}

/// Who a connection is.
/// When a connection was last used, and until when it is kept open whatever its use
/// (milliseconds since the streams' epoch; 0: not set).
#[derive(Debug, Default)]
struct Times {
    last: AtomicU64,
    keep: AtomicU64,
}

impl Times {
    fn new(now_ms: u64) -> Arc<Times> {
        Arc::new(Times {
            last: AtomicU64::new(now_ms),
            keep: AtomicU64::new(0),
        })
    }
}

struct Conn {
    id: u64,
    /// Its messages not yet handled by a worker.
    mailbox: Arc<crate::inbox::Mailbox>,
    proto: Proto,
    peer: SocketAddr,
    local: SocketAddr,
    outgoing: bool,
    proxy: Option<(SocketAddr, SocketAddr)>,
    /// `tcp_connection_lifetime` and `tcp_max_msg_time`, or its profile's.
    lifetime: Duration,
    max_msg_time: Duration,
    alias_mode: Option<u8>,
}

enum Job {
    Write(Bytes, Option<Done>),
}

struct Entry {
    tx: mpsc::UnboundedSender<Job>,
    proto: Proto,
    peer: SocketAddr,
    local: SocketAddr,
    outgoing: bool,
    last: Arc<Times>,
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<u64, Entry>,
    by_peer: HashMap<(Proto, SocketAddr), u64>,
}

struct Shared {
    settings: Settings,
    registry: Mutex<Registry>,
    /// Where complete messages go: each connection's in order, on any free worker.
    deliver: crate::inbox::Inboxes,
    next_id: AtomicU64,
    epoch: Instant,
    stop: AtomicBool,
    tls: Option<Arc<TlsContext>>,
    listeners: listeners::Listeners,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the server, so a poisoned lock is still used.
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn forget(&self, id: u64) {
        crate::tls::forget(id);
        let mut reg = self.registry();
        if reg.by_id.remove(&id).is_some() {
            reg.by_peer.retain(|_, v| *v != id);
        }
    }
}

/// The stream transports: listeners, connections and the runtime that drives them.
pub struct Streams {
    runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
    bound: Vec<(Proto, SocketAddr)>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

impl Streams {
    /// Binds every listener (port 0 gets an ephemeral port) and starts accepting. Complete
    /// messages go to `deliver`, each connection's in order ([`crate::inbox`]).
    pub fn start(
        settings: Settings,
        listeners: Vec<Listen>,
        tls: Option<Arc<TlsContext>>,
        deliver: crate::inbox::Inboxes,
    ) -> std::io::Result<Streams> {
        let threads = match settings.threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("rsips-tcp-io")
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            settings,
            registry: Mutex::new(Registry::default()),
            deliver,
            next_id: AtomicU64::new(1),
            epoch: Instant::now(),
            stop: AtomicBool::new(false),
            tls,
            listeners: listeners::Listeners::default(),
        });
        // Every listener is bound before any accepts: one that cannot bind fails the start.
        let backlog = shared.settings.backlog;
        let mut bound_sockets = Vec::new();
        for l in &listeners {
            let listener = {
                let _context = runtime.enter();
                listeners::bind(l, backlog)?
            };
            bound_sockets.push((l.clone(), listener));
        }
        let mut bound = Vec::new();
        for (l, listener) in bound_sockets {
            let addr = listeners::serve(&shared, runtime.handle(), l.clone(), listener)?;
            bound.push((l.proto, addr));
        }
        Ok(Streams {
            runtime: Some(runtime),
            shared,
            bound,
        })
    }

    /// The listeners with their bound addresses (ephemeral ports resolved).
    pub fn bound(&self) -> &[(Proto, SocketAddr)] {
        &self.bound
    }

    /// Sends `data` to `dest` over `proto`: on connection `conn` if it is still open, else on an
    /// open connection to `dest` (or one aliased to it), else on a new connection from `from`
    /// (or any local address). `done` gets the outcome.
    pub fn send(
        &self,
        proto: Proto,
        conn: Option<u64>,
        dest: SocketAddr,
        from: Option<SocketAddr>,
        data: Bytes,
        done: Option<Done>,
    ) {
        self.send_for(proto, conn, dest, from, None, true, data, done);
    }

    /// [`Streams::send`] for a message relayed on behalf of `origin` (its client and server):
    /// what the PROXY header of a new connection from a `send_proxy_protocol` socket names.
    /// Without `may_connect` (OpenSIPS' `tcp_no_new_conn_*` flags) only an open connection
    /// carries it: with none, the send fails.
    #[allow(clippy::too_many_arguments)]
    pub fn send_for(
        &self,
        proto: Proto,
        conn: Option<u64>,
        dest: SocketAddr,
        from: Option<SocketAddr>,
        origin: Option<(SocketAddr, SocketAddr)>,
        may_connect: bool,
        data: Bytes,
        done: Option<Done>,
    ) {
        let shared = &self.shared;
        let job = Job::Write(data, done);
        let job = {
            let reg = shared.registry();
            let id = conn
                .filter(|id| reg.by_id.contains_key(id))
                .or_else(|| reg.by_peer.get(&(proto, dest)).copied());
            match id.and_then(|id| reg.by_id.get(&id)) {
                Some(entry) => match entry.tx.send(job) {
                    Ok(()) => return,
                    Err(mpsc::error::SendError(job)) => job,
                },
                None => job,
            }
        };
        if !may_connect {
            let Job::Write(_, done) = job;
            if let Some(done) = done {
                done(WriteOutcome::ConnectFailed(format!(
                    "no open connection to {dest} and no new one allowed"
                )));
            }
            return;
        }
        self.connect_and_send(proto, dest, from, origin, job);
    }

    fn connect_and_send(
        &self,
        proto: Proto,
        dest: SocketAddr,
        from: Option<SocketAddr>,
        origin: Option<(SocketAddr, SocketAddr)>,
        job: Job,
    ) {
        let shared = Arc::clone(&self.shared);
        let (tx, rx) = mpsc::unbounded_channel();
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let local_hint = from.or_else(|| shared.listeners.first_for(proto, dest));
        let unspecified = SocketAddr::new(
            match dest {
                SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
            },
            0,
        );
        let cs = ConnSettings::of(
            &shared.settings,
            proto,
            dest,
            local_hint.unwrap_or(unspecified),
        );
        if cs.no_new_conn {
            let Job::Write(_, done) = job;
            if let Some(done) = done {
                done(WriteOutcome::ConnectFailed(format!(
                    "no new connection to {dest} allowed (tcp_mgm profile {})",
                    cs.profile.unwrap_or_default()
                )));
            }
            return;
        }
        {
            let mut reg = shared.registry();
            if reg.by_id.len() >= shared.settings.max_connections {
                drop(reg);
                let Job::Write(_, done) = job;
                if let Some(done) = done {
                    done(WriteOutcome::ConnectFailed(
                        "tcp_max_connections reached".into(),
                    ));
                }
                return;
            }
            reg.by_id.insert(
                id,
                Entry {
                    tx: tx.clone(),
                    proto,
                    peer: dest,
                    local: local_hint.unwrap_or(dest),
                    outgoing: true,
                    last: Times::new(shared.now_ms()),
                },
            );
            reg.by_peer.insert((proto, dest), id);
        }
        // Queued behind the connect: later sends to the same peer join the same queue.
        let _ = tx.send(job);
        let Some(rt) = &self.runtime else { return };
        rt.spawn(async move {
            match connect(&shared, &cs, proto, dest, local_hint, origin).await {
                Ok((stream, local, tls)) => {
                    if let Some(t) = tls {
                        crate::tls::remember(id, t);
                    }
                    let last = {
                        let mut reg = shared.registry();
                        match reg.by_id.get_mut(&id) {
                            Some(e) => {
                                e.local = local;
                                Arc::clone(&e.last)
                            }
                            None => Times::new(0),
                        }
                    };
                    let conn = Conn {
                        id,
                        mailbox: Arc::default(),
                        proto,
                        peer: dest,
                        local,
                        outgoing: true,
                        proxy: None,
                        lifetime: cs.lifetime,
                        max_msg_time: cs.max_msg_time,
                        alias_mode: cs.alias_mode,
                    };
                    run_connection(shared, conn, stream, rx, last).await;
                }
                Err(why) => {
                    shared.forget(id);
                    fail_queue(rx, &WriteOutcome::ConnectFailed(why));
                }
            }
        });
    }

    /// Lets connection `conn` also be found as `(proto, alias)` — the Via `alias` parameter
    /// (`tcp_accept_aliases`) and `force_tcp_alias()`.
    pub fn add_alias(&self, conn: u64, alias: SocketAddr) {
        let mut reg = self.shared.registry();
        let Some(proto) = reg.by_id.get(&conn).map(|e| e.proto) else {
            return;
        };
        // An alias another live connection holds stays with it (OpenSIPS: "possible port
        // hijack attempt"): a second connection from the same address cannot take it over.
        if let Some(&owner) = reg.by_peer.get(&(proto, alias))
            && owner != conn
            && reg.by_id.contains_key(&owner)
        {
            drop(reg);
            log::warn!(
                "{proto:?} alias {alias} is held by another connection: possible port hijack attempt"
            );
            return;
        }
        reg.by_peer.insert((proto, alias), conn);
    }

    /// Whether a connection is open to `dest` over `proto`.
    pub fn has_connection(&self, proto: Proto, dest: SocketAddr) -> bool {
        self.shared.registry().by_peer.contains_key(&(proto, dest))
    }

    /// Every open connection.
    pub fn connections(&self) -> Vec<ConnInfo> {
        let now = self.shared.now_ms();
        let reg = self.shared.registry();
        let mut out: Vec<ConnInfo> = reg
            .by_id
            .iter()
            .map(|(&id, e)| ConnInfo {
                id,
                proto: e.proto,
                peer: e.peer,
                local: e.local,
                idle_secs: now.saturating_sub(e.last.last.load(Ordering::Relaxed)) / 1000,
                outgoing: e.outgoing,
            })
            .collect();
        out.sort_by_key(|c| c.id);
        out
    }

    /// Closes connection `conn` (`tcp_close_conn`); its pending writes fail.
    /// Keeps connection `conn` open for `d` from now even when idle (registrar's
    /// `tcp_persistent_flag`: as long as the registration lasts); a later call replaces the
    /// earlier. `false` when there is no such connection.
    pub fn keep_open(&self, conn: u64, d: Duration) -> bool {
        let reg = self.shared.registry();
        let Some(e) = reg.by_id.get(&conn) else {
            return false;
        };
        let until = self.shared.now_ms() + u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2);
        e.last.keep.store(until.max(1), Ordering::Relaxed);
        true
    }

    /// Closes what OpenSIPS' `tcp_close_conn` / MI `tcp:close` name: a connection id, or every
    /// connection with the peer `[proto:]ip:port`. `Ok(false)` when none matched, `Err` for a
    /// description that is neither.
    pub fn close_described(&self, desc: &str) -> Result<bool, String> {
        let desc = desc.trim();
        if let Ok(id) = desc.parse::<u64>() {
            return Ok(self.close(id));
        }
        let (proto, addr) = match desc.split_once(':') {
            Some((p, rest))
                if ["tcp", "tls", "ws", "wss"].contains(&p.to_ascii_lowercase().as_str()) =>
            {
                (Some(p.to_ascii_lowercase()), rest)
            }
            _ => (None, desc),
        };
        let peer: SocketAddr = addr
            .parse()
            .map_err(|_| format!("`{desc}` is neither a connection id nor [proto:]ip:port"))?;
        let ids: Vec<u64> = self
            .connections()
            .into_iter()
            .filter(|c| c.peer == peer && proto.as_deref().is_none_or(|p| p == c.proto.as_str()))
            .map(|c| c.id)
            .collect();
        let mut closed = false;
        for id in ids {
            closed |= self.close(id);
        }
        Ok(closed)
    }

    pub fn close(&self, conn: u64) -> bool {
        let mut reg = self.shared.registry();
        let found = reg.by_id.remove(&conn).is_some();
        reg.by_peer.retain(|_, v| *v != conn);
        found
    }

    /// Opens a listener while the server runs (OpenSIPS `sockets_mgm`); returns its bound
    /// address.
    pub fn open_listener(&self, listen: Listen) -> std::io::Result<SocketAddr> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| std::io::Error::other("the stream transports are stopped"))?;
        listeners::open(&self.shared, runtime.handle(), listen)
    }

    /// Closes a listener opened by [`Streams::open_listener`] (or at start): nothing more is
    /// accepted on it and the connections it accepted are closed. `false` when there was none.
    pub fn close_listener(&self, proto: Proto, addr: SocketAddr) -> bool {
        listeners::close(&self.shared, proto, addr)
    }

    /// Whether TLS is configured (a tls/wss listener can be opened).
    pub fn has_tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// Every listener now, those opened at run time included.
    pub fn listening(&self) -> Vec<(Proto, SocketAddr)> {
        self.shared
            .listeners
            .all()
            .into_iter()
            .map(|l| (l.proto, l.addr))
            .collect()
    }

    /// Stops accepting, closes every connection and stops the I/O threads.
    pub fn shutdown(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn fail_queue(mut rx: mpsc::UnboundedReceiver<Job>, outcome: &WriteOutcome) {
    rx.close();
    while let Ok(Job::Write(_, done)) = rx.try_recv() {
        if let Some(done) = done {
            done(outcome.clone());
        }
    }
}

/// A connected stream of any flavour (plain, TLS server or client side).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn connect(
    shared: &Shared,
    cs: &ConnSettings,
    proto: Proto,
    dest: SocketAddr,
    from: Option<SocketAddr>,
    origin: Option<(SocketAddr, SocketAddr)>,
) -> Result<(Box<dyn Io>, SocketAddr, Option<crate::tls::TlsSummary>), String> {
    let timeout = cs.connect_timeout;
    // The TLS client domain first: with none matching, nothing is sent at all (OpenSIPS
    // refuses the connection before connecting).
    let verifies = shared
        .tls
        .as_ref()
        .is_some_and(|t| proto.is_secure() && t.client_verifies(dest, None));
    let own = shared
        .tls
        .as_ref()
        .filter(|_| proto.is_secure())
        .and_then(|t| t.client_own(dest, None));
    let client = match (proto.is_secure(), shared.tls.as_ref()) {
        (true, Some(tls)) => Some(tls.client_for(dest, None)?),
        (true, None) => return Err("no TLS client domain configured (load tls_mgm)".into()),
        (false, _) => None,
    };
    let socket = match dest {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| e.to_string())?;
    if let Some(from) = from.filter(|f| f.is_ipv4() == dest.is_ipv4()) {
        // The listener's address with an ephemeral port (OpenSIPS connects from the socket's
        // IP), or its very port with `reuse_port`.
        let listener = shared.listeners.at(from);
        let listener = listener.as_ref();
        let port = match listener {
            Some(l) if l.reuse_port => {
                let _ = socket.set_reuseaddr(true);
                let _ = socket.set_reuseport(true);
                from.port()
            }
            _ => 0,
        };
        if let (Some(tos), SocketAddr::V4(_)) = (listener.and_then(|l| l.tos), from) {
            let _ = socket.set_tos_v4(tos);
        }
        if let Err(e) = socket.bind(SocketAddr::new(from.ip(), port)) {
            return Err(format!("bind {from} for {dest}: {e}"));
        }
    }
    let tcp = match tokio::time::timeout(timeout, socket.connect(dest)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("connect to {dest}: {e}")),
        Err(_) => return Err(format!("connect to {dest}: timed out after {timeout:?}")),
    };
    let _ = tcp.set_nodelay(true);
    keepalive(&tcp, cs.keepalive);
    let local = tcp.local_addr().map_err(|e| e.to_string())?;
    let mut tcp: Box<dyn Io> = Box::new(tcp);
    let sends_proxy = from
        .and_then(|f| shared.listeners.at(f))
        .is_some_and(|l| l.send_proxy_protocol);
    if sends_proxy {
        // v1, the version OpenSIPS reads, naming the client the message is relayed for.
        let (src, dst) = origin.unwrap_or((local, dest));
        let header = proxy_protocol::encode_v1(src, dst);
        tcp.write_all(&header)
            .await
            .map_err(|e| format!("PROXY header to {dest}: {e}"))?;
    }
    let handshake = timeout.max(Duration::from_secs(5));
    let mut tls = None;
    let stream: Box<dyn Io> = if let Some((connector, name)) = client {
        match tokio::time::timeout(handshake, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => {
                tls = crate::tls::TlsSummary::of(s.get_ref().1, verifies)
                    .map(|t| crate::tls::TlsSummary { mine: own, ..t });
                Box::new(s)
            }
            Ok(Err(e)) => return Err(format!("TLS handshake with {dest}: {e}")),
            Err(_) => return Err(format!("TLS handshake with {dest}: timed out")),
        }
    } else {
        tcp
    };
    let stream = if proto.is_websocket() {
        crate::ws_conn::client_handshake(stream, dest, handshake).await?
    } else {
        stream
    };
    Ok((stream, local, tls))
}

/// A new incoming connection: PROXY header, TLS handshake and WebSocket upgrade (in that order),
/// then the SIP message loop.
async fn accepted(
    shared: Arc<Shared>,
    listen: Listen,
    mut tcp: TcpStream,
    peer: SocketAddr,
    cs: ConnSettings,
) {
    let setup = Duration::from_secs(5).max(cs.max_msg_time);
    let mut early = BytesMut::new();
    let mut proxy = None;
    if listen.proxy_protocol {
        // Optional, as in OpenSIPS: data that does not start with a PROXY signature is SIP.
        // `$si`/`$sp` stay the proxy's; `$proxy_protocol(...)` names the client.
        match tokio::time::timeout(setup, read_proxy_header(&mut tcp, &mut early)).await {
            Ok(Ok(found)) => proxy = found,
            Ok(Err(why)) => {
                log::error!(
                    "{}:{} from {peer}: bad PROXY protocol header: {why}",
                    listen.proto,
                    listen.addr
                );
                return;
            }
            // What came so far (a lone CRLF keepalive, say) is handled as SIP.
            Err(_) => {}
        }
    }
    let mut tls_summary = None;
    let stream: Box<dyn Io> = if listen.proto.is_secure() {
        let Some(tls) = shared.tls.as_ref() else {
            log::error!("{}: no TLS server domain", listen.addr);
            return;
        };
        let io = Prefixed {
            prefix: early.split().freeze(),
            inner: tcp,
        };
        // Boxed: the handshake's state is freed once it is done instead of sizing the task.
        match tokio::time::timeout(setup, Box::pin(tls.accept(listen.addr, io))).await {
            Ok(Ok((s, own))) => {
                tls_summary = crate::tls::TlsSummary::of(s.get_ref().1, true)
                    .map(|t| crate::tls::TlsSummary { mine: own, ..t });
                Box::new(s)
            }
            Ok(Err(e)) => {
                log::error!("TLS handshake from {peer}: {e}");
                return;
            }
            Err(_) => {
                log::error!("TLS handshake from {peer}: timed out");
                return;
            }
        }
    } else {
        Box::new(Prefixed {
            prefix: early.split().freeze(),
            inner: tcp,
        })
    };
    let stream = if listen.proto.is_websocket() {
        match tokio::time::timeout(
            setup,
            Box::pin(crate::ws_conn::server_handshake(
                stream,
                shared.settings.ws_require_origin,
            )),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(why)) => {
                log::error!("WebSocket upgrade from {peer}: {why}");
                return;
            }
            Err(_) => {
                log::error!("WebSocket upgrade from {peer}: timed out");
                return;
            }
        }
    } else {
        stream
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    if let Some(t) = tls_summary {
        crate::tls::remember(id, t);
    }
    let last = Times::new(shared.now_ms());
    {
        let mut reg = shared.registry();
        reg.by_id.insert(
            id,
            Entry {
                tx,
                proto: listen.proto,
                peer,
                local: listen.addr,
                outgoing: false,
                last: Arc::clone(&last),
            },
        );
        reg.by_peer.insert((listen.proto, peer), id);
    }
    let conn = Conn {
        id,
        mailbox: Arc::default(),
        proto: listen.proto,
        peer,
        local: listen.addr,
        outgoing: false,
        proxy,
        lifetime: cs.lifetime,
        max_msg_time: cs.max_msg_time,
        alias_mode: cs.alias_mode,
    };
    run_connection(shared, conn, stream, rx, last).await;
}

/// Reads a PROXY v1/v2 header; bytes after it stay in `buf`. `Ok(None)`: a v2 LOCAL header
/// (health check) or `UNKNOWN` — the peer address stays the TCP one.
async fn read_proxy_header(
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<Option<(SocketAddr, SocketAddr)>, String> {
    loop {
        match proxy_protocol::parse(buf) {
            Ok(Some((header, used))) => {
                buf.advance(used);
                return Ok(header.source.zip(header.destination));
            }
            Ok(None) => {}
            // Not a PROXY header at all: the connection carries SIP from its first byte.
            Err(proxy_protocol::ProxyError::BadSignature) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        }
        if buf.len() > 4096 {
            return Err("header too long".into());
        }
        if tcp.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("connection closed".into());
        }
    }
}

/// Runs one connection until it closes, is idle past `tcp_connection_lifetime`, stalls
/// mid-message past `tcp_max_msg_time`, breaks the framing rules or the server stops. One task
/// does both directions: it reads, and writes what workers queue (and the pongs and WebSocket
/// control frames it answers itself) in between — no second task or channel per connection.
/// When an idle connection closes: `tcp_connection_lifetime` after its last use, or later
/// when it is kept open ([`Streams::keep_open`]).
fn idle_deadline(shared: &Shared, times: &Times, lifetime: Duration) -> Instant {
    let used = times.last.load(Ordering::Relaxed);
    let idle = shared.epoch + Duration::from_millis(used) + lifetime;
    match times.keep.load(Ordering::Relaxed) {
        0 => idle,
        keep => idle.max(shared.epoch + Duration::from_millis(keep)),
    }
}

async fn run_connection(
    shared: Arc<Shared>,
    conn: Conn,
    mut stream: Box<dyn Io>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    times: Arc<Times>,
) {
    let last = &times.last;
    let (id, proto, peer, local, outgoing) =
        (conn.id, conn.proto, conn.peer, conn.local, conn.outgoing);
    let websocket = proto.is_websocket();
    let limits = shared.settings.limits;
    let send_timeout = shared.settings.send_timeout;
    // RFC 6455 §5.1: frames from a client are masked, frames from a server are not.
    let mut decoder = ws::Decoder::new(limits.max_message_bytes, !outgoing);
    // Small while idle, grown for a message, shrunk again once it is handled: thousands of idle
    // connections should not each hold a full read buffer.
    let mut buf = BytesMut::with_capacity(IDLE_BUFFER);
    let mut started: Option<Instant> = None;
    // Control frames to send before reading on (pong, WebSocket pong/close).
    let mut control: Vec<Bytes> = Vec::new();
    let mut closing = false;
    let why = 'conn: loop {
        // Deliver every complete message in the buffer.
        loop {
            if websocket {
                match decoder.decode(&mut buf) {
                    Ok(Some(ws::Message::Text(data) | ws::Message::Binary(data))) => {
                        deliver(&shared, data, &conn);
                    }
                    Ok(Some(ws::Message::Ping(p))) => {
                        control.push(crate::ws_conn::frame(ws::Opcode::Pong, &p, outgoing));
                    }
                    Ok(Some(ws::Message::Pong(_))) => {}
                    Ok(Some(ws::Message::Close(_))) => {
                        control.push(crate::ws_conn::frame(
                            ws::Opcode::Close,
                            &1000u16.to_be_bytes(),
                            outgoing,
                        ));
                        closing = true;
                        break;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let code = e.close_code().unwrap_or(1002);
                        control.push(crate::ws_conn::frame(
                            ws::Opcode::Close,
                            &code.to_be_bytes(),
                            outgoing,
                        ));
                        let _ = write(&mut stream, &control, send_timeout).await;
                        break 'conn format!("WebSocket error: {e}");
                    }
                }
            } else {
                match sip::framing::check(&buf, &limits) {
                    Ok(Some(sip::framing::Frame::Ping { len })) => {
                        buf.advance(len);
                        let pong = if conn.proto.is_secure() {
                            shared.settings.tls_crlf_pong
                        } else {
                            shared.settings.crlf_pong
                        };
                        if pong {
                            control.push(Bytes::from_static(b"\r\n"));
                        }
                    }
                    Ok(Some(sip::framing::Frame::Pong { len })) => buf.advance(len),
                    Ok(Some(sip::framing::Frame::Message { len })) => {
                        let data = buf.split_to(len).freeze();
                        deliver(&shared, data, &conn);
                    }
                    Ok(None) => break,
                    Err(e) => break 'conn format!("unframeable stream: {e}"),
                }
            }
        }
        if !control.is_empty() {
            if let Err(e) = write(&mut stream, &control, send_timeout).await {
                break format!("write error: {e}");
            }
            control.clear();
            last.store(shared.now_ms(), Ordering::Relaxed);
        }
        if closing {
            break "closed by the peer (WebSocket close)".to_owned();
        }
        started = if buf.is_empty() {
            None
        } else {
            started.or_else(|| Some(Instant::now()))
        };
        let idle_at = idle_deadline(&shared, &times, conn.lifetime);
        let deadline = match started {
            Some(t) => (t + conn.max_msg_time).min(idle_at),
            None => idle_at,
        };
        if shared.stop.load(Ordering::SeqCst) {
            break "server stopping".to_owned();
        }
        tokio::select! {
            r = read_some(&mut stream, &mut buf) => match r {
                Ok(0) => break "closed by the peer".to_owned(),
                Ok(_) => last.store(shared.now_ms(), Ordering::Relaxed),
                Err(e) => break format!("read error: {e}"),
            },
            job = jobs.recv() => match job {
                Some(Job::Write(data, done)) => {
                    let data = if websocket {
                        crate::ws_conn::frame(ws::Opcode::Text, &data, outgoing)
                    } else {
                        data
                    };
                    match write(&mut stream, std::slice::from_ref(&data), send_timeout).await {
                        Ok(()) => {
                            last.store(shared.now_ms(), Ordering::Relaxed);
                            if let Some(done) = done {
                                done(WriteOutcome::Sent);
                            }
                        }
                        Err(e) => {
                            if let Some(done) = done {
                                done(WriteOutcome::WriteFailed(e.clone()));
                            }
                            break format!("write error: {e}");
                        }
                    }
                }
                // The registry dropped the connection (`close`).
                None => break "closed by request".to_owned(),
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                if started.is_some_and(|t| t.elapsed() >= conn.max_msg_time) {
                    break format!("message not complete within tcp_max_msg_time ({:?})",
                        conn.max_msg_time);
                }
                // The deadline may have moved meanwhile (a registration kept it open).
                if Instant::now() >= idle_deadline(&shared, &times, conn.lifetime) {
                    break "idle past tcp_connection_lifetime".to_owned();
                }
            }
        }
    };
    shared.forget(id);
    if why != "server stopping" {
        // The workers raise E_CORE_TCP_DISCONNECT for it.
        shared.deliver.push(
            &conn.mailbox,
            Inbound {
                data: Bytes::new(),
                proto,
                source: peer,
                local,
                conn: id,
                proxy: conn.proxy,
                closed: true,
                alias_mode: conn.alias_mode,
            },
        );
    }
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.shutdown()).await;
    fail_queue(
        jobs,
        &WriteOutcome::WriteFailed(format!("connection closed: {why}")),
    );
    if !why.starts_with("closed by the peer") && why != "server stopping" {
        log::info!("{proto} connection {id} {local} <-> {peer} closed: {why}");
    }
}

/// Writes frames in order, each within `limit`.
async fn write(stream: &mut Box<dyn Io>, frames: &[Bytes], limit: Duration) -> Result<(), String> {
    for f in frames {
        match tokio::time::timeout(limit, stream.write_all(f)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("timed out after {limit:?}")),
        }
    }
    match tokio::time::timeout(limit, stream.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timed out after {limit:?}")),
    }
}

/// Read buffer capacity of an idle connection.
const IDLE_BUFFER: usize = 512;

/// Reads into `buf`, making room first (doubling for a message that keeps coming); an empty
/// buffer that grew large is given back.
async fn read_some<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.is_empty() && buf.capacity() > 4 * IDLE_BUFFER {
        *buf = BytesMut::with_capacity(IDLE_BUFFER);
    }
    if buf.capacity() - buf.len() < IDLE_BUFFER / 2 {
        buf.reserve(buf.len().max(2048));
    }
    rd.read_buf(buf).await
}

fn deliver(shared: &Shared, data: Bytes, conn: &Conn) {
    shared.deliver.push(
        &conn.mailbox,
        Inbound {
            data,
            proto: conn.proto,
            source: conn.peer,
            local: conn.local,
            conn: conn.id,
            proxy: conn.proxy,
            closed: false,
            alias_mode: conn.alias_mode,
        },
    );
}
