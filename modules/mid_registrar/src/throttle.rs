//! The throttling modes' choice for a REGISTER: answer it here (the upstream binding lives
//! long enough) or relay it, with the local bindings updated when it is answered here.

use engine::FnCtx;
use registrar::save::same_uri;
use registrar::usrloc;

use crate::Config;
use crate::save::{Origin, Register, binding, mappings, origin_of};
use crate::state;

/// Mode 1: whether every contact of the REGISTER is known and its upstream binding lives long
/// enough to cover the lifetime asked (OpenSIPS: `now - last_reg >= expires_out - e` forwards);
/// if so the local bindings are refreshed.
pub(crate) fn by_contact(
    f: &FnCtx<'_>,
    cfg: &Config,
    table: &str,
    reg: &Register,
    now: u64,
) -> bool {
    let mut tables = usrloc::tables();
    tables.maybe_sweep(now);
    let t = tables.table(table);
    let local = t.contacts(&reg.aor, now);
    let st = state::state();
    let mut refreshed = Vec::new();
    for c in &reg.contacts {
        if c.expires == 0 {
            return false;
        }
        let Some(known) = local.iter().find(|l| same_uri(&l.uri, &c.uri)) else {
            return false;
        };
        let Some(up) = st.contacts.get(&known.id) else {
            return false;
        };
        if now.saturating_sub(up.last_reg) + u64::from(c.expires) >= u64::from(up.expires_out) {
            return false;
        }
        refreshed.push((known.clone(), c));
    }
    drop(st);
    let (user_agent, _, _, _) = origin_of(f, cfg);
    for (mut old, c) in refreshed {
        old.expires = Some(now + u64::from(c.expires));
        old.callid = reg.callid.clone();
        old.cseq = reg.cseq;
        old.q = c.q;
        old.user_agent = user_agent.clone();
        old.last_modified = now;
        t.upsert(&reg.aor, old, cfg.reg.match_callid, cfg.reg.desc_time_order);
    }
    true
}

/// Mode 2: the REGISTER's contacts are applied to the AoR's local bindings; it goes upstream
/// when the AoR is new, when it removes the last binding, or when the AoR's upstream binding
/// would expire before the longest-lived local one asks again.
pub(crate) fn by_aor(f: &FnCtx<'_>, cfg: &Config, table: &str, reg: &Register, now: u64) -> bool {
    let key = (table.to_owned(), reg.aor.clone());
    let Some(up) = state::state().aors.get(&key).cloned() else {
        return false;
    };
    let (user_agent, socket, received, cflags) = origin_of(f, cfg);
    let o = Origin {
        callid: &reg.callid,
        cseq: reg.cseq,
        user_agent: &user_agent,
        socket: socket.as_ref(),
        received: received.as_ref(),
        cflags,
        memory_only: false,
    };
    let maps = mappings(reg, table, now);
    let mut tables = usrloc::tables();
    tables.maybe_sweep(now);
    let t = tables.table(table);
    let local = t.contacts(&reg.aor, now);
    if local.is_empty() {
        return false;
    }
    let mut deregisters_only = true;
    for m in &maps {
        let e = m.expires.min(up.expires_out);
        let known = local.iter().find(|l| same_uri(&l.uri, &m.uri));
        if e == 0 {
            if let Some(old) = known {
                if local.len() == 1 {
                    // The AoR's last binding goes: upstream must know at once.
                    return false;
                }
                t.remove_contact(&reg.aor, &old.uri, None);
            }
            continue;
        }
        deregisters_only = false;
        t.upsert(
            &reg.aor,
            binding(m, &o, now + u64::from(e), now),
            cfg.reg.match_callid,
            cfg.reg.desc_time_order,
        );
        state::state().intervals.insert(m.ctid, e);
    }
    let left = t.contacts(&reg.aor, now);
    drop(tables);
    if deregisters_only {
        return !(local.len() >= 2 && left.is_empty());
    }
    let st = state::state();
    let mut max_diff: i64 = -1;
    for c in &left {
        let Some(e) = st.intervals.get(&c.id) else {
            return false;
        };
        max_diff = max_diff.max(i64::from(up.expires_out) - i64::from(*e));
    }
    max_diff >= 0 && up.last_reg as i64 + max_diff > now as i64
}
