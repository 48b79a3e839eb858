//! permissions' rule files (`hosts.allow`-like): `allow_routing([basename])`,
//! `allow_register(basename)` and `allow_uri(basename, uri)`.
//!
//! A line is `from_list [EXCEPT from_list] : uri_list [EXCEPT uri_list]`; a list is `ALL` or
//! comma-separated POSIX extended regular expressions (in double quotes or not), matched
//! case-insensitively anywhere in the text; `#` starts a comment. A pair is allowed when a
//! rule of the `.allow` file matches it, else denied when one of the `.deny` file does, else
//! allowed. A missing file is an empty one (no files: everything allowed). Files are read
//! once, the first time a basename is used (the default ones at start), named relative to
//! the configuration file's directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use engine::{FnCtx, Value};
use regex::{Regex, RegexBuilder};

/// One side of a rule: `None` is ALL.
#[derive(Debug, Clone)]
struct Side {
    any: Option<Vec<Regex>>,
    except: Vec<Regex>,
}

impl Side {
    fn matches(&self, text: &str) -> bool {
        let hit = self
            .any
            .as_ref()
            .is_none_or(|l| l.iter().any(|r| r.is_match(text)));
        hit && !self.except.iter().any(|r| r.is_match(text))
    }
}

#[derive(Debug, Clone)]
struct Rule {
    left: Side,
    right: Side,
}

/// The rules of one file (empty when there is no such file).
#[derive(Debug, Clone, Default)]
pub struct Rules(Vec<Rule>);

impl Rules {
    fn matches(&self, left: &str, right: &str) -> bool {
        self.0
            .iter()
            .any(|r| r.left.matches(left) && r.right.matches(right))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn regex(text: &str) -> Result<Regex, String> {
    RegexBuilder::new(text)
        .case_insensitive(true)
        .build()
        .map_err(|e| format!("bad expression \"{text}\": {e}"))
}

/// A comma-separated list of expressions (quotes optional, commas inside quotes kept).
fn list(text: &str) -> Result<Vec<Regex>, String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut flush = |w: &mut String| -> Result<(), String> {
        let t = w.trim();
        let t = t.strip_prefix('"').unwrap_or(t);
        let t = t.strip_suffix('"').unwrap_or(t);
        if t.is_empty() {
            return Err("an empty expression".into());
        }
        out.push(regex(t)?);
        w.clear();
        Ok(())
    };
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.push(c);
            }
            ',' if !quoted => flush(&mut word)?,
            c => word.push(c),
        }
    }
    flush(&mut word)?;
    Ok(out)
}

/// `list [EXCEPT list]`.
fn side(text: &str) -> Result<Side, String> {
    let (main, except) = match text.find(" EXCEPT ") {
        Some(at) => (&text[..at], list(&text[at + 8..])?),
        None => (text, Vec::new()),
    };
    let main = main.trim();
    Ok(Side {
        any: if main == "ALL" {
            None
        } else {
            Some(list(main)?)
        },
        except,
    })
}

/// One line; `None` for a blank or comment line.
fn line(text: &str) -> Option<Result<Rule, String>> {
    // The rule ends at a `#` outside quotes; its sides are split at the last `:` outside them.
    let (mut quoted, mut colon, mut end) = (false, None, text.len());
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => colon = Some(i),
            '#' if !quoted => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let rule = &text[..end];
    if rule.trim().is_empty() {
        return None;
    }
    let Some(colon) = colon.filter(|c| *c < end && *c > 0) else {
        return Some(Err("no `:` between the two sides".into()));
    };
    Some((|| {
        Ok(Rule {
            left: side(&rule[..colon])?,
            right: side(&rule[colon + 1..])?,
        })
    })())
}

/// The rules of a file's text; a bad line is an error naming it.
pub fn parse(text: &str, name: &Path) -> Result<Rules, String> {
    let mut rules = Vec::new();
    for (n, l) in text.lines().enumerate() {
        match line(l) {
            None => {}
            Some(Ok(r)) => rules.push(r),
            Some(Err(e)) => return Err(format!("{}:{}: {e}", name.display(), n + 1)),
        }
    }
    Ok(Rules(rules))
}

