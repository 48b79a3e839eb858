//! The dialog module's MI commands: `dialog:list` (`dlg_list`), `dialog:end_dlg`
//! (`dlg_end_dlg`), `dialog:profile_get_size` (`profile_get_size`),
//! `dialog:profile_list_dlgs` (`profile_list_dlgs`) and `dialog:list_all_profiles`
//! (`list_all_profiles`), with OpenSIPS' keys.

use std::time::Instant;

use ::mi::{Command, Mi, MiError};
use serde_json::{Value as Json, json};

use crate::table::{Dialog, dialogs, unix_now};

fn date(secs: i64) -> String {
    engine::pv::time::strftime(secs, "%Y-%m-%d %H:%M:%S")
}

/// One dialog as `dlg_list` shows it.
pub fn dialog_json(d: &Dialog, now: Instant) -> Json {
    let timeout = match d.expires {
        Some(at) => unix_now() + at.saturating_duration_since(now).as_secs() as i64,
        None => 0,
    };
    let mut o = json!({
        "ID": d.id.to_string(),
        "state": d.state,
        "user_flags": d.user_flags,
        "timestart": d.start_unix,
        "timeout": timeout,
        "callid": d.callid,
        "from_uri": d.from_uri,
        "to_uri": d.to_uri,
        "caller_tag": d.caller.tag,
        "caller_contact": d.caller.contact,
        "caller_cseq": d.caller.cseq.to_string(),
        "caller_route_set": d.caller.route_set.join(","),
        "caller_bind_addr": d.caller.socket.clone().unwrap_or_default(),
        "caller_sdp": "",
        "CALLEES": [{
            "callee_tag": d.callee.tag,
            "callee_contact": d.callee.contact,
            "callee_cseq": d.callee.cseq.to_string(),
            "callee_route_set": d.callee.route_set.join(","),
            "callee_bind_addr": d.callee.socket.clone().unwrap_or_default(),
            "callee_sdp": "",
        }],
    });
    if d.start_unix > 0 {
        o["datestart"] = json!(date(d.start_unix));
    }
    if timeout > 0 {
        o["dateout"] = json!(date(timeout));
    }
    if !d.profiles.is_empty() {
        o["profiles"] = d
            .profiles
            .iter()
            .map(|(p, v)| json!({ p.clone(): v }))
            .collect();
    }
    if !d.vals.is_empty() {
        o["values"] = d
            .vals
            .iter()
            .map(|(n, v)| json!({ n.clone(): v }))
            .collect();
    }
    o
}

fn profile_of(p: &::mi::Params) -> Result<(String, Option<String>), MiError> {
    let name = p
        .str("profile")?
        .ok_or_else(|| MiError::new(400, "Bad parameter value"))?;
    let has_values = crate::settings()
        .profile(&name)
        .ok_or_else(|| MiError::new(404, "Profile not found"))?;
    let value = p.str("value")?;
    if value.is_some() && !has_values {
        return Err(MiError::new(400, "Profile has no values"));
    }
    Ok((name, value))
}

pub fn commands(mi: &mut Mi) {
    mi.add(Command::new(
        "dialog:list",
        &["dlg_list"],
        &[
            &[],
            &["callid"],
            &["callid", "from_tag"],
            &["index", "counter"],
        ],
        |p| {
            let now = Instant::now();
            // A copy: the table is not held while the answer is built.
            let mut list: Vec<Dialog> = dialogs().by_id.values().cloned().collect();
            list.sort_by_key(|d| d.id);
            if let Some(callid) = p.str("callid")? {
                let tag = p.str("from_tag")?;
                list.retain(|d| {
                    d.callid == callid && tag.as_ref().is_none_or(|t| *t == d.caller.tag)
                });
                if list.is_empty() {
                    return Err(MiError::new(404, "Nothing found"));
                }
            }
            let index = p.int("index")?;
            let counter = p.int("counter")?;
            let total = list.len();
            if let (Some(i), Some(n)) = (index, counter) {
                if i < 0 || n <= 0 {
                    return Err(MiError::new(400, "Bad parameter value"));
                }
                list = list.into_iter().skip(i as usize).take(n as usize).collect();
            }
            let dialogs: Vec<Json> = list.iter().map(|d| dialog_json(d, now)).collect();
            Ok(if index.is_some() {
                json!({ "count": total, "Dialogs": dialogs })
            } else {
                json!({ "Dialogs": dialogs })
            })
        },
    ));
    mi.add(Command::new(
        "dialog:end_dlg",
        &["dlg_end_dlg"],
        &[&["dialog_id"], &["dialog_id", "extra_hdrs"]],
        |p| {
            let id = p
                .str("dialog_id")?
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| MiError::new(400, "Bad parameter value"))?;
            // Headers as one string; a shell passes the line ends as the text `\r\n`.
            let extra = p
                .str("extra_hdrs")?
                .unwrap_or_default()
                .replace("\\r\\n", "\r\n")
                .replace("\\n", "\r\n");
            if crate::end::terminate(id, "MI Termination", &extra) {
                Ok(json!("OK"))
            } else {
                Err(MiError::new(404, "Requested Dialog not found"))
            }
        },
    ));
    mi.add(Command::new(
        "dialog:profile_get_size",
        &["profile_get_size"],
        &[&["profile"], &["profile", "value"]],
        |p| {
            let (name, value) = profile_of(p)?;
            let count = dialogs().profile_size(&name, value.as_deref());
            Ok(json!({ "Profile": {
                "name": name,
                "value": value.unwrap_or_default(),
                "count": count,
            }}))
        },
    ));
    mi.add(Command::new(
        "dialog:profile_list_dlgs",
        &["profile_list_dlgs"],
        &[&["profile"], &["profile", "value"]],
        |p| {
            let (name, value) = profile_of(p)?;
            let now = Instant::now();
            let mut list: Vec<Dialog> = dialogs()
                .by_id
                .values()
                .filter(|d| {
                    d.profiles
                        .iter()
                        .any(|(pn, v)| *pn == name && value.as_ref().is_none_or(|want| want == v))
                })
                .cloned()
                .collect();
            list.sort_by_key(|d| d.id);
            let dialogs: Vec<Json> = list.iter().map(|d| dialog_json(d, now)).collect();
            Ok(json!({ "Dialogs": dialogs }))
        },
    ));
    mi.add(Command::new(
        "dialog:list_all_profiles",
        &["list_all_profiles"],
        &[&[]],
        |_| {
            let profiles: Vec<Json> = crate::settings()
                .profiles
                .iter()
                .map(|(n, v)| json!({ "name": n, "has value": if *v { "yes" } else { "no" } }))
                .collect();
            Ok(json!({ "Profiles": profiles }))
        },
    ));
}
