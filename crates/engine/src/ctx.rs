//! The routing state of one message while a script runs over it (STYLE rule 9): the parsed
//! message stays immutable; R-URI rewrites, `$du`, flags and header edits live here and are
//! applied when the message is serialized.

use std::net::SocketAddr;

use sip::{Edits, SipMessage};

/// Where a message came from and which local socket received it (`$si`, `$sp`, `$socket_in`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub source: SocketAddr,
    /// Lower-case transport name: `udp`, `tcp`, `tls`, `ws`, `wss`.
    pub proto: &'static str,
    pub local: SocketAddr,
    /// The connection it came on (stream transports); replies go back on it.
    pub conn: Option<u64>,
    /// The (source, destination) of the PROXY protocol header the connection started with;
    /// `source` above is already the client it names.
    pub proxy: Option<(SocketAddr, SocketAddr)>,
}

/// The dialog a message belongs to, as the dialog module marked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialogMark {
    /// The dialog's id (`(h_entry << 32) | h_id`, as OpenSIPS' MI shows it).
    pub id: u64,
    /// The message goes from the callee towards the caller (`$DLG_dir` "UPSTREAM").
    pub upstream: bool,
    /// This message created the dialog (`create_dialog`).
    pub created: bool,
    /// What `validate_dialog` answers for this sequential request (1 valid, -1 CSeq, -2
    /// remote target, -3 route set, -4 other), checked against the dialog as it was before
    /// the request; 0 when nothing was checked.
    pub check: i8,
}

/// A message a module function wants sent; the worker sends it after the function returns, so
/// modules never touch sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub data: Vec<u8>,
    pub dest: SocketAddr,
    /// The local socket to send from (`force_send_socket`, `$socket_out`); `None` is the socket
    /// the message came in on.
    pub from: Option<SocketAddr>,
    /// Lower-case transport name: `udp`, `tcp`, `tls`, `ws`, `wss`.
    pub proto: &'static str,
    /// An open connection to use first (a reply to a request received over a stream).
    pub conn: Option<u64>,
    /// The client and server a PROXY protocol header names when the message opens a
    /// connection from a `send_proxy_protocol` socket: the relayed request's own endpoints (or
    /// the ones its PROXY header gave); `None`: the new connection's.
    pub origin: Option<(SocketAddr, SocketAddr)>,
    /// Only an open connection may carry it (`tcp_no_new_conn_bflag` on the branch,
    /// `tcp_no_new_conn_rplflag` on the request of a reply): no new one is opened.
    pub no_new_conn: bool,
}

/// Whether the branch of `ctx` asks that no new connection be opened for it
/// (`tcp_no_new_conn_bflag`).
pub fn no_new_conn_branch(ctx: &MsgCtx) -> bool {
    flag_global_set(ctx, "tcp_no_new_conn_bflag", ctx.branch_flags)
}

/// Whether replies to the request of `ctx` may only use an open connection
/// (`tcp_no_new_conn_rplflag`, a message flag).
pub fn no_new_conn_reply(ctx: &MsgCtx) -> bool {
    flag_global_set(ctx, "tcp_no_new_conn_rplflag", ctx.flags)
}

fn flag_global_set(ctx: &MsgCtx, global: &str, flags: u64) -> bool {
    ctx.script.as_ref().is_some_and(|s| {
        s.no_new_conn_flag(global)
            .is_some_and(|bit| flags & (1 << bit) != 0)
    })
}

/// Why `error_route` runs (`$err.*`), with OpenSIPS' numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrInfo {
    /// `$err.class`: 1 parse error, 4 failed assertion.
    pub class: i64,
    /// `$err.level`: severity, lower is worse (3 for parse errors).
    pub level: i64,
    /// `$err.info`: what went wrong.
    pub info: String,
    /// `$err.rcode` / `$err.rreason`: the reply the error calls for.
    pub rcode: i64,
    pub rreason: String,
}

impl ErrInfo {
    /// A message that could not be parsed: the suggested reply is `code reason`.
    pub fn parse(info: &str, code: u16, reason: &str) -> ErrInfo {
        ErrInfo {
            class: 1,
            level: 3,
            info: info.to_owned(),
            rcode: i64::from(code),
            rreason: reason.to_owned(),
        }
    }

