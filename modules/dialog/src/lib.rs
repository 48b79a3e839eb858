//! The OpenSIPS `dialog` module: the proxy keeps a record of each call the script calls
//! `create_dialog()` for, follows its state from the replies tm sends upstream and the
//! sequential requests `loose_route()` takes (matched by the `did` parameter of our
//! Record-Route, or by Call-ID and tags), checks sequential requests against it
//! (`validate_dialog`), counts calls in profiles (`set_dlg_profile`, `get_profile_size`), ends
//! a call that outlives its timeout with a BYE to each side (`bye-on-timeout`, the script's
//! `local_route` sees them), and keeps the calls in a database across restarts (`db_mode`).
//! With the clusterer, calls and `/b` profile counts are shared by the nodes of a cluster
//! ([`cluster`], [`profile_repl`]; OpenSIPS' BIN packets, [`repl`]).
#![forbid(unsafe_code)]

pub mod cluster;
pub mod end;
pub mod events;
mod flags;
mod hooks;
mod lookup;
pub mod mi;
pub mod persist;
pub mod profile_repl;
mod reinvite;
pub mod repl;
mod seq_match;
pub mod sst;
pub mod table;
mod within;

pub use lookup::fix_route;
pub use seq_match::{WithinHook, match_mode, match_request, on_request_within};

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use engine::{
    DialogMark, FnCtx, FnSpec, ModuleSpec, MsgCtx, Param, ParamCheck, ParamType, Routes, Script,
    Value,
};
use sip::Method;

use table::{CONFIRMED, CONFIRMED_NA, DELETED, Dialog, EARLY, Flags, Leg, UNCONFIRMED, dialogs};

/// The module's parameters, read once when the server starts.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rr_param: String,
    pub default_timeout: u32,
    pub match_mode: i64,
    pub delete_delay: Duration,
    pub hash_size: u32,
    /// name → has values.
    pub profiles: Vec<(String, bool)>,
    pub extra_hdrs: String,
    pub ping_interval: Duration,
    pub db_mode: i64,
    pub db_url: Option<String>,
    pub db_update_period: Duration,
    pub table: String,
    /// `auto-prack`: a failed PRACK of ours answers the INVITE 502; its transaction's
    /// final-reply timeout (seconds).
    pub auto_prack_hangup_on_failure: bool,
    pub auto_prack_fr_timeout: u32,
    pub reinvite_ping_interval: Duration,
    /// How long a call whose CANCEL and 2xx crossed lives on (`end-on-race-condition`).
    pub race_condition_timeout: u32,
}

impl Settings {
    pub fn of(script: &Script) -> Settings {
        let int = |n: &str, d: i64| script.modparam_int("dialog", n).unwrap_or(d);
        let mut profiles = Vec::new();
        for (param, valued) in [("profiles_with_value", true), ("profiles_no_value", false)] {
            for list in script.modparam_strs("dialog", param) {
                for name in list.split(';').map(str::trim).filter(|n| !n.is_empty()) {
                    // "name/b" and "name/s" are replicated profiles elsewhere; here, local.
                    let name = name.split('/').next().unwrap_or(name).trim();
                    profiles.push((name.to_owned(), valued));
                }
            }
        }
        Settings {
            rr_param: script
                .modparam_str("dialog", "rr_param")
                .unwrap_or_else(|| "did".to_owned()),
            default_timeout: u32::try_from(int("default_timeout", 43200)).unwrap_or(43200),
            match_mode: int("dlg_match_mode", 1),
            delete_delay: Duration::from_secs(u64::try_from(int("delete_delay", 0)).unwrap_or(0)),
            hash_size: u32::try_from(int("hash_size", 4096)).unwrap_or(4096).max(1),
            profiles,
            extra_hdrs: script
                .modparam_str("dialog", "dlg_extra_hdrs")
                .unwrap_or_default(),
            ping_interval: Duration::from_secs(
                u64::try_from(int("options_ping_interval", 30))
                    .unwrap_or(30)
                    .max(1),
            ),
            db_mode: int("db_mode", 0),
            db_url: script.modparam_str("dialog", "db_url"),
            db_update_period: Duration::from_secs(
                u64::try_from(int("db_update_period", 60))
                    .unwrap_or(60)
                    .max(1),
            ),
            table: script
                .modparam_str("dialog", "table_name")
                .unwrap_or_else(|| "dialog".to_owned()),
            auto_prack_hangup_on_failure: int("auto_prack_hangup_on_failure", 0) != 0,
            auto_prack_fr_timeout: u32::try_from(int("auto_prack_fr_timeout", 3))
                .unwrap_or(3)
                .max(1),
            reinvite_ping_interval: Duration::from_secs(
                u64::try_from(int("reinvite_ping_interval", 300))
                    .unwrap_or(300)
                    .max(1),
            ),
            race_condition_timeout: u32::try_from(int("race_condition_timeout", 5)).unwrap_or(5),
        }
    }

