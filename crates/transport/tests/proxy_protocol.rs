//! PROXY protocol v1/v2: the specification's examples, every error class, incremental feeding,
//! and encode → parse round trips.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

use proptest::prelude::*;
use transport::proxy_protocol::{
    Command, Family, ProxyError, ProxyHeader, SslInfo, Tlv, Transport, V2_SIGNATURE, encode_v1,
    encode_v2, parse,
};

const SIP: &[u8] = b"OPTIONS sip:rsips SIP/2.0\r\n\r\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn parsed(buf: &[u8]) -> (ProxyHeader, usize) {
    parse(buf).unwrap().unwrap()
}

fn err(buf: &[u8]) -> ProxyError {
    parse(buf).unwrap_err()
}

/// A v2 header from its parts, length computed.
fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut v = V2_SIGNATURE.to_vec();
    v.extend_from_slice(&[ver_cmd, fam]);
    v.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    v.extend_from_slice(value);
    v
}

const V4_BLOCK: [u8; 12] = [192, 0, 2, 1, 198, 51, 100, 7, 0x13, 0xc4, 0x13, 0xc4];

/// Every proper prefix of `buf[..len]` is incomplete; the whole gives `expect`.
fn assert_incremental(buf: &[u8], expect: &(ProxyHeader, usize)) {
    for p in 0..expect.1 {
        assert_eq!(parse(&buf[..p]), Ok(None), "prefix of {p} bytes");
    }
    assert_eq!(parse(buf).unwrap().as_ref(), Some(expect));
}

// --- v1 ----------------------------------------------------------------------------------------

#[test]
fn v1_tcp4_spec_example() {
    let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    let (h, n) = parsed(line);
    assert_eq!(n, line.len());
    assert_eq!(h.version, 1);
    assert_eq!(h.command, Command::Proxy);
    assert_eq!((h.family, h.transport), (Family::Inet, Transport::Stream));
    assert_eq!(h.source, Some(addr("192.168.0.1:56324")));
    assert_eq!(h.destination, Some(addr("192.168.0.11:443")));
    assert!(h.tlvs.is_empty());
}

#[test]
fn v1_worst_cases_from_the_spec_fit_in_107_bytes() {
    let tcp4 = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    let (h, _) = parsed(tcp4);
    assert_eq!(h.source, Some(addr("255.255.255.255:65535")));

    let ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let tcp6 = format!("PROXY TCP6 {ffff} {ffff} 65535 65535\r\n");
    assert_eq!(tcp6.len(), 104);
    let (h, n) = parsed(tcp6.as_bytes());
    assert_eq!((h.family, n), (Family::Inet6, 104));
    assert_eq!(h.destination.unwrap().port(), 65535);

    let unknown = format!("PROXY UNKNOWN {ffff} {ffff} 65535 65535\r\n");
    assert_eq!(unknown.len(), 107);
    let (h, n) = parsed(unknown.as_bytes());
    assert_eq!((h.source, h.destination, n), (None, None, 107));
}

#[test]
fn v1_unknown_ignores_the_rest_of_the_line() {
    for line in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"PROXY UNKNOWN whatever 1 2 3\r\n",
    ] {
        let (h, n) = parsed(line);
        assert_eq!(n, line.len());
        assert_eq!((h.family, h.transport), (Family::Unspec, Transport::Unspec));
        assert_eq!((h.source, h.destination), (None, None));
    }
}

#[test]
fn v1_tcp6_and_mapped_addresses() {
    let (h, _) = parsed(b"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.9 5060 5061\r\n");
    assert_eq!(h.source, Some(addr("[2001:db8::1]:5060")));
    assert_eq!(h.destination, Some(addr("[::ffff:192.0.2.9]:5061")));
}

#[test]
fn v1_leaves_the_sip_bytes_that_follow() {
    let mut buf = b"PROXY TCP4 10.0.0.1 10.0.0.2 1000 5060\r\n".to_vec();
    let header_len = buf.len();
    buf.extend_from_slice(SIP);
    let (_, n) = parsed(&buf);
    assert_eq!(n, header_len);
    assert_eq!(&buf[n..], SIP);
}

