//! Dialog replication over the clusterer (`dialog_replication_cluster`, OpenSIPS
//! `dlg_replication.c`): a dialog answered here goes to every node of the cluster (CREATED),
//! its later changes follow (UPDATED) and its end too (DELETED), each sent once the table
//! is unlocked; a node applies what the others send to its own table, so a sequential
//! request reaching any node finds the call. A node starting asks a donor for every
//! dialog (the capability's startup sync) and a donor writes them as sync chunks.
//!
//! Sharing tags (`set_dlg_sharing_tag`): a dialog carrying one is handled, once it times out
//! or is pinged, only by the node holding the tag active; without one, by every node (as in
//! OpenSIPS).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clusterer::api::{CapEvent, Received};
use clusterer::bin::{Builder, Reader, Truncated};
use clusterer::cap::{SYNC_PACKET_TYPE, SyncWriter};
use clusterer::state::SendRet;
use engine::Script;

use crate::repl::{self, WireDelete, WireDialog, WireLeg};
use crate::table::{
    CONFIRMED, CONFIRMED_NA, DELETED, Dialog, Dialogs, EARLY, Flags, Leg, dialogs, entry_of,
    unix_now,
};

static CLUSTER: OnceLock<i32> = OnceLock::new();
/// This node's SIP sockets as `proto:ip:port` (the `socket=` lines).
static LOCAL_SOCKETS: OnceLock<Vec<String>> = OnceLock::new();

/// `DLG_FLAG_WAS_CANCELLED`, `DLG_FLAG_RACE_CONDITION_OCCURRED`.
const WAS_CANCELLED: u32 = 1 << 16;
const RACE: u32 = 1 << 17;

/// The cluster dialogs are replicated in (`dialog_replication_cluster`), when set.
pub fn cluster() -> Option<i32> {
    CLUSTER.get().copied()
}

/// Reads `dialog_replication_cluster` and registers the capability (the clusterer starts
/// after the modules and asks a donor for the dialogs then).
pub(crate) fn start(script: &Script) -> Result<(), String> {
    let c = script
        .modparam_int("dialog", "dialog_replication_cluster")
        .unwrap_or(0);
    if c < 0 {
        return Err(
            "dialog: invalid dialog_replication_cluster, must be 0 or a positive cluster id".into(),
        );
    }
    if c == 0 {
        return Ok(());
    }
    if !script.loads("clusterer") {
        return Err(
            "dialog: dialog_replication_cluster needs the clusterer module (failed to load clusterer API)"
                .into(),
        );
    }
    let c = i32::try_from(c).map_err(|_| "dialog: bad dialog_replication_cluster")?;
    let _ = CLUSTER.set(c);
    let _ = LOCAL_SOCKETS.set(
        script
            .sockets()
            .iter()
            .filter_map(|s| s.split_whitespace().next())
            .map(str::to_ascii_lowercase)
            .collect(),
    );
    dialogs().repl_on = true;
    clusterer::api::register_capability(clusterer::api::Capability {
        name: repl::CAP.to_owned(),
        cluster: c,
        startup_sync: true,
        on_packet: Box::new(receive),
        on_event: Some(Box::new(event)),
        on_sync_request: Some(Box::new(sync_reply)),
    });
    Ok(())
}

/// Whether this node leaves dialog `d`'s timeout actions and pings to another: it carries a
/// sharing tag this node holds as backup.
pub fn is_backup(d: &Dialog) -> bool {
    let (Some(c), Some(tag)) = (cluster(), shtag_of(d)) else {
        return false;
    };
    engine::hooks::shtag(&format!("{tag}/{c}")).to_text() == "backup"
}

