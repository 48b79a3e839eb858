//! usrloc's location tables, in memory (OpenSIPS `working_mode_preset` =
//! `single-instance-no-db`): per table, the address-of-record of each user with its contacts.
//! One process-wide set of tables, shared by the workers, the MI and the statistics. Expired
//! contacts are never returned and are swept every `timer_interval` seconds.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// The methods of a contact whose REGISTER named none (no `methods` parameter, no Allow): any
/// (OpenSIPS `ALL_METHODS`, every bit set). The bits are OpenSIPS': INVITE 1 … PUBLISH 8192,
/// any other method 16384.
pub const ALL_METHODS: u32 = u32::MAX;

/// What happened to a contact, for [`set_contact_watch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Insert,
    Update,
    /// Removed by a REGISTER (or the MI).
    Delete,
    /// Gone by the timer.
    Expire,
}

/// A module told of every change of a contact (pua_usrloc). It runs with the location
/// tables locked: it must not look them up again.
pub type ContactWatch = Box<dyn Fn(Change, &str, &Contact) + Send + Sync>;

static WATCH: OnceLock<ContactWatch> = OnceLock::new();

/// Installs the contact watch (once).
pub fn set_contact_watch(w: ContactWatch) {
    let _ = WATCH.set(w);
}

thread_local! {
    static SAVING: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// The id of the message whose `save()` this thread is running, while it runs (what a
/// contact watch changes for).
pub fn saving() -> Option<u64> {
    SAVING.with(std::cell::Cell::get)
}

pub(crate) fn set_saving(id: Option<u64>) {
    SAVING.with(|s| s.set(id));
}

fn watched(change: Change, aor: &str, c: &Contact) {
    if let Some(w) = WATCH.get() {
        w(change, aor, c);
    }
}

/// One binding of an address-of-record.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// The Contact URI as registered (without `<>`).
    pub uri: String,
    /// When it expires (seconds since the epoch); `None` never (`ul_add` with expires 0).
    pub expires: Option<u64>,
    /// q × 1000, or -1 when the contact gave none.
    pub q: i32,
    pub callid: String,
    pub cseq: u32,
    /// The REGISTER's branch flags (the NAT flag among them), given back by `lookup`.
    pub cflags: u64,
    /// Internal flags (OpenSIPS `FL_*`); 0 for contacts from REGISTER.
    pub flags: u32,
    pub user_agent: String,
    /// Where the REGISTER really came from, when `received_avp` said so.
    pub received: Option<String>,
    /// The REGISTER's Path vector (RFC 3327), kept with save()'s path flags: `lookup` routes
    /// through it.
    pub path: Option<String>,
    /// `proto:ip:port` of the socket the REGISTER came in on.
    pub socket: Option<String>,
    /// The methods the contact takes (Allow of the REGISTER), as [`ALL_METHODS`] bits.
    pub methods: u32,
    /// RFC 5626 `+sip.instance`, with its quotes.
    pub instance: Option<String>,
    /// RFC 5626 `reg-id`.
    pub reg_id: u32,
    /// When it was last written (seconds since the epoch).
    pub last_modified: u64,
    /// A number that stays with the contact (`ContactID` of the MI).
    pub id: u64,
}

impl Contact {
    /// Whether the contact still counts at `now`.
    pub fn alive(&self, now: u64) -> bool {
        self.expires.is_none_or(|at| at > now)
    }

    /// Seconds left at `now` (0 once expired); `None` for a permanent contact.
    pub fn expires_in(&self, now: u64) -> Option<u64> {
        self.expires.map(|at| at.saturating_sub(now))
    }
}

/// One location table (`location` unless the script names another).
#[derive(Debug, Default)]
pub struct Table {
    /// Its name (what a change is written back to).
    name: String,
    aors: HashMap<String, Vec<Contact>>,
    /// Each address-of-record's key-value store (`ul_add_key`), gone with the record.
    kv: HashMap<String, HashMap<String, String>>,
    /// What is being written came from another node of the location cluster: it is not
    /// sent on (see [`crate::cluster`]).
    pub(crate) replicated: bool,
}

