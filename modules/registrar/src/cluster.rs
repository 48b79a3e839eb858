//! usrloc over the clusterer (OpenSIPS `location_cluster` with the `full-sharing` cluster
//! mode, preset `full-sharing-cluster`): every node holds every contact. What a node writes
//! (save, remove, MI) goes to the others as [`repl`] packets; what it receives is applied to
//! its own tables without being sent on. Contacts expire on each node by their own expiry,
//! as in OpenSIPS (the expiry timer replicates nothing). With `restart_persistency`
//! `sync-from-cluster` (implied by the preset) a starting node asks a donor for the whole
//! table, which the donor writes as sync chunks.

use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};

use clusterer::api::{Capability, Received};
use clusterer::bin::Builder;
use clusterer::state::SendRet;
use engine::Script;

use crate::repl::{self, Aor, Ct, CtDel, Event, Match};
use crate::usrloc::{self, Contact, Table};

/// The cluster modes of usrloc that rsips knows, as `cluster_mode` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    None,
    FullSharing,
}

struct Repl {
    cluster: i32,
    match_callid: bool,
    desc_time_order: bool,
    /// The script's branch flags by bit: contacts carry them by name.
    flag_names: Vec<(u32, String)>,
    sockets: crate::persist::Sockets,
    /// To the thread that sends: packets leave in the order the tables changed, and never
    /// while the tables are locked.
    out: Sender<Builder>,
}

static REPL: OnceLock<Repl> = OnceLock::new();

/// (cluster mode, sync from the cluster at start) as the script sets them, checked as
/// OpenSIPS' `ul_check_config` does.
pub fn settings(script: &Script) -> Result<(Mode, bool, i32), String> {
    let p = |n: &str| {
        script
            .modparam_str("usrloc", n)
            .map(|v| v.trim().to_ascii_lowercase())
    };
    let (mode, sync) = match p("working_mode_preset").as_deref() {
        Some("full-sharing-cluster") => (Mode::FullSharing, true),
        Some(_) => (Mode::None, false),
        None => (
            match p("cluster_mode").as_deref() {
                Some("full-sharing") => Mode::FullSharing,
                _ => Mode::None,
            },
            p("restart_persistency").as_deref() == Some("sync-from-cluster"),
        ),
    };
    let cluster = script
        .modparam_int("usrloc", "location_cluster")
        .unwrap_or(0);
    if cluster < 0 {
        return Err("usrloc: Invalid 'location_cluster'!  It must be a positive integer!".into());
    }
    let cluster = i32::try_from(cluster).map_err(|_| "usrloc: bad 'location_cluster'")?;
    match mode {
        Mode::None if sync => {
            Err("usrloc: cannot sync from cluster without first enabling a clustering mode!".into())
        }
        Mode::None if cluster != 0 => Err(
            "usrloc: a 'location_cluster' has been defined with a single-instance clustering mode!"
                .into(),
        ),
        Mode::FullSharing if cluster == 0 => Err("usrloc: 'location_cluster' is not set!".into()),
        _ => Ok((mode, sync, cluster)),
    }
}

/// Registers the capability and starts the sender when the script asks for a location
/// cluster.
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("usrloc") {
        return Ok(());
    }
    let (mode, sync, cluster) = settings(script)?;
    if mode == Mode::None {
        return Ok(());
    }
    if !script.loads("clusterer") {
        return Err("usrloc: failed to load clusterer API".into());
    }
    let s = crate::Settings::of(script);
    let (tx, rx) = channel::<Builder>();
    let r = Repl {
        cluster,
        match_callid: s.match_callid,
        desc_time_order: s.desc_time_order,
        flag_names: (0..64)
            .filter_map(|b| script.flag_name(b).map(|n| (b, n.to_owned())))
            .collect(),
        sockets: crate::persist::local_sockets(script),
        out: tx,
    };
    if REPL.set(r).is_err() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("usrloc-repl".into())
        .spawn(move || {
            while let Ok(b) = rx.recv() {
                send(&b, cluster);
            }
        })
        .map_err(|e| format!("usrloc: cannot start the replication sender: {e}"))?;
    // Each node expires the contacts itself: a timer, not just the next save or lookup,
    // since a node may hold contacts it never looks up.
    std::thread::Builder::new()
        .name("usrloc-timer".into())
        .spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                usrloc::tables().maybe_sweep(usrloc::now());
            }
        })
        .map_err(|e| format!("usrloc: cannot start the timer: {e}"))?;
    clusterer::api::register_capability(Capability {
        name: repl::CAP.to_owned(),
        cluster,
        startup_sync: sync,
        on_packet: Box::new(receive),
        on_event: None,
        on_sync_request: Some(Box::new(write_sync)),
    });
    Ok(())
}

