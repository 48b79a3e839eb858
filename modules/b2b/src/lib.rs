//! The OpenSIPS `b2b_entities` and `b2b_logic` modules: rsips as a back-to-back user agent.
//!
//! - b2b_entities owns the dialogs rsips is a party of: a *server* entity is our UAS side of
//!   a caller's dialog (our To tag and Contact), a *client* entity a dialog we start as UAC
//!   (our Call-ID, From tag, CSeq and Contact). Their in-dialog requests are matched by
//!   Call-ID and our tag before the script runs ([`matching`]); retransmissions and ACKs are
//!   absorbed by tm's transactions.
//! - b2b_logic ties entities into sessions: `b2b_init_request("top hiding")` bridges the
//!   caller with a new dialog to the R-URI (`$du` as next hop) — provisional and final
//!   replies go back, a BYE from either side is answered and ends the other, a CANCEL
//!   cancels the outgoing INVITE, re-INVITEs and other requests are passed. Script
//!   scenarios (`b2b_server_new`, `b2b_client_new`, `b2b_init_request("name")`) run the
//!   `script_req_route` for in-dialog requests, where `b2b_pass_request`, `b2b_send_reply`,
//!   `b2b_end_dlg_leg`, `b2b_delete_entity` and `b2b_bridge` act.
//!
//! Sessions live in memory only: `db_url`/`db_mode` and the cache/cluster parameters are
//! accepted and said at start to be unapplied. Not done (yet): the ACK of a client's 2xx is
//! tm's own (sent when the 2xx arrives, without Contact or body: no late-offer SDP in the
//! caller's ACK goes on), reliable provisional replies and PRACK, `script_reply_route` for
//! anything but the final reply to a client's initial INVITE, `b2b_bridge` with anything but
//! a new client entity, `b2b_bridge_request`, `b2b_bridge_retry`, `b2b_trigger_scenario` and
//! the `ua_session_*` functions (they fail with an error).
#![forbid(unsafe_code)]

pub mod flow;
pub mod leg;
pub mod matching;
pub mod mi;
pub mod pv;
pub mod script;
pub mod session;
pub mod table;

use std::sync::OnceLock;

use engine::{FnSpec, ModuleSpec, Param, ParamType, Routes, Script};

/// The internal scenario's name.
pub const TOP_HIDING: &str = "top hiding";

pub static B2B_ENTITIES: ModuleSpec = ModuleSpec {
    name: "b2b_entities",
    functions: &[
        FnSpec {
            name: "ua_session_server_init",
            params: &[(Param::Var, true), (Param::Str, true), (Param::Str, true)],
            routes: Routes::REQUEST,
            run: script::unsupported_ua,
        },
        FnSpec {
            name: "ua_session_update",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: Routes::REQUEST.or(Routes::EVENT),
            run: script::unsupported_ua,
        },
        FnSpec {
            name: "ua_session_reply",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Int, false),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: Routes::REQUEST.or(Routes::EVENT),
            run: script::unsupported_ua,
        },
        FnSpec {
            name: "ua_session_terminate",
            params: &[(Param::Str, false), (Param::Str, true)],
            routes: Routes::REQUEST,
            run: script::unsupported_ua,
        },
    ],
    params: &[
        ("server_hsize", ParamType::Int),
        ("client_hsize", ParamType::Int),
        ("script_req_route", ParamType::Str),
        ("script_reply_route", ParamType::Str),
        ("db_url", ParamType::Str),
        ("cachedb_url", ParamType::Str),
        ("cachedb_key_prefix", ParamType::Str),
        ("db_table", ParamType::Str),
        ("db_mode", ParamType::Int),
        ("update_period", ParamType::Int),
        ("b2b_key_prefix", ParamType::Str),
        ("cluster_id", ParamType::Int),
        ("passthru_prack", ParamType::Int),
        ("advertised_contact", ParamType::Str),
        ("ua_default_timeout", ParamType::Int),
    ],
};

const REQ: Routes = Routes::REQUEST;

