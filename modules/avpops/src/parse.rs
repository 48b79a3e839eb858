//! The parameter languages of avpops' memory functions, as OpenSIPS 3.x reads them: AVP
//! names with `/flags`, push destinations, and `op/value/flags` operations. Every parser here
//! runs once when the script loads (a literal that does not parse is a load error at its
//! position) and again when a call gets its parameter from a variable.

use cfg::pv::PvSpec;

/// Flags after a `/` (`g`, `d`, `i`, `n`, `s`, `e`), as a set; which letters a parameter
/// accepts depends on the function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    /// `g`: every value, not only the newest.
    pub global: bool,
    /// `d`: the source value goes once used.
    pub delete: bool,
    /// `i`: compare ignoring case.
    pub icase: bool,
    /// `n`: cast to an integer (avp_copy) / must be an integer (is_avp_set).
    pub int: bool,
    /// `s`: cast to a string (avp_copy) / must be a string (is_avp_set).
    pub string: bool,
    /// `e`: empty (is_avp_set).
    pub empty: bool,
}

impl Flags {
    /// `text` read with the letters in `allowed` (either case).
    pub fn parse(text: &str, allowed: &str) -> Result<Flags, String> {
        let mut f = Flags::default();
        for c in text.trim().chars() {
            let l = c.to_ascii_lowercase();
            if !allowed.contains(l) {
                return Err(format!("unknown flag `{c}` (allowed: {allowed})"));
            }
            match l {
                'g' => f.global = true,
                'd' => f.delete = true,
                'i' => f.icase = true,
                'n' => f.int = true,
                's' => f.string = true,
                _ => f.empty = true,
            }
        }
        Ok(f)
    }
}

/// Which value of an AVP a spec names: `[n]` (0 is the newest) or none.
pub(crate) type AvpIndex = Option<i64>;

/// `$avp(name)`, `$avp(name)[n]` or `$(avp(name)[n])`: the name and the index.
pub(crate) fn avp(text: &str) -> Result<(String, AvpIndex), String> {
    let text = text.trim();
    let (spec, index) = match text.strip_prefix("$avp(") {
        Some(rest) => {
            let close = rest
                .find(')')
                .ok_or_else(|| format!("missing `)` in `{text}`"))?;
            let index = match &rest[close + 1..] {
                "" => None,
                tail => Some(
                    tail.strip_prefix('[')
                        .and_then(|t| t.strip_suffix(']'))
                        .ok_or_else(|| format!("`{text}` has text after the AVP"))?
                        .to_owned(),
                ),
            };
            (&rest[..close], index)
        }
        None => {
            let spec = cfg::pv::parse(text).map_err(|e| format!("`{text}`: {e}"))?;
            let Some(name) = spec.arg.filter(|_| spec.name == "avp") else {
                return Err(format!("`{text}` is not an AVP"));
            };
            if !spec.transforms.is_empty() {
                return Err(format!("`{text}` has transformations"));
            }
            let index = match spec.index {
                None => None,
                Some(cfg::pv::PvIndex::At(n)) => return avp_named(&name, Some(n)),
                Some(cfg::pv::PvIndex::All) => Some("*".to_owned()),
                Some(_) => return Err(format!("`{text}`: unsupported AVP index")),
            };
            return avp_named(&name, parse_index(index.as_deref())?);
        }
    };
    avp_named(spec, parse_index(index.as_deref())?)
}

fn parse_index(index: Option<&str>) -> Result<AvpIndex, String> {
    match index.map(str::trim) {
        None => Ok(None),
        // `*` counts as the newest value where a single one is meant.
        Some("*") => Ok(Some(0)),
        Some(n) => n
            .parse()
            .map(Some)
            .map_err(|_| format!("bad AVP index `[{n}]`")),
    }
}

fn avp_named(name: &str, index: AvpIndex) -> Result<(String, AvpIndex), String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("an AVP needs a name".into());
    }
    if name.contains('$') {
        return Err(format!("`$avp({name})`: rsips takes AVP names written out"));
    }
    Ok((name.to_owned(), index))
}

