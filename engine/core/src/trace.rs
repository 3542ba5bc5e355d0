//! Traces of runs, as OpenTelemetry shapes them: one trace per run, a span
//! for the run, one for each step under it, and one for each execution of
//! an attempt under its step (made on the worker that ran it). Every id is
//! derived from the run's own names, so the server and each worker make
//! their spans apart, with no context passed in jobs, and a server that
//! takes a run over makes the same ids. Spans are made once their end is
//! known, with the times the run recorded.

use sha2::{Digest, Sha256};

use crate::ports::AttemptId;
use crate::run::{Millis, Outcome, RunState, RunStatus};

/// What a span's attribute holds.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    Text(String),
    Int(i64),
}

/// Whether a span ended in error, and why.
#[derive(Debug, Clone, PartialEq)]
pub enum SpanStatus {
    Ok,
    Error(String),
}

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// None for a run's span, the root of its trace.
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub start_ms: Millis,
    pub end_ms: Millis,
    pub attributes: Vec<(&'static str, AttributeValue)>,
    pub status: SpanStatus,
}

/// Most bytes of a status message or text attribute a span carries.
const MAX_TEXT: usize = 1024;

fn digest<const N: usize>(parts: &[&str]) -> [u8; N] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        // Parts are told apart, so ("ab", "c") is not ("a", "bc").
        hash.update([0]);
    }
    let mut id = [0; N];
    id.copy_from_slice(&hash.finalize()[..N]);
    id
}

/// The trace of run `run_id`.
pub fn trace_id(run_id: &str) -> [u8; 16] {
    digest(&["weft trace", run_id])
}

/// The span of run `run_id`.
pub fn run_span_id(run_id: &str) -> [u8; 8] {
    digest(&["weft run", run_id])
}

/// The span of step `step` of run `run_id`.
pub fn step_span_id(run_id: &str, step: &str) -> [u8; 8] {
    digest(&["weft step", run_id, step])
}

/// The span of execution `execution` of attempt `key`.
pub fn execution_span_id(key: &AttemptId, execution: u64) -> [u8; 8] {
    digest(&[
        "weft execution",
        &key.run_id,
        &key.task.to_string(),
        &key.attempt.to_string(),
        &execution.to_string(),
    ])
}

fn text(value: &str) -> AttributeValue {
    AttributeValue::Text(crate::run::bounded_text(value, MAX_TEXT))
}

/// The spans of a finished run: its own and one per step that began.
pub fn run_spans(state: &RunState) -> Vec<SpanRecord> {
    let run_id = &state.run_id;
    let (trace, run_span) = (trace_id(run_id), run_span_id(run_id));
    let end = state.finished_at.unwrap_or_default();
    let start = state.started_at.unwrap_or(end).min(end);
    let mut spans = vec![SpanRecord {
        trace_id: trace,
        span_id: run_span,
        parent_span_id: None,
        name: format!("run {}", state.plan.workflow.name),
        start_ms: start,
        end_ms: end,
        attributes: vec![
            ("weft.run.id", text(run_id)),
            ("weft.workflow", text(&state.plan.workflow.name)),
            ("weft.run.status", text(state.status.as_str())),
        ],
        status: match state.status {
            RunStatus::Succeeded => SpanStatus::Ok,
            _ => SpanStatus::Error(
                state
                    .failure_summary()
                    .or_else(|| state.cancel_reason.clone())
                    .unwrap_or_else(|| state.status.as_str().to_string()),
            ),
        },
    }];
    for (step, spec) in state.steps.iter().zip(&state.plan.workflow.steps) {
        let Some(began) = step.started_at else {
            continue;
        };
        let ended = step.finished_at.unwrap_or(end).max(began);
        let attempts: usize = step.tasks.iter().map(|t| t.attempts.len()).sum();
        spans.push(SpanRecord {
            trace_id: trace,
            span_id: step_span_id(run_id, &spec.id),
            parent_span_id: Some(run_span),
            name: format!("step {}", spec.id),
            start_ms: began,
            end_ms: ended,
            attributes: vec![
                ("weft.run.id", text(run_id)),
                ("weft.step", text(&spec.id)),
                ("weft.step.status", text(step.status.as_str())),
                (
                    "weft.step.tasks",
                    AttributeValue::Int(step.tasks.len() as i64),
                ),
                ("weft.step.attempts", AttributeValue::Int(attempts as i64)),
            ],
            status: match &step.error {
                Some(error) => SpanStatus::Error(crate::run::bounded_text(error, MAX_TEXT)),
                None => SpanStatus::Ok,
            },
        });
    }
    spans
}

