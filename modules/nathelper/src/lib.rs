//! The OpenSIPS `nathelper` module's signalling side: `nat_uac_test` (is the client behind a
//! NAT?), `fix_nated_contact` (its Contact names the address it really sent from),
//! `fix_nated_register` (the registrar stores that address with the contact: `lookup` sends
//! there), `add_rcv_param`, `fix_nated_sdp`, and the keepalive pings that hold registered
//! contacts' NAT bindings open (`natping_interval`: four zero bytes, or a SIP ping to contacts
//! with `sipping_bflag`, to each UDP contact every interval).
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};

use engine::{FnCtx, FnSpec, ModuleSpec, MsgCtx, Param, ParamType, Routes, Script, Value};
use sip::HeaderName;

use ParamType::{Int, Str};

pub mod mangler;
mod ping;
pub mod traversal;
pub use ping::Pinging;

const ANYWHERE: Routes = Routes::REQUEST
    .or(Routes::ONREPLY)
    .or(Routes::FAILURE)
    .or(Routes::BRANCH)
    .or(Routes::LOCAL);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "nathelper",
    functions: &[
        FnSpec {
            name: "nat_uac_test",
            params: &[(Param::Str, false)],
            routes: ANYWHERE,
            run: nat_uac_test,
        },
        FnSpec {
            name: "fix_nated_contact",
            params: &[(Param::Str, true), (Param::Str, true)],
            routes: Routes::REQUEST
                .or(Routes::ONREPLY)
                .or(Routes::BRANCH)
                .or(Routes::LOCAL),
            run: fix_nated_contact,
        },
        FnSpec {
            name: "fix_nated_register",
            params: &[],
            routes: Routes::REQUEST,
            run: fix_nated_register,
        },
        FnSpec {
            name: "add_rcv_param",
            params: &[(Param::Int, true)],
            routes: Routes::REQUEST,
            run: add_rcv_param,
        },
        FnSpec {
            name: "fix_nated_sdp",
            params: &[(Param::Str, false), (Param::Str, true), (Param::Str, true)],
            routes: ANYWHERE,
            run: fix_nated_sdp,
        },
    ],
    params: &[
        ("natping_interval", Int),
        ("ping_nated_only", Int),
        ("nortpproxy_str", Str),
        ("received_avp", Str),
        ("force_socket", Str),
        ("sipping_ignore_rpl_codes", Str),
        ("sipping_from", Str),
        ("sipping_method", Str),
        ("sipping_bflag", Str),
        ("sipping_latency_flag", Str),
        ("remove_on_timeout_bflag", Str),
        ("natping_tcp", Int),
        ("natping_partitions", Int),
        ("natping_socket", Str),
        ("oldip_skip", Str),
        ("ping_threshold", Int),
        ("max_pings_lost", Int),
        ("cluster_id", Int),
        ("cluster_sharing_tag", Str),
    ],
};

/// The tests of `nat_uac_test`, by name and bit (OpenSIPS' values).
const TESTS: [(&str, u32); 8] = [
    ("private-contact", 0x01),
    ("diff-ip-src-via", 0x02),
    ("private-via", 0x04),
    ("private-sdp", 0x08),
    ("diff-port-src-via", 0x10),
    ("diff-ip-src-contact", 0x20),
    ("diff-port-src-contact", 0x40),
    ("carrier-grade-nat", 0x80),
];

/// The test bits a flags argument names: names separated by commas, or a number (the older
/// form). `None` for a name that is not a test.
fn test_bits(text: &str) -> Option<u32> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u32>() {
        return Some(n);
    }
    let mut bits = 0;
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        bits |= TESTS.iter().find(|(n, _)| *n == name)?.1;
    }
    Some(bits)
}

/// An RFC 1918 address (with `cgn`, also RFC 6598's 100.64.0.0/10), written as a dotted quad.
fn is_private(host: &str, cgn: bool) -> bool {
    let Ok(ip) = host.trim().parse::<Ipv4Addr>() else {
        return false;
    };
    let o = ip.octets();
    o[0] == 10
        || (o[0] == 172 && (16..32).contains(&o[1]))
        || (o[0] == 192 && o[1] == 168)
        || (cgn && o[0] == 100 && (64..128).contains(&o[1]))
}

