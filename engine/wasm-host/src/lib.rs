//! weft's WebAssembly plugin host.
//!
//! Plugins are components that implement a world of the `weft:plugin`
//! package (`wit/plugin.wit`): hooks around a step, or a whole step. This
//! crate validates them, compiles them once (cached in memory and on disk,
//! keyed by content hash and engine), and calls them in a sandbox: WASI with
//! nothing granted, a wall-clock deadline, a memory cap, a stack limit and a
//! bounded output on every call. A plugin that misbehaves fails its call with
//! an error naming plugin and export; the host keeps serving others.

mod artifacts;
mod bindings;
mod cache;
mod call;
mod error;
mod host;
mod inspect;
mod options;
mod registry;
mod state;

pub use artifacts::{ArtifactReader, CallArtifacts, MAX_ARTIFACT_READ_BYTES};
pub use call::{CallContext, HookInstance, Limits, LogLine};
pub use error::Error;
pub use host::{sha256_hex, Host, Plugin};
pub use inspect::{Inspection, World};
pub use options::Options;
pub use registry::register;
pub use state::LogLevel;
