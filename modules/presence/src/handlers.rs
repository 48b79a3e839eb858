//! `handle_publish` and `handle_subscribe`, the NOTIFYs they and the timers cause, and the
//! expiry of publications and subscriptions.

use engine::{FnCtx, Value};
use sip::HeaderName;

use crate::notify::{self, Notice};
use crate::state::{DbFlag, PresKey, Publication, State, Status, Sub};
use crate::{BodyKind, Config, EventDef, config, dialoginfo, now, pidf, reginfo, state, v};

/// `sip:user@domain`, or `sip:domain` without a user.
pub(crate) fn uri_of(user: &str, domain: &str) -> String {
    if user.is_empty() {
        format!("sip:{domain}")
    } else {
        format!("sip:{user}@{domain}")
    }
}

/// The (user, domain) of a `sip:` URI written by [`uri_of`] (or any SIP URI).
fn user_domain(uri: &str) -> (String, String) {
    match sip::Uri::parse(uri) {
        Ok(u) => (
            u.user().unwrap_or("").to_owned(),
            u.host().map(|h| h.as_str().to_owned()).unwrap_or_default(),
        ),
        Err(_) => (String::new(), String::new()),
    }
}

/// Replies through signaling (the transaction when there is one) and sends a stateless
/// reply at once, so that the NOTIFY after it does not overtake it.
fn reply(f: &mut FnCtx<'_>, code: u16, reason: &str, headers: Vec<String>) -> i64 {
    let before = f.msg.outbox.len();
    let r = sl::reply_with(f, code, reason, headers);
    crate::flush_outbox(f.msg, before);
    r
}

/// The request's event, or the reply that refuses it (`None` after replying).
fn event_of(f: &mut FnCtx<'_>, cfg: &Config) -> Option<(EventDef, Option<String>)> {
    let event = match f.msg.msg.event() {
        Ok(Some(e)) => e,
        Ok(None) => {
            let allow = format!("Allow-Events: {}", cfg.allow_events());
            reply(f, 489, "Bad Event", vec![allow]);
            return None;
        }
        Err(_) => {
            reply(f, 400, "Bad request", Vec::new());
            return None;
        }
    };
    let id = event.id().map(str::to_owned);
    match cfg.event(event.package) {
        Some(def) => Some((def, id)),
        None => {
            let allow = format!("Allow-Events: {}", cfg.allow_events());
            reply(f, 489, "Bad Event", vec![allow]);
            None
        }
    }
}

/// The Expires header, or the event's default, capped at `max`; `Err` after a 400.
fn expires_of(f: &mut FnCtx<'_>, cfg: &Config, ev: &EventDef, max: u32) -> Result<u32, ()> {
    let default = if ev.body == BodyKind::Reginfo {
        cfg.reginfo_expires
    } else {
        crate::DEFAULT_EXPIRES
    };
    match f.msg.msg.expires() {
        Ok(e) => Ok(e.unwrap_or(default).min(max)),
        Err(_) => {
            reply(f, 400, "Bad request", Vec::new());
            Err(())
        }
    }
}

/// The PIDF documents of a presentity, newest first, with `offline` (an entity tag and
/// what that publication reads as now) put in place of that publication's own.
fn presence_body(
    cfg: &Config,
    st: &State,
    key: &PresKey,
    offline: Option<(&str, &str)>,
) -> Option<String> {
    let list = st.presentities.get(key);
    let mut docs: Vec<&str> = Vec::new();
    for p in list.into_iter().flatten().rev() {
        match offline {
            Some((etag, body)) if etag == p.etag => docs.push(body),
            _ => docs.push(&p.body),
        }
    }
    // A removed publication is no longer in the list: its offline document leads.
    if let Some((etag, body)) = offline
        && !list.into_iter().flatten().any(|p| p.etag == etag)
    {
        docs.insert(0, body);
    }
    let entity = uri_of(&key.0, &key.1);
    match pidf::aggregate(&entity, &docs) {
        Some(b) => Some(b),
        None if cfg.notify_offline_body => Some(pidf::offline_for(&entity)),
        None => None,
    }
}

