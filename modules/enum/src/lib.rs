//! The OpenSIPS `enum` module: ENUM (RFC 6116) lookups that turn an E.164 number into SIP
//! URIs from the NAPTR records of its reversed-digit domain, through rsips' own resolver.
//!
//! - `enum_query([suffix[, service[, number]]])`: the number (`+` and 2–15 digits; the R-URI
//!   user by default) under `suffix` (`domain_suffix`, `e164.arpa.`). The NAPTRs that match
//!   `service` (see [`naptr::sip_match`]) are sorted by order and preference; the first one
//!   that rewrites the number replaces the R-URI (q 0.99), each next one adds a branch, its q
//!   0.01 lower whenever (order, preference) grows. `tel_uri_params` is added to every URI.
//!   1 when the R-URI was replaced; -1 otherwise (no record, no usable record, a number that
//!   is not E.164).
//! - `i_enum_query([suffix[, service]])`: the same on the Infrastructure-ENUM name
//!   (`i_enum_suffix`, the `branchlabel` after the country code, by `bl_algorithm`).
//! - `isn_query([suffix[, service]])`: an ISN (`digits*ITAD`, RFC 3872) under `isn_suffix`.
//! - `is_from_user_enum([suffix[, service]])`: 1 when a NAPTR of the From user's number
//!   leads to a host whose first address is the request's source; -1 not E.164, -3 no
//!   record, -5 a bad regexp field, -6 a rewrite that fails, -7 a URI that does not parse,
//!   -9 a host that does not resolve, -8 none matched.
//!
//! Difference from OpenSIPS 4.0: `is_from_user_enum` without a service looks for `E2U+sip`,
//! as documented (4.0's code takes the domain suffix as the service there, so it never
//! matches).
#![forbid(unsafe_code)]

pub mod naptr;

use std::sync::{Arc, OnceLock};

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};
use resolve::Resolver;
use resolve::wire::{Naptr, RData, RecordType};

const OPT: (Param, bool) = (Param::Str, true);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "enum",
    functions: &[
        FnSpec {
            name: "enum_query",
            params: &[OPT, OPT, OPT],
            routes: Routes::REQUEST,
            run: enum_query,
        },
        FnSpec {
            name: "i_enum_query",
            params: &[OPT, OPT],
            routes: Routes::REQUEST,
            run: i_enum_query,
        },
        FnSpec {
            name: "isn_query",
            params: &[OPT, OPT],
            routes: Routes::REQUEST,
            run: isn_query,
        },
        FnSpec {
            name: "is_from_user_enum",
            params: &[OPT, OPT],
            routes: Routes::REQUEST,
            run: is_from_user_enum,
        },
    ],
    params: &[
        ("domain_suffix", ParamType::Str),
        ("tel_uri_params", ParamType::Str),
        ("branchlabel", ParamType::Str),
        ("i_enum_suffix", ParamType::Str),
        ("bl_algorithm", ParamType::Str),
        ("isn_suffix", ParamType::Str),
    ],
};

/// The module's settings and its resolver, fixed at start.
#[derive(Debug)]
struct Enum {
    domain_suffix: String,
    tel_uri_params: String,
    branchlabel: String,
    i_enum_suffix: String,
    bl_algorithm: String,
    isn_suffix: String,
    dns: Arc<Resolver>,
}

static STATE: OnceLock<Enum> = OnceLock::new();

/// Reads the parameters and makes the resolver (resolv.conf, or `RSIPS_RESOLV_CONF`, with
/// the script's `dns_*` settings).
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("enum") {
        return Ok(());
    }
    let param = |name: &str, default: &str| {
        script
            .modparam_str("enum", name)
            .unwrap_or_else(|| default.to_owned())
    };
    let mut dns = Resolver::from_system().unwrap_or_else(|_| Resolver::with_servers(Vec::new()));
    dns = dns.try_ipv6(script.global_int("dns_try_ipv6").is_some_and(|v| v != 0));
    if let Some(secs) = script.global_int("dns_retr_time").filter(|s| *s > 0) {
        dns = dns.timeout(std::time::Duration::from_secs(secs as u64));
    }
    if let Some(n) = script.global_int("dns_retr_no").filter(|n| *n > 0) {
        dns = dns.attempts(n.min(255) as u8);
    }
    let state = Enum {
        domain_suffix: param("domain_suffix", "e164.arpa."),
        tel_uri_params: param("tel_uri_params", ""),
        branchlabel: param("branchlabel", "i"),
        i_enum_suffix: param("i_enum_suffix", "e164.arpa."),
        bl_algorithm: param("bl_algorithm", "cc"),
        isn_suffix: param("isn_suffix", "freenum.org."),
        dns: Arc::new(dns),
    };
    STATE
        .set(state)
        .map_err(|_| "enum: started twice".to_owned())
}

