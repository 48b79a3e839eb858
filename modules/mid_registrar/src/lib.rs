//! The OpenSIPS `mid_registrar` module: a registrar placed in front of the platform's main
//! registrar. `mid_registrar_save()` keeps the UAs' bindings in usrloc (the `registrar`
//! crate's tables) and rewrites the REGISTER the script relays upstream so that the main
//! registrar reaches the UAs through us; `mid_registrar_lookup()` turns a request coming back
//! from the main registrar into the UA's contact. Three working modes (`mode`):
//!
//! - 0, contact mirroring: every REGISTER goes upstream, each Contact replaced by one of ours
//!   carrying a contact id (`;ctid=`); the bindings are stored when the main registrar accepts
//!   them, for the lifetime it granted.
//! - 1, contact throttling: as 0, but upstream a contact lives `outgoing_expires`; the UA's
//!   refreshes in between are answered here (200 OK) until the upstream binding needs one.
//! - 2, AoR throttling: upstream sees one Contact per address-of-record
//!   (`sip:user%40domain@us`), refreshed every `outgoing_expires`; lookup forks to the AoR's
//!   local contacts.
//!
//! The main registrar's reply is processed on its own, as in OpenSIPS: tm hands every reply
//! it relays to the hooks modules add (`engine::hooks::add_reply_hook`), and this module's
//! hook takes the REGISTER replies of the transactions `mid_registrar_save()` marked (see
//! [`reply`]); no onreply route is needed.
#![forbid(unsafe_code)]

pub mod dereg;
pub mod lookup;
pub mod reply;
pub mod save;
pub mod state;
pub mod throttle;

use engine::{FnSpec, ModuleSpec, Param, ParamType, Routes, Script};

use ParamType::{Int, Str};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "mid_registrar",
    functions: &[
        FnSpec {
            name: "mid_registrar_save",
            params: &[
                (Param::StaticStr, false),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Int, true),
                (Param::Str, true),
            ],
            // OpenSIPS: request route only (the reply is handled by a tm callback); here the
            // onreply route of the relayed REGISTER calls it for the reply.
            routes: Routes::REQUEST.or(Routes::ONREPLY),
            run: save::mid_registrar_save,
        },
        FnSpec {
            name: "mid_registrar_lookup",
            params: &[
                (Param::StaticStr, false),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: Routes::REQUEST,
            run: lookup::mid_registrar_lookup,
        },
    ],
    params: &[
        ("mode", Int),
        ("outgoing_expires", Int),
        ("contact_id_insertion", Str),
        ("contact_id_param", Str),
        ("at_escape_str", Str),
        ("extra_contact_params_avp", Str),
        ("attr_avp", Str),
        ("default_expires", Int),
        ("min_expires", Int),
        ("max_expires", Int),
        ("default_q", Int),
        ("tcp_persistent_flag", Str),
        ("realm_prefix", Str),
        ("case_sensitive", Int),
        ("received_avp", Str),
        ("received_param", Str),
        ("retry_after", Int),
        ("gruu_secret", Str),
        ("disable_gruu", Int),
        ("allow_dup_cseq", Int),
        ("expires_max_deviation", Int),
        ("max_contacts", Int),
        ("max_username_len", Int),
        ("max_domain_len", Int),
        ("max_aor_len", Int),
        ("max_contact_len", Int),
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

const NAME: &str = "mid_registrar";

/// The working mode (`mode` modparam).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 0: every REGISTER goes upstream, contacts mirrored.
    Mirror,
    /// 1: per-contact throttling.
    ThrottleContact,
    /// 2: per-AoR throttling, one upstream Contact per AoR.
    ThrottleAor,
}

/// Where the contact id goes in the Contacts we send upstream (`contact_id_insertion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insertion {
    /// `ct-param`: a `;<contact_id_param>=<id>` URI parameter (default).
    Param,
    /// `ct-username`: the id is the URI's user part.
    User,
}

/// The module's parameters, as the script sets them (OpenSIPS defaults otherwise).
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub outgoing_expires: u32,
    pub insertion: Insertion,
    pub ctid_param: String,
    pub at_escape: String,
    /// The `$avp` slot of `extra_contact_params_avp`, if set and used.
    pub extra_params_avp: Option<usize>,
    /// The registrar settings `save`/`lookup` share with the registrar crate, filled from
    /// mid_registrar's own modparams (and usrloc's).
    pub reg: registrar::Settings,
}

