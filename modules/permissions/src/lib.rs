//! The OpenSIPS `permissions` module. Rule files: `allow_routing`, `allow_register`,
//! `allow_uri` ([`rules`]). Address part: the `address` table (groups of IPs or
//! subnets with port, protocol, wildcard pattern and context info) loaded from any database,
//! `check_address`, `check_source_address`, `get_source_group`, and the MI commands that
//! reload and dump it (`address_reload` swaps the new table in whole; a table that does not
//! read leaves the old one serving).
#![forbid(unsafe_code)]

pub mod mi;
pub mod rules;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};

use db::{Connection, Value as DbValue};
use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};

use ParamType::Str;

/// The version of the `address` table this module reads (OpenSIPS 4.0's).
pub const TABLE_VERSION: i64 = 5;

const ROUTES: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::LOCAL)
    .or(Routes::BRANCH)
    .or(Routes::STARTUP)
    .or(Routes::TIMER)
    .or(Routes::EVENT);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "permissions",
    functions: &[
        FnSpec {
            name: "check_address",
            params: &[
                (Param::Int, false),
                (Param::Str, false),
                (Param::Int, false),
                (Param::Str, false),
                (Param::Var, true),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: ROUTES,
            run: check_address,
        },
        FnSpec {
            name: "check_source_address",
            params: &[
                (Param::Int, false),
                (Param::Var, true),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: ROUTES,
            run: check_source_address,
        },
        FnSpec {
            name: "get_source_group",
            params: &[(Param::Var, false), (Param::Str, true)],
            routes: ROUTES,
            run: get_source_group,
        },
        FnSpec {
            name: "allow_routing",
            params: &[(Param::Str, true)],
            routes: Routes::REQUEST.or(Routes::FAILURE).or(Routes::LOCAL),
            run: rules::allow_routing,
        },
        FnSpec {
            name: "allow_register",
            params: &[(Param::Str, false)],
            routes: Routes::REQUEST.or(Routes::FAILURE).or(Routes::LOCAL),
            run: rules::allow_register,
        },
        FnSpec {
            name: "allow_uri",
            params: &[(Param::Str, false), (Param::Str, false)],
            routes: ROUTES,
            run: rules::allow_uri,
        },
    ],
    params: &[
        ("db_url", Str),
        ("address_table", Str),
        ("grp_col", Str),
        ("ip_col", Str),
        ("mask_col", Str),
        ("port_col", Str),
        ("proto_col", Str),
        ("pattern_col", Str),
        ("info_col", Str),
        ("partition", Str),
        ("default_allow_file", Str),
        ("default_deny_file", Str),
        ("check_all_branches", ParamType::Int),
        ("allow_suffix", Str),
        ("deny_suffix", Str),
    ],
};

/// One row of the address table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub group: u32,
    pub ip: IpAddr,
    /// Prefix length (32 or 128: one address).
    pub mask: u8,
    /// 0: any.
    pub port: u16,
    /// `None`: any.
    pub proto: Option<String>,
    pub pattern: Option<String>,
    pub info: Option<String>,
}

impl Address {
    pub fn is_host(&self) -> bool {
        self.mask == if self.ip.is_ipv4() { 32 } else { 128 }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.ip, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.mask.min(32));
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.mask.min(128));
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// OpenSIPS' match: protocol and port (either side "any"), the address in the subnet,
    /// and the pattern (fnmatch) when both the row and the call have one.
    fn matches(&self, ip: IpAddr, port: u16, proto: Option<&str>, pattern: Option<&str>) -> bool {
        let proto_ok = match (&self.proto, proto) {
            (None, _) | (_, None) => true,
            (Some(p), Some(q)) => p.eq_ignore_ascii_case(q),
        };
        proto_ok
            && (self.port == 0 || port == 0 || self.port == port)
            && self.contains(ip)
            && match (&self.pattern, pattern) {
                (Some(p), Some(text)) => engine::fnmatch(p, text),
                _ => true,
            }
    }
}

/// A partition: where its table comes from, and the rows (single addresses first, then
/// subnets from the longest prefix, as OpenSIPS' hash table then subnet tree look).
#[derive(Debug)]
pub struct Partition {
    pub name: String,
    db: Arc<dyn Connection>,
    pub table: String,
    columns: [String; 7],
    rows: Mutex<Arc<Vec<Address>>>,
}

