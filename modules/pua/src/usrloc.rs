//! pua_usrloc: a user's registrations published as presence. `pua_set_publish()` before
//! `save()` marks a REGISTER: each contact it adds is published (a PIDF document with the
//! tuple open, for as long as the contact lasts), each refresh refreshes its publication,
//! each removal ends it; a contact the timer expires ends its publication, marked or not
//! (pua has none for the others). The publication's id is the contact's Call-ID.

use std::cell::Cell;
use std::sync::OnceLock;

use engine::{FnCtx, FnSpec, ModuleSpec, ParamType, Routes, Script, Value};
use registrar::usrloc::{Change, Contact};

use crate::{Outcome, PRESENCE, Publ, UL_PUBLISH};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "pua_usrloc",
    functions: &[FnSpec {
        name: "pua_set_publish",
        params: &[],
        routes: Routes::REQUEST,
        run: pua_set_publish,
    }],
    params: &[
        ("default_domain", ParamType::Str),
        ("entity_prefix", ParamType::Str),
        ("presence_server", ParamType::Str),
    ],
};

struct Config {
    default_domain: Option<String>,
    entity_prefix: Option<String>,
    presence_server: Option<String>,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

thread_local! {
    /// The message `pua_set_publish()` marked on this worker.
    static MARKED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Reads the parameters and watches the location tables; the presence server.
pub(crate) fn start(script: &Script) -> Result<Option<String>, String> {
    if !script.loads("pua_usrloc") {
        return Ok(None);
    }
    if !script.loads("usrloc") {
        return Err("pua_usrloc needs the usrloc module".into());
    }
    let text = |n: &str| {
        script
            .modparam_str("pua_usrloc", n)
            .filter(|s| !s.trim().is_empty())
    };
    let presence_server = text("presence_server");
    if let Some(s) = &presence_server
        && sip::Uri::parse(s).is_err()
    {
        return Err(format!(
            "pua_usrloc: presence_server `{s}` is not a SIP URI"
        ));
    }
    let _ = CONFIG.set(Config {
        default_domain: text("default_domain"),
        entity_prefix: text("entity_prefix"),
        presence_server: presence_server.clone(),
    });
    registrar::usrloc::set_contact_watch(Box::new(watch));
    Ok(presence_server)
}

/// `pua_set_publish()`: the contacts this REGISTER's `save()` writes are published.
fn pua_set_publish(f: &mut FnCtx<'_>, _args: &[Value]) -> i64 {
    MARKED.with(|m| m.set(Some(f.msg.id)));
    1
}

/// The address-of-record with the default domain when it has none.
fn full_aor(cfg: &Config, aor: &str) -> String {
    match &cfg.default_domain {
        Some(d) if !aor.contains('@') => format!("{aor}@{d}"),
        _ => aor.to_owned(),
    }
}

/// The PIDF document of a registered contact: its tuple open.
fn pidf(cfg: &Config, aor: &str, c: &Contact) -> String {
    let entity = match &cfg.entity_prefix {
        Some(p) => format!("{p}:{}", full_aor(cfg, aor)),
        None => full_aor(cfg, aor),
    };
    // OpenSIPS writes the tuple without the id RFC 3863 requires; ours has one, made from
    // the contact's Call-ID.
    let id: String = c
        .callid
        .chars()
        .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
        .collect();
    format!(
        "<?xml version=\"1.0\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" \
         xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" \
         xmlns:c=\"urn:ietf:params:xml:ns:pidf:cipid\" entity=\"{}\">\n\
         <tuple id=\"ul_{}\"><status><basic>open</basic></status></tuple>\n</presence>\n",
        escape(&entity),
        escape(&id)
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// usrloc's report of a contact change (its tables locked: the PUBLISH goes from pua's
/// thread).
fn watch(change: Change, aor: &str, c: &Contact) {
    let Some(cfg) = CONFIG.get() else { return };
    if change != Change::Expire {
        let marked = MARKED.with(Cell::get);
        if marked.is_none() || marked != registrar::usrloc::saving() {
            return;
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expires = match change {
        Change::Delete | Change::Expire => 0,
        // A permanent contact: pua's default.
        Change::Insert | Change::Update => c
            .expires
            .map_or(-1, |at| i64::try_from(at.saturating_sub(now)).unwrap_or(0)),
    };
    if expires == 0 && matches!(change, Change::Insert | Change::Update) {
        return;
    }
    let body = pidf(cfg, aor, c);
    let publ = Publ {
        pres_uri: format!("sip:{}", full_aor(cfg, aor)),
        id: c.callid.clone(),
        event: PRESENCE,
        source: UL_PUBLISH,
        body: (change == Change::Insert).then(|| body.clone()),
        expires,
        outbound_proxy: cfg.presence_server.clone(),
    };
    crate::work(Box::new(move || {
        let uri = publ.pres_uri.clone();
        let again = Publ {
            body: Some(body),
            ..publ.clone()
        };
        // A refresh of a contact pua did not publish yet starts its publication.
        let sent = match crate::send_publish(publ) {
            Ok(Outcome::NoBody) => crate::send_publish(again),
            other => other,
        };
        if let Err(e) = sent {
            log::error!("pua_usrloc: cannot publish the presence of {uri}: {e}");
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_reads_as_an_open_tuple() {
        let cfg = Config {
            default_domain: Some("example.com".into()),
            entity_prefix: Some("pres".into()),
            presence_server: None,
        };
        let c = Contact {
            uri: "sip:alice@192.0.2.1".into(),
            expires: None,
            q: -1,
            callid: "abc@192.0.2.1".into(),
            cseq: 1,
            cflags: 0,
            flags: 0,
            user_agent: String::new(),
            received: None,
            path: None,
            socket: None,
            methods: 0,
            instance: None,
            reg_id: 0,
            last_modified: 0,
            id: 1,
        };
        let text = pidf(&cfg, "alice", &c);
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let root = doc.root_element();
        assert_eq!(root.attribute("entity"), Some("pres:alice@example.com"));
        let tuple = root.first_element_child().unwrap();
        assert_eq!(tuple.attribute("id"), Some("ul_abc_192_0_2_1"));
        let basic = tuple.descendants().find(|n| n.has_tag_name("basic"));
        assert_eq!(basic.and_then(|b| b.text()), Some("open"));
        assert_eq!(full_aor(&cfg, "bob@other.org"), "bob@other.org");
    }
}