/// Splits `spec/flags` after the pseudo-variable at the start of `text` (whose own text may
/// hold a `/`, as in `$(avp(x){re.subst,/a/b/})`).
pub(crate) fn split_pv(text: &str) -> Result<(&str, Option<&str>), String> {
    let text = text.trim();
    let len = match text.strip_prefix("$avp(") {
        Some(rest) => rest.find('/').map_or(text.len(), |p| p + 5),
        None => cfg::pv::scan(text).ok_or_else(|| format!("`{text}` is not a variable"))?,
    };
    let (spec, rest) = text.split_at(len);
    match rest {
        "" => Ok((spec, None)),
        r => match r.strip_prefix('/') {
            Some(flags) => Ok((spec, Some(flags))),
            None => Err(format!("`{text}`: unexpected `{r}`")),
        },
    }
}

/// A variable that is not an AVP, or an AVP by name (its values are taken as a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Var {
    Avp(String),
    Pv(PvSpec),
}

/// Any readable pseudo-variable.
pub(crate) fn var(text: &str) -> Result<Var, String> {
    let text = text.trim();
    if text.starts_with("$avp(") || text.starts_with("$(avp(") {
        return avp(text).map(|(name, _)| Var::Avp(name));
    }
    let spec = cfg::pv::parse(text).map_err(|e| format!("`{text}`: {e}"))?;
    Ok(Var::Pv(spec))
}

/// What `avp_delete` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Avp(String),
    /// `*`, `a`, `s`, `i` (with script flags): every AVP.
    Every,
}

/// `avp_delete`'s `$avp(x)[/g]` or `a|*|s|i[flags]`; `true` with `/g`.
pub(crate) fn delete_target(text: &str) -> Result<(Target, bool), String> {
    let text = text.trim();
    let (spec, flags) = match text.split_once('/') {
        Some((s, f)) => (s.trim(), Some(f)),
        None => (text, None),
    };
    let all = match flags {
        Some(f) => Flags::parse(f, "g")?.global,
        None => false,
    };
    if spec.starts_with('$') {
        return Ok((Target::Avp(avp(spec)?.0), all));
    }
    let rest = spec
        .strip_prefix(['a', 'A', '*', 's', 'S', 'i', 'I'])
        .ok_or_else(|| format!("`{spec}` is neither $avp(name) nor a|*|s|i"))?;
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{spec}`: script flags are a number"));
    }
    Ok((Target::Every, true))
}

/// The Request-URI part `avp_pushto` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuriPart {
    Whole,
    User,
    Host,
}

/// Where `avp_pushto` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dest {
    Ruri(RuriPart),
    Du,
    Branch,
}

/// `$ru[/username|/domain]`, `$du` or `$br`.
pub(crate) fn push_dest(text: &str) -> Result<Dest, String> {
    let text = text.trim();
    let (spec, part) = match text.split_once('/') {
        Some((s, p)) => (s.trim(), Some(p.trim().to_ascii_lowercase())),
        None => (text, None),
    };
    let dest = match spec {
        "$ru" => Dest::Ruri(match part.as_deref() {
            None => RuriPart::Whole,
            Some("username") => RuriPart::User,
            Some("domain") => RuriPart::Host,
            Some(p) => return Err(format!("unknown `$ru` part `/{p}`")),
        }),
        "$du" => Dest::Du,
        "$br" => Dest::Branch,
        s if s.starts_with("$hdr(") => return Err("push to header is obsolete".into()),
        s => return Err(format!("unsupported destination `{s}`")),
    };
    if part.is_some() && !matches!(dest, Dest::Ruri(_)) {
        return Err(format!("`{spec}` takes no part"));
    }
    Ok(dest)
}

/// An operator of `avp_check` or `avp_op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Re,
    Fm,
    And,
    Or,
    Xor,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Not,
}

