//! WebSocket (RFC 6455) for SIP over WebSocket (RFC 7118): the HTTP/1.1 opening handshake in
//! both directions and the frame codec.
//!
//! Sans-IO like the rest of the codecs: the handshake functions take the bytes received so far
//! and answer "incomplete", "done after n bytes" or an error naming the fault; [`Decoder`]
//! consumes frames from a `BytesMut` and hands back whole messages. Errors say what to send
//! back: an HTTP status during the handshake, a close code (RFC 6455 §7.4.1) afterwards.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use sha1::{Digest, Sha1};
use thiserror::Error;

/// Largest handshake head (request or status line through the empty line) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// The subprotocol RFC 7118 §4.1 registers for SIP.
pub const SUBPROTOCOL: &str = "sip";
/// Largest control frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL: usize = 125;
/// RFC 6455 §1.3: appended to the client key before hashing.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Close codes (RFC 6455 §7.4.1) the decoder's errors map to.
pub mod close_code {
    /// 1000: normal closure.
    pub const NORMAL: u16 = 1000;
    /// 1002: the peer broke the framing rules.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// 1007: a text message that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// 1009: a message larger than the decoder accepts.
    pub const TOO_BIG: u16 = 1009;
}

/// A handshake or framing fault. The connection ends: with [`WsError::http_status`] during the
/// handshake, with a Close frame carrying [`WsError::close_code`] afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WsError {
    /// No empty line within [`MAX_HEAD`] bytes.
    #[error("handshake head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// The request line is not `GET <target> HTTP/1.1`.
    #[error("bad request line")]
    BadRequestLine,
    /// The request method is not GET (RFC 6455 §4.1).
    #[error("method is not GET")]
    BadMethod,
    /// A header line or a value this codec needs is malformed.
    #[error("malformed header: {0}")]
    BadHeader(&'static str),
    /// No Host header, or more than one.
    #[error("missing or repeated Host header")]
    MissingHost,
    /// No `Upgrade: websocket`.
    #[error("not a WebSocket upgrade (Upgrade header)")]
    NotWebSocket,
    /// `Connection` lacks the `upgrade` token.
    #[error("Connection header lacks the upgrade token")]
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Version` missing or not 13; answer 426 with the supported version.
    #[error("unsupported Sec-WebSocket-Version")]
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing, repeated or not 16 bytes of base64.
    #[error("bad Sec-WebSocket-Key")]
    BadKey,
    /// The response status line is not `HTTP/1.1 <3 digits> <reason>`.
    #[error("bad status line")]
    BadStatusLine,
    /// The server answered something other than 101.
    #[error("server answered {0} instead of 101")]
    UnexpectedStatus(u16),
    /// `Sec-WebSocket-Accept` does not match the key sent.
    #[error("Sec-WebSocket-Accept does not match the key")]
    BadAccept,
    /// The server did not select the `sip` subprotocol (RFC 7118 §4.1).
    #[error("server did not select the sip subprotocol")]
    NoSipProtocol,
    /// The server selected an extension that was not offered (RFC 6455 §4.1).
    #[error("server selected an extension that was not offered")]
    UnexpectedExtension,
    /// RSV1-3 set with no extension negotiated.
    #[error("reserved bits set")]
    ReservedBits,
    /// Opcode 3-7 or 0xB-0xF.
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// A client frame without a mask (RFC 6455 §5.1).
    #[error("client frame not masked")]
    UnmaskedFrame,
    /// A server frame with a mask (RFC 6455 §5.1).
    #[error("server frame masked")]
    MaskedFrame,
    /// A control frame with more than 125 bytes of payload.
    #[error("control frame longer than 125 bytes")]
    ControlTooLong,
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A continuation frame with no fragmented message open.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is open.
    #[error("new data frame inside a fragmented message")]
    ExpectedContinuation,
    /// A 64-bit length with the most significant bit set.
    #[error("frame length has the most significant bit set")]
    LengthOverflow,
    /// A message over the decoder's limit.
    #[error("message larger than {0} bytes")]
    TooBig(usize),
    /// Text message or close reason that is not UTF-8.
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    /// A close payload of one byte, or a close code not allowed on the wire.
    #[error("bad close frame payload")]
    BadClose,
}

impl WsError {
    /// The close code to send for a framing error (RFC 6455 §7.4.1); `None` for handshake
    /// errors, which are answered in HTTP.
    pub fn close_code(&self) -> Option<u16> {
        use WsError::*;
        match self {
            HeadTooLarge | BadRequestLine | BadMethod | BadHeader(_) | MissingHost
            | NotWebSocket | NoConnectionUpgrade | UnsupportedVersion | BadKey | BadStatusLine
            | UnexpectedStatus(_) | BadAccept | NoSipProtocol | UnexpectedExtension => None,
            TooBig(_) => Some(close_code::TOO_BIG),
            InvalidUtf8 => Some(close_code::INVALID_DATA),
            _ => Some(close_code::PROTOCOL_ERROR),
        }
    }

    /// The HTTP status a server answers a bad upgrade request with (see [`reject_response`]).
    pub fn http_status(&self) -> Option<u16> {
        use WsError::*;
        match self {
            HeadTooLarge => Some(431),
            BadMethod => Some(405),
            UnsupportedVersion => Some(426),
            BadRequestLine | BadHeader(_) | MissingHost | NotWebSocket | NoConnectionUpgrade
            | BadKey => Some(400),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Opening handshake (RFC 6455 §4)

/// A valid client upgrade request (RFC 6455 §4.2.1), with what the server needs to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The request target, e.g. `/` or `/ws?user=alice`.
    pub path: String,
    /// The Host header.
    pub host: String,
    /// The Origin header, sent by browsers.
    pub origin: Option<String>,
    /// Sec-WebSocket-Key as sent (base64 of 16 bytes).
    pub key: String,
    /// Offered subprotocols in order, across repeated Sec-WebSocket-Protocol headers.
    pub protocols: Vec<String>,
    /// X-Forwarded-For entries in order, across repeated headers (client first).
    pub x_forwarded_for: Vec<String>,
}

impl UpgradeRequest {
    /// Whether the client offered `sip`; RFC 7118 §4.1 requires it, so a server rejects the
    /// request with 400 when this is false.
    pub fn offers_sip(&self) -> bool {
        self.protocols
            .iter()
            .any(|p| p.eq_ignore_ascii_case(SUBPROTOCOL))
    }
}

/// Parse a client's opening handshake (RFC 6455 §4.2.1) from the start of `buf`: the request
/// and the length of its head, `Ok(None)` while the head is incomplete, or the fault.
pub fn parse_upgrade_request(buf: &[u8]) -> Result<Option<(UpgradeRequest, usize)>, WsError> {
    let n = buf.len().min(4);
    if buf[..n] != b"GET "[..n] {
        // Fail on the first bytes: a SIP or TLS client on a WS port gets an answer at once.
        let method = buf.split(|&b| b == b' ').next().unwrap_or_default();
        let is_method = !method.is_empty() && method.iter().all(|&b| is_tchar(b));
        return Err(if is_method {
            WsError::BadMethod
        } else {
            WsError::BadRequestLine
        });
    }
    let Some((head, len)) = split_head(buf)? else {
        return Ok(None);
    };
    let (line, headers) = parse_head(head)?;
    let path = request_target(line)?;
    let one = |name| single(&headers, name);
    let host = match one("host") {
        Some(Ok(h)) if !h.is_empty() => utf8(h, "Host")?,
        _ => return Err(WsError::MissingHost),
    };
    check_upgrade_tokens(&headers)?;
    match one("sec-websocket-version") {
        Some(Ok(b"13")) => {}
        _ => return Err(WsError::UnsupportedVersion),
    }
    let key = match one("sec-websocket-key") {
        Some(Ok(k)) if decode_key(k).is_some() => utf8(k, "Sec-WebSocket-Key")?,
        _ => return Err(WsError::BadKey),
    };
    let origin = values(&headers, "origin")
        .next()
        .map(|o| utf8(o, "Origin"))
        .transpose()?;
    let request = UpgradeRequest {
        path,
        host,
        origin,
        key,
        protocols: token_list(&headers, "sec-websocket-protocol", "Sec-WebSocket-Protocol")?,
        x_forwarded_for: token_list(&headers, "x-forwarded-for", "X-Forwarded-For")?,
    };
    Ok(Some((request, len)))
}

/// The server's `101 Switching Protocols` for `req` (RFC 6455 §4.2.2), selecting `sip` when the
/// client offered it.
pub fn accept_response(req: &UpgradeRequest) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(&req.key)
    );
    if req.offers_sip() {
        out.push_str("Sec-WebSocket-Protocol: sip\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A refusal, e.g. `reject_response(400, "Bad Request")`. A 426 carries
/// `Sec-WebSocket-Version: 13` (RFC 6455 §4.4). Control characters in `reason` become spaces.
pub fn reject_response(status: u16, reason: &str) -> Vec<u8> {
    let reason: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    if status == 426 {
        out.push_str("Sec-WebSocket-Version: 13\r\n");
    }
    out.push_str("Connection: close\r\nContent-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// `Sec-WebSocket-Accept` for a client key: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// A client opening handshake offering the `sip` subprotocol (RFC 7118 §4.1). `key` must be
/// random per connection (RFC 6455 §4.1); the caller supplies it so this stays deterministic.
pub fn client_request(host: &str, path: &str, key: &[u8; 16]) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
        BASE64.encode(key)
    )
    .into_bytes()
}

/// Check the server's answer to [`client_request`] (RFC 6455 §4.1): 101, the Accept value for
/// `key`, `sip` selected, no extension. Returns the head length once complete; frames may follow.
pub fn parse_accept_response(buf: &[u8], key: &[u8; 16]) -> Result<Option<usize>, WsError> {
    let n = buf.len().min(9);
    if buf[..n] != b"HTTP/1.1 "[..n] {
        return Err(WsError::BadStatusLine);
    }
    let Some((head, len)) = split_head(buf)? else {
        return Ok(None);
    };
    let (line, headers) = parse_head(head)?;
    let status = status_code(line)?;
    if status != 101 {
        return Err(WsError::UnexpectedStatus(status));
    }
    check_upgrade_tokens(&headers)?;
    let expected = accept_key(&BASE64.encode(key));
    match single(&headers, "sec-websocket-accept") {
        Some(Ok(v)) if v == expected.as_bytes() => {}
        _ => return Err(WsError::BadAccept),
    }
    match single(&headers, "sec-websocket-protocol") {
        Some(Ok(v)) if v.eq_ignore_ascii_case(SUBPROTOCOL.as_bytes()) => {}
        _ => return Err(WsError::NoSipProtocol),
    }
    if values(&headers, "sec-websocket-extensions")
        .next()
        .is_some()
    {
        return Err(WsError::UnexpectedExtension);
    }
    Ok(Some(len))
}

/// One header line: name and value with surrounding whitespace removed.
type Header<'a> = (&'a [u8], &'a [u8]);

/// The head (without the final CRLFCRLF) and its length including it.
fn split_head(buf: &[u8]) -> Result<Option<(&[u8], usize)>, WsError> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    match window.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => Ok(Some((&buf[..end], end + 4))),
        None if buf.len() >= MAX_HEAD => Err(WsError::HeadTooLarge),
        None => Ok(None),
    }
}

/// Start line and header fields (RFC 9112 §2.2, §5): CRLF line ends, no obsolete folding.
fn parse_head(head: &[u8]) -> Result<(&[u8], Vec<Header<'_>>), WsError> {
    let mut lines = Vec::new();
    let mut rest = head;
    while let Some(lf) = rest.iter().position(|&b| b == b'\n') {
        let line = rest[..lf]
            .strip_suffix(b"\r")
            .ok_or(WsError::BadHeader("bare LF"))?;
        lines.push(line);
        rest = &rest[lf + 1..];
    }
    lines.push(rest);
    if lines.iter().any(|l| l.contains(&b'\r')) {
        return Err(WsError::BadHeader("bare CR"));
    }
    let (start, fields) = lines.split_first().unwrap_or((&rest, &[]));
    let headers = fields
        .iter()
        .map(|l| header_line(l))
        .collect::<Result<_, _>>()?;
    Ok((start, headers))
}

fn header_line(line: &[u8]) -> Result<Header<'_>, WsError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(WsError::BadHeader("line without a colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(WsError::BadHeader("bad header name or folded line"));
    }
    if value.iter().any(|&b| b == 0 || b == b'\r') {
        return Err(WsError::BadHeader("control character in a value"));
    }
    Ok((name, value.trim_ascii()))
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn request_target(line: &[u8]) -> Result<String, WsError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(b"GET"), Some(target), Some(b"HTTP/1.1"), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(WsError::BadRequestLine);
    };
    if target.is_empty() || !target.iter().all(u8::is_ascii_graphic) {
        return Err(WsError::BadRequestLine);
    }
    utf8(target, "request target")
}

fn status_code(line: &[u8]) -> Result<u16, WsError> {
    let code = line
        .strip_prefix(b"HTTP/1.1 ")
        .and_then(|rest| rest.get(..3).filter(|c| c.iter().all(u8::is_ascii_digit)))
        .filter(|_| line.get(12).is_none_or(|&b| b == b' '))
        .ok_or(WsError::BadStatusLine)?;
    Ok(code.iter().fold(0, |acc, d| acc * 10 + u16::from(d - b'0')))
}

fn values<'h, 'a>(headers: &'h [Header<'a>], name: &'h str) -> impl Iterator<Item = &'a [u8]> + 'h {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| *v)
}

/// The value of a header that must appear once: `None` if absent, `Some(Err)` if repeated.
fn single<'a>(headers: &[Header<'a>], name: &str) -> Option<Result<&'a [u8], ()>> {
    let mut it = values(headers, name);
    let first = it.next()?;
    Some(if it.next().is_some() {
        Err(())
    } else {
        Ok(first)
    })
}

/// The comma-separated elements of every `name` header (RFC 9110 §5.6.1), empty ones dropped.
fn tokens<'a>(headers: &[Header<'a>], name: &str) -> Vec<&'a [u8]> {
    values(headers, name)
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
        .collect()
}

fn token_list(
    headers: &[Header<'_>],
    name: &str,
    what: &'static str,
) -> Result<Vec<String>, WsError> {
    tokens(headers, name)
        .into_iter()
        .map(|t| utf8(t, what))
        .collect()
}

fn has_token(headers: &[Header<'_>], name: &str, token: &str) -> bool {
    tokens(headers, name)
        .iter()
        .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// `Upgrade: websocket` and `Connection: upgrade` (RFC 6455 §4.1 and §4.2.1).
fn check_upgrade_tokens(headers: &[Header<'_>]) -> Result<(), WsError> {
    if !has_token(headers, "upgrade", "websocket") {
        return Err(WsError::NotWebSocket);
    }
    if !has_token(headers, "connection", "upgrade") {
        return Err(WsError::NoConnectionUpgrade);
    }
    Ok(())
}

fn decode_key(key: &[u8]) -> Option<[u8; 16]> {
    BASE64.decode(key).ok()?.try_into().ok()
}

fn utf8(bytes: &[u8], what: &'static str) -> Result<String, WsError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| WsError::BadHeader(what))
}

// ---------------------------------------------------------------------------------------------
// Framing (RFC 6455 §5)

/// A frame opcode (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// 0x0: the next fragment of a text or binary message.
    Continuation,
    /// 0x1: UTF-8 text; SIP over WS may use either text or binary (RFC 7118 §5).
    Text,
    /// 0x2: binary data.
    Binary,
    /// 0x8: connection close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, Ping and Pong: never fragmented, at most 125 bytes (RFC 6455 §5.5).
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// A complete message (all fragments joined) or control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, valid UTF-8.
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping; answer with a pong carrying the same payload (RFC 6455 §5.5.2).
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// A close, with status code and reason when the peer sent one.
    Close(Option<(u16, String)>),
}

impl Message {
    /// Append this message as a single frame; `mask` is required from clients only.
    pub fn encode(&self, mask: Option<[u8; 4]>, out: &mut BytesMut) {
        match self {
            Message::Text(b) => encode(Opcode::Text, b, mask, out),
            Message::Binary(b) => encode(Opcode::Binary, b, mask, out),
            Message::Ping(b) => encode(Opcode::Ping, b, mask, out),
            Message::Pong(b) => encode(Opcode::Pong, b, mask, out),
            Message::Close(None) => encode(Opcode::Close, &[], mask, out),
            Message::Close(Some((code, reason))) => {
                encode(Opcode::Close, &close_payload(*code, reason), mask, out);
            }
        }
    }
}

/// Append one final (FIN) frame. Servers pass `mask: None`, clients a fresh random key
/// (RFC 6455 §5.3). Control payloads must not exceed [`MAX_CONTROL`] bytes.
pub fn encode(opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>, out: &mut BytesMut) {
    encode_frame(true, opcode, payload, mask, out);
}

/// Append one frame, FIN or not; for sending a message in fragments.
pub fn encode_frame(
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    out: &mut BytesMut,
) {
    out.reserve(payload.len() + 14);
    out.put_u8(if fin { 0x80 } else { 0 } | opcode.bits());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => out.put_u8(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            out.put_u8(mask_bit | 126);
            out.put_u16(len as u16);
        }
        len => {
            out.put_u8(mask_bit | 127);
            out.put_u64(len as u64);
        }
    }
    match mask {
        None => out.extend_from_slice(payload),
        Some(key) => {
            out.extend_from_slice(&key);
            let start = out.len();
            out.extend_from_slice(payload);
            apply_mask(&mut out[start..], key);
        }
    }
}

/// The payload of a Close frame: 2-byte code then UTF-8 reason (RFC 6455 §5.5.1). Keep the
/// reason under 124 bytes so the frame stays a valid control frame.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + reason.len());
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(reason.as_bytes());
    v
}

fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    for (b, k) in data.iter_mut().zip(key.iter().cycle()) {
        *b ^= k;
    }
}

/// The fixed part of a frame, once enough of it has arrived.
#[derive(Debug)]
struct FrameHead {
    fin: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    len: usize,
    head_len: usize,
}

/// Turns received bytes into [`Message`]s, enforcing RFC 6455 §5 for one side of a connection.
#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    require_mask: bool,
    /// The opcode and bytes so far of a fragmented message.
    partial: Option<(Opcode, BytesMut)>,
}

impl Decoder {
    /// `max_message` bounds a whole (reassembled) message; `require_mask` is true on a server
    /// (client frames must be masked) and false on a client (server frames must not be).
    pub fn new(max_message: usize, require_mask: bool) -> Self {
        Decoder {
            max_message,
            require_mask,
            partial: None,
        }
    }

    /// A decoder for the server side of a connection.
    pub fn server(max_message: usize) -> Self {
        Decoder::new(max_message, true)
    }

    /// A decoder for the client side of a connection.
    pub fn client(max_message: usize) -> Self {
        Decoder::new(max_message, false)
    }

    /// The next complete message, consuming its frames from `buf`. `Ok(None)` leaves any
    /// incomplete frame in `buf`. Faults are reported as soon as the bytes showing them
    /// arrive; after an error the connection must be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WsError> {
        loop {
            let Some(head) = self.frame_head(buf)? else {
                return Ok(None);
            };
            if buf.len() - head.head_len < head.len {
                return Ok(None);
            }
            buf.advance(head.head_len);
            let mut payload = buf.split_to(head.len);
            if let Some(key) = head.mask {
                apply_mask(&mut payload, key);
            }
            if let Some(msg) = self.assemble(&head, payload)? {
                return Ok(Some(msg));
            }
        }
    }

    /// Parses and checks a frame head, byte by byte, so each fault shows on the byte that
    /// carries it whether the bytes arrive together or one at a time.
    fn frame_head(&self, buf: &[u8]) -> Result<Option<FrameHead>, WsError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        if b0 & 0x70 != 0 {
            return Err(WsError::ReservedBits);
        }
        let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(WsError::UnknownOpcode(b0 & 0x0F))?;
        let fin = b0 & 0x80 != 0;
        self.check_sequence(opcode, fin)?;
        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        let masked = b1 & 0x80 != 0;
        match (self.require_mask, masked) {
            (true, false) => return Err(WsError::UnmaskedFrame),
            (false, true) => return Err(WsError::MaskedFrame),
            _ => {}
        }
        let len7 = b1 & 0x7F;
        if opcode.is_control() && usize::from(len7) > MAX_CONTROL {
            return Err(WsError::ControlTooLong);
        }
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let Some(ext_bytes) = buf.get(2..2 + ext) else {
            return Ok(None);
        };
        let len = ext_bytes
            .iter()
            .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        let len = if ext == 0 { u64::from(len7) } else { len };
        if len >> 63 != 0 {
            return Err(WsError::LengthOverflow);
        }
        let len = self.check_size(len)?;
        let head_len = 2 + ext + if masked { 4 } else { 0 };
        let Some(key) = buf.get(2 + ext..head_len) else {
            return Ok(None);
        };
        let mask = <[u8; 4]>::try_from(key).ok();
        Ok(Some(FrameHead {
            fin,
            opcode,
            mask,
            len,
            head_len,
        }))
    }

    /// RFC 6455 §5.4: fragments continue one message; control frames may interleave.
    fn check_sequence(&self, opcode: Opcode, fin: bool) -> Result<(), WsError> {
        match (opcode, &self.partial) {
            (op, _) if op.is_control() && !fin => Err(WsError::FragmentedControl),
            (Opcode::Continuation, None) => Err(WsError::UnexpectedContinuation),
            (Opcode::Text | Opcode::Binary, Some(_)) => Err(WsError::ExpectedContinuation),
            _ => Ok(()),
        }
    }

    /// The payload length as `usize` if the message stays within the limit.
    fn check_size(&self, len: u64) -> Result<usize, WsError> {
        let so_far = self.partial.as_ref().map_or(0, |(_, b)| b.len());
        match usize::try_from(len) {
            Ok(len) if len <= self.max_message.saturating_sub(so_far) => Ok(len),
            _ => Err(WsError::TooBig(self.max_message)),
        }
    }

    fn assemble(
        &mut self,
        head: &FrameHead,
        payload: BytesMut,
    ) -> Result<Option<Message>, WsError> {
        let payload = match head.opcode {
            Opcode::Ping => return Ok(Some(Message::Ping(payload.freeze()))),
            Opcode::Pong => return Ok(Some(Message::Pong(payload.freeze()))),
            Opcode::Close => return close_message(&payload).map(Some),
            Opcode::Continuation => match self.partial.as_mut() {
                Some((_, acc)) => {
                    acc.extend_from_slice(&payload);
                    if !head.fin {
                        return Ok(None);
                    }
                    self.partial.take()
                }
                None => return Err(WsError::UnexpectedContinuation),
            },
            op if !head.fin => {
                self.partial = Some((op, payload));
                return Ok(None);
            }
            op => Some((op, payload)),
        };
        match payload {
            Some((Opcode::Text, b)) if std::str::from_utf8(&b).is_err() => {
                Err(WsError::InvalidUtf8)
            }
            Some((Opcode::Text, b)) => Ok(Some(Message::Text(b.freeze()))),
            Some((_, b)) => Ok(Some(Message::Binary(b.freeze()))),
            None => Ok(None),
        }
    }
}

/// RFC 6455 §5.5.1 and §7.4: empty, or a code allowed on the wire plus a UTF-8 reason.
fn close_message(payload: &[u8]) -> Result<Message, WsError> {
    let [hi, lo, reason @ ..] = payload else {
        return if payload.is_empty() {
            Ok(Message::Close(None))
        } else {
            Err(WsError::BadClose)
        };
    };
    let code = u16::from_be_bytes([*hi, *lo]);
    // 1004-1006 and 1015 are reserved for local use; 1012-1014 are IANA-registered since.
    let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !allowed {
        return Err(WsError::BadClose);
    }
    let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidUtf8)?;
    Ok(Message::Close(Some((code, reason.to_owned()))))
}

/// Invariants checked by the `ws_frames` fuzz target and replayed over its corpus by the test
/// suite; panics only when one breaks.
///
/// The handshake parsers must agree between a prefix and the whole, and an accepted request
/// must produce a response the client side accepts. Frames decoded in one go and byte by byte
/// must give the same messages and the same error, and each message must survive a re-encode.
pub fn fuzz_invariants(data: &[u8]) {
    handshake_invariants(data);
    for require_mask in [true, false] {
        let whole = decode_all(data, require_mask, data.len().max(1));
        let bytewise = decode_all(data, require_mask, 1);
        assert_eq!(
            whole, bytewise,
            "decoding must not depend on how bytes arrive"
        );
        for msg in &whole.0 {
            let mut out = BytesMut::new();
            let mask = require_mask.then_some([0x37, 0xfa, 0x21, 0x3d]);
            msg.encode(mask, &mut out);
            let mut d = Decoder::new(FUZZ_MAX, require_mask);
            assert_eq!(
                d.decode(&mut out),
                Ok(Some(msg.clone())),
                "re-encoded message"
            );
            assert!(out.is_empty());
        }
    }
}

const FUZZ_MAX: usize = 4096;

type Decoded = (Vec<Message>, Option<WsError>);

fn decode_all(data: &[u8], require_mask: bool, chunk: usize) -> Decoded {
    let mut d = Decoder::new(FUZZ_MAX, require_mask);
    let (mut buf, mut msgs) = (BytesMut::new(), Vec::new());
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(m)) => msgs.push(m),
                Ok(None) => break,
                Err(e) => return (msgs, Some(e)),
            }
        }
    }
    (msgs, None)
}

fn handshake_invariants(data: &[u8]) {
    let whole = parse_upgrade_request(data);
    let step = (data.len() / 64).max(1);
    for p in (0..data.len()).step_by(step) {
        match parse_upgrade_request(&data[..p]) {
            Ok(None) => {}
            Ok(Some(done)) => assert_eq!(whole, Ok(Some(done)), "a prefix completed differently"),
            Err(_) => assert!(whole.is_err(), "a prefix failed but the whole did not"),
        }
    }
    if let Ok(Some((req, _))) = whole {
        let key = decode_key(req.key.as_bytes()).expect("accepted keys decode");
        let resp = accept_response(&req);
        let verdict = parse_accept_response(&resp, &key);
        if req.offers_sip() {
            assert_eq!(verdict, Ok(Some(resp.len())));
        } else {
            assert_eq!(verdict, Err(WsError::NoSipProtocol));
        }
    }
    let _ = parse_accept_response(data, &[0; 16]);
}
