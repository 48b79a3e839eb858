//! The named dialog flags: `set_dlg_flag`, `reset_dlg_flag`, `is_dlg_flag_set`,
//! `test_and_set_dlg_flag` (the names' bits are [`crate::table::flag_bit`]'s).

use engine::{FnCtx, Value};

use crate::bool_code;
use crate::table::{self, dialogs};

/// A dialog flag name: a static name (up to 32 of them per server).
pub(crate) static FLAG_NAME: engine::ParamCheck = engine::ParamCheck {
    what: "dialog flag name",
    check: |text| {
        if text.trim().is_empty() || text.contains('$') {
            Err("a dialog flag is a static name".into())
        } else {
            table::flag_bit(text.trim())
                .map(|_| ())
                .ok_or_else(|| "more than 32 dialog flag names".into())
        }
    },
};

/// Runs `change` on the user flags of the message's dialog with the bit of flag argument 0;
/// -1 without a dialog (or a 33rd flag name).
fn with_flag(f: &mut FnCtx<'_>, args: &[Value], change: impl FnOnce(&mut u32, u32) -> bool) -> i64 {
    let (Some(name), Some(mark)) = (args.first(), f.msg.dialog) else {
        return -1;
    };
    let Some(bit) = table::flag_bit(name.to_text().trim()) else {
        return -1;
    };
    let mut t = dialogs();
    let Some(d) = t.by_id.get_mut(&mark.id) else {
        return -1;
    };
    let before = d.user_flags;
    let result = change(&mut d.user_flags, 1 << bit);
    if d.user_flags != before {
        t.mark_dirty(mark.id);
    }
    bool_code(result)
}

/// `set_dlg_flag(name)`.
pub(crate) fn set_dlg_flag(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    with_flag(f, args, |flags, bit| {
        *flags |= bit;
        true
    })
}

/// `reset_dlg_flag(name)`.
pub(crate) fn reset_dlg_flag(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    with_flag(f, args, |flags, bit| {
        *flags &= !bit;
        true
    })
}

/// `is_dlg_flag_set(name)`.
pub(crate) fn is_dlg_flag_set(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    with_flag(f, args, |flags, bit| *flags & bit != 0)
}

/// `test_and_set_dlg_flag(name, value)`: when the flag is `value` (0 or 1), it flips, under
/// the table's lock; true then.
pub(crate) fn test_and_set_dlg_flag(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let want = args.get(1).and_then(Value::as_int).unwrap_or(0) != 0;
    with_flag(f, args, |flags, bit| {
        if (*flags & bit != 0) == want {
            *flags ^= bit;
            true
        } else {
            false
        }
    })
}
