//! The transaction engine: server transactions (the request we received), client branches (the
//! requests we relayed), their timers, reply selection and the routes tm arms.
//!
//! Time is a parameter (`now`), never read here, so timer behaviour is tested with a manual
//! clock. Sends go through a [`Host`]; script routes run through a [`Runner`]. No lock is held
//! while either is called.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use engine::{MsgCtx, Outbound, Outcome, ReplyInfo};
use sip::{Method, SipMessage};

mod cancel;
mod cell;
mod failover;
mod finish;
mod local;
mod reply;
mod upstream;
mod wheel;

pub use crate::messages::parse_tid;
use crate::messages::{
    ack_for, ack_for_2xx, ack_key, branch_id, cancel_for, is_legacy, parse_branch_id, rank,
    relay_upstream, request_key, strip,
};
pub use cell::{Arm, LocalReplied};
use failover::Failover;

/// tm's parameters (OpenSIPS names; defaults as OpenSIPS 4.0).
#[derive(Debug, Clone)]
pub struct Params {
    pub t1: Duration,
    pub t2: Duration,
    /// `fr_timeout`: a branch without a final reply is given up after this.
    pub fr_timeout: Duration,
    /// `fr_inv_timeout`: the same once an INVITE branch got a provisional reply.
    pub fr_inv_timeout: Duration,
    /// `wt_timer`: how long a completed transaction stays to absorb retransmissions.
    pub wt_timer: Duration,
    pub auto_100trying: bool,
    pub restart_fr_on_each_reply: bool,
    pub disable_6xx_block: bool,
    /// The core's `disable_503_translation`: a 503 goes upstream as it came.
    pub disable_503_translation: bool,
    /// `onreply_avp_mode`: 1, onreply routes see the transaction's AVPs and what they change
    /// stays with it; 0 (OpenSIPS' default), they start with none and theirs are dropped.
    pub onreply_avps: bool,
    /// Most branches one transaction may have (OpenSIPS: 256; rsips: configurable).
    pub max_branches: usize,
    /// How a request without an RFC 3261 branch finds its transaction.
    pub legacy: LegacyMatching,
    /// The core's `disable_dns_failover`: a branch whose destination's next DNS target could
    /// answer is not retried there.
    pub disable_dns_failover: bool,
    /// `minor_branch_flag`: the flag bit of branches the transaction does not wait for (still
    /// pending when the others are done, they are cancelled).
    pub minor_flag: Option<u32>,
}

/// What identifies an RFC 2543 transaction besides Call-ID, From, To and CSeq (tm's
/// `ruri_matching` and `via1_matching`, both on by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegacyMatching {
    /// The Request-URI must match too.
    pub ruri: bool,
    /// The top Via must match too.
    pub via1: bool,
}

impl Default for LegacyMatching {
    fn default() -> Self {
        LegacyMatching {
            ruri: true,
            via1: true,
        }
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            t1: Duration::from_millis(500),
            t2: Duration::from_millis(4000),
            fr_timeout: Duration::from_secs(30),
            fr_inv_timeout: Duration::from_secs(120),
            wt_timer: Duration::from_secs(5),
            auto_100trying: true,
            restart_fr_on_each_reply: true,
            disable_6xx_block: false,
            disable_503_translation: false,
            onreply_avps: false,
            max_branches: 4096,
            legacy: LegacyMatching::default(),
            disable_dns_failover: false,
            minor_flag: None,
        }
    }
}

/// Called once with the outcome of a send.
pub type SendDone = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Where tm's messages leave.
pub trait Host: Send + Sync {
    fn send(&self, out: Outbound, done: Option<SendDone>);
}

/// Runs a script route (failure, onreply, branch) over a message.
pub trait Runner {
    fn run(&mut self, route: usize, ctx: &mut MsgCtx) -> Outcome;

    /// The unnamed onreply_route of the script in use now (it may have been reloaded since
    /// tm started), run for every reply.
    fn reply_route(&self) -> Option<usize> {
        None
    }
}

