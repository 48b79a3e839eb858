//! The dialog module's MI commands, with OpenSIPS' keys: `dialog:list` (`dlg_list`),
//! `dialog:list_ctx` (`dlg_list_ctx`), `dialog:end_dlg` (`dlg_end_dlg`),
//! `dialog:profile_get_size`, `dialog:profile_list_dlgs`, `dialog:profile_get_values`,
//! `dialog:profile_end_dlgs`, `dialog:list_all_profiles`, `dialog:push_var`
//! (`dlg_push_var`), `dialog:set_profile`, `dialog:unset_profile`,
//! `dialog:send_sequential` and `dialog:cluster_sync` (`dlg_cluster_sync`; its
//! `sharing_tag` is taken but every dialog is asked for).

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
        "caller_sdp": d.caller.in_sdp,
        "CALLEES": [{
            "callee_tag": d.callee.tag,
            "callee_contact": d.callee.contact,
            "callee_cseq": d.callee.cseq.to_string(),
            "callee_route_set": d.callee.route_set.join(","),
            "callee_bind_addr": d.callee.socket.clone().unwrap_or_default(),
            "callee_sdp": d.callee.in_sdp,
        }],
    });
    if !d.caller.out_sdp.is_empty() {
        o["caller_sent_sdp"] = json!(d.caller.out_sdp);
    }
    if !d.callee.out_sdp.is_empty() {
        o["CALLEES"][0]["callee_sent_sdp"] = json!(d.callee.out_sdp);
    }
    if d.start_unix > 0 {
        o["datestart"] = json!(date(d.start_unix));
    }
    if timeout > 0 {
        o["dateout"] = json!(date(timeout));
    }
    o
}

/// One dialog as `dialog:list_ctx` shows it (and `$DLG_ctx_json`): [`dialog_json`] with a
/// `context` of its values (non-printable bytes escaped) and profiles.
pub fn dialog_ctx_json(d: &Dialog, now: Instant) -> Json {
    let mut o = dialog_json(d, now);
    let mut context = json!({});
    if !d.vals.is_empty() {
        context["values"] = d
            .vals
            .iter()
            .map(|(n, v)| json!({ n.clone(): printable(v) }))
            .collect();
    }
    if !d.profiles.is_empty() {
        context["profiles"] = d
            .profiles
            .iter()
            .map(|(p, v)| json!({ p.clone(): v }))
            .collect();
    }
    o["context"] = context;
    o
}

