//! The main registrar's answer to a REGISTER we relayed: on a 2xx the bindings it confirmed
//! are stored here for the lifetime it granted (never longer than the UA asked), and the reply
//! the UA gets lists the UA's own bindings with their lifetimes, in place of ours.
//!
//! OpenSIPS runs this from a tm callback; rsips from tm's reply hook, after the onreply routes
//! (a `mid_registrar_save(domain)` there does it first, and the hook then finds nothing to do).

use engine::{MsgCtx, Script};
use registrar::save::{contact_header, same_uri};
use registrar::usrloc;
use sip::HeaderName;
use sip::headers::Contacts;

use crate::dereg::Dialog;
use crate::save::{Origin, binding, escaped_aor};
use crate::state::{self, Pending, Upstream};
use crate::{Config, Insertion, Mode};

/// The reply processed (2xx) or seen (other codes): 1; not the answer to a REGISTER we
/// relayed: -1.
pub fn on_reply(msg_ctx: &mut MsgCtx, script: &Script, cfg: &Config, table: &str) -> i64 {
    let msg = &msg_ctx.msg;
    let (Some(code), Ok(callid), Ok(cseq)) = (msg.status(), msg.call_id(), msg.cseq()) else {
        return -1;
    };
    if cseq.method != sip::Method::Register {
        return -1;
    }
    let callid = callid.trim_end().to_owned();
    let Some(p) = state::state().answered(&callid, cseq.seq, code >= 200) else {
        return -1;
    };
    if !table.is_empty() && p.table != table {
        log::warn!(
            "mid_registrar: the REGISTER was saved into '{}', the reply names '{table}'",
            p.table
        );
    }
    if !(200..300).contains(&code) {
        return 1;
    }
    let now = usrloc::now();
    if p.star {
        usrloc::tables().table(&p.table).remove_aor(&p.aor);
        let mut st = state::state();
        st.aors.remove(&(p.table.clone(), p.aor.clone()));
        return 1;
    }
    let dialog = dialog_of(msg_ctx, &p);
    match p.mode {
        Mode::Mirror | Mode::ThrottleContact => store_by_contact(msg_ctx, cfg, &p, &dialog, now),
        Mode::ThrottleAor => store_by_aor(msg_ctx, cfg, &p, &dialog, now),
    }
    if p.mode != Mode::Mirror {
        crate::dereg::watch(script.net());
    }
    crate::save::keep_for_streams(
        p.keep_conn,
        p.mappings.iter().map(|m| (m.uri.as_str(), m.expires)),
    );
    restore_reply(msg_ctx, cfg, &p, now);
    1
}

/// The registration's dialog as the reply and the branch it came on tell it (the Contact is
/// filled in per binding).
fn dialog_of(msg_ctx: &MsgCtx, p: &Pending) -> Dialog {
    let msg = &msg_ctx.msg;
    let uri = |h: sip::Result<sip::headers::NameAddr<'_>>| {
        h.map(|n| n.uri().as_str().to_owned()).unwrap_or_default()
    };
    let branch = msg_ctx
        .tx
        .as_ref()
        .zip(msg_ctx.branch_index)
        .and_then(|(tx, n)| tx.branch(n));
    Dialog {
        from: uri(msg.from_header()),
        to: uri(msg.to_header()),
        ruri: branch.as_ref().map(|b| b.uri.clone()).unwrap_or_default(),
        next_hop: branch.and_then(|b| b.dst_uri),
        callid: p.callid.clone(),
        cseq: p.cseq,
        contact: String::new(),
    }
}

/// The lifetime a reply Contact was granted: its `expires` parameter, else the reply's
/// Expires header, else `default_expires`.
fn granted(param: Option<Option<&str>>, header: Option<u32>, cfg: &Config) -> u32 {
    match param.flatten().filter(|v| !v.is_empty()) {
        Some(v) => v.trim().parse().unwrap_or(cfg.reg.default_expires),
        None => header.unwrap_or(cfg.reg.default_expires),
    }
}

/// The contact id a Contact URI we sent upstream carries.
fn ctid_of(uri: &sip::Uri<'_>, cfg: &Config) -> Option<u64> {
    match cfg.insertion {
        Insertion::Param => uri.param(&cfg.ctid_param).flatten()?.trim().parse().ok(),
        Insertion::User => uri.user()?.parse().ok(),
    }
}

