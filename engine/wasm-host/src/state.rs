//! What a plugin's store holds: its sandboxed WASI context, its caps, the
//! context of the call and the log lines it wrote.

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{hook, Context, Level};

/// Most a plugin may write to the log in one instance's life, in bytes.
const MAX_LOG_BYTES: usize = 256 << 10;

/// A plugin's log line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    /// Written to WASI stdout or stderr.
    Stdio,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Stdio => "stdout",
        }
    }
}

pub(crate) struct State {
    /// Built on first use: most plugins import no WASI at all.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    pub(crate) context: Context,
    pub(crate) logs: Vec<(LogLevel, String)>,
    log_bytes: usize,
    pub(crate) stdout: MemoryOutputPipe,
    /// How much of `stdout` is already in `logs`.
    pub(crate) stdout_seen: usize,
    /// What `read-artifact` reads.
    pub(crate) artifacts: crate::CallArtifacts,
}

impl State {
    /// A sandbox with nothing granted: no directories, no network, no
    /// environment, no arguments; stdout and stderr go to the step's log.
    pub(crate) fn new(context: Context, memory_cap: usize) -> Self {
        Self {
            wasi: None,
            table: ResourceTable::new(),
            limiter: MemoryCap {
                cap: memory_cap,
                hit: false,
            },
            context,
            logs: Vec::new(),
            log_bytes: 0,
            stdout: MemoryOutputPipe::new(MAX_LOG_BYTES),
            stdout_seen: 0,
            artifacts: Default::default(),
        }
    }

    pub(crate) fn push_log(&mut self, level: LogLevel, message: String) {
        if self.log_bytes >= MAX_LOG_BYTES {
            return;
        }
        self.log_bytes += message.len();
        self.logs.push((level, message));
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let stdout = &self.stdout;
        let wasi = self.wasi.get_or_insert_with(|| {
            WasiCtx::builder()
                .stdout(stdout.clone())
                .stderr(stdout.clone())
                .build()
        });
        WasiCtxView {
            ctx: wasi,
            table: &mut self.table,
        }
    }
}

impl hook::weft::plugin::types::Host for State {}

impl hook::weft::plugin::host::Host for State {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.push_log(level, message);
    }

    fn call_context(&mut self) -> Context {
        self.context.clone()
    }

    fn read_artifact(&mut self, name: String, offset: u64, length: u32) -> Result<Vec<u8>, String> {
        self.artifacts.read(&name, offset, length)
    }
}

/// Caps each linear memory of an instance; remembers that it said no, so a
/// trap that follows is reported as the memory cap it is.
pub(crate) struct MemoryCap {
    pub(crate) cap: usize,
    pub(crate) hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}
