//! HAProxy PROXY protocol, versions 1 (text) and 2 (binary), per
//! <https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt>.
//!
//! A load balancer in front of rsips prepends one header to a TCP connection (or, in v2, to a
//! UDP datagram) naming the real client. [`parse`] reads it from the first bytes received and
//! says how many it used; the SIP bytes after it stay with the caller. `Ok(None)` means "send
//! more", but bytes that can no longer start a valid header are rejected at once, so a peer that
//! speaks plain SIP to a PROXY-protocol port fails on its first segment rather than hanging.
//! [`encode_v1`] and [`encode_v2`] build headers for outgoing connections and tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use thiserror::Error;

/// Longest v1 line, CRLF included (§2.1: "a 108-byte buffer is always enough" with a NUL).
pub const V1_MAX_LEN: usize = 107;
/// The 12 bytes that open every v2 header (§2.2).
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_FIXED_LEN: usize = 16;
/// Longest textual addresses a v1 sender writes (INET_ADDRSTRLEN / INET6_ADDRSTRLEN, no NUL).
const V1_MAX_ADDR: [usize; 2] = [15, 45];
const UNIX_ADDR_LEN: usize = 108;

/// v2 command (§2.2, low nibble of the 13th byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// A connection the proxy opened itself (health check): use the real endpoints.
    Local,
    /// A relayed connection: the header names the original endpoints. Always the case in v1.
    Proxy,
}

/// Transport protocol of the proxied connection (§2.2, low nibble of the 14th byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unknown or unspecified (v1 `UNKNOWN`, v2 `LOCAL`, v2 `AF_UNSPEC`).
    Unspec,
    /// `SOCK_STREAM`: TCP (v1 `TCP4`/`TCP6`).
    Stream,
    /// `SOCK_DGRAM`: UDP.
    Dgram,
}

/// Address family of the proxied connection (§2.2, high nibble of the 14th byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// No address carried.
    Unspec,
    /// IPv4 (v1 `TCP4`).
    Inet,
    /// IPv6 (v1 `TCP6`).
    Inet6,
    /// Unix socket paths; recorded but not returned as addresses.
    Unix,
}

impl Family {
    /// Size of the v2 address block for this family (§2.2: 12, 36 or 216 bytes).
    fn block_len(self) -> usize {
        match self {
            Family::Unspec => 0,
            Family::Inet => 12,
            Family::Inet6 => 36,
            Family::Unix => 2 * UNIX_ADDR_LEN,
        }
    }
}

/// One v2 type-length-value extension (§2.2.1), kept raw in header order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tlv {
    /// The PP2_TYPE_* code.
    pub kind: u8,
    /// The value bytes.
    pub value: Vec<u8>,
}

impl Tlv {
    /// PP2_TYPE_ALPN: the negotiated application protocol.
    pub const ALPN: u8 = 0x01;
    /// PP2_TYPE_AUTHORITY: the host name the client asked for (TLS SNI), UTF-8.
    pub const AUTHORITY: u8 = 0x02;
    /// PP2_TYPE_CRC32C: CRC-32C of the whole header, big-endian (§2.2.4).
    pub const CRC32C: u8 = 0x03;
    /// PP2_TYPE_NOOP: padding, ignored.
    pub const NOOP: u8 = 0x04;
    /// PP2_TYPE_UNIQUE_ID: opaque connection id of at most 128 bytes.
    pub const UNIQUE_ID: u8 = 0x05;
    /// PP2_TYPE_SSL: TLS details of the client connection (§2.2.5), see [`SslInfo`].
    pub const SSL: u8 = 0x20;
    /// PP2_SUBTYPE_SSL_VERSION, inside [`Tlv::SSL`]: e.g. "TLSv1.3".
    pub const SSL_VERSION: u8 = 0x21;
    /// PP2_SUBTYPE_SSL_CN, inside [`Tlv::SSL`]: client certificate Common Name.
    pub const SSL_CN: u8 = 0x22;
    /// PP2_SUBTYPE_SSL_CIPHER, inside [`Tlv::SSL`].
    pub const SSL_CIPHER: u8 = 0x23;
    /// PP2_TYPE_NETNS: network namespace name.
    pub const NETNS: u8 = 0x30;
    /// Largest PP2_TYPE_UNIQUE_ID value (§2.2.3).
    const MAX_UNIQUE_ID: usize = 128;
}

