//! Shell-style wildcard matching, as fnmatch(3) without flags: what OpenSIPS modules use for
//! their `pattern` columns and arguments (dispatcher attributes, permissions patterns).

/// Whether `text` matches `pattern` (`*`, `?`, `[…]` with ranges and `!`/`^`), whole.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    glob(pattern.as_bytes(), text.as_bytes())
}

fn glob(pat: &[u8], text: &[u8]) -> bool {
    match pat.first() {
        None => text.is_empty(),
        Some(b'*') => (0..=text.len()).any(|i| glob(&pat[1..], &text[i..])),
        Some(b'?') => !text.is_empty() && glob(&pat[1..], &text[1..]),
        Some(b'[') => {
            let Some(end) = pat.iter().skip(2).position(|&b| b == b']').map(|e| e + 2) else {
                return text.first() == Some(&b'[') && glob(&pat[1..], &text[1..]);
            };
            let Some(&c) = text.first() else {
                return false;
            };
            let (negate, class) = match pat[1] {
                b'!' | b'^' => (true, &pat[2..end]),
                _ => (false, &pat[1..end]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= (class[i]..=class[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob(&pat[end + 1..], &text[1..])
        }
        Some(&p) => text.first() == Some(&p) && glob(&pat[1..], &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_matches_like_fnmatch() {
        for (pat, text, want) in [
            ("*", "anything", true),
            ("carrier*", "carrier=1", true),
            ("*=1", "carrier=1", true),
            ("c?rrier", "carrier", true),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false),
            ("abc", "abcd", false),
            ("", "", true),
            ("[", "[", true),
        ] {
            assert_eq!(glob(pat.as_bytes(), text.as_bytes()), want, "{pat} {text}");
        }
    }
}
