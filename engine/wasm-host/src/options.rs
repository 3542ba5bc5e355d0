//! The plugin host's settings.

use std::path::PathBuf;

use serde::Deserialize;

/// How the host compiles and runs plugins. Every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Options {
    /// Where compiled plugins are kept between runs of the process.
    /// Default: none (compiled plugins are cached in memory only).
    pub cache_dir: Option<PathBuf>,
    /// Deadline of one call when the workflow sets none, in ms. Default: 5000.
    pub default_timeout_ms: u64,
    /// Memory cap of one instance when the workflow sets none, in bytes.
    /// Default: 64 MiB.
    pub default_memory_bytes: u64,
    /// The largest memory cap a workflow may ask for, in bytes. Default: 1 GiB.
    pub max_memory_bytes: u64,
    /// WebAssembly stack per call, in bytes. Default: 512 KiB.
    pub max_stack_bytes: usize,
    /// Largest payload a plugin may return, in bytes. Default: 1 MiB.
    pub max_output_bytes: usize,
    /// Largest plugin accepted, in bytes. Default: 32 MiB.
    pub max_plugin_bytes: usize,
    /// Instances that may be live at once (the pooling allocator's size).
    /// Default: 128.
    pub max_instances: u32,
    /// Longest a compile of an upload may take, in ms (a Python plugin
    /// compiled by a debug build can take minutes). Default: 300000.
    pub max_compile_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cache_dir: None,
            default_timeout_ms: 5_000,
            default_memory_bytes: 64 << 20,
            max_memory_bytes: 1 << 30,
            max_stack_bytes: 512 << 10,
            max_output_bytes: 1 << 20,
            max_plugin_bytes: 32 << 20,
            max_instances: 128,
            max_compile_ms: 300_000,
        }
    }
}
