//! The POSIX translation, checked against what glibc's `regcomp`/`regexec` do.

#![allow(clippy::unwrap_used)]
use super::*;

const NL: Flags = Flags {
    icase: true,
    newline: true,
};

fn first(re: &str, hay: &[u8]) -> Option<Range<usize>> {
    Pattern::compile(re, NL).unwrap().find(hay)
}

fn text_of(re: &str, hay: &[u8]) -> Option<String> {
    first(re, hay).map(|r| String::from_utf8_lossy(&hay[r]).into_owned())
}

#[test]
fn negated_lists_and_dots_stop_at_line_ends() {
    let hay = b"User-Agent: Softphone 1.0\r\nSubject: x/y\r\n";
    assert_eq!(
        text_of("^User-Agent: [^/]*", hay).as_deref(),
        Some("User-Agent: Softphone 1.0\r")
    );
    assert_eq!(
        text_of("^User-Agent: .*", hay).as_deref(),
        Some("User-Agent: Softphone 1.0\r")
    );
    let dotall = Flags {
        icase: false,
        newline: false,
    };
    let p = Pattern::compile("Agent[^/]*", dotall).unwrap();
    assert_eq!(
        p.find(hay),
        Some(5..37),
        "into the next line, up to the slash"
    );
}

#[test]
fn brackets_keep_their_posix_meaning() {
    assert_eq!(translate("[]a]", true).unwrap(), "[\\]a]");
    assert_eq!(translate("[^]a]", true).unwrap(), "[^\\]a\\n]");
    assert_eq!(translate("[^]a]", false).unwrap(), "[^\\]a]");
    assert_eq!(text_of("[\\.]+", b"a\\.b").as_deref(), Some("\\."));
    assert_eq!(text_of("[[:digit:]]+", b"ab123c").as_deref(), Some("123"));
    assert_eq!(text_of("[a-]+", b"x-a-y").as_deref(), Some("-a-"));
    assert_eq!(text_of("[[.-.][=x=]]+", b"a-x-b").as_deref(), Some("-x-"));
    assert_eq!(text_of("[&~[]+", b"a&~[b").as_deref(), Some("&~["));
    assert_eq!(text_of("[^[:space:]]+", b"  ab c").as_deref(), Some("ab"));
    for bad in ["[a", "[[:nope:]]", "[z-a]", "[[:digit:]", "[a-[:digit:]]"] {
        assert!(Pattern::compile(bad, NL).is_err(), "{bad}");
    }
}

#[test]
fn escapes_intervals_and_repetitions() {
    assert_eq!(text_of("\\d+", b"123 dd").as_deref(), Some("dd"));
    assert_eq!(text_of("a\\.b", b"axb a.b").as_deref(), Some("a.b"));
    assert_eq!(text_of("\\<b[a-z]*", b"ab bc").as_deref(), Some("bc"));
    assert_eq!(text_of("a{,2}b", b"aaab").as_deref(), Some("aab"));
    assert_eq!(text_of("x{2}", b"xxx").as_deref(), Some("xx"));
    assert_eq!(text_of("a.*?b", b"axxbyyb").as_deref(), Some("axxbyyb"));
    assert_eq!(text_of("a)", b"(a)").as_deref(), Some("a)"));
    assert_eq!(text_of("a|b#", b"b#").as_deref(), Some("b#"));
    assert_eq!(translate("a{,3}", true).unwrap(), "a{0,3}");
    assert_eq!(translate("a*?", true).unwrap(), "(?:a*)?");
    for bad in [
        "(a)\\1", "a{x}", "a{", "*a", "(*a)", "a\\", "(a", "a|*b", "^*a", "(?i)a",
    ] {
        assert!(Pattern::compile(bad, NL).is_err(), "{bad}");
    }
}

#[test]
fn bytes_are_bytes() {
    let hay = b"Subject: caf\xe9\x00!\r\n";
    assert_eq!(first("caf.*!", hay), Some(9..15));
    assert_eq!(first("caf[^x]", hay), Some(9..13));
    // ASCII-only case folding, as in the C locale.
    assert_eq!(first("SUBJECT: CAF", hay), Some(0..12));
    assert_eq!(first("\u{e9}", "é".as_bytes()), Some(0..2));
    assert_eq!(first("caf\u{c9}", hay), None);
}

#[test]
fn where_caret_matches_again() {
    let p = Pattern::compile("^a=x.*\n", NL).unwrap();
    let hay = b"a=x1\na=x2\nb\na=x3\n";
    let spans = |scan| -> Vec<Range<usize>> {
        p.matches(hay, scan, false)
            .unwrap()
            .into_iter()
            .map(|h| h.span)
            .collect()
    };
    assert_eq!(spans(Scan::First), vec![0..5]);
    assert_eq!(
        spans(Scan::All { renew_bol: true }),
        vec![0..5, 5..10, 12..17]
    );
    // REG_NOTBOL stays: not right where a match stopped, but at a later line start.
    assert_eq!(spans(Scan::All { renew_bol: false }), vec![0..5, 12..17]);
    // Without `^` the flag changes nothing.
    let unanchored = Pattern::compile("a=x.*\n", NL).unwrap();
    let all = unanchored
        .matches(hay, Scan::All { renew_bol: false }, true)
        .unwrap();
    let starts: Vec<usize> = all.iter().map(|h| h.span.start).collect();
    assert_eq!(starts, vec![0, 5, 12]);
    assert_eq!(all[1].groups, vec![Some(5..10)]);
    // After a match that ends in CR `^` matches again (it does not in the crate).
    let p = Pattern::compile("^b", NL).unwrap();
    let hits = p.matches(b"a\rb", Scan::First, false).unwrap();
    assert!(hits.is_empty());
    let p = Pattern::compile("a\r|^b", NL).unwrap();
    let hits = p
        .matches(b"a\rb", Scan::All { renew_bol: true }, true)
        .unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[1].span, 2..3);
    assert_eq!(hits[1].groups, vec![Some(2..3)]);
}

#[test]
fn empty_matches_are_refused() {
    let p = Pattern::compile("x*", NL).unwrap();
    assert_eq!(
        p.matches(b"abc", Scan::First, false),
        Err(RewriteError::EmptyMatch)
    );
    let p = Pattern::compile("a*", NL).unwrap();
    assert_eq!(
        p.matches(b"aab", Scan::All { renew_bol: true }, false),
        Err(RewriteError::EmptyMatch)
    );
    assert_eq!(
        p.matches(b"aa", Scan::All { renew_bol: true }, false)
            .unwrap()
            .len(),
        1
    );
}
