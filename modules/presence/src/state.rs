//! What the presence server holds: the publications of each presentity and the
//! subscriptions (OpenSIPS' `presentity` and `active_watchers`), in memory, with their rows in
//! the database: publications written as they change, subscriptions by the `db_update_period`
//! timer and at shutdown (as OpenSIPS does with `fallback2db` 0; at once with 1).

use std::collections::HashMap;
use std::sync::Arc;

use db::{Connection, Value as Db};

/// A subscription's state (OpenSIPS' numbers, as the tables keep them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active = 1,
    Pending = 2,
    Terminated = 3,
}

impl Status {
    pub fn of(n: i64) -> Status {
        match n {
            1 => Status::Active,
            3 => Status::Terminated,
            _ => Status::Pending,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Pending => "pending",
            Status::Terminated => "terminated",
        }
    }
}

/// One PUBLISH's document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub etag: String,
    /// Seconds since the epoch.
    pub expires: i64,
    pub received: i64,
    pub body: String,
    pub sender: String,
    pub extra_hdrs: String,
    /// How many times the entity tag changed (`etag_count`).
    pub etag_count: u32,
    /// The entity tag of its row in the database (`None`: no row yet). Differs from `etag`
    /// while a change waits to be written.
    pub db_etag: Option<String>,
}

/// (user, domain, event).
pub type PresKey = (String, String, String);

/// What the database still has to learn about a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFlag {
    None = 0,
    Update = 1,
    Insert = 2,
}

/// One subscription (one row of `active_watchers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sub {
    pub pres_uri: String,
    pub event: String,
    pub event_id: Option<String>,
    pub watcher_user: String,
    pub watcher_domain: String,
    pub to_user: String,
    pub to_domain: String,
    pub to_tag: String,
    pub from_tag: String,
    pub callid: String,
    /// The CSeq of the last NOTIFY sent.
    pub local_cseq: u32,
    pub remote_cseq: u32,
    pub contact: String,
    /// The route set: the SUBSCRIBE's Record-Route values, comma-separated, as received.
    pub record_route: String,
    /// Seconds since the epoch.
    pub expires: i64,
    pub status: Status,
    pub reason: String,
    pub version: u32,
    /// The socket the SUBSCRIBE came in on (`udp:127.0.0.1:5060`): NOTIFYs leave by it.
    pub socket_info: String,
    pub local_contact: String,
    pub db: DbFlag,
}

impl Sub {
    pub fn key(&self) -> (&str, &str, &str) {
        (&self.callid, &self.to_tag, &self.from_tag)
    }

    pub fn watcher_uri(&self) -> String {
        if self.watcher_user.is_empty() {
            format!("sip:{}", self.watcher_domain)
        } else {
            format!("sip:{}@{}", self.watcher_user, self.watcher_domain)
        }
    }
}

/// Everything under one lock.
#[derive(Debug, Default)]
pub struct State {
    pub presentities: HashMap<PresKey, Vec<Publication>>,
    pub subs: Vec<Sub>,
    /// Subscriptions gone since the last database update: (presentity, event, to tag).
    pub gone: Vec<(String, String, String)>,
    /// Publications gone whose rows could not be deleted yet: (presentity, entity tag).
    pub gone_publications: Vec<(PresKey, String)>,
}

impl State {
    /// Writes the publications whose rows lag behind and deletes the rows of those gone
    /// (what a database outage left undone).
    pub fn persist(&mut self, tables: &Tables) {
        for (key, list) in &mut self.presentities {
            for p in list.iter_mut() {
                if p.db_etag.as_deref() != Some(p.etag.as_str()) {
                    tables.store_publication(key, p);
                }
            }
        }
        self.gone_publications
            .retain(|(key, etag)| !tables.delete_publication(key, etag));
    }
}

/// The database tables.
pub struct Tables {
    pub db: Arc<dyn Connection>,
    pub presentity: String,
    pub active_watchers: String,
    pub watchers: String,
}

