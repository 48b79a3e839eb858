//! The OpenSIPS `dialplan` module: translation rules from the `dialplan` table of any
//! database (string or regular-expression matches, case-sensitive or not, a `subst`-style
//! rewrite or a fixed replacement, a time recurrence, attributes), `dp_translate` and the MI
//! commands `dialplan:reload` and `dialplan:translate`.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex, OnceLock};

use ::mi::{Command, Mi, MiError};
use db::{Connection, Value as DbValue};
use engine::timerec::TimeRec;
use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};
use regex::{Regex, RegexBuilder};
use serde_json::json;

/// The version of the `dialplan` table (OpenSIPS 4.0's).
pub const TABLE_VERSION: i64 = 5;

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "dialplan",
    functions: &[FnSpec {
        name: "dp_translate",
        params: &[
            (Param::Int, false),
            (Param::Str, false),
            (Param::Var, true),
            (Param::Var, true),
            (Param::Str, true),
        ],
        routes: Routes::REQUEST
            .or(Routes::FAILURE)
            .or(Routes::LOCAL)
            .or(Routes::BRANCH)
            .or(Routes::STARTUP)
            .or(Routes::TIMER)
            .or(Routes::EVENT),
        run: dp_translate,
    }],
    params: &[
        ("db_url", ParamType::Str),
        ("table_name", ParamType::Str),
        ("partition", ParamType::Str),
        ("dpid_col", ParamType::Str),
        ("pr_col", ParamType::Str),
        ("match_op_col", ParamType::Str),
        ("match_exp_col", ParamType::Str),
        ("match_flags_col", ParamType::Str),
        ("subst_exp_col", ParamType::Str),
        ("repl_exp_col", ParamType::Str),
        ("timerec_col", ParamType::Str),
        ("disabled_col", ParamType::Str),
        ("attrs_col", ParamType::Str),
    ],
};

/// How a rule recognises its input.
#[derive(Debug, Clone)]
enum Matcher {
    Equal { text: String, nocase: bool },
    Regex(Regex),
}

/// One translation rule.
#[derive(Debug, Clone)]
pub struct Rule {
    id: i64,
    dpid: i64,
    priority: i64,
    matcher: Matcher,
    subst: Option<Regex>,
    repl: Option<String>,
    time: Option<TimeRec>,
    attrs: Option<String>,
}

impl Rule {
    fn matches(&self, input: &str, now: i64) -> bool {
        let hit = match &self.matcher {
            Matcher::Equal { text, nocase: true } => text.eq_ignore_ascii_case(input),
            Matcher::Equal {
                text,
                nocase: false,
            } => text == input,
            Matcher::Regex(re) => re.is_match(input),
        };
        hit && self.time.as_ref().is_none_or(|t| t.matches(now))
    }

    /// The output for `input`: the replacement with `\N` taken from the subst expression's
    /// groups, the replacement as it is without one, the input itself without a
    /// replacement; `None` when the subst expression does not match (OpenSIPS: an error).
    fn translate(&self, input: &str) -> Option<String> {
        let Some(repl) = &self.repl else {
            return Some(input.to_owned());
        };
        let Some(subst) = &self.subst else {
            return Some(repl.clone());
        };
        let caps = subst.captures(input)?;
        let mut out = String::new();
        let mut chars = repl.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek().and_then(|d| d.to_digit(10))) {
                ('\\', Some(n)) => {
                    chars.next();
                    out.push_str(caps.get(n as usize).map_or("", |m| m.as_str()));
                }
                (c, _) => out.push(c),
            }
        }
        Some(out)
    }
}

fn rule_of(r: &[DbValue]) -> Result<Rule, String> {
    let int = |i: usize| r.get(i).and_then(DbValue::as_int);
    let text = |i: usize| {
        r.get(i)
            .and_then(DbValue::as_text)
            .filter(|s| !s.is_empty())
    };
    let exp = text(4).ok_or("no match_exp")?;
    let nocase = int(5).unwrap_or(0) & 1 != 0;
    let regex = |e: &str, nocase: bool| {
        RegexBuilder::new(e)
            .case_insensitive(nocase)
            .build()
            .map_err(|err| format!("bad regular expression \"{e}\": {err}"))
    };
    let matcher = match int(3).unwrap_or(0) {
        0 => Matcher::Equal { text: exp, nocase },
        1 => Matcher::Regex(regex(&exp, nocase)?),
        op => return Err(format!("match_op {op} is not 0 (string) or 1 (regex)")),
    };
    Ok(Rule {
        id: int(0).unwrap_or(0),
        dpid: int(1).ok_or("no dpid")?,
        priority: int(2).unwrap_or(0),
        matcher,
        subst: text(6).map(|e| regex(&e, false)).transpose()?,
        repl: text(7),
        time: text(8).map(|t| TimeRec::parse(&t)).transpose()?,
        attrs: text(10),
    })
}

/// The rules and where they come from.
#[derive(Debug)]
pub struct Plan {
    db: Arc<dyn Connection>,
    table: String,
    columns: Vec<String>,
    rules: Mutex<Arc<Vec<Rule>>>,
}