#[test]
fn v1_errors() {
    let ok = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    assert!(parse(ok.as_bytes()).is_ok());
    let bad_line = ProxyError::BadLine("");
    let cases: &[(&str, ProxyError)] = &[
        ("GET / HTTP/1.1\r\n", ProxyError::BadSignature),
        ("PROXY\r\n", ProxyError::BadSignature),
        (
            "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            ProxyError::BadSignature,
        ),
        (
            "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            ProxyError::BadProtocol,
        ),
        (
            "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            ProxyError::BadProtocol,
        ),
        ("PROXY UNKNOWNX\r\n", ProxyError::BadProtocol),
        ("PROXY \r\n", ProxyError::BadLine("empty field")),
        ("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", bad_line.clone()),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", bad_line.clone()),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", bad_line.clone()),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", bad_line.clone()),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", bad_line.clone()),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1\r2\r\n", bad_line.clone()),
        (
            "PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n",
            ProxyError::BadProtocol,
        ),
        ("PROXY TCP4 ::1 ::1 1 2\r\n", ProxyError::BadAddress),
        ("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", ProxyError::BadAddress),
        (
            "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            ProxyError::BadAddress,
        ),
        ("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", ProxyError::BadAddress),
        ("PROXY TCP4 1.2.3.4 host 1 2\r\n", ProxyError::BadAddress),
        ("PROXY TCP6 [::1] ::1 1 2\r\n", ProxyError::BadAddress),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", ProxyError::BadPort),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", ProxyError::BadPort),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", ProxyError::BadPort),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
            ProxyError::BadPort,
        ),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n",
            ProxyError::BadPort,
        ),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 0x10\r\n", ProxyError::BadPort),
    ];
    for (input, expected) in cases {
        let got = err(input.as_bytes());
        match expected {
            ProxyError::BadLine("") => {
                assert!(matches!(got, ProxyError::BadLine(_)), "{input:?}: {got:?}")
            }
            _ => assert_eq!(&got, expected, "{input:?}"),
        }
        assert!(!got.to_string().is_empty());
    }
}

#[test]
fn v1_port_zero_and_extremes_are_valid() {
    let (h, _) = parsed(b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n");
    assert_eq!(h.source, Some(addr("0.0.0.0:0")));
    assert_eq!(h.destination, Some(addr("255.255.255.255:65535")));
}

#[test]
fn v1_line_longer_than_107_bytes_is_refused() {
    // 106 bytes then CRLF: 108 in all, one too many.
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(106, b'x');
    long.extend_from_slice(b"\r\n");
    assert_eq!(err(&long), ProxyError::LineTooLong);
    // And without any line end it fails once 107 bytes are in.
    assert_eq!(parse(&long[..106]), Ok(None));
    assert_eq!(err(&long[..107]), ProxyError::LineTooLong);
}

#[test]
fn v1_fails_fast_on_bytes_that_cannot_start_a_header() {
    let cases: &[(&str, ProxyError)] = &[
        ("X", ProxyError::BadSignature),
        ("PRX", ProxyError::BadSignature),
        ("INVITE sip:", ProxyError::BadSignature),
        ("PROXY X", ProxyError::BadProtocol),
        ("PROXY TCP7", ProxyError::BadProtocol),
        ("PROXY UNKNOWX", ProxyError::BadProtocol),
        ("PROXY TCP4 1.2.3.4x", ProxyError::BadAddress),
        ("PROXY TCP4 1111111111111111", ProxyError::BadAddress),
        ("PROXY TCP4 1.2.3.4.5 ", ProxyError::BadAddress),
        ("PROXY TCP6 ::g", ProxyError::BadAddress),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 01", ProxyError::BadPort),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 +", ProxyError::BadPort),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 123456", ProxyError::BadPort),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ", ProxyError::BadLine("")),
        ("PROXY TCP4  ", ProxyError::BadLine("")),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", ProxyError::BadLine("")),
        ("PROXY UNKNOWN\rX", ProxyError::BadLine("")),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1\r", ProxyError::BadLine("")),
    ];
    for (input, expected) in cases {
        let got = parse(input.as_bytes());
        match expected {
            ProxyError::BadLine("") => {
                assert!(
                    matches!(got, Err(ProxyError::BadLine(_))),
                    "{input:?}: {got:?}"
                )
            }
            _ => assert_eq!(got.as_ref().err(), Some(expected), "{input:?}"),
        }
    }
}

