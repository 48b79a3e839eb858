//! Digest authentication math for SIP (RFC 3261 §22.4, RFC 8760) and HTTP
//! (RFC 2617, RFC 7616): the hash algorithms, `qop` values, the A1/A2/KD
//! computations that turn credentials into a `response` value, the RFC 7616
//! `userhash`, and a constant-time comparison of the expected and received
//! responses. This module owns only the arithmetic; parsing the
//! `Authorization` / `Proxy-Authorization` header, issuing and checking nonces
//! and looking credentials up are done elsewhere. Every function is total: no
//! input makes it panic.

use md5::Md5;
use sha2::{Digest as _, Sha256, Sha512_256};
use std::fmt;

/// A digest hash algorithm, as named by the `algorithm` parameter
/// (RFC 7616 §3.3 and §6.1, RFC 8760 §2 for SIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// `MD5` (RFC 2617 §3.2.2.2); the default when `algorithm` is absent
    /// (RFC 7616 §3.3).
    #[default]
    Md5,
    /// `MD5-sess` (RFC 2617 §3.2.2.2).
    Md5Sess,
    /// `SHA-256` (RFC 7616 §3.3, RFC 8760 §2.2).
    Sha256,
    /// `SHA-256-sess` (RFC 7616 §3.3).
    Sha256Sess,
    /// `SHA-512-256`, i.e. SHA-512/256 of FIPS 180-4 (RFC 7616 §3.3,
    /// RFC 8760 §2.2).
    Sha512_256,
    /// `SHA-512-256-sess` (RFC 7616 §3.3).
    Sha512_256Sess,
}

impl Algorithm {
    /// Every algorithm, in registry order (RFC 7616 §6.1).
    const ALL: [Algorithm; 6] = [
        Algorithm::Md5,
        Algorithm::Md5Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Sha512_256,
        Algorithm::Sha512_256Sess,
    ];

    /// Parses an `algorithm` token case-insensitively (RFC 7616 §3.3: "MD5",
    /// "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256",
    /// "SHA-512-256-sess"). Returns `None` for any other name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Algorithm> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(name))
    }

    /// The canonical spelling from the RFC 7616 §6.1 registry.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Whether this is a session variant, whose A1 includes the nonce and
    /// cnonce (RFC 7616 §3.4.2).
    #[must_use]
    pub fn is_sess(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// Length in characters of this algorithm's lowercase hex output
    /// (RFC 7616 §3.4.1): 32 for MD5, 64 for SHA-256 and SHA-512-256.
    #[must_use]
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 32,
            _ => 64,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A quality-of-protection value, as carried by the `qop` parameter
/// (RFC 2617 §3.2.1, RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: authentication only.
    Auth,
    /// `auth-int`: authentication with integrity protection of the body.
    AuthInt,
}

impl Qop {
    /// Parses a `qop` token case-insensitively ("auth" or "auth-int").
    /// Returns `None` for any other value.
    #[must_use]
    pub fn parse(name: &str) -> Option<Qop> {
        [Qop::Auth, Qop::AuthInt]
            .into_iter()
            .find(|qop| qop.as_str().eq_ignore_ascii_case(name))
    }

    /// The canonical spelling ("auth" or "auth-int").
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An incremental hash of the function `H` selected by an [`Algorithm`].
enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
    Sha512_256(Sha512_256),
}

impl Hasher {
    fn new(alg: Algorithm) -> Hasher {
        match alg {
            Algorithm::Md5 | Algorithm::Md5Sess => Hasher::Md5(Md5::new()),
            Algorithm::Sha256 | Algorithm::Sha256Sess => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => {
                Hasher::Sha512_256(Sha512_256::new())
            }
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512_256(h) => h.update(data),
        }
    }

    /// Feeds a hex string, lowercased, without allocating: RFC 7616 §3.4
    /// hashes hex values in lowercase, and a stored HA1 may not be.
    fn update_lower(&mut self, hex: &str) {
        let mut buf = [0u8; 64];
        for chunk in hex.as_bytes().chunks(buf.len()) {
            for (dst, src) in buf.iter_mut().zip(chunk) {
                *dst = src.to_ascii_lowercase();
            }
            self.update(buf.get(..chunk.len()).unwrap_or_default());
        }
    }

    fn finish_hex(self) -> String {
        match self {
            Hasher::Md5(h) => to_hex(&h.finalize()),
            Hasher::Sha256(h) => to_hex(&h.finalize()),
            Hasher::Sha512_256(h) => to_hex(&h.finalize()),
        }
    }
}

