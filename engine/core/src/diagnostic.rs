//! Compiler-style diagnostics: a message, the source span it is about, and a
//! renderer that prints file, line, column and a caret snippet.

use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;

/// A byte range in a workflow source file.
pub type Span = Range<usize>;

/// A value with the span it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

/// One problem found in a workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong, in one lower-case sentence.
    pub message: String,
    /// Where; `None` for whole-file problems.
    pub span: Option<Span>,
    /// Short text printed under the carets.
    pub label: String,
    /// Further spans that explain the problem (e.g. the other end of a cycle).
    pub related: Vec<(Span, String)>,
    /// Hints printed after the snippet.
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn at(span: Span, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            span: Some(span),
            label: String::new(),
            related: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn whole_file(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            span: None,
            label: String::new(),
            related: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn with_related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// 1-based line and column of the primary span in `source`.
    pub fn line_column(&self, source: &str) -> Option<(usize, usize)> {
        let start = self.span.as_ref()?.start.min(source.len());
        let before = &source.as_bytes()[..start];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        Some((line, column))
    }

    /// The codespan form of this diagnostic, for callers that render in colour.
    pub fn to_codespan(&self, source_len: usize) -> CsDiagnostic<()> {
        let clamp =
            |s: &Span| s.start.min(source_len)..s.end.min(source_len).max(s.start.min(source_len));
        let mut labels = Vec::new();
        if let Some(span) = &self.span {
            labels.push(Label::primary((), clamp(span)).with_message(&self.label));
        }
        for (span, label) in &self.related {
            labels.push(Label::secondary((), clamp(span)).with_message(label));
        }
        CsDiagnostic::error()
            .with_message(&self.message)
            .with_labels(labels)
            .with_notes(self.notes.clone())
    }
}

/// Renders diagnostics as plain text (no colour), the way `weft check` prints them.
pub fn render(file_name: &str, source: &str, diagnostics: &[Diagnostic]) -> String {
    let file = SimpleFile::new(file_name, source);
    let config = term::Config::default();
    let mut out = String::new();
    for diagnostic in diagnostics {
        let rendered =
            term::emit_into_string(&config, &file, &diagnostic.to_codespan(source.len()))
                .unwrap_or_else(|_| format!("error: {}\n", diagnostic.message));
        out.push_str(&rendered);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = "a = 1\nbb = 2\n";
        let d = Diagnostic::at(8..9, "x");
        assert_eq!(d.line_column(src), Some((2, 3)));
    }

    #[test]
    fn render_shows_file_line_and_caret() {
        let src = "[workflow]\nname = 3\n";
        let d = Diagnostic::at(18..19, "expected a string").with_label("this is an integer");
        let out = render("w.toml", src, &[d]);
        assert!(out.contains("w.toml:2:8"), "{out}");
        assert!(out.contains('^'), "{out}");
    }
}
