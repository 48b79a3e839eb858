//! In the throttling modes the main registrar holds our bindings for `outgoing_expires`, far
//! longer than the UAs' own: when a UA stops refreshing and its binding here expires (mode 1),
//! or the last binding of an AoR does (mode 2), we tell the main registrar ourselves with a
//! De-REGISTER in the registration's dialog (OpenSIPS does it from usrloc's expiry callbacks).
//! A thread of the module looks once a second.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use registrar::usrloc;

use crate::state::{self, Upstream};

/// How to reach the main registrar again for a registration it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub from: String,
    pub to: String,
    /// The Request-URI the REGISTER was relayed with, and its next hop (`$du`) if any.
    pub ruri: String,
    pub next_hop: Option<String>,
    pub callid: String,
    /// The CSeq of the REGISTER it accepted.
    pub cseq: u32,
    /// Our Contact URI it holds.
    pub contact: String,
}

/// The sockets to send from, as the script that relayed the REGISTERs knows them.
fn net() -> &'static Mutex<Option<Arc<engine::forward::Sockets>>> {
    static NET: OnceLock<Mutex<Option<Arc<engine::forward::Sockets>>>> = OnceLock::new();
    NET.get_or_init(|| Mutex::new(None))
}

/// Starts the watch (once) with the sockets of the running script.
pub fn watch(sockets: Arc<engine::forward::Sockets>) {
    *net()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sockets);
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("mid_registrar".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    for d in due(usrloc::now()) {
                        send(&d);
                    }
                }
            });
        if let Err(e) = spawned {
            log::error!("mid_registrar: cannot start the expiry watch: {e}");
        }
    });
}

/// The upstream registrations whose local bindings are gone by `now`: taken out of the state,
/// to be unregistered.
pub fn due(now: u64) -> Vec<Dialog> {
    let tables = usrloc::tables();
    let mut st = state::state();
    let live_contact = |up: &Upstream, id: u64| {
        tables
            .get(&up.table)
            .is_some_and(|t| t.contacts(&up.aor, now).iter().any(|c| c.id == id))
    };
    let gone: Vec<u64> = st
        .contacts
        .iter()
        .filter(|(id, up)| !live_contact(up, **id))
        .map(|(id, _)| *id)
        .collect();
    let mut out: Vec<Dialog> = gone
        .iter()
        .filter_map(|id| st.contacts.remove(id))
        .filter_map(|up| up.dialog)
        .collect();
    let empty: Vec<(String, String)> = st
        .aors
        .iter()
        .filter(|(_, up)| {
            tables
                .get(&up.table)
                .is_none_or(|t| t.contacts(&up.aor, now).is_empty())
        })
        .map(|(k, _)| k.clone())
        .collect();
    out.extend(
        empty
            .iter()
            .filter_map(|k| st.aors.remove(k))
            .filter_map(|up| up.dialog),
    );
    out
}

/// The De-REGISTER of `d`, sent through tm (its answer is not waited for).
fn send(d: &Dialog) {
    let Some(tm) = tm::global() else {
        return;
    };
    let Some(sockets) = net()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
    else {
        return;
    };
    let headers = format!(
        "From: <{}>\r\nTo: <{}>\r\nCall-ID: {}\r\nCSeq: {} REGISTER\r\nContact: <{}>;expires=0\r\n",
        d.from,
        d.to,
        d.callid,
        d.cseq.wrapping_add(1),
        d.contact
    );
    let msg = match tm::build_request("REGISTER", &d.ruri, &headers, None) {
        Ok(m) => m,
        Err(e) => {
            log::error!(
                "mid_registrar: cannot build the De-REGISTER of {}: {e}",
                d.contact
            );
            return;
        }
    };
    let mut ctx = engine::MsgCtx::new(msg);
    ctx.dst_uri = d.next_hop.clone();
    if let Err(e) = tm.new_request(
        ctx,
        None,
        &sockets,
        std::time::Instant::now(),
        Box::new(|_| {}),
    ) {
        log::error!(
            "mid_registrar: cannot send the De-REGISTER of {}: {e}",
            d.contact
        );
    }
}
