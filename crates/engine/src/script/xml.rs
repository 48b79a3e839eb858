//! The OpenSIPS `xml` module: `$xml(name/el/el[i]…[.val|.attr/a])`, XML documents kept by
//! each worker (never reset between messages) and read or changed through paths from the
//! root element. A whole element reads as its markup, `.val` as its own text, `.attr/a` as an
//! attribute; a string assigned to the object parses into a document, one assigned to an
//! element is parsed and added as its last child (blanks around it kept as text, for
//! indentation), one assigned to `.val` replaces the element's text, to `.attr/a` sets the
//! attribute; NULL removes the element, its text or the attribute (or clears the object).
//!
//! The parser and the printer are ours: the parser keeps every blank and takes elements,
//! attributes, text with entity and character references, CDATA sections, comments and
//! processing instructions (a DOCTYPE is skipped); the printer writes what libxml2 writes for
//! the same tree (`<a/>` for an empty element, the same escapes), so reads give what OpenSIPS
//! gives.

use crate::module::ModuleSpec;
use crate::script::ir::{Dyn, PvRead};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "xml",
    functions: &[],
    params: &[],
};

/// How deep elements may nest in a document parsed here.
const MAX_DEPTH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Element(Element),
    Text(String),
    CData(String),
    Comment(String),
    /// `<?target data?>`: the text between `<?` and `?>`.
    Pi(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
}

/// A document: what comes before and after the root element (comments, PIs), the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Doc {
    version: String,
    encoding: Option<String>,
    before: Vec<Node>,
    root: Option<Element>,
    after: Vec<Node>,
}

/// What a path reaches in its last element.
#[derive(Debug, Clone)]
pub(crate) enum Access {
    Element,
    Val,
    Attr(Dyn<String>),
}

/// A compiled `$xml(...)`.
#[derive(Debug, Clone)]
pub(crate) struct XmlPath {
    pub slot: usize,
    /// Element names from the root down, each with its index among same-named siblings.
    pub elements: Vec<(Dyn<String>, Option<Dyn<i64>>)>,
    pub access: Access,
}

/// A path with its variables read: (name, index) per element.
pub(crate) type Steps = Vec<(String, usize)>;

/// The path's syntax (`Err`: what is wrong); variables in it come back as PV texts for the
/// compiler to resolve.
pub(crate) struct Parsed<'a> {
    pub name: &'a str,
    pub elements: Vec<(&'a str, Option<&'a str>)>,
    /// `None`: the element; `Some(None)`: `.val`; `Some(Some(a))`: `.attr/a`.
    pub access: Option<Option<&'a str>>,
}

/// Splits `name/el[i]/el.val` into its parts.
pub(crate) fn parse_path(text: &str) -> Result<Parsed<'_>, String> {
    let end = |s: &str| s.find(['/', '[', '.']).unwrap_or(s.len());
    // A `$var(...)` as a name or an index: its whole text.
    let pv_len = |s: &str| -> Result<usize, String> {
        cfg::pv::scan(s).ok_or_else(|| "a variable in the path does not parse".to_owned())
    };
    let n = end(text);
    let name = text[..n].trim();
    if name.is_empty() {
        return Err("no object name".into());
    }
    let mut out = Parsed {
        name,
        elements: Vec::new(),
        access: None,
    };
    let mut rest = &text[n..];
    while let Some(c) = rest.chars().next() {
        match c {
            '/' => {
                let body = &rest[1..];
                let n = if body.starts_with('$') {
                    pv_len(body)?
                } else {
                    end(body)
                };
                if n == 0 {
                    return Err("an empty element name".into());
                }
                out.elements.push((&body[..n], None));
                rest = &body[n..];
            }
            '[' => {
                let Some(close) = rest.find(']') else {
                    return Err("`[` without `]`".into());
                };
                let Some(last) = out.elements.last_mut() else {
                    return Err("an index without an element".into());
                };
                last.1 = Some(rest[1..close].trim());
                rest = &rest[close + 1..];
            }
            '.' => {
                let access = &rest[1..];
                out.access = Some(match access {
                    "val" => None,
                    _ => match access.strip_prefix("attr/") {
                        Some(a) if !a.is_empty() => Some(a),
                        _ => return Err("expected `.val` or `.attr/name` at the end".into()),
                    },
                });
                if out.elements.is_empty() {
                    return Err("`.val` / `.attr` need an element".into());
                }
                rest = "";
            }
            _ => return Err("an element starts with `/`".into()),
        }
    }
    Ok(out)
}