    fn profile(&self, name: &str) -> Option<bool> {
        self.profiles
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// The settings the server started with (defaults before `start`).
pub fn settings() -> &'static Settings {
    SETTINGS.get_or_init(|| Settings {
        rr_param: "did".into(),
        default_timeout: 43200,
        match_mode: 1,
        delete_delay: Duration::ZERO,
        hash_size: 4096,
        profiles: Vec::new(),
        extra_hdrs: String::new(),
        ping_interval: Duration::from_secs(30),
        db_mode: 0,
        db_url: None,
        db_update_period: Duration::from_secs(60),
        table: "dialog".into(),
        auto_prack_hangup_on_failure: false,
        auto_prack_fr_timeout: 3,
        reinvite_ping_interval: Duration::from_secs(300),
        race_condition_timeout: 5,
    })
}

/// Reads the settings, installs the hooks tm and rr call, and loads the dialogs a database
/// kept (db_mode 1–3).
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    sst::start(script)?;
    if !script.loads("dialog") {
        return Ok(());
    }
    let s = Settings::of(script);
    if !(0..=3).contains(&s.db_mode) {
        return Err(format!(
            "dialog: db_mode {} is not one of 0 (none), 1 (realtime), 2 (delayed), 3 (shutdown)",
            s.db_mode
        ));
    }
    let _ = SETTINGS.set(s);
    register_stats();
    engine::hooks::set_dialog_hooks(Box::new(hooks::Hooks));
    persist::start(script, options)?;
    cluster::start(script)?;
    profile_repl::start(script)
}

pub fn register_stats() {
    for name in ["active_dialogs", "early_dialogs"] {
        let _ = engine::stats::gauge("dialog", name);
    }
    for name in ["processed_dialogs", "expired_dialogs", "failed_dialogs"] {
        let _ = engine::stats::counter("dialog", name);
    }
}

/// `dlg_send_sequential`'s leg, when written in the script.
static LEG: ParamCheck = ParamCheck {
    what: "dialog leg",
    check: |text| {
        if text.eq_ignore_ascii_case("caller") || text.eq_ignore_ascii_case("callee") {
            Ok(())
        } else {
            Err(format!(
                "unsupported dialog leg `{text}` (caller or callee)"
            ))
        }
    },
};

static FLAGS: ParamCheck = ParamCheck {
    what: "create_dialog flags",
    check: |t| Flags::parse(t).map(|_| ()),
};

