//! The OpenSIPS `usrloc` and `registrar` modules: REGISTER processing (`save`, RFC 3261 §10.3)
//! into an in-memory location table, `lookup` of a request's target (R-URI and the other
//! contacts as branches), `is_registered`, `remove`, their statistics and the usrloc MI
//! commands. usrloc runs as a single instance: in memory (`single-instance-no-db`), or with
//! the tables loaded from SQL at start and written back (`single-instance-sql-write-through`,
//! `single-instance-sql-write-back`; see [`persist`]), or replicated to the other nodes of a
//! `location_cluster` (`full-sharing-cluster`; see [`cluster`] and [`repl`]).
#![forbid(unsafe_code)]

pub mod cluster;
pub mod lookup;
pub mod mi;
pub mod persist;
pub mod repl;
pub mod save;
pub mod usrloc;

use engine::{FnSpec, ModuleSpec, Param, ParamType, Routes, Script};

use ParamType::{Int, Str};

pub static USRLOC: ModuleSpec = ModuleSpec {
    name: "usrloc",
    functions: &[
        FnSpec {
            name: "ul_add_key",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, true),
            ],
            routes: Routes::ALL,
            run: ul_add_key,
        },
        FnSpec {
            name: "ul_get_key",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, false),
                (Param::Var, false),
            ],
            routes: Routes::ALL,
            run: ul_get_key,
        },
        FnSpec {
            name: "ul_del_key",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, false),
            ],
            routes: Routes::ALL,
            run: ul_del_key,
        },
    ],
    params: &[
        ("contact_id_column", Str),
        ("user_column", Str),
        ("domain_column", Str),
        ("contact_column", Str),
        ("expires_column", Str),
        ("q_column", Str),
        ("callid_column", Str),
        ("cseq_column", Str),
        ("flags_column", Str),
        ("cflags_column", Str),
        ("db_url", Str),
        ("cachedb_url", Str),
        ("timer_interval", Int),
        ("working_mode_preset", ParamType::CheckedStr(&PRESET)),
        ("cluster_mode", ParamType::CheckedStr(&NONE_ONLY)),
        ("restart_persistency", ParamType::CheckedStr(&RESTART)),
        ("sql_write_mode", ParamType::CheckedStr(&WRITE_MODE)),
        ("pinging_mode", Str),
        ("use_domain", Int),
        ("desc_time_order", Int),
        ("user_agent_column", Str),
        ("received_column", Str),
        ("path_column", Str),
        ("socket_column", Str),
        ("methods_column", Str),
        ("sip_instance_column", Str),
        ("kv_store_column", Str),
        ("mi_dump_kv_store", Int),
        ("latency_event_min_us", Int),
        ("latency_event_min_us_delta", Int),
        ("attr_column", Str),
        ("matching_mode", Int),
        ("cseq_delay", Int),
        ("hash_size", Int),
        ("nat_bflag", Str),
        ("contact_refresh_timer", Int),
        ("location_cluster", Int),
        ("ha_cluster", Int),
        ("ha_shtag", Str),
        ("skip_replicated_db_ops", Int),
        ("max_contact_delete", Int),
        ("regen_broken_contactid", Int),
    ],
};

fn kv_args(args: &[engine::Value]) -> (String, String, String) {
    let t = |i: usize| {
        args.get(i)
            .filter(|v| !v.is_null())
            .map(|v| v.to_text().into_owned())
            .unwrap_or_default()
    };
    (t(0), t(1), t(2))
}

/// `ul_add_key(domain, aor, key[, value])`: the value in the record's key-value store (none,
/// or an empty one, removes the key); false when `aor` is not registered in `domain`.
fn ul_add_key(f: &mut engine::FnCtx<'_>, args: &[engine::Value]) -> i64 {
    let (domain, aor, key) = kv_args(args);
    let value = args
        .get(3)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let mut t = usrloc::tables();
    if t.get_mut(&domain)
        .is_some_and(|tb| tb.set_key(&aor, &key, &value))
    {
        1
    } else {
        f.log.log(
            1,
            "ul_add_key: No record found - not inserting key into KV store - user not registered?\n",
        );
        -1
    }
}

/// `ul_get_key(domain, aor, key, $out)`: false when the record or the key is missing.
fn ul_get_key(f: &mut engine::FnCtx<'_>, args: &[engine::Value]) -> i64 {
    let (domain, aor, key) = kv_args(args);
    let value = usrloc::tables()
        .get(&domain)
        .and_then(|tb| tb.key(&aor, &key).map(str::to_owned));
    match value {
        Some(v) => {
            f.set_output(3, engine::Value::from(v));
            1
        }
        None => -1,
    }
}

