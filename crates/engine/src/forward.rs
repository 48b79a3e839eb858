//! Stateless forwarding (RFC 3261 §16.11): where a request goes (`forward(dest)`, `$du`, the
//! R-URI), the Via the proxy adds (a branch derived from the request, so retransmissions are
//! forwarded identically), and relaying a response back along its Via headers.

use std::net::SocketAddr;

use sip::{Edits, SipMessage, Uri};

use crate::ctx::{MsgCtx, Outbound};

mod locate;
pub use locate::{Target, set_dns};
use locate::{locate, outbound_socket, resolve};

/// `host:port` as our Via and Record-Route name it, with `set_advertised_address` /
/// `set_advertised_port` applied.
fn advertised(ctx: &MsgCtx, hostport: String) -> String {
    if ctx.adv_address.is_none() && ctx.adv_port.is_none() {
        return hostport;
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h.to_owned(), Some(p.to_owned()))
        }
        _ => (hostport.clone(), None),
    };
    let host = ctx.adv_address.clone().unwrap_or(host);
    match ctx.adv_port.clone().or(port) {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// The transport names rsips knows, as `&'static str` (what `Receipt::proto` holds).
pub fn proto_name(name: &str) -> Option<&'static str> {
    ["udp", "tcp", "tls", "ws", "wss"]
        .into_iter()
        .find(|p| p.eq_ignore_ascii_case(name))
}

/// The port a destination without one means for a transport (RFC 3261 §19.1.2, RFC 7118 §5).
pub fn default_port(proto: &str) -> u16 {
    match proto {
        "tls" => 5061,
        "ws" => 80,
        "wss" => 443,
        _ => 5060,
    }
}

/// The next hop of a request and the transport to reach it: an explicit
/// `[proto:]host[:port]` or SIP URI, else `$du`, else the current R-URI (its `maddr` first).
/// The transport is the URI's `transport` parameter, `tls` for `sips:`, the explicit prefix,
/// else UDP.
pub fn next_hop(ctx: &MsgCtx, explicit: Option<&str>) -> Result<Target, String> {
    next_hops(ctx, explicit)?
        .into_iter()
        .next()
        .ok_or_else(|| "no destination".into())
}

/// Every place [`next_hop`]'s destination leads, in the order to try them (the addresses of
/// the SRV targets, for DNS failover); never empty when `Ok`.
pub fn next_hops(ctx: &MsgCtx, explicit: Option<&str>) -> Result<Vec<Target>, String> {
    let target: &str = match explicit {
        Some(d) => d,
        None => ctx
            .dst_uri
            .as_deref()
            .or_else(|| ctx.ruri())
            .ok_or("no destination")?,
    };
    let (prefix, rest) = match target.split_once(':') {
        Some((p, rest)) => match proto_name(p) {
            Some(p) => (Some(p), rest),
            None => (None, target),
        },
        None => (None, target),
    };
    if rest.contains("sip:") || rest.contains("sips:") {
        let uri = Uri::parse(rest).map_err(|e| format!("bad destination `{rest}`: {e}"))?;
        let proto = match uri.transport() {
            Some(t) => proto_name(t).ok_or_else(|| format!("unsupported transport `{t}`"))?,
            None if rest.trim_start().starts_with("sips:") => "tls",
            None => prefix.unwrap_or("udp"),
        };
        let host = uri.maddr().or_else(|| uri.host().map(|h| h.as_str()));
        let host = host.ok_or_else(|| format!("no host in `{rest}`"))?;
        let secure = rest.trim_start().starts_with("sips:");
        let given = match uri.transport() {
            Some(_) => Some(proto),
            None if secure => Some("tls"),
            None => prefix,
        };
        return locate(host, uri.port(), given, secure);
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')) => {
            (h, p.parse().ok())
        }
        _ => (rest, None),
    };
    locate(host, port, prefix, false)
}

/// A branch that is the same for every retransmission of one request (RFC 3261 §16.11), and
/// for its CANCEL and its ACK to a negative reply, from the request's top Via branch
/// (`top_branch`), the outgoing R-URI and the Call-ID. RFC 3261 leaves the function open (it
/// names MD5 as an example); a keyed SipHash is as good at keeping branches apart and several
/// times cheaper, and this runs for every request forwarded statelessly.
fn stateless_branch(msg: &SipMessage, top_branch: Option<&str>, ruri: &str) -> String {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    h.write(top_branch.unwrap_or("").as_bytes());
    h.write_u8(b'|');
    h.write(ruri.as_bytes());
    h.write_u8(b'|');
    h.write(msg.call_id().unwrap_or("").as_bytes());
    let mut branch = String::with_capacity(7 + 16);
    branch.push_str("z9hG4bK");
    sip::push_hex_bytes(&mut branch, &h.finish().to_be_bytes());
    branch
}