impl Partition {
    pub fn rows(&self) -> Arc<Vec<Address>> {
        Arc::clone(
            &self
                .rows
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Reads the table again and swaps it in; a failed read keeps the old rows.
    pub fn reload(&self) -> Result<usize, String> {
        let fail = |e: db::DbError| format!("permissions partition \"{}\": {e}", self.name);
        db::check_version(self.db.as_ref(), &self.table, TABLE_VERSION).map_err(fail)?;
        let cols: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        let rows = self.db.query(&self.table, &cols, &[]).map_err(fail)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            match address_of(&row) {
                Ok(a) => out.push(a),
                Err(e) => log::error!(
                    "permissions partition \"{}\", table {}: {e}; row skipped",
                    self.name,
                    self.table
                ),
            }
        }
        // Stable: single addresses keep the table's order, subnets go longest prefix first.
        out.sort_by_key(|a| {
            (
                !a.is_host(),
                std::cmp::Reverse(if a.is_host() { 0 } else { a.mask }),
            )
        });
        let n = out.len();
        *self
            .rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(out);
        Ok(n)
    }

    /// The first row of `group` (0: any) that matches.
    pub fn find(
        &self,
        group: u32,
        ip: IpAddr,
        port: u16,
        proto: Option<&str>,
        pattern: Option<&str>,
    ) -> Option<Address> {
        let rows = self.rows();
        if group != 0 {
            return rows
                .iter()
                .find(|a| a.group == group && a.matches(ip, port, proto, pattern))
                .cloned();
        }
        // Group by group, in the order the groups first appear, as OpenSIPS walks them.
        let mut groups: Vec<u32> = Vec::new();
        for a in rows.iter() {
            if !groups.contains(&a.group) {
                groups.push(a.group);
            }
        }
        groups.into_iter().find_map(|g| {
            rows.iter()
                .find(|a| a.group == g && a.matches(ip, port, proto, pattern))
                .cloned()
        })
    }
}

fn address_of(row: &[DbValue]) -> Result<Address, String> {
    let int = |i: usize| row.get(i).and_then(DbValue::as_int);
    let text = |i: usize| {
        row.get(i)
            .and_then(DbValue::as_text)
            .filter(|s| !s.is_empty())
    };
    let group = int(0)
        .and_then(|g| u32::try_from(g).ok())
        .ok_or("the group is not a number")?;
    let ip_text = text(1).ok_or("the ip is empty")?;
    let ip: IpAddr = ip_text
        .trim()
        .parse()
        .map_err(|_| format!("\"{ip_text}\" is not an IP address"))?;
    let full = if ip.is_ipv4() { 32 } else { 128 };
    let mask = match int(2) {
        None => full,
        Some(m) if (0..=i64::from(full)).contains(&m) => m as u8,
        Some(m) => return Err(format!("mask {m} of {ip} is out of range")),
    };
    let port = int(3).and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
    let proto = text(4).filter(|p| !p.eq_ignore_ascii_case("any"));
    Ok(Address {
        group,
        ip,
        mask,
        port,
        proto: proto.map(|p| p.to_ascii_lowercase()),
        pattern: text(5),
        info: text(6),
    })
}

fn registry() -> &'static Mutex<Vec<Arc<Partition>>> {
    static ALL: OnceLock<Mutex<Vec<Arc<Partition>>>> = OnceLock::new();
    ALL.get_or_init(Mutex::default)
}

pub fn partitions() -> Vec<Arc<Partition>> {
    registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

pub fn partition(name: Option<&str>) -> Option<Arc<Partition>> {
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    partitions().into_iter().find(|p| p.name == name)
}

/// Opens the partitions' databases and loads their tables, as the module does when OpenSIPS
/// starts: `default` from `db_url`/`address_table`, others from `partition` parameters
/// (`"name: db_url=…; table_name=…"`). A table that cannot be read stops the start.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("permissions") {
        return Ok(());
    }
    rules::start(script)?;
    let param = |n: &str, d: &str| {
        script
            .modparam_str("permissions", n)
            .unwrap_or_else(|| d.to_owned())
    };
    let columns = [
        param("grp_col", "grp"),
        param("ip_col", "ip"),
        param("mask_col", "mask"),
        param("port_col", "port"),
        param("proto_col", "proto"),
        param("pattern_col", "pattern"),
        param("info_col", "context_info"),
    ];
    let mut defs: Vec<(String, String, String)> = Vec::new();
    if let Some(url) = script.modparam_str("permissions", "db_url") {
        defs.push(("default".into(), url, param("address_table", "address")));
    }
    for text in script.modparam_strs("permissions", "partition") {
        let (name, rest) = text.split_once(':').ok_or_else(|| {
            format!("permissions partition \"{text}\": expected \"name: db_url=…\"")
        })?;
        let get = |k: &str| {
            rest.split(';').find_map(|kv| {
                let (key, v) = kv.split_once('=')?;
                (key.trim() == k).then(|| v.trim().to_owned())
            })
        };
        let url = get("db_url")
            .ok_or_else(|| format!("permissions partition \"{}\": no db_url", name.trim()))?;
        defs.retain(|(n, _, _)| n != name.trim());
        defs.push((
            name.trim().to_owned(),
            url,
            get("table_name").unwrap_or_else(|| param("address_table", "address")),
        ));
    }
    let mut loaded = Vec::new();
    for (name, url, table) in defs {
        let db = db::open_for(
            &format!("permissions partition \"{name}\""),
            &url,
            |m| script.loads(m),
            options,
        )?;
        let p = Partition {
            name,
            db,
            table,
            columns: columns.clone(),
            rows: Mutex::default(),
        };
        let n = p.reload()?;
        log::info!("permissions partition \"{}\": {n} addresses loaded", p.name);
        loaded.push(Arc::new(p));
    }
    *registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
    Ok(())
}

