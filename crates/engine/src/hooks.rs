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
