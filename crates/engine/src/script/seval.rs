//! `{s.eval}`: a value taken as a format string and expanded when the transformation runs.

use super::exec::Run;
use crate::value::Value;

impl Run<'_> {
    /// `{s.eval}`: the value taken as a format string and expanded now — message PVs, `$var`,
    /// `$avp`, with their transformations — as `xlog` prints them (NULL as `<null>`); a PV this
    /// cannot read prints as NULL; a string that is not a valid format is NULL.
    pub(crate) fn eval_format(&self, text: &str) -> Value {
        self.eval_format_at(text, 0)
    }

    fn eval_format_at(&self, text: &str, depth: usize) -> Value {
        let Ok(parts) = cfg::pv::parse_format(text) else {
            return Value::Null;
        };
        let mut out = String::new();
        for part in parts {
            match part {
                cfg::pv::FmtPart::Text(t) => out.push_str(&t),
                cfg::pv::FmtPart::Pv(spec, _) => {
                    out.push_str(&self.eval_pv(&spec, depth).to_text());
                }
            }
        }
        Value::from(out)
    }

    /// A PV named in an `s.eval` format (or in one of its transformations' arguments), read and
    /// transformed now. Nested `s.eval`s stop at a small depth (NULL beyond it).
    pub(crate) fn eval_pv(&self, spec: &cfg::pv::PvSpec, depth: usize) -> Value {
        const MAX_DEPTH: usize = 8;
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        let mut plain = spec.clone();
        plain.transforms.clear();
        let mut v = if let Some(core) = crate::pv::CorePv::resolve(&plain) {
            self.core_read(&core)
        } else {
            match (plain.name.as_str(), plain.arg.as_deref()) {
                ("var", Some(name)) => self
                    .script
                    .names
                    .vars
                    .get(name)
                    .and_then(|&i| self.worker.vars.get(i))
                    .cloned()
                    .unwrap_or_default(),
                ("avp", Some(name)) => self
                    .script
                    .names
                    .avps
                    .get(name)
                    .and_then(|&i| self.ctx.avps.get(i))
                    .and_then(|stack| stack.last())
                    .cloned()
                    .unwrap_or_default(),
                _ => Value::Null,
            }
        };
        for t in &spec.transforms {
            let (name, index) = match crate::transform::split_inline_index(&t.name) {
                Some((n, i)) => (n, Some(i.to_owned())),
                None => (t.name.to_ascii_lowercase(), None),
            };
            let mut args = crate::check::walk::split_transform_args(&name, t.args.as_deref());
            if let Some(i) = index {
                args.insert(0, i);
            }
            let literals: Vec<Option<&str>> = args
                .iter()
                .map(|a| (!a.starts_with('$')).then_some(a.as_str()))
                .collect();
            let Ok(tr) = crate::transform::TransformOp::lookup(&name, args.len())
                .and_then(|op| op.compile(&literals))
            else {
                return Value::Null;
            };
            if tr.op() == crate::transform::TransformOp::SEval {
                v = self.eval_format_at(&v.to_text(), depth + 1);
                continue;
            }
            let extra: Vec<String> = tr.extra_pvs().to_vec();
            let vals: Vec<Value> =
                args.iter()
                    .chain(&extra)
                    .map(|a| match a.strip_prefix('$') {
                        Some(_) => cfg::pv::parse(a)
                            .map_or(Value::Null, |spec| self.eval_pv(&spec, depth + 1)),
                        None => Value::str(a),
                    })
                    .collect();
            v = tr.apply(&v, &vals);
        }
        v
    }
}
