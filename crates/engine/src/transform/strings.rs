//! `s.*` string shaping: len, int, substr, select, index/rindex, fill, width, trim, case,
//! reverse. All offsets and lengths are in bytes, as in OpenSIPS.

use super::data::{Text, TrValue, is_ws, leading_int};

/// The longest result `s.width` / `s.fill.*` may build (OpenSIPS' transformation buffer is
/// 64 KiB).
pub(super) const MAX_LEN: i64 = 65535;

pub(super) fn len(t: &Text<'_>) -> TrValue {
    TrValue::Int(t.bytes().len() as i64)
}

/// `{s.int}`: an integer stays; a string converts up to its first non-digit ("12abc" → 12,
/// "abc" → 0, " 1" → 0: OpenSIPS' `str2sint` skips no white space).
pub(super) fn int(input: &TrValue, t: &Text<'_>) -> TrValue {
    match input {
        TrValue::Int(i) => TrValue::Int(*i),
        _ => TrValue::Int(leading_int(t.bytes()).0),
    }
}

pub(super) fn reverse(t: &Text<'_>) -> TrValue {
    let mut v = t.bytes().to_vec();
    v.reverse();
    TrValue::from_vec(v)
}

/// `{s.substr,offset,length}`: a negative offset counts from the end (NULL if it reaches before
/// the start); an offset at or past the end is NULL; a length below 1 means "up to that many
/// bytes before the end" (`0`: to the end); a length past the end is cut.
pub(super) fn substr(t: &Text<'_>, off: i64, len: i64) -> TrValue {
    let n = t.bytes().len() as i64;
    let mut i = off;
    if i < 0 {
        if i < -n {
            return TrValue::Null;
        }
        i += n;
    }
    if i >= n {
        return TrValue::Null;
    }
    let mut j = len;
    if j < 1 {
        j = n.saturating_add(j).saturating_sub(i);
    }
    if i.saturating_add(j) > n {
        j = n - i;
    }
    // OpenSIPS would use a negative length here as is (reading garbage); we fail instead.
    if j < 0 {
        return TrValue::Null;
    }
    t.slice(i as usize..(i + j) as usize)
}

/// `{s.select,index,sep}`: the index-th field separated by `sep`; a negative index counts from
/// the end (-1 is the last field); NULL when there are not that many fields.
pub(super) fn select(t: &Text<'_>, idx: i64, sep: u8) -> TrValue {
    let b = t.bytes();
    let found = if idx >= 0 {
        let mut start = 0;
        let mut left = idx;
        let mut hit = None;
        for (p, &c) in b.iter().enumerate().chain(std::iter::once((b.len(), &sep))) {
            if c == sep {
                if left == 0 {
                    hit = Some(start..p);
                    break;
                }
                start = p + 1;
                left -= 1;
            }
        }
        hit
    } else {
        let mut end = b.len();
        let mut left = idx.saturating_add(1).unsigned_abs();
        let mut hit = None;
        for p in (0..=b.len()).rev() {
            // Position 0 acts as a virtual separator just before the start.
            let at_sep = p == 0 || b.get(p - 1) == Some(&sep);
            if at_sep {
                if left == 0 {
                    hit = Some(p..end);
                    break;
                }
                end = p.saturating_sub(1);
                left -= 1;
            }
        }
        hit
    };
    match found {
        Some(r) => t.slice(r),
        None => TrValue::Null,
    }
}

