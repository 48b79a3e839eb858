//! presence_dialoginfo's bodies (RFC 4235): the `<dialog>` elements of all of a presentity's
//! dialog-info publications under one `<dialog-info state="full">` root carrying the
//! watcher's own version, or (`force_single_dialog`) only the one dialog that matters most
//! to a BLF lamp; an empty document when nobody publishes.

use roxmltree::{Document, Node};

use crate::pidf::{declarations, escape, text_of};

pub const DIALOG_INFO_NS: &str = "urn:ietf:params:xml:ns:dialog-info";

/// How much a dialog in `state` matters when only one is shown: an early (ringing) dialog
/// first, then confirmed, proceeding, trying; terminated (or anything else) last.
fn priority(state: &str) -> u8 {
    match state.trim().to_ascii_lowercase().as_str() {
        "early" => 4,
        "confirmed" => 3,
        "proceeding" => 2,
        "trying" => 1,
        _ => 0,
    }
}

/// The text of a dialog's `<state>` child.
fn state_of<'a>(dialog: Node<'a, '_>) -> &'a str {
    dialog
        .children()
        .find(|n| n.is_element() && n.tag_name().name() == "state")
        .and_then(|n| n.text())
        .unwrap_or("")
}

/// The document every watcher of `entity` gets, version `version`, from the publications'
/// bodies oldest first. Bodies that are not a dialog-info document are left out (logged);
/// with none left the document is empty (`build_empty_pres_info`).
pub fn aggregate(entity: &str, version: u32, oldest_first: &[&str], single: bool) -> String {
    let mut decls: Vec<(String, String)> = vec![(String::new(), DIALOG_INFO_NS.to_owned())];
    let mut parsed: Vec<(&str, Document<'_>)> = Vec::new();
    for text in oldest_first {
        match Document::parse(text) {
            Ok(doc)
                if doc.root_element().tag_name().name() == "dialog-info"
                    && doc.root_element().tag_name().namespace() == Some(DIALOG_INFO_NS) =>
            {
                parsed.push((text, doc));
            }
            _ => log::error!("presence_dialoginfo: a publication of {entity} is not dialog-info"),
        }
    }
    let mut parts: Vec<&str> = Vec::new();
    // OpenSIPS picks a single dialog only among several documents.
    let pick_one = single && parsed.len() > 1;
    let mut winner: Option<(u8, &str)> = None;
    for (text, doc) in &parsed {
        let root = doc.root_element();
        for d in declarations(text, root) {
            if !decls.iter().any(|(p, _)| *p == d.0) {
                decls.push(d);
            }
        }
        for child in root.children().filter(Node::is_element) {
            let copy = text_of(text, child);
            if !pick_one {
                parts.push(copy);
            } else if child.tag_name().name() == "dialog" {
                let p = priority(state_of(child));
                if winner.is_none_or(|(best, _)| p > best) {
                    winner = Some((p, copy));
                }
            }
        }
    }
    if let Some((_, w)) = winner {
        parts.push(w);
    }
    let mut out = String::from("<?xml version=\"1.0\"?>\n<dialog-info");
    for (prefix, uri) in &decls {
        if prefix.is_empty() {
            out.push_str(&format!(" xmlns=\"{}\"", escape(uri)));
        } else {
            out.push_str(&format!(" xmlns:{prefix}=\"{}\"", escape(uri)));
        }
    }
    out.push_str(&format!(
        " version=\"{version}\" state=\"full\" entity=\"{}\"",
        escape(entity)
    ));
    if parts.is_empty() {
        out.push_str("/>\n");
        return out;
    }
    out.push_str(">\n");
    for p in parts {
        out.push_str(p);
        out.push('\n');
    }
    out.push_str("</dialog-info>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(prefix: &str, dialogs: &[(&str, &str)]) -> String {
        let (open, p) = if prefix.is_empty() {
            (
                format!("<dialog-info xmlns=\"{DIALOG_INFO_NS}\""),
                String::new(),
            )
        } else {
            (
                format!("<{prefix}:dialog-info xmlns:{prefix}=\"{DIALOG_INFO_NS}\""),
                format!("{prefix}:"),
            )
        };
        let mut s = format!(
            "<?xml version=\"1.0\"?>{open} version=\"7\" state=\"partial\" entity=\"sip:alice@example.com\">"
        );
        for (id, state) in dialogs {
            s.push_str(&format!(
                "<{p}dialog id=\"{id}\" direction=\"initiator\"><{p}state>{state}</{p}state></{p}dialog>"
            ));
        }
        s.push_str(&format!("</{p}dialog-info>"));
        s
    }

    fn dialogs(out: &str) -> Vec<(String, String)> {
        let d = Document::parse(out).unwrap_or_else(|e| panic!("{e}: {out}"));
        d.root_element()
            .children()
            .filter(|n| n.is_element() && n.tag_name().name() == "dialog")
            .map(|n| {
                (
                    n.attribute("id").unwrap_or("").to_owned(),
                    state_of(n).to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn every_dialog_of_every_publication_is_shown() {
        let a = doc("", &[("d1", "confirmed")]);
        let b = doc("x", &[("d2", "early"), ("d3", "terminated")]);
        let out = aggregate("sip:alice@example.com", 3, &[&a, &b], false);
        let parsed = Document::parse(&out).unwrap();
        let root = parsed.root_element();
        assert_eq!(root.tag_name().namespace(), Some(DIALOG_INFO_NS));
        assert_eq!(root.attribute("version"), Some("3"));
        assert_eq!(root.attribute("state"), Some("full"));
        assert_eq!(root.attribute("entity"), Some("sip:alice@example.com"));
        let all = dialogs(&out);
        assert_eq!(
            all,
            vec![
                ("d1".into(), "confirmed".into()),
                ("d2".into(), "early".into()),
                ("d3".into(), "terminated".into()),
            ]
        );
        // The prefixed document's elements are still in the dialog-info namespace.
        assert!(
            Document::parse(&out)
                .unwrap()
                .descendants()
                .filter(|n| n.tag_name().name() == "dialog")
                .all(|n| n.tag_name().namespace() == Some(DIALOG_INFO_NS)),
            "{out}"
        );
    }

    #[test]
    fn force_single_dialog_keeps_the_one_that_matters() {
        let a = doc("", &[("d1", "confirmed"), ("d0", "terminated")]);
        let b = doc("", &[("d2", "early")]);
        let c = doc("", &[("d3", "trying")]);
        let out = aggregate("sip:alice@example.com", 1, &[&a, &b, &c], true);
        assert_eq!(dialogs(&out), vec![("d2".into(), "early".into())]);
        let out = aggregate("sip:alice@example.com", 1, &[&a, &c], true);
        assert_eq!(dialogs(&out), vec![("d1".into(), "confirmed".into())]);
        // One document: all its dialogs, as OpenSIPS does.
        let out = aggregate("sip:alice@example.com", 1, &[&a], true);
        assert_eq!(dialogs(&out).len(), 2);
    }

    #[test]
    fn nothing_published_is_an_empty_full_document() {
        for bodies in [
            &[][..],
            &["not xml"][..],
            &["<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"/>"][..],
        ] {
            let out = aggregate("sip:bob@example.com", 9, bodies, false);
            let parsed = Document::parse(&out).unwrap();
            let root = parsed.root_element();
            assert_eq!(root.tag_name().name(), "dialog-info");
            assert_eq!(root.attribute("version"), Some("9"));
            assert_eq!(root.attribute("entity"), Some("sip:bob@example.com"));
            assert_eq!(root.children().filter(Node::is_element).count(), 0, "{out}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bodies_give_a_well_formed_document(a in ".{0,300}", b in ".{0,300}", single: bool) {
            let out = aggregate("sip:a@b", 1, &[&a, &b], single);
            proptest::prop_assert!(Document::parse(&out).is_ok(), "{}", out);
        }
    }
}
