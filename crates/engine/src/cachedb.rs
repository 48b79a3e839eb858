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
    functions: &[crate::module::FnSpec {
        name: "cache_remove_chunk",
        // `([collection,] glob)`: one argument is the glob.
        params: &[
            (crate::module::Param::Str, false),
            (crate::module::Param::Str, true),
        ],
        routes: crate::module::Routes::REQUEST
            .or(crate::module::Routes::ONREPLY)
            .or(crate::module::Routes::FAILURE)
            .or(crate::module::Routes::BRANCH)
            .or(crate::module::Routes::LOCAL)
            .or(crate::module::Routes::STARTUP),
        run: remove_chunk_f,
    }],
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

/// Removes the keys of collection `id` that match the shell pattern `glob`; how many.
pub fn remove_chunk(id: &str, glob: &str) -> usize {
    let mut s = store();
    let before = s.len();
    s.retain(|(i, attr), _| i != id || !crate::fnmatch(glob, attr));
    before - s.len()
}

/// `cache_remove_chunk([collection,] glob)`: the local keys matching `glob` go, from the
/// `local` engine's values (`local:collection`'s with a collection).
fn remove_chunk_f(_f: &mut crate::module::FnCtx<'_>, args: &[crate::Value]) -> i64 {
    let text = |i: usize| {
        args.get(i)
            .filter(|v| !v.is_null())
            .map(|v| v.to_text().into_owned())
    };
    let (collection, glob) = match (text(0), text(1)) {
        (c, Some(g)) => (c, g),
        (g, None) => (None, g.unwrap_or_default()),
    };
    let id = match collection {
        Some(c) if !c.is_empty() && c != "default" => format!("local:{c}"),
        _ => "local".to_owned(),
    };
    remove_chunk(&id, &glob);
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

/// The Redis servers of `cachedb_redis`, by collection (`redis`, `redis:<group>`).
static REDIS: std::sync::RwLock<Vec<std::sync::Arc<crate::redis::Client>>> =
    std::sync::RwLock::new(Vec::new());

/// The memcached groups of `cachedb_memcached`, by collection (`memcached[:<group>]`).
static MEMCACHED: std::sync::RwLock<Vec<std::sync::Arc<crate::memcached::Client>>> =
    std::sync::RwLock::new(Vec::new());

/// Reads the URLs of `cachedb_redis` and `cachedb_memcached` (connections open on first
/// use); a bad one stops the start.
pub fn configure(script: &crate::Script) -> Result<(), String> {
    configure_redis(script)?;
    if !script.loads("cachedb_memcached") {
        return Ok(());
    }
    let threshold = script
        .modparam_int("cachedb_memcached", "exec_threshold")
        .unwrap_or(0);
    let mut clients = Vec::new();
    for url in script.modparam_strs("cachedb_memcached", "cachedb_url") {
        let c = crate::memcached::Client::parse(url.trim(), threshold)
            .map_err(|e| format!("cachedb_memcached: {e}"))?;
        clients.push(std::sync::Arc::new(c));
    }
    if clients.is_empty() {
        return Err("cachedb_memcached: no cachedb_url".into());
    }
    *MEMCACHED
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = clients;
    Ok(())
}

fn configure_redis(script: &crate::Script) -> Result<(), String> {
    if !script.loads("cachedb_redis") {
        return Ok(());
    }
    let ms = |p: &str, d: i64| {
        Duration::from_millis(
            script
                .modparam_int("cachedb_redis", p)
                .filter(|v| *v > 0)
                .unwrap_or(d)
                .unsigned_abs(),
        )
    };
    let (connect, query) = (ms("connect_timeout", 5000), ms("query_timeout", 5000));
    let mut clients = Vec::new();
    for url in script.modparam_strs("cachedb_redis", "cachedb_url") {
        let c = crate::redis::Client::parse(url.trim(), connect, query)
            .map_err(|e| format!("cachedb_redis: {e}"))?;
        clients.push(std::sync::Arc::new(c));
    }
    if clients.is_empty() {
        return Err("cachedb_redis: no cachedb_url".into());
    }
    *REDIS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = clients;
    Ok(())
}

/// Where a collection's values live.
#[derive(Debug)]
pub enum Backend {
    Local,
    Redis(std::sync::Arc<crate::redis::Client>),
    Memcached(std::sync::Arc<crate::memcached::Client>),
}

/// The engine of collection `id` (`local[:x]` with cachedb_local loaded, `redis[:group]`
/// configured by cachedb_redis, `memcached[:group]` by cachedb_memcached); `None` when there
/// is none.
pub fn backend(id: &str, local_loaded: bool) -> Option<Backend> {
    if is_local(id) {
        return local_loaded.then_some(Backend::Local);
    }
    let redis = REDIS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .find(|c| c.id == id)
        .map(|c| Backend::Redis(std::sync::Arc::clone(c)));
    redis.or_else(|| {
        MEMCACHED
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|c| c.id == id)
            .map(|c| Backend::Memcached(std::sync::Arc::clone(c)))
    })
}

