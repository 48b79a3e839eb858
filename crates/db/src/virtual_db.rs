//! OpenSIPS' `db_virtual`: a `virtual://set` URL stands for a set of real databases used in
//! one of three modes — FAILOVER (the first that works, in order), ROUND (round-robin, moving
//! on to the next when one fails) and PARALLEL (writes go to every database that works and
//! succeed when one does; reads are answered by the first that works). A database that fails
//! is marked down and its connection dropped; it is tried again once `db_probe_time` has
//! passed (no separate probe process: the next operation after that tries it), and used again
//! as soon as it answers. When every database of a set is down, each is tried anyway.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::{Connection, DbError, Filter, Options, Value};

/// How a set uses its databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Failover,
    Parallel,
    Round,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Failover => "FAILOVER",
            Mode::Parallel => "PARALLEL",
            Mode::Round => "ROUND",
        }
    }
}

#[derive(Debug)]
struct Member {
    url: String,
    conn: Mutex<Option<Arc<dyn Connection>>>,
    /// When it last failed; `None`: usable.
    down_since: Mutex<Option<Instant>>,
    /// `db_virtual:set … 0`: the operator took it out of use.
    barred: std::sync::atomic::AtomicBool,
}

/// One set: its databases and how it uses them.
#[derive(Debug)]
pub struct Set {
    name: String,
    mode: Mode,
    members: Vec<Member>,
    next: AtomicUsize,
    probe: Duration,
    options: Options,
}

static SETS: RwLock<Vec<Arc<Set>>> = RwLock::new(Vec::new());

/// The sets `db_virtual`'s `db_urls` declare: `define NAME MODE` lines, each followed by the
/// real URLs of that set. `Err` names what is wrong.
pub fn configure(lines: &[String], probe: Duration, options: &Options) -> Result<(), String> {
    let mut sets: Vec<Set> = Vec::new();
    for line in lines.iter().map(|l| l.trim()) {
        if let Some(def) = line.strip_prefix("define ") {
            let mut words = def.split_whitespace();
            let (Some(name), Some(mode), None) = (words.next(), words.next(), words.next()) else {
                return Err(format!("db_urls \"{line}\": expected `define NAME MODE`"));
            };
            let mode = match mode.to_ascii_uppercase().as_str() {
                "FAILOVER" => Mode::Failover,
                "PARALLEL" => Mode::Parallel,
                "ROUND" => Mode::Round,
                other => {
                    return Err(format!(
                        "db_urls \"{line}\": unknown mode {other} (FAILOVER, PARALLEL, ROUND)"
                    ));
                }
            };
            if sets.iter().any(|s| s.name == name) {
                return Err(format!("db_urls: set `{name}` is defined twice"));
            }
            sets.push(Set {
                name: name.to_owned(),
                mode,
                members: Vec::new(),
                next: AtomicUsize::new(0),
                probe,
                options: options.clone(),
            });
            continue;
        }
        let Some(set) = sets.last_mut() else {
            return Err(format!("db_urls \"{line}\": a URL before any `define`"));
        };
        if !line.contains("://") || line.starts_with("virtual://") {
            return Err(format!(
                "db_urls \"{}\": not a real database URL",
                crate::redact(line)
            ));
        }
        set.members.push(Member {
            url: line.to_owned(),
            conn: Mutex::default(),
            down_since: Mutex::default(),
            barred: std::sync::atomic::AtomicBool::new(false),
        });
    }
    if let Some(empty) = sets.iter().find(|s| s.members.is_empty()) {
        return Err(format!("db_urls: set `{}` has no database", empty.name));
    }
    *SETS.write().unwrap_or_else(PoisonError::into_inner) =
        sets.into_iter().map(Arc::new).collect();
    Ok(())
}

/// The real URLs of every set (their drivers must be loaded).
pub fn member_urls() -> Vec<String> {
    SETS.read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .flat_map(|s| s.members.iter().map(|m| m.url.clone()))
        .collect()
}

/// The connection a `virtual://NAME` URL opens.
pub(crate) fn open(url: &str, name: &str) -> Result<Arc<dyn Connection>, DbError> {
    let set = SETS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|s| s.name == name)
        .cloned()
        .ok_or_else(|| DbError::BadUrl(format!("{url} (no db_virtual set `{name}`)")))?;
    Ok(Arc::new(Virtual {
        url: url.to_owned(),
        set,
    }))
}

