//! SIP server location for rsips: turns the host, port and transport of a SIP URI into the
//! ordered list of transport addresses to try, per RFC 3263 §4 and the way OpenSIPS'
//! `sip_resolvehost` does it (NAPTR, then SRV, then A/AAAA), for `forward()` and `t_relay`.
//!
//! The crate owns its stub resolver: [`wire`] encodes queries and parses answers without I/O,
//! `exchange` sends them over UDP (retrying over TCP when the answer is truncated) with
//! blocking sockets and deadlines, and a bounded TTL cache keeps forwarding to the same name off
//! the network. The API is blocking because rsips workers are plain threads.
//!
//! Why not `hickory-resolver`: its blocking `Resolver` wrapper is gone from recent releases, so
//! it would bring a tokio runtime into every worker for five record types. Owning the code
//! also lets the lookups follow OpenSIPS' order and fallbacks exactly, and keeps the timeouts
//! and failure modes ([`Error`]) under our control and tested against a local server.
//!
//! ```no_run
//! use resolve::{Proto, Resolver};
//! let resolver = Resolver::from_system()?.try_ipv6(true);
//! for target in resolver.resolve("example.com", None, None, false)? {
//!     println!("{} {}", target.proto, target.addr);
//! }
//! # Ok::<(), resolve::Error>(())
//! ```
#![forbid(unsafe_code)]

mod cache;
mod config;
mod error;
mod exchange;
mod locate;
mod lookup;
mod random;
mod select;
pub mod wire;

use std::fmt;
use std::net::SocketAddr;

pub use config::{RESOLV_CONF_ENV, ResolverConfig};
pub use error::Error;
pub use lookup::Resolver;
pub use select::{naptr_services, order_srv};

/// A SIP transport, with the default port and SRV prefix OpenSIPS uses for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
    Tls,
    Sctp,
    Ws,
    Wss,
}

impl Proto {
    /// The port used when neither the URI nor SRV gives one (RFC 3261 §19.1.2 for SIP and
    /// SIPS; RFC 7118 §5.2 for WebSocket: the HTTP ports).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Udp | Self::Tcp | Self::Sctp => 5060,
            Self::Tls => 5061,
            Self::Ws => 80,
            Self::Wss => 443,
        }
    }

    /// The SRV owner-name prefix for this transport (RFC 3263 §4.2; OpenSIPS' `_ws._tcp.` and
    /// `_wss._tcp.` for WebSocket).
    pub fn srv_prefix(self) -> &'static str {
        match self {
            Self::Udp => "_sip._udp.",
            Self::Tcp => "_sip._tcp.",
            Self::Tls => "_sips._tcp.",
            Self::Sctp => "_sip._sctp.",
            Self::Ws => "_ws._tcp.",
            Self::Wss => "_wss._tcp.",
        }
    }

    /// Whether the transport is encrypted, i.e. usable for a SIPS URI (RFC 3261 §26.2.2).
    pub fn is_secure(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }

    /// The transport used when the URI names none: TLS for SIPS, UDP otherwise (RFC 3263 §4.1).
    pub fn default_for(secure: bool) -> Self {
        if secure { Self::Tls } else { Self::Udp }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Sctp => "sctp",
            Self::Ws => "ws",
            Self::Wss => "wss",
        })
    }
}

/// One place to send a request: the transport and the address, in the order to try them
/// (RFC 3263 §4.3–4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub proto: Proto,
    pub addr: SocketAddr,
}
