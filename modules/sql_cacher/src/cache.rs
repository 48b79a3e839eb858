//! One caching entry's rows in memory: the whole table (full caching, replaced at each
//! reload and dropped `full_caching_expire` seconds after it was read) or the rows asked for
//! so far (on demand, each kept `expire` seconds, a key the table lacks remembered as such).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use engine::Value;

use crate::spec::{KeyType, Spec};

/// A cached row: the entry's columns, in order.
pub type Row = Arc<[Value]>;

/// How database values become script values.
#[derive(Debug, Clone, Copy)]
pub struct Convert {
    /// `bigint_to_str`: an integer that does not fit 32 bits reads as a string.
    pub bigint_to_str: bool,
}

impl Convert {
    pub fn value(self, v: &db::Value) -> Value {
        match v {
            db::Value::Null => Value::Null,
            db::Value::Int(n) | db::Value::DateTime(n) => {
                if self.bigint_to_str && i32::try_from(*n).is_err() {
                    Value::from(n.to_string())
                } else {
                    Value::Int(*n)
                }
            }
            db::Value::Double(d) => Value::from(d.to_string()),
            db::Value::Str(s) => Value::str(s),
        }
    }
}

/// Why a read or a reload found nothing.
#[derive(Debug)]
pub enum Miss {
    /// The table has no row with that key.
    NotFound,
    /// The database failed (the message says how).
    Db(String),
}

/// What a key reads as in the cache: a row, or known to be absent from the table.
#[derive(Debug, Clone)]
struct Slot {
    row: Option<Row>,
    until: Option<Instant>,
}

impl Slot {
    fn live(&self, now: Instant) -> bool {
        self.until.is_none_or(|t| t > now)
    }
}

#[derive(Debug)]
enum Store {
    Full(RwLock<BTreeMap<String, Slot>>),
    OnDemand {
        rows: Mutex<HashMap<String, Slot>>,
        /// Keys being read from the database, so that workers asking for the same key at
        /// once wait for the first one's query instead of each running their own.
        loading: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    },
}

