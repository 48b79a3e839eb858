//! The name table: script names (with OpenSIPS' aliases), arities, and load-time checks of
//! literal arguments.

use std::sync::Arc;

use super::data::literal_int;
use super::{Prepared, TransformError, TransformOp, ip, regex_subst, strings};

macro_rules! table {
    ($($name:literal => $op:ident, $min:literal, $max:literal;)*) => {
        /// (name, op, min args, max args); the first entry of an op is its canonical name.
        static ENTRIES: &[(&str, TransformOp, usize, usize)] =
            &[$(($name, TransformOp::$op, $min, $max)),*];
        static NAMES: &[&str] = &[$($name),*];
    };
}

table! {
    "s.len" => SLen, 0, 0;
    "s.int" => SInt, 0, 0;
    "s.md5" => SMd5, 0, 0;
    "s.crc32" => SCrc32, 0, 0;
    "s.reverse" => SReverse, 0, 0;
    "s.substr" => SSubstr, 2, 2;
    "s.select" => SSelect, 2, 2;
    "s.encode.hexa" => SEncodeHexa, 0, 0;
    "s.decode.hexa" => SDecodeHexa, 0, 0;
    "s.escape.common" => SEscapeCommon, 0, 0;
    "s.unescape.common" => SUnescapeCommon, 0, 0;
    "s.escape.user" => SEscapeUser, 0, 0;
    "s.unescape.user" => SUnescapeUser, 0, 0;
    "s.escape.param" => SEscapeParam, 0, 0;
    "s.unescape.param" => SUnescapeParam, 0, 0;
    "rest.escape" => RestEscape, 0, 0;
    "rest.unescape" => RestUnescape, 0, 0;
    "s.tolower" => SToLower, 0, 0;
    "s.toupper" => SToUpper, 0, 0;
    "s.index" => SIndex, 1, 2;
    "s.rindex" => SRIndex, 1, 2;
    "s.fill.left" => SFillLeft, 2, 2;
    "s.fill.right" => SFillRight, 2, 2;
    "s.width" => SWidth, 1, 1;
    "s.trim" => STrim, 0, 0;
    "s.trimr" => STrimR, 0, 0;
    "s.triml" => STrimL, 0, 0;
    "s.dec2hex" => SDec2Hex, 0, 0;
    "s.hex2dec" => SHex2Dec, 0, 0;
    "s.b64encode" => SB64Encode, 0, 0;
    "s.b64decode" => SB64Decode, 0, 0;
    "s.xor" => SXor, 1, 1;
    "s.eval" => SEval, 0, 0;
    "s.date2unix" => SDate2Unix, 0, 0;
    "s.sha1" => SSha1, 0, 0;
    "s.sha224" => SSha224, 0, 0;
    "s.sha256" => SSha256, 0, 0;
    "s.sha384" => SSha384, 0, 0;
    "s.sha512" => SSha512, 0, 0;
    "s.sha1_hmac" => SSha1Hmac, 1, 1;
    "s.sha224_hmac" => SSha224Hmac, 1, 1;
    "s.sha256_hmac" => SSha256Hmac, 1, 1;
    "s.sha384_hmac" => SSha384Hmac, 1, 1;
    "s.sha512_hmac" => SSha512Hmac, 1, 1;
    "uri.user" => UriUser, 0, 0;
    "uri.host" => UriHost, 0, 0;
    "uri.domain" => UriHost, 0, 0;
    "uri.passwd" => UriPasswd, 0, 0;
    "uri.port" => UriPort, 0, 0;
    "uri.params" => UriParams, 0, 0;
    "uri.param" => UriParam, 1, 1;
    "uri.headers" => UriHeaders, 0, 0;
    "uri.transport" => UriTransport, 0, 0;
    "uri.ttl" => UriTtl, 0, 0;
    "uri.uparam" => UriUParam, 0, 0;
    "uri.maddr" => UriMaddr, 0, 0;
    "uri.method" => UriMethod, 0, 0;
    "uri.lr" => UriLr, 0, 0;
    "uri.r2" => UriR2, 0, 0;
    "uri.schema" => UriSchema, 0, 0;
    "via.name" => ViaName, 0, 0;
    "via.version" => ViaVersion, 0, 0;
    "via.transport" => ViaTransport, 0, 0;
    "via.host" => ViaHost, 0, 0;
    "via.domain" => ViaHost, 0, 0;
    "via.port" => ViaPort, 0, 0;
    "via.comment" => ViaComment, 0, 0;
    "via.params" => ViaParams, 0, 0;
    "via.param" => ViaParam, 1, 1;
    "via.branch" => ViaBranch, 0, 0;
    "via.received" => ViaReceived, 0, 0;
    "via.rport" => ViaRport, 0, 0;
    "param.value" => ParamValue, 1, 1;
    "param.exist" => ParamExist, 1, 1;
    "param.exists" => ParamExist, 1, 1;
    "param.valueat" => ParamValueAt, 1, 1;
    "param.name" => ParamName, 1, 1;
    "param.count" => ParamCount, 0, 0;
    "nameaddr.name" => NameaddrName, 0, 1;
    "nameaddr.uri" => NameaddrUri, 0, 1;
    "nameaddr.len" => NameaddrLen, 0, 1;
    "nameaddr.param" => NameaddrParam, 1, 2;
    "nameaddr.params" => NameaddrParams, 0, 1;
    "ip.pton" => IpPton, 0, 0;
    "ip.ntop" => IpNtop, 0, 0;
    "ip.isip" => IpIsIp, 0, 0;
    "ip.isip4" => IpIsIp4, 0, 0;
    "ip.isip6" => IpIsIp6, 0, 0;
    "ip.family" => IpFamily, 0, 0;
    "ip.resolve" => IpResolve, 0, 0;
    "ip.resolve4" => IpResolve4, 0, 0;
    "ip.resolve6" => IpResolve6, 0, 0;
    "ip.isprivate" => IpIsPrivate, 0, 0;
    "ip.matches" => IpMatches, 1, 1;
    "csv.count" => CsvCount, 0, 0;
    "csv.value" => CsvValue, 1, 1;
    "re.subst" => ReSubst, 1, 1;
    "sdp.line" => SdpLine, 1, 2;
    "sdp.stream" => SdpStream, 1, 1;
    "sdp.stream-delete" => SdpStreamDelete, 1, 1;
}

