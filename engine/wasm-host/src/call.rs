//! Calls into plugins, each under its deadline, memory cap and output limit.

use std::time::Duration;

use serde_json::Value as Json;
use wasmtime::{Store, Trap};

use crate::bindings::{hook, Context};
use crate::host::TICK;
use crate::state::{LogLevel, State};
use crate::{Error, Host, Plugin};

/// Caps of the calls of one plugin reference; `None` takes the host's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Option<Duration>,
    pub memory_bytes: Option<u64>,
}

/// Who a call is for.
#[derive(Debug, Clone, PartialEq)]
pub struct CallContext {
    pub run_id: String,
    pub workflow: String,
    pub step: String,
    pub task: String,
    pub attempt: u32,
    /// `name@version` of the plugin, for the plugin and for errors.
    pub plugin: String,
    /// The plugin's `config` from the workflow.
    pub config: Json,
    /// What `read-artifact` may read (nothing by default).
    pub artifacts: crate::CallArtifacts,
}

/// A line a plugin wrote, through the `log` import or to stdout/stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

/// One instance of a hook plugin, for one attempt: a post hook filters the
/// attempt's log chunks and then post-processes its outcome in the same
/// instance. After a failed call it refuses further calls.
pub struct HookInstance {
    store: Store<State>,
    bindings: hook::HookPlugin,
    caps: Caps,
    failed: bool,
}

impl std::fmt::Debug for HookInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookInstance")
            .field("plugin", &self.caps.plugin)
            .finish()
    }
}

struct Caps {
    plugin: String,
    ticks: u64,
    timeout: Duration,
    memory: u64,
    max_output: usize,
}

impl Caps {
    /// Turns a failed call into the error that names its cause.
    fn error(&self, store: &Store<State>, export: &'static str, e: wasmtime::Error) -> Error {
        let plugin = self.plugin.clone();
        if store.data().limiter.hit {
            return Error::Memory {
                plugin,
                export,
                cap_mib: self.memory >> 20,
            };
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Error::Deadline {
                plugin,
                export,
                timeout_ms: self.timeout.as_millis() as u64,
            },
            Some(Trap::StackOverflow) => Error::Stack { plugin, export },
            _ => Error::Trap {
                plugin,
                export,
                message: format!("{e:#}"),
            },
        }
    }

    fn output(&self, export: &'static str, text: &str) -> Result<(), Error> {
        if text.len() > self.max_output {
            return Err(Error::Output {
                plugin: self.plugin.clone(),
                export,
                size: text.len(),
                max: self.max_output,
            });
        }
        Ok(())
    }

    fn json(&self, export: &'static str, text: &str) -> Result<Json, Error> {
        self.output(export, text)?;
        serde_json::from_str(text).map_err(|e| Error::NotJson {
            plugin: self.plugin.clone(),
            export,
            what: "a payload",
            message: e.to_string(),
        })
    }
}

impl Host {
    fn caps(&self, ctx: &CallContext, limits: Limits) -> Caps {
        let timeout = limits
            .timeout
            .unwrap_or(Duration::from_millis(self.options.default_timeout_ms));
        let memory = limits
            .memory_bytes
            .unwrap_or(self.options.default_memory_bytes)
            .min(self.options.max_memory_bytes);
        Caps {
            plugin: ctx.plugin.clone(),
            ticks: (timeout.as_micros() / TICK.as_micros()).max(1) as u64 + 1,
            timeout,
            memory,
            max_output: self.options.max_output_bytes,
        }
    }

    fn store(&self, ctx: &CallContext, caps: &Caps) -> Store<State> {
        let context = Context {
            run_id: ctx.run_id.clone(),
            workflow: ctx.workflow.clone(),
            step: ctx.step.clone(),
            task: ctx.task.clone(),
            attempt: ctx.attempt,
            plugin: ctx.plugin.clone(),
            config: ctx.config.to_string(),
        };
        let mut state = State::new(context, caps.memory as usize);
        state.artifacts = ctx.artifacts.clone();
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(caps.ticks);
        store
    }

    /// A fresh instance of a hook plugin.
    pub fn hook(
        &self,
        plugin: &Plugin,
        ctx: &CallContext,
        limits: Limits,
    ) -> Result<HookInstance, Error> {
        let caps = self.caps(ctx, limits);
        let Some(pre) = &plugin.hook else {
            return Err(Error::WrongWorld {
                plugin: caps.plugin,
                world: plugin.inspection.world.as_str(),
                export: "pre-process",
            });
        };
        let mut store = self.store(ctx, &caps);
        let bindings = pre.instantiate(&mut store).map_err(|e| {
            match caps.error(&store, "instantiate", e) {
                Error::Trap {
                    plugin, message, ..
                } => Error::Instantiate { plugin, message },
                other => other,
            }
        })?;
        Ok(HookInstance {
            store,
            bindings,
            caps,
            failed: false,
        })
    }

    /// Runs a step plugin on `input`; returns its outputs and its log.
    pub fn run_step(
        &self,
        plugin: &Plugin,
        ctx: &CallContext,
        limits: Limits,
        input: &Json,
    ) -> (Result<Json, Error>, Vec<LogLine>) {
        self.call_once(
            plugin,
            plugin.step.as_ref(),
            ctx,
            limits,
            "run",
            |pre, store, context| {
                let bindings = pre
                    .instantiate(&mut *store)
                    .map_err(|e| ("instantiate", e))?;
                bindings
                    .weft_plugin_step()
                    .call_run(store, context, &input.to_string())
                    .map_err(|e| ("run", e))
            },
        )
    }