/// The decoded contents of a [`Tlv::SSL`] extension (§2.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslInfo {
    /// PP2_CLIENT_* bit field.
    pub client: u8,
    /// Zero when the client presented a certificate that verified.
    pub verify: u32,
    /// Nested sub-TLVs (version, CN, cipher, algorithms), raw.
    pub sub_tlvs: Vec<Tlv>,
}

impl SslInfo {
    /// PP2_CLIENT_SSL: the client connected over TLS.
    pub const CLIENT_SSL: u8 = 0x01;
    /// PP2_CLIENT_CERT_CONN: the client sent a certificate on this connection.
    pub const CLIENT_CERT_CONN: u8 = 0x02;
    /// PP2_CLIENT_CERT_SESS: the client sent a certificate at least once in this TLS session.
    pub const CLIENT_CERT_SESS: u8 = 0x04;

    /// Whether the client connection was TLS.
    pub fn is_tls(&self) -> bool {
        self.client & Self::CLIENT_SSL != 0
    }

    /// Whether a client certificate was presented and verified.
    pub fn cert_verified(&self) -> bool {
        self.client & (Self::CLIENT_CERT_CONN | Self::CLIENT_CERT_SESS) != 0 && self.verify == 0
    }

    /// The TLS version string (PP2_SUBTYPE_SSL_VERSION), if sent and UTF-8.
    pub fn version(&self) -> Option<&str> {
        self.sub(Tlv::SSL_VERSION)
    }

    /// The client certificate Common Name (PP2_SUBTYPE_SSL_CN), if sent and UTF-8.
    pub fn common_name(&self) -> Option<&str> {
        self.sub(Tlv::SSL_CN)
    }

    fn sub(&self, kind: u8) -> Option<&str> {
        let t = self.sub_tlvs.iter().find(|t| t.kind == kind)?;
        std::str::from_utf8(&t.value).ok()
    }
}

/// A parsed PROXY protocol header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 (text) or 2 (binary).
    pub version: u8,
    /// `Local` only in v2 health checks; the receiver then uses the real endpoints.
    pub command: Command,
    /// Address family as sent; `Unix` keeps the addresses `None`.
    pub family: Family,
    /// Transport of the proxied connection.
    pub transport: Transport,
    /// The original client, when the header carries an IP address.
    pub source: Option<SocketAddr>,
    /// The address the client connected to on the proxy.
    pub destination: Option<SocketAddr>,
    /// v2 extensions in header order (always empty for v1 and for `Local`).
    pub tlvs: Vec<Tlv>,
}

impl ProxyHeader {
    /// The value of the first TLV of `kind`.
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|t| t.kind == kind)
            .map(|t| t.value.as_slice())
    }

    /// PP2_TYPE_AUTHORITY (the SNI host name), if present and UTF-8.
    pub fn authority(&self) -> Option<&str> {
        std::str::from_utf8(self.tlv(Tlv::AUTHORITY)?).ok()
    }

    /// PP2_TYPE_SSL decoded, if present (its shape was validated by [`parse`]).
    pub fn ssl(&self) -> Option<SslInfo> {
        decode_ssl(self.tlv(Tlv::SSL)?).ok()
    }
}