/// The watcher-info document of `pres_uri`'s presence watchers: all of them, or (`only`)
/// the one whose state changed.
fn winfo_body(st: &State, pres_uri: &str, version: u32, only: Option<&Sub>) -> String {
    let watcher = |s: &Sub, status: &'static str| pidf::Watcher {
        uri: s.watcher_uri(),
        id: s.callid.clone(),
        status,
    };
    let watchers: Vec<pidf::Watcher> = match only {
        Some(c) => {
            let status = if c.expires <= now() {
                "terminated"
            } else {
                c.status.name()
            };
            vec![watcher(c, status)]
        }
        None => st
            .subs
            .iter()
            .filter(|s| s.event == "presence" && s.pres_uri == pres_uri)
            .map(|s| watcher(s, s.status.name()))
            .collect(),
    };
    pidf::watcherinfo(pres_uri, version, only.is_none(), &watchers)
}

/// The next NOTIFY of subscription `s` (its CSeq and version counted): the event's body
/// when it is active, the state at `now`.
fn notice(
    cfg: &Config,
    st: &State,
    s: &mut Sub,
    offline: Option<(&str, &str)>,
    partial_winfo: Option<&Sub>,
) -> Notice {
    let now = now();
    s.local_cseq += 1;
    s.version += 1;
    if s.db == DbFlag::None {
        s.db = DbFlag::Update;
    }
    let state_text = notify::subscription_state(s, now, cfg.expires_offset);
    let ev = cfg.event(&s.event);
    let body = if s.status == Status::Active && s.reason.is_empty() {
        ev.and_then(|e| {
            let key = || {
                let (u, d) = user_domain(&s.pres_uri);
                (u, d, e.name.to_owned())
            };
            let text = match e.body {
                BodyKind::Winfo => Some(winfo_body(st, &s.pres_uri, s.version, partial_winfo)),
                BodyKind::Pidf => presence_body(cfg, st, &key(), offline),
                BodyKind::DialogInfo => {
                    // A publication that ends shows its last document once more (the
                    // PUBLISH that ends it may carry one: a terminated dialog).
                    let list = st.presentities.get(&key());
                    let mut bodies: Vec<&str> = list
                        .into_iter()
                        .flatten()
                        .map(|p| match offline {
                            Some((etag, body)) if etag == p.etag => body,
                            _ => p.body.as_str(),
                        })
                        .collect();
                    if let Some((etag, body)) = offline
                        && !list.into_iter().flatten().any(|p| p.etag == etag)
                    {
                        bodies.push(body);
                    }
                    Some(dialoginfo::aggregate(
                        &s.pres_uri,
                        s.version,
                        &bodies,
                        cfg.single_dialog,
                    ))
                }
                BodyKind::Reginfo => {
                    let list = st.presentities.get(&key());
                    if cfg.reginfo_aggregate {
                        let bodies: Vec<&str> = list
                            .into_iter()
                            .flatten()
                            .map(|p| p.body.as_str())
                            .collect();
                        reginfo::aggregate(&bodies, s.version)
                    } else {
                        list.and_then(|l| l.iter().max_by_key(|p| p.received))
                            .filter(|p| !p.body.is_empty())
                            .map(|p| reginfo::with_version(&p.body, s.version))
                    }
                }
                // The newest publication (the list keeps them in the order they came).
                BodyKind::Newest => st
                    .presentities
                    .get(&key())
                    .and_then(|l| l.iter().max_by_key(|p| p.received))
                    .map(|p| p.body.clone())
                    .filter(|b| !b.is_empty()),
            };
            text.map(|b| (e.content_type, b))
        })
    } else {
        None
    };
    Notice {
        sub: s.clone(),
        body,
        state: state_text,
    }
}

