//! The OpenSIPS 3.0–3.4 `avpops` module: AVPs to and from the `usr_preferences` table
//! (`avp_db_load/store/delete`, sqlops' implementation under avpops' parameters), raw SQL
//! into AVPs (`avp_db_query`), and the operations on AVPs in memory that OpenSIPS 3.5 later
//! replaced with plain script (`avp_check`, `avp_copy`, `avp_op`, `avp_subst`, `avp_pushto`,
//! `avp_delete`, `avp_shuffle`, `is_avp_set`). `avp_print` is a core function here.
//!
//! Parameters written as literals are checked when the script loads: a bad operator or flag
//! is an error at its file:line:col, as OpenSIPS' fixups refuse it.
//!
//! Not kept from OpenSIPS: `db_scheme` (the module refuses to start with it); AVP flags (an
//! AVP loaded from the database is stored again by a later `avp_db_store`, and `avp_delete`'s
//! `s`/`i` types both mean every AVP); computed AVP names (`$avp($var(x))`).
#![forbid(unsafe_code)]

use engine::{FnSpec, ModuleSpec, Param, ParamCheck, ParamType, Routes, Script};

mod ops;
mod parse;
mod store;

pub use ops::{
    avp_check, avp_copy, avp_delete, avp_op, avp_pushto, avp_shuffle, avp_subst, is_avp_set,
};
pub use store::{avp_db_delete, avp_db_load, avp_db_query, avp_db_store};

const ALL: Routes = Routes::ALL;

/// The source of the rows: a variable or a uuid, optionally `/uuid|username|domain|uri`.
fn check_source(text: &str) -> Result<(), String> {
    let (what, flag) = match text.split_once('/') {
        Some((w, f)) => (w.trim(), Some(f.trim().to_ascii_lowercase())),
        None => (text.trim(), None),
    };
    if what.is_empty() {
        return Err("an empty source".into());
    }
    if what.starts_with('$') {
        cfg::pv::parse(what).map_err(|e| format!("`{what}`: {e}"))?;
    }
    match flag.as_deref() {
        None | Some("uuid" | "username" | "domain" | "uri") => Ok(()),
        Some(f) => Err(format!("unknown source flag `/{f}`")),
    }
}

fn check_db_name(text: &str, schemes: &str) -> Result<(), String> {
    if text
        .split_once('/')
        .is_some_and(|(_, t)| t.trim().starts_with('$'))
    {
        return Err(schemes.to_owned());
    }
    sqlops::avp::check_name(text)
}

static SOURCE: ParamCheck = ParamCheck {
    what: "source",
    check: check_source,
};
static LOAD_NAME: ParamCheck = ParamCheck {
    what: "AVP name",
    check: |t| check_db_name(t, "db_scheme is not available in rsips yet"),
};
static STORE_NAME: ParamCheck = ParamCheck {
    what: "AVP name",
    check: |t| check_db_name(t, "function doesn't support DB schemes"),
};
static RESULT_AVPS: ParamCheck = ParamCheck {
    what: "AVP list",
    check: |t| store::result_avps(t).map(|_| ()),
};
static DELETE: ParamCheck = ParamCheck {
    what: "AVP",
    check: |t| parse::delete_target(t).map(|_| ()),
};
static PUSH_DEST: ParamCheck = ParamCheck {
    what: "destination",
    check: |t| parse::push_dest(t).map(|_| ()),
};
static PUSH_SRC: ParamCheck = ParamCheck {
    what: "source",
    check: |t| {
        let (spec, flags) = parse::split_pv(t)?;
        parse::Flags::parse(flags.unwrap_or(""), "g")?;
        parse::var(spec).map(|_| ())
    },
};
static VAR: ParamCheck = ParamCheck {
    what: "variable",
    check: |t| parse::var(t).map(|_| ()),
};
static CHECK_OP: ParamCheck = ParamCheck {
    what: "operation",
    check: |t| parse::check_op(t).map(|_| ()),
};
static ARITH_OP: ParamCheck = ParamCheck {
    what: "operation",
    check: |t| parse::arith_op(t).map(|_| ()),
};
static AVP: ParamCheck = ParamCheck {
    what: "AVP",
    check: |t| parse::avp(t).map(|_| ()),
};
static COPY_TO: ParamCheck = ParamCheck {
    what: "AVP",
    check: |t| parse::avp_flags(t, "gdns").map(|_| ()),
};
static SRC_DST: ParamCheck = ParamCheck {
    what: "AVP",
    check: |t| parse::src_dst(t).map(|_| ()),
};
static SUBST_AVPS: ParamCheck = ParamCheck {
    what: "AVP",
    check: |t| parse::subst_avps(t).map(|_| ()),
};
static IS_SET: ParamCheck = ParamCheck {
    what: "AVP",
    check: |t| {
        let (_, _, f) = parse::avp_flags(t, "esn")?;
        if f.string && f.int {
            return Err("`s` and `n` exclude each other".into());
        }
        Ok(())
    },
};

