//! Whole runs in one process, on stand-ins for hardware this machine may
//! not have: an orchestrator and a worker over the local queue and the
//! in-memory store, with the CPU kernel runtime for `cuda` steps.

mod cuda;
mod harness;
mod redelivered;
mod start;
