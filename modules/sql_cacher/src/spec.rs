//! The `cache_table` parameter: `name=value` fields split by the spec delimiter, in a fixed
//! order (id, db_url, cachedb_url, table, key; then, each optional but in this order,
//! key_type, columns, on_demand, expire), as OpenSIPS reads them.

/// The type of the key column, as the query for one key gives it to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    String,
    Int,
}

/// One caching entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub id: String,
    pub db_url: String,
    pub cachedb_url: String,
    pub table: String,
    pub key: String,
    pub key_type: KeyType,
    /// `None`: every column of the table.
    pub columns: Option<Vec<String>>,
    pub on_demand: bool,
    /// Seconds an on-demand row stays cached (0: until a reload).
    pub expire: u64,
}

/// The default `expire` of on-demand rows: one hour.
pub const DEFAULT_ON_DEMAND_EXPIRE: u64 = 3600;

/// The most columns an entry may cache (OpenSIPS keeps their types in a 64-bit mask).
const MAX_COLUMNS: usize = 64;

/// Parses one `cache_table` value; the error says which field is wrong.
pub fn parse(text: &str, spec_delim: char, columns_delim: char) -> Result<Spec, String> {
    let mut fields = text
        .trim()
        .split(spec_delim)
        .map(|f| f.trim_matches([' ', '\t', '\r', '\n']))
        .filter(|f| !f.is_empty())
        .peekable();
    let mut next = |name: &str| -> Result<String, String> {
        let field = fields
            .next()
            .ok_or_else(|| format!("expected `{name}=` (missing field)"))?;
        value_of(field, name)
    };
    let id = next("id")?;
    let with_id = |e: String| format!("cache entry `{id}`: {e}");
    let db_url = next("db_url").map_err(with_id)?;
    let cachedb_url = next("cachedb_url").map_err(with_id)?;
    let table = next("table").map_err(with_id)?;
    let key = next("key").map_err(with_id)?;
    let mut spec = Spec {
        id: id.clone(),
        db_url,
        cachedb_url,
        table,
        key,
        key_type: KeyType::String,
        columns: None,
        on_demand: false,
        expire: DEFAULT_ON_DEMAND_EXPIRE,
    };
    let rest: Vec<&str> = fields.collect();
    let mut order = ["key_type", "columns", "on_demand", "expire"].iter();
    for field in rest {
        let name = field.split_once('=').map_or(field, |(n, _)| n);
        // Each optional field may appear once, after the ones before it in the order.
        if !order.any(|o| *o == name) {
            return Err(with_id(format!(
                "unknown or misplaced parameter `{field}` (the optional ones are key_type, columns, on_demand, expire, in that order)"
            )));
        }
        let value = value_of(field, name).map_err(with_id)?;
        match name {
            "key_type" => {
                spec.key_type = match value.as_str() {
                    "string" => KeyType::String,
                    "int" => KeyType::Int,
                    other => {
                        return Err(with_id(format!(
                            "unsupported key_type `{other}` (string or int)"
                        )));
                    }
                }
            }
            "columns" => spec.columns = Some(columns(&value, columns_delim).map_err(with_id)?),
            "on_demand" => {
                spec.on_demand = match value.parse::<u64>() {
                    Ok(n) => n != 0,
                    Err(_) => {
                        return Err(with_id(format!(
                            "on_demand must be an integer, not `{value}`"
                        )));
                    }
                }
            }
            _ => {
                spec.expire = value.parse::<u64>().map_err(|_| {
                    with_id(format!("expire must be a number of seconds, not `{value}`"))
                })?
            }
        }
    }
    Ok(spec)
}

/// The value of `name=value`, refusing another name or an empty value.
fn value_of(field: &str, name: &str) -> Result<String, String> {
    match field.split_once('=') {
        Some((n, v)) if n == name => {
            if v.is_empty() {
                Err(format!("expected a value for `{name}`"))
            } else {
                Ok(v.to_owned())
            }
        }
        Some(_) => Err(format!("expected `{name}=` instead of `{field}`")),
        None => Err(format!("expected `=` after `{name}` in `{field}`")),
    }
}

fn columns(value: &str, delim: char) -> Result<Vec<String>, String> {
    let cols: Vec<String> = value.split(delim).map(str::to_owned).collect();
    if cols.iter().any(String::is_empty) {
        return Err(format!("expected a column name in `columns={value}`"));
    }
    if cols.len() > MAX_COLUMNS {
        return Err(format!("too many columns, at most {MAX_COLUMNS}"));
    }
    Ok(cols)
}

/// A one-character delimiter parameter (`spec_delimiter`, `pvar_delimiter`,
/// `columns_delimiter`).
pub fn delimiter(param: &str, value: Option<String>, default: char) -> Result<char, String> {
    let Some(v) = value else { return Ok(default) };
    let mut chars = v.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(format!(
            "sql_cacher: {param} must be a single character, not \"{}\"",
            v.escape_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_spec() {
        let s = parse(
            "id=cnam\ndb_url=text:///db\ncachedb_url=local://\ntable=t\nkey=caller\n\
             key_type=int\ncolumns=a b c\non_demand=1\nexpire=5",
            '\n',
            ' ',
        )
        .unwrap();
        assert_eq!(s.id, "cnam");
        assert_eq!(s.key_type, KeyType::Int);
        assert_eq!(s.columns.as_deref().unwrap(), ["a", "b", "c"]);
        assert!(s.on_demand);
        assert_eq!(s.expire, 5);
    }

    #[test]
    fn the_shortest_spec_and_other_delimiters() {
        let s = parse(
            "id=x;db_url=sqlite:///a;cachedb_url=local://;table=t;key=k",
            ';',
            ',',
        )
        .unwrap();
        assert_eq!(
            (s.key_type, s.columns, s.on_demand, s.expire),
            (KeyType::String, None, false, 3600)
        );
        let s = parse(
            "id=x;db_url=u;cachedb_url=local://;table=t;key=k;columns=a,b",
            ';',
            ',',
        )
        .unwrap();
        assert_eq!(s.columns.unwrap(), ["a", "b"]);
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse("id=x\ntable=t", '\n', ' ').unwrap_err();
        assert!(e.contains("db_url"), "{e}");
        let e = parse("id=x\ndb_url=u\ncachedb_url=c\ntable=t", '\n', ' ').unwrap_err();
        assert!(e.contains("`x`") && e.contains("key"), "{e}");
        let base = "id=x\ndb_url=u\ncachedb_url=c\ntable=t\nkey=k\n";
        let e = parse(&format!("{base}key_type=float"), '\n', ' ').unwrap_err();
        assert!(e.contains("key_type"), "{e}");
        let e = parse(&format!("{base}on_demand=1\ncolumns=a"), '\n', ' ').unwrap_err();
        assert!(e.contains("misplaced"), "{e}");
        let e = parse(&format!("{base}colour=red"), '\n', ' ').unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let e = parse(&format!("{base}expire=soon"), '\n', ' ').unwrap_err();
        assert!(e.contains("expire"), "{e}");
        let e = parse(&format!("{base}columns=a  b"), '\n', ' ').unwrap_err();
        assert!(e.contains("column name"), "{e}");
    }

    #[test]
    fn delimiters_are_one_character() {
        assert_eq!(delimiter("p", None, ':'), Ok(':'));
        assert_eq!(delimiter("p", Some("|".into()), ':'), Ok('|'));
        assert!(delimiter("p", Some("::".into()), ':').is_err());
    }
}
