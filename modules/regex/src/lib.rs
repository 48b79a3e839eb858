//! The OpenSIPS `regex` module: `pcre_match(string, regex[, match])` (the matched part into
//! `match`, cleared when nothing matches) and `pcre_match_group(string[, group])` against the
//! groups of the `file` parameter, with the `pcre_caseless`, `pcre_multiline`, `pcre_dotall`
//! and `pcre_extended` options; MI `regex:reload`, `regex:match`, `regex:match_group`
//! (`regex_reload`, `regex_match`, `regex_match_group`).
//!
//! The file holds groups, each opened by a `[n]` line; lines starting with a blank or `#` are
//! left out; a group is the alternation of its lines, and groups are numbered in file order
//! from 0 whatever their `[n]` says, as in OpenSIPS. The expressions are compiled by Rust's
//! `regex` crate: PCRE's back-references and look-around are refused (at start for the file,
//! as a failed match at run time).
#![forbid(unsafe_code)]

use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};
use regex::{Regex, RegexBuilder};

const ROUTES: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::ONREPLY)
    .or(Routes::BRANCH)
    .or(Routes::LOCAL);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "regex",
    functions: &[
        FnSpec {
            name: "pcre_match",
            params: &[(Param::Str, false), (Param::Str, false), (Param::Var, true)],
            routes: ROUTES,
            run: pcre_match,
        },
        FnSpec {
            name: "pcre_match_group",
            params: &[(Param::Str, false), (Param::Int, true)],
            routes: ROUTES,
            run: pcre_match_group,
        },
    ],
    params: &[
        ("file", ParamType::Str),
        ("max_groups", ParamType::Int),
        ("group_max_size", ParamType::Int),
        ("pcre_caseless", ParamType::Int),
        ("pcre_multiline", ParamType::Int),
        ("pcre_dotall", ParamType::Int),
        ("pcre_extended", ParamType::Int),
    ],
};

#[derive(Debug, Clone, Copy, Default)]
struct Options {
    caseless: bool,
    multiline: bool,
    dotall: bool,
    extended: bool,
}

#[derive(Debug)]
struct State {
    options: Options,
    file: Option<String>,
    max_groups: usize,
    group_max_size: usize,
    groups: RwLock<Arc<Vec<Regex>>>,
}

static STATE: OnceLock<State> = OnceLock::new();

fn compile(o: Options, text: &str) -> Result<Regex, String> {
    RegexBuilder::new(text)
        .case_insensitive(o.caseless)
        .multi_line(o.multiline)
        .dot_matches_new_line(o.dotall)
        .ignore_whitespace(o.extended)
        .build()
        .map_err(|e| format!("bad regular expression `{text}`: {e}"))
}

/// The groups of a file's text: each the alternation of its lines.
fn groups(o: Options, text: &str, max: usize, max_size: usize) -> Result<Vec<Regex>, String> {
    let mut sources: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with([' ', '\t', '\r', '#']) {
            continue;
        }
        if line.starts_with('[') && line.trim_end().ends_with(']') {
            if sources.len() == max {
                return Err(format!("more than max_groups ({max}) groups"));
            }
            sources.push(String::new());
            continue;
        }
        let Some(group) = sources.last_mut() else {
            return Err(format!("line {}: an expression before any [group]", n + 1));
        };
        group.push_str(if group.is_empty() { "(" } else { "|" });
        group.push('(');
        group.push_str(line);
        group.push(')');
        if group.len() > max_size {
            return Err(format!(
                "a group is larger than group_max_size ({max_size})"
            ));
        }
    }
    sources
        .iter()
        .map(|g| compile(o, &format!("{g})")))
        .collect()
}

fn load(st: &State) -> Result<Vec<Regex>, String> {
    let Some(path) = &st.file else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("regex: cannot read the file `{path}`: {e}"))?;
    groups(st.options, &text, st.max_groups, st.group_max_size)
        .map_err(|e| format!("regex: {path}: {e}"))
}

/// Reads the parameters and compiles the groups; a bad file stops the start.
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("regex") {
        return Ok(());
    }
    let on = |n: &str| script.modparam_int("regex", n).unwrap_or(0) != 0;
    let size = |n: &str, d: i64| {
        usize::try_from(script.modparam_int("regex", n).unwrap_or(d)).unwrap_or(0)
    };
    let st = State {
        options: Options {
            caseless: on("pcre_caseless"),
            multiline: on("pcre_multiline"),
            dotall: on("pcre_dotall"),
            extended: on("pcre_extended"),
        },
        file: script.modparam_str("regex", "file"),
        max_groups: size("max_groups", 20),
        group_max_size: size("group_max_size", 8192),
        groups: RwLock::default(),
    };
    let g = load(&st)?;
    *st.groups.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(g);
    let _ = STATE.set(st);
    Ok(())
}

