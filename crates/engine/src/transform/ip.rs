//! `ip.*`: address tests and conversions.
//!
//! Text addresses are dotted-quad IPv4 or IPv6 (optionally in `[]`). As in OpenSIPS an empty
//! input is NULL for every op; `ip.pton` gives 4 or 16 raw bytes, which `ip.ntop` and
//! `ip.family` read back; `ip.ntop` prints IPv6 the OpenSIPS way — eight groups, uppercase hex,
//! no `::` compression. `ip.isprivate` covers 10/8, 172.16/12, 192.168/16, 100.64/10 (RFC 6598)
//! and 127/8, IPv4 only.
//!
//! `ip.resolve` does no DNS here: an IP literal resolves to itself (printed like `ip.ntop`),
//! anything else is NULL, as an unresolvable name is in OpenSIPS.
//!
//! Deviation: OpenSIPS' own IPv6 reader rejects the embedded-IPv4 form (`::ffff:1.2.3.4`);
//! we accept it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::TransformOp;
use super::data::{Text, TrValue};

/// A textual address: IPv4, or IPv6 with or without brackets.
pub(super) fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Ok(v4) = s.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    let inner = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// OpenSIPS' `ip_addr2a` format.
fn format_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let groups: Vec<String> = v6.segments().iter().map(|g| format!("{g:X}")).collect();
            groups.join(":")
        }
    }
}

fn from_raw(b: &[u8]) -> Option<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Some(IpAddr::from(a));
    }
    <[u8; 16]>::try_from(b).ok().map(IpAddr::from)
}

fn is_private(ip: IpAddr) -> bool {
    let IpAddr::V4(v4) = ip else { return false };
    let n = u32::from(v4);
    [
        (0x0a00_0000, 8),
        (0xac10_0000, 12),
        (0xc0a8_0000, 16),
        (0x6440_0000, 10),
        (0x7f00_0000, 8),
    ]
    .iter()
    .any(|&(net, bits)| n >> (32 - bits) == net >> (32 - bits))
}

pub(super) fn apply(op: TransformOp, t: &Text<'_>) -> TrValue {
    use TransformOp::*;
    let b = t.bytes();
    if b.is_empty() {
        return TrValue::Null;
    }
    match op {
        IpFamily => match b.len() {
            4 => TrValue::static_str("INET"),
            16 => TrValue::static_str("INET6"),
            _ => TrValue::Null,
        },
        IpNtop => from_raw(b).map_or(TrValue::Null, |ip| TrValue::string(format_ip(ip))),
        _ => {
            let ip = t.str().and_then(parse_ip);
            match op {
                IpIsIp => TrValue::flag(ip.is_some()),
                IpIsIp4 => TrValue::flag(matches!(ip, Some(IpAddr::V4(_)))),
                IpIsIp6 => TrValue::flag(matches!(ip, Some(IpAddr::V6(_)))),
                IpIsPrivate => TrValue::flag(ip.is_some_and(is_private)),
                IpPton => match ip {
                    Some(IpAddr::V4(v4)) => TrValue::from_vec(v4.octets().to_vec()),
                    Some(IpAddr::V6(v6)) => TrValue::from_vec(v6.octets().to_vec()),
                    None => TrValue::Null,
                },
                IpResolve | IpResolve4 | IpResolve6 => {
                    let want = |a: &IpAddr| match op {
                        IpResolve4 => a.is_ipv4(),
                        IpResolve6 => a.is_ipv6(),
                        _ => true,
                    };
                    let found = match ip {
                        Some(ip) => Some(ip).filter(want),
                        None => t.str().and_then(|host| resolve(host, want)),
                    };
                    found.map_or(TrValue::Null, |ip| TrValue::string(format_ip(ip)))
                }
                _ => TrValue::Null,
            }
        }
    }
}

/// A host name's first address of the wanted family, by the system resolver (blocking, as
/// OpenSIPS' `resolvehost`); `None` when it does not resolve.
fn resolve(host: &str, want: impl Fn(&IpAddr) -> bool) -> Option<IpAddr> {
    use std::net::ToSocketAddrs;
    let host = host.trim();
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return None;
    }
    (host, 0)
        .to_socket_addrs()
        .ok()?
        .map(|a| a.ip())
        .find(|a| want(a))
}

/// An `ip.matches` network: `address/prefix-length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Net {
    addr: IpAddr,
    bits: u8,
}

impl Net {
    pub(crate) fn parse(s: &str) -> Option<Net> {
        let (addr, bits) = s.split_once('/')?;
        let addr = parse_ip(addr)?;
        if bits.is_empty() || !bits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let bits: u8 = bits.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (bits <= max).then_some(Net { addr, bits })
    }

    /// `None` when the families differ (OpenSIPS fails then).
    fn contains(&self, ip: IpAddr) -> Option<bool> {
        let keep = |total: u32| {
            if self.bits == 0 {
                0
            } else {
                u128::MAX << (total - u32::from(self.bits))
            }
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = keep(32);
                Some(u128::from(u32::from(n)) & m == u128::from(u32::from(a)) & m)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = keep(128);
                Some(u128::from(n) & m == u128::from(a) & m)
            }
            _ => None,
        }
    }
}

