//! `rtpproxy_offer` / `rtpproxy_answer`: the flags, one `U`/`L` command per media stream, and
//! the SDP rewritten to the address and ports the RTPProxy answers with.

use sip::sdp::Sdp;

/// The flags of offer/answer (OpenSIPS' letters, case-insensitive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// Modifier letters passed on as they are: `A` (asymmetric), `I`/`E` (bridging), `S`
    /// (`s`/`w`: symmetric), and any letter OpenSIPS does not know.
    pub modifiers: String,
    /// `l`: lookup only (`L` even for an offer).
    pub lookup: bool,
    /// `k`: the session is created but the SDP is left as it is.
    pub keep_sdp: bool,
    /// `f`: go ahead even when the SDP carries the nortpproxy mark.
    pub force: bool,
    /// `r` (and `a`): the media address is the SDP's, not the message's source address.
    pub trust_address: bool,
    /// `c`: the session-level `c=` too when media-level ones exist.
    pub session_connection: bool,
    /// `o`: the address of `o=` too.
    pub origin: bool,
    /// `zNN`: repacketize to NN ms (sent only to a node that can).
    pub repacketize: Option<String>,
}

impl Flags {
    pub fn parse(text: &str) -> Flags {
        let mut f = Flags::default();
        let b = text.as_bytes();
        let mut i = 0;
        let digits = |from: usize| {
            let end = b.get(from..).map_or(from, |r| {
                from + r.iter().take_while(|c| c.is_ascii_digit()).count()
            });
            (text.get(from..end).unwrap_or("").to_owned(), end)
        };
        while let Some(&c) = b.get(i) {
            i += 1;
            match c.to_ascii_lowercase() {
                b'a' => {
                    f.modifiers.push('A');
                    f.trust_address = true;
                }
                b'i' => f.modifiers.push('I'),
                b'e' => f.modifiers.push('E'),
                b's' | b'w' => f.modifiers.push('S'),
                b'l' => f.lookup = true,
                b'k' => f.keep_sdp = true,
                b'f' => f.force = true,
                b'r' => f.trust_address = true,
                b'c' => f.session_connection = true,
                b'o' => f.origin = true,
                b'z' => {
                    let (n, end) = digits(i);
                    i = end;
                    if n.is_empty() {
                        log::warn!("rtpproxy: flag z without a number ignored");
                    } else {
                        f.repacketize = Some(n);
                    }
                }
                b't' => {
                    // A TTL change: needs a capability rsips does not ask for; dropped.
                    let (_, end) = digits(i);
                    i = end;
                    log::warn!("rtpproxy: flag t (TTL) is not supported and was ignored");
                }
                b'n' => {
                    if b.get(i) == Some(&b'<')
                        && let Some(close) = text.get(i..).and_then(|r| r.find('>'))
                    {
                        i += close + 1;
                    }
                    log::warn!(
                        "rtpproxy: flag n (timeout notification) is not supported and was ignored"
                    );
                }
                b'd' => {
                    let (_, end) = digits(i);
                    i = end;
                    log::warn!("rtpproxy: flag d (DTMF) is not supported and was ignored");
                }
                b' ' | b',' => {}
                other => {
                    log::warn!(
                        "rtpproxy: unknown flag `{}` passed on to the RTPProxy",
                        char::from(other)
                    );
                    f.modifiers.push(char::from(c));
                }
            }
        }
        f
    }
}

/// Transports whose payload list goes to the RTPProxy (`c<pt,…>`); with [`PLAIN`], the only
/// media streams it relays.
const RTP: [&str; 8] = [
    "rtp/avp",
    "rtp/avpf",
    "rtp/savp",
    "rtp/savpf",
    "udp/tls/rtp/savp",
    "udp/tls/rtp/savpf",
    "dccp/tls/rtp/savp",
    "dccp/tls/rtp/savpf",
];
const PLAIN: [&str; 3] = ["udp", "udptl", "udp/bfcp"];

/// One stream to relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// Index into the SDP's media list.
    pub media: usize,
    /// 1-based, counting the streams of a relayed kind (port 0 ones included).
    pub number: usize,
    pub port: u16,
    /// The address the SDP gives (its own `c=`, else the session's).
    pub address: String,
    pub ipv6: bool,
    /// `c<pt,…>` is allowed for it.
    pub rtp: bool,
    pub payloads: Vec<String>,
}

