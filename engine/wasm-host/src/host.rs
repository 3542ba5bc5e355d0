//! The engine, its linker and the compiled plugins it has seen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{admission, hook, step};
use crate::cache::DiskCache;
use crate::inspect::{self, Inspection};
use crate::state::State;
use crate::{Error, Options};

/// How often the deadline clock ticks; a deadline is rounded up to it.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// A compiled plugin, ready to instantiate.
/// The interfaces a plugin may import: what the linker is given.
const LINKED: [&str; 7] = [
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
    "weft:plugin/",
];

pub struct Plugin {
    pub sha256: String,
    pub inspection: Inspection,
    pub(crate) hook: Option<hook::HookPluginPre<State>>,
    pub(crate) step: Option<step::StepPluginPre<State>>,
    pub(crate) admission: Option<admission::AdmissionPluginPre<State>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("sha256", &self.sha256)
            .field("world", &self.inspection.world)
            .finish()
    }
}

/// The plugin host: one per process, shared by every call.
pub struct Host {
    pub(crate) engine: Engine,
    linker: Linker<State>,
    pub(crate) options: Options,
    compiled: Mutex<HashMap<String, Arc<Plugin>>>,
    /// One lock per content being compiled: a second load of the same
    /// plugin waits for the first compile instead of compiling it again.
    compiling: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Compiles done, for metrics and tests.
    compiles: AtomicU64,
    disk: Option<DiskCache>,
    stop_ticker: Arc<AtomicBool>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("options", &self.options)
            .finish()
    }
}

impl Host {
    pub fn new(options: Options) -> Result<Self, Error> {
        let engine_err = |e: wasmtime::Error| Error::Engine(format!("{e:#}"));
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(options.max_stack_bytes);
        let mut pool = PoolingAllocationConfig::default();
        let n = options.max_instances.max(1);
        pool.total_component_instances(n)
            .total_core_instances(n * 4)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_core_instances_per_component(64)
            .max_memory_size(options.max_memory_bytes as usize)
            .table_elements(100_000)
            .linear_memory_keep_resident(1 << 20)
            .pagemap_scan(wasmtime::Enabled::Auto)
            .table_keep_resident(64 << 10);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(engine_err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_err)?;
        hook::weft::plugin::host::add_to_linker::<State, wasmtime::component::HasSelf<State>>(
            &mut linker,
            |s| s,
        )
        .map_err(engine_err)?;
        hook::weft::plugin::types::add_to_linker::<State, wasmtime::component::HasSelf<State>>(
            &mut linker,
            |s| s,
        )
        .map_err(engine_err)?;
        let disk = match &options.cache_dir {
            Some(dir) => Some(DiskCache::new(dir, &engine)?),
            None => None,
        };
        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let (engine, stop) = (engine.clone(), stop_ticker.clone());
            std::thread::Builder::new()
                .name("weft-wasm-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| Error::Engine(format!("starting the deadline clock: {e}")))?;
        }
        Ok(Self {
            engine,
            linker,
            options,
            compiled: Mutex::default(),
            compiling: Mutex::default(),
            compiles: Default::default(),
            disk,
            stop_ticker,
        })
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Checks an upload: size, that it is a component, that weft can
    /// provide its imports and that it exports one of weft's worlds with
    /// the right types. Compiles it, so it takes as long as a compile.
    /// With a disk cache, a plugin that passes is cached for later loads.
    pub fn inspect(&self, wasm: &[u8]) -> Result<Inspection, Error> {
        let component = self.compile(wasm)?;
        let pre = self.link(&component)?;
        let (inspection, ..) = inspect::classify(&self.engine, &component, pre)?;
        if let Some(d) = &self.disk {
            d.put(&sha256_hex(wasm), &component);
        }
        Ok(inspection)
    }

    /// The compiled plugin with this content, compiling it (or loading it
    /// from the disk cache) the first time.
    pub fn load(&self, wasm: &[u8]) -> Result<Arc<Plugin>, Error> {
        let sha256 = sha256_hex(wasm);
        if let Some(p) = self.loaded(&sha256) {
            return Ok(p);
        }
        // Single flight: whoever holds this content's lock compiles it;
        // the others find it compiled when they get the lock.
        let lock = self
            .compiling
            .lock()
            .expect("compile locks")
            .entry(sha256.clone())
            .or_default()
            .clone();
        let _compiling = lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = self.loaded(&sha256) {
            return Ok(p);
        }
        let loaded = self.load_new(wasm, sha256.clone());
        self.compiling
            .lock()
            .expect("compile locks")
            .remove(&sha256);
        loaded
    }

    fn load_new(&self, wasm: &[u8], sha256: String) -> Result<Arc<Plugin>, Error> {
        let component = match self
            .disk
            .as_ref()
            .and_then(|d| d.get(&self.engine, &sha256))
        {
            Some(c) => c,
            None => {
                let c = self.compile(wasm)?;
                if let Some(d) = &self.disk {
                    d.put(&sha256, &c);
                }
                c
            }
        };
        let pre = self.link(&component)?;
        let (inspection, hook, step, admission) = inspect::classify(&self.engine, &component, pre)?;
        let plugin = Arc::new(Plugin {
            sha256: sha256.clone(),
            inspection,
            hook,
            step,
            admission,
        });
        self.compiled
            .lock()
            .expect("plugin cache")
            .insert(sha256, plugin.clone());
        Ok(plugin)
    }

    /// A compiled plugin already in memory, by content hash.
    pub fn loaded(&self, sha256: &str) -> Option<Arc<Plugin>> {
        self.compiled
            .lock()
            .expect("plugin cache")
            .get(sha256)
            .cloned()
    }

    /// How many compiles this host has done (a load from the disk cache is none).
    pub fn compiles(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    fn compile(&self, wasm: &[u8]) -> Result<Component, Error> {
        if wasm.len() > self.options.max_plugin_bytes {
            return Err(Error::TooLarge {
                size: wasm.len(),
                max: self.options.max_plugin_bytes,
            });
        }
        inspect::check_header(wasm)?;
        self.compiles.fetch_add(1, Ordering::Relaxed);
        Component::new(&self.engine, wasm).map_err(|e| Error::Compile(format!("{e:#}")))
    }

    fn link(&self, component: &Component) -> Result<InstancePre<State>, Error> {
        self.linker.instantiate_pre(component).map_err(|e| {
            let foreign: Vec<String> = component
                .component_type()
                .imports(&self.engine)
                .map(|(name, _)| name.to_string())
                .filter(|name| !LINKED.iter().any(|p| name.starts_with(p)))
                .map(|name| format!("`{name}`"))
                .collect();
            // wasmtime names the first missing piece deep inside one
            // interface; the author needs the interfaces to build without.
            Error::Imports(if foreign.is_empty() {
                format!("{e:#}")
            } else {
                format!(
                    "{}: weft links only WASI's cli, clocks, filesystem, io, random and \
                     sockets interfaces (granting nothing) and weft:plugin; build the plugin \
                     without the others (for componentize-js: `-d http fetch-event`)",
                    foreign.join(", ")
                )
            })
        })
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// Lowercase hex SHA-256, the name of a plugin's content everywhere in weft.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
