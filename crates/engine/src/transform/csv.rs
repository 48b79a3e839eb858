//! `csv.count` and `csv.value,i` over one RFC 4180 record, as OpenSIPS' CSV parser reads it:
//! fields split at `,` and are not trimmed; a `"` opens a quoted field only at the start of a
//! field (`""` inside is a quote) and the closing quote must end the field; one trailing CRLF
//! is dropped; any byte outside printable ASCII, or an unterminated quote, fails. A trailing
//! `,` makes an empty last field, except right after a quoted field (OpenSIPS stops there).
//! An empty input is NULL.

use super::data::{Text, TrValue};

/// One field: a piece of the input, or an unescaped copy of a quoted field with `""` in it.
enum Field<'a> {
    Slice(&'a str),
    Owned(String),
}

fn parse(s: &str) -> Option<Vec<Field<'_>>> {
    let s = s.strip_suffix("\r\n").unwrap_or(s);
    let b = s.as_bytes();
    if b.iter().any(|&c| !(0x20..=0x7e).contains(&c)) {
        return None;
    }
    let mut fields = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b',' => {
                fields.push(Field::Slice(s.get(start..i)?));
                start = i + 1;
            }
            b'"' if i == start => {
                // Find the closing quote, skipping doubled ones.
                let mut p = i + 1;
                let close = loop {
                    match b.get(p) {
                        None => return None,
                        Some(b'"') if b.get(p + 1) == Some(&b'"') => p += 2,
                        Some(b'"') => break p,
                        Some(_) => p += 1,
                    }
                };
                let inner = s.get(i + 1..close)?;
                fields.push(if inner.contains('"') {
                    Field::Owned(inner.replace("\"\"", "\""))
                } else {
                    Field::Slice(inner)
                });
                match b.get(close + 1) {
                    None => return Some(fields),
                    // OpenSIPS stops right there when that comma is the last byte, so
                    // `"a",` has one field while `a,` has two.
                    Some(b',') if close + 2 == b.len() => return Some(fields),
                    Some(b',') => {
                        start = close + 2;
                        i = close + 2;
                        continue;
                    }
                    Some(_) => return None,
                }
            }
            _ => {}
        }
        i += 1;
    }
    fields.push(Field::Slice(s.get(start..)?));
    Some(fields)
}

fn text_record<'a>(t: &'a Text<'_>) -> Option<Vec<Field<'a>>> {
    t.str().filter(|s| !s.is_empty()).and_then(parse)
}

pub(super) fn count(t: &Text<'_>) -> TrValue {
    text_record(t).map_or(TrValue::Null, |f| TrValue::Int(f.len() as i64))
}

/// The `i`-th field, negative from the end; NULL when out of range.
pub(super) fn value(t: &Text<'_>, i: i64) -> TrValue {
    let Some(fields) = text_record(t) else {
        return TrValue::Null;
    };
    let idx = if i < 0 {
        usize::try_from(i.unsigned_abs())
            .ok()
            .and_then(|back| fields.len().checked_sub(back))
    } else {
        usize::try_from(i).ok()
    };
    match idx.and_then(|k| fields.get(k)) {
        Some(Field::Slice(x)) => t.sub(x),
        Some(Field::Owned(x)) => TrValue::string(x.clone()),
        None => TrValue::Null,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::Value;
    use crate::transform::TransformOp;

    use crate::transform::testing::{ap, s};

    #[test]
    fn count_and_value() {
        let r = "a, b,\"c,\"\"d\"\"\",,e";
        assert_eq!(ap("csv.count", r, &[]), Value::Int(5));
        assert_eq!(ap("csv.value", r, &["0"]), s("a"));
        assert_eq!(ap("csv.value", r, &["1"]), s(" b")); // not trimmed
        assert_eq!(ap("csv.value", r, &["2"]), s("c,\"d\""));
        assert_eq!(ap("csv.value", r, &["3"]), s(""));
        assert_eq!(ap("csv.value", r, &["-1"]), s("e"));
        assert_eq!(ap("csv.value", r, &["-5"]), s("a"));
        assert_eq!(ap("csv.value", r, &["5"]), Value::Null);
        assert_eq!(ap("csv.value", r, &["-6"]), Value::Null);
        assert_eq!(ap("csv.value", r, &["x"]), Value::Null);
    }

    #[test]
    fn edges() {
        assert_eq!(ap("csv.count", "a,b,", &[]), Value::Int(3));
        assert_eq!(ap("csv.count", "\"a\",", &[]), Value::Int(1));
        assert_eq!(ap("csv.count", "\"a\",b", &[]), Value::Int(2));
        assert_eq!(ap("csv.count", "\"a\"", &[]), Value::Int(1));
        assert_eq!(ap("csv.count", "x", &[]), Value::Int(1));
        assert_eq!(ap("csv.count", "a,b\r\n", &[]), Value::Int(2));
        assert_eq!(ap("csv.value", "a,b\r\n", &["1"]), s("b"));
        assert_eq!(ap("csv.value", "a\"b,c", &["0"]), s("a\"b")); // quote not at field start
        assert_eq!(ap("csv.count", "\"a", &[]), Value::Null);
        assert_eq!(ap("csv.count", "\"a\"b", &[]), Value::Null);
        assert_eq!(ap("csv.count", "a\tb", &[]), Value::Null);
        assert_eq!(ap("csv.count", "é", &[]), Value::Null);
        assert_eq!(ap("csv.count", "", &[]), Value::Null);
        assert_eq!(
            TransformOp::CsvCount.apply(&Value::Int(12), &[]),
            Value::Int(1)
        );
    }
}
