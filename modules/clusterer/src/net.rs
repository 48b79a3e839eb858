//! proto_bin's TCP side: listeners that frame BIN packets off each connection, and one
//! outgoing connection per node address, opened on first use and again after a failure.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What a reader does with each whole packet: the packet, who sent it, and the connection
/// it came on (for an answer on that connection).
pub type OnPacket = Arc<dyn Fn(&[u8], SocketAddr, &mut dyn Write) + Send + Sync>;

/// The most connections read at once (accepted and opened); more are refused.
const MAX_CONNECTIONS: usize = 512;

#[derive(Default)]
struct Counter(Mutex<usize>);

impl Counter {
    fn enter(&self) -> bool {
        let mut n = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if *n >= MAX_CONNECTIONS {
            return false;
        }
        *n += 1;
        true
    }

    fn leave(&self) {
        let mut n = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *n = n.saturating_sub(1);
    }
}

/// The BIN transport of this node.
pub struct Net {
    conns: Mutex<HashMap<SocketAddr, Arc<Mutex<Option<TcpStream>>>>>,
    send_timeout: Duration,
    on_packet: OnPacket,
    readers: Arc<Counter>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("send_timeout", &self.send_timeout)
            .finish()
    }
}

/// Reads packets off `stream` until it closes or sends something that is not BIN.
fn read_loop(mut stream: TcpStream, peer: SocketAddr, on_packet: &OnPacket) {
    let Ok(mut answer) = stream.try_clone() else {
        return;
    };
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        loop {
            match crate::bin::check(&buf) {
                Ok(Some(n)) => {
                    let packet: Vec<u8> = buf.drain(..n).collect();
                    on_packet(&packet, peer, &mut answer);
                }
                Ok(None) => break,
                Err(e) => {
                    log::warn!("proto_bin: closing connection from {peer}: {e}");
                    return;
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
}

fn spawn_reader(stream: TcpStream, peer: SocketAddr, on_packet: OnPacket, readers: Arc<Counter>) {
    if !readers.enter() {
        log::warn!("proto_bin: too many connections, dropping {peer}");
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("bin reader".into())
        .spawn({
            let readers = Arc::clone(&readers);
            move || {
                read_loop(stream, peer, &on_packet);
                readers.leave();
            }
        });
    if spawned.is_err() {
        readers.leave();
    }
}

impl Net {
    pub fn new(send_timeout: Duration, on_packet: OnPacket) -> Net {
        Net {
            conns: Mutex::default(),
            send_timeout,
            on_packet,
            readers: Arc::default(),
        }
    }

    /// Binds `addr` and accepts connections on it in a thread of its own.
    pub fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, String> {
        let l = TcpListener::bind(addr).map_err(|e| format!("bin:{addr}: {e}"))?;
        let local = l.local_addr().map_err(|e| e.to_string())?;
        let (on_packet, readers) = (Arc::clone(&self.on_packet), Arc::clone(&self.readers));
        std::thread::Builder::new()
            .name("bin listener".into())
            .spawn(move || {
                for conn in l.incoming() {
                    let Ok(c) = conn else { continue };
                    let Ok(peer) = c.peer_addr() else { continue };
                    let _ = c.set_nodelay(true);
                    spawn_reader(c, peer, Arc::clone(&on_packet), Arc::clone(&readers));
                }
            })
            .map_err(|e| format!("cannot start the bin listener: {e}"))?;
        Ok(local)
    }

    fn connect(&self, to: SocketAddr) -> std::io::Result<TcpStream> {
        let s = TcpStream::connect_timeout(&to, self.send_timeout)?;
        s.set_write_timeout(Some(self.send_timeout))?;
        let _ = s.set_nodelay(true);
        // A peer may answer on the connection we opened (OpenSIPS answers an unknown node
        // on the connection its ping came on).
        if let Ok(r) = s.try_clone() {
            spawn_reader(
                r,
                to,
                Arc::clone(&self.on_packet),
                Arc::clone(&self.readers),
            );
        }
        Ok(s)
    }

    /// Sends one packet to `to`, over the open connection or a new one; a connection that
    /// fails is dropped and one new connection is tried. `false` when it could not be sent.
    pub fn send(&self, to: SocketAddr, packet: &[u8]) -> bool {
        let slot = {
            let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(conns.entry(to).or_default())
        };
        let mut conn = slot.lock().unwrap_or_else(PoisonError::into_inner);
        for _ in 0..2 {
            if conn.is_none() {
                match self.connect(to) {
                    Ok(s) => *conn = Some(s),
                    Err(e) => {
                        log::debug!("proto_bin: cannot connect to {to}: {e}");
                        return false;
                    }
                }
            }
            if let Some(s) = conn.as_mut()
                && s.write_all(packet).is_ok()
            {
                return true;
            }
            if let Some(s) = conn.take() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        false
    }
}