pub(super) fn all() -> &'static [&'static str] {
    NAMES
}

pub(super) fn canonical(op: TransformOp) -> &'static str {
    ENTRIES.iter().find(|e| e.1 == op).map_or("?", |e| e.0)
}

fn arity(op: TransformOp) -> (usize, usize) {
    ENTRIES
        .iter()
        .find(|e| e.1 == op)
        .map_or((0, 0), |e| (e.2, e.3))
}

pub(super) fn lookup(name: &str, nargs: usize) -> Result<TransformOp, TransformError> {
    let wanted = name.trim();
    let Some(&(_, op, _, _)) = ENTRIES.iter().find(|e| e.0.eq_ignore_ascii_case(wanted)) else {
        if let Some((base, index)) = split_inline_index(wanted) {
            return Err(TransformError::BadArg {
                name: base,
                why: format!(
                    "the index '{index}' must be passed as the first argument (see split_inline_index)"
                ),
            });
        }
        return Err(TransformError::Unknown(wanted.to_owned()));
    };
    check_arity(op, nargs)?;
    Ok(op)
}

pub(super) fn check_arity(op: TransformOp, got: usize) -> Result<(), TransformError> {
    let (min, max) = arity(op);
    if (min..=max).contains(&got) {
        return Ok(());
    }
    let expected = if min == max {
        min.to_string()
    } else {
        format!("{min} or {max}")
    };
    Err(TransformError::Arity {
        name: canonical(op).to_owned(),
        expected,
        got,
    })
}

