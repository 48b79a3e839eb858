//! SDP session descriptions (RFC 8866, formerly RFC 4566) as SIP carries them in offer/answer
//! (RFC 3264): a zero-copy parser that never fails and never panics, the acceptance rules
//! OpenSIPS applies before it touches a body ([`Sdp::validate`]), and an editor
//! ([`SdpEditor`]) that removes or reorders payload types and removes whole media
//! descriptions while copying every line it does not change byte for byte.
//!
//! Lines may end in CRLF, LF or a bare CR. Lines that are not `<letter>=<value>` are kept
//! as they are and otherwise ignored.

use std::ops::Range;

/// One line of an SDP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The type letter (`b'v'`, `b'o'`, `b'm'`, `b'a'` …); `None` for a blank line or one that
    /// is not `<letter>=…`.
    pub kind: Option<u8>,
    /// Byte range of the whole line, line end included.
    pub span: Range<usize>,
    /// Byte range of the value after `x=` (the line end excluded).
    pub value: Range<usize>,
}

/// `c=<nettype> <addrtype> <connection-address>` (RFC 8866 §5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection<'a> {
    pub net_type: &'a str,
    /// `IP4` or `IP6`.
    pub addr_type: &'a str,
    /// As written: may carry a multicast `/ttl`.
    pub address: &'a str,
}

