//! HEP version 3 (the Homer capture protocol): a packet is `HEP3`, its total length, then
//! chunks of vendor 0 (generic): each a vendor id, a type, its length (header included) and
//! the value, all integers in network order.

use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

/// Chunk types of the generic vendor.
mod chunk {
    pub const IP_FAMILY: u16 = 0x01;
    pub const IP_PROTO: u16 = 0x02;
    pub const SRC_IP4: u16 = 0x03;
    pub const DST_IP4: u16 = 0x04;
    pub const SRC_IP6: u16 = 0x05;
    pub const DST_IP6: u16 = 0x06;
    pub const SRC_PORT: u16 = 0x07;
    pub const DST_PORT: u16 = 0x08;
    pub const TS_SEC: u16 = 0x09;
    pub const TS_USEC: u16 = 0x0a;
    pub const PROTO_TYPE: u16 = 0x0b;
    pub const CAPTURE_ID: u16 = 0x0c;
    pub const AUTH_KEY: u16 = 0x0e;
    pub const PAYLOAD: u16 = 0x0f;
    pub const CORRELATION_ID: u16 = 0x11;
}

/// HEP's protocol type of a SIP payload.
pub const PROTO_SIP: u8 = 1;

/// One captured message.
#[derive(Debug, Clone)]
pub struct Capture<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// `udp`, `tcp`, `tls`, `ws`, `wss`.
    pub proto: &'a str,
    pub payload: &'a [u8],
    /// The Call-ID, for Homer to correlate the messages of a call.
    pub correlation: Option<&'a str>,
    /// `trace()`'s `trace_attrs` (a database destination stores them).
    pub attrs: Option<&'a str>,
    pub time: SystemTime,
}

/// The HEPv3 packet of `c` from capture agent `capture_id` (with `auth_key`, when set).
pub fn encode(c: &Capture<'_>, capture_id: u32, auth_key: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(c.payload.len() + 128);
    out.extend_from_slice(b"HEP3");
    out.extend_from_slice(&[0, 0]);
    // OpenSIPS' IP protocol numbers: 17 UDP, 6 TCP, and its own 22 for TLS, 50 for WS(S).
    let ip_proto: u8 = match c.proto.to_ascii_lowercase().as_str() {
        "udp" => 17,
        "tls" => 22,
        "ws" | "wss" => 50,
        _ => 6,
    };
    let v4 = c.src.is_ipv4() && c.dst.is_ipv4();
    put(&mut out, chunk::IP_FAMILY, &[if v4 { 2 } else { 10 }]);
    put(&mut out, chunk::IP_PROTO, &[ip_proto]);
    // The chunks in OpenSIPS' order: ports, time, type and agent before the addresses.
    put(&mut out, chunk::SRC_PORT, &c.src.port().to_be_bytes());
    put(&mut out, chunk::DST_PORT, &c.dst.port().to_be_bytes());
    let since = c.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = u32::try_from(since.as_secs()).unwrap_or(u32::MAX);
    put(&mut out, chunk::TS_SEC, &secs.to_be_bytes());
    put(
        &mut out,
        chunk::TS_USEC,
        &since.subsec_micros().to_be_bytes(),
    );
    put(&mut out, chunk::PROTO_TYPE, &[PROTO_SIP]);
    put(&mut out, chunk::CAPTURE_ID, &capture_id.to_be_bytes());
    match (c.src.ip(), c.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            put(&mut out, chunk::SRC_IP4, &s.octets());
            put(&mut out, chunk::DST_IP4, &d.octets());
        }
        (s, d) => {
            put(&mut out, chunk::SRC_IP6, &v6(s).octets());
            put(&mut out, chunk::DST_IP6, &v6(d).octets());
        }
    }
    if let Some(key) = auth_key.filter(|k| !k.is_empty()) {
        put(&mut out, chunk::AUTH_KEY, key.as_bytes());
    }
    put(&mut out, chunk::PAYLOAD, c.payload);
    if let Some(id) = c.correlation.filter(|i| !i.is_empty()) {
        put(&mut out, chunk::CORRELATION_ID, id.as_bytes());
    }
    let total = u16::try_from(out.len()).unwrap_or(u16::MAX);
    out[4..6].copy_from_slice(&total.to_be_bytes());
    out
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

