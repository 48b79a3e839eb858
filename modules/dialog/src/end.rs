//! Ending calls from the proxy: a dialog past its timeout (with `bye-on-timeout`) and MI
//! `dlg_end_dlg` send a BYE to each side, built from what the dialog knows of that side (its
//! Contact, Route set, tags and next CSeq). The server hands them to tm after the script's
//! `local_route`, which sees `$DLG_dir` (the one towards the caller is "UPSTREAM").

use std::sync::OnceLock;
use std::time::Instant;

use engine::{DialogMark, MsgCtx};

use crate::table::{CONFIRMED, CONFIRMED_NA, DELETED, Dialog, dialogs};

/// The final reply of a request rsips sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final {
    pub code: u16,
    pub reason: String,
    /// tm made it up (408 when none came, 477 when it could not be sent).
    pub local: bool,
}

/// What becomes of a request sent: its final reply.
pub type Done = Box<dyn FnOnce(&Final) + Send>;

/// Sends a request rsips builds (runs `local_route`, then tm).
pub trait Sender: Send + Sync {
    fn send(&self, ctx: MsgCtx, done: Done) -> Result<(), String>;
}

pub(crate) static SENDER: OnceLock<Box<dyn Sender>> = OnceLock::new();

/// Installs the server's sender (once).
pub fn set_sender(s: Box<dyn Sender>) {
    let _ = SENDER.set(s);
}

/// The BYE for one side of a confirmed dialog: towards the caller (`upstream`) or the callee.
pub fn bye(d: &Dialog, upstream: bool, extra_hdrs: &str) -> Result<MsgCtx, String> {
    let (from_leg, to_leg) = if upstream {
        (&d.callee, &d.caller)
    } else {
        (&d.caller, &d.callee)
    };
    // After the last request this side got: its peer's, or one of ours.
    let cseq = from_leg.cseq.max(to_leg.gen_cseq).saturating_add(1);
    request(d, upstream, "BYE", cseq, extra_hdrs)
}

/// An in-dialog request rsips sends to one side, as if from the other.
pub fn request(
    d: &Dialog,
    upstream: bool,
    method: &str,
    cseq: u32,
    extra_hdrs: &str,
) -> Result<MsgCtx, String> {
    let to_leg = if upstream { &d.caller } else { &d.callee };
    request_to(d, upstream, method, cseq, extra_hdrs, to_leg, None)
}

/// As [`request`], to `to_leg` (its tag, Contact, route set and socket: the dialog's side, or
/// an early dialog a provisional reply showed), with an optional `(content type, body)` (the
/// Content-Type header is the caller's to add).
pub fn request_to(
    d: &Dialog,
    upstream: bool,
    method: &str,
    cseq: u32,
    extra_hdrs: &str,
    to_leg: &crate::table::Leg,
    body: Option<(&str, &str)>,
) -> Result<MsgCtx, String> {
    let from_leg = if upstream { &d.callee } else { &d.caller };
    let (from_uri, to_uri) = if upstream {
        (&d.to_uri, &d.from_uri)
    } else {
        (&d.from_uri, &d.to_uri)
    };
    if to_leg.contact.is_empty() {
        return Err("no contact known for that side".into());
    }
    let mut headers = format!(
        "From: <{from_uri}>;tag={}\r\nTo: <{to_uri}>;tag={}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n",
        from_leg.tag, to_leg.tag, d.callid,
    );
    for r in &to_leg.route_set {
        headers.push_str(&format!("Route: {r}\r\n"));
    }
    for line in extra_hdrs
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
    {
        headers.push_str(line.trim_end());
        headers.push_str("\r\n");
    }
    let msg = tm::build_request(method, &to_leg.contact, &headers, body.map(|(_, b)| b))?;
    let mut ctx = MsgCtx::new(msg);
    // The first Route is the next hop (a loose router; a strict one has the target as R-URI).
    if let Some(first) = to_leg.route_set.first()
        && let Ok(na) = sip::NameAddr::parse(first)
    {
        ctx.dst_uri = Some(na.uri().as_str().to_owned());
    }
    ctx.send_socket = to_leg.socket.clone();
    ctx.dialog = Some(DialogMark {
        id: d.id,
        upstream,
        created: false,
        check: 0,
    });
    Ok(ctx)
}

