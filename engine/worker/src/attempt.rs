//! What every executor gets for one attempt: the job, where and how to run
//! it, where its log goes, how it is stopped, and the GPUs it holds.

use std::sync::Arc;

use tokio::sync::watch;
use weft_core::ports::RunStore;
use weft_core::run::Job;

use crate::plugins::PostHooks;
use crate::Options;

/// One attempt, as handed to the shell, container and CUDA executors.
pub(crate) struct Attempt<'a> {
    /// The job, after the pre-process hooks.
    pub(crate) job: &'a Job,
    pub(crate) options: &'a Options,
    /// Where the step log goes.
    pub(crate) store: &'a Arc<dyn RunStore>,
    /// Turns `true` when the attempt must stop (cancel, lost claim).
    pub(crate) abort: watch::Receiver<bool>,
    /// The plugins' log filter, applied before a line is stored.
    pub(crate) filter: Option<Arc<PostHooks>>,
    /// The GPUs this worker gave the attempt (none for most steps).
    pub(crate) gpus: &'a [u32],
}