/// A set as `db_virtual:get` shows it: its name, mode, and each database (URL without its
/// password, usable, allowed).
pub type SetState = (String, &'static str, Vec<(String, bool, bool)>);

/// `db_virtual:get`: each set with its mode and each database's state.
pub fn state() -> Vec<SetState> {
    SETS.read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.mode.name(),
                s.members
                    .iter()
                    .map(|m| {
                        (
                            crate::redact(&m.url),
                            m.usable(Duration::MAX),
                            !m.barred.load(Ordering::Relaxed),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

/// `db_virtual:set`: whether database `db` of set `set` (indexes from 0, in `db_urls` order)
/// may be used; a database allowed again is also tried at once (its failure forgotten).
/// `Err`: there is no such set or database.
pub fn set_allowed(set: usize, db: usize, allowed: bool) -> Result<(), String> {
    let sets = SETS.read().unwrap_or_else(PoisonError::into_inner);
    let s = sets.get(set).ok_or_else(|| format!("no set {set}"))?;
    let m = s
        .members
        .get(db)
        .ok_or_else(|| format!("no database {db} in set {}", s.name))?;
    m.barred.store(!allowed, Ordering::Relaxed);
    if allowed {
        *m.down_since.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
    Ok(())
}

impl Member {
    /// Not down, or down for longer than `probe` (worth a try).
    fn usable(&self, probe: Duration) -> bool {
        self.down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|t| t.elapsed() >= probe)
    }

    fn is_up(&self) -> bool {
        self.down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    fn connection(&self, options: &Options) -> Result<Arc<dyn Connection>, DbError> {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = slot.as_ref() {
            return Ok(Arc::clone(c));
        }
        let c = crate::connect(&self.url, options)?;
        *slot = Some(Arc::clone(&c));
        Ok(c)
    }

    fn failed(&self, e: &DbError) {
        let was_up = self.is_up();
        *self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = None;
        if was_up {
            log::error!("db_virtual: {} is down: {e}", crate::redact(&self.url));
        }
    }

    fn worked(&self) {
        let mut down = self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if down.take().is_some() {
            log::warn!("db_virtual: {} is back", crate::redact(&self.url));
        }
    }
}

/// A connection to a set.
#[derive(Debug)]
struct Virtual {
    url: String,
    set: Arc<Set>,
}

impl Virtual {
    /// The members in the order this operation tries them: those worth trying first, the
    /// others (all down) after, so that a set whose databases are all down still tries.
    fn order(&self) -> Vec<&Member> {
        let n = self.set.members.len();
        let start = match self.set.mode {
            Mode::Round => self.set.next.fetch_add(1, Ordering::Relaxed) % n,
            _ => 0,
        };
        let rotated = (0..n)
            .map(|i| &self.set.members[(start + i) % n])
            .filter(|m| !m.barred.load(Ordering::Relaxed));
        let (mut ready, down): (Vec<&Member>, Vec<&Member>) =
            rotated.partition(|m| m.usable(self.set.probe));
        ready.extend(down);
        ready
    }

    /// The operation on the first database that does it.
    fn first<T>(&self, op: impl Fn(&dyn Connection) -> Result<T, DbError>) -> Result<T, DbError> {
        let mut last = None;
        for m in self.order() {
            let r = m.connection(&self.set.options).and_then(|c| op(&*c));
            match r {
                Ok(v) => {
                    m.worked();
                    return Ok(v);
                }
                // A query that is wrong is wrong on every database: not the database's fault.
                Err(e) if e.is_permanent() => return Err(e),
                Err(e) => {
                    m.failed(&e);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| DbError::BadUrl(self.url.clone())))
    }

    /// A write: on every database (PARALLEL; the first result counts) or the first that does
    /// it.
    fn write<T>(&self, op: impl Fn(&dyn Connection) -> Result<T, DbError>) -> Result<T, DbError> {
        if self.set.mode != Mode::Parallel {
            return self.first(op);
        }
        let mut done = None;
        let mut last = None;
        for m in self.order() {
            match m.connection(&self.set.options).and_then(|c| op(&*c)) {
                Ok(v) => {
                    m.worked();
                    if done.is_none() {
                        done = Some(v);
                    }
                }
                Err(e) if e.is_permanent() => last = Some(e),
                Err(e) => {
                    m.failed(&e);
                    last = Some(e);
                }
            }
        }
        match done {
            Some(v) => Ok(v),
            None => Err(last.unwrap_or_else(|| DbError::BadUrl(self.url.clone()))),
        }
    }
}

impl Connection for Virtual {
    fn query(
        &self,
        table: &str,
        columns: &[&str],
        filter: &Filter<'_>,
    ) -> Result<Vec<Vec<Value>>, DbError> {
        self.first(|c| c.query(table, columns, filter))
    }

    fn insert(&self, table: &str, values: &[(&str, Value)]) -> Result<(), DbError> {
        self.write(|c| c.insert(table, values))
    }

    fn update(
        &self,
        table: &str,
        filter: &Filter<'_>,
        set: &[(&str, Value)],
    ) -> Result<usize, DbError> {
        self.write(|c| c.update(table, filter, set))
    }

    fn delete(&self, table: &str, filter: &Filter<'_>) -> Result<usize, DbError> {
        self.write(|c| c.delete(table, filter))
    }

    fn url(&self) -> &str {
        &self.url
    }

    fn raw(&self, sql: &str) -> Result<Option<Vec<Vec<Value>>>, DbError> {
        self.write(|c| c.raw(sql))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_db(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("rsips-dbv-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("t"), "id(int,auto) v(str)\n").unwrap();
        format!("text://{}", dir.display())
    }

    fn values(url: &str) -> Vec<String> {
        let c = crate::connect(url, &Options::default()).unwrap();
        let mut v: Vec<String> = c
            .query("t", &["v"], &[])
            .unwrap()
            .into_iter()
            .filter_map(|r| r[0].as_text())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_three_modes() {
        let (a, b, c, d) = (text_db("a"), text_db("b"), text_db("c"), text_db("d"));
        // Nothing listens on port 1: that MySQL server is down.
        let down = "mysql://u:p@127.0.0.1:1/x".to_owned();
        let lines: Vec<String> = [
            "define fo FAILOVER",
            &down,
            &a,
            "define rr ROUND",
            &b,
            &c,
            "define par PARALLEL",
            &c,
            &d,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        configure(&lines, Duration::from_secs(60), &Options::default()).unwrap();
        let opts = Options::default();
        let fo = crate::connect("virtual://fo", &opts).unwrap();
        fo.insert("t", &[("v", Value::Str("one".into()))]).unwrap();
        assert_eq!(
            values(&a),
            ["one"],
            "the first database is down: the next one"
        );
        let st = state();
        assert!(!st[0].2[0].1 && st[0].2[0].2, "marked down, still allowed");
        assert!(st[0].2[0].0.contains("u:***@"), "passwords hidden");
        assert_eq!(fo.query("t", &["v"], &[]).unwrap().len(), 1);
        // Round robin: each write to the next database.
        let rr = crate::connect("virtual://rr", &opts).unwrap();
        for v in ["r1", "r2", "r3"] {
            rr.insert("t", &[("v", Value::Str(v.into()))]).unwrap();
        }
        let (in_b, in_c) = (values(&b), values(&c));
        assert_eq!(in_b.len() + in_c.len(), 3);
        assert!(!in_b.is_empty() && !in_c.is_empty(), "{in_b:?} {in_c:?}");
        // Parallel: a write reaches both.
        let par = crate::connect("virtual://par", &opts).unwrap();
        par.insert("t", &[("v", Value::Str("p".into()))]).unwrap();
        assert!(values(&c).contains(&"p".to_owned()));
        assert_eq!(values(&d), ["p"]);
        // A mistake in the query is not the database's fault: nobody is marked down.
        assert!(par.query("nosuch", &["v"], &[]).is_err());
        assert!(state()[2].2.iter().all(|(_, up, _)| *up));
        // An operator takes the first PARALLEL database out of use: writes reach the other.
        set_allowed(2, 0, false).unwrap();
        par.insert("t", &[("v", Value::Str("q".into()))]).unwrap();
        assert!(!values(&c).contains(&"q".to_owned()));
        assert!(values(&d).contains(&"q".to_owned()));
        assert!(!state()[2].2[0].2);
        set_allowed(2, 0, true).unwrap();
        assert!(set_allowed(9, 0, true).is_err() && set_allowed(2, 9, true).is_err());
        // Unknown sets and bad definitions are refused.
        assert!(crate::connect("virtual://nosuch", &opts).is_err());
        for bad in [
            vec!["text:///x"],
            vec!["define s SOMETIMES", "text:///x"],
            vec!["define s FAILOVER"],
            vec!["define s FAILOVER", "virtual://s"],
        ] {
            let lines: Vec<String> = bad.iter().map(|s| (*s).to_owned()).collect();
            assert!(
                configure(&lines, Duration::from_secs(1), &opts).is_err(),
                "{bad:?}"
            );
        }
    }
}
