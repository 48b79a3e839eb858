//! RFC 3263 §4 server location, in the order of OpenSIPS' `sip_resolvehost`:
//!
//! 1. an IP literal is used as is (default port of the transport);
//! 2. an explicit port means A (and AAAA) only;
//! 3. a transport without a port means SRV for that transport, then A on its default port;
//! 4. neither means NAPTR (when enabled), each usable service's SRV in NAPTR order, then SRV
//!    for UDP (TLS for SIPS), then A on 5060 (5061).
//!
//! Where OpenSIPS keeps the next candidates in a `dns_node` for failover, this returns them
//! all, in try order, so the caller walks the list.

use std::net::{IpAddr, SocketAddr};

use crate::random::random_up_to;
use crate::select::{naptr_services, order_srv};
use crate::wire::{MAX_NAME_WIRE, RData, RecordType, wire_len};
use crate::{Error, Proto, Resolver, Target};

/// Bounds on what one resolution may expand to, so a hostile zone cannot make a worker issue
/// hundreds of queries.
const MAX_NAPTR: usize = 8;
const MAX_SRV: usize = 16;
const MAX_TARGETS: usize = 32;

impl Resolver {
    /// Where to send a request for `host` (RFC 3263 §4): the targets in the order to try them.
    ///
    /// `host` is a name or an IP literal (IPv6 with or without brackets); `port` and `proto`
    /// come from the URI (`;transport=`) and are `None` when absent; `secure` is true for a
    /// SIPS URI. Lookups that fail softly (no record, SERVFAIL, a malformed answer) fall
    /// through to the next step as OpenSIPS does; an unreachable nameserver ends the
    /// resolution at once with [`Error::Timeout`] or [`Error::Io`] unless some targets were
    /// already found.
    pub fn resolve(
        &self,
        host: &str,
        port: Option<u16>,
        proto: Option<Proto>,
        secure: bool,
    ) -> Result<Vec<Target>, Error> {
        if let Some(ip) = ip_literal(host) {
            let proto = proto.unwrap_or(Proto::default_for(secure));
            let port = port.unwrap_or(proto.default_port());
            return Ok(vec![Target {
                proto,
                addr: SocketAddr::new(ip, port),
            }]);
        }
        check_name(host)?;
        if let Some(port) = port {
            let proto = proto.unwrap_or(Proto::default_for(secure));
            return self.address_targets(host, port, proto);
        }
        if let Some(proto) = proto {
            if secure && !proto.is_secure() {
                return Err(Error::InsecureTransport {
                    host: host.to_owned(),
                    proto,
                });
            }
            return self.srv_then_address(host, proto, secure);
        }
        if self.config.try_naptr {
            let targets = self.naptr_targets(host, secure)?;
            if !targets.is_empty() {
                return Ok(targets);
            }
        }
        self.srv_then_address(host, Proto::default_for(secure), secure)
    }

    /// The addresses of `host` (OpenSIPS `resolvehost`): A, or AAAA then A with `try_ipv6`.
    /// An IP literal is returned as is.
    pub fn resolve_host(&self, host: &str) -> Result<Vec<IpAddr>, Error> {
        if let Some(ip) = ip_literal(host) {
            return Ok(vec![ip]);
        }
        check_name(host)?;
        let mut addrs = Vec::new();
        if self.config.try_ipv6 {
            let v6 = soft(self.lookup(host, RecordType::Aaaa)).map_err(|e| e.for_host(host))?;
            addrs.extend(v6.iter().filter_map(ip_of));
        }
        match self.lookup(host, RecordType::A) {
            Ok(records) => addrs.extend(records.iter().filter_map(ip_of)),
            Err(e) if addrs.is_empty() => return Err(e.for_host(host)),
            Err(_) => {}
        }
        if addrs.is_empty() {
            let what = if self.config.try_ipv6 {
                "A or AAAA"
            } else {
                "A"
            };
            return Err(Error::NotFound {
                host: host.to_owned(),
                what,
            });
        }
        Ok(addrs)
    }

    fn address_targets(&self, host: &str, port: u16, proto: Proto) -> Result<Vec<Target>, Error> {
        let addrs = self.resolve_host(host)?;
        let targets = addrs.into_iter().map(|ip| Target {
            proto,
            addr: SocketAddr::new(ip, port),
        });
        Ok(targets.take(MAX_TARGETS).collect())
    }