/// `{s.index,needle[,start]}` / `{s.rindex,...}`: the byte position of the first (last) match
/// at or after (before) `start`; a negative start counts from the end and wraps modulo the
/// length (-2 and -12 are the same on a 10-byte string). NULL when not found.
pub(super) fn index(t: &Text<'_>, needle: &[u8], start: Option<i64>, rev: bool) -> TrValue {
    let hay = t.bytes();
    let (n, m) = (hay.len() as i64, needle.len() as i64);
    if m == 0 {
        return TrValue::Null;
    }
    let mut i = start.unwrap_or(if rev { n - 1 } else { 0 });
    if i < 0 {
        i = if n > 0 {
            let r = (i.unsigned_abs() % n as u64) as i64;
            if r > 0 { n - r } else { 0 }
        } else {
            0
        };
    }
    let at = |p: i64| hay.get(p as usize..(p + m) as usize) == Some(needle);
    if !rev {
        if i >= n || m > n - i {
            return TrValue::Null;
        }
        (i..=n - m)
            .find(|&p| at(p))
            .map_or(TrValue::Null, TrValue::Int)
    } else {
        if m > n {
            return TrValue::Null;
        }
        i = i.min(n - 1);
        if m > n - i {
            i = n - m;
        }
        (0..=i)
            .rev()
            .find(|&p| at(p))
            .map_or(TrValue::Null, TrValue::Int)
    }
}

/// The `s.fill.*` pad as OpenSIPS reads the literal: trailing white space dropped, then one pair
/// of surrounding single or double quotes removed. `None` when nothing is left.
pub(super) fn normalize_pad(raw: &str) -> Option<Vec<u8>> {
    let mut p = raw.trim_start_matches(|c: char| c.is_ascii() && is_ws(c as u8));
    if p.len() > 1 {
        p = p.trim_end_matches(|c: char| c.is_ascii() && is_ws(c as u8));
        let b = p.as_bytes();
        if b.len() > 1 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0] {
            p = p.get(1..p.len() - 1)?;
        }
    }
    (!p.is_empty()).then(|| p.as_bytes().to_vec())
}

/// `{s.fill.left,pad,len}` / `{s.fill.right,...}`: pads to `len` bytes with the pad repeated;
/// on the left the repetition is aligned to end right before the value ("ab" to 3 → "bab"), on
/// the right it starts right after it ("ab" to 3 → "aba"). Longer values are left alone.
pub(super) fn fill(input: &TrValue, t: &Text<'_>, pad: &[u8], target: i64, left: bool) -> TrValue {
    let b = t.bytes();
    let need = target.saturating_sub(b.len() as i64);
    if need <= 0 || pad.is_empty() {
        return input.clone();
    }
    if target > MAX_LEN {
        return TrValue::Null;
    }
    let need = need as usize;
    let mut out = Vec::with_capacity(b.len() + need);
    if left {
        let skip = pad.len() - need % pad.len();
        out.extend(pad.iter().cycle().skip(skip % pad.len()).take(need));
        out.extend_from_slice(b);
    } else {
        out.extend_from_slice(b);
        out.extend(pad.iter().cycle().take(need));
    }
    TrValue::from_vec(out)
}

/// `{s.width,len}`: cut to `len` bytes or pad with spaces on the right; NULL for `len` < 1.
pub(super) fn width(t: &Text<'_>, w: i64) -> TrValue {
    let b = t.bytes();
    if w <= 0 || w > MAX_LEN {
        return TrValue::Null;
    }
    let w = w as usize;
    if w <= b.len() {
        return t.slice(0..w);
    }
    let mut out = Vec::with_capacity(w);
    out.extend_from_slice(b);
    out.resize(w, b' ');
    TrValue::from_vec(out)
}

/// `{s.trim}` / `{s.trimr}` / `{s.triml}`: space, tab, CR and LF.
pub(super) fn trim(t: &Text<'_>, leading: bool, trailing: bool) -> TrValue {
    let b = t.bytes();
    let mut start = 0;
    let mut end = b.len();
    if leading {
        start = b.iter().position(|&c| !is_ws(c)).unwrap_or(end);
    }
    if trailing {
        end = b.iter().rposition(|&c| !is_ws(c)).map_or(start, |p| p + 1);
    }
    t.slice(start..end.max(start))
}

