//! Reading core PVs from a [`MsgCtx`]. Values taken from the message share its buffer (no copy).

use sip::{NameAddr, SipMessage, Uri};

use super::{AddrPart, CorePv, HeaderSel, Index, UriPart};
use crate::ctx::MsgCtx;
use crate::value::Value;

fn text(msg: &SipMessage, s: &str) -> Value {
    Value::Str(msg.share(s))
}

fn opt_text(msg: &SipMessage, s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| text(msg, s))
}

/// A part of a URI given as text; `owned` says the text is not in the message (a rewrite).
fn uri_part(msg: &SipMessage, uri: Option<&str>, part: UriPart) -> Value {
    let Some(u) = uri else { return Value::Null };
    if part == UriPart::Whole {
        return text(msg, u);
    }
    let Ok(p) = Uri::parse(u) else {
        return Value::Null;
    };
    match part {
        UriPart::Whole => text(msg, u),
        UriPart::User => opt_text(msg, p.user()),
        UriPart::Host => opt_text(msg, p.host().map(|h| h.as_str())),
        UriPart::Port => p
            .port()
            .map_or(Value::Null, |port| Value::Int(i64::from(port))),
        UriPart::Transport => opt_text(msg, p.transport()),
    }
}

fn addr_part(msg: &SipMessage, a: Option<NameAddr<'_>>, part: AddrPart) -> Value {
    let Some(a) = a else { return Value::Null };
    match part {
        AddrPart::Uri => text(msg, a.uri().as_str()),
        AddrPart::User => opt_text(msg, a.uri().user()),
        AddrPart::Host => opt_text(msg, a.uri().host().map(|h| h.as_str())),
        AddrPart::Name => a.display_name().map_or(Value::Null, |n| match n {
            std::borrow::Cow::Borrowed(b) => text(msg, b),
            std::borrow::Cow::Owned(o) => Value::from(o),
        }),
        AddrPart::Tag => opt_text(msg, a.tag()),
        AddrPart::Param(name) => opt_text(msg, a.param(name).flatten()),
    }
}

/// The header lines a selector names, in order (each line is one value, as in OpenSIPS).
fn header_lines<'m>(msg: &'m SipMessage, sel: &'m HeaderSel) -> Vec<&'m str> {
    msg.header_lines_str(&sel.text).collect()
}

fn pick(msg: &SipMessage, values: &[&str], index: Index) -> Value {
    match index {
        Index::First => opt_text(msg, values.first().copied()),
        Index::At(i) => {
            let len = values.len() as i64;
            let at = if i < 0 { len + i } else { i };
            if at < 0 {
                Value::Null
            } else {
                opt_text(msg, values.get(at as usize).copied())
            }
        }
        Index::All if values.is_empty() => Value::Null,
        Index::All => Value::from(values.join(", ")),
    }
}

/// A q value (× 1000, -1 = none) as OpenSIPS prints it: "1", "0", "0.5", "0.25", "0.125"; empty
/// when unspecified.
pub fn q_text(q: i32) -> String {
    match q {
        q if q < 0 => String::new(),
        q if q >= 1000 => "1".into(),
        0 => "0".into(),
        q => {
            let digits = format!("{q:03}");
            format!("0.{}", digits.trim_end_matches('0'))
        }
    }
}

/// The branch tm is handling: the one a branch route builds, or a reply's.
pub(crate) fn current_branch(ctx: &MsgCtx) -> usize {
    ctx.branch_index
        .or(ctx.t_reply.as_ref().map(|r| r.branch))
        .unwrap_or(0)
}

/// `$tm.branch.<field>[i]` (OpenSIPS tm.c): no index is the current branch, negative counts
/// from the last; NULL without a transaction or past the branches.
fn tm_branch(ctx: &MsgCtx, field: &super::TmBranchField, at: Option<i64>) -> Value {
    use super::TmBranchField as F;
    let Some(tx) = &ctx.tx else {
        return Value::Null;
    };
    let branches = tx.branches();
    let i = match at {
        Some(i) if i < 0 => branches.len() as i64 + i,
        Some(i) => i,
        None => current_branch(ctx) as i64,
    };
    let Some(b) = usize::try_from(i).ok().and_then(|i| branches.get(i)) else {
        // The branch a branch_route builds joins the transaction after the route; OpenSIPS
        // attaches its attributes before, so they are the message branch's.
        return match field {
            F::Attr(name)
                if ctx.branch_index == Some(branches.len()) && i == branches.len() as i64 =>
            {
                ctx.branch_attrs.get(name).cloned().unwrap_or(Value::Null)
            }
            _ => Value::Null,
        };
    };
    match field {
        F::Uri => Value::from(b.uri.clone()),
        F::Duri => b.dst_uri.clone().map_or(Value::Null, Value::from),
        F::Path => b.path.clone().map_or(Value::Null, Value::from),
        F::Q => Value::from(q_text(b.q)),
        F::Flags => Value::Int(b.flags as i64),
        F::Flag(bit) => Value::Int(i64::from(*bit < 64 && b.flags & (1 << bit) != 0)),
        F::Socket => b.socket.clone().map_or(Value::Null, Value::from),
        F::LastReceived if b.last_received == 0 => Value::Null,
        F::LastReceived => Value::Int(i64::from(b.last_received)),
        F::Type => Value::str(if b.phony { "phony" } else { "sip" }),
        F::Attr(name) => b.attrs.get(name).cloned().unwrap_or(Value::Null),
    }
}

