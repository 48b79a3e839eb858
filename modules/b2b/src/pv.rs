//! b2b_logic's variables: `$b2b_logic.key`, `$b2b_logic.scenario`,
//! `$b2b_logic.entity(field)[idx]` (read-only) and `$b2b_logic.ctx(name)` (read-write), for
//! the script's request route (before and after `b2b_init_request`) and the routes b2b_logic
//! runs. The script compiler reaches them through [`pv_get`] / [`pv_set`].

use std::collections::HashMap;

use crate::leg::Side;
use crate::script::{pending_ctx, session_of};
use crate::table::{Tuple, table};

/// `$b2b_logic.key`, `$b2b_logic.scenario`, `$b2b_logic.entity(field)[idx]` and
/// `$b2b_logic.ctx(name)` (`name` without the `$`), for message `msg_id`; `None` is NULL.
pub fn pv_get(msg_id: u64, name: &str, arg: Option<&str>, index: Option<usize>) -> Option<String> {
    if name == "b2b_logic.ctx" {
        let arg = arg?.trim();
        return match session_of(msg_id) {
            Some(p) => table().tuples.get(&p.0)?.ctx.get(arg).cloned(),
            None => pending_ctx(msg_id, |ctx| ctx.get(arg).cloned()),
        };
    }
    let p = session_of(msg_id)?;
    let t = table();
    let tuple = t.tuples.get(&p.0)?;
    match name {
        "b2b_logic.key" => Some(tuple.key.clone()),
        "b2b_logic.scenario" => Some(tuple.scenario.clone()),
        "b2b_logic.entity" => {
            let i = match index {
                None => p.1,
                Some(n) => bridged_pair(tuple, p.1).and_then(|(a, b)| [a, b].get(n).copied())?,
            };
            let e = tuple.entities.get(i)?;
            Some(match arg.map(str::trim).unwrap_or("key") {
                "id" => e.id.clone(),
                "callid" => e.leg.callid.clone(),
                "fromtag" | "totag" => {
                    // The dialog's From tag is ours on a client leg, the far side's on a
                    // server leg.
                    let ours = (arg.map(str::trim) == Some("fromtag")) == (e.side == Side::Client);
                    if ours {
                        e.leg.local_tag.clone()
                    } else {
                        e.leg.remote_tag.clone()
                    }
                }
                _ => e.key.clone(),
            })
        }
        _ => None,
    }
}

/// The two entities of the bridge entity `i` is in, the older first (OpenSIPS' indexes 0
/// and 1).
fn bridged_pair(t: &Tuple, i: usize) -> Option<(usize, usize)> {
    let peer = t.entities.get(i)?.peer.unwrap_or(i);
    Some((i.min(peer), i.max(peer)))
}

/// `$b2b_logic.ctx(name) = value` (`None`: NULL, which deletes it); false for any other
/// variable (they are read-only).
pub fn pv_set(msg_id: u64, name: &str, arg: Option<&str>, value: Option<&str>) -> bool {
    let (Some(arg), "b2b_logic.ctx") = (arg.map(str::trim), name) else {
        return false;
    };
    let apply = |ctx: &mut HashMap<String, String>| match value {
        Some(v) => {
            ctx.insert(arg.to_owned(), v.to_owned());
        }
        None => {
            ctx.remove(arg);
        }
    };
    match session_of(msg_id) {
        Some(p) => match table().tuples.get_mut(&p.0) {
            Some(t) => {
                apply(&mut t.ctx);
                true
            }
            None => false,
        },
        None => {
            pending_ctx(msg_id, apply);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leg::Leg;
    use crate::script::set_current;
    use crate::table::Entity;

    #[test]
    fn ctx_values_set_before_the_session_wait_for_it() {
        assert!(pv_set(7, "b2b_logic.ctx", Some("state"), Some("1")));
        assert_eq!(
            pv_get(7, "b2b_logic.ctx", Some("state"), None).as_deref(),
            Some("1")
        );
        // Another message starts afresh.
        assert_eq!(pv_get(8, "b2b_logic.ctx", Some("state"), None), None);
        assert!(!pv_set(8, "b2b_logic.key", None, Some("x")));
        assert_eq!(pv_get(8, "b2b_logic.key", None, None), None);
    }

    #[test]
    fn session_variables_read_the_current_session() {
        let mut server = Entity::new(
            "caller",
            Side::Server,
            Leg {
                callid: "c1".into(),
                local_tag: "B2B.s".into(),
                remote_tag: "alice".into(),
                ..Leg::default()
            },
        );
        server.peer = Some(1);
        let mut client = Entity::new(
            "media",
            Side::Client,
            Leg {
                callid: "B2B.c".into(),
                local_tag: "B2B.f".into(),
                remote_tag: "ms".into(),
                ..Leg::default()
            },
        );
        client.peer = Some(0);
        table().insert(Tuple {
            key: "3.33".into(),
            scenario: "prepaid".into(),
            entities: vec![server, client],
            script: None,
            ctx: HashMap::new(),
            ending: false,
            // Never old enough for another test's `expire`.
            created: u64::MAX,
        });
        set_current(Some(("3.33".into(), 1)));
        let get = |n, a, i| pv_get(99, n, a, i);
        assert_eq!(get("b2b_logic.key", None, None).as_deref(), Some("3.33"));
        assert_eq!(
            get("b2b_logic.scenario", None, None).as_deref(),
            Some("prepaid")
        );
        assert_eq!(
            get("b2b_logic.entity", Some("id"), None).as_deref(),
            Some("media")
        );
        assert_eq!(
            get("b2b_logic.entity", None, None).as_deref(),
            Some("B2B.c")
        );
        assert_eq!(
            get("b2b_logic.entity", Some("id"), Some(0)).as_deref(),
            Some("caller")
        );
        assert_eq!(
            get("b2b_logic.entity", Some("fromtag"), None).as_deref(),
            Some("B2B.f")
        );
        assert_eq!(
            get("b2b_logic.entity", Some("fromtag"), Some(0)).as_deref(),
            Some("alice")
        );
        assert_eq!(get("b2b_logic.entity", Some("callid"), Some(2)), None);
        assert!(pv_set(99, "b2b_logic.ctx", Some("state"), Some("2")));
        assert_eq!(
            get("b2b_logic.ctx", Some("state"), None).as_deref(),
            Some("2")
        );
        assert!(pv_set(99, "b2b_logic.ctx", Some("state"), None));
        assert_eq!(get("b2b_logic.ctx", Some("state"), None), None);
        set_current(None);
        table().remove("3.33");
    }
}