const REQ: Routes = Routes::REQUEST;
const SEQ: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::ONREPLY)
    .or(Routes::BRANCH)
    .or(Routes::LOCAL);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "dialog",
    functions: &[
        FnSpec {
            name: "create_dialog",
            params: &[(Param::Checked(&FLAGS), true)],
            // Not in a branch_route: each branch of a fork would create its own dialog.
            routes: REQ.or(Routes::FAILURE),
            run: create_dialog,
        },
        FnSpec {
            name: "match_dialog",
            params: &[(Param::StaticStr, true)],
            routes: REQ,
            run: match_dialog,
        },
        FnSpec {
            name: "validate_dialog",
            params: &[],
            routes: REQ,
            run: validate_dialog,
        },
        FnSpec {
            name: "set_dlg_profile",
            params: &[(Param::StaticStr, false), (Param::Str, true)],
            routes: SEQ,
            run: set_dlg_profile,
        },
        FnSpec {
            name: "unset_dlg_profile",
            params: &[(Param::StaticStr, false), (Param::Str, true)],
            routes: SEQ,
            run: unset_dlg_profile,
        },
        FnSpec {
            name: "is_in_profile",
            params: &[(Param::StaticStr, false), (Param::Str, true)],
            routes: SEQ,
            run: is_in_profile,
        },
        FnSpec {
            name: "get_profile_size",
            params: &[
                (Param::StaticStr, false),
                (Param::Str, true),
                (Param::Var, false),
            ],
            routes: Routes::ALL,
            run: get_profile_size,
        },
        FnSpec {
            name: "store_dlg_value",
            params: &[(Param::Str, false), (Param::Str, false)],
            routes: SEQ,
            run: store_dlg_value,
        },
        FnSpec {
            name: "fetch_dlg_value",
            params: &[(Param::Str, false), (Param::Var, false)],
            routes: SEQ,
            run: fetch_dlg_value,
        },
        FnSpec {
            name: "dlg_on_answer",
            params: &[(Param::Route(cfg::ast::RouteKind::Request), true)],
            routes: SEQ,
            run: events::dlg_on_answer,
        },
        FnSpec {
            name: "dlg_on_timeout",
            params: &[(Param::Route(cfg::ast::RouteKind::Request), true)],
            routes: SEQ,
            run: events::dlg_on_timeout,
        },
        FnSpec {
            name: "dlg_on_hangup",
            params: &[(Param::Route(cfg::ast::RouteKind::Request), true)],
            routes: SEQ,
            run: events::dlg_on_hangup,
        },
        FnSpec {
            name: "set_dlg_flag",
            params: &[(Param::Checked(&flags::FLAG_NAME), false)],
            routes: SEQ,
            run: flags::set_dlg_flag,
        },
        FnSpec {
            name: "reset_dlg_flag",
            params: &[(Param::Checked(&flags::FLAG_NAME), false)],
            routes: SEQ,
            run: flags::reset_dlg_flag,
        },
        FnSpec {
            name: "is_dlg_flag_set",
            params: &[(Param::Checked(&flags::FLAG_NAME), false)],
            routes: SEQ,
            run: flags::is_dlg_flag_set,
        },
        FnSpec {
            name: "test_and_set_dlg_flag",
            params: &[
                (Param::Checked(&flags::FLAG_NAME), false),
                (Param::Int, false),
            ],
            routes: SEQ,
            run: flags::test_and_set_dlg_flag,
        },
        FnSpec {
            name: "dlg_send_sequential",
            params: &[
                (Param::Str, false),
                (Param::Checked(&LEG), false),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: Routes::ALL,
            run: within::dlg_send_sequential,
        },
        FnSpec {
            name: "dlg_inc_cseq",
            params: &[(Param::Str, true), (Param::Int, true)],
            routes: SEQ,
            run: within::dlg_inc_cseq,
        },
        FnSpec {
            name: "load_dialog_ctx",
            params: &[(Param::Str, false), (Param::Str, true), (Param::Int, true)],
            routes: Routes::ALL,
            run: lookup::load_dialog_ctx,
        },
        FnSpec {
            name: "unload_dialog_ctx",
            params: &[],
            routes: Routes::ALL,
            run: lookup::unload_dialog_ctx,
        },
        FnSpec {
            name: "get_dialog_info",
            params: &[
                (Param::Str, false),
                (Param::Avp, false),
                (Param::Str, false),
                (Param::Str, false),
                (Param::Var, false),
            ],
            routes: Routes::ALL,
            run: lookup::get_dialog_info,
        },
        FnSpec {
            name: "get_dialog_vals",
            params: &[
                (Param::Avp, false),
                (Param::Avp, false),
                (Param::Str, false),
            ],
            routes: Routes::ALL,
            run: lookup::get_dialog_vals,
        },
        FnSpec {
            name: "get_dialogs_by_val",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Avp, false),
                (Param::Var, false),
            ],
            routes: Routes::ALL,
            run: lookup::get_dialogs_by_val,
        },
        FnSpec {
            name: "get_dialogs_by_profile",
            params: &[
                (Param::Str, false),
                (Param::Str, true),
                (Param::Avp, false),
                (Param::Var, false),
            ],
            routes: Routes::ALL,
            run: lookup::get_dialogs_by_profile,
        },
        FnSpec {
            name: "fix_route_dialog",
            params: &[],
            routes: REQ,
            run: lookup::fix_route_dialog,
        },
        FnSpec {
            name: "set_dlg_sharing_tag",
            params: &[(Param::Str, false)],
            routes: REQ
                .or(Routes::BRANCH)
                .or(Routes::ONREPLY)
                .or(Routes::FAILURE),
            run: set_dlg_sharing_tag,
        },
    ],
    params: &[
        ("enable_stats", ParamType::Int),
        ("hash_size", ParamType::Int),
        ("log_profile_hash_size", ParamType::Int),
        ("rr_param", ParamType::Str),
        ("default_timeout", ParamType::Int),
        ("dlg_extra_hdrs", ParamType::Str),
        ("dlg_match_mode", ParamType::Int),
        ("delete_delay", ParamType::Int),
        ("options_ping_interval", ParamType::Int),
        ("reinvite_ping_interval", ParamType::Int),
        ("db_url", ParamType::Str),
        ("db_mode", ParamType::Int),
        ("db_update_period", ParamType::Int),
        ("table_name", ParamType::Str),
        ("profiles_with_value", ParamType::Str),
        ("profiles_no_value", ParamType::Str),
        ("race_condition_timeout", ParamType::Int),
        ("auto_prack_hangup_on_failure", ParamType::Int),
        ("auto_prack_fr_timeout", ParamType::Int),
        ("profile_timeout", ParamType::Int),
        ("dialog_replication_cluster", ParamType::Int),
        ("profile_replication_cluster", ParamType::Int),
        ("replicate_profiles_timer", ParamType::Int),
        ("replicate_profiles_check", ParamType::Int),
        ("replicate_profiles_buffer", ParamType::Int),
        ("replicate_profiles_expire", ParamType::Int),
        ("cluster_auto_sync", ParamType::Int),
    ],
};

