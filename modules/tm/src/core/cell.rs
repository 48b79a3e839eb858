//! What scripts and other modules read of a transaction and set on it while it runs: the
//! routes armed on it, its timeouts, whether its replies were local, and the engine's
//! [`engine::ctx::Transaction`] view (`$T_*`, `$tm.branch.*`, `$(<request>…)`).

use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use engine::MsgCtx;
use sip::SipMessage;

use super::{Tx, TxCell};

/// Which route `t_on_failure` / `t_on_reply` / `t_on_branch` arm once the transaction exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    Failure,
    /// The transaction's own onreply route (every branch), run after a branch's own.
    Reply,
    Branch,
}

/// What `t_local_replied` asks (OpenSIPS tm.c `t_local_replied`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalReplied {
    /// No branch of the current attempt received any reply at all (a 100 counts).
    All,
    /// In a failure route: the winning branch received no reply.
    Branch,
    /// In a failure route: the winning reply was made up here (a timeout's 408); elsewhere:
    /// the last reply sent upstream was generated here (`t_reply`, 100 Trying), not relayed.
    Last,
}

impl LocalReplied {
    /// The argument as OpenSIPS reads it: a case-insensitive prefix `all`, `branch` or `last`.
    pub fn parse(text: &str) -> Option<LocalReplied> {
        let starts = |word: &str| {
            text.get(..word.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(word))
        };
        if starts("all") {
            Some(LocalReplied::All)
        } else if starts("branch") {
            Some(LocalReplied::Branch)
        } else if starts("last") {
            Some(LocalReplied::Last)
        } else {
            None
        }
    }
}

impl TxCell {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Tx> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The code of the last reply sent upstream (0: none).
    pub fn last_code(&self) -> u16 {
        self.lock().last_code
    }

    /// `t_local_replied(which)`; `failure_route`: asked from a failure route, where the winning
    /// branch is known.
    pub fn local_replied(&self, which: LocalReplied, failure_route: bool) -> bool {
        let tx = self.lock();
        let picked = || tx.picked.and_then(|i| tx.branches.get(i));
        match which {
            LocalReplied::All => tx
                .branches
                .iter()
                .skip(tx.first_branch)
                .all(|b| !b.received),
            LocalReplied::Branch => failure_route && picked().is_some_and(|b| !b.received),
            LocalReplied::Last if failure_route => picked().is_some_and(|b| b.local),
            LocalReplied::Last => tx.last_local,
        }
    }

    /// Whether the request's sender cancelled it.
    pub fn was_cancelled(&self) -> bool {
        self.lock().cancelled
    }

    /// How many branches the transaction has.
    pub fn branch_count(&self) -> usize {
        self.lock().branches.len()
    }

    /// `t_on_failure` / `t_on_reply` / `t_on_branch` once the transaction exists: the route is
    /// the transaction's from now on (OpenSIPS writes the cell, from any route). `None`
    /// disarms it.
    pub fn arm(&self, which: Arm, route: Option<usize>) {
        let mut tx = self.lock();
        match which {
            Arm::Failure => tx.on_failure = route,
            Arm::Reply => tx.on_reply = route,
            Arm::Branch => tx.on_branch = route,
        }
    }

    /// The branch_route new branches run (`t_on_branch`).
    pub fn branch_route(&self) -> Option<usize> {
        self.lock().on_branch
    }

    /// The final-response timeouts new branches get, and INVITE branches once they answer
    /// provisionally.
    pub fn timeouts(&self) -> (Duration, Duration) {
        let tx = self.lock();
        (tx.fr, tx.fr_inv)
    }
}

impl engine::ctx::Transaction for TxCell {
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }

    fn set_dialog(&self, mark: engine::DialogMark) {
        self.lock().request.dialog = Some(mark);
    }

    fn reply(&self, ctx: &mut MsgCtx, code: u16, reason: &str) -> i64 {
        match self.tm.upgrade() {
            Some(tm) => tm.reply_in(self, ctx, code, reason, None, Instant::now()),
            None => -1,
        }
    }

    fn script_done(&self) {
        if let Some(tm) = self.tm.upgrade() {
            tm.release_if_idle(self, Instant::now());
        }
    }

    fn id(&self) -> String {
        format!("{:x}:{}", self.id >> 16, self.id & 0xffff)
    }

    fn request(&self) -> Option<SipMessage> {
        Some(self.lock().request.msg.clone())
    }

    fn request_ctx(&self) -> Option<engine::MsgCtx> {
        Some(self.lock().request.clone())
    }

    fn picked_reply(&self) -> Option<SipMessage> {
        let tx = self.lock();
        let b = tx.branches.get(tx.picked?)?;
        if b.local { None } else { b.reply.clone() }
    }

    fn set_branch_attr(&self, i: usize, name: &str, v: engine::Value) -> bool {
        match self.lock().branches.get_mut(i) {
            Some(b) => {
                b.attrs.set(name, v);
                true
            }
            None => false,
        }
    }

    fn branches(&self) -> Vec<engine::ctx::TmBranchInfo> {
        self.lock().branches.iter().map(branch_info).collect()
    }

    fn branch(&self, i: usize) -> Option<engine::ctx::TmBranchInfo> {
        self.lock().branches.get(i).map(branch_info)
    }

    fn branch_total(&self) -> usize {
        self.lock().branches.len()
    }

    fn last_status(&self) -> u16 {
        self.lock().last_code
    }

    fn fr_timeouts(&self) -> Option<(u32, u32)> {
        let (fr, fr_inv) = self.timeouts();
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        Some((secs(fr), secs(fr_inv)))
    }

    fn set_fr_timeout(&self, inv: bool, secs: Option<u32>) {
        let Some(tm) = self.tm.upgrade() else { return };
        let default = if inv {
            tm.params.fr_inv_timeout
        } else {
            tm.params.fr_timeout
        };
        let value = secs
            .filter(|s| *s != 0)
            .map_or(default, |s| Duration::from_secs(u64::from(s)));
        let mut tx = self.lock();
        if inv {
            tx.fr_inv = value;
        } else {
            tx.fr = value;
        }
    }
}

/// What the script sees of a branch (`$tm.branch.*`).
fn branch_info(b: &super::Branch) -> engine::ctx::TmBranchInfo {
    engine::ctx::TmBranchInfo {
        uri: b.uri.clone(),
        dst_uri: b.dst_uri.clone(),
        path: b.path.clone(),
        q: b.q,
        flags: b.flags,
        socket: b.socket.clone(),
        // The last code, provisional or final, received or made up (OpenSIPS
        // `last_received`); a provisional one once the onreply routes kept it, a final one
        // once they ran.
        last_received: match b.status {
            Some(code) if !b.final_in_routes => code,
            _ => b.last_1xx,
        },
        phony: false,
        attrs: b.attrs.clone(),
    }
}