fn send(b: &Builder, cluster: i32) {
    match clusterer::api::send_all(b, cluster) {
        SendRet::Success => {}
        SendRet::CurrDisabled => {
            log::info!("usrloc: Current node is disabled in cluster: {cluster}")
        }
        SendRet::DestDown => {
            log::info!("usrloc: All destinations in cluster: {cluster} are down or probing")
        }
        SendRet::SendErr => log::error!("usrloc: Error sending in cluster: {cluster}"),
    }
}

/// `usrloc:cluster_sync`: asks a donor for the whole table again; `None` without a location
/// cluster.
pub fn request_sync() -> Option<Result<(), String>> {
    let r = REPL.get()?;
    Some(clusterer::api::request_sync(repl::CAP, r.cluster))
}

/// Whether this node replicates its location tables.
pub fn enabled() -> bool {
    REPL.get().is_some()
}

fn queue(e: &Event) {
    let Some(r) = REPL.get() else {
        return;
    };
    let (t, body) = repl::encode(e);
    let _ = r
        .out
        .send(Builder::new(repl::CAP, t, repl::VERSION).raw(&body));
}

fn ct_match(by_callid: bool) -> Match {
    if by_callid {
        Match::ContactCallid
    } else {
        Match::Contact
    }
}

/// OpenSIPS' record label and next contact label, as its contact ids hold them (the id of
/// the contact that created the record stands in for ours).
fn labels(id: u64) -> (i32, i32) {
    (
        ((id >> 16) & 0xffff_ffff) as u32 as i32,
        ((id & 0xffff) + 1) as i32,
    )
}

/// The wire form of a contact of `aor` in `table`.
fn to_wire(r: &Repl, table: &str, aor: &str, c: &Contact) -> Ct {
    let names: Vec<&str> = r
        .flag_names
        .iter()
        .filter(|(b, _)| c.cflags & (1u64 << b) != 0)
        .map(|(_, n)| n.as_str())
        .collect();
    let secs = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
    Ct {
        domain: table.to_owned(),
        aor: aor.to_owned(),
        uri: c.uri.clone(),
        contact_id: c.id,
        callid: c.callid.clone(),
        user_agent: c.user_agent.clone(),
        path: c.path.clone().unwrap_or_default(),
        attr: String::new(),
        received: c.received.clone().unwrap_or_default(),
        instance: c.instance.clone().unwrap_or_default(),
        expires: c.expires.map_or(0, secs),
        q: c.q,
        socket: c.socket.clone().unwrap_or_default(),
        cseq: c.cseq as i32,
        flags: c.flags as i32,
        cflags: names.join(" "),
        methods: c.methods as i32,
        last_modified: secs(c.last_modified),
        kv_store: String::new(),
    }
}

/// A contact from the wire: its branch flags by our bits, its socket only if it is ours.
fn from_wire(r: &Repl, c: Ct) -> Contact {
    let cflags = c
        .cflags
        .split([' ', ','])
        .filter(|n| !n.is_empty())
        .filter_map(|n| r.flag_names.iter().find(|(_, f)| f == n))
        .fold(0u64, |acc, (b, _)| acc | (1u64 << b));
    let opt = |s: String| (!s.is_empty()).then_some(s);
    let socket = opt(c.socket).filter(|s| crate::persist::is_local_socket(&r.sockets, s));
    Contact {
        uri: c.uri,
        expires: u64::try_from(c.expires).ok().filter(|e| *e != 0),
        q: c.q,
        callid: c.callid,
        cseq: c.cseq as u32,
        cflags,
        flags: c.flags as u32,
        user_agent: c.user_agent,
        received: opt(c.received),
        path: opt(c.path),
        socket,
        methods: c.methods as u32,
        instance: opt(c.instance),
        reg_id: 0,
        last_modified: u64::try_from(c.last_modified).unwrap_or(0),
        id: c.contact_id,
    }
}

/// A contact was written by this node: to the others, with its record first when new.
pub(crate) fn contact_written(
    table: &str,
    aor: &str,
    c: &Contact,
    new_aor: bool,
    update: bool,
    by_callid: bool,
) {
    let Some(r) = REPL.get() else {
        return;
    };
    if new_aor {
        let (label, next_clabel) = labels(c.id);
        queue(&Event::AorInsert(Aor {
            domain: table.to_owned(),
            aor: aor.to_owned(),
            label,
            next_clabel,
            kv_store: String::new(),
        }));
    }
    let ct = to_wire(r, table, aor, c);
    let m = ct_match(by_callid);
    queue(&if update {
        Event::CtUpdate(ct, m)
    } else {
        Event::CtInsert(ct, m)
    });
}

