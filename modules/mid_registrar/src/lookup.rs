//! `mid_registrar_lookup(domain[, flags[, aor]])`: a request from the main registrar, sent to
//! a Contact we registered upstream, turned towards the UA. Modes 0 and 1 find the one binding
//! by the contact id the URI carries; mode 2 looks the AoR up and forks to its bindings, as
//! registrar's `lookup()` does.

use engine::{FnCtx, Value};
use registrar::usrloc;

use crate::save::text_arg;
use crate::{Config, Insertion, Mode};

/// Found, the R-URI set.
const FOUND: i64 = 1;
/// No such binding.
const NOT_FOUND: i64 = -1;
/// The URI could not be read.
const ERROR: i64 = -3;

pub fn mid_registrar_lookup(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let cfg = Config::of(f.script);
    let table = text_arg(args, 0).unwrap_or_default();
    let uri = match text_arg(args, 2) {
        Some(u) => u,
        None => match f.msg.ruri() {
            Some(u) => u.to_owned(),
            None => return ERROR,
        },
    };
    if f.msg.msg.call_id().is_err() {
        return ERROR;
    }
    if cfg.mode == Mode::ThrottleAor {
        return by_aor(f, &cfg, &table, &uri, args);
    }
    let Ok(parsed) = sip::Uri::parse(uri.trim()) else {
        return ERROR;
    };
    let id = match cfg.insertion {
        Insertion::Param => parsed.param(&cfg.ctid_param).flatten(),
        Insertion::User => parsed.user(),
    };
    let Some(id) = id.and_then(|v| v.trim().parse::<u64>().ok()) else {
        f.log.log(
            -1,
            &format!(
                "ERROR:mid_registrar: no contact id (;{}=) in URI '{uri}'\n",
                cfg.ctid_param
            ),
        );
        return ERROR;
    };
    let now = usrloc::now();
    let found = {
        let mut tables = usrloc::tables();
        tables.maybe_sweep(now);
        tables.get(&table).and_then(|t| {
            t.all_aors()
                .into_iter()
                .flat_map(|(_, list)| list.iter())
                .find(|c| c.id == id && c.alive(now))
                .cloned()
        })
    };
    let Some(c) = found else {
        return NOT_FOUND;
    };
    f.msg.new_ruri = Some(c.uri.clone());
    if let Some(d) = registrar::lookup::next_hop(&c) {
        f.msg.dst_uri = Some(d);
    }
    f.msg.ruri_q = c.q;
    f.msg.branch_flags |= c.cflags;
    if let Some(sock) = &c.socket {
        f.msg.send_socket = Some(sock.clone());
    }
    FOUND
}

/// Mode 2: the AoR is the URI's user with `at_escape_str` read back as `@` (the Contact we
/// registered upstream), or the URI's AoR as registrar reads it; registrar's `lookup()` does
/// the rest (R-URI, branches, flags).
fn by_aor(f: &mut FnCtx<'_>, cfg: &Config, table: &str, uri: &str, args: &[Value]) -> i64 {
    let Ok(parsed) = sip::Uri::parse(uri.trim()) else {
        return ERROR;
    };
    let aor_uri = match parsed.user() {
        Some(user) if cfg.reg.use_domain && user.contains(cfg.at_escape.as_str()) => {
            format!("sip:{}", user.replacen(cfg.at_escape.as_str(), "@", 1))
        }
        _ => uri.to_owned(),
    };
    let flags = args.get(1).cloned().unwrap_or(Value::Null);
    registrar::lookup::lookup(
        f,
        &[Value::from(table), flags, Value::from(aor_uri.as_str())],
    )
}
