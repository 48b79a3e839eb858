//! The OpenSIPS `mangler` module: `sdp_mangle_ip(pattern, newip)` rewrites the SDP's
//! `c=IN IP4` addresses inside a network, `sdp_mangle_port(offset)` moves every `m=` port;
//! `encode_contact(prefix, public_ip)` rewrites each Contact URI as
//! `sip:prefix*user*password*ip*port*transport@public_ip` (so that a NATed contact routes
//! through us), and `decode_contact()` / `decode_contact_header()` turn such a URI — the
//! R-URI, the Contacts — back into `sip:user:password@ip:port;transport=…`. The separator is
//! the first character of `contact_flds_separator` (`*`).

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Value};

const REQ_REPLY: Routes = Routes::REQUEST.or(Routes::ONREPLY);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "mangler",
    functions: &[
        FnSpec {
            name: "sdp_mangle_ip",
            params: &[(Param::Str, false), (Param::Str, false)],
            routes: REQ_REPLY,
            run: sdp_mangle_ip,
        },
        FnSpec {
            name: "sdp_mangle_port",
            params: &[(Param::Int, false)],
            routes: REQ_REPLY,
            run: sdp_mangle_port,
        },
        FnSpec {
            name: "encode_contact",
            params: &[(Param::Str, false), (Param::Str, false)],
            routes: REQ_REPLY,
            run: encode_contact,
        },
        FnSpec {
            name: "decode_contact",
            params: &[],
            routes: Routes::REQUEST,
            run: decode_contact,
        },
        FnSpec {
            name: "decode_contact_header",
            params: &[],
            routes: REQ_REPLY,
            run: decode_contact_header,
        },
    ],
    params: &[("contact_flds_separator", ParamType::Str)],
};

fn separator(f: &FnCtx<'_>) -> char {
    f.script
        .modparam_str("mangler", "contact_flds_separator")
        .and_then(|s| s.chars().next())
        .unwrap_or('*')
}

fn fail(f: &mut FnCtx<'_>, what: &str, why: &str) -> i64 {
    f.log.log(-1, &format!("mangler: {what}: {why}\n"));
    -1
}

/// `a.b.c.d/len` or `a.b.c.d/m.m.m.m`: (network, mask).
fn network(pattern: &str) -> Option<(u32, u32)> {
    let (ip, mask) = pattern.trim().split_once('/')?;
    let ip = u32::from(ip.trim().parse::<std::net::Ipv4Addr>().ok()?);
    let mask = match mask.trim().parse::<u32>() {
        Ok(0) => 0,
        Ok(bits) if bits <= 32 => u32::MAX << (32 - bits),
        Ok(_) => return None,
        Err(_) => u32::from(mask.trim().parse::<std::net::Ipv4Addr>().ok()?),
    };
    Some((ip & mask, mask))
}

/// The SDP body as text with where it starts in the message; `None` without one.
fn sdp(f: &FnCtx<'_>) -> Option<(String, usize)> {
    let msg = &f.msg.msg;
    let is_sdp = msg
        .header(sip::HeaderName::ContentType)
        .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("application/sdp"));
    let text = std::str::from_utf8(msg.body()).ok()?;
    if !is_sdp || text.trim().is_empty() {
        return None;
    }
    Some((text.to_owned(), crate::offset_in(msg, text)?))
}

/// Replaces `range` of the line at `line_at` (body offsets) with `new`.
fn patch(f: &mut FnCtx<'_>, at: usize, len: usize, new: String) -> bool {
    f.msg.edits.patch(at..at + len, new)
}

/// `sdp_mangle_ip(pattern, newip)`: the number of addresses changed + 1; -1 without SDP or
/// with a bad pattern or address.
fn sdp_mangle_ip(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let text = |i: usize| {
        args.get(i)
            .map(|v| v.to_text().into_owned())
            .unwrap_or_default()
    };
    let (pattern, new_ip) = (text(0), text(1));
    let Some((net, mask)) = network(&pattern) else {
        return fail(f, "sdp_mangle_ip", &format!("bad pattern `{pattern}`"));
    };
    if new_ip.trim().parse::<std::net::Ipv4Addr>().is_err() {
        return fail(f, "sdp_mangle_ip", &format!("bad address `{new_ip}`"));
    }
    let Some((body, base)) = sdp(f) else {
        return -1;
    };
    let mut changed = 0;
    let mut at = 0;
    for line in body.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        if let Some(addr) = content.strip_prefix("c=IN IP4 ") {
            let ip = addr.split('/').next().unwrap_or("").trim();
            if let Ok(a) = ip.parse::<std::net::Ipv4Addr>()
                && u32::from(a) & mask == net
            {
                let start = base + at + "c=IN IP4 ".len();
                if !patch(f, start, ip.len(), new_ip.trim().to_owned()) {
                    return -1;
                }
                changed += 1;
            }
        }
        at += line.len();
    }
    changed + 1
}

/// `sdp_mangle_port(offset)`: each `m=` port moved by `offset` (those that would leave
/// 1–65535 are left); the number changed + 1, -1 without SDP.
fn sdp_mangle_port(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let offset = args.first().and_then(Value::as_int).unwrap_or(0);
    let Some((body, base)) = sdp(f) else {
        return -1;
    };
    let mut changed = 0;
    let mut at = 0;
    for line in body.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        if let Some(rest) = content.strip_prefix("m=") {
            let mut fields = rest.splitn(3, ' ');
            let (media, port) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
            let digits = port.split('/').next().unwrap_or("");
            if let Ok(p) = digits.parse::<i64>() {
                let new = p + offset;
                if (1..=65535).contains(&new) && p != 0 {
                    let start = base + at + 2 + media.len() + 1;
                    if !patch(f, start, digits.len(), new.to_string()) {
                        return -1;
                    }
                    changed += 1;
                }
            }
        }
        at += line.len();
    }
    changed + 1
}