/// A contact was deleted by this node (not expired).
pub(crate) fn contact_deleted(table: &str, aor: &str, c: &Contact, by_callid: bool) {
    if !enabled() {
        return;
    }
    queue(&Event::CtDelete(
        CtDel {
            domain: table.to_owned(),
            aor: aor.to_owned(),
            uri: c.uri.clone(),
            callid: c.callid.clone(),
            cseq: c.cseq as i32,
        },
        ct_match(by_callid),
    ));
}

/// A record was deleted by this node (its last contact went, or all of it).
pub(crate) fn aor_deleted(table: &str, aor: &str) {
    if !enabled() {
        return;
    }
    queue(&Event::AorDelete {
        domain: table.to_owned(),
        aor: aor.to_owned(),
    });
}

/// A packet from another node.
fn receive(p: &Received<'_>) {
    let Some(r) = REPL.get() else {
        return;
    };
    if p.packet_type == clusterer::cap::SYNC_PACKET_TYPE {
        let mut applied = 0;
        for chunk in p.chunks() {
            match repl::decode_chunk(p.version, chunk.rest()) {
                Ok(e) => {
                    apply(r, e);
                    applied += 1;
                }
                Err(e) => log::error!("usrloc: bad sync chunk from node {}: {e}", p.src),
            }
        }
        log::debug!("usrloc: applied {applied} sync chunks from node {}", p.src);
        return;
    }
    match repl::decode(p.packet_type, p.version, p.body) {
        Ok(e) => apply(r, e),
        Err(e) => log::error!(
            "usrloc: failed to process binary packet from node {}: {e}",
            p.src
        ),
    }
}

/// Where a packet's contact is in `list`, and whether the packet is no newer than it (same
/// Call-ID, CSeq not above): OpenSIPS' `get_ucontact` with the packet's matching mode.
fn find(
    r: &Repl,
    list: &[Contact],
    uri: &str,
    callid: &str,
    cseq: i64,
    m: &Match,
) -> (Option<usize>, bool) {
    let by_callid = match m {
        Match::ContactCallid => true,
        Match::Default => r.match_callid,
        Match::Contact | Match::Params(_) => false,
    };
    let at = list
        .iter()
        .position(|c| c.uri == uri && (!by_callid || c.callid == callid));
    let stale = at
        .and_then(|i| list.get(i))
        .is_some_and(|c| (by_callid || c.callid == callid) && cseq <= i64::from(c.cseq));
    (at, stale)
}

/// Applies an event from another node to our tables, sending nothing on.
fn apply(r: &Repl, e: Event) {
    let mut tables = usrloc::tables();
    match e {
        // A record exists here once it has a contact: nothing to keep for it alone.
        Event::AorInsert(_) => {}
        Event::AorDelete { domain, aor } => {
            if let Some(t) = tables.get_mut(&domain) {
                t.quietly(|t| t.remove_aor(&aor));
            }
        }
        Event::CtInsert(c, m) => put(r, &mut tables, c, &m, 0),
        // An update is newer than what we have unless we have a later CSeq.
        Event::CtUpdate(c, m) => put(r, &mut tables, c, &m, 1),
        Event::CtDelete(d, m) => {
            let Some(t) = tables.get_mut(&d.domain) else {
                return;
            };
            let (at, stale) = find(
                r,
                t.all_contacts(&d.aor).unwrap_or_default(),
                &d.uri,
                &d.callid,
                i64::from(d.cseq) + 1,
                &m,
            );
            let Some(at) = at.filter(|_| !stale) else {
                return;
            };
            let callid = t
                .all_contacts(&d.aor)
                .and_then(|l| l.get(at))
                .map(|c| c.callid.clone());
            t.quietly(|t| t.remove_contact(&d.aor, &d.uri, callid.as_deref()));
        }
    }
}

/// Writes a contact another node inserted (`bump` 0) or updated (1), unless what we have is
/// as new.
fn put(r: &Repl, tables: &mut usrloc::Tables, c: Ct, m: &Match, bump: i64) {
    let t = tables.table(&c.domain);
    let (_, stale) = find(
        r,
        t.all_contacts(&c.aor).unwrap_or_default(),
        &c.uri,
        &c.callid,
        i64::from(c.cseq) + bump,
        m,
    );
    if stale {
        return;
    }
    let by_callid =
        matches!(m, Match::ContactCallid) || (matches!(m, Match::Default) && r.match_callid);
    let aor = c.aor.clone();
    let contact = from_wire(r, c);
    let desc = r.desc_time_order;
    t.quietly(|t| t.upsert(&aor, contact, by_callid, desc));
}

