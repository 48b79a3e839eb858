//! The UDP server: one socket per `socket=udp:…` line, `udp_workers` threads reading it, each
//! running the compiled script over the requests it receives and sending what the script queued.
//! Malformed requests get a 400 naming the fault (or the RFC 3261 class: 416, 505); malformed
//! responses are dropped. This is the first slice of the transports issue (#4): UDP only.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use engine::{Log, MsgCtx, Receipt, Script, Worker};
use sip::{Reaction, SipMessage};

/// Writes script log lines to stderr with their OpenSIPS level name.
pub struct StderrLog;

impl Log for StderrLog {
    fn log(&mut self, level: i32, text: &str) {
        let name = match level {
            i32::MIN..=-3 => "ALERT",
            -2 => "CRITICAL",
            -1 => "ERROR",
            0 | 1 => "WARNING",
            2 => "NOTICE",
            3 => "INFO",
            _ => "DBG",
        };
        eprint!("{name}:script: {text}");
        if !text.ends_with('\n') {
            eprintln!();
        }
    }
}

/// Running listeners and their workers (they stop when the shared flag is raised).
pub struct Server {
    workers: Vec<JoinHandle<()>>,
}

/// Resolves `udp:host:port` socket names to addresses (`*` is every interface).
pub fn udp_addresses(sockets: &[String]) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for s in sockets {
        let Some(rest) = s.strip_prefix("udp:") else {
            continue;
        };
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("bad socket `{s}`"))?;
        let host = match host {
            "*" => "0.0.0.0",
            h => h.trim_start_matches('[').trim_end_matches(']'),
        };
        let port: u16 = port.parse().map_err(|_| format!("bad port in `{s}`"))?;
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve `{s}`: {e}"))?
            .next()
            .ok_or_else(|| format!("cannot resolve `{s}`"))?;
        out.push(addr);
    }
    Ok(out)
}

impl Server {
    /// Binds every address and starts `workers` threads per socket.
    pub fn start(
        script: Arc<Script>,
        addresses: &[SocketAddr],
        workers: usize,
        initial: &Worker,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Server> {
        let mut sockets = Vec::new();
        for addr in addresses {
            let socket = UdpSocket::bind(addr)?;
            socket.set_read_timeout(Some(Duration::from_millis(100)))?;
            let local = socket.local_addr()?;
            eprintln!("NOTICE:core: listening on udp:{local}");
            sockets.push((local, socket));
        }
        // Every worker can send from any socket (`force_send_socket`, `$socket_out`).
        let all: Arc<Vec<(SocketAddr, UdpSocket)>> = Arc::new(sockets);
        let mut handles = Vec::new();
        for (local, socket) in all.iter() {
            for _ in 0..workers.max(1) {
                let socket = socket.try_clone()?;
                let (script, stop, all) =
                    (Arc::clone(&script), Arc::clone(&stop), Arc::clone(&all));
                let (local, state) = (*local, initial.clone());
                handles.push(std::thread::spawn(move || {
                    worker(socket, local, &all, state, script, stop)
                }));
            }
        }
        // One thread per timer_route, each with its own `$var`s, like OpenSIPS' timer processes.
        let timers: Vec<(String, u64)> = script.timers().map(|(n, s)| (n.to_owned(), s)).collect();
        for (n, (name, secs)) in timers.into_iter().enumerate() {
            let (script, stop, mut state) =
                (Arc::clone(&script), Arc::clone(&stop), initial.clone());
            handles.push(std::thread::spawn(move || {
                let period = Duration::from_secs(secs);
                let mut next = std::time::Instant::now() + period;
                while !stop.load(Ordering::SeqCst) {
                    if std::time::Instant::now() < next {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    next += period;
                    if let Err(e) = script.run_timer(n, &mut state, &mut StderrLog) {
                        eprintln!("ERROR:core: timer_route[{name}]: {e}");
                    }
                }
            }));
        }
        Ok(Server { workers: handles })
    }

    /// Waits for every worker to finish (after the stop flag is raised).
    pub fn join(self) {
        for h in self.workers {
            let _ = h.join();
        }
    }
}

fn worker(
    socket: UdpSocket,
    local: SocketAddr,
    all: &[(SocketAddr, UdpSocket)],
    mut state: Worker,
    script: Arc<Script>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 65_535];
    while !stop.load(Ordering::SeqCst) {
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
                eprintln!("ERROR:core: udp receive on {local}: {e}");
                continue;
            }
        };
        let Some(data) = buf.get(..n) else { continue };
        for out in handle(data, source, local, &script, &mut state) {
            let via = match out.from {
                Some(from) if from != local => match all.iter().find(|(a, _)| *a == from) {
                    Some((_, s)) => s,
                    None => {
                        eprintln!("ERROR:core: no socket udp:{from} to send to {}", out.dest);
                        continue;
                    }
                },
                _ => &socket,
            };
            if let Err(e) = via.send_to(&out.data, out.dest) {
                eprintln!("ERROR:core: udp send to {}: {e}", out.dest);
            }
        }
    }
}

