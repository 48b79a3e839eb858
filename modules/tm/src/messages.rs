//! The messages tm builds and the identifiers it matches by: transaction keys and branch ids,
//! reply ranks, relayed replies, hop-by-hop ACKs and CANCELs.

use engine::{MsgCtx, Outbound};
use sip::{Edits, SipMessage};
use sip::{push_decimal, push_hex};

/// The numeric id of a `$T_id` text (`hash:label`).
pub fn parse_tid(text: &str) -> Option<u64> {
    let (hash, label) = text.trim().split_once(':')?;
    let hash = u64::from_str_radix(hash, 16).ok()?;
    let label: u64 = label.parse().ok()?;
    (label <= 0xffff).then_some((hash << 16) | label)
}

/// The server-transaction key of a request: its top Via branch and sent-by, and the method
/// (an ACK and a CANCEL belong to the INVITE they refer to, so they carry their own method
/// here and are matched against INVITE separately).
pub(crate) fn request_key(
    msg: &SipMessage,
    method: &str,
    legacy: crate::core::LegacyMatching,
) -> Option<String> {
    let via = msg.top_via().ok()?;
    // Built by hand: this runs for every request (lookup and creation) and `format!` costs
    // more than the rest of the key.
    let host = via.host().as_str();
    let mut sent_by = String::with_capacity(host.len() + 6);
    sent_by.push_str(host);
    sent_by.make_ascii_lowercase();
    sent_by.push(':');
    push_decimal(&mut sent_by, u64::from(via.port().unwrap_or(0)));
    match via.branch() {
        Some(branch) if branch.starts_with("z9hG4bK") => {
            let mut key = String::with_capacity(branch.len() + sent_by.len() + method.len() + 2);
            key.push_str(branch);
            key.push('|');
            key.push_str(&sent_by);
            key.push('|');
            key.push_str(method);
            Some(key)
        }
        // RFC 2543 peers (RFC 3261 §17.2.3, OpenSIPS `ruri_matching`/`via1_matching`): the
        // Request-URI, From tag, Call-ID, CSeq number and top Via identify the transaction,
        // plus the To tag except for INVITE, whose ACK and CANCEL carry another To tag or none.
        // `ruri_matching=0` leaves out the Request-URI, `via1_matching=0` the top Via.
        branch => {
            let cseq = msg.cseq().ok()?;
            let to_tag = if matches!(method, "INVITE" | "CANCEL") {
                ""
            } else {
                msg.to_tag().ok().flatten().unwrap_or("")
            };
            let ruri = if legacy.ruri {
                msg.request_uri_str()?
            } else {
                ""
            };
            let (sent_by, branch) = if legacy.via1 {
                (sent_by.as_str(), branch.unwrap_or(""))
            } else {
                ("", "")
            };
            Some(format!(
                "2543|{ruri}|{}|{}|{}|{sent_by}|{branch}|{to_tag}|{method}",
                msg.from_tag().ok().flatten().unwrap_or(""),
                msg.call_id().ok()?,
                cseq.seq,
            ))
        }
    }
}

/// The dialog an INVITE's 2xx and its ACK share (OpenSIPS' e2e ACK matching): Call-ID, CSeq
/// number, From tag and To tag; `None` without a To tag.
pub(crate) fn ack_key(msg: &SipMessage) -> Option<String> {
    let to_tag = msg.to_tag().ok().flatten()?;
    Some(format!(
        "{}|{}|{}|{to_tag}",
        msg.call_id().ok()?,
        msg.cseq().ok()?.seq,
        msg.from_tag().ok().flatten().unwrap_or(""),
    ))
}

/// Whether a request's transaction is identified the RFC 2543 way (no magic-cookie branch).
pub(crate) fn is_legacy(msg: &SipMessage) -> bool {
    msg.top_via()
        .ok()
        .is_some_and(|v| !v.branch().is_some_and(|b| b.starts_with("z9hG4bK")))
}

