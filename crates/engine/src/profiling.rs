//! OpenSIPS 4.0's profiling framework: what the workers and the script interpreter report as
//! `E_PROFILING_PROC` and `E_PROFILING_SCRIPT` events, and the per-process levels MI
//! `core:profiling_proc` sets.
//!
//! Both events carry the same parameters, in this order: `sec`, `usec` (wall clock),
//! `session`, `verb` (`start`, `enter`, `exit`, `end`), `name`, `type`, `depth`, then `file`
//! and `line` (only for `enter`/`exit`) and `status` (only for `exit`/`end`).
//!
//! - `E_PROFILING_SCRIPT` (one record set per top-level route run: `start`, `enter`, then an
//!   `enter`/`exit` pair for every `route(x)` call, `exit`, `end`) is produced whenever the
//!   event has a subscriber, as in OpenSIPS, where the script producer is always registered
//!   and only the subscription decides. `session` is the message's `$mi`, `type` the OpenSIPS
//!   route-type bit of the top-level route, `depth` 1 for it and one more per nested call,
//!   `file:line` the route's first statement (top level) or the `route()` call.
//! - `E_PROFILING_PROC` records come from the worker threads rsips binds to a `core:ps` ID
//!   (OpenSIPS' processes): `session` is the thread's OS id (OpenSIPS: the process' pid),
//!   `type` the OpenSIPS process type (1 UDP, 2 TCP, 3 timer, 4 module), `name` of
//!   `start`/`end` the `core:ps` description, `file` the Rust function that reports.
//! - A [`ScriptConsumer`] (the `opentelemetry` module, OpenSIPS' second profiling handler)
//!   gets the same script runs while it is on ([`consume`]), with the message at `start`.
//!
//! Off (no subscriber, no consumer on, every level 0: the default) the data path pays one
//! relaxed load of [`active`] per message and per top-level route; nested `route()` calls
//! test a field.
//! Records go to the external subscribers synchronously from the thread that makes them, so
//! they arrive in order per session; `event_route[E_PROFILING_*]` is not run for them (a
//! route reporting on itself would never end).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{MsgCtx, Value};

/// The route-level event.
pub const E_SCRIPT: &str = "E_PROFILING_SCRIPT";
/// The process-level event.
pub const E_PROC: &str = "E_PROFILING_PROC";

/// [`active`] bit: `E_PROFILING_SCRIPT` has (or recently had) a subscriber.
const SCRIPT_EVI: u8 = 1;
/// [`active`] bit: some process has a profiling level above 0.
pub const PROC: u8 = 2;
/// [`active`] bit: the [`ScriptConsumer`] (the `opentelemetry` module) is on.
pub const CONSUMER: u8 = 4;
/// [`active`] bits: somebody wants script records (a subscriber or the consumer).
pub const SCRIPT: u8 = SCRIPT_EVI | CONSUMER;

/// Level 0: off.
pub const LEVEL_OFF: u8 = 0;
/// Level 1: SIP processing (reading, `receive_msg`, the request script).
pub const LEVEL_SIP: u8 = 1;
/// Level 2: the extra processes too (MI, httpd …; nothing in rsips reports at it yet).
pub const LEVEL_EXTRAPROCS: u8 = 2;
/// Level 3: timer jobs too (the highest).
pub const LEVEL_TIMER: u8 = 3;

/// OpenSIPS' `enum process_type`, the `type` of `E_PROFILING_PROC` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcType {
    None = 0,
    Udp = 1,
    Tcp = 2,
    Timer = 3,
    Module = 4,
}

static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// What is on: [`SCRIPT`] and [`PROC`] bits. The only check the data path makes when
/// profiling is off.
#[inline]
pub fn active() -> u8 {
    ACTIVE.load(Ordering::Relaxed)
}

