//! The destinations of the `load_balancer` table (version 3) and the choice among them: each
//! offers resources with a capacity (`pstn=32;transc=10`); a call takes one unit of each
//! resource it asks for on the destination it goes to, counted as the dialog's membership of
//! a profile per resource (valued with the destination's id), so a call's load goes away by
//! itself when its dialog ends.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use db::{Connection, Value as DbValue};

pub const TABLE_VERSION: i64 = 3;

/// One destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    pub id: i64,
    pub group: i64,
    pub uri: String,
    /// (resource, capacity).
    pub resources: Vec<(String, i64)>,
    /// 0 never probed, 1 probed while disabled, 2 always probed.
    pub probe_mode: i64,
    pub attrs: String,
    pub enabled: bool,
}

impl Dest {
    pub fn capacity(&self, res: &str) -> Option<i64> {
        self.resources
            .iter()
            .find(|(r, _)| r == res)
            .map(|(_, c)| *c)
    }

    /// (host, port) of its URI.
    pub fn host_port(&self) -> Option<(String, u16)> {
        let u = sip::Uri::parse(&self.uri).ok()?;
        let host = u
            .host()?
            .as_str()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        Some((host, u.port().unwrap_or(5060)))
    }
}

/// The dialog profile that counts a resource's calls.
pub fn profile(res: &str) -> String {
    format!("lb:{res}")
}

/// The calls a destination has for a resource now.
pub fn load(d: &Dest, res: &str) -> i64 {
    dialog::profile_size(&profile(res), Some(&d.id.to_string())) as i64
}

/// Parses `res1=max;res2=max`.
pub fn parse_resources(text: &str) -> Result<Vec<(String, i64)>, String> {
    let mut out = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, max) = part
            .split_once('=')
            .ok_or_else(|| format!("resource `{part}` has no `=capacity`"))?;
        let max = max.trim();
        if max.starts_with("fs://") || max.starts_with("fs:") {
            return Err(format!(
                "resource `{}`: FreeSWITCH-driven capacity (fs://) is not supported",
                name.trim()
            ));
        }
        let max: i64 = max.parse().map_err(|_| {
            format!(
                "resource `{}`: capacity `{max}` is not a number",
                name.trim()
            )
        })?;
        out.push((name.trim().to_owned(), max));
    }
    if out.is_empty() {
        return Err("no resources".into());
    }
    Ok(out)
}

/// Where the destinations come from, and the ones loaded last.
#[derive(Debug)]
pub struct Store {
    db: Arc<dyn Connection>,
    table: String,
    pub dests: RwLock<Vec<Dest>>,
}

static STORE: OnceLock<Store> = OnceLock::new();

pub fn store() -> Option<&'static Store> {
    STORE.get()
}

pub fn install(db: Arc<dyn Connection>, table: String) -> Result<usize, String> {
    let s = Store {
        db,
        table,
        dests: RwLock::new(Vec::new()),
    };
    let n = s.reload()?;
    let _ = STORE.set(s);
    Ok(n)
}