/// Why the bytes are not a PROXY protocol header. The connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProxyError {
    /// Neither "PROXY " nor the v2 signature.
    #[error("not a PROXY protocol header (bad signature)")]
    BadSignature,
    /// The v2 version nibble is not 2.
    #[error("unsupported PROXY protocol version {0}")]
    BadVersion(u8),
    /// The v2 command nibble is neither LOCAL nor PROXY.
    #[error("unknown PROXY protocol v2 command {0:#x}")]
    BadCommand(u8),
    /// The v2 family/transport byte is not one of the seven defined values.
    #[error("unknown PROXY protocol v2 address family/transport {0:#04x}")]
    BadFamily(u8),
    /// The v2 length is shorter than the address block of the announced family.
    #[error("PROXY v2 address block truncated: {needed} bytes needed, header length {len}")]
    TruncatedAddress {
        /// Size of the family's address block.
        needed: usize,
        /// The header's length field.
        len: usize,
    },
    /// A malformed TLV list.
    #[error("bad PROXY v2 TLV: {0}")]
    BadTlv(&'static str),
    /// The PP2_TYPE_CRC32C value does not match the header.
    #[error("PROXY v2 CRC32C mismatch")]
    BadChecksum,
    /// No CRLF within the first 107 bytes of a v1 header.
    #[error("PROXY v1 line longer than 107 bytes")]
    LineTooLong,
    /// A v1 line that breaks the grammar (spacing, field count, stray CR or LF).
    #[error("malformed PROXY v1 line: {0}")]
    BadLine(&'static str),
    /// A v1 protocol other than TCP4, TCP6 or UNKNOWN.
    #[error("unknown PROXY v1 protocol")]
    BadProtocol,
    /// A v1 address that is not a valid IP of the announced family.
    #[error("bad PROXY v1 address")]
    BadAddress,
    /// A v1 port that is not a decimal number 0..=65535 in canonical form.
    #[error("bad PROXY v1 port")]
    BadPort,
    /// [`encode_v2`]: the TLVs do not fit in the 16-bit length field.
    #[error("PROXY v2 header would exceed 65535 bytes")]
    TooLong,
}

/// Parse a PROXY protocol header (v1 or v2) from the start of `buf`.
///
/// Returns the header and the number of bytes it took, `Ok(None)` while `buf` is a valid but
/// incomplete prefix, or an error as soon as it cannot become a valid header.
pub fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    match buf.first() {
        None => Ok(None),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err(ProxyError::BadSignature),
    }
}

/// Build a v1 header (`PROXY TCP4 ...` or `PROXY TCP6 ...`). When the families differ, the IPv4
/// address is written IPv4-mapped and TCP6 is used.
pub fn encode_v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = same_family(src, dst);
    let proto = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {proto} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

