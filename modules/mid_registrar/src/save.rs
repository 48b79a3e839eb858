//! `mid_registrar_save(domain[, flags[, aor[, outgoing_expires[, ownership_tag]]]])` on a
//! REGISTER: decides whether it goes to the main registrar (1, the script relays it) or is
//! answered here (2), and rewrites what goes upstream so that the main registrar reaches the
//! UAs through us (RFC 3261 §10.3 on our side, a UA's REGISTER upstream).

use engine::{FnCtx, Value};
use registrar::save::{Refusal, SaveFlags, aor_of, contact_header, parse_q, same_uri};
use registrar::usrloc::{self, Contact};
use sip::HeaderName;
use sip::headers::Contacts;

use crate::state::{self, Mapping, Pending};
use crate::{Config, Insertion, Mode};

/// The REGISTER must be relayed to the main registrar.
pub const FORWARD: i64 = 1;
/// The REGISTER was answered here.
pub const ABSORBED: i64 = 2;
/// Refused (and answered, unless `no-reply`), or an internal error.
pub const ERROR: i64 = -1;

/// Argument `i` as text; `None` when not given or empty.
pub(crate) fn text_arg(args: &[Value], i: usize) -> Option<String> {
    args.get(i)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
        .filter(|t| !t.is_empty())
}

/// One Contact of the REGISTER.
pub(crate) struct UaContact {
    pub(crate) uri: String,
    /// The lifetime as asked (parameter, Expires header or `default_expires`), before
    /// min/max_expires: what mirroring sends upstream.
    pub(crate) raw: u32,
    /// After min/max_expires; 0 unregisters.
    pub(crate) expires: u32,
    pub(crate) q: i32,
    pub(crate) methods: u32,
    pub(crate) instance: Option<String>,
    pub(crate) reg_id: u32,
}

/// A REGISTER as mid_registrar_save() reads it.
pub(crate) struct Register {
    pub(crate) aor: String,
    pub(crate) callid: String,
    pub(crate) cseq: u32,
    pub(crate) expires_hf: Option<u32>,
    pub(crate) star: bool,
    pub(crate) contacts: Vec<UaContact>,
}

fn read_register(
    f: &FnCtx<'_>,
    cfg: &Config,
    flags: &SaveFlags,
    aor_uri: Option<&str>,
) -> Result<Register, Refusal> {
    let msg = &f.msg.msg;
    let s = &cfg.reg;
    let to = msg.to_header().map_err(|_| Refusal::ToMissing)?;
    let callid = msg
        .call_id()
        .map_err(|_| Refusal::CallIdMissing)?
        .trim_end()
        .to_owned();
    let cseq = msg.cseq().map_err(|_| Refusal::CSeqMissing)?.seq;
    let expires_hf = msg.expires().map_err(|_| Refusal::ExpiresParse)?;
    let aor = aor_of(aor_uri.unwrap_or(to.uri().as_str()), s)?;
    if !aor.contains('@') && s.use_domain || aor.starts_with('@') {
        // OpenSIPS: "the AoR URI is missing the 'username' part!"
        return Err(Refusal::AorParse);
    }
    let list = match msg.contacts().map_err(|_| Refusal::ContactParse)? {
        Contacts::Star => {
            if expires_hf != Some(0) {
                return Err(Refusal::StarExpires);
            }
            if msg.header_count(HeaderName::Contact) > 1 {
                return Err(Refusal::StarContacts);
            }
            return Ok(Register {
                aor,
                callid,
                cseq,
                expires_hf,
                star: true,
                contacts: Vec::new(),
            });
        }
        Contacts::List(list) => list,
    };
    let (min, max) = (
        flags.min_expires.unwrap_or(s.min_expires),
        flags.max_expires.unwrap_or(s.max_expires),
    );
    let allow: Vec<&str> = msg.values(HeaderName::Allow).collect();
    let allow_methods = usrloc::methods_of(&allow).unwrap_or(usrloc::ALL_METHODS);
    let mut contacts = Vec::new();
    for c in list {
        let uri = c.uri().as_str().to_owned();
        if uri.len() > s.max_contact_len {
            return Err(Refusal::ContactLength);
        }
        let raw = match c.param("expires").flatten().filter(|v| !v.is_empty()) {
            Some(v) => v.trim().parse::<u32>().unwrap_or(s.default_expires),
            None => expires_hf.unwrap_or(s.default_expires),
        };
        let mut expires = raw;
        if expires != 0 {
            if min != 0 {
                expires = expires.max(min);
            }
            if max != 0 {
                expires = expires.min(max);
            }
        }
        let q = match c.q() {
            Some(t) if !t.is_empty() => parse_q(t).ok_or(Refusal::InvalidQ)?,
            _ => s.default_q,
        };
        let methods = c
            .param("methods")
            .flatten()
            .and_then(|m| usrloc::methods_of(&[m.trim_matches('"')]))
            .unwrap_or(allow_methods);
        contacts.push(UaContact {
            uri,
            raw,
            expires,
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
        expires_hf,
        star: false,
        contacts,
    })
}

/// The reason phrase of the codes mid_registrar_save() answers with.
fn reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        420 => "Bad Extension",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        _ => "OK",
    }
}

