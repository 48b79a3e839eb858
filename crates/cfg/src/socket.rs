//! `socket=` and `alias=` values (digest §1.3; OpenSIPS 4.0 socket grammar).

use std::borrow::Cow;

use crate::source::{Span, Spanned};

/// One listening socket, or a bond of sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketDef {
    Listen(SocketSpec),
    /// `bond:NAME {"proto:ip:port", ...}`.
    Bond {
        name: String,
        members: Vec<String>,
    },
}

/// `proto:host[:ports] [options]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SocketSpec {
    /// Lower-cased protocol (`udp`, `tcp`, `tls`, `ws`, `wss`, `sctp`, …).
    pub proto: String,
    /// Address, `[v6]`, hostname, interface name or `*`.
    pub host: String,
    /// Inclusive port ranges; empty = the protocol's default port.
    pub ports: Vec<(u16, u16)>,
    /// `as host[:port]`.
    pub advertised: Option<(String, Option<u16>)>,
    pub use_workers: Option<u32>,
    pub auto_scaling_profile: Option<String>,
    pub tag: Option<String>,
    pub tos: Option<u32>,
    pub anycast: bool,
    pub frag: bool,
    pub reuse_port: bool,
    pub accept_subdomain: bool,
    pub allow_proxy_protocol: bool,
    pub send_proxy_protocol: bool,
}

/// One `alias=` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasSpec {
    /// `None` = any protocol.
    pub proto: Option<String>,
    pub host: String,
    /// `None` = any port.
    pub port: Option<u16>,
    pub accept_subdomain: bool,
}

/// Transports OpenSIPS 4.0 knows (`parse_proto`).
pub const PROTOS: &[&str] = &[
    "udp", "tcp", "tls", "ws", "wss", "sctp", "bin", "bins", "ipsec", "hep_udp", "hep_tcp",
    "hep_tls", "smpp", "msrp", "msrps",
];

/// An error inside a socket/alias value, with the byte range of the offending part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub message: String,
    pub at: std::ops::Range<usize>,
    pub help: Option<String>,
}

fn verr(message: impl Into<String>, at: std::ops::Range<usize>) -> ValueError {
    ValueError {
        message: message.into(),
        at,
        help: None,
    }
}

/// Splits `text` into white-space separated words with their offsets (quotes keep spaces).
fn words(text: &str) -> Vec<(usize, Cow<'_, str>)> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        let start = i;
        let mut quoted = false;
        // Blanks around a `:` do not end a word (`tcp : 10.0.0.1 : 5060`): OpenSIPS' lexer
        // skips blanks between the tokens of an address.
        let mut spaced = false;
        while let Some(&c) = b.get(i) {
            if c == b'"' {
                quoted = !quoted;
            } else if c.is_ascii_whitespace() && !quoted {
                let next = i + b[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_whitespace())
                    .count();
                if i > start && (b[i - 1] == b':' || b.get(next) == Some(&b':')) {
                    spaced = true;
                    i = next;
                    continue;
                }
                break;
            }
            i += 1;
        }
        if i > start {
            let word = &text[start..i];
            out.push((
                start,
                if spaced {
                    Cow::Owned(word.split_ascii_whitespace().collect())
                } else {
                    Cow::Borrowed(word)
                },
            ));
        }
    }
    out
}

/// Splits `host[:port]`, understanding `[v6]:port` and bare IPv6.
fn host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(r) = s.strip_prefix('[')
        && let Some(close) = r.find(']')
    {
        let port = r[close + 1..].strip_prefix(':');
        return (&s[..close + 2], port);
    }
    if s.matches(':').count() > 1 {
        return (s, None);
    }
    match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    }
}

fn port_ranges(s: &str, at: std::ops::Range<usize>) -> Result<Vec<(u16, u16)>, ValueError> {
    let mut v = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.trim().parse::<u16>(), b.trim().parse::<u16>()) else {
            return Err(verr(format!("bad port `{part}`"), at));
        };
        if a == 0 {
            return Err(verr("port 0 is not a listening port", at));
        }
        if a > b {
            return Err(ValueError {
                message: format!("port range `{part}` is reversed"),
                at,
                help: Some(format!("write it as `{b}-{a}`")),
            });
        }
        v.push((a, b));
    }
    Ok(v)
}