/// Build a v2 header. `Local` carries no addresses and no TLVs; `Proxy` with
/// `Transport::Unspec` sends `AF_UNSPEC` (no addresses) followed by the TLVs. Mixed address
/// families are sent as IPv6 with the IPv4 side mapped. A [`Tlv::CRC32C`] entry, if present,
/// is filled with the checksum of the finished header.
pub fn encode_v2(
    command: Command,
    transport: Transport,
    src: SocketAddr,
    dst: SocketAddr,
    tlvs: &[Tlv],
) -> Result<Vec<u8>, ProxyError> {
    let mut out = Vec::with_capacity(V2_FIXED_LEN + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    if command == Command::Local {
        out.extend_from_slice(&[0x20, 0x00, 0, 0]);
        return Ok(out);
    }
    out.push(0x21);
    let (src, dst) = same_family(src, dst);
    let t = match transport {
        Transport::Unspec => 0,
        Transport::Stream => 1,
        Transport::Dgram => 2,
    };
    match (t, src.ip(), dst.ip()) {
        (0, ..) => out.extend_from_slice(&[0x00, 0, 0]),
        (_, IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&[0x10 | t, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (_, s, d) => {
            out.extend_from_slice(&[0x20 | t, 0, 0]);
            out.extend_from_slice(&to_v6(s).octets());
            out.extend_from_slice(&to_v6(d).octets());
        }
    }
    if t != 0 {
        out.extend_from_slice(&src.port().to_be_bytes());
        out.extend_from_slice(&dst.port().to_be_bytes());
    }
    let mut crc_at = None;
    for tlv in tlvs {
        let len = u16::try_from(tlv.value.len()).map_err(|_| ProxyError::TooLong)?;
        out.push(tlv.kind);
        out.extend_from_slice(&len.to_be_bytes());
        if tlv.kind == Tlv::CRC32C && tlv.value.len() == 4 && crc_at.is_none() {
            crc_at = Some(out.len());
            out.extend_from_slice(&[0; 4]);
        } else {
            out.extend_from_slice(&tlv.value);
        }
    }
    let len = u16::try_from(out.len() - V2_FIXED_LEN).map_err(|_| ProxyError::TooLong)?;
    out[14..16].copy_from_slice(&len.to_be_bytes());
    if let Some(at) = crc_at {
        let crc = crc32c(&out);
        out[at..at + 4].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(out)
}

fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    if src.is_ipv4() == dst.is_ipv4() {
        return (src, dst);
    }
    let v6 = |a: SocketAddr| SocketAddr::V6(SocketAddrV6::new(to_v6(a.ip()), a.port(), 0, 0));
    (v6(src), v6(dst))
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

// ---------------------------------------------------------------------------------------------
// Version 1 (§2.1)

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] != V1_PREFIX[..n] {
        return Err(ProxyError::BadSignature);
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    match window.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            let line = window[..lf]
                .strip_suffix(b"\r")
                .ok_or(ProxyError::BadLine("LF without CR"))?;
            let rest = line
                .strip_prefix(V1_PREFIX)
                .ok_or(ProxyError::BadLine("line ends inside \"PROXY \""))?;
            parse_v1_fields(rest).map(|h| Some((h, lf + 1)))
        }
        None if buf.len() >= V1_MAX_LEN => Err(ProxyError::LineTooLong),
        None => check_v1_partial(buf.get(V1_PREFIX.len()..).unwrap_or_default()).map(|()| None),
    }
}

/// Parses a complete line after "PROXY " (CRLF removed).
fn parse_v1_fields(rest: &[u8]) -> Result<ProxyHeader, ProxyError> {
    if rest.contains(&b'\r') {
        return Err(ProxyError::BadLine("CR inside the line"));
    }
    if rest == b"UNKNOWN" || rest.starts_with(b"UNKNOWN ") {
        // §2.1: everything after UNKNOWN up to the CRLF is ignored.
        return Ok(v1_header(Family::Unspec, None));
    }
    let fields: Vec<&[u8]> = rest.split(|&b| b == b' ').collect();
    if fields.iter().any(|f| f.is_empty()) {
        return Err(ProxyError::BadLine("empty field"));
    }
    let family = v1_protocol(fields.first().copied().unwrap_or_default())?;
    let [_, src, dst, sport, dport] = fields[..] else {
        return Err(ProxyError::BadLine("expected 5 space-separated fields"));
    };
    let src = SocketAddr::new(v1_ip(src, family)?, v1_port(sport)?);
    let dst = SocketAddr::new(v1_ip(dst, family)?, v1_port(dport)?);
    Ok(v1_header(family, Some((src, dst))))
}

fn v1_header(family: Family, addrs: Option<(SocketAddr, SocketAddr)>) -> ProxyHeader {
    ProxyHeader {
        version: 1,
        command: Command::Proxy,
        family,
        transport: if addrs.is_some() {
            Transport::Stream
        } else {
            Transport::Unspec
        },
        source: addrs.map(|a| a.0),
        destination: addrs.map(|a| a.1),
        tlvs: Vec::new(),
    }
}

fn v1_protocol(field: &[u8]) -> Result<Family, ProxyError> {
    match field {
        b"TCP4" => Ok(Family::Inet),
        b"TCP6" => Ok(Family::Inet6),
        _ => Err(ProxyError::BadProtocol),
    }
}

fn v1_ip(field: &[u8], family: Family) -> Result<IpAddr, ProxyError> {
    let s = std::str::from_utf8(field).map_err(|_| ProxyError::BadAddress)?;
    // Rust's parsers take only canonical dotted quads (no leading zeros) and RFC 4291 text.
    let ip = match family {
        Family::Inet => s.parse::<Ipv4Addr>().map(IpAddr::V4),
        _ => s.parse::<Ipv6Addr>().map(IpAddr::V6),
    };
    ip.map_err(|_| ProxyError::BadAddress)
}

fn v1_port(field: &[u8]) -> Result<u16, ProxyError> {
    check_port_digits(field)?;
    let s = std::str::from_utf8(field).map_err(|_| ProxyError::BadPort)?;
    s.parse().map_err(|_| ProxyError::BadPort)
}

/// Decimal digits only, no sign, no leading zero, at most 5 digits.
fn check_port_digits(field: &[u8]) -> Result<(), ProxyError> {
    let canonical = field.len() <= 5
        && field.iter().all(u8::is_ascii_digit)
        && !(field.len() > 1 && field[0] == b'0');
    if canonical {
        Ok(())
    } else {
        Err(ProxyError::BadPort)
    }
}

/// Rejects an incomplete line (no LF yet, after "PROXY ") that can no longer become valid.
fn check_v1_partial(rest: &[u8]) -> Result<(), ProxyError> {
    if let Some(body) = rest.strip_suffix(b"\r") {
        // Only the LF is missing: the line must already be complete.
        return parse_v1_fields(body).map(|_| ());
    }
    if rest.contains(&b'\r') {
        return Err(ProxyError::BadLine("CR inside the line"));
    }
    if b"UNKNOWN".starts_with(rest) || rest.starts_with(b"UNKNOWN ") {
        return Ok(());
    }
    let fields: Vec<&[u8]> = rest.split(|&b| b == b' ').collect();
    let Some((partial, complete)) = fields.split_last() else {
        return Ok(());
    };
    if complete.len() >= 5 {
        return Err(ProxyError::BadLine("expected 5 space-separated fields"));
    }
    if complete.iter().any(|f| f.is_empty()) {
        return Err(ProxyError::BadLine("empty field"));
    }
    let Some(proto) = complete.first() else {
        let prefix_of = |p: &[u8]| p.starts_with(partial);
        return if prefix_of(b"TCP4") || prefix_of(b"TCP6") {
            Ok(())
        } else {
            Err(ProxyError::BadProtocol)
        };
    };
    let family = v1_protocol(proto)?;
    for (i, field) in complete.iter().enumerate().skip(1) {
        match i {
            1 | 2 => v1_ip(field, family).map(|_| ())?,
            _ => v1_port(field).map(|_| ())?,
        }
    }
    match complete.len() {
        1 | 2 => check_ip_prefix(partial, family),
        _ => check_port_digits(partial),
    }
}

fn check_ip_prefix(partial: &[u8], family: Family) -> Result<(), ProxyError> {
    let (max, ok): (usize, fn(&u8) -> bool) = match family {
        Family::Inet => (V1_MAX_ADDR[0], |b| b.is_ascii_digit() || *b == b'.'),
        _ => (V1_MAX_ADDR[1], |b| {
            b.is_ascii_hexdigit() || *b == b':' || *b == b'.'
        }),
    };
    if partial.len() <= max && partial.iter().all(ok) {
        Ok(())
    } else {
        Err(ProxyError::BadAddress)
    }
}

// ---------------------------------------------------------------------------------------------
// Version 2 (§2.2)

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(ProxyError::BadSignature);
    }
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(None);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::BadVersion(ver_cmd >> 4));
    }
    let command = match ver_cmd & 0x0f {
        0 => Command::Local,
        1 => Command::Proxy,
        c => return Err(ProxyError::BadCommand(c)),
    };
    let Some(&fam) = buf.get(13) else {
        return Ok(None);
    };
    // §2.2: for LOCAL the protocol block, family included, is ignored.
    let (family, transport) = match command {
        Command::Local => (Family::Unspec, Transport::Unspec),
        Command::Proxy => v2_family(fam)?,
    };
    let (Some(&hi), Some(&lo)) = (buf.get(14), buf.get(15)) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    let needed = family.block_len();
    if len < needed {
        return Err(ProxyError::TruncatedAddress { needed, len });
    }
    let total = V2_FIXED_LEN + len;
    let Some(block) = buf.get(V2_FIXED_LEN..total) else {
        return Ok(None);
    };
    let mut header = ProxyHeader {
        version: 2,
        command,
        family,
        transport,
        source: None,
        destination: None,
        tlvs: Vec::new(),
    };
    if command == Command::Local {
        return Ok(Some((header, total)));
    }
    let (addrs, tlv_bytes) = block.split_at(needed);
    if let Some((src, dst)) = v2_addresses(family, addrs) {
        header.source = Some(src);
        header.destination = Some(dst);
    }
    let (tlvs, crc_at) = parse_tlvs(tlv_bytes)?;
    if let Some(at) = crc_at {
        verify_crc(&buf[..total], V2_FIXED_LEN + needed + at)?;
    }
    header.tlvs = tlvs;
    Ok(Some((header, total)))
}