/// The request's SIP identifiers: (Call-ID, From tag, To tag).
fn sip_ids(msg: &sip::SipMessage) -> Option<(String, String, String)> {
    Some((
        msg.call_id().ok()?.to_owned(),
        msg.from_tag().ok()??.to_owned(),
        msg.to_tag().ok().flatten().unwrap_or("").to_owned(),
    ))
}

/// The socket a message came in on, as a configured socket name.
fn socket_of(ctx: &MsgCtx) -> Option<String> {
    ctx.receipt
        .as_ref()
        .map(|r| format!("{}:{}", r.proto, r.local))
}

/// The URI of the first Contact.
fn contact_of(msg: &sip::SipMessage) -> Option<String> {
    match msg.contacts().ok()? {
        sip::Contacts::List(l) => l.first().map(|c| c.uri().as_str().to_owned()),
        sip::Contacts::Star => None,
    }
}

/// `create_dialog([flags])`: a dialog for this initial INVITE (1; an existing one is kept).
fn create_dialog(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let flags = match args.first().filter(|v| !matches!(v, Value::Null)) {
        Some(v) => match Flags::parse(&v.to_text()) {
            Ok(fl) => fl,
            Err(e) => {
                f.log.log(-1, &format!("create_dialog: {e}\n"));
                return -1;
            }
        },
        None => Flags::default(),
    };
    let fresh = f.msg.dialog.is_none();
    match create(f.msg, flags) {
        Ok(id) => {
            // A new dialog of a flagged INVITE gets its session timer (sst).
            let reject = if fresh {
                dialogs()
                    .by_id
                    .get_mut(&id)
                    .and_then(|d| sst::created(f.msg, d))
            } else {
                None
            };
            if let Some(min_se) = reject {
                sst::send_422(f, min_se);
            }
            1
        }
        Err(e) => {
            f.log.log(-1, &format!("create_dialog: {e}\n"));
            -1
        }
    }
}

