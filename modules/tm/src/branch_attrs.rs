//! `t_get_branch_idx_by_attr(attr[, val_str][, val_int][, result][, offset])` (OpenSIPS tm.c):
//! finds a transaction branch by the attributes its message branch carried
//! (`$msg.branch.attr(NAME)` before `t_relay`, `$tm.branch.attr(NAME)` after).

use engine::{FnCtx, TmBranchInfo, Value};

/// The first branch from `from` that has attribute `name`, equal to `want` when one is given
/// (a string matches only a string, an integer only an integer).
pub(crate) fn find_branch(
    branches: &[TmBranchInfo],
    name: &str,
    want: Option<&Value>,
    from: usize,
) -> Option<usize> {
    branches
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, b)| match (b.attrs.get(name), want) {
            (Some(_), None) => true,
            (Some(have), Some(want)) => have == want,
            (None, _) => false,
        })
        .map(|(i, _)| i)
}

/// The script function: true and the index in `result` when found; false and NULL in
/// `result` when not; -2 without a transaction. The string value wins over the integer one
/// when both are given.
pub(crate) fn t_get_branch_idx_by_attr(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(tx) = f.msg.tx.clone() else {
        return -2;
    };
    let name = args.first().map(|v| v.to_text()).unwrap_or_default();
    let want = match (args.get(1), args.get(2)) {
        (Some(s @ Value::Str(_)), _) => Some(s.clone()),
        (_, Some(i @ Value::Int(_))) => Some(i.clone()),
        _ => None,
    };
    // A negative offset starts from the first branch.
    let from = args
        .get(4)
        .and_then(Value::as_int)
        .and_then(|i| usize::try_from(i).ok())
        .unwrap_or(0);
    match find_branch(&tx.branches(), &name, want.as_ref(), from) {
        Some(i) => {
            f.set_output(3, Value::Int(i as i64));
            1
        }
        None => {
            f.set_output(3, Value::Null);
            -1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn branch(attrs: &[(&str, Value)]) -> TmBranchInfo {
        let mut b = TmBranchInfo::default();
        for (n, v) in attrs {
            b.attrs.set(n, v.clone());
        }
        b
    }

    #[test]
    fn matches_by_name_then_by_typed_value_from_the_offset() {
        let bs = [
            branch(&[("kind", Value::str("pstn"))]),
            branch(&[("kind", Value::str("sip")), ("n", Value::Int(5))]),
            branch(&[("kind", Value::str("pstn")), ("n", Value::str("5"))]),
        ];
        assert_eq!(find_branch(&bs, "kind", None, 0), Some(0));
        assert_eq!(find_branch(&bs, "kind", None, 1), Some(1));
        assert_eq!(
            find_branch(&bs, "kind", Some(&Value::str("pstn")), 1),
            Some(2)
        );
        assert_eq!(find_branch(&bs, "kind", Some(&Value::str("PSTN")), 0), None);
        assert_eq!(find_branch(&bs, "n", Some(&Value::Int(5)), 0), Some(1));
        assert_eq!(find_branch(&bs, "n", Some(&Value::str("5")), 0), Some(2));
        assert_eq!(find_branch(&bs, "none", None, 0), None);
        assert_eq!(find_branch(&bs, "kind", None, 9), None);
    }
}