macro_rules! f {
    ($name:literal, $params:expr, $run:path) => {
        FnSpec {
            name: $name,
            params: $params,
            routes: ALL,
            run: $run,
        }
    };
}

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "avpops",
    functions: &[
        f!(
            "avp_db_load",
            &[
                (Param::Checked(&SOURCE), false),
                (Param::Checked(&LOAD_NAME), false),
                (Param::Int, true),
                (Param::StaticStr, true),
            ],
            avp_db_load
        ),
        f!(
            "avp_db_store",
            &[
                (Param::Checked(&SOURCE), false),
                (Param::Checked(&STORE_NAME), false),
                (Param::Int, true),
            ],
            avp_db_store
        ),
        f!(
            "avp_db_delete",
            &[
                (Param::Checked(&SOURCE), false),
                (Param::Checked(&STORE_NAME), false),
                (Param::Int, true),
            ],
            avp_db_delete
        ),
        f!(
            "avp_db_query",
            &[
                (Param::Str, false),
                (Param::Checked(&RESULT_AVPS), true),
                (Param::Int, true),
            ],
            avp_db_query
        ),
        f!(
            "avp_delete",
            &[(Param::Checked(&DELETE), false)],
            avp_delete
        ),
        f!(
            "avp_pushto",
            &[
                (Param::Checked(&PUSH_DEST), false),
                (Param::Checked(&PUSH_SRC), false),
            ],
            avp_pushto
        ),
        f!(
            "avp_check",
            &[
                (Param::Checked(&VAR), false),
                (Param::Checked(&CHECK_OP), false),
            ],
            avp_check
        ),
        f!(
            "avp_copy",
            &[
                (Param::Checked(&AVP), false),
                (Param::Checked(&COPY_TO), false),
            ],
            avp_copy
        ),
        f!(
            "avp_op",
            &[
                (Param::Checked(&SRC_DST), false),
                (Param::Checked(&ARITH_OP), false),
            ],
            avp_op
        ),
        f!(
            "avp_subst",
            &[(Param::Checked(&SUBST_AVPS), false), (Param::Str, false)],
            avp_subst
        ),
        f!("avp_shuffle", &[(Param::Checked(&AVP), false)], avp_shuffle),
        f!(
            "is_avp_set",
            &[(Param::Checked(&IS_SET), false)],
            is_avp_set
        ),
    ],
    params: &[
        ("db_url", ParamType::Str),
        ("avp_table", ParamType::Str),
        ("use_domain", ParamType::Int),
        ("uuid_column", ParamType::Str),
        ("attribute_column", ParamType::Str),
        ("value_column", ParamType::Str),
        ("type_column", ParamType::Str),
        ("username_column", ParamType::Str),
        ("domain_column", ParamType::Str),
        ("db_scheme", ParamType::Str),
    ],
};

/// Opens the module's databases when the script loads it; refuses `db_scheme`, which rsips
/// does not implement.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("avpops") {
        return Ok(());
    }
    if !script.modparam_strs("avpops", "db_scheme").is_empty() {
        return Err("avpops: db_scheme is not available in rsips yet".into());
    }
    store::start(script, options)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sources() {
        assert!(check_source("$fu").is_ok());
        assert!(check_source("$ru/USERNAME").is_ok());
        assert!(check_source("some-uuid").is_ok());
        assert!(check_source("$avp(id)/uuid").is_ok());
        assert!(check_source("$fu/user").is_err());
        assert!(check_source("").is_err());
    }

    #[test]
    fn db_names() {
        assert!((LOAD_NAME.check)("$avp(fwd)").is_ok());
        assert!((LOAD_NAME.check)("$avp(fwd)/other_table").is_ok());
        assert!((LOAD_NAME.check)("s3").is_ok());
        assert_eq!(
            (LOAD_NAME.check)("$avp(fwd)/$scheme1").unwrap_err(),
            "db_scheme is not available in rsips yet"
        );
        assert_eq!(
            (STORE_NAME.check)("$avp(fwd)/$scheme1").unwrap_err(),
            "function doesn't support DB schemes"
        );
        assert!((LOAD_NAME.check)("x1").is_err());
    }
}