/// Answers a refused REGISTER (unless `no-reply`): the code with `P-Registrar-Error`.
fn refuse(f: &mut FnCtx<'_>, cfg: &Config, flags: &SaveFlags, why: Refusal) -> i64 {
    f.log.log(
        -1,
        &format!("ERROR:mid_registrar: REGISTER refused: {}\n", why.text()),
    );
    if !flags.no_reply {
        let mut headers = vec![format!("P-Registrar-Error: {}", why.text())];
        if why.code() >= 500 && cfg.reg.retry_after != 0 {
            headers.push(format!("Retry-After: {}", cfg.reg.retry_after));
        }
        sl::reply_with(f, why.code(), reason(why.code()), headers);
    }
    ERROR
}

/// `mid_registrar_save()`: the request side here, the reply side in [`crate::reply`].
pub fn mid_registrar_save(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let flags = match text_arg(args, 1) {
        Some(text) => match SaveFlags::parse(&text) {
            Ok(flags) => flags,
            Err(e) => {
                f.log.log(-1, &format!("ERROR:mid_registrar: {e}\n"));
                SaveFlags::default()
            }
        },
        None => SaveFlags::default(),
    };
    let cfg = Config::of(f.script);
    let table = text_arg(args, 0).unwrap_or_default();
    if !f.msg.msg.is_request() {
        return crate::reply::on_reply(f.msg, f.script, &cfg, &table);
    }
    if f.msg.msg.method() != Some(sip::Method::Register) {
        f.log.log(
            -1,
            "ERROR:mid_registrar: rejecting non-REGISTER SIP request\n",
        );
        return ERROR;
    }
    let expires_out = match args.get(3).and_then(Value::as_int) {
        Some(e) if e > 0 => u32::try_from(e).unwrap_or(u32::MAX),
        Some(e) => {
            f.log.log(
                -1,
                &format!(
                    "ERROR:mid_registrar: bad 'outgoing_expires' value: {e}, falling back to \
                     default\n"
                ),
            );
            cfg.outgoing_expires
        }
        None => cfg.outgoing_expires,
    };
    let reg = match read_register(f, &cfg, &flags, text_arg(args, 2).as_deref()) {
        Ok(r) => r,
        Err(why) => return refuse(f, &cfg, &flags, why),
    };
    let now = usrloc::now();
    if reg.star {
        return forward(f, &cfg, &table, &flags, reg, expires_out, now);
    }
    if reg.contacts.is_empty() {
        // A query: the bindings as they stand.
        return quick_reply(f, &cfg, &table, &flags, &reg, now);
    }
    let absorb = match cfg.mode {
        Mode::Mirror => false,
        Mode::ThrottleContact => crate::throttle::by_contact(f, &cfg, &table, &reg, now),
        Mode::ThrottleAor => crate::throttle::by_aor(f, &cfg, &table, &reg, now),
    };
    if absorb {
        keep_for_streams(
            persistent_conn(f, &cfg),
            reg.contacts.iter().map(|c| (c.uri.as_str(), c.expires)),
        );
        quick_reply(f, &cfg, &table, &flags, &reg, now)
    } else {
        forward(f, &cfg, &table, &flags, reg, expires_out, now)
    }
}

