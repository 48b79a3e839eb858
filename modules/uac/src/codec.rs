//! How uac keeps a replaced From/To URI in our Record-Route (OpenSIPS' `vsf`/`vst` parameters):
//! the original URI XORed with the new one (in its `<>`), XORed with `restore_passwd`, in
//! base64 with `-` for padding (a URI parameter cannot hold `=`). Either URI recovers the other
//! from it: the caller's side holds the original, the callee's the new one. And the parts of a
//! From/To value this needs.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `a` XOR `b`: as long as the longer, its tail kept as it is.
fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let mut out = long.to_vec();
    for (o, s) in out.iter_mut().zip(short) {
        *o ^= s;
    }
    out
}

fn with_password(mut buf: Vec<u8>, password: &[u8]) -> Vec<u8> {
    if !password.is_empty() {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= password[i % password.len()];
        }
    }
    buf
}

fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('-');
            }
        }
    }
    out
}

fn unbase64(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('-');
    let pads = text.len() - body.len();
    if pads > 2 || !text.len().is_multiple_of(4) {
        return None;
    }
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for c in body.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Some(out)
}

/// The parameter value for a replacement of `original` (bare) by `new_uri` (bare).
pub fn encode(original: &str, new_uri: &str, password: &str) -> String {
    let new = format!("<{new_uri}>");
    base64(&with_password(
        xor(original.as_bytes(), new.as_bytes()),
        password.as_bytes(),
    ))
}

/// The other URI of the pair, given one (`key`): the original from the new one in its `<>`,
/// or the new one (in its `<>`) from the bare original. `None` when the value does not
/// decode, or is shorter than `key` (the URI was changed on the way).
pub fn decode(value: &str, key: &str, password: &str) -> Option<String> {
    let buf = with_password(unbase64(value)?, password.as_bytes());
    if buf.len() < key.len() {
        return None;
    }
    let mut out = xor(&buf, key.as_bytes());
    while out.last() == Some(&0) {
        out.pop();
    }
    // The value comes back in a UA's Route header: what it decodes to goes into a header
    // only if it is a URI (in its `<>` when the key was bare), with no control characters.
    if out.is_empty() || out.iter().any(|b| *b < 0x20 || *b == 0x7f) {
        return None;
    }
    let text = String::from_utf8(out).ok()?;
    let bare = text
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(&text);
    let bracketed = text.starts_with('<');
    let key_bare = !key.starts_with('<');
    if bracketed != key_bare || bare.contains(['<', '>']) || sip::Uri::parse(bare).is_err() {
        return None;
    }
    Some(text)
}

/// A From/To value in parts: the display name (as written, with its quotes), the URI (bare),
/// whether it was in `<>`, and the header parameters after it (`;tag=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    pub display: &'a str,
    pub uri: &'a str,
    pub bracketed: bool,
    pub params: &'a str,
}

impl<'a> NameAddr<'a> {
    pub fn split(value: &'a str) -> NameAddr<'a> {
        let value = value.trim();
        // A quoted display name may hold `<`: look for it after the closing quote.
        let search_from = match value.strip_prefix('"') {
            Some(rest) => rest.find('"').map_or(0, |q| q + 2),
            None => 0,
        };
        if let Some(lt) = value[search_from..].find('<').map(|i| i + search_from)
            && let Some(gt) = value[lt..].find('>').map(|i| i + lt)
        {
            return NameAddr {
                display: value[..lt].trim(),
                uri: &value[lt + 1..gt],
                bracketed: true,
                params: &value[gt + 1..],
            };
        }
        let (uri, params) = match value.find(';') {
            Some(i) => (&value[..i], &value[i..]),
            None => (value, ""),
        };
        NameAddr {
            display: "",
            uri: uri.trim(),
            bracketed: false,
            params,
        }
    }

    /// The display name and URI as written (what a reply gets back).
    pub fn prefix(&self) -> String {
        match (self.display.is_empty(), self.bracketed) {
            (true, true) => format!("<{}>", self.uri),
            (true, false) => self.uri.to_owned(),
            (false, _) => format!("{} <{}>", self.display, self.uri),
        }
    }
}

/// A display name as OpenSIPS writes it: as given when quoted or a token, else quoted.
pub fn display(text: &str) -> String {
    let token = |c: char| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c);
    let quoted = text.starts_with('"') && text.ends_with('"') && text.len() > 1;
    if text.is_empty() || quoted || text.chars().all(token) {
        text.to_owned()
    } else {
        format!("\"{text}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_opensips_own() {
        // OpenSIPS' own values for these replacements (its restore_uri reads them).
        assert_eq!(
            encode("sip:alice@atlanta.com", "sip:anon@anonymous.invalid", ""),
            "TxoZSlsNBwwLAAAaAw8XGQ5bEEEEbnZhbGlkPg--"
        );
        assert_eq!(
            encode(
                "sip:alice@atlanta.com",
                "sip:anon@anonymous.invalid",
                "secret"
            ),
            "PH96OD55dGlocmVucGp0a2svYyRnHBMVHwwHTA--"
        );
        assert_eq!(encode("sip:a@b.c", "sip:x@y.z", ""), "TxoZSls4IldNej4-");
    }

    #[test]
    fn either_uri_gives_back_the_other() {
        for (old, new, pw) in [
            ("sip:alice@atlanta.com", "sip:anon@anonymous.invalid", ""),
            ("sip:a-much-longer-user-name@example.com", "sip:x@y", "pw"),
            ("sip:a@b.c", "sip:x@y.z", ""),
        ] {
            let v = encode(old, new, pw);
            assert_eq!(
                decode(&v, old, pw).as_deref(),
                Some(format!("<{new}>").as_str())
            );
            assert_eq!(decode(&v, &format!("<{new}>"), pw).as_deref(), Some(old));
        }
        assert_eq!(decode("not base64!", "sip:a@b", ""), None);
        // A value made to decode into header text is refused.
        let evil = encode("sip:a@b.c", "sip:x@y.z\r\nX-Evil: 1", "");
        assert_eq!(decode(&evil, "sip:a@b.c", ""), None);
        let not_uri = encode("sip:a@b.c", "no uri here", "");
        assert_eq!(decode(&not_uri, "sip:a@b.c", ""), None);
        assert_eq!(
            decode("TxoZSls4IldNej4-", "sip:a-too-long-key@b.c", ""),
            None
        );
    }

    #[test]
    fn name_addr_parts() {
        let n = NameAddr::split("\"A <b>\" <sip:a@b.c;x=1>;tag=9");
        assert_eq!(
            (n.display, n.uri, n.bracketed, n.params),
            ("\"A <b>\"", "sip:a@b.c;x=1", true, ";tag=9")
        );
        let n = NameAddr::split("sip:a@b.c;tag=9");
        assert_eq!(
            (n.display, n.uri, n.bracketed, n.params),
            ("", "sip:a@b.c", false, ";tag=9")
        );
        assert_eq!(n.prefix(), "sip:a@b.c");
        assert_eq!(display("Batman"), "Batman");
        assert_eq!(display("Bat Man"), "\"Bat Man\"");
        assert_eq!(display("\"X\""), "\"X\"");
    }
}
