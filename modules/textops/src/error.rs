//! Why a textops function did nothing: logged, and the function returns false.

/// An expression that cannot be used: a literal one stops the script from loading (as
/// OpenSIPS refuses it); one read from a variable is refused when the function runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ExprError {
    #[error("bad regular expression `{re}`: {why}")]
    Regex { re: String, why: String },
    #[error("bad subst expression `{expr}`: {why}")]
    Subst { expr: String, why: String },
}

/// A rewrite refused as a whole: nothing of it is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RewriteError {
    /// OpenSIPS: "matched string is empty... invalid regexp?".
    #[error("the expression matched the empty string")]
    EmptyMatch,
    #[error("it overlaps an earlier change of the message")]
    Overlap,
}
