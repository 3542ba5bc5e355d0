//! The HTTP side of weft, and the only crate that knows HTTP: the REST API
//! that `weft serve` exposes, the status endpoint of `weft worker`, the JSON
//! views both sides share, the client the CLI uses to talk to a server, and
//! the web dashboard (`web/`, embedded in the binary).

pub mod app;
mod auth;
mod changes;
mod client;
mod error;
mod finished;
mod metrics;
mod relay;
mod routes;
mod serve;
mod status;
pub mod throttle;
pub mod views;
mod web;

pub use auth::{first_admin_token, mint, Caller};
pub use changes::ChangeFeed;
pub use client::Client;
pub use error::Error;
pub use finished::FinishedViews;
pub use metrics::ServerMetrics;
pub use relay::relay_changes;
pub use routes::{parse_task, router, ApiState, BackfillAnswer, DeliveryAnswer};
pub use serve::{serve, Limits};
pub use status::status_router;
pub use throttle::AuthThrottle;
