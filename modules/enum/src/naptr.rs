//! ENUM without I/O: the domain names an E.164 number (or an ISN) is looked up under
//! (RFC 6116 §2.4, the reversed digits), which NAPTR records apply (RFC 6116 §3.4.3: flag
//! `u`, an `E2U+…sip` service), their order (RFC 3403 §4.1: order, then preference) and the
//! `!pattern!replacement!` rewrite (RFC 3402 §3.2) as OpenSIPS applies it.

use resolve::wire::Naptr;

/// Whether `number` is `+` and 2 to 15 digits (OpenSIPS `is_e164`).
pub fn is_e164(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|d| (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// `+35831234567` under `e164.arpa.`: `7.6.5.4.3.2.1.3.8.5.3.e164.arpa.` (the `+` dropped).
pub fn enum_domain(number: &str, suffix: &str) -> String {
    let mut name = String::with_capacity(number.len() * 2 + suffix.len());
    for c in number.chars().skip(1).collect::<Vec<_>>().into_iter().rev() {
        name.push(c);
        name.push('.');
    }
    name.push_str(suffix);
    name
}

/// The length of the country code of `digits` (the number without `+`), by the table
/// OpenSIPS uses; 0 for a number too short or not starting with two digits.
pub fn cc_len(digits: &str) -> usize {
    let b = digits.as_bytes();
    if b.len() < 3 || !b[1].is_ascii_digit() {
        return 0;
    }
    let (d1, d2) = (b[0], b[1]);
    let two = match d1 {
        b'1' | b'7' => return 1,
        b'2' => d2 == b'0' || d2 == b'7',
        b'3' => (b'0'..=b'4').contains(&d2) || d2 == b'6' || d2 == b'9',
        b'4' => d2 != b'2',
        b'5' => d2 != b'9',
        b'6' => d2 <= b'6',
        b'8' => matches!(d2, b'1' | b'2' | b'4' | b'6'),
        b'9' => d2 <= b'5' || d2 == b'8',
        _ => return 0,
    };
    if two { 2 } else { 3 }
}

/// The Infrastructure-ENUM name: the reversed digits with `separator` inserted after the
/// country code's (`sdl` digits from the start), then `apex`.
pub fn i_enum_domain(number: &str, sdl: usize, separator: &str, apex: &str) -> String {
    let digits: Vec<char> = number.chars().skip(1).collect();
    let mut name = String::new();
    for (i, c) in digits.iter().enumerate().rev() {
        name.push(*c);
        name.push('.');
        // `i` counts from 0 at the first digit; the separator goes after the sdl-th one.
        if !separator.is_empty() && i == sdl {
            name.push_str(separator);
            name.push('.');
        }
    }
    name.push_str(apex);
    name
}

/// Where the `txt` and `ebl` branch-location records of `number` are: the label, the
/// country code's digits reversed, the suffix (`i.4.3.e164.arpa.` for +43…).
pub fn label_domain(number: &str, cc_len: usize, label: &str, suffix: &str) -> String {
    let mut name = format!("{label}.");
    for c in number
        .chars()
        .skip(1)
        .take(cc_len)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        name.push(c);
        name.push('.');
    }
    name.push_str(suffix);
    name
}

/// A number as C's `atoi` reads it: leading blanks, a sign, digits; 0 without digits.
pub fn atoi(text: &str) -> i64 {
    let t = text.trim_start();
    let (sign, rest) = match t.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    sign * digits.parse::<i64>().unwrap_or(0)
}

/// The ISN name of `user` (`digits*itad`): the digits before `*` reversed, then the ITAD as
/// written, then `suffix` (`6.5.1212.freenum.org.` for `56*1212`). `None` without an ITAD.
pub fn isn_domain(user: &str, suffix: &str) -> Option<String> {
    let (digits, rest) = user.split_once('*')?;
    let itad: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if itad.is_empty() {
        return None;
    }
    let mut name = String::new();
    for c in digits.chars().rev() {
        name.push(c);
        name.push('.');
    }
    name.push_str(&itad);
    name.push('.');
    name.push_str(suffix);
    Some(name)
}

/// Whether a NAPTR is for SIP: flag `u` and, with no `service`, `E2U+sip` (or `sip+E2U`);
/// with a `service` not starting with `+`, `E2U+<service>:sip`; with `+a+b:sip…`, any of
/// those among the `+`-separated services after `E2U+`. Case is ignored.
pub fn sip_match(n: &Naptr, service: &str) -> bool {
    let u = n.flags.eq_ignore_ascii_case("u");
    let services = n.services.as_str();
    if service.is_empty() {
        return u
            && (services.eq_ignore_ascii_case("e2u+sip")
                || services.eq_ignore_ascii_case("sip+e2u"));
    }
    if let Some(wanted) = service.strip_prefix('+') {
        // OpenSIPS does not look at the flags for compound services.
        let Some(offered) = strip_prefix_ci(services, "e2u+") else {
            return false;
        };
        return offered
            .split('+')
            .any(|o| wanted.split('+').any(|w| w.eq_ignore_ascii_case(o)));
    }
    u && strip_prefix_ci(services, "e2u+")
        .and_then(|rest| strip_prefix_ci(rest, service))
        .is_some_and(|rest| rest.eq_ignore_ascii_case(":sip"))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Splits `!pattern!replacement!` (the delimiter must be `!`, as OpenSIPS requires).
pub fn split_regexp(regexp: &str) -> Option<(&str, &str)> {
    let body = regexp.strip_prefix('!')?;
    let (pattern, rest) = body.split_once('!')?;
    let (replacement, _) = rest.split_once('!')?;
    Some((pattern, replacement))
}

/// Applies `pattern` to `subject` and gives `replacement` with `\0`…`\9` replaced by the
/// groups matched (OpenSIPS `reg_replace`: only the replacement is kept; `\x` is `x`). `None`
/// when the pattern does not compile or match, or names a group that did not take part.
pub fn reg_replace(pattern: &str, replacement: &str, subject: &str) -> Option<String> {
    let re = regex::Regex::new(pattern).ok()?;
    let caps = re.captures(subject)?;
    let mut out = String::with_capacity(replacement.len() + subject.len());
    let mut chars = replacement.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let next = chars.next()?;
        match next.to_digit(10) {
            Some(d) => out.push_str(caps.get(d as usize)?.as_str()),
            None => out.push(next),
        }
    }
    Some(out)
}

/// Sorts by (order, preference), keeping the DNS order among equals.
pub fn sort(records: &mut [Naptr]) {
    records.sort_by_key(|n| (n.order, n.preference));
}

/// Adds `params` (`;npdi`) to `uri`'s parameters: at its end, or before its `?headers`.
pub fn add_uri_params(uri: &str, params: &str) -> String {
    match uri.split_once('?') {
        Some((head, headers)) => format!("{head}{params}?{headers}"),
        None => format!("{uri}{params}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naptr(flags: &str, services: &str) -> Naptr {
        Naptr {
            order: 10,
            preference: 10,
            flags: flags.into(),
            services: services.into(),
            regexp: String::new(),
            replacement: String::new(),
        }
    }

    #[test]
    fn e164_and_names() {
        assert!(is_e164("+35831234567"));
        assert!(!is_e164("35831234567"));
        assert!(!is_e164("+1"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164("+12a4"));
        assert_eq!(
            enum_domain("+35831234567", "e164.arpa."),
            "7.6.5.4.3.2.1.3.8.5.3.e164.arpa."
        );
        assert_eq!(
            isn_domain("56*1212", "freenum.org.").unwrap(),
            "6.5.1212.freenum.org."
        );
        assert_eq!(isn_domain("561212", "freenum.org."), None);
    }

    #[test]
    fn country_codes_and_infrastructure_names() {
        assert_eq!(cc_len("14155551234"), 1);
        assert_eq!(cc_len("4312345678"), 2);
        assert_eq!(cc_len("4212345678"), 3);
        assert_eq!(cc_len("35831234567"), 3);
        assert_eq!(cc_len("12"), 0);
        // +43 1 234: cc 43, the separator after the country code's digits.
        assert_eq!(
            i_enum_domain("+431234", 2, "i", "e164.arpa."),
            "4.3.2.1.i.3.4.e164.arpa."
        );
        assert_eq!(
            i_enum_domain("+431234", 2, "", "e164.arpa."),
            "4.3.2.1.3.4.e164.arpa."
        );
        assert_eq!(
            label_domain("+431234", 2, "i", "e164.arpa."),
            "i.3.4.e164.arpa."
        );
        assert_eq!((atoi(" 4x"), atoi("-2"), atoi("x")), (4, -2, 0));
    }

    #[test]
    fn service_matching() {
        assert!(sip_match(&naptr("u", "E2U+sip"), ""));
        assert!(sip_match(&naptr("U", "sip+e2u"), ""));
        assert!(!sip_match(&naptr("s", "E2U+sip"), ""));
        assert!(!sip_match(&naptr("u", "E2U+voice:sip"), ""));
        assert!(sip_match(&naptr("u", "E2U+voice:sip"), "voice"));
        assert!(!sip_match(&naptr("u", "E2U+video:sip"), "voice"));
        assert!(sip_match(
            &naptr("u", "e2u+voice:sip+video:sip"),
            "+sip+video:sip"
        ));
        assert!(!sip_match(&naptr("u", "e2u+voice:sip"), "+sip+video:sip"));
    }

    #[test]
    fn rewrites() {
        assert_eq!(
            split_regexp("!^\\+(.*)$!sip:\\1@gw.example!"),
            Some(("^\\+(.*)$", "sip:\\1@gw.example"))
        );
        assert_eq!(split_regexp("/a/b/"), None);
        assert_eq!(split_regexp("!a!b"), None);
        assert_eq!(
            reg_replace("^\\+(.*)$", "sip:\\1@gw.example", "+4312").as_deref(),
            Some("sip:4312@gw.example")
        );
        assert_eq!(
            reg_replace("^.*$", "sip:info\\@x", "+1").as_deref(),
            Some("sip:info@x")
        );
        assert_eq!(reg_replace("^9", "x", "+4312"), None);
        assert_eq!(reg_replace("(a)|(b)", "\\2", "a"), None);
        assert_eq!(add_uri_params("sip:a@b", ";npdi"), "sip:a@b;npdi");
        assert_eq!(add_uri_params("sip:a@b?h=1", ";npdi"), "sip:a@b;npdi?h=1");
        let mut v = vec![
            Naptr {
                order: 20,
                preference: 1,
                ..naptr("u", "a")
            },
            Naptr {
                order: 10,
                preference: 50,
                ..naptr("u", "b")
            },
            Naptr {
                order: 10,
                preference: 5,
                ..naptr("u", "c")
            },
        ];
        sort(&mut v);
        let order: Vec<_> = v.iter().map(|n| n.services.as_str()).collect();
        assert_eq!(order, ["c", "b", "a"]);
    }
}