/// A piece of a colon-separated hash input.
#[derive(Clone, Copy)]
enum Part<'a> {
    /// Hashed as given.
    Raw(&'a [u8]),
    /// A hex value, hashed in lowercase.
    Hex(&'a str),
}

/// `H(p1:p2:...)`: hashes the parts joined by `:` and returns lowercase hex.
fn hash_parts(alg: Algorithm, parts: &[Part<'_>]) -> String {
    let mut h = Hasher::new(alg);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        match *part {
            Part::Raw(bytes) => h.update(bytes),
            Part::Hex(hex) => h.update_lower(hex),
        }
    }
    h.finish_hex()
}

/// Encodes bytes as lowercase hex (RFC 7616 §3.4: "lowercase hex").
fn to_hex(bytes: &[u8]) -> String {
    crate::hex_lower(bytes)
}

/// HA1 = `H(username:realm:password)` (RFC 2617 §3.2.2.2, RFC 7616 §3.4.2).
///
/// For `-sess` algorithms this is only the base value that a registrar
/// stores; apply [`ha1_sess`] (or [`effective_ha1`]) per request.
#[must_use]
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    let parts = [username, realm, password].map(|s| Part::Raw(s.as_bytes()));
    hash_parts(alg, &parts)
}

/// Session HA1 = `H(H(username:realm:password):nonce:cnonce)`
/// (RFC 2617 §3.2.2.2, RFC 7616 §3.4.2), from a base HA1 in hex (either case).
#[must_use]
pub fn ha1_sess(alg: Algorithm, ha1_hex: &str, nonce: &str, cnonce: &str) -> String {
    let parts = [
        Part::Hex(ha1_hex),
        Part::Raw(nonce.as_bytes()),
        Part::Raw(cnonce.as_bytes()),
    ];
    hash_parts(alg, &parts)
}

/// The HA1 that enters the response (RFC 7616 §3.4.2): [`ha1_sess`] for
/// `-sess` algorithms, otherwise `ha1_hex` itself, lowercased.
#[must_use]
pub fn effective_ha1(alg: Algorithm, ha1_hex: &str, nonce: &str, cnonce: &str) -> String {
    if alg.is_sess() {
        ha1_sess(alg, ha1_hex, nonce, cnonce)
    } else {
        ha1_hex.to_ascii_lowercase()
    }
}

/// HA2 (RFC 2617 §3.2.2.3, RFC 7616 §3.4.3): `H(method:digest-uri)`, or for
/// `qop=auth-int` `H(method:digest-uri:H(body))`. `body` is ignored unless
/// `qop` is `auth-int`; in SIP the empty body hashes as `H("")`
/// (RFC 3261 §22.4).
#[must_use]
pub fn ha2(
    alg: Algorithm,
    qop: Option<Qop>,
    method: &str,
    digest_uri: &str,
    body: &[u8],
) -> String {
    let method = Part::Raw(method.as_bytes());
    let uri = Part::Raw(digest_uri.as_bytes());
    if qop == Some(Qop::AuthInt) {
        let body_hash = hash_parts(alg, &[Part::Raw(body)]);
        hash_parts(alg, &[method, uri, Part::Raw(body_hash.as_bytes())])
    } else {
        hash_parts(alg, &[method, uri])
    }
}

/// The `response` value, `KD(HA1, ...)` (RFC 2617 §3.2.2.1,
/// RFC 7616 §3.4.1). With `qop = Some((qop, nc, cnonce))` it is
/// `H(HA1:nonce:nc:cnonce:qop:HA2)`; without it, the RFC 2069 form
/// `H(HA1:nonce:HA2)`. `effective_ha1_hex` is the output of
/// [`effective_ha1`]; hex inputs may be in either case.
#[must_use]
pub fn response(
    alg: Algorithm,
    effective_ha1_hex: &str,
    nonce: &str,
    qop: Option<(Qop, &str, &str)>,
    ha2_hex: &str,
) -> String {
    let ha1 = Part::Hex(effective_ha1_hex);
    let nonce = Part::Raw(nonce.as_bytes());
    let ha2 = Part::Hex(ha2_hex);
    match qop {
        Some((qop, nc, cnonce)) => {
            let nc = Part::Raw(nc.as_bytes());
            let cnonce = Part::Raw(cnonce.as_bytes());
            let qop = Part::Raw(qop.as_str().as_bytes());
            hash_parts(alg, &[ha1, nonce, nc, cnonce, qop, ha2])
        }
        None => hash_parts(alg, &[ha1, nonce, ha2]),
    }
}