pub static B2B_LOGIC: ModuleSpec = ModuleSpec {
    name: "b2b_logic",
    functions: &[
        FnSpec {
            name: "b2b_init_request",
            params: &[
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: REQ,
            run: script::b2b_init_request,
        },
        FnSpec {
            name: "b2b_server_new",
            params: &[
                (Param::Str, false),
                (Param::Str, true),
                (Param::Var, true),
                (Param::Var, true),
            ],
            routes: REQ,
            run: script::b2b_server_new,
        },
        FnSpec {
            name: "b2b_client_new",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Var, true),
                (Param::Var, true),
                (Param::Str, true),
            ],
            routes: REQ,
            run: script::b2b_client_new,
        },
        FnSpec {
            name: "b2b_handle_reply",
            params: &[(Param::Str, true)],
            routes: REQ,
            run: script::b2b_handle_reply,
        },
        FnSpec {
            name: "b2b_pass_request",
            params: &[],
            routes: REQ,
            run: script::b2b_pass_request,
        },
        FnSpec {
            name: "b2b_delete_entity",
            params: &[],
            routes: REQ,
            run: script::b2b_delete_entity,
        },
        FnSpec {
            name: "b2b_end_dlg_leg",
            params: &[],
            routes: REQ,
            run: script::b2b_end_dlg_leg,
        },
        FnSpec {
            name: "b2b_send_reply",
            params: &[
                (Param::Int, false),
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: REQ,
            run: script::b2b_send_reply,
        },
        FnSpec {
            name: "b2b_bridge",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: REQ,
            run: script::b2b_bridge,
        },
        FnSpec {
            name: "b2b_bridge_retry",
            params: &[(Param::Str, false)],
            routes: REQ,
            run: script::unsupported,
        },
        FnSpec {
            name: "b2b_trigger_scenario",
            params: &[
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, false),
                (Param::Var, true),
                (Param::Var, true),
                (Param::Str, false),
                (Param::Var, true),
                (Param::Var, true),
            ],
            routes: REQ,
            run: script::unsupported,
        },
        FnSpec {
            name: "b2b_bridge_request",
            params: &[
                (Param::Str, false),
                (Param::Int, false),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: REQ,
            run: script::unsupported,
        },
    ],
    params: &[
        ("hash_size", ParamType::Int),
        ("cleanup_period", ParamType::Int),
        ("update_period", ParamType::Int),
        ("script_req_route", ParamType::Str),
        ("script_reply_route", ParamType::Str),
        ("custom_headers", ParamType::Str),
        ("custom_headers_regexp", ParamType::Str),
        ("custom_contact_header_params", ParamType::Str),
        ("contact_user", ParamType::Int),
        ("db_url", ParamType::Str),
        ("cachedb_url", ParamType::Str),
        ("cachedb_key_prefix", ParamType::Str),
        ("db_table", ParamType::Str),
        ("max_duration", ParamType::Int),
        ("b2bl_from_spec_param", ParamType::Str),
        ("server_address", ParamType::Str),
        ("init_callid_hdr", ParamType::Str),
        ("db_mode", ParamType::Int),
        ("b2bl_th_init_timeout", ParamType::Int),
        ("b2bl_early_update", ParamType::Int),
        ("old_entity_term_delay", ParamType::Int),
    ],
};

/// What the modules' parameters set.
#[derive(Debug)]
pub struct Settings {
    /// `b2b_key_prefix` (default `B2B`): starts our Call-IDs and tags.
    pub prefix: String,
    /// `<prefix>.`: how a To tag of ours starts.
    pub tag_start: String,
    pub contact_user: bool,
    pub custom_headers: Vec<String>,
    pub custom_re: Option<regex::Regex>,
    /// b2b_logic's `script_req_route` / `script_reply_route`.
    pub req_route: Option<String>,
    pub reply_route: Option<String>,
    /// `init_callid_hdr`: a header our INVITEs carry with the caller's Call-ID.
    pub init_callid_hdr: Option<String>,
    /// `server_address`: our Contact when the script gives none (without variables).
    pub server_address: Option<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            prefix: "B2B".into(),
            tag_start: "B2B.".into(),
            contact_user: false,
            custom_headers: Vec::new(),
            custom_re: None,
            req_route: None,
            reply_route: None,
            init_callid_hdr: None,
            server_address: None,
        }
    }
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

pub fn settings() -> &'static Settings {
    SETTINGS.get_or_init(Settings::default)
}

/// The parameters b2b_logic and b2b_entities take but rsips does not act on.
const UNAPPLIED: &[(&str, &str)] = &[
    ("b2b_entities", "db_url"),
    ("b2b_entities", "db_mode"),
    ("b2b_entities", "db_table"),
    ("b2b_entities", "update_period"),
    ("b2b_entities", "cachedb_url"),
    ("b2b_entities", "cachedb_key_prefix"),
    ("b2b_entities", "cluster_id"),
    ("b2b_entities", "passthru_prack"),
    ("b2b_entities", "script_req_route"),
    ("b2b_entities", "script_reply_route"),
    ("b2b_entities", "ua_default_timeout"),
    ("b2b_logic", "db_url"),
    ("b2b_logic", "db_mode"),
    ("b2b_logic", "db_table"),
    ("b2b_logic", "update_period"),
    ("b2b_logic", "cachedb_url"),
    ("b2b_logic", "cachedb_key_prefix"),
    ("b2b_logic", "custom_contact_header_params"),
    ("b2b_logic", "b2bl_from_spec_param"),
    ("b2b_logic", "b2bl_th_init_timeout"),
    ("b2b_logic", "b2bl_early_update"),
    ("b2b_logic", "old_entity_term_delay"),
];