#[test]
fn v1_prefixes_that_can_still_become_valid_wait() {
    for input in [
        "",
        "P",
        "PROXY",
        "PROXY ",
        "PROXY T",
        "PROXY U",
        "PROXY UNKNOWN",
        "PROXY UNKNOWN ",
        "PROXY UNKNOWN anything at all",
        "PROXY TCP6 ",
        "PROXY TCP6 ::ffff:1.2.",
        "PROXY TCP4 1.2.3.4 ",
        "PROXY TCP4 1.2.3.4 5.6.7.8 6553",
        "PROXY TCP4 1.2.3.4 5.6.7.8 0",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r",
        "PROXY UNKNOWN\r",
    ] {
        assert_eq!(parse(input.as_bytes()), Ok(None), "{input:?}");
    }
}

#[test]
fn v1_byte_by_byte() {
    let mut buf = b"PROXY TCP6 2001:db8::5 2001:db8::6 40000 5060\r\n".to_vec();
    let expect = parsed(&buf);
    buf.extend_from_slice(SIP);
    assert_incremental(&buf, &expect);
}

// --- v2 ----------------------------------------------------------------------------------------

#[test]
fn v2_inet_stream() {
    let mut buf = v2(0x21, 0x11, &V4_BLOCK);
    buf.extend_from_slice(SIP);
    let (h, n) = parsed(&buf);
    assert_eq!(n, 28);
    assert_eq!(&buf[n..], SIP);
    assert_eq!(h.version, 2);
    assert_eq!(
        (h.command, h.family, h.transport),
        (Command::Proxy, Family::Inet, Transport::Stream)
    );
    assert_eq!(h.source, Some(addr("192.0.2.1:5060")));
    assert_eq!(h.destination, Some(addr("198.51.100.7:5060")));
}

#[test]
fn v2_inet6_dgram() {
    let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let mut body = src.octets().to_vec();
    body.extend_from_slice(&dst.octets());
    body.extend_from_slice(&[0xc3, 0x50, 0x13, 0xc4]);
    let (h, n) = parsed(&v2(0x21, 0x22, &body));
    assert_eq!(n, 16 + 36);
    assert_eq!((h.family, h.transport), (Family::Inet6, Transport::Dgram));
    assert_eq!(h.source, Some(addr("[2001:db8::1]:50000")));
    assert_eq!(h.destination, Some(addr("[2001:db8::2]:5060")));
}

#[test]
fn v2_unix_records_the_family_only() {
    let mut body = vec![0u8; 216];
    body[..9].copy_from_slice(b"/tmp/sock");
    body.extend(tlv(Tlv::NOOP, b"pad"));
    let (h, n) = parsed(&v2(0x21, 0x31, &body));
    assert_eq!(n, 16 + 216 + 6);
    assert_eq!((h.family, h.transport), (Family::Unix, Transport::Stream));
    assert_eq!((h.source, h.destination), (None, None));
    assert_eq!(
        h.tlvs,
        vec![Tlv {
            kind: Tlv::NOOP,
            value: b"pad".to_vec()
        }]
    );
}

#[test]
fn v2_local_ignores_the_block_but_consumes_it() {
    let (h, n) = parsed(&v2(0x20, 0x00, &[]));
    assert_eq!(n, 16);
    assert_eq!(
        (h.command, h.source, h.destination),
        (Command::Local, None, None)
    );
    // LOCAL with a family byte and block it does not need: discarded, even unknown values.
    for fam in [0x11, 0xff] {
        let mut buf = v2(0x20, fam, &[1, 2, 3, 4, 5]);
        buf.extend_from_slice(SIP);
        let (h, n) = parsed(&buf);
        assert_eq!(n, 21);
        assert_eq!(
            (h.family, h.transport, h.tlvs.len()),
            (Family::Unspec, Transport::Unspec, 0)
        );
    }
}

