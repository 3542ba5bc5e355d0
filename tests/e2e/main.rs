//! End-to-end tests: run the real `weft` binary the way users do.

mod bad_input;
mod check;
mod cli;
mod cluster;
mod examples;
mod guarantees;
mod rabbit;
mod support;