/// Our branch id for branch `n` of transaction `id` (`z9hG4bK` + hex id + `.` + n).
pub(crate) fn branch_id(id: u64, n: usize) -> String {
    let mut b = String::with_capacity(7 + 16 + 1 + 4);
    b.push_str("z9hG4bK");
    push_hex(&mut b, id);
    b.push('.');
    push_decimal(&mut b, n as u64);
    b
}

pub(crate) fn parse_branch_id(branch: &str) -> Option<(u64, usize)> {
    let rest = branch.strip_prefix("z9hG4bK")?;
    let (id, n) = rest.split_once('.')?;
    Some((u64::from_str_radix(id, 16).ok()?, n.parse().ok()?))
}

/// Reply selection rank (lower wins) for final replies when every branch is done, as OpenSIPS
/// ranks them: 487 after the caller's CANCEL first, then 2xx, 6xx, 3xx, the 4xx a caller can
/// act on (401, 407, 415, 420, 484), other 4xx, 5xx, 408 and 503 last — by code within each
/// group, so a fork's 404 wins over its 486.
pub(crate) fn rank(code: u16, cancelled: bool) -> u32 {
    let code = u32::from(code);
    match code / 100 {
        1 | 2 => code,
        6 => code - 300,
        3 => code + 100,
        5 if code == 503 => 801,
        4 => match code {
            401 => 500,
            407 => 501,
            415 => 502,
            420 => 503,
            484 => 504,
            408 => 800,
            487 if cancelled => 0,
            _ => code + 200,
        },
        _ => code + 200,
    }
}

/// The request state a transaction keeps: the message and the script's decisions, without
/// what belongs to one run (the outbox, the reply being handled).
pub(crate) fn strip(ctx: &MsgCtx) -> MsgCtx {
    let mut c = ctx.clone();
    c.outbox.clear();
    c.tx = None;
    c.t_reply = None;
    // They went to the branch; a failure route starts with a destination set of its own.
    c.branch_attrs = Default::default();
    c
}