    fn srv_then_address(
        &self,
        host: &str,
        proto: Proto,
        secure: bool,
    ) -> Result<Vec<Target>, Error> {
        let srv_name = format!("{}{host}", proto.srv_prefix());
        if wire_len(&srv_name).is_some_and(|len| len <= MAX_NAME_WIRE) {
            let targets = self.srv_targets(host, &srv_name, proto)?;
            if !targets.is_empty() {
                return Ok(targets);
            }
            return self.address_targets(host, proto.default_port(), proto);
        }
        // OpenSIPS skips SRV for a name too long to prefix, and uses the SIP(S) port.
        let port = Proto::default_for(secure).default_port();
        self.address_targets(host, port, proto)
    }

    /// SRV records of `srv_name` in RFC 2782 order, each target expanded to its addresses.
    fn srv_targets(&self, host: &str, srv_name: &str, proto: Proto) -> Result<Vec<Target>, Error> {
        let records = soft(self.lookup(srv_name, RecordType::Srv)).map_err(|e| e.for_host(host))?;
        let srvs = records.into_iter().filter_map(|r| match r {
            RData::Srv(srv) => Some(srv),
            _ => None,
        });
        let ordered = order_srv(srvs.take(MAX_SRV).collect(), &mut random_up_to);
        let mut targets = Vec::new();
        for srv in ordered {
            match self.resolve_host(&srv.target) {
                Ok(addrs) => targets.extend(addrs.into_iter().map(|ip| Target {
                    proto,
                    addr: SocketAddr::new(ip, srv.port),
                })),
                Err(e) if e.is_unreachable() && targets.is_empty() => return Err(e.for_host(host)),
                Err(e) if e.is_unreachable() => break,
                Err(_) => {}
            }
            if targets.len() >= MAX_TARGETS {
                break;
            }
        }
        targets.truncate(MAX_TARGETS);
        Ok(targets)
    }

    /// NAPTR for `host`, then the SRV targets of each usable service in NAPTR order.
    fn naptr_targets(&self, host: &str, secure: bool) -> Result<Vec<Target>, Error> {
        let records = soft(self.lookup(host, RecordType::Naptr)).map_err(|e| e.for_host(host))?;
        let naptrs: Vec<_> = records
            .into_iter()
            .filter_map(|r| match r {
                RData::Naptr(naptr) => Some(naptr),
                _ => None,
            })
            .collect();
        let mut targets: Vec<Target> = Vec::new();
        for (proto, replacement) in naptr_services(&naptrs, secure).into_iter().take(MAX_NAPTR) {
            match self.srv_targets(host, &replacement, proto) {
                Ok(found) => {
                    let fresh: Vec<_> =
                        found.into_iter().filter(|t| !targets.contains(t)).collect();
                    targets.extend(fresh);
                }
                Err(e) if targets.is_empty() => return Err(e),
                Err(_) => break,
            }
            if targets.len() >= MAX_TARGETS {
                break;
            }
        }
        targets.truncate(MAX_TARGETS);
        Ok(targets)
    }
}

/// Treats every failure but an unreachable nameserver as "no records", as OpenSIPS'
/// `get_record` does.
fn soft(result: Result<Vec<RData>, Error>) -> Result<Vec<RData>, Error> {
    match result {
        Err(e) if e.is_unreachable() => Err(e),
        Err(_) => Ok(Vec::new()),
        ok => ok,
    }
}

fn ip_of(record: &RData) -> Option<IpAddr> {
    match record {
        RData::A(v4) => Some(IpAddr::V4(*v4)),
        RData::Aaaa(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// An IPv4 or IPv6 literal; IPv6 may be in brackets as in a SIP URI (RFC 3261 §25.1).
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    match bare {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse().ok(),
    }
}

fn check_name(host: &str) -> Result<(), Error> {
    let reason = if host.is_empty() || host == "." {
        "empty host"
    } else if wire_len(host).is_none() {
        "not a valid DNS name (empty label, label over 63 or name over 255 octets)"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        host: host.to_owned(),
        reason: reason.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(ip_literal("192.0.2.1"), Some(IpAddr::from([192, 0, 2, 1])));
        assert_eq!(ip_literal("[2001:db8::1]"), "2001:db8::1".parse().ok());
        assert_eq!(ip_literal("2001:db8::1"), "2001:db8::1".parse().ok());
        assert_eq!(ip_literal("[192.0.2.1]"), None);
        assert_eq!(ip_literal("example.com"), None);
    }
}
