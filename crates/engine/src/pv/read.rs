//! Reading core PVs from a [`MsgCtx`]. Values taken from the message share its buffer (no copy).
//! The URI, contact, body, digest, socket and tm readers are in their own files.

use sip::{NameAddr, SipMessage};

use super::uri::{addr_part, msg_uri_part, owned_uri_part};
use super::{CorePv, HeaderSel, Index};
use crate::ctx::MsgCtx;
use crate::value::Value;

pub(crate) use super::tm_vars::current_branch;

fn text(msg: &SipMessage, s: &str) -> Value {
    Value::Str(msg.share(s))
}

fn opt_text(msg: &SipMessage, s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| text(msg, s))
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
            // A rewritten R-URI that does not parse reads as NULL (OpenSIPS parses it first).
            CorePv::Ruri(part) => match &ctx.new_ruri {
                Some(new) if sip::Uri::parse(new).is_err() => Value::Null,
                Some(new) => owned_uri_part(new, *part),
                None => msg_uri_part(msg, msg.request_uri_str(), *part),
            },
            CorePv::OrigRuri(part) => msg_uri_part(msg, msg.request_uri_str(), *part),
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
            CorePv::CSeq => cseq_number(msg).map_or(Value::Null, |n| text(msg, n)),
            CorePv::ContentLength => match msg.content_length() {
                Ok(Some(n)) => Value::Int(i64::from(n)),
                _ => Value::Null,
            },
            CorePv::ContentType => opt_text(msg, msg.header(sip::HeaderName::ContentType)),
            CorePv::UserAgent => opt_text(msg, msg.user_agent()),
            CorePv::From(part) => addr_part(msg, msg.from_header().ok(), *part),
            CorePv::To(part) => addr_part(msg, msg.to_header().ok(), *part),
            CorePv::Contact(field, super::ContactIndex::Fixed(index)) => {
                super::contact::contact(msg, *field, *index)
            }
            // The interpreter reads the index variable first (`exec.rs`).
            CorePv::Contact(_, super::ContactIndex::Var(_)) => Value::Null,
            CorePv::Header(sel, index) => pick(msg, &header_lines(msg, sel), *index),
            CorePv::HeaderCount(sel) => Value::Int(header_lines(msg, sel).len() as i64),
            CorePv::MsgLen => Value::Int(msg.as_bytes().len() as i64),
            CorePv::MsgBuf => Value::from(String::from_utf8_lossy(msg.as_bytes()).into_owned()),
            CorePv::Body(at) => super::body::body(ctx, *at),
            CorePv::BodyPart(want, at) => super::body::body_part(ctx, want, *at),
            CorePv::Sdp => super::sdp_body::current_sdp(ctx).map_or(Value::Null, Value::from),
            CorePv::SrcIp => ctx
                .receipt
                .as_ref()
                .map_or(Value::Null, |r| Value::from(super::ip_text(r.source.ip()))),
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
            CorePv::Auth(part) => super::auth::credentials(msg, *part),
            CorePv::Challenge(field) => super::auth::challenge(msg, *field),
            CorePv::AccUsername => super::auth::acc_username(msg),
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
            CorePv::Random => Value::Int(random31()),
            CorePv::RuriQ if msg.is_request() => Value::Int(i64::from(ctx.ruri_q)),
            CorePv::RuriQ => Value::Null,
            CorePv::DestSet => dest_set(ctx).map_or(Value::Null, Value::from),
            CorePv::Startup => Value::Int(super::time::startup_secs()),
            CorePv::MsgId => Value::Int(ctx.id as i64),
            CorePv::Pid => Value::Int(i64::from(std::process::id())),
            CorePv::Time(fmt) => Value::from(super::time::strftime(unix_now(), fmt)),
            CorePv::TimeCtime => Value::from(super::time::ctime(unix_now())),
            CorePv::Uuid(v) => {
                super::uuid::generate(*v, None, None).map_or(Value::Null, Value::from)
            }
            CorePv::MsgFlags => Value::Int(ctx.flags as i64),
            CorePv::BranchFlags => Value::Int(ctx.branch_flags as i64),
            CorePv::BranchLastIdx => Value::Int(ctx.branches.len() as i64),
            CorePv::RrParams => ctx.rr_params.clone().map_or(Value::Null, Value::from),
            CorePv::Branch(field, i) => branch_field(ctx, *field, *i),
            CorePv::BranchList(field, legacy) => branch_list(ctx, *field, *legacy),
            CorePv::HeaderNameAt(index) => {
                let names: Vec<&str> = msg.headers().map(|h| h.name_str).collect();
                pick(msg, &names, *index)
            }
            CorePv::Color(c) => Value::from(color(c)),
            CorePv::SocketIn(field) => super::socket::socket_in(ctx, *field),
            CorePv::Tm(field) => super::tm_vars::tm_field(ctx, field),
            CorePv::Dialog(name) => crate::hooks::dialog_pv(ctx, name),
            CorePv::TmBranch(field, at) => super::tm_vars::tm_branch(ctx, field, *at),
            CorePv::BranchAttr(name, at) => ctx.branch_attr(*at, name),
            CorePv::ProxyProtocol(field) => {
                use super::ProxyField as F;
                match ctx.receipt.as_ref().and_then(|r| r.proxy) {
                    None => Value::Null,
                    Some((src, dst)) => match field {
                        F::SrcIp => Value::from(super::ip_text(src.ip())),
                        F::SrcPort => Value::Int(i64::from(src.port())),
                        F::DstIp => Value::from(super::ip_text(dst.ip())),
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
            CorePv::SocketOut(field) => super::socket::socket_out(ctx, *field),
        }
    }
}

