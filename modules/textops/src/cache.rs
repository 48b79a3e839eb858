//! Expressions compiled once per worker thread and kept. The script hands textops its
//! expressions as text on every call (a literal is only checked when the script loads), and
//! compiling one costs far more than running it. Failures are kept too, so a bad expression
//! read from a variable is not compiled again for every message.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use crate::error::ExprError;
use crate::posix::{Flags, Pattern};
use crate::subst::Subst;

/// Enough for the distinct expressions of a large script; the oldest goes first beyond it.
const KEEP: usize = 64;

/// Recently compiled expressions, keyed by their text.
struct Recent<T> {
    entries: VecDeque<(String, Result<Rc<T>, ExprError>)>,
}

impl<T> Recent<T> {
    const fn new() -> Recent<T> {
        Recent {
            entries: VecDeque::new(),
        }
    }

    fn get(
        &mut self,
        key: &str,
        build: impl FnOnce() -> Result<T, ExprError>,
    ) -> Result<Rc<T>, ExprError> {
        if let Some((_, v)) = self.entries.iter().find(|(k, _)| k == key) {
            return v.clone();
        }
        let v = build().map(Rc::new);
        if self.entries.len() >= KEEP {
            self.entries.pop_front();
        }
        self.entries.push_back((key.to_owned(), v.clone()));
        v
    }
}

thread_local! {
    /// Regular expressions compiled with textops' fixed flags.
    static PATTERNS: RefCell<Recent<Pattern>> = const { RefCell::new(Recent::new()) };
    static SUBSTS: RefCell<Recent<Subst>> = const { RefCell::new(Recent::new()) };
}

/// A regular expression parameter, compiled as OpenSIPS' `fixup_regcomp` does
/// (`REG_EXTENDED | REG_ICASE | REG_NEWLINE`).
pub(crate) fn pattern(re: &str) -> Result<Rc<Pattern>, ExprError> {
    let flags = Flags {
        icase: true,
        newline: true,
    };
    PATTERNS.with(|c| c.borrow_mut().get(re, || Pattern::compile(re, flags)))
}

/// A subst expression parameter.
pub(crate) fn subst(expr: &str) -> Result<Rc<Subst>, ExprError> {
    SUBSTS.with(|c| c.borrow_mut().get(expr, || Subst::parse(expr)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kept_and_bounded() {
        let a = pattern("abc").unwrap();
        assert!(Rc::ptr_eq(&a, &pattern("abc").unwrap()));
        for i in 0..KEEP + 5 {
            pattern(&format!("x{i}")).unwrap();
        }
        assert_eq!(PATTERNS.with(|c| c.borrow().entries.len()), KEEP);
        assert!(!Rc::ptr_eq(&a, &pattern("abc").unwrap()));
        assert!(pattern("a(").is_err());
        assert!(pattern("a(").is_err());
        assert!(subst("/a/b/").is_ok() && subst("/a/b").is_err());
    }
}