/// NOTIFYs every active watcher of `pres_uri` for `event` (not the publisher itself).
pub(crate) fn notify_watchers(
    cfg: &Config,
    pres_uri: &str,
    ev: &EventDef,
    offline: Option<(&str, &str)>,
    sender: Option<&str>,
) {
    let now = now();
    notify_where(
        cfg,
        |s| {
            s.pres_uri == pres_uri
                && s.event.eq_ignore_ascii_case(ev.name)
                && s.status == Status::Active
                && s.reason.is_empty()
                && s.expires > now
                && sender.is_none_or(|snd| snd.is_empty() || s.contact != snd)
        },
        offline,
        None,
    );
}

/// NOTIFYs the subscriptions `which` picks (their CSeq and version counted).
fn notify_where(
    cfg: &Config,
    which: impl Fn(&Sub) -> bool,
    offline: Option<(&str, &str)>,
    partial_winfo: Option<&Sub>,
) {
    let notices = {
        let mut guard = state();
        let Some(st) = guard.as_mut() else { return };
        let picked: Vec<usize> = st
            .subs
            .iter()
            .enumerate()
            .filter(|(_, s)| which(s))
            .map(|(i, _)| i)
            .collect();
        notices_for(cfg, st, &picked, offline, partial_winfo)
    };
    notify::send(notices, cfg.end_sub_on_timeout);
}

/// `handle_publish([sender])`.
pub fn handle_publish(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(cfg) = config() else { return -1 };
    let Some((ev, _)) = event_of(f, cfg) else {
        return -1;
    };
    let Ok(expires) = expires_of(f, cfg, &ev, cfg.max_expires_publish) else {
        return -1;
    };
    let Ok(ruri) = f.msg.msg.request_uri() else {
        reply(f, 400, "Bad request", Vec::new());
        return -1;
    };
    let key: PresKey = (
        ruri.user().unwrap_or("").to_owned(),
        ruri.host()
            .map(|h| h.as_str().to_owned())
            .unwrap_or_default(),
        ev.name.to_owned(),
    );
    let if_match = f
        .msg
        .msg
        .header(HeaderName::SipIfMatch)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let body = String::from_utf8_lossy(f.msg.msg.body()).into_owned();
    if f.msg.msg.content_length().ok().flatten().is_none() && !f.msg.msg.body().is_empty() {
        reply(f, 400, "Bad request", Vec::new());
        return -1;
    }
    if body.is_empty() && if_match.is_none() {
        reply(f, 400, "Bad request", Vec::new());
        return -1;
    }
    if !body.is_empty() && ev.xml() && !pidf::is_xml(&body) {
        reply(f, 415, "Unsupported media type", Vec::new());
        return -1;
    }
    let sender = match args.first().filter(|a| !a.is_null()) {
        Some(s) => {
            let s = s.to_text().into_owned();
            if sip::Uri::parse(&s).is_err() {
                reply(f, 400, "Bad request", Vec::new());
                return -1;
            }
            s
        }
        None => String::new(),
    };
    let now = now();
    let pres_uri = uri_of(&key.0, &key.1);
    let offset = cfg.expires_offset;
    let shown = |e: u32| (i64::from(e) - offset).max(0);
    match if_match {
        None => {
            let p = Publication {
                etag: cfg.etag(0),
                expires: now + i64::from(expires),
                received: now,
                body,
                sender: sender.clone(),
                extra_hdrs: String::new(),
                etag_count: 0,
                db_etag: None,
            };
            // The publication is kept before the reply leaves: the publisher's next PUBLISH
            // (with this entity tag) may come at once, to another worker.
            let etag = p.etag.clone();
            raise_publish(&key, i64::from(expires), "", &p);
            if let Some(st) = state().as_mut() {
                let list = st.presentities.entry(key.clone()).or_default();
                list.push(p);
                if let Some(p) = list.last_mut() {
                    cfg.tables.store_publication(&key, p);
                }
            }
            reply(
                f,
                200,
                "OK",
                vec![
                    format!("Expires: {}", shown(expires)),
                    format!("SIP-ETag: {etag}"),
                ],
            );
            notify_watchers(cfg, &pres_uri, &ev, None, Some(&sender));
        }
        Some(old) => {
            let found = state().as_ref().and_then(|st| {
                st.presentities
                    .get(&key)
                    .and_then(|l| l.iter().find(|p| p.etag == old).cloned())
            });
            let Some(mut p) = found else {
                reply(f, 412, "Conditional request failed", Vec::new());
                return 1;
            };
            if expires == 0 {
                if let Some(st) = state().as_mut()
                    && let Some(l) = st.presentities.get_mut(&key)
                {
                    l.retain(|x| x.etag != old);
                    if l.is_empty() {
                        st.presentities.remove(&key);
                    }
                }
                reply(
                    f,
                    200,
                    "OK",
                    vec!["Expires: 0".to_owned(), format!("SIP-ETag: {old}")],
                );
                let gone_body = if body.is_empty() {
                    ending(cfg, &ev, &p.body)
                } else {
                    Some(body.clone())
                };
                if let Some(b) = &gone_body {
                    notify_watchers(cfg, &pres_uri, &ev, Some((&old, b)), Some(&sender));
                }
                if let Some(db_etag) = &p.db_etag
                    && !cfg.tables.delete_publication(&key, db_etag)
                    && let Some(st) = state().as_mut()
                {
                    st.gone_publications.push((key.clone(), db_etag.clone()));
                }
                notify_watchers(cfg, &pres_uri, &ev, None, Some(&sender));
                p.expires = now;
                raise_publish(&key, 0, &old, &p);
                return 1;
            }
            p.etag_count += 1;
            p.etag = cfg.etag(p.etag_count);
            p.expires = now + i64::from(expires);
            p.received = now;
            p.sender = sender.clone();
            let modified = !body.is_empty();
            if modified {
                p.body = body;
            }
            if let Some(st) = state().as_mut()
                && let Some(slot) = st
                    .presentities
                    .get_mut(&key)
                    .and_then(|l| l.iter_mut().find(|x| x.etag == old))
            {
                *slot = p.clone();
                cfg.tables.store_publication(&key, slot);
            }
            reply(
                f,
                200,
                "OK",
                vec![
                    format!("Expires: {}", shown(expires)),
                    format!("SIP-ETag: {}", p.etag),
                ],
            );
            raise_publish(&key, i64::from(expires), &old, &p);
            if modified {
                notify_watchers(cfg, &pres_uri, &ev, None, Some(&sender));
            }
        }
    }
    1
}

