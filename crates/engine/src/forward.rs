//! Stateless forwarding (RFC 3261 §16.11): where a request goes (`forward(dest)`, `$du`, the
//! R-URI), the Via the proxy adds (a branch derived from the request, so retransmissions are
//! forwarded identically), and relaying a response back along its Via headers.

use std::net::{SocketAddr, ToSocketAddrs};

use md5::{Digest, Md5};
use sip::{Edits, SipMessage, Uri};

use crate::ctx::{MsgCtx, Outbound};

/// Resolves `host[:port]` (IP literals without DNS; names through the system resolver).
fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    (h, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve `{host}`"))
}

/// The next hop of a request: an explicit `[udp:]host[:port]` or SIP URI, else `$du`, else the
/// current R-URI (its `maddr` first).
pub fn next_hop(ctx: &MsgCtx, explicit: Option<&str>) -> Result<SocketAddr, String> {
    let target = match explicit {
        Some(d) => d.trim_start_matches("udp:").to_owned(),
        None => ctx
            .dst_uri
            .clone()
            .or_else(|| ctx.ruri().map(str::to_owned))
            .ok_or("no destination")?,
    };
    if target.contains("sip:") || target.contains("sips:") {
        let uri = Uri::parse(&target).map_err(|e| format!("bad destination `{target}`: {e}"))?;
        let host = uri
            .maddr()
            .map(str::to_owned)
            .or_else(|| uri.host().map(|h| h.as_str().to_owned()));
        let host = host.ok_or_else(|| format!("no host in `{target}`"))?;
        return resolve(&host, uri.port().unwrap_or(5060));
    }
    let (host, port) = match target.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')) => {
            (h.to_owned(), p.parse().unwrap_or(5060))
        }
        _ => (target.clone(), 5060),
    };
    resolve(&host, port)
}

/// A branch that is the same for every retransmission of one request (RFC 3261 §16.11).
fn stateless_branch(msg: &SipMessage, ruri: &str) -> String {
    let mut h = Md5::new();
    h.update(
        msg.top_via()
            .ok()
            .and_then(|v| v.branch())
            .unwrap_or("")
            .as_bytes(),
    );
    h.update(b"|");
    h.update(ruri.as_bytes());
    h.update(b"|");
    h.update(msg.call_id().unwrap_or("").as_bytes());
    let hex: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("z9hG4bK{hex}")
}

/// The top Via as the server records it on receipt (RFC 3261 §18.2.1, RFC 3581 §4): `received`
/// when the source differs from sent-by, `rport` filled in when the client asked for it (or
/// `force_rport()` was called).
pub fn received_top_via(msg: &SipMessage, source: SocketAddr, force_rport: bool) -> Option<String> {
    let via = msg.top_via().ok()?;
    let mut value = via.as_str().to_owned();
    if via.host().ip() != Some(source.ip()) && via.received().is_none() {
        value.push_str(&format!(";received={}", source.ip()));
    }
    match via.rport() {
        Some(None) => {
            let parts: Vec<String> = value
                .split(';')
                .map(|p| {
                    if p.trim().eq_ignore_ascii_case("rport") {
                        format!("rport={}", source.port())
                    } else {
                        p.to_owned()
                    }
                })
                .collect();
            value = parts.join(";");
        }
        None if force_rport => value.push_str(&format!(";rport={}", source.port())),
        _ => {}
    }
    Some(value)
}

/// Edits that replace the top Via value with `value` (keeping the other values of its line).
pub fn replace_top_via(msg: &SipMessage, edits: &mut Edits, value: &str) {
    let Some(h) = msg.headers().find(|h| h.name == sip::HeaderName::Via) else {
        return;
    };
    let mut rest = sip::split_values(h.value);
    let _ = rest.next();
    let rest: Vec<&str> = rest.collect();
    let line = if rest.is_empty() {
        value.to_owned()
    } else {
        format!("{value}, {}", rest.join(", "))
    };
    edits.replace_value(h.index, line);
}

/// The request as relayed: our Via on top, the rewritten R-URI and the script's edits.
pub fn forward(ctx: &MsgCtx, explicit: Option<&str>) -> Result<Outbound, String> {
    if !ctx.msg.is_request() {
        return Err("only requests are forwarded".into());
    }
    let dest = next_hop(ctx, explicit)?;
    let forced = match &ctx.send_socket {
        Some(name) => match socket_address(name) {
            Some(("udp", a)) => Some(a),
            _ => return Err(format!("cannot send from `{name}`: not a UDP address")),
        },
        None => None,
    };
    let local = match forced {
        Some(a) => a,
        None => ctx.receipt.as_ref().ok_or("no receiving socket")?.local,
    };
    if local.is_ipv4() != dest.is_ipv4() {
        return Err(format!("cannot reach {dest} from the socket {local}"));
    }
    let ruri = ctx.ruri().unwrap_or("").to_owned();
    let mut edits: Edits = ctx.edits.clone();
    let source = ctx.receipt.as_ref().ok_or("no receiving socket")?.source;
    if let Some(v) = received_top_via(&ctx.msg, source, ctx.force_rport) {
        replace_top_via(&ctx.msg, &mut edits, &v);
    }
    let host = match local {
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
        SocketAddr::V4(a) => a.ip().to_string(),
    };
    edits.add_first(
        "Via",
        &format!(
            "SIP/2.0/UDP {host}:{};branch={}",
            local.port(),
            stateless_branch(&ctx.msg, &ruri)
        ),
    );
    if ctx.new_ruri.is_some() {
        edits.set_request_uri(ruri);
    }
    Ok(Outbound {
        data: ctx.msg.serialize(&edits),
        dest,
        from: forced,
    })
}

/// The protocol and address of a socket name `proto:host:port` whose host is an IP address.
pub fn socket_address(name: &str) -> Option<(&str, SocketAddr)> {
    let (proto, rest) = name.split_once(':')?;
    let (host, port) = rest.rsplit_once(':')?;
    let ip: std::net::IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some((proto, SocketAddr::new(ip, port.parse().ok()?)))
}

/// A response whose top Via is ours, relayed to the next Via (RFC 3261 §18.2.2 with `received`
/// and `rport`). `None` when the top Via is not ours or there is no next hop.
pub fn relay_response(msg: &SipMessage, ours: &dyn Fn(&str, u16) -> bool) -> Option<Outbound> {
    let mut vias = msg.vias();
    let top = vias.next()?.ok()?;
    if !ours(top.host().as_str(), top.port().unwrap_or(5060)) {
        return None;
    }
    let next = vias.next()?.ok()?;
    let host = match next.received() {
        Some(r) => r.to_owned(),
        None => next.host().as_str().to_owned(),
    };
    let port = match next.rport() {
        Some(Some(p)) => p,
        _ => next.port().unwrap_or(5060),
    };
    let dest = resolve(&host, port).ok()?;
    Some(Outbound {
        data: msg.serialize(Edits::new().remove_top_via(msg)),
        dest,
        from: None,
    })
}