fn text(v: Option<&Db>) -> String {
    v.and_then(Db::as_text).unwrap_or_default()
}

fn int(v: Option<&Db>) -> i64 {
    v.and_then(Db::as_int).unwrap_or(0)
}

const PRESENTITY_COLUMNS: [&str; 9] = [
    "username",
    "domain",
    "event",
    "etag",
    "expires",
    "received_time",
    "body",
    "extra_hdrs",
    "sender",
];

const WATCHER_COLUMNS: [&str; 21] = [
    "presentity_uri",
    "watcher_username",
    "watcher_domain",
    "to_user",
    "to_domain",
    "event",
    "event_id",
    "to_tag",
    "from_tag",
    "callid",
    "local_cseq",
    "remote_cseq",
    "contact",
    "record_route",
    "expires",
    "status",
    "reason",
    "version",
    "socket_info",
    "local_contact",
    "sharing_tag",
];

impl Tables {
    /// The publications that have not expired.
    pub fn load_presentities(
        &self,
        now: i64,
    ) -> Result<HashMap<PresKey, Vec<Publication>>, String> {
        let rows = self
            .db
            .query(&self.presentity, &PRESENTITY_COLUMNS, &[])
            .map_err(|e| format!("presence: cannot read {}: {e}", self.presentity))?;
        let mut out: HashMap<PresKey, Vec<Publication>> = HashMap::new();
        for r in rows {
            let expires = int(r.get(4));
            if expires <= now {
                continue;
            }
            let key = (text(r.first()), text(r.get(1)), text(r.get(2)));
            out.entry(key).or_default().push(Publication {
                etag: text(r.get(3)),
                expires,
                received: int(r.get(5)),
                body: text(r.get(6)),
                extra_hdrs: text(r.get(7)),
                sender: text(r.get(8)),
                etag_count: 0,
                db_etag: Some(text(r.get(3))),
            });
        }
        for list in out.values_mut() {
            list.sort_by_key(|p| p.received);
        }
        Ok(out)
    }

    /// The subscriptions that have not expired, marked to be written again: the table is
    /// emptied (the timer writes them back), as OpenSIPS does with `fallback2db` 0.
    pub fn load_subs(&self, now: i64, keep_rows: bool) -> Result<Vec<Sub>, String> {
        let rows = self
            .db
            .query(&self.active_watchers, &WATCHER_COLUMNS, &[])
            .map_err(|e| format!("presence: cannot read {}: {e}", self.active_watchers))?;
        let mut out = Vec::new();
        for r in rows {
            let expires = int(r.get(14));
            if expires <= now {
                continue;
            }
            out.push(Sub {
                pres_uri: text(r.first()),
                watcher_user: text(r.get(1)),
                watcher_domain: text(r.get(2)),
                to_user: text(r.get(3)),
                to_domain: text(r.get(4)),
                event: text(r.get(5)),
                event_id: r.get(6).and_then(Db::as_text).filter(|s| !s.is_empty()),
                to_tag: text(r.get(7)),
                from_tag: text(r.get(8)),
                callid: text(r.get(9)),
                local_cseq: u32::try_from(int(r.get(10))).unwrap_or(0),
                remote_cseq: u32::try_from(int(r.get(11))).unwrap_or(0),
                contact: text(r.get(12)),
                record_route: text(r.get(13)),
                expires,
                status: Status::of(int(r.get(15))),
                reason: text(r.get(16)),
                version: u32::try_from(int(r.get(17))).unwrap_or(0),
                socket_info: text(r.get(18)),
                local_contact: text(r.get(19)),
                db: if keep_rows {
                    DbFlag::None
                } else {
                    DbFlag::Insert
                },
            });
        }
        if !keep_rows {
            self.db
                .delete(&self.active_watchers, &[])
                .map_err(|e| format!("presence: cannot clear {}: {e}", self.active_watchers))?;
        }
        Ok(out)
    }