/// The profiling level of every `core:ps` ID set so far (missing ones are 0). A slot is shared
/// with the threads bound to its ID, so a change reaches them without a lock.
static LEVELS: LazyLock<Mutex<Vec<Arc<AtomicU8>>>> = LazyLock::new(Mutex::default);

fn slot(levels: &mut Vec<Arc<AtomicU8>>, id: usize) -> Arc<AtomicU8> {
    while levels.len() <= id {
        levels.push(Arc::new(AtomicU8::new(LEVEL_OFF)));
    }
    Arc::clone(&levels[id])
}

/// Sets the level of process `id` (all the `count` processes when `None`), clamped to 0..=3
/// as OpenSIPS does.
pub fn set_level(id: Option<usize>, count: usize, level: i64) {
    let level = level.clamp(i64::from(LEVEL_OFF), i64::from(LEVEL_TIMER)) as u8;
    let mut levels = LEVELS.lock().unwrap_or_else(PoisonError::into_inner);
    match id {
        Some(id) => slot(&mut levels, id).store(level, Ordering::Relaxed),
        None => {
            for id in 0..count.max(levels.len()) {
                slot(&mut levels, id).store(level, Ordering::Relaxed);
            }
        }
    }
    let any = levels.iter().any(|l| l.load(Ordering::Relaxed) > LEVEL_OFF);
    if any {
        ACTIVE.fetch_or(PROC, Ordering::Relaxed);
    } else {
        ACTIVE.fetch_and(!PROC, Ordering::Relaxed);
    }
}

/// The level of process `id`.
pub fn level(id: usize) -> u8 {
    let levels = LEVELS.lock().unwrap_or_else(PoisonError::into_inner);
    levels
        .get(id)
        .map_or(LEVEL_OFF, |l| l.load(Ordering::Relaxed))
}

/// Told by the Event Interface when `event` got a subscriber.
pub fn subscribed(event: &str) {
    if event == E_SCRIPT {
        ACTIVE.fetch_or(SCRIPT_EVI, Ordering::Relaxed);
    }
}

/// A consumer of the script records besides the Event Interface (OpenSIPS'
/// `profiling_handlers_t`; the `opentelemetry` module). Called on the thread running the
/// route, balanced (`start`, then `enter`/`exit` pairs, then `end`), so a thread-local stack
/// is all it needs to nest. Each call must be quick: it runs on a SIP worker.
pub trait ScriptConsumer: Send + Sync {
    /// A top-level route run over `msg` starts; `route_type` is its OpenSIPS route-type bit.
    fn start(&self, msg: &MsgCtx, route_type: i64);
    /// A route is entered (`<root>` for the unnamed top-level ones), called from `at`.
    fn enter(&self, name: &str, route_type: i64, at: Option<(&str, u32)>);
    /// The route entered last returns `status`.
    fn exit(&self, status: i64);
    /// The run of [`ScriptConsumer::start`] ends with `status`.
    fn end(&self, status: i64);
    /// A log line written while a run is on (see [`log_line`]).
    fn log(&self, level: i32, text: &str);
    /// Whether it wants the `E_PROFILING_PROC` records too (of the threads whose level asks).
    fn wants_proc(&self) -> bool {
        false
    }
    /// A process record (`verb`, `name`, `file:line`, `status` as the event carries them).
    fn proc_record(
        &self,
        verb: &'static str,
        name: &str,
        at: Option<(&str, u32)>,
        status: Option<i64>,
    ) {
        let _ = (verb, name, at, status);
    }
}

static CONSUMER_HOOK: OnceLock<Box<dyn ScriptConsumer>> = OnceLock::new();

/// Installs the consumer (once per process; false if one was installed already).
pub fn set_consumer(consumer: Box<dyn ScriptConsumer>) -> bool {
    CONSUMER_HOOK.set(consumer).is_ok()
}

