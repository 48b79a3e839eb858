//! Just enough DER (X.690) to read what the module needs from an X.509 certificate (RFC 5280
//! §4.1): its validity, its public key and whether it has the TNAuthList extension (RFC 8226
//! §9), and the key of a SEC1 (RFC 5915) EC private key. Chain validation is webpki's.

/// One TLV: its tag byte and content.
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Reads TLVs one after another from a slice; every error is `None`, never a panic.
#[derive(Debug)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn next(&mut self) -> Option<Tlv<'a>> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (lb, rest) = rest.split_at(n);
            let len = lb.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b));
            (len, rest)
        };
        if rest.len() < len {
            return None;
        }
        let (body, rest) = rest.split_at(len);
        self.0 = rest;
        Some(Tlv { tag, body })
    }

    /// The next TLV, which must carry `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        self.next().filter(|t| t.tag == tag).map(|t| t.body)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;

/// id-pe-TNAuthList, 1.3.6.1.5.5.7.1.26.
const TN_AUTH_LIST: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1a];

/// What the module reads from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Validity bounds, seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// The subjectPublicKey bits (for EC keys the uncompressed point).
    pub public_key: Vec<u8>,
    pub has_tn_auth_list: bool,
}

impl CertInfo {
    /// Whether `t` lies strictly inside the validity period (OpenSIPS' `X509_cmp_time` test).
    pub fn valid_at(&self, t: i64) -> bool {
        self.not_before < t && t < self.not_after
    }
}

/// Reads a DER certificate; `None` when it is not one.
pub fn cert_info(der: &[u8]) -> Option<CertInfo> {
    let cert = Reader(der).expect(SEQUENCE)?;
    let mut tbs = Reader(Reader(cert).expect(SEQUENCE)?);
    let mut t = tbs.next()?;
    if t.tag == 0xa0 {
        t = tbs.next()?; // [0] version
    }
    if t.tag != INTEGER {
        return None; // serial number
    }
    tbs.expect(SEQUENCE)?; // signature algorithm
    tbs.expect(SEQUENCE)?; // issuer
    let mut validity = Reader(tbs.expect(SEQUENCE)?);
    let not_before = time(validity.next()?)?;
    let not_after = time(validity.next()?)?;
    tbs.expect(SEQUENCE)?; // subject
    let mut spki = Reader(tbs.expect(SEQUENCE)?);
    spki.expect(SEQUENCE)?;
    let bits = spki.expect(BIT_STRING)?;
    let public_key = bits.get(1..)?.to_vec(); // after the unused-bits count
    let mut has_tn_auth_list = false;
    while let Some(t) = tbs.next() {
        if t.tag != 0xa3 {
            continue; // issuer / subject unique ids
        }
        let mut exts = Reader(Reader(t.body).expect(SEQUENCE)?);
        while !exts.is_empty() {
            let mut ext = Reader(exts.expect(SEQUENCE)?);
            if ext.expect(OID)? == TN_AUTH_LIST {
                has_tn_auth_list = true;
            }
        }
    }
    Some(CertInfo {
        not_before,
        not_after,
        public_key,
        has_tn_auth_list,
    })
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(t: Tlv<'_>) -> Option<i64> {
    let s = std::str::from_utf8(t.body).ok()?;
    let s = s.strip_suffix('Z')?;
    let (year, rest) = match t.tag {
        UTC_TIME if s.len() == 12 => {
            let yy: i64 = s.get(..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, s.get(2..)?)
        }
        GENERALIZED_TIME if s.len() == 14 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |i: usize| rest.get(i..i + 2)?.parse::<i64>().ok();
    crate::date::to_unix(year, n(0)?, n(2)?, n(4)?, n(6)?, n(8)?)
}

/// The private scalar and public point of a SEC1 `EC PRIVATE KEY` (RFC 5915 §3).
pub fn sec1_key(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut key = Reader(Reader(der).expect(SEQUENCE)?);
    if key.expect(INTEGER)? != [1] {
        return None;
    }
    let private = key.expect(OCTET_STRING)?;
    let mut public = None;
    while let Some(t) = key.next() {
        if t.tag == 0xa1 {
            public = Reader(t.body).expect(BIT_STRING)?.get(1..);
        }
    }
    Some((private, public?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_past_the_end_are_refused() {
        assert!(Reader(&[0x30, 0x05, 0x01]).next().is_none());
        assert!(Reader(&[0x30, 0x82, 0xff]).next().is_none());
        assert!(Reader(&[0x30, 0x80]).next().is_none());
        assert!(cert_info(&[]).is_none());
        assert!(cert_info(&[0x30, 0x03, 0x30, 0x01, 0x00]).is_none());
        assert!(sec1_key(&[0x30, 0x00]).is_none());
    }

    #[test]
    fn times() {
        let utc = Tlv {
            tag: UTC_TIME,
            body: b"250101000000Z",
        };
        assert_eq!(time(utc), Some(1_735_689_600));
        let general = Tlv {
            tag: GENERALIZED_TIME,
            body: b"20500101000000Z",
        };
        assert_eq!(time(general), Some(2_524_608_000));
        let bad = Tlv {
            tag: UTC_TIME,
            body: b"25010100000Z",
        };
        assert_eq!(time(bad), None);
    }
}