fn shtag_of(d: &Dialog) -> Option<&str> {
    d.vals
        .iter()
        .find(|(n, _)| n == repl::SHTAG_VAL)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `set_dlg_sharing_tag(tag)` for dialog `id`: the tag is made known to the clusterer (as
/// backup when new) and kept with the dialog, which travels with it.
pub(crate) fn set_shtag(id: u64, tag: &str) -> bool {
    let Some(c) = cluster() else { return true };
    if engine::hooks::shtag(&format!("{tag}/{c}")).is_null() {
        log::error!("dialog: failed to fetch sharing tag: <{tag}>");
        return false;
    }
    let mut t = dialogs();
    let Some(d) = t.by_id.get_mut(&id) else {
        return false;
    };
    d.vals.retain(|(n, _)| n != repl::SHTAG_VAL);
    d.vals.push((repl::SHTAG_VAL.to_owned(), tag.to_owned()));
    t.mark_dirty(id);
    true
}

/// A dialog as the packets carry it.
pub fn wire(d: &Dialog, now: Instant) -> WireDialog {
    let leg = |l: &Leg| WireLeg {
        tag: l.tag.clone(),
        socket: l.socket.clone().unwrap_or_default(),
        cseq: l.cseq.to_string(),
        route_set: l.route_set.join(","),
        contact: l.contact.clone(),
        in_sdp: l.in_sdp.clone(),
        out_sdp: l.out_sdp.clone(),
        adv_contact: l.adv_contact.clone(),
        gen_cseq: l.gen_cseq,
    };
    let left = d.expires.map_or(u64::from(d.lifetime), |at| {
        at.saturating_duration_since(now).as_secs()
    });
    let flag = |on: bool, bit: u32| if on { bit } else { 0 };
    let mut callee = leg(&d.callee);
    // OpenSIPS refuses a dialog without a callee socket: unless the script forced one, the
    // callee is reached from the socket the call came in on (one socket, or a VIP).
    if callee.socket.is_empty() {
        callee.socket.clone_from(&leg(&d.caller).socket);
    }
    WireDialog {
        callid: d.callid.clone(),
        from_uri: d.from_uri.clone(),
        to_uri: d.to_uri.clone(),
        h_id: d.h_id(),
        start_ts: u32::try_from(d.start_unix).unwrap_or(0),
        state: u32::from(d.state),
        caller: leg(&d.caller),
        callee,
        mangled_from: String::new(),
        mangled_to: String::new(),
        vars: repl::write_pairs(d.vals.iter().map(|(n, v)| (n.as_str(), "", v.as_str()))),
        profiles: repl::write_pairs(d.profiles.iter().map(|(p, v)| {
            let mark = if crate::profile_repl::is_replicated(p) {
                "/b"
            } else {
                ""
            };
            (p.as_str(), mark, v.as_str())
        })),
        user_flags: d.user_flags,
        mod_flags: d.mod_flags,
        flags: d.flags.bits() | flag(d.cancelled, WAS_CANCELLED) | flag(d.race, RACE),
        ping_intervals: None,
        timeout: u32::try_from(unix_now().saturating_add(i64::try_from(left).unwrap_or(0)))
            .unwrap_or(u32::MAX),
        on_answer: String::new(),
        on_timeout: String::new(),
        on_hangup: String::new(),
    }
}

/// The packets for what changed since the table was last unlocked (called with it locked).
pub(crate) fn outgoing(t: &mut Dialogs) -> Vec<Builder> {
    if !t.repl_on || (t.repl_dirty.is_empty() && t.repl_deleted.is_empty()) {
        return Vec::new();
    }
    let now = Instant::now();
    let mut out = Vec::new();
    let mut dirty: Vec<u64> = std::mem::take(&mut t.repl_dirty).into_iter().collect();
    dirty.sort_unstable();
    for id in dirty {
        let Some(d) = t.by_id.get(&id) else { continue };
        // Only confirmed dialogs are replicated (OpenSIPS: from the 2xx on).
        if !(CONFIRMED_NA..=CONFIRMED).contains(&d.state) {
            continue;
        }
        let w = wire(d, now);
        let kind = if t.repl_sent.insert(id) {
            repl::CREATED
        } else {
            repl::UPDATED
        };
        out.push(w.packet(kind));
    }
    for del in std::mem::take(&mut t.repl_deleted) {
        out.push(del.packet());
    }
    out
}

/// Sends the packets to the cluster, logging as OpenSIPS does when it cannot.
pub(crate) fn send(packets: &[Builder]) {
    let Some(cluster) = cluster() else { return };
    for p in packets {
        match clusterer::api::send_all(p, cluster) {
            SendRet::Success => {}
            SendRet::CurrDisabled => {
                log::info!("dialog: current node is disabled in cluster: {cluster}")
            }
            SendRet::DestDown => {
                log::info!("dialog: all destinations in cluster: {cluster} are down or probing")
            }
            SendRet::SendErr => log::error!("dialog: error sending in cluster: {cluster}"),
        }
    }
}

/// A donor's answer to a sync request: every confirmed dialog, one chunk each.
fn sync_reply(_node: i32, w: &mut SyncWriter) {
    let now = Instant::now();
    let all: Vec<WireDialog> = {
        let t = dialogs();
        let mut ids: Vec<&u64> = t.by_id.keys().collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| t.by_id.get(id))
            .filter(|d| (CONFIRMED_NA..=CONFIRMED).contains(&d.state))
            .map(|d| wire(d, now))
            .collect()
    };
    for d in &all {
        d.write_chunk(&mut w.chunk(repl::VERSION));
    }
}

fn event(ev: CapEvent, node: i32) {
    match ev {
        CapEvent::SyncDone => log::info!("dialog: dialogs synced from the cluster"),
        CapEvent::NodeUp | CapEvent::NodeDown => {
            log::debug!("dialog: node {node} {ev:?}");
        }
    }
}

/// A packet another node sent.
fn receive(p: &Received<'_>) {
    if !repl::known_version(p.version) {
        log::error!(
            "dialog: unsupported BIN version {} of dialog packet {} from node {}",
            p.version,
            p.packet_type,
            p.src
        );
        return;
    }
    let mut r = p.reader();
    let done = match p.packet_type {
        repl::CREATED => WireDialog::decode(&mut r, p.version).map(|w| apply_create(&w)),
        repl::UPDATED => WireDialog::decode(&mut r, p.version).map(|w| apply_update(&w)),
        repl::DELETED => WireDelete::decode(&mut r, p.version).map(|w| apply_delete(&w)),
        repl::CSEQ => apply_cseq(&mut r, p.version),
        repl::VALUE => apply_value(&mut r),
        SYNC_PACKET_TYPE => {
            for mut chunk in p.chunks() {
                match WireDialog::decode(&mut chunk, p.version) {
                    Ok(w) => apply_create(&w),
                    Err(Truncated) => {
                        log::error!("dialog: failed to process sync packet from node {}", p.src);
                        return;
                    }
                }
            }
            Ok(())
        }
        other => {
            log::warn!(
                "dialog: invalid dialog binary packet command: {other} (from node: {} in cluster: {})",
                p.src,
                p.cluster
            );
            Ok(())
        }
    };
    if done.is_err() {
        log::error!(
            "dialog: malformed dialog replication packet {} from node {}: dropped",
            p.packet_type,
            p.src
        );
    }
}

fn id_of(callid: &str, h_id: u32) -> u64 {
    (u64::from(entry_of(callid, crate::settings().hash_size)) << 32) | u64::from(h_id)
}

fn routes(text: &str) -> Vec<String> {
    sip::split_values(text)
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect()
}

/// The profiles of the wire text, without OpenSIPS' `/b` and `/s` markers.
fn profiles(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in repl::read_pairs(text) {
        let name = name.split('/').next().unwrap_or("").trim().to_owned();
        if !name.is_empty() && !out.iter().any(|(n, v)| *n == name && *v == value) {
            out.push((name, value));
        }
    }
    out
}

/// The local socket a replicated one names. One that is not ours is warned of and left
/// out (requests towards that side then leave from the default socket); OpenSIPS refuses
/// the whole dialog then, which would leave nodes with sockets of their own (no shared
/// address) without each other's calls.
fn socket(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    let local = LOCAL_SOCKETS
        .get()
        .is_none_or(|l| l.iter().any(|s| s.eq_ignore_ascii_case(text)));
    if !local {
        log::warn!("dialog: non-local socket <{text}>...ignoring");
        return None;
    }
    Some(text.to_owned())
}

fn expires(timeout: u32, now: Instant) -> Instant {
    let left = i64::from(timeout) - unix_now();
    now + Duration::from_secs(u64::try_from(left).unwrap_or(0))
}

/// Runs `f` on the table with replication of its own changes off.
fn applying<R>(f: impl FnOnce(&mut Dialogs) -> R) -> R {
    let mut t = dialogs();
    t.applying = true;
    let r = f(&mut t);
    t.applying = false;
    r
}

fn apply_create(w: &WireDialog) {
    let id = id_of(&w.callid, w.h_id);
    let now = Instant::now();
    let leg = |l: &WireLeg| Leg {
        tag: l.tag.clone(),
        contact: l.contact.clone(),
        cseq: l.cseq.trim().parse().unwrap_or(0),
        route_set: routes(&l.route_set),
        socket: socket(&l.socket),
        gen_cseq: l.gen_cseq,
        in_sdp: l.in_sdp.clone(),
        out_sdp: l.out_sdp.clone(),
        adv_contact: l.adv_contact.clone(),
        ..Leg::default()
    };
    let state = u8::try_from(w.state).unwrap_or(CONFIRMED);
    let start = i64::from(w.start_ts);
    let mut d = Dialog {
        id,
        state,
        callid: w.callid.clone(),
        from_uri: w.from_uri.clone(),
        to_uri: w.to_uri.clone(),
        caller: leg(&w.caller),
        callee: leg(&w.callee),
        initial_cseq: w.caller.cseq.trim().parse().unwrap_or(0),
        flags: Flags::from_bits(w.flags),
        user_flags: w.user_flags,
        routes: crate::table::Routes::default(),
        lifetime: u32::try_from(i64::from(w.timeout) - start).unwrap_or(0),
        start_unix: start,
        created_ms: start.saturating_mul(1000),
        start_ms: start.saturating_mul(1000),
        expires: Some(expires(w.timeout, now)),
        gone_at: None,
        end_reason: None,
        profiles: profiles(&w.profiles),
        vals: repl::read_pairs(&w.vars),
        next_ping: None,
        pings: 0,
        stored: false,
        sst: None,
        next_reinvite: None,
        cancelled: w.flags & WAS_CANCELLED != 0,
        race: w.flags & RACE != 0,
        mod_flags: w.mod_flags,
    };
    let s = crate::settings();
    if d.flags.ping_caller || d.flags.ping_callee {
        d.next_ping = Some(now + s.ping_interval);
    }
    if d.flags.keeps_sdp() {
        d.next_reinvite = Some(now + s.reinvite_ping_interval);
    }
    applying(|t| {
        if t.by_id.contains_key(&id) {
            log::debug!("dialog: dialog with ci '{}' is already created", w.callid);
            return;
        }
        t.seen_h_id(w.h_id);
        t.insert(d);
        t.repl_sent.insert(id);
        if t.track {
            t.dirty.insert(id);
        }
        if (CONFIRMED_NA..=CONFIRMED).contains(&state) {
            engine::gauge!("dialog", "active_dialogs").inc();
        } else if state == EARLY {
            engine::gauge!("dialog", "early_dialogs").inc();
        }
        engine::stat!("dialog", "processed_dialogs").inc();
    });
}

fn apply_update(w: &WireDialog) {
    let id = id_of(&w.callid, w.h_id);
    if !dialogs().by_id.contains_key(&id) {
        log::debug!("dialog: dialog not found, building new");
        apply_create(w);
        return;
    }
    let now = Instant::now();
    applying(|t| {
        let Some(d) = t.by_id.get_mut(&id) else {
            return;
        };
        if d.state == DELETED {
            return;
        }
        if let Ok(new) = u8::try_from(w.state)
            && new != d.state
            && new != DELETED
        {
            d.state = new;
        }
        if let Ok(n) = w.caller.cseq.trim().parse() {
            d.caller.cseq = n;
        }
        if let Ok(n) = w.callee.cseq.trim().parse() {
            d.callee.cseq = n;
        }
        d.caller.contact.clone_from(&w.caller.contact);
        d.callee.contact.clone_from(&w.callee.contact);
        d.caller.in_sdp.clone_from(&w.caller.in_sdp);
        d.caller.out_sdp.clone_from(&w.caller.out_sdp);
        d.callee.in_sdp.clone_from(&w.callee.in_sdp);
        d.callee.out_sdp.clone_from(&w.callee.out_sdp);
        d.user_flags = w.user_flags;
        d.mod_flags = w.mod_flags;
        d.flags = Flags::from_bits(w.flags);
        d.cancelled = w.flags & WAS_CANCELLED != 0;
        d.race = w.flags & RACE != 0;
        d.expires = Some(expires(w.timeout, now));
        d.lifetime = u32::try_from(i64::from(w.timeout) - d.start_unix).unwrap_or(d.lifetime);
        for (name, value) in repl::read_pairs(&w.vars) {
            match d.vals.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => d.vals.push((name, value)),
            }
        }
        // Profiles the dialog is not in yet are added (OpenSIPS' double check).
        for (p, v) in profiles(&w.profiles) {
            t.join_profile(id, &p, &v);
        }
        if t.track {
            t.dirty.insert(id);
        }
    });
}

