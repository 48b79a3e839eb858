//! Script values: what a pseudo-variable, a transformation or an expression yields.

use std::fmt;

use bytestring::ByteString;

/// A script value. OpenSIPS PVs are NULL, an integer or a string; a string that is also a number
/// keeps both views there, here it is a `Str` that [`Value::as_int`] can read.
/// `Str` is a cheaply clonable UTF-8 buffer so values taken from a message need not be copied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Value {
    #[default]
    Null,
    Int(i64),
    Str(ByteString),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(ByteString::from(s))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The integer view: an `Int`, or a `Str` holding an optionally signed decimal number.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.trim().parse().ok(),
            Value::Null => None,
        }
    }

    /// The string view (`Null` prints as `<null>`, as OpenSIPS' xlog does).
    pub fn to_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Value::Null => "<null>".into(),
            Value::Int(i) => i.to_string().into(),
            Value::Str(s) => (&**s).into(),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::str(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(ByteString::from(s))
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}
