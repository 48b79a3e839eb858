//! The value that flows through a transformation chain, the text view ops read their input
//! through, and argument helpers.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use bytestring::ByteString;

use crate::Value;

/// A value between two steps of a transformation chain: a [`Value`], or `Bin`, raw bytes that
/// are not valid UTF-8. `ip.pton`, `s.decode.hexa`, `s.b64decode`, `s.xor`, `s.reverse`,
/// `s.substr` … can produce them, and `ip.ntop`, `ip.family`, `s.encode.hexa`, `s.len` … read
/// them back, so a chain like `{ip.pton}{ip.ntop}` works. Invariant: `Bin` never holds valid
/// UTF-8 (that is a `Str`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TrValue {
    #[default]
    Null,
    Int(i64),
    Str(ByteString),
    Bin(Bytes),
}

impl TrValue {
    /// The end of a chain: `Bin` cannot be a script value and becomes NULL.
    pub fn into_value(self) -> Value {
        match self {
            TrValue::Null | TrValue::Bin(_) => Value::Null,
            TrValue::Int(i) => Value::Int(i),
            TrValue::Str(s) => Value::Str(s),
        }
    }

    /// Bytes that may or may not be UTF-8 (checked without copying).
    pub fn from_bytes(b: Bytes) -> TrValue {
        match ByteString::try_from(b.clone()) {
            Ok(s) => TrValue::Str(s),
            Err(_) => TrValue::Bin(b),
        }
    }

    pub(crate) fn from_vec(v: Vec<u8>) -> TrValue {
        match String::from_utf8(v) {
            Ok(s) => TrValue::Str(ByteString::from(s)),
            Err(e) => TrValue::Bin(Bytes::from(e.into_bytes())),
        }
    }

    pub(crate) fn string(s: String) -> TrValue {
        TrValue::Str(ByteString::from(s))
    }

    pub(crate) fn static_str(s: &'static str) -> TrValue {
        TrValue::Str(ByteString::from_static(s))
    }

    pub(crate) fn flag(b: bool) -> TrValue {
        TrValue::Int(i64::from(b))
    }
}

impl From<&Value> for TrValue {
    fn from(v: &Value) -> TrValue {
        match v {
            Value::Null => TrValue::Null,
            Value::Int(i) => TrValue::Int(*i),
            Value::Str(s) => TrValue::Str(s.clone()),
        }
    }
}

impl From<Value> for TrValue {
    fn from(v: Value) -> TrValue {
        match v {
            Value::Null => TrValue::Null,
            Value::Int(i) => TrValue::Int(i),
            Value::Str(s) => TrValue::Str(s),
        }
    }
}

/// The string view of a non-NULL input: an `Int` reads as its decimal text.
#[derive(Debug)]
pub(crate) enum Text<'a> {
    Str(&'a ByteString),
    Bin(&'a Bytes),
    Int(ByteString),
}

impl<'a> Text<'a> {
    pub(crate) fn of(v: &'a TrValue) -> Option<Text<'a>> {
        match v {
            TrValue::Null => None,
            TrValue::Int(i) => Some(Text::Int(ByteString::from(i.to_string()))),
            TrValue::Str(s) => Some(Text::Str(s)),
            TrValue::Bin(b) => Some(Text::Bin(b)),
        }
    }

    fn bs(&self) -> Option<&ByteString> {
        match self {
            Text::Str(s) => Some(s),
            Text::Int(s) => Some(s),
            Text::Bin(_) => None,
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Text::Str(s) => s.as_bytes(),
            Text::Int(s) => s.as_bytes(),
            Text::Bin(b) => b,
        }
    }

    /// The input as text; `None` for binary data.
    pub(crate) fn str(&self) -> Option<&str> {
        self.bs().map(|s| &**s)
    }

    /// The whole input, unchanged.
    pub(crate) fn whole(&self) -> TrValue {
        match self {
            Text::Str(s) => TrValue::Str((*s).clone()),
            Text::Int(s) => TrValue::Str(s.clone()),
            Text::Bin(b) => TrValue::Bin((*b).clone()),
        }
    }

    /// Bytes `r` of the input, sharing its buffer. NULL when out of range.
    pub(crate) fn slice(&self, r: Range<usize>) -> TrValue {
        match self.bs() {
            Some(s) => match s.get(r.clone()) {
                Some(sub) => TrValue::Str(s.slice_ref(sub)),
                // Not on character boundaries: the piece is not UTF-8.
                None if r.start <= r.end && r.end <= s.len() => TrValue::Bin(s.as_bytes().slice(r)),
                None => TrValue::Null,
            },
            None => match self {
                Text::Bin(b) if r.start <= r.end && r.end <= b.len() => {
                    TrValue::from_bytes(b.slice(r))
                }
                _ => TrValue::Null,
            },
        }
    }

    /// A piece of [`Text::str`] (as returned by a parser), sharing the buffer. A string that is
    /// not actually inside the input is copied rather than trusted.
    pub(crate) fn sub(&self, sub: &str) -> TrValue {
        match self.bs() {
            Some(s) => TrValue::Str(share(s, sub)),
            None => TrValue::string(sub.to_owned()),
        }
    }

    /// Like [`Text::sub`], NULL for an absent or empty piece (OpenSIPS' rule for URI/Via parts).
    pub(crate) fn sub_nonempty(&self, sub: Option<&str>) -> TrValue {
        match sub {
            Some(x) if !x.is_empty() => self.sub(x),
            _ => TrValue::Null,
        }
    }
}

/// `sub` as a slice of `whole` when it lies inside it, else a copy.
fn share(whole: &ByteString, sub: &str) -> ByteString {
    let base = whole.as_ptr() as usize;
    let p = sub.as_ptr() as usize;
    if p >= base && p + sub.len() <= base + whole.len() {
        whole.slice_ref(sub)
    } else {
        ByteString::from(sub)
    }
}

/// A numeric argument: `Int`, or a `Str` holding a decimal number.
pub(crate) fn arg_int(args: &[Value], i: usize) -> Option<i64> {
    args.get(i)?.as_int()
}

/// A string argument (an `Int` reads as its decimal text); `None` when missing or NULL.
pub(crate) fn arg_text(args: &[Value], i: usize) -> Option<Cow<'_, str>> {
    match args.get(i)? {
        Value::Null => None,
        v => Some(v.to_text()),
    }
}

/// OpenSIPS' `str2sint` as `{s.int}` uses it: an optional sign, then digits up to the first
/// non-digit (no white space skipped); nothing numeric gives 0. Wraps instead of overflowing.
pub(crate) fn leading_int(b: &[u8]) -> (i64, bool) {
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, b.get(1..).unwrap_or(&[])),
        Some(b'+') => (false, b.get(1..).unwrap_or(&[])),
        _ => (false, b),
    };
    let mut n: i64 = 0;
    let mut complete = !b.is_empty();
    for &c in digits {
        if !c.is_ascii_digit() {
            complete = false;
            break;
        }
        n = n.wrapping_mul(10).wrapping_add(i64::from(c - b'0'));
    }
    (if neg { n.wrapping_neg() } else { n }, complete)
}

