//! `mi_datagram`: one JSON-RPC request per datagram (UDP or a unix datagram socket), one
//! response datagram back to the sender.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::Mi;

/// `socket_name`: `udp:ip:port` or a unix socket path.
#[derive(Debug)]
pub enum Endpoint {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

/// Binds `socket_name` (an existing unix socket file is replaced).
pub fn bind(socket_name: &str) -> std::io::Result<Endpoint> {
    if let Some(addr) = socket_name.strip_prefix("udp:") {
        let s = UdpSocket::bind(addr)?;
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
        return Ok(Endpoint::Udp(s));
    }
    let path = socket_name.strip_prefix("unix:").unwrap_or(socket_name);
    let _ = std::fs::remove_file(path);
    let s = UnixDatagram::bind(path)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(Endpoint::Unix(s))
}

/// Serves requests until `stop`. Each request runs on its own thread, so a command that waits
/// (`tm:uac_dlg` until the final reply) does not hold up the others, as OpenSIPS' async MI.
pub fn serve(endpoint: Endpoint, mi: Arc<Mi>, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_535];
        while !stop.load(Ordering::SeqCst) {
            match &endpoint {
                Endpoint::Udp(s) => {
                    if let Ok((n, from)) = s.recv_from(&mut buf)
                        && let Ok(reply) = s.try_clone()
                    {
                        let (req, mi) = (buf[..n].to_vec(), Arc::clone(&mi));
                        std::thread::spawn(move || {
                            if let Some(resp) = mi.handle(&req) {
                                let _ = reply.send_to(resp.as_bytes(), from);
                            }
                        });
                    }
                }
                Endpoint::Unix(s) => {
                    if let Ok((n, from)) = s.recv_from(&mut buf)
                        && let Some(path) = from.as_pathname().map(ToOwned::to_owned)
                        && let Ok(reply) = s.try_clone()
                    {
                        let (req, mi) = (buf[..n].to_vec(), Arc::clone(&mi));
                        std::thread::spawn(move || {
                            if let Some(resp) = mi.handle(&req) {
                                let _ = reply.send_to(resp.as_bytes(), path);
                            }
                        });
                    }
                }
            }
        }
    });
}