/// A reply relayed upstream: our top Via removed, sent where the request came from (RFC 3261
/// §18.2.2 via the receipt, on its connection for streams). A 503 becomes 500 (§16.7 step 6)
/// unless `keep_503` (the core's `disable_503_translation`).
pub(crate) fn relay_upstream(
    req: &MsgCtx,
    reply: &SipMessage,
    keep_503: bool,
    came_on: Option<(&'static str, std::net::SocketAddr)>,
) -> Option<Outbound> {
    let receipt = req.receipt.as_ref()?;
    let mut edits = Edits::new();
    edits.remove_top_via(reply);
    // A reply that kept only our Via (a UA, or a test scenario, that copies the last Via
    // alone) would go upstream with none: the request's own Vias go back in, so that it
    // arrives well-formed (OpenSIPS relays it without any). Topology hiding puts them back
    // itself.
    let hiding = req
        .reply_fixups
        .iter()
        .any(|f| matches!(f, engine::ReplyFixup::Hide(_)));
    if !hiding && !has_second_via(reply) {
        for h in req.msg.headers().filter(|h| h.name == sip::HeaderName::Via) {
            edits.add_top("Via", h.value);
        }
    }
    apply_fixups(reply, &req.reply_fixups, &mut edits, came_on);
    // A UDP reply without Content-Length relayed over a stream gets one (RFC 3261 §18.3).
    if receipt.proto != "udp" {
        edits.force_content_length();
    }
    let mut data = reply.serialize(&edits);
    if !keep_503 && reply.status() == Some(503) && data.starts_with(b"SIP/2.0 503") {
        data.splice(8..11, *b"500");
    }
    let dest = sl::reply_destination_for(req, receipt.source);
    Some(Outbound {
        data,
        dest,
        from: Some(receipt.local),
        proto: receipt.proto,
        conn: receipt.conn,
        origin: None,
        no_new_conn: engine::ctx::no_new_conn_reply(req),
    })
}

/// Whether a reply has a Via besides its top one: a second Via line, or a comma in the one
/// line (told without parsing the Vias; a comma inside a quoted Via parameter value would
/// count too, which only skips the repair below).
fn has_second_via(reply: &SipMessage) -> bool {
    let mut lines = reply.headers().filter(|h| h.name == sip::HeaderName::Via);
    match (lines.next(), lines.next()) {
        (_, Some(_)) => true,
        (Some(top), None) => top.value.contains(','),
        (None, None) => false,
    }
}

/// What the request's modules asked to be undone in its replies: (uac) the From/To display
/// name and URI as the request brought them (the reply's tag stays), the CSeq number;
/// (topology_hiding) the request's Vias and Record-Routes, and a Contact of ours.
fn apply_fixups(
    reply: &SipMessage,
    fixups: &[engine::ReplyFixup],
    edits: &mut Edits,
    came_on: Option<(&'static str, std::net::SocketAddr)>,
) {
    use sip::HeaderName;
    for fix in fixups {
        let name = match fix {
            engine::ReplyFixup::Header { to: true, .. } => HeaderName::To,
            engine::ReplyFixup::Header { .. } => HeaderName::From,
            engine::ReplyFixup::CSeq(_) => HeaderName::CSeq,
            engine::ReplyFixup::Hide(h) => {
                hide(reply, h, edits, came_on);
                continue;
            }
        };
        let Some(h) = reply.headers().find(|h| h.name == name) else {
            continue;
        };
        let value = match fix {
            engine::ReplyFixup::Header { original, .. } => {
                format!("{original}{}", header_params(h.value))
            }
            engine::ReplyFixup::CSeq(n) => match h.value.split_once(char::is_whitespace) {
                Some((_, method)) => format!("{n} {}", method.trim()),
                None => continue,
            },
            engine::ReplyFixup::Hide(_) => continue,
        };
        edits.replace_value(h.index, value);
    }
}

/// topology_hiding's changes to a reply: every Via and Record-Route of the far side out, the
/// request's own back in, and (but in a 3xx) the Contact the module builds.
fn hide(
    reply: &SipMessage,
    fix: &engine::HideFixup,
    edits: &mut Edits,
    came_on: Option<(&'static str, std::net::SocketAddr)>,
) {
    use sip::HeaderName;
    for h in reply
        .headers()
        .filter(|h| h.name == HeaderName::Via || h.name == HeaderName::RecordRoute)
    {
        edits.remove(h.index);
    }
    for v in &fix.vias {
        edits.add_top("Via", v);
    }
    if let Some(rr) = fix.record_route.as_deref().filter(|r| !r.is_empty()) {
        edits.add_top("Record-Route", rr);
    }
    if let Some(call_id) = &fix.call_id
        && let Some(h) = reply.headers().find(|h| h.name == HeaderName::CallId)
    {
        edits.replace_value(h.index, call_id.as_str());
    }
    if fix.contact
        && !(300..400).contains(&reply.status().unwrap_or(0))
        && let Some(h) = reply.headers().find(|h| h.name == HeaderName::Contact)
        && let Some(value) = engine::hooks::hidden_contact(reply, came_on, &fix.state)
    {
        edits.replace_value(h.index, value);
    }
}

/// The header parameters of a From/To value (`;tag=…`): what follows the URI.
pub(crate) fn header_params(value: &str) -> &str {
    match value.rfind('>') {
        Some(end) => &value[end + 1..],
        None => value.find(';').map_or("", |i| &value[i..]),
    }
}

/// The lines of a branch's request that ACK and CANCEL copy: R-URI, top Via, Route set, From,
/// Call-ID, CSeq number, To.
pub(crate) fn copied_lines(sent: &Outbound) -> Option<(SipMessage, String, u32)> {
    let sent = SipMessage::parse(bytes::Bytes::from(sent.data.clone())).ok()?;
    let ruri = sent.request_uri_str()?.to_owned();
    let seq = sent.cseq().ok()?.seq;
    Some((sent, ruri, seq))
}

static USER_AGENT: std::sync::RwLock<Option<(String, String)>> = std::sync::RwLock::new(None);

/// Sets the User-Agent the ACKs and CANCELs tm builds carry: `user_agent_header` (a whole
/// header line) or rsips' own; none with `server_signature=no` (OpenSIPS).
pub(crate) fn set_user_agent(script: &engine::Script) {
    let ua = if script.global_int("server_signature") == Some(0) {
        None
    } else {
        Some(match script.global_text("user_agent_header") {
            Some(line) => match line.split_once(':') {
                Some((n, v)) => (n.trim().to_owned(), v.trim().to_owned()),
                None => ("User-Agent".to_owned(), line.trim().to_owned()),
            },
            None => (
                "User-Agent".to_owned(),
                concat!("rsips (", env!("CARGO_PKG_VERSION"), ")").to_owned(),
            ),
        })
    };
    *USER_AGENT.write().unwrap_or_else(|e| e.into_inner()) = ua;
}

fn user_agent() -> Option<(String, String)> {
    USER_AGENT.read().unwrap_or_else(|e| e.into_inner()).clone()
}

pub(crate) fn build_like(
    sent_out: &Outbound,
    method: &str,
    to: Option<&str>,
    extra: &[(&str, &str)],
) -> Option<Outbound> {
    let (sent, ruri, seq) = copied_lines(sent_out)?;
    let mut rb = sip::RequestBuilder::new(method, &ruri);
    let top = sent.top_via().ok()?.as_str().to_owned();
    rb = rb.header("Via", &top);
    // OpenSIPS' order (`build_local`): Via, From, Call-ID, To, CSeq, Max-Forwards, the Route
    // set, the extra headers, User-Agent.
    let first = |name: sip::HeaderName| sent.headers().find(|h| h.name == name);
    if let Some(h) = first(sip::HeaderName::From) {
        rb = rb.header("From", h.value);
    }
    if let Some(h) = first(sip::HeaderName::CallId) {
        rb = rb.header("Call-ID", h.value);
    }
    if let Some(h) = first(sip::HeaderName::To) {
        rb = rb.header("To", to.unwrap_or(h.value));
    }
    rb = rb.header("CSeq", &format!("{seq} {method}"));
    rb = rb.header("Max-Forwards", "70");
    for h in sent.headers().filter(|h| h.name == sip::HeaderName::Route) {
        rb = rb.header("Route", h.value);
    }
    for (n, v) in extra {
        rb = rb.header(n, v);
    }
    if let Some((n, v)) = user_agent() {
        rb = rb.header(&n, &v);
    }
    Some(Outbound {
        data: rb.build(),
        ..sent_out.clone()
    })
}

/// The hop-by-hop ACK for a negative final reply on an INVITE branch (RFC 3261 §17.1.1.3).
pub(crate) fn ack_for(
    sent: &Outbound,
    reply: &SipMessage,
    extra: &[(String, String)],
) -> Option<Outbound> {
    let to = reply
        .headers()
        .find(|h| h.name == sip::HeaderName::To)?
        .value
        .to_owned();
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    build_like(sent, "ACK", Some(&to), &extra)
}

/// A CANCEL for a branch (RFC 3261 §9.1) with a Reason header (none when `reason` is empty:
/// OpenSIPS' MI `tm:uac_cancel` sends its CANCELs without one).
pub(crate) fn cancel_for(
    sent: &Outbound,
    reason: &str,
    extra: &[(String, String)],
) -> Option<Outbound> {
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(extra.len() + 1);
    if !reason.is_empty() {
        headers.push(("Reason", reason));
    }
    headers.extend(extra.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    build_like(sent, "CANCEL", None, &headers)
}

/// Where the dialog a 2xx establishes sends its next request (RFC 3261 §12.1.2, §12.2.1.1):
/// the remote target, the route set, the next hop. OpenSIPS' `dlg_response_uac` and
/// `calculate_hooks` (modules/tm/dlg.c); MI `tm:uac_dlg` prints it for a 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogTarget {
    /// The Request-URI of in-dialog requests.
    pub ruri: String,
    /// The first hop (the first route when it is a loose router, else the Request-URI).
    pub next_hop: String,
    /// The Route header values in-dialog requests carry (a strict router's list ends with
    /// the remote target in `<>`).
    pub routes: Vec<String>,
}

/// The dialog target of a reply: its Contact, and its Record-Route set reversed (we are the
/// UAC). `None` without a usable Contact.
pub fn dialog_target(reply: &SipMessage) -> Option<DialogTarget> {
    let contact = match reply.contacts().ok()? {
        sip::Contacts::List(list) => list.first()?.uri().as_str().to_owned(),
        sip::Contacts::Star => return None,
    };
    let mut set = Vec::new();
    for rr in reply.record_routes() {
        let rr = rr.ok()?;
        set.push((
            rr.as_str().to_owned(),
            rr.uri().as_str().to_owned(),
            rr.uri().param("lr").is_some(),
        ));
    }
    set.reverse();
    let Some((_, first_uri, loose)) = set.first().cloned() else {
        return Some(DialogTarget {
            next_hop: contact.clone(),
            ruri: contact,
            routes: Vec::new(),
        });
    };
    if loose {
        Some(DialogTarget {
            ruri: contact,
            next_hop: first_uri,
            routes: set.into_iter().map(|(text, _, _)| text).collect(),
        })
    } else {
        // A strict router: it becomes the Request-URI and the remote target the last route.
        let mut routes: Vec<String> = set.into_iter().skip(1).map(|(text, _, _)| text).collect();
        routes.push(format!("<{contact}>"));
        Some(DialogTarget {
            ruri: first_uri.clone(),
            next_hop: first_uri,
            routes,
        })
    }
}

/// The ACK tm sends itself for a 2xx to an INVITE it generated (OpenSIPS `build_dlg_ack`,
/// modules/tm/t_msgbuilder.c): Request-URI and Route set from the 2xx's dialog target, the
/// INVITE's top Via (OpenSIPS reuses the INVITE branch), From, Call-ID and CSeq number, the
/// To of the 2xx. It goes where the INVITE went, as in OpenSIPS. The INVITE's Contact goes
/// along (OpenSIPS' tm leaves it out, but its b2b_entities, whose INVITEs tm sends here,
/// ACKs with its Contact, and UAs check for it).
pub(crate) fn ack_for_2xx(sent_out: &Outbound, reply: &SipMessage) -> Option<Outbound> {
    let (sent, ruri, seq) = copied_lines(sent_out)?;
    let target = dialog_target(reply);
    let ruri = target.as_ref().map_or(ruri, |t| t.ruri.clone());
    let to = reply
        .headers()
        .find(|h| h.name == sip::HeaderName::To)?
        .value;
    let mut rb = sip::RequestBuilder::new("ACK", &ruri);
    rb = rb.header("Via", sent.top_via().ok()?.as_str());
    for h in sent.headers() {
        if matches!(
            h.name,
            sip::HeaderName::From | sip::HeaderName::CallId | sip::HeaderName::Contact
        ) {
            rb = rb.header(h.name.as_str().unwrap_or(h.name_str), h.value);
        }
    }
    rb = rb.header("To", to);
    rb = rb.header("CSeq", &format!("{seq} ACK"));
    rb = rb.header("Max-Forwards", "70");
    if let Some(t) = &target
        && !t.routes.is_empty()
    {
        rb = rb.header("Route", &t.routes.join(", "));
    }
    Some(Outbound {
        data: rb.build(),
        ..sent_out.clone()
    })
}

#[cfg(test)]
mod number_tests {
    use super::*;

    #[test]
    fn branch_ids_are_what_format_would_write() {
        // The number writers themselves are checked against `format!` in sip::numtext.
        assert_eq!(branch_id(0x1f2e, 3), "z9hG4bK1f2e.3");
        assert_eq!(
            parse_branch_id(&branch_id(u64::MAX, 999)),
            Some((u64::MAX, 999))
        );
    }
}
