//! Topology hiding kept in the dialog, as OpenSIPS does when the request has a dialog (the
//! script's `create_dialog()`, or `force_dialog`): the route sets and remote targets of both
//! sides are the dialog's own, our Contact towards each side names the dialog (`;did=` URI
//! parameter, or with flag `D` `.did.<entry>.<id>` in its user part), and a sequential
//! request sent there is matched to the dialog and routed from it.
//!
//! Flags kept on the dialog: `U` shows a user part (the script's username for that side, else
//! the message's own), `a` / `A` keep showing the caller / the callee the Contact first
//! advertised to it, `C` hides the Call-ID from the callee's side.

use engine::{FnCtx, HideFixup, MsgCtx, ReplyFixup};
use sip::HeaderName;

use crate::{
    Config, DID_IN_USER, HIDE_CALLID, KEEP_ADV_A, KEEP_ADV_B, KEEP_USER, contact_of,
    drop_record_routes, hide_call_id, record_routes, socket_address, vias_back,
};
use dialog::table::{Dialog, TOPOH_ONGOING, dialogs};

/// What the replies to a request of a hidden dialog need: the dialog, which side they go to,
/// whether the request was the initial INVITE, and our address towards that side.
pub(crate) struct DlgState {
    pub id: u64,
    pub to_caller: bool,
    pub initial: bool,
    pub addr: String,
}

const TAG: &str = "dlg\n";

impl DlgState {
    pub fn to_text(&self) -> String {
        format!(
            "{TAG}{}\n{}\n{}\n{}",
            self.id,
            u8::from(self.to_caller),
            u8::from(self.initial),
            self.addr
        )
    }

    /// `None` when the text is not a dialog state (the no-dialog mode's).
    pub fn parse(text: &str) -> Option<DlgState> {
        let mut l = text.strip_prefix(TAG)?.splitn(4, '\n');
        Some(DlgState {
            id: l.next()?.parse().ok()?,
            to_caller: l.next()? == "1",
            initial: l.next()? == "1",
            addr: l.next()?.to_owned(),
        })
    }
}

/// The Contact of ours for a message of a hidden dialog (OpenSIPS'
/// `topo_dlg_replace_contact`): `<sip:[user][.did.E.I]@addr[;did=E.I][;passed]>[;passed]`.
/// The username shows only with `U`: `ct_user` (the script's), else the message's own.
pub(crate) fn dlg_contact(
    cfg: &Config,
    mod_flags: u32,
    did: &str,
    ct_user: Option<&str>,
    msg: &sip::SipMessage,
    addr: &str,
) -> String {
    let rr_param = &dialog::settings().rr_param;
    let (own_user, uri_params, hdr_params) = contact_of(msg)
        .map(|(_, u, up, hp)| (u, up, hp))
        .unwrap_or_default();
    let user = (mod_flags & KEEP_USER != 0)
        .then(|| {
            ct_user
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .or_else(|| Some(own_user).filter(|u| !u.is_empty()))
        })
        .flatten();
    let mut c = String::from("<sip:");
    if let Some(u) = &user {
        c.push_str(u);
    }
    if mod_flags & DID_IN_USER != 0 {
        if user.is_none() {
            c.push('X');
        }
        c.push('.');
        c.push_str(rr_param);
        c.push('.');
        c.push_str(did);
    }
    if c.len() > "<sip:".len() {
        c.push('@');
    }
    c.push_str(addr);
    if mod_flags & DID_IN_USER == 0 {
        c.push(';');
        c.push_str(rr_param);
        c.push('=');
        c.push_str(did);
    }
    crate::push_passed_params(cfg, &mut c, &uri_params, &hdr_params);
    c
}