/// Answers the REGISTER here: 200 OK with the AoR's bindings (only the REGISTER's with
/// `only-request-contacts`).
fn quick_reply(
    f: &mut FnCtx<'_>,
    cfg: &Config,
    table: &str,
    flags: &SaveFlags,
    reg: &Register,
    now: u64,
) -> i64 {
    if flags.no_reply {
        return ABSORBED;
    }
    let mut list = usrloc::tables().table(table).contacts(&reg.aor, now);
    if flags.only_request_contacts {
        list.retain(|c| reg.contacts.iter().any(|u| same_uri(&u.uri, &c.uri)));
    }
    let headers: Vec<String> = contact_header(&list, now, &cfg.reg).into_iter().collect();
    if sl::reply_with(f, 200, "OK", headers) > 0 {
        ABSORBED
    } else {
        ERROR
    }
}

/// What a binding stored from this REGISTER carries besides its URI and lifetime.
pub(crate) struct Origin<'a> {
    pub callid: &'a str,
    pub cseq: u32,
    pub user_agent: &'a str,
    pub socket: Option<&'a String>,
    pub received: Option<&'a String>,
    pub cflags: u64,
    pub memory_only: bool,
}

/// The usrloc binding of `m`, expiring at `expires` (absolute).
pub(crate) fn binding(m: &Mapping, o: &Origin<'_>, expires: u64, now: u64) -> Contact {
    Contact {
        uri: m.uri.clone(),
        expires: Some(expires),
        q: m.q,
        callid: o.callid.to_owned(),
        cseq: o.cseq,
        cflags: o.cflags,
        flags: u32::from(o.memory_only),
        user_agent: o.user_agent.to_owned(),
        received: o.received.cloned(),
        path: None,
        socket: o.socket.cloned(),
        methods: m.methods,
        instance: m.instance.clone(),
        reg_id: m.reg_id,
        last_modified: now,
        id: m.ctid,
    }
}

/// What the REGISTER tells about where it came from: (User-Agent, socket, received, cflags).
pub(crate) fn origin_of(
    f: &FnCtx<'_>,
    cfg: &Config,
) -> (String, Option<String>, Option<String>, u64) {
    let user_agent = f
        .msg
        .msg
        .user_agent()
        .map(str::trim)
        .filter(|ua| !ua.is_empty() && ua.len() < 255)
        .unwrap_or("n/a")
        .to_owned();
    let socket = f.msg.receipt.as_ref().map(|r| {
        format!(
            "{}:{}:{}",
            r.proto,
            engine::pv::ip_uri_text(r.local.ip()),
            r.local.port()
        )
    });
    let received = cfg
        .reg
        .received_avp
        .and_then(|slot| f.msg.avps.get(slot))
        .and_then(|vals| vals.last())
        .map(|v| v.to_text().into_owned())
        .filter(|v| !v.is_empty());
    (user_agent, socket, received, f.msg.branch_flags)
}

/// The connection of a REGISTER with `tcp_persistent_flag` set, to keep open.
fn persistent_conn(f: &FnCtx<'_>, cfg: &Config) -> Option<u64> {
    f.msg.receipt.as_ref().and_then(|r| r.conn).filter(|_| {
        cfg.reg
            .tcp_persistent_flag
            .is_some_and(|bit| f.msg.flags & (1u64 << bit) != 0)
    })
}