/// A URI host (brackets allowed) as an IP address.
fn host_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The Contact URIs of the message (none for `*`).
fn contact_uris(msg: &sip::SipMessage) -> Vec<sip::Uri<'_>> {
    match msg.contacts() {
        Ok(sip::headers::Contacts::List(list)) => list.iter().map(|c| *c.uri()).collect(),
        _ => Vec::new(),
    }
}

/// The port a URI names, or its scheme's default.
fn uri_port(uri: &sip::Uri<'_>) -> u16 {
    uri.port().unwrap_or_else(|| {
        let secure = uri.scheme().as_str().eq_ignore_ascii_case("sips")
            || uri
                .transport()
                .is_some_and(|t| t.eq_ignore_ascii_case("tls"));
        if secure { 5061 } else { 5060 }
    })
}

/// The `c=` addresses of the SDP body.
fn sdp_addresses(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("c="))
        .filter_map(|c| c.split_whitespace().nth(2).map(str::to_owned))
        .collect()
}

/// `nat_uac_test(flags)`: 1 when any of the named tests holds, else -1.
fn nat_uac_test(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let text = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let Some(tests) = test_bits(&text) else {
        f.log.log(
            -1,
            &format!("ERROR:nathelper: unknown nat_uac_test flag in `{text}`\n"),
        );
        return -1;
    };
    let Some(receipt) = f.msg.receipt.clone() else {
        return -1;
    };
    let cgn = tests & 0x80 != 0;
    let msg = &f.msg.msg;
    let src = receipt.source;
    let via = msg.top_via().ok();
    let holds = |bit: u32| tests & bit != 0;
    if holds(0x10)
        && let Some(v) = &via
        && v.port().unwrap_or(5060) != src.port()
    {
        return 1;
    }
    if holds(0x02)
        && let Some(v) = &via
        && host_ip(v.host().as_str()) != Some(src.ip())
    {
        return 1;
    }
    let contacts = contact_uris(msg);
    let host_of = |u: &sip::Uri<'_>| u.host().map(|h| h.as_str().to_owned()).unwrap_or_default();
    if holds(0x01) && contacts.iter().any(|u| is_private(&host_of(u), cgn)) {
        return 1;
    }
    if holds(0x08) && sdp_addresses(msg.body()).iter().any(|a| is_private(a, cgn)) {
        return 1;
    }
    if holds(0x04)
        && via
            .as_ref()
            .is_some_and(|v| is_private(v.host().as_str(), cgn))
    {
        return 1;
    }
    if holds(0x20)
        && contacts
            .iter()
            .any(|u| host_ip(&host_of(u)) != Some(src.ip()))
    {
        return 1;
    }
    if holds(0x40) && contacts.iter().any(|u| uri_port(u) != src.port()) {
        return 1;
    }
    -1
}

/// Where in `msg`'s bytes `part` (a slice of its text) starts.
fn offset_in(msg: &sip::SipMessage, part: &str) -> Option<usize> {
    let base = msg.as_bytes().as_ptr() as usize;
    let at = (part.as_ptr() as usize).checked_sub(base)?;
    (at + part.len() <= msg.as_bytes().len()).then_some(at)
}

/// The byte range of a URI's host and port within the URI text, as the SIP parser reads
/// the URI (a user part may hold `;`, `?` and escaped `@`).
fn hostport_range(uri: &str) -> Option<std::ops::Range<usize>> {
    sip::Uri::parse(uri).ok()?.hostport_span()
}

/// The source of the message as a URI host:port (`[v6]:port` for IPv6).
fn source_hostport(ctx: &MsgCtx) -> Option<String> {
    let src = ctx.receipt.as_ref()?.source;
    Some(format!(
        "{}:{}",
        engine::pv::ip_uri_text(src.ip()),
        src.port()
    ))
}