/// A literal numeric transformation argument as OpenSIPS' parser reads it: optional sign,
/// optional white space, decimal digits; surrounding white space allowed.
pub(crate) fn literal_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, t.get(1..)?.trim_start()),
        Some(b'+') => (false, t.get(1..)?.trim_start()),
        _ => (false, t),
    };
    if rest.is_empty() || !rest.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: i64 = rest.parse().ok()?;
    Some(if neg { -n } else { n })
}

/// OpenSIPS' white space for trimming: space, tab, CR, LF.
pub(crate) fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn leading_int_like_str2sint() {
        assert_eq!(leading_int(b"12abc"), (12, false));
        assert_eq!(leading_int(b"-12abc"), (-12, false));
        assert_eq!(leading_int(b"+7"), (7, true));
        assert_eq!(leading_int(b" 12"), (0, false));
        assert_eq!(leading_int(b""), (0, false));
        assert_eq!(leading_int(b"-"), (0, true));
        let _ = leading_int(b"99999999999999999999999999");
    }

    #[test]
    fn literal_ints() {
        assert_eq!(literal_int(" -3 "), Some(-3));
        assert_eq!(literal_int("- 3"), Some(-3));
        assert_eq!(literal_int("+0"), Some(0));
        assert_eq!(literal_int("3a"), None);
        assert_eq!(literal_int("-"), None);
        assert_eq!(literal_int(""), None);
        assert_eq!(literal_int("99999999999999999999"), None);
    }

    #[test]
    fn slices_share_or_degrade() {
        let v = TrValue::Str(ByteString::from("héllo"));
        let t = Text::of(&v).unwrap();
        assert_eq!(t.slice(0..1), TrValue::static_str("h"));
        assert!(matches!(t.slice(0..2), TrValue::Bin(_)));
        assert_eq!(t.slice(3..9), TrValue::Null);
        let other = String::from("ll");
        assert_eq!(t.sub(&other), TrValue::static_str("ll"));
        let b = TrValue::Bin(Bytes::from_static(b"a\xffb"));
        let t = Text::of(&b).unwrap();
        assert_eq!(t.slice(0..1), TrValue::static_str("a"));
        assert!(matches!(t.slice(1..3), TrValue::Bin(_)));
        assert_eq!(t.str(), None);
    }

    #[test]
    fn conversions() {
        assert_eq!(TrValue::from_vec(vec![0xff]).into_value(), Value::Null);
        assert_eq!(
            TrValue::from_vec(b"ok".to_vec()).into_value(),
            Value::str("ok")
        );
        assert_eq!(TrValue::from(Value::Int(3)), TrValue::Int(3));
        assert_eq!(
            TrValue::from_bytes(Bytes::from_static(b"x")),
            TrValue::static_str("x")
        );
        let t = TrValue::Int(-5);
        assert_eq!(Text::of(&t).unwrap().str(), Some("-5"));
    }
}