/// A dialog value as OpenSIPS prints it: control and non-ASCII bytes escaped (`\n`, `\x00`).
fn printable(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            0x20..=0x7e => out.push(char::from(b)),
            0x08 => out.push_str("\\b"),
            0x09 => out.push_str("\\t"),
            0x0a => out.push_str("\\n"),
            0x0c => out.push_str("\\f"),
            0x0d => out.push_str("\\r"),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The dialogs `dialog:list` and `dialog:list_ctx` show (all, one Call-ID with an optional
/// From tag, or a page).
fn list(p: &::mi::Params, ctx: bool) -> Result<Json, MiError> {
    let now = Instant::now();
    // A copy: the table is not held while the answer is built.
    let mut list: Vec<Dialog> = dialogs().by_id.values().cloned().collect();
    list.sort_by_key(|d| d.id);
    if let Some(callid) = p.str("callid")? {
        let tag = p.str("from_tag")?;
        list.retain(|d| d.callid == callid && tag.as_ref().is_none_or(|t| *t == d.caller.tag));
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
    let show = if ctx { dialog_ctx_json } else { dialog_json };
    let dialogs: Vec<Json> = list.iter().map(|d| show(d, now)).collect();
    Ok(if index.is_some() {
        json!({ "count": total, "Dialogs": dialogs })
    } else {
        json!({ "Dialogs": dialogs })
    })
}

/// The dialog an MI `dlg_id`/`DID` names (numeric id or Call-ID).
fn named(p: &::mi::Params, param: &str) -> Result<u64, MiError> {
    let text = p
        .str(param)?
        .ok_or_else(|| MiError::new(400, "Bad parameter value"))?;
    crate::lookup::by_dialog_id(&dialogs(), &text)
        .ok_or_else(|| MiError::new(404, "Dialog Not Found"))
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
        "dialog:cluster_sync",
        &["dlg_cluster_sync"],
        &[&[], &["sharing_tag"]],
        |_| {
            let Some(cluster) = crate::cluster::cluster() else {
                return Err(MiError::new(400, "Dialog replication disabled"));
            };
            clusterer::api::request_sync(crate::repl::CAP, cluster).map_err(|e| {
                log::error!("dialog: sync request failed: {e}");
                MiError::new(400, "Failed to send sync request")
            })?;
            Ok(json!("OK"))
        },
    ));
    let recipes: &[&[&str]] = &[
        &[],
        &["callid"],
        &["callid", "from_tag"],
        &["index", "counter"],
    ];
    mi.add(Command::new("dialog:list", &["dlg_list"], recipes, |p| {
        list(p, false)
    }));
    mi.add(Command::new(
        "dialog:list_ctx",
        &["dlg_list_ctx"],
        recipes,
        |p| list(p, true),
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
    mi.add(Command::new(
        "dialog:profile_get_values",
        &["profile_get_values"],
        &[&["profile"]],
        |p| {
            let name = p
                .str("profile")?
                .ok_or_else(|| MiError::new(400, "Bad parameter value"))?;
            let valued = crate::settings()
                .profile(&name)
                .ok_or_else(|| MiError::new(404, "Profile not found"))?;
            let t = dialogs();
            if !valued {
                return Ok(json!([{ "value": null, "count": t.profile_size(&name, None) }]));
            }
            let mut values: Vec<(String, usize)> = t
                .profiles
                .get(&name)
                .map(|m| m.iter().map(|(v, n)| (v.clone(), *n)).collect())
                .unwrap_or_default();
            values.sort();
            Ok(values
                .into_iter()
                .map(|(v, n)| json!({ "value": v, "count": n }))
                .collect())
        },
    ));
    mi.add(Command::new(
        "dialog:profile_end_dlgs",
        &["profile_end_dlgs"],
        &[&["profile"], &["profile", "value"]],
        |p| {
            let name = p
                .str("profile")?
                .ok_or_else(|| MiError::new(400, "Bad parameter value"))?;
            crate::settings()
                .profile(&name)
                .ok_or_else(|| MiError::new(404, "Profile not found"))?;
            let value = p.str("value")?;
            let ids: Vec<u64> = dialogs()
                .by_id
                .values()
                .filter(|d| {
                    d.profiles
                        .iter()
                        .any(|(pn, v)| *pn == name && value.as_ref().is_none_or(|want| want == v))
                })
                .map(|d| d.id)
                .collect();
            for id in ids {
                crate::end::terminate(id, "MI Termination", "");
            }
            Ok(json!("OK"))
        },
    ));
    mi.add(Command::new(
        "dialog:push_var",
        &["dlg_push_var"],
        &[&["dlg_val_name", "dlg_val_value", "DID"]],
        |p| {
            let name = p
                .str("dlg_val_name")?
                .ok_or_else(|| MiError::new(400, "Bad parameter value"))?;
            let value = p
                .str("dlg_val_value")?
                .ok_or_else(|| MiError::new(400, "Bad parameter value"))?;
            let dids = p
                .array("DID")?
                .ok_or_else(|| MiError::new(400, "Bad parameter value"))?;
            let mut t = dialogs();
            // Dialogs not found are passed over, as in OpenSIPS.
            for did in dids {
                let Some(id) = crate::lookup::by_dialog_id(&t, &did) else {
                    continue;
                };
                if let Some(d) = t.by_id.get_mut(&id) {
                    d.vals.retain(|(n, _)| *n != name);
                    d.vals.push((name.clone(), value.clone()));
                    t.mark_dirty(id);
                }
            }
            Ok(json!("OK"))
        },
    ));
    mi.add(Command::new(
        "dialog:set_profile",
        &["dlg_set_profile"],
        &[
            &["dlg_id", "profile"],
            &["dlg_id", "profile", "value"],
            &["dlg_id", "profile", "value", "clear_values"],
        ],
        |p| {
            let name = p
                .str("profile")?
                .ok_or_else(|| MiError::new(400, "Bad param"))?;
            let valued = crate::settings()
                .profile(&name)
                .ok_or_else(|| MiError::new(400, "Bad param"))?;
            let id = named(p, "dlg_id")?;
            let value = p.str("value")?.filter(|_| valued);
            let clear = p.int("clear_values")?.unwrap_or(0) != 0;
            let mut t = dialogs();
            if clear && value.is_some() {
                t.leave_profile(id, &name, None);
            }
            if !t.join_profile(id, &name, value.as_deref().unwrap_or("")) {
                return Err(MiError::new(403, "Dialog Error"));
            }
            t.mark_dirty(id);
            Ok(json!("OK"))
        },
    ));
    mi.add(Command::new(
        "dialog:unset_profile",
        &["dlg_unset_profile"],
        &[&["dlg_id", "profile"], &["dlg_id", "profile", "value"]],
        |p| {
            let name = p
                .str("profile")?
                .ok_or_else(|| MiError::new(400, "Bad param"))?;
            let valued = crate::settings()
                .profile(&name)
                .ok_or_else(|| MiError::new(400, "Bad param"))?;
            let id = named(p, "dlg_id")?;
            let value = p.str("value")?.filter(|_| valued);
            let mut t = dialogs();
            if !t.leave_profile(id, &name, value.as_deref()) {
                return Err(MiError::new(403, "Dialog Error"));
            }
            t.mark_dirty(id);
            Ok(json!("OK"))
        },
    ));
    let mut c = Command::new(
        "dialog:send_sequential",
        &["dlg_send_sequential"],
        &[
            &["callid"],
            &["callid", "mode"],
            &["callid", "method"],
            &["callid", "body"],
            &["callid", "mode", "method"],
            &["callid", "mode", "body"],
            &["callid", "method", "body"],
            &["callid", "method", "body", "mode"],
            &["callid", "method", "body", "mode", "headers"],
        ],
        |p| {
            let callid = p
                .str("callid")?
                .ok_or_else(|| MiError::new(-32602, "Invalid params"))?;
            let (method, mode, body, headers) = (
                p.str("method")?,
                p.str("mode")?,
                p.str("body")?,
                // A shell passes line ends as the text `\r\n`.
                p.str("headers")?
                    .map(|h| h.replace("\\r\\n", "\r\n").replace("\\n", "\r\n")),
            );
            match crate::within::mi_send_sequential(
                &callid,
                method.as_deref(),
                mode.as_deref(),
                body.as_deref(),
                headers.as_deref(),
            ) {
                Ok((code, reason)) => Ok(json!({ "Code": code, "Reason": reason })),
                Err((code, text)) => Err(MiError::new(code, &text)),
            }
        },
    );
    c.named_only = true;
    mi.add(c);
}