#[derive(Debug, Clone, Copy)]
struct Retrans {
    next: Instant,
    interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Cancel {
    None,
    /// Wanted as soon as the branch answers provisionally.
    Wanted(String),
    Sent,
}

#[derive(Debug)]
struct Branch {
    sent: Outbound,
    /// `t_add_hdrs`: header lines the ACKs and CANCELs tm builds for this branch carry.
    extra_hdrs: Arc<[(String, String)]>,
    status: Option<u16>,
    reason: String,
    local: bool,
    reply: Option<SipMessage>,
    provisional: bool,
    /// The last provisional code received (0: none), for `$T_branch_last_reply_code`.
    last_1xx: u16,
    /// Its final reply is in the onreply routes: the script still sees the code before it
    /// as the branch's last (OpenSIPS updates `last_received` after those routes).
    final_in_routes: bool,
    /// Some reply came on it, a 100 included (OpenSIPS `T_UAC_HAS_RECV_REPLY`).
    received: bool,
    /// It could not be sent: its made-up 477 competes only when nothing else can answer
    /// (OpenSIPS skips such empty branches when picking).
    send_failed: bool,
    /// The destination's further DNS targets (RFC 3263), with what a new branch to the next
    /// needs; only when there are any.
    failover: Option<Box<Failover>>,
    /// When an unanswered CANCEL stops being resent (OpenSIPS gives it its own `fr_timeout`).
    cancel_until: Option<Instant>,
    retrans: Option<Retrans>,
    fr_at: Option<Instant>,
    cancel: Cancel,
    cancel_msg: Option<(Outbound, Retrans)>,
    /// The branch's own onreply route (`t_on_reply` in its branch_route), run before the
    /// transaction's.
    on_reply: Option<usize>,
    /// What the branch was built from (`$tm.branch.*`): its R-URI, `$du`, q and branch flags
    /// after branch_route, and the socket it left from.
    uri: String,
    dst_uri: Option<String>,
    path: Option<String>,
    q: i32,
    flags: u64,
    socket: Option<String>,
    /// The branch's `$bavp`s: set in its branch_route, seen and changed by the onreply and
    /// failure routes that handle its replies.
    bavps: Vec<Vec<engine::Value>>,
    /// `$tm.branch.attr(NAME)`: the message branch's attributes after branch_route.
    attrs: engine::BranchAttrs,
}

impl Branch {
    fn is_final(&self) -> bool {
        self.status.is_some_and(|s| s >= 200)
    }
}

/// One transaction's state.
#[derive(Debug)]
pub(crate) struct Tx {
    key: String,
    invite: bool,
    /// The request as the script left it when it last relayed or replied.
    pub(crate) request: MsgCtx,
    branches: Vec<Branch>,
    /// The routes armed on the transaction (`t_on_failure`, `t_on_reply`, `t_on_branch`).
    on_failure: Option<usize>,
    on_reply: Option<usize>,
    on_branch: Option<usize>,
    /// The last reply we sent upstream, for retransmissions of the request.
    last_reply: Option<Outbound>,
    last_code: u16,
    /// The last reply sent upstream was generated here (`t_reply`, 100 Trying), not relayed
    /// (OpenSIPS `relaied_reply_branch == -2`).
    last_local: bool,
    final_sent: bool,
    /// Negative final reply to an INVITE over UDP, or a 2xx of our own over any transport,
    /// resent until the ACK.
    reply_retrans: Option<(Retrans, Instant)>,
    /// The dialog key ([`ack_key`]) of the 2xx this INVITE transaction answered itself: its
    /// end-to-end ACK is absorbed here.
    ack_key: Option<String>,
    acked: bool,
    pub(crate) cancelled: bool,
    blocked: bool,
    completing: bool,
    /// The first branch of the current attempt: a failure route that relays again starts a
    /// new one, and only its branches compete for the best reply (OpenSIPS `first_branch`).
    first_branch: usize,
    /// `t_add_hdrs`: header lines for the ACKs and CANCELs tm builds (OpenSIPS `extra_hdrs`).
    extra_hdrs: Arc<[(String, String)]>,
    /// The request route's edits, as its first `t_relay` left them: a failure route starts
    /// from them, not from the last branch's (whose branch_route may have added its own).
    request_edits: Option<sip::Edits>,
    /// `t_relay` is still adding branches: the transaction cannot complete yet.
    relaying: usize,
    /// `t_add_cancel_reason`: the Reason header value of the CANCELs this transaction sends.
    cancel_reason: Option<String>,
    delete_at: Option<Instant>,
    fr: Duration,
    fr_inv: Duration,
    /// A request rsips sent itself (`t_uac_dlg`, `t_new_request`): its final reply goes here
    /// instead of upstream.
    local_done: Option<Local>,
    /// Generated here (OpenSIPS `T_IS_LOCAL_FLAG`): no upstream, and tm ACKs a 2xx itself.
    pub(crate) local: bool,
    /// `t_relay("allow-no-cancel")` on a request with `Request-Disposition: no-cancel` (RFC
    /// 3841 §9.1, OpenSIPS `T_MULTI_200OK_FLAG`): a 2xx does not cancel the other branches;
    /// they run on until they end, their 2xx relayed too.
    pub(crate) multi_200ok: bool,
    /// The branch whose reply tm picked as the transaction's answer (`$(<reply>pv)` in a
    /// failure route).
    picked: Option<usize>,
    /// A 6xx decided the transaction (`disable_6xx_block` off): it completes with that branch
    /// at once, without waiting for the others, which are cancelled.
    decided: Option<usize>,
    /// `t_relay("no-dns-failover")`.
    pub(crate) no_dns_failover: bool,
    /// The branch whose final reply, received or made up (timeout, send failure), came last:
    /// the current branch of the failure route it completes (OpenSIPS `_tm_branch_index`).
    last_final: Option<usize>,
    /// `t_wait_for_new_branches`: the transaction does not complete when its branches do, but
    /// waits for branches `t_inject_branches` adds — until `fr_inv_timeout`, until as many as
    /// it was told were added, or until `t_wait_no_more_branches`.
    waiting: Option<Wait>,
}

#[derive(Debug, Clone, Copy)]
struct Wait {
    until: Instant,
    /// Branches still expected (`None`: any number).
    left: Option<usize>,
}

impl Tx {
    fn new(key: String, invite: bool, request: MsgCtx, fr: Duration, fr_inv: Duration) -> Tx {
        Tx {
            key,
            invite,
            request,
            branches: Vec::new(),
            on_failure: None,
            on_reply: None,
            on_branch: None,
            last_reply: None,
            last_code: 0,
            last_local: false,
            final_sent: false,
            reply_retrans: None,
            ack_key: None,
            acked: false,
            cancelled: false,
            blocked: false,
            completing: false,
            first_branch: 0,
            extra_hdrs: Arc::from(Vec::new()),
            request_edits: None,
            relaying: 0,
            cancel_reason: None,
            delete_at: None,
            fr,
            fr_inv,
            local_done: None,
            local: false,
            multi_200ok: false,
            picked: None,
            decided: None,
            no_dns_failover: false,
            last_final: None,
            waiting: None,
        }
    }
}

/// The completion of a locally generated request.
pub(crate) struct Local(LocalDone);

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Local(..)")
    }
}

