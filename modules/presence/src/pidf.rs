//! presence_xml's bodies: the check of a published document (well-formed XML), the
//! aggregation of a presentity's publications into one PIDF document (RFC 3863, with the
//! data-model elements of RFC 4479), the "offline" version of a publication that ends, and
//! the watcher-info document of RFC 3857.

use roxmltree::{Document, Node};

pub const PIDF_NS: &str = "urn:ietf:params:xml:ns:pidf";
pub const DATA_MODEL_NS: &str = "urn:ietf:params:xml:ns:pidf:data-model";

/// Whether a body is well-formed XML (what OpenSIPS checks of a PUBLISH).
pub fn is_xml(body: &str) -> bool {
    Document::parse(body).is_ok()
}

pub(crate) fn text_of<'a>(doc_text: &'a str, n: Node<'_, '_>) -> &'a str {
    doc_text.get(n.range()).unwrap_or("")
}

/// The namespace declarations written on an element (`xmlns` and `xmlns:p`), as
/// `(prefix, uri)`, so that copied elements keep the prefixes they use.
pub(crate) fn declarations(doc_text: &str, el: Node<'_, '_>) -> Vec<(String, String)> {
    // roxmltree resolves namespaces but does not say where they were declared; read the
    // start tag's own attributes from the text.
    let text = text_of(doc_text, el);
    let end = text.find('>').unwrap_or(text.len());
    let tag = text.get(..end).unwrap_or("");
    let mut out = Vec::new();
    let mut rest = tag;
    while let Some(i) = rest.find("xmlns") {
        rest = rest.get(i + 5..).unwrap_or("");
        let (prefix, after) = match rest.strip_prefix(':') {
            Some(r) => {
                let n = r
                    .find(|c: char| c == '=' || c.is_whitespace())
                    .unwrap_or(r.len());
                (
                    r.get(..n).unwrap_or("").to_owned(),
                    r.get(n..).unwrap_or(""),
                )
            }
            None => (String::new(), rest),
        };
        let after = after.trim_start();
        let Some(after) = after.strip_prefix('=') else {
            continue;
        };
        let after = after.trim_start();
        let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        let body = after.get(1..).unwrap_or("");
        let Some(close) = body.find(q) else { continue };
        out.push((prefix, body.get(..close).unwrap_or("").to_owned()));
        rest = body.get(close..).unwrap_or("");
    }
    out
}

/// The aggregated document of `entity` (`sip:user@domain`) from its publications, newest
/// first: `<tuple>`, `<note>`, data-model `<person>` and `<device>` elements, and anything
/// else, in that order; a tuple, person or device whose `id` an earlier (newer) one already
/// has is left out. Documents whose root is not a PIDF `<presence>` are skipped. `None` when
/// nothing is left.
pub fn aggregate(entity: &str, newest_first: &[&str]) -> Option<String> {
    let mut decls: Vec<(String, String)> = vec![(String::new(), PIDF_NS.to_owned())];
    let (mut tuples, mut notes, mut persons, mut devices, mut others) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut ids: Vec<String> = Vec::new();
    let mut any = false;
    for text in newest_first {
        let Ok(doc) = Document::parse(text) else {
            continue;
        };
        let root = doc.root_element();
        if root.tag_name().name() != "presence" || root.tag_name().namespace() != Some(PIDF_NS) {
            continue;
        }
        any = true;
        for d in declarations(text, root) {
            if !decls.iter().any(|(p, _)| *p == d.0) {
                decls.push(d);
            }
        }
        for child in root.children().filter(Node::is_element) {
            let (name, ns) = (child.tag_name().name(), child.tag_name().namespace());
            let copy = text_of(text, child).to_owned();
            let kind = match (name, ns) {
                ("tuple", Some(PIDF_NS)) => 0,
                ("note", Some(PIDF_NS)) => 1,
                ("person", Some(DATA_MODEL_NS)) => 2,
                ("device", Some(DATA_MODEL_NS)) => 3,
                _ => 4,
            };
            if kind != 1 && kind != 4 {
                let Some(id) = child.attribute("id") else {
                    log::error!(
                        "presence_xml: a <{name}> without an id in a publication of {entity}"
                    );
                    return None;
                };
                if ids.iter().any(|i| i.eq_ignore_ascii_case(id)) {
                    continue;
                }
                ids.push(id.to_owned());
            }
            match kind {
                0 => tuples.push(copy),
                1 => notes.push(copy),
                2 => persons.push(copy),
                3 => devices.push(copy),
                _ => others.push(copy),
            }
        }
    }
    if !any {
        return None;
    }
    let mut out = String::from("<?xml version=\"1.0\"?>\n<presence");
    for (prefix, uri) in &decls {
        if prefix.is_empty() {
            out.push_str(&format!(" xmlns=\"{}\"", escape(uri)));
        } else {
            out.push_str(&format!(" xmlns:{prefix}=\"{}\"", escape(uri)));
        }
    }
    out.push_str(&format!(" entity=\"{}\">\n", escape(entity)));
    for part in tuples
        .iter()
        .chain(&notes)
        .chain(&persons)
        .chain(&devices)
        .chain(&others)
    {
        out.push_str(part);
        out.push('\n');
    }
    out.push_str("</presence>\n");
    Some(out)
}