/// Parses the text after `socket=`.
pub fn parse_socket(text: &str) -> Result<SocketDef, ValueError> {
    let all = 0..text.len();
    if let Some(rest) = text.strip_prefix("bond:") {
        let (name, list) = rest.split_once('{').ok_or_else(|| {
            verr(
                "a bond is `bond:NAME {\"proto:ip:port\", ...}`",
                all.clone(),
            )
        })?;
        let list = list
            .trim()
            .strip_suffix('}')
            .ok_or_else(|| verr("missing `}` after the bond members", all.clone()))?;
        let members: Vec<String> = list
            .split(',')
            .map(|m| m.trim().trim_matches('"').to_owned())
            .filter(|m| !m.is_empty())
            .collect();
        if name.trim().is_empty() || members.is_empty() {
            return Err(verr(
                "a bond needs a name and at least one member socket",
                all,
            ));
        }
        return Ok(SocketDef::Bond {
            name: name.trim().to_owned(),
            members,
        });
    }
    let owned = words(text);
    let w: Vec<(usize, &str)> = owned.iter().map(|(o, c)| (*o, c.as_ref())).collect();
    let Some(&(_, first)) = w.first() else {
        return Err(verr("empty socket definition", all));
    };
    let (proto, rest) = first.split_once(':').ok_or_else(|| ValueError {
        message: format!("socket `{first}` has no protocol"),
        at: 0..first.len(),
        help: Some(format!("write it as `udp:{first}`")),
    })?;
    let proto = proto.to_ascii_lowercase();
    if !PROTOS.contains(&proto.as_str()) {
        if proto.contains('.') || proto.starts_with('[') || proto == "*" {
            return Err(ValueError {
                message: format!("socket `{first}` has no protocol"),
                at: 0..first.len(),
                help: Some(format!("write it as `udp:{first}`")),
            });
        }
        return Err(verr(format!("unknown protocol `{proto}`"), 0..proto.len()));
    }
    let (host, port) = host_port(rest);
    if host.is_empty() {
        return Err(verr("missing address after the protocol", 0..first.len()));
    }
    let mut spec = SocketSpec {
        proto,
        host: host.trim_matches('"').to_owned(),
        ..SocketSpec::default()
    };
    if let Some(p) = port {
        let at = first.len() - p.len()..first.len();
        spec.ports = port_ranges(p, at)?;
    }
    socket_options(&mut spec, &w[1..])?;
    Ok(SocketDef::Listen(spec))
}

