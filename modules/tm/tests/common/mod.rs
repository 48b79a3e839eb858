//! A harness for tm's script functions: a real compiled script over the process' transaction
//! table (tm's script functions find it through `tm::global()`), a host that records every send
//! and never touches a socket, and time that moves only when a test ticks it.
//!
//! The table is one per test process, so the tests of a file take turns ([`Harness::new`]
//! holds a lock) and each starts by flushing what the previous one left.

#![allow(dead_code)] // each test file uses part of it

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::{Available, MemoryLog, MsgCtx, Outbound, Outcome, Receipt, Script, Worker};
use sip::SipMessage;
use tm::{Host, Params, Runner, SendDone, Tm};

/// Records what tm sends; a send to the port in `.1` (0: none) fails.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<Outbound>>, std::sync::atomic::AtomicU16);

impl Host for Recorder {
    fn send(&self, out: Outbound, done: Option<SendDone>) {
        let fails = out.dest.port() == self.1.load(std::sync::atomic::Ordering::SeqCst);
        self.0.lock().unwrap().push(out);
        if let Some(done) = done {
            done(if fails { Err("refused".into()) } else { Ok(()) });
        }
    }
}

impl Recorder {
    /// What was sent since the last call, as text.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
            .iter()
            .map(|o| String::from_utf8_lossy(&o.data).into_owned())
            .collect()
    }
}

struct Shared {
    tm: Arc<Tm>,
    host: Arc<Recorder>,
    turn: Mutex<()>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let host = Arc::new(Recorder::default());
        let tm = tm::install(Tm::new(Params::default(), host.clone()));
        Shared {
            tm,
            host,
            turn: Mutex::new(()),
        }
    })
}

/// Runs nothing: what a previous test left ends without its routes.
pub struct NoRoutes;

impl Runner for NoRoutes {
    fn run(&mut self, _: usize, _: &mut MsgCtx) -> Outcome {
        Outcome::Exit
    }
}

pub const UAC: &str = "127.0.0.1:5090";
pub const LOCAL: &str = "127.0.0.1:5060";
/// Where the test scripts relay (`$du = "sip:127.0.0.1:5070"`).
pub const UAS: &str = "127.0.0.1:5070";

pub struct Harness {
    _turn: MutexGuard<'static, ()>,
    pub script: Arc<Script>,
    pub tm: Arc<Tm>,
    host: Arc<Recorder>,
    worker: Worker,
    log: MemoryLog,
}

/// Runs the script's routes for tm, logging into the harness' log.
struct Routes<'a> {
    script: &'a Script,
    worker: &'a mut Worker,
    log: &'a mut MemoryLog,
}

impl Runner for Routes<'_> {
    fn reply_route(&self) -> Option<usize> {
        self.script.reply_route()
    }

    /// As the server runs them: with the script the context names (a transaction's routes
    /// belong to the script it started in), else the running one.
    fn run(&mut self, route: usize, ctx: &mut MsgCtx) -> Outcome {
        let script = ctx.script.clone();
        script
            .as_deref()
            .unwrap_or(self.script)
            .run_index(route, self.worker, ctx, self.log)
            .unwrap()
    }
}

/// Compiles `body` (after a socket and the module lines); `Err` has the diagnostics' text.
pub fn compile(body: &str) -> Result<Script, String> {
    let text = format!(
        "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"tm.so\"\n\
         loadmodule \"sipmsgops.so\"\nloadmodule \"acc.so\"\n{body}"
    );
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), text);
    if parsed.has_errors() {
        return Err(format!("{:?}", parsed.diagnostics));
    }
    let available = Available {
        modules: vec![&tm::MODULE, &sipmsgops::MODULE, &acc::MODULE],
        builtin: vec!["proto_udp"],
        argv: Vec::new(),
    };
    Script::compile(&parsed.config, &sources, &available).map_err(|d| format!("{d:?}"))
}

impl Harness {
    /// Waits for its turn, flushes what earlier tests left in the table, compiles `body`.
    pub fn new(body: &str) -> Harness {
        let shared = shared();
        let turn = shared
            .turn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Far enough ahead for every timer (final-response timeouts, wait, deletion).
        let later = Instant::now() + Duration::from_secs(3600);
        // Three rounds: a final reply, its resends until given up, then the deletion.
        for hours in 0..3 {
            shared
                .tm
                .tick(later + Duration::from_secs(3600 * hours), &mut NoRoutes);
        }
        shared.host.0.lock().unwrap().clear();
        shared.host.1.store(0, std::sync::atomic::Ordering::SeqCst);
        let script = compile(body).unwrap_or_else(|e| panic!("{e}"));
        Harness {
            _turn: turn,
            script: Arc::new(script),
            tm: Arc::clone(&shared.tm),
            host: Arc::clone(&shared.host),
            worker: Worker::default(),
            log: MemoryLog::default(),
        }
    }

    /// `core:reload_routes`: `body` compiled becomes the running script (transactions keep
    /// the one they started in).
    pub fn reload(&mut self, body: &str) {
        self.script = Arc::new(compile(body).unwrap_or_else(|e| panic!("{e}")));
    }

