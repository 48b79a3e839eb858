//! Assignments to `$msg.branch.uri|duri|q|flags|socket[i]`.

use super::exec::Run;
use crate::value::Value;

impl Run<'_> {
    /// The socket a `$socket_out` / `$msg.branch.socket` assignment names: `Some(None)` for
    /// NULL (no socket forced), `Some(name)` for a configured `proto:host:port`, `None` (and
    /// an error logged under `pv`) for anything else.
    pub(super) fn socket_named(&mut self, pv: &str, v: &Value) -> Option<Option<String>> {
        if v.is_null() {
            return Some(None);
        }
        let name = v.to_text().to_ascii_lowercase();
        if self.script.has_socket(&name) {
            Some(Some(name))
        } else {
            self.log
                .log(-1, &format!("{pv}: `{name}` is not a configured socket\n"));
            None
        }
    }

    /// `$msg.branch.uri|duri|q|flags[at] = v` (OpenSIPS pvar.c `_int_pv_set_branch_fields`):
    /// on requests only, no `[*]`; the URI must be a non-empty string, `duri` a string or NULL
    /// (removed), `q` an integer (q × 1000) or NULL (unset), `flags` a space-separated list of
    /// flag names replacing the branch's flags (NULL clears them). Branch 0 is the R-URI's.
    pub(super) fn write_branch_field(
        &mut self,
        field: crate::pv::BranchField,
        at: Option<i64>,
        v: Value,
    ) -> bool {
        use crate::pv::BranchField as F;
        if !self.ctx.msg.is_request() {
            return false;
        }
        let Some(i) = self.ctx.msg_branch_at(at) else {
            self.log.log(-1, "$msg.branch: no such branch to assign\n");
            return false;
        };
        let flags = |names: &str, script: &crate::Script| -> Option<u64> {
            let mut bits = 0u64;
            for n in names.split([' ', ',']).filter(|n| !n.is_empty()) {
                bits |= 1u64 << *script.names.flags.get(n)?;
            }
            Some(bits)
        };
        match (field, &v, i) {
            (F::Uri, Value::Str(s), 0) if !s.is_empty() => self.ctx.set_ruri(s),
            (F::Uri, Value::Str(s), i) if sip::Uri::parse(s).is_ok() => self
                .ctx
                .branches
                .get_mut(i - 1)
                .map(|b| b.uri = s.to_string())
                .is_some(),
            (F::Duri, Value::Null, 0) => {
                self.ctx.dst_uri = None;
                true
            }
            (F::Duri, Value::Str(s), 0) => {
                self.ctx.dst_uri = Some(s.to_string());
                true
            }
            (F::Duri, Value::Null | Value::Str(_), i) => {
                let duri = match &v {
                    Value::Str(s) => Some(s.to_string()),
                    _ => None,
                };
                self.ctx
                    .branches
                    .get_mut(i - 1)
                    .map(|b| b.dst_uri = duri)
                    .is_some()
            }
            (F::Q, Value::Null | Value::Int(_), i) => {
                let q = match v {
                    Value::Int(q @ 0..=1000) => q as i32,
                    Value::Null => -1,
                    _ => return false,
                };
                if i == 0 {
                    self.ctx.ruri_q = q;
                    true
                } else {
                    self.ctx.branches.get_mut(i - 1).map(|b| b.q = q).is_some()
                }
            }
            (F::Flags, Value::Null | Value::Str(_), i) => {
                let bits = match &v {
                    Value::Str(s) => match flags(s, self.script) {
                        Some(b) => b,
                        None => {
                            self.log
                                .log(-1, &format!("$msg.branch.flags: unknown flag in `{s}`\n"));
                            return false;
                        }
                    },
                    _ => 0,
                };
                if i == 0 {
                    self.ctx.branch_flags = bits;
                    true
                } else {
                    self.ctx
                        .branches
                        .get_mut(i - 1)
                        .map(|b| b.flags = bits)
                        .is_some()
                }
            }
            // A configured socket (as `$socket_out`), or NULL: chosen by the destination.
            (F::Socket, Value::Null | Value::Str(_), i) => {
                let Some(socket) = self.socket_named("$msg.branch.socket", &v) else {
                    return false;
                };
                if i == 0 {
                    self.ctx.send_socket = socket;
                    true
                } else {
                    self.ctx
                        .branches
                        .get_mut(i - 1)
                        .map(|b| b.socket = socket)
                        .is_some()
                }
            }
            _ => false,
        }
    }
}