    /// A failed `assert()`: critical, and calls for a 500.
    pub fn assertion() -> ErrInfo {
        ErrInfo {
            class: 4,
            level: 1,
            info: "assertion failed".into(),
            rcode: 500,
            rreason: "server error".into(),
        }
    }
}

/// A raised event's attributes, by name (unnamed ones `None`).
pub type EventParams = Vec<(Option<String>, crate::value::Value)>;

/// The transaction a message belongs to, as the engine and other modules see it (`send_reply`,
/// `$T_*`). The tm module implements it.
pub trait Transaction: Send + Sync + std::fmt::Debug {
    /// The concrete type, for the module that made it.
    fn into_any(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn std::any::Any + Send + Sync>;
    /// `t_reply`: a stateful reply to the transaction's request.
    fn reply(&self, ctx: &mut MsgCtx, code: u16, reason: &str) -> i64;
    /// `$T_id`: `<hash>:<label>`-like identity.
    fn id(&self) -> String;
    /// The request route that created or used the transaction has ended: one left with no
    /// branch and no final reply is released after `wt_timer` (OpenSIPS `t_unref`).
    fn script_done(&self) {}
    /// A dialog was created for (or matched to) the transaction's request after the
    /// transaction was (`create_dialog` after `t_newtran`, `lb_start` in a failure route).
    fn set_dialog(&self, _mark: DialogMark) {}
    /// `$(<request>pv)`: the transaction's request as it was received.
    fn request(&self) -> Option<SipMessage> {
        None
    }
    /// The transaction's request as the script last left it, with where it came from (an
    /// event_routing notification route runs over it, to inject branches).
    fn request_ctx(&self) -> Option<MsgCtx> {
        None
    }
    /// `$(<reply>pv)`: the reply of the branch tm picked (a failure route's winning reply);
    /// `None` when there is none or it was generated locally.
    fn picked_reply(&self) -> Option<SipMessage> {
        None
    }
    /// `$tm.branch.*`, `$T_branch_last_reply_code`: the transaction's branches so far.
    fn branches(&self) -> Vec<TmBranchInfo> {
        Vec::new()
    }
    /// Branch `i` alone (a read of one branch need not copy them all).
    fn branch(&self, i: usize) -> Option<TmBranchInfo> {
        self.branches().into_iter().nth(i)
    }
    /// How many branches the transaction has.
    fn branch_total(&self) -> usize {
        self.branches().len()
    }
    /// `$tm.branch.attr(NAME)[i] = v`: sets (NULL removes) an attribute of branch `i`; false
    /// when there is no such branch.
    fn set_branch_attr(&self, _i: usize, _name: &str, _v: crate::value::Value) -> bool {
        false
    }
    /// `$T_reply_code` in a request route: the status of the last reply sent upstream (0:
    /// none yet).
    fn last_status(&self) -> u16 {
        0
    }
    /// `$T_fr_timeout` / `$T_fr_inv_timeout` of the transaction, in seconds.
    fn fr_timeouts(&self) -> Option<(u32, u32)> {
        None
    }
    /// `$T_fr_timeout = v` (`inv`: `$T_fr_inv_timeout`) once the transaction exists: the
    /// branches it starts or that answer provisionally from now on use it; `None` (or 0) is
    /// the module default again.
    fn set_fr_timeout(&self, _inv: bool, _secs: Option<u32>) {}
}

/// One branch of a transaction, as `$tm.branch.*` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TmBranchInfo {
    pub uri: String,
    pub dst_uri: Option<String>,
    pub path: Option<String>,
    /// q × 1000, or -1.
    pub q: i32,
    pub flags: u64,
    /// `proto:ip:port` of the socket it was sent from.
    pub socket: Option<String>,
    /// The last status code received on it (0: none).
    pub last_received: u16,
    /// A phony branch (no SIP request behind it).
    pub phony: bool,
    /// `$tm.branch.attr(NAME)`: the attributes the message branch had when it was relayed.
    pub attrs: crate::dset::BranchAttrs,
}

/// What tm tells the script about the reply being handled (`$T_reply_code`, `$T_branch_idx`,
/// `t_check_status`, `t_local_replied`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyInfo {
    /// The reply's status code (in failure_route: the winning one).
    pub code: u16,
    pub reason: String,
    /// The branch it belongs to.
    pub branch: usize,
    /// Generated by rsips (a timeout's 408, a 477), not received.
    pub local: bool,
    /// Its digest challenges (`WWW-Authenticate` of a 401, `Proxy-Authenticate` of a 407),
    /// for `uac_auth` in failure_route.
    pub challenges: Vec<String>,
}