/// A dialog for the initial INVITE in `ctx` (the one it already has is kept): its id. Other
/// modules (load_balancer) create the dialogs they count calls with through this.
pub fn create(ctx: &mut MsgCtx, flags: Flags) -> Result<u64, String> {
    if let Some(mark) = ctx.dialog {
        // A second create_dialog (or one after lb_start) adds its flags, as OpenSIPS does.
        if flags != Flags::default()
            && let Some(d) = dialogs().by_id.get_mut(&mark.id)
        {
            d.flags = d.flags.merge(flags);
        }
        return Ok(mark.id);
    }
    let msg = &ctx.msg;
    if msg.method() != Some(Method::Invite) {
        return Err("only an INVITE starts a dialog".into());
    }
    let (callid, from_tag, to_tag) = sip_ids(msg).ok_or("no Call-ID or From tag")?;
    if !to_tag.is_empty() {
        return Err("the INVITE has a To tag".into());
    }
    let (Ok(from), Ok(to), Ok(cseq)) = (msg.from_header(), msg.to_header(), msg.cseq()) else {
        return Err("bad From, To or CSeq".into());
    };
    let s = settings();
    let mut table = dialogs();
    let id = table.new_id(&callid, s.hash_size);
    let dialog = Dialog {
        id,
        state: UNCONFIRMED,
        callid,
        from_uri: from.uri().as_str().to_owned(),
        to_uri: to.uri().as_str().to_owned(),
        caller: Leg {
            tag: from_tag,
            contact: contact_of(msg).unwrap_or_default(),
            cseq: cseq.seq,
            route_set: msg
                .record_routes()
                .filter_map(Result::ok)
                .map(|r| r.as_str().to_owned())
                .collect(),
            socket: socket_of(ctx),
            ..Leg::default()
        },
        callee: Leg {
            socket: ctx.send_socket.clone(),
            ..Leg::default()
        },
        initial_cseq: cseq.seq,
        flags,
        user_flags: 0,
        routes: table::Routes::default(),
        lifetime: s.default_timeout,
        start_unix: 0,
        created_ms: table::unix_ms(),
        start_ms: 0,
        expires: None,
        gone_at: None,
        end_reason: None,
        profiles: Vec::new(),
        vals: Vec::new(),
        next_ping: None,
        pings: 0,
        stored: false,
        sst: None,
        next_reinvite: None,
        cancelled: false,
        race: false,
        mod_flags: 0,
    };
    let did = dialog.did();
    table.insert(dialog);
    drop(table);
    engine::stat!("dialog", "processed_dialogs").inc();
    // Our Record-Route carries the dialog's id, whenever record_route() runs.
    ctx.record_route
        .get_or_insert_with(Default::default)
        .params
        .push_str(&format!(";{}={did}", s.rr_param));
    let mark = DialogMark {
        id,
        upstream: false,
        created: true,
        check: 0,
    };
    ctx.dialog = Some(mark);
    // A transaction that exists already (t_newtran, or a failure route) learns it too, so
    // its replies move the dialog.
    if let Some(tx) = &ctx.tx {
        tx.set_dialog(mark);
    }
    Ok(id)
}

/// Runs `f` once dialog `id` goes, answered or not (fraud_detection's call duration and
/// concurrent calls); false when there is no such live dialog.
pub fn on_gone(id: u64, f: table::OnGone) -> bool {
    let mut t = dialogs();
    if t.by_id.get(&id).is_none_or(|d| d.state == DELETED) {
        return false;
    }
    t.on_gone.entry(id).or_default().push(f);
    true
}

