//! One row of the `tcp_mgm` table, checked ("a TCP path"): which connections it matches
//! (protocol, remote network and port, local listener and port) and the profile it gives them;
//! the order rows are tried in; and the lookup itself.

use std::cmp::Ordering;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use db::Value;
use transport::Proto;
use transport::stream::{Keepalive, Profile};

/// The table's columns, in the order [`Path::parse`] takes them (OpenSIPS' names; each can be
/// renamed with `<name>_col`).
pub const COLUMNS: [&str; 18] = [
    "id",
    "proto",
    "remote_addr",
    "remote_port",
    "local_addr",
    "local_port",
    "priority",
    "attrs",
    "connect_timeout",
    "con_lifetime",
    "msg_read_timeout",
    "send_threshold",
    "no_new_conn",
    "alias_mode",
    "keepalive",
    "keepcount",
    "keepidle",
    "keepinterval",
];

/// The connection attributes the `attrs` column may set (OpenSIPS knows this one only).
const ATTRS: &[&str] = &["max_msg_chunks"];

/// An IP network: `ip[/prefix]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Net {
    fn parse(text: &str) -> Result<Net, String> {
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, p)) => (ip.trim(), Some(p.trim())),
            None => (text.trim(), None),
        };
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("bad prefix length in `{text}`"))?,
        };
        Ok(Net { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
            if prefix == 0 {
                0
            } else {
                bits >> (width - prefix)
            }
        }
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u32::from(n).into(), self.prefix, 32)
                    == masked(u32::from(a).into(), self.prefix, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(u128::from(n), self.prefix, 128) == masked(u128::from(a), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// What the `proto` column names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoSel {
    Any,
    Is(Proto),
    /// A TCP-based OpenSIPS protocol rsips serves no connections of (`bin`, `hep_tcp`,
    /// `smpp`, `msrp`, …): the row is kept but never matches.
    Unserved(String),
}

/// One usable row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub id: i64,
    pub proto: ProtoSel,
    /// `None`: any remote address.
    pub remote: Option<Net>,
    /// 0: any.
    pub remote_port: u16,
    pub local: Option<Net>,
    pub local_port: u16,
    pub priority: i64,
    pub profile: Profile,
    /// Read and checked, not applied by rsips (see the crate documentation).
    pub send_threshold: i64,
    pub max_msg_chunks: Option<i64>,
}

/// The listeners a `local_addr` must name one of: (protocol, address).
pub type Listeners = [(Proto, SocketAddr)];

fn int(row: &[Value], i: usize) -> Result<i64, String> {
    let name = COLUMNS.get(i).copied().unwrap_or("?");
    match row.get(i) {
        None | Some(Value::Null) => Err(format!("column {name} is NULL, but this is not allowed")),
        Some(v) => v
            .as_int()
            .ok_or_else(|| format!("bad value type for column {name}: {v:?}")),
    }
}

fn unsigned(row: &[Value], i: usize) -> Result<u64, String> {
    let n = int(row, i)?;
    u64::try_from(n).map_err(|_| {
        format!(
            "column {} cannot be negative ({n})",
            COLUMNS.get(i).copied().unwrap_or("?")
        )
    })
}

fn port(row: &[Value], i: usize) -> Result<u16, String> {
    let n = unsigned(row, i)?;
    u16::try_from(n).map_err(|_| format!("invalid {}: {n}", COLUMNS.get(i).copied().unwrap_or("?")))
}

fn text(row: &[Value], i: usize) -> Option<String> {
    row.get(i).and_then(Value::as_text)
}

/// `NULL` or `any`: `None`.
fn any_or(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("any"))
}

fn proto_of(v: Option<String>) -> Result<ProtoSel, String> {
    let Some(p) = v.map(|s| s.trim().to_ascii_lowercase()) else {
        return Err("column proto is NULL, but this is not allowed".into());
    };
    match p.as_str() {
        "any" => Ok(ProtoSel::Any),
        "udp" | "sctp" | "hep_udp" => Err(format!("unacceptable TCP-based protocol: {p}")),
        "bin" | "bins" | "hep_tcp" | "smpp" | "msrp" | "msrps" => Ok(ProtoSel::Unserved(p)),
        _ => Proto::parse(&p)
            .map(ProtoSel::Is)
            .ok_or_else(|| format!("invalid protocol: {p}")),
    }
}

fn attrs_of(v: Option<String>) -> Result<Option<i64>, String> {
    let mut chunks = None;
    for item in v.iter().flat_map(|s| s.split(';')).map(str::trim) {
        if item.is_empty() {
            continue;
        }
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (
                k.trim(),
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("non-integer TCP conn value: '{}'", v.trim()))?,
            ),
            None => (item, 0),
        };
        if !ATTRS.contains(&key) {
            return Err(format!("unknown TCP conn attribute: '{key}'"));
        }
        chunks = Some(value);
    }
    Ok(chunks)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n.max(1))
}