impl Plan {
    /// Reads the table again and swaps it in; a failed read keeps the old rules.
    pub fn reload(&self) -> Result<usize, String> {
        db::check_version(self.db.as_ref(), &self.table, TABLE_VERSION)
            .map_err(|e| format!("dialplan: {e}"))?;
        let cols: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        let rows = self
            .db
            .query(&self.table, &cols, &[])
            .map_err(|e| format!("dialplan: {e}"))?;
        let mut rules = Vec::new();
        for r in rows {
            if r.get(9).and_then(DbValue::as_int).unwrap_or(0) != 0 {
                continue;
            }
            match rule_of(&r) {
                Ok(rule) => rules.push(rule),
                Err(e) => log::error!(
                    "dialplan: rule {}: {e}; skipped",
                    r.first().map_or(String::new(), ToString::to_string)
                ),
            }
        }
        // Lower priority first, then the smaller id, as OpenSIPS picks.
        rules.sort_by_key(|r| (r.priority, r.id));
        let n = rules.len();
        *self
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(rules);
        Ok(n)
    }

    /// The translation of `input` by dialplan `dpid`: (output, attributes), or `Err` with
    /// OpenSIPS' reason.
    pub fn translate(&self, dpid: i64, input: &str) -> Result<(String, String), &'static str> {
        let rules = Arc::clone(
            &self
                .rules
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if !rules.iter().any(|r| r.dpid == dpid) {
            return Err("No information available for dpid");
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let rule = rules
            .iter()
            .find(|r| r.dpid == dpid && r.matches(input, now))
            .ok_or("No translation")?;
        let out = rule.translate(input).ok_or("No translation")?;
        Ok((out, rule.attrs.clone().unwrap_or_default()))
    }
}

fn plan_cell() -> &'static OnceLock<Plan> {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    &PLAN
}

/// Opens the database and loads the rules, as the module does when OpenSIPS starts.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("dialplan") {
        return Ok(());
    }
    if !script.modparam_strs("dialplan", "partition").is_empty() {
        return Err("dialplan: partitions are not supported by rsips yet".into());
    }
    let param = |n: &str, d: &str| {
        script
            .modparam_str("dialplan", n)
            .unwrap_or_else(|| d.to_owned())
    };
    let url = param("db_url", "mysql://opensips:opensipsrw@localhost/opensips");
    let db = db::open_for("dialplan", &url, |m| script.loads(m), options)?;
    let plan = Plan {
        db,
        table: param("table_name", "dialplan"),
        columns: [
            ("id_col", "id"),
            ("dpid_col", "dpid"),
            ("pr_col", "pr"),
            ("match_op_col", "match_op"),
            ("match_exp_col", "match_exp"),
            ("match_flags_col", "match_flags"),
            ("subst_exp_col", "subst_exp"),
            ("repl_exp_col", "repl_exp"),
            ("timerec_col", "timerec"),
            ("disabled_col", "disabled"),
            ("attrs_col", "attrs"),
        ]
        .iter()
        .map(|(p, d)| param(p, d))
        .collect(),
        rules: Mutex::default(),
    };
    let n = plan.reload()?;
    log::info!("dialplan: {n} rules loaded");
    let _ = plan_cell().set(plan);
    Ok(())
}

/// `dp_translate(id, input[, $out[, $attrs[, partition]]])`: 1 with the output and the
/// rule's attributes stored, -1 when no rule of the dialplan translates the input.
pub fn dp_translate(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(plan) = plan_cell().get() else {
        return -1;
    };
    if args
        .get(4)
        .filter(|v| !v.is_null())
        .is_some_and(|p| !p.to_text().is_empty() && p.to_text() != "default")
    {
        f.log.log(-1, "dialplan: no such partition\n");
        return -1;
    }
    let Some(dpid) = args.first().and_then(Value::as_int) else {
        return -1;
    };
    let input = args
        .get(1)
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    match plan.translate(dpid, &input) {
        Ok((out, attrs)) => {
            f.set_output(2, Value::from(out));
            f.set_output(3, Value::from(attrs));
            1
        }
        Err(_) => -1,
    }
}

/// `dialplan:reload` (`dp_reload`) and `dialplan:translate` (`dp_translate`).
pub fn commands(mi: &mut Mi) {
    mi.add(Command::new(
        "dialplan:reload",
        &["dp_reload"],
        &[&[], &["partition"]],
        |_| {
            let plan = plan_cell()
                .get()
                .ok_or_else(|| MiError::new(404, "'default' partition not found"))?;
            plan.reload()
                .map_err(|e| MiError::new(500, "Failed to reload").with_data(e))?;
            Ok(json!("OK"))
        },
    ));
    mi.add(Command::new(
        "dialplan:translate",
        &["dp_translate"],
        &[&["dpid", "input"], &["dpid", "input", "partition"]],
        |p| {
            let plan = plan_cell()
                .get()
                .ok_or_else(|| MiError::new(400, "Partition not found"))?;
            let dpid = p
                .int("dpid")
                .map_err(|_| MiError::new(404, "Wrong id parameter"))?
                .ok_or_else(|| MiError::new(404, "Empty id parameter"))?;
            let input = p
                .str("input")?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| MiError::new(404, "Empty input parameter"))?;
            let (out, attrs) = plan
                .translate(dpid, &input)
                .map_err(|why| MiError::new(404, why))?;
            Ok(json!({"Output": out, "ATTRIBUTES": attrs}))
        },
    ));
}