/// One datagram: parse, check, run the script; returns what to send.
fn handle(
    data: &[u8],
    source: SocketAddr,
    local: SocketAddr,
    script: &Script,
    state: &mut Worker,
) -> Vec<engine::Outbound> {
    // RFC 5626 keepalives and stray line ends.
    if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Vec::new();
    }
    let receipt = Receipt {
        source,
        proto: "udp",
        local,
    };
    let msg = match SipMessage::parse(Bytes::copy_from_slice(data)) {
        Ok(m) => m,
        Err(e) => return parse_error(data, &e, receipt, script, state),
    };
    if let Err(e) = msg.check() {
        return parse_error(data, &e, receipt, script, state);
    }
    if !msg.is_request() {
        // No transactions yet: a reply whose top Via is ours goes on to the next Via.
        let ours = |host: &str, port: u16| is_local(script, local, host, port);
        return engine::forward::relay_response(&msg, &ours)
            .into_iter()
            .collect();
    }
    let mut ctx = MsgCtx::new(msg).with_receipt(receipt);
    if let Err(e) = script.run(state, &mut ctx, &mut StderrLog) {
        eprintln!("ERROR:core: script: {e}");
    }
    std::mem::take(&mut ctx.outbox)
}

/// Whether `host:port` (from a Via) is this socket or one of the configured ones.
fn is_local(script: &Script, local: SocketAddr, host: &str, port: u16) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<std::net::IpAddr>().ok() == Some(local.ip()) && port == local.port() {
        return true;
    }
    script.sockets().iter().any(|s| {
        s.rsplit_once(':').is_some_and(|(rest, p)| {
            let h = rest.split_once(':').map_or(rest, |(_, h)| h);
            p.parse::<u16>() == Ok(port)
                && h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .eq_ignore_ascii_case(host)
        })
    }) || script.is_myself(host, Some(port))
}

/// A malformed request goes to `error_route` when the script has one (`$err.*` set, nothing
/// sent unless the route sends it); otherwise it gets the error reply.
fn parse_error(
    data: &[u8],
    e: &sip::ParseError,
    receipt: Receipt,
    script: &Script,
    state: &mut Worker,
) -> Vec<engine::Outbound> {
    if !script.has_error_route() {
        return error_reply(data, e, receipt);
    }
    let Ok(msg) = SipMessage::parse_for_error_reply(data) else {
        return Vec::new();
    };
    if !msg.is_request() {
        return Vec::new();
    }
    let code = match e.reaction() {
        Reaction::Reply(code) => code,
        _ => 400,
    };
    let mut ctx = MsgCtx::new(msg).with_receipt(receipt);
    ctx.err = Some(engine::ErrInfo::parse(&e.to_string(), code, e.reason()));
    if let Err(e) = script.run_error(state, &mut ctx, &mut StderrLog) {
        eprintln!("ERROR:core: error_route: {e}");
    }
    std::mem::take(&mut ctx.outbox)
}

