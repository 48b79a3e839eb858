//! The WebSocket side of a connection (RFC 6455, RFC 7118): the upgrade handshakes as client
//! and server, and the frames written; the message framing itself is in `ws`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stream::Io;
use crate::ws;

pub(crate) async fn client_handshake(
    mut stream: Box<dyn Io>,
    dest: SocketAddr,
    limit: Duration,
) -> Result<Box<dyn Io>, String> {
    let key = key();
    let request = ws::client_request(&dest.to_string(), "/", &key);
    let work = async {
        stream
            .write_all(&request)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            if let Some(_used) = ws::parse_accept_response(&buf, &key).map_err(|e| e.to_string())? {
                return Ok::<(), String>(());
            }
            if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                return Err("closed during the WebSocket handshake".into());
            }
        }
    };
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(())) => Ok(stream),
        Ok(Err(e)) => Err(format!("WebSocket handshake with {dest}: {e}")),
        Err(_) => Err(format!("WebSocket handshake with {dest}: timed out")),
    }
}

/// 16 fresh unpredictable bytes for a WebSocket key or mask (RFC 6455 §4.1, §5.3), from the
/// randomly keyed SipHash of the standard library.
pub(crate) fn key() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut key = [0u8; 16];
    for chunk in key.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    key
}

pub(crate) async fn server_handshake(
    mut stream: Box<dyn Io>,
    require_origin: bool,
) -> Result<Box<dyn Io>, String> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match ws::parse_upgrade_request(&buf) {
            Ok(Some((req, used))) => {
                if used != buf.len() {
                    return Err("data after the upgrade request".into());
                }
                // `require_origin` (OpenSIPS' default): browsers send Origin, others must too.
                if require_origin && req.origin.is_none() {
                    let _ = stream
                        .write_all(&ws::reject_response(400, "Bad Request"))
                        .await;
                    return Err("no Origin header (require_origin is on)".into());
                }
                if !req.offers_sip() {
                    let _ = stream
                        .write_all(&ws::reject_response(400, "Bad Request"))
                        .await;
                    return Err("the client did not offer the `sip` subprotocol".into());
                }
                stream
                    .write_all(&ws::accept_response(&req))
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(stream);
            }
            Ok(None) => {}
            Err(e) => {
                // 426 with our version for a version mismatch (RFC 6455 §4.4), else 400.
                let status = e.http_status().unwrap_or(400);
                let reason = match status {
                    426 => "Upgrade Required",
                    405 => "Method Not Allowed",
                    431 => "Request Header Fields Too Large",
                    _ => "Bad Request",
                };
                let _ = stream.write_all(&ws::reject_response(status, reason)).await;
                return Err(e.to_string());
            }
        }
        if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("closed during the upgrade".into());
        }
    }
}

/// One WebSocket frame; a client (`masked`) masks what it sends (RFC 6455 §5.3).
pub(crate) fn frame(op: ws::Opcode, payload: &[u8], masked: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 14);
    let mask = masked.then(|| {
        let k = key();
        [k[0], k[1], k[2], k[3]]
    });
    ws::encode(op, payload, mask, &mut out);
    out.freeze()
}