// ---- reading and changing ----

/// Where the element at `steps` is: the position in its parent's children of each element
/// below the root (the path starts at the root, whose name and index 0 it must give).
fn positions(doc: &Doc, steps: &[(String, usize)]) -> Option<Vec<usize>> {
    let (first, rest) = steps.split_first()?;
    let root = doc.root.as_ref()?;
    if root.name != first.0 || first.1 != 0 {
        return None;
    }
    let mut node = root;
    let mut out = Vec::with_capacity(rest.len());
    for (name, index) in rest {
        let at = node
            .children
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c, Node::Element(e) if e.name == *name))
            .nth(*index)?
            .0;
        let Node::Element(e) = &node.children[at] else {
            return None;
        };
        out.push(at);
        node = e;
    }
    Some(out)
}

fn element_at<'a>(doc: &'a Doc, steps: &[(String, usize)]) -> Option<&'a Element> {
    let mut node = doc.root.as_ref()?;
    for at in positions(doc, steps)? {
        let Node::Element(e) = node.children.get(at)? else {
            return None;
        };
        node = e;
    }
    Some(node)
}

fn element_at_mut<'a>(doc: &'a mut Doc, steps: &[(String, usize)]) -> Option<&'a mut Element> {
    let path = positions(doc, steps)?;
    let mut node = doc.root.as_mut()?;
    for at in path {
        let Node::Element(e) = node.children.get_mut(at)? else {
            return None;
        };
        node = e;
    }
    Some(node)
}

