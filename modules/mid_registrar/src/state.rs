//! What the mid-registrar remembers beside usrloc's bindings: the REGISTERs relayed upstream
//! and waiting for the main registrar's answer, and, for the throttling modes, when each
//! contact (mode 1) or AoR (mode 2) was last registered upstream and for how long (OpenSIPS
//! keeps these in usrloc's key-value store of each contact and record).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::Mode;

/// How long a relayed REGISTER waits for its answer before it is forgotten (seconds): well
/// past tm's final-response timer.
const PENDING_TTL: u64 = 120;

/// One Contact of a relayed REGISTER, as the UA gave it.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// The id carried upstream in the Contact we put in its place.
    pub ctid: u64,
    /// The UA's Contact URI.
    pub uri: String,
    /// The lifetime the UA asked (after min/max_expires), seconds; 0 unregisters.
    pub expires: u32,
    pub q: i32,
    pub methods: u32,
    pub instance: Option<String>,
    pub reg_id: u32,
}

/// A REGISTER relayed upstream, waiting for its 2xx.
#[derive(Debug, Clone)]
pub struct Pending {
    pub table: String,
    pub aor: String,
    pub mode: Mode,
    /// `Contact: *`.
    pub star: bool,
    /// The lifetime asked upstream in the throttling modes.
    pub expires_out: u32,
    pub mappings: Vec<Mapping>,
    pub callid: String,
    pub cseq: u32,
    pub user_agent: String,
    pub socket: Option<String>,
    pub received: Option<String>,
    pub cflags: u64,
    pub memory_only: bool,
    pub only_request_contacts: bool,
    pub max_contacts: u32,
    pub force_registration: bool,
    /// The connection to keep open while the stream contacts live (`tcp_persistent_flag`).
    pub keep_conn: Option<u64>,
    /// When it was relayed (seconds since the epoch).
    pub at: u64,
}

/// The upstream registration of a contact (mode 1) or an AoR (mode 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// When the main registrar last accepted it (seconds since the epoch).
    pub last_reg: u64,
    /// The lifetime it granted, seconds.
    pub expires_out: u32,
    /// The usrloc table and AoR of the local binding(s) behind it.
    pub table: String,
    pub aor: String,
    /// How to unregister it upstream; `None` when the reply did not tell.
    pub dialog: Option<crate::dereg::Dialog>,
}

/// The module's state, shared by the workers.
#[derive(Debug, Default)]
pub struct State {
    pending: HashMap<(String, u32), Pending>,
    /// Mode 1: by contact id.
    pub contacts: HashMap<u64, Upstream>,
    /// Mode 2: by (table, AoR).
    pub aors: HashMap<(String, String), Upstream>,
    /// Mode 2: the lifetime each contact (by id) asked at its last REGISTER.
    pub intervals: HashMap<u64, u32>,
}

impl State {
    /// Remembers a relayed REGISTER (a retransmission replaces the first).
    pub fn relayed(&mut self, p: Pending) {
        let now = p.at;
        self.pending.retain(|_, old| old.at + PENDING_TTL > now);
        self.pending.insert((p.callid.clone(), p.cseq), p);
    }

    /// The relayed REGISTER a reply answers; a final reply takes it out.
    pub fn answered(&mut self, callid: &str, cseq: u32, last: bool) -> Option<Pending> {
        let key = (callid.to_owned(), cseq);
        if last {
            self.pending.remove(&key)
        } else {
            self.pending.get(&key).cloned()
        }
    }

    /// The contact ids a REGISTER already relayed (a retransmission the script relays again
    /// must carry the same ones), by UA Contact URI.
    pub fn relayed_ids(&self, callid: &str, cseq: u32) -> Vec<(String, u64)> {
        self.pending
            .get(&(callid.to_owned(), cseq))
            .map(|p| p.mappings.iter().map(|m| (m.uri.clone(), m.ctid)).collect())
            .unwrap_or_default()
    }

    /// How many relayed REGISTERs wait (tests).
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }
}

/// The process's state.
pub fn state() -> MutexGuard<'static, State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(callid: &str, cseq: u32, at: u64) -> Pending {
        Pending {
            table: "location".into(),
            aor: "a@d".into(),
            mode: Mode::Mirror,
            star: false,
            expires_out: 3600,
            mappings: Vec::new(),
            callid: callid.into(),
            cseq,
            user_agent: String::new(),
            socket: None,
            received: None,
            cflags: 0,
            memory_only: false,
            only_request_contacts: false,
            max_contacts: 0,
            force_registration: false,
            keep_conn: None,
            at,
        }
    }

    #[test]
    fn relayed_registers_wait_for_their_final_reply_then_go() {
        let mut s = State::default();
        s.relayed(pending("c1", 1, 1000));
        assert!(
            s.answered("c1", 1, false).is_some(),
            "a provisional keeps it"
        );
        assert!(s.answered("c1", 2, true).is_none());
        assert!(s.answered("c1", 1, true).is_some());
        assert!(s.answered("c1", 1, true).is_none());
        s.relayed(pending("old", 1, 1000));
        s.relayed(pending("new", 1, 1000 + PENDING_TTL));
        assert_eq!(s.waiting(), 1, "the unanswered one is forgotten");
    }
}
