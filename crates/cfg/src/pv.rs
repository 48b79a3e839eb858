//! Pseudo-variable syntax (`$ru`, `$var(x)`, `$(hdr(Via)[-1]{s.len})`, `$(<request>ru)`) and
//! format strings with PVs inside (`"$fu/$tu/$ru"`), as OpenSIPS 4.0 writes them (digest §1.8–1.9).
//! Only syntax lives here; the engine resolves names.

/// An index into a multi-value PV: `[0]`, `[-1]`, `[*]`, `[append]` or `[$var(i)]`; and the
/// SDP line writes `[insert]` / `[insertAfter]` (OpenSIPS 4.0 sdp_ops, any case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PvIndex {
    At(i64),
    All,
    Append,
    Var(Box<PvSpec>),
    /// `[insert]`: a new line before the selected one.
    Insert,
    /// `[insertAfter]`: a new line after the selected one.
    InsertAfter,
}

/// One `{class.op,args}` transformation, arguments kept raw (their splitting is op-specific:
/// `{s.select,1,,}` has `,` as an argument and `re.subst` carries its own delimiters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformSpec {
    pub name: String,
    /// Everything after the first `,` up to the closing `}`; `None` without arguments.
    pub args: Option<String>,
}

/// A parsed pseudo-variable reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvSpec {
    /// `ru`, `var`, `hdr`, `T_reply_code`, `msg.branch.uri` …
    pub name: String,
    /// The text inside `name(...)`, e.g. `Via` for `$hdr(Via)`.
    pub arg: Option<String>,
    pub index: Option<PvIndex>,
    pub transforms: Vec<TransformSpec>,
    /// `request` / `reply` for `$(<request>ru)`.
    pub context: Option<String>,
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
}

/// Length of the PV starting at `s[0] == '$'`, or `None` if none starts there.
pub fn scan(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.first() != Some(&b'$') {
        return None;
    }
    if b.get(1) == Some(&b'(') {
        return balanced(b, 1).map(|e| e + 1);
    }
    let mut i = 1;
    while b.get(i).is_some_and(|&c| is_name_char(c)) {
        i += 1;
    }
    // A trailing '.' ends a sentence in format strings ("at $ru.") and is not part of the name.
    while i > 1 && b.get(i - 1) == Some(&b'.') {
        i -= 1;
    }
    if i == 1 {
        return None;
    }
    if b.get(i) == Some(&b'(') {
        return balanced(b, i).map(|e| e + 1);
    }
    Some(i)
}