#[test]
fn v2_unspec_proxy_carries_tlvs_without_addresses() {
    let body = tlv(Tlv::AUTHORITY, b"sip.example.com");
    let (h, _) = parsed(&v2(0x21, 0x00, &body));
    assert_eq!((h.family, h.source), (Family::Unspec, None));
    assert_eq!(h.authority(), Some("sip.example.com"));
}

#[test]
fn v2_tlvs_and_helpers() {
    let mut ssl = vec![SslInfo::CLIENT_SSL | SslInfo::CLIENT_CERT_CONN, 0, 0, 0, 0];
    ssl.extend(tlv(Tlv::SSL_VERSION, b"TLSv1.3"));
    ssl.extend(tlv(Tlv::SSL_CN, b"alice"));
    let mut body = V4_BLOCK.to_vec();
    body.extend(tlv(Tlv::ALPN, b"sip"));
    body.extend(tlv(Tlv::AUTHORITY, b"edge.example.net"));
    body.extend(tlv(Tlv::SSL, &ssl));
    body.extend(tlv(0xE0, b"custom"));
    let (h, _) = parsed(&v2(0x21, 0x11, &body));
    assert_eq!(h.tlvs.len(), 4);
    assert_eq!(h.tlv(Tlv::ALPN), Some(&b"sip"[..]));
    assert_eq!(h.tlv(0xE0), Some(&b"custom"[..]));
    assert_eq!(h.authority(), Some("edge.example.net"));
    let info = h.ssl().unwrap();
    assert!(info.is_tls() && info.cert_verified());
    assert_eq!(
        (info.version(), info.common_name()),
        (Some("TLSv1.3"), Some("alice"))
    );

    let failed = SslInfo {
        client: SslInfo::CLIENT_SSL | SslInfo::CLIENT_CERT_SESS,
        verify: 1,
        sub_tlvs: vec![],
    };
    assert!(failed.is_tls() && !failed.cert_verified());
    assert_eq!(failed.version(), None);
}

#[test]
fn v2_crc32c_is_checked() {
    let tlvs = [
        Tlv {
            kind: Tlv::AUTHORITY,
            value: b"a.example".to_vec(),
        },
        Tlv {
            kind: Tlv::CRC32C,
            value: vec![0; 4],
        },
    ];
    let bytes = encode_v2(
        Command::Proxy,
        Transport::Stream,
        addr("192.0.2.1:1"),
        addr("192.0.2.2:2"),
        &tlvs,
    )
    .unwrap();
    let (h, _) = parsed(&bytes);
    assert_ne!(
        h.tlv(Tlv::CRC32C),
        Some(&[0u8; 4][..]),
        "encoder filled the checksum"
    );
    // Any flipped bit in the address block, a TLV or the checksum itself is caught.
    for at in [16, 33, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x01;
        assert_eq!(err(&bad), ProxyError::BadChecksum, "byte {at}");
    }
}