/// The CSeq number as written: OpenSIPS keeps `$cs` a string (`0010` stays `0010`, and it has
/// no integer view); NULL when the CSeq header does not parse.
fn cseq_number(msg: &SipMessage) -> Option<&str> {
    msg.cseq().ok()?;
    let v = msg.header(sip::HeaderName::CSeq)?.trim_start();
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    v.get(..end)
}

/// A field of branch `i` of the destination set (0 is the R-URI's, a negative index counts
/// back from the last); NULL past the branches and for empty values.
fn branch_field(ctx: &MsgCtx, field: super::BranchField, i: i64) -> Value {
    use super::BranchField as F;
    let count = ctx.branches.len() as i64 + 1;
    let i = if i < 0 { count + i } else { i };
    let Some(i) = usize::try_from(i).ok().filter(|&i| (i as i64) < count) else {
        return Value::Null;
    };
    let (uri, duri, path, q, flags, socket) = match i.checked_sub(1) {
        None => (
            ctx.ruri(),
            ctx.dst_uri.as_deref(),
            ctx.path.as_deref(),
            ctx.ruri_q,
            ctx.branch_flags,
            ctx.send_socket.as_deref(),
        ),
        Some(b) => match ctx.branches.get(b) {
            Some(b) => (
                Some(b.uri.as_str()),
                b.dst_uri.as_deref(),
                b.path.as_deref(),
                b.q,
                b.flags,
                b.socket.as_deref(),
            ),
            None => return Value::Null,
        },
    };
    let duri = duri.filter(|d| !d.is_empty());
    match field {
        F::Uri => uri.map_or(Value::Null, Value::from),
        F::Duri => duri.map_or(Value::Null, Value::from),
        F::Q => Value::from(q_text(q)),
        F::Flags => Value::Int(flags as i64),
        F::Path => path
            .filter(|p| !p.is_empty())
            .map_or(Value::Null, Value::from),
        F::Socket => socket.map_or(Value::Null, Value::from),
    }
}

/// `$(msg.branch.<field>[*])`: the field of every branch, R-URI's first, joined with `, ` (a
/// NULL one adds an empty piece); `legacy` (`$(branch(<field>)[*])`) leaves out the R-URI's
/// branch and is NULL without appended branches (OpenSIPS pvar.c).
fn branch_list(ctx: &MsgCtx, field: super::BranchField, legacy: bool) -> Value {
    let first = i64::from(legacy);
    let last = ctx.branches.len() as i64;
    if first > last {
        return Value::Null;
    }
    let pieces: Vec<String> = (first..=last)
        .map(|i| match branch_field(ctx, field, i) {
            Value::Null => String::new(),
            v => v.to_text().into_owned(),
        })
        .collect();
    Value::from(pieces.join(", "))
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

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;

/// A pseudo-random number in 0..=2^31-1 (`$RANDOM`): xorshift64* per thread, seeded from the
/// standard library's per-process random hasher keys; not for anything secret.
fn random31() -> i64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(std::process::id().into());
            h.finish() | 1
        });
    }
    STATE.with(|st| {
        let mut x = st.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        st.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as i64
    })
}
