//! AVP value stacks: reads by index and OpenSIPS' assignment forms.

use cfg::ast::AssignOp;

use crate::value::Value;

/// Reads an AVP stack (oldest first): index 0 is the newest value, negative indexes count from
/// the oldest, `[*]` joins every value newest first.
pub(crate) fn avp_get(stack: &[Value], index: crate::pv::Index) -> Value {
    use crate::pv::Index;
    let len = stack.len() as i64;
    let at = match index {
        Index::First => len - 1,
        Index::At(i) if i >= 0 => len - 1 - i,
        Index::At(i) => -i - 1,
        Index::All => {
            let all: Vec<String> = stack
                .iter()
                .rev()
                .map(|v| v.to_text().into_owned())
                .collect();
            return if all.is_empty() {
                Value::Null
            } else {
                Value::from(all.join(", "))
            };
        }
    };
    if at < 0 {
        Value::Null
    } else {
        stack.get(at as usize).cloned().unwrap_or_default()
    }
}

/// Writes an AVP stack with OpenSIPS' assignment forms (`=` push, `:=` replace all, `[N]`
/// replace one, `[append]` add oldest, `NULL` delete).
pub(crate) fn avp_set(stack: &mut Vec<Value>, slot: super::ir::AvpSlot, op: AssignOp, v: Value) {
    use super::ir::AvpSlot;
    match (slot, op) {
        (AvpSlot::All, _) | (AvpSlot::Newest, AssignOp::Replace) => {
            stack.clear();
            if !v.is_null() {
                stack.push(v);
            }
        }
        (AvpSlot::Newest, AssignOp::Set) => {
            if v.is_null() {
                stack.pop();
            } else {
                stack.push(v);
            }
        }
        (AvpSlot::Newest, _) => {
            stack.pop();
            stack.push(v);
        }
        (AvpSlot::At(i), _) => {
            let len = stack.len() as i64;
            let at = if i >= 0 { len - 1 - i } else { -i - 1 };
            if at >= 0 && (at as usize) < stack.len() {
                if v.is_null() {
                    stack.remove(at as usize);
                } else if let Some(slot) = stack.get_mut(at as usize) {
                    *slot = v;
                }
            }
        }
        (AvpSlot::Append, _) => {
            if !v.is_null() {
                stack.insert(0, v);
            }
        }
    }
}