#[test]
fn v2_errors() {
    let crc = |len: usize| tlv(Tlv::CRC32C, &vec![0; len]);
    let with = |extra: Vec<u8>| [V4_BLOCK.to_vec(), extra].concat();
    let bad_tlv = ProxyError::BadTlv("");
    let cases: Vec<(Vec<u8>, ProxyError)> = vec![
        (b"\r\n\r\n\0\r\nQUIT\r".to_vec(), ProxyError::BadSignature),
        (b"\r\n\r\n\r\n".to_vec(), ProxyError::BadSignature),
        (v2(0x11, 0x11, &V4_BLOCK), ProxyError::BadVersion(1)),
        (v2(0x31, 0x11, &V4_BLOCK), ProxyError::BadVersion(3)),
        (v2(0x22, 0x11, &V4_BLOCK), ProxyError::BadCommand(2)),
        (v2(0x2f, 0x11, &V4_BLOCK), ProxyError::BadCommand(0xf)),
        (v2(0x21, 0x13, &V4_BLOCK), ProxyError::BadFamily(0x13)),
        (v2(0x21, 0x41, &V4_BLOCK), ProxyError::BadFamily(0x41)),
        (v2(0x21, 0x10, &V4_BLOCK), ProxyError::BadFamily(0x10)),
        (v2(0x21, 0x01, &V4_BLOCK), ProxyError::BadFamily(0x01)),
        (
            v2(0x21, 0x11, &V4_BLOCK[..11]),
            ProxyError::TruncatedAddress {
                needed: 12,
                len: 11,
            },
        ),
        (
            v2(0x21, 0x21, &V4_BLOCK),
            ProxyError::TruncatedAddress {
                needed: 36,
                len: 12,
            },
        ),
        (
            v2(0x21, 0x32, &[0; 215]),
            ProxyError::TruncatedAddress {
                needed: 216,
                len: 215,
            },
        ),
        (v2(0x21, 0x11, &with(vec![0x04, 0x00])), bad_tlv.clone()),
        (
            v2(0x21, 0x11, &with(vec![0x04, 0x00, 0x02, 0xaa])),
            bad_tlv.clone(),
        ),
        (v2(0x21, 0x11, &with(crc(3))), bad_tlv.clone()),
        (
            v2(0x21, 0x11, &with([crc(4), crc(4)].concat())),
            bad_tlv.clone(),
        ),
        (
            v2(0x21, 0x11, &with(tlv(Tlv::UNIQUE_ID, &[7; 129]))),
            bad_tlv.clone(),
        ),
        (
            v2(0x21, 0x11, &with(tlv(Tlv::SSL, &[1, 0, 0, 0]))),
            bad_tlv.clone(),
        ),
        (
            v2(
                0x21,
                0x11,
                &with(tlv(Tlv::SSL, &[1, 0, 0, 0, 0, 0x21, 0, 9])),
            ),
            bad_tlv.clone(),
        ),
        (v2(0x21, 0x11, &with(crc(4))), ProxyError::BadChecksum),
    ];
    for (input, expected) in &cases {
        let got = err(input);
        match expected {
            ProxyError::BadTlv(_) => {
                assert!(matches!(got, ProxyError::BadTlv(_)), "{input:?}: {got:?}")
            }
            _ => assert_eq!(&got, expected, "{input:?}"),
        }
        assert!(!got.to_string().is_empty());
    }
    // A 128-byte UNIQUE_ID is the largest allowed.
    assert!(parse(&v2(0x21, 0x11, &with(tlv(Tlv::UNIQUE_ID, &[7; 128])))).is_ok());
}

#[test]
fn v2_fails_fast_in_the_fixed_part() {
    let good = v2(0x21, 0x11, &V4_BLOCK);
    for p in 0..16 {
        assert_eq!(parse(&good[..p]), Ok(None));
    }
    assert_eq!(
        err(&good[..13]
            .iter()
            .copied()
            .chain([0x19])
            .collect::<Vec<u8>>()),
        ProxyError::BadFamily(0x19)
    );
    let mut bad_len = good[..14].to_vec();
    bad_len.extend_from_slice(&[0, 4]);
    assert_eq!(
        err(&bad_len),
        ProxyError::TruncatedAddress { needed: 12, len: 4 }
    );
    assert_eq!(err(&[0x0d, 0x0a, 0x0d, 0x0b]), ProxyError::BadSignature);
    assert_eq!(
        err(&[
            0x0d, 0x0a, 0x0d, 0x0a, 0, 0x0d, 0x0a, b'Q', b'U', b'I', b'T', b'\n', 0x10
        ]),
        ProxyError::BadVersion(1)
    );
}

