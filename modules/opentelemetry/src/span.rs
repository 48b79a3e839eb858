//! Spans as OpenSIPS' `opentelemetry` module shapes them (its `sip-spans.md` convention): one
//! span per SIP message run through a top-level route, named `{method} {route type}`, and an
//! `INTERNAL` child per route entered, nested as the routes nest. Built on the worker's own
//! thread-local stack; finished spans go to the exporter queue.

use std::cell::RefCell;
use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use engine::MsgCtx;

/// OTLP `Span.SpanKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// An attribute value (OTLP `AnyValue`, the two kinds used here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    Str(String),
    Int(i64),
}

/// A span event (a log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub time_ns: u64,
    pub name: &'static str,
    pub attrs: Vec<(&'static str, Attr)>,
}

/// One span, open on the stack or finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub name: String,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attrs: Vec<(&'static str, Attr)>,
    pub events: Vec<Event>,
    /// Status `ERROR` with this description (a route returned a negative code).
    pub error: Option<String>,
    /// The message span of a top-level run (ended by `end`, not `exit`).
    pub message: bool,
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Spans open on one thread at most (see [`start`]).
const MAX_OPEN: usize = 256;

thread_local! {
    /// The spans open on this thread, innermost last.
    static STACK: RefCell<Vec<Span>> = const { RefCell::new(Vec::new()) };
    /// xorshift64* state for ids, seeded from the std's per-thread random keys.
    static RNG: std::cell::Cell<u64> = std::cell::Cell::new(RandomState::new().hash_one(now_ns()) | 1);
}

fn next_u64() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// A random, valid (non-zero) span id.
pub fn span_id() -> [u8; 8] {
    (next_u64() | 1).to_be_bytes()
}

/// A random, valid trace id.
pub fn trace_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&next_u64().to_be_bytes());
    id[8..].copy_from_slice(&(next_u64() | 1).to_be_bytes());
    id
}

/// OpenSIPS' name of a route-type bit (`$route.type`).
pub fn route_type_name(bit: i64) -> &'static str {
    match bit {
        1 => "request",
        2 => "failure",
        4 => "onreply",
        8 => "branch",
        16 => "error",
        32 => "local",
        64 => "startup",
        128 => "timer",
        256 => "event",
        _ => "unknown",
    }
}

fn s(v: &str) -> Attr {
    Attr::Str(v.to_owned())
}

/// The method of a request, or of the CSeq of a reply.
fn method(msg: &sip::SipMessage) -> Option<&str> {
    msg.method_str()
        .or_else(|| msg.cseq().ok().map(|c| c.method_str))
        .filter(|m| !m.is_empty())
}

/// The message span's name: `INVITE request`, `SIP timer` when there is no method.
pub fn message_span_name(ctx: &MsgCtx, route_type: i64) -> String {
    format!(
        "{} {}",
        method(&ctx.msg).unwrap_or("SIP"),
        route_type_name(route_type)
    )
}

/// The attributes of the message span, when the message has them.
pub fn message_attrs(ctx: &MsgCtx, route_type: i64) -> Vec<(&'static str, Attr)> {
    let msg = &ctx.msg;
    let mut a = vec![
        ("opensips.route.type", s(route_type_name(route_type))),
        ("network.protocol.name", s("sip")),
        ("network.protocol.version", s("2.0")),
        (
            "sip.message.type",
            s(if msg.is_request() {
                "request"
            } else {
                "response"
            }),
        ),
    ];
    if let Some(m) = method(msg) {
        a.push(("sip.request.method", s(m)));
    }
    if let Some(code) = msg.status() {
        a.push(("sip.response.status_code", Attr::Int(i64::from(code))));
        if let Some(r) = msg.reason_phrase().filter(|r| !r.is_empty()) {
            a.push(("sip.response.reason", s(r)));
        }
    }
    if let Some(h) = msg
        .header(sip::HeaderName::CallId)
        .filter(|h| !h.is_empty())
    {
        a.push(("sip.call_id", s(h)));
    }
    if let Some(h) = msg.header(sip::HeaderName::CSeq).filter(|h| !h.is_empty()) {
        a.push(("sip.cseq", s(h)));
    }
    if let Some(r) = &ctx.receipt {
        // Behind a PROXY protocol header, `source` is already the client it names; the local
        // end is the address that client reached.
        let local = r.proxy.map_or(r.local, |(_, dst)| dst);
        a.push(("network.transport", s(r.proto)));
        a.push(("network.peer.address", s(&r.source.ip().to_string())));
        a.push(("network.peer.port", Attr::Int(i64::from(r.source.port()))));
        a.push(("network.local.address", s(&local.ip().to_string())));
        a.push(("network.local.port", Attr::Int(i64::from(local.port()))));
    }
    if msg.is_request() {
        request_attrs(ctx, &mut a);
    }
    a.push(("sip.raw", s(&String::from_utf8_lossy(msg.as_bytes()))));
    a
}