impl Table {
    /// The live contacts of `aor` at `now`, in lookup order (see [`Table::upsert`]).
    pub fn contacts(&self, aor: &str, now: u64) -> Vec<Contact> {
        self.aors
            .get(aor)
            .map(|list| list.iter().filter(|c| c.alive(now)).cloned().collect())
            .unwrap_or_default()
    }

    /// Writes `contact` for `aor`: replaces the binding with the same URI (and, with
    /// `by_callid`, the same Call-ID), else adds it. The list stays in lookup order, as
    /// usrloc keeps it: q descending, the older first among equals, a refresh keeping its
    /// place unless its q changed; with `desc_time_order` the newest write first.
    pub fn upsert(&mut self, aor: &str, mut contact: Contact, by_callid: bool, desc: bool) {
        crate::persist::changed(&self.name, aor);
        let new_aor = !self.aors.contains_key(aor);
        if new_aor {
            aor_event("E_UL_AOR_INSERT", &self.name, aor);
        }
        let replicate = !self.replicated;
        let list = self.aors.entry(aor.to_owned()).or_default();
        if let Some(at) = list
            .iter()
            .position(|c| c.uri == contact.uri && (!by_callid || c.callid == contact.callid))
        {
            contact.id = list[at].id;
            contact_event("E_UL_CONTACT_UPDATE", &self.name, aor, &contact);
            watched(Change::Update, aor, &contact);
            if replicate {
                crate::cluster::contact_written(&self.name, aor, &contact, false, true, by_callid);
            }
            if list[at].q == contact.q && !desc {
                list[at] = contact;
                return;
            }
            list.remove(at);
        } else {
            if contact.id == 0 {
                contact.id = next_id();
            }
            contact_event("E_UL_CONTACT_INSERT", &self.name, aor, &contact);
            watched(Change::Insert, aor, &contact);
            if replicate {
                crate::cluster::contact_written(
                    &self.name, aor, &contact, new_aor, false, by_callid,
                );
            }
        }
        // Most users have one or two contacts: grow by one, not to the default four (a
        // contact is ~200 bytes; this halves the memory per registered user).
        list.reserve_exact(1);
        let at = if desc {
            0
        } else {
            list.iter()
                .position(|c| c.q < contact.q)
                .unwrap_or(list.len())
        };
        list.insert(at, contact);
    }

    /// Removes the binding of `aor` with URI `uri` (and Call-ID `callid` when given); whether
    /// there was one.
    pub fn remove_contact(&mut self, aor: &str, uri: &str, callid: Option<&str>) -> bool {
        let Some(list) = self.aors.get_mut(aor) else {
            return false;
        };
        let before = list.len();
        let name = &self.name;
        let replicate = !self.replicated;
        list.retain(|c| {
            let gone = c.uri == uri && callid.is_none_or(|id| c.callid == id);
            if gone {
                contact_event("E_UL_CONTACT_DELETE", name, aor, c);
                watched(Change::Delete, aor, c);
                if replicate {
                    crate::cluster::contact_deleted(name, aor, c, callid.is_some());
                }
            }
            !gone
        });
        let removed = list.len() != before;
        if list.is_empty() {
            self.aors.remove(aor);
            self.kv.remove(aor);
            aor_event("E_UL_AOR_DELETE", &self.name, aor);
            if replicate {
                crate::cluster::aor_deleted(&self.name, aor);
            }
        }
        if removed {
            crate::persist::changed(&self.name, aor);
        }
        removed
    }

    /// Removes `aor` with all its contacts; whether it was there.
    pub fn remove_aor(&mut self, aor: &str) -> bool {
        let Some(list) = self.aors.remove(aor) else {
            return false;
        };
        self.kv.remove(aor);
        for c in &list {
            contact_event("E_UL_CONTACT_DELETE", &self.name, aor, c);
            watched(Change::Delete, aor, c);
        }
        aor_event("E_UL_AOR_DELETE", &self.name, aor);
        if !self.replicated {
            crate::cluster::aor_deleted(&self.name, aor);
        }
        crate::persist::changed(&self.name, aor);
        true
    }