/// The top Via as the server records it on receipt (RFC 3261 §18.2.1, RFC 3581 §4): see
/// [`recorded_via`].
pub fn received_top_via(msg: &SipMessage, source: SocketAddr, force_rport: bool) -> Option<String> {
    let via = msg.top_via().ok()?;
    Some(recorded_via(&via, source, force_rport, true).unwrap_or_else(|| via.as_str().to_owned()))
}

/// What [`received_top_via`] makes of `via`, or `None` when it stays as it is: the common
/// case, which needs no edit. As OpenSIPS (and RFC 3581 §4): `received` is set to the source
/// address when sent-by names another address, when the Via asks for `rport` or `force_rport`
/// is on (even when it equals sent-by), and replaces one already there; `rport` gets the
/// source port whenever it is present (any value is replaced) or forced.
fn recorded_via(
    via: &sip::Via<'_>,
    source: SocketAddr,
    force_rport: bool,
    in_reply: bool,
) -> Option<String> {
    let rport = via.rport();
    let set_rport = rport.is_some() || force_rport;
    let received = via.received_ip();
    let add_received =
        set_rport || via.received().is_some() || via.host().ip() != Some(source.ip());
    if !add_received {
        return None;
    }
    let unchanged = received == Some(source.ip())
        && match rport {
            Some(value) => value == Some(source.port()),
            None => !force_rport,
        };
    if unchanged {
        return None;
    }
    let value = via.as_str();
    let mut out = String::with_capacity(value.len() + 32);
    let mut at = 0;
    for (range, text) in via_param_edits(value, source, add_received, set_rport, in_reply) {
        out.push_str(&value[at..range.start]);
        out.push_str(&text);
        at = range.end;
    }
    out.push_str(&value[at..]);
    Some(out)
}

/// Where `received` and `rport` go in a Via value, as byte ranges of `value` and their new
/// text, in order: one already there is rewritten in place; a new one goes right after
/// sent-by — or, for a new `rport` when `received` was there, just before it — with `rport`
/// ahead of `received` when both are new (where OpenSIPS' lumps put them in a relayed
/// request; a local reply, which OpenSIPS writes out by hand, has `received` first).
fn via_param_edits(
    value: &str,
    source: SocketAddr,
    add_received: bool,
    set_rport: bool,
    in_reply: bool,
) -> Vec<(std::ops::Range<usize>, String)> {
    let (ip, port) = (source.ip().to_string(), source.port().to_string());
    let (mut received, mut rport) = (None, None);
    let mut sent_by_end = value.len();
    let mut at = 0;
    for (i, part) in value.split(';').enumerate() {
        let range = at..at + part.len();
        at = range.end + 1;
        if i == 0 {
            sent_by_end = range.end;
            continue;
        }
        let name = part.split('=').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("received") && received.is_none() {
            received = Some(range);
        } else if name.eq_ignore_ascii_case("rport") && rport.is_none() {
            rport = Some(range);
        }
    }
    let mut edits = Vec::new();
    let new_rport = (set_rport && rport.is_none()).then(|| format!(";rport={port}"));
    match (&received, add_received) {
        (Some(r), true) => {
            // The new rport (if any) goes where the old received was, ahead of the new one.
            let mut text = String::new();
            if let Some(np) = &new_rport {
                text.push_str(&np[1..]);
                text.push(';');
            }
            text.push_str("received=");
            text.push_str(&ip);
            edits.push((r.clone(), text));
        }
        _ => {
            let received = if add_received {
                format!(";received={ip}")
            } else {
                String::new()
            };
            let rport = new_rport.clone().unwrap_or_default();
            let text = if in_reply {
                received + &rport
            } else {
                rport + &received
            };
            if !text.is_empty() {
                edits.push((sent_by_end..sent_by_end, text));
            }
        }
    }
    if let Some(r) = rport {
        edits.push((r, format!("rport={port}")));
    }
    edits.sort_by_key(|(r, _)| r.start);
    edits
}