/// A read: `None` is NULL.
pub(crate) fn read(doc: Option<&Doc>, steps: &[(String, usize)], access: &At) -> Option<String> {
    let doc = doc?;
    if steps.is_empty() {
        return Some(dump_doc(doc));
    }
    let e = element_at(doc, steps)?;
    match access {
        At::Element => {
            let mut out = String::new();
            dump_element(e, &mut out);
            Some(out)
        }
        At::Val => Some(
            e.children
                .iter()
                .filter_map(|c| match c {
                    Node::Text(t) | Node::CData(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect(),
        ),
        At::Attr(a) => e.attrs.iter().find(|(n, _)| n == a).map(|(_, v)| v.clone()),
    }
}

/// What a path reaches, with its attribute name read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum At {
    Element,
    Val,
    Attr(String),
}

/// An assignment (`None`: NULL). `Err`: why it failed (logged by the caller).
pub(crate) fn write(
    slot: &mut Option<Doc>,
    steps: &[(String, usize)],
    access: &At,
    value: Option<&str>,
) -> Result<(), String> {
    if steps.is_empty() {
        // The object itself: a document, or nothing.
        *slot = match value {
            None | Some("") => None,
            Some(text) => Some(parse(text)?),
        };
        return Ok(());
    }
    let Some(doc) = slot.as_mut() else {
        return Err("an empty xml object".into());
    };
    // NULL on a whole element removes it (the root too).
    if value.is_none() && *access == At::Element {
        if steps.len() == 1 {
            if element_at(doc, steps).is_none() {
                return Err("element not found".into());
            }
            doc.root = None;
            return Ok(());
        }
        let at = *positions(doc, steps)
            .ok_or("element not found")?
            .last()
            .ok_or("element not found")?;
        let parent = element_at_mut(doc, &steps[..steps.len() - 1]).ok_or("element not found")?;
        parent.children.remove(at);
        return Ok(());
    }
    let e = element_at_mut(doc, steps).ok_or("element not found")?;
    match (access, value) {
        (At::Element, Some("")) => Err("an empty string".into()),
        (At::Element, Some(text)) => {
            // The block's own root goes in as the last child, with the blanks around it.
            let block = parse(text)?;
            let root = block.root.ok_or("no element in the block")?;
            let lead: String = text
                .chars()
                .take_while(|c| matches!(c, ' ' | '\t' | '\n'))
                .collect();
            let trail_len = text
                .chars()
                .rev()
                .take_while(|c| matches!(c, ' ' | '\t' | '\n'))
                .count();
            let trail: String = text
                .chars()
                .skip(text.chars().count() - trail_len)
                .collect();
            if !lead.is_empty() && lead.len() < text.len() {
                e.children.push(Node::Text(lead));
            }
            e.children.push(Node::Element(root));
            if !trail.is_empty() && trail.len() < text.len() {
                e.children.push(Node::Text(trail));
            }
            Ok(())
        }
        (At::Element, None) => Ok(()),
        (At::Val, value) => set_text(e, value),
        (At::Attr(name), None) => {
            e.attrs.retain(|(n, _)| n != name);
            Ok(())
        }
        (At::Attr(name), Some(v)) => {
            match e.attrs.iter_mut().find(|(n, _)| n == name) {
                Some(a) => a.1 = v.to_owned(),
                None => e.attrs.push((name.clone(), v.to_owned())),
            }
            Ok(())
        }
    }
}

/// `.val` set: the element's text (and CDATA) replaced by `value` — in the place of its
/// first text node — or removed (`None`). A value with a CDATA section is parsed as content.
fn set_text(e: &mut Element, value: Option<&str>) -> Result<(), String> {
    let is_text = |c: &Node| matches!(c, Node::Text(_) | Node::CData(_));
    match value {
        Some(v) if v.contains("<![CDATA[") && v.len() > 12 => {
            let wrapped = parse(&format!("<x>{v}</x>"))?;
            e.children.retain(|c| !is_text(c));
            if let Some(root) = wrapped.root {
                e.children
                    .extend(root.children.into_iter().filter(|c| is_text(c)));
            }
        }
        Some(v) => {
            let mut set = false;
            e.children.retain_mut(|c| match c {
                Node::Text(t) if !set => {
                    *t = v.to_owned();
                    set = true;
                    true
                }
                Node::Text(_) | Node::CData(_) => false,
                _ => true,
            });
            if !set {
                e.children.push(Node::Text(v.to_owned()));
            }
        }
        None => e.children.retain(|c| !is_text(c)),
    }
    Ok(())
}

// ---- the printer ----

fn dump_doc(doc: &Doc) -> String {
    let mut out = format!("<?xml version=\"{}\"", doc.version);
    if let Some(enc) = &doc.encoding {
        out.push_str(&format!(" encoding=\"{enc}\""));
    }
    out.push_str("?>\n");
    for n in &doc.before {
        dump(n, &mut out);
        out.push('\n');
    }
    if let Some(root) = &doc.root {
        dump_element(root, &mut out);
        out.push('\n');
    }
    for n in &doc.after {
        dump(n, &mut out);
        out.push('\n');
    }
    // OpenSIPS drops the dump's last newline.
    if out.ends_with('\n') {
        out.pop();
    }
    out
}

fn dump(n: &Node, out: &mut String) {
    match n {
        Node::Element(e) => dump_element(e, out),
        Node::Text(t) => escape(t, false, out),
        Node::CData(t) => {
            out.push_str("<![CDATA[");
            out.push_str(t);
            out.push_str("]]>");
        }
        Node::Comment(t) => {
            out.push_str("<!--");
            out.push_str(t);
            out.push_str("-->");
        }
        Node::Pi(t) => {
            out.push_str("<?");
            out.push_str(t);
            out.push_str("?>");
        }
    }
}

fn dump_element(e: &Element, out: &mut String) {
    out.push('<');
    out.push_str(&e.name);
    for (n, v) in &e.attrs {
        out.push(' ');
        out.push_str(n);
        out.push_str("=\"");
        escape(v, true, out);
        out.push('"');
    }
    if e.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for c in &e.children {
        dump(c, out);
    }
    out.push_str("</");
    out.push_str(&e.name);
    out.push('>');
}

/// libxml2's escapes: `< > &` in text (and CR as a reference); in attribute values also the
/// quote and the blanks that would not survive reading back.
fn escape(text: &str, attr: bool, out: &mut String) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => out.push_str("&#13;"),
            '"' if attr => out.push_str("&quot;"),
            '\n' if attr => out.push_str("&#10;"),
            '\t' if attr => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
}

// ---- the parser ----

struct Parser<'a> {
    s: &'a str,
    at: usize,
}