/// A file's rules, empty when it does not exist.
fn read(path: &Path) -> Result<Rules, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log::info!(
                "permissions: {} not found => empty rule set",
                path.display()
            );
            Ok(Rules::default())
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

type Pair = Arc<(Rules, Rules)>;

fn cache() -> &'static Mutex<HashMap<(PathBuf, PathBuf), Pair>> {
    static CACHE: OnceLock<Mutex<HashMap<(PathBuf, PathBuf), Pair>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The (allow, deny) rules of two files, read on first use.
fn rules(allow: PathBuf, deny: PathBuf) -> Result<Pair, String> {
    let key = (allow, deny);
    if let Some(p) = cache()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return Ok(Arc::clone(p));
    }
    let pair = Arc::new((read(&key.0)?, read(&key.1)?));
    cache()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, Arc::clone(&pair));
    Ok(pair)
}

/// The rules of `basename` (`.allow`/`.deny` with the suffix parameters), or the default
/// files without one.
fn rules_of(f: &FnCtx<'_>, basename: Option<&str>) -> Result<Pair, String> {
    let s = f.script;
    let param = |n: &str, d: &str| s.modparam_str("permissions", n).unwrap_or_else(|| d.into());
    match basename {
        Some(b) => rules(
            s.cfg_relative(&format!("{b}{}", param("allow_suffix", ".allow"))),
            s.cfg_relative(&format!("{b}{}", param("deny_suffix", ".deny"))),
        ),
        None => rules(
            s.cfg_relative(&param("default_allow_file", "permissions.allow")),
            s.cfg_relative(&param("default_deny_file", "permissions.deny")),
        ),
    }
}

/// Reads the default files at start, so that a bad one stops it as in OpenSIPS.
pub fn start(script: &engine::Script) -> Result<(), String> {
    let param = |n: &str, d: &str| {
        script
            .modparam_str("permissions", n)
            .unwrap_or_else(|| d.into())
    };
    rules(
        script.cfg_relative(&param("default_allow_file", "permissions.allow")),
        script.cfg_relative(&param("default_deny_file", "permissions.deny")),
    )
    .map(|_| ())
    .map_err(|e| format!("permissions: {e}"))
}

/// `sip:user@host` of a URI (the form rules are matched against).
fn plain(uri: &str) -> Option<String> {
    let u = sip::Uri::parse(uri).ok()?;
    let host = u.host()?.as_str().to_owned();
    Some(match u.user().filter(|x| !x.is_empty()) {
        Some(user) => format!("sip:{user}@{host}"),
        None => format!("sip:{host}"),
    })
}

fn check_all_branches(f: &FnCtx<'_>) -> bool {
    f.script
        .modparam_int("permissions", "check_all_branches")
        .unwrap_or(1)
        != 0
}

fn text_arg(args: &[Value], i: usize) -> Option<String> {
    args.get(i)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
        .filter(|t| !t.is_empty())
}

/// The rules a function checks against and the URI of the header it matches them with
/// (From, or To for a REGISTER), or the code it returns at once: 1 when there are no rules
/// (control off), -1 when they cannot be read or the header is bad.
fn prepare(
    f: &mut FnCtx<'_>,
    name: &str,
    args: &[Value],
    header: fn(&sip::SipMessage) -> sip::Result<sip::NameAddr<'_>>,
) -> Result<(Pair, String), i64> {
    let basename = text_arg(args, 0);
    let rules = rules_of(f, basename.as_deref()).map_err(|e| {
        f.log.log(-1, &format!("{name}: {e}\n"));
        -1
    })?;
    if rules.0.is_empty() && rules.1.is_empty() {
        return Err(1);
    }
    let uri = header(&f.msg.msg)
        .map(|h| h.uri().as_str().to_owned())
        .map_err(|_| -1)?;
    Ok((rules, uri))
}