/// Keeps `conn` open as long as the longest-lived stream contact (TCP, TLS, WS, WSS or
/// `sips:`) of `(uri, lifetime)` stays registered, and 10 s more (as OpenSIPS does).
pub(crate) fn keep_for_streams<'a>(
    conn: Option<u64>,
    contacts: impl Iterator<Item = (&'a str, u32)>,
) {
    let Some(conn) = conn else {
        return;
    };
    let over_stream = |uri: &str| {
        sip::Uri::parse(uri).is_ok_and(|u| {
            u.scheme().as_str().eq_ignore_ascii_case("sips")
                || u.transport().is_some_and(|t| {
                    ["tcp", "tls", "ws", "wss"]
                        .iter()
                        .any(|p| t.eq_ignore_ascii_case(p))
                })
        })
    };
    if let Some(longest) = contacts
        .filter(|(uri, _)| over_stream(uri))
        .map(|(_, e)| e)
        .max()
        .filter(|e| *e > 0)
    {
        engine::hooks::keep_tcp(
            conn,
            std::time::Duration::from_secs(u64::from(longest) + 10),
        );
    }
}

/// The REGISTER's contacts, each with the id it has here (or had when this REGISTER was
/// relayed before, or a new one).
pub(crate) fn mappings(reg: &Register, table: &str, now: u64) -> Vec<Mapping> {
    let local = usrloc::tables().table(table).contacts(&reg.aor, now);
    let relayed = state::state().relayed_ids(&reg.callid, reg.cseq);
    reg.contacts
        .iter()
        .map(|c| Mapping {
            ctid: local
                .iter()
                .find(|l| same_uri(&l.uri, &c.uri))
                .map(|l| l.id)
                .or_else(|| {
                    relayed
                        .iter()
                        .find(|(uri, _)| same_uri(uri, &c.uri))
                        .map(|(_, id)| *id)
                })
                .unwrap_or_else(usrloc::next_id),
            uri: c.uri.clone(),
            expires: c.expires,
            q: c.q,
            methods: c.methods,
            instance: c.instance.clone(),
            reg_id: c.reg_id,
        })
        .collect()
}

/// `host:port` our Contacts name upstream: the advertised address if the script set one, else
/// the socket the REGISTER came in on.
fn our_address(f: &FnCtx<'_>) -> String {
    let local = f.msg.receipt.as_ref().map(|r| r.local);
    let host = f
        .msg
        .adv_address
        .clone()
        .or_else(|| local.map(|l| engine::pv::ip_uri_text(l.ip())))
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = f
        .msg
        .adv_port
        .clone()
        .or_else(|| local.map(|l| l.port().to_string()))
        .unwrap_or_else(|| "5060".into());
    format!("{host}:{port}")
}

/// The text of `extra_contact_params_avp`, appended to each URI we send upstream.
fn extra_params(f: &FnCtx<'_>, cfg: &Config) -> String {
    cfg.extra_params_avp
        .and_then(|slot| f.msg.avps.get(slot))
        .and_then(|vals| vals.last())
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default()
}

/// The AoR as a URI user part: `@` written as `at_escape_str`.
pub fn escaped_aor(aor: &str, cfg: &Config) -> String {
    escape_at(aor, &cfg.at_escape)
}

fn escape_at(aor: &str, escape: &str) -> String {
    aor.replace('@', escape)
}