/// Parses a whole document (a block assigned to the object or inserted under an element).
pub(crate) fn parse(text: &str) -> Result<Doc, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser { s: text, at: 0 };
    let mut doc = Doc {
        version: "1.0".into(),
        encoding: None,
        before: Vec::new(),
        root: None,
        after: Vec::new(),
    };
    if p.rest().starts_with("<?xml") && p.rest()[5..].starts_with([' ', '\t', '\r', '\n', '?']) {
        p.at += 5;
        let decl = p.until("?>", "an XML declaration without `?>`")?;
        let (version, encoding) = declaration(decl)?;
        doc.version = version;
        doc.encoding = encoding;
    }
    loop {
        p.blanks();
        if p.done() {
            break;
        }
        let r = p.rest();
        if r.starts_with("<!--") {
            let c = p.comment()?;
            if doc.root.is_some() {
                doc.after.push(c);
            } else {
                doc.before.push(c);
            }
        } else if r.starts_with("<?") {
            let pi = p.pi()?;
            if doc.root.is_some() {
                doc.after.push(pi);
            } else {
                doc.before.push(pi);
            }
        } else if r.starts_with("<!DOCTYPE") && doc.root.is_none() {
            p.doctype()?;
        } else if r.starts_with('<') && doc.root.is_none() {
            doc.root = Some(p.element(0)?);
        } else {
            return Err(format!("unexpected content at byte {}", p.at));
        }
    }
    if doc.root.is_none() {
        return Err("no root element".into());
    }
    Ok(doc)
}

/// The pseudo-attributes of `<?xml …?>`: `version` (`1.x`) first, then `encoding` and
/// `standalone` (`yes`/`no`), each at most once and in that order.
fn declaration(decl: &str) -> Result<(String, Option<String>), String> {
    let bad = || format!("a bad XML declaration `<?xml{decl}?>`");
    let mut rest = decl;
    let mut found: Vec<(&str, &str)> = Vec::new();
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        if trimmed.len() == rest.len() {
            return Err(bad());
        }
        let eq = trimmed.find('=').ok_or_else(bad)?;
        let name = trimmed[..eq].trim_end();
        let value = trimmed[eq + 1..].trim_start();
        let q = value
            .chars()
            .next()
            .filter(|q| *q == '"' || *q == '\'')
            .ok_or_else(bad)?;
        let end = value[1..].find(q).ok_or_else(bad)?;
        found.push((name, &value[1..=end]));
        rest = &value[end + 2..];
    }
    let order = ["version", "encoding", "standalone"];
    let mut last = None;
    for (name, _) in &found {
        let at = order.iter().position(|o| o == name).ok_or_else(bad)?;
        if last.is_some_and(|l| at <= l) {
            return Err(bad());
        }
        last = Some(at);
    }
    let get = |n: &str| found.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let version = get("version").ok_or_else(bad)?;
    let minor = version.strip_prefix("1.").ok_or_else(bad)?;
    if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let encoding = get("encoding");
    if let Some(e) = encoding {
        let ok = e.starts_with(|c: char| c.is_ascii_alphabetic())
            && e.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(bad());
        }
    }
    if get("standalone").is_some_and(|v| v != "yes" && v != "no") {
        return Err(bad());
    }
    Ok((version.to_owned(), encoding.map(str::to_owned)))
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }

    fn done(&self) -> bool {
        self.at >= self.s.len()
    }

    fn blanks(&mut self) {
        let r = self.rest();
        self.at += r.len() - r.trim_start_matches([' ', '\t', '\r', '\n']).len();
    }

    /// The text up to `end` (consumed), or `err`.
    fn until(&mut self, end: &str, err: &str) -> Result<&'a str, String> {
        let r = self.rest();
        let i = r.find(end).ok_or_else(|| err.to_owned())?;
        self.at += i + end.len();
        Ok(&r[..i])
    }

    fn comment(&mut self) -> Result<Node, String> {
        self.at += 4;
        let t = self.until("-->", "a comment without `-->`")?;
        Ok(Node::Comment(t.to_owned()))
    }

    fn pi(&mut self) -> Result<Node, String> {
        self.at += 2;
        let t = self.until("?>", "a processing instruction without `?>`")?;
        if t.is_empty() || t.starts_with(char::is_whitespace) {
            return Err("a processing instruction without a target".into());
        }
        Ok(Node::Pi(t.to_owned()))
    }

    /// Skips `<!DOCTYPE …>`, with an internal subset in brackets.
    fn doctype(&mut self) -> Result<(), String> {
        let mut depth = 0usize;
        for (i, c) in self.rest().char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                '>' if depth == 0 => {
                    self.at += i + 1;
                    return Ok(());
                }
                _ => {}
            }
        }
        Err("a DOCTYPE without `>`".into())
    }

    fn name(&mut self) -> Result<&'a str, String> {
        let r = self.rest();
        let n = r
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '>' | '=' | '<'))
            .unwrap_or(r.len());
        let name = &r[..n];
        if name.is_empty()
            || name.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '.'))
        {
            return Err(format!("a bad name at byte {}", self.at));
        }
        self.at += n;
        Ok(name)
    }

    fn element(&mut self, depth: usize) -> Result<Element, String> {
        if depth >= MAX_DEPTH {
            return Err(format!("elements nested deeper than {MAX_DEPTH}"));
        }
        self.at += 1;
        let name = self.name()?.to_owned();
        let mut e = Element {
            name,
            attrs: Vec::new(),
            children: Vec::new(),
        };
        loop {
            self.blanks();
            let r = self.rest();
            if let Some(after) = r.strip_prefix("/>") {
                self.at = self.s.len() - after.len();
                return Ok(e);
            }
            if r.starts_with('>') {
                self.at += 1;
                break;
            }
            if r.is_empty() {
                return Err(format!("<{}> is not closed", e.name));
            }
            let attr = self.name()?.to_owned();
            self.blanks();
            if !self.rest().starts_with('=') {
                return Err(format!("attribute `{attr}` without a value"));
            }
            self.at += 1;
            self.blanks();
            let q = self.rest().chars().next();
            let Some(q @ ('"' | '\'')) = q else {
                return Err(format!("attribute `{attr}`: its value is not quoted"));
            };
            self.at += 1;
            let raw = self.until(&q.to_string(), "an attribute value without its quote")?;
            if raw.contains('<') {
                return Err(format!("attribute `{attr}`: `<` in its value"));
            }
            let value = decode(raw)?.replace(['\t', '\n', '\r'], " ");
            if e.attrs.iter().any(|(n, _)| *n == attr) {
                return Err(format!("attribute `{attr}` given twice"));
            }
            e.attrs.push((attr, value));
        }
        // Content, up to the matching end tag.
        loop {
            let r = self.rest();
            if r.is_empty() {
                return Err(format!("<{}> is not closed", e.name));
            }
            if let Some(after) = r.strip_prefix("</") {
                self.at += 2;
                let end = self.name()?;
                if end != e.name {
                    return Err(format!("</{end}> closes <{}>", e.name));
                }
                self.blanks();
                if !self.rest().starts_with('>') {
                    return Err(format!("</{end} without `>`"));
                }
                self.at += 1;
                let _ = after;
                return Ok(e);
            }
            if r.starts_with("<!--") {
                let c = self.comment()?;
                e.children.push(c);
            } else if r.starts_with("<![CDATA[") {
                self.at += 9;
                let t = self.until("]]>", "a CDATA section without `]]>`")?;
                e.children.push(Node::CData(t.to_owned()));
            } else if r.starts_with("<?") {
                let pi = self.pi()?;
                e.children.push(pi);
            } else if r.starts_with('<') {
                let child = self.element(depth + 1)?;
                e.children.push(Node::Element(child));
            } else {
                let n = r.find('<').unwrap_or(r.len());
                let text = decode(&r[..n])?;
                self.at += n;
                // Adjacent text (a reference between runs) is one node, as in libxml2.
                match e.children.last_mut() {
                    Some(Node::Text(t)) => t.push_str(&text),
                    _ => e.children.push(Node::Text(text)),
                }
            }
        }
    }
}

