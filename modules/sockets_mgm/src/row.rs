//! One row of the `sockets` table, checked: the socket (`proto:ip[:port]`, one explicit
//! address of a SIP transport), the advertised `host[:port]`, the tag, the flags (`anycast`,
//! `frag`, `reuse_port`) and the TOS (an `IPTOS_*` name or a number).

use std::net::{IpAddr, SocketAddr};

use engine::forward::Socket;

/// A socket as the table defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The `socket` column as written (what `sockets_list` shows).
    pub text: String,
    pub proto: &'static str,
    pub addr: SocketAddr,
    /// Host and port (the socket's port when the column names none).
    pub advertised: Option<(String, u16)>,
    pub tag: Option<String>,
    pub anycast: bool,
    pub frag: bool,
    pub reuse_port: bool,
    /// 0: none.
    pub tos: u32,
}

impl Spec {
    /// Parses the five columns; `Err` says what is wrong with the row.
    pub fn parse(
        socket: &str,
        advertised: Option<&str>,
        tag: Option<&str>,
        flags: Option<&str>,
        tos: Option<&str>,
    ) -> Result<Spec, String> {
        let text = socket.trim();
        let (proto, addr) = socket_address(text)?;
        let advertised = match advertised.map(str::trim).filter(|a| !a.is_empty()) {
            Some(a) => Some(host_port(a, addr.port())?),
            None => None,
        };
        let (mut anycast, mut frag, mut reuse_port) = (false, false, false);
        for f in flags
            .unwrap_or_default()
            .split([',', '|', ' '])
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            match f.to_ascii_lowercase().as_str() {
                "anycast" => anycast = true,
                "frag" => frag = true,
                "reuse_port" => reuse_port = true,
                other => return Err(format!("unknown flag `{other}` in the flags column")),
            }
        }
        Ok(Spec {
            text: text.to_owned(),
            proto,
            addr,
            advertised,
            tag: tag
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            anycast,
            frag,
            reuse_port,
            tos: parse_tos(tos.map(str::trim).unwrap_or_default())?,
        })
    }

    /// The socket as forwarding and the script see it.
    pub fn socket(&self) -> Socket {
        Socket {
            proto: self.proto,
            host: match self.addr.ip() {
                IpAddr::V6(a) => format!("[{a}]"),
                a => a.to_string(),
            },
            port: self.addr.port(),
            addr: Some(self.addr),
            advertised: self.advertised.as_ref().map(|(h, p)| (h.clone(), Some(*p))),
            allow_proxy_protocol: false,
            send_proxy_protocol: false,
            use_workers: None,
            reuse_port: self.reuse_port,
            tos: (self.tos != 0).then_some(self.tos),
            tag: self.tag.clone(),
            anycast: self.anycast,
        }
    }

    /// The flags as `sockets_list` prints them.
    pub fn flags_text(&self) -> String {
        [
            (self.anycast, "anycast"),
            (self.frag, "frag"),
            (self.reuse_port, "reuse_port"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
    }
}

/// `proto:ip[:port]`: a SIP transport on one explicit address (an interface name, `*` or a
/// hostname could stand for several, which a table row cannot).
fn socket_address(text: &str) -> Result<(&'static str, SocketAddr), String> {
    let def = cfg::socket::parse_socket(text).map_err(|e| format!("bad socket `{text}`: {e:?}"))?;
    let cfg::socket::SocketDef::Listen(spec) = def else {
        return Err(format!("`{text}` is a bond, not a socket"));
    };
    let proto = match spec.proto.as_str() {
        "udp" | "tcp" | "tls" | "ws" | "wss" => engine::forward::proto_name(&spec.proto),
        _ => None,
    }
    .ok_or_else(|| format!("protocol `{}` cannot be a dynamic SIP socket", spec.proto))?;
    let host = spec.host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host
        .parse()
        .map_err(|_| format!("`{}` is not an IP address", spec.host))?;
    if ip.is_unspecified() {
        return Err(format!("`{}` is not one address", spec.host));
    }
    let port = match spec.ports.as_slice() {
        [] => engine::forward::default_port(proto),
        [(lo, hi)] if lo == hi => *lo,
        _ => return Err(format!("`{text}` names a port range, not one port")),
    };
    if port == 0 {
        return Err(format!("`{text}` has no port"));
    }
    Ok((proto, SocketAddr::new(ip, port)))
}

/// `host[:port]` (a `[v6]` host keeps its brackets).
fn host_port(text: &str, default: u16) -> Result<(String, u16), String> {
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) if !text.starts_with('[') || h.ends_with(']') => (h, Some(p)),
        _ => (text, None),
    };
    // An IPv6 address without brackets has colons of its own.
    if host.contains(':') && !host.starts_with('[') {
        return Ok((format!("[{text}]"), default));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port in the advertised address `{text}`"))?,
        None => default,
    };
    if host.is_empty() {
        return Err(format!("no host in the advertised address `{text}`"));
    }
    Ok((host.to_owned(), port))
}

