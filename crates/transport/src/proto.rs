//! Transport protocol names as they appear in `socket=` lines, Via headers and `$socket_in(proto)`.

use std::fmt;

/// One of the SIP transports rsips serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Proto {
    /// Every protocol, in the order listeners are reported.
    pub const ALL: [Proto; 5] = [Proto::Udp, Proto::Tcp, Proto::Tls, Proto::Ws, Proto::Wss];

    /// The lower-case name (`udp`, `tcp`, …) used in socket names and PVs.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
            Proto::Tls => "tls",
            Proto::Ws => "ws",
            Proto::Wss => "wss",
        }
    }

    /// The Via transport token (`UDP`, `TCP`, `TLS`, `WS`, `WSS`).
    pub fn via_token(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
            Proto::Tls => "TLS",
            Proto::Ws => "WS",
            Proto::Wss => "WSS",
        }
    }

    /// Case-insensitive name lookup (`TCP`, `tls`, …).
    pub fn parse(name: &str) -> Option<Proto> {
        Proto::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name))
    }

    /// Connection-oriented: framed from a byte stream, replies reuse the connection.
    pub fn is_stream(self) -> bool {
        self != Proto::Udp
    }

    /// Carried over TLS.
    pub fn is_secure(self) -> bool {
        matches!(self, Proto::Tls | Proto::Wss)
    }

    /// Carried in WebSocket messages.
    pub fn is_websocket(self) -> bool {
        matches!(self, Proto::Ws | Proto::Wss)
    }

    /// The port a URI without one means (RFC 3261 §19.1.2, RFC 7118 §5).
    pub fn default_port(self) -> u16 {
        match self {
            Proto::Udp | Proto::Tcp => 5060,
            Proto::Tls => 5061,
            Proto::Ws => 80,
            Proto::Wss => 443,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_insensitively() {
        for p in Proto::ALL {
            assert_eq!(Proto::parse(p.as_str()), Some(p));
            assert_eq!(Proto::parse(p.via_token()), Some(p));
        }
        assert_eq!(Proto::parse("sctp"), None);
        assert!(Proto::Wss.is_secure() && Proto::Wss.is_websocket() && Proto::Wss.is_stream());
        assert!(!Proto::Udp.is_stream());
    }
}