/// `fix_nated_contact([uri_params[, flags]])`: every Contact URI's host and port become the
/// address the message came from; `uri_params` are added to each URI. 1, or -1 when there is
/// nothing to fix or a Contact was already rewritten.
fn fix_nated_contact(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let params = args
        .first()
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
        .filter(|p| !p.is_empty());
    let Some(hostport) = source_hostport(f.msg) else {
        return -1;
    };
    let msg = f.msg.msg.clone();
    let list = match msg.contacts() {
        Ok(sip::headers::Contacts::List(list)) if !list.is_empty() => list,
        _ => return -1,
    };
    for c in &list {
        let uri = c.uri().as_str();
        let (Some(at), Some(range)) = (offset_in(&msg, uri), hostport_range(uri)) else {
            return -1;
        };
        let mut with = hostport.clone();
        if let Some(p) = &params {
            // Parameters go after the host:port, inside the URI (with <> added when the
            // Contact had none, so that they stay URI parameters).
            with.push_str(p);
            if !c.is_bracketed() {
                let start = at;
                let end = at + uri.len();
                let text = format!("<{}{}{}>", &uri[..range.start], with, &uri[range.end..]);
                if !f.msg.edits.patch(start..end, text) {
                    f.log.log(
                        -1,
                        "ERROR:nathelper: SCRIPT BUG - second attempt to change URI Contact\n",
                    );
                    return -1;
                }
                continue;
            }
        }
        if !f.msg.edits.patch(at + range.start..at + range.end, with) {
            f.log.log(
                -1,
                "ERROR:nathelper: SCRIPT BUG - second attempt to change URI Contact\n",
            );
            return -1;
        }
    }
    1
}

/// `sip:ip:port` (with `;transport=` for anything but UDP): where the message came from, as
/// the registrar stores it and `lookup` sends to it.
fn received_uri(ctx: &MsgCtx) -> Option<String> {
    let r = ctx.receipt.as_ref()?;
    let mut uri = format!(
        "sip:{}:{}",
        engine::pv::ip_uri_text(r.source.ip()),
        r.source.port()
    );
    if r.proto != "udp" {
        uri.push_str(";transport=");
        uri.push_str(r.proto);
    }
    Some(uri)
}

/// nathelper's `received_avp` slot, if set (it must be registrar's too).
fn received_slot(script: &Script) -> Option<usize> {
    let name = script.modparam_str("nathelper", "received_avp")?;
    let name = name.trim().strip_prefix("$avp(")?.strip_suffix(')')?;
    script.avp_id(name.trim())
}

/// `fix_nated_register()`: the source address into `received_avp` for the registrar to store
/// with the contacts. 1 (also without `received_avp`, as OpenSIPS), -1 without a source.
fn fix_nated_register(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(slot) = received_slot(f.script) else {
        return 1;
    };
    let Some(uri) = received_uri(f.msg) else {
        return -1;
    };
    if f.msg.avps.len() <= slot {
        f.msg.avps.resize(slot + 1, Vec::new());
    }
    f.msg.avps[slot].push(Value::from(uri));
    1
}

/// `add_rcv_param([flag])`: `;received="sip:ip:port"` on every Contact, as a header parameter
/// (flag 0, the default) or a URI parameter (flag 1).
fn add_rcv_param(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let in_uri = args.first().and_then(Value::as_int).is_some_and(|n| n > 0);
    let Some(uri) = received_uri(f.msg) else {
        return -1;
    };
    let msg = f.msg.msg.clone();
    let list = match msg.contacts() {
        Ok(sip::headers::Contacts::List(list)) => list,
        _ => return -1,
    };
    let param = format!(";received=\"{uri}\"");
    for c in &list {
        let anchor = if in_uri { c.uri().as_str() } else { c.as_str() };
        let Some(at) = offset_in(&msg, anchor) else {
            return -1;
        };
        let end = at + anchor.len();
        if !f.msg.edits.patch(end..end, param.clone()) {
            return -1;
        }
    }
    1
}

/// The `fix_nated_sdp` flags, by name and bit (OpenSIPS' values).
const SDP_FLAGS: [(&str, u32); 5] = [
    ("add-dir-active", 0x01),
    ("rewrite-media-ip", 0x02),
    ("add-no-rtpproxy", 0x04),
    ("rewrite-origin-ip", 0x08),
    ("rewrite-null-ips", 0x10),
];