/// An `IPTOS_*` name or a number (decimal or `0x` hex); empty is none.
fn parse_tos(text: &str) -> Result<u32, String> {
    Ok(match text.to_ascii_uppercase().as_str() {
        "" => 0,
        "IPTOS_LOWDELAY" => 0x10,
        "IPTOS_THROUGHPUT" => 0x08,
        "IPTOS_RELIABILITY" => 0x04,
        "IPTOS_MINCOST" | "IPTOS_LOWCOST" => 0x02,
        n => match n.strip_prefix("0X") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => n.parse().ok(),
        }
        .filter(|t| *t <= 0xff)
        .ok_or_else(|| format!("bad tos `{text}`"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(socket: &str) -> Result<Spec, String> {
        Spec::parse(socket, None, None, None, None)
    }

    #[test]
    fn a_socket_is_one_address_of_a_sip_transport() {
        let s = spec("udp:127.0.0.1:5080").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (s.proto, s.addr.to_string()),
            ("udp", "127.0.0.1:5080".into())
        );
        let s = spec("TLS:[::1]").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.proto, s.addr.to_string()), ("tls", "[::1]:5061".into()));
        for bad in [
            "bin:127.0.0.1:5555",
            "hep_udp:127.0.0.1:9060",
            "udp:eth0:5060",
            "udp:*:5060",
            "udp:sip.example.com:5060",
            "udp:127.0.0.1:5060-5062",
            "udp:0.0.0.0:5060",
            "nonsense",
            "",
        ] {
            assert!(spec(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn advertised_flags_and_tos_columns() {
        let s = Spec::parse(
            "udp:127.0.0.1:5080",
            Some("sip.example.com"),
            Some(" edge "),
            Some("reuse_port,anycast"),
            Some("IPTOS_LOWDELAY"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.advertised, Some(("sip.example.com".into(), 5080)));
        assert_eq!(s.tag.as_deref(), Some("edge"));
        assert_eq!(s.flags_text(), "anycast,reuse_port");
        assert_eq!(s.tos, 0x10);
        let sock = s.socket();
        assert_eq!(sock.name(), "udp:127.0.0.1:5080");
        assert_eq!(
            sock.advertised,
            Some(("sip.example.com".into(), Some(5080)))
        );
        let s = Spec::parse(
            "tcp:127.0.0.1:5080",
            Some("[2001:db8::1]:7000"),
            None,
            None,
            Some("46"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.advertised, Some(("[2001:db8::1]".into(), 7000)));
        assert_eq!(s.tos, 46);
        assert!(Spec::parse("udp:127.0.0.1:5080", None, None, Some("fast"), None).is_err());
        assert!(Spec::parse("udp:127.0.0.1:5080", None, None, None, Some("LOUD")).is_err());
        assert!(Spec::parse("udp:127.0.0.1:5080", Some("host:x"), None, None, None).is_err());
    }
}