/// The streams of an SDP that go through the RTPProxy (port 0 ones left out), or why the SDP
/// cannot be used.
pub fn streams(sdp: &Sdp<'_>) -> Result<Vec<Stream>, String> {
    if !sdp.text().trim_start().starts_with("v=") {
        return Err("the body is not SDP (no v= first)".into());
    }
    if sdp.origin.is_none() {
        return Err("the SDP has no o= line".into());
    }
    if sdp.media.is_empty() {
        return Err("the SDP has no m= line".into());
    }
    let mut out = Vec::new();
    let mut number = 0;
    for (i, m) in sdp.media.iter().enumerate() {
        let t = m.transport.to_ascii_lowercase();
        let rtp = RTP.contains(&t.as_str());
        if !rtp && !PLAIN.contains(&t.as_str()) {
            continue;
        }
        number += 1;
        let Some(port) = m.port_number() else {
            return Err(format!("m= line {} has no port", i + 1));
        };
        if port == 0 {
            continue;
        }
        let Some(c) = sdp.connection_of(m) else {
            return Err(format!("media stream {} has no c= line", i + 1));
        };
        out.push(Stream {
            media: i,
            number,
            port,
            address: c.address.split('/').next().unwrap_or("").to_owned(),
            ipv6: c.addr_type.eq_ignore_ascii_case("IP6"),
            rtp,
            payloads: m.formats.iter().map(|s| (*s).to_owned()).collect(),
        });
    }
    Ok(out)
}

/// Whether an address is the null one of its family (`0.0.0.0`, `::`): a stream on hold.
pub fn is_null(addr: &str) -> bool {
    addr.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
}

/// What the RTPProxy answered a `U`/`L`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `port [ip [6]]`.
    Media {
        port: u16,
        ip: Option<String>,
        ipv6: bool,
    },
    /// `E<n>`.
    Error(u32),
    /// Anything else (port 0 included).
    Bad(String),
}

pub fn parse_reply(text: &str) -> Reply {
    let mut w = text.split_whitespace();
    let Some(first) = w.next() else {
        return Reply::Bad(text.to_owned());
    };
    if let Some(code) = first.strip_prefix('E') {
        return Reply::Error(code.parse().unwrap_or(0));
    }
    match first.parse::<u16>() {
        Ok(port) if port > 0 => {
            let ip = w.next().map(str::to_owned);
            let ipv6 = w.next().is_some_and(|f| f.starts_with('6'));
            Reply::Media { port, ip, ipv6 }
        }
        _ => Reply::Bad(text.to_owned()),
    }
}

/// What one stream becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    pub media: usize,
    pub port: u16,
    pub ip: String,
    pub ipv6: bool,
}