/// An extra branch of the destination set (`append_msg_branch`): tm relays one copy of the
/// request per branch, in parallel with the R-URI's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgBranch {
    pub uri: String,
    /// `$du` of the branch.
    pub dst_uri: Option<String>,
    /// The branch's path vector (RFC 3327, from `lookup`): Route headers ahead of any other
    /// when the branch is sent.
    pub path: Option<String>,
    /// q × 1000, or -1.
    pub q: i32,
    pub flags: u64,
    /// `$msg.branch.attr(NAME)` of the branch.
    pub attrs: crate::dset::BranchAttrs,
    /// The socket the branch is sent from (`$msg.branch.socket`, as `force_send_socket`
    /// is for the R-URI branch); `None`: chosen by the destination.
    pub socket: Option<String>,
}

/// What `do_accounting()` asked for (acc module).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accounting {
    /// `log`: syslog/stderr lines.
    pub log: bool,
    /// `failed`: negative final replies are reported too.
    pub failed: bool,
    /// `missed`: every failed INVITE branch is a missed call.
    pub missed: bool,
    /// `cdr`: call detail records (needs dialog; recorded, not produced yet).
    pub cdr: bool,
    /// acc's `detect_direction` found the request going upstream (callee to caller): its
    /// lines swap From and To.
    pub upstream: bool,
    /// `db`: rows in the database (with their own `failed` / `missed` flags).
    pub db: bool,
    pub db_failed: bool,
    pub db_missed: bool,
    pub db_cdr: bool,
    /// `evi`: the `E_ACC_*` events (with their own `failed` / `missed` / `cdr` flags).
    pub evi: bool,
    pub evi_failed: bool,
    pub evi_missed: bool,
    pub evi_cdr: bool,
    /// The table `do_accounting`'s third parameter names (an index the acc module keeps;
    /// 0: `db_table_acc`).
    pub db_table: u16,
}

impl Accounting {
    /// Any backend accounts the request.
    pub fn any(&self) -> bool {
        self.log || self.db || self.evi
    }

    /// A backend waits to report a missed call.
    pub fn missed_armed(&self) -> bool {
        (self.log && self.missed) || (self.db && self.db_missed) || (self.evi && self.evi_missed)
    }

    /// The same once the missed call is reported (a failure route may arm it again).
    pub fn missed_spent(self) -> Accounting {
        Accounting {
            missed: false,
            db_missed: false,
            evi_missed: false,
            ..self
        }
    }
}

/// What `record_route()` asked for (rr module parameters applied).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordRoute {
    /// `;name=value` parameters (`record_route(params)`, `add_rr_param`).
    pub params: String,
    /// `append_fromtag`: `;ftag=<From tag>`.
    pub ftag: bool,
    /// `enable_double_rr`.
    pub double: bool,
    /// `record_route_preset(host[, host2])`: the addresses to record instead of the sockets'.
    pub preset: Option<(String, Option<String>)>,
    /// `add_username`: the user part our Record-Route URIs carry (`<sip:user@host;…>`).
    pub user: Option<String>,
    /// `record_route()` or `record_route_preset()` ran: only then is a Record-Route added.
    /// `add_rr_param` before it only keeps its parameters for it, as in OpenSIPS.
    pub done: bool,
}

/// What the path module's `add_path`/`add_path_received` asked for: Path headers built when
/// the request leaves, from the sockets it uses (RFC 3327).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddPath {
    /// The user part of our Path URI.
    pub user: Option<String>,
    /// `;received=` with the source address, escaped (`add_path_received`).
    pub received: Option<String>,
    /// `enable_double_path`: a second Path for the receiving socket when the two differ.
    pub double: bool,
}

/// The body as the SDP variables last stored it (OpenSIPS keeps the same beside the message,
/// `sdp_ops`): while the edit list is still `edits`, `body` is the body the message leaves
/// with, so reading it needs no re-serialization. Its presence also makes `$rb` show the
/// edited body, as in OpenSIPS.
#[derive(Debug, Clone, Default)]
pub struct SdpOps {
    pub(crate) edits: Edits,
    pub(crate) body: bytes::Bytes,
    pub(crate) ct: Option<String>,
    /// The received Content-Type header has been removed (`$sdp = NULL`).
    pub(crate) ct_removed: bool,
}