impl Config {
    /// The configuration of `script`; [`check`] refused the bad values at start.
    pub fn of(script: &Script) -> Config {
        let int = |name: &str| script.modparam_int(NAME, name);
        let text = |name: &str| script.modparam_str(NAME, name);
        let count = |v: Option<i64>, default: u32| {
            v.map_or(default, |n| u32::try_from(n.max(0)).unwrap_or(u32::MAX))
        };
        let len = |v: Option<i64>, default: usize| {
            v.map_or(default, |n| usize::try_from(n.max(0)).unwrap_or(usize::MAX))
        };
        let ul = |name: &str| script.modparam_int("usrloc", name);
        let avp = |name: &str| {
            text(name).and_then(|a| {
                let inner = a
                    .trim()
                    .strip_prefix("$avp(")?
                    .strip_suffix(')')?
                    .to_owned();
                script.avp_id(&inner)
            })
        };
        let default_q = int("default_q").map_or(-1, |q| {
            if q < 0 {
                -1
            } else {
                i32::try_from(q.min(1000)).unwrap_or(1000)
            }
        });
        let reg = registrar::Settings {
            use_domain: ul("use_domain").is_none_or(|n| n != 0),
            match_callid: ul("matching_mode") == Some(1),
            desc_time_order: ul("desc_time_order").is_some_and(|n| n != 0),
            nat_bflag: script
                .modparam_str("usrloc", "nat_bflag")
                .and_then(|f| script.flag_bit(f.trim())),
            tcp_persistent_flag: text("tcp_persistent_flag")
                .and_then(|f| script.flag_bit(f.trim())),
            default_expires: count(int("default_expires"), 3600),
            min_expires: count(int("min_expires"), 10),
            max_expires: count(int("max_expires"), 3600),
            default_q,
            case_sensitive: int("case_sensitive").is_none_or(|n| n != 0),
            realm_prefix: text("realm_prefix").unwrap_or_default(),
            max_contacts: count(int("max_contacts"), 0),
            max_username_len: len(int("max_username_len"), 64),
            max_domain_len: len(int("max_domain_len"), 64),
            max_aor_len: len(int("max_aor_len"), 256),
            max_contact_len: len(int("max_contact_len"), 255),
            allow_dup_cseq: int("allow_dup_cseq").is_none_or(|n| n != 0),
            retry_after: count(int("retry_after"), 0),
            received_avp: avp("received_avp"),
            received_param: text("received_param").unwrap_or_else(|| "received".into()),
        };
        Config {
            mode: match int("mode") {
                Some(1) => Mode::ThrottleContact,
                Some(2) => Mode::ThrottleAor,
                _ => Mode::Mirror,
            },
            outgoing_expires: count(int("outgoing_expires"), 3600),
            insertion: insertion(text("contact_id_insertion").as_deref())
                .unwrap_or(Insertion::Param),
            ctid_param: text("contact_id_param").unwrap_or_else(|| "ctid".into()),
            at_escape: text("at_escape_str").unwrap_or_else(|| "%40".into()),
            extra_params_avp: avp("extra_contact_params_avp"),
            reg,
        }
    }
}

/// `contact_id_insertion`: OpenSIPS compares the first letters only (`ct-user…`).
fn insertion(v: Option<&str>) -> Option<Insertion> {
    let v = v?.trim().to_ascii_lowercase();
    if v.starts_with("ct-param") {
        Some(Insertion::Param)
    } else if v.starts_with("ct-user") {
        Some(Insertion::User)
    } else {
        None
    }
}

/// Whether `s` is made only of characters a URI parameter name may hold (RFC 3261 §25.1
/// `pname`).
fn is_param_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()[]/:&+$".contains(&b))
}

/// Whether `s` may stand in a URI user part as is (RFC 3261 §25.1 `user`, escapes allowed).
fn is_user_text(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()%&=+$,;?/".contains(&b))
}

