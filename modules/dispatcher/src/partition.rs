//! Partitions (a table of destination sets from one database, with its own AVP names), the
//! module's settings, loading the sets from the table and reloading them, and state changes
//! written back to the table (`persistent_state`).

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use db::{Connection, Value as DbValue};
use engine::Script;

use crate::sets::{Dest, Sets};

/// The version of the `dispatcher` table this module reads (OpenSIPS 4.0's).
pub const TABLE_VERSION: i64 = 9;

/// Parameters rsips does not implement: refused at their modparam line rather than ignored.
pub static UNSUPPORTED: engine::ParamCheck = engine::ParamCheck {
    what: "dispatcher parameter",
    check: |_| {
        Err(
            "rsips' dispatcher has no algorithms 9 (pvar_algo_pattern) and 10 (algo_route) \
             nor setid_pvar yet"
                .into(),
        )
    },
};

/// The table's column names (the `*_col` parameters).
#[derive(Debug, Clone)]
pub struct Columns {
    pub setid: String,
    pub destination: String,
    pub state: String,
    pub weight: String,
    pub priority: String,
    pub attrs: String,
    pub socket: String,
    pub probe_mode: String,
    pub description: String,
}

impl Columns {
    /// The `*_col` parameters, with OpenSIPS' defaults.
    fn of(script: &Script) -> Columns {
        let col = |n: &str, default: &str| {
            script
                .modparam_str("dispatcher", n)
                .unwrap_or_else(|| default.to_owned())
        };
        Columns {
            setid: col("setid_col", "setid"),
            destination: col("destination_col", "destination"),
            state: col("state_col", "state"),
            weight: col("weight_col", "weight"),
            priority: col("priority_col", "priority"),
            attrs: col("attrs_col", "attrs"),
            socket: col("socket_col", "socket"),
            probe_mode: col("probe_mode_col", "probe_mode"),
            description: col("description_col", "description"),
        }
    }
}

/// The AVP names a partition's selections keep their state in.
#[derive(Debug, Clone)]
pub struct Avps {
    pub dst: String,
    pub grp: String,
    pub cnt: String,
    pub sock: String,
    pub attrs: Option<String>,
    pub script_attrs: Option<String>,
}

/// The module-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub persistent_state: bool,
    pub probing_threshold: u32,
    /// `ds_probing_mode` 1: probe every destination, not only those probing.
    pub probe_all: bool,
    /// `ds_ping_interval` in seconds (0: no probing).
    pub ping_interval: u64,
    pub ping_method: String,
    pub ping_from: String,
    pub ping_maxfwd: Option<u32>,
    pub probing_sock: Option<String>,
    /// `ds_probing_list`: the sets probed (empty: all).
    pub probing_list: Vec<i64>,
    /// `options_reply_codes`: replies besides 200 that count as alive.
    pub reply_codes: Vec<u16>,
    /// `hash_pvar`: the format string algorithm 7 hashes.
    pub hash_pvar: Option<String>,
}

impl Settings {
    pub fn of(script: &Script) -> Settings {
        let int = |n: &str| script.modparam_int("dispatcher", n);
        let text = |n: &str| script.modparam_str("dispatcher", n);
        let list = |n: &str| -> Vec<i64> {
            text(n)
                .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
                .unwrap_or_default()
        };
        Settings {
            persistent_state: int("persistent_state").is_none_or(|n| n != 0),
            probing_threshold: int("ds_probing_threshold")
                .or_else(|| int("ds_probing_threshhold"))
                .map_or(3, |n| u32::try_from(n.max(1)).unwrap_or(u32::MAX)),
            probe_all: int("ds_probing_mode") == Some(1),
            ping_interval: int("ds_ping_interval").map_or(0, |n| u64::try_from(n).unwrap_or(0)),
            ping_method: text("ds_ping_method").unwrap_or_else(|| "OPTIONS".into()),
            ping_from: text("ds_ping_from").unwrap_or_else(|| "sip:dispatcher@localhost".into()),
            ping_maxfwd: int("ds_ping_maxfwd").and_then(|n| u32::try_from(n).ok()),
            probing_sock: text("ds_probing_sock"),
            probing_list: list("ds_probing_list"),
            reply_codes: list("options_reply_codes")
                .into_iter()
                .filter_map(|c| u16::try_from(c).ok())
                .collect(),
            hash_pvar: text("hash_pvar"),
        }
    }
}

