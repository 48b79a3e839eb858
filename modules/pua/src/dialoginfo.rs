//! pua_dialoginfo: `dialoginfo_set([sides])` on an initial INVITE makes (or takes) its
//! dialog and publishes, through pua, the call's state as RFC 4235 dialog-info for the caller
//! (`A`, the From URI, or `caller_spec_param`) and the callee (`B`, the Request-URI with the
//! To display name, or `callee_spec_param`): `trying` at once (`publish_on_trying`), `early`
//! on the first provisional reply with a tag (`confirmed` for the caller with
//! `caller_confirmed`), `confirmed` when answered (for the dialog's lifetime) and
//! `terminated` (an end of the publication) when it fails or ends.
//!
//! The dialog's changes reach pua's thread through a queue: the dialog module reports them
//! with its table locked, and a PUBLISH runs the script's `local_route`.
//!
//! Differences from OpenSIPS: one dialog element per call, whatever the forking (OpenSIPS
//! publishes each ringing branch with an id of its own), so `dialoginfo_set_branch_callee`
//! and `dialoginfo_mute_branch` are not offered; a re-INVITE does not republish (pua
//! refreshes the publication anyway), so `nopublish_flag` is read and has no use.

use std::sync::OnceLock;

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};

use crate::{DIALOG, DIALOG_PUBLISH, Publ};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "pua_dialoginfo",
    functions: &[FnSpec {
        name: "dialoginfo_set",
        params: &[(Param::Str, true)],
        routes: Routes::REQUEST,
        run: dialoginfo_set,
    }],
    params: &[
        ("include_callid", ParamType::Int),
        ("include_localremote", ParamType::Int),
        ("include_tags", ParamType::Int),
        ("caller_confirmed", ParamType::Int),
        ("publish_on_trying", ParamType::Int),
        ("presence_server", ParamType::Str),
        ("caller_spec_param", ParamType::Str),
        ("callee_spec_param", ParamType::Str),
        ("osips_ps", ParamType::Int),
        ("nopublish_flag", ParamType::Str),
    ],
};

/// How long a call that is not answered yet is published for (OpenSIPS' value).
const CREATED_LIFETIME: i64 = 3600;

struct Config {
    include_callid: bool,
    include_localremote: bool,
    include_tags: bool,
    caller_confirmed: bool,
    publish_on_trying: bool,
    presence_server: Option<String>,
    caller_spec: Option<String>,
    callee_spec: Option<String>,
    /// OpenSIPS' presence server aggregates and versions the documents itself (`osips_ps`
    /// 1); otherwise each document carries pua's version of its publication.
    osips_ps: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// One side of a call: its URI and display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub uri: String,
    pub display: Option<String>,
}

impl Party {
    fn parse(text: &str) -> Option<Party> {
        let a = sip::NameAddr::parse(text.trim()).ok()?;
        Some(Party {
            uri: a.uri().as_str().to_owned(),
            display: a.display_name().map(|d| d.into_owned()),
        })
    }
}

/// A call `dialoginfo_set` marked.
#[derive(Debug, Clone)]
struct Call {
    caller: Party,
    callee: Party,
    /// Publish for the caller (`A`) and for the callee (`B`).
    sides: (bool, bool),
}

/// A state to publish for a call.
#[derive(Debug, Clone)]
struct Job {
    call: std::sync::Arc<Call>,
    state: &'static str,
    callid: String,
    caller_tag: String,
    callee_tag: String,
    expires: i64,
}

/// Reads the parameters; the presence server, for the publications pua restores.
pub(crate) fn start(script: &Script) -> Result<Option<String>, String> {
    if !script.loads("pua_dialoginfo") {
        return Ok(None);
    }
    if !script.loads("dialog") {
        return Err("pua_dialoginfo needs the dialog module".into());
    }
    let int = |n: &str, d: i64| script.modparam_int("pua_dialoginfo", n).unwrap_or(d) != 0;
    let text = |n: &str| {
        script
            .modparam_str("pua_dialoginfo", n)
            .filter(|s| !s.trim().is_empty())
    };
    for (param, spec) in [
        ("caller_spec_param", text("caller_spec_param")),
        ("callee_spec_param", text("callee_spec_param")),
    ] {
        if let Some(s) = &spec
            && !s.trim_start().starts_with('$')
        {
            return Err(format!(
                "pua_dialoginfo: {param} must be a variable, not `{s}`"
            ));
        }
    }
    let presence_server = text("presence_server");
    if let Some(s) = &presence_server
        && sip::Uri::parse(s).is_err()
    {
        return Err(format!(
            "pua_dialoginfo: presence_server `{s}` is not a SIP URI"
        ));
    }
    let cfg = Config {
        include_callid: int("include_callid", 1),
        include_localremote: int("include_localremote", 1),
        include_tags: int("include_tags", 1),
        caller_confirmed: int("caller_confirmed", 0),
        publish_on_trying: int("publish_on_trying", 0),
        presence_server: presence_server.clone(),
        caller_spec: text("caller_spec_param"),
        callee_spec: text("callee_spec_param"),
        osips_ps: int("osips_ps", 1),
    };
    let _ = CONFIG.set(cfg);
    Ok(presence_server)
}