/// `{ip.matches,net}`: 1 when the input address is inside `net`, 0 when not, NULL when either is
/// not an address or the families differ.
pub(super) fn matches(t: &Text<'_>, net: &Net) -> TrValue {
    let Some(ip) = t.str().and_then(parse_ip) else {
        return TrValue::Null;
    };
    net.contains(ip).map_or(TrValue::Null, TrValue::flag)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Value;

    use crate::transform::testing::{ap, s};
    fn chain(input: &str, ops: &[TransformOp]) -> Value {
        let mut v = TrValue::from(&s(input));
        for op in ops {
            v = op.apply_chained(&v, &[]);
        }
        v.into_value()
    }

    #[test]
    fn tests_by_family() {
        assert_eq!(ap("ip.isip", "192.0.2.1", &[]), Value::Int(1));
        assert_eq!(ap("ip.isip", "2001:db8::1", &[]), Value::Int(1));
        assert_eq!(ap("ip.isip", "[2001:db8::1]", &[]), Value::Int(1));
        assert_eq!(ap("ip.isip", "example.com", &[]), Value::Int(0));
        assert_eq!(ap("ip.isip", "01.2.3.4", &[]), Value::Int(0)); // no leading zeros
        assert_eq!(ap("ip.isip", "1.2.3.4 ", &[]), Value::Int(0));
        assert_eq!(ap("ip.isip", "", &[]), Value::Null);
        assert_eq!(ap("ip.isip4", "192.0.2.1", &[]), Value::Int(1));
        assert_eq!(ap("ip.isip4", "::1", &[]), Value::Int(0));
        assert_eq!(ap("ip.isip6", "::1", &[]), Value::Int(1));
        assert_eq!(ap("ip.isip6", "[::1]", &[]), Value::Int(1));
        assert_eq!(ap("ip.isip6", "192.0.2.1", &[]), Value::Int(0));
        assert_eq!(
            TransformOp::IpIsIp.apply(&Value::Int(7), &[]),
            Value::Int(0)
        );
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "100.64.0.1",
            "127.0.0.1",
        ] {
            assert_eq!(ap("ip.isprivate", ip, &[]), Value::Int(1), "{ip}");
        }
        for ip in [
            "172.32.0.1",
            "192.0.0.1",
            "8.8.8.8",
            "100.128.0.1",
            "::1",
            "fc00::1",
            "x",
        ] {
            assert_eq!(ap("ip.isprivate", ip, &[]), Value::Int(0), "{ip}");
        }
    }

    #[test]
    fn pton_ntop_family() {
        assert_eq!(
            chain("192.168.1.10", &[TransformOp::IpPton, TransformOp::IpNtop]),
            s("192.168.1.10")
        );
        assert_eq!(
            chain("2001:db8::1", &[TransformOp::IpPton, TransformOp::IpNtop]),
            s("2001:DB8:0:0:0:0:0:1")
        );
        assert_eq!(
            chain("[::1]", &[TransformOp::IpPton, TransformOp::IpFamily]),
            s("INET6")
        );
        assert_eq!(
            chain("1.2.3.4", &[TransformOp::IpPton, TransformOp::IpFamily]),
            s("INET")
        );
        assert_eq!(
            chain("1.2.3.4", &[TransformOp::IpPton, TransformOp::SLen]),
            Value::Int(4)
        );
        assert_eq!(ap("ip.pton", "nope", &[]), Value::Null);
        assert_eq!(ap("ip.family", "abc", &[]), Value::Null);
        assert_eq!(ap("ip.family", "abcd", &[]), s("INET")); // any 4 bytes
        assert_eq!(ap("ip.ntop", "abcd", &[]), s("97.98.99.100"));
        assert_eq!(ap("ip.ntop", "1.2.3.4", &[]), Value::Null);
    }

    #[test]
    fn resolve_literals_only() {
        assert_eq!(ap("ip.resolve", "192.0.2.7", &[]), s("192.0.2.7"));
        assert_eq!(ap("ip.resolve", "[fe80::a]", &[]), s("FE80:0:0:0:0:0:0:A"));
        assert_eq!(ap("ip.resolve", "example.com", &[]), Value::Null);
    }

    #[test]
    fn matches_networks() {
        assert_eq!(ap("ip.matches", "10.1.2.3", &["10.0.0.0/8"]), Value::Int(1));
        assert_eq!(ap("ip.matches", "11.1.2.3", &["10.0.0.0/8"]), Value::Int(0));
        assert_eq!(
            ap("ip.matches", "192.0.2.77", &["192.0.2.64/26"]),
            Value::Int(1)
        );
        assert_eq!(ap("ip.matches", "1.2.3.4", &["0.0.0.0/0"]), Value::Int(1));
        assert_eq!(ap("ip.matches", "1.2.3.4", &["1.2.3.4/32"]), Value::Int(1));
        assert_eq!(
            ap("ip.matches", "2001:db8::5", &["2001:db8::/32"]),
            Value::Int(1)
        );
        assert_eq!(
            ap("ip.matches", "2001:db9::5", &["2001:db8::/32"]),
            Value::Int(0)
        );
        assert_eq!(ap("ip.matches", "::1", &["10.0.0.0/8"]), Value::Null); // different family
        assert_eq!(ap("ip.matches", "x", &["10.0.0.0/8"]), Value::Null);
        assert_eq!(ap("ip.matches", "1.2.3.4", &["10.0.0.0"]), Value::Null);
        assert_eq!(ap("ip.matches", "1.2.3.4", &["10.0.0.0/33"]), Value::Null);
        assert_eq!(ap("ip.matches", "1.2.3.4", &["10.0.0.0/"]), Value::Null);
        assert_eq!(ap("ip.matches", "1.2.3.4", &["10.0.0.0/+8"]), Value::Null);
        assert_eq!(Net::parse("::/128").map(|n| n.bits), Some(128));
        assert_eq!(Net::parse("::/129"), None);
    }
}