/// tm's `$T_*` variables (OpenSIPS tm.c `pv_get_tm_*`). The route they are read in is told
/// by what tm put in the context: a reply being handled (onreply and failure routes), a branch
/// index without one (branch_route), neither (request route).
fn tm_field(ctx: &MsgCtx, field: &super::TmField) -> Value {
    use super::TmField as F;
    match field {
        // The reply handled (onreply), the winning one (failure), none in a branch route, the
        // last one sent upstream in a request route; 0 without a transaction.
        F::ReplyCode => Value::Int(i64::from(match (&ctx.t_reply, &ctx.tx) {
            (Some(r), _) => r.code,
            (None, Some(_)) if ctx.branch_index.is_some() => 0,
            (None, Some(tx)) => tx.last_status(),
            (None, None) => 0,
        })),
        // The current branch's R-URI once there is a transaction; the message's before.
        F::Ruri => {
            let branch_uri = ctx.tx.as_ref().and_then(|tx| {
                tx.branches()
                    .into_iter()
                    .nth(current_branch(ctx))
                    .map(|b| b.uri)
            });
            match branch_uri {
                Some(uri) => Value::from(uri),
                None => ctx
                    .ruri()
                    .map_or(Value::Null, |u| Value::from(u.to_owned())),
            }
        }
        // Only branch, onreply and failure routes have a current branch.
        F::BranchIdx => ctx
            .branch_index
            .map_or(Value::Null, |b| Value::Int(b as i64)),
        F::Id => ctx.tx.as_ref().map_or(Value::Null, |t| Value::from(t.id())),
        F::FrTimeout | F::FrInvTimeout => {
            let inv = matches!(field, F::FrInvTimeout);
            let secs = match ctx.tx.as_ref().and_then(|t| t.fr_timeouts()) {
                Some((fr, fr_inv)) => {
                    if inv {
                        fr_inv
                    } else {
                        fr
                    }
                }
                None => {
                    let set = if inv {
                        ctx.fr_inv_timeout
                    } else {
                        ctx.fr_timeout
                    };
                    set.filter(|s| *s != 0)
                        .unwrap_or_else(|| tm_default_timeout(ctx, inv))
                }
            };
            Value::Int(i64::from(secs))
        }
        F::BranchLastReplyCode(at) => {
            let Some(tx) = &ctx.tx else {
                return Value::Null;
            };
            let branches = tx.branches();
            let i = match at {
                Some(i) if *i < 0 => branches.len() as i64 + i,
                Some(i) => *i,
                None => current_branch(ctx) as i64,
            };
            usize::try_from(i)
                .ok()
                .and_then(|i| branches.get(i))
                .map_or(Value::Null, |b| Value::Int(i64::from(b.last_received)))
        }
    }
}

/// tm's `fr_timeout` / `fr_inv_timeout` modparam, what `$T_fr_timeout` reads before the
/// transaction exists; tm's defaults (30 s, 120 s) when the script sets none.
fn tm_default_timeout(ctx: &MsgCtx, inv: bool) -> u32 {
    let (name, default) = if inv {
        ("fr_inv_timeout", 120)
    } else {
        ("fr_timeout", 30)
    };
    ctx.script
        .as_ref()
        .and_then(|s| {
            s.modparams("tm")
                .filter_map(|(n, v)| match v {
                    cfg::ast::ParamValue::Int(secs) if n == name => u32::try_from(*secs).ok(),
                    _ => None,
                })
                .last()
        })
        .map_or(default, |s| s.max(1))
}

/// `$ds`: the R-URI (only once the script has changed it) and every appended branch, as the
/// Contact header of a 3xx would list them; NULL when there is nothing to list.
fn dest_set(ctx: &MsgCtx) -> Option<String> {
    let mut out = String::from("Contact: ");
    let mut n = 0;
    let mut push = |uri: &str, q: i32| {
        if n > 0 {
            out.push_str(", ");
        }
        n += 1;
        out.push('<');
        out.push_str(uri);
        out.push('>');
        if q >= 0 {
            out.push_str(";q=");
            out.push_str(&q_text(q));
        }
    };
    if let Some(ruri) = &ctx.new_ruri {
        push(ruri, ctx.ruri_q);
    }
    for b in &ctx.branches {
        push(&b.uri, b.q);
    }
    (n > 0).then_some(out)
}