/// OpenSIPS' `nameaddr.[idx.]op` form: `nameaddr.1.uri` → `("nameaddr.uri", "1")`; the index
/// (a number or a variable) is then passed as an extra first argument to
/// [`TransformOp::lookup`] / [`TransformOp::compile`] / `apply`. `None` for any other name.
pub fn split_inline_index(name: &str) -> Option<(String, &str)> {
    let name = name.trim();
    let class = name.get(..9)?;
    if !class.eq_ignore_ascii_case("nameaddr.") {
        return None;
    }
    let rest = name.get(9..)?;
    let dot = rest.rfind('.')?;
    let (index, op) = (rest.get(..dot)?.trim(), rest.get(dot + 1..)?.trim());
    if index.is_empty() || op.is_empty() {
        return None;
    }
    Some((format!("nameaddr.{op}"), index))
}

/// Validates the literal arguments of `op` and returns what can be precomputed from them.
pub(super) fn check_literals(op: TransformOp, args: &[Option<&str>]) -> Result<Prepared, String> {
    use TransformOp::*;
    let lit = |i: usize| args.get(i).copied().flatten();
    let number = |i: usize| -> Result<Option<i64>, String> {
        match lit(i) {
            None => Ok(None),
            Some(s) => literal_int(s)
                .map(Some)
                .ok_or_else(|| format!("'{s}' is not a number")),
        }
    };
    let nonempty = |i: usize, what: &str| -> Result<(), String> {
        match lit(i) {
            Some("") => Err(format!("empty {what}")),
            _ => Ok(()),
        }
    };
    match op {
        SSubstr => {
            number(0)?;
            number(1)?;
        }
        SSelect => {
            number(0)?;
            match lit(1) {
                None => return Err("the separator must be a literal character".into()),
                Some(s) if s.len() != 1 => {
                    return Err(format!("the separator '{s}' must be a single character"));
                }
                Some(_) => {}
            }
        }
        SIndex | SRIndex => {
            nonempty(0, "needle")?;
            number(1)?;
        }
        SFillLeft | SFillRight => {
            let Some(pad) = lit(0) else {
                return Err("the pad must be a literal (variables are not allowed)".into());
            };
            let Some(pad) = strings::normalize_pad(pad) else {
                return Err("empty pad (quote it, e.g. ' ')".into());
            };
            match number(1)? {
                None => return Err("the length must be a literal number".into()),
                Some(n) if n > strings::MAX_LEN => {
                    return Err(format!("length {n} exceeds {}", strings::MAX_LEN));
                }
                Some(_) => {}
            }
            return Ok(Prepared::Pad(Arc::from(pad)));
        }
        SWidth => match number(0)? {
            Some(n) if n <= 0 => return Err(format!("width {n} must be at least 1")),
            Some(n) if n > strings::MAX_LEN => {
                return Err(format!("width {n} exceeds {}", strings::MAX_LEN));
            }
            _ => {}
        },
        SXor => nonempty(0, "secret")?,
        UriParam | ViaParam | ParamValue | ParamExist => nonempty(0, "parameter name")?,
        ParamValueAt | ParamName | CsvValue => {
            number(0)?;
        }
        SdpLine => {
            if let Some(k) = lit(0)
                && k.len() != 1
            {
                return Err(format!("the line type '{k}' must be a single letter"));
            }
            number(1)?;
        }
        SdpStream | SdpStreamDelete => nonempty(0, "media type or index")?,
        NameaddrName | NameaddrUri | NameaddrLen | NameaddrParams => {
            number(0)?;
        }
        NameaddrParam => {
            if args.len() == 2 {
                number(0)?;
                nonempty(1, "parameter name")?;
            } else {
                nonempty(0, "parameter name")?;
            }
        }
        IpMatches => {
            if let Some(s) = lit(0) {
                let net = ip::Net::parse(s)
                    .ok_or_else(|| format!("'{s}' is not an IP/prefix-length network"))?;
                return Ok(Prepared::Net(net));
            }
        }
        ReSubst => {
            if let Some(s) = lit(0) {
                let subst = regex_subst::Subst::parse(s)?;
                return Ok(Prepared::Subst(Arc::new(subst)));
            }
        }
        _ => {}
    }
    Ok(Prepared::None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_op_has_a_name_and_names_resolve() {
        for (name, op, min, max) in ENTRIES {
            assert!(min <= max);
            assert_eq!(lookup(name, *min), Ok(*op));
            assert_eq!(lookup(name, *max), Ok(*op));
            assert!(NAMES.contains(&canonical(*op)));
        }
        assert_eq!(NAMES.len(), ENTRIES.len());
    }

    #[test]
    fn names_are_case_insensitive_and_aliases_work() {
        // OpenSIPS compares class and op names with strncasecmp.
        assert_eq!(lookup("S.LEN", 0), Ok(TransformOp::SLen));
        assert_eq!(lookup(" uri.domain ", 0), Ok(TransformOp::UriHost));
        assert_eq!(lookup("via.domain", 0), Ok(TransformOp::ViaHost));
        assert_eq!(lookup("param.exists", 1), Ok(TransformOp::ParamExist));
        assert_eq!(canonical(TransformOp::UriHost), "uri.host");
    }

    #[test]
    fn unknown_and_arity() {
        assert_eq!(
            lookup("sdp.lines", 2),
            Err(TransformError::Unknown("sdp.lines".into()))
        );
        assert_eq!(lookup("sdp.line", 2), Ok(TransformOp::SdpLine));
        assert!(matches!(
            lookup("sdp.line", 3),
            Err(TransformError::Arity { .. })
        ));
        assert_eq!(lookup("s", 0), Err(TransformError::Unknown("s".into())));
        assert_eq!(
            lookup("s.len", 1),
            Err(TransformError::Arity {
                name: "s.len".into(),
                expected: "0".into(),
                got: 1
            })
        );
        assert_eq!(lookup("nameaddr.param", 2), Ok(TransformOp::NameaddrParam));
        assert!(lookup("nameaddr.param", 0).is_err());
        assert!(matches!(
            lookup("nameaddr.1.uri", 0),
            Err(TransformError::BadArg { .. })
        ));
    }

    #[test]
    fn inline_index() {
        assert_eq!(
            split_inline_index("nameaddr.1.uri"),
            Some(("nameaddr.uri".into(), "1"))
        );
        assert_eq!(
            split_inline_index("NameAddr.-1.name"),
            Some(("nameaddr.name".into(), "-1"))
        );
        assert_eq!(
            split_inline_index("nameaddr.$var(i).param"),
            Some(("nameaddr.param".into(), "$var(i)"))
        );
        assert_eq!(split_inline_index("nameaddr.uri"), None);
        assert_eq!(split_inline_index("uri.1.user"), None);
        assert_eq!(split_inline_index("nameaddr..uri"), None);
    }

    #[test]
    fn literal_checks() {
        use TransformOp::*;
        assert!(check_literals(SSubstr, &[Some("1"), Some("-2")]).is_ok());
        assert!(check_literals(SSubstr, &[Some("a"), Some("2")]).is_err());
        assert!(check_literals(SSelect, &[Some("1"), Some(",")]).is_ok());
        assert!(check_literals(SSelect, &[Some("1"), Some(",,")]).is_err());
        assert!(check_literals(SIndex, &[Some(""), None]).is_err());
        assert!(check_literals(SIndex, &[None, Some("x")]).is_err());
        assert!(check_literals(SFillRight, &[Some("0"), None]).is_err());
        assert!(check_literals(SFillRight, &[Some("0"), Some("100000")]).is_err());
        assert!(check_literals(SWidth, &[Some("0")]).is_err());
        assert!(check_literals(SWidth, &[None]).is_ok());
        assert!(check_literals(SXor, &[Some("")]).is_err());
        assert!(check_literals(UriParam, &[Some("")]).is_err());
        assert!(check_literals(CsvValue, &[Some("x")]).is_err());
        assert!(check_literals(NameaddrUri, &[Some("x")]).is_err());
        assert!(check_literals(NameaddrParam, &[Some("1"), Some("tag")]).is_ok());
        assert!(check_literals(NameaddrParam, &[Some("tag")]).is_ok());
        assert!(check_literals(NameaddrParam, &[Some("x"), Some("tag")]).is_err());
        assert!(check_literals(IpMatches, &[Some("1.2.3.4")]).is_err());
        assert!(check_literals(ReSubst, &[Some("/a/b")]).is_err());
    }
}
