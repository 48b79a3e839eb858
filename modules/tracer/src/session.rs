//! What is being traced, and the taps the server calls for every message it receives and
//! sends. With nothing traced a tap costs one atomic load.
//!
//! - Scope `m`: only the message `trace()` ran for.
//! - Scopes `t` and `d`: a session keyed by Call-ID (and CSeq number for `t`) that every
//!   received and sent message is matched against until it expires or its dialog ends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::hep::Capture;
use crate::{HepDest, Scope, Target};

#[derive(Debug)]
struct Session {
    target: Arc<Target>,
    /// The CSeq (number, method) a transaction session follows; `None` for a dialog.
    cseq: Option<(u32, String)>,
    /// `trace()`'s `trace_attrs`.
    attrs: Option<Arc<str>>,
    until: Instant,
}

/// Sessions by Call-ID.
static SESSIONS: LazyLock<Mutex<HashMap<String, Vec<Session>>>> = LazyLock::new(Mutex::default);
/// How many sessions there are: the taps look no further while it is 0.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// Whether `trace()` ever ran.
static USED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn sessions() -> MutexGuard<'static, HashMap<String, Vec<Session>>> {
    SESSIONS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The message a worker is handling: the targets that already have its received copy.
#[derive(Default)]
struct Turn {
    received: Vec<String>,
}

thread_local! {
    static TURN: RefCell<Turn> = RefCell::default();
}

/// Drops every session (MI `trace off`).
pub fn clear() {
    sessions().clear();
    ACTIVE.store(0, Ordering::Relaxed);
}

/// The value of header `long` (or its compact form) in a raw message.
pub(crate) fn header_of<'a>(data: &'a [u8], long: &str, short: Option<&str>) -> Option<&'a str> {
    header(data, long, short)
}

fn header<'a>(data: &'a [u8], long: &str, short: Option<&str>) -> Option<&'a str> {
    let text = std::str::from_utf8(data.get(..data.len().min(8192))?).ok()?;
    for line in text.split("\r\n").skip(1) {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim_end();
        if name.eq_ignore_ascii_case(long) || short.is_some_and(|s| name.eq_ignore_ascii_case(s)) {
            return Some(value.trim());
        }
    }
    None
}

/// A message's CSeq: number and method.
type CSeq<'a> = Option<(u32, &'a str)>;

/// The Call-ID and CSeq of a raw message.
fn keys(data: &[u8]) -> Option<(&str, CSeq<'_>)> {
    let call_id = header(data, "Call-ID", Some("i"))?;
    let cseq = header(data, "CSeq", None).and_then(|v| {
        let mut it = v.split_whitespace();
        Some((it.next()?.parse().ok()?, it.next()?))
    });
    Some((call_id, cseq))
}

/// Whether a message with CSeq `m` belongs to the transaction of `t`: the same number, and
/// its method, or the CANCEL of it, or (INVITE) the ACK.
fn same_transaction(t: &(u32, String), m: CSeq<'_>) -> bool {
    m.is_some_and(|(n, method)| {
        n == t.0
            && (method.eq_ignore_ascii_case(&t.1)
                || method.eq_ignore_ascii_case("CANCEL")
                || (method.eq_ignore_ascii_case("ACK") && t.1.eq_ignore_ascii_case("INVITE")))
    })
}

/// The live targets following a message with these keys (expired sessions dropped).
fn matching(call_id: &str, cseq: CSeq<'_>) -> Vec<(Arc<Target>, Option<Arc<str>>)> {
    let now = Instant::now();
    let mut all = sessions();
    let Some(list) = all.get_mut(call_id) else {
        return Vec::new();
    };
    let before = list.len();
    list.retain(|s| s.until > now);
    let gone = before - list.len();
    let found = list
        .iter()
        .filter(|s| s.cseq.as_ref().is_none_or(|t| same_transaction(t, cseq)))
        .map(|s| (Arc::clone(&s.target), s.attrs.clone()))
        .collect();
    if list.is_empty() {
        all.remove(call_id);
    }
    ACTIVE.fetch_sub(gone, Ordering::Relaxed);
    found
}

/// Tap: a message a worker received. Starts the worker's new turn and captures the message
/// for the sessions that follow it.
pub fn incoming(data: &[u8], source: SocketAddr, local: SocketAddr, proto: &str) {
    // Until the first trace() nothing is traced: one atomic load per message.
    if !USED.load(Ordering::Relaxed) {
        return;
    }
    TURN.with(|t| {
        t.borrow_mut().received.clear();
    });
    let targets = tap(data, source, local, proto, false);
    if !targets.is_empty() {
        TURN.with(|turn| turn.borrow_mut().received.extend(targets));
    }
}

