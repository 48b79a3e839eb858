//! The script's side: `cluster_send_req`, `cluster_send_rpl`, `cluster_broadcast_req`,
//! `cluster_check_addr` and `$cluster.sh_tag(name/cluster_id)`.

use engine::{FnCtx, Value};

use crate::Clusterer;
use crate::state::{self, SendRet};

fn int_arg(args: &[Value], i: usize) -> Option<i32> {
    args.get(i)
        .and_then(Value::as_int)
        .and_then(|v| i32::try_from(v).ok())
}

fn text_arg(args: &[Value], i: usize) -> String {
    args.get(i)
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default()
}

/// A fresh exchange tag: `cluster-node-` and 24 random letters and digits, as OpenSIPS
/// makes them.
fn new_tag(cluster: i32, me: i32) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let mut x = h.finish() | 1;
    let mut out = format!("{cluster}-{me}-");
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for _ in 0..24 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(char::from(CHARS[(x % CHARS.len() as u64) as usize]));
    }
    out
}

/// Sends to every node `to_all` chose: success when one send went, down when no node was
/// up, an error when every send failed.
pub(crate) fn send_all(c: &Clusterer, all: Result<(Vec<state::Send>, bool), SendRet>) -> SendRet {
    let (sends, any) = match all {
        Ok(v) => v,
        Err(e) => return e,
    };
    if !any {
        return SendRet::Success;
    }
    if sends.is_empty() {
        return SendRet::DestDown;
    }
    let mut sent = false;
    for s in &sends {
        sent |= c.send(s);
    }
    if sent {
        SendRet::Success
    } else {
        SendRet::SendErr
    }
}

fn send_one(
    c: &Clusterer,
    cluster: i32,
    dst: i32,
    request: bool,
    tag: &str,
    text: &str,
) -> SendRet {
    let s = {
        let st = c.lock();
        let me = st.me;
        st.to_node(cluster, dst, |d| {
            crate::msg::generic(cluster, me, d, request, tag, text)
        })
    };
    match s {
        Ok(s) if c.send(&s) => SendRet::Success,
        Ok(_) => SendRet::SendErr,
        Err(e) => e,
    }
}

/// `cluster_send_req(cluster_id, dst_id, msg[, tag])`.
pub(crate) fn send_req(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(c) = crate::get() else { return -3 };
    let (Some(cluster), Some(dst)) = (int_arg(args, 0), int_arg(args, 1)) else {
        return -3;
    };
    let tag = new_tag(cluster, c.lock().me);
    if args.len() > 3 {
        f.set_output(3, Value::from(tag.clone()));
    }
    send_one(c, cluster, dst, true, &tag, &text_arg(args, 2)).code()
}

/// `cluster_send_rpl(cluster_id, dst_id, msg, tag)`.
pub(crate) fn send_rpl(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(c) = crate::get() else { return -3 };
    let (Some(cluster), Some(dst)) = (int_arg(args, 0), int_arg(args, 1)) else {
        return -3;
    };
    let tag = text_arg(args, 3);
    if tag.is_empty() {
        f.log.log(-1, "cluster_send_rpl: empty tag\n");
        return -1;
    }
    send_one(c, cluster, dst, false, &tag, &text_arg(args, 2)).code()
}

/// `cluster_broadcast_req(cluster_id, msg[, tag[, include_self]])`.
pub(crate) fn broadcast_req(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(c) = crate::get() else { return -3 };
    let Some(cluster) = int_arg(args, 0) else {
        return -3;
    };
    let text = text_arg(args, 1);
    let (all, me) = {
        let st = c.lock();
        let me = st.me;
        (
            st.to_all(cluster, |d| {
                crate::msg::generic(cluster, me, d, true, "", "")
            }),
            me,
        )
    };
    let tag = new_tag(cluster, me);
    if args.len() > 2 {
        f.set_output(2, Value::from(tag.clone()));
    }
    // The packets are built again with the tag and text (to_all only chose the nodes).
    let all = all.map(|(sends, any)| {
        let sends = sends
            .into_iter()
            .map(|mut s| {
                s.bytes = crate::msg::generic(cluster, me, s.node, true, &tag, &text);
                s
            })
            .collect();
        (sends, any)
    });
    // With include_self the event is raised here too, when the cluster is ours and enabled.
    let include_self = all.is_ok() && int_arg(args, 3).is_some_and(|v| v != 0);
    let ret = send_all(c, all);
    if include_self {
        c.carry_out(vec![state::Effect::Event(
            state::E_REQ,
            vec![
                (Some("cluster_id".into()), Value::Int(i64::from(cluster))),
                (Some("src_id".into()), Value::Int(i64::from(me))),
                (Some("msg".into()), Value::from(text)),
                (Some("tag".into()), Value::from(tag)),
            ],
        )]);
    }
    ret.code()
}

/// `cluster_check_addr(cluster_id, ip[, "sip"|"bin"])`.
pub(crate) fn check_addr(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(c) = crate::get() else { return -1 };
    let Some(cluster) = int_arg(args, 0) else {
        return -1;
    };
    let bin = match args
        .get(2)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().to_ascii_lowercase())
    {
        None => false,
        Some(t) if t == "sip" => false,
        Some(t) if t == "bin" => true,
        Some(_) => {
            f.log.log(
                -1,
                "cluster_check_addr: bad address type, should be 'bin' or 'sip'\n",
            );
            return -1;
        }
    };
    let ip = text_arg(args, 1);
    let Ok(ip) = ip
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
    else {
        return -1;
    };
    if c.lock().check_addr(cluster, ip, bin) {
        1
    } else {
        -1
    }
}

/// `$cluster.sh_tag(name/cluster_id)`: `active` or `backup` (a tag not seen before is made,
/// as backup); NULL for a bad name.
pub(crate) fn shtag_value(name: &str) -> Value {
    let Some(c) = crate::get() else {
        return Value::Null;
    };
    let Ok((tag, cluster)) = crate::config::tag_name(name) else {
        return Value::Null;
    };
    let active = c.lock().tag_state(&tag, cluster);
    Value::from(if active { "active" } else { "backup" })
}

/// `$cluster.sh_tag(name/cluster_id) = v`: "active" (or a positive number) takes the tag;
/// NULL or empty does nothing; "backup" is refused with a warning, as in OpenSIPS (a tag
/// goes backup only when another node takes it).
pub(crate) fn shtag_assign(name: &str, v: &Value) -> bool {
    let Some(c) = crate::get() else { return false };
    let Ok((tag, cluster)) = crate::config::tag_name(name) else {
        return false;
    };
    let active = match v {
        Value::Null => return true,
        Value::Int(n) => *n > 0,
        Value::Str(s) if s.is_empty() => return true,
        Value::Str(s) if s.eq_ignore_ascii_case("active") => true,
        Value::Str(s) if s.eq_ignore_ascii_case("backup") => false,
        Value::Str(s) => {
            log::error!("clusterer: unknown value <{s}> while setting tag <{tag}/{cluster}>");
            return false;
        }
    };
    if !active {
        log::warn!("clusterer: cannot set tag <{tag}/{cluster}> to backup, operation not allowed");
        return true;
    }
    let mut fx = Vec::new();
    let ok = c.lock().activate(&tag, cluster, "script variable", &mut fx);
    c.carry_out(fx);
    ok
}