/// `ul_del_key(domain, aor, key)`: false when `aor` is not registered.
fn ul_del_key(_f: &mut engine::FnCtx<'_>, args: &[engine::Value]) -> i64 {
    let (domain, aor, key) = kv_args(args);
    let mut t = usrloc::tables();
    if t.get_mut(&domain)
        .is_some_and(|tb| tb.set_key(&aor, &key, ""))
    {
        1
    } else {
        -1
    }
}

const SAVING: Routes = Routes::REQUEST.or(Routes::ONREPLY);
const LOOKING: Routes = Routes::REQUEST.or(Routes::ONREPLY).or(Routes::FAILURE);
const CHECKING: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::ONREPLY)
    .or(Routes::BRANCH);

pub static REGISTRAR: ModuleSpec = ModuleSpec {
    name: "registrar",
    functions: &[
        FnSpec {
            name: "save",
            params: &[
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: SAVING,
            run: save::save,
        },
        FnSpec {
            name: "add_sock_hdr",
            params: &[(Param::Str, false)],
            routes: Routes::REQUEST,
            run: add_sock_hdr,
        },
        FnSpec {
            name: "lookup",
            params: &[(Param::Str, false), (Param::Str, true), (Param::Str, true)],
            routes: LOOKING,
            run: lookup::lookup,
        },
        FnSpec {
            name: "is_registered",
            params: &[(Param::Str, false), (Param::Str, true)],
            routes: CHECKING,
            run: lookup::is_registered,
        },
        FnSpec {
            name: "is_contact_registered",
            params: &[
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: CHECKING,
            run: lookup::is_contact_registered,
        },
        FnSpec {
            name: "is_ip_registered",
            params: &[
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, false),
                (Param::Str, true),
            ],
            routes: CHECKING,
            run: lookup::is_ip_registered,
        },
        FnSpec {
            name: "remove_ip_port",
            params: &[
                (Param::Str, false),
                (Param::Int, false),
                (Param::Str, false),
                (Param::Str, true),
            ],
            routes: Routes::ALL,
            run: lookup::remove_ip_port,
        },
        FnSpec {
            name: "remove",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: SAVING,
            run: lookup::remove,
        },
    ],
    params: &[
        ("default_expires", Int),
        ("default_q", Int),
        ("case_sensitive", Int),
        ("tcp_persistent_flag", Str),
        ("realm_prefix", Str),
        ("min_expires", Int),
        ("max_expires", Int),
        ("received_param", Str),
        ("received_avp", Str),
        ("retry_after", Int),
        ("sock_hdr_name", Str),
        ("mcontact_avp", Str),
        ("attr_avp", Str),
        ("gruu_secret", Str),
        ("disable_gruu", Int),
        ("max_contacts", Int),
        ("max_username_len", Int),
        ("max_domain_len", Int),
        ("max_aor_len", Int),
        ("max_contact_len", Int),
        ("allow_dup_cseq", Int),
        ("expires_max_deviation", Int),
        ("pn_enable", Int),
        ("pn_providers", Str),
        ("pn_ct_match_params", Str),
        ("pn_pnsreg_interval", Int),
        ("pn_trigger_interval", Int),
        ("pn_skip_pn_interval", Int),
        ("pn_refresh_timeout", Int),
        ("pn_enable_purr", Int),
    ],
};

/// The module parameters `save` and `lookup` use, with OpenSIPS' defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// usrloc `use_domain` (default 1 since OpenSIPS 4.0): the AOR is `user@domain`.
    pub use_domain: bool,
    /// usrloc `matching_mode`: 0 matches a contact by URI, 1 by URI and Call-ID.
    pub match_callid: bool,
    /// usrloc `desc_time_order`: the newest contact first whatever its q.
    pub desc_time_order: bool,
    /// The bit of usrloc `nat_bflag`, if the script uses that flag.
    pub nat_bflag: Option<u32>,
    /// The bit of registrar `tcp_persistent_flag` (a message flag), if the script uses it.
    pub tcp_persistent_flag: Option<u32>,
    pub default_expires: u32,
    pub min_expires: u32,
    /// 0: no maximum.
    pub max_expires: u32,
    /// q × 1000, or -1 (unspecified).
    pub default_q: i32,
    pub case_sensitive: bool,
    pub realm_prefix: String,
    /// 0: no limit.
    pub max_contacts: u32,
    pub max_username_len: usize,
    pub max_domain_len: usize,
    pub max_aor_len: usize,
    pub max_contact_len: usize,
    pub allow_dup_cseq: bool,
    pub retry_after: u32,
    /// The `$avp` slot of `received_avp`, if set and used.
    pub received_avp: Option<usize>,
    /// `received_param`: the Contact parameter the 200 OK names the received address with.
    pub received_param: String,
}

