//! Sockets opened and closed while the server runs (`sockets_mgm`). A UDP one gets a reader
//! thread that hands its datagrams to a pool of `processes` workers shared by every dynamic
//! UDP socket (as OpenSIPS' "sockets mgm pool"); a TCP, TLS, WS or WSS one is a listener of
//! the stream transports, served by the TCP workers like the configured ones.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::{Receipt, Worker};
use transport::Proto;
use transport::stream::{Listen, Streams};

use super::{Current, Outlet, Scripts, bind_udp, timed_handle};

/// A datagram read on a dynamic UDP socket, waiting for a pool worker.
pub(super) struct Datagram {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    source: SocketAddr,
    data: Vec<u8>,
}

/// Starts the pool's workers; returns where the readers queue datagrams.
pub(super) fn start_pool(
    workers: usize,
    scripts: &Arc<Scripts>,
    initial: &Worker,
    outlet: &Arc<Outlet>,
    stop: &Arc<AtomicBool>,
    handles: &mut Vec<JoinHandle<()>>,
    processes: &mut Vec<String>,
) -> crossbeam_channel::Sender<Datagram> {
    // Bounded: a flood on one socket waits in its kernel buffer rather than in memory here.
    let (tx, rx) = crossbeam_channel::bounded::<Datagram>(4096);
    for _ in 0..workers.max(1) {
        let (rx, scripts, outlet, stop) = (
            rx.clone(),
            Arc::clone(scripts),
            Arc::clone(outlet),
            Arc::clone(stop),
        );
        let mut state = initial.clone();
        processes.push("sockets mgm pool".to_owned());
        handles.push(std::thread::spawn(move || {
            let mut current = Current::new(&scripts);
            while !stop.load(Ordering::SeqCst) {
                let Ok(d) = rx.recv_timeout(Duration::from_millis(100)) else {
                    continue;
                };
                let receipt = Receipt {
                    source: d.source,
                    proto: "udp",
                    local: d.local,
                    conn: None,
                    proxy: None,
                };
                current.refresh(&scripts, &mut state);
                for out in timed_handle(&d.data, receipt, &current.script, &mut state, None) {
                    outlet.send(out, Some(&d.socket));
                }
            }
        }));
    }
    tx
}

/// A UDP socket's reader: its stop flag and thread.
struct Reader {
    closed: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The server's side of `sockets_mgm`.
pub(super) struct Opener {
    pub outlet: Arc<Outlet>,
    pub streams: Option<Arc<Streams>>,
    pub pool: crossbeam_channel::Sender<Datagram>,
    pub stop: Arc<AtomicBool>,
    /// The transports whose module (`proto_udp`, `proto_tcp` …) the script loads.
    pub protos: Vec<&'static str>,
    readers: Mutex<HashMap<SocketAddr, Reader>>,
}

impl Opener {
    pub fn new(
        outlet: Arc<Outlet>,
        streams: Option<Arc<Streams>>,
        pool: crossbeam_channel::Sender<Datagram>,
        stop: Arc<AtomicBool>,
        script: &engine::Script,
    ) -> Opener {
        let protos = ["udp", "tcp", "tls", "ws", "wss"]
            .into_iter()
            .filter(|p| script.loads(&format!("proto_{p}")))
            .collect();
        Opener {
            outlet,
            streams,
            pool,
            stop,
            protos,
            readers: Mutex::default(),
        }
    }