impl<'a> Connection<'a> {
    fn parse(v: &'a str) -> Option<Connection<'a>> {
        let mut t = v.split_ascii_whitespace();
        Some(Connection {
            net_type: t.next()?,
            addr_type: t.next()?,
            address: t.next()?,
        })
    }

    /// The RFC 2543 way of putting a stream on hold: a null address.
    pub fn is_null(&self) -> bool {
        self.address == "0.0.0.0"
    }
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>` (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    pub username: &'a str,
    pub session_id: &'a str,
    pub session_version: &'a str,
    pub net_type: &'a str,
    pub addr_type: &'a str,
    pub address: &'a str,
}

impl<'a> Origin<'a> {
    fn parse(v: &'a str) -> Option<Origin<'a>> {
        let mut t = v.split_ascii_whitespace();
        Some(Origin {
            username: t.next()?,
            session_id: t.next()?,
            session_version: t.next()?,
            net_type: t.next()?,
            addr_type: t.next()?,
            address: t.next()?,
        })
    }
}

/// `a=<name>[:<value>]` (§5.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    pub name: &'a str,
    pub value: Option<&'a str>,
    /// Index into [`Sdp::lines`].
    pub line: usize,
}

/// The media direction attributes of RFC 3264 §5.1 / §6.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn of(name: &str) -> Option<Direction> {
        [
            ("sendrecv", Direction::SendRecv),
            ("sendonly", Direction::SendOnly),
            ("recvonly", Direction::RecvOnly),
            ("inactive", Direction::Inactive),
        ]
        .into_iter()
        .find(|(n, _)| name.eq_ignore_ascii_case(n))
        .map(|(_, d)| d)
    }
}

/// How a stream is put on hold (the codes of OpenSIPS' `is_audio_on_hold`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// RFC 2543: the connection address is `0.0.0.0`.
    Rfc2543 = 1,
    /// RFC 3264: `a=sendonly` or `a=inactive`.
    Rfc3264 = 2,
}

/// One payload type of a media description, with what its attributes say about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payload<'a> {
    /// The format as listed on the `m=` line (`0`, `101`, `t38` …).
    pub pt: &'a str,
    /// From `a=rtpmap:<pt> <encoding>/<clock>[/<params>]` (RFC 8866 §6.6).
    pub encoding: Option<&'a str>,
    pub clock: Option<&'a str>,
    pub params: Option<&'a str>,
    /// From `a=fmtp:<pt> <parameters>`.
    pub fmtp: Option<&'a str>,
    /// Lines (indexes into [`Sdp::lines`]) that describe only this payload: its `rtpmap`, its
    /// `fmtp` and other `a=<name>:<pt> <value>` lines such as `rtcp-fb`.
    pub lines: Vec<usize>,
    /// Payloads whose `fmtp` names this one with `apt=` (RFC 4588 retransmission): they go
    /// when this one is removed.
    pub rtx: Vec<&'a str>,
}

impl<'a> Payload<'a> {
    /// The codec name and clock rate: from `rtpmap`, else from the static assignments of
    /// RFC 3551 (OpenSIPS' table, which adds `t38` with no clock).
    pub fn codec(&self) -> Option<(&'a str, &'a str)> {
        match (self.encoding, self.clock) {
            (Some(e), Some(c)) => Some((e, c)),
            _ => static_payload(self.pt),
        }
    }
}

/// The static RTP payload types of RFC 3551 §6 that OpenSIPS knows, by number.
pub fn static_payload(pt: &str) -> Option<(&'static str, &'static str)> {
    const TABLE: &[(&str, &str, &str)] = &[
        ("0", "PCMU", "8000"),
        ("3", "GSM", "8000"),
        ("4", "G723", "8000"),
        ("5", "DVI4", "8000"),
        ("6", "DVI4", "16000"),
        ("7", "LPC", "8000"),
        ("8", "PCMA", "8000"),
        ("9", "G722", "8000"),
        ("10", "L16", "44100"),
        ("11", "L16", "44100"),
        ("12", "QCELP", "8000"),
        ("13", "CN", "8000"),
        ("14", "MPA", "90000"),
        ("15", "G728", "8000"),
        ("16", "DVI4", "11025"),
        ("17", "DVI4", "22050"),
        ("18", "G729", "8000"),
        ("25", "CelB", "8000"),
        ("26", "JPEG", "90000"),
        ("28", "nv", "90000"),
        ("31", "H261", "90000"),
        ("32", "MPV", "90000"),
        ("33", "MP2T", "90000"),
        ("34", "H263", "90000"),
        ("t38", "t38", ""),
    ];
    TABLE
        .iter()
        .find(|(n, _, _)| *n == pt)
        .map(|&(_, name, clock)| (name, clock))
}

/// One media description: the `m=` line and the lines up to the next `m=`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Media<'a> {
    /// `audio`, `video`, `image`, `application` …
    pub media: &'a str,
    /// As written, possibly `<port>/<count>`.
    pub port: &'a str,
    /// `RTP/AVP`, `RTP/SAVPF`, `udptl` …
    pub transport: &'a str,
    /// The formats in `m=` order.
    pub formats: Vec<&'a str>,
    /// Its own `c=`; see [`Sdp::connection_of`] for the effective one.
    pub connection: Option<Connection<'a>>,
    /// `b=<type>:<bandwidth>`.
    pub bandwidth: Option<(&'a str, &'a str)>,
    pub attributes: Vec<Attribute<'a>>,
    /// One per format, in `m=` order.
    pub payloads: Vec<Payload<'a>>,
    /// Index of the `m=` line in [`Sdp::lines`].
    pub line: usize,
    /// The lines of this description, its `m=` line first.
    pub lines: Range<usize>,
    /// Byte offset just past the transport token of the `m=` line (0 when malformed).
    transport_end: usize,
}

impl<'a> Media<'a> {
    /// The port number (the part before an optional `/count`).
    pub fn port_number(&self) -> Option<u16> {
        self.port.split('/').next()?.parse().ok()
    }

    /// The last direction attribute of this description.
    pub fn direction(&self) -> Option<Direction> {
        direction(&self.attributes)
    }

    pub fn payload(&self, pt: &str) -> Option<&Payload<'a>> {
        self.payloads.iter().find(|p| p.pt == pt)
    }

    /// Whether the transport is RTP (`RTP/AVP`, `RTP/SAVP`, `RTP/AVPF`, `RTP/SAVPF`).
    pub fn is_rtp(&self) -> bool {
        ["RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF"]
            .iter()
            .any(|t| self.transport.eq_ignore_ascii_case(t))
    }
}

fn direction(attrs: &[Attribute<'_>]) -> Option<Direction> {
    attrs.iter().rev().find_map(|a| Direction::of(a.name))
}

/// Why OpenSIPS would refuse a body as SDP ([`Sdp::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP does not start with v=")]
    NoVersion,
    #[error("no o= line with an IP4/IP6 address")]
    BadOrigin,
    #[error("no m= line")]
    NoMedia,
    #[error("m= line {0} lacks a port or transport")]
    BadMedia(usize),
    #[error("media description {0} has no usable c= line")]
    NoConnection(usize),
}

/// A parsed SDP body, borrowing from its text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sdp<'a> {
    text: &'a str,
    /// Every line, in order; together their spans cover the whole text.
    pub lines: Vec<Line>,
    pub version: Option<&'a str>,
    pub origin: Option<Origin<'a>>,
    pub session_name: Option<&'a str>,
    /// Session-level `c=`.
    pub connection: Option<Connection<'a>>,
    /// Session-level `b=`.
    pub bandwidth: Option<(&'a str, &'a str)>,
    /// Session-level attributes (before the first `m=`).
    pub attributes: Vec<Attribute<'a>>,
    pub media: Vec<Media<'a>>,
}