fn apply_delete(w: &WireDelete) {
    let s = crate::settings();
    applying(|t| {
        let id = match w.h_id {
            Some(h) => Some(id_of(&w.callid, h)).filter(|id| t.by_id.contains_key(id)),
            None => t
                .by_sip(&w.callid, &w.from_tag, &w.to_tag)
                .map(|(id, _)| id),
        };
        let Some(id) = id else {
            log::debug!(
                "dialog: dialog not found (callid: |{}| ftag: |{}|)",
                w.callid,
                w.from_tag
            );
            return;
        };
        if t.by_id.get(&id).is_some_and(|d| d.state == DELETED) {
            log::error!(
                "dialog: duplicate dialog delete request (callid: |{}| ftag: |{}|)",
                w.callid,
                w.from_tag
            );
            return;
        }
        t.end(id, "Replicated Delete", s.delete_delay, Instant::now());
    });
}

/// REPLICATION_DLG_CSEQ: the last CSeq the proxy generated towards one side.
fn apply_cseq(r: &mut Reader<'_>, version: i16) -> Result<(), Truncated> {
    let (callid, _from_tag, to_tag) = (r.str()?, r.str()?, r.str()?);
    let h_id = if version >= 4 {
        Some(r.int()? as u32)
    } else {
        None
    };
    let cseq = r.int()? as u32;
    applying(|t| {
        let id = h_id.map(|h| id_of(&callid, h));
        let Some(d) = id.and_then(|id| t.by_id.get_mut(&id)) else {
            return;
        };
        if d.caller.tag == to_tag {
            d.caller.gen_cseq = cseq;
        } else if d.callee.tag == to_tag {
            d.callee.gen_cseq = cseq;
        }
    });
    Ok(())
}

