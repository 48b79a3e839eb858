//! PASSporTs (RFC 8225) with the SHAKEN extension (RFC 8588) and the Identity header that
//! carries them (RFC 8224 §4): building the compact form, and taking a received header apart.
//! No I/O and no clock: times come in as arguments.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value as Json;

/// What the signer puts in a PASSporT besides the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims<'a> {
    /// `attest`: "A", "B" or "C".
    pub attest: &'a str,
    /// `x5u` (header) and the Identity header's `info` parameter.
    pub x5u: &'a str,
    pub origid: &'a str,
    /// `orig.tn` and `dest.tn[0]`, digits without `+`.
    pub orig: &'a str,
    pub dest: &'a str,
    pub iat: i64,
}

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// `header.payload`, base64url without padding: the bytes ES256 signs (RFC 7515 §5.1). The
/// JSON members come in one fixed order (alg, ppt, typ, x5u; attest, dest, iat, orig,
/// origid), without white space, as OpenSIPS writes them: a verifier that rebuilds the
/// PASSporT from its claims, as OpenSIPS does, gets the same bytes.
pub fn unsigned(c: &Claims<'_>) -> String {
    let header = format!(
        "{{\"alg\":\"ES256\",\"ppt\":\"shaken\",\"typ\":\"passport\",\"x5u\":{}}}",
        Json::from(c.x5u)
    );
    let payload = format!(
        "{{\"attest\":{},\"dest\":{{\"tn\":[{}]}},\"iat\":{},\"orig\":{{\"tn\":{}}},\"origid\":{}}}",
        Json::from(c.attest),
        Json::from(c.dest),
        c.iat,
        Json::from(c.orig),
        Json::from(c.origid)
    );
    format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()))
}

/// The Identity header value for a signed PASSporT (`sig` is raw r‖s, 64 bytes).
pub fn identity_value(unsigned: &str, sig: &[u8], x5u: &str) -> String {
    format!("{unsigned}.{};info=<{x5u}>;alg=ES256;ppt=shaken", b64(sig))
}

/// A received Identity header, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The decoded JSON texts, as `$identity(header)` / `$identity(payload)` show them.
    pub header_text: String,
    pub payload_text: String,
    pub header: Json,
    pub payload: Json,
    pub signature: Vec<u8>,
    /// The `alg` and `ppt` header parameters, when present.
    pub alg_param: Option<String>,
    pub ppt_param: Option<String>,
}

/// Why a header could not be taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// A JSON member by name, names compared without regard to case (cJSON's lookup).
pub fn member<'a>(obj: &'a Json, name: &str) -> Option<&'a Json> {
    obj.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn decode(part: &str) -> Result<Vec<u8>, Invalid> {
    // Padding is tolerated (OpenSIPS' decoder takes it), never required.
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| Invalid)
}

fn json_text(part: &str) -> Result<(String, Json), Invalid> {
    let bytes = decode(part)?;
    let text = String::from_utf8(bytes).map_err(|_| Invalid)?;
    let json = serde_json::from_str(&text).map_err(|_| Invalid)?;
    Ok((text, json))
}

/// The `;`-separated parameters of a header, a `;` inside `<...>` or quotes not counting.
fn split_params(params: &str) -> impl Iterator<Item = &str> {
    let mut depth = (false, false); // (inside <>, inside "")
    params.split(move |c: char| {
        match c {
            '<' if !depth.1 => depth.0 = true,
            '>' if !depth.1 => depth.0 = false,
            '"' => depth.1 = !depth.1,
            _ => {}
        }
        c == ';' && !depth.0 && !depth.1
    })
}

/// Takes `header.payload.signature;params` apart (RFC 8224 §4.1): three non-empty parts, at
/// least one parameter, each part valid base64url, header and payload valid JSON.
pub fn parse(value: &str) -> Result<Parsed, Invalid> {
    let value = value.trim();
    let (header, rest) = value.split_once('.').ok_or(Invalid)?;
    let (payload, rest) = rest.split_once('.').ok_or(Invalid)?;
    let (sig, params) = rest.split_once(';').ok_or(Invalid)?;
    if header.is_empty() || payload.is_empty() || sig.is_empty() {
        return Err(Invalid);
    }
    let mut alg_param = None;
    let mut ppt_param = None;
    let mut any = false;
    for p in split_params(params) {
        let (name, val) = p.split_once('=').unwrap_or((p, ""));
        let name = name.trim();
        if name.is_empty() {
            return Err(Invalid);
        }
        any = true;
        let val = val.trim().trim_matches('"').to_owned();
        match name {
            "alg" => alg_param = Some(val),
            "ppt" => ppt_param = Some(val),
            _ => {}
        }
    }
    if !any {
        return Err(Invalid);
    }
    let (header_text, header) = json_text(header)?;
    let (payload_text, payload) = json_text(payload)?;
    let signature = decode(sig)?;
    Ok(Parsed {
        header_text,
        payload_text,
        header,
        payload,
        signature,
        alg_param,
        ppt_param,
    })
}

impl Parsed {
    pub fn x5u(&self) -> Option<&str> {
        member(&self.header, "x5u")?.as_str()
    }

    pub fn attest(&self) -> Option<&str> {
        member(&self.payload, "attest")?.as_str()
    }

    pub fn origid(&self) -> Option<&str> {
        member(&self.payload, "origid")?.as_str()
    }

    /// `orig.tn` (any JSON type).
    pub fn orig_tn(&self) -> Option<&Json> {
        let orig = member(&self.payload, "orig").filter(|o| o.is_object())?;
        member(orig, "tn")
    }