/// The SDP with each relayed stream's port, its connection address (media-level `c=`, else
/// the session's once; with `c` the session's as well), `a=rtcp:` and, with `o`, the origin
/// address rewritten. A null connection address stays null.
pub fn rewrite(sdp: &Sdp<'_>, relayed: &[Relayed], flags: &Flags) -> String {
    let mut new_values: Vec<Option<String>> = vec![None; sdp.lines.len()];
    let family = |v6: bool| if v6 { "IP6" } else { "IP4" };
    let connection_line = |line: usize, r: &Relayed, new_values: &mut Vec<Option<String>>| {
        let v = sdp.line_value(line);
        let mut t = v.split_ascii_whitespace();
        let (net, old_family, addr) = (
            t.next().unwrap_or("IN"),
            t.next().unwrap_or("IP4"),
            t.next().unwrap_or(""),
        );
        let value = if is_null(addr.split('/').next().unwrap_or("")) {
            let null = if r.ipv6 { "::" } else { "0.0.0.0" };
            if old_family.eq_ignore_ascii_case(family(r.ipv6)) {
                return;
            }
            format!("{net} {} {null}", family(r.ipv6))
        } else {
            format!("{net} {} {}", family(r.ipv6), r.ip)
        };
        if let Some(slot) = new_values.get_mut(line) {
            *slot = Some(value);
        }
    };
    let session_c = sdp
        .media
        .first()
        .map_or(sdp.lines.len(), |m| m.line)
        .min(sdp.lines.len());
    let session_c_line =
        (0..session_c).find(|&i| sdp.lines.get(i).and_then(|l| l.kind) == Some(b'c'));
    let origin_line = (0..session_c).find(|&i| sdp.lines.get(i).and_then(|l| l.kind) == Some(b'o'));
    let mut session_done = false;
    for r in relayed {
        let Some(m) = sdp.media.get(r.media) else {
            continue;
        };
        // m=<media> <port>[/<count>] …
        let v = sdp.line_value(m.line);
        let mut parts = v.splitn(3, ' ');
        let (kind, port, rest) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let count = port
            .split_once('/')
            .map(|(_, c)| format!("/{c}"))
            .unwrap_or_default();
        if let Some(slot) = new_values.get_mut(m.line) {
            *slot = Some(format!("{kind} {}{count} {rest}", r.port));
        }
        let media_c = (m.lines.start..m.lines.end)
            .find(|&i| sdp.lines.get(i).and_then(|l| l.kind) == Some(b'c'));
        match media_c {
            Some(line) => {
                connection_line(line, r, &mut new_values);
                if flags.session_connection
                    && !session_done
                    && let Some(sl) = session_c_line
                {
                    connection_line(sl, r, &mut new_values);
                    session_done = true;
                }
            }
            None => {
                if !session_done && let Some(sl) = session_c_line {
                    connection_line(sl, r, &mut new_values);
                    session_done = true;
                }
            }
        }
        for a in &m.attributes {
            if a.name.eq_ignore_ascii_case("rtcp") && a.value.is_some() {
                let rtcp_port = u32::from(r.port) + 1;
                if let Some(slot) = new_values.get_mut(a.line) {
                    *slot = Some(format!("rtcp:{rtcp_port} IN {} {}", family(r.ipv6), r.ip));
                }
            }
        }
        if flags.origin
            && let Some(ol) = origin_line
            && new_values.get(ol).is_some_and(Option::is_none)
        {
            let v = sdp.line_value(ol);
            let t: Vec<&str> = v.split_ascii_whitespace().collect();
            if t.len() >= 6 {
                let value = format!(
                    "{} {} {} {} {} {}",
                    t[0],
                    t[1],
                    t[2],
                    t[3],
                    family(r.ipv6),
                    r.ip
                );
                if let Some(slot) = new_values.get_mut(ol) {
                    *slot = Some(value);
                }
            }
        }
    }
    let text = sdp.text();
    let mut out = String::with_capacity(text.len() + 32);
    for (i, line) in sdp.lines.iter().enumerate() {
        match new_values.get(i).and_then(Option::as_ref) {
            Some(v) => {
                out.push_str(text.get(line.span.start..line.value.start).unwrap_or(""));
                out.push_str(v);
                out.push_str(text.get(line.value.end..line.span.end).unwrap_or(""));
            }
            None => out.push_str(text.get(line.span.clone()).unwrap_or("")),
        }
    }
    out
}

/// Whether some line of the SDP starts with the nortpproxy mark.
pub fn is_marked(sdp: &str, mark: &str) -> bool {
    !mark.is_empty() && sdp.lines().any(|l| l.starts_with(mark))
}