/// What a publication of `ev` reads as once it ends: closed, when presence_xml makes such
/// bodies (the other events' watchers get what is left).
fn ending(cfg: &Config, ev: &EventDef, body: &str) -> Option<String> {
    if cfg.generate_offline_body && ev.body == BodyKind::Pidf {
        pidf::offline(body)
    } else {
        None
    }
}

fn raise_publish(key: &PresKey, expires: i64, old_etag: &str, p: &Publication) {
    engine::hooks::raise_event(
        "E_PRESENCE_PUBLISH",
        vec![
            (Some("user".into()), v(&key.0)),
            (Some("domain".into()), v(&key.1)),
            (Some("event".into()), v(&key.2)),
            (Some("expires".into()), Value::Int(expires)),
            (Some("old_etag".into()), v(old_etag)),
            (Some("etag".into()), v(&p.etag)),
            (Some("body".into()), v(&p.body)),
        ],
    );
}

/// `sip:[contact_user@]host[:port][;transport=x]` of the socket a request came in on.
fn local_contact(f: &FnCtx<'_>, cfg: &Config) -> Option<String> {
    let r = f.msg.receipt.as_ref()?;
    let net = f.script.net();
    let sock = net
        .listen
        .iter()
        .find(|s| s.proto == r.proto && s.addr == Some(r.local));
    let (host, port) = match sock.and_then(|s| s.advertised.clone()) {
        Some((h, p)) => (h, p.unwrap_or(r.local.port())),
        None => (
            match r.local.ip() {
                std::net::IpAddr::V6(a) => format!("[{a}]"),
                a => a.to_string(),
            },
            r.local.port(),
        ),
    };
    let mut c = String::from("sip:");
    if !cfg.contact_user.is_empty() {
        c.push_str(&cfg.contact_user);
        c.push('@');
    }
    c.push_str(&host);
    if port != engine::forward::default_port(r.proto) {
        c.push_str(&format!(":{port}"));
    }
    if r.proto != "udp" {
        c.push_str(&format!(";transport={}", r.proto));
    }
    Some(c)
}

