//! `$socket_in` / `$socket_out` and their fields: `proto:ip:port` of a socket, with what its
//! `socket=` line says (`as`, `tag`, `anycast`).

use std::net::SocketAddr;

use super::SocketField;
use crate::ctx::MsgCtx;
use crate::value::Value;

/// The `socket=` line of a socket, when one configures it.
fn configured(ctx: &MsgCtx, proto: &str, addr: SocketAddr) -> Option<crate::forward::Socket> {
    ctx.script.as_ref().and_then(|s| {
        s.net()
            .listen
            .iter()
            .find(|x| x.proto == proto && x.addr == Some(addr))
            .cloned()
    })
}

/// `$socket_in` / `$socket_in(field)`: the socket the message came in on.
pub(super) fn socket_in(ctx: &MsgCtx, field: Option<SocketField>) -> Value {
    match ctx.receipt.as_ref() {
        Some(r) => socket_field(
            r.proto,
            r.local,
            field,
            configured(ctx, r.proto, r.local).as_ref(),
        ),
        None => Value::Null,
    }
}

/// `$socket_out` / `$socket_out(field)`: the socket forced for sending, else the one the
/// message came in on (OpenSIPS pvar.c `pv_get_socket_out_fields`); `$socket_out(forced)` is
/// NULL when none is forced. `ctx.send_socket` itself stays the forced one only.
pub(super) fn socket_out(ctx: &MsgCtx, field: Option<SocketField>) -> Value {
    let Some(name) = ctx.send_socket.as_deref() else {
        return match field {
            Some(SocketField::Forced) => Value::Null,
            other => socket_in(ctx, other),
        };
    };
    match (field, crate::forward::socket_address(name)) {
        (None | Some(SocketField::Forced), _) => Value::from(name.to_owned()),
        (Some(_), Some((proto, addr))) => {
            socket_field(proto, addr, field, configured(ctx, proto, addr).as_ref())
        }
        (Some(_), None) => Value::Null,
    }
}

/// A field of a socket, with what its `socket=` line says (`as`, `tag`, `anycast`).
fn socket_field(
    proto: &str,
    addr: std::net::SocketAddr,
    field: Option<super::SocketField>,
    socket: Option<&crate::forward::Socket>,
) -> Value {
    use super::SocketField as F;
    match field {
        Some(F::AdvertisedIp) => socket
            .and_then(|s| s.advertised.as_ref())
            .map_or(Value::Null, |(h, _)| Value::from(h.clone())),
        Some(F::AdvertisedPort) => socket
            .and_then(|s| s.advertised.as_ref())
            .map_or(Value::Null, |(_, p)| {
                Value::Int(i64::from(p.unwrap_or(addr.port())))
            }),
        Some(F::Tag) => socket
            .and_then(|s| s.tag.clone())
            .map_or(Value::Null, Value::from),
        Some(F::Anycast) => Value::Int(i64::from(socket.is_some_and(|s| s.anycast))),
        other => socket_value(proto, addr, other),
    }
}

/// `proto:ip:port` of a socket, or one of its fields.
fn socket_value(
    proto: &str,
    addr: std::net::SocketAddr,
    field: Option<super::SocketField>,
) -> Value {
    use super::SocketField as F;
    match field {
        None | Some(F::Forced) => Value::from(format!(
            "{proto}:{}:{}",
            super::ip_uri_text(addr.ip()),
            addr.port()
        )),
        // The socket's address as written in URIs (OpenSIPS `address_str`: IPv6 in brackets).
        Some(F::Ip) => Value::from(super::ip_uri_text(addr.ip())),
        Some(F::Port) => Value::Int(i64::from(addr.port())),
        Some(F::Proto) => Value::from(proto.to_owned()),
        Some(F::Af) => Value::str(if addr.is_ipv4() { "INET" } else { "INET6" }),
        Some(F::AdvertisedIp | F::AdvertisedPort | F::Tag | F::Anycast) => Value::Null,
    }
}