impl Op {
    const ALL: [(&'static str, Op); 17] = [
        ("eq", Op::Eq),
        ("ne", Op::Ne),
        ("lt", Op::Lt),
        ("le", Op::Le),
        ("gt", Op::Gt),
        ("ge", Op::Ge),
        ("re", Op::Re),
        ("fm", Op::Fm),
        ("and", Op::And),
        ("or", Op::Or),
        ("xor", Op::Xor),
        ("add", Op::Add),
        ("sub", Op::Sub),
        ("mul", Op::Mul),
        ("div", Op::Div),
        ("mod", Op::Mod),
        ("not", Op::Not),
    ];

    /// Whether `avp_check` takes it (the others are `avp_op`'s, besides and/or/xor).
    pub fn is_check(self) -> bool {
        !matches!(
            self,
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod | Op::Not
        )
    }

    /// Whether `avp_op` takes it.
    pub fn is_arith(self) -> bool {
        matches!(
            self,
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod | Op::Not | Op::And | Op::Or | Op::Xor
        )
    }

    /// Two or three letters, either case; OpenSIPS compares only the operator's own length,
    /// so `eqx` reads as `eq`.
    fn parse(text: &str) -> Result<Op, String> {
        if !(2..=3).contains(&text.len()) {
            return Err(format!("unknown operator `{text}`"));
        }
        let lower = text.to_ascii_lowercase();
        Op::ALL
            .iter()
            .find(|(name, _)| lower.starts_with(name))
            .map(|(_, op)| *op)
            .ok_or_else(|| format!("unknown operator `{text}`"))
    }
}

/// The value an operation compares or computes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Operand {
    Var(Var),
    Int(i64),
    Str(String),
}

/// `i:` values: a signed decimal or `0x` hexadecimal.
pub(crate) fn int_value(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let n = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse().ok()?
        }
        None => return None,
    };
    Some(if neg { -n } else { n })
}

/// `$pvar`, `i:int`, `s:str` or a bare string.
fn operand(text: &str) -> Result<Operand, String> {
    if text.starts_with('$') {
        return var(text).map(Operand::Var);
    }
    if let Some(i) = text.strip_prefix("i:").or_else(|| text.strip_prefix("I:")) {
        return int_value(i)
            .map(Operand::Int)
            .ok_or_else(|| format!("`{i}` is not an integer"));
    }
    let s = text
        .strip_prefix("s:")
        .or_else(|| text.strip_prefix("S:"))
        .unwrap_or(text);
    Ok(Operand::Str(s.to_owned()))
}

/// `op/value[/flags]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpValue {
    pub op: Op,
    pub value: Operand,
    pub flags: Flags,
}

/// Splits `value[/flags]`: the flags are the text after the last `/` when it holds only
/// letters from `allowed` (a regular expression may hold a `/` of its own).
fn split_value_flags<'t>(text: &'t str, allowed: &str) -> (&'t str, &'t str) {
    if text.starts_with('$')
        && let Ok((spec, flags)) = split_pv(text)
    {
        return (spec, flags.unwrap_or(""));
    }
    match text.rsplit_once('/') {
        Some((v, f)) if f.chars().all(|c| allowed.contains(c.to_ascii_lowercase())) => (v, f),
        _ => (text, ""),
    }
}

/// `avp_check`'s second parameter.
pub(crate) fn check_op(text: &str) -> Result<OpValue, String> {
    let (op, rest) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not op/value"))?;
    let op = Op::parse(op)?;
    if !op.is_check() {
        return Err(format!("`{}` is not a check operator", op_name(op)));
    }
    let (value, flags) = split_value_flags(rest, "gi");
    let value = operand(value)?;
    match (&value, op) {
        (Operand::Str(re), Op::Re) => {
            regex::RegexBuilder::new(re)
                .case_insensitive(true)
                .multi_line(true)
                .build()
                .map_err(|e| format!("bad regular expression `{re}`: {e}"))?;
        }
        (_, Op::Re) => return Err("`re` takes a constant regular expression".into()),
        _ => {}
    }
    Ok(OpValue {
        op,
        value,
        flags: Flags::parse(flags, "gi")?,
    })
}