/// Splits `text` into lines ending in CRLF, LF or CR.
fn split_lines(text: &str) -> Vec<Line> {
    let b = text.as_bytes();
    let mut lines = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let end = b
            .get(pos..)
            .and_then(|rest| memchr::memchr2(b'\r', b'\n', rest))
            .map_or(b.len(), |i| pos + i);
        let mut next = end;
        if b.get(next) == Some(&b'\r') {
            next += 1;
        }
        if b.get(next) == Some(&b'\n') {
            next += 1;
        }
        let typed = end >= pos + 2
            && b.get(pos).is_some_and(u8::is_ascii_alphabetic)
            && b.get(pos + 1) == Some(&b'=');
        lines.push(Line {
            kind: typed.then(|| b.get(pos).copied()).flatten(),
            span: pos..next,
            value: if typed { pos + 2..end } else { pos..end },
        });
        pos = next;
    }
    lines
}

impl<'a> Sdp<'a> {
    /// Parses an SDP body. Never fails: what is missing is `None` or empty, and
    /// [`Sdp::validate`] says whether OpenSIPS would accept it.
    pub fn parse(text: &'a str) -> Sdp<'a> {
        let lines = split_lines(text);
        let mut sdp = Sdp {
            text,
            ..Sdp::default()
        };
        for (i, line) in lines.iter().enumerate() {
            let Some(kind) = line.kind else { continue };
            let v = text.get(line.value.clone()).unwrap_or("").trim();
            if kind == b'm' {
                if let Some(m) = sdp.media.last_mut() {
                    m.lines.end = i;
                }
                sdp.media.push(media_line(text, line, i));
                continue;
            }
            match (kind, sdp.media.last_mut()) {
                (b'v', None) if sdp.version.is_none() => sdp.version = Some(v),
                (b'o', None) if sdp.origin.is_none() => sdp.origin = Origin::parse(v),
                (b's', None) if sdp.session_name.is_none() => sdp.session_name = Some(v),
                (b'c', None) => sdp.connection = sdp.connection.or(Connection::parse(v)),
                (b'c', Some(m)) => m.connection = m.connection.or(Connection::parse(v)),
                (b'b', None) => sdp.bandwidth = sdp.bandwidth.or(bandwidth(v)),
                (b'b', Some(m)) => m.bandwidth = m.bandwidth.or(bandwidth(v)),
                (b'a', None) => sdp.attributes.push(attribute(v, i)),
                (b'a', Some(m)) => m.attributes.push(attribute(v, i)),
                _ => {}
            }
        }
        if let Some(m) = sdp.media.last_mut() {
            m.lines.end = lines.len();
        }
        for m in &mut sdp.media {
            resolve_payloads(m);
        }
        sdp.lines = lines;
        sdp
    }

    /// The text this was parsed from.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The text of line `i`, value only.
    pub fn line_value(&self, i: usize) -> &'a str {
        self.lines
            .get(i)
            .and_then(|l| self.text.get(l.value.clone()))
            .unwrap_or("")
    }

    /// The session-level direction attribute (the default for every stream, RFC 3264 §6.1).
    pub fn direction(&self) -> Option<Direction> {
        direction(&self.attributes)
    }