/// What a publication turns into when it ends (expires or is removed): its root, its first
/// tuple (the element only) and that tuple's status with `<basic>closed</basic>`. `None` for
/// a body without a tuple.
pub fn offline(body: &str) -> Option<String> {
    let doc = Document::parse(body).ok()?;
    let root = doc.root_element();
    let tuple = root
        .children()
        .find(|n| n.is_element() && n.tag_name().name() == "tuple")?;
    let root_text = text_of(body, root);
    let root_start = root_text.get(..root_text.find('>')? + 1)?;
    let root_name = root_text
        .get(1..)?
        .split([' ', '>', '\t', '\r', '\n'])
        .next()?;
    let tuple_text = text_of(body, tuple);
    let tuple_start = tuple_text.get(..tuple_text.find('>')? + 1)?;
    let tuple_name = tuple_text
        .get(1..)?
        .split([' ', '>', '\t', '\r', '\n'])
        .next()?;
    let status = tuple
        .children()
        .find(|n| n.is_element() && n.tag_name().name() == "status");
    let status_text = match status {
        Some(s) => {
            let st = text_of(body, s);
            match s
                .children()
                .find(|n| n.is_element() && n.tag_name().name() == "basic")
            {
                Some(b) => {
                    let bt = text_of(body, b);
                    let bname = bt.get(1..)?.split([' ', '>', '/']).next()?;
                    let rel = b.range().start - s.range().start;
                    let (head, tail) = (st.get(..rel)?, st.get(rel + bt.len()..)?);
                    format!("{head}<{bname}>closed</{bname}>{tail}")
                }
                None => st.to_owned(),
            }
        }
        None => "<status><basic>closed</basic></status>".to_owned(),
    };
    let root_start = root_start
        .strip_suffix("/>")
        .map_or_else(|| root_start.to_owned(), |s| format!("{s}>"));
    Some(format!(
        "<?xml version=\"1.0\"?>\n{root_start}\n{tuple_start}{status_text}</{tuple_name}>\n</{root_name}>\n"
    ))
}

/// The document of a presentity nobody publishes for (`notify_offline_body`).
pub fn offline_for(entity: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<presence xmlns=\"{PIDF_NS}\" entity=\"{}\">\n\
         <tuple id=\"tuple_mixingid\"><status><basic>closed</basic></status></tuple>\n</presence>\n",
        escape(entity)
    )
}

/// One watcher in a watcher-info document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watcher {
    pub uri: String,
    pub id: String,
    /// `active`, `pending`, `terminated`.
    pub status: &'static str,
}