    /// Writes a publication: its row (the one with `db_etag`) updated, or a new row. On
    /// success `db_etag` is its entity tag; on failure it stays as it was and the next
    /// [`State::persist`] round tries again.
    pub fn store_publication(&self, key: &PresKey, p: &mut Publication) -> bool {
        let mut row = vec![
            ("etag", Db::Str(p.etag.clone())),
            ("expires", Db::Int(p.expires)),
            ("received_time", Db::Int(p.received)),
            ("body", Db::Str(p.body.clone())),
            ("sender", Db::Str(p.sender.clone())),
        ];
        if !p.extra_hdrs.is_empty() {
            row.push(("extra_hdrs", Db::Str(p.extra_hdrs.clone())));
        }
        let done = match &p.db_etag {
            Some(old) => self
                .db
                .update(&self.presentity, &publication_filter(key, old), &row)
                .map(|_| ()),
            None => {
                row.extend([
                    ("username", Db::Str(key.0.clone())),
                    ("domain", Db::Str(key.1.clone())),
                    ("event", Db::Str(key.2.clone())),
                ]);
                self.db.insert(&self.presentity, &row)
            }
        };
        match done {
            Ok(()) => {
                p.db_etag = Some(p.etag.clone());
                true
            }
            Err(e) => {
                log::error!(
                    "presence: cannot store the publication of {}@{} (tried again later): {e}",
                    key.0,
                    key.1
                );
                false
            }
        }
    }

    pub fn delete_publication(&self, key: &PresKey, etag: &str) -> bool {
        match self
            .db
            .delete(&self.presentity, &publication_filter(key, etag))
        {
            Ok(_) => true,
            Err(e) => {
                log::error!(
                    "presence: cannot delete the publication of {}@{} (tried again later): {e}",
                    key.0,
                    key.1
                );
                false
            }
        }
    }

    fn sub_row(s: &Sub) -> Vec<(&'static str, Db)> {
        vec![
            ("presentity_uri", Db::Str(s.pres_uri.clone())),
            ("watcher_username", Db::Str(s.watcher_user.clone())),
            ("watcher_domain", Db::Str(s.watcher_domain.clone())),
            ("to_user", Db::Str(s.to_user.clone())),
            ("to_domain", Db::Str(s.to_domain.clone())),
            ("event", Db::Str(s.event.clone())),
            ("event_id", s.event_id.clone().map_or(Db::Null, Db::Str)),
            ("to_tag", Db::Str(s.to_tag.clone())),
            ("from_tag", Db::Str(s.from_tag.clone())),
            ("callid", Db::Str(s.callid.clone())),
            ("local_cseq", Db::Int(i64::from(s.local_cseq))),
            ("remote_cseq", Db::Int(i64::from(s.remote_cseq))),
            ("contact", Db::Str(s.contact.clone())),
            ("record_route", Db::Str(s.record_route.clone())),
            ("expires", Db::Int(s.expires)),
            ("status", Db::Int(s.status as i64)),
            ("reason", Db::Str(s.reason.clone())),
            ("version", Db::Int(i64::from(s.version))),
            ("socket_info", Db::Str(s.socket_info.clone())),
            ("local_contact", Db::Str(s.local_contact.clone())),
        ]
    }

