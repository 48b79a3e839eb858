//! Regular expressions that scripts pass at run time (`t_check_status`, `check_route_param`,
//! sipmsgops' `*_re` functions, `=~` against a variable), compiled once per worker thread and
//! then reused: compiling one costs far more than matching a status code or a header name.
//! Case-insensitive, as OpenSIPS compiles regex parameters (`REG_ICASE`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use regex::{Regex, RegexBuilder};

/// Past this many expressions the cache starts over (a script that builds patterns from
/// message data must not grow it without bound).
const KEEP: usize = 256;

/// Compiled expressions by (pattern, multi-line).
type Compiled = HashMap<(Box<str>, bool), Rc<Regex>>;

thread_local! {
    static CACHE: RefCell<Compiled> = RefCell::new(HashMap::new());
}

/// `pattern` compiled case-insensitively, `^`/`$` at line ends when `multi_line`; from the
/// cache when this thread compiled it before. Errors are not kept.
pub fn icase(pattern: &str, multi_line: bool) -> Result<Rc<Regex>, regex::Error> {
    CACHE.with(|c| {
        let key = (Box::<str>::from(pattern), multi_line);
        if let Some(re) = c.borrow().get(&key) {
            return Ok(Rc::clone(re));
        }
        let re = Rc::new(
            RegexBuilder::new(pattern)
                .case_insensitive(true)
                .multi_line(multi_line)
                .build()?,
        );
        let mut cache = c.borrow_mut();
        if cache.len() >= KEEP {
            cache.clear();
        }
        cache.insert(key, Rc::clone(&re));
        Ok(re)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn compiled_once_then_reused_and_bounded() {
        let a = icase("^4[0-9]{2}$", false).unwrap();
        assert!(Rc::ptr_eq(&a, &icase("^4[0-9]{2}$", false).unwrap()));
        assert!(!Rc::ptr_eq(&a, &icase("^4[0-9]{2}$", true).unwrap()));
        assert!(a.is_match("486") && icase("abc", false).unwrap().is_match("xABCx"));
        assert!(icase("(", false).is_err());
        for i in 0..KEEP + 3 {
            icase(&format!("x{i}"), false).unwrap();
        }
        assert!(CACHE.with(|c| c.borrow().len()) <= KEEP);
    }
}