/// The watcher-info document (RFC 3857) of `resource`'s presence.
pub fn watcherinfo(resource: &str, version: u32, full: bool, watchers: &[Watcher]) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\"?>\n<watcherinfo xmlns=\"urn:ietf:params:xml:ns:watcherinfo\" \
         version=\"{version}\" state=\"{}\">\n<watcher-list resource=\"{}\" package=\"presence\">\n",
        if full { "full" } else { "partial" },
        escape(resource)
    );
    for w in watchers {
        out.push_str(&format!(
            "<watcher id=\"{}\" event=\"subscribe\" status=\"{}\">{}</watcher>\n",
            escape(&w.id),
            w.status,
            escape(&w.uri)
        ));
    }
    out.push_str("</watcher-list>\n</watcherinfo>\n");
    out
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(tuple: &str, basic: &str, note: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"{PIDF_NS}\" \
             xmlns:dm=\"{DATA_MODEL_NS}\" entity=\"sip:alice@example.com\">\
             <tuple id=\"{tuple}\"><status><basic>{basic}</basic></status><contact>sip:alice@192.0.2.1</contact></tuple>\
             <note>{note}</note><dm:person id=\"p1\"><dm:note>{note}</dm:note></dm:person></presence>"
        )
    }

    #[test]
    fn publications_aggregate_newest_first_without_repeated_ids() {
        let newer = doc("phone", "open", "on the phone");
        let older = doc("desk", "closed", "away");
        let same_tuple = doc("phone", "closed", "stale");
        let out = aggregate(
            "sip:alice@example.com",
            &[&newer, &older, &same_tuple, "<notpidf/>"],
        )
        .unwrap();
        let parsed = Document::parse(&out).unwrap();
        let root = parsed.root_element();
        assert_eq!(root.attribute("entity"), Some("sip:alice@example.com"));
        let ids: Vec<&str> = root
            .children()
            .filter(|n| n.tag_name().name() == "tuple")
            .filter_map(|n| n.attribute("id"))
            .collect();
        assert_eq!(ids, vec!["phone", "desk"]);
        // The newest tuple "phone" is the open one; the older copy is gone.
        assert!(
            out.contains("<tuple id=\"phone\"><status><basic>open</basic>"),
            "{out}"
        );
        assert_eq!(out.matches("<tuple id=\"phone\"").count(), 1, "{out}");
        // Every document's note (notes have no id), one person (same id); the dm prefix
        // still resolves.
        assert_eq!(out.matches("<note>").count(), 3, "{out}");
        let persons = root
            .children()
            .filter(|n| {
                n.tag_name().name() == "person" && n.tag_name().namespace() == Some(DATA_MODEL_NS)
            })
            .count();
        assert_eq!(persons, 1, "{out}");
        assert_eq!(aggregate("sip:a@b", &["<x/>"]), None);
        assert_eq!(aggregate("sip:a@b", &[]), None);
    }

    #[test]
    fn an_ending_publication_goes_closed() {
        let body = doc("phone", "open", "busy");
        let out = offline(&body).unwrap();
        let parsed = Document::parse(&out).unwrap();
        let root = parsed.root_element();
        assert_eq!(root.attribute("entity"), Some("sip:alice@example.com"));
        let tuple = root.first_element_child().unwrap();
        assert_eq!(tuple.attribute("id"), Some("phone"));
        assert!(out.contains("<basic>closed</basic>"), "{out}");
        assert!(!out.contains("busy") && !out.contains("contact"), "{out}");
        assert!(Document::parse(&offline_for("sip:a@b")).is_ok());
    }

    #[test]
    fn watcherinfo_lists_the_watchers() {
        let out = watcherinfo(
            "sip:alice@example.com",
            3,
            true,
            &[Watcher {
                uri: "sip:bob@example.com".into(),
                id: "cid&1".into(),
                status: "active",
            }],
        );
        let parsed = Document::parse(&out).unwrap();
        let root = parsed.root_element();
        assert_eq!(root.attribute("version"), Some("3"));
        assert_eq!(root.attribute("state"), Some("full"));
        let w = root
            .first_element_child()
            .unwrap()
            .first_element_child()
            .unwrap();
        assert_eq!(w.attribute("id"), Some("cid&1"));
        assert_eq!(w.text(), Some("sip:bob@example.com"));
    }

    proptest::proptest! {
        #[test]
        fn any_body_aggregates_and_ends_without_panicking(a in ".{0,300}", b in ".{0,300}") {
            if let Some(out) = aggregate("sip:a@b", &[&a, &b]) {
                proptest::prop_assert!(Document::parse(&out).is_ok(), "{}", out);
            }
            let _ = offline(&a);
            let _ = is_xml(&b);
        }
    }
}
