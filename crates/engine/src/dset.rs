//! The destination set of a request as the script edits it (OpenSIPS dset.c): per-branch
//! attributes (`$msg.branch.attr(NAME)`) and the core functions that remove, move and swap
//! branches. Branch 0 is the R-URI's and lives in [`MsgCtx`]'s own fields; the appended ones
//! are [`MsgCtx::branches`]. Every move takes the branch's attributes along.

use crate::ctx::{MsgBranch, MsgCtx};
use crate::value::Value;

/// Named attributes of one branch: a string or an integer per name (names are
/// case-sensitive), in the order first set. tm hands them to the transaction branch the
/// message branch becomes (`$tm.branch.attr(NAME)`, `t_get_branch_idx_by_attr`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BranchAttrs(Vec<(Box<str>, Value)>);

impl BranchAttrs {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| &**n == name).map(|(_, v)| v)
    }

    /// Sets `name` to `v`, replacing its value; NULL removes it.
    pub fn set(&mut self, name: &str, v: Value) {
        let at = self.0.iter().position(|(n, _)| &**n == name);
        match (at, v) {
            (Some(i), Value::Null) => {
                self.0.remove(i);
            }
            (None, Value::Null) => {}
            (Some(i), v) => {
                if let Some(slot) = self.0.get_mut(i) {
                    slot.1 = v;
                }
            }
            (None, v) => self.0.push((name.into(), v)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(n, v)| (&**n, v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A branch as the dset functions name it (`remove_msg_branch`, `move_msg_branch`,
/// `swap_msg_branches`): an appended branch from 0, or the R-URI's (a negative or omitted
/// index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsetIdx {
    Ruri,
    Appended(usize),
}

impl DsetIdx {
    /// OpenSIPS' convention for these functions: absent or negative is the message branch.
    pub fn from_script(i: Option<i64>) -> DsetIdx {
        match i.and_then(|i| usize::try_from(i).ok()) {
            Some(i) => DsetIdx::Appended(i),
            None => DsetIdx::Ruri,
        }
    }
}

impl MsgCtx {
    /// The branch `$msg.branch.*[at]` names (0 the R-URI's, then the appended ones): no index
    /// is the last branch, a negative one counts back from it; `None` past either end.
    pub fn msg_branch_at(&self, at: Option<i64>) -> Option<usize> {
        let count = self.branches.len() as i64 + 1;
        let i = match at {
            None => count - 1,
            Some(i) if i < 0 => count + i,
            Some(i) => i,
        };
        usize::try_from(i).ok().filter(|&i| (i as i64) < count)
    }

    /// `$msg.branch.attr(name)[at]`: NULL when the branch or the attribute does not exist.
    pub fn branch_attr(&self, at: Option<i64>, name: &str) -> Value {
        let attrs = match self.msg_branch_at(at) {
            Some(0) => Some(&self.branch_attrs),
            Some(i) => self.branches.get(i - 1).map(|b| &b.attrs),
            None => None,
        };
        attrs
            .and_then(|a| a.get(name))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// `$msg.branch.attr(name)[at] = v` (NULL removes it). Fails on a missing branch and on
    /// replies, which have no destination set.
    pub fn set_branch_attr(&mut self, at: Option<i64>, name: &str, v: Value) -> bool {
        if !self.msg.is_request() {
            return false;
        }
        let attrs = match self.msg_branch_at(at) {
            Some(0) => &mut self.branch_attrs,
            Some(i) => match self.branches.get_mut(i - 1) {
                Some(b) => &mut b.attrs,
                None => return false,
            },
            None => return false,
        };
        attrs.set(name, v);
        true
    }

    /// `$tm.branch.attr(name)[at] = v` in a branch, onreply or failure route: no index is the
    /// branch being handled, a negative one counts back from the last. In branch_route the
    /// branch being built is not in the transaction yet, so its attributes are this message's.
    pub fn set_tm_branch_attr(&mut self, at: Option<i64>, name: &str, v: Value) -> bool {
        let Some(tx) = self.tx.clone() else {
            return false;
        };
        let count = tx.branches().len();
        let i = match at {
            Some(i) if i < 0 => count as i64 + i,
            Some(i) => i,
            None => crate::pv::read::current_branch(self) as i64,
        };
        let Ok(i) = usize::try_from(i) else {
            return false;
        };
        if i == count && self.branch_index == Some(count) {
            self.branch_attrs.set(name, v);
            return true;
        }
        tx.set_branch_attr(i, name, v)
    }

    /// `remove_msg_branch(i)`: drops appended branch `i`; the later ones move down.
    pub fn remove_msg_branch(&mut self, i: i64) -> bool {
        match usize::try_from(i).ok().filter(|&i| i < self.branches.len()) {
            Some(i) => {
                self.branches.remove(i);
                true
            }
            None => false,
        }
    }

    /// `move_msg_branch(src, dst[, "keep"])`: `src` (URI, `$du`, q, flags, attributes)
    /// replaces `dst`; an appended `src` is then removed unless kept. (OpenSIPS' dset.c only
    /// removes it from index 1 on, against its documentation; we follow the documentation.)
    pub fn move_msg_branch(&mut self, src: DsetIdx, dst: DsetIdx, keep: bool) -> bool {
        if src == dst {
            return true;
        }
        let Some(b) = self.dset_branch(src) else {
            return false;
        };
        if !self.put_dset_branch(dst, b) {
            return false;
        }
        if let (DsetIdx::Appended(i), false) = (src, keep) {
            self.branches.remove(i);
        }
        true
    }

    /// `swap_msg_branches(a, b)`: the two branches trade places, attributes included.
    pub fn swap_msg_branches(&mut self, a: DsetIdx, b: DsetIdx) -> bool {
        if a == b {
            return true;
        }
        let (Some(ba), Some(bb)) = (self.dset_branch(a), self.dset_branch(b)) else {
            return false;
        };
        // Both exist, so only an R-URI that does not parse can refuse; it is put back first.
        self.put_dset_branch(a, bb) && self.put_dset_branch(b, ba)
    }

    fn dset_branch(&self, at: DsetIdx) -> Option<MsgBranch> {
        if !self.msg.is_request() {
            return None;
        }
        match at {
            DsetIdx::Ruri => Some(MsgBranch {
                uri: self.ruri()?.to_owned(),
                dst_uri: self.dst_uri.clone(),
                path: self.path.clone(),
                q: self.ruri_q,
                flags: self.branch_flags,
                attrs: self.branch_attrs.clone(),
                socket: self.send_socket.clone(),
            }),
            DsetIdx::Appended(i) => self.branches.get(i).cloned(),
        }
    }

    fn put_dset_branch(&mut self, at: DsetIdx, b: MsgBranch) -> bool {
        match at {
            DsetIdx::Ruri => {
                if !self.set_ruri(&b.uri) {
                    return false;
                }
                self.dst_uri = b.dst_uri;
                self.path = b.path;
                self.ruri_q = b.q;
                self.branch_flags = b.flags;
                self.branch_attrs = b.attrs;
                self.send_socket = b.socket;
                true
            }
            DsetIdx::Appended(i) => match self.branches.get_mut(i) {
                Some(slot) => {
                    *slot = b;
                    true
                }
                None => false,
            },
        }
    }
}

/// Serial forking (OpenSIPS serialize.c).
impl MsgCtx {
    /// `serialize_branches(clear[, keep_order])`: the R-URI and every appended branch are put
    /// aside, highest q first (equal q in their order; with `keep_order`, one at a time in
    /// their order), ahead of what earlier calls put aside (`clear` drops that first); the
    /// appended branches are removed. Nothing happens without appended branches, or when all
    /// share the R-URI's q and the order is not kept.
    pub fn serialize_branches(&mut self, clear: bool, keep_order: bool) {
        if self.branches.is_empty()
            || (!keep_order && self.branches.iter().all(|b| b.q == self.ruri_q))
        {
            return;
        }
        let ruri = self
            .new_ruri
            .clone()
            .unwrap_or_else(|| self.msg.request_uri_str().unwrap_or("").to_owned());
        let mut all = vec![crate::ctx::SerialBranch {
            uri: ruri,
            dst_uri: self.dst_uri.clone(),
            q: self.ruri_q,
            flags: self.branch_flags,
            socket: self.send_socket.clone(),
            ends_class: true,
        }];
        all.extend(self.branches.drain(..).map(|b| crate::ctx::SerialBranch {
            uri: b.uri,
            dst_uri: b.dst_uri,
            q: b.q,
            flags: b.flags,
            socket: b.socket,
            ends_class: true,
        }));
        if !keep_order {
            // Stable: equal q keep their order.
            all.sort_by_key(|b| std::cmp::Reverse(b.q));
            let qs: Vec<i32> = all.iter().map(|b| b.q).collect();
            for (i, b) in all.iter_mut().enumerate() {
                b.ends_class = qs.get(i + 1).is_none_or(|next| *next != b.q);
            }
        }
        if clear {
            self.serial.clear();
        }
        all.append(&mut self.serial);
        self.serial = all;
    }

    /// `next_branches()`: the next q class of what `serialize_branches` put aside becomes the
    /// destination set — its first as the R-URI (with its `$du`, q, flags and socket), the rest
    /// appended. 1 when more remain, 2 when this was the last class, -1 when none was left.
    pub fn next_branches(&mut self) -> i64 {
        if self.serial.is_empty() {
            return -1;
        }
        let first = self.serial.remove(0);
        if !self.set_ruri(&first.uri) {
            return -1;
        }
        self.dst_uri = first.dst_uri;
        self.ruri_q = first.q;
        self.branch_flags = first.flags;
        if first.socket.is_some() {
            self.send_socket = first.socket;
        }
        let mut ends = first.ends_class;
        while !ends && !self.serial.is_empty() {
            let b = self.serial.remove(0);
            ends = b.ends_class;
            self.branches.push(crate::ctx::MsgBranch {
                uri: b.uri,
                dst_uri: b.dst_uri,
                path: None,
                q: b.q,
                flags: b.flags,
                attrs: Default::default(),
                socket: b.socket,
            });
        }
        if self.serial.is_empty() { 2 } else { 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> MsgCtx {
        let raw = "INVITE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
                   From: <sip:x@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\n\
                   CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let msg = sip::SipMessage::parse(bytes::Bytes::from(raw)).expect("parses");
        let mut c = MsgCtx::new(msg);
        for u in ["sip:b@example.com", "sip:c@example.com"] {
            c.branches.push(MsgBranch {
                uri: u.into(),
                q: -1,
                ..MsgBranch::default()
            });
        }
        c
    }

    #[test]
    fn attrs_follow_their_branch() {
        let mut c = ctx();
        assert!(c.set_branch_attr(Some(0), "n", Value::str("ruri")));
        assert!(c.set_branch_attr(None, "n", Value::Int(2)));
        assert!(!c.set_branch_attr(Some(3), "n", Value::Int(3)));
        assert_eq!(c.branch_attr(Some(-1), "n"), Value::Int(2));
        assert!(c.swap_msg_branches(DsetIdx::Ruri, DsetIdx::Appended(1)));
        assert_eq!(c.ruri(), Some("sip:c@example.com"));
        assert_eq!(c.branch_attr(Some(0), "n"), Value::Int(2));
        assert_eq!(c.branch_attr(Some(2), "n"), Value::str("ruri"));
        assert!(c.move_msg_branch(DsetIdx::Appended(1), DsetIdx::Appended(0), false));
        assert_eq!(c.branches.len(), 1);
        assert_eq!(c.branch_attr(Some(1), "n"), Value::str("ruri"));
        assert!(c.set_branch_attr(Some(1), "n", Value::Null));
        assert_eq!(c.branch_attr(Some(1), "n"), Value::Null);
        assert!(c.remove_msg_branch(0));
        assert!(!c.remove_msg_branch(0));
    }
}