fn queue(job: Job) {
    crate::work(Box::new(move || publish(&job)));
}

/// A variable's value read for `caller_spec_param` / `callee_spec_param`, when it is set.
fn spec_value(f: &mut FnCtx<'_>, spec: Option<&String>) -> Option<String> {
    let v = f.eval_format(spec?);
    if v.is_null() {
        return None;
    }
    let t = v.to_text().trim().to_owned();
    (!t.is_empty()).then_some(t)
}

/// `dialoginfo_set([sides])`: `A` the caller, `B` the callee, both when left out.
fn dialoginfo_set(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(cfg) = CONFIG.get() else { return -1 };
    if f.msg.msg.method() != Some(sip::Method::Invite) {
        return 1;
    }
    let sides = match args.first().filter(|v| !v.is_null()) {
        None => (true, true),
        Some(v) => {
            let s = v.to_text();
            let mut sides = (false, false);
            for c in s.chars() {
                match c {
                    'A' => sides.0 = true,
                    'B' => sides.1 = true,
                    other => {
                        log::error!("dialoginfo_set: unsupported party flag [{other}], ignoring")
                    }
                }
            }
            if sides == (false, false) {
                (true, true)
            } else {
                sides
            }
        }
    };
    let caller = match spec_value(f, cfg.caller_spec.as_ref()) {
        Some(t) => Party::parse(&t),
        None => f.msg.msg.from_header().ok().map(|a| Party {
            uri: a.uri().as_str().to_owned(),
            display: a.display_name().map(|d| d.into_owned()),
        }),
    };
    let callee = match spec_value(f, cfg.callee_spec.as_ref()) {
        Some(t) => Party::parse(&t),
        None => f.msg.ruri().map(str::to_owned).map(|uri| Party {
            display: f
                .msg
                .msg
                .to_header()
                .ok()
                .and_then(|a| a.display_name().map(|d| d.into_owned())),
            uri,
        }),
    };
    let (Some(caller), Some(callee)) = (caller, callee) else {
        f.log
            .log(-1, "dialoginfo_set: cannot read the caller or the callee\n");
        return -1;
    };
    let id = match dialog::create(f.msg, dialog::table::Flags::default()) {
        Ok(id) => id,
        Err(e) => {
            f.log.log(
                -1,
                &format!("dialoginfo_set: failed to create dialog: {e}\n"),
            );
            return -1;
        }
    };
    let call = std::sync::Arc::new(Call {
        caller,
        callee,
        sides,
    });
    if cfg.publish_on_trying {
        let m = &f.msg.msg;
        queue(Job {
            call: std::sync::Arc::clone(&call),
            state: "trying",
            callid: m.call_id().unwrap_or("").to_owned(),
            caller_tag: m.from_tag().ok().flatten().unwrap_or("").to_owned(),
            callee_tag: String::new(),
            expires: CREATED_LIFETIME,
        });
    }
    let watched = dialog::events::watch(
        id,
        Box::new(move |seen| {
            let (state, expires) = match seen.state {
                dialog::table::EARLY => ("early", CREATED_LIFETIME),
                dialog::table::CONFIRMED_NA if seen.old < dialog::table::CONFIRMED_NA => {
                    ("confirmed", i64::from(seen.lifetime))
                }
                dialog::table::DELETED => ("terminated", 0),
                _ => return,
            };
            queue(Job {
                call: std::sync::Arc::clone(&call),
                state,
                callid: seen.callid.clone(),
                caller_tag: seen.caller_tag.clone(),
                callee_tag: seen.callee_tag.clone(),
                expires,
            });
        }),
    );
    if !watched {
        f.log.log(-1, "dialoginfo_set: the dialog is gone\n");
        return -1;
    }
    1
}