    /// The connection a media description uses: its own `c=`, else the session's.
    pub fn connection_of(&self, media: &Media<'a>) -> Option<Connection<'a>> {
        media.connection.or(self.connection)
    }

    /// The direction a media description has: its own attribute, else the session's.
    pub fn direction_of(&self, media: &Media<'a>) -> Direction {
        media
            .direction()
            .or(self.direction())
            .unwrap_or(Direction::SendRecv)
    }

    /// Whether a stream is on hold: `sendonly`/`inactive` (its own or the session's), else a
    /// `0.0.0.0` connection address. OpenSIPS only looks at the stream's own attributes.
    pub fn hold(&self, media: &Media<'a>) -> Option<Hold> {
        if matches!(
            self.direction_of(media),
            Direction::SendOnly | Direction::Inactive
        ) {
            return Some(Hold::Rfc3264);
        }
        self.connection_of(media)
            .filter(Connection::is_null)
            .map(|_| Hold::Rfc2543)
    }

    /// The checks OpenSIPS' SDP parser makes before it accepts a body: `v=` first, an `o=`
    /// with an address, at least one `m=` with media, port and transport, and a `c=` for
    /// every media description (its own or the session's) with an `IP4`/`IP6` address.
    pub fn validate(&self) -> Result<(), SdpError> {
        let first = self
            .lines
            .iter()
            .find(|l| l.kind.is_some() || !l.value.is_empty());
        if first.and_then(|l| l.kind) != Some(b'v') {
            return Err(SdpError::NoVersion);
        }
        let ip = |t: &str| t == "IP4" || t == "IP6";
        if !self.origin.is_some_and(|o| ip(o.addr_type)) {
            return Err(SdpError::BadOrigin);
        }
        if self.media.is_empty() {
            return Err(SdpError::NoMedia);
        }
        for (i, m) in self.media.iter().enumerate() {
            if m.media.is_empty() || m.port.is_empty() || m.transport.is_empty() {
                return Err(SdpError::BadMedia(i));
            }
            if !self.connection_of(m).is_some_and(|c| ip(c.addr_type)) {
                return Err(SdpError::NoConnection(i));
            }
        }
        Ok(())
    }
}

fn bandwidth(v: &str) -> Option<(&str, &str)> {
    v.split_once(':').map(|(t, w)| (t.trim(), w.trim()))
}

fn attribute(v: &str, line: usize) -> Attribute<'_> {
    match v.split_once(':') {
        Some((n, val)) => Attribute {
            name: n.trim(),
            value: Some(val.trim()),
            line,
        },
        None => Attribute {
            name: v,
            value: None,
            line,
        },
    }
}

/// Parses `m=<media> <port> <transport> <fmt> …`.
fn media_line<'a>(text: &'a str, line: &Line, index: usize) -> Media<'a> {
    let v = text.get(line.value.clone()).unwrap_or("");
    let mut m = Media {
        line: index,
        lines: index..index,
        ..Media::default()
    };
    let mut tokens = v
        .split([' ', '\t'])
        .filter(|t| !t.is_empty())
        .map(|t| (t, t.as_ptr() as usize - v.as_ptr() as usize));
    let (Some((media, _)), Some((port, _)), Some((transport, at))) =
        (tokens.next(), tokens.next(), tokens.next())
    else {
        return m;
    };
    m.media = media;
    m.port = port;
    m.transport = transport;
    m.transport_end = line.value.start + at + transport.len();
    m.formats = tokens.map(|(t, _)| t).collect();
    m
}