/// REPLICATION_DLG_VALUE: one dialog value stored (or removed) on another node.
fn apply_value(r: &mut Reader<'_>) -> Result<(), Truncated> {
    let (callid, h_id, name, kind) = (r.str()?, r.int()? as u32, r.str()?, r.int()?);
    let value = match kind {
        1 => Some(r.str()?),
        2 => Some(r.int()?.to_string()),
        _ => None,
    };
    applying(|t| {
        let id = id_of(&callid, h_id);
        let Some(d) = t.by_id.get_mut(&id) else {
            return;
        };
        d.vals.retain(|(n, _)| *n != name);
        if let Some(v) = value {
            d.vals.push((name, v));
        }
        if t.track {
            t.dirty.insert(id);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicated_profiles_lose_their_markers_and_duplicates() {
        assert_eq!(
            profiles("calls/b#1#|caller/s#1#al\\|ice|calls/b#1#|plain#1#x|"),
            vec![
                ("calls".to_owned(), String::new()),
                ("caller".to_owned(), "al|ice".to_owned()),
                ("plain".to_owned(), "x".to_owned()),
            ]
        );
        assert_eq!(
            routes("<sip:a;lr>, <sip:b;lr>"),
            vec!["<sip:a;lr>".to_owned(), "<sip:b;lr>".to_owned()]
        );
        assert!(routes("").is_empty());
        assert_eq!(socket(""), None);
    }
}
