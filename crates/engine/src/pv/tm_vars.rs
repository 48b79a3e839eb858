//! tm's `$T_*` and `$tm.branch.*` variables (OpenSIPS tm.c `pv_get_tm_*`), read from what tm
//! put in the context: the transaction, the reply being handled and the branch index.

use super::read::q_text;
use crate::ctx::MsgCtx;
use crate::value::Value;

/// The branch tm is handling: the one a branch route builds, or a reply's.
pub(crate) fn current_branch(ctx: &MsgCtx) -> usize {
    ctx.branch_index
        .or(ctx.t_reply.as_ref().map(|r| r.branch))
        .unwrap_or(0)
}

/// `$tm.branch.<field>[i]` (OpenSIPS tm.c): no index is the current branch, negative counts
/// from the last; NULL without a transaction or past the branches.
pub(super) fn tm_branch(ctx: &MsgCtx, field: &super::TmBranchField, at: Option<i64>) -> Value {
    use super::TmBranchField as F;
    let Some(tx) = &ctx.tx else {
        return Value::Null;
    };
    let total = tx.branch_total();
    let i = match at {
        Some(i) if i < 0 => total as i64 + i,
        Some(i) => i,
        None => current_branch(ctx) as i64,
    };
    let Some(b) = usize::try_from(i).ok().and_then(|i| tx.branch(i)) else {
        // The branch a branch_route builds joins the transaction after the route; OpenSIPS
        // attaches its attributes before, so they are the message branch's.
        return match field {
            F::Attr(name) if ctx.branch_index == Some(total) && i == total as i64 => {
                ctx.branch_attrs.get(name).cloned().unwrap_or(Value::Null)
            }
            _ => Value::Null,
        };
    };
    match field {
        F::Uri => Value::from(b.uri.clone()),
        F::Duri => b.dst_uri.clone().map_or(Value::Null, Value::from),
        F::Path => b.path.clone().map_or(Value::Null, Value::from),
        F::Q => Value::from(q_text(b.q)),
        F::Flags => Value::Int(b.flags as i64),
        F::Flag(bit) => Value::Int(i64::from(*bit < 64 && b.flags & (1 << bit) != 0)),
        F::Socket => b.socket.clone().map_or(Value::Null, Value::from),
        F::LastReceived if b.last_received == 0 => Value::Null,
        F::LastReceived => Value::Int(i64::from(b.last_received)),
        F::Type => Value::str(if b.phony { "phony" } else { "sip" }),
        F::Attr(name) => b.attrs.get(name).cloned().unwrap_or(Value::Null),
    }
}

/// tm's `$T_*` variables (OpenSIPS tm.c `pv_get_tm_*`). The route they are read in is told
/// by what tm put in the context: a reply being handled (onreply and failure routes), a branch
/// index without one (branch_route), neither (request route).
pub(super) fn tm_field(ctx: &MsgCtx, field: &super::TmField) -> Value {
    use super::TmField as F;
    match field {
        // The reply handled (onreply), the winning one (failure), none in a branch route, the
        // last one sent upstream in a request route; 0 without a transaction.
        F::ReplyCode => Value::Int(i64::from(match (&ctx.t_reply, &ctx.tx) {
            (Some(r), _) => r.code,
            (None, Some(_)) if ctx.branch_index.is_some() => 0,
            (None, Some(tx)) => tx.last_status(),
            (None, None) => 0,
        })),
        // The current branch's R-URI once there is a transaction; the message's before.
        F::Ruri => {
            let branch_uri = ctx
                .tx
                .as_ref()
                .and_then(|tx| tx.branch(current_branch(ctx)).map(|b| b.uri));
            match branch_uri {
                Some(uri) => Value::from(uri),
                None => ctx
                    .ruri()
                    .map_or(Value::Null, |u| Value::from(u.to_owned())),
            }
        }
        // Only branch, onreply and failure routes have a current branch.
        F::BranchIdx => ctx
            .branch_index
            .map_or(Value::Null, |b| Value::Int(b as i64)),
        F::Id => ctx.tx.as_ref().map_or(Value::Null, |t| Value::from(t.id())),
        F::FrTimeout | F::FrInvTimeout => {
            let inv = matches!(field, F::FrInvTimeout);
            let secs = match ctx.tx.as_ref().and_then(|t| t.fr_timeouts()) {
                Some((fr, fr_inv)) => {
                    if inv {
                        fr_inv
                    } else {
                        fr
                    }
                }
                None => {
                    let set = if inv {
                        ctx.fr_inv_timeout
                    } else {
                        ctx.fr_timeout
                    };
                    set.filter(|s| *s != 0)
                        .unwrap_or_else(|| tm_default_timeout(ctx, inv))
                }
            };
            Value::Int(i64::from(secs))
        }
        F::BranchLastReplyCode(at) => {
            let Some(tx) = &ctx.tx else {
                return Value::Null;
            };
            let i = match at {
                Some(i) if *i < 0 => tx.branch_total() as i64 + i,
                Some(i) => *i,
                None => current_branch(ctx) as i64,
            };
            usize::try_from(i)
                .ok()
                .and_then(|i| tx.branch(i))
                .map_or(Value::Null, |b| Value::Int(i64::from(b.last_received)))
        }
    }
}

/// tm's `fr_timeout` / `fr_inv_timeout` modparam, what `$T_fr_timeout` reads before the
/// transaction exists; tm's defaults (30 s, 120 s) when the script sets none.
fn tm_default_timeout(ctx: &MsgCtx, inv: bool) -> u32 {
    let (name, default) = if inv {
        ("fr_inv_timeout", 120)
    } else {
        ("fr_timeout", 30)
    };
    ctx.script
        .as_ref()
        .and_then(|s| {
            s.modparams("tm")
                .filter_map(|(n, v)| match v {
                    cfg::ast::ParamValue::Int(secs) if n == name => u32::try_from(*secs).ok(),
                    _ => None,
                })
                .last()
        })
        .map_or(default, |s| s.max(1))
}