/// When the script patched the top Via (textops), what [`recorded_via`] adds goes in as patches
/// of its own, so both changes leave with the request (rewriting the line would drop the
/// script's). False, and nothing done, when the script did not touch the top Via.
fn record_via_by_patches(
    msg: &SipMessage,
    via: &sip::Via<'_>,
    receipt: &crate::ctx::Receipt,
    force_rport: bool,
    edits: &mut Edits,
) -> bool {
    let raw = msg.as_bytes();
    let value = via.as_str();
    // The value is a slice of the message; find where (`None` if it is not).
    let base = (value.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
    if raw.get(base..base + value.len()) != Some(value.as_bytes()) {
        return false;
    }
    let end = base + value.len();
    if !edits.patched_within(base..end) {
        return false;
    }
    let source = receipt.source;
    let set_rport = via.rport().is_some() || force_rport;
    let add_received =
        set_rport || via.received().is_some() || via.host().ip() != Some(source.ip());
    for (range, text) in via_param_edits(value, source, add_received, set_rport, false) {
        edits.patch(base + range.start..base + range.end, text);
    }
    true
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

/// The local socket a request to `dest` over `proto` leaves from: the forced one, else the
/// receiving socket when it has the transport, else the first configured socket of that
/// transport and address family. Returns its address and the host:port our Via names (the
/// advertised address when the socket has one).
fn sending_socket(
    ctx: &MsgCtx,
    proto: &'static str,
    dest: SocketAddr,
    sockets: &Sockets,
) -> Result<(SocketAddr, String), String> {
    let family = |a: &SocketAddr| a.is_ipv4() == dest.is_ipv4();
    let chosen = if let Some(members) = ctx.send_socket.as_deref().and_then(|n| sockets.bond(n)) {
        // OpenSIPS keeps members in reverse definition order and takes the first whose
        // protocol and address family fit the destination.
        members
            .iter()
            .rev()
            .filter_map(|m| socket_address(m))
            .find(|(p, a)| p.eq_ignore_ascii_case(proto) && family(a))
            .map(|(_, a)| a)
            .ok_or_else(|| {
                format!(
                    "no member of `{}` sends {proto} to {dest}",
                    ctx.send_socket.as_deref().unwrap_or("")
                )
            })?
    } else if let Some((name, (p, a))) = ctx
        .send_socket
        .as_ref()
        .and_then(|n| Some((n, socket_address(n)?)))
        // A forced socket of the other address family is ignored (OpenSIPS).
        .filter(|(_, (_, a))| family(a))
    {
        if p.eq_ignore_ascii_case(proto) {
            a
        } else {
            // Another transport: the socket of that transport on the same address and port.
            sockets
                .listen
                .iter()
                .find(|s| s.proto == proto && s.addr == Some(a))
                .and_then(|s| s.addr)
                .ok_or_else(|| {
                    format!("cannot send over {proto} from the {p} socket `{name}`: no {proto} socket on {a}")
                })?
        }
    } else if let Some(name) = ctx
        .send_socket
        .as_ref()
        .filter(|n| socket_address(n).is_none())
    {
        return Err(format!("cannot send from `{name}`: not a socket address"));
    } else if let Some(out) = (proto == "udp" && ctx.script.as_ref().is_some_and(|s| s.mhomed()))
        .then(|| outbound_socket(dest, sockets))
        .flatten()
    {
        // `mhomed`: the UDP socket on the address the kernel's route to `dest` leaves from.
        out
    } else {
        // A request we received leaves by its socket when it can; a locally generated one
        // (no receipt) by the first socket of the transport and family.
        let same = ctx
            .receipt
            .as_ref()
            .filter(|r| r.proto == proto && family(&r.local));
        if let Some(receipt) = same {
            receipt.local
        } else {
            sockets
                .listen
                .iter()
                .filter(|s| s.proto == proto)
                .find_map(|s| s.addr.filter(family))
                .ok_or_else(|| format!("no {proto} socket can reach {dest}"))?
        }
    };
    if !family(&chosen) {
        return Err(format!("cannot reach {dest} from the socket {chosen}"));
    }
    let advertised = sockets
        .listen
        .iter()
        .find(|s| s.proto == proto && s.addr == Some(chosen))
        .and_then(|s| s.advertised.clone());
    let hostport = match advertised {
        Some((host, port)) => format!("{host}:{}", port.unwrap_or(chosen.port())),
        None => match chosen {
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
            SocketAddr::V4(a) => v4_hostport(a),
        },
    };
    Ok((chosen, hostport))
}

/// `a.b.c.d:port`, as `SocketAddrV4`'s `Display` writes it, without the formatting machinery
/// (this runs for every request forwarded).
pub fn v4_hostport(a: std::net::SocketAddrV4) -> String {
    let mut out = String::with_capacity(21);
    for (i, octet) in a.ip().octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        sip::push_decimal(&mut out, u64::from(octet));
    }
    out.push(':');
    sip::push_decimal(&mut out, u64::from(a.port()));
    out
}

/// The configured sockets: listeners and bonds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sockets {
    pub listen: Vec<Socket>,
    /// `bond:NAME {members}`: lower-case `proto:host:port` member names, in definition order.
    pub bonds: Vec<(String, Vec<String>)>,
}

