//! The B2B sessions (OpenSIPS' b2b_logic "tuples") and their entities (b2b_entities' server
//! and client dialogs), with the indexes a message is matched by: an in-dialog request by its
//! Call-ID and our tag, a CANCEL by the Call-ID and the caller's tag.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use engine::{MsgCtx, Script};
use tm::TxCell;

use crate::leg::{Leg, Side, State};

/// One dialog of a session.
#[derive(Debug)]
pub struct Entity {
    /// The script's name for it (`b2b_server_new("caller")`); empty in top hiding.
    pub id: String,
    /// OpenSIPS' entity key: the Call-ID of a client leg, our tag of a server leg.
    pub key: String,
    pub side: Side,
    pub leg: Leg,
    pub state: State,
    /// The entity it is bridged with (an index in the session's entities).
    pub peer: Option<usize>,
    /// Server: the caller's initial INVITE, answered from the peer's replies.
    pub invite: Option<ServerInvite>,
    /// Client: `$du`/proxy its INVITE goes to, when not its Request-URI.
    pub proxy: Option<String>,
    /// Client: the CSeq number of its initial INVITE (for a CANCEL).
    pub invite_cseq: u32,
    /// Removed from the session (`b2b_delete_entity`, a leg that ended): kept in the list so
    /// the indexes of the others stay as they are.
    pub deleted: bool,
    /// A re-INVITE from its far side waits for the peer's answer (RFC 3261 §14.2: another
    /// one gets a 500).
    pub in_invite: bool,
    /// A re-INVITE of ours to its far side waits for an answer (one from the far side
    /// meanwhile gets a 491).
    pub out_invite: bool,
}

/// The caller's initial INVITE and its server transaction.
#[derive(Debug, Clone)]
pub struct ServerInvite {
    pub cell: Arc<TxCell>,
    pub req: MsgCtx,
    /// A final reply went to it.
    pub answered: bool,
}

impl Entity {
    pub fn new(id: &str, side: Side, leg: Leg) -> Entity {
        let key = match side {
            Side::Server => leg.local_tag.clone(),
            Side::Client => leg.callid.clone(),
        };
        Entity {
            id: id.to_owned(),
            key,
            side,
            leg,
            state: State::New,
            peer: None,
            invite: None,
            proxy: None,
            invite_cseq: 0,
            deleted: false,
            in_invite: false,
            out_invite: false,
        }
    }

    pub fn live(&self) -> bool {
        !self.deleted && self.state != State::Ended
    }
}

/// A B2B session.
#[derive(Debug)]
pub struct Tuple {
    /// `$b2b_logic.key`: `<hash>.<id>`.
    pub key: String,
    /// `$b2b_logic.scenario`: "top hiding" or the script's name.
    pub scenario: String,
    pub entities: Vec<Entity>,
    /// The script the session started in (its routes run for its requests).
    pub script: Option<Arc<Script>>,
    /// `$b2b_logic.ctx(name)`.
    pub ctx: HashMap<String, String>,
    /// The caller cancelled, or the session is being torn down: a late 2xx gets a BYE.
    pub ending: bool,
    /// When it was created (seconds since the epoch).
    pub created: u64,
}

impl Tuple {
    /// Whether every entity is gone (the session can go too).
    pub fn finished(&self) -> bool {
        self.entities.iter().all(|e| !e.live())
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.entities.iter().position(|e| !e.deleted && e.id == id)
    }
}

/// Where an entity is: its session's key and its index there.
pub type Place = (String, usize);

/// Every session, with the indexes messages are matched by.
#[derive(Debug, Default)]
pub struct Table {
    pub tuples: HashMap<String, Tuple>,
    /// (Call-ID, our tag) → entity: in-dialog requests from either side.
    by_dialog: HashMap<(String, String), Place>,
    /// (Call-ID, the caller's tag) → server entity: CANCELs.
    by_caller: HashMap<(String, String), Place>,
}

impl Table {
    /// Adds a session; its entities are indexed.
    pub fn insert(&mut self, t: Tuple) {
        let key = t.key.clone();
        for i in 0..t.entities.len() {
            self.index(&t, &key, i);
        }
        self.tuples.insert(key, t);
    }

    fn index(&mut self, t: &Tuple, key: &str, i: usize) {
        let Some(e) = t.entities.get(i) else { return };
        self.by_dialog.insert(
            (e.leg.callid.clone(), e.leg.local_tag.clone()),
            (key.to_owned(), i),
        );
        if e.side == Side::Server {
            self.by_caller.insert(
                (e.leg.callid.clone(), e.leg.remote_tag.clone()),
                (key.to_owned(), i),
            );
        }
    }

    /// Adds an entity to a session (`b2b_client_new` after the start): its index.
    pub fn add_entity(&mut self, key: &str, e: Entity) -> Option<usize> {
        let t = self.tuples.get_mut(key)?;
        t.entities.push(e);
        let i = t.entities.len() - 1;
        let (callid, tag) = (
            t.entities[i].leg.callid.clone(),
            t.entities[i].leg.local_tag.clone(),
        );
        self.by_dialog.insert((callid, tag), (key.to_owned(), i));
        Some(i)
    }

    /// The entity whose dialog has this Call-ID and our tag.
    pub fn by_dialog(&self, callid: &str, local_tag: &str) -> Option<Place> {
        self.by_dialog
            .get(&(callid.to_owned(), local_tag.to_owned()))
            .cloned()
    }