/// Turns the consumer on or off (the [`CONSUMER`] bit). Runs already started keep going to it.
pub fn consume(on: bool) {
    if on && CONSUMER_HOOK.get().is_some() {
        ACTIVE.fetch_or(CONSUMER, Ordering::Relaxed);
    } else {
        ACTIVE.fetch_and(!CONSUMER, Ordering::Relaxed);
    }
}

/// A log line, for the consumer to attach to the route being run on this thread (OpenSIPS'
/// log consumer): one relaxed load when the consumer is off.
pub fn log_line(level: i32, text: &str) {
    if active() & CONSUMER != 0
        && let Some(c) = CONSUMER_HOOK.get()
    {
        c.log(level, text);
    }
}

/// Whether `E_PROFILING_SCRIPT` records are wanted now; clears the [`SCRIPT`] bit once the
/// last subscriber expired (subscribers expire lazily, so the bit may lag).
fn script_wanted() -> bool {
    let wanted = crate::evi::has_subscribers(E_SCRIPT);
    if !wanted {
        ACTIVE.fetch_and(!SCRIPT_EVI, Ordering::Relaxed);
    }
    wanted
}

/// One record, as both events carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub session: i64,
    pub verb: &'static str,
    pub name: &'a str,
    pub kind: i64,
    pub depth: i64,
    /// `file` and `line`: for `enter` and `exit`.
    pub at: Option<(&'a str, i64)>,
    /// For `exit` and `end`.
    pub status: Option<i64>,
}

impl Record<'_> {
    /// The event parameters, named as OpenSIPS names them, with the time of now.
    pub fn params(&self) -> Vec<(Option<String>, Value)> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let p = |n: &str, v: Value| (Some(n.to_owned()), v);
        let mut v = vec![
            p("sec", Value::Int(now.as_secs() as i64)),
            p("usec", Value::Int(i64::from(now.subsec_micros()))),
            p("session", Value::Int(self.session)),
            p("verb", Value::str(self.verb)),
            p("name", Value::str(self.name)),
            p("type", Value::Int(self.kind)),
            p("depth", Value::Int(self.depth)),
        ];
        if let Some((file, line)) = self.at {
            v.push(p("file", Value::str(file)));
            v.push(p("line", Value::Int(line)));
        }
        if let Some(status) = self.status {
            v.push(p("status", Value::Int(status)));
        }
        v
    }
}

fn emit(event: &str, r: &Record<'_>) {
    let failed = crate::evi::deliver(event, &r.params());
    if failed > 0 {
        log::debug!("{event}: {failed} subscriber(s) could not be told");
    }
}

/// The script producer of one top-level route run (only built when the records are wanted).
#[derive(Debug, Clone, Copy)]
pub struct ScriptSession {
    pub session: i64,
    /// OpenSIPS' route-type bit of the top-level route.
    pub kind: i64,
    /// `E_PROFILING_SCRIPT` has a subscriber.
    evi: bool,
    /// The [`ScriptConsumer`] was on when the run started (it gets the whole run).
    consumer: bool,
}

impl ScriptSession {
    /// A session for a route run over `msg`, when anybody subscribed or the consumer is on
    /// (checked only once [`active`] had a [`SCRIPT`] bit); tells the consumer it starts.
    pub fn open(msg: &MsgCtx, route_kind: &str) -> Option<ScriptSession> {
        let active = active();
        let consumer = active & CONSUMER != 0;
        let evi = active & SCRIPT_EVI != 0 && script_wanted();
        if !evi && !consumer {
            return None;
        }
        let kind = route_type_bit(route_kind);
        let consumer = consumer
            && CONSUMER_HOOK.get().is_some_and(|c| {
                c.start(msg, kind);
                true
            });
        Some(ScriptSession {
            session: msg.id as i64,
            kind,
            evi,
            consumer,
        })
    }