fn socket_options(spec: &mut SocketSpec, w: &[(usize, &str)]) -> Result<(), ValueError> {
    let mut i = 0;
    while let Some(&(off, word)) = w.get(i) {
        let at = off..off + word.len();
        let arg = w.get(i + 1).map(|&(o, a)| (o..o + a.len(), a));
        let need = |what: &str| verr(format!("`{word}` needs {what}"), at.clone());
        let norm = word.to_ascii_lowercase().replace('-', "_");
        let mut takes_arg = true;
        match norm.as_str() {
            "as" => {
                let (_, a) = arg.ok_or_else(|| need("an address"))?;
                let (h, p) = host_port(a);
                let p = p
                    .map(|p| {
                        p.parse::<u16>()
                            .map_err(|_| verr(format!("bad port `{p}`"), at.clone()))
                    })
                    .transpose()?;
                spec.advertised = Some((h.trim_matches('"').to_owned(), p));
            }
            "use_workers" => {
                let (r, a) = arg.ok_or_else(|| need("a number"))?;
                spec.use_workers = Some(
                    a.parse()
                        .map_err(|_| verr(format!("bad worker count `{a}`"), r))?,
                );
            }
            "tos" => {
                let (r, a) = arg.ok_or_else(|| need("a number"))?;
                spec.tos = Some(a.parse().map_err(|_| verr(format!("bad tos `{a}`"), r))?);
            }
            "tag" => spec.tag = Some(arg.ok_or_else(|| need("a name"))?.1.to_owned()),
            "use_auto_scaling_profile" => {
                spec.auto_scaling_profile =
                    Some(arg.ok_or_else(|| need("a profile name"))?.1.to_owned());
            }
            _ => {
                takes_arg = false;
                match norm.as_str() {
                    "anycast" => spec.anycast = true,
                    "frag" => spec.frag = true,
                    "reuse_port" => spec.reuse_port = true,
                    "accept_subdomain" => spec.accept_subdomain = true,
                    "allow_proxy" | "allow_proxy_protocol" => spec.allow_proxy_protocol = true,
                    "send_proxy" | "send_proxy_protocol" => spec.send_proxy_protocol = true,
                    "proxy" | "proxy_protocol" => {
                        spec.allow_proxy_protocol = true;
                        spec.send_proxy_protocol = true;
                    }
                    _ => {
                        let options = [
                            "as",
                            "use_workers",
                            "tos",
                            "tag",
                            "use_auto_scaling_profile",
                            "anycast",
                            "frag",
                            "reuse_port",
                            "accept_subdomain",
                            "allow_proxy_protocol",
                            "send_proxy_protocol",
                            "proxy_protocol",
                        ];
                        let help = crate::diag::suggest(word, options)
                            .map(|o| format!("did you mean `{o}`?"));
                        return Err(ValueError {
                            message: format!("unknown socket option `{word}`"),
                            at,
                            help,
                        });
                    }
                }
            }
        }
        i += if takes_arg { 2 } else { 1 };
    }
    Ok(())
}

/// Parses the text after `alias=`: one or more `[proto:]host[:port|:any] [accept_subdomain]`.
pub fn parse_aliases(text: &str) -> Result<Vec<AliasSpec>, ValueError> {
    let mut out: Vec<AliasSpec> = Vec::new();
    for (off, word) in words(text) {
        let word = word.as_ref();
        if word.eq_ignore_ascii_case("accept_subdomain") {
            let last = out.last_mut().ok_or_else(|| {
                verr(
                    "`accept_subdomain` must follow an alias",
                    off..off + word.len(),
                )
            })?;
            last.accept_subdomain = true;
            continue;
        }
        // A quoted alias is a host name as a whole, port and all (OpenSIPS' grammar takes a
        // string there as the host), matching any port.
        if let Some(host) = word
            .strip_prefix('"')
            .and_then(|w| w.strip_suffix('"'))
            .filter(|h| !h.is_empty())
        {
            out.push(AliasSpec {
                proto: None,
                host: host.to_owned(),
                port: None,
                accept_subdomain: false,
            });
            continue;
        }
        let (proto, rest) = match word.split_once(':') {
            Some((p, r))
                if PROTOS.contains(&p.to_ascii_lowercase().as_str())
                    || p.eq_ignore_ascii_case("any") =>
            {
                let p = p.to_ascii_lowercase();
                (if p == "any" { None } else { Some(p) }, r)
            }
            _ => (None, word),
        };
        let (host, port) = host_port(rest);
        let port = match port {
            None | Some("any") | Some("*") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| verr(format!("bad port `{p}`"), off..off + word.len()))?,
            ),
        };
        if host.is_empty() {
            return Err(verr("empty alias", off..off + word.len()));
        }
        out.push(AliasSpec {
            proto,
            host: host.trim_matches('"').to_owned(),
            port,
            accept_subdomain: false,
        });
    }
    if out.is_empty() {
        return Err(verr("empty alias", 0..text.len()));
    }
    Ok(out)
}

/// Maps a [`ValueError`] range inside a value that starts at `span` back to the source.
pub fn sub_span(span: Span, at: &std::ops::Range<usize>) -> Span {
    Span {
        file: span.file,
        start: span.start + at.start as u32,
        end: span.start + at.end.max(at.start + 1) as u32,
    }
}

