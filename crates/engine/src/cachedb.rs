//! OpenSIPS' `cachedb_local`: an in-memory key-value store shared by every worker, reached
//! through the core `cache_*` functions with the engine id `local` (or `local:group`). Values
//! are text; counters are text holding a number. An expiry of 0 keeps a value for good.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::module::{ModuleSpec, ParamType};

/// The module itself: no script functions (the `cache_*` functions are core ones), its
/// parameters.
pub static CACHEDB_LOCAL: ModuleSpec = ModuleSpec {
    name: "cachedb_local",
    functions: &[],
    params: &[
        ("cachedb_url", ParamType::Str),
        ("cache_collections", ParamType::Str),
        ("cache_clean_period", ParamType::Int),
        ("enable_restart_persistency", ParamType::Int),
    ],
};

struct Entry {
    value: String,
    expires: Option<Instant>,
}

type Store = HashMap<(String, String), Entry>;

static STORE: LazyLock<Mutex<Store>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn store() -> MutexGuard<'static, Store> {
    STORE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether `id` names the local engine (`local`, `local:group`).
pub fn is_local(id: &str) -> bool {
    id == "local" || id.starts_with("local:")
}

fn key(id: &str, attr: &str) -> (String, String) {
    (id.to_owned(), attr.to_owned())
}

fn expiry(secs: i64) -> Option<Instant> {
    (secs > 0).then(|| Instant::now() + Duration::from_secs(secs.unsigned_abs()))
}

fn live(e: &Entry) -> bool {
    e.expires.is_none_or(|t| t > Instant::now())
}

/// `cache_store`: always 1.
pub fn put(id: &str, attr: &str, value: &str, expire: i64) -> i64 {
    store().insert(
        key(id, attr),
        Entry {
            value: value.to_owned(),
            expires: expiry(expire),
        },
    );
    1
}

/// `cache_remove`: 1, also when there was nothing to remove (as cachedb_local).
pub fn remove(id: &str, attr: &str) -> i64 {
    store().remove(&key(id, attr));
    1
}

/// `cache_fetch`: the value, `None` when absent or expired.
pub fn get(id: &str, attr: &str) -> Option<String> {
    let mut s = store();
    let k = key(id, attr);
    match s.get(&k) {
        Some(e) if live(e) => Some(e.value.clone()),
        Some(_) => {
            s.remove(&k);
            None
        }
        None => None,
    }
}

/// `cache_add` / `cache_sub`: the counter moved by `delta` (an absent one starts at 0; a
/// value that is not a number is an error, `None`); a positive `expire` sets a new expiry.
pub fn add(id: &str, attr: &str, delta: i64, expire: i64) -> Option<i64> {
    let mut s = store();
    let k = key(id, attr);
    let current = match s.get(&k) {
        Some(e) if live(e) => e.value.trim().parse::<i64>().ok()?,
        _ => 0,
    };
    let next = current.checked_add(delta)?;
    let expires = match s.get(&k) {
        Some(e) if live(e) && expire <= 0 => e.expires,
        _ => expiry(expire),
    };
    s.insert(
        k,
        Entry {
            value: next.to_string(),
            expires,
        },
    );
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_counters_and_expiry() {
        assert!(is_local("local") && is_local("local:grp") && !is_local("redis"));
        put("local:t", "a", "x", 0);
        assert_eq!(get("local:t", "a").as_deref(), Some("x"));
        assert_eq!(get("local:other", "a"), None, "groups are apart");
        assert_eq!(add("local:t", "n", 5, 0), Some(5));
        assert_eq!(add("local:t", "n", -2, 0), Some(3));
        assert_eq!(add("local:t", "a", 1, 0), None, "not a number");
        remove("local:t", "a");
        assert_eq!(get("local:t", "a"), None);
        store().insert(
            key("local:t", "old"),
            Entry {
                value: "v".into(),
                expires: Some(Instant::now() - Duration::from_secs(1)),
            },
        );
        assert_eq!(get("local:t", "old"), None, "expired");
    }
}