/// One partition: where its sets come from, the AVPs it uses, and the sets themselves.
#[derive(Debug)]
pub struct Partition {
    pub name: String,
    pub db_url: String,
    pub table: String,
    pub columns: Columns,
    pub avps: Avps,
    pub ping_from: Option<String>,
    pub ping_method: Option<String>,
    pub probing_sock: Option<String>,
    db: Arc<dyn Connection>,
    sets: Mutex<Sets>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Partition {
    /// The sets, locked (selection updates round-robin positions and counters).
    pub fn sets(&self) -> MutexGuard<'_, Sets> {
        lock(&self.sets)
    }

    /// Reads the table again and swaps in the new sets; with `inherit`, destinations that
    /// stay keep their state and counters. A failed read leaves the sets as they were.
    pub fn reload(&self, settings: &Settings, inherit: bool) -> Result<usize, String> {
        let mut fresh = self.load(settings)?;
        let mut sets = self.sets();
        if inherit {
            fresh.inherit(&sets);
        }
        let n = fresh.sets.iter().map(|s| s.dests.len()).sum();
        *sets = fresh;
        Ok(n)
    }

    /// The sets the table holds now.
    fn load(&self, settings: &Settings) -> Result<Sets, String> {
        let fail = |e: db::DbError| format!("dispatcher partition \"{}\": {e}", self.name);
        db::check_version(self.db.as_ref(), &self.table, TABLE_VERSION).map_err(fail)?;
        let c = &self.columns;
        let rows = self
            .db
            .query(
                &self.table,
                &[
                    &c.setid,
                    &c.destination,
                    &c.socket,
                    &c.weight,
                    &c.attrs,
                    &c.priority,
                    &c.description,
                    &c.probe_mode,
                    &c.state,
                ],
                &[],
            )
            .map_err(fail)?;
        let mut sets = Sets::default();
        for row in rows {
            match dest_of(&row, settings.persistent_state) {
                Ok((set, d)) => sets.add(set, d),
                Err(e) => log::error!(
                    "dispatcher partition \"{}\", table {}: {e}; row skipped",
                    self.name,
                    self.table
                ),
            }
        }
        Ok(sets)
    }

    /// Changes a destination's state as `to` says; false when set `set` has no `uri`. The
    /// new state is written to the table with `persistent_state`.
    /// `E_DISPATCHER_STATUS` is raised for a change, with `reason`.
    pub fn set_state(
        &self,
        settings: &Settings,
        set: i64,
        uri: &str,
        to: NewState,
        reason: &str,
    ) -> bool {
        let changed = {
            let mut sets = self.sets();
            let Some(d) = sets.dest_mut(set, uri) else {
                return false;
            };
            let before = (d.inactive, d.probing);
            apply(d, to, settings.probing_threshold);
            let after = (d.inactive, d.probing);
            (before != after).then(|| (d.uri.clone(), after))
        };
        if let Some((uri, (inactive, probing))) = changed {
            let state = if inactive { 1 } else { i64::from(probing) * 2 };
            log::info!(
                "dispatcher: destination {uri} of set {set} is now {}",
                ["active", "inactive", "probing"][state as usize]
            );
            raise_status(&self.name, set, &uri, !(inactive || probing), reason);
            if settings.persistent_state {
                let c = &self.columns;
                if let Err(e) = self.db.update(
                    &self.table,
                    &[
                        (c.setid.as_str(), DbValue::Int(set)),
                        (c.destination.as_str(), DbValue::Str(uri)),
                    ],
                    &[(c.state.as_str(), DbValue::Int(state))],
                ) {
                    log::error!("dispatcher: cannot store the state: {e}");
                }
            }
        }
        true
    }
}

/// `E_DISPATCHER_STATUS`: `partition` (only for another than the default one), `group`,
/// `address`, `status` ("active", or "inactive" for inactive and probing alike) and `reason`.
fn raise_status(partition: &str, set: i64, address: &str, active: bool, reason: &str) {
    use engine::Value;
    let mut params = Vec::new();
    if partition != "default" {
        params.push((
            Some("partition".to_owned()),
            Value::from(partition.to_owned()),
        ));
    }
    params.push((Some("group".to_owned()), Value::Int(set)));
    params.push((Some("address".to_owned()), Value::from(address.to_owned())));
    params.push((
        Some("status".to_owned()),
        Value::from(if active { "active" } else { "inactive" }),
    ));
    params.push((Some("reason".to_owned()), Value::from(reason.to_owned())));
    engine::hooks::raise_event("E_DISPATCHER_STATUS", params);
}