/// The hashed username `H(username:realm)` sent when `userhash=true`
/// (RFC 7616 §3.4.4).
#[must_use]
pub fn userhash(alg: Algorithm, username: &str, realm: &str) -> String {
    let parts = [username, realm].map(|s| Part::Raw(s.as_bytes()));
    hash_parts(alg, &parts)
}

/// Everything besides the secret that determines the expected `response` of
/// one request (RFC 7616 §3.4, RFC 3261 §22.4). The values are the unquoted
/// parameter values of the `Authorization` / `Proxy-Authorization` header,
/// plus the request's method and body.
#[derive(Debug, Clone, Copy)]
pub struct DigestParams<'a> {
    /// The `algorithm` parameter ([`Algorithm::Md5`] when absent).
    pub algorithm: Algorithm,
    /// The plain username (after undoing `userhash` or `username*`), as
    /// used in A1.
    pub username: &'a str,
    /// The `realm` parameter.
    pub realm: &'a str,
    /// The `nonce` parameter, as issued by the server.
    pub nonce: &'a str,
    /// The `uri` parameter (digest-uri) exactly as the client sent it.
    pub uri: &'a str,
    /// The request method, e.g. `REGISTER` or `INVITE`.
    pub method: &'a str,
    /// The `qop` parameter; `None` selects the RFC 2069 form.
    pub qop: Option<Qop>,
    /// The `nc` parameter (8 hex digits) exactly as sent; used only with a
    /// `qop`.
    pub nc: &'a str,
    /// The `cnonce` parameter; used with a `qop` and by `-sess` algorithms.
    pub cnonce: &'a str,
    /// The message body; used only with `qop=auth-int`.
    pub body: &'a [u8],
}

impl DigestParams<'_> {
    /// The expected `response` for a cleartext password (RFC 7616 §3.4.1).
    #[must_use]
    pub fn expected_from_password(&self, password: &str) -> String {
        let base = ha1(self.algorithm, self.username, self.realm, password);
        self.expected_from_ha1(&base)
    }

    /// The expected `response` from a stored base HA1,
    /// `H(username:realm:password)` in hex (RFC 7616 §3.4.1, §3.4.2);
    /// the session step is applied here for `-sess` algorithms.
    #[must_use]
    pub fn expected_from_ha1(&self, ha1_hex: &str) -> String {
        let alg = self.algorithm;
        let ha1 = effective_ha1(alg, ha1_hex, self.nonce, self.cnonce);
        let ha2 = ha2(alg, self.qop, self.method, self.uri, self.body);
        let qop = self.qop.map(|q| (q, self.nc, self.cnonce));
        response(alg, &ha1, self.nonce, qop, &ha2)
    }
}