/// The seven family/transport bytes §2.2 defines; anything else "must be rejected".
fn v2_family(byte: u8) -> Result<(Family, Transport), ProxyError> {
    let family = match byte >> 4 {
        0 => Family::Unspec,
        1 => Family::Inet,
        2 => Family::Inet6,
        3 => Family::Unix,
        _ => return Err(ProxyError::BadFamily(byte)),
    };
    let transport = match byte & 0x0f {
        0 => Transport::Unspec,
        1 => Transport::Stream,
        2 => Transport::Dgram,
        _ => return Err(ProxyError::BadFamily(byte)),
    };
    match (family, transport) {
        (Family::Unspec, Transport::Unspec) => Ok((family, transport)),
        (Family::Unspec, _) | (_, Transport::Unspec) => Err(ProxyError::BadFamily(byte)),
        ok => Ok(ok),
    }
}

fn v2_addresses(family: Family, block: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let port = |at: usize| Some(u16::from_be_bytes(block.get(at..at + 2)?.try_into().ok()?));
    match family {
        Family::Inet => {
            let src: [u8; 4] = block.get(0..4)?.try_into().ok()?;
            let dst: [u8; 4] = block.get(4..8)?.try_into().ok()?;
            Some((
                SocketAddr::from((src, port(8)?)),
                SocketAddr::from((dst, port(10)?)),
            ))
        }
        Family::Inet6 => {
            let src: [u8; 16] = block.get(0..16)?.try_into().ok()?;
            let dst: [u8; 16] = block.get(16..32)?.try_into().ok()?;
            Some((
                SocketAddr::from((src, port(32)?)),
                SocketAddr::from((dst, port(34)?)),
            ))
        }
        Family::Unspec | Family::Unix => None,
    }
}