#[test]
fn v2_byte_by_byte_with_tlvs_and_trailing_sip() {
    let tlvs = vec![
        Tlv {
            kind: Tlv::AUTHORITY,
            value: b"sip.example.org".to_vec(),
        },
        Tlv {
            kind: Tlv::UNIQUE_ID,
            value: vec![9; 32],
        },
        Tlv {
            kind: Tlv::CRC32C,
            value: vec![0; 4],
        },
    ];
    let mut buf = encode_v2(
        Command::Proxy,
        Transport::Stream,
        addr("[2001:db8::7]:5070"),
        addr("[2001:db8::8]:5061"),
        &tlvs,
    )
    .unwrap();
    let expect = parsed(&buf);
    assert_eq!(expect.1, buf.len());
    buf.extend_from_slice(SIP);
    assert_incremental(&buf, &expect);
    assert_eq!(&buf[expect.1..], SIP);
}

// --- encoders ----------------------------------------------------------------------------------

#[test]
fn encode_v1_text() {
    assert_eq!(
        encode_v1(addr("192.168.0.1:56324"), addr("192.168.0.11:443")),
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    );
    assert_eq!(
        encode_v1(addr("[::1]:1"), addr("[2001:db8::1]:2")),
        b"PROXY TCP6 ::1 2001:db8::1 1 2\r\n"
    );
    // Mixed families: TCP6 with the IPv4 side mapped.
    assert_eq!(
        encode_v1(addr("192.0.2.1:5060"), addr("[2001:db8::1]:5060")),
        b"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::1 5060 5060\r\n"
    );
}

#[test]
fn encode_v2_bytes() {
    let bytes = encode_v2(
        Command::Proxy,
        Transport::Stream,
        addr("192.0.2.1:5060"),
        addr("198.51.100.7:5060"),
        &[],
    )
    .unwrap();
    assert_eq!(bytes, v2(0x21, 0x11, &V4_BLOCK));
    let local = encode_v2(
        Command::Local,
        Transport::Stream,
        addr("192.0.2.1:5060"),
        addr("192.0.2.1:5060"),
        &[],
    )
    .unwrap();
    assert_eq!(local, v2(0x20, 0x00, &[]));
    let unspec = encode_v2(
        Command::Proxy,
        Transport::Unspec,
        addr("192.0.2.1:5060"),
        addr("192.0.2.1:5060"),
        &[],
    )
    .unwrap();
    assert_eq!(unspec, v2(0x21, 0x00, &[]));
    let mixed = encode_v2(
        Command::Proxy,
        Transport::Dgram,
        addr("192.0.2.1:1"),
        addr("[::1]:2"),
        &[],
    )
    .unwrap();
    let (h, _) = parsed(&mixed);
    assert_eq!(h.family, Family::Inet6);
    assert_eq!(h.source, Some(addr("[::ffff:192.0.2.1]:1")));
}

#[test]
fn encode_v2_refuses_what_does_not_fit() {
    let big = [Tlv {
        kind: 0xE0,
        value: vec![0; 65_536],
    }];
    let any = addr("192.0.2.1:1");
    assert_eq!(
        encode_v2(Command::Proxy, Transport::Stream, any, any, &big),
        Err(ProxyError::TooLong)
    );
    let fits = [Tlv {
        kind: 0xE0,
        value: vec![0; 65_535 - 12 - 3],
    }];
    let bytes = encode_v2(Command::Proxy, Transport::Stream, any, any, &fits).unwrap();
    assert_eq!(bytes.len(), 16 + 65_535);
    assert_eq!(parsed(&bytes).0.tlvs.len(), 1);
    let over = [Tlv {
        kind: 0xE0,
        value: vec![0; 65_535 - 12 - 2],
    }];
    assert_eq!(
        encode_v2(Command::Proxy, Transport::Stream, any, any, &over),
        Err(ProxyError::TooLong)
    );
}

// --- properties --------------------------------------------------------------------------------

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(SocketAddr::from),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::V6(SocketAddrV6::new(
            ip.into(),
            port,
            0,
            0
        ))),
    ]
}

