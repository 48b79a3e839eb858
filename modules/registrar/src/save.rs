//! `save(domain[, flags[, aor[, ownership_tag]]])`: a REGISTER's bindings into the location
//! table (RFC 3261 §10.3), answered by the registrar itself as OpenSIPS answers: 200 with every
//! current binding in one Contact header, or the error code with a `P-Registrar-Error` header.

use std::time::Duration;

use engine::{FnCtx, Value};
use sip::headers::Contacts;

use crate::Settings;
use crate::usrloc::{self, Contact};

/// Why a REGISTER was refused (OpenSIPS `rerrno`): the reply code and the
/// `P-Registrar-Error` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Parse,
    ToMissing,
    CallIdMissing,
    CSeqMissing,
    ExpiresParse,
    ContactParse,
    StarExpires,
    StarContacts,
    AorParse,
    AorLength,
    Unescape,
    InvalidQ,
    InvalidCSeq,
    TooMany,
    ContactLength,
    CallIdLength,
    PathUnsupported,
}

impl Refusal {
    pub fn code(self) -> u16 {
        match self {
            Refusal::AorLength => 500,
            Refusal::TooMany => 503,
            Refusal::PathUnsupported => 420,
            _ => 400,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Refusal::Parse => "Message parse error",
            Refusal::ToMissing => "To header not found",
            Refusal::CallIdMissing => "Call-ID header not found",
            Refusal::CSeqMissing => "CSeq header not found",
            Refusal::ExpiresParse => "Expires parse error",
            Refusal::ContactParse => "Contact parse error",
            Refusal::StarExpires => "* used in contact and expires is not zero",
            Refusal::StarContacts => "* used in contact and more than 1 contact",
            Refusal::AorParse => "Error while parsing AOR",
            Refusal::AorLength => "Address Of Record too long",
            Refusal::Unescape => "Error while unescaping username",
            Refusal::InvalidQ => "Invalid q param in contact",
            Refusal::InvalidCSeq => "Invalid CSeq number",
            Refusal::TooMany => "Too many registered contacts",
            Refusal::ContactLength => "Contact/received too long",
            Refusal::CallIdLength => "Callid too long",
            Refusal::PathUnsupported => "No support for found Path indicated",
        }
    }
}

/// The reason phrase of a registrar reply code.
fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        420 => "Bad Extension",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        _ => "OK",
    }
}

/// The save() flags (comma-separated names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveFlags {
    pub memory_only: bool,
    pub no_reply: bool,
    pub max_contacts: Option<u32>,
    pub force_registration: bool,
    pub match_callid: Option<bool>,
    pub only_request_contacts: bool,
    pub min_expires: Option<u32>,
    pub max_expires: Option<u32>,
    /// The path flags: keep the REGISTER's Path (RFC 3327).
    pub path: Option<PathMode>,
    /// `path-received`: the contact's received address is the first Path URI's `received`.
    pub path_received: bool,
}

/// How save() treats a REGISTER's Path headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathMode {
    /// `path-off`: kept, never echoed in the 200.
    Off,
    /// `path-lazy`: kept, echoed when the UA said `Supported: path`.
    Lazy,
    /// `path-strict`: a Path without `Supported: path` is refused (420).
    Strict,
}

impl SaveFlags {
    /// Reads the flags; an unknown one is an error (named in it).
    pub fn parse(text: &str) -> Result<SaveFlags, String> {
        let mut f = SaveFlags::default();
        let number = |name: &str, v: Option<&str>| -> Result<u32, String> {
            v.and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| format!("save() flag `{name}` needs a number"))
        };
        for flag in text.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (flag, None),
            };
            match name {
                "memory-only" => f.memory_only = true,
                "no-reply" => f.no_reply = true,
                "max-contacts" => f.max_contacts = Some(number(name, value)?),
                "force-registration" => f.force_registration = true,
                "matching-mode" => f.match_callid = Some(value == Some("1")),
                "only-request-contacts" => f.only_request_contacts = true,
                "min-expires" => f.min_expires = Some(number(name, value)?),
                "max-expires" => f.max_expires = Some(number(name, value)?),
                "path-off" => f.path = Some(PathMode::Off),
                "path-lazy" => f.path = Some(PathMode::Lazy),
                "path-strict" => f.path = Some(PathMode::Strict),
                "path-received" => f.path_received = true,
                // The socket from a header set by a front proxy: not taken (the receiving
                // socket is kept).
                "socket-header" => {}
                _ => return Err(format!("unknown save() flag `{name}`")),
            }
        }
        Ok(f)
    }
}

