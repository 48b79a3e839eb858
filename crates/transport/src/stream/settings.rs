//! The stream transports' settings: OpenSIPS' `tcp_*` globals and the `proto_*` parameters
//! that apply to every connection, and TCP keepalive on a socket.

use std::time::Duration;

use tokio::net::TcpStream;

/// The connection-level parameters (OpenSIPS names and defaults in comments).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `tcp_threads` (0: one per CPU).
    pub threads: usize,
    /// `tcp_connect_timeout` (100 ms).
    pub connect_timeout: Duration,
    /// `tcp_connection_lifetime` (120 s): an idle connection is closed after this.
    pub lifetime: Duration,
    /// `tcp_max_connections` (2048).
    pub max_connections: usize,
    /// `tcp_max_msg_time` (4 s): a message that has started must be complete within this.
    pub max_msg_time: Duration,
    /// How long a write may take before the connection is given up.
    pub send_timeout: Duration,
    /// Header and message size limits.
    pub limits: sip::framing::Limits,
    /// `tcp_keepalive` (on by default, as OpenSIPS on Linux): the kernel probes idle
    /// connections; `None` leaves SO_KEEPALIVE off.
    pub keepalive: Option<Keepalive>,
    /// `tcp_socket_backlog`: the listen queue.
    pub backlog: u32,
    /// `tcp_crlf_pingpong` (on): a CRLF CRLF ping on TCP gets a CRLF pong.
    pub crlf_pong: bool,
    /// `tls_crlf_pingpong` (on): the same on TLS.
    pub tls_crlf_pong: bool,
    /// proto_ws / proto_wss `require_origin` (on): an upgrade without Origin is refused.
    pub ws_require_origin: bool,
    /// Per-connection profiles (`tcp_mgm`) that take the place of the values above for the
    /// connections they match.
    pub profiles: Option<std::sync::Arc<dyn super::Profiles>>,
}

/// `tcp_keepidle`, `tcp_keepinterval`, `tcp_keepcount`: `None` keeps the kernel's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keepalive {
    pub idle: Option<Duration>,
    pub interval: Option<Duration>,
    pub count: Option<u32>,
}

/// Turns on TCP keepalive on a connection as its settings ask.
pub(super) fn keepalive(tcp: &TcpStream, keepalive: Option<Keepalive>) {
    let Some(k) = keepalive else { return };
    let mut ka = socket2::TcpKeepalive::new();
    if let Some(t) = k.idle {
        ka = ka.with_time(t);
    }
    if let Some(i) = k.interval {
        ka = ka.with_interval(i);
    }
    if let Some(c) = k.count {
        ka = ka.with_retries(c);
    }
    let sock = socket2::SockRef::from(tcp);
    if let Err(e) = sock
        .set_keepalive(true)
        .and_then(|()| sock.set_tcp_keepalive(&ka))
    {
        log::warn!("cannot set TCP keepalive: {e}");
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            threads: 0,
            connect_timeout: Duration::from_millis(100),
            lifetime: Duration::from_secs(120),
            max_connections: 2048,
            max_msg_time: Duration::from_secs(4),
            send_timeout: Duration::from_secs(10),
            limits: sip::framing::Limits::default(),
            keepalive: Some(Keepalive::default()),
            // OpenSIPS' default is 10; rsips keeps room for bursts of new connections unless
            // `tcp_socket_backlog` says otherwise.
            backlog: 1024,
            crlf_pong: true,
            tls_crlf_pong: true,
            ws_require_origin: true,
            profiles: None,
        }
    }
}
