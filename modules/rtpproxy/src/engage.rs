//! `rtpproxy_engage`: the media of a dialog followed through the RTPProxy by the dialog
//! module's and tm's media hooks, with no more script calls.

use std::collections::HashMap;
use std::sync::OnceLock;

use engine::{FnCtx, MsgCtx, Value};

use crate::{MediaArgs, MediaOut, config, fail, ids, media, text_arg};

/// A dialog `rtpproxy_engage` looks after.
#[derive(Debug)]
struct Engaged {
    args: MediaArgs,
    call_id: String,
    from_tag: String,
    /// The callee's tag, once a reply brought it.
    to_tag: String,
    /// A 2xx made the offer (the INVITE had no SDP): the ACK's SDP is the answer.
    answer_in_ack: bool,
}

fn engaged() -> std::sync::MutexGuard<'static, HashMap<u64, Engaged>> {
    static E: OnceLock<std::sync::Mutex<HashMap<u64, Engaged>>> = OnceLock::new();
    E.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `rtpproxy_engage([flags[, ip[, set[, $sock[, $ret]]]]])` on an initial INVITE: the call's
/// media go through the RTPProxy for as long as its dialog lasts. The INVITE's SDP is offered
/// now (without one, the 2xx's is, and the ACK's is the answer); each reply with SDP is
/// answered, as are re-INVITEs and UPDATEs; the session ends with the dialog (or the call's
/// failure).
pub fn rtpproxy_engage(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let what = "rtpproxy_engage";
    if f.msg.msg.method() != Some(sip::Method::Invite)
        || f.msg.msg.to_tag().ok().flatten().is_some()
    {
        return fail(f, what, "only an initial INVITE can be engaged");
    }
    let (call_id, from_tag, _) = match ids(f) {
        Ok(t) => t,
        Err(e) => return fail(f, what, e),
    };
    let Some(dialog) = f
        .msg
        .dialog
        .map(|d| d.id)
        .or_else(|| engine::hooks::dialog_create(f.msg))
    else {
        return fail(f, what, "it needs the dialog module");
    };
    let a = MediaArgs {
        flags: text_arg(args, 0).unwrap_or_default(),
        ip: text_arg(args, 1).filter(|s| !s.is_empty()),
        set: args.get(2).and_then(Value::as_int),
        body: None,
        bind_local: None,
    };
    let late = !matches!(sipmsgops::current_sdp(f.msg), sipmsgops::SdpBody::Sdp(_));
    if !late {
        let mut out = MediaOut::default();
        let code = media(f.msg, f.log, &a, true, &mut out);
        if let Some(url) = out.node {
            f.set_output(3, Value::from(url));
        }
        if let Some(l) = out.ret {
            f.set_output(4, Value::from(l));
        }
        if code < 0 {
            return code;
        }
    }
    engaged().insert(
        dialog,
        Engaged {
            args: a,
            call_id,
            from_tag,
            to_tag: String::new(),
            answer_in_ack: false,
        },
    );
    1
}

/// The module's log lines, where no script log is at hand.
struct ModuleLog;

impl engine::Log for ModuleLog {
    fn log(&mut self, level: i32, text: &str) {
        if level < 0 {
            log::error!("{}", text.trim_end());
        } else {
            log::info!("{}", text.trim_end());
        }
    }
}

/// What `rtpproxy_engage` does along the dialog (the dialog module and tm call it).
pub(crate) struct Engagement;

impl engine::hooks::MediaHooks for Engagement {
    fn request(&self, ctx: &mut MsgCtx, dialog: u64) {
        let (args, ack_answers) = {
            let e = engaged();
            let Some(x) = e.get(&dialog) else { return };
            (x.args.clone(), x.answer_in_ack)
        };
        if !matches!(sipmsgops::current_sdp(ctx), sipmsgops::SdpBody::Sdp(_)) {
            return;
        }
        let offer = match ctx.msg.method_str().unwrap_or("") {
            "INVITE" | "UPDATE" => true,
            "ACK" if ack_answers => false,
            _ => return,
        };
        let mut out = MediaOut::default();
        media(ctx, &mut ModuleLog, &args, offer, &mut out);
        if !offer && let Some(x) = engaged().get_mut(&dialog) {
            x.answer_in_ack = false;
        }
    }

    fn reply(&self, ctx: &mut MsgCtx, dialog: u64, method: &str, request_body: bool) {
        if !matches!(method, "INVITE" | "UPDATE") || ctx.msg.status().unwrap_or(0) >= 300 {
            return;
        }
        let args = {
            let mut e = engaged();
            let Some(x) = e.get_mut(&dialog) else { return };
            if x.to_tag.is_empty()
                && let Some(t) = ctx.msg.to_tag().ok().flatten()
            {
                x.to_tag = t.to_owned();
            }
            x.args.clone()
        };
        if !matches!(sipmsgops::current_sdp(ctx), sipmsgops::SdpBody::Sdp(_)) {
            return;
        }
        // The request's SDP was the offer: this is the answer. Without one, the reply offers
        // and the ACK will answer.
        let mut out = MediaOut::default();
        media(ctx, &mut ModuleLog, &args, !request_body, &mut out);
        if !request_body
            && method == "INVITE"
            && let Some(x) = engaged().get_mut(&dialog)
        {
            x.answer_in_ack = true;
        }
    }

    fn gone(&self, dialog: u64) {
        let Some(x) = engaged().remove(&dialog) else {
            return;
        };
        let Some(cfg) = config() else { return };
        let sets = cfg.sets();
        let set_id = x.args.set.unwrap_or(cfg.default_set);
        let Some(node) = sets
            .iter()
            .find(|s| s.id == set_id)
            .and_then(|s| s.select(&x.call_id, &cfg.timing))
        else {
            return;
        };
        let mut cmd = format!("D {} {}", x.call_id, x.from_tag);
        if !x.to_tag.is_empty() {
            cmd.push(' ');
            cmd.push_str(&x.to_tag);
        }
        node.command(&cmd, &cfg.timing);
    }
}