/// Puts dialog `id` in `profile` with `value` (any name: modules count with their own).
pub fn join_profile(id: u64, profile: &str, value: &str) -> bool {
    let mut t = dialogs();
    let ok = t.join_profile(id, profile, value);
    if ok {
        t.mark_dirty(id);
    }
    ok
}

/// Takes dialog `id` out of `profile` (one value, or all).
pub fn leave_profile(id: u64, profile: &str, value: Option<&str>) -> bool {
    let mut t = dialogs();
    let ok = t.leave_profile(id, profile, value);
    if ok {
        t.mark_dirty(id);
    }
    ok
}

/// How many dialogs `profile` holds with `value` (or in all).
pub fn profile_size(profile: &str, value: Option<&str>) -> usize {
    dialogs().profile_size(profile, value)
}

/// Whether dialog `id` is still going (not ended).
pub fn is_live(id: u64) -> bool {
    dialogs().by_id.get(&id).is_some_and(|d| d.state != DELETED)
}

/// `match_dialog([DID_ONLY|DID_FALLBACK|DID_NONE])`: finds the dialog of a sequential request
/// the script routes itself.
fn match_dialog(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let mode = match args
        .first()
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().to_ascii_uppercase())
    {
        None => None,
        Some(m) => match match_mode(&m) {
            Some(m) => Some(m),
            None => {
                f.log
                    .log(-1, &format!("match_dialog: unknown mode `{m}`\n"));
                return -1;
            }
        },
    };
    bool_code(match_request(f, mode))
}

/// `validate_dialog()`: 1 when the sequential request agrees with its dialog; -1 a CSeq out
/// of order, -2 another remote target, -3 another route set, -4 no dialog.
fn validate_dialog(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    match f.msg.dialog {
        Some(m) if m.check != 0 => i64::from(m.check),
        Some(m) if m.created => 1,
        _ => -4,
    }
}

/// The profile a function names, checked against the module's lists.
fn profile_arg(f: &mut FnCtx<'_>, fname: &str, args: &[Value]) -> Option<(String, Option<String>)> {
    let name = args.first()?.to_text().trim().to_owned();
    let value = args
        .get(1)
        .filter(|v| !matches!(v, Value::Null))
        .map(|v| v.to_text().into_owned());
    match settings().profile(&name) {
        None => {
            f.log
                .log(-1, &format!("{fname}: profile <{name}> not defined\n"));
            None
        }
        Some(false) if value.is_some() => {
            f.log.log(
                -1,
                &format!("{fname}: profile <{name}> has no values (profiles_no_value)\n"),
            );
            None
        }
        Some(_) => Some((name, value)),
    }
}

fn set_dlg_profile(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some((name, value)) = profile_arg(f, "set_dlg_profile", args) else {
        return -1;
    };
    let Some(mark) = f.msg.dialog else {
        f.log
            .log(-1, "set_dlg_profile: no dialog for this message\n");
        return -1;
    };
    if settings().profile(&name) == Some(true) && value.is_none() {
        f.log.log(
            -1,
            &format!("set_dlg_profile: profile <{name}> needs a value\n"),
        );
        return -1;
    }
    let mut t = dialogs();
    let ok = t.join_profile(mark.id, &name, value.as_deref().unwrap_or(""));
    if ok {
        t.mark_dirty(mark.id);
    }
    bool_code(ok)
}

fn unset_dlg_profile(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some((name, value)) = profile_arg(f, "unset_dlg_profile", args) else {
        return -1;
    };
    let Some(mark) = f.msg.dialog else { return -1 };
    let mut t = dialogs();
    let ok = t.leave_profile(mark.id, &name, value.as_deref());
    if ok {
        t.mark_dirty(mark.id);
    }
    bool_code(ok)
}

