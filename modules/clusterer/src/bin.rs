//! OpenSIPS' BIN packets (`bin_interface.[ch]`), without I/O.
//!
//! A packet is a 12-byte header — the marker `P4CK`, the total length (u32) and the
//! version (i16) — then the capability name (u16 length + bytes), the packet type (i32) and
//! the body: i32s and length-prefixed (u16) strings. OpenSIPS copies its C integers as they
//! are in memory, so every field is in the host byte order of the sender; every platform
//! OpenSIPS clusters run on is little-endian, and so is this codec.

/// The marker every BIN packet starts with.
pub const MARKER: &[u8; 4] = b"P4CK";
/// Marker, total length, version.
pub const HEADER_SIZE: usize = 4 + 4 + 2;
/// The largest packet OpenSIPS reads (its TCP buffer, less the room it keeps for the
/// clusterer's trailer).
pub const MAX_PACKET: usize = 65535 - 20;
/// The smallest packet: a header, an empty capability and a type.
const MIN_PACKET: usize = HEADER_SIZE + 2 + 4;

/// Why bytes are not a BIN packet; the connection they came on is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    BadMarker,
    BadLength(u32),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadMarker => f.write_str("not a BIN packet (no P4CK marker)"),
            FrameError::BadLength(n) => write!(f, "bad BIN packet length {n}"),
        }
    }
}

/// Where the first packet in `buf` ends: `Ok(None)` when more bytes are needed (normal on
/// a stream), an error when the bytes cannot be a BIN packet.
pub fn check(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let have = buf.len().min(4);
    if buf.get(..have) != MARKER.get(..have) {
        return Err(FrameError::BadMarker);
    }
    let Some(len) = buf.get(4..8) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
    let n = len as usize;
    if !(MIN_PACKET..=MAX_PACKET).contains(&n) {
        return Err(FrameError::BadLength(len));
    }
    Ok((buf.len() >= n).then_some(n))
}

/// A packet being built.
#[derive(Debug, Clone)]
pub struct Builder {
    buf: Vec<u8>,
}

impl Builder {
    /// The header, capability and type of a new packet.
    pub fn new(capability: &str, packet_type: i32, version: i16) -> Builder {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(MARKER);
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&version.to_le_bytes());
        let cap = capability.as_bytes();
        let cap = cap
            .get(..cap.len().min(usize::from(u16::MAX)))
            .unwrap_or(cap);
        buf.extend_from_slice(&(cap.len() as u16).to_le_bytes());
        buf.extend_from_slice(cap);
        buf.extend_from_slice(&packet_type.to_le_bytes());
        Builder { buf }
    }

    pub fn int(mut self, v: i32) -> Builder {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A string; longer than 65535 bytes is cut there (the length field is 16 bits).
    pub fn str(mut self, s: &str) -> Builder {
        let b = s.as_bytes();
        let b = b.get(..b.len().min(usize::from(u16::MAX))).unwrap_or(b);
        self.buf.extend_from_slice(&(b.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(b);
        self
    }

    /// The bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Never: a packet has a header.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes as they are (a body already laid out).
    pub fn raw(mut self, bytes: &[u8]) -> Builder {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// The capability the packet was started with.
    pub fn capability(&self) -> &str {
        let n = self
            .buf
            .get(HEADER_SIZE..HEADER_SIZE + 2)
            .map_or(0, |l| usize::from(u16::from_le_bytes([l[0], l[1]])));
        self.buf
            .get(HEADER_SIZE + 2..HEADER_SIZE + 2 + n)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }

    pub fn ints(self, vs: &[i32]) -> Builder {
        vs.iter().fold(self, |b, v| b.int(*v))
    }

    /// The finished bytes, with the total length set.
    pub fn finish(mut self) -> Vec<u8> {
        let len = (self.buf.len() as u32).to_le_bytes();
        if let Some(field) = self.buf.get_mut(4..8) {
            field.copy_from_slice(&len);
        }
        self.buf
    }
}

/// A received packet: its header fields and a reader over its body.
#[derive(Debug, Clone)]
pub struct Packet<'a> {
    pub version: i16,
    pub capability: &'a str,
    pub packet_type: i32,
    body: &'a [u8],
}

/// A body field was missing or cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

impl std::fmt::Display for Truncated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BIN packet truncated")
    }
}