impl CorePv {
    /// The PV's current value; NULL when the message has no such part.
    pub fn read(&self, ctx: &MsgCtx) -> Value {
        let msg = &ctx.msg;
        match self {
            CorePv::Ruri(part) => match &ctx.new_ruri {
                Some(new) => owned_uri_part(new, *part),
                None => uri_part(msg, msg.request_uri_str(), *part),
            },
            CorePv::OrigRuri(part) => uri_part(msg, msg.request_uri_str(), *part),
            CorePv::DstUri(part) => ctx
                .dst_uri
                .as_deref()
                .map_or(Value::Null, |d| owned_uri_part(d, *part)),
            CorePv::Method => match msg.method_str() {
                Some(m) => text(msg, m),
                None => msg.cseq().map_or(Value::Null, |c| text(msg, c.method_str)),
            },
            CorePv::Status => msg
                .status()
                .map_or(Value::Null, |c| Value::Int(i64::from(c))),
            CorePv::Reason => opt_text(msg, msg.reason_phrase()),
            CorePv::CallId => msg.call_id().map_or(Value::Null, |c| text(msg, c)),
            CorePv::CSeq => msg
                .cseq()
                .map_or(Value::Null, |c| Value::Int(i64::from(c.seq))),
            CorePv::ContentLength => match msg.content_length() {
                Ok(Some(n)) => Value::Int(i64::from(n)),
                _ => Value::Null,
            },
            CorePv::ContentType => opt_text(msg, msg.header(sip::HeaderName::ContentType)),
            CorePv::UserAgent => opt_text(msg, msg.user_agent()),
            CorePv::From(part) => addr_part(msg, msg.from_header().ok(), *part),
            CorePv::To(part) => addr_part(msg, msg.to_header().ok(), *part),
            CorePv::Contact => opt_text(msg, msg.values(sip::HeaderName::Contact).next()),
            CorePv::Header(sel, index) => pick(msg, &header_lines(msg, sel), *index),
            CorePv::HeaderCount(sel) => Value::Int(header_lines(msg, sel).len() as i64),
            CorePv::MsgLen => Value::Int(msg.as_bytes().len() as i64),
            CorePv::MsgBuf => Value::from(String::from_utf8_lossy(msg.as_bytes()).into_owned()),
            // Once an SDP variable changed the body, `$rb` shows the changed one (OpenSIPS'
            // get_body returns the sdp_ops body).
            CorePv::Body if ctx.sdp_ops.is_some() => {
                let (body, _) = super::sdp_body::current_body(ctx);
                Value::from(String::from_utf8_lossy(&body).into_owned())
            }
            CorePv::Body => Value::from(String::from_utf8_lossy(msg.body()).into_owned()),
            CorePv::BodyPart(want) if ctx.sdp_ops.is_some() => {
                let (body, ct) = super::sdp_body::current_body(ctx);
                body_part(ct.as_deref(), &body, want).map_or(Value::Null, Value::from)
            }
            CorePv::BodyPart(want) => {
                body_part(msg.header(sip::HeaderName::ContentType), msg.body(), want)
                    .map_or(Value::Null, Value::from)
            }
            CorePv::Sdp => super::sdp_body::current_sdp(ctx).map_or(Value::Null, Value::from),
            CorePv::SrcIp => ctx
                .receipt
                .as_ref()
                .map_or(Value::Null, |r| Value::from(r.source.ip().to_string())),
            CorePv::SrcPort => ctx
                .receipt
                .as_ref()
                .map_or(Value::Null, |r| Value::Int(i64::from(r.source.port()))),
            CorePv::Retcode => Value::Int(ctx.retcode),
            CorePv::AddrHeader(name, part) => {
                let first = msg
                    .header_lines_str(name)
                    .next()
                    .and_then(|v| sip::split_values(v).next());
                addr_part(msg, first.and_then(|v| NameAddr::parse(v).ok()), *part)
            }
            CorePv::Path => {
                let all: Vec<&str> = msg.values(sip::HeaderName::Path).collect();
                if all.is_empty() {
                    Value::Null
                } else {
                    Value::from(all.join(","))
                }
            }
            CorePv::Auth(part) => auth_part(msg, *part),
            CorePv::IsRequest => Value::Int(i64::from(msg.is_request())),
            CorePv::MsgType => Value::str(if msg.is_request() { "request" } else { "reply" }),
            CorePv::TimeSecs | CorePv::TimeMicros => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                Value::Int(if *self == CorePv::TimeSecs {
                    now.as_secs() as i64
                } else {
                    i64::from(now.subsec_micros())
                })
            }
            CorePv::RuriQ if msg.is_request() => Value::Int(i64::from(ctx.ruri_q)),
            CorePv::RuriQ if msg.is_request() => Value::Int(i64::from(ctx.ruri_q)),
            CorePv::RuriQ => Value::Null,
            CorePv::DestSet => dest_set(ctx).map_or(Value::Null, Value::from),
            CorePv::Startup => Value::Int(super::time::startup_secs()),
            CorePv::MsgId => Value::Int(ctx.id as i64),
            CorePv::Pid => Value::Int(i64::from(std::process::id())),
            CorePv::Time(fmt) => Value::from(super::time::strftime(unix_now(), fmt)),
            CorePv::TimeCtime => Value::from(super::time::ctime(unix_now())),
            CorePv::MsgFlags => Value::Int(ctx.flags as i64),
            CorePv::BranchFlags => Value::Int(ctx.branch_flags as i64),
            CorePv::ContactField(f) => {
                let Some(Ok(c)) = msg.addresses(sip::HeaderName::Contact).next() else {
                    return Value::Null;
                };
                use super::ContactField as F;
                match f {
                    F::Uri => text(msg, c.uri().as_str()),
                    F::Name => addr_part(msg, Some(c), AddrPart::Name),
                    F::Q => opt_text(msg, c.q()),
                    F::Expires => c
                        .expires()
                        .map_or(Value::Null, |e| Value::Int(i64::from(e))),
                    F::Methods => opt_text(msg, c.param("methods").flatten()),
                    F::Received => opt_text(msg, c.param("received").flatten()),
                    F::Params => opt_text(msg, Some(c.params().as_str()).filter(|p| !p.is_empty())),
                }
            }
            CorePv::BranchLastIdx => Value::Int(ctx.branches.len() as i64),
            CorePv::RrParams => ctx.rr_params.clone().map_or(Value::Null, Value::from),
            CorePv::Branch(field, i) => {
                use super::BranchField as F;
                let count = ctx.branches.len() as i64 + 1;
                let i = if *i < 0 { count + i } else { *i };
                if i < 0 || i >= count {
                    return Value::Null;
                }
                if i == 0 {
                    // Branch 0 is the Request-URI's.
                    return match field {
                        F::Uri => ctx
                            .ruri()
                            .map_or(Value::Null, |u| Value::from(u.to_owned())),
                        F::Duri => ctx.dst_uri.clone().map_or(Value::Null, Value::from),
                        F::Q => Value::from(q_text(ctx.ruri_q)),
                        F::Flags => Value::Int(ctx.branch_flags as i64),
                        F::Path => Value::Null,
                        F::Socket => ctx.send_socket.clone().map_or(Value::Null, Value::from),
                    };
                }
                let Some(b) = ctx.branches.get((i - 1) as usize) else {
                    return Value::Null;
                };
                match field {
                    F::Uri => Value::from(b.uri.clone()),
                    F::Duri => b.dst_uri.clone().map_or(Value::Null, Value::from),
                    F::Q => Value::from(q_text(b.q)),
                    F::Flags => Value::Int(b.flags as i64),
                    F::Socket => b.socket.clone().map_or(Value::Null, Value::from),
                    F::Path => Value::Null,
                }
            }
            CorePv::HeaderNameAt(i) => {
                let names: Vec<&str> = msg.headers().map(|h| h.name_str).collect();
                pick(msg, &names, Index::At(*i))
            }
            CorePv::Color(c) => Value::from(color(c)),
            CorePv::SocketIn(field) => match ctx.receipt.as_ref() {
                Some(r) => {
                    let socket = ctx.script.as_ref().and_then(|s| {
                        s.listen_sockets()
                            .iter()
                            .find(|x| x.proto == r.proto && x.addr == Some(r.local))
                            .cloned()
                    });
                    socket_field(r.proto, r.local, *field, socket.as_ref())
                }
                None => Value::Null,
            },
            CorePv::Tm(field) => tm_field(ctx, field),
            CorePv::TmBranch(field, at) => tm_branch(ctx, field, *at),
            CorePv::BranchAttr(name, at) => ctx.branch_attr(*at, name),
            CorePv::ProxyProtocol(field) => {
                use super::ProxyField as F;
                match ctx.receipt.as_ref().and_then(|r| r.proxy) {
                    None => Value::Null,
                    Some((src, dst)) => match field {
                        F::SrcIp => Value::from(src.ip().to_string()),
                        F::SrcPort => Value::Int(i64::from(src.port())),
                        F::DstIp => Value::from(dst.ip().to_string()),
                        F::DstPort => Value::Int(i64::from(dst.port())),
                        F::Af => Value::str(if src.is_ipv4() { "INET" } else { "INET6" }),
                    },
                }
            }
            CorePv::Err(field) => match &ctx.err {
                None => Value::Null,
                Some(e) => match field {
                    super::ErrField::Class => Value::Int(e.class),
                    super::ErrField::Level => Value::Int(e.level),
                    super::ErrField::Info => Value::from(e.info.clone()),
                    super::ErrField::Rcode => Value::Int(e.rcode),
                    super::ErrField::Rreason => Value::from(e.rreason.clone()),
                },
            },
            CorePv::SocketOut(field) => match ctx.send_socket.as_deref() {
                None => Value::Null,
                Some(name) => match (field, crate::forward::socket_address(name)) {
                    (None, _) => Value::from(name.to_owned()),
                    (Some(_), Some((proto, addr))) => {
                        let socket = ctx.script.as_ref().and_then(|s| {
                            s.listen_sockets()
                                .iter()
                                .find(|x| x.proto == proto && x.addr == Some(addr))
                                .cloned()
                        });
                        socket_field(proto, addr, *field, socket.as_ref())
                    }
                    (Some(_), None) => Value::Null,
                },
            },
        }
    }
}

