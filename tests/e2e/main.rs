//! End-to-end tests: run the real `weft` binary the way users do.

mod bad_input;
mod check;
mod cli;
mod examples;
mod support;