impl Path {
    /// Checks a row (columns in [`COLUMNS`] order); `Err` says why it cannot be used.
    pub fn parse(row: &[Value], listeners: &Listeners) -> Result<Path, String> {
        let id = int(row, 0)?;
        let proto = proto_of(text(row, 1))?;
        let remote = any_or(text(row, 2))
            .map(|t| Net::parse(&t).map_err(|e| format!("remote address: {e}")))
            .transpose()?;
        let remote_port = port(row, 3)?;
        let local_port = port(row, 5)?;
        let local = match any_or(text(row, 4)) {
            None => None,
            Some(t) => Some(local_of(&t, local_port, &proto, listeners)?),
        };
        if let (Some(r), Some(l)) = (remote, local)
            && r.addr.is_ipv4() != l.addr.is_ipv4()
        {
            return Err(format!(
                "IP family mismatch for remote {} and local {}",
                r.addr, l.addr
            ));
        }
        let priority = int(row, 6)?;
        let max_msg_chunks = attrs_of(text(row, 7))?;
        let alias_mode = unsigned(row, 13)?;
        if alias_mode > 2 {
            return Err(format!("invalid alias_mode: {alias_mode}"));
        }
        let (count, idle, interval) = (unsigned(row, 15)?, unsigned(row, 16)?, unsigned(row, 17)?);
        // As OpenSIPS: any keepalive tuning turns keepalive on.
        let on = unsigned(row, 14)? != 0 || count != 0 || idle != 0 || interval != 0;
        let keepalive = on.then(|| Keepalive {
            idle: (idle != 0).then(|| Duration::from_secs(idle)),
            interval: (interval != 0).then(|| Duration::from_secs(interval)),
            count: (count != 0).then(|| u32::try_from(count).unwrap_or(u32::MAX)),
        });
        let profile = Profile {
            id,
            connect_timeout: Duration::from_millis(unsigned(row, 8)?.max(1)),
            lifetime: secs(unsigned(row, 9)?),
            max_msg_time: secs(unsigned(row, 10)?),
            no_new_conn: unsigned(row, 12)? != 0,
            alias_mode: alias_mode as u8,
            keepalive,
        };
        Ok(Path {
            id,
            proto,
            remote,
            remote_port,
            local,
            local_port,
            priority,
            profile,
            send_threshold: int(row, 11)?,
            max_msg_chunks,
        })
    }

    /// Whether a connection of `proto` between `remote` and the listener `local` is one of
    /// this path's.
    pub fn matches(&self, proto: Proto, remote: SocketAddr, local: SocketAddr) -> bool {
        let proto_ok = match &self.proto {
            ProtoSel::Any => true,
            ProtoSel::Is(p) => *p == proto,
            ProtoSel::Unserved(_) => false,
        };
        proto_ok
            && (self.remote_port == 0 || self.remote_port == remote.port())
            && (self.local_port == 0 || self.local_port == local.port())
            && self.remote.is_none_or(|n| n.contains(remote.ip()))
            && self.local.is_none_or(|n| n.contains(local.ip()))
    }
}

/// A `local_addr`: the IP of one of the server's listeners (of the row's protocol and port,
/// when it names them), as OpenSIPS requires.
fn local_of(text: &str, port: u16, proto: &ProtoSel, listeners: &Listeners) -> Result<Net, String> {
    let ip: IpAddr = text
        .parse()
        .map_err(|_| format!("local address `{text}` is not an IP address"))?;
    let found = listeners.iter().any(|(p, a)| {
        a.ip() == ip
            && (port == 0 || a.port() == port)
            && match proto {
                ProtoSel::Any => p.is_stream(),
                ProtoSel::Is(want) => p == want,
                ProtoSel::Unserved(_) => true,
            }
    });
    if !found {
        return Err(format!(
            "failed to match local addr '{text}' against a listener socket"
        ));
    }
    Ok(Net {
        addr: ip,
        prefix: if ip.is_ipv4() { 32 } else { 128 },
    })
}

/// The order rows are tried in (the first that matches wins), as OpenSIPS sorts them: lower
/// `priority` first; then, between equal priorities, the more specific row first — a named
/// protocol before `any`, a remote network before any remote, a longer remote prefix, a remote
/// port before any, then the same for the local side. Rows equal in all of that keep the
/// order of their ids.
pub fn order(a: &Path, b: &Path) -> Ordering {
    fn net(n: Option<Net>) -> (bool, std::cmp::Reverse<u8>) {
        // `Some` sorts first: a specific network before any, a longer prefix first.
        (n.is_none(), std::cmp::Reverse(n.map_or(0, |n| n.prefix)))
    }
    a.priority
        .cmp(&b.priority)
        .then((a.proto == ProtoSel::Any).cmp(&(b.proto == ProtoSel::Any)))
        .then(net(a.remote).cmp(&net(b.remote)))
        .then((a.remote_port == 0).cmp(&(b.remote_port == 0)))
        .then(net(a.local).cmp(&net(b.local)))
        .then((a.local_port == 0).cmp(&(b.local_port == 0)))
        .then(a.id.cmp(&b.id))
}

/// The profile of the first path (in [`order`]) matching the connection.
pub fn lookup(
    paths: &[Path],
    proto: Proto,
    remote: SocketAddr,
    local: SocketAddr,
) -> Option<&Path> {
    paths.iter().find(|p| p.matches(proto, remote, local))
}