/// `{s.tolower}` / `{s.toupper}`: ASCII letters only; an integer stays as it is.
pub(super) fn change_case(input: &TrValue, t: &Text<'_>, upper: bool) -> TrValue {
    if let TrValue::Int(_) = input {
        return input.clone();
    }
    let b = t.bytes();
    let changes = if upper {
        b.iter().any(u8::is_ascii_lowercase)
    } else {
        b.iter().any(u8::is_ascii_uppercase)
    };
    if !changes {
        return t.whole();
    }
    let out = if upper {
        b.to_ascii_uppercase()
    } else {
        b.to_ascii_lowercase()
    };
    TrValue::from_vec(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Value;
    use crate::transform::TransformOp;

    use crate::transform::testing::{ap, s};

    #[test]
    fn len_and_int() {
        assert_eq!(ap("s.len", "abc", &[]), Value::Int(3));
        assert_eq!(ap("s.len", "", &[]), Value::Int(0));
        assert_eq!(ap("s.len", "é", &[]), Value::Int(2)); // bytes, like OpenSIPS
        assert_eq!(
            TransformOp::SLen.apply(&Value::Int(-120), &[]),
            Value::Int(4)
        );
        // str2sint stops at the first non-digit: the docs' "2868.12 sec" example gives 2868.
        assert_eq!(ap("s.int", "12abc", &[]), Value::Int(12));
        assert_eq!(ap("s.int", "2868.12 sec", &[]), Value::Int(2868));
        assert_eq!(ap("s.int", "-7x", &[]), Value::Int(-7));
        assert_eq!(ap("s.int", "abc", &[]), Value::Int(0));
        assert_eq!(ap("s.int", " 5", &[]), Value::Int(0));
        assert_eq!(ap("s.int", "", &[]), Value::Int(0));
        assert_eq!(
            TransformOp::SInt.apply(&Value::Int(42), &[]),
            Value::Int(42)
        );
    }

    #[test]
    fn substr() {
        // Examples and rules from tr_eval_string (TR_S_SUBSTR).
        assert_eq!(ap("s.substr", "abcdef", &["1", "2"]), s("bc"));
        assert_eq!(ap("s.substr", "abcdef", &["-3", "0"]), s("def"));
        assert_eq!(ap("s.substr", "abcdef", &["0", "0"]), s("abcdef"));
        assert_eq!(ap("s.substr", "abcdef", &["1", "-1"]), s("bcde"));
        assert_eq!(ap("s.substr", "abcdef", &["2", "100"]), s("cdef"));
        assert_eq!(ap("s.substr", "abcdef", &["-6", "1"]), s("a"));
        assert_eq!(ap("s.substr", "abcdef", &["3", "-3"]), s(""));
        assert_eq!(ap("s.substr", "abcdef", &["-7", "1"]), Value::Null);
        assert_eq!(ap("s.substr", "abcdef", &["6", "1"]), Value::Null);
        assert_eq!(ap("s.substr", "abcdef", &["4", "-3"]), Value::Null);
        assert_eq!(ap("s.substr", "", &["0", "0"]), Value::Null);
        assert_eq!(ap("s.substr", "ab", &["-3", "0"]), Value::Null);
        assert_eq!(
            TransformOp::SSubstr.apply(&Value::Int(12345), &[s("1"), s("2")]),
            s("23")
        );
        // Cutting a multi-byte character leaves bytes a Value cannot hold.
        assert_eq!(ap("s.substr", "é", &["0", "1"]), Value::Null);
        assert_eq!(ap("s.substr", "ab", &["x", "1"]), Value::Null);
        let big = i64::MAX.to_string();
        let neg = i64::MIN.to_string();
        assert_eq!(ap("s.substr", "ab", &["0", &big]), s("ab"));
        assert_eq!(ap("s.substr", "ab", &[&neg, &neg]), Value::Null);
        assert_eq!(ap("s.substr", "ab", &["1", &neg]), Value::Null);
    }

    #[test]
    fn zero_copy_substr() {
        let input = Value::str("hello world");
        let out = TransformOp::SSubstr.apply(&input, &[s("6"), s("0")]);
        let (Value::Str(a), Value::Str(b)) = (&input, &out) else {
            panic!()
        };
        assert_eq!(b, "world");
        assert_eq!(b.as_ptr() as usize, a.as_ptr() as usize + 6);
    }

    #[test]
    fn select() {
        assert_eq!(ap("s.select", "a,b,c", &["0", ","]), s("a"));
        assert_eq!(ap("s.select", "a,b,c", &["2", ","]), s("c"));
        assert_eq!(ap("s.select", "a,b,c", &["3", ","]), Value::Null);
        assert_eq!(ap("s.select", "a,b,c", &["-1", ","]), s("c"));
        assert_eq!(ap("s.select", "a,b,c", &["-3", ","]), s("a"));
        assert_eq!(ap("s.select", "a,b,c", &["-4", ","]), Value::Null);
        assert_eq!(ap("s.select", "abc", &["0", ","]), s("abc"));
        assert_eq!(ap("s.select", "abc", &["-1", ","]), s("abc"));
        assert_eq!(ap("s.select", "a,,c", &["1", ","]), s(""));
        assert_eq!(ap("s.select", "a,b,", &["2", ","]), s(""));
        assert_eq!(ap("s.select", "a,b,", &["-1", ","]), s(""));
        assert_eq!(ap("s.select", ",a", &["-2", ","]), s(""));
        assert_eq!(ap("s.select", "", &["0", ","]), s(""));
        assert_eq!(ap("s.select", "", &["-1", ","]), s(""));
        assert_eq!(ap("s.select", "", &["1", ","]), Value::Null);
        // The docs' example: $(var(x){s.select,1,,}) on "12,34,56" gives "34".
        assert_eq!(ap("s.select", "12,34,56", &["1", ","]), s("34"));
        assert_eq!(ap("s.select", "a b", &["1", " "]), s("b"));
        assert_eq!(ap("s.select", "a b", &["1", ""]), Value::Null);
        let min = i64::MIN.to_string();
        assert_eq!(ap("s.select", "a", &[&min, ","]), Value::Null);
    }

    #[test]
    fn index_rindex() {
        // Cases follow TR_S_INDEX / TR_S_RINDEX in transformations.c.
        assert_eq!(ap("s.index", "hello world", &["o"]), Value::Int(4));
        assert_eq!(ap("s.index", "hello world", &["o", "5"]), Value::Int(7));
        assert_eq!(ap("s.index", "hello world", &["world"]), Value::Int(6));
        assert_eq!(ap("s.index", "hello world", &["x"]), Value::Null);
        assert_eq!(ap("s.index", "hello world", &["o", "-4"]), Value::Int(7));
        // Negative starts wrap: -4 and -15 are the same on an 11-byte string.
        assert_eq!(ap("s.index", "hello world", &["o", "-15"]), Value::Int(7));
        assert_eq!(ap("s.index", "hello world", &["h", "-11"]), Value::Int(0));
        assert_eq!(ap("s.index", "hello world", &["o", "11"]), Value::Null);
        assert_eq!(ap("s.index", "ab", &["abc"]), Value::Null);
        assert_eq!(ap("s.index", "", &["a"]), Value::Null);
        assert_eq!(ap("s.rindex", "hello world", &["o"]), Value::Int(7));
        assert_eq!(ap("s.rindex", "hello world", &["o", "6"]), Value::Int(4));
        assert_eq!(ap("s.rindex", "hello world", &["o", "-5"]), Value::Int(4));
        assert_eq!(
            ap("s.rindex", "hello world", &["hello", "100"]),
            Value::Int(0)
        );
        assert_eq!(
            ap("s.rindex", "hello world", &["world", "8"]),
            Value::Int(6)
        );
        assert_eq!(ap("s.rindex", "hello world", &["x"]), Value::Null);
        assert_eq!(ap("s.rindex", "", &["a"]), Value::Null);
        assert_eq!(ap("s.rindex", "aaa", &["aa"]), Value::Int(1));
        assert_eq!(ap("s.index", "aaa", &["a", "x"]), Value::Null);
        assert_eq!(ap("s.index", "aaa", &[""]), Value::Null);
        assert_eq!(
            TransformOp::SIndex.apply(&Value::Int(12321), &[s("2")]),
            Value::Int(1)
        );
        assert_eq!(
            ap("s.index", "ab", &["b", &i64::MIN.to_string()]),
            Value::Int(1)
        );
    }

    #[test]
    fn fill_and_width() {
        assert_eq!(ap("s.fill.left", "12", &["0", "5"]), s("00012"));
        assert_eq!(ap("s.fill.left", "12", &["'0'", "5"]), s("00012"));
        assert_eq!(ap("s.fill.left", "12", &["\"ab\"", "5"]), s("bab12"));
        assert_eq!(ap("s.fill.left", "12", &["ab", "6"]), s("abab12"));
        assert_eq!(ap("s.fill.right", "12", &["ab", "5"]), s("12aba"));
        assert_eq!(ap("s.fill.right", "12", &["' '", "4"]), s("12  "));
        assert_eq!(ap("s.fill.left", "12345", &["0", "3"]), s("12345"));
        assert_eq!(ap("s.fill.left", "123", &["0", "3"]), s("123"));
        assert_eq!(ap("s.fill.left", "1", &["''", "3"]), Value::Null);
        assert_eq!(
            TransformOp::SFillLeft.apply(&Value::Int(7), &[s("0"), s("3")]),
            s("007")
        );
        assert_eq!(
            TransformOp::SFillLeft.apply(&Value::Int(7), &[s("0"), s("1")]),
            Value::Int(7)
        );
        assert_eq!(ap("s.fill.right", "1", &["0", "70000"]), Value::Null);
        assert_eq!(ap("s.width", "abcdef", &["3"]), s("abc"));
        assert_eq!(ap("s.width", "abc", &["5"]), s("abc  "));
        assert_eq!(ap("s.width", "abc", &["3"]), s("abc"));
        assert_eq!(ap("s.width", "abc", &["0"]), Value::Null);
        assert_eq!(ap("s.width", "abc", &["-1"]), Value::Null);
        assert_eq!(ap("s.width", "abc", &["70000"]), Value::Null);
    }

    #[test]
    fn pads() {
        assert_eq!(normalize_pad("0"), Some(b"0".to_vec()));
        assert_eq!(normalize_pad("ab  "), Some(b"ab".to_vec()));
        assert_eq!(normalize_pad("' '"), Some(b" ".to_vec()));
        assert_eq!(normalize_pad("\"'\""), Some(b"'".to_vec()));
        assert_eq!(normalize_pad("'"), Some(b"'".to_vec()));
        assert_eq!(normalize_pad("\"\""), None);
        assert_eq!(normalize_pad("  "), None);
        assert_eq!(normalize_pad(""), None);
    }

    #[test]
    fn trims_case_reverse() {
        assert_eq!(ap("s.trim", " \t a b \r\n", &[]), s("a b"));
        assert_eq!(ap("s.trimr", " a ", &[]), s(" a"));
        assert_eq!(ap("s.triml", " a ", &[]), s("a "));
        assert_eq!(ap("s.trim", "   ", &[]), s(""));
        assert_eq!(ap("s.trimr", "   ", &[]), s(""));
        assert_eq!(ap("s.triml", "", &[]), s(""));
        assert_eq!(ap("s.trim", "\u{b}x", &[]), s("\u{b}x")); // VT is not white space here
        assert_eq!(ap("s.tolower", "AbC-É", &[]), s("abc-É"));
        assert_eq!(ap("s.toupper", "aBc-é", &[]), s("ABC-é"));
        assert_eq!(ap("s.toupper", "ABC", &[]), s("ABC"));
        assert_eq!(
            TransformOp::SToUpper.apply(&Value::Int(5), &[]),
            Value::Int(5)
        );
        assert_eq!(ap("s.reverse", "abc", &[]), s("cba"));
        assert_eq!(ap("s.reverse", "", &[]), s(""));
        assert_eq!(ap("s.reverse", "é", &[]), Value::Null); // byte-wise, like OpenSIPS
        assert_eq!(TransformOp::SReverse.apply(&Value::Int(-12), &[]), s("21-"));
    }
}