impl Store {
    /// Reads the table again; a destination keeps its enabled state by id. A table that
    /// cannot be read leaves the running set as it was.
    pub fn reload(&self) -> Result<usize, String> {
        let rows = self
            .db
            .query(
                &self.table,
                &[
                    "id",
                    "group_id",
                    "dst_uri",
                    "resources",
                    "probe_mode",
                    "attrs",
                ],
                &[],
            )
            .map_err(|e| format!("load_balancer: cannot read the destinations: {e}"))?;
        let mut dests = Vec::new();
        for r in rows {
            let get = |i: usize| r.get(i).cloned().unwrap_or(DbValue::Null);
            let id = get(0).as_int().unwrap_or(0);
            let uri = get(2).as_text().unwrap_or_default();
            if sip::Uri::parse(&uri).is_err() {
                log::error!("load_balancer: destination {id}: bad URI `{uri}`, skipped");
                continue;
            }
            let resources = match parse_resources(&get(3).as_text().unwrap_or_default()) {
                Ok(r) => r,
                Err(e) => {
                    log::error!("load_balancer: destination {id} ({uri}): {e}, skipped");
                    continue;
                }
            };
            dests.push(Dest {
                id,
                group: get(1).as_int().unwrap_or(0),
                uri,
                resources,
                probe_mode: get(4).as_int().unwrap_or(0),
                attrs: get(5).as_text().unwrap_or_default(),
                enabled: true,
            });
        }
        dests.sort_by_key(|d| d.id);
        let n = dests.len();
        // A destination keeps its state (taken under the write lock: a change made while the
        // table was read is not lost).
        let mut running = self.dests.write().unwrap_or_else(|e| e.into_inner());
        for d in &mut dests {
            if let Some(old) = running.iter().find(|o| o.id == d.id && o.uri == d.uri) {
                d.enabled = old.enabled;
            }
        }
        *running = dests;
        Ok(n)
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Dest>> {
        self.dests.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Dest>> {
        self.dests.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// How a choice is made (`lb_start` flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mode {
    /// `n`: a destination with no free capacity may still be chosen.
    pub negative: bool,
    /// `r`: free capacity as a share of the capacity, not a count.
    pub relative: bool,
    /// `s`: random among the destinations equally free.
    pub random: bool,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, String> {
        let mut m = Mode::default();
        for c in text.chars() {
            match c {
                'n' | 'N' => m.negative = true,
                'r' | 'R' => m.relative = true,
                's' | 'S' => m.random = true,
                c if c.is_whitespace() => {}
                c => return Err(format!("unknown load_balancer flag `{c}` (n, r, s)")),
            }
        }
        Ok(m)
    }
}

/// Why no destination was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPick {
    /// Destinations offer the resources, none has free capacity (-2).
    Full,
    /// No (enabled, untried) destination of the group offers them (-3).
    None,
}

/// The best destination of `group` for `resources`, leaving out `tried`.
pub fn pick(
    dests: &[Dest],
    group: i64,
    resources: &[String],
    mode: Mode,
    tried: &[i64],
    random: impl Fn(usize) -> usize,
) -> Result<Dest, NoPick> {
    let mut best: Vec<(&Dest, i64)> = Vec::new();
    for d in dests
        .iter()
        .filter(|d| d.group == group && d.enabled && !tried.contains(&d.id))
    {
        let mut free = i64::MAX;
        let mut offers = true;
        for res in resources {
            let Some(cap) = d.capacity(res) else {
                offers = false;
                break;
            };
            let left = cap.saturating_sub(load(d, res));
            let value = if mode.relative {
                if cap > 0 {
                    left.saturating_mul(100) / cap
                } else {
                    0
                }
            } else {
                left
            };
            free = free.min(value);
        }
        if !offers {
            continue;
        }
        match best.first() {
            Some((_, b)) if free < *b => {}
            Some((_, b)) if free == *b => best.push((d, free)),
            _ => best = vec![(d, free)],
        }
    }
    let Some((_, free)) = best.first() else {
        return Err(NoPick::None);
    };
    if *free <= 0 && !mode.negative {
        return Err(NoPick::Full);
    }
    let i = if mode.random && best.len() > 1 {
        random(best.len()) % best.len()
    } else {
        0
    };
    Ok(best[i].0.clone())
}

/// What `lb_start` chose for a call, for `lb_next` (by dialog id).
#[derive(Debug, Clone)]
pub struct Started {
    pub group: i64,
    pub resources: Vec<String>,
    pub mode: Mode,
    pub tried: Vec<i64>,
    pub current: Option<i64>,
}

pub fn started() -> MutexGuard<'static, std::collections::HashMap<u64, Started>> {
    static S: OnceLock<Mutex<std::collections::HashMap<u64, Started>>> = OnceLock::new();
    S.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Forgets the calls whose dialogs have ended (when the map has doubled since last time).
pub fn sweep() {
    static MARK: Mutex<usize> = Mutex::new(64);
    let ids: Vec<u64> = {
        let s = started();
        let mark = *MARK.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() < mark {
            return;
        }
        s.keys().copied().collect()
    };
    let dead: Vec<u64> = ids.into_iter().filter(|id| !dialog::is_live(*id)).collect();
    let mut s = started();
    for id in dead {
        s.remove(&id);
    }
    *MARK.lock().unwrap_or_else(|e| e.into_inner()) = (s.len() * 2).max(64);
}