/// Captures a message for the sessions that follow it (`sent`: it left us); the names of
/// the targets that got it.
fn tap(data: &[u8], src: SocketAddr, dst: SocketAddr, proto: &str, sent: bool) -> Vec<String> {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return Vec::new();
    }
    let Some((call_id, cseq)) = keys(data) else {
        return Vec::new();
    };
    let targets = matching(call_id, cseq);
    for (t, attrs) in &targets {
        let capture = Capture {
            src,
            dst,
            proto,
            payload: data,
            correlation: Some(call_id),
            attrs: attrs.as_deref(),
            time: SystemTime::now(),
        };
        crate::send(t, &capture, sent);
    }
    targets.into_iter().map(|(t, _)| t.name.clone()).collect()
}

/// Whether a send needs the tap (something is traced): the sender works out its local
/// address only then.
pub fn tapping() -> bool {
    ACTIVE.load(Ordering::Relaxed) > 0
}

/// Tap: a message the server sends from `local` to `dest`.
pub fn outgoing(data: &[u8], local: SocketAddr, dest: SocketAddr, proto: &str) {
    tap(data, local, dest, proto, true);
}

/// `trace()` on the message of `ctx`: captures it (unless a session already did) and starts
/// following what belongs to it.
pub fn start(ctx: &mut engine::MsgCtx, target: Arc<Target>, scope: Scope, attrs: Option<String>) {
    let attrs: Option<Arc<str>> = attrs.map(Arc::from);
    USED.store(true, Ordering::Relaxed);
    let raw = ctx.msg.raw().clone();
    let done = TURN.with(|t| t.borrow().received.contains(&target.name));
    if !done && let Some(r) = &ctx.receipt {
        let call_id = keys(&raw).map(|(c, _)| c);
        crate::send(
            &target,
            &Capture {
                src: r.source,
                dst: r.local,
                proto: r.proto,
                payload: &raw,
                correlation: call_id,
                attrs: attrs.as_deref(),
                time: SystemTime::now(),
            },
            false,
        );
        TURN.with(|t| t.borrow_mut().received.push(target.name.clone()));
    }
    let Some((call_id, cseq)) = keys(&raw) else {
        return;
    };
    let call_id = call_id.to_owned();
    let cseq = cseq.map(|(n, m)| (n, m.to_owned()));
    let invite = ctx.msg.is_request() && ctx.msg.method_str() == Some("INVITE");
    let scope = match scope {
        Scope::Dialog => match dialog_of(ctx) {
            Some(id) => {
                let (cid, name) = (call_id.clone(), target.name.clone());
                engine::hooks::dialog_on_end(
                    id,
                    Box::new(move |_| {
                        end(&cid, &name);
                    }),
                );
                Scope::Dialog
            }
            None => Scope::Transaction,
        },
        s => s,
    };
    let (cseq, life) = match scope {
        Scope::Message => return,
        Scope::Transaction if invite => (cseq, Duration::from_secs(200)),
        Scope::Transaction => (cseq, Duration::from_secs(40)),
        Scope::Dialog => (None, Duration::from_secs(24 * 3600)),
    };
    let mut all = sessions();
    let list = all.entry(call_id).or_default();
    let until = Instant::now() + life;
    if let Some(s) = list
        .iter_mut()
        .find(|s| s.target.name == target.name && s.cseq == cseq)
    {
        s.until = s.until.max(until);
        return;
    }
    list.push(Session {
        target,
        cseq,
        attrs,
        until,
    });
    ACTIVE.fetch_add(1, Ordering::Relaxed);
}

/// The dialog of the message, created when the dialog module runs and it has none yet.
fn dialog_of(ctx: &mut engine::MsgCtx) -> Option<u64> {
    if let Some(d) = &ctx.dialog {
        return Some(d.id);
    }
    if !engine::hooks::dialog_running() {
        log::warn!("tracer: dialog scope without the dialog module: tracing the transaction");
        return None;
    }
    engine::hooks::dialog_create(ctx)
}

/// A dialog ended: its sessions for `target` stop.
fn end(call_id: &str, target: &str) {
    let mut all = sessions();
    if let Some(list) = all.get_mut(call_id) {
        let before = list.len();
        list.retain(|s| !(s.target.name == target && s.cseq.is_none()));
        ACTIVE.fetch_sub(before - list.len(), Ordering::Relaxed);
        if list.is_empty() {
            all.remove(call_id);
        }
    }
}