/// Attaches `rtpmap`, `fmtp` and per-payload attribute lines to the payloads of `m`.
fn resolve_payloads(m: &mut Media<'_>) {
    m.payloads = m
        .formats
        .iter()
        .map(|&pt| Payload {
            pt,
            ..Payload::default()
        })
        .collect();
    for a in &m.attributes {
        let Some((pt, rest)) = a
            .value
            .and_then(|v| v.split_once([' ', '\t']))
            .map(|(p, r)| (p, r.trim()))
        else {
            continue;
        };
        let Some(idx) = m.payloads.iter().position(|p| p.pt == pt) else {
            continue;
        };
        let name = a.name;
        if name.eq_ignore_ascii_case("rtpmap") {
            let mut parts = rest.splitn(3, '/');
            let (Some(enc), Some(clock)) = (parts.next(), parts.next()) else {
                continue;
            };
            if let Some(p) = m.payloads.get_mut(idx) {
                p.encoding = Some(enc.trim());
                p.clock = Some(clock.trim());
                p.params = parts.next().map(str::trim);
                p.lines.push(a.line);
            }
        } else if name.eq_ignore_ascii_case("fmtp") {
            if let Some(p) = m.payloads.get_mut(idx) {
                p.fmtp = Some(rest);
                p.lines.push(a.line);
            }
            if let Some(apt) = rest.split(';').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                k.trim().eq_ignore_ascii_case("apt").then(|| v.trim())
            }) && let Some(target) = m.payloads.iter_mut().find(|p| p.pt == apt)
            {
                target.rtx.push(pt);
            }
        } else if !rest.is_empty()
            && !name.eq_ignore_ascii_case("rtcp")
            && let Some(p) = m.payloads.get_mut(idx)
        {
            p.lines.push(a.line);
        }
    }
}

/// Edits an [`Sdp`]: payload types removed or moved on `m=` lines (with the lines that
/// describe a removed payload), whole media descriptions removed. A description left with no
/// payload gets port 0 (RFC 3264 §6: a rejected stream), as OpenSIPS does.
#[derive(Debug, Clone)]
pub struct SdpEditor<'s, 'a> {
    sdp: &'s Sdp<'a>,
    formats: Vec<Vec<&'a str>>,
    removed_lines: Vec<bool>,
    removed_media: Vec<bool>,
    zero_port: Vec<bool>,
    changed: bool,
}

impl<'s, 'a> SdpEditor<'s, 'a> {
    pub fn new(sdp: &'s Sdp<'a>) -> SdpEditor<'s, 'a> {
        SdpEditor {
            sdp,
            formats: sdp.media.iter().map(|m| m.formats.clone()).collect(),
            removed_lines: vec![false; sdp.lines.len()],
            removed_media: vec![false; sdp.media.len()],
            zero_port: vec![false; sdp.media.len()],
            changed: false,
        }
    }

    /// The formats media description `media` lists now.
    pub fn formats(&self, media: usize) -> &[&'a str] {
        self.formats.get(media).map_or(&[], Vec::as_slice)
    }

    /// Whether media description `media` is still there.
    pub fn has_media(&self, media: usize) -> bool {
        !self.removed_media.get(media).copied().unwrap_or(true)
    }

    /// Whether anything changed.
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// Removes payload types from a media description together with their `rtpmap`, `fmtp`
    /// and other per-payload lines, and their RFC 4588 retransmission payloads. True when
    /// one was listed.
    pub fn remove_payloads(&mut self, media: usize, pts: &[&str]) -> bool {
        let Some(m) = self.sdp.media.get(media) else {
            return false;
        };
        let mut gone: Vec<&str> = Vec::new();
        for pt in pts {
            gone.push(pt);
            if let Some(p) = m.payload(pt) {
                gone.extend(p.rtx.iter().copied());
            }
        }
        let Some(list) = self.formats.get_mut(media) else {
            return false;
        };
        let before = list.len();
        list.retain(|f| !gone.contains(f));
        if list.len() == before {
            return false;
        }
        for p in m.payloads.iter().filter(|p| gone.contains(&p.pt)) {
            for &l in &p.lines {
                if let Some(r) = self.removed_lines.get_mut(l) {
                    *r = true;
                }
            }
        }
        if list.is_empty()
            && let Some(z) = self.zero_port.get_mut(media)
        {
            *z = true;
        }
        self.changed = true;
        true
    }

    /// Moves the listed payload types to the front (`front`) or the back of the `m=` line,
    /// keeping their relative order. True when one was listed.
    pub fn move_payloads(&mut self, media: usize, pts: &[&str], front: bool) -> bool {
        let Some(list) = self.formats.get_mut(media) else {
            return false;
        };
        let (moved, rest): (Vec<&'a str>, Vec<&'a str>) =
            list.iter().partition(|f| pts.contains(f));
        if moved.is_empty() {
            return false;
        }
        *list = if front {
            moved.into_iter().chain(rest).collect()
        } else {
            rest.into_iter().chain(moved).collect()
        };
        self.changed = true;
        true
    }