/// The address-of-record of a SIP URI as OpenSIPS forms it (`extract_aor`): the user
/// (unescaped), with `use_domain` `@` and the host (less `realm_prefix`); the domain in lower
/// case, the user too unless `case_sensitive`.
pub fn aor_of(uri: &str, s: &Settings) -> Result<String, Refusal> {
    let parsed = sip::Uri::parse(uri.trim()).map_err(|_| Refusal::AorParse)?;
    let user = parsed.user().unwrap_or("");
    let host = parsed.host().map(|h| h.as_str()).unwrap_or("");
    if user.len() + host.len() + 1 > s.max_aor_len
        || user.len() > s.max_username_len
        || host.len() > s.max_domain_len
    {
        return Err(Refusal::AorLength);
    }
    let user = unescape_user(user)?;
    let mut aor = user.clone();
    if s.use_domain {
        let host = match host.strip_prefix(s.realm_prefix.as_str()) {
            Some(rest) if !s.realm_prefix.is_empty() && !rest.is_empty() => rest,
            _ => host,
        };
        if !aor.is_empty() {
            aor.push('@');
        }
        aor.push_str(&host.to_ascii_lowercase());
    }
    if !s.case_sensitive || user.is_empty() {
        aor = aor.to_ascii_lowercase();
    }
    if aor.is_empty() {
        return Err(Refusal::AorParse);
    }
    Ok(aor)
}

/// A URI user with its `%HH` escapes decoded; an escape that is cut short, not hex, or not a
/// printable character is refused (OpenSIPS `un_escape`).
fn unescape_user(user: &str) -> Result<String, Refusal> {
    let b = user.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(Refusal::Unescape)?;
            let v = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(Refusal::Unescape)?;
            if !(32..=126).contains(&v) {
                return Err(Refusal::Unescape);
            }
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Refusal::Unescape)
}