/// Checks the module's parameters when the server starts (OpenSIPS `mod_init`): a bad value
/// stops the start with a message naming it.
pub fn check(script: &Script) -> Result<(), String> {
    if !script.loads(NAME) {
        return Ok(());
    }
    for needed in ["usrloc", "signaling", "tm"] {
        if !script.loads(needed) {
            return Err(format!(
                "{NAME}: the module needs module \"{needed}\" loaded"
            ));
        }
    }
    let int = |name: &str| script.modparam_int(NAME, name);
    if let Some(m) = int("mode")
        && !(0..=2).contains(&m)
    {
        return Err(format!(
            "{NAME}: bad \"mode\" {m}: 0 (contact mirroring), 1 (contact throttling) or 2 \
             (AoR throttling)"
        ));
    }
    if let Some(e) = int("outgoing_expires")
        && e <= 0
    {
        return Err(format!(
            "{NAME}: bad \"outgoing_expires\" value: {e} (must be > 0)"
        ));
    }
    for name in [
        "default_expires",
        "min_expires",
        "max_expires",
        "max_contacts",
    ] {
        if let Some(v) = int(name)
            && v < 0
        {
            return Err(format!("{NAME}: bad \"{name}\" value: {v} (must be >= 0)"));
        }
    }
    if let Some(p) = script.modparam_str(NAME, "contact_id_param")
        && !is_param_name(p.trim())
    {
        return Err(format!(
            "{NAME}: empty \"contact_id_param\" or it contains bad chars: '{p}'"
        ));
    }
    if let Some(s) = script.modparam_str(NAME, "at_escape_str")
        && !is_user_text(s.trim())
    {
        return Err(format!(
            "{NAME}: empty \"at_escape_str\" or it contains bad chars: '{s}'"
        ));
    }
    if let Some(v) = script.modparam_str(NAME, "contact_id_insertion")
        && insertion(Some(&v)).is_none()
    {
        log::warn!("{NAME}: bad 'contact_id_insertion' ({v}) - using 'ct-param' as a default");
    }
    for name in ["received_avp", "extra_contact_params_avp", "attr_avp"] {
        if let Some(v) = script.modparam_str(NAME, name)
            && !v.trim().is_empty()
            && !(v.trim().starts_with("$avp(") && v.trim().ends_with(')'))
        {
            return Err(format!(
                "{NAME}: \"{name}\": malformed or non AVP definition '{v}'"
            ));
        }
    }
    if int("pn_enable").is_some_and(|v| v != 0) {
        return Err(format!(
            "{NAME}: \"pn_enable\": SIP Push Notifications (RFC 8599) are not supported by rsips"
        ));
    }
    Ok(())
}

/// What the module needs when the server starts: the parameters checked.
pub fn start(script: &Script) -> Result<(), String> {
    check(script)?;
    if script.loads("mid_registrar") {
        static HOOKED: std::sync::Once = std::sync::Once::new();
        // The main registrar's answers reach the module by tm's reply hook (no onreply
        // route needed, as in OpenSIPS).
        HOOKED.call_once(|| {
            engine::hooks::add_reply_hook(Box::new(|ctx, script| {
                if ctx.msg.is_request() {
                    return;
                }
                let is_register = ctx
                    .msg
                    .cseq()
                    .is_ok_and(|c| c.method == sip::Method::Register);
                if is_register {
                    let cfg = Config::of(script);
                    crate::reply::on_reply(ctx, script, &cfg, "");
                }
            }));
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_id_insertion_reads_as_opensips_does() {
        assert_eq!(insertion(Some("ct-param")), Some(Insertion::Param));
        assert_eq!(insertion(Some("CT-USERNAME")), Some(Insertion::User));
        assert_eq!(insertion(Some("ct-user")), Some(Insertion::User));
        assert_eq!(insertion(Some("bogus")), None);
    }

    #[test]
    fn parameter_names_and_escapes_are_checked() {
        assert!(is_param_name("ctid") && is_param_name("x-id"));
        assert!(!is_param_name("") && !is_param_name("ct id") && !is_param_name("a;b"));
        assert!(is_user_text("%40") && is_user_text("___"));
        assert!(!is_user_text("") && !is_user_text("a@b") && !is_user_text("a b"));
    }
}