/// `handle_subscribe([force_active[, sharing_tag]])`.
pub fn handle_subscribe(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(cfg) = config() else { return -1 };
    let Some((ev, event_id)) = event_of(f, cfg) else {
        return -1;
    };
    let Ok(expires) = expires_of(f, cfg, &ev, cfg.max_expires_subscribe) else {
        return -1;
    };
    let m = &f.msg.msg;
    let parsed = (|| {
        let to = m.to_header().ok()?;
        let from = m.from_header().ok()?;
        let contact = match m.contacts().ok()? {
            sip::headers::Contacts::List(l) => l.first()?.uri().as_str().to_owned(),
            sip::headers::Contacts::Star => return None,
        };
        let host = |u: &sip::Uri<'_>| u.host().map(|h| h.as_str().to_owned()).unwrap_or_default();
        Some((
            to.uri().user().unwrap_or("").to_owned(),
            host(to.uri()),
            to.tag().unwrap_or("").to_owned(),
            from.uri().user().unwrap_or("").to_owned(),
            host(from.uri()),
            from.tag().filter(|t| !t.is_empty())?.to_owned(),
            m.call_id().ok()?.to_owned(),
            m.cseq().ok()?.seq,
            contact,
        ))
    })();
    let Some((to_user, to_domain, to_tag, from_user, from_domain, from_tag, callid, cseq, contact)) =
        parsed
    else {
        reply(f, 400, "Bad request", Vec::new());
        return -1;
    };
    let Some(local) = local_contact(f, cfg) else {
        reply(f, 500, "Server Internal Error", Vec::new());
        return -1;
    };
    let socket_info = f
        .msg
        .receipt
        .as_ref()
        .map(|r| engine::forward::socket_name(r.proto, r.local))
        .unwrap_or_default();
    let now = now();
    let offset = cfg.expires_offset;
    let sub = if to_tag.is_empty() {
        // A new subscription.
        let Ok(ruri) = f.msg.msg.request_uri() else {
            reply(f, 400, "Bad request", Vec::new());
            return -1;
        };
        let pres_uri = uri_of(
            ruri.user().unwrap_or(""),
            &ruri
                .host()
                .map(|h| h.as_str().to_owned())
                .unwrap_or_default(),
        );
        let forced = args.first().and_then(Value::as_int) == Some(1) || cfg.force_active;
        let (status, reason) = if !ev.req_auth {
            (Status::Active, String::new())
        } else {
            match cfg
                .tables
                .watcher_status(&pres_uri, &from_user, &from_domain, ev.name)
            {
                Some(found) => found,
                None => {
                    let decided = if forced {
                        Ok((Status::Active, String::new()))
                    } else {
                        authorize(cfg, &pres_uri, (&from_user, &from_domain), Status::Pending)
                    };
                    let (status, reason) = match decided {
                        Ok(d) => d,
                        Err(e) => {
                            log::error!("{e}");
                            reply(f, 500, "Server Internal Error", Vec::new());
                            return -1;
                        }
                    };
                    cfg.tables.insert_watcher(
                        &pres_uri,
                        (&from_user, &from_domain),
                        ev.name,
                        (status, &reason),
                        now,
                    );
                    (status, reason)
                }
            }
        };
        let to_tag = if f.msg.tx.is_some() {
            sl::to_tag(&f.msg.msg)
        } else {
            sl::sl_to_tag(&f.msg.msg, Some(f.script))
        };
        let record_route = f
            .msg
            .msg
            .values(HeaderName::RecordRoute)
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(",");
        let mut sub = Sub {
            pres_uri,
            event: ev.name.to_owned(),
            event_id,
            watcher_user: from_user,
            watcher_domain: from_domain,
            to_user,
            to_domain,
            to_tag,
            from_tag,
            callid,
            local_cseq: 0,
            remote_cseq: cseq,
            contact,
            record_route,
            expires: now + i64::from(expires),
            status,
            reason,
            version: 0,
            socket_info,
            local_contact: local.clone(),
            db: DbFlag::Insert,
        };
        if expires > 0 {
            sub.expires += offset;
            let mut guard = state();
            let Some(st) = guard.as_mut() else { return -1 };
            if st.subs.iter().any(|s| s.key() == sub.key()) {
                drop(guard);
                reply(f, 500, "Server Internal Error", Vec::new());
                return -1;
            }
            st.subs.push(sub.clone());
            if cfg.fallback2db {
                let State { subs, gone, .. } = st;
                cfg.tables.sync_subs(subs, gone);
            }
        }
        sub
    } else {
        // Within the dialog: a refresh or an unsubscribe.
        let mut guard = state();
        let Some(st) = guard.as_mut() else { return -1 };
        let Some(i) = st
            .subs
            .iter()
            .position(|s| s.key() == (callid.as_str(), to_tag.as_str(), from_tag.as_str()))
        else {
            drop(guard);
            reply(f, 481, "Subscription does not exist", Vec::new());
            return -1;
        };
        if st.subs[i].remote_cseq >= cseq {
            drop(guard);
            reply(f, 400, "Bad request", Vec::new());
            return -1;
        }
        if expires == 0 {
            let mut s = st.subs.remove(i);
            st.gone
                .push((s.pres_uri.clone(), s.event.clone(), s.to_tag.clone()));
            s.expires = now;
            s.remote_cseq = cseq;
            if cfg.fallback2db {
                let State { subs, gone, .. } = st;
                cfg.tables.sync_subs(subs, gone);
            }
            s
        } else {
            let s = &mut st.subs[i];
            s.expires = now + i64::from(expires) + offset;
            s.remote_cseq = cseq;
            s.contact = contact;
            if s.db == DbFlag::None {
                s.db = DbFlag::Update;
            }
            let s = s.clone();
            if cfg.fallback2db {
                let State { subs, gone, .. } = st;
                cfg.tables.sync_subs(subs, gone);
            }
            s
        }
    };
    let code = if sub.status == Status::Pending && !ev.winfo() {
        202
    } else {
        200
    };
    let shown = if expires == 0 {
        0
    } else {
        i64::from(expires) + offset
    };
    reply(
        f,
        code,
        "OK",
        vec![format!("Expires: {shown}"), format!("Contact: <{local}>")],
    );
    // The watchers of this presentity's watcher list hear of the change, then the subscriber
    // gets the state.
    if !ev.winfo() {
        notify_winfo(cfg, &sub);
    }
    let notices = {
        let mut guard = state();
        let Some(st) = guard.as_mut() else { return 1 };
        let mut s = sub;
        let n = notice(cfg, st, &mut s, None, None);
        if let Some(kept) = st.subs.iter_mut().find(|x| x.key() == s.key()) {
            kept.local_cseq = s.local_cseq;
            kept.version = s.version;
        }
        vec![n]
    };
    notify::send(notices, cfg.end_sub_on_timeout);
    1
}

