//! `s.*` encodings: hexa, the common/user/param escapes, base64, xor, dec2hex/hex2dec.

use super::data::{Text, TrValue, leading_int};

const HEX: &[u8; 16] = b"0123456789abcdef";

pub(super) use sip::hex_lower;

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

pub(super) fn encode_hexa(t: &Text<'_>) -> TrValue {
    TrValue::string(hex_lower(t.bytes()))
}

/// `{s.decode.hexa}`: pairs of hex digits; an odd last digit is ignored (OpenSIPS decodes
/// `len/2` pairs); any non-hex digit fails.
pub(super) fn decode_hexa(t: &Text<'_>) -> TrValue {
    let mut out = Vec::with_capacity(t.bytes().len() / 2);
    for pair in t.bytes().chunks_exact(2) {
        match (hex_val(pair[0]), hex_val(pair[1])) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => return TrValue::Null,
        }
    }
    TrValue::from_vec(out)
}

/// `{s.escape.common}`: backslash before `'`, `"` and `\`; NUL becomes `\0`.
pub(super) fn escape_common(t: &Text<'_>) -> TrValue {
    let b = t.bytes();
    if !b.iter().any(|c| matches!(c, b'\'' | b'"' | b'\\' | 0)) {
        return t.whole();
    }
    let mut out = Vec::with_capacity(b.len() + 8);
    for &c in b {
        match c {
            b'\'' | b'"' | b'\\' => out.extend_from_slice(&[b'\\', c]),
            0 => out.extend_from_slice(b"\\0"),
            _ => out.push(c),
        }
    }
    TrValue::from_vec(out)
}

/// `{s.unescape.common}`: the reverse; other backslashes are kept.
pub(super) fn unescape_common(t: &Text<'_>) -> TrValue {
    let b = t.bytes();
    if !b.contains(&b'\\') {
        return t.whole();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let decoded = match (c, b.get(i + 1)) {
            (b'\\', Some(&n @ (b'\'' | b'"' | b'\\'))) => Some(n),
            (b'\\', Some(b'0')) => Some(0),
            _ => None,
        };
        match decoded {
            Some(d) => {
                out.push(d);
                i += 2;
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    TrValue::from_vec(out)
}

/// RFC 3261 user part characters that need no escaping (unreserved / user-unreserved).
fn is_user_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&c)
}

/// RFC 3261 URI parameter characters that need no escaping (unreserved / param-unreserved).
fn is_param_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-_.!~*'()[]/:&+$".contains(&c)
}

/// `%xx` (lowercase) for every byte `keep` rejects; anything outside printable ASCII fails,
/// as in OpenSIPS' `escape_user` / `escape_param`.
fn percent_escape(t: &Text<'_>, keep: fn(u8) -> bool) -> TrValue {
    let b = t.bytes();
    if b.iter().any(|&c| !(32..=126).contains(&c)) {
        return TrValue::Null;
    }
    if b.iter().all(|&c| keep(c)) {
        return t.whole();
    }
    let mut out = String::with_capacity(b.len() * 3);
    for &c in b {
        if keep(c) {
            out.push(char::from(c));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 0xf)]));
        }
    }
    TrValue::string(out)
}

pub(super) fn escape_user(t: &Text<'_>) -> TrValue {
    percent_escape(t, is_user_char)
}

pub(super) fn escape_param(t: &Text<'_>) -> TrValue {
    percent_escape(t, is_param_char)
}

/// `{s.unescape.user}` / `{s.unescape.param}`: `%xx` decoded; a bad or truncated escape, or one
/// that decodes to something other than printable ASCII, fails.
pub(super) fn unescape_user(t: &Text<'_>) -> TrValue {
    let b = t.bytes();
    if !b.contains(&b'%') {
        return t.whole();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c != b'%' {
            out.push(c);
            i += 1;
            continue;
        }
        let hi = b.get(i + 1).copied().and_then(hex_val);
        let lo = b.get(i + 2).copied().and_then(hex_val);
        match (hi, lo) {
            (Some(h), Some(l)) if (32..=126).contains(&(h << 4 | l)) => out.push(h << 4 | l),
            _ => return TrValue::Null,
        }
        i += 3;
    }
    TrValue::from_vec(out)
}

/// `{rest.escape}` (rest_client, as libcurl's `curl_easy_escape`): every byte but the
/// RFC 3986 unreserved characters becomes `%XX` (upper-case hex).
pub(super) fn url_escape(t: &Text<'_>) -> TrValue {
    let b = t.bytes();
    let keep = |c: u8| c.is_ascii_alphanumeric() || b"-._~".contains(&c);
    if b.iter().all(|&c| keep(c)) {
        return t.whole();
    }
    let mut out = String::with_capacity(b.len() * 3);
    for &c in b {
        if keep(c) {
            out.push(char::from(c));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(c >> 4)].to_ascii_uppercase()));
            out.push(char::from(HEX[usize::from(c & 0xf)].to_ascii_uppercase()));
        }
    }
    TrValue::string(out)
}