/// Publishes a call's state for the sides it is published for.
fn publish(job: &Job) {
    let Some(cfg) = CONFIG.get() else { return };
    let call = &job.call;
    // OpenSIPS' dialog id: the Call-ID and the branch (always the first here).
    let id = format!("{}.0", job.callid);
    let mut sides: Vec<(&Party, &Party, bool, &str, &str, &str)> = Vec::new();
    if call.sides.0 {
        let state = if job.state == "early" && cfg.caller_confirmed {
            "confirmed"
        } else {
            job.state
        };
        sides.push((
            &call.caller,
            &call.callee,
            true,
            state,
            &job.caller_tag,
            &job.callee_tag,
        ));
    }
    if call.sides.1 {
        sides.push((
            &call.callee,
            &call.caller,
            false,
            job.state,
            &job.callee_tag,
            &job.caller_tag,
        ));
    }
    for (entity, peer, initiator, state, local_tag, remote_tag) in sides {
        let doc = Doc {
            entity,
            peer,
            id: &id,
            callid: &job.callid,
            state,
            initiator,
            local_tag,
            remote_tag,
        };
        let body = body(cfg, &doc, crate::version_of(&entity.uri, &id));
        let publ = Publ {
            pres_uri: entity.uri.clone(),
            id: id.clone(),
            event: DIALOG,
            source: DIALOG_PUBLISH,
            body: Some(body),
            expires: job.expires,
            outbound_proxy: cfg.presence_server.clone(),
        };
        if let Err(e) = crate::send_publish(publ) {
            log::error!(
                "pua_dialoginfo: sending publish failed for pres_uri [{}] to server [{}]: {e}",
                entity.uri,
                cfg.presence_server.as_deref().unwrap_or("")
            );
        }
    }
}

/// What one side's document says.
struct Doc<'a> {
    entity: &'a Party,
    peer: &'a Party,
    id: &'a str,
    callid: &'a str,
    state: &'a str,
    initiator: bool,
    local_tag: &'a str,
    remote_tag: &'a str,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn identity(p: &Party) -> String {
    let uri = escape(&p.uri);
    let display = p
        .display
        .as_deref()
        .filter(|d| !d.is_empty())
        .map_or(String::new(), |d| format!(" display=\"{}\"", escape(d)));
    format!("<identity{display}>{uri}</identity><target uri=\"{uri}\"/>")
}

/// The partial dialog-info document of one side (`version` only for a presence server
/// other than OpenSIPS', `osips_ps` 0).
fn body(cfg: &Config, d: &Doc<'_>, version: u32) -> String {
    let version = if cfg.osips_ps {
        String::new()
    } else {
        format!(" version=\"{version}\"")
    };
    let mut dialog = format!("<dialog id=\"{}\"", escape(d.id));
    if cfg.include_callid {
        dialog.push_str(&format!(" call-id=\"{}\"", escape(d.callid)));
    }
    if cfg.include_tags {
        for (name, tag) in [("local-tag", d.local_tag), ("remote-tag", d.remote_tag)] {
            if !tag.is_empty() {
                dialog.push_str(&format!(" {name}=\"{}\"", escape(tag)));
            }
        }
    }
    dialog.push_str(if d.initiator {
        " direction=\"initiator\">"
    } else {
        " direction=\"recipient\">"
    });
    dialog.push_str(&format!("<state>{}</state>", d.state));
    if cfg.include_localremote {
        dialog.push_str(&format!(
            "<remote>{}</remote><local>{}</local>",
            identity(d.peer),
            identity(d.entity)
        ));
    }
    format!(
        "<?xml version=\"1.0\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\"{version} \
         state=\"partial\" entity=\"{}\">\n{dialog}</dialog>\n</dialog-info>\n",
        escape(&d.entity.uri)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(osips_ps: bool) -> Config {
        Config {
            include_callid: true,
            include_localremote: true,
            include_tags: true,
            caller_confirmed: false,
            publish_on_trying: false,
            presence_server: None,
            caller_spec: None,
            callee_spec: None,
            osips_ps,
        }
    }

    #[test]
    fn a_side_document_names_the_call_and_both_parties() {
        let alice = Party::parse("\"Alice & Co\" <sip:alice@example.com>").unwrap();
        let bob = Party::parse("sip:bob@example.com").unwrap();
        let d = Doc {
            entity: &bob,
            peer: &alice,
            id: "c1.0",
            callid: "c1",
            state: "early",
            initiator: false,
            local_tag: "bt",
            remote_tag: "",
        };
        let text = body(&cfg(true), &d, 4);
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let root = doc.root_element();
        assert_eq!(root.attribute("entity"), Some("sip:bob@example.com"));
        assert_eq!(root.attribute("state"), Some("partial"));
        assert_eq!(root.attribute("version"), None);
        let dialog = root.first_element_child().unwrap();
        assert_eq!(dialog.attribute("id"), Some("c1.0"));
        assert_eq!(dialog.attribute("call-id"), Some("c1"));
        assert_eq!(dialog.attribute("local-tag"), Some("bt"));
        assert_eq!(dialog.attribute("remote-tag"), None);
        assert_eq!(dialog.attribute("direction"), Some("recipient"));
        let texts: Vec<&str> = dialog
            .descendants()
            .filter(|n| n.is_text())
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(
            texts,
            vec!["early", "sip:alice@example.com", "sip:bob@example.com"]
        );
        let display = dialog
            .descendants()
            .find(|n| n.tag_name().name() == "identity")
            .and_then(|n| n.attribute("display"));
        assert_eq!(display, Some("Alice & Co"));
        // Another presence server gets pua's version.
        let text = body(&cfg(false), &d, 4);
        assert!(text.contains(" version=\"4\" "), "{text}");
    }
}