/// `allow_routing([basename])`: the From URI against the Request-URI (and, with
/// `check_all_branches`, every other branch's).
pub fn allow_routing(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (rules, from) = match prepare(f, "allow_routing", args, sip::SipMessage::from_header) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (allow, deny) = (&rules.0, &rules.1);
    let Some(ruri) = f.msg.ruri().and_then(plain) else {
        return -1;
    };
    let all = check_all_branches(f);
    if !allow.matches(&from, &ruri) {
        if deny.matches(&from, &ruri) {
            return -1;
        }
        if !all {
            return 1;
        }
    } else if !all {
        return 1;
    }
    for b in &f.msg.branches {
        let Some(uri) = plain(&b.uri) else { return -1 };
        if !allow.matches(&from, &uri) && deny.matches(&from, &uri) {
            return -1;
        }
    }
    1
}

/// `allow_register(basename)`: the To URI against each Contact of a REGISTER.
pub fn allow_register(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (rules, to) = match prepare(f, "allow_register", args, sip::SipMessage::to_header) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (allow, deny) = (&rules.0, &rules.1);
    let contacts = match f.msg.msg.contacts() {
        Ok(sip::headers::Contacts::List(l)) => l
            .iter()
            .map(|c| c.uri().as_str().to_owned())
            .collect::<Vec<_>>(),
        // No Contact (a query) or `*`: nothing is written, nothing to refuse.
        Ok(sip::headers::Contacts::Star) => return 1,
        Err(_) => return -1,
    };
    for c in contacts {
        let Some(uri) = plain(&c) else { return -1 };
        if !allow.matches(&to, &uri) && deny.matches(&to, &uri) {
            return -1;
        }
    }
    1
}

/// `allow_uri(basename, uri)`: the From URI against the given URI.
pub fn allow_uri(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (rules, from) = match prepare(f, "allow_uri", args, sip::SipMessage::from_header) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (allow, deny) = (&rules.0, &rules.1);
    let uri = text_arg(args, 1).unwrap_or_default();
    if allow.matches(&from, &uri) {
        1
    } else if deny.matches(&from, &uri) {
        -1
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_files_syntax() {
        let text = "# comment\n\
            ALL : \"^sip:361[0-9]*@abc\\.com$\" EXCEPT \"^sip:361[0-9]*3@abc\\.com$\", \"^sip:361[0-9]*4@abc\\.com$\"\n\
            \n\
            \"^sip:3677[0-9]*@abc\\.com$\" :  \"^sip:361[0-9]*@abc\\.com$\"  # trailing\n\
            \"^sip:eve@\" EXCEPT \"^sip:eve@good\" : ALL\n";
        let r = parse(text, Path::new("t.allow")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.0.len(), 3);
        assert!(r.matches("sip:anyone@x", "sip:3611@abc.com"));
        assert!(
            r.matches("sip:anyone@x", "sip:3611@ABC.com"),
            "case-insensitive"
        );
        assert!(!r.matches("sip:anyone@x", "sip:3613@abc.com"), "EXCEPT");
        assert!(!r.matches("sip:anyone@x", "sip:3614@abc.com"), "EXCEPT");
        assert!(r.matches("sip:eve@bad", "sip:x@y"));
        assert!(!r.matches("sip:eve@good", "sip:x@y"));
        assert!(!r.matches("sip:bob@x", "sip:5@abc.com"));
        // Unquoted expressions (without a `:`, which would split the rule there) and a comma
        // inside quotes.
        let r =
            parse("ALL : a@, \"^sip:b{1,2}@\"\n", Path::new("t")).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.matches("sip:x@y", "sip:bb@z") && r.matches("sip:x@y", "sip:a@z"));
        assert!(!r.matches("sip:x@y", "sip:c@z"));
        for bad in ["ALL ALL\n", "ALL : \"[\"\n", ": ALL\n"] {
            let e = parse(bad, Path::new("f.deny")).unwrap_err();
            assert!(e.starts_with("f.deny:1: "), "{e}");
        }
        assert!(
            plain("sip:alice:pw@example.com:5070;transport=tcp?x=y").as_deref()
                == Some("sip:alice@example.com")
        );
    }
}