fn is_in_profile(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some((name, value)) = profile_arg(f, "is_in_profile", args) else {
        return -1;
    };
    let Some(mark) = f.msg.dialog else { return -1 };
    let t = dialogs();
    bool_code(t.by_id.get(&mark.id).is_some_and(|d| {
        d.profiles
            .iter()
            .any(|(p, v)| *p == name && value.as_deref().is_none_or(|want| want == v))
    }))
}

fn get_profile_size(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some((name, value)) = profile_arg(f, "get_profile_size", args) else {
        return -1;
    };
    let n = dialogs().profile_size(&name, value.as_deref());
    f.set_output(2, Value::Int(n as i64));
    1
}

fn store_dlg_value(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (Some(name), Some(value), Some(mark)) = (args.first(), args.get(1), f.msg.dialog) else {
        return -1;
    };
    let (name, value) = (name.to_text().into_owned(), value.to_text().into_owned());
    let mut t = dialogs();
    let Some(d) = t.by_id.get_mut(&mark.id) else {
        return -1;
    };
    match d.vals.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => d.vals.push((name, value)),
    }
    t.mark_dirty(mark.id);
    1
}

fn fetch_dlg_value(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (Some(name), Some(mark)) = (args.first(), f.msg.dialog) else {
        return -1;
    };
    let name = name.to_text();
    let found = dialogs().by_id.get(&mark.id).and_then(|d| {
        d.vals
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    });
    match found {
        Some(v) => {
            f.set_output(1, Value::from(v));
            1
        }
        None => -1,
    }
}

/// `set_dlg_sharing_tag(tag)`: the dialog is handled by the node holding `tag` active (its
/// timeout, its pings). Without `dialog_replication_cluster` there is nothing to mark, and
/// the answer is 1, as in OpenSIPS.
fn set_dlg_sharing_tag(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    if cluster::cluster().is_none() {
        return 1;
    }
    let Some(mark) = f.msg.dialog else {
        f.log
            .log(-1, "set_dlg_sharing_tag: unable to fetch dialog\n");
        return -1;
    };
    let tag = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    if tag.is_empty() || !cluster::set_shtag(mark.id, &tag) {
        f.log.log(
            -1,
            &format!("set_dlg_sharing_tag: unable to set sharing tag <{tag}>\n"),
        );
        return -1;
    }
    1
}

fn bool_code(b: bool) -> i64 {
    if b { 1 } else { -1 }
}