/// `avp_op`'s second parameter: the value is a variable or `i:int`.
pub(crate) fn arith_op(text: &str) -> Result<OpValue, String> {
    let (op, rest) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not op/value"))?;
    let op = Op::parse(op)?;
    if !op.is_arith() {
        return Err(format!("`{}` is not an arithmetic operator", op_name(op)));
    }
    let (value, flags) = split_value_flags(rest, "gd");
    let value = match operand(value)? {
        Operand::Str(s) => return Err(format!("value must be int (`i:{s}`)")),
        v => v,
    };
    Ok(OpValue {
        op,
        value,
        flags: Flags::parse(flags, "gd")?,
    })
}

fn op_name(op: Op) -> &'static str {
    Op::ALL
        .iter()
        .find(|(_, o)| *o == op)
        .map_or("?", |(n, _)| n)
}

/// `avp_op`'s first parameter: `$avp(src)[/$avp(dst)]`.
pub(crate) fn src_dst(text: &str) -> Result<(String, Option<String>), String> {
    let (src, dst) = split_pv(text)?;
    let src = avp(src)?.0;
    let dst = dst.map(|d| avp(d).map(|(n, _)| n)).transpose()?;
    Ok((src, dst))
}

/// `avp_subst`'s first parameter: `$avp(src)[/$avp(dst)][/flags]`.
pub(crate) fn subst_avps(text: &str) -> Result<(String, Option<String>, Flags), String> {
    let (src, rest) = split_pv(text)?;
    let src = avp(src)?.0;
    let Some(rest) = rest else {
        return Ok((src, None, Flags::default()));
    };
    if !rest.trim_start().starts_with('$') {
        return Ok((src, None, Flags::parse(rest, "gd")?));
    }
    let (dst, flags) = split_pv(rest)?;
    let flags = Flags::parse(flags.unwrap_or(""), "gd")?;
    Ok((src, Some(avp(dst)?.0), flags))
}

