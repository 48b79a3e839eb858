//! Per-connection settings (OpenSIPS' TCP connection profiles, which its `tcp_mgm` module
//! fills from a table): asked once when a connection is accepted or about to be opened, and
//! kept by the connection for its whole life. Without a profile the connection uses the
//! global [`Settings`].

use std::net::SocketAddr;
use std::time::Duration;

use super::{Keepalive, Settings};
use crate::proto::Proto;

/// The settings a profile gives a connection in place of the globals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The table row it came from (logs).
    pub id: i64,
    /// In place of `tcp_connect_timeout` (outgoing connections only).
    pub connect_timeout: Duration,
    /// In place of `tcp_connection_lifetime`.
    pub lifetime: Duration,
    /// In place of `tcp_max_msg_time`.
    pub max_msg_time: Duration,
    /// No connection is opened to the peer: a send with no open connection fails.
    pub no_new_conn: bool,
    /// In place of `tcp_accept_aliases`: 0 never, 1 when the Via asks (RFC 5923), 2 always.
    pub alias_mode: u8,
    /// In place of `tcp_keepalive` and its tuning; `None`: SO_KEEPALIVE off.
    pub keepalive: Option<Keepalive>,
}

/// Where connections find their profile (the `tcp_mgm` module). Called on the I/O threads,
/// once per connection: it must answer from memory, without blocking.
pub trait Profiles: Send + Sync + std::fmt::Debug {
    /// The profile of a connection of `proto` between `remote` and the listener `local`;
    /// `None`: the global settings apply.
    fn lookup(&self, proto: Proto, remote: SocketAddr, local: SocketAddr) -> Option<Profile>;
}

/// What one connection runs with: its profile's values, or the globals.
#[derive(Debug, Clone)]
pub(super) struct ConnSettings {
    pub(super) profile: Option<i64>,
    pub(super) connect_timeout: Duration,
    pub(super) lifetime: Duration,
    pub(super) max_msg_time: Duration,
    pub(super) no_new_conn: bool,
    pub(super) alias_mode: Option<u8>,
    pub(super) keepalive: Option<Keepalive>,
}

impl ConnSettings {
    pub(super) fn of(
        settings: &Settings,
        proto: Proto,
        remote: SocketAddr,
        local: SocketAddr,
    ) -> Self {
        match settings
            .profiles
            .as_ref()
            .and_then(|p| p.lookup(proto, remote, local))
        {
            Some(p) => ConnSettings {
                profile: Some(p.id),
                connect_timeout: p.connect_timeout,
                lifetime: p.lifetime,
                max_msg_time: p.max_msg_time,
                no_new_conn: p.no_new_conn,
                alias_mode: Some(p.alias_mode),
                keepalive: p.keepalive,
            },
            None => ConnSettings {
                profile: None,
                connect_timeout: settings.connect_timeout,
                lifetime: settings.lifetime,
                max_msg_time: settings.max_msg_time,
                no_new_conn: false,
                alias_mode: None,
                keepalive: settings.keepalive,
            },
        }
    }
}
