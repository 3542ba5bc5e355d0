//! The application layer: what listing runs, showing one, and reading a
//! step's log mean, whoever asks. The HTTP handlers and the CLI's embedded
//! branch both call it, so `weft show` says the same on a server and on
//! the embedded store: the same prefix rule, the same view (with why a
//! queued step waits), the same choice of attempt and the same messages.
//! Nothing here knows HTTP; its errors carry the status a handler answers
//! with.

mod admission;
mod children;
mod follow_ups;
mod logs;
mod retention;
mod runs;
mod schedules;
mod waiting;
mod webhooks;

pub use admission::{Admission, AdmissionOptions};
pub use children::{refuse_sub_workflow_cycles, Children};
pub use follow_ups::{spawn_follow_ups, MAX_DEPTH};
pub use logs::{last_lines, log_tail, pick_attempt, PickedAttempt};
pub use retention::{
    apply_retention, spawn_retention, RetentionOwned, RetentionReport, RetentionStores,
};
pub use runs::{needs_workers, resolve_run, run_query, run_view, RunFilter};
pub use schedules::{schedule_views, spawn_scheduler, ScheduleView, SchedulerOptions};
pub use waiting::LiveWorkers;
pub(crate) use waiting::{queued_steps, waiting_reason};
pub use webhooks::{Hook, HookIndex};