/// Argument `i` as text; `None` when left out.
fn arg(args: &[Value], i: usize) -> Option<String> {
    args.get(i)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
}

/// The NAPTR records of `name`, empty when there are none or DNS fails.
fn naptrs(e: &Enum, name: &str) -> Vec<Naptr> {
    match e.dns.lookup(name, RecordType::Naptr) {
        Ok(records) => records
            .into_iter()
            .filter_map(|r| match r {
                RData::Naptr(n) => Some(n),
                _ => None,
            })
            .collect(),
        Err(err) => {
            log::debug!("enum: NAPTR lookup of {name} failed: {err}");
            Vec::new()
        }
    }
}

/// OpenSIPS' `do_query`: rewrites the R-URI (and adds branches) from the NAPTRs of `name`
/// applied to `subject`.
fn do_query(f: &mut FnCtx<'_>, e: &Enum, subject: &str, name: &str, service: &str) -> i64 {
    let mut records = naptrs(e, name);
    if records.is_empty() {
        log::debug!("enum: no NAPTR record found for {name}");
        return -1;
    }
    naptr::sort(&mut records);
    let (mut q, mut current) = (990, None);
    for n in records.iter().filter(|n| naptr::sip_match(n, service)) {
        let Some((pattern, replacement)) = naptr::split_regexp(&n.regexp) else {
            f.log
                .log(-1, &format!("enum: bad NAPTR regexp `{}`\n", n.regexp));
            continue;
        };
        let Some(mut uri) = naptr::reg_replace(pattern, replacement, subject) else {
            f.log.log(
                -1,
                &format!("enum: regexp replace failed for `{}`\n", n.regexp),
            );
            continue;
        };
        if !e.tel_uri_params.is_empty() {
            uri = naptr::add_uri_params(&uri, &e.tel_uri_params);
        }
        let priority = (n.order, n.preference);
        match current {
            None => {
                if !f.msg.set_ruri(&uri) {
                    f.log.log(-1, &format!("enum: cannot set R-URI `{uri}`\n"));
                    return -1;
                }
                f.msg.ruri_q = q;
                current = Some(priority);
            }
            Some(prev) => {
                if priority > prev {
                    q -= 10;
                    current = Some(priority);
                }
                f.msg.branches.push(engine::MsgBranch {
                    uri,
                    q,
                    ..Default::default()
                });
            }
        }
    }
    if current.is_some() { 1 } else { -1 }
}