    /// A record of this session.
    pub fn record(
        &self,
        verb: &'static str,
        name: &str,
        depth: usize,
        at: Option<(&str, u32)>,
        status: Option<i64>,
    ) {
        if self.consumer
            && let Some(c) = CONSUMER_HOOK.get()
        {
            match verb {
                "enter" => c.enter(name, self.kind, at),
                "exit" => c.exit(status.unwrap_or(0)),
                "end" => c.end(status.unwrap_or(0)),
                _ => {}
            }
        }
        if !self.evi {
            return;
        }
        emit(
            E_SCRIPT,
            &Record {
                session: self.session,
                verb,
                name,
                kind: self.kind,
                depth: depth as i64,
                at: at.map(|(f, l)| (f, i64::from(l))),
                status,
            },
        );
    }
}

/// OpenSIPS' route-type bits (`REQUEST_ROUTE` 1 … `EVENT_ROUTE` 256) by `$route.type` name.
pub fn route_type_bit(kind: &str) -> i64 {
    match kind {
        "request" => 1,
        "failure" => 2,
        "onreply" => 4,
        "branch" => 8,
        "error" => 16,
        "local" => 32,
        "startup" => 64,
        "timer" => 128,
        "event" => 256,
        _ => 0,
    }
}

/// A thread bound to a `core:ps` ID.
struct Bound {
    level: Arc<AtomicU8>,
    kind: ProcType,
    desc: Arc<str>,
    session: i64,
    depth: i64,
    /// The level seen at `start`, used until `end` so one session's records stay balanced.
    frozen: Option<u8>,
    /// `start` and `enter`s held back until something worth reporting happens (OpenSIPS'
    /// "with next"): an idle timer tick reports nothing.
    pending: Vec<Pending>,
    /// The session goes to subscribers (checked at `start`).
    wanted: bool,
    /// The session goes to the [`ScriptConsumer`] (checked at `start`).
    consumer: bool,
}

#[derive(Debug, Clone)]
enum Pending {
    Start,
    Enter {
        name: String,
        func: &'static str,
        line: u32,
    },
}

thread_local! {
    static ME: RefCell<Option<Bound>> = const { RefCell::new(None) };
}

/// The calling thread's OS id (`/proc/thread-self`), or the process id where there is none.
fn thread_id() -> i64 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or_else(|| i64::from(std::process::id()))
}

/// Binds the calling thread to `core:ps` entry `id` (`desc` as listed there): its activity is
/// reported when that entry's level allows.
pub fn bind(id: usize, kind: ProcType, desc: &str) {
    let level = slot(
        &mut LEVELS.lock().unwrap_or_else(PoisonError::into_inner),
        id,
    );
    let bound = Bound {
        level,
        kind,
        desc: Arc::from(desc),
        session: thread_id(),
        depth: 0,
        frozen: None,
        pending: Vec::new(),
        wanted: false,
        consumer: false,
    };
    ME.with(|me| *me.borrow_mut() = Some(bound));
}

impl Bound {
    fn enabled(&self, level: u8) -> bool {
        let mine = self
            .frozen
            .unwrap_or_else(|| self.level.load(Ordering::Relaxed));
        level != LEVEL_OFF && level <= mine
    }

    fn send(
        &self,
        verb: &'static str,
        name: &str,
        depth: i64,
        at: Option<(&str, u32)>,
        status: Option<i64>,
    ) {
        if self.consumer
            && let Some(c) = CONSUMER_HOOK.get()
        {
            c.proc_record(verb, name, at, status);
        }
        if !self.wanted {
            return;
        }
        emit(
            E_PROC,
            &Record {
                session: self.session,
                verb,
                name,
                kind: self.kind as i64,
                depth,
                at: at.map(|(f, l)| (f, i64::from(l))),
                status,
            },
        );
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        for (i, p) in pending.iter().enumerate() {
            match p {
                Pending::Start => self.send("start", &self.desc, i as i64, None, None),
                Pending::Enter { name, func, line } => {
                    self.send("enter", name, i as i64, Some((func, *line)), None);
                }
            }
        }
    }
}

