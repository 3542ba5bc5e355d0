//! Bounds on the texts a run keeps: a failure reason, a hook's error or a
//! step's error is cut to [`MAX_TEXT_BYTES`] before it is stored in an
//! event, so one step that fails with a huge message cannot bloat the event
//! log, the API's answers and every listing (the worker writes the whole
//! text to the step's log, where it belongs).

use super::event::{HookRun, Outcome};

/// Longest failure reason, hook error or step error kept, in bytes.
pub const MAX_TEXT_BYTES: usize = 8 * 1024;

/// `text` cut to at most about `max` bytes, at a character boundary, saying
/// how much was left out; unchanged when it fits.
pub fn bounded_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max.saturating_sub(80);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}… [{} more bytes; the whole text is in the step log]",
        &text[..cut],
        text.len() - cut
    )
}

impl Outcome {
    /// This outcome with its reason within [`MAX_TEXT_BYTES`].
    pub fn bounded(self) -> Self {
        match self {
            Outcome::Failed {
                reason,
                exit_code,
                retryable,
                kind,
            } if reason.len() > MAX_TEXT_BYTES => Outcome::Failed {
                reason: bounded_text(&reason, MAX_TEXT_BYTES),
                exit_code,
                retryable,
                kind,
            },
            other => other,
        }
    }

    /// Whether its reason is longer than the bound.
    pub fn is_oversized(&self) -> bool {
        matches!(self, Outcome::Failed { reason, .. } if reason.len() > MAX_TEXT_BYTES)
    }
}

impl HookRun {
    /// This hook's record with its error within [`MAX_TEXT_BYTES`].
    pub fn bounded(mut self) -> Self {
        if let Some(e) = &self.error {
            if e.len() > MAX_TEXT_BYTES {
                self.error = Some(bounded_text(e, MAX_TEXT_BYTES));
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_at_a_character_boundary_and_say_so() {
        assert_eq!(bounded_text("short", 100), "short");
        let long = "é".repeat(10_000); // 20,000 bytes
        let cut = bounded_text(&long, MAX_TEXT_BYTES);
        assert!(cut.len() <= MAX_TEXT_BYTES, "{}", cut.len());
        assert!(cut.contains("more bytes; the whole text is in the step log"));
        let failed = Outcome::Failed {
            reason: long,
            exit_code: Some(3),
            retryable: true,
            kind: crate::run::FailureKind::ExitCode,
        };
        assert!(failed.is_oversized());
        match failed.bounded() {
            Outcome::Failed {
                reason, exit_code, ..
            } => {
                assert!(reason.len() <= MAX_TEXT_BYTES);
                assert_eq!(exit_code, Some(3));
            }
            other => panic!("{other:?}"),
        }
    }
}