    /// Runs an admission plugin's `review` on `request` (JSON text);
    /// returns its answer and its log.
    pub fn review(
        &self,
        plugin: &Plugin,
        ctx: &CallContext,
        limits: Limits,
        request: &str,
    ) -> (Result<Json, Error>, Vec<LogLine>) {
        self.call_once(
            plugin,
            plugin.admission.as_ref(),
            ctx,
            limits,
            "review",
            |pre, store, context| {
                let bindings = pre
                    .instantiate(&mut *store)
                    .map_err(|e| ("instantiate", e))?;
                bindings
                    .weft_plugin_admission()
                    .call_review(store, context, request)
                    .map_err(|e| ("review", e))
            },
        )
    }

    /// One call of `export` in a fresh instance made from `pre` (`None`:
    /// the plugin is of another world): its JSON answer and its log. `call`
    /// says which step (`instantiate` or the export) a trap came from.
    fn call_once<P>(
        &self,
        plugin: &Plugin,
        pre: Option<&P>,
        ctx: &CallContext,
        limits: Limits,
        export: &'static str,
        call: impl FnOnce(
            &P,
            &mut Store<State>,
            &Context,
        ) -> Result<Result<String, String>, (&'static str, wasmtime::Error)>,
    ) -> (Result<Json, Error>, Vec<LogLine>) {
        let caps = self.caps(ctx, limits);
        let Some(pre) = pre else {
            let e = Error::WrongWorld {
                plugin: caps.plugin,
                world: plugin.inspection.world.as_str(),
                export,
            };
            return (Err(e), Vec::new());
        };
        let mut store = self.store(ctx, &caps);
        let context = store.data().context.clone();
        let result = match call(pre, &mut store, &context) {
            Err((during, e)) => Err(caps.error(&store, during, e)),
            Ok(Ok(text)) => caps.json(export, &text),
            Ok(Err(message)) => Err(Error::Returned {
                plugin: caps.plugin.clone(),
                export,
                message,
            }),
        };
        (result, drain_logs(&mut store))
    }
}

impl HookInstance {
    fn begin(&mut self, export: &'static str) -> Result<Context, Error> {
        if self.failed {
            return Err(Error::Trap {
                plugin: self.caps.plugin.clone(),
                export,
                message: "an earlier call of this instance failed".into(),
            });
        }
        self.store.set_epoch_deadline(self.caps.ticks);
        Ok(self.store.data().context.clone())
    }

    fn settle<T>(&mut self, r: Result<T, Error>) -> Result<T, Error> {
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// `pre-process`: the input to use instead of `input`.
    pub fn pre_process(&mut self, input: &Json) -> Result<Json, Error> {
        let r = self.payload_call("pre-process", input);
        self.settle(r)
    }

    /// `post-process`: the outcome to record instead of `outcome`.
    pub fn post_process(&mut self, outcome: &Json) -> Result<Json, Error> {
        let r = self.payload_call("post-process", outcome);
        self.settle(r)
    }

    fn payload_call(&mut self, export: &'static str, payload: &Json) -> Result<Json, Error> {
        let ctx = self.begin(export)?;
        let hook = self.bindings.weft_plugin_hook();
        let text = payload.to_string();
        let out = if export == "pre-process" {
            hook.call_pre_process(&mut self.store, &ctx, &text)
        } else {
            hook.call_post_process(&mut self.store, &ctx, &text)
        }
        .map_err(|e| self.caps.error(&self.store, export, e))?;
        match out {
            Ok(text) => self.caps.json(export, &text),
            Err(message) => Err(Error::Returned {
                plugin: self.caps.plugin.clone(),
                export,
                message,
            }),
        }
    }

    /// `filter-log`: the chunk to store instead of `chunk`.
    pub fn filter_log(&mut self, chunk: &str) -> Result<String, Error> {
        let r = (|| {
            let ctx = self.begin("filter-log")?;
            let out = self
                .bindings
                .weft_plugin_hook()
                .call_filter_log(&mut self.store, &ctx, chunk)
                .map_err(|e| self.caps.error(&self.store, "filter-log", e))?;
            self.caps.output("filter-log", &out)?;
            Ok(out)
        })();
        self.settle(r)
    }

    /// What the plugin wrote since the last call of this.
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        drain_logs(&mut self.store)
    }
}

fn drain_logs(store: &mut Store<State>) -> Vec<LogLine> {
    let state = store.data_mut();
    let mut lines: Vec<LogLine> = state
        .logs
        .drain(..)
        .map(|(level, message)| LogLine { level, message })
        .collect();
    let printed = state.stdout.contents();
    if printed.len() > state.stdout_seen {
        let text = String::from_utf8_lossy(&printed[state.stdout_seen..]);
        lines.extend(text.lines().map(|l| LogLine {
            level: LogLevel::Stdio,
            message: l.to_string(),
        }));
        state.stdout_seen = printed.len();
    }
    lines
}