/// Text with its entity and character references replaced.
fn decode(raw: &str) -> Result<String, String> {
    if !raw.contains('&') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after
            .find(';')
            .ok_or_else(|| "a `&` that starts no reference".to_owned())?;
        let name = &after[..end];
        let c = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(h) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
                    u32::from_str_radix(h, 16).ok()
                } else if let Some(d) = name.strip_prefix('#') {
                    d.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .filter(|c| *c != '\0')
                    .ok_or_else(|| format!("an unknown reference `&{name};`"))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A path's element names and indexes read now (`None`: an index is not a number ≥ 0).
pub(crate) fn steps_of(
    path: &XmlPath,
    mut read: impl FnMut(&PvRead) -> Option<crate::Value>,
) -> Option<(Steps, At)> {
    let mut steps = Vec::with_capacity(path.elements.len());
    for (name, index) in &path.elements {
        let name = match name {
            Dyn::Static(s) => s.clone(),
            Dyn::Var(p) => read(p)?.to_text().into_owned(),
        };
        let index = match index {
            None => 0,
            Some(Dyn::Static(i)) => usize::try_from(*i).ok()?,
            Some(Dyn::Var(p)) => usize::try_from(read(p)?.as_int()?).ok()?,
        };
        steps.push((name, index));
    }
    let at = match &path.access {
        Access::Element => At::Element,
        Access::Val => At::Val,
        Access::Attr(Dyn::Static(a)) => At::Attr(a.clone()),
        Access::Attr(Dyn::Var(p)) => At::Attr(read(p)?.to_text().into_owned()),
    };
    Some((steps, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(path: &[(&str, usize)]) -> Steps {
        path.iter().map(|(n, i)| ((*n).to_owned(), *i)).collect()
    }

    #[test]
    fn the_module_documentation_example() {
        let mut doc = None;
        let w = |doc: &mut Option<Doc>, p: &[(&str, usize)], at: At, v: Option<&str>| {
            write(doc, &steps(p), &at, v).unwrap();
        };
        w(&mut doc, &[], At::Element, Some("<doc></doc>"));
        w(&mut doc, &[("doc", 0)], At::Element, Some("<list></list>"));
        let list = [("doc", 0), ("list", 0)];
        w(
            &mut doc,
            &list,
            At::Element,
            Some("<item>some_value</item>"),
        );
        w(
            &mut doc,
            &list,
            At::Element,
            Some("<item>another_value</item>"),
        );
        let item1 = [("doc", 0), ("list", 0), ("item", 1)];
        w(&mut doc, &item1, At::Val, Some("new_val"));
        w(&mut doc, &list, At::Attr("sort".into()), Some("asc"));
        let r = |doc: &Option<Doc>, p: &[(&str, usize)], at: At| read(doc.as_ref(), &steps(p), &at);
        assert_eq!(
            r(&doc, &list, At::Element).unwrap(),
            r#"<list sort="asc"><item>some_value</item><item>new_val</item></list>"#
        );
        w(&mut doc, &list, At::Attr("sort".into()), None);
        w(&mut doc, &item1, At::Element, None);
        w(&mut doc, &list, At::Val, Some("end"));
        assert_eq!(
            r(&doc, &list, At::Element).unwrap(),
            "<list><item>some_value</item>end</list>"
        );
        assert_eq!(r(&doc, &list, At::Val).unwrap(), "end");
        w(&mut doc, &list, At::Val, None);
        assert_eq!(
            r(&doc, &[], At::Element).unwrap(),
            "<?xml version=\"1.0\"?>\n<doc><list><item>some_value</item></list></doc>"
        );
        assert_eq!(r(&doc, &item1, At::Element), None, "gone");
        w(&mut doc, &[], At::Element, None);
        assert_eq!(r(&doc, &[], At::Element), None);
    }

    #[test]
    fn indentation_blanks_are_kept() {
        let mut doc = None;
        write(&mut doc, &[], &At::Element, Some("<doc>\n</doc>")).unwrap();
        write(
            &mut doc,
            &steps(&[("doc", 0)]),
            &At::Element,
            Some("\t<list></list>\n"),
        )
        .unwrap();
        write(
            &mut doc,
            &steps(&[("doc", 0), ("list", 0)]),
            &At::Element,
            Some("\n\t\t<item></item>\n\t"),
        )
        .unwrap();
        assert_eq!(
            read(doc.as_ref(), &steps(&[("doc", 0)]), &At::Element).unwrap(),
            "<doc>\n\t<list>\n\t\t<item/>\n\t</list>\n</doc>"
        );
    }

    #[test]
    fn text_attributes_and_escapes() {
        let doc = parse(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c -->\n<a x='1 &amp; 2' y=\"&quot;\">\
             t&lt;1&#62;<![CDATA[<raw>]]><b/><?pi x?></a>",
        )
        .unwrap();
        let a = steps(&[("a", 0)]);
        assert_eq!(read(Some(&doc), &a, &At::Val).unwrap(), "t<1><raw>");
        assert_eq!(
            read(Some(&doc), &a, &At::Attr("x".into())).unwrap(),
            "1 & 2"
        );
        assert_eq!(read(Some(&doc), &a, &At::Attr("z".into())), None);
        assert_eq!(
            read(Some(&doc), &a, &At::Element).unwrap(),
            "<a x=\"1 &amp; 2\" y=\"&quot;\">t&lt;1&gt;<![CDATA[<raw>]]><b/><?pi x?></a>"
        );
        assert_eq!(
            read(Some(&doc), &[], &At::Element).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c -->\n<a x=\"1 &amp; 2\" y=\"&quot;\">\
             t&lt;1&gt;<![CDATA[<raw>]]><b/><?pi x?></a>"
        );
        // The path starts at the root: another root name, or an index past the last, is NULL.
        assert_eq!(read(Some(&doc), &steps(&[("b", 0)]), &At::Element), None);
        assert_eq!(
            read(Some(&doc), &steps(&[("a", 0), ("b", 1)]), &At::Element),
            None
        );
    }

    #[test]
    fn bad_documents_are_refused() {
        for bad in [
            "",
            "text",
            "<a>",
            "<a></b>",
            "<a x=1/>",
            "<a x='1' x='2'/>",
            "<a>&nosuch;</a>",
            "<a/><b/>",
            "<a><!-- open</a>",
            "<a x='<'/>",
            "<?xml version=\"1.0& encoding=\"UTF-8\"?><a/>",
            "<?xml version=\"2.0\"?><a/>",
            "<?xml encoding=\"UTF-8\" version=\"1.0\"?><a/>",
            "<?xml version=\"1.0\" bogus=\"x\"?><a/>",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).is_err(), "nesting is bounded");
        // A path into an empty object, or to an element that is not there, fails.
        let mut empty = None;
        assert!(write(&mut empty, &steps(&[("a", 0)]), &At::Val, Some("x")).is_err());
        let mut doc = Some(parse("<a/>").unwrap());
        assert!(write(&mut doc, &steps(&[("a", 0), ("b", 0)]), &At::Val, Some("x")).is_err());
        assert!(write(&mut doc, &steps(&[("a", 0)]), &At::Element, Some("not xml")).is_err());
    }

    /// Damaged documents never panic the parser, and whatever parses prints a document that
    /// parses back to the same print.
    #[test]
    fn damaged_documents_parse_or_fail_cleanly_and_prints_round_trip() {
        let samples = [
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c --><a x='1 &amp; 2'>t&lt;1&#62;<![CDATA[<raw>]]><b/><?pi x?>\u{e9}</a>",
            "<file xmlns=\"urn:x\"><id>a</id><id>b</id><info type=\"f\"><size>1</size></info></file>",
            "<!DOCTYPE a [<!ENTITY e \"v\">]><a>\n\t<b c=\"&#x41;\"/>\n</a>",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut parsed = 0;
        for round in 0..20_000 {
            let mut bytes = samples[round % samples.len()].as_bytes().to_vec();
            for _ in 0..=(next() % 4) {
                let at = (next() as usize) % bytes.len().max(1);
                match next() % 5 {
                    0 => {
                        let i = at.min(bytes.len() - 1);
                        bytes[i] = (next() % 256) as u8;
                    }
                    1 => bytes.truncate(at),
                    2 => {
                        let piece = bytes[at..].to_vec();
                        bytes.extend_from_slice(&piece);
                    }
                    3 => bytes.insert(at, b"<>&;/\"'[]!?-"[(next() % 12) as usize]),
                    _ => {
                        if at < bytes.len() {
                            bytes.remove(at);
                        }
                    }
                }
                if bytes.is_empty() {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(doc) = parse(&text) {
                parsed += 1;
                let printed = dump_doc(&doc);
                let again = parse(&printed)
                    .unwrap_or_else(|e| panic!("{printed:?} does not parse back: {e}"));
                assert_eq!(dump_doc(&again), printed, "from {text:?}");
            }
        }
        assert!(parsed > 100, "some damaged documents still parse: {parsed}");
    }

    #[test]
    fn paths() {
        let p = parse_path("mms_doc/file/file-info/data.attr/url").unwrap();
        assert_eq!(p.name, "mms_doc");
        assert_eq!(
            p.elements,
            [("file", None), ("file-info", None), ("data", None)]
        );
        assert_eq!(p.access, Some(Some("url")));
        let p = parse_path("d/doc/$var(l)/item[$var(i)].val").unwrap();
        assert_eq!(
            p.elements,
            [("doc", None), ("$var(l)", None), ("item", Some("$var(i)"))]
        );
        assert_eq!(p.access, Some(None));
        assert!(parse_path("d/doc.bogus").is_err());
        assert!(parse_path("d.val").is_err());
        assert!(parse_path("/x").is_err());
        assert!(parse_path("d/a[1").is_err());
    }
}