/// The user a dialog's sequential requests show (with `U`): OpenSIPS hands them its copy of
/// the usernames, in which the callee's was written over the start of the caller's, so what
/// shows is the caller's length of that.
fn sequential_user(cfg: &Config, d: &Dialog) -> Option<String> {
    let val = |name: &str| {
        d.vals
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_bytes().to_vec())
            .unwrap_or_default()
    };
    let (mut caller, callee) = (val(&cfg.caller_var), val(&cfg.callee_var));
    for (c, b) in caller.iter_mut().zip(&callee) {
        *c = *b;
    }
    Some(String::from_utf8_lossy(&caller).into_owned()).filter(|u| !u.is_empty())
}

/// The Contact header's line of a message, if it has one.
fn contact_line(msg: &sip::SipMessage) -> Option<usize> {
    msg.headers()
        .find(|h| h.name == HeaderName::Contact)
        .map(|h| h.index)
}

/// `topology_hiding()` on an initial INVITE with dialog `id`: the request leaves with our Via
/// only, no Record-Route and our Contact naming the dialog; its replies go back with the
/// caller's own Vias and route set and a Contact of ours. Again on an engaged dialog: only
/// its flags are added (OpenSIPS).
pub(crate) fn hide_initial(
    f: &mut FnCtx<'_>,
    cfg: &Config,
    id: u64,
    flags: u32,
    users: (Option<String>, Option<String>),
) -> i64 {
    let (engaged, did, mod_flags) = {
        let mut t = dialogs();
        let Some(d) = t.by_id.get_mut(&id) else {
            return -1;
        };
        let engaged = d.mod_flags & TOPOH_ONGOING != 0;
        d.mod_flags |= TOPOH_ONGOING | flags;
        if !engaged {
            for (var, user) in [(&cfg.caller_var, &users.0), (&cfg.callee_var, &users.1)] {
                if let Some(u) = user {
                    d.vals.retain(|(n, _)| n != var);
                    d.vals.push((var.clone(), u.clone()));
                }
            }
        }
        let out = (engaged, d.did(), d.mod_flags);
        t.mark_dirty(id);
        out
    };
    if engaged {
        return 1;
    }
    let Some(receipt) = f.msg.receipt.clone() else {
        return -1;
    };
    let record_route = record_routes(&f.msg.msg, false);
    let vias = vias_back(f.msg);
    drop_record_routes(f.msg);
    if let Some(line) = contact_line(&f.msg.msg) {
        let c = dlg_contact(
            cfg,
            mod_flags,
            &did,
            users.1.as_deref(),
            &f.msg.msg,
            engine::forward::SEND_ADDRESS,
        );
        if let Some(d) = dialogs().by_id.get_mut(&id) {
            d.callee.adv_contact.clone_from(&c);
        }
        f.msg.edits.replace_value(line, c);
    }
    f.msg.hide_topology = true;
    let call_id = if flags & HIDE_CALLID != 0 {
        hide_call_id(f.msg, cfg)
    } else {
        None
    };
    let state = DlgState {
        id,
        to_caller: true,
        initial: true,
        addr: socket_address(f.script, receipt.proto, receipt.local),
    };
    f.msg
        .reply_fixups
        .push(ReplyFixup::Hide(Box::new(HideFixup {
            vias,
            record_route: Some(record_route).filter(|r| !r.is_empty()),
            contact: true,
            state: state.to_text(),
            call_id,
        })));
    1
}