impl Sockets {
    /// The members of bond `name` (`bond:NAME` or `NAME`).
    pub fn bond(&self, name: &str) -> Option<&[String]> {
        let name = name.strip_prefix("bond:").unwrap_or(name);
        self.bonds
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, m)| m.as_slice())
    }
}

/// Sockets opened and closed while the server runs (OpenSIPS `sockets_mgm`), shared by every
/// script the server runs: forwarding, `is_myself`, `$socket_in` and `force_send_socket` see
/// them beside the configured ones. Read-mostly: a reload replaces the whole list.
#[derive(Debug, Default)]
pub struct DynamicSockets {
    /// Bumped by every change, so a script rebuilds its merged view only then.
    generation: std::sync::atomic::AtomicU64,
    list: std::sync::RwLock<std::sync::Arc<Vec<Socket>>>,
}

impl DynamicSockets {
    /// Replaces the list (what the server now listens on).
    pub fn set(&self, list: Vec<Socket>) {
        *self
            .list
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::sync::Arc::new(list);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub fn list(&self) -> std::sync::Arc<Vec<Socket>> {
        std::sync::Arc::clone(
            &self
                .list
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// `proto:ip:port` of a bound address as `force_send_socket` and `$socket_out` name it (an
/// IPv6 address in brackets).
pub fn socket_name(proto: &str, addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V6(a) => format!("{proto}:[{}]:{}", a.ip(), a.port()),
        a => format!("{proto}:{}:{}", a.ip(), a.port()),
    }
}

impl Socket {
    /// `proto:ip:port` as `force_send_socket` and `$socket_out` name it (lower case, an IPv6
    /// address in brackets).
    pub fn name(&self) -> String {
        match self.addr {
            Some(a) => socket_name(self.proto, a),
            None => format!(
                "{}:{}:{}",
                self.proto,
                self.host.to_ascii_lowercase(),
                self.port
            ),
        }
    }
}

/// A listening socket as forwarding needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub proto: &'static str,
    /// The host as written (`*`, an IP, a name).
    pub host: String,
    pub port: u16,
    /// The bound address (`None` for names that are not IP literals).
    pub addr: Option<SocketAddr>,
    /// `as host[:port]`.
    pub advertised: Option<(String, Option<u16>)>,
    /// `allow_proxy_protocol` / `proxy_protocol`: connections start with a PROXY header.
    pub allow_proxy_protocol: bool,
    /// `send_proxy_protocol`: connections opened from it start with a PROXY header.
    pub send_proxy_protocol: bool,
    /// `use_workers N` (UDP): workers reading this socket instead of `udp_workers`.
    pub use_workers: Option<u32>,
    /// `reuse_port`: outgoing connections leave from the listening port.
    pub reuse_port: bool,
    /// `tos N`: the IP TOS / traffic class of what leaves the socket.
    pub tos: Option<u32>,
    /// `tag NAME`.
    pub tag: Option<String>,
    /// `anycast`.
    pub anycast: bool,
}

/// The request as relayed: our Via on top, the rewritten R-URI and the script's edits.
pub fn forward(
    ctx: &MsgCtx,
    explicit: Option<&str>,
    sockets: &Sockets,
) -> Result<Outbound, String> {
    forward_with_branch(ctx, explicit, sockets, None)
}

/// `forward` with a given Via branch (a transaction's branch id); `None` derives a stateless
/// one from the request.
pub fn forward_with_branch(
    ctx: &MsgCtx,
    explicit: Option<&str>,
    sockets: &Sockets,
    branch: Option<&str>,
) -> Result<Outbound, String> {
    if !ctx.msg.is_request() {
        return Err("only requests are forwarded".into());
    }
    let target = next_hop(ctx, explicit)?;
    forward_to(ctx, target, sockets, branch)
}

/// [`forward_with_branch`] to a target already located (tm's DNS failover tries the next).
pub fn forward_to(
    ctx: &MsgCtx,
    (proto, dest): Target,
    sockets: &Sockets,
    branch: Option<&str>,
) -> Result<Outbound, String> {
    if !ctx.msg.is_request() {
        return Err("only requests are forwarded".into());
    }
    let (local, hostport) = sending_socket(ctx, proto, dest, sockets)?;
    let hostport = advertised(ctx, hostport);
    let forced = ctx.send_socket.as_ref().map(|_| local);
    let ruri = ctx.ruri().unwrap_or("");
    let mut edits: Edits = ctx.edits.clone();
    let top = ctx.msg.top_via().ok();
    if ctx.hide_topology {
        // topology_hiding: only our Via goes on.
        for h in ctx.msg.headers().filter(|h| h.name == sip::HeaderName::Via) {
            edits.remove(h.index);
        }
    } else if let (Some(receipt), Some(via)) = (ctx.receipt.as_ref(), top.as_ref())
        && !record_via_by_patches(&ctx.msg, via, receipt, ctx.force_rport, &mut edits)
        && let Some(v) = recorded_via(via, receipt.source, ctx.force_rport, false)
    {
        replace_top_via(&ctx.msg, &mut edits, &v);
    }
    let stateless;
    let branch = match branch {
        Some(b) => b,
        None => {
            stateless = stateless_branch(&ctx.msg, top.as_ref().and_then(|v| v.branch()), ruri);
            &stateless
        }
    };
    let mut via = String::with_capacity(24 + hostport.len() + branch.len());
    via.push_str("SIP/2.0/");
    via.extend(proto.chars().map(|c| c.to_ascii_uppercase()));
    via.push(' ');
    via.push_str(&hostport);
    via.push_str(";branch=");
    via.push_str(branch);
    // A request that came over a connection names it in our Via (`i=`, as OpenSIPS does), so
    // a stateless reply finds the connection again whatever port the sender's Via names.
    if let Some(id) = ctx.receipt.as_ref().and_then(|r| r.conn) {
        via.push_str(";i=");
        via.push_str(&format!("{id:x}"));
    }
    if ctx.local_rport {
        via.push_str(";rport");
    }
    edits.add_first("Via", &via);
    // The branch's path vector (RFC 3327, from lookup) leads the route set.
    if let Some(path) = ctx.path.as_deref().filter(|p| !p.trim().is_empty()) {
        edits.add_top("Route", path);
    }
    if let Some(rr) = ctx.record_route.as_ref().filter(|rr| rr.done) {
        record_route(ctx, rr, (proto, local), &hostport, sockets, &mut edits);
    }
    if let Some(p) = ctx.add_path.as_deref() {
        add_path(ctx, p, (proto, local), &hostport, sockets, &mut edits);
    }
    if ctx.new_ruri.is_some() {
        edits.set_request_uri(ruri);
    }
    // A datagram without Content-Length leaving over a stream gets one (RFC 3261 §18.3).
    if proto != "udp" {
        edits.force_content_length();
    }
    let mut data = ctx.msg.serialize(&edits);
    if ctx.hide_topology {
        data = substitute_send_address(data, proto, &hostport);
    }
    Ok(Outbound {
        data,
        dest,
        from: forced.or(Some(local)),
        proto,
        conn: None,
        // A new connection's PROXY header names the client (OpenSIPS: the request's real
        // endpoints when it came with a PROXY header, else its source and our socket).
        origin: ctx
            .receipt
            .as_ref()
            .map(|r| r.proxy.unwrap_or((r.source, r.local))),
        no_new_conn: crate::ctx::no_new_conn_branch(ctx),
    })
}

/// A marker a module puts in its edits where the address of the socket the request leaves
/// from goes (OpenSIPS' `SUBST_SND_ALL`: `host:port[;transport=X]`), with
/// [`MsgCtx::hide_topology`] set.
pub const SEND_ADDRESS: &str = "\u{1}rsips-send-address\u{1}";

/// The message with each [`SEND_ADDRESS`] replaced by `hostport` and, off UDP, the
/// transport parameter.
fn substitute_send_address(data: Vec<u8>, proto: &str, hostport: &str) -> Vec<u8> {
    let marker = SEND_ADDRESS.as_bytes();
    if !data.windows(marker.len()).any(|w| w == marker) {
        return data;
    }
    let mut with = hostport.to_owned();
    if proto != "udp" {
        with.push_str(";transport=");
        with.push_str(proto);
    }
    let mut out = Vec::with_capacity(data.len() + with.len());
    let mut rest = data.as_slice();
    while let Some(i) = rest.windows(marker.len()).position(|w| w == marker) {
        out.extend_from_slice(rest.get(..i).unwrap_or(&[]));
        out.extend_from_slice(with.as_bytes());
        rest = rest.get(i + marker.len()..).unwrap_or(&[]);
    }
    out.extend_from_slice(rest);
    out
}

/// The Record-Route value for a socket: `<sip:HOST[:PORT][;transport=X][;r2=on];lr[;ftag=T]P>`.
fn rr_value(
    user: Option<&str>,
    hostport: &str,
    proto: &str,
    r2: bool,
    ftag: Option<&str>,
    params: &str,
) -> String {
    let mut v = String::with_capacity(64 + hostport.len() + params.len());
    v.push_str("<sip:");
    if let Some(user) = user {
        v.push_str(user);
        v.push('@');
    }
    v.push_str(hostport);
    if proto != "udp" {
        v.push_str(";transport=");
        v.push_str(proto);
    }
    if r2 {
        v.push_str(";r2=on");
    }
    v.push_str(";lr");
    if let Some(t) = ftag {
        v.push_str(";ftag=");
        v.push_str(t);
    }
    v.push_str(params);
    v.push('>');
    v
}

/// `host:port` as a Record-Route names a socket: OpenSIPS leaves out the port when it is the
/// default 5060 and comes from the socket itself (not from an `as` name or
/// `set_advertised_port`).
fn rr_hostport(hostport: &str, port_is_own: bool) -> &str {
    match hostport.strip_suffix(":5060") {
        Some(host) if port_is_own => host,
        _ => hostport,
    }
}

/// Whether the sending socket's port is its own (not an advertised one), and the receiving
/// socket: (protocol, address, host:port as advertised, port is its own).
#[allow(clippy::type_complexity)]
fn sides(
    ctx: &MsgCtx,
    (proto, local): (&str, SocketAddr),
    sockets: &Sockets,
) -> (bool, Option<(&'static str, SocketAddr, String, bool)>) {
    let advertised_of = |proto: &str, addr: SocketAddr| {
        sockets
            .listen
            .iter()
            .find(|s| s.proto == proto && s.addr == Some(addr))
            .and_then(|s| s.advertised.clone())
    };
    let out_own_port = advertised_of(proto, local).is_none() && ctx.adv_port.is_none();
    let inbound = ctx.receipt.as_ref().map(|r| {
        let (hostport, own_port) = match advertised_of(r.proto, r.local) {
            Some((h, p)) => (format!("{h}:{}", p.unwrap_or(r.local.port())), false),
            None => match r.local {
                SocketAddr::V6(a) => (format!("[{}]:{}", a.ip(), a.port()), true),
                SocketAddr::V4(a) => (a.to_string(), true),
            },
        };
        (r.proto, r.local, hostport, own_port)
    });
    (out_own_port, inbound)
}

/// The path module's Path headers (RFC 3327): the sending socket's, and with
/// `enable_double_path` the receiving socket's after it when the two differ, both `;r2=on`;
/// `;received=` goes in the last. They go above the Path headers the request has.
fn add_path(
    ctx: &MsgCtx,
    p: &crate::ctx::AddPath,
    (proto, local): (&str, SocketAddr),
    out_hostport: &str,
    sockets: &Sockets,
    edits: &mut Edits,
) {
    let (out_own_port, inbound) = sides(ctx, (proto, local), sockets);
    let double = p.double
        && inbound
            .as_ref()
            .is_some_and(|(ip, addr, _, _)| *ip != proto || *addr != local);
    let value = |hostport: &str, proto: &str, r2: bool, received: bool| {
        let mut v = String::from("<sip:");
        if let Some(u) = &p.user {
            v.push_str(u);
            v.push('@');
        }
        v.push_str(hostport);
        if proto != "udp" {
            v.push_str(";transport=");
            v.push_str(proto);
        }
        if r2 {
            v.push_str(";r2=on");
        }
        if received && let Some(r) = &p.received {
            v.push_str(";received=");
            v.push_str(r);
        }
        v.push_str(";lr>");
        v
    };
    let mut values = vec![value(
        rr_hostport(out_hostport, out_own_port),
        proto,
        double,
        !double,
    )];
    if double && let Some((ip, _, h, own)) = &inbound {
        values.push(value(rr_hostport(h, *own), ip, true, true));
    }
    let first = ctx
        .msg
        .headers()
        .find(|h| h.name_str.eq_ignore_ascii_case("Path"))
        .map(|h| h.index);
    for v in &values {
        match first {
            Some(i) => {
                edits.insert_before(i, "Path", v);
            }
            None => {
                edits.append("Path", v);
            }
        }
    }
}

/// Adds our Record-Route (RFC 3261 §16.6 step 4): the sending socket's, and with double RR the
/// receiving socket's below it when the two sockets differ (protocol or address).
fn record_route(
    ctx: &MsgCtx,
    rr: &crate::ctx::RecordRoute,
    (proto, local): (&str, SocketAddr),
    out_hostport: &str,
    sockets: &Sockets,
    edits: &mut Edits,
) {
    let ftag = if rr.ftag {
        ctx.msg.from_tag().ok().flatten()
    } else {
        None
    };
    if let Some((first, second)) = &rr.preset {
        // `record_route_preset`: each address as given (`sip:` optional), then `;ftag=T;lr`;
        // the parameters go in the first only.
        let value = |a: &str, params: &str| {
            let mut v = String::from("<sip:");
            if let Some(user) = &rr.user {
                v.push_str(user);
                v.push('@');
            }
            v.push_str(a.trim_start_matches("sip:"));
            if let Some(t) = ftag {
                v.push_str(";ftag=");
                v.push_str(t);
            }
            v.push_str(";lr");
            v.push_str(params);
            v.push('>');
            v
        };
        edits.add_record_route(&ctx.msg, &value(first, &rr.params));
        if let Some(second) = second {
            edits.add_record_route(&ctx.msg, &value(second, ""));
        }
        return;
    }
    let (out_own_port, inbound) = sides(ctx, (proto, local), sockets);
    // Two Record-Routes when the request leaves by another socket than it came in on (the
    // sockets themselves are compared, not the names they advertise).
    let double = rr.double
        && inbound
            .as_ref()
            .is_some_and(|(p, addr, _, _)| *p != proto || *addr != local);
    edits.add_record_route(
        &ctx.msg,
        &rr_value(
            rr.user.as_deref(),
            rr_hostport(out_hostport, out_own_port),
            proto,
            double,
            ftag,
            &rr.params,
        ),
    );
    if double && let Some((p, _, h, own)) = &inbound {
        edits.add_record_route(
            &ctx.msg,
            &rr_value(
                rr.user.as_deref(),
                rr_hostport(h, *own),
                p,
                true,
                ftag,
                &rr.params,
            ),
        );
    }
}

/// `send(dest[, headers])`: the message exactly as received (plus `headers`, CRLF-separated
/// lines), to `dest`, without our Via — OpenSIPS' raw stateless send.
pub fn send(
    ctx: &MsgCtx,
    dest: &str,
    headers: Option<&str>,
    sockets: &Sockets,
) -> Result<Outbound, String> {
    let (proto, addr) = next_hop(ctx, Some(dest))?;
    let (local, _) = sending_socket(ctx, proto, addr, sockets)?;
    let mut edits = Edits::new();
    for line in headers
        .unwrap_or("")
        .split("\r\n")
        .filter(|l| !l.trim().is_empty())
    {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line `{line}`"))?;
        // Right after the first line, in the order given (OpenSIPS `send`).
        edits.add_top(name.trim(), value.trim());
    }
    if proto != "udp" {
        edits.force_content_length();
    }
    Ok(Outbound {
        data: ctx.msg.serialize(&edits),
        dest: addr,
        from: Some(local),
        proto,
        conn: None,
        origin: None,
        no_new_conn: false,
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
    relay_response_with(msg, &Edits::new(), ours)
}

/// [`relay_response`] with the edits a script made to the response (`onreply_route`).
pub fn relay_response_with(
    msg: &SipMessage,
    edits: &Edits,
    ours: &dyn Fn(&str, u16) -> bool,
) -> Option<Outbound> {
    let mut vias = msg.vias();
    let top = vias.next()?.ok()?;
    if !ours(top.host().as_str(), top.port().unwrap_or(5060)) {
        return None;
    }
    let next = vias.next()?.ok()?;
    // RFC 3261 §18.2.2 / OpenSIPS: maddr, else received, else sent-by.
    let host = match (next.param("maddr").flatten(), next.received()) {
        (Some(m), _) => m.to_owned(),
        (None, Some(r)) => r.to_owned(),
        (None, None) => next.host().as_str().to_owned(),
    };
    let proto = proto_name(next.transport()).unwrap_or("udp");
    let port = match next.rport() {
        Some(Some(p)) => p,
        _ => next.port().unwrap_or(default_port(proto)),
    };
    let dest = resolve(&host, port).ok()?;
    let mut edits = edits.clone();
    edits.remove_top_via(msg);
    // A stream needs the length to find the message's end (RFC 3261 §18.3).
    if proto != "udp" {
        edits.force_content_length();
    }
    Some(Outbound {
        data: msg.serialize(&edits),
        dest,
        from: None,
        proto,
        // The connection the request came over, named in our Via (`i=`).
        conn: top
            .param("i")
            .flatten()
            .filter(|_| proto != "udp")
            .and_then(|id| u64::from_str_radix(id, 16).ok()),
        origin: None,
        no_new_conn: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn request(method: &str, call_id: &str) -> SipMessage {
        let text = format!(
            "{method} sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc1\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        );
        SipMessage::parse(bytes::Bytes::from(text)).expect("test message parses")
    }

    /// The top Via of a request with the given Via value, as recorded from `source`.
    fn recorded(via: &str, source: &str, force_rport: bool) -> String {
        let text = format!(
            "OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {via}\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: v\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        let msg = SipMessage::parse(bytes::Bytes::from(text)).expect("test message parses");
        let via = msg.top_via().expect("a top Via");
        recorded_via(&via, source.parse().expect("address"), force_rport, false)
            .unwrap_or_else(|| via.as_str().to_owned())
            .trim_start_matches("SIP/2.0/UDP ")
            .to_owned()
    }

    // A local reply (OpenSIPS writes it by hand) has a new `received` ahead of a new `rport`.
    #[test]
    fn a_local_replys_via_has_received_first() {
        let text = "OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
                    From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: v\r\n\
                    CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let msg = SipMessage::parse(bytes::Bytes::from(text)).expect("test message parses");
        assert_eq!(
            received_top_via(&msg, "192.0.2.1:5071".parse().expect("address"), true).as_deref(),
            Some("SIP/2.0/UDP 10.0.0.1;received=192.0.2.1;rport=5071;branch=z9hG4bK1")
        );
    }

    // RFC 3581 §4 and OpenSIPS: with rport (asked or forced) `received` is always added, even
    // when it equals sent-by; rport takes the source port, replacing any value; an old
    // `received` is replaced; without rport and with sent-by = source nothing changes.
    #[test]
    fn received_and_rport_follow_rfc_3581() {
        let src = "192.0.2.1:5071";
        assert_eq!(
            recorded("192.0.2.1:5071;branch=z9hG4bK1", src, false),
            "192.0.2.1:5071;branch=z9hG4bK1"
        );
        assert_eq!(
            recorded("192.0.2.1:5060;branch=z9hG4bK1", src, false),
            "192.0.2.1:5060;branch=z9hG4bK1",
            "same address, other port, no rport: as it came"
        );
        assert_eq!(
            recorded("192.0.2.1:5071;rport;branch=z9hG4bK1", src, false),
            "192.0.2.1:5071;received=192.0.2.1;rport=5071;branch=z9hG4bK1"
        );
        assert_eq!(
            recorded("192.0.2.1:5071;rport=9;branch=z9hG4bK1", src, false),
            "192.0.2.1:5071;received=192.0.2.1;rport=5071;branch=z9hG4bK1",
            "a stale rport value is replaced"
        );
        assert_eq!(
            recorded("10.0.0.1:5060;branch=z9hG4bK1", src, false),
            "10.0.0.1:5060;received=192.0.2.1;branch=z9hG4bK1"
        );
        assert_eq!(
            recorded("10.0.0.1;received=10.9.9.9;branch=z9hG4bK1", src, false),
            "10.0.0.1;received=192.0.2.1;branch=z9hG4bK1"
        );
        assert_eq!(
            recorded("192.0.2.1:5060;branch=z9hG4bK1", src, true),
            "192.0.2.1:5060;rport=5071;received=192.0.2.1;branch=z9hG4bK1",
            "force_rport: both new, right after sent-by, rport first (OpenSIPS)"
        );
        assert_eq!(
            recorded(
                "192.0.2.1;rport=5071;received=192.0.2.1;branch=z9hG4bK1",
                src,
                false
            ),
            "192.0.2.1;rport=5071;received=192.0.2.1;branch=z9hG4bK1",
            "already right: unchanged"
        );
        assert_eq!(
            recorded("10.0.0.1;received=10.9.9.9;branch=z9hG4bK1", src, true),
            "10.0.0.1;rport=5071;received=192.0.2.1;branch=z9hG4bK1",
            "a new rport goes where the old received was, ahead of it"
        );
    }

    #[test]
    fn the_stateless_branch_is_the_same_for_a_retransmission_and_its_cancel_only() {
        let invite = request("INVITE", "c1");
        let branch = |m: &SipMessage, ruri: &str| {
            let top = m.top_via().ok();
            stateless_branch(m, top.as_ref().and_then(|v| v.branch()), ruri)
        };
        let b = branch(&invite, "sip:b@192.0.2.2");
        assert!(b.starts_with("z9hG4bK") && b.len() == 7 + 16, "{b}");
        assert!(b[7..].bytes().all(|c| c.is_ascii_hexdigit()), "{b}");
        assert_eq!(b, branch(&request("INVITE", "c1"), "sip:b@192.0.2.2"));
        assert_eq!(b, branch(&request("CANCEL", "c1"), "sip:b@192.0.2.2"));
        assert_ne!(b, branch(&request("INVITE", "c2"), "sip:b@192.0.2.2"));
        assert_ne!(b, branch(&invite, "sip:b@192.0.2.3"));
    }

    #[test]
    fn v4_hostport_writes_what_display_writes() {
        for (ip, port) in [
            ([0, 0, 0, 0], 0),
            ([127, 0, 0, 1], 5060),
            ([255, 255, 255, 255], 65535),
            ([10, 1, 20, 199], 9),
            ([192, 168, 100, 7], 10000),
        ] {
            let a = SocketAddrV4::new(Ipv4Addr::from(ip), port);
            assert_eq!(v4_hostport(a), a.to_string());
        }
    }
}