/// A partial watcher-info NOTIFY about `changed` to the `presence.winfo` watchers of its
/// presentity.
fn notify_winfo(cfg: &Config, changed: &Sub) {
    let now = now();
    notify_where(
        cfg,
        |s| {
            s.event == "presence.winfo"
                && s.pres_uri == changed.pres_uri
                && s.status == Status::Active
                && s.expires > now
        },
        None,
        Some(changed),
    );
}

/// The next NOTIFY of each subscription `picked` (indexes into the list), counted in it.
fn notices_for(
    cfg: &Config,
    st: &mut State,
    picked: &[usize],
    offline: Option<(&str, &str)>,
    partial_winfo: Option<&Sub>,
) -> Vec<Notice> {
    let mut out = Vec::with_capacity(picked.len());
    for &i in picked {
        let Some(mut s) = st.subs.get(i).cloned() else {
            continue;
        };
        out.push(notice(cfg, st, &mut s, offline, partial_winfo));
        if let Some(slot) = st.subs.get_mut(i) {
            *slot = s;
        }
    }
    out
}

/// Ends a subscription (its NOTIFY was answered 481 or 408).
pub(crate) fn remove_sub(callid: &str, to_tag: &str, from_tag: &str) {
    let mut guard = state();
    let Some(st) = guard.as_mut() else { return };
    if let Some(i) = st
        .subs
        .iter()
        .position(|s| s.key() == (callid, to_tag, from_tag))
    {
        let s = st.subs.remove(i);
        st.gone.push((s.pres_uri, s.event, s.to_tag));
    }
}

