//! NOTIFY requests: built from a subscription (the watcher's dialog seen from our side) and
//! sent statefully through tm by the server's sender; a 481, or a 408 with
//! `end_sub_on_timeout`, ends the subscription.

use std::sync::OnceLock;

use engine::MsgCtx;

use crate::state::{Status, Sub};

/// Gets the final reply code of a NOTIFY.
pub type Done = Box<dyn FnOnce(u16) + Send>;

/// How the module sends a request of its own (the server's tm and `local_route`).
pub trait Sender: Send + Sync {
    fn send(&self, ctx: MsgCtx, done: Done) -> Result<(), String>;
}

static SENDER: OnceLock<Box<dyn Sender>> = OnceLock::new();

pub(crate) fn set_sender(s: Box<dyn Sender>) {
    let _ = SENDER.set(s);
}

/// What one NOTIFY carries.
pub(crate) struct Notice {
    /// The subscription as it is after this NOTIFY (its `local_cseq` already counts it).
    pub sub: Sub,
    /// `(content type, body)`; none for pending and terminated subscriptions.
    pub body: Option<(&'static str, String)>,
    /// `Subscription-State` value.
    pub state: String,
}

/// The `Subscription-State` of a subscription at `now`: terminated once it has expired.
pub(crate) fn subscription_state(s: &Sub, now: i64, offset: i64) -> String {
    if s.expires <= now {
        return "terminated;reason=timeout".to_owned();
    }
    match s.status {
        Status::Terminated => {
            let reason = if s.reason.is_empty() {
                "rejected"
            } else {
                &s.reason
            };
            format!("terminated;reason={reason}")
        }
        st => format!(
            "{};expires={}",
            st.name(),
            (s.expires - now - offset).max(0)
        ),
    }
}

/// The NOTIFY of a notice, ready for tm.
fn request(n: &Notice) -> Result<MsgCtx, String> {
    let s = &n.sub;
    let ruri = if s.contact.is_empty() {
        s.watcher_uri()
    } else {
        s.contact.clone()
    };
    let to_uri = s.watcher_uri();
    let from_uri = crate::handlers::uri_of(&s.to_user, &s.to_domain);
    let mut headers = format!(
        "To: <{to_uri}>;tag={}\r\nFrom: <{from_uri}>;tag={}\r\nCSeq: {} NOTIFY\r\nCall-ID: {}\r\n",
        s.from_tag, s.to_tag, s.local_cseq, s.callid
    );
    let routes: Vec<&str> = sip::split_values(&s.record_route)
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    for r in &routes {
        headers.push_str(&format!("Route: {r}\r\n"));
    }
    headers.push_str("Max-Forwards: 70\r\n");
    match &s.event_id {
        Some(id) => headers.push_str(&format!("Event: {};id={id}\r\n", s.event)),
        None => headers.push_str(&format!("Event: {}\r\n", s.event)),
    }
    headers.push_str(&format!("Contact: <{}>\r\n", s.local_contact));
    headers.push_str(&format!("Subscription-State: {}\r\n", n.state));
    if let Some((ct, _)) = &n.body {
        headers.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    let msg = tm::build_request(
        "NOTIFY",
        &ruri,
        &headers,
        n.body.as_ref().map(|(_, b)| b.as_str()),
    )?;
    let mut ctx = MsgCtx::new(msg);
    // A loose router first in the route set takes the NOTIFY; a strict one (no lr) would need
    // the R-URI swapped, which OpenSIPS' presence does not do either.
    if let Some(first) = routes.first()
        && let Ok(addr) = sip::NameAddr::parse(first)
    {
        ctx.dst_uri = Some(addr.uri().as_str().to_owned());
    }
    if !s.socket_info.is_empty() {
        ctx.send_socket = Some(s.socket_info.clone());
    }
    Ok(ctx)
}

/// Sends the NOTIFYs; a 481 (and a 408 when `end_on_timeout`) ends their subscriptions.
pub(crate) fn send(notices: Vec<Notice>, end_on_timeout: bool) {
    let Some(sender) = SENDER.get() else {
        if !notices.is_empty() {
            log::error!("presence: the server cannot send NOTIFYs yet");
        }
        return;
    };
    for n in notices {
        let ctx = match request(&n) {
            Ok(c) => c,
            Err(e) => {
                log::error!(
                    "presence: cannot build the NOTIFY for {}: {e}",
                    n.sub.pres_uri
                );
                continue;
            }
        };
        let (callid, to_tag, from_tag) = (
            n.sub.callid.clone(),
            n.sub.to_tag.clone(),
            n.sub.from_tag.clone(),
        );
        let done: Done = Box::new(move |code| {
            if code == 481 || (code == 408 && end_on_timeout) {
                log::info!("presence: NOTIFY answered {code}: the subscription {callid} ends");
                crate::handlers::remove_sub(&callid, &to_tag, &from_tag);
            }
        });
        if let Err(e) = sender.send(ctx, done) {
            log::error!(
                "presence: cannot send the NOTIFY for {}: {e}",
                n.sub.pres_uri
            );
        }
    }
}