/// Convenience for callers holding a spanned text.
pub fn spanned_socket(text: &Spanned<String>) -> Result<SocketDef, ValueError> {
    parse_socket(&text.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets() {
        let SocketDef::Listen(s) = parse_socket("udp:127.0.0.1:5060").unwrap() else {
            panic!()
        };
        assert_eq!(
            (s.proto.as_str(), s.host.as_str(), s.ports.as_slice()),
            ("udp", "127.0.0.1", &[(5060, 5060)][..])
        );
        let SocketDef::Listen(s) =
            parse_socket("TCP:[::1]:5060-5062,5070 as 203.0.113.1:5060 use_workers 4 tag edge reuse_port proxy_protocol")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(s.proto, "tcp");
        assert_eq!(s.host, "[::1]");
        assert_eq!(s.ports, vec![(5060, 5062), (5070, 5070)]);
        assert_eq!(s.advertised, Some(("203.0.113.1".into(), Some(5060))));
        assert_eq!(
            (s.use_workers, s.tag.as_deref(), s.reuse_port),
            (Some(4), Some("edge"), true)
        );
        assert!(s.allow_proxy_protocol && s.send_proxy_protocol);
        let SocketDef::Listen(s) = parse_socket("udp:* allow-proxy").unwrap() else {
            panic!()
        };
        assert_eq!(s.host, "*");
        assert!(s.allow_proxy_protocol && !s.send_proxy_protocol);
        assert_eq!(
            parse_socket(r#"bond:edge {"udp:1.2.3.4:5060", "tcp:1.2.3.9:5060"}"#).unwrap(),
            SocketDef::Bond {
                name: "edge".into(),
                members: vec!["udp:1.2.3.4:5060".into(), "tcp:1.2.3.9:5060".into()]
            }
        );
    }

    #[test]
    fn bad_sockets() {
        assert!(parse_socket("127.0.0.1:5060").unwrap_err().help.is_some());
        assert!(
            parse_socket("foo:1.2.3.4")
                .unwrap_err()
                .message
                .contains("unknown protocol")
        );
        assert!(parse_socket("udp:1.2.3.4:70000").is_err());
        assert!(parse_socket("udp:1.2.3.4:5070-5060").is_err());
        assert!(parse_socket("udp:1.2.3.4 use_workers").is_err());
        assert!(
            parse_socket("udp:1.2.3.4 bogus")
                .unwrap_err()
                .message
                .contains("bogus")
        );
    }

    #[test]
    fn aliases() {
        let a =
            parse_aliases("udp:example.com:5060 other.net accept_subdomain any:x.org:any").unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(
            (a[0].proto.as_deref(), a[0].port),
            (Some("udp"), Some(5060))
        );
        assert!(a[1].accept_subdomain && a[1].proto.is_none());
        assert_eq!(
            (a[2].proto.as_deref(), a[2].host.as_str(), a[2].port),
            (None, "x.org", None)
        );
        // A quoted alias is one host name, port and all, as OpenSIPS' grammar reads it.
        let q = parse_aliases("\"203.0.113.7:5060\"").unwrap();
        assert_eq!(
            (q[0].proto.as_deref(), q[0].host.as_str(), q[0].port),
            (None, "203.0.113.7:5060", None)
        );
        // Blanks around a colon are skipped.
        let b = parse_aliases("udp : example.com : 5070").unwrap();
        assert_eq!(
            (b[0].proto.as_deref(), b[0].host.as_str(), b[0].port),
            (Some("udp"), "example.com", Some(5070))
        );
    }

    #[test]
    fn blanks_around_colons_in_a_socket() {
        for text in [
            "tcp :0.0.0.0:5060",
            "tcp: 0.0.0.0 :5060",
            "tcp : 0.0.0.0 : 5060 as 1.2.3.4 : 5060",
        ] {
            let SocketDef::Listen(s) = parse_socket(text).unwrap() else {
                panic!("{text}: not a listener");
            };
            assert_eq!(
                (s.proto.as_str(), s.host.as_str(), s.ports.as_slice()),
                ("tcp", "0.0.0.0", &[(5060, 5060)][..]),
                "{text}"
            );
        }
    }
}