/// What a state change asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewState {
    /// Active again, failures forgotten (a probe answered, MI "a", `ds_mark_dst("a")`).
    Active,
    /// Disabled.
    Inactive,
    /// Probing: at once (MI), or after `ds_probing_threshold` failures (`counted`).
    Probing { counted: bool },
}

impl NewState {
    /// The state letter or digit the MI and `ds_mark_dst` take.
    pub fn parse(s: &str) -> Option<NewState> {
        match s.trim().chars().next()? {
            'a' | 'A' | '1' => Some(NewState::Active),
            'i' | 'I' | '0' => Some(NewState::Inactive),
            'p' | 'P' | '2' => Some(NewState::Probing { counted: false }),
            _ => None,
        }
    }
}

fn apply(d: &mut Dest, to: NewState, threshold: u32) {
    match to {
        NewState::Active => {
            d.inactive = false;
            d.probing = false;
            d.failures = 0;
        }
        NewState::Inactive => {
            d.inactive = true;
            d.probing = false;
        }
        NewState::Probing { counted } => {
            if counted {
                // An inactive destination stays so; failures count up to the threshold.
                if d.inactive {
                    return;
                }
                d.failures = (d.failures + 1).min(threshold);
                if d.failures < threshold {
                    return;
                }
            }
            d.probing = true;
            d.inactive = false;
        }
    }
}

/// One row as a destination: (set id, destination).
fn dest_of(row: &[DbValue], persistent_state: bool) -> Result<(i64, Dest), String> {
    let text = |i: usize| {
        row.get(i)
            .and_then(DbValue::as_text)
            .filter(|s| !s.is_empty())
    };
    let int = |i: usize| row.get(i).and_then(DbValue::as_int);
    let set = int(0).ok_or("the set id is NULL")?;
    let uri = text(1).ok_or("the destination is empty")?;
    if sip::Uri::parse(&uri).is_err() {
        return Err(format!("destination \"{uri}\" is not a SIP URI"));
    }
    let mut d = Dest::new(&uri);
    d.socket = text(2).map(|s| s.to_ascii_lowercase());
    d.weight = match text(3) {
        None => 1,
        Some(w) => w
            .trim()
            .parse()
            .map_err(|_| format!("weight \"{w}\" of {uri} is not a number"))?,
    };
    d.attrs = text(4);
    d.priority = int(5).unwrap_or(0);
    d.description = text(6);
    d.always_probe = int(7) == Some(1);
    match if persistent_state {
        int(8).unwrap_or(0)
    } else {
        0
    } {
        0 => {}
        1 => d.inactive = true,
        2 => d.probing = true,
        s => return Err(format!("state {s} of {uri} is not 0, 1 or 2")),
    }
    d.addrs = crate::sets::resolve(&uri);
    if d.addrs.is_empty() {
        log::error!("dispatcher: could not resolve {uri}");
    }
    Ok((set, d))
}

/// The partitions loaded at start (the default one first).
fn registry() -> &'static RwLock<Vec<Arc<Partition>>> {
    static ALL: OnceLock<RwLock<Vec<Arc<Partition>>>> = OnceLock::new();
    ALL.get_or_init(RwLock::default)
}

