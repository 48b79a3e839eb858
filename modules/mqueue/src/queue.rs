//! One memory queue: (key, value) pairs, oldest first, bounded or not, with OpenSIPS'
//! three ways of adding, and the definition a `modparam("mqueue", "mqueue", …)` line gives.

use std::collections::VecDeque;
use std::sync::Mutex;

/// How `mq_add` treats a key already queued (the `addmode` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddMode {
    /// 0: every pair goes to the end.
    Append,
    /// 1: a key already queued keeps its pair; the new one is dropped.
    KeepOldest,
    /// 2: a key already queued loses its pair; the new one goes to the end.
    KeepNewest,
}

/// A queue as a `mqueue` parameter defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    /// At most this many pairs (the oldest goes first); 0 or less: no limit.
    pub size: i64,
    pub addmode: AddMode,
    /// OpenSIPS' `dbmode` (0: no database).
    pub dbmode: i64,
}

impl Definition {
    /// Parses `name=q;size=20;addmode=1;dbmode=0` (one trailing `;` allowed; names of
    /// attributes are case-insensitive; `name` is required).
    pub fn parse(text: &str) -> Result<Definition, String> {
        let body = text.strip_suffix(';').unwrap_or(text);
        let (mut name, mut size, mut addmode, mut dbmode) = (None, 0, 0, 0);
        for part in body.split(';') {
            let (k, v) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (part.trim(), ""),
            };
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            let int = |what: &str| {
                v.parse::<i64>()
                    .map_err(|_| format!("`{what}` must be an integer, not `{v}`"))
            };
            match k.to_ascii_lowercase().as_str() {
                "name" => name = Some(v.to_owned()),
                "size" => size = int("size")?,
                "addmode" => addmode = int("addmode")?,
                "dbmode" => dbmode = int("dbmode")?,
                "" if v.is_empty() => {}
                other => return Err(format!("unknown attribute `{other}`")),
            }
        }
        let name = name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("no queue name in `{text}`"))?;
        // OpenSIPS adds as mode 0 for any value other than 1 and 2.
        let addmode = match addmode {
            1 => AddMode::KeepOldest,
            2 => AddMode::KeepNewest,
            _ => AddMode::Append,
        };
        Ok(Definition {
            name,
            size,
            addmode,
            dbmode,
        })
    }
}

/// A queue shared by every worker.
#[derive(Debug)]
pub struct Queue {
    pub def: Definition,
    items: Mutex<VecDeque<(String, String)>>,
}

impl Queue {
    pub fn new(def: Definition) -> Queue {
        Queue {
            def,
            items: Mutex::new(VecDeque::new()),
        }
    }

    fn items(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, String)>> {
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a pair as the queue's `addmode` says; past `size` the oldest pair is dropped.
    pub fn add(&self, key: &str, value: &str) {
        let mut items = self.items();
        if self.def.addmode != AddMode::Append
            && let Some(at) = items.iter().position(|(k, _)| k == key)
        {
            if self.def.addmode == AddMode::KeepOldest {
                return;
            }
            items.remove(at);
        }
        items.push_back((key.to_owned(), value.to_owned()));
        if self.def.size > 0 && items.len() as i64 > self.def.size {
            items.pop_front();
        }
    }

    /// Takes the oldest pair.
    pub fn fetch(&self) -> Option<(String, String)> {
        self.items().pop_front()
    }

    pub fn len(&self) -> usize {
        self.items().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(text: &str) -> Queue {
        Queue::new(Definition::parse(text).unwrap())
    }

    #[test]
    fn parses_definitions() {
        let d = Definition::parse("name=myq;size=20;").unwrap();
        assert_eq!(
            (d.name.as_str(), d.size, d.addmode),
            ("myq", 20, AddMode::Append)
        );
        let d = Definition::parse("NAME=q2; addmode=2").unwrap();
        assert_eq!((d.name.as_str(), d.addmode), ("q2", AddMode::KeepNewest));
        assert!(
            Definition::parse("size=3")
                .unwrap_err()
                .contains("no queue name")
        );
        assert!(
            Definition::parse("name=q;size=x")
                .unwrap_err()
                .contains("size")
        );
        assert!(
            Definition::parse("name=q;color=red")
                .unwrap_err()
                .contains("color")
        );
    }

    #[test]
    fn bounded_queue_drops_the_oldest() {
        let q = queue("name=q;size=2");
        for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
            q.add(k, v);
        }
        assert_eq!(q.len(), 2);
        assert_eq!(q.fetch(), Some(("b".into(), "2".into())));
        assert_eq!(q.fetch(), Some(("c".into(), "3".into())));
        assert_eq!(q.fetch(), None);
    }

    #[test]
    fn unbounded_and_add_modes() {
        let q = queue("name=q");
        for i in 0..100 {
            q.add("k", &i.to_string());
        }
        assert_eq!(q.len(), 100);

        let oldest = queue("name=q;addmode=1");
        oldest.add("k", "first");
        oldest.add("x", "other");
        oldest.add("k", "second");
        assert_eq!(oldest.fetch(), Some(("k".into(), "first".into())));
        assert_eq!(oldest.len(), 1);

        let newest = queue("name=q;addmode=2");
        newest.add("k", "first");
        newest.add("x", "other");
        newest.add("k", "second");
        assert_eq!(newest.fetch(), Some(("x".into(), "other".into())));
        assert_eq!(newest.fetch(), Some(("k".into(), "second".into())));
    }
}