/// Sends both BYEs of a dialog (a copy taken before it ended).
fn send_byes(d: &Dialog, extra_hdrs: &str) {
    let Some(sender) = SENDER.get() else {
        log::error!(
            "dialog: cannot end dialog {} ({}): no sender",
            d.id,
            d.callid
        );
        return;
    };
    for upstream in [false, true] {
        match bye(d, upstream, extra_hdrs)
            .and_then(|ctx| sender.send(ctx, Box::new(|_: &Final| {})))
        {
            Ok(()) => {}
            Err(e) => log::error!(
                "dialog: BYE towards the {} of {} not sent: {e}",
                if upstream { "caller" } else { "callee" },
                d.callid
            ),
        }
    }
}

/// Ends dialog `id` from outside the call (`reason` as `$DLG_end_reason`), with a BYE to each
/// side; false when it is not a confirmed dialog.
pub fn terminate(id: u64, reason: &str, extra_hdrs: &str) -> bool {
    let s = crate::settings();
    let copy = {
        let mut t = dialogs();
        let Some(d) = t.by_id.get(&id) else {
            return false;
        };
        if !(CONFIRMED_NA..=CONFIRMED).contains(&d.state) {
            return false;
        }
        let copy = d.clone();
        t.end(id, reason, s.delete_delay, Instant::now());
        copy
    };
    let extra = format!("{}{extra_hdrs}", s.extra_hdrs);
    send_byes(&copy, &extra);
    true
}

/// The once-a-second work: dialogs past their timeout end (with BYEs when flagged), ended
/// ones leave the table after `delete_delay`.
pub fn tick(now: Instant) {
    let s = crate::settings();
    // A dialog whose lifetime is up runs its `dlg_on_timeout` route first: it may give it
    // more time (`$DLG_timeout`), which the check below then sees.
    let timeout_routes: Vec<(usize, u64)> = {
        let t = dialogs();
        t.by_id
            .values()
            .filter(|d| d.state != DELETED && d.expires.is_some_and(|at| at <= now))
            .filter_map(|d| d.routes.timeout.map(|r| (r, d.id)))
            .collect()
    };
    for (route, id) in timeout_routes {
        crate::table::run_route(route, id);
    }
    let now = if Instant::now() > now {
        Instant::now()
    } else {
        now
    };
    let mut expired = Vec::new();
    {
        let mut t = dialogs();
        // Those ended before this tick go first: one ending now stays for its BYEs'
        // local_route to see.
        let gone: Vec<u64> = t
            .by_id
            .values()
            .filter(|d| d.state == DELETED && d.gone_at.is_some_and(|at| at <= now))
            .map(|d| d.id)
            .collect();
        for id in gone {
            t.remove(id);
        }
        let due: Vec<u64> = t
            .by_id
            .values()
            .filter(|d| d.state != DELETED && d.expires.is_some_and(|at| at <= now))
            .map(|d| d.id)
            .collect();
        for id in due {
            let mut reason = "Lifetime Timeout";
            // With replication, a node holding the dialog's sharing tag as backup ends it
            // quietly: the active node sends the BYEs and tells the cluster (OpenSIPS).
            let mut backup = false;
            if let Some(d) = t.by_id.get(&id) {
                crate::sst::expired(d);
                if d.race {
                    reason = "SIP Race Condition";
                }
                backup = crate::cluster::is_backup(d);
                if !backup {
                    expired.push(d.clone());
                }
            }
            t.applying = backup;
            t.end(id, reason, s.delete_delay, now);
            t.applying = false;
            engine::stat!("dialog", "expired_dialogs").inc();
        }
    }
    for d in expired.iter().filter(|d| d.flags.bye_on_timeout) {
        send_byes(d, &s.extra_hdrs);
    }
    ping(now);
    reinvite_pings(now);
}

