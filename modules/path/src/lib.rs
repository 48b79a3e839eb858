//! The OpenSIPS `path` module (RFC 3327), for proxies in front of registrars:
//!
//! - `add_path([user])` puts our Path header above the REGISTER's own: `<sip:[user@]HOST[:PORT]
//!   [;transport=X];lr>` with the address of the socket the request leaves from (the port left
//!   out when it is 5060, as in our Record-Route); with `enable_double_path` (default on) and
//!   the request leaving by another socket than it came in on, a second one for the receiving
//!   socket follows, both with `;r2=on`.
//! - `add_path_received([user])` adds `;received=sip:IP:PORT` (`%3btransport%3dX` off UDP)
//!   with the address the request came from, in the last of our Path headers.
//! - `use_received`: a sequential request whose Route (ours, taken by `loose_route`) has a
//!   `received` parameter goes to that address (`$du`), through the NAT the REGISTER came
//!   through.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::OnceLock;

use engine::{AddPath, FnCtx, FnSpec, ModuleSpec, MsgCtx, Param, ParamType, Routes, Script, Value};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "path",
    functions: &[
        FnSpec {
            name: "add_path",
            params: &[(Param::Str, true)],
            routes: Routes::REQUEST,
            run: add_path,
        },
        FnSpec {
            name: "add_path_received",
            params: &[(Param::Str, true)],
            routes: Routes::REQUEST,
            run: add_path_received,
        },
    ],
    params: &[
        ("use_received", ParamType::Int),
        ("enable_double_path", ParamType::Int),
    ],
};

#[derive(Debug)]
struct Settings {
    double: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Reads the parameters; with `use_received`, sequential requests are routed by it.
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("path") {
        return Ok(());
    }
    let int = |n: &str, d: i64| script.modparam_int("path", n).unwrap_or(d);
    let use_received = int("use_received", 0) != 0;
    if use_received && !script.loads("rr") {
        return Err("path: use_received needs the rr module".into());
    }
    let fresh = SETTINGS
        .set(Settings {
            double: int("enable_double_path", 1) != 0,
        })
        .is_ok();
    if fresh && use_received {
        engine::hooks::set_routed_hook(Box::new(route_by_received));
    }
    Ok(())
}

/// `sip:IP:PORT` (IPv6 in brackets) of the source, with the transport escaped as the
/// parameter value needs it (`%3btransport%3dtcp`).
fn received(proto: &str, source: SocketAddr) -> String {
    let mut v = match source {
        SocketAddr::V4(a) => format!("sip:{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("sip:[{}]:{}", a.ip(), a.port()),
    };
    if proto != "udp" {
        v.push_str("%3btransport%3d");
        v.push_str(proto);
    }
    v
}

fn arm(f: &mut FnCtx<'_>, args: &[Value], with_received: bool) -> i64 {
    let user = args
        .first()
        .filter(|v| !matches!(v, Value::Null))
        .map(|v| v.to_text().into_owned())
        .filter(|u| !u.is_empty());
    let received = if with_received {
        match f.msg.receipt.as_ref() {
            Some(r) => Some(received(r.proto, r.source)),
            None => return -1,
        }
    } else {
        None
    };
    f.msg.add_path = Some(Box::new(AddPath {
        user,
        received,
        double: SETTINGS.get().is_none_or(|s| s.double),
    }));
    1
}

/// `add_path([user])`.
fn add_path(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    arm(f, args, false)
}

/// `add_path_received([user])`.
fn add_path_received(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    arm(f, args, true)
}

/// `%XX` escapes undone.
fn unescape(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The destination a `received` Route parameter names: the URI, its transport as a URI
/// parameter.
fn destination(params: &str) -> Option<String> {
    let value = params.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.trim().eq_ignore_ascii_case("received").then(|| v.trim())
    })?;
    let value = unescape(value.trim_matches('"'));
    match value.split_once(';') {
        Some((uri, rest)) => match rest.split_once('=') {
            Some((_, transport)) if !transport.is_empty() => {
                Some(format!("{uri};transport={transport}"))
            }
            _ => Some(uri.to_owned()),
        },
        None => Some(value),
    }
    .filter(|d| !d.is_empty())
}

/// `use_received`: a request `loose_route` took our Route(s) from goes to the address they
/// recorded: the second of a double pair has it (`r2`), as OpenSIPS' rr callbacks see it.
fn route_by_received(ctx: &mut MsgCtx) {
    let routes: Vec<String> = ctx
        .msg
        .values(sip::HeaderName::Route)
        .flat_map(sip::split_values)
        .take(2)
        .filter_map(|v| sip::NameAddr::parse(v.trim()).ok())
        .map(|na| na.uri().as_str().to_owned())
        .collect();
    let params = |uri: &str| {
        uri.split_once(';')
            .map_or(String::new(), |(_, p)| p.to_owned())
    };
    let first = routes.first().map(|u| params(u)).unwrap_or_default();
    let ours = if first
        .split(';')
        .any(|p| p.trim().eq_ignore_ascii_case("r2=on"))
        && let Some(second) = routes.get(1)
    {
        params(second)
    } else {
        first
    };
    let Some(dest) = destination(&ours) else {
        return;
    };
    if sip::Uri::parse(&dest).is_ok() {
        ctx.dst_uri = Some(dest);
    } else {
        log::error!("path: received parameter `{dest}` is not a URI");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_values_go_both_ways() {
        let v4: SocketAddr = "192.0.2.7:5070".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(received("udp", v4), "sip:192.0.2.7:5070");
        assert_eq!(received("tcp", v4), "sip:192.0.2.7:5070%3btransport%3dtcp");
        let v6: SocketAddr = "[2001:db8::1]:5060"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(
            received("tls", v6),
            "sip:[2001:db8::1]:5060%3btransport%3dtls"
        );
        assert_eq!(
            destination(";lr;received=sip:192.0.2.7:5070%3btransport%3dtcp").as_deref(),
            Some("sip:192.0.2.7:5070;transport=tcp")
        );
        assert_eq!(
            destination("received=sip:192.0.2.7:5070").as_deref(),
            Some("sip:192.0.2.7:5070")
        );
        assert_eq!(destination(";lr;did=1.2"), None);
        assert_eq!(unescape("a%3Bb%zz"), "a;b%zz");
    }
}
