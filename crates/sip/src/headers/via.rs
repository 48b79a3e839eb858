//! The Via header (RFC 3261 §20.42, §18.2.1 received, RFC 3581 rport, RFC 5118 IPv6).

use std::net::IpAddr;

use crate::error::{ParseError, Result};
use crate::host::{Host, parse_host, parse_ipv6, parse_port};
use crate::params::{Params, header_params_scan};
use crate::scan::{Cursor, is_token, trim_lws};

/// The RFC 3261 magic cookie that starts every compliant branch (§8.1.1.7).
pub const BRANCH_COOKIE: &str = "z9hG4bK";

/// One Via value: `SIP/2.0/UDP host:port;branch=...;received=...;rport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    raw: &'a str,
    protocol: &'a str,
    version: &'a str,
    transport: &'a str,
    host: Host<'a>,
    port: Option<u16>,
    params: Params<'a>,
    /// `params.get("branch").flatten()`, picked out while the parameters are scanned.
    branch: Option<&'a str>,
}

/// A parsed [`Via`] as offsets into its message's text: what a message keeps of its top Via,
/// since it cannot hold a value that borrows from itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ViaSpans {
    raw: (u32, u32),
    protocol: (u32, u32),
    version: (u32, u32),
    transport: (u32, u32),
    host: (u32, u32),
    kind: crate::host::HostKind,
    port: Option<u16>,
    params: (u32, u32),
    branch: Option<(u32, u32)>,
}

fn bad() -> ParseError {
    ParseError::malformed("Bad Via header")
}

impl<'a> Via<'a> {
    /// Parses one Via value (already split from its list). LWS is allowed around `/`, `:`
    /// and `;` (RFC 4475 §3.1.1.1).
    pub fn parse(s: &'a str) -> Result<Via<'a>> {
        let raw = trim_lws(s);
        match Via::scan(raw)? {
            (v, n) if n == raw.len() => Ok(v),
            _ => Err(bad()),
        }
    }

    /// Reads the Via value that `s` starts with, in one pass, up to the end of its last
    /// parameter (or of its sent-by when it has none). Returns it and where it ends; the caller
    /// decides whether what follows may end it (the end of the line, or a `,` in a list).
    #[inline]
    pub(crate) fn scan(s: &'a str) -> Result<(Via<'a>, usize)> {
        // Nearly every Via starts so; the token reads below would find the same parts.
        if let (true, Some(protocol), Some(version)) =
            (s.starts_with("SIP/2.0/"), s.get(..3), s.get(4..7))
        {
            let mut c = Cursor::new(s);
            c.advance(8);
            let transport = c.take_while(is_token);
            if !transport.is_empty() {
                // Slices of `s` (not literals), so that every part lies in the message text.
                return Via::scan_sent_by(s, c, protocol, version, transport);
            }
        }
        let mut c = Cursor::new(s);
        let protocol = c.take_while(is_token);
        let slash_token = |c: &mut Cursor<'a>| -> Result<&'a str> {
            c.skip_lws();
            if !c.eat(b'/') {
                return Err(bad());
            }
            c.skip_lws();
            let t = c.take_while(is_token);
            if t.is_empty() { Err(bad()) } else { Ok(t) }
        };
        let version = slash_token(&mut c)?;
        let transport = slash_token(&mut c)?;
        if protocol.is_empty() {
            return Err(bad());
        }
        Via::scan_sent_by(s, c, protocol, version, transport)
    }

    /// The rest of [`Via::scan`], from the white space after the transport.
    #[inline]
    fn scan_sent_by(
        s: &'a str,
        mut c: Cursor<'a>,
        protocol: &'a str,
        version: &'a str,
        transport: &'a str,
    ) -> Result<(Via<'a>, usize)> {
        let before = c.pos();
        c.skip_lws();
        if c.pos() == before {
            return Err(bad());
        }
        let host = parse_host(&mut c).map_err(|_| bad())?;
        let mut sent_by_end = c.pos();
        c.skip_lws();
        let port = parse_port(&mut c).map_err(|_| bad())?;
        if port.is_some() {
            sent_by_end = c.pos();
        }
        let params_start = c.pos();
        let (end, branch) =
            header_params_scan(s.as_bytes(), params_start, b"branch").ok_or_else(bad)?;
        let end = if end == params_start {
            sent_by_end
        } else {
            end
        };
        let params = Params::validated(s.get(params_start..end).unwrap_or(""), false);
        let branch = branch.and_then(|r| s.get(r));
        debug_assert_eq!(branch, params.get("branch").flatten(), "branch of {s:?}");
        let via = Via {
            raw: s.get(..end).unwrap_or(""),
            protocol,
            version,
            transport,
            host,
            port,
            params,
            branch,
        };
        Ok((via, end))
    }

    /// Where each part lies in `text`, the message text the Via was read from; `None` when a
    /// part is not a slice of it.
    pub(crate) fn spans(&self, text: &str) -> Option<ViaSpans> {
        let span = |part: &str| -> Option<(u32, u32)> {
            let start = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
            let end = start.checked_add(part.len())?;
            (end <= text.len()).then_some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
        };
        Some(ViaSpans {
            raw: span(self.raw)?,
            protocol: span(self.protocol)?,
            version: span(self.version)?,
            transport: span(self.transport)?,
            host: span(self.host.as_str())?,
            kind: self.host.kind(),
            port: self.port,
            params: span(self.params.as_str())?,
            branch: match self.branch {
                Some(b) => Some(span(b)?),
                None => None,
            },
        })
    }

    /// The Via that [`Via::spans`] described, from the same `text`, without parsing it again.
    pub(crate) fn from_spans(text: &'a str, s: &ViaSpans) -> Via<'a> {
        let at = |(start, end): (u32, u32)| text.get(start as usize..end as usize).unwrap_or("");
        Via {
            raw: at(s.raw),
            protocol: at(s.protocol),
            version: at(s.version),
            transport: at(s.transport),
            host: Host::from_parts(at(s.host), s.kind),
            port: s.port,
            params: Params::validated(at(s.params), false),
            branch: s.branch.map(at),
        }
    }

    /// The value as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Protocol name, normally `SIP`.
    pub fn protocol(&self) -> &'a str {
        self.protocol
    }

    pub fn version(&self) -> &'a str {
        self.version
    }

