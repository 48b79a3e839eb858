//! The script's sockets: the `proto:host:port` names and listening sockets its `socket=`
//! lines stand for (interfaces and `*` expanded), and the view of them with the ones the
//! server opens at run time (`sockets_mgm`).

use std::sync::Arc;

use cfg::ast::{Config, Item};

use super::Script;

/// `proto:host:port` of every configured listening socket (each port of a range).
pub(super) fn socket_names(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for item in &config.items {
        if let Item::Socket(s) = item
            && let cfg::socket::SocketDef::Bond { name, .. } = &s.node
        {
            out.push(format!("bond:{}", name.to_ascii_lowercase()));
        }
        if let Item::Socket(s) = item
            && let cfg::socket::SocketDef::Listen(spec) = &s.node
        {
            // proto_bin's `bin_port` default (the clusterer's sockets), else SIP's.
            let default = match spec.proto.as_str() {
                "tls" | "wss" => 5061,
                "bin" => 5555,
                _ => 5060,
            };
            let ports: Vec<u16> = if spec.ports.is_empty() {
                vec![default]
            } else {
                spec.ports.iter().flat_map(|(a, b)| *a..=*b).collect()
            };
            for p in &ports {
                out.push(format!(
                    "{}:{}:{p}",
                    spec.proto,
                    spec.host.to_ascii_lowercase()
                ));
            }
            // `*` and interface names also answer to each of their addresses.
            for s in listen_sockets(spec) {
                let name = format!("{}:{}:{}", s.proto, s.host, s.port);
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
    }
    out
}

impl Script {
    /// The sockets requests may leave from: the configured ones and, once the server attaches
    /// them, those opened at run time.
    pub fn net(&self) -> Arc<crate::forward::Sockets> {
        let Some(dynamic) = self.dynamic.get() else {
            return Arc::clone(&self.net);
        };
        let generation = dynamic.generation();
        {
            let merged = self
                .merged
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if merged.0 == generation {
                return Arc::clone(&merged.1);
            }
        }
        let mut all = (*self.net).clone();
        all.listen.extend(dynamic.list().iter().cloned());
        let all = Arc::new(all);
        *self
            .merged
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (generation, Arc::clone(&all));
        all
    }

    /// Shares the server's run-time sockets with this script (the server does it for every
    /// script it runs, a reloaded one too).
    pub fn attach_dynamic_sockets(&self, dynamic: Arc<crate::forward::DynamicSockets>) {
        let _ = self.dynamic.set(dynamic);
    }

    /// Whether `name` (`proto:host:port`, lower case) is a configured socket or one opened at
    /// run time.
    pub fn has_socket(&self, name: &str) -> bool {
        self.names.sockets.iter().any(|s| s == name)
            || self
                .dynamic
                .get()
                .is_some_and(|d| d.list().iter().any(|s| s.name() == name))
    }

    /// Whether a run-time socket (or its advertised address) is `host` (and `port`).
    pub(super) fn is_dynamic_socket(&self, host: &str, port: Option<u16>) -> bool {
        let Some(dynamic) = self.dynamic.get() else {
            return false;
        };
        let ip = host.parse::<std::net::IpAddr>().ok();
        dynamic.list().iter().any(|s| {
            let own = s
                .addr
                .is_some_and(|a| Some(a.ip()) == ip && port.is_none_or(|p| p == a.port()));
            let advertised = s.advertised.as_ref().is_some_and(|(h, p)| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .eq_ignore_ascii_case(host)
                    && port.is_none_or(|want| want == p.unwrap_or(s.port))
            });
            own || advertised
        })
    }
}

/// The addresses a socket host stands for when it is not an IP literal: `*` is every address
/// of every interface, an interface name (`eth0`, `lo`) is that interface's addresses. IPv6
/// link-local addresses are left out (they need a scope to be usable). `None`: neither (a
/// hostname, resolved by the server).
pub fn interface_addresses(host: &str) -> Option<Vec<std::net::IpAddr>> {
    let ifaces = if_addrs::get_if_addrs().ok()?;
    let usable = |ip: &std::net::IpAddr| match ip {
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
        std::net::IpAddr::V4(_) => true,
    };
    let all: Vec<std::net::IpAddr> = ifaces
        .iter()
        .filter(|i| host == "*" || i.name == host)
        .map(|i| i.ip())
        .filter(usable)
        .collect();
    (host == "*" || !all.is_empty()).then_some(all)
}

/// The sockets one `socket=` line opens: one per address and per port of its ranges. `*` and
/// interface names stand for their addresses; hostnames are resolved by the server.
pub(super) fn listen_sockets(spec: &cfg::socket::SocketSpec) -> Vec<crate::forward::Socket> {
    let Some(proto) = crate::forward::proto_name(&spec.proto) else {
        return Vec::new();
    };
    let host = spec.host.trim_start_matches('[').trim_end_matches(']');
    let ips: Vec<Option<std::net::IpAddr>> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![Some(ip)],
        Err(_) => match interface_addresses(host) {
            Some(ips) => ips.into_iter().map(Some).collect(),
            None => vec![None],
        },
    };
    let default = [(
        crate::forward::default_port(proto),
        crate::forward::default_port(proto),
    )];
    let ports = if spec.ports.is_empty() {
        &default[..]
    } else {
        &spec.ports[..]
    };
    let mut out = Vec::new();
    for ip in ips {
        for &(lo, hi) in ports {
            for port in lo..=hi {
                out.push(crate::forward::Socket {
                    proto,
                    host: ip.map_or_else(
                        || spec.host.clone(),
                        |ip| match ip {
                            std::net::IpAddr::V6(a) => format!("[{a}]"),
                            a => a.to_string(),
                        },
                    ),
                    port,
                    addr: ip.map(|ip| std::net::SocketAddr::new(ip, port)),
                    advertised: spec.advertised.clone(),
                    allow_proxy_protocol: spec.allow_proxy_protocol,
                    send_proxy_protocol: spec.send_proxy_protocol,
                    use_workers: spec.use_workers,
                    reuse_port: spec.reuse_port,
                    tos: spec.tos,
                    tag: spec.tag.clone(),
                    anycast: spec.anycast,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod socket_tests {
    use super::*;

    #[test]
    fn star_and_interface_names_expand_to_usable_addresses() {
        let all = interface_addresses("*").unwrap_or_default();
        let lo4: std::net::IpAddr = std::net::Ipv4Addr::LOCALHOST.into();
        assert!(all.contains(&lo4), "{all:?}");
        assert!(
            all.iter().all(|ip| match ip {
                std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
                std::net::IpAddr::V4(_) => true,
            }),
            "no link-local addresses: {all:?}"
        );
        assert!(interface_addresses("lo").is_some_and(|a| a.contains(&lo4)));
        assert_eq!(interface_addresses("no-such-if0"), None);
        assert_eq!(interface_addresses("sip.example.com"), None);
        let spec = cfg::socket::SocketSpec {
            proto: "udp".into(),
            host: "lo".into(),
            ports: vec![(5060, 5061)],
            ..Default::default()
        };
        let socks = listen_sockets(&spec);
        assert!(
            socks.iter().any(
                |s| s.addr == Some("127.0.0.1:5061".parse().unwrap_or_else(|_| unreachable!()))
            )
        );
        assert!(socks.iter().all(|s| s.addr.is_some()));
    }

    #[test]
    fn a_bin_socket_without_a_port_listens_on_proto_bins_default() {
        let mut sources = cfg::SourceMap::without_includes();
        let parsed = cfg::parse(
            &mut sources,
            std::path::Path::new("t.cfg"),
            "socket=bin:127.0.0.1\nsocket=bin:127.0.0.1:6000\nsocket=udp:127.0.0.1\n".into(),
        );
        assert_eq!(
            socket_names(&parsed.config),
            [
                "bin:127.0.0.1:5555",
                "bin:127.0.0.1:6000",
                "udp:127.0.0.1:5060"
            ]
        );
    }
}
