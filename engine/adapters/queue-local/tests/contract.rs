//! The local queue passes the `JobQueue` contract.
use weft_queue_local::LocalJobQueue;

weft_testkit::job_queue_contract!(async { LocalJobQueue::new() });
