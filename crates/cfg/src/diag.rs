//! Diagnostics in the style of rustc: what is wrong, where (file:line:col), the offending text
//! underlined, and a hint. Several are collected per run.

use std::fmt::Write;

use crate::source::{SourceMap, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub span: Option<Span>,
    /// Text printed under the underline.
    pub label: Option<String>,
    /// `= help: ...` lines.
    pub help: Vec<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span: Some(span),
            label: None,
            help: Vec::new(),
        }
    }

    /// An error not tied to a place in the source (e.g. a file that cannot be read).
    pub fn global(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span: None,
            label: None,
            help: Vec::new(),
        }
    }

    pub fn warning(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message, span)
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help.push(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic:
    ///
    /// ```text
    /// error: unknown global parameter `listen`
    ///   --> opensips.cfg:12:1
    ///    |
    /// 12 | listen=udp:127.0.0.1:5060
    ///    | ^^^^^^ removed in OpenSIPS 4.0
    ///    = help: use `socket=udp:127.0.0.1:5060`
    /// ```
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut out = String::new();
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{kind}: {}", self.message);
        let mut gutter = 1;
        if let Some(span) = self.span
            && let Some(file) = sources.get(span.file)
        {
            let (line, col) = file.line_col(span.start);
            let (end_line, end_col) = file.line_col(span.end.max(span.start));
            let text = file.line_text(line);
            gutter = line.to_string().len();
            let pad = " ".repeat(gutter);
            let _ = writeln!(out, "{pad}--> {}", sources.location(span));
            let _ = writeln!(out, "{pad} |");
            // Tabs are shown as four spaces (as rustc does) so the underline lines up.
            let _ = writeln!(out, "{line} | {}", text.replace('\t', "    "));
            let chars: Vec<char> = text.chars().collect();
            let cols = |from: usize, to: usize| -> usize {
                chars
                    .iter()
                    .skip(from)
                    .take(to.saturating_sub(from))
                    .map(|&c| if c == '\t' { 4 } else { 1 })
                    .sum()
            };
            let last = if end_line == line {
                end_col - 1
            } else {
                chars.len()
            };
            let width = cols(col - 1, last).max(1);
            let lead = " ".repeat(cols(0, col - 1));
            let _ = write!(out, "{pad} | {lead}{}", "^".repeat(width));
            match &self.label {
                Some(l) => {
                    let _ = writeln!(out, " {l}");
                }
                None => out.push('\n'),
            }
        }
        for h in &self.help {
            let _ = writeln!(out, "{} = help: {h}", " ".repeat(gutter));
        }
        out
    }
}

/// The names in `candidates` closest to `name` (edit distance ≤ a third of its length, at least 1),
/// best first — for "did you mean" hints.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // One- and two-letter names are one edit away from many others: a guess would mislead.
    if name.chars().count() < 3 {
        return None;
    }
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| {
            (
                distance(&name.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_rustc() {
        let mut sm = SourceMap::new();
        let f = sm.add(
            "opensips.cfg",
            "log_level=3\nlisten=udp:127.0.0.1:5060\n".to_owned(),
        );
        let d = Diagnostic::error("unknown global parameter `listen`", Span::new(f, 12, 18))
            .with_label("removed in OpenSIPS 4.0")
            .with_help("use `socket=udp:127.0.0.1:5060`");
        assert_eq!(
            d.render(&sm),
            "error: unknown global parameter `listen`\n \
             --> opensips.cfg:2:1\n  |\n\
             2 | listen=udp:127.0.0.1:5060\n  | ^^^^^^ removed in OpenSIPS 4.0\n  \
             = help: use `socket=udp:127.0.0.1:5060`\n"
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("log_levle", ["log_level", "xlog_level"]),
            Some("log_level")
        );
        assert_eq!(suggest("t_relya", ["t_relay", "t_reply"]), Some("t_relay"));
        assert_eq!(suggest("zzzzzz", ["log_level"]), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