/// The span of one execution of an attempt on worker `worker`, from its
/// claim to its end, under its step's span.
pub fn execution_span(
    key: &AttemptId,
    execution: u64,
    worker: &str,
    start_ms: Millis,
    end_ms: Millis,
    outcome: &Outcome,
) -> SpanRecord {
    let mut attributes = vec![
        ("weft.run.id", text(&key.run_id)),
        ("weft.step", text(&key.task.step)),
        ("weft.task", text(&key.task.to_string())),
        ("weft.attempt", AttributeValue::Int(i64::from(key.attempt))),
        ("weft.execution", AttributeValue::Int(execution as i64)),
        ("weft.worker", text(worker)),
    ];
    let status = match outcome {
        Outcome::Succeeded { .. } => SpanStatus::Ok,
        Outcome::Failed {
            reason, exit_code, ..
        } => {
            if let Some(code) = exit_code {
                attributes.push(("weft.exit_code", AttributeValue::Int(i64::from(*code))));
            }
            SpanStatus::Error(crate::run::bounded_text(reason, MAX_TEXT))
        }
    };
    SpanRecord {
        trace_id: trace_id(&key.run_id),
        span_id: execution_span_id(key, execution),
        parent_span_id: Some(step_span_id(&key.run_id, &key.task.step)),
        name: format!("attempt {}#{}", key.task, key.attempt),
        start_ms,
        end_ms: end_ms.max(start_ms),
        attributes,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::TaskId;

    #[test]
    fn ids_depend_on_every_name_and_on_nothing_else() {
        assert_eq!(trace_id("r1"), trace_id("r1"));
        assert_ne!(trace_id("r1"), trace_id("r2"));
        assert_ne!(step_span_id("r", "ab"), step_span_id("ra", "b"));
        assert_ne!(run_span_id("r"), step_span_id("r", ""));
        let key = |attempt| AttemptId {
            run_id: "r".into(),
            task: TaskId::new("s", Some(3)),
            attempt,
        };
        assert_ne!(execution_span_id(&key(1), 1), execution_span_id(&key(1), 2));
        assert_ne!(execution_span_id(&key(1), 1), execution_span_id(&key(2), 1));
    }

    #[test]
    fn an_execution_hangs_under_its_step_and_says_why_it_failed() {
        let key = AttemptId {
            run_id: "r".into(),
            task: TaskId::new("shard", Some(2)),
            attempt: 1,
        };
        let failed = Outcome::Failed {
            reason: "x".repeat(5000),
            exit_code: Some(3),
            retryable: true,
            kind: Default::default(),
        };
        let span = execution_span(&key, 2, "w1", 100, 90, &failed);
        assert_eq!(span.trace_id, trace_id("r"));
        assert_eq!(span.parent_span_id, Some(step_span_id("r", "shard")));
        assert_eq!(span.end_ms, 100, "never ends before it starts");
        assert!(span
            .attributes
            .contains(&("weft.exit_code", AttributeValue::Int(3))));
        match span.status {
            SpanStatus::Error(why) => assert!(why.len() <= MAX_TEXT + 64, "bounded"),
            SpanStatus::Ok => panic!("a failure is an error"),
        }
    }
}