/// `fix_nated_sdp(flags[, ip[, sdp_lines]])`: in the SDP body, `c=` (rewrite-media-ip) and `o=`
/// (rewrite-origin-ip) addresses become `ip` (default: the source address; `0.0.0.0` ones are
/// kept unless rewrite-null-ips), and lines are added at its end (`a=direction:active`,
/// `a=nortpproxy:yes`, `sdp_lines`). 1, or -1 without an SDP body.
fn fix_nated_sdp(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let text = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let flags = match text.trim().parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            let mut bits = 0;
            for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let Some((_, b)) = SDP_FLAGS.iter().find(|(n, _)| *n == name) else {
                    f.log.log(
                        -1,
                        &format!("ERROR:nathelper: unknown fix_nated_sdp flag `{name}`\n"),
                    );
                    return -1;
                };
                bits |= b;
            }
            bits
        }
    };
    let ip = match args
        .get(1)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
    {
        Some(ip) if !ip.is_empty() => ip,
        _ => match f.msg.receipt.as_ref() {
            Some(r) => engine::pv::ip_text(r.source.ip()),
            None => return -1,
        },
    };
    let extra = args
        .get(2)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned());
    let msg = f.msg.msg.clone();
    let is_sdp = msg
        .header(HeaderName::ContentType)
        .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("application/sdp"));
    let body = msg.body();
    if !is_sdp || body.iter().all(u8::is_ascii_whitespace) {
        return -1;
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return -1;
    };
    let Some(body_at) = offset_in(&msg, text) else {
        return -1;
    };
    let family = if ip.contains(':') { "IP6" } else { "IP4" };
    let mut line_at = 0;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        let rewrite = (flags & 0x02 != 0 && content.starts_with("c="))
            || (flags & 0x08 != 0 && content.starts_with("o="));
        if rewrite {
            // `c=IN IP4 addr`, `o=user id version IN IP4 addr`: the last two fields.
            let fields: Vec<&str> = content.split(' ').collect();
            if fields.len() >= 3 {
                let addr = fields[fields.len() - 1];
                let null = addr == "0.0.0.0" || addr.chars().all(|c| c == '0' || c == ':');
                if !null || flags & 0x10 != 0 {
                    let mut new = fields[..fields.len() - 2].join(" ");
                    new.push_str(&format!(" {family} {ip}"));
                    let start = body_at + line_at;
                    if !f.msg.edits.patch(start..start + content.len(), new) {
                        return -1;
                    }
                }
            }
        }
        line_at += line.len();
    }
    let mut add = String::new();
    if flags & 0x01 != 0 {
        add.push_str("a=direction:active\r\n");
    }
    if flags & 0x04 != 0 {
        add.push_str("a=nortpproxy:yes\r\n");
    }
    if let Some(lines) = extra {
        add.push_str(&lines);
    }
    if !add.is_empty() {
        // After the last line; a body without a final line end gets one first.
        let end = body_at + text.len();
        if !text.ends_with('\n') {
            add.insert_str(0, "\r\n");
        }
        if !f.msg.edits.patch(end..end, add) {
            return -1;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostports_are_found_in_uris() {
        let cut = |u: &str| hostport_range(u).map(|r| &u[r]).map(str::to_owned);
        assert_eq!(
            cut("sip:alice@10.0.0.1:5062;transport=tcp").as_deref(),
            Some("10.0.0.1:5062")
        );
        assert_eq!(cut("sip:10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(
            cut("sips:bob@[2001:db8::1]:5061").as_deref(),
            Some("[2001:db8::1]:5061")
        );
        assert_eq!(cut("sip:a@b@host.example;x=@"), None);
        assert_eq!(cut("sip:u:pw@h?x=y").as_deref(), Some("h"));
        // A user part may hold `;`: the host is after the `@`.
        assert_eq!(
            cut("sip:a;maddr=lice@10.0.0.1:5062;transport=udp").as_deref(),
            Some("10.0.0.1:5062")
        );
    }

    #[test]
    fn test_flags_read_by_name_or_number() {
        assert_eq!(test_bits("private-contact,diff-port-src-via"), Some(0x11));
        assert_eq!(test_bits("19"), Some(19));
        assert_eq!(test_bits("bogus"), None);
    }

    #[test]
    fn private_ranges() {
        for (h, cgn, want) in [
            ("10.1.2.3", false, true),
            ("172.16.0.1", false, true),
            ("172.32.0.1", false, false),
            ("192.168.1.1", false, true),
            ("100.64.0.1", false, false),
            ("100.64.0.1", true, true),
            ("8.8.8.8", true, false),
            ("example.com", false, false),
        ] {
            assert_eq!(is_private(h, cgn), want, "{h}");
        }
    }
}