/// Finds the dialog of a sequential request (`mode` as `dlg_match_mode`; `uri_did`: the id
/// its R-URI names, else our Route's), checks the request against it, then moves its state:
/// its CSeq, a target refresh, ACK confirms, BYE ends. A dialog another module marked comes
/// back as it was before the request.
pub(crate) fn matched(ctx: &mut MsgCtx, mode: i64, uri_did: Option<String>) -> Option<Dialog> {
    let s = settings();
    let (callid, from_tag, to_tag) = sip_ids(&ctx.msg)?;
    let did = uri_did.or_else(|| {
        ctx.rr_params.as_deref().and_then(|p| {
            p.split(';').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == s.rr_param).then(|| v.trim().to_owned())
            })
        })
    });
    let mut t = dialogs();
    let by_did = || -> Option<(u64, bool)> {
        let id = table::parse_did(did.as_deref()?)?;
        let d = t.by_id.get(&id)?;
        // The id alone is not trusted: the Call-ID and a tag must agree.
        if d.callid != callid {
            return None;
        }
        if d.caller.tag == from_tag {
            Some((id, false))
        } else if d.caller.tag == to_tag {
            Some((id, true))
        } else {
            None
        }
    };
    let found = match mode {
        0 => by_did(),
        2 => t.by_sip(&callid, &from_tag, &to_tag),
        _ if did.is_some() => by_did().or_else(|| t.by_sip(&callid, &from_tag, &to_tag)),
        _ => t.by_sip(&callid, &from_tag, &to_tag),
    };
    let (id, upstream) = found?;
    let d = t.by_id.get_mut(&id)?;
    let kept = (d.mod_flags != 0).then(|| d.clone());
    let method = ctx.msg.method();
    let cseq = ctx.msg.cseq().map(|c| c.seq).unwrap_or(0);
    let check = check(d, &ctx.msg, upstream, cseq, method, &s.rr_param);
    let now = Instant::now();
    let (sender, target) = if upstream {
        (&mut d.callee, &mut d.caller)
    } else {
        (&mut d.caller, &mut d.callee)
    };
    if method != Some(Method::Ack) && method != Some(Method::Cancel) && cseq > sender.cseq {
        sender.cseq = cseq;
    }
    within::renumber(ctx, target, method, cseq);
    // A target refresh (re-INVITE, UPDATE) brings the sender's new Contact.
    if matches!(method, Some(Method::Invite | Method::Update))
        && let Some(c) = contact_of(&ctx.msg)
    {
        sender.contact = c;
    }
    sst::request_within(d, &ctx.msg, now);
    let mut dirty = true;
    let mut ended = None;
    match method {
        Some(Method::Ack) if d.state == CONFIRMED_NA => {
            d.state = CONFIRMED;
            events::state_changed(d, CONFIRMED_NA);
        }
        Some(Method::Bye) if d.state != DELETED => {
            ended = Some(if upstream {
                "Upstream BYE"
            } else {
                "Downstream BYE"
            });
        }
        _ => dirty = method != Some(Method::Ack),
    }
    if let Some(why) = ended {
        t.end(id, why, s.delete_delay, now);
    }
    if dirty {
        t.mark_dirty(id);
    }
    ctx.dialog = Some(DialogMark {
        id,
        upstream,
        created: false,
        check,
    });
    kept
}

/// `validate_dialog`'s answer for a sequential request, from the dialog as it was before it.
fn check(
    d: &Dialog,
    msg: &sip::SipMessage,
    upstream: bool,
    cseq: u32,
    method: Option<Method>,
    rr_param: &str,
) -> i8 {
    if d.state < EARLY {
        return -4;
    }
    let (sender, target) = if upstream {
        (&d.callee, &d.caller)
    } else {
        (&d.caller, &d.callee)
    };
    // An ACK (and a CANCEL) repeats its INVITE's CSeq; anything else goes up.
    let cseq_ok = match method {
        Some(Method::Ack | Method::Cancel) => cseq <= sender.cseq,
        _ => cseq > sender.cseq,
    };
    if !cseq_ok {
        return -1;
    }
    // Topology hiding: the request came to our Contact, with no Route (OpenSIPS skips these).
    if d.mod_flags & table::TOPOH_ONGOING != 0 {
        return 1;
    }
    let ruri = msg.request_uri_str().unwrap_or("");
    // The same text is the usual case; RFC 3261's comparison only for the others.
    let same = ruri == target.contact
        || match (sip::Uri::parse(ruri), sip::Uri::parse(&target.contact)) {
            (Ok(a), Ok(b)) => a.equivalent(&b),
            _ => false,
        };
    if !target.contact.is_empty() && !same {
        return -2;
    }
    // What is left of the Route set after loose_route took ours.
    let ours = format!(";{rr_param}={}", d.did());
    let left: Vec<&str> = msg
        .values(sip::HeaderName::Route)
        .map(str::trim)
        .filter(|r| !r.contains(&ours))
        .collect();
    let same_routes = left.len() == target.route_set.len()
        && left.iter().zip(&target.route_set).all(|(a, b)| {
            *a == b.as_str()
                || match (sip::NameAddr::parse(a), sip::NameAddr::parse(b)) {
                    (Ok(x), Ok(y)) => x.uri().equivalent(y.uri()),
                    _ => false,
                }
        });
    if !same_routes {
        return -3;
    }
    1
}

/// Dialogs not yet ended (`$DLG_count`).
pub(crate) fn active_count() -> usize {
    dialogs().live
}
