//! Where a destination is (RFC 3263 through the `resolve` crate, /etc/hosts, IP literals) and,
//! with `mhomed`, which local socket the route to it leaves from.

use std::net::{SocketAddr, ToSocketAddrs};

use super::{Sockets, default_port, proto_name};

/// Resolves `host[:port]` (IP literals without DNS; names through the system resolver, which
/// also reads /etc/hosts).
pub(super) fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    // The common case, an IPv4 literal, without the general parser behind `to_socket_addrs`.
    if let Some(ip) = sip::parse_ipv4(h.as_bytes()) {
        return Ok(SocketAddr::from((ip, port)));
    }
    let all: Vec<SocketAddr> = (h, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
        .collect();
    // IPv4 first unless `dns_try_ipv6` asks for IPv6 too (OpenSIPS looks up A only by default).
    all.iter()
        .find(|a| a.is_ipv4())
        .or_else(|| {
            all.first()
                .filter(|_| h.contains(':') || dns().config().try_ipv6)
        })
        .copied()
        .ok_or_else(|| format!("cannot resolve `{host}`"))
}

static DNS: std::sync::RwLock<Option<std::sync::Arc<resolve::Resolver>>> =
    std::sync::RwLock::new(None);

/// The resolver SIP destinations go through (RFC 3263: NAPTR, SRV, A), made from the system's
/// resolv.conf on first use unless [`set_dns`] gave one.
fn dns() -> std::sync::Arc<resolve::Resolver> {
    if let Some(r) = DNS.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return std::sync::Arc::clone(r);
    }
    let made = std::sync::Arc::new(
        resolve::Resolver::from_system()
            .unwrap_or_else(|_| resolve::Resolver::with_servers(Vec::new())),
    );
    let mut slot = DNS.write().unwrap_or_else(|e| e.into_inner());
    std::sync::Arc::clone(slot.get_or_insert(made))
}

/// Sets the resolver from the script's globals (`dns_try_naptr`, `dns_try_ipv6`,
/// `dns_use_search_list`, `dns_retr_time`, `dns_retr_no`), as the server does at start and on
/// every script reload.
pub fn set_dns(script: &crate::Script) {
    let base = resolve::Resolver::from_system()
        .unwrap_or_else(|_| resolve::Resolver::with_servers(Vec::new()));
    let flag = |name: &str, default: bool| script.global_int(name).map_or(default, |v| v != 0);
    let mut r = base
        .try_naptr(flag("dns_try_naptr", true))
        .try_ipv6(flag("dns_try_ipv6", false))
        .use_search_list(flag("dns_use_search_list", true));
    if let Some(secs) = script.global_int("dns_retr_time").filter(|s| *s > 0) {
        r = r.timeout(std::time::Duration::from_secs(secs as u64));
    }
    if let Some(n) = script.global_int("dns_retr_no").filter(|n| *n > 0) {
        r = r.attempts(n.min(255) as u8);
    }
    *DNS.write().unwrap_or_else(|e| e.into_inner()) = Some(std::sync::Arc::new(r));
}