/// The final reply of a locally generated request.
#[derive(Debug, Clone)]
pub struct LocalReply {
    pub code: u16,
    pub reason: String,
    /// The reply received; `None` when tm made it up (408 on timeout, 477 send failure).
    pub reply: Option<SipMessage>,
}

/// Gets the final reply of a locally generated request.
pub type LocalDone = Box<dyn FnOnce(LocalReply) + Send>;

/// A transaction as scripts and other modules hold it.
#[derive(Debug)]
pub struct TxCell {
    pub(crate) id: u64,
    pub(crate) tm: Weak<Tm>,
    pub(crate) state: Mutex<Tx>,
}

/// `proto:ip:port` of the local socket a branch leaves from: the forced one, else the one the
/// request came in on when the transport is the same; `None` when the server picks it.
fn sent_from(ctx: &MsgCtx, out: &Outbound) -> Option<String> {
    let local = out.from.or_else(|| {
        ctx.receipt
            .as_ref()
            .filter(|r| r.proto == out.proto)
            .map(|r| r.local)
    })?;
    Some(match local {
        std::net::SocketAddr::V4(a) => {
            let hostport = engine::forward::v4_hostport(a);
            let mut s = String::with_capacity(out.proto.len() + 1 + hostport.len());
            s.push_str(out.proto);
            s.push(':');
            s.push_str(&hostport);
            s
        }
        std::net::SocketAddr::V6(_) => format!("{}:{local}", out.proto),
    })
}

/// What `lookup_request` found for a request.
#[derive(Debug)]
pub enum Found {
    /// A retransmission of a request with a transaction.
    Retransmission(Arc<TxCell>),
    /// An ACK for a negative final reply we sent (hop by hop).
    AckForNegative(Arc<TxCell>),
    /// A CANCEL for an INVITE transaction.
    CancelFor(Arc<TxCell>),
    /// The end-to-end ACK for a 2xx the transaction sent itself (`t_reply`): dialog-matched,
    /// as its branch is new (OpenSIPS: absorbed by `t_relay`/`t_newtran`, -2 from
    /// `t_check_trans`).
    AckForLocal2xx(Arc<TxCell>),
    None,
}

