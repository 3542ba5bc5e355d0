//! The dispatch window of one run: the jobs its state machine dispatched
//! wait here, in order, and go to the queue only while fewer than the
//! window are in it (published, not yet heard of). So one run's 100,000
//! ready tasks do not bury other runs' steps deep in a shared queue, a
//! cancel drops what never left, and a step's deadline counts from when
//! its job is published, not from when it began to wait here.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use weft_core::run::{Event, Job, TaskId};

#[derive(Default)]
pub(crate) struct Window {
    /// 0: no window.
    size: usize,
    /// Waiting to be published, in dispatch order (stale ones are skipped).
    waiting: VecDeque<Job>,
    /// The attempt each waiting task is at; a job whose task is not here at
    /// its attempt is stale.
    unpublished: HashMap<TaskId, u32>,
    /// Deadlines to arm when their job is published.
    deadlines: HashMap<(TaskId, u32), Duration>,
    /// Published and not yet heard of.
    in_queue: HashMap<TaskId, u32>,
}

impl Window {
    pub(crate) fn new(size: u32) -> Self {
        Self {
            size: size as usize,
            ..Self::default()
        }
    }

    /// A job the state machine dispatched.
    pub(crate) fn push(&mut self, job: Job) {
        self.unpublished.insert(job.task.clone(), job.attempt);
        self.waiting.push_back(job);
    }

    /// Keeps a deadline for a job still waiting; gives it back to arm now otherwise.
    pub(crate) fn defer_deadline(
        &mut self,
        task: TaskId,
        attempt: u32,
        after: Duration,
    ) -> Option<(TaskId, u32, Duration)> {
        if self.unpublished.get(&task) == Some(&attempt) {
            self.deadlines.insert((task, attempt), after);
            None
        } else {
            Some((task, attempt, after))
        }
    }

    /// Whether an abort of this attempt is settled here: it never left, so
    /// no worker needs to hear of it.
    pub(crate) fn take_back(&mut self, task: &TaskId, attempt: u32) -> bool {
        if self.unpublished.get(task) == Some(&attempt) {
            self.unpublished.remove(task);
            self.deadlines.remove(&(task.clone(), attempt));
            return true;
        }
        if self.in_queue.get(task) == Some(&attempt) {
            self.in_queue.remove(task);
        }
        false
    }

    /// Notes that the queue has given up a job the event is about.
    pub(crate) fn heard(&mut self, event: &Event) {
        let (task, attempt) = match event {
            Event::TaskStarted { task, attempt, .. }
            | Event::TaskFinished { task, attempt, .. }
            | Event::DeadlinePassed { task, attempt, .. } => (task, *attempt),
            _ => return,
        };
        if self.in_queue.get(task) == Some(&attempt) {
            self.in_queue.remove(task);
        }
    }

    /// The jobs to publish now (and the deadlines to arm with them).
    pub(crate) fn next_batch(&mut self) -> (Vec<Job>, Vec<(TaskId, u32, Duration)>) {
        let mut jobs = Vec::new();
        let mut deadlines = Vec::new();
        while self.size == 0 || self.in_queue.len() < self.size {
            let Some(job) = self.waiting.pop_front() else {
                break;
            };
            if self.unpublished.get(&job.task) != Some(&job.attempt) {
                continue;
            }
            self.unpublished.remove(&job.task);
            if let Some(after) = self.deadlines.remove(&(job.task.clone(), job.attempt)) {
                deadlines.push((job.task.clone(), job.attempt, after));
            }
            self.in_queue.insert(job.task.clone(), job.attempt);
            jobs.push(job);
        }
        (jobs, deadlines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(step: &str, attempt: u32) -> Job {
        let mut j = weft_testkit::job("r", step, "default");
        j.attempt = attempt;
        j
    }

    #[test]
    fn at_most_the_window_is_in_the_queue_and_a_cancel_takes_back_the_rest() {
        let mut w = Window::new(2);
        for s in ["a", "b", "c", "d"] {
            w.push(job(s, 1));
        }
        assert!(w
            .defer_deadline(TaskId::new("d", None), 1, Duration::from_secs(5))
            .is_none());
        let (first, _) = w.next_batch();
        assert_eq!(
            first
                .iter()
                .map(|j| j.task.step.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(w.next_batch().0.is_empty(), "the window is full");
        w.heard(&Event::TaskStarted {
            task: TaskId::new("a", None),
            attempt: 1,
            worker: "w".into(),
            at: 1,
            execution: 1,
        });
        let (next, _) = w.next_batch();
        assert_eq!(next[0].task.step, "c");
        assert!(w.take_back(&TaskId::new("d", None), 1), "d never left");
        assert!(
            !w.take_back(&TaskId::new("b", None), 1),
            "b is in the queue"
        );
        assert!(w.unpublished.is_empty());
        w.heard(&Event::TaskStarted {
            task: TaskId::new("c", None),
            attempt: 1,
            worker: "w".into(),
            at: 1,
            execution: 1,
        });
        assert!(w.next_batch().0.is_empty(), "d was taken back");
    }

    #[test]
    fn a_deadline_waits_for_its_job_to_be_published() {
        let mut w = Window::new(1);
        w.push(job("a", 1));
        w.push(job("b", 1));
        let b = TaskId::new("b", None);
        assert!(w
            .defer_deadline(b.clone(), 1, Duration::from_secs(5))
            .is_none());
        let (_, deadlines) = w.next_batch();
        assert!(deadlines.is_empty());
        w.heard(&Event::TaskStarted {
            task: TaskId::new("a", None),
            attempt: 1,
            worker: "w".into(),
            at: 1,
            execution: 1,
        });
        let (jobs, deadlines) = w.next_batch();
        assert_eq!(jobs[0].task, b);
        assert_eq!(deadlines, vec![(b, 1, Duration::from_secs(5))]);
    }
}