/// `{rest.unescape}` (libcurl's `curl_easy_unescape`): every `%XX` decoded, anything else (a
/// `%` without two hex digits, `+`) kept as it is.
pub(super) fn url_unescape(t: &Text<'_>) -> TrValue {
    let b = t.bytes();
    if !b.contains(&b'%') {
        return t.whole();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hi = b.get(i + 1).copied().and_then(hex_val);
        let lo = b.get(i + 2).copied().and_then(hex_val);
        match (c, hi, lo) {
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    TrValue::from_vec(out)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `{s.b64encode}`: standard alphabet with `=` padding.
pub(super) fn b64encode(t: &Text<'_>) -> TrValue {
    let b = t.bytes();
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (k, &c)| acc | u32::from(c) << (16 - 8 * k));
        let emit = chunk.len() + 1;
        for k in 0..4 {
            if k < emit {
                out.push(char::from(B64[(n >> (18 - 6 * k) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    TrValue::string(out)
}

fn b64_val(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// `{s.b64decode}`, as lenient as OpenSIPS' `base64decode`: characters outside the alphabet
/// are skipped, an `=` in the third or fourth position of a group ends the data, and a trailing
/// partial group yields what it can.
pub(super) fn b64decode(t: &Text<'_>) -> TrValue {
    let b = t.bytes();
    let mut out = Vec::with_capacity(b.len() / 4 * 3 + 2);
    let mut i = 0;
    // The next sextet; in positions 3 and 4 an '=' ends decoding (Err).
    let mut next = |stop_at_pad: bool| -> Result<Option<u8>, ()> {
        while let Some(&c) = b.get(i) {
            i += 1;
            if stop_at_pad && c == b'=' {
                return Err(());
            }
            if let Some(v) = b64_val(c) {
                return Ok(Some(v));
            }
        }
        Ok(None)
    };
    while let (Ok(Some(c1)), Ok(Some(c2))) = (next(false), next(false)) {
        out.push(c1 << 2 | c2 >> 4);
        let Ok(Some(c3)) = next(true) else { break };
        out.push((c2 & 0x0f) << 4 | c3 >> 2);
        let Ok(Some(c4)) = next(true) else { break };
        out.push((c3 & 0x03) << 6 | c4);
    }
    TrValue::from_vec(out)
}

/// `{s.xor,secret}`: each byte xor-ed with the secret, repeated.
pub(super) fn xor(t: &Text<'_>, key: &[u8]) -> TrValue {
    if key.is_empty() {
        return TrValue::Null;
    }
    let out = t
        .bytes()
        .iter()
        .zip(key.iter().cycle())
        .map(|(a, k)| a ^ k)
        .collect();
    TrValue::from_vec(out)
}

/// `{s.dec2hex}`: lowercase hex of the integer; a string must be a whole decimal number.
/// Values in 32-bit range print as OpenSIPS' `%x` of an `int` does (-1 → `ffffffff`).
pub(super) fn dec2hex(input: &TrValue, t: &Text<'_>) -> TrValue {
    let n = match input {
        TrValue::Int(i) => *i,
        _ => match leading_int(t.bytes()) {
            (n, true) if t.bytes().iter().any(u8::is_ascii_digit) => n,
            _ => return TrValue::Null,
        },
    };
    let text = match i32::try_from(n) {
        Ok(small) => format!("{:x}", small as u32),
        Err(_) => format!("{n:x}"),
    };
    TrValue::string(text)
}

/// `{s.hex2dec}`: an integer stays; a string of hex digits (no `0x`) becomes its value, as a
/// 32-bit unsigned number like OpenSIPS' `hexstr2int`; the empty string is 0.
pub(super) fn hex2dec(input: &TrValue, t: &Text<'_>) -> TrValue {
    if let TrValue::Int(i) = input {
        return TrValue::Int(*i);
    }
    let mut n: u32 = 0;
    for &c in t.bytes() {
        match hex_val(c) {
            Some(v) => n = n.wrapping_shl(4) | u32::from(v),
            None => return TrValue::Null,
        }
    }
    TrValue::Int(i64::from(n))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Value;
    use crate::transform::TransformOp;
    use crate::transform::testing::s;

    fn ap(name: &str, input: &str) -> Value {
        crate::transform::testing::ap(name, input, &[])
    }

    #[test]
    fn hexa() {
        assert_eq!(ap("s.encode.hexa", "AZ\n"), s("415a0a"));
        assert_eq!(ap("s.encode.hexa", ""), s(""));
        assert_eq!(ap("s.decode.hexa", "415a0a"), s("AZ\n"));
        assert_eq!(ap("s.decode.hexa", "415A0"), s("AZ")); // odd digit ignored
        assert_eq!(ap("s.decode.hexa", "4g"), Value::Null);
        assert_eq!(ap("s.decode.hexa", "ff"), Value::Null); // not UTF-8 outside a chain
        assert_eq!(
            TransformOp::SEncodeHexa.apply(&Value::Int(10), &[]),
            s("3130")
        );
    }

    #[test]
    fn common_escapes() {
        assert_eq!(ap("s.escape.common", r#"a'b"c\d"#), s(r#"a\'b\"c\\d"#));
        assert_eq!(ap("s.escape.common", "a\u{0}b"), s("a\\0b"));
        assert_eq!(ap("s.escape.common", "plain"), s("plain"));
        assert_eq!(
            ap("s.unescape.common", r#"a\'b\"c\\d\0e\x"#),
            s("a'b\"c\\d\u{0}e\\x")
        );
        assert_eq!(ap("s.unescape.common", "end\\"), s("end\\"));
        assert_eq!(ap("s.unescape.common", ""), s(""));
    }

    #[test]
    fn user_and_param_escapes() {
        // Character sets from is_username_char() and escape_param() in OpenSIPS.
        assert_eq!(ap("s.escape.user", "a b@c:d%"), s("a%20b%40c%3ad%25"));
        assert_eq!(ap("s.escape.user", "+1;x=y?/"), s("+1;x=y?/"));
        assert_eq!(ap("s.escape.user", "é"), Value::Null);
        assert_eq!(ap("s.escape.user", "a\tb"), Value::Null);
        assert_eq!(ap("s.escape.param", "a b;c=d:[x]"), s("a%20b%3bc%3dd:[x]"));
        assert_eq!(
            ap("rest.escape", "a b&c=d/é~"),
            s("a%20b%26c%3Dd%2F%C3%A9~")
        );
        assert_eq!(ap("rest.escape", "plain-1.2_x~"), s("plain-1.2_x~"));
        assert_eq!(ap("rest.unescape", "a%20b%2Fc+%zz%4"), s("a b/c+%zz%4"));
        assert_eq!(ap("rest.unescape", "%C3%A9"), s("é"));
        assert_eq!(ap("s.unescape.user", "a%20b%3A"), s("a b:"));
        assert_eq!(ap("s.unescape.param", "a%3bb"), s("a;b"));
        assert_eq!(ap("s.unescape.user", "a%2"), Value::Null);
        assert_eq!(ap("s.unescape.user", "a%zz"), Value::Null);
        assert_eq!(ap("s.unescape.user", "a%0a"), Value::Null); // not printable
        assert_eq!(ap("s.unescape.user", "plain"), s("plain"));
    }

    #[test]
    fn base64() {
        assert_eq!(ap("s.b64encode", ""), s(""));
        assert_eq!(ap("s.b64encode", "f"), s("Zg=="));
        assert_eq!(ap("s.b64encode", "fo"), s("Zm8="));
        assert_eq!(ap("s.b64encode", "foo"), s("Zm9v"));
        assert_eq!(ap("s.b64encode", "foobar"), s("Zm9vYmFy"));
        assert_eq!(ap("s.b64decode", "Zm9vYmFy"), s("foobar"));
        assert_eq!(ap("s.b64decode", "Zg=="), s("f"));
        assert_eq!(ap("s.b64decode", "Zm8="), s("fo"));
        assert_eq!(ap("s.b64decode", "Zm 9\nv"), s("foo")); // junk skipped
        assert_eq!(ap("s.b64decode", "Zm9"), s("fo")); // partial group
        assert_eq!(ap("s.b64decode", "Zg==Zm9v"), s("f")); // '=' ends the data
        assert_eq!(ap("s.b64decode", "!!"), s(""));
        assert_eq!(
            TransformOp::SB64Encode.apply(&Value::Int(1), &[]),
            s("MQ==")
        );
    }

    #[test]
    fn xor_roundtrip() {
        let x = TransformOp::SXor;
        let k = [s("key")];
        let once = x.apply_chained(&TrValue::from(&s("hello")), &k);
        assert_eq!(x.apply_chained(&once, &k).into_value(), s("hello"));
        assert_eq!(x.apply(&s("AB"), &[s("\u{1}")]), s("@C"));
        assert_eq!(x.apply(&s("AB"), &[s("")]), Value::Null);
        assert_eq!(x.apply(&s("AB"), &[Value::Null]), Value::Null);
    }

    #[test]
    fn dec_hex() {
        assert_eq!(ap("s.dec2hex", "255"), s("ff"));
        assert_eq!(ap("s.dec2hex", "-1"), s("ffffffff"));
        assert_eq!(ap("s.dec2hex", "12a"), Value::Null);
        assert_eq!(ap("s.dec2hex", ""), Value::Null);
        assert_eq!(ap("s.dec2hex", "-"), Value::Null);
        assert_eq!(
            TransformOp::SDec2Hex.apply(&Value::Int(4096), &[]),
            s("1000")
        );
        assert_eq!(
            TransformOp::SDec2Hex.apply(&Value::Int(1 << 40), &[]),
            s("10000000000")
        );
        assert_eq!(ap("s.hex2dec", "ff"), Value::Int(255));
        assert_eq!(ap("s.hex2dec", "FFFFFFFF"), Value::Int(4294967295));
        assert_eq!(ap("s.hex2dec", "0x10"), Value::Null);
        assert_eq!(ap("s.hex2dec", ""), Value::Int(0));
        assert_eq!(
            TransformOp::SHex2Dec.apply(&Value::Int(10), &[]),
            Value::Int(10)
        );
    }
}
