//! tm's script functions about the routes a transaction runs and the replies it handles:
//! `t_on_failure`, `t_on_reply`, `t_on_branch`, `t_check_status`, `t_local_replied`,
//! `t_was_cancelled`.

use engine::{FnCtx, ParamCheck, Value};

use crate::core::{Arm, LocalReplied};
use crate::{bool_code, cell_of};

/// `t_check_status`'s regex, checked when the script loads.
pub(crate) static STATUS_RE: ParamCheck = ParamCheck {
    what: "regular expression",
    check: |text| status_regex(text).map(drop),
};

/// `t_local_replied`'s argument, checked when the script loads (OpenSIPS refuses anything
/// else at startup).
pub(crate) static LOCAL_REPLIED: ParamCheck = ParamCheck {
    what: "t_local_replied argument",
    check: |text| match LocalReplied::parse(text) {
        Some(_) => Ok(()),
        None => Err(format!("`{text}` is none of all, branch, last")),
    },
};

/// The regex of `t_check_status`: searched anywhere in the status code, case-insensitively
/// (OpenSIPS compiles it `REG_EXTENDED|REG_ICASE` and runs `regexec`, which is not
/// anchored: "87" matches 487).
fn status_regex(text: &str) -> Result<std::rc::Rc<regex::Regex>, String> {
    engine::regex_cache::icase(text, false).map_err(|e| e.to_string())
}

/// `t_check_status(re)`: in an onreply route the reply handled, in a failure route the winning
/// one, in a request route the last one sent upstream ("0" when none was); a branch route has
/// no status to check, and neither has a message without a transaction.
pub(crate) fn t_check_status(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    if f.kind == "branch" {
        f.log
            .log(-1, "t_check_status: no reply status in a branch_route\n");
        return -1;
    }
    let text = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let re = match status_regex(&text) {
        Ok(re) => re,
        Err(e) => {
            f.log
                .log(-1, &format!("t_check_status: bad regex `{text}`: {e}\n"));
            return -1;
        }
    };
    let code = match (&f.msg.t_reply, cell_of(f)) {
        (Some(r), _) => r.code,
        (None, Some(cell)) => cell.last_code(),
        (None, None) => return -1,
    };
    bool_code(re.is_match(&code.to_string()))
}

fn route_arg(args: &[Value]) -> Option<usize> {
    args.first()
        .and_then(Value::as_int)
        .and_then(|i| usize::try_from(i).ok())
}

/// `t_on_failure(route)`: before the transaction exists the message keeps it (the transaction
/// takes it when created); afterwards, from any route, it is the transaction's.
pub(crate) fn t_on_failure(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let route = route_arg(args);
    match cell_of(f) {
        Some(cell) => cell.arm(Arm::Failure, route),
        None => f.msg.on_failure = route,
    }
    1
}

/// `t_on_reply(route)`: in a branch_route, the onreply route of that branch alone (run before
/// the transaction's); elsewhere as `t_on_failure`, the transaction's own onreply route.
pub(crate) fn t_on_reply(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let route = route_arg(args);
    match cell_of(f) {
        Some(_) if f.kind == "branch" => f.msg.on_reply = route,
        Some(cell) => cell.arm(Arm::Reply, route),
        None => f.msg.on_reply = route,
    }
    1
}

/// `t_on_branch(route)`, kept as `t_on_failure`.
pub(crate) fn t_on_branch(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let route = route_arg(args);
    match cell_of(f) {
        Some(cell) => cell.arm(Arm::Branch, route),
        None => f.msg.on_branch = route,
    }
    1
}

pub(crate) fn t_was_cancelled(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    bool_code(cell_of(f).is_some_and(|c| c.was_cancelled()))
}

/// `t_local_replied("all"|"branch"|"last")`: see [`LocalReplied`]; false without a
/// transaction.
pub(crate) fn t_local_replied(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let text = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let Some(which) = LocalReplied::parse(&text) else {
        f.log
            .log(-1, &format!("t_local_replied: bad argument `{text}`\n"));
        return -1;
    };
    let Some(cell) = cell_of(f) else { return -1 };
    bool_code(cell.local_replied(which, f.kind == "failure"))
}