/// Publications past their expiry: each watcher hears the publication go closed, and it is
/// removed (memory and database).
pub(crate) fn clean_publications(cfg: &Config) {
    let now = now();
    let expired: Vec<(PresKey, Publication)> = {
        let mut guard = state();
        let Some(st) = guard.as_mut() else { return };
        let mut out = Vec::new();
        for (key, list) in &mut st.presentities {
            let (gone, kept): (Vec<Publication>, Vec<Publication>) =
                list.drain(..).partition(|p| p.expires <= now);
            *list = kept;
            out.extend(gone.into_iter().map(|p| (key.clone(), p)));
        }
        st.presentities.retain(|_, l| !l.is_empty());
        out
    };
    for (key, p) in expired {
        if let Some(db_etag) = &p.db_etag
            && !cfg.tables.delete_publication(&key, db_etag)
            && let Some(st) = state().as_mut()
        {
            st.gone_publications.push((key.clone(), db_etag.clone()));
        }
        let Some(ev) = cfg.event(&key.2) else {
            continue;
        };
        let uri = uri_of(&key.0, &key.1);
        match ending(cfg, &ev, &p.body) {
            Some(b) => notify_watchers(cfg, &uri, &ev, Some((&p.etag, &b)), None),
            None => notify_watchers(cfg, &uri, &ev, None, None),
        }
    }
}

/// Subscriptions past their expiry: a last NOTIFY (`terminated;reason=timeout`, no body),
/// and they are removed.
pub(crate) fn expire_subscriptions(cfg: &Config) {
    let now = now();
    let notices = {
        let mut guard = state();
        let Some(st) = guard.as_mut() else { return };
        let (expired, kept): (Vec<Sub>, Vec<Sub>) = std::mem::take(&mut st.subs)
            .into_iter()
            .partition(|s| s.expires <= now);
        st.subs = kept;
        let mut out = Vec::new();
        for mut s in expired {
            st.gone
                .push((s.pres_uri.clone(), s.event.clone(), s.to_tag.clone()));
            s.local_cseq += 1;
            out.push(Notice {
                state: "terminated;reason=timeout".into(),
                sub: s,
                body: None,
            });
        }
        out
    };
    notify::send(notices, cfg.end_sub_on_timeout);
}

/// The status the presentity's pres-rules give a watcher (`previous`: its status so far).
/// Without a rules document (or the `xcap` table) it is pending.
fn authorize(
    cfg: &Config,
    pres_uri: &str,
    (user, domain): (&str, &str),
    previous: Status,
) -> Result<(Status, String), String> {
    let Some(xcap) = &cfg.xcap else {
        return Ok((Status::Pending, String::new()));
    };
    let (pu, pd) = user_domain(pres_uri);
    let Some(doc) = xcap.rules(&pu, &pd)? else {
        return Ok((Status::Pending, String::new()));
    };
    Ok(decide(&doc, &uri_of(user, domain), domain, previous))
}

