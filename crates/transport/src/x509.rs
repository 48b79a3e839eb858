//! What tls_mgm's `$tls_peer_*` variables read of a certificate: a DER walk over the fields
//! of X.509 (RFC 5280 §4.1) they name — version, serial number, issuer and subject, validity,
//! subject alternative names — printed as OpenSSL prints them, which OpenSIPS shows. The input
//! is the peer's: every length is checked and a bad certificate is `None`, never a panic.

/// One DER element: its tag and contents.
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Reads the element at the start of `input`; the rest after it.
fn tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return None;
    }
    let (body, after) = rest.split_at(len);
    Some((Tlv { tag, body }, after))
}

/// The elements inside a constructed element.
fn children(mut body: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let (t, rest) = tlv(body)?;
        out.push(t);
        body = rest;
    }
    Some(out)
}

/// The fields of a certificate the TLS variables show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertInfo {
    /// X509_get_version: 2 for a v3 certificate.
    pub version: i64,
    /// The serial number as OpenSIPS reads it (into a C `int`; -1 when it does not fit 64 bits).
    pub serial: i64,
    /// (short name, value) in certificate order.
    pub subject: Vec<(String, String)>,
    pub issuer: Vec<(String, String)>,
    /// `Mon DD HH:MM:SS YYYY GMT`.
    pub not_before: String,
    pub not_after: String,
    /// Unix seconds, to tell an expired certificate.
    pub not_after_secs: i64,
    pub san_email: Vec<String>,
    pub san_dns: Vec<String>,
    pub san_uri: Vec<String>,
    pub san_ip: Vec<String>,
}

impl CertInfo {
    /// `X509_NAME_oneline`: `/C=RO/O=Example/CN=host`.
    pub fn oneline(name: &[(String, String)]) -> String {
        name.iter().map(|(k, v)| format!("/{k}={v}")).collect()
    }