/// Per-message script state.
#[derive(Debug, Clone)]
pub struct MsgCtx {
    pub msg: SipMessage,
    /// `$mi`: a process-wide message counter, unique per message handled.
    pub id: u64,
    pub receipt: Option<Receipt>,
    /// The Request-URI after rewrites (`$ru = ...`, `seturi`, `sethost` …); `None` = unchanged.
    pub new_ruri: Option<String>,
    /// The destination URI (`$du`), set by `setdsturi`, `loose_route`, `lookup` …
    pub dst_uri: Option<String>,
    /// `$path`: the R-URI branch's path vector (RFC 3327, set by `lookup` for a contact
    /// registered through proxies): sent as the first Route headers.
    pub path: Option<String>,
    /// `$ru_q`: the q value of the R-URI branch, 0..=1000, or -1 when unspecified.
    pub ruri_q: i32,
    /// Message flags, one bit per named flag (names are numbered when the script is compiled).
    pub flags: u64,
    /// Flags of branch 0 (the R-URI branch).
    pub branch_flags: u64,
    /// `$msg.branch.attr(NAME)` of branch 0 (the R-URI branch).
    pub branch_attrs: crate::dset::BranchAttrs,
    /// Header edits made by the script, applied at serialization.
    pub edits: Edits,
    /// The last return code (`$rc`, `$retcode`).
    pub retcode: i64,
    /// Header lines (`Name: value`) to add to the reply the script sends (`append_to_reply`).
    pub reply_headers: Vec<String>,
    /// The body of the reply the script sends (`append_body_to_reply`; its Content-Type comes
    /// from `append_to_reply`).
    pub reply_body: Option<String>,
    /// AVPs of this message/transaction, by the id the compiler gave each name; oldest first.
    pub avps: Vec<Vec<crate::value::Value>>,
    /// `$bavp(name)` of the branch being handled (branch, onreply and failure routes); tm
    /// keeps a set per branch and puts the right one here before it runs those routes.
    pub bavps: Vec<Vec<crate::value::Value>>,
    /// `force_rport()`: answer to the source port as if the request asked for rport.
    pub force_rport: bool,
    /// `add_local_rport()`: our own Via on forwarded requests carries `rport`.
    pub local_rport: bool,
    /// `set_via_handling("reply-to-via")`: replies go to the top Via's sent-by, not the source.
    pub reply_to_via: bool,
    /// `set_advertised_address()` / `set_advertised_port()`: what our Via and Record-Route
    /// name for this message instead of the sending socket's address / port.
    pub adv_address: Option<String>,
    pub adv_port: Option<String>,
    /// `force_tcp_alias([port])`: make the connection reachable at the source IP and this port
    /// (0: the Via port) — applied by the server after the script.
    pub tcp_alias: Option<u16>,
    /// `force_send_socket(proto:host:port)` / `$socket_out`: the local socket to send from, as
    /// a configured socket name (`udp:127.0.0.1:5060`).
    pub send_socket: Option<String>,
    /// Messages queued for sending (replies, forwarded requests).
    pub outbox: Vec<Outbound>,
    /// Set when `error_route` runs.
    pub err: Option<ErrInfo>,
    /// The transaction of this message (tm), once created or matched.
    pub tx: Option<std::sync::Arc<dyn Transaction>>,
    /// The event an event_routing notification route runs for (its parameters), which
    /// `t_inject_branches("event")` takes a contact from.
    pub event: Option<std::sync::Arc<EventParams>>,
    /// The dialog this message belongs to (dialog module: created or matched).
    pub dialog: Option<DialogMark>,
    /// Routes armed by `t_on_failure` / `t_on_reply` / `t_on_branch` (route indexes).
    pub on_failure: Option<usize>,
    pub on_reply: Option<usize>,
    pub on_branch: Option<usize>,
    /// In onreply and failure routes: the reply being handled.
    pub t_reply: Option<ReplyInfo>,
    /// The branch index a branch_route or onreply_route runs for (`$T_branch_idx`).
    pub branch_index: Option<usize>,
    /// The script this message is handled by (a transaction's routes keep running in it after
    /// an MI `reload_routes`).
    pub script: Option<std::sync::Arc<crate::Script>>,
    /// `do_accounting()`: how the transaction is accounted.
    pub acc: Option<Accounting>,
    /// The destination set beyond the R-URI (branch 0).
    pub branches: Vec<MsgBranch>,
    /// `record_route([params])`: Record-Route added when the request is relayed, built from
    /// the sending socket (two with `r2=on` when in and out sockets differ).
    pub record_route: Option<RecordRoute>,
    /// `$rr_params`: the parameters of our Route header that `loose_route()` consumed.
    pub rr_params: Option<String>,
    /// `$T_fr_timeout` / `$T_fr_inv_timeout` set by the script before the transaction exists
    /// (seconds; once it exists, they are the transaction's).
    pub fr_timeout: Option<u32>,
    pub fr_inv_timeout: Option<u32>,
    /// Set once an SDP variable has changed the body.
    pub sdp_ops: Option<Box<SdpOps>>,
    /// `serialize_branches`: the destinations still to try, in the order `next_branches` takes
    /// them (OpenSIPS keeps them in an AVP, so they follow the transaction).
    pub serial: Vec<SerialBranch>,
    /// The last internal error a function met (OpenSIPS' `ser_error` codes: -476 unresolvable
    /// destination, -477 send failed, -12 too many branches …; 0: none), which
    /// `sl_reply_error()` turns into a reply.
    pub last_error: i32,
    /// acc's `$acc_extra(tag)` values. Shared by every copy of the context (the transaction's
    /// request, its onreply and failure routes), so that a value set in any of them is there
    /// when the transaction is accounted, as OpenSIPS keeps them in the transaction.
    pub acc_extra: Option<AccExtra>,
    /// What tm changes back in the replies it relays upstream for this request (uac).
    pub reply_fixups: Vec<ReplyFixup>,
    /// `topology_hiding()`: the request leaves with our Via only, and
    /// [`crate::forward::SEND_ADDRESS`] in its edits becomes the sending socket's address.
    pub hide_topology: bool,
    /// The path module's Path header(s), added when the request leaves.
    pub add_path: Option<Box<AddPath>>,
}