/// The re-INVITE pings due: a side answering 408 or 481 ends the call with a BYE each way.
fn reinvite_pings(now: Instant) {
    let due = crate::reinvite::due(now);
    if due.is_empty() {
        return;
    }
    let Some(sender) = SENDER.get() else { return };
    let s = crate::settings();
    // A node holding the dialog's sharing tag as backup leaves the pings to the active one.
    for (d, towards_caller, cseq) in due
        .into_iter()
        .filter(|(d, ..)| !crate::cluster::is_backup(d))
    {
        let id = d.id;
        let done: Done = Box::new(move |f: &Final| {
            let code = f.code;
            if code == 408 || code == 481 {
                let reason = if towards_caller {
                    "Caller ReINVITE Ping Timeout"
                } else {
                    "Callee ReINVITE Ping Timeout"
                };
                log::warn!("dialog: {reason} ({code}) for dialog {id}: ending the call");
                std::thread::spawn(move || terminate(id, reason, ""));
            }
        });
        if let Err(e) = crate::reinvite::build(&d, towards_caller, cseq, &s.extra_hdrs)
            .and_then(|ctx| sender.send(ctx, done))
        {
            log::error!("dialog: re-INVITE ping of {} not sent: {e}", d.callid);
        }
    }
}

/// OPTIONS pings to the sides a dialog's flags name, every `options_ping_interval`: a side
/// that answers 481 or not at all (408) ends the call, with a BYE to each side.
fn ping(now: Instant) {
    let s = crate::settings();
    // (dialog, CSeq towards the caller, towards the callee)
    let due: Vec<(Dialog, u32, u32)> = {
        let mut t = dialogs();
        let mut due = Vec::new();
        for d in t.by_id.values_mut() {
            if (CONFIRMED_NA..=CONFIRMED).contains(&d.state)
                && d.next_ping.is_some_and(|at| at <= now)
                && !crate::cluster::is_backup(d)
            {
                d.next_ping = Some(now + s.ping_interval);
                d.pings = d.pings.saturating_add(1);
                let (seen_by_caller, seen_by_callee) = (d.callee.cseq, d.caller.cseq);
                let caller = if d.flags.ping_caller {
                    ping_cseq(&mut d.caller, seen_by_caller)
                } else {
                    0
                };
                let callee = if d.flags.ping_callee {
                    ping_cseq(&mut d.callee, seen_by_callee)
                } else {
                    0
                };
                due.push((d.clone(), caller, callee));
            }
        }
        due
    };
    let Some(sender) = SENDER.get() else { return };
    for (d, to_caller, to_callee) in due {
        // A side pinged with re-INVITEs is not pinged with OPTIONS too (OpenSIPS).
        let f = d.flags;
        for (upstream, on) in [
            (true, f.ping_caller && !f.reinvite_ping_caller),
            (false, f.ping_callee && !f.reinvite_ping_callee),
        ] {
            if !on {
                continue;
            }
            let cseq = if upstream { to_caller } else { to_callee };
            let id = d.id;
            let done: Done = Box::new(move |f: &Final| {
                let code = f.code;
                if code == 408 || code == 481 {
                    log::warn!(
                        "dialog: the {} of dialog {id} answered its ping with {code}: ending the call",
                        if upstream { "caller" } else { "callee" }
                    );
                    // Not from inside tm's callback: the BYEs go through tm again.
                    std::thread::spawn(move || terminate(id, "Ping Timeout", ""));
                }
            });
            if let Err(e) = request(&d, upstream, "OPTIONS", cseq, &s.extra_hdrs)
                .and_then(|ctx| sender.send(ctx, done))
            {
                log::error!("dialog: ping of {} not sent: {e}", d.callid);
            }
        }
    }
}

/// The CSeq of a ping towards `to` (`seen`: the last number the other side sent it). While
/// rsips has sent nothing of its own that way, the number the side last saw (1 when none): not
/// lower, so it is taken, and not higher, so the other side's next request is not refused as
/// out of order. Once it has, the next of its own (the other side's requests are renumbered
/// after them anyway).
fn ping_cseq(to: &mut crate::table::Leg, seen: u32) -> u32 {
    if to.gen_cseq == 0 {
        seen.max(1)
    } else {
        to.next_gen_cseq(seen)
    }
}