impl Settings {
    /// The settings as the script's modparams give them.
    pub fn of(script: &Script) -> Settings {
        let reg = |name: &str| script.modparam_int("registrar", name);
        let ul = |name: &str| script.modparam_int("usrloc", name);
        let count = |v: Option<i64>, default: u32| {
            v.map_or(default, |n| u32::try_from(n.max(0)).unwrap_or(u32::MAX))
        };
        let len = |v: Option<i64>, default: usize| {
            v.map_or(default, |n| usize::try_from(n.max(0)).unwrap_or(usize::MAX))
        };
        let max_expires = count(reg("max_expires"), 0);
        let mut default_expires = count(reg("default_expires"), 3600);
        if max_expires != 0 && default_expires > max_expires {
            default_expires = max_expires;
        }
        let default_q = reg("default_q").map_or(-1, |q| {
            if q < 0 {
                -1
            } else {
                i32::try_from(q.min(1000)).unwrap_or(1000)
            }
        });
        let flag = |module: &str, name: &str| {
            script
                .modparam_str(module, name)
                .and_then(|f| script.flag_bit(f.trim().trim_matches('"')))
        };
        let received_avp = script
            .modparam_str("registrar", "received_avp")
            .and_then(|a| {
                let name = a
                    .trim()
                    .strip_prefix("$avp(")?
                    .strip_suffix(')')?
                    .to_owned();
                script.avp_id(&name)
            });
        Settings {
            use_domain: ul("use_domain").is_none_or(|n| n != 0),
            match_callid: ul("matching_mode") == Some(1),
            desc_time_order: ul("desc_time_order").is_some_and(|n| n != 0),
            nat_bflag: flag("usrloc", "nat_bflag"),
            tcp_persistent_flag: flag("registrar", "tcp_persistent_flag"),
            default_expires,
            min_expires: count(reg("min_expires"), 60),
            max_expires,
            default_q,
            case_sensitive: reg("case_sensitive").is_none_or(|n| n != 0),
            realm_prefix: script
                .modparam_str("registrar", "realm_prefix")
                .unwrap_or_default(),
            max_contacts: count(reg("max_contacts"), 0),
            max_username_len: len(reg("max_username_len"), 64),
            max_domain_len: len(reg("max_domain_len"), 64),
            max_aor_len: len(reg("max_aor_len"), 256),
            max_contact_len: len(reg("max_contact_len"), 255),
            allow_dup_cseq: reg("allow_dup_cseq").is_none_or(|n| n != 0),
            retry_after: count(reg("retry_after"), 0),
            received_avp,
            received_param: script
                .modparam_str("registrar", "received_param")
                .unwrap_or_else(|| "received".to_owned()),
        }
    }
}

/// usrloc's `working_mode_preset`: in memory, a single instance persisted in SQL, or a
/// full-sharing cluster (see [`cluster`]); the cachedb and SQL-only presets are refused, and
/// "federation-cluster", which OpenSIPS 4.0 refuses too ("not implemented yet").
static PRESET: engine::ParamCheck = engine::ParamCheck {
    what: "usrloc working mode",
    check: |v| {
        let why = match v.trim() {
            "single-instance-no-db"
            | "single-instance-sql-write-through"
            | "single-instance-sql-write-back"
            | "full-sharing-cluster" => return Ok(()),
            "sql-only" => "needs a database-only mode",
            "federation-cluster" => "is not implemented (OpenSIPS 4.0 refuses it too)",
            p if p.contains("cachedb") => "needs a cachedb",
            _ => "is no usrloc working mode",
        };
        Err(format!(
            "\"{}\" {why}; rsips runs usrloc as a single instance (\"single-instance-no-db\", \
             \"single-instance-sql-write-through\", \"single-instance-sql-write-back\") or in a \
             \"full-sharing-cluster\"",
            v.trim()
        ))
    },
};

/// usrloc's `cluster_mode`: `none` or `full-sharing`.
static NONE_ONLY: engine::ParamCheck = engine::ParamCheck {
    what: "usrloc mode",
    check: |v| match v.trim() {
        "none" | "full-sharing" => Ok(()),
        other => Err(format!(
            "\"{other}\" needs a cachedb, a database-only mode or the federation mode; rsips runs \
             usrloc as a single instance (\"none\") or \"full-sharing\""
        )),
    },
};