/// A sequential request matched to hidden dialog `d` (the dialog module calls this, OpenSIPS'
/// `DLGCB_REQ_WITHIN`): it goes to the other side's target through its route set and socket,
/// with our Via only and our Contact; its replies come back with the sender's own Vias.
pub(crate) fn within(f: &mut FnCtx<'_>, d: &Dialog, upstream: bool) {
    if d.mod_flags & TOPOH_ONGOING == 0 {
        return;
    }
    let Some(cfg) = crate::CONFIG.get() else {
        return;
    };
    // A request of our own (a BYE on timeout) has nothing to hide.
    let Some(receipt) = f.msg.receipt.clone() else {
        return;
    };
    let vias = vias_back(f.msg);
    drop_record_routes(f.msg);
    let target = if upstream { &d.caller } else { &d.callee };
    if !dialog::fix_route(f.msg, target) {
        f.log.log(
            -1,
            "topology_hiding: the dialog has no target for this request\n",
        );
    }
    if let Some(s) = target.socket.as_deref()
        && f.script.has_socket(s)
    {
        f.msg.send_socket = Some(s.to_owned());
    }
    replace_contact(f.msg, cfg, d, upstream);
    f.msg.hide_topology = true;
    let call_id = if d.mod_flags & HIDE_CALLID != 0 && !upstream {
        hide_call_id(f.msg, cfg)
    } else {
        None
    };
    let state = DlgState {
        id: d.id,
        to_caller: !upstream,
        initial: false,
        addr: socket_address(f.script, receipt.proto, receipt.local),
    };
    f.msg
        .reply_fixups
        .push(ReplyFixup::Hide(Box::new(HideFixup {
            vias,
            record_route: None,
            contact: true,
            state: state.to_text(),
            call_id,
        })));
}

/// The Contact of a sequential request: the one first advertised to its destination with
/// `a` (to the caller) / `A` (to the callee), else ours built again.
fn replace_contact(ctx: &mut MsgCtx, cfg: &Config, d: &Dialog, upstream: bool) {
    let Some(line) = contact_line(&ctx.msg) else {
        return;
    };
    let (target, keep) = if upstream {
        (&d.caller, KEEP_ADV_A)
    } else {
        (&d.callee, KEEP_ADV_B)
    };
    let value = if d.mod_flags & keep != 0 && !target.adv_contact.is_empty() {
        target.adv_contact.clone()
    } else {
        dlg_contact(
            cfg,
            d.mod_flags,
            &d.did(),
            sequential_user(cfg, d).as_deref(),
            &ctx.msg,
            engine::forward::SEND_ADDRESS,
        )
    };
    ctx.edits.replace_value(line, value);
}