impl<'a> Packet<'a> {
    /// A whole packet (as [`check`] delimited it).
    pub fn parse(buf: &'a [u8]) -> Result<Packet<'a>, Truncated> {
        let mut r = Reader { rest: buf };
        let marker = r.take(4)?;
        if marker != MARKER {
            return Err(Truncated);
        }
        let len = r.u32()? as usize;
        let buf = buf.get(..len).ok_or(Truncated)?;
        let mut r = Reader {
            rest: buf.get(8..).ok_or(Truncated)?,
        };
        let v = r.take(2)?;
        let version = i16::from_le_bytes([v[0], v[1]]);
        let cap = r.str_bytes()?;
        let capability = std::str::from_utf8(cap).map_err(|_| Truncated)?;
        let packet_type = r.int()?;
        Ok(Packet {
            version,
            capability,
            packet_type,
            body: r.rest,
        })
    }

    /// A reader from the start of the body.
    pub fn reader(&self) -> Reader<'a> {
        Reader { rest: self.body }
    }

    /// The body without its last `n` i32s, and those i32s in order (the clusterer's
    /// trailer: cluster id, source id, destination id).
    pub fn split_trailer(&self, n: usize) -> Result<(Reader<'a>, Vec<i32>), Truncated> {
        let cut = self.body.len().checked_sub(n * 4).ok_or(Truncated)?;
        let (head, tail) = self.body.split_at(cut);
        let mut t = Reader { rest: tail };
        let ints = (0..n).map(|_| t.int()).collect::<Result<Vec<_>, _>>()?;
        Ok((Reader { rest: head }, ints))
    }
}

/// Pops fields from the front of a body.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes` (a part of a body).
    pub fn over(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    /// What is left to read.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        if self.rest.len() < n {
            return Err(Truncated);
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, Truncated> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn int(&mut self) -> Result<i32, Truncated> {
        self.u32().map(|v| v as i32)
    }

    fn str_bytes(&mut self) -> Result<&'a [u8], Truncated> {
        let l = self.take(2)?;
        let n = usize::from(u16::from_le_bytes([l[0], l[1]]));
        self.take(n)
    }

    /// A string (invalid UTF-8 replaced).
    pub fn str(&mut self) -> Result<String, Truncated> {
        self.str_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_opensips_layout() {
        let p = Builder::new("ab", 1, 1).int(7).str("xyz").finish();
        let want: Vec<u8> = [
            &b"P4CK"[..],
            &[27, 0, 0, 0],
            &[1, 0],
            &[2, 0],
            b"ab",
            &[1, 0, 0, 0],
            &[7, 0, 0, 0],
            &[3, 0],
            b"xyz",
        ]
        .concat();
        assert_eq!(p, want);
        assert_eq!(check(&p), Ok(Some(27)));
        let got = Packet::parse(&p).unwrap();
        assert_eq!((got.version, got.capability, got.packet_type), (1, "ab", 1));
        let mut r = got.reader();
        assert_eq!(r.int(), Ok(7));
        assert_eq!(r.str().as_deref(), Ok("xyz"));
        assert!(r.is_empty());
        assert_eq!(r.int(), Err(Truncated));
    }

    #[test]
    fn frames_incomplete_and_bad_input() {
        let p = Builder::new("c", 0, 1).int(1).int(2).finish();
        for cut in 0..p.len() {
            assert_eq!(check(&p[..cut]), Ok(None), "cut at {cut}");
        }
        let mut two = p.clone();
        two.extend_from_slice(&p);
        assert_eq!(check(&two), Ok(Some(p.len())));
        assert_eq!(check(b"INVITE sip:"), Err(FrameError::BadMarker));
        assert_eq!(check(b"P4CK\x03\0\0\0"), Err(FrameError::BadLength(3)));
        assert_eq!(
            check(b"P4CK\xff\xff\xff\x7f"),
            Err(FrameError::BadLength(0x7fff_ffff))
        );
    }

    #[test]
    fn trailer_comes_off_the_end() {
        let p = Builder::new("clusterer-extra", 7, 1)
            .int(1)
            .str("t")
            .ints(&[3, 2, 1])
            .finish();
        let got = Packet::parse(&p).unwrap();
        let (mut body, t) = got.split_trailer(3).unwrap();
        assert_eq!(t, vec![3, 2, 1]);
        assert_eq!(body.int(), Ok(1));
        assert_eq!(body.str().as_deref(), Ok("t"));
        assert!(body.is_empty());
        assert!(got.split_trailer(10).is_err());
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let p = Builder::new("clusterer-internal", 0, 1)
            .ints(&[1, 2, 1])
            .finish();
        for i in 0..p.len() {
            for b in [0u8, 0xff, 0x7f] {
                let mut q = p.clone();
                q[i] = b;
                if let Ok(Some(n)) = check(&q)
                    && let Ok(pk) = Packet::parse(&q[..n])
                {
                    let mut r = pk.reader();
                    while r.int().is_ok() {}
                    let _ = pk.split_trailer(3);
                }
            }
        }
    }
}