/// Every partition.
pub fn partitions() -> Vec<Arc<Partition>> {
    registry()
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// The partition called `name` (`None` or empty: "default").
pub fn partition(name: Option<&str>) -> Option<Arc<Partition>> {
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    partitions().into_iter().find(|p| p.name == name)
}

/// The partitions the script defines: `default` from the plain parameters (when `db_url` is
/// set), and one per `partition` parameter (`"name: db_url = …; table_name = …"`; a
/// `"default: other"` line makes `other` the default one).
/// A partition's name and its `param = value` pairs.
type Definition = (String, Vec<(String, String)>);

fn definitions(script: &Script) -> Result<Vec<Definition>, String> {
    let mut defs: Vec<Definition> = Vec::new();
    let plain = [
        "db_url",
        "table_name",
        "dst_avp",
        "grp_avp",
        "cnt_avp",
        "sock_avp",
        "attrs_avp",
        "script_attrs_avp",
        "ds_ping_from",
        "ds_ping_method",
        "ds_probing_sock",
    ]
    .iter()
    .filter_map(|k| Some(((*k).to_owned(), script.modparam_str("dispatcher", k)?)))
    .collect::<Vec<_>>();
    if plain.iter().any(|(k, _)| k == "db_url") {
        defs.push(("default".into(), plain.clone()));
    }
    let mut alias = None;
    for text in script.modparam_strs("dispatcher", "partition") {
        let (name, rest) = text.split_once(':').ok_or_else(|| {
            format!("dispatcher partition \"{text}\": expected \"name: param = value; …\"")
        })?;
        let name = name.trim().to_owned();
        if name == "default" && !rest.contains('=') {
            alias = Some(rest.trim().to_owned());
            continue;
        }
        let mut params = Vec::new();
        for kv in rest.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                format!("dispatcher partition \"{name}\": \"{kv}\" is not param = value")
            })?;
            let k = match k.trim() {
                "script_attrs" => "script_attrs_avp",
                k => k,
            };
            params.push((k.to_owned(), v.trim().to_owned()));
        }
        if !params.iter().any(|(k, _)| k == "db_url")
            && let Some(url) = script.modparam_str("dispatcher", "db_url")
        {
            params.push(("db_url".into(), url));
        }
        defs.retain(|(n, _)| *n != name);
        defs.push((name, params));
    }
    if let Some(target) = alias {
        let i = defs.iter().position(|(n, _)| *n == target).ok_or_else(|| {
            format!("dispatcher: partition \"default: {target}\" names no partition")
        })?;
        defs.retain(|(n, _)| n != "default");
        let i = i.min(defs.len().saturating_sub(1));
        defs[i].0 = "default".into();
    }
    Ok(defs)
}

/// Opens every partition's database and loads its sets, as the module does when OpenSIPS
/// starts: a database that cannot be read stops the start with the reason.
pub fn start(script: &Script, db_options: &db::Options) -> Result<(), String> {
    if !script.loads("dispatcher") {
        return Ok(());
    }
    let defs = definitions(script)?;
    if defs.is_empty() {
        return Err(
            "dispatcher: no db_url and no partition: the module has nowhere to load its \
                    destinations from (set modparam(\"dispatcher\", \"db_url\", \"text:///dir\"))"
                .into(),
        );
    }
    let mut loaded = Vec::new();
    for def in &defs {
        let p = open(script, def, db_options)?;
        log::info!(
            "dispatcher partition \"{}\": {} destinations loaded from {}",
            p.name,
            p.sets().sets.iter().map(|s| s.dests.len()).sum::<usize>(),
            db::redact(&p.db_url)
        );
        loaded.push(Arc::new(p));
    }
    loaded.sort_by_key(|p| p.name != "default");
    *registry()
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
    Ok(())
}

/// Opens and loads the partition `name` the script defines, on its own (not one the script
/// functions see: [`start`] installs those).
pub fn open_partition(
    script: &Script,
    name: &str,
    db_options: &db::Options,
) -> Result<Partition, String> {
    let defs = definitions(script)?;
    let def = defs
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| format!("dispatcher: no partition \"{name}\""))?;
    open(script, def, db_options)
}

fn open(
    script: &Script,
    (name, params): &Definition,
    db_options: &db::Options,
) -> Result<Partition, String> {
    let settings = Settings::of(script);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let url = get("db_url").ok_or_else(|| format!("dispatcher partition \"{name}\": no db_url"))?;
    let conn = db::open_for(
        &format!("dispatcher partition \"{name}\""),
        &url,
        |m| script.loads(m),
        db_options,
    )?;
    let avp = |k: &str, default: &str| avp_name(&get(k).unwrap_or_else(|| default.to_owned()));
    let p = Partition {
        name: name.clone(),
        table: get("table_name").unwrap_or_else(|| "dispatcher".into()),
        db_url: url,
        columns: Columns::of(script),
        avps: Avps {
            dst: avp("dst_avp", "$avp(ds_dst_failover)"),
            grp: avp("grp_avp", "$avp(ds_grp_failover)"),
            cnt: avp("cnt_avp", "$avp(ds_cnt_failover)"),
            sock: avp("sock_avp", "$avp(ds_sock_failover)"),
            attrs: get("attrs_avp").map(|v| avp_name(&v)),
            script_attrs: get("script_attrs_avp").map(|v| avp_name(&v)),
        },
        ping_from: get("ds_ping_from"),
        ping_method: get("ds_ping_method"),
        probing_sock: get("ds_probing_sock"),
        db: conn,
        sets: Mutex::default(),
    };
    p.reload(&settings, false)?;
    Ok(p)
}

/// `$avp(name)` → `name`.
fn avp_name(spec: &str) -> String {
    let s = spec.trim();
    s.strip_prefix("$avp(")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(s)
        .trim()
        .to_owned()
}