/// Where a SIP URI's host leads (RFC 3263 §4, OpenSIPS `sip_resolvehost`): an IP literal
/// directly; a name with a port by its addresses; a name without one by NAPTR (no transport
/// given) and SRV, then its addresses on the transport's default port. A name DNS says does not
/// exist may still be in /etc/hosts; without usable DNS the system resolver decides. The
/// transport may change with what NAPTR picks.
pub(super) fn locate(
    host: &str,
    port: Option<u16>,
    proto: Option<&'static str>,
    secure: bool,
) -> Result<Vec<Target>, String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    let chosen = proto.unwrap_or(if secure { "tls" } else { "udp" });
    // IP literals (the common case: `$du` to a gateway's address) need no DNS, parsed once.
    let literal = match sip::parse_ipv4(h.as_bytes()) {
        Some(v4) => Some(std::net::IpAddr::V4(v4)),
        None if h.contains(':') => h.parse::<std::net::IpAddr>().ok(),
        None => None,
    };
    if let Some(ip) = literal {
        let port = port.unwrap_or(default_port(chosen));
        return Ok(vec![(chosen, SocketAddr::new(ip, port))]);
    }
    let want = proto.and_then(|p| match p {
        "udp" => Some(resolve::Proto::Udp),
        "tcp" => Some(resolve::Proto::Tcp),
        "tls" => Some(resolve::Proto::Tls),
        "ws" => Some(resolve::Proto::Ws),
        "wss" => Some(resolve::Proto::Wss),
        _ => None,
    });
    match dns().resolve(h, port, want, secure) {
        Ok(targets) => {
            let usable: Vec<Target> = targets
                .into_iter()
                .filter_map(|t| Some((proto_name(&t.proto.to_string())?, t.addr)))
                .collect();
            if usable.is_empty() {
                return Err(format!("`{host}` names no transport rsips serves"));
            }
            Ok(usable)
        }
        // DNS says the name does not exist: only /etc/hosts may still know it (asking the
        // system resolver would query DNS again, uncached, for every request to that name).
        Err(e @ resolve::Error::NotFound { .. }) => match hosts_file_lookup(h) {
            Some(ip) => Ok(vec![(
                chosen,
                SocketAddr::new(ip, port.unwrap_or(default_port(chosen))),
            )]),
            None => Err(e.to_string()),
        },
        // No usable DNS (no nameserver, a timeout …): the system resolver decides.
        Err(e) => resolve(host, port.unwrap_or(default_port(chosen)))
            .map(|a| vec![(chosen, a)])
            .map_err(|sys| format!("{e}; {sys}")),
    }
}

/// `name`'s address in /etc/hosts (IPv4 first), read at most once a few seconds.
fn hosts_file_lookup(name: &str) -> Option<std::net::IpAddr> {
    use std::sync::{Mutex, OnceLock};
    type Table = (std::time::Instant, Vec<(std::net::IpAddr, Vec<String>)>);
    static HOSTS: OnceLock<Mutex<Option<Table>>> = OnceLock::new();
    let cell = HOSTS.get_or_init(|| Mutex::new(None));
    let mut cached = cell
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let stale = cached
        .as_ref()
        .is_none_or(|(at, _)| at.elapsed() > std::time::Duration::from_secs(5));
    if stale {
        let text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let entries = text
            .lines()
            .filter_map(|l| {
                let l = l.split('#').next().unwrap_or("");
                let mut words = l.split_whitespace();
                let ip = words.next()?.parse().ok()?;
                Some((ip, words.map(str::to_ascii_lowercase).collect()))
            })
            .collect();
        *cached = Some((std::time::Instant::now(), entries));
    }
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let entries = &cached.as_ref()?.1;
    let known = |v4: bool| {
        entries
            .iter()
            .find(|(ip, names): &&(std::net::IpAddr, Vec<String>)| {
                ip.is_ipv4() == v4 && names.contains(&name)
            })
            .map(|(ip, _)| *ip)
    };
    known(true).or_else(|| known(false))
}

/// A place to send a request: the transport and the address.
pub type Target = (&'static str, SocketAddr);

/// `mhomed` (OpenSIPS `get_out_socket`): the UDP listener on the local address the kernel
/// would send to `dest` from (a connected datagram socket tells, nothing is sent), remembered
/// per destination address; `None` when no listener has that address.
pub(super) fn outbound_socket(dest: SocketAddr, sockets: &Sockets) -> Option<SocketAddr> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static ROUTES: OnceLock<Mutex<HashMap<std::net::IpAddr, std::net::IpAddr>>> = OnceLock::new();
    let routes = ROUTES.get_or_init(Default::default);
    let known = routes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&dest.ip())
        .copied();
    let local = match known {
        Some(ip) => ip,
        None => {
            let any: SocketAddr = if dest.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let probe = std::net::UdpSocket::bind(any).ok()?;
            probe.connect(dest).ok()?;
            let ip = probe.local_addr().ok()?.ip();
            let mut table = routes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Bounded: a destination set this large is not a route table worth keeping.
            if table.len() > 4096 {
                table.clear();
            }
            table.insert(dest.ip(), ip);
            ip
        }
    };
    sockets
        .listen
        .iter()
        .filter(|s| s.proto == "udp")
        .find_map(|s| s.addr.filter(|a| a.ip() == local))
}