/// The body part of content type `want` (lower case): a part of a multipart body, or the whole
/// body when its own type matches (RFC 2046 §5.1: parts between `--boundary` lines, each with
/// its headers, a blank line, then its content).
fn body_part(ct: Option<&str>, body: &[u8], want: &str) -> Option<String> {
    let ct = ct?.trim();
    let media = |t: &str| {
        t.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    let body = String::from_utf8_lossy(body).into_owned();
    if media(ct) == want {
        return Some(body);
    }
    if !media(ct).starts_with("multipart/") {
        return None;
    }
    let boundary = ct.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })?;
    let delimiter = format!("--{boundary}");
    for part in body.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        // No headers: the part starts with its empty line.
        let (head, content) = match part.strip_prefix("\r\n") {
            Some(content) => ("", content),
            None => part.split_once("\r\n\r\n").unwrap_or(("", part)),
        };
        let part_type = head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("content-type")
                .then(|| media(v))
        });
        // A part without Content-Type is text/plain (RFC 2046 §5.1.1).
        if part_type.as_deref().unwrap_or("text/plain") == want {
            return Some(content.strip_suffix("\r\n").unwrap_or(content).to_owned());
        }
    }
    None
}

/// A field of a socket, with what its `socket=` line says (`as`, `tag`, `anycast`).
fn socket_field(
    proto: &str,
    addr: std::net::SocketAddr,
    field: Option<super::SocketField>,
    socket: Option<&crate::forward::Socket>,
) -> Value {
    use super::SocketField as F;
    match field {
        Some(F::AdvertisedIp) => socket
            .and_then(|s| s.advertised.as_ref())
            .map_or(Value::Null, |(h, _)| Value::from(h.clone())),
        Some(F::AdvertisedPort) => socket
            .and_then(|s| s.advertised.as_ref())
            .map_or(Value::Null, |(_, p)| {
                Value::Int(i64::from(p.unwrap_or(addr.port())))
            }),
        Some(F::Tag) => socket
            .and_then(|s| s.tag.clone())
            .map_or(Value::Null, Value::from),
        Some(F::Anycast) => Value::Int(i64::from(socket.is_some_and(|s| s.anycast))),
        other => socket_value(proto, addr, other),
    }
}