    /// Drops what expired by `now`; how many contacts went.
    pub fn sweep(&mut self, now: u64) -> usize {
        let mut gone = 0;
        let name = &self.name;
        self.aors.retain(|aor, list| {
            let before = list.len();
            list.retain(|c| {
                let alive = c.alive(now);
                if !alive {
                    contact_event("E_UL_CONTACT_DELETE", name, aor, c);
                    watched(Change::Expire, aor, c);
                }
                alive
            });
            if list.len() != before {
                crate::persist::changed(name, aor);
            }
            gone += before - list.len();
            if list.is_empty() {
                aor_event("E_UL_AOR_DELETE", name, aor);
            }
            !list.is_empty()
        });
        let aors = &self.aors;
        self.kv.retain(|aor, _| aors.contains_key(aor));
        gone
    }

    /// `ul_add_key`: sets (an empty value removes) a key of `aor`'s store; false when the
    /// record does not exist.
    pub fn set_key(&mut self, aor: &str, key: &str, value: &str) -> bool {
        if !self.aors.contains_key(aor) {
            return false;
        }
        let store = self.kv.entry(aor.to_owned()).or_default();
        if value.is_empty() {
            store.remove(key);
        } else {
            store.insert(key.to_owned(), value.to_owned());
        }
        true
    }

    /// `ul_get_key`: `None` when the record or the key does not exist.
    pub fn key(&self, aor: &str, key: &str) -> Option<&str> {
        self.aors.get(aor)?;
        self.kv.get(aor)?.get(key).map(String::as_str)
    }

    /// A contact read back from the database (kept in its place, not written again).
    pub(crate) fn restore(&mut self, aor: &str, contact: Contact) {
        let list = self.aors.entry(aor.to_owned()).or_default();
        let at = list
            .iter()
            .position(|c| c.q < contact.q)
            .unwrap_or(list.len());
        list.insert(at, contact);
    }

    /// (address-of-records, contacts) in memory: the expired ones count until swept, as in
    /// OpenSIPS' `<table>-users` and `<table>-contacts`.
    pub fn counts(&self) -> (usize, usize) {
        (self.aors.len(), self.aors.values().map(Vec::len).sum())
    }

    /// Every contact of `aor` in memory, expired ones included (the MI shows them until the
    /// timer removes them); `None` when the AOR is not there.
    pub fn all_contacts(&self, aor: &str) -> Option<&[Contact]> {
        self.aors.get(aor).map(Vec::as_slice)
    }

