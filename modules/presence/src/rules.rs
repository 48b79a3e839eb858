//! Presence authorization rules (RFC 5025 pres-rules over RFC 4745 common-policy) from the
//! `xcap` table, as presence_xml reads them with `integrated_xcap_server`: the first rule of
//! the presentity's document whose conditions hold for the watcher decides, by its
//! `<sub-handling>`.
//!
//! Elements are found by local name, as OpenSIPS does. Where OpenSIPS' matcher departs from
//! RFC 4745 rsips follows the RFC: `<many domain>` matches that domain only, `<except>` does
//! exclude, and a rule without conditions applies to every watcher (OpenSIPS stops at it and
//! leaves the watcher pending). A rule with a `<sphere>` never applies (rsips keeps no
//! spheres), nor does one outside its `<validity>`.

use roxmltree::{Document, Node};

/// What a matching rule says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubHandling {
    Block,
    Confirm,
    PoliteBlock,
    Allow,
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name().eq_ignore_ascii_case(name))
}

fn children<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name().eq_ignore_ascii_case(name))
}

/// Whether `<identity>` names the watcher (`sip:user@domain`).
fn identity_matches(identity: Node<'_, '_>, uri: &str, domain: &str) -> bool {
    if children(identity, "one").any(|o| {
        o.attribute("id")
            .is_some_and(|id| id.eq_ignore_ascii_case(uri))
    }) {
        return true;
    }
    children(identity, "many").any(|m| {
        let in_domain = m
            .attribute("domain")
            .is_none_or(|d| d.eq_ignore_ascii_case(domain));
        let excepted = children(m, "except").any(|e| {
            e.attribute("id")
                .is_some_and(|id| id.eq_ignore_ascii_case(uri))
                || e.attribute("domain")
                    .is_some_and(|d| d.eq_ignore_ascii_case(domain))
        });
        in_domain && !excepted
    })
}

/// Whether `now` falls in one of `<validity>`'s `<from>`/`<until>` intervals.
fn valid_now(validity: Node<'_, '_>, now: i64) -> bool {
    let mut from: Option<i64> = None;
    for c in validity.children().filter(Node::is_element) {
        let t = c.text().and_then(|t| rfc3339(t.trim()));
        match c.tag_name().name() {
            "from" => from = t,
            "until" => {
                if let (Some(f), Some(u)) = (from, t)
                    && f <= now
                    && now <= u
                {
                    return true;
                }
                from = None;
            }
            _ => {}
        }
    }
    false
}

/// Seconds since the epoch of an RFC 3339 date-time (`2026-12-07T10:00:00Z`, fractions and
/// `±hh:mm` offsets allowed).
pub fn rfc3339(t: &str) -> Option<i64> {
    let num = |s: &str| s.parse::<i64>().ok();
    let (date, time) = t.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let (y, mo, da) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let (clock, offset) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let i = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off.get(1..)?.split_once(':')?;
        (c, sign * (num(oh)? * 3600 + num(om)? * 60))
    };
    let mut c = clock.split(':');
    let (h, mi) = (num(c.next()?)?, num(c.next()?)?);
    let s = num(c.next()?.split('.').next()?)?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s - offset)
}