/// The SDP with the mark added on a line of its own after its last line end.
pub fn add_mark(sdp: &str, mark: &str) -> String {
    match sdp.rfind("\r\n") {
        Some(i) => {
            let (head, tail) = sdp.split_at(i + 2);
            format!("{head}{mark}\r\n{tail}")
        }
        None => format!("{sdp}\r\n{mark}\r\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0 8\r\na=rtcp:4001\r\nm=video 0 RTP/AVP 31\r\n\
        m=application 5000 TCP/MSRP *\r\nm=image 6000 udptl t38\r\nc=IN IP4 0.0.0.0\r\n";

    #[test]
    fn flags_read_as_opensips_letters() {
        let f = Flags::parse("roz20aIx");
        assert!(f.trust_address && f.origin);
        assert_eq!(f.repacketize.as_deref(), Some("20"));
        assert_eq!(f.modifiers, "AIx");
        let f = Flags::parse("lkfcws");
        assert!(f.lookup && f.keep_sdp && f.force && f.session_connection);
        assert_eq!(f.modifiers, "SS");
    }

    #[test]
    fn streams_count_relayed_kinds_and_skip_port_zero() {
        let sdp = Sdp::parse(OFFER);
        let s = streams(&sdp).unwrap();
        // audio (1), video on port 0 (2, skipped), MSRP over TCP (not relayed, not counted),
        // T.38 over udptl (3).
        assert_eq!(
            s.iter().map(|s| (s.media, s.number)).collect::<Vec<_>>(),
            vec![(0, 1), (3, 3)]
        );
        assert!(s[0].rtp && !s[1].rtp);
        assert_eq!(s[0].payloads, vec!["0", "8"]);
        assert_eq!(s[1].address, "0.0.0.0");
        assert!(streams(&Sdp::parse("o=x\r\n")).is_err());
        assert!(
            streams(&Sdp::parse(
                "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n"
            ))
            .is_err()
        );
    }

    #[test]
    fn replies_parse_to_port_address_and_family() {
        assert_eq!(
            parse_reply("32000 127.0.0.1 4"),
            Reply::Media {
                port: 32000,
                ip: Some("127.0.0.1".into()),
                ipv6: false
            }
        );
        assert_eq!(
            parse_reply("32000 ::1 6"),
            Reply::Media {
                port: 32000,
                ip: Some("::1".into()),
                ipv6: true
            }
        );
        assert_eq!(
            parse_reply("32000"),
            Reply::Media {
                port: 32000,
                ip: None,
                ipv6: false
            }
        );
        assert_eq!(parse_reply("E8"), Reply::Error(8));
        assert!(matches!(parse_reply("0 0.0.0.0"), Reply::Bad(_)));
        assert!(matches!(parse_reply(""), Reply::Bad(_)));
    }

    #[test]
    fn the_sdp_gets_the_relay_address_ports_and_rtcp() {
        let sdp = Sdp::parse(OFFER);
        let relayed = [
            Relayed {
                media: 0,
                port: 35000,
                ip: "203.0.113.9".into(),
                ipv6: false,
            },
            Relayed {
                media: 3,
                port: 35002,
                ip: "203.0.113.9".into(),
                ipv6: false,
            },
        ];
        let out = rewrite(&sdp, &relayed, &Flags::parse("o"));
        assert!(out.contains("o=- 1 1 IN IP4 203.0.113.9\r\n"), "{out}");
        assert!(out.contains("\r\nc=IN IP4 203.0.113.9\r\nt=0 0"), "{out}");
        assert!(
            out.contains("m=audio 35000 RTP/AVP 0 8\r\na=rtcp:35001 IN IP4 203.0.113.9\r\n"),
            "{out}"
        );
        assert!(out.contains("m=video 0 RTP/AVP 31\r\n"), "{out}");
        assert!(out.contains("m=application 5000 TCP/MSRP *\r\n"), "{out}");
        // The image stream's own null c= stays null; its port changes.
        assert!(
            out.contains("m=image 35002 udptl t38\r\nc=IN IP4 0.0.0.0\r\n"),
            "{out}"
        );
        // Without o the origin is kept.
        let out = rewrite(&sdp, &relayed[..1], &Flags::default());
        assert!(out.contains("o=- 1 1 IN IP4 192.0.2.1\r\n"), "{out}");
    }

    #[test]
    fn the_mark_goes_after_the_last_line_end() {
        assert_eq!(
            add_mark("v=0\r\n", "a=nortpproxy:yes"),
            "v=0\r\na=nortpproxy:yes\r\n"
        );
        assert!(is_marked("v=0\r\na=nortpproxy:yes\r\n", "a=nortpproxy:yes"));
        assert!(!is_marked("v=0\r\n", "a=nortpproxy:yes"));
        assert!(!is_marked("v=0\r\n", ""));
    }

    proptest::proptest! {
        #[test]
        fn any_sdp_flags_and_reply_are_handled_without_panicking(
            text in ".{0,300}", flags in ".{0,20}", reply in ".{0,40}", port in 1u16..,
        ) {
            let sdp = Sdp::parse(&text);
            let f = Flags::parse(&flags);
            let _ = parse_reply(&reply);
            if let Ok(streams) = streams(&sdp) {
                let relayed: Vec<Relayed> = streams
                    .iter()
                    .map(|s| Relayed { media: s.media, port, ip: "192.0.2.1".into(), ipv6: false })
                    .collect();
                let out = rewrite(&sdp, &relayed, &f);
                let again = Sdp::parse(&out);
                proptest::prop_assert_eq!(again.media.len(), sdp.media.len());
                proptest::prop_assert!(is_marked(&add_mark(&out, "a=m"), "a=m"));
            }
        }
    }
}