    /// `dest.tn[0]` (any JSON type).
    pub fn dest_tn(&self) -> Option<&Json> {
        let dest = member(&self.payload, "dest").filter(|o| o.is_object())?;
        member(dest, "tn")?.as_array()?.first()
    }

    /// `iat` when it is a number, in whole seconds.
    pub fn iat(&self) -> Option<i64> {
        member(&self.payload, "iat")?.as_f64().map(|f| f as i64)
    }

    /// Whether the claims SHAKEN requires are there with the right types (RFC 8588 §6):
    /// alg ES256, ppt shaken, typ passport, and non-empty x5u, attest, dest, orig, origid
    /// strings plus a numeric iat.
    pub fn claims_ok(&self) -> bool {
        let fixed = |name: &str, want: &str| {
            member(&self.header, name).and_then(Json::as_str) == Some(want)
        };
        let text = |v: Option<&str>| v.is_some_and(|s| !s.is_empty());
        fixed("alg", "ES256")
            && fixed("ppt", "shaken")
            && fixed("typ", "passport")
            && text(self.x5u())
            && text(self.attest())
            && text(self.dest_tn().and_then(Json::as_str))
            && member(&self.payload, "iat").is_some_and(Json::is_number)
            && text(self.orig_tn().and_then(Json::as_str))
            && text(self.origid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims<'static> {
        Claims {
            attest: "A",
            x5u: "https://cert.example.org/sp.pem",
            origid: "123e4567-e89b-12d3-a456-426655440000",
            orig: "12155551212",
            dest: "12355551212",
            iat: 1443208345,
        }
    }

    #[test]
    fn unsigned_form_is_the_rfc_8588_example_layout() {
        let u = unsigned(&claims());
        let (h, p) = u.split_once('.').expect("two parts");
        let h = String::from_utf8(URL_SAFE_NO_PAD.decode(h).expect("b64")).expect("utf8");
        let p = String::from_utf8(URL_SAFE_NO_PAD.decode(p).expect("b64")).expect("utf8");
        assert_eq!(
            h,
            r#"{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"https://cert.example.org/sp.pem"}"#
        );
        assert_eq!(
            p,
            r#"{"attest":"A","dest":{"tn":["12355551212"]},"iat":1443208345,"orig":{"tn":"12155551212"},"origid":"123e4567-e89b-12d3-a456-426655440000"}"#
        );
        assert!(!u.contains('='));
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut c = claims();
        c.origid = "a\"b\\c";
        let u = unsigned(&c);
        let p = u.split_once('.').expect("two parts").1;
        let p = String::from_utf8(URL_SAFE_NO_PAD.decode(p).expect("b64")).expect("utf8");
        assert!(p.contains(r#""origid":"a\"b\\c""#), "{p}");
    }

    #[test]
    fn a_built_header_parses_back() {
        let c = claims();
        let value = identity_value(&unsigned(&c), &[7u8; 64], c.x5u);
        assert!(value.ends_with(";info=<https://cert.example.org/sp.pem>;alg=ES256;ppt=shaken"));
        let p = parse(&value).expect("parses");
        assert!(p.claims_ok());
        assert_eq!(p.signature, vec![7u8; 64]);
        assert_eq!(p.alg_param.as_deref(), Some("ES256"));
        assert_eq!(p.ppt_param.as_deref(), Some("shaken"));
        assert_eq!(p.x5u(), Some(c.x5u));
        let odd = identity_value(&unsigned(&c), &[7u8; 64], "http://a/;;b");
        let p = parse(&odd).expect("a `;` inside <> is part of the URL");
        assert_eq!(p.ppt_param.as_deref(), Some("shaken"));
        assert_eq!(p.attest(), Some("A"));
        assert_eq!(p.iat(), Some(1443208345));
        assert_eq!(p.orig_tn().and_then(Json::as_str), Some("12155551212"));
        assert_eq!(p.dest_tn().and_then(Json::as_str), Some("12355551212"));
    }

    #[test]
    fn malformed_headers_are_invalid() {
        let good = identity_value(&unsigned(&claims()), &[1u8; 64], "https://x");
        let (jwt, params) = good.split_once(';').expect("params");
        let (hp, _sig) = jwt.rsplit_once('.').expect("sig");
        for bad in [
            String::new(),
            "abc".to_owned(),
            jwt.to_owned(),
            format!("{hp}.;{params}"),
            format!(".{jwt};{params}"),
            format!("{hp}.%%%;{params}"),
            format!("e30.e30.AAAA;{params}").replace("e30.e30", "bm90IGpzb24.e30"),
            format!("{jwt};"),
        ] {
            assert_eq!(parse(&bad), Err(Invalid), "{bad}");
        }
        // Well-formed but missing claims: parses, fails the claim check.
        let p = parse("e30.e30.AAAA;ppt=shaken").expect("parses");
        assert!(!p.claims_ok());
    }

    #[test]
    fn claim_types_are_checked() {
        let c = claims();
        let (h, _) = unsigned(&c)
            .split_once('.')
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .expect("x");
        let payload =
            b64(br#"{"attest":"A","dest":{"tn":"123"},"iat":1,"orig":{"tn":"1"},"origid":"x"}"#);
        let p = parse(&format!("{h}.{payload}.AAAA;ppt=shaken")).expect("parses");
        assert!(p.dest_tn().is_none());
        assert!(!p.claims_ok());
        let payload = b64(
            br#"{"ATTEST":"B","dest":{"tn":["123"]},"iat":"1","orig":{"tn":"1"},"origid":"x"}"#,
        );
        let p = parse(&format!("{h}.{payload}.AAAA;ppt=shaken")).expect("parses");
        assert_eq!(p.attest(), Some("B"));
        assert!(!p.claims_ok(), "iat must be a number");
    }
}