fn put(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = u16::try_from(value.len() + 6).unwrap_or(u16::MAX);
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
}

/// The chunks of a HEPv3 packet as (type, value), for tests and diagnostics; `None` when it
/// is not one.
pub fn decode(packet: &[u8]) -> Option<Vec<(u16, Vec<u8>)>> {
    let rest = packet.strip_prefix(b"HEP3")?;
    let total = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
    if total != packet.len() {
        return None;
    }
    let mut at = 6;
    let mut chunks = Vec::new();
    while at < packet.len() {
        let head = packet.get(at..at + 6)?;
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
        if len < 6 {
            return None;
        }
        chunks.push((kind, packet.get(at + 6..at + len)?.to_vec()));
        at += len;
    }
    Some(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv6Addr;

    #[test]
    fn layout() {
        let c = Capture {
            src: "10.0.0.1:5060".parse().unwrap(),
            dst: "10.0.0.2:5080".parse().unwrap(),
            proto: "udp",
            payload: b"OPTIONS sip:x SIP/2.0\r\n\r\n",
            correlation: Some("abc"),
            attrs: None,
            time: UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456),
        };
        let p = encode(&c, 7, None);
        assert_eq!(&p[..4], b"HEP3");
        assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])), p.len());
        // The first chunk: vendor 0, type 1 (IP family), length 7, IPv4.
        assert_eq!(&p[6..13], &[0, 0, 0, 1, 0, 7, 2]);
        let chunks = decode(&p).unwrap();
        let get = |k: u16| chunks.iter().find(|(t, _)| *t == k).unwrap().1.clone();
        assert_eq!(get(chunk::IP_PROTO), [17]);
        assert_eq!(get(chunk::SRC_IP4), [10, 0, 0, 1]);
        assert_eq!(get(chunk::DST_PORT), 5080u16.to_be_bytes());
        assert_eq!(get(chunk::TS_SEC), 1_700_000_000u32.to_be_bytes());
        assert_eq!(get(chunk::TS_USEC), 123_456u32.to_be_bytes());
        assert_eq!(get(chunk::CAPTURE_ID), 7u32.to_be_bytes());
        assert_eq!(get(chunk::PAYLOAD), c.payload);
        assert_eq!(get(chunk::CORRELATION_ID), b"abc");
        assert!(chunks.iter().all(|(t, _)| *t != chunk::AUTH_KEY));
        let v6 = Capture {
            src: "[::1]:5060".parse().unwrap(),
            proto: "tls",
            ..c
        };
        let chunks = decode(&encode(&v6, 1, Some("secret"))).unwrap();
        assert_eq!(chunks[0], (chunk::IP_FAMILY, vec![10]));
        assert_eq!(chunks[1], (chunk::IP_PROTO, vec![22]));
        // Ports come before the addresses, as OpenSIPS writes them.
        assert_eq!(chunks[2].0, chunk::SRC_PORT);
        assert_eq!(
            chunks[8],
            (chunk::SRC_IP6, Ipv6Addr::LOCALHOST.octets().to_vec())
        );
        assert!(chunks.contains(&(chunk::AUTH_KEY, b"secret".to_vec())));
    }

    proptest! {
        #[test]
        fn every_packet_decodes_back(payload in proptest::collection::vec(any::<u8>(), 0..2000),
                                     sport in any::<u16>(), id in any::<u32>()) {
            let c = Capture {
                src: SocketAddr::from(([127, 0, 0, 1], sport)),
                dst: SocketAddr::from(([192, 168, 1, 2], 5060)),
                proto: "tcp",
                payload: &payload,
                correlation: None,
                attrs: None,
                time: SystemTime::now(),
            };
            let chunks = decode(&encode(&c, id, None)).unwrap();
            prop_assert_eq!(&chunks.iter().find(|(t, _)| *t == chunk::PAYLOAD).unwrap().1, &payload);
        }
    }
}