    /// Transport token as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, `WSS`, or unknown).
    pub fn transport(&self) -> &'a str {
        self.transport
    }

    /// sent-by host.
    pub fn host(&self) -> Host<'a> {
        self.host
    }

    /// sent-by port, if written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    pub fn params(&self) -> Params<'a> {
        self.params
    }

    /// A parameter by name; `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params.get(name)
    }

    /// The `branch` parameter (transaction id, RFC 3261 §17.2.3).
    pub fn branch(&self) -> Option<&'a str> {
        self.branch
    }

    /// Whether the branch is RFC 3261 style: the magic cookie followed by something unique.
    /// A bare `z9hG4bK` (RFC 4475 §3.2.1) is not.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > BRANCH_COOKIE.len() && b.starts_with(BRANCH_COOKIE))
    }

    /// The `received` parameter as written.
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// The `received` parameter as an address; accepts IPv6 with or without brackets (RFC 5118 §4.5).
    pub fn received_ip(&self) -> Option<IpAddr> {
        let r = self.received()?;
        let inner = r
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(r);
        inner
            .parse::<IpAddr>()
            .ok()
            .or_else(|| parse_ipv6(inner).map(IpAddr::V6))
    }

    /// RFC 3581: `None` when absent, `Some(None)` for a bare `rport`, `Some(Some(p))` when filled.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// The `ttl` parameter (0–255).
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(|t| t.parse().ok())
    }

    /// The `alias` parameter (RFC 5923 connection reuse).
    pub fn alias(&self) -> bool {
        self.params.contains("alias")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::host::HostKind;
    use proptest::prelude::*;

    /// Via values as they were parsed before [`Via::scan`] found their end itself: the
    /// reference the one-pass reading must match, error for error.
    fn reference_parse<'a>(s: &'a str) -> Result<Via<'a>> {
        let raw = trim_lws(s);
        let mut c = Cursor::new(raw);
        let protocol = c.take_while(is_token);
        let slash_token = |c: &mut Cursor<'a>| -> Result<&'a str> {
            c.skip_lws();
            if !c.eat(b'/') {
                return Err(bad());
            }
            c.skip_lws();
            let t = c.take_while(is_token);
            if t.is_empty() { Err(bad()) } else { Ok(t) }
        };
        let version = slash_token(&mut c)?;
        let transport = slash_token(&mut c)?;
        if protocol.is_empty() {
            return Err(bad());
        }
        let before = c.pos();
        c.skip_lws();
        if c.pos() == before {
            return Err(bad());
        }
        let host = parse_host(&mut c).map_err(|_| bad())?;
        c.skip_lws();
        let port = parse_port(&mut c).map_err(|_| bad())?;
        let params = Params::header(c.rest()).map_err(|_| bad())?;
        Ok(Via {
            raw,
            protocol,
            version,
            transport,
            host,
            port,
            params,
            branch: params.get("branch").flatten(),
        })
    }

    /// Text shaped like a Via value, spaced and folded as RFC 4475 does, with mistakes.
    pub(crate) fn via_like() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                6 => Just("SIP/2.0/UDP "),
                1 => Just("SIP/2.0/ UDP "),
                1 => Just("SIP / 2.0 / TCP\t"),
                1 => Just("SIP/2.0/UDP"),
                1 => Just("X/1/Y "),
                1 => Just("SIP/2.0/ "),
            ],
            prop_oneof![
                6 => "[a-z][a-z0-9-]{0,6}(\\.[a-z0-9-]{1,6}){0,2}",
                2 => "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
                1 => "\\[2001:db8::[0-9]{1,2}\\]",
                1 => "[a-z0-9._\\[\\]:-]{0,12}",
            ],
            prop_oneof![
                4 => Just(String::new()),
                3 => ":[0-9]{1,4}",
                1 => " ?: ?[0-9]{0,6}",
            ],
            prop_oneof![
                5 => "(;branch=z9hG4bK[a-z0-9]{0,5})?(;[a-z]{1,5}(=[a-z0-9.]{1,5})?){0,2}",
                3 => "( ?; ?[a-z+.-]{0,5}( ?= ?([a-z0-9.]{0,5}|\"[a-z ,;<>]{0,5}\"))?){0,3}",
            ],
            prop_oneof![6 => Just(String::new()), 1 => "[ \t;>\"x]{1,2}"],
        )
            .prop_map(|(start, host, port, params, tail)| {
                format!("{start}{host}{port}{params}{tail}")
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn one_pass_reading_agrees_with_the_reference(s in via_like()) {
            prop_assert_eq!(Via::parse(&s), reference_parse(&s));
        }
    }

    #[test]
    fn spaced_after_the_version_slash() {
        let v = Via::parse("SIP/2.0/ UDP host;branch=z9hG4bK1").unwrap();
        assert_eq!((v.transport(), v.host().as_str()), ("UDP", "host"));
        let v = Via::parse("SIP/2.0/UDP host :5060 ; rport").unwrap();
        assert_eq!((v.port(), v.rport()), (Some(5060), Some(None)));
        assert_eq!(v.as_str(), "SIP/2.0/UDP host :5060 ; rport");
    }

    #[test]
    fn plain_via() {
        let v =
            Via::parse("SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport").unwrap();
        assert_eq!(v.transport(), "UDP");
        assert_eq!(v.host().as_str(), "pc33.atlanta.com");
        assert_eq!(v.port(), Some(5066));
        assert_eq!(v.branch(), Some("z9hG4bK776asdhds"));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), None);
    }

    #[test]
    fn folded_and_spaced_via() {
        let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(
            (v.protocol(), v.version(), v.transport()),
            ("SIP", "2.0", "UDP")
        );
        assert!(matches!(v.host().kind(), HostKind::Ipv4(_)));
        assert!(!v.has_rfc3261_branch());
        let v = Via::parse(
            "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
        )
        .unwrap();
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
    }

    #[test]
    fn ipv6_and_received() {
        let v =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3")
                .unwrap();
        assert_eq!(v.received_ip(), "2001:db8::9:255".parse().ok());
        let v =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3")
                .unwrap();
        assert_eq!(v.received_ip(), "2001:db8::9:255".parse().ok());
        assert_eq!(v.branch(), Some("z9hG4bKas3"));
        let v = Via::parse("SIP/2.0/UDP 10.0.0.1:5060;rport=5061;ttl=16;maddr=224.0.0.1").unwrap();
        assert_eq!(v.rport(), Some(Some(5061)));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.maddr(), Some("224.0.0.1"));
    }

    #[test]
    fn bad_vias() {
        for s in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0/UDP",
            "SIP/2.0 host",
            "SIP/2.0/UDPhost",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP host;branch=",
            "",
        ] {
            assert!(Via::parse(s).is_err(), "{s:?}");
        }
    }
}
