//! What the server lends the script engine once it runs: the stream transports, for the core
//! functions that act on connections (`tcp_close_conn`).

use std::sync::OnceLock;

/// Closes the connection(s) a `tcp_close_conn` argument names: `Ok(true)` closed, `Ok(false)`
/// none matched, `Err` a bad description.
pub type TcpCloser = Box<dyn Fn(&str) -> Result<bool, String> + Send + Sync>;

static TCP_CLOSER: OnceLock<TcpCloser> = OnceLock::new();

/// Installs the closer (once; later calls are ignored).
pub fn set_tcp_closer(f: TcpCloser) {
    let _ = TCP_CLOSER.set(f);
}

/// `None` when no stream transport runs.
pub fn close_tcp(desc: &str) -> Option<Result<bool, String>> {
    TCP_CLOSER.get().map(|f| f(desc))
}

/// Keeps a stream connection (by id) open for a while even when idle.
pub type TcpKeeper = Box<dyn Fn(u64, std::time::Duration) -> bool + Send + Sync>;

static TCP_KEEPER: OnceLock<TcpKeeper> = OnceLock::new();

/// Installs the keeper (once; later calls are ignored).
pub fn set_tcp_keeper(f: TcpKeeper) {
    let _ = TCP_KEEPER.set(f);
}

/// Keeps connection `conn` open for `d` from now (registrar's `tcp_persistent_flag`); `false`
/// when no stream transport runs or the connection is gone.
pub fn keep_tcp(conn: u64, d: std::time::Duration) -> bool {
    TCP_KEEPER.get().is_some_and(|f| f(conn, d))
}

/// Writes a line as OpenSIPS' `LM_GEN2` does (accounting): `LEVEL:text`, no module tag, if
/// `level` passes the global `log_level`, to the syslog `facility` (a `LOG_*` name) given.
pub type LineWriter = Box<dyn Fn(i32, Option<&str>, &str) + Send + Sync>;

static LINE_WRITER: OnceLock<LineWriter> = OnceLock::new();

/// Installs the writer (once; later calls are ignored).
pub fn set_line_writer(f: LineWriter) {
    let _ = LINE_WRITER.set(f);
}

/// A line at `level` for `facility` through the installed writer (stderr without one).
pub fn gen_line(level: i32, facility: Option<&str>, text: &str) {
    match LINE_WRITER.get() {
        Some(f) => f(level, facility, text),
        None => eprintln!("{text}"),
    }
}

/// Whether a host is one of ours by a module's table (the `domain` module's domains count for
/// `is_myself`, as OpenSIPS' registered alias functions do).
pub type AliasCheck = Box<dyn Fn(&str) -> bool + Send + Sync>;

static ALIAS_CHECK: OnceLock<AliasCheck> = OnceLock::new();

/// Installs the check (once; later calls are ignored).
pub fn set_alias_check(f: AliasCheck) {
    let _ = ALIAS_CHECK.set(f);
}

/// `false` when no module installed a check.
pub fn is_alias(host: &str) -> bool {
    ALIAS_CHECK.get().is_some_and(|f| f(host))
}

/// Raises an event a module publishes (`E_DISPATCHER_STATUS` …): its `event_route` runs, if
/// the script has one, with the event's parameters.
pub type EventRaiser = Box<dyn Fn(&str, Vec<(Option<String>, crate::Value)>) + Send + Sync>;

static EVENT_RAISER: OnceLock<EventRaiser> = OnceLock::new();

/// Installs the raiser (once; later calls are ignored).
pub fn set_event_raiser(f: EventRaiser) {
    let _ = EVENT_RAISER.set(f);
}

/// Raises `name` with `params`; nothing happens before the server installed a raiser.
pub fn raise_event(name: &str, params: Vec<(Option<String>, crate::Value)>) {
    if let Some(f) = EVENT_RAISER.get() {
        f(name, params);
    }
}
