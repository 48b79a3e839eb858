//! Stream framing (RFC 3261 §18.3): find where one message ends in a TCP/TLS byte stream before
//! parsing it. `Ok(None)` (incomplete) is the normal answer while bytes are still arriving.
//! CRLF keepalives (RFC 5626 §3.5.1) are recognised between messages.

use thiserror::Error;

/// Bounds for one framed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest header section (start line through the empty line).
    pub max_header_bytes: usize,
    /// Largest whole message.
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // OpenSIPS bounds only the whole message (its 64 KiB read buffer), so a header
        // section may take all of it.
        Limits {
            max_header_bytes: 64 * 1024,
            max_message_bytes: 64 * 1024,
        }
    }
}

/// What the front of the buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A double CRLF ping; answer with a single CRLF pong (RFC 5626 §3.5.1). Consume `len` bytes.
    Ping { len: usize },
    /// A lone CRLF (a pong, or stray line end between messages). Consume `len` bytes.
    Pong { len: usize },
    /// A complete message of `len` bytes (headers and body).
    Message { len: usize },
}

/// A stream that can never frame a valid message; the connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("header section too large")]
    HeaderTooLarge,
    #[error("message too large")]
    MessageTooLarge,
    #[error("missing Content-Length")]
    MissingContentLength,
    #[error("bad Content-Length")]
    BadContentLength,
}

/// Looks at the front of `buf` and says whether a whole frame is there.
pub fn check(buf: &[u8], limits: &Limits) -> Result<Option<Frame>, FrameError> {
    match buf {
        [] | [b'\r'] => return Ok(None),
        [b'\r', b'\n', b'\r', b'\n', ..] => return Ok(Some(Frame::Ping { len: 4 })),
        [b'\r', b'\n'] | [b'\r', b'\n', b'\r'] => return Ok(None),
        [b'\r', b'\n', ..] => return Ok(Some(Frame::Pong { len: 2 })),
        [b'\n', ..] => return Ok(Some(Frame::Pong { len: 1 })),
        _ => {}
    }
    let Some(body_start) = header_end(buf, limits.max_header_bytes) else {
        if buf.len() > limits.max_header_bytes {
            return Err(FrameError::HeaderTooLarge);
        }
        return Ok(None);
    };
    let cl = content_length(buf.get(..body_start).unwrap_or(&[]))?;
    let len = body_start
        .checked_add(cl)
        .ok_or(FrameError::MessageTooLarge)?;
    if len > limits.max_message_bytes {
        return Err(FrameError::MessageTooLarge);
    }
    Ok((buf.len() >= len).then_some(Frame::Message { len }))
}

/// Offset just past the empty line ending the header section (CRLF CRLF, or bare LF LF).
fn header_end(buf: &[u8], max: usize) -> Option<usize> {
    let window = buf.get(..buf.len().min(max + 4)).unwrap_or(buf);
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', window.get(from..)?) {
        let nl = from + i;
        match (window.get(nl + 1), window.get(nl + 2)) {
            (Some(b'\n'), _) => return Some(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
            _ => from = nl + 1,
        }
    }
    None
}

/// The Content-Length of a header section, required on streams. Folded CL values are not used
/// by real peers and are treated as bad.
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let mut found: Option<usize> = None;
    for line in head.split(|&c| c == b'\n').skip(1) {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line.get(..colon).unwrap_or(&[]).trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let v = line.get(colon + 1..).unwrap_or(&[]).trim_ascii();
        if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::BadContentLength);
        }
        let n = v
            .iter()
            .fold(0usize, |a, &c| a * 10 + usize::from(c - b'0'));
        if found.is_some_and(|f| f != n) {
            return Err(FrameError::BadContentLength);
        }
        found = Some(n);
    }
    found.ok_or(FrameError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_header_bytes: 200,
        max_message_bytes: 400,
    };

    #[test]
    fn keepalives() {
        assert_eq!(check(b"\r\n\r\n", &L), Ok(Some(Frame::Ping { len: 4 })));
        assert_eq!(check(b"\r\nINVITE", &L), Ok(Some(Frame::Pong { len: 2 })));
        assert_eq!(check(b"\r\n", &L), Ok(None));
        assert_eq!(check(b"", &L), Ok(None));
    }

    #[test]
    fn messages() {
        let m = b"OPTIONS sip:a SIP/2.0\r\nl: 3\r\n\r\nabcNEXT";
        assert_eq!(check(m, &L), Ok(Some(Frame::Message { len: m.len() - 4 })));
        assert_eq!(check(&m[..m.len() - 6], &L), Ok(None));
        assert_eq!(
            check(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 0\r\n", &L),
            Ok(None)
        );
    }

    #[test]
    fn errors() {
        let no_cl = b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n";
        assert_eq!(check(no_cl, &L), Err(FrameError::MissingContentLength));
        let neg = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: -999\r\n\r\n";
        assert_eq!(check(neg, &L), Err(FrameError::BadContentLength));
        let two = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 13\r\nl: 5\r\n\r\n";
        assert_eq!(check(two, &L), Err(FrameError::BadContentLength));
        let big = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 9999\r\n\r\n";
        assert_eq!(check(big, &L), Err(FrameError::MessageTooLarge));
        assert_eq!(check(&[b'A'; 300], &L), Err(FrameError::HeaderTooLarge));
    }
}