    /// The server entity a CANCEL (Call-ID, From tag) is for.
    pub fn by_caller(&self, callid: &str, from_tag: &str) -> Option<Place> {
        self.by_caller
            .get(&(callid.to_owned(), from_tag.to_owned()))
            .cloned()
    }

    pub fn entity(&self, p: &Place) -> Option<&Entity> {
        self.tuples.get(&p.0)?.entities.get(p.1)
    }

    pub fn entity_mut(&mut self, p: &Place) -> Option<&mut Entity> {
        self.tuples.get_mut(&p.0)?.entities.get_mut(p.1)
    }

    /// Removes a session and its indexes.
    pub fn remove(&mut self, key: &str) -> Option<Tuple> {
        let t = self.tuples.remove(key)?;
        for e in &t.entities {
            self.by_dialog
                .remove(&(e.leg.callid.clone(), e.leg.local_tag.clone()));
            if e.side == Side::Server {
                self.by_caller
                    .remove(&(e.leg.callid.clone(), e.leg.remote_tag.clone()));
            }
        }
        Some(t)
    }

    /// Removes a session once all its entities are gone; whether it did.
    pub fn remove_if_finished(&mut self, key: &str) -> bool {
        if self.tuples.get(key).is_some_and(Tuple::finished) {
            self.remove(key);
            return true;
        }
        false
    }

    pub fn len(&self) -> usize {
        self.tuples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tuples.is_empty()
    }
}

/// The process' sessions.
pub fn table() -> MutexGuard<'static, Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE
        .get_or_init(|| Mutex::new(Table::default()))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A number unique in this process, starting at a random point (so keys and tags of one run
/// do not repeat those of the run before).
fn next_id() -> u64 {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    NEXT.get_or_init(|| AtomicU64::new(u64::from(random32() >> 8)))
        .fetch_add(1, Ordering::Relaxed)
}

fn random32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(unix_nanos());
    h.finish() as u32
}

fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

pub fn unix_now() -> u64 {
    (unix_nanos() / 1_000_000_000) as u64
}

/// A new tag or Call-ID of ours: `<prefix>.<id>.<random>.<time>`, as OpenSIPS builds its
/// b2b keys (`B2B.` by default, `b2b_key_prefix`).
pub fn new_token(prefix: &str) -> String {
    format!("{prefix}.{}.{}.{}", next_id(), random32(), unix_now())
}

/// A new session key, `<hash>.<id>` as OpenSIPS' b2b_logic shows them.
pub fn new_key() -> String {
    let id = next_id();
    format!("{}.{}", id % 10, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(callid: &str, local: &str, remote: &str) -> Leg {
        Leg {
            callid: callid.into(),
            local_tag: local.into(),
            remote_tag: remote.into(),
            ..Leg::default()
        }
    }

    fn tuple(key: &str) -> Tuple {
        Tuple {
            key: key.into(),
            scenario: "top hiding".into(),
            entities: vec![
                Entity::new("", Side::Server, leg("c1", "B2B.s", "caller")),
                Entity::new("", Side::Client, leg("B2B.c", "B2B.f", "")),
            ],
            script: None,
            ctx: HashMap::new(),
            ending: false,
            created: 0,
        }
    }

    #[test]
    fn entities_are_found_by_dialog_and_cancel() {
        let mut t = Table::default();
        t.insert(tuple("1.1"));
        assert_eq!(t.by_dialog("c1", "B2B.s"), Some(("1.1".into(), 0)));
        assert_eq!(t.by_dialog("B2B.c", "B2B.f"), Some(("1.1".into(), 1)));
        // Our tag of one leg with the Call-ID of the other is no dialog.
        assert_eq!(t.by_dialog("c1", "B2B.f"), None);
        assert_eq!(t.by_caller("c1", "caller"), Some(("1.1".into(), 0)));
        assert_eq!(t.by_caller("B2B.c", ""), None);
        assert_eq!(t.entity(&("1.1".into(), 0)).unwrap().key, "B2B.s");
        assert_eq!(t.entity(&("1.1".into(), 1)).unwrap().key, "B2B.c");
    }

    #[test]
    fn a_session_goes_when_its_entities_ended() {
        let mut t = Table::default();
        t.insert(tuple("1.1"));
        t.entity_mut(&("1.1".into(), 0)).unwrap().state = State::Ended;
        assert!(!t.remove_if_finished("1.1"));
        t.entity_mut(&("1.1".into(), 1)).unwrap().deleted = true;
        assert!(t.remove_if_finished("1.1"));
        assert!(t.is_empty());
        assert_eq!(t.by_dialog("c1", "B2B.s"), None);
        assert_eq!(t.by_caller("c1", "caller"), None);
    }

    #[test]
    fn added_entities_are_indexed() {
        let mut t = Table::default();
        t.insert(tuple("1.1"));
        let i = t
            .add_entity(
                "1.1",
                Entity::new("media", Side::Client, leg("B2B.m", "B2B.g", "")),
            )
            .unwrap();
        assert_eq!(i, 2);
        assert_eq!(t.by_dialog("B2B.m", "B2B.g"), Some(("1.1".into(), 2)));
        assert_eq!(t.tuples["1.1"].index_of("media"), Some(2));
        assert_eq!(
            t.add_entity("nope", Entity::new("x", Side::Client, Leg::default())),
            None
        );
    }

    #[test]
    fn tokens_are_unique_and_prefixed() {
        let a = new_token("B2B");
        let b = new_token("B2B");
        assert!(a.starts_with("B2B.") && b.starts_with("B2B."));
        assert_ne!(a, b);
        assert_ne!(new_key(), new_key());
    }
}
