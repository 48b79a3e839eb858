//! Bencode, the encoding of rtpengine's "ng" control protocol: integers, byte strings,
//! lists and dictionaries (keys in sorted order). The decoder takes hostile input: it checks
//! every length and stops at a nesting depth.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bencode {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Bencode>),
    Dict(BTreeMap<Vec<u8>, Bencode>),
}

impl Bencode {
    pub fn str(s: &str) -> Bencode {
        Bencode::Bytes(s.as_bytes().to_vec())
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Bencode::Int(n) => out.extend_from_slice(format!("i{n}e").as_bytes()),
            Bencode::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Bencode::List(items) => {
                out.push(b'l');
                items.iter().for_each(|i| i.encode(out));
                out.push(b'e');
            }
            Bencode::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    Bencode::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// A dictionary entry as text.
    pub fn get_str(&self, key: &str) -> Option<String> {
        match self {
            Bencode::Dict(map) => match map.get(key.as_bytes())? {
                Bencode::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                Bencode::Int(n) => Some(n.to_string()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Decodes one value that fills `input` exactly.
    pub fn decode(input: &[u8]) -> Result<Bencode, String> {
        let mut at = 0;
        let v = parse(input, &mut at, 0)?;
        if at != input.len() {
            return Err(format!("{} bytes after the value", input.len() - at));
        }
        Ok(v)
    }
}

const MAX_DEPTH: usize = 32;

fn parse(b: &[u8], at: &mut usize, depth: usize) -> Result<Bencode, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deep".into());
    }
    match b.get(*at).copied() {
        Some(b'i') => {
            *at += 1;
            let end = find(b, *at, b'e')?;
            let text = std::str::from_utf8(&b[*at..end]).map_err(|_| "bad integer")?;
            let n = text
                .parse::<i64>()
                .map_err(|_| format!("bad integer \"{text}\""))?;
            *at = end + 1;
            Ok(Bencode::Int(n))
        }
        Some(b'l') => {
            *at += 1;
            let mut items = Vec::new();
            while b.get(*at) != Some(&b'e') {
                if *at >= b.len() {
                    return Err("unterminated list".into());
                }
                items.push(parse(b, at, depth + 1)?);
            }
            *at += 1;
            Ok(Bencode::List(items))
        }
        Some(b'd') => {
            *at += 1;
            let mut map = BTreeMap::new();
            while b.get(*at) != Some(&b'e') {
                if *at >= b.len() {
                    return Err("unterminated dictionary".into());
                }
                let Bencode::Bytes(k) = parse(b, at, depth + 1)? else {
                    return Err("a dictionary key that is not a string".into());
                };
                let v = parse(b, at, depth + 1)?;
                map.insert(k, v);
            }
            *at += 1;
            Ok(Bencode::Dict(map))
        }
        Some(c) if c.is_ascii_digit() => {
            let colon = find(b, *at, b':')?;
            let len: usize = std::str::from_utf8(&b[*at..colon])
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or("bad string length")?;
            let start = colon + 1;
            let end = start
                .checked_add(len)
                .filter(|e| *e <= b.len())
                .ok_or("string past the end")?;
            *at = end;
            Ok(Bencode::Bytes(b[start..end].to_vec()))
        }
        Some(c) => Err(format!("unexpected byte {c:#04x}")),
        None => Err("truncated".into()),
    }
}

fn find(b: &[u8], from: usize, byte: u8) -> Result<usize, String> {
    b.get(from..)
        .and_then(|rest| rest.iter().position(|&c| c == byte))
        .map(|p| from + p)
        .ok_or_else(|| format!("no '{}'", byte as char))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let mut map = BTreeMap::new();
        map.insert(b"sdp".to_vec(), Bencode::str("v=0\r\n"));
        map.insert(
            b"flags".to_vec(),
            Bencode::List(vec![Bencode::str("trust-address")]),
        );
        map.insert(b"n".to_vec(), Bencode::Int(-3));
        let v = Bencode::Dict(map);
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out, b"d5:flagsl13:trust-addresse1:ni-3e3:sdp5:v=0\r\ne");
        assert_eq!(Bencode::decode(&out).unwrap(), v);
        for bad in [
            &b"d3:sdp"[..],
            b"5:ab",
            b"i12",
            b"l",
            b"di1ei2ee",
            b"99999999999999999999:x",
            b"x",
            b"",
        ] {
            assert!(
                Bencode::decode(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "l".repeat(100) + &"e".repeat(100);
        assert!(Bencode::decode(deep.as_bytes()).is_err());
    }
}
