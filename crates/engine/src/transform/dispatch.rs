//! Routes each op to its class module with its arguments decoded.

use super::data::{Text, TrValue, arg_int, arg_text};
use super::{Prepared, TransformOp};
use super::{codec, csv, date, hash, ip, nameaddr, params, regex_subst, sdp, strings, uri, via};
use crate::Value;

/// The dispatcher: NULL in gives NULL out; everything else goes to the class module.
pub(super) fn run(op: TransformOp, pre: &Prepared, input: &TrValue, args: &[Value]) -> TrValue {
    use TransformOp::*;
    let Some(t) = Text::of(input) else {
        return TrValue::Null;
    };
    match op {
        SLen => strings::len(&t),
        SInt => strings::int(input, &t),
        SReverse => strings::reverse(&t),
        SSubstr => match (arg_int(args, 0), arg_int(args, 1)) {
            (Some(off), Some(len)) => strings::substr(&t, off, len),
            _ => TrValue::Null,
        },
        SSelect => match (arg_int(args, 0), arg_text(args, 1)) {
            (Some(idx), Some(sep)) => match sep.as_bytes().first() {
                Some(&sep) => strings::select(&t, idx, sep),
                None => TrValue::Null,
            },
            _ => TrValue::Null,
        },
        SToLower => strings::change_case(input, &t, false),
        SToUpper => strings::change_case(input, &t, true),
        SIndex | SRIndex => {
            let Some(needle) = arg_text(args, 0) else {
                return TrValue::Null;
            };
            let start = match args.get(1) {
                None => None,
                Some(v) => match v.as_int() {
                    Some(i) => Some(i),
                    None => return TrValue::Null,
                },
            };
            strings::index(&t, needle.as_bytes(), start, op == SRIndex)
        }
        SFillLeft | SFillRight => {
            let owned;
            let pad: &[u8] = match pre {
                Prepared::Pad(p) => p,
                _ => match arg_text(args, 0) {
                    Some(p) => {
                        owned = strings::normalize_pad(&p);
                        match &owned {
                            Some(p) => p,
                            None => return TrValue::Null,
                        }
                    }
                    None => return TrValue::Null,
                },
            };
            match arg_int(args, 1) {
                Some(len) => strings::fill(input, &t, pad, len, op == SFillLeft),
                None => TrValue::Null,
            }
        }
        SWidth => match arg_int(args, 0) {
            Some(w) => strings::width(&t, w),
            None => TrValue::Null,
        },
        STrim => strings::trim(&t, true, true),
        STrimR => strings::trim(&t, false, true),
        STrimL => strings::trim(&t, true, false),
        SEval => TrValue::Null,
        SEncodeHexa => codec::encode_hexa(&t),
        SDecodeHexa => codec::decode_hexa(&t),
        SEscapeCommon => codec::escape_common(&t),
        SUnescapeCommon => codec::unescape_common(&t),
        SEscapeUser => codec::escape_user(&t),
        SEscapeParam => codec::escape_param(&t),
        SUnescapeUser | SUnescapeParam => codec::unescape_user(&t),
        RestEscape => codec::url_escape(&t),
        RestUnescape => codec::url_unescape(&t),
        SDec2Hex => codec::dec2hex(input, &t),
        SHex2Dec => codec::hex2dec(input, &t),
        SB64Encode => codec::b64encode(&t),
        SB64Decode => codec::b64decode(&t),
        SXor => match arg_text(args, 0) {
            Some(key) => codec::xor(&t, key.as_bytes()),
            None => TrValue::Null,
        },
        SDate2Unix => date::date2unix(&t),
        SMd5 | SCrc32 | SSha1 | SSha224 | SSha256 | SSha384 | SSha512 => hash::digest(op, &t),
        SSha1Hmac | SSha224Hmac | SSha256Hmac | SSha384Hmac | SSha512Hmac => {
            match arg_text(args, 0) {
                Some(key) => hash::hmac(op, &t, key.as_bytes()),
                None => TrValue::Null,
            }
        }
        UriUser | UriHost | UriPasswd | UriPort | UriParams | UriParam | UriHeaders
        | UriTransport | UriTtl | UriUParam | UriMaddr | UriMethod | UriLr | UriR2 | UriSchema => {
            uri::apply(op, &t, args)
        }
        ViaName | ViaVersion | ViaTransport | ViaHost | ViaPort | ViaComment | ViaParams
        | ViaParam | ViaBranch | ViaReceived | ViaRport => via::apply(op, &t, args),
        ParamValue | ParamExist | ParamValueAt | ParamName | ParamCount => {
            params::apply(op, &t, args)
        }
        NameaddrName | NameaddrUri | NameaddrLen | NameaddrParam | NameaddrParams => {
            nameaddr::apply(op, &t, args)
        }
        IpMatches => match pre {
            Prepared::Net(net) => ip::matches(&t, net),
            _ => match arg_text(args, 0).and_then(|n| ip::Net::parse(&n)) {
                Some(net) => ip::matches(&t, &net),
                None => TrValue::Null,
            },
        },
        IpPton | IpNtop | IpIsIp | IpIsIp4 | IpIsIp6 | IpFamily | IpResolve | IpResolve4
        | IpResolve6 | IpIsPrivate => ip::apply(op, &t),
        SdpLine => match (
            arg_text(args, 0),
            args.get(1).map_or(Some(0), Value::as_int),
        ) {
            (Some(kind), Some(n)) => sdp::line(&t, &kind, n),
            _ => TrValue::Null,
        },
        SdpStream => arg_text(args, 0).map_or(TrValue::Null, |a| sdp::stream(&t, &a)),
        SdpStreamDelete => arg_text(args, 0).map_or(TrValue::Null, |a| sdp::stream_delete(&t, &a)),
        CsvCount => csv::count(&t),
        CsvValue => match arg_int(args, 0) {
            Some(i) => csv::value(&t, i),
            None => TrValue::Null,
        },
        ReSubst => match pre {
            Prepared::Subst(s) => regex_subst::apply(s, &t, args.get(1..).unwrap_or(&[])),
            _ => match arg_text(args, 0) {
                Some(expr) => regex_subst::apply_dynamic(&expr, &t),
                None => TrValue::Null,
            },
        },
    }
}