fn options() -> Options {
    STATE.get().map_or(Options::default(), |s| s.options)
}

fn pcre_match(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let subject = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let pattern = args
        .get(1)
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let re = match compile(options(), &pattern) {
        Ok(re) => re,
        Err(e) => {
            f.log.log(-1, &format!("pcre_match: {e}\n"));
            return -1;
        }
    };
    match re.find(&subject) {
        Some(m) => {
            f.set_output(2, Value::from(m.as_str().to_owned()));
            1
        }
        None => {
            f.set_output(2, Value::Null);
            -1
        }
    }
}

/// Whether `subject` matches group `group` (-1: no such group or no file).
fn match_group(subject: &str, group: i64) -> Option<bool> {
    let st = STATE.get()?;
    st.file.as_ref()?;
    let groups = Arc::clone(&st.groups.read().unwrap_or_else(PoisonError::into_inner));
    let re = groups.get(usize::try_from(group).ok()?)?;
    Some(re.is_match(subject))
}

fn pcre_match_group(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let subject = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let group = args.get(1).and_then(Value::as_int).unwrap_or(0);
    match match_group(&subject, group) {
        Some(true) => 1,
        Some(false) => -1,
        None => {
            f.log.log(
                -1,
                &format!("pcre_match_group: no group {group} (is the file parameter set?)\n"),
            );
            -2
        }
    }
}

fn verdict(m: bool) -> serde_json::Value {
    serde_json::json!(if m { "Match" } else { "Not Match" })
}

/// The MI commands.
pub fn commands(mi: &mut mi::Mi) {
    mi.add(mi::Command::new(
        "regex:reload",
        &["regex_reload"],
        &[&[]],
        |_| {
            let Some(st) = STATE.get() else {
                return Err(mi::MiError::new(500, "Failed to reload"));
            };
            match load(st) {
                Ok(g) => {
                    *st.groups.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(g);
                    Ok(serde_json::json!("OK"))
                }
                Err(e) => {
                    log::error!("{e}");
                    Err(mi::MiError::new(500, "Failed to reload"))
                }
            }
        },
    ));
    mi.add(mi::Command::new(
        "regex:match",
        &["regex_match"],
        &[&["string", "pcre_regex"]],
        |p| {
            let s = p.str("string")?.unwrap_or_default();
            let re = p.str("pcre_regex")?.unwrap_or_default();
            let re = compile(options(), &re).map_err(|_| mi::MiError::new(500, "Bad regex"))?;
            Ok(verdict(re.is_match(&s)))
        },
    ));
    mi.add(mi::Command::new(
        "regex:match_group",
        &["regex_match_group"],
        &[&["string", "group"]],
        |p| {
            let s = p.str("string")?.unwrap_or_default();
            let g = p.int("group")?.unwrap_or(0);
            match match_group(&s, g) {
                Some(m) => Ok(verdict(m)),
                None => Err(mi::MiError::new(500, "Error matching group")),
            }
        },
    ));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn groups_are_numbered_in_file_order_and_alternate_their_lines() {
        let text =
            "### agents\n[0]\n# soft\n^Twinkle/1\n^X-Lite\n\n[5]\n^190\\.232\\.250\\.226$\n [7]\n";
        let g = groups(Options::default(), text, 20, 8192).unwrap();
        assert_eq!(g.len(), 2);
        assert!(g[0].is_match("X-Lite 4.0"));
        assert!(!g[0].is_match("Bria"));
        assert!(g[1].is_match("190.232.250.226"));
        assert!(groups(Options::default(), "^x\n", 20, 8192).is_err());
        assert!(groups(Options::default(), "[0]\n[1]\n", 1, 8192).is_err());
        assert!(groups(Options::default(), "[0]\n(unclosed\n", 20, 8192).is_err());
        let ci = Options {
            caseless: true,
            ..Options::default()
        };
        assert!(groups(ci, "[0]\n^twinkle\n", 20, 8192).unwrap()[0].is_match("TWINKLE"));
    }
}