/// Index of the `)` matching the `(` at `open`; parentheses inside `{...}` do not count.
fn balanced(b: &[u8], open: usize) -> Option<usize> {
    let (mut depth, mut braces) = (0usize, 0usize);
    let mut i = open;
    while let Some(&c) = b.get(i) {
        match c {
            b'{' => braces += 1,
            b'}' => braces = braces.saturating_sub(1),
            b'(' if braces == 0 => depth += 1,
            b')' if braces == 0 => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b'\n' => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Parses the text of one PV (as found by [`scan`]).
pub fn parse(raw: &str) -> Result<PvSpec, String> {
    let body = raw
        .strip_prefix('$')
        .ok_or("a pseudo-variable starts with `$`")?;
    if let Some(inner) = body.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        return parse_long_form(inner);
    }
    let (name, arg) = split_name_arg(body)?;
    Ok(PvSpec {
        name,
        arg,
        index: None,
        transforms: Vec::new(),
        context: None,
    })
}

fn split_name_arg(s: &str) -> Result<(String, Option<String>), String> {
    match s.find('(') {
        Some(p) => {
            let name = &s[..p];
            let arg = s[p + 1..]
                .strip_suffix(')')
                .ok_or("missing `)` in pseudo-variable")?;
            check_name(name)?;
            Ok((name.to_owned(), Some(arg.to_owned())))
        }
        None => {
            check_name(s)?;
            Ok((s.to_owned(), None))
        }
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(is_name_char) {
        return Err(format!("bad pseudo-variable name `{name}`"));
    }
    Ok(())
}

/// `$( [<ctx>] name[(arg)] [index] {tr}... )`
fn parse_long_form(inner: &str) -> Result<PvSpec, String> {
    let mut rest = inner.trim();
    let mut context = None;
    if let Some(r) = rest.strip_prefix('<') {
        let end = r.find('>').ok_or("missing `>` after the context")?;
        context = Some(r[..end].to_owned());
        rest = &r[end + 1..];
    }
    let name_end = rest.find(['(', '[', '{']).unwrap_or(rest.len());
    let mut end = name_end;
    if rest[name_end..].starts_with('(') {
        end = balanced(rest.as_bytes(), name_end).ok_or("missing `)` in pseudo-variable")? + 1;
    }
    let (name, arg) = split_name_arg(&rest[..end])?;
    rest = &rest[end..];
    let mut index = None;
    if let Some(r) = rest.strip_prefix('[') {
        let close = r.find(']').ok_or("missing `]` after the index")?;
        index = Some(parse_index(r[..close].trim())?);
        rest = &r[close + 1..];
    }
    let mut transforms = Vec::new();
    while let Some(r) = rest.strip_prefix('{') {
        let close = matching_brace(r).ok_or("missing `}` after a transformation")?;
        transforms.push(parse_transform(&r[..close])?);
        rest = &r[close + 1..];
    }
    if !rest.trim().is_empty() {
        return Err(format!("unexpected `{}` in pseudo-variable", rest.trim()));
    }
    Ok(PvSpec {
        name,
        arg,
        index,
        transforms,
        context,
    })
}

/// Position of the `}` closing a transformation; nested `{...}` (PVs with transformations used as
/// arguments) are skipped.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.bytes().enumerate() {
        match c {
            b'{' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn parse_index(s: &str) -> Result<PvIndex, String> {
    match s {
        "*" => Ok(PvIndex::All),
        "append" => Ok(PvIndex::Append),
        _ if s.eq_ignore_ascii_case("insert") => Ok(PvIndex::Insert),
        _ if s.eq_ignore_ascii_case("insertAfter") => Ok(PvIndex::InsertAfter),
        _ if s.starts_with('$') => Ok(PvIndex::Var(Box::new(parse(s)?))),
        _ => s
            .parse()
            .map(PvIndex::At)
            .map_err(|_| format!("bad index `{s}`")),
    }
}

fn parse_transform(s: &str) -> Result<TransformSpec, String> {
    let (name, args) = match s.split_once(',') {
        Some((n, a)) => (n, Some(a.to_owned())),
        None => (s, None),
    };
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return Err(format!("bad transformation `{s}`"));
    }
    Ok(TransformSpec {
        name: name.to_owned(),
        args,
    })
}

/// A piece of a format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FmtPart {
    Text(String),
    /// A PV and its byte offset in the string (for diagnostics).
    Pv(PvSpec, usize),
}

/// Splits a format string into literal text and PVs. `$$` is a literal `$`; a `$` that starts
/// no PV stays literal, as in OpenSIPS.
pub fn parse_format(s: &str) -> Result<Vec<FmtPart>, (usize, String)> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if rest.starts_with("$$") {
            text.push('$');
            i += 2;
            continue;
        }
        if let Some(n) = scan(rest) {
            if !text.is_empty() {
                parts.push(FmtPart::Text(std::mem::take(&mut text)));
            }
            let spec = parse(&rest[..n]).map_err(|e| (i, e))?;
            parts.push(FmtPart::Pv(spec, i));
            i += n;
            continue;
        }
        let c = rest.chars().next().unwrap_or('$');
        text.push(c);
        i += c.len_utf8();
    }
    if !text.is_empty() {
        parts.push(FmtPart::Text(text));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanning() {
        assert_eq!(scan("$ru==x"), Some(3));
        assert_eq!(scan("$var(x) = 1"), Some(7));
        assert_eq!(scan("$(hdr(Via)[-1]{s.len}) x"), Some(22));
        assert_eq!(scan("$fu/$tu"), Some(3));
        assert_eq!(scan("$ru.\\n"), Some(3));
        assert_eq!(scan("$T_reply_code>"), Some(13));
        assert_eq!(scan("$(hdr(X){re.subst,/(a)/b/}) "), Some(27));
        assert_eq!(scan("$ "), None);
        assert_eq!(scan("$(unclosed"), None);
    }

    #[test]
    fn parsing() {
        let p = parse("$var(x)").unwrap();
        assert_eq!((p.name.as_str(), p.arg.as_deref()), ("var", Some("x")));
        let p = parse("$(hdr(Via)[-1]{s.len}{s.substr,1,0})").unwrap();
        assert_eq!(p.name, "hdr");
        assert_eq!(p.index, Some(PvIndex::At(-1)));
        assert_eq!(p.transforms.len(), 2);
        assert_eq!(p.transforms[1].args.as_deref(), Some("1,0"));
        let p = parse("$(avp(a)[*])").unwrap();
        assert_eq!(p.index, Some(PvIndex::All));
        let p = parse("$(<request>ru)").unwrap();
        assert_eq!(
            (p.context.as_deref(), p.name.as_str()),
            (Some("request"), "ru")
        );
        let p = parse("$(avp(a)[$var(i)])").unwrap();
        assert!(matches!(p.index, Some(PvIndex::Var(_))));
        let p = parse("$(var(x){s.select,1,,})").unwrap();
        assert_eq!(p.transforms[0].args.as_deref(), Some("1,,"));
        assert!(parse("$(hdr(Via)[x])").is_err());
        let p = parse("$(sdp.line([12])[insert])").unwrap();
        assert_eq!(
            (p.name.as_str(), p.arg.as_deref(), p.index),
            ("sdp.line", Some("[12]"), Some(PvIndex::Insert))
        );
        let p = parse("$(sdp.stream(audio[0]/a=rtpmap[1])[insertAfter])").unwrap();
        assert_eq!(p.arg.as_deref(), Some("audio[0]/a=rtpmap[1]"));
        assert_eq!(p.index, Some(PvIndex::InsertAfter));
        let p = parse("$(sdp.session([0])[INSERTafter])").unwrap();
        assert_eq!(p.index, Some(PvIndex::InsertAfter));
        assert!(parse("$(ru{s.len)").is_err());
    }

    #[test]
    fn format_strings() {
        let f = parse_format("Attempt [$fu/$tu] cost $$5 at $ru.\n").unwrap();
        assert_eq!(f.len(), 7);
        assert_eq!(f[0], FmtPart::Text("Attempt [".into()));
        assert!(matches!(&f[1], FmtPart::Pv(p, 9) if p.name == "fu"));
        assert_eq!(f[4], FmtPart::Text("] cost $5 at ".into()));
        assert_eq!(f[6], FmtPart::Text(".\n".into()));
        assert_eq!(
            parse_format("100$ off").unwrap(),
            vec![FmtPart::Text("100$ off".into())]
        );
    }
}