/// The transaction table.
pub struct Tm {
    pub params: Params,
    host: Arc<dyn Host>,
    txs: Mutex<HashMap<u64, Arc<TxCell>>>,
    by_key: Mutex<HashMap<String, u64>>,
    /// INVITE transactions that answered 2xx themselves, by [`ack_key`].
    local_2xx: Mutex<HashMap<String, u64>>,
    timers: Mutex<wheel::TimerWheel>,
    /// Transactions to look at on the next tick whatever the time (a branch failed to send).
    urgent: Mutex<Vec<u64>>,
    next_id: AtomicU64,
    me: Weak<Tm>,
}

impl std::fmt::Debug for Tm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tm")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// Where transaction ids (and so our Via branches) start: random per start, as OpenSIPS seeds
/// its labels, so a reply or a downstream transaction from before a restart cannot match a
/// new transaction. Kept below 2^48 so ids stay short and never wrap.
fn first_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 16).max(1)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Tm {
    pub fn new(params: Params, host: Arc<dyn Host>) -> Arc<Tm> {
        Arc::new_cyclic(|me| Tm {
            params,
            host,
            txs: Mutex::new(HashMap::new()),
            by_key: Mutex::new(HashMap::new()),
            local_2xx: Mutex::new(HashMap::new()),
            timers: Mutex::new(wheel::TimerWheel::new(Instant::now())),
            urgent: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(first_id()),
            me: me.clone(),
        })
    }

    /// The transaction with this id, if it is still in the table.
    /// Sends a message through tm's transport (what an MI-raised event route queued).
    pub fn send_out(&self, out: Outbound) {
        self.host.send(out, None);
    }

    pub fn by_id(&self, id: u64) -> Option<Arc<TxCell>> {
        lock(&self.txs).get(&id).cloned()
    }

    /// `tm:reply`: a reply to the request of transaction `id` (`$T_id`), from outside the
    /// script.
    pub fn reply_to(&self, id: u64, code: u16, reason: &str, body: Option<(&str, &[u8])>) -> i64 {
        let Some(cell) = self.by_id(id) else {
            return -2;
        };
        let req = cell.lock().request.clone();
        self.reply_in(&cell, &req, code, reason, body, Instant::now())
    }

    /// Transactions in the table (`inuse_transactions`).
    pub fn len(&self) -> usize {
        lock(&self.txs).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reply relayed upstream for `req` ([`relay_upstream`] with the core's
    /// `disable_503_translation`); `came_on` is the socket of the branch it answers.
    fn relay_up(
        &self,
        req: &MsgCtx,
        reply: &sip::SipMessage,
        came_on: Option<(&'static str, std::net::SocketAddr)>,
    ) -> Option<Outbound> {
        relay_upstream(req, reply, self.params.disable_503_translation, came_on)
    }

    fn schedule(&self, at: Instant, id: u64) {
        lock(&self.timers).push(at, id);
    }

    /// What a request is to the existing transactions.
    pub fn lookup_request(&self, msg: &SipMessage) -> Found {
        let Some(method) = msg.method() else {
            return Found::None;
        };
        let keys = lock(&self.by_key);
        let txs = || lock(&self.txs);
        let find = |m: &str| {
            request_key(msg, m, self.params.legacy)
                .and_then(|k| keys.get(&k).copied())
                .and_then(|id| txs().get(&id).cloned())
        };
        match method {
            Method::Ack => match find("INVITE") {
                // An RFC 2543 ACK for a 2xx may still match the INVITE's key; it is end to end.
                Some(tx) if is_legacy(msg) && tx.last_code() < 300 => {
                    drop(keys);
                    self.ack_for_local_2xx(msg)
                }
                Some(tx) => Found::AckForNegative(tx),
                None => {
                    drop(keys);
                    self.ack_for_local_2xx(msg)
                }
            },
            Method::Cancel => {
                if let Some(tx) = find("CANCEL") {
                    return Found::Retransmission(tx);
                }
                match find("INVITE") {
                    Some(tx) => Found::CancelFor(tx),
                    None => Found::None,
                }
            }
            _ => match find(msg.cseq().map_or("", |c| c.method_str)) {
                Some(tx) => Found::Retransmission(tx),
                None => Found::None,
            },
        }
    }

    /// An ACK for a 2xx one of our transactions sent itself, found by dialog: Call-ID, CSeq
    /// number, From tag and our To tag.
    fn ack_for_local_2xx(&self, ack: &SipMessage) -> Found {
        let table = lock(&self.local_2xx);
        if table.is_empty() {
            return Found::None;
        }
        let id = ack_key(ack).and_then(|k| table.get(&k).copied());
        drop(table);
        match id.and_then(|id| lock(&self.txs).get(&id).cloned()) {
            Some(cell) => Found::AckForLocal2xx(cell),
            None => Found::None,
        }
    }

    /// The INVITE transaction a CANCEL refers to (OpenSIPS `t_lookupOriginalT`), whether or
    /// not the CANCEL has a transaction of its own.
    pub fn invite_for_cancel(&self, cancel: &SipMessage) -> Option<Arc<TxCell>> {
        if cancel.method() != Some(Method::Cancel) {
            return None;
        }
        let id = request_key(cancel, "INVITE", self.params.legacy)
            .and_then(|k| lock(&self.by_key).get(&k).copied())?;
        lock(&self.txs).get(&id).cloned()
    }

    /// Creates the server transaction of `ctx`'s request; for an INVITE, 100 Trying goes out
    /// at once (`auto_100trying`).
    pub fn create(&self, ctx: &MsgCtx, now: Instant) -> Option<Arc<TxCell>> {
        let method = ctx.msg.cseq().ok()?.method_str.to_owned();
        let key = request_key(&ctx.msg, &method, self.params.legacy)?;
        let invite = ctx.msg.method() == Some(Method::Invite);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // 0 is no value: the module's (OpenSIPS `is_timeout_set`).
        let secs = |set: Option<u32>, default: Duration| {
            set.filter(|s| *s != 0)
                .map_or(default, |s| Duration::from_secs(u64::from(s)))
        };
        let fr = secs(ctx.fr_timeout, self.params.fr_timeout);
        let fr_inv = secs(ctx.fr_inv_timeout, self.params.fr_inv_timeout);
        let mut tx = Tx::new(key.clone(), invite, strip(ctx), fr, fr_inv);
        // The routes armed before the transaction existed become its own.
        tx.on_failure = ctx.on_failure;
        tx.on_reply = ctx.on_reply;
        tx.on_branch = ctx.on_branch;
        let cell = Arc::new(TxCell {
            id,
            tm: self.me.clone(),
            state: Mutex::new(tx),
        });
        lock(&self.by_key).insert(key, id);
        lock(&self.txs).insert(id, Arc::clone(&cell));
        engine::stat!("tm", "UAS_transactions").inc();
        engine::gauge!("tm", "inuse_transactions").inc();
        // A transaction nobody finishes still goes away.
        self.schedule(now + fr_inv.max(fr) + self.params.wt_timer, id);
        if invite && self.params.auto_100trying {
            self.reply_in(&cell, ctx, 100, "Giving it a try", None, now);
        }
        Some(cell)
    }

    /// Sends a request rsips builds itself (MI `tm:uac_dlg`, `t_new_request`) statefully to
    /// `dest` (a `[proto:]host[:port]` or URI; `None`: the R-URI); `done` gets the final
    /// reply. An INVITE is a client transaction with no server side, as OpenSIPS' `t_uac`:
    /// a negative reply is ACKed hop by hop, a 2xx is ACKed by tm itself (`build_dlg_ack`).
    pub fn new_request(
        &self,
        ctx: MsgCtx,
        dest: Option<&str>,
        net: &engine::forward::Sockets,
        now: Instant,
        done: LocalDone,
    ) -> Result<Arc<TxCell>, String> {
        let invite = ctx.msg.method() == Some(Method::Invite);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // `$T_fr_timeout`/`$T_fr_inv_timeout` the builder set (dialog's auto PRACK) win.
        let secs = |s: Option<u32>| s.map(|s| Duration::from_secs(u64::from(s)));
        let fr = secs(ctx.fr_timeout).unwrap_or(self.params.fr_timeout);
        let fr_inv = secs(ctx.fr_inv_timeout).unwrap_or(self.params.fr_inv_timeout);
        // Keys end with the method, as every transaction's does (reply matching reads it).
        let method = ctx.msg.cseq().map_or("", |c| c.method_str).to_owned();
        let mut tx = Tx::new(
            format!("local|{id}|{method}"),
            invite,
            ctx.clone(),
            fr,
            fr_inv,
        );
        tx.local_done = Some(Local(done));
        tx.local = true;
        // What the local_route armed (`t_on_failure`, `t_on_reply`) runs for its replies.
        tx.on_failure = ctx.on_failure;
        tx.on_reply = ctx.on_reply;
        let cell = Arc::new(TxCell {
            id,
            tm: self.me.clone(),
            state: Mutex::new(tx),
        });
        lock(&self.txs).insert(id, Arc::clone(&cell));
        // UAC transactions are the ones rsips starts itself, not relayed branches (OpenSIPS).
        engine::stat!("tm", "UAC_transactions").inc();
        engine::gauge!("tm", "inuse_transactions").inc();
        self.schedule(now + fr + self.params.wt_timer, id);
        self.add_branch(&cell, &ctx, dest, net, now)
            .map_err(|code| format!("cannot send the request (t_relay code {code})"))?;
        Ok(cell)
    }

    /// Resends the last reply of a transaction (a retransmitted request).
    pub fn resend_last_reply(&self, cell: &TxCell) {
        let last = cell.lock().last_reply.clone();
        if let Some(out) = last {
            self.host.send(out, None);
        }
    }

    /// The request route ended without a branch or a final reply for `cell` (`t_newtran`
    /// then `exit`, a stateless reply after it): the transaction goes after `wt_timer`,
    /// absorbing retransmissions until then.
    pub fn release_if_idle(&self, cell: &TxCell, now: Instant) {
        let mut tx = cell.lock();
        if !tx.branches.is_empty()
            || tx.final_sent
            || tx.waiting.is_some()
            || tx.delete_at.is_some()
            || tx.local
        {
            return;
        }
        let at = now + self.params.wt_timer;
        tx.delete_at = Some(at);
        drop(tx);
        self.schedule(at, cell.id);
    }

    /// An ACK for our negative final reply: stops its retransmission.
    pub fn absorb_ack(&self, cell: &TxCell, now: Instant) {
        let mut tx = cell.lock();
        tx.acked = true;
        tx.reply_retrans = None;
        tx.delete_at = Some(now + self.params.wt_timer);
        drop(tx);
        self.schedule(now + self.params.wt_timer, cell.id);
    }

    /// Adds a branch to `cell`: the request `ctx` relayed to `dest` (a `[proto:]host[:port]`
    /// or URI; `None`: `$du`, then the R-URI). Returns the branch number, or the OpenSIPS
    /// `t_relay` error code (-4 bad destination, -6 send failed, -1 internal).
    pub fn add_branch(
        &self,
        cell: &Arc<TxCell>,
        ctx: &MsgCtx,
        dest: Option<&str>,
        net: &engine::forward::Sockets,
        now: Instant,
    ) -> Result<usize, i64> {
        self.add_branch_owned(cell, ctx.clone(), dest, net, now)
    }

    /// [`Tm::add_branch`] with a context of the branch's own, which the transaction keeps as
    /// its request (no copy).
    pub fn add_branch_owned(
        &self,
        cell: &Arc<TxCell>,
        ctx: MsgCtx,
        dest: Option<&str>,
        net: &engine::forward::Sockets,
        now: Instant,
    ) -> Result<usize, i64> {
        self.add_branch_with(cell, ctx, dest, net, now, None)
    }

    /// [`Tm::add_branch_owned`] for a branch with an onreply route of its own (`t_on_reply`
    /// in its branch_route), which its replies run before the transaction's.
    pub fn add_branch_with(
        &self,
        cell: &Arc<TxCell>,
        ctx: MsgCtx,
        dest: Option<&str>,
        net: &engine::forward::Sockets,
        now: Instant,
        on_reply: Option<usize>,
    ) -> Result<usize, i64> {
        self.add_branch_to(cell, ctx, dest, None, net, now, on_reply)
    }

    /// [`Tm::add_branch_with`], to `target` when given (DNS failover's next address) instead
    /// of locating `dest`.
    #[allow(clippy::too_many_arguments)]
    fn add_branch_to(
        &self,
        cell: &Arc<TxCell>,
        mut ctx: MsgCtx,
        dest: Option<&str>,
        target: Option<engine::forward::Target>,
        net: &engine::forward::Sockets,
        now: Instant,
        on_reply: Option<usize>,
    ) -> Result<usize, i64> {
        let n = {
            let tx = cell.lock();
            if tx.branches.len() >= self.params.max_branches {
                return Err(-1);
            }
            if tx.blocked || tx.final_sent {
                return Err(-3);
            }
            tx.branches.len()
        };
        let via_branch = branch_id(cell.id, n);
        let mut targets = match target {
            Some(t) => vec![t],
            None => engine::forward::next_hops(&ctx, dest).map_err(|_| -4)?,
        };
        let first = targets.remove(0);
        let out =
            engine::forward::forward_to(&ctx, first, net, Some(&via_branch)).map_err(|_| -4)?;
        // The other DNS targets stay with the branch for failover (RFC 3263 §4.3, OpenSIPS
        // `do_dns_failover`), unless failover is off.
        let failover = (!targets.is_empty()
            && !self.params.disable_dns_failover
            && !cell.lock().no_dns_failover)
            .then(|| {
                Box::new(Failover {
                    ctx: ctx.clone(),
                    targets,
                    on_reply,
                })
            });
        let reliable = out.proto != "udp";
        let attrs = std::mem::take(&mut ctx.branch_attrs);
        let socket = sent_from(&ctx, &out);
        let uri = ctx
            .new_ruri
            .clone()
            .unwrap_or_else(|| ctx.msg.request_uri_str().unwrap_or("").to_owned());
        {
            let mut tx = cell.lock();
            let fr_at = now + tx.fr;
            let retrans = (!reliable).then_some(Retrans {
                next: now + self.params.t1,
                interval: self.params.t1,
            });
            let extra_hdrs = Arc::clone(&tx.extra_hdrs);
            // A transaction released as idle lives on once it relays after all.
            if !tx.final_sent {
                tx.delete_at = None;
            }
            tx.branches.push(Branch {
                sent: out.clone(),
                extra_hdrs,
                status: None,
                reason: String::new(),
                local: false,
                reply: None,
                provisional: false,
                last_1xx: 0,
                final_in_routes: false,
                received: false,
                send_failed: false,
                failover,
                cancel_until: None,
                retrans,
                fr_at: Some(fr_at),
                cancel: Cancel::None,
                cancel_msg: None,
                on_reply,
                uri,
                dst_uri: ctx.dst_uri.clone(),
                path: ctx.path.clone(),
                q: ctx.ruri_q,
                flags: ctx.branch_flags,
                socket,
                bavps: ctx.bavps.clone(),
                attrs,
            });
            // What `strip` would keep: the branch attributes went to the branch.
            ctx.outbox.clear();
            ctx.tx = None;
            ctx.t_reply = None;
            tx.request = ctx;
            tx.completing = false;
            self.schedule(retrans.map_or(fr_at, |r| r.next.min(fr_at)), cell.id);
        }
        let weak = self.me.clone();
        let id = cell.id;
        self.host.send(
            out,
            Some(Box::new(move |r| {
                if let (Err(why), Some(tm)) = (r, weak.upgrade()) {
                    tm.branch_failed(id, n, &why);
                }
            })),
        );
        let (failed, failed_over) = {
            let tx = cell.lock();
            let failed = tx.branches.get(n).is_some_and(|b| b.status == Some(477));
            // A send that failed at once may have gone on to the next DNS target already.
            (failed, tx.branches.len() > n + 1 && failed)
        };
        if failed && !failed_over {
            Err(-6)
        } else {
            Ok(n)
        }
    }

    /// `t_cancel_branch(flags)` from an onreply route: `a` every pending branch, `o` every
    /// pending branch but `current`, empty: `current` only. CANCEL goes now to branches that
    /// rang, later to the others.
    pub fn cancel_branches(&self, cell: &TxCell, current: usize, flags: &str, now: Instant) {
        // No Reason: OpenSIPS' t_cancel_branch adds none.
        let reason = "";
        let mut tx = cell.lock();
        let sends = if flags.contains('a') {
            self.cancel_pending(&mut tx, None, reason, now)
        } else if flags.contains('o') {
            self.cancel_pending(&mut tx, Some(current), reason, now)
        } else {
            let mut out = Vec::new();
            if let Some(b) = tx.branches.get_mut(current)
                && !b.is_final()
                && b.cancel == Cancel::None
            {
                if b.provisional {
                    out.extend(self.cancel_msg(b, reason, now));
                } else {
                    b.cancel = Cancel::Wanted(reason.to_owned());
                }
            }
            out
        };
        drop(tx);
        for s in sends {
            self.host.send(s, None);
        }
    }

    /// `t_add_cancel_reason(value)`: the Reason of the CANCELs this transaction sends from now.
    pub fn set_cancel_reason(&self, cell: &TxCell, reason: &str) {
        cell.lock().cancel_reason = Some(reason.to_owned());
    }

    /// `t_flush_flags()`: the script's message flags become the transaction's.
    pub fn flush_flags(&self, cell: &TxCell, flags: u64) {
        cell.lock().request.flags = flags;
    }

    /// `t_relay` starts adding branches (several for a fork): until [`Tm::end_relay`], replies
    /// that finish every branch so far do not complete the transaction.
    pub fn begin_relay(&self, cell: &TxCell) {
        cell.lock().relaying += 1;
    }

    /// Keeps the request route's edits for the failure routes (the first call wins).
    /// What a relay's request asks to be undone in the replies (uac), added to the
    /// transaction's (a failure route's `uac_auth` adds its CSeq).
    pub fn keep_reply_fixups(&self, cell: &TxCell, fixups: &[engine::ReplyFixup]) {
        if fixups.is_empty() {
            return;
        }
        let mut tx = cell.lock();
        for f in fixups {
            if !tx.request.reply_fixups.contains(f) {
                tx.request.reply_fixups.push(f.clone());
            }
        }
    }

    pub fn keep_request_edits(&self, cell: &TxCell, edits: &sip::Edits) {
        let mut tx = cell.lock();
        if tx.request_edits.is_none() {
            tx.request_edits = Some(edits.clone());
        }
    }

    /// `t_relay` added its branches; if they all ended meanwhile, the next tick completes the
    /// transaction (failure_route, best reply).
    pub fn end_relay(&self, cell: &TxCell) {
        let mut tx = cell.lock();
        tx.relaying = tx.relaying.saturating_sub(1);
        let done =
            tx.relaying == 0 && !tx.branches.is_empty() && tx.branches.iter().all(Branch::is_final);
        drop(tx);
        if done {
            lock(&self.urgent).push(cell.id);
        }
    }

    /// `t_wait_for_new_branches([max])`: keep the transaction open for injected branches until
    /// `fr_inv_timeout` from now (or `max` more branches, or `t_wait_no_more_branches`).
    pub fn wait_for_new_branches(&self, cell: &TxCell, max: Option<usize>, now: Instant) {
        let until = {
            let mut tx = cell.lock();
            let until = now + tx.fr_inv;
            tx.waiting = Some(Wait { until, left: max });
            until
        };
        self.schedule(until, cell.id);
    }

    /// `t_wait_no_more_branches()`: stop waiting; the transaction completes as soon as its
    /// branches have (at the next timer run).
    pub fn wait_no_more_branches(&self, cell: &TxCell) {
        cell.lock().waiting = None;
        lock(&self.urgent).push(cell.id);
    }

    /// Whether the transaction waits for injected branches.
    pub fn is_waiting(&self, cell: &TxCell) -> bool {
        cell.lock().waiting.is_some()
    }

    /// `t_inject_branches` added `n` branches: counts them against the `max` the wait was given
    /// and, with `last`, stops waiting.
    pub fn injected(&self, cell: &TxCell, n: usize, last: bool) {
        let mut tx = cell.lock();
        if let Some(w) = &mut tx.waiting
            && let Some(left) = &mut w.left
        {
            *left = left.saturating_sub(n);
            if *left == 0 {
                tx.waiting = None;
            }
        }
        if last {
            tx.waiting = None;
        }
        drop(tx);
        lock(&self.urgent).push(cell.id);
    }

    /// The transport could not send branch `n`: it ends with a local 477, handled by the next
    /// timer run (which may run failure_route).
    fn branch_failed(&self, id: u64, n: usize, why: &str) {
        let Some(cell) = lock(&self.txs).get(&id).cloned() else {
            return;
        };
        let mut tx = cell.lock();
        if let Some(b) = tx.branches.get_mut(n)
            && !b.is_final()
        {
            b.status = Some(477);
            b.reason = format!("Send failed ({why})");
            b.local = true;
            b.send_failed = true;
            b.retrans = None;
            b.fr_at = None;
            tx.last_final = Some(n);
        }
        drop(tx);
        // The next DNS target of the destination, when there is one.
        self.dns_failover(&cell, n, Instant::now());
        lock(&self.urgent).push(id);
    }
}

#[cfg(test)]
mod first_id_tests {
    #[test]
    fn each_start_counts_from_somewhere_else_below_2_48() {
        let (a, b) = (super::first_id(), super::first_id());
        assert_ne!(a, b);
        assert!(a > 0 && a < 1 << 48 && b > 0 && b < 1 << 48);
    }
}