    /// Removes a whole media description (its `m=` line and every line up to the next one).
    pub fn remove_media(&mut self, media: usize) -> bool {
        match self.removed_media.get_mut(media) {
            Some(r) if !*r => {
                *r = true;
                self.changed = true;
                true
            }
            _ => false,
        }
    }

    /// The edited body.
    pub fn render(&self) -> String {
        let text = self.sdp.text;
        let mut out = String::with_capacity(text.len());
        let mut media_of_line = vec![None; self.sdp.lines.len()];
        for (i, m) in self.sdp.media.iter().enumerate() {
            for slot in media_of_line.get_mut(m.lines.clone()).into_iter().flatten() {
                *slot = Some(i);
            }
        }
        for (i, line) in self.sdp.lines.iter().enumerate() {
            let media = media_of_line.get(i).copied().flatten();
            if media.is_some_and(|m| !self.has_media(m))
                || self.removed_lines.get(i).copied().unwrap_or(false)
            {
                continue;
            }
            match media.and_then(|mi| self.sdp.media.get(mi).map(|m| (mi, m))) {
                Some((mi, m))
                    if m.line == i
                        && m.transport_end > 0
                        && (self.formats(mi) != m.formats.as_slice()
                            || self.zero_port.get(mi).copied().unwrap_or(false)) =>
                {
                    self.render_m_line(&mut out, mi, m, line);
                }
                _ => out.push_str(text.get(line.span.clone()).unwrap_or("")),
            }
        }
        out
    }

    fn render_m_line(&self, out: &mut String, mi: usize, m: &Media<'a>, line: &Line) {
        let text = self.sdp.text;
        if self.zero_port.get(mi).copied().unwrap_or(false) {
            out.push_str("m=");
            out.push_str(m.media);
            out.push_str(" 0 ");
            out.push_str(m.transport);
        } else {
            out.push_str(text.get(line.span.start..m.transport_end).unwrap_or(""));
        }
        for f in self.formats(mi) {
            out.push(' ');
            out.push_str(f);
        }
        out.push_str(text.get(line.value.end..line.span.end).unwrap_or(""));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    const OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
a=sendrecv\r\n\
m=audio 49170 RTP/AVP 0 8 97 98 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:97 opus/48000/2\r\n\
a=fmtp:97 useinbandfec=1\r\n\
a=rtpmap:98 rtx/48000\r\n\
a=fmtp:98 apt=97\r\n\
a=rtcp-fb:97 nack\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
m=video 51372 RTP/AVP 31\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtpmap:31 H261/90000\r\n";

    #[test]
    fn parses_sessions_streams_and_payloads() {
        let s = Sdp::parse(OFFER);
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.version, Some("0"));
        assert_eq!(s.origin.unwrap().address, "host.atlanta.example.com");
        assert_eq!(s.connection.unwrap().address, "192.0.2.10");
        assert_eq!(s.direction(), Some(Direction::SendRecv));
        let [audio, video] = &s.media[..] else {
            panic!("two streams")
        };
        assert_eq!(
            (audio.media, audio.port_number(), audio.transport),
            ("audio", Some(49170), "RTP/AVP")
        );
        assert_eq!(audio.formats, ["0", "8", "97", "98", "101"]);
        assert!(audio.is_rtp());
        let opus = audio.payload("97").unwrap();
        assert_eq!(
            (opus.encoding, opus.clock, opus.params),
            (Some("opus"), Some("48000"), Some("2"))
        );
        assert_eq!(opus.fmtp, Some("useinbandfec=1"));
        assert_eq!(opus.rtx, ["98"]);
        assert_eq!(opus.lines.len(), 3, "rtpmap, fmtp, rtcp-fb");
        assert_eq!(audio.payload("8").unwrap().codec(), Some(("PCMA", "8000")));
        assert_eq!(
            audio.payload("101").unwrap().codec(),
            Some(("telephone-event", "8000"))
        );
        assert_eq!(s.hold(audio), None);
        assert_eq!(s.hold(video), Some(Hold::Rfc2543));
        assert_eq!(video.connection.unwrap().address, "0.0.0.0");
    }