    /// The first value of attribute `short` (`CN`, `C`, `ST`, `L`, `O`, `OU`, `serialNumber`).
    pub fn field<'a>(name: &'a [(String, String)], short: &str) -> Option<&'a str> {
        name.iter()
            .find(|(k, _)| k == short)
            .map(|(_, v)| v.as_str())
    }

    /// Reads a DER certificate.
    pub fn parse(der: &[u8]) -> Option<CertInfo> {
        let (cert, _) = tlv(der)?;
        let cert = children(cert.body)?;
        let tbs = children(cert.first()?.body)?;
        let mut i = 0;
        let mut info = CertInfo::default();
        if tbs.first()?.tag == 0xa0 {
            let (v, _) = tlv(tbs[0].body)?;
            info.version = int(v.body)?;
            i = 1;
        }
        info.serial = match int(tbs.get(i)?.body) {
            // OpenSIPS keeps it in an int.
            Some(n) => n as i32 as i64,
            None => -1,
        };
        info.issuer = name(tbs.get(i + 2)?.body)?;
        let validity = children(tbs.get(i + 3)?.body)?;
        let (nb, na) = (time(validity.first()?)?, time(validity.get(1)?)?);
        info.not_before = nb.0;
        (info.not_after, info.not_after_secs) = na;
        info.subject = name(tbs.get(i + 4)?.body)?;
        for t in tbs.iter().skip(i + 6) {
            if t.tag == 0xa3 {
                let (exts, _) = tlv(t.body)?;
                for ext in children(exts.body)? {
                    let parts = children(ext.body)?;
                    // subjectAltName, 2.5.29.17
                    if parts.first()?.body == [0x55, 0x1d, 0x11] {
                        let (value, _) = tlv(parts.last()?.body)?;
                        for g in children(value.body)? {
                            let text = String::from_utf8_lossy(g.body).into_owned();
                            match g.tag {
                                0x81 => info.san_email.push(text),
                                0x82 => info.san_dns.push(text),
                                0x86 => info.san_uri.push(text),
                                0x87 => info.san_ip.push(ip(g.body)?),
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
        Some(info)
    }
}

/// A DER INTEGER that fits 64 bits.
fn int(body: &[u8]) -> Option<i64> {
    if body.is_empty() || body.len() > 8 {
        return None;
    }
    let neg = body[0] & 0x80 != 0;
    let mut v: i64 = if neg { -1 } else { 0 };
    for b in body {
        v = (v << 8) | i64::from(*b);
    }
    Some(v)
}

/// A Name: the attributes of each RDN in order, under OpenSSL's short names.
fn name(body: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for rdn in children(body)? {
        for atv in children(rdn.body)? {
            let parts = children(atv.body)?;
            let oid = parts.first()?.body;
            let value = String::from_utf8_lossy(parts.get(1)?.body).into_owned();
            out.push((short_name(oid), value));
        }
    }
    Some(out)
}

fn short_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x05] => "serialNumber".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".into(),
        other => dotted(other),
    }
}

/// An OID in dotted form (OpenSSL prints unknown attributes so).
fn dotted(oid: &[u8]) -> String {
    let Some((&first, rest)) = oid.split_first() else {
        return String::new();
    };
    let mut parts = vec![
        (u64::from(first) / 40).min(2),
        u64::from(first) - (u64::from(first) / 40).min(2) * 40,
    ];
    let mut acc: u64 = 0;
    for b in rest {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            parts.push(acc);
            acc = 0;
        }
    }
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// A UTCTime or GeneralizedTime as `ASN1_TIME_print` writes it, and its Unix seconds.
fn time(t: &Tlv<'_>) -> Option<(String, i64)> {
    let s = std::str::from_utf8(t.body).ok()?;
    let (year, rest) = match t.tag {
        0x17 => {
            let yy: i64 = s.get(0..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(0..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| rest.get(r)?.parse::<i64>().ok();
    let (mon, day, h, m, sec) = (num(0..2)?, num(2..4)?, num(4..6)?, num(6..8)?, num(8..10)?);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let name = MONTHS.get(usize::try_from(mon - 1).ok()?)?;
    let text = format!("{name} {day:>2} {h:02}:{m:02}:{sec:02} {year} GMT");
    Some((
        text,
        days_from_civil(year, mon, day) * 86_400 + h * 3600 + m * 60 + sec,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An iPAddress SAN as text.
fn ip(body: &[u8]) -> Option<String> {
    match body.len() {
        4 => Some(std::net::Ipv4Addr::new(body[0], body[1], body[2], body[3]).to_string()),
        16 => {
            let b: [u8; 16] = body.try_into().ok()?;
            Some(std::net::Ipv6Addr::from(b).to_string())
        }
        _ => None,
    }
}

/// What the `x509` fuzz target and the corpus replay check: any input parses or is `None`
/// without panicking, a parse is deterministic, and what it gives prints.
pub fn fuzz_invariants(data: &[u8]) {
    if let Some(c) = CertInfo::parse(data) {
        assert_eq!(CertInfo::parse(data).as_ref(), Some(&c));
        let line = CertInfo::oneline(&c.subject);
        assert!(line.matches('/').count() >= c.subject.len());
        assert!(c.not_after.ends_with(" GMT") && c.not_before.ends_with(" GMT"));
        let _ = CertInfo::field(&c.issuer, "CN");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_and_times() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 12, 7), 20_794);
        let t = Tlv {
            tag: 0x17,
            body: b"260105093000Z",
        };
        assert_eq!(
            time(&t),
            Some((
                "Jan  5 09:30:00 2026 GMT".into(),
                20_458 * 86_400 + 9 * 3600 + 1800
            ))
        );
    }

    #[test]
    fn hostile_input_is_none() {
        assert_eq!(CertInfo::parse(&[]), None);
        assert_eq!(CertInfo::parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(CertInfo::parse(&[0x30, 0x03, 0x30, 0x01]), None);
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ n).collect();
            let _ = CertInfo::parse(&junk);
        }
        assert_eq!(dotted(&[0x2b, 0x06, 0x01]), "1.3.6.1");
    }
}