fn with_me(f: impl FnOnce(&mut Bound)) {
    ME.with(|me| {
        if let Ok(mut me) = me.try_borrow_mut()
            && let Some(b) = me.as_mut()
        {
            f(b);
        }
    });
}

/// A unit of work of the calling thread starts (a datagram read, a timer tick). `held`: report
/// it only once something inside it is reported. Callers check [`active`] first.
pub fn proc_start(level: u8, held: bool) {
    with_me(|b| {
        // A level set meanwhile applies from the next unit on, so each one stays balanced.
        b.frozen = Some(b.level.load(Ordering::Relaxed));
        if !b.enabled(level) {
            return;
        }
        b.wanted = crate::evi::has_subscribers(E_PROC);
        b.consumer =
            active() & CONSUMER != 0 && CONSUMER_HOOK.get().is_some_and(|c| c.wants_proc());
        b.depth = 0;
        b.pending.clear();
        if held {
            b.pending.push(Pending::Start);
        } else {
            let desc = Arc::clone(&b.desc);
            b.send("start", &desc, 0, None, None);
        }
    });
}

/// The thread enters `name` (reported from function `func`, line `line`).
pub fn proc_enter(level: u8, name: &str, func: &'static str, line: u32, held: bool) {
    with_me(|b| {
        if !b.enabled(level) {
            return;
        }
        b.depth += 1;
        if held {
            b.pending.push(Pending::Enter {
                name: name.to_owned(),
                func,
                line,
            });
            return;
        }
        b.flush();
        b.send("enter", name, b.depth, Some((func, line)), None);
    });
}

/// The thread leaves `name` with `status`.
pub fn proc_exit(level: u8, name: &str, func: &'static str, line: u32, status: i64) {
    with_me(|b| {
        if !b.enabled(level) {
            return;
        }
        b.depth -= 1;
        if b.pending.pop().is_some() {
            return;
        }
        b.send("exit", name, b.depth, Some((func, line)), Some(status));
    });
}

/// The unit of work ends with `status`.
pub fn proc_end(level: u8, status: i64) {
    with_me(|b| {
        if b.enabled(level) && b.pending.pop().is_none() {
            let desc = Arc::clone(&b.desc);
            b.send("end", &desc, b.depth, None, Some(status));
        }
        b.frozen = None;
        b.pending.clear();
    });
}

/// A SIP message read by a worker starts: `start`, `enter "<proto> proto reading"` (UDP) or
/// `"<proto> proto handling"` (connections), then `enter receive_msg`, as OpenSIPS' reactor
/// and `receive_msg()` report them. Callers check [`active`] has [`PROC`] first.
pub fn msg_begin(proto: &str, stream: bool) {
    proc_start(LEVEL_SIP, true);
    let what = if stream { "handling" } else { "reading" };
    proc_enter(
        LEVEL_SIP,
        &format!("{proto} proto {what}"),
        if stream {
            "handle_stream_message"
        } else {
            "udp_worker"
        },
        line!(),
        true,
    );
    proc_enter(LEVEL_SIP, "receive_msg", "handle", line!(), false);
}

/// The message of [`msg_begin`] is done.
pub fn msg_end(stream: bool, status: i64) {
    proc_exit(LEVEL_SIP, "receive_msg", "handle", line!(), status);
    if stream {
        proc_exit(
            LEVEL_SIP,
            "handling done",
            "handle_stream_message",
            line!(),
            0,
        );
    } else {
        proc_exit(LEVEL_SIP, "reading done", "udp_worker", line!(), 0);
    }
    proc_end(LEVEL_SIP, 0);
}

/// A `timer_route` run by a timer thread starts: reported at level 3 only, as OpenSIPS'
/// timer process reports its jobs (`timer_job`, then the job's label).
pub fn timer_job_begin(label: &str) {
    proc_start(LEVEL_SIP, true);
    proc_enter(LEVEL_TIMER, "timer_job", "timer_route", line!(), true);
    proc_enter(LEVEL_TIMER, label, "timer_route", line!(), false);
}