/// Splits a TLV area into entries; also returns where a CRC32C value starts, if any.
fn parse_tlvs(mut rest: &[u8]) -> Result<(Vec<Tlv>, Option<usize>), ProxyError> {
    let (mut tlvs, mut crc_at, mut offset) = (Vec::new(), None, 0);
    while !rest.is_empty() {
        let (kind, value, tail) = split_tlv(rest)?;
        match kind {
            Tlv::CRC32C if value.len() != 4 => {
                return Err(ProxyError::BadTlv("CRC32C not 4 bytes"));
            }
            Tlv::CRC32C if crc_at.is_some() => return Err(ProxyError::BadTlv("two CRC32C TLVs")),
            Tlv::CRC32C => crc_at = Some(offset + 3),
            Tlv::UNIQUE_ID if value.len() > Tlv::MAX_UNIQUE_ID => {
                return Err(ProxyError::BadTlv("UNIQUE_ID longer than 128 bytes"));
            }
            Tlv::SSL => {
                decode_ssl(value)?;
            }
            _ => {}
        }
        tlvs.push(Tlv {
            kind,
            value: value.to_vec(),
        });
        offset += 3 + value.len();
        rest = tail;
    }
    Ok((tlvs, crc_at))
}

/// One TLV off the front: (type, value, remainder).
fn split_tlv(buf: &[u8]) -> Result<(u8, &[u8], &[u8]), ProxyError> {
    let [kind, hi, lo, rest @ ..] = buf else {
        return Err(ProxyError::BadTlv("truncated TLV header"));
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    if len > rest.len() {
        return Err(ProxyError::BadTlv("TLV value overruns the header"));
    }
    let (value, tail) = rest.split_at(len);
    Ok((*kind, value, tail))
}

fn decode_ssl(value: &[u8]) -> Result<SslInfo, ProxyError> {
    let [client, v0, v1, v2, v3, rest @ ..] = value else {
        return Err(ProxyError::BadTlv("SSL TLV shorter than 5 bytes"));
    };
    let mut rest = rest;
    let mut sub_tlvs = Vec::new();
    while !rest.is_empty() {
        let (kind, value, tail) = split_tlv(rest)?;
        sub_tlvs.push(Tlv {
            kind,
            value: value.to_vec(),
        });
        rest = tail;
    }
    Ok(SslInfo {
        client: *client,
        verify: u32::from_be_bytes([*v0, *v1, *v2, *v3]),
        sub_tlvs,
    })
}

/// §2.2.4: the checksum covers the whole header with the checksum field zeroed.
fn verify_crc(header: &[u8], at: usize) -> Result<(), ProxyError> {
    let sent = header
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .ok_or(ProxyError::BadTlv("CRC32C not 4 bytes"))?;
    let mut copy = header.to_vec();
    copy[at..at + 4].fill(0);
    if crc32c(&copy) == u32::from_be_bytes(sent) {
        Ok(())
    } else {
        Err(ProxyError::BadChecksum)
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), RFC 4960 Appendix B. Bitwise: headers
/// are short and the TLV is rare, so a table is not worth its size.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82F6_3B78 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Invariants checked by the `proxy_header` fuzz target and replayed over its corpus by the
/// test suite; panics only when one breaks.
///
/// Every prefix of `data` must agree with the whole (incomplete, the same header, or an error
/// the whole also reports), and a parsed header must survive [`encode_v2`] and, for TCP,
/// [`encode_v1`].
pub fn fuzz_invariants(data: &[u8]) {
    let whole = parse(data);
    if let Ok(Some((h, n))) = &whole {
        assert!(*n <= data.len(), "consumed more than given");
        check_round_trip(h);
    }
    // Prefixes past the consumed length only add SIP bytes; cap the work for long inputs.
    let upto = match &whole {
        Ok(Some((_, n))) => *n,
        _ => data.len(),
    };
    for p in 0..upto.min(4096) {
        match parse(&data[..p]) {
            Ok(None) => {}
            Ok(Some(_)) => panic!("a prefix of {p} bytes parsed but the header is longer"),
            Err(e) => assert!(
                whole.is_err(),
                "prefix of {p} bytes failed ({e}), whole did not"
            ),
        }
    }
}

fn check_round_trip(h: &ProxyHeader) {
    let unspecified = SocketAddr::from(([0u8; 4], 0));
    let (src, dst) = match (h.source, h.destination) {
        (Some(src), Some(dst)) => (src, dst),
        // AF_UNSPEC under PROXY still carries TLVs worth checking; UNIX and LOCAL cannot be
        // rebuilt from a `SocketAddr`.
        _ if h.version == 2 && h.command == Command::Proxy && h.family == Family::Unspec => {
            (unspecified, unspecified)
        }
        _ => return,
    };
    let bytes =
        encode_v2(h.command, h.transport, src, dst, &h.tlvs).expect("a parsed header fits again");
    let (again, n) = parse(&bytes)
        .expect("encoded v2 header parses")
        .expect("encoded v2 header is complete");
    assert_eq!(n, bytes.len());
    assert_eq!((again.source, again.destination), (h.source, h.destination));
    assert_eq!((again.transport, again.family), (h.transport, h.family));
    if h.version == 2 {
        assert_eq!(&again, h, "v2 round trip");
    } else {
        let line = encode_v1(src, dst);
        let (v1, n) = parse(&line)
            .expect("encoded v1 header parses")
            .expect("encoded v1 header is complete");
        assert_eq!((&v1, n), (h, line.len()), "v1 round trip");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32c_check_value() {
        // The standard CRC-32C check value (RFC 3720 §B.4 lists the same polynomial).
        assert_eq!(super::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(super::crc32c(&[0; 32]), 0x8A91_36AA);
    }
}