/// `$avp(x)[/flags]` with the letters in `allowed`, and the index.
pub(crate) fn avp_flags(text: &str, allowed: &str) -> Result<(String, AvpIndex, Flags), String> {
    let (spec, flags) = split_pv(text)?;
    let (name, index) = avp(spec)?;
    Ok((name, index, Flags::parse(flags.unwrap_or(""), allowed)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn avp_specs() {
        assert_eq!(avp("$avp(a)").unwrap(), ("a".into(), None));
        assert_eq!(avp("$avp(a)[2]").unwrap(), ("a".into(), Some(2)));
        assert_eq!(avp("$(avp(a)[1])").unwrap(), ("a".into(), Some(1)));
        assert_eq!(avp("$avp(a)[*]").unwrap(), ("a".into(), Some(0)));
        assert!(avp("$var(a)").is_err());
        assert!(avp("$avp()").is_err());
        assert!(avp("$avp($var(x))").is_err());
        assert!(avp("$avp(a)x").is_err());
    }

    #[test]
    fn flags_and_splits() {
        let f = Flags::parse("Gd", "gd").unwrap();
        assert!(f.global && f.delete && !f.icase);
        assert!(Flags::parse("x", "gd").is_err());
        assert_eq!(split_pv("$avp(a)/g").unwrap(), ("$avp(a)", Some("g")));
        assert_eq!(split_pv("$ru").unwrap(), ("$ru", None));
        assert_eq!(
            src_dst("$avp(a)/$avp(b)").unwrap(),
            ("a".into(), Some("b".into()))
        );
        let (s, d, f) = subst_avps("$avp(a)/$avp(b)/gd").unwrap();
        assert_eq!((s.as_str(), d.as_deref()), ("a", Some("b")));
        assert!(f.global && f.delete);
        let (s, d, f) = subst_avps("$avp(a)/g").unwrap();
        assert_eq!((s.as_str(), d), ("a", None));
        assert!(f.global && !f.delete);
        let (n, i, f) = avp_flags("$avp(x)[1]/e", "esn").unwrap();
        assert_eq!((n.as_str(), i), ("x", Some(1)));
        assert!(f.empty);
    }

    #[test]
    fn delete_targets() {
        assert_eq!(
            delete_target("$avp(x)/g").unwrap(),
            (Target::Avp("x".into()), true)
        );
        assert_eq!(
            delete_target("$avp(x)").unwrap(),
            (Target::Avp("x".into()), false)
        );
        assert_eq!(delete_target("s3").unwrap(), (Target::Every, true));
        assert_eq!(delete_target("*").unwrap(), (Target::Every, true));
        assert!(delete_target("q").is_err());
        assert!(delete_target("$avp(x)/d").is_err());
    }

    #[test]
    fn push_destinations() {
        assert_eq!(push_dest("$ru").unwrap(), Dest::Ruri(RuriPart::Whole));
        assert_eq!(
            push_dest("$ru/Username").unwrap(),
            Dest::Ruri(RuriPart::User)
        );
        assert_eq!(push_dest("$ru/domain").unwrap(), Dest::Ruri(RuriPart::Host));
        assert_eq!(push_dest("$du").unwrap(), Dest::Du);
        assert_eq!(push_dest("$br").unwrap(), Dest::Branch);
        assert_eq!(
            push_dest("$hdr(X)").unwrap_err(),
            "push to header is obsolete"
        );
        assert!(push_dest("$var(x)").is_err());
        assert!(push_dest("$du/username").is_err());
    }

    #[test]
    fn operators() {
        assert_eq!(Op::parse("EQ").unwrap(), Op::Eq);
        assert_eq!(Op::parse("eqx").unwrap(), Op::Eq);
        assert_eq!(Op::parse("xor").unwrap(), Op::Xor);
        assert!(Op::parse("e").is_err());
        assert!(Op::parse("plus").is_err());
        assert!(check_op("add/i:1").is_err());
        assert!(arith_op("eq/i:1").is_err());
        assert_eq!(arith_op("and/i:1").unwrap().op, Op::And);
    }

    #[test]
    fn values() {
        // A bare value is a string, even when it looks like a number.
        assert_eq!(
            check_op("lt/345").unwrap().value,
            Operand::Str("345".into())
        );
        assert_eq!(check_op("lt/i:0x1f").unwrap().value, Operand::Int(31));
        assert_eq!(check_op("eq/i:-4").unwrap().value, Operand::Int(-4));
        assert_eq!(
            check_op("eq/s:i:1").unwrap().value,
            Operand::Str("i:1".into())
        );
        let v = check_op("eq/$avp(b)/gi").unwrap();
        assert_eq!(v.value, Operand::Var(Var::Avp("b".into())));
        assert!(v.flags.global && v.flags.icase);
        let v = check_op("re/^sip:a/b.*$/i").unwrap();
        assert_eq!(v.value, Operand::Str("^sip:a/b.*$".into()));
        assert!(v.flags.icase);
        assert!(check_op("re/(/").is_err());
        assert!(check_op("re/$var(x)").is_err());
        assert!(check_op("eq/i:zz").is_err());
        // avp_op wants an integer.
        assert!(arith_op("add/345").is_err());
        assert_eq!(arith_op("add/i:345/d").unwrap().value, Operand::Int(345));
        assert!(arith_op("add/i:345/d").unwrap().flags.delete);
        assert!(matches!(
            arith_op("sub/$var(n)").unwrap().value,
            Operand::Var(Var::Pv(_))
        ));
        assert_eq!(int_value("0X10"), Some(16));
        assert_eq!(int_value("12a"), None);
        assert_eq!(int_value(""), None);
    }
}
