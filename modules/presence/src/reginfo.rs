//! presence_reginfo's bodies (RFC 3680): the newest publication, or (`aggregate_presentities`)
//! every publication's `<registration>` elements under one `<reginfo state="full">`; either
//! way the document carries the watcher's own version.

use roxmltree::{Document, Node};

use crate::pidf::{declarations, escape, text_of};

pub const REGINFO_NS: &str = "urn:ietf:params:xml:ns:reginfo";

/// `body` with its root's `version` attribute set to `version` (added when it has none); the
/// body as it is when it is not XML.
pub fn with_version(body: &str, version: u32) -> String {
    let Ok(doc) = Document::parse(body) else {
        return body.to_owned();
    };
    let root = doc.root_element();
    let start = root.range().start;
    // The root's start tag ends at the first `>` outside quotes.
    let tag_end = {
        let mut quote = None;
        let mut end = None;
        for (i, c) in body.get(start..).unwrap_or("").char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '>') => {
                    end = Some(start + i);
                    break;
                }
                _ => {}
            }
        }
        end
    };
    let Some(tag_end) = tag_end else {
        return body.to_owned();
    };
    let tag_end = if body.get(..tag_end).is_some_and(|t| t.ends_with('/')) {
        tag_end - 1
    } else {
        tag_end
    };
    let attr = root
        .attributes()
        .find(|a| a.name() == "version" && a.namespace().is_none());
    match attr {
        Some(a) => {
            let r = a.range_value();
            format!(
                "{}{version}{}",
                body.get(..r.start).unwrap_or(""),
                body.get(r.end..).unwrap_or("")
            )
        }
        None => format!(
            "{} version=\"{version}\"{}",
            body.get(..tag_end).unwrap_or(""),
            body.get(tag_end..).unwrap_or("")
        ),
    }
}

/// Every registration of the publications (oldest first) under one full document of
/// `entity`, version `version`; `None` when none of them is a reginfo document.
pub fn aggregate(oldest_first: &[&str], version: u32) -> Option<String> {
    let mut decls: Vec<(String, String)> = vec![(String::new(), REGINFO_NS.to_owned())];
    let mut parts: Vec<String> = Vec::new();
    let mut any = false;
    for text in oldest_first {
        let Ok(doc) = Document::parse(text) else {
            continue;
        };
        let root = doc.root_element();
        if root.tag_name().name() != "reginfo" || root.tag_name().namespace() != Some(REGINFO_NS) {
            continue;
        }
        any = true;
        for d in declarations(text, root) {
            if !decls.iter().any(|(p, _)| *p == d.0) {
                decls.push(d);
            }
        }
        parts.extend(
            root.children()
                .filter(Node::is_element)
                .map(|c| text_of(text, c).to_owned()),
        );
    }
    if !any {
        return None;
    }
    let mut out = String::from("<?xml version=\"1.0\"?>\n<reginfo");
    for (prefix, uri) in &decls {
        if prefix.is_empty() {
            out.push_str(&format!(" xmlns=\"{}\"", escape(uri)));
        } else {
            out.push_str(&format!(" xmlns:{prefix}=\"{}\"", escape(uri)));
        }
    }
    out.push_str(&format!(" version=\"{version}\" state=\"full\">\n"));
    for p in parts {
        out.push_str(&p);
        out.push('\n');
    }
    out.push_str("</reginfo>\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(aor: &str, state: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?>\n<reginfo xmlns=\"{REGINFO_NS}\" version=\"0\" state=\"full\">\
             <registration aor=\"{aor}\" id=\"r1\" state=\"{state}\"><contact id=\"c1\" state=\"{state}\" \
             event=\"registered\"><uri>sip:{aor}@192.0.2.1</uri></contact></registration></reginfo>"
        )
    }

    #[test]
    fn the_watcher_s_version_goes_in() {
        let out = with_version(&doc("alice", "active"), 17);
        let d = Document::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(d.root_element().attribute("version"), Some("17"));
        assert_eq!(d.root_element().attribute("state"), Some("full"));
        // No version yet: one is added; a self-closing root keeps its form.
        let out = with_version(
            &format!("<reginfo xmlns=\"{REGINFO_NS}\" state=\"full\"/>"),
            3,
        );
        let d = Document::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(d.root_element().attribute("version"), Some("3"));
        assert_eq!(with_version("not xml", 1), "not xml");
    }

    #[test]
    fn registrations_are_merged() {
        let (a, b) = (doc("alice", "active"), doc("bob", "terminated"));
        let out = aggregate(&[&a, &b, "junk"], 4).unwrap_or_else(|| panic!("none"));
        let d = Document::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let aors: Vec<&str> = d
            .root_element()
            .children()
            .filter(|n| n.has_tag_name("registration"))
            .filter_map(|n| n.attribute("aor"))
            .collect();
        assert_eq!(aors, ["alice", "bob"]);
        assert_eq!(d.root_element().attribute("version"), Some("4"));
        assert_eq!(aggregate(&["junk"], 1), None);
    }

    proptest::proptest! {
        #[test]
        fn any_body_gets_a_version_without_panicking(a in ".{0,300}", v: u32) {
            let out = with_version(&a, v);
            if Document::parse(&a).is_ok() {
                proptest::prop_assert!(Document::parse(&out).is_ok(), "{}", out);
            }
        }
    }
}