/// A q value as OpenSIPS reads it (`str2q`): 0 to 1 with up to three decimals (more are
/// ignored), × 1000.
pub fn parse_q(text: &str) -> Option<i32> {
    let t = text.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0i32, |n, d| n * 10 + i32::from(d - b'0'));
    match int {
        "0" | "" if !(int.is_empty() && frac.is_empty()) => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// A q value as OpenSIPS writes it (`q2str`): `1`, `0`, or `0.` and up to three digits.
pub fn q_text(q: i32) -> String {
    if q >= 1000 {
        return "1".into();
    }
    if q <= 0 {
        return "0".into();
    }
    let digits = format!("{q:03}");
    format!("0.{}", digits.trim_end_matches('0'))
}

/// The Contact header of a registrar reply: every live binding, `<uri>;q=…;expires=…`, joined
/// by `, `; `None` when there is none.
pub fn contact_header(contacts: &[Contact], now: u64, s: &Settings) -> Option<String> {
    let mut parts = Vec::new();
    for c in contacts.iter().filter(|c| c.alive(now)) {
        let mut b = format!("<{}>", c.uri);
        if c.q >= 0 {
            b.push_str(";q=");
            b.push_str(&q_text(c.q));
        }
        b.push_str(";expires=");
        b.push_str(&c.expires_in(now).unwrap_or(0).to_string());
        if let Some(r) = &c.received {
            b.push_str(&format!(";{}=\"{r}\"", s.received_param));
        }
        parts.push(b);
    }
    (!parts.is_empty()).then(|| format!("Contact: {}", parts.join(", ")))
}

/// What a REGISTER asks, read and checked before the table is touched.
struct Register {
    aor: String,
    callid: String,
    cseq: u32,
    /// The Path vector kept with the bindings, and whether the 200 echoes it.
    path: Option<String>,
    echo_path: bool,
    /// The received address the first Path URI names (`path-received`).
    path_received: Option<String>,
    /// `None`: `Contact: *`.
    contacts: Option<Vec<Binding>>,
}

/// One Contact of the REGISTER.
struct Binding {
    uri: String,
    /// Absolute expiry; 0 removes the binding.
    expires: u64,
    q: i32,
    methods: u32,
    instance: Option<String>,
    reg_id: u32,
}

/// The expiry of one contact (OpenSIPS `calc_contact_expires`): its `expires` parameter, else
/// the Expires header, else `default_expires`; raised to `min_expires`, capped at
/// `max_expires`; 0 removes.
fn contact_expires(
    param: Option<Option<&str>>,
    header: Option<u32>,
    s: &Settings,
    (min, max): (u32, u32),
    now: u64,
) -> u64 {
    let secs = match param.flatten().filter(|v| !v.is_empty()) {
        Some(v) => v.trim().parse::<u32>().unwrap_or(s.default_expires),
        None => header.unwrap_or(s.default_expires),
    };
    if secs == 0 {
        return 0;
    }
    let mut secs = secs.max(min);
    if max != 0 {
        secs = secs.min(max);
    }
    now + u64::from(secs)
}

fn read_register(
    f: &FnCtx<'_>,
    s: &Settings,
    flags: &SaveFlags,
    aor_uri: Option<&str>,
    now: u64,
) -> Result<Register, Refusal> {
    // The REGISTER as the script left it: a Contact fixed by nathelper's fix_nated_contact()
    // is stored fixed (OpenSIPS reads the rewritten Contact too).
    let edited = (!f.msg.edits.is_empty())
        .then(|| sip::SipMessage::parse(bytes::Bytes::from(f.msg.msg.serialize(&f.msg.edits))).ok())
        .flatten();
    let msg = edited.as_ref().unwrap_or(&f.msg.msg);
    let to = msg.to_header().map_err(|_| Refusal::ToMissing)?;
    let callid = msg
        .call_id()
        .map_err(|_| Refusal::CallIdMissing)?
        .trim_end()
        .to_owned();
    let cseq = msg.cseq().map_err(|_| Refusal::CSeqMissing)?.seq;
    let expires_hf = msg.expires().map_err(|_| Refusal::ExpiresParse)?;
    let list = msg.contacts().map_err(|_| {
        // A `*` beside contacts is its own error, anything else a parse error.
        if msg
            .values(sip::HeaderName::Contact)
            .any(|v| v.trim() == "*")
        {
            Refusal::StarContacts
        } else {
            Refusal::ContactParse
        }
    })?;
    let aor = aor_of(aor_uri.unwrap_or(to.uri().as_str()), s)?;
    if callid.len() > 255 {
        return Err(Refusal::CallIdLength);
    }
    // RFC 3327: with the path flags the Path headers are kept (one vector, comma-joined); the
    // 200 names them back when the UA supports `path`, and path-strict refuses a UA that
    // does not.
    let (mut path, mut echo_path, mut path_received) = (None, false, None);
    if let Some(mode) = flags.path {
        let vector: Vec<&str> = msg.values(sip::HeaderName::Path).collect();
        if !vector.is_empty() {
            let supported = msg
                .tokens(sip::HeaderName::Supported)
                .filter_map(Result::ok)
                .any(|t| t.eq_ignore_ascii_case("path"));
            if mode == PathMode::Strict && !supported {
                return Err(Refusal::PathUnsupported);
            }
            echo_path = supported && mode != PathMode::Off;
            if flags.path_received {
                // Read leniently: the value is quoted, which a strict URI parser refuses.
                path_received = vector
                    .first()
                    .and_then(|v| sip::split_values(v).next())
                    .and_then(|first| {
                        let inner = first.split_once('<')?.1.split_once('>')?.0;
                        let at = inner.to_ascii_lowercase().find(";received=")?;
                        let rest = &inner[at + ";received=".len()..];
                        let value = match rest.strip_prefix('"') {
                            Some(quoted) => quoted.split('"').next()?,
                            None => rest.split(';').next()?,
                        };
                        Some(value.to_owned())
                    });
            }
            path = Some(vector.join(","));
        }
    }
    let list = match list {
        Contacts::Star => {
            if expires_hf != Some(0) {
                return Err(Refusal::StarExpires);
            }
            if msg.header_count(sip::HeaderName::Contact) > 1 {
                return Err(Refusal::StarContacts);
            }
            return Ok(Register {
                aor,
                callid,
                cseq,
                path,
                echo_path,
                path_received,
                contacts: None,
            });
        }
        Contacts::List(list) => list,
    };
    let limits = (
        flags.min_expires.unwrap_or(s.min_expires),
        flags.max_expires.unwrap_or(s.max_expires),
    );
    let allow: Vec<&str> = msg.values(sip::HeaderName::Allow).collect();
    let allow_methods = usrloc::methods_of(&allow).unwrap_or(usrloc::ALL_METHODS);
    let mut out = Vec::new();
    for c in list {
        let uri = c.uri().as_str().to_owned();
        if uri.len() > s.max_contact_len {
            return Err(Refusal::ContactLength);
        }
        let q = match c.q() {
            Some(t) if !t.is_empty() => parse_q(t).ok_or(Refusal::InvalidQ)?,
            _ => s.default_q,
        };
        let methods = match c.param("methods").flatten() {
            Some(m) => {
                let m = m.trim_matches('"');
                usrloc::methods_of(&[m]).ok_or(Refusal::Parse)?
            }
            None => allow_methods,
        };
        out.push(Binding {
            uri,
            expires: contact_expires(c.param("expires"), expires_hf, s, limits, now),
            q,
            methods,
            instance: c.param("+sip.instance").flatten().map(str::to_owned),
            reg_id: c.reg_id().unwrap_or(0),
        });
    }
    Ok(Register {
        aor,
        callid,
        cseq,
        path,
        echo_path,
        path_received,
        contacts: Some(out),
    })
}

/// `save(domain[, flags[, aor]])`: 1 once the 200 went out, -2 when the REGISTER was refused
/// (and answered), -1 when the reply could not be sent.
pub fn save(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let table = crate::lookup::text_arg(args, 0).unwrap_or_default();
    let flags = match crate::lookup::text_arg(args, 1) {
        Some(text) => match SaveFlags::parse(&text) {
            Ok(flags) => flags,
            Err(e) => {
                f.log.log(-1, &format!("ERROR:registrar: {e}\n"));
                SaveFlags::default()
            }
        },
        None => SaveFlags::default(),
    };
    let aor_uri = crate::lookup::text_arg(args, 2);
    let s = Settings::of(f.script);
    let now = usrloc::now();
    usrloc::set_saving(Some(f.msg.id));
    let outcome = read_register(f, &s, &flags, aor_uri.as_deref(), now)
        .map_err(|why| (why, None))
        .and_then(|reg| store(f, &table, &s, &flags, reg, now));
    usrloc::set_saving(None);
    let (code, headers) = match outcome {
        Ok(headers) => {
            engine::stat!("registrar", "accepted_regs").inc();
            (200, headers)
        }
        Err((why, contact)) => {
            engine::stat!("registrar", "rejected_regs").inc();
            let mut headers: Vec<String> = contact.into_iter().collect();
            if why == Refusal::PathUnsupported {
                headers.push("Unsupported: path".to_owned());
            }
            headers.push(format!("P-Registrar-Error: {}", why.text()));
            if why.code() >= 500 && s.retry_after != 0 {
                headers.push(format!("Retry-After: {}", s.retry_after));
            }
            (why.code(), headers)
        }
    };
    // A reply's bindings (save() in an onreply route) are stored without answering anything.
    if flags.no_reply || !f.msg.msg.is_request() {
        return if code == 200 { 1 } else { -2 };
    }
    let sent = sl::reply_with(f, code, reason(code), headers);
    match (code, sent > 0) {
        (200, true) => 1,
        (200, false) => -1,
        _ => -2,
    }
}

/// The table changes a checked REGISTER makes; the Contact header of the reply (with the
/// bindings now current), or the refusal with the bindings as they stand.
#[allow(clippy::type_complexity)]
fn store(
    f: &FnCtx<'_>,
    table: &str,
    s: &Settings,
    flags: &SaveFlags,
    reg: Register,
    now: u64,
) -> Result<Vec<String>, (Refusal, Option<String>)> {
    let mut tables = usrloc::tables();
    tables.maybe_sweep(now);
    let t = tables.table(table);
    let echo = reg
        .path
        .clone()
        .filter(|_| reg.echo_path)
        .map(|p| format!("Path: {p}"));
    let Some(bindings) = reg.contacts else {
        // `Contact: *` with Expires 0: every binding of the AOR goes.
        t.remove_aor(&reg.aor);
        return Ok(echo.into_iter().collect());
    };
    let match_callid = flags.match_callid.unwrap_or(s.match_callid);
    let max = flags.max_contacts.unwrap_or(s.max_contacts);
    let socket = f.msg.receipt.as_ref().map(|r| {
        format!(
            "{}:{}",
            r.proto,
            engine::pv::ip_uri_text(r.local.ip()) + ":" + &r.local.port().to_string()
        )
    });
    let received = reg.path_received.clone().or_else(|| {
        s.received_avp
            .and_then(|slot| f.msg.avps.get(slot))
            .and_then(|vals| vals.last())
            .map(|v| v.to_text().into_owned())
            .filter(|v| !v.is_empty())
    });
    if received.as_ref().is_some_and(|r| r.len() > 255) {
        return Err((Refusal::ContactLength, None));
    }
    let user_agent = f
        .msg
        .msg
        .user_agent()
        .map(str::trim)
        .filter(|ua| !ua.is_empty() && ua.len() < 255)
        .unwrap_or("n/a")
        .to_owned();
    let current = |t: &usrloc::Table| contact_header(&t.contacts(&reg.aor, now), now, s);
    // tcp_persistent_flag on a REGISTER over a connection: the connection stays open as long as
    // its stream contacts stay registered, and 10 s more (OpenSIPS).
    let persist = f.msg.receipt.as_ref().and_then(|r| r.conn).filter(|_| {
        s.tcp_persistent_flag
            .is_some_and(|bit| f.msg.flags & (1u64 << bit) != 0)
    });
    let stream_expiry = bindings
        .iter()
        .filter(|b| over_stream(&b.uri))
        .map(|b| b.expires)
        .max();
    let keep = persist.zip(stream_expiry);
    for b in bindings {
        let existing = t
            .contacts(&reg.aor, now)
            .into_iter()
            .find(|c| same_uri(&c.uri, &b.uri) && (!match_callid || c.callid == reg.callid));
        if let Some(old) = &existing
            && old.callid == reg.callid
        {
            // A binding refreshed from the same call: its CSeq must grow (equal allowed with
            // allow_dup_cseq; one step back within cseq_delay is a retransmission, skipped).
            let asked = u64::from(reg.cseq) + u64::from(s.allow_dup_cseq);
            let stored = u64::from(old.cseq);
            if asked < stored || (asked == stored && old.last_modified + 20 <= now) {
                return Err((Refusal::InvalidCSeq, current(t)));
            }
            if asked == stored {
                continue;
            }
        }
        if b.expires == 0 {
            if let Some(old) = existing {
                t.remove_contact(
                    &reg.aor,
                    &old.uri,
                    match_callid.then_some(old.callid.as_str()),
                );
            }
            continue;
        }
        if existing.is_none() && max != 0 && t.contacts(&reg.aor, now).len() >= max as usize {
            if !flags.force_registration {
                return Err((Refusal::TooMany, current(t)));
            }
            // force-registration: the last binding makes room.
            if let Some(last) = t.contacts(&reg.aor, now).pop() {
                t.remove_contact(&reg.aor, &last.uri, Some(&last.callid));
            }
        }
        let contact = Contact {
            uri: existing.as_ref().map_or(b.uri, |old| old.uri.clone()),
            expires: Some(b.expires),
            q: b.q,
            callid: reg.callid.clone(),
            cseq: reg.cseq,
            cflags: f.msg.branch_flags,
            flags: u32::from(flags.memory_only),
            user_agent: user_agent.clone(),
            received: received.clone(),
            path: reg.path.clone(),
            socket: socket.clone(),
            methods: b.methods,
            instance: b.instance,
            reg_id: b.reg_id,
            last_modified: now,
            id: existing.as_ref().map_or(0, |old| old.id),
        };
        t.upsert(&reg.aor, contact, match_callid, s.desc_time_order);
    }
    if let Some((conn, until)) = keep {
        engine::hooks::keep_tcp(conn, Duration::from_secs(until.saturating_sub(now) + 10));
    }
    Ok(current(t).into_iter().chain(echo).collect())
}

/// Whether a contact URI is reached over a stream transport (TCP, TLS, WS, WSS, or `sips:`).
fn over_stream(uri: &str) -> bool {
    sip::Uri::parse(uri).is_ok_and(|u| {
        u.scheme().as_str().eq_ignore_ascii_case("sips")
            || u.transport().is_some_and(|t| {
                ["tcp", "tls", "ws", "wss"]
                    .iter()
                    .any(|p| t.eq_ignore_ascii_case(p))
            })
    })
}

/// Whether two Contact URIs name the same binding (RFC 3261 §19.1.4 URI comparison).
pub fn same_uri(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    match (sip::Uri::parse(a), sip::Uri::parse(b)) {
        (Ok(x), Ok(y)) => x.equivalent(&y),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values_read_and_write_as_opensips_does() {
        for (text, q) in [
            ("0.5", 500),
            ("1", 1000),
            ("1.0", 1000),
            ("1.000", 1000),
            ("0", 0),
            (".5", 500),
            ("0.1234", 123),
        ] {
            assert_eq!(parse_q(text), Some(q), "{text}");
        }
        for bad in ["1.5", "2", "x", "", "0.5x", "-1"] {
            assert_eq!(parse_q(bad), None, "{bad}");
        }
        for (q, text) in [
            (500, "0.5"),
            (250, "0.25"),
            (125, "0.125"),
            (1000, "1"),
            (0, "0"),
        ] {
            assert_eq!(q_text(q), text);
        }
    }

    #[test]
    fn flags_are_read_by_name() {
        let f = SaveFlags::parse("no-reply, max-contacts=2,min-expires=30").unwrap();
        assert!(f.no_reply && f.max_contacts == Some(2) && f.min_expires == Some(30));
        assert!(SaveFlags::parse("bogus").is_err());
        assert!(SaveFlags::parse("max-contacts=x").is_err());
    }
}

#[cfg(test)]
mod aor_tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            use_domain: true,
            match_callid: false,
            desc_time_order: false,
            nat_bflag: None,
            tcp_persistent_flag: None,
            default_expires: 3600,
            min_expires: 60,
            max_expires: 0,
            default_q: -1,
            case_sensitive: true,
            realm_prefix: String::new(),
            max_contacts: 0,
            max_username_len: 64,
            max_domain_len: 64,
            max_aor_len: 256,
            max_contact_len: 255,
            allow_dup_cseq: true,
            retry_after: 0,
            received_avp: None,
            received_param: "received".into(),
        }
    }

    #[test]
    fn aors_are_user_at_lowercased_domain() {
        let s = settings();
        assert_eq!(
            aor_of("sip:alice@127.0.0.1", &s),
            Ok("alice@127.0.0.1".into())
        );
        assert_eq!(
            aor_of("sip:Al%69ce@EXAMPLE.com:5070;transport=tcp", &s),
            Ok("Alice@example.com".into())
        );
        assert_eq!(aor_of("sip:example.com", &s), Ok("example.com".into()));
        assert_eq!(aor_of("sip:a%0a@h", &s), Err(Refusal::Unescape));
        // A cut escape does not even parse as a URI here (OpenSIPS finds it when unescaping).
        assert_eq!(aor_of("sip:a%4@h", &s), Err(Refusal::AorParse));
        assert_eq!(
            aor_of("sip:j%C3%B6rg@h", &s),
            Err(Refusal::Unescape),
            "not printable ASCII"
        );
        // Unescaped non-ASCII is not a SIP URI (RFC 3261 §25.1).
        assert_eq!(aor_of("sip:jörg@h", &s), Err(Refusal::AorParse));
        let long = format!("sip:{}@h", "u".repeat(65));
        assert_eq!(aor_of(&long, &s), Err(Refusal::AorLength));
        let s = Settings {
            use_domain: false,
            case_sensitive: false,
            ..settings()
        };
        assert_eq!(aor_of("sip:Bob@Example.com", &s), Ok("bob".into()));
        assert_eq!(aor_of("sip:example.com", &s), Err(Refusal::AorParse));
    }
}
