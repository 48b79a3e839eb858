//! DNS failover (RFC 3263 §4.3, OpenSIPS `do_dns_failover`): a branch whose destination has
//! further DNS targets goes on to the next one when it fails the RFC 3263 way.

use std::time::Instant;

use engine::MsgCtx;

use super::*;

/// What DNS failover needs to send a branch again to the next target of its destination.
#[derive(Debug)]
pub(super) struct Failover {
    pub(super) ctx: MsgCtx,
    pub(super) targets: Vec<engine::forward::Target>,
    pub(super) on_reply: Option<usize>,
}

impl Tm {
    /// DNS failover (OpenSIPS `do_dns_failover`): branch `n` failed the RFC 3263 way (a 503,
    /// a timeout with no reply at all, a send failure) and its destination has another target:
    /// the same request goes there on a new branch. True when one was added.
    pub(super) fn dns_failover(&self, cell: &Arc<TxCell>, n: usize, now: Instant) -> bool {
        loop {
            let taken = {
                let mut tx = cell.lock();
                if tx.final_sent || tx.blocked {
                    return false;
                }
                tx.branches.get_mut(n).and_then(|b| b.failover.take())
            };
            let Some(mut f) = taken else { return false };
            let next = f.targets.remove(0);
            let Some(script) = f.ctx.script.clone() else {
                return false;
            };
            let rest = std::mem::take(&mut f.targets);
            let ctx = f.ctx.clone();
            match self.add_branch_to(cell, ctx, None, Some(next), &script.net(), now, f.on_reply) {
                Ok(added) => {
                    // What is left goes on with the new branch.
                    if !rest.is_empty()
                        && let Some(b) = cell.lock().branches.get_mut(added)
                    {
                        f.targets = rest;
                        b.failover = Some(f);
                    }
                    return true;
                }
                // This target cannot be sent to either: try the next one.
                Err(_) if !rest.is_empty() => {
                    f.targets = rest;
                    if let Some(b) = cell.lock().branches.get_mut(n) {
                        b.failover = Some(f);
                    }
                }
                Err(_) => return false,
            }
        }
    }
}