impl Backend {
    fn redis(c: &crate::redis::Client, cmd: &[&str]) -> Result<crate::redis::Reply, String> {
        match c.query(cmd) {
            Ok(crate::redis::Reply::Error(e)) => Err(format!("{}: {e}", c.id)),
            Ok(r) => Ok(r),
            Err(e) => Err(format!("{}: {e}", c.id)),
        }
    }

    /// `cache_store`: 1 stored, -1 an error (the reason given).
    pub fn store(&self, id: &str, attr: &str, value: &str, expire: i64) -> Result<i64, String> {
        match self {
            Backend::Local => Ok(put(id, attr, value, expire)),
            Backend::Redis(c) => {
                let secs = expire.to_string();
                let mut cmd = vec!["SET", attr, value];
                if expire > 0 {
                    cmd.extend(["EX", secs.as_str()]);
                }
                Backend::redis(c, &cmd).map(|_| 1)
            }
            Backend::Memcached(c) => c.store(attr, value, expire),
        }
    }

    /// `cache_remove`: 1 (also when there was nothing to remove).
    pub fn remove(&self, id: &str, attr: &str) -> Result<i64, String> {
        match self {
            Backend::Local => Ok(remove(id, attr)),
            Backend::Redis(c) => Backend::redis(c, &["DEL", attr]).map(|_| 1),
            Backend::Memcached(c) => c.remove(attr),
        }
    }

    /// `cache_fetch`: the value, `None` when absent.
    pub fn fetch(&self, id: &str, attr: &str) -> Result<Option<String>, String> {
        match self {
            Backend::Local => Ok(get(id, attr)),
            Backend::Redis(c) => match Backend::redis(c, &["GET", attr])? {
                crate::redis::Reply::Bulk(v) => Ok(v),
                crate::redis::Reply::Int(n) => Ok(Some(n.to_string())),
                other => Err(format!("{}: unexpected reply {other:?}", c.id)),
            },
            Backend::Memcached(c) => c.fetch(attr),
        }
    }

    /// `cache_raw_query`: the reply's values, in order (a nil reply has none). The query is
    /// split at blanks into the command and its arguments, as OpenSIPS passes it to Redis.
    pub fn raw(&self, query: &str) -> Result<Vec<crate::Value>, String> {
        match self {
            Backend::Local => Err("cachedb_local has no raw queries".into()),
            Backend::Memcached(_) => Err("cachedb_memcached has no raw queries".into()),
            Backend::Redis(c) => {
                let args: Vec<&str> = query.split_whitespace().collect();
                if args.is_empty() {
                    return Err("an empty raw query".into());
                }
                let mut out = Vec::new();
                flatten(Backend::redis(c, &args)?, &mut out);
                Ok(out)
            }
        }
    }

    /// `cache_add` / `cache_sub`: the counter after moving it by `delta`; a positive
    /// `expire` sets its expiry.
    pub fn add(&self, id: &str, attr: &str, delta: i64, expire: i64) -> Result<i64, String> {
        match self {
            Backend::Local => add(id, attr, delta, expire).ok_or_else(|| "not a counter".into()),
            Backend::Redis(c) => {
                let d = delta.to_string();
                let v = match Backend::redis(c, &["INCRBY", attr, &d])? {
                    crate::redis::Reply::Int(v) => v,
                    other => return Err(format!("{}: unexpected reply {other:?}", c.id)),
                };
                if expire > 0 {
                    Backend::redis(c, &["EXPIRE", attr, &expire.to_string()])?;
                }
                Ok(v)
            }
            Backend::Memcached(c) => c.add(attr, delta, expire),
        }
    }
}

/// A Redis reply as script values: arrays flattened in order, nil left out.
fn flatten(r: crate::redis::Reply, out: &mut Vec<crate::Value>) {
    use crate::redis::Reply;
    match r {
        Reply::Status(s) | Reply::Bulk(Some(s)) | Reply::Error(s) => {
            out.push(crate::Value::from(s))
        }
        Reply::Int(n) => out.push(crate::Value::Int(n)),
        Reply::Bulk(None) => {}
        Reply::Array(items) => {
            for i in items {
                flatten(i, out);
            }
        }
    }
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