    /// Every address-of-record in memory, sorted by name.
    pub fn all_aors(&self) -> Vec<(&str, &[Contact])> {
        let mut out: Vec<(&str, &[Contact])> = self
            .aors
            .iter()
            .map(|(a, l)| (a.as_str(), l.as_slice()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }
}

/// `E_UL_AOR_INSERT` / `E_UL_AOR_DELETE` (domain = the table), when anybody listens.
fn aor_event(event: &str, table: &str, aor: &str) {
    if engine::hooks::event_wanted(event) {
        engine::hooks::raise_event(
            event,
            vec![
                (Some("domain".into()), engine::Value::from(table)),
                (Some("aor".into()), engine::Value::from(aor)),
            ],
        );
    }
}

/// `E_UL_CONTACT_INSERT` / `UPDATE` / `DELETE` with OpenSIPS' parameters, when anybody
/// listens. `expires` is absolute (0: never), `qval` q × 1000 or -1; `attr`, `shtag` and
/// `latency` are not kept here and are empty (0).
fn contact_event(event: &str, table: &str, aor: &str, c: &Contact) {
    if !engine::hooks::event_wanted(event) {
        return;
    }
    use engine::Value;
    let text = |s: &str| Value::from(s);
    let opt = |s: &Option<String>| Value::from(s.as_deref().unwrap_or_default());
    let params = [
        ("domain", text(table)),
        ("aor", text(aor)),
        ("uri", text(&c.uri)),
        ("received", opt(&c.received)),
        ("path", opt(&c.path)),
        ("qval", Value::Int(i64::from(c.q))),
        ("user_agent", text(&c.user_agent)),
        ("socket", opt(&c.socket)),
        (
            "bflags",
            Value::Int(i64::try_from(c.cflags).unwrap_or(i64::MAX)),
        ),
        (
            "expires",
            Value::Int(
                c.expires
                    .map_or(0, |e| i64::try_from(e).unwrap_or(i64::MAX)),
            ),
        ),
        ("callid", text(&c.callid)),
        ("cseq", Value::Int(i64::from(c.cseq))),
        ("attr", text("")),
        ("latency", Value::Int(0)),
        ("shtag", text("")),
    ];
    engine::hooks::raise_event(
        event,
        params
            .into_iter()
            .map(|(n, v)| (Some(n.to_owned()), v))
            .collect(),
    );
}

/// The tables by name, and when they were last swept.
#[derive(Debug, Default)]
pub struct Tables {
    tables: HashMap<String, Table>,
    swept: u64,
    /// `timer_interval`: seconds between sweeps (OpenSIPS default 60).
    pub timer_interval: u64,
}

impl Tables {
    /// Table `name`, created on first use (OpenSIPS registers one per name the script uses).
    pub fn table(&mut self, name: &str) -> &mut Table {
        if !self.tables.contains_key(name) {
            crate::register_table_stats(name);
            let mut t = Table {
                name: name.to_owned(),
                ..Table::default()
            };
            // With SQL persistence a table is read from the database when first used; one
            // that cannot be read starts empty (and says why).
            if crate::persist::loads_tables()
                && let Err(e) = crate::persist::load_into(name, &mut t)
            {
                log::error!("{e}");
            }
            self.tables.insert(name.to_owned(), t);
        }
        self.tables.entry(name.to_owned()).or_default()
    }

    /// Reads table `name` from the database (at start); how many live contacts it held.
    pub fn load(&mut self, name: &str) -> Result<usize, String> {
        if !self.tables.contains_key(name) {
            crate::register_table_stats(name);
        }
        let t = self.tables.entry(name.to_owned()).or_default();
        t.name = name.to_owned();
        crate::persist::load_into(name, t)
    }

    /// Table `name` if the script uses it (it was registered or written).
    pub fn get(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Table> {
        self.tables.get_mut(name)
    }

    /// Every table, by name.
    pub fn all(&self) -> Vec<(&str, &Table)> {
        let mut out: Vec<(&str, &Table)> =
            self.tables.iter().map(|(n, t)| (n.as_str(), t)).collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// Sweeps every table when `timer_interval` passed since the last sweep (usrloc's timer,
    /// run when the tables are next used); each contact removed counts in `<table>-expires`.
    pub fn maybe_sweep(&mut self, now: u64) {
        let every = self.timer_interval.max(1);
        if self.swept == 0 {
            self.swept = now;
        }
        if now >= self.swept.saturating_add(every) {
            self.sweep_all(now);
        }
    }

    /// Sweeps every table now (`ul_flush`).
    pub fn sweep_all(&mut self, now: u64) {
        for (name, t) in &mut self.tables {
            let gone = t.sweep(now);
            if gone > 0 {
                crate::table_stat(name, "expires").add(gone as i64);
            }
        }
        self.swept = now;
    }

    /// Empties every table (`ul_flush` has nothing to write in memory-only mode; tests).
    pub fn clear(&mut self) {
        self.tables.values_mut().for_each(|t| t.aors.clear());
    }
}

/// The process's tables.
pub fn tables() -> MutexGuard<'static, Tables> {
    static TABLES: OnceLock<Mutex<Tables>> = OnceLock::new();
    TABLES
        .get_or_init(|| {
            Mutex::new(Tables {
                timer_interval: 60,
                ..Tables::default()
            })
        })
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new contact id: unique in this process, and unlike the ids of an earlier start.
pub fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let _ = NEXT.compare_exchange(
        0,
        now().wrapping_mul(1 << 20) | 1,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The method bit of a request method, in OpenSIPS' numbering.
pub fn method_bit(method: &str) -> u32 {
    const NAMES: [&str; 14] = [
        "INVITE",
        "CANCEL",
        "ACK",
        "BYE",
        "INFO",
        "OPTIONS",
        "UPDATE",
        "REGISTER",
        "MESSAGE",
        "SUBSCRIBE",
        "NOTIFY",
        "PRACK",
        "REFER",
        "PUBLISH",
    ];
    NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(method))
        .map_or(1 << 14, |i| 1 << i)
}

/// The methods an `Allow` list names, as bits; `None` when empty.
pub fn methods_of(allow: &[&str]) -> Option<u32> {
    let mut bits = 0;
    for m in allow {
        for name in m.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            bits |= method_bit(name);
        }
    }
    (bits != 0).then_some(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(uri: &str, q: i32, expires: u64) -> Contact {
        Contact {
            uri: uri.into(),
            expires: Some(expires),
            q,
            callid: "c".into(),
            cseq: 1,
            cflags: 0,
            flags: 0,
            user_agent: String::new(),
            received: None,
            path: None,
            socket: None,
            methods: ALL_METHODS,
            instance: None,
            reg_id: 0,
            last_modified: 0,
            id: 0,
        }
    }

    #[test]
    fn contacts_are_kept_by_q_oldest_first_among_equals_and_refreshed_in_place() {
        let mut t = Table::default();
        t.upsert("a@d", contact("sip:1@h", -1, 100), false, false);
        t.upsert("a@d", contact("sip:2@h", 500, 100), false, false);
        t.upsert("a@d", contact("sip:3@h", 500, 100), false, false);
        t.upsert("a@d", contact("sip:4@h", 1000, 100), false, false);
        let order = |t: &Table| -> Vec<String> {
            t.contacts("a@d", 0).into_iter().map(|c| c.uri).collect()
        };
        assert_eq!(order(&t), ["sip:4@h", "sip:2@h", "sip:3@h", "sip:1@h"]);
        let id = t.contacts("a@d", 0)[1].id;
        t.upsert("a@d", contact("sip:2@h", 500, 200), false, false);
        assert_eq!(order(&t), ["sip:4@h", "sip:2@h", "sip:3@h", "sip:1@h"]);
        assert_eq!(
            t.contacts("a@d", 0)[1].id,
            id,
            "a refreshed binding keeps its id"
        );
        assert_eq!(t.contacts("a@d", 0)[1].expires, Some(200));
        // A new q moves it; desc_time_order puts the newest write first.
        t.upsert("a@d", contact("sip:1@h", 700, 100), false, false);
        assert_eq!(order(&t), ["sip:4@h", "sip:1@h", "sip:2@h", "sip:3@h"]);
        t.upsert("a@d", contact("sip:3@h", 500, 300), false, true);
        assert_eq!(order(&t)[0], "sip:3@h");
    }

    #[test]
    fn expired_contacts_are_hidden_then_swept() {
        let mut all = Tables {
            timer_interval: 10,
            ..Tables::default()
        };
        let t = all.table("location");
        t.upsert("a@d", contact("sip:1@h", -1, 50), false, false);
        t.upsert("a@d", contact("sip:2@h", -1, 150), false, false);
        t.upsert("b@d", contact("sip:3@h", -1, 50), false, false);
        assert_eq!(t.counts(), (2, 3));
        assert_eq!(t.contacts("b@d", 100), vec![]);
        assert_eq!(t.all_contacts("b@d").map(<[Contact]>::len), Some(1));
        all.maybe_sweep(1);
        all.maybe_sweep(100);
        assert_eq!(all.table("location").counts(), (1, 1));
        assert_eq!(all.table("location").aors["a@d"].len(), 1);
    }

    #[test]
    fn allow_lists_become_method_bits() {
        assert_eq!(methods_of(&["INVITE, ACK", "bye"]), Some(1 | 4 | 8));
        assert_eq!(methods_of(&["FOO"]), Some(1 << 14));
        assert_eq!(methods_of(&[]), None);
        assert_eq!(method_bit("PUBLISH"), 8192);
    }
}