/// A change tm makes to every reply it relays upstream for a request, undoing what a module
/// changed in the request on its way out (OpenSIPS uac's reply callbacks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyFixup {
    /// The From (or, `to`, the To) display name and URI as the request brought them; the
    /// reply keeps its own header parameters (the To tag).
    Header { to: bool, original: String },
    /// The CSeq number the request brought (`uac_auth` raised it for the next hop).
    CSeq(u32),
    /// topology_hiding: the reply goes back with the request's own Vias and Record-Routes,
    /// and a Contact of ours in place of the far end's.
    Hide(Box<HideFixup>),
}

/// What topology hiding puts back in (and takes out of) the replies to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HideFixup {
    /// The request's Via values as they go back (the first with `received`/`rport`).
    pub vias: Vec<String>,
    /// The request's Record-Route values, comma-joined, for the replies to an initial
    /// request (`None`: no Record-Route goes back).
    pub record_route: Option<String>,
    /// The reply's Contact (not a 3xx's) is replaced with what the module's
    /// [`crate::hooks::hidden_contact`] builds from the reply, the socket it came in on and
    /// `state`.
    pub contact: bool,
    /// What the builder needs from the request: free text owned by the module.
    pub state: String,
    /// The Call-ID the replies carry back (topology_hiding's `C`: the request left with
    /// another one).
    pub call_id: Option<String>,
}

/// acc's values (`$acc_extra`, `$acc_leg`), shared as [`MsgCtx::acc_extra`] is.
pub type AccExtra = std::sync::Arc<std::sync::Mutex<AccValues>>;

/// `$acc_extra(tag)` values by tag in the order they were first set, and the legs
/// (`acc_new_leg()`), each with its `$acc_leg(tag)` values; the last leg is the current one.
#[derive(Debug, Clone, Default)]
pub struct AccValues {
    pub extra: Vec<(String, crate::Value)>,
    pub legs: Vec<Vec<(String, crate::Value)>>,
}

impl AccValues {
    /// Sets (NULL removes) `tag` in `values`.
    pub fn set(values: &mut Vec<(String, crate::Value)>, tag: &str, v: crate::Value) {
        let at = values.iter().position(|(t, _)| t == tag);
        match (at, v) {
            (Some(i), crate::Value::Null) => {
                values.remove(i);
            }
            (None, crate::Value::Null) => {}
            (Some(i), v) => {
                if let Some(slot) = values.get_mut(i) {
                    slot.1 = v;
                }
            }
            (None, v) => values.push((tag.to_owned(), v)),
        }
    }