/// A `sip_trace` row for the database writer.
type Row = (
    Arc<dyn db::Connection>,
    String,
    Vec<(&'static str, db::Value)>,
);

/// Queues a row for the database writer thread (started on first use).
pub fn store(conn: Arc<dyn db::Connection>, table: String, row: Vec<(&'static str, db::Value)>) {
    static TX: OnceLock<Mutex<SyncSender<Row>>> = OnceLock::new();
    let tx = TX.get_or_init(|| {
        let (tx, rx) = sync_channel::<Row>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("tracer_db".into())
            .spawn(move || {
                while let Ok((conn, table, row)) = rx.recv() {
                    if let Err(e) = conn.insert(&table, &row) {
                        log::error!("tracer: cannot write to {table}: {e}");
                    }
                }
            });
        if let Err(e) = spawned {
            log::error!("tracer: cannot start the database writer: {e}");
        }
        Mutex::new(tx)
    });
    let sent = tx
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .try_send((conn, table, row));
    if let Err(TrySendError::Full(_)) = sent {
        log::error!("tracer: {QUEUE} rows already wait for the database, this one is dropped");
    }
}

/// How many captures may wait for the database writer or the HEP TCP sender: a database or
/// collector that cannot keep up costs dropped captures, not memory.
const QUEUE: usize = 10_000;

/// How long a collector that refused a connection is left alone (its captures dropped).
const COOLDOWN: Duration = Duration::from_secs(5);

/// A HEP packet for the TCP sender, with its server.
type Packet = (SocketAddr, Vec<u8>);

/// Sends a HEP packet: over UDP at once, over TCP through a sender thread that keeps one
/// connection per server.
pub fn deliver(dest: &HepDest, packet: Vec<u8>) {
    if dest.tcp {
        static TX: OnceLock<Mutex<SyncSender<Packet>>> = OnceLock::new();
        let tx = TX.get_or_init(|| {
            let (tx, rx) = sync_channel(QUEUE);
            if let Err(e) = std::thread::Builder::new()
                .name("hep_tcp".into())
                .spawn(move || tcp_sender(&rx))
            {
                log::error!("proto_hep: cannot start the TCP sender: {e}");
            }
            Mutex::new(tx)
        });
        let sent = tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_send((dest.addr, packet));
        if let Err(TrySendError::Full(_)) = sent {
            log::error!(
                "proto_hep: {QUEUE} packets already wait for {}, this one is dropped",
                dest.addr
            );
        }
        return;
    }
    let (cell, any) = if dest.addr.is_ipv4() {
        (&V4, "0.0.0.0:0")
    } else {
        (&V6, "[::]:0")
    };
    let socket = cell.get_or_init(|| {
        let s = UdpSocket::bind(any).ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    });
    match socket {
        Some(s) => {
            if let Err(e) = s.send_to(&packet, dest.addr) {
                log::error!("proto_hep: cannot send to {}: {e}", dest.addr);
            }
        }
        None => log::error!("proto_hep: no UDP socket to send HEP from"),
    }
}

/// The UDP sockets HEP leaves from, by address family: a `hep_udp` socket of the script's
/// (as OpenSIPS sends from it), else one on an ephemeral port made on first use.
static V4: OnceLock<Option<UdpSocket>> = OnceLock::new();
static V6: OnceLock<Option<UdpSocket>> = OnceLock::new();

/// Sends HEP over UDP from `socket` (bound on a `hep_udp` listener's address) for its
/// address family; the first one of a family counts.
pub(crate) fn send_from(socket: UdpSocket) -> std::io::Result<()> {
    socket.set_nonblocking(true)?;
    let cell = if socket.local_addr()?.is_ipv4() {
        &V4
    } else {
        &V6
    };
    let _ = cell.set(Some(socket));
    Ok(())
}

fn tcp_sender(rx: &Receiver<Packet>) {
    use std::io::Write;
    let mut conns: HashMap<SocketAddr, TcpStream> = HashMap::new();
    let mut refused: HashMap<SocketAddr, Instant> = HashMap::new();
    while let Ok((addr, packet)) = rx.recv() {
        if refused.get(&addr).is_some_and(|t| t.elapsed() < COOLDOWN) {
            continue;
        }
        for attempt in 0..2 {
            if let std::collections::hash_map::Entry::Vacant(slot) = conns.entry(addr) {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                    Ok(c) => {
                        let _ = c.set_write_timeout(Some(Duration::from_secs(1)));
                        let _ = c.set_nodelay(true);
                        slot.insert(c);
                    }
                    Err(e) => {
                        log::error!(
                            "proto_hep: cannot connect to {addr}: {e} (its packets are dropped for {} s)",
                            COOLDOWN.as_secs()
                        );
                        refused.insert(addr, Instant::now());
                        break;
                    }
                }
            }
            let Some(c) = conns.get_mut(&addr) else { break };
            match c.write_all(&packet) {
                Ok(()) => break,
                Err(e) => {
                    conns.remove(&addr);
                    if attempt == 1 {
                        log::error!("proto_hep: cannot send to {addr}: {e}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_raw_messages() {
        let m =
            b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\ni: abc@h\r\nCSeq: 12 INVITE\r\n\r\nCall-ID: body";
        assert_eq!(keys(m), Some(("abc@h", Some((12, "INVITE")))));
        let m = b"SIP/2.0 200 OK\r\nCall-Id :  x-1 \r\nCSeq: 3 BYE\r\n\r\n";
        assert_eq!(keys(m), Some(("x-1", Some((3, "BYE")))));
        let invite = (1, "INVITE".to_owned());
        assert!(same_transaction(&invite, Some((1, "ACK"))));
        assert!(same_transaction(&invite, Some((1, "CANCEL"))));
        assert!(!same_transaction(&invite, Some((1, "BYE"))));
        assert!(!same_transaction(&invite, Some((2, "INVITE"))));
        assert_eq!(keys(b"OPTIONS sip:a SIP/2.0\r\n\r\n"), None);
    }
}
