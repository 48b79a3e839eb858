//! Lowering `$xml(name/el[i]….val|.attr/a)` paths: the object's slot, each element (a name
//! or a variable, with an index written or read from a variable) and the access.

use super::*;
use crate::script::ir::Dyn;
use crate::script::xml::{Access, XmlPath, parse_path};

impl Lower<'_> {
    pub(super) fn xml_path(&mut self, spec: &PvSpec, span: Span) -> L<XmlPath> {
        if spec.index.is_some() {
            return self.fail(Diagnostic::error("`$xml` takes no index", span));
        }
        let text = spec.arg.as_deref().unwrap_or_default();
        let bad = |why: &str| Diagnostic::error(format!("bad xml path `{text}`: {why}"), span);
        let parsed = match parse_path(text) {
            Ok(p) => p,
            Err(e) => return self.fail(bad(&e)),
        };
        let n = self.names.xml.len();
        let slot = *self.names.xml.entry(parsed.name.to_owned()).or_insert(n);
        let mut elements = Vec::new();
        for (name, index) in parsed.elements {
            let name = self.xml_part(name, span, &bad)?;
            let index = match index {
                None => None,
                Some(i) if i.starts_with('$') => {
                    Some(Dyn::Var(Box::new(self.xml_var(i, span, &bad)?)))
                }
                Some(i) => match i.parse::<i64>() {
                    Ok(n) if n >= 0 => Some(Dyn::Static(n)),
                    _ => return self.fail(bad("an index is a number from 0")),
                },
            };
            elements.push((name, index));
        }
        let access = match parsed.access {
            None => Access::Element,
            Some(None) => Access::Val,
            Some(Some(a)) => Access::Attr(self.xml_part(a, span, &bad)?),
        };
        Ok(XmlPath {
            slot,
            elements,
            access,
        })
    }

    /// An element or attribute name: written, or a variable's value.
    fn xml_part(
        &mut self,
        text: &str,
        span: Span,
        bad: &dyn Fn(&str) -> Diagnostic,
    ) -> L<Dyn<String>> {
        if text.starts_with('$') {
            Ok(Dyn::Var(Box::new(self.xml_var(text, span, bad)?)))
        } else {
            Ok(Dyn::Static(text.to_owned()))
        }
    }

    fn xml_var(
        &mut self,
        text: &str,
        span: Span,
        bad: &dyn Fn(&str) -> Diagnostic,
    ) -> L<crate::script::ir::PvRead> {
        let inner = match cfg::pv::parse(text) {
            Ok(p) => p,
            Err(e) => return self.fail(bad(&e)),
        };
        self.read(&inner, span)
    }
}
