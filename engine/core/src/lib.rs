//! weft's pure domain: the workflow spec (TOML with source spans and
//! compiler-style diagnostics), the step DAG, templating, `when` conditions,
//! the run state machine (`apply(&mut RunState, Event) -> Vec<Action>`), and
//! the ports the rest of weft implements.
//!
//! No I/O, no clock reads, no threads: callers pass time in, and carry the
//! returned actions out. Depends on no other weft crate.

pub mod admission;
pub mod artifacts;
pub mod cache;
pub mod concurrency;
pub mod dag;
pub mod diagnostic;
mod error;
pub mod expr;
pub mod kernel;
pub mod layout;
pub mod log_format;
pub mod plugins;
pub mod policy;
pub mod ports;
pub mod retention;
pub mod run;
pub mod schedule;
pub mod secrets;
pub mod spec;
pub mod template;
pub mod templated;
pub mod trace;

pub use error::Error;
