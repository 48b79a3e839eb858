//! Lowering `$json(name/key[i]….keys)` paths: the variable's slot, each step (a key or an
//! index, written or read from a variable), the iteration kind.

use super::*;
use crate::script::ir::Dyn;
use crate::script::json::{Format, Iter, JsonPath, Step};

/// The json PVs and how each prints.
pub(super) fn format_of(name: &str) -> Option<Format> {
    Some(match name {
        "json" => Format::Spaced,
        "json_compact" => Format::Compact,
        "json_pretty" => Format::Pretty,
        "json_compact_noescape" => Format::CompactNoEscape,
        _ => return None,
    })
}

impl Lower<'_> {
    /// `$json(...)` as read or assigned. `[*]` on the PV (`$(json(x)[*])`) marks a read for a
    /// `for` loop; any other index is refused, as OpenSIPS does at start.
    pub(super) fn json_path(&mut self, spec: &PvSpec, format: Format, span: Span) -> L<JsonPath> {
        let all = match &spec.index {
            None => false,
            Some(cfg::pv::PvIndex::All) if format == Format::Spaced => true,
            Some(_) => {
                return self.fail(
                    Diagnostic::error(format!("`${}` takes no index", spec.name), span).with_help(
                        "only `$(json(x)[*])` in a `for` loop, or `[i]` inside the path",
                    ),
                );
            }
        };
        let text = spec.arg.as_deref().unwrap_or_default();
        let bad = |why: &str| Diagnostic::error(format!("bad json path `{text}`: {why}"), span);
        let end_of_name = text.find(['/', '[', '.']).unwrap_or(text.len());
        let name = text[..end_of_name].trim();
        if name.is_empty() {
            return self.fail(bad("no variable name"));
        }
        let n = self.names.json.len();
        let slot = *self.names.json.entry(name.to_owned()).or_insert(n);
        let mut steps = Vec::new();
        let mut iter = Iter::Values;
        let mut rest = &text[end_of_name..];
        while let Some(c) = rest.chars().next() {
            match c {
                '/' => {
                    let body = &rest[1..];
                    let (key, used) = if body.starts_with('$') {
                        let n = cfg::pv::scan(body).ok_or(()).or_else(|()| {
                            self.fail(bad("a variable in the path does not parse"))
                        })?;
                        let inner =
                            cfg::pv::parse(&body[..n]).map_err(|e| self.diags.push(bad(&e)))?;
                        (Dyn::Var(Box::new(self.read(&inner, span)?)), n)
                    } else {
                        let n = body.find(['/', '[', '.']).unwrap_or(body.len());
                        (Dyn::Static(body[..n].to_owned()), n)
                    };
                    steps.push(Step::Key(key));
                    rest = &body[used..];
                }
                '[' => {
                    let Some(close) = rest.find(']') else {
                        return self.fail(bad("`[` without `]`"));
                    };
                    let inside = rest[1..close].trim();
                    let step = if inside.is_empty() {
                        Step::Append
                    } else if inside.starts_with('$') {
                        let inner = cfg::pv::parse(inside).map_err(|e| self.diags.push(bad(&e)))?;
                        Step::Index(Dyn::Var(Box::new(self.read(&inner, span)?)))
                    } else {
                        match inside.replace(' ', "").parse::<i64>() {
                            Ok(i) => Step::Index(Dyn::Static(i)),
                            Err(_) => return self.fail(bad("an index is a number")),
                        }
                    };
                    steps.push(step);
                    rest = &rest[close + 1..];
                }
                '.' => {
                    iter = match &rest[1..] {
                        "keys" => Iter::Keys,
                        "values" => Iter::Values,
                        _ => {
                            return self
                                .fail(bad("Bad iterator type (`.keys` or `.values`, last)"));
                        }
                    };
                    rest = "";
                }
                _ => return self.fail(bad("a step starts with `/`, `[` or `.`")),
            }
        }
        Ok(JsonPath {
            slot,
            steps,
            iter,
            format,
            all,
        })
    }
}