/// The job of [`timer_job_begin`] is done.
pub fn timer_job_end(label: &str, status: i64) {
    proc_exit(LEVEL_TIMER, label, "timer_route", line!(), status);
    proc_exit(LEVEL_TIMER, "timer_job", "timer_route", line!(), 0);
    proc_end(LEVEL_SIP, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_in_opensips_order() {
        let r = Record {
            session: 7,
            verb: "exit",
            name: "x",
            kind: 1,
            depth: 2,
            at: Some(("a.cfg", 12)),
            status: Some(1),
        };
        let names: Vec<String> = r.params().into_iter().filter_map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "sec", "usec", "session", "verb", "name", "type", "depth", "file", "line", "status"
            ]
        );
        let start = Record {
            verb: "start",
            at: None,
            status: None,
            ..r
        };
        assert_eq!(start.params().len(), 7);
    }

    thread_local! {
        static SEEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    /// Records what this thread's runs report (other tests run scripts on their threads).
    struct Recorder;

    impl ScriptConsumer for Recorder {
        fn start(&self, msg: &MsgCtx, route_type: i64) {
            let m = msg.msg.method_str().unwrap_or("").to_owned();
            SEEN.with(|s| s.borrow_mut().push(format!("start {m} {route_type}")));
        }
        fn enter(&self, name: &str, _: i64, at: Option<(&str, u32)>) {
            let line = at.map_or(0, |a| a.1);
            SEEN.with(|s| s.borrow_mut().push(format!("enter {name}:{line}")));
        }
        fn exit(&self, status: i64) {
            SEEN.with(|s| s.borrow_mut().push(format!("exit {status}")));
        }
        fn end(&self, status: i64) {
            SEEN.with(|s| s.borrow_mut().push(format!("end {status}")));
        }
        fn log(&self, _: i32, text: &str) {
            SEEN.with(|s| s.borrow_mut().push(format!("log {text}")));
        }
    }

    #[test]
    fn the_consumer_gets_balanced_runs_while_on() {
        let src = "route {\n route(a);\n}\nroute[a] {\n return(-2);\n}\n";
        let mut sources = cfg::SourceMap::new();
        let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src.into());
        let available = crate::Available {
            modules: vec![],
            builtin: vec![],
            argv: Vec::new(),
        };
        let Ok(script) = crate::Script::compile(&parsed.config, &sources, &available) else {
            panic!("does not compile");
        };
        let raw = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                   From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\n\
                   CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let run = || {
            let msg = sip::SipMessage::parse(bytes::Bytes::from_static(raw.as_bytes()));
            let mut ctx = MsgCtx::new(msg.unwrap_or_else(|e| panic!("{e}")));
            let mut log = crate::MemoryLog::default();
            let _ = script.run(&mut crate::Worker::default(), &mut ctx, &mut log);
            SEEN.with(|s| std::mem::take(&mut *s.borrow_mut()))
        };
        set_consumer(Box::new(Recorder));
        consume(true);
        log_line(3, "hello");
        let on = run();
        consume(false);
        let off = run();
        assert_eq!(
            on,
            [
                "log hello",
                "start OPTIONS 1",
                "enter <root>:2",
                "enter a:2",
                "exit -2",
                "exit 0",
                "end 0"
            ]
        );
        assert!(off.is_empty(), "{off:?}");
    }

    #[test]
    fn levels_clamp_and_drive_the_proc_bit() {
        set_level(Some(3), 5, 9);
        assert_eq!(level(3), LEVEL_TIMER);
        assert_ne!(active() & PROC, 0);
        set_level(None, 5, -4);
        assert_eq!(level(3), LEVEL_OFF);
        assert_eq!(active() & PROC, 0);
        assert_eq!(route_type_bit("failure"), 2);
        assert_eq!(route_type_bit("event"), 256);
    }
}