/// usrloc's `restart_persistency`.
static RESTART: engine::ParamCheck = engine::ParamCheck {
    what: "usrloc restart persistency",
    check: |v| match v.trim() {
        "none" | "load-from-sql" | "sync-from-cluster" => Ok(()),
        other => Err(format!(
            "\"{other}\": rsips loads the contacts from SQL (\"load-from-sql\"), from the cluster \
             (\"sync-from-cluster\") or not (\"none\")"
        )),
    },
};

/// usrloc's `sql_write_mode`.
static WRITE_MODE: engine::ParamCheck = engine::ParamCheck {
    what: "usrloc SQL write mode",
    check: |v| match v.trim() {
        "none" | "write-through" | "write-back" => Ok(()),
        other => Err(format!(
            "\"{other}\": rsips writes contacts \"write-through\", \"write-back\" or not (\"none\")"
        )),
    },
};

/// What the modules take from the script when the server starts: usrloc's timer interval and
/// the statistics.
pub fn start(script: &Script) {
    if let Some(n) = script.modparam_int("usrloc", "timer_interval") {
        usrloc::tables().timer_interval = u64::try_from(n.max(1)).unwrap_or(60);
    }
    register_stats(script);
}

/// Registers the modules' statistics (listed from the start when the script loads them):
/// registrar's counters and its settings, usrloc's counts of what the tables hold.
fn register_stats(script: &Script) {
    if script.loads("registrar") {
        let s = Settings::of(script);
        let fixed = |name: &'static str, v: u32| {
            engine::stats::computed("registrar", name, Box::new(move || i64::from(v)));
        };
        fixed("max_expires", s.max_expires);
        fixed("max_contacts", s.max_contacts);
        fixed("default_expire", s.default_expires);
        engine::stats::counter("registrar", "accepted_regs");
        engine::stats::counter("registrar", "rejected_regs");
    }
    if script.loads("usrloc") {
        engine::stats::computed(
            "usrloc",
            "registered_users",
            Box::new(|| {
                let tables = usrloc::tables();
                tables.all().iter().map(|(_, t)| t.counts().0 as i64).sum()
            }),
        );
        // OpenSIPS registers the default table's counts even before it is written.
        register_table_stats("location");
    }
}

/// usrloc's per-table statistics: `<table>-users` and `<table>-contacts` computed when read,
/// `<table>-expires` counting the contacts the timer removed.
pub fn register_table_stats(table: &str) {
    let name: &'static str = Box::leak(table.to_owned().into_boxed_str());
    for (what, users) in [("users", true), ("contacts", false)] {
        let stat: &'static str = Box::leak(format!("{name}-{what}").into_boxed_str());
        engine::stats::computed(
            "usrloc",
            stat,
            Box::new(move || {
                let (u, c) = usrloc::tables()
                    .get(name)
                    .map_or((0, 0), usrloc::Table::counts);
                (if users { u } else { c }) as i64
            }),
        );
    }
    table_stat(name, "expires");
}

/// The counter `<table>-<what>` of usrloc.
pub(crate) fn table_stat(table: &str, what: &str) -> &'static engine::stats::Stat {
    let full = format!("{table}-{what}");
    if let Some(s) = engine::stats::all()
        .into_iter()
        .find(|s| s.group == "usrloc" && s.name == full)
    {
        return s;
    }
    engine::stats::counter("usrloc", Box::leak(full.into_boxed_str()))
}

/// `add_sock_hdr(name)`: a header `name` naming the socket the REGISTER came in on
/// (`proto:ip:port`), for a registrar the request is relayed to (OpenSIPS replicated
/// registrars).
fn add_sock_hdr(f: &mut engine::FnCtx<'_>, args: &[engine::Value]) -> i64 {
    let name = args
        .first()
        .map(|v| v.to_text().trim().to_owned())
        .unwrap_or_default();
    let Some(r) = f.msg.receipt.as_ref() else {
        return -1;
    };
    if name.is_empty() || !f.msg.msg.is_request() {
        return -1;
    }
    let socket = match r.local {
        std::net::SocketAddr::V6(a) => format!("{}:[{}]:{}", r.proto, a.ip(), a.port()),
        a => format!("{}:{a}", r.proto),
    };
    f.msg.edits.append(&name, &socket);
    1
}
