//! End-to-end tests: run the real `weft` binary the way users do.

mod admission;
mod api_auth;
mod api_resources;
mod api_views;
mod artifacts;
mod bad_input;
mod bounds;
mod browser;
mod check;
mod cli;
mod cluster;
mod containers;
mod dashboard;
mod drills;
mod embedded_serve;
mod examples;
mod gpu;
mod guarantees;
mod isolation;
mod plugins;
mod policy;
mod private_redis;
mod rabbit;
mod secrets;
mod support;
