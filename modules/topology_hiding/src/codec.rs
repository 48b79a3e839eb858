//! The `thinfo` value: four fields (route set, remote Contact, flags, socket), each a 16-bit
//! little-endian length and its bytes, XOR-ed with the password (repeated over the whole
//! buffer), then written in OpenSIPS' base64 variant (`A–Z a–z 0–9 + .`, padding `-`) or in
//! base32 (RFC 4648 letters, padding `-`): the same bytes OpenSIPS' no-dialog mode produces
//! on x86.

const WORD64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+.";
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const PAD: u8 = b'-';

fn xor(buf: &mut [u8], passwd: &[u8]) {
    if passwd.is_empty() {
        return;
    }
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= passwd.get(i % passwd.len()).copied().unwrap_or(0);
    }
}

/// The encoded value of the four fields (each shorter than 32 KiB: longer ones are cut).
pub fn encode(fields: [&str; 4], passwd: &[u8], base32: bool) -> String {
    let mut buf = Vec::new();
    for f in fields {
        let b = f.as_bytes();
        let b = b.get(..b.len().min(i16::MAX as usize)).unwrap_or(b);
        let len = u16::try_from(b.len()).unwrap_or(0);
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(b);
    }
    xor(&mut buf, passwd);
    if base32 {
        to_base32(&buf)
    } else {
        to_word64(&buf)
    }
}

/// The four fields of an encoded value, or `None` when it does not decode.
pub fn decode(text: &str, passwd: &[u8], base32: bool) -> Option<[String; 4]> {
    let mut buf = if base32 {
        from_base32(text)?
    } else {
        from_word64(text)?
    };
    xor(&mut buf, passwd);
    let mut out: [String; 4] = Default::default();
    let mut pos = 0usize;
    for slot in &mut out {
        let len = u16::from_le_bytes([*buf.get(pos)?, *buf.get(pos + 1)?]);
        if len > i16::MAX as u16 {
            return None;
        }
        pos += 2;
        let field = buf.get(pos..pos + usize::from(len))?;
        *slot = String::from_utf8(field.to_vec()).ok()?;
        pos += usize::from(len);
    }
    Some(out)
}

/// topology_hiding's `C`: the Call-ID the other side sees, `prefix` + the XOR-ed Call-ID in
/// the base64 variant.
pub fn hide_call_id(call_id: &str, passwd: &[u8], prefix: &str) -> String {
    let mut buf = call_id.as_bytes().to_vec();
    xor(&mut buf, passwd);
    format!("{prefix}{}", to_word64(&buf))
}

/// The Call-ID behind one [`hide_call_id`] made; `None` for one it did not make.
pub fn reveal_call_id(text: &str, passwd: &[u8], prefix: &str) -> Option<String> {
    let rest = text.strip_prefix(prefix).filter(|r| !r.is_empty())?;
    let mut buf = from_word64(rest)?;
    xor(&mut buf, passwd);
    String::from_utf8(buf).ok().filter(|c| !c.is_empty())
}

fn to_word64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(WORD64.get(idx).copied().unwrap_or(b'A')));
            } else {
                out.push(char::from(PAD));
            }
        }
    }
    out
}

fn from_word64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        if c == PAD || c == b'=' {
            break;
        }
        let Some(v) = WORD64.iter().position(|x| *x == c) else {
            continue;
        };
        acc = (acc << 6) | u32::try_from(v).ok()?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

fn to_base32(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    for chunk in data.chunks(5) {
        let mut b = [0u8; 5];
        for (i, x) in chunk.iter().enumerate() {
            if let Some(slot) = b.get_mut(i) {
                *slot = *x;
            }
        }
        let n = b.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x));
        // Characters that carry data: ceil(8 * len / 5).
        let used = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < used {
                let idx = ((n >> (35 - 5 * i)) & 31) as usize;
                out.push(char::from(BASE32.get(idx).copied().unwrap_or(b'A')));
            } else {
                out.push(char::from(PAD));
            }
        }
    }
    out
}

fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 8 * 5);
    let (mut acc, mut bits) = (0u64, 0u32);
    for c in text.bytes() {
        if c == PAD || c == b'=' {
            break;
        }
        let up = c.to_ascii_uppercase();
        let v = BASE32.iter().position(|x| *x == up)?;
        acc = (acc << 5) | u64::try_from(v).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_in_both_schemes() {
        let fields = [
            "<sip:p1.example;lr>,<sip:p2.example;lr>",
            "sip:alice@192.0.2.1:5070;transport=tcp",
            "4",
            "udp:127.0.0.1:5060",
        ];
        for base32 in [false, true] {
            let enc = encode(fields, b"ToPoCtPaSS", base32);
            assert!(
                enc.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"+.-".contains(&c)),
                "{enc}"
            );
            let back = decode(&enc, b"ToPoCtPaSS", base32).unwrap();
            assert_eq!(back, fields.map(str::to_owned));
            // Another password does not give the fields back.
            assert_ne!(
                decode(&enc, b"other", base32),
                Some(fields.map(str::to_owned))
            );
        }
        assert_eq!(decode("", b"x", false), None);
        assert_eq!(decode("!!!!", b"x", true), None);
    }

    #[test]
    fn call_ids_hide_and_come_back() {
        let hidden = hide_call_id("abc-123@host", b"OpenSIPS", "DLGCH_");
        assert!(
            hidden.starts_with("DLGCH_") && !hidden.contains("abc"),
            "{hidden}"
        );
        assert_eq!(
            reveal_call_id(&hidden, b"OpenSIPS", "DLGCH_").as_deref(),
            Some("abc-123@host")
        );
        assert_eq!(reveal_call_id("abc-123@host", b"OpenSIPS", "DLGCH_"), None);
        assert_eq!(reveal_call_id("DLGCH_", b"OpenSIPS", "DLGCH_"), None);
    }

    #[test]
    fn the_alphabets_are_opensips() {
        // Three bytes 0xfb 0xff 0xbf use the last two letters of the base64 variant.
        assert_eq!(to_word64(&[0xfb, 0xff, 0xbf]), "+.+.");
        assert_eq!(to_word64(&[0]), "AA--");
        assert_eq!(from_word64("AA--").unwrap(), vec![0]);
        assert_eq!(to_base32(b"f"), "MY------");
        assert_eq!(to_base32(b"foobar"), "MZXW6YTBOI------");
        assert_eq!(from_base32("mzxw6ytboi------").unwrap(), b"foobar");
    }

    proptest::proptest! {
        #[test]
        fn any_fields_round_trip(
            a in ".{0,80}", b in ".{0,80}", c in "[0-9]{0,4}", d in ".{0,40}",
            pw in proptest::collection::vec(proptest::num::u8::ANY, 1..16),
            base32: bool,
        ) {
            let enc = encode([&a, &b, &c, &d], &pw, base32);
            proptest::prop_assert_eq!(decode(&enc, &pw, base32), Some([a, b, c, d]));
        }

        #[test]
        fn any_text_decodes_without_panicking(text in ".{0,200}", base32: bool) {
            let _ = decode(&text, b"ToPoCtPaSS", base32);
        }
    }
}