/// Compares an expected and a received `response` in time independent of
/// their contents, ignoring ASCII case (RFC 7616 §5.12 warns against leaking
/// through timing). Different lengths, or an empty `expected_hex`, give
/// `false`.
#[must_use]
pub fn verify(expected_hex: &str, received_hex: &str) -> bool {
    let (a, b) = (expected_hex.as_bytes(), received_hex.as_bytes());
    if a.is_empty() || a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| {
        acc | (x.to_ascii_lowercase() ^ y.to_ascii_lowercase())
    });
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5 example parameters (MD5, qop=auth).
    fn rfc2617() -> DigestParams<'static> {
        DigestParams {
            algorithm: Algorithm::Md5,
            username: "Mufasa",
            realm: "testrealm@host.com",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            uri: "/dir/index.html",
            method: "GET",
            qop: Some(Qop::Auth),
            nc: "00000001",
            cnonce: "0a4f113b",
            body: b"",
        }
    }

    /// RFC 7616 §3.9.1 example parameters.
    fn rfc7616(algorithm: Algorithm) -> DigestParams<'static> {
        DigestParams {
            algorithm,
            username: "Mufasa",
            realm: "http-auth@example.org",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            uri: "/dir/index.html",
            method: "GET",
            qop: Some(Qop::Auth),
            nc: "00000001",
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            body: b"",
        }
    }

    /// RFC 7616 §3.9.2 example parameters (SHA-512-256, UTF-8 username).
    fn rfc7616_sha512_256() -> DigestParams<'static> {
        DigestParams {
            algorithm: Algorithm::Sha512_256,
            username: "J\u{e4}s\u{f8}n Doe",
            realm: "api@example.org",
            nonce: "5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK",
            uri: "/doe.json",
            method: "GET",
            qop: Some(Qop::Auth),
            nc: "00000001",
            cnonce: "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
            body: b"",
        }
    }

    /// A SIP INVITE with an SDP body, for auth-int.
    const SDP: &[u8] = b"v=0\r\no=alice 2890844526 2890844526 IN IP4 host.example.com\r\n\
s=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\n";

    fn invite_auth_int(algorithm: Algorithm) -> DigestParams<'static> {
        DigestParams {
            algorithm,
            username: "alice",
            realm: "example.com",
            nonce: "a1b2c3d4e5",
            uri: "sip:bob@example.com",
            method: "INVITE",
            qop: Some(Qop::AuthInt),
            nc: "00000002",
            cnonce: "0a4f113b",
            body: SDP,
        }
    }

    #[test]
    fn rfc2617_section_3_5() {
        let p = rfc2617();
        let ha1_hex = ha1(p.algorithm, p.username, p.realm, "Circle Of Life");
        assert_eq!(ha1_hex, "939e7578ed9e3c518a452acee763bce9");
        let ha2_hex = ha2(p.algorithm, p.qop, p.method, p.uri, p.body);
        assert_eq!(ha2_hex, "39aff3a2bab6126f332b942af96d3366");
        let expected = "6629fae49393a05397450978507c4ef1";
        assert_eq!(p.expected_from_password("Circle Of Life"), expected);
        assert_eq!(p.expected_from_ha1(&ha1_hex), expected);
    }

    #[test]
    fn rfc7616_section_3_9_1_md5() {
        let p = rfc7616(Algorithm::Md5);
        assert_eq!(
            p.expected_from_password("Circle of Life"),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn rfc7616_section_3_9_1_sha256() {
        let p = rfc7616(Algorithm::Sha256);
        assert_eq!(
            p.expected_from_password("Circle of Life"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    /// RFC 7616 §3.9.2 as corrected by erratum 4897: the RFC text's
    /// userhash "488869477bf2..." and response "ae66e67d6b42...79dd" were
    /// computed with a pre-standard SHA-512/256 and are not reproducible
    /// with FIPS 180-4 SHA-512/256. The erratum's values below also match
    /// python3 `hashlib.new("sha512_256", ...)`.
    #[test]
    fn rfc7616_section_3_9_2_sha512_256_errata_4897() {
        let p = rfc7616_sha512_256();
        assert_eq!(
            userhash(p.algorithm, p.username, p.realm),
            "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
        );
        let got = p.expected_from_password("Secret, or not?");
        assert_eq!(
            got,
            "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
        );
        assert_ne!(
            got,
            "ae66e67d6b427bd3f120414a82e4acff38e8ecd9101d6c861229025f607a79dd"
        );
    }

    /// RFC 2069 §2.4 example (no qop), value as corrected by the RFC 2069
    /// erratum; python3 hashlib gives the same.
    #[test]
    fn rfc2069_no_qop() {
        let p = DigestParams {
            qop: None,
            nc: "",
            cnonce: "",
            ..rfc2617()
        };
        assert_eq!(
            p.expected_from_password("CircleOfLife"),
            "1949323746fe6a43ef61f9606e7febea"
        );
        // nc and cnonce are ignored without qop.
        let q = DigestParams {
            nc: "00000009",
            cnonce: "zzz",
            ..p
        };
        assert_eq!(
            q.expected_from_password("CircleOfLife"),
            p.expected_from_password("CircleOfLife")
        );
    }

    /// MD5-sess over the RFC 2617 §3.5 parameters. Expected values from
    /// python3: b = md5(b"Mufasa:testrealm@host.com:Circle Of Life").hexdigest();
    /// s = md5(f"{b}:{nonce}:0a4f113b".encode()).hexdigest();
    /// md5(f"{s}:{nonce}:00000001:0a4f113b:auth:{ha2}".encode()).hexdigest().
    #[test]
    fn md5_sess() {
        let p = DigestParams {
            algorithm: Algorithm::Md5Sess,
            ..rfc2617()
        };
        let base = ha1(p.algorithm, p.username, p.realm, "Circle Of Life");
        assert_eq!(base, "939e7578ed9e3c518a452acee763bce9");
        let sess = effective_ha1(p.algorithm, &base, p.nonce, p.cnonce);
        assert_eq!(sess, "5edb191b66dce1584c16cb7e7346fcee");
        assert_eq!(sess, ha1_sess(p.algorithm, &base, p.nonce, p.cnonce));
        let expected = "8e3825c57e897f5a0dec6c2d4e5059d0";
        assert_eq!(p.expected_from_password("Circle Of Life"), expected);
        assert_eq!(p.expected_from_ha1(&base), expected);
    }

    /// SHA-256-sess over the RFC 7616 §3.9.1 parameters; expected values
    /// from python3 hashlib.sha256 computed the same way as in `md5_sess`.
    #[test]
    fn sha256_sess() {
        let p = rfc7616(Algorithm::Sha256Sess);
        let base = ha1(p.algorithm, p.username, p.realm, "Circle of Life");
        assert_eq!(
            ha1_sess(p.algorithm, &base, p.nonce, p.cnonce),
            "bca21f4c7d7e8bf70d96361085370c7d219947abc1b8cd628f710917b89bed5b"
        );
        assert_eq!(
            p.expected_from_password("Circle of Life"),
            "2fd51b3a77ad75bad6afad6003e818d767133c46d9e2749e7f5232ae1ea3efd7"
        );
    }

    /// auth-int with an SDP body. Expected values from python3:
    /// hb = H(SDP); ha2 = H(f"INVITE:sip:bob@example.com:{hb}");
    /// ha1 = H(b"alice:example.com:secret");
    /// H(f"{ha1}:a1b2c3d4e5:00000002:0a4f113b:auth-int:{ha2}"),
    /// with H = hashlib md5 / sha256 / sha512_256 hexdigest.
    #[test]
    fn auth_int_with_body() {
        let cases = [
            (
                Algorithm::Md5,
                "f59af60f1abcf99dacc2f942e3938415",
                "443eca718a3c99c8d79779f9a0a54a2b",
            ),
            (
                Algorithm::Sha256,
                "cda27498242e1f9cb0f2cff31216d4b93e06187ba22b4f4eb0daa769825efc1b",
                "65d371142944f017afad2cf7212df3279273df069df13810de025943916fc16c",
            ),
            (
                Algorithm::Sha512_256,
                "6187611b32cb043bac7a03f42b568673d9b4844f933be8db62a0f64756f88215",
                "3e5f872c5314ac1c8b504940bdf9cbaba7e87a1384029608897e374bd7a33f90",
            ),
        ];
        for (alg, want_ha2, want_response) in cases {
            let p = invite_auth_int(alg);
            assert_eq!(ha2(alg, p.qop, p.method, p.uri, p.body), want_ha2);
            assert_eq!(p.expected_from_password("secret"), want_response);
        }
    }

    /// SHA-512-256-sess with auth-int and an empty body (H("") is hashed).
    /// Expected value from python3 hashlib.new("sha512_256") as above, with
    /// ha2 = H(f"REGISTER:sip:example.com:{H(b'')}") and nc 00000001.
    #[test]
    fn sha512_256_sess_auth_int_empty_body() {
        let p = DigestParams {
            algorithm: Algorithm::Sha512_256Sess,
            uri: "sip:example.com",
            method: "REGISTER",
            nc: "00000001",
            body: b"",
            ..invite_auth_int(Algorithm::Sha512_256Sess)
        };
        assert_eq!(
            p.expected_from_password("secret"),
            "16dea714b7b4542bf4faeefb4cdeb9a4620afc1cdb5d912ca01a715fceababbf"
        );
    }

    #[test]
    fn body_ignored_without_auth_int() {
        let p = rfc2617();
        let with_body = DigestParams { body: SDP, ..p };
        assert_eq!(
            with_body.expected_from_password("Circle Of Life"),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    #[test]
    fn effective_ha1_passes_through_when_not_sess() {
        let base = "939E7578ED9E3C518A452ACEE763BCE9";
        assert_eq!(
            effective_ha1(Algorithm::Md5, base, "n", "c"),
            "939e7578ed9e3c518a452acee763bce9"
        );
    }

    #[test]
    fn uppercase_hex_inputs_are_lowercased() {
        let p = rfc2617();
        assert_eq!(
            p.expected_from_ha1("939E7578ED9E3C518A452ACEE763BCE9"),
            "6629fae49393a05397450978507c4ef1"
        );
        let long = "AB".repeat(100);
        let a = ha1_sess(Algorithm::Sha256Sess, &long, "n", "c");
        let b = ha1_sess(Algorithm::Sha256Sess, &long.to_ascii_lowercase(), "n", "c");
        assert_eq!(a, b);
    }

    #[test]
    fn outputs_are_lowercase_hex_of_hex_len() {
        for alg in Algorithm::ALL {
            let out = ha1(alg, "u", "r", "p");
            assert_eq!(out.len(), alg.hex_len());
            assert!(out.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        }
    }

    #[test]
    fn hex_encoder() {
        assert_eq!(to_hex(&[]), "");
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa0, 0xff, 0x12]), "000fa0ff12");
        let all: Vec<u8> = (0..=255).collect();
        let want: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(to_hex(&all), want);
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for alg in Algorithm::ALL {
            let p = DigestParams {
                algorithm: alg,
                username: "",
                realm: "",
                nonce: "",
                uri: "",
                method: "",
                qop: Some(Qop::AuthInt),
                nc: "",
                cnonce: "",
                body: &[0xff, 0x00],
            };
            assert_eq!(
                p.expected_from_ha1("not hex \u{1f600}").len(),
                alg.hex_len()
            );
            assert_eq!(p.expected_from_ha1("").len(), alg.hex_len());
        }
    }

    #[test]
    fn algorithm_parse() {
        let cases = [
            ("MD5", Algorithm::Md5),
            ("md5", Algorithm::Md5),
            ("MD5-sess", Algorithm::Md5Sess),
            ("md5-SESS", Algorithm::Md5Sess),
            ("SHA-256", Algorithm::Sha256),
            ("sha-256", Algorithm::Sha256),
            ("SHA-256-sess", Algorithm::Sha256Sess),
            ("Sha-256-Sess", Algorithm::Sha256Sess),
            ("SHA-512-256", Algorithm::Sha512_256),
            ("sha-512-256", Algorithm::Sha512_256),
            ("SHA-512-256-sess", Algorithm::Sha512_256Sess),
            ("SHA-512-256-SESS", Algorithm::Sha512_256Sess),
        ];
        for (name, alg) in cases {
            assert_eq!(Algorithm::parse(name), Some(alg), "{name}");
        }
        for bad in [
            "",
            "SHA256",
            "SHA-512",
            "SHA-1",
            "MD5 ",
            " MD5",
            "md5-sess2",
            "AKAv1-MD5",
        ] {
            assert_eq!(Algorithm::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn algorithm_properties() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.as_str()), Some(alg));
            assert_eq!(alg.to_string(), alg.as_str());
        }
        assert_eq!(Algorithm::default(), Algorithm::Md5);
        assert_eq!(Algorithm::Sha512_256Sess.as_str(), "SHA-512-256-sess");
        let sess: Vec<bool> = Algorithm::ALL.iter().map(|a| a.is_sess()).collect();
        assert_eq!(sess, [false, true, false, true, false, true]);
        let lens: Vec<usize> = Algorithm::ALL.iter().map(|a| a.hex_len()).collect();
        assert_eq!(lens, [32, 32, 64, 64, 64, 64]);
    }

    #[test]
    fn qop_parse() {
        assert_eq!(Qop::parse("auth"), Some(Qop::Auth));
        assert_eq!(Qop::parse("AUTH"), Some(Qop::Auth));
        assert_eq!(Qop::parse("auth-int"), Some(Qop::AuthInt));
        assert_eq!(Qop::parse("Auth-Int"), Some(Qop::AuthInt));
        for bad in ["", "auth-conf", "auth,auth-int", " auth", "authint"] {
            assert_eq!(Qop::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Qop::Auth.as_str(), "auth");
        assert_eq!(Qop::AuthInt.to_string(), "auth-int");
    }

    #[test]
    fn verify_compares() {
        let good = "6629fae49393a05397450978507c4ef1";
        assert!(verify(good, good));
        assert!(verify(good, "6629FAE49393A05397450978507C4EF1"));
        assert!(verify("6629FAE49393A05397450978507C4EF1", good));
        assert!(!verify(good, "6629fae49393a05397450978507c4ef2"));
        assert!(!verify(good, "7629fae49393a05397450978507c4ef1"));
        assert!(!verify(good, "6629fae49393a05397450978507c4ef"));
        assert!(!verify(good, "6629fae49393a05397450978507c4ef10"));
        assert!(!verify(good, ""));
        assert!(!verify("", ""));
        // Non-ASCII and punctuation are compared bytewise, not folded.
        assert!(!verify("a@", "a`"));
        assert!(!verify("\u{e4}", "\u{c4}"));
    }
}