/// `proto:ip:port` of a socket, or one of its fields.
fn socket_value(
    proto: &str,
    addr: std::net::SocketAddr,
    field: Option<super::SocketField>,
) -> Value {
    use super::SocketField as F;
    match field {
        None => {
            let ip = match addr.ip() {
                std::net::IpAddr::V6(a) => format!("[{a}]"),
                a => a.to_string(),
            };
            Value::from(format!("{proto}:{ip}:{}", addr.port()))
        }
        Some(F::Ip) => Value::from(addr.ip().to_string()),
        Some(F::Port) => Value::Int(i64::from(addr.port())),
        Some(F::Proto) => Value::from(proto.to_owned()),
        Some(F::Af) => Value::str(if addr.is_ipv4() { "INET" } else { "INET6" }),
        Some(F::AdvertisedIp | F::AdvertisedPort | F::Tag | F::Anycast) => Value::Null,
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `$C(xy)`: ANSI colours; x/y from `s r g y b p c w` (black … white) or `x` (default).
fn color(spec: &str) -> String {
    let code = |c: Option<char>, base: u8| match c {
        Some('s') => Some(base),
        Some('r') => Some(base + 1),
        Some('g') => Some(base + 2),
        Some('y') => Some(base + 3),
        Some('b') => Some(base + 4),
        Some('p') => Some(base + 5),
        Some('c') => Some(base + 6),
        Some('w') => Some(base + 7),
        _ => None,
    };
    let mut ch = spec.chars();
    let (fg, bg) = (code(ch.next(), 30), code(ch.next(), 40));
    match (fg, bg) {
        (None, None) => "\x1b[0m".to_owned(),
        (Some(f), None) => format!("\x1b[{f}m"),
        (None, Some(b)) => format!("\x1b[{b}m"),
        (Some(f), Some(b)) => format!("\x1b[{f};{b}m"),
    }
}

/// The credentials the auth PVs read: Authorization for REGISTER, Proxy-Authorization otherwise.
fn auth_part(msg: &SipMessage, part: super::AuthPart) -> Value {
    use super::AuthPart as P;
    let which = if msg.method() == Some(sip::Method::Register) {
        sip::HeaderName::Authorization
    } else {
        sip::HeaderName::ProxyAuthorization
    };
    let Some(Ok(cred)) = msg.auth_headers(which).next() else {
        return Value::Null;
    };
    let param = |name: &str| {
        cred.param(name)
            .map_or(Value::Null, |v| Value::from(v.into_owned()))
    };
    match part {
        P::Username => param("username"),
        P::User | P::Domain => {
            let Some(u) = cred.username() else {
                return Value::Null;
            };
            match (u.split_once('@'), part) {
                (Some((user, _)), P::User) => Value::from(user.to_owned()),
                (Some((_, domain)), _) => Value::from(domain.to_owned()),
                (None, P::User) => Value::from(u.into_owned()),
                (None, _) => param("realm"),
            }
        }
        P::Realm => param("realm"),
        P::Nonce => param("nonce"),
        P::Uri => param("uri"),
        P::Response => param("response"),
        P::Cnonce => param("cnonce"),
        P::Opaque => param("opaque"),
        P::Algorithm => param("algorithm"),
        P::Qop => param("qop"),
        P::Nc => param("nc"),
    }
}

/// A part of a URI that lives in the context (a rewrite), copied out.
fn owned_uri_part(u: &str, part: UriPart) -> Value {
    if part == UriPart::Whole {
        return Value::from(u);
    }
    let Ok(p) = Uri::parse(u) else {
        return Value::Null;
    };
    let s = match part {
        UriPart::Whole => Some(u),
        UriPart::User => p.user(),
        UriPart::Host => p.host().map(|h| h.as_str()),
        UriPart::Port => {
            return p
                .port()
                .map_or(Value::Null, |port| Value::Int(i64::from(port)));
        }
        UriPart::Transport => p.transport(),
    };
    s.map_or(Value::Null, Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::Receipt;
    use bytes::Bytes;

    #[test]
    fn q_values_print_like_opensips_q2str() {
        let printed: Vec<String> = [-1, 0, 1, 10, 100, 125, 500, 999, 1000, 1500]
            .into_iter()
            .map(q_text)
            .collect();
        assert_eq!(
            printed,
            [
                "", "0", "0.001", "0.01", "0.1", "0.125", "0.5", "0.999", "1", "1"
            ]
        );
    }

    const REQ: &[u8] = b"INVITE sip:bob@biloxi.com:5062;transport=tcp SIP/2.0\r\n\
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1\r\n\
v: SIP/2.0/UDP p2.example.com;branch=z9hG4bK2\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: \"Alice A\" <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>, <sip:alice@192.0.2.4>\r\n\
X-Custom: one\r\n\
x-custom: two\r\n\
User-Agent: softphone/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    fn ctx() -> MsgCtx {
        let msg = SipMessage::parse(Bytes::from_static(REQ)).unwrap();
        MsgCtx::new(msg).with_receipt(Receipt {
            source: "192.0.2.10:5070".parse().unwrap(),
            proto: "udp",
            local: "127.0.0.1:5060".parse().unwrap(),
            conn: None,
            proxy: None,
        })
    }

    fn read(ctx: &MsgCtx, pv: &str) -> Value {
        let spec = cfg::pv::parse(pv).unwrap();
        CorePv::resolve(&spec)
            .unwrap_or_else(|| panic!("{pv} resolves"))
            .read(ctx)
    }

    #[test]
    fn body_parts_by_content_type() {
        let c = ctx();
        assert_eq!(read(&c, "$rb(application/sdp)"), Value::str("v=0\n"));
        assert_eq!(read(&c, "$rb(text/plain)"), Value::Null);
        let multi = b"MESSAGE sip:bob@biloxi.com SIP/2.0\r\nVia: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: m\r\nCSeq: 1 MESSAGE\r\n\
Content-Type: multipart/mixed;boundary=\"xyz\"\r\nContent-Length: 120\r\n\r\n\
--xyz\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--xyz\r\n\
Content-Type: application/isup\r\n\r\nISUP-BYTES\r\n--xyz\r\n\r\nplain\r\n--xyz--\r\n";
        let body_len = multi.len() - multi.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4;
        let text = String::from_utf8_lossy(multi).replace(
            "Content-Length: 120",
            &format!("Content-Length: {body_len}"),
        );
        let m = MsgCtx::new(SipMessage::parse(Bytes::from(text)).unwrap());
        assert_eq!(read(&m, "$rb(application/isup)"), Value::str("ISUP-BYTES"));
        assert_eq!(read(&m, "$rb(application/sdp)"), Value::str("v=0"));
        assert_eq!(
            read(&m, "$rb(text/plain)"),
            Value::str("plain"),
            "no Content-Type: text/plain"
        );
        assert_eq!(read(&m, "$rb(image/png)"), Value::Null);
    }

    #[test]
    fn request_line_and_headers() {
        let c = ctx();
        assert_eq!(
            read(&c, "$ru"),
            Value::str("sip:bob@biloxi.com:5062;transport=tcp")
        );
        assert_eq!(read(&c, "$rU"), Value::str("bob"));
        assert_eq!(read(&c, "$rd"), Value::str("biloxi.com"));
        assert_eq!(read(&c, "$rp"), Value::Int(5062));
        assert_eq!(read(&c, "$rP"), Value::str("tcp"));
        assert_eq!(read(&c, "$rm"), Value::str("INVITE"));
        assert_eq!(read(&c, "$ci"), Value::str("a84b4c76e66710"));
        assert_eq!(read(&c, "$cs"), Value::Int(314159));
        assert_eq!(read(&c, "$cl"), Value::Int(4));
        assert_eq!(read(&c, "$cT"), Value::str("application/sdp"));
        assert_eq!(read(&c, "$ua"), Value::str("softphone/1.0"));
        assert_eq!(read(&c, "$fu"), Value::str("sip:alice@atlanta.com"));
        assert_eq!(read(&c, "$fU"), Value::str("alice"));
        assert_eq!(read(&c, "$fd"), Value::str("atlanta.com"));
        assert_eq!(read(&c, "$fn"), Value::str("Alice A"));
        assert_eq!(read(&c, "$ft"), Value::str("1928301774"));
        assert_eq!(read(&c, "$tu"), Value::str("sip:bob@biloxi.com"));
        assert_eq!(
            read(&c, "$tt"),
            Value::Null,
            "an initial request has no To tag"
        );
        assert_eq!(read(&c, "$ct"), Value::str("<sip:alice@pc33.atlanta.com>"));
        assert_eq!(read(&c, "$rs"), Value::Null);
        assert_eq!(read(&c, "$si"), Value::str("192.0.2.10"));
        assert_eq!(read(&c, "$sp"), Value::Int(5070));
        assert_eq!(read(&c, "$ml"), Value::Int(REQ.len() as i64));
        assert_eq!(read(&c, "$rb"), Value::str("v=0\n"));
        assert_eq!(
            read(&c, "$ct.fields(uri)"),
            Value::str("sip:alice@pc33.atlanta.com")
        );
        assert_eq!(read(&c, "$ct.fields(expires)"), Value::Null);
        assert_eq!(read(&c, "$mf"), Value::Int(0));
        assert_eq!(read(&c, "$socket_in"), Value::str("udp:127.0.0.1:5060"));
        assert_eq!(read(&c, "$socket_in(proto)"), Value::str("udp"));
        assert_eq!(read(&c, "$socket_in(port)"), Value::Int(5060));
        assert_eq!(read(&c, "$socket_in(ip)"), Value::str("127.0.0.1"));
        assert_eq!(read(&c, "$socket_in(af)"), Value::str("INET"));
    }

    #[test]
    fn header_pvs_use_lines_compact_names_and_indexes() {
        let c = ctx();
        assert_eq!(
            read(&c, "$hdr(Via)"),
            Value::str("SIP/2.0/UDP p1.example.com;branch=z9hG4bK1")
        );
        assert_eq!(
            read(&c, "$(hdr(via)[1])"),
            Value::str("SIP/2.0/UDP p2.example.com;branch=z9hG4bK2")
        );
        assert_eq!(
            read(&c, "$(hdr(v)[-1])"),
            Value::str("SIP/2.0/UDP p2.example.com;branch=z9hG4bK2")
        );
        assert_eq!(read(&c, "$(hdr(Via)[2])"), Value::Null);
        assert_eq!(read(&c, "$(hdr(Via)[-3])"), Value::Null);
        assert_eq!(read(&c, "$(hdr(X-Custom)[*])"), Value::str("one, two"));
        assert_eq!(read(&c, "$hdrcnt(x-CUSTOM)"), Value::Int(2));
        assert_eq!(read(&c, "$hdrcnt(Route)"), Value::Int(0));
        assert_eq!(read(&c, "$hdr(Route)"), Value::Null);
    }

    #[test]
    fn rewrites_change_ru_but_not_ou() {
        let mut c = ctx();
        c.new_ruri = Some("sip:carol@chicago.com".into());
        c.dst_uri = Some("sip:10.0.0.7:5080;transport=udp".into());
        assert_eq!(read(&c, "$ru"), Value::str("sip:carol@chicago.com"));
        assert_eq!(read(&c, "$rU"), Value::str("carol"));
        assert_eq!(
            read(&c, "$ou"),
            Value::str("sip:bob@biloxi.com:5062;transport=tcp")
        );
        assert_eq!(read(&c, "$oU"), Value::str("bob"));
        assert_eq!(read(&c, "$dd"), Value::str("10.0.0.7"));
        assert_eq!(read(&c, "$dp"), Value::Int(5080));
        assert_eq!(
            read(&c, "$du"),
            Value::str("sip:10.0.0.7:5080;transport=udp")
        );
    }

    #[test]
    fn reads_share_the_message_buffer() {
        let c = ctx();
        let Value::Str(v) = read(&c, "$ci") else {
            panic!()
        };
        let base = c.msg.as_bytes().as_ptr() as usize;
        let p = v.as_ptr() as usize;
        assert!(p >= base && p < base + REQ.len(), "no copy of the Call-ID");
    }

    #[test]
    fn replies() {
        let raw = b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n";
        let c = MsgCtx::new(SipMessage::parse(Bytes::from_static(raw)).unwrap());
        assert_eq!(read(&c, "$rs"), Value::Int(486));
        assert_eq!(read(&c, "$rr"), Value::str("Busy Here"));
        assert_eq!(
            read(&c, "$rm"),
            Value::str("INVITE"),
            "the CSeq method for replies"
        );
        assert_eq!(read(&c, "$ru"), Value::Null);
        assert_eq!(read(&c, "$tt"), Value::str("2"));
    }

    #[test]
    fn identity_auth_and_misc_pvs() {
        let raw = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP a;branch=z9hG4bKx\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 7 INVITE\r\n\
P-Asserted-Identity: \"Alice\" <sip:+15551234@carrier.example>, <tel:+15551234>\r\n\
P-Preferred-Identity: \"Al\" <sip:al@pref.example>\r\n\
Refer-To: <sip:carol@chicago.com>\r\n\
Diversion: <sip:dave@example.org>;reason=busy;privacy=full\r\n\
Remote-Party-ID: \"Eve\" <sip:eve@rpid.example>;party=calling;screen=yes\r\n\
Path: <sip:p1.example.com;lr>\r\nPath: <sip:p2.example.com;lr>\r\n\
Proxy-Authorization: Digest username=\"alice@atlanta.com\", realm=\"atlanta.com\", nonce=\"abc\", uri=\"sip:bob@biloxi.com\", response=\"0123\", qop=auth, nc=00000001, cnonce=\"xyz\", algorithm=SHA-256\r\n\
Content-Length: 0\r\n\r\n";
        let c = MsgCtx::new(SipMessage::parse(Bytes::from_static(raw)).unwrap());
        assert_eq!(read(&c, "$ai"), Value::str("sip:+15551234@carrier.example"));
        assert_eq!(read(&c, "$pu"), Value::str("sip:al@pref.example"));
        assert_eq!(read(&c, "$pU"), Value::str("al"));
        assert_eq!(read(&c, "$pd"), Value::str("pref.example"));
        assert_eq!(read(&c, "$pn"), Value::str("Al"));
        assert_eq!(read(&c, "$rt"), Value::str("sip:carol@chicago.com"));
        assert_eq!(read(&c, "$di"), Value::str("sip:dave@example.org"));
        assert_eq!(read(&c, "$dir"), Value::str("busy"));
        assert_eq!(read(&c, "$dip"), Value::str("full"));
        assert_eq!(read(&c, "$re"), Value::str("sip:eve@rpid.example"));
        assert_eq!(
            read(&c, "$path"),
            Value::str("<sip:p1.example.com;lr>,<sip:p2.example.com;lr>")
        );
        assert_eq!(read(&c, "$aU"), Value::str("alice@atlanta.com"));
        assert_eq!(read(&c, "$au"), Value::str("alice"));
        assert_eq!(read(&c, "$ad"), Value::str("atlanta.com"));
        assert_eq!(read(&c, "$ar"), Value::str("atlanta.com"));
        assert_eq!(read(&c, "$an"), Value::str("abc"));
        assert_eq!(read(&c, "$adu"), Value::str("sip:bob@biloxi.com"));
        assert_eq!(read(&c, "$auth.resp"), Value::str("0123"));
        assert_eq!(read(&c, "$auth.alg"), Value::str("SHA-256"));
        assert_eq!(read(&c, "$auth.qop"), Value::str("auth"));
        assert_eq!(read(&c, "$auth.nc"), Value::str("00000001"));
        assert_eq!(read(&c, "$auth.cnonce"), Value::str("xyz"));
        assert_eq!(read(&c, "$msg.is_request"), Value::Int(1));
        assert_eq!(read(&c, "$msg.type"), Value::str("request"));
        assert_eq!(read(&c, "$pp"), Value::Int(i64::from(std::process::id())));
        assert_eq!(read(&c, "$(hdr_name[0])"), Value::str("Via"));
        assert_eq!(read(&c, "$(hdr_name[-1])"), Value::str("Content-Length"));
        assert_eq!(read(&c, "$C(rx)"), Value::str("\x1b[31m"));
        assert_eq!(read(&c, "$C(xx)"), Value::str("\x1b[0m"));
        let Value::Str(y) = read(&c, "$time(%Y)") else {
            panic!()
        };
        assert_eq!(y.len(), 4);
        let Value::Str(tf) = read(&c, "$Tf") else {
            panic!()
        };
        assert!(tf.ends_with(&*y), "{tf}");
        let Value::Int(ts) = read(&c, "$Ts") else {
            panic!()
        };
        assert!(ts > 1_700_000_000, "seconds since the epoch");
        // REGISTER reads Authorization, not Proxy-Authorization.
        let reg = b"REGISTER sip:b SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nAuthorization: Digest username=\"bob\", realm=\"b\", nonce=\"n\", uri=\"sip:b\", response=\"r\"\r\nProxy-Authorization: Digest username=\"other\", realm=\"x\", nonce=\"n\", uri=\"sip:b\", response=\"r\"\r\nContent-Length: 0\r\n\r\n";
        let c = MsgCtx::new(SipMessage::parse(Bytes::from_static(reg)).unwrap());
        assert_eq!(read(&c, "$au"), Value::str("bob"));
        assert_eq!(
            read(&c, "$ad"),
            Value::str("b"),
            "no @ in the username: the realm"
        );
    }

    #[test]
    fn non_message_pvs_do_not_resolve_here() {
        for pv in [
            "$var(x)",
            "$avp(a)",
            "$DLG_status",
            "$(avp(a)[$var(i)])",
            "$hdr($var(h))",
        ] {
            assert!(
                CorePv::resolve(&cfg::pv::parse(pv).unwrap()).is_none(),
                "{pv}"
            );
        }
    }
}
