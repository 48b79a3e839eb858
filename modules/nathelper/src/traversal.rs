//! The OpenSIPS `nat_traversal` module: `client_nat_test(type)`, `fix_contact()`,
//! `nat_keepalive()`, `$source_uri` and `$keepalive.socket(uri)`.
//!
//! - `client_nat_test` ORs its tests: 1 a private (RFC 1918) Contact host, 2 a source address
//!   other than the top Via's host and port (5060 when none), 4 a private top Via host, 8 a
//!   source address other than the Contact's host and port.
//! - `fix_contact` puts the source address in the Contact URIs, as `fix_nated_contact()`.
//! - `nat_keepalive` (UDP requests only) keeps the sender's NAT binding open with a request
//!   (`keepalive_method`, NOTIFY with `Event: keep-alive` by default, From `keepalive_from`,
//!   plus `keepalive_extra_headers`) every `keepalive_interval` seconds (60) to its source
//!   address, from the socket the request came in on: for a REGISTER or SUBSCRIBE once its 2xx
//!   is sent or relayed back, until the expiry that reply grants; for an initial INVITE until
//!   its dialog ends or fails (the dialog module is needed; the dialog is created if the
//!   script did not).
//!   Statistics `keepalive_endpoints`, `registered_endpoints`, `subscribed_endpoints`,
//!   `dialog_endpoints`.
//!
//! Not here: `keepalive_state_file` (the endpoints are not kept over a restart; the parameter
//! is read and has no effect), the callee side of a dialog (OpenSIPS also keeps a NATed callee
//! alive when it answered from an endpoint already kept), and `$nat_traversal.track_dialog`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine::{FnCtx, FnSpec, ModuleSpec, MsgCtx, Param, ParamType, Routes, Script, Value};

use crate::{contact_uris, host_ip, is_private, uri_port};

pub static NAT_TRAVERSAL: ModuleSpec = ModuleSpec {
    name: "nat_traversal",
    functions: &[
        FnSpec {
            name: "nat_keepalive",
            params: &[],
            routes: Routes::REQUEST,
            run: nat_keepalive,
        },
        FnSpec {
            name: "fix_contact",
            params: &[],
            routes: Routes::ALL,
            run: fix_contact,
        },
        FnSpec {
            name: "client_nat_test",
            params: &[(Param::Int, false)],
            routes: Routes::ALL,
            run: client_nat_test,
        },
    ],
    params: &[
        ("keepalive_interval", ParamType::Int),
        ("keepalive_method", ParamType::Str),
        ("keepalive_from", ParamType::Str),
        ("keepalive_extra_headers", ParamType::Str),
        ("keepalive_state_file", ParamType::Str),
    ],
};

/// `client_nat_test(type)`: 1 when any of the selected tests holds.
fn client_nat_test(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let tests = args.first().and_then(Value::as_int).unwrap_or(0);
    let Some(src) = f.msg.receipt.as_ref().map(|r| r.source) else {
        return -1;
    };
    let msg = &f.msg.msg;
    let contacts = contact_uris(msg);
    let first = contacts.first();
    let host_of = |u: &sip::Uri<'_>| u.host().map(|h| h.as_str().to_owned()).unwrap_or_default();
    let via = msg.top_via().ok();
    let hit = (tests & 1 != 0 && first.is_some_and(|u| is_private(&host_of(u), false)))
        || (tests & 2 != 0
            && via.as_ref().is_some_and(|v| {
                host_ip(v.host().as_str()) != Some(src.ip())
                    || v.port().unwrap_or(5060) != src.port()
            }))
        || (tests & 4 != 0
            && via
                .as_ref()
                .is_some_and(|v| is_private(v.host().as_str(), false)))
        || (tests & 8 != 0
            && first.is_some_and(|u| {
                host_ip(&host_of(u)) != Some(src.ip()) || uri_port(u) != src.port()
            }));
    if hit { 1 } else { -1 }
}