fn text_arg(args: &[Value], i: usize) -> Option<String> {
    args.get(i)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
        .filter(|s| !s.is_empty())
}

fn partition_arg(f: &mut FnCtx<'_>, args: &[Value], i: usize) -> Option<Arc<Partition>> {
    let name = text_arg(args, i);
    let p = partition(name.as_deref());
    if p.is_none() {
        f.log.log(
            -1,
            &format!(
                "permissions: no partition \"{}\"\n",
                name.as_deref().unwrap_or("default")
            ),
        );
    }
    p
}

fn check(
    f: &mut FnCtx<'_>,
    group: i64,
    ip: Option<IpAddr>,
    port: u16,
    proto: Option<String>,
    (info_param, pattern, part): (usize, Option<String>, usize),
    args: &[Value],
) -> i64 {
    let Some(ip) = ip else {
        f.log.log(-1, "permissions: not an IP address\n");
        return -1;
    };
    let Ok(group) = u32::try_from(group) else {
        return -1;
    };
    let Some(p) = partition_arg(f, args, part) else {
        return -1;
    };
    let proto = proto.filter(|p| !p.eq_ignore_ascii_case("any"));
    if group != 0 && !p.rows().iter().any(|a| a.group == group) {
        return -2;
    }
    match p.find(group, ip, port, proto.as_deref(), pattern.as_deref()) {
        Some(a) => {
            f.set_output(info_param, a.info.map_or(Value::Null, Value::from));
            1
        }
        None => -1,
    }
}

fn ip_of(text: Option<String>) -> Option<IpAddr> {
    text?
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// `check_address(group, ip, port, proto[, $ctx[, pattern[, partition]]])`: 1 when a row
/// matches (its context info into `$ctx`), -1 when none, -2 when the group has no rows.
pub fn check_address(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let group = args.first().and_then(Value::as_int).unwrap_or(0);
    let port = args
        .get(2)
        .and_then(Value::as_int)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(0);
    check(
        f,
        group,
        ip_of(text_arg(args, 1)),
        port,
        text_arg(args, 3),
        (4, text_arg(args, 5), 6),
        args,
    )
}

/// The request's source: address, port and protocol.
fn source(f: &FnCtx<'_>) -> (Option<IpAddr>, u16, Option<String>) {
    match &f.msg.receipt {
        Some(r) => (
            Some(r.source.ip()),
            r.source.port(),
            Some(r.proto.to_owned()),
        ),
        None => (None, 0, None),
    }
}

/// `check_source_address(group[, $ctx[, pattern[, partition]]])`: `check_address` with the
/// request's source address, port and protocol.
pub fn check_source_address(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let group = args.first().and_then(Value::as_int).unwrap_or(0);
    let (ip, port, proto) = source(f);
    check(f, group, ip, port, proto, (1, text_arg(args, 2), 3), args)
}

/// `get_source_group($var[, partition])`: the group of the first single-address row for the
/// source address and port (OpenSIPS looks in its hash table only); -1 when none.
pub fn get_source_group(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (ip, port, _) = source(f);
    let Some(ip) = ip else {
        return -1;
    };
    let Some(p) = partition_arg(f, args, 1) else {
        return -1;
    };
    let group = p
        .rows()
        .iter()
        .find(|a| a.is_host() && a.contains(ip) && (a.port == 0 || a.port == port))
        .map(|a| a.group);
    match group {
        Some(g) => {
            f.set_output(0, Value::Int(i64::from(g)));
            1
        }
        None => -1,
    }
}
