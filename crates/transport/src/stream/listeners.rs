//! The listening sockets of the stream transports: bound at start, and opened or closed while
//! the server runs (OpenSIPS `sockets_mgm`). Each has an accept task that a close stops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;

use super::{ConnSettings, Listen, Shared, accepted, keepalive};
use crate::proto::Proto;

/// The listeners now, and how to stop the accept task of each.
#[derive(Debug, Default)]
pub(super) struct Listeners {
    list: RwLock<Vec<Listen>>,
    stops: Mutex<HashMap<(Proto, SocketAddr), oneshot::Sender<()>>>,
}

impl Listeners {
    pub(super) fn all(&self) -> Vec<Listen> {
        self.list
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The listener bound to `addr` (any protocol).
    pub(super) fn at(&self, addr: SocketAddr) -> Option<Listen> {
        self.list
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|l| l.addr == addr)
            .cloned()
    }

    /// The address of the first listener of `proto` in the address family of `dest`.
    pub(super) fn first_for(&self, proto: Proto, dest: SocketAddr) -> Option<SocketAddr> {
        self.list
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|l| l.proto == proto && l.addr.is_ipv4() == dest.is_ipv4())
            .map(|l| l.addr)
    }

    fn add(&self, listen: Listen, stop: oneshot::Sender<()>) {
        self.stops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((listen.proto, listen.addr), stop);
        self.list
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(listen);
    }

    /// Forgets the listener; dropping its stop sender ends its accept task.
    fn remove(&self, proto: Proto, addr: SocketAddr) -> bool {
        let stop = self
            .stops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(proto, addr));
        let mut list = self
            .list
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = list.len();
        list.retain(|l| !(l.proto == proto && l.addr == addr));
        drop(stop);
        list.len() != before
    }
}

/// A bound, listening socket with the listener's options (port 0 gets an ephemeral port).
pub(super) fn bind(l: &Listen, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = match l.addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    if l.reuse_port {
        socket.set_reuseport(true)?;
    }
    if let (Some(tos), SocketAddr::V4(_)) = (l.tos, l.addr) {
        socket.set_tos_v4(tos)?;
    }
    socket.bind(l.addr)?;
    socket.listen(backlog.max(1))
}

/// Starts accepting on a bound listener (its address resolved); returns that address.
pub(super) fn serve(
    shared: &Arc<Shared>,
    runtime: &tokio::runtime::Handle,
    listen: Listen,
    listener: TcpListener,
) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    let listen = Listen { addr, ..listen };
    let (stop, stopped) = oneshot::channel();
    shared.listeners.add(listen.clone(), stop);
    runtime.spawn(accept_loop(Arc::clone(shared), listen, listener, stopped));
    Ok(addr)
}

/// Opens a listener while the server runs.
pub(super) fn open(
    shared: &Arc<Shared>,
    runtime: &tokio::runtime::Handle,
    listen: Listen,
) -> std::io::Result<SocketAddr> {
    // One listener per address: another (SO_REUSEPORT lets it bind) would take the first
    // one's place in the table.
    if shared
        .listeners
        .at(listen.addr)
        .is_some_and(|l| l.proto == listen.proto)
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("{}:{} is already listening", listen.proto, listen.addr),
        ));
    }
    // Registering with the reactor needs the runtime's context, not a blocking call (an MI
    // command may run on another runtime's thread).
    let listener = {
        let _context = runtime.enter();
        bind(&listen, shared.settings.backlog)?
    };
    serve(shared, runtime, listen, listener)
}

/// Closes a listener: it accepts nothing more, and the connections it accepted are closed.
/// `false` when there was no such listener.
pub(super) fn close(shared: &Shared, proto: Proto, addr: SocketAddr) -> bool {
    if !shared.listeners.remove(proto, addr) {
        return false;
    }
    let mut reg = shared.registry();
    let gone: Vec<u64> = reg
        .by_id
        .iter()
        .filter(|(_, e)| !e.outgoing && e.proto == proto && e.local == addr)
        .map(|(id, _)| *id)
        .collect();
    for id in &gone {
        reg.by_id.remove(id);
    }
    reg.by_peer.retain(|_, v| !gone.contains(v));
    true
}

async fn accept_loop(
    shared: Arc<Shared>,
    listen: Listen,
    listener: TcpListener,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let (tcp, peer) = tokio::select! {
            // The sender is dropped (or used) when the listener is closed.
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    log::error!("accept on {}:{}: {e}", listen.proto, listen.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if shared.registry().by_id.len() >= shared.settings.max_connections {
            log::error!(
                "tcp_max_connections ({}) reached, refusing {peer}",
                shared.settings.max_connections
            );
            drop(tcp);
            continue;
        }
        let _ = tcp.set_nodelay(true);
        // The connection's profile, asked once: it keeps it for its whole life.
        let cs = ConnSettings::of(&shared.settings, listen.proto, peer, listen.addr);
        keepalive(&tcp, cs.keepalive);
        tokio::spawn(accepted(Arc::clone(&shared), listen.clone(), tcp, peer, cs));
    }
}
