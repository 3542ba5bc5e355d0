//! Which attempt's log a reader gets: the one asked for, else the latest,
//! with the reason named when there is none; and a log's last lines, which
//! a failed run's summary shows.

use weft_core::ports::{AttemptId, StepLogs};
use weft_core::run::{RunState, TaskId};

use crate::Error;

/// The attempt whose log is read, and whether it has ended (its log is whole).
#[derive(Debug, Clone, PartialEq)]
pub struct PickedAttempt {
    pub attempt: AttemptId,
    pub finished: bool,
}

/// Attempt `asked` of `task` in the run `state` is of (the latest when
/// `None`). A step that is not in the run, a for-each step named without
/// an instance, a task that never ran and an attempt out of range are each
/// named.
pub fn pick_attempt(
    state: &RunState,
    task: &TaskId,
    asked: Option<u32>,
) -> Result<PickedAttempt, Error> {
    let run = &state.run_id;
    let Some(step) = state.step_index(&task.step) else {
        return Err(Error::not_found(format!(
            "run {run} has no step `{}`",
            task.step
        )));
    };
    if task.index.is_none() && state.plan.workflow.steps[step].for_each.is_some() {
        return Err(Error::not_found(format!(
            "`{0}` is a for-each step: name an instance, e.g. `{0}[0]`",
            task.step
        )));
    }
    let Some(t) = state.task(task).filter(|t| t.attempt() > 0) else {
        return Err(Error::not_found(format!("`{task}` never ran in run {run}")));
    };
    let last = t.attempt();
    let attempt = asked.unwrap_or(last);
    let Some(record) = (attempt as usize)
        .checked_sub(1)
        .and_then(|i| t.attempts.get(i))
    else {
        return Err(Error::not_found(format!(
            "`{task}` has attempts 1 to {last}"
        )));
    };
    Ok(PickedAttempt {
        attempt: AttemptId {
            run_id: run.clone(),
            task: task.clone(),
            attempt,
        },
        finished: state.status.is_terminal() || record.finished_at.is_some(),
    })
}

/// An offset past any log's end (and exact in Redis's Lua numbers): a
/// read from it answers where the log ends.
const PAST_ANY_END: u64 = 1 << 52;

/// The last `bytes` bytes of an attempt's log, and where they start.
pub async fn log_tail(
    store: &dyn StepLogs,
    key: &AttemptId,
    bytes: u64,
) -> Result<weft_core::ports::LogSlice, Error> {
    let end = store.read_log_from(key, PAST_ANY_END, 1).await?.log_end;
    Ok(store
        .read_log_from(key, end.saturating_sub(bytes), bytes.max(1))
        .await?)
}

/// The last `n` lines of `log` with text in them, as a terminal would
/// leave them (what follows a line's last carriage return), without a cut
/// first line when the tail began mid-line (`whole` false): its last
/// stderr lines when it has any (they say why a step failed), else its
/// last lines. Without their marks.
pub fn last_lines(log: &[u8], n: usize, whole: bool) -> Vec<String> {
    let text = String::from_utf8_lossy(log);
    let mut lines: Vec<&str> = text.split('\n').collect();
    if !whole && lines.len() > 1 {
        lines.remove(0);
    }
    let lines: Vec<(bool, String)> = lines
        .iter()
        .map(|l| {
            let (stderr, text) = weft_core::log_format::split_mark(l);
            let shown = text
                .rsplit('\r')
                .next()
                .unwrap_or(&text)
                .trim_end()
                .to_string();
            (stderr, shown)
        })
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let any_stderr = lines.iter().any(|(stderr, _)| *stderr);
    let mut kept: Vec<String> = lines
        .into_iter()
        .rev()
        .filter(|(stderr, _)| *stderr || !any_stderr)
        .take(n)
        .map(|(_, l)| l)
        .collect();
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use weft_core::run::{apply, Event, Plan, RunState};

    use super::*;

    #[test]
    fn the_last_lines_are_whole_and_as_a_terminal_shows_them() {
        let log = b"tail of a cut line\none\n\nprogress 10%\rprogress 100%\nboom: disk full\n\n";
        assert_eq!(
            last_lines(log, 3, false),
            ["one", "progress 100%", "boom: disk full"]
        );
        assert_eq!(last_lines(log, 9, true)[0], "tail of a cut line");
        assert_eq!(last_lines(log, 9, false).len(), 3);
        assert!(last_lines(b"", 5, true).is_empty());
        // Stderr lines first: they say why.
        let log = b"out 1\n\x1eerror: disk full\nout 2\n\x1ehint: free some\nout 3\n";
        assert_eq!(
            last_lines(log, 5, true),
            ["error: disk full", "hint: free some"]
        );
    }

    #[test]
    fn the_attempt_is_the_latest_unless_asked_and_each_miss_is_named() {
        let workflow = weft_core::spec::load(
            "[workflow]\nname = \"w\"\n[steps.a]\nrun = \"x\"\n[steps.f]\nneeds = [\"a\"]\nfor-each = [1, 2]\nrun = \"y\"\n",
        )
        .unwrap();
        let mut state = RunState::new("r1", Plan::new(workflow), Default::default());
        apply(&mut state, Event::Started { at: 0 });
        let a = TaskId::new("a", None);
        let picked = pick_attempt(&state, &a, None).unwrap();
        assert_eq!((picked.attempt.attempt, picked.finished), (1, false));
        for (task, asked, says) in [
            (TaskId::new("nope", None), None, "has no step `nope`"),
            (
                TaskId::new("f", None),
                None,
                "name an instance, e.g. `f[0]`",
            ),
            (TaskId::new("f", Some(0)), None, "never ran"),
            (a.clone(), Some(2), "has attempts 1 to 1"),
            (a.clone(), Some(0), "has attempts 1 to 1"),
        ] {
            let e = pick_attempt(&state, &task, asked).unwrap_err().to_string();
            assert!(e.contains(says), "{task} {asked:?}: {e}");
        }
    }
}