/// A stateless error reply to a malformed request (never to a response, never to an ACK).
fn error_reply(data: &[u8], e: &sip::ParseError, receipt: Receipt) -> Vec<engine::Outbound> {
    let Reaction::Reply(code) = e.reaction() else {
        return Vec::new();
    };
    let Ok(msg) = SipMessage::parse_for_error_reply(data) else {
        return Vec::new();
    };
    // No Via: nothing says where a reply would go, or that this was SIP at all.
    if !msg.is_request()
        || msg.method() == Some(sip::Method::Ack)
        || msg.header_count(sip::HeaderName::Via) == 0
    {
        return Vec::new();
    }
    let ctx = MsgCtx::new(msg).with_receipt(receipt);
    match sl::build_reply(&ctx, code, e.reason()) {
        Some((data, dest)) => vec![engine::Outbound {
            data,
            dest,
            from: None,
        }],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn script() -> Script {
        let src = "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\nroute { sl_send_reply(200, \"OK\"); }";
        let mut sources = cfg::SourceMap::new();
        let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src.to_owned());
        Script::compile(&parsed.config, &sources, &crate::available()).unwrap()
    }

    /// The first line of what rsips sends back for a datagram (`None`: nothing).
    fn reaction(script: &Script, data: &[u8]) -> Option<String> {
        let source: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let out = handle(data, source, local, script, &mut Worker::default());
        assert!(out.len() <= 1, "one reply at most");
        out.first().map(|o| {
            String::from_utf8_lossy(&o.data)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
    }

    /// Every RFC 4475 message, sent to `route { sl_send_reply(200, "OK"); }`, gets the reaction
    /// the testdata README expects: valid requests are processed (200), malformed ones get
    /// 400/416/505, responses (valid or not) are never answered.
    #[test]
    fn rfc4475_reactions_over_the_udp_path() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/testdata/rfc4475");
        let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
        let script = script();
        let mut checked = 0;
        for line in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let file = line.split('\t').next().unwrap();
            let data = std::fs::read(dir.join(file)).unwrap();
            let want = match file {
                "badvers.dat" => Some("SIP/2.0 505 Version Not Supported"),
                "unkscm.dat" | "novelsc.dat" => Some("SIP/2.0 416 Unsupported URI Scheme"),
                "unreason.dat" | "noreason.dat" | "scalarlg.dat" | "bigcode.dat" | "bcast.dat" => {
                    None
                }
                "badinv01.dat" | "clerr.dat" | "ncl.dat" | "scalar02.dat" | "quotbal.dat"
                | "ltgtruri.dat" | "lwsruri.dat" | "lwsstart.dat" | "trws.dat" | "escruri.dat"
                | "regbadct.dat" | "badaspec.dat" | "baddn.dat" | "mismatch01.dat"
                | "mismatch02.dat" | "insuf.dat" | "multi01.dat" | "mcl01.dat" => Some("400"),
                _ => Some("SIP/2.0 200 OK"),
            };
            let got = reaction(&script, &data);
            match want {
                Some("400") => {
                    let g = got.unwrap_or_else(|| panic!("{file}: no reply, want a 400"));
                    assert!(g.starts_with("SIP/2.0 400 "), "{file}: {g}");
                }
                Some(w) => assert_eq!(got.as_deref(), Some(w), "{file}"),
                None => assert_eq!(got, None, "{file}: responses are not answered"),
            }
            checked += 1;
        }
        assert_eq!(checked, 49);
    }

    #[test]
    fn replies_go_to_the_via_port_without_rport_and_to_the_source_with_it() {
        let script = script();
        let source: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let req = |via: &str| {
            format!(
                "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let out = handle(
            req("SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bKa").as_bytes(),
            source,
            local,
            &script,
            &mut Worker::default(),
        );
        assert_eq!(
            out[0].dest,
            "127.0.0.1:5070".parse().unwrap(),
            "source IP, Via port (RFC 3261 §18.2.2)"
        );
        let text = String::from_utf8(out[0].data.clone()).unwrap();
        assert!(
            text.contains("Via: SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bKa;received=127.0.0.1\r\n"),
            "{text}"
        );
        let out = handle(
            req("SIP/2.0/UDP 10.1.1.1:5070;rport;branch=z9hG4bKb").as_bytes(),
            source,
            local,
            &script,
            &mut Worker::default(),
        );
        assert_eq!(out[0].dest, source, "rport: the source port (RFC 3581)");
        let text = String::from_utf8(out[0].data.clone()).unwrap();
        assert!(
            text.contains(";rport=40000;branch=z9hG4bKb;received=127.0.0.1\r\n"),
            "{text}"
        );
    }
}
