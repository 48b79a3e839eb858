//! Shell wildcard patterns over header names, as OpenSIPS matches them (`remove_hf_glob`,
//! `get_glob_headers_values`: glibc `fnmatch` with `FNM_CASEFOLD` only): `*` any run, `?` any
//! one byte, `[...]` a set (`!` or `^` first negates it, `]` first is literal, `a-z` ranges,
//! `[:alpha:]` classes), `\x` the byte `x`. A `[` without its `]` is an ordinary byte. Letters
//! compare case-insensitively (ASCII, as in the C locale); `/` and a leading `.` are ordinary.

/// One step of a pattern.
#[derive(Debug, Clone, Copy)]
enum Step<'p> {
    Star,
    Any,
    Byte(u8),
    /// The inside of a bracket expression, without its `[` and `]`.
    Set(&'p [u8]),
}

/// The step at the start of `p` and the bytes it takes.
fn step(p: &[u8]) -> Option<(Step<'_>, usize)> {
    let (&c, rest) = p.split_first()?;
    Some(match c {
        b'*' => (Step::Star, 1),
        b'?' => (Step::Any, 1),
        b'\\' => match rest.first() {
            Some(&e) => (Step::Byte(e), 2),
            None => (Step::Byte(b'\\'), 1),
        },
        b'[' => match set_end(rest) {
            Some(end) => (Step::Set(rest.get(..end).unwrap_or(&[])), end + 2),
            None => (Step::Byte(b'['), 1),
        },
        c => (Step::Byte(c), 1),
    })
}

/// Where the `]` closing a bracket expression whose inside is `s` stands in `s`.
fn set_end(s: &[u8]) -> Option<usize> {
    let mut i = usize::from(matches!(s.first(), Some(b'!' | b'^')));
    // A `]` right after the opening (or the negation) is a member.
    if s.get(i) == Some(&b']') {
        i += 1;
    }
    while let Some(&c) = s.get(i) {
        match c {
            b']' => return Some(i),
            b'\\' => i += 2,
            b'[' if s.get(i + 1) == Some(&b':') => {
                // `[:class:]` is one member; a `[:` without its `:]` is two plain bytes.
                let close = s
                    .get(i + 2..)
                    .and_then(|r| r.windows(2).position(|w| w == b":]"));
                i = close.map_or(i + 1, |k| i + 2 + k + 2);
            }
            _ => i += 1,
        }
    }
    None
}

fn class(name: &[u8], c: u8) -> bool {
    match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        b"space" => c.is_ascii_whitespace() || c == 0x0b,
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => false,
    }
}

/// Whether `c` is in the set whose inside is `s`.
fn in_set(s: &[u8], c: u8) -> bool {
    let (negate, mut i) = match s.first() {
        Some(b'!' | b'^') => (true, 1),
        _ => (false, 0),
    };
    let lc = c.to_ascii_lowercase();
    let mut found = false;
    while i < s.len() {
        if s.get(i) == Some(&b'[')
            && s.get(i + 1) == Some(&b':')
            && let Some(k) = s
                .get(i + 2..)
                .and_then(|r| r.windows(2).position(|w| w == b":]"))
        {
            found |= class(s.get(i + 2..i + 2 + k).unwrap_or(&[]), c);
            i += 2 + k + 2;
            continue;
        }
        let (lo, n) = match s.get(i) {
            Some(b'\\') => (s.get(i + 1).copied().unwrap_or(b'\\'), 2),
            Some(&b) => (b, 1),
            None => break,
        };
        i += n;
        // `a-z`; a `-` at the end is a member.
        if s.get(i) == Some(&b'-') && i + 1 < s.len() {
            let (hi, n) = match s.get(i + 1) {
                Some(b'\\') => (s.get(i + 2).copied().unwrap_or(b'\\'), 2),
                Some(&b) => (b, 1),
                None => break,
            };
            i += 1 + n;
            found |= (lo..=hi).contains(&c)
                || (lo.to_ascii_lowercase()..=hi.to_ascii_lowercase()).contains(&lc);
        } else {
            found |= lo.to_ascii_lowercase() == lc;
        }
    }
    found != negate
}

/// Whether `name` matches `pattern` as a whole.
pub(crate) fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where to resume when what follows the last `*` fails: after it, one byte further on.
    let mut resume: Option<(usize, usize)> = None;
    loop {
        let here = pattern.get(p..).and_then(step);
        let c = name.get(n).copied();
        let advanced = match (here, c) {
            (Some((Step::Star, len)), _) => {
                p += len;
                resume = Some((p, n));
                continue;
            }
            (None, None) => return true,
            (Some((Step::Any, len)), Some(_)) => Some(len),
            (Some((Step::Byte(b), len)), Some(c)) if b.eq_ignore_ascii_case(&c) => Some(len),
            (Some((Step::Set(s), len)), Some(c)) if in_set(s, c) => Some(len),
            _ => None,
        };
        match (advanced, resume) {
            (Some(len), _) => {
                p += len;
                n += 1;
            }
            (None, Some((rp, rn))) if rn < name.len() => {
                resume = Some((rp, rn + 1));
                (p, n) = (rp, rn + 1);
            }
            (None, _) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    fn g(p: &str, n: &str) -> bool {
        glob(p.as_bytes(), n.as_bytes())
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(g("X-*", "x-custom"));
        assert!(g("P-?-Id", "p-a-id"));
        assert!(g("*", ""));
        assert!(g("*-*-*", "a-b-c"));
        assert!(g("**x", "aax"));
        assert!(!g("X-*", "Y-custom"));
        assert!(!g("Via?", "Via"));
        assert!(!g("*a", "b"));
    }

    #[test]
    fn bracket_sets() {
        assert!(g("X-[AB]1", "X-A1"));
        assert!(g("X-[AB]1", "x-b1"), "case folded");
        assert!(!g("X-[AB]1", "X-C1"));
        assert!(g("X-[!AB]1", "X-C1"));
        assert!(g("X-[^AB]1", "X-C1"));
        assert!(!g("X-[!AB]1", "X-a1"));
        assert!(g("X-[a-c]", "X-B"));
        assert!(!g("X-[a-c]", "X-D"));
        assert!(g("X-[]]", "X-]"));
        assert!(g("X-[!]]", "X-a"));
        assert!(g("X-[a-]", "X--"));
        assert!(g("X-[[:digit:]]", "X-7"));
        assert!(!g("X-[[:digit:]]", "X-a"));
        assert!(g("X-[[:alpha:][:digit:]]", "X-q"));
    }

    #[test]
    fn escapes_and_unclosed_brackets() {
        assert!(g("X-\\*", "X-*"));
        assert!(!g("X-\\*", "X-a"));
        assert!(g("X-[", "X-["));
        assert!(g("X-[ab", "x-[AB"));
        assert!(g("a\\", "a\\"));
    }
}