fn decide(doc: &str, watcher: &str, domain: &str, previous: Status) -> (Status, String) {
    use crate::rules::SubHandling;
    match crate::rules::evaluate(doc, watcher, domain, now()) {
        Some(SubHandling::Block) => (Status::Terminated, "rejected".into()),
        Some(SubHandling::Confirm) => (Status::Pending, String::new()),
        Some(SubHandling::PoliteBlock) => (Status::Active, "polite-block".into()),
        Some(SubHandling::Allow) => (Status::Active, String::new()),
        None if previous == Status::Pending => (Status::Pending, String::new()),
        None => (Status::Terminated, "deactivated".into()),
    }
}

/// MI `refresh_watchers` type 0: every watcher of `pres_uri` is authorized again by the
/// pres-rules document; those whose state changed are told (and the ones now terminated are
/// gone after that NOTIFY).
pub(crate) fn reauthorize(cfg: &Config, pres_uri: &str, ev: &EventDef) -> Result<(), String> {
    let Some(xcap) = &cfg.xcap else {
        return Err("no pres-rules to apply (force_active is set)".into());
    };
    let (pu, pd) = user_domain(pres_uri);
    let doc = xcap
        .rules(&pu, &pd)?
        .ok_or_else(|| format!("no pres-rules document for {pres_uri}"))?;
    let notices = {
        let mut guard = state();
        let Some(st) = guard.as_mut() else {
            return Ok(());
        };
        let mut changed = Vec::new();
        for (i, s) in st.subs.iter_mut().enumerate() {
            if s.pres_uri != pres_uri || !s.event.eq_ignore_ascii_case(ev.name) {
                continue;
            }
            let (status, reason) = decide(
                &doc,
                &uri_of(&s.watcher_user, &s.watcher_domain),
                &s.watcher_domain,
                s.status,
            );
            if status != s.status || reason != s.reason {
                cfg.tables.set_watcher(
                    pres_uri,
                    (&s.watcher_user, &s.watcher_domain),
                    ev.name,
                    (status, &reason),
                );
                s.status = status;
                s.reason = reason;
                changed.push(i);
            }
        }
        let notices = notices_for(cfg, st, &changed, None, None);
        // Terminated subscriptions end with that NOTIFY.
        let gone: Vec<Sub> = st
            .subs
            .iter()
            .filter(|s| s.status == Status::Terminated)
            .cloned()
            .collect();
        st.subs.retain(|s| s.status != Status::Terminated);
        for s in gone {
            st.gone.push((s.pres_uri, s.event, s.to_tag));
        }
        notices
    };
    notify::send(notices, cfg.end_sub_on_timeout);
    Ok(())
}

/// MI `expose`: `E_PRESENCE_EXPOSED` for each live publication of `event` (users matching
/// `filter`).
pub(crate) fn expose(event: &str, filter: Option<&regex::Regex>) {
    let now = now();
    let list: Vec<(PresKey, Publication)> = state()
        .as_ref()
        .map(|st| {
            st.presentities
                .iter()
                .filter(|(k, _)| k.2 == event && filter.is_none_or(|r| r.is_match(&k.0)))
                .flat_map(|(k, l)| l.iter().map(move |p| (k.clone(), p.clone())))
                .filter(|(_, p)| p.expires > now)
                .collect()
        })
        .unwrap_or_default();
    for (key, p) in list {
        engine::hooks::raise_event(
            "E_PRESENCE_EXPOSED",
            vec![
                (Some("user".into()), v(&key.0)),
                (Some("domain".into()), v(&key.1)),
                (Some("event".into()), v(&key.2)),
                (Some("expires".into()), Value::Int(p.expires - now)),
                (Some("old_etag".into()), v("")),
                (Some("etag".into()), v(&p.etag)),
                (Some("body".into()), v(&p.body)),
            ],
        );
    }
}