/// One `cache_table` entry, connected.
#[derive(Debug)]
pub struct Cache {
    pub spec: Spec,
    pub db: Arc<dyn db::Connection>,
    /// The cached columns (the spec's, or every column of the table).
    pub columns: Vec<String>,
    /// How long a row stays cached.
    ttl: Option<Duration>,
    convert: Convert,
    store: Store,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cache {
    /// An empty cache; `full_expire` is the lifetime of a fully cached table's rows.
    pub fn new(
        spec: Spec,
        db: Arc<dyn db::Connection>,
        columns: Vec<String>,
        full_expire: u64,
        convert: Convert,
    ) -> Cache {
        let secs = if spec.on_demand {
            spec.expire
        } else {
            full_expire
        };
        let store = if spec.on_demand {
            Store::OnDemand {
                rows: Mutex::default(),
                loading: Mutex::default(),
            }
        } else {
            Store::Full(RwLock::default())
        };
        Cache {
            spec,
            db,
            columns,
            ttl: (secs > 0).then(|| Duration::from_secs(secs)),
            convert,
            store,
        }
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    fn slot(&self, row: Option<Row>) -> Slot {
        Slot {
            row,
            until: self.ttl.map(|t| Instant::now() + t),
        }
    }

    /// The key as the cache stores it: the key column's value as text.
    fn key_text(v: &db::Value) -> Option<String> {
        match v {
            db::Value::Null => None,
            db::Value::Double(d) => Some((*d as i64).to_string()),
            v => v.as_text(),
        }
    }

    /// Reads the whole table into a fresh map (full caching); the map in use is replaced
    /// only once every row is read, so a failed reload keeps the rows cached before.
    pub fn load_all(&self) -> Result<usize, String> {
        let Store::Full(map) = &self.store else {
            return Ok(0);
        };
        let mut cols: Vec<&str> = vec![self.spec.key.as_str()];
        cols.extend(self.columns.iter().map(String::as_str));
        let rows = self
            .db
            .query(&self.spec.table, &cols, &[])
            .map_err(|e| e.to_string())?;
        let mut fresh = BTreeMap::new();
        for r in rows {
            let Some(key) = r.first().and_then(Cache::key_text) else {
                continue;
            };
            let row: Row = r.iter().skip(1).map(|v| self.convert.value(v)).collect();
            fresh.insert(key, self.slot(Some(row)));
        }
        let n = fresh.len();
        *map.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(n)
    }

    /// Queries the row of one key.
    fn query_key(&self, key: &str) -> Result<Option<Row>, String> {
        let value = match self.spec.key_type {
            KeyType::String => db::Value::Str(key.to_owned()),
            KeyType::Int => db::Value::Int(
                key.trim()
                    .parse()
                    .map_err(|_| format!("key `{key}` is not an integer (key_type=int)"))?,
            ),
        };
        let cols: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        let rows = self
            .db
            .query(&self.spec.table, &cols, &[(self.spec.key.as_str(), value)])
            .map_err(|e| e.to_string())?;
        match rows.as_slice() {
            [] => Ok(None),
            [r] => Ok(Some(r.iter().map(|v| self.convert.value(v)).collect())),
            _ => Err(format!("the query for key `{key}` returned several rows")),
        }
    }

    /// Queries one key and caches the answer (a row, or its absence).
    fn load_key(&self, key: &str) -> Result<Option<Row>, String> {
        let row = self.query_key(key)?;
        let slot = self.slot(row.clone());
        match &self.store {
            Store::Full(map) => {
                map.write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key.to_owned(), slot);
            }
            Store::OnDemand { rows, .. } => {
                lock(rows).insert(key.to_owned(), slot);
            }
        }
        Ok(row)
    }

    /// The cached answer for `key`: `None` when it is not cached (or expired).
    fn cached(&self, key: &str) -> Option<Option<Row>> {
        let now = Instant::now();
        match &self.store {
            Store::Full(map) => {
                let map = map.read().unwrap_or_else(PoisonError::into_inner);
                map.get(key).filter(|s| s.live(now)).map(|s| s.row.clone())
            }
            Store::OnDemand { rows, .. } => {
                let mut rows = lock(rows);
                match rows.get(key) {
                    Some(s) if s.live(now) => Some(s.row.clone()),
                    Some(_) => {
                        rows.remove(key);
                        None
                    }
                    None => None,
                }
            }
        }
    }

    /// The row of `key`: from memory, or (on demand) from the database the first time.
    pub fn get(&self, key: &str) -> Result<Row, Miss> {
        if let Some(hit) = self.cached(key) {
            return hit.ok_or(Miss::NotFound);
        }
        let Store::OnDemand { loading, .. } = &self.store else {
            return Err(Miss::NotFound);
        };
        let gate = Arc::clone(lock(loading).entry(key.to_owned()).or_default());
        let answer = {
            let _turn = lock(&gate);
            // Another worker may have read it while this one waited.
            match self.cached(key) {
                Some(hit) => Ok(hit),
                None => self.load_key(key),
            }
        };
        {
            let mut loading = lock(loading);
            if loading.get(key).is_some_and(|g| Arc::ptr_eq(g, &gate))
                && Arc::strong_count(&gate) <= 2
            {
                loading.remove(key);
            }
        }
        match answer {
            Ok(Some(row)) => Ok(row),
            Ok(None) => Err(Miss::NotFound),
            Err(e) => Err(Miss::Db(e)),
        }
    }

    /// MI reload of one key: queried again and cached (its absence too, which is reported).
    pub fn reload_key(&self, key: &str) -> Result<(), Miss> {
        match self.load_key(key) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Miss::NotFound),
            Err(e) => Err(Miss::Db(e)),
        }
    }

    /// MI reload without a key: the whole table again (full caching), or every cached key
    /// forgotten (on demand).
    pub fn reload(&self) -> Result<(), String> {
        match &self.store {
            Store::Full(_) => self.load_all().map(|_| ()),
            Store::OnDemand { rows, .. } => {
                lock(rows).clear();
                Ok(())
            }
        }
    }

    /// Every cached row still valid, by key.
    pub fn rows(&self) -> Vec<Row> {
        let now = Instant::now();
        match &self.store {
            Store::Full(map) => map
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .filter(|s| s.live(now))
                .filter_map(|s| s.row.clone())
                .collect(),
            Store::OnDemand { rows, .. } => {
                let rows = lock(rows);
                let mut live: Vec<(&String, &Slot)> =
                    rows.iter().filter(|(_, s)| s.live(now)).collect();
                live.sort_by(|a, b| a.0.cmp(b.0));
                live.into_iter()
                    .filter_map(|(_, s)| s.row.clone())
                    .collect()
            }
        }
    }

    pub fn is_full(&self) -> bool {
        matches!(self.store, Store::Full(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DEFAULT_ON_DEMAND_EXPIRE;

    fn text_db(dir: &std::path::Path, rows: &str) -> Arc<dyn db::Connection> {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("cnam"),
            format!("caller(string) name(string,null) score(int,null)\n{rows}"),
        )
        .unwrap();
        let settings = db::text::Settings {
            reread: true,
            ..Default::default()
        };
        db::text::open("text://t", dir, &settings)
    }

    fn spec(on_demand: bool) -> Spec {
        Spec {
            id: "cnam".into(),
            db_url: "text://t".into(),
            cachedb_url: "local://".into(),
            table: "cnam".into(),
            key: "caller".into(),
            key_type: KeyType::String,
            columns: None,
            on_demand,
            expire: DEFAULT_ON_DEMAND_EXPIRE,
        }
    }

    fn cache(dir: &std::path::Path, on_demand: bool) -> Cache {
        let db = text_db(dir, "alice:Alice A:7\nbob::\n");
        Cache::new(
            spec(on_demand),
            db,
            vec!["name".into(), "score".into()],
            60,
            Convert {
                bigint_to_str: false,
            },
        )
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rsips-sqlc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn full_caching_serves_from_memory_until_reloaded() {
        let d = dir("full");
        let c = cache(&d, false);
        assert_eq!(c.load_all().unwrap(), 2);
        let row = c.get("alice").unwrap();
        assert_eq!(&row[..], &[Value::str("Alice A"), Value::Int(7)]);
        assert_eq!(&c.get("bob").unwrap()[..], &[Value::Null, Value::Null]);
        assert!(matches!(c.get("carol"), Err(Miss::NotFound)));
        text_db(&d, "alice:Alice B:8\ncarol:Carol:1\n");
        assert_eq!(c.get("alice").unwrap()[1], Value::Int(7), "not reread yet");
        c.reload().unwrap();
        assert_eq!(c.get("alice").unwrap()[1], Value::Int(8));
        assert!(
            matches!(c.get("bob"), Err(Miss::NotFound)),
            "gone from the table"
        );
        assert_eq!(c.rows().len(), 2);
    }

    #[test]
    fn on_demand_reads_a_key_once() {
        let d = dir("od");
        let c = cache(&d, true);
        assert!(c.rows().is_empty());
        assert_eq!(c.get("alice").unwrap()[1], Value::Int(7));
        assert!(matches!(c.get("zed"), Err(Miss::NotFound)));
        text_db(&d, "alice:Alice B:8\nzed:Zed:0\n");
        assert_eq!(c.get("alice").unwrap()[1], Value::Int(7), "cached");
        assert!(
            matches!(c.get("zed"), Err(Miss::NotFound)),
            "absence cached"
        );
        c.reload_key("zed").unwrap();
        assert_eq!(c.get("zed").unwrap()[0], Value::str("Zed"));
        c.reload().unwrap();
        assert_eq!(c.get("alice").unwrap()[1], Value::Int(8));
    }

    /// A database that counts the queries it answers.
    #[derive(Debug)]
    struct Counting(Arc<dyn db::Connection>, std::sync::atomic::AtomicUsize);

    impl db::Connection for Counting {
        fn query(
            &self,
            table: &str,
            columns: &[&str],
            filter: &db::Filter<'_>,
        ) -> Result<Vec<Vec<db::Value>>, db::DbError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            self.0.query(table, columns, filter)
        }
        fn insert(&self, t: &str, v: &[(&str, db::Value)]) -> Result<(), db::DbError> {
            self.0.insert(t, v)
        }
        fn update(
            &self,
            t: &str,
            f: &db::Filter<'_>,
            s: &[(&str, db::Value)],
        ) -> Result<usize, db::DbError> {
            self.0.update(t, f, s)
        }
        fn delete(&self, t: &str, f: &db::Filter<'_>) -> Result<usize, db::DbError> {
            self.0.delete(t, f)
        }
        fn url(&self) -> &str {
            self.0.url()
        }
    }

    #[test]
    fn workers_asking_for_one_key_at_once_share_one_query() {
        let d = dir("gate");
        let counting = Arc::new(Counting(
            text_db(&d, "alice:Alice A:7\n"),
            Default::default(),
        ));
        let c = Arc::new(Cache::new(
            spec(true),
            Arc::clone(&counting) as Arc<dyn db::Connection>,
            vec!["name".into(), "score".into()],
            60,
            Convert {
                bigint_to_str: false,
            },
        ));
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || c.get("alice").map(|r| r[1].clone()).ok())
            })
            .collect();
        for r in readers {
            assert_eq!(r.join().unwrap(), Some(Value::Int(7)));
        }
        assert_eq!(counting.1.load(std::sync::atomic::Ordering::SeqCst), 1);
        let _ = c.get("alice");
        assert_eq!(counting.1.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn big_integers_may_read_as_strings() {
        let c = Convert {
            bigint_to_str: true,
        };
        assert_eq!(
            c.value(&db::Value::Int(5_000_000_000)),
            Value::str("5000000000")
        );
        assert_eq!(c.value(&db::Value::Int(5)), Value::Int(5));
        let c = Convert {
            bigint_to_str: false,
        };
        assert_eq!(
            c.value(&db::Value::Int(5_000_000_000)),
            Value::Int(5_000_000_000)
        );
    }
}
