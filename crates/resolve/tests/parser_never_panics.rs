//! Property tests: the response parser returns `Ok` or `Err` on any input, never panics —
//! random bytes, random bytes behind a plausible header, and valid answers with bytes flipped.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use proptest::prelude::*;
use resolve::wire::{RecordType, encode_query, parse_response};

/// A valid response with an SRV, a NAPTR, an A and an SOA, names compressed.
fn sample_response() -> Vec<u8> {
    let mut m = encode_query(0x4242, "example.test", RecordType::Naptr).unwrap();
    m[2] = 0x81;
    m[3] = 0x80;
    m[7] = 3; // ANCOUNT
    m[9] = 1; // NSCOUNT
    let rr = |m: &mut Vec<u8>, rtype: u16, rdata: &[u8]| {
        m.extend_from_slice(&[0xC0, 0x0C]);
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 1, 0]);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    };
    rr(
        &mut m,
        35,
        b"\x00\x0a\x00\x0a\x01s\x07SIP+D2U\x00\x04_sip\x04_udp\xC0\x0C",
    );
    rr(&mut m, 33, b"\x00\x01\x00\x02\x13\xc4\x03srv\xC0\x0C");
    rr(&mut m, 1, b"\xc0\x00\x02\x01");
    rr(&mut m, 6, b"\x02ns\xC0\x0C\x05admin\xC0\x0C\x00\x00\x00\x01\x00\x00\x0e\x10\x00\x00\x02\x58\x00\x01\x51\x80\x00\x00\x00\x1e");
    m
}

#[test]
fn sample_is_valid() {
    let resp = parse_response(&sample_response()).unwrap();
    assert_eq!(resp.answers.len(), 3);
    assert_eq!(resp.authority.len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let _ = parse_response(&bytes);
    }

    #[test]
    fn random_body_behind_a_header(
        counts in proptest::array::uniform4(0u16..8),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut m = vec![0, 1, 0x81, 0x80];
        for c in counts {
            m.extend_from_slice(&c.to_be_bytes());
        }
        m.extend_from_slice(&body);
        let _ = parse_response(&m);
    }

    #[test]
    fn flipped_bytes_in_a_valid_answer(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut m = sample_response();
        for (at, value) in flips {
            let i = at.index(m.len());
            m[i] = value;
        }
        let _ = parse_response(&m);
        let len = cut.index(m.len() + 1);
        let _ = parse_response(&m[..len]);
    }
}