    fn open_udp(&self, spec: &sockets_mgm::Spec) -> Result<SocketAddr, String> {
        // A configured socket's address (bound with SO_REUSEPORT, a second bind would
        // succeed and split its traffic).
        if self.outlet.udp.iter().any(|(a, _)| *a == spec.addr) {
            return Err(format!("udp:{} is a configured socket", spec.addr));
        }
        let tos = (spec.tos != 0).then_some(spec.tos);
        let socket = retry_in_use(|| bind_udp(spec.addr, tos)).map_err(|e| e.to_string())?;
        let socket = Arc::new(socket);
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        self.outlet
            .dynamic_udp
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((local, Arc::clone(&socket)));
        let closed = Arc::new(AtomicBool::new(false));
        let (pool, stop, flag) = (
            self.pool.clone(),
            Arc::clone(&self.stop),
            Arc::clone(&closed),
        );
        let thread = std::thread::spawn(move || read_udp(&socket, local, &pool, &stop, &flag));
        self.readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(local, Reader { closed, thread });
        Ok(local)
    }

    fn close_udp(&self, addr: SocketAddr) {
        self.outlet
            .dynamic_udp
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(a, _)| *a != addr);
        let reader = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&addr);
        if let Some(r) = reader {
            r.closed.store(true, Ordering::SeqCst);
            // Within its 100 ms read timeout; the socket closes with its last user.
            let _ = r.thread.join();
        }
    }
}

impl sockets_mgm::Opener for Opener {
    fn open(&self, spec: &sockets_mgm::Spec) -> Result<SocketAddr, String> {
        if !self.protos.contains(&spec.proto) {
            return Err(format!(
                "no transport module for `{}` sockets (loadmodule \"proto_{}.so\")",
                spec.proto, spec.proto
            ));
        }
        if spec.proto == "udp" {
            return self.open_udp(spec);
        }
        let (Some(streams), Some(proto)) = (&self.streams, Proto::parse(spec.proto)) else {
            return Err(format!("no {} transport", spec.proto));
        };
        if proto.is_secure() && !streams.has_tls() {
            return Err(format!(
                "a {} socket needs `loadmodule \"tls_mgm.so\"` with a server domain",
                spec.proto
            ));
        }
        let listen = Listen {
            proto,
            addr: spec.addr,
            proxy_protocol: false,
            send_proxy_protocol: false,
            reuse_port: spec.reuse_port,
            tos: (spec.tos != 0).then_some(spec.tos),
        };
        retry_in_use(|| streams.open_listener(listen.clone())).map_err(|e| e.to_string())
    }

    fn close(&self, spec: &sockets_mgm::Spec) {
        if spec.proto == "udp" {
            self.close_udp(spec.addr);
        } else if let (Some(streams), Some(proto)) = (&self.streams, Proto::parse(spec.proto)) {
            streams.close_listener(proto, spec.addr);
        }
    }
}

/// `bind`, tried again for up to a second while the address is still in use: a socket closed
/// just before (a changed row is closed, then opened again) lets go of it a moment later.
fn retry_in_use<T>(mut bind: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match bind() {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Reads one dynamic UDP socket until it is closed or the server stops.
fn read_udp(
    socket: &Arc<UdpSocket>,
    local: SocketAddr,
    pool: &crossbeam_channel::Sender<Datagram>,
    stop: &AtomicBool,
    closed: &AtomicBool,
) {
    let mut buf = vec![0u8; 65_535];
    while !stop.load(Ordering::SeqCst) && !closed.load(Ordering::SeqCst) {
        let (n, source) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                crate::logging::core(-1, &format!("udp receive on {local}: {e}"));
                continue;
            }
        };
        let Some(data) = buf.get(..n) else { continue };
        let d = Datagram {
            socket: Arc::clone(socket),
            local,
            source,
            data: data.to_vec(),
        };
        // A full queue waits (the pool is busy); the stop and close flags are still seen.
        let mut d = Some(d);
        while let Some(item) = d.take() {
            match pool.send_timeout(item, Duration::from_millis(100)) {
                Ok(()) => {}
                Err(crossbeam_channel::SendTimeoutError::Timeout(item)) => {
                    if stop.load(Ordering::SeqCst) || closed.load(Ordering::SeqCst) {
                        break;
                    }
                    d = Some(item);
                }
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return,
            }
        }
    }
}