/// The Contact of a reply of a hidden dialog going back to the request's sender (tm calls it
/// through the hook). The 200 OK to the INVITE is what the caller keeps being shown with `a`.
pub(crate) fn reply_contact(
    cfg: &Config,
    reply: &sip::SipMessage,
    st: &DlgState,
) -> Option<String> {
    let mut t = dialogs();
    let d = t.by_id.get_mut(&st.id)?;
    let leg = if st.to_caller { &d.caller } else { &d.callee };
    let keep = if st.to_caller { KEEP_ADV_A } else { KEEP_ADV_B };
    if !st.initial && d.mod_flags & keep != 0 && !leg.adv_contact.is_empty() {
        // The callee's was kept before the INVITE left: the address is ours towards it.
        return Some(
            leg.adv_contact
                .replace(engine::forward::SEND_ADDRESS, &st.addr),
        );
    }
    let var = if st.to_caller {
        &cfg.caller_var
    } else {
        &cfg.callee_var
    };
    let ct_user = d
        .vals
        .iter()
        .find(|(n, _)| n == var)
        .map(|(_, v)| v.clone());
    let c = dlg_contact(
        cfg,
        d.mod_flags,
        &d.did(),
        ct_user.as_deref(),
        reply,
        &st.addr,
    );
    if st.initial && reply.status() == Some(200) {
        d.caller.adv_contact.clone_from(&c);
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            callid_passwd: b"OpenSIPS".to_vec(),
            callid_prefix: "DLGCH_".into(),
            loop_protection: false,
            passwd: b"ToPoCtPaSS".to_vec(),
            param: "thinfo".into(),
            base32: false,
            uri_params: vec!["ob".into()],
            hdr_params: vec!["expires".into()],
            with_dialog: true,
            force_dialog: false,
            caller_var: "cr".into(),
            callee_var: "ce".into(),
        }
    }

    fn invite(contact: &str) -> sip::SipMessage {
        let text = format!(
            "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
             Contact: {contact}\r\nContent-Length: 0\r\n\r\n"
        );
        sip::SipMessage::parse(bytes::Bytes::from(text)).unwrap()
    }

    #[test]
    fn the_contact_names_the_dialog_in_a_parameter_or_the_user_part() {
        let cfg = config();
        let msg = invite("<sip:alice@10.0.0.1:5070;ob;x=1>;expires=60;q=1");
        let c = |flags, user| dlg_contact(&cfg, flags, "a1.b2", user, &msg, "192.0.2.1:5060");
        // The passed parameters only; no user without `U`, even one the script gave.
        assert_eq!(
            c(0, Some("carol")),
            "<sip:192.0.2.1:5060;did=a1.b2;ob>;expires=60"
        );
        assert_eq!(
            c(KEEP_USER, None),
            "<sip:alice@192.0.2.1:5060;did=a1.b2;ob>;expires=60"
        );
        assert_eq!(
            c(KEEP_USER, Some("carol")),
            "<sip:carol@192.0.2.1:5060;did=a1.b2;ob>;expires=60"
        );
        assert_eq!(
            c(DID_IN_USER, None),
            "<sip:X.did.a1.b2@192.0.2.1:5060;ob>;expires=60"
        );
        assert_eq!(
            c(DID_IN_USER | KEEP_USER, None),
            "<sip:alice.did.a1.b2@192.0.2.1:5060;ob>;expires=60"
        );
        let no_user = invite("<sip:10.0.0.1>");
        assert_eq!(
            dlg_contact(&cfg, KEEP_USER | DID_IN_USER, "1.2", None, &no_user, "h:1"),
            "<sip:X.did.1.2@h:1>"
        );
    }

    #[test]
    fn sequential_requests_show_the_callee_name_over_the_caller_one() {
        let cfg = config();
        let mut d = dialog_with(&[]);
        assert_eq!(sequential_user(&cfg, &d), None);
        d.vals = vec![("cr".into(), "alice1".into()), ("ce".into(), "bob".into())];
        assert_eq!(sequential_user(&cfg, &d).as_deref(), Some("bobce1"));
        d.vals = vec![("cr".into(), "al".into()), ("ce".into(), "bobby".into())];
        assert_eq!(sequential_user(&cfg, &d).as_deref(), Some("bo"));
        d.vals = vec![("ce".into(), "bob".into())];
        assert_eq!(sequential_user(&cfg, &d), None);
        d.vals = vec![("cr".into(), "alice".into())];
        assert_eq!(sequential_user(&cfg, &d).as_deref(), Some("alice"));
    }

    fn dialog_with(vals: &[(&str, &str)]) -> Dialog {
        Dialog {
            id: 1,
            state: 1,
            callid: String::new(),
            from_uri: String::new(),
            to_uri: String::new(),
            caller: Default::default(),
            callee: Default::default(),
            initial_cseq: 1,
            flags: Default::default(),
            user_flags: 0,
            routes: Default::default(),
            lifetime: 0,
            start_unix: 0,
            created_ms: 0,
            start_ms: 0,
            expires: None,
            gone_at: None,
            end_reason: None,
            profiles: Vec::new(),
            vals: vals
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            next_ping: None,
            pings: 0,
            stored: false,
            sst: None,
            next_reinvite: None,
            cancelled: false,
            race: false,
            mod_flags: TOPOH_ONGOING,
        }
    }

    #[test]
    fn dlg_state_round_trips_and_is_told_apart() {
        let s = DlgState {
            id: 0x1_0000_0002,
            to_caller: true,
            initial: false,
            addr: "127.0.0.1:5060;transport=tcp".into(),
        };
        let back = DlgState::parse(&s.to_text()).unwrap();
        assert_eq!(
            (back.id, back.to_caller, back.initial, back.addr.as_str()),
            (0x1_0000_0002, true, false, "127.0.0.1:5060;transport=tcp")
        );
        assert!(DlgState::parse("4\n127.0.0.1:5060\n\n").is_none());
        assert!(DlgState::parse("dlg\nx\n1\n0\na").is_none());
    }
}