/// The `<sub-handling>` of the first rule that applies to the watcher; `None` when none
/// does (or the document is not XML, or that rule says nothing about subscriptions).
pub fn evaluate(doc: &str, uri: &str, domain: &str, now: i64) -> Option<SubHandling> {
    let parsed = Document::parse(doc).ok()?;
    let ruleset = parsed
        .descendants()
        .find(|n| n.is_element() && n.tag_name().name() == "ruleset")?;
    for rule in ruleset.children().filter(Node::is_element) {
        if let Some(cond) = child(rule, "conditions") {
            if child(cond, "sphere").is_some() {
                continue;
            }
            if let Some(v) = child(cond, "validity")
                && !valid_now(v, now)
            {
                continue;
            }
            if let Some(id) = child(cond, "identity")
                && !identity_matches(id, uri, domain)
            {
                continue;
            }
        }
        let handling = child(rule, "actions")
            .and_then(|a| child(a, "sub-handling"))
            .and_then(|s| s.text())
            .map(str::trim)?;
        return match handling {
            "block" => Some(SubHandling::Block),
            "confirm" => Some(SubHandling::Confirm),
            "polite-block" => Some(SubHandling::PoliteBlock),
            "allow" => Some(SubHandling::Allow),
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(rules: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?><cr:ruleset xmlns=\"urn:ietf:params:xml:ns:pres-rules\" \
             xmlns:cr=\"urn:ietf:params:xml:ns:common-policy\">{rules}</cr:ruleset>"
        )
    }

    fn rule(id: &str, cond: &str, handling: &str) -> String {
        format!(
            "<cr:rule id=\"{id}\"><cr:conditions>{cond}</cr:conditions>\
             <cr:actions><sub-handling>{handling}</sub-handling></cr:actions></cr:rule>"
        )
    }

    #[test]
    fn the_first_rule_that_applies_decides() {
        let d = doc(&[
            rule("a", "<cr:identity><cr:one id=\"sip:bob@example.com\"/></cr:identity>", "allow"),
            rule(
                "b",
                "<cr:identity><cr:many domain=\"example.com\"><cr:except id=\"sip:eve@example.com\"/></cr:many></cr:identity>",
                "confirm",
            ),
            rule("c", "<cr:identity><cr:many/></cr:identity>", "polite-block"),
        ]
        .concat());
        let at = |uri: &str, dom: &str| evaluate(&d, uri, dom, 0);
        assert_eq!(
            at("sip:bob@example.com", "example.com"),
            Some(SubHandling::Allow)
        );
        assert_eq!(
            at("sip:carol@example.com", "example.com"),
            Some(SubHandling::Confirm)
        );
        // eve is excepted from rule b; the catch-all c takes her, and other domains.
        assert_eq!(
            at("sip:eve@example.com", "example.com"),
            Some(SubHandling::PoliteBlock)
        );
        assert_eq!(
            at("sip:mal@other.net", "other.net"),
            Some(SubHandling::PoliteBlock)
        );
    }

    #[test]
    fn conditions_spheres_validity_and_missing_actions() {
        let d = doc(&[
            rule("s", "<cr:sphere value=\"work\"/>", "allow"),
            rule(
                "v",
                "<cr:validity><cr:from>2026-01-01T00:00:00Z</cr:from><cr:until>2026-01-02T00:00:00+01:00</cr:until></cr:validity>",
                "block",
            ),
            rule("all", "", "confirm"),
        ]
        .concat());
        let jan1 = rfc3339("2026-01-01T12:00:00Z").unwrap();
        assert_eq!(evaluate(&d, "sip:a@b", "b", jan1), Some(SubHandling::Block));
        assert_eq!(
            evaluate(&d, "sip:a@b", "b", jan1 + 86_400),
            Some(SubHandling::Confirm)
        );
        let no_actions = doc("<cr:rule id=\"x\"><cr:conditions/></cr:rule>");
        assert_eq!(evaluate(&no_actions, "sip:a@b", "b", 0), None);
        assert_eq!(evaluate("not xml", "sip:a@b", "b", 0), None);
        assert_eq!(evaluate(&doc(""), "sip:a@b", "b", 0), None);
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(rfc3339("2026-12-07T10:00:00.5+02:00"), Some(1_796_630_400));
        assert_eq!(rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(rfc3339("yesterday"), None);
    }

    proptest::proptest! {
        #[test]
        fn any_document_or_date_evaluates_without_panicking(doc in ".{0,300}", date in ".{0,40}") {
            let _ = evaluate(&doc, "sip:a@b", "b", 0);
            let _ = rfc3339(&date);
        }
    }
}
