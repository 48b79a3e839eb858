//! One row of the `sockets` table, checked: the socket (`proto:host[:ports]` of a SIP
//! transport), the advertised `host[:port]`, the tag, the flags (`anycast`, `frag`,
//! `reuse_port`) and the TOS (an `IPTOS_*` name or a number).
//!
//! OpenSIPS takes one explicit IP and port per row. rsips also expands an interface name, `*`
//! (every interface) and a port range into one socket per address and port, as a `socket=`
//! line does; a host name is still refused (it would be resolved again at every reload).

use std::net::{IpAddr, SocketAddr};

use engine::forward::Socket;

/// A socket as the table defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The `socket` column as written (what `sockets_list` shows), or for a row standing for
    /// several sockets each one's `proto:ip:port`.
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
    /// Parses the five columns into the sockets the row stands for (one, unless its host is
    /// an interface name or `*`, or its port a range); `Err` says what is wrong with the row.
    pub fn parse(
        socket: &str,
        advertised: Option<&str>,
        tag: Option<&str>,
        flags: Option<&str>,
        tos: Option<&str>,
    ) -> Result<Vec<Spec>, String> {
        let text = socket.trim();
        let (proto, addrs, expanded) = socket_addresses(text)?;
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
        let tos = parse_tos(tos.map(str::trim).unwrap_or_default())?;
        let tag = tag
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let advertised = advertised.map(str::trim).filter(|a| !a.is_empty());
        addrs
            .into_iter()
            .map(|addr| {
                Ok(Spec {
                    // An expanded row lists each of its sockets by its own address.
                    text: if expanded {
                        match addr {
                            SocketAddr::V6(a) => format!("{proto}:[{}]:{}", a.ip(), a.port()),
                            a => format!("{proto}:{a}"),
                        }
                    } else {
                        text.to_owned()
                    },
                    proto,
                    addr,
                    advertised: match advertised {
                        Some(a) => Some(host_port(a, addr.port())?),
                        None => None,
                    },
                    tag: tag.clone(),
                    anycast,
                    frag,
                    reuse_port,
                    tos,
                })
            })
            .collect()
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

/// The sockets of `proto:host[:ports]`, and whether the row stands for more than its text
/// names (an interface, `*`, a range).
fn socket_addresses(text: &str) -> Result<(&'static str, Vec<SocketAddr>, bool), String> {
    let def = cfg::socket::parse_socket(text)
        .map_err(|e| format!("bad socket `{text}`: {}", e.message))?;
    let cfg::socket::SocketDef::Listen(spec) = def else {
        return Err(format!("`{text}` is a bond, not a socket"));
    };
    let proto = match spec.proto.as_str() {
        "udp" | "tcp" | "tls" | "ws" | "wss" => engine::forward::proto_name(&spec.proto),
        _ => None,
    }
    .ok_or_else(|| format!("protocol `{}` cannot be a dynamic SIP socket", spec.proto))?;
    let host = spec.host.trim_start_matches('[').trim_end_matches(']');
    let (ips, mut expanded) = match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => {
            return Err(format!(
                "`{}` is not one address (write `*` for all)",
                spec.host
            ));
        }
        Ok(ip) => (vec![ip], false),
        Err(_) => match engine::script::interface_addresses(host) {
            Some(ips) if !ips.is_empty() => (ips, true),
            _ => {
                return Err(format!(
                    "`{}` is neither an IP address nor an interface with one",
                    spec.host
                ));
            }
        },
    };
    let ports: Vec<u16> = match spec.ports.as_slice() {
        [] => vec![engine::forward::default_port(proto)],
        ranges => ranges.iter().flat_map(|(lo, hi)| *lo..=*hi).collect(),
    };
    expanded |= ports.len() > 1;
    if ports.contains(&0) {
        return Err(format!("`{text}` has no port"));
    }
    let addrs = ips
        .iter()
        .flat_map(|ip| ports.iter().map(|p| SocketAddr::new(*ip, *p)))
        .collect();
    Ok((proto, addrs, expanded))
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
        spec_with(socket, None, None, None, None)
    }

    fn spec_with(
        socket: &str,
        adv: Option<&str>,
        tag: Option<&str>,
        flags: Option<&str>,
        tos: Option<&str>,
    ) -> Result<Spec, String> {
        let mut all = Spec::parse(socket, adv, tag, flags, tos)?;
        assert_eq!(all.len(), 1, "{socket}: {all:?}");
        Ok(all.remove(0))
    }

    #[test]
    fn a_socket_is_a_sip_transport_on_an_address() {
        let s = spec("udp:127.0.0.1:5080").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (s.proto, s.addr.to_string()),
            ("udp", "127.0.0.1:5080".into())
        );
        assert_eq!(s.text, "udp:127.0.0.1:5080");
        let s = spec("TLS:[::1]").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.proto, s.addr.to_string()), ("tls", "[::1]:5061".into()));
        for bad in [
            "bin:127.0.0.1:5555",
            "hep_udp:127.0.0.1:9060",
            "udp:no-such-if0:5060",
            "udp:sip.example.com:5060",
            "udp:0.0.0.0:5060",
            "nonsense",
            "",
        ] {
            assert!(
                Spec::parse(bad, None, None, None, None).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn interfaces_and_port_ranges_stand_for_several_sockets() {
        let all = Spec::parse("udp:127.0.0.1:5060-5062", None, Some("t"), None, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = all.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            names,
            [
                "udp:127.0.0.1:5060",
                "udp:127.0.0.1:5061",
                "udp:127.0.0.1:5062"
            ]
        );
        assert!(all.iter().all(|s| s.tag.as_deref() == Some("t")));
        let lo =
            Spec::parse("tcp:lo:5070", None, None, None, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(lo.iter().any(|s| s.text == "tcp:127.0.0.1:5070"), "{lo:?}");
    }

    #[test]
    fn advertised_flags_and_tos_columns() {
        let s = spec_with(
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
        let s = spec_with(
            "tcp:127.0.0.1:5080",
            Some("[2001:db8::1]:7000"),
            None,
            None,
            Some("46"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.advertised, Some(("[2001:db8::1]".into(), 7000)));
        assert_eq!(s.tos, 46);
        assert!(spec_with("udp:127.0.0.1:5080", None, None, Some("fast"), None).is_err());
        assert!(spec_with("udp:127.0.0.1:5080", None, None, None, Some("LOUD")).is_err());
        assert!(spec_with("udp:127.0.0.1:5080", Some("host:x"), None, None, None).is_err());
    }
}