    #[test]
    fn removes_payloads_with_their_lines_and_rtx() {
        let s = Sdp::parse(OFFER);
        let mut e = SdpEditor::new(&s);
        assert!(e.remove_payloads(0, &["97"]));
        assert!(!e.remove_payloads(0, &["97"]), "already gone");
        let out = e.render();
        assert!(
            out.contains("m=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101"),
            "{out}"
        );
        for gone in ["opus", "apt=97", "rtx/", "rtcp-fb", "useinbandfec"] {
            assert!(!out.contains(gone), "{gone} left in {out}");
        }
        assert!(out.ends_with(
            "m=video 51372 RTP/AVP 31\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:31 H261/90000\r\n"
        ));
    }

    #[test]
    fn last_payload_removed_rejects_the_stream() {
        let s = Sdp::parse(OFFER);
        let mut e = SdpEditor::new(&s);
        assert!(e.remove_payloads(1, &["31"]));
        assert!(
            e.render()
                .ends_with("m=video 0 RTP/AVP\r\nc=IN IP4 0.0.0.0\r\n")
        );
    }

    #[test]
    fn moves_and_removes_streams() {
        let s = Sdp::parse(OFFER);
        let mut e = SdpEditor::new(&s);
        assert!(e.move_payloads(0, &["101", "8"], true));
        assert!(e.move_payloads(0, &["0"], false));
        assert!(!e.move_payloads(0, &["66"], false));
        assert!(e.remove_media(1));
        let out = e.render();
        assert!(
            out.contains("m=audio 49170 RTP/AVP 8 101 97 98 0\r\n"),
            "{out}"
        );
        assert!(out.ends_with("a=ptime:20\r\n"), "{out}");
        assert!(!out.contains("video"));
    }

    #[test]
    fn bare_lf_and_odd_spacing_are_kept() {
        let text = "v=0\no=- 1 1 IN IP6 ::1\ns=x\nc=IN IP6 ::1\nt=0 0\nm=audio  4000   RTP/AVP   18  0\na=fmtp:18 annexb=no\na=inactive\n";
        let s = Sdp::parse(text);
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.media[0].formats, ["18", "0"]);
        assert_eq!(s.hold(&s.media[0]), Some(Hold::Rfc3264));
        assert_eq!(SdpEditor::new(&s).render(), text);
        let mut e = SdpEditor::new(&s);
        e.remove_payloads(0, &["18"]);
        assert_eq!(
            e.render(),
            "v=0\no=- 1 1 IN IP6 ::1\ns=x\nc=IN IP6 ::1\nt=0 0\nm=audio  4000   RTP/AVP 0\na=inactive\n"
        );
    }

    #[test]
    fn validation_follows_opensips() {
        let cases = [
            (
                "o=- 1 1 IN IP4 a\r\nm=audio 1 RTP/AVP 0\r\n",
                SdpError::NoVersion,
            ),
            (
                "v=0\r\nm=audio 1 RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n",
                SdpError::BadOrigin,
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 a\r\nc=IN IP4 1.2.3.4\r\n",
                SdpError::NoMedia,
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 1 RTP/AVP 0\r\n",
                SdpError::NoConnection(0),
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 a\r\nc=IN IP4 1.2.3.4\r\nm=audio\r\n",
                SdpError::BadMedia(0),
            ),
        ];
        for (text, err) in cases {
            assert_eq!(Sdp::parse(text).validate(), Err(err), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn any_text_parses_and_round_trips(text in "(([vomcbast]=)?[ -~]{0,30}(\r\n|\n|\r)){0,20}") {
            let s = Sdp::parse(&text);
            let _ = s.validate();
            prop_assert_eq!(SdpEditor::new(&s).render(), text.clone());
            let mut e = SdpEditor::new(&s);
            for i in 0..s.media.len() {
                let f: Vec<&str> = e.formats(i).iter().take(1).copied().collect();
                e.remove_payloads(i, &f);
                e.move_payloads(i, &["0"], true);
            }
            e.remove_media(0);
            let _ = e.render();
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = String::from_utf8_lossy(&bytes);
            let s = Sdp::parse(&text);
            let _ = s.validate();
            prop_assert_eq!(SdpEditor::new(&s).render(), text.to_string());
        }
    }
}
