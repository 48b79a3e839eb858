//! The OpenSIPS `auth` and `auth_db` modules: digest challenges (`www_challenge`,
//! `proxy_challenge`, RFC 3261 §22.4 with the RFC 8760 algorithms), verification of the
//! credentials a request carries against a subscriber table (`www_authorize`,
//! `proxy_authorize`) or against script variables (`pv_www_authorize`, `pv_proxy_authorize`),
//! `consume_credentials`, and `db_does_uri_exist`. Return codes as OpenSIPS': 1 authorized,
//! -1 unknown user, -2 wrong password, -3 stale nonce, -4 no credentials, -5 error, 0 when a
//! reply was sent (which ends the script).
#![forbid(unsafe_code)]

pub mod nonce;
pub mod verify;

use engine::{FnSpec, ModuleSpec, Param, ParamType, Routes, Script};

mod rpid;
mod uri_table;

use ParamType::{Int, Str};

pub static AUTH: ModuleSpec = ModuleSpec {
    name: "auth",
    functions: &[
        FnSpec {
            name: "www_challenge",
            params: &[(Param::Str, false), (Param::Str, true), (Param::Str, true)],
            routes: Routes::REQUEST,
            run: verify::www_challenge,
        },
        FnSpec {
            name: "proxy_challenge",
            params: &[(Param::Str, false), (Param::Str, true), (Param::Str, true)],
            routes: Routes::REQUEST,
            run: verify::proxy_challenge,
        },
        FnSpec {
            name: "consume_credentials",
            params: &[],
            routes: Routes::REQUEST,
            run: verify::consume_credentials,
        },
        FnSpec {
            name: "pv_www_authorize",
            params: &[(Param::Str, false)],
            routes: Routes::REQUEST,
            run: verify::pv_www_authorize,
        },
        FnSpec {
            name: "pv_proxy_authorize",
            params: &[(Param::Str, false)],
            routes: Routes::REQUEST,
            run: verify::pv_proxy_authorize,
        },
        FnSpec {
            name: "append_rpid_hf",
            params: &[(Param::Str, true), (Param::Str, true)],
            routes: Routes::REQUEST.or(Routes::BRANCH).or(Routes::FAILURE),
            run: rpid::append_rpid_hf,
        },
        FnSpec {
            name: "is_rpid_user_e164",
            params: &[],
            routes: Routes::REQUEST.or(Routes::BRANCH).or(Routes::FAILURE),
            run: rpid::is_rpid_user_e164,
        },
    ],
    params: &[
        ("secret", Str),
        ("nonce_expire", Int),
        ("disable_nonce_check", Int),
        ("calculate_ha1", Int),
        ("username_spec", Str),
        ("password_spec", Str),
        ("rpid_prefix", Str),
        ("rpid_suffix", Str),
        ("realm_prefix", Str),
        ("rpid_avp", Str),
    ],
};

pub static AUTH_DB: ModuleSpec = ModuleSpec {
    name: "auth_db",
    functions: &[
        FnSpec {
            name: "db_is_to_authorized",
            params: &[(Param::Str, false)],
            routes: Routes::REQUEST,
            run: uri_table::db_is_to_authorized,
        },
        FnSpec {
            name: "db_is_from_authorized",
            params: &[(Param::Str, false)],
            routes: Routes::REQUEST,
            run: uri_table::db_is_from_authorized,
        },
        FnSpec {
            name: "db_get_auth_id",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Var, false),
                (Param::Var, false),
            ],
            routes: Routes::REQUEST.or(Routes::FAILURE).or(Routes::LOCAL),
            run: uri_table::db_get_auth_id,
        },
        FnSpec {
            name: "www_authorize",
            params: &[(Param::Str, false), (Param::Str, false)],
            routes: Routes::REQUEST,
            run: verify::www_authorize,
        },
        FnSpec {
            name: "proxy_authorize",
            params: &[(Param::Str, false), (Param::Str, false)],
            routes: Routes::REQUEST,
            run: verify::proxy_authorize,
        },
        FnSpec {
            name: "db_does_uri_exist",
            params: &[(Param::Str, false), (Param::Str, false)],
            routes: Routes::REQUEST,
            run: verify::db_does_uri_exist,
        },
    ],
    params: &[
        ("db_url", Str),
        ("user_column", Str),
        ("domain_column", Str),
        ("password_column", Str),
        ("hash_column_sha256", Str),
        ("hash_column_sha512t256", Str),
        ("calculate_ha1", Int),
        ("use_domain", Int),
        ("load_credentials", Str),
        ("skip_version_check", Int),
        ("uri_user_column", Str),
        ("uri_domain_column", Str),
        ("uri_uriuser_column", Str),
    ],
};

/// The version of the `subscriber` table auth_db reads (OpenSIPS 4.0's).
pub const SUBSCRIBER_VERSION: i64 = 8;

/// Opens auth_db's database (and checks the version of the table the script names), as the
/// module does when OpenSIPS starts; a database that cannot be opened stops the start.
pub fn start(script: &Script, db_options: &db::Options) -> Result<(), String> {
    verify::init_nonces(script)?;
    if !script.loads("auth_db") {
        return Ok(());
    }
    let url = script
        .modparam_str("auth_db", "db_url")
        .unwrap_or_else(|| "mysql://opensipsro:opensipsro@localhost/opensips".into());
    let conn = db::open_for("auth_db", &url, |m| script.loads(m), db_options)?;
    verify::set_db(conn);
    Ok(())
}
