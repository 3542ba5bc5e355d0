//! What a step log holds: the step's output as it came, stdout and stderr
//! merged in the order they were read, with each line the step wrote to
//! stderr beginning with [`STDERR_MARK`] (the ASCII record separator,
//! 0x1E), so viewers can show it apart. Readers that print a log for a
//! person (`weft logs`, `weft run --logs`) take the marks out.

use std::borrow::Cow;

/// The byte before each line a step wrote to its stderr.
pub const STDERR_MARK: u8 = 0x1E;

/// `chunk` of a step's stderr with [`STDERR_MARK`] before each line's
/// first byte; `line_start` says whether the chunk begins a line, and is
/// left saying whether the next one does. A line is marked only once a
/// byte of it has come, so a final newline leaves no mark dangling.
pub fn mark_stderr(chunk: &[u8], line_start: &mut bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + 8);
    for &b in chunk {
        if *line_start {
            out.push(STDERR_MARK);
        }
        out.push(b);
        *line_start = b == b'\n';
    }
    out
}

/// `log` without its marks.
pub fn strip_marks(log: &[u8]) -> Cow<'_, [u8]> {
    if !log.contains(&STDERR_MARK) {
        return Cow::Borrowed(log);
    }
    Cow::Owned(log.iter().copied().filter(|b| *b != STDERR_MARK).collect())
}

/// One log line: whether the step wrote it to stderr, and its text
/// without marks.
pub fn split_mark(line: &str) -> (bool, Cow<'_, str>) {
    let mark = STDERR_MARK as char;
    let stderr = line.starts_with(mark);
    match line.contains(mark) {
        true => (stderr, Cow::Owned(line.replace(mark, ""))),
        false => (stderr, Cow::Borrowed(line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stderr_line_is_marked_once_across_chunks() {
        let mut start = true;
        let mut log = mark_stderr(b"one\ntw", &mut start);
        log.extend(mark_stderr(b"o\n", &mut start));
        assert!(start);
        log.extend(mark_stderr(b"\nthree", &mut start));
        assert_eq!(log, b"\x1eone\n\x1etwo\n\x1e\n\x1ethree");
        assert_eq!(strip_marks(&log).as_ref(), b"one\ntwo\n\nthree");
        assert_eq!(split_mark("\x1eboom"), (true, Cow::Borrowed("boom")));
        assert_eq!(split_mark("fine"), (false, Cow::Borrowed("fine")));
        assert_eq!(split_mark("out \x1eerr").1, "out err");
    }
}