/// `fix_contact()`: the Contact URIs' host and port become the source address.
fn fix_contact(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    crate::fix_nated_contact(f, &[])
}

/// `$source_uri` (the engine reads it).
fn source_uri(ctx: &MsgCtx) -> Value {
    engine::pv::source_uri(ctx)
}

/// One kept endpoint: where the requests go and what keeps it.
#[derive(Debug, Default)]
struct Endpoint {
    dest: Option<SocketAddr>,
    local: Option<SocketAddr>,
    registered_until: u64,
    subscribed_until: u64,
    dialogs: HashSet<u64>,
}

impl Endpoint {
    fn alive(&self, now: u64) -> bool {
        self.registered_until > now || self.subscribed_until > now || !self.dialogs.is_empty()
    }
}

/// The kept endpoints by source URI.
static ENDPOINTS: Mutex<Option<HashMap<String, Endpoint>>> = Mutex::new(None);

fn with_endpoints<T>(f: impl FnOnce(&mut HashMap<String, Endpoint>) -> T) -> T {
    let mut guard = ENDPOINTS.lock().unwrap_or_else(PoisonError::into_inner);
    f(guard.get_or_insert_with(HashMap::new))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What `nat_keepalive()` asked for a REGISTER/SUBSCRIBE, until its 2xx: (message id, source
/// URI, source, local socket, is SUBSCRIBE), by Call-ID and CSeq.
type Pending = (String, SocketAddr, SocketAddr, bool);
static PENDING: Mutex<Option<HashMap<(String, String), Pending>>> = Mutex::new(None);

fn pending<T>(f: impl FnOnce(&mut HashMap<(String, String), Pending>) -> T) -> T {
    let mut guard = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
    f(guard.get_or_insert_with(HashMap::new))
}

fn key_of(msg: &sip::SipMessage) -> Option<(String, String)> {
    Some((
        msg.call_id().ok()?.to_owned(),
        msg.header(sip::HeaderName::CSeq)?
            .split_whitespace()
            .next()?
            .to_owned(),
    ))
}

fn count(name: &'static str, delta: i64) {
    let g = match name {
        "keepalive_endpoints" => engine::gauge!("nat_traversal", "keepalive_endpoints"),
        "registered_endpoints" => engine::gauge!("nat_traversal", "registered_endpoints"),
        "subscribed_endpoints" => engine::gauge!("nat_traversal", "subscribed_endpoints"),
        _ => engine::gauge!("nat_traversal", "dialog_endpoints"),
    };
    if delta > 0 {
        g.inc();
    } else {
        g.dec();
    }
}

/// `nat_keepalive()`: see the module doc. -1 for other transports than UDP, other methods, or
/// an INVITE inside a dialog.
fn nat_keepalive(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let Some(r) = f.msg.receipt.clone() else {
        return -1;
    };
    if r.proto != "udp" || !f.script.loads("nat_traversal") {
        return -1;
    }
    let Value::Str(uri) = source_uri(f.msg) else {
        return -1;
    };
    let uri = uri.to_string();
    match f.msg.msg.method() {
        Some(m @ (sip::Method::Register | sip::Method::Subscribe)) => {
            let Some(key) = key_of(&f.msg.msg) else {
                return -1;
            };
            let subscribe = m == sip::Method::Subscribe;
            pending(|p| p.insert(key, (uri, r.source, r.local, subscribe)));
            1
        }
        Some(sip::Method::Invite) => {
            if f.msg
                .msg
                .to_tag()
                .ok()
                .flatten()
                .is_some_and(|t| !t.is_empty())
            {
                f.log.log(
                    -1,
                    "ERROR:nat_traversal: nat_keepalive should only be called for initial INVITE requests\n",
                );
                return -1;
            }
            let Some(dialog) = f
                .msg
                .dialog
                .map(|d| d.id)
                .or_else(|| engine::hooks::dialog_create(f.msg))
            else {
                f.log.log(
                    -1,
                    "ERROR:nat_traversal: cannot keep alive dialog without the dialog module being loaded\n",
                );
                return -1;
            };
            let added = with_endpoints(|eps| {
                let e = eps.entry(uri.clone()).or_default();
                if e.dest.is_none() {
                    count("keepalive_endpoints", 1);
                }
                e.dest = Some(r.source);
                e.local = Some(r.local);
                e.dialogs.insert(dialog)
            });
            if added {
                count("dialog_endpoints", 1);
            }
            1
        }
        _ => {
            f.log.log(
                -1,
                "ERROR:nat_traversal: unsupported method for keepalive\n",
            );
            -1
        }
    }
}

/// The expiry a 2xx to a REGISTER grants the sender (the largest of its Contacts' `expires`,
/// else its Expires header) or a SUBSCRIBE (its Expires header), in seconds.
fn granted(reply: &sip::SipMessage, subscribe: bool) -> Option<u64> {
    let header = reply
        .header(sip::HeaderName::Expires)
        .and_then(|v| v.trim().parse::<u64>().ok());
    if subscribe {
        return header;
    }
    let contacts = match reply.contacts() {
        Ok(sip::headers::Contacts::List(list)) => list
            .iter()
            .filter_map(|c| c.param("expires").flatten()?.trim().parse::<u64>().ok())
            .max(),
        _ => None,
    };
    contacts.or(header)
}

/// A reply to a request of this worker's: when it is the 2xx of a REGISTER or SUBSCRIBE that
/// `nat_keepalive()` marked, its sender is kept alive until the expiry granted.
pub fn reply_seen(reply: &sip::SipMessage) {
    let Some(code) = reply.status() else { return };
    let Some(key) = key_of(reply) else { return };
    let Some(mark) = pending(|p| p.remove(&key)) else {
        return;
    };
    if !(200..300).contains(&code) {
        return;
    }
    let (uri, source, local, subscribe) = mark;
    let Some(secs) = granted(reply, subscribe).filter(|s| *s > 0) else {
        return;
    };
    let until = now() + secs;
    with_endpoints(|eps| {
        let e = eps.entry(uri).or_default();
        if e.dest.is_none() {
            count("keepalive_endpoints", 1);
        }
        e.dest = Some(source);
        e.local = Some(local);
        let (slot, stat) = if subscribe {
            (&mut e.subscribed_until, "subscribed_endpoints")
        } else {
            (&mut e.registered_until, "registered_endpoints")
        };
        if *slot <= now() {
            count(stat, 1);
        }
        *slot = (*slot).max(until);
    });
}

/// `$keepalive.socket(uri)`: the socket the endpoint's keepalives leave from
/// (`udp:IP:PORT`), NULL when it is not kept.
pub fn keepalive_socket(uri: &str) -> Value {
    with_endpoints(|eps| {
        eps.get(uri.trim())
            .and_then(|e| e.local)
            .map_or(Value::Null, |a| {
                Value::from(format!(
                    "udp:{}:{}",
                    engine::pv::ip_uri_text(a.ip()),
                    a.port()
                ))
            })
    })
}

/// What the keepalive requests look like (the module's parameters).
#[derive(Debug, Clone)]
pub struct Keepalive {
    pub interval: Duration,
    method: String,
    from: Option<String>,
    extra: String,
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Keepalive {
    /// The keepalive the script asks for (nat_traversal loaded).
    pub fn of(script: &Script) -> Option<Keepalive> {
        if !script.loads("nat_traversal") {
            return None;
        }
        let p = |n: &str| script.modparam_str("nat_traversal", n);
        Some(Keepalive {
            interval: Duration::from_secs(
                script
                    .modparam_int("nat_traversal", "keepalive_interval")
                    .filter(|n| *n > 0)
                    .unwrap_or(60)
                    .unsigned_abs(),
            ),
            method: p("keepalive_method").unwrap_or_else(|| "NOTIFY".into()),
            from: p("keepalive_from"),
            extra: p("keepalive_extra_headers").unwrap_or_default(),
        })
    }

    /// The keepalives due now, one per live endpoint; endpoints nothing keeps any more are
    /// let go.
    pub fn due(&self) -> Vec<engine::Outbound> {
        let now = now();
        with_endpoints(|eps| {
            let mut out = Vec::new();
            eps.retain(|uri, e| {
                if e.registered_until != 0 && e.registered_until <= now {
                    e.registered_until = 0;
                    count("registered_endpoints", -1);
                }
                if e.subscribed_until != 0 && e.subscribed_until <= now {
                    e.subscribed_until = 0;
                    count("subscribed_endpoints", -1);
                }
                // A dialog the dialog module no longer has has ended (or failed).
                let before = e.dialogs.len();
                e.dialogs
                    .retain(|d| engine::hooks::dialog_created_ms(*d).is_some());
                for _ in e.dialogs.len()..before {
                    count("dialog_endpoints", -1);
                }
                if !e.alive(now) {
                    count("keepalive_endpoints", -1);
                    return false;
                }
                if let Some(dest) = e.dest {
                    out.push(self.request(uri, dest, e.local));
                }
                true
            });
            out
        })
    }

    fn request(&self, uri: &str, dest: SocketAddr, local: Option<SocketAddr>) -> engine::Outbound {
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let via = local.map_or_else(
            || "127.0.0.1".to_owned(),
            |a| format!("{}:{}", engine::pv::ip_uri_text(a.ip()), a.port()),
        );
        let host = local.map_or_else(
            || "127.0.0.1".to_owned(),
            |a| engine::pv::ip_uri_text(a.ip()),
        );
        let from = self
            .from
            .clone()
            .unwrap_or_else(|| format!("sip:keepalive@{host}"));
        let m = &self.method;
        let event = if m.eq_ignore_ascii_case("NOTIFY") {
            "Event: keep-alive\r\n"
        } else {
            ""
        };
        let extra = &self.extra;
        let data = format!(
            "{m} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bKka{n:x}\r\n\
             From: {from};tag=ka{pid:x}\r\nTo: {uri}\r\nCall-ID: keepalive-{pid:x}-{n:x}@{host}\r\n\
             CSeq: 1 {m}\r\nMax-Forwards: 70\r\n{event}{extra}Content-Length: 0\r\n\r\n",
            pid = std::process::id(),
        )
        .into_bytes();
        engine::Outbound {
            data,
            dest,
            from: local,
            proto: "udp",
            conn: None,
            origin: None,
            no_new_conn: true,
        }
    }
}

static ACTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the module runs (one relaxed load per request otherwise).
pub fn active() -> bool {
    ACTIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Registers the reply hook (replies tm relays back) and the `$keepalive.socket` reader once,
/// when the script loads the module.
pub fn start(script: &Script) {
    static HOOKED: OnceLock<()> = OnceLock::new();
    if script.loads("nat_traversal") {
        ACTIVE.store(true, std::sync::atomic::Ordering::Relaxed);
        HOOKED.get_or_init(|| {
            engine::hooks::add_reply_hook(Box::new(|ctx, _| reply_seen(&ctx.msg)));
            engine::hooks::set_module_pv_reader(
                engine::hooks::ModulePv::KeepaliveSocket,
                Box::new(|_, uri| keepalive_socket(uri)),
            );
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_register_reply_grants_the_largest_contact_expiry() {
        let reply = |extra: &str| {
            sip::SipMessage::parse(bytes::Bytes::from(format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n\
                 To: <sip:a@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
            )))
            .unwrap()
        };
        assert_eq!(
            granted(
                &reply("Contact: <sip:a@1.2.3.4>;expires=60, <sip:a@5.6.7.8>;expires=300\r\n"),
                false
            ),
            Some(300)
        );
        assert_eq!(granted(&reply("Expires: 90\r\n"), false), Some(90));
        assert_eq!(granted(&reply("Expires: 90\r\n"), true), Some(90));
        assert_eq!(granted(&reply(""), false), None);
    }
}