fn tlv_strategy() -> impl Strategy<Value = Tlv> {
    prop_oneof![
        (
            Just(Tlv::AUTHORITY),
            "[a-z0-9.-]{0,40}".prop_map(String::into_bytes)
        ),
        (
            Just(Tlv::UNIQUE_ID),
            proptest::collection::vec(any::<u8>(), 0..=128)
        ),
        (Just(Tlv::CRC32C), Just(vec![0; 4])),
        (
            Just(Tlv::SSL),
            (any::<u8>(), any::<u32>(), "[A-Za-z0-9.]{0,12}").prop_map(|(c, v, ver)| {
                let mut b = vec![c];
                b.extend_from_slice(&v.to_be_bytes());
                b.extend(tlv(Tlv::SSL_VERSION, ver.as_bytes()));
                b
            })
        ),
        (0x06..=0xFFu8)
            .prop_filter("not SSL", |k| *k != Tlv::SSL)
            .prop_flat_map(|k| (Just(k), proptest::collection::vec(any::<u8>(), 0..64))),
    ]
    .prop_map(|(kind, value)| Tlv { kind, value })
}

/// At most one CRC32C TLV, as the format allows.
fn tlv_list() -> impl Strategy<Value = Vec<Tlv>> {
    proptest::collection::vec(tlv_strategy(), 0..5).prop_map(|v| {
        let mut seen = false;
        v.into_iter()
            .filter(|t| t.kind != Tlv::CRC32C || !std::mem::replace(&mut seen, true))
            .collect()
    })
}

/// What a parser reports for an address pair: both IPv6 (v4 mapped) when families differ.
fn normalised(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    if src.is_ipv4() == dst.is_ipv4() {
        return (src, dst);
    }
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    (v6(src), v6(dst))
}

proptest! {
    #[test]
    fn v1_round_trip(src in socket_addr(), dst in socket_addr(), tail in proptest::collection::vec(any::<u8>(), 0..32)) {
        let mut bytes = encode_v1(src, dst);
        let len = bytes.len();
        prop_assert!(len <= 107);
        bytes.extend_from_slice(&tail);
        let (h, n) = parsed(&bytes);
        prop_assert_eq!(n, len);
        prop_assert_eq!((h.source.unwrap(), h.destination.unwrap()), normalised(src, dst));
        prop_assert_eq!(h.transport, Transport::Stream);
        for p in 0..len {
            prop_assert_eq!(parse(&bytes[..p]), Ok(None));
        }
    }

    #[test]
    fn v2_round_trip(
        src in socket_addr(),
        dst in socket_addr(),
        transport in prop_oneof![Just(Transport::Stream), Just(Transport::Dgram), Just(Transport::Unspec)],
        tlvs in tlv_list(),
        tail in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut bytes = encode_v2(Command::Proxy, transport, src, dst, &tlvs).unwrap();
        let len = bytes.len();
        bytes.extend_from_slice(&tail);
        let (h, n) = parsed(&bytes);
        prop_assert_eq!(n, len);
        prop_assert_eq!(h.transport, transport);
        if transport == Transport::Unspec {
            prop_assert_eq!((h.source, h.destination), (None, None));
        } else {
            prop_assert_eq!((h.source.unwrap(), h.destination.unwrap()), normalised(src, dst));
        }
        prop_assert_eq!(h.tlvs.len(), tlvs.len());
        for (got, sent) in h.tlvs.iter().zip(&tlvs) {
            prop_assert_eq!(got.kind, sent.kind);
            if sent.kind != Tlv::CRC32C {
                prop_assert_eq!(&got.value, &sent.value);
            }
        }
        for p in 0..len {
            prop_assert_eq!(parse(&bytes[..p]), Ok(None));
        }
    }

    #[test]
    fn arbitrary_bytes_hold_the_fuzz_invariants(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        transport::proxy_protocol::fuzz_invariants(&data);
    }

    #[test]
    fn mutated_headers_hold_the_fuzz_invariants(
        src in socket_addr(),
        dst in socket_addr(),
        tlvs in tlv_list(),
        v1 in any::<bool>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = if v1 {
            encode_v1(src, dst)
        } else {
            encode_v2(Command::Proxy, Transport::Stream, src, dst, &tlvs).unwrap()
        };
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        transport::proxy_protocol::fuzz_invariants(&bytes);
    }
}