    /// A request from the caller, as the transport hands it over.
    pub fn request(&self, text: &str) -> MsgCtx {
        let mut ctx = MsgCtx::new(SipMessage::parse(Bytes::from(text.to_owned())).unwrap())
            .with_receipt(Receipt {
                source: UAC.parse().unwrap(),
                proto: "udp",
                local: LOCAL.parse().unwrap(),
                conn: None,
                proxy: None,
            });
        ctx.script = Some(Arc::clone(&self.script));
        ctx
    }

    /// Sends to `port` fail from now on (a refused connection).
    pub fn fail_sends_to(&self, port: u16) {
        self.host.1.store(port, std::sync::atomic::Ordering::SeqCst);
    }

    /// Runs the main route over `ctx`; what it queued goes out as the server would send it,
    /// and its transaction hears that the route is over, as the server tells it.
    pub fn route(&mut self, ctx: &mut MsgCtx) -> Outcome {
        let out = self
            .script
            .run(&mut self.worker, ctx, &mut self.log)
            .unwrap();
        if let Some(tx) = &ctx.tx {
            tx.script_done();
        }
        self.host
            .0
            .lock()
            .unwrap()
            .extend(std::mem::take(&mut ctx.outbox));
        out
    }

    /// A request's text run through the main route.
    pub fn receive(&mut self, text: &str) -> Outcome {
        let mut ctx = self.request(text);
        self.route(&mut ctx)
    }

    /// What was sent since the last call.
    pub fn sent(&self) -> Vec<String> {
        std::mem::take(&mut *self.host.0.lock().unwrap())
            .iter()
            .map(|o| String::from_utf8_lossy(&o.data).into_owned())
            .collect()
    }

    /// The requests among [`Harness::sent`] whose first line starts with `start`.
    pub fn sent_starting(&self, start: &str) -> Vec<String> {
        self.sent()
            .into_iter()
            .filter(|m| m.starts_with(start))
            .collect()
    }

    /// A reply from downstream to `request` (a request we relayed), handed to tm.
    pub fn answer(&mut self, request: &str, code: u16, reason: &str, to_tag: Option<&str>) {
        self.answer_at(request, code, reason, to_tag, Instant::now());
    }

    pub fn answer_at(
        &mut self,
        request: &str,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
        now: Instant,
    ) {
        let reply = reply_to(request, code, reason, to_tag);
        assert!(self.deliver(reply, now));
    }

    /// Hands any reply to tm; whether tm took it.
    pub fn deliver(&mut self, reply: SipMessage, now: Instant) -> bool {
        let ctx = MsgCtx::new(reply.clone()).with_receipt(Receipt {
            source: UAS.parse().unwrap(),
            proto: "udp",
            local: LOCAL.parse().unwrap(),
            conn: None,
            proxy: None,
        });
        let mut routes = Routes {
            script: &self.script,
            worker: &mut self.worker,
            log: &mut self.log,
        };
        self.tm.on_reply(&reply, ctx, &mut routes, now)
    }

    /// Runs tm's timers due at `now`.
    pub fn tick(&mut self, now: Instant) {
        let mut routes = Routes {
            script: &self.script,
            worker: &mut self.worker,
            log: &mut self.log,
        };
        self.tm.tick(now, &mut routes);
    }

    /// The script's log lines since the last call.
    pub fn logs(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log.lines)
            .into_iter()
            .map(|(_, l)| l.trim_end().to_owned())
            .collect()
    }
}

/// A request from the caller to `sip:bob@example.com` with this method and Call-ID (also its
/// Via branch, so the same `id` is a retransmission, or the ACK / CANCEL of an INVITE).
pub fn request_text(method: &str, id: &str) -> String {
    request_to(method, id, "bob")
}

/// [`request_text`] to `sip:<user>@example.com`.
pub fn request_to(method: &str, id: &str, user: &str) -> String {
    format!(
        "{method} sip:{user}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {UAC};branch=z9hG4bK{id}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:{user}@example.com>\r\nCall-ID: {id}\r\n\
         CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A reply to a request we relayed (its Vias, From, Call-ID, CSeq and To, with `to_tag`).
pub fn reply_to(sent: &str, code: u16, reason: &str, to_tag: Option<&str>) -> SipMessage {
    let mut text = format!("SIP/2.0 {code} {reason}\r\n");
    for line in sent.lines().skip(1).take_while(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("");
        match name {
            "Via" | "From" | "Call-ID" | "CSeq" => {
                text.push_str(line);
                text.push_str("\r\n");
            }
            "To" => {
                text.push_str(line);
                if let Some(t) = to_tag {
                    text.push_str(&format!(";tag={t}"));
                }
                text.push_str("\r\n");
            }
            _ => {}
        }
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    SipMessage::parse(Bytes::from(text)).unwrap()
}

/// The value of `key=` in a log line (up to the next space).
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
        + key.len()
        + 1;
    line[start..].split(' ').next().unwrap_or("")
}

/// One UDP socket at [`LOCAL`], as the tests' script declares it.
pub fn net() -> engine::forward::Sockets {
    engine::forward::Sockets {
        listen: vec![engine::forward::Socket {
            proto: "udp",
            host: "127.0.0.1".into(),
            port: 5060,
            addr: Some(LOCAL.parse().unwrap()),
            advertised: None,
            allow_proxy_protocol: false,
            send_proxy_protocol: false,
            use_workers: None,
            reuse_port: false,
            tos: None,
            tag: None,
            anycast: false,
        }],
        bonds: Vec::new(),
    }
}
