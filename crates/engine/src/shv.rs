//! cfgutils' shared variables (`$shv(name)`): one value per name for every worker, an integer
//! or a string, set by the script, by `modparam("cfgutils", "shvset", …)` and by the MI
//! command `shv_set`. A name the script uses exists from the start with the integer 0, as in
//! OpenSIPS (which creates it when the script is parsed).

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use crate::Value;

static SHV: RwLock<BTreeMap<String, Value>> = RwLock::new(BTreeMap::new());

/// Makes `name` exist (0) if it does not yet.
pub fn declare(name: &str) {
    let mut all = SHV.write().unwrap_or_else(PoisonError::into_inner);
    if !all.contains_key(name) {
        all.insert(name.to_owned(), Value::Int(0));
    }
}

/// The value of `name`: 0 when it was never set.
pub fn get(name: &str) -> Value {
    SHV.read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
        .cloned()
        .unwrap_or(Value::Int(0))
}

/// Whether `name` exists (MI `shv_get`/`shv_set` answer "Not found" otherwise).
pub fn exists(name: &str) -> bool {
    SHV.read()
        .unwrap_or_else(PoisonError::into_inner)
        .contains_key(name)
}

/// Sets `name`; NULL stores the integer 0 (OpenSIPS resets the variable).
pub fn set(name: &str, value: Value) {
    let value = if value.is_null() {
        Value::Int(0)
    } else {
        value
    };
    SHV.write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name.to_owned(), value);
}

/// Every variable, by name.
pub fn all() -> Vec<(String, Value)> {
    SHV.read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Parses a `shvset` value, `name=i:123` or `name=s:text` (`shvset` / `varset` syntax).
pub fn parse_set(text: &str) -> Result<(String, Value), String> {
    let (name, rest) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not name=type:value"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("`{text}` has no variable name"));
    }
    let (kind, value) = rest
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not name=type:value"))?;
    match kind.trim() {
        "s" | "S" => Ok((name.to_owned(), Value::str(value))),
        "i" | "I" => value
            .trim()
            .parse::<i64>()
            .map(|n| (name.to_owned(), Value::Int(n)))
            .map_err(|_| format!("`{value}` is not an integer")),
        other => Err(format!("unknown type `{other}` (i or s)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shvset_values_parse_as_integers_or_strings() {
        assert_eq!(
            parse_set("port=i:5060"),
            Ok(("port".into(), Value::Int(5060)))
        );
        assert_eq!(
            parse_set("host=s:a=b:c"),
            Ok(("host".into(), Value::str("a=b:c")))
        );
        assert!(parse_set("x=i:abc").is_err());
        assert!(parse_set("x=q:1").is_err());
        assert!(parse_set("novalue").is_err());
        assert!(parse_set("=i:1").is_err());
    }

    #[test]
    fn variables_are_shared_and_start_at_zero() {
        declare("t_shv_a");
        assert_eq!(get("t_shv_a"), Value::Int(0));
        set("t_shv_a", Value::str("x"));
        declare("t_shv_a");
        assert_eq!(get("t_shv_a"), Value::str("x"));
        set("t_shv_a", Value::Null);
        assert_eq!(get("t_shv_a"), Value::Int(0));
        assert!(exists("t_shv_a") && !exists("t_shv_never"));
    }
}