    /// Writes what changed in the subscriptions and removes the rows of those gone. Returns
    /// false when the database could not take it (the flags stay for the next round).
    pub fn sync_subs(&self, subs: &mut [Sub], gone: &mut Vec<(String, String, String)>) -> bool {
        let mut ok = true;
        gone.retain(|(uri, event, to_tag)| {
            let filter = [
                ("presentity_uri", Db::Str(uri.clone())),
                ("event", Db::Str(event.clone())),
                ("to_tag", Db::Str(to_tag.clone())),
            ];
            match self.db.delete(&self.active_watchers, &filter) {
                Ok(_) => false,
                Err(e) => {
                    log::error!("presence: cannot delete a subscription of {uri}: {e}");
                    ok = false;
                    true
                }
            }
        });
        for s in subs.iter_mut() {
            let done = match s.db {
                DbFlag::None => continue,
                DbFlag::Insert => self.db.insert(&self.active_watchers, &Tables::sub_row(s)),
                DbFlag::Update => {
                    let filter = [
                        ("presentity_uri", Db::Str(s.pres_uri.clone())),
                        ("callid", Db::Str(s.callid.clone())),
                        ("to_tag", Db::Str(s.to_tag.clone())),
                        ("from_tag", Db::Str(s.from_tag.clone())),
                    ];
                    self.db
                        .update(&self.active_watchers, &filter, &Tables::sub_row(s))
                        .map(|_| ())
                }
            };
            match done {
                Ok(()) => s.db = DbFlag::None,
                Err(e) => {
                    log::error!(
                        "presence: cannot store a subscription of {}: {e}",
                        s.pres_uri
                    );
                    ok = false;
                }
            }
        }
        ok
    }

    /// The `watchers` row of a watcher: its status and reason, if any.
    pub fn watcher_status(
        &self,
        pres_uri: &str,
        user: &str,
        domain: &str,
        event: &str,
    ) -> Option<(Status, String)> {
        let filter = watcher_filter(pres_uri, user, domain, event);
        match self
            .db
            .query(&self.watchers, &["status", "reason"], &filter)
        {
            Ok(rows) => rows
                .first()
                .map(|r| (Status::of(int(r.first())), text(r.get(1)))),
            Err(e) => {
                log::error!("presence: cannot read {}: {e}", self.watchers);
                None
            }
        }
    }

    pub fn insert_watcher(
        &self,
        pres_uri: &str,
        (user, domain): (&str, &str),
        event: &str,
        (status, reason): (Status, &str),
        now: i64,
    ) {
        let mut row = watcher_filter(pres_uri, user, domain, event).to_vec();
        row.push(("status", Db::Int(status as i64)));
        row.push(("reason", Db::Str(reason.to_owned())));
        row.push(("inserted_time", Db::Int(now)));
        if let Err(e) = self.db.insert(&self.watchers, &row) {
            log::error!("presence: cannot store the watcher of {pres_uri}: {e}");
        }
    }

    /// A watcher's row after its authorization changed: updated, or deleted when it ends as
    /// `deactivated`.
    pub fn set_watcher(
        &self,
        pres_uri: &str,
        (user, domain): (&str, &str),
        event: &str,
        (status, reason): (Status, &str),
    ) {
        let filter = watcher_filter(pres_uri, user, domain, event);
        let done = if status == Status::Terminated && reason == "deactivated" {
            self.db.delete(&self.watchers, &filter)
        } else {
            self.db.update(
                &self.watchers,
                &filter,
                &[
                    ("status", Db::Int(status as i64)),
                    ("reason", Db::Str(reason.to_owned())),
                ],
            )
        };
        if let Err(e) = done {
            log::error!("presence: cannot update the watcher of {pres_uri}: {e}");
        }
    }
}

fn publication_filter(key: &PresKey, etag: &str) -> [(&'static str, Db); 4] {
    [
        ("username", Db::Str(key.0.clone())),
        ("domain", Db::Str(key.1.clone())),
        ("event", Db::Str(key.2.clone())),
        ("etag", Db::Str(etag.to_owned())),
    ]
}

fn watcher_filter(
    pres_uri: &str,
    user: &str,
    domain: &str,
    event: &str,
) -> [(&'static str, Db); 4] {
    [
        ("presentity_uri", Db::Str(pres_uri.to_owned())),
        ("watcher_username", Db::Str(user.to_owned())),
        ("watcher_domain", Db::Str(domain.to_owned())),
        ("event", Db::Str(event.to_owned())),
    ]
}