/// A SIP URI encoded: `sip:prefix*user*password*ip*port*transport@public_ip`.
fn encode(uri: &str, prefix: &str, public_ip: &str, sep: char) -> Option<String> {
    let u = sip::Uri::parse(uri).ok()?;
    if !u.scheme().is_sip() {
        return None;
    }
    let host = u.host()?.as_str().to_owned();
    let port = u.port().map(|p| p.to_string()).unwrap_or_default();
    Some(format!(
        "{}:{prefix}{sep}{}{sep}{}{sep}{host}{sep}{port}{sep}{}@{public_ip}",
        u.scheme().as_str(),
        u.user().unwrap_or(""),
        u.password().unwrap_or(""),
        u.transport().unwrap_or(""),
    ))
}

/// An encoded URI back: `sip:user:password@ip:port;transport=…`; `None` when it is not one
/// (no `@`, not six fields, no address).
fn decode(uri: &str, sep: char) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    let (encoded, _public) = rest.split_once('@')?;
    let fields: Vec<&str> = encoded.split(sep).collect();
    let [_prefix, user, password, ip, port, transport] = fields.as_slice() else {
        return None;
    };
    if ip.is_empty() || (!password.is_empty() && user.is_empty()) {
        return None;
    }
    let mut out = format!("{scheme}:");
    if !user.is_empty() {
        out.push_str(user);
        if !password.is_empty() {
            out.push(':');
            out.push_str(password);
        }
        out.push('@');
    }
    out.push_str(ip);
    if !port.is_empty() {
        out.push(':');
        out.push_str(port);
    }
    if !transport.is_empty() {
        out.push_str(";transport=");
        out.push_str(transport);
    }
    Some(out)
}

/// Rewrites every Contact URI with `change`; -1 when there is none or one cannot be.
fn each_contact(f: &mut FnCtx<'_>, what: &str, change: impl Fn(&str) -> Option<String>) -> i64 {
    let msg = f.msg.msg.clone();
    let list = match msg.contacts() {
        Ok(sip::headers::Contacts::List(list)) if !list.is_empty() => list,
        _ => return fail(f, what, "no Contact to change"),
    };
    for c in &list {
        let uri = c.uri().as_str();
        let (Some(at), Some(new)) = (crate::offset_in(&msg, uri), change(uri)) else {
            return fail(f, what, &format!("cannot change `{uri}`"));
        };
        if !f.msg.edits.patch(at..at + uri.len(), new) {
            return fail(f, what, "the Contact was changed already");
        }
    }
    1
}

fn encode_contact(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let text = |i: usize| {
        args.get(i)
            .map(|v| v.to_text().into_owned())
            .unwrap_or_default()
    };
    let (prefix, public_ip) = (text(0), text(1));
    if public_ip.trim().is_empty() {
        return fail(f, "encode_contact", "an empty public_ip");
    }
    let sep = separator(f);
    each_contact(f, "encode_contact", |uri| {
        encode(uri, &prefix, public_ip.trim(), sep)
    })
}

fn decode_contact_header(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let sep = separator(f);
    each_contact(f, "decode_contact_header", |uri| decode(uri, sep))
}

/// `decode_contact()`: the R-URI decoded.
fn decode_contact(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let sep = separator(f);
    let Some(ruri) = f.msg.ruri().map(str::to_owned) else {
        return -1;
    };
    match decode(&ruri, sep) {
        Some(new) if f.msg.set_ruri(&new) => 1,
        _ => fail(
            f,
            "decode_contact",
            &format!("`{ruri}` is not an encoded URI"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        assert_eq!(network("10.0.0.0/8"), network("10.1.2.3/255.0.0.0"));
        let (net, mask) = network("192.168.1.0/24").unwrap();
        assert_eq!(
            u32::from(std::net::Ipv4Addr::new(192, 168, 1, 77)) & mask,
            net
        );
        assert!(network("10.0.0.0").is_none());
        assert!(network("10.0.0.0/33").is_none());
        assert!(network("x/8").is_none());
    }

    #[test]
    fn contacts_encode_and_decode_back() {
        let e = encode(
            "sip:bob:pw@10.0.0.5:5070;transport=tcp",
            "enc",
            "198.51.100.1",
            '*',
        )
        .unwrap();
        assert_eq!(e, "sip:enc*bob*pw*10.0.0.5*5070*tcp@198.51.100.1");
        assert_eq!(
            decode(&e, '*').unwrap(),
            "sip:bob:pw@10.0.0.5:5070;transport=tcp"
        );
        let e = encode("sip:10.0.0.5", "p", "198.51.100.1", '-').unwrap();
        assert_eq!(e, "sip:p---10.0.0.5--@198.51.100.1");
        assert_eq!(decode(&e, '-').unwrap(), "sip:10.0.0.5");
        assert_eq!(decode("sip:bob@example.com", '*'), None, "not encoded");
        assert_eq!(decode("sip:p*bob*pw**5060*@x", '*'), None, "no address");
        assert_eq!(
            decode("sip:p**pw*1.2.3.4**@x", '*'),
            None,
            "a password without a user"
        );
    }
}