/// Modes 0 and 1: each Contact of the REGISTER is matched by its id in the reply; one the
/// reply does not list, or lists with expires 0, is removed here.
fn store_by_contact(msg_ctx: &MsgCtx, cfg: &Config, p: &Pending, dialog: &Dialog, now: u64) {
    let msg = &msg_ctx.msg;
    let header = msg.expires().ok().flatten();
    let listed: Vec<(u64, u32, String)> = match msg.contacts() {
        Ok(Contacts::List(list)) => list
            .iter()
            .filter_map(|c| {
                Some((
                    ctid_of(c.uri(), cfg)?,
                    granted(c.param("expires"), header, cfg),
                    c.uri().as_str().to_owned(),
                ))
            })
            .collect(),
        _ => Vec::new(),
    };
    let o = origin(p);
    let mut tables = usrloc::tables();
    let t = tables.table(&p.table);
    let mut st = state::state();
    for m in &p.mappings {
        let reply_ct = listed.iter().find(|(id, _, _)| *id == m.ctid);
        let out = reply_ct.map(|(_, e, _)| *e);
        let e = out.map_or(0, |out| m.expires.min(out));
        if e == 0 {
            if let Some(old) = t
                .contacts(&p.aor, now)
                .into_iter()
                .find(|c| same_uri(&c.uri, &m.uri))
            {
                t.remove_contact(&p.aor, &old.uri, None);
            }
            st.contacts.remove(&m.ctid);
            continue;
        }
        if p.max_contacts != 0 && !p.force_registration {
            let live = t.contacts(&p.aor, now);
            if live.len() >= p.max_contacts as usize
                && !live.iter().any(|c| same_uri(&c.uri, &m.uri))
            {
                log::info!(
                    "mid_registrar: AOR <{}> is already at max contacts ({})",
                    p.aor,
                    p.max_contacts
                );
                continue;
            }
        }
        t.upsert(
            &p.aor,
            binding(m, &o, now + u64::from(e), now),
            cfg.reg.match_callid,
            cfg.reg.desc_time_order,
        );
        if p.mode == Mode::ThrottleContact {
            st.contacts.insert(
                m.ctid,
                Upstream {
                    last_reg: now,
                    expires_out: out.unwrap_or(0),
                    table: p.table.clone(),
                    aor: p.aor.clone(),
                    dialog: reply_ct.map(|(_, _, uri)| Dialog {
                        contact: uri.clone(),
                        ..dialog.clone()
                    }),
                },
            );
        }
    }
}

/// Mode 2: the REGISTER's contacts are stored for what they asked (at most what the main
/// registrar granted the AoR); the AoR's upstream lifetime is remembered.
fn store_by_aor(msg_ctx: &MsgCtx, cfg: &Config, p: &Pending, dialog: &Dialog, now: u64) {
    let msg = &msg_ctx.msg;
    let header = msg.expires().ok().flatten();
    let ours = escaped_aor(&p.aor, cfg);
    let (out, contact) = match msg.contacts() {
        Ok(Contacts::List(list)) => list
            .iter()
            .find(|c| c.uri().user() == Some(ours.as_str()))
            .map(|c| {
                (
                    granted(c.param("expires"), header, cfg),
                    c.uri().as_str().to_owned(),
                )
            }),
        _ => None,
    }
    .unwrap_or((0, String::new()));
    let o = origin(p);
    let mut tables = usrloc::tables();
    let t = tables.table(&p.table);
    let mut st = state::state();
    for m in &p.mappings {
        let e = m.expires.min(out);
        if e == 0 {
            if let Some(old) = t
                .contacts(&p.aor, now)
                .into_iter()
                .find(|c| same_uri(&c.uri, &m.uri))
            {
                t.remove_contact(&p.aor, &old.uri, None);
            }
            st.intervals.remove(&m.ctid);
            continue;
        }
        t.upsert(
            &p.aor,
            binding(m, &o, now + u64::from(e), now),
            cfg.reg.match_callid,
            cfg.reg.desc_time_order,
        );
        st.intervals.insert(m.ctid, e);
    }
    let key = (p.table.clone(), p.aor.clone());
    if out == 0 || t.contacts(&p.aor, now).is_empty() {
        st.aors.remove(&key);
    } else {
        st.aors.insert(
            key,
            Upstream {
                last_reg: now,
                expires_out: out,
                table: p.table.clone(),
                aor: p.aor.clone(),
                dialog: Some(Dialog {
                    contact,
                    ..dialog.clone()
                }),
            },
        );
    }
}

fn origin(p: &Pending) -> Origin<'_> {
    Origin {
        callid: &p.callid,
        cseq: p.cseq,
        user_agent: &p.user_agent,
        socket: p.socket.as_ref(),
        received: p.received.as_ref(),
        cflags: p.cflags,
        memory_only: p.memory_only,
    }
}

/// The reply the UA gets: its own bindings (all of the AoR's, or the REGISTER's with
/// `only-request-contacts`) with their lifetimes here, in one Contact header; no Expires
/// header (each Contact says its own).
fn restore_reply(msg_ctx: &mut MsgCtx, cfg: &Config, p: &Pending, now: u64) {
    let mut list = usrloc::tables().table(&p.table).contacts(&p.aor, now);
    if p.only_request_contacts {
        list.retain(|c| p.mappings.iter().any(|m| same_uri(&m.uri, &c.uri)));
    }
    let lines: Vec<usize> = msg_ctx
        .msg
        .headers()
        .filter(|h| matches!(h.name, HeaderName::Contact | HeaderName::Expires))
        .map(|h| h.index)
        .collect();
    for index in lines {
        msg_ctx.edits.remove(index);
    }
    if let Some(header) = contact_header(&list, now, &cfg.reg)
        && let Some((name, value)) = header.split_once(": ")
    {
        msg_ctx.edits.append(name, value);
    }
}