/// A node asked for our tables: every record, then each of its contacts, one chunk each.
fn write_sync(node: i32, w: &mut clusterer::cap::SyncWriter) {
    let Some(r) = REPL.get() else {
        return;
    };
    let tables = usrloc::tables();
    let mut n = 0;
    for (name, t) in tables.all() {
        for (aor, list) in t.all_aors() {
            let (label, next_clabel) = labels(list.first().map_or(0, |c| c.id));
            let a = Aor {
                domain: name.to_owned(),
                aor: aor.to_owned(),
                label,
                next_clabel,
                kv_store: String::new(),
            };
            w.chunk(repl::VERSION).raw(&repl::sync_aor(&a));
            for c in list {
                w.chunk(repl::VERSION)
                    .raw(&repl::sync_contact(&to_wire(r, name, aor, c)));
                n += 1;
            }
        }
    }
    log::info!("usrloc: sending {n} contacts to node {node}");
}

/// A table applying what another node sent.
impl Table {
    /// Runs `f` with replication off: what it changes came from another node.
    pub(crate) fn quietly<R>(&mut self, f: impl FnOnce(&mut Table) -> R) -> R {
        self.replicated = true;
        let out = f(self);
        self.replicated = false;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repl(match_callid: bool) -> Repl {
        Repl {
            cluster: 1,
            match_callid,
            desc_time_order: false,
            flag_names: vec![(3, "NAT".into()), (5, "PERSIST".into())],
            sockets: (vec!["udp:127.0.0.1:5060".into()], vec![("tcp", 5070)]),
            out: channel().0,
        }
    }

    fn contact(uri: &str, callid: &str, cseq: u32) -> Contact {
        Contact {
            uri: uri.into(),
            expires: Some(2_000_000_000),
            q: 300,
            callid: callid.into(),
            cseq,
            cflags: 1 << 5,
            flags: 0,
            user_agent: "UA".into(),
            received: None,
            path: Some("<sip:e;lr>".into()),
            socket: Some("udp:127.0.0.1:5060".into()),
            methods: usrloc::ALL_METHODS,
            instance: None,
            reg_id: 0,
            last_modified: 1_900_000_000,
            id: 99,
        }
    }

    #[test]
    fn a_contact_survives_the_wire_with_its_flags_by_name() {
        let r = repl(false);
        let mut c = contact("sip:a@h", "x", 4);
        c.cflags = (1 << 3) | (1 << 5) | (1 << 9);
        let w = to_wire(&r, "location", "a@d", &c);
        assert_eq!(w.cflags, "NAT PERSIST", "a flag without a name is not sent");
        assert_eq!(
            (w.expires, w.methods, w.contact_id),
            (2_000_000_000, -1, 99)
        );
        let back = from_wire(&r, w);
        c.cflags = (1 << 3) | (1 << 5);
        assert_eq!(back, c);
        // A permanent contact is expires 0; a socket that is not ours is dropped, one on a
        // wildcard listener kept.
        let mut p = contact("sip:p@h", "x", 1);
        p.expires = None;
        let mut w = to_wire(&r, "location", "p@d", &p);
        assert_eq!(w.expires, 0);
        w.socket = "udp:10.1.1.1:5060".into();
        let back = from_wire(&r, w.clone());
        assert_eq!((back.expires, back.socket), (None, None));
        w.socket = "tcp:192.0.2.1:5070".into();
        assert_eq!(
            from_wire(&r, w).socket.as_deref(),
            Some("tcp:192.0.2.1:5070")
        );
    }

    #[test]
    fn stale_packets_are_told_apart_as_get_ucontact_does() {
        let list = [contact("sip:a@h", "one", 5), contact("sip:b@h", "two", 1)];
        let by_uri = repl(false);
        // Same Call-ID: a CSeq not above ours is stale, whatever the mode.
        for m in [Match::Contact, Match::ContactCallid, Match::Default] {
            assert_eq!(
                find(&by_uri, &list, "sip:a@h", "one", 5, &m),
                (Some(0), true)
            );
            assert_eq!(
                find(&by_uri, &list, "sip:a@h", "one", 6, &m),
                (Some(0), false)
            );
        }
        // By URI only, another Call-ID is a new registration: never stale.
        assert_eq!(
            find(&by_uri, &list, "sip:a@h", "other", 1, &Match::Contact),
            (Some(0), false)
        );
        // By URI and Call-ID, another Call-ID is another contact.
        assert_eq!(
            find(&by_uri, &list, "sip:a@h", "other", 1, &Match::ContactCallid),
            (None, false)
        );
        // The receiver's own mode when the packet leaves it to us.
        assert_eq!(
            find(&repl(true), &list, "sip:a@h", "other", 9, &Match::Default),
            (None, false)
        );
        assert_eq!(
            find(&by_uri, &list, "sip:c@h", "one", 9, &Match::Contact),
            (None, false)
        );
    }

    #[test]
    fn record_labels_come_from_the_contact_id() {
        assert_eq!(labels(0x0001_0000_0042_0007), (0x42, 8));
        assert_eq!(labels(0), (0, 1));
    }
}