/// Rewrites the REGISTER for the main registrar and remembers it until its answer: returns
/// [`FORWARD`].
fn forward(
    f: &mut FnCtx<'_>,
    cfg: &Config,
    table: &str,
    flags: &SaveFlags,
    reg: Register,
    expires_out: u32,
    now: u64,
) -> i64 {
    let maps = if reg.star {
        Vec::new()
    } else {
        mappings(&reg, table, now)
    };
    if !reg.star {
        rewrite(f, cfg, &reg, &maps, expires_out);
    }
    let (user_agent, socket, received, cflags) = origin_of(f, cfg);
    state::state().relayed(Pending {
        table: table.to_owned(),
        aor: reg.aor,
        mode: cfg.mode,
        star: reg.star,
        expires_out,
        mappings: maps,
        callid: reg.callid,
        cseq: reg.cseq,
        user_agent,
        socket,
        received,
        cflags,
        memory_only: flags.memory_only,
        only_request_contacts: flags.only_request_contacts,
        max_contacts: flags.max_contacts.unwrap_or(cfg.reg.max_contacts),
        force_registration: flags.force_registration,
        keep_conn: persistent_conn(f, cfg),
        at: now,
    });
    FORWARD
}

/// The REGISTER's Contacts replaced by ours (Path headers dropped: the main registrar reaches
/// the UAs through us), and in the throttling modes the lifetime asked upstream raised to
/// `expires_out`.
fn rewrite(f: &mut FnCtx<'_>, cfg: &Config, reg: &Register, maps: &[Mapping], expires_out: u32) {
    let us = our_address(f);
    let extra = extra_params(f, cfg);
    let throttling = cfg.mode != Mode::Mirror;
    let contacts: Vec<String> = if cfg.mode == Mode::ThrottleAor {
        let dereg = reg.contacts.iter().all(|c| c.expires == 0);
        let uri = format!("<sip:{}@{us}{extra}>", escaped_aor(&reg.aor, cfg));
        if reg.expires_hf.is_some() {
            vec![uri]
        } else {
            vec![format!(
                "{uri};expires={}",
                if dereg { 0 } else { expires_out }
            )]
        }
    } else {
        reg.contacts
            .iter()
            .zip(maps)
            .map(|(c, m)| {
                let out = if throttling && c.raw > 0 {
                    expires_out
                } else {
                    c.raw
                };
                let user = sip::Uri::parse(&c.uri)
                    .ok()
                    .and_then(|u| u.user().map(str::to_owned))
                    .filter(|u| !u.is_empty());
                let uri = match (cfg.insertion, user) {
                    (Insertion::Param, Some(user)) => {
                        format!("sip:{user}@{us};{}={}{extra}", cfg.ctid_param, m.ctid)
                    }
                    (Insertion::Param, None) => {
                        format!("sip:{us};{}={}{extra}", cfg.ctid_param, m.ctid)
                    }
                    (Insertion::User, _) => format!("sip:{}@{us}{extra}", m.ctid),
                };
                format!("<{uri}>;expires={out}")
            })
            .collect()
    };
    let lines: Vec<(usize, HeaderName)> = f
        .msg
        .msg
        .headers()
        .filter(|h| {
            matches!(
                h.name,
                HeaderName::Contact | HeaderName::Path | HeaderName::Expires
            )
        })
        .map(|h| (h.index, h.name))
        .collect();
    let mut first_contact = true;
    for (index, name) in lines {
        match name {
            HeaderName::Contact if first_contact => {
                first_contact = false;
                f.msg.edits.replace_value(index, contacts.join(", "));
            }
            HeaderName::Expires if throttling => {
                let dereg = reg.contacts.iter().all(|c| c.expires == 0);
                if reg.expires_hf.is_some_and(|e| e > 0) || cfg.mode == Mode::ThrottleAor {
                    let v = if dereg { 0 } else { expires_out };
                    f.msg.edits.replace_value(index, v.to_string());
                }
            }
            HeaderName::Expires => {}
            _ => {
                f.msg.edits.remove(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aors_are_escaped_with_at_escape_str() {
        assert_eq!(escape_at("alice@example.com", "%40"), "alice%40example.com");
        assert_eq!(escape_at("alice@example.com", "___"), "alice___example.com");
        assert_eq!(escape_at("alice", "%40"), "alice");
    }
}