fn state(f: &mut FnCtx<'_>) -> Option<&'static Enum> {
    let s = STATE.get();
    if s.is_none() {
        f.log.log(-1, "enum: module not started\n");
    }
    s
}

fn ruri_user(f: &FnCtx<'_>) -> Option<String> {
    f.msg.ruri_user()
}

fn enum_query(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(e) = state(f) else { return -1 };
    let suffix = arg(args, 0).unwrap_or_else(|| e.domain_suffix.clone());
    let service = arg(args, 1).unwrap_or_default();
    let Some(number) = arg(args, 2).or_else(|| ruri_user(f)) else {
        f.log.log(-1, "enum: parsing of R-URI failed\n");
        return -1;
    };
    if !naptr::is_e164(&number) {
        f.log.log(-1, "enum: number is not in E164 format\n");
        return -1;
    }
    let name = naptr::enum_domain(&number, &suffix);
    do_query(f, e, &number, &name, &service)
}

fn i_enum_query(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(e) = state(f) else { return -1 };
    let suffix = arg(args, 0).unwrap_or_else(|| e.i_enum_suffix.clone());
    let service = arg(args, 1).unwrap_or_default();
    let Some(number) = ruri_user(f).filter(|n| naptr::is_e164(n)) else {
        f.log.log(-1, "enum: R-URI user is not an E164 number\n");
        return -1;
    };
    let Some((sdl, separator, apex)) = branch_location(f, e, &number, &suffix) else {
        return -1;
    };
    let name = naptr::i_enum_domain(&number, sdl, &separator, &apex);
    do_query(f, e, &number, &name, &service)
}

/// Where the Infrastructure-ENUM label goes, which label, under which apex, by
/// `bl_algorithm`: `cc` after the country code; `txt` after as many digits as the TXT
/// record of the label domain says (0–10, else the country code's); `ebl` as the EBL record
/// says, or no label at all (user ENUM) without one. `None`: an unusable EBL record.
fn branch_location(
    f: &mut FnCtx<'_>,
    e: &Enum,
    number: &str,
    suffix: &str,
) -> Option<(usize, String, String)> {
    let cc = naptr::cc_len(number.get(1..).unwrap_or_default());
    let records = |qtype: u16| {
        let name = naptr::label_domain(number, cc, &e.branchlabel, suffix);
        e.dns
            .lookup(&name, RecordType::Other(qtype))
            .unwrap_or_default()
    };
    let label = e.branchlabel.clone();
    if e.bl_algorithm.eq_ignore_ascii_case("ebl") {
        let ebl = records(resolve::wire::EBL)
            .into_iter()
            .find_map(|r| match r {
                RData::Ebl(ebl) => Some(ebl),
                _ => None,
            });
        return match ebl {
            None => Some((cc, String::new(), suffix.to_owned())),
            Some(ebl) if ebl.position > 15 => {
                f.log.log(
                    -1,
                    &format!("enum: EBL position too large ({})\n", ebl.position),
                );
                None
            }
            Some(ebl) => Some((usize::from(ebl.position), ebl.separator, ebl.apex)),
        };
    }
    if e.bl_algorithm.eq_ignore_ascii_case("txt") {
        let txt = records(resolve::wire::TXT)
            .into_iter()
            .find_map(|r| match r {
                RData::Txt(strings) => strings.into_iter().next(),
                _ => None,
            });
        let sdl = match txt.map(|t| naptr::atoi(&t)) {
            Some(n @ 0..=10) => n as usize,
            Some(n) => {
                f.log
                    .log(-1, &format!("enum: TXT position {n} out of bounds\n"));
                cc
            }
            None => cc,
        };
        return Some((sdl, label, suffix.to_owned()));
    }
    Some((cc, label, suffix.to_owned()))
}

fn isn_query(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(e) = state(f) else { return -1 };
    let suffix = arg(args, 0).unwrap_or_else(|| e.isn_suffix.clone());
    let service = arg(args, 1).unwrap_or_default();
    let Some(user) = ruri_user(f).filter(|u| u.len() < 17) else {
        f.log.log(-1, "enum: R-URI user missing or too long\n");
        return -1;
    };
    let Some(name) = naptr::isn_domain(&user, &suffix) else {
        f.log
            .log(-1, "enum: R-URI user does not contain a valid ISN\n");
        return -1;
    };
    do_query(f, e, &user, &name, &service)
}

fn is_from_user_enum(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(e) = state(f) else { return -1 };
    let suffix = arg(args, 0).unwrap_or_else(|| e.domain_suffix.clone());
    let service = arg(args, 1).unwrap_or_default();
    let user = match f.msg.msg.from_header() {
        Ok(from) => from.uri().user().map(str::to_owned),
        Err(_) => None,
    };
    let Some(user) = user.filter(|u| naptr::is_e164(u)) else {
        f.log.log(-1, "enum: From URI user is not an E164 number\n");
        return -1;
    };
    let name = naptr::enum_domain(&user, &suffix);
    let records = naptrs(e, &name);
    if records.is_empty() {
        return -3;
    }
    let source = f.msg.receipt.as_ref().map(|r| r.source.ip());
    for n in records.iter().filter(|n| naptr::sip_match(n, &service)) {
        let Some((pattern, replacement)) = naptr::split_regexp(&n.regexp) else {
            return -5;
        };
        let Some(uri) = naptr::reg_replace(pattern, replacement, &user) else {
            return -6;
        };
        let Ok(parsed) = sip::Uri::parse(&uri) else {
            return -7;
        };
        let Some(host) = parsed.host().map(|h| h.as_str().to_owned()) else {
            return -7;
        };
        let secure = parsed.scheme().as_str().eq_ignore_ascii_case("sips");
        let first = e
            .dns
            .resolve(&host, parsed.port(), None, secure)
            .ok()
            .and_then(|t| t.first().map(|t| t.addr.ip()));
        let Some(ip) = first else { return -9 };
        if Some(ip) == source {
            return 1;
        }
    }
    -8
}