    /// The value of `tag` in `values` (NULL when unset).
    pub fn get(values: &[(String, crate::Value)], tag: &str) -> crate::Value {
        values
            .iter()
            .find(|(t, _)| t == tag)
            .map_or(crate::Value::Null, |(_, v)| v.clone())
    }
}

/// One destination `serialize_branches` put aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialBranch {
    pub uri: String,
    pub dst_uri: Option<String>,
    /// q × 1000, or -1.
    pub q: i32,
    pub flags: u64,
    pub socket: Option<String>,
    /// The last of its q class: `next_branches` stops after it.
    pub ends_class: bool,
}

impl MsgCtx {
    /// Whether this in-dialog request flows upstream (callee to caller), as rr's
    /// `is_direction` tells it: only when the `ftag` our Route carried (`$rr_params`) and the
    /// From tag are both there and differ; anything else counts as downstream, as in OpenSIPS.
    pub fn is_upstream(&self) -> bool {
        let Some(ftag) = self
            .rr_params
            .as_deref()
            .and_then(|p| p.split(';').find_map(|p| p.trim().strip_prefix("ftag=")))
            .filter(|t| !t.is_empty())
        else {
            return false;
        };
        match self.msg.from_tag() {
            Ok(Some(tag)) if !tag.is_empty() => tag != ftag,
            _ => false,
        }
    }

    pub fn new(msg: SipMessage) -> MsgCtx {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        MsgCtx {
            msg,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            receipt: None,
            new_ruri: None,
            dst_uri: None,
            path: None,
            ruri_q: -1,
            flags: 0,
            branch_flags: 0,
            branch_attrs: Default::default(),
            edits: Edits::new(),
            retcode: 0,
            reply_headers: Vec::new(),
            reply_body: None,
            avps: Vec::new(),
            bavps: Vec::new(),
            force_rport: false,
            local_rport: false,
            reply_to_via: false,
            adv_address: None,
            adv_port: None,
            err: None,
            send_socket: None,
            tcp_alias: None,
            outbox: Vec::new(),
            tx: None,
            event: None,
            dialog: None,
            on_failure: None,
            on_reply: None,
            on_branch: None,
            t_reply: None,
            branch_index: None,
            fr_timeout: None,
            fr_inv_timeout: None,
            record_route: None,
            rr_params: None,
            branches: Vec::new(),
            acc: None,
            script: None,
            sdp_ops: None,
            serial: Vec::new(),
            last_error: 0,
            acc_extra: None,
            reply_fixups: Vec::new(),
            hide_topology: false,
            add_path: None,
        }
    }

    pub fn with_receipt(mut self, receipt: Receipt) -> MsgCtx {
        self.receipt = Some(receipt);
        self
    }

    /// Replaces the Request-URI; refused (false) when `uri` does not parse.
    pub fn set_ruri(&mut self, uri: &str) -> bool {
        let ok = sip::Uri::parse(uri).is_ok();
        if ok {
            self.new_ruri = Some(uri.to_owned());
        }
        ok
    }

    /// The user part of the current Request-URI.
    pub fn ruri_user(&self) -> Option<String> {
        let u = sip::Uri::parse(self.ruri()?).ok()?;
        u.user().map(str::to_owned)
    }

    /// Rebuilds the current R-URI with one part replaced (`$rU`, `$rd`, `$rp`, `setuser` …).
    fn rewrite(&mut self, user: Option<&str>, host: Option<&str>, port: Option<&str>) -> bool {
        self.rewrite_with(user, None, host, port)
    }

    /// `setuserpass(pass)`: the password of the R-URI's user part (empty: removed); a URI
    /// without a user part cannot take one.
    pub fn set_ruri_password(&mut self, pass: &str) -> bool {
        let has_user = self
            .ruri()
            .and_then(|r| sip::Uri::parse(r).ok().map(|u| u.user().is_some()))
            .unwrap_or(false);
        has_user && self.rewrite_with(None, Some(pass), None, None)
    }