/// Request-URI and User-Agent attributes of a request.
fn request_attrs(ctx: &MsgCtx, a: &mut Vec<(&'static str, Attr)>) {
    let msg = &ctx.msg;
    if let Some(ruri) = ctx
        .new_ruri
        .as_deref()
        .or_else(|| msg.request_uri_str())
        .filter(|u| !u.is_empty())
    {
        a.push(("sip.request.uri", s(ruri)));
        a.push(("url.full", s(ruri)));
        if let Ok(uri) = sip::Uri::parse(ruri) {
            let scheme = uri.scheme();
            a.push(("url.scheme", s(scheme.as_str())));
            if let Some(host) = uri.host() {
                a.push(("server.address", s(host.as_str())));
                let default = if matches!(scheme, sip::Scheme::Sips) {
                    5061
                } else {
                    5060
                };
                a.push((
                    "server.port",
                    Attr::Int(i64::from(uri.port().unwrap_or(default))),
                ));
            }
        }
    }
    if let Some(ua) = msg
        .header(sip::HeaderName::UserAgent)
        .filter(|u| !u.is_empty())
    {
        a.push(("user_agent.original", s(ua)));
    }
}

/// Opens the message span of a top-level run: a new trace, or a child of the span open on
/// this thread (a route run from inside another, e.g. a `branch_route` from `t_relay`).
pub fn start(ctx: &MsgCtx, route_type: i64) {
    let name = message_span_name(ctx, route_type);
    let mut attrs = message_attrs(ctx, route_type);
    let kind = if route_type == 32 {
        Kind::Client
    } else {
        Kind::Server
    };
    STACK.with(|st| {
        let mut st = st.borrow_mut();
        // Runs nest a few levels at most; a deeper stack holds the leftovers of runs that
        // never ended (a panic unwound through them): start afresh rather than grow.
        if st.len() >= MAX_OPEN {
            st.clear();
        }
        let parent = st.last().map(|p| (p.trace_id, p.span_id));
        attrs.push((
            "opensips.route.is_root",
            Attr::Int(i64::from(parent.is_none())),
        ));
        st.push(Span {
            trace_id: parent.map_or_else(trace_id, |p| p.0),
            span_id: span_id(),
            parent: parent.map(|p| p.1),
            name,
            kind,
            start_ns: now_ns(),
            end_ns: 0,
            attrs,
            events: Vec::new(),
            error: None,
            message: true,
        });
    });
}

/// Opens the span of a route entered (`<root>`: an unnamed top-level route, `<route>`).
pub fn enter(name: &str, route_type: i64, at: Option<(&str, u32)>) {
    STACK.with(|st| {
        let mut st = st.borrow_mut();
        let Some(parent) = st.last().map(|p| (p.trace_id, p.span_id)) else {
            return;
        };
        let named = !name.is_empty() && name != "<root>";
        let mut attrs = vec![
            ("opensips.route.type", s(route_type_name(route_type))),
            ("opensips.route.is_root", Attr::Int(0)),
        ];
        if named {
            attrs.push(("opensips.route.name", s(name)));
        }
        if let Some((file, line)) = at {
            attrs.push(("code.filepath", s(file)));
            attrs.push(("code.lineno", Attr::Int(i64::from(line))));
        }
        st.push(Span {
            trace_id: parent.0,
            span_id: span_id(),
            parent: Some(parent.1),
            name: if named { name } else { "<route>" }.to_owned(),
            kind: Kind::Internal,
            start_ns: now_ns(),
            end_ns: 0,
            attrs,
            events: Vec::new(),
            error: None,
            message: false,
        });
    });
}

/// Closes the innermost route span with the route's `status`; gives it to `done`.
pub fn exit(status: i64, done: impl FnOnce(Span)) {
    let span = STACK.with(|st| {
        let mut st = st.borrow_mut();
        if st.last().is_some_and(|s| !s.message) {
            st.pop()
        } else {
            None
        }
    });
    if let Some(mut span) = span {
        if status < 0 {
            span.attrs.push(("error.type", s(&status.to_string())));
            span.error = Some("OpenSIPS route returned an error".to_owned());
        }
        span.end_ns = now_ns().max(span.start_ns + 1);
        done(span);
    }
}

/// Closes the message span of the run (and any route span left open above it).
pub fn end(mut done: impl FnMut(Span)) {
    loop {
        let Some(mut span) = STACK.with(|st| st.borrow_mut().pop()) else {
            return;
        };
        span.end_ns = now_ns().max(span.start_ns + 1);
        let message = span.message;
        done(span);
        if message {
            return;
        }
    }
}

/// A process record (`proc_profiling`): `start` opens a `Process Profiling` span for the
/// thread's unit of work (a datagram read, a timer job), each `enter` a child named after the
/// step; the script's spans nest in the step that runs the script.
pub fn proc_record(
    verb: &str,
    name: &str,
    at: Option<(&str, u32)>,
    status: Option<i64>,
    done: impl FnMut(Span),
) {
    match verb {
        "start" => STACK.with(|st| {
            let mut st = st.borrow_mut();
            if st.len() >= MAX_OPEN {
                st.clear();
            }
            let parent = st.last().map(|p| (p.trace_id, p.span_id));
            st.push(Span {
                trace_id: parent.map_or_else(trace_id, |p| p.0),
                span_id: span_id(),
                parent: parent.map(|p| p.1),
                name: "Process Profiling".to_owned(),
                kind: Kind::Server,
                start_ns: now_ns(),
                end_ns: 0,
                attrs: vec![
                    ("opensips.process.name", s(name)),
                    (
                        "opensips.route.is_root",
                        Attr::Int(i64::from(parent.is_none())),
                    ),
                ],
                events: Vec::new(),
                error: None,
                message: true,
            });
        }),
        "enter" => STACK.with(|st| {
            let mut st = st.borrow_mut();
            let Some(parent) = st.last().map(|p| (p.trace_id, p.span_id)) else {
                return;
            };
            let mut attrs = vec![("opensips.route.is_root", Attr::Int(0))];
            if let Some((func, line)) = at {
                attrs.push(("code.filepath", s(func)));
                attrs.push(("code.lineno", Attr::Int(i64::from(line))));
            }
            st.push(Span {
                trace_id: parent.0,
                span_id: span_id(),
                parent: Some(parent.1),
                name: name.to_owned(),
                kind: Kind::Internal,
                start_ns: now_ns(),
                end_ns: 0,
                attrs,
                events: Vec::new(),
                error: None,
                message: false,
            });
        }),
        "exit" => exit(status.unwrap_or(0), done),
        "end" => end(done),
        _ => {}
    }
}

/// Adds a `log` event to the innermost open span, if any (at most `MAX_EVENTS` per span).
pub fn log(level: &'static str, text: &str) {
    const MAX_EVENTS: usize = 128;
    const MAX_TEXT: usize = 512;
    STACK.with(|st| {
        let Ok(mut st) = st.try_borrow_mut() else {
            return;
        };
        let Some(span) = st.last_mut() else {
            return;
        };
        if span.events.len() >= MAX_EVENTS {
            return;
        }
        let mut cut = text.len().min(MAX_TEXT);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        span.events.push(Event {
            time_ns: now_ns(),
            name: "log",
            attrs: vec![
                ("log.level", s(level)),
                ("log.message", s(text[..cut].trim_end())),
            ],
        });
    });
}

/// Drops whatever is open on this thread (tests).
#[cfg(test)]
pub fn reset() {
    STACK.with(|st| st.borrow_mut().clear());
}