/// Reads the parameters (a bad `custom_headers_regexp` or a route that is not in the script
/// stops the start) and hooks the requests and replies of B2B dialogs.
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("b2b_entities") && !script.loads("b2b_logic") {
        return Ok(());
    }
    if !script.loads("b2b_entities") {
        return Err("b2b_logic needs the b2b_entities module".into());
    }
    if !script.loads("tm") {
        return Err("b2b_entities needs the tm module".into());
    }
    let s = read_settings(script)?;
    let unapplied: Vec<String> = UNAPPLIED
        .iter()
        .filter(|(m, p)| script.modparams(m).any(|(n, _)| n == *p))
        .map(|(m, p)| format!("{m}:{p}"))
        .collect();
    if !unapplied.is_empty() {
        log::warn!(
            "b2b parameters set but not applied by rsips (sessions are kept in memory \
             only): {}",
            unapplied.join(", ")
        );
    }
    let _ = SETTINGS.set(s);
    engine::hooks::add_request_hook(Box::new(matching::on_request));
    engine::hooks::add_reply_hook(Box::new(|ctx, _script| session::on_reply(&ctx.msg)));
    engine::hooks::set_b2b_pvs(
        Box::new(|id, name, arg, index| {
            pv::pv_get(id, name, arg, index).map_or(engine::Value::Null, engine::Value::from)
        }),
        Box::new(|id, name, arg, v| {
            let text = (!matches!(v, engine::Value::Null)).then(|| v.to_text().into_owned());
            pv::pv_set(id, name, arg, text.as_deref())
        }),
    );
    start_cleanup(script)
}

/// Every `cleanup_period` seconds (default 100) the sessions older than `max_duration`
/// (default 12 h) are ended, as b2b_logic's cleanup timer does.
fn start_cleanup(script: &Script) -> Result<(), String> {
    let positive = |name: &str, default: u64| {
        script
            .modparam_int("b2b_logic", name)
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(default)
    };
    let period = std::time::Duration::from_secs(positive("cleanup_period", 100));
    let max_age = positive("max_duration", 12 * 3600);
    std::thread::Builder::new()
        .name("b2b cleanup".into())
        .spawn(move || {
            loop {
                std::thread::sleep(period);
                let n = session::expire(max_age, table::unix_now());
                if n > 0 {
                    log::info!("b2b_logic: {n} session(s) ended after max_duration");
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("b2b_logic: cannot start the cleanup timer: {e}"))
}

fn read_settings(script: &Script) -> Result<Settings, String> {
    let mut s = Settings::default();
    if let Some(p) = script
        .modparam_str("b2b_entities", "b2b_key_prefix")
        .filter(|p| !p.is_empty())
    {
        s.tag_start = format!("{p}.");
        s.prefix = p;
    }
    s.contact_user = script
        .modparam_int("b2b_logic", "contact_user")
        .unwrap_or(0)
        != 0;
    if let Some(h) = script.modparam_str("b2b_logic", "custom_headers") {
        s.custom_headers = h
            .split(';')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(re) = script.modparam_str("b2b_logic", "custom_headers_regexp") {
        // OpenSIPS takes it as `/regex/flags`.
        let body = re.trim().trim_start_matches('/');
        let (body, flags) = body.rsplit_once('/').unwrap_or((body, ""));
        let pattern = if flags.contains('i') {
            format!("(?i){body}")
        } else {
            body.to_owned()
        };
        s.custom_re = Some(
            regex::Regex::new(&pattern)
                .map_err(|e| format!("b2b_logic: bad custom_headers_regexp `{re}`: {e}"))?,
        );
    }
    s.init_callid_hdr = script
        .modparam_str("b2b_logic", "init_callid_hdr")
        .map(|h| h.trim().trim_end_matches(':').to_owned())
        .filter(|h| !h.is_empty());
    // b2b_entities' `advertised_contact` is the Contact of every entity; b2b_logic's
    // `server_address` wins over it.
    let address = script
        .modparam_str("b2b_logic", "server_address")
        .or_else(|| script.modparam_str("b2b_entities", "advertised_contact"));
    if let Some(a) = address {
        if a.contains('$') {
            log::warn!(
                "b2b: the Contact address `{a}` has variables, which rsips does not expand: \
                 the Contact is built from the socket instead"
            );
        } else if !a.trim().is_empty() {
            s.server_address = Some(a.trim().to_owned());
        }
    }
    for (param, slot) in [
        ("script_req_route", &mut s.req_route),
        ("script_reply_route", &mut s.reply_route),
    ] {
        if let Some(name) = script.modparam_str("b2b_logic", param) {
            if script.request_route(&name).is_none() {
                return Err(format!("b2b_logic: {param} `{name}`: no such route"));
            }
            *slot = Some(name);
        }
    }
    Ok(s)
}

/// The module's log lines, where no script log is at hand.
pub(crate) struct ModuleLog;

impl engine::Log for ModuleLog {
    fn log(&mut self, level: i32, text: &str) {
        if level < 0 {
            log::error!("{}", text.trim_end());
        } else {
            log::info!("{}", text.trim_end());
        }
    }
}