    fn rewrite_with(
        &mut self,
        user: Option<&str>,
        pass: Option<&str>,
        host: Option<&str>,
        port: Option<&str>,
    ) -> bool {
        let Some(current) = self.ruri().map(str::to_owned) else {
            return false;
        };
        let parts = UriRewrite {
            user,
            pass,
            host,
            port,
            // OpenSIPS' rewrite_ruri drops `maddr` along with the host it overrides.
            strip_maddr: host.is_some(),
        };
        match rewrite_uri(&current, &parts) {
            Some(out) => self.set_ruri(&out),
            None => false,
        }
    }

    /// `$ru = uri` (OpenSIPS `set_ruri`): any text is taken as it is, so a value that does not
    /// parse makes the R-URI PVs read NULL; an empty one goes back to the received R-URI. A
    /// new R-URI has no q (`$ru_q` reads -1).
    pub fn assign_ruri(&mut self, uri: &str) {
        if uri.is_empty() {
            self.new_ruri = None;
        } else {
            self.new_ruri = Some(uri.to_owned());
            self.ruri_q = -1;
        }
    }

    /// `$dd = host` / `$dp = port` (OpenSIPS `set_dst_host_port`): `$du` rebuilt with that
    /// part replaced (an empty port removes it); false without a `$du` that parses, or for an
    /// empty host.
    pub fn set_dst_host_port(&mut self, host: Option<&str>, port: Option<&str>) -> bool {
        if host.is_some_and(str::is_empty) {
            return false;
        }
        let Some(current) = self.dst_uri.as_deref().filter(|d| !d.is_empty()) else {
            return false;
        };
        let parts = UriRewrite {
            user: None,
            pass: None,
            host,
            port,
            strip_maddr: false,
        };
        let Some(out) = rewrite_uri(current, &parts) else {
            return false;
        };
        self.dst_uri = Some(out);
        true
    }

    pub fn set_ruri_user(&mut self, user: &str) -> bool {
        self.rewrite(Some(user), None, None)
    }

    pub fn set_ruri_host(&mut self, host: &str) -> bool {
        !host.is_empty() && self.rewrite(None, Some(host), None)
    }

    /// An empty port removes it.
    pub fn set_ruri_port(&mut self, port: &str) -> bool {
        (port.is_empty() || port.parse::<u16>().is_ok()) && self.rewrite(None, None, Some(port))
    }

    /// The current Request-URI text (rewritten or original); `None` for replies.
    pub fn ruri(&self) -> Option<&str> {
        match &self.new_ruri {
            Some(u) => Some(u),
            None => self.msg.request_uri_str(),
        }
    }
}

/// The parts a URI rewrite replaces (`None`: kept; an empty user, password or port: removed).
struct UriRewrite<'a> {
    user: Option<&'a str>,
    pass: Option<&'a str>,
    host: Option<&'a str>,
    port: Option<&'a str>,
    /// Drop the `maddr` parameter.
    strip_maddr: bool,
}

/// A `sip:`/`sips:` URI rebuilt with some parts replaced; `None` when `current` is not one.
fn rewrite_uri(current: &str, parts: &UriRewrite<'_>) -> Option<String> {
    let u = sip::Uri::parse(current).ok()?;
    if !u.scheme().is_sip() {
        return None;
    }
    let mut out = format!("{}:", u.scheme().as_str());
    let user = parts
        .user
        .map_or(u.user(), |x| (!x.is_empty()).then_some(x));
    if let Some(user) = user {
        out.push_str(user);
        let pw = match parts.pass {
            Some("") => None,
            Some(p) => Some(p),
            None => u.password(),
        };
        if let Some(pw) = pw {
            out.push(':');
            out.push_str(pw);
        }
        out.push('@');
    }
    out.push_str(parts.host.unwrap_or(u.host().map_or("", |h| h.as_str())));
    let port = match parts.port {
        Some("") => None,
        Some(p) => Some(p.to_owned()),
        None => u.port().map(|p| p.to_string()),
    };
    if let Some(p) = port {
        out.push(':');
        out.push_str(&p);
    }
    let params = u.params().as_str();
    if parts.strip_maddr {
        for param in params.split(';').filter(|p| !p.is_empty()) {
            let name = param.split_once('=').map_or(param, |(n, _)| n);
            if !name.eq_ignore_ascii_case("maddr") {
                out.push(';');
                out.push_str(param);
            }
        }
    } else {
        out.push_str(params);
    }
    if let Some(h) = u.headers() {
        out.push('?');
        out.push_str(h);
    }
    Some(out)
}
